/* sync.c - execute the plan of one folder pair (see sync.h, plan.h).
 *
 * One struct sync_ctx per sync_folder() call drives a chain of phases on the
 * loop.  Each phase submits any number of asynchronous operations (IMAP
 * commands, Maildir jobs), counting them in ctx->pending, and names the
 * phase that runs when the count falls back to zero (ctx->next).  A failure
 * records the first error; no new work is started after it, and the folder
 * finishes once every operation already started has completed (so no
 * callback ever runs on a freed context).
 *
 * CRASH SAFETY (SYNC-SAFETY.md; the argument is plan.h's, the order of
 * effects and commits below is what it relies on):
 *   - A pairing is committed only after both halves are durable: downloads
 *     after repo_maildir_batch_commit() reported the files renamed into
 *     new/ or cur/ and the directories fsynced; uploads after the server's
 *     tagged OK of APPEND and the file's rename to U=<uid> was made durable
 *     (barrier).  (Invariant 1.)
 *   - Before a copy starts, an intent naming it is committed in one
 *     transaction per batch; the transaction recording the result deletes
 *     the intent.  An upload intent carries the TUID sent in the
 *     X-OIMAP-TUID header, so an interrupted APPEND is found again with
 *     UID SEARCH HEADER and never sent twice.  (Invariants 2, 3.)
 *   - A download intent into the Maildir is resolved from the listing: the
 *     file is delivered under its far UID (U=<uid>,FMD5=<folder>), so the
 *     planner finds it by name; no header lookup is needed on the near side.
 *   - Flag changes and deletions need no intent: the status record is the
 *     intent; it is rewritten only after both sides carry the change
 *     (STORE's tagged OK, Maildir renames/unlinks made durable by a
 *     barrier), and doing either again is harmless.
 *   - Nothing is written in --dry-run: EXAMINE, no Maildir folder created,
 *     the status store opened read-only (no transaction at all).
 *
 * Half records (plan.h) are stored in status.h's msgs table keyed by remote
 * uid: {far_uid, 0} as remote_uid = far_uid, local_uid = 0; {0, near_uid}
 * (Maildir: near_uid is a far UID that no longer exists on the server and is
 * never reused) as remote_uid = local_uid = near_uid with state
 * STATUS_MSG_REMOTE_GONE.
 */
#include "sync.h"

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
#include "maildir_name.h"
#include "plan.h"
#include "repo_maildir.h"
#include "status.h"

/* The marker header carried by every upload (SYNC-SAFETY invariant 3). */
#define SYNC_TUID_HEADER "X-OIMAP-TUID"

/* Bounds. */
#define DL_BATCH_MSGS 256           /* messages per download batch */
#define DL_BATCH_BYTES (32u << 20)  /* bytes per download batch */
#define DL_BATCHES_IN_FLIGHT 2      /* one fetching, one being made durable */
#define UL_BATCH_MSGS 64            /* APPENDs per upload batch */
#define UL_BATCH_BYTES (16u << 20)
#define UIDSET_MAX 4000             /* bytes of one UID set on a command line */
#define READ_BUF (256u << 10)
#define RECHECK_MS 1500             /* see lookups_done() */
#define RECHECK_AGE 600             /* seconds */

struct sync_ctx;
typedef void (*sync_phase_fn)(struct sync_ctx *c);

/* An open intent of the status store (APPEND kind; see status.h). */
struct sync_intent {
    uint64_t id;
    bool download;        /* side LOCAL: far -> Maildir; else Maildir -> far */
    uint32_t src_uid;     /* download: the far UID */
    uint32_t result_uid;  /* upload: APPENDUID when it was recorded */
    plan_flags_t flags;
    char tuid[STATUS_TUID_MAX + 1];
    char *name;           /* upload: the source file name */
    int64_t time;         /* when the intent was committed */
    bool resolved;        /* looked up on far */
    uint32_t found_uid;   /* ... with this result (0: absent) */
};

struct sync_lookup {
    struct sync_ctx *c;
    size_t intent;
};

struct sync_ctx {
    struct sync_folder_job job;
    sync_folder_cb cb;
    void *arg;
    struct sync_result res;
    const char *acct_name, *remote_repo, *local_repo;
    bool far_ro, near_ro;
    const char *kw[26];  /* customflag_<a..z> keywords, NULL if unmapped */
    uint32_t kw_letters; /* bit i: letter 'a'+i maps to a keyword */

    int pending;         /* operations in flight in the current phase */
    sync_phase_fn next;  /* what runs when pending falls to zero */
    int rc;              /* first error */
    bool finished;
    int guard_rc;        /* held deletions: reported once all else is done */
    char guard_msg[512];

    struct imap_folder_info fi;
    struct repo_maildir_folder *mf; /* NULL: local folder missing (dry-run) */
    bool local_missing;
    bool have_frec;
    struct status_folder frec;
    struct status_msg *smsgs;
    size_t nsmsgs;
    struct sync_intent *sin;
    size_t nin, capin;
    bool looked_up;

    struct plan_far_msg *far;
    size_t nfar, capfar;
    bool far_from_status;
    struct repo_maildir_listing *nl;
    struct plan_near_msg *near;
    struct plan_status_rec *recs;
    struct plan_intent *pin;
    struct plan *plan;

    /* execution */
    uint32_t folder_id;
    bool far_changed;
    size_t dl_next, dl_inflight, dl_done_msgs;
    bool dl_fetching;
    uint64_t dl_bytes_total, dl_bytes_done;
    size_t ul_next, ul_done_msgs;
    uint64_t ul_bytes_total, ul_bytes_done;
    struct sync_upload *ul; /* the current upload batch */
    size_t nul;
    uint32_t *tmp_uids;
    size_t ntmp;
    bool far_expunge_ok;
    size_t lk_next; /* next lookup / upload search (one at a time) */
    bool rechecked;
    uv_timer_t timer;
};

static void sync_log_plan(struct sync_ctx *c);
static void sync_guard_check(struct sync_ctx *c);
static void sync_report_dry(struct sync_ctx *c);
static void sync_execute(struct sync_ctx *c);

/* ---- helpers ----------------------------------------------------------------- */

static void sync_fail(struct sync_ctx *c, int rc, const char *fmt, ...)
{
    if (rc == OIMAP_ENO || rc == OIMAP_EBAD) {
        /* the server refused one command: the connection is still fine */
    } else if (rc < 0 && c->job.conn && (imap_conn_error(c->job.conn) ||
                                          imap_conn_state(c->job.conn) == IMAP_CONN_CLOSED)) {
        c->res.conn_failed = true;
    }
    if (c->rc < 0)
        return;
    c->rc = rc < 0 ? rc : -EIO;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* The runner prefixes "Account A: folder F: " when it logs this. */
    snprintf(c->res.error, sizeof c->res.error, "%s", msg);
}

/* A failed IMAP command: name what the server or the connection said. */
static void sync_fail_imap(struct sync_ctx *c, int st, const struct imap_result *res, const char *what)
{
    const char *text = res && res->text && *res->text ? res->text : err_str(st);
    if (st != OIMAP_ENO && st != OIMAP_EBAD)
        c->res.conn_failed = true;
    sync_fail(c, st, "%s: %s", what, text);
}

static void finish(struct sync_ctx *c);

static void sync_op_begin(struct sync_ctx *c)
{
    c->pending++;
}

/* One operation ended: when it was the last of the phase, run the next. */
static void sync_op_end(struct sync_ctx *c)
{
    if (--c->pending > 0)
        return;
    /* Run continuations here, in a loop, holding a guard count: one that
     * starts a phase leaves pending > 0; one that starts nothing falls
     * through to the next it named, or to the end.  Continuations never
     * call finish() themselves (it frees c). */
    for (;;) {
        sync_phase_fn fn = c->next;
        c->next = NULL;
        if (c->rc < 0 || !fn) {
            finish(c);
            return;
        }
        c->pending++;
        fn(c);
        if (--c->pending > 0)
            return;
    }
}

/* Start a phase: ops submitted by setup() are awaited, then next runs. */
static void sync_phase(struct sync_ctx *c, sync_phase_fn setup, sync_phase_fn next)
{
    c->next = next;
    sync_op_begin(c); /* guard: the phase cannot end while it is being set up */
    if (c->rc == 0)
        setup(c);
    sync_op_end(c);
}

static bool sync_is_machine(void)
{
    return log_current_ui() == LOG_UI_MACHINE;
}

static void sync_event(struct sync_ctx *c, const char *cmd, const char *fmt, ...)
{
    if (!sync_is_machine())
        return;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    log_event(cmd, c->acct_name, text);
}

/* "1:3,7,9:12" from sorted distinct uids, as many as fit in cap (at least
 * one when cap >= 24).  Returns how many uids were used. */
static size_t sync_uidset(const uint32_t *u, size_t n, char *buf, size_t cap)
{
    size_t i = 0, o = 0;
    buf[0] = 0;
    while (i < n && o + 24 < cap) {
        size_t j = i;
        while (j + 1 < n && u[j + 1] == u[j] + 1)
            j++;
        int w = j > i ? snprintf(buf + o, cap - o, "%s%u:%u", o ? "," : "", u[i], u[j])
                      : snprintf(buf + o, cap - o, "%s%u", o ? "," : "", u[i]);
        o += (size_t)w;
        i = j + 1;
    }
    return i;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void sync_sort_uids(uint32_t *u, size_t n)
{
    qsort(u, n, sizeof *u, cmp_u32);
}

/* IMAP <-> plan flags.  Keywords: $Forwarded is Maildir P; the others map to
 * Maildir letters through the local repository's customflag_<x> options;
 * keywords without a mapping are ignored (as offlineimap does). */
static unsigned sync_imap_sys(plan_flags_t f)
{
    unsigned r = 0;
    if (f & PLAN_F_DRAFT)
        r |= IMAP_FLAG_DRAFT;
    if (f & PLAN_F_FLAGGED)
        r |= IMAP_FLAG_FLAGGED;
    if (f & PLAN_F_ANSWERED)
        r |= IMAP_FLAG_ANSWERED;
    if (f & PLAN_F_SEEN)
        r |= IMAP_FLAG_SEEN;
    if (f & PLAN_F_DELETED)
        r |= IMAP_FLAG_DELETED;
    return r;
}

/* Keywords of f as "kw1 kw2" (empty string if none). */
static void sync_imap_keywords(const struct sync_ctx *c, plan_flags_t f, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = 0;
    if (f & PLAN_F_FORWARDED)
        o += (size_t)snprintf(buf + o, cap - o, "$Forwarded");
    for (int i = 0; i < 26 && o < cap; i++)
        if ((f & PLAN_F_KEYWORD(i)) && c->kw[i])
            o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? " " : "", c->kw[i]);
}

