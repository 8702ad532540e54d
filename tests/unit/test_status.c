/* test_status.c - the LMDB status store: records, batches, locks, read-only
 * views, schema versions, and survival of kill -9 in the middle of a batch. */
#include "err.h"
#include "status.h"
#include "tap.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <lmdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char g_tmp[64];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* g_tmp + "/" + rel, in one of a few rotating buffers. */
static char *tpath(const char *rel)
{
    static char bufs[8][512];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", g_tmp, rel);
    return b;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* --- a snapshot of every file under a directory: name, size, mtime, hash --- */

#define SNAP_MAX 32
struct snap {
    int n;
    char name[SNAP_MAX][300];
    off_t size[SNAP_MAX];
    struct timespec mtime[SNAP_MAX];
    uint64_t hash[SNAP_MAX];
};
static struct snap *g_snap;

static int snap_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag != FTW_F || g_snap->n >= SNAP_MAX)
        return 0;
    int i = g_snap->n++;
    snprintf(g_snap->name[i], sizeof g_snap->name[i], "%s", path);
    g_snap->size[i] = sb->st_size;
    g_snap->mtime[i] = sb->st_mtim;
    uint64_t h = 0xcbf29ce484222325ull;
    FILE *f = fopen(path, "rb");
    if (f) {
        int c;
        while ((c = getc(f)) != EOF)
            h = (h ^ (unsigned)c) * 0x100000001b3ull;
        fclose(f);
    }
    g_snap->hash[i] = h;
    return 0;
}

static void snap_take(const char *dir, struct snap *s)
{
    memset(s, 0, sizeof *s);
    g_snap = s;
    nftw(dir, snap_one, 16, FTW_PHYS);
}

static bool snap_equal(const struct snap *a, const struct snap *b)
{
    if (a->n != b->n)
        return false;
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->name[i], b->name[i]) != 0 || a->size[i] != b->size[i] ||
            a->mtime[i].tv_sec != b->mtime[i].tv_sec ||
            a->mtime[i].tv_nsec != b->mtime[i].tv_nsec || a->hash[i] != b->hash[i])
            return false;
    return true;
}

/* --- callbacks ------------------------------------------------------------ */

struct intents_seen {
    int n;
    struct status_intent last;
    char tuid[STATUS_TUID_MAX + 1];
    char name[256];
    uint32_t uids[4];
    uint32_t nuids;
    uint32_t uid_sum;
};

static int collect_intent(const struct status_intent *in, void *arg)
{
    struct intents_seen *s = arg;
    s->n++;
    s->last = *in;
    snprintf(s->tuid, sizeof s->tuid, "%s", in->tuid ? in->tuid : "");
    snprintf(s->name, sizeof s->name, "%s", in->name ? in->name : "");
    s->nuids = in->nuids;
    s->uid_sum = 0;
    for (uint32_t i = 0; i < in->nuids; i++) {
        if (i < 4)
            s->uids[i] = in->uids[i];
        s->uid_sum += in->uids[i];
    }
    return 0;
}

static int count_folder(const struct status_folder *f, const char *l, const char *r, void *arg)
{
    (void)f;
    (void)l;
    (void)r;
    (*(int *)arg)++;
    return 0;
}

struct nested {
    struct status *st;
    size_t msgs;
    int rc;
};

/* A read inside a walk's callback: shares the walk's snapshot. */
static int nested_load(const struct status_folder *f, const char *l, const char *r, void *arg)
{
    struct nested *ne = arg;
    struct status_msg *v;
    size_t n;
    (void)l;
    (void)r;
    ne->rc |= status_msg_load(ne->st, f->id, &v, &n);
    free(v);
    ne->msgs += n;
    return 0;
}

static int stop_at_two(const struct status_msg *m, void *arg)
{
    (*(int *)arg)++;
    return m->remote_uid == 2 ? 42 : 0;
}

/* --- tests ---------------------------------------------------------------- */

static void test_paths_and_open(void)
{
    char *p = NULL;
    is_int(status_env_path("/m", "acc", &p), 0, "env path computed");
    is_str(p, "/m/oimap/Account-acc/status.lmdb", "env path layout");
    free(p);
    is_int(status_env_path("/m", "a/b", &p), OIMAP_ENAME, "account with / refused");
    struct status *st = NULL;
    is_int(status_open(tpath("meta"), "..", false, &st), OIMAP_ENAME, "account .. refused");
    is_int(status_open(tpath("meta"), "", false, &st), OIMAP_ENAME, "empty account");
    ok(!exists(tpath("meta")), "refused open created nothing");

    is_int(status_open(tpath("meta"), "acc", false, &st), 0, "open creates store");
    ok(st && !status_is_readonly(st), "writable store");
    ok(exists(tpath("meta/oimap/Account-acc/status.lmdb/data.mdb")), "data.mdb exists");
    ok(exists(tpath("meta/oimap/Account-acc/lock")), "lock file exists");
    struct stat sb;
    stat(tpath("meta/oimap/Account-acc"), &sb);
    is_int(sb.st_mode & 0777, 0700, "account directory is 0700");
    stat(tpath("meta/oimap"), &sb);
    is_int(sb.st_mode & 0777, 0700, "oimap directory is 0700");
    status_close(&st);
    ok(st == NULL, "close nulls the pointer");
    is_int(status_open(tpath("meta"), "acc", false, &st), 0, "reopen");
    status_close(&st);
}

