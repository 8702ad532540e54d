/* conn_cache.c - connections held open between syncs (see conn_cache.h).
 *
 * Each held connection is an entry with one uv timer: the keepalive tick
 * while held, the deadline of the check while a sync waits for it.  Its
 * events come to the cache (imap_conn_set_handlers) until it is handed
 * over, then to the sync's handlers.
 */
#include "conn_cache.h"
#include "config.h"
#include "err.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct cc_acct {
    char *name;
    struct imap_conn_config *icfg;
    uint64_t keepalive_ms; /* 0: no NOOP while held */
    uint64_t probe_ms;
    struct cc_acct *next;
};

enum held_state { H_HELD, H_CHECKING };

struct held {
    struct conn_cache *cc;
    struct cc_acct *acct;
    struct imap_conn *conn;
    uv_timer_t timer;
    enum held_state st;
    bool noop_pending;
    uint64_t since; /* loop time it was released */
    unsigned noops;
    /* the sync waiting for it (H_CHECKING) */
    const struct imap_conn_handlers *h;
    imap_done_cb on_open;
    void *arg;
    struct held *prev, *next;
};

struct conn_cache {
    uv_loop_t *loop;
    struct cc_acct *accts;
    struct held *held;
    size_t n_held;
    unsigned closing; /* entries whose timer is being closed */
    bool freeing;
};

static void cache_maybe_free(struct conn_cache *cc)
{
    if (!cc->freeing || cc->closing || cc->held)
        return;
    while (cc->accts) {
        struct cc_acct *a = cc->accts;
        cc->accts = a->next;
        imap_conn_config_free(&a->icfg);
        free(a->name);
        free(a);
    }
    free(cc);
}

