/* sched.c - the daemon: autorefresh, IDLE push, signals, systemd (see
 * scheduler.h).
 *
 * Every account is a small state: is a sync running (account_run), what is
 * wanted next (a full sync, or some folders), its autorefresh timer, its
 * debounce timer and its IDLE watchers.  kick() starts what is wanted
 * wherever an account is free, within maxsyncaccounts; the end of a sync
 * kicks again, which is how a request made during a sync ("dirty") runs
 * right after it.
 */
#include "scheduler.h"
#include "account.h"
#include "config.h"
#include "conn_cache.h"
#include "err.h"
#include "folder.h"
#include "idle.h"
#include "imap_conn.h"
#include "log.h"
#include "sdnotify.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define FORCE_EXIT_MS 9500u         /* "exit within 10 seconds" of SIGTERM */
#define SUSPEND_MIN_NS 5000000000LL /* boottime ahead of monotonic by this: we slept */

enum mode { M_RUN, M_DRAIN, M_STOP };

struct sched;

struct sacct {
    struct sched *s;
    const struct config_account *cfg;

    struct account_run *run; /* while running */
    bool running, run_full;
    char *run_folders; /* -f list of the running folder sync */
    uint64_t run_start;

    bool want_full;
    char **want; /* folders wanted (remote names), merged */
    size_t n_want;

    bool first_done, last_failed;
    unsigned quicknum, n_runs;
    uint64_t refresh_ms; /* autorefresh; 0: none */
    uv_timer_t refresh, debounce;

    struct imap_conn_config *icfg; /* for the IDLE connections */
    char **idle_names;
    size_t n_idle;
    struct idle_watch *watch; /* all of idle_names (idle.h: NOTIFY or one IDLE each) */
};

struct sched {
    uv_loop_t *loop;
    const struct config *cfg;
    struct account_run_opts base;
    struct sacct *accts;
    size_t n;
    size_t running, max_running;
    enum mode mode;
    bool ready_sent, stopping_sent, finished, kicking, kick_again;
    const char *stop_reason;

    uv_signal_t sig[6];
    size_t n_sig;
    uv_timer_t watchdog, force;
    int tfd;
    uv_poll_t clock_poll;
    bool clock_poll_on;
    int64_t sleep_ref;        /* CLOCK_BOOTTIME - CLOCK_MONOTONIC when last checked */
    struct conn_cache *conns; /* holdconnectionopen (conn_cache.h) */
};

static void kick(struct sched *s);
static void maybe_finish(struct sched *s);
static void update_status(struct sched *s);
static void check_clock(struct sched *s);

/* ---- small helpers ---------------------------------------------------------- */

static int64_t ts_ns(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int64_t boot_minus_mono(void)
{
    return ts_ns(CLOCK_BOOTTIME) - ts_ns(CLOCK_MONOTONIC);
}

static void fmt_delay(char *buf, size_t len, uint64_t ms)
{
    if (ms >= 120000)
        snprintf(buf, len, "%" PRIu64 " min", (ms + 30000) / 60000);
    else
        snprintf(buf, len, "%" PRIu64 " s", (ms + 999) / 1000);
}

static bool want_has(const struct sacct *a, const char *name)
{
    for (size_t i = 0; i < a->n_want; i++)
        if (strcmp(a->want[i], name) == 0)
            return true;
    return false;
}

static void want_clear(struct sacct *a)
{
    for (size_t i = 0; i < a->n_want; i++)
        free(a->want[i]);
    free(a->want);
    a->want = NULL;
    a->n_want = 0;
}

/* The wanted folders as a -f list.  Folder names with a comma cannot be
 * expressed that way: such a request becomes a full sync instead. */
static char *want_join(const struct sacct *a)
{
    size_t len = 1;
    for (size_t i = 0; i < a->n_want; i++) {
        if (strchr(a->want[i], ','))
            return NULL;
        len += strlen(a->want[i]) + 1;
    }
    char *out = malloc(len), *p = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < a->n_want; i++)
        p += sprintf(p, "%s%s", i ? "," : "", a->want[i]);
    *p = '\0';
    return out;
}

/* offlineimap's quick = N: N quick syncs between two full ones (the first
 * sync full); -1: always quick. */
