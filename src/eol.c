/* eol.c - CRLF <-> LF on streams (see eol.h). */
#include "eol.h"

#include <string.h>

int eol_dec_feed(struct eol_dec *d, const char *in, size_t len,
                 int (*emit)(void *arg, const char *p, size_t n), void *arg)
{
    size_t start = 0;
    int r;

    if (len == 0)
        return 0;
    if (d->pending_cr) {
        d->pending_cr = false;
        if (in[0] != '\n' && (r = emit(arg, "\r", 1)) < 0)
            return r;
    }
    for (;;) {
        const char *cr = memchr(in + start, '\r', len - start);
        if (!cr)
            break;
        size_t i = (size_t)(cr - in);
        if (i + 1 == len) {
            /* Last byte: we cannot know yet whether an LF follows. */
            if (i > start && (r = emit(arg, in + start, i - start)) < 0)
                return r;
            d->pending_cr = true;
            return 0;
        }
        if (in[i + 1] == '\n') {
            if (i > start && (r = emit(arg, in + start, i - start)) < 0)
                return r;
            start = i + 1; /* keep the LF, drop the CR */
        } else {
            /* A lone CR is data: keep scanning after it. */
            if ((r = emit(arg, in + start, i + 1 - start)) < 0)
                return r;
            start = i + 1;
        }
    }
    return start < len ? emit(arg, in + start, len - start) : 0;
}

int eol_dec_end(struct eol_dec *d, int (*emit)(void *arg, const char *p, size_t n), void *arg)
{
    if (!d->pending_cr)
        return 0;
    d->pending_cr = false;
    return emit(arg, "\r", 1);
}

uint64_t eol_enc_count(struct eol_enc *e, const char *in, size_t len)
{
    uint64_t extra = 0;
    bool last_cr = e->last_cr;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '\n' && !last_cr)
            extra++;
        last_cr = in[i] == '\r';
    }
    e->last_cr = last_cr;
    return extra;
}

size_t eol_enc_feed(struct eol_enc *e, const char *in, size_t len, char *out, size_t cap,
                    size_t *used_r)
{
    size_t o = 0, i = 0;
    bool last_cr = e->last_cr;
    for (; i < len; i++) {
        bool add_cr = in[i] == '\n' && !last_cr;
        if (o + 1 + add_cr > cap)
            break;
        if (add_cr)
            out[o++] = '\r';
        out[o++] = in[i];
        last_cr = in[i] == '\r';
    }
    e->last_cr = last_cr;
    *used_r = i;
    return o;
}
