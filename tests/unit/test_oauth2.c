/* test_oauth2.c - the token URL, the form, the HTTP and JSON answers (whole
 * and byte by byte), and oauth2_fetch() end to end against a canned HTTP
 * server on 127.0.0.1 (http:// is accepted for loopback): the cache, the
 * sharing of one request, cancelling, forgetting, expiry. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "err.h"
#include "oauth2.h"
#include "tap.h"
#include "uvtest.h"

/* ---- URL and form ------------------------------------------------------ */

static void test_url(void)
{
    struct oauth2_url u;
    char err[512];
    is_int(oauth2_url_parse("https://accounts.google.com/o/oauth2/token", &u, err, sizeof err), 0,
           "Google's URL");
    ok(u.https && u.port == 443, "https, port 443");
    is_str(u.host, "accounts.google.com", "host");
    is_str(u.path, "/o/oauth2/token", "path");
    is_str(u.display, "https://accounts.google.com/o/oauth2/token", "display");

    is_int(oauth2_url_parse("https://login.example:8443/t?tenant=x#frag", &u, err, sizeof err), 0,
           "port, query, fragment");
    ok(u.port == 8443, "port 8443");
    is_str(u.path, "/t?tenant=x", "query kept for the request");
    is_str(u.display, "https://login.example:8443/t", "query left out of messages");

    is_int(oauth2_url_parse("https://[::1]:9000", &u, err, sizeof err), 0, "IPv6 literal");
    is_str(u.host, "::1", "host without brackets");
    is_str(u.path, "/", "empty path is /");
    is_str(u.display, "https://[::1]:9000/", "display with brackets");

    is_int(oauth2_url_parse("http://127.0.0.1:8080/token", &u, err, sizeof err), 0,
           "http to loopback");
    ok(!u.https && u.port == 8080, "http, port");

    static const struct {
        const char *url, *why;
    } bad[] = {
        {"http://oauth2.example/token", "http:// is only accepted for a loopback host"},
        {"ftp://x/y", "not an https:// URL"},
        {"https://user:pw@host/t", "user names in the URL are not supported"},
        {"https://host:99999/t", "bad host or port"},
        {"https://host:/t", "bad host or port"},
        {"https:///t", "bad host or port"},
        {"https://host/a b", "contains spaces or control characters"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int r = oauth2_url_parse(bad[i].url, &u, err, sizeof err);
        ok(r == OIMAP_ECONFIG && strstr(err, bad[i].why) && strstr(err, "oauth2_request_url"),
           "%s: %s", bad[i].url, err);
    }
    is_int(oauth2_url_parse(NULL, &u, err, sizeof err), OIMAP_ECONFIG, "no URL");
}

static void test_form(void)
{
    struct oauth2_params p = {.client_id = "123-abc.apps.googleusercontent.com",
                              .client_secret = "s e/c+r=t&",
                              .refresh_token = "1//0g~x_y.z"};
    char *b = oauth2_form_body(&p);
    is_str(b,
           "client_id=123-abc.apps.googleusercontent.com&client_secret=s+e%2Fc%2Br%3Dt%26&"
           "refresh_token=1%2F%2F0g~x_y.z&grant_type=refresh_token",
           "urlencoded as Python does, offlineimap's order");
    free(b);
    p.client_secret = NULL;
    p.client_id = NULL;
    b = oauth2_form_body(&p);
    is_str(b, "refresh_token=1%2F%2F0g~x_y.z&grant_type=refresh_token",
           "missing client id and secret left out");
    free(b);
}

/* ---- HTTP ---------------------------------------------------------------- */

struct http_case {
    const char *name, *raw;
    int status;
    const char *body; /* NULL: an error is expected */
    size_t early;     /* complete this many bytes before the end (trailers) */
};

static int parse(const char *raw, size_t len, bool eof, int *st, char **body, size_t *bl, char *err)
{
    char reason[64];
    return oauth2_http_parse(raw, len, eof, st, reason, sizeof reason, body, bl, err, 256);
}

static void test_http(void)
{
    static const struct http_case cases[] = {
        {"Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, "hello", 0},
        {"chunked",
         "HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
         "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n",
         400, "abcdefg", 2},
        {"100 Continue first",
         "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
         "content-length: 2\r\n\r\n{}",
         200, "{}", 0},
        {"bare LF", "HTTP/1.0 200 OK\nContent-Length: 2\n\nok", 200, "ok", 0},
        {"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", 0, NULL, 0},
        {"bad length", "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", 0, NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const struct http_case *c = &cases[i];
        size_t len = strlen(c->raw);
        int st = 0, rc = OIMAP_ENEEDMORE;
        char *body = NULL, err[256] = "";
        size_t bl = 0;
        /* byte by byte: "need more" until the answer is complete */
        size_t n;
        for (n = 1; n <= len && rc == OIMAP_ENEEDMORE; n++)
            rc = parse(c->raw, n, false, &st, &body, &bl, err);
        if (c->body) {
            ok(rc == 0 && n - 1 == len - c->early, "%s: complete exactly at the end (%d at %zu)",
               c->name, rc, n - 1);
            is_int(st, c->status, "%s: status", c->name);
            ok(body && bl == strlen(c->body) && memcmp(body, c->body, bl) == 0, "%s: body",
               c->name);
        } else {
            ok(rc == OIMAP_EPROTO, "%s: refused (%s)", c->name, err);
        }
        free(body);
    }
    int st;
    char *body, err[256];
    size_t bl;
    const char *eof = "HTTP/1.1 200 OK\r\n\r\nuntil the end";
    is_int(parse(eof, strlen(eof), false, &st, &body, &bl, err), OIMAP_ENEEDMORE,
           "no length: more until EOF");
    is_int(parse(eof, strlen(eof), true, &st, &body, &bl, err), 0, "no length: body at EOF");
    ok(bl == 13 && memcmp(body, "until the end", 13) == 0, "body to the end");
    free(body);
    const char *cut = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
    is_int(parse(cut, strlen(cut), true, &st, &body, &bl, err), OIMAP_EPROTO, "truncated body");
    ok(strstr(err, "closed inside the body") != NULL, "%s", err);
    is_int(parse("", 0, true, &st, &body, &bl, err), OIMAP_EPROTO, "nothing at all");
    ok(strstr(err, "without an answer") != NULL, "%s", err);
    const char *huge = "HTTP/1.1 200 OK\r\nContent-Length: 999999\r\n\r\n";
    is_int(parse(huge, strlen(huge), false, &st, &body, &bl, err), OIMAP_ETOOBIG, "too large");
    char *hdr = malloc(20000);
    memset(hdr, 'x', 20000);
    memcpy(hdr, "HTTP/1.1 200 OK\r\nX: ", 20);
    is_int(parse(hdr, 20000, false, &st, &body, &bl, err), OIMAP_ETOOBIG, "endless header");
    free(hdr);
}

/* ---- JSON answers ----------------------------------------------------------- */

static void answer(int status, const char *reason, const char *body, int want_rc, const char *want,
                   long long want_exp, const char *name)
{
    char *tok = NULL, err[1024] = "";
    long long exp = 0;
    int rc = oauth2_parse_answer(status, reason, body, strlen(body), &tok, &exp, err, sizeof err);
    is_int(rc, want_rc, "%s: code", name);
    if (rc == 0) {
        is_str(tok, want, "%s: token", name);
        is_int(exp, want_exp, "%s: expires_in", name);
    } else {
        is_str(err, want, "%s: message", name);
    }
    free(tok);
}

static void test_answers(void)
{
    answer(200, "OK",
           "{\"access_token\": \"ya29.a0\\u0041f-x/y\", \"expires_in\": 3599, \"scope\": "
           "\"https://mail.google.com/\", \"token_type\": \"Bearer\"}",
           0, "ya29.a0Af-x/y", 3599, "Google");
    answer(200, "OK",
           "{\"token_type\":\"Bearer\",\"expires_in\":\"3599\",\"ext_expires_in\":3599,"
           "\"access_token\":\"eyJ0.e30.sig\",\"refresh_token\":\"new\",\"id\":{\"a\":[1,2.5e3,"
           "true,null,{\"b\":\"c\\\"}\"}]}}",
           0, "eyJ0.e30.sig", 3599, "Microsoft style: string expires_in, nested values");
    answer(200, "OK", " {\"access_token\":\"t\"} \n", 0, "t", -1, "no expires_in");
    answer(400, "Bad Request",
           "{\n  \"error\": \"invalid_grant\",\n  \"error_description\": \"Token has been "
           "expired or revoked.\"\n}",
           OIMAP_EAUTH, "HTTP 400 Bad Request: invalid_grant (Token has been expired or revoked.)",
           0, "invalid_grant");
    answer(401, "Unauthorized", "{\"error\":\"invalid_client\"}", OIMAP_EAUTH,
           "HTTP 401 Unauthorized: invalid_client", 0, "no description");
    answer(200, "OK", "{\"error\":\"unauthorized_client\",\"error_description\":\"line\\none\"}",
           OIMAP_EAUTH, "unauthorized_client (line one)", 0, "error in a 200 answer");
    answer(502, "Bad Gateway", "<html>\r\n<b>upstream</b> down</html>", OIMAP_EPROTO,
           "HTTP 502 Bad Gateway: <html> <b>upstream</b> down</html>", 0, "HTML error page");
    answer(200, "OK", "{\"token_type\":\"Bearer\"}", OIMAP_EPROTO, "the answer has no access_token",
           0, "no token");
    answer(200, "OK", "{\"access_token\":\"a\\u0000b\"}", OIMAP_EPROTO,
           "the answer is not a JSON object: {\"access_token\":\"a\\u0000b\"}", 0, "NUL refused");
    answer(200, "OK", "{\"access_token\":\"a\\u0001b\"}", OIMAP_EPROTO,
           "the access_token has control characters", 0, "control character refused");
    answer(200, "OK", "{\"access_token\":\"x\"", OIMAP_EPROTO,
           "the answer is not a JSON object: {\"access_token\":\"x\"", 0, "truncated JSON");
}

/* ---- end to end ----------------------------------------------------------------- */

struct srv {
    uv_tcp_t lis;
    int port, requests;
    const char *answer;
    char last[8192];
};

struct sconn {
    uv_tcp_t t;
    struct srv *sv;
    char buf[8192];
    size_t len;
    bool answered;
};

static void s_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    struct sconn *c = h->data;
    (void)sz;
    *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - 1 - c->len));
}

