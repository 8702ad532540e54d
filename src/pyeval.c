/* pyeval.c - parse and evaluate the Python subset of offlineimap configs.
 *
 * The source is parsed once into a tree held in a permanent arena; names are
 * resolved while parsing (lambda parameters, True/False/None, re.*, a few
 * builtins and known method names), so anything else is refused before a
 * single folder is looked at, with the construct and its column.  Literal
 * lists, tuples and dicts of constants are built once at compile time and
 * regular expressions given as literals are compiled once and cached, so
 * evaluating a filter over 1,000 folder names is 1,000 short tree walks.
 *
 * Evaluation allocates only from a second arena that is reset at the start
 * of each call: values are never freed one by one, and never mutated, so
 * they may share storage freely (a slice of a constant list points into it).
 * The string and list operations live in pyeval_ops.c.
 */
#include "chars.h"
#include "pyeval_int.h"

#include "err.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PE_MAX_SRC 65536
#define PE_MAX_NEST 64  /* parser recursion */
#define PE_MAX_TREE 200 /* depth of the tree, bounds evaluation recursion */
#define PE_MAX_NODES 20000
#define PE_MAX_PARAMS 4
#define PE_MAX_ARENA (64u << 20)

/* --- arenas ---------------------------------------------------------------------------------- */

struct ablock {
    struct ablock *next;
    size_t used, cap;
    max_align_t data[];
};

void *pe_arena_alloc(struct pe_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    struct ablock *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        if (a->total + cap > PE_MAX_ARENA) {
            a->over = true;
            return NULL;
        }
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
        a->total += cap;
    }
    void *p = (unsigned char *)b->data + b->used;
    b->used += n;
    return p;
}

/* Keep the most recent block for the next evaluation: a filter over many
 * folder names then never calls malloc after the first name. */
static void arena_reset(struct pe_arena *a)
{
    struct ablock *keep = a->head;
    if (!keep)
        return;
    for (struct ablock *b = keep->next, *nx; b; b = nx) {
        nx = b->next;
        free(b);
    }
    keep->next = NULL;
    keep->used = 0;
    a->total = keep->cap;
    a->over = false;
}

static void arena_free(struct pe_arena *a)
{
    for (struct ablock *b = a->head, *nx; b; b = nx) {
        nx = b->next;
        free(b);
    }
    memset(a, 0, sizeof *a);
}

/* --- functions and methods ------------------------------------------------------------------- */

const struct pe_fn pe_fns[F__COUNT] = {
    [F_LEN] = {"len", FK_GLOBAL, 1, 1, {NULL}},
    [F_STR] = {"str", FK_GLOBAL, 0, 1, {"object"}},
    [F_INT] = {"int", FK_GLOBAL, 0, 1, {NULL}},
    [F_BOOL] = {"bool", FK_GLOBAL, 0, 1, {NULL}},
    [F_RE_SEARCH] = {"search", FK_RE, 2, 3, {"pattern", "string", "flags"}},
    [F_RE_MATCH] = {"match", FK_RE, 2, 3, {"pattern", "string", "flags"}},
    [F_RE_FULLMATCH] = {"fullmatch", FK_RE, 2, 3, {"pattern", "string", "flags"}},
    [F_RE_SUB] = {"sub", FK_RE, 3, 5, {"pattern", "repl", "string", "count", "flags"}},
    [F_RE_COMPILE] = {"compile", FK_RE, 1, 2, {"pattern", "flags"}},
    [F_RE_ESCAPE] = {"escape", FK_RE, 1, 1, {"pattern"}},
    [M_STARTSWITH] = {"startswith", FK_METHOD, 1, 1, {NULL}},
    [M_ENDSWITH] = {"endswith", FK_METHOD, 1, 1, {NULL}},
    [M_REPLACE] = {"replace", FK_METHOD, 2, 3, {NULL, NULL, "count"}},
    [M_LOWER] = {"lower", FK_METHOD, 0, 0, {NULL}},
    [M_UPPER] = {"upper", FK_METHOD, 0, 0, {NULL}},
    [M_CASEFOLD] = {"casefold", FK_METHOD, 0, 0, {NULL}},
    [M_STRIP] = {"strip", FK_METHOD, 0, 1, {NULL}},
    [M_LSTRIP] = {"lstrip", FK_METHOD, 0, 1, {NULL}},
    [M_RSTRIP] = {"rstrip", FK_METHOD, 0, 1, {NULL}},
    [M_SPLIT] = {"split", FK_METHOD, 0, 2, {"sep", "maxsplit"}},
    [M_RSPLIT] = {"rsplit", FK_METHOD, 0, 2, {"sep", "maxsplit"}},
    [M_JOIN] = {"join", FK_METHOD, 1, 1, {NULL}},
    [M_FIND] = {"find", FK_METHOD, 1, 1, {NULL}},
    [M_RFIND] = {"rfind", FK_METHOD, 1, 1, {NULL}},
    [M_COUNT] = {"count", FK_METHOD, 1, 1, {NULL}},
    [M_GET] = {"get", FK_METHOD, 1, 2, {NULL}},
    [M_KEYS] = {"keys", FK_METHOD, 0, 0, {NULL}},
    [M_VALUES] = {"values", FK_METHOD, 0, 0, {NULL}},
    [M_ITEMS] = {"items", FK_METHOD, 0, 0, {NULL}},
    [M_GROUP] = {"group", FK_METHOD, 0, 1, {NULL}},
    [M_GROUPS] = {"groups", FK_METHOD, 0, 0, {NULL}},
    [M_START] = {"start", FK_METHOD, 0, 1, {NULL}},
    [M_END] = {"end", FK_METHOD, 0, 1, {NULL}},
    [M_SPAN] = {"span", FK_METHOD, 0, 1, {NULL}},
    [M_SEARCH] = {"search", FK_METHOD, 1, 1, {"string"}},
    [M_MATCH] = {"match", FK_METHOD, 1, 1, {"string"}},
    [M_FULLMATCH] = {"fullmatch", FK_METHOD, 1, 1, {"string"}},
    [M_SUB] = {"sub", FK_METHOD, 2, 3, {"repl", "string", "count"}},
};

