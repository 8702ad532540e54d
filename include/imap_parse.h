/* imap_parse.h - the IMAP response parser: bytes in, responses out.
 *
 * A pure, incremental push parser over byte buffers (RFC 3501 responses plus
 * the extensions oimap uses: LITERAL+, literal8, CONDSTORE/QRESYNC, UIDPLUS,
 * Gmail's X-GM-*).  No I/O, no globals, no allocation per byte: the parser owns
 * three buffers (a line buffer, a token array, a scratch area for unescaped
 * quoted strings) that grow by doubling up to the limits and shrink back after
 * an unusually large response.
 *
 * Feeding.  imap_parser_feed() takes whatever arrived from the network, in any
 * split, and calls back once per complete response.  When a whole response is
 * inside the buffer given (the common case) it is tokenised in place, in one
 * pass, without a copy; only a response cut by the end of a buffer is copied
 * into the parser's line buffer (and then tokenised once its line is complete,
 * so every byte is scanned at most three times even when fed one at a time).
 *
 * Literals.  When a literal {n} / {n+} / ~{n} begins, on_literal_begin (if set)
 * sees the response parsed so far and chooses:
 *   IMAP_LITERAL_STREAM  its bytes go to on_literal_data as pointers straight
 *                        into the caller's input buffers, then on_literal_end;
 *                        the literal is a STREAMED token (with its size) in the
 *                        final tree.  Nothing of it is buffered.
 *   IMAP_LITERAL_KEEP    it is kept inline (LITERAL token), allowed up to
 *                        max_inline_literal bytes in total per response.
 * A literal larger than max_streamed_literal is refused before a byte of it is
 * read.  Without on_literal_begin, literals are kept inline within the limit.
 *
 * Ownership.  Every pointer in a struct imap_response (tag, text, tokens and
 * their strings) points into the caller's input buffer or the parser's buffers
 * and is valid only during the callback that received it.  Strings are NOT
 * NUL-terminated: use the lengths.
 *
 * Errors.  feed() returns 0, or a negative code: OIMAP_EPROTO (malformed input;
 * imap_parser_error() says what and at which stream offset), OIMAP_ETOOBIG (a
 * limit was crossed), -ENOMEM, or whatever negative value a callback returned.
 * Errors in a line cut by the end of a buffer may be seen only once the rest
 * of that line (or the line limit) arrives; otherwise feeding in any split
 * gives the same callbacks and the same result.
 * After an error the parser is dead: every later feed() returns the same code
 * (the connection is to be dropped).  A callback returning IMAP_PARSE_PAUSE
 * (from on_response only) makes feed() stop right after that response and
 * return IMAP_PARSE_PAUSE; imap_parser_consumed() then says how many bytes of
 * the buffer were used.  The parser stays usable (it is between responses):
 * STARTTLS uses this to throw away anything a server sent after its OK.
 *
 * Leniency.  Bare LF line ends; several spaces where one is due; spaces before
 * ')'; lists adjacent to tokens; 8-bit bytes in quoted strings, atoms and text;
 * unknown backslash escapes in quoted strings (kept as the escaped byte); a
 * status text with an unclosed '[' (no code).  Strict: NUL and other control
 * characters outside literals, bare CR, unbalanced parentheses, literal markers
 * not at the end of a line, overlong literal sizes, tagged responses other
 * than OK/NO/BAD.
 */
#ifndef OIMAP_IMAP_PARSE_H
#define OIMAP_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- tokens ------------------------------------------------------------- */

enum imap_tok_kind {
    IMAP_TOK_ATOM,     /* str/len: the atom (flags such as \Seen are atoms) */
    IMAP_TOK_NUMBER,   /* str/len: the digits; num: the value (fits in 64 bits) */
    IMAP_TOK_QUOTED,   /* str/len: the unescaped contents */
    IMAP_TOK_LITERAL,  /* str/len: the data kept inline; num: its size */
    IMAP_TOK_STREAMED, /* a literal given to on_literal_data; num: its size; str NULL */
    IMAP_TOK_NIL,      /* str/len: "NIL" as sent */
    IMAP_TOK_LIST,     /* count children, the first at this + 1 */
    IMAP_TOK_SECTION,  /* BODY[...]<origin>, BODY.PEEK[..], BINARY[..], BINARY.SIZE[..]:
                        * str/len the whole text; num the origin if IMAP_TOKF_ORIGIN;
                        * imap_tok_section() splits it */
};

