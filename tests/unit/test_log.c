/* test_log.c - UI names, debug categories, and secrets never reaching output. */
#include "err.h"
#include "log.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *slurp(const char *path)
{
    static char buf[65536];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

int main(void)
{
    enum log_ui ui;
    const char *note;
    unsigned cats;

    is_int(log_ui_parse("ttyui", &ui, &note), 0, "ttyui");
    is_int(ui, LOG_UI_TTY, "ttyui value");
    is_int(log_ui_parse("TTY.TTYUI", &ui, &note), 0, "old dotted name");
    is_int(ui, LOG_UI_TTY, "dotted name maps to ttyui");
    is_int(log_ui_parse("Curses.Blinkenlights", &ui, &note), 0, "blinkenlights accepted");
    ok(ui == LOG_UI_TTY && note != NULL, "blinkenlights is ttyui with a note");
    is_int(log_ui_parse("MachineUI", &ui, &note), 0, "case-insensitive");
    is_int(ui, LOG_UI_MACHINE, "machineui");
    is_int(log_ui_parse("Noninteractive.Quiet", &ui, &note), 0, "Noninteractive.Quiet");
    is_int(ui, LOG_UI_QUIET, "quiet");
    is_int(log_ui_parse("x", &ui, &note), OIMAP_EUSAGE, "unknown UI refused");

    is_int(log_cats_parse("imap", &cats), 0, "imap");
    is_int(cats, LOGC_IMAP, "imap bit");
    is_int(log_cats_parse("Maildir,IMAP", &cats), 0, "list, any case");
    is_int(cats, LOGC_IMAP | LOGC_MAILDIR, "two bits");
    is_int(log_cats_parse("", &cats), OIMAP_EUSAGE, "empty list refused");
    is_int(log_cats_parse("imap,,", &cats), 0, "empty items tolerated");

    char path[] = "/tmp/oimap-test-log-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    /* The front end writes to stderr; send it to a file we can read too. */
    char errpath[] = "/tmp/oimap-test-err-XXXXXX";
    fd = mkstemp(errpath);
    close(fd);
    if (!freopen(errpath, "w", stderr))
        return 1;
    is_int(log_init(LOG_UI_BASIC, path, LOGC_IMAP), 0, "log_init with file");
    log_add_secret("hunter2 ;#%");
    log_add_secret("ab"); /* too short: ignored, would mask too much */
    log_info("login alice %s done ab", "hunter2 ;#%");
    LOG_DEBUG(LOGC_IMAP, "C: a1 LOGIN alice \"hunter2 ;#%%\"");
    LOG_DEBUG(LOGC_MAILDIR, "not shown");
    log_warn("careful");
    log_error("broken: %s", "hunter2 ;#%hunter2 ;#%");
    fflush(stderr);
    const char *file = slurp(path);
    ok(strstr(file, "hunter2") == NULL, "secret absent from the log file");
    ok(strstr(file, "login alice ******** done ab") != NULL, "secret masked in the log file");
    ok(strstr(file, "imap: C: a1 LOGIN alice \"********\"") != NULL, "debug line masked");
    ok(strstr(file, "not shown") == NULL, "debug category filter");
    ok(strstr(file, "WARNING: careful") != NULL, "warning prefix");
    ok(strstr(file, "ERROR: broken: ****************") != NULL, "two adjacent secrets masked");
    const char *err = slurp(errpath);
    ok(strstr(err, "hunter2") == NULL, "secret absent from the terminal output");
    ok(strstr(err, "login alice ******** done") != NULL, "info shown on the terminal");

    /* A daemon replacing tokens for weeks never fills the table: each one
     * replaced is forgotten, and the newest is still masked. */
    char tok[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(tok, sizeof tok, "token-%04d", i);
        log_add_secret(tok);
        if (i < 999)
            log_forget_secret(tok);
    }
    log_info("using %s", "token-0999");
    log_info("again %s", "hunter2 ;#%");
    fflush(stderr);
    ok(strstr(slurp(path), "token-0999") == NULL, "newest of 1000 replaced tokens masked");
    ok(strstr(slurp(path), "hunter2") == NULL, "earlier secret still masked after forgetting");

    /* machineui: severity:command:thread:urlencoded message */
    if (!freopen(errpath, "w", stderr))
        return 1;
    log_init(LOG_UI_MACHINE, NULL, 0);
    log_event("acct", "My Work", "My Work");
    log_info("hello world/1");
    fflush(stderr);
    err = slurp(errpath);
    ok(strstr(err, "msg:acct:My+Work:My+Work\n") != NULL, "machineui event line");
    ok(strstr(err, "msg:_display:main:hello+world%2F1\n") != NULL, "machineui display line");

    log_close();
    unlink(path);
    unlink(errpath);
    return tap_done();
}
