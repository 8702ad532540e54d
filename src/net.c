/* net.c - DNS, TCP, timeouts and the TLS layer of a stream; see include/net.h.
 *
 * One struct net_stream per connection.  Its uv handles (a timer, an idle
 * handle for deferred callbacks, one TCP handle per connect attempt) each
 * hold a reference on the stream, as does the user until net_close(); the
 * memory goes when the last reference does, always from a uv_close callback.
 *
 * Deferred work: errors are recorded by fail() and reported from the idle
 * handle, so no callback ever runs inside the net_* call that caused it and
 * no code path has to survive a callback freeing the stream under it.
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "proxy.h"
#include "tls.h"
#include "tunnel.h"
#include "zstream.h"

#define DEFAULT_MAX_INPUT (1u << 20)
#define DEFAULT_MAX_OUTPUT (16u << 20)
#define DEFAULT_KEEPALIVE 60
#define INPUT_MIN_READ (16 * 1024) /* room offered to each uv read */
#define INPUT_MAX_READ (64 * 1024) /* and at most this much */
#define ZIN_CAP (32 * 1024)        /* compressed input waiting to be inflated */

enum net_state {
    ST_RESOLVING,
    ST_CONNECTING,
    ST_PROXY,     /* connected to the proxy: its handshake opens the tunnel */
    ST_HANDSHAKE, /* TLS handshake: implicit (before on_connect) or STARTTLS */
    ST_OPEN,
    ST_FAILED, /* on_error is (or was) due; waiting for net_close */
    ST_CLOSING,
};

struct gai {
    uv_getaddrinfo_t req;
    struct net_stream *s; /* NULL once the stream was closed: orphaned */
};

/* One connect attempt; becomes the connection when it succeeds.  A tunnel's
 * "attempt" is the pair of pipes to its command, connected from the start:
 * io is the one we read (its output), wpipe the one we write (its input). */
struct attempt {
    union {
        uv_handle_t h;
        uv_stream_t st;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } io;
    uv_pipe_t wpipe;
    bool has_wpipe;
    int open_handles;
    uv_connect_t req;
    struct net_stream *s;
};

/* Where writes go: the socket, or a tunnel's input pipe. */
static uv_stream_t *wr_stream(struct attempt *a)
{
    return a->has_wpipe ? (uv_stream_t *)&a->wpipe : &a->io.st;
}

struct wbuf {
    char *p;
    size_t len, cap;
};

struct net_stream {
    uv_loop_t *loop;
    enum net_state state;
    struct net_callbacks cb;
    void *arg;
    struct net_opts opts;
    char *host;
    unsigned port;
    char peer[600];
    char addr[INET6_ADDRSTRLEN];
    int refs;

    uv_timer_t timer;
    uv_idle_t idle;
    struct gai *gai;
    struct addrinfo *ai_list, *ai_cur;
    struct attempt *conn;
    int attempts;
    char tried[400];
    int last_err;
    char last_reason[100];

    /* clear-text input, data at in[in_off .. in_off+in_len) */
    char *in;
    size_t in_off, in_len, in_cap;
    bool fresh; /* bytes arrived since the last offer */
    bool paused, reading, expect, eof_seen, eof_pending;
    uint64_t read_since, write_since, phase_since;

    /* output: wq collects, wfly is being written by uv_write */
    struct wbuf wq, wfly;
    size_t wfly_off;
    uv_write_t wreq;
    bool writing;

    /* proxy (opts.proxy.type != PROXY_NONE): connect to it, then its handshake */
    struct proxy_hs proxy_hs;

    /* TLS */
    struct tls_session *tls;
    struct tls_config *implicit_tls;
    bool tls_up, tls_eof;
    void (*on_tls)(struct net_stream *s, void *arg);

    /* COMPRESS=DEFLATE (net_start_compress): every byte read (after TLS) is
     * compressed and waits in zin[zin_off .. zin_off+zin_len) until the
     * clear-text buffer has room for what it inflates to. */
    struct zstream *z;
    unsigned char *zin;
    size_t zin_off, zin_len, zin_cap;

    /* tunnel (net_spawn): the command; NULL for TCP */
    struct tunnel *tun;
    bool connect_pending; /* on_connect is due from the idle handle */
    bool eof_wait;        /* EOF seen: the timer waits briefly for the exit status */
    bool eof_waited;

    /* errors and closing */
    bool err_pending, pump_pending, user_closed;
    int err_code;
    char err_msg[1024];
    void (*on_closed)(void *arg);
};

static void pump(struct net_stream *s);
static void became_open(struct net_stream *s);
static void try_next(struct net_stream *s);
static void update_reading(struct net_stream *s);
static void flush(struct net_stream *s);

/* ---- references, deferred work, failure ---------------------------------- */

