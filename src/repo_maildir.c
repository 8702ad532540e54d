/* repo_maildir.c - the Maildir repository (see repo_maildir.h).
 *
 * Threading: every job has a work function (threadpool: file system calls,
 * touches only the job's own data and immutable folder fields) and a done
 * function (loop thread: callbacks, logging, bookkeeping).  Jobs go through
 * one FIFO per repository so that at most max_jobs run at once; a writer or
 * reader has at most one job of its own in flight, which keeps its chunks in
 * order.
 */
#include "repo_maildir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

#define CHUNK_SIZE (256u * 1024u)
#define HIGH_WATER (4u * CHUNK_SIZE)
/* All writers of a repository together: above REPO_HIGH_WATER every write
 * asks its producer to pause, and producers resume below REPO_LOW_WATER.
 * This, not the network, bounds the memory of a download: data leaves our
 * buffers as soon as write() put it in the page cache. */
#define REPO_HIGH_WATER (1024u * 1024u)
#define REPO_LOW_WATER (256u * 1024u)
#define FIRST_CHUNK (16u * 1024u) /* most messages are small */
#define DEFAULT_JOBS 8u
#define MAX_DEPTH 64
#define MAX_STRAY_LOG 20
#define NAMEBUF (MAILDIR_NAME_MAX + 1)

#define container_of(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))

struct job {
    uv_work_t req;
    struct job *next;
    struct repo_maildir *md;
    void (*work)(struct job *);
    void (*done)(struct job *);
};

struct repo_maildir {
    uv_loop_t *loop;
    char *root;
    char *sep;
    char infosep;
    bool fsync;
    bool batch_syncfs;
    bool no_create; /* --dry-run: a missing root is an empty list */
    unsigned max_jobs;
    unsigned inflight;
    size_t queued;
    struct job *qhead, *qtail;
    unsigned refs;     /* the user's, plus one per folder handle */
    unsigned dispatch; /* > 0 while a done function runs: no destroy then */
    size_t pushed;     /* bytes of writer chunks handed to the pool: sure to drain */
    struct repo_maildir_writer *waiters; /* writers whose producer paused */
};

struct repo_maildir_folder {
    struct repo_maildir *md;
    unsigned refs; /* the user's, plus one per job */
    char *name, *local, *path;
    char fmd5[MAILDIR_FMD5_LEN + 1];
    int dfd, tmpfd, newfd, curfd;
};

/* ---- the job queue ---------------------------------------------------------- */

static void md_maybe_destroy(struct repo_maildir *md)
{
    if (md->refs || md->inflight || md->qhead || md->dispatch)
        return;
    free(md->root);
    free(md->sep);
    free(md);
}

static void on_work(uv_work_t *req)
{
    struct job *j = container_of(req, struct job, req);
    j->work(j);
}

static void job_start(struct repo_maildir *md, struct job *j);

static void pump(struct repo_maildir *md)
{
    while (md->qhead && md->inflight < md->max_jobs) {
        struct job *j = md->qhead;
        md->qhead = j->next;
        if (!md->qhead)
            md->qtail = NULL;
        md->queued--;
        job_start(md, j);
    }
}

static void drain_check(struct repo_maildir *md);

static void on_after_work(uv_work_t *req, int status)
{
    (void)status; /* we never uv_cancel(), so always 0 */
    struct job *j = container_of(req, struct job, req);
    struct repo_maildir *md = j->md;
    md->inflight--;
    md->dispatch++;
    j->done(j); /* may free j, submit jobs, release md */
    pump(md);
    /* After every job, whatever its kind or outcome (a writer's last job
     * frees the writer without returning here through writer_done's end). */
    drain_check(md);
    md->dispatch--;
    md_maybe_destroy(md);
}

static void job_start(struct repo_maildir *md, struct job *j)
{
    md->inflight++;
    int rc = uv_queue_work(md->loop, &j->req, on_work, on_after_work);
    if (rc < 0)
        abort(); /* only fails for a NULL work_cb */
}

static void job_submit(struct repo_maildir *md, struct job *j, void (*work)(struct job *),
                       void (*done)(struct job *))
{
    j->md = md;
    j->work = work;
    j->done = done;
    j->next = NULL;
    if (md->inflight < md->max_jobs && !md->qhead) {
        job_start(md, j);
        return;
    }
    if (md->qtail)
        md->qtail->next = j;
    else
        md->qhead = j;
    md->qtail = j;
    md->queued++;
}

size_t repo_maildir_pending(const struct repo_maildir *md)
{
    return md->inflight + md->queued;
}

/* ---- repository and folder handles ---------------------------------------- */

int repo_maildir_new(uv_loop_t *loop, const struct repo_maildir_opts *o, struct repo_maildir **md_r)
{
    *md_r = NULL;
    const char *sep = o->sep ? o->sep : ".";
    if (!o->root || !o->root[0] || !sep[0] || (strcmp(sep, "/") != 0 && strchr(sep, '/')))
        return OIMAP_ENAME;
    struct repo_maildir *md = calloc(1, sizeof(*md));
    if (!md)
        return -ENOMEM;
    md->loop = loop;
    md->root = strdup(o->root);
    md->sep = strdup(sep);
    if (!md->root || !md->sep) {
        free(md->root);
        free(md->sep);
        free(md);
        return -ENOMEM;
    }
    /* A trailing '/' on localfolders would double in every path. */
    size_t rl = strlen(md->root);
    while (rl > 1 && md->root[rl - 1] == '/')
        md->root[--rl] = '\0';
    md->infosep = o->windows_compat ? '!' : ':';
    md->fsync = o->fsync;
    md->batch_syncfs = o->batch_syncfs;
    md->no_create = o->no_create;
    md->max_jobs = o->max_jobs ? o->max_jobs : DEFAULT_JOBS;
    md->refs = 1;
    *md_r = md;
    return 0;
}

