/* sync_imap.h - synchronise one folder pair of two IMAP servers.
 *
 * The IMAP <-> IMAP executor: the remote repository is the far side, the
 * local repository (type = IMAP) the near side, both reached through
 * imap_conn connections the account runner owns (one of each per job).
 * The planner, its rules and the crash-safety argument are plan.h's, with
 * opts.near_is_maildir = false: near UIDs are the local server's own, and
 * the status store maps remote UID <-> local UID (status.h; a message known
 * on the local side only is a near-only record).
 *
 * sync_imap_folder(), on the loop, without blocking:
 *   1. SELECTs the remote folder, loads the folder's status (records, open
 *      intents), SELECTs the local folder (EXAMINE on a readonly side and in
 *      --dry-run); a local folder missing is CREATEd when createfolders
 *      allows it and the status store knows none of its messages;
 *   2. lists both sides: UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE);
 *   3. plans (plan.h); open intents are looked up first by their marker
 *      header (UID SEARCH HEADER X-OIMAP-TUID on the side the copy went to);
 *   4. in --dry-run reports the plan and stops;
 *   5. executes it in plan.h's order.  Copies go in batches: the intents
 *      with fresh markers are committed, then the messages stream server to
 *      server (xfer.h: FETCH on one connection feeding APPEND on the other
 *      through a bounded FIFO, with the source's INTERNALDATE, flags and
 *      every keyword), the new UID comes from APPENDUID or else from the
 *      marker's UID SEARCH, and one commit records the pairs and deletes the
 *      intents.  Flags are grouped UID STOREs on each side; deletions
 *      STORE +\Deleted then UID EXPUNGE of exactly those UIDs.
 *
 * Keywords: every keyword of a message is copied with it.  Changes are
 * synced both ways for $Forwarded and the first 26 other keywords seen in
 * the folder: the plan's keyword bits name them through the folder's table
 * in the status store (status_folder_keywords()), which only grows, so a
 * bit keeps its meaning.  When a server keeps no keywords (PERMANENTFLAGS
 * without \*) only the system flags are compared.
 *
 * Ownership and callbacks as sync_folder() (sync.h): job and everything it
 * points to stay valid until cb has run; cb is never called from inside
 * sync_imap_folder(); result->conn_failed means one of the two connections
 * failed and neither should be reused.
 */
#ifndef OIMAP_SYNC_IMAP_H
#define OIMAP_SYNC_IMAP_H

#include "sync.h"

/* status_folder.flags of a folder pair whose local side is an IMAP server:
 * its records pair remote UIDs with the local server's UIDs, which a
 * Maildir record (local UID = remote UID) must never be taken for. */
#define SYNC_FOLDER_IMAP_NEAR 0x1u

struct sync_imap_job {
    /* base.conn: the remote connection; base.local_name: the local folder's
     * name in the status store; base.maildir, base.remote_status and
     * base.hooks are not used. */
    struct sync_folder_job base;
    struct imap_conn *near_conn; /* authenticated connection to the local server */
    const char *near_name;       /* the folder on the local server (UTF-8) */
};

/* Start; returns 0 (cb runs once, later) or a negative code (nothing
 * started, cb never runs). */
int sync_imap_folder(const struct sync_imap_job *job, sync_folder_cb cb, void *arg);

#endif