static void test_folders(void)
{
    struct status *st;
    struct status_txn *t;
    struct status_folder f, g;
    is_int(status_open(tpath("meta"), "folders", false, &st), 0, "open");
    is_int(status_folder_lookup(st, "INBOX", "INBOX", &f), -ENOENT, "unknown folder: ENOENT");
    is_int(status_txn_begin(st, &t), 0, "begin");
    struct status_txn *t2;
    is_int(status_txn_begin(st, &t2), -EBUSY, "second transaction refused");
    is_int(status_txn_folder_get_or_create(t, "INBOX", "INBOX", &f), 0, "create INBOX");
    is_int(f.id, 1, "first folder id 1");
    is_int(status_txn_folder_get_or_create(t, "Sent", "Sent Items", &g), 0, "create Sent");
    is_int(g.id, 2, "second folder id 2");
    is_int(status_txn_folder_get_or_create(t, "INBOX", "INBOX", &f), 0, "get INBOX again");
    is_int(f.id, 1, "same id");
    is_int(status_folder_lookup(st, "Sent", "Sent Items", &f), 0, "read sees own batch");
    is_int(status_folder_lookup(st, "Sent", "Sent", &f), -ENOENT, "pair is both names");
    status_txn_abort(&t);
    ok(t == NULL, "abort nulls");
    is_int(status_folder_lookup(st, "INBOX", "INBOX", &f), -ENOENT, "aborted folder gone");

    is_int(status_txn_begin(st, &t), 0, "begin");
    status_txn_folder_get_or_create(t, "INBOX", "INBOX", &f);
    f.uidvalidity[STATUS_LOCAL] = 7;
    f.uidvalidity[STATUS_REMOTE] = 0xfffffffe;
    f.uidnext[STATUS_REMOTE] = 1234;
    f.highestmodseq[STATUS_REMOTE] = 0x123456789abcull;
    f.max_uid[STATUS_LOCAL] = 99;
    f.last_sync = -5;
    f.flags = 3;
    is_int(status_txn_folder_put(t, &f), 0, "folder put");
    char l1[700], l2[700], r1[700];
    memset(l1, 'x', 699);
    l1[699] = '\0';
    memcpy(l2, l1, 700);
    l2[698] = 'y';
    memset(r1, 'r', 699);
    r1[699] = '\0';
    is_int(status_txn_folder_get_or_create(t, l1, r1, &g), 0, "long pair created");
    struct status_folder h;
    is_int(status_txn_folder_get_or_create(t, l2, r1, &h), 0, "long pair differing at the end");
    ok(g.id != h.id && g.id > 0 && h.id > 0, "long names get distinct ids (%u, %u)", g.id, h.id);
    char *huge = malloc(5000);
    memset(huge, 'h', 4999);
    huge[4999] = '\0';
    is_int(status_txn_folder_get_or_create(t, huge, "x", &g), OIMAP_ENAME,
           "5000-byte name refused");
    free(huge);
    is_int(status_txn_commit(&t), 0, "a refused name does not poison the batch");
    status_close(&st);

    is_int(status_open(tpath("meta"), "folders", false, &st), 0, "reopen");
    memset(&g, 0, sizeof g);
    is_int(status_folder_lookup(st, "INBOX", "INBOX", &g), 0, "folder persisted");
    ok(g.id == f.id && g.uidvalidity[0] == 7 && g.uidvalidity[1] == 0xfffffffe &&
           g.uidnext[1] == 1234 && g.highestmodseq[1] == 0x123456789abcull && g.max_uid[0] == 99 &&
           g.last_sync == -5 && g.flags == 3,
       "every folder field round-trips");
    is_int(status_folder_lookup(st, l2, r1, &g), 0, "long pair found after reopen");
    is_int(g.id, h.id, "long pair id");
    int n = 0;
    is_int(status_folder_foreach(st, count_folder, &n), 0, "foreach folders");
    is_int(n, 3, "three folders");
    status_close(&st);
}

