/* delfolder.c - `oimap --delete-folder FOLDER` (behaviour: include/delfolder.h).
 *
 * Order of effects, for crash safety: every check first (status store lock,
 * the folder listed on the server, the local copy empty), then the server's
 * DELETE, then one status commit forgetting the folder, then the empty local
 * Maildir.  Killed after the DELETE, the records of a folder that is gone
 * stay; they are harmless (a pair neither side lists is not synced) and a
 * second run forgets them.  The few readdir/rmdir calls run on the loop
 * thread: this command has nothing else on its loop.
 */
#include "delfolder.h"
#include "config.h"
#include "err.h"
#include "folder.h"
#include "imap_conn.h"
#include "imap_parse.h"
#include "imap_utf7.h"
#include "log.h"
#include "maildir_name.h"
#include "status.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct del {
    uv_loop_t *loop;
    const struct config *cfg;
    const struct config_account *acct;
    bool dry_run;
    const char *view; /* FOLDER as typed (what filters and nametrans see) */
    char *utf8;       /* FOLDER for imap_conn and the status store */
    struct status *st;
    struct imap_conn_config *icfg;
    struct imap_conn *conn;
    int rc;

    bool found; /* the server listed it */
    char delim;
    char *local_path; /* its local Maildir, or NULL when it has none */
    size_t local_files;
    uint32_t *ids; /* status records naming it as the remote folder */
    size_t n_ids;
};

static void finish(struct del *d);

/* ---- checks ---------------------------------------------------------------- */

static int check_account(const struct config *cfg, const char *folder)
{
    if (cfg->n_accounts != 1) {
        char names[512] = "";
        size_t len = 0;
        for (size_t i = 0; i < cfg->n_accounts && len + 3 < sizeof names; i++)
            len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "",
                                    cfg->accounts[i].name);
        log_error("--delete-folder works on one account: choose it with -a (configured: %s)",
                  names);
        return OIMAP_EUSAGE;
    }
    const struct config_account *a = &cfg->accounts[0];
    const struct config_repo *r = a->remote;
    if (!*folder || strcasecmp(folder, "INBOX") == 0 || strpbrk(folder, "*%\r\n")) {
        log_error("--delete-folder %s: oimap does not delete %s", folder,
                  !*folder                           ? "a folder without a name"
                  : strcasecmp(folder, "INBOX") == 0 ? "INBOX"
                                                     : "names with *, % or line breaks");
        return OIMAP_EUSAGE;
    }
    if (r->type != CONFIG_REPO_IMAP && r->type != CONFIG_REPO_GMAIL) {
        log_error("Account %s: remote repository %s is not IMAP", a->name, r->name);
        return OIMAP_ECONFIG;
    }
    if (a->local->type != CONFIG_REPO_MAILDIR && a->local->type != CONFIG_REPO_GMAILMAILDIR) {
        log_error("Account %s: --delete-folder needs a Maildir local repository (%s is not)",
                  a->name, a->local->name);
        return OIMAP_ECONFIG;
    }
    if (r->readonly) {
        log_error("Account %s: [%s] readonly = yes: oimap does not delete folders there", a->name,
                  r->section);
        return OIMAP_ECONFIG;
    }
    return 0;
}

/* The local Maildir of the folder, as a sync would pair it: the remote
 * nametrans, the server's delimiter as '/', then the local sep. */
static int local_path_of(struct del *d)
{
    const struct config_repo *rr = d->acct->remote, *lr = d->acct->local;
    char where[512];
    struct folder_trans *t = NULL;
    snprintf(where, sizeof where, "%s:%d: [%s] nametrans", d->cfg->path, rr->nametrans.line,
             rr->section);
    int r = folder_trans_new(&rr->nametrans, where, &t);
    if (r < 0)
        return r;
    char *vis = folder_trans_apply(t, d->view);
    folder_trans_free(&t);
    if (!vis)
        return OIMAP_ECONFIG;
    char delim = d->delim ? d->delim : '/';
    if (delim != '/' && strchr(vis, '/')) {
        free(vis); /* a sync skips such a name: it has no local folder */
        return 0;
    }
    for (char *p = vis; *p; p++)
        if (*p == delim)
            *p = '/';
    char rel[4096];
    r = maildir_name_folder_to_local(rel, sizeof rel, vis, lr->sep ? lr->sep : ".");
    free(vis);
    if (r < 0)
        return 0; /* no safe local name: never synced locally */
    size_t n = strlen(lr->localfolders) + strlen(rel) + 2;
    if (!(d->local_path = malloc(n)))
        return -ENOMEM;
    snprintf(d->local_path, n, "%s%s%s", lr->localfolders, *rel ? "/" : "", rel);
    return 0;
}

