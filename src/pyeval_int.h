/* pyeval_int.h - shared between pyeval.c (parser) and pyeval_ops.c (evaluation).
 * Not a public interface: everything here is private to the evaluator. */
#ifndef OIMAP_PYEVAL_INT_H
#define OIMAP_PYEVAL_INT_H

#include "err.h"
#include "pyeval.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PE_RE_CACHE 64
#define PE_MAX_STEPS 1000000L /* tree nodes and items visited per evaluation */
#define PE_MAX_STR (1u << 20) /* bytes in one string built */
#define PE_MAX_ITEMS 65536    /* items in one list built */

struct ablock;

struct pe_arena {
    struct ablock *head;
    size_t total;
    bool over; /* the size limit, not malloc, refused */
};

void *pe_arena_alloc(struct pe_arena *a, size_t n);

enum pe_kind {
    N_CONST,
    N_PARAM, /* val.u.i: index */
    N_LIST,
    N_TUPLE,
    N_DICT, /* kids: k0, v0, k1, v1... */
    N_AND,
    N_OR,
    N_NOT,
    N_NEG,
    N_POS,
    N_BIN,   /* op: enum pe_binop */
    N_CMP,   /* kids: operands; ops[nkids - 1] */
    N_IF,    /* kids: then, cond, else */
    N_INDEX, /* kids: obj, index */
    N_SLICE, /* kids: obj, start, stop, step (each may be NULL) */
    N_CALL,  /* fn; kids: receiver (or NULL), then one slot per parameter */
};

enum pe_binop { B_ADD, B_SUB, B_MUL, B_FLOORDIV, B_MOD, B_BITOR, B_BITAND };
enum pe_cmpop { C_EQ, C_NE, C_LT, C_LE, C_GT, C_GE, C_IN, C_NOTIN, C_IS, C_ISNOT };

struct pe_node {
    uint8_t kind, op, fn;
    int depth;
    size_t pos; /* source offset */
    struct pyval val;
    struct pe_node **kids;
    size_t nkids;
    uint8_t *ops;
};

enum pe_fnkind { FK_GLOBAL, FK_RE, FK_METHOD };

enum pe_fnid {
    F_LEN,
    F_STR,
    F_INT,
    F_BOOL,
    F_RE_SEARCH,
    F_RE_MATCH,
    F_RE_FULLMATCH,
    F_RE_SUB,
    F_RE_COMPILE,
    F_RE_ESCAPE,
    M_STARTSWITH,
    M_ENDSWITH,
    M_REPLACE,
    M_LOWER,
    M_UPPER,
    M_CASEFOLD,
    M_STRIP,
    M_LSTRIP,
    M_RSTRIP,
    M_SPLIT,
    M_RSPLIT,
    M_JOIN,
    M_FIND,
    M_RFIND,
    M_COUNT,
    M_GET,
    M_KEYS,
    M_VALUES,
    M_ITEMS,
    M_GROUP,
    M_GROUPS,
    M_START,
    M_END,
    M_SPAN,
    M_SEARCH,
    M_MATCH,
    M_FULLMATCH,
    M_SUB,
    F__COUNT
};

struct pe_fn {
    const char *name;
    uint8_t kind;
    int min, max;
    const char *kw[5]; /* keyword names of the parameters; NULL: positional only */
};

extern const struct pe_fn pe_fns[F__COUNT];

struct pe_recache {
    char *pat;
    size_t len;
    int flags;
    struct pyeval_re *re;
};

struct pyeval {
    struct pe_arena perm; /* tree and constants */
    struct pe_arena run;  /* values of the current evaluation */
    struct pe_node *root;
    int nparams; /* -1: not a lambda */
    char where[256];
    char errmsg[512];
    struct pe_recache cache[PE_RE_CACHE];
    size_t ncache;
    struct pyeval_re **tmp_re;
    size_t ntmp;
};

struct pyeval_match {
    const char *s;
    size_t len;
    const struct pyeval_re *re;
    long *caps; /* 2 * (ngroups + 1) */
};