static void test_messages(void)
{
    struct status *st;
    struct status_txn *t;
    struct status_folder f, f2;
    struct status_msg m;
    is_int(status_open(tpath("meta"), "msgs", false, &st), 0, "open");
    status_txn_begin(st, &t);
    status_txn_folder_get_or_create(t, "A", "A", &f);
    status_txn_folder_get_or_create(t, "B", "B", &f2);
    static const uint32_t uids[] = {30, 5, 0xffffffffu, 17, 1};
    for (size_t i = 0; i < 5; i++) {
        m = (struct status_msg){.remote_uid = uids[i],
                                .local_uid = uids[i],
                                .flags = STATUS_FLAG_SEEN,
                                .size = 100 + i};
        status_txn_msg_put(t, f.id, &m);
    }
    m = (struct status_msg){.remote_uid = 3, .local_uid = 3};
    status_txn_msg_put(t, f2.id, &m);
    /* IMAP<->IMAP: remote 40 is local 8. */
    m = (struct status_msg){
        .remote_uid = 40, .local_uid = 8, .flags = STATUS_FLAG_FLAGGED, .state = STATUS_MSG_HELD};
    is_int(status_txn_msg_put(t, f.id, &m), 0, "mapped message put");
    is_int(status_txn_commit(&t), 0, "commit");

    struct status_msg *v;
    size_t n;
    is_int(status_msg_load(st, f.id, &v, &n), 0, "load");
    is_int(n, 6, "six messages in folder A");
    bool sorted = n == 6;
    for (size_t i = 1; i < n; i++)
        sorted = sorted && v[i - 1].remote_uid < v[i].remote_uid;
    ok(sorted && v[0].remote_uid == 1 && v[5].remote_uid == 0xffffffffu, "uid order");
    free(v);
    is_int(status_msg_get(st, f.id, 17, &m), 0, "get by remote uid");
    ok(m.local_uid == 17 && m.flags == STATUS_FLAG_SEEN && m.size == 103, "record fields");
    is_int(status_msg_get_local(st, f.id, 8, &m), 0, "get by mapped local uid");
    ok(m.remote_uid == 40 && m.state == STATUS_MSG_HELD, "local 8 -> remote 40");
    is_int(status_msg_get_local(st, f.id, 40, &m), -ENOENT, "remote uid is not a local uid");
    is_int(status_msg_get_local(st, f.id, 5, &m), 0, "identity-mapped local uid");
    is_int(status_msg_get(st, f2.id, 5, &m), -ENOENT, "folders do not mix");

    /* S4: local 8 taken by remote 40. */
    status_txn_begin(st, &t);
    m = (struct status_msg){.remote_uid = 41, .local_uid = 8};
    is_int(status_txn_msg_put(t, f.id, &m), OIMAP_ESTATUS, "duplicate local uid refused");
    m = (struct status_msg){.remote_uid = 42, .local_uid = 42};
    is_int(status_txn_msg_put(t, f.id, &m), OIMAP_ESTATUS, "poisoned transaction refuses more");
    is_int(status_txn_commit(&t), OIMAP_ESTATUS, "commit of poisoned batch fails");
    is_int(status_msg_get(st, f.id, 42, &m), -ENOENT, "nothing of the failed batch written");

    status_txn_begin(st, &t);
    m = (struct status_msg){.remote_uid = 40, .local_uid = 9, .flags = 1};
    is_int(status_txn_msg_put(t, f.id, &m), 0, "remap remote 40 to local 9");
    is_int(status_msg_get_local(st, f.id, 8, &m), -ENOENT, "old local uid released");
    is_int(status_msg_get_local(st, f.id, 9, &m), 0, "new local uid found");
    is_int(status_txn_msg_del(t, f.id, 30), 0, "delete");
    is_int(status_txn_msg_del(t, f.id, 31), -ENOENT, "delete of absent: ENOENT");
    is_int(status_txn_msg_del(t, f.id, 40), 0, "delete mapped");
    is_int(status_txn_commit(&t), 0, "ENOENT does not poison the batch");
    is_int(status_msg_get_local(st, f.id, 9, &m), -ENOENT, "deleted mapping leaves no index");
    is_int(status_msg_get(st, f.id, 30, &m), -ENOENT, "deleted message gone");
    int seen = 0;
    is_int(status_msg_foreach(st, f.id, stop_at_two, &seen), 0, "foreach completes");
    is_int(seen, 4, "foreach visits the four left");
    status_txn_begin(st, &t);
    m = (struct status_msg){.remote_uid = 2, .local_uid = 2};
    status_txn_msg_put(t, f.id, &m);
    status_txn_commit(&t);
    seen = 0;
    is_int(status_msg_foreach(st, f.id, stop_at_two, &seen), 42, "callback stops the walk");
    is_int(seen, 2, "stopped at uid 2");
    struct nested ne = {st, 0, 0};
    is_int(status_folder_foreach(st, nested_load, &ne), 0, "walk with nested reads");
    ok(ne.rc == 0 && ne.msgs == 6, "nested loads saw %zu messages", ne.msgs);
    status_close(&st);
}

