/* imap_parse.c - the incremental IMAP response parser (see imap_parse.h).
 *
 * How it works.  A response is tokenised in a window: either the caller's
 * buffer (fast path, no copy) or the parser's line buffer once a response was
 * cut by the end of a buffer ("spilled").  Token strings are kept as offsets
 * from the start of the response in that window (or in the scratch area for
 * unescaped quoted strings) and turned into pointers just before a callback,
 * so growing or switching buffers never leaves a dangling pointer behind.
 *
 * In buffered mode the tokeniser only runs once a whole line (up to LF) is in
 * the buffer, so it never needs more input there; in the fast path running out
 * of input rolls back to the start of the incomplete token (complete tokens
 * stay), the rest is spilled and the line is finished in buffered mode.
 *
 * Nesting is tracked with an explicit stack of at most IMAP_PARSER_MAX_DEPTH,
 * never with recursion.
 */
#include "imap_parse.h"

#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ST_LINE, ST_LIT_INLINE, ST_LIT_STREAM };
enum { PH_START, PH_DATA };
enum { EV_DONE, EV_LITERAL, EV_MORE, EV_ERR };

#define NONE UINT32_MAX
/* Buffers above these sizes are given back after the response that needed them. */
#define SHRINK_BYTES (256u * 1024u)
#define SHRINK_TOKENS 8192u

/* Byte classes for the tokeniser. */
enum { B, A, S, LP, RP, DQ, LB, CR, LF, BR };
/* clang-format off */
static const unsigned char cls[256] = {
    B, B, B, B, B, B, B, B, B, B, LF, B, B, CR, B, B,
    B, B, B, B, B, B, B, B, B, B, B, B, B, B, B, B,
    S, A, DQ, A, A, A, A, A, LP, RP, A, A, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, BR, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, LB, A, A, A, B,
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
};
/* clang-format on */

static inline bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static bool ieq(const char *s, size_t n, const char *word)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (!word[i] || lower((unsigned char)s[i]) != lower((unsigned char)word[i]))
            return false;
    }
    return word[i] == '\0';
}

/* ---- limits, set-up ------------------------------------------------------ */

void imap_parser_limits_default(struct imap_parser_limits *l)
{
    l->max_line = 8u << 20;
    l->max_inline_literal = 1u << 20;
    l->max_streamed_literal = 512u << 20;
    l->max_depth = 64;
    l->max_tokens = 2u << 20;
}

static void reset_response(struct imap_parser *p)
{
    p->state = ST_LINE;
    p->phase = PH_START;
    p->buffered = false;
    p->buf_len = 0;
    p->scr_len = 0;
    p->n_toks = 0;
    p->pos = 0;
    p->lit_bytes = 0;
    p->lit_left = 0;
    p->streamed = 0;
    p->depth = 0;
    p->lastk[0] = NONE;
    p->last_tok = NONE;
    p->n_filled = 0;
    p->fill_base = p->fill_scr = NULL;
    /* p->resp is cleared by tok_header() when the next response starts */
    p->tag_off = p->text_off = p->kw_off = p->code_off = p->args_off = 0;
    /* A huge response must not pin its memory for the life of the connection. */
    if (p->buf_cap > SHRINK_BYTES) {
        free(p->buf);
        p->buf = NULL;
        p->buf_cap = 0;
    }
    if (p->scr_cap > SHRINK_BYTES) {
        free(p->scr);
        p->scr = NULL;
        p->scr_cap = 0;
    }
    if (p->toks_cap > SHRINK_TOKENS) {
        free(p->toks);
        p->toks = NULL;
        p->toks_cap = 0;
    }
}

void imap_parser_init(struct imap_parser *p, const struct imap_parser_limits *limits,
                      const struct imap_parser_callbacks *cb, void *ctx)
{
    struct imap_parser_limits d;
    memset(p, 0, sizeof(*p));
    imap_parser_limits_default(&d);
    p->lim = d;
    if (limits) {
        if (limits->max_line)
            p->lim.max_line = limits->max_line;
        if (limits->max_inline_literal)
            p->lim.max_inline_literal = limits->max_inline_literal;
        if (limits->max_streamed_literal)
            p->lim.max_streamed_literal = limits->max_streamed_literal;
        if (limits->max_depth)
            p->lim.max_depth = limits->max_depth;
        if (limits->max_tokens)
            p->lim.max_tokens = limits->max_tokens;
    }
    /* Offsets and lengths are 32-bit inside tokens: keep every size well below. */
    if (p->lim.max_line > (1u << 30))
        p->lim.max_line = 1u << 30;
    if (p->lim.max_inline_literal > (1u << 30))
        p->lim.max_inline_literal = 1u << 30;
    if (p->lim.max_depth > IMAP_PARSER_MAX_DEPTH)
        p->lim.max_depth = IMAP_PARSER_MAX_DEPTH;
    if (p->lim.max_tokens > (1u << 30))
        p->lim.max_tokens = 1u << 30;
    if (cb)
        p->cb = *cb;
    p->ctx = ctx;
    reset_response(p);
}

void imap_parser_deinit(struct imap_parser *p)
{
    free(p->buf);
    free(p->scr);
    free(p->toks);
    p->buf = p->scr = NULL;
    p->toks = NULL;
    p->buf_cap = p->scr_cap = p->toks_cap = 0;
}

void imap_parser_reset(struct imap_parser *p)
{
    p->err = 0;
    p->errmsg[0] = '\0';
    reset_response(p);
}

const char *imap_parser_error(const struct imap_parser *p)
{
    return p->errmsg;
}

size_t imap_parser_consumed(const struct imap_parser *p)
{
    return p->consumed;
}

bool imap_parser_idle(const struct imap_parser *p)
{
    return !p->err && p->state == ST_LINE && !p->buffered;
}

/* ---- errors -------------------------------------------------------------- */

/* Record an error at position at of the current response window. */
static __attribute__((format(printf, 4, 5))) int fail(struct imap_parser *p, int code, size_t at,
                                                      const char *fmt, ...)
{
    va_list ap;
    uint64_t off;
    size_t n;

    if (p->buffered)
        off = p->stream_off - (at <= p->buf_len ? p->buf_len - at : 0);
    else
        off = p->stream_off + at;
    va_start(ap, fmt);
    n = (size_t)vsnprintf(p->errmsg, sizeof(p->errmsg), fmt, ap);
    va_end(ap);
    if (n < sizeof(p->errmsg))
        snprintf(p->errmsg + n, sizeof(p->errmsg) - n, " at offset %llu", (unsigned long long)off);
    p->err = code;
    return EV_ERR;
}

/* A callback said stop: the parser is dead too. */
static int die(struct imap_parser *p, int code)
{
    if (!p->err) {
        p->err = code;
        if (!p->errmsg[0])
            snprintf(p->errmsg, sizeof(p->errmsg), "stopped by consumer: %s", err_str(code));
    }
    return p->err;
}

/* ---- memory -------------------------------------------------------------- */

static int grow(void **ptr, size_t *cap, size_t need, size_t elem, size_t min)
{
    size_t ncap = *cap ? *cap : min;
    void *n;
    if (need <= *cap)
        return 0;
    while (ncap < need)
        ncap *= 2;
    n = realloc(*ptr, ncap * elem);
    if (!n)
        return -ENOMEM;
    *ptr = n;
    *cap = ncap;
    return 0;
}

