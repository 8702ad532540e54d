/* log.c - the one logging call and the front ends behind it.
 *
 * All output is formatted once into a bounded line buffer, scrubbed of the
 * registered secrets, and then handed to the chosen front end and to the -l
 * log file.  Formatting never allocates on the hot path; a line longer than
 * the buffer is cut (and says so) rather than grown without bound.
 */
#include "log.h"
#include "err.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 8192
#define LOG_MAX_SECRETS 64

static struct {
    enum log_ui ui;
    unsigned cats;
    FILE *file;
    bool syslog_open;
    bool also_syslog;    /* -s */
    bool tty;            /* stderr is a terminal: ttyui may draw progress */
    bool progress_shown; /* a progress line is on screen and must be erased */
    char *secrets[LOG_MAX_SECRETS];
    size_t n_secrets;
} g_log = {.ui = LOG_UI_BASIC};

static const char *const ui_names[] = {
    [LOG_UI_QUIET] = "quiet",       [LOG_UI_BASIC] = "basic",   [LOG_UI_TTY] = "ttyui",
    [LOG_UI_MACHINE] = "machineui", [LOG_UI_SYSLOG] = "syslog",
};

const char *log_ui_name(enum log_ui ui)
{
    return ui_names[ui];
}

int log_ui_parse(const char *name, enum log_ui *ui_r, const char **note_r)
{
    /* offlineimap keeps only what follows the last dot ("Curses.Blinkenlights"). */
    const char *dot = strrchr(name, '.');
    const char *n = dot ? dot + 1 : name;

    *note_r = NULL;
    for (size_t i = 0; i < sizeof ui_names / sizeof ui_names[0]; i++) {
        if (strcasecmp(n, ui_names[i]) == 0) {
            *ui_r = (enum log_ui)i;
            return 0;
        }
    }
    if (strcasecmp(n, "blinkenlights") == 0) {
        *ui_r = LOG_UI_TTY;
        *note_r = "the blinkenlights UI is shown as ttyui";
        return 0;
    }
    if (strcasecmp(n, "noninteractive") == 0 || strcasecmp(n, "basic") == 0) {
        *ui_r = LOG_UI_BASIC;
        return 0;
    }
    return OIMAP_EUSAGE;
}

int log_cats_parse(const char *list, unsigned *cats_r)
{
    static const struct {
        const char *name;
        unsigned bit;
    } cats[] = {
        {"imap", LOGC_IMAP}, {"maildir", LOGC_MAILDIR}, {"thread", LOGC_THREAD},
        {"sync", LOGC_SYNC}, {"status", LOGC_STATUS},   {"all", LOGC_ALL},
    };
    unsigned out = 0;
    const char *p = list;

    while (*p) {
        size_t len = strcspn(p, ",");
        bool found = false;
        for (size_t i = 0; i < sizeof cats / sizeof cats[0]; i++) {
            if (strlen(cats[i].name) == len && strncasecmp(p, cats[i].name, len) == 0) {
                out |= cats[i].bit;
                found = true;
            }
        }
        if (!found && len > 0)
            return OIMAP_EUSAGE;
        p += len;
        if (*p == ',')
            p++;
    }
    if (out == 0)
        return OIMAP_EUSAGE;
    *cats_r = out;
    return 0;
}

int log_init(enum log_ui ui, const char *logfile, unsigned debug_cats)
{
    if (logfile) {
        FILE *f = fopen(logfile, "a");
        if (!f)
            return -errno;
        setvbuf(f, NULL, _IOLBF, 0);
        if (g_log.file)
            fclose(g_log.file);
        g_log.file = f;
    }
    g_log.ui = ui;
    g_log.cats = debug_cats;
    g_log.tty = isatty(STDERR_FILENO) == 1;
    if (ui == LOG_UI_SYSLOG && !g_log.syslog_open) {
        openlog("oimap", LOG_PID, LOG_MAIL);
        g_log.syslog_open = true;
    }
    return 0;
}

