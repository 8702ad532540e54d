/* pyeval_re.c - Python-compatible regular expressions for the config evaluator.
 *
 * Why our own engine: POSIX regcomp() picks the longest of the alternatives
 * and has no non-greedy repetition, so 'a|ab' or '.*?' give other answers
 * than Python, and folder names would be renamed differently than under
 * offlineimap.  Python's re is a backtracking matcher; so is this one, with
 * the same preference order (left alternative first, greedy loops take one
 * more iteration first), so the first match found is the one Python reports.
 *
 * Shape: pattern -> tree (rnode) -> program for a small backtracking machine
 * (after Thompson/Pike's instruction set, run depth-first with an explicit
 * stack).  Every instruction executed costs one step from a fixed budget, so
 * the classic exponential patterns ('(a*)*b' on 'aaaa...c') end with an
 * error instead of a hang.  Loops whose body can match empty get a progress
 * check (MARK/CHKPROG) so they cannot spin.
 */
#include "pyeval.h"
#include "chars.h"
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RE_MAX_PATTERN 8192 /* bytes of pattern */
#define RE_MAX_DEPTH 64     /* group nesting */
#define RE_MAX_NODES 8192
#define RE_MAX_PROG 32768 /* instructions after {m,n} expansion */
#define RE_MAX_GROUPS 99
#define RE_MAX_STEPS 2000000L
#define RE_MAX_FRAMES 500000

/* --- UTF-8 and character classes ------------------------------------------------------------- */

size_t pyeval_u8_decode(const char *str, size_t len, size_t i, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned char c = s[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        goto bad;
    }
    if (i + n > len)
        goto bad;
    for (size_t k = 1; k < n; k++) {
        if ((s[i + k] & 0xC0) != 0x80)
            goto bad;
        v = (v << 6) | (s[i + k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        goto bad;
    *cp = v;
    return n;
bad:
    /* Like Python's surrogateescape: the byte survives a round trip. */
    *cp = 0xDC00u + c;
    return 1;
}

size_t pyeval_u8_encode(uint32_t cp, char *out)
{
    /* surrogateescape: a lone byte that was not UTF-8 comes back as itself */
    if (cp >= 0xDC80 && cp <= 0xDCFF) {
        out[0] = (char)(cp - 0xDC00);
        return 1;
    }
    return chars_utf8_put(out, cp);
}

uint32_t pyeval_lower(uint32_t c)
{
    if (c < 0x80)
        return c >= 'A' && c <= 'Z' ? c + 32 : c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
        return c + 32;
    if (c >= 0x100 && c <= 0x137 && c != 0x130)
        return c | 1;
    if (c >= 0x139 && c <= 0x148)
        return (c & 1) ? c + 1 : c;
    if (c >= 0x14A && c <= 0x177)
        return c | 1;
    if (c == 0x178)
        return 0xFF;
    if (c >= 0x179 && c <= 0x17E)
        return (c & 1) ? c + 1 : c;
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2)
        return c + 32;
    if (c == 0x386)
        return 0x3AC;
    if (c >= 0x388 && c <= 0x38A)
        return c + 37;
    if (c == 0x38C)
        return 0x3CC;
    if (c == 0x38E || c == 0x38F)
        return c + 63;
    if (c >= 0x410 && c <= 0x42F)
        return c + 32;
    if (c >= 0x400 && c <= 0x40F)
        return c + 80;
    if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF))
        return c | 1;
    return c;
}

uint32_t pyeval_upper(uint32_t c)
{
    if (c < 0x80)
        return c >= 'a' && c <= 'z' ? c - 32 : c;
    if (c >= 0xE0 && c <= 0xFE && c != 0xF7)
        return c - 32;
    if (c == 0xFF)
        return 0x178;
    if (c == 0xB5)
        return 0x39C;
    if (c == 0x131)
        return 'I';
    if (c == 0x17F)
        return 'S';
    if ((c >= 0x101 && c <= 0x137) || (c >= 0x14B && c <= 0x177))
        return (c & 1) ? c - 1 : c;
    if ((c >= 0x13A && c <= 0x148) || (c >= 0x17A && c <= 0x17E))
        return (c & 1) ? c : c - 1;
    if (c == 0x3C2)
        return 0x3A3;
    if (c >= 0x3B1 && c <= 0x3C9)
        return c - 32;
    if (c == 0x3AC)
        return 0x386;
    if (c >= 0x3AD && c <= 0x3AF)
        return c - 37;
    if (c == 0x3CC)
        return 0x38C;
    if (c == 0x3CD || c == 0x3CE)
        return c - 63;
    if (c >= 0x430 && c <= 0x44F)
        return c - 32;
    if (c >= 0x450 && c <= 0x45F)
        return c - 80;
    if ((c >= 0x461 && c <= 0x481) || (c >= 0x48B && c <= 0x4BF))
        return (c & 1) ? c - 1 : c;
    return c;
}

