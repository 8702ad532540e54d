/* oauth2.c - refresh-token grant over HTTPS; see include/oauth2.h.
 *
 * The HTTP client is as small as the one request needs: one POST per
 * connection ("Connection: close"), an answer with Content-Length, chunked
 * or ended by the close, bounded in size.  JSON: the members of the top-level
 * object; nested values are skipped.
 *
 * Secrets: the request holds the refresh token and client secret, the answer
 * the access token; both buffers are wiped before they are freed, and
 * neither is ever logged.
 */
#include "oauth2.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "build_config.h"
#include "chars.h"
#include "cred.h"
#include "err.h"
#include "log.h"
#include "net.h"
#include "strbuf.h"
#include "tls.h"

#define MAX_HEADER (16 * 1024)
#define MAX_BODY (64 * 1024)
#define MAX_ANSWER (MAX_HEADER + 2 * MAX_BODY) /* chunked framing included */
#define DEFAULT_TIMEOUT_S 60
#define JSON_MAX_DEPTH 32

static void wipe_free(char *p, size_t len)
{
    if (!p)
        return;
    explicit_bzero(p, len);
    free(p);
}

static void wipe_str(char **p)
{
    if (*p)
        wipe_free(*p, strlen(*p));
    *p = NULL;
}

/* ---- URL ------------------------------------------------------------------ */

static bool loopback_host(const char *h)
{
    return strcasecmp(h, "localhost") == 0 || strncmp(h, "127.", 4) == 0 || strcmp(h, "::1") == 0;
}

static int url_error(char *err, size_t errlen, const char *url, const char *why)
{
    snprintf(err, errlen, "oauth2_request_url %s: %s", url, why);
    return OIMAP_ECONFIG;
}

