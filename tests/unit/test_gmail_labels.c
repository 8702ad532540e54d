/* test_gmail_labels.c - label sets, X-GM-LABELS from FETCH (whole and byte
 * by byte), the header value codec, header read/replace, the merge. */
#include "gmail_labels.h"

#include "err.h"
#include "imap_parse.h"
#include "status.h"
#include "tap.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "a|b|c" from a set (wire forms), for comparisons. */
static const char *joined(const struct gmail_labels *s)
{
    static char buf[1024];
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < s->n && o < sizeof buf; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", i ? "|" : "", s->v[i]);
    return buf;
}

/* s with CR and LF made visible, for one-line test names. */
static const char *oneline(const char *s)
{
    static char buf[4][64];
    static int k;
    char *b = buf[k++ % 4];
    size_t o = 0;
    for (; *s && o + 3 < sizeof buf[0]; s++) {
        if (*s == '\n' || *s == '\r') {
            b[o++] = '\\';
            b[o++] = *s == '\n' ? 'n' : 'r';
        } else {
            b[o++] = *s;
        }
    }
    b[o] = 0;
    return b;
}

static void set_of(struct gmail_labels *s, const char *const *v)
{
    gmail_labels_init(s);
    for (; *v; v++)
        gmail_labels_add(s, *v, strlen(*v));
}

static void test_sets(void)
{
    struct gmail_labels s, t, u;
    gmail_labels_init(&s);
    is_int(gmail_labels_add(&s, "b", 1), 0, "add b");
    is_int(gmail_labels_add(&s, "a", 1), 0, "add a");
    is_int(gmail_labels_add(&s, "b", 1), 1, "add b again: present");
    is_int(gmail_labels_add(&s, "", 0), OIMAP_ENAME, "empty label refused");
    is_int(gmail_labels_add(&s, "\\Inbox", 6), 0, "add \\Inbox");
    is_str(joined(&s), "\\Inbox|a|b", "sorted by bytes");
    ok(gmail_labels_has(&s, "a", 1) && !gmail_labels_has(&s, "c", 1), "has");
    ok(gmail_labels_remove(&s, "a") && !gmail_labels_remove(&s, "a"), "remove");
    set_of(&t, (const char *const[]){"b", "c", NULL});
    gmail_labels_init(&u);
    gmail_labels_minus(&u, &s, &t);
    is_str(joined(&u), "\\Inbox", "minus");
    gmail_labels_and(&u, &s, &t);
    is_str(joined(&u), "b", "and");
    gmail_labels_union(&u, &t);
    is_str(joined(&u), "b|c", "union");
    gmail_labels_minus(&u, &u, &t);
    is_int(u.n, 0, "minus in place");
    gmail_labels_copy(&u, &t);
    ok(gmail_labels_equal(&u, &t) && !gmail_labels_equal(&u, &s), "copy, equal");

    char *buf;
    size_t len;
    is_int(gmail_labels_encode(&s, &buf, &len), 0, "encode");
    struct gmail_labels d;
    gmail_labels_init(&d);
    is_int(gmail_labels_decode(buf, len, &d), 0, "decode");
    ok(gmail_labels_equal(&d, &s), "encode/decode round trip");
    is_int(gmail_labels_decode(buf, len - 1, &d), OIMAP_ESTATUS, "truncated record refused");
    is_int(gmail_labels_decode("\0\0", 2, &d), OIMAP_ESTATUS, "empty label in record refused");
    free(buf);
    gmail_labels_clear(&d);
    is_int(gmail_labels_encode(&d, &buf, &len), 0, "encode empty");
    is_int(len, 0, "empty set, empty record");
    free(buf);
    gmail_labels_clear(&s);
    gmail_labels_clear(&t);
    gmail_labels_clear(&u);

    /* bounded: a hostile header cannot make a set (and its cost) grow */
    gmail_labels_init(&s);
    int rc = 0;
    for (int i = 0; i < GMAIL_LABELS_MAX && rc == 0; i++) {
        char l[16];
        rc = gmail_labels_add(&s, l, (size_t)snprintf(l, sizeof l, "l%05d", i));
    }
    is_int(rc, 0, "%d labels", GMAIL_LABELS_MAX);
    is_int(gmail_labels_add(&s, "one more", 8), OIMAP_ETOOBIG, "one more refused");
    gmail_labels_clear(&s);
}

