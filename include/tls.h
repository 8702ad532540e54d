/* tls.h - TLS client on mbedTLS over memory buffers (no socket, no thread).
 *
 * Two objects:
 *
 * struct tls_config: everything that is the same for every connection of a
 *   repository: the trust anchors (system CA bundle or `sslcacertfile`), the
 *   `cert_fingerprint` pins, the protocol versions (`ssl_version`,
 *   `tls_level`), a client certificate.  Build it once per repository with
 *   tls_config_new() and hand it to net_connect()/net_start_tls(); it is
 *   reference counted (each stream holds a reference), so the creator may
 *   tls_config_free() it whenever it likes.  CA bundles are parsed once per
 *   path per process and cached; the random generator (CTR-DRBG seeded from
 *   mbedtls_entropy) is set up once per process.
 *
 * struct tls_session: one connection's TLS state.  net.c drives it; other
 *   modules should use the net_stream API.  Cipher text from the network is
 *   written into the session's input buffer (tls_session_inbuf + _commit);
 *   cipher text to the network leaves through the send function given at
 *   creation, which must take every byte (net.c appends it to its write
 *   queue).  Nothing blocks: an operation that needs more input returns
 *   TLS_AGAIN.
 *
 * Verification (always on; there is no "don't verify" switch):
 *   - the chain must lead to a trusted CA (MBEDTLS_SSL_VERIFY_REQUIRED), and
 *     the certificate must be valid now and name the host: the host name is
 *     always set on the context (mbedTLS 2.28.3 skips the name check when it
 *     is not: CVE-2025-27809); for an IP-address host the certificate must
 *     carry that address as an iPAddress subjectAltName (checked here, since
 *     mbedTLS 2.28 only compares DNS names);
 *   - with `cert_fingerprint` pins: a certificate whose SHA-1/224/256/384/512
 *     digest (of its DER form) matches a pin is trusted even if self-signed,
 *     unknown, expired or for another name (the user vouched for exactly this
 *     certificate, as in offlineimap); a certificate matching no pin is
 *     refused even when its chain verifies.
 *   Failures carry a message naming the reason, e.g. "certificate not
 *   trusted (unknown CA)", "certificate is for wrong.example, not 127.0.0.1",
 *   "certificate expired on 2020-01-01 00:00:00 UTC", and the certificate's
 *   SHA-256 fingerprint so the user can pin it.
 *
 * Error codes: OIMAP_ECERT (the certificate was refused), OIMAP_ETLS
 * (handshake or record failure, bad options), OIMAP_ECONFIG (unusable option
 * values or files), UV_EOF (the peer sent close_notify), UV_ENOMEM.
 */
#ifndef OIMAP_TLS_H
#define OIMAP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Returned by tls_session_handshake/tls_session_read: feed more input. */
#define TLS_AGAIN 1

/* The repository options, as strings straight from the config (NULL = unset). */
struct tls_opts {
    const char *cafile;       /* sslcacertfile; NULL or "OS-DEFAULT" = system bundle */
    const char *fingerprints; /* cert_fingerprint: comma-separated hex, ':' allowed */
    const char *ssl_version;  /* ssl_version: tls1_2, tls1_3, tls1_1, tls1, ssl23, ssl3 */
    const char *tls_level;    /* tls_level: tls_compat (default), tls_no_ssl, tls_secure */
    const char *client_cert;  /* sslclientcert (PEM/DER file) */
    const char *client_key;   /* sslclientkey (unencrypted key file) */
};

struct tls_config;
struct tls_session;

/* Validate opts and build a config.  Returns 0 and sets *cfg_r, or a negative
 * code (OIMAP_ECONFIG, OIMAP_ETLS, UV_ENOMEM) with a message in err (may be
 * NULL) such as "cert_fingerprint: 'xyz' is not a hex SHA-1/224/256/384/512
 * digest" or "sslcacertfile /x: no such file".  Versions below TLS 1.2 are
 * only enabled when ssl_version asks for them explicitly (and the library
 * supports them); unsupported requests are errors, never silently widened. */
int tls_config_new(const struct tls_opts *opts, struct tls_config **cfg_r, char *err,
                   size_t errlen);
struct tls_config *tls_config_ref(struct tls_config *cfg);
/* Drop the caller's reference; NULLs *cfg. */
void tls_config_free(struct tls_config **cfg);

/* The system CA bundle path found (Debian, Fedora, BSD/macOS locations), or NULL. */
const char *tls_system_cafile(void);

/* Free the process-wide state (CA cache, random generator).  Only for clean
 * shutdown and leak checkers; no config may be alive. */
void tls_global_cleanup(void);

/* Cipher text out: must take all len bytes; returns 0 or a negative code. */
typedef int (*tls_send_fn)(void *arg, const unsigned char *buf, size_t len);

/* host: the name or IP literal the user configured (for the name check and
 * SNI).  Takes a reference on cfg. */
int tls_session_new(struct tls_config *cfg, const char *host, tls_send_fn send, void *send_arg,
                    struct tls_session **sess_r);
void tls_session_free(struct tls_session **sess);

/* Space to receive cipher text into (*space_r bytes at the returned pointer;
 * 0 when the buffer is full and the session must be read first). */
unsigned char *tls_session_inbuf(struct tls_session *sess, size_t *space_r);
void tls_session_inbuf_commit(struct tls_session *sess, size_t n);
/* Cipher text received and not yet processed by mbedTLS. */
size_t tls_session_inbuf_len(const struct tls_session *sess);

/* Drive the handshake: 0 = done and verified, TLS_AGAIN = needs input,
 * negative = failed (message in tls_session_error). */
int tls_session_handshake(struct tls_session *sess);
/* Decrypt up to cap bytes: > 0 bytes, 0 = need more input, UV_EOF =
 * close_notify received, other negative = failure. */
ssize_t tls_session_read(struct tls_session *sess, void *buf, size_t cap);
/* True if decrypted or undecrypted-but-complete data is pending inside. */
bool tls_session_pending(const struct tls_session *sess);
/* Encrypt all of buf into the send function.  0 or negative. */
int tls_session_write(struct tls_session *sess, const void *buf, size_t len);
/* Queue a close_notify alert.  0 or negative. */
int tls_session_close_notify(struct tls_session *sess);

/* The reason of the last failure ("certificate not trusted (unknown CA)..."),
 * without the host:port prefix, or "" if none. */
const char *tls_session_error(const struct tls_session *sess);
/* "TLSv1.2, <ciphersuite>" once the handshake is done. */
const char *tls_session_info(struct tls_session *sess);

/* Fingerprint helpers (exposed for tests and for --info).
 * tls_fingerprint_hex: lower-case hex digest of der with md "sha1",
 * "sha224", "sha256", "sha384" or "sha512" into out (>= 129 bytes).
 * Returns 0 or OIMAP_ECONFIG for an unknown name. */
int tls_fingerprint_hex(const unsigned char *der, size_t len, const char *md, char *out,
                        size_t outlen);

#endif
