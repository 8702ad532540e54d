/* sync_imap_exec.c - execute the plan of an IMAP <-> IMAP folder pair:
 * plan.h's "Executing a plan", with the order of effects and status commits
 * the crash-safety argument at the top of sync_imap.c relies on. */
#include "sync_imap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "imap_conn.h"
#include "log.h"
#include "plan.h"
#include "status.h"
#include "sync_imap_int.h"
#include "sync_int.h"
#include "xfer.h"

/* ---- 5. execute ----------------------------------------------------------------
 * plan.h's "Executing a plan": 0/1 record UIDVALIDITYs, dropped intents and
 * record updates; 2 pairs; 3/4 copies to near, then to far; 5 flags; 6
 * deletions; then the folder record. */

static void copies_start(struct simap *s);
static void copy_batch(struct simap *s);
static void flags_step(struct simap *s);
static void deletes_step(struct simap *s);
static void final_commit(struct simap *s);

void simap_execute(struct simap *s)
{
    const struct plan *p = s->plan;
    sync_plan_counts(p, &s->res);
    s->res.downloaded = s->res.uploaded = 0; /* counted as they happen */
    if (s->have_frec && !p->record_uidvalidity && !p->ndrop_intents && !p->nrecs && !p->npairs &&
        !s->kw_dirty) {
        copies_start(s); /* nothing to record first (a resync): no commit */
        return;
    }
    struct status_txn *t = simap_txn_open(s);
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
        rc = simap_kw_store(s, t);
    for (size_t i = 0; rc == 0 && i < p->ndrop_intents; i++)
        rc = simap_intent_drop(s, t, s->in[p->drop_intents[i]].id);
    for (size_t i = 0; rc == 0 && i < p->nrecs; i++) {
        const struct plan_rec_update *r = &p->recs[i];
        if (r->op == PLAN_REC_FORGET)
            rc = simap_rec_forget(s, t, r->far_uid, r->near_uid);
        else if (r->op == PLAN_REC_KEEP_FAR)
            rc = simap_rec_put(s, t, r->far_uid, 0, r->flags,
                               simap_side_size(&s->side[PLAN_FAR], r->far_uid));
        else
            rc = simap_rec_put(s, t, 0, r->near_uid, r->flags,
                               simap_side_size(&s->side[PLAN_NEAR], r->near_uid));
    }
    /* 2: pairs (resolved intents): both halves exist already. */
    for (size_t i = 0; rc == 0 && i < p->npairs; i++) {
        const struct plan_pair *pp = &p->pairs[i];
        rc = simap_rec_put(s, t, pp->far_uid, pp->near_uid, pp->flags,
                           s->side[PLAN_NEAR].v[pp->near_idx].size);
        if (rc == 0 && pp->intent >= 0)
            rc = simap_intent_drop(s, t, s->in[pp->intent].id);
    }
    simap_txn_close(s, &t, rc);
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
        simap_fail_cmd(m->status == OIMAP_ENO || m->status == OIMAP_EBAD ? dst
                                                                         : &s->side[1 - s->cdst],
                       m->status, res, what);
    }
}

static void on_xfer_done(int st, void *arg)
{
    struct simap *s = arg;
    if (st < 0)
        simap_fail(s, st, "copying messages to the %s folder stopped: %s", s->side[s->cdst].what,
                   err_str(st));
    simap_release(s);
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
        simap_fail_cmd(&s->side[s->cdst], st, res, "UID SEARCH for a copied message failed");
    } else {
        uint32_t uid = imap_result_highest_uid(res); /* the newest: the one just appended */
        if (uid > cp->dst_uid)
            cp->dst_uid = uid;
        if (!cp->dst_uid)
            simap_fail(
                s, OIMAP_EPROTO,
                "the %s server accepted %s UID %u but it cannot be found by its %s header; it "
                "will be looked up again next time",
                s->side[s->cdst].what, s->side[1 - s->cdst].what, cp->src_uid, SYNC_TUID_HEADER);
    }
    copy_search_next(s, next);
    simap_release(s);
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
            simap_fail(s, rc, "UID SEARCH: %s", err_str(rc));
            return;
        }
        *q = (struct search){s, i};
        simap_hold(s);
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
    struct status_txn *t = simap_txn_open(s);
    int rc = 0;
    for (size_t i = 0; t && rc == 0 && i < s->cn; i++) {
        const struct copy *cp = &s->cv[i];
        int st = s->xv[i].status;
        if (st == 0 && cp->dst_uid) {
            uint32_t far = s->cdst == PLAN_NEAR ? cp->src_uid : cp->dst_uid;
            uint32_t near = s->cdst == PLAN_NEAR ? cp->dst_uid : cp->src_uid;
            rc = simap_rec_put(s, t, far, near, cp->flags, s->xv[i].size);
            if (rc == 0)
                rc = simap_intent_drop(s, t, cp->intent);
            if (rc == 0 && s->cdst == PLAN_NEAR)
                s->res.downloaded++;
            else if (rc == 0)
                s->res.uploaded++;
        } else if (st == XFER_GONE || st == OIMAP_ENO || st == OIMAP_EBAD) {
            /* nothing was stored: the source went, or the server said no */
            rc = simap_intent_drop(s, t, cp->intent);
        }
        /* else its answer never came: the intent stays for the lookup */
    }
    if (t)
        simap_txn_close(s, &t, rc);
    copy_free_batch(s);
    if (s->rc == 0)
        copy_batch(s);
}