#define IMAP_TOKF_LITERAL8 0x01 /* LITERAL/STREAMED: it was ~{n} */
#define IMAP_TOKF_ORIGIN 0x02   /* SECTION: has <origin> */
#define IMAP_TOKF_SCRATCH 0x80  /* private */

/* Tokens live in one flat array in document order; a list's children follow
 * it, siblings are linked by a relative index.  Walk them with imap_tok_child()
 * and imap_tok_next(). */
struct imap_token {
    const char *str;
    uint64_t num;
    uint32_t len;
    uint32_t next; /* private: distance to the next sibling, 0 if none */
    union {
        uint32_t count; /* LIST: number of children */
        uint32_t off_;  /* private */
    };
    uint8_t kind;  /* enum imap_tok_kind */
    uint8_t flags; /* IMAP_TOKF_* */
};

static inline const struct imap_token *imap_tok_next(const struct imap_token *t)
{
    return t && t->next ? t + t->next : NULL;
}

static inline const struct imap_token *imap_tok_child(const struct imap_token *t)
{
    return t && t->kind == IMAP_TOK_LIST && t->count ? t + 1 : NULL;
}

/* True when t is an ATOM (or NIL/NUMBER/SECTION text) equal to word, ignoring
 * ASCII case. */
bool imap_tok_is(const struct imap_token *t, const char *word);

/* True when t carries a string value: ATOM, NUMBER, QUOTED or LITERAL. */
bool imap_tok_is_string(const struct imap_token *t);

/* The parts of a SECTION token: "BODY.PEEK[HEADER.FIELDS (A B)]<0>" gives
 * name "BODY.PEEK", spec "HEADER.FIELDS (A B)", origin 0 (has_origin). */
struct imap_section {
    const char *name;
    size_t name_len;
    const char *spec;
    size_t spec_len;
    bool has_origin;
    uint64_t origin;
};
int imap_tok_section(const struct imap_token *t, struct imap_section *s_r);

/* ---- responses ---------------------------------------------------------- */

enum imap_resp_kind { IMAP_RESP_TAGGED, IMAP_RESP_UNTAGGED, IMAP_RESP_CONTINUATION };

enum imap_status {
    IMAP_STATUS_NONE, /* untagged data (FETCH, EXISTS, ...) or continuation */
    IMAP_STATUS_OK,
    IMAP_STATUS_NO,
    IMAP_STATUS_BAD,
    IMAP_STATUS_PREAUTH,
    IMAP_STATUS_BYE,
};

/* Untagged data keywords we know; anything else is IMAP_DATA_OTHER (see
 * keyword/keyword_len). */
enum imap_data {
    IMAP_DATA_NONE, /* a status response or continuation */
    IMAP_DATA_OTHER,
    IMAP_DATA_CAPABILITY,
    IMAP_DATA_LIST,
    IMAP_DATA_LSUB,
    IMAP_DATA_STATUS,
    IMAP_DATA_SEARCH,
    IMAP_DATA_ESEARCH,
    IMAP_DATA_FLAGS,
    IMAP_DATA_EXISTS,
    IMAP_DATA_RECENT,
    IMAP_DATA_EXPUNGE,
    IMAP_DATA_FETCH,
    IMAP_DATA_VANISHED,
    IMAP_DATA_ENABLED,
    IMAP_DATA_NAMESPACE,
    IMAP_DATA_ID,
};

