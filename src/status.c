/* status.c - the LMDB status store (schema and invariants: include/status.h).
 *
 * Durability: LMDB's defaults (a commit fsyncs data then meta page), never
 * MDB_NOSYNC/NOMETASYNC/WRITEMAP: the crash promise rests on a commit being
 * atomic and on disk when status_txn_commit() returns.
 *
 * A full map is not an error the sync engine should see in the middle of a
 * batch: every write of a transaction is also appended to an in-memory log,
 * so on MDB_MAP_FULL we abort, double the map and replay the log into a new
 * transaction.  The log costs a few dozen bytes per write, far less than the
 * batch it protects.
 */
#include "status.h"
#include "err.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAPSIZE ((size_t)1 << 30)
#if SIZE_MAX > 0xffffffffu
#define MAX_MAPSIZE ((size_t)1 << 40)
#else
#define MAX_MAPSIZE ((size_t)3 << 29)
#endif
#define NAME_MAX_LEN 4096   /* a folder name longer than this is refused */
#define FNAME_KEY_RAW 400   /* longer folder-pair keys are cut and hashed */
#define MAX_UIDS (1u << 22) /* uids one intent may carry */
#define MSG_VAL_LEN 24
#define FOLDER_HDR 60
#define INTENT_HDR 44

enum { DB_META, DB_FNAMES, DB_FOLDERS, DB_MSGS, DB_LUIDS, DB_INTENTS, DB_LABELS, DB_N };
static const char *const db_names[DB_N] = {"meta",  "fnames",  "folders", "msgs",
                                           "luids", "intents", "labels"};

struct status {
    char *envdir;   /* .../Account-<name>/status.lmdb */
    char *lockpath; /* .../Account-<name>/lock */
    MDB_env *env;   /* NULL: read-only view of a store that does not exist */
    MDB_dbi dbi[DB_N];
    MDB_txn *rtxn; /* cached read transaction, reset between uses */
    int rdepth;    /* nested reads (a read inside a walk's callback) share it */
    struct status_txn *wtxn;
    int lockfd;
    bool readonly;
    bool no_labels; /* a read-only view of a store written before the labels table */
    size_t mapsize;
};

struct status_txn {
    struct status *st;
    MDB_txn *txn;
    int err;            /* non-zero: poisoned, commit aborts */
    unsigned char *log; /* replay log: {u8 db, u8 op, u16 klen, u32 vlen, key, val}* */
    size_t log_len, log_cap;
    size_t nput, ndel;
    unsigned grows;
};

/* --- small helpers ------------------------------------------------------- */

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static int map_err(int rc)
{
    if (rc == 0)
        return 0;
    if (rc == MDB_NOTFOUND)
        return -ENOENT;
    int e = -rc; /* LMDB passes errno values (> 0) through; its own codes are < 0 */
    return e < 0 ? e : OIMAP_ESTATUS;
}

static int lmdb_fail(const char *path, const char *what, int rc)
{
    log_error("status store %s: %s: %s", path, what, mdb_strerror(rc));
    return map_err(rc);
}

static int corrupt(const struct status *st, const char *what)
{
    log_error("status store %s: corrupt record (%s); move the directory away to start afresh",
              st->envdir, what);
    return OIMAP_ESTATUS;
}

static char *path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (p)
        snprintf(p, la + lb + 2, "%s/%s", a, b);
    return p;
}

/* mkdir -p with mode 0700 for the components we create; existing ones are
 * left as they are (the user's ~/.offlineimap keeps its mode). */
static int mkdir_p(char *path)
{
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        int rc = mkdir(path, 0700) < 0 && errno != EEXIST ? -errno : 0;
        *p = c;
        if (rc < 0)
            return rc;
        if (c == '\0')
            return 0;
    }
}

static void fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static bool account_name_ok(const char *a)
{
    return a && *a && strcmp(a, ".") != 0 && strcmp(a, "..") != 0 && !strchr(a, '/') &&
           strlen(a) < 1024;
}

int status_env_path(const char *metadata, const char *account, char **path_r)
{
    *path_r = NULL;
    if (!metadata || !*metadata || !account_name_ok(account))
        return OIMAP_ENAME;
    size_t n = strlen(metadata) + strlen(account) + 40;
    char *p = malloc(n);
    if (!p)
        return -ENOMEM;
    snprintf(p, n, "%s/oimap/Account-%s/status.lmdb", metadata, account);
    *path_r = p;
    return 0;
}

/* --- the account lock ------------------------------------------------------
 * An open-file-description lock (F_OFD_SETLK): it dies with the process (no
 * stale lock after kill -9), conflicts between two opens in one process too
 * (which LMDB forbids anyway), and is not dropped by closing some other fd of
 * the file as a classic POSIX lock would be.  LMDB's lock.mdb is no use here:
 * it coordinates readers and writers, it does not exclude a second writer
 * process. */
static int lock_fd(int fd, short type)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
#ifdef F_OFD_SETLK
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return 0;
    if (errno != EINVAL)
        return -errno;
#endif
    return fcntl(fd, F_SETLK, &fl) == 0 ? 0 : -errno;
}

static int take_lock(struct status *st, const char *account)
{
    int fd = open(st->lockpath, (st->readonly ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (st->readonly && errno == ENOENT)
            return 1; /* nothing to lock against: LMDB's own locking is used */
        int rc = -errno;
        log_error("status store %s: cannot open lock file: %s", st->lockpath, strerror(errno));
        return rc;
    }
    int rc = lock_fd(fd, st->readonly ? F_RDLCK : F_WRLCK);
    if (rc == -EAGAIN || rc == -EACCES) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        log_error("account %s is in use by another oimap%s%s%s (lock %s)", account,
                  *buf ? " (pid " : "", buf, *buf ? ")" : "", st->lockpath);
        close(fd);
        return OIMAP_ELOCKED;
    }
    if (rc < 0) {
        log_error("status store %s: cannot lock: %s", st->lockpath, strerror(-rc));
        close(fd);
        return rc;
    }
    if (!st->readonly) {
        /* Who holds it, for the message above; not needed for correctness. */
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
            LOG_DEBUG(LOGC_STATUS, "cannot write pid to %s", st->lockpath);
    }
    st->lockfd = fd;
    return 0;
}

/* --- environment set-up ---------------------------------------------------- */

/* Version 2 only added a key form (near-only half records, see msg_key_near)
 * that version 1 never wrote: a version 1 store is a valid version 2 store,
 * so migrating it is writing the new number, in the transaction that opens
 * the tables (a kill -9 leaves it at 1 or at 2, both fine).  The number goes
 * up so that an older oimap refuses the store instead of calling those keys
 * corrupt. */
static int migrate_schema(struct status *st, MDB_txn *txn, uint32_t from)
{
    unsigned char b[4];
    put32(b, STATUS_SCHEMA_VERSION);
    MDB_val k = {6, "schema"}, v = {4, b};
    int rc = mdb_put(txn, st->dbi[DB_META], &k, &v, 0);
    if (rc)
        return lmdb_fail(st->envdir, "write schema version", rc);
    log_info("status store %s: schema version %" PRIu32 " migrated to %u", st->envdir, from,
             STATUS_SCHEMA_VERSION);
    return 0;
}

static int check_schema(struct status *st, MDB_txn *txn, bool create)
{
    MDB_val k = {6, "schema"}, v;
    int rc = mdb_get(txn, st->dbi[DB_META], &k, &v);
    if (rc == MDB_NOTFOUND) {
        if (!create) {
            log_error("status store %s: no schema version; not an oimap status store?", st->envdir);
            return OIMAP_ESTATUS;
        }
        unsigned char b[4];
        put32(b, STATUS_SCHEMA_VERSION);
        v.mv_size = 4;
        v.mv_data = b;
        rc = mdb_put(txn, st->dbi[DB_META], &k, &v, 0);
        if (rc)
            return lmdb_fail(st->envdir, "write schema version", rc);
        LOG_DEBUG(LOGC_STATUS, "%s: new store, schema %u", st->envdir, STATUS_SCHEMA_VERSION);
        return 0;
    }
    if (rc)
        return lmdb_fail(st->envdir, "read schema version", rc);
    if (v.mv_size != 4)
        return corrupt(st, "schema version");
    uint32_t ver = get32(v.mv_data);
    if (ver > STATUS_SCHEMA_VERSION) {
        log_error("status store %s has schema version %" PRIu32 ", this oimap knows up to %u: "
                  "use a newer oimap (the store was left untouched)",
                  st->envdir, ver, STATUS_SCHEMA_VERSION);
        return OIMAP_ESTATUS;
    }
    if (ver < 1)
        return corrupt(st, "schema version 0");
    if (ver < STATUS_SCHEMA_VERSION && create)
        return migrate_schema(st, txn, ver);
    /* Read-only: a version 1 store reads as version 2 (see migrate_schema). */
    return 0;
}

