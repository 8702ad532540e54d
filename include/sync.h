/* sync.h - synchronise one folder pair: the executor of a plan.
 *
 * The account runner (account.c) connects, lists folders, opens the status
 * store and hands one folder pair at a time to sync_folder(), on one of its
 * IMAP connections.  sync_folder() then, on the loop, without blocking:
 *
 *   1. SELECTs the remote folder (EXAMINE when the far side is readonly or in
 *      --dry-run) with CONDSTORE/QRESYNC when the server offers them, opens
 *      (or creates) the Maildir folder, and loads the folder's status records
 *      and open intents;
 *   2. lists both sides: UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE),
 *      or, when the folder's HIGHESTMODSEQ was recorded and QRESYNC is on,
 *      only what changed: UID FETCH 1:* (...) (CHANGEDSINCE m VANISHED), the
 *      rest taken from the status store; or nothing at all when UIDNEXT,
 *      HIGHESTMODSEQ and the message count are as recorded; and a readdir
 *      of the Maildir;
 *   3. calls plan_make() (plan.h), resolving open intents first;
 *   4. in --dry-run, reports the plan and stops (nothing written anywhere,
 *      the status store included);
 *   5. otherwise executes it in plan.h's order ("Executing a plan"), in
 *      batches: downloads are pipelined UID FETCHes streamed into Maildir
 *      writers and made durable per batch (one fsync barrier, then one status
 *      commit); uploads are pipelined APPENDs, or, when the server offers
 *      MULTIAPPEND (RFC 3502), a few APPENDs of up to 100 messages / 8 MiB
 *      each (a refused one resent one message at a time), every message
 *      streamed from its file with an X-OIMAP-TUID marker, the intents
 *      committed before and the pairings after (sync_exec.c); flag
 *      changes are grouped UID STOREs and Maildir renames; deletions are
 *      STORE \Deleted + UID EXPUNGE and unlinks;
 *   6. reports a summary (struct sync_result) through the callback.
 *
 * The crash-safety argument is plan.h's; sync.c keeps the order of effects
 * and commits that argument relies on (see the comments in sync.c).
 *
 * The check (job->conn == NULL, job->remote_status set): the runner learnt
 * the remote folder's state from LIST-STATUS without selecting it.  When it
 * equals the state recorded after the last sync, sync_folder() reads only
 * the status store and the Maildir: if the plan is empty the folder is done
 * (result->skipped: no SELECT, no connection, nothing written).  Otherwise
 * (or when the remote state differs) it stops with result->need_conn and
 * the runner calls sync_folder() again with a connection.
 *
 * Ownership: the job and everything it points to must stay valid until the
 * callback has run.  The callback is never called from inside sync_folder().
 * The connection is left SELECTed on the folder (or unselected) and usable
 * for the next folder; when it failed, result->conn_failed is set and the
 * runner must not use it again.
 */
#ifndef OIMAP_SYNC_H
#define OIMAP_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct imap_conn;
struct repo_maildir;
struct status;
struct config_account;

/* A remote folder's state from LIST-STATUS / STATUS, before any SELECT. */
struct sync_remote_status {
    uint32_t uidvalidity, uidnext, messages;
    uint64_t highestmodseq; /* 0: the server keeps none */
};

/* Untagged events of the job's connection that belong to no command: the
 * VANISHED (EARLIER) answer of a CHANGEDSINCE listing.  The runner owns the
 * struct (one per connection) and forwards its connection handler's
 * on_vanished here; sync_folder() sets the fields while it needs them and
 * clears them before its callback. */
struct sync_conn_hooks {
    void (*on_vanished)(void *arg, const char *set, size_t len, bool earlier);
    void *arg;
};

struct sync_folder_job {
    uv_loop_t *loop;
    const struct config_account *acct; /* options: readonly, sync_deletes, expunge, maxsize... */
    struct imap_conn *conn;            /* authenticated, not selected on another folder in use;
                                        * NULL: the check only (remote_status required) */
    const struct sync_remote_status *remote_status; /* from LIST-STATUS, or NULL */
    struct sync_conn_hooks *hooks; /* conn's event forwarding, or NULL (no VANISHED) */
    struct repo_maildir *maildir;  /* the account's local repository */
    struct status *status;         /* the account's status store (readonly in dry-run) */

    const char *remote_name; /* UTF-8, server delimiter */
    const char *local_name;  /* UTF-8, '/'-delimited name for repo_maildir_open */
    const char *fmd5_name;   /* what FMD5= hashes (repo_maildir_folder_set_fmd5_name),
                              * NULL: the folder's path (no local nametrans) */
    char remote_delim;       /* the server's hierarchy delimiter */

    bool dry_run;
    bool quick;             /* -q / quick: skip flag comparison when nothing changed */
    bool allow_mass_delete; /* the mass-deletion guard is switched off for this run */
    bool create_local;      /* createfolders on the local side */
    int64_t min_date;       /* maxage / startdate cut-off, 0 = none */
    uint64_t max_size;      /* maxsize, 0 = none */
    /* startdate (offlineimap): 0 when min_date is maxage's (messages of
     * both sides); else the repository that has it, SYNC_STARTDATE_LOCAL or
     * SYNC_STARTDATE_REMOTE: only its messages older than min_date are left
     * alone, and at the folder's first sync the other side must be empty
     * (else the folder fails, as in offlineimap). */
    unsigned startdate;
    /* copy_ignore_eval: far UIDs never downloaded (ascending), or NULL. */
    const uint32_t *copy_ignore;
    size_t n_copy_ignore;
};

#define SYNC_STARTDATE_LOCAL 1u
#define SYNC_STARTDATE_REMOTE 2u

struct sync_result {
    int status;       /* 0, or the error that stopped this folder */
    bool conn_failed; /* the connection is dead: do not reuse it */
    bool skipped;     /* the check found nothing to do: no SELECT was needed */
    bool need_conn;   /* the check found work: run again with a connection */
    char error[512];  /* one line for the user when status < 0 */

    /* What was done (or, in dry-run, what would be done). */
    size_t downloaded, uploaded, paired;
    size_t downloaded_unseen;         /* of downloaded: without \Seen (newmail_hook) */
    size_t flags_far, flags_near;     /* messages whose flags changed on each side */
    size_t deleted_far, deleted_near; /* messages deleted on each side */
    size_t held_back;                 /* deletions held by the mass-deletion guard */
    uint64_t bytes_down, bytes_up;
};

typedef void (*sync_folder_cb)(const struct sync_result *res, void *arg);

struct plan_options;
struct plan;

/* The date options of job into a plan's options: min_date, and the side
 * it applies to with startdate.  For sync.c and sync_imap.c. */
void sync_plan_dates(const struct sync_folder_job *job, struct plan_options *o);

/* startdate's first-sync rule: with job->startdate, at the folder's first
 * sync (first_sync), the other side must hold no message.  Returns 0, or
 * OIMAP_ECONFIG with one line for the user in err. */
int sync_startdate_check(const struct sync_folder_job *job, bool first_sync, size_t nfar,
                         size_t nnear, char *err, size_t errlen);

/* copy_ignore_eval: drop the downloads of job->copy_ignore's UIDs from plan
 * (they are counted as skipped on the near side).  Returns how many. */
size_t sync_drop_ignored(const struct sync_folder_job *job, struct plan *plan);

/* Start synchronising job's folder pair.  Returns 0 (then cb runs exactly
 * once, later) or a negative code (nothing started, cb never runs). */
int sync_folder(const struct sync_folder_job *job, sync_folder_cb cb, void *arg);

#endif
