/* test_imap_parse.c - the IMAP response parser, fed whole, split at every byte
 * boundary and one byte at a time (each chunk in its own allocation, so a
 * pointer kept past its feed shows up under ASan); literals streamed and kept;
 * every limit; malformed input; Dovecot transcripts; the decode helpers. */
#include "imap_parse.h"

#include "err.h"
#include "tap.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- a consumer that writes everything it sees into a transcript ---------- */

enum { POL_NONE, POL_BODY, POL_STREAM, POL_KEEP };

struct rec {
    char *s;
    size_t len, cap;
    int policy;
    char *lit;
    size_t lit_len, lit_cap;
    int pause_after; /* pause after this many responses; 0 = never */
    int nresp;
    int fail_in_data;
};

static void put(struct rec *r, const char *p, size_t n)
{
    if (!n && r->s)
        return;
    if (r->len + n + 1 > r->cap) {
        r->cap = (r->len + n + 1) * 2;
        r->s = realloc(r->s, r->cap);
    }
    memcpy(r->s + r->len, p, n);
    r->len += n;
    r->s[r->len] = '\0';
}

static __attribute__((format(printf, 2, 3))) void putf(struct rec *r, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    put(r, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void put_tok(struct rec *r, const struct imap_token *t)
{
    struct imap_section sec;
    switch (t->kind) {
    case IMAP_TOK_ATOM:
        put(r, t->str, t->len);
        break;
    case IMAP_TOK_NUMBER:
        putf(r, "#%llu", (unsigned long long)t->num);
        break;
    case IMAP_TOK_QUOTED:
        put(r, "\"", 1);
        put(r, t->str, t->len);
        put(r, "\"", 1);
        break;
    case IMAP_TOK_LITERAL:
        putf(r, "%s{%u}", (t->flags & IMAP_TOKF_LITERAL8) ? "~" : "", t->len);
        put(r, t->str, t->len);
        break;
    case IMAP_TOK_STREAMED:
        putf(r, "%s{%llu}S", (t->flags & IMAP_TOKF_LITERAL8) ? "~" : "",
             (unsigned long long)t->num);
        break;
    case IMAP_TOK_NIL:
        put(r, "NIL", 3);
        break;
    case IMAP_TOK_SECTION:
        if (imap_tok_section(t, &sec) == 0) {
            put(r, "S:", 2);
            put(r, sec.name, sec.name_len);
            put(r, "|", 1);
            put(r, sec.spec, sec.spec_len);
            if (sec.has_origin)
                putf(r, "|%llu", (unsigned long long)sec.origin);
        } else {
            put(r, "S:?", 3);
        }
        break;
    case IMAP_TOK_LIST: {
        put(r, "(", 1);
        unsigned n = 0;
        for (const struct imap_token *c = imap_tok_child(t); c; c = imap_tok_next(c)) {
            if (n++)
                put(r, " ", 1);
            put_tok(r, c);
        }
        if (n != t->count)
            putf(r, "!count%u/%u", n, t->count);
        put(r, ")", 1);
        break;
    }
    default:
        put(r, "?", 1);
    }
}

static const char *const status_names[] = {"", "OK", "NO", "BAD", "PREAUTH", "BYE"};

static void put_resp(struct rec *r, const struct imap_response *x)
{
    if (x->kind == IMAP_RESP_CONTINUATION)
        put(r, "+", 1);
    else if (x->kind == IMAP_RESP_TAGGED)
        put(r, x->tag, x->tag_len);
    else
        put(r, "*", 1);
    if (x->has_num)
        putf(r, " %u", x->num);
    if (x->status)
        putf(r, " %s", status_names[x->status]);
    if (x->keyword)
        putf(r, " %.*s/%d", (int)x->keyword_len, x->keyword, (int)x->data);
    if (x->code.id) {
        putf(r, " [%.*s|", (int)x->code.name_len, x->code.name);
        put(r, x->code.args, x->code.args_len);
        putf(r, "]%d", (int)x->code.id);
    }
    if (x->status || x->kind == IMAP_RESP_CONTINUATION) {
        put(r, " '", 2);
        put(r, x->text, x->text_len);
        put(r, "'", 1);
    }
    for (const struct imap_token *t = x->tokens; t; t = imap_tok_next(t)) {
        put(r, " ", 1);
        put_tok(r, t);
    }
}

static int on_response(void *ctx, const struct imap_response *x)
{
    struct rec *r = ctx;
    put_resp(r, x);
    if (x->data == IMAP_DATA_FETCH) {
        struct imap_fetch f;
        int e = imap_fetch_decode(x, &f);
        putf(r, " => %d uid=%u fl=%x kw=%u size=%llu date=%lld modseq=%llu nb=%u", e, f.uid,
             f.flags, f.n_keywords, (unsigned long long)f.rfc822_size, (long long)f.internaldate,
             (unsigned long long)f.modseq, f.n_bodies);
        for (unsigned i = 0; i < f.n_bodies && e == 0; i++) {
            putf(r, " b%u:%s%s%llu", i, f.bodies[i].streamed ? "S" : "",
                 f.bodies[i].nil ? "NIL" : "", (unsigned long long)f.bodies[i].size);
            if (f.bodies[i].data)
                put(r, f.bodies[i].data, f.bodies[i].len);
        }
    }
    put(r, "\n", 1);
    r->nresp++;
    if (r->pause_after && r->nresp == r->pause_after)
        return IMAP_PARSE_PAUSE;
    return 0;
}

static int on_lit_begin(void *ctx, const struct imap_response *x, uint64_t size)
{
    struct rec *r = ctx;
    int how = r->policy == POL_STREAM ? IMAP_LITERAL_STREAM : IMAP_LITERAL_KEEP;
    if (r->policy == POL_BODY && x->last && x->last->kind == IMAP_TOK_SECTION)
        how = IMAP_LITERAL_STREAM;
    putf(r, "LB %llu %s <", (unsigned long long)size, how ? "stream" : "keep");
    put_resp(r, x);
    if (x->data == IMAP_DATA_FETCH) {
        struct imap_fetch f;
        int e = imap_fetch_decode(x, &f);
        putf(r, " => %d uid=%u", e, f.uid);
    }
    put(r, ">\n", 2);
    r->lit_len = 0;
    return how;
}

static int on_lit_data(void *ctx, const char *p, size_t n)
{
    struct rec *r = ctx;
    if (r->fail_in_data)
        return -EIO;
    if (r->lit_len + n > r->lit_cap) {
        r->lit_cap = (r->lit_len + n) * 2;
        r->lit = realloc(r->lit, r->lit_cap);
    }
    memcpy(r->lit + r->lit_len, p, n);
    r->lit_len += n;
    return 0;
}

static int on_lit_end(void *ctx)
{
    struct rec *r = ctx;
    putf(r, "LE %zu '", r->lit_len);
    put(r, r->lit, r->lit_len);
    put(r, "'\n", 2);
    return 0;
}

static const struct imap_parser_callbacks cbs_all = {on_response, on_lit_begin, on_lit_data,
                                                     on_lit_end};
static const struct imap_parser_callbacks cbs_nolit = {on_response, NULL, NULL, NULL};

/* Feed input split into chunks at the given cut points (each chunk copied to
 * its own exact-size allocation).  Returns the final code; *tr_r the
 * transcript (caller frees). */
static int feed_cuts(const char *in, size_t len, const size_t *cuts, size_t ncuts, int policy,
                     const struct imap_parser_limits *lim, char **tr_r, char *err_r)
{
    struct imap_parser p;
    struct rec r = {0};
    size_t prev = 0;
    int rc = 0;

    r.policy = policy;
    put(&r, "", 0);
    imap_parser_init(&p, lim, policy == POL_NONE ? &cbs_nolit : &cbs_all, &r);
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        size_t n = end - prev;
        char *chunk = malloc(n ? n : 1);
        memcpy(chunk, in + prev, n);
        rc = imap_parser_feed(&p, chunk, n);
        free(chunk);
        prev = end;
    }
    if (rc == 0 && !imap_parser_idle(&p))
        put(&r, "<incomplete>", 12);
    if (err_r)
        snprintf(err_r, 200, "%s", imap_parser_error(&p));
    imap_parser_deinit(&p);
    free(r.lit);
    *tr_r = r.s;
    return rc;
}

/* Whole, every two-way split, and byte by byte must all agree.  Returns the
 * transcript of the whole feed (caller frees). */
static char *check_splits(const char *name, const char *in, size_t len, int policy,
                          const struct imap_parser_limits *lim, int want_rc)
{
    char *whole, *tr;
    int rc, bad_split = -1, bad_rc = 0;
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));

    rc = feed_cuts(in, len, NULL, 0, policy, lim, &whole, NULL);
    is_int(rc, want_rc, "%s: whole feed returns %d", name, want_rc);
    for (size_t k = 0; k <= len; k++) {
        cuts[0] = k;
        int rc2 = feed_cuts(in, len, cuts, 1, policy, lim, &tr, NULL);
        if ((rc2 != rc || strcmp(tr, whole) != 0) && bad_split < 0) {
            bad_split = (int)k;
            bad_rc = rc2;
            printf("# split %zu gave rc %d:\n# %s\n# whole:\n# %s\n", k, rc2, tr, whole);
        }
        free(tr);
    }
    ok(bad_split < 0, "%s: all %zu two-way splits agree (first bad %d rc %d)", name, len + 1,
       bad_split, bad_rc);
    for (size_t k = 0; k < len; k++)
        cuts[k] = k + 1;
    rc = feed_cuts(in, len, cuts, len ? len - 1 : 0, policy, lim, &tr, NULL);
    ok(rc == want_rc && strcmp(tr, whole) == 0, "%s: byte-at-a-time agrees", name);
    if (strcmp(tr, whole) != 0)
        printf("# bytewise:\n# %s\n# whole:\n# %s\n", tr, whole);
    free(tr);
    free(cuts);
    return whole;
}

