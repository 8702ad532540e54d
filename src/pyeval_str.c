/* pyeval_str.c - str methods for pyeval_ops.c: startswith, replace, split...
 * with Python's rules, code points counted as Python counts them. */
#include "pyeval_int.h"

#include "err.h"

#include <stdlib.h>
#include <string.h>

/* --- str methods ----------------------------------------------------------------------------- */

static bool affix(const struct pyval *s, const struct pyval *p, bool end)
{
    size_t n = p->u.str.len;
    if (n > s->u.str.len)
        return false;
    return memcmp(s->u.str.s + (end ? s->u.str.len - n : 0), p->u.str.s, n) == 0;
}

int pe_str_affix(struct pe_ctx *c, const struct pyval *s, const struct pyval *p, bool end,
                 struct pyval *out)
{
    const char *name = end ? "endswith" : "startswith";
    bool hit = false;
    if (p->type == PYV_TUPLE) {
        for (size_t k = 0; k < p->u.seq.n; k++) {
            if (p->u.seq.v[k].type != PYV_STR)
                return pe_rt_err(c, "TypeError: tuple for %s must only contain str, not %s", name,
                                 TN(&p->u.seq.v[k]));
            hit = hit || affix(s, &p->u.seq.v[k], end);
        }
    } else if (p->type == PYV_STR) {
        hit = affix(s, p, end);
    } else {
        return pe_rt_err(c, "TypeError: %s first arg must be str or a tuple of str, not %s", name,
                         TN(p));
    }
    *out = pe_mk_bool(hit);
    return 0;
}

int pe_str_replace(struct pe_ctx *c, const struct pyval *s, const struct pyval *old,
                   const struct pyval *new, const struct pyval *countv, struct pyval *out)
{
    int64_t count = -1;
    int r;
    if ((r = pe_want_str(c, old, "replace() argument 1")) < 0 ||
        (r = pe_want_str(c, new, "replace() argument 2")) < 0)
        return r;
    if (countv && !pe_as_int(countv, &count))
        return pe_rt_err(c, "TypeError: replace() count must be an int, not %s", TN(countv));
    const char *p = s->u.str.s, *end = p + s->u.str.len;
    size_t ol = old->u.str.len;
    struct pe_sbuf b = {0};
    if (ol == 0) { /* 'ab'.replace('', '-') == '-a-b-' */
        for (size_t i = 0; count != 0; count--) {
            pe_sb_add(&b, new->u.str.s, new->u.str.len);
            if (i >= s->u.str.len)
                break;
            uint32_t cp;
            size_t n = pyeval_u8_decode(p, s->u.str.len, i, &cp);
            pe_sb_add(&b, p + i, n);
            i += n;
            if (count == 1) {
                pe_sb_add(&b, p + i, s->u.str.len - i);
                break;
            }
        }
        if (count == 0 && !b.n)
            pe_sb_add(&b, p, s->u.str.len);
        return pe_sb_finish(c, &b, out);
    }
    while (count != 0) {
        const char *hit = memmem(p, (size_t)(end - p), old->u.str.s, ol);
        if (!hit)
            break;
        pe_sb_add(&b, p, (size_t)(hit - p));
        pe_sb_add(&b, new->u.str.s, new->u.str.len);
        p = hit + ol;
        if (count > 0)
            count--;
    }
    pe_sb_add(&b, p, (size_t)(end - p));
    return pe_sb_finish(c, &b, out);
}

int pe_str_case(struct pe_ctx *c, const struct pyval *s, bool upper, struct pyval *out)
{
    struct pe_sbuf b = {0};
    for (size_t i = 0; i < s->u.str.len;) {
        uint32_t cp;
        i += pyeval_u8_decode(s->u.str.s, s->u.str.len, i, &cp);
        pe_sb_cp(&b, upper ? pyeval_upper(cp) : pyeval_lower(cp));
    }
    return pe_sb_finish(c, &b, out);
}

static bool in_set(uint32_t cp, const struct pyval *chars)
{
    if (!chars)
        return pyeval_isspace(cp);
    for (size_t i = 0; i < chars->u.str.len;) {
        uint32_t x;
        i += pyeval_u8_decode(chars->u.str.s, chars->u.str.len, i, &x);
        if (x == cp)
            return true;
    }
    return false;
}

