/* test_repo_maildir.c - the Maildir repository on a real file system, driven
 * by a real libuv loop over a temporary directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "err.h"
#include "maildir_name.h"
#include "repo_maildir.h"
#include "tests/unit/tap.h"

#define FMD5_INBOX "7e33429f656f1e6e9d79b29c3f82c57e"

static uv_loop_t loop;
static char root[256];
static struct repo_maildir *md;

/* ---- small helpers ---------------------------------------------------------- */

struct res {
    int done;
    int st;
    struct repo_maildir_folder *f;
    struct repo_maildir_listing *l;
    struct repo_maildir_folder_list *fl;
    char name[300];
    bool in_new;
    int64_t mtime;
    uint64_t size;
    int depth; /* to check callbacks never run inside the starting call */
};

static int call_depth;

static void run_until(int *done)
{
    while (!*done)
        uv_run(&loop, UV_RUN_ONCE);
}

static void on_open(int st, struct repo_maildir_folder *f, void *arg)
{
    struct res *r = arg;
    r->st = st;
    r->f = f;
    r->depth = call_depth;
    r->done = 1;
}

static void on_scan(int st, struct repo_maildir_listing *l, void *arg)
{
    struct res *r = arg;
    r->st = st;
    r->l = l;
    r->done = 1;
}

static void on_list(int st, struct repo_maildir_folder_list *l, void *arg)
{
    struct res *r = arg;
    r->st = st;
    r->fl = l;
    r->done = 1;
}

static void on_rename(int st, const char *name, bool in_new, void *arg)
{
    struct res *r = arg;
    r->st = st;
    snprintf(r->name, sizeof(r->name), "%s", name ? name : "");
    r->in_new = in_new;
    r->depth = call_depth;
    r->done = 1;
}

static void on_done(int st, void *arg)
{
    struct res *r = arg;
    r->st = st;
    r->done = 1;
}

static void on_stat(int st, int64_t mtime, uint64_t size, void *arg)
{
    struct res *r = arg;
    r->st = st;
    r->mtime = mtime;
    r->size = size;
    r->done = 1;
}

static struct repo_maildir_folder *open_folder(const char *name, unsigned flags, int *st_r)
{
    struct res r = {0};
    int rc = repo_maildir_open(md, name, flags, on_open, &r);
    if (rc < 0) {
        *st_r = rc;
        return NULL;
    }
    run_until(&r.done);
    *st_r = r.st;
    return r.f;
}

static struct repo_maildir_listing *scan(struct repo_maildir_folder *f, unsigned flags)
{
    struct res r = {0};
    if (repo_maildir_scan(f, flags, on_scan, &r) < 0)
        return NULL;
    run_until(&r.done);
    return r.l;
}

/* Does a/b exist? */
static bool path_exists(const char *a, const char *b)
{
    char p[1024];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", a, b);
    return stat(p, &st) == 0;
}

static size_t count_dir(const char *folderpath, const char *sub)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", folderpath, sub);
    DIR *d = opendir(p);
    size_t n = 0;
    struct dirent *de;
    if (!d)
        return (size_t)-1;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void write_file(const char *path, const char *data)
{
    FILE *fp = fopen(path, "w");
    if (!fp)
        abort();
    fputs(data, fp);
    fclose(fp);
}

/* Deliver data in chunks of step bytes with one commit. */
static int deliver(struct repo_maildir_folder *f, const char *data, size_t len, size_t step,
                   uint32_t uid, const char *flags, int64_t mtime, struct res *r)
{
    struct repo_maildir_writer *w;
    int rc = repo_maildir_deliver_begin(f, NULL, NULL, &w);
    if (rc < 0)
        return rc;
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        if (repo_maildir_write(w, data + off, n) < 0) {
            repo_maildir_deliver_abort(w);
            return -EIO;
        }
    }
    struct repo_maildir_delivery d = {.uid = uid, .mtime = mtime, .name_time = -1};
    maildir_flags_parse(flags, strlen(flags), &d.flags);
    memset(r, 0, sizeof(*r));
    call_depth++;
    rc = repo_maildir_deliver_commit(w, &d, on_rename, r);
    call_depth--;
    if (rc < 0)
        return rc;
    run_until(&r->done);
    return r->st;
}

/* ---- a streaming reader that compares with the expected bytes --------------- */

struct readcmp {
    const char *want;
    size_t wlen, off;
    int mismatches, chunks, done, st;
    uint64_t size;
};