static void expect(const char *name, const char *in, int policy, const char *want)
{
    char *got = check_splits(name, in, strlen(in), policy, NULL, 0);
    is_str(got, want, "%s: transcript", name);
    free(got);
}

static void expect_err(const char *name, const char *in, size_t len, int policy,
                       const struct imap_parser_limits *lim, int want_rc, const char *msg_part)
{
    char *tr, err[200];
    free(check_splits(name, in, len, policy, lim, want_rc));
    int rc = feed_cuts(in, len, NULL, 0, policy, lim, &tr, err);
    (void)rc;
    ok(strstr(err, msg_part) != NULL && strstr(err, "offset") != NULL,
       "%s: message names '%s' and the offset (%s)", name, msg_part, err);
    free(tr);
}

/* ---- constructs ----------------------------------------------------------- */

static void test_dovecot_session(void)
{
    expect("greeting",
           "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
           "STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.\r\n",
           POL_BODY,
           "* OK [CAPABILITY|IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
           "STARTTLS AUTH=PLAIN]11 'Dovecot (Debian) ready.'\n");
    expect("capability",
           "* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY "
           "THREAD=REFERENCES MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE "
           "UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN "
           "CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY LITERAL+ "
           "NOTIFY SPECIAL-USE\r\n"
           "a1 OK Pre-login capabilities listed, post-login capabilities have more.\r\n",
           POL_BODY,
           "* CAPABILITY/2 IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY "
           "THREAD=REFERENCES MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE "
           "UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN "
           "CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY LITERAL+ "
           "NOTIFY SPECIAL-USE\n"
           "a1 OK 'Pre-login capabilities listed, post-login capabilities have more.'\n");
    expect("login", "a2 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n", POL_BODY,
           "a2 OK [CAPABILITY|IMAP4rev1 IDLE]11 'Logged in'\n");
    expect("list",
           "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
           "* LIST (\\HasChildren \\Noselect) \".\" \"Archive\"\r\n"
           "* LIST (\\HasNoChildren \\UnMarked \\Drafts) \"/\" \"Entw&APw-rfe\"\r\n"
           "* LIST () \"/\" {11}\r\nfoo \"bar\"\\x\r\n"
           "* LIST (\\Noinferiors) NIL \"[Gmail]/Sent Mail\"\r\n"
           "a3 OK List completed (0.001 + 0.000 secs).\r\n",
           POL_BODY,
           "* LIST/3 (\\HasNoChildren) \"/\" INBOX\n"
           "* LIST/3 (\\HasChildren \\Noselect) \".\" \"Archive\"\n"
           "* LIST/3 (\\HasNoChildren \\UnMarked \\Drafts) \"/\" \"Entw&APw-rfe\"\n"
           "LB 11 keep <* LIST/3 () \"/\">\n"
           "* LIST/3 () \"/\" {11}foo \"bar\"\\x\n"
           "* LIST/3 (\\Noinferiors) NIL \"[Gmail]/Sent Mail\"\n"
           "a3 OK 'List completed (0.001 + 0.000 secs).'\n");
    expect("select",
           "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n"
           "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded "
           "\\*)] Flags permitted.\r\n"
           "* 3 EXISTS\r\n* 0 RECENT\r\n* OK [UNSEEN 1] First unseen.\r\n"
           "* OK [UIDVALIDITY 1700000000] UIDs valid\r\n* OK [UIDNEXT 4] Predicted next UID\r\n"
           "* OK [HIGHESTMODSEQ 5] Highest\r\n"
           "a4 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n",
           POL_BODY,
           "* FLAGS/8 (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\n"
           "* OK [PERMANENTFLAGS|(\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded "
           "\\*)]12 'Flags permitted.'\n"
           "* 3 EXISTS/9\n* 0 RECENT/10\n* OK [UNSEEN|1]5 'First unseen.'\n"
           "* OK [UIDVALIDITY|1700000000]3 'UIDs valid'\n* OK [UIDNEXT|4]4 'Predicted next UID'\n"
           "* OK [HIGHESTMODSEQ|5]6 'Highest'\n"
           "a4 OK [READ-WRITE|]14 'Select completed (0.001 + 0.000 secs).'\n");
    expect("fetch flags",
           "* 1 FETCH (UID 1 FLAGS (\\Seen) RFC822.SIZE 1234 INTERNALDATE "
           "\"17-Jul-1996 02:44:25 -0700\" MODSEQ (12))\r\n"
           "* 2 FETCH (UID 2 FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Junk work) "
           "RFC822.SIZE 0)\r\n"
           "* 3 FETCH (FLAGS () UID 3)\r\n",
           POL_BODY,
           "* 1 FETCH/12 (UID #1 FLAGS (\\Seen) RFC822.SIZE #1234 INTERNALDATE "
           "\"17-Jul-1996 02:44:25 -0700\" MODSEQ (#12)) => 0 uid=1 fl=1 kw=0 size=1234 "
           "date=837596665 modseq=12 nb=0\n"
           "* 2 FETCH/12 (UID #2 FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Junk work) "
           "RFC822.SIZE #0) => 0 uid=2 fl=1f kw=2 size=0 date=-1 modseq=0 nb=0\n"
           "* 3 FETCH/12 (FLAGS () UID #3) => 0 uid=3 fl=0 kw=0 size=0 date=-1 modseq=0 nb=0\n");
    expect("fetch body streamed",
           "* 12 FETCH (UID 42 BODY[] {18}\r\nSubject: x\r\n\r\nhi\r\n)\r\n"
           "a5 OK Fetch completed.\r\n",
           POL_BODY,
           "LB 18 stream <* 12 FETCH/12 (UID #42 S:BODY|) => 0 uid=42>\n"
           "LE 18 'Subject: x\r\n\r\nhi\r\n'\n"
           "* 12 FETCH/12 (UID #42 S:BODY| {18}S) => 0 uid=42 fl=0 kw=0 size=0 date=-1 "
           "modseq=0 nb=1 b0:S18\n"
           "a5 OK 'Fetch completed.'\n");
    expect("fetch body kept", "* 12 FETCH (UID 42 BODY[] {18}\r\nSubject: x\r\n\r\nhi\r\n)\r\n",
           POL_KEEP,
           "LB 18 keep <* 12 FETCH/12 (UID #42 S:BODY|) => 0 uid=42>\n"
           "* 12 FETCH/12 (UID #42 S:BODY| {18}Subject: x\r\n\r\nhi\r\n) => 0 uid=42 fl=0 "
           "kw=0 size=0 date=-1 modseq=0 nb=1 b0:18Subject: x\r\n\r\nhi\r\n\n");
    expect("fetch body no callback", "* 1 FETCH (BODY[TEXT] {3}\r\nabc UID 7)\r\n", POL_NONE,
           "* 1 FETCH/12 (S:BODY|TEXT {3}abc UID #7) => 0 uid=7 fl=0 kw=0 size=0 date=-1 "
           "modseq=0 nb=1 b0:3abc\n");
}

