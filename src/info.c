/* info.c - `oimap --info`: connect to every IMAP repository and describe it.
 *
 * All repositories are contacted at once on the loop; each one's report is
 * written into its own memory stream and printed in configuration order
 * when every connection has finished, so the output does not interleave.
 */
#include "info.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"
#include "imap_conn.h"
#include "log.h"

struct info_repo {
    const struct config_repo *repo;
    struct imap_conn_config *cc;
    struct imap_conn *c;
    FILE *out, *folders;
    char *out_buf, *folders_buf;
    size_t out_len, folders_len;
    unsigned n_folders;
    char delim;
    bool have_delim;
    int status;
    bool done, reported;
    unsigned *remaining;
};

static void repo_finish(struct info_repo *r)
{
    if (r->done)
        return;
    r->done = true;
    (*r->remaining)--;
}

static void report_error(struct info_repo *r, int code, const char *msg)
{
    if (r->reported)
        return;
    r->reported = true;
    r->status = code < 0 ? code : OIMAP_EPROTO;
    fprintf(r->out, "  error: %s\n", msg && *msg ? msg : err_str(code));
    repo_finish(r);
}

static void on_conn_error(struct imap_conn *c, int code, const char *msg, void *arg)
{
    (void)c;
    report_error(arg, code, msg);
}

static const struct imap_conn_handlers handlers = {.on_error = on_conn_error};

static void print_flags(FILE *f, const struct imap_list_entry *e)
{
    if (e->flags_text && *e->flags_text)
        fprintf(f, "  (%s)", e->flags_text);
    if (!e->decoded)
        fprintf(f, "  [not valid modified UTF-7, shown as sent]");
}

static void on_delim(struct imap_conn *c, const struct imap_list_entry *e, void *arg)
{
    (void)c;
    struct info_repo *r = arg;
    r->delim = e->delim;
    r->have_delim = true;
}

static void on_folder(struct imap_conn *c, const struct imap_list_entry *e, void *arg)
{
    (void)c;
    struct info_repo *r = arg;
    r->n_folders++;
    fprintf(r->folders, "    %s", e->name);
    if (strcmp(e->name, e->raw) != 0)
        fprintf(r->folders, "  [%s]", e->raw);
    print_flags(r->folders, e);
    fputc('\n', r->folders);
    if (!r->have_delim && e->delim) {
        r->delim = e->delim;
        r->have_delim = true;
    }
}

static void on_namespace(struct imap_conn *c, const struct imap_response *resp, void *arg)
{
    (void)c;
    struct info_repo *r = arg;
    /* three lists (personal, other users, shared), each NIL or ((prefix delim)...) */
    static const char *const kinds[] = {"personal", "other users", "shared"};
    const struct imap_token *t = resp->tokens;
    for (int k = 0; k < 3 && t; k++, t = imap_tok_next(t)) {
        fprintf(r->out, "  namespace %s:", kinds[k]);
        if (t->kind != IMAP_TOK_LIST) {
            fprintf(r->out, " none\n");
            continue;
        }
        for (const struct imap_token *ns = imap_tok_child(t); ns; ns = imap_tok_next(ns)) {
            const struct imap_token *pfx = imap_tok_child(ns);
            const struct imap_token *dl = imap_tok_next(pfx);
            fprintf(r->out, " \"%.*s\"", pfx && pfx->str ? (int)pfx->len : 0,
                    pfx && pfx->str ? pfx->str : "");
            if (dl && dl->kind != IMAP_TOK_NIL && dl->str)
                fprintf(r->out, " (delimiter %.*s)", (int)dl->len, dl->str);
        }
        fputc('\n', r->out);
    }
}

static void on_logout(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    (void)c, (void)st, (void)res;
    repo_finish(arg);
}

static void on_list_done(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    (void)c;
    struct info_repo *r = arg;
    if (st == OIMAP_ENO || st == OIMAP_EBAD) {
        fprintf(r->out, "  LIST failed: %s\n", res->text);
        r->status = st;
    }
}

static void on_cmd_done(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    (void)c, (void)st, (void)res, (void)arg;
}

static void on_open(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct info_repo *r = arg;
    const struct imap_conn_config *cc = r->cc;
    fprintf(r->out, "  greeting: %s\n", imap_conn_greeting(c));
    if (st < 0) {
        if (*imap_conn_caps_prelogin(c) || *imap_conn_caps(c))
            fprintf(r->out, "  capabilities: %s\n", imap_conn_caps(c));
        report_error(r, st, res->text);
        return;
    }
    const char *tls = imap_conn_tls_info(c);
    if (tls)
        fprintf(r->out, "  TLS session: %s; certificate %s\n", tls,
                cc->fingerprint_pinned ? "pinned by cert_fingerprint"
                                       : "verified (CA and host name)");
    fprintf(r->out, "  capabilities before login: %s\n", imap_conn_caps_prelogin(c));
    fprintf(r->out, "  capabilities after login: %s\n", imap_conn_caps(c));
    fprintf(r->out, "  logged in as: %s\n", cc->user ? cc->user : "(preauthenticated)");
    if (imap_conn_compressed(c))
        fprintf(r->out, "  compression: DEFLATE\n");
    int rc = imap_conn_list(c, "", "", on_delim, on_cmd_done, r);
    if (rc == 0 && imap_conn_has(c, "NAMESPACE"))
        rc = imap_conn_command(c, "NAMESPACE", "NAMESPACE", on_namespace, on_cmd_done, r);
    if (rc == 0)
        rc = imap_conn_list(c, NULL, "*", on_folder, on_list_done, r);
    if (rc == 0)
        rc = imap_conn_logout(c, on_logout, r);
    if (rc < 0)
        report_error(r, rc, err_str(rc));
}

