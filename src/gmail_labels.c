/* gmail_labels.c - Gmail label sets, their two spellings, the labels header
 * of a message and the three-way merge (see gmail_labels.h). */
#include "gmail_labels.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "imap_parse.h"
#include "imap_utf7.h"
#include "strbuf.h"

/* ---- sets ---------------------------------------------------------------- */

void gmail_labels_init(struct gmail_labels *s)
{
    memset(s, 0, sizeof *s);
}

void gmail_labels_clear(struct gmail_labels *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* Compare a stored label with label[0..len) as byte strings. */
static int cmp_label(const char *stored, const char *label, size_t len)
{
    size_t sl = strlen(stored);
    int c = memcmp(stored, label, sl < len ? sl : len);
    if (c)
        return c;
    return sl < len ? -1 : sl > len;
}

/* Index of label, or where it would go (*found_r says which). */
static size_t find(const struct gmail_labels *s, const char *label, size_t len, bool *found_r)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_label(s->v[mid], label, len);
        if (c == 0) {
            *found_r = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found_r = false;
    return lo;
}

int gmail_labels_add(struct gmail_labels *s, const char *label, size_t len)
{
    if (!len || memchr(label, 0, len))
        return OIMAP_ENAME;
    bool found;
    size_t at = find(s, label, len, &found);
    if (found)
        return 1;
    if (s->n >= GMAIL_LABELS_MAX)
        return OIMAP_ETOOBIG; /* keeps a hostile header from costing n^2 */
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    char *copy = strndup(label, len);
    if (!copy)
        return -ENOMEM;
    memmove(s->v + at + 1, s->v + at, (s->n - at) * sizeof *s->v);
    s->v[at] = copy;
    s->n++;
    return 0;
}

bool gmail_labels_has(const struct gmail_labels *s, const char *label, size_t len)
{
    bool found;
    find(s, label, len, &found);
    return found;
}

bool gmail_labels_remove(struct gmail_labels *s, const char *label)
{
    bool found;
    size_t at = find(s, label, strlen(label), &found);
    if (!found)
        return false;
    free(s->v[at]);
    memmove(s->v + at, s->v + at + 1, (s->n - at - 1) * sizeof *s->v);
    s->n--;
    return true;
}

bool gmail_labels_equal(const struct gmail_labels *a, const struct gmail_labels *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0)
            return false;
    return true;
}

int gmail_labels_union(struct gmail_labels *dst, const struct gmail_labels *src)
{
    for (size_t i = 0; i < src->n; i++) {
        int rc = gmail_labels_add(dst, src->v[i], strlen(src->v[i]));
        if (rc < 0)
            return rc;
    }
    return 0;
}

int gmail_labels_copy(struct gmail_labels *dst, const struct gmail_labels *src)
{
    gmail_labels_clear(dst);
    return gmail_labels_union(dst, src);
}

/* Build into a fresh set, then replace dst: dst may be one of the inputs. */
static int filter_into(struct gmail_labels *dst, const struct gmail_labels *a,
                       const struct gmail_labels *b, bool keep_if_in_b)
{
    struct gmail_labels out;
    gmail_labels_init(&out);
    for (size_t i = 0; i < a->n; i++) {
        if (gmail_labels_has(b, a->v[i], strlen(a->v[i])) != keep_if_in_b)
            continue;
        int rc = gmail_labels_add(&out, a->v[i], strlen(a->v[i]));
        if (rc < 0) {
            gmail_labels_clear(&out);
            return rc;
        }
    }
    gmail_labels_clear(dst);
    *dst = out;
    return 0;
}

int gmail_labels_minus(struct gmail_labels *dst, const struct gmail_labels *a,
                       const struct gmail_labels *b)
{
    return filter_into(dst, a, b, false);
}

int gmail_labels_and(struct gmail_labels *dst, const struct gmail_labels *a,
                     const struct gmail_labels *b)
{
    return filter_into(dst, a, b, true);
}

/* ---- the two spellings ------------------------------------------------------ */

static bool all_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

/* Whether an ASCII string with '&' is valid modified UTF-7 (then
 * gmail_label_wire() takes it as a wire form).  -ENOMEM or 0/1. */
static int is_wire_form(const char *s, size_t len)
{
    if (!all_ascii(s, len) || !memchr(s, '&', len))
        return 0;
    char *dec = NULL;
    int rc = imap_utf7_decode(s, len, &dec);
    free(dec);
    return rc == -ENOMEM ? rc : rc == 0;
}