static void test_constructs(void)
{
    expect("quoted escapes", "* X \"a\\\"b\\\\c\" \"\" \"\\q\"\r\n", POL_BODY,
           "* X/1 \"a\"b\\c\" \"\" \"q\"\n");
    expect("utf-8 in quoted", "* LIST () \"/\" \"Entw\xc3\xbcrfe \xe2\x82\xac\"\r\n", POL_BODY,
           "* LIST/3 () \"/\" \"Entw\xc3\xbcrfe \xe2\x82\xac\"\n");
    expect("literal+ and literal8", "* X {3+}\r\nabc ~{4}\r\nwxyz end\r\n", POL_KEEP,
           "LB 3 keep <* X/1>\nLB 4 keep <* X/1 {3}abc>\n* X/1 {3}abc ~{4}wxyz end\n");
    expect("zero-length literals", "* 1 FETCH (BODY[] {0}\r\n BODY[1] {0}\r\n)\r\n", POL_BODY,
           "LB 0 stream <* 1 FETCH/12 (S:BODY|) => 0 uid=0>\nLE 0 ''\n"
           "LB 0 stream <* 1 FETCH/12 (S:BODY| {0}S S:BODY|1) => 0 uid=0>\nLE 0 ''\n"
           "* 1 FETCH/12 (S:BODY| {0}S S:BODY|1 {0}S) => 0 uid=0 fl=0 kw=0 size=0 date=-1 "
           "modseq=0 nb=2 b0:S0 b1:S0\n");
    expect("sections",
           "* 1 FETCH (BODY[HEADER.FIELDS (MESSAGE-ID SUBJECT)]<0> {2}\r\nhi "
           "BODY.PEEK[1.2.MIME] NIL BINARY[1] \"x\" BODY[HEADER.FIELDS (\"X]Y\")] NIL "
           "BINARY.SIZE[1] 5 body[text]<10>)\r\n",
           POL_KEEP,
           "LB 2 keep <* 1 FETCH/12 (S:BODY|HEADER.FIELDS (MESSAGE-ID SUBJECT)|0) => 0 uid=0>\n"
           "* 1 FETCH/12 (S:BODY|HEADER.FIELDS (MESSAGE-ID SUBJECT)|0 {2}hi "
           "S:BODY.PEEK|1.2.MIME NIL S:BINARY|1 \"x\" S:BODY|HEADER.FIELDS (\"X]Y\") NIL "
           "S:BINARY.SIZE|1 #5 S:body|text|10) => -19996 uid=0 fl=0 kw=0 size=0 date=-1 modseq=0 "
           "nb=4\n");
    expect(
        "bodystructure adjacency",
        "* 5 FETCH (BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
        "\"7bit\" 10 1)(\"text\" \"html\" NIL NIL NIL \"7bit\" 20 1) \"alternative\") UID 9)\r\n",
        POL_BODY,
        "* 5 FETCH/12 (BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
        "\"7bit\" #10 #1) (\"text\" \"html\" NIL NIL NIL \"7bit\" #20 #1) \"alternative\") "
        "UID #9) => 0 uid=9 fl=0 kw=0 size=0 date=-1 modseq=0 nb=0\n");
    expect("sloppy spacing and bare LF", "* 1 FETCH ( UID 5  FLAGS (\\Seen )  )\n*  2 EXISTS\n",
           POL_BODY,
           "* 1 FETCH/12 (UID #5 FLAGS (\\Seen)) => 0 uid=5 fl=1 kw=0 size=0 date=-1 modseq=0 "
           "nb=0\n* 2 EXISTS/9\n");
    expect("continuations", "+ \r\n+\r\n+ Ready for literal data\r\n+ dGVzdA==\n", POL_BODY,
           "+ ''\n+ ''\n+ 'Ready for literal data'\n+ 'dGVzdA=='\n");
    expect("tagged NO/BAD",
           "a4 NO [TRYCREATE] Mailbox doesn't exist: x\r\na5 BAD Error in IMAP command "
           "[unbalanced\r\nA.6 no done\r\n",
           POL_BODY,
           "a4 NO [TRYCREATE|]15 'Mailbox doesn't exist: x'\n"
           "a5 BAD 'Error in IMAP command [unbalanced'\nA.6 NO 'done'\n");
    expect("status variants",
           "* BYE Server shutting down\r\n* PREAUTH [CAPABILITY IMAP4rev1] hi\r\n* NO\r\n"
           "* OK [ALERT] Disk full [really]\r\n* OK [XYZZY some text] x\r\n* OK [] x\r\n",
           POL_BODY,
           "* BYE 'Server shutting down'\n* PREAUTH [CAPABILITY|IMAP4rev1]11 'hi'\n* NO ''\n"
           "* OK [ALERT|]2 'Disk full [really]'\n* OK [XYZZY|some text]1 'x'\n* OK '[] x'\n");
    expect("untagged data",
           "* 7 EXPUNGE\r\n* VANISHED (EARLIER) 1:5,7\r\n"
           "* ESEARCH (TAG \"a1\") UID ALL 1:3,5 COUNT 4\r\n* SEARCH 2 3 5\r\n* SEARCH\r\n"
           "* STATUS \"Sent\" (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 17)\r\n* ENABLED CONDSTORE\r\n"
           "* NAMESPACE ((\"\" \"/\")) NIL ((\"#shared/\" \"/\"))\r\n"
           "* ID (\"name\" \"Dovecot\")\r\n* LSUB () \".\" INBOX\r\n",
           POL_BODY,
           "* 7 EXPUNGE/11\n* VANISHED/13 (EARLIER) 1:5,7\n"
           "* ESEARCH/7 (TAG \"a1\") UID ALL 1:3,5 COUNT #4\n* SEARCH/6 #2 #3 #5\n* SEARCH/6\n"
           "* STATUS/5 \"Sent\" (MESSAGES #3 UIDNEXT #4 UIDVALIDITY #17)\n* ENABLED/14 CONDSTORE\n"
           "* NAMESPACE/15 ((\"\" \"/\")) NIL ((\"#shared/\" \"/\"))\n"
           "* ID/16 (\"name\" \"Dovecot\")\n* LSUB/4 () \".\" INBOX\n");
    expect("gmail",
           "* 1 FETCH (X-GM-THRID 1278455344230334865 X-GM-MSGID 1278455344230334866 "
           "X-GM-LABELS (\\Inbox \"Work stuff\" \\Important) UID 5 FLAGS (\\Seen))\r\n"
           "* 2 FETCH (X-GM-LABELS () UID 6)\r\n",
           POL_BODY,
           "* 1 FETCH/12 (X-GM-THRID #1278455344230334865 X-GM-MSGID #1278455344230334866 "
           "X-GM-LABELS (\\Inbox \"Work stuff\" \\Important) UID #5 FLAGS (\\Seen)) => 0 uid=5 "
           "fl=1 kw=0 size=0 date=-1 modseq=0 nb=0\n"
           "* 2 FETCH/12 (X-GM-LABELS () UID #6) => 0 uid=6 fl=0 kw=0 size=0 date=-1 modseq=0 "
           "nb=0\n");
    expect("numbers and atoms",
           "* X 0 18446744073709551615 18446744073709551616 12ab 4[5] ~x NIL nil NILS\r\n",
           POL_BODY,
           "* X/1 #0 #18446744073709551615 18446744073709551616 12ab 4[5] ~x NIL NIL NILS\n");
    expect("streamed literals of all kinds", "* X {3}\r\nabc (~{2}\r\nde)\r\n", POL_STREAM,
           "LB 3 stream <* X/1>\nLE 3 'abc'\nLB 2 stream <* X/1 {3}S ()>\nLE 2 'de'\n"
           "* X/1 {3}S (~{2}S)\n");
    expect("literal holding CRLF and parens", "* 1 FETCH (BODY[] {8}\r\n(\r\n{1}\r\n UID 3)\r\n",
           POL_KEEP,
           "LB 8 keep <* 1 FETCH/12 (S:BODY|) => 0 uid=0>\n"
           "* 1 FETCH/12 (S:BODY| {8}(\r\n{1}\r\n UID #3) => 0 uid=3 fl=0 kw=0 size=0 date=-1 "
           "modseq=0 nb=1 b0:8(\r\n{1}\r\n\n");
    expect("a partial fetch ends in a literal", "* 1 FETCH (UID 9 BODY[] {2}\r\nab)\r\n",
           POL_STREAM,
           "LB 2 stream <* 1 FETCH/12 (UID #9 S:BODY|) => 0 uid=9>\nLE 2 'ab'\n"
           "* 1 FETCH/12 (UID #9 S:BODY| {2}S) => 0 uid=9 fl=0 kw=0 size=0 date=-1 modseq=0 "
           "nb=1 b0:S2\n");
}

