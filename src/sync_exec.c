/* sync_exec.c - execute a folder's plan: plan.h's "Executing a plan", in
 * batches, keeping the order of effects and status commits that the crash
 * safety argument relies on (see the top of sync.c and each phase below). */
#include "sync.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "eol.h"
#include "err.h"
#include "hdr_filter.h"
#include "imap_conn.h"
#include "log.h"
#include "maildir_name.h"
#include "plan.h"
#include "repo_maildir.h"
#include "status.h"
#include "sync_int.h"

/* ---- execute ------------------------------------------------------------------------ */

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

void sync_execute(struct sync_ctx *c)
{
    const struct plan *p = c->plan;
    if (c->have_frec && !p->record_uidvalidity && !p->ndrop_intents && !p->nrecs) {
        /* Nothing to record before the copies (a resync): no commit. */
        c->folder_id = c->frec.id;
        sync_fill_counts(c);
        c->res.downloaded = c->res.uploaded = 0;
        sync_phase(c, pairs_setup, pairs_renamed);
        return;
    }
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
    sync_fill_counts(c);
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
    struct eol_dec eol;            /* CRLF -> LF: Maildir files hold LF */
    bool want_pause;
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
    b->eol = (struct eol_dec){0};
    int rc = repo_maildir_deliver_begin(b->c->mf, dl_drain, b, &b->w);
    if (rc < 0) {
        b->w = NULL;
        b->failed_write = true;
        sync_fail(b->c, rc, "cannot write a local message: %s", err_str(rc));
    }
}

/* Segments of the message with its CRLFs turned into LFs, as offlineimap and
 * mbsync store messages (no extra copy: segments point into the input). */
static int dl_emit(void *arg, const char *p, size_t n)
{
    struct dl_batch *b = arg;
    int rc = repo_maildir_write(b->w, p, n);
    if (rc == 1) {
        b->want_pause = true;
        return 0;
    }
    return rc;
}