/* IMAP<->IMAP half records known on the local side only (remote uid 0). */
static void test_near_only(void)
{
    struct status *st;
    struct status_txn *t;
    struct status_folder f;
    struct status_msg m;
    is_int(status_open(tpath("meta"), "nearonly", false, &st), 0, "open");
    status_txn_begin(st, &t);
    status_txn_folder_get_or_create(t, "L", "R", &f);
    m = (struct status_msg){.remote_uid = 7, .local_uid = 3, .flags = STATUS_FLAG_SEEN};
    is_int(status_txn_msg_put(t, f.id, &m), 0, "pair remote 7 / local 3");
    m = (struct status_msg){
        .local_uid = 9, .flags = STATUS_FLAG_FLAGGED, .size = 55, .state = STATUS_MSG_REMOTE_GONE};
    is_int(status_txn_msg_put(t, f.id, &m), 0, "near-only local 9");
    m = (struct status_msg){.local_uid = 7, .state = STATUS_MSG_REMOTE_GONE};
    is_int(status_txn_msg_put(t, f.id, &m), 0, "near-only local 7 beside remote 7");
    m = (struct status_msg){.remote_uid = 0, .local_uid = 0};
    is_int(status_txn_msg_put(t, f.id, &m), -EINVAL, "no uid at all refused");
    status_txn_abort(&t);
    ok(t == NULL, "aborted");

    status_txn_begin(st, &t);
    status_txn_folder_get_or_create(t, "L", "R", &f);
    m = (struct status_msg){.remote_uid = 7, .local_uid = 3, .flags = STATUS_FLAG_SEEN};
    status_txn_msg_put(t, f.id, &m);
    m = (struct status_msg){
        .local_uid = 9, .flags = STATUS_FLAG_FLAGGED, .size = 55, .state = STATUS_MSG_REMOTE_GONE};
    status_txn_msg_put(t, f.id, &m);
    m = (struct status_msg){.local_uid = 7, .state = STATUS_MSG_REMOTE_GONE};
    status_txn_msg_put(t, f.id, &m);
    is_int(status_txn_commit(&t), 0, "commit");

    struct status_msg *v;
    size_t n;
    is_int(status_msg_load(st, f.id, &v, &n), 0, "load");
    ok(n == 3 && v[0].remote_uid == 0 && v[0].local_uid == 7 && v[1].remote_uid == 0 &&
           v[1].local_uid == 9 && v[1].size == 55 && v[1].flags == STATUS_FLAG_FLAGGED &&
           v[2].remote_uid == 7 && v[2].local_uid == 3,
       "near-only records first, by local uid, then by remote uid");
    free(v);
    is_int(status_msg_get_local(st, f.id, 9, &m), 0, "near-only found by local uid");
    ok(m.remote_uid == 0 && m.state == STATUS_MSG_REMOTE_GONE, "... as a remote-gone half");
    is_int(status_msg_get_local(st, f.id, 3, &m), 0, "mapped pair still found");
    ok(m.remote_uid == 7, "local 3 -> remote 7");
    is_int(status_msg_get(st, f.id, 0, &m), -ENOENT, "remote uid 0 names no record");

    /* S4 across the two key forms. */
    status_txn_begin(st, &t);
    m = (struct status_msg){.local_uid = 3};
    is_int(status_txn_msg_put(t, f.id, &m), OIMAP_ESTATUS, "local uid of a pair: refused");
    status_txn_abort(&t);
    status_txn_begin(st, &t);
    m = (struct status_msg){.remote_uid = 12, .local_uid = 9};
    is_int(status_txn_msg_put(t, f.id, &m), OIMAP_ESTATUS,
           "pairing a local uid held by a near-only record: refused");
    status_txn_abort(&t);

    status_txn_begin(st, &t);
    m = (struct status_msg){
        .local_uid = 9, .flags = STATUS_FLAG_SEEN, .state = STATUS_MSG_REMOTE_GONE};
    is_int(status_txn_msg_put(t, f.id, &m), 0, "near-only record replaced");
    is_int(status_txn_msg_del_local(t, f.id, 7), 0, "near-only 7 deleted by local uid");
    is_int(status_txn_msg_del_local(t, f.id, 3), 0, "pair deleted by its local uid");
    is_int(status_txn_msg_del_local(t, f.id, 3), -ENOENT, "twice: ENOENT");
    is_int(status_txn_msg_del(t, f.id, 0), -ENOENT, "remote uid 0: ENOENT");
    is_int(status_txn_commit(&t), 0, "commit");
    is_int(status_msg_load(st, f.id, &v, &n), 0, "load");
    ok(n == 1 && v[0].local_uid == 9 && v[0].flags == STATUS_FLAG_SEEN, "one record left");
    free(v);
    is_int(status_msg_get(st, f.id, 7, &m), -ENOENT, "pair gone");
    FILE *out = fopen("/dev/null", "w");
    is_int(status_dump_store(st, out), 0, "dump with a near-only record");
    fclose(out);

    /* The folder's keyword names (IMAP<->IMAP keyword bits). */
    char *names;
    size_t len;
    is_int(status_folder_keywords(st, f.id, &names, &len), 0, "no keywords yet");
    ok(names == NULL && len == 0, "none");
    status_txn_begin(st, &t);
    is_int(status_txn_folder_keywords_put(t, f.id, "$Label1\0Work\0", 13), 0, "keywords put");
    is_int(status_txn_folder_keywords_put(t, f.id, "bad", 3), -EINVAL, "unterminated refused");
    status_txn_abort(&t);
    status_txn_begin(st, &t);
    status_txn_folder_keywords_put(t, f.id, "$Label1\0Work\0", 13);
    is_int(status_txn_commit(&t), 0, "commit");
    is_int(status_folder_keywords(st, f.id, &names, &len), 0, "keywords read");
    ok(len == 13 && names && memcmp(names, "$Label1\0Work\0", 13) == 0, "keywords as put");
    free(names);

    /* Forgetting the folder takes the near-only records too. */
    status_txn_begin(st, &t);
    is_int(status_txn_folder_del(t, f.id), 0, "folder deleted");
    is_int(status_txn_commit(&t), 0, "commit");
    is_int(status_msg_get_local(st, f.id, 9, &m), -ENOENT, "near-only record gone with it");
    is_int(status_folder_keywords(st, f.id, &names, &len), 0, "keywords read");
    ok(names == NULL, "keywords gone with it");
    status_close(&st);
}