/* host[:port] or [v6]:port from the authority a[0..n). */
static int parse_authority(const char *a, size_t n, struct oauth2_url *u)
{
    const char *hs = a, *he, *port = NULL;
    if (n && a[0] == '[') {
        const char *rb = memchr(a, ']', n);
        if (!rb)
            return -1;
        hs = a + 1;
        he = rb;
        if (rb + 1 < a + n) {
            if (rb[1] != ':')
                return -1;
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(a, ':', n);
        he = colon ? colon : a + n;
        if (colon)
            port = colon + 1;
    }
    if (he == hs || (size_t)(he - hs) >= sizeof u->host)
        return -1;
    memcpy(u->host, hs, (size_t)(he - hs));
    u->host[he - hs] = '\0';
    if (port) {
        unsigned long v = 0;
        const char *p = port;
        for (; p < a + n && isdigit((unsigned char)*p) && v <= 65535; p++)
            v = v * 10 + (unsigned)(*p - '0');
        if (p == port || p != a + n || v == 0 || v > 65535)
            return -1;
        u->port = (unsigned)v;
    }
    return 0;
}

int oauth2_url_parse(const char *url, struct oauth2_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    if (!url || !*url) {
        snprintf(err, errlen, "oauth2_request_url: not set");
        return OIMAP_ECONFIG;
    }
    const char *p;
    if (strncasecmp(url, "https://", 8) == 0) {
        u->https = true;
        u->port = 443;
        p = url + 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        u->port = 80;
        p = url + 7;
    } else {
        return url_error(err, errlen, url, "not an https:// URL");
    }
    for (const char *q = url; *q; q++)
        if ((unsigned char)*q <= 0x20 || *q == 0x7f)
            return url_error(err, errlen, url, "contains spaces or control characters");
    size_t an = strcspn(p, "/?#");
    if (memchr(p, '@', an))
        return url_error(err, errlen, url, "user names in the URL are not supported");
    if (parse_authority(p, an, u) < 0)
        return url_error(err, errlen, url, "bad host or port");
    const char *rest = p + an;
    size_t rn = strcspn(rest, "#");
    if (rn + 2 > sizeof u->path)
        return url_error(err, errlen, url, "too long");
    snprintf(u->path, sizeof u->path, "%s%.*s", *rest == '/' ? "" : "/", (int)rn, rest);
    if (!u->https && !loopback_host(u->host))
        return url_error(err, errlen, url,
                         "http:// is only accepted for a loopback host (the refresh token "
                         "would travel in clear text); use https://");
    bool v6 = strchr(u->host, ':') != NULL;
    bool dflt = u->port == (u->https ? 443u : 80u);
    char port[8] = "";
    if (!dflt)
        snprintf(port, sizeof port, ":%u", u->port);
    snprintf(u->display, sizeof u->display, "%s://%s%s%s%s%.*s", u->https ? "https" : "http",
             v6 ? "[" : "", u->host, v6 ? "]" : "", port, (int)strcspn(u->path, "?"), u->path);
    return 0;
}

/* ---- the request ------------------------------------------------------------ */

/* application/x-www-form-urlencoded, as Python's urlencode writes it. */
static void form_add(struct strbuf *b, const char *name, const char *value)
{
    if (!value)
        return;
    if (b->len)
        strbuf_adds(b, "&");
    strbuf_adds(b, name);
    strbuf_adds(b, "=");
    for (const unsigned char *v = (const unsigned char *)value; *v; v++) {
        char enc[4];
        if (isalnum(*v) || *v == '-' || *v == '.' || *v == '_' || *v == '~') {
            strbuf_add(b, (const char *)v, 1);
        } else if (*v == ' ') {
            strbuf_adds(b, "+");
        } else {
            snprintf(enc, sizeof enc, "%%%02X", *v);
            strbuf_add(b, enc, 3);
        }
    }
}

char *oauth2_form_body(const struct oauth2_params *p)
{
    struct strbuf b = {0};
    form_add(&b, "client_id", p->client_id);
    form_add(&b, "client_secret", p->client_secret);
    form_add(&b, "refresh_token", p->refresh_token);
    form_add(&b, "grant_type", "refresh_token");
    if (b.err) {
        wipe_free(b.p, b.cap);
        return NULL;
    }
    return b.p;
}

static char *http_request(const struct oauth2_url *u, const struct oauth2_params *p, size_t *len_r)
{
    char *body = oauth2_form_body(p);
    if (!body)
        return NULL;
    struct strbuf b = {0};
    char line[2600];
    bool v6 = strchr(u->host, ':') != NULL;
    bool dflt = u->port == (u->https ? 443u : 80u);
    snprintf(line, sizeof line, "POST %s HTTP/1.1\r\nHost: %s%s%s", u->path, v6 ? "[" : "", u->host,
             v6 ? "]" : "");
    strbuf_adds(&b, line);
    if (!dflt) {
        snprintf(line, sizeof line, ":%u", u->port);
        strbuf_adds(&b, line);
    }
    snprintf(line, sizeof line,
             "\r\nUser-Agent: oimap/%s\r\nAccept: application/json\r\n"
             "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n",
             OIMAP_VERSION, strlen(body));
    strbuf_adds(&b, line);
    strbuf_adds(&b, body);
    wipe_str(&body);
    if (b.err) {
        wipe_free(b.p, b.cap);
        return NULL;
    }
    *len_r = b.len;
    return b.p;
}

/* ---- HTTP answer ------------------------------------------------------------ */

static const char *find_header_end(const char *p, size_t len, size_t *hlen_r)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (p[i] != '\n')
            continue;
        if (p[i + 1] == '\n') {
            *hlen_r = i + 2;
            return p + i;
        }
        if (p[i + 1] == '\r' && i + 2 < len && p[i + 2] == '\n') {
            *hlen_r = i + 3;
            return p + i;
        }
    }
    return NULL;
}

/* Does header line l[0..n) have this name?  Then its value in *v, *vn. */
static bool header_is(const char *l, size_t n, const char *name, const char **v, size_t *vn)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(l, name, k) != 0 || l[k] != ':')
        return false;
    const char *s = l + k + 1, *e = l + n;
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    *v = s;
    *vn = (size_t)(e - s);
    return true;
}

struct http_head {
    int status;
    long long content_length; /* -1: none */
    bool chunked;
};

