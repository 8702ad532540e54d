/* test_migrate.c - reading offlineimap's status caches (migrate.h): both
 * plain-text formats, corrupt and truncated files, SQLite databases (when
 * built with SQLite), which cache wins, the running-offlineimap check, and the
 * import into the status store (and that offlineimap's files stay as they
 * were). */
#include "build_config.h"
#include "config.h"
#include "err.h"
#include "migrate.h"
#include "status.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if OIMAP_HAVE_SQLITE
#include <sqlite3.h>
#endif

#define MAGIC "OFFLINEIMAP LocalStatus CACHE DATA - DO NOT MODIFY - FORMAT "

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

static char *tpath(const char *rel)
{
    static char bufs[8][512];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", g_tmp, rel);
    return b;
}

static void mkdirs(const char *path)
{
    char b[512];
    snprintf(b, sizeof b, "%s", path);
    for (char *p = b + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(b, 0700);
            *p = '/';
        }
    mkdir(b, 0700);
}

static void put_file(const char *path, const char *data, size_t len)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    mkdirs(dir);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    fwrite(data, 1, len, f);
    fclose(f);
}

static uint64_t file_hash(const char *path)
{
    uint64_t h = 0xcbf29ce484222325ull;
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    int c;
    while ((c = getc(f)) != EOF)
        h = (h ^ (unsigned)c) * 0x100000001b3ull;
    fclose(f);
    return h;
}

static void set_mtime(const char *path, time_t t)
{
    struct timespec ts[2] = {{t, 0}, {t, 0}};
    utimensat(AT_FDCWD, path, ts, 0);
}

/* Parse text as a plain cache; rc, and the records as "uid:FLAGS ..." */
static int parse(const char *text, size_t len, char *out, size_t cap, char *err, size_t errlen)
{
    struct migrate_rec *v = NULL;
    size_t n = 0;
    int rc = migrate_parse_plain(text, len, "F", &v, &n, err, errlen);
    size_t o = 0;
    out[0] = 0;
    for (size_t i = 0; rc == 0 && i < n && o + 40 < cap; i++) {
        char fl[40];
        status_flags_str(v[i].flags, fl);
        o += (size_t)snprintf(out + o, cap - o, "%s%u:%s", i ? " " : "", v[i].uid, fl);
    }
    free(v);
    return rc;
}

static void test_names_and_flags(void)
{
    char *b;
    is_str(b = migrate_basename("INBOX"), "INBOX", "basename INBOX");
    free(b);
    is_str(b = migrate_basename("Lists/dev/ops"), "Lists.dev.ops", "nested: '/' becomes '.'");
    free(b);
    is_str(b = migrate_basename("Brouillons.&AMk-t&AOk-"), "Brouillons.&AMk-t&AOk-",
           "modified UTF-7 name kept");
    free(b);
    is_str(b = migrate_basename(""), "dot", "empty name: dot");
    free(b);
    is_str(b = migrate_basename("."), "dot", "'.': dot");
    free(b);
    is_int(migrate_flags("DFPRST", 6), 0x3f, "the six Maildir letters");
    is_int(migrate_flags("S", 1), STATUS_FLAG_SEEN, "S is \\Seen");
    is_int(migrate_flags("ab", 2), STATUS_FLAG_KEYWORD('a') | STATUS_FLAG_KEYWORD('b'),
           "keyword letters");
    is_int(migrate_flags("XZ1,", 4), 0, "unknown characters ignored");
    is_int(migrate_flags("", 0), 0, "no flags");
}

