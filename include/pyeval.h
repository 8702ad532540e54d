/* pyeval.h - a small, safe evaluator for the Python expressions in configs.
 *
 * offlineimap eval()s options such as folderfilter, nametrans, foldersort,
 * folderincludes, idlefolders and the [mbnames] lambdas.  oimap does not embed
 * Python: it parses the subset real configurations use (documented in
 * oimap.conf(5), PYTHON EXPRESSIONS) once into a tree, then evaluates it as
 * often as needed.  It never runs anything else: a name, attribute or syntax
 * it does not know is a compile error naming the construct and its column.
 *
 * Compile:  pyeval_compile(src, "FILE:LINE: [section] option", ...)
 * Run:      pyeval_call1(e, "INBOX", &v)   (a lambda of one argument)
 *           pyeval_call2(e, "a", "b", &v)  (two arguments, e.g. foldersort)
 *           pyeval_call(e, args, n, &v)    (any values, e.g. a dict)
 *           pyeval_eval(e, &v)             (a plain expression: a list...)
 *
 * Values: struct pyval below.  A value produced by an evaluation lives in an
 * arena owned by the struct pyeval; it stays valid until the next evaluation
 * on the same struct pyeval or pyeval_free().  It may also point into the
 * argument strings of that call.  Values are never mutated once built.
 * A struct pyeval is not thread-safe: one evaluation at a time.
 *
 * Bounds: source length, nesting depth and tree size at compile time; an
 * evaluation step budget, a regular-expression step budget and a size limit
 * on every string or list built.  Exceeding one is an error, never a hang.
 *
 * Strings are UTF-8.  len(), indexing and slicing count code points, as in
 * Python; a byte that is not valid UTF-8 counts as one character and is kept
 * as is.  lower()/upper() and re.I fold ASCII, Latin-1, Latin Extended-A,
 * Greek and Cyrillic letters (not the full Unicode tables).
 */
#ifndef OIMAP_PYEVAL_H
#define OIMAP_PYEVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pyval_type {
    PYV_NONE,
    PYV_BOOL,
    PYV_INT,
    PYV_STR,
    PYV_LIST,
    PYV_TUPLE,
    PYV_DICT,
    PYV_MATCH,  /* a regular-expression match object */
    PYV_RE,     /* a compiled pattern (re.compile) */
    PYV_LAMBDA, /* the compiled expression itself, when it is a lambda */
};

struct pyval;
struct pyeval_match;
struct pyeval_re;

/* A value.  Strings are NUL-terminated (len excludes the NUL) and may hold
 * NUL bytes only if the input did.  A dict is n keys and n values, keys
 * unique (by ==). */
struct pyval {
    enum pyval_type type;
    union {
        bool b;
        int64_t i;
        struct {
            const char *s;
            size_t len;
        } str;
        struct {
            const struct pyval *v;
            size_t n;
        } seq; /* PYV_LIST, PYV_TUPLE */
        struct {
            const struct pyval *k, *v;
            size_t n;
        } dict;
        const struct pyeval_match *match;
        const struct pyeval_re *re;
    } u;
};

/* Convenience constructors for arguments. */
struct pyval pyval_str(const char *s);
struct pyval pyval_strn(const char *s, size_t len);
struct pyval pyval_int(int64_t i);

/* Python truth: None, False, 0, '', [], (), {} are false; the rest true. */
bool pyval_truthy(const struct pyval *v);
/* The string of a PYV_STR, or NULL for any other type. */
const char *pyval_cstr(const struct pyval *v);
/* Python's ==. */
bool pyval_equal(const struct pyval *a, const struct pyval *b);
/* Python's ordering (ints/bools, strs, lists, tuples): sets *cmp_r to <0, 0
 * or >0 and returns 0, or returns OIMAP_ECONFIG when Python would raise
 * TypeError (e.g. str against int). */
int pyval_compare(const struct pyval *a, const struct pyval *b, int *cmp_r);
/* Python's type name ("str", "list", ...). */
const char *pyval_type_name(enum pyval_type t);

struct pyeval;

/* Compile src.  where ("FILE:LINE: [section] option") prefixes every error.
 * On error, the message ("WHERE: unsupported Python construct 'os.system'
 * at column 12") goes to err (errlen bytes) when err is not NULL, to
 * log_error() otherwise.  Returns 0 and a new object in *e_r (free with
 * pyeval_free), OIMAP_ECONFIG, or -ENOMEM. */
int pyeval_compile(const char *src, const char *where, char *err, size_t errlen,
                   struct pyeval **e_r);
