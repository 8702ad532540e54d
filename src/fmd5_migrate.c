/* fmd5_migrate.c - `oimap --migrate-fmd5-using-nametrans` (behaviour:
 * include/fmd5_migrate.h).
 *
 * The folders are found with repo_maildir_list (the walk a sync does); the
 * renames run on the loop thread, which has nothing else to do in this
 * command.  Each rename is atomic and never replaces a file; the name
 * changes in its 32 FMD5 digits only.  A crash half-way leaves some files
 * renamed and some not: running the command again finishes the work.
 */
#include "fmd5_migrate.h"
#include "config.h"
#include "err.h"
#include "folder.h"
#include "log.h"
#include "maildir_name.h"
#include "repo_maildir.h"
#include "status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct counts {
    size_t renamed, current, foreign, failed;
};

/* One folder's two names' hashes and where its files are. */
struct mfolder {
    const char *account, *path; /* path: localfolders/<name on disk> */
    char old_md5[MAILDIR_FMD5_LEN + 1], new_md5[MAILDIR_FMD5_LEN + 1];
    char infosep;
    bool dry_run, fsync;
};

/* Rename without replacing: link + unlink where RENAME_NOREPLACE is
 * missing (a same-named file is another message). */
static int rename_noreplace(int dfd, const char *from, const char *to)
{
    if (renameat2(dfd, from, dfd, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
        return -errno;
    if (linkat(dfd, from, dfd, to, 0) < 0)
        return -errno;
    return unlinkat(dfd, from, 0) < 0 ? -errno : 0;
}

/* name with its ,FMD5= digits replaced by md5 (same length), into out. */
static int swap_fmd5(const char *name, char infosep, const char *md5, char *out, size_t cap)
{
    size_t info = strcspn(name, (char[]){infosep, '\0'});
    const char *f = strstr(name, ",FMD5=");
    if (!f || (size_t)(f - name) >= info || strlen(name) >= cap)
        return OIMAP_ENAME;
    strcpy(out, name);
    memcpy(out + (f - name) + 6, md5, MAILDIR_FMD5_LEN);
    return 0;
}

/* One file of new/ or cur/ (dfd). */
static void one_file(const struct mfolder *mf, int dfd, const char *sub, const char *name,
                     struct counts *c)
{
    struct maildir_name mn;
    if (maildir_name_parse(name, mf->infosep, &mn) < 0 || !mn.has_fmd5) {
        LOG_DEBUG(LOGC_MAILDIR, "maildir: %s/%s/%s: no FMD5, left alone", mf->path, sub, name);
        return;
    }
    if (strcmp(mn.fmd5, mf->new_md5) == 0) {
        c->current++;
        return;
    }
    if (strcmp(mn.fmd5, mf->old_md5) != 0) {
        log_warn("Account %s: %s/%s/%s: FMD5 is neither %s (folder name) nor %s (nametrans'd "
                 "name): left alone",
                 mf->account, mf->path, sub, name, mf->old_md5, mf->new_md5);
        c->foreign++;
        return;
    }
    char to[MAILDIR_NAME_MAX + 1];
    int rc = swap_fmd5(name, mf->infosep, mf->new_md5, to, sizeof to);
    if (rc == 0 && !mf->dry_run)
        rc = rename_noreplace(dfd, name, to);
    if (rc < 0) {
        log_error("Account %s: cannot rename %s/%s/%s to %s: %s", mf->account, mf->path, sub, name,
                  to, err_str(rc));
        c->failed++;
        return;
    }
    log_info("Account %s: %s/%s/%s: FMD5 %s -> %s%s", mf->account, mf->path, sub, name, mf->old_md5,
             mf->new_md5, mf->dry_run ? " (dry run: not renamed)" : "");
    c->renamed++;
}

/* The names are read first, then renamed: renaming while readdir() runs
 * could show a file twice. */
static int read_names(int dfd, char ***names_r, size_t *n_r)
{
    *names_r = NULL;
    *n_r = 0;
    int fd = dup(dfd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        int rc = -errno;
        if (fd >= 0)
            close(fd);
        return rc;
    }
    char **v = NULL;
    size_t n = 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char **nv = realloc(v, (n + 1) * sizeof *v);
        if (!nv || !(nv[n] = strdup(de->d_name))) {
            v = nv ? nv : v;
            rc = -ENOMEM;
            break;
        }
        v = nv;
        n++;
    }
    closedir(d);
    *names_r = v;
    *n_r = n;
    return rc;
}

static int one_subdir(const struct mfolder *mf, const char *sub, struct counts *c)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/%s", mf->path, sub);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        int rc = -errno;
        log_error("Account %s: cannot read %s: %s", mf->account, dir, err_str(rc));
        return rc;
    }
    char **names;
    size_t n;
    int rc = read_names(dfd, &names, &n);
    if (rc < 0)
        log_error("Account %s: cannot read %s: %s", mf->account, dir, err_str(rc));
    size_t before = c->renamed;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            one_file(mf, dfd, sub, names[i], c);
        free(names[i]);
    }
    free(names);
    /* The renames are durable once the directory is (SYNC-SAFETY.md). */
    if (rc == 0 && mf->fsync && !mf->dry_run && c->renamed > before && fsync(dfd) < 0) {
        rc = -errno;
        log_error("Account %s: fsync %s: %s", mf->account, dir, err_str(rc));
    }
    close(dfd);
    return rc;
}

