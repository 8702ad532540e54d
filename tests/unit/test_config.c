/* test_config.c - the offlineimaprc reader: syntax, typing, defaults, errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build_config.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "tests/unit/tap.h"

#define F "t.conf"

static const char base_conf[] = "[general]\n"                     /* 1 */
                                "accounts = A\n"                  /* 2 */
                                "\n"                              /* 3 */
                                "[Account A]\n"                   /* 4 */
                                "localrepository = L\n"           /* 5 */
                                "remoterepository = R\n"          /* 6 */
                                "\n"                              /* 7 */
                                "[Repository L]\n"                /* 8 */
                                "type = Maildir\n"                /* 9 */
                                "localfolders = /tmp/mail\n"      /* 10 */
                                "\n"                              /* 11 */
                                "[Repository R]\n"                /* 12 */
                                "type = IMAP\n"                   /* 13 */
                                "remotehost = imap.example.org\n" /* 14 */
                                "remoteuser = me\n";              /* 15 */

static int load_ov(const char *text, const struct config_override *ov, size_t n,
                   struct config **cfg_r)
{
    return config_load_buffer(F, text, strlen(text), ov, n, cfg_r);
}

static int load(const char *text, struct config **cfg_r)
{
    return load_ov(text, NULL, 0, cfg_r);
}

/* base_conf with extra text appended to the [Repository R] section. */
static int load_remote(const char *extra, struct config **cfg_r)
{
    char buf[8192];
    snprintf(buf, sizeof(buf), "%s%s", base_conf, extra);
    return load(buf, cfg_r);
}

static int has(const char *needle)
{
    int r = strstr(config_diagnostics(), needle) != NULL;
    if (!r)
        printf("# diagnostics were:\n# %s\n# wanted: %s\n", config_diagnostics(), needle);
    return r;
}

static int has_quiet(const char *needle)
{
    return strstr(config_diagnostics(), needle) != NULL;
}

/* Loads text, expects failure with exactly the error line want. */
static void expect_error(const char *text, const char *want, const char *name)
{
    struct config *cfg = NULL;
    int rc = load(text, &cfg);
    char line[600];
    snprintf(line, sizeof(line), "error: %s\n", want);
    ok(rc == OIMAP_ECONFIG && cfg == NULL && has(line), "error: %s", name);
    config_free(&cfg);
}

static void test_defaults(void)
{
    struct config *cfg = NULL;
    is_int(load(base_conf, &cfg), 0, "minimal config loads");
    if (!cfg)
        return;
    is_str(config_diagnostics(), "", "minimal config: no diagnostics");
    const struct config_general *g = &cfg->general;
    is_int(g->accounts.n, 1, "one account");
    is_str(g->metadata, "/home/tester/.offlineimap", "metadata default, ~ expanded");
    is_int(g->maxsyncaccounts, 1, "maxsyncaccounts default 1");
    is_str(g->ui, "ttyui", "ui default ttyui");
    ok(g->fsync && !g->dry_run && !g->ignore_readonly, "fsync yes, dry-run no, ignore-readonly no");
    is_int(g->socktimeout, 0, "socktimeout default 0");
    ok(g->pythonfile == NULL, "pythonfile unset");
    ok(!cfg->mbnames.enabled && !cfg->mbnames.incremental, "mbnames disabled by default");
    is_str(cfg->mbnames.filename, "/home/tester/Mutt/muttrc.mailboxes", "mbnames filename");
    is_str(cfg->mbnames.peritem, "+%(accountname)s/%(foldername)s", "mbnames peritem raw");
    is_str(cfg->mbnames.sort_keyfunc.text, "lambda d: (d['accountname'], d['foldername'])",
           "mbnames sort_keyfunc default");

    is_int(cfg->n_accounts, 1, "n_accounts");
    is_int(cfg->n_repos, 2, "n_repos");
    struct config_account *a = config_find_account(cfg, "A");
    ok(a != NULL && config_find_account(cfg, "B") == NULL, "config_find_account");
    if (!a)
        goto out;
    is_int(a->line, 4, "account header line");
    ok(a->autorefresh == 0.0 && a->quick == 0, "autorefresh 0, quick 0");
    ok(a->maxsize == -1 && a->maxage == NULL, "maxsize, maxage unset");
    ok(a->presynchook == NULL && a->postsynchook == NULL, "hooks unset");
    ok(!a->maildir_windows_compatible && !a->utf8foldernames && !a->synclabels, "account bools");
    is_str(a->labelsheader, "X-Keywords", "labelsheader default");

    struct config_repo *l = a->local, *r = a->remote;
    ok(l && r && l->type == CONFIG_REPO_MAILDIR && r->type == CONFIG_REPO_IMAP, "repo types");
    if (!l || !r)
        goto out;
    is_str(l->localfolders, "/tmp/mail", "localfolders");
    is_str(l->sep, ".", "sep default");
    ok(l->createfolders && l->sync_deletes && !l->readonly, "createfolders/sync_deletes/readonly");
    ok(l->nametrans.text == NULL && l->folderfilter.text == NULL, "no expressions by default");

    is_str(r->remotehost, "imap.example.org", "remotehost");
    is_str(r->remoteuser, "me", "remoteuser");
    is_int(r->remoteport, 0, "remoteport default 0");
    is_int(config_repo_port(r), 993, "port 993 with ssl");
    ok(r->ssl && r->starttls, "ssl and starttls default yes");
    is_int(r->tls_level, CONFIG_TLS_COMPAT, "tls_level tls_compat");
    is_int(r->ssl_version, CONFIG_SSLV_UNSET, "ssl_version unset");
    ok(r->sslcacertfile_os_default, "sslcacertfile OS-DEFAULT");
    if (access("/etc/ssl/certs/ca-certificates.crt", F_OK) == 0)
        is_str(r->sslcacertfile, "/etc/ssl/certs/ca-certificates.crt", "system CA bundle");
    is_int(r->maxconnections, 1, "maxconnections 1");
    ok(r->expunge && !r->holdconnectionopen && r->keepalive == 0, "expunge, holdconnectionopen");
    is_int(r->retrycount, 2, "retrycount 2");
    is_int(r->ipv6, -1, "ipv6 unset");
    is_str(r->reference, "", "reference empty");
    is_int(r->auth_mechanisms.n, 5, "five default mechanisms");
    if (r->auth_mechanisms.n == 5)
        ok(!strcmp(r->auth_mechanisms.v[0], "GSSAPI") && !strcmp(r->auth_mechanisms.v[4], "LOGIN"),
           "mechanism order");
    ok(r->trashfolder == NULL, "no trashfolder for IMAP");
    int line;
    is_str(config_raw(cfg, "Repository R", "RemoteHost", &line), "imap.example.org", "config_raw");
    is_int(line, 14, "config_raw line");
    ok(config_raw(cfg, "Repository R", "nonexistent", NULL) == NULL, "config_raw unset");
out:
    config_free(&cfg);
    ok(cfg == NULL, "config_free nulls");
}

