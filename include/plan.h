/* plan.h - the sync planner: listings + status in, actions out.
 *
 * Pure: no I/O, no libuv, no LMDB, no logging, no globals.  The executor
 * (sync.c) lists both sides of one folder pair, loads the status store and
 * the open intents, calls plan_make(), then performs the actions in the order
 * and with the commits described under "Executing a plan" below.  --dry-run
 * prints the plan and stops: the plan is complete and exact.
 *
 * SIDES.  "far" is the IMAP server.  "near" is the Maildir, or a second IMAP
 * server (IMAP <-> IMAP, same rules).  In Maildir mode (opts.near_is_maildir)
 * a near message's UID is the far UID written in its file name (",U=<uid>"),
 * and status records have near_uid == far_uid.  In IMAP mode the near side has
 * its own UIDs and the status maps far UID <-> near UID.
 *
 * FLAGS are a bit set (plan_flags_t): the system flags plus 26 keyword bits
 * that the executor maps to Maildir custom letters a-z / IMAP keywords.
 *
 * STATUS RECORDS {far_uid, near_uid, flags}: "both sides had this message, and
 * these flags were on both when we last synced".  A half record, one UID 0,
 * means "this message is known on one side only, on purpose": a deletion that
 * was not propagated (readonly side, sync_deletes = no, expunge = no); it
 * stops the message being copied back.  It disappears when the message does.
 *
 * ======================== THE RULES (the contract) ========================
 *
 * R1 UIDVALIDITY.  When a recorded UIDVALIDITY (non-zero) differs from the
 *    current one (non-zero) on either side, the plan is only an error
 *    (plan->error = OIMAP_EUIDVALIDITY, uidvalidity_changed names the sides)
 *    with no action at all: nothing is deleted, copied or recorded
 *    (SYNC-SAFETY invariant 5).  The folder is stopped.  When none was
 *    recorded, record_uidvalidity asks the executor to record it first.
 *
 * R2 Intents first (invariant 3).  An open intent (a copy started by an
 *    interrupted run) is resolved before anything else.  When a resolution
 *    needs the server (the TUID marker must be searched: always for an
 *    upload without a recorded APPENDUID; for a download to IMAP; a download
 *    to a Maildir is resolved from the listing, the file is named U=<uid>),
 *    the plan holds only
 *    lookups; the executor searches (read-only, so --dry-run may do it too),
 *    sets the intents' results and calls plan_make() again.  Resolved:
 *    - the copy exists and its source still exists -> pair them (no transfer;
 *      base flags = the flags the copy carried); Maildir: the file is renamed
 *      to carry the far UID before the pair is recorded (invariant 1);
 *    - otherwise the intent is dropped and the normal rules below see
 *      whatever exists: a source left alone is copied again, a copy whose
 *      source has gone is kept and treated as new mail on its side (a message
 *      is never deleted on the strength of half-finished work).
 *
 * R3 Three-way comparison.  For every status record:
 *    - on both sides: flags merged (R4);
 *    - gone from one side: deleted on the other (R5), subject to the guard
 *      (R6); if deletions may not be propagated to that side (readonly,
 *      propagate_*_deletes = false) the record becomes a half record instead,
 *      so the message is not copied back;
 *    - gone from both: the record is forgotten.
 *    A far message in no record -> downloaded (R7).  A near message in no
 *    record -> uploaded (R7), except Maildir crash recovery: a near file
 *    whose trusted U= names a far message present and in no record is the
 *    copy of that message delivered before the crash: pair-only, no transfer,
 *    base flags = the near file's flags (so the far flags win).  A U= is
 *    trusted when the executor says so (FMD5 matches this folder) and the UID
 *    is below far_uidnext (when known; raised to above every far UID of the
 *    status, so a stale UIDNEXT never unpairs a file); of several near files with the same
 *    trusted U=, the lowest listing index keeps it, the rest are new mail.
 *
 * R4 Flags: per-flag three-way merge.  With base B (status), far F, near N:
 *    for each bit, a side that changed it since B wins; when both sides
 *    changed the same bit they changed it to the same value (a bit has two
 *    states), so they agree.  result = B ^ ((F ^ B) | (N ^ B)).  This is the
 *    answer to "both sides changed the same message": nothing is lost unless
 *    the two sides set opposite values of one bit, which cannot happen.  A
 *    readonly side is not written; the record then stores that side's flags
 *    so the other side's changes are not reverted on the next run.
 *    quick: far flags of messages in the status are not compared (the
 *    executor may not have fetched them): F is taken as B.
 *
 * R5 Deletion vs flag change: deletion wins (as offlineimap and mbsync),
 *    with one exception that errs on the safe side: when the surviving copy
 *    was newly flagged \Flagged since the last sync, the deletion is not
 *    propagated; the record is forgotten and the message is copied back to
 *    the side that deleted it.  A deletion on far with expunge = yes is
 *    STORE +\Deleted then UID EXPUNGE of exactly those UIDs; with expunge = no
 *    only the \Deleted flag is set and a half record keeps it from being
 *    copied back.  \Deleted (Maildir T) is otherwise an ordinary flag.
 *
 * R6 Mass-deletion guard (invariant 4).  Counted per losing side: the
 *    records whose message vanished from side A while the other side B still
 *    has it (deletions on B, and half-record conversions, which could cause
 *    duplicates if A's listing was a glitch).  They are all held back, with
 *    nothing done and the records kept, when (unless allow_mass_delete):
 *    EMPTY: A lists no message at all and count >= guard_empty_min; or
 *    MASS:  count > guard_count and count * 100 > guard_percent * |B|.
 *    plan->held[B] reports it for the message to the user.
 *
 * R7 New messages are copied with their flags unless: the destination is
 *    readonly, the message is larger than max_size, dated before min_date
 *    (maxage; startdate: messages of min_date_sides only), or carries
 *    \Deleted; such messages are counted in
 *    plan->skipped[destination] and re-evaluated next run (cheap, and raising
 *    maxsize later copies them).  These filters never make a message look
 *    deleted: listings must be complete (see plan_input).
 *
 * R8 A readonly side gets no action at all: no copy, flag store or delete.
 *
 * R9 Idempotence: planning again on the state that results from executing a
 *    plan yields a plan with plan_nactions() == 0 (held and skipped counts may
 *    remain, they are not actions).
 *
 * Crash safety: every state between two steps of the protocol below is a
 * state that these rules plan correctly from (tested on an in-memory backend
 * interrupted after every step, tests/unit/test_plan.c).  Deletions need no
 * intent: the status record itself is the intent, it stays until both sides
 * lack the message, and a deletion done twice is harmless.
 *
 * Complexity: O(n log n) in the listing sizes; a bounded number of
 * allocations (index arrays, and output arrays grown by doubling).
 *
 * ======================== EXECUTING A PLAN ================================
 *
 * In this order; "commit" is one status-store write transaction (batches of
 * many actions may share each commit, as long as the order per action holds):
 *  0. record_uidvalidity: commit the current UIDVALIDITYs.
 *  1. drop_intents, recs (forget / half): commit.
 *  2. pairs: if rename, give the near file its UID (durable); then commit the
 *     record {far_uid, near_uid, flags} and delete the intent (if >= 0).
 *  3. downloads: commit an intent {far_uid, TUID, flags}; copy (Maildir:
 *     deliver as U=<far_uid> with the flags, durable; IMAP: APPEND carrying
 *     the TUID header); commit the record and delete the intent.
 *  4. uploads: commit an intent {near message, TUID, flags}; APPEND with the
 *     TUID; optionally commit the APPENDUID into the intent; Maildir: rename
 *     the file to carry the new UID (durable); commit the record, delete the
 *     intent.
 *  5. flags: store far_add/far_remove on far, near_add/near_remove on near
 *     (both before the commit!), then commit record flags = synced.
 *  6. far_deletes, near_deletes: STORE +\Deleted (+ UID EXPUNGE if expunge;
 *     Maildir: unlink); then commit: forget the record if expunge, else turn
 *     it into the half record {far_uid, 0} / {0, near_uid} with .flags.
 */
