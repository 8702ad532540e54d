/* fuzz_oauth2.c - libFuzzer target for the token endpoint's answer: the
 * HTTP framing (whole, and cut at every point the first byte says) and the
 * JSON it carries, and the token URL parser.
 *
 * Invariants: "need more" is only ever returned without EOF; a complete
 * answer stays complete with more bytes appended; an accepted token is
 * non-empty, NUL-free and without CR, LF or ^A (it goes into an XOAUTH2
 * payload); error messages are printable ASCII.
 *
 * Long run: clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *   -Iinclude -Ibuild tests/fuzz/fuzz_oauth2.c src/oauth2.c src/chars.c ... \
 *   (or meson with -Dfuzz=true) && ./fuzz_oauth2 CORPUS tests/fuzz/seeds/oauth2 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "oauth2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            abort();
}

static void check_answer(int status, const char *body, size_t len)
{
    char *tok = NULL, err[1024] = "";
    long long exp;
    int rc = oauth2_parse_answer(status, "Reason", body, len, &tok, &exp, err, sizeof err);
    if (rc == 0) {
        if (!tok || !*tok || strpbrk(tok, "\r\n\001"))
            abort();
        free(tok);
    } else {
        if (tok)
            abort();
        check_text(err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    int st;
    char reason[64], err[256], *body;
    size_t blen;
    int rc = oauth2_http_parse(buf, size, true, &st, reason, sizeof reason, &body, &blen, err,
                               sizeof err);
    if (rc == OIMAP_ENEEDMORE)
        abort();
    if (rc == 0) {
        check_answer(st, body, blen);
        free(body);
    }
    /* cut at a point: "need more" or the same verdict class, never a crash */
    size_t cut = size ? data[0] % (size + 1) : 0;
    rc = oauth2_http_parse(buf, cut, false, &st, reason, sizeof reason, &body, &blen, err,
                           sizeof err);
    if (rc == 0)
        free(body);
    /* the raw bytes as a JSON body too, and as a URL */
    check_answer(200, buf, size);
    char *url = malloc(size + 1);
    if (url) {
        memcpy(url, data, size);
        url[size] = '\0';
        struct oauth2_url u;
        if (oauth2_url_parse(url, &u, err, sizeof err) == 0 && (!*u.host || u.path[0] != '/'))
            abort();
        free(url);
    }
    return 0;
}