static void on_read(struct repo_maildir_reader *rd, int st, const void *data, size_t len, void *arg)
{
    struct readcmp *rc = arg;
    if (st < 0 || len == 0) {
        rc->st = st;
        rc->done = 1;
        return;
    }
    rc->size = repo_maildir_reader_size(rd);
    rc->chunks++;
    if (rc->off + len > rc->wlen || memcmp(rc->want + rc->off, data, len) != 0)
        rc->mismatches++;
    rc->off += len;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_folders(void)
{
    int st;
    struct res r = {0};
    call_depth++;
    int rc = repo_maildir_open(md, "INBOX", REPO_MAILDIR_CREATE, on_open, &r);
    call_depth--;
    is_int(rc, 0, "open INBOX started");
    ok(!r.done, "callback not run inside the starting call");
    run_until(&r.done);
    is_int(r.st, 0, "INBOX created");
    is_int(r.depth, 0, "open callback ran from the loop");
    struct repo_maildir_folder *f = r.f;
    ok(path_exists(root, "INBOX/tmp") && path_exists(root, "INBOX/new") &&
           path_exists(root, "INBOX/cur"),
       "tmp/ new/ cur/ exist");
    char p[512];
    struct stat sb;
    snprintf(p, sizeof(p), "%s/INBOX/cur", root);
    stat(p, &sb);
    is_int(sb.st_mode & 0777, 0700, "cur/ has mode 0700");
    is_str(repo_maildir_folder_fmd5(f), FMD5_INBOX, "folder FMD5 is md5(\"INBOX\")");
    repo_maildir_folder_free(&f);

    f = open_folder("INBOX/Lists/dev", REPO_MAILDIR_CREATE, &st);
    is_int(st, 0, "nested IMAP name created");
    ok(path_exists(root, "INBOX.Lists.dev/cur"), "laid out as INBOX.Lists.dev (sep .)");
    is_str(repo_maildir_folder_local(f), "INBOX.Lists.dev", "local name");
    repo_maildir_folder_free(&f);

    f = open_folder("Missing", 0, &st);
    is_int(st, -ENOENT, "open without create of a missing folder: ENOENT");
    ok(f == NULL, "no handle on failure");

    static const char *bad[] = {"../evil", "..", ".", "a//b", "/etc", "x/../../y", "cur", "new"};
    int refused = 0;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct res rr = {0};
        if (repo_maildir_open(md, bad[i], REPO_MAILDIR_CREATE, on_open, &rr) == OIMAP_ENAME)
            refused++;
    }
    is_int(refused, 8, "unsafe folder names refused at once");
    ok(!path_exists(root, "../evil"), "nothing created outside localfolders");

    /* A stray directory without cur/ is not a folder. */
    snprintf(p, sizeof(p), "%s/notmail", root);
    mkdir(p, 0700);
    r = (struct res){0};
    repo_maildir_list(md, on_list, &r);
    run_until(&r.done);
    is_int(r.st, 0, "list folders");
    ok(r.fl && r.fl->n == 2, "two folders listed");
    if (r.fl && r.fl->n == 2) {
        is_str(r.fl->v[0].name, "INBOX", "INBOX listed");
        is_str(r.fl->v[1].name, "INBOX/Lists/dev", "INBOX.Lists.dev listed as INBOX/Lists/dev");
        is_str(r.fl->v[1].local, "INBOX.Lists.dev", "with its local name");
    }
    repo_maildir_folder_list_free(&r.fl);
}

static void test_nested(void)
{
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/nested", root);
    struct repo_maildir_opts o = {.root = sub, .sep = "/", .fsync = true};
    struct repo_maildir *saved = md;
    is_int(repo_maildir_new(&loop, &o, &md), 0, "nested repository");
    int st;
    struct repo_maildir_folder *f = open_folder("INBOX/Lists/dev", REPO_MAILDIR_CREATE, &st);
    is_int(st, 0, "nested folder created");
    ok(path_exists(sub, "INBOX/Lists/dev/cur"), "sep '/' nests directories");
    repo_maildir_folder_free(&f);
    f = open_folder("INBOX", REPO_MAILDIR_CREATE, &st);
    repo_maildir_folder_free(&f);
    struct res rr = {0};
    is_int(repo_maildir_open(md, "INBOX/tmp", REPO_MAILDIR_CREATE, on_open, &rr), OIMAP_ENAME,
           "nested 'tmp' component refused");
    struct res r = {0};
    repo_maildir_list(md, on_list, &r);
    run_until(&r.done);
    ok(r.fl && r.fl->n == 2, "nested listing finds 2 folders (INBOX has no Lists maildir)");
    if (r.fl && r.fl->n == 2) {
        is_str(r.fl->v[0].name, "INBOX", "nested: INBOX");
        is_str(r.fl->v[1].name, "INBOX/Lists/dev", "nested: INBOX/Lists/dev found recursively");
    }
    repo_maildir_folder_list_free(&r.fl);
    repo_maildir_free(&md);
    md = saved;
}

