/* status.h - the status store: what oimap remembers between syncs (LMDB).
 *
 * One LMDB environment per account, in
 *     <metadata>/oimap/Account-<name>/status.lmdb/   (data.mdb, lock.mdb)
 * next to an account lock file <metadata>/oimap/Account-<name>/lock.
 * offlineimap's own files in <metadata> are never touched.  status.c is the
 * only code in oimap that touches LMDB.
 *
 * Sides: STATUS_REMOTE is the remote repository (always IMAP), STATUS_LOCAL
 * the local one (a Maildir, or a second IMAP server).
 *
 * SCHEMA (version STATUS_SCHEMA_VERSION; all integers big-endian, so LMDB's
 * byte-wise key order is numeric order and cursors walk UIDs in order):
 *
 *   meta     "schema"         -> u32 version.  A store of a newer version is
 *                                refused (OIMAP_ESTATUS), never rewritten.
 *                                Version 1 (no near-only records) is opened
 *                                as it is read-only, and migrated to 2 by
 *                                the first writable open (nothing but the
 *                                number changes).
 *            "next_folder"    -> u32, the next folder id to hand out (from 1)
 *            "next_intent"    -> u64, the next intent id to hand out (from 1)
 *   fnames   local "\0" remote -> u32 folder id   (names too long for an LMDB
 *                                key are cut and suffixed with a hash; the
 *                                folder record holds the full names and every
 *                                lookup compares them)
 *   folders  u32 id -> u32 id, u32 flags, u32 uidvalidity[2], u32 uidnext[2],
 *                      u64 highestmodseq[2], u32 max_uid[2], i64 last_sync,
 *                      u16 len local, u16 len remote, local name, remote name
 *   msgs     u32 folder, u32 remote uid -> u32 local uid, u32 flags, u64 size,
 *                      u8 state, 7 bytes reserved (readers ignore any bytes
 *                      after the first 24: room for keywords/labels later)
 *            u32 folder, u32 0, u32 local uid -> the same value (version 2):
 *                      a near-only half record (remote uid 0, IMAP<->IMAP),
 *                      which has no remote uid to be keyed by; these sort
 *                      before the folder's remote uids
 *   luids    u32 folder, u32 local uid -> u32 remote uid
 *                      (only where local uid != remote uid, e.g. IMAP<->IMAP)
 *   intents  u32 folder, u64 intent id -> u8 kind, u8 side, u16 0,
 *                      u32 src uid, u32 result uid, u32 flags, u32 flags_clear,
 *                      u64 size, i64 time, u16 len tuid, u16 len name,
 *                      u32 nuids, tuid, name, nuids * u32 uid
 *
 * INVARIANTS (kept by status.c unless marked "caller"):
 *   S1 Atomicity: everything written between status_txn_begin() and a
 *      successful status_txn_commit() reaches disk together or not at all
 *      (one LMDB commit, durable: no MDB_NOSYNC/NOMETASYNC).  A kill -9 at
 *      any moment leaves the last committed state, and the store reopens.
 *   S2 (caller) A msgs record is a pairing: it is written only after both
 *      halves are durable (the Maildir file fsynced, renamed and its directory
 *      fsynced; the server's tagged OK / APPENDUID received).  SYNC-SAFETY 1.
 *   S3 (caller) Before a non-idempotent action (APPEND, EXPUNGE of a paired
 *      message, local delete) an intent naming it is committed; the intent is
 *      deleted in the same transaction that records the result.  SYNC-SAFETY 2.
 *      On start, the intents of a folder are resolved before anything else.
 *   S4 A local uid belongs to at most one message of a folder: putting a
 *      message whose local uid another message of the folder holds fails with
 *      OIMAP_ESTATUS and the transaction is poisoned.
 *   S5 luids holds exactly the messages whose remote uid and local uid are
 *      both non-zero and differ (maintained by the msg put/del calls).
 *      Near-only records (remote uid 0) are found by their own key.
 *   S6 Folder and intent ids are never reused (counters only go up).
 *   S7 One writer per account: status_open() takes an exclusive lock on the
 *      account lock file (OFD fcntl lock, dies with the process), so a second
 *      oimap fails at once with OIMAP_ELOCKED.  A read-only open takes a
 *      shared lock and never writes a byte (not even LMDB's lock.mdb).
 *
 * Threading: one thread (the loop thread) uses a store.  Not thread-safe.
 * Errors: 0 on success, -ENOENT when a record is absent, -EROFS for a write
 * on a read-only store, OIMAP_ELOCKED, OIMAP_ESTATUS (corrupt, newer schema,
 * LMDB internal error), other -errno.  Errors are logged once, with the path.
 */