static int parse_head(const char *p, size_t n, struct http_head *h, char *reason, size_t rlen)
{
    h->content_length = -1;
    h->chunked = false;
    const char *eol = memchr(p, '\n', n);
    if (!eol || n < 12 || strncmp(p, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)p[7]) ||
        p[8] != ' ' || !isdigit((unsigned char)p[9]) || !isdigit((unsigned char)p[10]) ||
        !isdigit((unsigned char)p[11]))
        return -1;
    h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    const char *rs = p + 12, *re = eol;
    while (rs < re && *rs == ' ')
        rs++;
    while (re > rs && (re[-1] == '\r' || re[-1] == ' '))
        re--;
    if (reason && rlen)
        snprintf(reason, rlen, "%.*s", (int)(re - rs), rs);
    for (const char *l = eol + 1; l < p + n;) {
        const char *e = memchr(l, '\n', (size_t)(p + n - l));
        size_t ln = e ? (size_t)(e - l) : (size_t)(p + n - l);
        const char *v;
        size_t vn;
        if (header_is(l, ln, "Content-Length", &v, &vn)) {
            long long cl = 0;
            size_t i = 0;
            for (; i < vn && isdigit((unsigned char)v[i]) && cl < MAX_ANSWER * 16LL; i++)
                cl = cl * 10 + (v[i] - '0');
            if (i == 0 || i != vn)
                return -1;
            h->content_length = cl;
        } else if (header_is(l, ln, "Transfer-Encoding", &v, &vn)) {
            for (size_t i = 0; i + 7 <= vn; i++)
                if (strncasecmp(v + i, "chunked", 7) == 0)
                    h->chunked = true;
        }
        l = e ? e + 1 : p + n;
    }
    return 0;
}

/* Decode a chunked body from p[0..n): 0 complete, OIMAP_ENEEDMORE, -1 bad. */
static int dechunk(const char *p, size_t n, struct strbuf *out)
{
    size_t i = 0;
    for (;;) {
        const char *eol = memchr(p + i, '\n', n - i);
        if (!eol)
            return OIMAP_ENEEDMORE;
        size_t size = 0, k = i;
        int d;
        for (; k < (size_t)(eol - p) && (d = chars_hex_value(p[k])) >= 0; k++) {
            if (size > MAX_BODY)
                return OIMAP_ETOOBIG;
            size = size * 16 + (size_t)d;
        }
        if (k == i)
            return -1;
        i = (size_t)(eol - p) + 1;
        if (size == 0)
            return 0; /* trailers, if any, do not matter: the connection closes */
        if (out->len + size > MAX_BODY)
            return OIMAP_ETOOBIG;
        if (n - i < size + 1)
            return OIMAP_ENEEDMORE;
        strbuf_add(out, p + i, size);
        i += size;
        if (p[i] == '\r')
            i++;
        if (i >= n)
            return OIMAP_ENEEDMORE;
        if (p[i] != '\n')
            return -1;
        i++;
    }
}

static int http_err(char *err, size_t errlen, int code, const char *why)
{
    snprintf(err, errlen, "%s", why);
    return code;
}

int oauth2_http_parse(const char *buf, size_t len, bool eof, int *status_r, char *reason,
                      size_t reason_len, char **body_r, size_t *body_len_r, char *err,
                      size_t errlen)
{
    *body_r = NULL;
    *body_len_r = 0;
    struct http_head h;
    size_t off = 0, hlen;
    for (;;) { /* 1xx answers come before the real one */
        if (!find_header_end(buf + off, len - off, &hlen)) {
            if (len - off > MAX_HEADER)
                return http_err(err, errlen, OIMAP_ETOOBIG, "HTTP header too large");
            if (!eof)
                return OIMAP_ENEEDMORE;
            return http_err(err, errlen, OIMAP_EPROTO,
                            len ? "the connection closed inside the HTTP header"
                                : "the connection closed without an answer");
        }
        if (parse_head(buf + off, hlen, &h, reason, reason_len) < 0)
            return http_err(err, errlen, OIMAP_EPROTO, "not an HTTP answer");
        off += hlen;
        if (h.status >= 200)
            break;
    }
    *status_r = h.status;
    const char *b = buf + off;
    size_t avail = len - off;
    struct strbuf body = {0};
    if (h.chunked) {
        int r = dechunk(b, avail, &body);
        if (r == OIMAP_ENEEDMORE && eof)
            r = -1;
        if (r < 0) {
            wipe_free(body.p, body.cap);
            if (r == OIMAP_ENEEDMORE)
                return r;
            return http_err(err, errlen, r == OIMAP_ETOOBIG ? r : OIMAP_EPROTO,
                            r == OIMAP_ETOOBIG ? "answer too large" : "bad chunked HTTP body");
        }
    } else if (h.content_length >= 0) {
        if (h.content_length > MAX_BODY)
            return http_err(err, errlen, OIMAP_ETOOBIG, "answer too large");
        if (avail < (size_t)h.content_length) {
            if (!eof)
                return OIMAP_ENEEDMORE;
            return http_err(err, errlen, OIMAP_EPROTO, "the connection closed inside the body");
        }
        strbuf_add(&body, b, (size_t)h.content_length);
    } else {
        if (!eof)
            return OIMAP_ENEEDMORE;
        if (avail > MAX_BODY)
            return http_err(err, errlen, OIMAP_ETOOBIG, "answer too large");
        strbuf_add(&body, b, avail);
    }
    if (!body.p)
        strbuf_add(&body, "", 0);
    if (body.err) {
        wipe_free(body.p, body.cap);
        return -ENOMEM;
    }
    *body_r = body.p;
    *body_len_r = body.len;
    return 0;
}

