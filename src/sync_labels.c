/* sync_labels.c - Gmail label sync after a folder's sync (see sync_labels.h).
 *
 * One struct lpass per folder walks phases on the loop, as sync.c does:
 * each phase submits asynchronous operations (IMAP commands, Maildir
 * open/scan, threadpool jobs) counted in pending, and names the phase that
 * runs when the count falls to zero.  The first error stops new work; the
 * pass ends once what was started has completed.
 *
 * File work (stat, reading headers, rewriting files) runs in the libuv
 * threadpool: a job owns the messages it was handed until its after-work
 * callback, and never touches loop objects.
 */
#include "sync_labels.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "config.h"
#include "err.h"
#include "gmail_labels.h"
#include "imap_conn.h"
#include "imap_parse.h"
#include "log.h"
#include "maildir_name.h"
#include "plan.h"
#include "repo_maildir.h"
#include "status.h"

#define LBL_SET_MAX 3500         /* bytes of one UID set in a STORE */
#define LBL_JOBS 4               /* rewrite jobs in the pool at once */
#define LBL_HDR_MAX (1u << 20)   /* a header block larger than this is not read */
#define LBL_COPY_BUF (64u << 10) /* copy buffer of a rewrite */

enum fresh { FRESH_NO, FRESH_DOWN, FRESH_UP };

/* One message both sides hold. */
struct lmsg {
    uint32_t uid;
    uint8_t fresh;  /* enum fresh: copied in this run */
    bool have_rec;  /* labels recorded */
    bool have_far;  /* in the FETCH answer */
    bool local;     /* a file with this UID was found */
    bool have_near; /* its labels are known (read, or unchanged since recorded) */
    bool rewrite;   /* its header is to be rewritten */
    bool record;    /* a new record is to be written */
    bool failed;    /* the rewrite failed or the file moved: not recorded */
    bool in_new;
    char *name;
    int64_t rec_mtime, mtime; /* ns: an edit within the second of a sync still counts */
    struct gmail_labels rec, far, near, want;
};

struct lpass;
typedef void (*lphase_fn)(struct lpass *p);

struct lpass {
    struct sync_folder_job job;
    sync_folder_cb cb;
    void *arg;
    struct sync_result res;
    const struct config_account *a;
    const char *hdr; /* labelsheader */
    char infosep;
    bool check_only, far_ro;
    struct gmail_labels ignore;
    uint32_t folder;
    struct lmsg *m; /* sorted by uid */
    size_t n;
    uint32_t *stale; /* recorded uids no longer held by both sides */
    size_t nstale, capstale;
    struct repo_maildir_folder *mf;
    struct repo_maildir_listing *nl;
    char *dir;
    int pending;
    lphase_fn next;
    int rc;
    bool done;
    size_t n_far, n_near, n_bad;
    size_t jobs_next; /* rewrite: next index of rw[] to hand out */
    size_t *rw;       /* indexes of m[] to rewrite */
    size_t nrw;
};

/* ---- phases ------------------------------------------------------------- */

static void pass_finish(struct lpass *p);

__attribute__((format(printf, 3, 4))) static void pass_fail(struct lpass *p, int rc,
                                                            const char *fmt, ...)
{
    if (p->rc < 0)
        return;
    p->rc = rc < 0 ? rc : -EIO;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->res.status == 0)
        snprintf(p->res.error, sizeof p->res.error, "labels: %s", msg);
}

static void op_begin(struct lpass *p)
{
    p->pending++;
}

static void op_end(struct lpass *p)
{
    if (--p->pending > 0)
        return;
    for (;;) {
        lphase_fn fn = p->next;
        p->next = NULL;
        if (p->rc < 0 || !fn) {
            pass_finish(p);
            return;
        }
        p->pending++;
        fn(p);
        if (--p->pending > 0)
            return;
    }
}

static void phase(struct lpass *p, lphase_fn setup, lphase_fn next)
{
    p->next = next;
    op_begin(p);
    if (p->rc == 0)
        setup(p);
    op_end(p);
}

static void lmsg_free(struct lmsg *m)
{
    free(m->name);
    gmail_labels_clear(&m->rec);
    gmail_labels_clear(&m->far);
    gmail_labels_clear(&m->near);
    gmail_labels_clear(&m->want);
}