/* ---- errors --------------------------------------------------------------- */

static void test_malformed(void)
{
    struct imap_parser_limits small;
#define E(name, s, code, msg) expect_err(name, s, sizeof(s) - 1, POL_BODY, NULL, code, msg)
    E("bad literal size", "* X {abc}\r\n", OIMAP_EPROTO, "literal");
    E("empty literal size", "* X {}\r\n", OIMAP_EPROTO, "literal");
    E("unclosed literal", "* X {5 \r\n", OIMAP_EPROTO, "literal");
    E("literal mid-line", "* X {5} y\r\nhello\r\n", OIMAP_EPROTO, "literal");
    E("literal size overflow", "* X {99999999999999999999999}\r\n", OIMAP_EPROTO, "literal");
    E("unterminated quote", "* X \"abc\r\n", OIMAP_EPROTO, "quoted");
    E("escape before CRLF", "* X \"abc\\\r\n", OIMAP_EPROTO, "quoted");
    E("NUL in quote", "* X \"a\0b\"\r\n", OIMAP_EPROTO, "NUL");
    E("NUL in atom", "* X a\0b\r\n", OIMAP_EPROTO, "control");
    E("NUL in text", "* OK a\0b\r\n", OIMAP_EPROTO, "NUL");
    E("bare CR", "* X a\rb\r\n", OIMAP_EPROTO, "CR");
    E("bare CR in text", "* OK a\rb\r\n", OIMAP_EPROTO, "CR");
    E("unclosed list", "* LIST ((a)\r\n", OIMAP_EPROTO, "unterminated list");
    E("extra close", "* LIST a)\r\n", OIMAP_EPROTO, "unbalanced");
    E("tagged non-status", "a1 FETCH x\r\n", OIMAP_EPROTO, "tagged");
    E("tagged BYE", "a1 BYE x\r\n", OIMAP_EPROTO, "tagged");
    E("missing keyword", "* (x)\r\n", OIMAP_EPROTO, "keyword");
    E("no space after star", "*OK x\r\n", OIMAP_EPROTO, "space");
    E("bad tag", "a(1 OK x\r\n", OIMAP_EPROTO, "tag");
    E("empty line", "\r\n", OIMAP_EPROTO, "tag");
    E("huge message number", "* 4294967296 EXISTS\r\n", OIMAP_EPROTO, "number");
    E("unterminated section", "* 1 FETCH (BODY[HEADER\r\n", OIMAP_EPROTO, "section");
    E("junk after section", "* 1 FETCH (BODY[]x NIL)\r\n", OIMAP_EPROTO, "section");
    E("line end escaped in a section", "* 1 FETCH (BODY[HEADER.FIELDS (\"a\\\nb\")] NIL)\r\n",
      OIMAP_EPROTO, "section");
    E("bad origin", "* 1 FETCH (BODY[]<1.2> NIL)\r\n", OIMAP_EPROTO, "origin");
    E("control char",
      "* X a\x01"
      "b\r\n",
      OIMAP_EPROTO, "control");
    /* after a good response, the error is still caught at the right place */
    E("error after good", "* 1 EXISTS\r\n* X \"open\r\n", OIMAP_EPROTO, "quoted");
#undef E

    /* a literal bigger than the streamed limit is refused before a byte is read */
    memset(&small, 0, sizeof(small));
    small.max_streamed_literal = 100;
    expect_err("literal over streamed limit", "* 1 FETCH (BODY[] {101}\r\n", 25, POL_BODY, &small,
               OIMAP_ETOOBIG, "literal");
    expect_err("1 GB literal", "* 1 FETCH (BODY[] {1073741824}\r\n", 32, POL_BODY, NULL,
               OIMAP_ETOOBIG, "literal");
    memset(&small, 0, sizeof(small));
    small.max_inline_literal = 10;
    expect_err("inline literal over limit", "* X {11}\r\n", 10, POL_KEEP, &small, OIMAP_ETOOBIG,
               "inline");
    expect_err("inline without callback over limit", "* X {11}\r\n", 10, POL_NONE, &small,
               OIMAP_ETOOBIG, "inline");
    expect_err("inline total per response", "* X {6}\r\nabcdef {6}\r\n", 21, POL_KEEP, &small,
               OIMAP_ETOOBIG, "inline");
    free(
        check_splits("inline at the limit", "* X {10}\r\n0123456789\r\n", 22, POL_KEEP, &small, 0));
    free(check_splits("streamed ignores the inline limit", "* X {11}\r\n01234567890\r\n", 23,
                      POL_STREAM, &small, 0));

    memset(&small, 0, sizeof(small));
    small.max_line = 40;
    expect_err("line over limit", "* SEARCH 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\r\n", 50,
               POL_BODY, &small, OIMAP_ETOOBIG, "longer");
    expect_err("text over limit", "* OK 0123456789012345678901234567890123456789\r\n", 48, POL_BODY,
               &small, OIMAP_ETOOBIG, "longer");
    expect_err("line over limit before a literal",
               "* 1 FETCH (UID 1234567890 FLAGS (\\Seen) BODY[] {5}\r\nhello)\r\n", 60, POL_BODY,
               &small, OIMAP_ETOOBIG, "longer");
    free(check_splits("literals do not count against the line",
                      "* X {30}\r\n012345678901234567890123456789 {30}\r\n"
                      "012345678901234567890123456789\r\n",
                      76, POL_STREAM, &small, 0));

    memset(&small, 0, sizeof(small));
    small.max_depth = 3;
    free(check_splits("depth at the limit", "* X (((a)))\r\n", 13, POL_BODY, &small, 0));
    expect_err("depth over limit", "* X ((((a))))\r\n", 15, POL_BODY, &small, OIMAP_ETOOBIG,
               "nested");
    memset(&small, 0, sizeof(small));
    small.max_tokens = 5;
    free(check_splits("tokens at the limit", "* SEARCH 1 2 3 4 5\r\n", 20, POL_BODY, &small, 0));
    expect_err("tokens over limit", "* SEARCH 1 2 3 4 5 6\r\n", 22, POL_BODY, &small, OIMAP_ETOOBIG,
               "tokens");
}