/* ---- JSON ------------------------------------------------------------------- */

struct jp {
    const char *p, *end;
};

enum { JV_STR, JV_NUM, JV_OTHER };

static void jws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool jat(struct jp *j, char c)
{
    jws(j);
    return j->p < j->end && *j->p == c;
}

static int hex4(const char *p, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int d = chars_hex_value(p[i]);
        if (d < 0)
            return -1;
        *v = *v * 16 + (uint32_t)d;
    }
    return 0;
}

/* A string at j->p (on its quote); decoded into *out (malloc'd) unless out
 * is NULL.  Decoding never grows: \uXXXX (6 bytes) gives at most 3. */
static int jstring(struct jp *j, char **out)
{
    const char *s = ++j->p, *q = s;
    while (q < j->end && *q != '"') {
        if ((unsigned char)*q < 0x20)
            return -1;
        q += *q == '\\' ? 2 : 1;
    }
    if (q >= j->end)
        return -1;
    j->p = q + 1;
    if (!out)
        return 0;
    char *d = malloc((size_t)(q - s) + 1), *o = d;
    if (!d)
        return -ENOMEM;
    for (const char *p = s; p < q;) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        char c = p[1];
        p += 2;
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *k = c ? strchr(from, c) : NULL;
        if (k) {
            *o++ = to[k - from];
            continue;
        }
        uint32_t cp, lo;
        if (c != 'u' || q - p < 4 || hex4(p, &cp) < 0 || cp == 0)
            goto bad;
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && q - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
            hex4(p + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        } else if (cp >= 0xD800 && cp <= 0xDFFF) {
            cp = 0xFFFD;
        }
        o += chars_utf8_put(o, cp);
    }
    *o = '\0';
    *out = d;
    return 0;
bad:
    wipe_free(d, (size_t)(q - s) + 1);
    return -1;
}

static int jvalue(struct jp *j, unsigned depth, int *kind, char **str, long long *num);

/* Skip an object or array at j->p. */
static int jcontainer(struct jp *j, unsigned depth)
{
    if (depth > JSON_MAX_DEPTH)
        return -1;
    char close = *j->p == '{' ? '}' : ']';
    bool object = close == '}';
    j->p++;
    if (jat(j, close)) {
        j->p++;
        return 0;
    }
    for (;;) {
        int kind;
        if (object && (!jat(j, '"') || jstring(j, NULL) < 0 || !jat(j, ':')))
            return -1;
        if (object)
            j->p++;
        if (jvalue(j, depth, &kind, NULL, NULL) < 0)
            return -1;
        if (jat(j, ',')) {
            j->p++;
            continue;
        }
        if (!jat(j, close))
            return -1;
        j->p++;
        return 0;
    }
}

