/* fuzz_pyeval.c - libFuzzer target for the config expression evaluator.
 *
 * Input: "EXPR\0ARG1\0ARG2".  Compiles EXPR, and when it compiles, calls it
 * with as many arguments as the lambda takes (or evaluates it), prints the
 * result with pyval_repr, and evaluates it a second time (the arena reset
 * and regex cache paths).  The first byte odd also runs EXPR as a regular
 * expression over ARG1 in every mode.  Invariants: no crash, no leak, every
 * capture inside the subject and ordered. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pyeval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_regex(const char *pat, size_t plen, const char *s, size_t slen, int flags)
{
    struct pyeval_re *re;
    char err[128];
    if (pyeval_re_compile(pat, plen, flags, err, sizeof err, &re) < 0)
        return;
    long caps[200];
    int ng = pyeval_re_ngroups(re);
    assert(ng >= 0 && ng < 100);
    for (int mode = PYEVAL_RE_SEARCH; mode <= PYEVAL_RE_FULLMATCH; mode++) {
        int r = pyeval_re_exec(re, s, slen, 0, (enum pyeval_re_mode)mode, mode == 0, caps);
        if (r != 1)
            continue;
        assert(caps[0] >= 0 && caps[0] <= caps[1] && (size_t)caps[1] <= slen);
        if (mode == PYEVAL_RE_FULLMATCH)
            assert(caps[0] == 0 && (size_t)caps[1] == slen);
        for (int g = 1; g <= ng; g++)
            if (caps[2 * g] >= 0 && caps[2 * g + 1] >= 0)
                assert(caps[2 * g] <= caps[2 * g + 1] && (size_t)caps[2 * g + 1] <= slen);
    }
    pyeval_re_free(&re);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    char *buf = malloc(size + 3);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, size - 1);
    memset(buf + size - 1, 0, 4);
    const char *expr = buf;
    const char *a = expr + strlen(expr) + 1;
    const char *b = a < buf + size ? a + strlen(a) + 1 : a;
    if (a > buf + size)
        a = "";
    if (b > buf + size)
        b = "";

    if (data[0] & 1)
        check_regex(expr, strlen(expr), a, strlen(a), (data[0] >> 1) & 0x1A);

    char err[256];
    struct pyeval *e;
    if (pyeval_compile(expr, "fuzz", err, sizeof err, &e) == 0) {
        struct pyval args[2] = {pyval_str(a), pyval_str(b)};
        int np = pyeval_nparams(e);
        size_t n = np < 0 ? 0 : np > 2 ? 2 : (size_t)np;
        char out[512], out2[512];
        struct pyval v;
        for (int round = 0; round < 2; round++) {
            int r = pyeval_call(e, args, n, &v);
            if (r == 0) {
                pyval_repr(&v, round ? out2 : out, sizeof out);
                (void)pyval_truthy(&v);
                if (v.type == PYV_STR)
                    assert(pyval_cstr(&v)[v.u.str.len] == '\0');
            } else {
                assert(pyeval_errmsg(e)[0] != '\0');
            }
            if (round && r == 0)
                assert(strcmp(out, out2) == 0); /* evaluation is deterministic */
        }
        pyeval_free(&e);
    } else {
        assert(strncmp(err, "fuzz: ", 6) == 0);
    }
    free(buf);
    return 0;
}
