/* eol.h - line ends between IMAP (CRLF) and Maildir files (LF).
 *
 * IMAP transfers messages with CRLF line ends; Maildir files hold them with
 * LF, as offlineimap and mbsync write them and as mail readers expect.  Both
 * directions work on streams, chunk by chunk, without copying: the decoder
 * hands back the segments of the input to keep.
 */
#ifndef OIMAP_EOL_H
#define OIMAP_EOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CRLF -> LF.  A CR at the end of a chunk is held back until the next byte
 * is known.  A CR not followed by LF is kept. */
struct eol_dec {
    bool pending_cr;
};

/* Call emit(arg, ptr, len) for each segment of in[0..len) to keep (ptrs are
 * into in, or a static "\r" for a held-back CR).  emit returns 0 or a
 * negative code, which stops and is returned. */
int eol_dec_feed(struct eol_dec *d, const char *in, size_t len,
                 int (*emit)(void *arg, const char *p, size_t n), void *arg);
/* End of the message: emit a held-back CR. */
int eol_dec_end(struct eol_dec *d, int (*emit)(void *arg, const char *p, size_t n), void *arg);

/* LF -> CRLF: every LF not preceded by CR gets one. */
struct eol_enc {
    bool last_cr; /* the previous byte was CR */
};

/* Bytes that encoding in[0..len) adds (the number of bare LFs); feed the
 * chunks in order to get the total extra size of a stream. */
uint64_t eol_enc_count(struct eol_enc *e, const char *in, size_t len);

/* Encode in[0..len) into out (cap >= 2 * len is always enough).  Returns the
 * number of bytes written.  *used_r gets how much of in was consumed (all of
 * it when cap >= 2 * len). */
size_t eol_enc_feed(struct eol_enc *e, const char *in, size_t len, char *out, size_t cap,
                    size_t *used_r);

#endif
