/* pyeval_ops.c - evaluation of the tree built by pyeval.c: Python's operators,
 * builtins, str/dict/match methods and the re module, with Python's rules
 * (truthiness, and/or returning an operand, floor division, slices with
 * negative indices, re.sub's handling of empty matches and templates).
 *
 * Every string and list is allocated from the evaluation arena and bounded
 * (PE_MAX_STR, PE_MAX_ITEMS); every node visited and every item scanned
 * costs a step from PE_MAX_STEPS.  Errors are Python's exception names and
 * messages, recorded in the struct pyeval for the caller to log.
 */
#include "pyeval_int.h"

#include "err.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pe_rt_msg(struct pe_ctx *c, const char *fmt, ...)
{
    struct pyeval *e = c->e;
    if (e->errmsg[0]) /* keep the first, innermost error */
        return;
    int n = snprintf(e->errmsg, sizeof e->errmsg, "%s: ", e->where);
    if (n < 0 || (size_t)n >= sizeof e->errmsg)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->errmsg + n, sizeof e->errmsg - (size_t)n, fmt, ap);
    va_end(ap);
}

void pe_oom_msg(struct pe_ctx *c)
{
    if (c->ar->over)
        pe_rt_msg(c, "MemoryError: the values built exceed the evaluator's limit");
    else
        pe_rt_msg(c, "MemoryError");
}

int pe_steps(struct pe_ctx *c, size_t n)
{
    c->steps += (long)(n / 8 + 1);
    if (c->steps > PE_MAX_STEPS)
        return pe_rt_err(c, "the expression needs more than %ld evaluation steps", PE_MAX_STEPS);
    return 0;
}

const char *pyval_type_name(enum pyval_type t)
{
    static const char *const names[] = {"NoneType", "bool", "int",      "str",        "list",
                                        "tuple",    "dict", "re.Match", "re.Pattern", "function"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "object";
}

int pe_alloc_str(struct pe_ctx *c, size_t len, char **p_r)
{
    if (len > PE_MAX_STR)
        return pe_rt_err(c, "MemoryError: a string of %zu bytes exceeds the evaluator's limit",
                         len);
    char *p = pe_arena_alloc(c->ar, len + 1);
    if (!p)
        return pe_oom(c);
    p[len] = '\0';
    *p_r = p;
    return pe_steps(c, len);
}

int pe_alloc_vals(struct pe_ctx *c, size_t n, struct pyval **v_r)
{
    if (n > PE_MAX_ITEMS)
        return pe_rt_err(c, "MemoryError: a list of %zu items exceeds the evaluator's limit", n);
    struct pyval *v = pe_arena_alloc(c->ar, (n ? n : 1) * sizeof *v);
    if (!v)
        return pe_oom(c);
    *v_r = v;
    return pe_steps(c, n * 8);
}

int pe_mk_str(struct pe_ctx *c, const char *s, size_t len, struct pyval *out)
{
    char *p;
    int r = pe_alloc_str(c, len, &p);
    if (r < 0)
        return r;
    memcpy(p, s, len);
    *out = pyval_strn(p, len);
    return 0;
}

struct pyval pe_mk_bool(bool b)
{
    struct pyval v = {.type = PYV_BOOL};
    v.u.b = b;
    return v;
}

struct pyval pe_mk_seq(enum pyval_type t, const struct pyval *items, size_t n)
{
    struct pyval v = {.type = t};
    v.u.seq.v = items;
    v.u.seq.n = n;
    return v;
}

bool pe_as_int(const struct pyval *v, int64_t *i)
{
    if (v->type == PYV_INT)
        *i = v->u.i;
    else if (v->type == PYV_BOOL)
        *i = v->u.b;
    else
        return false;
    return true;
}

bool pe_is_seq(const struct pyval *v)
{
    return v->type == PYV_LIST || v->type == PYV_TUPLE;
}

/* --- code points ----------------------------------------------------------------------------- */

int pe_cp_index(struct pe_ctx *c, const char *s, size_t len, struct pe_cpidx *x)
{
    size_t k = 0;
    while (k < len && !((unsigned char)s[k] & 0x80))
        k++;
    if (k == len) {
        x->count = len;
        x->off = NULL;
        return 0;
    }
    size_t n = k;
    for (size_t i = k; i < len; n++) {
        uint32_t cp;
        i += pyeval_u8_decode(s, len, i, &cp);
    }
    size_t *off = pe_arena_alloc(c->ar, (n + 1) * sizeof *off);
    if (!off)
        return pe_oom(c);
    size_t i = 0;
    for (size_t j = 0; j < n; j++) {
        off[j] = i;
        uint32_t cp;
        i += pyeval_u8_decode(s, len, i, &cp);
    }
    off[n] = len;
    x->count = n;
    x->off = off;
    return pe_steps(c, len);
}

size_t pe_cpoff(const struct pe_cpidx *x, size_t i)
{
    return x->off ? x->off[i] : i;
}

size_t pe_cp_count(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; n++) {
        if (!((unsigned char)s[i] & 0x80)) {
            i++;
            continue;
        }
        uint32_t cp;
        i += pyeval_u8_decode(s, len, i, &cp);
    }
    return n;
}

/* --- equality, order, repr ------------------------------------------------------------------- */

static ssize_t dict_find(const struct pyval *d, const struct pyval *key)
{
    for (size_t k = d->u.dict.n; k-- > 0;)
        if (pyval_equal(&d->u.dict.k[k], key))
            return (ssize_t)k;
    return -1;
}

bool pyval_equal(const struct pyval *a, const struct pyval *b)
{
    int64_t x, y;
    if (pe_as_int(a, &x) && pe_as_int(b, &y))
        return x == y;
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case PYV_NONE:
    case PYV_LAMBDA:
        return true;
    case PYV_STR:
        return a->u.str.len == b->u.str.len && memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
    case PYV_LIST:
    case PYV_TUPLE:
        if (a->u.seq.n != b->u.seq.n)
            return false;
        for (size_t k = 0; k < a->u.seq.n; k++)
            if (!pyval_equal(&a->u.seq.v[k], &b->u.seq.v[k]))
                return false;
        return true;
    case PYV_DICT:
        if (a->u.dict.n != b->u.dict.n)
            return false;
        for (size_t k = 0; k < a->u.dict.n; k++) {
            ssize_t j = dict_find(b, &a->u.dict.k[k]);
            if (j < 0 || !pyval_equal(&a->u.dict.v[k], &b->u.dict.v[j]))
                return false;
        }
        return true;
    case PYV_MATCH:
        return a->u.match == b->u.match;
    case PYV_RE:
        return a->u.re == b->u.re;
    default:
        return false;
    }
}

