/* strbuf.h - a growable, NUL-terminated byte string.
 *
 *     struct strbuf b = {0};
 *     strbuf_adds(&b, "name: ");
 *     strbuf_add(&b, value, len);
 *     if (b.err) ... (-ENOMEM; every later add was a no-op)
 *     use b.p (NUL-terminated, b.len bytes), then strbuf_wipe(&b) or free(b.p).
 *
 * The buffer may hold secrets (an OAuth2 request body): when it grows, the old
 * block is wiped before it is freed, so no copy of its bytes is left behind.
 */
#ifndef OIMAP_STRBUF_H
#define OIMAP_STRBUF_H

#include <stddef.h>

struct strbuf {
    char *p; /* NULL until the first add */
    size_t len, cap;
    int err; /* 0, or -ENOMEM once an add failed */
};

void strbuf_add(struct strbuf *b, const void *s, size_t n);
void strbuf_adds(struct strbuf *b, const char *s);
/* Wipe and free the contents; b is empty and usable again. */
void strbuf_wipe(struct strbuf *b);

#endif
