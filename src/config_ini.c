/* config_ini.c - the configuration file as sections of raw options.
 *
 * Python's ConfigParser semantics on top of inih.  Debian's libinih is built
 * with a 200-byte line buffer and strips " ;" inline comments, and its
 * handler is not told line numbers; real offlineimaprc lines are longer than
 * that and passwords contain " ;".  So inih never sees the file's text: our
 * reader callback reads whole physical lines of any length from memory,
 * decides what each one is the way ConfigParser would (comment, blank,
 * section header, option, continuation), keeps the raw text in a side table
 * (a "piece") and hands inih a short stand-in line that refers to it:
 *
 *     [Section name]        ->  [\x02<piece>]
 *     Name = value ; x      ->  \x01<piece> = \x01<piece>
 *         continued         ->   \x01<piece>       (indented: inih calls the
 *                                                    handler with the same name)
 *     comments, blank lines ->  "#" / ""
 *
 * inih still does the structure - it tracks the current section, splits the
 * stand-in at '=' and turns an indented line into a continuation call - and
 * our handler puts the original text back into the document.  Stand-ins map
 * 1:1 to physical lines, so inih's own error line numbers are real ones too.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"

/* ConfigParser's BasicInterpolation limit. */
#define INTERP_MAX_DEPTH 10
/* A value that grows beyond this through interpolation is refused (a few
 * nested references can otherwise multiply a value's size exponentially). */
#define INTERP_MAX_LEN (1u << 20)

enum piece_kind { PIECE_SECT, PIECE_OPT, PIECE_CONT };

/* One physical line's raw text, referred to by its stand-in. */
struct piece {
    enum piece_kind kind;
    int line;
    char *name; /* PIECE_OPT: lower-case option name */
    char *text; /* section name, option value, or continuation text */
    long sect;  /* PIECE_SECT: index in ini->sects, -1 if dropped */
    long owner; /* PIECE_CONT: the PIECE_OPT piece it continues */
    long opt;   /* PIECE_OPT: index in its section's opts, -1 if dropped */
    long osect; /* PIECE_OPT: section index */
};

struct reader {
    const char *buf;
    size_t len, pos;
    const char *file;
    int line;
    struct config_ini *ini;
    struct piece *pieces;
    size_t n_pieces, cap_pieces;
    /* ConfigParser's state */
    bool in_sect; /* a section header was seen */
    long cur_opt; /* current option piece for continuations, -1 none */
    size_t indent_level;
    size_t pending_blank; /* blank lines inside a value, kept if it continues */
    int n_err;
    bool oom;
};

/* ------------------------------------------------------------------------ */
/* diagnostics */

static char *diag_buf;
static size_t diag_len, diag_cap;

void config_diag_reset(void)
{
    diag_len = 0;
    if (diag_buf)
        diag_buf[0] = '\0';
}

const char *config_diagnostics(void)
{
    return diag_buf ? diag_buf : "";
}

void config_diag(enum config_diag_level lvl, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    switch (lvl) {
    case CONFIG_DIAG_ERROR:
        log_error("%s", msg);
        break;
    case CONFIG_DIAG_WARN:
        log_warn("%s", msg);
        break;
    case CONFIG_DIAG_NOTE:
        log_info("%s", msg);
        break;
    }

    static const char *const prefix[] = {"error: ", "warning: ", "note: "};
    size_t need = strlen(prefix[lvl]) + strlen(msg) + 2;
    if (diag_len + need > diag_cap) {
        size_t cap = diag_cap ? diag_cap * 2 : 1024;
        while (cap < diag_len + need)
            cap *= 2;
        char *nb = realloc(diag_buf, cap);
        if (!nb)
            return; /* the log line went out; the test copy is best effort */
        diag_buf = nb;
        diag_cap = cap;
    }
    diag_len += (size_t)sprintf(diag_buf + diag_len, "%s%s\n", prefix[lvl], msg);
}

/* ------------------------------------------------------------------------ */
/* the document */

/* Python's str.isspace() for ASCII: this is what strip() and \s remove. */
static bool py_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

/* (Lines hold no NUL byte: classify() refuses them.) */
static char *dup_range(const char *s, size_t n)
{
    return strndup(s, n);
}

