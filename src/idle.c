/* idle.c - IMAP IDLE push for one folder (see idle.h).
 *
 * One state machine per watched folder, one uv timer doing whatever the
 * state needs next (a deadline or a delay), so a quiet watcher costs no
 * wake-up until its keepalive:
 *
 *   CONNECTING --open OK--> SELECTING --EXAMINE OK--> IDLE <--> DONE_SENT
 *        ^                                                  |
 *        +------ BACKOFF <------ any failure ---------------+
 *   STOPPED: gave up (refused password, no IDLE, no such folder).
 */
#include "idle.h"
#include "err.h"
#include "imap_conn.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REFRESH_DEFAULT_MS (29u * 60 * 1000) /* RFC 2177: servers may drop us after 30 min */
#define BACKOFF_MIN_MS 1000u
#define BACKOFF_MAX_MS (5u * 60 * 1000)
#define HEALTHY_MS 60000u    /* up this long: the next failure starts back-off anew */
#define ANSWER_MIN_MS 30000u /* wait this long at least for the answer to DONE */
#define SETUP_MIN_MS 60000u  /* connect + login + EXAMINE */

enum wstate { W_CONNECTING, W_SELECTING, W_IDLE, W_DONE_SENT, W_BACKOFF, W_STOPPED };

static const char *const state_names[] = {
    "connecting",           "selecting", "idle", "waiting for DONE's answer",
    "waiting to reconnect", "stopped"};

struct idle_watch {
    uv_loop_t *loop;
    const struct imap_conn_config *icfg;
    char *account, *folder;
    uint64_t refresh_ms, answer_ms, setup_ms;
    idle_event_cb cb;
    void *arg;

    struct imap_conn *conn;
    uv_timer_t timer;
    enum wstate st;
    uint64_t backoff_ms; /* the next delay after a failure */
    uint64_t up_since;   /* loop time the folder was last watched */
    uint64_t events, reconnects;
    bool up, failing, closing, started;
    char last_error[256];
};

static void w_connect(struct idle_watch *w);

static void arm(struct idle_watch *w, uint64_t ms);

/* ---- failure paths -------------------------------------------------------- */

static void w_give_up(struct idle_watch *w, bool as_error, const char *why)
{
    imap_conn_close(&w->conn);
    uv_timer_stop(&w->timer);
    w->st = W_STOPPED;
    w->up = false;
    snprintf(w->last_error, sizeof w->last_error, "%s", why);
    if (as_error)
        log_error("Account %s: IDLE on %s: %s; not retrying (autorefresh still syncs)", w->account,
                  w->folder, why);
    else
        log_warn("Account %s: IDLE on %s: %s; folder not watched", w->account, w->folder, why);
    w->cb(w, IDLE_EV_GAVE_UP, w->arg);
}

/* The connection is gone or useless: drop it, try again later. */
static void w_fail(struct idle_watch *w, const char *why)
{
    uint64_t now = uv_now(w->loop);

    imap_conn_close(&w->conn);
    if (w->up && now - w->up_since >= HEALTHY_MS)
        w->backoff_ms = BACKOFF_MIN_MS;
    uint64_t delay = w->backoff_ms;
    w->backoff_ms = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
    snprintf(w->last_error, sizeof w->last_error, "%s", why);
    if (!w->failing)
        log_warn("Account %s: IDLE on %s: %s; reconnecting in %" PRIu64 " s", w->account, w->folder,
                 why, delay / 1000);
    else
        log_info("Account %s: IDLE on %s: reconnecting failed: %s; next attempt in %" PRIu64 " s",
                 w->account, w->folder, why, delay / 1000);
    w->failing = true;
    w->up = false;
    w->st = W_BACKOFF;
    arm(w, delay);
}

/* ---- connection callbacks ------------------------------------------------- */

static void on_conn_error(struct imap_conn *c, int code, const char *msg, void *arg)
{
    struct idle_watch *w = arg;
    (void)c;
    if (w->closing || w->st == W_STOPPED)
        return;
    if (code == OIMAP_EAUTH)
        w_give_up(w, true, msg); /* a refused password is not hammered */
    else
        w_fail(w, msg);
}

static void on_change(struct idle_watch *w)
{
    if (w->closing || (w->st != W_IDLE && w->st != W_DONE_SENT))
        return;
    w->events++;
    w->cb(w, IDLE_EV_CHANGED, w->arg);
}

