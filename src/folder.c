/* folder.c - folderfilter / nametrans / folderincludes in their common forms.
 *
 * A deliberately small recogniser, not an evaluator: it matches the shapes
 * listed in folder.h token by token and refuses everything else, so a config
 * it does not understand fails loudly instead of syncing the wrong folders.
 */
#include "folder.h"
#include "config.h"
#include "err.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

enum filter_kind { FILTER_ALL, FILTER_IN, FILTER_NOT_IN, FILTER_RE };

struct folder_filter {
    enum filter_kind kind;
    char **names;
    size_t n;
    regex_t re;
    bool negate;
    bool anchored; /* re.match: the match must start at 0 */
};

struct folder_trans {
    bool identity;
    regex_t re;
    char *repl;
};

struct lex {
    const char *p;
};

static void skip_ws(struct lex *l)
{
    while (*l->p && isspace((unsigned char)*l->p))
        l->p++;
}

static bool eat(struct lex *l, const char *word)
{
    skip_ws(l);
    size_t n = strlen(word);
    if (strncmp(l->p, word, n) != 0)
        return false;
    /* Words must not run into an identifier ("in" vs "index"). */
    if (isalnum((unsigned char)word[n - 1]) && (isalnum((unsigned char)l->p[n]) || l->p[n] == '_'))
        return false;
    l->p += n;
    return true;
}

static bool ident(struct lex *l, char *out, size_t cap)
{
    skip_ws(l);
    size_t n = 0;
    if (!isalpha((unsigned char)*l->p) && *l->p != '_')
        return false;
    while ((isalnum((unsigned char)l->p[n]) || l->p[n] == '_') && n + 1 < cap) {
        out[n] = l->p[n];
        n++;
    }
    out[n] = '\0';
    l->p += n;
    return true;
}

/* A Python string literal: 'x', "x", r'x', with the escapes real configs
 * use.  Returns a malloc'd string or NULL. */
static char *string_lit(struct lex *l)
{
    skip_ws(l);
    bool raw = false;
    if (*l->p == 'r' || *l->p == 'R') {
        raw = true;
        l->p++;
    }
    char q = *l->p;
    if (q != '\'' && q != '"')
        return NULL;
    l->p++;
    size_t cap = strlen(l->p) + 1, n = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    while (*l->p && *l->p != q) {
        if (*l->p == '\\' && l->p[1]) {
            if (raw) {
                out[n++] = *l->p++;
                out[n++] = *l->p++;
                continue;
            }
            l->p++;
            switch (*l->p) {
            case 'n':
                out[n++] = '\n';
                break;
            case 't':
                out[n++] = '\t';
                break;
            case '\\':
                out[n++] = '\\';
                break;
            case '\'':
                out[n++] = '\'';
                break;
            case '"':
                out[n++] = '"';
                break;
            default: /* Python keeps unknown escapes as written ("\." ) */
                out[n++] = '\\';
                out[n++] = *l->p;
                break;
            }
            l->p++;
            continue;
        }
        out[n++] = *l->p++;
    }
    if (*l->p != q) {
        free(out);
        return NULL;
    }
    l->p++;
    out[n] = '\0';
    return out;
}

void folder_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static int list_lit(struct lex *l, char ***names_r, size_t *n_r)
{
    skip_ws(l);
    char close;
    if (*l->p == '[')
        close = ']';
    else if (*l->p == '(')
        close = ')';
    else
        return OIMAP_ECONFIG;
    l->p++;
    char **names = NULL;
    size_t n = 0;
    for (;;) {
        skip_ws(l);
        if (*l->p == close) {
            l->p++;
            break;
        }
        char *s = string_lit(l);
        if (!s)
            goto bad;
        char **nn = realloc(names, (n + 1) * sizeof *nn);
        if (!nn) {
            free(s);
            goto bad;
        }
        names = nn;
        names[n++] = s;
        skip_ws(l);
        if (*l->p == ',')
            l->p++;
        else if (*l->p != close)
            goto bad;
    }
    *names_r = names;
    *n_r = n;
    return 0;
bad:
    folder_names_free(names, n);
    return OIMAP_ECONFIG;
}

int folder_parse_list(const char *text, char ***names_r)
{
    struct lex l = {text};
    size_t n;
    if (list_lit(&l, names_r, &n) < 0)
        return OIMAP_ECONFIG;
    skip_ws(&l);
    if (*l.p) {
        folder_names_free(*names_r, n);
        *names_r = NULL;
        return OIMAP_ECONFIG;
    }
    return (int)n;
}