static int buf_reserve(struct imap_parser *p, size_t need)
{
    return grow((void **)&p->buf, &p->buf_cap, need, 1, 4096);
}

static int buf_append(struct imap_parser *p, const char *s, size_t n)
{
    int r = buf_reserve(p, p->buf_len + n);
    if (r < 0)
        return r;
    memcpy(p->buf + p->buf_len, s, n);
    p->buf_len += n;
    return 0;
}

/* Append a token at the current depth; NULL (error recorded) at a limit. */
static inline struct imap_token *push(struct imap_parser *p, int kind, size_t off, size_t len,
                                      size_t at)
{
    struct imap_token *t;
    uint32_t idx;
    unsigned d = p->depth;

    if (at > p->lit_bytes && at - p->lit_bytes > p->lim.max_line) {
        fail(p, OIMAP_ETOOBIG, at, "response longer than %zu bytes", p->lim.max_line);
        return NULL;
    }
    if (p->n_toks >= p->lim.max_tokens) {
        fail(p, OIMAP_ETOOBIG, at, "response has more than %zu tokens", p->lim.max_tokens);
        return NULL;
    }
    if (p->n_toks == p->toks_cap &&
        grow((void **)&p->toks, &p->toks_cap, p->n_toks + 1, sizeof(*t), 64) < 0) {
        fail(p, -ENOMEM, at, "out of memory");
        return NULL;
    }
    idx = (uint32_t)p->n_toks++;
    t = &p->toks[idx];
    t->str = NULL;
    t->num = 0;
    t->len = (uint32_t)len;
    t->next = 0;
    t->off_ = (uint32_t)off;
    t->kind = (uint8_t)kind;
    t->flags = 0;
    if (p->lastk[d] != NONE)
        p->toks[p->lastk[d]].next = idx - p->lastk[d];
    p->lastk[d] = idx;
    if (d > 0)
        p->toks[p->open[d]].count++;
    p->last_tok = idx;
    return t;
}

/* ---- classification ------------------------------------------------------ */

static enum imap_status status_of(const char *s, size_t n)
{
    if (n == 2 && ieq(s, n, "OK"))
        return IMAP_STATUS_OK;
    if (n == 2 && ieq(s, n, "NO"))
        return IMAP_STATUS_NO;
    if (n == 3 && ieq(s, n, "BAD"))
        return IMAP_STATUS_BAD;
    if (n == 3 && ieq(s, n, "BYE"))
        return IMAP_STATUS_BYE;
    if (n == 7 && ieq(s, n, "PREAUTH"))
        return IMAP_STATUS_PREAUTH;
    return IMAP_STATUS_NONE;
}

static const struct {
    const char *name;
    int id;
} data_names[] = {
    {"FETCH", IMAP_DATA_FETCH},     {"EXISTS", IMAP_DATA_EXISTS},
    {"EXPUNGE", IMAP_DATA_EXPUNGE}, {"RECENT", IMAP_DATA_RECENT},
    {"FLAGS", IMAP_DATA_FLAGS},     {"CAPABILITY", IMAP_DATA_CAPABILITY},
    {"LIST", IMAP_DATA_LIST},       {"LSUB", IMAP_DATA_LSUB},
    {"STATUS", IMAP_DATA_STATUS},   {"SEARCH", IMAP_DATA_SEARCH},
    {"ESEARCH", IMAP_DATA_ESEARCH}, {"VANISHED", IMAP_DATA_VANISHED},
    {"ENABLED", IMAP_DATA_ENABLED}, {"NAMESPACE", IMAP_DATA_NAMESPACE},
    {"ID", IMAP_DATA_ID},
};

static enum imap_data data_of(const char *s, size_t n)
{
    if (n == 5 && ieq(s, n, "FETCH")) /* by far the most frequent */
        return IMAP_DATA_FETCH;
    for (size_t i = 0; i < sizeof(data_names) / sizeof(data_names[0]); i++) {
        if (ieq(s, n, data_names[i].name))
            return (enum imap_data)data_names[i].id;
    }
    return IMAP_DATA_OTHER;
}

static const struct {
    const char *name;
    int id;
} code_names[] = {
    {"ALERT", IMAP_CODE_ALERT},
    {"UIDVALIDITY", IMAP_CODE_UIDVALIDITY},
    {"UIDNEXT", IMAP_CODE_UIDNEXT},
    {"UNSEEN", IMAP_CODE_UNSEEN},
    {"HIGHESTMODSEQ", IMAP_CODE_HIGHESTMODSEQ},
    {"NOMODSEQ", IMAP_CODE_NOMODSEQ},
    {"APPENDUID", IMAP_CODE_APPENDUID},
    {"COPYUID", IMAP_CODE_COPYUID},
    {"UIDNOTSTICKY", IMAP_CODE_UIDNOTSTICKY},
    {"CAPABILITY", IMAP_CODE_CAPABILITY},
    {"PERMANENTFLAGS", IMAP_CODE_PERMANENTFLAGS},
    {"READ-ONLY", IMAP_CODE_READ_ONLY},
    {"READ-WRITE", IMAP_CODE_READ_WRITE},
    {"TRYCREATE", IMAP_CODE_TRYCREATE},
    {"CLOSED", IMAP_CODE_CLOSED},
    {"PARSE", IMAP_CODE_PARSE},
    {"BADCHARSET", IMAP_CODE_BADCHARSET},
    {"AUTHENTICATIONFAILED", IMAP_CODE_AUTHENTICATIONFAILED},
    {"UNAVAILABLE", IMAP_CODE_UNAVAILABLE},
    {"NONEXISTENT", IMAP_CODE_NONEXISTENT},
    {"ALREADYEXISTS", IMAP_CODE_ALREADYEXISTS},
    {"OVERQUOTA", IMAP_CODE_OVERQUOTA},
};

static enum imap_code code_of(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof(code_names) / sizeof(code_names[0]); i++) {
        if (ieq(s, n, code_names[i].name))
            return (enum imap_code)code_names[i].id;
    }
    return IMAP_CODE_OTHER;
}

static bool is_section_name(const char *s, size_t n)
{
    return ieq(s, n, "BODY") || ieq(s, n, "BODY.PEEK") || ieq(s, n, "BINARY") ||
           ieq(s, n, "BINARY.PEEK") || ieq(s, n, "BINARY.SIZE");
}

/* ---- the tokeniser ------------------------------------------------------- */

static int more(struct imap_parser *p, size_t at)
{
    p->pos = at;
    return EV_MORE;
}

/* From s (after the status word or '+') to the end of the line: an optional
 * [code] and the human text. */