static bool next_is_quick(struct sacct *a)
{
    int q = a->cfg->quick;
    if (q < 0)
        return true;
    if (q == 0)
        return false;
    if (a->quicknum == 0 || a->quicknum > (unsigned)q) {
        a->quicknum = 1;
        return false;
    }
    a->quicknum++;
    return true;
}

static bool acct_busy_later(const struct sacct *a)
{
    if (a->running || a->want_full || a->n_want || uv_is_active((uv_handle_t *)&a->refresh) ||
        uv_is_active((uv_handle_t *)&a->debounce))
        return true;
    return a->watch && !idle_watch_stopped(a->watch);
}

/* ---- syncs ------------------------------------------------------------------ */

static void start_watchers(struct sacct *a);
static void on_refresh(uv_timer_t *t);

static void on_run_done(int failures, void *arg)
{
    struct sacct *a = arg;
    struct sched *s = a->s;
    uint64_t secs = (uv_now(s->loop) - a->run_start) / 1000;

    a->run = NULL;
    a->running = false;
    s->running--;
    a->last_failed = failures > 0;
    a->n_runs++;
    if (!a->run_full)
        LOG_DEBUG(LOGC_SYNC, "Account %s: folders %s synced (%" PRIu64 " s)", a->cfg->name,
                  a->run_folders ? a->run_folders : "", secs);
    free(a->run_folders);
    a->run_folders = NULL;
    if (a->run_full) {
        bool first = !a->first_done;
        a->first_done = true;
        if (s->mode == M_RUN && a->refresh_ms && !a->want_full)
            uv_timer_start(&a->refresh, on_refresh, a->refresh_ms, 0);
        if (first && s->mode == M_RUN)
            start_watchers(a);
    }
    bool all_first = true;
    for (size_t i = 0; i < s->n; i++)
        all_first &= s->accts[i].first_done;
    if (all_first && !s->ready_sent) {
        s->ready_sent = true;
        sdnotify_send("READY=1");
    }
    check_clock(s);
    kick(s); /* also updates the status line */
    maybe_finish(s);
    /* A sync's buffers are free now; give the pages back so that an idle
     * daemon stays small (glibc keeps freed heap otherwise). */
    if (!s->running)
        malloc_trim(0);
}

static void start_run(struct sacct *a)
{
    struct sched *s = a->s;
    struct account_run_opts ro = s->base;
    bool full = a->want_full;

    if (!full) {
        a->run_folders = want_join(a);
        if (!a->run_folders)
            full = true; /* out of memory, or a name -f cannot carry */
    }
    if (full) {
        ro.quick = s->base.quick || next_is_quick(a);
        uv_timer_stop(&a->refresh);
        a->want_full = false;
    } else {
        ro.folders = a->run_folders;
        ro.idle = true; /* only IDLE asks for some folders */
        LOG_DEBUG(LOGC_SYNC, "Account %s: syncing folders %s (IDLE)", a->cfg->name, a->run_folders);
    }
    want_clear(a); /* a full sync covers them too */
    a->running = true;
    a->run_full = full;
    a->run_start = uv_now(s->loop);
    s->running++;
    /* done may run inside this call (an account that fails at once); it
     * clears a->run after account_run_start() stored it. */
    int r = account_run_start(s->loop, s->cfg, &ro, a->cfg, on_run_done, a, &a->run);
    if (r < 0) {
        log_error("Account %s: cannot start a sync: %s", a->cfg->name, err_str(r));
        a->run = NULL;
        on_run_done(1, a);
    }
}

/* Start every wanted sync that may start now. */
static void kick(struct sched *s)
{
    if (s->kicking) {
        s->kick_again = true;
        return;
    }
    s->kicking = true;
    do {
        s->kick_again = false;
        for (size_t i = 0; i < s->n && s->mode == M_RUN && s->running < s->max_running; i++) {
            struct sacct *a = &s->accts[i];
            if (a->running || uv_is_active((uv_handle_t *)&a->debounce))
                continue;
            if (a->want_full || a->n_want)
                start_run(a);
        }
    } while (s->kick_again);
    s->kicking = false;
    update_status(s);
}

static void request_full(struct sacct *a)
{
    a->want_full = true;
    uv_timer_stop(&a->refresh);
}

static void on_refresh(uv_timer_t *t)
{
    struct sacct *a = t->data;
    check_clock(a->s);
    request_full(a);
    kick(a->s);
}

static void on_debounce(uv_timer_t *t)
{
    struct sacct *a = t->data;
    kick(a->s);
}