static void spell(const char *display, const char *wire)
{
    char *w = NULL, *d = NULL;
    is_int(gmail_label_wire(display, strlen(display), &w), 0, "wire of '%s'", display);
    is_str(w, wire, "wire of '%s'", display);
    is_int(gmail_label_display(wire, strlen(wire), &d), 0, "display of '%s'", wire);
    is_str(d, display, "display of '%s'", wire);
    free(w);
    free(d);
}

static void test_spellings(void)
{
    spell("Work", "Work");
    spell("\\Inbox", "\\Inbox");
    spell("été", "&AOk-t&AOk-");
    spell("éé", "&AOkA6Q-");
    spell("R&D", "R&-D");
    spell("Projets/Été 2024", "Projets/&AMk-t&AOk- 2024");
    /* offlineimap wrote wire forms into headers: taken as they are */
    char *w = NULL;
    is_int(gmail_label_wire("&AOkA6Q-", 8, &w), 0, "wire form read back");
    is_str(w, "&AOkA6Q-", "wire form kept");
    free(w);
    is_int(gmail_label_wire("\xff", 1, &w), OIMAP_ENAME, "invalid UTF-8 refused");
    /* a decoded form that would read back as another wire form */
    spell("W&-AOk-", "W&-AOk-");
    /* not valid modified UTF-7 from the server: shown as sent */
    char *d = NULL;
    is_int(gmail_label_display("a&b", 3, &d), 0, "display of invalid mUTF-7");
    is_str(d, "a&b", "shown as sent");
    free(d);
}

struct fetch_probe {
    struct gmail_labels labels;
    int rc, n;
};

static int on_resp(void *ctx, const struct imap_response *r)
{
    struct fetch_probe *p = ctx;
    struct imap_fetch f;
    if (r->data != IMAP_DATA_FETCH)
        return 0;
    p->n++;
    int rc = imap_fetch_decode(r, &f);
    if (rc == 0 && !(f.present & IMAP_FETCH_LABELS))
        rc = -1;
    if (rc == 0)
        rc = gmail_labels_from_fetch(f.labels, f.n_labels, &p->labels);
    p->rc = rc;
    return 0;
}

static void fetch_case(const char *line, const char *want, int want_rc)
{
    static const struct imap_parser_callbacks cbs = {on_resp, NULL, NULL, NULL};
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        struct imap_parser p;
        struct fetch_probe pr = {.rc = 99};
        gmail_labels_init(&pr.labels);
        imap_parser_init(&p, NULL, &cbs, &pr);
        int rc = 0;
        if (bytewise)
            for (size_t i = 0; line[i] && rc == 0; i++)
                rc = imap_parser_feed(&p, line + i, 1);
        else
            rc = imap_parser_feed(&p, line, strlen(line));
        is_int(rc, 0, "parse %s (%s)", want, bytewise ? "byte by byte" : "whole");
        is_int(pr.n, 1, "one FETCH");
        is_int(pr.rc, want_rc, "labels rc %s", want);
        if (want_rc == 0)
            is_str(joined(&pr.labels), want, "labels (%s)", bytewise ? "bytes" : "whole");
        gmail_labels_clear(&pr.labels);
        imap_parser_deinit(&p);
    }
}

static void test_fetch(void)
{
    fetch_case("* 1 FETCH (UID 7 X-GM-LABELS (\\Inbox \\Sent Important \"Muy Importante\"))\r\n",
               "Important|Muy Importante|\\Inbox|\\Sent", 0);
    fetch_case("* 2 FETCH (X-GM-LABELS () UID 8)\r\n", "", 0);
    fetch_case("* 3 FETCH (UID 9 X-GM-LABELS (\"a \\\"q\\\" b\" {5}\r\nx y z 2024))\r\n",
               "2024|a \"q\" b|x y z", 0);
    fetch_case("* 4 FETCH (UID 10 X-GM-LABELS (&AOkA6Q- \"\xc3\xa9\xc3\xa9\"))\r\n", "&AOkA6Q-", 0);
    fetch_case("* 5 FETCH (UID 11 X-GM-LABELS NIL)\r\n", "", 0);
    fetch_case("* 6 FETCH (UID 12 X-GM-LABELS (a (b)))\r\n", "", OIMAP_EPROTO);
}

