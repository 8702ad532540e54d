/* config.c - offlineimaprc options -> typed structs, with file:line errors.
 *
 * config_ini.c turns the file into sections of raw options; this file knows
 * what the options mean.  One table lists every option offlineimap documents:
 * its section, type, field, default and how far oimap supports it.  Typing is
 * table-driven: a default goes through the same parser as a value from the
 * file, and freeing walks the same table.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "build_config.h"
#include "err.h"
#include "log.h"
#include "pyhelper.h"

/* How far oimap supports an option.  Flip an entry to SUP_YES when the
 * feature lands. */
enum support {
    SUP_YES,     /* implemented */
    SUP_TODO,    /* parsed and checked, not implemented yet: one warning */
    SUP_RETIRED, /* offlineimap retired it: accepted with one note */
    SUP_NOOP,    /* meaningless in oimap (threads...): accepted with one note */
    SUP_NOZLIB,  /* implemented with zlib, which this build lacks: one warning */
};

/* usecompression needs zlib (meson -Dzlib). */
#define SUP_ZLIB (OIMAP_HAVE_ZLIB ? SUP_YES : SUP_NOZLIB)

enum opt_type {
    T_NONE, /* not read at all (retired) */
    T_STR,
    T_PATH,   /* ~ and $VAR expanded */
    T_CACERT, /* T_PATH, OS-DEFAULT -> the system bundle */
    T_BOOL,
    T_TRIBOOL, /* int: -1 unset */
    T_INT,
    T_INT64,
    T_FLOAT,
    T_LIST,
    T_MECHS,   /* list of SASL mechanism names */
    T_FPRINTS, /* list of hex certificate fingerprints */
    T_EXPR,
    T_REPOTYPE,
    T_TLSLEVEL,
    T_SSLVER,
    T_MAXAGE, /* days or YYYY-MM-DD */
    T_DATE,   /* YYYY-MM-DD */
};

enum kind { K_GENERAL, K_MBNAMES, K_ACCOUNT, K_REPO };

#define R_MAILDIR ((1u << CONFIG_REPO_MAILDIR) | (1u << CONFIG_REPO_GMAILMAILDIR))
#define R_IMAP ((1u << CONFIG_REPO_IMAP) | (1u << CONFIG_REPO_GMAIL))
#define R_GMAIL (1u << CONFIG_REPO_GMAIL)
#define R_ALL (R_MAILDIR | R_IMAP)

enum {
    F_EMPTY_NULL = 1 << 0, /* an empty value means unset */
    F_NOINTERP = 1 << 1,   /* read raw, no %(x)s (mbnames peritem) */
    F_INHERIT = 1 << 2,    /* default: [general]'s option of the same name */
    F_SECRET = 1 << 3,     /* never printed; registered with log_add_secret */
};

struct opt_desc {
    enum kind kind;
    const char *name;
    enum opt_type type;
    size_t off;
    const char *def;       /* default, parsed like a value; NULL: unset */
    const char *def_gmail; /* default for type Gmail, if different */
    enum support support;
    unsigned repos; /* K_REPO: repository types it applies to */
    unsigned flags;
    int min, max; /* T_INT, T_INT64 (min only), T_FLOAT (min only) */
};

#define G(n, t, f, d, s, ...)                                                                      \
    {                                                                                              \
        K_GENERAL, n, t, offsetof(struct config_general, f), d, NULL, s, 0, __VA_ARGS__            \
    }
#define M(n, t, f, d, s, ...)                                                                      \
    {                                                                                              \
        K_MBNAMES, n, t, offsetof(struct config_mbnames, f), d, NULL, s, 0, __VA_ARGS__            \
    }
#define A(n, t, f, d, s, ...)                                                                      \
    {                                                                                              \
        K_ACCOUNT, n, t, offsetof(struct config_account, f), d, NULL, s, 0, __VA_ARGS__            \
    }
#define R(n, t, f, d, dg, s, r, ...)                                                               \
    {                                                                                              \
        K_REPO, n, t, offsetof(struct config_repo, f), d, dg, s, r, __VA_ARGS__                    \
    }
#define NOFIELD 0