void repo_maildir_free(struct repo_maildir **mdp)
{
    struct repo_maildir *md = *mdp;
    if (!md)
        return;
    *mdp = NULL;
    md->refs--;
    md_maybe_destroy(md);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void folder_unref(struct repo_maildir_folder *f)
{
    if (--f->refs)
        return;
    /* close() of directory descriptors does not block: done on the loop. */
    close_fd(&f->dfd);
    close_fd(&f->tmpfd);
    close_fd(&f->newfd);
    close_fd(&f->curfd);
    struct repo_maildir *md = f->md;
    free(f->name);
    free(f->local);
    free(f->path);
    free(f);
    md->refs--;
    md_maybe_destroy(md);
}

void repo_maildir_folder_free(struct repo_maildir_folder **fp)
{
    if (*fp)
        folder_unref(*fp);
    *fp = NULL;
}

const char *repo_maildir_folder_name(const struct repo_maildir_folder *f)
{
    return f->name;
}

const char *repo_maildir_folder_local(const struct repo_maildir_folder *f)
{
    return f->local;
}

const char *repo_maildir_folder_path(const struct repo_maildir_folder *f)
{
    return f->path;
}

const char *repo_maildir_folder_fmd5(const struct repo_maildir_folder *f)
{
    return f->fmd5;
}

void repo_maildir_folder_set_fmd5_name(struct repo_maildir_folder *f, const char *visible)
{
    /* Jobs read fmd5 from the pool: callers set this before starting any. */
    maildir_name_fmd5(visible, f->fmd5);
}

static int subfd(const struct repo_maildir_folder *f, bool in_new)
{
    return in_new ? f->newfd : f->curfd;
}

static const char *subname(bool in_new)
{
    return in_new ? "new" : "cur";
}

/* ---- helpers run in the threadpool ---------------------------------------- */

static int mkdir_p(char *path)
{
    /* Create each missing level; an existing non-directory is an error. */
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        int rc = mkdir(path, 0700);
        int e = errno;
        *p = c;
        if (rc < 0 && e != EEXIST)
            return -e;
        if (c == '\0')
            break;
    }
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int do_fsync(int fd)
{
    return fsync(fd) < 0 ? -errno : 0;
}

/* Rename without ever replacing an existing file (rename(2) would silently
 * drop the other message).  Falls back to link+unlink where the file system
 * lacks RENAME_NOREPLACE. */
static int rename_noreplace(int sfd, const char *s, int dfd, const char *d)
{
    if (renameat2(sfd, s, dfd, d, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
        return -errno;
    if (linkat(sfd, s, dfd, d, 0) < 0)
        return -errno;
    if (unlinkat(sfd, s, 0) < 0)
        return -errno;
    return 0;
}

static bool same_unique(const char *a, const char *b, char infosep)
{
    size_t la = strcspn(a, ","), lb = strcspn(b, ",");
    const char *ia = memchr(a, infosep, la), *ib = memchr(b, infosep, lb);
    if (ia)
        la = (size_t)(ia - a);
    if (ib)
        lb = (size_t)(ib - b);
    return la == lb && la > 0 && memcmp(a, b, la) == 0;
}

/* A mail reader may have moved or re-flagged the file since the scan: look
 * for the same unique part in new/ and cur/.  Returns 0 and updates
 * name/in_new, or -ENOENT. */
static int relocate(const struct repo_maildir_folder *f, char name[NAMEBUF], bool *in_new)
{
    for (int i = 0; i < 2; i++) {
        bool n = i == 0 ? !*in_new : *in_new;
        int fd = openat(subfd(f, n), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            continue;
        DIR *d = fdopendir(fd);
        if (!d) {
            close(fd);
            continue;
        }
        struct dirent *de;
        int found = 0;
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] != '.' && same_unique(de->d_name, name, f->md->infosep) &&
                strlen(de->d_name) < NAMEBUF) {
                strcpy(name, de->d_name);
                *in_new = n;
                found = 1;
                break;
            }
        }
        closedir(d);
        if (found)
            return 0;
    }
    return -ENOENT;
}

/* ---- listing folders --------------------------------------------------------- */

struct list_job {
    struct job j;
    int st;
    struct repo_maildir_folder_list list;
    size_t cap;
    char **bad; /* local names without a safe IMAP name */
    size_t nbad;
    repo_maildir_list_cb cb;
    void *arg;
};

static bool is_maildir_at(const char *path)
{
    static const char *subs[] = {"cur", "new", "tmp"};
    char buf[PATH_MAX];
    struct stat st;
    for (int i = 0; i < 3; i++) {
        if (snprintf(buf, sizeof(buf), "%s/%s", path, subs[i]) >= (int)sizeof(buf))
            return false;
        if (stat(buf, &st) < 0 || !S_ISDIR(st.st_mode))
            return false;
    }
    return true;
}

static int list_add(struct list_job *lj, const struct repo_maildir *md, const char *local)
{
    char imap[PATH_MAX];
    if (maildir_name_folder_from_local(imap, sizeof(imap), local, md->sep) < 0) {
        char **nb = realloc(lj->bad, (lj->nbad + 1) * sizeof(*nb));
        if (!nb)
            return -ENOMEM;
        lj->bad = nb;
        if (!(lj->bad[lj->nbad] = strdup(local)))
            return -ENOMEM;
        lj->nbad++;
        return 0;
    }
    if (lj->list.n == lj->cap) {
        size_t nc = lj->cap ? 2 * lj->cap : 16;
        struct repo_maildir_folder_info *v = realloc(lj->list.v, nc * sizeof(*v));
        if (!v)
            return -ENOMEM;
        lj->list.v = v;
        lj->cap = nc;
    }
    struct repo_maildir_folder_info *fi = &lj->list.v[lj->list.n];
    fi->name = strdup(imap);
    fi->local = strdup(local);
    if (!fi->name || !fi->local) {
        free(fi->name);
        free(fi->local);
        return -ENOMEM;
    }
    lj->list.n++;
    return 0;
}

static int list_walk(struct list_job *lj, const struct repo_maildir *md, const char *rel, int depth)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s%s%s", md->root, rel[0] ? "/" : "", rel) >=
        (int)sizeof(path))
        return 0;
    DIR *d = opendir(path);
    if (!d)
        return depth == 0 ? -errno : 0;
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        const char *dn = de->d_name;
        if (!strcmp(dn, ".") || !strcmp(dn, "..") || !strcmp(dn, "cur") || !strcmp(dn, "new") ||
            !strcmp(dn, "tmp"))
            continue;
        char child[PATH_MAX], crel[PATH_MAX];
        struct stat st;
        if (snprintf(child, sizeof(child), "%s/%s", path, dn) >= (int)sizeof(child) ||
            snprintf(crel, sizeof(crel), "%s%s%s", rel, rel[0] ? "/" : "", dn) >= (int)sizeof(crel))
            continue;
        if (stat(child, &st) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (is_maildir_at(child))
            rc = list_add(lj, md, crel);
        /* Nested layout: sub-folders live inside their parents. */
        if (rc == 0 && strcmp(md->sep, "/") == 0 && depth < MAX_DEPTH)
            rc = list_walk(lj, md, crel, depth + 1);
    }
    closedir(d);
    return rc;
}

static int cmp_folder(const void *a, const void *b)
{
    return strcmp(((const struct repo_maildir_folder_info *)a)->name,
                  ((const struct repo_maildir_folder_info *)b)->name);
}

static void list_work(struct job *j)
{
    struct list_job *lj = container_of(j, struct list_job, j);
    struct repo_maildir *md = j->md;
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s", md->root);
    /* offlineimap creates localfolders when it is missing (not in a dry run:
     * then a missing root lists no folder). */
    if (md->no_create) {
        struct stat sb;
        if (stat(root, &sb) < 0) {
            lj->st = errno == ENOENT ? 0 : -errno;
            return;
        }
    } else {
        lj->st = mkdir_p(root);
    }
    if (lj->st == 0 && is_maildir_at(md->root))
        lj->st = list_add(lj, md, "");
    if (lj->st == 0)
        lj->st = list_walk(lj, md, "", 0);
    if (lj->st == 0 && lj->list.n)
        qsort(lj->list.v, lj->list.n, sizeof(*lj->list.v), cmp_folder);
}