static void lower_ascii(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

struct config_ini_sect *config_ini_section(const struct config_ini *ini, const char *name)
{
    for (size_t i = 0; ini && i < ini->n_sects; i++)
        if (strcmp(ini->sects[i]->name, name) == 0)
            return ini->sects[i];
    return NULL;
}

struct config_ini_opt *config_ini_find(const struct config_ini_sect *s, const char *name)
{
    for (size_t i = 0; s && i < s->n_opts; i++)
        if (strcmp(s->opts[i].name, name) == 0)
            return &s->opts[i];
    return NULL;
}

const struct config_ini_opt *config_ini_lookup(const struct config_ini *ini,
                                               const struct config_ini_sect *s, const char *name)
{
    const struct config_ini_opt *o = config_ini_find(s, name);
    if (!o && ini->defaults && s != ini->defaults)
        o = config_ini_find(ini->defaults, name);
    return o;
}

static struct config_ini_sect *sect_add(struct config_ini *ini, const char *name, int line)
{
    if (ini->n_sects == ini->cap_sects) {
        size_t cap = ini->cap_sects ? ini->cap_sects * 2 : 8;
        struct config_ini_sect **ns = realloc(ini->sects, cap * sizeof(*ns));
        if (!ns)
            return NULL;
        ini->sects = ns;
        ini->cap_sects = cap;
    }
    struct config_ini_sect *s = calloc(1, sizeof(*s));
    if (!s || !(s->name = strdup(name))) {
        free(s);
        return NULL;
    }
    s->line = line;
    ini->sects[ini->n_sects++] = s;
    if (strcmp(name, "DEFAULT") == 0)
        ini->defaults = s;
    return s;
}

/* Adds an option; takes ownership of name and value (freed on failure). */
static struct config_ini_opt *opt_add(struct config_ini_sect *s, char *name, char *value, int line)
{
    if (s->n_opts == s->cap_opts) {
        size_t cap = s->cap_opts ? s->cap_opts * 2 : 8;
        struct config_ini_opt *no = realloc(s->opts, cap * sizeof(*no));
        if (!no) {
            free(name);
            free(value);
            return NULL;
        }
        s->opts = no;
        s->cap_opts = cap;
    }
    struct config_ini_opt *o = &s->opts[s->n_opts++];
    *o = (struct config_ini_opt){.name = name, .value = value, .line = line};
    return o;
}

int config_ini_set(struct config_ini_sect *s, const char *name, const char *value)
{
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return -ENOMEM;
    }
    lower_ascii(n);
    struct config_ini_opt *o = config_ini_find(s, n);
    if (o) {
        free(n);
        free(o->value);
        o->value = v;
    } else if (!(o = opt_add(s, n, v, 0))) {
        return -ENOMEM;
    }
    o->line = 0;
    o->override = true;
    return 0;
}

struct config_ini_cache {
    struct config_ini_cache *next;
    char *val;
};

void config_ini_free(struct config_ini **inip)
{
    struct config_ini *ini = *inip;
    if (!ini)
        return;
    for (size_t i = 0; i < ini->n_sects; i++) {
        struct config_ini_sect *s = ini->sects[i];
        for (size_t j = 0; j < s->n_opts; j++) {
            free(s->opts[j].name);
            free(s->opts[j].value);
        }
        free(s->opts);
        free(s->name);
        free(s);
    }
    free(ini->sects);
    while (ini->cache) {
        struct config_ini_cache *c = ini->cache;
        ini->cache = c->next;
        free(c->val);
        free(c);
    }
    free(ini->file);
    free(ini);
    *inip = NULL;
}

/* ------------------------------------------------------------------------ */
/* the reader: physical lines -> pieces + stand-ins for inih */

static long piece_add(struct reader *r, enum piece_kind kind, char *name, char *text)
{
    if (r->n_pieces == r->cap_pieces) {
        size_t cap = r->cap_pieces ? r->cap_pieces * 2 : 64;
        struct piece *np = realloc(r->pieces, cap * sizeof(*np));
        if (!np)
            goto oom;
        r->pieces = np;
        r->cap_pieces = cap;
    }
    if (!text || (kind == PIECE_OPT && !name))
        goto oom;
    r->pieces[r->n_pieces] = (struct piece){.kind = kind,
                                            .line = r->line,
                                            .name = name,
                                            .text = text,
                                            .sect = -1,
                                            .owner = -1,
                                            .opt = -1,
                                            .osect = -1};
    return (long)r->n_pieces++;
oom:
    free(name);
    free(text);
    r->oom = true;
    return -1;
}

static void syntax_error(struct reader *r, const char *what)
{
    config_diag(CONFIG_DIAG_ERROR, "%s:%d: %s", r->file, r->line, what);
    r->n_err++;
}

/* Writes the stand-in for piece idx: prefix, mark, idx, and when name is
 * set " = " mark idx again (an option line). */