void pyeval_free(struct pyeval **e);

/* Number of lambda parameters, or -1 when the expression is not a lambda. */
int pyeval_nparams(const struct pyeval *e);
/* True for "lambda x: x" (a nametrans that changes nothing). */
bool pyeval_is_identity(const struct pyeval *e);

/* Evaluate.  A lambda's body is run with args bound to its parameters (the
 * count must match); a plain expression takes no arguments (pyeval_eval of a
 * lambda yields a PYV_LAMBDA).  Returns 0 with the result in *out, or
 * OIMAP_ECONFIG on a Python error (TypeError, IndexError, KeyError...) or an
 * exhausted budget, -ENOMEM; then pyeval_errmsg() says what went wrong.
 * Nothing is logged. */
int pyeval_call(struct pyeval *e, const struct pyval *args, size_t nargs, struct pyval *out);
int pyeval_call1(struct pyeval *e, const char *arg, struct pyval *out);
int pyeval_call2(struct pyeval *e, const char *a, const char *b, struct pyval *out);
int pyeval_eval(struct pyeval *e, struct pyval *out);
/* The last evaluation error, "WHERE: TypeError: ...", or "" if none. */
const char *pyeval_errmsg(const struct pyeval *e);
/* The where string given to pyeval_compile. */
const char *pyeval_where(const struct pyeval *e);

/* Format v as Python's repr() would (strings quoted), into buf (always
 * NUL-terminated; truncated to cap).  Returns the full length. */
size_t pyval_repr(const struct pyval *v, char *buf, size_t cap);

/* --- Regular expressions (the engine behind re.*; usable alone) ---------
 *
 * Python's syntax and semantics for what configs use: literals, . ^ $ \A
 * \Z, classes [...] [^...] with ranges, \d \w \s \D \W \S \b \B, groups,
 * (?:...), (?P<name>...), (?=...), (?!...), backreferences \1 and (?P=name),
 * alternation, * + ? {m} {m,} {m,n} {,n} and their non-greedy forms, the
 * inline flags (?i) (?m) (?s) (?a) at the start.  Matching is a
 * backtracking machine with a step budget: a pattern that would take
 * exponential time fails with OIMAP_ETOOBIG instead. */

enum {
    PYEVAL_RE_I = 2, /* Python's re.I, re.M, re.S, re.A values */
    PYEVAL_RE_M = 8,
    PYEVAL_RE_S = 16,
    PYEVAL_RE_U = 32, /* accepted, the default */
    PYEVAL_RE_A = 256,
};

enum pyeval_re_mode {
    PYEVAL_RE_SEARCH,    /* first match at or after start */
    PYEVAL_RE_MATCH,     /* a match beginning at start */
    PYEVAL_RE_FULLMATCH, /* a match from start to the end */
};

/* Compile pat (len bytes, UTF-8).  On a syntax error the message goes to
 * err.  Returns 0, OIMAP_ECONFIG or -ENOMEM. */
int pyeval_re_compile(const char *pat, size_t len, int flags, char *err, size_t errlen,
                      struct pyeval_re **re_r);
void pyeval_re_free(struct pyeval_re **re);
/* Capturing groups, not counting group 0. */
int pyeval_re_ngroups(const struct pyeval_re *re);
/* The number of the group called name, or -1. */
int pyeval_re_group_index(const struct pyeval_re *re, const char *name, size_t len);
/* Match against s[0..len) beginning at byte offset start.  caps receives
 * 2 * (ngroups + 1) byte offsets (start, end of each group; -1 when a group
 * did not take part).  With not_empty_at_start, an empty match at start is
 * not accepted (re.sub's rule after an empty match).  Returns 1 (match),
 * 0 (none), OIMAP_ETOOBIG (step budget) or -ENOMEM. */
int pyeval_re_exec(const struct pyeval_re *re, const char *s, size_t len, size_t start,
                   enum pyeval_re_mode mode, bool not_empty_at_start, long *caps);

/* UTF-8 helpers shared with the evaluator.  decode: the code point at s[i]
 * (i < len) into *cp, returning its length; an invalid byte b decodes to
 * 0xDC00 + b with length 1 (encode turns it back into that byte).  encode
 * writes at most 4 bytes and returns their number. */
size_t pyeval_u8_decode(const char *s, size_t len, size_t i, uint32_t *cp);
size_t pyeval_u8_encode(uint32_t cp, char *out);
uint32_t pyeval_lower(uint32_t cp);
uint32_t pyeval_upper(uint32_t cp);
bool pyeval_isspace(uint32_t cp);

#endif