void log_close(void)
{
    if (g_log.file) {
        fclose(g_log.file);
        g_log.file = NULL;
    }
    if (g_log.syslog_open) {
        closelog();
        g_log.syslog_open = false;
        g_log.also_syslog = false;
    }
    for (size_t i = 0; i < g_log.n_secrets; i++) {
        /* Wipe before freeing: secrets should not linger in freed heap. */
        memset(g_log.secrets[i], 0, strlen(g_log.secrets[i]));
        free(g_log.secrets[i]);
    }
    g_log.n_secrets = 0;
}

void log_also_syslog(bool on)
{
    if (on && !g_log.syslog_open) {
        openlog("oimap", LOG_PID, LOG_MAIL);
        g_log.syslog_open = true;
    }
    g_log.also_syslog = on;
}

enum log_ui log_current_ui(void)
{
    return g_log.ui;
}

void log_add_secret(const char *secret)
{
    if (!secret || strlen(secret) < 3 || g_log.n_secrets == LOG_MAX_SECRETS)
        return;
    for (size_t i = 0; i < g_log.n_secrets; i++)
        if (strcmp(g_log.secrets[i], secret) == 0)
            return;
    char *copy = strdup(secret);
    if (copy)
        g_log.secrets[g_log.n_secrets++] = copy;
}

void log_forget_secret(const char *secret)
{
    if (!secret)
        return;
    for (size_t i = 0; i < g_log.n_secrets; i++) {
        if (strcmp(g_log.secrets[i], secret) == 0) {
            explicit_bzero(g_log.secrets[i], strlen(g_log.secrets[i]));
            free(g_log.secrets[i]);
            g_log.secrets[i] = g_log.secrets[--g_log.n_secrets];
            return;
        }
    }
}

/* Replace every registered secret in line (NUL-terminated, in a buffer of
 * LOG_LINE_MAX) by "********".  The mask is never longer than what it hides
 * unless the secret is shorter than 8 bytes, so the line may grow a little:
 * it is cut at the buffer end. */
static void scrub(char *line)
{
    static const char mask[] = "********";
    for (size_t i = 0; i < g_log.n_secrets; i++) {
        const char *s = g_log.secrets[i];
        size_t slen = strlen(s);
        char *hit = line;
        while ((hit = strstr(hit, s)) != NULL) {
            size_t tail = strlen(hit + slen);
            size_t room = LOG_LINE_MAX - 1 - (size_t)(hit - line);
            size_t mlen = sizeof mask - 1 < room ? sizeof mask - 1 : room;
            if (tail > room - mlen)
                tail = room - mlen;
            memmove(hit + mlen, hit + slen, tail);
            memcpy(hit, mask, mlen);
            hit[mlen + tail] = '\0';
            hit += mlen;
        }
    }
}

static void clear_progress(void)
{
    if (g_log.progress_shown) {
        fputs("\r\033[K", stderr);
        g_log.progress_shown = false;
    }
}

/* offlineimap's machineui encodes with Python's urlencode (quote_plus). */
static void put_urlencoded(FILE *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '_' || *p == '.' || *p == '-' || *p == '~')
            fputc(*p, out);
        else if (*p == ' ')
            fputc('+', out);
        else
            fprintf(out, "%%%02X", *p);
    }
}

static void emit_machine(const char *severity, const char *command, const char *who,
                         const char *text)
{
    fprintf(stderr, "%s:%s:", severity, command);
    put_urlencoded(stderr, who);
    fputc(':', stderr);
    put_urlencoded(stderr, text);
    fputc('\n', stderr);
}

static void to_file(const char *prefix, const char *line)
{
    if (!g_log.file)
        return;
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(g_log.file, "%s %s%s\n", ts, prefix, line);
}

static const char *const level_prefix[] = {
    [LOGL_ERROR] = "ERROR: ",
    [LOGL_WARN] = "WARNING: ",
    [LOGL_INFO] = "",
    [LOGL_DEBUG] = "",
};

static const int syslog_prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