static void pass_free(struct lpass *p)
{
    for (size_t i = 0; i < p->n; i++)
        lmsg_free(&p->m[i]);
    free(p->m);
    free(p->stale);
    free(p->rw);
    free(p->dir);
    gmail_labels_clear(&p->ignore);
    repo_maildir_listing_free(&p->nl);
    repo_maildir_folder_free(&p->mf);
    free(p);
}

static void pass_finish(struct lpass *p)
{
    if (p->done)
        return;
    p->done = true;
    if (p->rc < 0 && p->res.status == 0) {
        p->res.status = p->rc;
        if (p->rc != OIMAP_ENO && p->rc != OIMAP_EBAD && p->job.conn &&
            (imap_conn_error(p->job.conn) || imap_conn_state(p->job.conn) == IMAP_CONN_CLOSED))
            p->res.conn_failed = true;
    }
    sync_folder_cb cb = p->cb;
    void *arg = p->arg;
    struct sync_result res = p->res;
    pass_free(p);
    cb(&res, arg);
}

static struct lmsg *find_msg(struct lpass *p, uint32_t uid)
{
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->m[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < p->n && p->m[lo].uid == uid ? &p->m[lo] : NULL;
}

/* ---- 0. what the status store knows --------------------------------------- */

static int on_record(const struct status_labels *l, void *arg)
{
    struct lpass *p = arg;
    struct lmsg *m = find_msg(p, l->remote_uid);
    if (!m) {
        if (p->nstale == p->capstale) {
            size_t cap = p->capstale ? p->capstale * 2 : 16;
            uint32_t *v = realloc(p->stale, cap * sizeof *v);
            if (!v)
                return -ENOMEM;
            p->stale = v;
            p->capstale = cap;
        }
        p->stale[p->nstale++] = l->remote_uid;
        return 0;
    }
    int rc = gmail_labels_decode(l->data, l->len, &m->rec);
    if (rc < 0)
        return rc;
    /* ignorelabels may have grown since: those are nobody's business. */
    if ((rc = gmail_labels_minus(&m->rec, &m->rec, &p->ignore)) < 0)
        return rc;
    m->have_rec = true;
    m->rec_mtime = l->mtime;
    return 0;
}

static int load_status(struct lpass *p)
{
    struct status_folder f;
    int rc = status_folder_lookup(p->job.status, p->job.local_name, p->job.remote_name, &f);
    if (rc < 0)
        return rc; /* -ENOENT: never synced (a dry run before the first sync) */
    p->folder = f.id;
    struct status_msg *v = NULL;
    size_t n = 0;
    if ((rc = status_msg_load(p->job.status, f.id, &v, &n)) < 0)
        return rc;
    p->m = calloc(n ? n : 1, sizeof *p->m);
    if (!p->m) {
        free(v);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i].state != STATUS_MSG_PAIRED || !v[i].remote_uid)
            continue;
        struct lmsg *m = &p->m[p->n++];
        m->uid = v[i].remote_uid;
    }
    free(v);
    return status_labels_foreach(p->job.status, f.id, on_record, p);
}

static void mark_fresh(struct lpass *p, uint32_t uid, enum fresh how)
{
    struct lmsg *m = find_msg(p, uid);
    if (m)
        m->fresh = (uint8_t)how;
}

/* Which messages this run copied: downloads by their far UID, uploads by
 * the U= their file now carries. */
static void mark_copies(struct lpass *p, const struct plan *plan,
                        const struct repo_maildir_listing *nl)
{
    if (!plan)
        return;
    for (size_t i = 0; i < plan->ndownloads; i++)
        mark_fresh(p, plan->downloads[i].far_uid, FRESH_DOWN);
    for (size_t i = 0; nl && i < plan->nuploads; i++) {
        struct maildir_name mn;
        size_t k = plan->uploads[i].near_idx;
        if (k < nl->n && maildir_name_parse(nl->v[k].name, p->infosep, &mn) == 0 && mn.uid)
            mark_fresh(p, mn.uid, FRESH_UP);
    }
}

/* ---- 1. both listings -------------------------------------------------------- */

