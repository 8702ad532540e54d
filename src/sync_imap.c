/* sync_imap.c - one folder pair of two IMAP servers (sync_imap.h).
 *
 * Both sides are IMAP, so almost everything is written once for a side
 * (struct side: its connection, folder, listing) and used for far and near
 * alike: select, list, search, store, expunge, and a copy from one side to
 * the other.
 *
 * Steps run one after the other: a step submits asynchronous operations,
 * each counted in s->pending, and names the step that runs when the count
 * falls back to zero (s->next).  After a failure nothing new is started and
 * the folder ends once what was started has completed.
 *
 * CRASH SAFETY (SYNC-SAFETY.md; the argument is plan.h's, these are the
 * points that keep it here):
 *   - A copy's intent, with the marker sent in its X-OIMAP-TUID header, is
 *     committed (one commit per batch) before its APPEND is submitted; the
 *     pair is recorded, and the intent deleted in the same commit, only
 *     after the destination's tagged OK and its new UID are known (APPENDUID
 *     or a UID SEARCH HEADER for the marker).  (Invariants 1, 2.)
 *   - On start, open intents are looked up by their marker on the side the
 *     copy went to before anything else is planned; a copy found is paired,
 *     never sent again; one not found is searched once more after a pause
 *     when its intent is recent (an APPEND of a killed run may still be in
 *     the server's input).  (Invariant 3.)
 *   - An APPEND refused by the server (NO/BAD) stored nothing: its intent is
 *     dropped.  One whose answer never came keeps its intent for the next
 *     run's lookup.
 *   - Flags and deletions need no intent: the status record is rewritten
 *     only after the server's tagged OK of the STOREs / UID EXPUNGE, and
 *     doing either again is harmless.  (Invariant 4 is the planner's.)
 *   - --dry-run: EXAMINE on both sides, nothing created, the status store
 *     read-only; only UID SEARCH (read-only) is sent besides the listings.
 */
#include "sync_imap.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "err.h"
#include "imap_conn.h"
#include "log.h"
#include "plan.h"
#include "status.h"
#include "sync_int.h"
#include "xfer.h"

#define COPY_BATCH_MSGS 64           /* messages per copy batch: one intent commit */
#define COPY_BATCH_BYTES (32u << 20) /* and at most this many bytes */
#define KW_TEXT_MAX 800              /* keywords carried by one APPEND (bytes) */

struct simap;

struct smsg {
    uint32_t uid;
    plan_flags_t flags;
    uint64_t size;
    int64_t date;
    char *kw; /* every keyword as listed, space separated; NULL if none */
};

struct side {
    struct simap *s;
    int id; /* PLAN_FAR or PLAN_NEAR */
    struct imap_conn *conn;
    const char *name; /* the folder on that server */
    const char *what; /* "remote" / "local", for messages */
    bool ro;          /* readonly repository: nothing written there */
    bool missing;     /* --dry-run: the local folder would be created */
    bool expunged;    /* deletions of this run expunged (not only flagged) */
    struct imap_folder_info fi;
    struct smsg *v; /* listing, sorted by UID */
    size_t n, cap;
};

/* An open APPEND intent: a copy to side dst that was started. */
struct intent {
    uint64_t id;
    int dst;
    uint32_t src_uid;
    plan_flags_t flags;
    char tuid[STATUS_TUID_MAX + 1];
    int64_t time;
    bool resolved;
    uint32_t found; /* the copy's UID when resolved (0: absent) */
};

struct copy {
    struct simap *s;
    size_t pidx; /* plan->downloads / plan->uploads index */
    uint32_t src_uid, dst_uid;
    plan_flags_t flags;
    uint64_t intent;
    char tuid[STATUS_TUID_LEN + 1];
    char hdr[64];
};

struct search {
    struct simap *s;
    size_t i; /* intent or copy index */
};

typedef void (*step_fn)(struct simap *s);

struct simap {
    struct sync_imap_job job;
    sync_folder_cb cb;
    void *arg;
    struct sync_result res;
    const char *acct;
    const char *kw[STATUS_KEYWORDS_MAX]; /* keyword bits: the folder's table (status.h) */
    char *kwnames[STATUS_KEYWORDS_MAX];  /* ... owned here */
    int nkw;
    bool kw_dirty; /* names learnt in this run: stored before any record uses them */
    struct side side[2];

    int pending;
    step_fn next;
    bool next_on_fail; /* next runs even after a failure (to record what was done) */
    int rc;
    int guard_rc;
    char guard_msg[512];

    bool have_frec;
    struct status_folder frec;
    struct status_msg *smsgs;
    size_t nsmsgs;
    struct intent *in;
    size_t nin, capin;
    bool tried_create, looked_up, rechecked;
    size_t lk_next;
    uv_timer_t timer;

    struct plan_far_msg *pfar;
    struct plan_near_msg *pnear;
    struct plan_status_rec *precs;
    struct plan_intent *pin;
    struct plan *plan;

    /* copies: to side cdst, plan copies [cnext, total) still to do */
    int cdst;
    size_t cnext;
    struct copy *cv; /* the batch in flight */
    struct xfer_msg *xv;
    size_t cn;
    size_t done_msgs;
    uint64_t done_bytes, total_bytes;
};

/* ---- steps and failures --------------------------------------------------- */

static void finish(struct simap *s);

static void hold(struct simap *s)
{
    s->pending++;
}

/* One operation ended; when it was the last, the next step runs (several in
 * a row when a step starts nothing), or the folder ends. */
static void release(struct simap *s)
{
    while (--s->pending == 0) {
        step_fn fn = s->next;
        bool always = s->next_on_fail;
        s->next = NULL;
        s->next_on_fail = false;
        if ((s->rc < 0 && !always) || !fn) {
            finish(s);
            return;
        }
        s->pending = 1; /* the step itself, while it submits */
        fn(s);
    }
}

/* Run fn now (from a step or a completion); what it submits is awaited,
 * then then_fn runs. */
static void step(struct simap *s, step_fn fn, step_fn then_fn)
{
    s->next = then_fn;
    hold(s);
    if (s->rc == 0)
        fn(s);
    release(s);
}

/* The same, but then_fn runs even if something failed. */
static void step_always(struct simap *s, step_fn fn, step_fn then_fn)
{
    s->next = then_fn;
    s->next_on_fail = true;
    hold(s);
    if (s->rc == 0)
        fn(s);
    release(s);
}

static void fail(struct simap *s, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct simap *s, int rc, const char *fmt, ...)
{
    for (int i = 0; i < 2; i++) {
        struct imap_conn *c = s->side[i].conn;
        if (c && (imap_conn_error(c) || imap_conn_state(c) == IMAP_CONN_CLOSED))
            s->res.conn_failed = true;
    }
    if (s->rc < 0)
        return;
    s->rc = rc < 0 ? rc : -EIO;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->res.error, sizeof s->res.error, fmt, ap);
    va_end(ap);
}

/* A failed command on side d: the server's words, or the connection's. */
static void fail_cmd(struct side *d, int st, const struct imap_result *res, const char *what)
{
    if (st != OIMAP_ENO && st != OIMAP_EBAD)
        d->s->res.conn_failed = true;
    fail(d->s, st, "%s (%s server): %s", what, d->what,
         res && res->text && *res->text ? res->text : err_str(st));
}