static void request_folder(struct sacct *a, const char *folder)
{
    if (!a->want_full && !want_has(a, folder)) {
        char **v = realloc(a->want, (a->n_want + 1) * sizeof *v);
        char *name = strdup(folder);
        if (!v || !name) {
            free(name);
            if (v)
                a->want = v;
            a->want_full = true; /* cannot remember the folder: sync them all */
        } else {
            a->want = v;
            a->want[a->n_want++] = name;
        }
    }
    if (!a->running && !uv_is_active((uv_handle_t *)&a->debounce))
        uv_timer_start(&a->debounce, on_debounce, SCHED_DEBOUNCE_MS, 0);
}

/* ---- IDLE ------------------------------------------------------------------- */

static void on_idle_event(struct idle_watch *w, enum idle_event ev, const char *folder, void *arg)
{
    struct sacct *a = arg;
    struct sched *s = a->s;

    (void)w;
    check_clock(s);
    if (s->mode != M_RUN)
        return;
    switch (ev) {
    case IDLE_EV_UP:
    case IDLE_EV_CHANGED:
        request_folder(a, folder);
        break;
    case IDLE_EV_GAVE_UP:
        update_status(s);
        maybe_finish(s);
        break;
    }
}

static void start_watchers(struct sacct *a)
{
    const struct config_repo *r = a->cfg->remote;
    if (!a->n_idle || !a->icfg)
        return;
    struct idle_watch_opts o = {
        .account = a->cfg->name,
        .folders = (const char *const *)a->idle_names,
        .n_folders = a->n_idle,
        .refresh_s = r->keepalive > 0 ? (unsigned)r->keepalive : 0,
        .socktimeout_s = r->socktimeout > 0 ? (unsigned)r->socktimeout : 0,
    };
    if (idle_watch_new(a->s->loop, a->icfg, &o, on_idle_event, a, &a->watch) < 0) {
        log_error("Account %s: out of memory: IDLE not started", a->cfg->name);
        return;
    }
    log_info("Account %s: watching %zu folder(s) with IDLE", a->cfg->name, a->n_idle);
}

static void stop_watchers(struct sacct *a)
{
    idle_watch_free(&a->watch);
}

/* ---- suspend / resume --------------------------------------------------- */

static void on_resume(struct sched *s, int64_t slept_ns)
{
    log_info("The system was asleep for %" PRId64 " s: reconnecting and syncing",
             (int64_t)(slept_ns / 1000000000LL));
    conn_cache_drop_all(s->conns); /* held connections did not survive the sleep either */
    if (s->mode != M_RUN)
        return;
    for (size_t i = 0; i < s->n; i++) {
        struct sacct *a = &s->accts[i];
        idle_watch_kick(a->watch); /* reconnecting syncs the folders */
        if (a->refresh_ms && a->first_done)
            request_full(a);
    }
    kick(s);
}

static void check_clock(struct sched *s)
{
    int64_t d = boot_minus_mono();
    int64_t slept = d - s->sleep_ref;
    s->sleep_ref = d;
    if (slept >= SUSPEND_MIN_NS)
        on_resume(s, slept);
}

static int arm_clock_fd(int fd)
{
    /* A far-future absolute expiry: we only want the cancellation that
     * setting the clock (and resuming, on Linux) causes. */
    struct itimerspec its = {.it_value = {.tv_sec = (time_t)ts_ns(CLOCK_REALTIME) / 1000000000 +
                                                    (time_t)10 * 365 * 86400}};
    return timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL);
}

static void on_clock_set(uv_poll_t *p, int status, int events)
{
    struct sched *s = p->data;
    uint64_t buf;
    (void)events;
    if (status < 0)
        return;
    while (read(s->tfd, &buf, sizeof buf) > 0)
        ; /* an expiry in ten years; nothing to do */
    arm_clock_fd(s->tfd);
    check_clock(s);
}

static void clock_watch_start(struct sched *s)
{
    s->sleep_ref = boot_minus_mono();
    s->tfd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
    if (s->tfd < 0 || arm_clock_fd(s->tfd) < 0 || uv_poll_init(s->loop, &s->clock_poll, s->tfd)) {
        LOG_DEBUG(LOGC_ALL, "no clock-change notification (%s); resume is noticed late",
                  strerror(errno));
        if (s->tfd >= 0)
            close(s->tfd);
        s->tfd = -1;
        return;
    }
    s->clock_poll.data = s;
    s->clock_poll_on = true;
    uv_poll_start(&s->clock_poll, UV_READABLE, on_clock_set);
}