static void test_deliver_scan_flags(void)
{
    int st;
    struct repo_maildir_folder *f = open_folder("INBOX", REPO_MAILDIR_CREATE, &st);
    struct res r;
    const char *msg = "From: a@b\nSubject: one\n\nbody\n";
    is_int(deliver(f, msg, strlen(msg), 7, 17, "", 1600000000, &r), 0, "deliver UID 17");
    is_int(r.depth, 0, "deliver callback ran from the loop");
    ok(r.in_new, "unseen mail goes to new/ (as offlineimap)");
    struct maildir_name mn;
    is_int(maildir_name_parse(r.name, ':', &mn), 0, "delivered name parses");
    is_int(mn.uid, 17, "delivered name carries U=17");
    is_str(mn.fmd5, FMD5_INBOX, "delivered name carries the folder FMD5");
    ok(mn.has_info, "delivered name has ':2,' like offlineimap's");
    char uid17[300];
    snprintf(uid17, sizeof(uid17), "%s", r.name);

    struct res s = {0};
    repo_maildir_stat(f, true, uid17, on_stat, &s);
    run_until(&s.done);
    is_int(s.st, 0, "stat");
    is_int(s.mtime, 1600000000, "mtime set to the internal date");
    is_int(s.size, strlen(msg), "size");

    is_int(deliver(f, "x\n", 2, 2, 18, "SF", -1, &r), 0, "deliver UID 18 seen+flagged");
    ok(!r.in_new, "seen mail goes to cur/");
    ok(strstr(r.name, ":2,FS") != NULL, "flags in ASCII order");
    char uid18[300];
    snprintf(uid18, sizeof(uid18), "%s", r.name);
    is_int(count_dir(repo_maildir_folder_path(f), "tmp"), 0, "tmp/ empty after deliveries");

    struct repo_maildir_listing *l = scan(f, REPO_MAILDIR_SCAN_SIZES);
    ok(l && l->n == 2, "scan finds 2 messages");
    const struct repo_maildir_entry *e = l ? repo_maildir_listing_find(l, 17) : NULL;
    ok(e && e->in_new && e->fmd5_ok && e->flags.std == 0, "UID 17: new/, fmd5 ok, no flags");
    ok(e && e->has_size && e->size == strlen(msg), "UID 17: size by stat");
    e = l ? repo_maildir_listing_find(l, 18) : NULL;
    ok(e && !e->in_new && e->flags.std == (MAILDIR_FLAG_S | MAILDIR_FLAG_F), "UID 18: cur/, FS");
    ok(l && !repo_maildir_listing_find(l, 19), "find of a missing UID is NULL");
    repo_maildir_listing_free(&l);

    /* Re-flag 17: \Seen moves it to cur/. */
    struct maildir_flags fl = {.std = MAILDIR_FLAG_S | MAILDIR_FLAG_R, .custom = 1u << 2};
    r = (struct res){0};
    call_depth++;
    repo_maildir_set_flags(f, true, uid17, &fl, 0, on_rename, &r);
    call_depth--;
    run_until(&r.done);
    is_int(r.st, 0, "set flags RS+c");
    is_int(r.depth, 0, "set_flags callback from the loop");
    ok(!r.in_new, "seen: moved from new/ to cur/");
    ok(strstr(r.name, ",U=17,FMD5=" FMD5_INBOX ":2,RSc") != NULL, "renamed with RSc");
    snprintf(uid17, sizeof(uid17), "%s", r.name);

    /* Clearing \Seen leaves it in cur/. */
    fl = (struct maildir_flags){.std = MAILDIR_FLAG_F};
    r = (struct res){0};
    repo_maildir_set_flags(f, false, uid17, &fl, REPO_MAILDIR_NOSYNC, on_rename, &r);
    run_until(&r.done);
    ok(r.st == 0 && !r.in_new && strstr(r.name, ":2,F"), "unseen again: stays in cur/, F");
    snprintf(uid17, sizeof(uid17), "%s", r.name);
    struct res b = {0};
    repo_maildir_barrier(f, on_done, &b);
    run_until(&b.done);
    is_int(b.st, 0, "barrier after NOSYNC renames");

    /* A mail reader renames the file behind our back: found by its unique part. */
    char from[600], to[600];
    snprintf(from, sizeof(from), "%s/cur/%s", repo_maildir_folder_path(f), uid17);
    snprintf(to, sizeof(to), "%s/cur/%.*sT", repo_maildir_folder_path(f), (int)(strlen(uid17)),
             uid17);
    rename(from, to);
    fl = (struct maildir_flags){.std = MAILDIR_FLAG_D};
    r = (struct res){0};
    repo_maildir_set_flags(f, false, uid17, &fl, 0, on_rename, &r);
    run_until(&r.done);
    ok(r.st == 0 && strstr(r.name, ",U=17,") && strstr(r.name, ":2,D"),
       "renamed file relocated by unique part and re-flagged");
    snprintf(uid17, sizeof(uid17), "%s", r.name);

    /* Delete 18. */
    struct res d = {0};
    repo_maildir_delete(f, false, uid18, 0, on_done, &d);
    run_until(&d.done);
    is_int(d.st, 0, "delete UID 18");
    d = (struct res){0};
    repo_maildir_delete(f, false, uid18, 0, on_done, &d);
    run_until(&d.done);
    is_int(d.st, -ENOENT, "deleting again: ENOENT");

    /* A new local message (no UID) gets one. */
    char p[600];
    snprintf(p, sizeof(p), "%s/new/1700000000.R42.laptop", repo_maildir_folder_path(f));
    write_file(p, "From: me\n\nlocal\n");
    l = scan(f, 0);
    e = l ? repo_maildir_listing_find(l, 0) : NULL;
    ok(e && e->in_new && !e->has_size, "local message without UID listed with uid 0");
    repo_maildir_listing_free(&l);
    r = (struct res){0};
    repo_maildir_set_uid(f, true, "1700000000.R42.laptop", 99, 0, on_rename, &r);
    run_until(&r.done);
    is_str(r.name, "1700000000.R42.laptop,U=99,FMD5=" FMD5_INBOX, "UID assigned by rename");
    ok(r.in_new, "UID assignment keeps the directory");
    l = scan(f, 0);
    ok(l && l->n == 2 && repo_maildir_listing_find(l, 99) && repo_maildir_listing_find(l, 17),
       "scan: UIDs 17 and 99");
    repo_maildir_listing_free(&l);
    is_int(repo_maildir_set_uid(f, true, "x", 0, 0, on_rename, &r), OIMAP_ENAME,
           "UID 0 refused at once");
    is_int(repo_maildir_delete(f, true, "../x", 0, on_done, &d), OIMAP_ENAME,
           "message name with '/' refused");
    repo_maildir_folder_free(&f);
}