static struct status_txn *txn_open(struct simap *s)
{
    struct status_txn *t = NULL;
    int rc = status_txn_begin(s->job.base.status, &t);
    if (rc < 0)
        fail(s, rc, "status store: %s", err_str(rc));
    return t;
}

/* Commit t when rc is 0, else abort it; either way it is gone. */
static void txn_close(struct simap *s, struct status_txn **t, int rc)
{
    if (rc == 0)
        rc = status_txn_commit(t);
    else
        status_txn_abort(t);
    if (rc < 0)
        fail(s, rc, "status store: %s", err_str(rc));
}

/* ---- small helpers -------------------------------------------------------- */

static ptrdiff_t side_find(const struct side *d, uint32_t uid)
{
    size_t lo = 0, hi = d->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->v[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return uid && lo < d->n && d->v[lo].uid == uid ? (ptrdiff_t)lo : -1;
}

static int cmp_smsg(const void *a, const void *b)
{
    uint32_t x = ((const struct smsg *)a)->uid, y = ((const struct smsg *)b)->uid;
    return x < y ? -1 : x > y;
}

static uint64_t side_size(const struct side *d, uint32_t uid)
{
    ptrdiff_t i = side_find(d, uid);
    return i >= 0 ? d->v[i].size : 0;
}

/* A status record as plan.h describes it: {far, near} paired, {far, 0}
 * far-only, {0, near} near-only (status.h's key of its own). */
static int rec_put(struct simap *s, struct status_txn *t, uint32_t far, uint32_t near,
                   plan_flags_t flags, uint64_t size)
{
    struct status_msg m = {
        .remote_uid = far,
        .local_uid = near,
        .flags = flags,
        .size = size,
        .state = far && near ? STATUS_MSG_PAIRED
                 : far       ? STATUS_MSG_LOCAL_GONE
                             : STATUS_MSG_REMOTE_GONE,
    };
    if (!far) {
        /* the pair it was becomes a near-only record: one holder per UID */
        int rc = status_txn_msg_del_local(t, s->frec.id, near);
        if (rc < 0 && rc != -ENOENT)
            return rc;
    }
    return status_txn_msg_put(t, s->frec.id, &m);
}

static int rec_forget(struct simap *s, struct status_txn *t, uint32_t far, uint32_t near)
{
    int rc = far ? status_txn_msg_del(t, s->frec.id, far)
                 : status_txn_msg_del_local(t, s->frec.id, near);
    return rc == -ENOENT ? 0 : rc;
}

static int intent_drop(struct simap *s, struct status_txn *t, uint64_t id)
{
    int rc = status_txn_intent_del(t, s->frec.id, id);
    return rc == -ENOENT ? 0 : rc;
}

/* ---- the end ---------------------------------------------------------------- */

static void free_ctx(struct simap *s)
{
    for (int i = 0; i < s->nkw; i++)
        free(s->kwnames[i]);
    for (int i = 0; i < 2; i++) {
        for (size_t k = 0; k < s->side[i].n; k++)
            free(s->side[i].v[k].kw);
        free(s->side[i].v);
    }
    free(s->smsgs);
    free(s->in);
    free(s->pfar);
    free(s->pnear);
    free(s->precs);
    free(s->pin);
    free(s->cv);
    free(s->xv);
    plan_free(&s->plan);
    free(s);
}

static void finish(struct simap *s)
{
    if (s->rc == 0 && s->guard_rc < 0) {
        s->rc = s->guard_rc;
        snprintf(s->res.error, sizeof s->res.error, "%s", s->guard_msg);
    }
    s->res.status = s->rc;
    if (s->rc < 0)
        LOG_DEBUG(LOGC_SYNC, "%s", s->res.error);
    else
        LOG_DEBUG(LOGC_SYNC, "%s/%s done", s->acct, s->job.base.remote_name);
    sync_folder_cb cb = s->cb;
    void *arg = s->arg;
    struct sync_result res = s->res;
    free_ctx(s);
    cb(&res, arg);
}

/* ---- 1. select both sides, load the status ----------------------------------- */

static void select_near(struct simap *s);
static void list_both(struct simap *s);

static int load_intent(const struct status_intent *si, void *arg)
{
    struct simap *s = arg;
    if (si->kind != STATUS_INTENT_APPEND)
        return 0;
    if (s->nin == s->capin) {
        size_t cap = s->capin ? 2 * s->capin : 16;
        struct intent *a = realloc(s->in, cap * sizeof *a);
        if (!a)
            return -ENOMEM;
        s->in = a;
        s->capin = cap;
    }
    struct intent *it = &s->in[s->nin++];
    *it = (struct intent){
        .id = si->id,
        .dst = si->side == STATUS_LOCAL ? PLAN_NEAR : PLAN_FAR,
        .src_uid = si->src_uid,
        .flags = si->flags,
        .time = si->time,
    };
    snprintf(it->tuid, sizeof it->tuid, "%s", si->tuid ? si->tuid : "");
    return 0;
}

/* ---- keywords: bit i of the plan's flags is the folder's i-th keyword ---- */

static int kw_add(struct simap *s, const char *name, size_t len)
{
    if (!(s->kwnames[s->nkw] = strndup(name, len)))
        return -ENOMEM;
    s->kw[s->nkw] = s->kwnames[s->nkw];
    s->nkw++;
    return 0;
}

static int load_keywords(struct simap *s)
{
    char *names;
    size_t len;
    int rc = status_folder_keywords(s->job.base.status, s->frec.id, &names, &len);
    for (size_t o = 0; rc == 0 && o < len && s->nkw < STATUS_KEYWORDS_MAX;) {
        size_t n = strlen(names + o);
        rc = kw_add(s, names + o, n);
        o += n + 1;
    }
    free(names);
    return rc;
}

/* Give the keywords of a listed message that have no bit yet the next free
 * ones (a keyword beyond the 26th is still copied, its changes not synced). */
static int kw_learn(struct simap *s, const struct imap_fetch *f)
{
    for (const struct imap_token *t = f->n_keywords ? f->flag_list : NULL; t;
         t = imap_tok_next(t)) {
        if (!t->str || !t->len || imap_flag_bit(t->str, t->len) ||
            (t->len == 10 && strncasecmp(t->str, "$Forwarded", 10) == 0))
            continue;
        int i = 0;
        while (i < s->nkw && !(strlen(s->kw[i]) == t->len && memcmp(s->kw[i], t->str, t->len) == 0))
            i++;
        if (i < s->nkw || s->nkw == STATUS_KEYWORDS_MAX)
            continue;
        int rc = kw_add(s, t->str, t->len);
        if (rc < 0)
            return rc;
        s->kw_dirty = true;
    }
    return 0;
}

static int kw_store(struct simap *s, struct status_txn *t)
{
    size_t len = 0;
    for (int i = 0; i < s->nkw; i++)
        len += strlen(s->kw[i]) + 1;
    char *buf = malloc(len + 1), *p = buf;
    if (!buf)
        return -ENOMEM;
    for (int i = 0; i < s->nkw; i++)
        p = stpcpy(p, s->kw[i]) + 1;
    int rc = status_txn_folder_keywords_put(t, s->frec.id, buf, len);
    free(buf);
    return rc;
}

static int load_status(struct simap *s)
{
    const struct sync_folder_job *j = &s->job.base;
    int rc = status_folder_lookup(j->status, j->local_name, j->remote_name, &s->frec);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    s->have_frec = true;
    if ((rc = load_keywords(s)) < 0 ||
        (rc = status_msg_load(j->status, s->frec.id, &s->smsgs, &s->nsmsgs)) < 0 ||
        (rc = status_intent_foreach(j->status, s->frec.id, load_intent, s)) < 0)
        return rc;
    if (!(s->frec.flags & SYNC_FOLDER_IMAP_NEAR) && (s->nsmsgs || s->nin)) {
        /* Pairs recorded against a Maildir (local UID = remote UID) would be
         * taken for the local server's UIDs: wrong pairs, wrong deletions. */
        fail(s, OIMAP_ESTATUS,
             "the status store knows this folder pair from a sync with a Maildir; it cannot "
             "be reused with an IMAP local repository (use another account name, or remove "
             "the pair from the status store)");
    }
    return 0;
}

static void on_select_far(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct side *d = arg;
    struct simap *s = d->s;
    (void)c;
    if (st < 0) {
        fail_cmd(d, st, res, "cannot select the remote folder");
    } else if (!res->folder || !res->folder->uidvalidity) {
        fail(s, OIMAP_EPROTO, "the remote server sent no UIDVALIDITY");
    } else {
        d->fi = *res->folder;
        int rc = load_status(s);
        if (rc < 0)
            fail(s, rc, "cannot read the status store: %s", err_str(rc));
        s->next = select_near;
    }
    release(s);
}

static void on_created(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct side *d = arg;
    (void)c;
    if (st < 0 && !(res && res->code == IMAP_CODE_ALREADYEXISTS))
        fail_cmd(d, st, res, "cannot create the local folder");
    else
        log_info("%s: created folder %s on the local server", d->s->acct, d->name);
    d->s->next = select_near;
    release(d->s);
}

/* The local folder cannot be selected: create it when that is allowed and
 * safe, or report it. */
static void near_missing(struct side *d, int st, const struct imap_result *res)
{
    struct simap *s = d->s;
    const struct sync_folder_job *j = &s->job.base;
    if (s->nsmsgs) {
        /* plan.h: a missing folder is not an empty listing */
        fail(s, OIMAP_EGUARD,
             "the local folder %s cannot be selected (%s) but the status store knows %zu of its "
             "messages: nothing done (restore the folder, or remove it from the sync)",
             d->name, res && res->text && *res->text ? res->text : err_str(st), s->nsmsgs);
    } else if (!j->create_local || d->ro) {
        fail_cmd(d, st, res, "the local folder cannot be selected (createfolders is off)");
    } else if (j->dry_run) {
        d->missing = true; /* would be created: an empty listing */
        s->next = list_both;
    } else if (s->tried_create) {
        fail_cmd(d, st, res, "cannot select the local folder it created");
    } else {
        s->tried_create = true;
        int rc = imap_conn_create(d->conn, d->name, on_created, d);
        if (rc < 0)
            fail(s, rc, "CREATE %s: %s", d->name, err_str(rc));
        else
            hold(s);
    }
}

static void on_select_near(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct side *d = arg;
    struct simap *s = d->s;
    (void)c;
    if (st == OIMAP_ENO) {
        near_missing(d, st, res);
    } else if (st < 0) {
        fail_cmd(d, st, res, "cannot select the local folder");
    } else if (!res->folder || !res->folder->uidvalidity) {
        fail(s, OIMAP_EPROTO, "the local server sent no UIDVALIDITY");
    } else {
        d->fi = *res->folder;
        s->next = list_both;
    }
    release(s);
}

static int side_select(struct side *d, imap_done_cb done)
{
    struct imap_select_opts so = {.readonly = d->ro || d->s->job.base.dry_run};
    int rc = imap_conn_select(d->conn, d->name, &so, done, d);
    if (rc < 0)
        fail(d->s, rc, "cannot select the %s folder %s: %s", d->what, d->name, err_str(rc));
    else
        hold(d->s);
    return rc;
}

static void select_near(struct simap *s)
{
    side_select(&s->side[PLAN_NEAR], on_select_near);
}

/* ---- 2. list both sides ------------------------------------------------------ */

static void plan_step(struct simap *s);

/* The keywords of a FETCH (everything that is not a system flag), kept to
 * be copied with the message. */
static char *keywords_text(const struct imap_fetch *f)
{
    if (!f->n_keywords)
        return NULL;
    char buf[KW_TEXT_MAX + 1];
    size_t o = 0;
    for (const struct imap_token *t = f->flag_list; t; t = imap_tok_next(t)) {
        if (!t->str || !t->len || imap_flag_bit(t->str, t->len) || o + t->len + 1 > KW_TEXT_MAX)
            continue;
        if (o)
            buf[o++] = ' ';
        memcpy(buf + o, t->str, t->len);
        o += t->len;
    }
    buf[o] = 0;
    return o ? strdup(buf) : NULL;
}

static void on_list_msg(struct imap_conn *c, const struct imap_fetch *f, void *arg)
{
    struct side *d = arg;
    struct simap *s = d->s;
    (void)c;
    if (s->rc < 0 || !(f->present & IMAP_FETCH_UID))
        return;
    if (kw_learn(s, f) < 0) {
        fail(s, -ENOMEM, "out of memory");
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 256;
        struct smsg *a = realloc(d->v, cap * sizeof *a);
        if (!a) {
            fail(s, -ENOMEM, "out of memory");
            return;
        }
        d->v = a;
        d->cap = cap;
    }
    d->v[d->n++] = (struct smsg){
        .uid = f->uid,
        .flags = sync_fetch_flags(s->kw, f),
        .size = f->rfc822_size,
        .date = (int64_t)f->internaldate,
        .kw = keywords_text(f),
    };
}

static void on_listed(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct side *d = arg;
    (void)c;
    if (st < 0)
        fail_cmd(d, st, res, "listing the folder failed");
    else if (d->n > 1)
        qsort(d->v, d->n, sizeof *d->v, cmp_smsg);
    release(d->s);
}

static void list_setup(struct simap *s)
{
    for (int i = 0; i < 2 && s->rc == 0; i++) {
        struct side *d = &s->side[i];
        if (d->missing || d->fi.exists == 0)
            continue;
        int rc = imap_conn_fetch_list(d->conn, "1:*", NULL, on_list_msg, on_listed, d);
        if (rc < 0)
            fail(s, rc, "cannot list the %s folder: %s", d->what, err_str(rc));
        else
            hold(s);
    }
}

static void list_both(struct simap *s)
{
    LOG_DEBUG(LOGC_SYNC, "%s: remote uidvalidity %u exists %u, local uidvalidity %u exists %u",
              s->job.base.remote_name, s->side[PLAN_FAR].fi.uidvalidity,
              s->side[PLAN_FAR].fi.exists, s->side[PLAN_NEAR].fi.uidvalidity,
              s->side[PLAN_NEAR].fi.exists);
    step(s, list_setup, plan_step);
}

/* ---- 3. plan (intents looked up first) -------------------------------------- */

static void execute(struct simap *s);
static void report_dry(struct simap *s);
static void plan_lines(struct simap *s, bool info);

static int build_input(struct simap *s, struct plan_input *in)
{
    const struct side *far = &s->side[PLAN_FAR], *near = &s->side[PLAN_NEAR];
    free(s->pfar);
    free(s->pnear);
    free(s->precs);
    free(s->pin);
    s->pfar = calloc(far->n + 1, sizeof *s->pfar);
    s->pnear = calloc(near->n + 1, sizeof *s->pnear);
    s->precs = calloc(s->nsmsgs + 1, sizeof *s->precs);
    s->pin = calloc(s->nin + 1, sizeof *s->pin);
    if (!s->pfar || !s->pnear || !s->precs || !s->pin)
        return -ENOMEM;
    for (size_t i = 0; i < far->n; i++) {
        const struct smsg *m = &far->v[i];
        s->pfar[i] = (struct plan_far_msg){m->uid, m->flags, m->size, m->date};
    }
    for (size_t i = 0; i < near->n; i++) {
        const struct smsg *m = &near->v[i];
        s->pnear[i] = (struct plan_near_msg){m->uid, m->flags, true, m->size, m->date};
    }
    for (size_t i = 0; i < s->nsmsgs; i++)
        s->precs[i] = (struct plan_status_rec){s->smsgs[i].remote_uid, s->smsgs[i].local_uid,
                                               s->smsgs[i].flags};
    for (size_t i = 0; i < s->nin; i++) {
        const struct intent *it = &s->in[i];
        struct plan_intent *p = &s->pin[i];
        p->flags = it->flags;
        p->resolved = it->resolved;
        if (it->dst == PLAN_NEAR) {
            p->kind = PLAN_INTENT_DOWNLOAD;
            p->far_uid = it->src_uid;
            p->near_idx = it->resolved ? side_find(near, it->found) : -1;
        } else {
            p->kind = PLAN_INTENT_UPLOAD;
            p->far_uid = it->resolved ? it->found : 0;
            p->near_idx = side_find(near, it->src_uid);
        }
    }
    memset(in, 0, sizeof *in);
    in->far = s->pfar;
    in->nfar = far->n;
    in->near = s->pnear;
    in->nnear = near->n;
    in->status = s->precs;
    in->nstatus = s->nsmsgs;
    in->intents = s->pin;
    in->nintents = s->nin;
    if (s->have_frec) {
        in->state.far_uidvalidity_recorded = s->frec.uidvalidity[STATUS_REMOTE];
        in->state.near_uidvalidity_recorded = s->frec.uidvalidity[STATUS_LOCAL];
    }
    in->state.far_uidvalidity = far->fi.uidvalidity;
    in->state.near_uidvalidity = near->missing ? 0 : near->fi.uidvalidity;
    in->state.far_uidnext = far->fi.uidnext;

    const struct config_account *a = s->job.base.acct;
    struct plan_options *o = &in->opts;
    plan_options_init(o);
    o->near_is_maildir = false;
    o->far_readonly = far->ro;
    o->near_readonly = near->ro;
    o->propagate_far_deletes = a && a->remote ? a->remote->sync_deletes : true;
    o->propagate_near_deletes = a && a->local ? a->local->sync_deletes : true;
    o->expunge_far = a && a->remote ? a->remote->expunge : true;
    o->expunge_near = a && a->local ? a->local->expunge : true;
    o->max_size = s->job.base.max_size;
    o->min_date = s->job.base.min_date;
    o->allow_mass_delete = s->job.base.allow_mass_delete;
    return 0;
}

static void lookups_done(struct simap *s);
static void lookup_next(struct simap *s);

static void on_lookup(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct search *q = arg;
    struct simap *s = q->s;
    struct intent *it = &s->in[q->i];
    (void)c;
    free(q);
    if (st < 0) {
        fail_cmd(&s->side[it->dst], st, res, "UID SEARCH HEADER " SYNC_TUID_HEADER " failed");
    } else {
        /* Our marker is random: several hits mean the copy was copied on
         * that server; pair with the first, the others are mail of their own. */
        it->resolved = true;
        it->found = 0;
        for (size_t i = 0; i < res->n_uids; i++)
            if (!it->found || res->uids[i] < it->found)
                it->found = res->uids[i];
        LOG_DEBUG(LOGC_SYNC, "%s: intent %llu: TUID %s is %s UID %u", s->job.base.remote_name,
                  (unsigned long long)it->id, it->tuid, s->side[it->dst].what, it->found);
    }
    lookup_next(s);
    release(s);
}

/* One UID SEARCH at a time: an untagged SEARCH names no command. */
static void lookup_next(struct simap *s)
{
    while (s->rc == 0 && s->lk_next < s->plan->nlookups) {
        const struct plan_lookup *pl = &s->plan->lookups[s->lk_next++];
        struct intent *it = &s->in[pl->intent];
        const struct side *d = &s->side[pl->side];
        if (it->resolved)
            continue;
        if (!it->tuid[0] || d->missing) {
            it->resolved = true; /* no marker, or no folder: the copy cannot exist */
            it->found = 0;
            continue;
        }
        struct search *q = malloc(sizeof *q);
        int rc = q ? imap_conn_search_header(d->conn, SYNC_TUID_HEADER, it->tuid, on_lookup, q)
                   : -ENOMEM;
        if (rc < 0) {
            free(q);
            fail(s, rc, "cannot search for an interrupted copy: %s", err_str(rc));
            return;
        }
        *q = (struct search){s, pl->intent};
        hold(s);
        return;
    }
}

static void lookups_setup(struct simap *s)
{
    s->lk_next = 0;
    lookup_next(s);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct simap *s = h->data;
    lookups_setup(s);
    release(s);
}

static void on_recheck(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, on_timer_closed);
}

