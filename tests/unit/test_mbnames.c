/* test_mbnames.c - [mbnames]: JSON as json.dump writes it, peritem, sorting,
 * the files (atomic rewrite, merge, prune), newmail_hook forms. */
#include "aftersync.h"
#include "config.h"
#include "err.h"
#include "mbnames.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/oimap-test-mbnames-XXXXXX";

static struct config *load_f(const char *fname, const char *extra)
{
    char buf[4096];
    snprintf(buf, sizeof buf,
             "[general]\naccounts = A, B\nmetadata = %s/meta\n"
             "[Account A]\nlocalrepository = L\nremoterepository = R\n"
             "[Account B]\nlocalrepository = L\nremoterepository = R\n"
             "[Repository L]\ntype = Maildir\nlocalfolders = %s/mail\n"
             "[Repository R]\ntype = IMAP\nremotehost = h\nremoteuser = u\nremotepass = p\n"
             "sslcacertfile = /dev/null\n"
             "[mbnames]\nenabled = yes\nfilename = %s/%s\n%s",
             tmpdir, tmpdir, tmpdir, fname, extra);
    struct config *cfg = NULL;
    if (config_load_buffer("rc", buf, strlen(buf), NULL, 0, &cfg) < 0)
        return NULL;
    return cfg;
}

static struct config *load(const char *extra)
{
    return load_f("mailboxes", extra);
}

static struct mbnames *mbn(struct config *cfg, char *err, size_t errlen)
{
    struct mbnames *mb = NULL;
    err[0] = '\0';
    if (!cfg || mbnames_new(cfg, err, errlen, &mb) < 0)
        return NULL;
    return mb;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void test_json(void)
{
    struct mbnames_list l = {0};
    char *out = NULL, err[256];
    size_t len;
    mbnames_json_encode(&l, &out, &len);
    is_str(out, "[]", "empty list");
    free(out);
    mbnames_list_add(&l, "A", "INBOX", "/m");
    mbnames_list_add(&l, "A",
                     "Entw\xc3\xbc"
                     "rfe \"q\"\\\n\x01\x7f\xf0\x9f\x93\xa7",
                     "/m");
    mbnames_json_encode(&l, &out, &len);
    is_str(out,
           "[{\"accountname\": \"A\", \"foldername\": \"INBOX\", \"localfolders\": \"/m\"}, "
           "{\"accountname\": \"A\", \"foldername\": \"Entw\\u00fcrfe \\\"q\\\"\\\\\\n\\u0001"
           "\\u007f\\ud83d\\udce7\", \"localfolders\": \"/m\"}]",
           "json.dump's bytes (ensure_ascii, surrogate pairs)");
    struct mbnames_list back = {0};
    is_int(mbnames_json_decode(out, len, &back, err, sizeof err), 0, "decodes");
    is_int(back.n, 2, "two items");
    is_str(mbnames_item_get(&back.v[1], "foldername"), mbnames_item_get(&l.v[1], "foldername"),
           "round trip");
    free(out);
    mbnames_list_clear(&back);

    const char *raw = "\xff";
    mbnames_list_clear(&l);
    mbnames_list_add(&l, "A", raw, "/m");
    mbnames_json_encode(&l, &out, &len);
    ok(strstr(out, "\\udcff") != NULL, "a non-UTF-8 byte as a lone surrogate");
    is_int(mbnames_json_decode(out, len, &back, err, sizeof err), 0, "decodes");
    is_str(mbnames_item_get(&back.v[0], "foldername"), raw, "and back to the byte");
    free(out);
    mbnames_list_clear(&back);
    mbnames_list_clear(&l);

    const char *bad[] = {"",
                         "{}",
                         "[",
                         "[{\"a\": 1}]",
                         "[{\"a\" \"b\"}]",
                         "[] x",
                         "[{\"a\": \"\\ud800\"}]",
                         "[{\"a\": \"b\"},]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        is_int(mbnames_json_decode(bad[i], strlen(bad[i]), &back, err, sizeof err), OIMAP_ECONFIG,
               "refused: %s (%s)", bad[i], err);
        mbnames_list_clear(&back);
    }
    const char *spaced = " [ { \"x\" : \"1\" , \"x\":\"2\" } ,{}] \n";
    is_int(mbnames_json_decode(spaced, strlen(spaced), &back, err, sizeof err), 0, "whitespace");
    is_str(mbnames_item_get(&back.v[0], "x"), "2", "last duplicate key wins");
    mbnames_list_clear(&back);
}

