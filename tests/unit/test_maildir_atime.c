/* test_maildir_atime.c - restoreatime: atimes of new/ and cur/ recorded,
 * moved by the "sync", put back with the mtimes left alone; the blocking
 * and the threadpool forms. */
#include "maildir_atime.h"
#include "tap.h"
#include "uvtest.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[64];

static void mkfolder(const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", root, name);
    mkdir(p, 0700);
    for (const char *const *s = (const char *const[]){"new", "cur", "tmp", NULL}; *s; s++) {
        char d[300];
        snprintf(d, sizeof d, "%s/%s", p, *s);
        mkdir(d, 0700);
    }
}

static void set_times(const char *folder, const char *sub, time_t atime, time_t mtime)
{
    char p[300];
    snprintf(p, sizeof p, "%s/%s/%s", root, folder, sub);
    struct timespec ts[2] = {{.tv_sec = atime}, {.tv_sec = mtime}};
    utimensat(AT_FDCWD, p, ts, 0);
}

static struct stat stat_of(const char *folder, const char *sub)
{
    char p[300];
    struct stat st = {0};
    snprintf(p, sizeof p, "%s/%s/%s", root, folder, sub);
    stat(p, &st);
    return st;
}

static struct maildir_atimes *got;
static bool saved, restored;

static void on_saved(struct maildir_atimes *t, void *arg)
{
    (void)arg;
    got = t;
    saved = true;
}

static void on_restored(void *arg)
{
    (void)arg;
    restored = true;
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/oimap-atime-XXXXXX");
    if (!mkdtemp(root)) {
        ok(0, "mkdtemp");
        return tap_done();
    }
    mkfolder("INBOX");
    mkfolder("Sent");
    set_times("INBOX", "new", 1000000, 2000000);
    set_times("INBOX", "cur", 1100000, 2100000);
    set_times("Sent", "new", 1200000, 2200000);
    set_times("Sent", "cur", 1300000, 2300000);

    char inbox[128], sent[128], gone[128];
    snprintf(inbox, sizeof inbox, "%s/INBOX", root);
    snprintf(sent, sizeof sent, "%s/Sent", root);
    snprintf(gone, sizeof gone, "%s/Gone", root);
    const char *dirs[] = {inbox, sent, gone};

    struct maildir_atimes *t = NULL;
    is_int(maildir_atimes_collect(dirs, 3, &t), 0, "collect");
    is_int((int)maildir_atimes_count(t), 4, "new/ and cur/ of each existing folder");
    /* the sync: reads the directories, delivers (mtime moves) */
    set_times("INBOX", "new", 3000000, 3000001);
    set_times("Sent", "cur", 3000000, 3000002);
    is_int((int)maildir_atimes_put_back(t), 4, "all put back");
    is_int((int)stat_of("INBOX", "new").st_atime, 1000000, "INBOX/new atime restored");
    is_int((int)stat_of("INBOX", "new").st_mtime, 3000001,
           "INBOX/new mtime left as the sync made it");
    is_int((int)stat_of("Sent", "cur").st_atime, 1300000, "Sent/cur atime restored");
    is_int((int)stat_of("Sent", "cur").st_mtime, 3000002, "Sent/cur mtime kept");
    maildir_atimes_free(&t);
    ok(t == NULL, "free nulls the pointer");

    uv_loop_t l;
    uv_loop_init(&l);
    loop = &l;
    ok(maildir_atimes_save(loop, dirs, 2, on_saved, NULL) == 0 && run_until(&saved, 5000) && got,
       "saved in the threadpool");
    set_times("INBOX", "cur", 3500000, 3500001);
    ok(maildir_atimes_restore(loop, got, on_restored, NULL) == 0 && run_until(&restored, 5000),
       "restored in the threadpool");
    is_int((int)stat_of("INBOX", "cur").st_atime, 1100000, "INBOX/cur atime restored");
    restored = false;
    ok(maildir_atimes_restore(loop, NULL, on_restored, NULL) == 0 && run_until(&restored, 5000),
       "restoring nothing still calls back");
    uv_loop_close(&l);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0)
        ok(0, "cleanup");
    return tap_done();
}