static int jnumber(struct jp *j, long long *num)
{
    const char *p = j->p;
    bool neg = p < j->end && *p == '-';
    if (neg)
        p++;
    long long v = 0;
    const char *digits = p;
    for (; p < j->end && isdigit((unsigned char)*p); p++)
        if (v < 1000000000000LL)
            v = v * 10 + (*p - '0');
    if (p == digits)
        return -1;
    if (p < j->end && *p == '.') /* the fraction does not matter for seconds */
        for (p++; p < j->end && isdigit((unsigned char)*p); p++)
            ;
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        for (p++; p < j->end && (*p == '+' || *p == '-'); p++)
            ;
        for (; p < j->end && isdigit((unsigned char)*p); p++)
            ;
    }
    j->p = p;
    if (num)
        *num = neg ? -v : v;
    return 0;
}

static int jvalue(struct jp *j, unsigned depth, int *kind, char **str, long long *num)
{
    jws(j);
    if (j->p >= j->end)
        return -1;
    char c = *j->p;
    *kind = JV_OTHER;
    if (c == '"') {
        *kind = JV_STR;
        return jstring(j, str);
    }
    if (c == '{' || c == '[')
        return jcontainer(j, depth + 1);
    if (c == '-' || isdigit((unsigned char)c)) {
        *kind = JV_NUM;
        return jnumber(j, num);
    }
    static const char *const lits[] = {"true", "false", "null"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(lits[i]);
        if ((size_t)(j->end - j->p) >= n && memcmp(j->p, lits[i], n) == 0) {
            j->p += n;
            return 0;
        }
    }
    return -1;
}

struct answer {
    char *access_token, *error, *error_description;
    long long expires_in; /* -1: not given */
};

static void answer_free(struct answer *a)
{
    wipe_str(&a->access_token);
    free(a->error);
    free(a->error_description);
}

/* expires_in as a number or, from some servers, a string of digits. */
static void set_expires(struct answer *a, int kind, const char *s, long long n)
{
    if (kind == JV_NUM) {
        a->expires_in = n;
    } else if (kind == JV_STR && s && *s && strspn(s, "0123456789") == strlen(s) &&
               strlen(s) < 12) {
        a->expires_in = atoll(s);
    }
}

static int json_answer(const char *body, size_t len, struct answer *a)
{
    struct jp j = {body, body + len};
    a->expires_in = -1;
    if (!jat(&j, '{'))
        return -1;
    j.p++;
    if (jat(&j, '}')) {
        j.p++;
        goto end;
    }
    for (;;) {
        char *key = NULL, *sv = NULL;
        long long nv = 0;
        int kind;
        if (!jat(&j, '"') || jstring(&j, &key) < 0)
            return -1;
        char **slot = strcmp(key, "access_token") == 0        ? &a->access_token
                      : strcmp(key, "error") == 0             ? &a->error
                      : strcmp(key, "error_description") == 0 ? &a->error_description
                                                              : NULL;
        bool exp = strcmp(key, "expires_in") == 0;
        free(key);
        if (!jat(&j, ':'))
            return -1;
        j.p++;
        if (jvalue(&j, 1, &kind, slot || exp ? &sv : NULL, &nv) < 0)
            return -1;
        if (exp)
            set_expires(a, kind, sv, nv);
        if (slot && kind == JV_STR) {
            wipe_str(slot);
            *slot = sv;
            sv = NULL;
        }
        wipe_str(&sv);
        if (jat(&j, ',')) {
            j.p++;
            continue;
        }
        if (!jat(&j, '}'))
            return -1;
        j.p++;
        break;
    }
end:
    jws(&j);
    return j.p == j.end ? 0 : -1;
}

/* The server's text, fit for one log line: printable ASCII, cut. */
static void clean_text(char *out, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    bool space = false;
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c >= 0x80) {
            space = o > 0;
            continue;
        }
        if (space && c != ' ')
            out[o++] = ' ';
        space = false;
        out[o++] = (char)c;
    }
    if (o + 4 >= cap && o >= 3)
        memcpy(out + o - 3, "...", 3);
    out[o] = '\0';
}