static void test_format(void)
{
    struct mbnames_list l = {0};
    char *out = NULL, err[256];
    mbnames_list_add(&l, "Work", "Lists.dev", "/home/u/Mail");
    is_int(mbnames_format_item("+%(accountname)s/%(foldername)s", &l.v[0], &out, err, sizeof err),
           0, "default peritem");
    is_str(out, "+Work/Lists.dev", "formatted");
    free(out);
    mbnames_format_item("\"%(localfolders)s/%(foldername)s\" 100%%", &l.v[0], &out, err,
                        sizeof err);
    is_str(out, "\"/home/u/Mail/Lists.dev\" 100%", "quotes, localfolders and %%");
    free(out);
    mbnames_format_item("[%(accountname)-6s|%(accountname)6s|%(foldername).5s|%(accountname)r]",
                        &l.v[0], &out, err, sizeof err);
    is_str(out, "[Work  |  Work|Lists|'Work']", "width, precision, repr");
    free(out);
    is_int(mbnames_format_item("%(nope)s", &l.v[0], &out, err, sizeof err), OIMAP_ECONFIG,
           "unknown key");
    ok(strstr(err, "KeyError: 'nope'") != NULL, "KeyError named: %s", err);
    is_int(mbnames_format_item("%s", &l.v[0], &out, err, sizeof err), OIMAP_ECONFIG,
           "%%s without a key");
    is_int(mbnames_format_item("%(foldername)d", &l.v[0], &out, err, sizeof err), OIMAP_ECONFIG,
           "%%d refused");
    is_int(mbnames_format_item("x%", &l.v[0], &out, err, sizeof err), OIMAP_ECONFIG, "trailing %%");
    mbnames_list_clear(&l);
}

static void test_render(void)
{
    char err[512];
    struct config *cfg = load("");
    struct mbnames *mb = mbn(cfg, err, sizeof err);
    ok(mb != NULL, "defaults compile (%s)", err);
    struct mbnames_list l = {0};
    const char *f1[] = {"Sent", "INBOX", "Lists.dev"};
    const char *f2[] = {"INBOX", "Archive"};
    mbnames_filter_add(mb, &l, "B", "/m", f2, 2);
    mbnames_filter_add(mb, &l, "A", "/m", f1, 3);
    mbnames_filter_add(mb, &l, "A", "/m", f1, 3);
    is_int(l.n, 5, "a folder is listed once");
    char *out = NULL;
    size_t len;
    is_int(mbnames_render(mb, &l, &out, &len, err, sizeof err), 0, "render");
    is_str(out, "mailboxes +A/INBOX +A/Lists.dev +A/Sent +B/Archive +B/INBOX\n",
           "offlineimap's default layout, sorted by (account, folder)");
    free(out);
    mbnames_list_clear(&l);
    mbnames_free(&mb);
    config_free(&cfg);

    cfg = load("header = 'mailboxes'\nperitem = \"+%(accountname)s/%(foldername)s\"\n"
               "sep = '\\n  '\nfooter = ''\n"
               "folderfilter = lambda a, f: f not in ['Trash'] and not re.search('^Junk', f)\n"
               "sort_keyfunc = lambda d: (d['foldername'] != 'INBOX', -len(d['foldername']))\n");
    mb = mbn(cfg, err, sizeof err);
    ok(mb != NULL, "custom settings compile (%s)", err);
    const char *f3[] = {"Trash", "INBOX", "Junk.x", "ab", "abc", "cd"};
    mbnames_filter_add(mb, &l, "B", "/m", f3, 6);
    mbnames_filter_add(mb, &l, "A", "/m", f3, 6);
    is_int(l.n, 8, "folderfilter(accountname, foldername) applied");
    mbnames_render(mb, &l, &out, &len, err, sizeof err);
    is_str(out,
           "mailboxes\"+B/INBOX\"\n  \"+A/INBOX\"\n  \"+B/abc\"\n  \"+A/abc\"\n  \"+B/ab\"\n  "
           "\"+B/cd\"\n  \"+A/ab\"\n  \"+A/cd\"",
           "sort_keyfunc, stable for equal keys; raw peritem keeps its quotes");
    free(out);
    mbnames_list_clear(&l);
    mbnames_free(&mb);
    config_free(&cfg);

    cfg = load("sort_keyfunc = lambda d: d['foldername'] if d['accountname'] == 'A' else 1\n");
    mb = mbn(cfg, err, sizeof err);
    mbnames_filter_add(mb, &l, "A", "/m", f2, 2);
    mbnames_filter_add(mb, &l, "B", "/m", f2, 2);
    is_int(mbnames_render(mb, &l, &out, &len, err, sizeof err), OIMAP_ECONFIG,
           "keys that cannot be compared");
    ok(strstr(err, "TypeError") != NULL, "a TypeError: %s", err);
    mbnames_list_clear(&l);
    mbnames_free(&mb);
    config_free(&cfg);

    const char *bad[] = {"header = 42\n", "sep = mailboxes\n", "folderfilter = lambda f: True\n",
                         "sort_keyfunc = lambda a, b: a\n", "footer = os.getcwd()\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cfg = load(bad[i]);
        mb = mbn(cfg, err, sizeof err);
        ok(cfg && !mb && strstr(err, "rc:") && strstr(err, "[mbnames]"), "refused %.*s: %s",
           (int)strcspn(bad[i], "\n"), bad[i], err);
        mbnames_free(&mb);
        config_free(&cfg);
    }
}

