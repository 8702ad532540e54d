/* tunnel.c - run a tunnel command over two pipes; see include/tunnel.h.
 *
 * Pipes, not a socketpair: some servers refuse a socket on stdin (Dovecot's
 * imap: "imap binary must not be started from inetd"), and offlineimap gives
 * its tunnels pipes too.
 *
 * The uv_process_t is kept open until the child has exited: closing it
 * earlier would make libuv stop reaping it (a zombie for the rest of a daemon
 * run).  So the object outlives its owner; it frees itself from the last
 * uv_close callback.
 */
#include "tunnel.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "log.h"

#define GRACE_EOF_MS 1000  /* after release: time to exit on end-of-file */
#define GRACE_TERM_MS 2000 /* then after SIGTERM, before SIGKILL */

struct tunnel {
    uv_process_t proc;
    uv_timer_t timer;
    tunnel_exit_cb on_exit;
    void *arg;
    int pid;
    int handles; /* uv handles not closed yet */
    int signals_sent;
    bool exited, released, timer_closed;
    char desc[64];
};

static void on_handle_closed(uv_handle_t *h)
{
    struct tunnel *t = h->data;
    if (--t->handles == 0)
        free(t);
}

static void close_timer(struct tunnel *t)
{
    if (t->timer_closed)
        return;
    t->timer_closed = true;
    uv_close((uv_handle_t *)&t->timer, on_handle_closed);
}

static void on_proc_exit(uv_process_t *p, int64_t status, int term_signal)
{
    struct tunnel *t = p->data;
    t->exited = true;
    if (term_signal)
        snprintf(t->desc, sizeof t->desc, "was killed by signal %d", term_signal);
    else
        snprintf(t->desc, sizeof t->desc, "exited with status %lld", (long long)status);
    LOG_DEBUG(LOGC_IMAP, "tunnel: command (pid %d) %s", t->pid, t->desc);
    t->pid = 0;
    uv_close((uv_handle_t *)&t->proc, on_handle_closed);
    if (t->released) {
        close_timer(t);
        return;
    }
    uv_timer_stop(&t->timer);
    if (t->on_exit)
        t->on_exit(t, t->arg);
}

/* The command did not end after its input closed: SIGTERM, then SIGKILL. */
static void on_grace_timer(uv_timer_t *tm)
{
    struct tunnel *t = tm->data;
    if (t->exited)
        return;
    int sig = t->signals_sent == 0 ? SIGTERM : SIGKILL;
    LOG_DEBUG(LOGC_IMAP, "tunnel: command (pid %d) still running; sending %s", t->pid,
              sig == SIGTERM ? "SIGTERM" : "SIGKILL");
    uv_process_kill(&t->proc, sig);
    if (t->signals_sent++ == 0)
        uv_timer_start(&t->timer, on_grace_timer, GRACE_TERM_MS, 0);
}

/* A simple command ("ssh -q host imapd", "openssl s_client ... -quiet") is
 * run as "exec CMD", so the process we signal is the command itself and not
 * a shell that would die and leave it running (dash does not exec the last
 * command itself).  Anything the exec prefix would change the meaning of
 * (lists, pipelines, subshells, assignments, keywords) runs as written. */
static bool simple_command(const char *cmd)
{
    /* shell words that "exec" would break: reserved words and builtins */
    static const char *const keywords[] = {
        "if",       "then",  "else",   "elif",  "fi",     "do",     "done",     "case",   "esac",
        "while",    "until", "for",    "{",     "}",      "!",      "[[",       "time",   "select",
        "function", "exec",  "exit",   "cd",    ".",      "source", "eval",     "export", "set",
        "unset",    "trap",  "wait",   "read",  "return", "shift",  "readonly", "local",  "command",
        "builtin",  "alias", "ulimit", "umask", ":"};
    if (strpbrk(cmd, ";&|()`\n"))
        return false;
    cmd += strspn(cmd, " \t");
    size_t n = strcspn(cmd, " \t");
    if (n == 0 || memchr(cmd, '=', n))
        return false;
    for (size_t i = 0; i < sizeof keywords / sizeof *keywords; i++)
        if (strlen(keywords[i]) == n && strncmp(cmd, keywords[i], n) == 0)
            return false;
    return true;
}

static void close_fds(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

int tunnel_spawn(uv_loop_t *loop, const char *cmd, tunnel_exit_cb on_exit, void *arg, int *rfd_r,
                 int *wfd_r, struct tunnel **t_r)
{
    *t_r = NULL;
    *rfd_r = *wfd_r = -1;
    if (!cmd || !*cmd)
        return UV_EINVAL;
    /* in[0] is the command's stdin, in[1] ours to write; out[1] its stdout,
     * out[0] ours to read. */
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
        int e = uv_translate_sys_error(errno);
        close_fds(in, 2);
        close_fds(out, 2);
        return e;
    }
    struct tunnel *t = calloc(1, sizeof *t);
    if (!t) {
        close_fds(in, 2);
        close_fds(out, 2);
        return UV_ENOMEM;
    }
    t->on_exit = on_exit;
    t->arg = arg;
    t->proc.data = t;
    t->timer.data = t;
    uv_timer_init(loop, &t->timer);
    char *line = NULL;
    if (simple_command(cmd) && asprintf(&line, "exec %s", cmd) < 0)
        line = NULL;
    char *args[] = {"sh", "-c", line ? line : (char *)cmd, NULL};
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_INHERIT_FD, .data.fd = in[0]},
        {.flags = UV_INHERIT_FD, .data.fd = out[1]},
        {.flags = UV_INHERIT_FD, .data.fd = STDERR_FILENO},
    };
    uv_process_options_t o = {
        .exit_cb = on_proc_exit,
        .file = "/bin/sh",
        .args = args,
        .stdio_count = 3,
        .stdio = stdio,
    };
    t->handles = 2;
    int r = uv_spawn(loop, &t->proc, &o);
    free(line);
    close(in[0]); /* the child has its copies */
    close(out[1]);
    if (r < 0) {
        close(in[1]);
        close(out[0]);
        /* A failed uv_spawn still needs its handle closed. */
        t->released = true;
        uv_close((uv_handle_t *)&t->proc, on_handle_closed);
        close_timer(t);
        return r;
    }
    t->pid = t->proc.pid;
    LOG_DEBUG(LOGC_IMAP, "tunnel: started pid %d: %s", t->pid, cmd);
    *rfd_r = out[0];
    *wfd_r = in[1];
    *t_r = t;
    return 0;
}

bool tunnel_exit_status(const struct tunnel *t, const char **desc_r)
{
    if (desc_r)
        *desc_r = t->exited ? t->desc : "";
    return t->exited;
}

int tunnel_pid(const struct tunnel *t)
{
    return t->pid;
}

void tunnel_release(struct tunnel **tp)
{
    struct tunnel *t = tp ? *tp : NULL;
    if (!t)
        return;
    *tp = NULL;
    t->released = true;
    t->on_exit = NULL;
    if (t->exited) {
        close_timer(t);
        return;
    }
    uv_timer_start(&t->timer, on_grace_timer, GRACE_EOF_MS, 0);
}
