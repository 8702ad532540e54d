/* fuzz_imap_parse.c - libFuzzer target for the IMAP response parser.
 *
 * Input: byte 0 picks the literal policy (bits 0-1: no callback, stream
 * bodies, stream all, keep all), small limits (bit 2) and pausing after every
 * response (bit 3); byte 1 seeds the splits; the rest is fed to the parser:
 * followed by CRLF, whole, split in two, in random small chunks and (when
 * short) one byte at a time, every chunk in its own allocation so a pointer kept past its feed is
 * caught by ASan.  Every way must give the same transcript of callbacks (token
 * trees, decoded FETCH items and response codes, streamed literal bytes), the
 * same return code and the same error message; otherwise abort().
 *
 * Long run: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Ibuild \
 *   tests/fuzz/fuzz_imap_parse.c src/imap_parse.c src/err.c -o /tmp/fuzz_imap_parse
 *   && /tmp/fuzz_imap_parse -max_len=8192 CORPUSDIR tests/fuzz/seeds/imap_parse */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "imap_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct tr {
    char *s;
    size_t len, cap;
    int policy, pause;
    uint64_t lit_sum, lit_len, lit_expect;
    int in_lit;
};

static void put(struct tr *t, const void *p, size_t n)
{
    if (!n)
        return;
    if (t->len + n > t->cap) {
        t->cap = (t->len + n) * 2 + 64;
        t->s = realloc(t->s, t->cap);
        if (!t->s)
            abort();
    }
    memcpy(t->s + t->len, p, n);
    t->len += n;
}

static __attribute__((format(printf, 2, 3))) void putf(struct tr *t, const char *fmt, ...)
{
    char b[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof(b), fmt, ap);
    va_end(ap);
    if (n > 0)
        put(t, b, (size_t)n < sizeof(b) ? (size_t)n : sizeof(b) - 1);
}

/* Iterative walk (depth is bounded by the limits, but no recursion anyway). */
static void put_tokens(struct tr *t, const struct imap_response *r)
{
    for (size_t i = 0; i < r->n_tokens; i++) {
        const struct imap_token *k = &r->tokens[i];
        struct imap_section sec;
        putf(t, "[%u %u %u %llu", k->kind, k->flags, k->next, (unsigned long long)k->num);
        if (k->kind == IMAP_TOK_LIST) {
            putf(t, " c%u", k->count);
        } else if (k->kind != IMAP_TOK_STREAMED) {
            put(t, " ", 1);
            put(t, k->str, k->len);
        }
        if (k->kind == IMAP_TOK_SECTION) {
            if (imap_tok_section(k, &sec) != 0)
                abort(); /* the parser vouched for its syntax */
            putf(t, " %zu/%zu/%d", sec.name_len, sec.spec_len, sec.has_origin);
        }
        if (k->kind == IMAP_TOK_NUMBER && k->num == 0 && k->len != 1) {
            size_t z = 0;
            while (z < k->len && k->str[z] == '0')
                z++;
            if (z != k->len)
                abort();
        }
        put(t, "]", 1);
    }
}

static void put_head(struct tr *t, const struct imap_response *r)
{
    putf(t, "k%d s%d n%d:%u d%d c%d ", r->kind, r->status, r->has_num, r->num, r->data, r->code.id);
    put(t, r->tag, r->tag_len);
    put(t, "|", 1);
    put(t, r->keyword, r->keyword_len);
    put(t, "|", 1);
    if (r->code.id) {
        put(t, r->code.name, r->code.name_len);
        put(t, "|", 1);
        put(t, r->code.args, r->code.args_len);
    }
    put(t, "|", 1);
    put(t, r->text, r->text_len);
}

static void put_codes(struct tr *t, const struct imap_resp_code *c)
{
    uint64_t n;
    uint32_t uv;
    const char *a, *b, *w;
    size_t al, bl, pos = 0, wl;
    unsigned bits, nk;
    switch (c->id) {
    case IMAP_CODE_UIDVALIDITY:
    case IMAP_CODE_UIDNEXT:
    case IMAP_CODE_UNSEEN:
    case IMAP_CODE_HIGHESTMODSEQ:
        putf(t, " num%d", imap_code_number(c, &n));
        break;
    case IMAP_CODE_APPENDUID:
        putf(t, " au%d", imap_code_appenduid(c, &uv, &a, &al));
        break;
    case IMAP_CODE_COPYUID:
        putf(t, " cu%d", imap_code_copyuid(c, &uv, &a, &al, &b, &bl));
        break;
    case IMAP_CODE_PERMANENTFLAGS:
        putf(t, " pf%d", imap_code_flags(c, &bits, &nk));
        break;
    case IMAP_CODE_CAPABILITY:
        while (imap_words_next(c->args, c->args_len, &pos, &w, &wl))
            putf(t, " w%zu", wl);
        break;
    default:
        break;
    }
}