static int open_dbs(struct status *st, bool create)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(st->env, NULL, create ? 0 : MDB_RDONLY, &txn);
    if (rc)
        return lmdb_fail(st->envdir, "begin", rc);
    for (int i = 0; i < DB_N; i++) {
        rc = mdb_dbi_open(txn, db_names[i], create ? MDB_CREATE : 0, &st->dbi[i]);
        if (rc == MDB_NOTFOUND && !create && i == DB_LABELS) {
            st->no_labels = true; /* added later than the others: no labels yet */
            continue;
        }
        if (rc == MDB_NOTFOUND && !create) {
            mdb_txn_abort(txn);
            return 1; /* an environment without our tables: an empty view */
        }
        if (rc) {
            mdb_txn_abort(txn);
            return lmdb_fail(st->envdir, "open table", rc);
        }
    }
    rc = check_schema(st, txn, create);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    /* Committing (even a read-only transaction) keeps the table handles. */
    rc = mdb_txn_commit(txn);
    return rc ? lmdb_fail(st->envdir, "commit", rc) : 0;
}

static int env_open(struct status *st, size_t mapsize, unsigned flags)
{
    int rc = mdb_env_create(&st->env);
    if (rc)
        return lmdb_fail(st->envdir, "create environment", rc);
    rc = mdb_env_set_maxdbs(st->env, DB_N + 2);
    if (!rc && mapsize)
        rc = mdb_env_set_mapsize(st->env, mapsize);
    if (!rc)
        rc = mdb_env_open(st->env, st->envdir, flags | MDB_NOTLS, 0600);
    if (rc) {
        mdb_env_close(st->env);
        st->env = NULL;
        return lmdb_fail(st->envdir, "open", rc);
    }
    MDB_envinfo info;
    mdb_env_info(st->env, &info);
    st->mapsize = info.me_mapsize;
    return 0;
}

static void status_free(struct status *st)
{
    if (st->rtxn)
        mdb_txn_abort(st->rtxn);
    if (st->env)
        mdb_env_close(st->env);
    if (st->lockfd >= 0)
        close(st->lockfd);
    free(st->envdir);
    free(st->lockpath);
    free(st);
}

int status_open_opts(const char *metadata, const char *account, const struct status_opts *opts,
                     struct status **st_r)
{
    *st_r = NULL;
    if (!account_name_ok(account) || !metadata || !*metadata) {
        log_error("account name '%s' cannot name a status directory", account ? account : "");
        return OIMAP_ENAME;
    }
    struct status *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    st->lockfd = -1;
    st->readonly = opts && opts->readonly;
    char *accdir = NULL;
    int rc = status_env_path(metadata, account, &st->envdir);
    if (rc)
        goto fail;
    accdir = strdup(st->envdir);
    if (!accdir) {
        rc = -ENOMEM;
        goto fail;
    }
    *strrchr(accdir, '/') = '\0';
    st->lockpath = path_join(accdir, "lock");
    char *datafile = path_join(st->envdir, "data.mdb");
    if (!st->lockpath || !datafile) {
        free(datafile);
        rc = -ENOMEM;
        goto fail;
    }
    struct stat sb;
    bool exists = stat(datafile, &sb) == 0;
    free(datafile);

    if (st->readonly) {
        if (!exists) {
            /* Dry run before the first sync: an empty view, no file created. */
            LOG_DEBUG(LOGC_STATUS, "%s: absent, read-only empty view", st->envdir);
            goto done;
        }
        rc = take_lock(st, account);
        if (rc < 0)
            goto fail;
        /* Holding the shared account lock, no writer can run: MDB_NOLOCK
         * keeps even lock.mdb untouched. */
        rc = env_open(st, 0, MDB_RDONLY | (rc == 0 ? MDB_NOLOCK : 0));
        if (rc)
            goto fail;
        rc = open_dbs(st, false);
        if (rc < 0)
            goto fail;
        if (rc == 1) {
            mdb_env_close(st->env);
            st->env = NULL;
        }
        goto done;
    }

