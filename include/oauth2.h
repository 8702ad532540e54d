/* oauth2.h - an OAuth2 access token from a refresh token (RFC 6749, 6).
 *
 * offlineimap's oauth2_refresh_token / oauth2_client_id /
 * oauth2_client_secret / oauth2_request_url: before XOAUTH2 or OAUTHBEARER,
 * when no access token is configured, the refresh token is exchanged for an
 * access token with an HTTPS POST of
 *     client_id=...&client_secret=...&refresh_token=...&grant_type=refresh_token
 * (application/x-www-form-urlencoded; a missing client id or secret is left
 * out) to the token URL, whose JSON answer carries access_token and
 * expires_in.  The request runs on the uv loop through net.c (TLS verified
 * as for IMAP, against the system CA bundle or $SSL_CERT_FILE, as Python's
 * urllib does for offlineimap).  http:// is only accepted for a loopback
 * host.
 *
 * Tokens are cached for the whole process, per (URL, client id, refresh
 * token), for half their lifetime as offlineimap does (without expires_in:
 * for the run); concurrent requests for the same key share one HTTP
 * request.  Every token is registered with log_add_secret() before anything
 * else sees it; the answer's body is never logged.
 *
 * Errors are one line naming the URL (without its query) and the server's
 * words: "token request to https://oauth2.example/token: HTTP 400 Bad
 * Request: invalid_grant (Token has been expired or revoked.)".
 */
#ifndef OIMAP_OAUTH2_H
#define OIMAP_OAUTH2_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "proxy.h"

struct oauth2_params {
    const char *url;           /* oauth2_request_url; required */
    const char *client_id;     /* may be NULL */
    const char *client_secret; /* may be NULL */
    const char *refresh_token; /* required */
    unsigned timeout_s;        /* socktimeout; 0 = 60 s */
    struct proxy_spec proxy;   /* authproxy; type PROXY_NONE: direct */
};

/* A valid cached token for p: 0 and a malloc'd copy in *token_r (wipe it
 * with cred_free()), or -ENOENT (none, or expired), -ENOMEM. */
int oauth2_cached_token(const struct oauth2_params *p, char **token_r);

/* status 0: token is the access token (valid during the call; copy it).
 * Otherwise token is NULL and msg the error: OIMAP_EAUTH (the server
 * refused: HTTP error or an "error" member), OIMAP_EPROTO (not an HTTP or
 * JSON answer we understand), OIMAP_ECONFIG (unusable URL), or net.c's
 * codes (connection, TLS, certificate, timeout). */
typedef void (*oauth2_cb)(int status, const char *token, const char *msg, void *arg);

struct oauth2_wait;

/* Ask the token endpoint (or join the request in flight for the same key).
 * p's strings are copied.  cb is called once, from the loop, never from
 * inside this call, unless oauth2_cancel() came first.  Returns 0 and *w_r
 * (valid until cb runs or oauth2_cancel()), or a negative code (UV_EINVAL,
 * -ENOMEM, OIMAP_ECONFIG with a message in err) and no callback. */
int oauth2_fetch(uv_loop_t *loop, const struct oauth2_params *p, oauth2_cb cb, void *arg,
                 struct oauth2_wait **w_r, char *err, size_t errlen);

/* No callback for this wait; the request is abandoned when nobody waits any
 * more.  NULLs *w; NULL is fine. */
void oauth2_cancel(struct oauth2_wait **w);

/* The server refused token: drop it from the cache so the next connection
 * asks for a new one. */
void oauth2_forget(const struct oauth2_params *p, const char *token);

/* Free the cache (clean shutdown, leak checkers); no request may be in
 * flight. */
void oauth2_cleanup(void);

/* ---- pure parts, for tests ---------------------------------------------- */

struct oauth2_url {
    bool https;
    char host[256]; /* without brackets */
    unsigned port;
    char path[2048];    /* path and query, "/" at least */
    char display[2400]; /* scheme://host[:port]/path, without the query */
};

/* 0, or OIMAP_ECONFIG with a message ("oauth2_request_url: ..."). */
int oauth2_url_parse(const char *url, struct oauth2_url *u, char *err, size_t errlen);

/* The form body (malloc'd, secret: wipe it), or NULL without memory. */
char *oauth2_form_body(const struct oauth2_params *p);

/* An HTTP/1.x response in buf[0..len): 0 when complete (*status_r, reason
 * copied into reason, *body_r and *body_len_r: a malloc'd, decoded
 * body the caller frees), OIMAP_ENEEDMORE when more bytes are needed (with
 * eof false), OIMAP_EPROTO / OIMAP_ETOOBIG otherwise (message in err). */
int oauth2_http_parse(const char *buf, size_t len, bool eof, int *status_r, char *reason,
                      size_t reason_len, char **body_r, size_t *body_len_r, char *err,
                      size_t errlen);

/* The token endpoint's answer: 0 with a malloc'd *token_r and *expires_r
 * (seconds, -1 when not given), or OIMAP_EAUTH / OIMAP_EPROTO with the
 * server's words in err ("HTTP 400 Bad Request: invalid_grant (...)"). */
int oauth2_parse_answer(int status, const char *reason, const char *body, size_t len,
                        char **token_r, long long *expires_r, char *err, size_t errlen);

#endif