static int find_fn(int kind, const char *name, size_t len)
{
    for (int k = 0; k < F__COUNT; k++)
        if (pe_fns[k].kind == kind && strlen(pe_fns[k].name) == len &&
            memcmp(pe_fns[k].name, name, len) == 0)
            return k;
    return -1;
}

/* --- lexer ----------------------------------------------------------------------------------- */

enum tk { T_END, T_NAME, T_INT, T_STR, T_OP };

struct tok {
    enum tk kind;
    size_t start, end; /* source span */
    int64_t ival;
    const char *s; /* T_STR: decoded, in the permanent arena */
    size_t slen;
};

struct parser {
    struct pyeval *e;
    const char *src;
    size_t len, pos;
    struct tok tok;
    char params[PE_MAX_PARAMS][64];
    int nparams;
    int nest;
    size_t nnodes;
    bool failed;
    char *err;
    size_t errlen;
};

/* "at column C", or "at column C of line L" when the value spans lines
 * (configparser joins continuation lines with "\n"). */
static void position(const struct parser *ps, size_t off, char *buf, size_t cap)
{
    size_t line = 0, col = 0;
    for (size_t k = 0; k < off && k < ps->len;) {
        uint32_t cp;
        k += pyeval_u8_decode(ps->src, ps->len, k, &cp);
        if (cp == '\n')
            line++, col = 0;
        else
            col++;
    }
    if (line)
        snprintf(buf, cap, "at column %zu of the option's line %zu", col + 1, line + 1);
    else
        snprintf(buf, cap, "at column %zu", col + 1);
}

