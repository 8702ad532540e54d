/* migrate.c - read offlineimap's status caches and record them as oimap's
 * (see migrate.h for the formats and the rules).
 *
 * Why import them rather than pair the Maildir's U= files with the server's
 * messages (plan.h R3): the pairing sees only what exists now.  A message
 * the user deleted locally since offlineimap's last sync has no file any
 * more, so pairing would download it again, where offlineimap's next run
 * deletes it on the server; and a message whose flags changed on both sides
 * has no base to merge against.  offlineimap's status is exactly that base:
 * the messages both sides had after its last sync, with the flags they had.
 *
 * Everything here only reads offlineimap's files.  It runs on the loop
 * thread, once per folder pair and only on the first oimap run of that pair,
 * like the status store's own reads (a cache of 100,000 messages is ~2 MB).
 */
#include "migrate.h"

#include "build_config.h"
#include "config.h"
#include "err.h"
#include "imap_utf7.h"
#include "log.h"
#include "status.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if OIMAP_HAVE_SQLITE
#include <sqlite3.h>
#endif

#define PLAIN_MAGIC "OFFLINEIMAP LocalStatus CACHE DATA - DO NOT MODIFY - FORMAT "
#define PLAIN_MAX ((size_t)1 << 30) /* a cache of ~50 million messages */

static void say(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- names and flags --------------------------------------------------------- */

char *migrate_basename(const char *name)
{
    if (!*name || strcmp(name, ".") == 0)
        return strdup("dot");
    char *b = strdup(name);
    for (char *p = b; p && *p; p++)
        if (*p == '/')
            *p = '.';
    return b;
}

uint32_t migrate_flags(const char *letters, size_t len)
{
    static const char std[] = "DFPRST"; /* bit i: STATUS_FLAG_* in this order */
    uint32_t f = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = letters[i];
        const char *p = ch ? strchr(std, ch) : NULL;
        if (p)
            f |= 1u << (p - std);
        else if (ch >= 'a' && ch <= 'z')
            f |= STATUS_FLAG_KEYWORD(ch);
    }
    return f;
}

/* ---- records: file order in, sorted and distinct out --------------------------- */

struct recs {
    struct rec {
        uint32_t uid, flags;
        size_t seq; /* position in the file: the last of equal UIDs wins */
    } * v;
    size_t n, cap;
};

static int recs_push(struct recs *r, uint32_t uid, uint32_t flags)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        void *a = realloc(r->v, cap * sizeof *r->v);
        if (!a)
            return -ENOMEM;
        r->v = a;
        r->cap = cap;
    }
    r->v[r->n] = (struct rec){uid, flags, r->n};
    r->n++;
    return 0;
}

