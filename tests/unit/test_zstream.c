/* test_zstream.c - raw DEFLATE both ways: round trips, split input, sync
 * flushes, bounded output under a "zip bomb", corrupt input. */
#include "zstream.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tap.h"

struct sink {
    unsigned char *p;
    size_t len, cap;
    int fail_after; /* >0: fail that call (1 = first) */
    int calls;
};

static int sink_put(void *arg, const unsigned char *p, size_t n)
{
    struct sink *s = arg;
    if (s->fail_after && ++s->calls >= s->fail_after)
        return -12345;
    if (n == 0)
        return 0;
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        while (cap < s->len + n)
            cap *= 2;
        s->p = realloc(s->p, cap);
        s->cap = cap;
    }
    memcpy(s->p + s->len, p, n);
    s->len += n;
    return 0;
}

/* Mail-like text: repetitive headers, varied bodies. */
static char *make_text(size_t len, unsigned seed)
{
    char *t = malloc(len + 1);
    size_t o = 0;
    unsigned x = seed;
    while (o < len) {
        char line[200];
        x = x * 1103515245u + 12345u;
        int n = snprintf(line, sizeof line,
                         "* %u FETCH (UID %u FLAGS (\\Seen) RFC822.SIZE %u)\r\n"
                         "Subject: message number %u about %s\r\n",
                         x % 5000, x % 90000, x % 70000, x % 777,
                         (x >> 8) % 2 ? "the weather" : "a meeting");
        for (int i = 0; i < n && o < len; i++)
            t[o++] = line[i];
    }
    t[len] = 0;
    return t;
}

static void fill_random(unsigned char *p, size_t len, unsigned seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (unsigned char)x;
    }
}

/* Inflate all of in[] through an output window of `window` bytes, feeding
 * at most `feed` input bytes per call.  Returns the clear text or NULL;
 * *rc_r the first error. */
static unsigned char *inflate_all(struct zstream *z, const unsigned char *in, size_t len,
                                  size_t feed, size_t window, size_t *out_len, int *rc_r)
{
    struct sink out = {0};
    unsigned char *win = malloc(window);
    size_t off = 0;
    *rc_r = 0;
    for (int guard = 0; guard < 10000000; guard++) {
        size_t give = len - off < feed ? len - off : feed;
        size_t used, made;
        int rc = zstream_inflate(z, len ? in + off : in, give, &used, win, window, &made);
        if (made > window || used > give) {
            *rc_r = -1;
            break;
        }
        off += used;
        sink_put(&out, win, made);
        if (rc < 0) {
            *rc_r = rc;
            break;
        }
        if (off == len && !zstream_inflate_pending(z))
            break;
        if (used == 0 && made == 0 && off == len)
            break;
    }
    free(win);
    *out_len = out.len;
    return out.p;
}

static void round_trip(const char *name, const unsigned char *data, size_t len, size_t batch,
                       size_t feed, size_t window)
{
    struct zstream *a = NULL, *b = NULL;
    is_int(zstream_new(&a), 0, "%s: new (sender)", name);
    is_int(zstream_new(&b), 0, "%s: new (receiver)", name);
    struct sink wire = {0};
    int rc = 0;
    for (size_t o = 0; o < len && rc == 0; o += batch)
        rc = zstream_deflate(a, data + o, len - o < batch ? len - o : batch, sink_put, &wire);
    is_int(rc, 0, "%s: deflate", name);
    size_t got_len;
    int irc;
    unsigned char *got = inflate_all(b, wire.p, wire.len, feed, window, &got_len, &irc);
    is_int(irc, 0, "%s: inflate", name);
    ok(got_len == len && (len == 0 || memcmp(got, data, len) == 0),
       "%s: %zu bytes back unchanged (%zu on the wire)", name, len, wire.len);
    struct zstream_counts n;
    zstream_get_counts(a, &n);
    ok(n.out_clear == len && n.out_packed == wire.len, "%s: sender counts", name);
    zstream_get_counts(b, &n);
    ok(n.in_packed == wire.len && n.in_clear == len, "%s: receiver counts", name);
    free(got);
    free(wire.p);
    zstream_free(&a);
    zstream_free(&b);
    ok(a == NULL && b == NULL, "%s: free NULLs", name);
}

/* Each batch is complete on the wire the moment it was deflated: the
 * receiver gets all of it without any later byte (what IMAP needs). */
