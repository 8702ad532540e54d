/* mbnames.c - the [mbnames] mailbox list (behaviour: include/mbnames.h).
 *
 * Everything here may run in a threadpool thread: no loop object is
 * touched and nothing is logged directly.  Messages go into mb->log and are
 * logged by mbnames_flush_log() on the owner's thread.
 */
#include "mbnames.h"
#include "chars.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "pyeval.h"
#include "pyhelper.h"
#include "strbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MBNAMES_FILE_MAX ((size_t)64 << 20) /* an intermediate file larger than this is refused */
#define JSON_DEPTH_MAX 4

struct mbnames {
    bool enabled, incremental;
    char *dir;      /* <metadata>/mbnames */
    char *filename; /* the output file */
    char *peritem;
    char *header, *sep, *footer;
    struct pyexpr *folderfilter; /* NULL: every folder */
    struct pyexpr *sortkey;
    char *log; /* "<level digit><text>\n"..., see note() */
    size_t log_len, log_cap;
};

/* ---- messages ---------------------------------------------------------------- */

static void note(struct mbnames *mb, enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note(struct mbnames *mb, enum log_level lvl, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + 1, sizeof line - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    line[0] = (char)('0' + lvl);
    size_t len = strlen(line);
    if (mb->log_len + len + 1 >= mb->log_cap) {
        size_t cap = (mb->log_cap ? mb->log_cap * 2 : 1024) + len + 1;
        char *p = realloc(mb->log, cap);
        if (!p)
            return; /* a message lost to a full memory is not worth failing for */
        mb->log = p;
        mb->log_cap = cap;
    }
    memcpy(mb->log + mb->log_len, line, len);
    mb->log_len += len;
    mb->log[mb->log_len++] = '\n';
    mb->log[mb->log_len] = '\0';
}

void mbnames_flush_log(struct mbnames *mb)
{
    if (!mb || !mb->log_len)
        return;
    for (char *p = mb->log, *nl; p < mb->log + mb->log_len; p = nl + 1) {
        nl = strchr(p, '\n');
        *nl = '\0';
        log_msg((enum log_level)(p[0] - '0'), "%s", p + 1);
    }
    mb->log_len = 0;
}

/* ---- items ------------------------------------------------------------------- */

static int item_add_kv(struct mbnames_item *it, const char *k, size_t klen, const char *v,
                       size_t vlen)
{
    char **nk = realloc(it->keys, (it->n + 1) * sizeof *nk);
    if (!nk)
        return -ENOMEM;
    it->keys = nk;
    char **nv = realloc(it->vals, (it->n + 1) * sizeof *nv);
    if (!nv)
        return -ENOMEM;
    it->vals = nv;
    char *ks = strndup(k, klen), *vs = strndup(v, vlen);
    if (!ks || !vs) {
        free(ks);
        free(vs);
        return -ENOMEM;
    }
    it->keys[it->n] = ks;
    it->vals[it->n] = vs;
    it->n++;
    return 0;
}

static void item_clear(struct mbnames_item *it)
{
    for (size_t i = 0; i < it->n; i++) {
        free(it->keys[i]);
        free(it->vals[i]);
    }
    free(it->keys);
    free(it->vals);
    *it = (struct mbnames_item){0};
}

const char *mbnames_item_get(const struct mbnames_item *it, const char *key)
{
    /* The last one wins, as when Python reads an object with a key twice. */
    for (size_t i = it->n; i-- > 0;)
        if (strcmp(it->keys[i], key) == 0)
            return it->vals[i];
    return NULL;
}

static struct mbnames_item *list_push(struct mbnames_list *l)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct mbnames_item *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return NULL;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n] = (struct mbnames_item){0};
    return &l->v[l->n++];
}

int mbnames_list_add(struct mbnames_list *l, const char *account, const char *folder,
                     const char *localfolders)
{
    struct mbnames_item *it = list_push(l);
    if (!it)
        return -ENOMEM;
    int r = item_add_kv(it, "accountname", 11, account, strlen(account));
    if (r == 0)
        r = item_add_kv(it, "foldername", 10, folder, strlen(folder));
    if (r == 0)
        r = item_add_kv(it, "localfolders", 12, localfolders, strlen(localfolders));
    if (r < 0) {
        item_clear(it);
        l->n--;
    }
    return r;
}

void mbnames_list_clear(struct mbnames_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        item_clear(&l->v[i]);
    free(l->v);
    *l = (struct mbnames_list){0};
}

/* ---- JSON ------------------------------------------------------------------- */

static int buf_finish(struct strbuf *b, char **out_r, size_t *len_r)
{
    if (!b->err && !b->p)
        strbuf_add(b, "", 0);
    if (b->err) {
        free(b->p);
        return -ENOMEM; /* the only error a buf records (a constant the analyzer sees) */
    }
    *out_r = b->p;
    if (len_r)
        *len_r = b->len;
    return 0;
}