static void s_closed(uv_handle_t *h)
{
    free(h->data);
}

static void s_written(uv_write_t *w, int st)
{
    (void)st;
    uv_close((uv_handle_t *)w->handle, s_closed);
    free(w);
}

static void s_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    struct sconn *c = st->data;
    if (n < 0) {
        if (!c->answered)
            uv_close((uv_handle_t *)st, s_closed);
        uv_read_stop(st);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    char *end = strstr(c->buf, "\r\n\r\n");
    const char *cl = strstr(c->buf, "Content-Length: ");
    if (c->answered || !end || !cl || c->len < (size_t)(end + 4 - c->buf) + (size_t)atoi(cl + 16))
        return;
    c->answered = true;
    c->sv->requests++;
    snprintf(c->sv->last, sizeof c->sv->last, "%s", c->buf);
    uv_read_stop(st);
    uv_write_t *w = malloc(sizeof *w);
    uv_buf_t out = uv_buf_init((char *)c->sv->answer, (unsigned)strlen(c->sv->answer));
    uv_write(w, st, &out, 1, s_written);
}

static void s_conn(uv_stream_t *lis, int status)
{
    struct srv *sv = lis->data;
    struct sconn *c = calloc(1, sizeof *c);
    if (status < 0 || !c) {
        free(c);
        return;
    }
    c->sv = sv;
    uv_tcp_init(loop, &c->t);
    c->t.data = c;
    if (uv_accept(lis, (uv_stream_t *)&c->t) < 0) {
        uv_close((uv_handle_t *)&c->t, s_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&c->t, s_alloc, s_read);
}

static void srv_start(struct srv *sv)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, &sv->lis);
    sv->lis.data = sv;
    uv_tcp_bind(&sv->lis, (struct sockaddr *)&a, 0);
    uv_listen((uv_stream_t *)&sv->lis, 8, s_conn);
    int len = sizeof a;
    uv_tcp_getsockname(&sv->lis, (struct sockaddr *)&a, &len);
    sv->port = ntohs(a.sin_port);
}