static void recheck_setup(struct simap *s)
{
    uv_timer_init(s->job.base.loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, on_recheck, RECHECK_MS, 0);
    hold(s);
}

/* As sync.c: an APPEND of a killed run may be stored only after our search,
 * so a recent intent whose copy was not found is searched for once more. */
static void lookups_done(struct simap *s)
{
    int64_t now = (int64_t)time(NULL);
    bool again = false;
    for (size_t i = 0; !s->rechecked && i < s->plan->nlookups; i++) {
        struct intent *it = &s->in[s->plan->lookups[i].intent];
        if (it->resolved && !it->found && it->tuid[0] && now - it->time < RECHECK_AGE &&
            !s->side[it->dst].missing) {
            it->resolved = false;
            again = true;
        }
    }
    if (again) {
        s->rechecked = true;
        step(s, recheck_setup, lookups_done);
        return;
    }
    plan_step(s);
}

static void plan_step(struct simap *s)
{
    struct plan_input in;
    int rc = build_input(s, &in);
    if (rc == 0) {
        plan_free(&s->plan);
        rc = plan_make(&in, &s->plan);
    }
    if (rc < 0) {
        fail(s, rc, "cannot plan the sync: %s", err_str(rc));
        return;
    }
    const struct plan *p = s->plan;
    if (p->nlookups) {
        if (s->looked_up) {
            fail(s, -EINVAL, "the planner asked for lookups twice");
            return;
        }
        s->looked_up = true;
        LOG_DEBUG(LOGC_SYNC, "%s: %zu interrupted copies to look up", s->job.base.remote_name,
                  p->nlookups);
        step(s, lookups_setup, lookups_done);
        return;
    }
    if (p->error) {
        int side = (p->uidvalidity_changed & (1u << PLAN_FAR)) ? PLAN_FAR : PLAN_NEAR;
        int ss = side == PLAN_FAR ? STATUS_REMOTE : STATUS_LOCAL;
        fail(s, OIMAP_EUIDVALIDITY,
             "the UIDVALIDITY of the %s folder %s changed (recorded %u, now %u): its UIDs no "
             "longer name the same messages, so nothing was synced or deleted",
             s->side[side].what, s->side[side].name, s->frec.uidvalidity[ss],
             s->side[side].fi.uidvalidity);
        return;
    }
    if (sync_guard_text(p, s->acct, s->guard_msg, sizeof s->guard_msg))
        s->guard_rc = OIMAP_EGUARD;
    if (log_debug_on(LOGC_SYNC))
        plan_lines(s, false);
    if (s->job.base.dry_run)
        report_dry(s);
    else
        execute(s);
}