static void on_exists(struct imap_conn *c, uint32_t n, void *arg)
{
    (void)c;
    (void)n;
    on_change(arg);
}

static void on_expunge(struct imap_conn *c, uint32_t seq, void *arg)
{
    (void)c;
    (void)seq;
    on_change(arg);
}

static void on_vanished(struct imap_conn *c, const char *set, size_t len, bool earlier, void *arg)
{
    (void)c;
    (void)set;
    (void)len;
    (void)earlier;
    on_change(arg);
}

static void on_fetch(struct imap_conn *c, const struct imap_fetch *f, void *arg)
{
    (void)c;
    (void)f;
    on_change(arg);
}

static const struct imap_conn_handlers handlers = {
    .on_exists = on_exists,
    .on_expunge = on_expunge,
    .on_vanished = on_vanished,
    .on_fetch = on_fetch,
    .on_error = on_conn_error,
};

static void on_idle_done(struct imap_conn *c, int st, const struct imap_result *res, void *arg);

static void w_start_idle(struct idle_watch *w)
{
    int r = imap_conn_idle(w->conn, on_idle_done, w);
    if (r < 0) {
        char why[128];
        snprintf(why, sizeof why, "cannot start IDLE: %s", err_str(r));
        w_fail(w, why);
        return;
    }
    w->st = W_IDLE;
    arm(w, w->refresh_ms);
}

static void on_idle_done(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct idle_watch *w = arg;
    (void)c;
    if (w->closing || w->st == W_STOPPED || w->st == W_BACKOFF)
        return;
    if (st == OIMAP_ENO || st == OIMAP_EBAD) {
        char why[300];
        snprintf(why, sizeof why, "the server refused IDLE: %s", res->text);
        w_give_up(w, false, why);
    } else if (st == 0) {
        w_start_idle(w); /* our keepalive DONE, or the server ended IDLE itself */
    }
    /* st < 0: the connection failed; on_conn_error follows. */
}

static void on_select(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct idle_watch *w = arg;
    (void)c;
    if (w->closing || w->st != W_SELECTING)
        return;
    if (st == OIMAP_ENO || st == OIMAP_EBAD) {
        char why[300];
        snprintf(why, sizeof why, "cannot select the folder: %s", res->text);
        w_give_up(w, false, why);
        return;
    }
    if (st < 0)
        return; /* on_conn_error follows */
    if (w->failing)
        log_info("Account %s: IDLE on %s: connected again", w->account, w->folder);
    w->failing = false;
    w->up = true;
    w->up_since = uv_now(w->loop);
    w->last_error[0] = '\0';
    w_start_idle(w);
    if (w->st == W_IDLE) {
        LOG_DEBUG(LOGC_IMAP, "Account %s: IDLE on %s", w->account, w->folder);
        w->cb(w, IDLE_EV_UP, w->arg);
    }
}

static void on_open(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct idle_watch *w = arg;
    (void)res;
    if (w->closing || w->st != W_CONNECTING || st < 0)
        return; /* a failed open: on_conn_error follows */
    if (!imap_conn_has(c, "IDLE")) {
        w_give_up(w, false, "the server does not offer IDLE");
        return;
    }
    struct imap_select_opts so = {.readonly = true};
    int r = imap_conn_select(c, w->folder, &so, on_select, w);
    if (r < 0) {
        char why[300];
        snprintf(why, sizeof why, "cannot select the folder: %s", err_str(r));
        if (r == OIMAP_ENAME)
            w_give_up(w, false, why);
        else
            w_fail(w, why);
        return;
    }
    w->st = W_SELECTING;
}

/* ---- timer ------------------------------------------------------------------ */

static void on_timer(uv_timer_t *t)
{
    struct idle_watch *w = t->data;
    char why[128];

    switch (w->st) {
    case W_IDLE:
        /* Keepalive: DONE, and IDLE again once the server answers. */
        imap_conn_done(w->conn);
        w->st = W_DONE_SENT;
        arm(w, w->answer_ms);
        break;
    case W_DONE_SENT:
        snprintf(why, sizeof why, "no answer to DONE within %" PRIu64 " s", w->answer_ms / 1000);
        w_fail(w, why);
        break;
    case W_CONNECTING:
    case W_SELECTING:
        snprintf(why, sizeof why, "no answer within %" PRIu64 " s while %s", w->setup_ms / 1000,
                 state_names[w->st]);
        w_fail(w, why);
        break;
    case W_BACKOFF:
        w->reconnects += w->started; /* not the first connection */
        w->started = true;
        w_connect(w);
        break;
    case W_STOPPED:
        break;
    }
}