static void test_syntax(void)
{
    struct config *cfg = NULL;
    /* ':' separators, mixed-case names, indented option lines, comments. */
    const char *t = "# leading comment\n"
                    "; another\n"
                    "[general]\n"
                    "  Accounts: A\n"
                    "  FSync = No\n"
                    "[Account A]\n"
                    "LocalRepository: L\n"
                    "remoterepository=R\n"
                    "[Repository L]\n"
                    "TYPE: maildir\n"
                    "localfolders : /m\n"
                    "[Repository R]\n"
                    "type = imap\n"
                    "remotehost = h # not a comment ; nor this\n"
                    "    # an indented comment inside no value\n"
                    "remoteuser =\n"
                    "SSL: off\n";
    is_int(load(t, &cfg), 0, "':' separators and mixed case load");
    if (cfg) {
        ok(!cfg->general.fsync, "FSync = No");
        is_str(cfg->accounts[0].localrepository, "L", "LocalRepository: L");
        is_int(cfg->accounts[0].local->type, CONFIG_REPO_MAILDIR, "type maildir (any case)");
        is_str(cfg->accounts[0].remote->remotehost, "h # not a comment ; nor this",
               "# and ; kept inside values");
        is_str(cfg->accounts[0].remote->remoteuser, "", "empty value allowed");
        ok(!cfg->accounts[0].remote->ssl, "SSL: off");
        is_int(config_repo_port(cfg->accounts[0].remote), 143, "port 143 without ssl");
    }
    config_free(&cfg);

    /* Continuation lines, with blank and comment lines inside the value. */
    char buf[4096];
    snprintf(buf, sizeof(buf),
             "%s"
             "folderfilter = lambda f: f in [\n"
             "        'INBOX',\n"
             "\n"
             "    # skipped comment\n"
             "        'Sent']\n"
             "\n"
             "nametrans =\n"
             "  lambda f: f\n",
             base_conf);
    is_int(load(buf, &cfg), 0, "continuation lines load");
    if (cfg) {
        struct config_repo *r = cfg->accounts[0].remote;
        is_str(r->folderfilter.text, "lambda f: f in [\n'INBOX',\n\n'Sent']",
               "continuation joined with \\n, blank line kept, comment dropped");
        is_int(r->folderfilter.line, 16, "expression line number");
        is_str(r->nametrans.text, "\nlambda f: f", "value starting on the next line");
    }
    config_free(&cfg);

    /* CRLF and a byte order mark. */
    const char *crlf = "\xef\xbb\xbf[general]\r\naccounts = A\r\n[Account A]\r\n"
                       "localrepository = L\r\nremoterepository = R\r\n[Repository L]\r\n"
                       "type = Maildir\r\nlocalfolders = /m\r\n[Repository R]\r\ntype = Gmail\r\n"
                       "remoteuser = u@gmail.com\r\n";
    is_int(load(crlf, &cfg), 0, "CRLF and BOM");
    if (cfg)
        is_str(cfg->accounts[0].remote->remoteuser, "u@gmail.com", "CRLF value has no \\r");
    config_free(&cfg);

    /* Section names longer than inih's 50-byte limit. */
    const char *longsect =
        "[general]\naccounts = a-very-long-account-name-for-testing-inih-limits\n"
        "[Account a-very-long-account-name-for-testing-inih-limits]\n"
        "localrepository = local-repository-with-a-very-long-name-xxxxxxxx\n"
        "remoterepository = R\n"
        "[Repository local-repository-with-a-very-long-name-xxxxxxxx]\n"
        "type = Maildir\nlocalfolders = /m\n"
        "[Repository R]\ntype = IMAP\nremotehost = h\n";
    is_int(load(longsect, &cfg), 0, "long section names");
    if (cfg)
        is_str(cfg->accounts[0].local->localfolders, "/m", "long section options read");
    config_free(&cfg);
}

static void test_long_values(void)
{
    struct config *cfg = NULL;
    /* A 2,000+ character folderfilter on one line. */
    char ff[2600] = "lambda f: f not in [";
    for (int i = 0; strlen(ff) < 2000; i++) {
        char item[32];
        snprintf(item, sizeof(item), "'Folder %04d ; x', ", i);
        strcat(ff, item);
    }
    strcat(ff, "'Trash']");
    char buf[8192];
    snprintf(buf, sizeof(buf), "%sfolderfilter = %s\nremotepass = a ;b#c%%%%d  ;e \n", base_conf,
             ff);
    is_int(load(buf, &cfg), 0, "2,000-character line loads");
    if (cfg) {
        struct config_repo *r = cfg->accounts[0].remote;
        ok(strlen(ff) > 2000, "line is longer than 2,000 characters");
        is_str(r->folderfilter.text, ff, "2,000-character folderfilter intact");
        is_str(r->remotepass, "a ;b#c%d  ;e", "remotepass with ' ;', '#' and %% intact");
        is_str(config_raw(cfg, "Repository R", "remotepass", NULL), "a ;b#c%d  ;e",
               "config_raw interpolates %%");
    }
    config_free(&cfg);
}

