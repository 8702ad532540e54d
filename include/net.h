/* net.h - the byte stream under an IMAP connection: DNS, TCP, timeouts, TLS.
 *
 * A struct net_stream is one connection on a uv_loop_t.  The upper layer
 * (imap_conn.c) sees the same object and the same callbacks whether the bytes
 * travel in clear text or through TLS: implicit TLS is an option of
 * net_connect(), STARTTLS is net_start_tls() on a connected plain stream, and
 * the stream is upgraded in place (same pointer, same callbacks).  Likewise
 * net_start_compress() puts DEFLATE (IMAP COMPRESS) under the clear text.
 * net_spawn() gives the same kind of stream over a tunnel command's stdin and
 * stdout (`preauthtunnel`, `transporttunnel`; see tunnel.h).
 *
 * Proxy (opts->proxy, offlineimap's `proxy`; see proxy.h)
 *   net_connect() then resolves and connects to the proxy (opts->family
 *   applies to it), runs the proxy's handshake, which asks it for host:port
 *   by name, and only then goes on as above: TLS through the tunnel, verified
 *   against host, then on_connect.  The connect timeout covers the handshake
 *   too.  net_peer() is "host:port via SOCKS5 proxy phost:pport", so every
 *   error message names both; a refusal is OIMAP_EPROXY with the proxy's
 *   reason.  Bytes that follow the proxy's answer are the server's and are
 *   offered to on_read as usual.
 *
 * Life cycle
 *   net_connect()  resolves (uv_getaddrinfo, in the thread pool), then tries
 *                  every address in turn with uv_tcp_connect (IPv6 and IPv4,
 *                  in getaddrinfo's order) until one answers; sets TCP_NODELAY
 *                  and keepalive; with opts->tls runs the TLS handshake and
 *                  verifies the certificate.  Then on_connect fires.
 *   ...            on_read / on_drain while the connection lives.
 *   on_error       fires at most once, for any failure (DNS, refused, timeout,
 *                  EOF, reset, TLS, certificate).  After it the stream is dead:
 *                  writes fail and no other callback fires; call net_close().
 *   net_close()    the only way to release a stream, in every state (also
 *                  while resolving or connecting, and from inside any
 *                  callback).  No callback but on_closed fires after it.
 *                  on_closed fires once every uv handle has been closed (a
 *                  handle is only ever freed in its uv_close callback); the
 *                  stream's memory is gone when on_closed runs.
 *
 * Callback rules (libuv's)
 *   - No callback is ever called from inside the net_* call that started the
 *     operation: net_connect, net_write, net_resume, net_start_tls,
 *     net_expect_data return first, and errors they detect later arrive on a
 *     later loop iteration through on_error.
 *   - A net_* function that returns a negative code has started nothing and
 *     will call no callback for that request.
 *   - Every callback may call any net_* function on its own stream, including
 *     net_close().
 *
 * Reading
 *   The stream owns a bounded input buffer of clear text (opts->max_input).
 *   on_read(s, data, len) offers ALL unconsumed bytes received so far; the
 *   handler calls net_consume(s, n) for the bytes it has used (from the
 *   front); the rest stays buffered and is offered again, with new bytes
 *   appended, the next time data arrives.  `data` is valid only during the
 *   callback.  This lets the IMAP parser use the stream buffer as its line
 *   buffer and stream literals straight from it to their consumer.  If the
 *   buffer is full (max_input) and the handler consumes nothing, the stream
 *   fails with OIMAP_ETOOBIG: a consumer that needs more than max_input bytes
 *   to make progress can never make progress.
 *
 *   net_pause() stops reading (backpressure: the disk is slower than the
 *   network); net_resume() starts again and re-offers what is buffered on a
 *   later loop iteration.  The TLS handshake reads regardless of pause.
 *   EOF is reported (on_error UV_EOF) only after every buffered byte has been
 *   offered, and not while paused.
 *
 * Writing
 *   net_write() COPIES the bytes into the stream's write queue (the caller
 *   keeps its buffer) and returns at once; with TLS the bytes are encrypted
 *   into the queue immediately.  Small writes are coalesced.  The queue is
 *   bounded by opts->max_output: a write that would exceed it fails with
 *   UV_ENOBUFS and writes nothing.  The caller applies backpressure with
 *   net_write_queued(): stop producing above a watermark of its choice and
 *   continue in on_drain, which fires (from the loop) when a uv_write has
 *   completed and the queue is empty: every byte handed to the kernel.  Bytes
 *   that uv_try_write sends at once inside net_write() cause no on_drain, so
 *   wait for on_drain only after net_write_queued() was non-zero.
 *
 * Timeouts (opts->timeout_s, offlineimap's socktimeout; 0 = none)
 *   - resolving, and each connect attempt (a timed-out attempt moves on to
 *     the next address), and the TLS handshake;
 *   - reading: while the upper layer has said it is waiting for an answer
 *     (net_expect_data(s, true), i.e. commands in flight), no byte for
 *     timeout_s seconds is an error; an idle connection with nothing in
 *     flight never times out (IDLE has its own keepalive logic above us);
 *   - writing: the queue not making progress for timeout_s seconds.
 *   Any received byte (or written byte) restarts the respective clock.
 *
 * Errors
 *   on_error(s, code, msg): code is a negative libuv code (UV_ECONNREFUSED,
 *   UV_EOF, UV_ECONNRESET, UV_EAI_NONAME...) or OIMAP_ETIMEOUT, OIMAP_ETLS,
 *   OIMAP_ECERT, OIMAP_ETOOBIG.  msg is a complete sentence for the user that
 *   names the peer, e.g. "imap.example.com:993: connection refused",
 *   "imap.example.com:993: timed out after 30 s waiting for data",
 *   "127.0.0.1:993: certificate is for wrong.example, not 127.0.0.1".
 *   msg is valid during the callback; net_error_msg() returns it afterwards.
 */