/* ---- 4. report ---------------------------------------------------------------- */

/* "UIDs 1:3,7" of up to n UIDs, sorted in place. */
static void uids_line(uint32_t *u, size_t n, char *buf, size_t cap)
{
    sync_sort_uids(u, n);
    sync_uids_text(u, n, buf, cap);
}

static void plan_lines(struct simap *s, bool info)
{
    const struct plan *p = s->plan;
    size_t max = p->ndownloads + p->nuploads + p->nfar_deletes + p->nnear_deletes + p->nflags;
    uint32_t *u = malloc((max + 1) * sizeof *u);
    char set[1200];
    if (!u)
        return;
    const char *pre = info ? "[dry-run] " : "";
    const char *folder = s->job.base.remote_name;
    if (s->side[PLAN_NEAR].missing && info)
        log_info("%s%s: folder %s: would create the local folder %s", pre, s->acct, folder,
                 s->side[PLAN_NEAR].name);
    static const char *const what[6] = {
        "download",
        "upload",
        "delete remote",
        "delete local",
        "change flags of remote",
        "change flags of local",
    };
    for (int r = 0; r < 6; r++) {
        size_t k = 0;
        for (size_t i = 0; r == 0 && i < p->ndownloads; i++)
            u[k++] = p->downloads[i].far_uid;
        for (size_t i = 0; r == 1 && i < p->nuploads; i++)
            u[k++] = p->uploads[i].near_uid;
        for (size_t i = 0; r == 2 && i < p->nfar_deletes; i++)
            u[k++] = p->far_deletes[i].far_uid;
        for (size_t i = 0; r == 3 && i < p->nnear_deletes; i++)
            u[k++] = p->near_deletes[i].near_uid;
        for (size_t i = 0; r >= 4 && i < p->nflags; i++) {
            const struct plan_flag_update *f = &p->flags[i];
            if (r == 4 ? (f->far_add | f->far_remove) : (f->near_add | f->near_remove))
                u[k++] = r == 4 ? f->far_uid : f->near_uid;
        }
        if (!k)
            continue;
        uids_line(u, k, set, sizeof set);
        /* UIDs of the side they are on: remote for rows 0, 2, 4 */
        const char *on = r % 2 ? "local" : "remote";
        if (info)
            log_info("%s%s: folder %s: %s %zu messages: %s UIDs %s", pre, s->acct, folder, what[r],
                     k, on, set);
        else
            LOG_DEBUG(LOGC_SYNC, "%s: folder %s: %s %zu messages: %s UIDs %s", s->acct, folder,
                      what[r], k, on, set);
    }
    free(u);
    if (p->npairs && info)
        log_info("%s%s: folder %s: pair %zu messages found on both sides", pre, s->acct, folder,
                 p->npairs);
    if (s->guard_rc < 0 && info)
        log_info("%s%s: folder %s: %s", pre, s->acct, folder, s->guard_msg);
}

