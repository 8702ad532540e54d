/* imap_utf7.h - modified UTF-7 (RFC 3501 5.1.3), the encoding of IMAP mailbox
 * names, to and from UTF-8.
 *
 * Both directions are strict and canonical, so that distinct server names can
 * never map to the same local name and decode(encode(x)) == x, encode(decode(y))
 * == y for every accepted x and y:
 *   decode rejects bytes outside printable ASCII, a bare '&' shift left open,
 *   base64 that is malformed or has non-zero or superfluous padding bits, a
 *   shifted printable ASCII character (e.g. "&AGE-" for "a"), an empty shift
 *   other than "&-", two shifts in a row ("&AOk-&AOk-": one shift must carry
 *   both), unpaired or reversed UTF-16 surrogates, and U+0000;
 *   encode rejects invalid UTF-8 (overlong forms, surrogates, code points over
 *   U+10FFFF, truncated sequences) and NUL.
 *
 * Ownership: *out_r is a NUL-terminated string from malloc(), freed by the
 * caller; it is set only on success.
 * Errors: 0 on success, OIMAP_ENAME for invalid input, -ENOMEM.
 */
#ifndef OIMAP_IMAP_UTF7_H
#define OIMAP_IMAP_UTF7_H

#include <stddef.h>

/* Modified UTF-7 (as on the wire) -> UTF-8. */
int imap_utf7_decode(const char *in, size_t len, char **out_r);

/* UTF-8 -> modified UTF-7. */
int imap_utf7_encode(const char *utf8, size_t len, char **out_r);

#endif