static plan_flags_t flags_from_fetch(const struct sync_ctx *c, const struct imap_fetch *f)
{
    plan_flags_t r = 0;
    if (f->flags & IMAP_FLAG_DRAFT)
        r |= PLAN_F_DRAFT;
    if (f->flags & IMAP_FLAG_FLAGGED)
        r |= PLAN_F_FLAGGED;
    if (f->flags & IMAP_FLAG_ANSWERED)
        r |= PLAN_F_ANSWERED;
    if (f->flags & IMAP_FLAG_SEEN)
        r |= PLAN_F_SEEN;
    if (f->flags & IMAP_FLAG_DELETED)
        r |= PLAN_F_DELETED;
    if (!f->n_keywords)
        return r;
    for (const struct imap_token *t = f->flag_list; t; t = imap_tok_next(t)) {
        if (!t->str || !t->len || imap_flag_bit(t->str, t->len))
            continue;
        if (t->len == 10 && strncasecmp(t->str, "$Forwarded", 10) == 0) {
            r |= PLAN_F_FORWARDED;
            continue;
        }
        for (int i = 0; i < 26; i++)
            if (c->kw[i] && strlen(c->kw[i]) == t->len && memcmp(c->kw[i], t->str, t->len) == 0)
                r |= PLAN_F_KEYWORD(i);
    }
    return r;
}

/* Maildir entry flags -> plan flags: standard letters, and the custom
 * letters that map to a keyword. */
static plan_flags_t sync_near_flags(const struct sync_ctx *c, const struct maildir_flags *mf)
{
    return (plan_flags_t)(mf->std & MAILDIR_FLAG_ALL) |
           ((plan_flags_t)(mf->custom & c->kw_letters) << 6);
}

/* The Maildir flags to write: entry's flags with plan bits added/removed;
 * custom letters without a mapping and unknown upper-case letters kept. */
static void sync_apply_near(const struct sync_ctx *c, struct maildir_flags *mf, plan_flags_t add,
                     plan_flags_t rm)
{
    mf->std = (uint8_t)((mf->std | (add & MAILDIR_FLAG_ALL)) & ~(rm & MAILDIR_FLAG_ALL));
    uint32_t kadd = (add >> 6) & c->kw_letters, krm = (rm >> 6) & c->kw_letters;
    mf->custom = (mf->custom | kadd) & ~krm;
}

static void sync_plan_to_maildir(const struct sync_ctx *c, plan_flags_t f, struct maildir_flags *mf)
{
    memset(mf, 0, sizeof *mf);
    mf->std = (uint8_t)(f & MAILDIR_FLAG_ALL);
    mf->custom = (f >> 6) & c->kw_letters;
}

/* The unique part of a Maildir file name: up to ',' or the info separator. */
static size_t sync_unique_len(const char *name)
{
    size_t n = strcspn(name, ",:!");
    return n;
}

/* ---- finishing -------------------------------------------------------------- */

static void ul_free_batch(struct sync_ctx *c);

static void free_ctx(struct sync_ctx *c)
{
    ul_free_batch(c);
    plan_free(&c->plan);
    repo_maildir_listing_free(&c->nl);
    repo_maildir_folder_free(&c->mf);
    free(c->far);
    free(c->near);
    free(c->recs);
    free(c->smsgs);
    for (size_t i = 0; i < c->nin; i++)
        free(c->sin[i].name);
    free(c->sin);
    free(c->pin);
    free(c);
}

static void finish(struct sync_ctx *c)
{
    if (c->finished)
        return;
    c->finished = true;
    if (c->rc == 0 && c->guard_rc < 0) {
        c->rc = c->guard_rc;
        snprintf(c->res.error, sizeof c->res.error, "%s", c->guard_msg);
    }
    c->res.status = c->rc;
    if (c->rc < 0) {
        LOG_DEBUG(LOGC_SYNC, "%s", c->res.error);
    } else {
        LOG_DEBUG(LOGC_SYNC, "%s/%s done", c->acct_name, c->job.remote_name);
    }
    sync_folder_cb cb = c->cb;
    void *arg = c->arg;
    struct sync_result res = c->res;
    free_ctx(c);
    cb(&res, arg);
}

/* ---- 1. select ---------------------------------------------------------------- */

static void on_local_open(int st, struct repo_maildir_folder *f, void *arg);
static void list_both(struct sync_ctx *c);

static void on_select(struct imap_conn *conn, int st, const struct imap_result *res, void *arg)
{
    struct sync_ctx *c = arg;
    (void)conn;
    if (st < 0) {
        sync_fail_imap(c, st, res, st == OIMAP_ENO ? "cannot select the remote folder"
                                                   : "SELECT failed");
    } else if (!res->folder || !res->folder->uidvalidity) {
        sync_fail(c, OIMAP_EPROTO, "the server sent no UIDVALIDITY");
    } else {
        c->fi = *res->folder;
        LOG_DEBUG(LOGC_SYNC,
                  "sync: %s: selected: uidvalidity %u uidnext %u exists %u highestmodseq %llu",
                  c->job.remote_name, c->fi.uidvalidity, c->fi.uidnext, c->fi.exists,
                  (unsigned long long)c->fi.highestmodseq);
        unsigned fl = (c->job.create_local && !c->job.dry_run) ? REPO_MAILDIR_CREATE : 0;
        int rc = repo_maildir_open(c->job.maildir, c->job.local_name, fl, on_local_open, c);
        if (rc < 0)
            sync_fail(c, rc, "cannot open the local folder %s: %s", c->job.local_name,
                      err_str(rc));
        else
            sync_op_begin(c);
    }
    sync_op_end(c);
}

/* Load the folder's status: record, messages, intents. */
static int load_intent(const struct status_intent *in, void *arg)
{
    struct sync_ctx *c = arg;
    if (in->kind != STATUS_INTENT_APPEND)
        return 0; /* not ours (sync.c writes APPEND intents only) */
    if (c->nin == c->capin) {
        size_t cap = c->capin ? c->capin * 2 : 16;
        void *a = realloc(c->sin, cap * sizeof *c->sin);
        if (!a)
            return -ENOMEM;
        c->sin = a;
        c->capin = cap;
    }
    struct sync_intent *s = &c->sin[c->nin];
    memset(s, 0, sizeof *s);
    s->id = in->id;
    s->download = in->side == STATUS_LOCAL;
    s->src_uid = in->src_uid;
    s->result_uid = in->result_uid;
    s->flags = in->flags;
    s->time = in->time;
    if (in->tuid)
        snprintf(s->tuid, sizeof s->tuid, "%s", in->tuid);
    if (in->name && !(s->name = strdup(in->name)))
        return -ENOMEM;
    c->nin++;
    return 0;
}

static int load_status(struct sync_ctx *c)
{
    int rc = status_folder_lookup(c->job.status, c->job.local_name, c->job.remote_name, &c->frec);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    c->have_frec = true;
    if ((rc = status_msg_load(c->job.status, c->frec.id, &c->smsgs, &c->nsmsgs)) < 0)
        return rc;
    return status_intent_foreach(c->job.status, c->frec.id, load_intent, c);
}

static void on_local_open(int st, struct repo_maildir_folder *f, void *arg)
{
    struct sync_ctx *c = arg;
    if (st == -ENOENT && !c->job.create_local) {
        sync_fail(c, st, "the local folder %s does not exist (createfolders is off)",
                  c->job.local_name);
    } else if (st == -ENOENT && c->job.dry_run) {
        c->local_missing = true; /* would be created: an empty listing */
    } else if (st < 0) {
        sync_fail(c, st, "cannot open the local folder %s: %s", c->job.local_name, err_str(st));
    } else {
        c->mf = f;
    }
    if (c->rc == 0) {
        int rc = load_status(c);
        if (rc < 0)
            sync_fail(c, rc, "cannot read the status store: %s", err_str(rc));
    }
    if (c->rc == 0 && c->local_missing && c->nsmsgs) {
        /* plan.h: a missing folder is not an empty listing. */
        sync_fail(c, OIMAP_EGUARD,
                  "the local folder %s has vanished but the status store knows %zu of its "
                  "messages: nothing done (restore the folder, or remove it from the sync)",
                  c->job.local_name, c->nsmsgs);
    }
    if (c->rc == 0)
        list_both(c);
    sync_op_end(c);
}

/* ---- 2. list both sides --------------------------------------------------------- */

static void plan_and_go(struct sync_ctx *c);

static int far_push(struct sync_ctx *c, const struct plan_far_msg *m)
{
    if (c->nfar == c->capfar) {
        size_t cap = c->capfar ? c->capfar * 2 : 256;
        void *a = realloc(c->far, cap * sizeof *c->far);
        if (!a)
            return -ENOMEM;
        c->far = a;
        c->capfar = cap;
    }
    c->far[c->nfar++] = *m;
    return 0;
}

static void on_list_msg(struct imap_conn *conn, const struct imap_fetch *f, void *arg)
{
    struct sync_ctx *c = arg;
    (void)conn;
    if (c->rc < 0 || !(f->present & IMAP_FETCH_UID))
        return;
    struct plan_far_msg m = {
        .uid = f->uid,
        .flags = flags_from_fetch(c, f),
        .size = f->rfc822_size,
        .date = (int64_t)f->internaldate,
    };
    if (far_push(c, &m) < 0)
        sync_fail(c, -ENOMEM, "out of memory");
}

static void on_list_done(struct imap_conn *conn, int st, const struct imap_result *res, void *arg)
{
    struct sync_ctx *c = arg;
    (void)conn;
    if (st < 0)
        sync_fail_imap(c, st, res, "listing the remote folder failed");
    sync_op_end(c);
}

static void on_scan(int st, struct repo_maildir_listing *l, void *arg)
{
    struct sync_ctx *c = arg;
    if (st < 0)
        sync_fail(c, st, "cannot read the local folder %s: %s", c->job.local_name, err_str(st));
    else
        c->nl = l;
    sync_op_end(c);
}

/* CONDSTORE: when the server's HIGHESTMODSEQ and UIDNEXT are those recorded
 * after the last sync, and it holds exactly the messages the status knows,
 * nothing changed on the far side: its listing is the status (no FETCH). */
static bool far_unchanged(struct sync_ctx *c)
{
    if (!c->have_frec || !c->fi.highestmodseq || c->fi.nomodseq || !c->frec.last_sync ||
        c->frec.uidvalidity[STATUS_REMOTE] != c->fi.uidvalidity ||
        c->frec.highestmodseq[STATUS_REMOTE] != c->fi.highestmodseq ||
        c->frec.uidnext[STATUS_REMOTE] != c->fi.uidnext)
        return false;
    size_t n = 0;
    for (size_t i = 0; i < c->nsmsgs; i++)
        if (c->smsgs[i].state != STATUS_MSG_REMOTE_GONE)
            n++;
    return n == c->fi.exists;
}

