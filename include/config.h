/* config.h - the configuration file (offlineimaprc compatible).
 *
 * oimap reads offlineimap's configuration format unchanged.  The file is
 * split into sections and options by inih, with the semantics of the Python
 * ConfigParser that offlineimap uses (see config_ini.c): '=' or ':', option
 * names case-insensitive (kept lower-case), section names case-sensitive,
 * indented continuation lines joined with "\n", '#' and ';' comments only at
 * the start of a line (a value may contain " ;" and "#"), a [DEFAULT] section
 * visible from every section, %(name)s interpolation (same section, then
 * [DEFAULT], recursive up to depth 10), "%%" for '%', and duplicate sections
 * or options rejected.  Lines have no length limit.
 *
 * The result is a typed struct config holding every option offlineimap
 * documents, with offlineimap's defaults.  It describes what will be synced:
 * the accounts listed in [general] accounts (pass -a as the override
 * {"general", "accounts", LIST}) and the repositories they use.  Anything
 * else in the file stays reachable through config_raw().
 *
 * Diagnostics go through log_error/log_warn/log_info, one line each:
 *     FILE:LINE: [section] option: what is wrong
 *     FILE:LINE: what is wrong                     (syntax errors)
 *     -k SECTION:OPTION: what is wrong             (command-line overrides)
 * Options oimap does not implement yet are warned about once ("not
 * implemented yet, ignored") unless set to their default, options
 * offlineimap itself retired get one note, unknown options (typos) a
 * warning.  The support level of each option is a field of the option table
 * at the top of src/config.c: flip it to SUP_YES when a feature lands.  The text of the last load's
 * diagnostics is also kept for tests: config_diagnostics().
 *
 * Python-expression options (folderfilter, nametrans, *eval, ...) are kept
 * as text with their line number (struct config_expr) for the evaluator.
 * Secrets (remotepass, oauth2 tokens and secrets) are registered with
 * log_add_secret() and never printed by config_print_info().
 */
#ifndef OIMAP_CONFIG_H
#define OIMAP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proxy.h"

/* A comma-separated list, items stripped, empty items dropped. */
struct config_list {
    char **v;
    size_t n;
};

/* A Python expression kept as text for a later evaluator.  text is NULL when
 * the option is not set; line is its line in the file (0: a built-in default
 * or a -k override). */
struct config_expr {
    char *text;
    int line;
};

enum config_repo_type {
    CONFIG_REPO_MAILDIR,
    CONFIG_REPO_GMAILMAILDIR,
    CONFIG_REPO_IMAP,
    CONFIG_REPO_GMAIL,
};

/* tls_level, as offlineimap defines it. */
enum config_tls_level {
    CONFIG_TLS_COMPAT, /* tls_compat (default): whatever both sides can */
    CONFIG_TLS_NO_SSL, /* tls_no_ssl: TLS 1.0 or newer */
    CONFIG_TLS_SECURE, /* tls_secure: TLS 1.2 or newer */
};

/* ssl_version, as offlineimap defines it (tls1_3 is an oimap extension). */
enum config_ssl_version {
    CONFIG_SSLV_UNSET,
    CONFIG_SSLV_SSL2,
    CONFIG_SSLV_SSL3,
    CONFIG_SSLV_SSL23,
    CONFIG_SSLV_TLS1,
    CONFIG_SSLV_TLS1_1,
    CONFIG_SSLV_TLS1_2,
    CONFIG_SSLV_TLS1_3,
};

struct config_general {
    struct config_list accounts;      /* required */
    char *metadata;                   /* ~/.offlineimap, ~ and $VAR expanded */
    int maxsyncaccounts;              /* 1 */
    char *ui;                         /* "ttyui"; may be a comma list */
    bool ignore_readonly;             /* no */
    char *pythonfile;                 /* NULL; expanded */
    int socktimeout;                  /* 0 = none (seconds) */
    bool fsync;                       /* yes */
    bool dry_run;                     /* no */
    bool ignore_keyring;              /* no */
    bool update_keyring;              /* no */
    bool filename_use_mail_timestamp; /* no */
    bool utime_from_header;           /* no */
};

struct config_mbnames {
    bool enabled;              /* no */
    char *filename;            /* ~/Mutt/muttrc.mailboxes, expanded */
    struct config_expr header; /* "mailboxes " */
    char *peritem;             /* +%(accountname)s/%(foldername)s (raw) */
    struct config_expr sep;    /* " " */
    struct config_expr footer; /* "\n" */
    bool incremental;          /* no */
    struct config_expr folderfilter;
    struct config_expr sort_keyfunc; /* offlineimap's default lambda */
};

struct config_repo {
    char *name;    /* NAME of [Repository NAME] */
    char *section; /* "Repository NAME" as written */
    int line;      /* line of the section header */
    enum config_repo_type type;

    /* every type */
    struct config_expr nametrans, folderfilter, folderincludes, foldersort;
    bool dynamic_folderfilter;        /* no */
    bool createfolders;               /* yes */
    bool sync_deletes;                /* yes */
    bool readonly;                    /* no */
    char *startdate;                  /* NULL or YYYY-MM-DD */
    bool filename_use_mail_timestamp; /* [general]'s */