static void put_fetch(struct tr *t, const struct imap_response *r)
{
    struct imap_fetch f;
    int e = imap_fetch_decode(r, &f);
    putf(t, " F%d %u %u %x %u %llu %lld %llu %u", e, f.uid, f.present, f.flags, f.n_keywords,
         (unsigned long long)f.rfc822_size, (long long)f.internaldate, (unsigned long long)f.modseq,
         f.n_bodies);
    for (unsigned i = 0; e == 0 && i < f.n_bodies; i++) {
        putf(t, " b%d%d%llu", f.bodies[i].streamed, f.bodies[i].nil,
             (unsigned long long)f.bodies[i].size);
        put(t, f.bodies[i].data, f.bodies[i].len);
    }
}

static int on_response(void *ctx, const struct imap_response *r)
{
    struct tr *t = ctx;
    put(t, "\nR ", 3);
    put_head(t, r);
    put_tokens(t, r);
    put_codes(t, &r->code);
    if (r->data == IMAP_DATA_FETCH)
        put_fetch(t, r);
    if (r->data == IMAP_DATA_VANISHED || r->data == IMAP_DATA_SEARCH) {
        for (const struct imap_token *k = r->tokens; k; k = imap_tok_next(k)) {
            size_t pos = 0;
            uint32_t lo, hi;
            int x;
            if (k->kind != IMAP_TOK_ATOM && k->kind != IMAP_TOK_NUMBER)
                continue;
            while ((x = imap_seqset_next(k->str, k->len, &pos, &lo, &hi)) > 0)
                if (lo > hi)
                    abort();
            putf(t, " ss%d", x);
        }
    }
    return t->pause ? IMAP_PARSE_PAUSE : 0;
}

static int on_begin(void *ctx, const struct imap_response *r, uint64_t size)
{
    struct tr *t = ctx;
    int how = t->policy == 2 ? IMAP_LITERAL_STREAM : IMAP_LITERAL_KEEP;
    if (t->policy == 1 && r->last && r->last->kind == IMAP_TOK_SECTION)
        how = IMAP_LITERAL_STREAM;
    if (t->in_lit || !r->partial)
        abort();
    /* Only the head, the token count and the last token: partial views are
     * repeated for every literal and must stay cheap. */
    putf(t, "\nB %llu %d %zu ", (unsigned long long)size, how, r->n_tokens);
    put_head(t, r);
    if (r->last)
        putf(t, " last%d", r->last->kind);
    if (r->data == IMAP_DATA_FETCH) {
        struct imap_fetch f;
        int e = imap_fetch_decode(r, &f);
        putf(t, " F%d %u", e, f.uid);
    }
    if (how == IMAP_LITERAL_STREAM) {
        t->in_lit = 1;
        t->lit_len = 0;
        t->lit_sum = 0;
        t->lit_expect = size;
    }
    return how;
}

static int on_data(void *ctx, const char *p, size_t n)
{
    struct tr *t = ctx;
    if (!t->in_lit || n == 0 || t->lit_len + n > t->lit_expect)
        abort();
    for (size_t i = 0; i < n; i++)
        t->lit_sum = t->lit_sum * 31 + (unsigned char)p[i];
    t->lit_len += n;
    return 0;
}

static int on_end(void *ctx)
{
    struct tr *t = ctx;
    if (!t->in_lit || t->lit_len != t->lit_expect)
        abort();
    t->in_lit = 0;
    putf(t, "\nE %llu %llx", (unsigned long long)t->lit_len, (unsigned long long)t->lit_sum);
    return 0;
}

struct result {
    struct tr t;
    int rc;
    char err[256];
};

