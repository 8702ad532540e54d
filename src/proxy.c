/* proxy.c - the SOCKS5, SOCKS4(a) and HTTP CONNECT handshakes, over buffers.
 * See proxy.h. */
#include "proxy.h"

#include "err.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Steps of each protocol: the request sent and the answer awaited. */
enum {
    STEP_SOCKS5_HELLO = 0, /* methods offered / method chosen */
    STEP_SOCKS5_CONNECT,   /* CONNECT / reply with the bound address */
    STEP_SOCKS4_CONNECT = 0,
    STEP_HTTP_CONNECT = 0,
};

const char *proxy_type_name(enum proxy_type t)
{
    switch (t) {
    case PROXY_SOCKS5:
        return "SOCKS5";
    case PROXY_SOCKS4:
        return "SOCKS4";
    case PROXY_HTTP:
        return "HTTP";
    case PROXY_NONE:
        break;
    }
    return "none";
}

/* ---- the option value ------------------------------------------------------ */

/* At most 100 bytes of text for a one-line message: control characters and
 * non-ASCII bytes become '?'. */
static const char *printable(const char *in, size_t len, char out[101])
{
    size_t n = 0;
    for (; n < len && n < 100 && in[n]; n++)
        out[n] = (unsigned char)in[n] >= ' ' && (unsigned char)in[n] < 0x7f ? in[n] : '?';
    out[n] = 0;
    return out;
}

static int parse_port(const char *s, unsigned *port)
{
    if (!*s || strlen(s) > 5)
        return -1;
    unsigned v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned)(*s - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *port = v;
    return 0;
}

int proxy_parse(const char *text, struct proxy_spec *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (!text || !*text)
        return 0;
    char shown[101];
    printable(text, strlen(text), shown);
    const char *c1 = strchr(text, ':');
    if (!c1) {
        snprintf(err, errlen, "'%s' is not TYPE:host:port (e.g. SOCKS5:127.0.0.1:9050)", shown);
        return OIMAP_ECONFIG;
    }
    size_t tlen = (size_t)(c1 - text);
    static const enum proxy_type types[] = {PROXY_SOCKS5, PROXY_SOCKS4, PROXY_HTTP};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const char *name = proxy_type_name(types[i]);
        if (tlen == strlen(name) && strncasecmp(text, name, tlen) == 0)
            p->type = types[i];
    }
    if (p->type == PROXY_NONE) {
        char type[101];
        snprintf(err, errlen, "unknown proxy type '%s': SOCKS5, SOCKS4 or HTTP",
                 printable(text, tlen > 40 ? 40 : tlen, type));
        return OIMAP_ECONFIG;
    }
    const char *h = c1 + 1, *hend, *portp;
    if (*h == '[') { /* [IPv6]:port */
        hend = strchr(h, ']');
        if (!hend || hend[1] != ':') {
            snprintf(err, errlen, "'%s': an IPv6 proxy address is written [address]:port", shown);
            goto bad;
        }
        h++;
        portp = hend + 2;
    } else {
        hend = strrchr(h, ':');
        if (!hend || memchr(h, ':', (size_t)(hend - h))) {
            snprintf(err, errlen, "'%s' is not TYPE:host:port (e.g. SOCKS5:127.0.0.1:9050)", shown);
            goto bad;
        }
        portp = hend + 1;
    }
    size_t hlen = (size_t)(hend - h);
    if (hlen == 0 || hlen >= sizeof p->host) {
        snprintf(err, errlen, "'%s': the proxy host is %s", shown, hlen ? "too long" : "empty");
        goto bad;
    }
    for (size_t i = 0; i < hlen; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (ch <= ' ' || ch >= 0x7f || ch == '/' || ch == '@' || ch == '[' || ch == ']') {
            snprintf(err, errlen, "'%s': the proxy host has a character a host name cannot have",
                     shown);
            goto bad;
        }
    }
    if (parse_port(portp, &p->port) < 0) {
        snprintf(err, errlen, "'%s': the proxy port must be a number from 1 to 65535", shown);
        goto bad;
    }
    memcpy(p->host, h, hlen);
    p->host[hlen] = 0;
    return 0;