static void unref(struct net_stream *s)
{
    if (--s->refs > 0)
        return;
    void (*cb)(void *) = s->on_closed;
    void *arg = s->arg;
    if (s->ai_list)
        uv_freeaddrinfo(s->ai_list);
    tls_session_free(&s->tls);
    tls_config_free(&s->implicit_tls);
    zstream_free(&s->z);
    free(s->zin);
    free(s->in);
    free(s->wq.p);
    free(s->wfly.p);
    free(s->host);
    free(s);
    if (cb)
        cb(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
    unref(h->data);
}

static void on_attempt_closed(uv_handle_t *h)
{
    struct attempt *a = h->data;
    struct net_stream *s = a->s;
    if (--a->open_handles > 0)
        return;
    free(a);
    unref(s);
}

static void close_attempt(struct net_stream *s, struct attempt *a)
{
    if (s->conn == a) {
        s->conn = NULL;
        s->reading = false;
    }
    a->open_handles = a->has_wpipe ? 2 : 1;
    uv_close(&a->io.h, on_attempt_closed);
    if (a->has_wpipe)
        uv_close((uv_handle_t *)&a->wpipe, on_attempt_closed);
}

static void on_idle(uv_idle_t *h);

static void defer(struct net_stream *s)
{
    uv_idle_start(&s->idle, on_idle);
}

/* Record the failure; on_error follows from the idle handle.  Only the first
 * failure counts. */
static void fail(struct net_stream *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct net_stream *s, int code, const char *fmt, ...)
{
    if (s->state == ST_FAILED || s->state == ST_CLOSING)
        return;
    s->state = ST_FAILED;
    s->err_code = code;
    int n = snprintf(s->err_msg, sizeof s->err_msg, "%s: ", s->peer);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err_msg + n, sizeof s->err_msg - (size_t)n, fmt, ap);
    va_end(ap);
    uv_timer_stop(&s->timer);
    update_reading(s);
    s->err_pending = true;
    LOG_DEBUG(LOGC_IMAP, "net: %s (%s)", s->err_msg,
              code > OIMAP_EBASE && code < 0 ? uv_err_name(code) : err_str(code));
    defer(s);
}

static void on_idle(uv_idle_t *h)
{
    struct net_stream *s = h->data;
    uv_idle_stop(&s->idle);
    if (s->user_closed)
        return;
    if (s->err_pending) {
        s->err_pending = false;
        s->cb.on_error(s, s->err_code, s->err_msg, s->arg);
        return;
    }
    if (s->connect_pending) {
        s->connect_pending = false;
        if (s->state == ST_CONNECTING) {
            became_open(s);
            LOG_DEBUG(LOGC_IMAP, "net: %s: started", s->peer);
            s->cb.on_connect(s, s->arg);
            return;
        }
    }
    if (s->pump_pending) {
        s->pump_pending = false;
        pump(s);
    }
}

/* ---- timers -------------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

/* One timer serves every clock: it is set to the earliest deadline, and
 * on_timer re-arms it when activity moved that deadline on.  This keeps the
 * read path free of timer operations. */
static void arm_timer(struct net_stream *s)
{
    uint64_t t = (uint64_t)s->opts.timeout_s * 1000, deadline = UINT64_MAX;
    if (t == 0 || s->eof_wait)
        return;
    switch (s->state) {
    case ST_RESOLVING:
    case ST_CONNECTING:
    case ST_PROXY:
    case ST_HANDSHAKE:
        deadline = s->phase_since + t;
        break;
    case ST_OPEN:
        if (s->expect && !s->paused)
            deadline = s->read_since + t;
        break;
    default:
        return;
    }
    if (s->writing && s->write_since + t < deadline)
        deadline = s->write_since + t;
    if (deadline == UINT64_MAX) {
        uv_timer_stop(&s->timer);
        return;
    }
    uint64_t now = uv_now(s->loop);
    uv_timer_start(&s->timer, on_timer, deadline > now ? deadline - now : 0, 0);
}

static void on_timer(uv_timer_t *tm)
{
    struct net_stream *s = tm->data;
    if (s->eof_wait) { /* a tunnel's command did not exit in time: report EOF anyway */
        s->eof_wait = false;
        pump(s);
        return;
    }
    uint64_t now = uv_now(s->loop), t = (uint64_t)s->opts.timeout_s * 1000;
    unsigned secs = s->opts.timeout_s;
    switch (s->state) {
    case ST_RESOLVING:
        if (now - s->phase_since >= t) {
            fail(s, OIMAP_ETIMEOUT, "timed out after %u s resolving the host name", secs);
            return;
        }
        break;
    case ST_CONNECTING:
        if (now - s->phase_since >= t) {
            s->last_err = OIMAP_ETIMEOUT;
            snprintf(s->last_reason, sizeof s->last_reason, "timed out after %u s connecting",
                     secs);
            size_t n = strlen(s->tried);
            snprintf(s->tried + n, sizeof s->tried - n, "%s%s (timed out)", n ? ", " : "", s->addr);
            close_attempt(s, s->conn);
            s->ai_cur = s->ai_cur->ai_next;
            try_next(s);
            return;
        }
        break;
    case ST_PROXY:
        if (now - s->phase_since >= t) {
            fail(s, OIMAP_ETIMEOUT, "timed out after %u s waiting for the %s proxy to connect",
                 secs, proxy_type_name(s->opts.proxy.type));
            return;
        }
        break;
    case ST_HANDSHAKE:
        if (now - s->phase_since >= t) {
            fail(s, OIMAP_ETIMEOUT, "timed out after %u s in the TLS handshake", secs);
            return;
        }
        break;
    case ST_OPEN:
        if (s->expect && !s->paused && now - s->read_since >= t) {
            fail(s, OIMAP_ETIMEOUT, "timed out after %u s waiting for data", secs);
            return;
        }
        break;
    default:
        return;
    }
    if (s->writing && now - s->write_since >= t) {
        fail(s, OIMAP_ETIMEOUT, "timed out after %u s sending data", secs);
        return;
    }
    arm_timer(s);
}

/* ---- connecting ---------------------------------------------------------- */

static void start_handshake(struct net_stream *s, struct tls_config *cfg);
static void hs_progress(struct net_stream *s);
static void start_proxy(struct net_stream *s);
static void proxy_progress(struct net_stream *s);
static void server_reached(struct net_stream *s);
static int queue_raw(void *arg, const unsigned char *p, size_t len);