static void on_drain(struct repo_maildir_writer *w, void *arg)
{
    (*(int *)arg)++;
}

static void test_big(void)
{
    int st;
    struct repo_maildir_folder *f = open_folder("Big", REPO_MAILDIR_CREATE, &st);
    size_t len = 5u << 20;
    char *data = malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (char)('a' + (i * 7 + i / 4096) % 26);
    /* Stream it in 64 KiB pieces, pausing when told, as a socket reader would. */
    struct repo_maildir_writer *w;
    int drains = 0, pauses = 0, bad = 0;
    repo_maildir_deliver_begin(f, on_drain, &drains, &w);
    for (size_t off = 0; off < len; off += 65536) {
        int rc = repo_maildir_write(w, data + off, 65536);
        if (rc < 0)
            bad++;
        if (rc == 1) {
            pauses++;
            int want = drains + 1;
            while (drains < want)
                uv_run(&loop, UV_RUN_ONCE);
        }
    }
    ok(pauses > 0 && drains == pauses, "back-pressure: %d pauses, %d drains", pauses, drains);
    is_int(bad, 0, "all writes accepted");
    struct repo_maildir_delivery d = {.uid = 5, .mtime = -1, .name_time = 1234567890};
    d.flags.std = MAILDIR_FLAG_S;
    struct res r = {0};
    repo_maildir_deliver_commit(w, &d, on_rename, &r);
    run_until(&r.done);
    is_int(r.st, 0, "5 MB message delivered");
    ok(strncmp(r.name, "1234567890_", 11) == 0, "name_time used for the unique part");

    struct readcmp rc = {.want = data, .wlen = len};
    struct repo_maildir_reader *rd;
    is_int(repo_maildir_read(f, false, r.name, on_read, &rc, &rd), 0, "read started");
    run_until(&rc.done);
    is_int(rc.st, 0, "read to EOF");
    ok(rc.off == len && rc.mismatches == 0, "read back byte for byte (%zu bytes)", rc.off);
    is_int(rc.size, len, "reader size");
    ok(rc.chunks >= 20, "streamed in chunks (%d)", rc.chunks);

    /* Abort removes the tmp file. */
    repo_maildir_deliver_begin(f, NULL, NULL, &w);
    repo_maildir_write(w, data, 300000);
    repo_maildir_deliver_abort(w);
    while (repo_maildir_pending(md))
        uv_run(&loop, UV_RUN_ONCE);
    is_int(count_dir(repo_maildir_folder_path(f), "tmp"), 0, "abort leaves tmp/ empty");
    free(data);
    repo_maildir_folder_free(&f);
}

