/* zstream.c - raw DEFLATE both ways over buffers; see include/zstream.h. */
#include "zstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "build_config.h"
#include "err.h"

#if OIMAP_HAVE_ZLIB

#include <limits.h>
#include <zlib.h>

#define OUT_CHUNK (16 * 1024)  /* compressed bytes handed to the sink at once */
#define RAW_DEFLATE_BITS (-15) /* negative: raw DEFLATE, no zlib header (RFC 4978) */

struct zstream {
    z_stream def, inf;
    bool def_ok, inf_ok; /* initialised (deflateEnd/inflateEnd due) */
    bool broken;         /* a call failed: refuse further work */
    bool pending;        /* the last inflate filled its output */
    bool ended;          /* the server finished its stream (it is closing) */
    size_t mem;          /* bytes zlib holds, for the documented estimate */
    struct zstream_counts n;
    char err[128];
};

/* zlib's allocator, counting what it takes: the per-connection cost in
 * zstream.h is measured, not guessed. */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    struct zstream *z = opaque;
    size_t n = (size_t)items * size;
    size_t *p = malloc(sizeof(size_t) + n);
    if (!p)
        return Z_NULL;
    *p = n;
    z->mem += n;
    return p + 1;
}

static void z_free(voidpf opaque, voidpf ptr)
{
    struct zstream *z = opaque;
    if (!ptr)
        return;
    size_t *p = (size_t *)ptr - 1;
    z->mem -= *p;
    free(p);
}

bool zstream_available(void)
{
    return true;
}

static void set_err(struct zstream *z, const z_stream *s, int zr)
{
    z->broken = true;
    snprintf(z->err, sizeof z->err, "%s", s->msg ? s->msg : zError(zr));
}

int zstream_new(struct zstream **z_r)
{
    *z_r = NULL;
    struct zstream *z = calloc(1, sizeof *z);
    if (!z)
        return -ENOMEM;
    z->def.zalloc = z->inf.zalloc = z_alloc;
    z->def.zfree = z->inf.zfree = z_free;
    z->def.opaque = z->inf.opaque = z;
    /* memLevel 8 is zlib's default: 128 KiB of hash tables, the bulk of
     * the cost, and what keeps the ratio on mail text near zlib's best. */
    int r = deflateInit2(&z->def, Z_DEFAULT_COMPRESSION, Z_DEFLATED, RAW_DEFLATE_BITS, 8,
                         Z_DEFAULT_STRATEGY);
    if (r == Z_OK) {
        z->def_ok = true;
        r = inflateInit2(&z->inf, RAW_DEFLATE_BITS);
        z->inf_ok = r == Z_OK;
    }
    if (r != Z_OK) {
        zstream_free(&z);
        return r == Z_MEM_ERROR ? -ENOMEM : OIMAP_EPROTO;
    }
    *z_r = z;
    return 0;
}

void zstream_free(struct zstream **zp)
{
    struct zstream *z = *zp;
    if (!z)
        return;
    if (z->def_ok)
        deflateEnd(&z->def);
    if (z->inf_ok)
        inflateEnd(&z->inf);
    free(z);
    *zp = NULL;
}

int zstream_deflate(struct zstream *z, const void *data, size_t len, zstream_sink_fn out, void *arg)
{
    if (z->broken)
        return OIMAP_EPROTO;
    unsigned char buf[OUT_CHUNK];
    const unsigned char *p = data;
    z->n.out_clear += len;
    /* Feed at most UINT_MAX at a time (avail_in is an uInt); the flush
     * comes with the last piece. */
    do {
        uInt piece = len > UINT_MAX ? UINT_MAX : (uInt)len;
        int flush = piece == len ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        z->def.next_in = (Bytef *)(uintptr_t)p; /* zlib does not write through it */
        z->def.avail_in = piece;
        p += piece;
        len -= piece;
        /* Until zlib leaves room in the output: then it has taken all input
         * and, with Z_SYNC_FLUSH, emitted everything. */
        do {
            z->def.next_out = buf;
            z->def.avail_out = sizeof buf;
            int r = deflate(&z->def, flush);
            if (r != Z_OK && r != Z_BUF_ERROR) {
                set_err(z, &z->def, r);
                return OIMAP_EPROTO;
            }
            size_t made = sizeof buf - z->def.avail_out;
            if (made > 0) {
                z->n.out_packed += made;
                int rc = out(arg, buf, made);
                if (rc < 0) {
                    z->broken = true;
                    snprintf(z->err, sizeof z->err, "%s", err_str(rc));
                    return rc;
                }
            }
        } while (z->def.avail_out == 0);
    } while (len > 0);
    return 0;
}

