/* test_net.c - net_stream over real sockets on a real uv loop.
 *
 * The servers are libuv listeners in the same loop as the client.  The
 * "try every address" test runs in a private mount namespace with its own
 * /etc/hosts (skipped when that is not possible, e.g. not root).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>
#include <uv.h>

#include "err.h"
#include "net.h"
#include "tap.h"
#include "uvtest.h"

/* ---- a client that records everything ------------------------------------ */

struct client {
    struct net_stream *s;
    bool connected, failed, closed, drained, done;
    int err;
    char msg[1024];
    char data[1 << 16];
    size_t dlen;
    size_t total;       /* bytes consumed in all */
    size_t consume_max; /* consume at most this many per offer (0 = all) */
    bool line_mode;     /* consume only whole lines */
    bool pause_once;    /* pause in the first on_read */
    int offers;
    uint64_t t_fail;
    size_t want_total; /* done when total reaches it */
};

static void c_connect(struct net_stream *s, void *arg)
{
    struct client *c = arg;
    (void)s;
    c->connected = true;
}

static void c_read(struct net_stream *s, const char *data, size_t len, void *arg)
{
    struct client *c = arg;
    c->offers++;
    size_t n = len;
    if (c->line_mode) {
        const char *nl = memchr(data, '\n', len);
        n = nl ? (size_t)(nl - data) + 1 : 0;
    }
    if (c->consume_max && n > c->consume_max)
        n = c->consume_max;
    size_t keep = n < sizeof c->data - 1 - c->dlen ? n : sizeof c->data - 1 - c->dlen;
    memcpy(c->data + c->dlen, data, keep);
    c->dlen += keep;
    c->data[c->dlen] = '\0';
    c->total += n;
    net_consume(s, n);
    if (c->pause_once) {
        c->pause_once = false;
        net_pause(s);
    }
    if (c->want_total && c->total >= c->want_total)
        c->done = true;
}

static void c_drain(struct net_stream *s, void *arg)
{
    struct client *c = arg;
    (void)s;
    c->drained = true;
}

static void c_error(struct net_stream *s, int code, const char *msg, void *arg)
{
    struct client *c = arg;
    (void)s;
    c->failed = true;
    c->err = code;
    c->t_fail = uv_now(loop);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
}

static void c_closed(void *arg)
{
    struct client *c = arg;
    c->closed = true;
}

static const struct net_callbacks cbs = {c_connect, c_read, c_drain, c_error};

static void c_close(struct client *c)
{
    if (c->s) {
        net_close(c->s, c_closed);
        c->s = NULL;
        run_until(&c->closed, 2000);
    }
}

/* ---- servers --------------------------------------------------------------- */

enum srv_mode { SRV_ECHO, SRV_SILENT, SRV_SCRIPT, SRV_NOREAD };

struct srv {
    uv_tcp_t lis;
    enum srv_mode mode;
    const char *script;
    size_t script_len;
    bool close_after;
    int port;
    int accepted;
    uv_tcp_t *conns[8];
    int nconns;
};

static void srv_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(sz);
    b->len = b->base ? sz : 0;
}

static void free_wreq(uv_write_t *w, int st)
{
    (void)st;
    free(w->data);
    free(w);
}

static void srv_write(uv_tcp_t *t, const void *p, size_t len)
{
    uv_write_t *w = malloc(sizeof *w);
    char *copy = malloc(len ? len : 1);
    memcpy(copy, p, len);
    w->data = copy;
    uv_buf_t b = uv_buf_init(copy, (unsigned)len);
    uv_write(w, (uv_stream_t *)t, &b, 1, free_wreq);
}

static void srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    if (n > 0)
        srv_write((uv_tcp_t *)st, b->base, (size_t)n);
    else if (n < 0)
        uv_read_stop(st);
    free(b->base);
}

static void srv_sink(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    if (n < 0)
        uv_read_stop(st);
    free(b->base);
}

static void srv_shut(uv_shutdown_t *req, int st)
{
    (void)st;
    free(req);
}

