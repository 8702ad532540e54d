/* account.c - run the sync of every selected account on the one loop.
 *
 * One struct acct per account walks: presynchook -> status store (account
 * lock) -> Maildir repository -> first IMAP connection -> LIST -> local
 * folder list -> folder pairs (+ CREATE of missing remote folders) -> folder
 * jobs spread over up to maxconnections connections -> LOGOUT ->
 * postsynchook -> summary.  Accounts run maxsyncaccounts at a time.
 *
 * The resync fast path: the LIST asks for every folder's STATUS too
 * (LIST-STATUS, RFC 5819).  A folder whose remote state is the one recorded
 * after the last sync is first checked without a connection (sync.h, "The
 * check"): when the Maildir has not changed either it is done, with no
 * SELECT.  Only folders with work queue for a connection, and the extra
 * connections (maxconnections) are opened only while more folders wait
 * than connections are free: a sync with nothing to do uses one.
 */
#include "account.h"
#include "aftersync.h"
#include "config.h"
#include "conn_cache.h"
#include "err.h"
#include "folder.h"
#include "imap_conn.h"
#include "imap_utf7.h"
#include "local_imap.h"
#include "maildir_atime.h"
#include "pyhelper.h"
#include "log.h"
#include "repo_maildir.h"
#include "status.h"
#include "sync.h"
#include "sync_imap.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct run;
struct acct;

struct fpair {
    char *remote; /* UTF-8, server delimiter */
    char *local;  /* '/'-delimited name for repo_maildir */
    bool create_remote;
    bool done, failed;
    bool have_rs; /* rs holds the folder's LIST-STATUS answer */
    struct sync_remote_status rs;
    struct sync_result res;
    char *lname; /* IMAP local repository: the folder's name on that server */
    /* Maildir with a local nametrans: the name offlineimap hashes into
     * FMD5= (see pair_fmd5_name); NULL: the folder's path, the default. */
    char *fmd5_name;
    uint32_t *ignore; /* copy_ignore_eval: far UIDs never downloaded, ascending */
    size_t n_ignore;
    int tries; /* retries after a dropped connection (retrycount) */
};

struct slot {
    struct acct *a;
    struct imap_conn *conn;
    bool busy, dead, opening;
    size_t pair;                  /* the folder in progress when busy */
    struct sync_conn_hooks hooks; /* the running job's VANISHED sink */
    struct imap_conn *lconn;      /* IMAP local repository: the slot's local connection */
    bool lopening;
};

/* Checks without a connection in flight at once (each holds a folder's
 * status records and Maildir listing). */
#define MAX_CHECKS 4
/* Replacement connections per account and run: one so that a folder that
 * broke its connection does not leave the others unsynced, and one per
 * retry of such a folder (retrycount, see on_folder_done). */
#define MAX_RECONNECTS(a) ((unsigned)(a)->cfg->remote->retrycount + 1u)

struct rstatus {
    char *name;
    struct sync_remote_status rs;
};

struct acct {
    struct run *run;
    const struct config_account *cfg;
    struct status *status;
    struct repo_maildir *md;
    struct imap_conn_config *icfg;
    struct folder_filter *rfilter, *lfilter, *cli_filter;
    struct folder_trans *rtrans, *ltrans;
    struct folder_sort *sort;   /* the remote's foldersort, or NULL */
    struct pyexpr *copy_ignore; /* the remote's copy_ignore_eval, or NULL */
    char **includes;
    size_t n_includes;

    struct slot *slots;
    size_t n_slots;
    char delim;

    /* LIST results */
    char **rnames;
    size_t n_rnames;
    struct rstatus *rstat; /* LIST-STATUS answers */
    size_t n_rstat;
    struct maildir_atimes *atimes;               /* restoreatime: recorded before the sync */
    struct repo_maildir_folder_list *atime_list; /* the local folders, while recording */
    char **subs;                                 /* subscribedonly: LSUB names (as rnames) */
    size_t n_subs;
    bool lsub_sent;

    struct fpair *pairs;
    size_t n_pairs, n_creating;
    size_t next_check;      /* pairs[next_check..] not yet checked or queued */
    size_t n_checking;      /* checks in flight */
    unsigned reconnects;    /* replacement connections opened */
    size_t *queue;          /* pair indexes waiting for a connection */
    size_t n_queue, q_head; /* queue[q_head..n_queue) still wait */

    uv_process_t hook;
    bool hook_running;
    void (*after_hook)(struct acct *a);

    bool failed;
    char *fail_msg;
    size_t folders_failed;
    struct sync_result total;
    struct timespec start;
    bool finishing;
    bool hold; /* holdconnectionopen: connections via run->opts->conns */
    /* IMAP local repository (licfg set): its connection settings, its
     * delimiter and folder list, and which of the two LISTs are done. */
    struct imap_conn_config *licfg;
    char ldelim;
    struct repo_maildir_folder_list *llist;
    bool rlisted, llisted;
    struct acct *next_in_run; /* run->accts, for account_run_dump() */
};

struct run {
    uv_loop_t *loop;
    const struct config *cfg;
    struct account_run_opts opts_copy;
    const struct account_run_opts *opts;
    const struct config_account *only; /* one account, or NULL for all */
    size_t next, running, max_running;
    int failures;
    bool stopping, starting;
    account_done_cb done;
    void *done_arg;
    struct acct *accts; /* in progress */
};

static void run_next(struct run *run);

static void acct_start(struct run *run, const struct config_account *cfg);
static void acct_finish(struct acct *a);
static void pump(struct slot *s);

/* ---- small helpers ---------------------------------------------------------- */

static void acct_fail(struct acct *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void acct_fail(struct acct *a, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_error("Account %s: %s", a->cfg->name, buf);
    a->failed = true;
}

static char *replace_char(const char *s, char from, char to)
{
    char *out = strdup(s);
    if (out && from != to)
        for (char *p = out; *p; p++)
            if (*p == from)
                *p = to;
    return out;
}

/* The cut-off of maxage, else of the startdate of either repository (the
 * configuration allows one of the three); *startdate_r gets which
 * repository has the startdate (sync.h), 0 for maxage. */
static int64_t min_date_of(const struct config_account *cfg, unsigned *startdate_r)
{
    const char *spec = cfg->maxage;
    *startdate_r = 0;
    if (!spec && cfg->local->startdate) {
        spec = cfg->local->startdate;
        *startdate_r = SYNC_STARTDATE_LOCAL;
    } else if (!spec && cfg->remote->startdate) {
        spec = cfg->remote->startdate;
        *startdate_r = SYNC_STARTDATE_REMOTE;
    }
    if (!spec)
        return 0;
    int y, m, d;
    if (sscanf(spec, "%d-%d-%d", &y, &m, &d) == 3) {
        struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d, .tm_isdst = -1};
        /* startdate: local midnight, as offlineimap's time.mktime() */
        return *startdate_r ? (int64_t)mktime(&tm) : (int64_t)timegm(&tm);
    }
    long days = strtol(spec, NULL, 10);
    return days > 0 ? (int64_t)time(NULL) - (int64_t)days * 86400 : 0;
}

/* ---- hooks ------------------------------------------------------------------ */

static void on_hook_closed(uv_handle_t *h)
{
    struct acct *a = h->data;
    a->hook_running = false;
    a->after_hook(a);
}

static void on_hook_exit(uv_process_t *p, int64_t status, int sig)
{
    struct acct *a = p->data;
    if (status != 0 || sig != 0)
        log_warn("Account %s: hook exited with status %lld%s", a->cfg->name, (long long)status,
                 sig ? " (killed by a signal)" : "");
    uv_close((uv_handle_t *)p, on_hook_closed);
}

/* Run a pre/post sync hook with /bin/sh, then continue with next().  The
 * environment gets OFFLINEIMAPSYNCMODE as offlineimap sets it. */
