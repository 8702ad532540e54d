/* proxy.h - reaching a server through a SOCKS5, SOCKS4 or HTTP proxy.
 *
 * offlineimap's [Account] options `proxy` (every IMAP connection of the
 * account) and `authproxy` (the OAuth2 token request; unset = the same as
 * proxy, empty = none) take "TYPE:host:port", TYPE being SOCKS5, SOCKS4 or
 * HTTP.  net.c connects to the proxy, then runs the proxy's handshake on the
 * plain TCP stream before anything else (TLS included: TLS goes end to end,
 * through the tunnel, and is verified against the real server's name).
 *
 * The handshake code here is pure: proxy_hs_request() builds the bytes to
 * send, proxy_hs_feed() reads the proxy's answer from a buffer.  Nothing here
 * touches a socket, so it is unit-tested and fuzzed without a network.
 *
 * The server's host name goes to the proxy as a name (SOCKS5 domain-name
 * address, SOCKS4a, HTTP CONNECT): the proxy resolves it, so no DNS query
 * leaves this machine (offlineimap's PySocks route does the same for SOCKS5
 * and SOCKS4; its documentation warns of a leak for the other cases).
 * No proxy authentication: the option format has no place for credentials;
 * a proxy that demands them gives a clear error.
 *
 * Protocols: SOCKS5 (RFC 1928), "no authentication" method only; SOCKS4 and
 * its 4a extension for names; HTTP/1.1 CONNECT (RFC 9110, 9.3.6).
 */
#ifndef OIMAP_PROXY_H
#define OIMAP_PROXY_H

#include <stdbool.h>
#include <stddef.h>

enum proxy_type { PROXY_NONE = 0, PROXY_SOCKS5, PROXY_SOCKS4, PROXY_HTTP };

struct proxy_spec {
    enum proxy_type type; /* PROXY_NONE: connect directly */
    char host[256];       /* the proxy; an IPv6 literal without brackets */
    unsigned port;
};

/* Parse an option value "TYPE:host:port" (TYPE in any case; an IPv6 host in
 * brackets, "SOCKS5:[::1]:1080").  NULL or "" gives PROXY_NONE.  Returns 0,
 * or OIMAP_ECONFIG with a message in err naming what is wrong ("unknown proxy
 * type 'SOCKS6': SOCKS5, SOCKS4 or HTTP"). */
int proxy_parse(const char *text, struct proxy_spec *p, char *err, size_t errlen);

/* "SOCKS5", "SOCKS4", "HTTP", or "none". */
const char *proxy_type_name(enum proxy_type t);

/* The longest request proxy_hs_request() builds (HTTP CONNECT with a
 * 255-byte name is the longest). */
#define PROXY_REQUEST_MAX 700

/* The most an answer may take (an HTTP answer's status line and header
 * fields); a longer one is an error, not a reason to buffer forever. */
#define PROXY_ANSWER_MAX 8192

/* One handshake, for one connection.  Plain data: no allocation, no
 * cleanup. */
struct proxy_hs {
    enum proxy_type type;
    int step;       /* internal: which request / answer comes next */
    char host[256]; /* the server to reach through the proxy */
    unsigned port;
    bool host_too_long; /* > 255 bytes: no protocol can say it */
    bool done;
};

/* Start a handshake through a proxy of type (not PROXY_NONE) to host:port
 * (a name, or an IPv4/IPv6 literal without brackets). */
void proxy_hs_init(struct proxy_hs *h, enum proxy_type type, const char *host, unsigned port);

/* The request of the current step, written to buf (cap >= PROXY_REQUEST_MAX
 * is always enough).  Returns its length (> 0), or a negative code with a
 * message in err when the target cannot be said in this protocol (an IPv6
 * address through SOCKS4, a name longer than 255 bytes): OIMAP_ECONFIG.
 * Call it once at the start and again after each proxy_hs_feed() that
 * consumed an answer without finishing the handshake. */
int proxy_hs_request(struct proxy_hs *h, unsigned char *buf, size_t cap, char *err, size_t errlen);

/* Read the answer to the last request from the bytes received so far,
 * data[0..len).  Returns
 *   OIMAP_ENEEDMORE  the answer is not complete yet;
 *   n >= 0           the answer took the first n bytes (consume them; what
 *                    follows belongs to the server, e.g. its IMAP greeting);
 *                    then proxy_hs_done() tells whether the tunnel is open,
 *                    else send the next proxy_hs_request();
 *   OIMAP_EPROXY     the proxy refused (its reason in err: "SOCKS5 proxy:
 *                    connection refused by the destination host");
 *   OIMAP_EPROTO     not an answer of this protocol;
 *   OIMAP_ETOOBIG    an HTTP answer longer than PROXY_ANSWER_MAX.
 * err gets a one-line message for every negative code but ENEEDMORE. */
int proxy_hs_feed(struct proxy_hs *h, const unsigned char *data, size_t len, char *err,
                  size_t errlen);

/* The tunnel is open: the next byte is the server's. */
bool proxy_hs_done(const struct proxy_hs *h);

#endif