static void on_fetch_labels(struct imap_conn *c, const struct imap_fetch *f, void *arg)
{
    struct lpass *p = arg;
    (void)c;
    if (p->rc < 0 || !(f->present & IMAP_FETCH_UID) || !(f->present & IMAP_FETCH_LABELS))
        return;
    struct lmsg *m = find_msg(p, f->uid);
    if (!m)
        return; /* not held by both sides: not ours to label */
    gmail_labels_clear(&m->far);
    int rc = gmail_labels_from_fetch(f->labels, f->n_labels, &m->far);
    if (rc == 0)
        rc = gmail_labels_minus(&m->far, &m->far, &p->ignore);
    if (rc < 0) {
        pass_fail(p, rc, "UID %u: X-GM-LABELS: %s", f->uid, err_str(rc));
        return;
    }
    m->have_far = true;
}

static void on_fetch_done(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct lpass *p = arg;
    (void)c;
    if (st < 0)
        pass_fail(p, st, "UID FETCH X-GM-LABELS failed: %s",
                  res && res->text && *res->text ? res->text : err_str(st));
    op_end(p);
}

static void on_scan(int st, struct repo_maildir_listing *l, void *arg)
{
    struct lpass *p = arg;
    if (st < 0) {
        pass_fail(p, st, "cannot read the local folder %s: %s", p->job.local_name, err_str(st));
        op_end(p);
        return;
    }
    p->nl = l;
    for (size_t i = 0; i < l->n; i++) {
        const struct repo_maildir_entry *e = &l->v[i];
        struct lmsg *m = e->uid && e->fmd5_ok && !e->dup_uid ? find_msg(p, e->uid) : NULL;
        if (!m)
            continue;
        if (!(m->name = strdup(e->name))) {
            pass_fail(p, -ENOMEM, "out of memory");
            break;
        }
        m->in_new = e->in_new;
        m->local = true;
    }
    op_end(p);
}

static void on_open(int st, struct repo_maildir_folder *f, void *arg)
{
    struct lpass *p = arg;
    if (st < 0) {
        pass_fail(p, st, "cannot open the local folder %s: %s", p->job.local_name, err_str(st));
    } else {
        p->mf = f;
        if (p->job.fmd5_name) /* as sync.c: before any job on f */
            repo_maildir_folder_set_fmd5_name(f, p->job.fmd5_name);
        p->dir = strdup(repo_maildir_folder_path(f));
        int rc = p->dir ? repo_maildir_scan(f, 0, on_scan, p) : -ENOMEM;
        if (rc < 0)
            pass_fail(p, rc, "cannot read the local folder %s: %s", p->job.local_name, err_str(rc));
        else
            op_begin(p);
    }
    op_end(p);
}

static void list_setup(struct lpass *p)
{
    if (!p->check_only) {
        struct imap_fetch_opts fo = {.extra_items = "X-GM-LABELS"};
        int rc = imap_conn_fetch_list(p->job.conn, "1:*", &fo, on_fetch_labels, on_fetch_done, p);
        if (rc < 0) {
            pass_fail(p, rc, "UID FETCH X-GM-LABELS: %s", err_str(rc));
            return;
        }
        op_begin(p);
    }
    int rc = repo_maildir_open(p->job.maildir, p->job.local_name, 0, on_open, p);
    if (rc < 0)
        pass_fail(p, rc, "cannot open the local folder %s: %s", p->job.local_name, err_str(rc));
    else
        op_begin(p);
}

/* ---- 2. the local labels (threadpool) ----------------------------------------- */

