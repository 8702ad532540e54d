/* sync_imap.c - one folder pair of two IMAP servers (sync_imap.h).
 *
 * Both sides are IMAP, so almost everything is written once for a side
 * (struct side: its connection, folder, listing) and used for far and near
 * alike: select, list, search, store, expunge, and a copy from one side to
 * the other.  This file selects, lists, plans and reports; sync_imap_exec.c
 * executes the plan.
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
#include "sync_imap_int.h"
#include "sync_int.h"

/* ---- steps and failures --------------------------------------------------- */

static void finish(struct simap *s);

void simap_hold(struct simap *s)
{
    s->pending++;
}

/* One operation ended; when it was the last, the next step runs (several in
 * a row when a step starts nothing), or the folder ends. */
void simap_release(struct simap *s)
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
void simap_step(struct simap *s, step_fn fn, step_fn then_fn)
{
    s->next = then_fn;
    simap_hold(s);
    if (s->rc == 0)
        fn(s);
    simap_release(s);
}

/* The same, but then_fn runs even if something failed. */
void simap_step_always(struct simap *s, step_fn fn, step_fn then_fn)
{
    s->next = then_fn;
    s->next_on_fail = true;
    simap_hold(s);
    if (s->rc == 0)
        fn(s);
    simap_release(s);
}