static void test_interpolation(void)
{
    struct config *cfg = NULL;
    const char *t = "[DEFAULT]\n"
                    "maildir = /srv/mail\n"
                    "ssl = no\n"
                    "user = alice\n"
                    "[general]\n"
                    "accounts = A\n"
                    "metadata = %(maildir)s/.meta\n"
                    "[Account A]\n"
                    "localrepository = L\n"
                    "remoterepository = R\n"
                    "[Repository L]\n"
                    "type = Maildir\n"
                    "name = work\n"
                    "localfolders = %(deep)s\n"
                    "deep = %(maildir)s/%(name)s\n"
                    "[Repository R]\n"
                    "type = IMAP\n"
                    "remotehost = imap.example.org\n"
                    "remoteuser = %(USER)s@example.org\n"
                    "user = bob\n"
                    "remotepass = 100%%\n";
    is_int(load(t, &cfg), 0, "interpolation config loads");
    if (cfg) {
        struct config_repo *l = cfg->accounts[0].local, *r = cfg->accounts[0].remote;
        is_str(cfg->general.metadata, "/srv/mail/.meta", "DEFAULT value interpolated in general");
        is_str(l->localfolders, "/srv/mail/work", "recursive interpolation, same section first");
        is_str(r->remoteuser, "bob@example.org", "section value wins over DEFAULT");
        ok(!r->ssl, "DEFAULT ssl = no visible in repository");
        is_str(r->remotepass, "100%", "%%%% -> %%");
        is_str(config_raw(cfg, "Account A", "maildir", NULL), "/srv/mail", "raw DEFAULT fallback");
        ok(has("warning: " F ":13: [Repository L] name: unknown option, ignored"),
           "custom variable in a repository warned as unknown");
    }
    config_free(&cfg);
}

static void test_booleans(void)
{
    static const char *const yes[] = {"yes", "YES", "true", "True", "on", "On", "1"};
    static const char *const no[] = {"no", "No", "false", "FALSE", "off", "OFF", "0"};
    for (size_t i = 0; i < 7; i++) {
        for (int want = 0; want < 2; want++) {
            struct config *cfg = NULL;
            struct config_override ov = {"Repository R", "ssl", want ? yes[i] : no[i]};
            int rc = load_ov(base_conf, &ov, 1, &cfg);
            ok(rc == 0 && cfg && cfg->accounts[0].remote->ssl == (bool)want, "boolean '%s'",
               ov.value);
            config_free(&cfg);
        }
    }
}

static void test_overrides(void)
{
    struct config *cfg = NULL;
    struct config_override ov[] = {
        {"general", "Accounts", "A"},           {"Account A", "autorefresh", "2.5"},
        {"Repository R", "remoteport", "1143"}, {"Repository R", "ssl", "no"},
        {"general", "dry-run", "yes"},
    };
    is_int(load_ov(base_conf, ov, 5, &cfg), 0, "-k overrides load");
    if (cfg) {
        ok(cfg->accounts[0].autorefresh == 2.5, "-k Account A:autorefresh=2.5");
        is_int(config_repo_port(cfg->accounts[0].remote), 1143, "-k remoteport");
        ok(cfg->general.dry_run, "-k dry-run inserted");
        int line = -1;
        is_str(config_raw(cfg, "general", "dry-run", &line), "yes", "override raw value");
        is_int(line, 0, "override has line 0");
    }
    config_free(&cfg);

    struct config_override bad[] = {
        {"Account A", "autorefresh", "soon"},
        {"Nope", "x", "1"},
    };
    is_int(load_ov(base_conf, bad, 2, &cfg), OIMAP_ECONFIG, "bad -k fails");
    ok(has("error: -k Account A:autorefresh: not a non-negative number: 'soon'\n"),
       "-k bad value message");
    ok(has("error: -k Nope:x: no [Nope] section in " F "\n"), "-k unknown section message");
    config_free(&cfg);

    /* -a is passed as an override of [general] accounts. */
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s[Account B]\nlocalrepository = L\nremoterepository = R\n",
             base_conf);
    struct config_override sel = {"general", "accounts", "B"};
    is_int(load_ov(buf, &sel, 1, &cfg), 0, "account selection by override");
    if (cfg) {
        ok(cfg->n_accounts == 1 && !strcmp(cfg->accounts[0].name, "B"), "only B selected");
        ok(config_find_account(cfg, "A") == NULL, "A not selected");
    }
    config_free(&cfg);
}