static void test_intents(void)
{
    struct status *st;
    struct status_txn *t;
    struct status_folder f, g;
    is_int(status_open(tpath("meta"), "intents", false, &st), 0, "open");
    char tuid[STATUS_TUID_LEN + 1], tuid2[STATUS_TUID_LEN + 1];
    is_int(status_make_tuid(tuid), 0, "tuid made");
    status_make_tuid(tuid2);
    is_int(strlen(tuid), STATUS_TUID_LEN, "tuid length");
    ok(strspn(tuid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") ==
           STATUS_TUID_LEN,
       "tuid alphanumeric");
    ok(strcmp(tuid, tuid2) != 0, "tuids differ");

    status_txn_begin(st, &t);
    status_txn_folder_get_or_create(t, "INBOX", "INBOX", &f);
    status_txn_folder_get_or_create(t, "Other", "Other", &g);
    struct status_intent in = {.folder = f.id,
                               .kind = STATUS_INTENT_APPEND,
                               .side = STATUS_REMOTE,
                               .tuid = tuid,
                               .name = "123.x,FMD5=ab:2,S",
                               .size = 4567,
                               .flags = STATUS_FLAG_SEEN};
    is_int(status_txn_intent_put(t, &in), 0, "append intent");
    ok(in.id >= 1 && in.time > 0, "id and time assigned");
    uint64_t first = in.id;
    is_int(status_txn_commit(&t), 0, "intent committed before the action");

    struct intents_seen s = {0};
    is_int(status_intent_foreach(st, f.id, collect_intent, &s), 0, "intent walk");
    is_int(s.n, 1, "one intent");
    ok(s.last.id == first && s.last.kind == STATUS_INTENT_APPEND && s.last.side == STATUS_REMOTE &&
           s.last.size == 4567 && s.last.flags == STATUS_FLAG_SEEN,
       "intent fields");
    is_str(s.tuid, tuid, "tuid round-trips");
    is_str(s.name, "123.x,FMD5=ab:2,S", "name round-trips");

    uint32_t many[1000];
    for (uint32_t i = 0; i < 1000; i++)
        many[i] = i + 1;
    status_txn_begin(st, &t);
    struct status_intent ex = {.folder = g.id,
                               .kind = STATUS_INTENT_EXPUNGE,
                               .side = STATUS_REMOTE,
                               .uids = many,
                               .nuids = 1000};
    is_int(status_txn_intent_put(t, &ex), 0, "expunge intent with 1000 uids");
    ok(ex.id > first, "ids go up");
    in.result_uid = 77; /* APPENDUID arrived: update in place */
    is_int(status_txn_intent_put(t, &in), 0, "intent updated");
    status_txn_commit(&t);
    s = (struct intents_seen){0};
    status_intent_foreach(st, 0, collect_intent, &s);
    is_int(s.n, 2, "two intents over all folders");
    ok(s.nuids == 1000 && s.uid_sum == 500500 && s.uids[3] == 4, "uid list intact");
    s = (struct intents_seen){0};
    status_intent_foreach(st, f.id, collect_intent, &s);
    is_int(s.last.result_uid, 77, "result uid stored");

    /* The result replaces the intent in one commit. */
    status_txn_begin(st, &t);
    struct status_msg m = {.remote_uid = 77, .local_uid = 77, .flags = STATUS_FLAG_SEEN};
    status_txn_msg_put(t, f.id, &m);
    is_int(status_txn_intent_del(t, f.id, first), 0, "intent resolved");
    is_int(status_txn_intent_del(t, f.id, first), -ENOENT, "second delete: ENOENT");
    is_int(status_txn_commit(&t), 0, "commit result");
    s = (struct intents_seen){0};
    status_intent_foreach(st, f.id, collect_intent, &s);
    is_int(s.n, 0, "no intent left in INBOX");
    is_int(status_msg_get(st, f.id, 77, &m), 0, "pairing recorded");

    /* Deleting a folder takes its records along; its id is not reused. */
    status_txn_begin(st, &t);
    m = (struct status_msg){.remote_uid = 5, .local_uid = 500};
    status_txn_msg_put(t, g.id, &m);
    status_txn_commit(&t);
    status_txn_begin(st, &t);
    is_int(status_txn_folder_del(t, g.id), 0, "folder deleted");
    struct status_folder h;
    status_txn_folder_get_or_create(t, "Other", "Other", &h);
    ok(h.id > g.id, "new id for a re-created folder");
    is_int(status_txn_commit(&t), 0, "commit");
    is_int(status_msg_get_local(st, g.id, 500, &m), -ENOENT, "its local index gone");
    is_int(status_msg_get(st, g.id, 5, &m), -ENOENT, "its messages gone");
    s = (struct intents_seen){0};
    status_intent_foreach(st, 0, collect_intent, &s);
    is_int(s.n, 0, "its intents gone");
    status_close(&st);
}

static void test_dump(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    is_int(status_dump(tpath("meta/oimap/Account-intents"), out), 0, "dump by account dir");
    fclose(out);
    ok(buf && strstr(buf, "folder 1 local \"INBOX\" remote \"INBOX\""), "dump shows folder");
    ok(buf && strstr(buf, "msg remote 77 local 77 flags S"), "dump shows message");
    free(buf);

    struct status *st;
    struct status_txn *t;
    struct status_folder f;
    status_open(tpath("meta"), "dump", false, &st);
    status_txn_begin(st, &t);
    status_txn_folder_get_or_create(t, "INBOX", "INBOX", &f);
    struct status_msg m = {.remote_uid = 10,
                           .local_uid = 3,
                           .flags =
                               STATUS_FLAG_DRAFT | STATUS_FLAG_SEEN | STATUS_FLAG_KEYWORD('c')};
    status_txn_msg_put(t, f.id, &m);
    struct status_intent in = {
        .folder = f.id, .kind = STATUS_INTENT_APPEND, .side = STATUS_REMOTE, .tuid = "TUIDxyz"};
    status_txn_intent_put(t, &in);
    status_txn_commit(&t);
    buf = NULL;
    out = open_memstream(&buf, &len);
    is_int(status_dump_store(st, out), 0, "dump of an open store");
    fclose(out);
    ok(buf && strstr(buf, "msg remote 10 local 3 flags DSc"), "uid pair and flags in dump");
    ok(buf && strstr(buf, "append on remote tuid TUIDxyz"), "open intent in dump");
    free(buf);
    status_close(&st);
    out = fopen("/dev/null", "w");
    is_int(status_dump(tpath("nowhere"), out), -ENOENT, "dump of nothing: ENOENT");
    fclose(out);
    char fl[40];
    status_flags_str(0xffffffffu, fl);
    is_str(fl, "DFPRSTabcdefghijklmnopqrstuvwxyz", "all flag letters in order");
}

static void test_readonly(void)
{
    struct status *st, *st2;
    struct status_txn *t;
    struct status_folder f;
    struct status_msg *v;
    size_t n;
    char missing[512], acc[512];
    snprintf(missing, sizeof missing, "%s", tpath("ro-missing"));
    snprintf(acc, sizeof acc, "%s", tpath("meta/oimap/Account-msgs"));
    is_int(status_open(missing, "acc", true, &st), 0, "read-only open of a missing store");
    ok(status_is_readonly(st), "is read-only");
    is_int(status_folder_lookup(st, "INBOX", "INBOX", &f), -ENOENT, "empty view: no folder");
    is_int(status_msg_load(st, 1, &v, &n), 0, "empty view: load");
    ok(n == 0 && v == NULL, "empty view: no messages");
    is_int(status_txn_begin(st, &t), -EROFS, "empty view: no writes");
    status_close(&st);
    ok(!exists(missing), "read-only open created nothing");

    struct snap before, after;
    snap_take(acc, &before);
    ok(before.n >= 3, "snapshot of %d files", before.n);
    is_int(status_open(tpath("meta"), "msgs", true, &st), 0, "read-only open");
    is_int(status_open(tpath("meta"), "msgs", true, &st2), 0, "two read-only opens coexist");
    struct status *w;
    is_int(status_open(tpath("meta"), "msgs", false, &w), OIMAP_ELOCKED,
           "writer refused while read-only views are open");
    is_int(status_folder_lookup(st, "A", "A", &f), 0, "read-only lookup");
    is_int(status_msg_load(st, f.id, &v, &n), 0, "read-only load");
    is_int(n, 5, "read-only sees the messages");
    free(v);
    is_int(status_txn_begin(st, &t), -EROFS, "read-only refuses a transaction");
    FILE *out = fopen("/dev/null", "w");
    is_int(status_dump_store(st, out), 0, "read-only dump");
    fclose(out);
    status_close(&st2);
    status_close(&st);
    snap_take(acc, &after);
    ok(snap_equal(&before, &after), "read-only use changed no byte, size or mtime");
}

/* Fork a child that tries to open the account: 0 opened, 10 locked, 1 other. */
static int child_open(const char *meta, const char *acct)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct status *st;
        int rc = status_open(meta, acct, false, &st);
        if (rc == 0)
            status_close(&st);
        _exit(rc == 0 ? 0 : rc == OIMAP_ELOCKED ? 10 : 1);
    }
    int ws;
    waitpid(pid, &ws, 0);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