/* A JSON string as Python's json.dumps(ensure_ascii=True) writes it.  A byte
 * that is not UTF-8 travels as a lone surrogate \udcXX (Python's
 * surrogateescape), which the decoder below turns back into the byte. */
static void json_put_string(struct strbuf *b, const char *s)
{
    size_t len = strlen(s);
    strbuf_add(b, "\"", 1);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = pyeval_u8_decode(s, len, i, &cp);
        i += n;
        char tmp[16];
        switch (cp) {
        case '"':
            strbuf_add(b, "\\\"", 2);
            continue;
        case '\\':
            strbuf_add(b, "\\\\", 2);
            continue;
        case '\n':
            strbuf_add(b, "\\n", 2);
            continue;
        case '\r':
            strbuf_add(b, "\\r", 2);
            continue;
        case '\t':
            strbuf_add(b, "\\t", 2);
            continue;
        case '\b':
            strbuf_add(b, "\\b", 2);
            continue;
        case '\f':
            strbuf_add(b, "\\f", 2);
            continue;
        }
        if (cp >= 0x20 && cp < 0x7f) {
            tmp[0] = (char)cp;
            strbuf_add(b, tmp, 1);
        } else if (cp < 0x10000) {
            snprintf(tmp, sizeof tmp, "\\u%04x", (unsigned)cp);
            strbuf_adds(b, tmp);
        } else {
            uint32_t v = cp - 0x10000;
            snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", (unsigned)(0xd800 + (v >> 10)),
                     (unsigned)(0xdc00 + (v & 0x3ff)));
            strbuf_adds(b, tmp);
        }
    }
    strbuf_add(b, "\"", 1);
}

int mbnames_json_encode(const struct mbnames_list *l, char **out_r, size_t *len_r)
{
    struct strbuf b = {0};
    strbuf_add(&b, "[", 1);
    for (size_t i = 0; i < l->n; i++) {
        const struct mbnames_item *it = &l->v[i];
        strbuf_adds(&b, i ? ", {" : "{");
        for (size_t k = 0; k < it->n; k++) {
            if (k)
                strbuf_add(&b, ", ", 2);
            json_put_string(&b, it->keys[k]);
            strbuf_add(&b, ": ", 2);
            json_put_string(&b, it->vals[k]);
        }
        strbuf_add(&b, "}", 1);
    }
    strbuf_add(&b, "]", 1);
    return buf_finish(&b, out_r, len_r);
}

struct jparse {
    const char *s;
    size_t len, pos;
    char *err;
    size_t errlen;
};

static int jfail(struct jparse *j, const char *what)
{
    if (j->err)
        snprintf(j->err, j->errlen, "%s at byte %zu", what, j->pos);
    return OIMAP_ECONFIG;
}

static void jspace(struct jparse *j)
{
    while (j->pos < j->len && strchr(" \t\r\n", j->s[j->pos]) && j->s[j->pos])
        j->pos++;
}

static bool jeat(struct jparse *j, char c)
{
    jspace(j);
    if (j->pos < j->len && j->s[j->pos] == c) {
        j->pos++;
        return true;
    }
    return false;
}

