/* idle.c - IMAP push for an account's idlefolders (see idle.h).
 *
 * One state machine per connection, one uv timer doing whatever the state
 * needs next (a deadline or a delay), so a quiet watcher costs no wake-up
 * until its keepalive:
 *
 *   CONNECTING --open OK--> SELECTING (EXAMINE) --OK--> IDLE <--> DONE_SENT
 *        |         \------> SETTING (NOTIFY SET) --OK--^          |
 *        ^                                                       |
 *        +------ BACKOFF <------ any failure --------------------+
 *   STOPPED: gave up (refused password, no IDLE, no such folder).
 *
 * The watcher made for an account watches all its folders.  It starts in
 * mode ANY: its first connection learns the capabilities.  With NOTIFY and
 * several folders it stays one connection for all (mode NOTIFY); otherwise
 * it splits (mode SINGLE): it keeps the first folder for itself and makes
 * one child watcher (n = 1, mode SINGLE, its events forwarded) for each
 * other folder.  A split is for good.
 */
#include "idle.h"
#include "err.h"
#include "imap_conn.h"
#include "imap_utf7.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REFRESH_DEFAULT_MS (29u * 60 * 1000) /* RFC 2177: servers may drop us after 30 min */
#define BACKOFF_MIN_MS 1000u
#define BACKOFF_MAX_MS (5u * 60 * 1000)
#define HEALTHY_MS 60000u      /* up this long: the next failure starts back-off anew */
#define ANSWER_MIN_MS 30000u   /* wait this long at least for the answer to DONE */
#define SETUP_MIN_MS 60000u    /* connect + login + EXAMINE / NOTIFY SET */
#define NOTIFY_MAX_LINE 60000u /* NOTIFY SET longer than this: one connection per folder */
#define LABEL_MAX 160

enum wstate { W_CONNECTING, W_SELECTING, W_SETTING, W_IDLE, W_DONE_SENT, W_BACKOFF, W_STOPPED };

static const char *const state_names[] = {
    "connecting",           "selecting", "setting NOTIFY", "idle", "waiting for DONE's answer",
    "waiting to reconnect", "stopped"};

enum wmode { MODE_ANY, MODE_NOTIFY, MODE_SINGLE };

static const char *const mode_names[] = {"IDLE", "NOTIFY", "IDLE"};

/* A watched folder.  Under NOTIFY its last STATUS values, to tell a change
 * from a repeat. */
struct wfolder {
    char *name;
    bool gone;   /* gave up (IDLE_EV_GAVE_UP reported) */
    bool status; /* a STATUS was seen (NOTIFY) */
    unsigned present;
    uint32_t messages, uidnext, uidvalidity, unseen;
    uint64_t highestmodseq;
};

struct idle_watch {
    uv_loop_t *loop;
    const struct imap_conn_config *icfg;
    char *account;
    struct wfolder *f;
    size_t n;
    size_t own; /* MODE_SINGLE: the folder this connection watches */
    enum wmode mode;
    struct idle_watch **child; /* MODE_SINGLE after a split: one per other folder */
    size_t n_child;
    char label[LABEL_MAX]; /* folder names for messages */
    unsigned refresh_s, socktimeout_s;
    uint64_t refresh_ms, answer_ms, setup_ms;
    idle_event_cb cb;
    void *arg;

    struct imap_conn *conn;
    uv_timer_t timer;
    enum wstate st;
    uint64_t backoff_ms; /* the next delay after a failure */
    uint64_t up_since;   /* loop time the folders were last watched */
    uint64_t events, reconnects;
    bool up, failing, closing, started;
    char last_error[256];
};

static void w_connect(struct idle_watch *w);
static void arm(struct idle_watch *w, uint64_t ms);
static void w_select(struct idle_watch *w);

/* ---- folders ---------------------------------------------------------------- */

