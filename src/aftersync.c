/* aftersync.c - the [mbnames] update and newmail_hook after an account's
 * sync (behaviour: include/aftersync.h).
 *
 * The mbnames files are written in the threadpool (they fsync); the
 * worker touches no loop object and logs nothing itself: its messages are
 * logged in after_work on the loop thread.
 */
#include "aftersync.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "maildir_name.h"
#include "mbnames.h"
#include "pyeval.h"
#include "pyhelper.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct job {
    uv_loop_t *loop;
    uv_work_t work;
    uv_process_t proc;
    aftersync_cb cb;
    void *arg;

    const struct config *cfg; /* outlives every account of the run */
    char *account, *localfolders;
    char **folders; /* local names with the local sep, as offlineimap lists them */
    size_t n_folders;
    bool do_mbnames, merge, dry_run;
    char **argv;       /* newmail_hook to run as a command, or NULL */
    struct pyexpr *fn; /* or to call in the python3 helper, or NULL */

    struct mbnames *mb; /* worker's */
    char err[512];
};

/* ---- newmail_hook ------------------------------------------------------------ */

void aftersync_argv_free(char ***argvp)
{
    char **argv = *argvp;
    for (size_t i = 0; argv && argv[i]; i++)
        free(argv[i]);
    free(argv);
    *argvp = NULL;
}

static const char *skip_ws(const char *p)
{
    while (*p && isspace((unsigned char)*p))
        p++;
    return p;
}

/* Match the identifier w at *p (and nothing longer). */
static bool take_word(const char **p, const char *w)
{
    size_t n = strlen(w);
    const char *s = skip_ws(*p);
    if (strncmp(s, w, n) != 0 || isalnum((unsigned char)s[n]) || s[n] == '_')
        return false;
    *p = s + n;
    return true;
}

static bool take_dotted(const char **p, const char *mod, const char *fn)
{
    const char *s = *p;
    if (!take_word(&s, mod))
        return false;
    s = skip_ws(s);
    if (*s != '.')
        return false;
    s++;
    if (!take_word(&s, fn))
        return false;
    *p = s;
    return true;
}

enum hook_kind { HOOK_SHELL, HOOK_ARGV };

/* "[lambda:] os.system(" or "[lambda:] subprocess.call(" ...: the kind,
 * and where the argument starts. */
static int hook_call(const char *text, const char **arg_r, enum hook_kind *kind_r)
{
    const char *p = text;
    if (take_word(&p, "lambda")) {
        p = skip_ws(p);
        if (*p != ':')
            return -1;
        p++;
    }
    static const char *const sub[] = {"call", "run", "Popen", "check_call"};
    bool found = false;
    if (take_dotted(&p, "os", "system")) {
        *kind_r = HOOK_SHELL;
        found = true;
    }
    for (size_t i = 0; !found && i < sizeof sub / sizeof sub[0]; i++)
        if (take_dotted(&p, "subprocess", sub[i])) {
            *kind_r = HOOK_ARGV;
            found = true;
        }
    p = skip_ws(p);
    if (!found || *p != '(')
        return -1;
    *arg_r = p + 1;
    return 0;
}

static int argv_from(const struct pyval *v, enum hook_kind kind, char ***argv_r)
{
    size_t n = kind == HOOK_SHELL ? 3 : v->type == PYV_STR ? 1 : v->u.seq.n;
    char **argv = calloc(n + 1, sizeof *argv);
    if (!argv)
        return -ENOMEM;
    if (kind == HOOK_SHELL) {
        argv[0] = strdup("/bin/sh");
        argv[1] = strdup("-c");
        argv[2] = strndup(v->u.str.s, v->u.str.len);
    } else if (v->type == PYV_STR) {
        argv[0] = strndup(v->u.str.s, v->u.str.len);
    } else {
        for (size_t i = 0; i < n; i++)
            argv[i] = strndup(v->u.seq.v[i].u.str.s, v->u.seq.v[i].u.str.len);
    }
    for (size_t i = 0; i < n; i++)
        if (!argv[i]) {
            aftersync_argv_free(&argv);
            return -ENOMEM;
        }
    *argv_r = argv;
    return 0;
}

