/* migrate.h - take over an account that offlineimap synced, from its status
 * caches, so that the first oimap run behaves as offlineimap's next run would.
 *
 * offlineimap remembers, under its metadata directory (general.metadata,
 * ~/.offlineimap), for every folder pair it synced:
 *
 *   Account-<account>/LocalStatus-sqlite/<folder>   SQLite database (the
 *       default since offlineimap 7, the only backend of offlineimap3/8):
 *       tables metadata(key, value) with db_version 1 or 2, and
 *       status(id INTEGER PRIMARY KEY, flags, [mtime, labels]);
 *   Account-<account>/LocalStatus/<folder>          plain text
 *       (status_backend = plain): a first line "OFFLINEIMAP LocalStatus CACHE
 *       DATA - DO NOT MODIFY - FORMAT <n>", then one line per message:
 *       "<uid>:<flags>" (format 1) or "<uid>|<flags>|<mtime>|<labels>"
 *       (format 2);
 *   Repository-<remote>/FolderValidity/<rfolder>    the remote folder's
 *       UIDVALIDITY at the last sync, "<decimal>\n";
 *   <account>.lock                                  fcntl-locked while
 *       offlineimap runs on the account.
 *
 * <flags> are Maildir letters (DFPRST, a-z for customflag_<x> keywords): the
 * flags both sides had after offlineimap's last sync of that message, i.e.
 * exactly what an oimap status record holds (status.h).  <folder> is the
 * remote folder's nametrans'd name with the server's delimiter (and any '/')
 * turned into '.', <rfolder> the remote folder's own name with '/' turned
 * into '.'; both in modified UTF-7 unless utf8foldernames is on, and "dot"
 * for a name that would be "." (offlineimap's getfolderbasename()).  Other
 * per-folder state offlineimap keeps (Repository-<name>/UIDMapping and
 * StartUID)
 * belongs to IMAP <-> IMAP accounts, which oimap does not sync yet.
 *
 * When both caches of a folder exist, the one written last is offlineimap's
 * (the other is a leftover from before a status_backend change: offlineimap
 * copies the old one into the new on its first run and never reads it
 * again); on a tie, SQLite.
 *
 * Every file is only read: offlineimap's metadata stays byte for byte as it
 * was, so the user can go back to offlineimap.  SQLite databases are opened
 * read-only; one with an interrupted write of offlineimap's (a hot journal)
 * or locked by a running offlineimap is refused, not repaired.
 *
 * Reading SQLite needs oimap built with libsqlite3 (meson option sqlite,
 * auto); without it a folder kept in SQLite fails with a one-line error
 * saying what to do, and plain-text caches still work.
 *
 * Errors: 0 on success; -ENOENT when offlineimap kept no status for the
 * folder; OIMAP_ESTATUS for a cache offlineimap could not have written or
 * would refuse (corrupt line, unknown format, a UID over 2^32-1), with the
 * file and line in the message; -ENOTSUP for an SQLite cache without SQLite
 * support; -EBUSY when offlineimap is running on the account; other -errno.
 * Functions taking err, errlen write a one-line message there on failure
 * (never logged by this module: the caller logs it once, with context).
 */
#ifndef OIMAP_MIGRATE_H
#define OIMAP_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config_account;
struct status;
struct status_folder;
struct status_msg;

/* One message of an offlineimap status cache. */
struct migrate_rec {
    uint32_t uid;   /* the remote UID, also the U= of the local file */
    uint32_t flags; /* STATUS_FLAG_* bits (status.h) */
};

/* What offlineimap remembers of one folder pair. */
struct migrate_folder {
    struct migrate_rec *recs; /* sorted by uid, distinct; malloc'ed */
    size_t n;
    uint32_t uidvalidity; /* the remote folder's, 0 if no FolderValidity file */
    bool sqlite;          /* read from LocalStatus-sqlite (else LocalStatus) */
    char *path;           /* the cache file read (malloc'ed) */
};

/* Where to look: the names as offlineimap used them. */
struct migrate_where {
    const char *metadata;    /* offlineimap's metadata directory */
    const char *account;     /* account name */
    const char *remote_repo; /* name of the remote [Repository ...] */
    const char *folder;      /* nametrans'd remote name, '/'-delimited (the
                              * local folder name oimap uses) */
    const char *remote;      /* the remote folder's own name, server delimiter */
};

/* Read the status of one folder pair.  Returns 0 with *f_r filled (free it
 * with migrate_folder_free), -ENOENT when there is no cache for this folder,
 * or an error above with a message in err. */
int migrate_read(const struct migrate_where *w, struct migrate_folder *f_r, char *err,
                 size_t errlen);
void migrate_folder_free(struct migrate_folder *f);

/* Called by the sync engine (sync.c) for a folder pair the status store has
 * no record of, before planning: reads offlineimap's status of it and, on a
 * writable store, records it in one transaction (the folder record with
 * offlineimap's UIDVALIDITY, one paired record {uid, uid, flags} per message,
 * flags masked with flag_mask: keyword letters without a customflag are not
 * compared by oimap).  On a read-only store (--dry-run) nothing is written.
 * Either way *f_r, *v_r (malloc'ed, remote-uid order) and *n_r are what
 * status_folder_lookup() and status_msg_load() would give after the import
 * (f_r->id is 0 in dry-run).  local_name and remote_name are the job's
 * (sync.h): local as the Maildir names it ('/'-delimited, modified UTF-7
 * unless utf8foldernames), remote in UTF-8 with the server's delimiter.
 * Returns 1 when taken over, 0 when offlineimap kept nothing for the folder
 * (nothing written), or a negative code with a message in err (nothing
 * written). */
int migrate_takeover(struct status *st, const struct config_account *acct, const char *local_name,
                     const char *remote_name, uint32_t flag_mask, struct status_folder *f_r,
                     struct status_msg **v_r, size_t *n_r, char *err, size_t errlen);

/* --- the pieces, for tests ------------------------------------------------ */

/* offlineimap's file name for a folder name: '/' -> '.', "" and "." ->
 * "dot".  Returns a malloc'ed string or NULL (out of memory). */
char *migrate_basename(const char *name);

/* Maildir flag letters -> STATUS_FLAG_* bits; other characters are ignored
 * (offlineimap keeps whatever letters a file name had). */
uint32_t migrate_flags(const char *letters, size_t len);

/* Parse a plain-text cache (format 1 or 2) held in buf; path names it in
 * messages.  An empty file is an empty cache. */
int migrate_parse_plain(const char *buf, size_t len, const char *path, struct migrate_rec **v_r,
                        size_t *n_r, char *err, size_t errlen);

/* Read an SQLite cache (read-only).  -ENOTSUP without SQLite support. */
int migrate_read_sqlite(const char *path, struct migrate_rec **v_r, size_t *n_r, char *err,
                        size_t errlen);

/* Parse a FolderValidity file's contents: a decimal UIDVALIDITY (1 ..
 * 2^32-1) on the first line, blanks around it allowed. */
int migrate_parse_validity(const char *buf, size_t len, uint32_t *uv_r);

/* Whether this build reads SQLite caches. */
bool migrate_have_sqlite(void);

/* The metadata directory of an open status store (status.h: the store lives
 * in <metadata>/oimap/Account-<account>/status.lmdb).  Returns a malloc'ed
 * string, or NULL when the store's path does not have that shape. */
char *migrate_metadata_of(const struct status *st, const char *account);

#endif
