/* cred.c - user names and passwords for IMAP repositories. */
#include "cred.h"
#include "config.h"
#include "err.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CRED_MAX_LINE 16384 /* an OAuth2 token can be several KB */

void cred_free(char **s)
{
    if (*s) {
        explicit_bzero(*s, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

static char *first_line(const char *buf, size_t len)
{
    size_t n = 0;
    while (n < len && buf[n] != '\n' && buf[n] != '\r')
        n++;
    return strndup(buf, n);
}

int cred_run_command(const char *cmd, char **line_r)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        close(fds[0]);
        close(fds[1]);
        return e;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char *buf = malloc(CRED_MAX_LINE);
    size_t len = 0;
    ssize_t n;
    while (buf && len < CRED_MAX_LINE &&
           ((n = read(fds[0], buf + len, CRED_MAX_LINE - len)) > 0 || (n < 0 && errno == EINTR)))
        if (n > 0)
            len += (size_t)n;
    /* Drain whatever is left so the child is never blocked writing. */
    char sink[4096];
    while ((n = read(fds[0], sink, sizeof sink)) > 0 || (n < 0 && errno == EINTR))
        ;
    close(fds[0]);
    int wst;
    while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
        ;
    if (!buf)
        return -ENOMEM;
    char *line = first_line(buf, len);
    explicit_bzero(buf, CRED_MAX_LINE);
    free(buf);
    if (!line)
        return -ENOMEM;
    if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0 || line[0] == '\0') {
        cred_free(&line);
        return WIFEXITED(wst) && WEXITSTATUS(wst) == 0 ? -ENODATA : OIMAP_ECONFIG;
    }
    *line_r = line;
    return 0;
}

/* netrc tokens are separated by white space; "macdef" bodies run to an empty
 * line.  Quoted tokens are not part of the format. */
static const char *next_token(const char **p, const char *end, size_t *len_r)
{
    const char *s = *p;
    while (s < end && isspace((unsigned char)*s))
        s++;
    const char *t = s;
    while (s < end && !isspace((unsigned char)*s))
        s++;
    *p = s;
    *len_r = (size_t)(s - t);
    return *len_r ? t : NULL;
}

static bool tok_is(const char *t, size_t len, const char *word)
{
    return t && strlen(word) == len && memcmp(t, word, len) == 0;
}

int cred_netrc_find(const char *buf, size_t len, const char *host, const char *login,
                    char **login_r, char **pass_r)
{
    const char *p = buf, *end = buf + len, *t;
    size_t tl;
    /* Best match: the host's entry (with the wanted login if one is given),
     * else the "default" entry. */
    const char *best_login = NULL, *best_pass = NULL;
    size_t best_ll = 0, best_pl = 0;
    int best_rank = 0; /* 2 = host match, 1 = default */

    while ((t = next_token(&p, end, &tl)) != NULL) {
        int rank;
        if (tok_is(t, tl, "machine")) {
            const char *m = next_token(&p, end, &tl);
            rank = m && strlen(host) == tl && strncasecmp(m, host, tl) == 0 ? 2 : 0;
        } else if (tok_is(t, tl, "default")) {
            rank = 1;
        } else if (tok_is(t, tl, "macdef")) {
            /* Skip the macro body: up to an empty line. */
            const char *nl = p;
            while (nl < end && !(nl[0] == '\n' && nl + 1 < end && nl[1] == '\n'))
                nl++;
            p = nl;
            continue;
        } else {
            continue;
        }
        const char *el = NULL, *ep = NULL;
        size_t ell = 0, epl = 0;
        const char *save = p;
        while ((t = next_token(&p, end, &tl)) != NULL) {
            if (tok_is(t, tl, "machine") || tok_is(t, tl, "default") || tok_is(t, tl, "macdef")) {
                p = save;
                break;
            }
            if (tok_is(t, tl, "login") || tok_is(t, tl, "password") || tok_is(t, tl, "account")) {
                bool is_login = tok_is(t, tl, "login"), is_pass = tok_is(t, tl, "password");
                const char *v = next_token(&p, end, &tl);
                if (is_login) {
                    el = v;
                    ell = tl;
                } else if (is_pass) {
                    ep = v;
                    epl = tl;
                }
            }
            save = p;
        }
        if (rank && login && el && (strlen(login) != ell || memcmp(el, login, ell) != 0))
            rank = 0; /* an entry for another login on this host */
        if (rank > best_rank) {
            best_rank = rank;
            best_login = el;
            best_ll = ell;
            best_pass = ep;
            best_pl = epl;
        }
    }
    if (!best_rank)
        return -ENOENT;
    *login_r = best_login ? strndup(best_login, best_ll) : NULL;
    *pass_r = best_pass ? strndup(best_pass, best_pl) : NULL;
    return 0;
}

static int read_file_first_line(const char *path, char **line_r)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    char *buf = malloc(CRED_MAX_LINE);
    size_t n = buf ? fread(buf, 1, CRED_MAX_LINE, f) : 0;
    fclose(f);
    if (!buf)
        return -ENOMEM;
    /* offlineimap: readline().strip(): surrounding white space goes. */
    size_t start = 0;
    while (start < n && (buf[start] == ' ' || buf[start] == '\t'))
        start++;
    char *line = first_line(buf + start, n - start);
    explicit_bzero(buf, CRED_MAX_LINE);
    free(buf);
    if (!line)
        return -ENOMEM;
    size_t len = strlen(line);
    while (len && (line[len - 1] == ' ' || line[len - 1] == '\t'))
        line[--len] = '\0';
    *line_r = line;
    return 0;
}

