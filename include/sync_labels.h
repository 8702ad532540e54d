/* sync_labels.h - Gmail label sync: the pass after a folder's messages and
 * flags were synced (offlineimap's "pass 4").
 *
 * It runs for accounts with synclabels = yes whose remote repository is of
 * type Gmail and whose local one is of type GmailMaildir.  sync.c hands
 * every finished folder to sync_labels_after(); when the pass applies it
 * takes over the folder's callback, otherwise the caller calls it.
 *
 * What it does, per message both sides hold (a paired status record):
 *   - the remote labels: UID FETCH 1:* (UID ... X-GM-LABELS) on the folder
 *     the sync left SELECTed;
 *   - the local labels: the labels header (labelsheader, X-Keywords) of the
 *     Maildir file, read only when the file's mtime differs from the one
 *     recorded when its labels were last synced (or nothing is recorded);
 *   - ignorelabels are left out of both and never changed anywhere (those
 *     in a local header stay there);
 *   - the labels to have: per label, the side that changed it since the
 *     recorded set wins (as flags are merged).  A message downloaded in this
 *     run takes the remote labels (its header is whatever the sender or an
 *     earlier upload put there); one uploaded in this run, or never recorded
 *     (labels newly switched on, a crash between the copy and the pass),
 *     gets both sides' labels;
 *   - remote: UID STORE uids +X-GM-LABELS (label) / -X-GM-LABELS, one
 *     command per label and UID set;
 *   - local: the file's header is replaced (every labels header removed, one
 *     written at the end of the header block; none when no label is left)
 *     in a new file in tmp/, fsynced, renamed over the old name (flags and
 *     U= kept), the directory fsynced;
 *   - then one status commit recording each message's labels and the file's
 *     mtime (status.h, the labels table).
 * Crash safety: both effects are idempotent and recorded only after they are
 * confirmed (tagged OK, rename and directory fsync), so a run killed in
 * between finds both sides already agreeing and only records them.
 *
 * A readonly remote makes labels travel from the server only; a readonly
 * local repository switches the pass off.  In --dry-run the changes are
 * reported, not made.  The check without a connection (sync.h) reads the
 * Maildir side only: a file whose labels differ from the recorded ones
 * makes it ask for a connection (result->need_conn).
 */
#ifndef OIMAP_SYNC_LABELS_H
#define OIMAP_SYNC_LABELS_H

#include <stdbool.h>

#include "sync.h"

struct plan;
struct repo_maildir_listing;
struct config_account;

/* Whether the pass applies to account a (synclabels, Gmail, GmailMaildir). */
bool sync_labels_enabled(const struct config_account *a);

/* Called by sync.c when a folder is done, before it frees its state.  job,
 * res: the folder's; plan and listing (both may be NULL): the plan executed
 * and the Maildir listing it named, to learn which messages were copied in
 * this run.  Returns true when the pass took over: cb(res', arg) then runs
 * later, exactly once (res' is res, with the pass's error if it failed, or
 * need_conn set by a check).  Returns false when it does not apply (the
 * caller calls cb itself).  job's pointers must stay valid until cb, as for
 * sync_folder(). */
bool sync_labels_after(const struct sync_folder_job *job, const struct sync_result *res,
                       const struct plan *plan, const struct repo_maildir_listing *listing,
                       sync_folder_cb cb, void *arg);

#endif