static int jhex4(struct jparse *j, uint32_t *v)
{
    if (j->len - j->pos < 4)
        return jfail(j, "short \\u escape");
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int d = chars_hex_value((unsigned char)j->s[j->pos++]);
        if (d < 0)
            return jfail(j, "bad \\u escape");
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

/* The code point of a \u escape (j->pos after "\u"), joining a surrogate
 * pair; a lone low surrogate \udc80..\udcff stands for that byte. */
static int jescape_u(struct jparse *j, struct strbuf *out)
{
    uint32_t cp;
    int r = jhex4(j, &cp);
    if (r < 0)
        return r;
    if (cp >= 0xd800 && cp < 0xdc00 && j->len - j->pos >= 6 && j->s[j->pos] == '\\' &&
        j->s[j->pos + 1] == 'u') {
        size_t save = j->pos;
        uint32_t lo;
        j->pos += 2;
        if (jhex4(j, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000)
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        else
            j->pos = save;
    }
    char enc[4];
    if (cp >= 0xdc80 && cp <= 0xdcff) {
        enc[0] = (char)(cp - 0xdc00);
        strbuf_add(out, enc, 1);
    } else if (cp >= 0xd800 && cp < 0xe000) {
        return jfail(j, "lone surrogate in a \\u escape");
    } else {
        strbuf_add(out, enc, chars_utf8_put(enc, cp));
    }
    return 0;
}

static int jstring(struct jparse *j, struct strbuf *out)
{
    out->len = 0;
    strbuf_add(out, "", 0);
    if (!jeat(j, '"'))
        return jfail(j, "expected a string");
    while (j->pos < j->len) {
        char c = j->s[j->pos++];
        if (c == '"')
            return out->err;
        if ((unsigned char)c < 0x20)
            return jfail(j, "control character in a string");
        if (c != '\\') {
            strbuf_add(out, &c, 1);
            continue;
        }
        if (j->pos >= j->len)
            break;
        c = j->s[j->pos++];
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *k = strchr(from, c);
        if (c == 'u') {
            int r = jescape_u(j, out);
            if (r < 0)
                return r;
        } else if (c && k) {
            strbuf_add(out, &to[k - from], 1);
        } else {
            return jfail(j, "bad escape in a string");
        }
    }
    return jfail(j, "unterminated string");
}

static int jobject(struct jparse *j, struct mbnames_item *it)
{
    struct strbuf k = {0}, v = {0};
    int r = 0;
    if (!jeat(j, '{'))
        return jfail(j, "expected an object");
    if (jeat(j, '}'))
        return 0;
    do {
        if ((r = jstring(j, &k)) < 0)
            break;
        if (!jeat(j, ':')) {
            r = jfail(j, "expected ':'");
            break;
        }
        jspace(j);
        if ((r = jstring(j, &v)) < 0)
            break;
        if ((r = item_add_kv(it, k.p, k.len, v.p, v.len)) < 0)
            break;
    } while (jeat(j, ','));
    if (r == 0 && !jeat(j, '}'))
        r = jfail(j, "expected ',' or '}'");
    free(k.p);
    free(v.p);
    return r;
}

int mbnames_json_decode(const char *buf, size_t len, struct mbnames_list *l, char *err,
                        size_t errlen)
{
    struct jparse j = {buf, len, 0, err, errlen};
    if (!jeat(&j, '['))
        return jfail(&j, "expected a list");
    if (!jeat(&j, ']')) {
        do {
            struct mbnames_item *it = list_push(l);
            if (!it)
                return -ENOMEM;
            int r = jobject(&j, it);
            if (r < 0) {
                item_clear(it);
                l->n--;
                return r;
            }
        } while (jeat(&j, ','));
        if (!jeat(&j, ']'))
            return jfail(&j, "expected ',' or ']'");
    }
    jspace(&j);
    if (j.pos != j.len)
        return jfail(&j, "extra data after the list");
    return 0;
}

/* ---- peritem ----------------------------------------------------------------- */

/* Characters (code points) in s[0..len). */
static size_t u8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

/* Bytes of the first max characters of s. */
static size_t u8_prefix(const char *s, size_t len, size_t max)
{
    size_t i = 0, n = 0;
    while (i < len) {
        if (((unsigned char)s[i] & 0xc0) != 0x80 && n++ == max)
            break;
        i++;
    }
    return i;
}

struct spec {
    const char *key;
    size_t keylen;
    bool left;
    long width, prec; /* -1: none */
    char conv;
};

/* Parse "(key)flags width .prec conv" at p (after the '%'). */
static const char *parse_spec(const char *p, struct spec *sp, char *err, size_t errlen)
{
    *sp = (struct spec){.width = -1, .prec = -1};
    if (*p != '(') {
        snprintf(err, errlen, "peritem: a conversion must name its key, like %%(foldername)s");
        return NULL;
    }
    int depth = 1;
    const char *k = ++p;
    while (*p && depth) {
        depth += *p == '(';
        depth -= *p == ')';
        p++;
    }
    if (depth) {
        snprintf(err, errlen, "peritem: incomplete format key");
        return NULL;
    }
    sp->key = k;
    sp->keylen = (size_t)(p - 1 - k);
    for (; *p && strchr("-+ #0", *p); p++)
        sp->left |= *p == '-';
    if (*p == '*') {
        snprintf(err, errlen, "peritem: '*' width needs a tuple, not a mapping");
        return NULL;
    }
    if (*p >= '0' && *p <= '9')
        sp->width = strtol(p, (char **)&p, 10);
    if (*p == '.') {
        p++;
        sp->prec = *p >= '0' && *p <= '9' ? strtol(p, (char **)&p, 10) : 0;
    }
    while (*p && strchr("hlL", *p))
        p++;
    sp->conv = *p;
    if (sp->conv != 's' && sp->conv != 'r') {
        if (!*p)
            snprintf(err, errlen, "peritem: incomplete format");
        else
            snprintf(err, errlen,
                     "peritem: unsupported format character '%c' (oimap knows %%(key)s and "
                     "%%(key)r)",
                     *p);
        return NULL;
    }
    return p + 1;
}

static int put_field(struct strbuf *b, const struct spec *sp, const char *val)
{
    char *repr = NULL;
    if (sp->conv == 'r') {
        struct pyval v = pyval_str(val);
        size_t n = pyval_repr(&v, NULL, 0);
        if (!(repr = malloc(n + 1)))
            return -ENOMEM;
        pyval_repr(&v, repr, n + 1);
        val = repr;
    }
    size_t len = strlen(val);
    if (sp->prec >= 0)
        len = u8_prefix(val, len, (size_t)sp->prec);
    size_t chars = u8_chars(val, len);
    size_t pad = sp->width > 0 && (size_t)sp->width > chars ? (size_t)sp->width - chars : 0;
    for (size_t i = 0; !sp->left && i < pad; i++)
        strbuf_add(b, " ", 1);
    strbuf_add(b, val, len);
    for (size_t i = 0; sp->left && i < pad; i++)
        strbuf_add(b, " ", 1);
    free(repr);
    return 0;
}

int mbnames_format_item(const char *fmt, const struct mbnames_item *item, char **out_r, char *err,
                        size_t errlen)
{
    struct strbuf b = {0};
    const char *p = fmt;
    while (*p) {
        const char *pc = strchr(p, '%');
        if (!pc) {
            strbuf_adds(&b, p);
            break;
        }
        strbuf_add(&b, p, (size_t)(pc - p));
        if (pc[1] == '%') {
            strbuf_add(&b, "%", 1);
            p = pc + 2;
            continue;
        }
        struct spec sp;
        if (!(p = parse_spec(pc + 1, &sp, err, errlen))) {
            free(b.p);
            return OIMAP_ECONFIG;
        }
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)sp.keylen, sp.key);
        const char *val = mbnames_item_get(item, key);
        if (!val) {
            snprintf(err, errlen,
                     "peritem: KeyError: '%s' (known: accountname, foldername, "
                     "localfolders)",
                     key);
            free(b.p);
            return OIMAP_ECONFIG;
        }
        int r = put_field(&b, &sp, val);
        if (r < 0) {
            free(b.p);
            return r;
        }
    }
    return buf_finish(&b, out_r, NULL);
}

