/* repo_maildir.h - the Maildir repository: asynchronous file operations.
 *
 * One struct repo_maildir per `localfolders` root.  Every operation that
 * touches the file system runs in the libuv threadpool (uv_queue_work); the
 * repository keeps its own FIFO so that at most max_jobs of its jobs are in
 * the pool at once.  Each operation takes a callback and an opaque arg; the
 * callback runs later on the loop thread, never from inside the call that
 * started it, and never when that call returned an error.
 *
 * Ownership: string arguments are copied, so they need only live for the
 * call.  Strings handed to callbacks live only for the callback.  Listings
 * handed to callbacks belong to the caller (free them with the matching
 * *_free).  A folder handle may be released with repo_maildir_folder_free()
 * while operations on it are pending: it is freed when they have completed.
 * The same holds for repo_maildir_free(): pending operations still complete
 * and report their real result (a file that was renamed is reported so),
 * after which the repository is freed.  The loop must keep running until
 * then.
 *
 * Messages are named by (in_new, name): the directory (new/ or cur/) and the
 * file name.  If a mail reader renamed the file meanwhile (moved it to cur/,
 * changed its flags), operations find it again by its unique part.
 *
 * Durability (see ../shared/SYNC-SAFETY.md): with fsync on (offlineimap's
 * default) a delivered file is in new/ or cur/ only after its data was
 * fsynced, and a callback reporting a rename, delivery or unlink runs only
 * after the directory holding it was fsynced, so the caller may then commit
 * the status store.  REPO_MAILDIR_NOSYNC defers the directory fsync of a
 * rename or unlink to a later repo_maildir_barrier() (one barrier for many
 * flag changes).
 *
 * Errors: negative errno values from the file system, OIMAP_ENAME for unsafe
 * folder names or malformed file names, -EEXIST when a rename target exists
 * (we never replace a file), -ENOENT when a message cannot be found.
 * `-d maildir` logs every operation.
 */
#ifndef OIMAP_REPO_MAILDIR_H
#define OIMAP_REPO_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "maildir_name.h"

struct repo_maildir;
struct repo_maildir_folder;
struct repo_maildir_writer;
struct repo_maildir_batch;
struct repo_maildir_reader;

struct repo_maildir_opts {
    const char *root;    /* localfolders, already expanded; created (0700) if missing */
    const char *sep;     /* folder separator; NULL means "." */
    bool fsync;          /* [general] fsync (offlineimap's default: true) */
    bool windows_compat; /* maildir-windows-compatible: '!' instead of ':' */
    unsigned max_jobs;   /* threadpool jobs in flight at once; 0 means 8 */
    bool no_create;      /* --dry-run: repo_maildir_list never creates the root */
    bool batch_syncfs;   /* batches: one syncfs() of the file system instead of
                          * concurrent per-file fsyncs (faster on some disks,
                          * but flushes everything else dirty there too) */
};

/* Create a repository.  No I/O happens here.  Returns 0, -ENOMEM, or
 * OIMAP_ENAME for an invalid sep or an empty root. */
int repo_maildir_new(uv_loop_t *loop, const struct repo_maildir_opts *opts,
                     struct repo_maildir **md_r);
/* Release the caller's reference and NULL *md; the memory goes once the
 * operations still pending have completed. */
void repo_maildir_free(struct repo_maildir **md);
/* Number of operations queued or running. */
size_t repo_maildir_pending(const struct repo_maildir *md);

typedef void (*repo_maildir_done_cb)(int st, void *arg);

/* ---- folders --------------------------------------------------------------- */

struct repo_maildir_folder_info {
    char *name;  /* IMAP-side name, '/' as delimiter ("" for the top folder) */
    char *local; /* relative path under localfolders, as offlineimap names it */
};
struct repo_maildir_folder_list {
    struct repo_maildir_folder_info *v;
    size_t n;
};
typedef void (*repo_maildir_list_cb)(int st, struct repo_maildir_folder_list *list, void *arg);

/* Walk localfolders (recursively when sep is "/", as offlineimap does) and
 * list every directory holding cur/, new/ and tmp/, sorted by name.  Local
 * names with no safe IMAP name are warned about and left out.  On success
 * the list belongs to the callback's caller. */
int repo_maildir_list(struct repo_maildir *md, repo_maildir_list_cb cb, void *arg);
void repo_maildir_folder_list_free(struct repo_maildir_folder_list **list);