struct waiter {
    bool called;
    int st;
    char token[256], msg[1024];
};

static void on_token(int st, const char *token, const char *msg, void *arg)
{
    struct waiter *w = arg;
    w->called = true;
    w->st = st;
    snprintf(w->token, sizeof w->token, "%s", token ? token : "");
    snprintf(w->msg, sizeof w->msg, "%s", msg ? msg : "");
}

static const char OK_ANSWER[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                "Content-Length: 45\r\nConnection: close\r\n\r\n"
                                "{\"access_token\":\"tok-1234\",\"expires_in\":3600}";
static const char SHORT_ANSWER[] = "HTTP/1.1 200 OK\r\nContent-Length: 43\r\n\r\n"
                                   "{\"access_token\":\"tok-short\",\"expires_in\":1}";

static void test_fetch(void)
{
    struct srv sv = {.answer = OK_ANSWER};
    srv_start(&sv);
    char url[100];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/token", sv.port);
    struct oauth2_params p = {
        .url = url, .client_id = "cid", .refresh_token = "rt-a", .timeout_s = 5};
    char *tok = NULL, err[512];
    is_int(oauth2_cached_token(&p, &tok), -ENOENT, "nothing cached yet");

    /* two waiters share one request */
    struct waiter a = {0}, b = {0};
    struct oauth2_wait *wa = NULL, *wb = NULL;
    is_int(oauth2_fetch(loop, &p, on_token, &a, &wa, err, sizeof err), 0, "fetch %s", err);
    is_int(oauth2_fetch(loop, &p, on_token, &b, &wb, err, sizeof err), 0, "second fetch");
    ok(!a.called && !b.called, "no callback from inside oauth2_fetch");
    ok(run_until(&b.called, 5000) && a.called, "both called");
    is_int(sv.requests, 1, "one request for both");
    ok(a.st == 0 && strcmp(a.token, "tok-1234") == 0, "token %s %s", a.token, a.msg);
    is_str(b.token, "tok-1234", "same token for the second");
    ok(strstr(sv.last, "POST /token HTTP/1.1\r\n") && strstr(sv.last, "Host: 127.0.0.1:") &&
           strstr(sv.last, "Content-Type: application/x-www-form-urlencoded\r\n") &&
           strstr(sv.last, "\r\n\r\nclient_id=cid&refresh_token=rt-a&grant_type=refresh_token"),
       "the request");
    is_int(oauth2_cached_token(&p, &tok), 0, "cached");
    is_str(tok, "tok-1234", "cached token");
    free(tok);

    /* forgetting it (the server refused it) */
    oauth2_forget(&p, "other");
    is_int(oauth2_cached_token(&p, &tok), 0, "another token: not forgotten");
    free(tok);
    oauth2_forget(&p, "tok-1234");
    is_int(oauth2_cached_token(&p, &tok), -ENOENT, "forgotten");

    /* cancelling every waiter abandons the request: no callback */
    struct waiter c = {0};
    struct oauth2_wait *wc = NULL;
    is_int(oauth2_fetch(loop, &p, on_token, &c, &wc, err, sizeof err), 0, "fetch to cancel");
    oauth2_cancel(&wc);
    ok(wc == NULL, "cancel NULLs the wait");
    run_for(300);
    ok(!c.called, "no callback after cancel");

    /* expires_in 1: cached for half of it */
    sv.answer = SHORT_ANSWER;
    p.refresh_token = "rt-b";
    struct waiter d = {0};
    struct oauth2_wait *wd = NULL;
    oauth2_fetch(loop, &p, on_token, &d, &wd, err, sizeof err);
    ok(run_until(&d.called, 5000) && d.st == 0, "short token %s", d.msg);
    is_int(oauth2_cached_token(&p, &tok), 0, "short token cached");
    free(tok);
    run_for(600);
    is_int(oauth2_cached_token(&p, &tok), -ENOENT, "expired after half its life");

    /* errors: refused connection, HTTP error */
    uv_close((uv_handle_t *)&sv.lis, NULL);
    run_for(20);
    struct waiter e = {0};
    struct oauth2_wait *we = NULL;
    is_int(oauth2_fetch(loop, &p, on_token, &e, &we, err, sizeof err), 0, "fetch, no server");
    ok(run_until(&e.called, 5000), "called");
    char want[200];
    snprintf(want, sizeof want, "token request to %s: 127.0.0.1:%d: connection refused", url,
             sv.port);
    is_str(e.msg, want, "connection refused named");
    is_int(e.st, UV_ECONNREFUSED, "its code");

    p.url = "http://oauth2.example/token";
    is_int(oauth2_fetch(loop, &p, on_token, &e, &we, err, sizeof err), OIMAP_ECONFIG,
           "bad URL: no request");
    ok(strstr(err, "only accepted for a loopback host") != NULL, "%s", err);
    p.refresh_token = NULL;
    is_int(oauth2_fetch(loop, &p, on_token, &e, &we, err, sizeof err), UV_EINVAL,
           "no refresh token");
    oauth2_cleanup();
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    loop = uv_default_loop();
    test_url();
    test_form();
    test_http();
    test_answers();
    test_fetch();
    run_for(50);
    is_int(uv_loop_close(loop), 0, "every handle closed");
    return tap_done();
}