/* Response codes: the bracketed part of a status response. */
enum imap_code {
    IMAP_CODE_NONE,  /* no [code] */
    IMAP_CODE_OTHER, /* see name/name_len */
    IMAP_CODE_ALERT,
    IMAP_CODE_UIDVALIDITY,
    IMAP_CODE_UIDNEXT,
    IMAP_CODE_UNSEEN,
    IMAP_CODE_HIGHESTMODSEQ,
    IMAP_CODE_NOMODSEQ,
    IMAP_CODE_APPENDUID,
    IMAP_CODE_COPYUID,
    IMAP_CODE_UIDNOTSTICKY,
    IMAP_CODE_CAPABILITY,
    IMAP_CODE_PERMANENTFLAGS,
    IMAP_CODE_READ_ONLY,
    IMAP_CODE_READ_WRITE,
    IMAP_CODE_TRYCREATE,
    IMAP_CODE_CLOSED,
    IMAP_CODE_PARSE,
    IMAP_CODE_BADCHARSET,
    IMAP_CODE_AUTHENTICATIONFAILED,
    IMAP_CODE_UNAVAILABLE,
    IMAP_CODE_NONEXISTENT,
    IMAP_CODE_ALREADYEXISTS,
    IMAP_CODE_OVERQUOTA,
};

struct imap_resp_code {
    enum imap_code id;
    const char *name; /* e.g. "UIDVALIDITY" */
    size_t name_len;
    const char *args; /* raw text between the name and ']' (may be empty) */
    size_t args_len;
};

struct imap_response {
    enum imap_resp_kind kind;
    const char *tag; /* TAGGED only */
    size_t tag_len;
    enum imap_status status;
    struct imap_resp_code code; /* status responses */
    const char *text;           /* human text (status) or the text after "+ " */
    size_t text_len;

    bool has_num; /* "* 23 EXISTS": num 23 */
    uint32_t num;
    enum imap_data data;
    const char *keyword; /* untagged data: "FETCH", "LIST", ... as sent */
    size_t keyword_len;

    /* Untagged data: the tokens after the keyword; the first top-level one is
     * tokens[0] (NULL if none), the others follow by imap_tok_next(). */
    const struct imap_token *tokens;
    size_t n_tokens;
    const struct imap_token *last; /* the token parsed last (NULL if none) */
    bool partial;                  /* in on_literal_begin: the response so far */
};

/* ---- response code helpers ---------------------------------------------- */

/* UIDVALIDITY, UIDNEXT, UNSEEN, HIGHESTMODSEQ: the number.  0 or OIMAP_EPROTO. */
int imap_code_number(const struct imap_resp_code *c, uint64_t *n_r);

/* APPENDUID uidvalidity uid-set (a single UID, or a set after MULTIAPPEND). */
int imap_code_appenduid(const struct imap_resp_code *c, uint32_t *uidvalidity_r, const char **set_r,
                        size_t *set_len_r);

/* COPYUID uidvalidity source-set dest-set. */
int imap_code_copyuid(const struct imap_resp_code *c, uint32_t *uidvalidity_r, const char **src_r,
                      size_t *src_len_r, const char **dst_r, size_t *dst_len_r);

/* Space-separated words (CAPABILITY arguments, ENABLED...): start with
 * *pos = 0; returns true and the next word until the end. */
bool imap_words_next(const char *s, size_t len, size_t *pos, const char **w_r, size_t *wlen_r);

/* Sequence sets "1:3,7,9:*" (star is UINT32_MAX; a:b with a > b is returned as
 * b:a).  Iterate from *pos = 0; returns 1 and a range, 0 at the end, or
 * OIMAP_EPROTO for a malformed set. */
int imap_seqset_next(const char *s, size_t len, size_t *pos, uint32_t *lo_r, uint32_t *hi_r);

/* The UIDs of an APPENDUID / COPYUID uid-set, in the set's order, into
 * out[0..cap): "3:5,9" gives 3 4 5 9.  Strict: the set must be ascending
 * (no "5:3", no "9,4"), without 0 or '*', since callers map the UIDs to
 * messages by position.  Returns 0 and *n_r, OIMAP_ETOOBIG when there are
 * more than cap, or OIMAP_EPROTO (*n_r is 0 on errors). */