void repo_maildir_folder_list_free(struct repo_maildir_folder_list **lp)
{
    struct repo_maildir_folder_list *l = *lp;
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].name);
        free(l->v[i].local);
    }
    free(l->v);
    free(l);
    *lp = NULL;
}

static void list_done(struct job *j)
{
    struct list_job *lj = container_of(j, struct list_job, j);
    struct repo_maildir *md = j->md;
    for (size_t i = 0; i < lj->nbad; i++) {
        log_warn("maildir %s: folder '%s' has no safe IMAP name with sep '%s'; skipped", md->root,
                 lj->bad[i], md->sep);
        free(lj->bad[i]);
    }
    free(lj->bad);
    struct repo_maildir_folder_list *l = malloc(sizeof(*l));
    if (l)
        *l = lj->list;
    else if (lj->st >= 0)
        lj->st = -ENOMEM;
    if (lj->st < 0) {
        log_error("maildir %s: cannot list folders: %s", md->root, err_str(lj->st));
        if (l)
            repo_maildir_folder_list_free(&l);
        else {
            for (size_t i = 0; i < lj->list.n; i++) {
                free(lj->list.v[i].name);
                free(lj->list.v[i].local);
            }
            free(lj->list.v);
        }
        lj->cb(lj->st, NULL, lj->arg);
    } else {
        LOG_DEBUG(LOGC_MAILDIR, "maildir %s: %zu folders", md->root, l->n);
        for (size_t i = 0; i < l->n; i++)
            LOG_DEBUG(LOGC_MAILDIR, "maildir %s: folder '%s' (%s)", md->root, l->v[i].name,
                      l->v[i].local);
        lj->cb(0, l, lj->arg);
    }
    free(lj);
}

int repo_maildir_list(struct repo_maildir *md, repo_maildir_list_cb cb, void *arg)
{
    struct list_job *lj = calloc(1, sizeof(*lj));
    if (!lj)
        return -ENOMEM;
    lj->cb = cb;
    lj->arg = arg;
    job_submit(md, &lj->j, list_work, list_done);
    return 0;
}

/* ---- opening a folder --------------------------------------------------------- */

struct open_job {
    struct job j;
    int st;
    bool create;
    struct repo_maildir_folder *f;
    repo_maildir_open_cb cb;
    void *arg;
};