static void value_case(const char *hdr, const char *value, const char *want)
{
    struct gmail_labels s;
    gmail_labels_init(&s);
    size_t bad = 0;
    is_int(gmail_labels_parse_value(hdr, value, strlen(value), &s, &bad), 0, "parse '%s'",
           oneline(value));
    is_str(joined(&s), want, "%s: '%s'", hdr, oneline(value));
    gmail_labels_clear(&s);
}

static void test_values(void)
{
    ok(gmail_labels_separator("X-Keywords") == ',', "X-Keywords: comma");
    ok(gmail_labels_separator("x-label") == ' ' && gmail_labels_separator("Keywords") == ' ',
       "X-Label, Keywords: space");
    value_case("X-Keywords", " a, b ,c,,\\Inbox", "\\Inbox|a|b|c");
    value_case("X-Keywords", "two words,x", "two words|x");
    value_case("X-Keywords", "a,\n b,\r\n\tc", "a|b|c");
    value_case("X-Label", "a b\tc", "a|b|c");
    value_case("X-Keywords", "été,R&D", "&AOk-t&AOk-|R&-D");
    value_case("X-Keywords", "", "");

    struct gmail_labels s;
    const char *const in[] = {"b", "\\Inbox", "&AOkA6Q-", "a,b", "two words", NULL};
    set_of(&s, in);
    char *v = NULL;
    size_t bad = 0;
    is_int(gmail_labels_format_value("X-Keywords", &s, &v, &bad), 0, "format");
    is_str(v, "\\Inbox,b,two words,éé", "sorted by display, comma-joined");
    is_int(bad, 1, "a label with a comma cannot be written");
    free(v);
    bad = 0;
    is_int(gmail_labels_format_value("X-Label", &s, &v, &bad), 0, "format space");
    is_str(v, "\\Inbox a,b b éé", "space-joined");
    is_int(bad, 1, "a label with a space cannot be written there");
    free(v);
    gmail_labels_clear(&s);
    gmail_labels_init(&s);
    is_int(gmail_labels_format_value("X-Keywords", &s, &v, NULL), 0, "format empty");
    is_str(v, "", "empty value");
    free(v);
}

static void merge_case(const char *const *base, const char *const *far, const char *const *near,
                       const char *want, const char *what)
{
    struct gmail_labels b, f, n, out;
    if (base)
        set_of(&b, base);
    set_of(&f, far);
    set_of(&n, near);
    gmail_labels_init(&out);
    is_int(gmail_labels_merge(base ? &b : NULL, &f, &n, &out), 0, "merge %s", what);
    is_str(joined(&out), want, "%s", what);
    if (base)
        gmail_labels_clear(&b);
    gmail_labels_clear(&f);
    gmail_labels_clear(&n);
    gmail_labels_clear(&out);
}

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE ((const char *const[]){NULL})

static void test_merge(void)
{
    merge_case(L("a", "b"), L("a", "b"), L("a", "b"), "a|b", "unchanged");
    merge_case(L("a", "b"), L("a", "b", "c"), L("a", "b"), "a|b|c", "added remotely");
    merge_case(L("a", "b"), L("a"), L("a", "b"), "a", "removed remotely");
    merge_case(L("a", "b"), L("a", "b"), L("b", "d"), "b|d", "changed locally");
    merge_case(L("a", "b"), L("b", "c"), L("a", "d"), "c|d", "both sides, each label merged");
    merge_case(L("a"), L("a", "x"), L("a", "x"), "a|x", "same change on both sides");
    merge_case(NULL, L("a"), L("b"), "a|b", "nothing recorded: union");
    merge_case(NONE, NONE, L("b"), "b", "empty base");
}

static void hdr_end_case(const char *msg, size_t want_end, bool want_done)
{
    size_t end = 12345;
    bool done = gmail_msg_header_end(msg, strlen(msg), &end);
    is_int(end, want_end, "header end of %s", oneline(msg));
    is_int(done, want_done, "blank line seen in %s", oneline(msg));
}