static void run_hook(struct acct *a, const char *cmd, void (*next)(struct acct *a))
{
    if (!cmd || !*cmd || a->run->opts->dry_run) {
        next(a);
        return;
    }
    const struct account_run_opts *ro = a->run->opts;
    bool quick = ro->quick || a->cfg->quick < 0;
    setenv("OFFLINEIMAPSYNCMODE", ro->idle ? "idle" : quick ? "quick" : "full", 1);
    char *args[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
                                     {.flags = UV_INHERIT_FD, .data.fd = 1},
                                     {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t o = {
        .file = "/bin/sh", .args = args, .exit_cb = on_hook_exit, .stdio = stdio, .stdio_count = 3};
    a->after_hook = next;
    a->hook.data = a;
    log_info("Account %s: running hook: %s", a->cfg->name, cmd);
    int r = uv_spawn(a->run->loop, &a->hook, &o);
    if (r < 0) {
        log_warn("Account %s: cannot run hook: %s", a->cfg->name, uv_strerror(r));
        /* A failed uv_spawn still needs its handle closed. */
        a->hook_running = true;
        uv_close((uv_handle_t *)&a->hook, on_hook_closed);
        return;
    }
    a->hook_running = true;
}

/* ---- folder pairs ----------------------------------------------------------- */

static struct fpair *find_pair_local(struct acct *a, const char *local)
{
    for (size_t i = 0; i < a->n_pairs; i++)
        if (strcmp(a->pairs[i].local, local) == 0)
            return &a->pairs[i];
    return NULL;
}

/* s with every from (non-empty) replaced by to, left to right, as Python's
 * str.replace (offlineimap's separator swaps). */
static char *replace_str(const char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    for (const char *p = strstr(s, from); p; p = strstr(p + fl, from))
        n++;
    char *out = malloc(strlen(s) + n * tl + 1);
    if (!out)
        return NULL;
    char *w = out;
    for (const char *p; (p = strstr(s, from)) != NULL; s = p + fl) {
        memcpy(w, s, (size_t)(p - s));
        w += p - s;
        memcpy(w, to, tl);
        w += tl;
    }
    strcpy(w, s);
    return out;
}

/* The Maildir's sep, the string between levels in its folder names. */
static const char *local_sep(const struct acct *a)
{
    const char *sep = a->cfg->local->sep;
    return sep && *sep ? sep : ".";
}

/* The pair whose Maildir is disk (a folder's name on disk), if any.  Two
 * names can share one ("a.b" and "a/b" with sep "."), and one Maildir must
 * not hold the UIDs of two remote folders.  Only where one of the two names
 * holds a character of sep: any says the name looked for does, else only
 * such pairs are converted (thousands of folders stay cheap).  NULL for an
 * IMAP local side, and with sep "/" (names on disk are the names then). */
static struct fpair *find_pair_disk(struct acct *a, const char *disk, bool any)
{
    const char *sep = local_sep(a);
    if (a->licfg || strcmp(sep, "/") == 0)
        return NULL;
    char buf[PATH_MAX];
    for (size_t i = 0; i < a->n_pairs; i++) {
        const char *l = a->pairs[i].local;
        if ((any || strpbrk(l, sep)) &&
            maildir_name_folder_to_local(buf, sizeof buf, l, sep) >= 0 && strcmp(buf, disk) == 0)
            return &a->pairs[i];
    }
    return NULL;
}

/* The name FMD5= hashes, as offlineimap computes it (folder/Maildir.py):
 * the local nametrans applied to the folder's name on disk (levels joined
 * by sep), "" when that gives sep itself.  NULL in *r when it is the name
 * on disk (no local nametrans), the default of repo_maildir.  Without this
 * an offlineimap Maildir under a local nametrans would have every U= of it
 * distrusted, and files we name would not be offlineimap's.  Returns 0,
 * -ENOMEM, or OIMAP_ENAME when the nametrans fails (logged). */
static int pair_fmd5_name(const struct acct *a, const char *local, char **r)
{
    *r = NULL;
    if (a->licfg || folder_trans_is_identity(a->ltrans))
        return 0;
    char disk[PATH_MAX];
    int rc = maildir_name_folder_to_local(disk, sizeof disk, local, local_sep(a));
    if (rc < 0)
        return 0; /* repo_maildir_open refuses it, and says so */
    char *vis = folder_trans_apply(a->ltrans, disk);
    if (!vis)
        return OIMAP_ENAME;
    if (strcmp(vis, local_sep(a)) == 0)
        vis[0] = '\0';
    *r = vis;
    return 0;
}

static int add_pair(struct acct *a, const char *remote, const char *local, bool create_remote)
{
    if (find_pair_local(a, local))
        return 0;
    char disk[PATH_MAX];
    struct fpair *other;
    if (!a->licfg && maildir_name_folder_to_local(disk, sizeof disk, local, local_sep(a)) >= 0 &&
        (other = find_pair_disk(a, disk, strpbrk(local, local_sep(a)) != NULL)) != NULL) {
        log_warn("Account %s: folders %s and %s would both be the local folder %s: %s is not "
                 "synced (rename it, or set sep = / in [%s])",
                 a->cfg->name, other->remote, remote, disk, remote, a->cfg->local->section);
        return 0;
    }
    char *fmd5_name;
    int rc = pair_fmd5_name(a, local, &fmd5_name);
    if (rc < 0)
        return rc == OIMAP_ENAME ? 0 : rc; /* logged: the folder is skipped */
    struct fpair *np = realloc(a->pairs, (a->n_pairs + 1) * sizeof *np);
    if (!np) {
        free(fmd5_name);
        return -ENOMEM;
    }
    a->pairs = np;
    struct fpair *p = &a->pairs[a->n_pairs];
    memset(p, 0, sizeof *p);
    p->remote = strdup(remote);
    p->local = strdup(local);
    p->fmd5_name = fmd5_name;
    p->create_remote = create_remote;
    if (!p->remote || !p->local)
        return -ENOMEM;
    a->n_pairs++;
    return 0;
}

/* Remote folder name -> the local ('/'-delimited) name: nametrans of the
 * remote repository, then the server's delimiter becomes '/'.  offlineimap
 * turns the delimiter into sep instead; the folder on disk is the same,
 * and a '/' the nametrans gave is a level of its own only with sep "/". */
static char *remote_to_local(struct acct *a, const char *remote)
{
    char *vis = folder_trans_apply(a->rtrans, remote);
    if (!vis)
        return NULL;
    if (a->delim && a->delim != '/' && strchr(vis, '/') &&
        (a->licfg || strcmp(local_sep(a), "/") != 0)) {
        log_warn("Account %s: folder '%s' has '/' in a name whose delimiter is '%c'; skipped",
                 a->cfg->name, remote, a->delim);
        free(vis);
        return NULL;
    }
    char *local = replace_char(vis, a->delim ? a->delim : '/', '/');
    free(vis);
    return local;
}

/* Local folder -> remote name, as offlineimap: the local nametrans gets the
 * folder's name on disk (levels joined by sep, as in FMD5), then sep becomes
 * the server's delimiter.  An IMAP local repository (disk NULL) gives its
 * '/'-delimited name instead. */
static char *local_to_remote(struct acct *a, const char *local, const char *disk)
{
    char *vis = folder_trans_apply(a->ltrans, disk ? disk : local);
    if (!vis)
        return NULL;
    const char delim[2] = {a->delim ? a->delim : '/', '\0'};
    char *remote = replace_str(vis, disk ? local_sep(a) : "/", delim);
    free(vis);
    return remote;
}

/* Folder names as filters, nametrans and the local side see them: UTF-8
 * with utf8foldernames, else the server's modified UTF-7, as offlineimap
 * (so an offlineimap Maildir keeps its folder names and FMD5s).  This turns
 * such a name into the UTF-8 that imap_conn and the status store use; a name
 * that is not valid modified UTF-7 (a local folder typed in UTF-8) is taken
 * as UTF-8. */
static char *view_to_utf8(const struct acct *a, const char *v)
{
    char *u = NULL;
    if (a->cfg->utf8foldernames || imap_utf7_decode(v, strlen(v), &u) < 0)
        return strdup(v);
    return u;
}

static bool name_in(char *const *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], name) == 0)
            return true;
    return false;
}

/* subscribedonly: LIST names the folders that exist, LSUB those subscribed
 * to; a folder is synced when both list it (or folderincludes names it). */
static bool subscribed(const struct acct *a, const char *remote)
{
    return !a->cfg->remote->subscribedonly || name_in(a->subs, a->n_subs, remote) ||
           name_in(a->includes, a->n_includes, remote);
}

static bool wanted_remote(struct acct *a, const char *remote)
{
    if (a->cli_filter)
        return folder_filter_match(a->cli_filter, remote);
    for (size_t i = 0; i < a->n_includes; i++)
        if (strcmp(a->includes[i], remote) == 0)
            return true;
    return folder_filter_match(a->rfilter, remote);
}

/* foldersort orders the folders as offlineimap's remote repository does: by
 * their visible names (nametrans'd, with the server's delimiter). */
static void apply_foldersort(struct acct *a)
{
    size_t n = a->n_pairs;
    if (!a->sort || n < 2)
        return;
    const char **names = calloc(n, sizeof *names);
    size_t *order = calloc(n, sizeof *order);
    struct fpair *sorted = calloc(n, sizeof *sorted);
    bool ok = names && order && sorted;
    for (size_t i = 0; ok && i < n; i++)
        ok = (names[i] = replace_char(a->pairs[i].local, '/', a->delim ? a->delim : '/')) != NULL;
    if (ok && folder_sort_order(a->sort, names, n, order) == 0) {
        for (size_t i = 0; i < n; i++)
            sorted[i] = a->pairs[order[i]];
        memcpy(a->pairs, sorted, n * sizeof *sorted);
    }
    for (size_t i = 0; names && i < n; i++)
        free((char *)names[i]);
    free(names);
    free(order);
    free(sorted);
}