static void became_open(struct net_stream *s)
{
    s->state = ST_OPEN;
    s->read_since = s->write_since = uv_now(s->loop);
    arm_timer(s);
    update_reading(s);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct attempt *a = req->data;
    struct net_stream *s = a->s;
    if (status == UV_ECANCELED || s->conn != a || s->state != ST_CONNECTING)
        return; /* a closed or timed-out attempt */
    if (status < 0) {
        s->last_err = status;
        snprintf(s->last_reason, sizeof s->last_reason, "%s", uv_strerror(status));
        size_t n = strlen(s->tried);
        snprintf(s->tried + n, sizeof s->tried - n, "%s%s (%s)", n ? ", " : "", s->addr,
                 uv_strerror(status));
        close_attempt(s, a);
        s->ai_cur = s->ai_cur->ai_next;
        try_next(s);
        return;
    }
    uv_tcp_nodelay(&a->io.tcp, 1);
    uv_tcp_keepalive(&a->io.tcp, 1, s->opts.keepalive_s ? s->opts.keepalive_s : DEFAULT_KEEPALIVE);
    uv_freeaddrinfo(s->ai_list);
    s->ai_list = s->ai_cur = NULL;
    LOG_DEBUG(LOGC_IMAP, "net: %s: connected to %s", s->peer, s->addr);
    if (s->opts.proxy.type != PROXY_NONE) {
        start_proxy(s);
        return;
    }
    server_reached(s);
}

/* The byte stream to the server is there (directly, or through the proxy):
 * implicit TLS starts, or the stream opens. */
static void server_reached(struct net_stream *s)
{
    if (s->implicit_tls) {
        if (s->in_len > 0) { /* the server never speaks first in TLS */
            fail(s, OIMAP_EPROTO, "%zu unexpected bytes before the TLS handshake", s->in_len);
            return;
        }
        start_handshake(s, s->implicit_tls);
        return;
    }
    became_open(s);
    s->cb.on_connect(s, s->arg);
    /* what came right behind the proxy's answer (the greeting) */
    s->fresh = s->in_len > 0;
    if (s->state == ST_OPEN)
        pump(s);
}

/* ---- proxy ----------------------------------------------------------------- */

/* Send the request of the proxy handshake's current step. */
static void proxy_send(struct net_stream *s)
{
    unsigned char req[PROXY_REQUEST_MAX];
    char why[300];
    int n = proxy_hs_request(&s->proxy_hs, req, sizeof req, why, sizeof why);
    if (n < 0) {
        fail(s, n, "%s", why);
        return;
    }
    int r = queue_raw(s, req, (size_t)n);
    if (r < 0) {
        fail(s, r, "out of memory");
        return;
    }
    flush(s);
}

static void start_proxy(struct net_stream *s)
{
    proxy_hs_init(&s->proxy_hs, s->opts.proxy.type, s->host, s->port);
    s->state = ST_PROXY;
    s->phase_since = s->read_since = uv_now(s->loop);
    arm_timer(s);
    proxy_send(s);
    if (s->state == ST_PROXY)
        update_reading(s);
}

/* Bytes from the proxy: its answer, and perhaps the server's first bytes. */
static void proxy_progress(struct net_stream *s)
{
    char why[300];
    while (s->state == ST_PROXY) {
        int n = proxy_hs_feed(&s->proxy_hs, (const unsigned char *)s->in + s->in_off, s->in_len,
                              why, sizeof why);
        if (n == OIMAP_ENEEDMORE)
            return;
        if (n < 0) {
            fail(s, n, "%s", why);
            return;
        }
        s->in_off += (size_t)n;
        s->in_len -= (size_t)n;
        if (proxy_hs_done(&s->proxy_hs)) {
            LOG_DEBUG(LOGC_IMAP, "net: %s: the proxy connected us", s->peer);
            server_reached(s);
            return;
        }
        proxy_send(s);
    }
}

static void try_next(struct net_stream *s)
{
    for (; s->ai_cur; s->ai_cur = s->ai_cur->ai_next) {
        struct addrinfo *ai = s->ai_cur;
        const void *ip = ai->ai_family == AF_INET6
                             ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                             : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
        if (!inet_ntop(ai->ai_family, ip, s->addr, sizeof s->addr))
            snprintf(s->addr, sizeof s->addr, "?");
        struct attempt *a = calloc(1, sizeof *a);
        if (!a) {
            fail(s, UV_ENOMEM, "out of memory");
            return;
        }
        a->s = s;
        a->io.tcp.data = a;
        a->req.data = a;
        int r = uv_tcp_init(s->loop, &a->io.tcp);
        if (r < 0) {
            free(a);
            fail(s, r, "cannot create a socket: %s", uv_strerror(r));
            return;
        }
        s->refs++;
        s->attempts++;
        s->conn = a;
        r = uv_tcp_connect(&a->req, &a->io.tcp, ai->ai_addr, on_connected);
        if (r == 0) {
            s->state = ST_CONNECTING;
            s->phase_since = uv_now(s->loop);
            arm_timer(s);
            return;
        }
        /* e.g. no IPv6 on this host: move on to the next address */
        s->last_err = r;
        snprintf(s->last_reason, sizeof s->last_reason, "%s", uv_strerror(r));
        size_t n = strlen(s->tried);
        snprintf(s->tried + n, sizeof s->tried - n, "%s%s (%s)", n ? ", " : "", s->addr,
                 uv_strerror(r));
        close_attempt(s, a);
    }
    if (s->attempts > 1)
        fail(s, s->last_err, "%s (tried %s)", s->last_reason, s->tried);
    else
        fail(s, s->last_err ? s->last_err : UV_EADDRNOTAVAIL, "%s",
             s->last_reason[0] ? s->last_reason : "no usable address");
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct gai *g = req->data;
    struct net_stream *s = g->s;
    free(g);
    if (!s) { /* the stream was closed meanwhile */
        if (res)
            uv_freeaddrinfo(res);
        return;
    }
    s->gai = NULL;
    if (s->state != ST_RESOLVING) {
        if (res)
            uv_freeaddrinfo(res);
        return;
    }
    if (status < 0) {
        fail(s, status, "cannot resolve the host name: %s", uv_strerror(status));
        return;
    }
    s->ai_list = s->ai_cur = res;
    try_next(s);
}

