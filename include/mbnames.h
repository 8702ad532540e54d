/* mbnames.h - the [mbnames] mailbox list (for mutt's `mailboxes`), as
 * offlineimap writes it.
 *
 * Two levels, as in offlineimap:
 *   - per account, an intermediate file <metadata>/mbnames/<account>.json:
 *     a JSON list of {"accountname", "foldername", "localfolders"} objects,
 *     one per folder the account synced that [mbnames] folderfilter
 *     (lambda accountname, foldername) accepts.  It is written in the same
 *     bytes Python's json.dump() gives, so offlineimap and oimap can share
 *     the directory;
 *   - the output file (`filename`): every intermediate file's items, sorted
 *     with sort_keyfunc (lambda d: ...; stable, like Python's sort), each
 *     formatted with peritem (a raw %-format: %(accountname)s,
 *     %(foldername)s, %(localfolders)s, %%), joined with sep, between header
 *     and footer.  header, sep and footer are Python expressions giving
 *     strings, evaluated once.
 * When:
 *   - after each account's sync, its intermediate file; then, with
 *     incremental = yes, the output file;
 *   - with incremental = no, the output file once every account is done
 *     (at the end of the run: of `oimap -o`, or when the daemon exits), as
 *     offlineimap does.
 * Where oimap differs from offlineimap on purpose: a sync of some folders
 * only (-f, or an IDLE push in the daemon) adds its folders to the account's
 * list instead of replacing the list with them (offlineimap's list would
 * shrink to the -f folders); --mbnames-prune matches account names exactly
 * (offlineimap tests substrings of the accounts line) and rewrites the output
 * file in both incremental modes.
 *
 * Writes are atomic: a temporary file in the same directory, fsync, rename,
 * fsync of the directory, so a reader (mutt, a crash) sees the old or the new
 * file, never a part.  A symbolic link as `filename` is followed (its target
 * is replaced, the link stays).  An existing file keeps its mode; a new one
 * gets 0666 minus the umask.  Writers (threads, or two oimap processes)
 * are serialised with an flock() on <metadata>/mbnames/.lock.
 *
 * Expressions go through pyhelper.h: oimap's evaluator, or python3 with
 * [general] pythonfile for what it cannot do (offlineimap's documented
 * `folderfilter = mbnames_folderfilter`, a function of the pythonfile).
 *
 * Threads: the file functions block (fsync); call them from the threadpool
 * or when the loop has nothing else to do (from the loop thread when
 * mbnames_uses_python()).  A struct mbnames is used by one thread at a time.  Messages (errors,
 * warnings, dry-run notes) are kept in the struct and logged on the caller's thread by
 * mbnames_flush_log().
 */
#ifndef OIMAP_MBNAMES_H
#define OIMAP_MBNAMES_H

#include <stdbool.h>
#include <stddef.h>

struct config;

/* One entry: a JSON object of string values (offlineimap's three keys, plus
 * whatever another writer put there, kept as is). */
struct mbnames_item {
    char **keys, **vals;
    size_t n;
};

struct mbnames_list {
    struct mbnames_item *v;
    size_t n, cap;
};

struct mbnames;

/* Compile the [mbnames] settings of cfg: evaluate header, sep and footer
 * (each must give a str), compile folderfilter (a lambda of two arguments)
 * and sort_keyfunc (a lambda of one).  Works whether or not enabled is set.
 * Returns 0 and *mb_r, OIMAP_ECONFIG with "FILE:LINE: [mbnames] OPTION: ..."
 * in err, or -ENOMEM. */
int mbnames_new(const struct config *cfg, char *err, size_t errlen, struct mbnames **mb_r);
void mbnames_free(struct mbnames **mb);
bool mbnames_enabled(const struct mbnames *mb);
bool mbnames_incremental(const struct mbnames *mb);
/* Whether folderfilter or sort_keyfunc went to the python3 helper
 * (pyhelper.h; a function from pythonfile, say): then the file functions
 * must run on the thread that owns the helper, the loop thread. */