static void test_header_end(void)
{
    hdr_end_case("A: 1\nB: 2\n\nbody\n", 10, true);
    hdr_end_case("A: 1\r\nB: 2\r\n\r\nbody\r\n", 12, true);
    hdr_end_case("\nbody\n", 0, true);
    hdr_end_case("A: 1\nB: 2", 9, false);
    hdr_end_case("A: 1\nB: 2\n", 10, false);
}

static void read_case(const char *hdr, int want_n, const char *want)
{
    struct gmail_labels s;
    gmail_labels_init(&s);
    is_int(gmail_msg_read_labels(hdr, strlen(hdr), "X-Keywords", &s, NULL), want_n, "fields in %s",
           oneline(hdr));
    is_str(joined(&s), want, "labels read");
    gmail_labels_clear(&s);
}

static void set_case(const char *hdr, const char *value, const char *want)
{
    char *out = NULL;
    size_t len = 0;
    is_int(gmail_msg_set_header(hdr, strlen(hdr), "X-Keywords", value, &out, &len), 0, "set on %s",
           oneline(hdr));
    is_str(out, want, "set result");
    is_int(len, strlen(want), "set length");
    free(out);
}

static void test_headers(void)
{
    read_case("Subject: x\nX-Keywords: a,b\nTo: y\n", 1, "a|b");
    read_case("Subject: x\nx-keywords : a,\n b\nX-KEYWORDS: c\n", 2, "a|b|c");
    read_case("Subject: x\n X-Keywords: a\nX-Keywords-Not: b\n", 0, "");
    read_case("X-Keywords:\n", 1, "");

    set_case("Subject: x\nX-Keywords: old,\n more\nTo: y\n", "a,b",
             "Subject: x\nTo: y\nX-Keywords: a,b\n");
    set_case("Subject: x\r\nX-Keywords: old\r\n", "a", "Subject: x\r\nX-Keywords: a\r\n");
    set_case("Subject: x\nX-Keywords: old\n", NULL, "Subject: x\n");
    set_case("", "a", "X-Keywords: a\n");
    set_case("Subject: x", "a", "Subject: x\nX-Keywords: a\n");
    set_case("From someone\nSubject: x\n", "", "From someone\nSubject: x\nX-Keywords: \n");

    /* long values are folded after a comma, and read back the same */
    char value[3000], *out = NULL;
    size_t o = 0, len;
    struct gmail_labels s, back;
    gmail_labels_init(&s);
    gmail_labels_init(&back);
    for (int i = 0; i < 150; i++) {
        char l[32];
        int n = snprintf(l, sizeof l, "label-number-%03d", i);
        gmail_labels_add(&s, l, (size_t)n);
        o += (size_t)snprintf(value + o, sizeof value - o, "%s%s", i ? "," : "", l);
    }
    is_int(gmail_msg_set_header("Subject: x\n", 11, "X-Keywords", value, &out, &len), 0,
           "set long");
    size_t longest = 0, cur = 0;
    for (size_t i = 0; i < len; i++) {
        if (out[i] == '\n') {
            longest = cur > longest ? cur : longest;
            cur = 0;
        } else {
            cur++;
        }
    }
    ok(longest <= GMAIL_LABELS_LINE_MAX, "no line over %d (longest %zu)", GMAIL_LABELS_LINE_MAX,
       longest);
    ok(strstr(out, ",\n label-number-") != NULL, "folded after a comma");
    is_int(gmail_msg_read_labels(out, len, "X-Keywords", &back, NULL), 1, "read folded");
    ok(gmail_labels_equal(&s, &back), "folded value reads back the same labels");
    free(out);
    gmail_labels_clear(&s);
    gmail_labels_clear(&back);
}

/* ---- the status store's labels table ---- */

struct rec_probe {
    uint32_t uids[8];
    int64_t mtimes[8];
    char data[8][64];
    int n;
};

static int on_rec(const struct status_labels *l, void *arg)
{
    struct rec_probe *p = arg;
    if (p->n < 8) {
        p->uids[p->n] = l->remote_uid;
        p->mtimes[p->n] = l->mtime;
        snprintf(p->data[p->n], sizeof p->data[0], "%.*s", (int)l->len, (const char *)l->data);
        p->n++;
    }
    return 0;
}