/* Many writers together: the repository's total buffer is bounded, so a
 * download of many messages cannot buffer them all in memory. */
static void test_repo_budget(void)
{
    int st;
    struct repo_maildir_folder *f = open_folder("Budget", REPO_MAILDIR_CREATE, &st);
    enum { N = 6, EACH = 700 * 1024 };
    char *data = calloc(1, EACH);
    struct repo_maildir_writer *w[N];
    int drains[N] = {0}, first_pause = -1;
    for (int i = 0; i < N; i++) {
        repo_maildir_deliver_begin(f, on_drain, &drains[i], &w[i]);
        /* Under one writer's own high-water mark (1 MiB) each time. */
        int rc = repo_maildir_write(w[i], data, EACH);
        if (rc == 1 && first_pause < 0)
            first_pause = i;
    }
    ok(first_pause >= 1 && first_pause < N,
       "a writer is paused once > 1 MiB waits for the disk (writer %d)", first_pause);
    /* Finishing the others lets their data reach the disk, and the paused
     * producer hears about it. */
    struct res r[N];
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++) {
        struct repo_maildir_delivery d = {.uid = (uint32_t)(100 + i), .mtime = -1, .name_time = -1};
        repo_maildir_deliver_commit(w[i], &d, on_rename, &r[i]);
    }
    for (int i = 0; i < N; i++)
        run_until(&r[i].done);
    int ok_all = 1;
    for (int i = 0; i < N; i++)
        ok_all &= r[i].st == 0;
    ok(ok_all, "every message of the budget test delivered");
    ok(first_pause >= 0 && drains[first_pause] == 1, "the paused writer was drained once");
    free(data);
    repo_maildir_folder_free(&f);
}

struct batch_res {
    int done, st, ok_items;
    size_t n;
    int order_ok;
};

static void on_batch(int st, const struct repo_maildir_batch_item *it, size_t n, void *arg)
{
    struct batch_res *br = arg;
    br->st = st;
    br->n = n;
    br->order_ok = 1;
    for (size_t i = 0; i < n; i++) {
        if (it[i].st == 0 && it[i].name && it[i].name[0])
            br->ok_items++;
        if ((uintptr_t)it[i].user != i + 1 || it[i].uid != i + 1)
            br->order_ok = 0;
    }
    br->done = 1;
}

static double now_s(void)
{
    return (double)uv_hrtime() / 1e9;
}

static double deliver_batch(struct repo_maildir_folder *f, size_t n, size_t size, uint32_t base,
                            struct batch_res *br)
{
    char *buf = malloc(size);
    memset(buf, 'm', size);
    memcpy(buf, "Subject: x\n\n", 12);
    double t0 = now_s();
    struct repo_maildir_batch *b;
    repo_maildir_batch_new(f, &b);
    for (size_t i = 0; i < n; i++) {
        struct repo_maildir_writer *w;
        repo_maildir_deliver_begin(f, NULL, NULL, &w);
        repo_maildir_write(w, buf, size);
        struct repo_maildir_delivery d = {.uid = base + (uint32_t)i, .mtime = -1, .name_time = -1};
        if (i % 2)
            d.flags.std = MAILDIR_FLAG_S;
        repo_maildir_batch_add(b, w, &d, (void *)(uintptr_t)(i + 1));
    }
    *br = (struct batch_res){0};
    repo_maildir_batch_commit(b, on_batch, br);
    run_until(&br->done);
    free(buf);
    return now_s() - t0;
}

static void test_batch(void)
{
    int st;
    struct repo_maildir_folder *f = open_folder("Batch", REPO_MAILDIR_CREATE, &st);
    struct batch_res br;
    deliver_batch(f, 1000, 600, 1, &br);
    is_int(br.st, 0, "batch of 1000 committed");
    is_int(br.ok_items, 1000, "1000 items delivered");
    ok(br.order_ok, "items reported in order with user pointers");
    is_int(count_dir(repo_maildir_folder_path(f), "new"), 500, "500 unseen in new/");
    is_int(count_dir(repo_maildir_folder_path(f), "cur"), 500, "500 seen in cur/");
    struct repo_maildir_listing *l = scan(f, 0);
    int all = l && l->n == 1000;
    for (uint32_t u = 1; all && u <= 1000; u++)
        all = repo_maildir_listing_find(l, u) != NULL;
    ok(all, "scan finds UIDs 1..1000");
    ok(l && l->n_dup == 0 && l->n_stray == 0, "no duplicates, no strays");
    repo_maildir_listing_free(&l);

    /* Empty batch still calls back, from the loop. */
    struct repo_maildir_batch *b;
    repo_maildir_batch_new(f, &b);
    br = (struct batch_res){0};
    repo_maildir_batch_commit(b, on_batch, &br);
    ok(!br.done, "empty batch: no callback inside commit");
    run_until(&br.done);
    ok(br.st == 0 && br.n == 0, "empty batch completes");
    repo_maildir_folder_free(&f);
}