int pyval_compare(const struct pyval *a, const struct pyval *b, int *cmp_r)
{
    int64_t x, y;
    if (pe_as_int(a, &x) && pe_as_int(b, &y)) {
        *cmp_r = (x > y) - (x < y);
        return 0;
    }
    if (a->type == PYV_STR && b->type == PYV_STR) {
        /* UTF-8 byte order is code point order. */
        size_t n = a->u.str.len < b->u.str.len ? a->u.str.len : b->u.str.len;
        int r = memcmp(a->u.str.s, b->u.str.s, n);
        if (r == 0)
            r = (a->u.str.len > b->u.str.len) - (a->u.str.len < b->u.str.len);
        *cmp_r = (r > 0) - (r < 0);
        return 0;
    }
    if (pe_is_seq(a) && a->type == b->type) {
        size_t n = a->u.seq.n < b->u.seq.n ? a->u.seq.n : b->u.seq.n;
        for (size_t k = 0; k < n; k++)
            if (!pyval_equal(&a->u.seq.v[k], &b->u.seq.v[k]))
                return pyval_compare(&a->u.seq.v[k], &b->u.seq.v[k], cmp_r);
        *cmp_r = (a->u.seq.n > b->u.seq.n) - (a->u.seq.n < b->u.seq.n);
        return 0;
    }
    return OIMAP_ECONFIG;
}

bool pyval_truthy(const struct pyval *v)
{
    switch (v->type) {
    case PYV_NONE:
        return false;
    case PYV_BOOL:
        return v->u.b;
    case PYV_INT:
        return v->u.i != 0;
    case PYV_STR:
        return v->u.str.len != 0;
    case PYV_LIST:
    case PYV_TUPLE:
        return v->u.seq.n != 0;
    case PYV_DICT:
        return v->u.dict.n != 0;
    default:
        return true;
    }
}

struct wr {
    char *buf;
    size_t cap, n;
};

static void w_add(struct wr *w, const char *s, size_t n)
{
    for (size_t k = 0; k < n; k++, w->n++)
        if (w->n + 1 < w->cap)
            w->buf[w->n] = s[k];
}

static void w_str(struct wr *w, const char *s)
{
    w_add(w, s, strlen(s));
}

static void repr_str(struct wr *w, const char *s, size_t len)
{
    char q = memchr(s, '\'', len) && !memchr(s, '"', len) ? '"' : '\'';
    w_add(w, &q, 1);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = pyeval_u8_decode(s, len, i, &cp);
        char esc[16];
        if (cp == '\\' || cp == (uint32_t)q) {
            esc[0] = '\\';
            esc[1] = (char)cp;
            w_add(w, esc, 2);
        } else if (cp == '\n' || cp == '\r' || cp == '\t') {
            esc[0] = '\\';
            esc[1] = cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't';
            w_add(w, esc, 2);
        } else if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) {
            snprintf(esc, sizeof esc, "\\x%02x", (unsigned)cp);
            w_str(w, esc);
        } else if (cp >= 0xDC80 && cp <= 0xDCFF) {
            snprintf(esc, sizeof esc, "\\udc%02x", (unsigned)(cp & 0xFF));
            w_str(w, esc);
        } else {
            w_add(w, s + i, n);
        }
        i += n;
    }
    w_add(w, &q, 1);
}

static void repr(struct wr *w, const struct pyval *v, int depth)
{
    char num[32];
    if (depth > 100) {
        w_str(w, "...");
        return;
    }
    switch (v->type) {
    case PYV_NONE:
        w_str(w, "None");
        break;
    case PYV_BOOL:
        w_str(w, v->u.b ? "True" : "False");
        break;
    case PYV_INT:
        snprintf(num, sizeof num, "%" PRId64, v->u.i);
        w_str(w, num);
        break;
    case PYV_STR:
        repr_str(w, v->u.str.s, v->u.str.len);
        break;
    case PYV_LIST:
    case PYV_TUPLE:
        w_str(w, v->type == PYV_LIST ? "[" : "(");
        for (size_t k = 0; k < v->u.seq.n; k++) {
            if (k)
                w_str(w, ", ");
            repr(w, &v->u.seq.v[k], depth + 1);
        }
        w_str(w, v->type == PYV_LIST ? "]" : v->u.seq.n == 1 ? ",)" : ")");
        break;
    case PYV_DICT:
        w_str(w, "{");
        for (size_t k = 0; k < v->u.dict.n; k++) {
            if (k)
                w_str(w, ", ");
            repr(w, &v->u.dict.k[k], depth + 1);
            w_str(w, ": ");
            repr(w, &v->u.dict.v[k], depth + 1);
        }
        w_str(w, "}");
        break;
    case PYV_MATCH: {
        const struct pyeval_match *m = v->u.match;
        snprintf(num, sizeof num, "%zu, %zu", pe_cp_count(m->s, (size_t)m->caps[0]),
                 pe_cp_count(m->s, (size_t)m->caps[1]));
        w_str(w, "<re.Match object; span=(");
        w_str(w, num);
        w_str(w, "), match=");
        repr_str(w, m->s + m->caps[0], (size_t)(m->caps[1] - m->caps[0]));
        w_str(w, ">");
        break;
    }
    case PYV_RE:
        w_str(w, "<re.Pattern object>");
        break;
    case PYV_LAMBDA:
        w_str(w, "<function <lambda>>");
        break;
    }
}

size_t pyval_repr(const struct pyval *v, char *buf, size_t cap)
{
    struct wr w = {buf, cap, 0};
    repr(&w, v, 0);
    if (cap)
        buf[w.n < cap ? w.n : cap - 1] = '\0';
    return w.n;
}

/* str(v): the string itself, or its repr. */
static int to_str(struct pe_ctx *c, const struct pyval *v, struct pyval *out)
{
    if (v->type == PYV_STR) {
        *out = *v;
        return 0;
    }
    size_t n = pyval_repr(v, NULL, 0);
    char *p;
    int r = pe_alloc_str(c, n, &p);
    if (r < 0)
        return r;
    pyval_repr(v, p, n + 1);
    *out = pyval_strn(p, n);
    return 0;
}

/* A short repr for error messages. */
static const char *short_repr(const struct pyval *v, char *buf, size_t cap)
{
    if (pyval_repr(v, buf, cap) >= cap && cap > 4)
        memcpy(buf + cap - 4, "...", 4);
    return buf;
}

/* --- a growable byte buffer for results of unknown size ----------------------------------------
 */

bool pe_sb_add(struct pe_sbuf *b, const char *s, size_t n)
{
    if (b->over || b->nomem)
        return false;
    if (b->n + n > PE_MAX_STR) {
        b->over = true;
        return false;
    }
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->nomem = true;
            return false;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    return true;
}