static void dl_data(struct imap_conn *conn, const char *chunk, size_t len, void *arg)
{
    struct dl_batch *b = arg;
    if (!b->w)
        return;
    b->want_pause = false;
    int rc = eol_dec_feed(&b->eol, chunk, len, dl_emit, b);
    if (rc == 0 && b->want_pause && !b->paused) {
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
    int erc = eol_dec_end(&b->eol, dl_emit, b);
    if (erc < 0) {
        repo_maildir_deliver_abort(b->w);
        b->w = NULL;
        sync_fail(c, erc, "UID %u: cannot write the local message: %s", d->far_uid, err_str(erc));
        return;
    }
    struct repo_maildir_delivery dv = {.uid = d->far_uid, .mtime = -1, .name_time = -1};
    sync_plan_to_maildir(c, d->flags, &dv.flags);
    /* offlineimap keeps the delivery time unless asked otherwise; we use
     * INTERNALDATE for both options (it is the server's idea of the date). */
    if (c->job.acct && c->job.acct->local && c->job.acct->local->utime_from_header &&
        (f->present & IMAP_FETCH_DATE))
        dv.mtime = (int64_t)f->internaldate;
    if (c->job.acct && c->job.acct->local && c->job.acct->local->filename_use_mail_timestamp &&
        (f->present & IMAP_FETCH_DATE))
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
            sync_fail(c, items[k].st, "UID %u: cannot deliver the local message: %s", d[i].far_uid,
                      err_str(items[k].st));
            continue;
        }
        done[i - b->start] = true;
        rc = put_rec(c, t, d[i].far_uid, d[i].far_uid, d[i].flags, d[i].size);
        if (rc == 0)
            rc = status_txn_intent_del(t, c->folder_id, b->intent_ids[i - b->start]);
        if (rc == 0) {
            c->res.downloaded++;
            c->res.downloaded_unseen += !(d[i].flags & PLAN_F_SEEN);
        }
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
    LOG_DEBUG(LOGC_SYNC, "%s: fetching %zu messages: %s", c->job.remote_name, end - start, set);
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
 * (with MULTIAPPEND: a few commands carrying many messages each)
 * -> UID from APPENDUID, else UID SEARCH HEADER -> rename the files to carry
 * U= (one barrier) -> one commit recording the pairs, deleting the intents.
 *
 * MULTIAPPEND keeps the same invariants: every message's intent, with its
 * marker, is committed before the command that carries it is queued; the
 * server stores all of a command's messages or none (RFC 3502), so a crash
 * or a dropped connection leaves intents that the next run resolves by
 * marker exactly as after single APPENDs.  APPENDUID's UIDs are mapped to
 * the messages by position only when the set names exactly one ascending
 * UID per message (imap_uidset_expand()); otherwise each message is found
 * by its marker.  A refused MULTIAPPEND stored nothing (RFC 3502; each
 * marker is still searched for first, in case a server stored some): its
 * messages are sent again one by one.  A message the server refuses (a
 * single APPEND answered NO or BAD, or one sent alone after a refused
 * MULTIAPPEND) is left with its intent (the next run looks it up, finds it
 * absent and tries again) while the others are recorded, and the folder
 * carries on with flags and deletions, as offlineimap does; it fails at
 * its end, naming the message, so the run exits non-zero. -- */

struct sync_upload {
    struct sync_ctx *c;
    size_t pidx;     /* plan->uploads[pidx] */
    size_t near_idx; /* the file */
    char tuid[STATUS_TUID_LEN + 1];
    char hdr[64];
    size_t hdr_len, hdr_off;
    uint64_t fsize, sent;
    uint64_t extra; /* CRs added: the file has LF line ends, IMAP wants CRLF */
    uint64_t kept;  /* bytes of the file sent: all but the filterheaders fields */
    struct eol_enc enc_count, enc_send;
    struct hdr_filter hf_count, hf_send; /* filterheaders, for each pass */
    int64_t mtime;
    uint64_t intent_id;
    uint32_t uid;
    bool appended;
    bool refused; /* its APPEND was refused: not recorded, intent kept */
    bool rs_due;  /* in a refused MULTIAPPEND: its marker is to be searched */
    /* streaming */
    struct repo_maildir_reader *r;
    bool r_started, r_eof, r_paused;
    int r_err;
    char *buf;
    size_t bcap, blen, boff;
};

static void flags_start(struct sync_ctx *c);
static void ul_batch(struct sync_ctx *c);

void sync_exec_free(struct sync_ctx *c)
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

static void ul_stat_next(struct sync_ctx *c);

static int ul_count_emit(void *arg, const char *p, size_t n)
{
    struct sync_upload *u = arg;
    u->kept += n;
    u->extra += eol_enc_count(&u->enc_count, p, n);
    return 0;
}

/* Counting pass: the APPEND literal's size must be known before its first
 * byte; the filterheaders fields will not travel, and every bare LF of the
 * rest will travel as CRLF.  The sending pass runs the same bytes through
 * the same filters (hdr_filter.h), so it sends exactly this many. */
static void on_ul_count(struct repo_maildir_reader *r, int st, const void *data, size_t len,
                        void *arg)
{
    struct sync_upload *u = arg;
    struct sync_ctx *c = u->c;
    (void)r;
    if (st < 0) {
        sync_fail(c, st, "cannot read local message %s: %s", c->nl->v[u->near_idx].name,
                  err_str(st));
        sync_op_end(c);
    } else if (len == 0) {
        hdr_filter_end(&u->hf_count, ul_count_emit, u);
        ul_stat_next(c);
        sync_op_end(c);
    } else {
        hdr_filter_feed(&u->hf_count, data, len, ul_count_emit, u);
    }
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
        const struct repo_maildir_entry *e = &c->nl->v[u->near_idx];
        struct repo_maildir_reader *cr;
        int rc = repo_maildir_read(c->mf, e->in_new, e->name, on_ul_count, u, &cr);
        if (rc == 0)
            return; /* on_ul_count ends the operation */
        sync_fail(c, rc, "cannot read local message %s: %s", e->name, err_str(rc));
    }
    sync_op_end(c);
}

/* Stat and count the next file of the batch.  A few at a time: each
 * reader holds a chunk-sized buffer. */
static void ul_stat_next(struct sync_ctx *c)
{
    if (c->rc < 0 || c->ul_stat_next >= c->nul)
        return;
    struct sync_upload *u = &c->ul[c->ul_stat_next++];
    const struct repo_maildir_entry *e = &c->nl->v[u->near_idx];
    int rc = repo_maildir_stat(c->mf, e->in_new, e->name, on_ul_stat, u);
    if (rc < 0)
        sync_fail(c, rc, "cannot read local message %s: %s", e->name, err_str(rc));
    else
        sync_op_begin(c);
}