static char *stand_in(struct reader *r, char *str, int num, const char *prefix, char mark, long idx,
                      const char *suffix)
{
    char digits[24];
    snprintf(digits, sizeof(digits), "%ld", idx);
    int n;
    if (suffix)
        n = snprintf(str, (size_t)num, "%s%c%s%s", prefix, mark, digits, suffix);
    else
        n = snprintf(str, (size_t)num, "%s%c%s = %c%s\n", prefix, mark, digits, mark, digits);
    if (n < 0 || n >= num) {
        /* inih built with an absurdly small line buffer: we cannot work. */
        syntax_error(r, "internal error: inih line buffer too small");
        r->oom = true;
        return NULL;
    }
    return str;
}

static char *blank_line(char *str, int num, const char *text)
{
    if (num < 3)
        return NULL;
    strcpy(str, text);
    return str;
}

/* One physical line from [s, e), classified as ConfigParser._read() does. */
static char *classify(struct reader *r, const char *s, const char *e, char *str, int num)
{
    if (r->line == 1 && e - s >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
        s += 3; /* UTF-8 byte order mark */
    if (memchr(s, '\0', (size_t)(e - s))) {
        syntax_error(r, "NUL byte in line");
        return blank_line(str, num, "#\n");
    }
    const char *a = s, *b = e;
    while (a < b && py_space((unsigned char)*a))
        a++;
    while (b > a && py_space((unsigned char)b[-1]))
        b--;

    if (a == b) {
        /* A blank line belongs to a value if an indented line follows. */
        if (r->cur_opt >= 0)
            r->pending_blank++;
        return blank_line(str, num, "\n");
    }
    if (*a == '#' || *a == ';')
        return blank_line(str, num, "#\n"); /* comments never end a value */

    size_t indent = (size_t)(a - s);
    if (r->in_sect && r->cur_opt >= 0 && indent > r->indent_level) {
        size_t n = r->pending_blank + (size_t)(b - a);
        char *t = malloc(n + 1);
        if (t) {
            memset(t, '\n', r->pending_blank);
            memcpy(t + r->pending_blank, a, (size_t)(b - a));
            t[n] = '\0';
        }
        r->pending_blank = 0;
        long idx = piece_add(r, PIECE_CONT, NULL, t);
        if (idx < 0)
            return NULL;
        r->pieces[idx].owner = r->cur_opt;
        return stand_in(r, str, num, " ", '\x01', idx, "\n");
    }
    r->indent_level = indent;
    r->pending_blank = 0;

    /* "[name]": the header runs to the last ']' (a greedy match). */
    if (*a == '[') {
        const char *rb = b - 1;
        while (rb > a + 1 && *rb != ']')
            rb--;
        if (rb > a + 1 && *rb == ']') {
            char *name = dup_range(a + 1, (size_t)(rb - a - 1));
            long idx = piece_add(r, PIECE_SECT, NULL, name);
            if (idx < 0)
                return NULL;
            r->in_sect = true;
            r->cur_opt = -1;
            struct config_ini_sect *old = config_ini_section(r->ini, name);
            if (old && strcmp(name, "DEFAULT") != 0) {
                config_diag(CONFIG_DIAG_ERROR, "%s:%d: [%s]: duplicate section (first at line %d)",
                            r->file, r->line, name, old->line);
                r->n_err++;
            } else if (old) {
                r->pieces[idx].sect = (long)(r->ini->n_sects - 1);
                for (size_t i = 0; i < r->ini->n_sects; i++)
                    if (r->ini->sects[i] == old)
                        r->pieces[idx].sect = (long)i;
            } else if (!sect_add(r->ini, name, r->line)) {
                r->oom = true;
                return NULL;
            } else {
                r->pieces[idx].sect = (long)(r->ini->n_sects - 1);
            }
            return stand_in(r, str, num, "[", '\x02', idx, "]\n");
        }
    }
    if (!r->in_sect) {
        syntax_error(r, "text before the first [section] header");
        return blank_line(str, num, "#\n");
    }
    const char *sep = a;
    while (sep < b && *sep != '=' && *sep != ':')
        sep++;
    if (sep == b) {
        syntax_error(r, "expected 'option = value', 'option: value' or '[section]'");
        return blank_line(str, num, "#\n");
    }
    const char *ne = sep;
    while (ne > a && py_space((unsigned char)ne[-1]))
        ne--;
    if (ne == a) {
        syntax_error(r, "option name missing before '=' or ':'");
        return blank_line(str, num, "#\n");
    }
    const char *v = sep + 1;
    while (v < b && py_space((unsigned char)*v))
        v++;
    char *name = dup_range(a, (size_t)(ne - a));
    if (name)
        lower_ascii(name);
    long idx = piece_add(r, PIECE_OPT, name, dup_range(v, (size_t)(b - v)));
    if (idx < 0)
        return NULL;
    r->cur_opt = idx;
    return stand_in(r, str, num, "", '\x01', idx, NULL);
}

static char *on_read(char *str, int num, void *stream)
{
    struct reader *r = stream;
    if (r->oom || r->pos >= r->len)
        return NULL;
    const char *s = r->buf + r->pos, *end = r->buf + r->len, *e = s;
    while (e < end && *e != '\n' && *e != '\r')
        e++;
    /* Universal newlines, as Python reads text files: \n, \r\n and \r. */
    const char *next = e;
    if (next < end)
        next += (*e == '\r' && next + 1 < end && next[1] == '\n') ? 2 : 1;
    r->pos = (size_t)(next - r->buf);
    r->line++;
    return classify(r, s, e, str, num);
}

/* "\x01<n>" or "\x02<n>" -> n, or -1. */
static long stand_in_index(const struct reader *r, const char *s, char mark)
{
    if (!s || s[0] != mark || !isdigit((unsigned char)s[1]))
        return -1;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s + 1, &end, 10);
    if (errno || *end || v >= r->n_pieces)
        return -1;
    return (long)v;
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    struct reader *r = user;
    if (!name || !value)
        return 1; /* an inih built to announce new sections */
    long si = stand_in_index(r, section, '\x02');
    long ni = stand_in_index(r, name, '\x01');
    long vi = stand_in_index(r, value, '\x01');
    if (si < 0 || ni < 0 || vi < 0 || r->pieces[si].kind != PIECE_SECT ||
        r->pieces[ni].kind != PIECE_OPT) {
        config_diag(CONFIG_DIAG_ERROR, "%s:%d: internal error: inih stand-in mismatch", r->file,
                    r->line);
        r->n_err++;
        return 0;
    }
    struct piece *p = &r->pieces[vi];
    if (r->pieces[si].sect < 0)
        return 1; /* inside a duplicate section, already reported */
    struct config_ini_sect *s = r->ini->sects[r->pieces[si].sect];

    if (p->kind == PIECE_OPT) {
        if (vi != ni)
            return 0;
        struct config_ini_opt *old = config_ini_find(s, p->name);
        if (old) {
            config_diag(CONFIG_DIAG_ERROR, "%s:%d: [%s] %s: duplicate option (first at line %d)",
                        r->file, p->line, s->name, p->name, old->line);
            r->n_err++;
            return 0;
        }
        char *n = p->name, *v = p->text;
        p->name = p->text = NULL;
        if (!opt_add(s, n, v, p->line)) {
            r->oom = true;
            return 0;
        }
        p->opt = (long)(s->n_opts - 1);
        p->osect = r->pieces[si].sect;
        return 1;
    }
    if (p->kind != PIECE_CONT || p->owner != ni)
        return 0;
    struct piece *o = &r->pieces[ni];
    if (o->opt < 0 || o->osect != r->pieces[si].sect)
        return 1; /* continues an option that was refused */
    struct config_ini_opt *opt = &s->opts[o->opt];
    size_t ol = strlen(opt->value), tl = strlen(p->text);
    char *nv = realloc(opt->value, ol + tl + 2);
    if (!nv) {
        r->oom = true;
        return 0;
    }
    nv[ol] = '\n';
    memcpy(nv + ol + 1, p->text, tl + 1);
    opt->value = nv;
    return 1;
}