/* libuv writes with write(2), not send(MSG_NOSIGNAL): a write to a socket
 * the server has closed (FIN, then our first write got RST) raises SIGPIPE,
 * whose default action kills the whole process in the middle of a sync.
 * Ignored once, before the first socket exists; the write then fails with
 * EPIPE and the connection ends with a clean error. */
static void ignore_sigpipe(void)
{
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
}

static bool cbs_valid(const struct net_callbacks *cbs)
{
    return cbs && cbs->on_read && cbs->on_error && cbs->on_connect;
}

/* A stream with its options, no uv handle yet. */
static struct net_stream *stream_alloc(uv_loop_t *loop, const char *host,
                                       const struct net_opts *opts, const struct net_callbacks *cbs,
                                       void *arg)
{
    static uv_once_t sigpipe_once = UV_ONCE_INIT;
    uv_once(&sigpipe_once, ignore_sigpipe);
    struct net_stream *s = calloc(1, sizeof *s);
    if (!s || !(s->host = strdup(host))) {
        free(s);
        return NULL;
    }
    s->loop = loop;
    s->cb = *cbs;
    s->arg = arg;
    if (opts)
        s->opts = *opts;
    s->opts.tls = NULL;
    if (!s->opts.max_input)
        s->opts.max_input = DEFAULT_MAX_INPUT;
    if (s->opts.max_input < INPUT_MIN_READ)
        s->opts.max_input = INPUT_MIN_READ;
    if (!s->opts.max_output)
        s->opts.max_output = DEFAULT_MAX_OUTPUT;
    return s;
}

static void stream_start(struct net_stream *s, enum net_state st)
{
    uv_timer_init(s->loop, &s->timer);
    uv_idle_init(s->loop, &s->idle);
    s->timer.data = s;
    s->idle.data = s;
    s->refs = 3; /* user, timer, idle */
    s->state = st;
    s->phase_since = uv_now(s->loop);
    arm_timer(s);
}

int net_connect(uv_loop_t *loop, const char *host, unsigned port, const struct net_opts *opts,
                const struct net_callbacks *cbs, void *arg, struct net_stream **s_r)
{
    *s_r = NULL;
    if (!host || !*host || port == 0 || port > 65535 || !cbs_valid(cbs))
        return UV_EINVAL;
    struct net_stream *s = stream_alloc(loop, host, opts, cbs, arg);
    struct gai *g = calloc(1, sizeof *g);
    if (!s || !g) {
        if (s)
            free(s->host);
        free(s);
        free(g);
        return UV_ENOMEM;
    }
    s->port = port;
    snprintf(s->peer, sizeof s->peer, strchr(host, ':') ? "[%.255s]:%u" : "%.255s:%u", host, port);
    /* Through a proxy, we resolve and connect to the proxy; the server's
     * name goes to the proxy (no DNS query of ours for it) and TLS is
     * verified against that name. */
    const char *dial_host = host;
    unsigned dial_port = port;
    if (s->opts.proxy.type != PROXY_NONE) {
        if (!s->opts.proxy.host[0] || !s->opts.proxy.port || s->opts.proxy.port > 65535) {
            free(s->host);
            free(s);
            free(g);
            return UV_EINVAL;
        }
        dial_host = s->opts.proxy.host;
        dial_port = s->opts.proxy.port;
        size_t n = strlen(s->peer);
        snprintf(s->peer + n, sizeof s->peer - n,
                 strchr(dial_host, ':') ? " via %s proxy [%.255s]:%u" : " via %s proxy %.255s:%u",
                 proxy_type_name(s->opts.proxy.type), dial_host, dial_port);
    }

    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    hints.ai_family = opts && opts->family == NET_FAMILY_IPV6   ? AF_INET6
                      : opts && opts->family == NET_FAMILY_IPV4 ? AF_INET
                                                                : AF_UNSPEC;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", dial_port);
    g->s = s;
    g->req.data = g;
    int r = uv_getaddrinfo(loop, &g->req, on_resolved, dial_host, portstr, &hints);
    if (r < 0) {
        free(s->host);
        free(s);
        free(g);
        return r;
    }
    s->gai = g;
    if (opts && opts->tls)
        s->implicit_tls = tls_config_ref(opts->tls);
    stream_start(s, ST_RESOLVING);
    *s_r = s;
    return 0;
}

/* ---- tunnels ------------------------------------------------------------- */

static void on_tunnel_exit(struct tunnel *t, void *arg)
{
    (void)t;
    struct net_stream *s = arg;
    if (s->eof_wait) { /* the end of the output was waiting for this */
        s->eof_wait = false;
        uv_timer_stop(&s->timer);
        pump(s);
    }
}

/* EOF from a tunnel: wait a moment for the command's exit status, so the
 * message can say how it ended.  true while waiting. */
static bool tunnel_eof_wait(struct net_stream *s)
{
    if (!s->tun || s->eof_waited || tunnel_exit_status(s->tun, NULL))
        return false;
    s->eof_wait = s->eof_waited = true;
    uv_timer_start(&s->timer, on_timer, 500, 0);
    return true;
}

