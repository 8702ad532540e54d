/* tap.h - a tiny TAP producer for the unit tests (meson protocol: 'tap').
 *
 *   ok(cond, "name %d", i);       one test point
 *   is_int(got, want, "name");    equality with a diagnostic on failure
 *   is_str(got, want, "name");    string equality (NULL-safe)
 *   is_mem(got, glen, want, wlen, "name")
 *   return tap_done();            prints the plan, exit status 0 iff all passed
 */
#ifndef OIMAP_TAP_H
#define OIMAP_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

static inline __attribute__((format(printf, 2, 0))) int tap_okv(int cond, const char *fmt,
                                                                va_list ap)
{
    tap_n++;
    if (!cond)
        tap_failed++;
    printf("%sok %d - ", cond ? "" : "not ", tap_n);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    return cond;
}

static inline __attribute__((format(printf, 2, 3))) int ok(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = tap_okv(cond, fmt, ap);
    va_end(ap);
    return r;
}

#define is_int(got, want, ...)                                                                     \
    do {                                                                                           \
        long long g_ = (long long)(got), w_ = (long long)(want);                                   \
        if (!ok(g_ == w_, __VA_ARGS__))                                                            \
            printf("#   got %lld, want %lld (%s:%d)\n", g_, w_, __FILE__, __LINE__);               \
    } while (0)

#define is_str(got, want, ...)                                                                     \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        int e_ = (g_ == NULL || w_ == NULL) ? g_ == w_ : strcmp(g_, w_) == 0;                      \
        if (!ok(e_, __VA_ARGS__))                                                                  \
            printf("#   got '%s', want '%s' (%s:%d)\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)",    \
                   __FILE__, __LINE__);                                                            \
    } while (0)

#define is_mem(got, glen, want, wlen, ...)                                                         \
    do {                                                                                           \
        size_t gl_ = (glen), wl_ = (wlen);                                                         \
        int e_ = gl_ == wl_ && memcmp((got), (want), gl_) == 0;                                    \
        if (!ok(e_, __VA_ARGS__))                                                                  \
            printf("#   got '%.*s' (%zu), want '%.*s' (%zu) (%s:%d)\n", (int)gl_,                  \
                   (const char *)(got), gl_, (int)wl_, (const char *)(want), wl_, __FILE__,        \
                   __LINE__);                                                                      \
    } while (0)

static inline int tap_done(void)
{
    printf("1..%d\n", tap_n);
    if (tap_failed)
        printf("# %d of %d failed\n", tap_failed, tap_n);
    return tap_failed ? 1 : 0;
}

#endif
