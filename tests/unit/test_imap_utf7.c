/* test_imap_utf7.c - modified UTF-7: vectors, rejects, round-trip properties. */
#include "imap_utf7.h"
#include "chars.h"

#include "err.h"
#include "tap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void pair(const char *utf7, const char *utf8)
{
    char *out = NULL;
    int r = imap_utf7_decode(utf7, strlen(utf7), &out);
    is_int(r, 0, "decode '%s'", utf7);
    is_str(out, utf8, "decode '%s' value", utf7);
    free(out);
    out = NULL;
    r = imap_utf7_encode(utf8, strlen(utf8), &out);
    is_int(r, 0, "encode to '%s'", utf7);
    is_str(out, utf7, "encode to '%s' value", utf7);
    free(out);
}

static void bad_decode(const char *utf7, size_t len, const char *why)
{
    char *out = (char *)0x1;
    int r = imap_utf7_decode(utf7, len, &out);
    is_int(r, OIMAP_ENAME, "decode rejects %s", why);
    ok(out == (char *)0x1, "decode leaves out_r alone on error (%s)", why);
}

static void bad_encode(const char *utf8, size_t len, const char *why)
{
    char *out = NULL;
    int r = imap_utf7_encode(utf8, len, &out);
    is_int(r, OIMAP_ENAME, "encode rejects %s", why);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static uint32_t random_cp(void)
{
    switch (rnd() % 6) {
    case 0:
    case 1:
        return 0x20 + rnd() % 0x5f; /* printable ASCII, '&' included */
    case 2:
        return 1 + rnd() % 0x7f; /* any ASCII but NUL */
    case 3:
        return 0x80 + rnd() % (0x800 - 0x80);
    case 4: {
        uint32_t c = 0x800 + rnd() % (0x10000 - 0x800);
        return (c >= 0xd800 && c <= 0xdfff) ? 0xe9 : c;
    }
    default:
        return 0x10000 + rnd() % (0x110000 - 0x10000);
    }
}

static void round_trips(void)
{
    int fails = 0, printable_fail = 0;
    for (int it = 0; it < 3000; it++) {
        char in[256], *enc = NULL, *dec = NULL;
        size_t n = 0, k = rnd() % 12;
        for (size_t j = 0; j < k; j++)
            n += chars_utf8_put(in + n, random_cp());
        if (imap_utf7_encode(in, n, &enc) != 0) {
            fails++;
            continue;
        }
        for (char *c = enc; *c; c++)
            if (*c < 0x20 || *c > 0x7e)
                printable_fail++;
        if (imap_utf7_decode(enc, strlen(enc), &dec) != 0 || strlen(dec) != n ||
            memcmp(dec, in, n) != 0)
            fails++;
        free(enc);
        free(dec);
    }
    is_int(fails, 0, "3000 random UTF-8 names: decode(encode(x)) == x");
    is_int(printable_fail, 0, "encoded names are printable ASCII only");

    /* Random mUTF-7-ish input: whatever decodes must re-encode to itself. */
    static const char alpha[] = "&-AOkU,BTFw2D3eAa+/_ *";
    int accepted = 0;
    fails = 0;
    for (int it = 0; it < 20000; it++) {
        char in[16], *dec = NULL, *enc = NULL;
        size_t n = rnd() % sizeof(in);
        for (size_t j = 0; j < n; j++)
            in[j] = alpha[rnd() % (sizeof(alpha) - 1)];
        if (imap_utf7_decode(in, n, &dec) != 0)
            continue;
        accepted++;
        if (imap_utf7_encode(dec, strlen(dec), &enc) != 0 || strlen(enc) != n ||
            memcmp(enc, in, n) != 0)
            fails++;
        free(dec);
        free(enc);
    }
    is_int(fails, 0, "random mUTF-7: encode(decode(y)) == y (canonical)");
    ok(accepted > 1000, "random mUTF-7: a fair share accepted (%d)", accepted);
}

int main(void)
{
    pair("INBOX", "INBOX");
    pair("", "");
    pair("&-", "&");
    pair("a&-b&-", "a&b&");
    pair("Entw&APw-rfe", "Entw\xc3\xbcrfe");
    pair("&U,BTFw-", "\xe5\x8f\xb0\xe5\x8c\x97");
    pair("~peter/mail/&U,BTFw-/&ZeVnLIqe-",
         "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
    pair("&2D3eAA-", "\xf0\x9f\x98\x80");
    pair("a&AAE-b", "a\x01"
                    "b");
    pair("&AH8-", "\x7f");
    pair("&IKw-", "\xe2\x82\xac");
    pair("&ANw-n&AO8-c&APY-d&AOk- &- Co", "\xc3\x9cn\xc3\xaf"
                                          "c\xc3\xb6"
                                          "d\xc3\xa9 & Co");
    pair("&AOkA6QDp-", "\xc3\xa9\xc3\xa9\xc3\xa9");
    pair("[Gmail]/Sent Mail", "[Gmail]/Sent Mail");

    bad_decode("&AGE-", 5, "a shifted printable ASCII char");
    bad_decode("&ACY-", 5, "'&' encoded in base64");
    bad_decode("&", 1, "a lone '&' at the end");
    bad_decode("&AOk", 4, "an unterminated shift");
    bad_decode("&AOk-&AOk-", 10, "two adjacent shifts");
    bad_decode("&A-", 3, "a shift without a whole character");
    bad_decode("&AOl-", 5, "non-zero padding bits");
    bad_decode("&AOkA-", 6, "a superfluous base64 character");
    bad_decode("&2D0-", 5, "a lone high surrogate");
    bad_decode("&2D3YPQ-", 8, "a high surrogate followed by a high surrogate");
    bad_decode("&3gA-", 5, "a lone low surrogate");
    bad_decode("&3gDYPQ-", 8, "reversed surrogates");
    bad_decode("&AAA-", 5, "U+0000");
    bad_decode("&A*k-", 5, "a non-base64 character");
    bad_decode("&AO/-", 5, "'/' instead of ','");
    bad_decode("caf\xc3\xa9", 5, "raw 8-bit bytes");
    bad_decode("a\tb", 3, "a control character");
    bad_decode("a\0b", 3, "NUL");

    bad_encode("\xc3", 1, "a truncated sequence");
    bad_encode("\xc0\xaf", 2, "an overlong '/'");
    bad_encode("\xe0\x80\xaf", 3, "a 3-byte overlong");
    bad_encode("\xed\xa0\x80", 3, "an encoded surrogate");
    bad_encode("\xf4\x90\x80\x80", 4, "a code point above U+10FFFF");
    bad_encode("\xff", 1, "0xFF");
    bad_encode("\x80", 1, "a stray continuation byte");
    bad_encode("a\0b", 3, "NUL");
    bad_encode("\xe2\x82", 2, "a 3-byte sequence cut short");

    round_trips();
    return tap_done();
}