static struct cc_acct *find_acct(const struct conn_cache *cc, const char *name)
{
    for (struct cc_acct *a = cc->accts; a; a = a->next)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

/* ---- entries ---------------------------------------------------------------- */

static void on_entry_closed(uv_handle_t *h)
{
    struct held *e = h->data;
    struct conn_cache *cc = e->cc;
    free(e);
    cc->closing--;
    cache_maybe_free(cc);
}

/* Unlink e and free it (its connection was handed over or closed). */
static void entry_free(struct held *e)
{
    struct conn_cache *cc = e->cc;
    imap_conn_close(&e->conn);
    if (e->prev)
        e->prev->next = e->next;
    else
        cc->held = e->next;
    if (e->next)
        e->next->prev = e->prev;
    cc->n_held--;
    cc->closing++;
    uv_close((uv_handle_t *)&e->timer, on_entry_closed);
}

static void drop(struct held *e, const char *why)
{
    LOG_DEBUG(LOGC_IMAP, "Account %s: held connection to %s dropped: %s", e->acct->name,
              imap_conn_peer(e->conn), why);
    entry_free(e);
}

/* The check succeeded: the connection is the sync's from now on. */
static void hand_over(struct held *e, const struct imap_result *res)
{
    struct imap_conn *c = e->conn;
    imap_done_cb cb = e->on_open;
    void *arg = e->arg;

    LOG_DEBUG(LOGC_IMAP, "Account %s: reusing the connection to %s held for %" PRIu64 " s",
              e->acct->name, imap_conn_peer(c), (uv_now(e->cc->loop) - e->since) / 1000);
    imap_conn_set_handlers(c, e->h, arg);
    e->conn = NULL;
    entry_free(e);
    cb(c, 0, res, arg);
}

/* The check failed: a fresh connection takes its place, and the sync hears
 * of the fresh one only.  Should even that fail to start, the dead one is
 * handed over as failed, so that the sync reports a real error. */
static void replace(struct held *e, const char *why)
{
    struct imap_conn *fresh = NULL;
    LOG_DEBUG(LOGC_IMAP, "Account %s: held connection to %s is dead (%s); connecting again",
              e->acct->name, imap_conn_peer(e->conn), why);
    int r = imap_conn_open(e->cc->loop, e->acct->icfg, e->h, e->on_open, e->arg, &fresh);
    if (r >= 0) {
        entry_free(e);
        return;
    }
    struct imap_conn *c = e->conn;
    imap_done_cb cb = e->on_open;
    void *arg = e->arg;
    struct imap_result res = {.status = IMAP_STATUS_NONE, .code_name = "", .code_args = ""};
    char text[256];
    snprintf(text, sizeof text, "cannot connect to %s: %s", e->acct->icfg->host, err_str(r));
    res.text = text;
    imap_conn_set_handlers(c, e->h, arg);
    e->conn = NULL;
    entry_free(e);
    cb(c, r, &res, arg);
}

static void on_noop(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct held *e = arg;
    (void)c;
    e->noop_pending = false;
    if (e->st == H_CHECKING) {
        if (st == 0)
            hand_over(e, res);
        else
            replace(e, res && res->text && *res->text ? res->text : err_str(st));
    } else if (st != 0) {
        drop(e, res && res->text && *res->text ? res->text : err_str(st));
    }
}

static void on_timer(uv_timer_t *t)
{
    struct held *e = t->data;
    if (e->st == H_CHECKING) {
        replace(e, "no answer to NOOP");
        return;
    }
    if (e->noop_pending) {
        drop(e, "no answer to the keepalive NOOP");
        return;
    }
    if (imap_conn_noop(e->conn, on_noop, e) < 0) {
        drop(e, "cannot send NOOP");
        return;
    }
    e->noop_pending = true;
    e->noops++;
}

static void on_held_error(struct imap_conn *c, int code, const char *msg, void *arg)
{
    struct held *e = arg;
    (void)c;
    (void)code;
    if (e->st == H_CHECKING)
        replace(e, msg);
    else
        drop(e, msg);
}

/* Events of a held connection (EXISTS of the folder last selected, a
 * server's notice) matter to nobody: only its death does. */
static const struct imap_conn_handlers held_handlers = {.on_error = on_held_error};

/* ---- public ----------------------------------------------------------------- */

int conn_cache_new(uv_loop_t *loop, struct conn_cache **cc_r)
{
    struct conn_cache *cc = calloc(1, sizeof *cc);
    if (!cc)
        return -ENOMEM;
    cc->loop = loop;
    *cc_r = cc;
    return 0;
}

void conn_cache_free(struct conn_cache **ccp)
{
    struct conn_cache *cc = *ccp;
    if (!cc)
        return;
    *ccp = NULL;
    cc->freeing = true;
    while (cc->held)
        entry_free(cc->held);
    cache_maybe_free(cc);
}

int conn_cache_config(struct conn_cache *cc, const char *account, const struct config_repo *repo,
                      struct imap_conn_config **icfg_r, char *err, size_t errlen)
{
    struct cc_acct *a = find_acct(cc, account);
    if (a) {
        *icfg_r = a->icfg;
        return 0;
    }
    a = calloc(1, sizeof *a);
    if (!a || !(a->name = strdup(account))) {
        free(a);
        return -ENOMEM;
    }
    int r = imap_conn_config_new(repo, &a->icfg, err, errlen);
    if (r < 0) {
        free(a->name);
        free(a);
        return r;
    }
    a->keepalive_ms = repo->keepalive > 0 ? (uint64_t)repo->keepalive * 1000 : 0;
    a->probe_ms = CONN_CACHE_PROBE_MS;
    if (repo->socktimeout > 0 && (uint64_t)repo->socktimeout * 1000 < a->probe_ms)
        a->probe_ms = (uint64_t)repo->socktimeout * 1000;
    a->next = cc->accts;
    cc->accts = a;
    *icfg_r = a->icfg;
    return 0;
}

int conn_cache_open(struct conn_cache *cc, const char *account, const struct imap_conn_config *icfg,
                    const struct imap_conn_handlers *handlers, imap_done_cb on_open, void *arg,
                    struct imap_conn **c_r)
{
    struct cc_acct *a = find_acct(cc, account);
    struct held *e = cc->held;
    while (e && (e->acct != a || e->st != H_HELD))
        e = e->next;
    if (!e)
        return imap_conn_open(cc->loop, icfg, handlers, on_open, arg, c_r);
    *c_r = NULL;
    e->st = H_CHECKING;
    e->h = handlers;
    e->on_open = on_open;
    e->arg = arg;
    /* A keepalive NOOP in flight is as good a check as a new one. */
    if (!e->noop_pending && imap_conn_noop(e->conn, on_noop, e) < 0) {
        entry_free(e);
        return imap_conn_open(cc->loop, icfg, handlers, on_open, arg, c_r);
    }
    e->noop_pending = true;
    uv_timer_start(&e->timer, on_timer, a->probe_ms, 0);
    return 0;
}

static bool healthy(const struct imap_conn *c)
{
    struct imap_conn_stats st;
    enum imap_conn_state s = imap_conn_state(c);
    if (imap_conn_error(c) || (s != IMAP_CONN_AUTHENTICATED && s != IMAP_CONN_SELECTED))
        return false;
    imap_conn_get_stats(c, &st);
    return st.in_flight == 0 && st.waiting == 0;
}

void conn_cache_release(struct conn_cache *cc, const char *account, struct imap_conn **cp)
{
    struct imap_conn *c = *cp;
    *cp = NULL;
    if (!c)
        return;
    struct cc_acct *a = find_acct(cc, account);
    struct held *e = a && !cc->freeing && healthy(c) ? calloc(1, sizeof *e) : NULL;
    if (!e) {
        imap_conn_close(&c);
        return;
    }
    e->cc = cc;
    e->acct = a;
    e->conn = c;
    e->st = H_HELD;
    e->since = uv_now(cc->loop);
    imap_conn_set_handlers(c, &held_handlers, e);
    uv_timer_init(cc->loop, &e->timer);
    e->timer.data = e;
    if (a->keepalive_ms)
        uv_timer_start(&e->timer, on_timer, a->keepalive_ms, a->keepalive_ms);
    e->next = cc->held;
    if (cc->held)
        cc->held->prev = e;
    cc->held = e;
    cc->n_held++;
    LOG_DEBUG(LOGC_IMAP, "Account %s: holding the connection to %s open", account,
              imap_conn_peer(c));
}

void conn_cache_drop_all(struct conn_cache *cc)
{
    struct held *e = cc ? cc->held : NULL;
    while (e) {
        struct held *next = e->next;
        if (e->st == H_HELD)
            drop(e, "presumed dead after sleep");
        e = next;
    }
}

size_t conn_cache_held(const struct conn_cache *cc)
{
    return cc ? cc->n_held : 0;
}

void conn_cache_dump(const struct conn_cache *cc)
{
    if (!cc)
        return;
    uint64_t now = uv_now(cc->loop);
    for (const struct held *e = cc->held; e; e = e->next) {
        struct imap_conn_stats st;
        imap_conn_get_stats(e->conn, &st);
        log_warn("  held connection of Account %s: %s, %s; held %" PRIu64 " s; %u keepalive "
                 "NOOP(s)%s; %u command(s) in flight%s%s, %zu bytes queued",
                 e->acct->name, imap_conn_peer(e->conn),
                 imap_conn_state_name(imap_conn_state(e->conn)), (now - e->since) / 1000, e->noops,
                 e->st == H_CHECKING ? "; being checked for a sync" : "", st.in_flight,
                 st.oldest[0] ? ", oldest " : "", st.oldest, st.bytes_queued);
    }
}
