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
#include "migrate.h"
#include "plan.h"
#include "repo_maildir.h"
#include "status.h"
#include "sync_int.h"
#include "sync_labels.h"

static void sync_log_plan(struct sync_ctx *c);
static void sync_guard_check(struct sync_ctx *c);
static void sync_report_dry(struct sync_ctx *c);

/* ---- helpers ----------------------------------------------------------------- */

void sync_fail(struct sync_ctx *c, int rc, const char *fmt, ...)
{
    if (rc == OIMAP_ENO || rc == OIMAP_EBAD) {
        /* the server refused one command: the connection is still fine */
    } else if (rc < 0 && c->job.conn &&
               (imap_conn_error(c->job.conn) || imap_conn_state(c->job.conn) == IMAP_CONN_CLOSED)) {
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
void sync_fail_imap(struct sync_ctx *c, int st, const struct imap_result *res, const char *what)
{
    const char *text = res && res->text && *res->text ? res->text : err_str(st);
    if (st != OIMAP_ENO && st != OIMAP_EBAD)
        c->res.conn_failed = true;
    sync_fail(c, st, "%s: %s", what, text);
}

static void finish(struct sync_ctx *c);

void sync_op_begin(struct sync_ctx *c)
{
    c->pending++;
}

/* One operation ended: when it was the last of the phase, run the next. */
void sync_op_end(struct sync_ctx *c)
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
void sync_phase(struct sync_ctx *c, sync_phase_fn setup, sync_phase_fn next)
{
    c->next = next;
    sync_op_begin(c); /* guard: the phase cannot end while it is being set up */
    if (c->rc == 0)
        setup(c);
    sync_op_end(c);
}

bool sync_is_machine(void)
{
    return log_current_ui() == LOG_UI_MACHINE;
}

void sync_event(struct sync_ctx *c, const char *cmd, const char *fmt, ...)
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
size_t sync_uidset(const uint32_t *u, size_t n, char *buf, size_t cap)
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

void sync_sort_uids(uint32_t *u, size_t n)
{
    qsort(u, n, sizeof *u, cmp_u32);
}

/* ---- startdate, copy_ignore_eval (sync.h) ------------------------------------- */

void sync_plan_dates(const struct sync_folder_job *job, struct plan_options *o)
{
    o->min_date = job->min_date;
    if (job->startdate == SYNC_STARTDATE_LOCAL)
        o->min_date_sides = 1u << PLAN_NEAR;
    else if (job->startdate == SYNC_STARTDATE_REMOTE)
        o->min_date_sides = 1u << PLAN_FAR;
}

int sync_startdate_check(const struct sync_folder_job *job, bool first_sync, size_t nfar,
                         size_t nnear, char *err, size_t errlen)
{
    const struct config_account *a = job->acct;
    if (!job->startdate || !first_sync || !a || !a->local || !a->remote)
        return 0;
    bool local = job->startdate == SYNC_STARTDATE_LOCAL;
    size_t n = local ? nfar : nnear;
    if (!n)
        return 0;
    /* offlineimap's rule: what the other side holds before the first sync
     * cannot be told apart from mail to copy, so it refuses. */
    snprintf(err, errlen,
             "to use startdate on Repository %s, Repository %s must be empty at the folder's "
             "first sync, and its folder %s holds %zu message(s) (empty it, or remove "
             "startdate)",
             local ? a->local->name : a->remote->name, local ? a->remote->name : a->local->name,
             local ? job->remote_name : job->local_name, n);
    return OIMAP_ECONFIG;
}

static bool uid_listed(const uint32_t *v, size_t n, uint32_t uid)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] == uid)
            return true;
        if (v[mid] < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

size_t sync_drop_ignored(const struct sync_folder_job *job, struct plan *plan)
{
    if (!job->n_copy_ignore || !plan)
        return 0;
    size_t w = 0;
    for (size_t i = 0; i < plan->ndownloads; i++)
        if (!uid_listed(job->copy_ignore, job->n_copy_ignore, plan->downloads[i].far_uid))
            plan->downloads[w++] = plan->downloads[i];
    size_t dropped = plan->ndownloads - w;
    plan->ndownloads = w;
    plan->skipped[PLAN_NEAR].ignored += dropped;
    return dropped;
}

/* IMAP <-> plan flags.  Keywords: $Forwarded is Maildir P (unless a
 * customflag_<x> names it: then it is x, and P a local letter, as in
 * offlineimap, which never syncs P); the others map to Maildir letters
 * through the local repository's customflag_<x> options; keywords without a
 * mapping are ignored (as offlineimap does). */
unsigned sync_imap_sys(plan_flags_t f)
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

/* Keywords of f as "kw1 kw2" (empty string if none); kw[26] maps the
 * keyword bits (NULL: unmapped). */
void sync_keywords_of(const char *const *kw, plan_flags_t f, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = 0;
    if (f & PLAN_F_FORWARDED)
        o += (size_t)snprintf(buf + o, cap - o, "$Forwarded");
    for (int i = 0; i < 26 && o < cap; i++)
        if ((f & PLAN_F_KEYWORD(i)) && kw[i])
            o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? " " : "", kw[i]);
}