bool pe_sb_cp(struct pe_sbuf *b, uint32_t cp)
{
    char u[4];
    return pe_sb_add(b, u, pyeval_u8_encode(cp, u));
}

/* Move the buffer into a string value (and free it). */
int pe_sb_finish(struct pe_ctx *c, struct pe_sbuf *b, struct pyval *out)
{
    int r;
    if (b->over)
        r = pe_rt_err(c, "MemoryError: a string exceeds the evaluator's limit of %u bytes",
                      PE_MAX_STR);
    else if (b->nomem)
        r = pe_oom(c);
    else
        r = pe_mk_str(c, b->p ? b->p : "", b->n, out);
    free(b->p);
    b->p = NULL;
    return r;
}

/* --- operators ------------------------------------------------------------------------------- */

static int concat(struct pe_ctx *c, const struct pyval *a, const struct pyval *b, struct pyval *out)
{
    if (a->type == PYV_STR) {
        char *p;
        int r = pe_alloc_str(c, a->u.str.len + b->u.str.len, &p);
        if (r < 0)
            return r;
        memcpy(p, a->u.str.s, a->u.str.len);
        memcpy(p + a->u.str.len, b->u.str.s, b->u.str.len);
        *out = pyval_strn(p, a->u.str.len + b->u.str.len);
        return 0;
    }
    struct pyval *v;
    int r = pe_alloc_vals(c, a->u.seq.n + b->u.seq.n, &v);
    if (r < 0)
        return r;
    if (a->u.seq.n)
        memcpy(v, a->u.seq.v, a->u.seq.n * sizeof *v);
    if (b->u.seq.n)
        memcpy(v + a->u.seq.n, b->u.seq.v, b->u.seq.n * sizeof *v);
    *out = pe_mk_seq(a->type, v, a->u.seq.n + b->u.seq.n);
    return 0;
}

static int repeat(struct pe_ctx *c, const struct pyval *s, int64_t n, struct pyval *out)
{
    if (n < 0)
        n = 0;
    size_t unit = s->type == PYV_STR ? s->u.str.len : s->u.seq.n;
    if (unit && (uint64_t)n > (uint64_t)(PE_MAX_STR / unit) + 1)
        return pe_rt_err(c, "MemoryError: repetition too large");
    size_t total = unit * (size_t)n;
    if (s->type == PYV_STR) {
        char *p;
        int r = pe_alloc_str(c, total, &p);
        if (r < 0)
            return r;
        for (int64_t k = 0; k < n; k++)
            memcpy(p + (size_t)k * unit, s->u.str.s, unit);
        *out = pyval_strn(p, total);
        return 0;
    }
    struct pyval *v;
    int r = pe_alloc_vals(c, total, &v);
    if (r < 0)
        return r;
    for (int64_t k = 0; k < n && unit; k++)
        memcpy(v + (size_t)k * unit, s->u.seq.v, unit * sizeof *v);
    *out = pe_mk_seq(s->type, v, total);
    return 0;
}

static const char *const binop_sym[] = {"+", "-", "*", "//", "%", "|", "&"};

static int binop(struct pe_ctx *c, int op, const struct pyval *a, const struct pyval *b,
                 struct pyval *out)
{
    int64_t x, y, z;
    if (pe_as_int(a, &x) && pe_as_int(b, &y)) {
        bool ovf = false;
        switch (op) {
        case B_ADD:
            ovf = __builtin_add_overflow(x, y, &z);
            break;
        case B_SUB:
            ovf = __builtin_sub_overflow(x, y, &z);
            break;
        case B_MUL:
            ovf = __builtin_mul_overflow(x, y, &z);
            break;
        case B_FLOORDIV:
        case B_MOD:
            if (y == 0)
                return pe_rt_err(c, "ZeroDivisionError: integer %s by zero",
                                 op == B_MOD ? "modulo" : "division");
            if (x == INT64_MIN && y == -1) {
                ovf = op == B_FLOORDIV;
                z = 0;
                break;
            }
            z = op == B_FLOORDIV ? x / y : x % y;
            /* Python rounds toward minus infinity. */
            if ((x % y != 0) && ((x < 0) != (y < 0)))
                z = op == B_FLOORDIV ? z - 1 : z + y;
            break;
        case B_BITOR:
            z = x | y;
            if (a->type == PYV_BOOL && b->type == PYV_BOOL) {
                *out = pe_mk_bool(z);
                return 0;
            }
            break;
        default:
            z = x & y;
            if (a->type == PYV_BOOL && b->type == PYV_BOOL) {
                *out = pe_mk_bool(z);
                return 0;
            }
            break;
        }
        if (ovf)
            return pe_rt_err(c, "OverflowError: integer result beyond 64 bits");
        *out = pyval_int(z);
        return 0;
    }
    if (op == B_ADD && a->type == b->type &&
        (a->type == PYV_STR || a->type == PYV_LIST || a->type == PYV_TUPLE))
        return concat(c, a, b, out);
    if (op == B_ADD && (a->type == PYV_STR || pe_is_seq(a)))
        return pe_rt_err(c, "TypeError: can only concatenate %s (not \"%s\") to %s", TN(a), TN(b),
                         TN(a));
    if (op == B_MUL && (a->type == PYV_STR || pe_is_seq(a)) && pe_as_int(b, &y))
        return repeat(c, a, y, out);
    if (op == B_MUL && (b->type == PYV_STR || pe_is_seq(b)) && pe_as_int(a, &x))
        return repeat(c, b, x, out);
    if (op == B_MOD && a->type == PYV_STR)
        return pe_rt_err(c, "TypeError: %%-formatting of strings is not supported");
    return pe_rt_err(c, "TypeError: unsupported operand type(s) for %s: '%s' and '%s'",
                     binop_sym[op], TN(a), TN(b));
}

static int contains(struct pe_ctx *c, const struct pyval *item, const struct pyval *box, bool *res)
{
    int r;
    switch (box->type) {
    case PYV_STR:
        if (item->type != PYV_STR)
            return pe_rt_err(c,
                             "TypeError: 'in <string>' requires string as left operand, "
                             "not %s",
                             TN(item));
        if ((r = pe_steps(c, box->u.str.len)) < 0)
            return r;
        *res = item->u.str.len == 0 ||
               memmem(box->u.str.s, box->u.str.len, item->u.str.s, item->u.str.len) != NULL;
        return 0;
    case PYV_LIST:
    case PYV_TUPLE:
        if ((r = pe_steps(c, box->u.seq.n * 8)) < 0)
            return r;
        *res = false;
        for (size_t k = 0; k < box->u.seq.n && !*res; k++)
            *res = pyval_equal(item, &box->u.seq.v[k]);
        return 0;
    case PYV_DICT:
        if ((r = pe_steps(c, box->u.dict.n * 8)) < 0)
            return r;
        *res = dict_find(box, item) >= 0;
        return 0;
    default:
        return pe_rt_err(c, "TypeError: argument of type '%s' is not iterable", TN(box));
    }
}