int imap_uidset_expand(const char *s, size_t len, uint32_t *out, size_t cap, size_t *n_r);

/* ---- flags and FETCH ---------------------------------------------------- */

#define IMAP_FLAG_SEEN 0x01u
#define IMAP_FLAG_ANSWERED 0x02u
#define IMAP_FLAG_FLAGGED 0x04u
#define IMAP_FLAG_DELETED 0x08u
#define IMAP_FLAG_DRAFT 0x10u
#define IMAP_FLAG_RECENT 0x20u
#define IMAP_FLAG_ANY 0x40u /* \* in PERMANENTFLAGS */

/* The IMAP_FLAG_* bit of a system flag (case-insensitive), 0 for a keyword. */
unsigned imap_flag_bit(const char *s, size_t len);

/* PERMANENTFLAGS (...): system flag bits (with IMAP_FLAG_ANY for \*) and the
 * number of keywords.  0 or OIMAP_EPROTO. */
int imap_code_flags(const struct imap_resp_code *c, unsigned *bits_r, unsigned *n_keywords_r);

#define IMAP_FETCH_MAX_BODIES 4

struct imap_fetch_body {
    const struct imap_token *item; /* the SECTION (or RFC822[.HEADER|.TEXT]) token */
    const char *data;              /* inline data; NULL when streamed or NIL */
    size_t len;
    uint64_t size; /* bytes of data, streamed or inline */
    bool streamed;
    bool nil;
};

#define IMAP_FETCH_UID 0x01u
#define IMAP_FETCH_FLAGS 0x02u
#define IMAP_FETCH_SIZE 0x04u
#define IMAP_FETCH_DATE 0x08u /* internaldate parsed (raw is set whenever present) */
#define IMAP_FETCH_MODSEQ 0x10u
#define IMAP_FETCH_LABELS 0x20u
#define IMAP_FETCH_GM_MSGID 0x40u
#define IMAP_FETCH_GM_THRID 0x80u

struct imap_fetch {
    uint32_t seq;
    uint32_t uid;
    unsigned present;                   /* IMAP_FETCH_* */
    unsigned flags;                     /* IMAP_FLAG_* system flags */
    const struct imap_token *flag_list; /* first flag token (iterate with imap_tok_next) */
    unsigned n_keywords;                /* flags that are not system flags */
    uint64_t rfc822_size;
    time_t internaldate; /* UTC seconds */
    const char *internaldate_raw;
    size_t internaldate_len;
    uint64_t modseq;
    const struct imap_token *labels; /* first X-GM-LABELS token */
    unsigned n_labels;
    uint64_t gm_msgid, gm_thrid;
    unsigned n_bodies;
    struct imap_fetch_body bodies[IMAP_FETCH_MAX_BODIES];
};

/* Decode "* n FETCH (...)" (also a partial one in on_literal_begin).  Unknown
 * items are skipped.  0, or OIMAP_EPROTO for a malformed item (UID 0, FLAGS
 * not a list, an item without value, a repeated UID), OIMAP_ETOOBIG for more
 * than IMAP_FETCH_MAX_BODIES body sections. */
int imap_fetch_decode(const struct imap_response *r, struct imap_fetch *f_r);

/* "17-Jul-1996 02:44:25 -0700" -> UTC seconds.  0 or OIMAP_EPROTO. */
int imap_parse_date_time(const char *s, size_t len, time_t *t_r);

/* ---- the parser --------------------------------------------------------- */

struct imap_parser_limits {
    size_t max_line;               /* response bytes other than literals: 8 MiB */
    size_t max_inline_literal;     /* literal bytes kept per response: 1 MiB */
    uint64_t max_streamed_literal; /* one streamed literal: 512 MiB */
    unsigned max_depth;            /* list nesting: 64 (at most IMAP_PARSER_MAX_DEPTH) */
    size_t max_tokens;             /* tokens per response: 2 Mi (32 bytes each) */
};
#define IMAP_PARSER_MAX_DEPTH 256