static bool all_strings(const struct pyval *v)
{
    if (v->type != PYV_LIST && v->type != PYV_TUPLE)
        return false;
    for (size_t i = 0; i < v->u.seq.n; i++)
        if (v->u.seq.v[i].type != PYV_STR ||
            memchr(v->u.seq.v[i].u.str.s, 0, v->u.seq.v[i].u.str.len))
            return false;
    return v->u.seq.n > 0;
}

int aftersync_newmail_parse(const char *text, const char *where, char ***argv_r, char *err,
                            size_t errlen)
{
    const char *arg;
    enum hook_kind kind = HOOK_SHELL;
    *argv_r = NULL;
    size_t len = strlen(text);
    while (len && isspace((unsigned char)text[len - 1]))
        len--;
    if (hook_call(text, &arg, &kind) < 0 || len == 0 || text[len - 1] != ')' ||
        arg >= text + len - 1) {
        snprintf(err, errlen,
                 "%s: oimap runs newmail_hook in the forms lambda: os.system(\"command\") and "
                 "lambda: subprocess.call(['program', 'argument']) only",
                 where);
        return OIMAP_ECONFIG;
    }
    char *inner = strndup(arg, (size_t)(text + len - 1 - arg));
    if (!inner)
        return -ENOMEM;
    struct pyeval *pe = NULL;
    int r = pyeval_compile(inner, where, err, errlen, &pe);
    free(inner);
    struct pyval v;
    if (r == 0 && (r = pyeval_eval(pe, &v)) < 0)
        snprintf(err, errlen, "%s", pyeval_errmsg(pe));
    if (r == 0) {
        bool str = v.type == PYV_STR && !memchr(v.u.str.s, 0, v.u.str.len) && v.u.str.len;
        if (kind == HOOK_SHELL && !str) {
            snprintf(err, errlen, "%s: os.system() needs a non-empty string, got %s", where,
                     pyval_type_name(v.type));
            r = OIMAP_ECONFIG;
        } else if (kind == HOOK_ARGV && !str && !all_strings(&v)) {
            snprintf(err, errlen,
                     "%s: subprocess.call() needs a list of strings, like ['notify-send', "
                     "'New mail']",
                     where);
            r = OIMAP_ECONFIG;
        } else {
            r = argv_from(&v, kind, argv_r);
        }
    }
    pyeval_free(&pe);
    return r;
}

static void hook_where(const struct config *cfg, const struct config_repo *r, char *buf, size_t len)
{
    snprintf(buf, len, "%s:%d: [%s] newmail_hook", cfg->path, r->newmail_hook.line, r->section);
}

/* The hook of repository r: a command (argv), or else a callable the python3
 * helper evaluates (pyhelper.h; needs [general] pythonfile for the names it
 * calls).  Returns 0, OIMAP_ECONFIG (logged) or -ENOMEM. */
static int newmail_compile(const struct config *cfg, const struct config_repo *r, char ***argv_r,
                           struct pyexpr **fn_r)
{
    char where[512], err[1024], perr[1024] = "";
    hook_where(cfg, r, where, sizeof where);
    *fn_r = NULL;
    int rc = aftersync_newmail_parse(r->newmail_hook.text, where, argv_r, err, sizeof err);
    if (rc != OIMAP_ECONFIG)
        return rc;
    rc = pyexpr_compile(r->newmail_hook.text, where, false, perr, sizeof perr, fn_r);
    if (rc == 0 && pyexpr_accepts(*fn_r, 0))
        return 0;
    if (rc == 0)
        snprintf(perr, sizeof perr, "%s: not a function without arguments", where);
    pyexpr_free(fn_r);
    if (rc == -ENOMEM)
        return rc;
    log_error("%s; other forms need [general] pythonfile and python3 (%s)", err, perr);
    return OIMAP_ECONFIG;
}