    rc = mkdir_p(accdir);
    if (rc) {
        log_error("status store %s: cannot create directory: %s", accdir, strerror(-rc));
        goto fail;
    }
    rc = take_lock(st, account);
    if (rc)
        goto fail;
    if (mkdir(st->envdir, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        log_error("status store %s: cannot create directory: %s", st->envdir, strerror(errno));
        goto fail;
    }
    size_t want = opts && opts->initial_mapsize ? opts->initial_mapsize : DEFAULT_MAPSIZE;
    rc = env_open(st, want, 0);
    if (rc)
        goto fail;
    int dead = 0;
    rc = mdb_reader_check(st->env, &dead); /* slots of killed processes */
    if (rc) {
        rc = lmdb_fail(st->envdir, "reader check", rc);
        goto fail;
    }
    if (dead)
        LOG_DEBUG(LOGC_STATUS, "%s: cleared %d stale reader(s)", st->envdir, dead);
    rc = open_dbs(st, true);
    if (rc)
        goto fail;
    if (!exists) {
        /* Make the new directory entries durable, or a power cut could lose
         * the store's very existence after its first commit. */
        fsync_dir(st->envdir);
        fsync_dir(accdir);
        *strrchr(accdir, '/') = '\0';
        fsync_dir(accdir);
    }
done:
    LOG_DEBUG(LOGC_STATUS, "%s: opened%s, map %zu KiB", st->envdir,
              st->readonly ? " read-only" : "", st->mapsize >> 10);
    free(accdir);
    *st_r = st;
    return 0;
fail:
    free(accdir);
    status_free(st);
    return rc;
}

int status_open(const char *metadata, const char *account, bool readonly, struct status **st_r)
{
    struct status_opts o = {.readonly = readonly};
    return status_open_opts(metadata, account, &o, st_r);
}

void status_close(struct status **stp)
{
    struct status *st = *stp;
    if (!st)
        return;
    if (st->wtxn) {
        log_warn("status store %s: closed with a transaction open; it was aborted", st->envdir);
        struct status_txn *t = st->wtxn;
        status_txn_abort(&t);
    }
    LOG_DEBUG(LOGC_STATUS, "%s: closed", st->envdir);
    status_free(st);
    *stp = NULL;
}

bool status_is_readonly(const struct status *st)
{
    return st->readonly;
}

const char *status_env_dir(const struct status *st)
{
    return st->envdir;
}

/* --- read transactions ----------------------------------------------------- */

#define EMPTY_VIEW 1

/* The transaction reads go through: the open write transaction (a batch reads
 * its own writes), else the cached read transaction renewed on a fresh
 * snapshot.  Returns EMPTY_VIEW for a store that does not exist. */
static int r_begin(struct status *st, MDB_txn **txn_r)
{
    if (st->wtxn) {
        if (st->wtxn->err)
            return st->wtxn->err;
        *txn_r = st->wtxn->txn;
        return 0;
    }
    if (!st->env)
        return EMPTY_VIEW;
    if (st->rdepth > 0) {
        st->rdepth++;
        *txn_r = st->rtxn;
        return 0;
    }
    int rc =
        st->rtxn ? mdb_txn_renew(st->rtxn) : mdb_txn_begin(st->env, NULL, MDB_RDONLY, &st->rtxn);
    if (rc) {
        if (st->rtxn) {
            mdb_txn_abort(st->rtxn);
            st->rtxn = NULL;
        }
        return lmdb_fail(st->envdir, "begin read", rc);
    }
    st->rdepth = 1;
    *txn_r = st->rtxn;
    return 0;
}

static void r_end(struct status *st, MDB_txn *txn)
{
    if (txn == st->rtxn && --st->rdepth == 0)
        mdb_txn_reset(txn); /* drop the snapshot so old pages can be reused */
}

/* --- record codecs ----------------------------------------------------------- */

static void msg_key(unsigned char *k, uint32_t folder, uint32_t uid)
{
    put32(k, folder);
    put32(k + 4, uid);
}

/* The meta key of a folder's keyword names: "kw" u32 folder. */
static void kw_key(unsigned char *k, uint32_t folder)
{
    k[0] = 'k';
    k[1] = 'w';
    put32(k + 2, folder);
}

/* A near-only half record (remote uid 0, IMAP<->IMAP) has no remote uid to
 * be keyed by: its key is {folder, 0, local uid}.  12 bytes, so it can never
 * be mistaken for a remote uid's 8-byte key; it sorts before every remote
 * uid of its folder. */
#define MSG_KEY_NEAR 12
static void msg_key_near(unsigned char *k, uint32_t folder, uint32_t luid)
{
    put32(k, folder);
    put32(k + 4, 0);
    put32(k + 8, luid);
}

static void msg_encode(unsigned char *v, const struct status_msg *m)
{
    memset(v, 0, MSG_VAL_LEN);
    put32(v, m->local_uid);
    put32(v + 4, m->flags);
    put64(v + 8, m->size);
    v[16] = m->state;
}

static int msg_decode(const struct status *st, const MDB_val *k, const MDB_val *v,
                      struct status_msg *m)
{
    const unsigned char *kp = k->mv_data;
    bool near_only = k->mv_size == MSG_KEY_NEAR && get32(kp + 4) == 0;
    if ((k->mv_size != 8 && !near_only) || v->mv_size < MSG_VAL_LEN)
        return corrupt(st, "message");
    const unsigned char *p = v->mv_data;
    m->remote_uid = get32(kp + 4);
    m->local_uid = get32(p);
    if (near_only && (!m->local_uid || m->local_uid != get32(kp + 8)))
        return corrupt(st, "near-only message");
    m->flags = get32(p + 4);
    m->size = get64(p + 8);
    m->state = p[16];
    return 0;
}

static void folder_encode(unsigned char *v, const struct status_folder *f, const char *local,
                          size_t ll, const char *remote, size_t rl)
{
    put32(v, f->id);
    put32(v + 4, f->flags);
    for (int s = 0; s < 2; s++) {
        put32(v + 8 + 4 * s, f->uidvalidity[s]);
        put32(v + 16 + 4 * s, f->uidnext[s]);
        put64(v + 24 + 8 * s, f->highestmodseq[s]);
        put32(v + 40 + 4 * s, f->max_uid[s]);
    }
    put64(v + 48, (uint64_t)f->last_sync);
    put16(v + 56, (uint16_t)ll);
    put16(v + 58, (uint16_t)rl);
    memcpy(v + FOLDER_HDR, local, ll);
    memcpy(v + FOLDER_HDR + ll, remote, rl);
}

/* Decode a folder record; *local_r and *remote_r (and their lengths) point into
 * the LMDB value, not NUL-terminated. */
static int folder_decode(const struct status *st, const MDB_val *v, struct status_folder *f,
                         const char **local_r, size_t *ll_r, const char **remote_r, size_t *rl_r)
{
    const unsigned char *p = v->mv_data;
    if (v->mv_size < FOLDER_HDR)
        return corrupt(st, "folder");
    size_t ll = get16(p + 56), rl = get16(p + 58);
    if (v->mv_size < FOLDER_HDR + ll + rl)
        return corrupt(st, "folder names");
    f->id = get32(p);
    f->flags = get32(p + 4);
    for (int s = 0; s < 2; s++) {
        f->uidvalidity[s] = get32(p + 8 + 4 * s);
        f->uidnext[s] = get32(p + 16 + 4 * s);
        f->highestmodseq[s] = get64(p + 24 + 8 * s);
        f->max_uid[s] = get32(p + 40 + 4 * s);
    }
    f->last_sync = (int64_t)get64(p + 48);
    if (local_r) {
        *local_r = (const char *)p + FOLDER_HDR;
        *ll_r = ll;
        *remote_r = (const char *)p + FOLDER_HDR + ll;
        *rl_r = rl;
    }
    return 0;
}

static uint64_t fnv1a(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* The fnames key of a folder pair: "local\0remote", or for long pairs its
 * first FNAME_KEY_RAW bytes, "\1" and a 64-bit hash of the whole (LMDB keys
 * are at most 511 bytes).  k must hold FNAME_KEY_RAW + 18 bytes. */
static size_t fname_key(unsigned char *k, const char *local, size_t ll, const char *remote,
                        size_t rl)
{
    if (ll + 1 + rl <= FNAME_KEY_RAW) {
        memcpy(k, local, ll);
        k[ll] = 0;
        memcpy(k + ll + 1, remote, rl);
        return ll + 1 + rl;
    }
    uint64_t h = fnv1a(0xcbf29ce484222325ull, local, ll + 1); /* includes the NUL */
    h = fnv1a(h, remote, rl);
    size_t n = 0;
    for (size_t i = 0; i < ll + 1 + rl && n < FNAME_KEY_RAW; i++, n++)
        k[n] = i < ll ? (unsigned char)local[i] : i == ll ? 0 : (unsigned char)remote[i - ll - 1];
    k[n++] = 1;
    put64(k + n, h);
    n += 8;
    return n;
}

/* --- reads ------------------------------------------------------------------- */

static int folder_read(struct status *st, MDB_txn *txn, uint32_t id, struct status_folder *f,
                       const char **local_r, size_t *ll_r, const char **remote_r, size_t *rl_r)
{
    unsigned char kb[4];
    put32(kb, id);
    MDB_val k = {4, kb}, v;
    int rc = mdb_get(txn, st->dbi[DB_FOLDERS], &k, &v);
    if (rc)
        return rc == MDB_NOTFOUND ? -ENOENT : lmdb_fail(st->envdir, "read folder", rc);
    return folder_decode(st, &v, f, local_r, ll_r, remote_r, rl_r);
}

static int folder_lookup_txn(struct status *st, MDB_txn *txn, const char *local, const char *remote,
                             struct status_folder *f)
{
    size_t ll = strlen(local), rl = strlen(remote);
    if (ll > NAME_MAX_LEN || rl > NAME_MAX_LEN) {
        log_error("folder name too long for the status store (%zu bytes)", ll > rl ? ll : rl);
        return OIMAP_ENAME;
    }
    unsigned char kb[FNAME_KEY_RAW + 18];
    MDB_val k = {fname_key(kb, local, ll, remote, rl), kb}, v;
    int rc = mdb_get(txn, st->dbi[DB_FNAMES], &k, &v);
    if (rc)
        return rc == MDB_NOTFOUND ? -ENOENT : lmdb_fail(st->envdir, "read folder name", rc);
    if (v.mv_size != 4)
        return corrupt(st, "folder name");
    const char *l2, *r2;
    size_t ll2, rl2;
    rc = folder_read(st, txn, get32(v.mv_data), f, &l2, &ll2, &r2, &rl2);
    if (rc == -ENOENT)
        return corrupt(st, "folder name without folder");
    if (rc)
        return rc;
    if (ll2 != ll || rl2 != rl || memcmp(l2, local, ll) != 0 || memcmp(r2, remote, rl) != 0)
        return corrupt(st, "folder name hash collision");
    return 0;
}

int status_folder_lookup(struct status *st, const char *local, const char *remote,
                         struct status_folder *f_r)
{
    MDB_txn *txn;
    int rc = r_begin(st, &txn);
    if (rc)
        return rc == EMPTY_VIEW ? -ENOENT : rc;
    rc = folder_lookup_txn(st, txn, local, remote, f_r);
    r_end(st, txn);
    return rc;
}

int status_folder_get(struct status *st, uint32_t id, struct status_folder *f_r)
{
    MDB_txn *txn;
    int rc = r_begin(st, &txn);
    if (rc)
        return rc == EMPTY_VIEW ? -ENOENT : rc;
    rc = folder_read(st, txn, id, f_r, NULL, NULL, NULL, NULL);
    r_end(st, txn);
    return rc;
}

int status_folder_foreach(struct status *st, status_folder_cb cb, void *arg)
{
    MDB_txn *txn;
    int rc = r_begin(st, &txn);
    if (rc)
        return rc == EMPTY_VIEW ? 0 : rc;
    MDB_cursor *c;
    rc = mdb_cursor_open(txn, st->dbi[DB_FOLDERS], &c);
    if (rc) {
        r_end(st, txn);
        return lmdb_fail(st->envdir, "cursor", rc);
    }
    MDB_val k, v;
    char *names = NULL;
    int cbrc = 0;
    for (int op = MDB_FIRST; (rc = mdb_cursor_get(c, &k, &v, op)) == 0; op = MDB_NEXT) {
        struct status_folder f;
        const char *l, *r;
        size_t ll, rl;
        if ((cbrc = folder_decode(st, &v, &f, &l, &ll, &r, &rl)) != 0)
            break;
        free(names);
        names = malloc(ll + rl + 2);
        if (!names) {
            cbrc = -ENOMEM;
            break;
        }
        memcpy(names, l, ll);
        names[ll] = '\0';
        memcpy(names + ll + 1, r, rl);
        names[ll + 1 + rl] = '\0';
        if ((cbrc = cb(&f, names, names + ll + 1, arg)) != 0)
            break;
    }
    free(names);
    mdb_cursor_close(c);
    r_end(st, txn);
    if (cbrc)
        return cbrc;
    return rc && rc != MDB_NOTFOUND ? lmdb_fail(st->envdir, "cursor", rc) : 0;
}

static int msg_get_txn(struct status *st, MDB_txn *txn, uint32_t folder, uint32_t uid,
                       struct status_msg *m)
{
    unsigned char kb[8];
    msg_key(kb, folder, uid);
    MDB_val k = {8, kb}, v;
    int rc = mdb_get(txn, st->dbi[DB_MSGS], &k, &v);
    if (rc)
        return rc == MDB_NOTFOUND ? -ENOENT : lmdb_fail(st->envdir, "read message", rc);
    return msg_decode(st, &k, &v, m);
}

static int msg_get_near_only(struct status *st, MDB_txn *txn, uint32_t folder, uint32_t luid,
                             struct status_msg *m)
{
    unsigned char kb[MSG_KEY_NEAR];
    msg_key_near(kb, folder, luid);
    MDB_val k = {MSG_KEY_NEAR, kb}, v;
    int rc = mdb_get(txn, st->dbi[DB_MSGS], &k, &v);
    if (rc)
        return rc == MDB_NOTFOUND ? -ENOENT : lmdb_fail(st->envdir, "read message", rc);
    return msg_decode(st, &k, &v, m);
}

/* The message holding local uid luid (invariant S5: luids where it differs
 * from the remote uid, else the message of the same remote uid, else a
 * near-only half record). */
static int msg_get_local_txn(struct status *st, MDB_txn *txn, uint32_t folder, uint32_t luid,
                             struct status_msg *m)
{
    unsigned char kb[8];
    msg_key(kb, folder, luid);
    MDB_val k = {8, kb}, v;
    int rc = mdb_get(txn, st->dbi[DB_LUIDS], &k, &v);
    if (rc == 0) {
        if (v.mv_size != 4)
            return corrupt(st, "local uid index");
        rc = msg_get_txn(st, txn, folder, get32(v.mv_data), m);
        if (rc == -ENOENT || (rc == 0 && m->local_uid != luid))
            return corrupt(st, "local uid index points nowhere");
        return rc;
    }
    if (rc != MDB_NOTFOUND)
        return lmdb_fail(st->envdir, "read local uid", rc);
    rc = msg_get_txn(st, txn, folder, luid, m);
    if (rc == 0 && m->local_uid != luid)
        rc = -ENOENT;
    return rc == -ENOENT ? msg_get_near_only(st, txn, folder, luid, m) : rc;
}

int status_msg_get(struct status *st, uint32_t folder, uint32_t remote_uid, struct status_msg *m_r)
{
    MDB_txn *txn;
    int rc = r_begin(st, &txn);
    if (rc)
        return rc == EMPTY_VIEW ? -ENOENT : rc;
    rc = msg_get_txn(st, txn, folder, remote_uid, m_r);
    r_end(st, txn);
    return rc;
}

int status_msg_get_local(struct status *st, uint32_t folder, uint32_t local_uid,
                         struct status_msg *m_r)
{
    if (!local_uid)
        return -ENOENT;
    MDB_txn *txn;
    int rc = r_begin(st, &txn);
    if (rc)
        return rc == EMPTY_VIEW ? -ENOENT : rc;
    rc = msg_get_local_txn(st, txn, folder, local_uid, m_r);
    r_end(st, txn);
    return rc;
}

/* Walk the records of db whose key starts with the 4-byte folder id. */
typedef int (*range_cb)(struct status *st, const MDB_val *k, const MDB_val *v, void *arg);

static int range_walk(struct status *st, MDB_txn *txn, int db, uint32_t folder, range_cb cb,
                      void *arg)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, st->dbi[db], &c);
    if (rc)
        return lmdb_fail(st->envdir, "cursor", rc);
    unsigned char kb[4];
    put32(kb, folder);
    MDB_val k = {4, kb}, v;
    int op = folder ? MDB_SET_RANGE : MDB_FIRST, cbrc = 0;
    while ((rc = mdb_cursor_get(c, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (folder && (k.mv_size < 4 || get32(k.mv_data) != folder))
            break;
        if ((cbrc = cb(st, &k, &v, arg)) != 0)
            break;
    }
    mdb_cursor_close(c);
    if (cbrc)
        return cbrc; /* the callback's own value, whatever its sign */
    if (rc && rc != MDB_NOTFOUND)
        return lmdb_fail(st->envdir, "cursor", rc);
    return 0;
}

struct load_ctx {
    struct status_msg *v;
    size_t n, cap;
    status_msg_cb cb;
    void *arg;
};

static int load_one(struct status *st, const MDB_val *k, const MDB_val *v, void *arg)
{
    struct load_ctx *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        struct status_msg *nv = realloc(l->v, cap * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        l->v = nv;
        l->cap = cap;
    }
    int rc = msg_decode(st, k, v, &l->v[l->n]);
    if (rc == 0)
        l->n++;
    return rc;
}

int status_msg_load(struct status *st, uint32_t folder, struct status_msg **v_r, size_t *n_r)
{
    *v_r = NULL;
    *n_r = 0;
    MDB_txn *txn;
    int rc = r_begin(st, &txn);
    if (rc)
        return rc == EMPTY_VIEW ? 0 : rc;
    struct load_ctx l = {0};
    rc = range_walk(st, txn, DB_MSGS, folder ? folder : UINT32_MAX, load_one, &l);
    r_end(st, txn);
    if (rc) {
        free(l.v);
        return rc;
    }
    *v_r = l.v;
    *n_r = l.n;
    return 0;
}

static int foreach_one(struct status *st, const MDB_val *k, const MDB_val *v, void *arg)
{
    struct load_ctx *l = arg;
    struct status_msg m;
    int rc = msg_decode(st, k, v, &m);
    return rc ? rc : l->cb(&m, l->arg);
}

int status_msg_foreach(struct status *st, uint32_t folder, status_msg_cb cb, void *arg)
{
    MDB_txn *txn;
    int rc = r_begin(st, &txn);
    if (rc)
        return rc == EMPTY_VIEW ? 0 : rc;
    struct load_ctx l = {.cb = cb, .arg = arg};
    rc = range_walk(st, txn, DB_MSGS, folder ? folder : UINT32_MAX, foreach_one, &l);
    r_end(st, txn);
    return rc;
}

struct intent_ctx {
    status_intent_cb cb;
    void *arg;
};

static int intent_one(struct status *st, const MDB_val *k, const MDB_val *v, void *arg)
{
    struct intent_ctx *ic = arg;
    const unsigned char *p = v->mv_data;
    if (k->mv_size != 12 || v->mv_size < INTENT_HDR)
        return corrupt(st, "intent");
    size_t tl = get16(p + 36), nl = get16(p + 38);
    uint32_t nuids = get32(p + 40);
    if (nuids > MAX_UIDS || v->mv_size < INTENT_HDR + tl + nl + 4 * (size_t)nuids)
        return corrupt(st, "intent length");
    struct status_intent in = {
        .folder = get32(k->mv_data),
        .id = get64((const unsigned char *)k->mv_data + 4),
        .kind = p[0],
        .side = p[1],
        .src_uid = get32(p + 4),
        .result_uid = get32(p + 8),
        .flags = get32(p + 12),
        .flags_clear = get32(p + 16),
        .size = get64(p + 20),
        .time = (int64_t)get64(p + 28),
        .nuids = nuids,
    };
    /* Copies: LMDB values are not NUL-terminated nor aligned for uint32_t. */
    char *strs = malloc(tl + nl + 2);
    uint32_t *uids = nuids ? malloc(nuids * sizeof *uids) : NULL;
    if (!strs || (nuids && !uids)) {
        free(strs);
        free(uids);
        return -ENOMEM;
    }
    memcpy(strs, p + INTENT_HDR, tl);
    strs[tl] = '\0';
    memcpy(strs + tl + 1, p + INTENT_HDR + tl, nl);
    strs[tl + 1 + nl] = '\0';
    for (uint32_t i = 0; i < nuids; i++)
        uids[i] = get32(p + INTENT_HDR + tl + nl + 4 * i);
    in.tuid = tl ? strs : NULL;
    in.name = nl ? strs + tl + 1 : NULL;
    in.uids = uids;
    int rc = ic->cb(&in, ic->arg);
    free(strs);
    free(uids);
    return rc;
}

int status_intent_foreach(struct status *st, uint32_t folder, status_intent_cb cb, void *arg)
{
    MDB_txn *txn;
    int rc = r_begin(st, &txn);
    if (rc)
        return rc == EMPTY_VIEW ? 0 : rc;
    struct intent_ctx ic = {cb, arg};
    rc = range_walk(st, txn, DB_INTENTS, folder, intent_one, &ic);
    r_end(st, txn);
    return rc;
}

/* --- write transactions ------------------------------------------------------ */

static int poison(struct status_txn *t, int rc)
{
    if (!t->err)
        t->err = rc;
    return rc;
}

static int grow_map(struct status *st)
{
    size_t want = st->mapsize * 2;
    if (want > MAX_MAPSIZE || want < st->mapsize) {
        log_error("status store %s: map of %zu MiB is full and cannot grow", st->envdir,
                  st->mapsize >> 20);
        return OIMAP_ESTATUS;
    }
    if (st->rtxn) {
        mdb_txn_abort(st->rtxn);
        st->rtxn = NULL;
    }
    int rc = mdb_env_set_mapsize(st->env, want);
    if (rc)
        return lmdb_fail(st->envdir, "grow map", rc);
    MDB_envinfo info;
    mdb_env_info(st->env, &info);
    st->mapsize = info.me_mapsize;
    LOG_DEBUG(LOGC_STATUS, "%s: map grown to %zu KiB", st->envdir, st->mapsize >> 10);
    return 0;
}

static int replay(struct status_txn *t)
{
    struct status *st = t->st;
    for (size_t off = 0; off < t->log_len;) {
        const unsigned char *p = t->log + off;
        size_t kl = get16(p + 2), vl = get32(p + 4);
        MDB_val k = {kl, (void *)(p + 8)}, v = {vl, (void *)(p + 8 + kl)};
        int rc = p[1] ? mdb_put(t->txn, st->dbi[p[0]], &k, &v, 0)
                      : mdb_del(t->txn, st->dbi[p[0]], &k, NULL);
        if (rc && rc != MDB_NOTFOUND)
            return rc;
        off += 8 + kl + vl;
    }
    return 0;
}

/* MDB_MAP_FULL: the transaction is dead.  Grow the map and redo every write
 * of the batch so far in a new one; the caller then retries its write. */
static int grow_and_replay(struct status_txn *t)
{
    struct status *st = t->st;
    for (;;) {
        if (t->txn) {
            mdb_txn_abort(t->txn);
            t->txn = NULL;
        }
        int rc = grow_map(st);
        if (rc)
            return rc;
        t->grows++;
        rc = mdb_txn_begin(st->env, NULL, 0, &t->txn);
        if (rc) {
            t->txn = NULL;
            return lmdb_fail(st->envdir, "begin", rc);
        }
        rc = replay(t);
        if (rc == MDB_MAP_FULL)
            continue;
        return rc ? lmdb_fail(st->envdir, "replay", rc) : 0;
    }
}

static int log_op(struct status_txn *t, int db, bool put, const MDB_val *k, const MDB_val *v)
{
    size_t need = 8 + k->mv_size + (v ? v->mv_size : 0);
    if (t->log_len + need > t->log_cap) {
        size_t cap = t->log_cap ? t->log_cap : 64 * 1024;
        while (cap < t->log_len + need)
            cap *= 2;
        unsigned char *nl = realloc(t->log, cap);
        if (!nl)
            return -ENOMEM;
        t->log = nl;
        t->log_cap = cap;
    }
    unsigned char *p = t->log + t->log_len;
    p[0] = (unsigned char)db;
    p[1] = put;
    put16(p + 2, (uint16_t)k->mv_size);
    put32(p + 4, v ? (uint32_t)v->mv_size : 0);
    memcpy(p + 8, k->mv_data, k->mv_size);
    if (v && v->mv_size)
        memcpy(p + 8 + k->mv_size, v->mv_data, v->mv_size);
    t->log_len += need;
    return 0;
}

static int w_put(struct status_txn *t, int db, const void *kd, size_t kl, const void *vd, size_t vl)
{
    MDB_val k = {kl, (void *)kd}, v = {vl, (void *)vd};
    int rc;
    while ((rc = mdb_put(t->txn, t->st->dbi[db], &k, &v, 0)) == MDB_MAP_FULL) {
        rc = grow_and_replay(t);
        if (rc)
            return poison(t, rc);
    }
    if (rc)
        return poison(t, lmdb_fail(t->st->envdir, "write", rc));
    t->nput++;
    rc = log_op(t, db, true, &k, &v);
    return rc ? poison(t, rc) : 0;
}

/* -ENOENT (without poisoning) when there was nothing to delete. */
static int w_del(struct status_txn *t, int db, const void *kd, size_t kl)
{
    MDB_val k = {kl, (void *)kd};
    int rc;
    while ((rc = mdb_del(t->txn, t->st->dbi[db], &k, NULL)) == MDB_MAP_FULL) {
        rc = grow_and_replay(t);
        if (rc)
            return poison(t, rc);
    }
    if (rc == MDB_NOTFOUND)
        return -ENOENT;
    if (rc)
        return poison(t, lmdb_fail(t->st->envdir, "delete", rc));
    t->ndel++;
    rc = log_op(t, db, false, &k, NULL);
    return rc ? poison(t, rc) : 0;
}

#define TXN_CHECK(t)                                                                               \
    do {                                                                                           \
        if (!(t) || !(t)->txn)                                                                     \
            return -EINVAL;                                                                        \
        if ((t)->err)                                                                              \
            return (t)->err;                                                                       \
    } while (0)

int status_txn_begin(struct status *st, struct status_txn **txn_r)
{
    *txn_r = NULL;
    if (st->readonly || !st->env) {
        log_error("status store %s: read-only (dry run), refusing to write", st->envdir);
        return -EROFS;
    }
    if (st->wtxn)
        return -EBUSY;
    /* Grow ahead of need, so a replay stays the exception. */
    MDB_envinfo info;
    MDB_stat ms;
    mdb_env_info(st->env, &info);
    mdb_env_stat(st->env, &ms);
    if ((info.me_last_pgno + 1) * (size_t)ms.ms_psize > st->mapsize / 4 * 3) {
        int rc = grow_map(st);
        if (rc)
            return rc;
    }
    struct status_txn *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->st = st;
    int rc = mdb_txn_begin(st->env, NULL, 0, &t->txn);
    if (rc) {
        free(t);
        return lmdb_fail(st->envdir, "begin", rc);
    }
    st->wtxn = t;
    *txn_r = t;
    return 0;
}

static void txn_free(struct status_txn *t)
{
    if (t->txn)
        mdb_txn_abort(t->txn);
    if (t->st)
        t->st->wtxn = NULL;
    free(t->log);
    free(t);
}

void status_txn_abort(struct status_txn **tp)
{
    struct status_txn *t = *tp;
    if (!t)
        return;
    LOG_DEBUG(LOGC_STATUS, "%s: abort (%zu writes dropped)", t->st->envdir, t->nput + t->ndel);
    txn_free(t);
    *tp = NULL;
}

int status_txn_commit(struct status_txn **tp)
{
    struct status_txn *t = *tp;
    if (!t)
        return -EINVAL;
    *tp = NULL;
    int rc = t->err;
    if (rc) {
        LOG_DEBUG(LOGC_STATUS, "%s: commit of a failed batch: aborted", t->st->envdir);
        txn_free(t);
        return rc;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        rc = mdb_txn_commit(t->txn);
        t->txn = NULL; /* freed by LMDB, success or not */
        if (rc != MDB_MAP_FULL) {
            if (rc)
                rc = lmdb_fail(t->st->envdir, "commit", rc);
            break;
        }
        rc = grow_and_replay(t); /* logs its own errors */
        if (rc)
            break;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc == 0)
        LOG_DEBUG(LOGC_STATUS, "%s: commit: %zu puts, %zu deletes, %u map growths, %.1f ms",
                  t->st->envdir, t->nput, t->ndel, t->grows,
                  (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    txn_free(t);
    return rc;
}

/* Next value of a meta counter (starting at 1), written in the transaction. */
static int next_id(struct status_txn *t, const char *name, uint64_t *id_r)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(t->txn, t->st->dbi[DB_META], &k, &v);
    uint64_t id = 1;
    if (rc == 0) {
        if (v.mv_size != 8)
            return poison(t, corrupt(t->st, name));
        id = get64(v.mv_data);
    } else if (rc != MDB_NOTFOUND) {
        return poison(t, lmdb_fail(t->st->envdir, "read counter", rc));
    }
    unsigned char b[8];
    put64(b, id + 1);
    rc = w_put(t, DB_META, name, strlen(name), b, 8);
    if (rc)
        return rc;
    *id_r = id;
    return 0;
}

/* Store folder record f with its names.  The names may point into the map
 * (status_txn_folder_put): they are encoded before the write, which may
 * move pages. */
static int folder_write(struct status_txn *t, const struct status_folder *f, const char *l,
                        size_t ll, const char *r, size_t rl)
{
    unsigned char *v = malloc(FOLDER_HDR + ll + rl);
    if (!v)
        return poison(t, -ENOMEM);
    folder_encode(v, f, l, ll, r, rl);
    unsigned char kb[4];
    put32(kb, f->id);
    int rc = w_put(t, DB_FOLDERS, kb, 4, v, FOLDER_HDR + ll + rl);
    free(v);
    return rc;
}

int status_txn_folder_get_or_create(struct status_txn *t, const char *local, const char *remote,
                                    struct status_folder *f_r)
{
    TXN_CHECK(t);
    int rc = folder_lookup_txn(t->st, t->txn, local, remote, f_r);
    if (rc == 0 || rc == OIMAP_ENAME) /* a refused name wrote nothing */
        return rc;
    if (rc != -ENOENT)
        return poison(t, rc);
    uint64_t id;
    rc = next_id(t, "next_folder", &id);
    if (rc)
        return rc;
    if (id > UINT32_MAX)
        return poison(t, corrupt(t->st, "folder id counter"));
    memset(f_r, 0, sizeof *f_r);
    f_r->id = (uint32_t)id;
    size_t ll = strlen(local), rl = strlen(remote);
    if ((rc = folder_write(t, f_r, local, ll, remote, rl)) != 0)
        return rc;
    unsigned char kb[4];
    put32(kb, f_r->id);
    unsigned char nk[FNAME_KEY_RAW + 18];
    size_t nkl = fname_key(nk, local, ll, remote, rl);
    rc = w_put(t, DB_FNAMES, nk, nkl, kb, 4);
    if (rc == 0)
        LOG_DEBUG(LOGC_STATUS, "%s: new folder %" PRIu32 " '%s' <-> '%s'", t->st->envdir, f_r->id,
                  local, remote);
    return rc;
}

int status_txn_folder_put(struct status_txn *t, const struct status_folder *f)
{
    TXN_CHECK(t);
    struct status_folder old;
    const char *l, *r;
    size_t ll, rl;
    int rc = folder_read(t->st, t->txn, f->id, &old, &l, &ll, &r, &rl);
    if (rc)
        return poison(t, rc);
    return folder_write(t, f, l, ll, r, rl);
}

/* Delete every record of db in folder, one key at a time (a cursor would not
 * survive a map growth in the middle). */
static int del_range(struct status_txn *t, int db, uint32_t folder, size_t *n_r)
{
    unsigned char kb[16];
    for (;;) {
        MDB_cursor *c;
        int rc = mdb_cursor_open(t->txn, t->st->dbi[db], &c);
        if (rc)
            return poison(t, lmdb_fail(t->st->envdir, "cursor", rc));
        put32(kb, folder);
        MDB_val k = {4, kb}, v;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        size_t kl = k.mv_size;
        bool mine = rc == 0 && kl >= 4 && kl <= sizeof kb && get32(k.mv_data) == folder;
        if (mine)
            memcpy(kb, k.mv_data, kl);
        mdb_cursor_close(c);
        if (rc && rc != MDB_NOTFOUND)
            return poison(t, lmdb_fail(t->st->envdir, "cursor", rc));
        if (!mine)
            return 0;
        rc = w_del(t, db, kb, kl);
        if (rc)
            return rc == -ENOENT ? poison(t, OIMAP_ESTATUS) : rc;
        (*n_r)++;
    }
}

int status_txn_folder_del(struct status_txn *t, uint32_t id)
{
    TXN_CHECK(t);
    struct status_folder f;
    const char *l, *r;
    size_t ll, rl;
    int rc = folder_read(t->st, t->txn, id, &f, &l, &ll, &r, &rl);
    if (rc == -ENOENT)
        return rc;
    if (rc)
        return poison(t, rc);
    unsigned char nk[FNAME_KEY_RAW + 18];
    size_t nkl = fname_key(nk, l, ll, r, rl);
    rc = w_del(t, DB_FNAMES, nk, nkl);
    if (rc && rc != -ENOENT)
        return rc;
    unsigned char kb[4];
    put32(kb, id);
    rc = w_del(t, DB_FOLDERS, kb, 4);
    if (rc)
        return rc == -ENOENT ? poison(t, OIMAP_ESTATUS) : rc;
    size_t n[3] = {0, 0, 0};
    if ((rc = del_range(t, DB_MSGS, id, &n[0])) || (rc = del_range(t, DB_LUIDS, id, &n[1])) ||
        (rc = del_range(t, DB_INTENTS, id, &n[2])))
        return rc;
    size_t n_labels = 0;
    if ((rc = del_range(t, DB_LABELS, id, &n_labels)))
        return rc;
    unsigned char kk[6];
    kw_key(kk, id);
    if ((rc = w_del(t, DB_META, kk, sizeof kk)) && rc != -ENOENT)
        return rc;
    LOG_DEBUG(LOGC_STATUS, "%s: folder %" PRIu32 " deleted (%zu messages, %zu intents)",
              t->st->envdir, id, n[0], n[2]);
    return 0;
}

/* A near-only half record: keyed by its local uid, which must be free (S4)
 * unless this very record holds it. */
static int msg_put_near_only(struct status_txn *t, uint32_t folder, const struct status_msg *m)
{
    struct status *st = t->st;
    struct status_msg other;
    int rc = msg_get_local_txn(st, t->txn, folder, m->local_uid, &other);
    if (rc == 0 && other.remote_uid != 0) {
        log_error("status store %s: folder %" PRIu32 ": local uid %" PRIu32
                  " already paired with remote uid %" PRIu32 ", cannot be local-only",
                  st->envdir, folder, m->local_uid, other.remote_uid);
        return poison(t, OIMAP_ESTATUS);
    }
    if (rc && rc != -ENOENT)
        return poison(t, rc);
    unsigned char kb[MSG_KEY_NEAR], vb[MSG_VAL_LEN];
    msg_key_near(kb, folder, m->local_uid);
    msg_encode(vb, m);
    return w_put(t, DB_MSGS, kb, sizeof kb, vb, MSG_VAL_LEN);
}

int status_txn_msg_put(struct status_txn *t, uint32_t folder, const struct status_msg *m)
{
    TXN_CHECK(t);
    struct status *st = t->st;
    if (!folder || (!m->remote_uid && !m->local_uid))
        return poison(t, -EINVAL);
    if (!m->remote_uid)
        return msg_put_near_only(t, folder, m);
    uint32_t R = m->remote_uid, L = m->local_uid;
    struct status_msg old;
    int rc = msg_get_txn(st, t->txn, folder, R, &old);
    if (rc && rc != -ENOENT)
        return poison(t, rc);
    uint32_t old_l = rc == 0 ? old.local_uid : 0;
    unsigned char kb[8];
    if (L && L != old_l) {
        /* S4: the local uid must not already belong to another message. */
        struct status_msg other;
        rc = msg_get_local_txn(st, t->txn, folder, L, &other);
        if (rc == 0 && other.remote_uid != R) {
            if (other.remote_uid)
                log_error("status store %s: folder %" PRIu32 ": local uid %" PRIu32
                          " already paired with remote uid %" PRIu32 ", not %" PRIu32,
                          st->envdir, folder, L, other.remote_uid, R);
            else
                log_error("status store %s: folder %" PRIu32 ": local uid %" PRIu32
                          " has a local-only record, cannot pair it with remote uid %" PRIu32,
                          st->envdir, folder, L, R);
            return poison(t, OIMAP_ESTATUS);
        }
        if (rc && rc != -ENOENT)
            return poison(t, rc);
    }
    /* S5: keep luids in step. */
    if (old_l && old_l != R && old_l != L) {
        msg_key(kb, folder, old_l);
        rc = w_del(t, DB_LUIDS, kb, 8);
        if (rc && rc != -ENOENT)
            return rc;
    }
    if (L && L != R && L != old_l) {
        unsigned char rb[4];
        put32(rb, R);
        msg_key(kb, folder, L);
        if ((rc = w_put(t, DB_LUIDS, kb, 8, rb, 4)))
            return rc;
    }
    unsigned char vb[MSG_VAL_LEN];
    msg_encode(vb, m);
    msg_key(kb, folder, R);
    return w_put(t, DB_MSGS, kb, 8, vb, MSG_VAL_LEN);
}

int status_txn_msg_del(struct status_txn *t, uint32_t folder, uint32_t remote_uid)
{
    TXN_CHECK(t);
    struct status_msg old;
    int rc = msg_get_txn(t->st, t->txn, folder, remote_uid, &old);
    if (rc)
        return rc == -ENOENT ? rc : poison(t, rc);
    unsigned char kb[8];
    if (old.local_uid && old.local_uid != remote_uid) {
        msg_key(kb, folder, old.local_uid);
        rc = w_del(t, DB_LUIDS, kb, 8);
        if (rc)
            return rc == -ENOENT ? poison(t, corrupt(t->st, "local uid index missing")) : rc;
    }
    msg_key(kb, folder, remote_uid);
    rc = w_del(t, DB_MSGS, kb, 8);
    return rc == -ENOENT ? poison(t, OIMAP_ESTATUS) : rc;
}

int status_txn_msg_del_local(struct status_txn *t, uint32_t folder, uint32_t local_uid)
{
    TXN_CHECK(t);
    struct status_msg old;
    int rc = local_uid ? msg_get_local_txn(t->st, t->txn, folder, local_uid, &old) : -ENOENT;
    if (rc)
        return rc == -ENOENT ? rc : poison(t, rc);
    if (old.remote_uid)
        return status_txn_msg_del(t, folder, old.remote_uid);
    unsigned char kb[MSG_KEY_NEAR];
    msg_key_near(kb, folder, local_uid);
    rc = w_del(t, DB_MSGS, kb, sizeof kb);
    return rc == -ENOENT ? poison(t, OIMAP_ESTATUS) : rc;
}

int status_txn_intent_put(struct status_txn *t, struct status_intent *in)
{
    TXN_CHECK(t);
    size_t tl = in->tuid ? strlen(in->tuid) : 0, nl = in->name ? strlen(in->name) : 0;
    if (!in->folder || tl > STATUS_TUID_MAX || nl > NAME_MAX_LEN || in->nuids > MAX_UIDS ||
        (in->nuids && !in->uids))
        return poison(t, -EINVAL);
    if (!in->id) {
        int rc = next_id(t, "next_intent", &in->id);
        if (rc)
            return rc;
    }
    if (!in->time)
        in->time = (int64_t)time(NULL);
    size_t vl = INTENT_HDR + tl + nl + 4 * (size_t)in->nuids;
    unsigned char *v = calloc(1, vl);
    if (!v)
        return poison(t, -ENOMEM);
    v[0] = in->kind;
    v[1] = in->side;
    put32(v + 4, in->src_uid);
    put32(v + 8, in->result_uid);
    put32(v + 12, in->flags);
    put32(v + 16, in->flags_clear);
    put64(v + 20, in->size);
    put64(v + 28, (uint64_t)in->time);
    put16(v + 36, (uint16_t)tl);
    put16(v + 38, (uint16_t)nl);
    put32(v + 40, in->nuids);
    if (tl)
        memcpy(v + INTENT_HDR, in->tuid, tl);
    if (nl)
        memcpy(v + INTENT_HDR + tl, in->name, nl);
    for (uint32_t i = 0; i < in->nuids; i++)
        put32(v + INTENT_HDR + tl + nl + 4 * i, in->uids[i]);
    unsigned char kb[12];
    put32(kb, in->folder);
    put64(kb + 4, in->id);
    int rc = w_put(t, DB_INTENTS, kb, 12, v, vl);
    free(v);
    if (rc == 0)
        LOG_DEBUG(LOGC_STATUS, "%s: folder %" PRIu32 ": intent %" PRIu64 " kind %u side %u%s%s",
                  t->st->envdir, in->folder, in->id, in->kind, in->side, tl ? " tuid " : "",
                  tl ? in->tuid : "");
    return rc;
}

int status_txn_intent_del(struct status_txn *t, uint32_t folder, uint64_t id)
{
    TXN_CHECK(t);
    unsigned char kb[12];
    put32(kb, folder);
    put64(kb + 4, id);
    int rc = w_del(t, DB_INTENTS, kb, 12);
    if (rc == 0)
        LOG_DEBUG(LOGC_STATUS, "%s: folder %" PRIu32 ": intent %" PRIu64 " done", t->st->envdir,
                  folder, id);
    return rc;
}

/* --- helpers and the dump ---------------------------------------------------- */

/* --- Gmail labels (status.h) ---------------------------------------------- */

#define LABELS_HDR 8 /* i64 mtime, then the caller's label bytes */

struct labels_walk {
    status_labels_cb cb;
    void *arg;
};

static int labels_one(struct status *st, const MDB_val *k, const MDB_val *v, void *arg)
{
    struct labels_walk *w = arg;
    if (k->mv_size != 8 || v->mv_size < LABELS_HDR)
        return corrupt(st, "labels");
    const unsigned char *p = v->mv_data;
    struct status_labels l = {
        .remote_uid = get32((const unsigned char *)k->mv_data + 4),
        .mtime = (int64_t)get64(p),
        .data = p + LABELS_HDR,
        .len = v->mv_size - LABELS_HDR,
    };
    return w->cb(&l, w->arg);
}

int status_labels_foreach(struct status *st, uint32_t folder, status_labels_cb cb, void *arg)
{
    if (!folder)
        return -EINVAL;
    MDB_txn *txn;
    int rc = r_begin(st, &txn);
    if (rc)
        return rc == EMPTY_VIEW ? 0 : rc;
    struct labels_walk w = {cb, arg};
    rc = st->no_labels ? 0 : range_walk(st, txn, DB_LABELS, folder, labels_one, &w);
    r_end(st, txn);
    return rc;
}

int status_txn_labels_put(struct status_txn *t, uint32_t folder, const struct status_labels *l)
{
    TXN_CHECK(t);
    if (!folder || !l->remote_uid || l->len > (1u << 20))
        return poison(t, -EINVAL);
    unsigned char k[8];
    unsigned char *v = malloc(LABELS_HDR + l->len);
    if (!v)
        return poison(t, -ENOMEM);
    msg_key(k, folder, l->remote_uid);
    put64(v, (uint64_t)l->mtime);
    if (l->len)
        memcpy(v + LABELS_HDR, l->data, l->len);
    int rc = w_put(t, DB_LABELS, k, sizeof k, v, LABELS_HDR + l->len);
    free(v);
    return rc;
}

int status_txn_labels_del(struct status_txn *t, uint32_t folder, uint32_t remote_uid)
{
    TXN_CHECK(t);
    unsigned char k[8];
    msg_key(k, folder, remote_uid);
    return w_del(t, DB_LABELS, k, sizeof k);
}

/* --- keywords of a folder pair (status.h) ---------------------------------- */

int status_folder_keywords(struct status *st, uint32_t folder, char **names_r, size_t *len_r)
{
    *names_r = NULL;
    *len_r = 0;
    MDB_txn *txn;
    int rc = r_begin(st, &txn);
    if (rc)
        return rc == EMPTY_VIEW ? 0 : rc;
    unsigned char kb[6];
    kw_key(kb, folder);
    MDB_val k = {sizeof kb, kb}, v;
    rc = mdb_get(txn, st->dbi[DB_META], &k, &v);
    if (rc == 0 && v.mv_size && ((const char *)v.mv_data)[v.mv_size - 1] != '\0')
        rc = corrupt(st, "keywords");
    else if (rc == 0 && v.mv_size && !(*names_r = malloc(v.mv_size)))
        rc = -ENOMEM;
    else if (rc == 0 && v.mv_size) {
        memcpy(*names_r, v.mv_data, v.mv_size);
        *len_r = v.mv_size;
    } else if (rc)
        rc = rc == MDB_NOTFOUND ? 0 : lmdb_fail(st->envdir, "read keywords", rc);
    r_end(st, txn);
    return rc;
}

int status_txn_folder_keywords_put(struct status_txn *t, uint32_t folder, const char *names,
                                   size_t len)
{
    TXN_CHECK(t);
    if (!folder || (len && names[len - 1] != '\0'))
        return poison(t, -EINVAL);
    unsigned char kb[6];
    kw_key(kb, folder);
    return w_put(t, DB_META, kb, sizeof kb, names, len);
}

int status_make_tuid(char *buf)
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = 0;
    while (n < STATUS_TUID_LEN) {
        unsigned char r[32];
        ssize_t got = getrandom(r, sizeof r, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        for (ssize_t i = 0; i < got && n < STATUS_TUID_LEN; i++)
            if (r[i] < 248) /* 4 * 62: no modulo bias */
                buf[n++] = alnum[r[i] % 62];
    }
    buf[n] = '\0';
    return 0;
}

void status_flags_str(uint32_t flags, char *buf)
{
    static const char sys[] = "DFPRST";
    size_t n = 0;
    for (int i = 0; i < 6; i++)
        if (flags & (1u << i))
            buf[n++] = sys[i];
    for (int c = 'a'; c <= 'z'; c++)
        if (flags & STATUS_FLAG_KEYWORD(c))
            buf[n++] = (char)c;
    buf[n] = '\0';
}

static const char *side_name(unsigned s)
{
    return s == STATUS_LOCAL ? "local" : s == STATUS_REMOTE ? "remote" : "?";
}

static const char *state_name(unsigned s)
{
    static const char *const n[] = {"paired", "local-gone", "remote-gone", "held"};
    return s < 4 ? n[s] : "?";
}

static const char *kind_name(unsigned k)
{
    static const char *const n[] = {"?", "append", "expunge", "delete", "store", "move"};
    return k < 6 ? n[k] : "?";
}

static int dump_msg(const struct status_msg *m, void *arg)
{
    char fl[40];
    status_flags_str(m->flags, fl);
    fprintf(arg, "  msg remote %" PRIu32 " local %" PRIu32 " flags %s size %" PRIu64 " %s\n",
            m->remote_uid, m->local_uid, *fl ? fl : "-", m->size, state_name(m->state));
    return 0;
}

static int dump_intent(const struct status_intent *in, void *arg)
{
    FILE *out = arg;
    char fl[40], fc[40];
    status_flags_str(in->flags, fl);
    status_flags_str(in->flags_clear, fc);
    fprintf(out, "  intent %" PRIu64 " %s on %s", in->id, kind_name(in->kind), side_name(in->side));
    if (in->tuid)
        fprintf(out, " tuid %s", in->tuid);
    if (in->src_uid)
        fprintf(out, " src_uid %" PRIu32, in->src_uid);
    if (in->result_uid)
        fprintf(out, " result_uid %" PRIu32, in->result_uid);
    if (in->name)
        fprintf(out, " name \"%s\"", in->name);
    if (in->size)
        fprintf(out, " size %" PRIu64, in->size);
    if (in->flags)
        fprintf(out, " flags %s", fl);
    if (in->flags_clear)
        fprintf(out, " clear %s", fc);
    if (in->nuids) {
        fprintf(out, " uids");
        for (uint32_t i = 0; i < in->nuids; i++)
            fprintf(out, "%c%" PRIu32, i ? ',' : ' ', in->uids[i]);
    }
    fprintf(out, " time %" PRId64 "\n", in->time);
    return 0;
}

struct dump_ctx {
    struct status *st;
    FILE *out;
};

static int dump_folder(const struct status_folder *f, const char *local, const char *remote,
                       void *arg)
{
    struct dump_ctx *d = arg;
    FILE *out = d->out;
    fprintf(out,
            "folder %" PRIu32 " local \"%s\" remote \"%s\"\n"
            "  uidvalidity %" PRIu32 "/%" PRIu32 " uidnext %" PRIu32 "/%" PRIu32
            " highestmodseq %" PRIu64 "/%" PRIu64 " max_uid %" PRIu32 "/%" PRIu32
            " flags 0x%" PRIx32 " last_sync %" PRId64 "  (local/remote)\n",
            f->id, local, remote, f->uidvalidity[0], f->uidvalidity[1], f->uidnext[0],
            f->uidnext[1], f->highestmodseq[0], f->highestmodseq[1], f->max_uid[0], f->max_uid[1],
            f->flags, f->last_sync);
    /* Nested reads share the folder walk's snapshot: one consistent dump. */
    int rc = status_msg_foreach(d->st, f->id, dump_msg, out);
    return rc ? rc : status_intent_foreach(d->st, f->id, dump_intent, out);
}

int status_dump_store(struct status *st, FILE *out)
{
    fprintf(out, "status store %s (schema %u)%s\n", st->envdir, STATUS_SCHEMA_VERSION,
            st->env ? "" : ": empty");
    struct dump_ctx d = {st, out};
    return status_folder_foreach(st, dump_folder, &d);
}

int status_dump(const char *dir, FILE *out)
{
    char *candidates[2] = {strdup(dir), path_join(dir, "status.lmdb")};
    struct status *st = NULL;
    int rc = -ENOENT;
    for (int i = 0; i < 2 && rc == -ENOENT; i++) {
        if (!candidates[i]) {
            rc = -ENOMEM;
            break;
        }
        char *data = path_join(candidates[i], "data.mdb");
        struct stat sb;
        bool there = data && stat(data, &sb) == 0 && S_ISREG(sb.st_mode);
        free(data);
        if (!there)
            continue;
        st = calloc(1, sizeof *st);
        if (!st) {
            rc = -ENOMEM;
            break;
        }
        st->lockfd = -1;
        st->readonly = true;
        st->envdir = candidates[i];
        candidates[i] = NULL;
        /* No account lock: LMDB's reader table makes a read beside a running
         * sync safe, and a dump is most wanted exactly then. */
        rc = env_open(st, 0, MDB_RDONLY);
        if (rc == 0)
            rc = open_dbs(st, false);
        if (rc == EMPTY_VIEW) {
            mdb_env_close(st->env);
            st->env = NULL;
            rc = 0;
        }
        if (rc == 0)
            rc = status_dump_store(st, out);
        break;
    }
    if (rc == -ENOENT && !st)
        log_error("no status store in %s", dir);
    free(candidates[0]);
    free(candidates[1]);
    if (st)
        status_free(st);
    return rc;
}
