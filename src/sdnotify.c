/* sdnotify.c - systemd's notification protocol over a datagram socket (see
 * sdnotify.h). */
#include "sdnotify.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_len;
static uint64_t watchdog_usec;

void sdnotify_close(void)
{
    if (notify_fd >= 0)
        close(notify_fd);
    notify_fd = -1;
    notify_len = 0;
}

int sdnotify_init(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    const char *wd = getenv("WATCHDOG_USEC");
    const char *wd_pid = getenv("WATCHDOG_PID");

    sdnotify_close();
    watchdog_usec = 0;
    if (wd && *wd) {
        char *end;
        unsigned long long v = strtoull(wd, &end, 10);
        /* WATCHDOG_PID names the process the watchdog is meant for: another
         * PID means we merely inherited the variables from a parent. */
        bool ours = !wd_pid || !*wd_pid || strtol(wd_pid, NULL, 10) == (long)getpid();
        if (*end == '\0' && v > 0 && ours)
            watchdog_usec = v;
    }
    int ret = 0;
    size_t len = path ? strlen(path) : 0;
    /* Only absolute paths and abstract names are valid (as systemd says). */
    if (len >= 2 && len < sizeof notify_addr.sun_path && (path[0] == '/' || path[0] == '@')) {
        memset(&notify_addr, 0, sizeof notify_addr);
        notify_addr.sun_family = AF_UNIX;
        memcpy(notify_addr.sun_path, path, len);
        if (path[0] == '@')
            notify_addr.sun_path[0] = '\0'; /* abstract namespace */
        notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
        notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        ret = notify_fd >= 0 ? 1 : -errno;
        if (notify_fd < 0)
            log_warn("systemd notification socket %s: %s", path, strerror(errno));
    } else if (path && *path) {
        log_warn("NOTIFY_SOCKET=%s: not an absolute path or abstract socket name; ignored", path);
    }
    if (notify_fd < 0)
        watchdog_usec = 0; /* nobody to pet */
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    return ret;
}

bool sdnotify_enabled(void)
{
    return notify_fd >= 0;
}

uint64_t sdnotify_watchdog_usec(void)
{
    return watchdog_usec;
}

int sdnotify_send(const char *text)
{
    if (notify_fd < 0)
        return 0;
    ssize_t n = sendto(notify_fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL,
                       (const struct sockaddr *)&notify_addr, notify_len);
    if (n < 0) {
        int e = errno;
        LOG_DEBUG(LOGC_ALL, "systemd notification '%s' not sent: %s", text, strerror(e));
        return -e;
    }
    return 0;
}

int sdnotify_status(const char *fmt, ...)
{
    char buf[512] = "STATUS=";
    va_list ap;

    if (notify_fd < 0)
        return 0;
    va_start(ap, fmt);
    vsnprintf(buf + 7, sizeof buf - 7, fmt, ap);
    va_end(ap);
    for (char *p = buf; *p; p++)
        if (*p == '\n')
            *p = ' ';
    return sdnotify_send(buf);
}