static const char *const cmp_sym[] = {"==", "!=", "<", "<=", ">", ">="};

static int compare(struct pe_ctx *c, int op, const struct pyval *a, const struct pyval *b,
                   bool *res)
{
    int cmp, r;
    switch (op) {
    case C_EQ:
        *res = pyval_equal(a, b);
        return 0;
    case C_NE:
        *res = !pyval_equal(a, b);
        return 0;
    case C_IN:
    case C_NOTIN:
        if ((r = contains(c, a, b, res)) < 0)
            return r;
        if (op == C_NOTIN)
            *res = !*res;
        return 0;
    case C_IS:
    case C_ISNOT:
        /* Identity: exact for None/True/False, the only sensible uses. */
        *res = a->type == b->type && pyval_equal(a, b);
        if (op == C_ISNOT)
            *res = !*res;
        return 0;
    }
    if (pyval_compare(a, b, &cmp) < 0)
        return pe_rt_err(c, "TypeError: '%s' not supported between instances of '%s' and '%s'",
                         cmp_sym[op], TN(a), TN(b));
    *res = op == C_LT ? cmp < 0 : op == C_LE ? cmp <= 0 : op == C_GT ? cmp > 0 : cmp >= 0;
    return 0;
}

static bool hashable(const struct pyval *v)
{
    if (v->type == PYV_LIST || v->type == PYV_DICT)
        return false;
    if (v->type == PYV_TUPLE)
        for (size_t k = 0; k < v->u.seq.n; k++)
            if (!hashable(&v->u.seq.v[k]))
                return false;
    return true;
}

/* --- indexing and slicing -------------------------------------------------------------------- */

static int norm_index(struct pe_ctx *c, const struct pyval *iv, size_t len, const char *what,
                      size_t *i_r)
{
    int64_t i;
    if (!pe_as_int(iv, &i))
        return pe_rt_err(c, "TypeError: %s indices must be integers, not %s", what, TN(iv));
    if (i < 0)
        i += (int64_t)len;
    if (i < 0 || (uint64_t)i >= len)
        return pe_rt_err(c, "IndexError: %s index out of range", what);
    *i_r = (size_t)i;
    return 0;
}

static int index_of(struct pe_ctx *c, const struct pyval *o, const struct pyval *iv,
                    struct pyval *out);

static int slice_bound(struct pe_ctx *c, const struct pyval *v, bool *have, int64_t *x)
{
    *have = v && v->type != PYV_NONE;
    if (*have && !pe_as_int(v, x))
        return pe_rt_err(c, "TypeError: slice indices must be integers or None, not %s", TN(v));
    return 0;
}

/* Python's PySlice_AdjustIndices. */
static size_t adjust(int64_t len, bool hs, int64_t start, bool he, int64_t stop, int64_t step,
                     int64_t *s_r)
{
    if (!hs) {
        start = step < 0 ? len - 1 : 0;
    } else if (start < 0) {
        start += len;
        if (start < 0)
            start = step < 0 ? -1 : 0;
    } else if (start >= len) {
        start = step < 0 ? len - 1 : len;
    }
    if (!he) {
        stop = step < 0 ? -1 : len;
    } else if (stop < 0) {
        stop += len;
        if (stop < 0)
            stop = step < 0 ? -1 : 0;
    } else if (stop >= len) {
        stop = step < 0 ? len - 1 : len;
    }
    *s_r = start;
    if (step < 0)
        return stop < start ? (size_t)((start - stop - 1) / (-step) + 1) : 0;
    return start < stop ? (size_t)((stop - start - 1) / step + 1) : 0;
}

static int do_slice(struct pe_ctx *c, const struct pyval *o, const struct pyval *bv[3],
                    struct pyval *out)
{
    bool hs, he, hp;
    int64_t start = 0, stop = 0, step = 1;
    int r;
    if ((r = slice_bound(c, bv[0], &hs, &start)) < 0 ||
        (r = slice_bound(c, bv[1], &he, &stop)) < 0 || (r = slice_bound(c, bv[2], &hp, &step)) < 0)
        return r;
    if (!hp)
        step = 1;
    if (step == 0)
        return pe_rt_err(c, "ValueError: slice step cannot be zero");
    if (step == INT64_MIN)
        step = -INT64_MAX;
    if (o->type == PYV_STR) {
        struct pe_cpidx x;
        if ((r = pe_cp_index(c, o->u.str.s, o->u.str.len, &x)) < 0)
            return r;
        int64_t s0;
        size_t n = adjust((int64_t)x.count, hs, start, he, stop, step, &s0);
        if (step == 1) {
            size_t b = pe_cpoff(&x, (size_t)s0), e = pe_cpoff(&x, (size_t)s0 + n);
            return pe_mk_str(c, o->u.str.s + b, e - b, out);
        }
        struct pe_sbuf sb = {0};
        for (size_t k = 0; k < n; k++) {
            size_t i = (size_t)(s0 + (int64_t)k * step);
            pe_sb_add(&sb, o->u.str.s + pe_cpoff(&x, i), pe_cpoff(&x, i + 1) - pe_cpoff(&x, i));
        }
        return pe_sb_finish(c, &sb, out);
    }
    if (pe_is_seq(o)) {
        int64_t s0;
        size_t n = adjust((int64_t)o->u.seq.n, hs, start, he, stop, step, &s0);
        if (step == 1) {
            *out = pe_mk_seq(o->type, o->u.seq.v + s0, n);
            return 0;
        }
        struct pyval *v;
        if ((r = pe_alloc_vals(c, n, &v)) < 0)
            return r;
        for (size_t k = 0; k < n; k++)
            v[k] = o->u.seq.v[s0 + (int64_t)k * step];
        *out = pe_mk_seq(o->type, v, n);
        return 0;
    }
    return pe_rt_err(c, "TypeError: '%s' object is not subscriptable", TN(o));
}

/* --- regular expressions --------------------------------------------------------------------- */

int pe_want_str(struct pe_ctx *c, const struct pyval *v, const char *what)
{
    if (v->type != PYV_STR)
        return pe_rt_err(c, "TypeError: %s must be str, not %s", what, TN(v));
    return 0;
}