static void list_setup(struct sync_ctx *c)
{
    int rc;
    if (far_unchanged(c)) {
        LOG_DEBUG(LOGC_SYNC, "%s: HIGHESTMODSEQ unchanged: remote listing from the status",
                  c->job.remote_name);
        for (size_t i = 0; i < c->nsmsgs && c->rc == 0; i++) {
            const struct status_msg *s = &c->smsgs[i];
            if (s->state == STATUS_MSG_REMOTE_GONE)
                continue;
            struct plan_far_msg m = {.uid = s->remote_uid, .flags = s->flags, .size = s->size};
            if (far_push(c, &m) < 0)
                sync_fail(c, -ENOMEM, "out of memory");
        }
        c->far_from_status = true;
    } else if (c->fi.exists > 0) {
        rc = imap_conn_fetch_list(c->job.conn, "1:*", NULL, on_list_msg, on_list_done, c);
        if (rc < 0)
            sync_fail(c, rc, "cannot list the remote folder: %s", err_str(rc));
        else
            sync_op_begin(c);
    }
    if (c->mf) {
        rc = repo_maildir_scan(c->mf, c->job.max_size ? REPO_MAILDIR_SCAN_SIZES : 0, on_scan, c);
        if (rc < 0)
            sync_fail(c, rc, "cannot read the local folder: %s", err_str(rc));
        else
            sync_op_begin(c);
    }
}

static void list_both(struct sync_ctx *c)
{
    sync_event(c, "loadmessagelist", "%s\n%s", c->remote_repo, c->job.remote_name);
    sync_phase(c, list_setup, plan_and_go);
}

/* ---- 3. plan ------------------------------------------------------------------------ */

static int64_t name_time(const char *name)
{
    int64_t t = 0;
    for (; *name >= '0' && *name <= '9' && t < ((int64_t)1 << 40); name++)
        t = t * 10 + (*name - '0');
    return t;
}

static int build_input(struct sync_ctx *c, struct plan_input *in)
{
    size_t nn = c->nl ? c->nl->n : 0;
    free(c->near);
    free(c->recs);
    free(c->pin);
    c->near = calloc(nn ? nn : 1, sizeof *c->near);
    c->recs = calloc(c->nsmsgs ? c->nsmsgs : 1, sizeof *c->recs);
    c->pin = calloc(c->nin ? c->nin : 1, sizeof *c->pin);
    if (!c->near || !c->recs || !c->pin)
        return -ENOMEM;
    for (size_t i = 0; i < nn; i++) {
        const struct repo_maildir_entry *e = &c->nl->v[i];
        c->near[i] = (struct plan_near_msg){
            .uid = e->uid,
            .flags = sync_near_flags(c, &e->flags),
            .uid_trusted = e->uid && e->fmd5_ok,
            .size = e->has_size ? e->size : 0,
            .date = name_time(e->name),
        };
    }
    for (size_t i = 0; i < c->nsmsgs; i++) {
        const struct status_msg *s = &c->smsgs[i];
        if (s->state == STATUS_MSG_REMOTE_GONE)
            c->recs[i] = (struct plan_status_rec){0, s->local_uid, s->flags};
        else
            c->recs[i] = (struct plan_status_rec){s->remote_uid, s->local_uid, s->flags};
    }
    for (size_t i = 0; i < c->nin; i++) {
        struct sync_intent *s = &c->sin[i];
        struct plan_intent *p = &c->pin[i];
        p->flags = s->flags;
        p->near_idx = -1;
        p->resolved = s->resolved;
        if (s->download) {
            p->kind = PLAN_INTENT_DOWNLOAD;
            p->far_uid = s->src_uid;
        } else {
            p->kind = PLAN_INTENT_UPLOAD;
            p->far_uid = s->resolved ? s->found_uid : s->result_uid;
            /* The source file, found by its unique part (a mail reader may
             * have renamed it to change flags since). */
            size_t ul = s->name ? sync_unique_len(s->name) : 0;
            for (size_t j = 0; ul && j < nn; j++) {
                const char *n = c->nl->v[j].name;
                if (sync_unique_len(n) == ul && memcmp(n, s->name, ul) == 0) {
                    p->near_idx = (ptrdiff_t)j;
                    break;
                }
            }
        }
    }
    memset(in, 0, sizeof *in);
    in->far = c->far;
    in->nfar = c->nfar;
    in->near = c->near;
    in->nnear = nn;
    in->status = c->recs;
    in->nstatus = c->nsmsgs;
    in->intents = c->pin;
    in->nintents = c->nin;
    in->state.far_uidvalidity_recorded = c->have_frec ? c->frec.uidvalidity[STATUS_REMOTE] : 0;
    in->state.far_uidvalidity = c->fi.uidvalidity;
    in->state.far_uidnext = c->fi.uidnext;

    struct plan_options *o = &in->opts;
    plan_options_init(o);
    const struct config_account *a = c->job.acct;
    o->near_is_maildir = true;
    o->far_readonly = c->far_ro;
    o->near_readonly = c->near_ro;
    o->propagate_far_deletes = a && a->remote ? a->remote->sync_deletes : true;
    o->propagate_near_deletes = a && a->local ? a->local->sync_deletes : true;
    o->expunge_far = a && a->remote ? a->remote->expunge : true;
    o->expunge_near = true;
    /* -q: far flags are not compared when the count and UIDNEXT are as
     * recorded (the man page's quick sync). */
    o->quick = c->job.quick && c->have_frec && c->frec.uidnext[STATUS_REMOTE] == c->fi.uidnext &&
               c->fi.exists == c->nfar;
    o->max_size = c->job.max_size;
    o->min_date = c->job.min_date;
    o->allow_mass_delete = c->job.allow_mass_delete;
    return 0;
}

static void lookups_done(struct sync_ctx *c);

static void lookup_next(struct sync_ctx *c);

static void on_lookup(struct imap_conn *conn, int st, const struct imap_result *res, void *arg)
{
    struct sync_lookup *l = arg;
    struct sync_ctx *c = l->c;
    (void)conn;
    if (st < 0) {
        sync_fail_imap(c, st, res, "UID SEARCH HEADER " SYNC_TUID_HEADER " failed");
    } else {
        struct sync_intent *s = &c->sin[l->intent];
        s->resolved = true;
        s->found_uid = 0;
        /* Our marker is random: several hits mean the message was copied on
         * the server; pair with one, the others are mail of their own. */
        for (size_t i = 0; i < res->n_uids; i++)
            if (!s->found_uid || res->uids[i] < s->found_uid)
                s->found_uid = res->uids[i];
        LOG_DEBUG(LOGC_SYNC, "%s: intent %llu: TUID %s is UID %u", c->job.remote_name,
                  (unsigned long long)s->id, s->tuid, s->found_uid);
    }
    free(l);
    lookup_next(c);
    sync_op_end(c);
}

/* One UID SEARCH at a time: an untagged SEARCH response names no command,
 * so pipelined searches could be answered out of turn. */
static void lookup_next(struct sync_ctx *c)
{
    while (c->rc == 0 && c->lk_next < c->plan->nlookups) {
        const struct plan_lookup *pl = &c->plan->lookups[c->lk_next++];
        struct sync_intent *s = &c->sin[pl->intent];
        if (s->resolved)
            continue;
        if (pl->side != PLAN_FAR || !s->tuid[0]) {
            /* No marker recorded: the copy cannot be found; say absent. */
            s->resolved = true;
            s->found_uid = 0;
            continue;
        }
        struct sync_lookup *l = calloc(1, sizeof *l);
        if (!l) {
            sync_fail(c, -ENOMEM, "out of memory");
            return;
        }
        l->c = c;
        l->intent = pl->intent;
        int rc = imap_conn_search_header(c->job.conn, SYNC_TUID_HEADER, s->tuid, on_lookup, l);
        if (rc < 0) {
            free(l);
            sync_fail(c, rc, "cannot search for an interrupted upload: %s", err_str(rc));
            return;
        }
        sync_op_begin(c);
        return;
    }
}

static void lookups_setup(struct sync_ctx *c)
{
    c->lk_next = 0;
    lookup_next(c);
}

static void run_plan(struct sync_ctx *c)
{
    struct plan_input in;
    int rc = build_input(c, &in);
    if (rc == 0) {
        plan_free(&c->plan);
        rc = plan_make(&in, &c->plan);
    }
    if (rc < 0) {
        sync_fail(c, rc, "cannot plan the sync: %s", err_str(rc));
        return;
    }
    if (c->plan->nlookups) {
        if (c->looked_up) {
            sync_fail(c, -EINVAL, "the planner asked for lookups twice");
            return;
        }
        c->looked_up = true;
        LOG_DEBUG(LOGC_SYNC, "%s: %zu interrupted uploads to look up", c->job.remote_name,
                  c->plan->nlookups);
        sync_phase(c, lookups_setup, lookups_done);
        return;
    }
    sync_log_plan(c);
    if (c->plan->error) {
        const char *side = (c->plan->uidvalidity_changed & (1u << PLAN_FAR)) ? "remote" : "local";
        sync_event(c, "validityproblem", "%s\n%s\n%u\n%u", c->job.remote_name, c->remote_repo,
                   c->frec.uidvalidity[STATUS_REMOTE], c->fi.uidvalidity);
        sync_fail(c, OIMAP_EUIDVALIDITY,
                  "the UIDVALIDITY of the %s folder changed (recorded %u, now %u): its UIDs no "
                  "longer name the same messages, so nothing was synced or deleted. If the "
                  "server really renumbered it, move the local folder %s aside and sync again "
                  "(then merge by hand)",
                  side, c->frec.uidvalidity[STATUS_REMOTE], c->fi.uidvalidity,
                  c->job.local_name);
        return;
    }
    sync_guard_check(c);
    if (c->job.dry_run) {
        sync_report_dry(c);
        return;
    }
    sync_execute(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct sync_ctx *c = h->data;
    c->lk_next = 0;
    lookup_next(c);
    sync_op_end(c);
}

static void on_recheck_timer(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, on_timer_closed);
}

static void recheck_setup(struct sync_ctx *c)
{
    uv_timer_init(c->job.loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, on_recheck_timer, RECHECK_MS, 0);
    sync_op_begin(c);
}

/* An APPEND of a killed run may still be in the server's input buffer and
 * be stored only after our search (the server's process for the dead
 * connection finishes its pipelined commands on its own time).  So a recent
 * upload intent whose copy was not found is searched for once more after a
 * pause before it is given up and the message uploaded again. */
