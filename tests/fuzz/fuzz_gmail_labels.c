/* fuzz_gmail_labels.c - libFuzzer target for the labels header codec.
 *
 * Input: a message (a local file, or what a server sent).  The first byte
 * picks the header (X-Keywords: comma-separated, X-Label: space-separated).
 * Checks what the label sync relies on: labels read from a header, written
 * back with gmail_msg_set_header(), read back the same (less the ones that
 * cannot be written, which are counted), with exactly one such field and
 * the header block still ending where the new one ends; and the store
 * record round-trips. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gmail_labels.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_record(const struct gmail_labels *s)
{
    char *buf;
    size_t len;
    if (gmail_labels_encode(s, &buf, &len) < 0)
        return;
    struct gmail_labels back;
    gmail_labels_init(&back);
    int rc = gmail_labels_decode(buf, len, &back);
    assert(rc == 0 && gmail_labels_equal(&back, s));
    gmail_labels_clear(&back);
    free(buf);
}

static void check_rewrite(const char *msg, size_t len, size_t hdr_end, const char *name,
                          const struct gmail_labels *s)
{
    char *value = NULL, *nh = NULL;
    size_t bad = 0, nl = 0;
    if (gmail_labels_format_value(name, s, &value, &bad) < 0)
        return;
    if (gmail_msg_set_header(msg, hdr_end, name, value, &nh, &nl) < 0) {
        free(value);
        return;
    }
    struct gmail_labels back;
    gmail_labels_init(&back);
    int n = gmail_msg_read_labels(nh, nl, name, &back, NULL);
    if (n >= 0) {
        assert(n == 1);
        assert(back.n + bad == s->n);
        for (size_t i = 0; i < back.n; i++)
            assert(gmail_labels_has(s, back.v[i], strlen(back.v[i])));
    }
    /* The rest of the message follows the new block unchanged: its end is
     * where the old one's was. */
    size_t rest = len - hdr_end, end;
    char *whole = malloc(nl + rest + 1);
    if (whole) {
        memcpy(whole, nh, nl);
        memcpy(whole + nl, msg + hdr_end, rest);
        bool done = gmail_msg_header_end(whole, nl + rest, &end);
        if (done)
            assert(end == nl);
        free(whole);
    }
    gmail_labels_clear(&back);
    free(nh);
    free(value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    const char *name = (data[0] & 1) ? "X-Label" : "X-Keywords";
    const char *msg = (const char *)data + 1;
    size_t len = size - 1, hdr_end;
    bool done = gmail_msg_header_end(msg, len, &hdr_end);
    assert(hdr_end <= len);
    struct gmail_labels s;
    gmail_labels_init(&s);
    if (gmail_msg_read_labels(msg, hdr_end, name, &s, NULL) >= 0) {
        check_record(&s);
        if (done)
            check_rewrite(msg, len, hdr_end, name, &s);
    }
    gmail_labels_clear(&s);
    return 0;
}