static int64_t mtime_ns(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static int msg_path(const struct lpass *p, const struct lmsg *m, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/%s/%s", p->dir, m->in_new ? "new" : "cur", m->name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* Read fd's header block (up to the empty line, or all of a body-less
 * message) into *buf_r; *hdr_len_r its length, *read_r the bytes read. */
static int read_header(int fd, char **buf_r, size_t *hdr_len_r, size_t *read_r)
{
    size_t cap = 16384, len = 0, end = 0;
    char *buf = malloc(cap);
    *buf_r = NULL;
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (len == cap) {
            if (cap >= LBL_HDR_MAX) {
                free(buf);
                return OIMAP_ETOOBIG;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int rc = -errno;
            free(buf);
            return rc;
        }
        len += (size_t)r;
        if (gmail_msg_header_end(buf, len, &end) || r == 0)
            break;
    }
    *buf_r = buf;
    *hdr_len_r = end;
    *read_r = len;
    return 0;
}

/* The labels of one file as the sync sees them: ignored ones left out. */
static int read_labels(const struct lpass *p, struct lmsg *m, int fd)
{
    char *buf;
    size_t hl, got, bad = 0;
    int rc = read_header(fd, &buf, &hl, &got);
    if (rc < 0)
        return rc;
    gmail_labels_clear(&m->near);
    rc = gmail_msg_read_labels(buf, hl, p->hdr, &m->near, &bad);
    free(buf);
    if (rc >= 0)
        rc = gmail_labels_minus(&m->near, &m->near, &p->ignore);
    return rc < 0 ? rc : 0;
}

struct rd_job {
    uv_work_t w;
    struct lpass *p;
    int rc;
    char err[300];
};

/* A file whose mtime is the recorded one has the recorded labels: only the
 * others are opened (offlineimap's reasoning too).  A copy of this run is
 * always read. */
static void rd_work(uv_work_t *w)
{
    struct rd_job *j = w->data;
    struct lpass *p = j->p;
    char path[4096];
    for (size_t i = 0; i < p->n && j->rc == 0; i++) {
        struct lmsg *m = &p->m[i];
        struct stat st;
        if (!m->local)
            continue;
        if (msg_path(p, m, path, sizeof path) < 0 || stat(path, &st) < 0) {
            m->local = false; /* gone or renamed meanwhile: next time */
            continue;
        }
        m->mtime = mtime_ns(&st);
        if (m->have_rec && m->rec_mtime == m->mtime && m->fresh == FRESH_NO) {
            int rc = gmail_labels_copy(&m->near, &m->rec);
            if (rc < 0)
                j->rc = rc;
            m->have_near = rc == 0;
            continue;
        }
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            m->local = false;
            continue;
        }
        int rc = read_labels(p, m, fd);
        close(fd);
        if (rc == -ENOMEM) {
            j->rc = rc;
        } else if (rc < 0) {
            snprintf(j->err, sizeof j->err, "%.240s: %s", path, err_str(rc));
            m->local = false; /* unreadable header: left alone */
        } else {
            m->have_near = true;
        }
    }
}

static void rd_done(uv_work_t *w, int status)
{
    struct rd_job *j = w->data;
    struct lpass *p = j->p;
    if (j->err[0])
        log_warn("%s: folder %s: labels of %s not read", p->a->name, p->job.remote_name, j->err);
    if (status < 0 || j->rc < 0)
        pass_fail(p, status < 0 ? status : j->rc, "reading local labels: %s",
                  err_str(status < 0 ? status : j->rc));
    free(j);
    op_end(p);
}

static void read_setup(struct lpass *p)
{
    struct rd_job *j = calloc(1, sizeof *j);
    if (!j) {
        pass_fail(p, -ENOMEM, "out of memory");
        return;
    }
    j->p = p;
    j->w.data = j;
    int rc = uv_queue_work(p->job.loop, &j->w, rd_work, rd_done);
    if (rc < 0) {
        free(j);
        pass_fail(p, rc, "threadpool: %s", err_str(rc));
        return;
    }
    op_begin(p);
}

/* ---- 3. what to change ---------------------------------------------------------- */

static int decide_one(struct lpass *p, struct lmsg *m)
{
    int rc;
    /* A readonly remote is the source; a download's header is the sender's. */
    if (p->far_ro || m->fresh == FRESH_DOWN)
        rc = gmail_labels_copy(&m->want, &m->far);
    else if (m->fresh == FRESH_UP || !m->have_rec)
        rc = gmail_labels_merge(NULL, &m->far, &m->near, &m->want);
    else
        rc = gmail_labels_merge(&m->rec, &m->far, &m->near, &m->want);
    if (rc < 0)
        return rc;
    m->rewrite = !gmail_labels_equal(&m->want, &m->near);
    bool far_change = !p->far_ro && !gmail_labels_equal(&m->want, &m->far);
    m->record = !m->have_rec || m->rewrite || !gmail_labels_equal(&m->rec, &m->want) ||
                m->rec_mtime != m->mtime;
    p->n_far += far_change;
    p->n_near += m->rewrite;
    return 0;
}