int oauth2_parse_answer(int status, const char *reason, const char *body, size_t len,
                        char **token_r, long long *expires_r, char *err, size_t errlen)
{
    *token_r = NULL;
    *expires_r = -1;
    struct answer a = {0};
    bool json = json_answer(body, len, &a) == 0;
    char words[600] = "";
    if (json && a.error) {
        char e[200], d[400] = "";
        clean_text(e, sizeof e, a.error, strlen(a.error));
        if (a.error_description)
            clean_text(d, sizeof d, a.error_description, strlen(a.error_description));
        snprintf(words, sizeof words, "%s%s%s%s", e, *d ? " (" : "", d, *d ? ")" : "");
    } else if (!json) {
        clean_text(words, 240, body, len);
    }
    int rc = 0;
    if (status < 200 || status > 299) {
        char r[80];
        clean_text(r, sizeof r, reason ? reason : "", reason ? strlen(reason) : 0);
        snprintf(err, errlen, "HTTP %d%s%s%s%s", status, *r ? " " : "", r, *words ? ": " : "",
                 words);
        rc = status >= 400 && status < 500 ? OIMAP_EAUTH : OIMAP_EPROTO;
    } else if (!json) {
        snprintf(err, errlen, "the answer is not a JSON object%s%s", *words ? ": " : "", words);
        rc = OIMAP_EPROTO;
    } else if (a.error) {
        snprintf(err, errlen, "%s", words);
        rc = OIMAP_EAUTH;
    } else if (!a.access_token || !*a.access_token) {
        snprintf(err, errlen, "the answer has no access_token");
        rc = OIMAP_EPROTO;
    } else if (strpbrk(a.access_token, "\x01\r\n")) {
        snprintf(err, errlen, "the access_token has control characters");
        rc = OIMAP_EPROTO;
    } else {
        *token_r = a.access_token;
        *expires_r = a.expires_in;
        a.access_token = NULL;
    }
    answer_free(&a);
    return rc;
}

/* ---- the cache and the requests ------------------------------------------- */

struct request;

struct entry {
    struct entry *next;
    char *url, *client_id, *refresh_token; /* the key */
    char *token;                           /* NULL: none yet, or forgotten */
    uint64_t expires_ms;                   /* uv_hrtime() based; UINT64_MAX: the run */
    struct request *req;                   /* in flight, or NULL */
};

struct oauth2_wait {
    struct oauth2_wait *next;
    struct request *req; /* NULL while the answer is being delivered */
    bool cancelled;
    oauth2_cb cb;
    void *arg;
};

struct request {
    struct entry *e; /* NULL once abandoned */
    struct oauth2_url url;
    struct net_stream *s;
    struct tls_config *tls;
    struct oauth2_wait *waiters;
    char *out;
    size_t out_len;
    struct strbuf in;
    bool done;
};

static struct entry *g_entries;

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static bool str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static struct entry *find_entry(const struct oauth2_params *p)
{
    for (struct entry *e = g_entries; e; e = e->next)
        if (str_eq(e->url, p->url) && str_eq(e->client_id, p->client_id) &&
            str_eq(e->refresh_token, p->refresh_token))
            return e;
    return NULL;
}

static void entry_free(struct entry *e)
{
    free(e->url);
    free(e->client_id);
    wipe_str(&e->refresh_token);
    wipe_str(&e->token);
    free(e);
}

static struct entry *get_entry(const struct oauth2_params *p)
{
    struct entry *e = find_entry(p);
    if (e)
        return e;
    e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->url = strdup(p->url);
    e->client_id = strdup(p->client_id ? p->client_id : "");
    e->refresh_token = strdup(p->refresh_token);
    if (!e->url || !e->client_id || !e->refresh_token) {
        entry_free(e);
        return NULL;
    }
    e->next = g_entries;
    g_entries = e;
    return e;
}

int oauth2_cached_token(const struct oauth2_params *p, char **token_r)
{
    *token_r = NULL;
    struct entry *e = find_entry(p);
    if (!e || !e->token)
        return -ENOENT;
    if (e->expires_ms != UINT64_MAX && now_ms() >= e->expires_ms) {
        wipe_str(&e->token);
        return -ENOENT;
    }
    *token_r = strdup(e->token);
    return *token_r ? 0 : -ENOMEM;
}

