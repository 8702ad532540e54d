/* idle.h - IMAP push for an account's idlefolders: IDLE (RFC 2177), and
 * NOTIFY (RFC 5465) where the server offers it.
 *
 * An idle_watch keeps the folders of one account watched and tells its
 * owner (sched.c) when a folder should be synced:
 *
 *   IDLE_EV_UP       the folder is watched (the first time, or again after a
 *                    reconnect).  What happened while nobody watched is
 *                    unknown, so the owner syncs the folder once.
 *   IDLE_EV_CHANGED  the folder changed: EXISTS, EXPUNGE, VANISHED or FETCH
 *                    under IDLE; a STATUS whose values differ from the last
 *                    ones under NOTIFY.
 *   IDLE_EV_GAVE_UP  the folder is not watched any more and why was logged:
 *                    the password was refused (retrying could lock the
 *                    account), the server has no IDLE, or the folder cannot
 *                    be selected (under NOTIFY: it got no STATUS, it does not
 *                    exist).  The owner's autorefresh still covers it.
 *
 * How: one connection for all folders when there are several and the
 * server offers NOTIFY: NOTIFY SET STATUS (mailboxes (...) (MessageNew
 * MessageExpunge FlagChange)), then IDLE on that connection with nothing
 * selected; the server sends a STATUS for a folder that changed.  Otherwise
 * (one folder, no NOTIFY, NOTIFY refused) one connection per folder, each
 * EXAMINEd and in IDLE; the first connection, opened to learn the server's
 * capabilities, becomes the first folder's.  Either way the watcher never
 * changes anything (EXAMINE, not even \Recent): all changes are the sync's.
 * [NOTIFICATIONOVERFLOW] (the server stopped notifying) reconnects, which
 * syncs every folder once.
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

/* folder: the remote name the event is about (valid during the call). */
typedef void (*idle_event_cb)(struct idle_watch *w, enum idle_event ev, const char *folder,
                              void *arg);

struct idle_watch_opts {
    const char *account;        /* for messages; copied */
    const char *const *folders; /* remote names, UTF-8, server delimiter; copied */
    size_t n_folders;           /* at least one */
    unsigned refresh_s;         /* DONE + IDLE period; 0: 29 minutes */
    unsigned socktimeout_s;     /* the repository's socktimeout (0: none) */
};

/* Start watching: connects at once (from the loop).  icfg must outlive the
 * watch.  Returns 0 and *w_r, or -ENOMEM (UV_EINVAL without folders). */
int idle_watch_new(uv_loop_t *loop, const struct imap_conn_config *icfg,
                   const struct idle_watch_opts *o, idle_event_cb cb, void *arg,
                   struct idle_watch **w_r);

/* Stop: drop the connections (no LOGOUT: a daemon being stopped should not
 * wait on a server), free once the handles are closed.  NULLs *w. */
void idle_watch_free(struct idle_watch **w);

/* The connections may be dead without knowing it (the machine slept, the
 * network changed): drop them and reconnect now, with a fresh back-off.
 * Folders given up stay so. */
void idle_watch_kick(struct idle_watch *w);

/* Folders still watched (not given up); 0 when the watcher stopped. */
size_t idle_watch_count(const struct idle_watch *w);

/* Whether every folder was given up (IDLE_EV_GAVE_UP reported for each). */
bool idle_watch_stopped(const struct idle_watch *w);

/* Write the state of every connection of the watcher as log_warn lines
 * (SIGQUIT): mode, state, peer, folders, commands in flight, timer. */
void idle_watch_dump(const struct idle_watch *w);

#endif