static void srv_conn(uv_stream_t *lis, int status)
{
    struct srv *sv = lis->data;
    if (status < 0)
        return;
    uv_tcp_t *t = malloc(sizeof *t);
    uv_tcp_init(loop, t);
    if (uv_accept(lis, (uv_stream_t *)t) < 0 || sv->nconns == 8) {
        uv_close((uv_handle_t *)t, (uv_close_cb)free);
        return;
    }
    sv->accepted++;
    sv->conns[sv->nconns++] = t;
    switch (sv->mode) {
    case SRV_ECHO:
        uv_read_start((uv_stream_t *)t, srv_alloc, srv_read);
        break;
    case SRV_SILENT:
        uv_read_start((uv_stream_t *)t, srv_alloc, srv_sink);
        break;
    case SRV_NOREAD:
        break;
    case SRV_SCRIPT:
        srv_write(t, sv->script, sv->script_len);
        if (sv->close_after) {
            uv_shutdown_t *req = malloc(sizeof *req);
            uv_shutdown(req, (uv_stream_t *)t, srv_shut);
        }
        uv_read_start((uv_stream_t *)t, srv_alloc, srv_sink);
        break;
    }
}

static int srv_start(struct srv *sv, const char *ip, int port)
{
    struct sockaddr_storage ss;
    if (strchr(ip, ':'))
        uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss);
    else
        uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss);
    uv_tcp_init(loop, &sv->lis);
    sv->lis.data = sv;
    int r = uv_tcp_bind(&sv->lis, (struct sockaddr *)&ss, strchr(ip, ':') ? UV_TCP_IPV6ONLY : 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&sv->lis, 8, srv_conn);
    if (r < 0) {
        uv_close((uv_handle_t *)&sv->lis, NULL);
        return r;
    }
    int len = sizeof ss;
    uv_tcp_getsockname(&sv->lis, (struct sockaddr *)&ss, &len);
    sv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static void srv_stop(struct srv *sv)
{
    for (int i = 0; i < sv->nconns; i++)
        uv_close((uv_handle_t *)sv->conns[i], (uv_close_cb)free);
    sv->nconns = 0;
    uv_close((uv_handle_t *)&sv->lis, NULL);
    run_for(30);
}

/* A port nothing listens on (bound, then released). */
static int free_port(void)
{
    struct srv sv = {0};
    sv.mode = SRV_SILENT;
    if (srv_start(&sv, "127.0.0.1", 0) < 0)
        return 1;
    int p = sv.port;
    srv_stop(&sv);
    return p;
}

static int connect_c(struct client *c, const char *host, int port, const struct net_opts *o)
{
    return net_connect(loop, host, (unsigned)port, o, &cbs, c, &c->s);
}

/* ---- tests --------------------------------------------------------------- */