/* ---- start-up checks and the end of a run ------------------------------------ */

int aftersync_check_config(const struct config *cfg)
{
    int rc = 0;
    char err[1024];
    for (size_t i = 0; i < cfg->n_accounts; i++) {
        const struct config_repo *r = cfg->accounts[i].remote;
        if (!r || !r->newmail_hook.text)
            continue;
        char **argv = NULL;
        struct pyexpr *fn = NULL;
        if (newmail_compile(cfg, r, &argv, &fn) < 0)
            rc = OIMAP_ECONFIG;
        aftersync_argv_free(&argv);
        pyexpr_free(&fn);
    }
    if (cfg->mbnames.enabled) {
        struct mbnames *mb = NULL;
        if (mbnames_new(cfg, err, sizeof err, &mb) < 0) {
            log_error("%s", err);
            rc = OIMAP_ECONFIG;
        }
        mbnames_free(&mb);
    }
    return rc;
}

int aftersync_finish(const struct config *cfg, bool dry_run)
{
    if (!cfg->mbnames.enabled || cfg->mbnames.incremental)
        return 0;
    struct mbnames *mb = NULL;
    char err[1024];
    int r = mbnames_new(cfg, err, sizeof err, &mb);
    if (r < 0) {
        log_error("%s", err);
        return r;
    }
    r = mbnames_write(mb, dry_run);
    mbnames_flush_log(mb);
    mbnames_free(&mb);
    return r;
}

int aftersync_mbnames_prune(const struct config *cfg, bool dry_run)
{
    struct mbnames *mb = NULL;
    char err[1024];
    int r = mbnames_new(cfg, err, sizeof err, &mb);
    if (r < 0) {
        log_error("%s", err);
        return r;
    }
    r = mbnames_prune(mb, cfg, dry_run);
    mbnames_flush_log(mb);
    mbnames_free(&mb);
    return r;
}

/* ---- one account --------------------------------------------------------------- */

static void job_free(struct job *j)
{
    free(j->account);
    free(j->localfolders);
    for (size_t i = 0; i < j->n_folders; i++)
        free(j->folders[i]);
    free(j->folders);
    aftersync_argv_free(&j->argv);
    pyexpr_free(&j->fn);
    mbnames_free(&j->mb);
    free(j);
}

static void job_done(struct job *j)
{
    aftersync_cb cb = j->cb;
    void *arg = j->arg;
    job_free(j);
    cb(arg);
}

static void on_hook_closed(uv_handle_t *h)
{
    job_done(h->data);
}

static void on_hook_exit(uv_process_t *p, int64_t status, int sig)
{
    struct job *j = p->data;
    if (status != 0 || sig != 0)
        log_warn("Account %s: newmail_hook exited with status %lld%s", j->account,
                 (long long)status, sig ? " (killed by a signal)" : "");
    uv_close((uv_handle_t *)p, on_hook_closed);
}