#ifndef OIMAP_NET_H
#define OIMAP_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "proxy.h"

struct net_stream;
struct tls_config;

/* offlineimap's `ipv6` option: unset = any family, yes = IPv6 only, no = IPv4 only. */
enum net_family { NET_FAMILY_ANY = 0, NET_FAMILY_IPV6, NET_FAMILY_IPV4 };

struct net_opts {
    enum net_family family;
    unsigned timeout_s;      /* socktimeout; 0 = no timeout */
    unsigned keepalive_s;    /* TCP keepalive idle time; 0 = 60 s */
    size_t max_input;        /* bound of the clear-text input buffer; 0 = 1 MiB */
    size_t max_output;       /* bound of the write queue; 0 = 16 MiB */
    struct tls_config *tls;  /* implicit TLS (imaps) with this config, or NULL.
                                The stream takes its own reference. */
    struct proxy_spec proxy; /* type PROXY_NONE: connect directly; see below */
};

struct net_callbacks {
    /* The stream is connected (and, with TLS, verified); writes may start. */
    void (*on_connect)(struct net_stream *s, void *arg);
    /* Clear-text bytes; see "Reading".  Required. */
    void (*on_read)(struct net_stream *s, const char *data, size_t len, void *arg);
    /* The write queue has become empty.  May be NULL. */
    void (*on_drain)(struct net_stream *s, void *arg);
    /* The stream failed; see "Errors".  Required. */
    void (*on_error)(struct net_stream *s, int code, const char *msg, void *arg);
};

/* Start connecting to host:port.  host is a name or an IPv4/IPv6 literal
 * (without brackets); it is copied, as are *opts and *cbs.  On success
 * returns 0, sets *s_r and the outcome arrives through on_connect or
 * on_error.  Returns a negative code (UV_EINVAL, UV_ENOMEM, a uv_getaddrinfo
 * submission error) and sets *s_r = NULL otherwise. */
int net_connect(uv_loop_t *loop, const char *host, unsigned port, const struct net_opts *opts,
                const struct net_callbacks *cbs, void *arg, struct net_stream **s_r);

/* Run cmd (/bin/sh -c) with its stdin and stdout connected to the stream
 * (tunnel.h): everything above works as with net_connect(), except that
 * there is no resolving or connecting (on_connect follows from the loop as
 * soon as the command runs), opts->family is ignored, and TLS is not
 * available (opts->tls must be NULL; net_start_tls() returns UV_EINVAL): the
 * command is the transport and its security (ssh, openssl s_client).
 * net_peer() is `tunnel "CMD"` (long commands cut) and net_peer_addr()
 * "tunnel".  When the command closes its output, on_error(UV_EOF) says how
 * it ended ("the tunnel command exited with status 255").  net_close()
 * closes our end; a command still running 1 s later gets SIGTERM, then
 * SIGKILL.  Returns 0 and *s_r, or UV_EINVAL, UV_ENOMEM, socketpair or
 * uv_spawn errors (then nothing was started). */
int net_spawn(uv_loop_t *loop, const char *cmd, const struct net_opts *opts,
              const struct net_callbacks *cbs, void *arg, struct net_stream **s_r);