static void test_lock(void)
{
    char meta[512];
    snprintf(meta, sizeof meta, "%s", tpath("meta"));
    struct status *st, *st2;
    is_int(status_open(meta, "lock", false, &st), 0, "open");
    is_int(status_open(meta, "lock", false, &st2), OIMAP_ELOCKED, "same process: locked");
    is_int(status_open(meta, "lock", true, &st2), OIMAP_ELOCKED, "read-only beside writer: locked");
    is_int(child_open(meta, "lock"), 10, "other process: OIMAP_ELOCKED at once");
    is_int(child_open(meta, "other"), 0, "another account is independent");
    status_close(&st);
    is_int(child_open(meta, "lock"), 0, "other process opens after close");

    /* A child holding the lock, then killed: no stale lock remains. */
    int p[2];
    if (pipe(p) < 0)
        return;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        int rc = status_open(meta, "lock", false, &st);
        char c = rc == 0 ? 'y' : 'n';
        (void)!write(p[1], &c, 1);
        pause();
        _exit(0);
    }
    close(p[1]);
    char c = 0;
    (void)!read(p[0], &c, 1);
    close(p[0]);
    is_int(c, 'y', "child holds the lock");
    is_int(status_open(meta, "lock", false, &st), OIMAP_ELOCKED, "parent refused");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    is_int(status_open(meta, "lock", false, &st), 0, "lock of a killed process is gone");
    status_close(&st);
}

/* Write a schema version behind the store's back (LMDB directly). */
static int poke_schema(const char *envdir, unsigned char v3)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    unsigned char ver[4] = {0, 0, 0, v3};
    MDB_val k = {6, "schema"}, v = {4, ver};
    int rc = mdb_env_create(&env);
    mdb_env_set_maxdbs(env, 8);
    rc = rc ? rc : mdb_env_open(env, envdir, 0, 0600);
    rc = rc ? rc : mdb_txn_begin(env, NULL, 0, &txn);
    rc = rc ? rc : mdb_dbi_open(txn, "meta", 0, &dbi);
    rc = rc ? rc : mdb_put(txn, dbi, &k, &v, 0);
    rc = rc ? rc : mdb_txn_commit(txn);
    mdb_env_close(env);
    return rc;
}

static int read_schema(const char *envdir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {6, "schema"}, v;
    int ver = -1;
    int rc = mdb_env_create(&env);
    mdb_env_set_maxdbs(env, 8);
    rc = rc ? rc : mdb_env_open(env, envdir, MDB_RDONLY, 0600);
    rc = rc ? rc : mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    rc = rc ? rc : mdb_dbi_open(txn, "meta", 0, &dbi);
    if (rc == 0 && mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == 4)
        ver = ((unsigned char *)v.mv_data)[3];
    if (rc == 0)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    return ver;
}