static void test_errors(void)
{
    char buf[4096];
    expect_error("[general]\naccounts = A\nthis line is wrong\n",
                 F ":3: expected 'option = value', 'option: value' or '[section]'", "syntax");
    expect_error("accounts = A\n[general]\n", F ":1: text before the first [section] header",
                 "option before any section");
    expect_error("[general]\n= x\n", F ":2: option name missing before '=' or ':'",
                 "empty option name");
    expect_error("[general]\naccounts = A\n[general]\n",
                 F ":3: [general]: duplicate section (first at line 1)", "duplicate section");
    expect_error("[general]\naccounts = A\nAccounts = B\n",
                 F ":3: [general] accounts: duplicate option (first at line 2)",
                 "duplicate option");
    struct config *nul = NULL;
    ok(config_load_buffer(F, "[general]\naccounts = A\nx\0y = 1\n", 25, NULL, 0, &nul) ==
               OIMAP_ECONFIG &&
           has("error: " F ":3: NUL byte in line\n"),
       "error: NUL byte");

    snprintf(buf, sizeof(buf), "%s", base_conf);
    strstr(buf, "accounts = A")[0] = '#';
    expect_error(buf, F ":1: [general] accounts: required option missing", "accounts missing");
    expect_error("[Account A]\nlocalrepository = L\n", F ":1: missing [general] section",
                 "missing [general]");
    expect_error("[General]\naccounts = A\n", F ":1: missing [general] section",
                 "section names are case-sensitive");

    snprintf(buf, sizeof(buf), "%s", base_conf);
    memcpy(strstr(buf, "accounts = A"), "accounts = B", 12);
    expect_error(buf, F ":2: [general] accounts: no [Account B] section", "undefined account");

    snprintf(buf, sizeof(buf), "%s", base_conf);
    memcpy(strstr(buf, "localrepository = L"), "localrepository = X", 19);
    expect_error(buf, F ":5: [Account A] localrepository: no [Repository X] section",
                 "undefined repository");

    snprintf(buf, sizeof(buf), "%s", base_conf);
    strstr(buf, "remoterepository = R")[0] = ';';
    expect_error(buf, F ":4: [Account A] remoterepository: required option missing",
                 "remoterepository missing");

    snprintf(buf, sizeof(buf), "%s", base_conf);
    strstr(buf, "localfolders")[0] = '#';
    expect_error(buf, F ":8: [Repository L] localfolders: required option missing",
                 "localfolders missing");

    snprintf(buf, sizeof(buf), "%s", base_conf);
    strstr(buf, "remotehost")[0] = '#';
    expect_error(buf, F ":12: [Repository R] remotehost: required option missing",
                 "remotehost missing");

    snprintf(buf, sizeof(buf), "%s", base_conf);
    strstr(buf, "type = Maildir")[0] = '#';
    expect_error(buf, F ":8: [Repository L] type: required option missing", "type missing");

    snprintf(buf, sizeof(buf), "%s", base_conf);
    memcpy(strstr(buf, "type = Maildir"), "type = Mbox   ", 14);
    expect_error(buf,
                 F ":9: [Repository L] type: unknown repository type 'Mbox' (Maildir, "
                   "GmailMaildir, IMAP or Gmail)",
                 "bad repository type");

    snprintf(buf, sizeof(buf), "%s", base_conf);
    memcpy(strstr(buf, "type = IMAP"), "type = Maildir\nlocalfolders = /x", 32);
    strcat(buf, "\n");
    expect_error(buf,
                 F ":6: [Account A] remoterepository: repository 'R' is of type Maildir; a "
                   "remote repository must be IMAP or Gmail",
                 "remote Maildir refused");

    snprintf(buf, sizeof(buf), "%s", base_conf);
    memcpy(strstr(buf, "accounts = A\n"), "fsync = maybe", 13);
    strcat(buf, "[DEFAULT]\naccounts = A\n");
    expect_error(buf,
                 F ":2: [general] fsync: not a boolean: 'maybe' (yes/no, true/false, on/off, 1/0)",
                 "bad boolean");

    expect_error("[general]\naccounts = A\nmaxsyncaccounts = two\n[Account A]\n",
                 F ":3: [general] maxsyncaccounts: not an integer: 'two'", "bad integer");

    snprintf(buf, sizeof(buf), "%sremoteport = 70000\n", base_conf);
    expect_error(buf, F ":16: [Repository R] remoteport: 70000 out of range (1 to 65535)",
                 "port out of range");

    snprintf(buf, sizeof(buf), "%s[Account A]\n", "[general]\naccounts = A\n");
    strcat(buf, "autorefresh = 5 minutes\n");
    expect_error(buf, F ":4: [Account A] autorefresh: not a non-negative number: '5 minutes'",
                 "bad float");

    snprintf(buf, sizeof(buf), "%sremoteuser2 = %%(nothing)s\nremotepassfile = %%(nothing)s\n",
             base_conf);
    expect_error(buf,
                 F ":17: [Repository R] remotepassfile: %(nothing)s refers to no option "
                   "'nothing' in [Repository R] or [DEFAULT]",
                 "interpolation of an undefined name");

    snprintf(buf, sizeof(buf), "%sremotepass = 100%%\n", base_conf);
    expect_error(buf,
                 F ":16: [Repository R] remotepass: bad '%' in the value (write %% for a literal "
                   "%; value not shown)",
                 "lone % in a password: value not shown");
    snprintf(buf, sizeof(buf), "%sremotepassfile = 100%%x\n", base_conf);
    expect_error(buf,
                 F ":16: [Repository R] remotepassfile: '%' must be followed by '%' or '(' "
                   "(write %% for a literal %)",
                 "lone %");
    snprintf(buf, sizeof(buf), "%sremotepassfile = %%(x\n", base_conf);
    expect_error(buf,
                 F ":16: [Repository R] remotepassfile: bad %(name)s reference (write %% for "
                   "a literal %)",
                 "bad %(name)s reference");

    snprintf(buf, sizeof(buf), "[DEFAULT]\nx = %%(y)s\ny = %%(x)s\n%sremotepassfile = %%(x)s\n",
             base_conf);
    expect_error(buf,
                 F ":19: [Repository R] remotepassfile: %(...)s references nested deeper than "
                   "10 levels (a loop?)",
                 "interpolation loop");

    struct config *tl = NULL;
    ok(load_remote("tls_level = tls_secure\nssl_version = tls1_2\n", &tl) == 0 && tl,
       "tls_level with ssl_version accepted");
    config_free(&tl);
    snprintf(buf, sizeof(buf), "%stls_level = tls_secure\n", base_conf);
    expect_error(buf,
                 F ":16: [Repository R] tls_level: a tls_level other than tls_compat needs "
                   "ssl_version set too (as in offlineimap)",
                 "tls_level without ssl_version");

    snprintf(buf, sizeof(buf), "%scert_fingerprint = 12:34\n", base_conf);
    expect_error(buf,
                 F ":16: [Repository R] cert_fingerprint: '1234' is not a hexadecimal "
                   "SHA-1/224/256/384/512 fingerprint",
                 "bad fingerprint");

    snprintf(buf, sizeof(buf), "%sauth_mechanisms = PLAIN, NTLM\n", base_conf);
    expect_error(buf,
                 F ":16: [Repository R] auth_mechanisms: unknown authentication mechanism 'NTLM' "
                   "(known: GSSAPI, XOAUTH2, CRAM-MD5, PLAIN, LOGIN, OAUTHBEARER)",
                 "unknown mechanism");

    /* Several errors are all reported. */
    struct config *cfg = NULL;
    snprintf(buf, sizeof(buf), "%sssl = perhaps\nmaxconnections = 0\n", base_conf);
    is_int(load(buf, &cfg), OIMAP_ECONFIG, "two errors fail");
    ok(has(F ":16: [Repository R] ssl: not a boolean") &&
           has(F ":17: [Repository R] maxconnections: 0 out of range (1 to 1000)"),
       "both errors reported");

    is_int(config_load("/nonexistent/oimap.conf", NULL, 0, &cfg), OIMAP_ECONFIG,
           "missing file fails");
    ok(has("error: /nonexistent/oimap.conf: cannot read: No such file or directory"),
       "missing file message");
}