static const struct opt_desc opts[] = {
    G("accounts", T_LIST, accounts, NULL, SUP_YES, 0, 0, 0),
    G("metadata", T_PATH, metadata, "~/.offlineimap", SUP_YES, 0, 0, 0),
    G("maxsyncaccounts", T_INT, maxsyncaccounts, "1", SUP_YES, 0, 1, 1000),
    G("ui", T_STR, ui, "ttyui", SUP_YES, 0, 0, 0),
    G("ignore-readonly", T_BOOL, ignore_readonly, "no", SUP_YES, 0, 0, 0),
    G("pythonfile", T_PATH, pythonfile, NULL, SUP_YES, 0, 0, 0),
    G("socktimeout", T_INT, socktimeout, "0", SUP_YES, 0, 0, 86400 * 365),
    G("fsync", T_BOOL, fsync, "yes", SUP_YES, 0, 0, 0),
    G("dry-run", T_BOOL, dry_run, "no", SUP_YES, 0, 0, 0),
    G("ignore-keyring", T_BOOL, ignore_keyring, "no", SUP_TODO, 0, 0, 0),
    G("update-keyring", T_BOOL, update_keyring, "no", SUP_TODO, 0, 0, 0),
    G("filename_use_mail_timestamp", T_BOOL, filename_use_mail_timestamp, "no", SUP_YES, 0, 0, 0),
    G("utime_from_header", T_BOOL, utime_from_header, "no", SUP_YES, 0, 0, 0),

    M("enabled", T_BOOL, enabled, "no", SUP_YES, 0, 0, 0),
    M("filename", T_PATH, filename, "~/Mutt/muttrc.mailboxes", SUP_YES, 0, 0, 0),
    M("header", T_EXPR, header, "\"mailboxes \"", SUP_YES, 0, 0, 0),
    M("peritem", T_STR, peritem, "+%(accountname)s/%(foldername)s", SUP_YES, F_NOINTERP, 0, 0),
    M("sep", T_EXPR, sep, "\" \"", SUP_YES, 0, 0, 0),
    M("footer", T_EXPR, footer, "\"\\n\"", SUP_YES, 0, 0, 0),
    M("incremental", T_BOOL, incremental, "no", SUP_YES, 0, 0, 0),
    M("folderfilter", T_EXPR, folderfilter, NULL, SUP_YES, 0, 0, 0),
    M("sort_keyfunc", T_EXPR, sort_keyfunc, "lambda d: (d['accountname'], d['foldername'])",
      SUP_YES, 0, 0, 0),

    A("localrepository", T_STR, localrepository, NULL, SUP_YES, 0, 0, 0),
    A("remoterepository", T_STR, remoterepository, NULL, SUP_YES, 0, 0, 0),
    A("autorefresh", T_FLOAT, autorefresh, "0", SUP_YES, 0, 0, 0),
    A("quick", T_INT, quick, "0", SUP_YES, 0, -1, 1000000),
    A("presynchook", T_STR, presynchook, NULL, SUP_YES, F_EMPTY_NULL, 0, 0),
    A("postsynchook", T_STR, postsynchook, NULL, SUP_YES, F_EMPTY_NULL, 0, 0),
    A("maxsize", T_INT64, maxsize, NULL, SUP_YES, 0, 0, 0),
    A("maxage", T_MAXAGE, maxage, NULL, SUP_YES, 0, 0, 0),
    A("maildir-windows-compatible", T_BOOL, maildir_windows_compatible, "no", SUP_YES, 0, 0, 0),
    A("deletion_guard", T_BOOL, deletion_guard, "yes", SUP_YES, 0, 0, 0),
    A("synclabels", T_BOOL, synclabels, "no", SUP_YES, 0, 0, 0),
    A("labelsheader", T_STR, labelsheader, "X-Keywords", SUP_YES, 0, 0, 0),
    A("ignorelabels", T_LIST, ignorelabels, NULL, SUP_YES, 0, 0, 0),
    A("filterheaders", T_LIST, filterheaders, NULL, SUP_YES, 0, 0, 0),
    A("proxy", T_STR, proxy, NULL, SUP_YES, 0, 0, 0),
    A("authproxy", T_STR, authproxy, NULL, SUP_YES, 0, 0, 0),
    A("utf8foldernames", T_BOOL, utf8foldernames, "no", SUP_YES, 0, 0, 0),
    {K_ACCOUNT, "status_backend", T_NONE, NOFIELD, NULL, NULL, SUP_RETIRED, 0, 0, 0, 0},

    R("type", T_REPOTYPE, type, NULL, NULL, SUP_YES, R_ALL, 0, 0, 0),
    R("nametrans", T_EXPR, nametrans, NULL, NULL, SUP_YES, R_ALL, 0, 0, 0),
    R("folderfilter", T_EXPR, folderfilter, NULL, NULL, SUP_YES, R_ALL, 0, 0, 0),
    R("folderincludes", T_EXPR, folderincludes, NULL, NULL, SUP_YES, R_ALL, 0, 0, 0),
    R("foldersort", T_EXPR, foldersort, NULL, NULL, SUP_YES, R_ALL, 0, 0, 0),
    R("dynamic_folderfilter", T_BOOL, dynamic_folderfilter, "no", NULL, SUP_YES, R_ALL, 0, 0, 0),
    R("createfolders", T_BOOL, createfolders, "yes", NULL, SUP_YES, R_ALL, 0, 0, 0),
    R("sync_deletes", T_BOOL, sync_deletes, "yes", NULL, SUP_YES, R_ALL, 0, 0, 0),
    R("readonly", T_BOOL, readonly, "no", NULL, SUP_YES, R_ALL, 0, 0, 0),
    R("startdate", T_DATE, startdate, NULL, NULL, SUP_YES, R_ALL, 0, 0, 0),
    R("filename_use_mail_timestamp", T_BOOL, filename_use_mail_timestamp, NULL, NULL, SUP_YES,
      R_ALL, F_INHERIT, 0, 0),

    R("localfolders", T_PATH, localfolders, NULL, NULL, SUP_YES, R_MAILDIR, 0, 0, 0),
    R("sep", T_STR, sep, ".", NULL, SUP_YES, R_MAILDIR, 0, 0, 0),
    R("restoreatime", T_BOOL, restoreatime, "no", NULL, SUP_YES, R_MAILDIR, 0, 0, 0),
    R("utime_from_header", T_BOOL, utime_from_header, NULL, NULL, SUP_YES, R_MAILDIR, F_INHERIT, 0,
      0),

    R("remotehost", T_STR, remotehost, NULL, "imap.gmail.com", SUP_YES, R_IMAP, 0, 0, 0),
    R("remotehosteval", T_EXPR, remotehosteval, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("remoteport", T_INT, remoteport, "0", NULL, SUP_YES, R_IMAP, 0, 1, 65535),
    R("remoteporteval", T_EXPR, remoteporteval, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("remoteuser", T_STR, remoteuser, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("remoteusereval", T_EXPR, remoteusereval, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("remotepass", T_STR, remotepass, NULL, NULL, SUP_YES, R_IMAP, F_SECRET, 0, 0),
    R("remotepasseval", T_EXPR, remotepasseval, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("remotepassfile", T_PATH, remotepassfile, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("remotepasscmd", T_STR, remotepasscmd, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("remote_identity", T_STR, remote_identity, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("auth_mechanisms", T_MECHS, auth_mechanisms, "GSSAPI, XOAUTH2, CRAM-MD5, PLAIN, LOGIN", NULL,
      SUP_YES, R_IMAP, 0, 0, 0),
    R("ssl", T_BOOL, ssl, "yes", NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("starttls", T_BOOL, starttls, "yes", NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("sslcacertfile", T_CACERT, sslcacertfile, "OS-DEFAULT", NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("sslclientcert", T_PATH, sslclientcert, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("sslclientkey", T_PATH, sslclientkey, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("cert_fingerprint", T_FPRINTS, cert_fingerprint, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("ssl_version", T_SSLVER, ssl_version, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("tls_level", T_TLSLEVEL, tls_level, "tls_compat", NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("ipv6", T_TRIBOOL, ipv6, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("oauth2_client_id", T_STR, oauth2_client_id, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("oauth2_client_secret", T_STR, oauth2_client_secret, NULL, NULL, SUP_YES, R_IMAP, F_SECRET, 0,
      0),
    R("oauth2_refresh_token", T_STR, oauth2_refresh_token, NULL, NULL, SUP_YES, R_IMAP, F_SECRET, 0,
      0),
    R("oauth2_access_token", T_STR, oauth2_access_token, NULL, NULL, SUP_YES, R_IMAP, F_SECRET, 0,
      0),
    R("oauth2_access_token_cmd", T_STR, oauth2_access_token_cmd, NULL, NULL, SUP_YES, R_IMAP, 0, 0,
      0),
    R("oauth2_request_url", T_STR, oauth2_request_url, NULL,
      "https://accounts.google.com/o/oauth2/token", SUP_YES, R_IMAP, 0, 0, 0),
    R("oauth2_client_id_eval", T_EXPR, oauth2_client_id_eval, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("oauth2_client_secret_eval", T_EXPR, oauth2_client_secret_eval, NULL, NULL, SUP_YES, R_IMAP,
      0, 0, 0),
    R("oauth2_refresh_token_eval", T_EXPR, oauth2_refresh_token_eval, NULL, NULL, SUP_YES, R_IMAP,
      0, 0, 0),
    R("oauth2_access_token_eval", T_EXPR, oauth2_access_token_eval, NULL, NULL, SUP_YES, R_IMAP, 0,
      0, 0),
    R("preauthtunnel", T_STR, preauthtunnel, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("transporttunnel", T_STR, transporttunnel, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("reference", T_STR, reference, "", NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("decodefoldernames", T_BOOL, decodefoldernames, "no", NULL, SUP_RETIRED, R_IMAP, 0, 0, 0),
    R("idlefolders", T_EXPR, idlefolders, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("usecompression", T_BOOL, usecompression, "no", NULL, SUP_ZLIB, R_IMAP, 0, 0, 0),
    R("maxconnections", T_INT, maxconnections, "1", NULL, SUP_YES, R_IMAP, 0, 1, 1000),
    R("singlethreadperfolder", T_BOOL, singlethreadperfolder, "no", NULL, SUP_NOOP, R_IMAP, 0, 0,
      0),
    R("holdconnectionopen", T_BOOL, holdconnectionopen, "no", NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("keepalive", T_INT, keepalive, "0", NULL, SUP_YES, R_IMAP, 0, 0, 86400),
    R("expunge", T_BOOL, expunge, "yes", NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("subscribedonly", T_BOOL, subscribedonly, "no", NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("newmail_hook", T_EXPR, newmail_hook, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("retrycount", T_INT, retrycount, "2", NULL, SUP_YES, R_IMAP, 0, 0, 1000),
    R("copy_ignore_eval", T_EXPR, copy_ignore_eval, NULL, NULL, SUP_YES, R_IMAP, 0, 0, 0),
    R("socktimeout", T_INT, socktimeout, NULL, NULL, SUP_YES, R_IMAP, F_INHERIT, 0, 86400 * 365),
    R("trashfolder", T_STR, trashfolder, NULL, "[Gmail]/Trash", SUP_YES, R_GMAIL, 0, 0, 0),
    R("spamfolder", T_STR, spamfolder, NULL, "[Gmail]/Spam", SUP_YES, R_GMAIL, 0, 0, 0),
    {K_REPO, "realdelete", T_NONE, NOFIELD, NULL, NULL, SUP_RETIRED, R_ALL, 0, 0, 0},
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static const char *const kind_name[] = {"[general]", "[mbnames]", "[Account]", "[Repository]"};

/* ------------------------------------------------------------------------ */
/* context and diagnostics */

struct ctx {
    struct config *cfg;
    struct config_ini *ini;
    bool check_files; /* config_load(): remotepassfile/sslcacertfile must be readable */
    bool *repo_typed; /* parallel to cfg->repos: its type option was valid */
    int n_err;
    bool oom;
};

/* Where a value came from, for messages. */
struct loc {
    const char *sect; /* where the option is written ("DEFAULT" possibly) */
    const char *opt;
    int line;          /* 0: a built-in default */
    bool override;     /* from -k */
    const char *for_s; /* the section reading a [DEFAULT] value, else NULL */
};

__attribute__((format(printf, 4, 5))) static void diag_at(struct ctx *c, enum config_diag_level lvl,
                                                          const struct loc *l, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (lvl == CONFIG_DIAG_ERROR)
        c->n_err++;
    if (l->override)
        config_diag(lvl, "-k %s:%s: %s", l->sect, l->opt, what);
    else if (l->for_s)
        config_diag(lvl, "%s:%d: [%s] %s: %s (read by [%s])", c->ini->file, l->line, l->sect,
                    l->opt, what, l->for_s);
    else
        config_diag(lvl, "%s:%d: [%s] %s: %s", c->ini->file, l->line, l->sect, l->opt, what);
}

static char *xstrdup(struct ctx *c, const char *s)
{
    char *p = strdup(s);
    if (!p)
        c->oom = true;
    return p;
}

/* ------------------------------------------------------------------------ */
/* value parsers (Python's int(), float() and getboolean() rules) */

static bool parse_bool(const char *v, bool *b_r)
{
    static const char *const yes[] = {"1", "yes", "true", "on"};
    static const char *const no[] = {"0", "no", "false", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *b_r = true, true;
        if (strcasecmp(v, no[i]) == 0)
            return *b_r = false, true;
    }
    return false;
}

/* Decimal integer with an optional sign and '_' between digits. */
static bool parse_int64(const char *v, long long *n_r)
{
    const char *p = v;
    bool neg = false;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (!isdigit((unsigned char)*p))
        return false;
    unsigned long long n = 0;
    for (; *p; p++) {
        if (*p == '_' && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[-1]))
            continue;
        if (!isdigit((unsigned char)*p))
            return false;
        if (n > (unsigned long long)INT64_MAX / 10)
            return false;
        n = n * 10 + (unsigned long long)(*p - '0');
        if (n > (unsigned long long)INT64_MAX)
            return false;
    }
    *n_r = neg ? -(long long)n : (long long)n;
    return true;
}

static bool parse_float(const char *v, double *d_r)
{
    if (!*v || strspn(v, "0123456789.eE+-") != strlen(v))
        return false; /* no hex, inf or nan */
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (*end || errno || !isfinite(d))
        return false;
    *d_r = d;
    return true;
}

/* YYYY-MM-DD (month and day may have one digit, as strptime allows). */
static bool parse_date(const char *v)
{
    int y, m, d, n = 0;
    if (strlen(v) > 10 || !isdigit((unsigned char)v[0]) ||
        sscanf(v, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || v[n] || n < 8 || v[4] != '-')
        return false;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1900 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return false;
    if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return false;
    return true;
}

/* Splits at ',', strips items, drops empty ones. */
static int split_list(struct ctx *c, const char *v, struct config_list *l)
{
    size_t n = 1;
    for (const char *p = v; *p; p++)
        n += *p == ',';
    l->v = calloc(n, sizeof(char *));
    l->n = 0;
    if (!l->v)
        return c->oom = true, -ENOMEM;
    for (const char *p = v;;) {
        const char *e = strchr(p, ',');
        if (!e)
            e = p + strlen(p);
        const char *a = p, *b = e;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a) {
            char *item = strndup(a, (size_t)(b - a));
            if (!item)
                return c->oom = true, -ENOMEM;
            l->v[l->n++] = item;
        }
        if (!*e)
            break;
        p = e + 1;
    }
    return 0;
}

static void free_list(struct config_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* os.path.expanduser followed by os.path.expandvars, as offlineimap does. */
static char *expand_path(const char *v)
{
    char *home = NULL;
    const char *rest = v;
    if (v[0] == '~') {
        const char *slash = strchr(v, '/');
        size_t ul = slash ? (size_t)(slash - v - 1) : strlen(v + 1);
        const char *h = NULL;
        if (ul == 0) {
            h = getenv("HOME");
            if (!h) {
                struct passwd *pw = getpwuid(getuid());
                h = pw ? pw->pw_dir : NULL;
            }
        } else {
            char user[256];
            if (ul < sizeof(user)) {
                memcpy(user, v + 1, ul);
                user[ul] = '\0';
                struct passwd *pw = getpwnam(user);
                h = pw ? pw->pw_dir : NULL;
            }
        }
        if (h) {
            home = strdup(h);
            if (!home)
                return NULL;
            size_t hl = strlen(home);
            while (hl > 1 && home[hl - 1] == '/')
                home[--hl] = '\0';
            if (hl == 1 && home[0] == '/' && slash)
                home[0] = '\0'; /* "/" + "/x" would double the slash */
            rest = v + 1 + ul;
        }
    }
    size_t cap = (home ? strlen(home) : 0) + strlen(rest) + 1, n = 0;
    char *out = malloc(cap);
    if (!out) {
        free(home);
        return NULL;
    }
#define PUT(s, l)                                                                                  \
    do {                                                                                           \
        size_t l_ = (l);                                                                           \
        if (n + l_ + 1 > cap) {                                                                    \
            cap = (n + l_ + 1) * 2;                                                                \
            char *no_ = realloc(out, cap);                                                         \
            if (!no_) {                                                                            \
                free(out);                                                                         \
                free(home);                                                                        \
                return NULL;                                                                       \
            }                                                                                      \
            out = no_;                                                                             \
        }                                                                                          \
        memcpy(out + n, (s), l_);                                                                  \
        n += l_;                                                                                   \
    } while (0)
    if (home)
        PUT(home, strlen(home));
    for (const char *p = rest; *p;) {
        if (*p == '$') {
            const char *ns = p + 1, *ne;
            bool brace = *ns == '{';
            if (brace) {
                ns++;
                ne = strchr(ns, '}');
            } else {
                ne = ns;
                while (isalnum((unsigned char)*ne) || *ne == '_')
                    ne++;
            }
            if (ne && ne > ns && (size_t)(ne - ns) < 256) {
                char var[256];
                memcpy(var, ns, (size_t)(ne - ns));
                var[ne - ns] = '\0';
                const char *val = getenv(var);
                if (val) {
                    PUT(val, strlen(val));
                    p = ne + brace;
                    continue;
                }
            }
        }
        PUT(p, 1);
        p++;
    }
#undef PUT
    out[n] = '\0';
    free(home);
    return out;
}

static const char *system_ca_bundle(void)
{
    static const char *const paths[] = {
        "/etc/ssl/certs/ca-certificates.crt",                /* Debian, Ubuntu, Arch */
        "/etc/pki/tls/certs/ca-bundle.crt",                  /* Fedora, RHEL */
        "/etc/ssl/ca-bundle.pem",                            /* openSUSE */
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", /* RHEL 7+ */
        "/etc/ssl/cert.pem",                                 /* Alpine, BSDs, macOS */
        "/usr/local/share/certs/ca-root-nss.crt",            /* FreeBSD */
    };
    struct stat st;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if (stat(paths[i], &st) == 0 && S_ISREG(st.st_mode))
            return paths[i];
    return NULL;
}

static const char *const repotype_names[] = {"Maildir", "GmailMaildir", "IMAP", "Gmail"};
static const char *const tls_level_names[] = {"tls_compat", "tls_no_ssl", "tls_secure"};
static const char *const ssl_version_names[] = {"",     "ssl2",   "ssl3",   "ssl23",
                                                "tls1", "tls1_1", "tls1_2", "tls1_3"};
static const char *const known_mechs[] = {"GSSAPI", "XOAUTH2", "CRAM-MD5",
                                          "PLAIN",  "LOGIN",   "OAUTHBEARER"};

static int lookup_name(const char *v, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (names[i][0] && strcasecmp(v, names[i]) == 0)
            return (int)i;
    return -1;
}

const char *config_repo_type_name(enum config_repo_type type)
{
    return (unsigned)type < 4 ? repotype_names[type] : "?";
}

/* Parses v for option d into the field at base.  Returns 0, or
 * OIMAP_ECONFIG after reporting at l. */
static int set_value(struct ctx *c, const struct opt_desc *d, void *base, const char *v,
                     const struct loc *l)
{
    void *f = (char *)base + d->off;
    long long n;
    double x;
    bool b;
    int i;

    switch (d->type) {
    case T_NONE:
        return 0;
    case T_STR:
        free(*(char **)f);
        *(char **)f = (d->flags & F_EMPTY_NULL) && !*v ? NULL : xstrdup(c, v);
        if (d->flags & F_SECRET && *v)
            log_add_secret(v);
        return 0;
    case T_CACERT:
        if (strcmp(v, "OS-DEFAULT") == 0) {
            const char *bundle = system_ca_bundle();
            free(*(char **)f);
            *(char **)f = bundle ? xstrdup(c, bundle) : NULL;
            ((struct config_repo *)base)->sslcacertfile_os_default = true;
            return 0;
        }
        ((struct config_repo *)base)->sslcacertfile_os_default = false;
        /* fall through */
    case T_PATH:
        free(*(char **)f);
        *(char **)f = NULL;
        if (!*v)
            return 0;
        if (!(*(char **)f = expand_path(v)))
            c->oom = true;
        return 0;
    case T_BOOL:
        if (!parse_bool(v, &b))
            goto bad_bool;
        *(bool *)f = b;
        return 0;
    case T_TRIBOOL:
        if (!parse_bool(v, &b))
            goto bad_bool;
        *(int *)f = b;
        return 0;
    case T_INT:
        if (!parse_int64(v, &n)) {
            diag_at(c, CONFIG_DIAG_ERROR, l, "not an integer: '%s'", v);
            return OIMAP_ECONFIG;
        }
        if (n < d->min || n > d->max) {
            /* remoteport's built-in default 0 means "by ssl" */
            if (!(l->line == 0 && !l->override && n == 0)) {
                diag_at(c, CONFIG_DIAG_ERROR, l, "%s out of range (%d to %d)", v, d->min, d->max);
                return OIMAP_ECONFIG;
            }
        }
        *(int *)f = (int)n;
        return 0;
    case T_INT64:
        if (!parse_int64(v, &n) || n < d->min) {
            diag_at(c, CONFIG_DIAG_ERROR, l, "not a non-negative integer: '%s'", v);
            return OIMAP_ECONFIG;
        }
        *(int64_t *)f = n;
        return 0;
    case T_FLOAT:
        if (!parse_float(v, &x) || x < d->min) {
            diag_at(c, CONFIG_DIAG_ERROR, l, "not a non-negative number: '%s'", v);
            return OIMAP_ECONFIG;
        }
        *(double *)f = x;
        return 0;
    case T_LIST:
        free_list(f);
        return split_list(c, v, f);
    case T_MECHS: {
        struct config_list *ml = f;
        free_list(ml);
        if (split_list(c, v, ml) < 0)
            return -ENOMEM;
        for (size_t k = 0; k < ml->n; k++) {
            i = lookup_name(ml->v[k], known_mechs, sizeof(known_mechs) / sizeof(*known_mechs));
            if (i < 0) {
                diag_at(c, CONFIG_DIAG_ERROR, l,
                        "unknown authentication mechanism '%s' (known: GSSAPI, XOAUTH2, "
                        "CRAM-MD5, PLAIN, LOGIN, OAUTHBEARER)",
                        ml->v[k]);
                return OIMAP_ECONFIG;
            }
            strcpy(ml->v[k], known_mechs[i]); /* same length, canonical case */
        }
        return 0;
    }
    case T_FPRINTS: {
        struct config_list *fl = f;
        free_list(fl);
        if (split_list(c, v, fl) < 0)
            return -ENOMEM;
        for (size_t k = 0; k < fl->n; k++) {
            char *w = fl->v[k];
            size_t len = 0;
            bool hex = true;
            for (char *r = w; *r; r++) {
                if (*r == ':')
                    continue;
                hex &= isxdigit((unsigned char)*r) != 0;
                w[len++] = (char)tolower((unsigned char)*r);
            }
            w[len] = '\0';
            if (!hex || (len != 40 && len != 56 && len != 64 && len != 96 && len != 128)) {
                diag_at(c, CONFIG_DIAG_ERROR, l,
                        "'%s' is not a hexadecimal SHA-1/224/256/384/512 fingerprint", w);
                return OIMAP_ECONFIG;
            }
        }
        return 0;
    }
    case T_EXPR: {
        struct config_expr *e = f;
        free(e->text);
        e->text = xstrdup(c, v);
        e->line = l->override ? 0 : l->line;
        return 0;
    }
    case T_REPOTYPE:
        if ((i = lookup_name(v, repotype_names, 4)) < 0) {
            diag_at(c, CONFIG_DIAG_ERROR, l,
                    "unknown repository type '%s' (Maildir, GmailMaildir, IMAP or Gmail)", v);
            return OIMAP_ECONFIG;
        }
        *(enum config_repo_type *)f = (enum config_repo_type)i;
        return 0;
    case T_TLSLEVEL:
        if ((i = lookup_name(v, tls_level_names, 3)) < 0) {
            diag_at(c, CONFIG_DIAG_ERROR, l,
                    "unknown TLS level '%s' (tls_compat, tls_no_ssl or tls_secure)", v);
            return OIMAP_ECONFIG;
        }
        *(enum config_tls_level *)f = (enum config_tls_level)i;
        return 0;
    case T_SSLVER:
        if ((i = lookup_name(v, ssl_version_names, 8)) < 0) {
            diag_at(c, CONFIG_DIAG_ERROR, l,
                    "unknown SSL version '%s' (ssl23, tls1, tls1_1, tls1_2 or tls1_3)", v);
            return OIMAP_ECONFIG;
        }
        *(enum config_ssl_version *)f = (enum config_ssl_version)i;
        return 0;
    case T_MAXAGE:
        if (parse_int64(v, &n) ? n < 1 || n > 1000000 : !parse_date(v)) {
            diag_at(c, CONFIG_DIAG_ERROR, l,
                    "'%s' is neither a number of days nor a YYYY-MM-DD date", v);
            return OIMAP_ECONFIG;
        }
        free(*(char **)f);
        *(char **)f = xstrdup(c, v);
        return 0;
    case T_DATE:
        if (!parse_date(v)) {
            diag_at(c, CONFIG_DIAG_ERROR, l, "'%s' is not a YYYY-MM-DD date", v);
            return OIMAP_ECONFIG;
        }
        free(*(char **)f);
        *(char **)f = xstrdup(c, v);
        return 0;
    }
    return 0;
bad_bool:
    diag_at(c, CONFIG_DIAG_ERROR, l, "not a boolean: '%s' (yes/no, true/false, on/off, 1/0)", v);
    return OIMAP_ECONFIG;
}

static void free_value(const struct opt_desc *d, void *base)
{
    void *f = (char *)base + d->off;
    switch (d->type) {
    case T_STR:
    case T_PATH:
    case T_CACERT:
    case T_MAXAGE:
    case T_DATE:
        free(*(char **)f);
        break;
    case T_LIST:
    case T_MECHS:
    case T_FPRINTS:
        free_list(f);
        break;
    case T_EXPR:
        free(((struct config_expr *)f)->text);
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* typing a section */

static bool applies(const struct opt_desc *d, enum kind k, int repotype)
{
    return d->kind == k && (k != K_REPO || repotype < 0 || (d->repos & (1u << repotype)));
}

static const struct opt_desc *find_desc(enum kind k, const char *name)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (opts[i].kind == k && strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

static bool is_customflag(const char *name)
{
    return strncmp(name, "customflag_", 11) == 0 && name[11] >= 'a' && name[11] <= 'z' && !name[12];
}

static void support_note(struct ctx *c, enum support sup, const struct loc *l)
{
    if (sup == SUP_TODO)
        diag_at(c, CONFIG_DIAG_WARN, l, "not implemented yet, ignored");
    else if (sup == SUP_RETIRED)
        diag_at(c, CONFIG_DIAG_NOTE, l, "retired by offlineimap, accepted and ignored");
    else if (sup == SUP_NOOP)
        diag_at(c, CONFIG_DIAG_NOTE, l, "has no effect in oimap, ignored");
    else if (sup == SUP_NOZLIB)
        diag_at(c, CONFIG_DIAG_WARN, l, "oimap was built without zlib: %s ignored", l->opt);
}

static struct loc loc_of(const struct config_ini_sect *s, const struct config_ini_opt *o,
                         const struct config_ini *ini)
{
    bool from_default = ini->defaults && config_ini_find(s, o->name) != o;
    return (struct loc){
        .sect = from_default ? "DEFAULT" : s->name,
        .opt = o->name,
        .line = o->line,
        .override = o->override,
        .for_s = from_default ? s->name : NULL,
    };
}

/* Reads option name of section s (own or [DEFAULT]), interpolated.  Returns
 * 1 with *val_r (malloc'd) and *l_r, 0 when not set, <0 on error. */
static int get_opt(struct ctx *c, const struct config_ini_sect *s, const char *name, unsigned flags,
                   char **val_r, struct loc *l_r)
{
    const struct config_ini_opt *o = s ? config_ini_lookup(c->ini, s, name) : NULL;
    *val_r = NULL;
    if (!o)
        return 0;
    *l_r = loc_of(s, o, c->ini);
    if (flags & F_NOINTERP) {
        *val_r = xstrdup(c, o->value);
        return *val_r ? 1 : -ENOMEM;
    }
    char why[512];
    int rc = config_ini_interpolate(c->ini, s, o, val_r, why, sizeof(why));
    if (rc == OIMAP_ECONFIG) {
        /* The reason may quote a part of the value: not for a password. */
        if (flags & F_SECRET)
            diag_at(c, CONFIG_DIAG_ERROR, l_r,
                    "bad '%%' in the value (write %%%% for a literal %%; value not shown)");
        else
            diag_at(c, CONFIG_DIAG_ERROR, l_r, "%s", why);
        return rc;
    }
    if (rc < 0)
        c->oom = true;
    return rc < 0 ? rc : 1;
}

/* Types every option of kind k (for a repository: of type repotype) from s
 * (which may be NULL: defaults only) into base. */
static void type_section(struct ctx *c, enum kind k, int repotype, const struct config_ini_sect *s,
                         void *base)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt_desc *d = &opts[i];
        if (!applies(d, k, repotype) || d->type == T_NONE)
            continue;
        char *v;
        struct loc l;
        int rc = get_opt(c, s, d->name, d->flags, &v, &l);
        if (rc > 0) {
            set_value(c, d, base, v, &l);
            free(v);
            continue;
        }
        if (rc < 0)
            continue;
        const char *def = d->def;
        if (repotype == CONFIG_REPO_GMAIL && d->def_gmail)
            def = d->def_gmail;
        if (d->flags & F_INHERIT) {
            const struct opt_desc *g = find_desc(K_GENERAL, d->name);
            memcpy((char *)base + d->off, (char *)&c->cfg->general + g->off,
                   d->type == T_BOOL ? sizeof(bool) : sizeof(int));
            continue;
        }
        if (def) {
            struct loc dl = {.sect = s ? s->name : kind_name[k], .opt = d->name};
            set_value(c, d, base, def, &dl);
        }
    }
}

/* Whether the typed field of d in base holds its default (an unimplemented
 * option set to what oimap does anyway needs no warning). */
static bool holds_default(const struct opt_desc *d, const void *base)
{
    const char *f = (const char *)base + d->off;
    long long n;
    bool b;
    if (d->type == T_BOOL && d->def && parse_bool(d->def, &b))
        return *(const bool *)f == b;
    if (d->type == T_INT && d->def && parse_int64(d->def, &n))
        return *(const int *)f == n;
    return false;
}

/* Warns about options of s that oimap does not use; base holds the typed
 * values.  [DEFAULT] options are warned about (once) only where they apply.
 * quiet_todo: the whole section is unused, say nothing about TODO options. */
static void check_names(struct ctx *c, enum kind k, int repotype, const struct config_ini_sect *s,
                        const void *base, bool quiet_todo)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_opts; i++) {
        struct config_ini_opt *o = &s->opts[i];
        struct loc l = loc_of(s, o, c->ini);
        const struct opt_desc *d = find_desc(k, o->name);
        if (!d && k == K_REPO && is_customflag(o->name)) {
            if (repotype >= 0 && !((1u << repotype) & R_MAILDIR))
                diag_at(c, CONFIG_DIAG_WARN, &l, "not used by %s repositories, ignored",
                        repotype_names[repotype]);
            continue;
        }
        if (!d) {
            diag_at(c, CONFIG_DIAG_WARN, &l, "unknown option, ignored");
            continue;
        }
        if (repotype >= 0 && !applies(d, k, repotype)) { /* (find_desc matched k) */
            diag_at(c, CONFIG_DIAG_WARN, &l, "not used by %s repositories, ignored",
                    repotype_names[repotype]);
            continue;
        }
        if ((d->support == SUP_TODO || d->support == SUP_NOZLIB) &&
            (quiet_todo || holds_default(d, base)))
            continue;
        support_note(c, d->support, &l);
    }
    if (!c->ini->defaults || s == c->ini->defaults)
        return;
    struct config_ini_sect *def = c->ini->defaults;
    for (size_t i = 0; i < def->n_opts; i++) {
        struct config_ini_opt *o = &def->opts[i];
        const struct opt_desc *d = find_desc(k, o->name);
        if (o->seen || !d || !applies(d, k, repotype) || d->support == SUP_YES ||
            config_ini_find(s, o->name) ||
            ((d->support == SUP_TODO || d->support == SUP_NOZLIB) &&
             (quiet_todo || holds_default(d, base))))
            continue;
        o->seen = true;
        struct loc l = {
            .sect = "DEFAULT", .opt = o->name, .line = o->line, .override = o->override};
        support_note(c, d->support, &l);
    }
}

static void required_missing(struct ctx *c, const struct config_ini_sect *s, const char *opt)
{
    struct loc l = {.sect = s->name, .opt = opt, .line = s->line};
    diag_at(c, CONFIG_DIAG_ERROR, &l, "required option missing");
}

/* ------------------------------------------------------------------------ */
/* repositories and accounts */

/* A file an IMAP repository reads later (remotepassfile, sslcacertfile) is
 * checked now: a typo or a directory is then a file:line error before
 * anything is created or connected, not a failure in the middle of a run
 * (and a directory would otherwise read as an empty password). */
static void check_readable_file(struct ctx *c, const struct config_ini_sect *s, const char *opt,
                                const char *path)
{
    const struct config_ini_opt *o = config_ini_lookup(c->ini, s, opt);
    struct loc l = {.sect = s->name, .opt = opt};
    struct stat st;
    if (o)
        l = loc_of(s, o, c->ini);
    if (stat(path, &st) < 0 || access(path, R_OK) < 0)
        diag_at(c, CONFIG_DIAG_ERROR, &l, "cannot read %s: %s", path, strerror(errno));
    else if (S_ISDIR(st.st_mode))
        diag_at(c, CONFIG_DIAG_ERROR, &l, "%s is a directory, not a file", path);
}

static struct config_repo *load_repo(struct ctx *c, const char *name)
{
    struct config *cfg = c->cfg;
    for (size_t i = 0; i < cfg->n_repos; i++)
        if (strcmp(cfg->repos[i].name, name) == 0)
            return &cfg->repos[i];
    char sect[1024];
    snprintf(sect, sizeof(sect), "Repository %s", name);
    const struct config_ini_sect *s = config_ini_section(c->ini, sect);
    if (!s)
        return NULL;
    struct config_repo *r = &cfg->repos[cfg->n_repos++];
    r->name = xstrdup(c, name);
    r->section = xstrdup(c, sect);
    r->line = s->line;
    r->ipv6 = -1;

    /* The type decides which options apply and some defaults. */
    char *v;
    struct loc l;
    int rc = get_opt(c, s, "type", 0, &v, &l);
    int type = -1;
    if (rc == 0)
        required_missing(c, s, "type");
    if (rc > 0 && set_value(c, find_desc(K_REPO, "type"), r, v, &l) == 0)
        type = (int)r->type;
    free(v);
    if (type < 0) {
        check_names(c, K_REPO, type, s, r, false);
        return r;
    }
    c->repo_typed[r - cfg->repos] = true;
    type_section(c, K_REPO, type, s, r);
    check_names(c, K_REPO, type, s, r, false);

    const struct config_ini_opt *o;
    if ((1u << type) & R_MAILDIR) {
        if (!(o = config_ini_lookup(c->ini, s, "localfolders"))) {
            required_missing(c, s, "localfolders");
        } else if (!r->localfolders) {
            struct loc ll = loc_of(s, o, c->ini);
            diag_at(c, CONFIG_DIAG_ERROR, &ll, "empty value");
        }
    }
    if (type == CONFIG_REPO_IMAP && (!r->remotehost || !*r->remotehost) &&
        !r->remotehosteval.text && !r->preauthtunnel && !r->transporttunnel) {
        if (!(o = config_ini_lookup(c->ini, s, "remotehost"))) {
            required_missing(c, s, "remotehost");
        } else {
            struct loc hl = loc_of(s, o, c->ini);
            diag_at(c, CONFIG_DIAG_ERROR, &hl, "empty value");
        }
    }
    if (c->check_files && ((1u << type) & R_IMAP) && r->remotepassfile && *r->remotepassfile)
        check_readable_file(c, s, "remotepassfile", r->remotepassfile);
    if (c->check_files && ((1u << type) & R_IMAP) && (r->ssl || r->starttls) && r->sslcacertfile &&
        !r->sslcacertfile_os_default)
        check_readable_file(c, s, "sslcacertfile", r->sslcacertfile);
    if (((1u << type) & R_IMAP) && r->tls_level != CONFIG_TLS_COMPAT &&
        r->ssl_version == CONFIG_SSLV_UNSET) {
        struct loc tl = {.sect = s->name, .opt = "tls_level"};
        if ((o = config_ini_lookup(c->ini, s, "tls_level")))
            tl = loc_of(s, o, c->ini);
        diag_at(c, CONFIG_DIAG_ERROR, &tl,
                "a tls_level other than tls_compat needs ssl_version set too (as in offlineimap)");
    }
    return r;
}

static void link_repo(struct ctx *c, struct config_account *a, const struct config_ini_sect *s,
                      const char *opt, bool local)
{
    const char *name = local ? a->localrepository : a->remoterepository;
    if (!name) {
        if (!config_ini_lookup(c->ini, s, opt))
            required_missing(c, s, opt);
        return;
    }
    const struct config_ini_opt *o = config_ini_lookup(c->ini, s, opt);
    struct loc l = loc_of(s, o, c->ini);
    struct config_repo *r = load_repo(c, name);
    if (!r) {
        diag_at(c, CONFIG_DIAG_ERROR, &l, "no [Repository %s] section", name);
        return;
    }
    if (local)
        a->local = r;
    else
        a->remote = r;
    /* Only a repository whose type is valid has a meaningful type here. */
    if (!c->repo_typed[r - c->cfg->repos])
        return;
    if (!local && r->type != CONFIG_REPO_IMAP && r->type != CONFIG_REPO_GMAIL)
        diag_at(c, CONFIG_DIAG_ERROR, &l,
                "repository '%s' is of type %s; a remote repository must be IMAP or Gmail", name,
                repotype_names[r->type]);
    if (local && r->type == CONFIG_REPO_GMAIL)
        diag_at(c, CONFIG_DIAG_ERROR, &l,
                "repository '%s' is of type Gmail; a local repository must be Maildir, "
                "GmailMaildir or IMAP",
                name);
}

/* synclabels works between a Gmail remote and a GmailMaildir local
 * repository only; offlineimap warns and syncs without labels otherwise. */
static void check_synclabels(struct ctx *c, const struct config_account *a,
                             const struct config_ini_sect *s)
{
    const struct config_ini_opt *o = config_ini_lookup(c->ini, s, "synclabels");
    if (!a->synclabels || !o || !a->local || !a->remote ||
        !c->repo_typed[a->local - c->cfg->repos] || !c->repo_typed[a->remote - c->cfg->repos])
        return;
    if (a->remote->type == CONFIG_REPO_GMAIL && a->local->type == CONFIG_REPO_GMAILMAILDIR)
        return;
    struct loc l = loc_of(s, o, c->ini);
    diag_at(c, CONFIG_DIAG_WARN, &l,
            "labels are synced between a remote repository of type Gmail and a local one of "
            "type GmailMaildir only (here %s and %s): ignored",
            repotype_names[a->remote->type], repotype_names[a->local->type]);
}

/* proxy and authproxy: parsed now (a bad value is a file:line error before
 * anything connects) and handed to the account's repositories; authproxy
 * unset means the same as proxy, empty means none (as in offlineimap). */
static void check_proxy(struct ctx *c, const struct config_account *a,
                        const struct config_ini_sect *s)
{
    struct proxy_spec px, apx;
    const char *names[2] = {"proxy", "authproxy"};
    const char *vals[2] = {a->proxy, a->authproxy ? a->authproxy : a->proxy};
    struct proxy_spec *out[2] = {&px, &apx};
    for (int i = 0; i < 2; i++) {
        char why[300];
        if (proxy_parse(vals[i], out[i], why, sizeof why) < 0) {
            /* an unset authproxy repeats proxy's error: say it once */
            if (i == 1 && !a->authproxy)
                return;
            const struct config_ini_opt *o = config_ini_lookup(c->ini, s, names[i]);
            struct loc l = {.sect = s->name, .opt = names[i], .line = s->line};
            if (o)
                l = loc_of(s, o, c->ini);
            diag_at(c, CONFIG_DIAG_ERROR, &l, "%s", why);
            return;
        }
    }
    struct config_repo *rs[2] = {a->local, a->remote};
    for (int i = 0; i < 2; i++) {
        if (!rs[i])
            continue;
        if ((rs[i]->proxy.type || rs[i]->authproxy.type) &&
            (memcmp(&rs[i]->proxy, &px, sizeof px) != 0 ||
             memcmp(&rs[i]->authproxy, &apx, sizeof apx) != 0)) {
            struct loc l = {.sect = s->name, .opt = "proxy", .line = s->line};
            diag_at(c, CONFIG_DIAG_ERROR, &l,
                    "repository '%s' is used by accounts with different proxy settings",
                    rs[i]->name);
            return;
        }
        rs[i]->proxy = px;
        rs[i]->authproxy = apx;
    }
}

/* offlineimap refuses more than one of maxage, the local startdate and the
 * remote startdate, and a startdate in the future (folder by folder, at
 * sync time); oimap says so once, at load. */
static void check_dates(struct ctx *c, const struct config_account *a,
                        const struct config_ini_sect *s)
{
    const struct config_repo *rs[2] = {a->local, a->remote};
    int n = a->maxage != NULL;
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    long today = (tm.tm_year + 1900L) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
    for (int i = 0; i < 2; i++) {
        if (!rs[i] || !rs[i]->startdate)
            continue;
        n++;
        const struct config_ini_sect *rsect = config_ini_section(c->ini, rs[i]->section);
        const struct config_ini_opt *o =
            rsect ? config_ini_lookup(c->ini, rsect, "startdate") : NULL;
        struct loc l = {.sect = rs[i]->section, .opt = "startdate"};
        if (o)
            l = loc_of(rsect, o, c->ini);
        int y, m, d;
        if (sscanf(rs[i]->startdate, "%d-%d-%d", &y, &m, &d) == 3 &&
            y * 10000L + m * 100 + d > today)
            diag_at(c, CONFIG_DIAG_ERROR, &l, "%s is in the future", rs[i]->startdate);
    }
    if (n > 1) {
        const struct config_ini_opt *o = a->maxage ? config_ini_lookup(c->ini, s, "maxage") : NULL;
        struct loc l = {.sect = s->name, .opt = "startdate", .line = s->line};
        if (o)
            l = loc_of(s, o, c->ini);
        diag_at(c, CONFIG_DIAG_ERROR, &l,
                "set at most one of maxage, the local repository's startdate and the remote "
                "repository's startdate (as offlineimap)");
    }
}

static void load_account(struct ctx *c, const char *name, const struct loc *listed)
{
    struct config *cfg = c->cfg;
    for (size_t i = 0; i < cfg->n_accounts; i++) {
        if (strcmp(cfg->accounts[i].name, name) == 0) {
            diag_at(c, CONFIG_DIAG_WARN, listed, "account '%s' listed twice", name);
            return;
        }
    }
    char sect[1024];
    snprintf(sect, sizeof(sect), "Account %s", name);
    const struct config_ini_sect *s = config_ini_section(c->ini, sect);
    if (!s) {
        diag_at(c, CONFIG_DIAG_ERROR, listed, "no [Account %s] section", name);
        return;
    }
    struct config_account *a = &cfg->accounts[cfg->n_accounts++];
    a->name = xstrdup(c, name);
    a->section = xstrdup(c, sect);
    a->line = s->line;
    a->maxsize = -1;
    type_section(c, K_ACCOUNT, -1, s, a);
    check_names(c, K_ACCOUNT, -1, s, a, false);
    link_repo(c, a, s, "localrepository", true);
    link_repo(c, a, s, "remoterepository", false);
    check_synclabels(c, a, s);
    check_dates(c, a, s);
    check_proxy(c, a, s);
}

/* ------------------------------------------------------------------------ */
/* the *eval options (config_load only)
 *
 * offlineimap evaluates remotehosteval & co. with the pythonfile's names
 * (no 're') when it connects; oimap evaluates them once, here, before
 * anything is touched, and stores the results in the plain options they
 * override (remotehost, remoteport, remoteuser, remotepass,
 * oauth2_access_token), so the connection code reads one field.  Values
 * come from pyeval when it can, else from the python3 helper (pyhelper.h),
 * which this enables for the whole run (folderfilter, nametrans...). */

/* "FILE:LINE: [section] option" of option opt as read by section s. */
static void where_of(struct ctx *c, const struct config_ini_sect *s, const char *opt, char *buf,
                     size_t len)
{
    const struct config_ini_opt *o = s ? config_ini_lookup(c->ini, s, opt) : NULL;
    struct loc l = {.sect = s ? s->name : "general", .opt = opt, .line = s ? s->line : 1};
    if (o)
        l = loc_of(s, o, c->ini);
    if (l.override)
        snprintf(buf, len, "-k %s:%s", l.sect, l.opt);
    else
        snprintf(buf, len, "%s:%d: [%s] %s", c->ini->file, l.line, l.sect, l.opt);
}

/* Evaluate option opt of section s.  Returns 0 with its value in *v (valid
 * until *x is freed), or <0 after reporting the error. */
static int eval_expr(struct ctx *c, const struct config_ini_sect *s, const char *opt,
                     const struct config_expr *e, struct pyexpr **x, struct pyval *v)
{
    char where[1024], err[1600];
    where_of(c, s, opt, where, sizeof where);
    int r = pyexpr_compile(e->text, where, false, err, sizeof err, x);
    if (r == 0 && (r = pyexpr_eval(*x, v)) < 0)
        snprintf(err, sizeof err, "%s", pyexpr_errmsg(*x));
    if (r == -ENOMEM) {
        c->oom = true;
    } else if (r < 0) {
        config_diag(CONFIG_DIAG_ERROR, "%s", err);
        c->n_err++;
    }
    return r;
}

/* A string option's value: 0 with a malloc'd *out_r (NULL when the value is
 * None and none_ok), or <0 after reporting.  A secret is registered with the
 * log masker before anything else can print it, and never quoted. */
static int eval_str(struct ctx *c, const struct config_ini_sect *s, const char *opt,
                    const struct config_expr *e, bool secret, bool none_ok, char **out_r)
{
    struct pyexpr *x = NULL;
    struct pyval v;
    *out_r = NULL;
    int r = eval_expr(c, s, opt, e, &x, &v);
    if (r == 0 && !(v.type == PYV_NONE && none_ok)) {
        const char *str = pyval_cstr(&v);
        char where[1024];
        if (str && strlen(str) == v.u.str.len && *str) {
            if (secret)
                log_add_secret(str);
            if (!(*out_r = strdup(str))) {
                c->oom = true;
                r = -ENOMEM;
            }
        } else {
            where_of(c, s, opt, where, sizeof where);
            config_diag(CONFIG_DIAG_ERROR, "%s: gave %s, not a non-empty string", where,
                        str ? "a string with a NUL byte or an empty string"
                            : pyval_type_name(v.type));
            c->n_err++;
            r = OIMAP_ECONFIG;
        }
    }
    pyexpr_free(&x);
    return r;
}

static void eval_port(struct ctx *c, const struct config_ini_sect *s, struct config_repo *r)
{
    struct pyexpr *x = NULL;
    struct pyval v;
    if (eval_expr(c, s, "remoteporteval", &r->remoteporteval, &x, &v) == 0) {
        if (v.type == PYV_INT && v.u.i >= 1 && v.u.i <= 65535) {
            r->remoteport = (int)v.u.i;
        } else {
            char where[1024], got[64];
            where_of(c, s, "remoteporteval", where, sizeof where);
            pyval_repr(&v, got, sizeof got);
            config_diag(CONFIG_DIAG_ERROR, "%s: gave %s, not a port number (1 to 65535)", where,
                        got);
            c->n_err++;
        }
    }
    pyexpr_free(&x);
}

/* Replace a string field, wiping the old value (it may be a password). */
static void replace_wiped(char **field, char *v)
{
    if (*field)
        explicit_bzero(*field, strlen(*field));
    free(*field);
    *field = v;
}

/* An oauth2_*_eval option into its field (None: unset). */
static void eval_oauth2(struct ctx *c, const struct config_ini_sect *s, const char *opt,
                        const struct config_expr *e, bool secret, char **field)
{
    char *v;
    if (eval_str(c, s, opt, e, secret, true, &v) < 0 || !v)
        return;
    size_t n = strlen(v);
    while (n && (v[n - 1] == '\n' || v[n - 1] == '\r'))
        v[--n] = '\0'; /* offlineimap strips line ends */
    if (secret)
        log_add_secret(v);
    replace_wiped(field, v);
}

static void eval_repo_exprs(struct ctx *c, struct config_repo *r)
{
    const struct config_ini_sect *s = config_ini_section(c->ini, r->section);
    char *v;
    if (r->remotehosteval.text &&
        eval_str(c, s, "remotehosteval", &r->remotehosteval, false, false, &v) == 0)
        replace_wiped(&r->remotehost, v);
    if (r->remoteporteval.text)
        eval_port(c, s, r);
    if (r->remoteusereval.text &&
        eval_str(c, s, "remoteusereval", &r->remoteusereval, false, false, &v) == 0)
        replace_wiped(&r->remoteuser, v);
    if (r->remotepasseval.text &&
        eval_str(c, s, "remotepasseval", &r->remotepasseval, true, false, &v) == 0)
        replace_wiped(&r->remotepass, v);
    /* offlineimap: each oauth2 option first, then its _eval (None: none). */
    if (r->oauth2_access_token_eval.text && !r->oauth2_access_token)
        eval_oauth2(c, s, "oauth2_access_token_eval", &r->oauth2_access_token_eval, true,
                    &r->oauth2_access_token);
    if (r->oauth2_refresh_token_eval.text && !r->oauth2_refresh_token)
        eval_oauth2(c, s, "oauth2_refresh_token_eval", &r->oauth2_refresh_token_eval, true,
                    &r->oauth2_refresh_token);
    if (r->oauth2_client_id_eval.text && !r->oauth2_client_id)
        eval_oauth2(c, s, "oauth2_client_id_eval", &r->oauth2_client_id_eval, false,
                    &r->oauth2_client_id);
    if (r->oauth2_client_secret_eval.text && !r->oauth2_client_secret)
        eval_oauth2(c, s, "oauth2_client_secret_eval", &r->oauth2_client_secret_eval, true,
                    &r->oauth2_client_secret);
}

static void eval_exprs(struct ctx *c)
{
    char where[1024];
    where_of(c, config_ini_section(c->ini, "general"), "pythonfile", where, sizeof where);
    if (pyhelper_enable(c->cfg->general.pythonfile, where) < 0) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < c->cfg->n_repos && !c->oom; i++)
        if (c->repo_typed[i] && ((1u << c->cfg->repos[i].type) & R_IMAP))
            eval_repo_exprs(c, &c->cfg->repos[i]);
}

/* ------------------------------------------------------------------------ */
/* loading */

static int apply_overrides(struct ctx *c, const struct config_override *ov, size_t n_ov)
{
    for (size_t i = 0; i < n_ov; i++) {
        const char *sect = ov[i].section ? ov[i].section : "general";
        const char *opt = ov[i].option ? ov[i].option : "";
        struct loc l = {.sect = sect, .opt = opt, .override = true};
        if (!*opt) {
            diag_at(c, CONFIG_DIAG_ERROR, &l, "option name missing");
            continue;
        }
        struct config_ini_sect *s = config_ini_section(c->ini, sect);
        if (!s) {
            diag_at(c, CONFIG_DIAG_ERROR, &l, "no [%s] section in %s", sect, c->ini->file);
            continue;
        }
        const char *v = ov[i].value ? ov[i].value : "";
        while (isspace((unsigned char)*v))
            v++;
        size_t vl = strlen(v);
        while (vl && isspace((unsigned char)v[vl - 1]))
            vl--;
        char *val = strndup(v, vl);
        if (!val || config_ini_set(s, opt, val) < 0) {
            free(val);
            return -ENOMEM;
        }
        free(val);
    }
    return 0;
}

static void check_sections(struct ctx *c)
{
    for (size_t i = 0; i < c->ini->n_sects; i++) {
        const struct config_ini_sect *s = c->ini->sects[i];
        const char *n = s->name;
        if (strncmp(n, "ui.", 3) == 0) {
            if (s->n_opts)
                config_diag(CONFIG_DIAG_NOTE,
                            "%s:%d: [%s]: offlineimap no longer reads [ui.*] sections, ignored",
                            c->ini->file, s->line, n);
        } else if (strcmp(n, "general") && strcmp(n, "mbnames") && strcmp(n, "DEFAULT") &&
                   strncmp(n, "Account ", 8) && strncmp(n, "Repository ", 11)) {
            config_diag(CONFIG_DIAG_WARN, "%s:%d: [%s]: unknown section, ignored", c->ini->file,
                        s->line, n);
        }
    }
}

static void build(struct ctx *c)
{
    struct config *cfg = c->cfg;
    const struct config_ini_sect *gs = config_ini_section(c->ini, "general");
    if (!gs) {
        config_diag(CONFIG_DIAG_ERROR, "%s:1: missing [general] section", c->ini->file);
        c->n_err++;
    }
    check_sections(c);
    type_section(c, K_GENERAL, -1, gs, &cfg->general);
    check_names(c, K_GENERAL, -1, gs, &cfg->general, false);
    if (c->check_files && gs && cfg->general.pythonfile && *cfg->general.pythonfile)
        check_readable_file(c, gs, "pythonfile", cfg->general.pythonfile);
    const struct config_ini_sect *ms = config_ini_section(c->ini, "mbnames");
    type_section(c, K_MBNAMES, -1, ms, &cfg->mbnames);
    /* A disabled [mbnames] is not used: its options need no warning. */
    check_names(c, K_MBNAMES, -1, ms, &cfg->mbnames, !cfg->mbnames.enabled);
    if (!gs)
        return;
    const struct config_ini_opt *ao = config_ini_lookup(c->ini, gs, "accounts");
    if (!ao) {
        required_missing(c, gs, "accounts");
        return;
    }
    struct loc al = loc_of(gs, ao, c->ini);
    const struct config_list *acc = &cfg->general.accounts;
    if (acc->n == 0) {
        diag_at(c, CONFIG_DIAG_ERROR, &al, "no account listed");
        return;
    }
    cfg->accounts = calloc(acc->n ? acc->n : 1, sizeof(*cfg->accounts));
    cfg->repos = calloc(acc->n ? 2 * acc->n : 1, sizeof(*cfg->repos));
    c->repo_typed = calloc(acc->n ? 2 * acc->n : 1, sizeof(bool));
    if (!cfg->accounts || !cfg->repos || !c->repo_typed) {
        c->oom = true;
        return;
    }
    for (size_t i = 0; i < acc->n; i++)
        load_account(c, acc->v[i], &al);
}

static void free_fields(enum kind k, void *base)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (opts[i].kind == k && opts[i].type != T_NONE)
            free_value(&opts[i], base);
}

void config_free(struct config **cfgp)
{
    struct config *cfg = *cfgp;
    if (!cfg)
        return;
    free_fields(K_GENERAL, &cfg->general);
    free_fields(K_MBNAMES, &cfg->mbnames);
    for (size_t i = 0; i < cfg->n_accounts; i++) {
        free_fields(K_ACCOUNT, &cfg->accounts[i]);
        free(cfg->accounts[i].name);
        free(cfg->accounts[i].section);
    }
    for (size_t i = 0; i < cfg->n_repos; i++) {
        struct config_repo *r = &cfg->repos[i];
        free_fields(K_REPO, r);
        for (int k = 0; k < 26; k++)
            free(r->customflag[k]);
        free(r->name);
        free(r->section);
    }
    free(cfg->accounts);
    free(cfg->repos);
    config_ini_free(&cfg->ini);
    free(cfg->path);
    free(cfg);
    *cfgp = NULL;
}

static void load_customflags(struct ctx *c)
{
    for (size_t i = 0; i < c->cfg->n_repos; i++) {
        struct config_repo *r = &c->cfg->repos[i];
        const struct config_ini_sect *s = config_ini_section(c->ini, r->section);
        if (!s || !c->repo_typed[i] || !((1u << r->type) & R_MAILDIR))
            continue;
        for (int k = 0; k < 26; k++) {
            char name[16], *v;
            struct loc l;
            snprintf(name, sizeof(name), "customflag_%c", 'a' + k);
            if (get_opt(c, s, name, 0, &v, &l) > 0)
                r->customflag[k] = v;
        }
    }
}

/* for_use: config_load(), for a run: files checked, *eval options
 * evaluated. */
static int load_buffer(const char *name, const char *buf, size_t len,
                       const struct config_override *ov, size_t n_ov, bool for_use,
                       struct config **cfg_r)
{
    *cfg_r = NULL;
    config_diag_reset();
    struct ctx c = {.check_files = for_use};
    int rc = config_ini_parse(name, buf, len, &c.ini);
    if (rc < 0) {
        config_ini_free(&c.ini);
        return rc;
    }
    c.cfg = calloc(1, sizeof(*c.cfg));
    if (!c.cfg || !(c.cfg->path = strdup(name))) {
        free(c.cfg);
        config_ini_free(&c.ini);
        return -ENOMEM;
    }
    c.cfg->ini = c.ini;
    if (apply_overrides(&c, ov, n_ov) < 0)
        c.oom = true;
    if (!c.oom) {
        build(&c);
        load_customflags(&c);
    }
    if (for_use && !c.oom && !c.n_err)
        eval_exprs(&c);
    free(c.repo_typed);
    if (c.oom || c.n_err) {
        config_free(&c.cfg);
        return c.oom ? -ENOMEM : OIMAP_ECONFIG;
    }
    *cfg_r = c.cfg;
    return 0;
}

int config_load_buffer(const char *name, const char *buf, size_t len,
                       const struct config_override *ov, size_t n_ov, struct config **cfg_r)
{
    return load_buffer(name, buf, len, ov, n_ov, false, cfg_r);
}

int config_load(const char *path, const struct config_override *ov, size_t n_ov,
                struct config **cfg_r)
{
    *cfg_r = NULL;
    config_diag_reset();
    FILE *f = fopen(path, "rb");
    if (!f) {
        config_diag(CONFIG_DIAG_ERROR, "%s: cannot read: %s", path, strerror(errno));
        return OIMAP_ECONFIG;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int err = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? cap * 2 : 16384;
            char *nb = realloc(buf, cap);
            if (!nb) {
                err = -ENOMEM;
                break;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f))
                err = errno ? -errno : -EIO;
            break;
        }
        if (len > (64u << 20)) {
            err = -EFBIG; /* no configuration file is 64 MB */
            break;
        }
    }
    fclose(f);
    if (err < 0) {
        free(buf);
        config_diag(CONFIG_DIAG_ERROR, "%s: cannot read: %s", path, strerror(-err));
        return OIMAP_ECONFIG;
    }
    int rc = load_buffer(path, buf ? buf : "", len, ov, n_ov, true, cfg_r);
    free(buf);
    return rc;
}

char *config_default_path(void)
{
    const char *home = getenv("HOME");
    if (!home || !*home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw && pw->pw_dir ? pw->pw_dir : "";
    }
    const char *xdg = getenv("XDG_CONFIG_HOME");
    char base[4096], cand[3][4200];
    if (xdg && xdg[0] == '/')
        snprintf(base, sizeof(base), "%s", xdg);
    else
        snprintf(base, sizeof(base), "%s/.config", home);
    snprintf(cand[0], sizeof(cand[0]), "%s/oimap/config", base);
    snprintf(cand[1], sizeof(cand[1]), "%s/offlineimap/config", base);
    snprintf(cand[2], sizeof(cand[2]), "%s/.offlineimaprc", home);
    for (int i = 0; i < 3; i++)
        if (access(cand[i], F_OK) == 0)
            return strdup(cand[i]);
    return strdup(cand[2]);
}

struct config_account *config_find_account(const struct config *cfg, const char *name)
{
    for (size_t i = 0; cfg && i < cfg->n_accounts; i++)
        if (strcmp(cfg->accounts[i].name, name) == 0)
            return &cfg->accounts[i];
    return NULL;
}

int config_repo_port(const struct config_repo *r)
{
    if (r->remoteport > 0)
        return r->remoteport;
    return r->ssl ? 993 : 143;
}

/* ------------------------------------------------------------------------ */
/* --info */

static const char *yes_no(bool b)
{
    return b ? "yes" : "no";
}

static const char *str_or(const char *s, const char *dflt)
{
    return s && *s ? s : dflt;
}

static void print_list(FILE *out, const char *label, const struct config_list *l)
{
    fprintf(out, "%s", label);
    for (size_t i = 0; i < l->n; i++)
        fprintf(out, "%s%s", i ? ", " : "", l->v[i]);
    fprintf(out, "%s\n", l->n ? "" : "(none)");
}

static void print_expr(FILE *out, const char *label, const struct config_expr *e)
{
    if (!e->text)
        return;
    /* Multi-line expressions are shown on one line. */
    fprintf(out, "%s", label);
    for (const char *p = e->text; *p; p++)
        fputc(*p == '\n' ? ' ' : *p, out);
    fputc('\n', out);
}

static void print_repo(FILE *out, const char *role, const struct config_repo *r)
{
    if (!r) {
        fprintf(out, "  %s repository: (missing)\n", role);
        return;
    }
    fprintf(out, "  %s repository: %s (%s)\n", role, r->name, config_repo_type_name(r->type));
    if ((1u << r->type) & R_MAILDIR) {
        fprintf(out, "    localfolders: %s\n", str_or(r->localfolders, "(unset)"));
        fprintf(out, "    sep: %s\n", str_or(r->sep, "."));
    } else {
        bool tunnel = (r->preauthtunnel && r->type != CONFIG_REPO_GMAIL) || r->transporttunnel;
        const char *tls = tunnel        ? "none (the tunnel command is the transport)"
                          : r->ssl      ? "implicit TLS"
                          : r->starttls ? "STARTTLS"
                                        : "none (plain text)";
        if (!tunnel) {
            fprintf(out, "    host: %s\n", r->remotehost ? r->remotehost : "(from remotehosteval)");
            fprintf(out, "    port: %d\n", config_repo_port(r));
        }
        if (r->preauthtunnel && r->type != CONFIG_REPO_GMAIL)
            fprintf(out, "    preauthtunnel: %s\n", r->preauthtunnel);
        else if (r->transporttunnel)
            fprintf(out, "    transporttunnel: %s\n", r->transporttunnel);
        fprintf(out, "    TLS: %s\n", tls);
        if ((r->ssl || r->starttls) && !tunnel) {
            fprintf(out, "    CA certificates: %s%s\n", str_or(r->sslcacertfile, "(none found)"),
                    r->sslcacertfile_os_default ? " (system)" : "");
            fprintf(out, "    tls_level: %s, ssl_version: %s\n", tls_level_names[r->tls_level],
                    r->ssl_version ? ssl_version_names[r->ssl_version] : "(auto)");
            if (r->cert_fingerprint.n)
                print_list(out, "    cert_fingerprint: ", &r->cert_fingerprint);
        }
        fprintf(out, "    user: %s\n",
                r->remoteuser            ? r->remoteuser
                : r->remoteusereval.text ? "(from remoteusereval)"
                                         : "(unset)");
        const char *pw = r->remotepasscmd         ? "(from remotepasscmd)"
                         : r->remotepasseval.text ? "(from remotepasseval)"
                         : r->remotepass          ? "********"
                         : r->remotepassfile      ? "(from remotepassfile)"
                                                  : "(unset: ~/.netrc or prompt)";
        fprintf(out, "    password: %s\n", pw);
        if (r->remotepassfile)
            fprintf(out, "    remotepassfile: %s\n", r->remotepassfile);
        if (r->oauth2_access_token || r->oauth2_access_token_cmd || r->oauth2_refresh_token ||
            r->oauth2_client_secret)
            fprintf(out, "    oauth2: %s%s\n",
                    r->oauth2_access_token       ? "********"
                    : r->oauth2_access_token_cmd ? "access token from oauth2_access_token_cmd"
                    : r->oauth2_refresh_token    ? "access token from "
                                                 : "********",
                    !r->oauth2_access_token && !r->oauth2_access_token_cmd &&
                            r->oauth2_refresh_token
                        ? str_or(r->oauth2_request_url, "(oauth2_request_url unset)")
                        : "");
        print_list(out, "    auth_mechanisms: ", &r->auth_mechanisms);
        fprintf(out, "    maxconnections: %d, expunge: %s, holdconnectionopen: %s, keepalive: %d\n",
                r->maxconnections, yes_no(r->expunge), yes_no(r->holdconnectionopen), r->keepalive);
        if (r->reference && *r->reference)
            fprintf(out, "    reference: %s\n", r->reference);
        if (r->type == CONFIG_REPO_GMAIL)
            fprintf(out, "    trashfolder: %s, spamfolder: %s\n", str_or(r->trashfolder, "(unset)"),
                    str_or(r->spamfolder, "(unset)"));
        print_expr(out, "    idlefolders: ", &r->idlefolders);
    }
    fprintf(out, "    readonly: %s, createfolders: %s, sync_deletes: %s\n", yes_no(r->readonly),
            yes_no(r->createfolders), yes_no(r->sync_deletes));
    print_expr(out, "    folderfilter: ", &r->folderfilter);
    print_expr(out, "    nametrans: ", &r->nametrans);
    print_expr(out, "    folderincludes: ", &r->folderincludes);
    print_expr(out, "    foldersort: ", &r->foldersort);
}

void config_print_info(const struct config *cfg, FILE *out)
{
    const struct config_general *g = &cfg->general;
    fprintf(out, "Configuration file: %s\n", cfg->path);
    fprintf(out, "general:\n");
    print_list(out, "  accounts: ", &g->accounts);
    fprintf(out, "  metadata: %s\n", str_or(g->metadata, "(unset)"));
    fprintf(out, "  maxsyncaccounts: %d, ui: %s, socktimeout: %d, fsync: %s, dry-run: %s\n",
            g->maxsyncaccounts, str_or(g->ui, "ttyui"), g->socktimeout, yes_no(g->fsync),
            yes_no(g->dry_run));
    for (size_t i = 0; i < cfg->n_accounts; i++) {
        const struct config_account *a = &cfg->accounts[i];
        fprintf(out, "Account %s:\n", a->name);
        fprintf(out, "  autorefresh: %g min, quick: %d\n", a->autorefresh, a->quick);
        if (a->presynchook)
            fprintf(out, "  presynchook: %s\n", a->presynchook);
        if (a->postsynchook)
            fprintf(out, "  postsynchook: %s\n", a->postsynchook);
        if (a->maxsize >= 0)
            fprintf(out, "  maxsize: %lld bytes\n", (long long)a->maxsize);
        if (a->maxage)
            fprintf(out, "  maxage: %s\n", a->maxage);
        if (a->synclabels) {
            fprintf(out, "  synclabels: yes, labelsheader: %s\n",
                    str_or(a->labelsheader, "X-Keywords"));
            print_list(out, "  ignorelabels: ", &a->ignorelabels);
        }
        print_repo(out, "local", a->local);
        print_repo(out, "remote", a->remote);
    }
}