static int tok_status_tail(struct imap_parser *p, const char *base, const char *s, const char *e)
{
    struct imap_response *r = &p->resp;
    const char *lf = memchr(s, '\n', (size_t)(e - s));
    const char *te;

    if (!lf) {
        if ((size_t)(e - base) > p->lim.max_line)
            return fail(p, OIMAP_ETOOBIG, (size_t)(e - base), "response longer than %zu bytes",
                        p->lim.max_line);
        return more(p, 0);
    }
    if ((size_t)(lf - base) > p->lim.max_line)
        return fail(p, OIMAP_ETOOBIG, (size_t)(lf - base), "response longer than %zu bytes",
                    p->lim.max_line);
    te = lf;
    if (te > s && te[-1] == '\r')
        te--;
    if (memchr(s, '\0', (size_t)(te - s)))
        return fail(p, OIMAP_EPROTO, (size_t)(s - base), "NUL byte in response text");
    if (memchr(s, '\r', (size_t)(te - s)))
        return fail(p, OIMAP_EPROTO, (size_t)(s - base), "bare CR in response text");
    while (s < te && *s == ' ')
        s++;
    if (s < te && *s == '[') {
        const char *rb = memchr(s, ']', (size_t)(te - s));
        if (rb) {
            const char *n = s + 1, *ne = n;
            while (ne < rb && *ne != ' ' && (cls[(unsigned char)*ne] == A))
                ne++;
            if (ne > n && (ne == rb || *ne == ' ')) {
                r->code.id = code_of(n, (size_t)(ne - n));
                p->code_off = (size_t)(n - base);
                r->code.name_len = (size_t)(ne - n);
                if (ne < rb)
                    ne++;
                p->args_off = (size_t)(ne - base);
                r->code.args_len = (size_t)(rb - ne);
                s = rb + 1;
                while (s < te && *s == ' ')
                    s++;
            }
        }
    }
    p->text_off = (size_t)(s - base);
    r->text_len = (size_t)(te - s);
    p->pos = (size_t)(lf + 1 - base);
    return EV_DONE;
}

/* "{n}", "{n+}" or "~{n}" then the line end; s at '{' or '~'. */
static int tok_literal(struct imap_parser *p, const char *base, const char *s, const char *e)
{
    const char *q = s, *d0;
    uint64_t v = 0;
    bool l8 = false;

    if (*q == '~') {
        l8 = true;
        q++;
    }
    q++;
    d0 = q;
    while (q < e && is_digit((unsigned char)*q)) {
        unsigned dg = (unsigned)(*q - '0');
        if (q - d0 >= 20 || v > (UINT64_MAX - dg) / 10)
            return fail(p, OIMAP_EPROTO, (size_t)(s - base), "literal size too large");
        v = v * 10 + dg;
        q++;
    }
    if (q == e)
        return more(p, (size_t)(s - base));
    if (q == d0)
        return fail(p, OIMAP_EPROTO, (size_t)(s - base), "malformed literal (no size)");
    if (*q == '+' && ++q == e)
        return more(p, (size_t)(s - base));
    if (*q != '}')
        return fail(p, OIMAP_EPROTO, (size_t)(s - base), "malformed literal");
    if (++q == e)
        return more(p, (size_t)(s - base));
    if (*q == '\r' && ++q == e)
        return more(p, (size_t)(s - base));
    if (*q != '\n')
        return fail(p, OIMAP_EPROTO, (size_t)(s - base), "literal not at the end of a line");
    p->lit_size = v;
    p->lit8 = l8;
    p->pos = (size_t)(q + 1 - base);
    return EV_LITERAL;
}

/* Quoted-string stoppers: '"', '\\', CR, LF, NUL. */
static const unsigned char qstop[256] = {
    [0] = 1, ['\r'] = 1, ['\n'] = 1, ['"'] = 1, ['\\'] = 1,
};

/* Tokens after the keyword of untagged data, up to the end of the line or
 * to a literal marker. */
static int tok_data(struct imap_parser *p, const char *base, size_t end)
{
    const char *s = base + p->pos, *e = base + end;
    struct imap_token *t;

    for (;;) {
        const char *t0, *q;
        unsigned char c;

        while (s < e && *s == ' ')
            s++;
        if (s == e)
            return more(p, (size_t)(s - base));
        t0 = s;
        c = (unsigned char)*s;
        switch (cls[c]) {
        case LF:
            p->pos = (size_t)(s + 1 - base);
            goto eol;
        case CR:
            if (s + 1 == e)
                return more(p, (size_t)(s - base));
            if (s[1] != '\n')
                return fail(p, OIMAP_EPROTO, (size_t)(s - base), "bare CR");
            p->pos = (size_t)(s + 2 - base);
            goto eol;
        case LP:
            if (p->depth >= p->lim.max_depth)
                return fail(p, OIMAP_ETOOBIG, (size_t)(s - base), "lists nested deeper than %u",
                            p->lim.max_depth);
            t = push(p, IMAP_TOK_LIST, 0, 0, (size_t)(s - base));
            if (!t)
                return EV_ERR;
            t->count = 0;
            p->depth++;
            p->open[p->depth] = (uint32_t)(t - p->toks);
            p->lastk[p->depth] = NONE;
            s++;
            continue;
        case RP:
            if (!p->depth)
                return fail(p, OIMAP_EPROTO, (size_t)(s - base), "unbalanced ')'");
            p->depth--;
            s++;
            continue;
        case DQ: {
            bool esc = false;
            q = s + 1;
            for (;;) {
                while (q < e && !qstop[(unsigned char)*q])
                    q++;
                if (q == e)
                    return more(p, (size_t)(t0 - base));
                if (*q == '"')
                    break;
                if (*q == '\\') {
                    if (q + 1 == e)
                        return more(p, (size_t)(t0 - base));
                    if (q[1] == '\r' || q[1] == '\n' || q[1] == '\0')
                        return fail(p, OIMAP_EPROTO, (size_t)(q - base),
                                    "unterminated quoted string");
                    esc = true;
                    q += 2;
                    continue;
                }
                if (*q == '\0')
                    return fail(p, OIMAP_EPROTO, (size_t)(q - base), "NUL in quoted string");
                return fail(p, OIMAP_EPROTO, (size_t)(t0 - base), "unterminated quoted string");
            }
            if (!esc) {
                t = push(p, IMAP_TOK_QUOTED, (size_t)(t0 + 1 - base), (size_t)(q - t0 - 1),
                         (size_t)(q - base));
                if (!t)
                    return EV_ERR;
            } else {
                /* Unescape into scratch: the caller's buffer is read-only. */
                size_t n = (size_t)(q - t0 - 1), o;
                const char *x;
                if (p->scr_len + n > p->lim.max_line)
                    return fail(p, OIMAP_ETOOBIG, (size_t)(t0 - base), "quoted strings too long");
                if (grow((void **)&p->scr, &p->scr_cap, p->scr_len + n, 1, 256) < 0)
                    return fail(p, -ENOMEM, (size_t)(t0 - base), "out of memory");
                o = p->scr_len;
                for (x = t0 + 1; x < q; x++) {
                    if (*x == '\\')
                        x++;
                    p->scr[p->scr_len++] = *x;
                }
                t = push(p, IMAP_TOK_QUOTED, o, p->scr_len - o, (size_t)(q - base));
                if (!t)
                    return EV_ERR;
                t->flags |= IMAP_TOKF_SCRATCH;
            }
            s = q + 1;
            continue;
        }
        case LB:
            return tok_literal(p, base, s, e);
        case B:
            return fail(p, OIMAP_EPROTO, (size_t)(s - base), "control character 0x%02x", c);
        default:
            break;
        }

        /* An atom, a number, NIL, a section, or "~{" (literal8). */
        q = s;
        if (is_digit(c)) {
            uint64_t v = 0;
            bool ovf = false;
            while (q < e && is_digit((unsigned char)*q)) {
                unsigned dg = (unsigned)(*q - '0');
                if (v > (UINT64_MAX - dg) / 10)
                    ovf = true;
                else
                    v = v * 10 + dg;
                q++;
            }
            if (q == e)
                return more(p, (size_t)(t0 - base));
            if (cls[(unsigned char)*q] != A && cls[(unsigned char)*q] != BR) {
                t = push(p, ovf ? IMAP_TOK_ATOM : IMAP_TOK_NUMBER, (size_t)(t0 - base),
                         (size_t)(q - t0), (size_t)(q - base));
                if (!t)
                    return EV_ERR;
                t->num = ovf ? 0 : v;
                s = q;
                continue;
            }
        } else if (c == '~') {
            if (q + 1 == e)
                return more(p, (size_t)(t0 - base));
            if (q[1] == '{')
                return tok_literal(p, base, s, e);
        }
        for (;;) {
            while (q < e && cls[(unsigned char)*q] == A)
                q++;
            if (q == e)
                return more(p, (size_t)(t0 - base));
            if (*q != '[')
                break;
            if (!is_section_name(t0, (size_t)(q - t0))) {
                q++;
                continue;
            }
            goto section;
        }
        if (q - t0 == 3 && ieq(t0, 3, "NIL"))
            t = push(p, IMAP_TOK_NIL, (size_t)(t0 - base), 3, (size_t)(q - base));
        else
            t = push(p, IMAP_TOK_ATOM, (size_t)(t0 - base), (size_t)(q - t0), (size_t)(q - base));
        if (!t)
            return EV_ERR;
        s = q;
        continue;

    section : {
        /* BODY[<spec>]<origin>: the spec may hold spaces, lists and quoted
         * header names, but no brackets and no line end. */
        uint64_t origin = 0;
        bool has_origin = false;
        q++;
        for (;;) {
            if (q == e)
                return more(p, (size_t)(t0 - base));
            c = (unsigned char)*q;
            if (c == ']')
                break;
            if (c == '"') {
                q++;
                while (q < e && *q != '"') {
                    if (*q == '\\' && ++q == e)
                        break;
                    if (*q == '\r' || *q == '\n' || *q == '\0')
                        return fail(p, OIMAP_EPROTO, (size_t)(q - base), "bad section");
                    q++;
                }
                if (q >= e)
                    return more(p, (size_t)(t0 - base));
                q++;
                continue;
            }
            if (c == '[' || cls[c] == B || cls[c] == CR || cls[c] == LF)
                return fail(p, OIMAP_EPROTO, (size_t)(q - base), "unterminated section");
            q++;
        }
        q++;
        if (q == e)
            return more(p, (size_t)(t0 - base));
        if (*q == '<') {
            const char *d0 = ++q;
            while (q < e && is_digit((unsigned char)*q)) {
                unsigned dg = (unsigned)(*q - '0');
                if (q - d0 >= 20 || origin > (UINT64_MAX - dg) / 10)
                    return fail(p, OIMAP_EPROTO, (size_t)(q - base), "section origin too large");
                origin = origin * 10 + dg;
                q++;
            }
            if (q == e)
                return more(p, (size_t)(t0 - base));
            if (q == d0 || *q != '>')
                return fail(p, OIMAP_EPROTO, (size_t)(q - base), "malformed section origin");
            q++;
            has_origin = true;
            if (q == e)
                return more(p, (size_t)(t0 - base));
        }
        if (cls[(unsigned char)*q] == A || cls[(unsigned char)*q] == BR)
            return fail(p, OIMAP_EPROTO, (size_t)(q - base), "junk after section");
        t = push(p, IMAP_TOK_SECTION, (size_t)(t0 - base), (size_t)(q - t0), (size_t)(q - base));
        if (!t)
            return EV_ERR;
        t->num = origin;
        if (has_origin)
            t->flags |= IMAP_TOKF_ORIGIN;
        s = q;
        continue;
    }
    }

eol:
    if (p->depth)
        return fail(p, OIMAP_EPROTO, p->pos, "unterminated list (%u open)", p->depth);
    return EV_DONE;
}