void oauth2_forget(const struct oauth2_params *p, const char *token)
{
    struct entry *e = find_entry(p);
    if (e && e->token && token && strcmp(e->token, token) == 0) {
        LOG_DEBUG(LOGC_IMAP, "oauth2: the server refused the cached access token; forgetting it");
        wipe_str(&e->token);
    }
}

void oauth2_cleanup(void)
{
    while (g_entries) {
        struct entry *e = g_entries;
        g_entries = e->next;
        if (e->req)
            e->req->e = NULL;
        entry_free(e);
    }
}

static void on_req_closed(void *arg)
{
    struct request *r = arg;
    wipe_free(r->out, r->out_len);
    wipe_free(r->in.p, r->in.cap);
    tls_config_free(&r->tls);
    free(r);
}

/* Hand the outcome to every waiter, then close the connection. */
static void finish(struct request *r, int status, const char *token, const char *msg)
{
    if (r->done)
        return;
    r->done = true;
    if (r->e)
        r->e->req = NULL;
    r->e = NULL;
    struct oauth2_wait *list = r->waiters;
    r->waiters = NULL;
    for (struct oauth2_wait *w = list; w; w = w->next)
        w->req = NULL; /* a callback may cancel a later waiter: see oauth2_cancel */
    char *tok = token ? strdup(token) : NULL;
    if (token && !tok) {
        status = -ENOMEM;
        msg = "out of memory";
    }
    while (list) {
        struct oauth2_wait *w = list;
        list = w->next;
        if (!w->cancelled)
            w->cb(status, status == 0 ? tok : NULL, status == 0 ? NULL : msg, w->arg);
        free(w);
    }
    wipe_str(&tok);
    net_close(r->s, on_req_closed);
}