static void test_status_labels(void)
{
    char meta[] = "/tmp/oimap-test-labels-XXXXXX", cmd[128];
    if (!mkdtemp(meta)) {
        ok(0, "mkdtemp");
        return;
    }
    struct status *st;
    struct status_txn *t;
    struct status_folder f;
    is_int(status_open(meta, "acc", false, &st), 0, "open");
    status_txn_begin(st, &t);
    status_txn_folder_get_or_create(t, "INBOX", "INBOX", &f);
    struct status_msg m = {.remote_uid = 5, .local_uid = 5};
    status_txn_msg_put(t, f.id, &m);
    struct status_labels l1 = {
        .remote_uid = 5, .mtime = 1234567890123456789, .data = "ab", .len = 2};
    struct status_labels l2 = {.remote_uid = 3, .mtime = -1, .data = "", .len = 0};
    is_int(status_txn_labels_put(t, f.id, &l1), 0, "put");
    is_int(status_txn_labels_put(t, f.id, &l2), 0, "put empty");
    is_int(status_txn_commit(&t), 0, "commit");
    struct rec_probe p = {0};
    is_int(status_labels_foreach(st, f.id, on_rec, &p), 0, "foreach");
    is_int(p.n, 2, "two records");
    ok(p.uids[0] == 3 && p.uids[1] == 5, "in uid order");
    ok(p.mtimes[1] == 1234567890123456789 && p.mtimes[0] == -1, "mtimes kept");
    is_str(p.data[1], "ab", "data kept");
    status_txn_begin(st, &t);
    is_int(status_txn_labels_del(t, f.id, 3), 0, "del");
    is_int(status_txn_labels_del(t, f.id, 3), -ENOENT, "del again: absent");
    is_int(status_txn_commit(&t), 0, "commit");
    memset(&p, 0, sizeof p);
    status_labels_foreach(st, f.id, on_rec, &p);
    is_int(p.n, 1, "one left");
    status_close(&st);

    /* A store written before the table existed: a read-only open sees its
     * messages and no labels (not an empty store). */
    char env[256];
    snprintf(env, sizeof env, "%s/oimap/Account-acc/status.lmdb", meta);
    MDB_env *e;
    MDB_txn *x;
    MDB_dbi d;
    mdb_env_create(&e);
    mdb_env_set_maxdbs(e, 16);
    int rc = mdb_env_open(e, env, 0, 0600);
    if (rc == 0)
        rc = mdb_txn_begin(e, NULL, 0, &x);
    if (rc == 0 && (rc = mdb_dbi_open(x, "labels", 0, &d)) == 0)
        rc = mdb_drop(x, d, 1);
    if (rc == 0)
        rc = mdb_txn_commit(x);
    mdb_env_close(e);
    is_int(rc, 0, "labels table dropped");
    is_int(status_open(meta, "acc", true, &st), 0, "read-only open");
    memset(&p, 0, sizeof p);
    is_int(status_labels_foreach(st, f.id, on_rec, &p), 0, "foreach without the table");
    is_int(p.n, 0, "no labels");
    struct status_msg back;
    is_int(status_msg_get(st, f.id, 5, &back), 0, "messages still there");
    status_close(&st);
    is_int(status_open(meta, "acc", false, &st), 0, "writable open creates the table");
    status_txn_begin(st, &t);
    is_int(status_txn_labels_put(t, f.id, &l1), 0, "put");
    is_int(status_txn_folder_del(t, f.id), 0, "folder deleted");
    is_int(status_txn_commit(&t), 0, "commit");
    memset(&p, 0, sizeof p);
    status_labels_foreach(st, f.id, on_rec, &p);
    is_int(p.n, 0, "its labels went with it");
    status_close(&st);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", meta);
    if (system(cmd) != 0)
        ok(0, "cleanup");
}

int main(void)
{
    test_sets();
    test_spellings();
    test_fetch();
    test_values();
    test_merge();
    test_header_end();
    test_headers();
    test_status_labels();
    return tap_done();
}