/* The start of a response: "+ ...", "* [n] KEYWORD ...", "tag STATUS ...". */
static int tok_header(struct imap_parser *p, const char *base, size_t end)
{
    struct imap_response *r = &p->resp;
    const char *s = base, *e = base + end, *q;
    enum imap_status st;

    memset(r, 0, sizeof(*r));
    if (s == e)
        return more(p, 0);
    if (*s == '+') {
        r->kind = IMAP_RESP_CONTINUATION;
        s++;
        if (s < e && *s == ' ')
            s++;
        return tok_status_tail(p, base, s, e);
    }
    if (*s == '*') {
        r->kind = IMAP_RESP_UNTAGGED;
        if (++s == e)
            return more(p, 0);
        if (*s != ' ')
            return fail(p, OIMAP_EPROTO, 1, "expected a space after '*'");
        while (s < e && *s == ' ')
            s++;
        if (s == e)
            return more(p, 0);
        if (is_digit((unsigned char)*s)) {
            uint64_t v = 0;
            while (s < e && is_digit((unsigned char)*s)) {
                v = v * 10 + (unsigned)(*s - '0');
                if (v > UINT32_MAX)
                    return fail(p, OIMAP_EPROTO, (size_t)(s - base), "message number too large");
                s++;
            }
            if (s == e)
                return more(p, 0);
            if (*s != ' ')
                return fail(p, OIMAP_EPROTO, (size_t)(s - base), "expected a space after number");
            while (s < e && *s == ' ')
                s++;
            r->has_num = true;
            r->num = (uint32_t)v;
        }
        q = s;
        while (q < e && cls[(unsigned char)*q] == A)
            q++;
        if (q == e)
            return more(p, 0);
        if (q == s)
            return fail(p, OIMAP_EPROTO, (size_t)(s - base), "missing response keyword");
        if (!r->has_num && (st = status_of(s, (size_t)(q - s))) != IMAP_STATUS_NONE) {
            r->status = st;
            return tok_status_tail(p, base, q, e);
        }
        p->kw_off = (size_t)(s - base);
        r->keyword_len = (size_t)(q - s);
        r->data = data_of(s, (size_t)(q - s));
        p->phase = PH_DATA;
        p->pos = (size_t)(q - base);
        return tok_data(p, base, end);
    }
    r->kind = IMAP_RESP_TAGGED;
    q = s;
    while (q < e && (cls[(unsigned char)*q] == A || *q == '[') && *q != '+' && *q != '*' &&
           *q != '%' && *q != '\\')
        q++;
    if (q == e)
        return more(p, 0);
    if (q == s || *q != ' ')
        return fail(p, OIMAP_EPROTO, (size_t)(q - base), "malformed tag");
    p->tag_off = 0;
    r->tag_len = (size_t)(q - s);
    s = q;
    while (s < e && *s == ' ')
        s++;
    q = s;
    while (q < e && cls[(unsigned char)*q] == A)
        q++;
    if (q == e)
        return more(p, 0);
    st = status_of(s, (size_t)(q - s));
    if (st != IMAP_STATUS_OK && st != IMAP_STATUS_NO && st != IMAP_STATUS_BAD)
        return fail(p, OIMAP_EPROTO, (size_t)(s - base), "tagged response is not OK, NO or BAD");
    r->status = st;
    return tok_status_tail(p, base, q, e);
}