static size_t count_entries(const char *dir)
{
    DIR *dp = opendir(dir);
    size_t n = 0;
    if (!dp)
        return 0;
    for (struct dirent *de; (de = readdir(dp)) != NULL;)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(dp);
    return n;
}

static void count_local(struct del *d)
{
    static const char *const sub[] = {"cur", "new", "tmp"};
    char p[4200];
    for (size_t i = 0; d->local_path && i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", d->local_path, sub[i]);
        d->local_files += count_entries(p);
    }
}

/* Remove the empty Maildir (not the root of localfolders, and a directory
 * holding subfolders stays). */
static void remove_local(struct del *d)
{
    static const char *const sub[] = {"cur", "new", "tmp"};
    char p[4200];
    if (!d->local_path || d->local_files)
        return;
    bool removed = false;
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", d->local_path, sub[i]);
        removed |= rmdir(p) == 0;
    }
    if (strcmp(d->local_path, d->acct->local->localfolders) != 0)
        rmdir(d->local_path);
    if (removed)
        log_info("Account %s: removed the empty local folder %s", d->acct->name, d->local_path);
}

static int collect_id(const struct status_folder *f, const char *local, const char *remote,
                      void *arg)
{
    struct del *d = arg;
    (void)local;
    if (strcmp(remote, d->utf8) != 0)
        return 0;
    uint32_t *v = realloc(d->ids, (d->n_ids + 1) * sizeof *v);
    if (!v)
        return -ENOMEM;
    d->ids = v;
    d->ids[d->n_ids++] = f->id;
    return 0;
}

static int forget(struct del *d)
{
    struct status_txn *t = NULL;
    if (!d->n_ids || d->dry_run)
        return 0;
    int r = status_txn_begin(d->st, &t);
    for (size_t i = 0; r == 0 && i < d->n_ids; i++)
        r = status_txn_folder_del(t, d->ids[i]);
    if (r == 0)
        r = status_txn_commit(&t);
    else
        status_txn_abort(&t);
    if (r < 0)
        log_error("Account %s: cannot forget folder %s in the status store: %s", d->acct->name,
                  d->view, err_str(r));
    return r;
}

/* ---- the server ----------------------------------------------------------- */

static void on_logout(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct del *d = arg;
    (void)c;
    (void)st;
    (void)res;
    imap_conn_close(&d->conn);
}

static void finish(struct del *d)
{
    if (d->conn && imap_conn_logout(d->conn, on_logout, d) == 0)
        return;
    imap_conn_close(&d->conn);
}

static void on_deleted(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct del *d = arg;
    (void)c;
    if (st < 0) {
        log_error("Account %s: folder '%s' could not be deleted; the server answered: %s",
                  d->acct->name, d->view, res && res->text && *res->text ? res->text : err_str(st));
        d->rc = st;
        finish(d);
        return;
    }
    log_info("Folder '%s' deleted.", d->view);
    d->rc = forget(d);
    remove_local(d);
    finish(d);
}

static int send_delete(struct del *d)
{
    return imap_conn_delete(d->conn, d->utf8, on_deleted, d);
}

static const char *plural(size_t n)
{
    return n == 1 ? "" : "s";
}

/* Everything is known: refuse, report a dry run, or delete. */
static void decide(struct del *d)
{
    const struct config_account *a = d->acct;
    int r = local_path_of(d);
    if (r == 0)
        count_local(d);
    if (r == 0)
        r = status_folder_foreach(d->st, collect_id, d);
    if (r < 0) {
        log_error("Account %s: --delete-folder %s: %s", a->name, d->view, err_str(r));
        d->rc = r;
    } else if (d->local_files && a->remote->createfolders) {
        log_error("Account %s: not deleting %s: its local copy %s still holds %zu file%s, and "
                  "with createfolders = yes the next sync would create the folder on the server "
                  "again and upload them; move the local folder away first (or set "
                  "createfolders = no in [%s])",
                  a->name, d->view, d->local_path, d->local_files, plural(d->local_files),
                  a->remote->section);
        d->rc = OIMAP_EGUARD;
    } else if (!d->found) {
        if (d->n_ids)
            log_info("Account %s: folder '%s' is not on the server; %s its %zu status record%s",
                     a->name, d->view, d->dry_run ? "would forget" : "forgetting", d->n_ids,
                     plural(d->n_ids));
        else
            log_error("Account %s: there is no folder '%s' on the server", a->name, d->view);
        d->rc = d->n_ids ? forget(d) : OIMAP_ENO;
        if (d->rc == 0 && !d->dry_run)
            remove_local(d);
    } else if (d->dry_run) {
        log_info("would try to remove '%s' on remote of '%s' account (and forget %zu status "
                 "record%s)",
                 d->view, a->name, d->n_ids, plural(d->n_ids));
    } else if ((r = send_delete(d)) < 0) {
        log_error("Account %s: DELETE %s: %s", a->name, d->view, err_str(r));
        d->rc = r;
    } else {
        return; /* on_deleted goes on */
    }
    finish(d);
}