static int feed_all(struct imap_parser *p, const char *s, size_t n)
{
    return imap_parser_feed(p, s, n);
}

static void test_hostile(void)
{
    struct imap_parser p;
    struct rec r = {0};
    int rc;

    /* 10,000 nested lists: an error at the depth limit, no recursion */
    {
        size_t n = 10000;
        char *s = malloc(n * 2 + 10);
        memcpy(s, "* X ", 4);
        memset(s + 4, '(', n);
        memset(s + 4 + n, ')', n);
        memcpy(s + 4 + 2 * n, "\r\n", 2);
        imap_parser_init(&p, NULL, &cbs_all, &r);
        rc = feed_all(&p, s, n * 2 + 6);
        is_int(rc, OIMAP_ETOOBIG, "10,000-deep list is refused");
        imap_parser_deinit(&p);
        struct imap_parser_limits l = {0};
        l.max_depth = 100000; /* clamped */
        imap_parser_init(&p, &l, &cbs_all, &r);
        rc = 0;
        for (size_t i = 0; i < n * 2 + 6 && rc == 0; i += 7)
            rc = feed_all(&p, s + i, (n * 2 + 6 - i) < 7 ? n * 2 + 6 - i : 7);
        is_int(rc, OIMAP_ETOOBIG, "... even with a huge configured depth, fed in pieces");
        imap_parser_deinit(&p);
        free(s);
    }

    /* a 9 MiB line with default limits: refused once 8 MiB are crossed, memory bounded */
    {
        size_t chunk = 64 * 1024, total = 0;
        char *s = malloc(chunk);
        memset(s, 'a', chunk);
        memcpy(s, "* X ", 4);
        imap_parser_init(&p, NULL, &cbs_all, &r);
        rc = 0;
        while (rc == 0 && total < (9u << 20)) {
            rc = feed_all(&p, s, chunk);
            total += chunk;
            if (total == chunk)
                memset(s, 'a', 4);
        }
        is_int(rc, OIMAP_ETOOBIG, "9 MiB atom line: ETOOBIG");
        ok(total > (8u << 20) && total <= (8u << 20) + chunk, "... right after 8 MiB (%zu)", total);
        ok(p.buf_cap <= (16u << 20), "... buffer stayed bounded (%zu)", p.buf_cap);
        rc = feed_all(&p, "* 1 EXISTS\r\n", 12);
        is_int(rc, OIMAP_ETOOBIG, "dead parser keeps returning its error");
        imap_parser_deinit(&p);

        /* the same as one 9 MiB buffer (fast path) */
        char *big = malloc(9u << 20);
        memset(big, 'a', 9u << 20);
        memcpy(big, "* X ", 4);
        imap_parser_init(&p, NULL, &cbs_all, &r);
        rc = feed_all(&p, big, 9u << 20);
        is_int(rc, OIMAP_ETOOBIG, "9 MiB line in one buffer: ETOOBIG");
        imap_parser_deinit(&p);
        /* a big status text without LF */
        memcpy(big, "* OK ", 5);
        imap_parser_init(&p, NULL, &cbs_all, &r);
        rc = feed_all(&p, big, 9u << 20);
        is_int(rc, OIMAP_ETOOBIG, "9 MiB status text in one buffer: ETOOBIG");
        imap_parser_deinit(&p);
        /* lots of spaces */
        memset(big, ' ', 9u << 20);
        memcpy(big, "* X ", 4);
        imap_parser_init(&p, NULL, &cbs_all, &r);
        rc = feed_all(&p, big, 9u << 20);
        is_int(rc, OIMAP_ETOOBIG, "9 MiB of spaces: ETOOBIG");
        imap_parser_deinit(&p);
        free(big);
        free(s);
    }

    /* a big but legal UID SEARCH (1M numbers, ~7.9 MB) parses */
    {
        size_t cap = 9u << 20, n = 0;
        char *s = malloc(cap);
        n += (size_t)sprintf(s, "* SEARCH");
        for (unsigned i = 1; i <= 1000000; i++)
            n += (size_t)sprintf(s + n, " %u", i);
        n += (size_t)sprintf(s + n, "\r\n");
        struct rec rr = {0};
        imap_parser_init(&p, NULL, &cbs_nolit, &rr);
        size_t off = 0;
        rc = 0;
        while (rc == 0 && off < n) {
            size_t k = n - off < 65536 ? n - off : 65536;
            rc = feed_all(&p, s + off, k);
            off += k;
        }
        is_int(rc, 0, "1M-number SEARCH in 64 KiB chunks parses (%zu bytes)", n);
        ok(rr.nresp == 1 && rr.len > 6000000 && strstr(rr.s, " #1000000\n"),
           "... with every number");
        ok(p.toks_cap <= 8192 && p.buf_cap <= (256u << 10), "... and memory given back after");
        imap_parser_deinit(&p);
        free(rr.s);
        free(s);
    }
    free(r.s);
    free(r.lit);
}