bad:
    memset(p, 0, sizeof *p);
    return OIMAP_ECONFIG;
}

/* ---- the handshake ---------------------------------------------------------- */

void proxy_hs_init(struct proxy_hs *h, enum proxy_type type, const char *host, unsigned port)
{
    memset(h, 0, sizeof *h);
    h->type = type;
    size_t len = host ? strlen(host) : 0;
    h->host_too_long = len >= sizeof h->host;
    if (!h->host_too_long && len)
        memcpy(h->host, host, len + 1);
    h->port = port;
}

bool proxy_hs_done(const struct proxy_hs *h)
{
    return h->done;
}

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static int socks5_request(const struct proxy_hs *h, unsigned char *buf, char *err, size_t errlen)
{
    if (h->step == STEP_SOCKS5_HELLO) {
        buf[0] = 5; /* version */
        buf[1] = 1; /* one method offered: */
        buf[2] = 0; /* no authentication */
        return 3;
    }
    size_t n = 0;
    buf[n++] = 5;
    buf[n++] = 1; /* CONNECT */
    buf[n++] = 0;
    unsigned char a[16];
    if (inet_pton(AF_INET, h->host, a) == 1) {
        buf[n++] = 1;
        memcpy(buf + n, a, 4);
        n += 4;
    } else if (inet_pton(AF_INET6, h->host, a) == 1) {
        buf[n++] = 4;
        memcpy(buf + n, a, 16);
        n += 16;
    } else {
        size_t len = strlen(h->host);
        if (len == 0 || len > 255) {
            snprintf(err, errlen, "SOCKS5 proxy: the host name '%.60s' cannot be sent (%s)",
                     h->host, len ? "longer than 255 bytes" : "empty");
            return OIMAP_ECONFIG;
        }
        buf[n++] = 3;
        buf[n++] = (unsigned char)len;
        memcpy(buf + n, h->host, len);
        n += len;
    }
    put16(buf + n, h->port);
    return (int)(n + 2);
}

static int socks4_request(const struct proxy_hs *h, unsigned char *buf, char *err, size_t errlen)
{
    size_t n = 0;
    buf[n++] = 4;
    buf[n++] = 1; /* CONNECT */
    put16(buf + n, h->port);
    n += 2;
    unsigned char a[16];
    bool by_name = false;
    if (inet_pton(AF_INET, h->host, a) == 1) {
        if (a[0] == 0 && a[1] == 0 && a[2] == 0) {
            /* 0.0.0.x means "the name follows" (4a) to the proxy */
            snprintf(err, errlen, "SOCKS4 proxy: cannot reach the address %s", h->host);
            return OIMAP_ECONFIG;
        }
        memcpy(buf + n, a, 4);
    } else if (inet_pton(AF_INET6, h->host, a) == 1) {
        snprintf(err, errlen, "SOCKS4 proxy: cannot reach the IPv6 address %s (use SOCKS5)",
                 h->host);
        return OIMAP_ECONFIG;
    } else {
        /* SOCKS4a: address 0.0.0.x (x != 0), the name after the user id */
        static const unsigned char marker[4] = {0, 0, 0, 1};
        memcpy(buf + n, marker, 4);
        by_name = true;
    }
    n += 4;
    buf[n++] = 0; /* empty user id */
    if (by_name) {
        size_t len = strlen(h->host);
        if (len == 0 || len > 255) {
            snprintf(err, errlen, "SOCKS4 proxy: the host name '%.60s' cannot be sent", h->host);
            return OIMAP_ECONFIG;
        }
        memcpy(buf + n, h->host, len + 1);
        n += len + 1;
    }
    return (int)n;
}