#ifndef OIMAP_STATUS_H
#define OIMAP_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define STATUS_SCHEMA_VERSION 2u
#define STATUS_TUID_LEN 16 /* length of a marker made by status_make_tuid() */
#define STATUS_TUID_MAX 64 /* longest marker an intent may carry */

enum status_side { STATUS_LOCAL = 0, STATUS_REMOTE = 1 };

/* Message flags as a bit set, in Maildir's ASCII order.  Bits 6..31 are the
 * Maildir keyword letters 'a'..'z' (offlineimap's keyword mapping). */
enum {
    STATUS_FLAG_DRAFT = 1u << 0,    /* D  \Draft */
    STATUS_FLAG_FLAGGED = 1u << 1,  /* F  \Flagged */
    STATUS_FLAG_PASSED = 1u << 2,   /* P  $Forwarded */
    STATUS_FLAG_ANSWERED = 1u << 3, /* R  \Answered */
    STATUS_FLAG_SEEN = 1u << 4,     /* S  \Seen */
    STATUS_FLAG_DELETED = 1u << 5,  /* T  \Deleted */
};
#define STATUS_FLAG_KEYWORD(c) (1u << (6 + ((c) - 'a'))) /* c in 'a'..'z' */

/* The state byte of a message record; the sync engine gives it meaning,
 * status.c only stores and prints it. */
enum status_msg_state {
    STATUS_MSG_PAIRED = 0,      /* both sides hold it, flags agreed */
    STATUS_MSG_LOCAL_GONE = 1,  /* gone locally, remote deletion decided */
    STATUS_MSG_REMOTE_GONE = 2, /* gone remotely, local deletion decided */
    STATUS_MSG_HELD = 3,        /* a deletion the mass-deletion guard held back */
};

struct status_folder {
    uint32_t id;               /* compact folder id, allocated once, >= 1 */
    uint32_t flags;            /* engine-defined */
    uint32_t uidvalidity[2];   /* [enum status_side]; 0 = not known yet */
    uint32_t uidnext[2];       /* UIDNEXT last seen */
    uint64_t highestmodseq[2]; /* HIGHESTMODSEQ last seen; 0 = none */
    uint32_t max_uid[2];       /* highest UID of that side already dealt with */
    int64_t last_sync;         /* time() of the last complete sync, 0 = never */
};

struct status_msg {
    uint32_t remote_uid;
    uint32_t local_uid; /* 0 = none; for Maildir equal to remote_uid (U= in the name) */
    uint32_t flags;     /* STATUS_FLAG_*: the value both sides agreed on */
    uint8_t state;      /* enum status_msg_state */
    uint64_t size;
};

enum status_intent_kind {
    STATUS_INTENT_APPEND = 1,  /* upload to side: tuid, src_uid/name, size, flags */
    STATUS_INTENT_EXPUNGE = 2, /* expunge uids on side (IMAP) */
    STATUS_INTENT_DELETE = 3,  /* delete uids on side (Maildir files) */
    STATUS_INTENT_STORE = 4,   /* set flags / clear flags_clear on uids of side */
    STATUS_INTENT_MOVE = 5,    /* reserved for MOVE/COPY */
};

struct status_intent {
    uint64_t id; /* 0 on put: a new id is assigned and written back */
    uint32_t folder;
    uint8_t kind;         /* enum status_intent_kind */
    uint8_t side;         /* enum status_side the action changes */
    uint32_t src_uid;     /* APPEND: uid on the source side, 0 if none */
    uint32_t result_uid;  /* APPEND: APPENDUID once known, 0 before */
    uint32_t flags;       /* APPEND: flags sent; STORE: flags set */
    uint32_t flags_clear; /* STORE: flags cleared */
    uint64_t size;
    int64_t time;         /* 0 on put: time(NULL) is filled in */
    const char *tuid;     /* APPEND: marker header value, NULL if none */
    const char *name;     /* APPEND: source file name (Maildir), NULL if none */
    const uint32_t *uids; /* EXPUNGE/DELETE/STORE: the uids on side */
    uint32_t nuids;
};