static int get_re(struct pe_ctx *c, const struct pyval *p, const struct pyval *flags,
                  const struct pyeval_re **re_r)
{
    int64_t f = 0;
    if (flags && !pe_as_int(flags, &f))
        return pe_rt_err(c, "TypeError: flags must be an int, not %s", TN(flags));
    if (p->type == PYV_RE) {
        if (f)
            return pe_rt_err(c, "ValueError: cannot process flags argument with a compiled "
                                "pattern");
        *re_r = p->u.re;
        return 0;
    }
    if (p->type != PYV_STR)
        return pe_rt_err(c, "TypeError: first argument must be string or compiled pattern");
    if (f & ~(int64_t)(PYEVAL_RE_I | PYEVAL_RE_M | PYEVAL_RE_S | PYEVAL_RE_A | PYEVAL_RE_U))
        return pe_rt_err(c, "ValueError: unsupported regular expression flags %" PRId64, f);
    char msg[256];
    int r = pe_re_get(c->e, p->u.str.s, p->u.str.len, (int)f, msg, sizeof msg, re_r);
    if (r == -ENOMEM)
        return pe_oom(c);
    if (r < 0)
        return pe_rt_err(c, "re.error: %s", msg);
    return 0;
}

static int re_exec(struct pe_ctx *c, const struct pyeval_re *re, const struct pyval *s,
                   size_t start, enum pyeval_re_mode mode, bool not_empty, long *caps)
{
    int r = pyeval_re_exec(re, s->u.str.s, s->u.str.len, start, mode, not_empty, caps);
    if (r == OIMAP_ETOOBIG)
        return pe_rt_err(c, "the regular expression needs too many steps on this string "
                            "(catastrophic backtracking?)");
    if (r == -ENOMEM)
        return pe_oom(c);
    return r;
}

static int re_match(struct pe_ctx *c, const struct pyeval_re *re, const struct pyval *s,
                    enum pyeval_re_mode mode, struct pyval *out)
{
    int r = pe_want_str(c, s, "string");
    if (r < 0)
        return r;
    size_t ncaps = 2 * (size_t)(pyeval_re_ngroups(re) + 1);
    long *caps = pe_arena_alloc(c->ar, ncaps * sizeof *caps);
    struct pyeval_match *m = pe_arena_alloc(c->ar, sizeof *m);
    if (!caps || !m)
        return pe_oom(c);
    if ((r = re_exec(c, re, s, 0, mode, false, caps)) < 0)
        return r;
    if (r == 0) {
        out->type = PYV_NONE;
        return 0;
    }
    *m = (struct pyeval_match){s->u.str.s, s->u.str.len, re, caps};
    out->type = PYV_MATCH;
    out->u.match = m;
    return 0;
}

/* Expand an re.sub template for one match into b; with caps NULL only
 * check it (Python rejects a bad template before searching). */
static int expand(struct pe_ctx *c, const struct pyeval_re *re, const struct pyval *t,
                  const char *s, const long *caps, struct pe_sbuf *b)
{
    const char *p = t->u.str.s;
    size_t n = t->u.str.len;
    int ng = pyeval_re_ngroups(re);
    for (size_t i = 0; i < n;) {
        if (p[i] != '\\') {
            size_t j = i;
            while (j < n && p[j] != '\\')
                j++;
            if (b)
                pe_sb_add(b, p + i, j - i);
            i = j;
            continue;
        }
        if (i + 1 >= n)
            return pe_rt_err(c, "re.error: bad escape (end of pattern) in the replacement");
        char e = p[i + 1];
        int g = -1;
        i += 2;
        if (e == 'g') {
            const char *close = i < n && p[i] == '<' ? memchr(p + i, '>', n - i) : NULL;
            if (!close)
                return pe_rt_err(c, "re.error: missing group name in \\g<...>");
            const char *name = p + i + 1;
            size_t len = (size_t)(close - name);
            bool digits = len > 0;
            for (size_t k = 0; k < len; k++)
                digits = digits && name[k] >= '0' && name[k] <= '9';
            if (digits) {
                g = 0;
                for (size_t k = 0; k < len && g <= 100; k++)
                    g = g * 10 + (name[k] - '0');
            } else if ((g = pyeval_re_group_index(re, name, len)) < 0) {
                return pe_rt_err(c, "IndexError: unknown group name '%.*s'", (int)len, name);
            }
            i = (size_t)(close - p) + 1;
        } else if (e >= '0' && e <= '9') {
            bool o2 = i < n && p[i] >= '0' && p[i] <= '7';
            bool o3 = o2 && i + 1 < n && p[i + 1] >= '0' && p[i + 1] <= '7';
            if (e == '0' || (e <= '7' && o3)) {
                uint32_t v = (uint32_t)(e - '0');
                /* up to two more octal digits, after \0 as after \1-\7 */
                for (int k = 0; k < 2 && i < n && p[i] >= '0' && p[i] <= '7'; k++)
                    v = v * 8 + (uint32_t)(p[i++] - '0');
                if (v > 0377)
                    return pe_rt_err(c, "re.error: octal escape value outside of range 0-0o377");
                if (b)
                    pe_sb_cp(b, v);
                continue;
            }
            g = e - '0';
            if (i < n && p[i] >= '0' && p[i] <= '9')
                g = g * 10 + (p[i++] - '0');
        } else {
            const char *esc = strchr("a\ab\bf\fn\nr\rt\tv\v\\\\", e);
            if (esc && ((esc - "a\ab\bf\fn\nr\rt\tv\v\\\\") % 2) == 0) {
                if (b)
                    pe_sb_add(b, esc + 1, 1);
            } else if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) {
                return pe_rt_err(c, "re.error: bad escape \\%c in the replacement", e);
            } else if (b) {
                pe_sb_add(b, p + i - 2, 2);
            }
            continue;
        }
        if (g > ng)
            return pe_rt_err(c, "re.error: invalid group reference %d", g);
        if (b && caps[2 * g] >= 0 && caps[2 * g + 1] >= 0)
            pe_sb_add(b, s + caps[2 * g], (size_t)(caps[2 * g + 1] - caps[2 * g]));
    }
    return 0;
}