static void test_values(void)
{
    struct config *cfg = NULL;
    char buf[4096];
    snprintf(buf, sizeof(buf),
             "%sremoteport = 1_143\n"
             "cert_fingerprint = AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd, "
             "%064d\n"
             "auth_mechanisms = plain, xoauth2\n"
             "sslcacertfile = ~/ca.pem\n"
             "remotepassfile = $OIMAP_TEST_DIR/${OIMAP_TEST_DIR}x/$NOT_SET_VAR_XYZ/p\n"
             "ssl_version = TLS1_2\n"
             "tls_level = tls_secure\n"
             "idlefolders = ['INBOX', 'Lists']\n"
             "[Account A]\n",
             base_conf, 0);
    /* The [Account A] above is a duplicate section: drop it and set account options by -k. */
    *strrchr(buf, '[') = '\0';
    struct config_override ov[] = {
        {"Account A", "maxage", "2015-04-01"},
        {"Account A", "maxsize", "2000000"},
        {"Account A", "quick", "-1"},
        {"Account A", "presynchook", "imapfilter"},
        {"Account A", "filterheaders", "X-Spam, ,X-Junk"},
    };
    is_int(load_ov(buf, ov, 5, &cfg), 0, "typed values load");
    if (cfg) {
        struct config_account *a = &cfg->accounts[0];
        struct config_repo *r = a->remote;
        is_int(r->remoteport, 1143, "int with underscore");
        is_int(r->cert_fingerprint.n, 2, "two fingerprints");
        if (r->cert_fingerprint.n == 2)
            is_str(r->cert_fingerprint.v[0], "aabbccddeeff00112233445566778899aabbccdd",
                   "fingerprint lower-case without ':'");
        ok(r->auth_mechanisms.n == 2 && !strcmp(r->auth_mechanisms.v[0], "PLAIN") &&
               !strcmp(r->auth_mechanisms.v[1], "XOAUTH2"),
           "mechanisms canonical");
        is_str(r->sslcacertfile, "/home/tester/ca.pem", "sslcacertfile ~ expanded");
        ok(!r->sslcacertfile_os_default, "sslcacertfile not default");
        is_str(r->remotepassfile, "/d/ir//d/irx/$NOT_SET_VAR_XYZ/p", "$VAR and ${VAR} expanded");
        is_int(r->ssl_version, CONFIG_SSLV_TLS1_2, "ssl_version");
        is_int(r->tls_level, CONFIG_TLS_SECURE, "tls_level");
        is_str(r->idlefolders.text, "['INBOX', 'Lists']", "idlefolders expression");
        is_str(a->maxage, "2015-04-01", "maxage date");
        ok(a->maxsize == 2000000 && a->quick == -1, "maxsize, quick");
        is_str(a->presynchook, "imapfilter", "presynchook");
        ok(a->filterheaders.n == 2 && !strcmp(a->filterheaders.v[1], "X-Junk"),
           "list drops empty items");
    }
    config_free(&cfg);

    struct config_override badage = {"Account A", "maxage", "2015-02-30"};
    is_int(load_ov(base_conf, &badage, 1, &cfg), OIMAP_ECONFIG, "bad maxage date");
    struct config_override zeroage = {"Account A", "maxage", "0"};
    is_int(load_ov(base_conf, &zeroage, 1, &cfg), OIMAP_ECONFIG, "maxage 0 refused");
    struct config_override days = {"Account A", "maxage", "30"};
    is_int(load_ov(base_conf, &days, 1, &cfg), 0, "maxage in days");
    config_free(&cfg);
}

/* proxy / authproxy: parsed at load, handed to both repositories; authproxy
 * unset is proxy, empty is none. */
static void test_proxy(void)
{
    struct config *cfg = NULL;
    char buf[4096];
    char *acct;
#define WITH_ACCOUNT_LINES(lines)                                                                  \
    do {                                                                                           \
        snprintf(buf, sizeof(buf), "%s", base_conf);                                               \
        acct = strstr(buf, "remoterepository = R\n") + strlen("remoterepository = R\n");           \
        memmove(acct + strlen(lines), acct, strlen(acct) + 1);                                     \
        memcpy(acct, lines, strlen(lines));                                                        \
    } while (0)

    WITH_ACCOUNT_LINES("proxy = socks5:127.0.0.1:1080\n");
    is_int(load(buf, &cfg), 0, "proxy loads");
    const struct config_account *a = cfg ? &cfg->accounts[0] : NULL;
    ok(a && a->remote->proxy.type == PROXY_SOCKS5 && a->remote->proxy.port == 1080 &&
           strcmp(a->remote->proxy.host, "127.0.0.1") == 0,
       "the remote repository gets the account's proxy");
    ok(a && a->remote->authproxy.type == PROXY_SOCKS5, "authproxy unset: the same as proxy");
    ok(!has_quiet("proxy"), "no warning for proxy");
    config_free(&cfg);

    WITH_ACCOUNT_LINES("proxy = SOCKS5:127.0.0.1:1080\nauthproxy =\n");
    is_int(load(buf, &cfg), 0, "empty authproxy loads");
    a = cfg ? &cfg->accounts[0] : NULL;
    ok(a && a->remote->proxy.type == PROXY_SOCKS5 && a->remote->authproxy.type == PROXY_NONE,
       "authproxy empty: token requests go direct");
    config_free(&cfg);

    WITH_ACCOUNT_LINES("authproxy = HTTP:[::1]:3128\n");
    is_int(load(buf, &cfg), 0, "authproxy alone loads");
    a = cfg ? &cfg->accounts[0] : NULL;
    ok(a && a->remote->proxy.type == PROXY_NONE && a->remote->authproxy.type == PROXY_HTTP &&
           strcmp(a->remote->authproxy.host, "::1") == 0 && a->remote->authproxy.port == 3128,
       "authproxy alone: only the token request");
    config_free(&cfg);

    WITH_ACCOUNT_LINES("proxy = SOCKS6:127.0.0.1:1080\n");
    expect_error(buf,
                 F ":7: [Account A] proxy: unknown proxy type 'SOCKS6': SOCKS5, SOCKS4 or HTTP",
                 "unknown proxy type, with file and line");
    WITH_ACCOUNT_LINES("proxy = SOCKS5:127.0.0.1:99999\n");
    expect_error(buf,
                 F ":7: [Account A] proxy: 'SOCKS5:127.0.0.1:99999': the proxy port must be a "
                   "number from 1 to 65535",
                 "proxy port out of range");
    WITH_ACCOUNT_LINES("proxy = SOCKS5:127.0.0.1:1080\nauthproxy = SOCKS5:127.0.0.1\n");
    expect_error(buf,
                 F ":8: [Account A] authproxy: 'SOCKS5:127.0.0.1' is not TYPE:host:port (e.g. "
                   "SOCKS5:127.0.0.1:9050)",
                 "authproxy without a port");
#undef WITH_ACCOUNT_LINES
}