static void run_newmail_hook(struct job *j)
{
    uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
                                     {.flags = UV_INHERIT_FD, .data.fd = 1},
                                     {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t o = {.file = j->argv[0],
                              .args = j->argv,
                              .exit_cb = on_hook_exit,
                              .stdio = stdio,
                              .stdio_count = 3};
    j->proc.data = j;
    log_info("Account %s: new mail: running newmail_hook", j->account);
    int r = uv_spawn(j->loop, &j->proc, &o);
    if (r < 0) {
        log_warn("Account %s: cannot run newmail_hook (%s): %s", j->account, j->argv[0],
                 uv_strerror(r));
        /* A failed uv_spawn still needs its handle closed. */
        uv_close((uv_handle_t *)&j->proc, on_hook_closed);
    }
}

static void update_mbnames(struct job *j)
{
    mbnames_update_account(j->mb, j->account, j->localfolders, (const char *const *)j->folders,
                           j->n_folders, j->merge, j->dry_run);
}

static void work_mbnames(uv_work_t *w)
{
    struct job *j = w->data;
    if (j->do_mbnames)
        update_mbnames(j);
}

static void after_mbnames(uv_work_t *w, int status)
{
    struct job *j = w->data;
    (void)status;
    if (j->err[0])
        log_error("%s", j->err);
    if (j->mb)
        mbnames_flush_log(j->mb);
    if (j->argv) {
        run_newmail_hook(j);
        return;
    }
    if (j->fn) {
        /* The helper's calls are synchronous (pyhelper.h): the loop waits,
         * as offlineimap's folder thread waits for the hook. */
        struct pyval v;
        log_info("Account %s: new mail: calling newmail_hook", j->account);
        if (pyexpr_call(j->fn, NULL, 0, &v) < 0)
            log_warn("Account %s: newmail_hook failed: %s", j->account, pyexpr_errmsg(j->fn));
    }
    job_done(j);
}

/* The local folder names as offlineimap shows them: the local sep. */
static int copy_folders(struct job *j, const struct aftersync_info *in)
{
    const char *sep = in->acct->local && in->acct->local->sep ? in->acct->local->sep : ".";
    j->folders = calloc(in->n_folders ? in->n_folders : 1, sizeof *j->folders);
    if (!j->folders)
        return -ENOMEM;
    for (size_t i = 0; i < in->n_folders; i++) {
        char buf[4096];
        if (maildir_name_folder_to_local(buf, sizeof buf, in->folders[i], sep) < 0)
            continue; /* repo_maildir refused it too: it was not synced */
        if (!(j->folders[j->n_folders] = strdup(buf)))
            return -ENOMEM;
        j->n_folders++;
    }
    return 0;
}

static int newmail_argv(struct job *j, const struct aftersync_info *in)
{
    const struct config_repo *r = in->acct->remote;
    if (!in->inbox_new || in->dry_run || !r || !r->newmail_hook.text)
        return 0;
    int rc = newmail_compile(in->cfg, r, &j->argv, &j->fn);
    return rc == OIMAP_ECONFIG ? 0 : rc; /* checked at start-up: logged, not run */
}

int aftersync_run(const struct aftersync_info *in, aftersync_cb cb, void *arg)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return -ENOMEM;
    const struct config_repo *local = in->acct->local;
    *j = (struct job){
        .loop = in->loop,
        .cb = cb,
        .arg = arg,
        .cfg = in->cfg,
        .account = strdup(in->acct->name),
        .localfolders = strdup(local && local->localfolders ? local->localfolders : ""),
        .do_mbnames = in->cfg->mbnames.enabled && !in->failed && in->n_folders > 0,
        .merge = in->partial,
        .dry_run = in->dry_run,
    };
    int r = j->account && j->localfolders ? 0 : -ENOMEM;
    if (r == 0 && j->do_mbnames)
        r = copy_folders(j, in);
    if (r == 0 && j->do_mbnames && (r = mbnames_new(in->cfg, j->err, sizeof j->err, &j->mb)) < 0) {
        log_error("%s", j->err); /* checked at start-up: a -k change, or memory */
        j->err[0] = '\0';
        j->do_mbnames = false;
        r = r == -ENOMEM ? r : 0;
    }
    if (r == 0 && j->do_mbnames && mbnames_uses_python(j->mb)) {
        /* The python3 helper belongs to this thread (pyhelper.h). */
        update_mbnames(j);
        j->do_mbnames = false;
    }
    if (r == 0)
        r = newmail_argv(j, in);
    if (r == 0 && !j->mb && !j->argv && !j->fn) {
        job_free(j);
        return 1; /* the common case costs no threadpool round trip */
    }
    j->work.data = j;
    if (r == 0)
        r = uv_queue_work(in->loop, &j->work, work_mbnames, after_mbnames);
    if (r < 0) {
        job_free(j);
        return r;
    }
    return 0;
}
