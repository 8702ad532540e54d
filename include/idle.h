/* idle.h - IMAP IDLE push (RFC 2177) for one folder.
 *
 * An idle_watch keeps one connection to an IMAP server on one folder in IDLE
 * and tells its owner (sched.c) when the folder should be synced:
 *
 *   IDLE_EV_UP       the folder is selected and watched (the first time, or
 *                    again after a reconnect).  What happened while nobody
 *                    watched is unknown, so the owner syncs the folder once.
 *   IDLE_EV_CHANGED  the server sent EXISTS, EXPUNGE, VANISHED or FETCH.
 *   IDLE_EV_GAVE_UP  the watcher stopped for good and logged why: the
 *                    password was refused (retrying could lock the account),
 *                    the server has no IDLE, or the folder cannot be
 *                    selected.  The owner's autorefresh still covers it.
 *
 * The folder is opened with EXAMINE: the watcher never changes anything
 * (not even \Recent), all changes are the sync's.
 *
 * Keepalive: IDLE is ended (DONE) and issued again every refresh_s seconds:
 * by default 29 minutes, under the 30 minutes after which RFC 2177 lets a
 * server drop an idle client; keepalive (seconds) shortens it for NAT
 * routers that forget quiet connections.  The server must answer DONE
 * within a deadline (socktimeout, at least 30 s), else the connection is
 * dead.  Nothing else of ours wakes the loop between keepalives (servers
 * send their own "* OK Still here" now and then: Dovecot every 2 minutes).
 *
 * Reconnection: a connection that dies (EOF, reset, socktimeout, BYE, no
 * answer to DONE) is opened again after 1 s, then 2, 4, ... up to 5 minutes
 * while attempts keep failing; a connection that stayed up for a minute
 * starts the series again at 1 s.  The first failure is a warning; retries
 * are info lines (one per attempt, so an outage of hours writes a few dozen
 * lines, not a flood).  idle_watch_kick() skips the wait.
 *
 * Callbacks are never called from inside an idle_watch_* call.  After
 * idle_watch_free() no callback is called.
 */
#ifndef OIMAP_IDLE_H
#define OIMAP_IDLE_H

#include <stdbool.h>
#include <uv.h>

struct imap_conn_config;
struct idle_watch;

enum idle_event { IDLE_EV_UP, IDLE_EV_CHANGED, IDLE_EV_GAVE_UP };

typedef void (*idle_event_cb)(struct idle_watch *w, enum idle_event ev, void *arg);

struct idle_watch_opts {
    const char *account;    /* for messages; copied */
    const char *folder;     /* remote name, UTF-8, server delimiter; copied */
    unsigned refresh_s;     /* DONE + IDLE period; 0: 29 minutes */
    unsigned socktimeout_s; /* the repository's socktimeout (0: none) */
};

/* Start watching: connects at once (from the loop).  icfg must outlive the
 * watch.  Returns 0 and *w_r, or -ENOMEM. */
int idle_watch_new(uv_loop_t *loop, const struct imap_conn_config *icfg,
                   const struct idle_watch_opts *o, idle_event_cb cb, void *arg,
                   struct idle_watch **w_r);

/* Stop: drop the connection (no LOGOUT: a daemon being stopped should not
 * wait on a server), free once the handles are closed.  NULLs *w. */
void idle_watch_free(struct idle_watch **w);

/* The connection may be dead without knowing it (the machine slept, the
 * network changed): drop it and reconnect now, with a fresh back-off.  A
 * watcher that gave up stays stopped. */
void idle_watch_kick(struct idle_watch *w);

/* The watched folder's name. */
const char *idle_watch_folder(const struct idle_watch *w);

/* Whether the watcher gave up (IDLE_EV_GAVE_UP was or will be reported). */
bool idle_watch_stopped(const struct idle_watch *w);

/* Write the watcher's state as one log_warn line (SIGQUIT). */
void idle_watch_dump(const struct idle_watch *w);

#endif