/* which: 1 lstrip, 2 rstrip, 3 strip */
int pe_str_strip(struct pe_ctx *c, const struct pyval *s, const struct pyval *chars, int which,
                 struct pyval *out)
{
    int r;
    if (chars && chars->type == PYV_NONE)
        chars = NULL;
    if (chars && chars->type != PYV_STR)
        return pe_rt_err(c, "TypeError: strip arg must be None or str");
    struct pe_cpidx x;
    if ((r = pe_cp_index(c, s->u.str.s, s->u.str.len, &x)) < 0)
        return r;
    size_t a = 0, b = x.count;
    uint32_t cp;
    while ((which & 1) && a < b &&
           (pyeval_u8_decode(s->u.str.s, s->u.str.len, pe_cpoff(&x, a), &cp), in_set(cp, chars)))
        a++;
    while (
        (which & 2) && b > a &&
        (pyeval_u8_decode(s->u.str.s, s->u.str.len, pe_cpoff(&x, b - 1), &cp), in_set(cp, chars)))
        b--;
    return pe_mk_str(c, s->u.str.s + pe_cpoff(&x, a), pe_cpoff(&x, b) - pe_cpoff(&x, a), out);
}

struct pieces {
    struct pyval *v;
    size_t n, cap;
};

static int piece(struct pe_ctx *c, struct pieces *p, const char *s, size_t len)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        if (cap > PE_MAX_ITEMS)
            return pe_rt_err(c, "MemoryError: a list exceeds the evaluator's limit");
        struct pyval *v = realloc(p->v, cap * sizeof *v);
        if (!v)
            return pe_oom(c);
        p->v = v;
        p->cap = cap;
    }
    return pe_mk_str(c, s, len, &p->v[p->n++]);
}

static bool ws_at(const char *s, size_t len, size_t i, size_t *n_r)
{
    uint32_t cp;
    *n_r = pyeval_u8_decode(s, len, i, &cp);
    return pyeval_isspace(cp);
}

static int split_ws(struct pe_ctx *c, const struct pyval *sv, int64_t max, bool right,
                    struct pieces *p)
{
    const char *s = sv->u.str.s;
    size_t len = sv->u.str.len, n;
    int r = 0;
    if (!right) {
        size_t i = 0;
        for (;;) {
            while (i < len && ws_at(s, len, i, &n))
                i += n;
            if (i >= len)
                return 0;
            if (max >= 0 && (int64_t)p->n == max)
                return piece(c, p, s + i, len - i);
            size_t j = i;
            while (j < len && !ws_at(s, len, j, &n))
                j += n;
            if ((r = piece(c, p, s + i, j - i)) < 0)
                return r;
            i = j;
        }
    }
    struct pe_cpidx x;
    if ((r = pe_cp_index(c, s, len, &x)) < 0)
        return r;
    size_t e = x.count;
    for (;;) {
        while (e > 0 && ws_at(s, len, pe_cpoff(&x, e - 1), &n))
            e--;
        if (e == 0)
            return 0;
        if (max >= 0 && (int64_t)p->n == max)
            return piece(c, p, s, pe_cpoff(&x, e));
        size_t b = e;
        while (b > 0 && !ws_at(s, len, pe_cpoff(&x, b - 1), &n))
            b--;
        if ((r = piece(c, p, s + pe_cpoff(&x, b), pe_cpoff(&x, e) - pe_cpoff(&x, b))) < 0)
            return r;
        e = b;
    }
}