static void arm(struct idle_watch *w, uint64_t ms)
{
    uv_timer_start(&w->timer, on_timer, ms, 0);
}

static void w_connect(struct idle_watch *w)
{
    w->st = W_CONNECTING;
    int r = imap_conn_open(w->loop, w->icfg, &handlers, on_open, w, &w->conn);
    if (r < 0) {
        char why[128];
        snprintf(why, sizeof why, "cannot connect: %s", err_str(r));
        w_fail(w, why);
        return;
    }
    arm(w, w->setup_ms);
}

/* ---- public ----------------------------------------------------------------- */

int idle_watch_new(uv_loop_t *loop, const struct imap_conn_config *icfg,
                   const struct idle_watch_opts *o, idle_event_cb cb, void *arg,
                   struct idle_watch **w_r)
{
    struct idle_watch *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->account = strdup(o->account ? o->account : "");
    w->folder = strdup(o->folder);
    if (!w->account || !w->folder) {
        free(w->account);
        free(w->folder);
        free(w);
        return -ENOMEM;
    }
    w->loop = loop;
    w->icfg = icfg;
    w->cb = cb;
    w->arg = arg;
    w->refresh_ms = o->refresh_s ? (uint64_t)o->refresh_s * 1000 : REFRESH_DEFAULT_MS;
    if (w->refresh_ms > REFRESH_DEFAULT_MS)
        w->refresh_ms = REFRESH_DEFAULT_MS;
    w->answer_ms = (uint64_t)o->socktimeout_s * 1000;
    if (w->answer_ms < ANSWER_MIN_MS)
        w->answer_ms = ANSWER_MIN_MS;
    w->setup_ms = (uint64_t)o->socktimeout_s * 3000;
    if (w->setup_ms < SETUP_MIN_MS)
        w->setup_ms = SETUP_MIN_MS;
    w->backoff_ms = BACKOFF_MIN_MS;
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    /* Connect from the loop, so that nothing happens inside this call. */
    w->st = W_BACKOFF;
    arm(w, 0);
    *w_r = w;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct idle_watch *w = h->data;
    free(w->account);
    free(w->folder);
    free(w);
}

void idle_watch_free(struct idle_watch **wp)
{
    struct idle_watch *w = *wp;
    if (!w)
        return;
    *wp = NULL;
    w->closing = true;
    imap_conn_close(&w->conn);
    uv_close((uv_handle_t *)&w->timer, on_timer_closed);
}

void idle_watch_kick(struct idle_watch *w)
{
    if (!w || w->closing || w->st == W_STOPPED)
        return;
    imap_conn_close(&w->conn);
    w->backoff_ms = BACKOFF_MIN_MS;
    w->up = false;
    w->reconnects++;
    w->started = true;
    w_connect(w);
}

const char *idle_watch_folder(const struct idle_watch *w)
{
    return w->folder;
}

bool idle_watch_stopped(const struct idle_watch *w)
{
    return w->st == W_STOPPED;
}

void idle_watch_dump(const struct idle_watch *w)
{
    uint64_t now = uv_now(w->loop);
    uint64_t due = uv_timer_get_due_in(&w->timer);
    log_warn("  IDLE %s: %s; connection %s (%s); up %" PRIu64 " s; %" PRIu64 " events, %" PRIu64
             " reconnects; timer %s%" PRIu64 " ms%s%s",
             w->folder, state_names[w->st],
             w->conn ? imap_conn_state_name(imap_conn_state(w->conn)) : "none",
             w->conn ? imap_conn_peer(w->conn) : "-", w->up ? (now - w->up_since) / 1000 : 0,
             w->events, w->reconnects, uv_is_active((uv_handle_t *)&w->timer) ? "due in " : "off ",
             uv_is_active((uv_handle_t *)&w->timer) ? due : 0,
             w->last_error[0] ? "; last error: " : "", w->last_error);
}