static void lookups_done(struct sync_ctx *c)
{
    int64_t now = (int64_t)time(NULL);
    bool again = false;
    for (size_t i = 0; !c->rechecked && i < c->plan->nlookups; i++) {
        struct sync_intent *s = &c->sin[c->plan->lookups[i].intent];
        if (s->resolved && !s->found_uid && s->tuid[0] && now - s->time < RECHECK_AGE) {
            s->resolved = false;
            again = true;
        }
    }
    if (again) {
        c->rechecked = true;
        LOG_DEBUG(LOGC_SYNC, "%s: recent uploads not found: searching again in %d ms",
                  c->job.remote_name, RECHECK_MS);
        sync_phase(c, recheck_setup, lookups_done);
        return;
    }
    run_plan(c);
}

static void plan_and_go(struct sync_ctx *c)
{
    sync_event(c, "messagelistloaded", "%s\n%s\n%zu", c->remote_repo, c->job.remote_name,
               c->nfar);
    LOG_DEBUG(LOGC_SYNC, "%s: %zu remote, %zu local, %zu in status, %zu intents",
              c->job.remote_name, c->nfar, c->nl ? c->nl->n : 0, c->nsmsgs, c->nin);
    run_plan(c);
}

/* ---- entry point ---------------------------------------------------------------------- */

int sync_folder(const struct sync_folder_job *job, sync_folder_cb cb, void *arg)
{
    if (!job || !cb || !job->conn || !job->maildir || !job->status || !job->remote_name ||
        !job->local_name)
        return -EINVAL;
    if (job->dry_run && !status_is_readonly(job->status))
        return -EINVAL; /* --dry-run must not be able to write anything */
    struct sync_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->job = *job;
    c->cb = cb;
    c->arg = arg;
    const struct config_account *a = job->acct;
    c->acct_name = a && a->name ? a->name : "account";
    c->remote_repo = a && a->remote && a->remote->name ? a->remote->name : "remote";
    c->local_repo = a && a->local && a->local->name ? a->local->name : "local";
    c->far_ro = a && a->remote && a->remote->readonly;
    c->near_ro = a && a->local && a->local->readonly;
    for (int i = 0; i < 26; i++) {
        c->kw[i] = a && a->local ? a->local->customflag[i] : NULL;
        if (c->kw[i] && *c->kw[i])
            c->kw_letters |= 1u << i;
        else
            c->kw[i] = NULL;
    }
    struct imap_select_opts so = {
        .readonly = c->far_ro || job->dry_run,
        .condstore = true,
    };
    int rc = imap_conn_select(job->conn, job->remote_name, &so, on_select, c);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->pending = 1;
    c->next = NULL; /* on_select chains the phases itself */
    return 0;
}

/* ---- reporting ------------------------------------------------------------------------ */

/* Up to max UIDs of a list as a UID set, "..." when cut. */
static void uids_text(const uint32_t *u, size_t n, char *buf, size_t cap)
{
    size_t used = sync_uidset(u, n, buf, cap > 16 ? cap - 8 : cap);
    if (used < n)
        snprintf(buf + strlen(buf), cap - strlen(buf), ",...");
}

static size_t count_flag_side(const struct plan *p, enum plan_side side)
{
    size_t n = 0;
    for (size_t i = 0; i < p->nflags; i++) {
        const struct plan_flag_update *f = &p->flags[i];
        if (side == PLAN_FAR ? (f->far_add | f->far_remove) : (f->near_add | f->near_remove))
            n++;
    }
    return n;
}

static void fill_counts(struct sync_ctx *c)
{
    const struct plan *p = c->plan;
    c->res.downloaded = p->ndownloads;
    c->res.uploaded = p->nuploads;
    c->res.paired = p->npairs;
    c->res.flags_far = count_flag_side(p, PLAN_FAR);
    c->res.flags_near = count_flag_side(p, PLAN_NEAR);
    c->res.deleted_far = p->nfar_deletes;
    c->res.deleted_near = p->nnear_deletes;
    c->res.held_back = p->held[0].count + p->held[1].count;
    c->res.bytes_down = 0;
    for (size_t i = 0; i < p->ndownloads; i++)
        c->res.bytes_down += p->downloads[i].size;
    c->res.bytes_up = 0;
    for (size_t i = 0; i < p->nuploads; i++)
        c->res.bytes_up += p->uploads[i].size;
}

/* One line: "folder F: download 3, upload 1, ..." (counts only). */
static void summary_line(const struct sync_ctx *c, const char *prefix, char *buf, size_t cap)
{
    const struct sync_result *r = &c->res;
    snprintf(buf, cap,
             "%s%s: folder %s: download %zu, upload %zu, delete-remote %zu, delete-local %zu, "
             "flags-remote %zu, flags-local %zu, pair %zu, held-back %zu",
             prefix, c->acct_name, c->job.remote_name, r->downloaded, r->uploaded, r->deleted_far,
             r->deleted_near, r->flags_far, r->flags_near, r->paired, r->held_back);
}

/* The plan, in full, for --dry-run (info) and -d sync (debug). */
static void plan_lines(struct sync_ctx *c, bool info)
{
    const struct plan *p = c->plan;
    size_t n = p->ndownloads + p->nfar_deletes + p->nflags + 1;
    uint32_t *u = malloc(n * sizeof *u);
    char set[1200];
    const char *pre = info ? "[dry-run] " : "";
#define PL(...)                                                                                    \
    do {                                                                                           \
        if (info)                                                                                  \
            log_info(__VA_ARGS__);                                                                 \
        else                                                                                       \
            log_debug(LOGC_SYNC, __VA_ARGS__);                                                     \
    } while (0)
    if (!u)
        return;
    if (c->local_missing)
        PL("%s%s: folder %s: would create the local folder %s", pre, c->acct_name,
           c->job.remote_name, c->job.local_name);
    if (p->ndownloads) {
        for (size_t i = 0; i < p->ndownloads; i++)
            u[i] = p->downloads[i].far_uid;
        uids_text(u, p->ndownloads, set, sizeof set);
        PL("%s%s: folder %s: download %zu messages: UIDs %s", pre, c->acct_name,
           c->job.remote_name, p->ndownloads, set);
    }
    if (p->nuploads) {
        size_t o = 0;
        set[0] = 0;
        for (size_t i = 0; i < p->nuploads && o + 300 < sizeof set; i++)
            o += (size_t)snprintf(set + o, sizeof set - o, "%s%s", i ? " " : "",
                                  c->nl->v[p->uploads[i].near_idx].name);
        PL("%s%s: folder %s: upload %zu messages: %s%s", pre, c->acct_name, c->job.remote_name,
           p->nuploads, set, o + 300 >= sizeof set ? " ..." : "");
    }
    if (p->nfar_deletes) {
        for (size_t i = 0; i < p->nfar_deletes; i++)
            u[i] = p->far_deletes[i].far_uid;
        uids_text(u, p->nfar_deletes, set, sizeof set);
        PL("%s%s: folder %s: delete %zu remote messages: UIDs %s", pre, c->acct_name,
           c->job.remote_name, p->nfar_deletes, set);
    }
    if (p->nnear_deletes) {
        for (size_t i = 0; i < p->nnear_deletes; i++)
            u[i] = p->near_deletes[i].near_uid;
        sync_sort_uids(u, p->nnear_deletes);
        uids_text(u, p->nnear_deletes, set, sizeof set);
        PL("%s%s: folder %s: delete %zu local messages: UIDs %s", pre, c->acct_name,
           c->job.remote_name, p->nnear_deletes, set);
    }
    for (int side = 0; side < 2; side++) {
        size_t k = 0;
        for (size_t i = 0; i < p->nflags; i++) {
            const struct plan_flag_update *f = &p->flags[i];
            if (side == PLAN_FAR ? (f->far_add | f->far_remove) : (f->near_add | f->near_remove))
                u[k++] = f->far_uid;
        }
        if (!k)
            continue;
        sync_sort_uids(u, k);
        uids_text(u, k, set, sizeof set);
        PL("%s%s: folder %s: change flags of %zu %s messages: UIDs %s", pre, c->acct_name,
           c->job.remote_name, k, side == PLAN_FAR ? "remote" : "local", set);
    }
    if (p->npairs)
        PL("%s%s: folder %s: pair %zu messages found on both sides", pre, c->acct_name,
           c->job.remote_name, p->npairs);
    for (int s = 0; s < 2; s++)
        if (p->skipped[s].size || p->skipped[s].age || p->skipped[s].readonly)
            PL("%s%s: folder %s: not copied to the %s side: %zu too large, %zu too old, %zu "
               "readonly",
               pre, c->acct_name, c->job.remote_name, s == PLAN_FAR ? "remote" : "local",
               p->skipped[s].size, p->skipped[s].age, p->skipped[s].readonly);
    if (c->guard_rc < 0)
        PL("%s%s: folder %s: %s", pre, c->acct_name, c->job.remote_name, c->guard_msg);
#undef PL
    free(u);
}

static void sync_log_plan(struct sync_ctx *c)
{
    if (log_debug_on(LOGC_SYNC) && !c->plan->error)
        plan_lines(c, false);
}

static void sync_guard_check(struct sync_ctx *c)
{
    const struct plan *p = c->plan;
    for (int b = 0; b < 2; b++) {
        const struct plan_held *h = &p->held[b];
        if (!h->count)
            continue;
        const char *lost = b == PLAN_FAR ? "local" : "remote"; /* where they vanished */
        const char *keep = b == PLAN_FAR ? "remote" : "local";
        char acct[128];
        size_t i;
        for (i = 0; c->acct_name[i] && i + 1 < sizeof acct; i++)
            acct[i] = c->acct_name[i] == ' ' ? '_' : c->acct_name[i];
        acct[i] = 0;
        c->guard_rc = OIMAP_EGUARD;
        snprintf(c->guard_msg, sizeof c->guard_msg,
                 "%zu deletions held back by the mass-deletion guard: %s; the %s copies were "
                 "kept. If these deletions are wanted, let them through once with "
                 "-k Account_%s:deletion_guard=no",
                 h->count,
                 h->reason == PLAN_GUARD_EMPTY ? (b == PLAN_FAR ? "the local folder is empty"
                                                                : "the remote folder is empty")
                                               : (b == PLAN_FAR
                                                      ? "that many messages vanished locally"
                                                      : "that many messages vanished remotely"),
                 keep, acct);
        (void)lost;
    }
}

static void sync_report_dry(struct sync_ctx *c)
{
    char line[512];
    fill_counts(c);
    plan_lines(c, true);
    summary_line(c, "[dry-run] ", line, sizeof line);
    log_info("%s", line);
}

/* ---- 5. execute ------------------------------------------------------------------------ */

static struct status_txn *txn_begin(struct sync_ctx *c)
{
    struct status_txn *t = NULL;
    int rc = status_txn_begin(c->job.status, &t);
    if (rc < 0) {
        sync_fail(c, rc, "status store: %s", err_str(rc));
        return NULL;
    }
    return t;
}