/* ---- compiled settings ----------------------------------------------------- */

static int eval_str(const struct config *cfg, const char *opt, const struct config_expr *e,
                    char **out_r, char *err, size_t errlen)
{
    char where[512];
    snprintf(where, sizeof where, "%s:%d: [mbnames] %s", cfg->path, e->line, opt);
    struct pyexpr *pe = NULL;
    /* offlineimap evaluates these without 're' in the namespace. */
    int r = pyexpr_compile(e->text ? e->text : "''", where, false, err, errlen, &pe);
    if (r < 0)
        return r;
    struct pyval v;
    r = pyexpr_eval(pe, &v);
    if (r < 0) {
        snprintf(err, errlen, "%s", pyexpr_errmsg(pe));
    } else if (v.type != PYV_STR) {
        snprintf(err, errlen, "%s: expected a string (Python quoting, like \"mailboxes \"), got %s",
                 where, pyval_type_name(v.type));
        r = OIMAP_ECONFIG;
    } else if (!(*out_r = strndup(v.u.str.s, v.u.str.len))) {
        r = -ENOMEM;
    }
    pyexpr_free(&pe);
    return r;
}

static int compile_lambda(const struct config *cfg, const char *opt, const struct config_expr *e,
                          int nparams, const char *what, struct pyexpr **pe_r, char *err,
                          size_t errlen)
{
    char where[512];
    snprintf(where, sizeof where, "%s:%d: [mbnames] %s", cfg->path, e->line, opt);
    int r = pyexpr_compile(e->text, where, true, err, errlen, pe_r);
    if (r < 0)
        return r;
    if (!pyexpr_accepts(*pe_r, nparams)) {
        snprintf(err, errlen, "%s: expected %s", where, what);
        pyexpr_free(pe_r);
        return OIMAP_ECONFIG;
    }
    return 0;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int mbnames_new(const struct config *cfg, char *err, size_t errlen, struct mbnames **mb_r)
{
    const struct config_mbnames *m = &cfg->mbnames;
    struct mbnames *mb = calloc(1, sizeof *mb);
    int r = -ENOMEM;
    *mb_r = NULL;
    if (!mb)
        return -ENOMEM;
    mb->enabled = m->enabled;
    mb->incremental = m->incremental;
    mb->dir = path_join(cfg->general.metadata ? cfg->general.metadata : ".", "mbnames");
    mb->filename = strdup(m->filename ? m->filename : "");
    mb->peritem = strdup(m->peritem ? m->peritem : "");
    if (!mb->dir || !mb->filename || !mb->peritem)
        goto fail;
    if ((r = eval_str(cfg, "header", &m->header, &mb->header, err, errlen)) < 0 ||
        (r = eval_str(cfg, "sep", &m->sep, &mb->sep, err, errlen)) < 0 ||
        (r = eval_str(cfg, "footer", &m->footer, &mb->footer, err, errlen)) < 0)
        goto fail;
    if (m->folderfilter.text &&
        (r = compile_lambda(cfg, "folderfilter", &m->folderfilter, 2,
                            "a lambda of two arguments, like lambda accountname, foldername: "
                            "foldername != 'Trash'",
                            &mb->folderfilter, err, errlen)) < 0)
        goto fail;
    static const struct config_expr def_key = {"lambda d: (d['accountname'], d['foldername'])", 0};
    const struct config_expr *key = m->sort_keyfunc.text ? &m->sort_keyfunc : &def_key;
    if ((r = compile_lambda(cfg, "sort_keyfunc", key, 1,
                            "a lambda of one argument, like lambda d: (d['accountname'], "
                            "d['foldername'])",
                            &mb->sortkey, err, errlen)) < 0)
        goto fail;
    *mb_r = mb;
    return 0;
fail:
    if (r == -ENOMEM)
        snprintf(err, errlen, "[mbnames]: out of memory");
    mbnames_free(&mb);
    return r;
}

void mbnames_free(struct mbnames **mbp)
{
    struct mbnames *mb = *mbp;
    if (!mb)
        return;
    free(mb->dir);
    free(mb->filename);
    free(mb->peritem);
    free(mb->header);
    free(mb->sep);
    free(mb->footer);
    pyexpr_free(&mb->folderfilter);
    pyexpr_free(&mb->sortkey);
    free(mb->log);
    free(mb);
    *mbp = NULL;
}

bool mbnames_enabled(const struct mbnames *mb)
{
    return mb->enabled;
}

bool mbnames_incremental(const struct mbnames *mb)
{
    return mb->incremental;
}

bool mbnames_uses_python(const struct mbnames *mb)
{
    return (mb->folderfilter && pyexpr_is_python(mb->folderfilter)) ||
           pyexpr_is_python(mb->sortkey);
}

const char *mbnames_dir(const struct mbnames *mb)
{
    return mb->dir;
}

const char *mbnames_filename(const struct mbnames *mb)
{
    return mb->filename;
}

/* ---- filter, sort, render ------------------------------------------------- */

static bool listed(const struct mbnames_list *l, const char *account, const char *folder)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *a = mbnames_item_get(&l->v[i], "accountname");
        const char *f = mbnames_item_get(&l->v[i], "foldername");
        if (a && f && strcmp(a, account) == 0 && strcmp(f, folder) == 0)
            return true;
    }
    return false;
}

