/* strbuf.c - a growable, NUL-terminated byte string (see strbuf.h). */
#include "strbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void strbuf_add(struct strbuf *b, const void *s, size_t n)
{
    if (b->err)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        /* Not realloc(): the old block is copied and wiped by hand, so a
         * secret it held does not linger in freed memory. */
        char *np = malloc(cap);
        if (!np) {
            b->err = -ENOMEM;
            return;
        }
        if (b->p) {
            memcpy(np, b->p, b->len);
            explicit_bzero(b->p, b->cap);
            free(b->p);
        }
        b->p = np;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void strbuf_adds(struct strbuf *b, const char *s)
{
    strbuf_add(b, s, strlen(s));
}

void strbuf_wipe(struct strbuf *b)
{
    if (b->p) {
        explicit_bzero(b->p, b->cap);
        free(b->p);
    }
    *b = (struct strbuf){0};
}