static int tokenize(struct imap_parser *p, const char *base, size_t end)
{
    if (p->phase == PH_START)
        return tok_header(p, base, end);
    return tok_data(p, base, end);
}

/* ---- delivery ------------------------------------------------------------ */

/* Turn offsets into pointers for the callback (only tokens new since the
 * last call, unless a buffer moved). */
static void fill(struct imap_parser *p, const char *base)
{
    struct imap_response *r = &p->resp;
    size_t i = (base == p->fill_base && p->scr == p->fill_scr) ? p->n_filled : 0;

    for (; i < p->n_toks; i++) {
        struct imap_token *t = &p->toks[i];
        if (t->kind == IMAP_TOK_LIST || t->kind == IMAP_TOK_STREAMED)
            continue;
        t->str = ((t->flags & IMAP_TOKF_SCRATCH) ? p->scr : base) + t->off_;
    }
    p->fill_base = base;
    p->fill_scr = p->scr;
    p->n_filled = p->n_toks;
    r->tag = r->tag_len ? base + p->tag_off : NULL;
    r->text = base ? base + p->text_off : "";
    r->keyword = r->keyword_len ? base + p->kw_off : NULL;
    r->code.name = r->code.id ? base + p->code_off : NULL;
    r->code.args = r->code.id ? base + p->args_off : NULL;
    r->tokens = p->n_toks ? p->toks : NULL;
    r->n_tokens = p->n_toks;
    r->last = p->last_tok != NONE ? &p->toks[p->last_tok] : NULL;
}

static int deliver(struct imap_parser *p, const char *base)
{
    int r = 0;
    fill(p, base);
    p->resp.partial = false;
    if (p->cb.on_response)
        r = p->cb.on_response(p->ctx, &p->resp);
    reset_response(p);
    return r > 0 ? IMAP_PARSE_PAUSE : r;
}

/* Limits and the consumer's choice for a literal of p->lit_size bytes. */
static int literal_decide(struct imap_parser *p, const char *base)
{
    uint64_t size = p->lit_size;
    int how = IMAP_LITERAL_KEEP;

    if (size > p->lim.max_streamed_literal) {
        fail(p, OIMAP_ETOOBIG, p->pos, "literal of %llu bytes exceeds %llu",
             (unsigned long long)size, (unsigned long long)p->lim.max_streamed_literal);
        return p->err;
    }
    if (p->cb.on_literal_begin) {
        fill(p, base);
        p->resp.partial = true;
        how = p->cb.on_literal_begin(p->ctx, &p->resp, size);
        if (how < 0)
            return die(p, how);
    }
    if (how == IMAP_LITERAL_STREAM)
        return how;
    if (size > p->lim.max_inline_literal - p->lit_bytes ||
        p->lit_bytes > p->lim.max_inline_literal) {
        fail(p, OIMAP_ETOOBIG, p->pos, "literal of %llu bytes exceeds the inline limit %zu",
             (unsigned long long)size, p->lim.max_inline_literal);
        return p->err;
    }
    return IMAP_LITERAL_KEEP;
}

static int push_streamed(struct imap_parser *p, size_t at)
{
    struct imap_token *t = push(p, IMAP_TOK_STREAMED, at, 0, at);
    if (!t)
        return p->err;
    t->num = p->lit_size;
    if (p->lit8)
        t->flags |= IMAP_TOKF_LITERAL8;
    p->lit_left = p->lit_size;
    p->state = ST_LIT_STREAM;
    if (p->lit_size == 0) {
        p->state = ST_LINE;
        if (p->cb.on_literal_end) {
            int r = p->cb.on_literal_end(p->ctx);
            if (r < 0)
                return die(p, r);
        }
    }
    return 0;
}

static struct imap_token *push_literal(struct imap_parser *p, size_t off)
{
    /* push() checks the text limit against lit_bytes, which already counts
     * this literal by now. */
    struct imap_token *t =
        push(p, IMAP_TOK_LITERAL, off, (size_t)p->lit_size, off + (size_t)p->lit_size);
    if (!t)
        return NULL;
    t->num = p->lit_size;
    if (p->lit8)
        t->flags |= IMAP_TOKF_LITERAL8;
    return t;
}

/* Copy the first n bytes of the response in the caller's buffer into ours. */
static int spill(struct imap_parser *p, const char *in, size_t n, size_t text)
{
    int r;
    if (text > p->lim.max_line)
        return fail(p, OIMAP_ETOOBIG, text, "response longer than %zu bytes", p->lim.max_line),
               p->err;
    r = buf_append(p, in, n);
    if (r < 0)
        return fail(p, r, 0, "out of memory"), p->err;
    p->buffered = true;
    return 0;
}

#define ADVANCE(k)                                                                                 \
    do {                                                                                           \
        size_t k_ = (k);                                                                           \
        *in += k_;                                                                                 \
        *n -= k_;                                                                                  \
        p->stream_off += k_;                                                                       \
    } while (0)

/* Fast path: responses tokenised in the caller's buffer. */
static int run_fast(struct imap_parser *p, const char **in, size_t *n)
{
    for (;;) {
        int ev = tokenize(p, *in, *n), r;
        switch (ev) {
        case EV_ERR:
            return p->err;
        case EV_DONE: {
            size_t used = p->pos;
            if (used - p->lit_bytes > p->lim.max_line)
                return fail(p, OIMAP_ETOOBIG, used, "response longer than %zu bytes",
                            p->lim.max_line),
                       p->err;
            r = deliver(p, *in);
            ADVANCE(used);
            if (r < 0)
                return die(p, r);
            if (r == IMAP_PARSE_PAUSE)
                return r;
            if (*n == 0)
                return 0;
            continue;
        }
        case EV_MORE:
            r = spill(p, *in, *n, *n - p->lit_bytes);
            if (r < 0)
                return r;
            ADVANCE(*n);
            return 0;
        case EV_LITERAL:
            /* The buffered path checks the length before the consumer hears of
             * the literal: so must we, for the same callbacks in any split. */
            if (p->pos - p->lit_bytes > p->lim.max_line)
                return fail(p, OIMAP_ETOOBIG, p->pos, "response longer than %zu bytes",
                            p->lim.max_line),
                       p->err;
            r = literal_decide(p, *in);
            if (r < 0)
                return r;
            if (r == IMAP_LITERAL_STREAM) {
                size_t at = p->pos;
                r = spill(p, *in, at, at - p->lit_bytes);
                if (r < 0)
                    return r;
                ADVANCE(at);
                return push_streamed(p, at);
            }
            p->lit_bytes += (size_t)p->lit_size;
            if (*n - p->pos >= p->lit_size) {
                if (!push_literal(p, p->pos))
                    return p->err;
                p->pos += (size_t)p->lit_size;
                continue;
            }
            /* The literal goes on past this buffer: keep it in ours. */
            r = buf_reserve(p, p->pos + (size_t)p->lit_size);
            if (r < 0)
                return fail(p, r, p->pos, "out of memory"), p->err;
            r = spill(p, *in, *n, p->pos - (p->lit_bytes - (size_t)p->lit_size));
            if (r < 0)
                return r;
            p->lit_start = p->pos;
            p->lit_left = p->lit_size - (*n - p->pos);
            p->state = ST_LIT_INLINE;
            ADVANCE(*n);
            return 0;
        }
    }
}

