/* hdr_filter.h - drop named header fields from a message stream
 * (offlineimap's filterheaders).
 *
 * offlineimap removes the [Account] filterheaders fields from a message
 * before it uploads it to an IMAP server, with Python's `del msg[name]`:
 * every field of that name, compared without regard to case, with its
 * continuation lines, and only in the header section.  This is the same on
 * a stream, chunk by chunk, without copying: the filter hands back the
 * segments of the input to keep, and the rest of the message is passed
 * through byte for byte (line ends untouched, LF or CRLF).
 *
 * The header section ends, as Python's parser ends it, at the first empty
 * line, or at the first line that is neither a field ("Name:"), nor a
 * continuation (starting with a space or tab), nor a "From " line opening
 * the message.  A field name is compared only when followed directly by ':'.
 *
 * The filter holds back at most HDR_FILTER_HOLD bytes (the start of a line
 * until its name is known); hdr_filter_end() hands them back at the end of
 * the message.  So a caller that feeds the same bytes twice, once to count
 * and once to send, gets the same total both times.
 */
#ifndef OIMAP_HDR_FILTER_H
#define OIMAP_HDR_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest field name compared (longer configured names never match). */
#define HDR_FILTER_NAME_MAX 250
#define HDR_FILTER_HOLD (HDR_FILTER_NAME_MAX + 1)

typedef int (*hdr_filter_emit_fn)(void *arg, const char *p, size_t n);

struct hdr_filter {
    const char *const *names; /* the fields to drop (not copied) */
    size_t n_names;
    size_t name_max; /* longest of names, at most HDR_FILTER_NAME_MAX */
    int state;
    bool first_line; /* the line in progress is the message's first */
    bool drop_cont;  /* continuation lines belong to a dropped field */
    size_t n_held;
    char held[HDR_FILTER_HOLD];
    uint64_t dropped; /* bytes dropped so far */
};

/* Start a message.  names (n of them, may be 0: nothing is dropped) must
 * stay valid while the filter is used. */
void hdr_filter_init(struct hdr_filter *f, const char *const *names, size_t n);

/* Whether the filter can drop anything (n > 0). */
bool hdr_filter_active(const struct hdr_filter *f);

/* Feed in[0..len): emit(arg, ptr, n) for each segment to keep, in order
 * (ptr into in, or into the filter for held-back bytes; valid only during
 * the call).  emit returns 0 or a negative code, which stops the feed and
 * is returned. */
int hdr_filter_feed(struct hdr_filter *f, const char *in, size_t len, hdr_filter_emit_fn emit,
                    void *arg);

/* End of the message: emit what is held back. */
int hdr_filter_end(struct hdr_filter *f, hdr_filter_emit_fn emit, void *arg);

#endif