static void emit(enum log_level lvl, const char *line)
{
    to_file(level_prefix[lvl], line);
    /* -s copies what the front end shows (quiet: errors and warnings). */
    if (g_log.also_syslog && g_log.ui != LOG_UI_SYSLOG &&
        (g_log.ui != LOG_UI_QUIET || lvl != LOGL_INFO))
        syslog(syslog_prio[lvl], "%s", line);
    switch (g_log.ui) {
    case LOG_UI_QUIET:
        if (lvl == LOGL_ERROR || lvl == LOGL_DEBUG)
            fprintf(stderr, "%s%s\n", level_prefix[lvl], line);
        break;
    case LOG_UI_BASIC:
    case LOG_UI_TTY:
        clear_progress();
        fprintf(stderr, "%s%s\n", level_prefix[lvl], line);
        break;
    case LOG_UI_MACHINE: {
        static const char *const sev[] = {"error", "warn", "msg", "debug"};
        emit_machine(sev[lvl], lvl == LOGL_INFO ? "_display" : "", "main", line);
        break;
    }
    case LOG_UI_SYSLOG:
        syslog(syslog_prio[lvl], "%s", line);
        break;
    }
}

void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
    char line[LOG_LINE_MAX];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n >= (int)sizeof line)
        memcpy(line + sizeof line - 5, "...", 4);
    scrub(line);
    emit(lvl, line);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(lvl, fmt, ap);
    va_end(ap);
}

bool log_debug_on(unsigned cat)
{
    return (g_log.cats & cat) != 0;
}

void log_debug(unsigned cat, const char *fmt, ...)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{LOGC_IMAP, "imap"},
                 {LOGC_MAILDIR, "maildir"},
                 {LOGC_THREAD, "thread"},
                 {LOGC_SYNC, "sync"},
                 {LOGC_STATUS, "status"}};
    const char *name = "debug";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (cat & names[i].bit)
            name = names[i].name;

    char line[LOG_LINE_MAX];
    int off = snprintf(line, sizeof line, "%s: ", name);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + off, sizeof line - (size_t)off, fmt, ap);
    va_end(ap);
    if (n >= (int)(sizeof line - (size_t)off))
        memcpy(line + sizeof line - 5, "...", 4);
    scrub(line);
    emit(LOGL_DEBUG, line);
}

void log_event(const char *command, const char *account, const char *text)
{
    if (g_log.ui == LOG_UI_MACHINE) {
        char line[LOG_LINE_MAX];
        snprintf(line, sizeof line, "%s", text ? text : "");
        scrub(line);
        emit_machine("msg", command, account ? account : "main", line);
        to_file("", line);
        return;
    }
    if (text)
        log_msg(LOGL_INFO, "%s", text);
}

static void human_bytes(char *buf, size_t len, double b)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
}

void log_progress(const char *account, const char *folder, uint64_t msgs_done, uint64_t msgs_total,
                  uint64_t bytes_done, uint64_t bytes_total)
{
    static struct timespec start, last;
    static const char *cur_folder;
    static uint64_t start_bytes;
    struct timespec now;

    if (g_log.ui != LOG_UI_TTY || !g_log.tty)
        return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (folder != cur_folder || bytes_done < start_bytes) {
        cur_folder = folder;
        start = now;
        start_bytes = bytes_done;
    }
    /* Redraw at most ten times a second, and always at the end. */
    double since_last =
        (double)(now.tv_sec - last.tv_sec) + (double)(now.tv_nsec - last.tv_nsec) / 1e9;
    if (since_last < 0.1 && msgs_done < msgs_total)
        return;
    last = now;
    double secs = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
    char done[32], total[32], rate[32];
    human_bytes(done, sizeof done, (double)bytes_done);
    human_bytes(total, sizeof total, (double)bytes_total);
    human_bytes(rate, sizeof rate, secs > 0.05 ? (double)(bytes_done - start_bytes) / secs : 0);
    fprintf(stderr, "\r\033[K%s: %s: %llu/%llu messages, %s/%s, %s/s", account, folder,
            (unsigned long long)msgs_done, (unsigned long long)msgs_total, done, total, rate);
    g_log.progress_shown = true;
    if (msgs_done >= msgs_total)
        clear_progress();
}