/* ---- status, watchdog ------------------------------------------------------- */

static void update_status(struct sched *s)
{
    char buf[400];
    size_t len = 0;

    if (!sdnotify_enabled() || s->finished)
        return;
    if (s->mode == M_STOP) {
        sdnotify_status("stopping: %s", s->stop_reason ? s->stop_reason : "");
        return;
    }
    for (size_t i = 0; i < s->n && len < sizeof buf - 64; i++)
        if (s->accts[i].running)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", len ? ", " : "syncing ",
                                    s->accts[i].cfg->name);
    if (len) {
        if (s->mode == M_DRAIN)
            snprintf(buf + len, sizeof buf - len, " (exiting after this sync)");
        sdnotify_status("%s", buf);
        return;
    }
    uint64_t next = UINT64_MAX;
    size_t watching = 0;
    for (size_t i = 0; i < s->n; i++) {
        struct sacct *a = &s->accts[i];
        if (uv_is_active((uv_handle_t *)&a->refresh)) {
            uint64_t d = uv_timer_get_due_in(&a->refresh);
            next = d < next ? d : next;
        }
        watching += a->watch ? idle_watch_count(a->watch) : 0;
    }
    len = (size_t)snprintf(buf, sizeof buf, "idle");
    if (next != UINT64_MAX) {
        char d[32];
        fmt_delay(d, sizeof d, next);
        len += (size_t)snprintf(buf + len, sizeof buf - len, "; next sync in %s", d);
    }
    if (watching)
        snprintf(buf + len, sizeof buf - len, "; IDLE on %zu folder(s)", watching);
    sdnotify_status("%s", buf);
}

/* The loop ran this timer, so it is not blocked: pet the watchdog.  (A sync
 * that stalls on a silent server is caught by socktimeout, not here.) */
static void on_watchdog(uv_timer_t *t)
{
    struct sched *s = t->data;
    sdnotify_send("WATCHDOG=1");
    check_clock(s);
}

/* ---- the end -------------------------------------------------------------- */

static void on_force(uv_timer_t *t)
{
    (void)t;
    log_warn("Syncs did not finish within 10 s of the signal: exiting now (safe: the status "
             "store is consistent, the next run completes the work)");
    sdnotify_send("STOPPING=1");
    fflush(NULL);
    _exit(1);
}

static void finish(struct sched *s)
{
    if (s->finished)
        return;
    s->finished = true;
    if (!s->stopping_sent) {
        s->stopping_sent = true;
        sdnotify_send("STOPPING=1");
    }
    for (size_t i = 0; i < s->n_sig; i++)
        uv_close((uv_handle_t *)&s->sig[i], NULL);
    uv_close((uv_handle_t *)&s->watchdog, NULL);
    uv_close((uv_handle_t *)&s->force, NULL);
    if (s->clock_poll_on)
        uv_close((uv_handle_t *)&s->clock_poll, NULL);
    for (size_t i = 0; i < s->n; i++) {
        struct sacct *a = &s->accts[i];
        stop_watchers(a);
        uv_close((uv_handle_t *)&a->refresh, NULL);
        uv_close((uv_handle_t *)&a->debounce, NULL);
    }
    conn_cache_free(&s->conns);
}

static void maybe_finish(struct sched *s)
{
    if (s->finished || s->running)
        return;
    if (s->mode == M_RUN)
        for (size_t i = 0; i < s->n; i++)
            if (acct_busy_later(&s->accts[i]))
                return;
    finish(s);
}

/* Nothing new starts: timers off, IDLE connections dropped, wishes forgotten. */
static void stop_waiting(struct sched *s)
{
    for (size_t i = 0; i < s->n; i++) {
        struct sacct *a = &s->accts[i];
        uv_timer_stop(&a->refresh);
        uv_timer_stop(&a->debounce);
        a->want_full = false;
        want_clear(a);
        stop_watchers(a);
    }
}

/* ---- signals ---------------------------------------------------------------- */