static void test_schema(void)
{
    char meta[512];
    snprintf(meta, sizeof meta, "%s", tpath("meta"));
    struct status *st;
    is_int(status_open(meta, "schema", false, &st), 0, "open");
    status_close(&st);
    char *envdir;
    status_env_path(meta, "schema", &envdir);
    is_int(poke_schema(envdir, 99), 0, "schema version set to 99 behind our back");
    is_int(status_open(meta, "schema", false, &st), OIMAP_ESTATUS, "newer schema refused");
    is_int(status_open(meta, "schema", true, &st), OIMAP_ESTATUS, "also read-only");
    FILE *out = fopen("/dev/null", "w");
    is_int(status_dump(envdir, out), OIMAP_ESTATUS, "dump refuses too");
    fclose(out);
    is_int(read_schema(envdir), 99, "refused store left as it was");
    free(envdir);
}

/* A version 1 store (what oimap wrote before near-only records): read as it
 * is, migrated to version 2 by a writable open, its records kept. */
static void test_schema_migration(void)
{
    char meta[512];
    snprintf(meta, sizeof meta, "%s", tpath("meta"));
    struct status *st;
    struct status_txn *t;
    struct status_folder f;
    struct status_msg m;
    is_int(status_open(meta, "v1", false, &st), 0, "open");
    status_txn_begin(st, &t);
    status_txn_folder_get_or_create(t, "INBOX", "INBOX", &f);
    m = (struct status_msg){.remote_uid = 4, .local_uid = 4, .flags = STATUS_FLAG_SEEN};
    status_txn_msg_put(t, f.id, &m);
    is_int(status_txn_commit(&t), 0, "a record");
    status_close(&st);
    char *envdir;
    status_env_path(meta, "v1", &envdir);
    is_int(read_schema(envdir), (int)STATUS_SCHEMA_VERSION, "new stores get the current version");
    is_int(poke_schema(envdir, 1), 0, "store set back to version 1");

    is_int(status_open(meta, "v1", true, &st), 0, "version 1 opens read-only");
    is_int(status_msg_get(st, f.id, 4, &m), 0, "its record reads");
    status_close(&st);
    is_int(read_schema(envdir), 1, "a read-only open migrates nothing");

    is_int(status_open(meta, "v1", false, &st), 0, "version 1 opens writable");
    is_int(status_msg_get(st, f.id, 4, &m), 0, "record kept");
    ok(m.local_uid == 4 && m.flags == STATUS_FLAG_SEEN, "record unchanged");
    status_txn_begin(st, &t);
    m = (struct status_msg){.local_uid = 8, .state = STATUS_MSG_REMOTE_GONE};
    is_int(status_txn_msg_put(t, f.id, &m), 0, "near-only record in the migrated store");
    is_int(status_txn_commit(&t), 0, "commit");
    status_close(&st);
    is_int(read_schema(envdir), 2, "migrated to version 2");
    is_int(status_open(meta, "v1", false, &st), 0, "reopens");
    is_int(status_msg_get_local(st, f.id, 8, &m), 0, "near-only record there");
    status_close(&st);
    free(envdir);
}

static void test_growth(void)
{
    struct status *st;
    struct status_txn *t;
    struct status_folder f;
    struct status_opts o = {.initial_mapsize = 64 * 1024};
    is_int(status_open_opts(tpath("meta"), "grow", &o, &st), 0, "open with 64 KiB map");
    status_txn_begin(st, &t);
    status_txn_folder_get_or_create(t, "INBOX", "INBOX", &f);
    int bad = 0;
    for (uint32_t u = 1; u <= 50000; u++) {
        struct status_msg m = {.remote_uid = u, .local_uid = u + 7, .size = u};
        bad += status_txn_msg_put(t, f.id, &m) != 0;
    }
    is_int(bad, 0, "50,000 puts through map growth");
    is_int(status_txn_commit(&t), 0, "commit after growth");
    struct status_msg *v;
    size_t n;
    status_msg_load(st, f.id, &v, &n);
    bool good = n == 50000;
    for (size_t i = 0; good && i < n; i++)
        good = v[i].remote_uid == i + 1 && v[i].local_uid == i + 8 && v[i].size == i + 1;
    ok(good, "all 50,000 records intact after replay");
    free(v);
    struct status_msg m;
    is_int(status_msg_get_local(st, f.id, 40007, &m), 0, "local index intact after replay");
    is_int(m.remote_uid, 40000, "local 40007 -> remote 40000");
    status_close(&st);
}