static int cmp_pair(const void *x, const void *y)
{
    const struct fpair *p = x, *q = y;
    /* INBOX first: it is what people look at. */
    bool pi = strcmp(p->remote, "INBOX") == 0, qi = strcmp(q->remote, "INBOX") == 0;
    if (pi != qi)
        return pi ? -1 : 1;
    return strcmp(p->remote, q->remote);
}

/* ---- the folder jobs -------------------------------------------------------- */

static void account_maybe_done(struct acct *a)
{
    if (a->finishing || a->n_creating || a->n_checking)
        return;
    if (a->next_check < a->n_pairs && !a->run->stopping)
        return;
    for (size_t i = 0; i < a->n_slots; i++)
        if (a->slots[i].busy || a->slots[i].opening || a->slots[i].lopening)
            return;
    bool any_alive = false;
    for (size_t i = 0; i < a->n_slots; i++)
        any_alive |= !a->slots[i].dead && a->slots[i].conn;
    if (a->q_head < a->n_queue && any_alive && !a->run->stopping)
        return;
    /* What never got a connection: not started (stopping) or left behind. */
    for (; a->next_check < a->n_pairs; a->next_check++)
        log_info("Account %s: folder %s not synced this time: stopping", a->cfg->name,
                 a->pairs[a->next_check].remote);
    for (; a->q_head < a->n_queue; a->q_head++) {
        struct fpair *p = &a->pairs[a->queue[a->q_head]];
        if (a->run->stopping) {
            log_info("Account %s: folder %s not synced this time: stopping", a->cfg->name,
                     p->remote);
            continue;
        }
        p->failed = true;
        a->folders_failed++;
        log_error("Account %s: folder %s not synced: no connection to the server left",
                  a->cfg->name, p->remote);
    }
    acct_finish(a);
}

static void add_totals(struct sync_result *t, const struct sync_result *r)
{
    t->downloaded += r->downloaded;
    t->uploaded += r->uploaded;
    t->paired += r->paired;
    t->flags_far += r->flags_far;
    t->flags_near += r->flags_near;
    t->deleted_far += r->deleted_far;
    t->deleted_near += r->deleted_near;
    t->held_back += r->held_back;
    t->bytes_down += r->bytes_down;
    t->bytes_up += r->bytes_up;
}

static void pair_result(struct acct *a, struct fpair *p, const struct sync_result *res)
{
    p->done = true;
    p->res = *res;
    add_totals(&a->total, res);
    if (res->status < 0) {
        p->failed = true;
        a->folders_failed++;
        log_error("Account %s: folder %s: %s", a->cfg->name, p->remote,
                  res->error[0] ? res->error : err_str(res->status));
    }
}

static void pump_all(struct acct *a);

static int enqueue(struct acct *a, size_t pair);

/* A connection that died under a folder (network, timeout, the server's
 * BYE), not one the server's answers broke (those would break again). */
static bool worth_retrying(const struct sync_result *res)
{
    switch (res->status) {
    case UV_EOF:
    case UV_ECONNRESET:
    case UV_ECONNABORTED:
    case UV_ECONNREFUSED:
    case UV_EPIPE:
    case UV_ETIMEDOUT:
    case UV_ENETDOWN:
    case UV_ENETUNREACH:
    case UV_EHOSTUNREACH:
    case OIMAP_ETIMEOUT:
    case OIMAP_EBYE:
    case OIMAP_EPROXY: /* e.g. a Tor circuit that could not reach the server */
        return res->conn_failed;
    default:
        return false;
    }
}

/* retrycount (offlineimap: tries of a download whose connection dropped):
 * the folder is synced again from the start on a new connection, at most
 * retrycount times per run.  Safe at any point: what the failed attempt
 * did is committed, and its open intents are resolved first (plan.h R2). */
static bool retry_pair(struct acct *a, size_t i, const struct sync_result *res)
{
    struct fpair *p = &a->pairs[i];
    if (!worth_retrying(res) || p->tries >= a->cfg->remote->retrycount || a->run->stopping ||
        a->run->opts->dry_run || enqueue(a, i) < 0)
        return false;
    p->tries++;
    add_totals(&a->total, res);
    log_warn("Account %s: folder %s: %s; trying again on a new connection (%d of %d)", a->cfg->name,
             p->remote, res->error[0] ? res->error : err_str(res->status), p->tries,
             a->cfg->remote->retrycount);
    return true;
}

static void on_folder_done(const struct sync_result *res, void *arg)
{
    struct slot *s = arg;
    struct acct *a = s->a;
    struct fpair *p = &a->pairs[s->pair];

    s->busy = false;
    if (!retry_pair(a, s->pair, res))
        pair_result(a, p, res);
    if (res->conn_failed) {
        s->dead = true;
        imap_conn_close(&s->conn);
        imap_conn_close(&s->lconn); /* IMAP local: either may have failed */
    }
    pump_all(a);
    account_maybe_done(a);
}

static void fill_job(struct acct *a, struct fpair *p, struct sync_folder_job *job)
{
    const struct account_run_opts *o = a->run->opts;
    *job = (struct sync_folder_job){
        .loop = a->run->loop,
        .acct = a->cfg,
        .maildir = a->md,
        .status = a->status,
        .remote_name = p->remote,
        .local_name = p->local,
        .fmd5_name = p->fmd5_name,
        .remote_delim = a->delim,
        .dry_run = o->dry_run,
        .quick = o->quick || a->cfg->quick < 0,
        .allow_mass_delete = o->allow_mass_delete || !a->cfg->deletion_guard,
        .create_local = a->cfg->local->createfolders,
        .max_size = a->cfg->maxsize > 0 ? (uint64_t)a->cfg->maxsize : 0,
        .copy_ignore = p->ignore,
        .n_copy_ignore = p->n_ignore,
    };
    job->min_date = min_date_of(a->cfg, &job->startdate);
}

static int enqueue(struct acct *a, size_t pair)
{
    size_t *q = realloc(a->queue, (a->n_queue + 1) * sizeof *q);
    if (!q)
        return -ENOMEM;
    a->queue = q;
    a->queue[a->n_queue++] = pair;
    return 0;
}

struct check_ctx {
    struct acct *a;
    size_t pair;
};

static void maybe_open_extra(struct acct *a);
static void start_checks(struct acct *a);

/* A check ended: done, or queued for a connection. */
static void on_check_done(const struct sync_result *res, void *arg)
{
    struct check_ctx *cc = arg;
    struct acct *a = cc->a;
    struct fpair *p = &a->pairs[cc->pair];
    size_t pair = cc->pair;
    free(cc);
    a->n_checking--;
    if (res->status == 0 && res->need_conn) {
        if (enqueue(a, pair) < 0) {
            p->done = p->failed = true;
            a->folders_failed++;
            log_error("Account %s: folder %s: out of memory", a->cfg->name, p->remote);
        }
    } else {
        if (res->skipped)
            LOG_DEBUG(LOGC_SYNC, "Account %s: folder %s unchanged", a->cfg->name, p->remote);
        pair_result(a, p, res);
    }
    start_checks(a);
    pump_all(a);
    account_maybe_done(a);
}

/* Check the folders LIST-STATUS gave a state for (a few at a time); queue
 * the others for a connection at once. */
static void start_checks(struct acct *a)
{
    while (a->next_check < a->n_pairs && !a->run->stopping) {
        struct fpair *p = &a->pairs[a->next_check];
        if (p->have_rs && !p->create_remote && a->n_checking >= MAX_CHECKS)
            break;
        size_t i = a->next_check++;
        if (!p->have_rs || p->create_remote) {
            if (enqueue(a, i) < 0) {
                p->done = p->failed = true;
                a->folders_failed++;
                log_error("Account %s: folder %s: out of memory", a->cfg->name, p->remote);
            }
            continue;
        }
        struct check_ctx *cc = malloc(sizeof *cc);
        struct sync_folder_job job;
        fill_job(a, p, &job);
        job.remote_status = &p->rs;
        if (cc)
            *cc = (struct check_ctx){a, i};
        int r = cc ? sync_folder(&job, on_check_done, cc) : -ENOMEM;
        if (r < 0) {
            free(cc);
            /* The check is an optimisation: the full sync decides. */
            LOG_DEBUG(LOGC_SYNC, "Account %s: folder %s: no check (%s)", a->cfg->name, p->remote,
                      err_str(r));
            if (enqueue(a, i) < 0) {
                p->done = p->failed = true;
                a->folders_failed++;
            }
            continue;
        }
        a->n_checking++;
    }
}

