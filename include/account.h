/* account.h - run the sync of every selected account: the top of the engine.
 *
 * For each account of cfg (at most [general] maxsyncaccounts at once, one
 * with -1), on the one loop:
 *   - run presynchook;
 *   - open the status store (this takes the account lock: a second oimap on
 *     the same account stops here with "account is locked");
 *   - connect to the remote repository (imap_conn), list its folders (with
 *     each folder's STATUS when the server has LIST-STATUS); list the local
 *     Maildir's folders;
 *   - decide the folder pairs: remote names translated (server delimiter ->
 *     local sep), nametrans/folderfilter/folderincludes in the simple forms
 *     oimap evaluates, -f overriding folderfilter as offlineimap does; create
 *     missing folders on either side where createfolders allows;
 *   - sync the pairs with sync_folder(), over up to maxconnections
 *     connections to the server (one with -1; the extra ones are opened only
 *     while folders wait for a connection); a folder whose STATUS is the one
 *     recorded is first checked without a connection and not SELECTed when
 *     its Maildir has not changed either (sync.h, "The check");
 *   - run postsynchook; print the account's summary.
 * A failed folder does not stop the others; a failed account does not stop
 * the other accounts.
 */
#ifndef OIMAP_ACCOUNT_H
#define OIMAP_ACCOUNT_H

#include <stdbool.h>

#include <uv.h>

struct config;
struct config_account;
struct conn_cache;

struct account_run_opts {
    bool dry_run;           /* --dry-run: plan and print, change nothing anywhere */
    bool quick;             /* -q */
    bool single;            /* -1: one account and one connection at a time */
    bool allow_mass_delete; /* let the mass-deletion guard's held deletions through */
    const char *folders;    /* -f: comma-separated remote folder names, or NULL */
    bool idle;              /* a sync IDLE asked for: OFFLINEIMAPSYNCMODE=idle for the hooks */
    /* The daemon's held connections (conn_cache.h), or NULL: accounts with
     * holdconnectionopen take their connections from it and give them back
     * at the end instead of closing them. */
    struct conn_cache *conns;
};

struct account_run;

/* Called once when every account of a run has ended; failures is the number
 * of accounts that failed or had a failed folder. */
typedef void (*account_done_cb)(int failures, void *arg);

/* Start syncing every selected account once (only == NULL), or just only, on
 * loop; returns at once.  done runs (later, never from inside this call
 * unless nothing could start) when all are finished.  *run_r (may be NULL)
 * is valid until done runs.  Returns 0 or -ENOMEM. */
int account_run_start(uv_loop_t *loop, const struct config *cfg,
                      const struct account_run_opts *opts, const struct config_account *only,
                      account_done_cb done, void *arg, struct account_run **run_r);

/* Graceful stop: no account and no folder starts any more; folders in
 * progress finish (their changes are committed), then done runs. */
void account_run_stop(struct account_run *run);

/* Write the state of the run as log_warn lines (SIGQUIT): per account in
 * progress its stage, every connection (peer, state, the folder it syncs,
 * commands in flight, bytes queued) and every folder job not done (checking,
 * waiting for a connection, syncing on connection N), the failed ones and
 * the counts of those done. */
void account_run_dump(const struct account_run *run);

/* Run every selected account once.  Returns 0 when every account and folder
 * synced, 1 when something failed (each failure was logged with its account
 * and folder), or a negative code for a failure before any account started. */
int account_run_all(uv_loop_t *loop, const struct config *cfg, const struct account_run_opts *opts);

#endif