static void fail_eof(struct net_stream *s)
{
    const char *how;
    if (!s->tun)
        fail(s, UV_EOF, "connection closed by the server%s",
             s->tls && !s->tls_eof ? " (without TLS close_notify)" : "");
    else if (tunnel_exit_status(s->tun, &how))
        fail(s, UV_EOF, "the tunnel command %s", how);
    else
        fail(s, UV_EOF, "the tunnel command closed the connection");
}

int net_spawn(uv_loop_t *loop, const char *cmd, const struct net_opts *opts,
              const struct net_callbacks *cbs, void *arg, struct net_stream **s_r)
{
    *s_r = NULL;
    if (!cmd || !*cmd || !cbs_valid(cbs) || (opts && opts->tls))
        return UV_EINVAL;
    struct net_stream *s = stream_alloc(loop, "tunnel", opts, cbs, arg);
    struct attempt *a = calloc(1, sizeof *a);
    if (!s || !a) {
        if (s)
            free(s->host);
        free(s);
        free(a);
        return UV_ENOMEM;
    }
    s->opts.proxy.type = PROXY_NONE; /* the command is the transport */
    size_t cl = strlen(cmd);
    snprintf(s->peer, sizeof s->peer, "tunnel \"%.*s%s\"", cl > 80 ? 77 : (int)cl, cmd,
             cl > 80 ? "..." : "");
    snprintf(s->addr, sizeof s->addr, "tunnel");
    int rfd, wfd;
    int r = tunnel_spawn(loop, cmd, on_tunnel_exit, s, &rfd, &wfd, &s->tun);
    if (r < 0) {
        free(s->host);
        free(s);
        free(a);
        return r;
    }
    a->s = s;
    a->io.pipe.data = a;
    a->wpipe.data = a;
    a->has_wpipe = true;
    (void)uv_pipe_init(loop, &a->io.pipe, 0); /* cannot fail on Unix */
    (void)uv_pipe_init(loop, &a->wpipe, 0);
    stream_start(s, ST_CONNECTING);
    s->refs++; /* the attempt (both pipes) */
    s->conn = a;
    if ((r = uv_pipe_open(&a->io.pipe, rfd)) < 0) {
        close(rfd);
        close(wfd);
    } else if ((r = uv_pipe_open(&a->wpipe, wfd)) < 0) {
        close(wfd);
    }
    if (r < 0) {
        fail(s, r, "cannot use the tunnel's pipes: %s", uv_strerror(r));
    } else {
        s->connect_pending = true; /* on_connect from the loop, never from here */
        defer(s);
    }
    *s_r = s;
    return 0;
}

/* ---- reading ------------------------------------------------------------- */

/* Make room at the tail of the input buffer: compact, then grow up to
 * max_input.  Returns the free tail space. */
static size_t in_reserve(struct net_stream *s, size_t want)
{
    if (s->in_len == 0)
        s->in_off = 0;
    size_t tail = s->in_cap - s->in_off - s->in_len;
    if (tail >= want)
        return tail;
    if (s->in_off > 0) {
        memmove(s->in, s->in + s->in_off, s->in_len);
        s->in_off = 0;
        tail = s->in_cap - s->in_len;
        if (tail >= want)
            return tail;
    }
    if (s->in_cap < s->opts.max_input) {
        size_t cap = s->in_cap ? s->in_cap * 2 : 64 * 1024;
        while (cap < s->in_len + want && cap < s->opts.max_input)
            cap *= 2;
        if (cap > s->opts.max_input)
            cap = s->opts.max_input;
        char *p = realloc(s->in, cap);
        if (p) {
            s->in = p;
            s->in_cap = cap;
        }
    }
    return s->in_cap - s->in_off - s->in_len;
}

/* Room for compressed input: compact zin; returns the free tail. */
static size_t zin_reserve(struct net_stream *s)
{
    if (s->zin_off > 0) {
        memmove(s->zin, s->zin + s->zin_off, s->zin_len);
        s->zin_off = 0;
    }
    return s->zin_cap - s->zin_len;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct net_stream *s = ((struct attempt *)h->data)->s;
    size_t space;
    if (s->tls) {
        unsigned char *p = tls_session_inbuf(s->tls, &space);
        *buf = uv_buf_init((char *)p, (unsigned)space);
        return;
    }
    if (s->z) {
        space = zin_reserve(s);
        *buf = uv_buf_init((char *)s->zin + s->zin_len, (unsigned)space);
        return;
    }
    space = in_reserve(s, INPUT_MIN_READ);
    /* At most INPUT_MAX_READ per read: everything read is delivered even when
     * the consumer pauses us, so this bounds the overshoot (and keeps the
     * buffer small) while a slow disk holds a download back. */
    *buf = uv_buf_init(s->in + s->in_off + s->in_len,
                       (unsigned)(space > INPUT_MAX_READ ? INPUT_MAX_READ : space));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct net_stream *s = ((struct attempt *)st->data)->s;
    if (n == 0)
        return;
    if (s->state != ST_OPEN && s->state != ST_HANDSHAKE && s->state != ST_PROXY)
        return;
    if (n == UV_ENOBUFS) {
        update_reading(s);
        return;
    }
    if (n < 0) {
        if (n != UV_EOF) {
            fail(s, (int)n, "%s", uv_strerror((int)n));
            return;
        }
        s->eof_seen = true;
        update_reading(s);
        if (s->state == ST_HANDSHAKE) {
            fail(s, UV_EOF, "connection closed by the server during the TLS handshake");
            return;
        }
        if (s->state == ST_PROXY) {
            fail(s, UV_EOF, "connection closed by the %s proxy before it connected us",
                 proxy_type_name(s->opts.proxy.type));
            return;
        }
        s->eof_pending = true;
        pump(s);
        return;
    }
    s->read_since = uv_now(s->loop);
    if (s->tls) {
        tls_session_inbuf_commit(s->tls, (size_t)n);
        if (s->state == ST_HANDSHAKE) {
            hs_progress(s);
            return;
        }
    } else if (s->z) {
        s->zin_len += (size_t)n; /* inflated by pump() */
    } else {
        s->in_len += (size_t)n;
        s->fresh = true;
        if (s->state == ST_PROXY) {
            proxy_progress(s);
            return;
        }
    }
    pump(s);
}

