/* maildir_atime.h - restoreatime: the access times of Maildir folders'
 * new/ and cur/ put back after a sync.
 *
 * Mail notifiers (mutt's mailbox check, biff-like tools, shell prompts)
 * take a new/ directory whose atime is older than its mtime for "new mail
 * not seen yet".  Listing a folder during a sync reads the directories and
 * moves their atime forward, so new mail looks seen.  With the Maildir
 * repository's restoreatime, oimap records the atimes of every local
 * folder's new/ and cur/ before the sync and sets them back (atime only,
 * the mtime is left as the sync made it) when the account's sync ends, as
 * offlineimap does.
 *
 * The blocking halves (collect, put back) are plain functions for tests;
 * the asynchronous ones run them in the libuv threadpool.
 */
#ifndef OIMAP_MAILDIR_ATIME_H
#define OIMAP_MAILDIR_ATIME_H

#include <stddef.h>

#include <uv.h>

struct maildir_atimes;

/* Blocking: stat DIR/new and DIR/cur for each of dirs (n full folder
 * paths).  A directory that cannot be read is left out (not an error).
 * Returns 0 and *r (free with maildir_atimes_free), or -ENOMEM. */
int maildir_atimes_collect(const char *const *dirs, size_t n, struct maildir_atimes **r);
/* Blocking: set each recorded directory's atime back (its mtime kept).
 * Returns how many directories were set; one gone since is skipped. */
size_t maildir_atimes_put_back(const struct maildir_atimes *t);
/* Number of directories recorded. */
size_t maildir_atimes_count(const struct maildir_atimes *t);
void maildir_atimes_free(struct maildir_atimes **t);

/* Asynchronous forms.  save: the strings are copied; cb gets the record
 * (NULL when out of memory), which then belongs to the caller.  restore:
 * consumes t (NULL allowed: cb still runs).  cb runs later on the loop
 * thread, never from inside the call.  Return 0 or a negative code (then
 * cb never runs; restore has freed t). */
typedef void (*maildir_atimes_saved_cb)(struct maildir_atimes *t, void *arg);
typedef void (*maildir_atimes_done_cb)(void *arg);
int maildir_atimes_save(uv_loop_t *loop, const char *const *dirs, size_t n,
                        maildir_atimes_saved_cb cb, void *arg);
int maildir_atimes_restore(uv_loop_t *loop, struct maildir_atimes *t, maildir_atimes_done_cb cb,
                           void *arg);

#endif