static void test_echo(void)
{
    struct srv sv = {0};
    sv.mode = SRV_ECHO;
    ok(srv_start(&sv, "127.0.0.1", 0) == 0, "echo server listens");
    struct client *c = calloc(1, sizeof *c);
    struct net_opts o = {.timeout_s = 5};
    is_int(connect_c(c, "127.0.0.1", sv.port, &o), 0, "net_connect starts");
    ok(!c->connected, "on_connect not called from inside net_connect");
    ok(run_until(&c->connected, 3000), "connected");
    char peer[64];
    snprintf(peer, sizeof peer, "127.0.0.1:%d", sv.port);
    is_str(net_peer(c->s), peer, "peer");
    is_str(net_peer_addr(c->s), "127.0.0.1", "peer address");
    ok(!net_is_tls(c->s), "plain stream");

    /* line_mode: the client consumes whole lines; the rest stays buffered */
    c->line_mode = true;
    c->want_total = 6;
    is_int(net_write(c->s, "hello\nwor", 9), 0, "write");
    net_expect_data(c->s, true);
    ok(run_until(&c->done, 3000), "echo arrived");
    is_mem(c->data, c->dlen, "hello\n", 6, "first line consumed");
    is_int(net_input_buffered(c->s), 3, "partial line stays buffered");
    c->done = false;
    c->want_total = 12;
    net_write(c->s, "ld\n", 3);
    ok(run_until(&c->done, 3000), "second line");
    is_mem(c->data, c->dlen, "hello\nworld\n", 12, "buffered bytes offered again with new ones");

    /* bulk: 8 MB through the write queue, echoed back */
    size_t big = 8u << 20;
    char *buf = malloc(big);
    for (size_t i = 0; i < big; i++)
        buf[i] = (char)('a' + i % 26);
    buf[big - 1] = '\n';
    c->line_mode = false;
    c->total = 0;
    c->done = false;
    c->drained = false;
    c->want_total = big;
    int wr = 0;
    for (size_t off = 0; off < big && wr == 0; off += 1 << 20)
        wr = net_write(c->s, buf + off, 1 << 20);
    is_int(wr, 0, "8 MB queued");
    ok(net_write_queued(c->s) > 0, "write queue reports %zu bytes", net_write_queued(c->s));
    ok(run_until(&c->done, 10000), "8 MB echoed (%zu)", c->total);
    ok(c->drained, "on_drain fired");
    is_int(net_write_queued(c->s), 0, "queue empty");
    ok(!c->failed, "no error (%s)", c->msg);
    free(buf);

    /* max_output bounds the queue */
    struct client *d = calloc(1, sizeof *d);
    struct net_opts o2 = {.max_output = 1000};
    connect_c(d, "127.0.0.1", sv.port, &o2);
    is_int(net_write(d->s, "x", 1), UV_ENOTCONN, "write before connect refused");
    run_until(&d->connected, 3000);
    char k[1500] = {0};
    is_int(net_write(d->s, k, sizeof k), UV_ENOBUFS, "write above max_output refused");
    c_close(d);
    ok(d->closed && !d->failed, "closed without error");
    free(d);

    c_close(c);
    ok(c->closed, "on_closed called");
    srv_stop(&sv);
    free(c);
}

static void test_refused(void)
{
    int port = free_port();
    struct client c = {0};
    struct net_opts o = {.timeout_s = 5};
    is_int(connect_c(&c, "127.0.0.1", port, &o), 0, "connect to a closed port starts");
    ok(run_until(&c.failed, 3000), "fails");
    ok(!c.connected, "never connected");
    is_int(c.err, UV_ECONNREFUSED, "ECONNREFUSED");
    char want[100];
    snprintf(want, sizeof want, "127.0.0.1:%d: connection refused", port);
    is_str(c.msg, want, "message names host:port and reason");
    is_int(net_write(c.s, "x", 1), UV_ENOTCONN, "write after failure refused");
    c_close(&c);
    ok(c.closed, "closed");

    struct client d = {0};
    is_int(net_connect(loop, "", 1, &o, &cbs, &d, &d.s), UV_EINVAL, "empty host rejected");
    ok(d.s == NULL, "no stream");
    is_int(net_connect(loop, "x", 70000, &o, &cbs, &d, &d.s), UV_EINVAL, "bad port rejected");
}

