/* folder.c - folderfilter / nametrans / folderincludes through the evaluator.
 *
 * A thin layer over pyexpr (pyeval, or the python3 helper for what pyeval
 * does not take): it checks the shape offlineimap expects (a
 * one-argument lambda for folderfilter and nametrans, a list of strings for
 * folderincludes) when the account starts, so a wrong config fails before
 * any folder is touched, and turns evaluation errors into a logged skip of
 * that one folder.
 */
#include "folder.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "pyhelper.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct folder_filter {
    struct pyexpr *e; /* NULL: names list or accept all */
    char **names;
    size_t n;
    bool all;
};

struct folder_trans {
    struct pyexpr *e; /* NULL: identity */
    bool identity;
};

void folder_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Compile text as a function of one argument for option (offlineimap
 * evaluates these with 're' in the namespace). */
static int compile_lambda(const char *text, const char *where, const char *example,
                          struct pyexpr **e_r)
{
    int r = pyexpr_compile(text, where, true, NULL, 0, e_r);
    if (r < 0)
        return r;
    if (!pyexpr_accepts(*e_r, 1)) {
        log_error("%s: expected a function of one folder name, like %s", where, example);
        pyexpr_free(e_r);
        return OIMAP_ECONFIG;
    }
    return 0;
}

int folder_filter_new(const struct config_expr *e, const char *where, struct folder_filter **f_r)
{
    *f_r = NULL;
    struct folder_filter *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->all = !e || !e->text || !*e->text;
    if (!f->all) {
        int r = compile_lambda(e->text, where, "lambda folder: folder in ['INBOX', 'Sent']", &f->e);
        if (r < 0) {
            free(f);
            return r;
        }
    }
    *f_r = f;
    return 0;
}

int folder_filter_new_list(const char *csv, struct folder_filter **f_r)
{
    struct folder_filter *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
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
    if (f->all)
        return true;
    if (!f->e) {
        for (size_t i = 0; i < f->n; i++)
            if (strcmp(f->names[i], name) == 0)
                return true;
        return false;
    }
    struct pyval v;
    if (pyexpr_call1(f->e, name, &v) < 0) {
        log_error("%s (folder '%s' is skipped)", pyexpr_errmsg(f->e), name);
        return false;
    }
    return pyval_truthy(&v);
}

void folder_filter_free(struct folder_filter **fp)
{
    struct folder_filter *f = *fp;
    if (!f)
        return;
    folder_names_free(f->names, f->n);
    pyexpr_free(&f->e);
    free(f);
    *fp = NULL;
}

int folder_trans_new(const struct config_expr *e, const char *where, struct folder_trans **t_r)
{
    *t_r = NULL;
    struct folder_trans *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->identity = true;
    if (e && e->text && *e->text) {
        int r = compile_lambda(e->text, where, "lambda folder: re.sub(r'^INBOX\\.', '', folder)",
                               &t->e);
        if (r < 0) {
            free(t);
            return r;
        }
        t->identity = pyexpr_is_identity(t->e);
    }
    *t_r = t;
    return 0;
}

bool folder_trans_is_identity(const struct folder_trans *t)
{
    return t->identity;
}

char *folder_trans_apply(const struct folder_trans *t, const char *name)
{
    if (t->identity)
        return strdup(name);
    struct pyval v;
    if (pyexpr_call1(t->e, name, &v) < 0) {
        log_error("%s (folder '%s' is skipped)", pyexpr_errmsg(t->e), name);
        return NULL;
    }
    const char *s = pyval_cstr(&v);
    if (!s || strlen(s) != v.u.str.len) {
        char got[80];
        pyval_repr(&v, got, sizeof got);
        log_error("%s: nametrans gave %s for folder '%s', not a folder name (the folder is "
                  "skipped)",
                  pyexpr_where(t->e), got, name);
        return NULL;
    }
    return strdup(s);
}

void folder_trans_free(struct folder_trans **tp)
{
    struct folder_trans *t = *tp;
    if (!t)
        return;
    pyexpr_free(&t->e);
    free(t);
    *tp = NULL;
}