/* ---- callbacks: errors, pause, streaming pointers ------------------------- */

static void test_callbacks(void)
{
    struct imap_parser p;
    struct rec r = {0};
    int rc;
    const char *two = "* 1 EXISTS\r\n* 2 EXISTS\r\n* 3 EXISTS\r\n";

    r.pause_after = 1;
    imap_parser_init(&p, NULL, &cbs_all, &r);
    rc = imap_parser_feed(&p, two, strlen(two));
    is_int(rc, IMAP_PARSE_PAUSE, "on_response can pause");
    is_int(imap_parser_consumed(&p), 12, "... consumed up to the end of that response");
    ok(imap_parser_idle(&p), "... and the parser is idle");
    rc = imap_parser_feed(&p, two + 12, strlen(two) - 12);
    is_int(rc, 0, "feeding the rest works");
    is_int(r.nresp, 3, "... all three delivered");
    imap_parser_deinit(&p);
    free(r.s);

    memset(&r, 0, sizeof(r));
    r.policy = POL_STREAM;
    r.fail_in_data = 1;
    imap_parser_init(&p, NULL, &cbs_all, &r);
    rc = imap_parser_feed(&p, "* X {5}\r\nab", 11);
    is_int(rc, -EIO, "an error from on_literal_data stops the feed");
    rc = imap_parser_feed(&p, "cde\r\n", 5);
    is_int(rc, -EIO, "... and the parser stays dead");
    ok(strstr(imap_parser_error(&p), "consumer") != NULL, "... error text says why");
    imap_parser_reset(&p);
    r.fail_in_data = 0;
    rc = imap_parser_feed(&p, "* 4 EXISTS\r\n", 12);
    is_int(rc, 0, "reset revives it");
    imap_parser_deinit(&p);
    free(r.s);
    free(r.lit);

    /* an error in a line cut by the end of a buffer shows when the line ends */
    memset(&r, 0, sizeof(r));
    imap_parser_init(&p, NULL, &cbs_all, &r);
    rc = imap_parser_feed(&p, "* 1", 3);
    is_int(rc, 0, "'* 1' alone waits for more");
    rc = imap_parser_feed(&p, "\x03 EXISTS", 9);
    is_int(rc, 0, "... a bad byte in the unfinished line is not judged yet");
    rc = imap_parser_feed(&p, "\r\n", 2);
    is_int(rc, OIMAP_EPROTO, "... and is refused when the line ends");
    ok(strstr(imap_parser_error(&p), "offset 3") != NULL, "... at the right offset (%s)",
       imap_parser_error(&p));
    imap_parser_deinit(&p);
    free(r.s);

    /* a streamed fetch delivers its data and the final tree */
    memset(&r, 0, sizeof(r));
    r.policy = POL_STREAM;
    imap_parser_init(&p, NULL, &cbs_all, &r);
    rc = imap_parser_feed(&p, "* 1 FETCH (BODY[] {10}\r\n0123456789)\r\n", 37);
    is_int(rc, 0, "streamed fetch");
    ok(strstr(r.s, "LE 10 '0123456789'") != NULL, "... data delivered");
    imap_parser_deinit(&p);
    free(r.s);
    free(r.lit);
}

static const char *zc_lo, *zc_hi;
static int zc_bad, zc_chunks;
static int zc_begin(void *ctx, const struct imap_response *x, uint64_t size)
{
    (void)ctx;
    (void)x;
    (void)size;
    return IMAP_LITERAL_STREAM;
}
static int zc_data(void *ctx, const char *p, size_t n)
{
    (void)ctx;
    zc_chunks++;
    if (p < zc_lo || p + n > zc_hi)
        zc_bad++;
    return 0;
}

static void test_zero_copy(void)
{
    static const struct imap_parser_callbacks cb = {NULL, zc_begin, zc_data, NULL};
    struct imap_parser p;
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "* 1 FETCH (UID 1 BODY[] {2000}\r\n");
    memset(buf + n, 'x', 2000);
    n += 2000;
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, ")\r\n");
    imap_parser_init(&p, NULL, &cb, NULL);
    for (size_t off = 0; off < n; off += 333) {
        zc_lo = buf + off;
        zc_hi = buf + (off + 333 < n ? off + 333 : n);
        imap_parser_feed(&p, zc_lo, (size_t)(zc_hi - zc_lo));
    }
    is_int(zc_bad, 0, "literal chunks point into the caller's buffers (zero copy)");
    ok(zc_chunks >= 6 && zc_chunks <= 8, "... one chunk per feed (%d)", zc_chunks);
    ok(p.buf_cap <= 4096, "... and nothing of the body was buffered (cap %zu)", p.buf_cap);
    is_int(imap_parser_feed(&p, NULL, 0), 0, "no bytes from a NULL buffer: nothing to do");
    is_int(imap_parser_feed(&p, NULL, 5), -EINVAL, "bytes from a NULL buffer: refused");
    imap_parser_deinit(&p);
}

