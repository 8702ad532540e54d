/* local_imap.h - an IMAP server as the local repository: its folder names.
 *
 * The account runner pairs remote and local folders by the local side's
 * names as offlineimap's local repositories show them: '/' between levels,
 * modified UTF-7 unless utf8foldernames (the form nametrans and
 * folderfilter see).  For an IMAP local repository that name is the
 * server's name with its own hierarchy delimiter turned into '/' and, when
 * the repository has a reference, relative to that folder: with reference =
 * Archive and delimiter '.', the server's "Archive.Lists.dev" is the local
 * folder "Lists/dev", and "INBOX" pairs with "Archive.INBOX".  Folders
 * outside the reference are not part of the repository.
 */
#ifndef OIMAP_LOCAL_IMAP_H
#define OIMAP_LOCAL_IMAP_H

#include <stdbool.h>

struct imap_conn;
struct repo_maildir_folder_list;

/* The list of the local repository's folders (names as above; .local is
 * NULL) and the server's delimiter (0 when it has none).  st < 0: LIST
 * failed, why says so (valid during the call). */
typedef void (*local_imap_list_cb)(int st, struct repo_maildir_folder_list *list, char delim,
                                   const char *why, void *arg);

/* LIST the folders of c's server that belong to the repository (reference:
 * the repository's reference option, may be NULL or empty).  The list goes
 * to cb, which owns it (repo_maildir_folder_list_free).  Returns 0 or
 * imap_conn's code (cb never runs then). */
int local_imap_list(struct imap_conn *c, const char *reference, bool utf8foldernames,
                    const char *account, local_imap_list_cb cb, void *arg);

/* The server's name (UTF-8, for imap_conn) of the local folder called name
 * (the form above), malloc'ed into *out_r.  OIMAP_ENAME when the name cannot
 * be written on that server (a level holding its delimiter, or levels on a
 * server without one), -ENOMEM. */
int local_imap_name(const char *name, char delim, const char *reference, bool utf8foldernames,
                    char **out_r);

#endif
