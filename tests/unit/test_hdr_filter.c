/* test_hdr_filter.c - filterheaders on streams: fields dropped with their
 * continuation lines, case-insensitively, only in the header section; the
 * same output for every split of the input and one byte at a time. */
#include "hdr_filter.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

struct sink {
    char buf[8192];
    size_t n;
};

static int put(void *arg, const char *p, size_t n)
{
    struct sink *s = arg;
    if (s->n + n > sizeof s->buf)
        return -1;
    memcpy(s->buf + s->n, p, n);
    s->n += n;
    return 0;
}

static const char *const NAMES[] = {"X-Keywords", "X-Spam-Status"};

static bool same(const struct sink *s, const char *want)
{
    return s->n == strlen(want) && memcmp(s->buf, want, s->n) == 0;
}

/* in filtered with names gives want, whatever the chunking. */
static void check(const char *const *names, size_t n, const char *in, const char *want,
                  const char *what)
{
    size_t len = strlen(in);
    bool all = true;
    for (size_t cut = 0; cut <= len; cut++) {
        struct hdr_filter f;
        struct sink s = {.n = 0};
        hdr_filter_init(&f, names, n);
        hdr_filter_feed(&f, in, cut, put, &s);
        hdr_filter_feed(&f, in + cut, len - cut, put, &s);
        hdr_filter_end(&f, put, &s);
        if (!same(&s, want) || f.dropped + s.n != len) {
            all = false;
            if (cut == 0)
                printf("# got [%.*s]\n", (int)s.n, s.buf);
        }
    }
    struct hdr_filter f;
    struct sink s = {.n = 0};
    hdr_filter_init(&f, names, n);
    for (size_t i = 0; i < len; i++)
        hdr_filter_feed(&f, in + i, 1, put, &s);
    hdr_filter_end(&f, put, &s);
    all &= same(&s, want);
    ok(all, "%s, every split and byte by byte", what);
}

#define CHECK(in, want, what) check(NAMES, 2, in, want, what)

static int fail_emit(void *arg, const char *p, size_t n)
{
    (void)arg;
    (void)p;
    (void)n;
    return -42;
}

int main(void)
{
    CHECK("Subject: a\nX-Keywords: work, todo\nFrom: b\n\nbody\n", "Subject: a\nFrom: b\n\nbody\n",
          "one field dropped");
    CHECK("x-keywords: a\nX-KEYWORDS: b\nTo: c\nX-Keywords: d\n\nb\n", "To: c\n\nb\n",
          "every occurrence, any case");
    CHECK("X-Spam-Status: No, score=1\n\ttests=A,B\n  more\nSubject: s\n\tfolded\n\nb\n",
          "Subject: s\n\tfolded\n\nb\n", "continuation lines go with their field");
    CHECK("Subject: s\r\nX-Keywords: a\r\n b\r\nTo: t\r\n\r\nX-Keywords: body\r\n",
          "Subject: s\r\nTo: t\r\n\r\nX-Keywords: body\r\n", "CRLF lines, body untouched");
    CHECK("Subject: s\n\nX-Keywords: in the body\n", "Subject: s\n\nX-Keywords: in the body\n",
          "a field name in the body is kept");
    CHECK("X-Keywords-More: a\nX-Keyword: b\nX-Keywords : c\nX-Keywords: d\n",
          "X-Keywords-More: a\nX-Keyword: b\nX-Keywords : c\nX-Keywords: d\n",
          "other names kept; a space before ':' ends the header section");
    CHECK("From someone Mon Jan 1 00:00:00 2024\nX-Keywords: a\nTo: t\n\nb\n",
          "From someone Mon Jan 1 00:00:00 2024\nTo: t\n\nb\n", "an mbox From line first");
    CHECK("garbage line\nX-Keywords: a\n\nb\n", "garbage line\nX-Keywords: a\n\nb\n",
          "a line that is no field ends the header section");
    CHECK("X-Keywords: a", "", "a message that is one field, no line end");
    CHECK("To: t\nX-Keyw", "To: t\nX-Keyw", "a name cut by the end of the message");
    CHECK("To: t\n\rX-Keywords: a\n", "To: t\n\rX-Keywords: a\n", "a CR opening a line");
    CHECK("", "", "empty message");

    char longname[400], longin[600];
    memset(longname, 'A', 300);
    longname[300] = 0;
    snprintf(longin, sizeof longin, "%s: v\nX-Keywords: k\n\nb\n", longname);
    char longwant[600];
    snprintf(longwant, sizeof longwant, "%s: v\n\nb\n", longname);
    CHECK(longin, longwant, "a field name longer than any listed");
    snprintf(longin, sizeof longin, "%s v\nX-Keywords: k\n\nb\n", longname);
    CHECK(longin, longin, "a long word that is no field ends the header section");

    const char *const one[] = {"Received"};
    check(one, 1, "Received: a\n by b\nReceived: c\nSubject: s\n\n", "Subject: s\n\n",
          "a single listed name");
    check(NULL, 0, "X-Keywords: a\n\n", "X-Keywords: a\n\n", "no names: nothing dropped");

    struct hdr_filter f;
    hdr_filter_init(&f, NAMES, 2);
    ok(hdr_filter_active(&f), "active with names");
    is_int(hdr_filter_feed(&f, "To: x\n", 6, fail_emit, NULL), -42, "emit's error returned");
    hdr_filter_init(&f, NULL, 0);
    ok(!hdr_filter_active(&f), "inactive without names");
    return tap_done();
}