static int re_sub(struct pe_ctx *c, const struct pyeval_re *re, const struct pyval *repl,
                  const struct pyval *s, const struct pyval *countv, struct pyval *out)
{
    int r;
    int64_t count = 0;
    if (repl->type != PYV_STR)
        return pe_rt_err(c, "TypeError: the replacement must be a string (functions are not "
                            "supported)");
    if ((r = pe_want_str(c, s, "string")) < 0)
        return r;
    if (countv && !pe_as_int(countv, &count))
        return pe_rt_err(c, "TypeError: count must be an int, not %s", TN(countv));
    if ((r = expand(c, re, repl, NULL, NULL, NULL)) < 0)
        return r;
    size_t ncaps = 2 * (size_t)(pyeval_re_ngroups(re) + 1);
    long caps_small[20];
    long *caps = ncaps <= 20 ? caps_small : pe_arena_alloc(c->ar, ncaps * sizeof *caps);
    if (!caps)
        return pe_oom(c);
    struct pe_sbuf b = {0};
    size_t pos = 0, last = 0;
    int64_t done = 0;
    bool must_advance = false;
    while (pos <= s->u.str.len && (count <= 0 || done < count)) {
        r = re_exec(c, re, s, pos, PYEVAL_RE_SEARCH, must_advance, caps);
        if (r < 0) {
            free(b.p);
            return r;
        }
        if (r == 0)
            break;
        size_t ms = (size_t)caps[0], me = (size_t)caps[1];
        pe_sb_add(&b, s->u.str.s + last, ms - last);
        if ((r = expand(c, re, repl, s->u.str.s, caps, &b)) < 0) {
            free(b.p);
            return r;
        }
        last = me;
        done++;
        /* Python 3.7+: after an empty match the next one may start at the
         * same place only if it is not empty. */
        must_advance = me == ms;
        pos = me;
        if ((r = pe_steps(c, 64)) < 0) {
            free(b.p);
            return r;
        }
    }
    pe_sb_add(&b, s->u.str.s + last, s->u.str.len - last);
    return pe_sb_finish(c, &b, out);
}

static int re_escape(struct pe_ctx *c, const struct pyval *s, struct pyval *out)
{
    int r = pe_want_str(c, s, "pattern");
    if (r < 0)
        return r;
    struct pe_sbuf b = {0};
    for (size_t i = 0; i < s->u.str.len; i++) {
        char ch = s->u.str.s[i];
        if (ch && strchr("()[]{}?*+-|^$\\.&~# \t\n\r\v\f", ch))
            pe_sb_add(&b, "\\", 1);
        pe_sb_add(&b, &ch, 1);
    }
    return pe_sb_finish(c, &b, out);
}

static int match_group_index(struct pe_ctx *c, const struct pyeval_match *m, const struct pyval *g,
                             int *g_r)
{
    int64_t i = 0;
    if (!g) {
        *g_r = 0;
        return 0;
    }
    if (g->type == PYV_STR) {
        i = pyeval_re_group_index(m->re, g->u.str.s, g->u.str.len);
        if (i < 0)
            return pe_rt_err(c, "IndexError: no such group");
    } else if (!pe_as_int(g, &i)) {
        return pe_rt_err(c, "IndexError: no such group");
    }
    if (i < 0 || i > pyeval_re_ngroups(m->re))
        return pe_rt_err(c, "IndexError: no such group");
    *g_r = (int)i;
    return 0;
}

static struct pyval group_val(const struct pyeval_match *m, int g)
{
    struct pyval v = {.type = PYV_NONE};
    if (m->caps[2 * g] >= 0 && m->caps[2 * g + 1] >= 0)
        v = pyval_strn(m->s + m->caps[2 * g], (size_t)(m->caps[2 * g + 1] - m->caps[2 * g]));
    return v;
}

/* A group's text is not NUL-terminated inside its subject: copy it. */
static int group_str(struct pe_ctx *c, const struct pyeval_match *m, int g, struct pyval *out)
{
    *out = group_val(m, g);
    if (out->type == PYV_STR)
        return pe_mk_str(c, out->u.str.s, out->u.str.len, out);
    return 0;
}

static int index_of(struct pe_ctx *c, const struct pyval *o, const struct pyval *iv,
                    struct pyval *out)
{
    size_t i;
    int r;
    switch (o->type) {
    case PYV_STR: {
        struct pe_cpidx x;
        if (!pe_as_int(iv, &(int64_t){0}))
            return pe_rt_err(c, "TypeError: string indices must be integers, not '%s'", TN(iv));
        if ((r = pe_cp_index(c, o->u.str.s, o->u.str.len, &x)) < 0 ||
            (r = norm_index(c, iv, x.count, "string", &i)) < 0)
            return r;
        return pe_mk_str(c, o->u.str.s + pe_cpoff(&x, i), pe_cpoff(&x, i + 1) - pe_cpoff(&x, i),
                         out);
    }
    case PYV_LIST:
    case PYV_TUPLE:
        if ((r = norm_index(c, iv, o->u.seq.n, TN(o), &i)) < 0)
            return r;
        *out = o->u.seq.v[i];
        return 0;
    case PYV_DICT: {
        if (!hashable(iv))
            return pe_rt_err(c, "TypeError: unhashable type: '%s'", TN(iv));
        ssize_t k = dict_find(o, iv);
        if (k < 0) {
            char buf[80];
            return pe_rt_err(c, "KeyError: %s", short_repr(iv, buf, sizeof buf));
        }
        *out = o->u.dict.v[k];
        return 0;
    }
    case PYV_MATCH: {
        int g;
        if ((r = match_group_index(c, o->u.match, iv, &g)) < 0)
            return r;
        return group_str(c, o->u.match, g, out);
    }
    default:
        return pe_rt_err(c, "TypeError: '%s' object is not subscriptable", TN(o));
    }
}

static int dict_view(struct pe_ctx *c, int fn, const struct pyval *d, struct pyval *out)
{
    struct pyval *v;
    size_t n = d->u.dict.n;
    int r = pe_alloc_vals(c, n, &v);
    if (r < 0)
        return r;
    for (size_t k = 0; k < n; k++) {
        if (fn == M_KEYS) {
            v[k] = d->u.dict.k[k];
        } else if (fn == M_VALUES) {
            v[k] = d->u.dict.v[k];
        } else {
            struct pyval *pair;
            if ((r = pe_alloc_vals(c, 2, &pair)) < 0)
                return r;
            pair[0] = d->u.dict.k[k];
            pair[1] = d->u.dict.v[k];
            v[k] = pe_mk_seq(PYV_TUPLE, pair, 2);
        }
    }
    *out = pe_mk_seq(PYV_LIST, v, n);
    return 0;
}

static int match_method(struct pe_ctx *c, int fn, const struct pyeval_match *m,
                        const struct pyval *arg, struct pyval *out)
{
    int g, r;
    if (fn == M_GROUPS) {
        int ng = pyeval_re_ngroups(m->re);
        struct pyval *v;
        if ((r = pe_alloc_vals(c, (size_t)ng, &v)) < 0)
            return r;
        for (int k = 1; k <= ng; k++)
            if ((r = group_str(c, m, k, &v[k - 1])) < 0)
                return r;
        *out = pe_mk_seq(PYV_TUPLE, v, (size_t)ng);
        return 0;
    }
    if ((r = match_group_index(c, m, arg, &g)) < 0)
        return r;
    if (fn == M_GROUP)
        return group_str(c, m, g, out);
    if (fn == M_SPAN) {
        struct pyval *v;
        if ((r = pe_alloc_vals(c, 2, &v)) < 0)
            return r;
        for (int k = 0; k < 2; k++) {
            long off = m->caps[2 * g + k];
            v[k] = pyval_int(off < 0 ? -1 : (int64_t)pe_cp_count(m->s, (size_t)off));
        }
        *out = pe_mk_seq(PYV_TUPLE, v, 2);
        return 0;
    }
    long off = m->caps[2 * g + (fn == M_END)];
    *out = pyval_int(off < 0 ? -1 : (int64_t)pe_cp_count(m->s, (size_t)off));
    return 0;
}