/* Feed [0,len) in chunks whose sizes come from next_cut. */
static void run(const uint8_t *in, size_t len, int policy, int small, int pause, int mode,
                unsigned seed, struct result *res)
{
    static const struct imap_parser_callbacks all = {on_response, on_begin, on_data, on_end};
    static const struct imap_parser_callbacks nolit = {on_response, NULL, NULL, NULL};
    struct imap_parser_limits lim = {0};
    struct imap_parser p;
    size_t off = 0;
    unsigned rng = seed * 2654435761u + 1;

    memset(res, 0, sizeof(*res));
    res->t.policy = policy;
    res->t.pause = pause;
    if (small) {
        lim.max_line = 300;
        lim.max_inline_literal = 64;
        lim.max_streamed_literal = 2000;
        lim.max_depth = 8;
        lim.max_tokens = 100;
    }
    imap_parser_init(&p, small ? &lim : NULL, policy ? &all : &nolit, &res->t);
    for (unsigned step = 0; off < len && res->rc == 0; step++) {
        size_t n;
        switch (mode) {
        case 0:
            n = len;
            break;
        case 1:
            n = step == 0 ? (size_t)seed * len / 256 : len - off; /* may be 0 first */
            break;
        case 2:
            rng = rng * 1103515245u + 12345u;
            n = 1 + (rng >> 16) % 17;
            break;
        default:
            n = 1;
            break;
        }
        if (n > len - off)
            n = len - off;
        char *chunk = malloc(n ? n : 1);
        if (!chunk)
            abort();
        memcpy(chunk, in + off, n);
        size_t done = 0;
        for (;;) {
            int rc = imap_parser_feed(&p, chunk + done, n - done);
            size_t used = imap_parser_consumed(&p);
            if (used > n - done)
                abort();
            done += used;
            if (rc == IMAP_PARSE_PAUSE) {
                if (!imap_parser_idle(&p))
                    abort();
                if (done < n)
                    continue;
                rc = 0;
            }
            if (rc == 0 && done != n)
                abort(); /* feed consumes everything unless paused or failed */
            res->rc = rc;
            break;
        }
        free(chunk);
        off += n;
    }
    if (res->rc == 0 && !imap_parser_idle(&p))
        put(&res->t, "\n<partial>", 10);
    if (res->rc != 0 && imap_parser_feed(&p, "x", 1) != res->rc)
        abort(); /* a dead parser stays dead */
    snprintf(res->err, sizeof(res->err), "%s", imap_parser_error(&p));
    imap_parser_deinit(&p);
}

/* Which error wins when a line is both too long and malformed depends on
 * where the buffer was cut (the buffered path checks the length before it
 * tokenises the line): then only "both failed, one with ETOOBIG" is required. */
static void same(const struct result *a, const struct result *b)
{
    bool rc_ok = a->rc == b->rc && strcmp(a->err, b->err) == 0;
    /* (the offset in a length error is where it was noticed: no match needed) */
    if (!rc_ok && a->rc < 0 && b->rc < 0 && (a->rc == OIMAP_ETOOBIG || b->rc == OIMAP_ETOOBIG))
        rc_ok = true;
    if (!rc_ok || a->t.len != b->t.len || (a->t.len && memcmp(a->t.s, b->t.s, a->t.len) != 0)) {
        fprintf(stderr,
                "MISMATCH rc %d vs %d\nerr '%s' vs '%s'\n--- whole:\n%.*s\n--- other:\n%.*s\n",
                a->rc, b->rc, a->err, b->err, (int)a->t.len, a->t.s, (int)b->t.len, b->t.s);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct result whole, other;
    int policy, small, pause;
    unsigned seed;

    if (size < 2)
        return 0;
    policy = data[0] & 3;
    small = (data[0] >> 2) & 1;
    pause = (data[0] >> 3) & 1;
    seed = data[1];
    /* The input always ends a line: an error inside a line cut by the end of a
     * buffer is reported once the rest of its line arrives, so without the
     * final line end "whole" could fail where the split runs still wait. */
    uint8_t *buf = malloc(size);
    if (!buf)
        abort();
    memcpy(buf, data + 2, size - 2);
    memcpy(buf + size - 2, "\r\n", 2);
    data = buf;

    run(data, size, policy, small, pause, 0, seed, &whole);
    if (whole.rc > 0 || (whole.rc < 0 && whole.rc != OIMAP_EPROTO && whole.rc != OIMAP_ETOOBIG))
        abort();
    if (whole.rc && !whole.err[0])
        abort();
    for (int mode = 1; mode <= 3; mode++) {
        if (mode == 3 && size > 2048)
            break;
        run(data, size, policy, small, pause, mode, seed, &other);
        same(&whole, &other);
        free(other.t.s);
    }
    free(whole.t.s);
    free(buf);
    return 0;
}