static void ul_stat_setup(struct sync_ctx *c)
{
    c->ul_stat_next = 0;
    for (size_t i = 0; i < UL_COUNT_PAR; i++)
        ul_stat_next(c);
}

static int ul_buf_emit(void *arg, const char *p, size_t n)
{
    struct sync_upload *u = arg;
    memcpy(u->buf + u->blen, p, n); /* room: see ul_buf_room */
    u->blen += n;
    return 0;
}

/* Room in u->buf for len bytes from the file, and what filterheaders
 * held back from the previous chunk. */
static bool ul_buf_room(struct sync_upload *u, size_t len)
{
    size_t need = len + (hdr_filter_active(&u->hf_send) ? HDR_FILTER_HOLD : 0);
    /* Sized to the message (most are a few KiB), not to READ_BUF: a batch
     * holds many of these at once. */
    size_t want = u->fsize < READ_BUF ? (size_t)u->fsize : READ_BUF;
    if (want < need)
        want = need;
    if (u->bcap < want) {
        char *nb = realloc(u->buf, want);
        if (nb) {
            u->buf = nb;
            u->bcap = want;
        }
    }
    u->blen = u->boff = 0;
    return u->bcap >= need;
}

static void on_ul_chunk(struct repo_maildir_reader *r, int st, const void *data, size_t len,
                        void *arg)
{
    struct sync_upload *u = arg;
    if (st < 0 || len == 0) {
        u->r_err = st;
        u->r_eof = true;
        u->r = NULL; /* the reader frees itself after this final call */
        /* the end of a field name filterheaders was holding back */
        if (st == 0 && u->hf_send.n_held) {
            if (ul_buf_room(u, 0))
                hdr_filter_end(&u->hf_send, ul_buf_emit, u);
            else
                u->r_err = -ENOMEM;
        }
    } else if (!ul_buf_room(u, len)) {
        u->r_err = -ENOMEM;
        u->r_eof = true;
        repo_maildir_reader_close(r);
        u->r = NULL;
    } else {
        hdr_filter_feed(&u->hf_send, data, len, ul_buf_emit, u);
        u->r_paused = true; /* until the connection has taken it */
        repo_maildir_reader_pause(r);
    }
    imap_conn_append_ready(u->c->job.conn);
}