bool mbnames_uses_python(const struct mbnames *mb);
/* <metadata>/mbnames, and the output file name. */
const char *mbnames_dir(const struct mbnames *mb);
const char *mbnames_filename(const struct mbnames *mb);

/* ---- pure parts (unit-tested) ------------------------------------------- */

/* An item with offlineimap's three keys, in its order.  Returns 0 or -ENOMEM. */
int mbnames_list_add(struct mbnames_list *l, const char *account, const char *folder,
                     const char *localfolders);
void mbnames_list_clear(struct mbnames_list *l);
/* The value of key in it, or NULL. */
const char *mbnames_item_get(const struct mbnames_item *it, const char *key);

/* As json.dump(list) writes it (", " and ": ", non-ASCII as \uXXXX).
 * Returns 0 with a malloc'd NUL-terminated *out_r, or -ENOMEM. */
int mbnames_json_encode(const struct mbnames_list *l, char **out_r, size_t *len_r);
/* Append the items of a JSON list of objects with string values to l.
 * Returns 0, or OIMAP_ECONFIG with the reason and byte offset in err. */
int mbnames_json_decode(const char *buf, size_t len, struct mbnames_list *l, char *err,
                        size_t errlen);

/* Python's `fmt % item` for a mapping: %(key)s and %(key)r with the flags
 * '-', width and .precision (counted in characters), and %%.  Returns 0 with
 * a malloc'd *out_r, or OIMAP_ECONFIG (unknown key, other conversions) with
 * the reason in err. */
int mbnames_format_item(const char *fmt, const struct mbnames_item *item, char **out_r, char *err,
                        size_t errlen);

/* The folders of an account that folderfilter accepts, appended to l (a
 * folder already listed for that account is not added twice).  Returns 0,
 * OIMAP_ECONFIG (the filter failed; logged to mb) or -ENOMEM. */
int mbnames_filter_add(struct mbnames *mb, struct mbnames_list *l, const char *account,
                       const char *localfolders, const char *const *folders, size_t n);

/* The output file's text for these items: sorted (l is reordered),
 * formatted, joined.  Returns 0 with a malloc'd *out_r, OIMAP_ECONFIG
 * (sort_keyfunc or peritem failed; the reason in err) or -ENOMEM. */
int mbnames_render(struct mbnames *mb, struct mbnames_list *l, char **out_r, size_t *len_r,
                   char *err, size_t errlen);

/* ---- files (blocking) ---------------------------------------------------- */

/* After an account's sync: replace (merge = false) or extend (merge = true:
 * -f or IDLE syncs) the account's intermediate file with its folders (local
 * names as offlineimap shows them, with the local sep), then with
 * incremental = yes rewrite the output file.  Nothing when not enabled.
 * Dry run: notes what would be written.  Returns 0 or a negative code (the
 * reason logged to mb). */
int mbnames_update_account(struct mbnames *mb, const char *account, const char *localfolders,
                           const char *const *folders, size_t n, bool merge, bool dry_run);

/* Rewrite the output file from every intermediate file (an unreadable one
 * is logged and left out, as offlineimap does).  Nothing when not enabled.
 * Returns 0 or a negative code (logged to mb). */
int mbnames_write(struct mbnames *mb, bool dry_run);

/* --mbnames-prune: when enabled, remove the intermediate files of accounts
 * not among cfg's accounts (the [general] accounts list, or -a) and rewrite
 * the output file; when not enabled, remove every intermediate file (as
 * offlineimap does).  Returns 0 or a negative code (logged to mb). */
int mbnames_prune(struct mbnames *mb, const struct config *cfg, bool dry_run);

/* Log the messages gathered so far (on the calling thread) and forget them. */
void mbnames_flush_log(struct mbnames *mb);

#endif