static int attr_err(struct pe_ctx *c, const struct pyval *o, int fn)
{
    return pe_rt_err(c, "AttributeError: '%s' object has no attribute '%s'", TN(o),
                     pe_fns[fn].name);
}

static int eval_call(struct pe_ctx *c, const struct pe_node *n, struct pyval *out)
{
    const struct pe_fn *f = &pe_fns[n->fn];
    /* a[] starts as None: the parser checked the arity against pe_fns[],
     * so no argument beyond those given is read, but the analyzer cannot
     * see that */
    struct pyval o = {.type = PYV_NONE}, a[5] = {{.type = PYV_NONE}};
    const struct pyval *ap[5] = {NULL, NULL, NULL, NULL, NULL};
    int r;
    if (n->kids[0] && (r = pe_eval_node(c, n->kids[0], &o)) < 0)
        return r;
    for (int k = 0; k < f->max; k++) {
        if (!n->kids[1 + k])
            continue;
        if ((r = pe_eval_node(c, n->kids[1 + k], &a[k])) < 0)
            return r;
        ap[k] = &a[k];
    }
    int fn = n->fn;
    if (f->kind == FK_METHOD) {
        bool okt;
        if (fn <= M_COUNT)
            okt = o.type == PYV_STR || (fn == M_COUNT && pe_is_seq(&o));
        else if (fn <= M_ITEMS)
            okt = o.type == PYV_DICT;
        else if (fn <= M_SPAN)
            okt = o.type == PYV_MATCH;
        else
            okt = o.type == PYV_RE;
        if (!okt)
            return attr_err(c, &o, fn);
    }
    const struct pyeval_re *re;
    switch (fn) {
    case F_LEN:
        if (a[0].type == PYV_STR)
            *out = pyval_int((int64_t)pe_cp_count(a[0].u.str.s, a[0].u.str.len));
        else if (pe_is_seq(&a[0]))
            *out = pyval_int((int64_t)a[0].u.seq.n);
        else if (a[0].type == PYV_DICT)
            *out = pyval_int((int64_t)a[0].u.dict.n);
        else
            return pe_rt_err(c, "TypeError: object of type '%s' has no len()", TN(&a[0]));
        return 0;
    case F_STR:
        if (!ap[0]) {
            *out = pyval_strn("", 0);
            return 0;
        }
        return to_str(c, &a[0], out);
    case F_INT: {
        int64_t i = 0;
        if (!ap[0] || pe_as_int(&a[0], &i)) {
            *out = pyval_int(i);
            return 0;
        }
        if (a[0].type != PYV_STR)
            return pe_rt_err(c,
                             "TypeError: int() argument must be a string or a number, not "
                             "'%s'",
                             TN(&a[0]));
        const char *s = a[0].u.str.s, *e = s + a[0].u.str.len;
        while (s < e && (*s == ' ' || (*s >= '\t' && *s <= '\r')))
            s++;
        while (e > s && (e[-1] == ' ' || (e[-1] >= '\t' && e[-1] <= '\r')))
            e--;
        bool neg = s < e && *s == '-';
        if (s < e && (*s == '-' || *s == '+'))
            s++;
        uint64_t v = 0;
        bool okd = s < e && *s != '_' && e[-1] != '_';
        for (const char *p = s; p < e && okd; p++) {
            if (*p == '_' && p[1] != '_')
                continue;
            okd = *p >= '0' && *p <= '9' && v <= (UINT64_MAX - 9) / 10;
            v = v * 10 + (uint64_t)(*p - '0');
        }
        if (okd && v > (uint64_t)INT64_MAX + neg)
            return pe_rt_err(c, "OverflowError: integer beyond 64 bits");
        if (!okd) {
            char buf[80];
            return pe_rt_err(c, "ValueError: invalid literal for int() with base 10: %s",
                             short_repr(&a[0], buf, sizeof buf));
        }
        *out = pyval_int(neg ? (int64_t)(0 - v) : (int64_t)v);
        return 0;
    }
    case F_BOOL:
        *out = pe_mk_bool(ap[0] && pyval_truthy(&a[0]));
        return 0;
    case F_RE_SEARCH:
    case F_RE_MATCH:
    case F_RE_FULLMATCH:
        if ((r = get_re(c, &a[0], ap[2], &re)) < 0)
            return r;
        return re_match(c, re, &a[1],
                        fn == F_RE_SEARCH  ? PYEVAL_RE_SEARCH
                        : fn == F_RE_MATCH ? PYEVAL_RE_MATCH
                                           : PYEVAL_RE_FULLMATCH,
                        out);
    case F_RE_SUB:
        if ((r = get_re(c, &a[0], ap[4], &re)) < 0)
            return r;
        return re_sub(c, re, &a[1], &a[2], ap[3], out);
    case F_RE_COMPILE:
        if ((r = get_re(c, &a[0], ap[1], &re)) < 0)
            return r;
        out->type = PYV_RE;
        out->u.re = re;
        return 0;
    case F_RE_ESCAPE:
        return re_escape(c, &a[0], out);
    case M_STARTSWITH:
    case M_ENDSWITH:
        return pe_str_affix(c, &o, &a[0], fn == M_ENDSWITH, out);
    case M_REPLACE:
        return pe_str_replace(c, &o, &a[0], &a[1], ap[2], out);
    case M_LOWER:
    case M_CASEFOLD:
    case M_UPPER:
        return pe_str_case(c, &o, fn == M_UPPER, out);
    case M_STRIP:
    case M_LSTRIP:
    case M_RSTRIP:
        return pe_str_strip(c, &o, ap[0], fn == M_LSTRIP ? 1 : fn == M_RSTRIP ? 2 : 3, out);
    case M_SPLIT:
    case M_RSPLIT:
        return pe_str_split(c, &o, ap[0], ap[1], fn == M_RSPLIT, out);
    case M_JOIN:
        return pe_str_join(c, &o, &a[0], out);
    case M_COUNT:
        if (pe_is_seq(&o)) {
            int64_t k = 0;
            for (size_t i = 0; i < o.u.seq.n; i++)
                k += pyval_equal(&o.u.seq.v[i], &a[0]);
            *out = pyval_int(k);
            return pe_steps(c, o.u.seq.n * 8);
        }
        return pe_str_find(c, fn, &o, &a[0], out);
    case M_FIND:
    case M_RFIND:
        return pe_str_find(c, fn, &o, &a[0], out);
    case M_GET: {
        if (!hashable(&a[0]))
            return pe_rt_err(c, "TypeError: unhashable type: '%s'", TN(&a[0]));
        if ((r = pe_steps(c, o.u.dict.n * 8)) < 0)
            return r;
        ssize_t k = dict_find(&o, &a[0]);
        if (k >= 0)
            *out = o.u.dict.v[k];
        else if (ap[1])
            *out = a[1];
        else
            out->type = PYV_NONE;
        return 0;
    }
    case M_KEYS:
    case M_VALUES:
    case M_ITEMS:
        return dict_view(c, fn, &o, out);
    case M_GROUP:
    case M_GROUPS:
    case M_START:
    case M_END:
    case M_SPAN:
        return match_method(c, fn, o.u.match, ap[0], out);
    case M_SEARCH:
    case M_MATCH:
    case M_FULLMATCH:
        return re_match(c, o.u.re, &a[0],
                        fn == M_SEARCH  ? PYEVAL_RE_SEARCH
                        : fn == M_MATCH ? PYEVAL_RE_MATCH
                                        : PYEVAL_RE_FULLMATCH,
                        out);
    case M_SUB:
        return re_sub(c, o.u.re, &a[0], &a[1], ap[2], out);
    }
    return pe_rt_err(c, "internal error: unknown function");
}