int zstream_inflate(struct zstream *z, const void *in, size_t in_len, size_t *used_r, void *out,
                    size_t cap, size_t *made_r)
{
    *used_r = *made_r = 0;
    if (z->broken)
        return OIMAP_EPROTO;
    if (cap == 0 || (in_len == 0 && !z->pending))
        return 0;
    if (z->ended) {
        z->broken = true;
        snprintf(z->err, sizeof z->err, "data after the end of the compressed stream");
        return OIMAP_EPROTO;
    }
    z->inf.next_in = (Bytef *)(uintptr_t)in; /* zlib does not write through it */
    z->inf.avail_in = in_len > UINT_MAX ? UINT_MAX : (uInt)in_len;
    z->inf.next_out = out;
    z->inf.avail_out = cap > UINT_MAX ? UINT_MAX : (uInt)cap;
    uInt in0 = z->inf.avail_in, out0 = z->inf.avail_out;
    int r = inflate(&z->inf, Z_SYNC_FLUSH);
    *used_r = in0 - z->inf.avail_in;
    *made_r = out0 - z->inf.avail_out;
    z->n.in_packed += *used_r;
    z->n.in_clear += *made_r;
    z->pending = z->inf.avail_out == 0;
    switch (r) {
    case Z_OK:
    case Z_BUF_ERROR: /* no progress possible: needs input or room */
        return 0;
    case Z_STREAM_END:
        /* RFC 4978 has no end, but a server closing the connection may
         * finish its stream (Dovecot does after BYE): only bytes after
         * that are an error. */
        z->ended = true;
        z->pending = false;
        if (z->inf.avail_in > 0) {
            z->broken = true;
            snprintf(z->err, sizeof z->err, "data after the end of the compressed stream");
            return OIMAP_EPROTO;
        }
        return 0;
    case Z_MEM_ERROR:
        set_err(z, &z->inf, r);
        return -ENOMEM;
    default: /* Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR */
        set_err(z, &z->inf, r == Z_NEED_DICT ? Z_DATA_ERROR : r);
        return OIMAP_EPROTO;
    }
}

bool zstream_inflate_pending(const struct zstream *z)
{
    return z->pending && !z->broken;
}

void zstream_get_counts(const struct zstream *z, struct zstream_counts *c)
{
    *c = z->n;
    c->mem = z->mem;
}

const char *zstream_error(const struct zstream *z)
{
    return z->err;
}

#else /* !OIMAP_HAVE_ZLIB */

struct zstream {
    int unused;
};

bool zstream_available(void)
{
    return false;
}

int zstream_new(struct zstream **z_r)
{
    *z_r = NULL;
    return UV_ENOTSUP;
}

void zstream_free(struct zstream **z)
{
    *z = NULL;
}

int zstream_deflate(struct zstream *z, const void *data, size_t len, zstream_sink_fn out, void *arg)
{
    return UV_ENOTSUP;
}

int zstream_inflate(struct zstream *z, const void *in, size_t in_len, size_t *used_r, void *out,
                    size_t cap, size_t *made_r)
{
    *used_r = *made_r = 0;
    return UV_ENOTSUP;
}

bool zstream_inflate_pending(const struct zstream *z)
{
    return false;
}

void zstream_get_counts(const struct zstream *z, struct zstream_counts *c)
{
    memset(c, 0, sizeof *c);
}

const char *zstream_error(const struct zstream *z)
{
    return "built without zlib";
}

#endif