static int http_request(const struct proxy_hs *h, unsigned char *buf, size_t cap, char *err,
                        size_t errlen)
{
    for (const char *p = h->host; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            snprintf(err, errlen, "HTTP proxy: the host name cannot be sent");
            return OIMAP_ECONFIG;
        }
    }
    bool v6 = strchr(h->host, ':') != NULL;
    int n = snprintf((char *)buf, cap, "CONNECT %s%s%s:%u HTTP/1.1\r\nHost: %s%s%s:%u\r\n\r\n",
                     v6 ? "[" : "", h->host, v6 ? "]" : "", h->port, v6 ? "[" : "", h->host,
                     v6 ? "]" : "", h->port);
    if (n < 0 || (size_t)n >= cap) {
        snprintf(err, errlen, "HTTP proxy: the host name is too long");
        return OIMAP_ECONFIG;
    }
    return n;
}

int proxy_hs_request(struct proxy_hs *h, unsigned char *buf, size_t cap, char *err, size_t errlen)
{
    if (cap < PROXY_REQUEST_MAX || h->done) {
        snprintf(err, errlen, "proxy: no request to send");
        return OIMAP_ECONFIG;
    }
    if (h->host_too_long || !h->host[0]) {
        snprintf(err, errlen, "%s proxy: the server's name is %s", proxy_type_name(h->type),
                 h->host_too_long ? "longer than 255 bytes" : "empty");
        return OIMAP_ECONFIG;
    }
    switch (h->type) {
    case PROXY_SOCKS5:
        return socks5_request(h, buf, err, errlen);
    case PROXY_SOCKS4:
        return socks4_request(h, buf, err, errlen);
    case PROXY_HTTP:
        return http_request(h, buf, cap, err, errlen);
    case PROXY_NONE:
        break;
    }
    snprintf(err, errlen, "proxy: no proxy type");
    return OIMAP_ECONFIG;
}

/* RFC 1928, section 6: the REP field. */
static const char *socks5_reply_text(unsigned rep)
{
    static const char *const text[] = {
        [1] = "general SOCKS server failure",
        [2] = "connection not allowed by its rules",
        [3] = "network unreachable",
        [4] = "host unreachable",
        [5] = "connection refused by the destination host",
        [6] = "TTL expired",
        [7] = "command not supported",
        [8] = "address type not supported",
    };
    return rep < sizeof text / sizeof text[0] && text[rep] ? text[rep] : "unknown failure code";
}

static int socks5_feed(struct proxy_hs *h, const unsigned char *d, size_t len, char *err,
                       size_t errlen)
{
    if (len < 2)
        return OIMAP_ENEEDMORE;
    if (d[0] != 5) {
        snprintf(err, errlen, "SOCKS5 proxy: the answer is not SOCKS5 (version byte %u)", d[0]);
        return OIMAP_EPROTO;
    }
    if (h->step == STEP_SOCKS5_HELLO) {
        if (d[1] == 0xff) {
            snprintf(err, errlen,
                     "SOCKS5 proxy: it requires authentication, which oimap does not offer");
            return OIMAP_EPROXY;
        }
        if (d[1] != 0) {
            snprintf(err, errlen, "SOCKS5 proxy: it chose method %u, which was not offered", d[1]);
            return OIMAP_EPROTO;
        }
        h->step = STEP_SOCKS5_CONNECT;
        return 2;
    }
    if (len < 5)
        return OIMAP_ENEEDMORE;
    if (d[1] != 0) {
        snprintf(err, errlen, "SOCKS5 proxy: %s (code %u)", socks5_reply_text(d[1]), d[1]);
        return OIMAP_EPROXY;
    }
    size_t alen;
    switch (d[3]) {
    case 1:
        alen = 4;
        break;
    case 4:
        alen = 16;
        break;
    case 3:
        alen = 1 + (size_t)d[4];
        break;
    default:
        snprintf(err, errlen, "SOCKS5 proxy: unknown address type %u in its answer", d[3]);
        return OIMAP_EPROTO;
    }
    size_t total = 4 + alen + 2;
    if (len < total)
        return OIMAP_ENEEDMORE;
    h->done = true;
    return (int)total;
}