static void copy_sent(struct simap *s)
{
    simap_step_always(s, copy_search_setup, copy_record);
}

/* The intents, with their markers, are durable before the first APPEND. */
static int copy_intents(struct simap *s)
{
    struct status_txn *t = simap_txn_open(s);
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
    simap_txn_close(s, &t, rc);
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
        simap_fail(s, rc, "out of memory");
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
        simap_fail(s, rc, "cannot copy messages: %s", err_str(rc));
        return; /* the intents stay: the next run looks them up */
    }
    simap_hold(s);
    s->next = copy_sent;
    s->next_on_fail = true;
}

/* -- 5: flags: grouped UID STOREs on each side, then one commit. -- */

static void on_stored(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct side *d = arg;
    (void)c;
    if (st < 0)
        simap_fail_cmd(d, st, res, "UID STORE failed");
    simap_release(d->s);
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
            simap_fail(s, rc, "UID STORE: %s", err_str(rc));
            return;
        }
        simap_hold(s);
        u += used;
        n -= used;
    }
}

static void flags_setup(struct simap *s)
{
    struct plan *p = s->plan;
    uint32_t *u = malloc((p->nflags + 1) * sizeof *u);
    if (!u) {
        simap_fail(s, -ENOMEM, "out of memory");
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
        struct status_txn *t = simap_txn_open(s);
        int rc = 0;
        if (!t)
            return;
        for (size_t i = 0; rc == 0 && i < p->nflags; i++) {
            const struct plan_flag_update *f = &p->flags[i];
            rc = simap_rec_put(s, t, f->far_uid, f->near_uid, f->synced,
                               simap_side_size(&s->side[PLAN_FAR], f->far_uid));
        }
        simap_txn_close(s, &t, rc);
    }
    if (s->rc == 0)
        deletes_step(s);
}

static void flags_step(struct simap *s)
{
    simap_step(s, flags_setup, flags_commit);
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
        simap_fail(s, -ENOMEM, "out of memory");
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
        simap_fail_cmd(d, st, res, "EXPUNGE failed");
    simap_release(d->s);
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
                    simap_fail(s, rc, "EXPUNGE: %s", err_str(rc));
                else
                    simap_hold(s);
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
        if (n && !t && !(t = simap_txn_open(s)))
            return;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (d[i].expunge && sd->expunged)
                rc = simap_rec_forget(s, t, d[i].far_uid, d[i].near_uid);
            else if (side == PLAN_FAR)
                rc = simap_rec_put(s, t, d[i].far_uid, 0, d[i].flags,
                                   simap_side_size(sd, d[i].far_uid));
            else
                rc = simap_rec_put(s, t, 0, d[i].near_uid, d[i].flags,
                                   simap_side_size(sd, d[i].near_uid));
        }
    }
    if (t)
        simap_txn_close(s, &t, rc);
    if (s->rc == 0)
        final_commit(s);
}

static void deletes_stored(struct simap *s)
{
    simap_step(s, expunge_setup, deletes_commit);
}

static void deletes_step(struct simap *s)
{
    simap_step(s, deletes_setup, deletes_stored);
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
        struct status_txn *t = simap_txn_open(s);
        if (!t)
            return;
        simap_txn_close(s, &t, status_txn_folder_put(t, &f));
    }
    const struct sync_result *r = &s->res;
    if (s->rc == 0 && (r->downloaded || r->uploaded || r->deleted_far || r->deleted_near ||
                       r->flags_far || r->flags_near || r->paired || r->held_back)) {
        char line[512];
        sync_result_line(s->acct, s->job.base.remote_name, r, "", line, sizeof line);
        log_info("%s", line);
    }
}