static void test_timing(void)
{
    int st;
    struct repo_maildir_folder *f = open_folder("TimeSerial", REPO_MAILDIR_CREATE, &st);
    char *buf = malloc(8192);
    memset(buf, 'q', 8192);
    double t0 = now_s();
    int fails = 0;
    for (uint32_t i = 1; i <= 2000; i++) {
        struct res r;
        if (deliver(f, buf, 8192, 8192, i, "S", -1, &r) != 0)
            fails++;
    }
    double serial = now_s() - t0;
    is_int(fails, 0, "2000 serial deliveries");
    repo_maildir_folder_free(&f);
    f = open_folder("TimeBatch", REPO_MAILDIR_CREATE, &st);
    struct batch_res br;
    double batched = deliver_batch(f, 2000, 8192, 1, &br);
    is_int(br.ok_items, 2000, "2000 batched deliveries");
    repo_maildir_folder_free(&f);

    char sub[300];
    snprintf(sub, sizeof(sub), "%s/syncfs", root);
    struct repo_maildir_opts o = {.root = sub, .fsync = true, .batch_syncfs = true};
    struct repo_maildir *saved = md;
    repo_maildir_new(&loop, &o, &md);
    f = open_folder("TimeSyncfs", REPO_MAILDIR_CREATE, &st);
    double sfs = deliver_batch(f, 2000, 8192, 1, &br);
    is_int(br.ok_items, 2000, "2000 batched deliveries with syncfs");
    repo_maildir_folder_free(&f);
    repo_maildir_free(&md);
    md = saved;
    printf("# 2000 x 8 KB, fsync on: serial (one commit each) %.3f s, batched (concurrent "
           "fsyncs) %.3f s (%.1fx), batched (one syncfs) %.3f s\n",
           serial, batched, batched > 0 ? serial / batched : 0.0, sfs);
    free(buf);
}

/* An Maildir as offlineimap 7.3 writes it, made by hand: every UID must be
 * found; a stray file is reported and left in place; a second file with the
 * same UID is kept and reported. */
static void test_offlineimap_fixture(void)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/Fixture", root);
    mkdir(p, 0700);
    static const char *subs[] = {"tmp", "new", "cur"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/Fixture/%s", root, subs[i]);
        mkdir(p, 0700);
    }
    char fmd5[33];
    maildir_name_fmd5("Fixture", fmd5);
    static const struct {
        const char *dir, *pre, *info;
        uint32_t uid;
        uint8_t std;
    } files[] = {
        {"cur", "1700000001_0.4242.host,U=1", ":2,S", 1, MAILDIR_FLAG_S},
        {"cur", "1700000001_1.4242.host,U=2", ":2,FS", 2, MAILDIR_FLAG_F | MAILDIR_FLAG_S},
        {"cur", "1700000001_2.4242.host,U=3", ":2,RS", 3, MAILDIR_FLAG_R | MAILDIR_FLAG_S},
        {"new", "1700000002_0.4242.host,U=4", ":2,", 4, 0},
        {"new", "1700000002_1.4242.host,U=5", ":2,", 5, 0},
        {"cur", "1700000003_0.4242.host,U=1000", ":2,DST", 1000,
         MAILDIR_FLAG_D | MAILDIR_FLAG_S | MAILDIR_FLAG_T},
        {"cur", "1700000003_1.4242.host,U=4294967295", ":2,Sa", 4294967295u, MAILDIR_FLAG_S},
    };
    size_t nf = sizeof(files) / sizeof(files[0]);
    for (size_t i = 0; i < nf; i++) {
        char name[300];
        snprintf(name, sizeof(name), "%s,FMD5=%s%s", files[i].pre, fmd5, files[i].info);
        snprintf(p, sizeof(p), "%s/Fixture/%s/%s", root, files[i].dir, name);
        write_file(p, "Subject: fixture\n\nx\n");
    }
    /* mbsync-style name (UID, no FMD5), a stray, a duplicate, a dot file. */
    snprintf(p, sizeof(p), "%s/Fixture/cur/1700000004.123_1.host,U=77:2,S", root);
    write_file(p, "y\n");
    snprintf(p, sizeof(p), "%s/Fixture/cur/garbage,U=abc:2,S", root);
    write_file(p, "stray\n");
    snprintf(p, sizeof(p), "%s/Fixture/cur/1700000009_9.1.other,U=2,FMD5=%s:2,S", root, fmd5);
    write_file(p, "dup\n");
    snprintf(p, sizeof(p), "%s/Fixture/cur/.nfs0001", root);
    write_file(p, "dot\n");

    int st;
    struct repo_maildir_folder *f = open_folder("Fixture", 0, &st);
    is_int(st, 0, "fixture opens without create");
    struct repo_maildir_listing *l = scan(f, 0);
    ok(l != NULL, "fixture scanned");
    if (!l)
        return;
    int found = 0;
    for (size_t i = 0; i < nf; i++) {
        const struct repo_maildir_entry *e = repo_maildir_listing_find(l, files[i].uid);
        if (e && e->fmd5_ok && e->flags.std == files[i].std &&
            e->in_new == (strcmp(files[i].dir, "new") == 0))
            found++;
    }
    is_int(found, (int)nf, "every offlineimap UID found with its flags and directory");
    const struct repo_maildir_entry *e = repo_maildir_listing_find(l, 4294967295u);
    ok(e && e->flags.custom == 1, "custom flag 'a' kept");
    e = repo_maildir_listing_find(l, 77);
    ok(e && !e->has_fmd5 && !e->fmd5_ok, "mbsync name: UID 77 without FMD5");
    is_int(l->n_stray, 1, "one stray file reported");
    is_int(l->n_dup, 2, "two files share UID 2");
    e = repo_maildir_listing_find(l, 2);
    ok(e && e->dup_uid && (e + 1)->uid == 2 && (e + 1)->dup_uid, "both UID 2 entries kept");
    is_int(l->n, nf + 2, "listing size (dot file skipped)");
    repo_maildir_listing_free(&l);
    snprintf(p, sizeof(p), "%s/Fixture/cur/garbage,U=abc:2,S", root);
    struct stat sb;
    ok(stat(p, &sb) == 0, "stray file left in place");
    repo_maildir_folder_free(&f);
}