bool pyeval_isspace(uint32_t c)
{
    return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

static bool is_digit(uint32_t c, bool ascii)
{
    if (c >= '0' && c <= '9')
        return true;
    if (ascii)
        return false;
    return (c >= 0x660 && c <= 0x669) || (c >= 0x6F0 && c <= 0x6F9) || (c >= 0x966 && c <= 0x96F) ||
           (c >= 0xFF10 && c <= 0xFF19);
}

/* Python's \w for str patterns is "alphanumeric in Unicode, or '_'".
 * Without the Unicode tables we count every code point outside the
 * punctuation, symbol and space blocks as a word character: right for
 * letters of every script, which is what folder names contain. */
static bool is_word(uint32_t c, bool ascii)
{
    if (c < 0x80)
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_';
    if (ascii || (c >= 0xDC80 && c <= 0xDCFF))
        return false;
    if (c < 0xC0)
        return c == 0xAA || c == 0xB2 || c == 0xB3 || c == 0xB5 || c == 0xB9 || c == 0xBA ||
               (c >= 0xBC && c <= 0xBE);
    if (c == 0xD7 || c == 0xF7 || pyeval_isspace(c))
        return false;
    if ((c >= 0x2000 && c <= 0x206F) || (c >= 0x20A0 && c <= 0x20CF) ||
        (c >= 0x2190 && c <= 0x2BFF) || (c >= 0x3000 && c <= 0x3004) ||
        (c >= 0x3008 && c <= 0x3020) || (c >= 0xE000 && c <= 0xF8FF) ||
        (c >= 0xFF00 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20) || c >= 0x1F000)
        return false;
    return true;
}

static bool is_space(uint32_t c, bool ascii)
{
    return ascii ? (c >= 9 && c <= 13) || c == ' ' : pyeval_isspace(c);
}

/* --- the program ----------------------------------------------------------------------------- */

enum op {
    OP_CHAR,    /* c */
    OP_ANY,     /* any code point (re.S) */
    OP_ANYNL,   /* any but \n */
    OP_CLASS,   /* x: class index */
    OP_SPLIT,   /* try x, then y */
    OP_JMP,     /* x */
    OP_SAVE,    /* caps[x] = sp */
    OP_BOL,     /* ^ */
    OP_EOL,     /* $ */
    OP_BOT,     /* \A */
    OP_EOT,     /* \Z */
    OP_WORDB,   /* \b */
    OP_NWORDB,  /* \B */
    OP_MARK,    /* regs[x] = sp */
    OP_CHKPROG, /* regs[x] == sp (an empty iteration): leave the loop at y */
    OP_BACKREF, /* group x again */
    OP_LOOK,    /* lookahead body follows, ends in MATCH; continue at x; neg */
    OP_MATCH,
};

struct inst {
    uint8_t op;
    uint8_t neg;
    uint32_t c;
    int x, y;
};

enum { SET_D = 1, SET_W = 2, SET_S = 4, SET_ND = 8, SET_NW = 16, SET_NS = 32 };

struct cls {
    uint32_t *r; /* pairs lo, hi */
    size_t n;
    unsigned sets;
    bool neg;
};

struct pyeval_re {
    struct inst *prog;
    size_t nprog;
    struct cls *cls;
    size_t ncls;
    int ngroups;
    int nregs;
    int flags;
    char **names; /* names[g] or NULL, g in 1..ngroups */
};

/* --- parsing --------------------------------------------------------------------------------- */

enum rk {
    R_EMPTY,
    R_CHAR,
    R_ANY,
    R_CLASS,
    R_CAT,
    R_ALT,
    R_GROUP,
    R_REPEAT,
    R_ASSERT,
    R_BACKREF,
    R_LOOK
};

struct rnode {
    uint8_t kind;
    bool greedy, neg;
    uint32_t c;   /* R_CHAR; R_ASSERT: op */
    int min, max; /* R_REPEAT; max -1: unbounded */
    int group;    /* R_GROUP (-1: non-capturing), R_BACKREF; R_CLASS: class index */
    int child;    /* R_GROUP, R_REPEAT, R_LOOK; R_CAT/R_ALT: first child */
    int next;     /* next sibling in a CAT/ALT */
};

struct rparser {
    const char *p;
    size_t len, i;
    struct rnode *nodes;
    size_t nnodes, capnodes;
    struct pyeval_re *re;
    char *err;
    size_t errlen;
    int open_groups[RE_MAX_GROUPS + 2];
    int nopen;
};

__attribute__((format(printf, 2, 3))) static void rerr_msg(struct rparser *ps, const char *fmt, ...)
{
    if (ps->err && ps->errlen) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(ps->err, ps->errlen, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < ps->errlen)
            snprintf(ps->err + n, ps->errlen - (size_t)n, " at position %zu", ps->i);
    }
}

/* The pattern error: message, then OIMAP_ECONFIG.  A macro so that the
 * error path visibly returns < 0 (clang-analyzer does not enter variadic
 * functions). */
#define rerr(...) (rerr_msg(__VA_ARGS__), OIMAP_ECONFIG)