static int rec_cmp(const void *a, const void *b)
{
    const struct rec *x = a, *y = b;
    if (x->uid != y->uid)
        return x->uid < y->uid ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sort by UID, keep the last record of each UID (offlineimap reads a cache
 * into a dict), and hand the result out as migrate_recs. */
static int recs_finish(struct recs *r, struct migrate_rec **v_r, size_t *n_r)
{
    struct migrate_rec *out = malloc((r->n ? r->n : 1) * sizeof *out);
    size_t n = 0;
    if (!out) {
        free(r->v);
        return -ENOMEM;
    }
    if (r->n > 1)
        qsort(r->v, r->n, sizeof *r->v, rec_cmp);
    for (size_t i = 0; i < r->n; i++) {
        if (i + 1 < r->n && r->v[i + 1].uid == r->v[i].uid)
            continue;
        out[n++] = (struct migrate_rec){r->v[i].uid, r->v[i].flags};
    }
    free(r->v);
    *v_r = out;
    *n_r = n;
    return 0;
}

/* ---- the plain-text cache ------------------------------------------------------ */

/* Python's str.strip(): the blanks it removes. */
static bool py_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

static void strip(const char **s, size_t *len)
{
    while (*len && py_space(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && py_space((*s)[*len - 1]))
        (*len)--;
}

/* A decimal number as offlineimap writes it (blanks around it allowed, as
 * Python's int() does); false when it is anything else or over max. */
static bool parse_num(const char *s, size_t len, uint64_t max, uint64_t *v_r)
{
    strip(&s, &len);
    if (!len)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *v_r = v;
    return true;
}

/* An integer of any size (the mtime field, which oimap does not use). */
static bool is_int(const char *s, size_t len)
{
    strip(&s, &len);
    if (len && (*s == '-' || *s == '+')) {
        s++;
        len--;
    }
    if (!len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Split s at sep into exactly n fields; false if there are more or fewer. */
static bool split(const char *s, size_t len, char sep, size_t n, const char **f, size_t *fl)
{
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != sep)
            continue;
        if (k == n)
            return false;
        f[k] = s + start;
        fl[k++] = i - start;
        start = i + 1;
    }
    return k == n;
}

/* One message line of format 1 ("uid:flags") or 2 ("uid|flags|mtime|labels"). */
static bool parse_line(const char *s, size_t len, int version, uint32_t *uid_r, uint32_t *flags_r)
{
    const char *f[4];
    size_t fl[4];
    uint64_t uid;
    strip(&s, &len);
    if (version == 1 ? !split(s, len, ':', 2, f, fl) : !split(s, len, '|', 4, f, fl))
        return false;
    if (!parse_num(f[0], fl[0], UINT32_MAX, &uid))
        return false;
    if (version == 2 && !is_int(f[2], fl[2]))
        return false;
    *uid_r = (uint32_t)uid;
    *flags_r = migrate_flags(f[1], fl[1]);
    return true;
}

int migrate_parse_plain(const char *buf, size_t len, const char *path, struct migrate_rec **v_r,
                        size_t *n_r, char *err, size_t errlen)
{
    struct recs r = {0};
    size_t pos = 0, lineno = 0;
    int version = 0;

    *v_r = NULL;
    *n_r = 0;
    /* An empty file holds no record (offlineimap refuses it; nothing in it
     * could be wrong, and pairing by U= then does what offlineimap's first
     * run on that folder would do). */
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        const char *s = buf + pos;
        size_t sl = end - pos;
        pos = end + 1;
        lineno++;
        if (memchr(s, 0, sl)) {
            say(err, errlen, "%s:%zu: a NUL byte: not a status cache of offlineimap's", path,
                lineno);
            free(r.v);
            return OIMAP_ESTATUS;
        }
        if (lineno == 1) {
            strip(&s, &sl);
            size_t ml = sizeof PLAIN_MAGIC - 1;
            if (sl == ml + 1 && memcmp(s, PLAIN_MAGIC, ml) == 0 && (s[ml] == '1' || s[ml] == '2')) {
                version = s[ml] - '0';
                continue;
            }
            say(err, errlen, "%s:1: not a status cache of offlineimap's (or of a newer format)",
                path);
            return OIMAP_ESTATUS;
        }
        uint32_t uid, flags;
        if (!parse_line(s, sl, version, &uid, &flags)) {
            say(err, errlen, "%s:%zu: corrupt line (offlineimap would refuse it too)", path,
                lineno);
            free(r.v);
            return OIMAP_ESTATUS;
        }
        /* offlineimap never records UID 0 (it skips such a message). */
        if (uid && recs_push(&r, uid, flags) < 0) {
            free(r.v);
            say(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
    int rc = recs_finish(&r, v_r, n_r);
    if (rc < 0)
        say(err, errlen, "out of memory");
    return rc;
}

/* ---- the SQLite cache ---------------------------------------------------------- */

#if OIMAP_HAVE_SQLITE

bool migrate_have_sqlite(void)
{
    return true;
}

/* A failed SQLite call: our code and a message naming the file. */
static int sqlite_fail(sqlite3 *db, int src, const char *path, const char *what, char *err,
                       size_t errlen)
{
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(src);
    if (src == SQLITE_READONLY_ROLLBACK) {
        say(err, errlen,
            "%s: offlineimap was interrupted while writing it (a hot journal is next to it): "
            "run offlineimap once more to finish that write, then oimap",
            path);
        return -EBUSY;
    }
    if ((src & 0xff) == SQLITE_BUSY || (src & 0xff) == SQLITE_LOCKED) {
        say(err, errlen, "%s: locked (is offlineimap running?): %s", path, msg);
        return -EBUSY;
    }
    if ((src & 0xff) == SQLITE_CANTOPEN || (src & 0xff) == SQLITE_PERM ||
        (src & 0xff) == SQLITE_AUTH) {
        say(err, errlen, "%s: cannot open: %s", path, msg);
        return -EIO;
    }
    if ((src & 0xff) == SQLITE_NOMEM) {
        say(err, errlen, "out of memory");
        return -ENOMEM;
    }
    say(err, errlen, "%s: %s: %s (not a status cache offlineimap could read)", path, what, msg);
    return OIMAP_ESTATUS;
}

/* offlineimap's schema version: 1 (status(id, flags)) or 2 (mtime, labels
 * added); anything else is a format oimap does not know. */
static int sqlite_version(sqlite3 *db, const char *path, char *err, size_t errlen)
{
    sqlite3_stmt *q = NULL;
    int rc =
        sqlite3_prepare_v2(db, "SELECT value FROM metadata WHERE key = 'db_version'", -1, &q, NULL);
    if (rc != SQLITE_OK)
        return sqlite_fail(db, rc, path, "reading its version", err, errlen);
    rc = sqlite3_step(q);
    const unsigned char *v = rc == SQLITE_ROW ? sqlite3_column_text(q, 0) : NULL;
    int ret = 0;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = sqlite_fail(db, rc, path, "reading its version", err, errlen);
    else if (!v || (strcmp((const char *)v, "1") != 0 && strcmp((const char *)v, "2") != 0)) {
        say(err, errlen, "%s: status database version %s, not 1 or 2: a format oimap does not know",
            path, v ? (const char *)v : "(none)");
        ret = OIMAP_ESTATUS;
    }
    sqlite3_finalize(q);
    return ret;
}

static int sqlite_rows(sqlite3 *db, const char *path, struct recs *r, char *err, size_t errlen)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT id, flags FROM status", -1, &q, NULL);
    if (rc != SQLITE_OK)
        return sqlite_fail(db, rc, path, "reading its messages", err, errlen);
    int ret = 0;
    while (ret == 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        sqlite3_int64 id = sqlite3_column_int64(q, 0);
        const unsigned char *fl = sqlite3_column_text(q, 1); /* NULL: no flags */
        int fn = sqlite3_column_bytes(q, 1);
        if (sqlite3_column_type(q, 0) != SQLITE_INTEGER || id < 0 ||
            id > (sqlite3_int64)UINT32_MAX) {
            say(err, errlen, "%s: a message with UID %lld: not a status cache of offlineimap's",
                path, (long long)id);
            ret = OIMAP_ESTATUS;
        } else if (id && recs_push(r, (uint32_t)id,
                                   migrate_flags((const char *)fl, fl ? (size_t)fn : 0)) < 0) {
            say(err, errlen, "out of memory");
            ret = -ENOMEM;
        }
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = sqlite_fail(db, rc, path, "reading its messages", err, errlen);
    sqlite3_finalize(q);
    return ret;
}

int migrate_read_sqlite(const char *path, struct migrate_rec **v_r, size_t *n_r, char *err,
                        size_t errlen)
{
    sqlite3 *db = NULL;
    struct recs r = {0};
    *v_r = NULL;
    *n_r = 0;
    /* Read-only: SQLite then never writes a byte, not even to roll back a
     * journal (it refuses instead: SQLITE_READONLY_ROLLBACK). */
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        int ret = sqlite_fail(db, rc, path, "opening it", err, errlen);
        sqlite3_close(db);
        return ret;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 2000);
    int ret = sqlite_version(db, path, err, errlen);
    if (ret == 0)
        ret = sqlite_rows(db, path, &r, err, errlen);
    sqlite3_close(db);
    if (ret < 0) {
        free(r.v);
        return ret;
    }
    if ((ret = recs_finish(&r, v_r, n_r)) < 0)
        say(err, errlen, "out of memory");
    return ret;
}

#else /* !OIMAP_HAVE_SQLITE */

bool migrate_have_sqlite(void)
{
    return false;
}

int migrate_read_sqlite(const char *path, struct migrate_rec **v_r, size_t *n_r, char *err,
                        size_t errlen)
{
    *v_r = NULL;
    *n_r = 0;
    say(err, errlen,
        "%s is offlineimap's status in SQLite, and this oimap was built without SQLite: "
        "install libsqlite3-dev, rebuild oimap with SQLite (meson option -Dsqlite=enabled) "
        "and run it again",
        path);
    return -ENOTSUP;
}

#endif

/* ---- FolderValidity ------------------------------------------------------------ */

int migrate_parse_validity(const char *buf, size_t len, uint32_t *uv_r)
{
    const char *nl = len ? memchr(buf, '\n', len) : NULL;
    size_t l = nl ? (size_t)(nl - buf) : len;
    uint64_t v;
    if (!parse_num(buf, l, UINT32_MAX, &v) || v == 0)
        return OIMAP_ESTATUS;
    *uv_r = (uint32_t)v;
    return 0;
}

/* ---- files ---------------------------------------------------------------------- */

static char *path_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *path_fmt(const char *fmt, ...)
{
    char *p = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : p;
}

/* The whole file into a malloc'ed buffer (NUL-terminated), at most max bytes. */
static int slurp(const char *path, size_t max, char **buf_r, size_t *len_r)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    struct stat sb;
    int e = fstat(fd, &sb) < 0           ? -errno
            : !S_ISREG(sb.st_mode)       ? -EISDIR
            : (uint64_t)sb.st_size > max ? -EFBIG
                                         : 0;
    if (e < 0) {
        close(fd);
        return e;
    }
    size_t cap = (size_t)sb.st_size + 1, n = 0;
    char *b = malloc(cap);
    if (!b) {
        close(fd);
        return -ENOMEM;
    }
    for (;;) {
        ssize_t k = read(fd, b + n, cap - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            e = -errno;
            free(b);
            close(fd);
            return e;
        }
        if (k == 0 || (n += (size_t)k) == cap - 1)
            break; /* a file grown since fstat is read as it was */
    }
    close(fd);
    b[n] = 0;
    *buf_r = b;
    *len_r = n;
    return 0;
}

/* A cache file: 1 and its mtime when it exists (an empty SQLite file is one
 * offlineimap created and never filled: none), 0 when not, or -errno. */
static int cache_stat(const char *path, bool sqlite, struct timespec *mtime_r)
{
    struct stat sb;
    if (stat(path, &sb) < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
    if (!S_ISREG(sb.st_mode))
        return -EISDIR;
    if (sqlite && sb.st_size == 0)
        return 0;
    *mtime_r = sb.st_mtim;
    return 1;
}

/* offlineimap holds an fcntl lock on <metadata>/<account>.lock while it
 * syncs the account.  Asked without taking it (F_GETLK), from a read-only
 * descriptor: nothing of offlineimap's is created or changed. */
static int offlineimap_running(const char *metadata, const char *account, char *err, size_t errlen)
{
    char *p = path_fmt("%s/%s.lock", metadata, account);
    if (!p)
        return -ENOMEM;
    int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    int rc = 0;
    if (fd >= 0) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
            say(err, errlen,
                "offlineimap is running on this account (process %ld holds %s): stop it "
                "(and its timer or cron job) before oimap takes the account over",
                (long)fl.l_pid, p);
            rc = -EBUSY;
        }
        close(fd);
    }
    free(p);
    return rc;
}

static int read_validity(const char *path, uint32_t *uv_r, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = slurp(path, 4096, &buf, &len);
    *uv_r = 0;
    if (rc == -ENOENT)
        return 0; /* offlineimap would take the server's current one */
    if (rc < 0) {
        say(err, errlen, "%s: %s", path, err_str(rc));
        return rc;
    }
    rc = migrate_parse_validity(buf, len, uv_r);
    if (rc < 0)
        say(err, errlen, "%s: not a UIDVALIDITY (offlineimap would refuse it too)", path);
    free(buf);
    return rc;
}

static int read_plain(const char *path, struct migrate_folder *f, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = slurp(path, PLAIN_MAX, &buf, &len);
    if (rc < 0) {
        say(err, errlen, "%s: %s", path, err_str(rc));
        return rc;
    }
    rc = migrate_parse_plain(buf, len, path, &f->recs, &f->n, err, errlen);
    free(buf);
    return rc;
}

void migrate_folder_free(struct migrate_folder *f)
{
    free(f->recs);
    free(f->path);
    memset(f, 0, sizeof *f);
}

/* Which cache offlineimap used last: see migrate.h. */
static int pick_cache(const struct migrate_where *w, const char *base, struct migrate_folder *f)
{
    char *sq = path_fmt("%s/Account-%s/LocalStatus-sqlite/%s", w->metadata, w->account, base);
    char *pl = path_fmt("%s/Account-%s/LocalStatus/%s", w->metadata, w->account, base);
    struct timespec tsq = {0}, tpl = {0};
    int rc = -ENOMEM;
    if (sq && pl) {
        int hsq = cache_stat(sq, true, &tsq), hpl = cache_stat(pl, false, &tpl);
        if (hsq < 0 || hpl < 0) {
            rc = hsq < 0 ? hsq : hpl;
        } else if (!hsq && !hpl) {
            rc = -ENOENT;
        } else {
            f->sqlite = hsq && (!hpl || tsq.tv_sec > tpl.tv_sec ||
                                (tsq.tv_sec == tpl.tv_sec && tsq.tv_nsec >= tpl.tv_nsec));
            f->path = f->sqlite ? sq : pl;
            *(f->sqlite ? &sq : &pl) = NULL;
            rc = 0;
        }
    }
    free(sq);
    free(pl);
    return rc;
}

int migrate_read(const struct migrate_where *w, struct migrate_folder *f_r, char *err,
                 size_t errlen)
{
    memset(f_r, 0, sizeof *f_r);
    char *base = migrate_basename(w->folder), *rbase = migrate_basename(w->remote);
    char *fv = base && rbase ? path_fmt("%s/Repository-%s/FolderValidity/%s", w->metadata,
                                        w->remote_repo, rbase)
                             : NULL;
    int rc = fv ? pick_cache(w, base, f_r) : -ENOMEM;
    if (rc == -ENOMEM)
        say(err, errlen, "out of memory");
    else if (rc < 0 && rc != -ENOENT)
        say(err, errlen, "%s/Account-%s: offlineimap's status of %s: %s", w->metadata, w->account,
            base, err_str(rc));
    if (rc == 0)
        rc = offlineimap_running(w->metadata, w->account, err, errlen);
    if (rc == 0)
        rc = f_r->sqlite ? migrate_read_sqlite(f_r->path, &f_r->recs, &f_r->n, err, errlen)
                         : read_plain(f_r->path, f_r, err, errlen);
    if (rc == 0)
        rc = read_validity(fv, &f_r->uidvalidity, err, errlen);
    if (rc < 0)
        migrate_folder_free(f_r);
    free(fv);
    free(base);
    free(rbase);
    return rc;
}

/* ---- into the status store -------------------------------------------------------- */

char *migrate_metadata_of(const struct status *st, const char *account)
{
    const char *env = status_env_dir(st);
    char *tail = path_fmt("/oimap/Account-%s/status.lmdb", account);
    char *meta = NULL;
    if (env && tail) {
        size_t el = strlen(env), tl = strlen(tail);
        if (el > tl && strcmp(env + el - tl, tail) == 0)
            meta = strndup(env, el - tl);
    }
    free(tail);
    return meta;
}

/* The records as status records, masked. */
static struct status_msg *to_msgs(const struct migrate_folder *mf, uint32_t mask)
{
    struct status_msg *v = calloc(mf->n ? mf->n : 1, sizeof *v);
    for (size_t i = 0; v && i < mf->n; i++)
        v[i] = (struct status_msg){
            .remote_uid = mf->recs[i].uid,
            .local_uid = mf->recs[i].uid,
            .flags = mf->recs[i].flags & mask,
            .state = STATUS_MSG_PAIRED,
        };
    return v;
}

/* One transaction: the folder record and every message.  These records are
 * pairings (status.h S2): offlineimap wrote each one after both halves were
 * stored; a half that has gone since is a deletion the planner propagates,
 * as offlineimap's next run would. */
static int record(struct status *st, const char *local, const char *remote, uint32_t uidvalidity,
                  const struct status_msg *v, size_t n, struct status_folder *f_r)
{
    struct status_txn *t = NULL;
    int rc = status_txn_begin(st, &t);
    if (rc < 0)
        return rc;
    rc = status_txn_folder_get_or_create(t, local, remote, f_r);
    if (rc == 0) {
        f_r->uidvalidity[STATUS_REMOTE] = uidvalidity;
        rc = status_txn_folder_put(t, f_r);
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = status_txn_msg_put(t, f_r->id, &v[i]);
    if (rc < 0) {
        status_txn_abort(&t);
        return rc;
    }
    return status_txn_commit(&t);
}

static int where_of(const struct config_account *acct, const char *metadata, const char *local,
                    const char *remote, struct migrate_where *w, char **rview_r)
{
    *rview_r = NULL;
    if (!acct->utf8foldernames) {
        /* offlineimap names the remote folder as the server does. */
        int rc = imap_utf7_encode(remote, strlen(remote), rview_r);
        if (rc < 0)
            return rc;
    }
    *w = (struct migrate_where){
        .metadata = metadata,
        .account = acct->name,
        .remote_repo =
            acct->remote && acct->remote->name ? acct->remote->name : acct->remoterepository,
        .folder = local,
        .remote = *rview_r ? *rview_r : remote,
    };
    return 0;
}

int migrate_takeover(struct status *st, const struct config_account *acct, const char *local_name,
                     const char *remote_name, uint32_t flag_mask, struct status_folder *f_r,
                     struct status_msg **v_r, size_t *n_r, char *err, size_t errlen)
{
    struct migrate_folder mf = {0};
    struct migrate_where w;
    char *rview = NULL;
    char *meta = migrate_metadata_of(st, acct->name);
    int rc = meta ? where_of(acct, meta, local_name, remote_name, &w, &rview) : -EINVAL;
    if (rc < 0) {
        say(err, errlen, "cannot look for offlineimap's status: %s", err_str(rc));
        free(meta);
        return rc;
    }
    rc = migrate_read(&w, &mf, err, errlen);
    if (rc == -ENOENT) {
        rc = 0;
        goto out;
    }
    if (rc < 0)
        goto out;
    /* offlineimap checks the UIDVALIDITY only when the folder has messages
     * (a server may lose it on an empty folder): so do we. */
    uint32_t uidvalidity = mf.n ? mf.uidvalidity : 0;
    struct status_msg *v = to_msgs(&mf, flag_mask);
    memset(f_r, 0, sizeof *f_r);
    f_r->uidvalidity[STATUS_REMOTE] = uidvalidity;
    rc = v ? 0 : -ENOMEM;
    if (rc == 0 && !status_is_readonly(st))
        rc = record(st, local_name, remote_name, uidvalidity, v, mf.n, f_r);
    if (rc < 0) {
        say(err, errlen, "cannot record offlineimap's status of the folder: %s", err_str(rc));
        free(v);
        goto out;
    }
    *v_r = v;
    *n_r = mf.n;
    log_info("%s%s: folder %s: taking over from offlineimap: %zu messages, UIDVALIDITY %u "
             "(%s)",
             status_is_readonly(st) ? "[dry-run] " : "", acct->name, remote_name, mf.n, uidvalidity,
             mf.path);
    rc = 1;
out:
    migrate_folder_free(&mf);
    free(rview);
    free(meta);
    return rc;
}