#ifndef OIMAP_PLAN_H
#define OIMAP_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- flags ---------------------------------------------------------------- */

typedef uint32_t plan_flags_t;

/* Same bits as status.h's STATUS_FLAG_* (Maildir's ASCII order), so the
 * executor converts nothing. */
enum {
    PLAN_F_DRAFT = 1u << 0,     /* \Draft     Maildir D */
    PLAN_F_FLAGGED = 1u << 1,   /* \Flagged   Maildir F */
    PLAN_F_FORWARDED = 1u << 2, /* $Forwarded Maildir P */
    PLAN_F_ANSWERED = 1u << 3,  /* \Answered  Maildir R */
    PLAN_F_SEEN = 1u << 4,      /* \Seen      Maildir S */
    PLAN_F_DELETED = 1u << 5,   /* \Deleted   Maildir T */
    PLAN_F_KEYWORD0 = 1u << 6,  /* keyword bits: Maildir letters a..z */
};
#define PLAN_F_KEYWORD(i) ((plan_flags_t)PLAN_F_KEYWORD0 << (i)) /* 0 <= i < 26 */

/* ---- input ---------------------------------------------------------------- */

enum plan_side { PLAN_FAR = 0, PLAN_NEAR = 1 };

/* One far (IMAP) message.  Any order; UIDs must be distinct. */
struct plan_far_msg {
    uint32_t uid;
    plan_flags_t flags; /* quick mode: may be garbage for UIDs in the status */
    uint64_t size;
    int64_t date; /* INTERNALDATE, seconds since the epoch */
};