static int netrc_lookup(const char *host, const char *user, char **login_r, char **pass_r)
{
    const char *home = getenv("HOME");
    char path[4096];
    const char *paths[2] = {NULL, "/etc/netrc"};
    if (home) {
        snprintf(path, sizeof path, "%s/.netrc", home);
        paths[0] = path;
    }
    for (size_t i = 0; i < 2; i++) {
        if (!paths[i])
            continue;
        FILE *f = fopen(paths[i], "r");
        if (!f)
            continue;
        char *buf = malloc(1 << 20);
        size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
        fclose(f);
        if (!buf)
            return -ENOMEM;
        int r = cred_netrc_find(buf, n, host, user, login_r, pass_r);
        explicit_bzero(buf, n);
        free(buf);
        if (r == 0)
            return 0;
    }
    return -ENOENT;
}

/* An OAuth2 access token, its command or a refresh token is configured. */
static bool has_oauth2(const struct config_repo *repo)
{
    return (repo->oauth2_access_token && *repo->oauth2_access_token) ||
           (repo->oauth2_access_token_cmd && *repo->oauth2_access_token_cmd) ||
           (repo->oauth2_refresh_token && *repo->oauth2_refresh_token);
}

int cred_lookup(const struct config_repo *repo, const char *host, char **user_r, char **pass_r)
{
    char *user = repo->remoteuser ? strdup(repo->remoteuser) : NULL;
    char *pass = NULL;
    int r;

    /* offlineimap's order: remotepasseval, remotepass, remotepassfile,
     * then the netrc files; remotepasscmd (oimap's) comes first.
     * remotepasseval's value is already in remotepass (config_load). */
    if (repo->remotepasscmd) {
        if ((r = cred_run_command(repo->remotepasscmd, &pass)) < 0) {
            log_error("[Repository %s] remotepasscmd: the command %s", repo->name,
                      r == -ENODATA ? "printed no password" : "failed");
            free(user);
            return OIMAP_ECONFIG;
        }
    } else if (repo->remotepass) {
        pass = strdup(repo->remotepass);
    } else if (repo->remotepassfile) {
        if ((r = read_file_first_line(repo->remotepassfile, &pass)) < 0) {
            log_error("[Repository %s] remotepassfile: cannot read %s: %s", repo->name,
                      repo->remotepassfile, err_str(r));
            free(user);
            return OIMAP_ECONFIG;
        }
    }
    if (!pass || !user) {
        char *nlogin = NULL, *npass = NULL;
        if (netrc_lookup(host, user, &nlogin, &npass) == 0) {
            if (!user)
                user = nlogin;
            else
                free(nlogin);
            if (!pass)
                pass = npass;
            else
                cred_free(&npass);
        }
    }
    if (!user) {
        log_error("[Repository %s] remoteuser: not set, and no ~/.netrc entry for %s", repo->name,
                  host);
        cred_free(&pass);
        return OIMAP_EAUTH;
    }
    if (!pass && has_oauth2(repo)) { /* the token stands in for the password */
        *user_r = user;
        *pass_r = NULL;
        return 0;
    }
    if (!pass) {
        log_error("[Repository %s]: no password for %s@%s: set remotepass, remotepassfile, "
                  "remotepasscmd or remotepasseval, or add it to ~/.netrc",
                  repo->name, user, host);
        free(user);
        return OIMAP_EAUTH;
    }
    log_add_secret(pass);
    *user_r = user;
    *pass_r = pass;
    return 0;
}