int gmail_label_display(const char *wire, size_t len, char **out_r)
{
    *out_r = NULL;
    if (memchr(wire, '&', len)) {
        char *dec = NULL;
        int rc = imap_utf7_decode(wire, len, &dec);
        if (rc == -ENOMEM)
            return rc;
        /* Decoded, unless that would read back as another wire form
         * ("W&-AOk-" shows as itself, not as "W&AOk-", which is "W\u00e9"). */
        int again = rc == 0 ? is_wire_form(dec, strlen(dec)) : 0;
        if (again < 0) {
            free(dec);
            return again;
        }
        if (rc == 0 && !again) {
            *out_r = dec;
            return 0;
        }
        free(dec);
        /* Not valid modified UTF-7, or ambiguous: shown as Gmail sent it. */
    }
    *out_r = strndup(wire, len);
    return *out_r ? 0 : -ENOMEM;
}

int gmail_label_wire(const char *display, size_t len, char **out_r)
{
    *out_r = NULL;
    if (!len || memchr(display, 0, len))
        return OIMAP_ENAME;
    if (all_ascii(display, len)) {
        /* Already wire form (offlineimap writes labels undecoded)? */
        int wire = memchr(display, '&', len) ? is_wire_form(display, len) : 1;
        if (wire < 0)
            return wire;
        if (wire) {
            *out_r = strndup(display, len);
            return *out_r ? 0 : -ENOMEM;
        }
    }
    return imap_utf7_encode(display, len, out_r);
}

/* ---- FETCH ----------------------------------------------------------------------- */

int gmail_labels_from_fetch(const struct imap_token *first, unsigned n, struct gmail_labels *out)
{
    const struct imap_token *t = first;
    for (unsigned i = 0; i < n && t; i++, t = imap_tok_next(t)) {
        if (t->kind == IMAP_TOK_NIL)
            continue;
        if (!imap_tok_is_string(t) || !t->str)
            return OIMAP_EPROTO;
        if (!t->len)
            continue;
        int rc;
        if (all_ascii(t->str, t->len)) {
            rc = gmail_labels_add(out, t->str, t->len);
        } else {
            /* UTF-8 from a server with UTF8=ACCEPT: keep the wire form. */
            char *w;
            rc = gmail_label_wire(t->str, t->len, &w);
            if (rc == 0) {
                rc = gmail_labels_add(out, w, strlen(w));
                free(w);
            }
        }
        if (rc < 0 && rc != OIMAP_ENAME)
            return rc;
    }
    return 0;
}

/* ---- the store record -------------------------------------------------------------- */

int gmail_labels_encode(const struct gmail_labels *s, char **buf_r, size_t *len_r)
{
    size_t len = 0;
    *buf_r = NULL;
    *len_r = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t l = strlen(s->v[i]);
        if (l > 0xffff)
            return OIMAP_ENAME;
        len += 2 + l;
    }
    char *buf = malloc(len ? len : 1);
    if (!buf)
        return -ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t l = strlen(s->v[i]);
        buf[o] = (char)(l >> 8);
        buf[o + 1] = (char)(l & 0xff);
        memcpy(buf + o + 2, s->v[i], l);
        o += 2 + l;
    }
    *buf_r = buf;
    *len_r = len;
    return 0;
}

int gmail_labels_decode(const char *buf, size_t len, struct gmail_labels *out)
{
    size_t o = 0;
    while (o < len) {
        if (len - o < 2)
            return OIMAP_ESTATUS;
        size_t l = (size_t)(unsigned char)buf[o] << 8 | (unsigned char)buf[o + 1];
        o += 2;
        if (l == 0 || l > len - o)
            return OIMAP_ESTATUS;
        int rc = gmail_labels_add(out, buf + o, l);
        if (rc < 0)
            return rc == OIMAP_ENAME ? OIMAP_ESTATUS : rc;
        o += l;
    }
    return 0;
}

/* ---- header values ------------------------------------------------------------------ */

char gmail_labels_separator(const char *header_name)
{
    /* offlineimap: X-Label and Keywords are space-separated by convention,
     * every other header (X-Keywords first) comma-separated. */
    if (header_name &&
        (strcasecmp(header_name, "X-Label") == 0 || strcasecmp(header_name, "Keywords") == 0))
        return ' ';
    return ',';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int gmail_labels_parse_value(const char *header_name, const char *value, size_t len,
                             struct gmail_labels *out, size_t *n_bad_r)
{
    char sep = gmail_labels_separator(header_name);
    size_t i = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && (sep == ' ' ? !is_space(value[e]) : value[e] != sep))
            e++;
        size_t a = i, b = e;
        while (a < b && is_space(value[a]))
            a++;
        while (b > a && is_space(value[b - 1]))
            b--;
        if (b > a) {
            char *w;
            int rc = gmail_label_wire(value + a, b - a, &w);
            if (rc == 0) {
                rc = gmail_labels_add(out, w, strlen(w));
                free(w);
            }
            if (rc == OIMAP_ENAME) {
                if (n_bad_r)
                    (*n_bad_r)++;
            } else if (rc < 0) {
                return rc;
            }
        }
        i = e + 1;
    }
    return 0;
}