/* Queue len bytes (copied).  Returns 0, UV_ENOBUFS (over max_output, nothing
 * queued), UV_ENOTCONN (not connected yet / already failed or closing),
 * UV_EBUSY (TLS handshake in progress) or OIMAP_ETLS. */
int net_write(struct net_stream *s, const void *data, size_t len);

/* Bytes accepted by net_write() and not yet handed to the kernel (with TLS:
 * cipher text, so slightly more than what was written). */
size_t net_write_queued(const struct net_stream *s);

/* Mark n bytes at the front of the input as used.  Only valid inside
 * on_read; n is clamped to what was offered. */
void net_consume(struct net_stream *s, size_t n);

/* Bytes received and not consumed yet (clear text). */
size_t net_input_buffered(const struct net_stream *s);

void net_pause(struct net_stream *s);
void net_resume(struct net_stream *s);

/* true: the upper layer awaits an answer (commands in flight), so silence
 * longer than timeout_s is an error.  false: silence is fine (idle). */
void net_expect_data(struct net_stream *s, bool on);

/* STARTTLS: upgrade a connected plain stream in place.  Every clear-text byte
 * received and not consumed at this moment is DISCARDED first: it came before
 * the handshake, so it is unauthenticated and may be an injected response
 * ("NO STARTTLS", USENIX Security 2021).  Returns the number of bytes
 * discarded (>= 0; the caller should log it and treat > 0 as an attack) and
 * later calls on_tls(s, arg) once the handshake has succeeded and the
 * certificate is verified, or on_error (handshake and certificate failures,
 * as for implicit TLS).  Call it after the tagged OK of STARTTLS has been
 * consumed with net_consume(), typically from inside on_read; on_read is not
 * called again until the handshake is done.  net_write() returns UV_EBUSY
 * meanwhile.  Returns UV_EINVAL if already TLS (or cfg/on_tls NULL) and
 * UV_ENOTCONN if not connected; then nothing was started or discarded. */
int net_start_tls(struct net_stream *s, struct tls_config *cfg,
                  void (*on_tls)(struct net_stream *s, void *arg));

/* COMPRESS=DEFLATE (RFC 4978; zstream.h): from now on every byte read
 * (after TLS decryption) is inflated before it enters the clear-text input
 * buffer offered to on_read, and every net_write() is deflated, sync-flushed
 * (so each write reaches the server complete), then encrypted.  Call it
 * after the tagged OK of COMPRESS has been consumed with net_consume(),
 * typically from inside on_read: bytes still unconsumed then are the first
 * compressed ones and are inflated (from the loop) like any later input.
 * Everything under "Reading" and "Writing" still holds for the clear text:
 * max_input bounds what inflating may produce however well the data
 * compresses (the compressed bytes wait, 32 KiB at most, while the reader
 * is behind or paused), net_write_queued() counts compressed bytes.  A
 * corrupt compressed stream fails the stream with OIMAP_EPROTO, "host:port:
 * compressed stream from the server is corrupt: <zlib's words>"; a failed
 * compressed write (out of memory, TLS) always fails the stream too, since
 * the two compressors are out of step.  Costs about 340 KiB per stream
 * (zlib's 300 KiB, see zstream.h, and the compressed input buffer).
 * Returns 0, UV_EINVAL (already compressing, or in the TLS handshake),
 * UV_ENOTCONN, UV_ENOMEM, or UV_ENOTSUP when built without zlib. */
int net_start_compress(struct net_stream *s);
/* net_start_compress() succeeded on this stream. */
bool net_is_compressed(const struct net_stream *s);

/* Close and free; see "Life cycle".  on_closed may be NULL; it is called as
 * on_closed(arg) with the arg of net_connect.  With an established TLS
 * session a close_notify alert is sent if the socket takes it at once.  Bytes
 * still in the write queue are dropped (send LOGOUT and wait for on_drain or
 * the server's answer first if they matter). */
void net_close(struct net_stream *s, void (*on_closed)(void *arg));

/* "host:port" as given (IPv6 literals in brackets), for log lines. */
const char *net_peer(const struct net_stream *s);
/* The address connected to, e.g. "127.0.0.1" or "::1"; "" before connect. */
const char *net_peer_addr(const struct net_stream *s);
/* The message of the error reported by on_error, or NULL. */
const char *net_error_msg(const struct net_stream *s);
bool net_is_tls(const struct net_stream *s);
/* "TLSv1.2, TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384" once TLS is up, else NULL. */
const char *net_tls_info(const struct net_stream *s);

#endif