static void test_sync_flush(void)
{
    struct zstream *a = NULL, *b = NULL;
    zstream_new(&a);
    zstream_new(&b);
    const char *cmds[] = {"A1 NOOP\r\n", "A2 SELECT INBOX\r\n", "", "A3 UID FETCH 1:* (FLAGS)\r\n"};
    bool all = true;
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        struct sink wire = {0};
        size_t len = strlen(cmds[i]);
        all &= zstream_deflate(a, cmds[i], len, sink_put, &wire) == 0;
        size_t got_len;
        int irc;
        unsigned char *got = inflate_all(b, wire.p, wire.len, 1, 64, &got_len, &irc);
        all &= irc == 0 && got_len == len && (len == 0 || memcmp(got, cmds[i], len) == 0);
        free(got);
        free(wire.p);
    }
    ok(all, "each sync-flushed command inflates completely on its own, byte by byte");
    zstream_free(&a);
    zstream_free(&b);
}

/* A small compressed input that inflates to 50 MB never makes one call
 * produce more than the caller's room; the rest waits inside zlib. */
static void test_bomb(void)
{
    struct zstream *a = NULL, *b = NULL;
    zstream_new(&a);
    zstream_new(&b);
    size_t total = 50u << 20, chunk = 1u << 20;
    unsigned char *zeros = calloc(1, chunk);
    struct sink wire = {0};
    for (size_t o = 0; o < total; o += chunk)
        zstream_deflate(a, zeros, chunk, sink_put, &wire);
    ok(wire.len < total / 500, "50 MiB of zeros deflate to %zu bytes", wire.len);
    unsigned char win[4096];
    size_t off = 0, out = 0, max_made = 0, calls = 0;
    int rc = 0;
    while (rc == 0 && (off < wire.len || zstream_inflate_pending(b))) {
        size_t used, made;
        rc = zstream_inflate(b, wire.p + off, wire.len - off, &used, win, sizeof win, &made);
        off += used;
        out += made;
        if (made > max_made)
            max_made = made;
        calls++;
        if (used == 0 && made == 0)
            break;
    }
    is_int(rc, 0, "bomb: inflates without error");
    ok(max_made <= sizeof win, "bomb: never more than the room given (max %zu)", max_made);
    ok(out == total, "bomb: all %zu bytes came out, in %zu calls", out, calls);
    size_t used, made;
    is_int(zstream_inflate(b, NULL, 0, &used, win, 0, &made), 0, "no room: no error");
    ok(used == 0 && made == 0, "no room: nothing done");
    free(zeros);
    free(wire.p);
    zstream_free(&a);
    zstream_free(&b);
}

static void test_corrupt(void)
{
    struct zstream *b = NULL;
    zstream_new(&b);
    /* BTYPE 11 (reserved) in the first block header */
    const unsigned char bad[] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x01, 0x02};
    unsigned char win[256];
    size_t used, made;
    int rc = zstream_inflate(b, bad, sizeof bad, &used, win, sizeof win, &made);
    is_int(rc, OIMAP_EPROTO, "corrupt input: OIMAP_EPROTO");
    ok(*zstream_error(b) != 0, "corrupt input: zlib's message (%s)", zstream_error(b));
    is_int(zstream_inflate(b, "x", 1, &used, win, sizeof win, &made), OIMAP_EPROTO,
           "after a failure: refused");
    zstream_free(&b);

    /* a valid stream with one flipped bit somewhere in it fails cleanly or
     * yields something, but never crashes or overruns (ASan watches) */
    struct zstream *a = NULL;
    zstream_new(&a);
    char *text = make_text(20000, 7);
    struct sink wire = {0};
    zstream_deflate(a, text, 20000, sink_put, &wire);
    int errors = 0;
    for (size_t i = 0; i < wire.len; i += 97) {
        unsigned char *copy = malloc(wire.len);
        memcpy(copy, wire.p, wire.len);
        copy[i] ^= 0x10;
        zstream_new(&b);
        size_t got_len;
        int irc;
        unsigned char *got = inflate_all(b, copy, wire.len, 333, 1000, &got_len, &irc);
        errors += irc == OIMAP_EPROTO || (got_len != 20000 || memcmp(got, text, 20000) != 0);
        free(got);
        free(copy);
        zstream_free(&b);
    }
    ok(errors > 0, "bit flips are noticed (%d of %zu)", errors, (wire.len + 96) / 97);
    free(text);
    free(wire.p);
    zstream_free(&a);

    /* a final block ends the stream (a server closing); data after it is
     * an error */
    const unsigned char final_empty[] = {0x03, 0x00, 'x'}; /* BFINAL=1, fixed, end of block */
    zstream_new(&b);
    rc = zstream_inflate(b, final_empty, 2, &used, win, sizeof win, &made);
    ok(rc == 0 && used == 2 && made == 0, "a final block: the end, no error");
    rc = zstream_inflate(b, final_empty + 2, 1, &used, win, sizeof win, &made);
    is_int(rc, OIMAP_EPROTO, "a byte after the end: error");
    ok(strstr(zstream_error(b), "after the end") != NULL, "message: %s", zstream_error(b));
    zstream_free(&b);
    zstream_new(&b);
    rc = zstream_inflate(b, final_empty, 3, &used, win, sizeof win, &made);
    is_int(rc, OIMAP_EPROTO, "the end and a byte in one piece: error");
    zstream_free(&b);
}