static void test_support_levels(void)
{
    struct config *cfg = NULL;
    char buf[4096];
    snprintf(buf, sizeof(buf),
             "[DEFAULT]\nmyvar = 1\nignore-keyring = yes\n"
             "%s"
             "remotehots = typo\n"
             "localfolders = /x\n"
             "usecompression = yes\n"
             "singlethreadperfolder = no\n"
             "realdelete = no\n"
             "[ui.Curses.Blinkenlights]\nstatuschar = .\n"
             "[Account A]\n",
             base_conf);
    *strrchr(buf, '[') = '\0';
    strcat(buf, "[Repository X]\ntype = IMAP\n"); /* not used: never checked */
    /* status_backend and pythonfile in their sections, via -k to keep lines fixed. */
    struct config_override ov[] = {{"Account A", "status_backend", "sqlite"},
                                   {"general", "pythonfile", "~/.offlineimap.py"},
                                   {"general", "update-keyring", "yes"}};
    is_int(load_ov(buf, ov, 3, &cfg), 0, "retired and unimplemented options accepted");
    ok(has("warning: " F ":19: [Repository R] remotehots: unknown option, ignored\n"),
       "typo warned");
    ok(has("warning: " F ":20: [Repository R] localfolders: not used by IMAP repositories, "
           "ignored\n"),
       "Maildir option in IMAP repository warned");
    ok(has("warning: -k general:update-keyring: not implemented yet, ignored\n"),
       "unimplemented option warned");
#if OIMAP_HAVE_ZLIB
    ok(!has_quiet("usecompression"), "usecompression (line 21) implemented: no warning");
#else
    ok(has("warning: " F ":21: [Repository R] usecompression: oimap was built without zlib: "
           "usecompression ignored\n"),
       "usecompression without zlib warned");
#endif
    ok(has("note: " F ":22: [Repository R] singlethreadperfolder: has no effect in oimap, "
           "ignored\n"),
       "no-op option noted");
    ok(has("note: " F ":23: [Repository R] realdelete: retired by offlineimap, accepted and "
           "ignored\n"),
       "realdelete noted");
    ok(has("note: -k Account A:status_backend: retired by offlineimap, accepted and ignored\n"),
       "status_backend = sqlite accepted with a note");
    ok(!has_quiet("pythonfile"), "pythonfile accepted without a warning");
    ok(has("note: " F ":24: [ui.Curses.Blinkenlights]: offlineimap no longer reads [ui.*] "
           "sections, ignored\n"),
       "[ui.*] noted");
    ok(has("warning: " F ":3: [DEFAULT] ignore-keyring: not implemented yet, ignored\n"),
       "DEFAULT option warned where it applies");
    ok(!has_quiet("myvar") && !has_quiet("Repository X"), "DEFAULT variables and unused "
                                                          "sections are not warned about");
    config_free(&cfg);

    /* status_backend written in the file, the way old configs have it. */
    snprintf(buf, sizeof(buf), "%s", base_conf);
    char *p = strstr(buf, "remoterepository = R\n") + strlen("remoterepository = R\n");
    memmove(p + 24, p, strlen(p) + 1);
    memcpy(p, "status_backend = sqlite\n", 24);
    is_int(load(buf, &cfg), 0, "status_backend = sqlite in the file is accepted");
    ok(has("note: " F ":7: [Account A] status_backend: retired by offlineimap"), "with a note");
    config_free(&cfg);

    /* Unimplemented options set to what oimap does anyway, and a disabled
     * [mbnames], are not warned about. */
    snprintf(buf, sizeof(buf),
             "%susecompression = no\nretrycount = 2\n"
             "[mbnames]\nenabled = no\nfilename = ~/x\nheader = 'x'\n",
             base_conf);
    is_int(load(buf, &cfg), 0, "defaults and disabled mbnames load");
    is_str(config_diagnostics(), "", "no warnings for default values or disabled mbnames");
    config_free(&cfg);
}

/* A Gmail offlineimaprc in the shape real users write. */
static const char gmail_conf[] =
    "[general]\n"
    "accounts = Gmail\n"
    "maxsyncaccounts = 1\n"
    "pythonfile = ~/.offlineimap.py\n"
    "ui = basic\n"
    "\n"
    "[Account Gmail]\n"
    "localrepository = Gmail-Local\n"
    "remoterepository = Gmail-Remote\n"
    "autorefresh = 0.5\n"
    "quick = 10\n"
    "postsynchook = notmuch new\n"
    "status_backend = sqlite\n"
    "synclabels = no\n"
    "\n"
    "[Repository Gmail-Local]\n"
    "type = Maildir\n"
    "localfolders = ~/Mail/gmail\n"
    "nametrans = lambda folder: {'drafts':  '[Gmail]/Drafts',\n"
    "                            'sent':    '[Gmail]/Sent Mail',\n"
    "                            'flagged': '[Gmail]/Starred',\n"
    "                            'trash':   '[Gmail]/Trash',\n"
    "                            'archive': '[Gmail]/All Mail',\n"
    "                            }.get(folder, folder)\n"
    "\n"
    "[Repository Gmail-Remote]\n"
    "type = Gmail\n"
    "maxconnections = 2\n"
    "remoteuser = someone@gmail.com\n"
    "remotepasscmd = pass show mail/gmail | head -n1\n"
    "realdelete = no\n"
    "sslcacertfile = /etc/ssl/certs/ca-certificates.crt\n"
    "nametrans = lambda folder: {'[Gmail]/Drafts':    'drafts',\n"
    "                            '[Gmail]/Sent Mail': 'sent',\n"
    "                            '[Gmail]/Starred':   'flagged',\n"
    "                            '[Gmail]/Trash':     'trash',\n"
    "                            '[Gmail]/All Mail':  'archive',\n"
    "                            }.get(folder, folder)\n"
    "folderfilter = lambda folder: folder not in ['[Gmail]/Trash',\n"
    "                                             'Nagios',\n"
    "                                             '[Gmail]/Important',\n"
    "                                             '[Gmail]/Spam',\n"
    "                                             ]\n"
    "oauth2_access_token_cmd = oauth2-token gmail\n"
    "\n"
    "[mbnames]\n"
    "enabled = yes\n"
    "filename = ~/.mutt/mailboxes\n"
    "header = \"mailboxes \"\n"
    "peritem = \"+%(accountname)s/%(foldername)s\"\n"
    "sep = \" \"\n"
    "footer = \"\\n\"\n";