static bool display_ok(const char *d, char sep)
{
    if (!*d)
        return false;
    for (const unsigned char *p = (const unsigned char *)d; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == (unsigned char)sep)
            return false;
        if (sep == ' ' && *p == '\t')
            return false;
    }
    /* Surrounding spaces would be stripped when read back. */
    return d[0] != ' ' && d[strlen(d) - 1] != ' ';
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int gmail_labels_format_value(const char *header_name, const struct gmail_labels *s, char **value_r,
                              size_t *n_bad_r)
{
    char sep = gmail_labels_separator(header_name);
    char **d = calloc(s->n ? s->n : 1, sizeof *d);
    size_t nd = 0, total = 1;
    int rc = 0;
    *value_r = NULL;
    if (!d)
        return -ENOMEM;
    for (size_t i = 0; i < s->n && rc == 0; i++) {
        char *disp;
        rc = gmail_label_display(s->v[i], strlen(s->v[i]), &disp);
        if (rc < 0)
            break;
        if (!display_ok(disp, sep)) {
            free(disp);
            if (n_bad_r)
                (*n_bad_r)++;
            continue;
        }
        total += strlen(disp) + 1;
        d[nd++] = disp;
    }
    char *v = rc == 0 ? malloc(total) : NULL;
    if (rc == 0 && !v)
        rc = -ENOMEM;
    if (rc == 0) {
        qsort(d, nd, sizeof *d, cmp_str);
        size_t o = 0;
        for (size_t i = 0; i < nd; i++) {
            if (i)
                v[o++] = sep;
            size_t l = strlen(d[i]);
            memcpy(v + o, d[i], l);
            o += l;
        }
        v[o] = '\0';
        *value_r = v;
    }
    for (size_t i = 0; i < nd; i++)
        free(d[i]);
    free(d);
    return rc;
}

/* ---- merge ------------------------------------------------------------------------ */

static int merge_one(const struct gmail_labels *base, const struct gmail_labels *far,
                     const struct gmail_labels *near, const char *l, struct gmail_labels *out)
{
    size_t len = strlen(l);
    bool b = gmail_labels_has(base, l, len);
    bool f = gmail_labels_has(far, l, len);
    bool n = gmail_labels_has(near, l, len);
    bool keep = f != b ? f : n != b ? n : b;
    if (!keep)
        return 0;
    int rc = gmail_labels_add(out, l, len);
    return rc < 0 ? rc : 0;
}

int gmail_labels_merge(const struct gmail_labels *base, const struct gmail_labels *far,
                       const struct gmail_labels *near, struct gmail_labels *out)
{
    struct gmail_labels r;
    gmail_labels_init(&r);
    int rc = 0;
    if (!base) {
        rc = gmail_labels_union(&r, far);
        if (rc == 0)
            rc = gmail_labels_union(&r, near);
    } else {
        const struct gmail_labels *all[3] = {base, far, near};
        for (int k = 0; k < 3 && rc == 0; k++)
            for (size_t i = 0; i < all[k]->n && rc == 0; i++)
                rc = merge_one(base, far, near, all[k]->v[i], &r);
    }
    if (rc < 0) {
        gmail_labels_clear(&r);
        return rc;
    }
    gmail_labels_clear(out);
    *out = r;
    return 0;
}

/* ---- message headers ---------------------------------------------------------------- */

/* The end of the line starting at p (just after its '\n', or len). */
static size_t line_end(const char *msg, size_t len, size_t p)
{
    const char *nl = memchr(msg + p, '\n', len - p);
    return nl ? (size_t)(nl - msg) + 1 : len;
}

static bool is_empty_line(const char *msg, size_t p, size_t e)
{
    return (e - p == 1 && msg[p] == '\n') || (e - p == 2 && msg[p] == '\r' && msg[p + 1] == '\n');
}

