/* fmd5_migrate.h - `oimap --migrate-fmd5-using-nametrans`, offlineimap's
 * maintenance command for Maildirs whose local repository has a nametrans.
 *
 * A message file carries ,FMD5=<md5 of its folder's name>, and U= is
 * trusted only when that matches.  offlineimap before 6.3.5 (and oimap
 * before it learnt offlineimap's rule) hashed the folder's name on disk;
 * offlineimap since hashes the name the local nametrans gives it.  This
 * command renames the files of the first kind to the second, so that the
 * next sync pairs them instead of uploading them again.
 *
 * As offlineimap: for each selected account (-a, else [general] accounts)
 * whose local repository is a Maildir, every folder found under
 * localfolders (no folderfilter applies), every file in new/ and cur/:
 *   - FMD5 = md5(name on disk), different from md5(nametrans'd name):
 *     renamed to carry the latter ("FMD5 OLD -> NEW" at info level);
 *   - FMD5 = md5(nametrans'd name): left alone (a second run does nothing);
 *   - another FMD5: left alone, with a warning (it belongs to neither);
 *   - no FMD5: left alone.
 * Where oimap differs: GmailMaildir repositories are migrated too (offline-
 * imap skips them, their file names being the same); a rename never
 * replaces an existing file; the account is locked for the duration (a sync
 * of it waits or refuses), and offlineimap3 fails here with a TypeError in
 * Python 3 (it hashes a str).  --dry-run says what would be renamed.
 */
#ifndef OIMAP_FMD5_MIGRATE_H
#define OIMAP_FMD5_MIGRATE_H

#include <stdbool.h>
#include <uv.h>

struct config;

/* Run the command for cfg's selected accounts on loop (run until done).
 * Returns 0, or a negative code after logging each failure (a file that
 * could not be renamed, a folder that could not be read, a locked
 * account); the other files and accounts are still done. */
int fmd5_migrate_run(uv_loop_t *loop, const struct config *cfg, bool dry_run);

#endif