static void test_files(void)
{
    char err[512], path[512], out[512], json[512];
    struct config *cfg = load("");
    struct mbnames *mb = mbn(cfg, err, sizeof err);
    snprintf(out, sizeof out, "%s/mailboxes", tmpdir);
    snprintf(json, sizeof json, "%s/meta/mbnames/A.json", tmpdir);
    const char *fa[] = {"INBOX", "Sent"};
    const char *fb[] = {"INBOX"};

    is_int(mbnames_update_account(mb, "A", "/m", fa, 2, false, true), 0, "dry run");
    ok(access(json, F_OK) < 0, "dry run writes nothing");
    is_int(mbnames_update_account(mb, "A", "/m", fa, 2, false, false), 0, "account A");
    is_str(slurp(json),
           "[{\"accountname\": \"A\", \"foldername\": \"INBOX\", \"localfolders\": \"/m\"}, "
           "{\"accountname\": \"A\", \"foldername\": \"Sent\", \"localfolders\": \"/m\"}]",
           "intermediate file");
    ok(access(out, F_OK) < 0, "incremental = no: no output yet");
    mbnames_update_account(mb, "B", "/m", fb, 1, false, false);
    is_int(mbnames_write(mb, false), 0, "write");
    is_str(slurp(out), "mailboxes +A/INBOX +A/Sent +B/INBOX\n", "every account's folders");

    /* A partial sync adds; a full one replaces. */
    const char *fc[] = {"Drafts"};
    mbnames_update_account(mb, "A", "/m", fc, 1, true, false);
    mbnames_write(mb, false);
    is_str(slurp(out), "mailboxes +A/Drafts +A/INBOX +A/Sent +B/INBOX\n", "merged");
    mbnames_update_account(mb, "A", "/m", fa, 1, false, false);
    mbnames_write(mb, false);
    is_str(slurp(out), "mailboxes +A/INBOX +B/INBOX\n", "replaced");

    /* The mode of an existing file is kept; a symlink is followed. */
    chmod(out, 0640);
    snprintf(path, sizeof path, "%s/link", tmpdir);
    ok(symlink("mailboxes", path) == 0, "symlink");
    mbnames_free(&mb);
    config_free(&cfg);
    cfg = load_f("link", "incremental = yes\n");
    mb = mbn(cfg, err, sizeof err);
    mbnames_update_account(mb, "B", "/m", fa, 2, false, false);
    is_str(slurp(out), "mailboxes +A/INBOX +B/INBOX +B/Sent\n", "incremental: written at once");
    struct stat st;
    ok(stat(out, &st) == 0 && (st.st_mode & 0777) == 0640, "mode kept");
    ok(lstat(path, &st) == 0 && S_ISLNK(st.st_mode), "through the symlink, which stays");
    snprintf(path, sizeof path, "%s", out); /* the output file from here on */

    /* A corrupt file is left out, with a message. */
    (void)path;
    snprintf(path, sizeof path, "%s/meta/mbnames/C.json", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("[{\"accountname\": ", f);
    fclose(f);
    is_int(mbnames_write(mb, false), 0, "write with a corrupt file");
    is_str(slurp(out), "mailboxes +A/INBOX +B/INBOX +B/Sent\n", "corrupt file left out");
    mbnames_flush_log(mb);

    /* --mbnames-prune: C is not configured. */
    is_int(mbnames_prune(mb, cfg, true), 0, "prune dry run");
    ok(access(path, F_OK) == 0, "dry run keeps it");
    is_int(mbnames_prune(mb, cfg, false), 0, "prune");
    ok(access(path, F_OK) < 0, "C.json removed");
    ok(access(json, F_OK) == 0, "A.json kept");
    mbnames_free(&mb);
    config_free(&cfg);

    /* Disabled: prune removes every intermediate file. */
    cfg = load("");
    if (cfg)
        cfg->mbnames.enabled = false;
    mb = mbn(cfg, err, sizeof err);
    is_int(mbnames_update_account(mb, "A", "/m", fa, 2, false, false), 0, "disabled: no-op");
    is_int(mbnames_prune(mb, cfg, false), 0, "prune all");
    ok(access(json, F_OK) < 0, "A.json removed when disabled");
    is_int(mbnames_update_account(mb, "../x", "/m", fa, 2, false, false), 0,
           "disabled: not even checked");
    mbnames_free(&mb);
    cfg->mbnames.enabled = true;
    mb = mbn(cfg, err, sizeof err);
    is_int(mbnames_update_account(mb, "../x", "/m", fa, 2, false, false), OIMAP_ENAME,
           "an account name with '/' is refused");
    mbnames_free(&mb);
    config_free(&cfg);
}

static void test_newmail(void)
{
    char **argv = NULL, err[512];
    is_int(aftersync_newmail_parse("lambda: os.system(\"notify-send 'New mail'\")", "w", &argv, err,
                                   sizeof err),
           0, "lambda: os.system");
    ok(argv && !strcmp(argv[0], "/bin/sh") && !strcmp(argv[1], "-c") &&
           !strcmp(argv[2], "notify-send 'New mail'") && !argv[3],
       "shell command");
    aftersync_argv_free(&argv);
    is_int(
        aftersync_newmail_parse("  os . system(\n'a' + \" b\"\n)\n", "w", &argv, err, sizeof err),
        0, "bare os.system, concatenation over lines");
    is_str(argv ? argv[2] : NULL, "a b", "evaluated");
    aftersync_argv_free(&argv);
    is_int(aftersync_newmail_parse("lambda :subprocess.call(['notify-send', 'x y'])", "w", &argv,
                                   err, sizeof err),
           0, "subprocess.call with a list");
    ok(argv && !strcmp(argv[0], "notify-send") && !strcmp(argv[1], "x y") && !argv[2], "argv");
    aftersync_argv_free(&argv);
    const char *bad[] = {"lambda: os.system(42)",
                         "lambda: os.system('')",
                         "lambda: subprocess.call([])",
                         "lambda: os.systemx('a')",
                         "lambda x: os.system('a')",
                         "lambda: os.system('a') or 1",
                         "lambda: os.system(f())",
                         "my_hook",
                         "lambda: subprocess.call(['a', 1])"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        is_int(aftersync_newmail_parse(bad[i], "rc:9: [Repository R] newmail_hook", &argv, err,
                                       sizeof err),
               OIMAP_ECONFIG, "refused: %s", bad[i]);
        ok(argv == NULL && strstr(err, "rc:9: [Repository R] newmail_hook"), "named: %s", err);
    }
}

int main(void)
{
    FILE *devnull = freopen("/dev/null", "w", stderr);
    (void)devnull;
    if (!mkdtemp(tmpdir))
        return 1;
    test_json();
    test_format();
    test_render();
    test_files();
    test_newmail();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        return 1;
    return tap_done();
}
