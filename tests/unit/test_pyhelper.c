/* test_pyhelper.c - expressions pyeval does not take, through the python3 helper.
 *
 * Skipped (TAP "1..0 # SKIP") when no python3 is installed.  Each check
 * runs against a real helper loading a pythonfile written here. */
#include "config.h"
#include "err.h"
#include "folder.h"
#include "log.h"
#include "pyhelper.h"
#include "tap.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/oimap-test-pyhelper-XXXXXX";
static char pyfile[256], conffile[256], logfile[256];

static const char pythonfile_text[] = "import os\n"
                                      "PASSWORDS = {'imap.example.org': 's3cret-from-python'}\n"
                                      "PORT = 1143\n"
                                      "EXCLUDED = ['Junk', 'Trash']\n"
                                      "def get_password(host):\n"
                                      "    return PASSWORDS[host]\n"
                                      "def get_user():\n"
                                      "    return b'alice@example.org'\n"
                                      "def keep(folder):\n"
                                      "    return folder not in EXCLUDED\n"
                                      "def local_name(folder):\n"
                                      "    return folder.replace('INBOX.', '').title()\n"
                                      "def boom(folder):\n"
                                      "    return {}[folder]\n"
                                      "def noisy(folder):\n"
                                      "    print('noise on standard output')\n"
                                      "    return folder\n"
                                      "def same(x):\n"
                                      "    return x\n"
                                      "def leave(folder):\n"
                                      "    raise SystemExit(3)\n"
                                      "def cmp(a, b):\n"
                                      "    return (a > b) - (a < b)\n";

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static char *slurp(const char *path)
{
    static char buf[65536];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Whether the last load's diagnostics hold needle; shown as TAP comments
 * when that is not what the test wants. */
static bool diag_has(const char *needle, bool want)
{
    const char *d = config_diagnostics();
    bool found = strstr(d, needle) != NULL;
    if (found != want) {
        printf("# diagnostics were:\n");
        for (const char *p = d; *p;) {
            size_t n = strcspn(p, "\n");
            printf("#   %.*s\n", (int)n, p);
            p += n + (p[n] == '\n');
        }
    }
    return found;
}

static struct pyexpr *compile(const char *src, bool with_re, char *err, size_t errlen)
{
    struct pyexpr *x = NULL;
    pyexpr_compile(src, "test.conf:1: [Repository R] option", with_re, err, errlen, &x);
    return x;
}

static void test_without_fallback(void)
{
    char err[1024];
    struct pyexpr *x = compile("get_password('imap.example.org')", false, err, sizeof err);
    ok(x == NULL, "not enabled: an unknown name is refused by pyeval");
    ok(strstr(err, "unsupported Python construct 'get_password'") != NULL, "pyeval's message: %s",
       err);
    is_int(pyhelper_pid(), 0, "no helper started");
    x = compile("lambda f: f.startswith('INBOX')", true, err, sizeof err);
    ok(x && !pyexpr_is_python(x), "what pyeval takes stays in pyeval");
    pyexpr_free(&x);
}

static void test_values(void)
{
    char err[1024] = "";
    struct pyval v;
    is_int(pyhelper_enable(pyfile, "test.conf:2: [general] pythonfile"), 0, "enabled");
    is_int(pyhelper_pid(), 0, "enabling starts nothing");

    struct pyexpr *x = compile("get_password('imap.example.org')", false, err, sizeof err);
    ok(x && pyexpr_is_python(x), "a call into pythonfile goes to python3 (%s)", err);
    pid_t pid = pyhelper_pid();
    ok(pid > 0, "helper started on first need");
    if (x && pyexpr_eval(x, &v) == 0)
        is_str(pyval_cstr(&v), "s3cret-from-python", "remotepasseval value");
    pyexpr_free(&x);

    x = compile("PORT", false, err, sizeof err);
    ok(x && pyexpr_eval(x, &v) == 0 && v.type == PYV_INT && v.u.i == 1143, "a pythonfile int");
    pyexpr_free(&x);
    is_int(pyhelper_pid(), pid, "the same helper answers every request");

    x = compile("get_user()", false, err, sizeof err);
    ok(x && pyexpr_eval(x, &v) == 0 && v.type == PYV_STR && !strcmp(v.u.str.s, "alice@example.org"),
       "bytes come back as str");
    pyexpr_free(&x);

    x = compile("[f.upper() for f in EXCLUDED] + [None, True, -5]", false, err, sizeof err);
    ok(x && pyexpr_eval(x, &v) == 0 && v.type == PYV_LIST && v.u.seq.n == 5 &&
           !strcmp(v.u.seq.v[1].u.str.s, "TRASH") && v.u.seq.v[2].type == PYV_NONE &&
           v.u.seq.v[3].type == PYV_BOOL && v.u.seq.v[4].u.i == -5,
       "a comprehension (outside pyeval) gives a list");
    pyexpr_free(&x);

    x = compile("{'a': (1, 2), 'b\\u00e9': {}}", false, err, sizeof err);
    ok(x && !pyexpr_is_python(x), "a dict literal stays in pyeval");
    pyexpr_free(&x);
    x = compile("dict(a=(1, 2), b={'c': 'd'})", false, err, sizeof err);
    ok(x && pyexpr_eval(x, &v) == 0 && v.type == PYV_DICT && v.u.dict.n == 2 &&
           v.u.dict.v[0].type == PYV_LIST && v.u.dict.v[1].type == PYV_DICT,
       "a dict from python3 (tuples become lists)");
    pyexpr_free(&x);

    x = compile("1.5", false, err, sizeof err);
    ok(x == NULL && strstr(err, "oimap cannot use a value of type float"), "a float is refused: %s",
       err);
    x = compile("undefined_name + 1", false, err, sizeof err);
    ok(x == NULL && strstr(err, "test.conf:1: [Repository R] option: NameError: name "
                                "'undefined_name' is not defined"),
       "NameError named with file, line and option: %s", err);
    x = compile("get_password('other.example.org')", false, err, sizeof err);
    ok(x == NULL && strstr(err, "KeyError: 'other.example.org'") && strstr(err, "in get_password"),
       "an exception in pythonfile names its line: %s", err);
    x = compile("lambda f: f in ['a'", true, err, sizeof err);
    ok(x == NULL && strstr(err, "SyntaxError"), "a syntax error is python3's: %s", err);
    x = compile("re.sub('a', 'b', 'a')", false, err, sizeof err);
    ok(x && !pyexpr_is_python(x), "re in pyeval");
    pyexpr_free(&x);
    x = compile("re.sub('a', 'b', EXCLUDED[0])", false, err, sizeof err);
    ok(x == NULL && strstr(err, "NameError: name 're'"),
       "*eval options get no 're' (as "
       "offlineimap): %s",
       err);
    x = compile("'%s@%s' % ('alice', 'example.org')", false, err, sizeof err);
    ok(x && !pyexpr_is_python(x) && pyexpr_eval(x, &v) == 0 && pyexpr_is_python(x) &&
           !strcmp(pyval_cstr(&v), "alice@example.org"),
       "%%-formatting, which pyeval compiles but does not do, is handed to python3");
    pyexpr_free(&x);
    x = compile("lambda f: '%s.old' % f", true, err, sizeof err);
    ok(x && pyexpr_call1(x, "INBOX", &v) == 0 && !strcmp(pyval_cstr(&v), "INBOX.old") &&
           pyexpr_call1(x, "Sent", &v) == 0 && !strcmp(pyval_cstr(&v), "Sent.old"),
       "the same in a lambda, for every later call too");
    pyexpr_free(&x);
    x = compile("re.sub('u', 'o', EXCLUDED[0])", true, err, sizeof err);
    ok(x && pyexpr_eval(x, &v) == 0 && !strcmp(pyval_cstr(&v), "Jonk"), "folder options get 're'");
    pyexpr_free(&x);
}

static void test_functions(void)
{
    char err[1024] = "";
    struct pyval v;
    struct pyexpr *x = compile("keep", true, err, sizeof err);
    ok(x && pyexpr_accepts(x, 1) && !pyexpr_accepts(x, 2), "a pythonfile function as filter");
    ok(x && pyexpr_call1(x, "INBOX", &v) == 0 && pyval_truthy(&v), "keeps INBOX");
    ok(x && pyexpr_call1(x, "Junk", &v) == 0 && !pyval_truthy(&v), "drops Junk");
    pyexpr_free(&x);

    x = compile("lambda folder: local_name(folder) if keep(folder) else None", true, err,
                sizeof err);
    ok(x && pyexpr_accepts(x, 1), "a lambda calling pythonfile functions");
    ok(x && pyexpr_call1(x, "INBOX.lists.dev", &v) == 0 && !strcmp(pyval_cstr(&v), "Lists.Dev"),
       "nametrans through python3");
    pyexpr_free(&x);

    x = compile("lambda a, b: -cmp(a, b)", true, err, sizeof err);
    struct pyval args[2] = {pyval_str("a"), pyval_str("b")};
    ok(x && pyexpr_accepts(x, 2) && pyexpr_call(x, args, 2, &v) == 0 && v.u.i == 1,
       "foldersort with a cmp from pythonfile");
    pyexpr_free(&x);

    x = compile("same", true, err, sizeof err);
    const char odd[] = "caf\xc3\xa9 \xff\xfe \xf0\x9f\x98\x80 \"q\\\n\x01";
    ok(x && pyexpr_call1(x, odd, &v) == 0 && v.u.str.len == strlen(odd) &&
           !memcmp(v.u.str.s, odd, strlen(odd)),
       "UTF-8, non-UTF-8 bytes, astral characters and escapes survive the round trip");
    pyexpr_free(&x);

    x = compile("noisy", true, err, sizeof err);
    ok(x && pyexpr_call1(x, "INBOX", &v) == 0 && !strcmp(pyval_cstr(&v), "INBOX"),
       "print() in pythonfile does not disturb the protocol");
    pyexpr_free(&x);

    x = compile("boom", true, err, sizeof err);
    ok(x && pyexpr_call1(x, "Sent", &v) < 0 && strstr(pyexpr_errmsg(x), "KeyError: 'Sent'") &&
           strstr(pyexpr_errmsg(x), "in boom"),
       "an exception in a call: %s", x ? pyexpr_errmsg(x) : "");
    pyexpr_free(&x);
    x = compile("leave", true, err, sizeof err);
    ok(x && pyexpr_call1(x, "Sent", &v) < 0 && strstr(pyexpr_errmsg(x), "SystemExit"),
       "SystemExit in pythonfile is an error, not the helper's end");
    pyexpr_free(&x);
    x = compile("lambda f: 1.5", true, err, sizeof err);
    ok(x && pyexpr_call1(x, "a", &v) < 0 && strstr(pyexpr_errmsg(x), "float"),
       "a call giving a float: %s", x ? pyexpr_errmsg(x) : "");
    pyexpr_free(&x);

    /* The folder layer on top. */
    struct config_expr e = {.text = "lambda f: keep(f) and not f.startswith('Old')", .line = 3};
    struct folder_filter *f = NULL;
    is_int(folder_filter_new(&e, "test.conf:3: [Repository R] folderfilter", &f), 0,
           "folderfilter through python3");
    ok(f && folder_filter_match(f, "INBOX") && !folder_filter_match(f, "Trash") &&
           !folder_filter_match(f, "Old"),
       "folder_filter_match");
    folder_filter_free(&f);
    struct config_expr t = {.text = "local_name", .line = 4};
    struct folder_trans *tr = NULL;
    is_int(folder_trans_new(&t, "test.conf:4: [Repository R] nametrans", &tr), 0,
           "nametrans = a pythonfile function");
    char *s = tr ? folder_trans_apply(tr, "INBOX.archive") : NULL;
    is_str(s, "Archive", "folder_trans_apply");
    free(s);
    ok(tr && !folder_trans_is_identity(tr), "not identity");
    folder_trans_free(&tr);
    char **names = NULL;
    int n = folder_parse_list("EXCLUDED + ['Sent']", &names);
    ok(n == 3 && !strcmp(names[2], "Sent"), "folderincludes from pythonfile names");
    if (n > 0)
        folder_names_free(names, (size_t)n);
    struct config_expr bad = {.text = "EXCLUDED", .line = 5};
    ok(folder_filter_new(&bad, "test.conf:5: [Repository R] folderfilter", &f) < 0,
       "a list is no folderfilter");
}

static void test_config_load(void)
{
    char text[2048];
    snprintf(text, sizeof text,
             "[general]\n"
             "accounts = A\n"
             "pythonfile = %s\n"
             "[Account A]\n"
             "localrepository = L\n"
             "remoterepository = R\n"
             "[Repository L]\n"
             "type = Maildir\n"
             "localfolders = %s/mail\n"
             "[Repository R]\n"
             "type = IMAP\n"
             "remotehosteval = 'imap.example.org'\n"
             "remoteporteval = PORT\n"
             "remoteusereval = get_user()\n"
             "remotepasseval = get_password(\"imap.example.org\")\n"
             "oauth2_access_token_eval = 'tok-' + 'abc\\n'\n"
             "ssl = no\n"
             "starttls = no\n",
             pyfile, dir);
    write_text(conffile, text);
    struct config *cfg = NULL;
    is_int(config_load(conffile, NULL, 0, &cfg), 0, "config with *eval options loads");
    ok(!diag_has("not implemented", false), "no 'not implemented' warning");
    struct config_repo *r = cfg ? cfg->accounts[0].remote : NULL;
    if (r) {
        is_str(r->remotehost, "imap.example.org", "remotehosteval (pyeval)");
        is_int(config_repo_port(r), 1143, "remoteporteval (python3)");
        is_str(r->remoteuser, "alice@example.org", "remoteusereval (python3)");
        is_str(r->remotepass, "s3cret-from-python", "remotepasseval (python3)");
        is_str(r->oauth2_access_token, "tok-abc", "oauth2_access_token_eval, line end stripped");
        char *out = NULL;
        size_t outlen = 0;
        FILE *f = open_memstream(&out, &outlen);
        config_print_info(cfg, f);
        fclose(f);
        ok(out && strstr(out, "password: (from remotepasseval)") && !strstr(out, "s3cret"),
           "--info names the source, never the password");
        free(out);
    }
    /* The masker knows the password now. */
    log_info("login alice s3cret-from-python done; token tok-abc");
    log_close();
    char *logtext = slurp(logfile);
    ok(strstr(logtext, "login alice ******** done; token ********") && !strstr(logtext, "s3cret"),
       "secrets from python3 are masked in the log");
    log_init(LOG_UI_QUIET, logfile, 0);
    config_free(&cfg);

    /* Errors: file, line and option; a non-string password; no python3. */
    char *p = strstr(text, "remotepasseval = ");
    char *eol = strchr(p, '\n');
    memmove(p + strlen("remotepasseval = PORT"), eol, strlen(eol) + 1);
    memcpy(p, "remotepasseval = PORT", strlen("remotepasseval = PORT"));
    write_text(conffile, text);
    is_int(config_load(conffile, NULL, 0, &cfg), OIMAP_ECONFIG, "an int password is refused");
    ok(diag_has(":15: [Repository R] remotepasseval: gave int, not a "
                "non-empty string",
                true),
       "named with line and option");
    config_free(&cfg);

    char *path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    char *pyenv = getenv("OIMAP_PYTHON") ? strdup(getenv("OIMAP_PYTHON")) : NULL;
    pyhelper_disable(); /* the next load starts from scratch */
    setenv("PATH", "/nonexistent", 1);
    unsetenv("OIMAP_PYTHON");
    is_int(config_load(conffile, NULL, 0, &cfg), OIMAP_ECONFIG, "no python3: configuration error");
    ok(diag_has(":13: [Repository R] remoteporteval: needs python3, which was "
                "not found in PATH (oimap's own evaluator: unsupported Python "
                "construct 'PORT' at column 1)",
                true),
       "one line naming file:line:option");
    config_free(&cfg);
    if (path)
        setenv("PATH", path, 1);
    if (pyenv)
        setenv("OIMAP_PYTHON", pyenv, 1);
    free(path);
    free(pyenv);
}

static void test_failures(void)
{
    char err[1024] = "", bad[300];
    struct pyval v;
    /* A pythonfile that does not load. */
    snprintf(bad, sizeof bad, "%s/bad.py", dir);
    write_text(bad, "x = 1\ndef broken(:\n");
    pyhelper_enable(bad, "test.conf:2: [general] pythonfile");
    struct pyexpr *x = compile("x", false, err, sizeof err);
    ok(x == NULL && strstr(err, "test.conf:2: [general] pythonfile: cannot load") &&
           strstr(err, "SyntaxError") && strstr(err, "bad.py:2"),
       "a broken pythonfile is reported with its line: %s", err);
    is_int(pyhelper_pid(), 0, "and the helper is gone");

    /* A helper that dies: the call fails, later ones fail fast. */
    pyhelper_enable(pyfile, "test.conf:2: [general] pythonfile");
    x = compile("same", true, err, sizeof err);
    pid_t pid = pyhelper_pid();
    ok(x && pid > 0, "helper running");
    if (pid > 0)
        kill(pid, SIGKILL);
    ok(x && pyexpr_call1(x, "a", &v) < 0 && strstr(pyexpr_errmsg(x), "python3 helper stopped"),
       "a killed helper: %s", x ? pyexpr_errmsg(x) : "");
    ok(x && pyexpr_call1(x, "a", &v) < 0, "and stays stopped");
    is_int(pyhelper_pid(), 0, "reaped");
    /* A new expression (a daemon's next sync) starts it again; the old
     * one's function lived in the dead process. */
    struct pyexpr *y = compile("same", true, err, sizeof err);
    ok(y && pyhelper_pid() > 0 && pyhelper_pid() != pid && pyexpr_call1(y, "b", &v) == 0 &&
           !strcmp(pyval_cstr(&v), "b"),
       "restarted for a new expression");
    ok(x && pyexpr_call1(x, "a", &v) < 0 && strstr(pyexpr_errmsg(x), "restarted since"),
       "an expression of the old process fails: %s", x ? pyexpr_errmsg(x) : "");
    pyexpr_free(&y);
    pyexpr_free(&x);
    pyhelper_stop();
    x = compile("keep", true, err, sizeof err);
    pid = pyhelper_pid();
    pyhelper_stop();
    ok(x && pyexpr_call1(x, "a", &v) < 0 && pyhelper_pid() == 0,
       "a call after pyhelper_stop() starts nothing");
    pyexpr_free(&x);
    for (int i = 0; i < 3; i++) { /* restarts are bounded */
        x = compile("same", true, err, sizeof err);
        if (pyhelper_pid() > 0)
            kill(pyhelper_pid(), SIGKILL);
        if (x)
            pyexpr_call1(x, "a", &v);
        pyexpr_free(&x);
    }
    x = compile("same", true, err, sizeof err);
    ok(x == NULL && strstr(err, "python3 helper stopped"), "no fourth restart: %s", err);

    /* Stopping: the helper exits at end of input, nothing is left. */
    pyhelper_disable();
    pyhelper_enable(pyfile, "test.conf:2: [general] pythonfile");
    x = compile("keep", true, err, sizeof err);
    pid = pyhelper_pid();
    pyhelper_stop();
    ok(pid > 0 && kill(pid, 0) < 0, "pyhelper_stop ends and reaps the helper");
    pyexpr_free(&x);
    pyhelper_disable();
}

int main(void)
{
    char py[4096];
    if (pyhelper_find_python(py, sizeof py) < 0) {
        printf("1..0 # SKIP python3 not found\n");
        return 0;
    }
    if (!mkdtemp(dir))
        return 1;
    snprintf(pyfile, sizeof pyfile, "%s/offlineimap.py", dir);
    snprintf(conffile, sizeof conffile, "%s/oimap.conf", dir);
    snprintf(logfile, sizeof logfile, "%s/log", dir);
    write_text(pyfile, pythonfile_text);
    log_init(LOG_UI_QUIET, logfile, 0);

    test_without_fallback();
    test_values();
    test_functions();
    test_config_load();
    test_failures();

    log_close();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        ok(0, "cleanup");
    return tap_done();
}