static void finish_err(struct request *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void finish_err(struct request *r, int status, const char *fmt, ...)
{
    char why[1024], msg[1700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof msg, "token request to %.600s: %s", r->url.display, why);
    LOG_DEBUG(LOGC_IMAP, "oauth2: %s", msg);
    finish(r, status, NULL, msg);
}

static void got_answer(struct request *r, int status, const char *reason, const char *body,
                       size_t len)
{
    char err[1024], *token;
    long long expires;
    int rc = oauth2_parse_answer(status, reason, body, len, &token, &expires, err, sizeof err);
    if (rc < 0) {
        finish_err(r, rc, "%s", err);
        return;
    }
    log_add_secret(token);
    if (expires < 0)
        LOG_DEBUG(LOGC_IMAP, "oauth2: %s: HTTP %d, access token (no expires_in: kept for the run)",
                  r->url.display, status);
    else
        LOG_DEBUG(LOGC_IMAP, "oauth2: %s: HTTP %d, access token valid for %lld s", r->url.display,
                  status, expires);
    struct entry *e = r->e;
    if (e && expires != 0) {
        if (e->token && strcmp(e->token, token) != 0)
            log_forget_secret(e->token); /* replaced: keeps the masker's table small */
        wipe_str(&e->token);
        e->token = strdup(token);
        /* half the lifetime, as offlineimap: a token is never used near its end */
        e->expires_ms = expires < 0 ? UINT64_MAX : now_ms() + (uint64_t)expires * 500u;
    }
    finish(r, 0, token, NULL);
    wipe_str(&token);
}

static void try_parse(struct request *r, bool eof)
{
    int status;
    char reason[128], err[256], *body;
    size_t blen;
    int rc = oauth2_http_parse(r->in.p ? r->in.p : "", r->in.len, eof, &status, reason,
                               sizeof reason, &body, &blen, err, sizeof err);
    if (rc == OIMAP_ENEEDMORE)
        return;
    if (rc < 0) {
        finish_err(r, rc, "%s", rc == -ENOMEM ? "out of memory" : err);
        return;
    }
    got_answer(r, status, reason, body, blen);
    wipe_free(body, blen);
}

static void on_connect(struct net_stream *s, void *arg)
{
    struct request *r = arg;
    int rc = net_write(s, r->out, r->out_len);
    wipe_free(r->out, r->out_len);
    r->out = NULL;
    r->out_len = 0;
    if (rc < 0) {
        finish_err(r, rc, "cannot send the request: %s", err_str(rc));
        return;
    }
    net_expect_data(s, true);
}

static void on_read(struct net_stream *s, const char *data, size_t len, void *arg)
{
    struct request *r = arg;
    net_consume(s, len);
    if (r->in.len + len > MAX_ANSWER) {
        finish_err(r, OIMAP_ETOOBIG, "answer too large");
        return;
    }
    strbuf_add(&r->in, data, len);
    if (r->in.err) {
        finish_err(r, -ENOMEM, "out of memory");
        return;
    }
    try_parse(r, false);
}

static void on_error(struct net_stream *s, int code, const char *msg, void *arg)
{
    (void)s;
    struct request *r = arg;
    if (code == UV_EOF && r->in.len) {
        try_parse(r, true);
        return;
    }
    finish_err(r, code, "%s", msg);
}

static const struct net_callbacks req_cbs = {
    .on_connect = on_connect,
    .on_read = on_read,
    .on_error = on_error,
};

static int start_request(uv_loop_t *loop, struct entry *e, const struct oauth2_params *p,
                         const struct oauth2_url *u, char *err, size_t errlen)
{
    struct request *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->url = *u;
    r->out = http_request(u, p, &r->out_len);
    if (!r->out) {
        free(r);
        return -ENOMEM;
    }
    struct net_opts o = {.timeout_s = p->timeout_s ? p->timeout_s : DEFAULT_TIMEOUT_S,
                         .proxy = p->proxy};
    if (u->https) {
        /* The token endpoint is a public web server: the system's CAs, or
         * $SSL_CERT_FILE as with Python's urllib under offlineimap. */
        const char *ca = getenv("SSL_CERT_FILE");
        struct tls_opts to = {.cafile = ca && *ca ? ca : NULL};
        char terr[300];
        int rc = tls_config_new(&to, &r->tls, terr, sizeof terr);
        if (rc < 0) {
            snprintf(err, errlen, "token request to %s: %s%s", u->display,
                     ca && *ca ? "SSL_CERT_FILE: " : "", terr);
            on_req_closed(r);
            return rc;
        }
        o.tls = r->tls;
    }
    int rc = net_connect(loop, u->host, u->port, &o, &req_cbs, r, &r->s);
    if (rc < 0) {
        snprintf(err, errlen, "token request to %s: %s", u->display, err_str(rc));
        on_req_closed(r);
        return rc;
    }
    r->e = e;
    e->req = r;
    LOG_DEBUG(LOGC_IMAP, "oauth2: POST %s (grant_type=refresh_token, client_id=%s)", u->display,
              p->client_id ? p->client_id : "(none)");
    return 0;
}

int oauth2_fetch(uv_loop_t *loop, const struct oauth2_params *p, oauth2_cb cb, void *arg,
                 struct oauth2_wait **w_r, char *err, size_t errlen)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    *w_r = NULL;
    if (!loop || !p || !cb || !p->refresh_token || !*p->refresh_token)
        return UV_EINVAL;
    struct oauth2_url u;
    int rc = oauth2_url_parse(p->url, &u, err, errlen);
    if (rc < 0)
        return rc;
    struct entry *e = get_entry(p);
    struct oauth2_wait *w = calloc(1, sizeof *w);
    if (!e || !w) {
        free(w);
        return -ENOMEM;
    }
    if (!e->req && (rc = start_request(loop, e, p, &u, err, errlen)) < 0) {
        free(w);
        return rc;
    }
    w->cb = cb;
    w->arg = arg;
    w->req = e->req;
    w->next = e->req->waiters;
    e->req->waiters = w;
    *w_r = w;
    return 0;
}

void oauth2_cancel(struct oauth2_wait **wp)
{
    struct oauth2_wait *w = wp ? *wp : NULL;
    if (!w)
        return;
    *wp = NULL;
    struct request *r = w->req;
    if (!r) { /* being delivered right now: finish() frees it */
        w->cancelled = true;
        return;
    }
    for (struct oauth2_wait **pp = &r->waiters; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    free(w);
    if (!r->waiters && !r->done) { /* nobody waits: abandon the request */
        r->done = true;
        if (r->e)
            r->e->req = NULL;
        r->e = NULL;
        net_close(r->s, on_req_closed);
    }
}
