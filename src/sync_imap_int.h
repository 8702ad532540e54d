/* sync_imap_int.h - internals shared by sync_imap.c (select, list, plan,
 * report) and sync_imap_exec.c (execute the plan).  Not an API: only these
 * two files include it.  See sync_imap.c for the step machinery and the
 * crash-safety argument. */
#ifndef OIMAP_SYNC_IMAP_INT_H
#define OIMAP_SYNC_IMAP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "imap_conn.h"
#include "plan.h"
#include "status.h"
#include "sync_imap.h"

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
    bool tried_create, looked_up, rechecked, relisted;
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

/* ---- sync_imap.c: steps, failures, records (see there) ---- */
void simap_hold(struct simap *s);
void simap_release(struct simap *s);
void simap_step(struct simap *s, step_fn fn, step_fn then_fn);
void simap_step_always(struct simap *s, step_fn fn, step_fn then_fn);
void simap_fail(struct simap *s, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void simap_fail_cmd(struct side *d, int st, const struct imap_result *res, const char *what);
struct status_txn *simap_txn_open(struct simap *s);
void simap_txn_close(struct simap *s, struct status_txn **t, int rc);
ptrdiff_t simap_side_find(const struct side *d, uint32_t uid); /* listing index, -1 */
uint64_t simap_side_size(const struct side *d, uint32_t uid);
int simap_rec_put(struct simap *s, struct status_txn *t, uint32_t far, uint32_t near,
                  plan_flags_t flags, uint64_t size);
int simap_rec_forget(struct simap *s, struct status_txn *t, uint32_t far, uint32_t near);
int simap_intent_drop(struct simap *s, struct status_txn *t, uint64_t id);
int simap_kw_store(struct simap *s, struct status_txn *t);

/* ---- sync_imap_exec.c: run s->plan (plan.h's "Executing a plan") ---- */
void simap_execute(struct simap *s);

#endif