/* The literal of u is sent (or will never be): free its reader and buffer. */
static void ul_release(struct sync_upload *u)
{
    if (u->r) {
        repo_maildir_reader_close(u->r);
        u->r = NULL;
    }
    free(u->buf);
    u->buf = NULL;
    u->bcap = u->blen = u->boff = 0;
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
        size_t used;
        size_t n = eol_enc_feed(&u->enc_send, u->buf + u->boff, u->blen - u->boff, buf, cap, &used);
        if (n == 0)
            return -EINVAL; /* cap < 2: cannot happen with imap_conn's buffers */
        u->boff += used;
        u->sent += n;
        if (u->sent >= u->kept + u->extra && u->boff == u->blen) {
            /* The whole file is on its way: release the reader (and its
             * chunk buffer) now, not at the tagged OK, which may come
             * after many more pipelined APPENDs. */
            ul_release(u);
            u->r_eof = true;
        }
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

/* The server stored u (APPEND's or MULTIAPPEND's tagged OK); uid: from
 * APPENDUID, or 0. */
static void ul_appended_one(struct sync_ctx *c, struct sync_upload *u, uint32_t uid,
                            uint32_t uidvalidity)
{
    u->appended = true;
    if (uid && (!uidvalidity || uidvalidity == c->fi.uidvalidity))
        u->uid = uid;
    c->ul_done_msgs++;
    c->ul_bytes_done += u->fsize;
    log_progress(c->acct_name, c->job.remote_name, c->ul_done_msgs, c->plan->nuploads,
                 c->ul_bytes_done, c->ul_bytes_total);
    if (sync_is_machine())
        sync_event(c, "copyingmessage", "%s\n%s\n%s\n%s", c->nl->v[u->near_idx].name, c->local_repo,
                   c->job.local_name, c->remote_repo);
}

static void on_appended(struct imap_conn *conn, int st, const struct imap_result *res, void *arg)
{
    struct sync_upload *u = arg;
    struct sync_ctx *c = u->c;
    (void)conn;
    ul_release(u); /* the literal has been sent */
    if (st < 0 && (st == OIMAP_ENO || st == OIMAP_EBAD)) {
        /* This message alone is refused: the others go on (see above).
         * A few lines name messages; the folder's error counts them all. */
        const char *why = res && res->text && *res->text ? res->text : err_str(st);
        u->refused = true;
        if (c->ul_refused < UL_REFUSALS_LOGGED)
            log_error("%s: folder %s: the server refused local message %s: %s", c->acct_name,
                      c->job.remote_name, c->nl->v[u->near_idx].name, why);
        if (!c->ul_refused++)
            snprintf(c->ul_refusal, sizeof c->ul_refusal, "%s: %s", c->nl->v[u->near_idx].name,
                     why);
    } else if (st < 0) {
        char what[400];
        snprintf(what, sizeof what, "APPEND of local message %s failed",
                 c->nl->v[u->near_idx].name);
        sync_fail_imap(c, st, res, what);
    } else {
        ul_appended_one(c, u, res->append_uid, res->append_uidvalidity);
    }
    sync_op_end(c);
}

/* The APPEND of u: the marker header, then the file, pulled by ul_read. */
static void ul_msg(struct sync_ctx *c, struct sync_upload *u, char *kw, size_t kwcap,
                   struct imap_append_msg *m)
{
    plan_flags_t f = c->plan->uploads[u->pidx].flags;
    u->hdr_len = (size_t)snprintf(u->hdr, sizeof u->hdr, "%s: %s\r\n", SYNC_TUID_HEADER, u->tuid);
    sync_imap_keywords(c, f, kw, kwcap);
    *m = (struct imap_append_msg){
        .folder = c->job.remote_name,
        .flags = sync_imap_sys(f),
        .keywords = kw[0] ? kw : NULL,
        .internaldate = u->mtime > 0 ? (time_t)u->mtime : 0,
        .size = u->hdr_len + u->kept + u->extra,
        .read = ul_read,
        .read_arg = u,
    };
}

static int ul_append_one(struct sync_ctx *c, struct sync_upload *u)
{
    char kw[512];
    struct imap_append_msg m;
    ul_msg(c, u, kw, sizeof kw, &m);
    int rc = imap_conn_append(c->job.conn, &m, on_appended, u);
    if (rc < 0) {
        sync_fail(c, rc, "APPEND: %s", err_str(rc));
        return rc;
    }
    c->far_changed = true;
    sync_op_begin(c);
    return 0;
}

/* One MULTIAPPEND: c->ul[first, first + n). */
struct ul_group {
    struct sync_ctx *c;
    size_t first, n;
};

/* Back to before the first byte of u's literal (a refused MULTIAPPEND). */
static void ul_rewind(struct sync_ctx *c, struct sync_upload *u)
{
    const struct config_list *fh = c->job.acct ? &c->job.acct->filterheaders : NULL;
    ul_release(u);
    u->hdr_off = 0;
    u->sent = 0;
    u->r_started = u->r_eof = u->r_paused = false;
    u->r_err = 0;
    u->enc_send = (struct eol_enc){0};
    hdr_filter_init(&u->hf_send, fh ? (const char *const *)fh->v : NULL, fh ? fh->n : 0);
}

/* Before a message of a refused MULTIAPPEND is sent again alone, its marker
 * is looked up: RFC 3502 says a refused command stored nothing, but a server
 * that stored part of it anyway must not get a second copy.  One search at
 * a time: the untagged answers of pipelined SEARCHes cannot be told apart.
 * The APPENDs sent meanwhile carry other markers. */
static void on_refused_search(struct imap_conn *conn, int st, const struct imap_result *res,
                              void *arg);

static void ul_refused_search_next(struct sync_ctx *c)
{
    if (c->ul_rs_busy)
        return;
    for (size_t i = 0; i < c->nul && c->rc == 0; i++) {
        struct sync_upload *u = &c->ul[i];
        if (!u->rs_due)
            continue;
        u->rs_due = false;
        int rc =
            imap_conn_search_header(c->job.conn, SYNC_TUID_HEADER, u->tuid, on_refused_search, u);
        if (rc < 0) {
            sync_fail(c, rc, "UID SEARCH: %s", err_str(rc));
            return;
        }
        c->ul_rs_busy = true;
        sync_op_begin(c);
        return;
    }
}

static void on_refused_search(struct imap_conn *conn, int st, const struct imap_result *res,
                              void *arg)
{
    struct sync_upload *u = arg;
    struct sync_ctx *c = u->c;
    (void)conn;
    c->ul_rs_busy = false;
    if (st < 0) {
        sync_fail_imap(c, st, res, "UID SEARCH for a local message of a refused APPEND failed");
    } else if (c->rc == 0) {
        uint32_t uid = imap_result_highest_uid(res);
        if (uid) {
            log_warn("%s: folder %s: local message %s was stored although its APPEND was "
                     "refused; it is not sent again",
                     c->acct_name, c->job.remote_name, c->nl->v[u->near_idx].name);
            ul_appended_one(c, u, uid, 0);
        } else {
            ul_rewind(c, u);
            ul_append_one(c, u);
        }
        ul_refused_search_next(c);
    }
    sync_op_end(c);
}

static void on_multi_appended(struct imap_conn *conn, int st, const struct imap_result *res,
                              void *arg)
{
    struct ul_group *g = arg;
    struct sync_ctx *c = g->c;
    struct sync_upload *u = &c->ul[g->first];
    (void)conn;
    for (size_t k = 0; k < g->n; k++)
        ul_release(&u[k]);
    if (st == 0) {
        bool map = res->append_uids && res->n_append_uids == g->n;
        if (!map)
            LOG_DEBUG(LOGC_SYNC,
                      "%s: MULTIAPPEND of %zu messages: no APPENDUID for each, "
                      "they are looked up by their " SYNC_TUID_HEADER " header",
                      c->job.remote_name, g->n);
        for (size_t k = 0; k < g->n; k++)
            ul_appended_one(c, &u[k], map ? res->append_uids[k] : 0, res->append_uidvalidity);
    } else if ((st == OIMAP_ENO || st == OIMAP_EBAD) && c->rc == 0) {
        /* Nothing of the command was stored (RFC 3502): one refused
         * message must not hold back the others. */
        log_warn("%s: folder %s: the server refused %zu messages sent together (%s); sending "
                 "them one by one",
                 c->acct_name, c->job.remote_name, g->n,
                 res && res->text && *res->text ? res->text : err_str(st));
        for (size_t k = 0; k < g->n; k++)
            u[k].rs_due = true;
        ul_refused_search_next(c);
    } else {
        char what[400];
        snprintf(what, sizeof what, "APPEND of %zu local messages (%s...) failed", g->n,
                 c->nl->v[u->near_idx].name);
        sync_fail_imap(c, st, res, what);
    }
    free(g);
    sync_op_end(c);
}

static void ul_append_multi(struct sync_ctx *c, size_t first, size_t n)
{
    struct ul_group *g = malloc(sizeof *g);
    struct imap_append_msg *m = calloc(n, sizeof *m);
    char *kw = malloc(n * 512);
    int rc = -ENOMEM;
    if (g && m && kw) {
        for (size_t k = 0; k < n; k++)
            ul_msg(c, &c->ul[first + k], kw + k * 512, 512, &m[k]);
        *g = (struct ul_group){.c = c, .first = first, .n = n};
        rc = imap_conn_multiappend(c->job.conn, c->job.remote_name, m, n, on_multi_appended, g);
    }
    free(m);
    free(kw);
    if (rc < 0) {
        free(g);
        sync_fail(c, rc, "APPEND: %s", err_str(rc));
        return;
    }
    c->far_changed = true;
    sync_op_begin(c);
}

static uint64_t ul_literal_size(const struct sync_upload *u)
{
    /* The marker line is "X-OIMAP-TUID: <tuid>\r\n". */
    return sizeof SYNC_TUID_HEADER + 3 + strlen(u->tuid) + u->kept + u->extra;
}

static void ul_append_setup(struct sync_ctx *c)
{
    if (!c->ul_multi) {
        for (size_t i = 0; i < c->nul && c->rc == 0; i++)
            if (ul_append_one(c, &c->ul[i]) < 0)
                return;
        return;
    }
    for (size_t i = 0; i < c->nul && c->rc == 0;) {
        size_t j = i;
        uint64_t bytes = 0;
        while (j < c->nul && j - i < UL_MULTI_MSGS &&
               (j == i || bytes + ul_literal_size(&c->ul[j]) <= UL_MULTI_BYTES))
            bytes += ul_literal_size(&c->ul[j++]);
        if (j - i == 1)
            ul_append_one(c, &c->ul[i]);
        else
            ul_append_multi(c, i, j - i);
        i = j;
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
        uint32_t uid = imap_result_highest_uid(res);
        if (uid > u->uid)
            u->uid = uid;
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
        if (u->uid || u->refused)
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
        if (!c->ul[i].refused)
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
        if (u->refused)
            continue; /* its intent stays: see the top of this phase */
        rc = put_rec(c, t, u->uid, u->uid, c->plan->uploads[u->pidx].flags, u->fsize);
        if (rc == 0)
            rc = status_txn_intent_del(t, c->folder_id, u->intent_id);
        if (rc == 0)
            c->res.uploaded++;
    }
    txn_commit(c, &t, rc);
    sync_exec_free(c);
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
        /* Refused messages (c->ul_refused) fail the folder at its end
         * (finish()): flags and deletions of the others still go through. */
        flags_start(c);
        return;
    }
    size_t start = c->ul_next, end = start;
    size_t max_msgs = c->ul_multi ? UL_MULTI_BATCH_MSGS : UL_BATCH_MSGS;
    uint64_t bytes = 0, max_bytes = c->ul_multi ? UL_MULTI_BATCH_BYTES : UL_BATCH_BYTES;
    while (end < p->nuploads && end - start < max_msgs &&
           (end == start || bytes + p->uploads[end].size <= max_bytes))
        bytes += p->uploads[end++].size;
    c->ul = calloc(end - start, sizeof *c->ul);
    if (!c->ul) {
        sync_fail(c, -ENOMEM, "out of memory");
        return;
    }
    c->nul = end - start;
    const struct config_list *fh = c->job.acct ? &c->job.acct->filterheaders : NULL;
    for (size_t i = start; i < end; i++) {
        struct sync_upload *u = &c->ul[i - start];
        u->c = c;
        u->pidx = i;
        u->near_idx = p->uploads[i].near_idx;
        hdr_filter_init(&u->hf_count, fh ? (const char *const *)fh->v : NULL, fh ? fh->n : 0);
        hdr_filter_init(&u->hf_send, fh ? (const char *const *)fh->v : NULL, fh ? fh->n : 0);
    }
    c->ul_next = end;
    sync_phase(c, ul_stat_setup, ul_stats_done);
}