/* ---- accounts ------------------------------------------------------------- */

struct listing {
    int st;
    bool done;
    struct repo_maildir_folder_list *list;
};

static void on_list(int st, struct repo_maildir_folder_list *list, void *arg)
{
    struct listing *l = arg;
    l->st = st;
    l->list = list;
    l->done = true;
}

static int list_folders(uv_loop_t *loop, const struct config *cfg, const struct config_account *a,
                        struct repo_maildir_folder_list **list_r)
{
    struct repo_maildir_opts mo = {
        .root = a->local->localfolders,
        .sep = a->local->sep,
        .windows_compat = a->maildir_windows_compatible,
        .fsync = cfg->general.fsync,
        .no_create = true,
    };
    struct repo_maildir *md;
    int rc = repo_maildir_new(loop, &mo, &md);
    struct listing l = {0};
    if (rc == 0 && (rc = repo_maildir_list(md, on_list, &l)) == 0) {
        while (!l.done && uv_run(loop, UV_RUN_ONCE))
            ;
        rc = l.done ? l.st : -EIO;
    }
    if (md)
        repo_maildir_free(&md); /* nothing pending: freed now */
    *list_r = l.list;
    return rc;
}

static int one_folder(const struct config *cfg, const struct config_account *a,
                      const struct folder_trans *t, const char *local, bool dry_run,
                      struct counts *c)
{
    const char *sep = a->local->sep && *a->local->sep ? a->local->sep : ".";
    char *vis = folder_trans_apply(t, local);
    if (!vis)
        return OIMAP_ECONFIG; /* logged */
    if (strcmp(vis, sep) == 0)
        vis[0] = '\0'; /* offlineimap's top-level folder */
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s%s%s", a->local->localfolders, *local ? "/" : "", local);
    struct mfolder mf = {
        .account = a->name,
        .path = path,
        .infosep = a->maildir_windows_compatible ? '!' : ':',
        .dry_run = dry_run,
        .fsync = cfg->general.fsync,
    };
    maildir_name_fmd5(local, mf.old_md5);
    maildir_name_fmd5(vis, mf.new_md5);
    LOG_DEBUG(LOGC_MAILDIR, "maildir: migrate-fmd5: folder '%s' (nametrans'd '%s'): %s -> %s",
              local, vis, mf.old_md5, mf.new_md5);
    free(vis);
    if (n < 0 || (size_t)n >= sizeof path)
        return -ENAMETOOLONG;
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        int r = one_subdir(&mf, i ? "cur" : "new", c);
        rc = rc ? rc : r;
    }
    return rc;
}

static int one_account(uv_loop_t *loop, const struct config *cfg, const struct config_account *a,
                       bool dry_run)
{
    const struct config_repo *lr = a->local;
    if (lr->type != CONFIG_REPO_MAILDIR && lr->type != CONFIG_REPO_GMAILMAILDIR) {
        log_info("Account %s: local repository %s is not a Maildir: nothing to migrate", a->name,
                 lr->name);
        return 0;
    }
    char where[512];
    snprintf(where, sizeof where, "%s:%d: [%s] nametrans", cfg->path, lr->nametrans.line,
             lr->section);
    struct folder_trans *t;
    int rc = folder_trans_new(&lr->nametrans, where, &t);
    if (rc < 0)
        return rc;
    /* The account lock (shared): no sync of it renames files meanwhile. */
    struct status *st = NULL;
    rc = status_open(cfg->general.metadata, a->name, true, &st);
    if (rc < 0) {
        log_error("Account %s: %s", a->name,
                  rc == OIMAP_ELOCKED ? "another oimap is syncing this account: try again later"
                                      : err_str(rc));
        folder_trans_free(&t);
        return rc;
    }
    struct repo_maildir_folder_list *list = NULL;
    rc = access(lr->localfolders, F_OK) < 0 ? -errno : list_folders(loop, cfg, a, &list);
    if (rc == -ENOENT) {
        log_info("Account %s: %s does not exist: nothing to migrate", a->name, lr->localfolders);
        rc = 0;
    } else if (rc < 0) {
        log_error("Account %s: cannot list the folders of %s: %s", a->name, lr->localfolders,
                  err_str(rc));
    }
    struct counts c = {0};
    for (size_t i = 0; list && i < list->n; i++) {
        int r = one_folder(cfg, a, t, list->v[i].local, dry_run, &c);
        rc = rc ? rc : r;
    }
    log_info("Account %s: %zu files %s the FMD5 of their folder's nametrans'd name, %zu had it "
             "already, %zu with another FMD5 left alone%s",
             a->name, c.renamed, dry_run ? "would be renamed to" : "renamed to", c.current,
             c.foreign, c.failed ? ", some could not be renamed" : "");
    if (list)
        repo_maildir_folder_list_free(&list);
    if (rc == 0 && c.failed)
        rc = -EIO;
    status_close(&st);
    folder_trans_free(&t);
    return rc;
}

int fmd5_migrate_run(uv_loop_t *loop, const struct config *cfg, bool dry_run)
{
    int rc = 0;
    for (size_t i = 0; i < cfg->n_accounts; i++) {
        int r = one_account(loop, cfg, &cfg->accounts[i], dry_run);
        rc = rc ? rc : r;
    }
    return rc;
}