static void dump_state(struct sched *s)
{
    static const char *const modes[] = {"running", "finishing current syncs (SIGUSR2)", "stopping"};
    uint64_t now = uv_now(s->loop);
    log_warn("SIGQUIT: state of oimap %d: %s; %zu account(s), %zu syncing (at most %zu); "
             "ready sent: %s",
             (int)getpid(), modes[s->mode], s->n, s->running, s->max_running,
             s->ready_sent ? "yes" : "no");
    for (size_t i = 0; i < s->n; i++) {
        struct sacct *a = &s->accts[i];
        char d[32] = "-", what[300] = "waiting";
        if (uv_is_active((uv_handle_t *)&a->refresh))
            fmt_delay(d, sizeof d, uv_timer_get_due_in(&a->refresh));
        if (a->running)
            snprintf(what, sizeof what, "syncing %s%s for %" PRIu64 " s",
                     a->run_full ? "all folders" : "folders ",
                     !a->run_full && a->run_folders ? a->run_folders : "",
                     (now - a->run_start) / 1000);
        log_warn("Account %s: %s; %u sync(s) done, last %s; autorefresh %g min, next in %s; "
                 "quick %d (count %u); wanted: %s; %zu IDLE folder(s)",
                 a->cfg->name, what, a->n_runs, a->last_failed ? "failed" : "ok",
                 a->cfg->autorefresh, d, a->cfg->quick, a->quicknum,
                 a->want_full ? "full sync"
                 : a->n_want  ? "folders"
                              : "nothing",
                 a->n_idle);
        for (size_t k = 0; k < a->n_want; k++)
            log_warn("  wanted folder: %s", a->want[k]);
        if (a->running && a->run)
            account_run_dump(a->run);
        if (a->watch)
            idle_watch_dump(a->watch);
    }
    if (conn_cache_held(s->conns))
        log_warn("%zu connection(s) held open between syncs (holdconnectionopen):",
                 conn_cache_held(s->conns));
    conn_cache_dump(s->conns);
    log_warn("SIGQUIT: aborting for a core dump");
}

static const char *sig_name(int signum)
{
    return signum == SIGTERM ? "SIGTERM" : signum == SIGINT ? "SIGINT" : "SIGHUP";
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct sched *s = h->data;

    check_clock(s);
    switch (signum) {
    case SIGUSR1:
        if (s->mode != M_RUN)
            break;
        log_info("SIGUSR1: syncing every account now");
        for (size_t i = 0; i < s->n; i++)
            request_full(&s->accts[i]); /* a running one syncs again right after */
        kick(s);
        break;
    case SIGUSR2:
        if (s->mode != M_RUN)
            break;
        log_info("SIGUSR2: %s", s->running ? "exiting after the current sync" : "exiting");
        s->mode = M_DRAIN;
        s->stopping_sent = true;
        sdnotify_send("STOPPING=1");
        stop_waiting(s);
        update_status(s);
        maybe_finish(s);
        break;
    case SIGQUIT:
        dump_state(s);
        fflush(NULL);
        abort();
    default: /* SIGTERM, SIGINT, SIGHUP */
        if (s->mode == M_STOP) {
            log_warn("%s again: exiting now (safe: the status store is consistent)",
                     sig_name(signum));
            fflush(NULL);
            _exit(1);
        }
        s->mode = M_STOP;
        s->stop_reason = sig_name(signum);
        log_info("%s: stopping%s", sig_name(signum),
                 s->running ? " once the folders in progress are synced" : "");
        if (!s->stopping_sent) {
            s->stopping_sent = true;
            sdnotify_send("STOPPING=1");
        }
        update_status(s);
        stop_waiting(s);
        for (size_t i = 0; i < s->n; i++)
            if (s->accts[i].running && s->accts[i].run)
                account_run_stop(s->accts[i].run);
        uv_timer_start(&s->force, on_force, FORCE_EXIT_MS, 0);
        maybe_finish(s);
        break;
    }
}

/* ---- set-up --------------------------------------------------------------- */

static bool has_idle(const struct config_account *a)
{
    const struct config_repo *r = a->remote;
    return r && (r->type == CONFIG_REPO_IMAP || r->type == CONFIG_REPO_GMAIL) &&
           r->idlefolders.text && *r->idlefolders.text;
}

bool sched_wanted(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_accounts; i++)
        if (cfg->accounts[i].autorefresh > 0 || has_idle(&cfg->accounts[i]))
            return true;
    return false;
}

