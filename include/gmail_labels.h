/* gmail_labels.h - Gmail labels: sets, the X-GM-LABELS list, the labels
 * header of a local message, and the three-way merge.
 *
 * Pure code: no I/O, no globals; safe in threadpool workers.
 *
 * Two spellings of a label.  The wire form is what Gmail's X-GM-LABELS
 * carries: system labels as "\Inbox", "\Important"..., user labels in
 * modified UTF-7 (RFC 3501 5.1.3, as folder names).  Sets hold wire forms
 * only, so a label compares equal however it arrived.  The display form is
 * what the labels header of a local message holds (offlineimap's
 * `labelsheader`, default X-Keywords): the wire form decoded to UTF-8.
 * Reading a header accepts both: an ASCII label that is valid modified
 * UTF-7 with a shift ("&AOk-t&AOk-", as offlineimap writes them undecoded)
 * is taken as wire form; anything else is encoded ("R&D" -> "R&-D").
 *
 * The header value lists the labels separated by "," (X-Keywords and any
 * other header) or by " " (X-Label and Keywords, as offlineimap does), sorted
 * by their display form.  A label containing the separator cannot be written
 * into such a header; the formatter leaves it out (the caller is told).
 *
 * Ownership: a struct gmail_labels owns its strings; *_r strings are
 * malloc'd and freed by the caller.  Errors: -ENOMEM, OIMAP_ENAME (a label
 * that is not valid UTF-8 / modified UTF-7 / empty), OIMAP_EPROTO (a FETCH
 * item that is not a label), OIMAP_ETOOBIG (more than GMAIL_LABELS_MAX).
 */
#ifndef OIMAP_GMAIL_LABELS_H
#define OIMAP_GMAIL_LABELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct imap_token;

/* A set of labels in wire form, sorted by bytes, no duplicates. */
struct gmail_labels {
    char **v;
    size_t n, cap;
};

/* The header offlineimap uses by default. */
#define GMAIL_LABELS_HEADER "X-Keywords"
/* Labels one set may hold (Gmail allows far fewer per account). */
#define GMAIL_LABELS_MAX 4096
/* Longest header line we write before folding (RFC 5322: 998). */
#define GMAIL_LABELS_LINE_MAX 998

void gmail_labels_init(struct gmail_labels *s);
void gmail_labels_clear(struct gmail_labels *s); /* frees the strings, s stays usable */
/* Add one wire-form label (len bytes, no NUL inside).  0 when added, 1 when
 * already present, -ENOMEM, OIMAP_ENAME for an empty label, OIMAP_ETOOBIG
 * when the set holds GMAIL_LABELS_MAX already. */
int gmail_labels_add(struct gmail_labels *s, const char *label, size_t len);
bool gmail_labels_has(const struct gmail_labels *s, const char *label, size_t len);
/* Remove label; true when it was there. */
bool gmail_labels_remove(struct gmail_labels *s, const char *label);
bool gmail_labels_equal(const struct gmail_labels *a, const struct gmail_labels *b);
int gmail_labels_copy(struct gmail_labels *dst, const struct gmail_labels *src);
/* dst = a - b (dst may be a). */
int gmail_labels_minus(struct gmail_labels *dst, const struct gmail_labels *a,
                       const struct gmail_labels *b);
/* dst = a & b. */
int gmail_labels_and(struct gmail_labels *dst, const struct gmail_labels *a,
                     const struct gmail_labels *b);
/* dst |= src. */
int gmail_labels_union(struct gmail_labels *dst, const struct gmail_labels *src);

/* One label: wire -> display (malloc'd UTF-8), display -> wire. */
int gmail_label_display(const char *wire, size_t len, char **out_r);
int gmail_label_wire(const char *display, size_t len, char **out_r);

/* The labels of a FETCH's X-GM-LABELS list: first is its first child token
 * (struct imap_fetch.labels), n the count.  Atoms, numbers, quoted strings
 * and literals are labels; 8-bit UTF-8 labels (a server with UTF8=ACCEPT)
 * are stored in wire form; NIL items are skipped.  Adds to *out. */
int gmail_labels_from_fetch(const struct imap_token *first, unsigned n, struct gmail_labels *out);

/* The store record: labels as {u16 length, bytes} each; decode appends. */
int gmail_labels_encode(const struct gmail_labels *s, char **buf_r, size_t *len_r);
int gmail_labels_decode(const char *buf, size_t len, struct gmail_labels *out);

/* The separator offlineimap uses in header name's value: ' ' or ','. */
char gmail_labels_separator(const char *header_name);
/* A header value (already unfolded or not: CR, LF and tabs count as
 * spaces) -> labels added to *out.  Labels that cannot be converted are
 * counted in *n_bad_r (may be NULL) and skipped. */
int gmail_labels_parse_value(const char *header_name, const char *value, size_t len,
                             struct gmail_labels *out, size_t *n_bad_r);
/* Labels -> the header value, sorted by display form, on one line (the
 * caller folds).  Labels whose display form holds the separator, a control
 * character or nothing printable are left out and counted in *n_bad_r. */
int gmail_labels_format_value(const char *header_name, const struct gmail_labels *s, char **value_r,
                              size_t *n_bad_r);

/* Three-way merge, label by label, as flags are merged: a label changed on
 * one side (added or removed since base) takes that side's state; unchanged
 * labels keep base's.  base NULL (nothing recorded yet): the union of both. */
int gmail_labels_merge(const struct gmail_labels *base, const struct gmail_labels *far,
                       const struct gmail_labels *near, struct gmail_labels *out);

/* ---- message headers (a message buffer in Maildir form, LF or CRLF) ---- */

/* Where the header block of msg[0..len) ends: *hdr_end_r is the offset of the
 * empty line separating it from the body (len when there is none yet), and
 * the return value is true when that empty line was seen (false: more of
 * the message may be needed, unless len is all of it). */
bool gmail_msg_header_end(const char *msg, size_t len, size_t *hdr_end_r);

/* The labels of every name: header field of hdr[0..hdr_len) (folded lines
 * joined), added to *out.  Returns the number of such fields (0: none), or a
 * negative code.  Bad labels are counted in *n_bad_r (may be NULL). */
int gmail_msg_read_labels(const char *hdr, size_t hdr_len, const char *name,
                          struct gmail_labels *out, size_t *n_bad_r);

/* A new header block: hdr[0..hdr_len) without any name: field, followed by
 * "name: value" (folded after a separator when longer than
 * GMAIL_LABELS_LINE_MAX; no field at all when value is NULL), with the
 * block's own line end (CRLF when its first line ends so).  The result
 * (malloc'd, *out_len_r bytes, NUL-terminated) replaces hdr[0..hdr_len):
 * the empty line and body that followed stay as they were. */
int gmail_msg_set_header(const char *hdr, size_t hdr_len, const char *name, const char *value,
                         char **out_r, size_t *out_len_r);

#endif