static int node_new(struct rparser *ps, int kind)
{
    if (ps->nnodes >= RE_MAX_NODES)
        return rerr(ps, "pattern too large");
    if (ps->nnodes == ps->capnodes) {
        size_t cap = ps->capnodes ? ps->capnodes * 2 : 32;
        struct rnode *n = realloc(ps->nodes, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        ps->nodes = n;
        ps->capnodes = cap;
    }
    struct rnode *n = &ps->nodes[ps->nnodes];
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    n->child = n->next = -1;
    return (int)ps->nnodes++;
}

static bool at_end(const struct rparser *ps)
{
    return ps->i >= ps->len;
}

static uint32_t next_cp(struct rparser *ps)
{
    uint32_t cp;
    ps->i += pyeval_u8_decode(ps->p, ps->len, ps->i, &cp);
    return cp;
}

static int read_hex(struct rparser *ps, int digits, uint32_t *cp)
{
    uint32_t v = 0;
    for (int k = 0; k < digits; k++) {
        int h = ps->i < ps->len ? chars_hex_value(ps->p[ps->i]) : -1;
        if (h < 0)
            return rerr(ps, "incomplete escape");
        v = v * 16 + (uint32_t)h;
        ps->i++;
    }
    if (v > 0x10FFFF)
        return rerr(ps, "bad escape");
    *cp = v;
    return 0;
}

/* A class index for the escapes \d \w \s and their negations. */
static int add_class(struct rparser *ps, struct cls *c)
{
    struct pyeval_re *re = ps->re;
    struct cls *n = realloc(re->cls, (re->ncls + 1) * sizeof *n);
    if (!n) {
        free(c->r);
        return -ENOMEM;
    }
    re->cls = n;
    re->cls[re->ncls] = *c;
    return (int)re->ncls++;
}

static int set_of(uint32_t esc)
{
    switch (esc) {
    case 'd':
        return SET_D;
    case 'w':
        return SET_W;
    case 's':
        return SET_S;
    case 'D':
        return SET_ND;
    case 'W':
        return SET_NW;
    case 'S':
        return SET_NS;
    }
    return 0;
}

/* The character an escape stands for (after the backslash), for escapes
 * valid both inside and outside classes.  Returns 1 with *cp, 0 if esc is
 * not such an escape, or an error. */
static int char_escape(struct rparser *ps, uint32_t esc, uint32_t *cp)
{
    switch (esc) {
    case 'n':
        *cp = '\n';
        return 1;
    case 't':
        *cp = '\t';
        return 1;
    case 'r':
        *cp = '\r';
        return 1;
    case 'f':
        *cp = '\f';
        return 1;
    case 'v':
        *cp = '\v';
        return 1;
    case 'a':
        *cp = 7;
        return 1;
    case 'x':
        return read_hex(ps, 2, cp) < 0 ? OIMAP_ECONFIG : 1;
    case 'u':
        return read_hex(ps, 4, cp) < 0 ? OIMAP_ECONFIG : 1;
    case 'U':
        return read_hex(ps, 8, cp) < 0 ? OIMAP_ECONFIG : 1;
    case '0': {
        uint32_t v = 0;
        for (int k = 0; k < 2 && ps->i < ps->len && ps->p[ps->i] >= '0' && ps->p[ps->i] <= '7'; k++)
            v = v * 8 + (uint32_t)(ps->p[ps->i++] - '0');
        *cp = v;
        return 1;
    }
    }
    if (esc < 0x80 &&
        ((esc >= 'a' && esc <= 'z') || (esc >= 'A' && esc <= 'Z') || (esc >= '0' && esc <= '9')))
        return 0;
    *cp = esc; /* an escaped punctuation character is itself */
    return 1;
}

static int class_add_range(struct cls *c, uint32_t lo, uint32_t hi)
{
    uint32_t *r = realloc(c->r, (c->n + 1) * 2 * sizeof *r);
    if (!r)
        return -ENOMEM;
    c->r = r;
    r[c->n * 2] = lo;
    r[c->n * 2 + 1] = hi;
    c->n++;
    return 0;
}

static int parse_class(struct rparser *ps)
{
    struct cls c = {0};
    int r;
    if (!at_end(ps) && ps->p[ps->i] == '^') {
        c.neg = true;
        ps->i++;
    }
    bool first = true;
    for (;;) {
        if (at_end(ps)) {
            r = rerr(ps, "unterminated character set");
            goto fail;
        }
        uint32_t lo = next_cp(ps);
        if (lo == ']' && !first)
            break;
        first = false;
        if (lo == '\\') {
            if (at_end(ps)) {
                r = rerr(ps, "bad escape (end of pattern)");
                goto fail;
            }
            uint32_t esc = next_cp(ps);
            if (set_of(esc)) {
                c.sets |= (unsigned)set_of(esc);
                continue;
            }
            if (esc == 'b') {
                lo = 8;
            } else if ((r = char_escape(ps, esc, &lo)) <= 0) {
                if (r == 0)
                    r = rerr(ps, "bad escape \\%c in a character set", (char)esc);
                goto fail;
            }
        }
        uint32_t hi = lo;
        if (ps->i + 1 < ps->len && ps->p[ps->i] == '-' && ps->p[ps->i + 1] != ']') {
            ps->i++;
            hi = next_cp(ps);
            if (hi == '\\') {
                if (at_end(ps)) {
                    r = rerr(ps, "bad escape (end of pattern)");
                    goto fail;
                }
                uint32_t esc = next_cp(ps);
                if (esc == 'b') {
                    hi = 8;
                } else if (set_of(esc) || char_escape(ps, esc, &hi) <= 0) {
                    r = rerr(ps, "bad character range");
                    goto fail;
                }
            }
            if (hi < lo) {
                r = rerr(ps, "bad character range");
                goto fail;
            }
        }
        if ((r = class_add_range(&c, lo, hi)) < 0)
            goto fail;
    }
    int k = add_class(ps, &c);
    if (k < 0)
        return k;
    int n = node_new(ps, R_CLASS);
    if (n >= 0)
        ps->nodes[n].group = k;
    return n;
fail:
    free(c.r);
    return r;
}

static int parse_alt(struct rparser *ps, int depth);

static int single_class(struct rparser *ps, unsigned sets)
{
    struct cls c = {.sets = sets};
    int k = add_class(ps, &c);
    if (k < 0)
        return k;
    int n = node_new(ps, R_CLASS);
    if (n >= 0)
        ps->nodes[n].group = k;
    return n;
}

static int simple_node(struct rparser *ps, int kind, uint32_t c)
{
    int n = node_new(ps, kind);
    if (n >= 0)
        ps->nodes[n].c = c;
    return n;
}

static bool group_is_open(const struct rparser *ps, int g)
{
    for (int k = 0; k < ps->nopen; k++)
        if (ps->open_groups[k] == g)
            return true;
    return false;
}

static int backref_node(struct rparser *ps, int g)
{
    if (g > ps->re->ngroups || g < 1)
        return rerr(ps, "invalid group reference %d", g);
    if (group_is_open(ps, g))
        return rerr(ps, "cannot refer to an open group");
    int n = node_new(ps, R_BACKREF);
    if (n >= 0)
        ps->nodes[n].group = g;
    return n;
}

static int parse_escape(struct rparser *ps)
{
    if (at_end(ps))
        return rerr(ps, "bad escape (end of pattern)");
    uint32_t esc = next_cp(ps);
    if (set_of(esc))
        return single_class(ps, (unsigned)set_of(esc));
    switch (esc) {
    case 'b':
        return simple_node(ps, R_ASSERT, OP_WORDB);
    case 'B':
        return simple_node(ps, R_ASSERT, OP_NWORDB);
    case 'A':
        return simple_node(ps, R_ASSERT, OP_BOT);
    case 'Z':
        return simple_node(ps, R_ASSERT, OP_EOT);
    }
    if (esc >= '1' && esc <= '9') {
        int g = (int)(esc - '0');
        if (ps->i < ps->len && ps->p[ps->i] >= '0' && ps->p[ps->i] <= '9') {
            /* Three octal digits are a character, two digits a group. */
            if (esc <= '7' && ps->p[ps->i] <= '7' && ps->i + 1 < ps->len &&
                ps->p[ps->i + 1] >= '0' && ps->p[ps->i + 1] <= '7') {
                uint32_t v = (esc - '0') * 64 + (uint32_t)(ps->p[ps->i] - '0') * 8 +
                             (uint32_t)(ps->p[ps->i + 1] - '0');
                ps->i += 2;
                if (v > 0377)
                    return rerr(ps, "octal escape value outside of range 0-0o377");
                return simple_node(ps, R_CHAR, v);
            }
            g = g * 10 + (ps->p[ps->i++] - '0');
        }
        return backref_node(ps, g);
    }
    uint32_t cp;
    int r = char_escape(ps, esc, &cp);
    if (r < 0)
        return r;
    if (r == 0)
        return rerr(ps, "bad escape \\%c", (char)esc);
    return simple_node(ps, R_CHAR, cp);
}

static int read_name(struct rparser *ps, char close, size_t *start_r, size_t *len_r)
{
    size_t s = ps->i;
    while (ps->i < ps->len && ps->p[ps->i] != close)
        ps->i++;
    if (ps->i >= ps->len)
        return rerr(ps, "missing %c, unterminated name", close);
    *start_r = s;
    *len_r = ps->i - s;
    ps->i++;
    if (*len_r == 0)
        return rerr(ps, "missing group name");
    for (size_t k = s; k < s + *len_r; k++) {
        unsigned char ch = (unsigned char)ps->p[k];
        if (!(ch >= 0x80 || ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (k > s && ch >= '0' && ch <= '9')))
            return rerr(ps, "bad character in group name");
    }
    return 0;
}

/* The alternatives inside a parenthesis, and its closing ')'. */
static int paren_body(struct rparser *ps, int depth)
{
    int body = parse_alt(ps, depth + 1);
    if (body < 0)
        return body;
    if (at_end(ps) || ps->p[ps->i] != ')')
        return rerr(ps, "missing ), unterminated subpattern");
    ps->i++;
    return body;
}

static int group_node(struct rparser *ps, int g, int depth)
{
    if (g > 0) {
        ps->open_groups[ps->nopen++] = g;
    }
    int body = paren_body(ps, depth);
    if (g > 0)
        ps->nopen--;
    if (body < 0)
        return body;
    int n = node_new(ps, R_GROUP);
    if (n >= 0) {
        ps->nodes[n].group = g;
        ps->nodes[n].child = body;
    }
    return n;
}

/* A new capturing group number, with a NULL name slot. */
static int new_group(struct rparser *ps)
{
    struct pyeval_re *re = ps->re;
    if (re->ngroups >= RE_MAX_GROUPS)
        return rerr(ps, "too many groups");
    char **names = realloc(re->names, (size_t)(re->ngroups + 2) * sizeof *names);
    if (!names)
        return -ENOMEM;
    re->names = names;
    if (re->ngroups == 0)
        names[0] = NULL;
    int g = ++re->ngroups;
    names[g] = NULL;
    return g;
}

static int parse_paren(struct rparser *ps, int depth)
{
    if (depth >= RE_MAX_DEPTH)
        return rerr(ps, "too deeply nested");
    if (ps->i < ps->len && ps->p[ps->i] == '?') {
        ps->i++;
        if (at_end(ps))
            return rerr(ps, "unexpected end of pattern");
        char c = ps->p[ps->i++];
        if (c == ':')
            return group_node(ps, -1, depth);
        if (c == '=' || c == '!') {
            int body = paren_body(ps, depth);
            if (body < 0)
                return body;
            int n = node_new(ps, R_LOOK);
            if (n >= 0) {
                ps->nodes[n].child = body;
                ps->nodes[n].neg = c == '!';
            }
            return n;
        }
        if (c == '#') {
            while (ps->i < ps->len && ps->p[ps->i] != ')')
                ps->i++;
            if (at_end(ps))
                return rerr(ps, "missing ), unterminated comment");
            ps->i++;
            return node_new(ps, R_EMPTY);
        }
        if (c == 'P' && ps->i < ps->len && ps->p[ps->i] == '<') {
            ps->i++;
            size_t s, l;
            int r = read_name(ps, '>', &s, &l);
            if (r < 0)
                return r;
            if (pyeval_re_group_index(ps->re, ps->p + s, l) >= 0)
                return rerr(ps, "redefinition of group name");
            int g = new_group(ps);
            if (g < 0)
                return g;
            if (!(ps->re->names[g] = strndup(ps->p + s, l)))
                return -ENOMEM;
            return group_node(ps, g, depth);
        }
        if (c == 'P' && ps->i < ps->len && ps->p[ps->i] == '=') {
            ps->i++;
            size_t s, l;
            int r = read_name(ps, ')', &s, &l);
            if (r < 0)
                return r;
            int g = pyeval_re_group_index(ps->re, ps->p + s, l);
            if (g < 0)
                return rerr(ps, "unknown group name");
            return backref_node(ps, g);
        }
        if (c == '<')
            return rerr(ps, "lookbehind (?<...) is not supported");
        /* Inline flags (?aimsux) apply to the whole pattern. */
        ps->i--;
        while (ps->i < ps->len && strchr("aiLmsux", ps->p[ps->i])) {
            switch (ps->p[ps->i]) {
            case 'i':
                ps->re->flags |= PYEVAL_RE_I;
                break;
            case 'm':
                ps->re->flags |= PYEVAL_RE_M;
                break;
            case 's':
                ps->re->flags |= PYEVAL_RE_S;
                break;
            case 'a':
                ps->re->flags |= PYEVAL_RE_A;
                break;
            case 'u':
                break;
            default:
                return rerr(ps, "flag (?%c) is not supported", ps->p[ps->i]);
            }
            ps->i++;
        }
        if (ps->i < ps->len && ps->p[ps->i] == ')') {
            ps->i++;
            return node_new(ps, R_EMPTY);
        }
        return rerr(ps, "unknown extension or scoped flags (?%c", c);
    }
    int g = new_group(ps);
    if (g < 0)
        return g;
    return group_node(ps, g, depth);
}

/* {m}, {m,}, {,n}, {m,n}: returns 1 with the bounds, 0 if the text is not a
 * repeat (then '{' is a literal, as in Python). */
static int parse_braces(struct rparser *ps, int *min_r, int *max_r)
{
    size_t i = ps->i + 1;
    long lo = 0, hi = -1;
    bool have_lo = false, have_hi = false, comma = false;
    while (i < ps->len && ps->p[i] >= '0' && ps->p[i] <= '9') {
        lo = lo * 10 + (ps->p[i++] - '0');
        have_lo = true;
        if (lo > 65535)
            return rerr(ps, "the repetition number is too large");
    }
    if (i < ps->len && ps->p[i] == ',') {
        comma = true;
        i++;
        hi = 0;
        while (i < ps->len && ps->p[i] >= '0' && ps->p[i] <= '9') {
            hi = hi * 10 + (ps->p[i++] - '0');
            have_hi = true;
            if (hi > 65535)
                return rerr(ps, "the repetition number is too large");
        }
    }
    if (i >= ps->len || ps->p[i] != '}' || (!have_lo && !comma))
        return 0;
    if (!comma)
        hi = lo;
    else if (!have_hi)
        hi = -1;
    if (hi >= 0 && hi < lo)
        return rerr(ps, "min repeat greater than max repeat");
    ps->i = i + 1;
    *min_r = (int)lo;
    *max_r = (int)hi;
    return 1;
}

static int parse_cat(struct rparser *ps, int depth)
{
    int cat = node_new(ps, R_CAT);
    if (cat < 0)
        return cat;
    int last = -1;
    while (!at_end(ps) && ps->p[ps->i] != '|' && ps->p[ps->i] != ')') {
        uint32_t c = next_cp(ps);
        int atom;
        switch (c) {
        case '(':
            atom = parse_paren(ps, depth);
            break;
        case '[':
            atom = parse_class(ps);
            break;
        case '.':
            atom = node_new(ps, R_ANY);
            break;
        case '^':
            atom = simple_node(ps, R_ASSERT, OP_BOL);
            break;
        case '$':
            atom = simple_node(ps, R_ASSERT, OP_EOL);
            break;
        case '\\':
            atom = parse_escape(ps);
            break;
        case '*':
        case '+':
        case '?':
            ps->i--;
            return rerr(ps, "nothing to repeat");
        case '{': {
            int lo, hi;
            ps->i--;
            int r = parse_braces(ps, &lo, &hi);
            if (r != 0)
                return r < 0 ? r : rerr(ps, "nothing to repeat");
            ps->i++;
            atom = simple_node(ps, R_CHAR, c);
            break;
        }
        default:
            atom = simple_node(ps, R_CHAR, c);
            break;
        }
        if (atom < 0)
            return atom;
        /* One quantifier; a second one is "multiple repeat" in Python. */
        if (!at_end(ps)) {
            int min = -2, max = -1;
            char q = ps->p[ps->i];
            if (q == '*') {
                min = 0;
                ps->i++;
            } else if (q == '+') {
                min = 1;
                ps->i++;
            } else if (q == '?') {
                min = 0, max = 1;
                ps->i++;
            } else if (q == '{') {
                int r = parse_braces(ps, &min, &max);
                if (r < 0)
                    return r;
                if (r == 0)
                    min = -2;
            }
            if (min != -2) {
                uint8_t k = ps->nodes[atom].kind;
                if (k == R_ASSERT || k == R_EMPTY || k == R_LOOK)
                    return rerr(ps, "nothing to repeat");
                bool greedy = true;
                if (!at_end(ps) && ps->p[ps->i] == '?') {
                    greedy = false;
                    ps->i++;
                } else if (!at_end(ps) && ps->p[ps->i] == '+') {
                    return rerr(ps, "possessive repetition is not supported");
                }
                if (!at_end(ps) && strchr("*+?", ps->p[ps->i]))
                    return rerr(ps, "multiple repeat");
                if (!at_end(ps) && ps->p[ps->i] == '{') {
                    int m2, x2;
                    size_t save = ps->i;
                    int r = parse_braces(ps, &m2, &x2);
                    if (r < 0)
                        return r;
                    if (r > 0) {
                        ps->i = save;
                        return rerr(ps, "multiple repeat");
                    }
                }
                int rep = node_new(ps, R_REPEAT);
                if (rep < 0)
                    return rep;
                ps->nodes[rep].min = min;
                ps->nodes[rep].max = max;
                ps->nodes[rep].greedy = greedy;
                ps->nodes[rep].child = atom;
                atom = rep;
            }
        }
        if (last < 0)
            ps->nodes[cat].child = atom;
        else
            ps->nodes[last].next = atom;
        last = atom;
    }
    return cat;
}

static int parse_alt(struct rparser *ps, int depth)
{
    int first = parse_cat(ps, depth);
    if (first < 0 || at_end(ps) || ps->p[ps->i] != '|')
        return first;
    int alt = node_new(ps, R_ALT);
    if (alt < 0)
        return alt;
    ps->nodes[alt].child = first;
    int last = first;
    while (!at_end(ps) && ps->p[ps->i] == '|') {
        ps->i++;
        int n = parse_cat(ps, depth);
        if (n < 0)
            return n;
        ps->nodes[last].next = n;
        last = n;
    }
    return alt;
}

/* --- code generation ------------------------------------------------------------------------- */

struct gen {
    struct pyeval_re *re;
    const struct rnode *nodes;
    size_t cap;
    int err;
};

static int emit(struct gen *g, int op, uint32_t c, int x, int y)
{
    struct pyeval_re *re = g->re;
    if (g->err)
        return -1;
    if (re->nprog >= RE_MAX_PROG) {
        g->err = OIMAP_ETOOBIG;
        return -1;
    }
    if (re->nprog == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        struct inst *p = realloc(re->prog, cap * sizeof *p);
        if (!p) {
            g->err = -ENOMEM;
            return -1;
        }
        re->prog = p;
        g->cap = cap;
    }
    re->prog[re->nprog] = (struct inst){.op = (uint8_t)op, .c = c, .x = x, .y = y};
    return (int)re->nprog++;
}

static void gen_node(struct gen *g, int n);

static void gen_repeat(struct gen *g, const struct rnode *nd)
{
    for (int k = 0; k < nd->min && !g->err; k++)
        gen_node(g, nd->child);
    if (nd->max < 0) {
        /* L1: SPLIT L2, L3; L2: MARK r; body; CHKPROG r; JMP L1; L3: */
        int reg = g->re->nregs++;
        int split = emit(g, OP_SPLIT, 0, 0, 0);
        emit(g, OP_MARK, 0, reg, 0);
        gen_node(g, nd->child);
        int chk = emit(g, OP_CHKPROG, 0, reg, 0);
        emit(g, OP_JMP, 0, split, 0);
        if (g->err)
            return;
        int end = (int)g->re->nprog;
        g->re->prog[chk].y = end;
        struct inst *s = &g->re->prog[split];
        s->x = nd->greedy ? split + 1 : end;
        s->y = nd->greedy ? end : split + 1;
        return;
    }
    /* Optional copies x{0,n}: each SPLIT jumps to the common end. */
    int nopt = nd->max - nd->min;
    int *splits = nopt > 0 ? malloc((size_t)nopt * sizeof *splits) : NULL;
    if (nopt > 0 && !splits) {
        g->err = -ENOMEM;
        return;
    }
    for (int k = 0; k < nopt && !g->err; k++) {
        splits[k] = emit(g, OP_SPLIT, 0, 0, 0);
        gen_node(g, nd->child);
    }
    if (!g->err) {
        int end = (int)g->re->nprog;
        for (int k = 0; k < nopt; k++) {
            struct inst *s = &g->re->prog[splits[k]];
            s->x = nd->greedy ? splits[k] + 1 : end;
            s->y = nd->greedy ? end : splits[k] + 1;
        }
    }
    free(splits);
}

static void gen_node(struct gen *g, int n)
{
    if (g->err)
        return;
    const struct rnode *nd = &g->nodes[n];
    bool icase = g->re->flags & PYEVAL_RE_I;
    switch (nd->kind) {
    case R_EMPTY:
        break;
    case R_CHAR:
        emit(g, OP_CHAR, icase ? pyeval_lower(nd->c) : nd->c, 0, 0);
        break;
    case R_ANY:
        emit(g, (g->re->flags & PYEVAL_RE_S) ? OP_ANY : OP_ANYNL, 0, 0, 0);
        break;
    case R_CLASS:
        emit(g, OP_CLASS, 0, nd->group, 0);
        break;
    case R_CAT:
        for (int c = nd->child; c >= 0 && !g->err; c = g->nodes[c].next)
            gen_node(g, c);
        break;
    case R_ALT: {
        /* SPLIT a, next; a; JMP end; ... last */
        int first_jmp = -1; /* chain of JMPs to patch, linked through .y */
        for (int c = nd->child; c >= 0 && !g->err; c = g->nodes[c].next) {
            if (g->nodes[c].next >= 0) {
                int split = emit(g, OP_SPLIT, 0, 0, 0);
                gen_node(g, c);
                int j = emit(g, OP_JMP, 0, 0, first_jmp);
                first_jmp = j;
                if (g->err)
                    return;
                g->re->prog[split].x = split + 1;
                g->re->prog[split].y = (int)g->re->nprog;
            } else {
                gen_node(g, c);
            }
        }
        if (g->err)
            return;
        int end = (int)g->re->nprog;
        while (first_jmp >= 0) {
            int prev = g->re->prog[first_jmp].y;
            g->re->prog[first_jmp].x = end;
            g->re->prog[first_jmp].y = 0;
            first_jmp = prev;
        }
        break;
    }
    case R_GROUP:
        if (nd->group > 0)
            emit(g, OP_SAVE, 0, nd->group * 2, 0);
        gen_node(g, nd->child);
        if (nd->group > 0)
            emit(g, OP_SAVE, 0, nd->group * 2 + 1, 0);
        break;
    case R_REPEAT:
        gen_repeat(g, nd);
        break;
    case R_ASSERT:
        emit(g, (int)nd->c, 0, 0, 0);
        break;
    case R_BACKREF:
        emit(g, OP_BACKREF, 0, nd->group, 0);
        break;
    case R_LOOK: {
        int look = emit(g, OP_LOOK, 0, 0, 0);
        gen_node(g, nd->child);
        emit(g, OP_MATCH, 0, 0, 0);
        if (g->err)
            return;
        g->re->prog[look].x = (int)g->re->nprog;
        g->re->prog[look].neg = nd->neg;
        break;
    }
    }
}

void pyeval_re_free(struct pyeval_re **rep)
{
    struct pyeval_re *re = *rep;
    if (!re)
        return;
    for (size_t k = 0; k < re->ncls; k++)
        free(re->cls[k].r);
    free(re->cls);
    if (re->names)
        for (int g = 1; g <= re->ngroups; g++)
            free(re->names[g]);
    free(re->names);
    free(re->prog);
    free(re);
    *rep = NULL;
}

int pyeval_re_compile(const char *pat, size_t len, int flags, char *err, size_t errlen,
                      struct pyeval_re **re_r)
{
    *re_r = NULL;
    if (err && errlen)
        err[0] = '\0';
    struct pyeval_re *re = calloc(1, sizeof *re);
    if (!re)
        return -ENOMEM;
    re->flags = flags;
    struct rparser ps = {.p = pat, .len = len, .re = re, .err = err, .errlen = errlen};
    int r;
    if (len > RE_MAX_PATTERN) {
        r = rerr(&ps, "pattern too long");
        goto fail;
    }
    int root = parse_alt(&ps, 0);
    if (root < 0) {
        r = root;
        goto fail;
    }
    if (!at_end(&ps)) {
        r = rerr(&ps, "unbalanced parenthesis");
        goto fail;
    }
    struct gen g = {.re = re, .nodes = ps.nodes};
    emit(&g, OP_SAVE, 0, 0, 0);
    gen_node(&g, root);
    emit(&g, OP_SAVE, 0, 1, 0);
    emit(&g, OP_MATCH, 0, 0, 0);
    if (g.err) {
        r = g.err == -ENOMEM ? -ENOMEM : rerr(&ps, "pattern too large once repeats are expanded");
        goto fail;
    }
    free(ps.nodes);
    *re_r = re;
    return 0;
fail:
    if (r == -ENOMEM && err && errlen)
        snprintf(err, errlen, "out of memory");
    free(ps.nodes);
    pyeval_re_free(&re);
    return r;
}

int pyeval_re_ngroups(const struct pyeval_re *re)
{
    return re->ngroups;
}

int pyeval_re_group_index(const struct pyeval_re *re, const char *name, size_t len)
{
    if (!re->names)
        return -1;
    for (int g = 1; g <= re->ngroups; g++)
        if (re->names[g] && strlen(re->names[g]) == len && memcmp(re->names[g], name, len) == 0)
            return g;
    return -1;
}

/* --- matching -------------------------------------------------------------------------------- */

enum { FR_BRANCH, FR_CAP, FR_REG };

struct frame {
    int kind;
    int idx; /* pc (branch) or slot */
    long val;
};

struct vm {
    const struct pyeval_re *re;
    const char *s;
    size_t len;
    long *caps;
    long *regs;
    struct frame *st;
    size_t nst, capst;
    long steps;
    size_t start;  /* where this attempt began */
    size_t origin; /* the start offset given to exec */
    bool full, not_empty;
};

static int push(struct vm *m, int kind, int idx, long val)
{
    if (m->nst == m->capst) {
        if (m->capst >= RE_MAX_FRAMES)
            return OIMAP_ETOOBIG;
        size_t cap = m->capst ? m->capst * 2 : 64;
        struct frame *f = realloc(m->st, cap * sizeof *f);
        if (!f)
            return -ENOMEM;
        m->st = f;
        m->capst = cap;
    }
    m->st[m->nst++] = (struct frame){kind, idx, val};
    return 0;
}

static bool class_has(const struct cls *c, uint32_t cp, bool ascii)
{
    for (size_t k = 0; k < c->n; k++)
        if (cp >= c->r[2 * k] && cp <= c->r[2 * k + 1])
            return true;
    unsigned s = c->sets;
    if (!s)
        return false;
    if (((s & SET_D) && is_digit(cp, ascii)) || ((s & SET_ND) && !is_digit(cp, ascii)) ||
        ((s & SET_W) && is_word(cp, ascii)) || ((s & SET_NW) && !is_word(cp, ascii)) ||
        ((s & SET_S) && is_space(cp, ascii)) || ((s & SET_NS) && !is_space(cp, ascii)))
        return true;
    return false;
}

static bool class_match(const struct pyeval_re *re, const struct cls *c, uint32_t cp)
{
    bool ascii = re->flags & PYEVAL_RE_A;
    bool hit = class_has(c, cp, ascii);
    if (!hit && (re->flags & PYEVAL_RE_I)) {
        uint32_t lo = pyeval_lower(cp), up = pyeval_upper(cp);
        hit = (lo != cp && class_has(c, lo, ascii)) || (up != cp && class_has(c, up, ascii));
    }
    return hit != c->neg;
}

static bool word_before(const struct vm *m, size_t sp)
{
    if (sp == 0)
        return false;
    size_t k = sp - 1;
    /* Back up over continuation bytes to the start of the code point. */
    while (k > 0 && sp - k < 4 && ((unsigned char)m->s[k] & 0xC0) == 0x80)
        k--;
    uint32_t cp;
    size_t n = pyeval_u8_decode(m->s, m->len, k, &cp);
    if (k + n != sp)
        pyeval_u8_decode(m->s, m->len, sp - 1, &cp);
    return is_word(cp, m->re->flags & PYEVAL_RE_A);
}

static bool word_at(const struct vm *m, size_t sp)
{
    if (sp >= m->len)
        return false;
    uint32_t cp;
    pyeval_u8_decode(m->s, m->len, sp, &cp);
    return is_word(cp, m->re->flags & PYEVAL_RE_A);
}

/* Run from pc at sp until MATCH (returns 1) or every branch failed (0).
 * Frames pushed by this run are above base; on failure they are all undone;
 * on success they stay (the caller keeps or undoes the captures). */
static int vm_run(struct vm *m, int pc, size_t sp)
{
    const struct pyeval_re *re = m->re;
    size_t base = m->nst;
    bool icase = re->flags & PYEVAL_RE_I;
    bool multi = re->flags & PYEVAL_RE_M;
    int r;
    for (;;) {
        if (++m->steps > RE_MAX_STEPS)
            return OIMAP_ETOOBIG;
        const struct inst *in = &re->prog[pc];
        uint32_t cp;
        size_t n;
        switch (in->op) {
        case OP_CHAR:
            if (sp >= m->len)
                goto fail;
            n = pyeval_u8_decode(m->s, m->len, sp, &cp);
            if ((icase ? pyeval_lower(cp) : cp) != in->c)
                goto fail;
            sp += n, pc++;
            continue;
        case OP_ANY:
        case OP_ANYNL:
            if (sp >= m->len || (in->op == OP_ANYNL && m->s[sp] == '\n'))
                goto fail;
            sp += pyeval_u8_decode(m->s, m->len, sp, &cp), pc++;
            continue;
        case OP_CLASS:
            if (sp >= m->len)
                goto fail;
            n = pyeval_u8_decode(m->s, m->len, sp, &cp);
            if (!class_match(re, &re->cls[in->x], cp))
                goto fail;
            sp += n, pc++;
            continue;
        case OP_SPLIT:
            if ((r = push(m, FR_BRANCH, in->y, (long)sp)) < 0)
                return r;
            pc = in->x;
            continue;
        case OP_JMP:
            pc = in->x;
            continue;
        case OP_SAVE:
            if ((r = push(m, FR_CAP, in->x, m->caps[in->x])) < 0)
                return r;
            m->caps[in->x] = (long)sp;
            pc++;
            continue;
        case OP_MARK:
            if ((r = push(m, FR_REG, in->x, m->regs[in->x])) < 0)
                return r;
            m->regs[in->x] = (long)sp;
            pc++;
            continue;
        case OP_CHKPROG:
            /* An iteration that matched empty ends the loop (keeping its
             * captures, as Python does) instead of spinning. */
            pc = m->regs[in->x] == (long)sp ? in->y : pc + 1;
            continue;
        case OP_BOL:
            if (!(sp == 0 || (multi && m->s[sp - 1] == '\n')))
                goto fail;
            pc++;
            continue;
        case OP_EOL:
            if (!(sp == m->len || (m->s[sp] == '\n' && (multi || sp + 1 == m->len))))
                goto fail;
            pc++;
            continue;
        case OP_BOT:
            if (sp != 0)
                goto fail;
            pc++;
            continue;
        case OP_EOT:
            if (sp != m->len)
                goto fail;
            pc++;
            continue;
        case OP_WORDB:
        case OP_NWORDB:
            /* Python's \B never matches in an empty string. */
            if (m->len == 0 && in->op == OP_NWORDB)
                goto fail;
            if ((word_before(m, sp) != word_at(m, sp)) != (in->op == OP_WORDB))
                goto fail;
            pc++;
            continue;
        case OP_BACKREF: {
            long gs = m->caps[2 * in->x], ge = m->caps[2 * in->x + 1];
            if (gs < 0 || ge < 0)
                goto fail;
            size_t gi = (size_t)gs, si = sp;
            while (gi < (size_t)ge) {
                uint32_t a, b;
                if (si >= m->len)
                    goto fail;
                gi += pyeval_u8_decode(m->s, m->len, gi, &a);
                si += pyeval_u8_decode(m->s, m->len, si, &b);
                if (icase ? pyeval_lower(a) != pyeval_lower(b) : a != b)
                    goto fail;
            }
            sp = si, pc++;
            continue;
        }
        case OP_LOOK: {
            bool save_full = m->full, save_ne = m->not_empty;
            m->full = m->not_empty = false;
            size_t mark = m->nst;
            r = vm_run(m, pc + 1, sp);
            m->full = save_full, m->not_empty = save_ne;
            if (r < 0)
                return r;
            /* Undo what the lookahead recorded (its captures are dropped). */
            while (m->nst > mark) {
                struct frame *f = &m->st[--m->nst];
                if (f->kind == FR_CAP)
                    m->caps[f->idx] = f->val;
                else if (f->kind == FR_REG)
                    m->regs[f->idx] = f->val;
            }
            if ((r == 1) == (bool)in->neg)
                goto fail;
            pc = in->x;
            continue;
        }
        case OP_MATCH:
            if (m->full && sp != m->len)
                goto fail;
            if (m->not_empty && sp == m->start && m->start == m->origin)
                goto fail;
            return 1;
        }
    fail:
        for (;;) {
            if (m->nst <= base)
                return 0;
            struct frame *f = &m->st[--m->nst];
            if (f->kind == FR_CAP) {
                m->caps[f->idx] = f->val;
            } else if (f->kind == FR_REG) {
                m->regs[f->idx] = f->val;
            } else {
                pc = f->idx;
                sp = (size_t)f->val;
                break;
            }
        }
    }
}

int pyeval_re_exec(const struct pyeval_re *re, const char *s, size_t len, size_t start,
                   enum pyeval_re_mode mode, bool not_empty_at_start, long *caps)
{
    size_t ncaps = 2 * (size_t)(re->ngroups + 1);
    long regs_small[16];
    long *regs = re->nregs <= 16 ? regs_small : malloc((size_t)re->nregs * sizeof *regs);
    if (!regs)
        return -ENOMEM;
    struct vm m = {.re = re,
                   .s = s,
                   .len = len,
                   .caps = caps,
                   .regs = regs,
                   .full = mode == PYEVAL_RE_FULLMATCH,
                   .not_empty = not_empty_at_start,
                   .origin = start};
    for (int k = 0; k < re->nregs; k++)
        regs[k] = -1;
    /* A pattern that starts with a literal can skip ahead to that byte. */
    int first = -1;
    if (re->nprog > 1 && re->prog[1].op == OP_CHAR && !(re->flags & PYEVAL_RE_I)) {
        char b[4];
        pyeval_u8_encode(re->prog[1].c, b);
        first = (unsigned char)b[0];
    }
    bool bot_only = re->nprog > 1 && (re->prog[1].op == OP_BOT ||
                                      (re->prog[1].op == OP_BOL && !(re->flags & PYEVAL_RE_M)));
    int r = 0;
    size_t pos = start;
    for (;;) {
        if (first >= 0 && mode == PYEVAL_RE_SEARCH) {
            const char *hit = pos < len ? memchr(s + pos, first, len - pos) : NULL;
            if (!hit)
                break;
            pos = (size_t)(hit - s);
        }
        for (size_t k = 0; k < ncaps; k++)
            caps[k] = -1;
        m.start = pos;
        m.nst = 0;
        r = vm_run(&m, 0, pos);
        if (r != 0 || mode != PYEVAL_RE_SEARCH || pos >= len || (bot_only && pos == 0))
            break;
        uint32_t cp;
        pos += pyeval_u8_decode(s, len, pos, &cp);
    }
    free(m.st);
    if (regs != regs_small)
        free(regs);
    return r;
}