static void txn_commit(struct sync_ctx *c, struct status_txn **t, int rc)
{
    if (rc < 0) {
        status_txn_abort(t);
        sync_fail(c, rc, "status store: %s", err_str(rc));
        return;
    }
    if ((rc = status_txn_commit(t)) < 0)
        sync_fail(c, rc, "status store: commit failed: %s", err_str(rc));
}

static const struct status_msg *find_smsg(const struct sync_ctx *c, uint32_t remote_uid)
{
    size_t lo = 0, hi = c->nsmsgs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c->smsgs[mid].remote_uid < remote_uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->nsmsgs && c->smsgs[lo].remote_uid == remote_uid ? &c->smsgs[lo] : NULL;
}

static uint64_t rec_size(const struct sync_ctx *c, uint32_t uid)
{
    const struct status_msg *m = find_smsg(c, uid);
    return m ? m->size : 0;
}

/* A record as plan.h describes it, in status.h's table (see the top). */
static int put_rec(struct sync_ctx *c, struct status_txn *t, uint32_t far_uid, uint32_t near_uid,
                   plan_flags_t flags, uint64_t size)
{
    struct status_msg m = {
        .remote_uid = far_uid ? far_uid : near_uid,
        .local_uid = near_uid,
        .flags = flags,
        .state = far_uid ? (near_uid ? STATUS_MSG_PAIRED : STATUS_MSG_LOCAL_GONE)
                         : STATUS_MSG_REMOTE_GONE,
        .size = size,
    };
    return status_txn_msg_put(t, c->folder_id, &m);
}

static int del_rec(struct sync_ctx *c, struct status_txn *t, uint32_t far_uid, uint32_t near_uid)
{
    int rc = status_txn_msg_del(t, c->folder_id, far_uid ? far_uid : near_uid);
    return rc == -ENOENT ? 0 : rc;
}

/* A Maildir rename/unlink of the near entry idx (flags, U=, delete). */
struct near_op {
    struct sync_ctx *c;
    size_t idx;
};

static void on_near_renamed(int st, const char *name, bool in_new, void *arg)
{
    struct near_op *op = arg;
    struct sync_ctx *c = op->c;
    struct repo_maildir_entry *e = &c->nl->v[op->idx];
    if (st < 0) {
        sync_fail(c, st, "cannot rename local message %s: %s", e->name, err_str(st));
    } else {
        char *n = strdup(name);
        if (!n) {
            sync_fail(c, -ENOMEM, "out of memory");
        } else {
            free(e->name);
            e->name = n;
            e->in_new = in_new;
        }
    }
    free(op);
    sync_op_end(c);
}

static struct near_op *near_op_new(struct sync_ctx *c, size_t idx)
{
    struct near_op *op = malloc(sizeof *op);
    if (!op) {
        sync_fail(c, -ENOMEM, "out of memory");
        return NULL;
    }
    op->c = c;
    op->idx = idx;
    return op;
}

static void near_set_uid(struct sync_ctx *c, size_t idx, uint32_t uid)
{
    struct near_op *op = near_op_new(c, idx);
    if (!op)
        return;
    const struct repo_maildir_entry *e = &c->nl->v[idx];
    int rc = repo_maildir_set_uid(c->mf, e->in_new, e->name, uid, REPO_MAILDIR_NOSYNC,
                                  on_near_renamed, op);
    if (rc < 0) {
        free(op);
        sync_fail(c, rc, "cannot rename local message %s: %s", e->name, err_str(rc));
        return;
    }
    sync_op_begin(c);
}

static void on_barrier(int st, void *arg)
{
    struct sync_ctx *c = arg;
    if (st < 0)
        sync_fail(c, st, "cannot make the local folder durable (fsync): %s", err_str(st));
    sync_op_end(c);
}

/* fsync new/ and cur/ once for all NOSYNC renames and unlinks before it. */
static void barrier_setup(struct sync_ctx *c)
{
    int rc = repo_maildir_barrier(c->mf, on_barrier, c);
    if (rc < 0)
        sync_fail(c, rc, "fsync: %s", err_str(rc));
    else
        sync_op_begin(c);
}

static void on_store(struct imap_conn *conn, int st, const struct imap_result *res, void *arg)
{
    struct sync_ctx *c = arg;
    (void)conn;
    if (st < 0)
        sync_fail_imap(c, st, res, "UID STORE failed");
    sync_op_end(c);
}

/* UID STORE of sorted uids, in command-line-sized chunks. */
static void far_store(struct sync_ctx *c, const uint32_t *u, size_t n, bool add, plan_flags_t f)
{
    char set[UIDSET_MAX], kw[512];
    unsigned sys = sync_imap_sys(f);
    sync_imap_keywords(c, f, kw, sizeof kw);
    if (!sys && !kw[0])
        return; /* nothing the server can carry */
    while (n && c->rc == 0) {
        size_t used = sync_uidset(u, n, set, sizeof set);
        int rc = imap_conn_store(c->job.conn, set, add, sys, kw[0] ? kw : NULL, on_store, c);
        if (rc < 0) {
            sync_fail(c, rc, "UID STORE: %s", err_str(rc));
            return;
        }
        sync_op_begin(c);
        c->far_changed = true;
        u += used;
        n -= used;
    }
}

/* -- 0/1: UIDVALIDITY, dropped intents, record updates; 2: pairs -- */

static void pairs_setup(struct sync_ctx *c);
static void pairs_renamed(struct sync_ctx *c);
static void downloads_start(struct sync_ctx *c);

static void sync_execute(struct sync_ctx *c)
{
    const struct plan *p = c->plan;
    struct status_txn *t = txn_begin(c);
    int rc = 0;
    if (!t) {
        return;
    }
    struct status_folder f;
    if (c->have_frec) {
        f = c->frec;
    } else {
        rc = status_txn_folder_get_or_create(t, c->job.local_name, c->job.remote_name, &f);
    }
    c->folder_id = f.id;
    if (rc == 0 && (p->record_uidvalidity || !c->have_frec)) {
        f.uidvalidity[STATUS_REMOTE] = c->fi.uidvalidity;
        rc = status_txn_folder_put(t, &f);
    }
    for (size_t i = 0; rc == 0 && i < p->ndrop_intents; i++) {
        rc = status_txn_intent_del(t, c->folder_id, c->sin[p->drop_intents[i]].id);
        rc = rc == -ENOENT ? 0 : rc;
    }
    for (size_t i = 0; rc == 0 && i < p->nrecs; i++) {
        const struct plan_rec_update *r = &p->recs[i];
        uint64_t size = rec_size(c, r->far_uid ? r->far_uid : r->near_uid);
        if (r->op == PLAN_REC_FORGET)
            rc = del_rec(c, t, r->far_uid, r->near_uid);
        else if (r->op == PLAN_REC_KEEP_FAR)
            rc = put_rec(c, t, r->far_uid, 0, r->flags, size);
        else
            rc = put_rec(c, t, 0, r->near_uid, r->flags, size);
    }
    txn_commit(c, &t, rc);
    if (c->rc < 0) {
        return;
    }
    c->frec = f;
    c->have_frec = true;
    fill_counts(c);
    c->res.downloaded = c->res.uploaded = 0; /* counted as they happen */
    sync_phase(c, pairs_setup, pairs_renamed);
}

/* Pairs (crash recovery, resolved intents): rename the file to carry the far
 * UID (durable), then record. */
static void pairs_setup(struct sync_ctx *c)
{
    for (size_t i = 0; i < c->plan->npairs && c->rc == 0; i++)
        if (c->plan->pairs[i].rename)
            near_set_uid(c, c->plan->pairs[i].near_idx, c->plan->pairs[i].far_uid);
}

static void pairs_commit(struct sync_ctx *c)
{
    const struct plan *p = c->plan;
    if (p->npairs) {
        struct status_txn *t = txn_begin(c);
        int rc = 0;
        if (!t)
            return;
        for (size_t i = 0; rc == 0 && i < p->npairs; i++) {
            const struct plan_pair *pp = &p->pairs[i];
            uint64_t size = c->nl->v[pp->near_idx].size;
            rc = put_rec(c, t, pp->far_uid, pp->near_uid, pp->flags, size);
            if (rc == 0 && pp->intent >= 0) {
                rc = status_txn_intent_del(t, c->folder_id, c->sin[pp->intent].id);
                rc = rc == -ENOENT ? 0 : rc;
            }
        }
        txn_commit(c, &t, rc);
    }
    if (c->rc == 0)
        downloads_start(c);
}

static void pairs_renamed(struct sync_ctx *c)
{
    bool any = false;
    for (size_t i = 0; i < c->plan->npairs; i++)
        any |= c->plan->pairs[i].rename;
    if (any)
        sync_phase(c, barrier_setup, pairs_commit);
    else
        pairs_commit(c);
}

/* -- 3: downloads, in batches: intents (one commit) -> one pipelined UID
 * FETCH streamed into Maildir writers -> one durability barrier for the batch
 * -> one commit recording the pairs and deleting the intents.  While one
 * batch is being made durable the next one is fetched. -- */

struct dl_batch {
    struct sync_ctx *c;
    size_t start, end; /* plan->downloads[start, end) */
    uint64_t *intent_ids;
    bool *got;
    struct repo_maildir_batch *rb;
    struct repo_maildir_writer *w; /* the message being received */
    bool paused;
    bool failed_write;
};

static void uploads_start(struct sync_ctx *c);
static void dl_pump(struct sync_ctx *c);

static void dl_batch_free(struct dl_batch *b)
{
    if (b->w)
        repo_maildir_deliver_abort(b->w);
    free(b->intent_ids);
    free(b->got);
    free(b);
}

/* The batch is over (recorded or failed). */
static void dl_batch_end(struct dl_batch *b)
{
    struct sync_ctx *c = b->c;
    dl_batch_free(b);
    c->dl_inflight--;
    dl_pump(c);
    sync_op_end(c);
}

static void dl_drain(struct repo_maildir_writer *w, void *arg)
{
    struct dl_batch *b = arg;
    (void)w;
    if (b->paused) {
        b->paused = false;
        imap_conn_resume(b->c->job.conn);
    }
}

static void dl_begin(struct imap_conn *conn, const struct imap_fetch *partial, uint64_t size,
                     void *arg)
{
    struct dl_batch *b = arg;
    (void)conn;
    (void)partial;
    (void)size;
    if (b->w) {
        repo_maildir_deliver_abort(b->w);
        b->w = NULL;
    }
    if (b->c->rc < 0 || b->failed_write)
        return;
    int rc = repo_maildir_deliver_begin(b->c->mf, dl_drain, b, &b->w);
    if (rc < 0) {
        b->w = NULL;
        b->failed_write = true;
        sync_fail(b->c, rc, "cannot write a local message: %s", err_str(rc));
    }
}