bool gmail_msg_header_end(const char *msg, size_t len, size_t *hdr_end_r)
{
    size_t p = 0;
    while (p < len) {
        size_t e = line_end(msg, len, p);
        if (msg[e - 1] != '\n')
            break; /* a partial last line */
        if (is_empty_line(msg, p, e)) {
            *hdr_end_r = p;
            return true;
        }
        p = e;
    }
    *hdr_end_r = len;
    return false;
}

/* One header field: [start, end) including its continuation lines and line
 * ends; the value starts at val. */
struct field {
    size_t start, end, val;
    bool named; /* has a "name:" (other lines are kept as they are) */
    const char *name;
    size_t name_len;
};

static bool next_field(const char *h, size_t len, size_t *pos, struct field *f)
{
    size_t p = *pos;
    if (p >= len)
        return false;
    size_t e = line_end(h, len, p);
    memset(f, 0, sizeof *f);
    f->start = p;
    const char *colon = memchr(h + p, ':', e - p);
    if (colon && h[p] != ' ' && h[p] != '\t') {
        size_t nl = (size_t)(colon - (h + p));
        while (nl && (h[p + nl - 1] == ' ' || h[p + nl - 1] == '\t'))
            nl--;
        f->named = nl > 0;
        f->name = h + p;
        f->name_len = nl;
        f->val = (size_t)(colon - h) + 1;
    } else {
        f->val = p;
    }
    while (e < len && (h[e] == ' ' || h[e] == '\t'))
        e = line_end(h, len, e);
    f->end = e;
    *pos = e;
    return true;
}

static bool field_is(const struct field *f, const char *name)
{
    return f->named && strlen(name) == f->name_len && strncasecmp(f->name, name, f->name_len) == 0;
}

int gmail_msg_read_labels(const char *hdr, size_t hdr_len, const char *name,
                          struct gmail_labels *out, size_t *n_bad_r)
{
    size_t pos = 0;
    struct field f;
    int n = 0;
    while (next_field(hdr, hdr_len, &pos, &f)) {
        if (!field_is(&f, name))
            continue;
        n++;
        int rc = gmail_labels_parse_value(name, hdr + f.val, f.end - f.val, out, n_bad_r);
        if (rc < 0)
            return rc;
    }
    return n;
}

/* "name: value" folded before a label so that no line exceeds the limit
 * (a single label longer than that stays whole: nothing else is possible).
 * The continuation line's leading space is the separator of a
 * space-separated header, and is dropped with the rest of the white space
 * around a comma-separated label when read back. */
static void put_field(struct strbuf *b, const char *name, const char *value, const char *eol)
{
    char sep = gmail_labels_separator(name);
    size_t line = strlen(name) + 2;
    bool first = true;
    strbuf_add(b, name, strlen(name));
    strbuf_add(b, ": ", 2);
    for (const char *p = value; *p;) {
        const char *s = strchr(p, sep);
        size_t item = s ? (size_t)(s - p) : strlen(p);
        size_t tail = sep == ',' && s ? 1 : 0; /* the comma after it */
        size_t lead = sep == ' ' && !first ? 1 : 0;
        if (!first && line + lead + item + tail > GMAIL_LABELS_LINE_MAX) {
            strbuf_add(b, eol, strlen(eol));
            strbuf_add(b, " ", 1);
            line = 1;
        } else if (lead) {
            strbuf_add(b, " ", 1);
            line++;
        }
        strbuf_add(b, p, item);
        strbuf_add(b, ",", tail);
        line += item + tail;
        first = false;
        if (!s)
            break;
        p = s + 1;
    }
    strbuf_add(b, eol, strlen(eol));
}

int gmail_msg_set_header(const char *hdr, size_t hdr_len, const char *name, const char *value,
                         char **out_r, size_t *out_len_r)
{
    struct strbuf b = {0};
    size_t first = line_end(hdr, hdr_len, 0);
    const char *eol =
        first >= 2 && hdr[first - 1] == '\n' && hdr[first - 2] == '\r' ? "\r\n" : "\n";
    size_t pos = 0;
    struct field f;
    *out_r = NULL;
    *out_len_r = 0;
    while (next_field(hdr, hdr_len, &pos, &f))
        if (!field_is(&f, name))
            strbuf_add(&b, hdr + f.start, f.end - f.start);
    if (b.len && b.p[b.len - 1] != '\n')
        strbuf_add(&b, eol, strlen(eol)); /* a last line without its line end */
    if (value)
        put_field(&b, name, value, eol);
    strbuf_add(&b, "", 0);
    if (b.err) {
        free(b.p);
        return b.err;
    }
    *out_r = b.p;
    *out_len_r = b.len;
    return 0;
}