static void open_work(struct job *j)
{
    struct open_job *oj = container_of(j, struct open_job, j);
    struct repo_maildir_folder *f = oj->f;
    static const char *subs[] = {"tmp", "new", "cur"};
    int *fds[] = {&f->tmpfd, &f->newfd, &f->curfd};
    if (oj->create) {
        if ((oj->st = mkdir_p(f->path)) < 0)
            return;
        for (int i = 0; i < 3; i++) {
            char p[PATH_MAX];
            snprintf(p, sizeof(p), "%s/%s", f->path, subs[i]);
            if (mkdir(p, 0700) < 0 && errno != EEXIST) {
                oj->st = -errno;
                return;
            }
        }
    }
    f->dfd = open(f->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->dfd < 0) {
        oj->st = -errno;
        return;
    }
    for (int i = 0; i < 3; i++) {
        *fds[i] = openat(f->dfd, subs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (*fds[i] < 0) {
            oj->st = errno == ENOTDIR ? -ENOENT : -errno;
            return;
        }
    }
    /* New directories must survive a crash before anything is put in them. */
    if (oj->create && j->md->fsync)
        oj->st = do_fsync(f->dfd);
}

static void open_done(struct job *j)
{
    struct open_job *oj = container_of(j, struct open_job, j);
    struct repo_maildir_folder *f = oj->f;
    if (oj->st < 0) {
        if (oj->st != -ENOENT || oj->create)
            log_error("maildir: cannot open folder '%s' (%s): %s", f->name, f->path,
                      err_str(oj->st));
        LOG_DEBUG(LOGC_MAILDIR, "maildir: open '%s' failed: %s", f->name, err_str(oj->st));
        folder_unref(f); /* md outlives this: we are inside a dispatch */
        f = NULL;
    } else {
        LOG_DEBUG(LOGC_MAILDIR, "maildir: opened '%s' at %s (fmd5 %s)", f->name, f->path, f->fmd5);
    }
    oj->cb(oj->st, f, oj->arg);
    free(oj);
}

int repo_maildir_open(struct repo_maildir *md, const char *name, unsigned flags,
                      repo_maildir_open_cb cb, void *arg)
{
    char local[PATH_MAX];
    int rc = maildir_name_folder_to_local(local, sizeof(local), name, md->sep);
    if (rc < 0) {
        log_error("maildir: refusing unsafe folder name '%s': %s", name, err_str(rc));
        return rc == -ENAMETOOLONG ? OIMAP_ENAME : rc;
    }
    struct open_job *oj = calloc(1, sizeof(*oj));
    struct repo_maildir_folder *f = calloc(1, sizeof(*f));
    if (!oj || !f) {
        free(oj);
        free(f);
        return -ENOMEM;
    }
    f->name = strdup(name);
    f->local = strdup(local);
    size_t pl = strlen(md->root) + strlen(local) + 2;
    f->path = malloc(pl);
    if (!f->name || !f->local || !f->path) {
        free(f->name);
        free(f->local);
        free(f->path);
        free(f);
        free(oj);
        return -ENOMEM;
    }
    snprintf(f->path, pl, "%s%s%s", md->root, local[0] ? "/" : "", local);
    maildir_name_fmd5(local, f->fmd5);
    f->md = md;
    f->refs = 1;
    f->dfd = f->tmpfd = f->newfd = f->curfd = -1;
    md->refs++;
    oj->f = f;
    oj->create = flags & REPO_MAILDIR_CREATE;
    oj->cb = cb;
    oj->arg = arg;
    job_submit(md, &oj->j, open_work, open_done);
    return 0;
}

/* ---- scanning ----------------------------------------------------------------- */

struct scan_job {
    struct job j;
    struct repo_maildir_folder *f;
    unsigned flags;
    int st;
    struct repo_maildir_listing *l;
    size_t cap;
    char **stray;
    size_t nstray_names;
    repo_maildir_scan_cb cb;
    void *arg;
};

static void note_stray(struct scan_job *sj, bool in_new, const char *name)
{
    sj->l->n_stray++;
    if (sj->nstray_names >= MAX_STRAY_LOG)
        return;
    char **v = realloc(sj->stray, (sj->nstray_names + 1) * sizeof(*v));
    if (!v)
        return;
    sj->stray = v;
    size_t len = strlen(name) + 5;
    if ((v[sj->nstray_names] = malloc(len)) != NULL) {
        snprintf(v[sj->nstray_names], len, "%s/%s", subname(in_new), name);
        sj->nstray_names++;
    }
}

static int scan_dir(struct scan_job *sj, bool in_new)
{
    const struct repo_maildir_folder *f = sj->f;
    int fd = openat(subfd(f, in_new), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = -errno;
        close(fd);
        return e;
    }
    struct repo_maildir_listing *l = sj->l;
    struct dirent *de;
    int rc = 0;
    for (;;) {
        errno = 0;
        if (!(de = readdir(d))) {
            rc = errno ? -errno : 0;
            break;
        }
        const char *dn = de->d_name;
        if (dn[0] == '.')
            continue; /* ".", "..", and dot files, which offlineimap ignores too */
        struct maildir_name mn;
        if (de->d_type == DT_DIR || maildir_name_parse(dn, f->md->infosep, &mn) < 0) {
            note_stray(sj, in_new, dn);
            continue;
        }
        if (l->n == sj->cap) {
            size_t nc = sj->cap ? 2 * sj->cap : 256;
            struct repo_maildir_entry *v = realloc(l->v, nc * sizeof(*v));
            if (!v) {
                rc = -ENOMEM;
                break;
            }
            l->v = v;
            sj->cap = nc;
        }
        struct repo_maildir_entry *e = &l->v[l->n];
        memset(e, 0, sizeof(*e));
        if (!(e->name = strdup(dn))) {
            rc = -ENOMEM;
            break;
        }
        e->uid = mn.uid;
        e->in_new = in_new;
        e->has_fmd5 = mn.has_fmd5;
        e->fmd5_ok = mn.has_fmd5 && strcmp(mn.fmd5, f->fmd5) == 0;
        e->flags = mn.flags;
        e->has_size = mn.has_size;
        e->size = mn.size;
        if (!e->has_size && (sj->flags & REPO_MAILDIR_SCAN_SIZES)) {
            struct stat st;
            if (fstatat(fd, dn, &st, 0) == 0) {
                if (S_ISDIR(st.st_mode)) { /* d_type was DT_UNKNOWN */
                    free(e->name);
                    note_stray(sj, in_new, dn);
                    continue;
                }
                e->has_size = true;
                e->size = (uint64_t)st.st_size;
            }
        }
        l->n++;
    }
    closedir(d);
    return rc;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct repo_maildir_entry *x = a, *y = b;
    if (x->uid != y->uid)
        return x->uid < y->uid ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void scan_work(struct job *j)
{
    struct scan_job *sj = container_of(j, struct scan_job, j);
    if (!(sj->l = calloc(1, sizeof(*sj->l)))) {
        sj->st = -ENOMEM;
        return;
    }
    sj->cap = 0; /* of sj->l->v: a new listing has room for nothing yet */
    sj->st = scan_dir(sj, true);
    if (sj->st == 0)
        sj->st = scan_dir(sj, false);
    if (sj->st < 0)
        return;
    struct repo_maildir_listing *l = sj->l;
    if (l->n)
        qsort(l->v, l->n, sizeof(*l->v), cmp_entry);
    /* The UID is the identity: two files carrying one is worth a warning
     * (a copy made by hand, a crash between link and unlink); keep both. */
    for (size_t i = 1; i < l->n; i++) {
        if (l->v[i].uid && l->v[i].uid == l->v[i - 1].uid) {
            if (!l->v[i - 1].dup_uid)
                l->n_dup++;
            l->v[i - 1].dup_uid = true;
            l->v[i].dup_uid = true;
            l->n_dup++;
        }
    }
}

void repo_maildir_listing_free(struct repo_maildir_listing **lp)
{
    struct repo_maildir_listing *l = *lp;
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
    free(l);
    *lp = NULL;
}

const struct repo_maildir_entry *repo_maildir_listing_find(const struct repo_maildir_listing *l,
                                                           uint32_t uid)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->v[mid].uid < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (lo < l->n && l->v[lo].uid == uid) ? &l->v[lo] : NULL;
}

static void scan_done(struct job *j)
{
    struct scan_job *sj = container_of(j, struct scan_job, j);
    struct repo_maildir_folder *f = sj->f;
    struct repo_maildir_listing *l = sj->l;
    for (size_t i = 0; i < sj->nstray_names; i++) {
        log_warn("maildir '%s': stray file %s/%s (broken name or a directory): left in place",
                 f->name, f->path, sj->stray[i]);
        free(sj->stray[i]);
    }
    free(sj->stray);
    if (l && l->n_stray > sj->nstray_names)
        log_warn("maildir '%s': %zu more stray files", f->name, l->n_stray - sj->nstray_names);
    else if (!l && sj->st >= 0)
        sj->st = -ENOMEM; /* (scan_work sets it already when it has no listing) */
    if (sj->st < 0) {
        log_error("maildir '%s': cannot scan %s: %s", f->name, f->path, err_str(sj->st));
        repo_maildir_listing_free(&sj->l);
        l = NULL;
    } else {
        for (size_t i = 0; i < l->n; i++)
            if (l->v[i].dup_uid)
                log_warn("maildir '%s': UID %u is carried by more than one file: %s/%s", f->name,
                         l->v[i].uid, subname(l->v[i].in_new), l->v[i].name);
        LOG_DEBUG(LOGC_MAILDIR, "maildir '%s': scanned %zu messages, %zu stray, %zu duplicate UIDs",
                  f->name, l->n, l->n_stray, l->n_dup);
    }
    sj->cb(sj->st, l, sj->arg);
    folder_unref(f);
    free(sj);
}

int repo_maildir_scan(struct repo_maildir_folder *f, unsigned flags, repo_maildir_scan_cb cb,
                      void *arg)
{
    struct scan_job *sj = calloc(1, sizeof(*sj));
    if (!sj)
        return -ENOMEM;
    sj->f = f;
    sj->flags = flags;
    sj->cb = cb;
    sj->arg = arg;
    f->refs++;
    job_submit(f->md, &sj->j, scan_work, scan_done);
    return 0;
}

/* ---- rename, delete, stat, barrier ----------------------------------------------- */

enum op_kind { OP_FLAGS, OP_UID, OP_DELETE, OP_STAT, OP_BARRIER };

struct op_job {
    struct job j;
    enum op_kind kind;
    struct repo_maildir_folder *f;
    unsigned opflags;
    int st;
    bool in_new, new_in_new;
    char name[NAMEBUF], newname[NAMEBUF];
    struct maildir_flags flags;
    uint32_t uid;
    int64_t mtime;
    uint64_t size;
    repo_maildir_deliver_cb rcb;
    repo_maildir_done_cb dcb;
    repo_maildir_stat_cb scb;
    void *arg;
};

static int op_newname(struct op_job *oj)
{
    const struct repo_maildir_folder *f = oj->f;
    int rc;
    if (oj->kind == OP_FLAGS) {
        rc = maildir_name_with_flags(oj->newname, sizeof(oj->newname), oj->name, f->md->infosep,
                                     &oj->flags);
        /* Seen mail belongs in cur/; otherwise leave it where the reader put it. */
        oj->new_in_new = oj->in_new && !(oj->flags.std & MAILDIR_FLAG_S);
    } else {
        rc = maildir_name_with_uid(oj->newname, sizeof(oj->newname), oj->name, f->md->infosep,
                                   oj->uid, f->fmd5);
        oj->new_in_new = oj->in_new;
    }
    return rc < 0 ? rc : 0;
}

static int op_sync_dirs(struct op_job *oj, bool a_new, bool b_new)
{
    if (!oj->f->md->fsync || (oj->opflags & REPO_MAILDIR_NOSYNC))
        return 0;
    int rc = do_fsync(subfd(oj->f, a_new));
    if (rc == 0 && a_new != b_new)
        rc = do_fsync(subfd(oj->f, b_new));
    return rc;
}

static void op_work(struct job *j)
{
    struct op_job *oj = container_of(j, struct op_job, j);
    const struct repo_maildir_folder *f = oj->f;
    struct stat st;
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = 0;
        switch (oj->kind) {
        case OP_FLAGS:
        case OP_UID:
            if ((rc = op_newname(oj)) < 0) {
                oj->st = rc;
                return;
            }
            if (oj->in_new == oj->new_in_new && !strcmp(oj->name, oj->newname)) {
                oj->st = 0; /* nothing to change */
                return;
            }
            rc = rename_noreplace(subfd(f, oj->in_new), oj->name, subfd(f, oj->new_in_new),
                                  oj->newname);
            if (rc == 0) {
                oj->st = op_sync_dirs(oj, oj->new_in_new, oj->in_new);
                return;
            }
            break;
        case OP_DELETE:
            if (unlinkat(subfd(f, oj->in_new), oj->name, 0) < 0)
                rc = -errno;
            else {
                oj->st = op_sync_dirs(oj, oj->in_new, oj->in_new);
                return;
            }
            break;
        case OP_STAT:
            if (fstatat(subfd(f, oj->in_new), oj->name, &st, 0) < 0)
                rc = -errno;
            else {
                oj->mtime = (int64_t)st.st_mtime;
                oj->size = (uint64_t)st.st_size;
                oj->st = 0;
                return;
            }
            break;
        case OP_BARRIER:
            oj->st = 0;
            if (f->md->fsync) {
                oj->st = do_fsync(f->newfd);
                if (oj->st == 0)
                    oj->st = do_fsync(f->curfd);
            }
            return;
        }
        oj->st = rc;
        if (rc != -ENOENT || attempt > 0 || relocate(f, oj->name, &oj->in_new) < 0)
            return;
    }
}