static void test_performance(void)
{
    struct status *st;
    struct status_txn *t;
    struct status_folder f, g;
    is_int(status_open(tpath("meta"), "perf", false, &st), 0, "open");
    double t0 = now_ms();
    status_txn_begin(st, &t);
    status_txn_folder_get_or_create(t, "INBOX", "INBOX", &f);
    int bad = 0;
    for (uint32_t u = 1; u <= 10000; u++) {
        struct status_msg m = {.remote_uid = u, .local_uid = u, .flags = u & 31, .size = 4000};
        bad += status_txn_msg_put(t, f.id, &m) != 0;
    }
    double t1 = now_ms();
    is_int(status_txn_commit(&t), 0, "10,000 in one commit");
    double t2 = now_ms();
    is_int(bad, 0, "no put failed");
    printf("# 10,000 message puts: %.2f ms, commit (fsync) %.2f ms\n", t1 - t0, t2 - t1);

    status_txn_begin(st, &t);
    status_txn_folder_get_or_create(t, "Big", "Big", &g);
    for (uint32_t u = 1; u <= 100000; u++) {
        struct status_msg m = {.remote_uid = u * 2, .local_uid = u * 2, .size = 1};
        status_txn_msg_put(t, g.id, &m);
    }
    t0 = now_ms();
    is_int(status_txn_commit(&t), 0, "100,000 committed");
    t1 = now_ms();
    printf("# 100,000 message commit: %.2f ms\n", t1 - t0);
    double best = 1e9;
    size_t n = 0;
    for (int i = 0; i < 5; i++) {
        struct status_msg *v;
        t0 = now_ms();
        status_msg_load(st, g.id, &v, &n);
        t1 = now_ms();
        free(v);
        if (t1 - t0 < best)
            best = t1 - t0;
    }
    is_int(n, 100000, "100,000 loaded");
    printf("# load of a 100,000-message folder: %.2f ms (best of 5)\n", best);
    ok(best < 250, "bulk load is fast (%.2f ms)", best);
    t0 = now_ms();
    struct status_msg m;
    int found = 0;
    for (uint32_t u = 1; u <= 100000; u++)
        found += status_msg_get(st, g.id, u * 2, &m) == 0;
    t1 = now_ms();
    is_int(found, 100000, "point lookups");
    printf("# 100,000 point lookups: %.2f ms\n", t1 - t0);
    status_close(&st);
}

/* --- kill -9 in the middle of a big batch ----------------------------------- */

#define CRASH_BASE 1000
#define CRASH_BIG 200000

/* The child: commit state A (generation 1, CRASH_BASE messages of size 1),
 * tell the parent, then commit generation after generation of CRASH_BIG
 * messages whose size is the generation, until killed. */
static void crash_child(const char *meta, int fd)
{
    struct status *st;
    struct status_txn *t;
    struct status_folder f;
    if (status_open(meta, "crash", false, &st) || status_txn_begin(st, &t) ||
        status_txn_folder_get_or_create(t, "INBOX", "INBOX", &f))
        _exit(1);
    for (uint32_t u = 1; u <= CRASH_BASE; u++) {
        struct status_msg m = {.remote_uid = u, .local_uid = u, .size = 1};
        if (status_txn_msg_put(t, f.id, &m))
            _exit(1);
    }
    f.last_sync = 1;
    if (status_txn_folder_put(t, &f) || status_txn_commit(&t))
        _exit(1);
    (void)!write(fd, "A", 1);
    for (int64_t gen = 2;; gen++) {
        if (status_txn_begin(st, &t))
            _exit(1);
        for (uint32_t u = 1; u <= CRASH_BIG; u++) {
            struct status_msg m = {.remote_uid = u, .local_uid = u, .size = (uint64_t)gen};
            if (status_txn_msg_put(t, f.id, &m))
                _exit(1);
        }
        f.last_sync = gen;
        if (status_txn_folder_put(t, &f) || status_txn_commit(&t))
            _exit(1);
    }
}

static void test_crash(void)
{
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    printf("# kill -9 test, seed %u\n", seed);
    srand(seed);
    int intact = 0, reopened = 0, later = 0;
    for (int round = 0; round < 10; round++) {
        char meta[128];
        snprintf(meta, sizeof meta, "%s/crash%d", g_tmp, round);
        int p[2];
        if (pipe(p) < 0)
            return;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            crash_child(meta, p[1]);
        }
        close(p[1]);
        char c = 0;
        (void)!read(p[0], &c, 1);
        close(p[0]);
        int delay_ms = rand() % 700;
        usleep((useconds_t)delay_ms * 1000);
        kill(pid, SIGKILL);
        int ws;
        waitpid(pid, &ws, 0);
        bool killed = WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL;

        struct status *st;
        int rc = status_open(meta, "crash", false, &st);
        if (rc == 0)
            reopened++;
        struct status_folder f = {0};
        struct status_msg *v = NULL;
        size_t n = 0;
        bool good = c == 'A' && killed && rc == 0 &&
                    status_folder_lookup(st, "INBOX", "INBOX", &f) == 0 &&
                    status_msg_load(st, f.id, &v, &n) == 0;
        int64_t gen = f.last_sync;
        if (good)
            good = gen == 1 ? n == CRASH_BASE : gen > 1 && n == CRASH_BIG;
        for (size_t i = 0; good && i < n; i++)
            good = v[i].remote_uid == i + 1 && v[i].size == (uint64_t)gen;
        free(v);
        /* And the store takes writes again. */
        struct status_txn *t;
        if (good &&
            (status_txn_begin(st, &t) || status_txn_folder_put(t, &f) || status_txn_commit(&t)))
            good = false;
        if (rc == 0)
            status_close(&st);
        intact += good;
        later += good && gen > 1;
        printf("# round %d: killed after %d ms, found generation %" PRId64 " (%zu messages)%s\n",
               round, delay_ms, gen, n, good ? "" : " BROKEN");
        rm_rf(meta);
    }
    is_int(reopened, 10, "store reopened (lock acquired) after every kill -9");
    is_int(intact, 10, "every kill left one whole committed state, no partial batch");
    printf("# %d of 10 kills came after a big batch had committed\n", later);
}

int main(void)
{
    snprintf(g_tmp, sizeof g_tmp, "/tmp/oimap-test-status-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_paths_and_open();
    test_folders();
    test_messages();
    test_near_only();
    test_intents();
    test_dump();
    test_readonly();
    test_lock();
    test_schema();
    test_schema_migration();
    test_growth();
    test_performance();
    test_crash();
    rm_rf(g_tmp);
    ok(!exists(g_tmp), "temporary directory removed");
    return tap_done();
}