static void test_timeout(void)
{
    struct srv sv = {0};
    sv.mode = SRV_SILENT;
    srv_start(&sv, "127.0.0.1", 0);
    struct client c = {0};
    struct net_opts o = {.timeout_s = 1};
    connect_c(&c, "127.0.0.1", sv.port, &o);
    ok(run_until(&c.connected, 3000), "connected to a silent server");
    /* idle (nothing expected): silence is fine */
    run_for(1500);
    ok(!c.failed, "no timeout while idle (%s)", c.msg);
    uint64_t t0 = uv_now(loop);
    net_write(c.s, "a NOOP\r\n", 8);
    net_expect_data(c.s, true);
    ok(run_until(&c.failed, 5000), "times out when an answer is awaited");
    uint64_t dt = c.t_fail - t0;
    ok(dt >= 950 && dt < 2500, "after about 1 s (%llu ms)", (unsigned long long)dt);
    is_int(c.err, OIMAP_ETIMEOUT, "OIMAP_ETIMEOUT");
    char want[100];
    snprintf(want, sizeof want, "127.0.0.1:%d: timed out after 1 s waiting for data", sv.port);
    is_str(c.msg, want, "timeout message");
    c_close(&c);
    srv_stop(&sv);

    /* write side: a server that never reads; the queue stops draining */
    sv = (struct srv){0};
    sv.mode = SRV_NOREAD;
    srv_start(&sv, "127.0.0.1", 0);
    struct client *w = calloc(1, sizeof *w);
    struct net_opts o2 = {.timeout_s = 1, .max_output = 256u << 20};
    connect_c(w, "127.0.0.1", sv.port, &o2);
    run_until(&w->connected, 3000);
    char *junk = calloc(1, 1 << 20);
    for (int i = 0; i < 48; i++)
        net_write(w->s, junk, 1 << 20);
    free(junk);
    ok(run_until(&w->failed, 8000), "write times out (%zu bytes queued)", net_write_queued(w->s));
    is_int(w->err, OIMAP_ETIMEOUT, "OIMAP_ETIMEOUT");
    ok(strstr(w->msg, "timed out after 1 s sending data") != NULL, "write timeout message: %s",
       w->msg);
    c_close(w);
    free(w);
    srv_stop(&sv);
}

static void test_eof_pause(void)
{
    static const char script[] = "* one\r\n* two\r\n* three\r\n";
    struct srv sv = {0};
    sv.mode = SRV_SCRIPT;
    sv.script = script;
    sv.script_len = sizeof script - 1;
    sv.close_after = true;
    srv_start(&sv, "127.0.0.1", 0);
    struct client c = {0};
    c.line_mode = true;
    c.pause_once = true;
    connect_c(&c, "127.0.0.1", sv.port, NULL);
    run_until(&c.connected, 3000);
    run_for(300);
    is_int(c.offers, 1, "one offer, then paused");
    is_str(c.data, "* one\r\n", "first line only");
    ok(!c.failed, "EOF not reported while paused");
    net_resume(c.s);
    is_int(c.offers, 1, "resume offers nothing from inside the call");
    ok(run_until(&c.failed, 3000), "EOF after resume");
    is_str(c.data, script, "every line delivered before EOF");
    is_int(c.err, UV_EOF, "UV_EOF");
    ok(strstr(c.msg, "connection closed by the server") != NULL, "EOF message: %s", c.msg);
    c_close(&c);
    srv_stop(&sv);

    /* a reader that never consumes cannot make the buffer grow without bound */
    static char blob[100000];
    memset(blob, 'x', sizeof blob);
    sv = (struct srv){0};
    sv.mode = SRV_SCRIPT;
    sv.script = blob;
    sv.script_len = sizeof blob;
    srv_start(&sv, "127.0.0.1", 0);
    struct client *d = calloc(1, sizeof *d);
    d->line_mode = true; /* no newline ever comes */
    struct net_opts o = {.max_input = 32768};
    connect_c(d, "127.0.0.1", sv.port, &o);
    ok(run_until(&d->failed, 3000), "unbounded line fails");
    is_int(d->err, OIMAP_ETOOBIG, "OIMAP_ETOOBIG");
    ok(net_input_buffered(d->s) <= 32768, "buffer stayed bounded (%zu)", net_input_buffered(d->s));
    c_close(d);
    free(d);
    srv_stop(&sv);
}

static void test_close_early(void)
{
    struct client c = {0};
    connect_c(&c, "127.0.0.1", free_port(), NULL);
    net_close(c.s, c_closed);
    ok(!c.closed, "on_closed not called from inside net_close");
    run_until(&c.closed, 2000);
    ok(c.closed && !c.failed && !c.connected, "closed while resolving: only on_closed");
}

/* A private mount namespace with our own /etc/hosts and an empty
 * resolv.conf (DNS queries go to 127.0.0.1:53 and fail fast). */
