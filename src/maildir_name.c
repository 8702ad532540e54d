/* maildir_name.c - Maildir file and folder names (see maildir_name.h). */
#include "maildir_name.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/md5.h>
#include <mbedtls/version.h>

#include "err.h"

/* ASCII order of the standard letters is also their bit order. */
static const char std_letters[] = "DFPRST";

static int std_bit(char c)
{
    const char *p = strchr(std_letters, c);
    return (p && c) ? 1 << (p - std_letters) : 0;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool valid_fmd5(const char *s, size_t len)
{
    if (len != MAILDIR_FMD5_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_hex(s[i]))
            return false;
    return true;
}

/* Decimal digits [s, s+len) -> *v; at least one digit, no sign, no overflow. */
static bool parse_u64(const char *s, size_t len, uint64_t max, uint64_t *v)
{
    uint64_t x = 0;
    if (len == 0 || len > 20)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (x > (max - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *v = x;
    return true;
}

int maildir_flags_parse(const char *s, size_t len, struct maildir_flags *r)
{
    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c >= 'a' && c <= 'z')
            r->custom |= 1u << (c - 'a');
        else if (c >= 'A' && c <= 'Z') {
            int b = std_bit(c);
            if (b)
                r->std |= (uint8_t)b;
            else
                r->upper |= 1u << (c - 'A');
        } else
            return OIMAP_ENAME;
    }
    return 0;
}

int maildir_flags_format(char *buf, size_t size, const struct maildir_flags *fl)
{
    size_t n = 0;
    for (int c = 'A'; c <= 'z'; c++) {
        bool on;
        if (c >= 'a')
            on = fl->custom & (1u << (c - 'a'));
        else if (c <= 'Z')
            on = std_bit(c) ? (fl->std & std_bit(c)) : (fl->upper & (1u << (c - 'A')));
        else
            continue;
        if (!on)
            continue;
        if (n + 1 >= size)
            return -ENAMETOOLONG;
        buf[n++] = (char)c;
    }
    if (size == 0)
        return -ENAMETOOLONG;
    buf[n] = '\0';
    return (int)n;
}

bool maildir_flags_equal(const struct maildir_flags *a, const struct maildir_flags *b)
{
    return (a->std & MAILDIR_FLAG_ALL) == (b->std & MAILDIR_FLAG_ALL) && a->custom == b->custom &&
           a->upper == b->upper;
}

/* The info part starts at the first infosep; the unique part ends at the first
 * ',' or infosep (as offlineimap's prefix match does). */
int maildir_name_parse(const char *name, char infosep, struct maildir_name *r)
{
    memset(r, 0, sizeof(*r));
    size_t len = strlen(name);
    if (len == 0 || len > MAILDIR_NAME_MAX || name[0] == '.' || strchr(name, '/'))
        return OIMAP_ENAME;
    const char *info = infosep ? strchr(name, infosep) : NULL;
    const char *end = info ? info : name + len;
    const char *p = name;
    while (p < end && *p != ',')
        p++;
    r->unique = name;
    r->unique_len = (size_t)(p - name);
    if (r->unique_len == 0)
        return OIMAP_ENAME;
    bool have_uid = false;
    while (p < end) {
        /* p is at a ','; one field runs to the next ',' or the info part. */
        const char *f = ++p;
        while (p < end && *p != ',')
            p++;
        size_t flen = (size_t)(p - f);
        uint64_t v;
        if (flen >= 2 && f[0] == 'U' && f[1] == '=') {
            if (have_uid || !parse_u64(f + 2, flen - 2, UINT32_MAX, &v) || v == 0)
                return OIMAP_ENAME;
            have_uid = true;
            r->uid = (uint32_t)v;
        } else if (flen >= 5 && memcmp(f, "FMD5=", 5) == 0) {
            if (r->has_fmd5 || !valid_fmd5(f + 5, flen - 5))
                return OIMAP_ENAME;
            for (size_t i = 0; i < MAILDIR_FMD5_LEN; i++) {
                char c = f[5 + i];
                r->fmd5[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
            }
            r->fmd5[MAILDIR_FMD5_LEN] = '\0';
            r->has_fmd5 = true;
        } else if (flen >= 2 && f[0] == 'S' && f[1] == '=') {
            if (r->has_size || !parse_u64(f + 2, flen - 2, UINT64_MAX, &v))
                return OIMAP_ENAME;
            r->has_size = true;
            r->size = v;
        }
        /* Anything else (",W=1300", a bare ",xyz") belongs to another program:
         * ignore it here, keep it when rewriting. */
    }
    if (info) {
        if (name + len - info < 3 || info[1] != '2' || info[2] != ',')
            return OIMAP_ENAME;
        if (maildir_flags_parse(info + 3, (size_t)(name + len - info - 3), &r->flags) < 0)
            return OIMAP_ENAME;
        r->has_info = true;
    }
    return 0;
}

/* A bounded string builder: len counts what would have been written so that
 * overflow is detected once at the end. */
struct sb {
    char *buf;
    size_t size, len;
};

static void sb_put(struct sb *b, const char *s, size_t n)
{
    if (b->len + n < b->size)
        memcpy(b->buf + b->len, s, n);
    b->len += n;
}

static void sb_puts(struct sb *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_putu(struct sb *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    sb_put(b, tmp, (size_t)n);
}

static int sb_finish(struct sb *b)
{
    if (b->len >= b->size || b->len > MAILDIR_NAME_MAX) {
        if (b->size)
            b->buf[0] = '\0';
        return -ENAMETOOLONG;
    }
    b->buf[b->len] = '\0';
    return (int)b->len;
}

static void sb_info(struct sb *b, char infosep, const struct maildir_flags *fl)
{
    char letters[64];
    char sep[3] = {infosep, '2', ','};
    sb_put(b, sep, 3);
    int n = maildir_flags_format(letters, sizeof(letters), fl);
    sb_put(b, letters, (size_t)n);
}

static bool valid_infosep(char c)
{
    return c == ':' || c == '!';
}

int maildir_name_format(char *buf, size_t size, const char *unique, uint32_t uid, const char *fmd5,
                        char infosep, const struct maildir_flags *flags, bool with_info)
{
    static const struct maildir_flags none;
    if (!flags)
        flags = &none;
    if (!valid_infosep(infosep) || !unique[0] || unique[0] == '.' ||
        strpbrk(unique, "/,:!") != NULL)
        return OIMAP_ENAME;
    if (fmd5 && !valid_fmd5(fmd5, strlen(fmd5)))
        return OIMAP_ENAME;
    if (!with_info && (flags->std || flags->custom || flags->upper))
        return OIMAP_ENAME;
    struct sb b = {buf, size, 0};
    sb_puts(&b, unique);
    if (uid) {
        sb_puts(&b, ",U=");
        sb_putu(&b, uid);
        if (fmd5) {
            sb_puts(&b, ",FMD5=");
            sb_puts(&b, fmd5);
        }
    }
    if (with_info)
        sb_info(&b, infosep, flags);
    return sb_finish(&b);
}

int maildir_name_with_flags(char *buf, size_t size, const char *name, char infosep,
                            const struct maildir_flags *flags)
{
    struct maildir_name mn;
    int rc = maildir_name_parse(name, infosep, &mn);
    if (rc < 0)
        return rc;
    const char *info = strchr(name, infosep);
    size_t base = info ? (size_t)(info - name) : strlen(name);
    struct sb b = {buf, size, 0};
    sb_put(&b, name, base);
    sb_info(&b, infosep, flags);
    return sb_finish(&b);
}

int maildir_name_with_uid(char *buf, size_t size, const char *name, char infosep, uint32_t uid,
                          const char *fmd5)
{
    struct maildir_name mn;
    int rc = maildir_name_parse(name, infosep, &mn);
    if (rc < 0)
        return rc;
    if (uid == 0 || (fmd5 && !valid_fmd5(fmd5, strlen(fmd5))))
        return OIMAP_ENAME;
    const char *info = strchr(name, infosep);
    const char *end = info ? info : name + strlen(name);
    struct sb b = {buf, size, 0};
    sb_put(&b, mn.unique, mn.unique_len);
    sb_puts(&b, ",U=");
    sb_putu(&b, uid);
    if (fmd5) {
        sb_puts(&b, ",FMD5=");
        sb_puts(&b, fmd5);
    }
    /* Copy the other fields in their order, dropping the old U= and FMD5=. */
    const char *p = mn.unique + mn.unique_len;
    while (p < end) {
        const char *f = p++;
        while (p < end && *p != ',')
            p++;
        size_t flen = (size_t)(p - f); /* includes the leading ',' */
        if ((flen >= 3 && f[1] == 'U' && f[2] == '=') ||
            (flen >= 6 && memcmp(f + 1, "FMD5=", 5) == 0))
            continue;
        sb_put(&b, f, flen);
    }
    if (info)
        sb_puts(&b, info);
    return sb_finish(&b);
}

void maildir_name_fmd5(const char *folder, char out[MAILDIR_FMD5_LEN + 1])
{
    unsigned char d[16];
    static const char hex[] = "0123456789abcdef";
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    mbedtls_md5((const unsigned char *)folder, strlen(folder), d);
#else
    mbedtls_md5_ret((const unsigned char *)folder, strlen(folder), d);
#endif
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[MAILDIR_FMD5_LEN] = '\0';
}

int maildir_name_unique_fmt(char *buf, size_t size, int64_t t, uint64_t seq, long pid,
                            const char *host)
{
    struct sb b = {buf, size, 0};
    char tmp[64];
    int n =
        snprintf(tmp, sizeof(tmp), "%lld_%llu.%ld.", (long long)t, (unsigned long long)seq, pid);
    sb_put(&b, tmp, (size_t)n);
    if (!host || !*host)
        host = "localhost";
    for (const char *h = host; *h; h++) {
        switch (*h) {
        case '/':
            sb_puts(&b, "\\057");
            break;
        case ':':
            sb_puts(&b, "\\072");
            break;
        case '!':
            sb_puts(&b, "\\041");
            break;
        case ',':
            sb_puts(&b, "\\054");
            break;
        default:
            sb_put(&b, h, 1);
        }
    }
    return sb_finish(&b);
}

int maildir_name_unique(char *buf, size_t size, int64_t t)
{
    static atomic_ullong seq;
    static char host[256];
    static atomic_int host_state; /* 0 unset, 1 being set, 2 set */
    int expect = 0;
    if (atomic_compare_exchange_strong(&host_state, &expect, 1)) {
        if (gethostname(host, sizeof(host) - 1) < 0)
            strcpy(host, "localhost");
        host[sizeof(host) - 1] = '\0';
        atomic_store(&host_state, 2);
    } else {
        while (atomic_load(&host_state) != 2)
            ; /* another thread is inside gethostname(): a few microseconds */
    }
    if (t < 0)
        t = (int64_t)time(NULL);
    /* One counter for the whole process (not one per second as offlineimap
     * has): unique whatever time value callers pass, e.g. a mail's Date. */
    uint64_t s = atomic_fetch_add(&seq, 1);
    return maildir_name_unique_fmt(buf, size, t, s, (long)getpid(), host);
}

/* One path component on disk: non-empty, not "." or "..", not too long. */
static bool component_ok(const char *s, size_t n)
{
    if (n == 0 || n > MAILDIR_NAME_MAX)
        return false;
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    return true;
}

static bool is_maildir_sub(const char *s, size_t n)
{
    return n == 3 && (!memcmp(s, "tmp", 3) || !memcmp(s, "new", 3) || !memcmp(s, "cur", 3));
}

static bool sep_ok(const char *sep)
{
    return sep && sep[0] && (strcmp(sep, "/") == 0 || !strchr(sep, '/'));
}

/* Every '/'-separated component of s must be component_ok; with
 * forbid_sub, none may be tmp/new/cur either. */
static bool path_ok(const char *s, bool forbid_sub)
{
    const char *p = s;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (!component_ok(p, n) || (forbid_sub && is_maildir_sub(p, n)))
            return false;
        if (!e)
            return true;
        p = e + 1;
    }
}

/* Replace every occurrence of from by to, then check the result as a path on
 * disk (to_disk) or as an IMAP name. */
static int translate(char *buf, size_t size, const char *in, const char *from, const char *to)
{
    struct sb b = {buf, size, 0};
    size_t fl = strlen(from);
    for (const char *p = in; *p;) {
        if (strncmp(p, from, fl) == 0) {
            sb_puts(&b, to);
            p += fl;
        } else
            sb_put(&b, p++, 1);
    }
    if (b.len >= b.size) {
        if (size)
            buf[0] = '\0';
        return -ENAMETOOLONG;
    }
    buf[b.len] = '\0';
    return (int)b.len;
}

int maildir_name_folder_to_local(char *buf, size_t size, const char *imap_name, const char *sep)
{
    if (!sep_ok(sep))
        return OIMAP_ENAME;
    if (imap_name[0] == '\0') {
        if (size == 0)
            return -ENAMETOOLONG;
        buf[0] = '\0';
        return 0;
    }
    /* The IMAP side first: no empty, "." or ".." component (this also refuses
     * absolute names and a trailing '/'). */
    if (!path_ok(imap_name, false))
        return OIMAP_ENAME;
    int n = translate(buf, size, imap_name, "/", sep);
    if (n < 0)
        return n;
    /* Then what reaches the file system: with sep "/" every component is a
     * directory level and must not be a Maildir subdirectory; with another
     * sep the whole name is one directory under localfolders. */
    if (!path_ok(buf, true)) {
        buf[0] = '\0';
        return OIMAP_ENAME;
    }
    return n;
}

int maildir_name_folder_from_local(char *buf, size_t size, const char *local, const char *sep)
{
    if (!sep_ok(sep))
        return OIMAP_ENAME;
    if (local[0] == '\0') {
        if (size == 0)
            return -ENAMETOOLONG;
        buf[0] = '\0';
        return 0;
    }
    if (!path_ok(local, true))
        return OIMAP_ENAME;
    int n = translate(buf, size, local, sep, "/");
    if (n < 0)
        return n;
    if (!path_ok(buf, false)) {
        buf[0] = '\0';
        return OIMAP_ENAME;
    }
    return n;
}
