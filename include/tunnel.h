/* tunnel.h - a command whose stdin and stdout are the connection:
 * offlineimap's `preauthtunnel` and `transporttunnel`.
 *
 * tunnel_spawn() runs CMD with /bin/sh -c, its stdin and stdout pipes, its
 * stderr ours (so ssh can report and prompt on the terminal, as under
 * offlineimap).  The caller gets the other ends: one descriptor to read the
 * command's output from, one to write its input to (net.c wraps them in
 * uv_pipe_t handles: see net_spawn() in net.h).
 *
 * The child stays in our process group and session: ssh may ask for a
 * passphrase on the terminal, and Ctrl-C reaches it as it reaches us.
 *
 * Ending: tunnel_release() says the owner is done.  Once the owner has also
 * closed its descriptors the command sees end-of-file on its input; if it has
 * not exited 1 s later it gets SIGTERM, and SIGKILL 2 s after that.  The
 * object frees itself once the command is reaped, so the loop runs until
 * then (at most about 3 s after tunnel_release()).
 *
 * Everything runs on the one uv loop; no callback is called from inside the
 * call that started it.
 */
#ifndef OIMAP_TUNNEL_H
#define OIMAP_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct tunnel;

/* Called once, from the loop, when the command has exited (unless the
 * tunnel was released first). */
typedef void (*tunnel_exit_cb)(struct tunnel *t, void *arg);

/* Start cmd.  Returns 0 with *rfd_r (the command's output) and *wfd_r (its
 * input), both close-on-exec and owned by the caller, and *t_r; or a
 * negative code (UV_EINVAL for an empty command, pipe or uv_spawn errors)
 * and nothing to clean up. */
int tunnel_spawn(uv_loop_t *loop, const char *cmd, tunnel_exit_cb on_exit, void *arg, int *rfd_r,
                 int *wfd_r, struct tunnel **t_r);

/* true once the command has exited; then *desc_r describes how ("exited with
 * status 3", "was killed by signal 9"). */
bool tunnel_exit_status(const struct tunnel *t, const char **desc_r);

/* The command's process id (0 once reaped). */
int tunnel_pid(const struct tunnel *t);

/* The owner is done: no more exit callback; end the command as described
 * above.  NULLs *t; NULL is fine. */
void tunnel_release(struct tunnel **t);

#endif
