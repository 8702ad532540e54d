/* imap_utf7.c - modified UTF-7 <-> UTF-8 (see imap_utf7.h).
 *
 * Strictness is the point: the decoded name becomes a local path, so two
 * spellings of one name (non-minimal shifts, padding bits, split shifts) are
 * refused rather than silently merged.
 */
#include "imap_utf7.h"
#include "chars.h"

#include "err.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == ',')
        return 63;
    return -1;
}

static inline bool printable(unsigned c)
{
    return c >= 0x20 && c <= 0x7e;
}

int imap_utf7_decode(const char *in, size_t len, char **out_r)
{
    /* Each UTF-8 byte out needs at least 2/3 of a byte in, or one for ASCII. */
    char *out = len < SIZE_MAX / 2 ? malloc(len * 2 + 1) : NULL, *o = out;
    bool after_shift = false;
    size_t i = 0;

    if (!out)
        return -ENOMEM;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        uint32_t bits = 0, high = 0;
        unsigned nbits = 0, units = 0;

        if (!printable(c))
            goto bad;
        if (c != '&') {
            *o++ = (char)c;
            i++;
            after_shift = false;
            continue;
        }
        i++;
        if (i < len && in[i] == '-') {
            *o++ = '&';
            i++;
            after_shift = false;
            continue;
        }
        if (after_shift) /* "&AOk-&AOk-" must be "&AOkA6Q-" */
            goto bad;
        while (i < len && in[i] != '-') {
            int v = b64val((unsigned char)in[i]);
            if (v < 0)
                goto bad;
            bits = (bits << 6) | (uint32_t)v;
            nbits += 6;
            i++;
            if (nbits < 16)
                continue;
            nbits -= 16;
            uint32_t u = (bits >> nbits) & 0xffff;
            bits &= (1u << nbits) - 1;
            units++;
            if (high) {
                if (u < 0xdc00 || u > 0xdfff)
                    goto bad;
                o += chars_utf8_put(o, 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00));
                high = 0;
            } else if (u >= 0xd800 && u <= 0xdbff) {
                high = u;
            } else if (u >= 0xdc00 && u <= 0xdfff) {
                goto bad;
            } else {
                if (u == 0 || printable(u))
                    goto bad;
                o += chars_utf8_put(o, u);
            }
        }
        if (i == len || units == 0 || high || nbits >= 6 || bits != 0)
            goto bad;
        i++; /* '-' */
        after_shift = true;
    }
    *o = '\0';
    *out_r = out;
    return 0;
bad:
    free(out);
    return OIMAP_ENAME;
}

/* One code point of strict UTF-8 at s[*i]; -1 when invalid. */
static int32_t get_utf8(const unsigned char *s, size_t len, size_t *i)
{
    size_t k = *i, n;
    uint32_t cp, min;
    unsigned char c = s[k];

    if (c < 0x80) {
        *i = k + 1;
        return c;
    } else if (c >= 0xc2 && c <= 0xdf) {
        n = 1;
        cp = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 2;
        cp = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 3;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return -1;
    }
    if (len - k - 1 < n)
        return -1;
    for (size_t j = 1; j <= n; j++) {
        if ((s[k + j] & 0xc0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[k + j] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *i = k + n + 1;
    return (int32_t)cp;
}

int imap_utf7_encode(const char *utf8, size_t len, char **out_r)
{
    const unsigned char *s = (const unsigned char *)utf8;
    /* Worst case: a lone control character becomes "&AAE-", 5 bytes. */
    char *out = len < SIZE_MAX / 5 ? malloc(len * 5 + 1) : NULL, *o = out;
    size_t i = 0;

    if (!out)
        return -ENOMEM;
    while (i < len) {
        uint32_t bits = 0;
        unsigned nbits = 0;

        if (printable(s[i])) {
            *o++ = (char)s[i];
            if (s[i] == '&')
                *o++ = '-';
            i++;
            continue;
        }
        *o++ = '&';
        while (i < len && !printable(s[i])) {
            int32_t cp = get_utf8(s, len, &i);
            uint32_t units[2];
            unsigned nu = 1;
            if (cp <= 0)
                goto bad;
            if (cp >= 0x10000) {
                units[0] = 0xd800 + (((uint32_t)cp - 0x10000) >> 10);
                units[1] = 0xdc00 + (((uint32_t)cp - 0x10000) & 0x3ff);
                nu = 2;
            } else {
                units[0] = (uint32_t)cp;
            }
            for (unsigned k = 0; k < nu; k++) {
                bits = (bits << 16) | units[k];
                nbits += 16;
                while (nbits >= 6) {
                    nbits -= 6;
                    *o++ = b64chars[(bits >> nbits) & 0x3f];
                }
                bits &= (1u << nbits) - 1;
            }
        }
        if (nbits)
            *o++ = b64chars[(bits << (6 - nbits)) & 0x3f];
        *o++ = '-';
    }
    *o = '\0';
    *out_r = out;
    return 0;
bad:
    free(out);
    return OIMAP_ENAME;
}