/* ---- helpers ---------------------------------------------------------------- */

static struct imap_resp_code mkcode(enum imap_code id, const char *args)
{
    struct imap_resp_code c = {id, "X", 1, args, strlen(args)};
    return c;
}

static void test_helpers(void)
{
    struct imap_resp_code c;
    uint64_t n;
    uint32_t uv, lo, hi;
    const char *a, *b, *w;
    size_t al, bl, pos, wl;
    unsigned bits, nk;
    time_t t;
    char out[64];

    c = mkcode(IMAP_CODE_UIDVALIDITY, "1700000000");
    ok(imap_code_number(&c, &n) == 0 && n == 1700000000, "UIDVALIDITY number");
    c = mkcode(IMAP_CODE_HIGHESTMODSEQ, "18446744073709551615");
    ok(imap_code_number(&c, &n) == 0 && n == UINT64_MAX, "HIGHESTMODSEQ 64-bit");
    c = mkcode(IMAP_CODE_UIDNEXT, "12x");
    is_int(imap_code_number(&c, &n), OIMAP_EPROTO, "UIDNEXT with junk");
    c = mkcode(IMAP_CODE_UIDNEXT, "");
    is_int(imap_code_number(&c, &n), OIMAP_EPROTO, "UIDNEXT empty");

    c = mkcode(IMAP_CODE_APPENDUID, "38505 3955");
    ok(imap_code_appenduid(&c, &uv, &a, &al) == 0 && uv == 38505 && al == 4 &&
           !memcmp(a, "3955", 4),
       "APPENDUID");
    c = mkcode(IMAP_CODE_APPENDUID, "38505 3955:3960,3970");
    ok(imap_code_appenduid(&c, &uv, &a, &al) == 0 && al == 14, "APPENDUID MULTIAPPEND set");
    c = mkcode(IMAP_CODE_APPENDUID, "0 3955");
    is_int(imap_code_appenduid(&c, &uv, &a, &al), OIMAP_EPROTO, "APPENDUID uidvalidity 0");
    c = mkcode(IMAP_CODE_APPENDUID, "38505");
    is_int(imap_code_appenduid(&c, &uv, &a, &al), OIMAP_EPROTO, "APPENDUID without uid");
    c = mkcode(IMAP_CODE_APPENDUID, "38505 1,,2");
    is_int(imap_code_appenduid(&c, &uv, &a, &al), OIMAP_EPROTO, "APPENDUID bad set");
    c = mkcode(IMAP_CODE_COPYUID, "38505 304,319:320 3956:3958");
    ok(imap_code_copyuid(&c, &uv, &a, &al, &b, &bl) == 0 && uv == 38505 && al == 11 && bl == 9 &&
           !memcmp(b, "3956:3958", 9),
       "COPYUID");
    c = mkcode(IMAP_CODE_COPYUID, "38505 304");
    is_int(imap_code_copyuid(&c, &uv, &a, &al, &b, &bl), OIMAP_EPROTO, "COPYUID short");
    c = mkcode(IMAP_CODE_APPENDUID, "1 2");
    c.id = IMAP_CODE_COPYUID;
    is_int(imap_code_appenduid(&c, &uv, &a, &al), OIMAP_EPROTO, "APPENDUID of another code");

    const char *set = "1:3,7,*,9:5";
    pos = 0;
    char got[128] = "";
    int r;
    while ((r = imap_seqset_next(set, strlen(set), &pos, &lo, &hi)) > 0)
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%u-%u ", lo, hi);
    is_str(got, "1-3 7-7 4294967295-4294967295 5-9 ", "seqset ranges");
    is_int(r, 0, "seqset ends with 0");
    const char *badsets[] = {"", "0", "1,", ",1", "1::2", "a", "1:4294967296", "1 2"};
    for (size_t i = 0; i < sizeof(badsets) / sizeof(*badsets); i++) {
        pos = 0;
        while ((r = imap_seqset_next(badsets[i], strlen(badsets[i]), &pos, &lo, &hi)) > 0)
            ;
        ok(r < 0 || (i == 0 && r == 0), "seqset '%s' %s", badsets[i],
           i == 0 ? "is empty" : "is refused");
    }

    /* APPENDUID uid-sets after MULTIAPPEND: mapped by position, so strict. */
    {
        uint32_t u[8];
        size_t nu = 99;
        is_int(imap_uidset_expand("3:5,9", 5, u, 8, &nu), 0, "uidset 3:5,9");
        ok(nu == 4 && u[0] == 3 && u[1] == 4 && u[2] == 5 && u[3] == 9, "uidset order");
        is_int(imap_uidset_expand("7", 1, u, 1, &nu), 0, "uidset single");
        ok(nu == 1 && u[0] == 7, "uidset single value");
        is_int(imap_uidset_expand("1:8", 3, u, 8, &nu), 0, "uidset range to the cap");
        ok(nu == 8 && u[7] == 8, "uidset 8 UIDs");
        is_int(imap_uidset_expand("1:9", 3, u, 8, &nu), OIMAP_ETOOBIG, "uidset over the cap");
        is_int((int)nu, 0, "uidset over the cap: no count");
        is_int(imap_uidset_expand("1:4294967295", 12, u, 8, &nu), OIMAP_EPROTO,
               "uidset up to 2^32-1 is '*'");
        const char *bad[] = {"",  "5:3", "9,4", "4,4", "3:5,5", "*", "1:*",
                             "0", "1,",  ",1",  "1 2", "1::2",  "a", "4294967296"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
            nu = 99;
            is_int(imap_uidset_expand(bad[i], strlen(bad[i]), u, 8, &nu), OIMAP_EPROTO,
                   "uidset '%s' refused", bad[i]);
            is_int((int)nu, 0, "uidset '%s': no count", bad[i]);
        }
    }

    pos = 0;
    got[0] = '\0';
    while (imap_words_next("  IMAP4rev1  IDLE AUTH=PLAIN ", 29, &pos, &w, &wl))
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "<%.*s>", (int)wl, w);
    is_str(got, "<IMAP4rev1><IDLE><AUTH=PLAIN>", "words");

    c = mkcode(IMAP_CODE_PERMANENTFLAGS,
               "(\\Answered \\Flagged \\Deleted \\Seen \\Draft $Fwd \\*)");
    ok(imap_code_flags(&c, &bits, &nk) == 0 && bits == 0x5f && nk == 1, "PERMANENTFLAGS");
    c = mkcode(IMAP_CODE_PERMANENTFLAGS, "()");
    ok(imap_code_flags(&c, &bits, &nk) == 0 && bits == 0 && nk == 0, "PERMANENTFLAGS empty");
    c = mkcode(IMAP_CODE_PERMANENTFLAGS, "\\Seen");
    is_int(imap_code_flags(&c, &bits, &nk), OIMAP_EPROTO, "PERMANENTFLAGS without list");
    is_int(imap_flag_bit("\\SEEN", 5), IMAP_FLAG_SEEN, "flag bit case-insensitive");
    is_int(imap_flag_bit("Seen", 4), 0, "keyword is not a system flag");

    ok(imap_parse_date_time("17-Jul-1996 02:44:25 -0700", 26, &t) == 0 && t == 837596665,
       "INTERNALDATE with zone");
    ok(imap_parse_date_time(" 1-Jan-1970 00:00:00 +0000", 26, &t) == 0 && t == 0,
       "INTERNALDATE space-padded day, epoch");
    ok(imap_parse_date_time("29-Feb-2024 23:59:59 +0100", 26, &t) == 0 && t == 1709247599,
       "INTERNALDATE leap day");
    ok(imap_parse_date_time("31-dec-1969 23:00:00 -0100", 26, &t) == 0 && t == 0,
       "INTERNALDATE lower-case month, negative zone");
    is_int(imap_parse_date_time("29-Feb-2023 00:00:00 +0000", 26, &t), OIMAP_EPROTO,
           "INTERNALDATE 29 Feb of a common year");
    is_int(imap_parse_date_time("17-Foo-1996 02:44:25 -0700", 26, &t), OIMAP_EPROTO,
           "INTERNALDATE bad month");
    is_int(imap_parse_date_time("17-Jul-1996 24:44:25 -0700", 26, &t), OIMAP_EPROTO,
           "INTERNALDATE bad hour");
    is_int(imap_parse_date_time("17-Jul-1996 02:44:25", 20, &t), OIMAP_EPROTO,
           "INTERNALDATE without zone");

    is_int(imap_quote(out, sizeof(out), "INBOX", 5, false), 7, "quote simple");
    is_str(out, "\"INBOX\"", "quote simple value");
    is_int(imap_quote(out, sizeof(out), "a\"b\\c", 5, false), 9, "quote escapes");
    is_str(out, "\"a\\\"b\\\\c\"", "quote escapes value");
    is_int(imap_quote(out, sizeof(out), "a\r\nb", 4, true), 0, "CRLF needs a literal");
    is_int(imap_quote(out, sizeof(out), "caf\xc3\xa9", 5, false), 0,
           "8-bit needs a literal without UTF8=ACCEPT");
    is_int(imap_quote(out, sizeof(out), "caf\xc3\xa9", 5, true), 7,
           "8-bit quoted with UTF8=ACCEPT");
    is_int(imap_quote(out, 5, "INBOX", 5, false), OIMAP_ETOOBIG, "quote into a short buffer");
    is_int(imap_quote(out, imap_quote_size(3), "\"\"\"", 3, false), 8,
           "imap_quote_size suffices for the worst case");
    ok(!imap_quotable("a\0b", 3, true), "NUL is not quotable");
}

