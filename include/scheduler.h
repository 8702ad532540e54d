/* scheduler.h - oimap as an always-on daemon: autorefresh, IDLE push,
 * signals, systemd notification.  The module is src/sched.c (prefix
 * sched_); the header is not called sched.h because that would hide the
 * system's <sched.h> from everything built with -Iinclude.
 *
 * sched_run() owns the loop until the daemon ends.  Per account of cfg:
 *   - a first full sync at start (at most maxsyncaccounts accounts at once,
 *     one with -1), through the account runner (account.h);
 *   - autorefresh (minutes, fractional) as a uv timer armed when a full sync
 *     ends; quick = N makes N quick syncs between two full ones, -1 every
 *     sync quick, as offlineimap does (the first sync is always full);
 *   - idlefolders of the remote repository: one IDLE connection per folder
 *     (idle.h), started after the account's first sync; a change syncs
 *     just that folder (account_run_opts.folders) after a short debounce
 *     (SCHED_DEBOUNCE_MS), a reconnect syncs it too;
 *   - one sync of an account at a time: a request while it syncs marks it
 *     dirty and the sync runs again right after (folder requests are merged;
 *     a full request covers them).
 * An account with neither autorefresh nor idlefolders syncs once.  The
 * daemon ends when nothing is left to do, or on a signal:
 *   SIGUSR1  every account syncs now (a waiting autorefresh ends early; a
 *            syncing account syncs again right after);
 *   SIGUSR2  no new sync starts; syncs in progress finish; then exit;
 *   SIGTERM, SIGINT, SIGHUP  account_run_stop() on running syncs (folders
 *            in progress finish and are committed), IDLE connections are
 *            dropped, locks released as each account ends; then exit.  A
 *            second such signal, or 10 s passing, exits at once (_exit: the
 *            status store is crash-safe, the kernel releases the locks);
 *   SIGQUIT  the state of every account, sync and IDLE connection is logged
 *            (warnings), then abort() for a core dump.
 * Signals are uv_signal handles: handled on the next loop turn, at once.
 *
 * Suspend/resume: a timerfd on CLOCK_REALTIME with TFD_TIMER_CANCEL_ON_SET
 * wakes us when the wall clock is set, which Linux also does on resume; if
 * CLOCK_BOOTTIME moved ahead of CLOCK_MONOTONIC (time spent suspended), the
 * IDLE connections are presumed dead: they reconnect (and then sync), and
 * every account syncs.  The same check runs whenever one of our timers
 * fires, for systems without the timerfd.  No periodic polling.
 *
 * systemd (sdnotify.h), when $NOTIFY_SOCKET is set: READY=1 after the first
 * sync of every account; STATUS= lines ("syncing Work", "idle; next sync in
 * 4 min"); STOPPING=1 on shutdown; WATCHDOG=1 every WATCHDOG_USEC/2 from a
 * loop timer, so the pets stop when the loop is blocked (a sync stalled on a
 * silent server is the job of socktimeout, not of the watchdog).
 */
#ifndef OIMAP_SCHEDULER_H
#define OIMAP_SCHEDULER_H

#include <stdbool.h>
#include <uv.h>

struct config;
struct account_run_opts;

/* Wait after an IDLE event before syncing, so that the events of one burst
 * (EXISTS and RECENT, or several messages delivered together, read in one
 * go or a few) cost one sync.  Short, because the push-latency goal is 0.1 s
 * after the server's notice; events that arrive while the sync runs are
 * merged by the dirty flag, so a long burst costs at most one more sync. */
#define SCHED_DEBOUNCE_MS 5

/* Whether cfg asks for the daemon: some selected account has autorefresh >
 * 0 or its remote repository has idlefolders (without -o). */
bool sched_wanted(const struct config *cfg);

/* Run the daemon on loop until it ends (see above).  opts are the command
 * line's options for every sync (-q, -f, --dry-run, -1).  Returns 0 when the
 * last sync of every account succeeded, 1 otherwise, or a negative code when
 * nothing could start. */
int sched_run(uv_loop_t *loop, const struct config *cfg, const struct account_run_opts *opts);

#endif
