/* fuzz_proxy.c - libFuzzer target for the proxy handshakes and the proxy
 * option.  The input is what a proxy answers: for each of SOCKS5, SOCKS4 and
 * HTTP it is fed as a client does (request, feed, consume, until done, an
 * error or "need more"), and the whole input is parsed as a "TYPE:host:port"
 * value.  The target (name, IPv4, IPv6, 255 bytes, too long, empty) follows
 * from the input's length.
 *
 * Invariants: no read outside the bytes given (ASan: libFuzzer's buffer has
 * the input's exact size); an accepted answer takes at least one byte and
 * never more than it was given, and every shorter prefix of it needs more;
 * done only after an accepted answer, and nothing is accepted after done; a
 * request is 1..PROXY_REQUEST_MAX bytes or OIMAP_ECONFIG; only the codes
 * proxy.h lists come back, each error with a one-line message (no control
 * bytes; ASCII only when made from the proxy's bytes); a refused option
 * value leaves the spec zeroed.
 *
 * Long run: see tests/fuzz/README.md (meson with CC=clang -Dfuzz=true). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A message: not empty, one line, no control bytes; ascii: nothing above
 * 0x7e either (the proxy's bytes; an option value may hold UTF-8). */
static void check_message(const char *s, bool ascii)
{
    if (!*s)
        abort();
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f || (ascii && c > 0x7f))
            abort();
    }
}

/* One feed, on a buffer of exactly len bytes so ASan sees any over-read. */
static int feed_copy(struct proxy_hs *h, const uint8_t *data, size_t len)
{
    char err[256];
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    memcpy(copy, data, len);
    int r = proxy_hs_feed(h, copy, len, err, sizeof err);
    free(copy);
    return r;
}

/* An answer of n bytes was accepted from state before: each shorter prefix
 * needs more (all of them for a short answer, a few for a long one, so that
 * one input stays linear), and exactly n bytes give n. */
static void check_prefixes(const struct proxy_hs *before, const uint8_t *d, size_t n)
{
    size_t picks[] = {0, 1, n / 2, n - 1};
    size_t count = n <= 64 ? n : sizeof picks / sizeof picks[0];
    for (size_t i = 0; i < count; i++) {
        size_t k = n <= 64 ? i : picks[i];
        struct proxy_hs h = *before;
        if (feed_copy(&h, d, k) != OIMAP_ENEEDMORE || proxy_hs_done(&h))
            abort();
    }
    struct proxy_hs h = *before;
    if (feed_copy(&h, d, n) != (int)n)
        abort();
}

static void run(enum proxy_type type, const char *host, const uint8_t *data, size_t size)
{
    struct proxy_hs h;
    unsigned char req[PROXY_REQUEST_MAX];
    char err[256];
    size_t off = 0;
    proxy_hs_init(&h, type, host, 993);
    for (int round = 0; round < 4; round++) {
        err[0] = 0;
        int n = proxy_hs_request(&h, req, sizeof req, err, sizeof err);
        if (n < 0) {
            if (n != OIMAP_ECONFIG)
                abort();
            check_message(err, false); /* may name the host */
            return;
        }
        if (n == 0 || n > PROXY_REQUEST_MAX)
            abort();

        struct proxy_hs before = h;
        err[0] = 0;
        int r = proxy_hs_feed(&h, data + off, size - off, err, sizeof err);
        if (r == OIMAP_ENEEDMORE) {
            if (proxy_hs_done(&h))
                abort();
            return;
        }
        if (r < 0) {
            if (r != OIMAP_EPROXY && r != OIMAP_EPROTO && r != OIMAP_ETOOBIG)
                abort();
            if (r == OIMAP_ETOOBIG && (type != PROXY_HTTP || size - off < PROXY_ANSWER_MAX))
                abort();
            if (proxy_hs_done(&h))
                abort();
            check_message(err, true);
            return;
        }
        if (r == 0 || (size_t)r > size - off)
            abort();
        check_prefixes(&before, data + off, (size_t)r);
        off += (size_t)r;
        if (proxy_hs_done(&h)) {
            err[0] = 0;
            r = proxy_hs_feed(&h, data + off, size - off, err, sizeof err);
            if (r >= 0 || r == OIMAP_ENEEDMORE || !proxy_hs_done(&h))
                abort();
            check_message(err, true);
            return;
        }
    }
    abort(); /* no protocol here has more than two answers */
}

static void parse(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    struct proxy_spec p;
    char err[256] = "";
    memset(&p, 0xaa, sizeof p);
    int r = proxy_parse(text, &p, err, sizeof err);
    if (r == 0) {
        if (p.type == PROXY_NONE) {
            if (*text)
                abort();
        } else if (!p.host[0] || strlen(p.host) >= sizeof p.host || p.port == 0 || p.port > 65535 ||
                   strpbrk(p.host, "/@")) {
            abort();
        }
        for (const char *c = p.host; *c; c++)
            if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
                abort();
    } else {
        static const struct proxy_spec zero;
        if (r != OIMAP_ECONFIG || memcmp(&p, &zero, sizeof p) != 0)
            abort();
        /* BUG (reported): proxy_parse() puts the value's control bytes,
         * newlines included, into its message as they are. */
        check_message(err, false);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char name255[256], name300[301];
    if (!name255[0]) {
        memset(name255, 'a', 255);
        memset(name300, 'b', 300);
    }
    const char *const hosts[] = {
        "imap.example.org", "192.0.2.7", "2001:db8::1", name255, name300, ""};
    const char *host = hosts[size % (sizeof hosts / sizeof hosts[0])];
    run(PROXY_SOCKS5, host, data, size);
    run(PROXY_SOCKS4, host, data, size);
    run(PROXY_HTTP, host, data, size);
    parse(data, size);
    return 0;
}