static void test_plain(void)
{
    char out[512], err[256];
    const char *v2 = MAGIC "2\n"
                           "7|FS|0|\n"
                           "3||0|\n"
                           "12|RS|1690000000|label1, label2\n"
                           "7|S|0|\n"          /* again: the last one wins */
                           "0|S|0|\n"          /* never a UID: skipped */
                           " 20 |T|0|\r\n"     /* blanks and CRLF */
                           "4294967295|D|-1|"; /* no final newline */
    is_int(parse(v2, strlen(v2), out, sizeof out, err, sizeof err), 0, "format 2 parses");
    is_str(out, "3: 7:S 12:RS 20:T 4294967295:D", "format 2 records, sorted, last wins");

    const char *v1 = MAGIC "1\n5:S\n2:\n9:FRS\n";
    is_int(parse(v1, strlen(v1), out, sizeof out, err, sizeof err), 0, "format 1 parses");
    is_str(out, "2: 5:S 9:FRS", "format 1 records");

    const char *crlf = MAGIC "2\r\n1|S|0|\r\n";
    is_int(parse(crlf, strlen(crlf), out, sizeof out, err, sizeof err), 0, "CRLF magic line");
    is_str(out, "1:S", "CRLF records");

    is_int(parse("", 0, out, sizeof out, err, sizeof err), 0, "an empty file: no records");
    is_str(out, "", "empty");
    const char *only = MAGIC "2\n";
    is_int(parse(only, strlen(only), out, sizeof out, err, sizeof err), 0, "magic line only");
    is_str(out, "", "no records");

    static const struct {
        const char *text, *line, *why;
    } bad[] = {
        {"OFFLINEIMAP LocalStatus CACHE DATA\n1|S|0|\n", "F:1:", "not the magic line"},
        {MAGIC "3\n1|S|0|\n", "F:1:", "format 3"},
        {MAGIC "2\n1|S|0|\n2|S|0\n", "F:3:", "three fields (truncated line)"},
        {MAGIC "2\n1|S|0|\n\n2|S|0|\n", "F:3:", "an empty line"},
        {MAGIC "2\nx|S|0|\n", "F:2:", "UID not a number"},
        {MAGIC "2\n-3|S|0|\n", "F:2:", "negative UID"},
        {MAGIC "2\n4294967296|S|0|\n", "F:2:", "UID over 2^32-1"},
        {MAGIC "2\n1|S|x|\n", "F:2:", "mtime not a number"},
        {MAGIC "2\n1|S|0||\n", "F:2:", "five fields"},
        {MAGIC "1\n1|S|0|\n", "F:2:", "a format 2 line in a format 1 file"},
        {MAGIC "2\n1:S\n", "F:2:", "a format 1 line in a format 2 file"},
        {"\n" MAGIC "2\n", "F:1:", "blank first line"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        int rc = parse(bad[i].text, strlen(bad[i].text), out, sizeof out, err, sizeof err);
        is_int(rc, OIMAP_ESTATUS, "refused: %s", bad[i].why);
        ok(strncmp(err, bad[i].line, strlen(bad[i].line)) == 0, "message names %s (%s)",
           bad[i].line, err);
    }
    const char nul[] = MAGIC "2\n1|S\0|0|\n";
    is_int(parse(nul, sizeof nul - 1, out, sizeof out, err, sizeof err), OIMAP_ESTATUS,
           "a NUL byte is refused");
}

/* Every prefix of a valid format 2 file (a cache cut short by a crash or a
 * full disk) is refused or gives records of the original, with their
 * original flags: never an invented UID, never wrong flags. */
static void test_truncated(void)
{
    const char *full = MAGIC "2\n101|FS|0|\n23|S|1690000000|a, b\n4567|DRS|0|\n89|T|0|\n";
    const struct {
        uint32_t uid;
        const char *flags;
    } want[] = {{23, "S"}, {89, "T"}, {101, "FS"}, {4567, "DRS"}};
    size_t len = strlen(full), bad = 0, refused = 0;
    for (size_t cut = 0; cut <= len; cut++) {
        struct migrate_rec *v = NULL;
        size_t n = 0;
        char err[256];
        int rc = migrate_parse_plain(full, cut, "F", &v, &n, err, sizeof err);
        if (rc < 0) {
            refused++;
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            bool found = false;
            for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
                found |= want[k].uid == v[i].uid &&
                         v[i].flags == migrate_flags(want[k].flags, strlen(want[k].flags));
            bad += !found;
        }
        free(v);
    }
    is_int(bad, 0, "no prefix of a cache gives an invented UID or wrong flags");
    ok(refused > 0 && refused < len, "some prefixes refused (%zu of %zu)", refused, len + 1);
}

static void test_validity(void)
{
    uint32_t uv = 0;
    is_int(migrate_parse_validity("1796331690\n", 11, &uv), 0, "a FolderValidity file");
    is_int(uv, 1796331690u, "its value");
    is_int(migrate_parse_validity(" 5 \nrest", 8, &uv), 0, "blanks and a second line");
    is_int(uv, 5, "value 5");
    is_int(migrate_parse_validity("4294967295", 10, &uv), 0, "2^32-1");
    is_int(migrate_parse_validity("0\n", 2, &uv), OIMAP_ESTATUS, "0 is no UIDVALIDITY");
    is_int(migrate_parse_validity("4294967296\n", 11, &uv), OIMAP_ESTATUS, "over 2^32-1");
    is_int(migrate_parse_validity("12a\n", 4, &uv), OIMAP_ESTATUS, "not a number");
    is_int(migrate_parse_validity("", 0, &uv), OIMAP_ESTATUS, "empty");
}

#if OIMAP_HAVE_SQLITE
/* A database as offlineimap (LocalStatusSQLite.py) creates it. */
static void make_db(const char *path, int version, const char *rows)
{
    sqlite3 *db = NULL;
    char sql[2048];
    unlink(path);
    sqlite3_open(path, &db);
    if (version == 1)
        snprintf(sql, sizeof sql,
                 "CREATE TABLE metadata (key VARCHAR(50) PRIMARY KEY, value VARCHAR(128));"
                 "INSERT INTO metadata VALUES('db_version', '1');"
                 "CREATE TABLE status (id INTEGER PRIMARY KEY, flags VARCHAR(50));%s",
                 rows);
    else
        snprintf(sql, sizeof sql,
                 "CREATE TABLE metadata (key VARCHAR(50) PRIMARY KEY, value VARCHAR(128));"
                 "INSERT INTO metadata VALUES('db_version', '%d');"
                 "CREATE TABLE status (id INTEGER PRIMARY KEY, flags VARCHAR(50), mtime INTEGER, "
                 "labels VARCHAR(256));%s",
                 version, rows);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        printf("# make_db: %s\n", msg);
    sqlite3_free(msg);
    sqlite3_close(db);
}

static int read_db(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
    struct migrate_rec *v = NULL;
    size_t n = 0, o = 0;
    int rc = migrate_read_sqlite(path, &v, &n, err, errlen);
    out[0] = 0;
    for (size_t i = 0; rc == 0 && i < n && o + 40 < cap; i++) {
        char fl[40];
        status_flags_str(v[i].flags, fl);
        o += (size_t)snprintf(out + o, cap - o, "%s%u:%s", i ? " " : "", v[i].uid, fl);
    }
    free(v);
    return rc;
}

/* A child killed in the middle of a big write transaction leaves a hot
 * journal next to the database, as a killed offlineimap would. */
static void make_hot_journal(const char *path)
{
    pid_t pid = fork();
    if (pid == 0) {
        sqlite3 *db = NULL;
        sqlite3_open(path, &db);
        sqlite3_exec(db, "PRAGMA cache_size = 1; BEGIN;", NULL, NULL, NULL);
        for (int i = 1000; i < 6000; i++) {
            char sql[200];
            snprintf(sql, sizeof sql, "INSERT INTO status VALUES(%d, 'S', 0, '%0100d');", i, i);
            sqlite3_exec(db, sql, NULL, NULL, NULL);
        }
        _exit(0); /* no COMMIT, no close: the journal stays hot */
    }
    waitpid(pid, NULL, 0);
}

static void test_sqlite(void)
{
    char out[512], err[512];
    const char *p = tpath("db/INBOX");
    mkdirs(tpath("db"));
    make_db(p, 2,
            "INSERT INTO status VALUES(3, 'FS', 0, '');"
            "INSERT INTO status VALUES(1, 'S', 0, '');"
            "INSERT INTO status VALUES(2, '', 0, '');"
            "INSERT INTO status VALUES(9, NULL, 0, NULL);"
            "INSERT INTO status VALUES(0, 'S', 0, '');"
            "INSERT INTO status VALUES(4294967295, 'Ra', 0, '');");
    uint64_t h = file_hash(p);
    is_int(read_db(p, out, sizeof out, err, sizeof err), 0, "version 2 database read");
    is_str(out, "1:S 2: 3:FS 9: 4294967295:Ra", "its records (UID 0 skipped, NULL flags)");
    ok(file_hash(p) == h, "the database is unchanged");
    ok(access(tpath("db/INBOX-journal"), F_OK) != 0, "no journal left behind");

    make_db(p, 1, "INSERT INTO status VALUES(5, 'S');");
    is_int(read_db(p, out, sizeof out, err, sizeof err), 0, "version 1 database read");
    is_str(out, "5:S", "version 1 records");

    make_db(p, 3, "");
    is_int(read_db(p, out, sizeof out, err, sizeof err), OIMAP_ESTATUS, "version 3 refused");
    ok(strstr(err, "version 3") != NULL, "message says so: %s", err);

    make_db(p, 2, "INSERT INTO status VALUES(4294967296, 'S', 0, '');");
    is_int(read_db(p, out, sizeof out, err, sizeof err), OIMAP_ESTATUS, "UID over 2^32-1");

    put_file(p, "this is not a database, but long enough to look at it......", 60);
    is_int(read_db(p, out, sizeof out, err, sizeof err), OIMAP_ESTATUS, "not a database");
    ok(strstr(err, p) != NULL, "message names the file: %s", err);

    sqlite3 *db = NULL;
    unlink(p);
    sqlite3_open(p, &db);
    sqlite3_exec(db, "CREATE TABLE other (x);", NULL, NULL, NULL);
    sqlite3_close(db);
    is_int(read_db(p, out, sizeof out, err, sizeof err), OIMAP_ESTATUS,
           "a database without offlineimap's tables");

    is_int(read_db(tpath("db/absent"), out, sizeof out, err, sizeof err), -EIO,
           "a missing file cannot be opened read-only");
    ok(access(tpath("db/absent"), F_OK) != 0, "and is not created");

    make_db(p, 2, "INSERT INTO status VALUES(1, 'S', 0, '');");
    make_hot_journal(p);
    if (access(tpath("db/INBOX-journal"), F_OK) == 0) {
        uint64_t hd = file_hash(p), hj = file_hash(tpath("db/INBOX-journal"));
        int rc = read_db(p, out, sizeof out, err, sizeof err);
        is_int(rc, -EBUSY, "a hot journal (interrupted offlineimap) is refused");
        ok(strstr(err, "run offlineimap once more") != NULL, "and says what to do: %s", err);
        ok(file_hash(p) == hd && file_hash(tpath("db/INBOX-journal")) == hj,
           "neither the database nor its journal was touched");
    } else {
        ok(1, "# SKIP no hot journal could be made");
        ok(1, "# SKIP");
        ok(1, "# SKIP");
    }
    unlink(tpath("db/INBOX-journal"));
}
#else
static void test_sqlite(void)
{
    char err[512];
    struct migrate_rec *v = NULL;
    size_t n = 0;
    put_file(tpath("db/INBOX"), "SQLite format 3", 15);
    is_int(migrate_read_sqlite(tpath("db/INBOX"), &v, &n, err, sizeof err), -ENOTSUP,
           "without SQLite: -ENOTSUP");
    ok(strstr(err, "libsqlite3-dev") != NULL && strchr(err, '\n') == NULL,
       "one line saying what to install: %s", err);
}
#endif

/* --- migrate_read on a metadata directory -------------------------------- */

static const char *plain_inbox = MAGIC "2\n1|S|0|\n2|FS|0|\n5||0|\n";

static int read_folder(const char *folder, const char *remote, struct migrate_folder *f, char *err,
                       size_t errlen)
{
    struct migrate_where w = {
        .metadata = tpath("meta"),
        .account = "Acc",
        .remote_repo = "Remote",
        .folder = folder,
        .remote = remote,
    };
    return migrate_read(&w, f, err, errlen);
}

static void test_read(void)
{
    struct migrate_folder f;
    char err[512];
    put_file(tpath("meta/Account-Acc/LocalStatus/INBOX"), plain_inbox, strlen(plain_inbox));
    put_file(tpath("meta/Repository-Remote/FolderValidity/INBOX"), "1700000001\n", 11);
    put_file(tpath("meta/Repository-Local/FolderValidity/INBOX"), "42\n", 3);
    is_int(read_folder("INBOX", "INBOX", &f, err, sizeof err), 0, "INBOX read");
    is_int(f.n, 3, "3 records");
    is_int(f.uidvalidity, 1700000001u, "the remote FolderValidity, not the local one");
    ok(!f.sqlite && f.path && strstr(f.path, "/LocalStatus/INBOX"), "from the plain cache");
    migrate_folder_free(&f);

    is_int(read_folder("Sent", "Sent", &f, err, sizeof err), -ENOENT, "no cache: -ENOENT");

    /* nested, nametrans'd: the cache is named after the local name, the
     * FolderValidity file after the remote one */
    const char *one = MAGIC "2\n9|S|0|\n";
    put_file(tpath("meta/Account-Acc/LocalStatus/Lists.dev"), one, strlen(one));
    put_file(tpath("meta/Repository-Remote/FolderValidity/INBOX.Lists.dev"), "77\n", 3);
    is_int(read_folder("Lists/dev", "INBOX.Lists.dev", &f, err, sizeof err), 0, "nested folder");
    is_int(f.n, 1, "its record");
    is_int(f.uidvalidity, 77, "its FolderValidity under the remote name");
    migrate_folder_free(&f);

    /* no FolderValidity: unknown (0), as offlineimap would take the server's */
    put_file(tpath("meta/Account-Acc/LocalStatus/Drafts"), one, strlen(one));
    is_int(read_folder("Drafts", "Drafts", &f, err, sizeof err), 0, "no FolderValidity");
    is_int(f.uidvalidity, 0, "UIDVALIDITY unknown");
    migrate_folder_free(&f);
    put_file(tpath("meta/Repository-Remote/FolderValidity/Drafts"), "x\n", 2);
    is_int(read_folder("Drafts", "Drafts", &f, err, sizeof err), OIMAP_ESTATUS,
           "a corrupt FolderValidity is refused");
    ok(strstr(err, "FolderValidity/Drafts") != NULL, "naming it: %s", err);

    /* a corrupt cache: the message names file and line */
    const char *badc = MAGIC "2\n1|S|0|\n2|S\n";
    put_file(tpath("meta/Account-Acc/LocalStatus/Junk"), badc, strlen(badc));
    is_int(read_folder("Junk", "Junk", &f, err, sizeof err), OIMAP_ESTATUS, "corrupt cache");
    ok(strstr(err, "LocalStatus/Junk:3:") != NULL, "file:line in the message: %s", err);

    /* both caches: the one written last wins; an empty SQLite file is none */
    const char *sq = tpath("meta/Account-Acc/LocalStatus-sqlite/INBOX");
    put_file(sq, "", 0);
    is_int(read_folder("INBOX", "INBOX", &f, err, sizeof err), 0, "empty SQLite file ignored");
    ok(!f.sqlite, "the plain cache is read");
    migrate_folder_free(&f);
#if OIMAP_HAVE_SQLITE
    make_db(sq, 2, "INSERT INTO status VALUES(1, 'S', 0, '');");
#else
    put_file(sq, "SQLite format 3", 15);
#endif
    set_mtime(tpath("meta/Account-Acc/LocalStatus/INBOX"), 1600000000);
    set_mtime(sq, 1700000000);
    int rc = read_folder("INBOX", "INBOX", &f, err, sizeof err);
#if OIMAP_HAVE_SQLITE
    is_int(rc, 0, "both caches: read");
    ok(f.sqlite && f.n == 1, "the newer (SQLite) one");
#else
    is_int(rc, -ENOTSUP, "both caches, SQLite newer, no SQLite support: refused");
    ok(strstr(err, "libsqlite3-dev") != NULL, "saying what to do");
#endif
    migrate_folder_free(&f);
    set_mtime(sq, 1500000000);
    is_int(read_folder("INBOX", "INBOX", &f, err, sizeof err), 0, "plain newer: read");
    ok(!f.sqlite && f.n == 3, "the plain one");
    migrate_folder_free(&f);
    unlink(sq);

    /* a running offlineimap (a child holding the account lock) */
    put_file(tpath("meta/Acc.lock"), "", 0);
    int ready[2], stop[2];
    if (pipe(ready) < 0 || pipe(stop) < 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(tpath("meta/Acc.lock"), O_WRONLY);
        lockf(fd, F_TLOCK, 0);
        char ch = 1;
        if (write(ready[1], &ch, 1) < 0 || read(stop[0], &ch, 1) < 0)
            _exit(1);
        _exit(0);
    }
    char ch;
    if (read(ready[0], &ch, 1) != 1)
        ch = 0;
    rc = read_folder("INBOX", "INBOX", &f, err, sizeof err);
    is_int(rc, -EBUSY, "offlineimap running: refused");
    ok(strstr(err, "offlineimap is running") != NULL, "saying so: %s", err);
    if (write(stop[1], &ch, 1) < 0)
        kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(ready[0]);
    close(ready[1]);
    close(stop[0]);
    close(stop[1]);
    is_int(read_folder("INBOX", "INBOX", &f, err, sizeof err), 0, "lock released: read");
    migrate_folder_free(&f);
}

/* --- migrate_takeover into a status store ---------------------------------- */

static void test_takeover(void)
{
    struct config_repo remote = {.name = (char *)"Remote"};
    struct config_account acct = {.name = (char *)"Acc", .remote = &remote};
    struct status *st = NULL;
    struct status_folder f;
    struct status_msg *v = NULL;
    size_t n = 0;
    char err[512];
    uint64_t h = file_hash(tpath("meta/Account-Acc/LocalStatus/INBOX"));
    uint32_t mask = 0x3f;

    /* dry-run: a read-only store, nothing written */
    is_int(status_open(tpath("meta"), "Acc", true, &st), 0, "read-only store");
    is_int(migrate_takeover(st, &acct, "INBOX", "INBOX", mask, &f, &v, &n, err, sizeof err), 1,
           "dry-run: taken over in memory");
    ok(n == 3 && f.id == 0 && f.uidvalidity[STATUS_REMOTE] == 1700000001u,
       "records and UIDVALIDITY, no folder id");
    free(v);
    status_close(&st);
    ok(access(tpath("meta/oimap"), F_OK) != 0, "dry-run wrote nothing");

    is_int(status_open(tpath("meta"), "Acc", false, &st), 0, "store");
    is_int(migrate_takeover(st, &acct, "Sent", "Sent", mask, &f, &v, &n, err, sizeof err), 0,
           "no cache: nothing to take over");
    is_int(status_folder_lookup(st, "Sent", "Sent", &f), -ENOENT, "and nothing recorded");
    is_int(migrate_takeover(st, &acct, "INBOX", "INBOX", mask, &f, &v, &n, err, sizeof err), 1,
           "INBOX taken over");
    ok(n == 3 && v && v[0].remote_uid == 1 && v[1].remote_uid == 2 && v[2].remote_uid == 5,
       "records returned in UID order");
    free(v);
    struct status_folder g;
    is_int(status_folder_lookup(st, "INBOX", "INBOX", &g), 0, "folder recorded");
    ok(g.id == f.id && g.uidvalidity[STATUS_REMOTE] == 1700000001u && g.last_sync == 0,
       "with offlineimap's UIDVALIDITY, never synced by oimap");
    struct status_msg m;
    is_int(status_msg_get(st, g.id, 2, &m), 0, "message 2 recorded");
    ok(m.local_uid == 2 && m.flags == (STATUS_FLAG_FLAGGED | STATUS_FLAG_SEEN) &&
           m.state == STATUS_MSG_PAIRED,
       "paired, with offlineimap's flags");

    /* keyword letters outside the mask are dropped */
    const char *kw = MAGIC "2\n1|Sab|0|\n";
    put_file(tpath("meta/Account-Acc/LocalStatus/Kw"), kw, strlen(kw));
    is_int(migrate_takeover(st, &acct, "Kw", "Kw", 0x3f | STATUS_FLAG_KEYWORD('a'), &f, &v, &n, err,
                            sizeof err),
           1, "keywords");
    ok(n == 1 && v[0].flags == (STATUS_FLAG_SEEN | STATUS_FLAG_KEYWORD('a')),
       "mapped keyword kept, unmapped dropped");
    free(v);

    /* a folder with no messages: its UIDVALIDITY is not checked (offlineimap) */
    put_file(tpath("meta/Account-Acc/LocalStatus/Empty"), MAGIC "2\n", strlen(MAGIC) + 2);
    put_file(tpath("meta/Repository-Remote/FolderValidity/Empty"), "5\n", 2);
    is_int(migrate_takeover(st, &acct, "Empty", "Empty", mask, &f, &v, &n, err, sizeof err), 1,
           "empty folder");
    ok(n == 0 && f.uidvalidity[STATUS_REMOTE] == 0, "no records, UIDVALIDITY left to the server");
    free(v);

    /* non-ASCII: offlineimap's names are modified UTF-7 */
    const char *one = MAGIC "2\n4|S|0|\n";
    put_file(tpath("meta/Account-Acc/LocalStatus/Brouillons.&AMk-t&AOk-"), one, strlen(one));
    put_file(tpath("meta/Repository-Remote/FolderValidity/Brouillons.&AMk-t&AOk-"), "8\n", 2);
    is_int(migrate_takeover(st, &acct, "Brouillons/&AMk-t&AOk-", "Brouillons.\xc3\x89t\xc3\xa9",
                            mask, &f, &v, &n, err, sizeof err),
           1, "non-ASCII folder");
    ok(n == 1 && f.uidvalidity[STATUS_REMOTE] == 8, "found under its modified UTF-7 names");
    free(v);

    /* errors leave nothing behind */
    const char *badc = MAGIC "2\n1|S|0|\nbroken\n";
    put_file(tpath("meta/Account-Acc/LocalStatus/Bad"), badc, strlen(badc));
    is_int(migrate_takeover(st, &acct, "Bad", "Bad", mask, &f, &v, &n, err, sizeof err),
           OIMAP_ESTATUS, "corrupt cache: error");
    is_int(status_folder_lookup(st, "Bad", "Bad", &f), -ENOENT, "nothing recorded");
    status_close(&st);
    ok(file_hash(tpath("meta/Account-Acc/LocalStatus/INBOX")) == h,
       "offlineimap's cache unchanged");
}

int main(void)
{
    snprintf(g_tmp, sizeof g_tmp, "/tmp/oimap-test-migrate-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_names_and_flags();
    test_plain();
    test_truncated();
    test_validity();
    test_sqlite();
    test_read();
    test_takeover();
    rm_rf(g_tmp);
    return tap_done();
}