int mbnames_filter_add(struct mbnames *mb, struct mbnames_list *l, const char *account,
                       const char *localfolders, const char *const *folders, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (listed(l, account, folders[i]))
            continue;
        if (mb->folderfilter) {
            struct pyval v;
            struct pyval args[2] = {pyval_str(account), pyval_str(folders[i])};
            if (pyexpr_call(mb->folderfilter, args, 2, &v) < 0) {
                note(mb, LOGL_ERROR, "%s", pyexpr_errmsg(mb->folderfilter));
                return OIMAP_ECONFIG;
            }
            if (!pyval_truthy(&v))
                continue;
        }
        int r = mbnames_list_add(l, account, folders[i], localfolders);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Sort keys outlive the evaluation that made them: deep copies. */
static void val_free(struct pyval *v)
{
    switch (v->type) {
    case PYV_STR:
        free((char *)v->u.str.s);
        break;
    case PYV_LIST:
    case PYV_TUPLE:
        for (size_t i = 0; i < v->u.seq.n; i++)
            val_free((struct pyval *)&v->u.seq.v[i]);
        free((void *)v->u.seq.v);
        break;
    default:
        break;
    }
    v->type = PYV_NONE;
}

static int val_copy(const struct pyval *v, struct pyval *out, int depth)
{
    *out = (struct pyval){.type = PYV_NONE};
    if (depth > 32)
        return OIMAP_ETOOBIG;
    switch (v->type) {
    case PYV_NONE:
    case PYV_BOOL:
    case PYV_INT:
        *out = *v;
        return 0;
    case PYV_STR: {
        char *s = malloc(v->u.str.len + 1);
        if (!s)
            return -ENOMEM;
        memcpy(s, v->u.str.s, v->u.str.len);
        s[v->u.str.len] = '\0';
        /* pyval_strn (pyeval.c) keeps s in *out: no leak, the analyzer cannot look there */
        *out = pyval_strn(s, v->u.str.len); // NOLINT(clang-analyzer-unix.Malloc)
        return 0;
    }
    case PYV_LIST:
    case PYV_TUPLE: {
        struct pyval *items = calloc(v->u.seq.n ? v->u.seq.n : 1, sizeof *items);
        if (!items)
            return -ENOMEM;
        out->type = v->type;
        out->u.seq.v = items;
        out->u.seq.n = v->u.seq.n;
        for (size_t i = 0; i < v->u.seq.n; i++) {
            int r = val_copy(&v->u.seq.v[i], &items[i], depth + 1);
            if (r < 0) {
                out->u.seq.n = i;
                val_free(out);
                return r;
            }
        }
        return 0;
    }
    default:
        return OIMAP_ECONFIG; /* dicts, matches...: not a sort key oimap compares */
    }
}

struct sorter {
    const struct pyval *keys;
    int err;
};

/* A stable merge sort (Python's sort is stable) whose comparison can fail. */
static void msort(struct sorter *s, size_t *idx, size_t *tmp, size_t n)
{
    if (n < 2 || s->err)
        return;
    size_t h = n / 2;
    msort(s, idx, tmp, h);
    msort(s, idx + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n && !s->err) {
        int c = 0;
        if (pyval_compare(&s->keys[idx[j]], &s->keys[idx[i]], &c) < 0)
            s->err = OIMAP_ECONFIG;
        tmp[k++] = c < 0 ? idx[j++] : idx[i++];
    }
    while (i < h)
        tmp[k++] = idx[i++];
    while (j < n)
        tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

static int sort_key(struct mbnames *mb, const struct mbnames_item *it, struct pyval *key_r,
                    char *err, size_t errlen)
{
    struct pyval *k = calloc(it->n ? it->n : 1, sizeof *k),
                 *v = calloc(it->n ? it->n : 1, sizeof *v);
    int r = -ENOMEM;
    if (k && v) {
        for (size_t i = 0; i < it->n; i++) {
            k[i] = pyval_str(it->keys[i]);
            v[i] = pyval_str(it->vals[i]);
        }
        struct pyval d = {.type = PYV_DICT}, out;
        d.u.dict.k = k, d.u.dict.v = v, d.u.dict.n = it->n;
        r = pyexpr_call(mb->sortkey, &d, 1, &out);
        if (r < 0)
            snprintf(err, errlen, "%s", pyexpr_errmsg(mb->sortkey));
        else if ((r = val_copy(&out, key_r, 0)) == OIMAP_ECONFIG)
            snprintf(err, errlen, "%s: a sort key of type %s cannot be ordered",
                     pyexpr_where(mb->sortkey), pyval_type_name(out.type));
    }
    free(k);
    free(v);
    return r;
}

static int sort_items(struct mbnames *mb, struct mbnames_list *l, char *err, size_t errlen)
{
    if (l->n < 2)
        return 0;
    struct pyval *keys = calloc(l->n, sizeof *keys);
    size_t *idx = calloc(l->n, sizeof *idx), *tmp = calloc(l->n, sizeof *tmp);
    struct mbnames_item *sorted = calloc(l->n, sizeof *sorted);
    int r = keys && idx && tmp && sorted ? 0 : -ENOMEM;
    for (size_t i = 0; r == 0 && i < l->n; i++) {
        idx[i] = i;
        r = sort_key(mb, &l->v[i], &keys[i], err, errlen);
    }
    if (r == 0) {
        struct sorter s = {keys, 0};
        msort(&s, idx, tmp, l->n);
        if ((r = s.err) < 0)
            snprintf(err, errlen, "%s: TypeError: the sort keys cannot be compared",
                     pyexpr_where(mb->sortkey));
    }
    if (r == 0) {
        for (size_t i = 0; i < l->n; i++)
            sorted[i] = l->v[idx[i]];
        memcpy(l->v, sorted, l->n * sizeof *sorted);
    }
    for (size_t i = 0; keys && i < l->n; i++)
        val_free(&keys[i]);
    free(keys);
    free(idx);
    free(tmp);
    free(sorted);
    return r;
}

int mbnames_render(struct mbnames *mb, struct mbnames_list *l, char **out_r, size_t *len_r,
                   char *err, size_t errlen)
{
    int r = sort_items(mb, l, err, errlen);
    if (r < 0)
        return r;
    struct strbuf b = {0};
    strbuf_adds(&b, mb->header);
    for (size_t i = 0; i < l->n; i++) {
        char *line = NULL;
        if ((r = mbnames_format_item(mb->peritem, &l->v[i], &line, err, errlen)) < 0) {
            free(b.p);
            return r;
        }
        if (i)
            strbuf_adds(&b, mb->sep);
        strbuf_adds(&b, line);
        free(line);
    }
    strbuf_adds(&b, mb->footer);
    return buf_finish(&b, out_r, len_r);
}

/* ---- files ------------------------------------------------------------------ */

static int mkdir_p(const char *path)
{
    char *p = strdup(path);
    int r = 0;
    if (!p)
        return -ENOMEM;
    for (char *s = p + 1; r == 0; s++) {
        if (*s && *s != '/')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
            r = -errno;
        *s = c;
        if (!c)
            break;
    }
    free(p);
    return r;
}

/* Serialise writers of this directory, threads and processes alike. */
static int lock_dir(struct mbnames *mb, int *fd_r)
{
    int r = mkdir_p(mb->dir);
    char *path = r == 0 ? path_join(mb->dir, ".lock") : NULL;
    if (r == 0 && !path)
        r = -ENOMEM;
    int fd = path ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
    if (r == 0 && fd < 0)
        r = -errno;
    while (r == 0 && flock(fd, LOCK_EX) < 0)
        if (errno != EINTR)
            r = -errno;
    if (r < 0) {
        note(mb, LOGL_ERROR, "mbnames: cannot lock %s: %s", path ? path : mb->dir, err_str(r));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    free(path);
    *fd_r = fd;
    return r;
}

static void unlock_dir(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}

static int read_file(const char *path, char **buf_r, size_t *len_r)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct strbuf b = {0};
    char chunk[8192];
    int r = 0;
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        if (n == 0)
            break;
        if (b.len + (size_t)n > MBNAMES_FILE_MAX) {
            r = -EFBIG;
            break;
        }
        strbuf_add(&b, chunk, (size_t)n);
    }
    close(fd);
    if (r < 0) {
        free(b.p);
        return r;
    }
    return buf_finish(&b, buf_r, len_r);
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) < 0 && errno != EINVAL ? -errno : 0;
    close(fd);
    return r;
}