static void report_dry(struct simap *s)
{
    char line[512];
    sync_plan_counts(s->plan, &s->res);
    plan_lines(s, true);
    sync_result_line(s->acct, s->job.base.remote_name, &s->res, "[dry-run] ", line, sizeof line);
    log_info("%s", line);
}

/* ---- 5. execute ----------------------------------------------------------------
 * plan.h's "Executing a plan": 0/1 record UIDVALIDITYs, dropped intents and
 * record updates; 2 pairs; 3/4 copies to near, then to far; 5 flags; 6
 * deletions; then the folder record. */

static void copies_start(struct simap *s);
static void copy_batch(struct simap *s);
static void flags_step(struct simap *s);
static void deletes_step(struct simap *s);
static void final_commit(struct simap *s);

static void execute(struct simap *s)
{
    const struct plan *p = s->plan;
    sync_plan_counts(p, &s->res);
    s->res.downloaded = s->res.uploaded = 0; /* counted as they happen */
    if (s->have_frec && !p->record_uidvalidity && !p->ndrop_intents && !p->nrecs && !p->npairs &&
        !s->kw_dirty) {
        copies_start(s); /* nothing to record first (a resync): no commit */
        return;
    }
    struct status_txn *t = txn_open(s);
    if (!t)
        return;
    int rc = 0;
    if (!s->have_frec)
        rc = status_txn_folder_get_or_create(t, s->job.base.local_name, s->job.base.remote_name,
                                             &s->frec);
    if (rc == 0 && (p->record_uidvalidity || !s->have_frec)) {
        s->frec.flags |= SYNC_FOLDER_IMAP_NEAR;
        s->frec.uidvalidity[STATUS_REMOTE] = s->side[PLAN_FAR].fi.uidvalidity;
        s->frec.uidvalidity[STATUS_LOCAL] = s->side[PLAN_NEAR].fi.uidvalidity;
        rc = status_txn_folder_put(t, &s->frec);
    }
    /* Keyword names before any record that uses their bits (same commit). */
    if (rc == 0 && s->kw_dirty)
        rc = kw_store(s, t);
    for (size_t i = 0; rc == 0 && i < p->ndrop_intents; i++)
        rc = intent_drop(s, t, s->in[p->drop_intents[i]].id);
    for (size_t i = 0; rc == 0 && i < p->nrecs; i++) {
        const struct plan_rec_update *r = &p->recs[i];
        if (r->op == PLAN_REC_FORGET)
            rc = rec_forget(s, t, r->far_uid, r->near_uid);
        else if (r->op == PLAN_REC_KEEP_FAR)
            rc = rec_put(s, t, r->far_uid, 0, r->flags, side_size(&s->side[PLAN_FAR], r->far_uid));
        else
            rc = rec_put(s, t, 0, r->near_uid, r->flags,
                         side_size(&s->side[PLAN_NEAR], r->near_uid));
    }
    /* 2: pairs (resolved intents): both halves exist already. */
    for (size_t i = 0; rc == 0 && i < p->npairs; i++) {
        const struct plan_pair *pp = &p->pairs[i];
        rc = rec_put(s, t, pp->far_uid, pp->near_uid, pp->flags,
                     s->side[PLAN_NEAR].v[pp->near_idx].size);
        if (rc == 0 && pp->intent >= 0)
            rc = intent_drop(s, t, s->in[pp->intent].id);
    }
    txn_close(s, &t, rc);
    s->have_frec = s->rc == 0;
    if (s->rc == 0)
        copies_start(s);
}

