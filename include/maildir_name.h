/* maildir_name.h - Maildir file and folder names, offlineimap-compatible.
 *
 * A pure codec: no file I/O, no allocation, no globals except the process-wide
 * sequence counter behind maildir_name_unique().  Safe to call from threadpool
 * workers.
 *
 * File names.  oimap writes, as offlineimap does:
 *
 *     <unique>,U=<uid>,FMD5=<md5 hex of the folder name><sep>2,<flags>
 *
 * where <sep> is ':' (or '!' with maildir-windows-compatible), <unique> is
 * "<time>_<seq>.<pid>.<host>" and <flags> are the Maildir info letters in
 * ASCII order: upper case first (D F P R S T, plus any other upper-case letter
 * another program put there, kept as is), then lower case custom letters
 * (offlineimap's customflag_a..z keywords).  Names of other programs are read
 * too: Dovecot's "<unique>,S=<size>,W=<vsize>:2,<flags>", mbsync's
 * "<unique>,U=<uid>:2,<flags>" (a UID but no FMD5), mutt's "<unique>:2,<flags>"
 * and info-less names in new/.  Fields we do not know are kept when a name is
 * rewritten (flags or UID changed).
 *
 * Folder names.  An IMAP folder name (UTF-8, hierarchy delimiter already
 * translated to '/') becomes a path relative to localfolders by replacing '/'
 * by the repository's `sep` (default ".": "INBOX/Lists/dev" is the single
 * directory "INBOX.Lists.dev"; with sep "/" it is nested directories).  Names
 * that could leave localfolders or confuse the Maildir layout are refused.
 */
#ifndef OIMAP_MAILDIR_NAME_H
#define OIMAP_MAILDIR_NAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* The six standard Maildir flags, with their IMAP meaning. */
enum maildir_flag {
    MAILDIR_FLAG_D = 1u << 0, /* \Draft */
    MAILDIR_FLAG_F = 1u << 1, /* \Flagged */
    MAILDIR_FLAG_P = 1u << 2, /* passed (forwarded): $Forwarded */
    MAILDIR_FLAG_R = 1u << 3, /* \Answered (replied) */
    MAILDIR_FLAG_S = 1u << 4, /* \Seen */
    MAILDIR_FLAG_T = 1u << 5, /* \Deleted (trashed) */
    MAILDIR_FLAG_ALL = 0x3fu,
};

struct maildir_flags {
    uint8_t std;     /* MAILDIR_FLAG_* */
    uint32_t custom; /* bit i: lower-case letter 'a' + i (customflag_<letter>) */
    uint32_t upper;  /* bit i: other upper-case letter 'A' + i we do not interpret */
};

#define MAILDIR_FMD5_LEN 32
#define MAILDIR_NAME_MAX 255 /* NAME_MAX: longest file or folder component */

/* A parsed file name.  unique points into the parsed string. */
struct maildir_name {
    const char *unique; /* up to the first ',' or info separator */
    size_t unique_len;
    uint32_t uid;  /* ,U=<uid>; 0 if absent */
    bool has_fmd5; /* ,FMD5=<32 hex> present; fmd5 then holds it in lower case */
    char fmd5[MAILDIR_FMD5_LEN + 1];
    bool has_size; /* ,S=<bytes> (Dovecot, Courier) */
    uint64_t size;
    bool has_info; /* "<sep>2," present */
    struct maildir_flags flags;
};

/* Parse a file name (no directory part).  infosep is ':' or '!'.
 * Returns 0, or OIMAP_ENAME for a broken name: empty, starting with '.',
 * containing '/', an empty unique part, a malformed or zero ,U= (or one that
 * does not fit 32 bits), a ,U= or ,FMD5= given twice, an ,FMD5= that is not
 * 32 hex digits, a malformed ,S=, info other than "2,<letters>", or longer
 * than MAILDIR_NAME_MAX.  Unknown ",X=..." fields are ignored. */
int maildir_name_parse(const char *name, char infosep, struct maildir_name *r);