static void test_windows(void)
{
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/win", root);
    struct repo_maildir_opts o = {.root = sub, .fsync = false, .windows_compat = true};
    struct repo_maildir *saved = md;
    repo_maildir_new(&loop, &o, &md);
    int st;
    struct repo_maildir_folder *f = open_folder("INBOX", REPO_MAILDIR_CREATE, &st);
    struct res r;
    is_int(deliver(f, "a\n", 2, 2, 3, "S", -1, &r), 0, "windows-compatible delivery");
    ok(strstr(r.name, "!2,S") && !strchr(r.name, ':'), "uses '!' and no ':'");
    struct repo_maildir_listing *l = scan(f, 0);
    ok(l && l->n == 1 && l->v[0].uid == 3 && l->v[0].flags.std == MAILDIR_FLAG_S,
       "scanned back with '!'");
    repo_maildir_listing_free(&l);
    repo_maildir_folder_free(&f);
    /* Freeing the repository with nothing pending frees it at once. */
    repo_maildir_free(&md);
    ok(md == NULL, "repo_maildir_free NULLs the pointer");
    md = saved;
}

/* Pausing, resuming and closing a reader early. */
struct pauser {
    int chunks, done, st;
    struct repo_maildir_reader *rd;
    bool close_after_two;
};

static void on_read_pause(struct repo_maildir_reader *rd, int st, const void *data, size_t len,
                          void *arg)
{
    struct pauser *p = arg;
    if (st < 0 || len == 0) {
        p->st = st;
        p->done = 1;
        return;
    }
    p->chunks++;
    p->rd = rd;
    if (p->close_after_two) {
        if (p->chunks == 2) {
            repo_maildir_reader_close(rd);
            p->done = 1;
        }
    } else
        repo_maildir_reader_pause(rd);
}

static void test_reader_control(void)
{
    int st;
    struct repo_maildir_folder *f = open_folder("Big", 0, &st);
    struct repo_maildir_listing *l = scan(f, 0);
    ok(l && l->n == 1, "Big has its one message");
    if (!l || l->n != 1)
        return;
    struct pauser p = {0};
    repo_maildir_read(f, l->v[0].in_new, l->v[0].name, on_read_pause, &p, NULL);
    while (p.chunks < 1)
        uv_run(&loop, UV_RUN_ONCE);
    /* Paused: nothing more arrives while the loop runs. */
    while (repo_maildir_pending(md))
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_NOWAIT);
    is_int(p.chunks, 1, "paused reader delivers nothing more");
    int resumed = 0;
    while (!p.done && resumed < 100) {
        repo_maildir_reader_resume(p.rd);
        resumed++;
        int want = p.chunks + 1;
        while (p.chunks < want && !p.done)
            uv_run(&loop, UV_RUN_ONCE);
    }
    ok(p.done && p.st == 0 && p.chunks == 20, "resumed to EOF: %d chunks", p.chunks);

    struct pauser q = {.close_after_two = true};
    repo_maildir_read(f, l->v[0].in_new, l->v[0].name, on_read_pause, &q, NULL);
    run_until(&q.done);
    while (repo_maildir_pending(md))
        uv_run(&loop, UV_RUN_ONCE);
    is_int(q.chunks, 2, "closed reader stops after 2 chunks");

    struct readcmp rc = {0};
    repo_maildir_read(f, true, "no-such-file", on_read, &rc, NULL);
    run_until(&rc.done);
    is_int(rc.st, -ENOENT, "reading a missing file: ENOENT");
    repo_maildir_listing_free(&l);
    repo_maildir_folder_free(&f);
}