static void dl_data(struct imap_conn *conn, const char *chunk, size_t len, void *arg)
{
    struct dl_batch *b = arg;
    if (!b->w)
        return;
    int rc = repo_maildir_write(b->w, chunk, len);
    if (rc == 1 && !b->paused) {
        b->paused = true; /* the writer's buffer is full: stop reading */
        imap_conn_pause(conn);
    } else if (rc < 0) {
        repo_maildir_deliver_abort(b->w);
        b->w = NULL;
        b->failed_write = true;
        sync_fail(b->c, rc, "cannot write a local message: %s", err_str(rc));
    }
}

static size_t dl_find(const struct dl_batch *b, uint32_t uid)
{
    const struct plan_download *d = b->c->plan->downloads;
    size_t lo = b->start, hi = b->end;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (d[mid].far_uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < b->end && d[lo].far_uid == uid ? lo : SIZE_MAX;
}

static void dl_end(struct imap_conn *conn, const struct imap_fetch *f, void *arg)
{
    struct dl_batch *b = arg;
    struct sync_ctx *c = b->c;
    (void)conn;
    if (!b->w)
        return;
    size_t i = (f->present & IMAP_FETCH_UID) ? dl_find(b, f->uid) : SIZE_MAX;
    if (i == SIZE_MAX || b->got[i - b->start]) {
        repo_maildir_deliver_abort(b->w); /* not asked for: unsolicited */
        b->w = NULL;
        return;
    }
    const struct plan_download *d = &c->plan->downloads[i];
    struct repo_maildir_delivery dv = {.uid = d->far_uid, .mtime = -1, .name_time = -1};
    sync_plan_to_maildir(c, d->flags, &dv.flags);
    /* offlineimap keeps the delivery time unless asked otherwise; we use
     * INTERNALDATE for both options (it is the server's idea of the date). */
    if (c->job.acct && c->job.acct->local && c->job.acct->local->utime_from_header &&
        (f->present & IMAP_FETCH_DATE))
        dv.mtime = (int64_t)f->internaldate;
    if (c->job.acct && c->job.acct->local &&
        c->job.acct->local->filename_use_mail_timestamp && (f->present & IMAP_FETCH_DATE))
        dv.name_time = (int64_t)f->internaldate;
    int rc = repo_maildir_batch_add(b->rb, b->w, &dv, (void *)(uintptr_t)i);
    b->w = NULL;
    if (rc < 0) {
        sync_fail(c, rc, "UID %u: cannot write the local message: %s", d->far_uid, err_str(rc));
        return;
    }
    b->got[i - b->start] = true;
    c->dl_done_msgs++;
    c->dl_bytes_done += d->size;
    log_progress(c->acct_name, c->job.remote_name, c->dl_done_msgs, c->plan->ndownloads,
                 c->dl_bytes_done, c->dl_bytes_total);
    if (sync_is_machine())
        sync_event(c, "copyingmessage", "%u\n%s\n%s\n%s", d->far_uid, c->remote_repo,
                   c->job.remote_name, c->local_repo);
}

static void dl_committed(int st, const struct repo_maildir_batch_item *items, size_t n, void *arg)
{
    struct dl_batch *b = arg;
    struct sync_ctx *c = b->c;
    const struct plan_download *d = c->plan->downloads;
    struct status_txn *t = txn_begin(c);
    int rc = 0;
    bool *done = calloc(b->end - b->start, 1);
    if (t && !done)
        rc = -ENOMEM;
    /* Invariant 1: only files the batch reported renamed into place and
     * their directory fsynced are recorded. */
    for (size_t k = 0; t && rc == 0 && k < n; k++) {
        size_t i = (size_t)(uintptr_t)items[k].user;
        if (items[k].st < 0) {
            sync_fail(c, items[k].st, "UID %u: cannot deliver the local message: %s",
                      d[i].far_uid, err_str(items[k].st));
            continue;
        }
        done[i - b->start] = true;
        rc = put_rec(c, t, d[i].far_uid, d[i].far_uid, d[i].flags, d[i].size);
        if (rc == 0)
            rc = status_txn_intent_del(t, c->folder_id, b->intent_ids[i - b->start]);
        if (rc == 0)
            c->res.downloaded++;
    }
    /* Messages the server did not send (expunged meanwhile): no file was
     * made, so their intents go too. */
    for (size_t i = b->start; t && rc == 0 && i < b->end; i++)
        if (!b->got[i - b->start] && !done[i - b->start]) {
            rc = status_txn_intent_del(t, c->folder_id, b->intent_ids[i - b->start]);
            rc = rc == -ENOENT ? 0 : rc;
        }
    if (t)
        txn_commit(c, &t, rc);
    free(done);
    if (st < 0 && c->rc == 0)
        sync_fail(c, st, "cannot deliver local messages: %s", err_str(st));
    dl_batch_end(b);
}

static void dl_fetched(struct imap_conn *conn, int st, const struct imap_result *res, void *arg)
{
    struct dl_batch *b = arg;
    struct sync_ctx *c = b->c;
    (void)conn;
    c->dl_fetching = false;
    if (b->w) {
        repo_maildir_deliver_abort(b->w);
        b->w = NULL;
    }
    if (b->paused) {
        b->paused = false;
        imap_conn_resume(c->job.conn);
    }
    if (st < 0)
        sync_fail_imap(c, st, res, "UID FETCH of message bodies failed");
    dl_pump(c); /* fetch the next batch while this one is made durable */
    /* Commit even after a failure: what was received completely is made
     * durable and recorded. */
    int rc = repo_maildir_batch_commit(b->rb, dl_committed, b);
    b->rb = NULL;
    if (rc < 0) {
        sync_fail(c, rc, "cannot deliver local messages: %s", err_str(rc));
        dl_batch_end(b);
    }
}

static void dl_start_batch(struct sync_ctx *c)
{
    const struct plan *p = c->plan;
    size_t start = c->dl_next, end = start;
    uint64_t bytes = 0;
    while (end < p->ndownloads && end - start < DL_BATCH_MSGS &&
           (end == start || bytes + p->downloads[end].size <= DL_BATCH_BYTES))
        bytes += p->downloads[end++].size;
    uint32_t *u = malloc((end - start) * sizeof *u);
    char set[UIDSET_MAX];
    if (!u) {
        sync_fail(c, -ENOMEM, "out of memory");
        return;
    }
    for (size_t i = start; i < end; i++)
        u[i - start] = p->downloads[i].far_uid;
    end = start + sync_uidset(u, end - start, set, sizeof set);
    free(u);

    struct dl_batch *b = calloc(1, sizeof *b);
    if (!b || !(b->intent_ids = calloc(end - start, sizeof *b->intent_ids)) ||
        !(b->got = calloc(end - start, sizeof *b->got))) {
        if (b)
            dl_batch_free(b);
        sync_fail(c, -ENOMEM, "out of memory");
        return;
    }
    b->c = c;
    b->start = start;
    b->end = end;

    /* Invariant 2: the intents are durable before the first byte is written. */
    struct status_txn *t = txn_begin(c);
    int rc = 0;
    if (!t) {
        dl_batch_free(b);
        return;
    }
    for (size_t i = start; rc == 0 && i < end; i++) {
        struct status_intent in = {
            .folder = c->folder_id,
            .kind = STATUS_INTENT_APPEND,
            .side = STATUS_LOCAL,
            .src_uid = p->downloads[i].far_uid,
            .flags = p->downloads[i].flags,
            .size = p->downloads[i].size,
        };
        rc = status_txn_intent_put(t, &in);
        b->intent_ids[i - start] = in.id;
    }
    txn_commit(c, &t, rc);
    if (c->rc < 0 || (rc = repo_maildir_batch_new(c->mf, &b->rb)) < 0) {
        if (c->rc == 0)
            sync_fail(c, rc, "cannot deliver local messages: %s", err_str(rc));
        dl_batch_free(b);
        return;
    }
    static const struct imap_body_cbs cbs = {dl_begin, dl_data, dl_end};
    LOG_DEBUG(LOGC_SYNC, "%s: fetching %zu messages: %s", c->job.remote_name, end - start,
              set);
    rc = imap_conn_fetch_body(c->job.conn, set, &cbs, dl_fetched, b);
    if (rc < 0) {
        sync_fail(c, rc, "UID FETCH: %s", err_str(rc));
        /* The batch was never filled: commit it empty to free it. */
        if (repo_maildir_batch_commit(b->rb, dl_committed, b) == 0) {
            b->rb = NULL;
            c->dl_inflight++;
            sync_op_begin(c);
            return;
        }
        dl_batch_free(b);
        return;
    }
    c->dl_next = end;
    c->dl_fetching = true;
    c->dl_inflight++;
    sync_op_begin(c);
}

static void dl_pump(struct sync_ctx *c)
{
    while (c->rc == 0 && !c->dl_fetching && c->dl_inflight < DL_BATCHES_IN_FLIGHT &&
           c->dl_next < c->plan->ndownloads)
        dl_start_batch(c);
}

static void downloads_setup(struct sync_ctx *c)
{
    for (size_t i = 0; i < c->plan->ndownloads; i++)
        c->dl_bytes_total += c->plan->downloads[i].size;
    dl_pump(c);
}

static void downloads_start(struct sync_ctx *c)
{
    sync_phase(c, downloads_setup, uploads_start);
}

/* -- 4: uploads, in batches: stat the files -> intents with a fresh TUID (one
 * commit) -> pipelined APPENDs streaming "X-OIMAP-TUID: <tuid>\r\n" + the file
 * -> UID from APPENDUID, else UID SEARCH HEADER -> rename the files to carry
 * U= (one barrier) -> one commit recording the pairs, deleting the intents. -- */

struct sync_upload {
    struct sync_ctx *c;
    size_t pidx;     /* plan->uploads[pidx] */
    size_t near_idx; /* the file */
    char tuid[STATUS_TUID_LEN + 1];
    char hdr[64];
    size_t hdr_len, hdr_off;
    uint64_t fsize, sent;
    int64_t mtime;
    uint64_t intent_id;
    uint32_t uid;
    bool appended;
    /* streaming */
    struct repo_maildir_reader *r;
    bool r_started, r_eof, r_paused;
    int r_err;
    char *buf;
    size_t blen, boff;
};

static void flags_start(struct sync_ctx *c);
static void ul_batch(struct sync_ctx *c);

static void ul_free_batch(struct sync_ctx *c)
{
    for (size_t i = 0; i < c->nul; i++) {
        if (c->ul[i].r)
            repo_maildir_reader_close(c->ul[i].r);
        free(c->ul[i].buf);
    }
    free(c->ul);
    c->ul = NULL;
    c->nul = 0;
}

static void on_ul_stat(int st, int64_t mtime, uint64_t size, void *arg)
{
    struct sync_upload *u = arg;
    struct sync_ctx *c = u->c;
    if (st < 0) {
        sync_fail(c, st, "cannot read local message %s: %s", c->nl->v[u->near_idx].name,
                  err_str(st));
    } else {
        u->mtime = mtime;
        u->fsize = size;
    }
    sync_op_end(c);
}

static void ul_stat_setup(struct sync_ctx *c)
{
    for (size_t i = 0; i < c->nul && c->rc == 0; i++) {
        const struct repo_maildir_entry *e = &c->nl->v[c->ul[i].near_idx];
        int rc = repo_maildir_stat(c->mf, e->in_new, e->name, on_ul_stat, &c->ul[i]);
        if (rc < 0)
            sync_fail(c, rc, "cannot read local message %s: %s", e->name, err_str(rc));
        else
            sync_op_begin(c);
    }
}

static void on_ul_chunk(struct repo_maildir_reader *r, int st, const void *data, size_t len,
                        void *arg)
{
    struct sync_upload *u = arg;
    if (st < 0 || len == 0) {
        u->r_err = st;
        u->r_eof = true;
        u->r = NULL; /* the reader frees itself after this final call */
    } else {
        if (!u->buf && !(u->buf = malloc(READ_BUF))) {
            u->r_err = -ENOMEM;
            u->r_eof = true;
            repo_maildir_reader_close(r);
            u->r = NULL;
        } else {
            size_t n = len < READ_BUF ? len : READ_BUF;
            memcpy(u->buf, data, n);
            u->blen = n;
            u->boff = 0;
            u->r_paused = true; /* until the connection has taken it */
            repo_maildir_reader_pause(r);
        }
    }
    imap_conn_append_ready(u->c->job.conn);
}

/* imap_conn pulls the literal: the marker header, then the file. */
static ssize_t ul_read(void *arg, char *buf, size_t cap)
{
    struct sync_upload *u = arg;
    struct sync_ctx *c = u->c;
    if (u->hdr_off < u->hdr_len) {
        size_t n = u->hdr_len - u->hdr_off;
        n = n < cap ? n : cap;
        memcpy(buf, u->hdr + u->hdr_off, n);
        u->hdr_off += n;
        return (ssize_t)n;
    }
    if (u->boff < u->blen) {
        size_t n = u->blen - u->boff;
        n = n < cap ? n : cap;
        memcpy(buf, u->buf + u->boff, n);
        u->boff += n;
        u->sent += n;
        return (ssize_t)n;
    }
    if (u->r_err < 0)
        return u->r_err;
    if (u->r_eof)
        return -EIO; /* the file shrank since it was measured */
    if (!u->r_started) {
        const struct repo_maildir_entry *e = &c->nl->v[u->near_idx];
        u->r_started = true;
        int rc = repo_maildir_read(c->mf, e->in_new, e->name, on_ul_chunk, u, &u->r);
        return rc < 0 ? rc : 0;
    }
    if (u->r_paused && u->r) {
        u->r_paused = false;
        repo_maildir_reader_resume(u->r);
    }
    return 0;
}

static void on_appended(struct imap_conn *conn, int st, const struct imap_result *res, void *arg)
{
    struct sync_upload *u = arg;
    struct sync_ctx *c = u->c;
    (void)conn;
    if (u->r) {
        repo_maildir_reader_close(u->r);
        u->r = NULL;
    }
    if (st < 0) {
        char what[400];
        snprintf(what, sizeof what, "APPEND of local message %s failed",
                 c->nl->v[u->near_idx].name);
        sync_fail_imap(c, st, res, what);
    } else {
        u->appended = true;
        if (res->append_uid && (!res->append_uidvalidity ||
                                res->append_uidvalidity == c->fi.uidvalidity))
            u->uid = res->append_uid;
        c->ul_done_msgs++;
        c->ul_bytes_done += u->fsize;
        log_progress(c->acct_name, c->job.remote_name, c->ul_done_msgs, c->plan->nuploads,
                     c->ul_bytes_done, c->ul_bytes_total);
        if (sync_is_machine())
            sync_event(c, "copyingmessage", "%s\n%s\n%s\n%s", c->nl->v[u->near_idx].name,
                       c->local_repo, c->job.local_name, c->remote_repo);
    }
    sync_op_end(c);
}

static void ul_append_setup(struct sync_ctx *c)
{
    const struct plan *p = c->plan;
    char kw[512];
    for (size_t i = 0; i < c->nul && c->rc == 0; i++) {
        struct sync_upload *u = &c->ul[i];
        plan_flags_t f = p->uploads[u->pidx].flags;
        u->hdr_len = (size_t)snprintf(u->hdr, sizeof u->hdr, "%s: %s\r\n", SYNC_TUID_HEADER,
                                      u->tuid);
        sync_imap_keywords(c, f, kw, sizeof kw);
        struct imap_append_msg m = {
            .folder = c->job.remote_name,
            .flags = sync_imap_sys(f),
            .keywords = kw[0] ? kw : NULL,
            .internaldate = u->mtime > 0 ? (time_t)u->mtime : 0,
            .size = u->hdr_len + u->fsize,
            .read = ul_read,
        };
        int rc = imap_conn_append(c->job.conn, &m, on_appended, u);
        if (rc < 0) {
            sync_fail(c, rc, "APPEND: %s", err_str(rc));
            return;
        }
        c->far_changed = true;
        sync_op_begin(c);
    }
}

static void ul_search_next(struct sync_ctx *c);

static void on_ul_search(struct imap_conn *conn, int st, const struct imap_result *res, void *arg)
{
    struct sync_upload *u = arg;
    struct sync_ctx *c = u->c;
    (void)conn;
    if (st < 0) {
        sync_fail_imap(c, st, res, "UID SEARCH for an uploaded message failed");
    } else {
        for (size_t i = 0; i < res->n_uids; i++)
            if (res->uids[i] > u->uid)
                u->uid = res->uids[i];
        if (!u->uid)
            sync_fail(c, OIMAP_EPROTO,
                      "the server accepted local message %s but it cannot be found by its %s "
                      "header; it will be looked up again next time",
                      c->nl->v[u->near_idx].name, SYNC_TUID_HEADER);
    }
    ul_search_next(c);
    sync_op_end(c);
}

/* Without UIDPLUS (or without an APPENDUID): find the copy by its marker,
 * one search at a time (see lookup_next). */
static void ul_search_next(struct sync_ctx *c)
{
    while (c->rc == 0 && c->lk_next < c->nul) {
        struct sync_upload *u = &c->ul[c->lk_next++];
        if (u->uid)
            continue;
        int rc = imap_conn_search_header(c->job.conn, SYNC_TUID_HEADER, u->tuid, on_ul_search, u);
        if (rc < 0)
            sync_fail(c, rc, "UID SEARCH: %s", err_str(rc));
        else
            sync_op_begin(c);
        return;
    }
}

static void ul_search_setup(struct sync_ctx *c)
{
    c->lk_next = 0;
    ul_search_next(c);
}

static void ul_rename_setup(struct sync_ctx *c)
{
    for (size_t i = 0; i < c->nul && c->rc == 0; i++)
        near_set_uid(c, c->ul[i].near_idx, c->ul[i].uid);
}

static void ul_record(struct sync_ctx *c)
{
    struct status_txn *t = txn_begin(c);
    int rc = 0;
    if (!t)
        return;
    for (size_t i = 0; rc == 0 && i < c->nul; i++) {
        const struct sync_upload *u = &c->ul[i];
        rc = put_rec(c, t, u->uid, u->uid, c->plan->uploads[u->pidx].flags, u->fsize);
        if (rc == 0)
            rc = status_txn_intent_del(t, c->folder_id, u->intent_id);
        if (rc == 0)
            c->res.uploaded++;
    }
    txn_commit(c, &t, rc);
    ul_free_batch(c);
    if (c->rc == 0)
        ul_batch(c);
}

static void ul_renamed(struct sync_ctx *c)
{
    sync_phase(c, barrier_setup, ul_record);
}

static void ul_searched(struct sync_ctx *c)
{
    sync_phase(c, ul_rename_setup, ul_renamed);
}

static void ul_appended(struct sync_ctx *c)
{
    sync_phase(c, ul_search_setup, ul_searched);
}

static void ul_stats_done(struct sync_ctx *c)
{
    /* Invariant 2: the intents, with their markers, are durable before any
     * APPEND is sent. */
    struct status_txn *t = txn_begin(c);
    int rc = 0;
    if (!t)
        return;
    for (size_t i = 0; rc == 0 && i < c->nul; i++) {
        struct sync_upload *u = &c->ul[i];
        const struct plan_upload *pu = &c->plan->uploads[u->pidx];
        if ((rc = status_make_tuid(u->tuid)) < 0)
            break;
        struct status_intent in = {
            .folder = c->folder_id,
            .kind = STATUS_INTENT_APPEND,
            .side = STATUS_REMOTE,
            .src_uid = pu->near_uid,
            .flags = pu->flags,
            .size = u->fsize,
            .tuid = u->tuid,
            .name = c->nl->v[u->near_idx].name,
        };
        rc = status_txn_intent_put(t, &in);
        u->intent_id = in.id;
    }
    txn_commit(c, &t, rc);
    if (c->rc == 0)
        sync_phase(c, ul_append_setup, ul_appended);
}

static void ul_batch(struct sync_ctx *c)
{
    const struct plan *p = c->plan;
    if (c->ul_next >= p->nuploads) {
        flags_start(c);
        return;
    }
    size_t start = c->ul_next, end = start;
    uint64_t bytes = 0;
    while (end < p->nuploads && end - start < UL_BATCH_MSGS &&
           (end == start || bytes + p->uploads[end].size <= UL_BATCH_BYTES))
        bytes += p->uploads[end++].size;
    c->ul = calloc(end - start, sizeof *c->ul);
    if (!c->ul) {
        sync_fail(c, -ENOMEM, "out of memory");
        return;
    }
    c->nul = end - start;
    for (size_t i = start; i < end; i++) {
        struct sync_upload *u = &c->ul[i - start];
        u->c = c;
        u->pidx = i;
        u->near_idx = p->uploads[i].near_idx;
    }
    c->ul_next = end;
    sync_phase(c, ul_stat_setup, ul_stats_done);
}

static void uploads_start(struct sync_ctx *c)
{
    for (size_t i = 0; i < c->plan->nuploads; i++)
        c->ul_bytes_total += c->plan->uploads[i].size;
    ul_batch(c);
}

/* -- 5: flags: grouped UID STOREs on far, renames on near (one barrier),
 * then one commit of the synced flags. -- */

static void flags_commit(struct sync_ctx *c);
static void deletes_start(struct sync_ctx *c);

static void flags_setup(struct sync_ctx *c)
{
    struct plan *p = c->plan;
    uint32_t *u = malloc((p->nflags ? p->nflags : 1) * sizeof *u);
    if (!u) {
        sync_fail(c, -ENOMEM, "out of memory");
        return;
    }
    plan_flags_sort(p, PLAN_FAR);
    for (size_t i = 0; i < p->nflags && c->rc == 0;) {
        size_t e = plan_flags_group_end(p, PLAN_FAR, i);
        const struct plan_flag_update *f = &p->flags[i];
        if (f->far_add || f->far_remove) {
            for (size_t k = i; k < e; k++)
                u[k - i] = p->flags[k].far_uid;
            sync_sort_uids(u, e - i);
            if (f->far_add) {
                far_store(c, u, e - i, true, f->far_add);
                sync_event(c, "addingflags", "%u\n%s", u[0], c->job.remote_name);
            }
            if (f->far_remove) {
                far_store(c, u, e - i, false, f->far_remove);
                sync_event(c, "deletingflags", "%u\n%s", u[0], c->job.remote_name);
            }
        }
        i = e;
    }
    free(u);
    for (size_t i = 0; i < p->nflags && c->rc == 0; i++) {
        const struct plan_flag_update *f = &p->flags[i];
        if (!(f->near_add | f->near_remove))
            continue;
        struct repo_maildir_entry *e = &c->nl->v[f->near_idx];
        struct maildir_flags mf = e->flags;
        sync_apply_near(c, &mf, f->near_add, f->near_remove);
        struct near_op *op = near_op_new(c, f->near_idx);
        if (!op)
            return;
        int rc = repo_maildir_set_flags(c->mf, e->in_new, e->name, &mf, REPO_MAILDIR_NOSYNC,
                                        on_near_renamed, op);
        if (rc < 0) {
            free(op);
            sync_fail(c, rc, "cannot change flags of local message %s: %s", e->name,
                      err_str(rc));
            return;
        }
        e->flags = mf;
        sync_op_begin(c);
    }
}

static void flags_stored(struct sync_ctx *c)
{
    if (c->res.flags_near)
        sync_phase(c, barrier_setup, flags_commit);
    else
        flags_commit(c);
}

static void flags_commit(struct sync_ctx *c)
{
    const struct plan *p = c->plan;
    if (p->nflags) {
        struct status_txn *t = txn_begin(c);
        int rc = 0;
        if (!t)
            return;
        for (size_t i = 0; rc == 0 && i < p->nflags; i++) {
            const struct plan_flag_update *f = &p->flags[i];
            rc = put_rec(c, t, f->far_uid, f->near_uid, f->synced, rec_size(c, f->far_uid));
        }
        txn_commit(c, &t, rc);
    }
    if (c->rc == 0)
        deletes_start(c);
}

static void flags_start(struct sync_ctx *c)
{
    sync_phase(c, flags_setup, flags_stored);
}

/* -- 6: deletions: far STORE +\Deleted, then UID EXPUNGE of exactly those
 * UIDs; near unlinks (one barrier); then one commit. -- */

static void on_expunge(struct imap_conn *conn, int st, const struct imap_result *res, void *arg)
{
    struct sync_ctx *c = arg;
    (void)conn;
    if (st < 0)
        sync_fail_imap(c, st, res, "EXPUNGE failed");
    sync_op_end(c);
}

static void on_near_deleted(int st, void *arg)
{
    struct near_op *op = arg;
    struct sync_ctx *c = op->c;
    if (st < 0 && st != -ENOENT)
        sync_fail(c, st, "cannot delete local message %s: %s", c->nl->v[op->idx].name,
                  err_str(st));
    free(op);
    sync_op_end(c);
}

static void deletes_setup(struct sync_ctx *c)
{
    const struct plan *p = c->plan;
    if (p->nfar_deletes) {
        uint32_t *u = malloc(p->nfar_deletes * sizeof *u);
        if (!u) {
            sync_fail(c, -ENOMEM, "out of memory");
            return;
        }
        for (size_t i = 0; i < p->nfar_deletes; i++)
            u[i] = p->far_deletes[i].far_uid;
        far_store(c, u, p->nfar_deletes, true, PLAN_F_DELETED);
        sync_event(c, "deletingmessages", "%zu\n%s", p->nfar_deletes, c->job.remote_name);
        free(u);
    }
    for (size_t i = 0; i < p->nnear_deletes && c->rc == 0; i++) {
        const struct plan_delete *d = &p->near_deletes[i];
        const struct repo_maildir_entry *e = &c->nl->v[d->idx];
        struct near_op *op = near_op_new(c, d->idx);
        if (!op)
            return;
        int rc = repo_maildir_delete(c->mf, e->in_new, e->name, REPO_MAILDIR_NOSYNC,
                                     on_near_deleted, op);
        if (rc < 0) {
            free(op);
            sync_fail(c, rc, "cannot delete local message %s: %s", e->name, err_str(rc));
            return;
        }
        sync_op_begin(c);
    }
}

/* After the \Deleted flags are stored: expunge exactly the deleted UIDs.
 * Without UIDPLUS, a plain EXPUNGE removes every \Deleted message of the
 * folder, so it is sent only when the listing shows no other message
 * flagged \Deleted (a message flagged by a mail reader must not vanish
 * behind the user's back); otherwise the deletions stay flagged, as with
 * expunge = no, and the records become half records. */
static void expunge_setup(struct sync_ctx *c)
{
    const struct plan *p = c->plan;
    size_t n = 0;
    for (size_t i = 0; i < p->nfar_deletes; i++)
        n += p->far_deletes[i].expunge;
    c->far_expunge_ok = false;
    if (!n)
        return;
    if (!imap_conn_has(c->job.conn, "UIDPLUS")) {
        for (size_t i = 0; i < c->nfar; i++) {
            bool ours = false;
            if (!(c->far[i].flags & PLAN_F_DELETED))
                continue;
            for (size_t k = 0; k < p->nfar_deletes && !ours; k++)
                ours = p->far_deletes[k].far_uid == c->far[i].uid;
            if (!ours) {
                log_warn("%s: folder %s: the server has no UIDPLUS and other messages are "
                         "flagged \\Deleted: deleted messages are flagged, not expunged",
                         c->acct_name, c->job.remote_name);
                return;
            }
        }
        if (n != p->nfar_deletes)
            return;
        int rc = imap_conn_expunge(c->job.conn, NULL, on_expunge, c);
        if (rc < 0)
            sync_fail(c, rc, "EXPUNGE: %s", err_str(rc));
        else
            sync_op_begin(c);
        c->far_expunge_ok = true;
        return;
    }
    uint32_t *u = malloc(n * sizeof *u);
    char set[UIDSET_MAX];
    if (!u) {
        sync_fail(c, -ENOMEM, "out of memory");
        return;
    }
    n = 0;
    for (size_t i = 0; i < p->nfar_deletes; i++)
        if (p->far_deletes[i].expunge)
            u[n++] = p->far_deletes[i].far_uid;
    for (size_t k = 0; k < n && c->rc == 0;) {
        size_t used = sync_uidset(u + k, n - k, set, sizeof set);
        int rc = imap_conn_expunge(c->job.conn, set, on_expunge, c);
        if (rc < 0)
            sync_fail(c, rc, "UID EXPUNGE: %s", err_str(rc));
        else
            sync_op_begin(c);
        k += used;
    }
    free(u);
    c->far_expunge_ok = true;
}

static void final_commit(struct sync_ctx *c);

static void deletes_commit(struct sync_ctx *c)
{
    const struct plan *p = c->plan;
    if (p->nfar_deletes || p->nnear_deletes) {
        struct status_txn *t = txn_begin(c);
        int rc = 0;
        if (!t)
            return;
        for (size_t i = 0; rc == 0 && i < p->nfar_deletes; i++) {
            const struct plan_delete *d = &p->far_deletes[i];
            if (d->expunge && c->far_expunge_ok)
                rc = del_rec(c, t, d->far_uid, d->near_uid);
            else
                rc = put_rec(c, t, d->far_uid, 0, d->flags,
                             rec_size(c, d->far_uid));
        }
        for (size_t i = 0; rc == 0 && i < p->nnear_deletes; i++) {
            const struct plan_delete *d = &p->near_deletes[i];
            if (d->expunge)
                rc = del_rec(c, t, d->far_uid, d->near_uid);
            else
                rc = put_rec(c, t, 0, d->near_uid, d->flags, rec_size(c, d->far_uid));
        }
        txn_commit(c, &t, rc);
    }
    if (c->rc == 0)
        final_commit(c);
}

static void deletes_done(struct sync_ctx *c)
{
    if (c->plan->nnear_deletes)
        sync_phase(c, barrier_setup, deletes_commit);
    else
        deletes_commit(c);
}

static void far_stored_deleted(struct sync_ctx *c)
{
    sync_phase(c, expunge_setup, deletes_done);
}

static void deletes_start(struct sync_ctx *c)
{
    sync_phase(c, deletes_setup, far_stored_deleted);
}

/* -- the folder record, once everything above is recorded. -- */
static void final_commit(struct sync_ctx *c)
{
    struct status_folder f = c->frec;
    f.uidvalidity[STATUS_REMOTE] = c->fi.uidvalidity;
    f.uidnext[STATUS_REMOTE] = c->fi.uidnext;
    /* The HIGHESTMODSEQ seen at SELECT: our own changes since raise the
     * server's, so the next run lists the folder in full once (safe). */
    f.highestmodseq[STATUS_REMOTE] = c->fi.nomodseq ? 0 : c->fi.highestmodseq;
    for (size_t i = 0; i < c->nfar; i++)
        if (c->far[i].uid > f.max_uid[STATUS_REMOTE])
            f.max_uid[STATUS_REMOTE] = c->far[i].uid;
    f.last_sync = (int64_t)time(NULL);
    /* A readonly-near plan may store flags the far side does not carry:
     * then the listing cannot be taken from the status next time. */
    if (c->near_ro)
        f.highestmodseq[STATUS_REMOTE] = 0;
    struct status_txn *t = txn_begin(c);
    if (!t)
        return;
    txn_commit(c, &t, status_txn_folder_put(t, &f));
    const struct sync_result *r = &c->res;
    if (c->rc == 0 && (r->downloaded || r->uploaded || r->deleted_far || r->deleted_near ||
                       r->flags_far || r->flags_near || r->paired || r->held_back)) {
        char line[512];
        summary_line(c, "", line, sizeof line);
        log_info("%s", line);
    }
}