static void op_done(struct job *j)
{
    struct op_job *oj = container_of(j, struct op_job, j);
    struct repo_maildir_folder *f = oj->f;
    static const char *what[] = {"set flags", "set UID", "delete", "stat", "barrier"};
    if (oj->st < 0 && !(oj->kind == OP_DELETE && oj->st == -ENOENT))
        log_warn("maildir '%s': %s %s/%s: %s", f->name, what[oj->kind], subname(oj->in_new),
                 oj->name, err_str(oj->st));
    switch (oj->kind) {
    case OP_FLAGS:
    case OP_UID:
        LOG_DEBUG(LOGC_MAILDIR, "maildir '%s': %s %s/%s -> %s/%s: %s", f->name, what[oj->kind],
                  subname(oj->in_new), oj->name, subname(oj->new_in_new), oj->newname,
                  err_str(oj->st));
        oj->rcb(oj->st, oj->st < 0 ? NULL : oj->newname, oj->new_in_new, oj->arg);
        break;
    case OP_DELETE:
    case OP_BARRIER:
        LOG_DEBUG(LOGC_MAILDIR, "maildir '%s': %s %s%s%s: %s", f->name, what[oj->kind],
                  oj->kind == OP_DELETE ? subname(oj->in_new) : "",
                  oj->kind == OP_DELETE ? "/" : "", oj->name, err_str(oj->st));
        oj->dcb(oj->st, oj->arg);
        break;
    case OP_STAT:
        LOG_DEBUG(LOGC_MAILDIR, "maildir '%s': stat %s/%s: %s", f->name, subname(oj->in_new),
                  oj->name, err_str(oj->st));
        oj->scb(oj->st, oj->mtime, oj->size, oj->arg);
        break;
    }
    folder_unref(f);
    free(oj);
}

static int op_start(struct repo_maildir_folder *f, enum op_kind kind, bool in_new, const char *name,
                    struct op_job **oj_r)
{
    if (name && (strlen(name) >= NAMEBUF || !name[0] || strchr(name, '/') || name[0] == '.'))
        return OIMAP_ENAME;
    struct op_job *oj = calloc(1, sizeof(*oj));
    if (!oj)
        return -ENOMEM;
    oj->kind = kind;
    oj->f = f;
    oj->in_new = in_new;
    if (name)
        strcpy(oj->name, name);
    *oj_r = oj;
    return 0;
}

static void op_submit(struct op_job *oj)
{
    oj->f->refs++;
    job_submit(oj->f->md, &oj->j, op_work, op_done);
}

int repo_maildir_set_flags(struct repo_maildir_folder *f, bool in_new, const char *name,
                           const struct maildir_flags *flags, unsigned opflags,
                           repo_maildir_deliver_cb cb, void *arg)
{
    struct op_job *oj;
    int rc = op_start(f, OP_FLAGS, in_new, name, &oj);
    if (rc < 0)
        return rc;
    oj->flags = *flags;
    oj->opflags = opflags;
    oj->rcb = cb;
    oj->arg = arg;
    op_submit(oj);
    return 0;
}

int repo_maildir_set_uid(struct repo_maildir_folder *f, bool in_new, const char *name, uint32_t uid,
                         unsigned opflags, repo_maildir_deliver_cb cb, void *arg)
{
    if (uid == 0)
        return OIMAP_ENAME;
    struct op_job *oj;
    int rc = op_start(f, OP_UID, in_new, name, &oj);
    if (rc < 0)
        return rc;
    oj->uid = uid;
    oj->opflags = opflags;
    oj->rcb = cb;
    oj->arg = arg;
    op_submit(oj);
    return 0;
}

int repo_maildir_delete(struct repo_maildir_folder *f, bool in_new, const char *name,
                        unsigned opflags, repo_maildir_done_cb cb, void *arg)
{
    struct op_job *oj;
    int rc = op_start(f, OP_DELETE, in_new, name, &oj);
    if (rc < 0)
        return rc;
    oj->opflags = opflags;
    oj->dcb = cb;
    oj->arg = arg;
    op_submit(oj);
    return 0;
}

int repo_maildir_barrier(struct repo_maildir_folder *f, repo_maildir_done_cb cb, void *arg)
{
    struct op_job *oj;
    int rc = op_start(f, OP_BARRIER, false, NULL, &oj);
    if (rc < 0)
        return rc;
    oj->dcb = cb;
    oj->arg = arg;
    op_submit(oj);
    return 0;
}

int repo_maildir_stat(struct repo_maildir_folder *f, bool in_new, const char *name,
                      repo_maildir_stat_cb cb, void *arg)
{
    struct op_job *oj;
    int rc = op_start(f, OP_STAT, in_new, name, &oj);
    if (rc < 0)
        return rc;
    oj->scb = cb;
    oj->arg = arg;
    op_submit(oj);
    return 0;
}

/* ---- delivery ------------------------------------------------------------------ */

struct chunk {
    struct chunk *next;
    size_t len, cap;
    char data[];
};

struct bitem {
    int st;
    struct repo_maildir_delivery d;
    char tmpname[NAMEBUF];
    char name[NAMEBUF];
    bool in_new;
    void *user;
};