/* Python regular expression -> POSIX ERE for the common escapes. */
static char *py_to_ere(const char *py)
{
    size_t len = strlen(py);
    char *out = malloc(len * 12 + 1);
    size_t n = 0;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (py[i] == '\\' && i + 1 < len) {
            const char *rep = NULL;
            switch (py[i + 1]) {
            case 'd':
                rep = "[0-9]";
                break;
            case 'D':
                rep = "[^0-9]";
                break;
            case 'w':
                rep = "[[:alnum:]_]";
                break;
            case 'W':
                rep = "[^[:alnum:]_]";
                break;
            case 's':
                rep = "[[:space:]]";
                break;
            case 'S':
                rep = "[^[:space:]]";
                break;
            default:
                break;
            }
            if (rep) {
                memcpy(out + n, rep, strlen(rep));
                n += strlen(rep);
                i++;
                continue;
            }
            out[n++] = py[i++];
        }
        out[n++] = py[i];
    }
    out[n] = '\0';
    return out;
}

static int compile_re(regex_t *re, const char *py, const char *where)
{
    char *ere = py_to_ere(py);
    if (!ere)
        return -ENOMEM;
    int r = regcomp(re, ere, REG_EXTENDED);
    free(ere);
    if (r != 0) {
        char msg[128];
        regerror(r, re, msg, sizeof msg);
        log_error("%s: regular expression '%s': %s", where, py, msg);
        return OIMAP_ECONFIG;
    }
    return 0;
}

/* "lambda NAME:" -> NAME in var. */
static bool lambda_head(struct lex *l, char *var, size_t cap)
{
    return eat(l, "lambda") && ident(l, var, cap) && eat(l, ":");
}

static bool at_end(struct lex *l)
{
    skip_ws(l);
    return *l->p == '\0';
}

static int unsupported(const char *where, const char *what, const char *text)
{
    log_error("%s: %s '%s' is not supported yet (oimap understands the forms listed in "
              "oimap.conf(5))",
              where, what, text);
    return OIMAP_ECONFIG;
}

int folder_filter_new(const struct config_expr *e, const char *where, struct folder_filter **f_r)
{
    struct folder_filter *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    *f_r = f;
    f->kind = FILTER_ALL;
    if (!e || !e->text || !*e->text)
        return 0;

    struct lex l = {e->text};
    char var[64], v2[64];
    if (!lambda_head(&l, var, sizeof var))
        goto bad;
    const char *body = l.p;
    /* f in [...] / f not in [...] */
    if (ident(&l, v2, sizeof v2) && strcmp(v2, var) == 0) {
        bool neg = eat(&l, "not");
        if (!eat(&l, "in"))
            goto bad;
        if (list_lit(&l, &f->names, &f->n) < 0 || !at_end(&l))
            goto bad;
        f->kind = neg ? FILTER_NOT_IN : FILTER_IN;
        return 0;
    }
    l.p = body;
    /* [not] re.search(r'...', f) / re.match */
    f->negate = eat(&l, "not");
    if (eat(&l, "re.search"))
        f->anchored = false;
    else if (eat(&l, "re.match"))
        f->anchored = true;
    else
        goto bad;
    if (!eat(&l, "("))
        goto bad;
    char *pat = string_lit(&l);
    if (!pat)
        goto bad;
    if (!eat(&l, ",") || !ident(&l, v2, sizeof v2) || strcmp(v2, var) != 0 || !eat(&l, ")") ||
        !at_end(&l)) {
        free(pat);
        goto bad;
    }
    int r = compile_re(&f->re, pat, where);
    free(pat);
    if (r < 0) {
        free(f);
        *f_r = NULL;
        return r;
    }
    f->kind = FILTER_RE;
    return 0;
bad:
    folder_filter_free(f_r);
    return unsupported(where, "expression", e->text);
}