static void decide(struct lpass *p)
{
    for (size_t i = 0; i < p->n && p->rc == 0; i++) {
        struct lmsg *m = &p->m[i];
        if (!m->local || !m->have_near)
            continue;
        if (p->check_only) {
            if (!m->have_rec || !gmail_labels_equal(&m->near, &m->rec)) {
                p->res.need_conn = true;
                p->res.skipped = false;
                LOG_DEBUG(LOGC_SYNC, "%s: UID %u: local labels changed: selecting it",
                          p->job.remote_name, m->uid);
                return;
            }
            continue;
        }
        if (!m->have_far)
            continue; /* expunged since the sync: the next run deletes it */
        int rc = decide_one(p, m);
        if (rc < 0)
            pass_fail(p, rc, "%s", err_str(rc));
    }
}

/* ---- 4. remote: UID STORE +/-X-GM-LABELS ------------------------------------------ */

struct change {
    const char *label;
    uint32_t uid;
    bool add;
};

static int cmp_change(const void *a, const void *b)
{
    const struct change *x = a, *y = b;
    if (x->add != y->add)
        return x->add ? -1 : 1;
    int c = strcmp(x->label, y->label);
    if (c)
        return c;
    return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static int push_changes(struct change **v, size_t *n, size_t *cap, const struct gmail_labels *a,
                        const struct gmail_labels *b, uint32_t uid, bool add)
{
    for (size_t i = 0; i < a->n; i++) {
        if (gmail_labels_has(b, a->v[i], strlen(a->v[i])))
            continue;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            struct change *nv = realloc(*v, nc * sizeof *nv);
            if (!nv)
                return -ENOMEM;
            *v = nv;
            *cap = nc;
        }
        (*v)[(*n)++] = (struct change){a->v[i], uid, add};
    }
    return 0;
}

static void on_stored(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct lpass *p = arg;
    (void)c;
    if (st < 0)
        pass_fail(p, st, "UID STORE X-GM-LABELS failed: %s",
                  res && res->text && *res->text ? res->text : err_str(st));
    op_end(p);
}

/* "1:3,7" from sorted uids v[0..n), as many as fit; returns how many. */
static size_t uid_set(const struct change *v, size_t n, char *buf, size_t cap)
{
    size_t i = 0, o = 0;
    buf[0] = 0;
    while (i < n && o + 24 < cap) {
        size_t j = i;
        while (j + 1 < n && v[j + 1].uid == v[j].uid + 1)
            j++;
        int w = j > i ? snprintf(buf + o, cap - o, "%s%u:%u", o ? "," : "", v[i].uid, v[j].uid)
                      : snprintf(buf + o, cap - o, "%s%u", o ? "," : "", v[i].uid);
        o += (size_t)w;
        i = j + 1;
    }
    return i;
}

static void store_group(struct lpass *p, const struct change *v, size_t n)
{
    char quoted[1024], set[LBL_SET_MAX], cmd[LBL_SET_MAX + 1100];
    int ql = imap_quote(quoted, sizeof quoted, v[0].label, strlen(v[0].label), false);
    if (ql <= 0) {
        log_warn("%s: folder %s: label %s cannot be sent to the server; left alone", p->a->name,
                 p->job.remote_name, v[0].label);
        return;
    }
    while (n && p->rc == 0) {
        size_t used = uid_set(v, n, set, sizeof set);
        snprintf(cmd, sizeof cmd, "UID STORE %s %cX-GM-LABELS (%s)", set, v[0].add ? '+' : '-',
                 quoted);
        int rc = imap_conn_command(p->job.conn, cmd, NULL, NULL, on_stored, p);
        if (rc < 0) {
            pass_fail(p, rc, "UID STORE: %s", err_str(rc));
            return;
        }
        op_begin(p);
        v += used;
        n -= used;
    }
}

static void store_setup(struct lpass *p)
{
    struct change *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (size_t i = 0; i < p->n && rc == 0; i++) {
        struct lmsg *m = &p->m[i];
        if (!m->local || !m->have_near || !m->have_far)
            continue;
        rc = push_changes(&v, &n, &cap, &m->want, &m->far, m->uid, true);
        if (rc == 0)
            rc = push_changes(&v, &n, &cap, &m->far, &m->want, m->uid, false);
    }
    if (rc < 0) {
        free(v);
        pass_fail(p, rc, "out of memory");
        return;
    }
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_change);
    for (size_t i = 0; i < n && p->rc == 0;) {
        size_t e = i + 1;
        while (e < n && v[e].add == v[i].add && strcmp(v[e].label, v[i].label) == 0)
            e++;
        store_group(p, v + i, e - i);
        i = e;
    }
    free(v);
}