/* --- the tree walk --------------------------------------------------------------------------- */

static int eval_dict(struct pe_ctx *c, const struct pe_node *n, struct pyval *out)
{
    size_t cnt = n->nkids / 2, m = 0;
    struct pyval *k, *v;
    int r;
    if ((r = pe_alloc_vals(c, cnt, &k)) < 0 || (r = pe_alloc_vals(c, cnt, &v)) < 0)
        return r;
    for (size_t i = 0; i < cnt; i++) {
        struct pyval key, val;
        if ((r = pe_eval_node(c, n->kids[2 * i], &key)) < 0 ||
            (r = pe_eval_node(c, n->kids[2 * i + 1], &val)) < 0)
            return r;
        if (!hashable(&key))
            return pe_rt_err(c, "TypeError: unhashable type: '%s'", TN(&key));
        if ((r = pe_steps(c, m * 8)) < 0)
            return r;
        struct pyval d = {.type = PYV_DICT};
        d.u.dict.k = k, d.u.dict.v = v, d.u.dict.n = m;
        ssize_t at = dict_find(&d, &key);
        if (at >= 0) { /* {'a': 1, 'a': 2}: the last value wins */
            v[at] = val;
            continue;
        }
        k[m] = key;
        v[m++] = val;
    }
    out->type = PYV_DICT;
    out->u.dict.k = k;
    out->u.dict.v = v;
    out->u.dict.n = m;
    return 0;
}

int pe_eval_node(struct pe_ctx *c, const struct pe_node *n, struct pyval *out)
{
    int r;
    if (++c->steps > PE_MAX_STEPS)
        return pe_rt_err(c, "the expression needs more than %ld evaluation steps", PE_MAX_STEPS);
    switch (n->kind) {
    case N_CONST:
        *out = n->val;
        return 0;
    case N_PARAM:
        *out = c->args[n->val.u.i];
        return 0;
    case N_LIST:
    case N_TUPLE: {
        struct pyval *v;
        if ((r = pe_alloc_vals(c, n->nkids, &v)) < 0)
            return r;
        for (size_t k = 0; k < n->nkids; k++)
            if ((r = pe_eval_node(c, n->kids[k], &v[k])) < 0)
                return r;
        *out = pe_mk_seq(n->kind == N_LIST ? PYV_LIST : PYV_TUPLE, v, n->nkids);
        return 0;
    }
    case N_DICT:
        return eval_dict(c, n, out);
    case N_AND:
    case N_OR:
        for (size_t k = 0; k < n->nkids; k++) {
            if ((r = pe_eval_node(c, n->kids[k], out)) < 0)
                return r;
            if (pyval_truthy(out) != (n->kind == N_AND))
                return 0;
        }
        return 0;
    case N_NOT:
        if ((r = pe_eval_node(c, n->kids[0], out)) < 0)
            return r;
        *out = pe_mk_bool(!pyval_truthy(out));
        return 0;
    case N_NEG:
    case N_POS: {
        int64_t i;
        if ((r = pe_eval_node(c, n->kids[0], out)) < 0)
            return r;
        if (!pe_as_int(out, &i))
            return pe_rt_err(c, "TypeError: bad operand type for unary %s: '%s'",
                             n->kind == N_NEG ? "-" : "+", TN(out));
        if (n->kind == N_NEG && i == INT64_MIN)
            return pe_rt_err(c, "OverflowError: integer result beyond 64 bits");
        *out = pyval_int(n->kind == N_NEG ? -i : i);
        return 0;
    }
    case N_BIN: {
        struct pyval a, b;
        if ((r = pe_eval_node(c, n->kids[0], &a)) < 0 || (r = pe_eval_node(c, n->kids[1], &b)) < 0)
            return r;
        return binop(c, n->op, &a, &b, out);
    }
    case N_CMP: {
        struct pyval a, b;
        bool res = true;
        if ((r = pe_eval_node(c, n->kids[0], &a)) < 0)
            return r;
        for (size_t k = 1; k < n->nkids && res; k++) {
            if ((r = pe_eval_node(c, n->kids[k], &b)) < 0 ||
                (r = compare(c, n->ops[k - 1], &a, &b, &res)) < 0)
                return r;
            a = b;
        }
        *out = pe_mk_bool(res);
        return 0;
    }
    case N_IF: {
        struct pyval cond;
        if ((r = pe_eval_node(c, n->kids[1], &cond)) < 0)
            return r;
        return pe_eval_node(c, n->kids[pyval_truthy(&cond) ? 0 : 2], out);
    }
    case N_INDEX: {
        struct pyval o, i;
        if ((r = pe_eval_node(c, n->kids[0], &o)) < 0 || (r = pe_eval_node(c, n->kids[1], &i)) < 0)
            return r;
        return index_of(c, &o, &i, out);
    }
    case N_SLICE: {
        struct pyval o, b[3];
        const struct pyval *bp[3] = {NULL, NULL, NULL};
        if ((r = pe_eval_node(c, n->kids[0], &o)) < 0)
            return r;
        for (int k = 0; k < 3; k++) {
            if (!n->kids[1 + k])
                continue;
            if ((r = pe_eval_node(c, n->kids[1 + k], &b[k])) < 0)
                return r;
            bp[k] = &b[k];
        }
        return do_slice(c, &o, bp, out);
    }
    case N_CALL:
        return eval_call(c, n, out);
    }
    return pe_rt_err(c, "internal error: unknown node");
}