enum { REPO_MAILDIR_CREATE = 1u << 0 };
typedef void (*repo_maildir_open_cb)(int st, struct repo_maildir_folder *f, void *arg);

/* Open the folder for an IMAP-side name ('/'-delimited, UTF-8).  With
 * REPO_MAILDIR_CREATE the directories (parents included) and tmp/ new/ cur/
 * are created with mode 0700; without it a missing folder is -ENOENT.
 * Returns OIMAP_ENAME at once for an unsafe name.  On success the callback
 * receives a folder handle the caller frees with repo_maildir_folder_free(). */
int repo_maildir_open(struct repo_maildir *md, const char *name, unsigned flags,
                      repo_maildir_open_cb cb, void *arg);
void repo_maildir_folder_free(struct repo_maildir_folder **f);

const char *repo_maildir_folder_name(const struct repo_maildir_folder *f);  /* IMAP side */
const char *repo_maildir_folder_local(const struct repo_maildir_folder *f); /* relative */
const char *repo_maildir_folder_path(const struct repo_maildir_folder *f);  /* full path */
const char *repo_maildir_folder_fmd5(const struct repo_maildir_folder *f);
/* The FMD5 is the MD5 of the local name unless the local repository has a
 * nametrans: then pass the translated (visible) name here, as offlineimap
 * hashes that. */
void repo_maildir_folder_set_fmd5_name(struct repo_maildir_folder *f, const char *visible);

/* ---- scanning -------------------------------------------------------------- */

struct repo_maildir_entry {
    char *name;    /* file name in new/ or cur/ */
    uint32_t uid;  /* ,U= (0: none: a new local message) */
    bool in_new;   /* in new/ rather than cur/ */
    bool has_fmd5; /* ,FMD5= present */
    bool fmd5_ok;  /* ,FMD5= equals this folder's: offlineimap trusts U= only then */
    bool dup_uid;  /* another entry carries the same UID (both are kept) */
    bool has_size;
    uint64_t size; /* from ,S= or stat (REPO_MAILDIR_SCAN_SIZES) */
    struct maildir_flags flags;
};
struct repo_maildir_listing {
    struct repo_maildir_entry *v; /* sorted by UID (0 first), then name */
    size_t n;
    size_t n_stray; /* broken names, directories: warned about, left in place */
    size_t n_dup;   /* entries whose UID another entry also has */
};
enum { REPO_MAILDIR_SCAN_SIZES = 1u << 0 };
typedef void (*repo_maildir_scan_cb)(int st, struct repo_maildir_listing *l, void *arg);

/* readdir of new/ and cur/; no file is opened, and none is stat()ed unless
 * REPO_MAILDIR_SCAN_SIZES asks for sizes a name does not carry.  Dot files
 * are skipped silently. */
int repo_maildir_scan(struct repo_maildir_folder *f, unsigned flags, repo_maildir_scan_cb cb,
                      void *arg);
void repo_maildir_listing_free(struct repo_maildir_listing **l);
/* First entry with this UID (binary search), or NULL. */
const struct repo_maildir_entry *repo_maildir_listing_find(const struct repo_maildir_listing *l,
                                                           uint32_t uid);

/* ---- delivering ------------------------------------------------------------ */

struct repo_maildir_delivery {
    uint32_t uid;               /* 0: no U=/FMD5= (a message without a UID yet) */
    struct maildir_flags flags; /* \Seen: the file goes to cur/, else to new/ (as offlineimap) */
    int64_t mtime;              /* file mtime (e.g. INTERNALDATE); < 0: leave it */
    int64_t name_time;          /* time in the unique part; < 0: now */
};

typedef void (*repo_maildir_drain_cb)(struct repo_maildir_writer *w, void *arg);
/* Called on a completed delivery: name/in_new locate the new file. */
typedef void (*repo_maildir_deliver_cb)(int st, const char *name, bool in_new, void *arg);

/* Start a delivery into f's tmp/.  No I/O here: the file is created
 * (O_EXCL, 0600) by the first job.  drain (may be NULL) is called after
 * repo_maildir_write() returned 1, once the buffered data has been written. */
int repo_maildir_deliver_begin(struct repo_maildir_folder *f, repo_maildir_drain_cb drain,
                               void *drain_arg, struct repo_maildir_writer **w_r);
/* Copy len bytes into the writer's buffer; full 256 KiB chunks go to the
 * threadpool, one at a time, in order.  Returns 0; 1 when more than 1 MiB is
 * buffered (stop producing until the drain callback); or a negative code when
 * an earlier write failed (the delivery is then bound to fail: abort it). */