/* ---- 5. local: rewrite the header (threadpool) ------------------------------------ */

static int write_all(int fd, const char *b, size_t n)
{
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The rest of src (from off) after what was already written. */
static int copy_rest(int src, int dst, const char *have, size_t have_len, size_t off)
{
    int rc = off < have_len ? write_all(dst, have + off, have_len - off) : 0;
    char *buf = rc == 0 ? malloc(LBL_COPY_BUF) : NULL;
    if (rc == 0 && !buf)
        rc = -ENOMEM;
    while (rc == 0) {
        ssize_t r = read(src, buf, LBL_COPY_BUF);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = -errno;
        if (r <= 0)
            break;
        rc = write_all(dst, buf, (size_t)r);
    }
    free(buf);
    return rc;
}

struct rw_job {
    uv_work_t w;
    struct lpass *p;
    size_t start, end; /* p->rw[start, end) */
    int rc;
    char err[400];
    bool renamed_new, renamed_cur;
};

/* A new tmp/ file holding src's message with the header replaced. */
static int write_new(struct rw_job *j, struct lmsg *m, int src, const struct stat *sst,
                     const char *tmp)
{
    struct lpass *p = j->p;
    char *hbuf = NULL, *nh = NULL, *value = NULL;
    size_t hl = 0, got = 0, nhl = 0, bad = 0;
    int rc = read_header(src, &hbuf, &hl, &got);
    if (rc < 0)
        return rc;
    /* The ignored labels the header holds now stay in it. */
    struct gmail_labels all;
    gmail_labels_init(&all);
    rc = gmail_msg_read_labels(hbuf, hl, p->hdr, &all, NULL);
    if (rc >= 0)
        rc = gmail_labels_and(&all, &all, &p->ignore);
    if (rc == 0)
        rc = gmail_labels_union(&all, &m->want);
    if (rc == 0 && all.n)
        rc = gmail_labels_format_value(p->hdr, &all, &value, &bad);
    if (rc == 0)
        rc = gmail_msg_set_header(hbuf, hl, p->hdr, all.n ? value : NULL, &nh, &nhl);
    gmail_labels_clear(&all);
    free(value);
    int fd = rc == 0 ? open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, sst->st_mode & 0777) : -1;
    if (rc == 0 && fd < 0)
        rc = -errno;
    if (rc == 0)
        rc = write_all(fd, nh, nhl);
    if (rc == 0)
        rc = copy_rest(src, fd, hbuf, got, hl);
    if (rc == 0 && p->a->local && p->a->local->utime_from_header) {
        /* The file's time stands for the message's date: keep it. */
        struct timespec ts[2] = {sst->st_atim, sst->st_mtim};
        if (futimens(fd, ts) < 0)
            rc = -errno;
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc < 0 && fd >= 0)
        unlink(tmp);
    free(hbuf);
    free(nh);
    if (bad && rc == 0)
        snprintf(j->err, sizeof j->err,
                 "%zu labels cannot be written into the %s header (separator or control "
                 "characters in them)",
                 bad, p->hdr);
    return rc;
}

/* Replace one file: read it, write the new one in tmp/, rename it over the
 * old name.  A file renamed by a mail reader meanwhile is left for the next
 * run (renaming over its old name would bring back a second copy). */
static int rewrite_one(struct rw_job *j, struct lmsg *m)
{
    struct lpass *p = j->p;
    char path[4096], tmp[4096], uniq[128];
    if (msg_path(p, m, path, sizeof path) < 0)
        return -ENAMETOOLONG;
    int src = open(path, O_RDONLY | O_CLOEXEC);
    if (src < 0)
        return errno == ENOENT ? 1 : -errno;
    struct stat sst;
    int rc = fstat(src, &sst) < 0 ? -errno : 0;
    if (rc == 0 && maildir_name_unique(uniq, sizeof uniq, -1) < 0)
        rc = -ENAMETOOLONG;
    if (rc == 0 && snprintf(tmp, sizeof tmp, "%s/tmp/%s.labels", p->dir, uniq) >= (int)sizeof tmp)
        rc = -ENAMETOOLONG;
    if (rc == 0)
        rc = write_new(j, m, src, &sst, tmp);
    close(src);
    if (rc < 0)
        return rc;
    struct stat now;
    if (stat(path, &now) < 0 || now.st_ino != sst.st_ino || now.st_dev != sst.st_dev) {
        unlink(tmp);
        return 1; /* moved, renamed or replaced since it was read */
    }
    if (rename(tmp, path) < 0) {
        rc = -errno;
        unlink(tmp);
        return rc;
    }
    if (stat(path, &now) == 0)
        m->mtime = mtime_ns(&now);
    if (m->in_new)
        j->renamed_new = true;
    else
        j->renamed_cur = true;
    return 0;
}