/* ---- IMAP as the local repository: one local connection per slot --------- */

static void on_local_conn_error(struct imap_conn *c, int code, const char *msg, void *arg)
{
    struct slot *s = arg;
    (void)c;
    (void)code;
    if (!s->busy && !s->a->finishing)
        log_warn("Account %s: local server: %s", s->a->cfg->name, msg);
    s->dead = true;
}

static const struct imap_conn_handlers local_handlers = {.on_error = on_local_conn_error};

static void on_local_open(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct slot *s = arg;
    (void)res;
    s->lopening = false;
    if (st < 0) {
        log_warn("Account %s: cannot connect to the local server: %s", s->a->cfg->name,
                 imap_conn_error(c) ? imap_conn_error(c) : err_str(st));
        /* the slot goes, both halves: maybe_open_extra may replace it */
        s->dead = true;
        imap_conn_close(&s->lconn);
        imap_conn_close(&s->conn);
        if (st == OIMAP_EAUTH || st == OIMAP_ECERT || st == OIMAP_ENOTLS)
            s->a->reconnects = MAX_RECONNECTS(s->a);
    } else {
        pump(s);
    }
    maybe_open_extra(s->a);
    account_maybe_done(s->a);
}

/* The slot's local connection is open; if not, it is being opened. */
static bool local_ready(struct slot *s)
{
    if (s->lconn || s->lopening)
        return s->lconn && !s->lopening;
    struct acct *a = s->a;
    s->lopening = true;
    if (imap_conn_open(a->run->loop, a->licfg, &local_handlers, on_local_open, s, &s->lconn) < 0) {
        s->lopening = false;
        s->dead = true;
        imap_conn_close(&s->conn);
    }
    return false;
}

static int start_imap_job(struct slot *s, struct fpair *p, const struct sync_folder_job *base)
{
    struct acct *a = s->a;
    int r = p->lname ? 0
                     : local_imap_name(p->local, a->ldelim, a->cfg->local->reference,
                                       a->cfg->utf8foldernames, &p->lname);
    if (r == OIMAP_ENAME)
        log_error("Account %s: folder %s cannot be named on the local server (its delimiter is "
                  "'%c')",
                  a->cfg->name, p->local, a->ldelim ? a->ldelim : '-');
    if (r < 0)
        return r;
    struct sync_imap_job job = {.base = *base, .near_conn = s->lconn, .near_name = p->lname};
    job.base.hooks = NULL;
    return sync_imap_folder(&job, on_folder_done, s);
}

static void pump(struct slot *s)
{
    struct acct *a = s->a;

    while (!s->dead && s->conn && !s->busy && a->q_head < a->n_queue && !a->run->stopping) {
        if (a->licfg && !local_ready(s))
            return; /* on_local_open pumps again */
        size_t i = a->queue[a->q_head++];
        struct fpair *p = &a->pairs[i];
        struct sync_folder_job job;
        fill_job(a, p, &job);
        job.conn = s->conn;
        job.hooks = &s->hooks;
        log_event("syncingfolder", a->cfg->name, NULL);
        LOG_DEBUG(LOGC_SYNC, "Account %s: folder %s <-> %s", a->cfg->name, p->remote, p->local);
        s->busy = true;
        s->pair = i;
        int r = a->licfg ? start_imap_job(s, p, &job) : sync_folder(&job, on_folder_done, s);
        if (r < 0) {
            s->busy = false;
            p->done = p->failed = true;
            a->folders_failed++;
            log_error("Account %s: folder %s: %s", a->cfg->name, p->remote, err_str(r));
        }
    }
}

static void pump_all(struct acct *a)
{
    for (size_t i = 0; i < a->n_slots; i++)
        if (a->slots[i].conn && !a->slots[i].opening)
            pump(&a->slots[i]);
    maybe_open_extra(a);
}

/* Open s's connection: with holdconnectionopen a held one may come back
 * (then s->conn is set only when on_open runs), else a new one. */
static int slot_open(struct slot *s, const struct imap_conn_handlers *h, imap_done_cb on_open)
{
    struct acct *a = s->a;
    if (a->hold)
        return conn_cache_open(a->run->opts->conns, a->cfg->name, a->icfg, h, on_open, s, &s->conn);
    return imap_conn_open(a->run->loop, a->icfg, h, on_open, s, &s->conn);
}

static void on_extra_conn_error(struct imap_conn *c, int code, const char *msg, void *arg)
{
    struct slot *s = arg;
    (void)c;
    (void)code;
    if (!s->busy)
        log_warn("Account %s: %s", s->a->cfg->name, msg);
    s->dead = true;
}

/* VANISHED (EARLIER) of a CHANGEDSINCE listing: to the job on this slot. */
static void on_slot_vanished(struct imap_conn *c, const char *set, size_t len, bool earlier,
                             void *arg)
{
    struct slot *s = arg;
    (void)c;
    if (s->hooks.on_vanished)
        s->hooks.on_vanished(s->hooks.arg, set, len, earlier);
}

static const struct imap_conn_handlers slot_handlers = {.on_error = on_extra_conn_error,
                                                        .on_vanished = on_slot_vanished};

static void on_extra_open(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct slot *s = arg;
    (void)res;
    s->conn = c; /* a held connection is the slot's only from here (conn_cache.h) */
    s->opening = false;
    if (st < 0) {
        s->dead = true;
        imap_conn_close(&s->conn);
        /* A refused login is not tried again (the server may lock the
         * account); other failures may be, within the budget. */
        if (st == OIMAP_EAUTH || st == OIMAP_ECERT || st == OIMAP_ENOTLS)
            s->a->reconnects = MAX_RECONNECTS(s->a);
    } else {
        pump(s);
    }
    maybe_open_extra(s->a);
    account_maybe_done(s->a);
}

/* Open one more connection (up to maxconnections) for each folder that
 * waits beyond the connections free or being opened. */
static void maybe_open_extra(struct acct *a)
{
    if (a->finishing || a->run->stopping)
        return;
    size_t want = (size_t)(a->cfg->remote->maxconnections > 0 ? a->cfg->remote->maxconnections : 1);
    if (a->licfg && (size_t)a->cfg->local->maxconnections < want) /* the local server's limit */
        want = a->cfg->local->maxconnections > 0 ? (size_t)a->cfg->local->maxconnections : 1;
    if (a->run->opts->single)
        want = 1;
    size_t waiting = a->n_queue - a->q_head, avail = 0;
    for (size_t i = 0; i < a->n_slots; i++)
        if ((a->slots[i].conn || a->slots[i].opening) && !a->slots[i].dead && !a->slots[i].busy)
            avail++;
    for (size_t i = 0; i < want && i < a->n_slots && waiting > avail; i++) {
        struct slot *s = &a->slots[i];
        if (s->conn || s->opening)
            continue;
        if (s->dead) {
            /* A connection that died (network, server, a hostile answer)
             * is replaced a few times per run, so one broken folder does
             * not leave the others unsynced. */
            if (a->reconnects >= MAX_RECONNECTS(a))
                continue;
            a->reconnects++;
            s->dead = false;
            log_info("Account %s: reconnecting to the server", a->cfg->name);
        }
        s->a = a;
        s->opening = true;
        if (slot_open(s, &slot_handlers, on_extra_open) < 0) {
            s->opening = false;
            s->dead = true;
            continue;
        }
        avail++;
    }
}

static void start_jobs(struct acct *a)
{
    /* (no check without a connection for an IMAP local side: sync_imap.h) */
    for (size_t i = 0; !a->licfg && i < a->n_pairs; i++)
        for (size_t k = 0; k < a->n_rstat; k++)
            if (strcmp(a->rstat[k].name, a->pairs[i].remote) == 0) {
                a->pairs[i].rs = a->rstat[k].rs;
                a->pairs[i].have_rs = true;
                break;
            }
    start_checks(a);
    pump_all(a);
    account_maybe_done(a);
}

struct create_ctx {
    struct acct *a;
    size_t pair;
};

static void creations_done(struct acct *a);

/* subscribedonly: a folder oimap created is subscribed to, or the next
 * sync would leave it out (offlineimap creates it and never syncs it). */
static void on_subscribed(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct create_ctx *cc = arg;
    struct acct *a = cc->a;
    (void)c;
    if (st < 0)
        log_warn("Account %s: cannot subscribe to folder %s: %s", a->cfg->name,
                 a->pairs[cc->pair].remote, res && res->text ? res->text : err_str(st));
    free(cc);
    a->n_creating--;
    creations_done(a);
}