static bool private_hosts(void)
{
    char dir[] = "/tmp/oimap-net-XXXXXX";
    if (geteuid() != 0 || !mkdtemp(dir))
        return false;
    char hosts[300], resolv[300];
    snprintf(hosts, sizeof hosts, "%s/hosts", dir);
    snprintf(resolv, sizeof resolv, "%s/resolv.conf", dir);
    FILE *f = fopen(hosts, "w");
    if (!f)
        return false;
    fprintf(f, "127.0.0.1 localhost\n::1 dual.test\n127.0.0.1 dual.test\n");
    fclose(f);
    f = fopen(resolv, "w");
    if (!f)
        return false;
    fprintf(f, "options timeout:1 attempts:1\n");
    fclose(f);
    bool okay = unshare(CLONE_NEWNS) == 0 &&
                mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) == 0 &&
                mount(hosts, "/etc/hosts", "none", MS_BIND, NULL) == 0 &&
                mount(resolv, "/etc/resolv.conf", "none", MS_BIND, NULL) == 0;
    unlink(hosts);
    unlink(resolv);
    rmdir(dir);
    return okay;
}

static void test_addresses(bool have_ns)
{
    if (!have_ns) {
        ok(1, "# SKIP no private mount namespace for /etc/hosts");
        return;
    }
    /* dual.test is ::1 first, then 127.0.0.1; only 127.0.0.1 listens */
    struct srv sv = {0};
    sv.mode = SRV_SILENT;
    srv_start(&sv, "127.0.0.1", 0);
    struct client c = {0};
    struct net_opts o = {.timeout_s = 3};
    connect_c(&c, "dual.test", sv.port, &o);
    ok(run_until(&c.connected, 3000), "dual.test connects (%s)", c.msg);
    is_str(net_peer_addr(c.s), "127.0.0.1", "after ::1 was refused, 127.0.0.1 answered");
    c_close(&c);

    struct client d = {0};
    o.family = NET_FAMILY_IPV6;
    connect_c(&d, "dual.test", sv.port, &o);
    ok(run_until(&d.failed, 3000), "ipv6 = yes: only ::1 tried");
    char want[200];
    snprintf(want, sizeof want, "dual.test:%d: connection refused", sv.port);
    is_str(d.msg, want, "refused on ::1");
    c_close(&d);

    struct client e = {0};
    o.family = NET_FAMILY_IPV4;
    connect_c(&e, "dual.test", sv.port, &o);
    ok(run_until(&e.connected, 3000), "ipv6 = no: 127.0.0.1");
    c_close(&e);
    srv_stop(&sv);

    /* all addresses refused: the message lists them */
    int port = free_port();
    struct client f = {0};
    o.family = NET_FAMILY_ANY;
    connect_c(&f, "dual.test", port, &o);
    ok(run_until(&f.failed, 3000), "all refused");
    snprintf(want, sizeof want,
             "dual.test:%d: connection refused (tried ::1 (connection refused), 127.0.0.1 "
             "(connection refused))",
             port);
    is_str(f.msg, want, "every address named");
    c_close(&f);

    struct client g = {0};
    connect_c(&g, "no-such-host.invalid", 143, &o);
    ok(run_until(&g.failed, 8000), "unknown host fails");
    ok(strncmp(g.msg, "no-such-host.invalid:143: cannot resolve the host name", 54) == 0,
       "resolve error: %s", g.msg);
    c_close(&g);
}

/* ---- tunnels (net_spawn) ---------------------------------------------------- */

static bool pid_gone(int pid)
{
    return kill(pid, 0) != 0 && errno == ESRCH;
}

/* Run the loop until pid is gone (exited and reaped); the milliseconds it took. */
static uint64_t wait_gone(int pid, unsigned max_ms)
{
    uint64_t t0 = uv_now(loop);
    while (!pid_gone(pid) && uv_now(loop) - t0 < max_ms)
        run_for(20);
    return uv_now(loop) - t0;
}