/* The file a write to path should replace: path, or the target of the
 * symbolic link path is (the link itself stays). */
static char *write_target(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0 || !S_ISLNK(st.st_mode))
        return strdup(path);
    char *real = realpath(path, NULL);
    if (real)
        return real;
    /* A dangling link: its target, relative to the link's directory. */
    char link[PATH_MAX];
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n <= 0)
        return strdup(path);
    link[n] = '\0';
    if (link[0] == '/')
        return strdup(link);
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(link);
    size_t dl = (size_t)(slash - path), len = dl + 1 + (size_t)n + 1;
    char *out = malloc(len);
    if (out)
        snprintf(out, len, "%.*s/%s", (int)dl, path, link);
    return out;
}

/* Write data to path atomically: temporary file beside it, fsync, rename,
 * fsync of the directory.  A reader sees the old or the new file. */
static int write_atomic(struct mbnames *mb, const char *path, const char *data, size_t len)
{
    static unsigned counter;
    char *target = write_target(path);
    if (!target)
        return -ENOMEM;
    const char *slash = strrchr(target, '/');
    char dir[PATH_MAX], tmp[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - target) : 1, slash ? target : ".");
    if (slash == target)
        snprintf(dir, sizeof dir, "/");
    const char *base = slash ? slash + 1 : target;
    int fd = -1, r = 0;
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        unsigned n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
        snprintf(tmp, sizeof tmp, "%s/.%s.oimap-%ld-%u", dir, base, (long)getpid(), n);
        /* 0666 less the umask, like any new file of the user's. */
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        r = -errno;
        note(mb, LOGL_ERROR, "mbnames: cannot write %s: %s", target, err_str(r));
        free(target);
        return r;
    }
    struct stat st;
    if (stat(target, &st) == 0 && fchmod(fd, st.st_mode & 07777) < 0)
        r = -errno;
    if (r == 0)
        r = write_all(fd, data, len);
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, target) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        note(mb, LOGL_ERROR, "mbnames: cannot write %s: %s", target, err_str(r));
    } else if ((r = fsync_dir(dir)) < 0) {
        note(mb, LOGL_WARN, "mbnames: %s written, but fsync of %s failed: %s", target, dir,
             err_str(r));
        r = 0;
    }
    free(target);
    return r;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_json_name(const char *n)
{
    size_t len = strlen(n);
    return len > 5 && strcmp(n + len - 5, ".json") == 0;
}