static void on_created(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct create_ctx *cc = arg;
    struct acct *a = cc->a;
    struct fpair *p = &a->pairs[cc->pair];
    if (st < 0 && !(res && res->code == IMAP_CODE_ALREADYEXISTS)) {
        p->done = p->failed = true;
        a->folders_failed++;
        log_error("Account %s: cannot create folder %s on the server: %s", a->cfg->name, p->remote,
                  res && res->text ? res->text : err_str(st));
    } else {
        log_info("Account %s: created folder %s on the server", a->cfg->name, p->remote);
        if (a->cfg->remote->subscribedonly &&
            imap_conn_subscribe(c, p->remote, on_subscribed, cc) == 0)
            return;
    }
    free(cc);
    a->n_creating--;
    creations_done(a);
}

static void creations_done(struct acct *a)
{
    if (a->n_creating == 0) {
        /* Failed creations are skipped by moving them out of the job list. */
        size_t w = 0;
        for (size_t i = 0; i < a->n_pairs; i++) {
            if (a->pairs[i].failed) {
                free(a->pairs[i].remote);
                free(a->pairs[i].local);
                free(a->pairs[i].fmd5_name);
                free(a->pairs[i].ignore);
                continue;
            }
            a->pairs[w++] = a->pairs[i];
        }
        a->n_pairs = w;
        start_jobs(a);
    }
}