static void test_gmail(void)
{
    struct config *cfg = NULL;
    is_int(load(gmail_conf, &cfg), 0, "Gmail config loads");
    if (!cfg)
        return;
    struct config_account *a = &cfg->accounts[0];
    struct config_repo *r = a->remote, *l = a->local;
    is_int(r->type, CONFIG_REPO_GMAIL, "type Gmail");
    is_str(r->remotehost, "imap.gmail.com", "Gmail default host");
    is_int(config_repo_port(r), 993, "Gmail port 993");
    ok(r->ssl, "Gmail ssl");
    is_str(r->trashfolder, "[Gmail]/Trash", "Gmail trashfolder");
    is_str(r->spamfolder, "[Gmail]/Spam", "Gmail spamfolder");
    is_str(r->oauth2_request_url, "https://accounts.google.com/o/oauth2/token", "Gmail oauth URL");
    is_str(r->remotepasscmd, "pass show mail/gmail | head -n1", "remotepasscmd");
    is_str(r->oauth2_access_token_cmd, "oauth2-token gmail", "oauth2_access_token_cmd");
    ok(l->nametrans.text && !strncmp(l->nametrans.text, "lambda folder: {'drafts':", 25) &&
           strstr(l->nametrans.text, "\n'sent':    '[Gmail]/Sent Mail',\n") &&
           strstr(l->nametrans.text, "\n}.get(folder, folder)"),
       "local nametrans dictionary joined");
    is_int(l->nametrans.line, 19, "nametrans line");
    ok(r->folderfilter.text && strstr(r->folderfilter.text, "'Nagios',\n'[Gmail]/Important'"),
       "folderfilter list joined");
    is_str(l->localfolders, "/home/tester/Mail/gmail", "localfolders ~");
    ok(a->autorefresh == 0.5 && a->quick == 10, "autorefresh 0.5, quick 10");
    is_str(a->postsynchook, "notmuch new", "postsynchook");
    is_str(cfg->general.ui, "basic", "ui basic");
    ok(cfg->mbnames.enabled, "mbnames enabled");
    is_str(cfg->mbnames.peritem, "\"+%(accountname)s/%(foldername)s\"", "peritem not interpolated");
    is_str(cfg->mbnames.footer.text, "\"\\n\"", "footer expression");
    ok(!has_quiet("pythonfile") && has("note: " F ":13: [Account Gmail] status_backend: retired") &&
           !has_quiet("[mbnames]"),
       "Gmail config notes; [mbnames] is implemented");
    ok(!has_quiet("synclabels"), "synclabels = no (the default) not warned about");

    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    config_print_info(cfg, f);
    fclose(f);
    ok(out && strstr(out, "Account Gmail") && strstr(out, "host: imap.gmail.com") &&
           strstr(out, "port: 993") && strstr(out, "implicit TLS") &&
           strstr(out, "user: someone@gmail.com"),
       "--info shows the account");
    ok(out && !strstr(out, "pass show"), "--info does not show the password command");
    free(out);
    config_free(&cfg);

    /* A password is masked. */
    char buf[4096];
    snprintf(buf, sizeof(buf), "%sremotepass = s3cret-Passw0rd\noauth2_refresh_token = tok-123\n",
             base_conf);
    is_int(load(buf, &cfg), 0, "config with password loads");
    out = NULL;
    f = open_memstream(&out, &outlen);
    if (cfg)
        config_print_info(cfg, f);
    fclose(f);
    ok(out && strstr(out, "password: ********") && !strstr(out, "s3cret") &&
           !strstr(out, "tok-123"),
       "--info masks secrets");
    free(out);
    config_free(&cfg);
}

static void test_multi_account(void)
{
    const char *t = "[DEFAULT]\n"
                    "mailroot = ~/Mail\n"
                    "[general]\n"
                    "accounts = Work, Home,Old\n"
                    "maxsyncaccounts = 3\n"
                    "[Account Work]\n"
                    "localrepository = WorkLocal\n"
                    "remoterepository = WorkRemote\n"
                    "autorefresh = 5\n"
                    "[Account Home]\n"
                    "localrepository = HomeLocal\n"
                    "remoterepository = HomeRemote\n"
                    "[Account Old]\n"
                    "localrepository = HomeLocal\n"
                    "remoterepository = HomeRemote\n"
                    "[Account Unused]\n"
                    "localrepository = Nowhere\n"
                    "[Repository WorkLocal]\n"
                    "type = Maildir\n"
                    "localfolders = %(mailroot)s/work\n"
                    "customflag_a = $Forwarded\n"
                    "[Repository WorkRemote]\n"
                    "type = IMAP\n"
                    "remotehost = mail.work.example\n"
                    "ssl = no\n"
                    "starttls = yes\n"
                    "[Repository HomeLocal]\n"
                    "type = GmailMaildir\n"
                    "localfolders = %(mailroot)s/home\n"
                    "[Repository HomeRemote]\n"
                    "type = IMAP\n"
                    "remotehosteval = get_host('home')\n";
    struct config *cfg = NULL;
    is_int(load(t, &cfg), 0, "multi-account config loads");
    if (!cfg)
        return;
    is_int(cfg->n_accounts, 3, "three accounts selected");
    is_int(cfg->n_repos, 4, "shared repositories counted once");
    struct config_account *w = config_find_account(cfg, "Work"),
                          *h = config_find_account(cfg, "Home"),
                          *o = config_find_account(cfg, "Old");
    ok(w && h && o && h->local == o->local, "accounts share a repository struct");
    if (w && h) {
        is_str(w->local->localfolders, "/home/tester/Mail/work", "DEFAULT ~ path interpolated");
        is_str(w->local->customflag[0], "$Forwarded", "customflag_a");
        is_int(config_repo_port(w->remote), 143, "STARTTLS port 143");
        is_int(h->local->type, CONFIG_REPO_GMAILMAILDIR, "GmailMaildir");
        ok(h->remote->remotehost == NULL && h->remote->remotehosteval.text,
           "remotehosteval instead of remotehost");
        ok(w->autorefresh == 5.0 && h->autorefresh == 0.0, "per-account autorefresh");
    }
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    config_print_info(cfg, f);
    fclose(f);
    ok(out && strstr(out, "Account Work:") && strstr(out, "Account Old:") &&
           strstr(out, "TLS: STARTTLS") && !strstr(out, "Unused"),
       "--info lists the selected accounts");
    free(out);
    config_free(&cfg);
}