static void make_label(struct idle_watch *w)
{
    size_t len = 0;
    w->label[0] = '\0';
    if (w->mode == MODE_SINGLE) {
        snprintf(w->label, sizeof w->label, "%s", w->f[w->own].name);
        return;
    }
    for (size_t i = 0; i < w->n; i++) {
        if (w->f[i].gone)
            continue;
        if (len + strlen(w->f[i].name) + 8 >= sizeof w->label) {
            snprintf(w->label + len, sizeof w->label - len, ", ...");
            return;
        }
        len += (size_t)snprintf(w->label + len, sizeof w->label - len, "%s%s", len ? ", " : "",
                                w->f[i].name);
    }
}

static size_t live_folders(const struct idle_watch *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->n; i++)
        n += !w->f[i].gone;
    return n;
}

static bool same_folder(const char *a, const char *b)
{
    if (strcasecmp(a, "INBOX") == 0)
        return strcasecmp(b, "INBOX") == 0;
    return strcmp(a, b) == 0;
}

static struct wfolder *find_folder(struct idle_watch *w, const char *name)
{
    for (size_t i = 0; i < w->n; i++)
        if (same_folder(w->f[i].name, name))
            return &w->f[i];
    return NULL;
}

/* Report ev for every folder this connection watches (live ones). */
static void report_all(struct idle_watch *w, enum idle_event ev)
{
    for (size_t i = 0; i < w->n && !w->closing; i++) {
        if (w->f[i].gone || (w->mode == MODE_SINGLE && i != w->own))
            continue;
        if (ev == IDLE_EV_GAVE_UP)
            w->f[i].gone = true;
        w->cb(w, ev, w->f[i].name, w->arg);
    }
}

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
                  w->label, why);
    else
        log_warn("Account %s: IDLE on %s: %s; not watched", w->account, w->label, why);
    report_all(w, IDLE_EV_GAVE_UP);
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
        log_warn("Account %s: IDLE on %s: %s; reconnecting in %" PRIu64 " s", w->account, w->label,
                 why, delay / 1000);
    else
        log_info("Account %s: IDLE on %s: reconnecting failed: %s; next attempt in %" PRIu64 " s",
                 w->account, w->label, why, delay / 1000);
    w->failing = true;
    w->up = false;
    w->st = W_BACKOFF;
    arm(w, delay);
}