void sync_imap_keywords(const struct sync_ctx *c, plan_flags_t f, char *buf, size_t cap)
{
    sync_keywords_of(c->kw, f, buf, cap);
}

static plan_flags_t flags_from_fetch(const struct sync_ctx *c, const struct imap_fetch *f)
{
    return sync_fetch_flags(c->kw, f);
}

/* A FETCH's FLAGS as plan flags: system flags, $Forwarded, keywords mapped
 * by kw[26]; other keywords are ignored. */
plan_flags_t sync_fetch_flags(const char *const *kw, const struct imap_fetch *f)
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
            /* Maildir P, unless a customflag letter claims it */
            int i = 0;
            while (i < 26 && !(kw[i] && strcasecmp(kw[i], "$Forwarded") == 0))
                i++;
            r |= i < 26 ? PLAN_F_KEYWORD(i) : PLAN_F_FORWARDED;
            continue;
        }
        for (int i = 0; i < 26; i++)
            if (kw[i] && strlen(kw[i]) == t->len && memcmp(kw[i], t->str, t->len) == 0)
                r |= PLAN_F_KEYWORD(i);
    }
    return r;
}

/* Maildir entry flags -> plan flags: standard letters, and the custom
 * letters that map to a keyword. */
static plan_flags_t sync_near_flags(const struct sync_ctx *c, const struct maildir_flags *mf)
{
    return (plan_flags_t)(mf->std & c->std_letters) |
           ((plan_flags_t)(mf->custom & c->kw_letters) << 6);
}

/* The Maildir flags to write: entry's flags with plan bits added/removed;
 * custom letters without a mapping and unknown upper-case letters kept. */
void sync_apply_near(const struct sync_ctx *c, struct maildir_flags *mf, plan_flags_t add,
                     plan_flags_t rm)
{
    mf->std = (uint8_t)((mf->std | (add & c->std_letters)) & ~(rm & c->std_letters));
    uint32_t kadd = (add >> 6) & c->kw_letters, krm = (rm >> 6) & c->kw_letters;
    mf->custom = (mf->custom | kadd) & ~krm;
}

void sync_plan_to_maildir(const struct sync_ctx *c, plan_flags_t f, struct maildir_flags *mf)
{
    memset(mf, 0, sizeof *mf);
    mf->std = (uint8_t)(f & c->std_letters);
    mf->custom = (f >> 6) & c->kw_letters;
}

/* The unique part of a Maildir file name: up to ',' or the info separator. */
static size_t sync_unique_len(const char *name)
{
    size_t n = strcspn(name, ",:!");
    return n;
}

/* ---- finishing -------------------------------------------------------------- */

static void free_ctx(struct sync_ctx *c)
{
    sync_exec_free(c);
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
    free(c->vanished);
    free(c);
}

