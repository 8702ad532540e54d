/* test_imap_conn.c - imap_conn against a scripted fake server on the same loop.
 *
 * The fake server is a uv TCP listener on 127.0.0.1; each test gives it a
 * line handler that answers what the client sends.  Everything the client
 * wrote is kept (f.in) so tests can check exactly what went over the wire.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "err.h"
#include "imap_conn.h"
#include "log.h"
#include "tap.h"
#include "uvtest.h"
#include "tls.h"

/* ---- the fake server ------------------------------------------------------ */

struct fake;
typedef void (*line_fn)(struct fake *f, const char *line);

struct fake {
    uv_tcp_t listener, client;
    bool have_client, client_closed;
    unsigned port;
    const char *greeting;
    line_fn on_line;
    char in[1 << 20]; /* everything received */
    size_t in_len, off;
    size_t lit_skip; /* raw literal bytes still to skip */
    int step;
    /* test state */
    char tags[64][16];
    int n_tags, max_pending;
    int logins;
};

static struct fake F;

static void on_wr(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void fsend(struct fake *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fsend(struct fake *f, const char *fmt, ...)
{
    if (!f->have_client || f->client_closed)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    uv_write_t *req = malloc(sizeof *req + (size_t)n);
    memcpy(req + 1, s, (size_t)n);
    free(s);
    uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned)n);
    uv_write(req, (uv_stream_t *)&f->client, &b, 1, on_wr);
}

static void fclose_client(struct fake *f)
{
    if (f->have_client && !f->client_closed) {
        f->client_closed = true;
        uv_close((uv_handle_t *)&f->client, NULL);
    }
}

static void f_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h, (void)sz;
    b->base = F.in + F.in_len;
    b->len = sizeof F.in - F.in_len - 1;
}

static const char *tag(const char *line);
static void login_server(struct fake *f, const char *line);

static void f_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    (void)st, (void)b;
    struct fake *f = &F;
    if (n < 0) {
        fclose_client(f);
        return;
    }
    f->in_len += (size_t)n;
    f->in[f->in_len] = 0;
    for (;;) {
        if (f->lit_skip) {
            size_t k = f->in_len - f->off < f->lit_skip ? f->in_len - f->off : f->lit_skip;
            f->off += k;
            f->lit_skip -= k;
            if (f->lit_skip)
                return;
        }
        char *nl = memchr(f->in + f->off, '\n', f->in_len - f->off);
        if (!nl)
            return;
        char line[8192];
        size_t len = (size_t)(nl - (f->in + f->off));
        if (len && f->in[f->off + len - 1] == '\r')
            len--;
        if (len >= sizeof line)
            len = sizeof line - 1;
        memcpy(line, f->in + f->off, len);
        line[len] = 0;
        f->off = (size_t)(nl - f->in) + 1;
        if (f->on_line != login_server && strstr(line, " CAPABILITY") &&
            strlen(line) == strlen(tag(line)) + 11) {
            /* a CAPABILITY after login: the greeting's list, as is */
            const char *g = f->greeting ? strstr(f->greeting, "[CAPABILITY ") : NULL;
            int cn = g ? (int)strcspn(g + 12, "]") : 9;
            fsend(f, "* CAPABILITY %.*s\r\n%s OK done\r\n", cn, g ? g + 12 : "IMAP4rev1",
                  tag(line));
            continue;
        }
        if (f->on_line && !f->client_closed)
            f->on_line(f, line);
    }
}

static void f_conn(uv_stream_t *server, int status)
{
    (void)status;
    struct fake *f = &F;
    uv_tcp_init(loop, &f->client);
    uv_accept(server, (uv_stream_t *)&f->client);
    uv_tcp_nodelay(&f->client, 1);
    f->have_client = true;
    uv_read_start((uv_stream_t *)&f->client, f_alloc, f_read);
    if (f->greeting)
        fsend(f, "%s", f->greeting);
}

static void fake_start(const char *greeting, line_fn fn)
{
    memset(&F, 0, sizeof F);
    F.greeting = greeting;
    F.on_line = fn;
    uv_tcp_init(loop, &F.listener);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&F.listener, (const struct sockaddr *)&a, 0);
    uv_listen((uv_stream_t *)&F.listener, 8, f_conn);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&F.listener, (struct sockaddr *)&ss, &len);
    F.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void fake_stop(void)
{
    fclose_client(&F);
    uv_close((uv_handle_t *)&F.listener, NULL);
    run_for(30);
}

