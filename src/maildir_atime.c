/* maildir_atime.c - restoreatime (see maildir_atime.h). */
#include "maildir_atime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct dir_atime {
    char *path;
    struct timespec atime;
};

struct maildir_atimes {
    struct dir_atime *v;
    size_t n;
};

static int add_dir(struct maildir_atimes *t, const char *folder, const char *sub)
{
    size_t len = strlen(folder) + strlen(sub) + 2;
    char *path = malloc(len);
    if (!path)
        return -ENOMEM;
    snprintf(path, len, "%s/%s", folder, sub);
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        free(path);
        return 0;
    }
    t->v[t->n++] = (struct dir_atime){path, st.st_atim};
    return 0;
}

int maildir_atimes_collect(const char *const *dirs, size_t n, struct maildir_atimes **r)
{
    struct maildir_atimes *t = calloc(1, sizeof *t);
    if (!t || !(t->v = calloc(2 * n + 1, sizeof *t->v))) {
        free(t);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        if (add_dir(t, dirs[i], "new") < 0 || add_dir(t, dirs[i], "cur") < 0) {
            maildir_atimes_free(&t);
            return -ENOMEM;
        }
    *r = t;
    return 0;
}

size_t maildir_atimes_put_back(const struct maildir_atimes *t)
{
    size_t done = 0;
    for (size_t i = 0; t && i < t->n; i++) {
        struct timespec ts[2] = {t->v[i].atime, {.tv_nsec = UTIME_OMIT}};
        if (utimensat(AT_FDCWD, t->v[i].path, ts, 0) == 0)
            done++;
    }
    return done;
}

size_t maildir_atimes_count(const struct maildir_atimes *t)
{
    return t ? t->n : 0;
}

void maildir_atimes_free(struct maildir_atimes **tp)
{
    struct maildir_atimes *t = *tp;
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].path);
    free(t->v);
    free(t);
    *tp = NULL;
}

/* ---- in the threadpool ---------------------------------------------------- */

struct atime_job {
    uv_work_t req;
    char **dirs; /* save: copies of the folder paths */
    size_t n;
    struct maildir_atimes *t;
    maildir_atimes_saved_cb saved;
    maildir_atimes_done_cb done;
    void *arg;
};

static void job_free(struct atime_job *j)
{
    for (size_t i = 0; j->dirs && i < j->n; i++)
        free(j->dirs[i]);
    free(j->dirs);
    free(j);
}

static void save_work(uv_work_t *req)
{
    struct atime_job *j = req->data;
    if (maildir_atimes_collect((const char *const *)j->dirs, j->n, &j->t) < 0)
        j->t = NULL;
}

static void save_after(uv_work_t *req, int status)
{
    struct atime_job *j = req->data;
    (void)status;
    maildir_atimes_saved_cb cb = j->saved;
    void *arg = j->arg;
    struct maildir_atimes *t = j->t;
    job_free(j);
    cb(t, arg);
}

int maildir_atimes_save(uv_loop_t *loop, const char *const *dirs, size_t n,
                        maildir_atimes_saved_cb cb, void *arg)
{
    struct atime_job *j = calloc(1, sizeof *j);
    if (!j || !(j->dirs = calloc(n + 1, sizeof *j->dirs))) {
        free(j);
        return -ENOMEM;
    }
    for (; j->n < n; j->n++)
        if (!(j->dirs[j->n] = strdup(dirs[j->n]))) {
            job_free(j);
            return -ENOMEM;
        }
    j->saved = cb;
    j->arg = arg;
    j->req.data = j;
    int rc = uv_queue_work(loop, &j->req, save_work, save_after);
    if (rc < 0)
        job_free(j);
    return rc;
}

static void restore_work(uv_work_t *req)
{
    struct atime_job *j = req->data;
    maildir_atimes_put_back(j->t);
}

static void restore_after(uv_work_t *req, int status)
{
    struct atime_job *j = req->data;
    (void)status;
    maildir_atimes_done_cb cb = j->done;
    void *arg = j->arg;
    maildir_atimes_free(&j->t);
    job_free(j);
    cb(arg);
}

int maildir_atimes_restore(uv_loop_t *loop, struct maildir_atimes *t, maildir_atimes_done_cb cb,
                           void *arg)
{
    struct atime_job *j = calloc(1, sizeof *j);
    if (!j) {
        maildir_atimes_free(&t);
        return -ENOMEM;
    }
    j->t = t;
    j->done = cb;
    j->arg = arg;
    j->req.data = j;
    int rc = uv_queue_work(loop, &j->req, restore_work, restore_after);
    if (rc < 0) {
        maildir_atimes_free(&j->t);
        job_free(j);
    }
    return rc;
}