/* Fill l with the defaults above. */
void imap_parser_limits_default(struct imap_parser_limits *l);

enum { IMAP_LITERAL_KEEP = 0, IMAP_LITERAL_STREAM = 1 };
#define IMAP_PARSE_PAUSE 1

/* All optional.  A negative return aborts feed() with that code (the parser is
 * dead afterwards). */
struct imap_parser_callbacks {
    /* A complete response.  0, IMAP_PARSE_PAUSE (any positive value), or a
     * negative error. */
    int (*on_response)(void *ctx, const struct imap_response *r);
    /* A literal of size bytes starts; partial->last is the token before it
     * (e.g. BODY[]).  IMAP_LITERAL_KEEP, IMAP_LITERAL_STREAM or an error. */
    int (*on_literal_begin)(void *ctx, const struct imap_response *partial, uint64_t size);
    int (*on_literal_data)(void *ctx, const char *chunk, size_t len);
    int (*on_literal_end)(void *ctx);
};

/* Opaque: embed it, touch it only through the functions below. */
struct imap_parser {
    struct imap_parser_limits lim;
    struct imap_parser_callbacks cb;
    void *ctx;
    int err;
    char errmsg[192];
    uint64_t stream_off; /* bytes consumed since init */
    size_t consumed;     /* by the last feed */

    int state, phase;
    bool buffered;
    char *buf;
    size_t buf_len, buf_cap;
    char *scr;
    size_t scr_len, scr_cap;
    struct imap_token *toks;
    size_t n_toks, toks_cap;
    size_t pos, lit_bytes;
    uint64_t lit_left, lit_size, streamed;
    size_t lit_start;
    bool lit8;

    unsigned depth;
    uint32_t open[IMAP_PARSER_MAX_DEPTH + 1];
    uint32_t lastk[IMAP_PARSER_MAX_DEPTH + 1];
    uint32_t last_tok;

    /* response header, as offsets until delivery */
    struct imap_response resp;
    size_t tag_off, text_off, kw_off, code_off, args_off;
    const char *fill_base, *fill_scr;
    size_t n_filled;
};

/* Set up p.  limits NULL: defaults (zero fields also mean default); cb NULL:
 * no callbacks.  No allocation happens until data arrives. */
void imap_parser_init(struct imap_parser *p, const struct imap_parser_limits *limits,
                      const struct imap_parser_callbacks *cb, void *ctx);
/* Free p's buffers (p may be re-initialised afterwards). */
void imap_parser_deinit(struct imap_parser *p);
/* Drop any partial response and error; keep limits, callbacks and buffers. */
void imap_parser_reset(struct imap_parser *p);

/* Consume len bytes of buf (see the top of this file). */
int imap_parser_feed(struct imap_parser *p, const char *buf, size_t len);

/* What went wrong, "" if nothing. */
const char *imap_parser_error(const struct imap_parser *p);
/* Bytes of the buffer used by the last feed (all of it unless it paused). */
size_t imap_parser_consumed(const struct imap_parser *p);
/* True between responses (nothing partial buffered). */
bool imap_parser_idle(const struct imap_parser *p);

/* ---- command side ------------------------------------------------------- */

/* Whether s can be sent as a quoted string: false when it holds NUL, CR or LF,
 * or 8-bit bytes and !utf8_ok (UTF8=ACCEPT not enabled): send a literal then. */
bool imap_quotable(const char *s, size_t len, bool utf8_ok);

/* Size imap_quote() needs at most for len bytes (quotes, escapes, NUL). */
static inline size_t imap_quote_size(size_t len)
{
    return 2 * len + 3;
}

/* Write s as "..." (with \ and " escaped), NUL-terminated, into out.  Returns
 * the length written (>= 2), 0 when s is not quotable (a literal is required),
 * or OIMAP_ETOOBIG when out_size is too small. */
int imap_quote(char *out, size_t out_size, const char *s, size_t len, bool utf8_ok);

#endif
