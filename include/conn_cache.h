/* conn_cache.h - IMAP connections kept open between the syncs of an account
 * (holdconnectionopen), for the daemon (sched.c owns the cache).
 *
 * A sync of an account whose remote repository has holdconnectionopen = yes
 * does not drop its connections when it ends: it hands them to the cache
 * (conn_cache_release), and its next sync takes them back (conn_cache_open)
 * instead of connecting, greeting, negotiating TLS and logging in again.
 *
 * While held a connection is quiet, but for a NOOP every keepalive seconds
 * when the repository sets keepalive (offlineimap's meaning; servers drop
 * an authenticated connection left silent for 30 minutes, RFC 3501 5.4).
 * A held connection that dies (the server's autologout, a restart, the
 * keepalive NOOP unanswered by the next one) is dropped without a word
 * above -d imap.
 *
 * Taking one back first checks it with a NOOP answered within
 * CONN_CACHE_PROBE_MS (or socktimeout, if shorter): a connection can be
 * dead without knowing it (the machine slept, a NAT router forgot it).  When
 * the check fails a fresh connection is opened in its place, so the sync
 * only ever sees a connection, never the dead one and never an error of
 * it.
 *
 * The cache also keeps each such account's imap_conn_config (held
 * connections point into it): conn_cache_config() builds it once (running
 * remotepasscmd once, not for every sync).
 *
 * Callbacks follow imap_conn.h's rules: never from inside the call that
 * started them.
 */
#ifndef OIMAP_CONN_CACHE_H
#define OIMAP_CONN_CACHE_H

#include <stddef.h>
#include <uv.h>

#include "imap_conn.h"

struct conn_cache;
struct config_repo;

#define CONN_CACHE_PROBE_MS 10000u

/* An empty cache on loop.  Returns 0 and *cc_r, or -ENOMEM. */
int conn_cache_new(uv_loop_t *loop, struct conn_cache **cc_r);

/* Drop every held connection (no LOGOUT: the daemon is ending and should
 * not wait on a server), free the configs once the handles are closed (the
 * loop must run).  A connection being checked for a sync that never got it
 * is dropped too (its on_open is not called).  NULLs *cc. */
void conn_cache_free(struct conn_cache **cc);

/* The connection config of account (its remote repository repo), built on
 * first use and kept until conn_cache_free().  Returns 0 and *icfg_r (owned
 * by the cache: do not free it), or imap_conn_config_new()'s error with a
 * message in err (then nothing is kept and the next call tries again). */
int conn_cache_config(struct conn_cache *cc, const char *account, const struct config_repo *repo,
                      struct imap_conn_config **icfg_r, char *err, size_t errlen);

/* A connection for a sync of account, like imap_conn_open(): a held one
 * (checked first) or a new one.  icfg must be conn_cache_config()'s.
 * on_open(c, 0, ...) hands the connection over, routed to handlers/arg:
 * only then is c the caller's (*c_r is set at once for a new connection,
 * left NULL for a held one being checked).  Returns 0, or imap_conn_open()'s
 * error (nothing started). */
int conn_cache_open(struct conn_cache *cc, const char *account, const struct imap_conn_config *icfg,
                    const struct imap_conn_handlers *handlers, imap_done_cb on_open, void *arg,
                    struct imap_conn **c_r);

/* The sync is done with *c: keep it for account's next sync when it is
 * logged in, healthy and has no command pending, else close it.  NULLs *c;
 * NULL is fine. */
void conn_cache_release(struct conn_cache *cc, const char *account, struct imap_conn **c);

/* Drop every held connection now (presumed dead: the machine slept).
 * Checks in progress go on (they open a fresh connection if needed). */
void conn_cache_drop_all(struct conn_cache *cc);

/* Connections held now (all accounts), and being checked for a sync. */
size_t conn_cache_held(const struct conn_cache *cc);

/* Write every held connection as a log_warn line (SIGQUIT). */
void conn_cache_dump(const struct conn_cache *cc);

#endif