static void test_fetch_decode_errors(void)
{
    static const struct {
        const char *in;
        int want;
    } cases[] = {
        {"* 1 FETCH (UID 0)\r\n", OIMAP_EPROTO},
        {"* 1 FETCH (UID 4294967296)\r\n", OIMAP_EPROTO},
        {"* 1 FETCH (UID x)\r\n", OIMAP_EPROTO},
        {"* 1 FETCH (UID 1 UID 2)\r\n", OIMAP_EPROTO},
        {"* 1 FETCH (UID 1 UID 1)\r\n", 0},
        {"* 1 FETCH (FLAGS \\Seen)\r\n", OIMAP_EPROTO},
        {"* 1 FETCH (UID)\r\n", OIMAP_EPROTO},
        {"* 1 FETCH UID 1\r\n", OIMAP_EPROTO},
        {"* 1 FETCH (MODSEQ 5)\r\n", OIMAP_EPROTO},
        {"* 1 FETCH (\"UID\" 5)\r\n", OIMAP_EPROTO},
        {"* 1 FETCH (BODY[] (x))\r\n", OIMAP_EPROTO},
        {"* 1 FETCH (BODY[1] NIL BODY[2] NIL BODY[3] NIL BODY[4] NIL BODY[5] NIL)\r\n",
         OIMAP_ETOOBIG},
        {"* 1 FETCH (INTERNALDATE \"garbage\" UID 3 ENVELOPE (NIL NIL) X-FOO 7)\r\n", 0},
        {"* 1 FETCH (RFC822.HEADER {2}\r\nab RFC822.SIZE 2)\r\n", 0},
        {"* FETCH (UID 1)\r\n", OIMAP_EPROTO},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char *tr;
        char want[32];
        feed_cuts(cases[i].in, strlen(cases[i].in), NULL, 0, POL_KEEP, NULL, &tr, NULL);
        snprintf(want, sizeof(want), " => %d ", cases[i].want);
        char *last = strrchr(tr, '\n');
        *last = '\0';
        last = strrchr(tr, '\n');
        ok(strstr(last ? last : tr, want) != NULL, "fetch decode %zu: %.*s", i,
           (int)strcspn(cases[i].in, "\r"), cases[i].in);
        free(tr);
    }
}

/* ---- speed --------------------------------------------------------------------- */

static int bench_cb(void *ctx, const struct imap_response *x)
{
    struct imap_fetch f;
    if (imap_fetch_decode(x, &f) == 0)
        *(uint64_t *)ctx += f.uid;
    return 0;
}

static void test_speed(void)
{
    static const struct imap_parser_callbacks cb = {bench_cb, NULL, NULL, NULL};
    struct imap_parser p;
    char buf[64 * 1024];
    size_t n = 0;
    unsigned lines = 0;
    uint64_t sum = 0;
    struct timespec a, b;

    while (n + 100 < sizeof(buf)) {
        n += (size_t)sprintf(buf + n, "* %u FETCH (UID %u FLAGS (\\Seen) RFC822.SIZE %u)\r\n",
                             lines + 1, lines + 100, 1000 + lines);
        lines++;
    }
    imap_parser_init(&p, NULL, &cb, &sum);
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rounds = 200;
    for (int i = 0; i < rounds; i++)
        imap_parser_feed(&p, buf, n);
    clock_gettime(CLOCK_MONOTONIC, &b);
    imap_parser_deinit(&p);
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) /
                ((double)lines * rounds);
    printf("# FETCH (UID FLAGS RFC822.SIZE) line: %.0f ns parsed + decoded\n", ns);
    ok(sum > 0, "speed run decoded its lines");
    /* Release builds take ~0.2-0.4 us here; this only catches a gross
     * regression and survives ASan (~3x) and valgrind (~80x) runs. */
    ok(ns < 200000, "a FETCH line parses in well under 200 us even instrumented (%.0f ns)", ns);
}

int main(void)
{
    test_dovecot_session();
    test_constructs();
    test_malformed();
    test_hostile();
    test_callbacks();
    test_zero_copy();
    test_helpers();
    test_fetch_decode_errors();
    test_speed();
    return tap_done();
}