static int fsync_dir(const char *dir, const char *sub)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, sub) >= (int)sizeof path)
        return -ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

static void rw_work(uv_work_t *w)
{
    struct rw_job *j = w->data;
    struct lpass *p = j->p;
    for (size_t k = j->start; k < j->end && j->rc == 0; k++) {
        struct lmsg *m = &p->m[p->rw[k]];
        int rc = rewrite_one(j, m);
        if (rc == 1) {
            m->failed = true; /* the next run sees it again */
        } else if (rc < 0) {
            m->failed = true;
            j->rc = rc;
            snprintf(j->err, sizeof j->err, "cannot rewrite the labels of local message %s: %s",
                     m->name, err_str(rc));
        }
    }
    /* The renames are durable before the status records them. */
    int rc = 0;
    if (j->renamed_new)
        rc = fsync_dir(p->dir, "new");
    if (rc == 0 && j->renamed_cur)
        rc = fsync_dir(p->dir, "cur");
    if (rc < 0 && j->rc == 0) {
        j->rc = rc;
        snprintf(j->err, sizeof j->err, "fsync of %s: %s", p->dir, err_str(rc));
    }
}

static void rw_next(struct lpass *p);

static void rw_done(uv_work_t *w, int status)
{
    struct rw_job *j = w->data;
    struct lpass *p = j->p;
    if (status < 0)
        pass_fail(p, status, "threadpool: %s", err_str(status));
    else if (j->rc < 0)
        pass_fail(p, j->rc, "%s", j->err);
    else if (j->err[0])
        log_warn("%s: folder %s: %s", p->a->name, p->job.remote_name, j->err);
    free(j);
    rw_next(p);
    op_end(p);
}

/* Hand out the next slice: LBL_JOBS jobs in flight, slices of a size that
 * spreads the work over them (fsyncs run in parallel). */
static void rw_next(struct lpass *p)
{
    if (p->rc < 0 || p->jobs_next >= p->nrw)
        return;
    size_t slice = (p->nrw + LBL_JOBS - 1) / LBL_JOBS;
    if (slice > 64)
        slice = 64;
    struct rw_job *j = calloc(1, sizeof *j);
    if (!j) {
        pass_fail(p, -ENOMEM, "out of memory");
        return;
    }
    j->p = p;
    j->w.data = j;
    j->start = p->jobs_next;
    j->end = j->start + slice < p->nrw ? j->start + slice : p->nrw;
    int rc = uv_queue_work(p->job.loop, &j->w, rw_work, rw_done);
    if (rc < 0) {
        free(j);
        pass_fail(p, rc, "threadpool: %s", err_str(rc));
        return;
    }
    p->jobs_next = j->end;
    op_begin(p);
}