    /* Maildir, GmailMaildir */
    char *localfolders;     /* required; expanded */
    char *sep;              /* "." */
    bool restoreatime;      /* no */
    bool utime_from_header; /* [general]'s */
    char *customflag[26];   /* customflag_a .. customflag_z, NULL if unset */

    /* IMAP, Gmail */
    /* The [Account]'s proxy and authproxy, parsed (type PROXY_NONE: none),
     * set on the repositories the account uses. */
    struct proxy_spec proxy, authproxy;
    char *remotehost; /* required for IMAP unless remotehosteval or a tunnel;
                       * Gmail: imap.gmail.com */
    struct config_expr remotehosteval;
    int remoteport; /* 0: 993 with ssl, else 143 (config_repo_port()) */
    struct config_expr remoteporteval;
    char *remoteuser;
    struct config_expr remoteusereval;
    char *remotepass; /* secret */
    struct config_expr remotepasseval;
    char *remotepassfile; /* expanded */
    char *remotepasscmd;  /* oimap: shell command, first output line is the password */
    char *remote_identity;
    struct config_list auth_mechanisms;  /* GSSAPI, XOAUTH2, CRAM-MD5, PLAIN, LOGIN
                                          * (upper-case; OAUTHBEARER also accepted) */
    bool ssl;                            /* yes */
    bool starttls;                       /* yes */
    char *sslcacertfile;                 /* the system bundle unless set; NULL if none found */
    bool sslcacertfile_os_default;       /* true when sslcacertfile is the system bundle */
    char *sslclientcert, *sslclientkey;  /* expanded */
    struct config_list cert_fingerprint; /* lower-case hex, ':' removed */
    enum config_ssl_version ssl_version; /* UNSET */
    enum config_tls_level tls_level;     /* tls_compat */
    int ipv6;                            /* -1 unset, 0 no, 1 yes */
    char *oauth2_client_id, *oauth2_client_secret, *oauth2_refresh_token;
    char *oauth2_access_token;     /* secret */
    char *oauth2_access_token_cmd; /* oimap: shell command printing the token */
    char *oauth2_request_url;      /* Gmail: Google's token URL */
    struct config_expr oauth2_client_id_eval, oauth2_client_secret_eval;
    struct config_expr oauth2_refresh_token_eval, oauth2_access_token_eval;
    char *preauthtunnel, *transporttunnel;
    char *reference;        /* "" (offlineimap writes '""'): LIST reference */
    bool decodefoldernames; /* no, retired */
    struct config_expr idlefolders;
    bool usecompression;        /* no */
    int maxconnections;         /* 1 */
    bool singlethreadperfolder; /* no (no effect in oimap) */
    bool holdconnectionopen;    /* no */
    int keepalive;              /* 0 (seconds) */
    bool expunge;               /* yes */
    bool subscribedonly;        /* no */
    struct config_expr newmail_hook;
    int retrycount; /* 2 */
    struct config_expr copy_ignore_eval;
    int socktimeout;   /* [general]'s */
    char *trashfolder; /* Gmail: [Gmail]/Trash */
    char *spamfolder;  /* Gmail: [Gmail]/Spam */
};

struct config_account {
    char *name;    /* NAME of [Account NAME] */
    char *section; /* "Account NAME" as written */
    int line;
    struct config_repo *local, *remote; /* point into config->repos */

    char *localrepository, *remoterepository; /* required */
    double autorefresh;                       /* 0: minutes between syncs */
    int quick;                                /* 0 */
    char *presynchook;                        /* NULL when unset or empty */
    char *postsynchook;                       /* NULL when unset or empty */
    int64_t maxsize;                          /* -1: unset */
    char *maxage;                             /* NULL, or days (>= 1) or YYYY-MM-DD, validated */
    bool maildir_windows_compatible;          /* no */
    bool synclabels;                          /* no */
    char *labelsheader;                       /* X-Keywords */
    struct config_list ignorelabels;
    struct config_list filterheaders;
    char *proxy, *authproxy; /* TYPE:host:port; authproxy NULL = proxy, "" = none */
    bool utf8foldernames;    /* no */
    bool deletion_guard;     /* oimap: yes; no lets mass deletions through */
};

struct config_ini; /* the untyped document, see config_ini.c */

struct config {
    char *path; /* the file name as given */
    struct config_general general;
    struct config_mbnames mbnames;
    struct config_account *accounts; /* the selected accounts, in listed order */
    size_t n_accounts;
    struct config_repo *repos; /* repositories the accounts use */
    size_t n_repos;
    struct config_ini *ini;
};

/* A -k [SECTION:]OPTION=VALUE override.  section has underscores already
 * turned into spaces by the CLI ("general" when not given).  The strings are
 * only read during config_load*(). */
struct config_override {
    const char *section, *option, *value;
};