/* tag of a line ("A3 LOGIN ..." -> "A3") */
static const char *tag(const char *line)
{
    static char t[16];
    size_t n = strcspn(line, " ");
    snprintf(t, sizeof t, "%.*s", (int)(n < 15 ? n : 15), line);
    return t;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* ---- the client side ------------------------------------------------------ */

struct res {
    bool opened, errored, done;
    int open_st, err, n_errors;
    char msg[600];
    int done_st;
    uint32_t append_uid;
    uint32_t append_uids[8];
    size_t n_append_uids;
    char done_text[200];
    unsigned n_unsolicited, exists;
};
static struct res R;

static void on_open(struct imap_conn *c, int st, const struct imap_result *r, void *arg)
{
    (void)c, (void)arg;
    R.opened = true;
    R.open_st = st;
    if (st)
        snprintf(R.msg, sizeof R.msg, "%s", r->text);
}

static void on_error(struct imap_conn *c, int code, const char *msg, void *arg)
{
    (void)c, (void)arg;
    R.errored = true;
    R.err = code;
    R.n_errors++;
    snprintf(R.msg, sizeof R.msg, "%s", msg);
}

static void on_unsol_fetch(struct imap_conn *c, const struct imap_fetch *f, void *arg)
{
    (void)c, (void)f, (void)arg;
    R.n_unsolicited++;
}

static void on_exists(struct imap_conn *c, uint32_t n, void *arg)
{
    (void)c, (void)arg;
    R.exists = n;
}

static const struct imap_conn_handlers handlers = {
    .on_error = on_error, .on_fetch = on_unsol_fetch, .on_exists = on_exists};

static void on_done(struct imap_conn *c, int st, const struct imap_result *r, void *arg)
{
    (void)c, (void)arg;
    R.done = true;
    R.done_st = st;
    R.append_uid = r->append_uid;
    R.n_append_uids = r->n_append_uids;
    for (size_t i = 0; i < r->n_append_uids && i < 8; i++)
        R.append_uids[i] = r->append_uids[i];
    snprintf(R.done_text, sizeof R.done_text, "%s", r->text ? r->text : "");
}

static struct imap_conn_config cfg_plain(const char *user, const char *pass)
{
    struct imap_conn_config cf = {0};
    cf.host = "127.0.0.1";
    cf.port = F.port;
    cf.tls_mode = IMAP_TLS_NONE;
    cf.user = user;
    cf.pass = pass;
    cf.net.timeout_s = 5;
    return cf;
}

/* ---- 1. greeting, CAPABILITY, LOGIN ------------------------------------- */

static void login_server(struct fake *f, const char *line)
{
    if (strstr(line, " CAPABILITY")) {
        fsend(f, "* CAPABILITY IMAP4rev1 LITERAL+ ID\r\n%s OK done\r\n", tag(line));
    } else if (strstr(line, " LOGIN ")) {
        f->logins++;
        if (strstr(line, "\"wrong\""))
            fsend(f, "%s NO [AUTHENTICATIONFAILED] Authentication failed.\r\n", tag(line));
        else
            fsend(f, "%s OK [CAPABILITY IMAP4rev1 LITERAL+ UIDPLUS MOVE] Logged in\r\n", tag(line));
    } else if (strstr(line, " NOOP")) {
        fsend(f, "%s OK noop\r\n", tag(line));
    } else if (strstr(line, " LOGOUT")) {
        fsend(f, "* BYE bye\r\n%s OK logged out\r\n", tag(line));
        fclose_client(f);
    }
}

static void test_login(void)
{
    fake_start("* OK ready\r\n", login_server);
    memset(&R, 0, sizeof R);
    struct imap_conn_config cf = cfg_plain("alice", "pw1");
    struct imap_conn *c = NULL;
    int rc = imap_conn_open(loop, &cf, &handlers, on_open, NULL, &c);
    is_int(rc, 0, "open starts");
    ok(!R.opened, "no callback from inside imap_conn_open");
    ok(run_until(&R.opened, 3000), "open completes");
    is_int(R.open_st, 0, "logged in");
    ok(strstr(F.in, "A1 CAPABILITY\r\nA2 LOGIN \"alice\" \"pw1\"\r\n") != NULL,
       "CAPABILITY then LOGIN on the wire");
    is_str(imap_conn_greeting(c), "ready", "greeting text");
    ok(imap_conn_has(c, "UIDPLUS") && imap_conn_has(c, "move"), "capabilities from the OK code");
    ok(!strstr(imap_conn_caps_prelogin(c), "UIDPLUS"), "pre-login capabilities kept apart");
    is_int(imap_conn_state(c), IMAP_CONN_AUTHENTICATED, "state AUTHENTICATED");
    rc = imap_conn_logout(c, on_done, NULL);
    is_int(rc, 0, "logout submitted");
    ok(run_until(&R.done, 3000), "logout completes");
    is_int(R.done_st, 0, "logout OK");
    run_for(50);
    ok(!R.errored, "server closing after LOGOUT is not an error");
    imap_conn_close(&c);
    ok(c == NULL, "close NULLs the pointer");
    run_for(20);
    fake_stop();
}

static void test_wrong_password(void)
{
    fake_start("* OK [CAPABILITY IMAP4rev1] ready\r\n", login_server);
    memset(&R, 0, sizeof R);
    struct imap_conn_config cf = cfg_plain("alice", "wrong");
    struct imap_conn *c = NULL;
    imap_conn_open(loop, &cf, &handlers, on_open, NULL, &c);
    ok(run_until(&R.errored, 3000), "wrong password fails");
    is_int(R.open_st, OIMAP_EAUTH, "open fails with OIMAP_EAUTH");
    is_int(R.err, OIMAP_EAUTH, "on_error with OIMAP_EAUTH");
    ok(strstr(R.msg, "[AUTHENTICATIONFAILED] Authentication failed.") != NULL,
       "the server's words are in the message: %s", R.msg);
    ok(strstr(R.msg, "127.0.0.1:") != NULL, "the message names the host");
    run_for(100);
    is_int(F.logins, 1, "tried once");
    is_int(R.n_errors, 1, "on_error once");
    is_int(imap_conn_noop(c, on_done, NULL), OIMAP_ECANCELED, "a dead connection refuses commands");
    imap_conn_close(&c);
    fake_stop();
}

/* ---- 2. pipelining, out-of-order answers ---------------------------------- */

struct fl_state {
    int n_msgs[1001];
    bool wrong_route;
    int n_done;
    bool all_done;
};
static struct fl_state FL;

static void pipe_server(struct fake *f, const char *line)
{
    if (strstr(line, " LOGIN ")) {
        fsend(f, "%s OK [CAPABILITY IMAP4rev1 UIDPLUS] in\r\n", tag(line));
        return;
    }
    if (!strstr(line, "UID FETCH"))
        return;
    snprintf(f->tags[f->n_tags++], 16, "%s", tag(line));
    if (f->n_tags > f->max_pending)
        f->max_pending = f->n_tags;
    if (f->n_tags < 4)
        return;
    /* answer the four pending commands in reverse order, untagged first,
     * with unsolicited data in between */
    for (int i = f->n_tags - 1; i >= 0; i--) {
        unsigned uid = (unsigned)atoi(f->tags[i] + 1) - 1; /* A2 asked for UID 1 */
        fsend(f,
              "* %u FETCH (UID %u FLAGS (\\Seen) RFC822.SIZE %u INTERNALDATE "
              "\"17-Jul-1996 02:44:25 -0700\")\r\n",
              uid, uid, 100 + uid);
    }
    fsend(f, "* 99 FETCH (UID 5000 FLAGS ())\r\n* 120 EXISTS\r\n");
    for (int i = f->n_tags - 1; i >= 0; i--)
        fsend(f, "%s OK fetched\r\n", f->tags[i]);
    f->n_tags = 0;
}

static void fl_msg(struct imap_conn *c, const struct imap_fetch *f, void *arg)
{
    (void)c;
    int i = (int)(intptr_t)arg;
    if (f->uid != (uint32_t)i || f->rfc822_size != 100u + (unsigned)i ||
        !(f->flags & IMAP_FLAG_SEEN))
        FL.wrong_route = true;
    FL.n_msgs[i]++;
}

static void fl_done(struct imap_conn *c, int st, const struct imap_result *r, void *arg)
{
    (void)c, (void)r, (void)arg;
    if (st == 0)
        FL.n_done++;
    if (FL.n_done == 1000)
        FL.all_done = true;
}

static void test_pipelining(void)
{
    fake_start("* OK [CAPABILITY IMAP4rev1] ready\r\n", pipe_server);
    memset(&R, 0, sizeof R);
    memset(&FL, 0, sizeof FL);
    struct imap_conn_config cf = cfg_plain("alice", "pw");
    cf.max_in_flight = 4;
    struct imap_conn *c = NULL;
    imap_conn_open(loop, &cf, &handlers, on_open, NULL, &c);
    run_until(&R.opened, 3000);
    is_int(R.open_st, 0, "pipeline: logged in");
    int bad = 0;
    for (int i = 1; i <= 1000; i++) {
        char set[16];
        snprintf(set, sizeof set, "%d", i);
        if (imap_conn_fetch_list(c, set, NULL, fl_msg, fl_done, (void *)(intptr_t)i) != 0)
            bad++;
    }
    is_int(bad, 0, "1000 fetches submitted");
    ok(run_until(&FL.all_done, 20000), "all 1000 complete");
    ok(!FL.wrong_route, "every FETCH reached its own command");
    int wrong = 0;
    for (int i = 1; i <= 1000; i++)
        wrong += FL.n_msgs[i] != 1;
    is_int(wrong, 0, "one message per command");
    is_int(F.max_pending, 4, "never more than max_in_flight commands on the wire");
    is_int(R.n_unsolicited, 250, "unsolicited FETCH went to the handler");
    is_int(R.exists, 120, "EXISTS went to the handler");
    ok(strstr(F.in, "UID FETCH 7 (UID FLAGS RFC822.SIZE INTERNALDATE)") != NULL,
       "the fetch command text");
    is_int(imap_conn_fetch_list(c, "1:x", NULL, fl_msg, fl_done, NULL), UV_EINVAL,
           "a malformed UID set is refused");
    imap_conn_close(&c);
    run_for(20);
    fake_stop();
}

/* ---- 3. literals: waiting for '+' vs LITERAL+ ----------------------------- */

static void append_server(struct fake *f, const char *line)
{
    if (strstr(line, " LOGIN ")) {
        fsend(f, "%s OK in\r\n", tag(line));
        return;
    }
    const char *lb = strrchr(line, '{');
    if (strstr(line, " APPEND ") && lb) {
        snprintf(f->tags[0], 16, "%s", tag(line));
        f->lit_skip = strtoul(lb + 1, NULL, 10);
        f->step = 1; /* got the command line */
        if (!strstr(lb, "+}"))
            f->step = 2; /* synchronizing: the test sends '+' itself */
        return;
    }
    if (f->step && line[0] == 0) { /* end of the APPEND after the literal */
        fsend(f, "%s OK [APPENDUID 7 42] appended\r\n", f->tags[0]);
        f->step = 0;
    }
}

static const char MSG[] = "Subject: hi\r\n\r\nbody\r\n";

static void test_literals(bool literal_plus)
{
    fake_start(literal_plus ? "* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n"
                            : "* OK [CAPABILITY IMAP4rev1] hi\r\n",
               append_server);
    memset(&R, 0, sizeof R);
    struct imap_conn_config cf = cfg_plain("alice", "pw");
    struct imap_conn *c = NULL;
    imap_conn_open(loop, &cf, &handlers, on_open, NULL, &c);
    run_until(&R.opened, 3000);
    struct imap_append_msg m = {.folder = "INBOX",
                                .flags = IMAP_FLAG_SEEN | IMAP_FLAG_FLAGGED,
                                .internaldate = 837571465,
                                .size = sizeof MSG - 1,
                                .data = MSG};
    is_int(imap_conn_append(c, &m, on_done, NULL), 0, "append submitted");
    run_for(150);
    ok(strstr(F.in, " APPEND ") != NULL, "APPEND line received");
    if (literal_plus) {
        ok(strstr(F.in, "{21+}\r\nSubject: hi") != NULL, "LITERAL+: data follows at once");
    } else {
        ok(strstr(F.in, "\"17-Jul-1996 02:44:25 +0000\" {21}\r\n") != NULL,
           "synchronizing literal announced");
        ok(!strstr(F.in, "Subject"), "no data before the continuation");
        fsend(&F, "+ go ahead\r\n");
    }
    ok(run_until(&R.done, 3000), "append completes");
    is_int(R.done_st, 0, "append OK");
    is_int(R.append_uid, 42, "APPENDUID read");
    ok(strstr(F.in, "APPEND \"INBOX\" (\\Seen \\Flagged) ") != NULL, "flags sent");
    ok(strstr(F.in, "body\r\n\r\n") != NULL, "literal then CRLF");
    imap_conn_close(&c);
    run_for(20);
    fake_stop();
}

/* ---- 3b. MULTIAPPEND: literals in turn, APPENDUID set, early refusals ---- */

/* f->step: 0 idle, 1 in an APPEND (LITERAL+), 2 waiting for the test's '+'
 * or refusal; f->n_tags counts the literals announced.  mode 'n': refuse
 * (NO) as soon as the command line arrives, before any literal data. */
static char multi_mode;

static void multi_server(struct fake *f, const char *line)
{
    if (strstr(line, " LOGIN ")) {
        fsend(f, "%s OK in\r\n", tag(line));
        return;
    }
    if (strstr(line, " NOOP")) {
        fsend(f, "%s OK noop\r\n", tag(line));
        return;
    }
    const char *lb = strrchr(line, '{');
    if (!f->step && strstr(line, " APPEND ")) {
        snprintf(f->tags[0], 16, "%s", tag(line));
        f->n_tags = 0;
        f->step = 1;
        if (multi_mode == 'n')
            fsend(f, "%s NO [LIMIT] too big\r\n", f->tags[0]);
    }
    if (f->step && lb) {
        f->n_tags++;
        f->lit_skip = strtoul(lb + 1, NULL, 10);
        f->step = strstr(lb, "+}") ? 1 : 2;
        return;
    }
    if (f->step && line[0] == 0) { /* the end of the command */
        if (multi_mode != 'n')
            fsend(f, "%s OK [APPENDUID 7 10:11,14] appended\r\n", f->tags[0]);
        f->step = 0;
    }
}

struct src {
    const char *p;
    size_t len, off;
    bool hold; /* nothing available yet */
    int calls_after_end;
};

static ssize_t src_read(void *arg, char *buf, size_t cap)
{
    struct src *s = arg;
    if (s->hold)
        return 0;
    if (s->off == s->len) {
        s->calls_after_end++;
        return 0;
    }
    size_t n = s->len - s->off < cap ? s->len - s->off : cap;
    memcpy(buf, s->p + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

static const char M1[] = "Subject: one\r\n\r\nfirst\r\n";
static const char M2[] = "Subject: two\r\n\r\nsecond\r\n";
static const char M3[] = "Subject: three\r\n\r\nthird\r\n";

/* mode: 'p' LITERAL+, 's' synchronizing, 'n' LITERAL+ refused at once
 * while the first literal is not readable yet, 'r' synchronizing, refused
 * at the second literal. */
static void test_multiappend(char mode)
{
    bool lp = mode == 'p' || mode == 'n';
    multi_mode = mode;
    fake_start(lp ? "* OK [CAPABILITY IMAP4rev1 LITERAL+ MULTIAPPEND] hi\r\n"
                  : "* OK [CAPABILITY IMAP4rev1 MULTIAPPEND] hi\r\n",
               multi_server);
    memset(&R, 0, sizeof R);
    struct imap_conn_config cf = cfg_plain("alice", "pw");
    struct imap_conn *c = NULL;
    imap_conn_open(loop, &cf, &handlers, on_open, NULL, &c);
    run_until(&R.opened, 3000);
    struct src s[3] = {{M1, sizeof M1 - 1, 0, mode == 'n', 0},
                       {M2, sizeof M2 - 1, 0, false, 0},
                       {M3, sizeof M3 - 1, 0, false, 0}};
    struct imap_append_msg m[3] = {
        {.flags = IMAP_FLAG_SEEN, .size = s[0].len, .read = src_read, .read_arg = &s[0]},
        {.keywords = "$Junk",
         .internaldate = 837571465,
         .size = s[1].len,
         .read = src_read,
         .read_arg = &s[1]},
        {.size = s[2].len, .read = src_read, .read_arg = &s[2]},
    };
    is_int(imap_conn_multiappend(c, "INBOX", m, 3, on_done, NULL), 0, "multiappend submitted");
    is_int(imap_conn_multiappend(c, "INBOX", m, 0, on_done, NULL), UV_EINVAL, "0 messages");
    run_for(150);
    if (mode == 'p') {
        ok(strstr(F.in, "APPEND \"INBOX\" (\\Seen) {23+}\r\nSubject: one\r\n\r\nfirst\r\n "
                        "($Junk) \"17-Jul-1996 02:44:25 +0000\" {24+}\r\nSubject: two") != NULL,
           "LITERAL+: one command, options before each literal");
        ok(strstr(F.in, "second\r\n {25+}\r\nSubject: three\r\n\r\nthird\r\n\r\n") != NULL,
           "LITERAL+: the last literal, then CRLF");
    } else if (mode == 's' || mode == 'r') {
        ok(strstr(F.in, "(\\Seen) {23}\r\n") != NULL && !strstr(F.in, "Subject"),
           "synchronizing: nothing before '+'");
        fsend(&F, "+ go\r\n");
        run_for(100);
        ok(strstr(F.in, "first\r\n ($Junk) \"17-Jul-1996 02:44:25 +0000\" {24}\r\n") != NULL &&
               !strstr(F.in, "Subject: two"),
           "synchronizing: the second literal waits for its '+'");
        if (mode == 'r') {
            fsend(&F, "%s NO [LIMIT] second one too big\r\n", F.tags[0]);
            F.step = 0;
            F.lit_skip = 0; /* refused: the literal will not come */
        } else {
            fsend(&F, "+ go\r\n");
            run_for(100);
            ok(!strstr(F.in, "Subject: three"), "synchronizing: the third waits too");
            fsend(&F, "+ go\r\n");
        }
    } else { /* 'n': refused before the first byte of data could be read */
        run_until(&R.done, 200);
        ok(!R.done, "an early NO is held until the literals are sent");
        s[0].hold = false;
        imap_conn_append_ready(c);
    }
    ok(run_until(&R.done, 3000), "multiappend completes");
    if (mode == 'p' || mode == 's') {
        is_int(R.done_st, 0, "multiappend OK");
        is_int((int)R.n_append_uids, 3, "APPENDUID: one UID per message");
        ok(R.append_uids[0] == 10 && R.append_uids[1] == 11 && R.append_uids[2] == 14,
           "APPENDUID: in order");
    } else {
        is_int(R.done_st, OIMAP_ENO, "multiappend refused");
        ok(strstr(R.done_text, "too big") != NULL, "the server's text");
        is_int((int)R.n_append_uids, 0, "no UIDs");
        if (mode == 'n')
            ok(strstr(F.in, "third\r\n\r\n") != NULL,
               "the non-synchronizing literals were all sent");
        else
            ok(!strstr(F.in, "Subject: two"), "the refused literal was not sent");
    }
    for (int i = 0; i < 3; i++)
        is_int(s[i].calls_after_end, 0, "no read after the literal's end (%d)", i);
    ok(!R.errored, "the connection is fine");
    R.done = false;
    is_int(imap_conn_noop(c, on_done, NULL), 0, "another command");
    ok(run_until(&R.done, 3000) && R.done_st == 0, "... answered");
    imap_conn_close(&c);
    run_for(20);
    fake_stop();
}

/* ---- 4. STARTTLS: injection, not offered, PREAUTH ------------------------ */

static void starttls_server(struct fake *f, const char *line)
{
    if (strstr(line, " STARTTLS")) {
        /* the attack: more plaintext in the same segment as the OK */
        fsend(f, "%s OK Begin TLS\r\n* OK injected\r\n", tag(line));
    } else if (strstr(line, "LOGIN") || strstr(line, "AUTHENTICATE")) {
        f->logins++;
        fsend(f, "%s OK in\r\n", tag(line));
    }
}

static struct tls_config *test_tls(void)
{
    struct tls_config *t = NULL;
    struct tls_opts o = {0};
    char err[256];
    if (tls_config_new(&o, &t, err, sizeof err) < 0)
        printf("# tls_config_new: %s\n", err);
    return t;
}

static void test_starttls_injection(void)
{
    fake_start("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED AUTH=PLAIN] hi\r\n",
               starttls_server);
    memset(&R, 0, sizeof R);
    struct imap_conn_config cf = cfg_plain("alice", "pw");
    cf.tls_mode = IMAP_TLS_STARTTLS;
    cf.tls = test_tls();
    if (!cf.tls) {
        ok(1, "# SKIP no TLS config");
        fake_stop();
        return;
    }
    struct imap_conn *c = NULL;
    imap_conn_open(loop, &cf, &handlers, on_open, NULL, &c);
    ok(run_until(&R.errored, 3000), "injection: the connection fails");
    ok(R.open_st < 0, "open failed: %s", R.msg);
    ok(strstr(R.msg, "inject") != NULL, "the message says why: %s", R.msg);
    run_for(100);
    is_int(F.logins, 0, "no credentials sent");
    ok(strstr(F.in, "A1 STARTTLS\r\n") != NULL, "STARTTLS was sent");
    imap_conn_close(&c);
    run_for(20);
    tls_config_free(&cf.tls);
    fake_stop();
}

static void test_starttls_missing(const char *greeting, const char *want, const char *what)
{
    fake_start(greeting, starttls_server);
    memset(&R, 0, sizeof R);
    struct imap_conn_config cf = cfg_plain("alice", "pw");
    cf.tls_mode = IMAP_TLS_STARTTLS;
    cf.tls = test_tls();
    struct imap_conn *c = NULL;
    imap_conn_open(loop, &cf, &handlers, on_open, NULL, &c);
    ok(run_until(&R.errored, 3000), "%s: refused", what);
    is_int(R.err, OIMAP_ENOTLS, "%s: OIMAP_ENOTLS", what);
    ok(strstr(R.msg, want) != NULL, "%s: message: %s", what, R.msg);
    run_for(50);
    is_int(F.logins, 0, "%s: no credentials sent", what);
    ok(!strstr(F.in, "LOGIN") && !strstr(F.in, "AUTHENTICATE"), "%s: nothing sent in clear", what);
    imap_conn_close(&c);
    run_for(20);
    tls_config_free(&cf.tls);
    fake_stop();
}

/* ---- 5. BYE in the middle of a command ------------------------------------ */

static void bye_server(struct fake *f, const char *line)
{
    if (strstr(line, " LOGIN "))
        fsend(f, "%s OK in\r\n", tag(line));
    else if (strstr(line, " NOOP")) {
        fsend(f, "* BYE server shutting down\r\n");
        fclose_client(f);
    }
}

static void test_bye(void)
{
    fake_start("* OK [CAPABILITY IMAP4rev1] hi\r\n", bye_server);
    memset(&R, 0, sizeof R);
    struct imap_conn_config cf = cfg_plain("alice", "pw");
    struct imap_conn *c = NULL;
    imap_conn_open(loop, &cf, &handlers, on_open, NULL, &c);
    run_until(&R.opened, 3000);
    imap_conn_noop(c, on_done, NULL);
    ok(run_until(&R.errored, 3000), "BYE: connection error");
    ok(R.done, "the pending command was completed");
    is_int(R.done_st, OIMAP_EBYE, "with OIMAP_EBYE");
    is_int(R.err, OIMAP_EBYE, "on_error OIMAP_EBYE");
    ok(strstr(R.msg, "server shutting down") != NULL, "the server's words: %s", R.msg);
    run_for(50);
    is_int(R.n_errors, 1, "on_error once");
    imap_conn_close(&c);
    run_for(20);
    fake_stop();
}

/* ---- 6. bodies and LIST --------------------------------------------------- */

struct body_state {
    char data[256];
    size_t len;
    int begins, ends;
    uint64_t size;
    uint32_t uid_end[4], uid_begin[4];
    unsigned flags_end;
};
static struct body_state B;

static void b_begin(struct imap_conn *c, const struct imap_fetch *p, uint64_t size, void *arg)
{
    (void)c, (void)arg;
    B.uid_begin[B.begins++ & 3] = p->uid;
    B.size = size;
}
static void b_data(struct imap_conn *c, const char *chunk, size_t len, void *arg)
{
    (void)c, (void)arg;
    if (B.len + len < sizeof B.data) {
        memcpy(B.data + B.len, chunk, len);
        B.len += len;
    }
}
static void b_end(struct imap_conn *c, const struct imap_fetch *f, void *arg)
{
    (void)c, (void)arg;
    B.uid_end[B.ends++ & 3] = f->uid;
    B.flags_end = f->flags;
}

static char list_names[512];
static void list_entry(struct imap_conn *c, const struct imap_list_entry *e, void *arg)
{
    (void)c, (void)arg;
    size_t n = strlen(list_names);
    snprintf(list_names + n, sizeof list_names - n, "%s|%c|%s%s;", e->name,
             e->delim ? e->delim : '0', (e->flags & IMAP_LIST_NOSELECT) ? "noselect" : "",
             (e->flags & IMAP_LIST_SENT) ? "sent" : "");
}

static void data_server(struct fake *f, const char *line)
{
    if (strstr(line, " LOGIN "))
        fsend(f, "%s OK in\r\n", tag(line));
    else if (strstr(line, "BODY.PEEK[]")) {
        fsend(f,
              "* 1 FETCH (UID 5 FLAGS (\\Seen) BODY[] {11}\r\nhello world)\r\n"
              "* 2 FETCH (BODY[] {3}\r\nxyz UID 6 FLAGS (\\Flagged))\r\n%s OK done\r\n",
              tag(line));
    } else if (strstr(line, " LIST ")) {
        fsend(f,
              "* LIST (\\Noselect \\HasChildren) \"/\" \"Archive\"\r\n"
              "* LIST (\\HasNoChildren) \"/\" \"Archive/G&AOk-n&AOk-ral\"\r\n"
              "* LIST (\\HasNoChildren \\Sent) \"/\" {4}\r\nSent\r\n"
              "* LIST () NIL \"&Jjo-bad&\"\r\n%s OK listed\r\n",
              tag(line));
    } else if (strstr(line, " SELECT ")) {
        fsend(f,
              "* FLAGS (\\Answered \\Seen)\r\n* 3 EXISTS\r\n"
              "* OK [UIDVALIDITY 1234] uv\r\n* OK [UIDNEXT 9] next\r\n"
              "* OK [HIGHESTMODSEQ 77] ms\r\n"
              "* OK [PERMANENTFLAGS (\\Seen \\*)] pf\r\n%s OK [READ-WRITE] selected\r\n",
              tag(line));
    }
}

static struct imap_folder_info SEL;
static void sel_done(struct imap_conn *c, int st, const struct imap_result *r, void *arg)
{
    (void)c, (void)arg;
    if (st == 0 && r->folder)
        SEL = *r->folder;
    R.done = true;
    R.done_st = st;
}

static void test_data(void)
{
    fake_start("* OK [CAPABILITY IMAP4rev1] hi\r\n", data_server);
    memset(&R, 0, sizeof R);
    memset(&B, 0, sizeof B);
    struct imap_conn_config cf = cfg_plain("alice", "pw");
    struct imap_conn *c = NULL;
    imap_conn_open(loop, &cf, &handlers, on_open, NULL, &c);
    run_until(&R.opened, 3000);
    struct imap_body_cbs cbs = {b_begin, b_data, b_end};
    is_int(imap_conn_fetch_body(c, "5:6", &cbs, on_done, NULL), 0, "body fetch submitted");
    ok(run_until(&R.done, 3000), "body fetch completes");
    is_int(B.begins, 2, "two begins");
    is_int(B.ends, 2, "two ends");
    is_mem(B.data, B.len, "hello worldxyz", 14, "bodies streamed in order");
    is_int(B.uid_begin[0], 5, "uid known at begin when sent first");
    is_int(B.uid_begin[1], 0, "uid 0 at begin when sent after the body");
    is_int(B.uid_end[1], 6, "uid known at end");
    ok(B.flags_end & IMAP_FLAG_FLAGGED, "flags at end");

    R.done = false;
    list_names[0] = 0;
    is_int(imap_conn_list(c, NULL, NULL, list_entry, on_done, NULL), 0, "list submitted");
    ok(run_until(&R.done, 3000), "list completes");
    is_str(list_names, "Archive|/|noselect;Archive/Général|/|;Sent|/|sent;&Jjo-bad&|0|;",
           "LIST: decoded names, delimiters, flags, literal name, NIL delimiter, raw kept");
    ok(strstr(F.in, "LIST \"\" \"*\"\r\n") != NULL, "LIST \"\" \"*\"");

    R.done = false;
    is_int(imap_conn_select(c, "Archive/Général", NULL, sel_done, NULL), 0, "select submitted");
    ok(run_until(&R.done, 3000), "select completes");
    ok(strstr(F.in, "SELECT \"Archive/G&AOk-n&AOk-ral\"\r\n") != NULL, "name sent in mUTF-7");
    is_int(SEL.uidvalidity, 1234, "UIDVALIDITY");
    is_int(SEL.uidnext, 9, "UIDNEXT");
    is_int(SEL.exists, 3, "EXISTS");
    is_int((int)SEL.highestmodseq, 77, "HIGHESTMODSEQ");
    ok(SEL.permanentflags & IMAP_FLAG_ANY, "PERMANENTFLAGS \\*");
    is_int(imap_conn_state(c), IMAP_CONN_SELECTED, "state SELECTED");
    is_int(R.exists, 0, "EXISTS during SELECT is part of the answer, not an event");
    imap_conn_close(&c);
    run_for(20);
    fake_stop();
}

/* ---- 7. -d imap masks credentials ---------------------------------------- */

static void auth_server(struct fake *f, const char *line)
{
    if (strstr(line, " LOGIN ")) {
        const char *lb = strrchr(line, '{');
        if (lb) { /* a password as a literal: swallow it, then answer */
            f->lit_skip = strtoul(lb + 1, NULL, 10);
            snprintf(f->tags[0], 16, "%s", tag(line));
            if (!strstr(lb, "+}"))
                fsend(f, "+ go\r\n");
            f->step = 1;
            return;
        }
        fsend(f, "%s OK in\r\n", tag(line));
    } else if (f->step == 1) {
        fsend(f, "%s OK in\r\n", f->tags[0]);
        f->step = 0;
    } else if (strstr(line, "AUTHENTICATE PLAIN ")) {
        fsend(f, "%s OK in\r\n", tag(line));
    } else if (strstr(line, "AUTHENTICATE PLAIN")) { /* no SASL-IR: ask for it */
        snprintf(f->tags[0], 16, "%s", tag(line));
        fsend(f, "+ \r\n");
        f->step = 3;
    } else if (f->step == 3) {
        if (strcmp(line, "AGFsaWNlAFBsYWluLXB3Mg==") == 0)
            fsend(f, "%s OK in\r\n", f->tags[0]);
        else
            fsend(f, "%s NO wrong\r\n", f->tags[0]);
        f->step = 0;
    } else if (strstr(line, "AUTHENTICATE XOAUTH2")) {
        /* the error challenge, then NO after the client's empty answer */
        snprintf(f->tags[0], 16, "%s", tag(line));
        fsend(f, "+ eyJzdGF0dXMiOiI0MDEifQ==\r\n");
        f->step = 2;
    } else if (f->step == 2 && line[0] == 0) {
        fsend(f, "%s NO [AUTHENTICATIONFAILED] bad token\r\n", f->tags[0]);
        f->step = 0;
    }
}

static bool run_login(const char *greeting, const char *pass, const char *token,
                      const char *const *mechs, size_t n_mechs)
{
    fake_start(greeting, auth_server);
    memset(&R, 0, sizeof R);
    struct imap_conn_config cf = cfg_plain("alice", pass);
    cf.oauth2_token = token;
    cf.mechs = mechs;
    cf.n_mechs = n_mechs;
    struct imap_conn *c = NULL;
    imap_conn_open(loop, &cf, &handlers, on_open, NULL, &c);
    bool done = run_until(&R.opened, 3000);
    imap_conn_close(&c);
    run_for(20);
    fake_stop();
    return done;
}

static void test_masking(void)
{
    char path[] = "/tmp/test_imap_conn_logXXXXXX";
    int fd = mkstemp(path);
    close(fd);
    log_init(LOG_UI_QUIET, path, LOGC_IMAP);

    ok(run_login("* OK [CAPABILITY IMAP4rev1] hi\r\n", "Sekr1t-pw", NULL, NULL, 0), "LOGIN");
    is_int(R.open_st, 0, "LOGIN ok");
    ok(run_login("* OK [CAPABILITY IMAP4rev1] hi\r\n", "P\xc3\xa4sswort", NULL, NULL, 0),
       "LOGIN with a literal password");
    is_int(R.open_st, 0, "literal password ok");
    ok(strstr(F.in, "LOGIN \"alice\" {9}\r\nP\xc3\xa4sswort\r\n") != NULL,
       "8-bit password sent as a literal");
    ok(run_login("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] hi\r\n", "Plain-pw1", NULL, NULL,
                 0),
       "AUTHENTICATE PLAIN");
    is_int(R.open_st, 0, "PLAIN ok");
    /* base64 of "\0alice\0Plain-pw1" */
    ok(strstr(F.in, "AUTHENTICATE PLAIN AGFsaWNlAFBsYWluLXB3MQ==\r\n") != NULL,
       "PLAIN with SASL-IR on the wire");
    ok(run_login("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n", "Plain-pw2", NULL, NULL, 0),
       "AUTHENTICATE PLAIN without SASL-IR");
    is_int(R.open_st, 0, "PLAIN after the continuation ok");
    ok(strstr(F.in, "A1 AUTHENTICATE PLAIN\r\nAGFsaWNlAFBsYWluLXB3Mg==\r\n") != NULL,
       "payload sent after '+'");
    static const char *const xo[] = {"XOAUTH2", "PLAIN"};
    ok(run_login("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=PLAIN] hi\r\n", "pw",
                 "Tok3n-abc", xo, 2),
       "XOAUTH2");
    is_int(R.open_st, OIMAP_EAUTH, "XOAUTH2 rejected after the error challenge");
    ok(strstr(R.msg, "bad token") != NULL, "XOAUTH2 failure names the reason: %s", R.msg);
    static const char *const gs[] = {"GSSAPI", "CRAM-MD5"};
    ok(run_login("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n", "pw", NULL, gs, 2),
       "only unimplemented mechanisms");
    is_int(R.open_st, OIMAP_EAUTH, "no usable mechanism is an error");
    ok(run_login("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] hi\r\n", "pw", NULL, NULL, 0),
       "LOGINDISABLED");
    is_int(R.open_st, OIMAP_EAUTH, "LOGINDISABLED and no AUTH=PLAIN: nothing to try");
    is_int(F.logins, 0, "LOGINDISABLED: LOGIN never sent");

    log_close();
    FILE *fp = fopen(path, "r");
    static char text[1 << 16];
    size_t n = fp ? fread(text, 1, sizeof text - 1, fp) : 0;
    text[n] = 0;
    if (fp)
        fclose(fp);
    unlink(path);
    ok(strstr(text, "C: A1 LOGIN \"alice\" ********") != NULL,
       "LOGIN logged with the password masked");
    ok(strstr(text, "S: A1 OK in") != NULL, "server lines logged");
    ok(!strstr(text, "Sekr1t-pw"), "password not in the log");
    ok(!strstr(text, "sswort"), "literal password not in the log");
    ok(!strstr(text, "AGFsaWNl"), "SASL payloads not in the log");
    ok(strstr(text, "AUTHENTICATE PLAIN ********") != NULL, "PLAIN payload masked");
    ok(!strstr(text, "Tok3n") && !strstr(text, "dXNlcj1hbGljZQ"), "OAuth2 token not in the log");
    is_int(count(text, "********") >= 4, 1, "masks present");
}

/* ---- 8. NOTIFY: unsolicited STATUS and codes to the handlers -------------- */

static void notify_server(struct fake *f, const char *line)
{
    if (strstr(line, " NOTIFY SET ")) {
        fsend(f, "* STATUS INBOX (MESSAGES 2 UIDNEXT 3 HIGHESTMODSEQ 9)\r\n%s OK set\r\n",
              tag(line));
    } else if (strstr(line, " IDLE")) {
        snprintf(f->tags[0], 16, "%s", tag(line));
        fsend(f, "+ idling\r\n* STATUS \"Lists/d&AOk-v\" (MESSAGES 1 UIDNEXT 7)\r\n"
                 "* OK [NOTIFICATIONOVERFLOW] too much\r\n");
    } else if (strcmp(line, "DONE") == 0) {
        fsend(f, "%s OK idle done\r\n", f->tags[0]);
    } else {
        fsend(f, "%s OK done\r\n", tag(line)); /* LOGIN */
    }
}

static struct {
    int n_status, n_notice, n_other;
    char names[200];
    unsigned last_present;
    uint32_t last_uidnext;
    char code[32];
} NT;

static void nt_status(struct imap_conn *c, const struct imap_status_entry *e, void *arg)
{
    (void)c;
    if (arg != &NT) {
        NT.n_other++;
        return;
    }
    NT.n_status++;
    size_t l = strlen(NT.names);
    snprintf(NT.names + l, sizeof NT.names - l, "%s;", e->name);
    NT.last_present = e->present;
    NT.last_uidnext = e->uidnext;
}

static void nt_notice(struct imap_conn *c, const struct imap_response *r, void *arg)
{
    (void)c, (void)arg;
    NT.n_notice++;
    snprintf(NT.code, sizeof NT.code, "%.*s", (int)r->code.name_len, r->code.name);
}

static const struct imap_conn_handlers nt_handlers = {
    .on_error = on_error, .on_status = nt_status, .on_notice = nt_notice};

static void test_notify(void)
{
    log_init(LOG_UI_QUIET, NULL, 0);
    fake_start("* OK [CAPABILITY IMAP4rev1 IDLE NOTIFY] hi\r\n", notify_server);
    memset(&R, 0, sizeof R);
    memset(&NT, 0, sizeof NT);
    struct imap_conn_config cf = cfg_plain("alice", "pw");
    struct imap_conn *c = NULL;
    imap_conn_open(loop, &cf, &handlers, on_open, NULL, &c);
    run_until(&R.opened, 3000);
    imap_conn_set_handlers(c, &nt_handlers, NULL);
    is_int(imap_conn_command(c, "NOTIFY SET STATUS (mailboxes (INBOX) (MessageNew))", NULL, NULL,
                             on_done, NULL),
           0, "NOTIFY SET submitted");
    struct imap_conn_stats st;
    imap_conn_get_stats(c, &st);
    is_int(st.in_flight + st.waiting, 1, "stats: one command pending");
    ok(run_until(&R.done, 3000), "NOTIFY SET completes");
    is_int(NT.n_other, 1, "STATUS during the command: to the handlers set then (arg NULL)");
    imap_conn_set_handlers(c, &nt_handlers, &NT);
    R.done = false;
    is_int(imap_conn_idle(c, on_done, NULL), 0, "IDLE with nothing selected");
    bool got = false;
    for (int i = 0; i < 300 && NT.n_notice == 0; i++)
        run_for(10);
    got = NT.n_status == 1 && NT.n_notice == 1;
    ok(got, "a STATUS and a code while idling");
    is_str(NT.names, "Lists/d\xc3\xa9v;", "STATUS name decoded from mUTF-7");
    is_int(NT.last_present, IMAP_STATUS_MESSAGES | IMAP_STATUS_UIDNEXT, "items present");
    is_int(NT.last_uidnext, 7, "UIDNEXT");
    is_str(NT.code, "NOTIFICATIONOVERFLOW", "the code reaches on_notice");
    imap_conn_get_stats(c, &st);
    is_int(st.in_flight, 1, "stats: IDLE in flight");
    is_str(st.oldest, "IDLE", "stats: the oldest command's name");
    imap_conn_done(c);
    ok(run_until(&R.done, 3000), "DONE answered");
    ok(!R.errored, "no error");
    imap_conn_close(&c);
    run_for(20);
    fake_stop();
}

int main(void)
{
    loop = uv_default_loop();
    log_init(LOG_UI_QUIET, NULL, 0);
    test_login();
    test_wrong_password();
    test_pipelining();
    test_literals(false);
    test_literals(true);
    test_multiappend('p');
    test_multiappend('s');
    test_multiappend('n');
    test_multiappend('r');
    test_starttls_injection();
    test_starttls_missing("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n",
                          "does not offer STARTTLS", "STARTTLS not offered");
    test_starttls_missing("* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n", "PREAUTH", "PREAUTH");
    test_bye();
    test_data();
    test_masking();
    test_notify();
    uv_run(loop, UV_RUN_NOWAIT);
    return tap_done();
}