/* Drop the connection and connect again now (a fresh back-off). */
static void w_restart(struct idle_watch *w)
{
    imap_conn_close(&w->conn);
    w->backoff_ms = BACKOFF_MIN_MS;
    w->up = false;
    w->reconnects++;
    w->started = true;
    w_connect(w);
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
    if (w->closing || w->mode != MODE_SINGLE || (w->st != W_IDLE && w->st != W_DONE_SENT))
        return;
    w->events++;
    w->cb(w, IDLE_EV_CHANGED, w->f[w->own].name, w->arg);
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

/* Merge a STATUS into f; true when it says something new (a STATUS with no
 * item we know is taken as a change: we cannot tell). */
static bool status_merge(struct wfolder *f, const struct imap_status_entry *e)
{
    bool changed = e->present == 0;
#define ITEM(bit, field)                                                                           \
    if (e->present & (bit)) {                                                                      \
        changed |= !(f->present & (bit)) || f->field != e->field;                                  \
        f->field = e->field;                                                                       \
    }
    ITEM(IMAP_STATUS_MESSAGES, messages)
    ITEM(IMAP_STATUS_UIDNEXT, uidnext)
    ITEM(IMAP_STATUS_UIDVALIDITY, uidvalidity)
    ITEM(IMAP_STATUS_UNSEEN, unseen)
    ITEM(IMAP_STATUS_HIGHESTMODSEQ, highestmodseq)
#undef ITEM
    f->present |= e->present;
    f->status = true;
    return changed;
}

/* NOTIFY's STATUS: the answer to NOTIFY SET STATUS (the starting values),
 * or a notification. */
static void on_status(struct imap_conn *c, const struct imap_status_entry *e, void *arg)
{
    struct idle_watch *w = arg;
    (void)c;
    if (w->closing || w->mode != MODE_NOTIFY || !e->decoded)
        return;
    struct wfolder *f = find_folder(w, e->name);
    if (!f || f->gone)
        return;
    bool changed = status_merge(f, e);
    if (w->st != W_IDLE && w->st != W_DONE_SENT)
        return; /* NOTIFY SET's answer; UP follows */
    if (changed) {
        w->events++;
        w->cb(w, IDLE_EV_CHANGED, f->name, w->arg);
    } else {
        LOG_DEBUG(LOGC_IMAP, "Account %s: NOTIFY: STATUS of %s repeats what we know", w->account,
                  f->name);
    }
}

static void on_notice(struct imap_conn *c, const struct imap_response *r, void *arg)
{
    struct idle_watch *w = arg;
    (void)c;
    if (w->closing || w->mode != MODE_NOTIFY || r->code.name_len != 20 ||
        strncasecmp(r->code.name, "NOTIFICATIONOVERFLOW", 20) != 0)
        return;
    /* The server stopped notifying: what changed since is unknown. */
    log_info("Account %s: IDLE on %s: the server dropped its notifications "
             "(NOTIFICATIONOVERFLOW); reconnecting",
             w->account, w->label);
    w_restart(w);
}

static const struct imap_conn_handlers handlers = {
    .on_exists = on_exists,
    .on_expunge = on_expunge,
    .on_vanished = on_vanished,
    .on_fetch = on_fetch,
    .on_error = on_conn_error,
    .on_status = on_status,
    .on_notice = on_notice,
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

/* The folders are watched from now on: IDLE, and UP for each. */
static void w_up(struct idle_watch *w)
{
    if (w->failing)
        log_info("Account %s: IDLE on %s: connected again", w->account, w->label);
    w->failing = false;
    w->up = true;
    w->up_since = uv_now(w->loop);
    w->last_error[0] = '\0';
    w_start_idle(w);
    if (w->st == W_IDLE) {
        LOG_DEBUG(LOGC_IMAP, "Account %s: %s on %s", w->account, mode_names[w->mode], w->label);
        report_all(w, IDLE_EV_UP);
    }
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
    w_up(w);
}

/* ---- splitting: one connection per folder --------------------------------- */

static void on_child_event(struct idle_watch *child, enum idle_event ev, const char *folder,
                           void *arg)
{
    struct idle_watch *w = arg;
    (void)child;
    if (ev == IDLE_EV_GAVE_UP) {
        struct wfolder *f = find_folder(w, folder);
        if (f)
            f->gone = true;
    }
    w->cb(w, ev, folder, w->arg);
}

static int new_watch(uv_loop_t *loop, const struct imap_conn_config *icfg,
                     const struct idle_watch_opts *o, idle_event_cb cb, void *arg,
                     struct idle_watch **w_r);

/* Keep the first live folder on this connection; every other live folder
 * gets a watcher of its own. */
static void w_split(struct idle_watch *w)
{
    size_t own = w->n;
    for (size_t i = 0; i < w->n; i++)
        if (!w->f[i].gone) {
            own = i;
            break;
        }
    w->mode = MODE_SINGLE;
    w->own = own < w->n ? own : 0;
    w->child = calloc(w->n, sizeof *w->child);
    for (size_t i = 0; w->child && i < w->n; i++) {
        if (i == w->own || w->f[i].gone)
            continue;
        const char *name = w->f[i].name;
        struct idle_watch_opts o = {.account = w->account,
                                    .folders = &name,
                                    .n_folders = 1,
                                    .refresh_s = w->refresh_s,
                                    .socktimeout_s = w->socktimeout_s};
        if (new_watch(w->loop, w->icfg, &o, on_child_event, w, &w->child[w->n_child]) == 0)
            w->n_child++;
        else
            log_error("Account %s: out of memory: IDLE on %s not started", w->account, name);
    }
    if (!w->child)
        log_error("Account %s: out of memory: only %s watched with IDLE", w->account,
                  w->f[w->own].name);
    make_label(w);
}

/* ---- NOTIFY ------------------------------------------------------------------- */

/* "NOTIFY SET STATUS (mailboxes ("A" "B") (MessageNew MessageExpunge
 * FlagChange))" for the live folders, or NULL (a name that cannot be sent
 * quoted, a line too long, no memory). */
static char *notify_command(const struct idle_watch *w)
{
    static const char head[] = "NOTIFY SET STATUS (mailboxes (";
    static const char tail[] = ") (MessageNew MessageExpunge FlagChange))";
    size_t cap = NOTIFY_MAX_LINE, len = sizeof head - 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    memcpy(out, head, len);
    bool first = true;
    for (size_t i = 0; i < w->n; i++) {
        char *wire = NULL;
        if (w->f[i].gone)
            continue;
        if (imap_utf7_encode(w->f[i].name, strlen(w->f[i].name), &wire) < 0)
            goto fail;
        size_t need = imap_quote_size(strlen(wire)) + 1;
        int q = len + need + sizeof tail < cap
                    ? imap_quote(out + len + !first, cap - len - 1, wire, strlen(wire), false)
                    : 0;
        free(wire);
        if (q <= 0)
            goto fail;
        if (!first)
            out[len] = ' ';
        len += (size_t)q + !first;
        first = false;
    }
    memcpy(out + len, tail, sizeof tail);
    return out;
fail:
    free(out);
    return NULL;
}

static void on_notify_set(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct idle_watch *w = arg;
    (void)c;
    if (w->closing || w->st != W_SETTING)
        return;
    if (st == OIMAP_ENO || st == OIMAP_EBAD) {
        log_info("Account %s: the server refused NOTIFY (%s): one IDLE connection per folder",
                 w->account, res->text);
        w_split(w);
        w_select(w);
        return;
    }
    if (st < 0)
        return; /* on_conn_error follows */
    /* The STATUS indicator asked for every folder's values: a folder that got
     * none does not exist (the server may ignore STATUS: then all got none). */
    bool any = false;
    for (size_t i = 0; i < w->n; i++)
        any |= !w->f[i].gone && w->f[i].status;
    for (size_t i = 0; any && i < w->n; i++)
        if (!w->f[i].gone && !w->f[i].status) {
            log_warn("Account %s: IDLE on %s: the server sent no STATUS for it under NOTIFY "
                     "(no such folder?); not watched",
                     w->account, w->f[i].name);
            w->f[i].gone = true;
            w->cb(w, IDLE_EV_GAVE_UP, w->f[i].name, w->arg);
            if (w->closing)
                return;
        }
    make_label(w);
    w_up(w);
}

static void w_notify(struct idle_watch *w)
{
    char *cmd = notify_command(w);
    int r = cmd ? imap_conn_command(w->conn, cmd, NULL, NULL, on_notify_set, w) : -ENOMEM;
    free(cmd);
    if (r < 0) {
        LOG_DEBUG(LOGC_IMAP, "Account %s: NOTIFY not sent (%s): one IDLE connection per folder",
                  w->account, err_str(r));
        w_split(w);
        w_select(w);
        return;
    }
    for (size_t i = 0; i < w->n; i++)
        w->f[i].status = false;
    w->st = W_SETTING;
}

/* ---- opening ------------------------------------------------------------------ */

static void w_select(struct idle_watch *w)
{
    struct imap_select_opts so = {.readonly = true};
    int r = imap_conn_select(w->conn, w->f[w->own].name, &so, on_select, w);
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
    if (w->mode != MODE_SINGLE && live_folders(w) > 1 && imap_conn_has(c, "NOTIFY")) {
        w->mode = MODE_NOTIFY;
        w_notify(w);
        return;
    }
    if (w->mode != MODE_SINGLE)
        w_split(w);
    w_select(w);
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
    case W_SETTING:
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

static void watch_free_now(struct idle_watch *w)
{
    for (size_t i = 0; w->f && i < w->n; i++)
        free(w->f[i].name);
    free(w->f);
    free(w->child);
    free(w->account);
    free(w);
}

static int new_watch(uv_loop_t *loop, const struct imap_conn_config *icfg,
                     const struct idle_watch_opts *o, idle_event_cb cb, void *arg,
                     struct idle_watch **w_r)
{
    struct idle_watch *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->account = strdup(o->account ? o->account : "");
    w->f = calloc(o->n_folders, sizeof *w->f);
    if (!w->account || !w->f) {
        watch_free_now(w);
        return -ENOMEM;
    }
    for (w->n = 0; w->n < o->n_folders; w->n++)
        if (!(w->f[w->n].name = strdup(o->folders[w->n]))) {
            watch_free_now(w);
            return -ENOMEM;
        }
    w->loop = loop;
    w->icfg = icfg;
    w->cb = cb;
    w->arg = arg;
    w->mode = w->n == 1 ? MODE_SINGLE : MODE_ANY;
    make_label(w);
    w->refresh_s = o->refresh_s;
    w->socktimeout_s = o->socktimeout_s;
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

int idle_watch_new(uv_loop_t *loop, const struct imap_conn_config *icfg,
                   const struct idle_watch_opts *o, idle_event_cb cb, void *arg,
                   struct idle_watch **w_r)
{
    if (!o->n_folders || !o->folders)
        return UV_EINVAL;
    return new_watch(loop, icfg, o, cb, arg, w_r);
}

static void on_timer_closed(uv_handle_t *h)
{
    watch_free_now(h->data);
}

void idle_watch_free(struct idle_watch **wp)
{
    struct idle_watch *w = *wp;
    if (!w)
        return;
    *wp = NULL;
    w->closing = true;
    for (size_t i = 0; i < w->n_child; i++)
        idle_watch_free(&w->child[i]);
    imap_conn_close(&w->conn);
    uv_close((uv_handle_t *)&w->timer, on_timer_closed);
}

void idle_watch_kick(struct idle_watch *w)
{
    if (!w || w->closing)
        return;
    for (size_t i = 0; i < w->n_child; i++)
        idle_watch_kick(w->child[i]);
    if (w->st != W_STOPPED)
        w_restart(w);
}

size_t idle_watch_count(const struct idle_watch *w)
{
    return live_folders(w);
}

bool idle_watch_stopped(const struct idle_watch *w)
{
    return live_folders(w) == 0;
}

void idle_watch_dump(const struct idle_watch *w)
{
    uint64_t now = uv_now(w->loop);
    uint64_t due = uv_timer_get_due_in(&w->timer);
    struct imap_conn_stats st = {0};
    if (w->conn)
        imap_conn_get_stats(w->conn, &st);
    log_warn("  %s %s: %s; connection %s (%s); up %" PRIu64 " s; %" PRIu64 " events, %" PRIu64
             " reconnects; %u command(s) in flight%s%s, %zu bytes queued; timer %s%" PRIu64
             " ms%s%s",
             mode_names[w->mode], w->label, state_names[w->st],
             w->conn ? imap_conn_state_name(imap_conn_state(w->conn)) : "none",
             w->conn ? imap_conn_peer(w->conn) : "-", w->up ? (now - w->up_since) / 1000 : 0,
             w->events, w->reconnects, st.in_flight, st.oldest[0] ? ", oldest " : "", st.oldest,
             st.bytes_queued, uv_is_active((uv_handle_t *)&w->timer) ? "due in " : "off ",
             uv_is_active((uv_handle_t *)&w->timer) ? due : 0,
             w->last_error[0] ? "; last error: " : "", w->last_error);
    for (size_t i = 0; i < w->n_child; i++)
        idle_watch_dump(w->child[i]);
}
