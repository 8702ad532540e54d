/* log.h - the one logging call, and the user-interface front ends.
 *
 * Everything oimap tells the user goes through here.  The front end chosen with
 * -u / [general] ui decides the shape: quiet (errors only), basic (plain lines
 * for cron and scripts), ttyui (basic plus live progress on a terminal),
 * machineui (one parseable line per event, offlineimap's format) and syslog.
 * -l FILE copies every line to a file as well.
 *
 * Secrets: every string handed to log_add_secret() is replaced by "********"
 * in all output, as a last line of defence; code that logs protocol traffic
 * still masks credentials itself, at the source.
 */
#ifndef OIMAP_LOG_H
#define OIMAP_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level { LOGL_ERROR, LOGL_WARN, LOGL_INFO, LOGL_DEBUG };

/* -d categories (a bit set). */
enum log_cat {
    LOGC_IMAP = 1u << 0,
    LOGC_MAILDIR = 1u << 1,
    LOGC_THREAD = 1u << 2, /* accepted for offlineimap compatibility */
    LOGC_SYNC = 1u << 3,
    LOGC_STATUS = 1u << 4,
    LOGC_ALL = 0xffu,
};

enum log_ui { LOG_UI_QUIET, LOG_UI_BASIC, LOG_UI_TTY, LOG_UI_MACHINE, LOG_UI_SYSLOG };

/* Parse a UI name as offlineimap does (case-insensitive, only the part after
 * the last '.', so "TTY.TTYUI" works; blinkenlights maps to ttyui).  Returns
 * 0 and sets *ui_r, or OIMAP_EUSAGE for an unknown name.  *note_r is set to a
 * static note to show the user ("blinkenlights is shown as ttyui") or NULL. */
int log_ui_parse(const char *name, enum log_ui *ui_r, const char **note_r);
const char *log_ui_name(enum log_ui ui);

/* Parse a -d list ("imap,maildir", "ALL").  Returns 0 or OIMAP_EUSAGE. */
int log_cats_parse(const char *list, unsigned *cats_r);

/* Start logging.  logfile may be NULL.  Returns 0 or a negative errno when the
 * log file cannot be opened.  May be called again to switch front end. */
int log_init(enum log_ui ui, const char *logfile, unsigned debug_cats);
void log_close(void);
/* -s: copy what the front end shows (and -d lines) to syslog as well, as
 * offlineimap's -s adds a syslog handler; no effect with the syslog UI. */
void log_also_syslog(bool on);
enum log_ui log_current_ui(void);

/* Replace every later occurrence of secret in log output by ********.
 * Strings shorter than 3 bytes are ignored (too many false hits). */
void log_add_secret(const char *secret);
/* Stop masking secret (a credential replaced and never used again, such as
 * an expired OAuth2 access token), so that the bounded table of secrets
 * does not fill up in a long-running daemon. */
void log_forget_secret(const char *secret);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
#define log_error(...) log_msg(LOGL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOGL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOGL_INFO, __VA_ARGS__)

bool log_debug_on(unsigned cat);
void log_debug(unsigned cat, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define LOG_DEBUG(cat, ...)                                                                        \
    do {                                                                                           \
        if (log_debug_on(cat))                                                                     \
            log_debug(cat, __VA_ARGS__);                                                           \
    } while (0)

/* A structured event, for machineui (severity "msg", the given command,
 * thread name = account or "main", message text) and for progress displays.
 * Other front ends print text (if not NULL) at info level. */
void log_event(const char *command, const char *account, const char *text);

/* Progress of a transfer, for ttyui's live line; other UIs ignore it. */
void log_progress(const char *account, const char *folder, uint64_t msgs_done, uint64_t msgs_total,
                  uint64_t bytes_done, uint64_t bytes_total);

#endif