/* The *.json regular files of the directory, sorted (offlineimap reads them
 * in directory order; sorting keeps oimap's output stable). */
static int list_json(struct mbnames *mb, char ***names_r, size_t *n_r)
{
    *names_r = NULL;
    *n_r = 0;
    DIR *d = opendir(mb->dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    char **v = NULL;
    size_t n = 0;
    int r = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d)) != NULL) {
        if (!is_json_name(de->d_name))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
            continue;
        char **nv = realloc(v, (n + 1) * sizeof *nv);
        if (!nv || !(nv[n] = strdup(de->d_name))) {
            v = nv ? nv : v;
            r = -ENOMEM;
            break;
        }
        v = nv;
        n++;
    }
    closedir(d);
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            free(v[i]);
        free(v);
        return r;
    }
    if (n)
        qsort(v, n, sizeof *v, cmp_str);
    *names_r = v;
    *n_r = n;
    return 0;
}

static void names_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Read one intermediate file into l. */
static int load_file(struct mbnames *mb, const char *path, struct mbnames_list *l)
{
    char *buf = NULL, err[256] = "";
    size_t len = 0;
    int r = read_file(path, &buf, &len);
    if (r == -ENOENT) {
        return r;
    } else if (r < 0) {
        note(mb, LOGL_ERROR, "mbnames: could not read intermediate file %s: %s", path, err_str(r));
        return r;
    }
    struct mbnames_list part = {0};
    r = mbnames_json_decode(buf, len, &part, err, sizeof err);
    free(buf);
    if (r < 0) {
        note(mb, LOGL_ERROR, "mbnames: intermediate file %s not properly read: %s", path,
             r == OIMAP_ECONFIG ? err : err_str(r));
        mbnames_list_clear(&part);
        return r;
    }
    for (size_t i = 0; i < part.n; i++) {
        struct mbnames_item *it = list_push(l);
        if (!it) {
            mbnames_list_clear(&part);
            return -ENOMEM;
        }
        *it = part.v[i];
        part.v[i] = (struct mbnames_item){0};
    }
    mbnames_list_clear(&part);
    return 0;
}