struct status;
struct status_txn;

struct status_opts {
    bool readonly;          /* dry-run: MDB_RDONLY, shared lock, writes nothing */
    size_t initial_mapsize; /* 0 = 1 GiB; grows by itself when full */
};

/* Open the store of account under metadata (e.g. ~/.offlineimap), creating
 * directories (0700) and the environment as needed, and take the account
 * lock.  Read-only: creates nothing; a store that does not exist yet gives an
 * empty view.  Returns 0 and *st_r, OIMAP_ELOCKED, OIMAP_ENAME (account name
 * unusable as a directory name), OIMAP_ESTATUS or -errno. */
int status_open(const char *metadata, const char *account, bool readonly, struct status **st_r);
int status_open_opts(const char *metadata, const char *account, const struct status_opts *opts,
                     struct status **st_r);
/* Close the environment and release the lock.  A transaction still open is
 * aborted and freed (a bug in the caller, logged): its pointer is dead. */
void status_close(struct status **st);
bool status_is_readonly(const struct status *st);
const char *status_env_dir(const struct status *st); /* .../status.lmdb */
/* The environment directory an account would use (malloc'ed; caller frees). */
int status_env_path(const char *metadata, const char *account, char **path_r);

/* --- reads: through the open write transaction if there is one (so a batch
 * sees its own writes), else through a fresh snapshot.  The callbacks of the
 * walks below may call other read functions (they share the walk's snapshot)
 * but must not write. -------------------------------------------------------- */

/* Folder pair by names: -ENOENT if never recorded. */
int status_folder_lookup(struct status *st, const char *local, const char *remote,
                         struct status_folder *f_r);
int status_folder_get(struct status *st, uint32_t id, struct status_folder *f_r);
typedef int (*status_folder_cb)(const struct status_folder *f, const char *local,
                                const char *remote, void *arg);
/* Every folder in id order.  A non-zero return of cb stops and is returned. */
int status_folder_foreach(struct status *st, status_folder_cb cb, void *arg);

int status_msg_get(struct status *st, uint32_t folder, uint32_t remote_uid, struct status_msg *m_r);
int status_msg_get_local(struct status *st, uint32_t folder, uint32_t local_uid,
                         struct status_msg *m_r);
/* All messages of folder in remote-uid order (near-only records, remote uid
 * 0, first, in local-uid order), into a malloc'ed array the caller frees
 * (NULL when empty).  Returns 0 or a negative code. */
int status_msg_load(struct status *st, uint32_t folder, struct status_msg **v_r, size_t *n_r);
typedef int (*status_msg_cb)(const struct status_msg *m, void *arg);
int status_msg_foreach(struct status *st, uint32_t folder, status_msg_cb cb, void *arg);

/* Intents of folder in id order (folder 0: of every folder).  The strings and
 * uids of *in are valid during the callback only.  cb must not write. */
typedef int (*status_intent_cb)(const struct status_intent *in, void *arg);
int status_intent_foreach(struct status *st, uint32_t folder, status_intent_cb cb, void *arg);

/* --- writes: one transaction per batch ------------------------------------
 * One transaction at a time per store (-EBUSY otherwise).  After a failed
 * write call the transaction is poisoned: every later call returns the same
 * error and commit aborts.  A full map is grown and the batch replayed
 * transparently. */
int status_txn_begin(struct status *st, struct status_txn **txn_r);
/* Commit durably (fsync) and free *txn.  On failure nothing was written. */
int status_txn_commit(struct status_txn **txn);
void status_txn_abort(struct status_txn **txn);

/* Folder pair by names, created with a fresh id (other fields 0) if absent. */
int status_txn_folder_get_or_create(struct status_txn *txn, const char *local, const char *remote,
                                    struct status_folder *f_r);
