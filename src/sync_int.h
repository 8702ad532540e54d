/* sync_int.h - internals shared by sync.c (select, list, plan, report) and
 * sync_exec.c (execute the plan).  Not an API: only these two files include
 * it, and sync_imap.c for the helpers that take no struct sync_ctx.  See sync.c for the phase
 * machinery and the crash-safety argument. */
#ifndef OIMAP_SYNC_INT_H
#define OIMAP_SYNC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "imap_conn.h"
#include "maildir_name.h"
#include "plan.h"
#include "status.h"
#include "sync.h"

/* The marker header carried by every upload (SYNC-SAFETY invariant 3). */
#define SYNC_TUID_HEADER "X-OIMAP-TUID"

/* Bounds. */
#define DL_BATCH_MSGS 256          /* messages per download batch */
#define DL_BATCH_BYTES (32u << 20) /* bytes per download batch */
#define DL_BATCHES_IN_FLIGHT 2     /* one fetching, one being made durable */
#define UL_BATCH_MSGS 64           /* APPENDs per upload batch */
#define UL_BATCH_BYTES (16u << 20)
/* With MULTIAPPEND (RFC 3502) a batch goes in a few commands, each saved
 * by the server in one transaction: at most UL_MULTI_MSGS messages and
 * UL_MULTI_BYTES of literals per command (a single larger message goes
 * alone).  100 messages make Dovecot's fsyncs per message negligible and
 * keep the APPENDUID set short; 8 MiB bounds what one refusal (all or
 * nothing) throws away and sends again one by one, and the time the
 * command's tagged answer takes on a slow uplink (~1 minute at 1 Mbit/s,
 * well inside servers' 30-minute command timeouts).  A batch holds two
 * such commands, pipelined, as the single APPENDs are. */
#define UL_REFUSALS_LOGGED 10 /* refused uploads named one by one per folder */
#define UL_MULTI_MSGS 100
#define UL_MULTI_BYTES (8u << 20)
#define UL_MULTI_BATCH_MSGS (2 * UL_MULTI_MSGS)
#define UL_MULTI_BATCH_BYTES (2 * UL_MULTI_BYTES)
#define UL_COUNT_PAR 4  /* files of an upload batch stat()ed and counted at once */
#define UIDSET_MAX 4000 /* bytes of one UID set on a command line */
#define READ_BUF (256u << 10)
#define RECHECK_MS 1500 /* see lookups_done() */
#define RECHECK_AGE 600 /* seconds */

struct sync_ctx;
typedef void (*sync_phase_fn)(struct sync_ctx *c);

/* An open intent of the status store (APPEND kind; see status.h). */
struct sync_intent {
    uint64_t id;
    bool download;       /* side LOCAL: far -> Maildir; else Maildir -> far */
    uint32_t src_uid;    /* download: the far UID */
    uint32_t result_uid; /* upload: APPENDUID when it was recorded */
    plan_flags_t flags;
    char tuid[STATUS_TUID_MAX + 1];
    char *name;         /* upload: the source file name */
    int64_t time;       /* when the intent was committed */
    bool resolved;      /* looked up on far */
    uint32_t found_uid; /* ... with this result (0: absent) */
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
    uint8_t std_letters; /* upper-case letters synced: P is not when a customflag
                          * letter maps $Forwarded (as in offlineimap) */

    int pending;        /* operations in flight in the current phase */
    sync_phase_fn next; /* what runs when pending falls to zero */
    int rc;             /* first error */
    bool finished;
    int guard_rc; /* held deletions: reported once all else is done */
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
    bool check_only;    /* job.conn == NULL: see sync.h, "The check" */
    bool tried_create;  /* the local folder was missing: opened again with CREATE */
    bool changedsince;  /* the far listing holds only what changed (CHANGEDSINCE) */
    struct sync_range { /* VANISHED (EARLIER) UIDs, as ranges */
        uint32_t lo, hi;
    } * vanished;
    size_t nvanished, capvanished;
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
    size_t ul_next, ul_done_msgs, ul_stat_next;
    uint64_t ul_bytes_total, ul_bytes_done;
    bool ul_multi;          /* the server offers MULTIAPPEND: batches go in few commands */
    size_t ul_refused;      /* messages the server refused one by one (see on_appended) */
    char ul_refusal[400];   /* the first of them, for the folder's error */
    bool ul_rs_busy;        /* a refused message's marker search is in flight */
    struct sync_upload *ul; /* the current upload batch */
    size_t nul;
    uint32_t *tmp_uids;
    size_t ntmp;
    bool far_expunge_ok;
    size_t lk_next; /* next lookup / upload search (one at a time) */
    bool rechecked;
    uv_timer_t timer;
};

/* ---- shared by sync.c and sync_exec.c (not part of the module's API) ---- */
void sync_fail(struct sync_ctx *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sync_fail_imap(struct sync_ctx *c, int st, const struct imap_result *res, const char *what);
void sync_op_begin(struct sync_ctx *c);
void sync_op_end(struct sync_ctx *c);
void sync_phase(struct sync_ctx *c, sync_phase_fn setup, sync_phase_fn next);
bool sync_is_machine(void);
void sync_event(struct sync_ctx *c, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
size_t sync_uidset(const uint32_t *u, size_t n, char *buf, size_t cap);
void sync_uids_text(const uint32_t *u, size_t n, char *buf, size_t cap);
void sync_sort_uids(uint32_t *u, size_t n);
unsigned sync_imap_sys(plan_flags_t f);
void sync_imap_keywords(const struct sync_ctx *c, plan_flags_t f, char *buf, size_t cap);
void sync_apply_near(const struct sync_ctx *c, struct maildir_flags *mf, plan_flags_t add,
                     plan_flags_t rm);
void sync_plan_to_maildir(const struct sync_ctx *c, plan_flags_t f, struct maildir_flags *mf);
void sync_fill_counts(struct sync_ctx *c);
void sync_summary_line(const struct sync_ctx *c, const char *prefix, char *buf, size_t cap);

/* ---- also used by sync_imap.c (IMAP <-> IMAP): no struct sync_ctx ---- */
plan_flags_t sync_fetch_flags(const char *const *kw, const struct imap_fetch *f);
void sync_keywords_of(const char *const *kw, plan_flags_t f, char *buf, size_t cap);
void sync_plan_counts(const struct plan *p, struct sync_result *r);
void sync_result_line(const char *acct, const char *folder, const struct sync_result *r,
                      const char *prefix, char *buf, size_t cap);
int sync_guard_text(const struct plan *p, const char *acct_name, char *buf, size_t cap);

/* sync_exec.c: run c->plan (plan.h's "Executing a plan"); free its state. */
void sync_execute(struct sync_ctx *c);
void sync_exec_free(struct sync_ctx *c);

#endif
