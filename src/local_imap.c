/* local_imap.c - an IMAP server as the local repository: its folder names
 * (local_imap.h). */
#include "local_imap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "imap_conn.h"
#include "imap_utf7.h"
#include "log.h"
#include "repo_maildir.h"

struct lister {
    char *prefix; /* the reference, UTF-8, "" for none */
    bool utf8;
    const char *account;
    char delim;
    struct repo_maildir_folder_list *list;
    size_t cap;
    int err;
    local_imap_list_cb cb;
    void *arg;
};

/* offlineimap's default reference is written '""': no reference. */
static char *reference_of(const char *ref)
{
    if (!ref || strcmp(ref, "\"\"") == 0)
        ref = "";
    char *p = strdup(ref);
    size_t n = p ? strlen(p) : 0;
    while (n && p[n - 1] == '/') /* "Archive/" is "Archive" */
        p[--n] = 0;
    return p;
}

static int list_push(struct lister *l, char *name)
{
    struct repo_maildir_folder_list *fl = l->list;
    if (fl->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 32;
        struct repo_maildir_folder_info *v = realloc(fl->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        fl->v = v;
        l->cap = cap;
    }
    fl->v[fl->n++] = (struct repo_maildir_folder_info){.name = name, .local = NULL};
    return 0;
}

/* A server name (UTF-8) -> the repository's name, or NULL: not ours, or not
 * representable (a level with '/' on a server whose delimiter is not '/'). */
static char *name_of(struct lister *l, const char *server, char delim)
{
    size_t pl = strlen(l->prefix);
    const char *rest = server;
    if (pl) {
        if (!delim || strncmp(server, l->prefix, pl) != 0 || server[pl] != delim || !server[pl + 1])
            return NULL;
        rest = server + pl + 1;
    }
    if (delim != '/' && strchr(rest, '/')) {
        log_warn("Account %s: local folder '%s' has '/' in a name whose delimiter is '%c'; "
                 "skipped",
                 l->account, server, delim ? delim : '-');
        return NULL;
    }
    char *v = NULL;
    if (l->utf8)
        v = strdup(rest);
    else if (imap_utf7_encode(rest, strlen(rest), &v) < 0)
        v = NULL;
    for (char *p = v; p && delim && *p; p++)
        if (*p == delim)
            *p = '/';
    return v;
}

static void on_entry(struct imap_conn *c, const struct imap_list_entry *e, void *arg)
{
    struct lister *l = arg;
    (void)c;
    if (e->delim && !l->delim)
        l->delim = e->delim;
    if (l->err || !*e->name || (e->flags & (IMAP_LIST_NOSELECT | IMAP_LIST_NONEXISTENT)))
        return;
    if (!e->decoded) {
        log_warn("Account %s: local folder name %s is not valid modified UTF-7; skipped",
                 l->account, e->raw);
        return;
    }
    char *v = name_of(l, e->name, e->delim);
    if (v && list_push(l, v) < 0) {
        free(v);
        l->err = -ENOMEM;
    }
}

static void on_listed(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct lister *l = arg;
    (void)c;
    if (st == 0 && l->err)
        st = l->err;
    if (st < 0) {
        repo_maildir_folder_list_free(&l->list);
        l->cb(st, NULL, 0, res && res->text && *res->text ? res->text : err_str(st), l->arg);
    } else {
        l->cb(0, l->list, l->delim, NULL, l->arg);
    }
    free(l->prefix);
    free(l);
}

int local_imap_list(struct imap_conn *c, const char *reference, bool utf8foldernames,
                    const char *account, local_imap_list_cb cb, void *arg)
{
    struct lister *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->prefix = reference_of(reference);
    l->list = calloc(1, sizeof *l->list);
    if (!l->prefix || !l->list) {
        free(l->prefix);
        free(l->list);
        free(l);
        return -ENOMEM;
    }
    l->utf8 = utf8foldernames;
    l->account = account;
    l->cb = cb;
    l->arg = arg;
    /* Everything, filtered here: a reference is interpreted differently by
     * different servers, a prefix compared by us is not. */
    int rc = imap_conn_list(c, "", "*", on_entry, on_listed, l);
    if (rc < 0) {
        repo_maildir_folder_list_free(&l->list);
        free(l->prefix);
        free(l);
    }
    return rc;
}

int local_imap_name(const char *name, char delim, const char *reference, bool utf8foldernames,
                    char **out_r)
{
    *out_r = NULL;
    char *u = NULL;
    if (utf8foldernames || imap_utf7_decode(name, strlen(name), &u) < 0)
        u = strdup(name); /* a name typed in UTF-8 is taken as it is */
    char *prefix = reference_of(reference);
    if (!u || !prefix) {
        free(u);
        free(prefix);
        return -ENOMEM;
    }
    int rc = 0;
    if ((!delim && (strchr(u, '/') || *prefix)) || (delim && delim != '/' && strchr(u, delim)))
        rc = OIMAP_ENAME;
    for (char *p = u; rc == 0 && delim && *p; p++)
        if (*p == '/')
            *p = delim;
    size_t cap = strlen(prefix) + strlen(u) + 2;
    char *out = rc == 0 ? malloc(cap) : NULL;
    char sep[2] = {*prefix ? delim : 0, 0};
    if (rc == 0 && !out)
        rc = -ENOMEM;
    if (out)
        snprintf(out, cap, "%s%s%s", prefix, sep, u);
    free(u);
    free(prefix);
    *out_r = out;
    return rc;
}