/* Store every field of f (f->id must exist). */
int status_txn_folder_put(struct status_txn *txn, const struct status_folder *f);
/* Forget a folder pair with all its messages and intents (--delete-folder,
 * or a user-confirmed UIDVALIDITY reset).  Its id is not reused. */
int status_txn_folder_del(struct status_txn *txn, uint32_t id);

/* Insert or replace the record of m->remote_uid.  m->remote_uid == 0 with
 * m->local_uid != 0 is a near-only half record (IMAP<->IMAP: known on the
 * local side only), keyed by its local uid.  Both 0: -EINVAL. */
int status_txn_msg_put(struct status_txn *txn, uint32_t folder, const struct status_msg *m);
/* Remove it; -ENOENT if there was none (the transaction stays usable). */
int status_txn_msg_del(struct status_txn *txn, uint32_t folder, uint32_t remote_uid);
/* Remove the record holding local_uid, near-only or not; -ENOENT if none. */
int status_txn_msg_del_local(struct status_txn *txn, uint32_t folder, uint32_t local_uid);

/* Insert (in->id == 0: new id written back to in->id) or replace an intent. */
int status_txn_intent_put(struct status_txn *txn, struct status_intent *in);
/* -ENOENT if absent (the transaction stays usable). */
int status_txn_intent_del(struct status_txn *txn, uint32_t folder, uint64_t id);

/* --- Gmail labels (synclabels = yes), kept apart from msgs so that other
 * accounts pay nothing for them:
 *   labels   u32 folder, u32 remote uid -> i64 mtime, label bytes
 * mtime is the local file's (ns) when its labels were last synced; the label
 * bytes are opaque here (gmail_labels_encode()).  A store written before
 * this table existed reads as having no labels.  Deleting a folder deletes
 * its labels. */
struct status_labels {
    uint32_t remote_uid;
    int64_t mtime;
    const void *data; /* foreach: valid during the callback only */
    size_t len;       /* at most 1 MiB */
};
typedef int (*status_labels_cb)(const struct status_labels *l, void *arg);
/* The labels records of folder in uid order.  cb must not write. */
int status_labels_foreach(struct status *st, uint32_t folder, status_labels_cb cb, void *arg);
/* Insert or replace the record of l->remote_uid. */
int status_txn_labels_put(struct status_txn *txn, uint32_t folder, const struct status_labels *l);
/* -ENOENT if absent (the transaction stays usable). */
int status_txn_labels_del(struct status_txn *txn, uint32_t folder, uint32_t remote_uid);

/* --- keywords of a folder pair (IMAP <-> IMAP) ------------------------------
 *   meta     "kw" u32 folder -> the keyword names, each followed by a NUL
 * Bit STATUS_FLAG_KEYWORD('a' + i) of the folder's message flags stands for
 * the i-th name (at most 26).  Names are only ever appended, so a bit keeps
 * its meaning for the records that use it.  Deleting a folder deletes them. */
#define STATUS_KEYWORDS_MAX 26
/* The names into names_r (a malloc'ed buffer of *len_r bytes, NULL and 0
 * when there are none). */
int status_folder_keywords(struct status *st, uint32_t folder, char **names_r, size_t *len_r);
int status_txn_folder_keywords_put(struct status_txn *txn, uint32_t folder, const char *names,
                                   size_t len);

/* --- helpers --------------------------------------------------------------- */

/* A random marker of STATUS_TUID_LEN characters [A-Za-z0-9] for an APPEND's
 * X-TUID-style header.  buf must hold STATUS_TUID_LEN + 1 bytes. */
int status_make_tuid(char *buf);
/* Flags as Maildir letters "DFPRST" + keywords, into buf (>= 33 bytes). */
void status_flags_str(uint32_t flags, char *buf);

/* Human-readable dump of the store in dir (a status.lmdb directory or the
 * Account-<name> directory holding one): folders, messages (uid pairs, flags,
 * state) and open intents.  Opens read-only beside a running oimap.  Returns
 * 0, -ENOENT when there is no store there, or a negative code. */
int status_dump(const char *dir, FILE *out);
/* The same for a store this process has open (LMDB must not open one
 * environment twice in a process: use this one then). */
int status_dump_store(struct status *st, FILE *out);

#endif
