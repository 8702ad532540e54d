/* delfolder.h - `oimap --delete-folder FOLDER`, offlineimap's maintenance
 * command: delete FOLDER on the remote IMAP server of the one selected
 * account, and forget what oimap's status store recorded about it.
 *
 * As offlineimap: FOLDER is the remote name as the server lists it
 * (untranslated, like -f; modified UTF-7 unless utf8foldernames = yes), the
 * account is the only one of [general] accounts or the one given with -a
 * (more than one is a usage error), nothing is asked, --dry-run only says
 * what would be done, and the local Maildir is never deleted.
 *
 * Where offlineimap would lose or resurrect mail, oimap refuses, before
 * anything is changed, with one line saying what to do (OIMAP_EGUARD for
 * the first case, OIMAP_EUSAGE / OIMAP_ECONFIG for the usage ones):
 *   - the local copy of the folder still holds files while the remote
 *     repository has createfolders = yes: the next sync would create the
 *     folder on the server again and upload them (offlineimap's next sync
 *     recreates it and deletes the local messages instead).  Move the local
 *     folder away first, or set createfolders = no;
 *   - INBOX; names with the LIST wildcards * and %; a read-only remote
 *     repository; an account another oimap is syncing (the account lock).
 * After the server's OK, the status records of the folder are forgotten in
 * one commit and an empty local Maildir of it (cur/, new/, tmp/ empty) is
 * removed, so that the next sync neither recreates it on the server nor
 * reports it as missing.  A crash between the two leaves records of a folder
 * that is gone: running the command again forgets them.
 */
#ifndef OIMAP_DELFOLDER_H
#define OIMAP_DELFOLDER_H

#include <stdbool.h>
#include <uv.h>

struct config;

/* Run the command on loop (which it runs until done).  Returns 0 when the
 * folder was deleted (or would be, in a dry run), OIMAP_EUSAGE when the
 * account is not one, or another negative code after logging why. */
int delfolder_run(uv_loop_t *loop, const struct config *cfg, const char *folder, bool dry_run);

#endif
