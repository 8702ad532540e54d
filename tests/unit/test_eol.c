/* test_eol.c - CRLF <-> LF on streams, split at every byte. */
#include "eol.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

struct sink {
    char buf[4096];
    size_t n;
};

static int put(void *arg, const char *p, size_t n)
{
    struct sink *s = arg;
    memcpy(s->buf + s->n, p, n);
    s->n += n;
    return 0;
}

static void dec_split(const char *in, const char *want, const char *name)
{
    size_t len = strlen(in);
    int all_ok = 1;
    for (size_t cut = 0; cut <= len; cut++) {
        struct eol_dec d = {0};
        struct sink s = {.n = 0};
        eol_dec_feed(&d, in, cut, put, &s);
        eol_dec_feed(&d, in + cut, len - cut, put, &s);
        eol_dec_end(&d, put, &s);
        if (s.n != strlen(want) || memcmp(s.buf, want, s.n) != 0)
            all_ok = 0;
    }
    /* one byte at a time */
    struct eol_dec d = {0};
    struct sink s = {.n = 0};
    for (size_t i = 0; i < len; i++)
        eol_dec_feed(&d, in + i, 1, put, &s);
    eol_dec_end(&d, put, &s);
    all_ok &= s.n == strlen(want) && memcmp(s.buf, want, s.n) == 0;
    ok(all_ok, "decode %s, every split", name);
}

static void enc(const char *in, const char *want, const char *name)
{
    size_t len = strlen(in);
    int all_ok = 1;
    for (size_t cut = 0; cut <= len; cut++) {
        struct eol_enc e = {0}, c = {0};
        char out[4096];
        size_t used, o = eol_enc_feed(&e, in, cut, out, sizeof out, &used);
        o += eol_enc_feed(&e, in + cut, len - cut, out + o, sizeof out - o, &used);
        uint64_t extra = eol_enc_count(&c, in, cut) + eol_enc_count(&c, in + cut, len - cut);
        if (o != strlen(want) || memcmp(out, want, o) != 0 || len + extra != o)
            all_ok = 0;
    }
    ok(all_ok, "encode %s, every split, size predicted", name);
}

int main(void)
{
    dec_split("a\r\nb\r\n", "a\nb\n", "plain CRLF");
    dec_split("a\rb\r\n\r", "a\rb\n\r", "lone CRs kept");
    dec_split("\r\r\n\r\n", "\r\n\n", "CR before CRLF");
    dec_split("no line end", "no line end", "no line end");
    dec_split("", "", "empty");
    enc("a\nb\n", "a\r\nb\r\n", "bare LF");
    enc("a\r\nb\n", "a\r\nb\r\n", "mixed");
    enc("\n\n", "\r\n\r\n", "empty lines");
    enc("x\ry", "x\ry", "lone CR");
    {
        struct eol_enc e = {0};
        char out[3];
        size_t used;
        size_t o = eol_enc_feed(&e, "\n\n", 2, out, sizeof out, &used);
        ok(o == 2 && used == 1, "encode stops when out is full");
    }
    return tap_done();
}