int config_ini_parse(const char *name, const char *buf, size_t len, struct config_ini **ini_r)
{
    *ini_r = NULL;
    struct config_ini *ini = calloc(1, sizeof(*ini));
    if (!ini || !(ini->file = strdup(name))) {
        free(ini);
        return -ENOMEM;
    }
    struct reader r = {.buf = buf, .len = len, .file = ini->file, .ini = ini, .cur_opt = -1};
    int rc = ini_parse_stream(on_read, &r, on_ini, &r);
    if (rc > 0 && r.n_err == 0 && !r.oom) {
        /* inih saw something our reader did not: still an error. */
        config_diag(CONFIG_DIAG_ERROR, "%s:%d: syntax error", ini->file, rc);
        r.n_err++;
    }
    for (size_t i = 0; i < r.n_pieces; i++) {
        free(r.pieces[i].name);
        free(r.pieces[i].text);
    }
    free(r.pieces);
    if (r.oom || rc == -2) {
        config_ini_free(&ini);
        return -ENOMEM;
    }
    *ini_r = ini;
    return r.n_err ? OIMAP_ECONFIG : 0;
}

/* ------------------------------------------------------------------------ */
/* %(name)s interpolation (ConfigParser's BasicInterpolation) */

struct sbuf {
    char *p;
    size_t n, cap;
    bool oom, toolong;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom || b->toolong)
        return;
    if (b->n + n >= INTERP_MAX_LEN) {
        b->toolong = true;
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static int interp(const struct config_ini *ini, const struct config_ini_sect *s, const char *v,
                  int depth, struct sbuf *out, char *why, size_t wl)
{
    if (depth > INTERP_MAX_DEPTH) {
        snprintf(why, wl, "%%(...)s references nested deeper than %d levels (a loop?)",
                 INTERP_MAX_DEPTH);
        return OIMAP_ECONFIG;
    }
    while (*v) {
        const char *pct = strchr(v, '%');
        if (!pct) {
            sb_add(out, v, strlen(v));
            break;
        }
        sb_add(out, v, (size_t)(pct - v));
        if (pct[1] == '%') {
            sb_add(out, "%", 1);
            v = pct + 2;
            continue;
        }
        if (pct[1] != '(') {
            snprintf(why, wl, "'%%' must be followed by '%%' or '(' (write %%%% for a literal %%)");
            return OIMAP_ECONFIG;
        }
        const char *rp = strchr(pct + 2, ')');
        if (!rp || rp == pct + 2 || rp[1] != 's') {
            snprintf(why, wl, "bad %%(name)s reference (write %%%% for a literal %%)");
            return OIMAP_ECONFIG;
        }
        char key[128];
        size_t kl = (size_t)(rp - pct - 2);
        if (kl >= sizeof(key))
            kl = sizeof(key) - 1;
        memcpy(key, pct + 2, kl);
        key[kl] = '\0';
        lower_ascii(key);
        const struct config_ini_opt *o = config_ini_lookup(ini, s, key);
        if (!o) {
            snprintf(why, wl, "%%(%s)s refers to no option '%s' in [%s] or [DEFAULT]", key, key,
                     s->name);
            return OIMAP_ECONFIG;
        }
        if (strchr(o->value, '%')) {
            int rc = interp(ini, s, o->value, depth + 1, out, why, wl);
            if (rc < 0)
                return rc;
        } else {
            sb_add(out, o->value, strlen(o->value));
        }
        v = rp + 2;
    }
    if (out->toolong) {
        snprintf(why, wl, "value longer than %u bytes after interpolation", INTERP_MAX_LEN);
        return OIMAP_ECONFIG;
    }
    return out->oom ? -ENOMEM : 0;
}

int config_ini_interpolate(const struct config_ini *ini, const struct config_ini_sect *s,
                           const struct config_ini_opt *opt, char **val_r, char *why, size_t wl)
{
    struct sbuf b = {0};
    *val_r = NULL;
    sb_add(&b, "", 0);
    int rc = interp(ini, s, opt->value, 1, &b, why, wl);
    if (rc < 0) {
        free(b.p);
        return rc;
    }
    if (!b.p && !(b.p = strdup("")))
        return -ENOMEM;
    *val_r = b.p;
    return 0;
}

const char *config_raw(const struct config *cfg, const char *section, const char *option,
                       int *line_r)
{
    if (line_r)
        *line_r = 0;
    if (!cfg || !cfg->ini || !section || !option)
        return NULL;
    struct config_ini *ini = cfg->ini;
    const struct config_ini_sect *s = config_ini_section(ini, section);
    if (!s)
        return NULL;
    char key[128];
    snprintf(key, sizeof(key), "%s", option);
    lower_ascii(key);
    const struct config_ini_opt *o = config_ini_lookup(ini, s, key);
    if (!o)
        return NULL;
    if (line_r)
        *line_r = o->line;
    char why[256], *val;
    int rc = config_ini_interpolate(ini, s, o, &val, why, sizeof(why));
    if (rc < 0) {
        if (rc == OIMAP_ECONFIG) {
            if (o->override)
                log_error("-k %s:%s: %s", section, key, why);
            else
                log_error("%s:%d: [%s] %s: %s", ini->file, o->line, section, key, why);
        }
        return NULL;
    }
    struct config_ini_cache *c = malloc(sizeof(*c));
    if (!c) {
        free(val);
        return NULL;
    }
    c->val = val;
    c->next = ini->cache;
    ini->cache = c;
    return val;
}