static const char *tls_mode_text(const struct imap_conn_config *cc)
{
    switch (cc->tls_mode) {
    case IMAP_TLS_IMPLICIT:
        return "implicit TLS (ssl = yes)";
    case IMAP_TLS_STARTTLS:
        return "STARTTLS, required (ssl = no, starttls = yes)";
    default:
        return "none: plain IMAP (ssl = no, starttls = no), the password travels in clear text";
    }
}

static void start_repo(uv_loop_t *loop, struct info_repo *r)
{
    const struct config_repo *repo = r->repo;
    char err[512] = "";
    int rc = imap_conn_config_new(repo, &r->cc, err, sizeof err);
    if (rc == 0 && r->cc->tunnel) {
        /* A tunnel is the transport: no host, no TLS, and whether a login
         * happens at all depends on the kind of tunnel. */
        fprintf(r->out, "Server of [Repository %s]: through %s: %s\n", repo->name,
                r->cc->tunnel_preauth ? "preauthtunnel" : "transporttunnel", r->cc->tunnel);
    } else {
        fprintf(r->out, "Server of [Repository %s]: %s:%d\n", repo->name,
                repo->remotehost ? repo->remotehost : "(remotehost not set)",
                config_repo_port(repo));
    }
    if (rc < 0) {
        report_error(r, rc, *err ? err : err_str(rc));
        return;
    }
    if (r->cc->tunnel && r->cc->tunnel_preauth)
        fprintf(r->out, "  TLS: none (the command's pipes); no login: the tunnel is "
                        "authenticated already\n");
    else if (r->cc->tunnel)
        fprintf(r->out, "  TLS: none (the command's pipes)\n");
    else
        fprintf(r->out, "  TLS: %s\n", tls_mode_text(r->cc));
    if (!r->cc->tunnel && repo->proxy.type != PROXY_NONE)
        fprintf(r->out,
                strchr(repo->proxy.host, ':') ? "  proxy: %s [%s]:%u\n" : "  proxy: %s %s:%u\n",
                proxy_type_name(repo->proxy.type), repo->proxy.host, repo->proxy.port);
    if (r->cc->tls_mode != IMAP_TLS_NONE && repo->cert_fingerprint.n)
        fprintf(r->out, "  cert_fingerprint: %zu pin(s)\n", repo->cert_fingerprint.n);
    else if (r->cc->tls_mode != IMAP_TLS_NONE)
        fprintf(r->out, "  CA certificates: %s\n",
                repo->sslcacertfile ? repo->sslcacertfile : "(system default)");
    if (!(r->cc->tunnel && r->cc->tunnel_preauth))
        fprintf(r->out, "  user: %s, password: %s\n", r->cc->user ? r->cc->user : "(none)",
                r->cc->pass ? "********" : "(none)");
    rc = imap_conn_open(loop, r->cc, &handlers, on_open, r, &r->c);
    if (rc < 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s:%u: cannot connect: %s", r->cc->host, r->cc->port,
                 err_str(rc));
        report_error(r, rc, msg);
    }
}

int info_run(uv_loop_t *loop, const struct config *cfg, FILE *out)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_repos; i++)
        if (cfg->repos[i].type == CONFIG_REPO_IMAP || cfg->repos[i].type == CONFIG_REPO_GMAIL)
            n++;
    if (n == 0) {
        fprintf(out, "No IMAP repository in the selected accounts.\n");
        return 0;
    }
    struct info_repo *rs = calloc(n, sizeof *rs);
    if (!rs)
        return -ENOMEM;
    unsigned remaining = (unsigned)n;
    size_t k = 0;
    int ret = 0;
    for (size_t i = 0; i < cfg->n_repos; i++) {
        const struct config_repo *repo = &cfg->repos[i];
        if (repo->type != CONFIG_REPO_IMAP && repo->type != CONFIG_REPO_GMAIL)
            continue;
        struct info_repo *r = &rs[k++];
        r->repo = repo;
        r->remaining = &remaining;
        r->out = open_memstream(&r->out_buf, &r->out_len);
        r->folders = open_memstream(&r->folders_buf, &r->folders_len);
        if (!r->out || !r->folders) {
            if (r->out)
                fclose(r->out);
            if (r->folders)
                fclose(r->folders);
            r->out = r->folders = NULL;
            r->done = true;
            remaining--;
            ret = -ENOMEM;
            continue;
        }
        start_repo(loop, r);
    }
    while (remaining > 0)
        uv_run(loop, UV_RUN_ONCE);
    for (size_t i = 0; i < n; i++)
        imap_conn_close(&rs[i].c);
    /* let the handles close so that the connections are freed */
    for (int i = 0; i < 10 && uv_loop_alive(loop); i++)
        uv_run(loop, UV_RUN_NOWAIT);

    for (size_t i = 0; i < n; i++) {
        struct info_repo *r = &rs[i];
        if (!r->out)
            continue;
        if (r->status == 0) {
            if (r->have_delim)
                fprintf(r->out, "  hierarchy delimiter: %s%c%s\n", r->delim ? "\"" : "",
                        r->delim ? r->delim : '-', r->delim ? "\"" : " (flat, NIL)");
            fprintf(r->out, "  folders (%u):\n", r->n_folders);
        }
        fclose(r->folders);
        fclose(r->out);
        fputs(r->out_buf, out);
        if (r->status == 0)
            fputs(r->folders_buf, out);
        fputc('\n', out);
        free(r->out_buf);
        free(r->folders_buf);
        if (r->status < 0 && ret == 0)
            ret = r->status;
        imap_conn_config_free(&r->cc);
    }
    fflush(out);
    free(rs);
    return ret;
}