int folder_filter_new_list(const char *csv, struct folder_filter **f_r)
{
    struct folder_filter *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->kind = FILTER_IN;
    for (const char *p = csv; *p;) {
        size_t len = strcspn(p, ",");
        if (len) {
            char **nn = realloc(f->names, (f->n + 1) * sizeof *nn);
            if (!nn || !(nn[f->n] = strndup(p, len))) {
                f->names = nn ? nn : f->names;
                folder_filter_free(&f);
                return -ENOMEM;
            }
            f->names = nn;
            f->n++;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    *f_r = f;
    return 0;
}

bool folder_filter_match(const struct folder_filter *f, const char *name)
{
    switch (f->kind) {
    case FILTER_ALL:
        return true;
    case FILTER_IN:
    case FILTER_NOT_IN: {
        bool in = false;
        for (size_t i = 0; i < f->n && !in; i++)
            in = strcmp(f->names[i], name) == 0;
        return f->kind == FILTER_IN ? in : !in;
    }
    case FILTER_RE: {
        regmatch_t m;
        bool hit = regexec(&f->re, name, 1, &m, 0) == 0 && (!f->anchored || m.rm_so == 0);
        return f->negate ? !hit : hit;
    }
    }
    return false;
}

void folder_filter_free(struct folder_filter **fp)
{
    struct folder_filter *f = *fp;
    if (!f)
        return;
    folder_names_free(f->names, f->n);
    if (f->kind == FILTER_RE)
        regfree(&f->re);
    free(f);
    *fp = NULL;
}

int folder_trans_new(const struct config_expr *e, const char *where, struct folder_trans **t_r)
{
    struct folder_trans *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    *t_r = t;
    t->identity = true;
    if (!e || !e->text || !*e->text)
        return 0;
    struct lex l = {e->text};
    char var[64], v2[64];
    if (!lambda_head(&l, var, sizeof var))
        goto bad;
    const char *body = l.p;
    if (ident(&l, v2, sizeof v2) && strcmp(v2, var) == 0 && at_end(&l))
        return 0;
    l.p = body;
    if (!eat(&l, "re.sub") || !eat(&l, "("))
        goto bad;
    char *pat = string_lit(&l);
    char *repl = pat && eat(&l, ",") ? string_lit(&l) : NULL;
    if (!repl || !eat(&l, ",") || !ident(&l, v2, sizeof v2) || strcmp(v2, var) != 0 ||
        !eat(&l, ")") || !at_end(&l)) {
        free(pat);
        free(repl);
        goto bad;
    }
    int r = compile_re(&t->re, pat, where);
    free(pat);
    if (r < 0) {
        free(repl);
        free(t);
        *t_r = NULL;
        return r;
    }
    t->identity = false;
    t->repl = repl;
    return 0;
bad:
    folder_trans_free(t_r);
    return unsupported(where, "expression", e->text);
}

bool folder_trans_is_identity(const struct folder_trans *t)
{
    return t->identity;
}

/* re.sub: replace every non-overlapping match, with \1..\9 in repl. */
char *folder_trans_apply(const struct folder_trans *t, const char *name)
{
    if (t->identity)
        return strdup(name);
    size_t cap = strlen(name) * 2 + strlen(t->repl) * 4 + 64, n = 0;
    char *out = malloc(cap);
    const char *p = name;
    regmatch_t m[10];
    int eflags = 0;
    if (!out)
        return NULL;
    while (*p && regexec(&t->re, p, 10, m, eflags) == 0) {
        size_t need = (size_t)m[0].rm_so + 2;
        for (const char *r = t->repl; *r; r++) {
            if (*r == '\\' && r[1] >= '1' && r[1] <= '9') {
                int g = r[1] - '0';
                if (m[g].rm_so >= 0)
                    need += (size_t)(m[g].rm_eo - m[g].rm_so);
                r++;
            } else {
                need++;
            }
        }
        if (n + need >= cap) {
            cap = (n + need) * 2;
            char *o = realloc(out, cap);
            if (!o) {
                free(out);
                return NULL;
            }
            out = o;
        }
        memcpy(out + n, p, (size_t)m[0].rm_so);
        n += (size_t)m[0].rm_so;
        for (const char *r = t->repl; *r; r++) {
            if (*r == '\\' && r[1] >= '1' && r[1] <= '9') {
                int g = r[1] - '0';
                if (m[g].rm_so >= 0) {
                    size_t gl = (size_t)(m[g].rm_eo - m[g].rm_so);
                    memcpy(out + n, p + m[g].rm_so, gl);
                    n += gl;
                }
                r++;
            } else {
                out[n++] = *r;
            }
        }
        if (m[0].rm_eo == m[0].rm_so) { /* empty match: move on one byte */
            if (!p[m[0].rm_eo])
                break;
            out[n++] = p[m[0].rm_eo];
            p += m[0].rm_eo + 1;
        } else {
            p += m[0].rm_eo;
        }
        eflags = REG_NOTBOL;
    }
    size_t rest = strlen(p);
    if (n + rest + 1 > cap) {
        char *o = realloc(out, n + rest + 1);
        if (!o) {
            free(out);
            return NULL;
        }
        out = o;
    }
    memcpy(out + n, p, rest + 1);
    return out;
}

void folder_trans_free(struct folder_trans **tp)
{
    struct folder_trans *t = *tp;
    if (!t)
        return;
    if (!t->identity)
        regfree(&t->re);
    free(t->repl);
    free(t);
    *tp = NULL;
}