struct repo_maildir_batch {
    struct job j;
    struct repo_maildir_folder *f;
    struct bitem *items;
    size_t n, cap;
    size_t pending; /* writers still finishing */
    bool committed;
    bool syncfs; /* one syncfs() instead of an fsync per file */
    repo_maildir_batch_cb cb;
    void *arg;
    /* A single repo_maildir_deliver_commit() is a batch of one. */
    repo_maildir_deliver_cb single_cb;
    void *single_arg;
};

struct repo_maildir_writer {
    struct job j;
    struct repo_maildir_folder *f;
    char tmpname[NAMEBUF];
    int fd;       /* owned by the work function while busy */
    bool created; /* the tmp file exists (so abort must remove it) */
    int err;
    bool busy, aborted, finishing;
    bool jabort;                 /* snapshot of aborted for the running job */
    int jerr;                    /* the running job's copy of err */
    struct chunk *cur;           /* being filled by repo_maildir_write */
    struct chunk *qhead, *qtail; /* full, waiting for the pool */
    struct chunk *jchunk;        /* the chunk the running job writes */
    bool jfinal;                 /* the running job finishes the file */
    size_t buffered;
    size_t next_cap; /* capacity of the next chunk: grows to CHUNK_SIZE */
    bool want_drain;
    struct repo_maildir_writer *wnext, **wprev; /* in md->waiters when want_drain */
    repo_maildir_drain_cb drain;
    void *drain_arg;
    struct repo_maildir_delivery d;
    struct repo_maildir_batch *batch;
    size_t idx;
    uint64_t bytes;
};