static int cmp_uid(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

/* copy_ignore_eval for the folder listed as view: offlineimap calls it with
 * the folder's visible name (after nametrans, server delimiter) and takes a
 * list of UIDs or None.  The UIDs go into p, sorted.  Returns 0, or <0
 * after logging (the folder is then not synced: the user asked for those
 * messages to stay on the server). */
static int pair_copy_ignore(struct acct *a, struct fpair *p, const char *view)
{
    if (!a->copy_ignore)
        return 0;
    char *vis = folder_trans_apply(a->rtrans, view);
    struct pyval v;
    int r = vis ? pyexpr_call1(a->copy_ignore, vis, &v) : -ENOMEM;
    free(vis);
    if (r < 0) {
        acct_fail(a, "folder %s not synced: %s", p->remote,
                  r == -ENOMEM ? "out of memory" : pyexpr_errmsg(a->copy_ignore));
        return r;
    }
    if (v.type == PYV_NONE)
        return 0;
    bool list = v.type == PYV_LIST || v.type == PYV_TUPLE;
    for (size_t i = 0; list && i < v.u.seq.n; i++)
        list = v.u.seq.v[i].type == PYV_INT;
    if (!list) {
        acct_fail(a, "folder %s not synced: %s: expected a list of UIDs or None", p->remote,
                  pyexpr_where(a->copy_ignore));
        return OIMAP_ECONFIG;
    }
    if (!(p->ignore = calloc(v.u.seq.n + 1, sizeof *p->ignore)))
        return -ENOMEM;
    for (size_t i = 0; i < v.u.seq.n; i++)
        if (v.u.seq.v[i].u.i > 0 && v.u.seq.v[i].u.i <= UINT32_MAX)
            p->ignore[p->n_ignore++] = (uint32_t)v.u.seq.v[i].u.i;
    qsort(p->ignore, p->n_ignore, sizeof *p->ignore, cmp_uid);
    LOG_DEBUG(LOGC_SYNC, "Account %s: folder %s: %zu UIDs in copy_ignore_eval", a->cfg->name,
              p->remote, p->n_ignore);
    return 0;
}

static void drop_last_pair(struct acct *a)
{
    struct fpair *p = &a->pairs[--a->n_pairs];
    free(p->remote);
    free(p->local);
    free(p->fmd5_name);
    free(p->ignore);
}

static void plan_folders(struct acct *a, struct repo_maildir_folder_list *locals)
{
    const bool dry = a->run->opts->dry_run;

    for (size_t i = 0; i < a->n_rnames; i++) {
        const char *r = a->rnames[i];
        if (!wanted_remote(a, r) || !subscribed(a, r))
            continue;
        char *local = remote_to_local(a, r);
        char *ru = local ? view_to_utf8(a, r) : NULL;
        size_t before = a->n_pairs;
        if (local && (!ru || add_pair(a, ru, local, false) < 0))
            acct_fail(a, "out of memory");
        else if (a->n_pairs > before && pair_copy_ignore(a, &a->pairs[before], r) < 0)
            drop_last_pair(a);
        free(ru);
        free(local);
    }
    /* Folders only on the local side: create them on the server when the
     * remote repository allows it, unless the status store says this pair
     * existed before (then the server lost it, and recreating it would look
     * to the next sync like a folder emptied on purpose). */
    for (size_t i = 0; locals && i < locals->n; i++) {
        const char *l = locals->v[i].name, *disk = locals->v[i].local;
        bool paired = find_pair_local(a, l) ||
                      (disk && find_pair_disk(a, disk, strpbrk(l, local_sep(a)) != NULL));
        if (!*l || paired || !folder_filter_match(a->lfilter, l))
            continue;
        char *view = local_to_remote(a, l, locals->v[i].local);
        if (!view)
            continue;
        if (!wanted_remote(a, view)) {
            free(view);
            continue;
        }
        if (!subscribed(a, view) && name_in(a->rnames, a->n_rnames, view)) {
            /* on the server, not subscribed to: left alone, not created */
            LOG_DEBUG(LOGC_SYNC, "Account %s: local folder %s: %s is not subscribed to",
                      a->cfg->name, l, view);
            free(view);
            continue;
        }
        /* offlineimap's check before it creates a folder on the server: the
         * remote nametrans must bring the new name back to this folder, or
         * each sync would create one more folder on each side. */
        char *back = remote_to_local(a, view);
        bool loops = !back || strcmp(back, l) != 0;
        char *remote = view_to_utf8(a, view);
        free(view);
        if (!remote) {
            free(back);
            acct_fail(a, "out of memory");
            continue;
        }
        struct status_folder sf;
        if (status_folder_lookup(a->status, l, remote, &sf) == 0) {
            log_warn("Account %s: folder %s is gone from the server; the local copy %s is "
                     "kept and not synced (delete it locally, or recreate it on the server)",
                     a->cfg->name, remote, l);
            a->total.held_back++;
        } else if (!a->cfg->remote->createfolders || a->cfg->remote->readonly) {
            LOG_DEBUG(LOGC_SYNC,
                      "Account %s: local folder %s not on the server (createfolders "
                      "off)",
                      a->cfg->name, l);
        } else if (loops) {
            acct_fail(a,
                      "local folder %s would be created on the server as %s, which the remote "
                      "nametrans maps to local folder %s: not created (make the two nametrans "
                      "undo each other, or filter the folder out)",
                      l, remote, back ? back : "(none)");
        } else if (add_pair(a, remote, l, true) < 0) {
            acct_fail(a, "out of memory");
        }
        free(back);
        free(remote);
    }
    qsort(a->pairs, a->n_pairs, sizeof *a->pairs, cmp_pair);
    apply_foldersort(a);

    for (size_t i = 0; i < a->n_pairs; i++) {
        struct fpair *p = &a->pairs[i];
        if (!p->create_remote)
            continue;
        if (dry) {
            log_info("Account %s: would create folder %s on the server", a->cfg->name, p->remote);
            continue;
        }
        struct create_ctx *cc = malloc(sizeof *cc);
        if (!cc)
            continue;
        *cc = (struct create_ctx){a, i};
        if (imap_conn_create(a->slots[0].conn, p->remote, on_created, cc) == 0)
            a->n_creating++;
        else
            free(cc);
    }
    if (dry) {
        /* In a dry run a folder that does not exist on the server yet cannot be
         * selected: report it and leave it out. */
        size_t w = 0;
        for (size_t i = 0; i < a->n_pairs; i++) {
            if (a->pairs[i].create_remote) {
                free(a->pairs[i].remote);
                free(a->pairs[i].local);
                free(a->pairs[i].fmd5_name);
                free(a->pairs[i].ignore);
                continue;
            }
            a->pairs[w++] = a->pairs[i];
        }
        a->n_pairs = w;
    }
    if (a->n_creating == 0)
        start_jobs(a);
}

static void on_atimes_saved(struct maildir_atimes *t, void *arg)
{
    struct acct *a = arg;
    if (!t)
        log_warn("Account %s: restoreatime: cannot record the folders' access times (out of "
                 "memory)",
                 a->cfg->name);
    a->atimes = t;
    plan_folders(a, a->atime_list);
    repo_maildir_folder_list_free(&a->atime_list);
}

/* restoreatime: record the atimes of every local folder's new/ and cur/
 * before the sync reads them (acct_finish puts them back).  Returns true
 * when plan_folders runs later, from on_atimes_saved. */
static bool save_atimes(struct acct *a, struct repo_maildir_folder_list *list)
{
    if (!a->cfg->local->restoreatime || !list || !list->n)
        return false;
    const char **dirs = calloc(list->n, sizeof *dirs);
    size_t n = 0;
    for (size_t i = 0; dirs && i < list->n; i++) {
        size_t len = strlen(a->cfg->local->localfolders) + strlen(list->v[i].local) + 2;
        char *d = malloc(len);
        if (!d)
            break;
        snprintf(d, len, "%s/%s", a->cfg->local->localfolders, list->v[i].local);
        dirs[n++] = d;
    }
    bool later =
        dirs && n == list->n && maildir_atimes_save(a->run->loop, dirs, n, on_atimes_saved, a) == 0;
    for (size_t i = 0; i < n; i++)
        free((char *)dirs[i]);
    free(dirs);
    if (later)
        a->atime_list = list;
    else
        log_warn("Account %s: restoreatime: cannot record the folders' access times", a->cfg->name);
    return later;
}

static void on_local_list(int st, struct repo_maildir_folder_list *list, void *arg)
{
    struct acct *a = arg;
    if (st < 0 && st != -ENOENT) {
        acct_fail(a, "cannot list local folders in %s: %s", a->cfg->local->localfolders,
                  err_str(st));
        acct_finish(a);
        return;
    }
    if (st >= 0 && save_atimes(a, list))
        return;
    plan_folders(a, st < 0 ? NULL : list);
    if (list)
        repo_maildir_folder_list_free(&list);
}

static void on_list_entry(struct imap_conn *c, const struct imap_list_entry *e, void *arg)
{
    struct acct *a = arg;
    (void)c;
    if (e->delim && !a->delim)
        a->delim = e->delim;
    if (!*e->name || (e->flags & (IMAP_LIST_NOSELECT | IMAP_LIST_NONEXISTENT)))
        return;
    if (!e->decoded) {
        log_warn("Account %s: folder name %s is not valid modified UTF-7; skipped", a->cfg->name,
                 e->raw);
        return;
    }
    char **n = realloc(a->rnames, (a->n_rnames + 1) * sizeof *n);
    if (!n)
        return;
    a->rnames = n;
    const char *view = a->cfg->utf8foldernames ? e->name : e->raw;
    if ((a->rnames[a->n_rnames] = strdup(view)) != NULL)
        a->n_rnames++;
}

/* LIST-STATUS: keep the state of each folder that has all we compare. */
static void on_list_status(struct imap_conn *c, const struct imap_status_entry *e, void *arg)
{
    struct acct *a = arg;
    (void)c;
    const unsigned need = IMAP_STATUS_MESSAGES | IMAP_STATUS_UIDNEXT | IMAP_STATUS_UIDVALIDITY |
                          IMAP_STATUS_HIGHESTMODSEQ;
    if ((e->present & need) != need || !e->decoded || !e->highestmodseq)
        return;
    struct rstatus *n = realloc(a->rstat, (a->n_rstat + 1) * sizeof *n);
    if (!n)
        return;
    a->rstat = n;
    struct rstatus *r = &a->rstat[a->n_rstat];
    if (!(r->name = strdup(e->name)))
        return;
    r->rs = (struct sync_remote_status){
        .uidvalidity = e->uidvalidity,
        .uidnext = e->uidnext,
        .messages = e->messages,
        .highestmodseq = e->highestmodseq,
    };
    a->n_rstat++;
}

/* IMAP local repository: the folder pairs once both LISTs are in. */
static void local_plan_folders(struct acct *a)
{
    if (a->rlisted && a->llisted && !a->finishing) {
        plan_folders(a, a->llist);
        repo_maildir_folder_list_free(&a->llist);
    }
}

static void on_local_names(int st, struct repo_maildir_folder_list *list, char delim,
                           const char *why, void *arg)
{
    struct acct *a = arg;
    if (st < 0) {
        acct_fail(a, "LIST on the local server failed: %s", why);
        acct_finish(a);
        return;
    }
    a->llist = list;
    a->ldelim = delim;
    a->llisted = true;
    local_plan_folders(a);
}

static void on_local_first_open(struct imap_conn *c, int st, const struct imap_result *res,
                                void *arg)
{
    struct slot *s = arg;
    struct acct *a = s->a;
    (void)res;
    s->lopening = false;
    if (st >= 0)
        st = local_imap_list(c, a->cfg->local->reference, a->cfg->utf8foldernames, a->cfg->name,
                             on_local_names, a);
    if (st < 0) {
        acct_fail(a, "local repository %s: %s", a->cfg->local->name,
                  imap_conn_error(c) ? imap_conn_error(c) : err_str(st));
        acct_finish(a);
    }
}

/* IMAP local repository: its settings, and the first slot's local
 * connection, which lists its folders while the remote one lists its own. */
static int local_open(struct acct *a, char *err, size_t errlen)
{
    int r = imap_conn_config_new(a->cfg->local, &a->licfg, err, errlen);
    if (r < 0)
        return r;
    struct slot *s = &a->slots[0];
    s->lopening = true;
    r = imap_conn_open(a->run->loop, a->licfg, &local_handlers, on_local_first_open, s, &s->lconn);
    if (r < 0) {
        s->lopening = false;
        snprintf(err, errlen, "cannot connect to %s: %s", a->cfg->local->remotehost, err_str(r));
    }
    return r;
}

/* subscribedonly: the LSUB answers, kept as on_list_entry keeps names. */
static void on_lsub_entry(struct imap_conn *c, const struct imap_list_entry *e, void *arg)
{
    struct acct *a = arg;
    (void)c;
    if (!*e->name || !e->decoded || (e->flags & (IMAP_LIST_NOSELECT | IMAP_LIST_NONEXISTENT)))
        return;
    char **n = realloc(a->subs, (a->n_subs + 1) * sizeof *n);
    if (!n)
        return;
    a->subs = n;
    if ((a->subs[a->n_subs] = strdup(a->cfg->utf8foldernames ? e->name : e->raw)) != NULL)
        a->n_subs++;
}

static void on_list_done(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct acct *a = arg;
    if (st < 0) {
        acct_fail(a, "%s failed: %s", a->lsub_sent ? "LSUB" : "LIST",
                  res && res->text && *res->text ? res->text : err_str(st));
        acct_finish(a);
        return;
    }
    if (a->cfg->remote->subscribedonly && !a->lsub_sent) {
        /* After the LIST, not with it: both answers would go to the one
         * listing in flight. */
        a->lsub_sent = true;
        int r = imap_conn_lsub(c, NULL, "*", on_lsub_entry, on_list_done, a);
        if (r < 0) {
            acct_fail(a, "LSUB: %s", err_str(r));
            acct_finish(a);
        }
        return;
    }
    if (a->licfg) {
        a->rlisted = true;
        local_plan_folders(a);
        return;
    }
    int r = repo_maildir_list(a->md, on_local_list, a);
    if (r < 0) {
        acct_fail(a, "cannot list local folders: %s", err_str(r));
        acct_finish(a);
    }
}

static void on_first_conn_error(struct imap_conn *c, int code, const char *msg, void *arg)
{
    struct slot *s = arg;
    (void)c;
    (void)code;
    s->dead = true;
    if (!s->busy && !s->a->failed)
        acct_fail(s->a, "%s", msg);
}

static const struct imap_conn_handlers first_handlers = {.on_error = on_first_conn_error,
                                                         .on_vanished = on_slot_vanished};

static void on_first_open(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct slot *s = arg;
    struct acct *a = s->a;
    (void)res;
    s->conn = c; /* a held connection is the slot's only from here (conn_cache.h) */
    s->opening = false;
    if (st < 0) {
        if (!a->failed)
            acct_fail(a, "%s", imap_conn_error(c) ? imap_conn_error(c) : err_str(st));
        acct_finish(a);
        return;
    }
    int r = imap_conn_list_status(c, NULL, "*", on_list_entry, on_list_status, on_list_done, a);
    if (r < 0) {
        acct_fail(a, "LIST: %s", err_str(r));
        acct_finish(a);
    }
}

static void acct_open(struct acct *a)
{
    const struct config *cfg = a->run->cfg;
    const struct config_account *ac = a->cfg;
    const bool dry = a->run->opts->dry_run;
    char err[512] = "";
    int r;

    if (ac->remote->type != CONFIG_REPO_IMAP && ac->remote->type != CONFIG_REPO_GMAIL) {
        acct_fail(a,
                  "remote repository %s must be of type IMAP (this version syncs IMAP with "
                  "a Maildir)",
                  ac->remote->name);
        goto fail;
    }
    r = status_open(cfg->general.metadata, ac->name, dry, &a->status);
    if (r == OIMAP_ELOCKED) {
        acct_fail(a,
                  "another oimap is syncing this account (status store in %s/oimap is "
                  "locked)",
                  cfg->general.metadata);
        goto fail;
    } else if (r < 0) {
        acct_fail(a, "cannot open the status store in %s: %s", cfg->general.metadata, err_str(r));
        goto fail;
    }
    struct repo_maildir_opts mo = {
        .root = ac->local->localfolders,
        .sep = ac->local->sep,
        .fsync = cfg->general.fsync,
        .windows_compat = ac->maildir_windows_compatible,
        .no_create = dry,
    };
    if (ac->local->type != CONFIG_REPO_IMAP &&
        (r = repo_maildir_new(a->run->loop, &mo, &a->md)) < 0) {
        acct_fail(a, "local repository %s: %s", ac->local->name, err_str(r));
        goto fail;
    }
    a->hold = a->run->opts->conns && ac->remote->holdconnectionopen;
    if (a->hold)
        r = conn_cache_config(a->run->opts->conns, ac->name, ac->remote, &a->icfg, err, sizeof err);
    else
        r = imap_conn_config_new(ac->remote, &a->icfg, err, sizeof err);
    if (r < 0) {
        acct_fail(a, "%s", err[0] ? err : err_str(r));
        goto fail;
    }
    size_t n_slots = (size_t)(ac->remote->maxconnections > 0 ? ac->remote->maxconnections : 1);
    a->slots = calloc(n_slots, sizeof *a->slots);
    if (!a->slots) {
        acct_fail(a, "out of memory");
        goto fail;
    }
    a->n_slots = n_slots;
    struct slot *s = &a->slots[0];
    s->a = a;
    s->opening = true;
    log_event("connecting", ac->name, NULL);
    r = slot_open(s, &first_handlers, on_first_open);
    if (r < 0) {
        s->opening = false;
        acct_fail(a, "cannot connect to %s: %s", ac->remote->remotehost, err_str(r));
        goto fail;
    }
    if (ac->local->type == CONFIG_REPO_IMAP && (r = local_open(a, err, sizeof err)) < 0) {
        acct_fail(a, "local repository %s: %s", ac->local->name, err[0] ? err : err_str(r));
        goto fail;
    }
    return;
fail:
    acct_finish(a);
}

static int compile_folder_options(struct acct *a)
{
    const struct config *cfg = a->run->cfg;
    const struct config_repo *rr = a->cfg->remote, *lr = a->cfg->local;
    char where[512];
    int r;

#define WHERE(repo, opt, e)                                                                        \
    snprintf(where, sizeof where, "%s:%d: [%s] %s", cfg->path, (e).line, (repo)->section, opt)
    WHERE(rr, "folderfilter", rr->folderfilter);
    if ((r = folder_filter_new(&rr->folderfilter, where, &a->rfilter)) < 0)
        return r;
    WHERE(lr, "folderfilter", lr->folderfilter);
    if ((r = folder_filter_new(&lr->folderfilter, where, &a->lfilter)) < 0)
        return r;
    WHERE(rr, "nametrans", rr->nametrans);
    if ((r = folder_trans_new(&rr->nametrans, where, &a->rtrans)) < 0)
        return r;
    WHERE(rr, "foldersort", rr->foldersort);
    if ((r = folder_sort_new(&rr->foldersort, where, &a->sort)) < 0)
        return r;
    WHERE(lr, "nametrans", lr->nametrans);
    if ((r = folder_trans_new(&lr->nametrans, where, &a->ltrans)) < 0)
        return r;
    if (rr->folderincludes.text) {
        int n = folder_parse_list(rr->folderincludes.text, &a->includes);
        if (n < 0) {
            WHERE(rr, "folderincludes", rr->folderincludes);
            log_error("%s: expected a list of folder names, like ['Archive', 'Lists/dev']", where);
            return n;
        }
        a->n_includes = (size_t)n;
    }
    if (rr->copy_ignore_eval.text) {
        WHERE(rr, "copy_ignore_eval", rr->copy_ignore_eval);
        if ((r = pyexpr_compile(rr->copy_ignore_eval.text, where, false, NULL, 0,
                                &a->copy_ignore)) < 0)
            return r;
        if (!pyexpr_accepts(a->copy_ignore, 1)) {
            log_error("%s: expected a function of one folder name, like lambda f: "
                      "{'INBOX': [2, 3]}.get(f)",
                      where);
            return OIMAP_ECONFIG;
        }
    }
#undef WHERE
    if (!folder_trans_is_identity(a->rtrans) && folder_trans_is_identity(a->ltrans))
        log_warn("Account %s: [%s] has a nametrans but [%s] has none: folders created locally "
                 "will be created on the server under their local names",
                 a->cfg->name, rr->section, lr->section);
    if (a->run->opts->folders &&
        (r = folder_filter_new_list(a->run->opts->folders, &a->cli_filter)) < 0)
        return r;
    return 0;
}

static void acct_start(struct run *run, const struct config_account *cfg)
{
    struct acct *a = calloc(1, sizeof *a);
    if (!a) {
        run->failures++;
        return;
    }
    a->run = run;
    a->cfg = cfg;
    a->next_in_run = run->accts;
    run->accts = a;
    run->running++;
    clock_gettime(CLOCK_MONOTONIC, &a->start);
    log_event("acct", cfg->name, NULL);
    log_info("Account %s: syncing%s", cfg->name, run->opts->dry_run ? " (dry run)" : "");
    if (compile_folder_options(a) < 0) {
        a->failed = true;
        acct_finish(a);
        return;
    }
    run_hook(a, cfg->presynchook, acct_open);
}

/* ---- the end of an account -------------------------------------------------- */

static void acct_free(struct acct *a)
{
    struct run *run = a->run;
    if (a->failed || a->folders_failed)
        run->failures++;
    for (size_t i = 0; i < a->n_pairs; i++) {
        free(a->pairs[i].remote);
        free(a->pairs[i].local);
        free(a->pairs[i].lname);
        free(a->pairs[i].fmd5_name);
        free(a->pairs[i].ignore);
    }
    free(a->pairs);
    imap_conn_config_free(&a->licfg);
    repo_maildir_folder_list_free(&a->llist);
    for (size_t i = 0; i < a->n_rnames; i++)
        free(a->rnames[i]);
    free(a->rnames);
    for (size_t i = 0; i < a->n_rstat; i++)
        free(a->rstat[i].name);
    free(a->rstat);
    folder_names_free(a->subs, a->n_subs);
    maildir_atimes_free(&a->atimes);
    repo_maildir_folder_list_free(&a->atime_list);
    free(a->queue);
    folder_names_free(a->includes, a->n_includes);
    folder_filter_free(&a->rfilter);
    folder_filter_free(&a->lfilter);
    folder_filter_free(&a->cli_filter);
    folder_trans_free(&a->rtrans);
    folder_trans_free(&a->ltrans);
    folder_sort_free(&a->sort);
    pyexpr_free(&a->copy_ignore);
    free(a->slots);
    if (!a->hold) /* else the cache's (conn_cache_config) */
        imap_conn_config_free(&a->icfg);
    for (struct acct **p = &run->accts; *p; p = &(*p)->next_in_run)
        if (*p == a) {
            *p = a->next_in_run;
            break;
        }
    free(a);
    run->running--;
    run_next(run);
}

static void acct_summary(struct acct *a)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double secs =
        (double)(now.tv_sec - a->start.tv_sec) + (double)(now.tv_nsec - a->start.tv_nsec) / 1e9;
    const struct sync_result *t = &a->total;
    log_info("Account %s: %s%zu folders, %zu downloaded, %zu uploaded, flags changed on %zu "
             "local and %zu remote messages, %zu deleted locally, %zu deleted remotely, %zu "
             "held back, %.1f s",
             a->cfg->name, a->run->opts->dry_run ? "dry run, would do: " : "", a->n_pairs,
             t->downloaded, t->uploaded, t->flags_near, t->flags_far, t->deleted_near,
             t->deleted_far, t->held_back, secs);
    if (a->folders_failed) {
        char names[1024] = "";
        size_t len = 0;
        for (size_t i = 0; i < a->n_pairs && len + 3 < sizeof names; i++)
            if (a->pairs[i].failed)
                len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", len ? ", " : "",
                                        a->pairs[i].remote);
        log_error("Account %s: %zu folder(s) failed: %s", a->cfg->name, a->folders_failed, names);
    }
    log_event("acctdone", a->cfg->name, NULL);
}