static void test_files(void)
{
    char dir[] = "/tmp/oimap-test-config-XXXXXX";
    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp");
        return;
    }
    char home[256], xdg[256], p[512];
    snprintf(home, sizeof(home), "%s/home", dir);
    snprintf(xdg, sizeof(xdg), "%s/xdg", dir);
    mkdir(home, 0700);
    mkdir(xdg, 0700);
    setenv("HOME", home, 1);
    setenv("XDG_CONFIG_HOME", xdg, 1);

    char *d = config_default_path();
    snprintf(p, sizeof(p), "%s/.offlineimaprc", home);
    is_str(d, p, "default path: ~/.offlineimaprc when nothing exists");
    free(d);

    snprintf(p, sizeof(p), "%s/offlineimap", xdg);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/offlineimap/config", xdg);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(base_conf, f);
        fclose(f);
    }
    d = config_default_path();
    is_str(d, p, "default path: $XDG_CONFIG_HOME/offlineimap/config");
    free(d);

    struct config *cfg = NULL;
    is_int(config_load(p, NULL, 0, &cfg), 0, "config_load from a file");
    if (cfg)
        is_str(cfg->path, p, "cfg->path");
    config_free(&cfg);

    char p2[512];
    snprintf(p2, sizeof(p2), "%s/oimap", xdg);
    mkdir(p2, 0700);
    snprintf(p2, sizeof(p2), "%s/oimap/config", xdg);
    f = fopen(p2, "w");
    if (f)
        fclose(f);
    d = config_default_path();
    is_str(d, p2, "default path: $XDG_CONFIG_HOME/oimap/config first");
    free(d);

    unsetenv("XDG_CONFIG_HOME");
    d = config_default_path();
    snprintf(p2, sizeof(p2), "%s/.offlineimaprc", home);
    is_str(d, p2, "XDG default is ~/.config");
    free(d);

    unlink(p);
    snprintf(p, sizeof(p), "%s/oimap/config", xdg);
    unlink(p);
    snprintf(p, sizeof(p), "%s/oimap", xdg);
    rmdir(p);
    snprintf(p, sizeof(p), "%s/offlineimap", xdg);
    rmdir(p);
    rmdir(xdg);
    rmdir(home);
    rmdir(dir);
    setenv("HOME", "/home/tester", 1);
}

/* startdate: at most one of maxage and the two startdates, never in the
 * future; the options implemented with it load without a warning. */
static void test_sync_options(void)
{
    struct config *cfg = NULL;
    is_int(load_remote("startdate = 2024-01-31\nsubscribedonly = yes\nretrycount = 5\n"
                       "copy_ignore_eval = lambda f: None\n",
                       &cfg),
           0, "startdate, subscribedonly, retrycount, copy_ignore_eval load");
    is_str(config_diagnostics(), "", "... without a warning");
    if (cfg) {
        is_str(cfg->accounts[0].remote->startdate, "2024-01-31", "startdate kept");
        is_int(cfg->accounts[0].remote->retrycount, 5, "retrycount 5");
    }
    config_free(&cfg);

    char buf[4096];
    snprintf(buf, sizeof buf, "%s", base_conf);
    char *p = strstr(buf, "localfolders = /tmp/mail\n") + strlen("localfolders = /tmp/mail\n");
    const char *add = "customflag_j = $Junk\nrestoreatime = yes\ndynamic_folderfilter = yes\n";
    memmove(p + strlen(add), p, strlen(p) + 1);
    memcpy(p, add, strlen(add));
    is_int(load(buf, &cfg), 0, "customflag_j, restoreatime, dynamic_folderfilter load");
    is_str(config_diagnostics(), "", "... without a warning");
    if (cfg)
        is_str(cfg->accounts[0].local->customflag['j' - 'a'], "$Junk", "customflag_j");
    config_free(&cfg);

    snprintf(buf, sizeof buf, "%s", base_conf);
    p = strstr(buf, "remoterepository = R\n") + strlen("remoterepository = R\n");
    memmove(p + 12, p, strlen(p) + 1);
    memcpy(p, "maxage = 30\n", 12);
    strcat(buf, "startdate = 2024-01-31\n");
    expect_error(buf,
                 F ":7: [Account A] maxage: set at most one of maxage, the local repository's "
                   "startdate and the remote repository's startdate (as offlineimap)",
                 "maxage and startdate");
    expect_error(strcat(strcpy(buf, base_conf), "startdate = 2999-01-01\n"),
                 F ":16: [Repository R] startdate: 2999-01-01 is in the future",
                 "startdate in the future");
}

int main(void)
{
    setenv("HOME", "/home/tester", 1);
    setenv("OIMAP_TEST_DIR", "/d/ir", 1);
    unsetenv("NOT_SET_VAR_XYZ");
    log_init(LOG_UI_QUIET, NULL, 0);
    test_defaults();
    test_syntax();
    test_long_values();
    test_interpolation();
    test_booleans();
    test_overrides();
    test_errors();
    test_values();
    test_support_levels();
    test_proxy();
    test_gmail();
    test_multi_account();
    test_files();
    test_sync_options();
    return tap_done();
}