static int acct_init(struct sched *s, struct sacct *a, const struct config_account *cfg)
{
    a->s = s;
    a->cfg = cfg;
    a->want_full = true; /* the first sync */
    if (cfg->autorefresh > 0) {
        double ms = cfg->autorefresh * 60000.0;
        a->refresh_ms = ms < 1 ? 1 : ms > 1e12 ? (uint64_t)1e12 : (uint64_t)ms;
    }
    uv_timer_init(s->loop, &a->refresh);
    uv_timer_init(s->loop, &a->debounce);
    a->refresh.data = a->debounce.data = a;
    if (!has_idle(cfg))
        return 0;
    const struct config_repo *r = cfg->remote;
    int n = folder_parse_list(r->idlefolders.text, &a->idle_names);
    if (n < 0) {
        log_error("%s:%d: [%s] idlefolders: expected a list of folder names, like ['INBOX', "
                  "'Lists/dev']",
                  s->cfg->path, r->idlefolders.line, r->section);
        return OIMAP_ECONFIG;
    }
    a->n_idle = (size_t)n;
    if (!n)
        return 0;
    char err[512] = "";
    int rc = imap_conn_config_new(r, &a->icfg, err, sizeof err);
    if (rc < 0) {
        /* The sync reports the same problem; IDLE simply cannot run. */
        log_error("Account %s: IDLE not started: %s", cfg->name, err[0] ? err : err_str(rc));
        a->icfg = NULL;
    }
    return 0;
}

static void acct_deinit(struct sacct *a)
{
    want_clear(a);
    free(a->run_folders);
    folder_names_free(a->idle_names, a->n_idle);
    imap_conn_config_free(&a->icfg);
}

int sched_run(uv_loop_t *loop, const struct config *cfg, const struct account_run_opts *opts)
{
    static const int sigs[] = {SIGUSR1, SIGUSR2, SIGTERM, SIGINT, SIGHUP, SIGQUIT};
    struct sched *s = calloc(1, sizeof *s);
    int r = 0;

    if (!s)
        return -ENOMEM;
    s->loop = loop;
    s->cfg = cfg;
    s->base = *opts;
    s->tfd = -1;
    if (conn_cache_new(loop, &s->conns) < 0) {
        free(s);
        return -ENOMEM;
    }
    s->base.conns = s->conns;
    s->max_running =
        opts->single || cfg->general.maxsyncaccounts < 1 ? 1 : (size_t)cfg->general.maxsyncaccounts;
    s->n = cfg->n_accounts;
    s->accts = calloc(s->n ? s->n : 1, sizeof *s->accts);
    if (!s->accts) {
        conn_cache_free(&s->conns);
        free(s);
        return -ENOMEM;
    }
    for (size_t i = 0; i < s->n; i++)
        if (acct_init(s, &s->accts[i], &cfg->accounts[i]) < 0)
            r = OIMAP_ECONFIG;
    if (r < 0) {
        for (size_t i = 0; i < s->n; i++) {
            uv_close((uv_handle_t *)&s->accts[i].refresh, NULL);
            uv_close((uv_handle_t *)&s->accts[i].debounce, NULL);
        }
        conn_cache_free(&s->conns);
        uv_run(loop, UV_RUN_DEFAULT);
        goto out;
    }

    /* A write to a connection the server has closed must be an error, not
     * the death of the daemon. */
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        uv_signal_init(loop, &s->sig[i]);
        s->sig[i].data = s;
        uv_signal_start(&s->sig[i], on_signal, sigs[i]);
        s->n_sig++;
    }
    uv_timer_init(loop, &s->force);
    s->force.data = s;
    uv_timer_init(loop, &s->watchdog);
    s->watchdog.data = s;
    sdnotify_init();
    uint64_t wd = sdnotify_watchdog_usec();
    if (wd) {
        uint64_t every = wd / 2000 ? wd / 2000 : 1;
        uv_timer_start(&s->watchdog, on_watchdog, every, every);
    }
    clock_watch_start(s);
    sdnotify_status("first sync");
    kick(s);
    maybe_finish(s);
    uv_run(loop, UV_RUN_DEFAULT);

    r = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->accts[i].last_failed)
            r = 1;
out:
    if (s->tfd >= 0)
        close(s->tfd);
    for (size_t i = 0; i < s->n; i++)
        acct_deinit(&s->accts[i]);
    sdnotify_close();
    free(s->accts);
    free(s);
    return r;
}