/* Free the folder and the repository with operations pending: they still
 * complete and report, then everything is released (ASan checks the rest). */
static void test_free_pending(void)
{
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/freeing", root);
    struct repo_maildir_opts o = {.root = sub, .fsync = true, .batch_syncfs = true};
    struct repo_maildir *m;
    repo_maildir_new(&loop, &o, &m);
    struct repo_maildir *saved = md;
    md = m;
    int st;
    struct repo_maildir_folder *f = open_folder("A", REPO_MAILDIR_CREATE, &st);
    md = saved;
    struct batch_res br = {0};
    struct repo_maildir_batch *b;
    repo_maildir_batch_new(f, &b);
    for (uint32_t i = 1; i <= 50; i++) {
        struct repo_maildir_writer *w;
        repo_maildir_deliver_begin(f, NULL, NULL, &w);
        repo_maildir_write(w, "Subject: s\n\nx\n", 14);
        struct repo_maildir_delivery d = {.uid = i, .mtime = -1, .name_time = -1};
        repo_maildir_batch_add(b, w, &d, (void *)(uintptr_t)i);
    }
    repo_maildir_batch_commit(b, on_batch, &br);
    struct res r = {0};
    repo_maildir_scan(f, 0, on_scan, &r);
    repo_maildir_folder_free(&f);
    repo_maildir_free(&m);
    ok(f == NULL && m == NULL, "handles released with work pending");
    run_until(&br.done);
    run_until(&r.done);
    ok(br.st == 0 && br.ok_items == 50, "syncfs batch of 50 completed after free");
    ok(r.st == 0 && r.l != NULL, "scan completed after free");
    repo_maildir_listing_free(&r.l);
    ok(path_exists(sub, "A/new") && count_dir(sub, "A/new") == 50, "50 files in new/");

    /* A delivery into a folder whose tmp/ vanished fails cleanly. */
    f = open_folder("Vanish", REPO_MAILDIR_CREATE, &st);
    char p[600];
    snprintf(p, sizeof(p), "%s/tmp", repo_maildir_folder_path(f));
    rmdir(p);
    struct res d;
    ok(deliver(f, "x\n", 2, 2, 1, "", -1, &d) < 0, "delivery without tmp/ reports an error");
    is_int(count_dir(repo_maildir_folder_path(f), "new"), 0, "nothing reached new/");
    repo_maildir_folder_free(&f);
}

static void rm_rf(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", path);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof(root), "%s/oimap-md-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root))
        return 1;
    strncat(root, "/mail", sizeof(root) - strlen(root) - 1);
    uv_loop_init(&loop);
    struct repo_maildir_opts o = {.root = root, .fsync = true};
    is_int(repo_maildir_new(&loop, &o, &md), 0, "repository created");
    struct repo_maildir *x;
    struct repo_maildir_opts bad = {.root = root, .sep = "a/b"};
    is_int(repo_maildir_new(&loop, &bad, &x), OIMAP_ENAME, "bad sep refused");

    test_folders();
    test_nested();
    test_deliver_scan_flags();
    test_big();
    test_repo_budget();
    test_batch();
    test_offlineimap_fixture();
    test_windows();
    test_reader_control();
    test_free_pending();
    /* Slow on slow disks (4,000 serial fsyncs): OIMAP_TEST_NO_TIMING skips it,
     * e.g. under valgrind. */
    if (getenv("OIMAP_TEST_NO_TIMING"))
        printf("# timing skipped (OIMAP_TEST_NO_TIMING)\n");
    else
        test_timing();

    repo_maildir_free(&md);
    uv_run(&loop, UV_RUN_DEFAULT);
    is_int(uv_loop_close(&loop), 0, "loop closes: no handle or request left");
    root[strlen(root) - 5] = '\0';
    rm_rf(root);
    return tap_done();
}