/* Buffered mode, in ST_LINE: gather up to LF, then tokenise that line. */
static int run_buffered(struct imap_parser *p, const char **in, size_t *n)
{
    const char *lf = memchr(*in, '\n', *n);
    size_t k = lf ? (size_t)(lf - *in) + 1 : *n;
    int ev, r;

    if (p->buf_len + k - p->lit_bytes > p->lim.max_line)
        return fail(p, OIMAP_ETOOBIG, p->buf_len, "response longer than %zu bytes",
                    p->lim.max_line),
               p->err;
    r = buf_append(p, *in, k);
    if (r < 0)
        return fail(p, r, p->buf_len, "out of memory"), p->err;
    ADVANCE(k);
    if (!lf)
        return 0;
    ev = tokenize(p, p->buf, p->buf_len);
    switch (ev) {
    case EV_ERR:
        return p->err;
    case EV_DONE:
        r = deliver(p, p->buf);
        if (r < 0)
            return die(p, r);
        return r;
    case EV_MORE:
        return fail(p, OIMAP_EPROTO, p->pos, "incomplete line"), p->err;
    default:
        break;
    }
    /* EV_LITERAL: the marker ended the buffer. */
    r = literal_decide(p, p->buf);
    if (r < 0)
        return r;
    if (r == IMAP_LITERAL_STREAM)
        return push_streamed(p, p->buf_len);
    p->lit_bytes += (size_t)p->lit_size;
    r = buf_reserve(p, p->buf_len + (size_t)p->lit_size);
    if (r < 0)
        return fail(p, r, p->pos, "out of memory"), p->err;
    p->lit_start = p->buf_len;
    p->lit_left = p->lit_size;
    if (p->lit_size == 0) {
        if (!push_literal(p, p->lit_start))
            return p->err;
        return 0;
    }
    p->state = ST_LIT_INLINE;
    return 0;
}

int imap_parser_feed(struct imap_parser *p, const char *buf, size_t len)
{
    const char *in = buf, **inp = &in;
    size_t n = len, *np = &n;
    int r = 0;

    p->consumed = 0;
    if (p->err)
        return p->err;
    if (!buf && len)
        return -EINVAL;
    while (n > 0) {
        if (p->state == ST_LIT_STREAM) {
            size_t k = n < p->lit_left ? n : (size_t)p->lit_left;
            if (p->cb.on_literal_data) {
                r = p->cb.on_literal_data(p->ctx, in, k);
                if (r < 0)
                    break;
            }
            in += k;
            n -= k;
            p->stream_off += k;
            p->lit_left -= k;
            p->streamed += k;
            if (p->lit_left == 0) {
                p->state = ST_LINE;
                p->pos = p->buf_len;
                if (p->cb.on_literal_end && (r = p->cb.on_literal_end(p->ctx)) < 0)
                    break;
            }
            r = 0;
        } else if (p->state == ST_LIT_INLINE) {
            size_t k = n < p->lit_left ? n : (size_t)p->lit_left;
            memcpy(p->buf + p->buf_len, in, k); /* reserved when the literal began */
            p->buf_len += k;
            in += k;
            n -= k;
            p->stream_off += k;
            p->lit_left -= k;
            if (p->lit_left == 0) {
                p->state = ST_LINE;
                if (!push_literal(p, p->lit_start)) {
                    r = p->err;
                    break;
                }
                p->pos = p->buf_len;
            }
        } else if (!p->buffered) {
            r = run_fast(p, inp, np);
            if (r != 0)
                break;
        } else {
            r = run_buffered(p, inp, np);
            if (r != 0)
                break;
        }
    }
    p->consumed = len - n;
    if (r < 0)
        return die(p, r);
    return r;
}

/* ---- token helpers ------------------------------------------------------- */

bool imap_tok_is(const struct imap_token *t, const char *word)
{
    if (!t || !t->str)
        return false;
    if (t->kind != IMAP_TOK_ATOM && t->kind != IMAP_TOK_NIL && t->kind != IMAP_TOK_NUMBER &&
        t->kind != IMAP_TOK_SECTION)
        return false;
    return ieq(t->str, t->len, word);
}

bool imap_tok_is_string(const struct imap_token *t)
{
    return t && (t->kind == IMAP_TOK_ATOM || t->kind == IMAP_TOK_NUMBER ||
                 t->kind == IMAP_TOK_QUOTED || t->kind == IMAP_TOK_LITERAL);
}

int imap_tok_section(const struct imap_token *t, struct imap_section *s_r)
{
    const char *lb, *rb, *end;

    if (!t || t->kind != IMAP_TOK_SECTION || !t->str)
        return OIMAP_EPROTO;
    end = t->str + t->len;
    lb = memchr(t->str, '[', t->len);
    if (!lb)
        return OIMAP_EPROTO;
    rb = end - 1;
    if (t->flags & IMAP_TOKF_ORIGIN) {
        while (rb > lb && *rb != '<')
            rb--;
        rb--;
    }
    if (rb <= lb || *rb != ']')
        return OIMAP_EPROTO;
    s_r->name = t->str;
    s_r->name_len = (size_t)(lb - t->str);
    s_r->spec = lb + 1;
    s_r->spec_len = (size_t)(rb - lb - 1);
    s_r->has_origin = (t->flags & IMAP_TOKF_ORIGIN) != 0;
    s_r->origin = t->num;
    return 0;
}

/* ---- response codes ------------------------------------------------------ */

static const char *skip_sp(const char *s, const char *e)
{
    while (s < e && *s == ' ')
        s++;
    return s;
}

/* At least one digit, at most 64 bits. */
static int parse_u64(const char **sp, const char *e, uint64_t *v_r)
{
    const char *s = *sp;
    uint64_t v = 0;
    if (s == e || !is_digit((unsigned char)*s))
        return OIMAP_EPROTO;
    while (s < e && is_digit((unsigned char)*s)) {
        unsigned dg = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - dg) / 10)
            return OIMAP_EPROTO;
        v = v * 10 + dg;
        s++;
    }
    *sp = s;
    *v_r = v;
    return 0;
}

int imap_code_number(const struct imap_resp_code *c, uint64_t *n_r)
{
    const char *s, *e;
    if (!c || !c->args)
        return OIMAP_EPROTO;
    s = skip_sp(c->args, c->args + c->args_len);
    e = c->args + c->args_len;
    if (parse_u64(&s, e, n_r) < 0)
        return OIMAP_EPROTO;
    return skip_sp(s, e) == e ? 0 : OIMAP_EPROTO;
}

/* A sequence set up to the next space; checked with imap_seqset_next(). */
static int take_set(const char **sp, const char *e, const char **set_r, size_t *len_r)
{
    const char *s = skip_sp(*sp, e), *q = s;
    size_t pos = 0;
    uint32_t lo, hi;
    int r;
    while (q < e && *q != ' ')
        q++;
    if (q == s)
        return OIMAP_EPROTO;
    while ((r = imap_seqset_next(s, (size_t)(q - s), &pos, &lo, &hi)) > 0)
        ;
    if (r < 0)
        return r;
    *set_r = s;
    *len_r = (size_t)(q - s);
    *sp = q;
    return 0;
}

static int take_uidvalidity(const char **sp, const char *e, uint32_t *uv_r)
{
    uint64_t v;
    *sp = skip_sp(*sp, e);
    if (parse_u64(sp, e, &v) < 0 || v == 0 || v > UINT32_MAX)
        return OIMAP_EPROTO;
    *uv_r = (uint32_t)v;
    return 0;
}