static void on_entry(struct imap_conn *c, const struct imap_list_entry *e, void *arg)
{
    struct del *d = arg;
    (void)c;
    if (e->decoded && strcmp(e->name, d->utf8) == 0 && !(e->flags & IMAP_LIST_NONEXISTENT)) {
        d->found = true;
        d->delim = e->delim;
    }
}

static void on_listed(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct del *d = arg;
    (void)c;
    if (st < 0) {
        log_error("Account %s: LIST failed: %s", d->acct->name,
                  res && res->text && *res->text ? res->text : err_str(st));
        d->rc = st;
        finish(d);
        return;
    }
    decide(d);
}

static void on_conn_error(struct imap_conn *c, int code, const char *msg, void *arg)
{
    struct del *d = arg;
    (void)c;
    (void)msg; /* the failed command's callback says what went wrong */
    if (d->rc == 0)
        d->rc = code;
}

static const struct imap_conn_handlers handlers = {.on_error = on_conn_error};

static void on_open(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct del *d = arg;
    (void)res;
    if (st < 0) {
        log_error("Account %s: %s", d->acct->name,
                  imap_conn_error(c) ? imap_conn_error(c) : err_str(st));
        d->rc = st;
        imap_conn_close(&d->conn);
        return;
    }
    int r = imap_conn_list(c, NULL, d->utf8, on_entry, on_listed, d);
    if (r < 0) {
        log_error("Account %s: LIST: %s", d->acct->name, err_str(r));
        d->rc = r;
        finish(d);
    }
}

/* ---- the command ----------------------------------------------------------- */

static int open_status(struct del *d)
{
    int r = status_open(d->cfg->general.metadata, d->acct->name, d->dry_run, &d->st);
    if (r == OIMAP_ELOCKED)
        log_error("Account %s: another oimap is syncing this account; try again when it is done",
                  d->acct->name);
    else if (r < 0)
        log_error("Account %s: cannot open the status store in %s: %s", d->acct->name,
                  d->cfg->general.metadata, err_str(r));
    return r;
}

int delfolder_run(uv_loop_t *loop, const struct config *cfg, const char *folder, bool dry_run)
{
    int r = check_account(cfg, folder);
    if (r < 0)
        return r;
    struct del d = {
        .loop = loop, .cfg = cfg, .acct = &cfg->accounts[0], .dry_run = dry_run, .view = folder};
    char err[512] = "";
    /* Names reach imap_conn as UTF-8; typed as the server lists them
     * (modified UTF-7) unless utf8foldernames, as account.c reads LIST. */
    if (d.acct->utf8foldernames || imap_utf7_decode(folder, strlen(folder), &d.utf8) < 0)
        d.utf8 = strdup(folder);
    if (!d.utf8)
        return -ENOMEM;
    if ((r = open_status(&d)) < 0)
        goto out;
    if ((r = imap_conn_config_new(d.acct->remote, &d.icfg, err, sizeof err)) < 0) {
        log_error("Account %s: %s", d.acct->name, err[0] ? err : err_str(r));
        goto out;
    }
    r = imap_conn_open(loop, d.icfg, &handlers, on_open, &d, &d.conn);
    if (r < 0) {
        log_error("Account %s: cannot connect to %s: %s", d.acct->name,
                  d.acct->remote->remotehost ? d.acct->remote->remotehost : "the server",
                  err_str(r));
        goto out;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    r = d.rc;
out:
    imap_conn_close(&d.conn);
    uv_run(loop, UV_RUN_DEFAULT);
    status_close(&d.st);
    imap_conn_config_free(&d.icfg);
    free(d.utf8);
    free(d.local_path);
    free(d.ids);
    return r;
}