static void test_tunnel(void)
{
    struct client c = {0};
    struct net_opts o = {.timeout_s = 5};
    is_int(net_spawn(loop, "", &o, &cbs, &c, &c.s), UV_EINVAL, "empty command refused");
    ok(c.s == NULL, "no stream");

    /* cat echoes what we write: a full-duplex stream over two pipes */
    ok(net_spawn(loop, "cat", &o, &cbs, &c, &c.s) == 0, "net_spawn cat");
    ok(!c.connected, "on_connect not called from inside net_spawn");
    ok(run_until(&c.connected, 3000), "tunnel connected");
    is_str(net_peer(c.s), "tunnel \"cat\"", "peer names the command");
    is_int(net_start_tls(c.s, NULL, NULL), UV_EINVAL, "no TLS over a tunnel");
    c.want_total = 12;
    net_write(c.s, "hello\nworld\n", 12);
    net_expect_data(c.s, true);
    ok(run_until(&c.done, 3000), "echo through the tunnel");
    is_str(c.data, "hello\nworld\n", "bytes intact");
    c_close(&c);
    ok(c.closed, "closed");

    /* the command's end: its output, then EOF with the exit status */
    struct client d = {0};
    ok(net_spawn(loop, "printf '* OK hi\\r\\n'; exit 3", &o, &cbs, &d, &d.s) == 0,
       "net_spawn a failing command");
    ok(run_until(&d.failed, 3000), "EOF reported");
    is_str(d.data, "* OK hi\r\n", "its output was offered first");
    is_int(d.err, UV_EOF, "as UV_EOF");
    is_str(d.msg,
           "tunnel \"printf '* OK hi\\r\\n'; exit 3\": the tunnel command exited with "
           "status 3",
           "message with the exit status");
    c_close(&d);

    /* a command that ignores the end of its input: SIGTERM 1 s after close */
    struct client e = {0};
    ok(net_spawn(loop, "echo $$; exec sleep 30", &o, &cbs, &e, &e.s) == 0, "stubborn command");
    e.line_mode = true;
    e.want_total = 2;
    ok(run_until(&e.done, 3000), "it printed its pid");
    int pid = atoi(e.data);
    ok(pid > 1 && !pid_gone(pid), "it runs (pid %d)", pid);
    c_close(&e);
    uint64_t ms = wait_gone(pid, 5000);
    ok(pid_gone(pid), "ended after close (%llu ms)", (unsigned long long)ms);
    ok(ms >= 700 && ms < 3000, "by SIGTERM after the 1 s grace (%llu ms)", (unsigned long long)ms);

    /* A simple command is exec'd: the process ended is the command itself,
     * not a shell that would die and leave it running. */
    char script[] = "/tmp/oimap-tunnel-XXXXXX";
    int fd = mkstemp(script);
    ok(fd >= 0 && write(fd, "echo $$\nexec sleep 30\n", 23) == 23, "script %s", script);
    close(fd);
    char cmd[100];
    snprintf(cmd, sizeof cmd, "sh %s", script);
    struct client f = {0};
    ok(net_spawn(loop, cmd, &o, &cbs, &f, &f.s) == 0, "simple command");
    f.line_mode = true;
    f.want_total = 2;
    ok(run_until(&f.done, 3000), "it printed its pid");
    pid = atoi(f.data);
    c_close(&f);
    ms = wait_gone(pid, 5000);
    ok(pid > 1 && pid_gone(pid), "the command itself got the signal (%llu ms)",
       (unsigned long long)ms);
    unlink(script);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* before any thread exists (uv's thread pool starts with the first lookup) */
    bool have_ns = private_hosts();
    loop = uv_default_loop();
    test_echo();
    test_refused();
    test_timeout();
    test_eof_pause();
    test_close_early();
    test_addresses(have_ns);
    test_tunnel();
    run_for(50);
    int r = uv_loop_close(loop);
    is_int(r, 0, "every handle closed");
    return tap_done();
}