static void uploads_start(struct sync_ctx *c)
{
    for (size_t i = 0; i < c->plan->nuploads; i++)
        c->ul_bytes_total += c->plan->uploads[i].size;
    c->ul_multi = imap_conn_has(c->job.conn, "MULTIAPPEND");
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
            sync_fail(c, rc, "cannot change flags of local message %s: %s", e->name, err_str(rc));
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
        sync_fail(c, st, "cannot delete local message %s: %s", c->nl->v[op->idx].name, err_str(st));
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
                rc = put_rec(c, t, d->far_uid, 0, d->flags, rec_size(c, d->far_uid));
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
    /* Nothing new to remember (a resync of an unchanged folder): no commit,
     * no fsync.  last_sync keeps the time of the last sync that changed
     * something; it only needs to be non-zero. */
    const struct status_folder *o = &c->frec;
    bool same = o->last_sync && o->flags == f.flags;
    for (int s = 0; s < 2; s++)
        same = same && o->uidvalidity[s] == f.uidvalidity[s] && o->uidnext[s] == f.uidnext[s] &&
               o->highestmodseq[s] == f.highestmodseq[s] && o->max_uid[s] == f.max_uid[s];
    if (!same) {
        struct status_txn *t = txn_begin(c);
        if (!t)
            return;
        txn_commit(c, &t, status_txn_folder_put(t, &f));
    }
    const struct sync_result *r = &c->res;
    if (c->rc == 0 && (r->downloaded || r->uploaded || r->deleted_far || r->deleted_near ||
                       r->flags_far || r->flags_near || r->paired || r->held_back)) {
        char line[512];
        sync_summary_line(c, "", line, sizeof line);
        log_info("%s", line);
    }
}
