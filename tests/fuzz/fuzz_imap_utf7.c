/* fuzz_imap_utf7.c - libFuzzer target for modified UTF-7.
 *
 * The input is tried both ways.  As mUTF-7: when it decodes, the result must
 * be NUL-free UTF-8 that encodes back to exactly the input (the codec is
 * canonical, so two server names can never share a local name).  As UTF-8:
 * when it encodes, the result must be printable ASCII that decodes back to
 * exactly the input, and encoding must succeed for every valid NUL-free UTF-8
 * input (checked against a separate, deliberately naive validator).
 *
 * Long run: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Ibuild \
 *   tests/fuzz/fuzz_imap_utf7.c src/imap_utf7.c src/err.c -o /tmp/fuzz_imap_utf7
 *   && /tmp/fuzz_imap_utf7 CORPUSDIR tests/fuzz/seeds/imap_utf7 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap_utf7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Valid, NUL-free UTF-8, by decoding each sequence to its code point. */
static bool valid_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i], cp;
        size_t k;
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            k = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000))
            return false;
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *a = NULL, *b = NULL;
    const char *in = (const char *)data;

    if (imap_utf7_decode(in, size, &a) == 0) {
        size_t al = strlen(a);
        if (!valid_utf8((const uint8_t *)a, al))
            abort();
        if (imap_utf7_encode(a, al, &b) != 0 || strlen(b) != size || memcmp(b, in, size) != 0)
            abort();
        free(a);
        free(b);
        a = b = NULL;
    }

    int r = imap_utf7_encode(in, size, &a);
    if ((r == 0) != valid_utf8(data, size))
        abort();
    if (r == 0) {
        size_t al = strlen(a);
        for (size_t i = 0; i < al; i++)
            if (a[i] < 0x20 || a[i] > 0x7e)
                abort();
        if (imap_utf7_decode(a, al, &b) != 0 || strlen(b) != size || memcmp(b, in, size) != 0)
            abort();
        free(a);
        free(b);
    }
    return 0;
}
