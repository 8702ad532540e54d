/* zstream.h - raw DEFLATE in both directions, for IMAP COMPRESS=DEFLATE.
 *
 * RFC 4978: after the tagged OK of "COMPRESS DEFLATE" each side sends one
 * endless raw DEFLATE stream (RFC 1951: no zlib or gzip header, so zlib's
 * windowBits -15) and each side flushes its compressor whenever it has sent
 * something the peer must see now (a complete command).  net.c puts one
 * struct zstream under a connection (net_start_compress()); this module only
 * turns buffers into buffers: no I/O, no loop, no globals.
 *
 * Deflating (our output): zstream_deflate() compresses a batch of bytes and
 * ends it with a sync flush (Z_SYNC_FLUSH), so everything written so far can
 * be inflated by the server at once; the compressed bytes go to a sink
 * callback in chunks of at most 16 KiB.
 *
 * Inflating (the server's output): zstream_inflate() takes what input it
 * can and writes at most `cap` bytes of clear text, so the caller's bounded
 * input buffer is never overrun (a 1000:1 "zip bomb" fills it and then
 * waits): a full output buffer leaves the rest inside zlib, and
 * zstream_inflate_pending() says more may come without more input.
 *
 * Memory: about 300 KiB per stream, measured by test_zstream (zlib's
 * deflate state with windowBits 15 and memLevel 8 is about 265 KiB, taken
 * by zstream_new(); the inflate state 7 KiB, and its 32 KiB window on the
 * first inflate).
 *
 * Without zlib (meson -Dzlib=disabled) zstream_available() is false and
 * zstream_new() returns UV_ENOTSUP.
 */
#ifndef OIMAP_ZSTREAM_H
#define OIMAP_ZSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zstream;

/* Receives compressed output; returns 0 or a negative code (which
 * zstream_deflate() then returns). */
typedef int (*zstream_sink_fn)(void *arg, const unsigned char *p, size_t len);

struct zstream_counts {
    uint64_t out_clear, out_packed; /* deflated: bytes given, bytes produced */
    uint64_t in_packed, in_clear;   /* inflated: bytes taken, bytes produced */
    size_t mem;                     /* bytes zlib holds now */
};

/* true when oimap was built with zlib. */
bool zstream_available(void);

/* A new pair of compressor (level: zlib's default) and decompressor.
 * Returns 0 and *z_r, -ENOMEM, or UV_ENOTSUP when built without zlib. */
int zstream_new(struct zstream **z_r);
/* Free and NULL *z (NULL-safe). */
void zstream_free(struct zstream **z);

/* Compress len bytes and sync-flush: returns 0 once every compressed byte
 * went to out(), out()'s negative code, or OIMAP_EPROTO (zlib failed;
 * message in zstream_error()).  After a failure the stream is unusable. */
int zstream_deflate(struct zstream *z, const void *data, size_t len, zstream_sink_fn out,
                    void *arg);

/* Inflate from in[0..in_len) into out[0..cap): *used_r bytes of input were
 * taken, *made_r bytes of clear text written.  Returns 0 (also when nothing
 * could be done: more input or more room needed), OIMAP_EPROTO for a
 * corrupt stream or one that ended (RFC 4978 streams never end), -ENOMEM;
 * the message is in zstream_error().  After a failure the stream is
 * unusable. */
int zstream_inflate(struct zstream *z, const void *in, size_t in_len, size_t *used_r, void *out,
                    size_t cap, size_t *made_r);

/* The last zstream_inflate() filled its output buffer: more clear text may
 * be waiting inside zlib even without new input. */
bool zstream_inflate_pending(const struct zstream *z);

/* What went through the stream so far, for log lines. */
void zstream_get_counts(const struct zstream *z, struct zstream_counts *c);

/* zlib's message for the last failure ("invalid block type"), or "". */
const char *zstream_error(const struct zstream *z);

#endif
