/* sdnotify.h - systemd's service notification protocol, spoken directly.
 *
 * A service started with Type=notify finds $NOTIFY_SOCKET in its
 * environment: the path of a unix datagram socket ("@name" for the abstract
 * namespace).  Each notification is one datagram of newline-separated
 * VAR=value assignments: READY=1, STATUS=..., STOPPING=1, WATCHDOG=1.  We
 * speak the protocol ourselves (no libsystemd): it is a single sendto().
 *
 * sdnotify_init() reads and unsets NOTIFY_SOCKET (so hooks and password
 * commands we start do not inherit it and cannot speak for us) and the
 * watchdog variables.  Every later call is a no-op when no socket was given,
 * so callers need not check.  Sending never blocks the loop (MSG_DONTWAIT);
 * a lost notification is not an error worth stopping for, so the send
 * functions log at debug level and return the code only for tests.
 */
#ifndef OIMAP_SDNOTIFY_H
#define OIMAP_SDNOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Read $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID, open the socket
 * and unset the three variables.  Returns 1 when notifications will be
 * sent, 0 when there is no (usable) socket, -errno when socket() failed.
 * Calling it again re-reads the environment (tests). */
int sdnotify_init(void);

/* Close the socket (safe to call without init). */
void sdnotify_close(void);

/* Whether a socket is open. */
bool sdnotify_enabled(void);

/* The watchdog interval systemd asked for, in microseconds (0: none, or the
 * watchdog is meant for another process). */
uint64_t sdnotify_watchdog_usec(void);

/* Send text (e.g. "READY=1\nSTATUS=idle") as one datagram.  Returns 0, 0
 * when disabled, or -errno. */
int sdnotify_send(const char *text);

/* sdnotify_send("STATUS=" + printf(fmt, ...)); newlines in the result are
 * replaced by spaces (one status line). */
int sdnotify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