static void rewrite_setup(struct lpass *p)
{
    p->rw = calloc(p->n ? p->n : 1, sizeof *p->rw);
    if (!p->rw) {
        pass_fail(p, -ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < p->n; i++)
        if (p->m[i].local && p->m[i].have_near && p->m[i].have_far && p->m[i].rewrite)
            p->rw[p->nrw++] = i;
    for (int k = 0; k < LBL_JOBS; k++)
        rw_next(p);
}

/* ---- 6. record ---------------------------------------------------------------------- */

static int record_one(struct lpass *p, struct status_txn *t, const struct lmsg *m)
{
    char *buf;
    size_t len;
    int rc = gmail_labels_encode(&m->want, &buf, &len);
    if (rc < 0)
        return rc;
    struct status_labels l = {.remote_uid = m->uid, .mtime = m->mtime, .data = buf, .len = len};
    rc = status_txn_labels_put(t, p->folder, &l);
    free(buf);
    return rc;
}

static void commit(struct lpass *p)
{
    size_t n = p->nstale;
    for (size_t i = 0; i < p->n; i++) {
        const struct lmsg *m = &p->m[i];
        n += m->local && m->have_near && m->have_far && m->record && !m->failed;
    }
    if (!n)
        return;
    struct status_txn *t = NULL;
    int rc = status_txn_begin(p->job.status, &t);
    for (size_t i = 0; rc == 0 && i < p->n; i++) {
        const struct lmsg *m = &p->m[i];
        if (m->local && m->have_near && m->have_far && m->record && !m->failed)
            rc = record_one(p, t, m);
    }
    for (size_t i = 0; rc == 0 && i < p->nstale; i++) {
        rc = status_txn_labels_del(t, p->folder, p->stale[i]);
        rc = rc == -ENOENT ? 0 : rc;
    }
    if (rc < 0) {
        status_txn_abort(&t);
        pass_fail(p, rc, "status store: %s", err_str(rc));
        return;
    }
    if ((rc = status_txn_commit(&t)) < 0)
        pass_fail(p, rc, "status store: commit failed: %s", err_str(rc));
}

static void report(struct lpass *p)
{
    if (!p->n_far && !p->n_near)
        return;
    log_info("%s%s: folder %s: labels-remote %zu, labels-local %zu",
             p->job.dry_run ? "[dry-run] " : "", p->a->name, p->job.remote_name, p->n_far,
             p->n_near);
}

static void after_changes(struct lpass *p)
{
    commit(p);
    if (p->rc == 0)
        report(p);
}

static void act_setup(struct lpass *p)
{
    if (!p->far_ro)
        store_setup(p);
    rewrite_setup(p);
}

static void after_read(struct lpass *p)
{
    decide(p);
    if (p->rc < 0 || p->check_only)
        return;
    if (p->job.dry_run) {
        report(p);
        return;
    }
    phase(p, act_setup, after_changes);
}

static void after_list(struct lpass *p)
{
    phase(p, read_setup, after_read);
}

/* ---- entry ---------------------------------------------------------------------------- */

bool sync_labels_enabled(const struct config_account *a)
{
    return a && a->synclabels && a->remote && a->remote->type == CONFIG_REPO_GMAIL && a->local &&
           a->local->type == CONFIG_REPO_GMAILMAILDIR && !a->local->readonly;
}

static int ignore_set(struct lpass *p)
{
    const struct config_list *l = &p->a->ignorelabels;
    for (size_t i = 0; i < l->n; i++) {
        char *w;
        int rc = gmail_label_wire(l->v[i], strlen(l->v[i]), &w);
        if (rc == OIMAP_ENAME)
            continue;
        if (rc < 0)
            return rc;
        rc = gmail_labels_add(&p->ignore, w, strlen(w));
        free(w);
        if (rc < 0)
            return rc;
    }
    return 0;
}

bool sync_labels_after(const struct sync_folder_job *job, const struct sync_result *res,
                       const struct plan *plan, const struct repo_maildir_listing *listing,
                       sync_folder_cb cb, void *arg)
{
    if (!job || !sync_labels_enabled(job->acct) || res->status < 0 || res->need_conn)
        return false;
    bool check_only = !job->conn;
    if (!check_only && imap_conn_state(job->conn) != IMAP_CONN_SELECTED)
        return false;
    struct lpass *p = calloc(1, sizeof *p);
    if (!p)
        return false;
    p->job = *job;
    p->cb = cb;
    p->arg = arg;
    p->res = *res;
    p->a = job->acct;
    p->hdr = p->a->labelsheader && *p->a->labelsheader ? p->a->labelsheader : GMAIL_LABELS_HEADER;
    p->infosep = p->a->maildir_windows_compatible ? '!' : ':';
    p->check_only = check_only;
    p->far_ro = p->a->remote->readonly;
    gmail_labels_init(&p->ignore);
    int rc = ignore_set(p);
    if (rc == 0)
        rc = load_status(p);
    if (rc == -ENOENT || (rc == 0 && p->n == 0)) {
        pass_free(p); /* nothing both sides hold yet */
        return false;
    }
    if (rc < 0) {
        /* Labels are an extra: the folder's result stands; say why they
         * were not synced. */
        log_error("%s: folder %s: labels not synced: %s", p->a->name, job->remote_name,
                  err_str(rc));
        pass_free(p);
        return false;
    }
    mark_copies(p, plan, listing);
    phase(p, list_setup, after_list);
    return true;
}