static int parse_list(const char *text, const char *where, char ***names_r)
{
    *names_r = NULL;
    char err[512];
    struct pyexpr *e;
    int r = pyexpr_compile(text, where ? where : "list", true, where ? NULL : err, sizeof err, &e);
    if (r < 0)
        return r == -ENOMEM ? r : OIMAP_ECONFIG;
    struct pyval v;
    if ((r = pyexpr_eval(e, &v)) < 0) {
        if (where)
            log_error("%s", pyexpr_errmsg(e));
        pyexpr_free(&e);
        return r == -ENOMEM ? r : OIMAP_ECONFIG;
    }
    r = OIMAP_ECONFIG;
    if (v.type != PYV_LIST && v.type != PYV_TUPLE)
        goto bad;
    char **names = calloc(v.u.seq.n + 1, sizeof *names);
    if (!names) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < v.u.seq.n; i++) {
        const struct pyval *it = &v.u.seq.v[i];
        if (it->type != PYV_STR || strlen(it->u.str.s) != it->u.str.len) {
            folder_names_free(names, i);
            goto bad;
        }
        if (!(names[i] = strdup(it->u.str.s))) {
            folder_names_free(names, i);
            r = -ENOMEM;
            goto out;
        }
    }
    *names_r = names;
    r = (int)v.u.seq.n;
    goto out;
bad:
    if (where)
        log_error("%s: expected a list of folder names, like ['Archive', 'Lists/dev']", where);
out:
    pyexpr_free(&e);
    return r;
}

int folder_parse_list(const char *text, char ***names_r)
{
    return parse_list(text, NULL, names_r);
}

int folder_parse_list_at(const char *text, const char *where, char ***names_r)
{
    return parse_list(text, where ? where : "list", names_r);
}

/* ---- foldersort ---------------------------------------------------------- */

struct folder_sort {
    struct pyexpr *e;
    bool failed; /* an evaluation failed: the rest of this sort is skipped */
};

int folder_sort_new(const struct config_expr *e, const char *where, struct folder_sort **s_r)
{
    *s_r = NULL;
    if (!e || !e->text || !*e->text)
        return 0;
    struct folder_sort *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    int r = pyexpr_compile(e->text, where, true, NULL, 0, &s->e);
    if (r < 0) {
        free(s);
        return r;
    }
    if (!pyexpr_accepts(s->e, 2)) {
        log_error("%s: expected a function of two folder names, like lambda x, y: len(x) - len(y)",
                  where);
        folder_sort_free(&s);
        return OIMAP_ECONFIG;
    }
    *s_r = s;
    return 0;
}

void folder_sort_free(struct folder_sort **s)
{
    if (!*s)
        return;
    pyexpr_free(&(*s)->e);
    free(*s);
    *s = NULL;
}

/* cmp(a, b) as offlineimap's cmp-to-key wrapper reads it: the sign of a
 * number (a bool counts as 0/1).  Anything else fails the sort. */
static int sort_cmp(struct folder_sort *s, const char *a, const char *b)
{
    if (s->failed)
        return 0;
    struct pyval args[2] = {pyval_str(a), pyval_str(b)}, v;
    if (pyexpr_call(s->e, args, 2, &v) < 0) {
        log_error("%s (folders are synced in the default order)", pyexpr_errmsg(s->e));
        s->failed = true;
        return 0;
    }
    if (v.type == PYV_INT)
        return v.u.i < 0 ? -1 : v.u.i > 0;
    if (v.type == PYV_BOOL)
        return v.u.b;
    log_error("%s: gave a %s, not a number (folders are synced in the default order)",
              pyexpr_where(s->e), pyval_type_name(v.type));
    s->failed = true;
    return 0;
}

/* Bottom-up merge sort: stable, and the comparison is a user function that
 * need not be a consistent order, which qsort() does not allow. */
int folder_sort_order(struct folder_sort *s, const char *const *names, size_t n, size_t *order)
{
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    if (!s || n < 2)
        return 0;
    size_t *tmp = malloc(n * sizeof *tmp);
    if (!tmp)
        return -ENOMEM;
    s->failed = false;
    for (size_t w = 1; w < n && !s->failed; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] =
                    sort_cmp(s, names[order[j]], names[order[i]]) < 0 ? order[j++] : order[i++];
            while (i < mid)
                tmp[k++] = order[i++];
            while (j < hi)
                tmp[k++] = order[j++];
        }
        memcpy(order, tmp, n * sizeof *order);
    }
    free(tmp);
    if (s->failed) {
        for (size_t i = 0; i < n; i++)
            order[i] = i;
        return OIMAP_ECONFIG;
    }
    return 0;
}