static int socks4_feed(struct proxy_hs *h, const unsigned char *d, size_t len, char *err,
                       size_t errlen)
{
    if (len < 8)
        return OIMAP_ENEEDMORE;
    if (d[0] != 0) {
        snprintf(err, errlen, "SOCKS4 proxy: the answer is not SOCKS4 (version byte %u)", d[0]);
        return OIMAP_EPROTO;
    }
    switch (d[1]) {
    case 90:
        h->done = true;
        return 8;
    case 91:
        snprintf(err, errlen, "SOCKS4 proxy: request rejected or failed (connection refused?)");
        return OIMAP_EPROXY;
    case 92:
    case 93:
        snprintf(err, errlen, "SOCKS4 proxy: request rejected: it requires an identd user id");
        return OIMAP_EPROXY;
    default:
        snprintf(err, errlen, "SOCKS4 proxy: unknown answer code %u", d[1]);
        return OIMAP_EPROTO;
    }
}

/* The end of the header section: the first empty line, after a line end
 * of either kind (CRLF, or a bare LF as lenient parsers take it). */
static size_t http_header_end(const unsigned char *d, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (d[i] != '\n')
            continue;
        if (d[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && d[i + 1] == '\r' && d[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static int http_feed(struct proxy_hs *h, const unsigned char *d, size_t len, char *err,
                     size_t errlen)
{
    size_t scan = len > PROXY_ANSWER_MAX ? PROXY_ANSWER_MAX : len;
    size_t end = http_header_end(d, scan);
    if (!end) {
        if (len >= PROXY_ANSWER_MAX) {
            snprintf(err, errlen, "HTTP proxy: its answer is longer than %d bytes",
                     PROXY_ANSWER_MAX);
            return OIMAP_ETOOBIG;
        }
        /* a wrong protocol shows in the first bytes: no need to wait */
        if (len >= 5 && memcmp(d, "HTTP/", 5) != 0)
            goto not_http;
        return OIMAP_ENEEDMORE;
    }
    /* status line: HTTP/1.x SP 3DIGIT SP reason */
    size_t eol = 0;
    while (eol < end && d[eol] != '\r' && d[eol] != '\n')
        eol++;
    /* RFC 9112 4: HTTP/1.DIGIT SP 3DIGIT, then SP (reason) or the line end */
    if (eol < 12 || memcmp(d, "HTTP/1.", 7) != 0 || d[7] < '0' || d[7] > '9' || d[8] != ' ' ||
        (eol > 12 && d[12] != ' '))
        goto not_http;
    unsigned code = 0;
    for (int i = 9; i < 12; i++) {
        if (d[i] < '0' || d[i] > '9')
            goto not_http;
        code = code * 10 + (unsigned)(d[i] - '0');
    }
    if (code / 100 == 2) {
        h->done = true;
        return (int)end;
    }
    /* the proxy's own words, printable characters only */
    char reason[120];
    size_t r = 0;
    for (size_t i = 12; i < eol && r + 1 < sizeof reason; i++) {
        if (r == 0 && d[i] == ' ')
            continue;
        reason[r++] = d[i] >= ' ' && d[i] < 0x7f ? (char)d[i] : '?';
    }
    reason[r] = 0;
    if (code == 407)
        snprintf(err, errlen,
                 "HTTP proxy: it requires authentication, which oimap does not offer (%u %s)", code,
                 reason);
    else
        snprintf(err, errlen, "HTTP proxy: CONNECT refused: %u %s", code, reason);
    return OIMAP_EPROXY;
not_http:
    snprintf(err, errlen, "HTTP proxy: the answer is not HTTP");
    return OIMAP_EPROTO;
}

int proxy_hs_feed(struct proxy_hs *h, const unsigned char *data, size_t len, char *err,
                  size_t errlen)
{
    if (h->done) {
        snprintf(err, errlen, "proxy: no answer expected");
        return OIMAP_EPROTO;
    }
    if (!data)
        len = 0;
    switch (h->type) {
    case PROXY_SOCKS5:
        return socks5_feed(h, data, len, err, errlen);
    case PROXY_SOCKS4:
        return socks4_feed(h, data, len, err, errlen);
    case PROXY_HTTP:
        return http_feed(h, data, len, err, errlen);
    case PROXY_NONE:
        break;
    }
    snprintf(err, errlen, "proxy: no proxy type");
    return OIMAP_EPROTO;
}