/* One evaluation. */
struct pe_ctx {
    struct pyeval *e;
    struct pe_arena *ar;
    const struct pyval *args;
    long steps;
};

int pe_eval_node(struct pe_ctx *c, const struct pe_node *n, struct pyval *out);
/* Record "WHERE: message" as the evaluation error; evaluates to OIMAP_ECONFIG.
 * A macro so that callers, and clang-analyzer (which does not follow calls
 * into variadic functions), see the error path return a negative code. */
void pe_rt_msg(struct pe_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define pe_rt_err(...) (pe_rt_msg(__VA_ARGS__), OIMAP_ECONFIG)
/* The compiled pattern for pat/flags, from the cache or compiled now. */
int pe_re_get(struct pyeval *e, const char *pat, size_t len, int flags, char *err, size_t errlen,
              const struct pyeval_re **re_r);

/* --- helpers shared by pyeval_ops.c and pyeval_str.c --------------------- */

#define TN(v) pyval_type_name((v)->type)

/* Byte offsets of the code points of a string (NULL for pure ASCII, where
 * they are the identity). */
struct pe_cpidx {
    size_t count;
    size_t *off; /* count + 1 entries */
};

struct pe_sbuf {
    char *p;
    size_t n, cap;
    bool over, nomem;
};

int pe_steps(struct pe_ctx *c, size_t n);
/* Record a MemoryError; evaluates to OIMAP_ECONFIG when the evaluator's own
 * limit refused, -ENOMEM when malloc did (a macro for the reason above). */
void pe_oom_msg(struct pe_ctx *c);
#define pe_oom(c) (pe_oom_msg(c), (c)->ar->over ? OIMAP_ECONFIG : -ENOMEM)
int pe_alloc_str(struct pe_ctx *c, size_t len, char **p_r);
int pe_alloc_vals(struct pe_ctx *c, size_t n, struct pyval **v_r);
int pe_mk_str(struct pe_ctx *c, const char *s, size_t len, struct pyval *out);
struct pyval pe_mk_bool(bool b);
struct pyval pe_mk_seq(enum pyval_type t, const struct pyval *items, size_t n);
bool pe_as_int(const struct pyval *v, int64_t *i);
bool pe_is_seq(const struct pyval *v);
int pe_cp_index(struct pe_ctx *c, const char *s, size_t len, struct pe_cpidx *x);
size_t pe_cpoff(const struct pe_cpidx *x, size_t i);
size_t pe_cp_count(const char *s, size_t len);
bool pe_sb_add(struct pe_sbuf *b, const char *s, size_t n);
bool pe_sb_cp(struct pe_sbuf *b, uint32_t cp);
int pe_sb_finish(struct pe_ctx *c, struct pe_sbuf *b, struct pyval *out);
int pe_want_str(struct pe_ctx *c, const struct pyval *v, const char *what);

/* str methods (pyeval_str.c); s is a str, the rest as Python passes them
 * (NULL: argument omitted). */
int pe_str_affix(struct pe_ctx *c, const struct pyval *s, const struct pyval *p, bool end,
                 struct pyval *out);
int pe_str_replace(struct pe_ctx *c, const struct pyval *s, const struct pyval *old,
                   const struct pyval *new, const struct pyval *countv, struct pyval *out);
int pe_str_case(struct pe_ctx *c, const struct pyval *s, bool upper, struct pyval *out);
int pe_str_strip(struct pe_ctx *c, const struct pyval *s, const struct pyval *chars, int which,
                 struct pyval *out);
int pe_str_split(struct pe_ctx *c, const struct pyval *sv, const struct pyval *sep,
                 const struct pyval *maxv, bool right, struct pyval *out);
int pe_str_join(struct pe_ctx *c, const struct pyval *sep, const struct pyval *it,
                struct pyval *out);
int pe_str_find(struct pe_ctx *c, int fn, const struct pyval *s, const struct pyval *sub,
                struct pyval *out);

#endif