static void writer_kick(struct repo_maildir_writer *w);
static void batch_writer_done(struct repo_maildir_batch *b, size_t idx, int st);

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void writer_work(struct job *j)
{
    struct repo_maildir_writer *w = container_of(j, struct repo_maildir_writer, j);
    const struct repo_maildir_folder *f = w->f;
    if (w->jabort) {
        close_fd(&w->fd);
        if (w->created)
            unlinkat(f->tmpfd, w->tmpname, 0);
        w->created = false;
        return;
    }
    if (w->fd < 0 && w->jerr == 0) {
        /* O_EXCL: never write into someone else's file. */
        w->fd = openat(f->tmpfd, w->tmpname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (w->fd < 0)
            w->jerr = -errno;
        else
            w->created = true;
    }
    if (w->jerr == 0 && w->jchunk)
        w->jerr = write_all(w->fd, w->jchunk->data, w->jchunk->len);
    if (!w->jfinal)
        return;
    /* Finish: mtime, then the data barrier, then close.  The rename into
     * new/ or cur/ happens only after this, in the batch job. */
    if (w->jerr == 0 && w->d.mtime >= 0) {
        struct timespec ts[2] = {{.tv_sec = (time_t)w->d.mtime}, {.tv_sec = (time_t)w->d.mtime}};
        if (futimens(w->fd, ts) < 0)
            w->jerr = -errno;
    }
    if (w->jerr == 0 && f->md->fsync && !w->batch->syncfs)
        w->jerr = do_fsync(w->fd);
    if (w->fd >= 0 && close(w->fd) < 0 && w->jerr == 0)
        w->jerr = -errno;
    w->fd = -1;
    if (w->jerr < 0 && w->created) {
        unlinkat(f->tmpfd, w->tmpname, 0);
        w->created = false;
    }
}

static void waiter_remove(struct repo_maildir_writer *w)
{
    if (!w->wprev)
        return;
    *w->wprev = w->wnext;
    if (w->wnext)
        w->wnext->wprev = w->wprev;
    w->wnext = NULL;
    w->wprev = NULL;
}

static void waiter_add(struct repo_maildir_writer *w)
{
    struct repo_maildir *md = w->f->md;
    if (w->wprev)
        return;
    w->wnext = md->waiters;
    if (md->waiters)
        md->waiters->wprev = &w->wnext;
    md->waiters = w;
    w->wprev = &md->waiters;
}

/* Wake the producers of paused writers once the repository's queued data
 * has drained (and the writer's own).  Only data handed to the pool counts:
 * it is sure to drain, so a paused producer is always woken in the end; a
 * writer's partial chunk (at most CHUNK_SIZE, one per message being
 * received) is not waiting for anything. */
static void drain_check(struct repo_maildir *md)
{
    for (;;) {
        if (md->pushed >= REPO_LOW_WATER)
            return;
        struct repo_maildir_writer *w = md->waiters;
        while (w && w->buffered >= HIGH_WATER)
            w = w->wnext;
        if (!w)
            return;
        waiter_remove(w);
        w->want_drain = false;
        if (w->drain && !w->aborted)
            w->drain(w, w->drain_arg);
    }
}

/* Free a list of chunks; pushed: they were handed to the pool (counted in
 * md->pushed), not w->cur. */
static void chunks_free(struct repo_maildir_writer *w, struct chunk *c, bool pushed)
{
    while (c) {
        struct chunk *n = c->next;
        w->buffered -= c->len;
        if (pushed)
            w->f->md->pushed -= c->len;
        free(c);
        c = n;
    }
}

static void writer_destroy(struct repo_maildir_writer *w)
{
    /* A producer still paused on this writer must not wait forever: wake it
     * (early, perhaps; its next write pauses it again if need be). */
    bool wake = w->wprev && w->want_drain && w->drain && !w->aborted;
    waiter_remove(w);
    if (wake) {
        w->want_drain = false;
        w->drain(w, w->drain_arg);
    }
    chunks_free(w, w->cur, false);
    chunks_free(w, w->qhead, true);
    struct repo_maildir_folder *f = w->f;
    free(w);
    folder_unref(f);
}

static void writer_done(struct job *j)
{
    struct repo_maildir_writer *w = container_of(j, struct repo_maildir_writer, j);
    w->busy = false;
    if (!w->jabort)
        w->err = w->jerr;
    if (w->jchunk) {
        w->buffered -= w->jchunk->len;
        w->f->md->pushed -= w->jchunk->len;
        free(w->jchunk);
        w->jchunk = NULL;
    }
    if (w->aborted && !w->created && w->fd < 0) {
        LOG_DEBUG(LOGC_MAILDIR, "maildir '%s': delivery tmp/%s aborted", w->f->name, w->tmpname);
        writer_destroy(w);
        return;
    }
    if (w->jfinal && !w->aborted) {
        LOG_DEBUG(LOGC_MAILDIR, "maildir '%s': wrote tmp/%s (%llu bytes)%s: %s", w->f->name,
                  w->tmpname, (unsigned long long)w->bytes, w->f->md->fsync ? ", fsynced" : "",
                  err_str(w->err));
        struct repo_maildir_batch *b = w->batch;
        size_t idx = w->idx;
        int st = w->err;
        writer_destroy(w);
        batch_writer_done(b, idx, st);
        return;
    }
    writer_kick(w);
}

static void writer_kick(struct repo_maildir_writer *w)
{
    if (w->busy)
        return;
    if (w->aborted) {
        w->jfinal = false;
        w->jabort = true;
        w->busy = true;
        job_submit(w->f->md, &w->j, writer_work, writer_done);
        return;
    }
    if (w->qhead) {
        w->jchunk = w->qhead;
        w->qhead = w->qhead->next;
        if (!w->qhead)
            w->qtail = NULL;
        w->jchunk->next = NULL;
        w->jfinal = w->finishing && !w->qhead;
    } else if (w->finishing) {
        w->jchunk = NULL;
        w->jfinal = true;
    } else
        return;
    w->jabort = false;
    w->jerr = w->err;
    w->busy = true;
    job_submit(w->f->md, &w->j, writer_work, writer_done);
}

static void writer_push_cur(struct repo_maildir_writer *w)
{
    struct chunk *c = w->cur;
    if (!c)
        return;
    w->cur = NULL;
    if (c->len == 0) {
        free(c);
        return;
    }
    w->f->md->pushed += c->len;
    c->next = NULL;
    if (w->qtail)
        w->qtail->next = c;
    else
        w->qhead = c;
    w->qtail = c;
}

int repo_maildir_deliver_begin(struct repo_maildir_folder *f, repo_maildir_drain_cb drain,
                               void *drain_arg, struct repo_maildir_writer **w_r)
{
    *w_r = NULL;
    struct repo_maildir_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    int rc = maildir_name_unique(w->tmpname, sizeof(w->tmpname), -1);
    if (rc < 0) {
        free(w);
        return rc;
    }
    w->f = f;
    w->fd = -1;
    w->drain = drain;
    w->drain_arg = drain_arg;
    f->refs++;
    LOG_DEBUG(LOGC_MAILDIR, "maildir '%s': delivery into tmp/%s", f->name, w->tmpname);
    *w_r = w;
    return 0;
}

int repo_maildir_write(struct repo_maildir_writer *w, const void *buf, size_t len)
{
    if (w->err < 0)
        return w->err;
    const char *p = buf;
    while (len) {
        if (!w->cur) {
            size_t cap = w->next_cap ? w->next_cap : FIRST_CHUNK;
            if (!(w->cur = malloc(sizeof(struct chunk) + cap)))
                return w->err = -ENOMEM;
            w->cur->len = 0;
            w->cur->cap = cap;
            w->cur->next = NULL;
            w->next_cap = cap * 2 < CHUNK_SIZE ? cap * 2 : CHUNK_SIZE;
        }
        size_t room = w->cur->cap - w->cur->len;
        size_t n = len < room ? len : room;
        memcpy(w->cur->data + w->cur->len, p, n); /* the one copy of the data */
        w->cur->len += n;
        w->buffered += n;
        w->bytes += n;
        p += n;
        len -= n;
        if (w->cur->len == w->cur->cap) {
            writer_push_cur(w);
            writer_kick(w);
        }
    }
    if (w->buffered > HIGH_WATER || w->f->md->pushed > REPO_HIGH_WATER) {
        w->want_drain = true;
        waiter_add(w);
        return 1;
    }
    return 0;
}

void repo_maildir_deliver_abort(struct repo_maildir_writer *w)
{
    if (!w)
        return;
    w->aborted = true;
    w->finishing = false;
    waiter_remove(w);
    chunks_free(w, w->cur, false);
    chunks_free(w, w->qhead, true);
    w->cur = w->qhead = w->qtail = NULL;
    /* A running job finishes first; its done function then cleans up. */
    writer_kick(w);
}

/* ---- batches --------------------------------------------------------------------- */

int repo_maildir_batch_new(struct repo_maildir_folder *f, struct repo_maildir_batch **b_r)
{
    struct repo_maildir_batch *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->f = f;
    b->syncfs = f->md->batch_syncfs;
    f->refs++;
    *b_r = b;
    return 0;
}

int repo_maildir_batch_add(struct repo_maildir_batch *b, struct repo_maildir_writer *w,
                           const struct repo_maildir_delivery *d, void *user)
{
    if (b->committed || w->f != b->f) {
        repo_maildir_deliver_abort(w);
        return -EINVAL;
    }
    if (b->n == b->cap) {
        size_t nc = b->cap ? 2 * b->cap : 16;
        struct bitem *v = realloc(b->items, nc * sizeof(*v));
        if (!v) {
            repo_maildir_deliver_abort(w);
            return -ENOMEM;
        }
        b->items = v;
        b->cap = nc;
    }
    struct bitem *it = &b->items[b->n];
    memset(it, 0, sizeof(*it));
    it->d = *d;
    it->user = user;
    strcpy(it->tmpname, w->tmpname);
    w->batch = b;
    w->idx = b->n++;
    w->d = *d;
    b->pending++;
    w->finishing = true;
    writer_push_cur(w);
    writer_kick(w);
    return 0;
}

static void batch_work(struct job *j)
{
    struct repo_maildir_batch *b = container_of(j, struct repo_maildir_batch, j);
    const struct repo_maildir_folder *f = b->f;
    bool touched[2] = {false, false}; /* cur, new */
    if (b->syncfs && f->md->fsync) {
        int rc = syncfs(f->tmpfd) < 0 ? -errno : 0;
        for (size_t i = 0; i < b->n; i++)
            if (b->items[i].st == 0 && rc < 0) {
                b->items[i].st = rc;
                unlinkat(f->tmpfd, b->items[i].tmpname, 0);
            }
    }
    for (size_t i = 0; i < b->n; i++) {
        struct bitem *it = &b->items[i];
        if (it->st < 0)
            continue; /* its writer failed and removed the tmp file */
        /* offlineimap files unseen mail under new/, seen mail under cur/. */
        it->in_new = !(it->d.flags.std & MAILDIR_FLAG_S);
        int rc = -EEXIST;
        for (int tries = 0; tries < 8 && rc == -EEXIST; tries++) {
            char uniq[NAMEBUF];
            rc = maildir_name_unique(uniq, sizeof(uniq), it->d.name_time);
            if (rc >= 0)
                rc = maildir_name_format(it->name, sizeof(it->name), uniq, it->d.uid,
                                         it->d.uid ? f->fmd5 : NULL, f->md->infosep, &it->d.flags,
                                         true);
            if (rc >= 0)
                rc = rename_noreplace(f->tmpfd, it->tmpname, subfd(f, it->in_new), it->name);
        }
        if (rc < 0) {
            it->st = rc;
            it->name[0] = '\0';
            unlinkat(f->tmpfd, it->tmpname, 0);
            continue;
        }
        touched[it->in_new] = true;
    }
    /* One directory barrier for the whole batch, before anyone is told. */
    int dst[2] = {0, 0};
    for (int k = 0; k < 2; k++)
        if (touched[k] && f->md->fsync)
            dst[k] = do_fsync(subfd(f, k));
    for (size_t i = 0; i < b->n; i++) {
        struct bitem *it = &b->items[i];
        if (it->st == 0 && dst[it->in_new] < 0)
            it->st = dst[it->in_new]; /* renamed, but not known durable */
    }
}

static void batch_done(struct job *j)
{
    struct repo_maildir_batch *b = container_of(j, struct repo_maildir_batch, j);
    struct repo_maildir_folder *f = b->f;
    int st = 0;
    struct repo_maildir_batch_item *out = calloc(b->n ? b->n : 1, sizeof(*out));
    for (size_t i = 0; i < b->n; i++) {
        struct bitem *it = &b->items[i];
        if (it->st < 0) {
            if (st == 0)
                st = it->st;
            log_error("maildir '%s': delivery of UID %u failed: %s", f->name, it->d.uid,
                      err_str(it->st));
        } else
            LOG_DEBUG(LOGC_MAILDIR, "maildir '%s': delivered UID %u as %s/%s", f->name, it->d.uid,
                      subname(it->in_new), it->name);
        if (out)
            out[i] =
                (struct repo_maildir_batch_item){it->st, it->d.uid, it->name, it->in_new, it->user};
    }
    LOG_DEBUG(LOGC_MAILDIR, "maildir '%s': batch of %zu committed: %s", f->name, b->n, err_str(st));
    if (b->single_cb) {
        if (b->n == 1)
            b->single_cb(b->items[0].st, b->items[0].st < 0 ? NULL : b->items[0].name,
                         b->items[0].in_new, b->single_arg);
        else
            b->single_cb(st ? st : -EINVAL, NULL, false, b->single_arg);
    } else if (out)
        b->cb(st, out, b->n, b->arg);
    else
        b->cb(-ENOMEM, NULL, 0, b->arg);
    free(out);
    free(b->items);
    free(b);
    folder_unref(f);
}

static void batch_maybe_run(struct repo_maildir_batch *b)
{
    if (b->committed && b->pending == 0)
        job_submit(b->f->md, &b->j, batch_work, batch_done);
}

static void batch_writer_done(struct repo_maildir_batch *b, size_t idx, int st)
{
    b->items[idx].st = st;
    b->pending--;
    batch_maybe_run(b);
}

int repo_maildir_batch_commit(struct repo_maildir_batch *b, repo_maildir_batch_cb cb, void *arg)
{
    if (b->committed)
        return -EINVAL;
    b->committed = true;
    b->cb = cb;
    b->arg = arg;
    batch_maybe_run(b);
    return 0;
}

int repo_maildir_deliver_commit(struct repo_maildir_writer *w,
                                const struct repo_maildir_delivery *d, repo_maildir_deliver_cb cb,
                                void *arg)
{
    struct repo_maildir_batch *b;
    int rc = repo_maildir_batch_new(w->f, &b);
    if (rc < 0) {
        repo_maildir_deliver_abort(w);
        return rc;
    }
    b->single_cb = cb;
    b->single_arg = arg;
    if ((rc = repo_maildir_batch_add(b, w, d, NULL)) < 0) {
        folder_unref(b->f);
        free(b);
        return rc;
    }
    return repo_maildir_batch_commit(b, NULL, NULL);
}

/* ---- reading ----------------------------------------------------------------------- */

struct repo_maildir_reader {
    struct job j;
    struct repo_maildir_folder *f;
    char name[NAMEBUF];
    bool in_new;
    int fd;
    int st;
    bool busy, paused, closed, in_cb, eof;
    uint64_t size, off;
    size_t got;
    char *buf;
    repo_maildir_read_cb cb;
    void *arg;
};

static void reader_destroy(struct repo_maildir_reader *r)
{
    close_fd(&r->fd); /* a read-only file: close() does not block */
    struct repo_maildir_folder *f = r->f;
    free(r->buf);
    free(r);
    folder_unref(f);
}

static void reader_work(struct job *j)
{
    struct repo_maildir_reader *r = container_of(j, struct repo_maildir_reader, j);
    if (r->fd < 0) {
        r->fd = openat(subfd(r->f, r->in_new), r->name, O_RDONLY | O_CLOEXEC);
        if (r->fd < 0 && errno == ENOENT && relocate(r->f, r->name, &r->in_new) == 0)
            r->fd = openat(subfd(r->f, r->in_new), r->name, O_RDONLY | O_CLOEXEC);
        if (r->fd < 0) {
            r->st = -errno;
            return;
        }
        struct stat st;
        if (fstat(r->fd, &st) < 0) {
            r->st = -errno;
            return;
        }
        r->size = (uint64_t)st.st_size;
    }
    ssize_t n;
    do
        n = pread(r->fd, r->buf, CHUNK_SIZE, (off_t)r->off);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        r->st = -errno;
        return;
    }
    r->got = (size_t)n;
    r->off += (uint64_t)n;
    r->eof = n == 0;
}