/* Rewrite the output file; the directory lock is held. */
static int write_output_locked(struct mbnames *mb)
{
    char **names;
    size_t n;
    struct mbnames_list l = {0};
    int r = list_json(mb, &names, &n);
    if (r < 0) {
        note(mb, LOGL_ERROR, "mbnames: cannot list %s: %s", mb->dir, err_str(r));
        return r;
    }
    for (size_t i = 0; i < n && r != -ENOMEM; i++) {
        char *path = path_join(mb->dir, names[i]);
        r = path ? load_file(mb, path, &l) : -ENOMEM;
        free(path);
    }
    names_free(names, n);
    char *text = NULL, err[512] = "";
    size_t len = 0;
    if (r != -ENOMEM)
        r = mbnames_render(mb, &l, &text, &len, err, sizeof err);
    mbnames_list_clear(&l);
    if (r < 0) {
        note(mb, LOGL_ERROR, "mbnames: %s not written: %s", mb->filename,
             r == OIMAP_ECONFIG ? err : err_str(r));
        return r;
    }
    r = write_atomic(mb, mb->filename, text, len);
    free(text);
    return r;
}

static bool account_name_ok(const char *a)
{
    return *a && !strchr(a, '/') && strcmp(a, ".") != 0 && strcmp(a, "..") != 0;
}

static char *account_path(const struct mbnames *mb, const char *account)
{
    size_t n = strlen(mb->dir) + strlen(account) + 8;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s.json", mb->dir, account);
    return p;
}

int mbnames_update_account(struct mbnames *mb, const char *account, const char *localfolders,
                           const char *const *folders, size_t n, bool merge, bool dry_run)
{
    if (!mb->enabled)
        return 0;
    if (!account_name_ok(account)) {
        note(mb, LOGL_ERROR, "mbnames: account name '%s' cannot name a file; not listed", account);
        return OIMAP_ENAME;
    }
    char *path = account_path(mb, account);
    if (!path)
        return -ENOMEM;
    struct mbnames_list l = {0};
    int fd = -1, r = 0;
    if (!dry_run)
        r = lock_dir(mb, &fd);
    if (r == 0 && merge && load_file(mb, path, &l) == -ENOMEM)
        r = -ENOMEM;
    if (r == 0)
        r = mbnames_filter_add(mb, &l, account, localfolders, folders, n);
    if (r == 0 && dry_run) {
        note(mb, LOGL_INFO, "mbnames: would write %s", path);
        if (mb->incremental)
            note(mb, LOGL_INFO, "mbnames: would write %s", mb->filename);
    } else if (r == 0) {
        char *json = NULL;
        size_t len = 0;
        r = mbnames_json_encode(&l, &json, &len);
        if (r == 0)
            r = write_atomic(mb, path, json, len);
        free(json);
        if (r == 0 && mb->incremental)
            r = write_output_locked(mb);
    }
    if (r == -ENOMEM)
        note(mb, LOGL_ERROR, "mbnames: out of memory");
    unlock_dir(fd);
    mbnames_list_clear(&l);
    free(path);
    return r;
}

int mbnames_write(struct mbnames *mb, bool dry_run)
{
    if (!mb->enabled)
        return 0;
    if (dry_run) {
        note(mb, LOGL_INFO, "mbnames: would write %s", mb->filename);
        return 0;
    }
    int fd, r = lock_dir(mb, &fd);
    if (r == 0)
        r = write_output_locked(mb);
    unlock_dir(fd);
    return r;
}

static bool configured(const struct config *cfg, const char *account)
{
    for (size_t i = 0; i < cfg->n_accounts; i++)
        if (strcmp(cfg->accounts[i].name, account) == 0)
            return true;
    return false;
}

int mbnames_prune(struct mbnames *mb, const struct config *cfg, bool dry_run)
{
    char **names;
    size_t n, removed = 0;
    int fd = -1, r = 0;
    if (!dry_run && (r = lock_dir(mb, &fd)) < 0)
        return r;
    if ((r = list_json(mb, &names, &n)) < 0) {
        note(mb, LOGL_ERROR, "mbnames: cannot list %s: %s", mb->dir, err_str(r));
        unlock_dir(fd);
        return r;
    }
    for (size_t i = 0; i < n; i++) {
        names[i][strlen(names[i]) - 5] = '\0'; /* the account's name */
        if (mb->enabled && configured(cfg, names[i]))
            continue;
        char *path = account_path(mb, names[i]);
        if (!path) {
            r = -ENOMEM;
            break;
        }
        if (dry_run) {
            note(mb, LOGL_INFO, "mbnames: would remove %s", path);
        } else if (unlink(path) < 0) {
            r = -errno;
            note(mb, LOGL_ERROR, "mbnames: cannot remove %s: %s", path, err_str(r));
        } else {
            note(mb, LOGL_INFO, "mbnames: removed %s", path);
        }
        removed++;
        free(path);
    }
    names_free(names, n);
    if (mb->enabled && !removed)
        note(mb, LOGL_INFO, "mbnames: no intermediate file to remove");
    if (r == 0 && mb->enabled) {
        if (dry_run)
            note(mb, LOGL_INFO, "mbnames: would write %s", mb->filename);
        else
            r = write_output_locked(mb);
    }
    unlock_dir(fd);
    return r;
}