static void after_post_hook(struct acct *a)
{
    acct_summary(a);
    acct_free(a);
}

/* [mbnames] and newmail_hook (aftersync.h), then the postsynchook. */
static void on_aftersync_done(void *arg)
{
    struct acct *a = arg;
    run_hook(a, a->failed ? NULL : a->cfg->postsynchook, after_post_hook);
}

static void acct_aftersync(struct acct *a)
{
    const char **locals = calloc(a->n_pairs + 1, sizeof *locals);
    size_t inbox_new = 0;
    for (size_t i = 0; locals && i < a->n_pairs; i++) {
        locals[i] = a->pairs[i].local;
        if (strcmp(a->pairs[i].remote, "INBOX") == 0)
            inbox_new += a->pairs[i].res.downloaded_unseen;
    }
    struct aftersync_info in = {
        .loop = a->run->loop,
        .cfg = a->run->cfg,
        .acct = a->cfg,
        .folders = locals,
        .n_folders = locals ? a->n_pairs : 0,
        .partial = a->run->opts->folders != NULL,
        .dry_run = a->run->opts->dry_run,
        .failed = a->failed || !locals,
        .inbox_new = inbox_new,
    };
    int r = aftersync_run(&in, on_aftersync_done, a);
    free(locals);
    if (r != 0) /* nothing to do, or no memory for it */
        on_aftersync_done(a);
}