/* -- 3/4: copies in batches: intents (one commit) -> streamed transfer ->
 * marker searches where no APPENDUID came -> one commit of the pairs. -- */

static size_t copies_total(const struct simap *s)
{
    return s->cdst == PLAN_NEAR ? s->plan->ndownloads : s->plan->nuploads;
}

static void copies_start(struct simap *s)
{
    const struct plan *p = s->plan;
    s->cdst = PLAN_NEAR;
    s->cnext = 0;
    s->done_msgs = 0;
    s->done_bytes = s->total_bytes = 0;
    for (size_t i = 0; i < p->ndownloads; i++)
        s->total_bytes += p->downloads[i].size;
    copy_batch(s);
}

static void copy_free_batch(struct simap *s)
{
    free(s->cv);
    free(s->xv);
    s->cv = NULL;
    s->xv = NULL;
    s->cn = 0;
}

static void on_copied(struct xfer_msg *m, const struct imap_result *res, void *arg)
{
    struct copy *cp = m->user;
    struct simap *s = arg;
    struct side *dst = &s->side[s->cdst];
    if (m->status == 0) {
        if (m->new_uid && (!m->new_uidvalidity || m->new_uidvalidity == dst->fi.uidvalidity))
            cp->dst_uid = m->new_uid;
        s->done_msgs++;
        s->done_bytes += m->size;
        log_progress(s->acct, s->job.base.remote_name, s->done_msgs, copies_total(s), s->done_bytes,
                     s->total_bytes);
    } else if (m->status < 0) {
        char what[160];
        snprintf(what, sizeof what, "copying %s UID %u to the %s folder failed",
                 s->side[1 - s->cdst].what, cp->src_uid, dst->what);
        fail_cmd(m->status == OIMAP_ENO || m->status == OIMAP_EBAD ? dst : &s->side[1 - s->cdst],
                 m->status, res, what);
    }
}

static void on_xfer_done(int st, void *arg)
{
    struct simap *s = arg;
    if (st < 0)
        fail(s, st, "copying messages to the %s folder stopped: %s", s->side[s->cdst].what,
             err_str(st));
    release(s);
}

static void copy_search_next(struct simap *s, size_t from);

static void on_copy_search(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct search *q = arg;
    struct simap *s = q->s;
    struct copy *cp = &s->cv[q->i];
    size_t next = q->i + 1;
    (void)c;
    free(q);
    if (st < 0) {
        fail_cmd(&s->side[s->cdst], st, res, "UID SEARCH for a copied message failed");
    } else {
        for (size_t i = 0; i < res->n_uids; i++)
            if (res->uids[i] > cp->dst_uid)
                cp->dst_uid = res->uids[i]; /* the newest: the one just appended */
        if (!cp->dst_uid)
            fail(s, OIMAP_EPROTO,
                 "the %s server accepted %s UID %u but it cannot be found by its %s header; it "
                 "will be looked up again next time",
                 s->side[s->cdst].what, s->side[1 - s->cdst].what, cp->src_uid, SYNC_TUID_HEADER);
    }
    copy_search_next(s, next);
    release(s);
}

/* Without UIDPLUS: find each copy by its marker, one search at a time. */
static void copy_search_next(struct simap *s, size_t from)
{
    for (size_t i = from; i < s->cn && s->rc == 0; i++) {
        if (s->xv[i].status != 0 || s->cv[i].dst_uid)
            continue;
        struct search *q = malloc(sizeof *q);
        int rc = q ? imap_conn_search_header(s->side[s->cdst].conn, SYNC_TUID_HEADER, s->cv[i].tuid,
                                             on_copy_search, q)
                   : -ENOMEM;
        if (rc < 0) {
            free(q);
            fail(s, rc, "UID SEARCH: %s", err_str(rc));
            return;
        }
        *q = (struct search){s, i};
        hold(s);
        return;
    }
}

static void copy_search_setup(struct simap *s)
{
    copy_search_next(s, 0);
}

/* Record what arrived, even after a failure (what is stored on the server
 * is paired now rather than looked up next time), then the next batch. */
static void copy_record(struct simap *s)
{
    struct status_txn *t = txn_open(s);
    int rc = 0;
    for (size_t i = 0; t && rc == 0 && i < s->cn; i++) {
        const struct copy *cp = &s->cv[i];
        int st = s->xv[i].status;
        if (st == 0 && cp->dst_uid) {
            uint32_t far = s->cdst == PLAN_NEAR ? cp->src_uid : cp->dst_uid;
            uint32_t near = s->cdst == PLAN_NEAR ? cp->dst_uid : cp->src_uid;
            rc = rec_put(s, t, far, near, cp->flags, s->xv[i].size);
            if (rc == 0)
                rc = intent_drop(s, t, cp->intent);
            if (rc == 0 && s->cdst == PLAN_NEAR)
                s->res.downloaded++;
            else if (rc == 0)
                s->res.uploaded++;
        } else if (st == XFER_GONE || st == OIMAP_ENO || st == OIMAP_EBAD) {
            /* nothing was stored: the source went, or the server said no */
            rc = intent_drop(s, t, cp->intent);
        }
        /* else its answer never came: the intent stays for the lookup */
    }
    if (t)
        txn_close(s, &t, rc);
    copy_free_batch(s);
    if (s->rc == 0)
        copy_batch(s);
}

static void copy_sent(struct simap *s)
{
    step_always(s, copy_search_setup, copy_record);
}

/* The intents, with their markers, are durable before the first APPEND. */
static int copy_intents(struct simap *s)
{
    struct status_txn *t = txn_open(s);
    if (!t)
        return s->rc;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s->cn; i++) {
        struct copy *cp = &s->cv[i];
        if ((rc = status_make_tuid(cp->tuid)) < 0)
            break;
        struct status_intent in = {
            .folder = s->frec.id,
            .kind = STATUS_INTENT_APPEND,
            .side = s->cdst == PLAN_NEAR ? STATUS_LOCAL : STATUS_REMOTE,
            .src_uid = cp->src_uid,
            .flags = cp->flags,
            .size = s->xv[i].size,
            .tuid = cp->tuid,
        };
        rc = status_txn_intent_put(t, &in);
        cp->intent = in.id;
        s->xv[i].prefix_len =
            (size_t)snprintf(cp->hdr, sizeof cp->hdr, "%s: %s\r\n", SYNC_TUID_HEADER, cp->tuid);
    }
    txn_close(s, &t, rc);
    return s->rc;
}

