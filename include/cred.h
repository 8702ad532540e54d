/* cred.h - where a repository's user name and password come from.
 *
 * offlineimap's lookup order, minus the keyring:
 *   remotepasscmd (oimap: the first line a shell command prints),
 *   remotepasseval (config_load() evaluates it, through the python3 helper
 *   when needed, and stores its value in remotepass, which it overrides),
 *   remotepass, remotepassfile (first line), ~/.netrc, /etc/netrc.
 * The user name comes from remoteuser, else the netrc entry for the host.
 * Every password found is registered with log_add_secret() before it is
 * returned, so no log line can show it.
 */
#ifndef OIMAP_CRED_H
#define OIMAP_CRED_H

#include <stddef.h>

struct config_repo;

/* Look up the login of repo for host.  On success *user_r and *pass_r are
 * malloc'd (the caller wipes and frees the password with cred_free()); a
 * missing password is OIMAP_EAUTH with a message naming the repository and
 * the options to set, except for an OAuth2 account (access token, its
 * command or a refresh token configured): then 0 with *pass_r NULL.  A failing remotepasscmd or an
 * unreadable remotepassfile is OIMAP_ECONFIG, logged with the option's name. */
int cred_lookup(const struct config_repo *repo, const char *host, char **user_r, char **pass_r);

/* Find host in a netrc-format buffer: 0 and malloc'd *login_r / *pass_r
 * (either may be NULL when the entry lacks it), -ENOENT when no entry (nor a
 * "default" entry) matches.  Pure, for tests. */
int cred_netrc_find(const char *buf, size_t len, const char *host, const char *login,
                    char **login_r, char **pass_r);

/* Run cmd with /bin/sh and return its first output line (trailing CR/LF
 * removed).  Returns 0, or OIMAP_ECONFIG when it fails, prints nothing, or
 * exits non-zero. */
int cred_run_command(const char *cmd, char **line_r);

/* Overwrite and free a secret; sets *s to NULL. */
void cred_free(char **s);

#endif