int pe_str_split(struct pe_ctx *c, const struct pyval *sv, const struct pyval *sep,
                 const struct pyval *maxv, bool right, struct pyval *out)
{
    int64_t max = -1;
    int r = 0;
    if (maxv && !pe_as_int(maxv, &max))
        return pe_rt_err(c, "TypeError: maxsplit must be an int, not %s", TN(maxv));
    if (sep && sep->type == PYV_NONE)
        sep = NULL;
    if (sep && sep->type != PYV_STR)
        return pe_rt_err(c, "TypeError: must be str or None, not %s", TN(sep));
    if (sep && sep->u.str.len == 0)
        return pe_rt_err(c, "ValueError: empty separator");
    struct pieces p = {0};
    const char *s = sv->u.str.s;
    size_t len = sv->u.str.len;
    if (!sep) {
        r = split_ws(c, sv, max, right, &p);
    } else if (!right) {
        size_t i = 0, sl = sep->u.str.len;
        const char *hit;
        while ((max < 0 || (int64_t)p.n < max) &&
               (hit = memmem(s + i, len - i, sep->u.str.s, sl))) {
            if ((r = piece(c, &p, s + i, (size_t)(hit - (s + i)))) < 0)
                break;
            i = (size_t)(hit - s) + sl;
        }
        if (r >= 0)
            r = piece(c, &p, s + i, len - i);
    } else {
        size_t e = len, sl = sep->u.str.len;
        while (max < 0 || (int64_t)p.n < max) {
            size_t j = e;
            bool found = false;
            while (j >= sl) {
                if (memcmp(s + j - sl, sep->u.str.s, sl) == 0) {
                    found = true;
                    break;
                }
                j--;
            }
            if (!found)
                break;
            if ((r = piece(c, &p, s + j, e - j)) < 0)
                break;
            e = j - sl;
        }
        if (r >= 0)
            r = piece(c, &p, s, e);
    }
    if (r >= 0 && right) /* collected from the end */
        for (size_t k = 0; k < p.n / 2; k++) {
            struct pyval t = p.v[k];
            p.v[k] = p.v[p.n - 1 - k];
            p.v[p.n - 1 - k] = t;
        }
    struct pyval *v = NULL;
    if (r >= 0 && (r = pe_alloc_vals(c, p.n, &v)) >= 0) {
        if (p.n)
            memcpy(v, p.v, p.n * sizeof *v);
        *out = pe_mk_seq(PYV_LIST, v, p.n);
    }
    free(p.v);
    return r < 0 ? r : 0;
}

int pe_str_join(struct pe_ctx *c, const struct pyval *sep, const struct pyval *it,
                struct pyval *out)
{
    struct pe_sbuf b = {0};
    int r;
    if (it->type == PYV_STR) {
        for (size_t i = 0; i < it->u.str.len;) {
            uint32_t cp;
            size_t n = pyeval_u8_decode(it->u.str.s, it->u.str.len, i, &cp);
            if (i)
                pe_sb_add(&b, sep->u.str.s, sep->u.str.len);
            pe_sb_add(&b, it->u.str.s + i, n);
            i += n;
        }
        return pe_sb_finish(c, &b, out);
    }
    const struct pyval *items;
    size_t n;
    if (pe_is_seq(it))
        items = it->u.seq.v, n = it->u.seq.n;
    else if (it->type == PYV_DICT)
        items = it->u.dict.k, n = it->u.dict.n;
    else
        return pe_rt_err(c, "TypeError: can only join an iterable");
    for (size_t k = 0; k < n; k++) {
        if (items[k].type != PYV_STR) {
            free(b.p);
            return pe_rt_err(c, "TypeError: sequence item %zu: expected str instance, %s found", k,
                             TN(&items[k]));
        }
        if (k)
            pe_sb_add(&b, sep->u.str.s, sep->u.str.len);
        pe_sb_add(&b, items[k].u.str.s, items[k].u.str.len);
    }
    if ((r = pe_steps(c, n * 8)) < 0) {
        free(b.p);
        return r;
    }
    return pe_sb_finish(c, &b, out);
}

/* find, rfind, count on a str. */
int pe_str_find(struct pe_ctx *c, int fn, const struct pyval *s, const struct pyval *sub,
                struct pyval *out)
{
    int r = pe_want_str(c, sub, "the substring");
    if (r < 0)
        return r;
    const char *h = s->u.str.s;
    size_t hl = s->u.str.len, nl = sub->u.str.len;
    if (fn == M_COUNT) {
        if (nl == 0) {
            *out = pyval_int((int64_t)pe_cp_count(h, hl) + 1);
            return 0;
        }
        int64_t n = 0;
        for (const char *p = h; (p = memmem(p, hl - (size_t)(p - h), sub->u.str.s, nl)); p += nl)
            n++;
        *out = pyval_int(n);
        return 0;
    }
    ssize_t at = -1;
    if (fn == M_FIND) {
        const char *p = nl ? memmem(h, hl, sub->u.str.s, nl) : h;
        if (p)
            at = p - h;
    } else if (nl <= hl) {
        for (size_t j = hl - nl + 1; j-- > 0;)
            if (memcmp(h + j, sub->u.str.s, nl) == 0) {
                at = (ssize_t)j;
                break;
            }
    }
    *out = pyval_int(at < 0 ? -1 : (int64_t)pe_cp_count(h, (size_t)at));
    return pe_steps(c, hl);
}