static void update_reading(struct net_stream *s)
{
    bool want = false;
    if (s->conn && !s->eof_seen) {
        if (s->state == ST_HANDSHAKE || s->state == ST_PROXY)
            want = true;
        else if (s->state == ST_OPEN && !s->paused) {
            if (s->tls) {
                size_t space;
                tls_session_inbuf(s->tls, &space);
                want = space > 0;
            } else if (s->z) {
                want = s->zin_len < s->zin_cap;
            } else {
                want = s->in_len < s->opts.max_input;
            }
        }
    }
    if (want == s->reading || !s->conn)
        return;
    if (want) {
        int r = uv_read_start(&s->conn->io.st, on_alloc, on_read);
        if (r < 0) {
            fail(s, r, "cannot read: %s", uv_strerror(r));
            return;
        }
    } else {
        uv_read_stop(&s->conn->io.st);
    }
    s->reading = want;
}

/* Decrypt what TLS holds, into the clear-text buffer or, with compression,
 * into zin.  progress: something was decrypted.  Negative after fail(). */
static int decrypt_input(struct net_stream *s, bool *progress)
{
    while (s->tls && !s->tls_eof) {
        char *dst;
        size_t space;
        if (s->z) {
            space = zin_reserve(s);
            dst = (char *)s->zin + s->zin_len;
        } else {
            space = in_reserve(s, INPUT_MIN_READ);
            dst = s->in + s->in_off + s->in_len;
        }
        if (space == 0)
            break;
        ssize_t r = tls_session_read(s->tls, dst, space);
        if (r == 0)
            break;
        if (r == UV_EOF) {
            s->tls_eof = s->eof_pending = true;
            break;
        }
        if (r < 0) {
            fail(s, (int)r, "%s", tls_session_error(s->tls));
            return (int)r;
        }
        *progress = true;
        if (s->z) {
            s->zin_len += (size_t)r;
        } else {
            s->in_len += (size_t)r;
            s->fresh = true;
        }
    }
    return 0;
}

/* Inflate zin into the clear-text buffer as far as that has room (the
 * bound holds however well the server's data compresses).  progress:
 * something was taken or made.  Negative after fail(). */
static int inflate_input(struct net_stream *s, bool *progress)
{
    while (s->z && (s->zin_len > 0 || zstream_inflate_pending(s->z))) {
        size_t space = in_reserve(s, INPUT_MIN_READ), used, made;
        if (space == 0)
            break;
        int r = zstream_inflate(s->z, s->zin + s->zin_off, s->zin_len, &used,
                                s->in + s->in_off + s->in_len, space, &made);
        s->zin_off += used;
        s->zin_len -= used;
        if (made > 0) {
            s->in_len += made;
            s->fresh = true;
        }
        if (r < 0) {
            if (r == -ENOMEM)
                fail(s, UV_ENOMEM, "out of memory inflating the compressed stream");
            else
                fail(s, OIMAP_EPROTO, "compressed stream from the server is corrupt: %s",
                     zstream_error(s->z));
            return r;
        }
        if (used == 0 && made == 0)
            break;
        *progress = true;
    }
    return 0;
}

/* Everything that can become clear text now: decrypt, inflate, and again
 * while inflating made room for more decrypted bytes. */
static int fill_input(struct net_stream *s)
{
    bool progress = true;
    while (progress) {
        progress = false;
        if (decrypt_input(s, &progress) < 0 || inflate_input(s, &progress) < 0)
            return -1;
        if (!s->z)
            break; /* decrypt_input() already went as far as it can */
    }
    return 0;
}

/* Decrypt and inflate what can be, and offer the input to the upper layer,
 * for as long as it makes progress. */
static void pump(struct net_stream *s)
{
    while (s->state == ST_OPEN && !s->paused) {
        if (fill_input(s) < 0)
            return;
        if (!s->fresh || s->in_len == 0)
            break;
        s->fresh = false;
        size_t before = s->in_len;
        s->cb.on_read(s, s->in + s->in_off, s->in_len, s->arg);
        if (s->state != ST_OPEN || s->paused)
            return; /* closed, failed, paused, or STARTTLS began */
        if (s->in_len == before) {
            if (before >= s->opts.max_input) {
                fail(s, OIMAP_ETOOBIG,
                     "more than %zu bytes received without the reader making progress",
                     s->opts.max_input);
                return;
            }
            break; /* the reader waits for more */
        }
        /* Progress: offer the rest again (a reader may take one response
         * per call); with TLS or compression, also decrypt and inflate what
         * the space freed allows. */
        s->fresh = s->in_len > 0;
    }
    if (s->state != ST_OPEN)
        return;
    if (s->eof_pending && !s->paused) {
        if (!tunnel_eof_wait(s))
            fail_eof(s);
        return;
    }
    update_reading(s);
}

void net_consume(struct net_stream *s, size_t n)
{
    if (n > s->in_len)
        n = s->in_len;
    s->in_off += n;
    s->in_len -= n;
    if (s->in_len == 0)
        s->in_off = 0;
}