int repo_maildir_write(struct repo_maildir_writer *w, const void *buf, size_t len);
/* Finish: write the rest, set the mtime, fsync (if on), close, rename into
 * new/ or cur/ under its final name, fsync that directory, then cb.  The
 * writer is consumed (even on error). */
int repo_maildir_deliver_commit(struct repo_maildir_writer *w,
                                const struct repo_maildir_delivery *d, repo_maildir_deliver_cb cb,
                                void *arg);
/* Give up: the tmp file is removed in the background; the writer is consumed. */
void repo_maildir_deliver_abort(struct repo_maildir_writer *w);

/* Batched durability: many deliveries, one barrier.  Each added writer
 * finishes on its own (data written, mtime set, fsync concurrently in the
 * pool, file closed); commit waits for them all, renames them all and fsyncs
 * each destination directory once.  Items are reported in the order added. */
struct repo_maildir_batch_item {
    int st;       /* 0 or the error of this message (its tmp file is removed) */
    uint32_t uid; /* as given */
    const char *name;
    bool in_new;
    void *user; /* as given to repo_maildir_batch_add */
};
typedef void (*repo_maildir_batch_cb)(int st, const struct repo_maildir_batch_item *items, size_t n,
                                      void *arg);
int repo_maildir_batch_new(struct repo_maildir_folder *f, struct repo_maildir_batch **b_r);
/* The writer is consumed.  Returns 0 or -ENOMEM (then the writer was aborted). */
int repo_maildir_batch_add(struct repo_maildir_batch *b, struct repo_maildir_writer *w,
                           const struct repo_maildir_delivery *d, void *user);
/* st of the callback: 0 if every item succeeded, else the first item error.
 * The batch is consumed (freed after the callback). */
int repo_maildir_batch_commit(struct repo_maildir_batch *b, repo_maildir_batch_cb cb, void *arg);

/* ---- changing and reading messages ------------------------------------------ */

enum { REPO_MAILDIR_NOSYNC = 1u << 0 };

/* Rename to carry flags (info part rewritten, other fields kept).  A message
 * with \Seen goes to cur/; otherwise it stays where it is (we never move a
 * message back to new/).  cb gets the new name and directory. */
int repo_maildir_set_flags(struct repo_maildir_folder *f, bool in_new, const char *name,
                           const struct maildir_flags *flags, unsigned opflags,
                           repo_maildir_deliver_cb cb, void *arg);
/* Rename a message to carry ,U=<uid>,FMD5=<this folder's> (uid > 0). */
int repo_maildir_set_uid(struct repo_maildir_folder *f, bool in_new, const char *name, uint32_t uid,
                         unsigned opflags, repo_maildir_deliver_cb cb, void *arg);
/* Unlink a message, then fsync its directory. */
int repo_maildir_delete(struct repo_maildir_folder *f, bool in_new, const char *name,
                        unsigned opflags, repo_maildir_done_cb cb, void *arg);
/* fsync new/ and cur/ (nothing when fsync is off). */
int repo_maildir_barrier(struct repo_maildir_folder *f, repo_maildir_done_cb cb, void *arg);

typedef void (*repo_maildir_stat_cb)(int st, int64_t mtime, uint64_t size, void *arg);
int repo_maildir_stat(struct repo_maildir_folder *f, bool in_new, const char *name,
                      repo_maildir_stat_cb cb, void *arg);

/* Streaming read, 256 KiB at a time.  cb runs once per chunk (st 0, len > 0),
 * then once more at the end: st 0 and len 0 at EOF, or st < 0 on error;
 * after that final call the reader is freed.  The next chunk is read only
 * after cb returns, and not while paused.  repo_maildir_reader_size() is
 * valid from the first callback on. */
typedef void (*repo_maildir_read_cb)(struct repo_maildir_reader *r, int st, const void *data,
                                     size_t len, void *arg);
int repo_maildir_read(struct repo_maildir_folder *f, bool in_new, const char *name,
                      repo_maildir_read_cb cb, void *arg, struct repo_maildir_reader **r_r);
uint64_t repo_maildir_reader_size(const struct repo_maildir_reader *r);
void repo_maildir_reader_pause(struct repo_maildir_reader *r);
void repo_maildir_reader_resume(struct repo_maildir_reader *r);
/* Stop early: no more callbacks; the reader is freed (file closed) soon. */
void repo_maildir_reader_close(struct repo_maildir_reader *r);

#endif