int imap_code_appenduid(const struct imap_resp_code *c, uint32_t *uidvalidity_r, const char **set_r,
                        size_t *set_len_r)
{
    const char *s, *e;
    if (!c || c->id != IMAP_CODE_APPENDUID || !c->args)
        return OIMAP_EPROTO;
    s = c->args;
    e = s + c->args_len;
    if (take_uidvalidity(&s, e, uidvalidity_r) < 0 || take_set(&s, e, set_r, set_len_r) < 0)
        return OIMAP_EPROTO;
    return skip_sp(s, e) == e ? 0 : OIMAP_EPROTO;
}

int imap_code_copyuid(const struct imap_resp_code *c, uint32_t *uidvalidity_r, const char **src_r,
                      size_t *src_len_r, const char **dst_r, size_t *dst_len_r)
{
    const char *s, *e;
    if (!c || c->id != IMAP_CODE_COPYUID || !c->args)
        return OIMAP_EPROTO;
    s = c->args;
    e = s + c->args_len;
    if (take_uidvalidity(&s, e, uidvalidity_r) < 0 || take_set(&s, e, src_r, src_len_r) < 0 ||
        take_set(&s, e, dst_r, dst_len_r) < 0)
        return OIMAP_EPROTO;
    return skip_sp(s, e) == e ? 0 : OIMAP_EPROTO;
}

bool imap_words_next(const char *s, size_t len, size_t *pos, const char **w_r, size_t *wlen_r)
{
    size_t i = *pos, j;
    while (i < len && s[i] == ' ')
        i++;
    if (i >= len) {
        *pos = len;
        return false;
    }
    j = i;
    while (j < len && s[j] != ' ')
        j++;
    *w_r = s + i;
    *wlen_r = j - i;
    *pos = j;
    return true;
}

static int seq_number(const char *s, size_t len, size_t *i, uint32_t *v_r)
{
    uint64_t v = 0;
    size_t j = *i;
    if (j < len && s[j] == '*') {
        *v_r = UINT32_MAX;
        *i = j + 1;
        return 0;
    }
    if (j >= len || !is_digit((unsigned char)s[j]))
        return OIMAP_EPROTO;
    while (j < len && is_digit((unsigned char)s[j])) {
        v = v * 10 + (unsigned)(s[j] - '0');
        if (v > UINT32_MAX)
            return OIMAP_EPROTO;
        j++;
    }
    if (v == 0)
        return OIMAP_EPROTO;
    *v_r = (uint32_t)v;
    *i = j;
    return 0;
}

int imap_seqset_next(const char *s, size_t len, size_t *pos, uint32_t *lo_r, uint32_t *hi_r)
{
    size_t i = *pos;
    uint32_t a, b;
    if (i >= len)
        return 0;
    if (i > 0) {
        if (s[i] != ',' || i + 1 >= len)
            return OIMAP_EPROTO;
        i++;
    }
    if (seq_number(s, len, &i, &a) < 0)
        return OIMAP_EPROTO;
    b = a;
    if (i < len && s[i] == ':') {
        i++;
        if (seq_number(s, len, &i, &b) < 0)
            return OIMAP_EPROTO;
    }
    if (i < len && s[i] != ',')
        return OIMAP_EPROTO;
    *lo_r = a < b ? a : b;
    *hi_r = a < b ? b : a;
    *pos = i;
    return 1;
}

int imap_uidset_expand(const char *s, size_t len, uint32_t *out, size_t cap, size_t *n_r)
{
    size_t i = 0, n = 0;
    uint32_t last = 0;
    *n_r = 0;
    if (len == 0)
        return OIMAP_EPROTO;
    while (i < len) {
        uint32_t a, b;
        if (n && (s[i] != ',' || ++i >= len))
            return OIMAP_EPROTO;
        if (seq_number(s, len, &i, &a) < 0 || a == UINT32_MAX)
            return OIMAP_EPROTO; /* no '*' among assigned UIDs */
        b = a;
        if (i < len && s[i] == ':') {
            i++;
            if (seq_number(s, len, &i, &b) < 0 || b == UINT32_MAX)
                return OIMAP_EPROTO;
        }
        if (i < len && s[i] != ',')
            return OIMAP_EPROTO;
        /* Ascending only: "5:3" or "7,4" leave the order of the messages in
         * doubt, and a wrong pairing is worse than a search. */
        if (b < a || a <= last)
            return OIMAP_EPROTO;
        if ((uint64_t)b - a + 1 > cap - n)
            return OIMAP_ETOOBIG;
        for (uint64_t u = a; u <= b; u++)
            out[n++] = (uint32_t)u;
        last = b;
    }
    *n_r = n;
    return 0;
}

/* ---- flags ----------------------------------------------------------------- */

unsigned imap_flag_bit(const char *s, size_t len)
{
    if (len < 2 || s[0] != '\\')
        return 0;
    s++;
    len--;
    if (ieq(s, len, "Seen"))
        return IMAP_FLAG_SEEN;
    if (ieq(s, len, "Answered"))
        return IMAP_FLAG_ANSWERED;
    if (ieq(s, len, "Flagged"))
        return IMAP_FLAG_FLAGGED;
    if (ieq(s, len, "Deleted"))
        return IMAP_FLAG_DELETED;
    if (ieq(s, len, "Draft"))
        return IMAP_FLAG_DRAFT;
    if (ieq(s, len, "Recent"))
        return IMAP_FLAG_RECENT;
    if (ieq(s, len, "*"))
        return IMAP_FLAG_ANY;
    return 0;
}

int imap_code_flags(const struct imap_resp_code *c, unsigned *bits_r, unsigned *n_keywords_r)
{
    const char *s, *e, *w;
    size_t pos = 0, wl;
    unsigned bits = 0, nk = 0;

    if (!c || !c->args)
        return OIMAP_EPROTO;
    s = skip_sp(c->args, c->args + c->args_len);
    e = c->args + c->args_len;
    while (e > s && e[-1] == ' ')
        e--;
    if (e - s < 2 || *s != '(' || e[-1] != ')')
        return OIMAP_EPROTO;
    s++;
    e--;
    while (imap_words_next(s, (size_t)(e - s), &pos, &w, &wl)) {
        unsigned b = imap_flag_bit(w, wl);
        if (b)
            bits |= b;
        else
            nk++;
    }
    *bits_r = bits;
    *n_keywords_r = nk;
    return 0;
}

