/* aftersync.h - what runs when an account's folders are synced, before its
 * postsynchook: the [mbnames] update (mbnames.h) and newmail_hook.
 *
 * newmail_hook (an option of the remote IMAP repository) is, in
 * offlineimap, a Python callable run when a sync downloaded from the
 * server's INBOX a message that is not \Seen.  oimap embeds no Python; it
 * runs the two forms real configurations use, reading the command through
 * its expression evaluator (pyeval.h), so string concatenation and quoting
 * work as in Python:
 *     newmail_hook = lambda: os.system("notify-send 'New mail'")
 *     newmail_hook = lambda: subprocess.call(['notify-send', 'New mail'])
 * ("lambda:" may be left out; subprocess.run, .Popen and .check_call are
 * taken as .call).  os.system's string runs with /bin/sh -c; subprocess's
 * list is the program and its arguments, without a shell.  Any other form
 * (a function from pythonfile) goes to the python3 helper (pyhelper.h) and
 * is called there, synchronously, as offlineimap calls it; one the helper
 * cannot evaluate either is refused when oimap starts, naming the file,
 * line and option.  The hook runs once per sync of
 * the account (offlineimap: once per INBOX sync), after the messages are
 * in the Maildir, with oimap's environment, its output going to oimap's
 * stdout and stderr; oimap waits for it before the postsynchook.  Not in
 * --dry-run.
 */
#ifndef OIMAP_AFTERSYNC_H
#define OIMAP_AFTERSYNC_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

struct config;
struct config_account;

struct aftersync_info {
    uv_loop_t *loop;
    const struct config *cfg;
    const struct config_account *acct;
    const char *const *folders; /* the account's folder pairs: local names,
                                 * '/'-delimited, as repo_maildir takes them */
    size_t n_folders;
    bool partial;     /* only some folders were synced (-f, IDLE): mbnames adds */
    bool dry_run;     /* say, change nothing, run nothing */
    bool failed;      /* the account failed as a whole: mbnames keeps its list */
    size_t inbox_new; /* messages without \Seen downloaded from the remote INBOX */
};

typedef void (*aftersync_cb)(void *arg);

/* Start the work for one account; cb(arg) runs when it is done (never from
 * inside this call).  in and what it points to need only live for the
 * call.  Returns 0; 1 when there is nothing to do ([mbnames] disabled, no
 * hook to run), or -ENOMEM: then cb will not run. */
int aftersync_run(const struct aftersync_info *in, aftersync_cb cb, void *arg);

/* Check at start-up what the above will need: every selected account's
 * newmail_hook and, when [mbnames] is enabled, its expressions.  Returns 0,
 * or OIMAP_ECONFIG after logging each problem as FILE:LINE: [section] option. */
int aftersync_check_config(const struct config *cfg);

/* At the end of a run (one-shot, or the daemon's exit): with [mbnames]
 * enabled and incremental = no, write the mailboxes file from every
 * account's list.  Blocking.  Returns 0 or a negative code (logged). */
int aftersync_finish(const struct config *cfg, bool dry_run);

/* --mbnames-prune (mbnames.h): returns 0, OIMAP_ECONFIG (the [mbnames]
 * expressions are wrong) or another negative code; everything is logged. */
int aftersync_mbnames_prune(const struct config *cfg, bool dry_run);

/* Turn a newmail_hook value into the command to run: argv (NULL-terminated,
 * malloc'd; free with aftersync_argv_free).  where names the option for
 * messages.  Returns 0, or OIMAP_ECONFIG with the reason in err. */
int aftersync_newmail_parse(const char *text, const char *where, char ***argv_r, char *err,
                            size_t errlen);
void aftersync_argv_free(char ***argv);

#endif