static void test_sink_failure(void)
{
    struct zstream *a = NULL;
    zstream_new(&a);
    unsigned char *noise = malloc(100000);
    fill_random(noise, 100000, 3);
    struct sink wire = {.fail_after = 2};
    is_int(zstream_deflate(a, noise, 100000, sink_put, &wire), -12345,
           "the sink's error comes back");
    is_int(zstream_deflate(a, "x", 1, sink_put, &wire), OIMAP_EPROTO, "then the stream is dead");
    free(noise);
    free(wire.p);
    zstream_free(&a);
    struct zstream *none = NULL;
    zstream_free(&none);
    ok(none == NULL, "free(NULL) is fine");
}

static void test_memory(void)
{
    struct zstream *a = NULL, *b = NULL;
    zstream_new(&a);
    zstream_new(&b);
    char *text = make_text(100000, 1);
    struct sink wire = {0};
    zstream_deflate(a, text, 100000, sink_put, &wire);
    size_t got_len;
    int irc;
    free(inflate_all(b, wire.p, wire.len, 4096, 8192, &got_len, &irc));
    struct zstream_counts na, nb;
    zstream_get_counts(a, &na);
    zstream_get_counts(b, &nb);
    /* zstream.h documents about 300 KiB per stream */
    /* b has inflated (its window is allocated on first use) */
    ok(nb.mem >= na.mem && nb.mem > 200 * 1024 && nb.mem < 330 * 1024,
       "memory held by zlib per stream, both directions in use: %zu bytes (%zu before "
       "inflating)",
       nb.mem, na.mem);
    printf("# text: %zu -> %zu bytes (%.1f%%)\n", (size_t)100000, wire.len,
           100.0 * (double)wire.len / 100000);
    free(text);
    free(wire.p);
    zstream_free(&a);
    zstream_free(&b);
}

int main(void)
{
    if (!zstream_available()) {
        struct zstream *z = (struct zstream *)1;
        ok(zstream_new(&z) < 0 && z == NULL, "without zlib: zstream_new refuses");
        printf("# built without zlib: nothing else to test\n");
        return tap_done();
    }
    char *text = make_text(300000, 42);
    unsigned char *noise = malloc(200000);
    fill_random(noise, 200000, 9);
    round_trip("empty", (const unsigned char *)"", 0, 1, 1, 16);
    round_trip("one byte", (const unsigned char *)"x", 1, 1, 1, 1);
    round_trip("text, one batch", (const unsigned char *)text, 300000, 300000, 300000, 65536);
    round_trip("text, 4 KiB batches, fed by 1 KiB, 1 KiB room", (const unsigned char *)text, 300000,
               4096, 1024, 1024);
    round_trip("text, 7-byte batches, fed byte by byte, 3 bytes room", (const unsigned char *)text,
               20000, 7, 1, 3);
    round_trip("incompressible, 16 KiB batches", noise, 200000, 16384, 5000, 10000);
    round_trip("incompressible, byte-sized room", noise, 5000, 5000, 5000, 1);
    test_sync_flush();
    test_bomb();
    test_corrupt();
    test_sink_failure();
    test_memory();
    free(text);
    free(noise);
    return tap_done();
}