/* Build "<unique>[,U=<uid>[,FMD5=<fmd5>]]<sep>2,<flags>" into buf.  uid 0
 * writes neither U= nor FMD5=; fmd5 may be NULL (no FMD5=, mbsync style).
 * with_info false omits the info part (flags must then be empty).
 * Returns the length written (NUL-terminated), OIMAP_ENAME for a unique part
 * that is empty or contains '/', ',', ':', '!' or starts with '.', or for an
 * fmd5 that is not 32 hex digits, or -ENAMETOOLONG when it does not fit in
 * size bytes or exceeds MAILDIR_NAME_MAX. */
int maildir_name_format(char *buf, size_t size, const char *unique, uint32_t uid, const char *fmd5,
                        char infosep, const struct maildir_flags *flags, bool with_info);

/* Rewrite name with new flags: everything before the info part is kept byte
 * for byte; the info part becomes "<sep>2,<flags>".  Returns the length, or
 * OIMAP_ENAME / -ENAMETOOLONG as above. */
int maildir_name_with_flags(char *buf, size_t size, const char *name, char infosep,
                            const struct maildir_flags *flags);

/* Rewrite name to carry uid and fmd5 (NULL: no FMD5): the unique part, other
 * fields (",S=", ",W=", ...) and the info part are kept; any old U= and FMD5=
 * are replaced.  uid must be > 0.  Returns the length or a negative code. */
int maildir_name_with_uid(char *buf, size_t size, const char *name, char infosep, uint32_t uid,
                          const char *fmd5);

/* Flags <-> text.  maildir_flags_format writes the letters in ASCII order,
 * each once, NUL-terminated (buf needs at most 53 bytes); returns the count.
 * maildir_flags_parse reads letters; returns 0, or OIMAP_ENAME on a
 * non-letter. */
int maildir_flags_format(char *buf, size_t size, const struct maildir_flags *flags);
int maildir_flags_parse(const char *s, size_t len, struct maildir_flags *r);
bool maildir_flags_equal(const struct maildir_flags *a, const struct maildir_flags *b);

/* The FMD5 of a folder: lower-case MD5 hex of the folder's name as offlineimap
 * hashes it, i.e. its local visible name (after the local nametrans, with the
 * local `sep`, UTF-8; "" for a Maildir at the top of localfolders).  With no
 * local nametrans that is the relative path maildir_name_folder_to_local()
 * returns, e.g. "INBOX.Lists.dev".  out receives 33 bytes. */
void maildir_name_fmd5(const char *folder, char out[MAILDIR_FMD5_LEN + 1]);

/* "<t>_<seq>.<pid>.<host>" with host's '/' written as "\057" and ':' as
 * "\072" (Maildir convention) and '!' / ',' likewise escaped ("\041",
 * "\054") so the result never contains a name separator.  Returns the length
 * or -ENAMETOOLONG. */
int maildir_name_unique_fmt(char *buf, size_t size, int64_t t, uint64_t seq, long pid,
                            const char *host);

/* A unique part for this process: t (or the current time if t < 0), a
 * process-wide atomic sequence number, getpid() and gethostname() (read once).
 * Never repeats within a process.  Thread-safe. */
int maildir_name_unique(char *buf, size_t size, int64_t t);

/* IMAP folder name ('/'-delimited, UTF-8) -> path relative to localfolders,
 * '/' replaced by sep.  sep is "/" or a non-empty string without '/'.
 * "" (the Maildir at the top of localfolders, offlineimap's top-level folder)
 * maps to "".  Returns the length, or OIMAP_ENAME when any '/'-separated
 * component is empty, "." or "..", the name is absolute or ends in '/', a
 * path component on disk would be "tmp", "new" or "cur" (a nested component
 * with sep "/", or the whole name with another sep), a component on disk
 * would exceed MAILDIR_NAME_MAX, or sep is invalid; -ENAMETOOLONG when the
 * result does not fit in size bytes.  (A C string cannot carry a NUL; callers
 * holding counted strings must refuse embedded NULs first.) */
int maildir_name_folder_to_local(char *buf, size_t size, const char *imap_name, const char *sep);

/* The reverse: a local folder name (relative path as found under
 * localfolders) -> IMAP-side name with '/' as delimiter.  Applies the same
 * checks to the result.  Returns the length or a negative code. */
int maildir_name_folder_from_local(char *buf, size_t size, const char *local, const char *sep);

#endif