size_t net_input_buffered(const struct net_stream *s)
{
    return s->in_len;
}

void net_pause(struct net_stream *s)
{
    if (s->paused)
        return;
    s->paused = true;
    update_reading(s);
    arm_timer(s);
}

void net_resume(struct net_stream *s)
{
    if (!s->paused)
        return;
    s->paused = false;
    s->read_since = uv_now(s->loop);
    if (s->state != ST_OPEN)
        return;
    arm_timer(s);
    /* Offer what is buffered again, from the loop, never from here. */
    if (s->in_len > 0 || s->eof_pending || (s->tls && tls_session_inbuf_len(s->tls) > 0) ||
        (s->tls && tls_session_pending(s->tls)) ||
        (s->z && (s->zin_len > 0 || zstream_inflate_pending(s->z)))) {
        s->fresh = true;
        s->pump_pending = true;
        defer(s);
    }
    update_reading(s);
}

void net_expect_data(struct net_stream *s, bool on)
{
    if (on && !s->expect)
        s->read_since = uv_now(s->loop);
    s->expect = on;
    arm_timer(s);
}

/* ---- writing --------------------------------------------------------------- */

static int wbuf_append(struct wbuf *b, const void *p, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 16 * 1024;
        while (cap < b->len + len)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np)
            return UV_ENOMEM;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, len);
    b->len += len;
    return 0;
}

/* The TLS layer's way out, and the plain path's. */
static int queue_raw(void *arg, const unsigned char *p, size_t len)
{
    struct net_stream *s = arg;
    return wbuf_append(&s->wq, p, len);
}

static void on_written(uv_write_t *req, int status)
{
    struct net_stream *s = req->data;
    s->writing = false;
    s->wfly.len = s->wfly_off = 0;
    if (s->wfly.cap > 1024 * 1024) { /* give a bulk upload's buffer back */
        free(s->wfly.p);
        s->wfly.p = NULL;
        s->wfly.cap = 0;
    }
    if (status == UV_ECANCELED || s->state == ST_FAILED || s->state == ST_CLOSING)
        return;
    if (status < 0) {
        fail(s, status, "sending failed: %s", uv_strerror(status));
        return;
    }
    s->write_since = uv_now(s->loop);
    if (s->wq.len > 0)
        flush(s); /* may finish at once through uv_try_write */
    if (s->writing || (s->state != ST_OPEN && s->state != ST_HANDSHAKE))
        return;
    arm_timer(s);
    if (s->cb.on_drain && (s->state == ST_OPEN))
        s->cb.on_drain(s, s->arg);
}