static void reader_next(struct repo_maildir_reader *r);

static void reader_done(struct job *j)
{
    struct repo_maildir_reader *r = container_of(j, struct repo_maildir_reader, j);
    r->busy = false;
    if (r->closed) {
        reader_destroy(r);
        return;
    }
    if (r->st < 0 || r->eof) {
        if (r->st < 0)
            log_warn("maildir '%s': cannot read %s/%s: %s", r->f->name, subname(r->in_new), r->name,
                     err_str(r->st));
        LOG_DEBUG(LOGC_MAILDIR, "maildir '%s': read %s/%s: %llu bytes, %s", r->f->name,
                  subname(r->in_new), r->name, (unsigned long long)r->off, err_str(r->st));
        r->in_cb = true;
        r->cb(r, r->st, NULL, 0, r->arg);
        reader_destroy(r);
        return;
    }
    r->in_cb = true;
    r->cb(r, 0, r->buf, r->got, r->arg);
    r->in_cb = false;
    if (r->closed)
        reader_destroy(r);
    else if (!r->paused)
        reader_next(r);
}

static void reader_next(struct repo_maildir_reader *r)
{
    r->busy = true;
    job_submit(r->f->md, &r->j, reader_work, reader_done);
}

int repo_maildir_read(struct repo_maildir_folder *f, bool in_new, const char *name,
                      repo_maildir_read_cb cb, void *arg, struct repo_maildir_reader **r_r)
{
    if (r_r)
        *r_r = NULL;
    if (strlen(name) >= NAMEBUF || !name[0] || strchr(name, '/') || name[0] == '.')
        return OIMAP_ENAME;
    struct repo_maildir_reader *r = calloc(1, sizeof(*r));
    if (!r || !(r->buf = malloc(CHUNK_SIZE))) {
        free(r);
        return -ENOMEM;
    }
    strcpy(r->name, name);
    r->in_new = in_new;
    r->fd = -1;
    r->f = f;
    r->cb = cb;
    r->arg = arg;
    f->refs++;
    LOG_DEBUG(LOGC_MAILDIR, "maildir '%s': reading %s/%s", f->name, subname(in_new), name);
    reader_next(r);
    if (r_r)
        *r_r = r;
    return 0;
}

uint64_t repo_maildir_reader_size(const struct repo_maildir_reader *r)
{
    return r->size;
}

void repo_maildir_reader_pause(struct repo_maildir_reader *r)
{
    r->paused = true;
}

void repo_maildir_reader_resume(struct repo_maildir_reader *r)
{
    if (!r->paused)
        return;
    r->paused = false;
    if (!r->busy && !r->in_cb && !r->closed)
        reader_next(r);
}

void repo_maildir_reader_close(struct repo_maildir_reader *r)
{
    if (r->closed)
        return;
    r->closed = true;
    if (!r->busy && !r->in_cb)
        reader_destroy(r);
}