/* ---- dates ------------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (a 400-year-era count). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, size_t n, unsigned *v_r)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)s[i]))
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *v_r = v;
    return true;
}

int imap_parse_date_time(const char *s, size_t len, time_t *t_r)
{
    static const unsigned char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    static const unsigned char mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *e = s + len;
    unsigned d, m = 0, y, hh, mm, ss, zh, zm;
    int sign;
    size_t dl;

    if (len && *s == ' ')
        s++;
    for (dl = 0; s + dl < e && is_digit((unsigned char)s[dl]); dl++)
        ;
    if (dl < 1 || dl > 2 || !digits(s, dl, &d))
        return OIMAP_EPROTO;
    s += dl;
    /* "-Mon-yyyy hh:mm:ss +zzzz" is exactly 24 bytes */
    if (e - s != 24 || s[0] != '-' || s[4] != '-' || s[9] != ' ' || s[12] != ':' || s[15] != ':' ||
        s[18] != ' ' || (s[19] != '+' && s[19] != '-'))
        return OIMAP_EPROTO;
    for (unsigned i = 0; i < 12; i++) {
        if (lower((unsigned char)s[1]) == months[3 * i] &&
            lower((unsigned char)s[2]) == months[3 * i + 1] &&
            lower((unsigned char)s[3]) == months[3 * i + 2])
            m = i + 1;
    }
    if (!m || !digits(s + 5, 4, &y) || !digits(s + 10, 2, &hh) || !digits(s + 13, 2, &mm) ||
        !digits(s + 16, 2, &ss) || !digits(s + 20, 2, &zh) || !digits(s + 22, 2, &zm))
        return OIMAP_EPROTO;
    if (d < 1 || d > mdays[m - 1] || hh > 23 || mm > 59 || ss > 60 || zh > 23 || zm > 59)
        return OIMAP_EPROTO;
    if (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return OIMAP_EPROTO;
    sign = s[19] == '-' ? -1 : 1;
    *t_r = (time_t)(days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss -
                    sign * (int64_t)(zh * 3600 + zm * 60));
    return 0;
}

/* ---- FETCH ------------------------------------------------------------------ */

static bool is_body_item(const struct imap_token *t)
{
    if (t->kind == IMAP_TOK_SECTION)
        return true;
    return t->kind == IMAP_TOK_ATOM &&
           (imap_tok_is(t, "RFC822") || imap_tok_is(t, "RFC822.HEADER") ||
            imap_tok_is(t, "RFC822.TEXT"));
}

int imap_fetch_decode(const struct imap_response *r, struct imap_fetch *f)
{
    const struct imap_token *list, *item, *v;

    memset(f, 0, sizeof(*f));
    f->internaldate = (time_t)-1;
    if (r->data != IMAP_DATA_FETCH || !r->has_num)
        return OIMAP_EPROTO;
    f->seq = r->num;
    list = r->tokens;
    if (!list || list->kind != IMAP_TOK_LIST || (!r->partial && imap_tok_next(list)))
        return OIMAP_EPROTO;
    for (item = imap_tok_child(list); item; item = imap_tok_next(v)) {
        if (item->kind != IMAP_TOK_ATOM && item->kind != IMAP_TOK_SECTION)
            return OIMAP_EPROTO;
        v = imap_tok_next(item);
        if (!v) {
            if (r->partial)
                break;
            return OIMAP_EPROTO;
        }
        if (imap_tok_is(item, "UID")) {
            if (v->kind != IMAP_TOK_NUMBER || v->num == 0 || v->num > UINT32_MAX)
                return OIMAP_EPROTO;
            if ((f->present & IMAP_FETCH_UID) && f->uid != v->num)
                return OIMAP_EPROTO;
            f->uid = (uint32_t)v->num;
            f->present |= IMAP_FETCH_UID;
        } else if (imap_tok_is(item, "FLAGS")) {
            const struct imap_token *fl;
            if (v->kind != IMAP_TOK_LIST)
                return OIMAP_EPROTO;
            f->flags = 0;
            f->n_keywords = 0;
            f->flag_list = imap_tok_child(v);
            for (fl = f->flag_list; fl; fl = imap_tok_next(fl)) {
                unsigned b;
                if (fl->kind != IMAP_TOK_ATOM && fl->kind != IMAP_TOK_QUOTED)
                    return OIMAP_EPROTO;
                b = imap_flag_bit(fl->str, fl->len);
                if (b)
                    f->flags |= b;
                else
                    f->n_keywords++;
            }
            f->present |= IMAP_FETCH_FLAGS;
        } else if (imap_tok_is(item, "RFC822.SIZE")) {
            if (v->kind != IMAP_TOK_NUMBER)
                return OIMAP_EPROTO;
            f->rfc822_size = v->num;
            f->present |= IMAP_FETCH_SIZE;
        } else if (imap_tok_is(item, "INTERNALDATE")) {
            if (v->kind != IMAP_TOK_QUOTED && v->kind != IMAP_TOK_LITERAL)
                return OIMAP_EPROTO;
            f->internaldate_raw = v->str;
            f->internaldate_len = v->len;
            if (imap_parse_date_time(v->str, v->len, &f->internaldate) == 0)
                f->present |= IMAP_FETCH_DATE;
        } else if (imap_tok_is(item, "MODSEQ")) {
            const struct imap_token *m = imap_tok_child(v);
            if (!m || m->kind != IMAP_TOK_NUMBER)
                return OIMAP_EPROTO;
            f->modseq = m->num;
            f->present |= IMAP_FETCH_MODSEQ;
        } else if (imap_tok_is(item, "X-GM-LABELS")) {
            if (v->kind != IMAP_TOK_LIST && v->kind != IMAP_TOK_NIL)
                return OIMAP_EPROTO;
            f->labels = imap_tok_child(v);
            f->n_labels = v->kind == IMAP_TOK_LIST ? v->count : 0;
            f->present |= IMAP_FETCH_LABELS;
        } else if (imap_tok_is(item, "X-GM-MSGID") || imap_tok_is(item, "X-GM-THRID")) {
            bool msgid = imap_tok_is(item, "X-GM-MSGID");
            if (v->kind != IMAP_TOK_NUMBER)
                return OIMAP_EPROTO;
            *(msgid ? &f->gm_msgid : &f->gm_thrid) = v->num;
            f->present |= msgid ? IMAP_FETCH_GM_MSGID : IMAP_FETCH_GM_THRID;
        } else if (is_body_item(item)) {
            struct imap_fetch_body *b;
            if (f->n_bodies == IMAP_FETCH_MAX_BODIES)
                return OIMAP_ETOOBIG;
            b = &f->bodies[f->n_bodies++];
            b->item = item;
            switch (v->kind) {
            case IMAP_TOK_NIL:
                b->nil = true;
                break;
            case IMAP_TOK_STREAMED:
                b->streamed = true;
                b->size = v->num;
                break;
            case IMAP_TOK_QUOTED:
            case IMAP_TOK_LITERAL:
                b->data = v->str;
                b->len = v->len;
                b->size = v->len;
                break;
            default:
                return OIMAP_EPROTO;
            }
        }
        /* anything else (ENVELOPE, BODYSTRUCTURE, ...) is skipped: v is one token */
    }
    return 0;
}

/* ---- command side ----------------------------------------------------------- */

bool imap_quotable(const char *s, size_t len, bool utf8_ok)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\0' || c == '\r' || c == '\n' || (c >= 0x80 && !utf8_ok))
            return false;
    }
    return true;
}

int imap_quote(char *out, size_t out_size, const char *s, size_t len, bool utf8_ok)
{
    size_t need = 3, o = 0;
    if (!imap_quotable(s, len, utf8_ok))
        return 0;
    for (size_t i = 0; i < len; i++)
        need += (s[i] == '"' || s[i] == '\\') ? 2 : 1;
    if (need > out_size || need - 1 > INT32_MAX)
        return OIMAP_ETOOBIG;
    out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            out[o++] = '\\';
        out[o++] = s[i];
    }
    out[o++] = '"';
    out[o] = '\0';
    return (int)o;
}