/* One near message; its index in the array is its handle in the plan. */
struct plan_near_msg {
    uint32_t uid; /* Maildir: the U= far UID, 0 if none; IMAP: the near UID */
    plan_flags_t flags;
    bool uid_trusted; /* Maildir: FMD5 matches this folder; IMAP: always true */
    uint64_t size;
    int64_t date;
};

/* One status record (see above).  Any order; no duplicate far or near UID. */
struct plan_status_rec {
    uint32_t far_uid;  /* 0: half record, near only */
    uint32_t near_uid; /* 0: half record, far only; Maildir: == far_uid */
    plan_flags_t flags;
};

/* An open intent left by an interrupted run: a copy that was started.
 * The executor keeps its own data (TUID, file name, ...) next to it and
 * fills in the near listing index.  After a lookup it sets resolved and the
 * destination field. */
enum plan_intent_kind { PLAN_INTENT_DOWNLOAD, PLAN_INTENT_UPLOAD };
struct plan_intent {
    enum plan_intent_kind kind;
    /* DOWNLOAD: the source.  UPLOAD: the copy's far UID, when resolved
     * (0 = the copy does not exist) or when the APPENDUID was recorded. */
    uint32_t far_uid;
    /* UPLOAD: index of the source in the near listing, -1 if it is gone.
     * DOWNLOAD: index of the copy, when resolved (-1 = it does not exist). */
    ptrdiff_t near_idx;
    plan_flags_t flags; /* the flags the copy was made with */
    bool resolved;      /* destination known (set by the executor) */
};

struct plan_folder_state {
    uint32_t far_uidvalidity_recorded;  /* 0: never recorded */
    uint32_t far_uidvalidity;           /* as SELECT reports it now */
    uint32_t near_uidvalidity_recorded; /* 0 for Maildir */
    uint32_t near_uidvalidity;
    uint32_t far_uidnext; /* 0: unknown; used to distrust impossible U= */
};

struct plan_options {
    bool near_is_maildir; /* near UIDs are far UIDs (U=), see above */
    bool far_readonly, near_readonly;
    bool propagate_far_deletes;     /* far's sync_deletes: far deletions -> near */
    bool propagate_near_deletes;    /* near's sync_deletes: near deletions -> far */
    bool expunge_far, expunge_near; /* expunge (IMAP); Maildir near always deletes */
    bool quick;
    uint64_t max_size;        /* 0: no limit */
    int64_t min_date;         /* 0: no limit (maxage / startdate cut-off) */
    unsigned min_date_sides;  /* whose messages min_date holds back: bits (1 << PLAN_FAR) and
                               * (1 << PLAN_NEAR) of the source side; 0: both (maxage) */
    unsigned guard_empty_min; /* EMPTY rule, default 1 */
    unsigned guard_count;     /* MASS rule: more than this many, default 100 */
    unsigned guard_percent;   /* MASS rule: and more than this % of the folder, 50 */
    bool allow_mass_delete;   /* let held deletions through */
};

/* Defaults: Maildir near, two-way, deletes propagated and expunged, guards
 * 1 / 100 / 50%. */
void plan_options_init(struct plan_options *opts);

/* The whole input.  Listings must be complete (every message of the folder):
 * a message missing from a listing is a deleted message.  An executor that
 * lists less (e.g. SEARCH SINCE for maxage) must fill in what it knows from the
 * status instead.  A folder that does not exist on one side is not a listing
 * of zero messages: do not call the planner for it.  All arrays are only read,
 * and only during plan_make(). */
struct plan_input {
    const struct plan_far_msg *far;
    size_t nfar;
    const struct plan_near_msg *near;
    size_t nnear;
    const struct plan_status_rec *status;
    size_t nstatus;
    const struct plan_intent *intents;
    size_t nintents;
    struct plan_folder_state state;
    struct plan_options opts;
};

/* ---- output --------------------------------------------------------------- */

struct plan_lookup {
    size_t intent;       /* index into plan_input.intents */
    enum plan_side side; /* search this side for the intent's TUID */
};