__attribute__((format(printf, 3, 4))) static void *perr(struct parser *ps, size_t off,
                                                        const char *fmt, ...)
{
    if (ps->failed)
        return NULL;
    ps->failed = true;
    char msg[512], pos[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    position(ps, off, pos, sizeof pos);
    if (ps->err && ps->errlen)
        snprintf(ps->err, ps->errlen, "%s: %s %s", ps->e->where, msg, pos);
    else if (!ps->err)
        log_error("%s: %s %s", ps->e->where, msg, pos);
    return NULL;
}

/* The construct named in the message: the source from start to end (at most
 * 40 bytes, cut at a line end). */
static void *unsupported(struct parser *ps, size_t start, size_t end)
{
    if (start >= ps->len)
        return perr(ps, start, "unexpected end of expression");
    size_t n = end > start ? end - start : 1;
    if (n > 40)
        n = 40;
    const char *nl = memchr(ps->src + start, '\n', n);
    if (nl)
        n = (size_t)(nl - (ps->src + start));
    return perr(ps, start, "unsupported Python construct '%.*s'", (int)n, ps->src + start);
}

static bool is_ident_start(unsigned char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

static bool is_ident(unsigned char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

/* A string literal body starting at ps->pos (after the prefix).  Python's
 * escapes; an unknown escape keeps its backslash, as Python does. */
static bool lex_string(struct parser *ps, bool raw, size_t tok_start)
{
    const char *s = ps->src;
    char q = s[ps->pos];
    bool triple = ps->pos + 2 < ps->len && s[ps->pos + 1] == q && s[ps->pos + 2] == q;
    size_t i = ps->pos + (triple ? 3 : 1);
    /* Size the output by the literal's extent: escapes only shrink. */
    size_t j = i;
    while (j < ps->len &&
           !(s[j] == q && (!triple || (j + 2 < ps->len && s[j + 1] == q && s[j + 2] == q))))
        j += s[j] == '\\' ? 2 : 1;
    char *out = pe_arena_alloc(&ps->e->perm, (j < ps->len ? j : ps->len) - i + 1);
    size_t n = 0;
    if (!out)
        return perr(ps, tok_start, "out of memory"), false;
    for (;;) {
        if (i >= ps->len)
            return perr(ps, tok_start, "unterminated string literal"), false;
        char c = s[i];
        if (c == q && (!triple || (i + 2 < ps->len && s[i + 1] == q && s[i + 2] == q))) {
            i += triple ? 3 : 1;
            break;
        }
        if (c == '\n' && !triple)
            return perr(ps, tok_start, "unterminated string literal"), false;
        if (c != '\\') {
            out[n++] = c;
            i++;
            continue;
        }
        if (i + 1 >= ps->len)
            return perr(ps, tok_start, "unterminated string literal"), false;
        char e = s[i + 1];
        if (raw) { /* the backslash stays; it only protects a quote */
            out[n++] = c;
            out[n++] = e;
            i += 2;
            continue;
        }
        i += 2;
        uint32_t cp = 0;
        int digits = 0;
        switch (e) {
        case '\n':
            continue;
        case 'n':
            out[n++] = '\n';
            continue;
        case 't':
            out[n++] = '\t';
            continue;
        case 'r':
            out[n++] = '\r';
            continue;
        case 'a':
            out[n++] = '\a';
            continue;
        case 'b':
            out[n++] = '\b';
            continue;
        case 'f':
            out[n++] = '\f';
            continue;
        case 'v':
            out[n++] = '\v';
            continue;
        case '\\':
        case '\'':
        case '"':
            out[n++] = e;
            continue;
        case 'x':
            digits = 2;
            break;
        case 'u':
            digits = 4;
            break;
        case 'U':
            digits = 8;
            break;
        case 'N':
            return unsupported(ps, i - 2, i + 1), false;
        default:
            if (e >= '0' && e <= '7') {
                cp = (uint32_t)(e - '0');
                for (int k = 0; k < 2 && i < ps->len && s[i] >= '0' && s[i] <= '7'; k++)
                    cp = cp * 8 + (uint32_t)(s[i++] - '0');
                n += pyeval_u8_encode(cp, out + n);
                continue;
            }
            out[n++] = '\\';
            out[n++] = e;
            continue;
        }
        for (int k = 0; k < digits; k++) {
            int h = i < ps->len ? chars_hex_value(s[i]) : -1;
            if (h < 0)
                return perr(ps, i, "truncated \\%c escape", e), false;
            cp = cp * 16 + (uint32_t)h;
            i++;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return perr(ps, i, "illegal Unicode character"), false;
        n += pyeval_u8_encode(cp, out + n);
    }
    out[n] = '\0';
    ps->tok.kind = T_STR;
    ps->tok.s = out;
    ps->tok.slen = n;
    ps->pos = i;
    return true;
}

static bool lex_number(struct parser *ps)
{
    const char *s = ps->src;
    size_t i = ps->pos, start = i;
    int base = 10;
    if (s[i] == '0' && i + 1 < ps->len && strchr("xXoObB", s[i + 1])) {
        base = strchr("xX", s[i + 1]) ? 16 : strchr("oO", s[i + 1]) ? 8 : 2;
        i += 2;
    }
    uint64_t v = 0;
    size_t nd = 0;
    for (; i < ps->len; i++) {
        if (s[i] == '_' && nd)
            continue;
        int d = chars_hex_value(s[i]);
        if (d < 0 || d >= base)
            break;
        if (v > (uint64_t)INT64_MAX / (uint64_t)base)
            return perr(ps, start, "integer literal too large"), false;
        v = v * (uint64_t)base + (uint64_t)d;
        if (v > (uint64_t)INT64_MAX)
            return perr(ps, start, "integer literal too large"), false;
        nd++;
    }
    if (!nd || (i < ps->len && (s[i] == '.' || s[i] == 'e' || s[i] == 'E' || s[i] == 'j' ||
                                is_ident((unsigned char)s[i]))))
        return unsupported(ps, start, i + 1), false;
    ps->tok.kind = T_INT;
    ps->tok.ival = (int64_t)v;
    ps->pos = i;
    return true;
}

static const char *const ops2[] = {
    "**", "//", "==", "!=", "<=", ">=", "->", ":=", "<<", ">>", "<>"};

/* Next token into ps->tok.  Newlines are plain space: the whole option is
 * one expression, however configparser split it over lines. */
static bool lex(struct parser *ps)
{
    const char *s = ps->src;
    for (;;) {
        while (ps->pos < ps->len && strchr(" \t\n\r\f\v", s[ps->pos]) && s[ps->pos])
            ps->pos++;
        if (ps->pos + 1 < ps->len && s[ps->pos] == '\\' &&
            (s[ps->pos + 1] == '\n' || s[ps->pos + 1] == '\r')) {
            ps->pos += 2;
            continue;
        }
        if (ps->pos < ps->len && s[ps->pos] == '#') {
            while (ps->pos < ps->len && s[ps->pos] != '\n')
                ps->pos++;
            continue;
        }
        break;
    }
    struct tok *t = &ps->tok;
    memset(t, 0, sizeof *t);
    t->start = ps->pos;
    if (ps->pos >= ps->len) {
        t->kind = T_END;
        t->end = ps->pos;
        return true;
    }
    unsigned char c = (unsigned char)s[ps->pos];
    bool ok;
    if (is_ident_start(c)) {
        size_t i = ps->pos;
        while (i < ps->len && is_ident((unsigned char)s[i]))
            i++;
        size_t n = i - ps->pos;
        if (i < ps->len && (s[i] == '\'' || s[i] == '"') && n <= 2) {
            bool raw = false, other = false;
            for (size_t k = ps->pos; k < i; k++) {
                char p = s[k];
                if (p == 'r' || p == 'R')
                    raw = true;
                else if (p != 'u' && p != 'U')
                    other = true;
            }
            if (other) /* b'', f'' */
                return unsupported(ps, ps->pos, i + 1), false;
            ps->pos = i;
            ok = lex_string(ps, raw, t->start);
        } else {
            t->kind = T_NAME;
            ps->pos = i;
            ok = true;
        }
    } else if (c >= '0' && c <= '9') {
        ok = lex_number(ps);
    } else if (c == '\'' || c == '"') {
        ok = lex_string(ps, false, t->start);
    } else {
        t->kind = T_OP;
        ps->pos++;
        for (size_t k = 0; k < sizeof ops2 / sizeof ops2[0]; k++)
            if (t->start + 1 < ps->len && s[t->start] == ops2[k][0] &&
                s[t->start + 1] == ops2[k][1]) {
                ps->pos++;
                break;
            }
        if (ps->pos == t->start + 1 && !strchr("()[]{},:.+-*/%<>=|&^~@;!", (char)c))
            return unsupported(ps, t->start, t->start + 1), false;
        ok = true;
    }
    t->end = ps->pos;
    return ok;
}

static bool tok_is(const struct parser *ps, const char *op)
{
    const struct tok *t = &ps->tok;
    size_t n = strlen(op);
    return (t->kind == T_OP || t->kind == T_NAME) && t->end - t->start == n &&
           memcmp(ps->src + t->start, op, n) == 0;
}

static bool expect(struct parser *ps, const char *op)
{
    if (!tok_is(ps, op)) {
        if (ps->tok.kind == T_END)
            perr(ps, ps->tok.start, "expected '%s' but the expression ends", op);
        else
            unsupported(ps, ps->tok.start, ps->tok.end);
        return false;
    }
    return lex(ps);
}

/* --- tree ------------------------------------------------------------------------------------ */

static struct pe_node *node_new(struct parser *ps, int kind, size_t pos, size_t nkids)
{
    if (ps->failed)
        return NULL;
    if (++ps->nnodes > PE_MAX_NODES)
        return perr(ps, pos, "expression too large");
    struct pe_node *n = pe_arena_alloc(&ps->e->perm, sizeof *n);
    struct pe_node **kids = nkids ? pe_arena_alloc(&ps->e->perm, nkids * sizeof *kids) : NULL;
    if (!n || (nkids && !kids))
        return perr(ps, pos, "out of memory");
    memset(n, 0, sizeof *n);
    if (kids)
        memset(kids, 0, nkids * sizeof *kids);
    n->kind = (uint8_t)kind;
    n->pos = pos;
    n->kids = kids;
    n->nkids = nkids;
    n->depth = 1;
    return n;
}

/* Set n's depth from its children; refuse trees deeper than evaluation may
 * recurse. */
static struct pe_node *seal(struct parser *ps, struct pe_node *n)
{
    if (!n)
        return NULL;
    for (size_t k = 0; k < n->nkids; k++)
        if (n->kids[k] && n->kids[k]->depth + 1 > n->depth)
            n->depth = n->kids[k]->depth + 1;
    if (n->depth > PE_MAX_TREE)
        return perr(ps, n->pos, "expression too deeply nested");
    return n;
}

static struct pe_node *const_node(struct parser *ps, size_t pos, struct pyval v)
{
    struct pe_node *n = node_new(ps, N_CONST, pos, 0);
    if (n)
        n->val = v;
    return n;
}

/* Growable list of nodes while parsing a display or an argument list. */
struct nvec {
    struct pe_node **v;
    size_t n, cap;
};

static bool nvec_push(struct parser *ps, struct nvec *nv, struct pe_node *x)
{
    if (!x)
        return false;
    if (nv->n == nv->cap) {
        size_t cap = nv->cap ? nv->cap * 2 : 8;
        struct pe_node **v = realloc(nv->v, cap * sizeof *v);
        if (!v)
            return perr(ps, x->pos, "out of memory"), false;
        nv->v = v;
        nv->cap = cap;
    }
    nv->v[nv->n++] = x;
    return true;
}

static struct pe_node *from_nvec(struct parser *ps, int kind, size_t pos, struct nvec *nv)
{
    struct pe_node *n = node_new(ps, kind, pos, nv->n);
    if (n && nv->n)
        memcpy(n->kids, nv->v, nv->n * sizeof *nv->v);
    free(nv->v);
    nv->v = NULL;
    return seal(ps, n);
}

/* Build displays of constants once, at compile time. */
static struct pe_node *fold(struct parser *ps, struct pe_node *n)
{
    if (!n)
        return NULL;
    for (size_t k = 0; k < n->nkids; k++)
        if (!n->kids[k] || n->kids[k]->kind != N_CONST)
            return n;
    struct pe_ctx c = {.e = ps->e, .ar = &ps->e->perm};
    struct pyval v;
    char saved[sizeof ps->e->errmsg];
    memcpy(saved, ps->e->errmsg, sizeof saved);
    if (pe_eval_node(&c, n, &v) == 0) {
        n->kind = N_CONST;
        n->val = v;
        n->nkids = 0;
        n->depth = 1;
    }
    memcpy(ps->e->errmsg, saved, sizeof saved); /* a runtime error stays one */
    return n;
}

/* --- parser ---------------------------------------------------------------------------------- */

static struct pe_node *parse_test(struct parser *ps);

static bool enter(struct parser *ps)
{
    if (++ps->nest > PE_MAX_NEST) {
        perr(ps, ps->tok.start, "expression too deeply nested");
        return false;
    }
    return true;
}

static int param_index(const struct parser *ps, const char *name, size_t len)
{
    for (int k = 0; k < ps->nparams; k++)
        if (strlen(ps->params[k]) == len && memcmp(ps->params[k], name, len) == 0)
            return k;
    return -1;
}

/* The end of a dotted name starting at off ("os.path.join"), for messages. */
static size_t dotted_end(const struct parser *ps, size_t off)
{
    size_t i = off;
    for (;;) {
        while (i < ps->len && is_ident((unsigned char)ps->src[i]))
            i++;
        if (i + 1 < ps->len && ps->src[i] == '.' && is_ident_start((unsigned char)ps->src[i + 1]))
            i++;
        else
            return i;
    }
}

/* Call arguments after '(' for fn, into slots 1.. of a N_CALL node whose
 * slot 0 is the receiver. */
static struct pe_node *parse_call(struct parser *ps, int fn, struct pe_node *recv, size_t pos)
{
    const struct pe_fn *f = &pe_fns[fn];
    struct pe_node *n = node_new(ps, N_CALL, pos, 1 + (size_t)f->max);
    if (!n || !lex(ps)) /* '(' */
        return NULL;
    n->fn = (uint8_t)fn;
    n->kids[0] = recv;
    int npos = 0;
    bool kw_seen = false;
    while (!tok_is(ps, ")")) {
        if (tok_is(ps, "*") || tok_is(ps, "**"))
            return unsupported(ps, ps->tok.start, ps->tok.end);
        int slot;
        size_t at = ps->tok.start;
        if (ps->tok.kind == T_NAME && ps->pos < ps->len) {
            /* name=value?  Look past spaces for a single '='. */
            size_t i = ps->pos;
            while (i < ps->len && (ps->src[i] == ' ' || ps->src[i] == '\t' || ps->src[i] == '\n'))
                i++;
            if (i < ps->len && ps->src[i] == '=' && (i + 1 >= ps->len || ps->src[i + 1] != '=')) {
                size_t nlen = ps->tok.end - ps->tok.start;
                slot = -1;
                for (int k = 0; k < f->max; k++)
                    if (f->kw[k] && strlen(f->kw[k]) == nlen &&
                        memcmp(f->kw[k], ps->src + at, nlen) == 0)
                        slot = k;
                if (slot < 0)
                    return perr(ps, at, "%s() got an unexpected keyword argument '%.*s'", f->name,
                                (int)nlen, ps->src + at);
                if (n->kids[1 + slot])
                    return perr(ps, at, "%s() got multiple values for argument '%s'", f->name,
                                f->kw[slot]);
                ps->pos = i + 1;
                if (!lex(ps))
                    return NULL;
                kw_seen = true;
                goto value;
            }
        }
        if (kw_seen)
            return perr(ps, at, "positional argument follows keyword argument");
        if (npos >= f->max)
            return perr(ps, at, "%s() takes at most %d argument%s", f->name, f->max,
                        f->max == 1 ? "" : "s");
        slot = npos++;
    value:;
        struct pe_node *a = parse_test(ps);
        if (!a)
            return NULL;
        n->kids[1 + slot] = a;
        if (tok_is(ps, ","))
            lex(ps);
        else if (!tok_is(ps, ")"))
            return expect(ps, ")"), NULL;
    }
    for (int k = 0; k < f->min; k++)
        if (!n->kids[1 + k])
            return perr(ps, pos, "%s() takes at least %d argument%s", f->name, f->min,
                        f->min == 1 ? "" : "s");
    if (!lex(ps)) /* ')' */
        return NULL;
    /* A literal pattern is compiled now: its errors are config errors. */
    if (f->kind == FK_RE && fn != F_RE_ESCAPE) {
        struct pe_node *p = n->kids[1];
        struct pe_node *fl = fn == F_RE_SUB       ? n->kids[5]
                             : fn == F_RE_COMPILE ? n->kids[2]
                                                  : n->kids[3];
        if (p->kind == N_CONST && p->val.type == PYV_STR &&
            (!fl || (fl->kind == N_CONST && fl->val.type == PYV_INT))) {
            const struct pyeval_re *re;
            char msg[256];
            int r = pe_re_get(ps->e, p->val.u.str.s, p->val.u.str.len, fl ? (int)fl->val.u.i : 0,
                              msg, sizeof msg, &re);
            if (r < 0)
                return perr(ps, p->pos, "bad regular expression: %s", msg);
        }
    }
    return seal(ps, n);
}

static struct pe_node *parse_name(struct parser *ps)
{
    const char *name = ps->src + ps->tok.start;
    size_t len = ps->tok.end - ps->tok.start, pos = ps->tok.start;
    int p = param_index(ps, name, len);
    if (p >= 0) {
        struct pe_node *n = node_new(ps, N_PARAM, pos, 0);
        if (n)
            n->val.u.i = p;
        return lex(ps) ? n : NULL;
    }
#define IS(w) (len == strlen(w) && memcmp(name, w, len) == 0)
    if (IS("True") || IS("False") || IS("None")) {
        struct pyval v = {.type = IS("None") ? PYV_NONE : PYV_BOOL};
        v.u.b = IS("True");
        return lex(ps) ? const_node(ps, pos, v) : NULL;
    }
    if (IS("re")) {
        if (!lex(ps) || !tok_is(ps, ".") || !lex(ps) || ps->tok.kind != T_NAME)
            return unsupported(ps, pos, dotted_end(ps, pos));
        const char *a = ps->src + ps->tok.start;
        size_t alen = ps->tok.end - ps->tok.start;
        static const struct {
            const char *name;
            int v;
        } consts[] = {{"I", PYEVAL_RE_I}, {"IGNORECASE", PYEVAL_RE_I},
                      {"M", PYEVAL_RE_M}, {"MULTILINE", PYEVAL_RE_M},
                      {"S", PYEVAL_RE_S}, {"DOTALL", PYEVAL_RE_S},
                      {"A", PYEVAL_RE_A}, {"ASCII", PYEVAL_RE_A},
                      {"U", PYEVAL_RE_U}, {"UNICODE", PYEVAL_RE_U}};
        for (size_t k = 0; k < sizeof consts / sizeof consts[0]; k++)
            if (strlen(consts[k].name) == alen && memcmp(consts[k].name, a, alen) == 0)
                return lex(ps) ? const_node(ps, pos, pyval_int(consts[k].v)) : NULL;
        int fn = find_fn(FK_RE, a, alen);
        if (fn < 0 || !lex(ps) || !tok_is(ps, "("))
            return unsupported(ps, pos, dotted_end(ps, pos));
        return parse_call(ps, fn, NULL, pos);
    }
    int fn = find_fn(FK_GLOBAL, name, len);
    if (fn >= 0) {
        if (!lex(ps))
            return NULL;
        if (!tok_is(ps, "("))
            return unsupported(ps, pos, pos + len);
        return parse_call(ps, fn, NULL, pos);
    }
    if (IS("lambda"))
        return perr(ps, pos,
                    "unsupported Python construct 'lambda' (only the whole option may "
                    "be a lambda)");
#undef IS
    return unsupported(ps, pos, dotted_end(ps, pos));
}

/* ( ... ), [ ... ], { ... } */
static struct pe_node *parse_display(struct parser *ps)
{
    size_t pos = ps->tok.start;
    char open = ps->src[pos];
    const char *close = open == '(' ? ")" : open == '[' ? "]" : "}";
    struct nvec nv = {0};
    bool comma = false, dict = open == '{';
    if (!lex(ps))
        return NULL;
    while (!tok_is(ps, close)) {
        if (tok_is(ps, "*") || tok_is(ps, "**"))
            goto unsup;
        if (!nvec_push(ps, &nv, parse_test(ps)))
            goto fail;
        if (dict) {
            if (!tok_is(ps, ":")) {
                if (nv.n == 1 && (tok_is(ps, ",") || tok_is(ps, "}")))
                    return free(nv.v), perr(ps, pos, "unsupported Python construct 'set'");
                goto unsup;
            }
            if (!lex(ps) || !nvec_push(ps, &nv, parse_test(ps)))
                goto fail;
        }
        if (tok_is(ps, ",")) {
            comma = true;
            if (!lex(ps))
                goto fail;
        } else if (!tok_is(ps, close)) {
            goto unsup;
        }
    }
    if (!lex(ps))
        goto fail;
    if (open == '(' && nv.n == 1 && !comma) { /* just parentheses */
        struct pe_node *x = nv.v[0];
        free(nv.v);
        return x;
    }
    return fold(ps, from_nvec(ps, open == '(' ? N_TUPLE : open == '[' ? N_LIST : N_DICT, pos, &nv));
unsup:
    if (ps->tok.kind == T_END)
        perr(ps, ps->tok.start, "expected '%s' but the expression ends", close);
    else
        unsupported(ps, ps->tok.start, ps->tok.end);
fail:
    free(nv.v);
    return NULL;
}

static struct pe_node *parse_atom(struct parser *ps)
{
    struct tok *t = &ps->tok;
    size_t pos = t->start;
    switch (t->kind) {
    case T_END:
        return perr(ps, pos, "unexpected end of expression");
    case T_NAME:
        return parse_name(ps);
    case T_INT: {
        int64_t v = t->ival;
        return lex(ps) ? const_node(ps, pos, pyval_int(v)) : NULL;
    }
    case T_STR: {
        /* Adjacent literals are one string ('a' 'b' == 'ab'). */
        const char *s = t->s;
        size_t len = t->slen;
        if (!lex(ps))
            return NULL;
        if (t->kind != T_STR)
            return const_node(ps, pos, pyval_strn(s, len));
        /* Several: note the pieces, then join once. */
        struct {
            const char *s;
            size_t len;
        } *pc = NULL;
        size_t n = 0, total = 0;
        for (bool first = true; first || t->kind == T_STR; first = false) {
            if (n % 16 == 0) {
                void *np = realloc(pc, (n + 16) * sizeof *pc);
                if (!np) {
                    free(pc);
                    return perr(ps, pos, "out of memory");
                }
                pc = np;
            }
            if (first) {
                pc[n].s = s, pc[n++].len = len;
                total += len;
                continue;
            }
            pc[n].s = t->s, pc[n++].len = t->slen;
            total += t->slen;
            if (!lex(ps)) {
                free(pc);
                return NULL;
            }
        }
        char *j = pe_arena_alloc(&ps->e->perm, total + 1);
        if (!j) {
            free(pc);
            return perr(ps, pos, "out of memory");
        }
        for (size_t k = 0, at = 0; k < n; at += pc[k].len, k++)
            memcpy(j + at, pc[k].s, pc[k].len);
        j[total] = '\0';
        free(pc);
        return const_node(ps, pos, pyval_strn(j, total));
    }
    case T_OP:
        if (tok_is(ps, "(") || tok_is(ps, "[") || tok_is(ps, "{"))
            return parse_display(ps);
        break;
    }
    return unsupported(ps, pos, t->end);
}

static struct pe_node *parse_primary(struct parser *ps)
{
    if (!enter(ps))
        return NULL;
    struct pe_node *x = parse_atom(ps);
    while (x) {
        size_t pos = ps->tok.start;
        if (tok_is(ps, ".")) {
            if (!lex(ps))
                return NULL;
            if (ps->tok.kind != T_NAME)
                return unsupported(ps, pos, ps->tok.end);
            int fn = find_fn(FK_METHOD, ps->src + ps->tok.start, ps->tok.end - ps->tok.start);
            size_t end = ps->tok.end;
            if (fn < 0 || !lex(ps) || !tok_is(ps, "("))
                return unsupported(ps, pos, end);
            x = parse_call(ps, fn, x, pos);
        } else if (tok_is(ps, "[")) {
            struct pe_node *n = node_new(ps, N_INDEX, pos, 4);
            if (!n || !lex(ps))
                return NULL;
            n->kids[0] = x;
            int part = 1;
            bool slice = false;
            while (!tok_is(ps, "]")) {
                if (tok_is(ps, ":")) {
                    if (++part > 3)
                        return unsupported(ps, ps->tok.start, ps->tok.end);
                    slice = true;
                    if (!lex(ps))
                        return NULL;
                    continue;
                }
                if (n->kids[part])
                    return unsupported(ps, ps->tok.start, ps->tok.end);
                if (!(n->kids[part] = parse_test(ps)))
                    return NULL;
                if (tok_is(ps, ","))
                    return unsupported(ps, ps->tok.start, ps->tok.end);
            }
            if (!slice && !n->kids[1])
                return perr(ps, pos, "empty subscript");
            if (slice)
                n->kind = N_SLICE;
            else
                n->nkids = 2;
            if (!lex(ps))
                return NULL;
            x = seal(ps, n);
        } else if (tok_is(ps, "(")) {
            return perr(ps, pos,
                        "unsupported Python construct: calling a value that is not a "
                        "known function");
        } else {
            break;
        }
    }
    ps->nest--;
    return x;
}

static struct pe_node *unary(struct parser *ps, int kind, size_t pos, struct pe_node *x)
{
    struct pe_node *n = node_new(ps, kind, pos, 1);
    if (!n || !x)
        return NULL;
    n->kids[0] = x;
    return fold(ps, seal(ps, n));
}

static struct pe_node *binary(struct parser *ps, int kind, int op, size_t pos, struct pe_node *a,
                              struct pe_node *b)
{
    if (!a || !b)
        return NULL;
    struct pe_node *n = node_new(ps, kind, pos, 2);
    if (!n)
        return NULL;
    n->op = (uint8_t)op;
    n->kids[0] = a;
    n->kids[1] = b;
    return seal(ps, n);
}

static struct pe_node *parse_factor(struct parser *ps)
{
    size_t pos = ps->tok.start;
    if (tok_is(ps, "-") || tok_is(ps, "+") || tok_is(ps, "~")) {
        if (tok_is(ps, "~"))
            return unsupported(ps, pos, pos + 1);
        int kind = tok_is(ps, "-") ? N_NEG : N_POS;
        if (!enter(ps) || !lex(ps))
            return NULL;
        struct pe_node *x = unary(ps, kind, pos, parse_factor(ps));
        ps->nest--;
        return x;
    }
    struct pe_node *x = parse_primary(ps);
    if (x && tok_is(ps, "**"))
        return unsupported(ps, ps->tok.start, ps->tok.end);
    return x;
}

static struct pe_node *parse_term(struct parser *ps)
{
    struct pe_node *x = parse_factor(ps);
    for (;;) {
        int op;
        if (tok_is(ps, "*"))
            op = B_MUL;
        else if (tok_is(ps, "//"))
            op = B_FLOORDIV;
        else if (tok_is(ps, "%"))
            op = B_MOD;
        else if (tok_is(ps, "/") || tok_is(ps, "@"))
            return unsupported(ps, ps->tok.start, ps->tok.end);
        else
            return x;
        size_t pos = ps->tok.start;
        if (!x || !lex(ps))
            return NULL;
        x = binary(ps, N_BIN, op, pos, x, parse_factor(ps));
    }
}

static struct pe_node *parse_arith(struct parser *ps)
{
    struct pe_node *x = parse_term(ps);
    while (tok_is(ps, "+") || tok_is(ps, "-")) {
        int op = tok_is(ps, "+") ? B_ADD : B_SUB;
        size_t pos = ps->tok.start;
        if (!x || !lex(ps))
            return NULL;
        x = binary(ps, N_BIN, op, pos, x, parse_term(ps));
    }
    if (x && (tok_is(ps, "<<") || tok_is(ps, ">>")))
        return unsupported(ps, ps->tok.start, ps->tok.end);
    return x;
}

/* | and & on integers, for re.I | re.M. */
static struct pe_node *parse_bits(struct parser *ps)
{
    struct pe_node *x = parse_arith(ps);
    while (tok_is(ps, "|") || tok_is(ps, "&")) {
        int op = tok_is(ps, "|") ? B_BITOR : B_BITAND;
        size_t pos = ps->tok.start;
        if (!x || !lex(ps))
            return NULL;
        x = binary(ps, N_BIN, op, pos, x, parse_arith(ps));
    }
    if (x && tok_is(ps, "^"))
        return unsupported(ps, ps->tok.start, ps->tok.end);
    return x;
}

static int cmp_op(struct parser *ps)
{
    static const struct {
        const char *s;
        int op;
    } ops[] = {{"==", C_EQ}, {"!=", C_NE}, {"<=", C_LE}, {">=", C_GE},
               {"<", C_LT},  {">", C_GT},  {"in", C_IN}, {"is", C_IS}};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (tok_is(ps, ops[k].s))
            return ops[k].op;
    if (tok_is(ps, "not")) {
        /* "not in" (the only binary use of not) */
        size_t i = ps->pos;
        while (i < ps->len && strchr(" \t\r\n", ps->src[i]))
            i++;
        if (i + 2 <= ps->len && memcmp(ps->src + i, "in", 2) == 0 &&
            (i + 2 == ps->len || !is_ident((unsigned char)ps->src[i + 2])))
            return C_NOTIN;
    }
    return -1;
}

static struct pe_node *parse_comparison(struct parser *ps)
{
    size_t pos = ps->tok.start;
    struct pe_node *x = parse_bits(ps);
    int op = cmp_op(ps);
    if (!x || op < 0)
        return x;
    struct nvec nv = {0};
    uint8_t ops[64];
    size_t nops = 0;
    if (!nvec_push(ps, &nv, x))
        return NULL;
    while ((op = cmp_op(ps)) >= 0) {
        if (nops == sizeof ops) {
            free(nv.v);
            return perr(ps, ps->tok.start, "comparison chain too long");
        }
        if (!lex(ps))
            goto fail;
        if (op == C_NOTIN && !lex(ps)) /* the "in" */
            goto fail;
        if (op == C_IS && tok_is(ps, "not")) {
            op = C_ISNOT;
            if (!lex(ps))
                goto fail;
        }
        ops[nops++] = (uint8_t)op;
        if (!nvec_push(ps, &nv, parse_bits(ps)))
            goto fail;
    }
    struct pe_node *n = from_nvec(ps, N_CMP, pos, &nv);
    if (!n)
        return NULL;
    n->ops = pe_arena_alloc(&ps->e->perm, nops);
    if (!n->ops)
        return perr(ps, pos, "out of memory");
    memcpy(n->ops, ops, nops);
    return n;
fail:
    free(nv.v);
    return NULL;
}

static struct pe_node *parse_not(struct parser *ps)
{
    if (tok_is(ps, "not")) {
        size_t pos = ps->tok.start;
        if (!enter(ps) || !lex(ps))
            return NULL;
        struct pe_node *x = unary(ps, N_NOT, pos, parse_not(ps));
        ps->nest--;
        return x;
    }
    return parse_comparison(ps);
}

/* a and b and c / a or b or c: one node with n operands, so long chains
 * of conditions do not make a deep tree. */
static struct pe_node *parse_chain(struct parser *ps, const char *word, int kind,
                                   struct pe_node *(*sub)(struct parser *))
{
    size_t pos = ps->tok.start;
    struct pe_node *x = sub(ps);
    if (!x || !tok_is(ps, word))
        return x;
    struct nvec nv = {0};
    if (!nvec_push(ps, &nv, x))
        return NULL;
    while (tok_is(ps, word)) {
        if (!lex(ps) || !nvec_push(ps, &nv, sub(ps))) {
            free(nv.v);
            return NULL;
        }
    }
    return from_nvec(ps, kind, pos, &nv);
}

static struct pe_node *parse_and(struct parser *ps)
{
    return parse_chain(ps, "and", N_AND, parse_not);
}

static struct pe_node *parse_or(struct parser *ps)
{
    return parse_chain(ps, "or", N_OR, parse_and);
}

static struct pe_node *parse_test(struct parser *ps)
{
    if (!enter(ps))
        return NULL;
    size_t pos = ps->tok.start;
    struct pe_node *x = parse_or(ps);
    if (x && tok_is(ps, "if")) {
        struct pe_node *n = node_new(ps, N_IF, pos, 3);
        if (!n || !lex(ps))
            return NULL;
        n->kids[0] = x;
        if (!(n->kids[1] = parse_or(ps)) || !expect(ps, "else") || !(n->kids[2] = parse_test(ps)))
            return NULL;
        x = seal(ps, n);
    }
    if (x && (tok_is(ps, "for") || tok_is(ps, ":=")))
        return unsupported(ps, ps->tok.start, ps->tok.end);
    ps->nest--;
    return x;
}

static bool parse_top(struct parser *ps)
{
    if (!lex(ps))
        return false;
    struct pyeval *e = ps->e;
    e->nparams = -1;
    if (tok_is(ps, "lambda")) {
        e->nparams = 0;
        if (!lex(ps))
            return false;
        while (!tok_is(ps, ":")) {
            if (ps->tok.kind != T_NAME || ps->nparams == PE_MAX_PARAMS ||
                ps->tok.end - ps->tok.start >= sizeof ps->params[0])
                return unsupported(ps, ps->tok.start, ps->tok.end), false;
            snprintf(ps->params[ps->nparams], sizeof ps->params[0], "%.*s",
                     (int)(ps->tok.end - ps->tok.start), ps->src + ps->tok.start);
            ps->nparams++;
            if (!lex(ps))
                return false;
            if (tok_is(ps, "="))
                return unsupported(ps, ps->tok.start, ps->tok.end), false;
            if (tok_is(ps, ","))
                if (!lex(ps))
                    return false;
        }
        if (!lex(ps))
            return false;
        e->nparams = ps->nparams;
    }
    size_t pos = ps->tok.start;
    struct pe_node *x = parse_test(ps);
    if (x && tok_is(ps, ",") && e->nparams < 0) { /* 'a', 'b' is a tuple */
        struct nvec nv = {0};
        if (!nvec_push(ps, &nv, x))
            return false;
        while (tok_is(ps, ",")) {
            if (!lex(ps))
                return free(nv.v), false;
            if (ps->tok.kind == T_END)
                break;
            if (!nvec_push(ps, &nv, parse_test(ps)))
                return free(nv.v), false;
        }
        x = fold(ps, from_nvec(ps, N_TUPLE, pos, &nv));
    }
    if (!x)
        return false;
    if (ps->tok.kind != T_END)
        return unsupported(ps, ps->tok.start, ps->tok.end), false;
    e->root = x;
    return true;
}

/* --- regular expression cache ---------------------------------------------------------------- */

int pe_re_get(struct pyeval *e, const char *pat, size_t len, int flags, char *err, size_t errlen,
              const struct pyeval_re **re_r)
{
    for (size_t k = 0; k < e->ncache; k++)
        if (e->cache[k].flags == flags && e->cache[k].len == len &&
            memcmp(e->cache[k].pat, pat, len) == 0) {
            *re_r = e->cache[k].re;
            return 0;
        }
    struct pyeval_re *re;
    int r = pyeval_re_compile(pat, len, flags, err, errlen, &re);
    if (r < 0)
        return r;
    if (e->ncache < PE_RE_CACHE) {
        char *copy = malloc(len + 1);
        if (!copy) {
            pyeval_re_free(&re);
            return -ENOMEM;
        }
        memcpy(copy, pat, len);
        e->cache[e->ncache++] = (struct pe_recache){copy, len, flags, re};
    } else {
        /* Patterns built at run time beyond the cache: freed with the
         * evaluation's values. */
        struct pyeval_re **t = realloc(e->tmp_re, (e->ntmp + 1) * sizeof *t);
        if (!t) {
            pyeval_re_free(&re);
            return -ENOMEM;
        }
        e->tmp_re = t;
        e->tmp_re[e->ntmp++] = re;
    }
    *re_r = re;
    return 0;
}

static void drop_tmp_re(struct pyeval *e)
{
    for (size_t k = 0; k < e->ntmp; k++)
        pyeval_re_free(&e->tmp_re[k]);
    e->ntmp = 0;
}

/* --- public API ------------------------------------------------------------------------------ */

int pyeval_compile(const char *src, const char *where, char *err, size_t errlen,
                   struct pyeval **e_r)
{
    *e_r = NULL;
    if (err && errlen)
        err[0] = '\0';
    struct pyeval *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    snprintf(e->where, sizeof e->where, "%s", where ? where : "expression");
    struct parser ps = {.e = e, .src = src ? src : "", .err = err, .errlen = errlen};
    ps.len = strlen(ps.src);
    if (ps.len > PE_MAX_SRC) {
        perr(&ps, 0, "expression longer than %d bytes", PE_MAX_SRC);
    } else if (parse_top(&ps)) {
        *e_r = e;
        return 0;
    }
    pyeval_free(&e);
    return OIMAP_ECONFIG;
}

void pyeval_free(struct pyeval **ep)
{
    struct pyeval *e = *ep;
    if (!e)
        return;
    for (size_t k = 0; k < e->ncache; k++) {
        free(e->cache[k].pat);
        pyeval_re_free(&e->cache[k].re);
    }
    drop_tmp_re(e);
    free(e->tmp_re);
    arena_free(&e->perm);
    arena_free(&e->run);
    free(e);
    *ep = NULL;
}

int pyeval_nparams(const struct pyeval *e)
{
    return e->nparams;
}

bool pyeval_is_identity(const struct pyeval *e)
{
    return e->nparams == 1 && e->root->kind == N_PARAM;
}

const char *pyeval_where(const struct pyeval *e)
{
    return e->where;
}

const char *pyeval_errmsg(const struct pyeval *e)
{
    return e->errmsg;
}

int pyeval_call(struct pyeval *e, const struct pyval *args, size_t nargs, struct pyval *out)
{
    arena_reset(&e->run);
    drop_tmp_re(e);
    e->errmsg[0] = '\0';
    struct pe_ctx c = {.e = e, .ar = &e->run, .args = args};
    if (e->nparams < 0 && nargs == 0)
        return pe_eval_node(&c, e->root, out);
    if (e->nparams < 0 && nargs > 0)
        return pe_rt_err(&c, "TypeError: the expression is not a lambda and takes no argument");
    if (nargs == 0 && e->nparams > 0) {
        out->type = PYV_LAMBDA;
        return 0;
    }
    if ((size_t)e->nparams != nargs)
        return pe_rt_err(&c,
                         "TypeError: <lambda>() takes %d positional argument%s but %zu %s "
                         "given",
                         e->nparams, e->nparams == 1 ? "" : "s", nargs,
                         nargs == 1 ? "was" : "were");
    return pe_eval_node(&c, e->root, out);
}

int pyeval_eval(struct pyeval *e, struct pyval *out)
{
    if (e->nparams >= 0) {
        arena_reset(&e->run);
        e->errmsg[0] = '\0';
        out->type = PYV_LAMBDA;
        return 0;
    }
    return pyeval_call(e, NULL, 0, out);
}

int pyeval_call1(struct pyeval *e, const char *arg, struct pyval *out)
{
    struct pyval a = pyval_str(arg);
    return pyeval_call(e, &a, 1, out);
}

int pyeval_call2(struct pyeval *e, const char *a, const char *b, struct pyval *out)
{
    struct pyval v[2] = {pyval_str(a), pyval_str(b)};
    return pyeval_call(e, v, 2, out);
}

struct pyval pyval_str(const char *s)
{
    return pyval_strn(s, strlen(s));
}

struct pyval pyval_strn(const char *s, size_t len)
{
    struct pyval v = {.type = PYV_STR};
    v.u.str.s = s;
    v.u.str.len = len;
    return v;
}

struct pyval pyval_int(int64_t i)
{
    struct pyval v = {.type = PYV_INT};
    v.u.i = i;
    return v;
}

const char *pyval_cstr(const struct pyval *v)
{
    return v->type == PYV_STR ? v->u.str.s : NULL;
}