static void finish(struct sync_ctx *c)
{
    if (c->finished)
        return;
    c->finished = true;
    if (c->rc == 0 && c->ul_refused) {
        /* uploads the server refused (sync_exec.c): all else is done; a
         * mass-deletion guard's message goes out on a line of its own */
        c->rc = OIMAP_ENO;
        snprintf(c->res.error, sizeof c->res.error, "the server refused %zu local message%s: %s",
                 c->ul_refused, c->ul_refused == 1 ? "" : "s", c->ul_refusal);
        if (c->guard_rc < 0)
            log_error("%s: folder %s: %s", c->acct_name, c->job.remote_name, c->guard_msg);
    } else if (c->rc == 0 && c->guard_rc < 0) {
        c->rc = c->guard_rc;
        snprintf(c->res.error, sizeof c->res.error, "%s", c->guard_msg);
    }
    c->res.status = c->rc;
    if (c->job.hooks && c->job.hooks->arg == c) {
        c->job.hooks->on_vanished = NULL;
        c->job.hooks->arg = NULL;
    }
    if (c->rc < 0) {
        LOG_DEBUG(LOGC_SYNC, "%s", c->res.error);
    } else {
        LOG_DEBUG(LOGC_SYNC, "%s/%s done", c->acct_name, c->job.remote_name);
    }
    sync_folder_cb cb = c->cb;
    void *arg = c->arg;
    struct sync_result res = c->res;
    /* Gmail labels are a pass of their own after the folder's messages and
     * flags (sync_labels.h); it calls cb when it applies. */
    bool labels = sync_labels_after(&c->job, &res, c->plan, c->nl, cb, arg);
    free_ctx(c);
    if (!labels)
        cb(&res, arg);
}

/* ---- 1. select ---------------------------------------------------------------- */

static void on_local_open(int st, struct repo_maildir_folder *f, void *arg);
static void list_both(struct sync_ctx *c);
static void open_local(struct sync_ctx *c, unsigned flags);
static bool far_unchanged(struct sync_ctx *c);

static void on_select(struct imap_conn *conn, int st, const struct imap_result *res, void *arg)
{
    struct sync_ctx *c = arg;
    (void)conn;
    if (st < 0) {
        sync_fail_imap(c, st, res,
                       st == OIMAP_ENO ? "cannot select the remote folder" : "SELECT failed");
    } else if (!res->folder || !res->folder->uidvalidity) {
        sync_fail(c, OIMAP_EPROTO, "the server sent no UIDVALIDITY");
    } else {
        c->fi = *res->folder;
        LOG_DEBUG(LOGC_SYNC,
                  "sync: %s: selected: uidvalidity %u uidnext %u exists %u highestmodseq %llu",
                  c->job.remote_name, c->fi.uidvalidity, c->fi.uidnext, c->fi.exists,
                  (unsigned long long)c->fi.highestmodseq);
        open_local(c, 0);
    }
    sync_op_end(c);
}

/* The folder is opened without REPO_MAILDIR_CREATE first: creating means an
 * fsync of the directory, which an existing folder does not need. */