static void on_atimes_restored(void *arg)
{
    acct_aftersync(arg);
}

static void acct_finish(struct acct *a)
{
    if (a->finishing)
        return;
    a->finishing = true;
    for (size_t i = 0; i < a->n_slots; i++)
        if (a->hold && !a->slots[i].dead)
            conn_cache_release(a->run->opts->conns, a->cfg->name, &a->slots[i].conn);
        else
            imap_conn_close(&a->slots[i].conn);
    for (size_t i = 0; i < a->n_slots; i++)
        imap_conn_close(&a->slots[i].lconn);
    if (a->md)
        repo_maildir_free(&a->md);
    if (a->status)
        status_close(&a->status);
    /* restoreatime: once every folder job is over, none reads new/ or cur/ */
    if (a->atimes && maildir_atimes_restore(a->run->loop, a->atimes, on_atimes_restored, a) == 0) {
        a->atimes = NULL;
        return;
    }
    a->atimes = NULL; /* (freed by a failed restore) */
    acct_aftersync(a);
}

/* Start accounts while there is room; report the end once all are done. */
static void run_next(struct run *run)
{
    size_t n = run->only ? 1 : run->cfg->n_accounts;
    if (run->starting)
        return; /* acct_start() can end an account at once; avoid recursion */
    run->starting = true;
    while (!run->stopping && run->running < run->max_running && run->next < n) {
        const struct config_account *ac = run->only ? run->only : &run->cfg->accounts[run->next];
        run->next++;
        acct_start(run, ac);
    }
    run->starting = false;
    if (run->running == 0 && (run->stopping || run->next >= n)) {
        account_done_cb done = run->done;
        void *arg = run->done_arg;
        int failures = run->failures;
        free(run);
        if (done)
            done(failures, arg);
    }
}

int account_run_start(uv_loop_t *loop, const struct config *cfg,
                      const struct account_run_opts *opts, const struct config_account *only,
                      account_done_cb done, void *arg, struct account_run **run_r)
{
    struct run *run = calloc(1, sizeof *run);
    if (!run)
        return -ENOMEM;
    run->loop = loop;
    run->cfg = cfg;
    run->opts_copy = *opts;
    run->opts = &run->opts_copy;
    run->only = only;
    run->done = done;
    run->done_arg = arg;
    run->max_running =
        opts->single || cfg->general.maxsyncaccounts < 1 ? 1 : (size_t)cfg->general.maxsyncaccounts;
    if (run_r)
        *run_r = (struct account_run *)run;
    run_next(run);
    return 0;
}

void account_run_stop(struct account_run *r)
{
    struct run *run = (struct run *)r;
    run->stopping = true;
}

/* ---- SIGQUIT ----------------------------------------------------------------- */

#define DUMP_MAX_DONE 20 /* folders done with changes listed one per line, at most */

static const char *acct_stage(const struct acct *a)
{
    if (a->finishing)
        return a->hook_running ? "running postsynchook" : "finishing";
    if (a->hook_running)
        return "running presynchook";
    if (!a->n_slots)
        return "opening the status store";
    if (a->slots[0].opening)
        return "connecting";
    if (!a->pairs && !a->n_rnames)
        return "listing folders";
    return a->n_creating ? "creating folders on the server" : "syncing folders";
}

static void dump_slot(const struct acct *a, size_t i)
{
    const struct slot *s = &a->slots[i];
    if (!s->conn) {
        log_warn("  connection %zu: %s", i + 1,
                 s->opening ? "being opened (a held one being checked)"
                 : s->dead  ? "dead"
                            : "not open");
        return;
    }
    struct imap_conn_stats st;
    imap_conn_get_stats(s->conn, &st);
    log_warn("  connection %zu: %s, %s%s; %s%s; %u command(s) in flight%s%s, %u waiting, %zu "
             "bytes queued",
             i + 1, imap_conn_peer(s->conn), imap_conn_state_name(imap_conn_state(s->conn)),
             s->dead ? " (dead)" : "", s->busy ? "syncing folder " : "no folder job",
             s->busy ? a->pairs[s->pair].remote : "", st.in_flight, st.oldest[0] ? ", oldest " : "",
             st.oldest, st.waiting, st.bytes_queued);
    if (s->lconn) {
        imap_conn_get_stats(s->lconn, &st);
        log_warn("  connection %zu, local side: %s, %s; %u command(s) in flight%s%s, %u waiting, "
                 "%zu bytes queued",
                 i + 1, imap_conn_peer(s->lconn), imap_conn_state_name(imap_conn_state(s->lconn)),
                 st.in_flight, st.oldest[0] ? ", oldest " : "", st.oldest, st.waiting,
                 st.bytes_queued);
    }
}

static bool in_queue(const struct acct *a, size_t pair)
{
    for (size_t k = a->q_head; k < a->n_queue; k++)
        if (a->queue[k] == pair)
            return true;
    return false;
}

static void dump_pair(const struct acct *a, size_t i, size_t *listed_done)
{
    const struct fpair *p = &a->pairs[i];
    const struct sync_result *r = &p->res;
    if (p->done) {
        bool changed = r->downloaded || r->uploaded || r->flags_far || r->flags_near ||
                       r->deleted_far || r->deleted_near || r->held_back;
        if (p->failed || (changed && (*listed_done)++ < DUMP_MAX_DONE))
            log_warn("  folder %s: %s; %zu downloaded, %zu uploaded, flags %zu/%zu, deleted "
                     "%zu/%zu (local/remote), %zu held back",
                     p->remote, p->failed ? "failed" : "done", r->downloaded, r->uploaded,
                     r->flags_near, r->flags_far, r->deleted_near, r->deleted_far, r->held_back);
        return;
    }
    for (size_t k = 0; k < a->n_slots; k++)
        if (a->slots[k].busy && a->slots[k].pair == i) {
            log_warn("  folder %s: syncing on connection %zu", p->remote, k + 1);
            return;
        }
    if (in_queue(a, i))
        log_warn("  folder %s: waiting for a connection", p->remote);
    else if (i < a->next_check)
        log_warn("  folder %s: checking against the status store (no connection)", p->remote);
}

static void acct_dump(const struct acct *a)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    size_t done = 0, failed = 0, listed = 0;
    for (size_t i = 0; i < a->n_pairs; i++) {
        done += a->pairs[i].done;
        failed += a->pairs[i].failed;
    }
    log_warn("  sync of Account %s: %s for %ld s%s; %zu folder(s): %zu done (%zu failed), %zu "
             "checking, %zu waiting for a connection, %zu not started; %u reconnect(s)",
             a->cfg->name, acct_stage(a), (long)(now.tv_sec - a->start.tv_sec),
             a->run->stopping ? " (stopping)" : "", a->n_pairs, done, failed, a->n_checking,
             a->n_queue - a->q_head, a->n_pairs - a->next_check, a->reconnects);
    for (size_t i = 0; i < a->n_slots; i++)
        dump_slot(a, i);
    for (size_t i = 0; i < a->n_pairs; i++)
        dump_pair(a, i, &listed);
    if (listed > DUMP_MAX_DONE)
        log_warn("  ... and %zu more folder(s) done with changes", listed - DUMP_MAX_DONE);
}

void account_run_dump(const struct account_run *r)
{
    const struct run *run = (const struct run *)r;
    for (const struct acct *a = run->accts; a; a = a->next_in_run)
        acct_dump(a);
}

static void on_all_done(int failures, void *arg)
{
    *(int *)arg = failures;
}

int account_run_all(uv_loop_t *loop, const struct config *cfg, const struct account_run_opts *opts)
{
    int failures = -1;
    int r = account_run_start(loop, cfg, opts, NULL, on_all_done, &failures, NULL);
    if (r < 0)
        return r;
    uv_run(loop, UV_RUN_DEFAULT);
    return failures ? 1 : 0;
}