/* Record a pairing of two existing messages (no transfer). */
struct plan_pair {
    uint32_t far_uid;
    uint32_t near_uid; /* Maildir: == far_uid */
    size_t near_idx;
    plan_flags_t flags; /* the record's flags (the base; R4 may follow up) */
    bool rename;        /* Maildir: rename the file to carry far_uid first */
    ptrdiff_t intent;   /* intent deleted in the same commit, or -1 */
};

struct plan_download {
    size_t far_idx;
    uint32_t far_uid;
    plan_flags_t flags;
    uint64_t size;
};

struct plan_upload {
    size_t near_idx;
    uint32_t near_uid; /* IMAP near: its UID (Maildir: whatever U= it had) */
    plan_flags_t flags;
    uint64_t size;
};

/* Flags of one paired message; sorted by (far_add, far_remove, far_uid) so
 * equal stores are contiguous (see plan_flags_group_end). */
struct plan_flag_update {
    uint32_t far_uid, near_uid;
    size_t near_idx;
    plan_flags_t far_add, far_remove;
    plan_flags_t near_add, near_remove;
    plan_flags_t synced; /* the record's new flags, committed after both */
};

struct plan_delete {
    uint32_t far_uid, near_uid; /* the record */
    size_t idx;                 /* listing index on the side deleted from */
    bool expunge;               /* false: only set \Deleted, keep a half record */
    plan_flags_t flags;         /* the half record's flags when !expunge */
};

enum plan_rec_op {
    PLAN_REC_FORGET,    /* delete the record */
    PLAN_REC_KEEP_FAR,  /* becomes {far_uid, 0, flags} */
    PLAN_REC_KEEP_NEAR, /* becomes {0, near_uid, flags} */
};
struct plan_rec_update {
    uint32_t far_uid, near_uid; /* the record as it is */
    enum plan_rec_op op;
    plan_flags_t flags;
};

enum plan_guard { PLAN_GUARD_NONE, PLAN_GUARD_EMPTY, PLAN_GUARD_MASS };

struct plan_held {
    size_t count;       /* messages whose deletion was held back */
    size_t folder_size; /* messages listed on that side */
    enum plan_guard reason;
};

struct plan_skipped {
    size_t readonly, size, age, deleted;
    size_t ignored; /* copy_ignore_eval (set by the executor, not by plan_make) */
};

struct plan {
    int error;                    /* 0 or OIMAP_EUIDVALIDITY (then no action) */
    unsigned uidvalidity_changed; /* bit (1 << PLAN_FAR) / (1 << PLAN_NEAR) */
    bool record_uidvalidity;

    struct plan_lookup *lookups; /* when non-empty, nothing else is planned */
    size_t nlookups;
    size_t *drop_intents;
    size_t ndrop_intents;
    struct plan_rec_update *recs;
    size_t nrecs;
    struct plan_pair *pairs;
    size_t npairs;
    struct plan_download *downloads; /* sorted by far UID */
    size_t ndownloads;
    struct plan_upload *uploads; /* sorted by near index */
    size_t nuploads;
    struct plan_flag_update *flags;
    size_t nflags;
    struct plan_delete *far_deletes; /* sorted by far UID */
    size_t nfar_deletes;
    struct plan_delete *near_deletes; /* sorted by near index */
    size_t nnear_deletes;

    struct plan_held held[2];       /* [side that would lose messages] */
    struct plan_skipped skipped[2]; /* [destination side] */
};

/* Plan one folder pair.  Returns 0 and *plan_r (free with plan_free), or
 * -ENOMEM, -EINVAL (bad arguments or an intent index out of range),
 * OIMAP_EPROTO (duplicate UID in a server listing), OIMAP_ESTATUS (duplicate
 * UID in the status).  A UIDVALIDITY change is not a return code but
 * plan->error, so the caller learns which side changed. */
int plan_make(const struct plan_input *in, struct plan **plan_r);

void plan_free(struct plan **plan);

/* Number of actions (everything except lookups, held and skipped counts).
 * Zero means the folder pair is in sync. */
size_t plan_nactions(const struct plan *plan);

/* Re-sort plan->flags by (near_add, near_remove, near_uid) (side PLAN_NEAR,
 * for grouping stores on an IMAP near side) or back (PLAN_FAR). */
void plan_flags_sort(struct plan *plan, enum plan_side side);

/* End of the group of flag updates starting at start that share the same
 * add/remove sets on side: one UID STORE per group. */
size_t plan_flags_group_end(const struct plan *plan, enum plan_side side, size_t start);

#endif