static void open_local(struct sync_ctx *c, unsigned flags)
{
    int rc = repo_maildir_open(c->job.maildir, c->job.local_name, flags, on_local_open, c);
    if (rc < 0)
        sync_fail(c, rc, "cannot open the local folder %s: %s", c->job.local_name, err_str(rc));
    else
        sync_op_begin(c);
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

/* A folder pair offlineimap synced and oimap never did: its status becomes
 * ours before the first plan (migrate.h).  Not when the local folder had to
 * be created: offlineimap forgets its status of a folder it creates. */
static void take_over(struct sync_ctx *c)
{
    char why[400];
    if (c->have_frec || c->check_only || !c->mf || c->tried_create || !c->job.acct)
        return;
    uint32_t mask = c->std_letters | (c->kw_letters << 6);
    int rc = migrate_takeover(c->job.status, c->job.acct, c->job.local_name, c->job.remote_name,
                              mask, &c->frec, &c->smsgs, &c->nsmsgs, why, sizeof why);
    if (rc < 0)
        sync_fail(c, rc, "%s", why);
    c->have_frec = rc > 0;
}

static void on_local_open(int st, struct repo_maildir_folder *f, void *arg)
{
    struct sync_ctx *c = arg;
    if (st == -ENOENT && c->check_only) {
        c->res.need_conn = true; /* to be created: that is work */
        sync_op_end(c);
        return;
    }
    if (st == -ENOENT && c->job.create_local && !c->job.dry_run && !c->tried_create) {
        c->tried_create = true;
        open_local(c, REPO_MAILDIR_CREATE);
        sync_op_end(c);
        return;
    }
    if (st == -ENOENT && !c->job.create_local) {
        sync_fail(c, st, "the local folder %s does not exist (createfolders is off)",
                  c->job.local_name);
    } else if (st == -ENOENT && c->job.dry_run) {
        c->local_missing = true; /* would be created: an empty listing */
    } else if (st < 0) {
        sync_fail(c, st, "cannot open the local folder %s: %s", c->job.local_name, err_str(st));
    } else {
        c->mf = f;
        if (c->job.fmd5_name) /* before any job on f reads it */
            repo_maildir_folder_set_fmd5_name(f, c->job.fmd5_name);
    }
    if (c->rc == 0) {
        int rc = load_status(c);
        if (rc < 0)
            sync_fail(c, rc, "cannot read the status store: %s", err_str(rc));
        else
            take_over(c);
    }
    if (c->rc == 0 && c->local_missing && c->nsmsgs) {
        /* plan.h: a missing folder is not an empty listing. */
        sync_fail(c, OIMAP_EGUARD,
                  "the local folder %s has vanished but the status store knows %zu of its "
                  "messages: nothing done (restore the folder, or remove it from the sync)",
                  c->job.local_name, c->nsmsgs);
    }
    if (c->rc == 0 && c->check_only && (c->nin || !far_unchanged(c))) {
        c->res.need_conn = true; /* the remote folder changed: SELECT it */
    } else if (c->rc == 0) {
        list_both(c);
    }
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

/* QRESYNC: the far listing can be what changed since the recorded
 * HIGHESTMODSEQ (flag changes, new messages: both raise a message's modseq)
 * plus the status records, minus what VANISHED (EARLIER) names.  Only when
 * every condition for that reasoning holds; otherwise the full listing. */
static bool changedsince_ok(struct sync_ctx *c)
{
    return c->have_frec && c->job.hooks && c->frec.last_sync && !c->fi.nomodseq &&
           c->frec.highestmodseq[STATUS_REMOTE] && c->fi.highestmodseq &&
           c->frec.highestmodseq[STATUS_REMOTE] < c->fi.highestmodseq &&
           c->frec.uidvalidity[STATUS_REMOTE] == c->fi.uidvalidity && !c->near_ro &&
           imap_conn_enabled(c->job.conn, "QRESYNC");
}

static void on_vanished(void *arg, const char *set, size_t len, bool earlier)
{
    struct sync_ctx *c = arg;
    (void)earlier; /* without EARLIER: expunged just now, gone all the same */
    size_t i = 0;
    while (i < len && c->rc == 0) {
        uint32_t lo = 0, hi;
        while (i < len && set[i] >= '0' && set[i] <= '9')
            lo = lo * 10 + (uint32_t)(set[i++] - '0');
        hi = lo;
        if (i < len && set[i] == ':') {
            hi = 0;
            for (i++; i < len && set[i] >= '0' && set[i] <= '9';)
                hi = hi * 10 + (uint32_t)(set[i++] - '0');
        }
        if (i < len && set[i] != ',') {
            /* Not a UID set we understand: take no listing shortcut. */
            c->changedsince = false;
            return;
        }
        i++;
        if (hi < lo) {
            uint32_t t = lo;
            lo = hi;
            hi = t;
        }
        if (c->nvanished == c->capvanished) {
            size_t cap = c->capvanished ? c->capvanished * 2 : 16;
            void *a = realloc(c->vanished, cap * sizeof *c->vanished);
            if (!a) {
                sync_fail(c, -ENOMEM, "out of memory");
                return;
            }
            c->vanished = a;
            c->capvanished = cap;
        }
        c->vanished[c->nvanished++] = (struct sync_range){lo, hi};
    }
}

static bool is_vanished(const struct sync_ctx *c, uint32_t uid)
{
    for (size_t i = 0; i < c->nvanished; i++)
        if (uid >= c->vanished[i].lo && uid <= c->vanished[i].hi)
            return true;
    return false;
}

static int cmp_far_uid(const void *a, const void *b)
{
    uint32_t x = ((const struct plan_far_msg *)a)->uid, y = ((const struct plan_far_msg *)b)->uid;
    return x < y ? -1 : x > y;
}

static void full_list_setup(struct sync_ctx *c)
{
    c->nfar = 0;
    if (c->fi.exists == 0)
        return;
    int rc = imap_conn_fetch_list(c->job.conn, "1:*", NULL, on_list_msg, on_list_done, c);
    if (rc < 0)
        sync_fail(c, rc, "cannot list the remote folder: %s", err_str(rc));
    else
        sync_op_begin(c);
}

/* After a CHANGEDSINCE listing: add the unchanged messages from the status.
 * The result is the complete listing plan.h needs when its size is the
 * folder's message count (every UID in it exists on the server: changed
 * ones were just reported, the others are in the status and were not
 * expunged since the recorded modseq); otherwise list everything. */
static void merge_changed(struct sync_ctx *c)
{
    if (c->job.hooks && c->job.hooks->arg == c) {
        c->job.hooks->on_vanished = NULL;
        c->job.hooks->arg = NULL;
    }
    if (!c->changedsince) {
        if (c->rc == 0) /* the VANISHED set was not understood */
            sync_phase(c, full_list_setup, plan_and_go);
        return;
    }
    size_t nchanged = c->nfar;
    if (nchanged > 1)
        qsort(c->far, nchanged, sizeof *c->far, cmp_far_uid);
    for (size_t i = 0; i < c->nsmsgs && c->rc == 0; i++) {
        const struct status_msg *s = &c->smsgs[i];
        if (s->state == STATUS_MSG_REMOTE_GONE || is_vanished(c, s->remote_uid))
            continue;
        struct plan_far_msg key = {.uid = s->remote_uid};
        if (nchanged && bsearch(&key, c->far, nchanged, sizeof *c->far, cmp_far_uid))
            continue;
        struct plan_far_msg m = {.uid = s->remote_uid, .flags = s->flags, .size = s->size};
        if (far_push(c, &m) < 0)
            sync_fail(c, -ENOMEM, "out of memory");
    }
    if (c->rc < 0)
        return;
    LOG_DEBUG(LOGC_SYNC,
              "%s: CHANGEDSINCE %llu: %zu changed, %zu vanished ranges, %zu listed, "
              "%u on the server",
              c->job.remote_name, (unsigned long long)c->frec.highestmodseq[STATUS_REMOTE],
              nchanged, c->nvanished, c->nfar, c->fi.exists);
    if (c->nfar != c->fi.exists) {
        LOG_DEBUG(LOGC_SYNC, "%s: incomplete: listing the whole folder", c->job.remote_name);
        c->changedsince = false;
        sync_phase(c, full_list_setup, plan_and_go);
        return;
    }
    plan_and_go(c);
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
    } else if (changedsince_ok(c)) {
        struct imap_fetch_opts fo = {
            .changedsince = c->frec.highestmodseq[STATUS_REMOTE],
            .vanished = true,
        };
        c->job.hooks->on_vanished = on_vanished;
        c->job.hooks->arg = c;
        c->changedsince = true;
        rc = imap_conn_fetch_list(c->job.conn, "1:*", &fo, on_list_msg, on_list_done, c);
        if (rc < 0) {
            sync_fail(c, rc, "cannot list the remote folder: %s", err_str(rc));
        } else {
            sync_op_begin(c);
            c->next = merge_changed;
        }
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
    sync_plan_dates(&c->job, o);
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
    char why[400];
    if (!c->check_only && sync_startdate_check(&c->job, !c->have_frec, c->nfar,
                                               c->nl ? c->nl->n : 0, why, sizeof why) < 0) {
        sync_fail(c, OIMAP_ECONFIG, "%s", why);
        return;
    }
    int rc = build_input(c, &in);
    if (rc == 0) {
        plan_free(&c->plan);
        rc = plan_make(&in, &c->plan);
    }
    if (rc < 0) {
        sync_fail(c, rc, "cannot plan the sync: %s", err_str(rc));
        return;
    }
    sync_drop_ignored(&c->job, c->plan);
    if (c->check_only) {
        const struct plan *p = c->plan;
        bool work = p->error || p->record_uidvalidity || p->nlookups || p->ndrop_intents ||
                    p->nrecs || p->npairs || p->ndownloads || p->nuploads || p->nflags ||
                    p->nfar_deletes || p->nnear_deletes || p->held[0].count || p->held[1].count;
        c->res.need_conn = work;
        c->res.skipped = !work;
        LOG_DEBUG(LOGC_SYNC, "%s: unchanged on the server; %s", c->job.remote_name,
                  work ? "local changes: selecting it" : "nothing to do");
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
                  side, c->frec.uidvalidity[STATUS_REMOTE], c->fi.uidvalidity, c->job.local_name);
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
    sync_event(c, "messagelistloaded", "%s\n%s\n%zu", c->remote_repo, c->job.remote_name, c->nfar);
    LOG_DEBUG(LOGC_SYNC, "%s: %zu remote, %zu local, %zu in status, %zu intents",
              c->job.remote_name, c->nfar, c->nl ? c->nl->n : 0, c->nsmsgs, c->nin);
    run_plan(c);
}

/* ---- entry point ---------------------------------------------------------------------- */

/* The check (sync.h): the remote state from LIST-STATUS stands in for the
 * SELECT; the local folder is opened (never created) and scanned only when
 * that state is the one recorded. */
static int check_folder(struct sync_ctx *c)
{
    const struct sync_remote_status *rs = c->job.remote_status;
    c->check_only = true;
    c->fi.uidvalidity = rs->uidvalidity;
    c->fi.uidnext = rs->uidnext;
    c->fi.exists = rs->messages;
    c->fi.highestmodseq = rs->highestmodseq;
    c->fi.nomodseq = rs->highestmodseq == 0;
    int rc = repo_maildir_open(c->job.maildir, c->job.local_name, 0, on_local_open, c);
    if (rc < 0)
        return rc;
    c->pending = 1;
    c->next = NULL;
    return 0;
}

int sync_folder(const struct sync_folder_job *job, sync_folder_cb cb, void *arg)
{
    if (!job || !cb || (!job->conn && !job->remote_status) || !job->maildir || !job->status ||
        !job->remote_name || !job->local_name)
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
    c->std_letters = MAILDIR_FLAG_ALL;
    for (int i = 0; i < 26; i++) {
        c->kw[i] = a && a->local ? a->local->customflag[i] : NULL;
        if (c->kw[i] && *c->kw[i])
            c->kw_letters |= 1u << i;
        else
            c->kw[i] = NULL;
        if (c->kw[i] && strcasecmp(c->kw[i], "$Forwarded") == 0)
            c->std_letters &= (uint8_t)~MAILDIR_FLAG_P;
    }
    if (!job->conn) {
        int rc = check_folder(c);
        if (rc < 0)
            free(c);
        return rc;
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
void sync_uids_text(const uint32_t *u, size_t n, char *buf, size_t cap)
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

void sync_plan_counts(const struct plan *p, struct sync_result *r)
{
    r->downloaded = p->ndownloads;
    r->uploaded = p->nuploads;
    r->paired = p->npairs;
    r->flags_far = count_flag_side(p, PLAN_FAR);
    r->flags_near = count_flag_side(p, PLAN_NEAR);
    r->deleted_far = p->nfar_deletes;
    r->deleted_near = p->nnear_deletes;
    r->held_back = p->held[0].count + p->held[1].count;
    r->bytes_down = 0;
    for (size_t i = 0; i < p->ndownloads; i++)
        r->bytes_down += p->downloads[i].size;
    r->bytes_up = 0;
    for (size_t i = 0; i < p->nuploads; i++)
        r->bytes_up += p->uploads[i].size;
}

void sync_fill_counts(struct sync_ctx *c)
{
    sync_plan_counts(c->plan, &c->res);
}

/* One line: "folder F: download 3, upload 1, ..." (counts only). */
void sync_result_line(const char *acct, const char *folder, const struct sync_result *r,
                      const char *prefix, char *buf, size_t cap)
{
    snprintf(buf, cap,
             "%s%s: folder %s: download %zu, upload %zu, delete-remote %zu, delete-local %zu, "
             "flags-remote %zu, flags-local %zu, pair %zu, held-back %zu",
             prefix, acct, folder, r->downloaded, r->uploaded, r->deleted_far, r->deleted_near,
             r->flags_far, r->flags_near, r->paired, r->held_back);
}

void sync_summary_line(const struct sync_ctx *c, const char *prefix, char *buf, size_t cap)
{
    sync_result_line(c->acct_name, c->job.remote_name, &c->res, prefix, buf, cap);
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
        sync_uids_text(u, p->ndownloads, set, sizeof set);
        PL("%s%s: folder %s: download %zu messages: UIDs %s", pre, c->acct_name, c->job.remote_name,
           p->ndownloads, set);
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
        sync_uids_text(u, p->nfar_deletes, set, sizeof set);
        PL("%s%s: folder %s: delete %zu remote messages: UIDs %s", pre, c->acct_name,
           c->job.remote_name, p->nfar_deletes, set);
    }
    if (p->nnear_deletes) {
        for (size_t i = 0; i < p->nnear_deletes; i++)
            u[i] = p->near_deletes[i].near_uid;
        sync_sort_uids(u, p->nnear_deletes);
        sync_uids_text(u, p->nnear_deletes, set, sizeof set);
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
        sync_uids_text(u, k, set, sizeof set);
        PL("%s%s: folder %s: change flags of %zu %s messages: UIDs %s", pre, c->acct_name,
           c->job.remote_name, k, side == PLAN_FAR ? "remote" : "local", set);
    }
    if (p->npairs)
        PL("%s%s: folder %s: pair %zu messages found on both sides", pre, c->acct_name,
           c->job.remote_name, p->npairs);
    for (int s = 0; s < 2; s++)
        if (p->skipped[s].size || p->skipped[s].age || p->skipped[s].readonly ||
            p->skipped[s].ignored)
            PL("%s%s: folder %s: not copied to the %s side: %zu too large, %zu too old, %zu "
               "readonly, %zu in copy_ignore_eval",
               pre, c->acct_name, c->job.remote_name, s == PLAN_FAR ? "remote" : "local",
               p->skipped[s].size, p->skipped[s].age, p->skipped[s].readonly,
               p->skipped[s].ignored);
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
    if (sync_guard_text(c->plan, c->acct_name, c->guard_msg, sizeof c->guard_msg))
        c->guard_rc = OIMAP_EGUARD;
}

/* The message for deletions the mass-deletion guard held back: returns
 * OIMAP_EGUARD with it in buf, or 0 when the plan held nothing back. */
int sync_guard_text(const struct plan *p, const char *acct_name, char *buf, size_t cap)
{
    int rc = 0;
    for (int b = 0; b < 2; b++) {
        const struct plan_held *h = &p->held[b];
        if (!h->count)
            continue;
        const char *lost = b == PLAN_FAR ? "local" : "remote"; /* where they vanished */
        const char *keep = b == PLAN_FAR ? "remote" : "local";
        char acct[128];
        size_t i;
        for (i = 0; acct_name[i] && i + 1 < sizeof acct; i++)
            acct[i] = acct_name[i] == ' ' ? '_' : acct_name[i];
        acct[i] = 0;
        rc = OIMAP_EGUARD;
        snprintf(buf, cap,
                 "%zu deletions held back by the mass-deletion guard: %s; the %s copies were "
                 "kept. If these deletions are wanted, let them through once with "
                 "-k Account_%s:deletion_guard=no",
                 h->count,
                 h->reason == PLAN_GUARD_EMPTY
                     ? (b == PLAN_FAR ? "the local folder is empty" : "the remote folder is empty")
                     : (b == PLAN_FAR ? "that many messages vanished locally"
                                      : "that many messages vanished remotely"),
                 keep, acct);
        (void)lost;
    }
    return rc;
}

static void sync_report_dry(struct sync_ctx *c)
{
    char line[512];
    sync_fill_counts(c);
    plan_lines(c, true);
    sync_summary_line(c, "[dry-run] ", line, sizeof line);
    log_info("%s", line);
}