/* Read, type and validate path.  Overrides replace (or add) options before
 * typing; an override naming a section that does not exist is an error (as
 * with offlineimap).  Returns 0 and a new config in *cfg_r (free it with
 * config_free()), or OIMAP_ECONFIG after logging every error found (a file
 * that cannot be read is "FILE: cannot read: REASON"), or -ENOMEM.  Unlike
 * config_load_buffer(), it also checks that each IMAP repository's
 * remotepassfile (and sslcacertfile when TLS is on) is a readable file, so a
 * typo is a FILE:LINE error before anything is touched.  It also enables
 * the python3 helper for the run (pyhelper.h, with [general] pythonfile,
 * which must be readable) and evaluates remotehosteval, remoteporteval,
 * remoteusereval, remotepasseval and oauth2_{access_token,refresh_token,
 * client_id,client_secret}_eval into remotehost, remoteport, remoteuser,
 * remotepass and the oauth2_* fields (the oauth2 ones only when their plain
 * option is unset; secrets registered with log_add_secret()); a failing one
 * is a FILE:LINE error too. */
int config_load(const char *path, const struct config_override *ov, size_t n_ov,
                struct config **cfg_r);

/* Same from memory; name is used in messages.  buf need not be
 * NUL-terminated; a NUL byte in it is a syntax error. */
int config_load_buffer(const char *name, const char *buf, size_t len,
                       const struct config_override *ov, size_t n_ov, struct config **cfg_r);

void config_free(struct config **cfg);

/* The configuration file to use without -c: the first that exists of
 * $XDG_CONFIG_HOME/oimap/config, $XDG_CONFIG_HOME/offlineimap/config (XDG
 * default ~/.config) and ~/.offlineimaprc; ~/.offlineimaprc if none exists.
 * Returns a malloc'd string, or NULL when out of memory. */
char *config_default_path(void);

/* The selected account called name, or NULL. */
struct config_account *config_find_account(const struct config *cfg, const char *name);

/* The port to connect to: remoteport, else 993 with ssl, else 143. */
int config_repo_port(const struct config_repo *repo);

const char *config_repo_type_name(enum config_repo_type type);

/* Print the general settings, and each selected account with its two
 * repositories, as understood.  Secrets are printed as ********. */
void config_print_info(const struct config *cfg, FILE *out);

/* The value of any option of any section, as ConfigParser's get() returns
 * it: interpolated, falling back to [DEFAULT].  NULL when not set (or when
 * interpolation fails, which is logged).  *line_r (may be NULL) gets its
 * line, 0 for a -k override.  The string lives as long as cfg. */
const char *config_raw(const struct config *cfg, const char *section, const char *option,
                       int *line_r);

/* All diagnostics of the last config_load*() call, one per line, each
 * prefixed with "error: ", "warning: " or "note: ".  Static storage, valid
 * until the next load; never NULL. */
const char *config_diagnostics(void);

/* ---- Internal to config.c / config_ini.c (not for other modules). ---- */

/* One option: name lower-case; value raw (before interpolation), with the
 * continuation lines joined; line 0 and override set for -k values. */
struct config_ini_opt {
    char *name;
    char *value;
    int line;
    bool override;
    bool seen; /* a [DEFAULT] option already warned about */
};

struct config_ini_sect {
    char *name;
    int line;
    struct config_ini_opt *opts;
    size_t n_opts, cap_opts;
};

struct config_ini {
    char *file;
    struct config_ini_sect **sects; /* in file order */
    size_t n_sects, cap_sects;
    struct config_ini_sect *defaults; /* [DEFAULT], may be NULL */
    struct config_ini_cache *cache;   /* config_raw() results */
};

enum config_diag_level { CONFIG_DIAG_ERROR, CONFIG_DIAG_WARN, CONFIG_DIAG_NOTE };

/* Log one diagnostic line and append it to config_diagnostics(). */
void config_diag(enum config_diag_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void config_diag_reset(void);

/* Parse buf.  Returns 0 and *ini_r, OIMAP_ECONFIG (errors logged; *ini_r
 * still set when the document could be built, NULL otherwise), -ENOMEM. */
int config_ini_parse(const char *name, const char *buf, size_t len, struct config_ini **ini_r);
void config_ini_free(struct config_ini **ini);
struct config_ini_sect *config_ini_section(const struct config_ini *ini, const char *name);
struct config_ini_opt *config_ini_find(const struct config_ini_sect *s, const char *name);
/* Set (replace or add) an option; for -k.  Returns 0 or -ENOMEM. */
int config_ini_set(struct config_ini_sect *s, const char *name, const char *value);
/* Interpolate opt's value as read from section s (opt may come from
 * [DEFAULT]).  Returns 0 with a malloc'd *val_r, -ENOMEM, or OIMAP_ECONFIG
 * with the reason written to why (why_len bytes). */
int config_ini_interpolate(const struct config_ini *ini, const struct config_ini_sect *s,
                           const struct config_ini_opt *opt, char **val_r, char *why,
                           size_t why_len);
/* The option name of s visible as name: its own, else [DEFAULT]'s. */
const struct config_ini_opt *config_ini_lookup(const struct config_ini *ini,
                                               const struct config_ini_sect *s, const char *name);

#endif