static void flush(struct net_stream *s)
{
    if (s->writing || s->wq.len == 0 || !s->conn ||
        (s->state != ST_OPEN && s->state != ST_HANDSHAKE && s->state != ST_PROXY))
        return;
    uv_buf_t b = uv_buf_init(s->wq.p, (unsigned)s->wq.len);
    int n = uv_try_write(wr_stream(s->conn), &b, 1);
    if (n < 0 && n != UV_EAGAIN) {
        fail(s, n, "sending failed: %s", uv_strerror(n));
        return;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    if (done == s->wq.len) {
        s->wq.len = 0;
        return;
    }
    /* The rest goes through uv_write; wq becomes the in-flight buffer and
     * new writes collect in the other one. */
    struct wbuf t = s->wfly;
    s->wfly = s->wq;
    s->wq = t;
    s->wq.len = 0;
    s->wfly_off = done;
    b = uv_buf_init(s->wfly.p + done, (unsigned)(s->wfly.len - done));
    s->wreq.data = s;
    int r = uv_write(&s->wreq, wr_stream(s->conn), &b, 1, on_written);
    if (r < 0) {
        fail(s, r, "sending failed: %s", uv_strerror(r));
        return;
    }
    s->writing = true;
    s->write_since = uv_now(s->loop);
    arm_timer(s);
}

/* zstream's way out: through TLS, or into the queue. */
static int compressed_out(void *arg, const unsigned char *p, size_t len)
{
    struct net_stream *s = arg;
    return s->tls ? tls_session_write(s->tls, p, len) : wbuf_append(&s->wq, p, len);
}

/* One write batch, deflated and sync-flushed so the server can act on it at
 * once.  A failure half-way leaves the server's decompressor out of step
 * with ours, so unlike a plain write it always ends the connection. */
static int write_compressed(struct net_stream *s, const void *data, size_t len)
{
    int r = zstream_deflate(s->z, data, len, compressed_out, s);
    if (r == OIMAP_ETLS)
        fail(s, r, "%s", tls_session_error(s->tls));
    else if (r < 0)
        fail(s, r, "cannot compress: %s", zstream_error(s->z));
    else
        flush(s);
    return r;
}

int net_write(struct net_stream *s, const void *data, size_t len)
{
    if (s->state == ST_HANDSHAKE)
        return UV_EBUSY;
    if (s->state != ST_OPEN)
        return UV_ENOTCONN;
    if (net_write_queued(s) + len > s->opts.max_output)
        return UV_ENOBUFS;
    if (s->z)
        return write_compressed(s, data, len);
    int r = s->tls ? tls_session_write(s->tls, data, len) : wbuf_append(&s->wq, data, len);
    if (r < 0) {
        if (r == OIMAP_ETLS)
            fail(s, r, "%s", tls_session_error(s->tls));
        return r;
    }
    flush(s);
    return 0;
}

size_t net_write_queued(const struct net_stream *s)
{
    return s->wq.len + (s->writing ? s->wfly.len - s->wfly_off : 0);
}

/* ---- TLS ------------------------------------------------------------------ */

static void hs_progress(struct net_stream *s)
{
    int r = tls_session_handshake(s->tls);
    flush(s);
    if (s->state != ST_HANDSHAKE)
        return;
    if (r == TLS_AGAIN) {
        update_reading(s);
        return;
    }
    if (r < 0) {
        fail(s, r == OIMAP_ECERT ? OIMAP_ECERT : r, "%s", tls_session_error(s->tls));
        return;
    }
    s->tls_up = true;
    LOG_DEBUG(LOGC_IMAP, "net: %s: %s", s->peer, tls_session_info(s->tls));
    became_open(s);
    if (s->on_tls) {
        void (*cb)(struct net_stream *, void *) = s->on_tls;
        s->on_tls = NULL;
        cb(s, s->arg);
    } else {
        s->cb.on_connect(s, s->arg);
    }
    if (s->state == ST_OPEN)
        pump(s); /* records that came with the last handshake flight */
}

static void start_handshake(struct net_stream *s, struct tls_config *cfg)
{
    int r = tls_session_new(cfg, s->host, queue_raw, s, &s->tls);
    if (r < 0) {
        fail(s, r, "cannot set up TLS: %s", err_str(r));
        return;
    }
    s->state = ST_HANDSHAKE;
    s->phase_since = uv_now(s->loop);
    arm_timer(s);
    hs_progress(s);
}

int net_start_tls(struct net_stream *s, struct tls_config *cfg,
                  void (*on_tls)(struct net_stream *s, void *arg))
{
    if (s->tls || s->tun)
        return UV_EINVAL;
    if (s->state != ST_OPEN || !s->conn)
        return UV_ENOTCONN;
    if (!cfg || !on_tls)
        return UV_EINVAL;
    /* Everything not consumed arrived before the handshake: drop it. */
    size_t dropped = s->in_len;
    s->in_len = s->in_off = 0;
    s->fresh = false;
    if (dropped)
        LOG_DEBUG(LOGC_IMAP, "net: %s: discarded %zu bytes received before STARTTLS", s->peer,
                  dropped);
    s->on_tls = on_tls;
    start_handshake(s, cfg);
    return dropped > (size_t)INT32_MAX ? INT32_MAX : (int)dropped;
}

/* ---- COMPRESS=DEFLATE ----------------------------------------------------- */

int net_start_compress(struct net_stream *s)
{
    if (s->z || s->state == ST_HANDSHAKE)
        return UV_EINVAL;
    if (s->state != ST_OPEN || !s->conn)
        return UV_ENOTCONN;
    /* What is not consumed came after the server's OK: compressed already. */
    size_t cap = s->in_len > ZIN_CAP ? s->in_len : ZIN_CAP;
    unsigned char *zin = malloc(cap);
    if (!zin)
        return UV_ENOMEM;
    int r = zstream_new(&s->z);
    if (r < 0) {
        free(zin);
        return r == -ENOMEM ? UV_ENOMEM : r;
    }
    s->zin = zin;
    s->zin_cap = cap;
    memcpy(s->zin, s->in + s->in_off, s->in_len);
    s->zin_len = s->in_len;
    s->in_len = s->in_off = 0;
    s->fresh = false;
    LOG_DEBUG(LOGC_IMAP, "net: %s: DEFLATE compression on (%zu bytes already compressed)", s->peer,
              s->zin_len);
    if (s->zin_len > 0) {
        s->pump_pending = true; /* inflated from the loop, never from here */
        defer(s);
    }
    update_reading(s);
    return 0;
}

bool net_is_compressed(const struct net_stream *s)
{
    return s->z != NULL;
}

/* ---- closing and accessors ------------------------------------------------ */

void net_close(struct net_stream *s, void (*on_closed)(void *arg))
{
    if (!s || s->user_closed)
        return;
    s->user_closed = true;
    s->on_closed = on_closed;
    if (s->z) {
        struct zstream_counts n;
        zstream_get_counts(s->z, &n);
        LOG_DEBUG(LOGC_IMAP,
                  "net: %s: DEFLATE: received %llu bytes for %llu, sent %llu bytes for %llu",
                  s->peer, (unsigned long long)n.in_packed, (unsigned long long)n.in_clear,
                  (unsigned long long)n.out_packed, (unsigned long long)n.out_clear);
    }
    if (s->gai) {
        s->gai->s = NULL; /* it frees itself when it completes */
        uv_cancel((uv_req_t *)&s->gai->req);
        s->gai = NULL;
    }
    if (s->state == ST_OPEN && s->tls_up && s->conn && !s->writing &&
        tls_session_close_notify(s->tls) == 0 && s->wq.len > 0) {
        uv_buf_t b = uv_buf_init(s->wq.p, (unsigned)s->wq.len);
        (void)uv_try_write(wr_stream(s->conn), &b, 1); /* best effort */
    }
    s->state = ST_CLOSING;
    if (s->conn)
        close_attempt(s, s->conn);
    tunnel_release(&s->tun); /* after our end closed: the command sees EOF */
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->idle, on_handle_closed);
    unref(s);
}

const char *net_peer(const struct net_stream *s)
{
    return s->peer;
}

const char *net_peer_addr(const struct net_stream *s)
{
    return s->state == ST_RESOLVING ? "" : s->addr;
}

const char *net_error_msg(const struct net_stream *s)
{
    return s->state == ST_FAILED ? s->err_msg : NULL;
}

bool net_is_tls(const struct net_stream *s)
{
    return s->tls_up;
}

const char *net_tls_info(const struct net_stream *s)
{
    return s->tls_up ? tls_session_info(s->tls) : NULL;
}