/* Batch [start, end) of the copies to cdst, from the source's listing. */
static int copy_fill(struct simap *s, size_t start, size_t end)
{
    const struct plan *p = s->plan;
    const struct side *src = &s->side[1 - s->cdst];
    s->cn = end - start;
    s->cv = calloc(s->cn, sizeof *s->cv);
    s->xv = calloc(s->cn, sizeof *s->xv);
    if (!s->cv || !s->xv)
        return -ENOMEM;
    for (size_t i = 0; i < s->cn; i++) {
        size_t k = start + i;
        size_t idx = s->cdst == PLAN_NEAR ? p->downloads[k].far_idx : p->uploads[k].near_idx;
        plan_flags_t fl = s->cdst == PLAN_NEAR ? p->downloads[k].flags : p->uploads[k].flags;
        const struct smsg *m = &src->v[idx];
        struct copy *cp = &s->cv[i];
        *cp = (struct copy){.s = s, .src_uid = m->uid, .flags = fl};
        s->xv[i] = (struct xfer_msg){
            .uid = m->uid,
            .flags = sync_imap_sys(fl),
            .keywords = m->kw,
            .date = (time_t)m->date,
            .prefix = cp->hdr,
            .user = cp,
            .size = m->size,
        };
    }
    return 0;
}

/* The next direction, or the end of the copies. */
static void copy_direction_done(struct simap *s)
{
    if (s->cdst == PLAN_FAR) {
        flags_step(s);
        return;
    }
    s->cdst = PLAN_FAR;
    s->cnext = 0;
    s->done_msgs = 0;
    s->done_bytes = s->total_bytes = 0;
    for (size_t i = 0; i < s->plan->nuploads; i++)
        s->total_bytes += s->plan->uploads[i].size;
    copy_batch(s);
}

static void copy_batch(struct simap *s)
{
    size_t total = copies_total(s);
    if (s->cnext >= total) {
        copy_direction_done(s);
        return;
    }
    size_t start = s->cnext, end = start;
    uint64_t bytes = 0;
    while (end < total && end - start < COPY_BATCH_MSGS) {
        uint64_t sz =
            s->cdst == PLAN_NEAR ? s->plan->downloads[end].size : s->plan->uploads[end].size;
        if (end > start && bytes + sz > COPY_BATCH_BYTES)
            break;
        bytes += sz;
        end++;
    }
    int rc = copy_fill(s, start, end);
    if (rc < 0) {
        fail(s, rc, "out of memory");
        return;
    }
    s->cnext = end;
    if (copy_intents(s) < 0)
        return;
    struct side *dst = &s->side[s->cdst], *src = &s->side[1 - s->cdst];
    static const struct xfer_cbs cbs = {on_copied, on_xfer_done};
    LOG_DEBUG(LOGC_SYNC, "%s: copying %zu %s messages to the %s side", s->job.base.remote_name,
              s->cn, src->what, dst->what);
    rc = xfer_start(src->conn, dst->conn, dst->name, s->xv, s->cn, NULL, &cbs, s);
    if (rc < 0) {
        fail(s, rc, "cannot copy messages: %s", err_str(rc));
        return; /* the intents stay: the next run looks them up */
    }
    hold(s);
    s->next = copy_sent;
    s->next_on_fail = true;
}

/* -- 5: flags: grouped UID STOREs on each side, then one commit. -- */

static void on_stored(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct side *d = arg;
    (void)c;
    if (st < 0)
        fail_cmd(d, st, res, "UID STORE failed");
    release(d->s);
}

/* UID STORE of sorted uids on side d, in command-line-sized chunks. */
static void side_store(struct side *d, const uint32_t *u, size_t n, bool add, plan_flags_t f)
{
    struct simap *s = d->s;
    char set[UIDSET_MAX], kw[512];
    unsigned sys = sync_imap_sys(f);
    sync_keywords_of(s->kw, f, kw, sizeof kw);
    while (n && (sys || kw[0]) && s->rc == 0) {
        size_t used = sync_uidset(u, n, set, sizeof set);
        int rc = imap_conn_store(d->conn, set, add, sys, kw[0] ? kw : NULL, on_stored, d);
        if (rc < 0) {
            fail(s, rc, "UID STORE: %s", err_str(rc));
            return;
        }
        hold(s);
        u += used;
        n -= used;
    }
}

static void flags_setup(struct simap *s)
{
    struct plan *p = s->plan;
    uint32_t *u = malloc((p->nflags + 1) * sizeof *u);
    if (!u) {
        fail(s, -ENOMEM, "out of memory");
        return;
    }
    for (int side = 0; side < 2; side++) {
        struct side *d = &s->side[side];
        plan_flags_sort(p, (enum plan_side)side);
        for (size_t i = 0; i < p->nflags && s->rc == 0;) {
            size_t e = plan_flags_group_end(p, (enum plan_side)side, i);
            const struct plan_flag_update *f = &p->flags[i];
            plan_flags_t add = side == PLAN_FAR ? f->far_add : f->near_add;
            plan_flags_t rm = side == PLAN_FAR ? f->far_remove : f->near_remove;
            for (size_t k = i; k < e; k++)
                u[k - i] = side == PLAN_FAR ? p->flags[k].far_uid : p->flags[k].near_uid;
            sync_sort_uids(u, e - i);
            if (add)
                side_store(d, u, e - i, true, add);
            if (rm)
                side_store(d, u, e - i, false, rm);
            i = e;
        }
    }
    free(u);
}

static void flags_commit(struct simap *s)
{
    const struct plan *p = s->plan;
    if (p->nflags) {
        struct status_txn *t = txn_open(s);
        int rc = 0;
        if (!t)
            return;
        for (size_t i = 0; rc == 0 && i < p->nflags; i++) {
            const struct plan_flag_update *f = &p->flags[i];
            rc = rec_put(s, t, f->far_uid, f->near_uid, f->synced,
                         side_size(&s->side[PLAN_FAR], f->far_uid));
        }
        txn_close(s, &t, rc);
    }
    if (s->rc == 0)
        deletes_step(s);
}

static void flags_step(struct simap *s)
{
    step(s, flags_setup, flags_commit);
}

/* -- 6: deletions: STORE +\Deleted, then UID EXPUNGE of exactly those UIDs,
 * on each side; then one commit. -- */

static const struct plan_delete *side_deletes(const struct simap *s, int side, size_t *n_r)
{
    *n_r = side == PLAN_FAR ? s->plan->nfar_deletes : s->plan->nnear_deletes;
    return side == PLAN_FAR ? s->plan->far_deletes : s->plan->near_deletes;
}

/* The UIDs on side of its deletions (only those to expunge, if so), sorted;
 * malloc'ed, NULL when none (or out of memory: then *n_r is 0 and s fails). */