void simap_fail(struct simap *s, int rc, const char *fmt, ...)
{
    char msg[sizeof s->res.error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (int i = 0; i < 2; i++) {
        struct imap_conn *c = s->side[i].conn;
        if (c && (imap_conn_error(c) || imap_conn_state(c) == IMAP_CONN_CLOSED))
            s->res.conn_failed = true;
    }
    if (s->rc < 0)
        return; /* the first error is the one reported */
    s->rc = rc < 0 ? rc : -EIO;
    memcpy(s->res.error, msg, sizeof msg);
}

/* A failed command on side d: the server's words, or the connection's. */
void simap_fail_cmd(struct side *d, int st, const struct imap_result *res, const char *what)
{
    if (st != OIMAP_ENO && st != OIMAP_EBAD)
        d->s->res.conn_failed = true;
    simap_fail(d->s, st, "%s (%s server): %s", what, d->what,
               res && res->text && *res->text ? res->text : err_str(st));
}

struct status_txn *simap_txn_open(struct simap *s)
{
    struct status_txn *t = NULL;
    int rc = status_txn_begin(s->job.base.status, &t);
    if (rc < 0)
        simap_fail(s, rc, "status store: %s", err_str(rc));
    return t;
}

/* Commit t when rc is 0, else abort it; either way it is gone. */
void simap_txn_close(struct simap *s, struct status_txn **t, int rc)
{
    if (rc == 0)
        rc = status_txn_commit(t);
    else
        status_txn_abort(t);
    if (rc < 0)
        simap_fail(s, rc, "status store: %s", err_str(rc));
}

/* ---- small helpers -------------------------------------------------------- */

ptrdiff_t simap_side_find(const struct side *d, uint32_t uid)
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

uint64_t simap_side_size(const struct side *d, uint32_t uid)
{
    ptrdiff_t i = simap_side_find(d, uid);
    return i >= 0 ? d->v[i].size : 0;
}

/* A status record as plan.h describes it: {far, near} paired, {far, 0}
 * far-only, {0, near} near-only (status.h's key of its own). */
int simap_rec_put(struct simap *s, struct status_txn *t, uint32_t far, uint32_t near,
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

int simap_rec_forget(struct simap *s, struct status_txn *t, uint32_t far, uint32_t near)
{
    int rc = far ? status_txn_msg_del(t, s->frec.id, far)
                 : status_txn_msg_del_local(t, s->frec.id, near);
    return rc == -ENOENT ? 0 : rc;
}

int simap_intent_drop(struct simap *s, struct status_txn *t, uint64_t id)
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

int simap_kw_store(struct simap *s, struct status_txn *t)
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
        simap_fail(s, OIMAP_ESTATUS,
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
        simap_fail_cmd(d, st, res, "cannot select the remote folder");
    } else if (!res->folder || !res->folder->uidvalidity) {
        simap_fail(s, OIMAP_EPROTO, "the remote server sent no UIDVALIDITY");
    } else {
        d->fi = *res->folder;
        int rc = load_status(s);
        if (rc < 0)
            simap_fail(s, rc, "cannot read the status store: %s", err_str(rc));
        s->next = select_near;
    }
    simap_release(s);
}

static void on_created(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct side *d = arg;
    (void)c;
    if (st < 0 && !(res && res->code == IMAP_CODE_ALREADYEXISTS))
        simap_fail_cmd(d, st, res, "cannot create the local folder");
    else
        log_info("%s: created folder %s on the local server", d->s->acct, d->name);
    d->s->next = select_near;
    simap_release(d->s);
}

/* The local folder cannot be selected: create it when that is allowed and
 * safe, or report it. */
static void near_missing(struct side *d, int st, const struct imap_result *res)
{
    struct simap *s = d->s;
    const struct sync_folder_job *j = &s->job.base;
    if (s->nsmsgs) {
        /* plan.h: a missing folder is not an empty listing */
        simap_fail(
            s, OIMAP_EGUARD,
            "the local folder %s cannot be selected (%s) but the status store knows %zu of its "
            "messages: nothing done (restore the folder, or remove it from the sync)",
            d->name, res && res->text && *res->text ? res->text : err_str(st), s->nsmsgs);
    } else if (!j->create_local || d->ro) {
        simap_fail_cmd(d, st, res, "the local folder cannot be selected (createfolders is off)");
    } else if (j->dry_run) {
        d->missing = true; /* would be created: an empty listing */
        s->next = list_both;
    } else if (s->tried_create) {
        simap_fail_cmd(d, st, res, "cannot select the local folder it created");
    } else {
        s->tried_create = true;
        int rc = imap_conn_create(d->conn, d->name, on_created, d);
        if (rc < 0)
            simap_fail(s, rc, "CREATE %s: %s", d->name, err_str(rc));
        else
            simap_hold(s);
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
        simap_fail_cmd(d, st, res, "cannot select the local folder");
    } else if (!res->folder || !res->folder->uidvalidity) {
        simap_fail(s, OIMAP_EPROTO, "the local server sent no UIDVALIDITY");
    } else {
        d->fi = *res->folder;
        s->next = list_both;
    }
    simap_release(s);
}

static int side_select(struct side *d, imap_done_cb done)
{
    struct imap_select_opts so = {.readonly = d->ro || d->s->job.base.dry_run};
    int rc = imap_conn_select(d->conn, d->name, &so, done, d);
    if (rc < 0)
        simap_fail(d->s, rc, "cannot select the %s folder %s: %s", d->what, d->name, err_str(rc));
    else
        simap_hold(d->s);
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
        simap_fail(s, -ENOMEM, "out of memory");
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 256;
        struct smsg *a = realloc(d->v, cap * sizeof *a);
        if (!a) {
            simap_fail(s, -ENOMEM, "out of memory");
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
        simap_fail_cmd(d, st, res, "listing the folder failed");
    else if (d->n > 1)
        qsort(d->v, d->n, sizeof *d->v, cmp_smsg);
    simap_release(d->s);
}

static void list_setup(struct simap *s)
{
    for (int i = 0; i < 2 && s->rc == 0; i++) {
        struct side *d = &s->side[i];
        if (d->missing || d->fi.exists == 0)
            continue;
        int rc = imap_conn_fetch_list(d->conn, "1:*", NULL, on_list_msg, on_listed, d);
        if (rc < 0)
            simap_fail(s, rc, "cannot list the %s folder: %s", d->what, err_str(rc));
        else
            simap_hold(s);
    }
}

static void list_both(struct simap *s)
{
    LOG_DEBUG(LOGC_SYNC, "%s: remote uidvalidity %u exists %u, local uidvalidity %u exists %u",
              s->job.base.remote_name, s->side[PLAN_FAR].fi.uidvalidity,
              s->side[PLAN_FAR].fi.exists, s->side[PLAN_NEAR].fi.uidvalidity,
              s->side[PLAN_NEAR].fi.exists);
    simap_step(s, list_setup, plan_step);
}

/* ---- 3. plan (intents looked up first) -------------------------------------- */

static void report_dry(struct simap *s);
static void plan_lines(struct simap *s, bool info);

/* The flags both sides can hold.  A server whose PERMANENTFLAGS lacks \*
 * keeps no keyword: their changes are not synced at all then (a keyword
 * STOREd there and lost would look removed on that side and be removed
 * from the other).  Copies still carry them. */
static plan_flags_t flags_mask(const struct simap *s)
{
    for (int i = 0; i < 2; i++) {
        const struct imap_folder_info *fi = &s->side[i].fi;
        if (!s->side[i].missing && fi->has_permanentflags && !(fi->permanentflags & IMAP_FLAG_ANY))
            return PLAN_F_DRAFT | PLAN_F_FLAGGED | PLAN_F_ANSWERED | PLAN_F_SEEN | PLAN_F_DELETED;
    }
    return ~(plan_flags_t)0;
}

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
    plan_flags_t mask = flags_mask(s);
    for (size_t i = 0; i < far->n; i++) {
        const struct smsg *m = &far->v[i];
        s->pfar[i] = (struct plan_far_msg){m->uid, m->flags & mask, m->size, m->date};
    }
    for (size_t i = 0; i < near->n; i++) {
        const struct smsg *m = &near->v[i];
        s->pnear[i] = (struct plan_near_msg){m->uid, m->flags & mask, true, m->size, m->date};
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
            p->near_idx = it->resolved ? simap_side_find(near, it->found) : -1;
        } else {
            p->kind = PLAN_INTENT_UPLOAD;
            p->far_uid = it->resolved ? it->found : 0;
            p->near_idx = simap_side_find(near, it->src_uid);
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
    sync_plan_dates(&s->job.base, o);
    o->allow_mass_delete = s->job.base.allow_mass_delete;
    return 0;
}

static void lookups_done(struct simap *s);
static void lookup_next(struct simap *s);

static bool listing_stale(const struct simap *s)
{
    for (size_t i = 0; !s->relisted && i < s->nin; i++) {
        const struct intent *it = &s->in[i];
        if (it->resolved && it->found && simap_side_find(&s->side[it->dst], it->found) < 0)
            return true;
    }
    return false;
}

/* Both listings again, with the message counts as they are now. */
static void relist_setup(struct simap *s)
{
    for (int i = 0; i < 2; i++) {
        struct side *d = &s->side[i];
        const struct imap_folder_info *now = d->missing ? NULL : imap_conn_folder(d->conn);
        for (size_t k = 0; k < d->n; k++)
            free(d->v[k].kw);
        d->n = 0;
        if (now)
            d->fi.exists = now->exists;
    }
    list_setup(s);
}

static void on_lookup(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct search *q = arg;
    struct simap *s = q->s;
    struct intent *it = &s->in[q->i];
    (void)c;
    free(q);
    if (st < 0) {
        simap_fail_cmd(&s->side[it->dst], st, res, "UID SEARCH HEADER " SYNC_TUID_HEADER " failed");
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
    simap_release(s);
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
            simap_fail(s, rc, "cannot search for an interrupted copy: %s", err_str(rc));
            return;
        }
        *q = (struct search){s, pl->intent};
        simap_hold(s);
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
    simap_release(s);
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
    simap_hold(s);
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
        simap_step(s, recheck_setup, lookups_done);
        return;
    }
    if (listing_stale(s)) {
        /* A copy found that the listing does not show arrived after it (an
         * APPEND of the killed run the server stored late): planned from
         * this listing it would look absent and be copied again. */
        LOG_DEBUG(LOGC_SYNC, "%s: a copy arrived after the listing: listing again",
                  s->job.base.remote_name);
        s->relisted = true;
        simap_step(s, relist_setup, plan_step);
        return;
    }
    plan_step(s);
}

static void plan_step(struct simap *s)
{
    struct plan_input in;
    char why[400];
    if (sync_startdate_check(&s->job.base, !s->have_frec, s->side[PLAN_FAR].n, s->side[PLAN_NEAR].n,
                             why, sizeof why) < 0) {
        simap_fail(s, OIMAP_ECONFIG, "%s", why);
        return;
    }
    int rc = build_input(s, &in);
    if (rc == 0) {
        plan_free(&s->plan);
        rc = plan_make(&in, &s->plan);
    }
    if (rc < 0) {
        simap_fail(s, rc, "cannot plan the sync: %s", err_str(rc));
        return;
    }
    sync_drop_ignored(&s->job.base, s->plan);
    const struct plan *p = s->plan;
    if (p->nlookups) {
        if (s->looked_up) {
            simap_fail(s, -EINVAL, "the planner asked for lookups twice");
            return;
        }
        s->looked_up = true;
        LOG_DEBUG(LOGC_SYNC, "%s: %zu interrupted copies to look up", s->job.base.remote_name,
                  p->nlookups);
        simap_step(s, lookups_setup, lookups_done);
        return;
    }
    if (p->error) {
        int side = (p->uidvalidity_changed & (1u << PLAN_FAR)) ? PLAN_FAR : PLAN_NEAR;
        int ss = side == PLAN_FAR ? STATUS_REMOTE : STATUS_LOCAL;
        simap_fail(s, OIMAP_EUIDVALIDITY,
                   "the UIDVALIDITY of the %s folder %s changed (recorded %u, now %u): its UIDs no "
                   "longer name the same messages, so nothing was synced or deleted",
                   s->side[side].what, s->side[side].name, s->frec.uidvalidity[ss],
                   s->side[side].fi.uidvalidity);
        return;
    }
    sync_drop_ignored(&s->job.base, s->plan); /* copy_ignore_eval */
    if (sync_guard_text(p, s->acct, s->guard_msg, sizeof s->guard_msg))
        s->guard_rc = OIMAP_EGUARD;
    if (log_debug_on(LOGC_SYNC))
        plan_lines(s, false);
    if (s->job.base.dry_run)
        report_dry(s);
    else
        simap_execute(s);
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