static uint32_t *delete_uids(struct simap *s, int side, bool expunge_only, size_t *n_r)
{
    size_t n, k = 0;
    const struct plan_delete *d = side_deletes(s, side, &n);
    *n_r = 0;
    if (!n)
        return NULL;
    uint32_t *u = malloc(n * sizeof *u);
    if (!u) {
        fail(s, -ENOMEM, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (!expunge_only || d[i].expunge)
            u[k++] = side == PLAN_FAR ? d[i].far_uid : d[i].near_uid;
    sync_sort_uids(u, k);
    *n_r = k;
    return u;
}

static void deletes_setup(struct simap *s)
{
    for (int side = 0; side < 2 && s->rc == 0; side++) {
        size_t n;
        uint32_t *u = delete_uids(s, side, false, &n);
        if (n)
            side_store(&s->side[side], u, n, true, PLAN_F_DELETED);
        free(u);
    }
}

static void on_expunged(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct side *d = arg;
    (void)c;
    if (st < 0)
        fail_cmd(d, st, res, "EXPUNGE failed");
    release(d->s);
}

/* Without UIDPLUS a plain EXPUNGE removes every \Deleted message of the
 * folder: it is sent only when no other message is flagged \Deleted (one a
 * mail reader flagged must not vanish behind the user's back). */
static bool plain_expunge_ok(struct simap *s, struct side *d, const uint32_t *u, size_t n)
{
    size_t nd;
    side_deletes(s, d->id, &nd);
    for (size_t i = 0; n == nd && i < d->n; i++) {
        if (!(d->v[i].flags & PLAN_F_DELETED))
            continue;
        bool ours = false;
        for (size_t k = 0; k < n && !ours; k++)
            ours = u[k] == d->v[i].uid;
        if (!ours)
            n = 0;
    }
    if (n != nd)
        log_warn("%s: folder %s: the %s server has no UIDPLUS and other messages are flagged "
                 "\\Deleted: deleted messages are flagged, not expunged",
                 s->acct, s->job.base.remote_name, d->what);
    return n == nd;
}

static void expunge_setup(struct simap *s)
{
    for (int side = 0; side < 2 && s->rc == 0; side++) {
        struct side *d = &s->side[side];
        size_t n;
        uint32_t *u = delete_uids(s, side, true, &n);
        d->expunged = false;
        if (!n) {
            free(u);
            continue;
        }
        bool uidplus = imap_conn_has(d->conn, "UIDPLUS");
        if (uidplus || plain_expunge_ok(s, d, u, n)) {
            char set[UIDSET_MAX];
            d->expunged = true;
            for (size_t k = 0; k < n && s->rc == 0;) {
                size_t used = uidplus ? sync_uidset(u + k, n - k, set, sizeof set) : n;
                int rc = imap_conn_expunge(d->conn, uidplus ? set : NULL, on_expunged, d);
                if (rc < 0)
                    fail(s, rc, "EXPUNGE: %s", err_str(rc));
                else
                    hold(s);
                k += used;
            }
        }
        free(u);
    }
}

static void deletes_commit(struct simap *s)
{
    struct status_txn *t = NULL;
    int rc = 0;
    for (int side = 0; side < 2 && s->rc == 0; side++) {
        size_t n;
        const struct plan_delete *d = side_deletes(s, side, &n);
        const struct side *sd = &s->side[side];
        if (n && !t && !(t = txn_open(s)))
            return;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (d[i].expunge && sd->expunged)
                rc = rec_forget(s, t, d[i].far_uid, d[i].near_uid);
            else if (side == PLAN_FAR)
                rc = rec_put(s, t, d[i].far_uid, 0, d[i].flags, side_size(sd, d[i].far_uid));
            else
                rc = rec_put(s, t, 0, d[i].near_uid, d[i].flags, side_size(sd, d[i].near_uid));
        }
    }
    if (t)
        txn_close(s, &t, rc);
    if (s->rc == 0)
        final_commit(s);
}

static void deletes_stored(struct simap *s)
{
    step(s, expunge_setup, deletes_commit);
}

static void deletes_step(struct simap *s)
{
    step(s, deletes_setup, deletes_stored);
}

/* -- the folder record, once everything above is recorded -- */
static void final_commit(struct simap *s)
{
    struct status_folder f = s->frec;
    f.flags |= SYNC_FOLDER_IMAP_NEAR;
    for (int side = 0; side < 2; side++) {
        const struct side *d = &s->side[side];
        int ss = side == PLAN_FAR ? STATUS_REMOTE : STATUS_LOCAL;
        f.uidvalidity[ss] = d->fi.uidvalidity;
        f.uidnext[ss] = d->fi.uidnext;
        f.highestmodseq[ss] = d->fi.nomodseq ? 0 : d->fi.highestmodseq;
        for (size_t i = 0; i < d->n; i++)
            if (d->v[i].uid > f.max_uid[ss])
                f.max_uid[ss] = d->v[i].uid;
    }
    f.last_sync = (int64_t)time(NULL);
    /* A resync that found nothing new writes nothing (no commit, no fsync);
     * last_sync keeps the time of the last sync that changed something. */
    const struct status_folder *o = &s->frec;
    bool same = o->last_sync && o->flags == f.flags;
    for (int k = 0; k < 2; k++)
        same = same && o->uidvalidity[k] == f.uidvalidity[k] && o->uidnext[k] == f.uidnext[k] &&
               o->highestmodseq[k] == f.highestmodseq[k] && o->max_uid[k] == f.max_uid[k];
    if (!same) {
        struct status_txn *t = txn_open(s);
        if (!t)
            return;
        txn_close(s, &t, status_txn_folder_put(t, &f));
    }
    const struct sync_result *r = &s->res;
    if (s->rc == 0 && (r->downloaded || r->uploaded || r->deleted_far || r->deleted_near ||
                       r->flags_far || r->flags_near || r->paired || r->held_back)) {
        char line[512];
        sync_result_line(s->acct, s->job.base.remote_name, r, "", line, sizeof line);
        log_info("%s", line);
    }
}

/* ---- entry point ------------------------------------------------------------------ */

int sync_imap_folder(const struct sync_imap_job *job, sync_folder_cb cb, void *arg)
{
    const struct sync_folder_job *b = job ? &job->base : NULL;
    if (!b || !cb || !b->conn || !job->near_conn || !job->near_name || !b->status ||
        !b->remote_name || !b->local_name)
        return -EINVAL;
    if (b->dry_run && !status_is_readonly(b->status))
        return -EINVAL; /* --dry-run must not be able to write anything */
    struct simap *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->job = *job;
    s->cb = cb;
    s->arg = arg;
    const struct config_account *a = b->acct;
    s->acct = a && a->name ? a->name : "account";
    struct side *far = &s->side[PLAN_FAR], *near = &s->side[PLAN_NEAR];
    *far = (struct side){.s = s,
                         .id = PLAN_FAR,
                         .conn = b->conn,
                         .name = b->remote_name,
                         .what = "remote",
                         .ro = a && a->remote && a->remote->readonly};
    *near = (struct side){.s = s,
                          .id = PLAN_NEAR,
                          .conn = job->near_conn,
                          .name = job->near_name,
                          .what = "local",
                          .ro = a && a->local && a->local->readonly};
    struct imap_select_opts so = {.readonly = far->ro || b->dry_run};
    int rc = imap_conn_select(far->conn, far->name, &so, on_select_far, far);
    if (rc < 0) {
        free(s);
        return rc;
    }
    s->pending = 1;
    return 0;
}
