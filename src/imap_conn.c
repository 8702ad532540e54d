/* imap_conn.c - one IMAP client connection as a state machine on the uv loop.
 *
 * Layout: commands are built into a struct cmd (text parts, literals,
 * secrets), queued in submission order and written by pump_send() from a
 * uv_idle callback (so that no user callback can run inside a submitting
 * call).  Responses come from net's on_read through imap_parse into
 * on_response(), which routes tagged completions by tag and untagged data to
 * the command that asked for it or to the connection's handlers.  Every
 * failure goes through conn_fail().  See imap_conn.h for the contract.
 */
#include "imap_conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mbedtls/base64.h>

#include "config.h"
#include "cred.h"
#include "err.h"
#include "imap_utf7.h"
#include "log.h"
#include "tls.h"
#include "zstream.h"

#define MAX_PARTS 12                   /* of an ordinary command; a MULTIAPPEND has 2 per message */
#define WRITE_WATERMARK (256u * 1024u) /* stop writing above this many queued bytes */
#define WRITE_CHUNK (64u * 1024u)
#define NONSYNC_MAX (1024u * 1024u) /* LITERAL+ up to this size, else wait for '+' */
#define LITERAL_MINUS_MAX 4096u     /* RFC 7888 LITERAL- */
#define DEFAULT_IN_FLIGHT 128u

enum part_kind { PART_TEXT, PART_MEM, PART_SRC };

struct part {
    uint8_t kind;
    bool wait;   /* a '+' continuation must come before this part is written */
    bool secret; /* shown as ******** in the -d imap log */
    const char *p;
    size_t off; /* builder: offset of p in the command's buffer (TEXT/MEM inline) */
    uint64_t len;
    bool ext; /* MEM: p points to caller memory, not into the buffer */
    /* SRC: the literal is pulled from read(read_arg, ...) */
    ssize_t (*read)(void *arg, char *buf, size_t cap);
    void *read_arg;
};

enum cmd_kind {
    K_GENERIC,
    K_CAPABILITY,
    K_STARTTLS,
    K_COMPRESS,
    K_AUTH,
    K_ENABLE,
    K_LIST,
    K_SELECT,
    K_FETCH_LIST,
    K_FETCH_BODY,
    K_APPEND,
    K_SEARCH,
    K_IDLE,
    K_LOGOUT,
};

struct cmd {
    struct cmd *next, *prev;
    uint32_t tag;
    enum cmd_kind kind;
    bool started, written, barrier, got_cont;
    bool answered;          /* APPEND: refused before it was sent completely (see answer_early) */
    int ans_st;             /* ... its status */
    struct imap_result ans; /* ... its result, strings in ans_buf */
    char *ans_buf;
    unsigned n_parts, part_idx;
    uint64_t part_off;
    struct part *parts; /* small, or the heap for a MULTIAPPEND */
    struct part small[MAX_PARTS];
    const char *cont_reply; /* AUTHENTICATE: answer to an error challenge */
    imap_done_cb done;
    void *arg;
    char *set; /* UID set, for routing FETCH responses */
    char *display;
    union {
        struct {
            imap_list_cb cb;
            imap_status_cb status_cb;
        } list;
        struct {
            imap_fetch_cb cb;
        } fl;
        struct imap_body_cbs fb;
        struct {
            struct imap_folder_info fi;
        } sel;
        struct {
            size_t n_msgs; /* > 1: a MULTIAPPEND */
        } app;
        struct {
            uint32_t *uids;
            size_t n, cap;
        } search;
        struct {
            imap_data_cb cb;
            char kw[32];
        } gen;
    } u;
    char *buf;
};

#define ENABLED_CONDSTORE 1u
#define ENABLED_QRESYNC 2u

struct imap_conn {
    uv_loop_t *loop;
    const struct imap_conn_config *cfg;
    const struct imap_conn_handlers *h;
    void *arg;
    imap_done_cb on_open;
    struct net_stream *s;
    struct imap_parser parser;
    uv_idle_t pump_idle;
    enum imap_conn_state state;
    int refs;
    bool closing, failed, open_done, logout_sent, tls_pending, idle_done_pending, idle_done_sent;
    bool compress_pending; /* COMPRESS's OK parsed: deflate starts after it */
    int err;
    char errmsg[512];
    uint32_t next_tag;
    struct cmd *head, *tail, *send_cur;
    unsigned in_flight;
    char *caps, *caps_pre, *greeting;
    bool caps_known;
    unsigned enabled;
    struct imap_folder_info folder;
    struct cmd *body_cmd; /* the fetch whose literal is streaming now */
    const char *mech;     /* chosen authentication mechanism */
    uv_work_t work;
    char *token; /* from oauth2_access_token_cmd or the token URL */
    int token_rc;
    bool token_refreshed;           /* token came from the token URL (oauth2.h) */
    struct oauth2_wait *oauth_wait; /* a token request we wait for */
    char rbuf[2048];
};

static const char *const default_mechs[] = {"GSSAPI", "XOAUTH2", "CRAM-MD5", "PLAIN", "LOGIN"};

static void pump_send(struct imap_conn *c);
static void schedule_pump(struct imap_conn *c);
static void on_caps(struct imap_conn *c, int st, const struct imap_result *res, void *arg);

/* ---- references and failure --------------------------------------------- */

static void conn_free(struct imap_conn *c)
{
    imap_parser_deinit(&c->parser);
    free(c->caps);
    free(c->caps_pre);
    free(c->greeting);
    cred_free(&c->token);
    free(c);
}

static void unref(struct imap_conn *c)
{
    if (--c->refs == 0)
        conn_free(c);
}

static void cmd_free(struct cmd *cmd)
{
    if (!cmd)
        return;
    if (cmd->kind == K_SEARCH)
        free(cmd->u.search.uids);
    /* the buffer may hold a password or a token */
    for (unsigned i = 0; i < cmd->n_parts; i++)
        if (cmd->parts[i].secret && !cmd->parts[i].ext && cmd->parts[i].kind != PART_SRC)
            memset((char *)cmd->parts[i].p, 0, (size_t)cmd->parts[i].len);
    free(cmd->buf);
    free(cmd->display);
    free(cmd->set);
    free(cmd->ans_buf);
    if (cmd->parts != cmd->small)
        free(cmd->parts);
    free(cmd);
}

static void unlink_cmd(struct imap_conn *c, struct cmd *cmd)
{
    if (c->send_cur == cmd)
        c->send_cur = cmd->next;
    if (cmd->prev)
        cmd->prev->next = cmd->next;
    else
        c->head = cmd->next;
    if (cmd->next)
        cmd->next->prev = cmd->prev;
    else
        c->tail = cmd->prev;
    cmd->next = cmd->prev = NULL;
    if (cmd->started && c->in_flight > 0)
        c->in_flight--;
    if (c->body_cmd == cmd)
        c->body_cmd = NULL;
}

static void on_net_closed(void *arg)
{
    unref(arg);
}

static void update_expect(struct imap_conn *c)
{
    if (!c->s || c->failed)
        return;
    bool waiting =
        c->state == IMAP_CONN_GREETING || (c->in_flight > 0 && c->state != IMAP_CONN_IDLE);
    if (c->state == IMAP_CONN_IDLE && c->idle_done_sent)
        waiting = true;
    net_expect_data(c->s, waiting);
}

/* The single failure path: complete everything with code, then on_error. */
static void conn_failv(struct imap_conn *c, int code, bool quiet, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static void conn_failv(struct imap_conn *c, int code, bool quiet, const char *fmt, va_list ap)
{
    if (c->failed || c->closing)
        return;
    c->failed = true;
    c->err = code;
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    c->state = IMAP_CONN_CLOSED;
    c->body_cmd = NULL;
    LOG_DEBUG(LOGC_IMAP, "%s: connection failed: %s", c->cfg->host, c->errmsg);
    if (c->s) {
        struct net_stream *s = c->s;
        c->s = NULL;
        net_close(s, on_net_closed);
    }
    c->refs++;
    struct imap_result res = {
        .status = IMAP_STATUS_NONE, .code_name = "", .code_args = "", .text = c->errmsg};
    if (!c->open_done) {
        c->open_done = true;
        if (c->on_open)
            c->on_open(c, code, &res, c->arg);
    }
    while (c->head && !c->closing) {
        struct cmd *cmd = c->head;
        unlink_cmd(c, cmd);
        if (cmd->done)
            cmd->done(c, cmd->kind == K_LOGOUT && quiet ? 0 : code, &res, cmd->arg);
        cmd_free(cmd);
    }
    if (!c->closing && !quiet && c->h && c->h->on_error)
        c->h->on_error(c, code, c->errmsg, c->arg);
    unref(c);
}

static void conn_fail(struct imap_conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conn_fail(struct imap_conn *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    conn_failv(c, code, false, fmt, ap);
    va_end(ap);
}

static void conn_fail_quiet(struct imap_conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conn_fail_quiet(struct imap_conn *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    conn_failv(c, code, true, fmt, ap);
    va_end(ap);
}

static const char *peer(const struct imap_conn *c)
{
    static __thread char buf[300];
    if (c->cfg->tunnel && c->s)
        return net_peer(c->s);
    snprintf(buf, sizeof buf, strchr(c->cfg->host, ':') ? "[%s]:%u" : "%s:%u", c->cfg->host,
             c->cfg->port);
    return buf;
}

/* ---- capabilities -------------------------------------------------------- */

static bool has_word(const char *list, const char *w)
{
    if (!list)
        return false;
    size_t wl = strlen(w);
    for (const char *p = list; *p;) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        if ((size_t)(e - p) == wl && strncasecmp(p, w, wl) == 0)
            return true;
        p = e;
    }
    return false;
}

static void set_caps(struct imap_conn *c, const char *s, size_t len)
{
    char *n = malloc(len + 1);
    if (!n)
        return;
    memcpy(n, s, len);
    n[len] = 0;
    free(c->caps);
    c->caps = n;
    c->caps_known = true;
}

static void set_caps_tokens(struct imap_conn *c, const struct imap_response *r)
{
    size_t len = 0;
    for (const struct imap_token *t = r->tokens; t; t = imap_tok_next(t))
        len += t->len + 1;
    char *n = malloc(len + 1);
    if (!n)
        return;
    size_t o = 0;
    for (const struct imap_token *t = r->tokens; t; t = imap_tok_next(t)) {
        if (!t->str)
            continue;
        if (o)
            n[o++] = ' ';
        memcpy(n + o, t->str, t->len);
        o += t->len;
    }
    n[o] = 0;
    free(c->caps);
    c->caps = n;
    c->caps_known = true;
}

bool imap_conn_has(const struct imap_conn *c, const char *cap)
{
    return c && has_word(c->caps, cap);
}

bool imap_conn_enabled(const struct imap_conn *c, const char *ext)
{
    if (!c)
        return false;
    if (strcasecmp(ext, "QRESYNC") == 0)
        return c->enabled & ENABLED_QRESYNC;
    if (strcasecmp(ext, "CONDSTORE") == 0)
        return c->enabled & (ENABLED_CONDSTORE | ENABLED_QRESYNC);
    return false;
}

/* ---- command building ---------------------------------------------------- */

struct builder {
    struct imap_conn *c;
    char *b;
    size_t len, cap;
    struct part small[MAX_PARTS];
    struct part *parts; /* small, or the heap when a MULTIAPPEND needs more */
    unsigned n, pcap, pmax;
    size_t text_start;
    bool text_secret;
    int err;
};

static void b_reserve(struct builder *b, size_t more)
{
    if (b->err || b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 128;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *n = realloc(b->b, cap);
    if (!n) {
        b->err = -ENOMEM;
        return;
    }
    b->b = n;
    b->cap = cap;
}

static void b_raw(struct builder *b, const char *s, size_t len)
{
    b_reserve(b, len);
    if (b->err)
        return;
    memcpy(b->b + b->len, s, len);
    b->len += len;
    b->b[b->len] = 0;
}

static void b_text(struct builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void b_text(struct builder *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->err = b->err ? b->err : OIMAP_ETOOBIG;
        return;
    }
    b_raw(b, tmp, (size_t)n);
}

/* A new part (zeroed), or NULL with b->err set: at most b->max parts. */
static struct part *b_part(struct builder *b)
{
    if (b->err)
        return NULL;
    if (b->n == b->pcap) {
        if (b->pcap >= b->pmax) {
            b->err = OIMAP_ETOOBIG;
            return NULL;
        }
        unsigned cap = b->pcap * 2 < b->pmax ? b->pcap * 2 : b->pmax;
        struct part *n = malloc(cap * sizeof *n);
        if (!n) {
            b->err = -ENOMEM;
            return NULL;
        }
        memcpy(n, b->parts, b->n * sizeof *n);
        if (b->parts != b->small)
            free(b->parts);
        b->parts = n;
        b->pcap = cap;
    }
    struct part *p = &b->parts[b->n++];
    memset(p, 0, sizeof *p);
    return p;
}

/* Close the text part in progress (if any bytes). */
static void b_flush_text(struct builder *b)
{
    if (b->err || b->len == b->text_start)
        return;
    struct part *p = b_part(b);
    if (!p)
        return;
    *p = (struct part){.kind = PART_TEXT,
                       .off = b->text_start,
                       .len = b->len - b->text_start,
                       .secret = b->text_secret};
    b->text_start = b->len;
}

static void b_secret(struct builder *b, bool on)
{
    b_flush_text(b);
    b->text_secret = on;
}

static bool nonsync_ok(const struct imap_conn *c, uint64_t size)
{
    if (imap_conn_has(c, "LITERAL+"))
        return size <= NONSYNC_MAX;
    if (imap_conn_has(c, "LITERAL-"))
        return size <= LITERAL_MINUS_MAX;
    return false;
}

/* A literal header "{n}" / "{n+}" and its data part (a copy, or external
 * memory, or a pulled source when data is NULL and src is set). */
static struct part *b_literal(struct builder *b, const char *data, uint64_t len, bool copy,
                              bool src, bool secret)
{
    bool ns = nonsync_ok(b->c, len);
    b_text(b, "{%llu%s}\r\n", (unsigned long long)len, ns ? "+" : "");
    b_flush_text(b);
    struct part *p = b_part(b);
    if (!p)
        return NULL;
    *p =
        (struct part){.kind = src ? PART_SRC : PART_MEM, .wait = !ns, .secret = secret, .len = len};
    if (copy) {
        size_t off = b->len;
        b_raw(b, data, (size_t)len);
        p->off = off;
    } else {
        p->p = data;
        p->ext = true;
    }
    b->text_start = b->len;
    return p;
}

/* An astring: quoted when possible, else a literal. */
static void b_astring(struct builder *b, const char *s, size_t len, bool secret)
{
    if (secret)
        b_secret(b, true);
    if (imap_quotable(s, len, false)) {
        size_t need = imap_quote_size(len);
        b_reserve(b, need);
        if (!b->err) {
            int n = imap_quote(b->b + b->len, need, s, len, false);
            if (n < 0)
                b->err = n;
            else
                b->len += (size_t)n;
        }
    } else {
        b_literal(b, s, len, true, false, secret);
    }
    if (secret)
        b_secret(b, false);
}

static void b_mailbox(struct builder *b, const char *utf8)
{
    char *enc = NULL;
    int rc = imap_utf7_encode(utf8, strlen(utf8), &enc);
    if (rc < 0) {
        b->err = b->err ? b->err : rc;
        return;
    }
    b_astring(b, enc, strlen(enc), false);
    free(enc);
}

static bool valid_set(const char *set)
{
    if (!set || !*set)
        return false;
    size_t pos = 0, len = strlen(set);
    uint32_t lo, hi;
    int rc;
    while ((rc = imap_seqset_next(set, len, &pos, &lo, &hi)) == 1)
        ;
    return rc == 0 && strlen(set) < 4096 && !strpbrk(set, " \r\n()");
}

static bool set_contains(const char *set, uint32_t uid)
{
    if (!set)
        return false;
    size_t pos = 0, len = strlen(set);
    uint32_t lo, hi;
    while (imap_seqset_next(set, len, &pos, &lo, &hi) == 1)
        if (uid >= lo && uid <= hi)
            return true;
    return false;
}

static char *make_display(const struct cmd *cmd)
{
    /* A MULTIAPPEND shows its first message, then how many in all. */
    bool multi = cmd->kind == K_APPEND && cmd->u.app.n_msgs > 1;
    unsigned shown = multi && cmd->n_parts > 2 ? 2 : cmd->n_parts;
    size_t cap = 128;
    for (unsigned i = 0; i < shown; i++)
        cap += cmd->parts[i].kind == PART_TEXT ? (size_t)cmd->parts[i].len : 32;
    char *d = malloc(cap);
    if (!d)
        return NULL;
    size_t o = 0;
    bool last_secret = false;
    for (unsigned i = 0; i < shown; i++) {
        const struct part *p = &cmd->parts[i];
        if (p->secret) {
            if (!last_secret)
                o += (size_t)snprintf(d + o, cap - o, "********");
            last_secret = true;
            continue;
        }
        last_secret = false;
        if (p->kind == PART_TEXT) {
            for (uint64_t k = 0; k < p->len; k++)
                if (p->p[k] != '\r' && p->p[k] != '\n')
                    d[o++] = p->p[k];
            if (p->len && p->p[p->len - 1] == '\n' && i + 1 < cmd->n_parts)
                d[o++] = ' '; /* a line break inside the command (literal, SASL) */
        } else {
            o += (size_t)snprintf(d + o, cap - o, "{%llu bytes}", (unsigned long long)p->len);
        }
    }
    if (shown < cmd->n_parts) {
        uint64_t bytes = 0;
        for (unsigned i = 0; i < cmd->n_parts; i++)
            bytes += cmd->parts[i].kind == PART_TEXT ? 0 : cmd->parts[i].len;
        o += (size_t)snprintf(d + o, cap - o, " ... (MULTIAPPEND: %zu messages, %llu bytes)",
                              cmd->u.app.n_msgs, (unsigned long long)bytes);
    }
    d[o] = 0;
    return d;
}

/* Turn a finished builder into a queued command.  Returns 0 or a code
 * (then nothing is queued and the builder's memory is freed). */
static int submit(struct imap_conn *c, struct builder *b, struct cmd *cmd)
{
    b_raw(b, "\r\n", 2);
    b_flush_text(b);
    if (b->err) {
        int e = b->err;
        if (b->b)
            memset(b->b, 0, b->len);
        free(b->b);
        if (b->parts != b->small)
            free(b->parts);
        free(cmd->set);
        free(cmd);
        return e;
    }
    cmd->buf = b->b;
    cmd->n_parts = b->n;
    /* A MULTIAPPEND's heap array becomes the command's; small ones are
     * copied into the command by the loop. */
    cmd->parts = b->parts == b->small ? cmd->small : b->parts;
    for (unsigned i = 0; i < b->n; i++) {
        cmd->parts[i] = b->parts[i];
        if (!cmd->parts[i].ext && cmd->parts[i].kind != PART_SRC)
            cmd->parts[i].p = cmd->buf + cmd->parts[i].off;
    }
    if (log_debug_on(LOGC_IMAP))
        cmd->display = make_display(cmd);
    cmd->prev = c->tail;
    if (c->tail)
        c->tail->next = cmd;
    else
        c->head = cmd;
    c->tail = cmd;
    if (!c->send_cur)
        c->send_cur = cmd;
    /* A command submitted while idling ends the IDLE first. */
    for (struct cmd *i = c->head; i; i = i->next)
        if (i->kind == K_IDLE && i != cmd)
            c->idle_done_pending = true;
    schedule_pump(c);
    return 0;
}

static struct cmd *cmd_begin(struct imap_conn *c, struct builder *b, enum cmd_kind kind,
                             imap_done_cb done, void *arg)
{
    struct cmd *cmd = calloc(1, sizeof *cmd);
    memset(b, 0, sizeof *b);
    b->c = c;
    b->parts = b->small;
    b->pcap = b->pmax = MAX_PARTS;
    if (!cmd) {
        b->err = -ENOMEM;
        return NULL;
    }
    cmd->kind = kind;
    cmd->done = done;
    cmd->arg = arg;
    cmd->tag = ++c->next_tag;
    b_text(b, "A%u ", cmd->tag);
    return cmd;
}

/* Public commands need an open, living connection. */
static int usable(const struct imap_conn *c)
{
    if (!c || c->failed || c->closing || !c->open_done || c->logout_sent)
        return OIMAP_ECANCELED;
    return 0;
}

static int simple_cmd(struct imap_conn *c, enum cmd_kind kind, const char *text, imap_done_cb done,
                      void *arg)
{
    struct builder b;
    struct cmd *cmd = cmd_begin(c, &b, kind, done, arg);
    if (!cmd)
        return -ENOMEM;
    b_raw(&b, text, strlen(text));
    return submit(c, &b, cmd);
}

/* ---- writing ----------------------------------------------------------- */

static void on_pump_idle(uv_idle_t *h)
{
    struct imap_conn *c = h->data;
    uv_idle_stop(h);
    pump_send(c);
}

static void schedule_pump(struct imap_conn *c)
{
    if (!c->closing && !uv_is_active((uv_handle_t *)&c->pump_idle))
        uv_idle_start(&c->pump_idle, on_pump_idle);
}

static void log_client(struct imap_conn *c, const char *what)
{
    LOG_DEBUG(LOGC_IMAP, "%s C: %s", c->cfg->host, what);
}

/* net_write() failed.  When the stream itself already failed (a reset read
 * before our write), its message says what happened; "not connected" would
 * not. */
static void write_failed(struct imap_conn *c, int rc)
{
    const char *why = net_error_msg(c->s);
    if (rc == UV_ENOTCONN && why)
        conn_fail(c, rc, "%s", why);
    else
        conn_fail(c, rc, "%s: write failed: %s", peer(c), err_str(rc));
}

/* Write (part of) a part: 1 = complete, 0 = later (backpressure or no data
 * yet), negative = failure. */
static int write_part(struct imap_conn *c, struct cmd *cmd, struct part *p)
{
    while (cmd->part_off < p->len) {
        if (p->kind != PART_TEXT && net_write_queued(c->s) > WRITE_WATERMARK)
            return 0;
        uint64_t left = p->len - cmd->part_off;
        size_t n = left > WRITE_CHUNK ? WRITE_CHUNK : (size_t)left;
        int rc;
        if (p->kind == PART_SRC) {
            char tmp[WRITE_CHUNK];
            ssize_t got = p->read(p->read_arg, tmp, n);
            if (c->failed || c->closing)
                return OIMAP_ECANCELED;
            if (got == 0)
                return 0;
            if (got < 0 || (size_t)got > n) {
                conn_fail(c, got < 0 ? (int)got : OIMAP_EPROTO,
                          "%s: APPEND: the message could not be read (%s); the connection is "
                          "dropped since a literal cannot be abandoned",
                          peer(c), err_str(got < 0 ? (int)got : OIMAP_EPROTO));
                return OIMAP_ECANCELED;
            }
            rc = net_write(c->s, tmp, (size_t)got);
            n = (size_t)got;
        } else {
            rc = net_write(c->s, p->p + cmd->part_off, n);
        }
        if (rc < 0) {
            write_failed(c, rc);
            return rc;
        }
        cmd->part_off += n;
    }
    return 1;
}

static void pump_send(struct imap_conn *c)
{
    if (!c->s || c->failed || c->closing || c->tls_pending)
        return;
    c->refs++;
    struct cmd *cmd;
    unsigned max = c->cfg->max_in_flight ? c->cfg->max_in_flight : DEFAULT_IN_FLIGHT;
    while ((cmd = c->send_cur) && !c->failed && !c->closing) {
        if (net_write_queued(c->s) > WRITE_WATERMARK)
            break; /* on_drain resumes */
        if (!cmd->started) {
            if (c->in_flight >= max)
                break;
            cmd->started = true;
            c->in_flight++;
            if (cmd->kind == K_LOGOUT) {
                c->logout_sent = true;
                c->state = IMAP_CONN_LOGOUT;
            }
            if (cmd->display)
                log_client(c, cmd->display);
        }
        if (cmd->part_idx == cmd->n_parts) {
            cmd->written = true;
            if (cmd->answered) {
                /* an early refusal (answer_early): now it is complete */
                unlink_cmd(c, cmd);
                if (cmd->done)
                    cmd->done(c, cmd->ans_st, &cmd->ans, cmd->arg);
                cmd_free(cmd);
                continue;
            }
            if (cmd->kind == K_IDLE && c->state == IMAP_CONN_IDLE && c->idle_done_pending &&
                !c->idle_done_sent) {
                c->idle_done_sent = true;
                log_client(c, "DONE");
                int rc = net_write(c->s, "DONE\r\n", 6);
                if (rc < 0)
                    write_failed(c, rc);
            }
            if (cmd->barrier)
                break; /* STARTTLS, AUTHENTICATE, IDLE: until their tagged answer */
            c->send_cur = cmd->next;
            continue;
        }
        struct part *p = &cmd->parts[cmd->part_idx];
        if (p->wait && !cmd->got_cont)
            break;
        int rc = write_part(c, cmd, p);
        if (rc <= 0)
            break;
        cmd->part_idx++;
        cmd->part_off = 0;
        if (p->wait)
            cmd->got_cont = false;
    }
    update_expect(c);
    unref(c);
}

static void on_net_drain(struct net_stream *s, void *arg)
{
    (void)s;
    pump_send(arg);
}

void imap_conn_append_ready(struct imap_conn *c)
{
    if (c && !c->failed && !c->closing)
        schedule_pump(c);
}

/* ---- results ------------------------------------------------------------ */

static void make_result(struct imap_conn *c, struct imap_result *res, const struct imap_response *r)
{
    memset(res, 0, sizeof *res);
    res->status = r->status;
    res->code = r->code.id;
    char *o = c->rbuf, *end = c->rbuf + sizeof c->rbuf;
    const char *parts[3] = {r->code.name, r->code.args, r->text};
    size_t lens[3] = {r->code.name_len, r->code.args_len, r->text_len};
    const char **outs[3] = {&res->code_name, &res->code_args, &res->text};
    for (int i = 0; i < 3; i++) {
        size_t n = parts[i] ? lens[i] : 0;
        size_t room = (size_t)(end - o) - 1;
        if (i < 2 && n > room / 2)
            n = room / 2;
        if (n > room)
            n = room;
        if (n)
            memcpy(o, parts[i], n);
        o[n] = 0;
        *outs[i] = o;
        o += n + 1;
    }
}

static int status_code(enum imap_status st)
{
    return st == IMAP_STATUS_OK ? 0 : st == IMAP_STATUS_NO ? OIMAP_ENO : OIMAP_EBAD;
}

/* ---- -d imap: server lines ------------------------------------------------ */

static void tok_str(char *d, size_t cap, size_t *o, const struct imap_token *t, unsigned depth)
{
    for (; t && *o + 40 < cap; t = imap_tok_next(t)) {
        if (*o && d[*o - 1] != '(' && d[*o - 1] != ' ')
            d[(*o)++] = ' ';
        switch (t->kind) {
        case IMAP_TOK_LIST:
            d[(*o)++] = '(';
            if (depth < 16)
                tok_str(d, cap, o, imap_tok_child(t), depth + 1);
            if (*o + 2 < cap)
                d[(*o)++] = ')';
            break;
        case IMAP_TOK_LITERAL:
        case IMAP_TOK_STREAMED:
            *o += (size_t)snprintf(d + *o, cap - *o, "{%llu bytes}", (unsigned long long)t->num);
            break;
        case IMAP_TOK_QUOTED:
            *o += (size_t)snprintf(d + *o, cap - *o, "\"%.*s\"",
                                   (int)(t->len < cap - *o - 4 ? t->len : cap - *o - 4), t->str);
            break;
        default:
            *o += (size_t)snprintf(d + *o, cap - *o, "%.*s",
                                   (int)(t->len < cap - *o - 2 ? t->len : cap - *o - 2),
                                   t->str ? t->str : "");
        }
        if (*o >= cap)
            *o = cap - 1;
    }
}

static void log_server(struct imap_conn *c, const struct imap_response *r)
{
    char d[1024];
    size_t o = 0;
    if (r->kind == IMAP_RESP_CONTINUATION) {
        o = (size_t)snprintf(d, sizeof d, "+ %.*s", (int)(r->text_len > 900 ? 900 : r->text_len),
                             r->text ? r->text : "");
    } else if (r->status != IMAP_STATUS_NONE) {
        static const char *const names[] = {"", "OK", "NO", "BAD", "PREAUTH", "BYE"};
        o = (size_t)snprintf(d, sizeof d, "%.*s %s%s%.*s%s%.*s%s%.*s",
                             r->kind == IMAP_RESP_TAGGED ? (int)r->tag_len : 1,
                             r->kind == IMAP_RESP_TAGGED ? r->tag : "*", names[r->status],
                             r->code.id ? " [" : " ",
                             (int)(r->code.name_len > 100 ? 100 : r->code.name_len),
                             r->code.name ? r->code.name : "", r->code.args_len ? " " : "",
                             (int)(r->code.args_len > 400 ? 400 : r->code.args_len),
                             r->code.args ? r->code.args : "", r->code.id ? "] " : "",
                             (int)(r->text_len > 400 ? 400 : r->text_len), r->text ? r->text : "");
    } else {
        if (r->has_num)
            o = (size_t)snprintf(d, sizeof d, "* %u %.*s", r->num, (int)r->keyword_len, r->keyword);
        else
            o = (size_t)snprintf(d, sizeof d, "* %.*s",
                                 (int)(r->keyword_len > 64 ? 64 : r->keyword_len),
                                 r->keyword ? r->keyword : "");
        if (o < sizeof d && r->tokens) {
            d[o++] = ' ';
            tok_str(d, sizeof d - 8, &o, r->tokens, 0);
            if (o >= sizeof d - 48)
                o += (size_t)snprintf(d + o, sizeof d - o, " ...");
        }
    }
    if (o >= sizeof d)
        o = sizeof d - 1;
    d[o] = 0;
    LOG_DEBUG(LOGC_IMAP, "%s S: %s", c->cfg->host, d);
}

/* ---- the open sequence -------------------------------------------------- */

static void internal_cmd(struct imap_conn *c, enum cmd_kind kind, const char *text,
                         imap_done_cb done)
{
    int rc = simple_cmd(c, kind, text, done, NULL);
    if (rc < 0)
        conn_fail(c, rc, "%s: %s", peer(c), err_str(rc));
}

static void finish_open(struct imap_conn *c)
{
    c->state = IMAP_CONN_AUTHENTICATED;
    c->open_done = true;
    struct imap_result res = {
        .status = IMAP_STATUS_OK, .code_name = "", .code_args = "", .text = ""};
    if (c->on_open)
        c->on_open(c, 0, &res, c->arg);
}

static void on_enable(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    (void)res, (void)arg;
    if (st < 0 && c->failed)
        return;
    finish_open(c); /* a refused ENABLE just leaves the extensions off */
}

static void after_login_enable(struct imap_conn *c)
{
    if (!c->cfg->no_enable && imap_conn_has(c, "ENABLE")) {
        if (imap_conn_has(c, "QRESYNC")) {
            internal_cmd(c, K_ENABLE, "ENABLE QRESYNC", on_enable);
            return;
        }
        if (imap_conn_has(c, "CONDSTORE")) {
            internal_cmd(c, K_ENABLE, "ENABLE CONDSTORE", on_enable);
            return;
        }
    }
    finish_open(c);
}

/* COMPRESS answered: OK is handled in on_net_read (the bytes after it are
 * compressed); NO or BAD leaves the connection uncompressed. */
static void on_compress(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    (void)arg;
    if (c->failed || st == 0)
        return;
    LOG_DEBUG(LOGC_IMAP, "%s: COMPRESS DEFLATE refused (%s); continuing uncompressed", peer(c),
              res->text);
    after_login_enable(c);
}

/* usecompression: like offlineimap, right after login (and over a tunnel
 * too), before anything else; but only when offered, where offlineimap
 * sends it blindly and shrugs off the BAD. */
static void after_login_caps(struct imap_conn *c)
{
    c->state = IMAP_CONN_AUTHENTICATED;
    if (c->cfg->compress && !net_is_compressed(c->s)) {
        if (!imap_conn_has(c, "COMPRESS=DEFLATE")) {
            LOG_DEBUG(LOGC_IMAP, "%s: usecompression: the server does not offer COMPRESS=DEFLATE",
                      peer(c));
        } else {
            struct builder b;
            struct cmd *cmd = cmd_begin(c, &b, K_COMPRESS, on_compress, NULL);
            if (!cmd) {
                conn_fail(c, -ENOMEM, "%s: out of memory", peer(c));
                return;
            }
            cmd->barrier = true; /* nothing may follow until we know how to send it */
            b_text(&b, "COMPRESS DEFLATE");
            int rc = submit(c, &b, cmd);
            if (rc < 0)
                conn_fail(c, rc, "%s: %s", peer(c), err_str(rc));
            return;
        }
    }
    after_login_enable(c);
}

static bool is_loopback(const struct imap_conn *c)
{
    const char *a = c->s ? net_peer_addr(c->s) : "";
    return strncmp(a, "127.", 4) == 0 || strcmp(a, "::1") == 0 ||
           strcmp(c->cfg->host, "localhost") == 0;
}

static void on_auth(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    (void)arg;
    if (c->failed)
        return;
    if (st != 0) {
        if (c->token_refreshed && c->token)
            oauth2_forget(&c->cfg->oauth2, c->token); /* the next connection asks anew */
        conn_fail(c, OIMAP_EAUTH, "%s: login as %s failed (%s): %s%s%s%s", peer(c),
                  c->cfg->user ? c->cfg->user : "?", c->mech, *res->code_name ? "[" : "",
                  res->code_name, *res->code_name ? "] " : "", res->text);
        return;
    }
    cred_free(&c->token);
    if (res->code == IMAP_CODE_CAPABILITY) {
        after_login_caps(c);
        return;
    }
    c->caps_known = false;
    c->state = IMAP_CONN_AUTHENTICATED;
    internal_cmd(c, K_CAPABILITY, "CAPABILITY", on_caps);
}

static int b64(const char *in, size_t len, char **out_r)
{
    size_t olen = 0;
    mbedtls_base64_encode(NULL, 0, &olen, (const unsigned char *)in, len);
    char *o = malloc(olen + 1);
    if (!o)
        return -ENOMEM;
    if (mbedtls_base64_encode((unsigned char *)o, olen + 1, &olen, (const unsigned char *)in,
                              len) != 0) {
        free(o);
        return OIMAP_EPROTO;
    }
    o[olen] = 0;
    *out_r = o;
    return 0;
}

static void send_auth(struct imap_conn *c)
{
    const struct imap_conn_config *cf = c->cfg;
    const char *user = cf->user ? cf->user : "";
    struct builder b;
    struct cmd *cmd = cmd_begin(c, &b, K_AUTH, on_auth, NULL);
    if (!cmd) {
        conn_fail(c, -ENOMEM, "%s: out of memory", peer(c));
        return;
    }
    cmd->barrier = true;
    c->state = IMAP_CONN_AUTH;
    if (strcmp(c->mech, "LOGIN") == 0) {
        b_text(&b, "LOGIN ");
        b_astring(&b, user, strlen(user), false);
        b_text(&b, " ");
        b_astring(&b, cf->pass, strlen(cf->pass), true);
    } else {
        /* SASL payloads; all secret */
        char *raw = NULL, *enc = NULL;
        int n = -1;
        const char *tok = c->token ? c->token : cf->oauth2_token;
        if (strcmp(c->mech, "PLAIN") == 0) {
            const char *az = cf->authzid ? cf->authzid : "";
            size_t la = strlen(az), lu = strlen(user), lp = strlen(cf->pass);
            raw = malloc(la + lu + lp + 3);
            if (raw) {
                memcpy(raw, az, la);
                raw[la] = 0;
                memcpy(raw + la + 1, user, lu);
                raw[la + 1 + lu] = 0;
                memcpy(raw + la + lu + 2, cf->pass, lp);
                n = (int)(la + lu + lp + 2);
            }
        } else if (strcmp(c->mech, "XOAUTH2") == 0) {
            n = asprintf(&raw, "user=%s\001auth=Bearer %s\001\001", user, tok);
            cmd->cont_reply = "\r\n";
        } else {
            n = asprintf(&raw, "n,a=%s,\001host=%s\001port=%u\001auth=Bearer %s\001\001", user,
                         cf->host, cf->port, tok);
            cmd->cont_reply = "AQ==\r\n";
        }
        int rc = n < 0 ? -ENOMEM : b64(raw, (size_t)n, &enc);
        if (raw) {
            memset(raw, 0, (size_t)(n > 0 ? n : 0));
            free(raw);
        }
        if (rc < 0) {
            free(b.b);
            free(cmd);
            conn_fail(c, rc, "%s: %s", peer(c), err_str(rc));
            return;
        }
        b_text(&b, "AUTHENTICATE %s", c->mech);
        if (imap_conn_has(c, "SASL-IR")) {
            b_text(&b, " ");
            b_secret(&b, true);
            b_raw(&b, enc, strlen(enc));
            b_secret(&b, false);
        } else {
            /* the payload goes after the server's "+" */
            b_text(&b, "\r\n");
            b_flush_text(&b);
            b_secret(&b, true);
            b_raw(&b, enc, strlen(enc));
            b_flush_text(&b);
            if (b.n)
                b.parts[b.n - 1].wait = true;
            b_secret(&b, false);
        }
        memset(enc, 0, strlen(enc));
        free(enc);
    }
    int rc = submit(c, &b, cmd);
    if (rc < 0)
        conn_fail(c, rc, "%s: cannot build the login command: %s", peer(c), err_str(rc));
}

static void token_work(uv_work_t *w)
{
    struct imap_conn *c = w->data;
    c->token_rc = cred_run_command(c->cfg->oauth2_token_cmd, &c->token);
}

static void token_done(uv_work_t *w, int status)
{
    struct imap_conn *c = w->data;
    if (!c->closing && !c->failed) {
        if (status < 0 || c->token_rc < 0 || !c->token || !*c->token)
            conn_fail(c, OIMAP_EAUTH, "%s: oauth2_access_token_cmd did not give a token", peer(c));
        else {
            log_add_secret(c->token);
            send_auth(c);
        }
    }
    unref(c);
}

static void on_oauth2_token(int st, const char *token, const char *msg, void *arg)
{
    struct imap_conn *c = arg;
    c->oauth_wait = NULL;
    if (c->closing || c->failed)
        return;
    if (st < 0) {
        conn_fail(c, st, "%s: cannot get an OAuth2 access token: %s", peer(c), msg);
        return;
    }
    cred_free(&c->token);
    if (!(c->token = strdup(token))) {
        conn_fail(c, -ENOMEM, "%s: out of memory", peer(c));
        return;
    }
    c->token_refreshed = true;
    send_auth(c);
}

/* oauth2_refresh_token: a cached access token, else one from the token URL. */
static void fetch_oauth2_token(struct imap_conn *c)
{
    cred_free(&c->token);
    if (oauth2_cached_token(&c->cfg->oauth2, &c->token) == 0) {
        LOG_DEBUG(LOGC_IMAP, "%s: using the OAuth2 access token obtained earlier", peer(c));
        c->token_refreshed = true;
        send_auth(c);
        return;
    }
    char err[1024] = "";
    int rc =
        oauth2_fetch(c->loop, &c->cfg->oauth2, on_oauth2_token, c, &c->oauth_wait, err, sizeof err);
    if (rc < 0)
        conn_fail(c, rc, "%s: cannot get an OAuth2 access token: %s", peer(c),
                  *err ? err : err_str(rc));
}

static bool mech_usable(const struct imap_conn *c, const char *m)
{
    const struct imap_conn_config *cf = c->cfg;
    bool token =
        (cf->oauth2_token && *cf->oauth2_token) || cf->oauth2_token_cmd || cf->oauth2.refresh_token;
    char auth[64];
    snprintf(auth, sizeof auth, "AUTH=%s", m);
    if (strcasecmp(m, "XOAUTH2") == 0 || strcasecmp(m, "OAUTHBEARER") == 0)
        return token && imap_conn_has(c, auth);
    if (strcasecmp(m, "PLAIN") == 0)
        return cf->pass && imap_conn_has(c, auth);
    if (strcasecmp(m, "LOGIN") == 0)
        return cf->pass && !imap_conn_has(c, "LOGINDISABLED");
    return false; /* GSSAPI, CRAM-MD5...: not implemented */
}

static void start_auth(struct imap_conn *c)
{
    const struct imap_conn_config *cf = c->cfg;
    free(c->caps_pre);
    c->caps_pre = c->caps ? strdup(c->caps) : NULL;
    /* Never a credential over an unprotected connection the user did not ask for. */
    if (cf->tls_mode != IMAP_TLS_NONE && !(c->s && net_is_tls(c->s))) {
        conn_fail(c, OIMAP_ENOTLS, "%s: TLS is not established; refusing to log in", peer(c));
        return;
    }
    if (cf->tls_mode == IMAP_TLS_NONE && !is_loopback(c) && !cf->tunnel) {
        static bool warned;
        if (!warned)
            log_warn("%s: plain IMAP (ssl = no, starttls = no): the password travels in clear "
                     "text",
                     peer(c));
        warned = true;
    }
    const char *const *mechs = cf->mechs ? cf->mechs : default_mechs;
    size_t n = cf->mechs ? cf->n_mechs : sizeof default_mechs / sizeof *default_mechs;
    static const char *const known[] = {"XOAUTH2", "OAUTHBEARER", "PLAIN", "LOGIN"};
    c->mech = NULL;
    for (size_t i = 0; i < n && !c->mech; i++) {
        if (!mech_usable(c, mechs[i]))
            continue;
        for (size_t k = 0; k < sizeof known / sizeof *known; k++)
            if (strcasecmp(mechs[i], known[k]) == 0)
                c->mech = known[k];
    }
    if (!c->mech) {
        char list[256] = "";
        for (size_t i = 0; i < n; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     mechs[i]);
        conn_fail(c, OIMAP_EAUTH,
                  "%s: no usable authentication mechanism (auth_mechanisms: %s; server: %s)%s",
                  peer(c), list, c->caps ? c->caps : "", cf->pass ? "" : "; no password set");
        return;
    }
    LOG_DEBUG(LOGC_IMAP, "%s: authenticating with %s", cf->host, c->mech);
    if (strcmp(c->mech, "XOAUTH2") == 0 || strcmp(c->mech, "OAUTHBEARER") == 0) {
        if (!(cf->oauth2_token && *cf->oauth2_token) && !cf->oauth2_token_cmd) {
            fetch_oauth2_token(c);
            return;
        }
        if (!(cf->oauth2_token && *cf->oauth2_token)) {
            c->work.data = c;
            c->refs++;
            int rc = uv_queue_work(c->loop, &c->work, token_work, token_done);
            if (rc < 0) {
                c->refs--;
                conn_fail(c, rc, "%s: %s", peer(c), err_str(rc));
            }
            return;
        }
    }
    send_auth(c);
}

static void on_net_tls(struct net_stream *s, void *arg)
{
    (void)s;
    struct imap_conn *c = arg;
    LOG_DEBUG(LOGC_IMAP, "%s: TLS established: %s", c->cfg->host, net_tls_info(c->s));
    c->state = IMAP_CONN_CAPS;
    c->caps_known = false;
    free(c->caps);
    c->caps = NULL;
    internal_cmd(c, K_CAPABILITY, "CAPABILITY", on_caps);
}

static void on_starttls(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    (void)arg;
    if (c->failed)
        return;
    if (st != 0)
        conn_fail(c, OIMAP_ENOTLS,
                  "%s: the server refused STARTTLS (%s); refusing to log in in "
                  "plain text",
                  peer(c), res->text);
    /* on OK, on_tagged has paused the parser; on_net_read starts the handshake */
}

static void step_tls_or_auth(struct imap_conn *c)
{
    if (c->cfg->tls_mode == IMAP_TLS_STARTTLS && !net_is_tls(c->s)) {
        if (!imap_conn_has(c, "STARTTLS")) {
            conn_fail(c, OIMAP_ENOTLS,
                      "%s: server does not offer STARTTLS; refusing to log in in plain text "
                      "(set starttls = no to allow plain IMAP)",
                      peer(c));
            return;
        }
        c->state = IMAP_CONN_STARTTLS;
        struct builder b;
        struct cmd *cmd = cmd_begin(c, &b, K_STARTTLS, on_starttls, NULL);
        if (!cmd) {
            conn_fail(c, -ENOMEM, "%s: out of memory", peer(c));
            return;
        }
        cmd->barrier = true;
        b_text(&b, "STARTTLS");
        int rc = submit(c, &b, cmd);
        if (rc < 0)
            conn_fail(c, rc, "%s: %s", peer(c), err_str(rc));
        return;
    }
    start_auth(c);
}

static void on_caps(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    (void)arg;
    if (c->failed)
        return;
    if (st != 0 || !c->caps_known) {
        conn_fail(c, OIMAP_EPROTO, "%s: CAPABILITY failed: %s", peer(c),
                  st ? res->text : "no capability list");
        return;
    }
    if (c->state == IMAP_CONN_AUTHENTICATED)
        after_login_caps(c);
    else
        step_tls_or_auth(c);
}

static void on_greeting(struct imap_conn *c, const struct imap_response *r)
{
    free(c->greeting);
    c->greeting = strndup(r->text ? r->text : "", r->text_len);
    if (r->status == IMAP_STATUS_BYE) {
        conn_fail(c, OIMAP_EBYE, "%s: the server refused the connection: %.*s", peer(c),
                  (int)r->text_len, r->text);
        return;
    }
    if (r->status != IMAP_STATUS_OK && r->status != IMAP_STATUS_PREAUTH) {
        conn_fail(c, OIMAP_EPROTO, "%s: not an IMAP server greeting", peer(c));
        return;
    }
    if (r->code.id == IMAP_CODE_CAPABILITY)
        set_caps(c, r->code.args, r->code.args_len);
    if (c->cfg->tunnel_preauth && r->status != IMAP_STATUS_PREAUTH) {
        conn_fail(c, OIMAP_EAUTH,
                  "%s: preauthtunnel: the server greeted with OK, not PREAUTH, so it wants a "
                  "login (use transporttunnel for that)",
                  peer(c));
        return;
    }
    if (r->status == IMAP_STATUS_PREAUTH) {
        if (c->cfg->tls_mode == IMAP_TLS_STARTTLS) {
            conn_fail(c, OIMAP_ENOTLS,
                      "%s: the server greeted with PREAUTH, so STARTTLS is impossible; refusing "
                      "the unprotected connection (starttls = yes)",
                      peer(c));
            return;
        }
        free(c->caps_pre);
        c->caps_pre = c->caps ? strdup(c->caps) : NULL;
        c->state = IMAP_CONN_AUTHENTICATED;
        if (!c->caps_known)
            internal_cmd(c, K_CAPABILITY, "CAPABILITY", on_caps);
        else
            after_login_caps(c);
        return;
    }
    c->state = IMAP_CONN_CAPS;
    if (!c->caps_known)
        internal_cmd(c, K_CAPABILITY, "CAPABILITY", on_caps);
    else
        step_tls_or_auth(c);
}

/* ---- response dispatch ---------------------------------------------------- */

static struct cmd *find_kind(struct imap_conn *c, enum cmd_kind kind)
{
    for (struct cmd *i = c->head; i; i = i->next)
        if (i->kind == kind && i->started)
            return i;
    return NULL;
}

static struct cmd *find_fetch(struct imap_conn *c, enum cmd_kind kind, uint32_t uid)
{
    for (struct cmd *i = c->head; i; i = i->next)
        if (i->kind == kind && i->started && (uid == 0 || set_contains(i->set, uid)))
            return i;
    return NULL;
}

/* Where folder data goes: the SELECT in flight, else the selected folder. */
static struct imap_folder_info *folder_target(struct imap_conn *c)
{
    struct cmd *sel = find_kind(c, K_SELECT);
    return sel ? &sel->u.sel.fi : &c->folder;
}

static void apply_code(struct imap_conn *c, const struct imap_resp_code *code)
{
    struct imap_folder_info *fi = folder_target(c);
    uint64_t n = 0;
    unsigned bits = 0, nk = 0;
    switch (code->id) {
    case IMAP_CODE_UIDVALIDITY:
        if (imap_code_number(code, &n) == 0) {
            fi->uidvalidity = (uint32_t)n;
            fi->has_uidvalidity = true;
        }
        break;
    case IMAP_CODE_UIDNEXT:
        if (imap_code_number(code, &n) == 0) {
            fi->uidnext = (uint32_t)n;
            fi->has_uidnext = true;
        }
        break;
    case IMAP_CODE_UNSEEN:
        if (imap_code_number(code, &n) == 0)
            fi->unseen = (uint32_t)n;
        break;
    case IMAP_CODE_HIGHESTMODSEQ:
        if (imap_code_number(code, &n) == 0)
            fi->highestmodseq = n;
        break;
    case IMAP_CODE_NOMODSEQ:
        fi->nomodseq = true;
        break;
    case IMAP_CODE_PERMANENTFLAGS:
        if (imap_code_flags(code, &bits, &nk) == 0) {
            fi->permanentflags = bits;
            fi->has_permanentflags = true;
        }
        break;
    case IMAP_CODE_READ_ONLY:
        fi->read_only = true;
        break;
    case IMAP_CODE_CAPABILITY:
        set_caps(c, code->args, code->args_len);
        break;
    default:
        break;
    }
}

/* A NO (or BAD) to an APPEND whose literals are still being sent: Dovecot
 * refuses a message as soon as it sees its size, then reads the rest of
 * the command without storing anything.  The non-synchronizing literals
 * must still be sent whole (RFC 7888: the server reads them, else their
 * bytes would be taken for commands), up to the first literal that waits
 * for a '+' which will not come now; the answer is delivered once that
 * much is written (pump_send), so that the caller's read callbacks are
 * not needed after it. */
static int answer_early(struct imap_conn *c, struct cmd *cmd, const struct imap_response *r)
{
    struct imap_result res;
    make_result(c, &res, r);
    size_t ln = strlen(res.code_name), la = strlen(res.code_args), lt = strlen(res.text);
    char *b = malloc(ln + la + lt + 3);
    if (!b) {
        conn_fail(c, -ENOMEM, "%s: out of memory", peer(c));
        return -ENOMEM;
    }
    memcpy(b, res.code_name, ln + 1);
    memcpy(b + ln + 1, res.code_args, la + 1);
    memcpy(b + ln + la + 2, res.text, lt + 1);
    res.code_name = b;
    res.code_args = b + ln + 1;
    res.text = b + ln + la + 2;
    cmd->ans = res;
    cmd->ans_buf = b;
    cmd->ans_st = status_code(r->status);
    cmd->answered = true;
    unsigned stop = cmd->part_idx + 1;
    while (stop < cmd->n_parts && !cmd->parts[stop].wait)
        stop++;
    cmd->n_parts = stop;
    LOG_DEBUG(LOGC_IMAP,
              "%s: A%u was refused while being sent: sending the rest of its "
              "non-synchronizing literals",
              c->cfg->host, cmd->tag);
    schedule_pump(c);
    return 0;
}

static int on_tagged(struct imap_conn *c, const struct imap_response *r)
{
    uint32_t tag = 0;
    bool ok = r->tag_len >= 2 && r->tag[0] == 'A';
    for (size_t i = 1; ok && i < r->tag_len; i++) {
        ok = r->tag[i] >= '0' && r->tag[i] <= '9' && tag < 100000000u;
        tag = tag * 10 + (uint32_t)(r->tag[i] - '0');
    }
    struct cmd *cmd = NULL;
    for (struct cmd *i = c->head; ok && i; i = i->next)
        if (i->tag == tag && i->started) {
            cmd = i;
            break;
        }
    if (!cmd) {
        conn_fail(c, OIMAP_EPROTO, "%s: the server answered an unknown tag '%.*s'", peer(c),
                  (int)(r->tag_len > 40 ? 40 : r->tag_len), r->tag);
        return OIMAP_EPROTO;
    }
    if (!cmd->written && cmd->part_idx < cmd->n_parts &&
        !(cmd->parts[cmd->part_idx].wait && !cmd->got_cont && cmd->part_off == 0)) {
        if (cmd->kind == K_APPEND && r->status != IMAP_STATUS_OK && !cmd->answered)
            return answer_early(c, cmd, r);
        conn_fail(c, OIMAP_EPROTO, "%s: the server answered A%u before it was sent completely",
                  peer(c), tag);
        return OIMAP_EPROTO;
    }
    unlink_cmd(c, cmd);
    struct imap_result res;
    make_result(c, &res, r);
    int st = status_code(r->status);
    if (r->status == IMAP_STATUS_OK && r->code.id != IMAP_CODE_NONE)
        apply_code(c, &r->code);
    int ret = 0;
    uint32_t *append_uids = NULL;
    switch (cmd->kind) {
    case K_SELECT:
        if (st == 0) {
            c->folder = cmd->u.sel.fi;
            if (r->code.id == IMAP_CODE_READ_ONLY)
                c->folder.read_only = true;
            c->state = IMAP_CONN_SELECTED;
            res.folder = &c->folder;
        } else {
            memset(&c->folder, 0, sizeof c->folder);
            c->state = IMAP_CONN_AUTHENTICATED;
        }
        break;
    case K_APPEND:
        if (st == 0 && r->code.id == IMAP_CODE_APPENDUID) {
            const char *set;
            size_t setlen;
            uint32_t uv;
            size_t pos = 0;
            uint32_t lo, hi;
            if (imap_code_appenduid(&r->code, &uv, &set, &setlen) == 0 &&
                imap_seqset_next(set, setlen, &pos, &lo, &hi) == 1) {
                res.append_uidvalidity = uv;
                res.append_uid = lo;
            }
            if (res.append_uid && cmd->u.app.n_msgs > 1) {
                /* RFC 4315: one UID per message, in the command's order.
                 * Any other count: no UIDs (the caller searches). */
                size_t n = cmd->u.app.n_msgs, got = 0;
                append_uids = malloc(n * sizeof *append_uids);
                if (append_uids && imap_uidset_expand(set, setlen, append_uids, n, &got) == 0 &&
                    got == n) {
                    res.append_uids = append_uids;
                    res.n_append_uids = n;
                } else {
                    LOG_DEBUG(LOGC_IMAP,
                              "%s: APPENDUID of A%u does not name one UID for each of its %zu "
                              "messages",
                              c->cfg->host, tag, n);
                }
            }
        }
        break;
    case K_SEARCH:
        res.uids = cmd->u.search.uids;
        res.n_uids = cmd->u.search.n;
        break;
    case K_IDLE:
        c->idle_done_pending = c->idle_done_sent = false;
        if (c->state == IMAP_CONN_IDLE)
            c->state = c->folder.has_uidvalidity ? IMAP_CONN_SELECTED : IMAP_CONN_AUTHENTICATED;
        break;
    case K_STARTTLS:
        if (st == 0) {
            c->tls_pending = true;
            c->state = IMAP_CONN_TLS;
            ret = IMAP_PARSE_PAUSE; /* nothing after this OK may be parsed */
        }
        break;
    case K_COMPRESS:
        if (st == 0) {
            c->compress_pending = true;
            ret = IMAP_PARSE_PAUSE; /* what follows this OK is compressed */
        }
        break;
    default:
        break;
    }
    if (cmd->done)
        cmd->done(c, st, &res, cmd->arg);
    cmd_free(cmd);
    free(append_uids);
    schedule_pump(c);
    return ret;
}

static int on_continuation(struct imap_conn *c, const struct imap_response *r)
{
    struct cmd *cmd = c->send_cur;
    if (cmd && cmd->started && cmd->part_idx < cmd->n_parts && cmd->parts[cmd->part_idx].wait &&
        !cmd->got_cont) {
        cmd->got_cont = true;
        schedule_pump(c);
        return 0;
    }
    if (cmd && cmd->written && cmd->kind == K_IDLE && c->state != IMAP_CONN_IDLE) {
        c->state = IMAP_CONN_IDLE;
        update_expect(c);
        schedule_pump(c); /* sends DONE if a command is waiting */
        return 0;
    }
    if (cmd && cmd->written && cmd->kind == K_AUTH && cmd->cont_reply) {
        /* an error challenge (XOAUTH2/OAUTHBEARER): answer it, the NO follows */
        log_client(c, "(empty response to the error challenge)");
        int rc = net_write(c->s, cmd->cont_reply, strlen(cmd->cont_reply));
        cmd->cont_reply = NULL;
        if (rc < 0)
            write_failed(c, rc);
        return 0;
    }
    (void)r;
    conn_fail(c, OIMAP_EPROTO, "%s: unexpected continuation request from the server", peer(c));
    return OIMAP_EPROTO;
}

static unsigned list_flag(const char *s, size_t n)
{
    static const struct {
        const char *name;
        unsigned bit;
    } map[] = {
        {"\\Noselect", IMAP_LIST_NOSELECT},
        {"\\NoInferiors", IMAP_LIST_NOINFERIORS},
        {"\\HasChildren", IMAP_LIST_HASCHILDREN},
        {"\\HasNoChildren", IMAP_LIST_HASNOCHILDREN},
        {"\\Marked", IMAP_LIST_MARKED},
        {"\\Unmarked", IMAP_LIST_UNMARKED},
        {"\\NonExistent", IMAP_LIST_NONEXISTENT},
        {"\\Subscribed", IMAP_LIST_SUBSCRIBED},
        {"\\All", IMAP_LIST_ALL},
        {"\\Archive", IMAP_LIST_ARCHIVE},
        {"\\Drafts", IMAP_LIST_DRAFTS},
        {"\\Flagged", IMAP_LIST_FLAGGED},
        {"\\Junk", IMAP_LIST_JUNK},
        {"\\Sent", IMAP_LIST_SENT},
        {"\\Trash", IMAP_LIST_TRASH},
        {"\\Important", IMAP_LIST_IMPORTANT},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strlen(map[i].name) == n && strncasecmp(map[i].name, s, n) == 0)
            return map[i].bit;
    return 0;
}

static int on_list(struct imap_conn *c, const struct imap_response *r)
{
    struct cmd *cmd = find_kind(c, K_LIST);
    if (!cmd)
        return 0;
    const struct imap_token *fl = r->tokens, *dl = imap_tok_next(fl), *nm = imap_tok_next(dl);
    if (!fl || fl->kind != IMAP_TOK_LIST || !dl || !nm || !imap_tok_is_string(nm)) {
        conn_fail(c, OIMAP_EPROTO, "%s: malformed LIST response", peer(c));
        return OIMAP_EPROTO;
    }
    struct imap_list_entry e = {0};
    char ftext[512];
    size_t fo = 0;
    ftext[0] = 0;
    for (const struct imap_token *t = imap_tok_child(fl); t; t = imap_tok_next(t)) {
        if (!t->str)
            continue;
        e.flags |= list_flag(t->str, t->len);
        if (fo + t->len + 2 < sizeof ftext)
            fo += (size_t)snprintf(ftext + fo, sizeof ftext - fo, "%s%.*s", fo ? " " : "",
                                   (int)t->len, t->str);
    }
    e.flags_text = ftext;
    if (dl->kind != IMAP_TOK_NIL && dl->str && dl->len == 1)
        e.delim = dl->str[0];
    char *raw = strndup(nm->str ? nm->str : "", nm->len);
    char *dec = NULL;
    if (!raw)
        return -ENOMEM;
    if (imap_utf7_decode(raw, strlen(raw), &dec) == 0) {
        e.name = dec;
        e.decoded = true;
    } else {
        e.name = raw;
        LOG_DEBUG(LOGC_IMAP, "%s: folder name '%s' is not valid modified UTF-7; kept as is",
                  c->cfg->host, raw);
    }
    e.raw = raw;
    if (cmd->u.list.cb)
        cmd->u.list.cb(c, &e, cmd->arg);
    free(dec);
    free(raw);
    return 0;
}

/* * STATUS name (ITEM n ...): during a LIST-STATUS, or a NOTIFY
 * notification (to the handlers), decoded for cb. */
static int on_status_data(struct imap_conn *c, const struct imap_response *r, imap_status_cb cb,
                          void *arg)
{
    const struct imap_token *nm = r->tokens, *items = imap_tok_next(nm);
    if (!nm || !nm->str || !items || items->kind != IMAP_TOK_LIST) {
        conn_fail(c, OIMAP_EPROTO, "%s: malformed STATUS response", peer(c));
        return OIMAP_EPROTO;
    }
    struct imap_status_entry e = {0};
    static const struct {
        const char *name;
        unsigned bit;
    } map[] = {
        {"MESSAGES", IMAP_STATUS_MESSAGES},           {"UIDNEXT", IMAP_STATUS_UIDNEXT},
        {"UIDVALIDITY", IMAP_STATUS_UIDVALIDITY},     {"UNSEEN", IMAP_STATUS_UNSEEN},
        {"HIGHESTMODSEQ", IMAP_STATUS_HIGHESTMODSEQ},
    };
    for (const struct imap_token *t = imap_tok_child(items); t; t = imap_tok_next(t)) {
        const struct imap_token *v = imap_tok_next(t);
        if (!v)
            break;
        if (t->str && v->kind == IMAP_TOK_NUMBER) {
            for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
                if (!imap_tok_is(t, map[i].name))
                    continue;
                if (map[i].bit != IMAP_STATUS_HIGHESTMODSEQ && v->num > UINT32_MAX)
                    break; /* not a 32-bit value: leave it out */
                e.present |= map[i].bit;
                switch (map[i].bit) {
                case IMAP_STATUS_MESSAGES:
                    e.messages = (uint32_t)v->num;
                    break;
                case IMAP_STATUS_UIDNEXT:
                    e.uidnext = (uint32_t)v->num;
                    break;
                case IMAP_STATUS_UIDVALIDITY:
                    e.uidvalidity = (uint32_t)v->num;
                    break;
                case IMAP_STATUS_UNSEEN:
                    e.unseen = (uint32_t)v->num;
                    break;
                default:
                    e.highestmodseq = v->num;
                    break;
                }
            }
        }
        t = v;
    }
    char *raw = strndup(nm->str, nm->len);
    char *dec = NULL;
    if (!raw)
        return -ENOMEM;
    if (imap_utf7_decode(raw, strlen(raw), &dec) == 0) {
        e.name = dec;
        e.decoded = true;
    } else {
        e.name = raw;
    }
    cb(c, &e, arg);
    free(dec);
    free(raw);
    return 0;
}

static int on_fetch(struct imap_conn *c, const struct imap_response *r)
{
    struct imap_fetch f;
    int rc = imap_fetch_decode(r, &f);
    if (rc < 0) {
        conn_fail(c, rc, "%s: malformed FETCH response", peer(c));
        return rc;
    }
    if (c->body_cmd) { /* its body was streamed */
        struct cmd *cmd = c->body_cmd;
        c->body_cmd = NULL;
        if (cmd->u.fb.end)
            cmd->u.fb.end(c, &f, cmd->arg);
        return 0;
    }
    if (f.n_bodies > 0) {
        struct cmd *cmd = find_fetch(c, K_FETCH_BODY, (f.present & IMAP_FETCH_UID) ? f.uid : 0);
        if (cmd) {
            const struct imap_fetch_body *bd = &f.bodies[0];
            if (cmd->u.fb.begin)
                cmd->u.fb.begin(c, &f, bd->nil ? 0 : bd->size, cmd->arg);
            if (!c->failed && !c->closing && bd->data && bd->len && cmd->u.fb.data)
                cmd->u.fb.data(c, bd->data, bd->len, cmd->arg);
            if (!c->failed && !c->closing && cmd->u.fb.end)
                cmd->u.fb.end(c, &f, cmd->arg);
            return 0;
        }
    }
    if (f.present & IMAP_FETCH_UID) {
        struct cmd *cmd = find_fetch(c, K_FETCH_LIST, f.uid);
        if (cmd) {
            if (cmd->u.fl.cb)
                cmd->u.fl.cb(c, &f, cmd->arg);
            return 0;
        }
    }
    if (c->h && c->h->on_fetch)
        c->h->on_fetch(c, &f, c->arg);
    return 0;
}

static uint32_t set_count(const char *s, size_t len)
{
    size_t pos = 0;
    uint32_t lo, hi, n = 0;
    while (imap_seqset_next(s, len, &pos, &lo, &hi) == 1)
        n += hi - lo + 1;
    return n;
}

static int on_untagged(struct imap_conn *c, const struct imap_response *r)
{
    if (c->state == IMAP_CONN_GREETING) {
        on_greeting(c, r);
        return 0;
    }
    if (r->status != IMAP_STATUS_NONE) {
        if (r->code.id == IMAP_CODE_ALERT)
            log_warn("%s: server alert: %.*s", peer(c), (int)r->text_len, r->text);
        if (r->status == IMAP_STATUS_BYE) {
            if (c->logout_sent)
                return 0;
            conn_fail(c, OIMAP_EBYE, "%s: the server closed the connection: %.*s", peer(c),
                      (int)r->text_len, r->text);
            return OIMAP_EBYE;
        }
        if (r->status == IMAP_STATUS_NO || r->status == IMAP_STATUS_BAD)
            log_warn("%s: server says: %.*s", peer(c), (int)r->text_len, r->text);
        apply_code(c, &r->code);
        if (r->code.id == IMAP_CODE_OTHER && c->h && c->h->on_notice)
            c->h->on_notice(c, r, c->arg);
        return 0;
    }
    struct imap_folder_info *fi = folder_target(c);
    bool live = fi == &c->folder; /* not part of a SELECT's answer */
    switch (r->data) {
    case IMAP_DATA_CAPABILITY:
        set_caps_tokens(c, r);
        break;
    case IMAP_DATA_EXISTS:
        fi->exists = r->num;
        if (live && c->h && c->h->on_exists)
            c->h->on_exists(c, r->num, c->arg);
        break;
    case IMAP_DATA_RECENT:
        fi->recent = r->num;
        break;
    case IMAP_DATA_EXPUNGE:
        if (fi->exists)
            fi->exists--;
        if (c->h && c->h->on_expunge)
            c->h->on_expunge(c, r->num, c->arg);
        break;
    case IMAP_DATA_VANISHED: {
        const struct imap_token *t = r->tokens;
        bool earlier = false;
        if (t && t->kind == IMAP_TOK_LIST) {
            earlier = imap_tok_is(imap_tok_child(t), "EARLIER");
            t = imap_tok_next(t);
        }
        if (!t || !t->str) {
            conn_fail(c, OIMAP_EPROTO, "%s: malformed VANISHED response", peer(c));
            return OIMAP_EPROTO;
        }
        if (!earlier) {
            uint32_t n = set_count(t->str, t->len);
            fi->exists = fi->exists > n ? fi->exists - n : 0;
        }
        if (c->h && c->h->on_vanished)
            c->h->on_vanished(c, t->str, t->len, earlier, c->arg);
        break;
    }
    case IMAP_DATA_FLAGS: {
        unsigned bits = 0;
        for (const struct imap_token *t = imap_tok_child(r->tokens); t; t = imap_tok_next(t))
            if (t->str)
                bits |= imap_flag_bit(t->str, t->len);
        fi->flags = bits;
        if (live && c->h && c->h->on_flags)
            c->h->on_flags(c, bits, c->arg);
        break;
    }
    case IMAP_DATA_FETCH:
        return on_fetch(c, r);
    case IMAP_DATA_LIST:
    case IMAP_DATA_LSUB:
        return on_list(c, r);
    case IMAP_DATA_STATUS: {
        struct cmd *lc = find_kind(c, K_LIST);
        if (lc)
            return lc->u.list.status_cb ? on_status_data(c, r, lc->u.list.status_cb, lc->arg) : 0;
        for (struct cmd *i = c->head; i; i = i->next)
            if (i->kind == K_GENERIC && i->started && i->u.gen.cb &&
                strcasecmp(i->u.gen.kw, "STATUS") == 0) {
                i->u.gen.cb(c, r, i->arg);
                return 0;
            }
        if (c->h && c->h->on_status) /* NOTIFY (RFC 5465) */
            return on_status_data(c, r, c->h->on_status, c->arg);
        break;
    }
    case IMAP_DATA_SEARCH: {
        struct cmd *cmd = find_kind(c, K_SEARCH);
        for (const struct imap_token *t = r->tokens; cmd && t; t = imap_tok_next(t)) {
            if (t->kind != IMAP_TOK_NUMBER || t->num == 0 || t->num > UINT32_MAX)
                continue;
            if (cmd->u.search.n == cmd->u.search.cap) {
                size_t cap = cmd->u.search.cap ? cmd->u.search.cap * 2 : 16;
                uint32_t *n = realloc(cmd->u.search.uids, cap * sizeof *n);
                if (!n)
                    return -ENOMEM;
                cmd->u.search.uids = n;
                cmd->u.search.cap = cap;
            }
            cmd->u.search.uids[cmd->u.search.n++] = (uint32_t)t->num;
        }
        break;
    }
    case IMAP_DATA_ENABLED:
        for (const struct imap_token *t = r->tokens; t; t = imap_tok_next(t)) {
            if (imap_tok_is(t, "QRESYNC"))
                c->enabled |= ENABLED_QRESYNC | ENABLED_CONDSTORE;
            else if (imap_tok_is(t, "CONDSTORE"))
                c->enabled |= ENABLED_CONDSTORE;
        }
        break;
    default:
        for (struct cmd *i = c->head; i; i = i->next)
            if (i->kind == K_GENERIC && i->started && i->u.gen.cb && r->keyword &&
                strlen(i->u.gen.kw) == r->keyword_len &&
                strncasecmp(i->u.gen.kw, r->keyword, r->keyword_len) == 0) {
                i->u.gen.cb(c, r, i->arg);
                break;
            }
        break;
    }
    return 0;
}

static int on_response(void *ctx, const struct imap_response *r)
{
    struct imap_conn *c = ctx;
    if (c->closing || c->failed)
        return OIMAP_ECANCELED;
    if (log_debug_on(LOGC_IMAP))
        log_server(c, r);
    int rc;
    if (r->kind == IMAP_RESP_TAGGED)
        rc = on_tagged(c, r);
    else if (r->kind == IMAP_RESP_CONTINUATION)
        rc = on_continuation(c, r);
    else
        rc = on_untagged(c, r);
    if (c->closing || c->failed)
        return OIMAP_ECANCELED;
    return rc;
}

static bool is_body_item(const struct imap_token *t)
{
    if (!t)
        return false;
    if (t->kind == IMAP_TOK_SECTION) {
        struct imap_section s;
        if (imap_tok_section(t, &s) < 0 || s.spec_len != 0)
            return false;
        return (s.name_len == 4 && strncasecmp(s.name, "BODY", 4) == 0) ||
               (s.name_len == 9 && strncasecmp(s.name, "BODY.PEEK", 9) == 0) ||
               (s.name_len == 6 && strncasecmp(s.name, "BINARY", 6) == 0);
    }
    return imap_tok_is(t, "RFC822");
}

static int on_literal_begin(void *ctx, const struct imap_response *partial, uint64_t size)
{
    struct imap_conn *c = ctx;
    if (c->closing || c->failed)
        return OIMAP_ECANCELED;
    if (partial->kind != IMAP_RESP_UNTAGGED || partial->data != IMAP_DATA_FETCH ||
        !is_body_item(partial->last))
        return IMAP_LITERAL_KEEP;
    struct imap_fetch f;
    if (imap_fetch_decode(partial, &f) < 0)
        memset(&f, 0, sizeof f);
    struct cmd *cmd = find_fetch(c, K_FETCH_BODY, (f.present & IMAP_FETCH_UID) ? f.uid : 0);
    if (!cmd)
        return IMAP_LITERAL_KEEP;
    c->body_cmd = cmd;
    if (cmd->u.fb.begin)
        cmd->u.fb.begin(c, &f, size, cmd->arg);
    return (c->closing || c->failed) ? OIMAP_ECANCELED : IMAP_LITERAL_STREAM;
}

static int on_literal_data(void *ctx, const char *chunk, size_t len)
{
    struct imap_conn *c = ctx;
    if (c->closing || c->failed)
        return OIMAP_ECANCELED;
    if (c->body_cmd && c->body_cmd->u.fb.data)
        c->body_cmd->u.fb.data(c, chunk, len, c->body_cmd->arg);
    return (c->closing || c->failed) ? OIMAP_ECANCELED : 0;
}

static int on_literal_end(void *ctx)
{
    struct imap_conn *c = ctx;
    return (c->closing || c->failed) ? OIMAP_ECANCELED : 0;
}

/* ---- net callbacks ------------------------------------------------------ */

/* COMPRESS's OK has been consumed: the rest of the input, and all output
 * from now on, is DEFLATE.  The -d imap log stays clear text: it is written
 * above this layer. */
static void start_compress(struct imap_conn *c)
{
    c->compress_pending = false;
    int rc = net_start_compress(c->s);
    if (rc < 0) {
        /* the server compresses already: we cannot go on without it */
        conn_fail(c, rc, "%s: cannot start compression: %s", peer(c), err_str(rc));
        return;
    }
    LOG_DEBUG(LOGC_IMAP, "%s: COMPRESS=DEFLATE on", peer(c));
    after_login_enable(c);
}

static void on_net_read(struct net_stream *s, const char *data, size_t len, void *arg)
{
    struct imap_conn *c = arg;
    if (c->closing || c->failed || c->tls_pending)
        return;
    c->refs++;
    int rc = imap_parser_feed(&c->parser, data, len);
    if (c->closing || c->failed) {
        unref(c);
        return;
    }
    net_consume(s, imap_parser_consumed(&c->parser));
    if (rc == IMAP_PARSE_PAUSE && c->tls_pending) {
        /* STARTTLS's OK has been consumed; whatever is still buffered came
         * before the handshake and cannot be trusted. */
        int dropped = net_start_tls(s, c->cfg->tls, on_net_tls);
        c->tls_pending = false;
        if (dropped > 0) {
            log_warn("%s: %d bytes arrived after the STARTTLS response, before TLS: possible "
                     "injection attack; connection dropped",
                     peer(c), dropped);
            conn_fail(c, OIMAP_EPROTO,
                      "%s: data injected after the STARTTLS response (%d bytes); refusing the "
                      "connection",
                      peer(c), dropped);
        } else if (dropped < 0) {
            conn_fail(c, dropped, "%s: cannot start TLS: %s", peer(c), err_str(dropped));
        }
    } else if (rc == IMAP_PARSE_PAUSE && c->compress_pending) {
        start_compress(c);
    } else if (rc < 0) {
        conn_fail(c, rc, "%s: %s: %s", peer(c),
                  rc == OIMAP_ETOOBIG ? "response too large" : "protocol error",
                  imap_parser_error(&c->parser));
    }
    unref(c);
}

static void on_net_connect(struct net_stream *s, void *arg)
{
    struct imap_conn *c = arg;
    LOG_DEBUG(LOGC_IMAP, "%s: connected to %s%s%s", c->cfg->host, net_peer_addr(s),
              net_is_tls(s) ? ", " : "", net_is_tls(s) ? net_tls_info(s) : "");
    c->state = IMAP_CONN_GREETING;
    update_expect(c);
}

static void on_net_error(struct net_stream *s, int code, const char *msg, void *arg)
{
    (void)s;
    struct imap_conn *c = arg;
    if (c->logout_sent && (code == UV_EOF || code == UV_ECONNRESET)) {
        /* the server closing after our LOGOUT is the normal end */
        conn_fail_quiet(c, code, "%s: connection closed after LOGOUT", peer(c));
        return;
    }
    conn_fail(c, code, "%s", msg);
}

static const struct net_callbacks net_cbs = {
    .on_connect = on_net_connect,
    .on_read = on_net_read,
    .on_drain = on_net_drain,
    .on_error = on_net_error,
};

/* ---- life cycle --------------------------------------------------------- */

int imap_conn_open(uv_loop_t *loop, const struct imap_conn_config *cfg,
                   const struct imap_conn_handlers *handlers, imap_done_cb on_open, void *arg,
                   struct imap_conn **c_r)
{
    *c_r = NULL;
    if (!loop || !cfg || !cfg->host || (!cfg->tunnel && (!cfg->port || cfg->port > 65535)) ||
        (cfg->tls_mode != IMAP_TLS_NONE && (!cfg->tls || cfg->tunnel)))
        return UV_EINVAL;
    struct imap_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->loop = loop;
    c->cfg = cfg;
    c->h = handlers;
    c->arg = arg;
    c->on_open = on_open;
    c->state = IMAP_CONN_RESOLVING;
    static const struct imap_parser_callbacks pcb = {
        .on_response = on_response,
        .on_literal_begin = on_literal_begin,
        .on_literal_data = on_literal_data,
        .on_literal_end = on_literal_end,
    };
    struct net_opts o = cfg->net;
    o.tls = cfg->tls_mode == IMAP_TLS_IMPLICIT ? cfg->tls : NULL;
    int rc = cfg->tunnel ? net_spawn(loop, cfg->tunnel, &o, &net_cbs, c, &c->s)
                         : net_connect(loop, cfg->host, cfg->port, &o, &net_cbs, c, &c->s);
    if (rc < 0) {
        free(c);
        return rc;
    }
    imap_parser_init(&c->parser, NULL, &pcb, c);
    uv_idle_init(loop, &c->pump_idle);
    c->pump_idle.data = c;
    c->refs = 3; /* the owner, the net stream, the idle handle */
    c->state = IMAP_CONN_CONNECTING;
    LOG_DEBUG(LOGC_IMAP, "%s: connecting (%s)", peer(c),
              cfg->tunnel                          ? "tunnel"
              : cfg->tls_mode == IMAP_TLS_IMPLICIT ? "implicit TLS"
              : cfg->tls_mode == IMAP_TLS_STARTTLS ? "STARTTLS"
                                                   : "plain IMAP");
    *c_r = c;
    return 0;
}

static void on_idle_closed(uv_handle_t *h)
{
    struct imap_conn *c = h->data;
    if (c)
        unref(c);
}

void imap_conn_close(struct imap_conn **cp)
{
    if (!cp || !*cp)
        return;
    struct imap_conn *c = *cp;
    *cp = NULL;
    if (c->closing)
        return;
    c->closing = true;
    c->body_cmd = NULL;
    oauth2_cancel(&c->oauth_wait);
    for (struct cmd *cmd = c->head, *next; cmd; cmd = next) {
        next = cmd->next;
        unlink_cmd(c, cmd);
        cmd_free(cmd);
    }
    if (c->s) {
        struct net_stream *s = c->s;
        c->s = NULL;
        net_close(s, on_net_closed);
    }
    uv_close((uv_handle_t *)&c->pump_idle, on_idle_closed);
    c->state = IMAP_CONN_CLOSED;
    unref(c);
}

void imap_conn_pause(struct imap_conn *c)
{
    if (c && c->s && !c->failed)
        net_pause(c->s);
}

void imap_conn_resume(struct imap_conn *c)
{
    if (c && c->s && !c->failed)
        net_resume(c->s);
}

/* ---- accessors ----------------------------------------------------------- */

enum imap_conn_state imap_conn_state(const struct imap_conn *c)
{
    return c ? c->state : IMAP_CONN_CLOSED;
}

const char *imap_conn_state_name(enum imap_conn_state st)
{
    static const char *const names[] = {
        "RESOLVING", "CONNECTING",    "TLS",      "GREETING", "CAPS",   "STARTTLS",
        "AUTH",      "AUTHENTICATED", "SELECTED", "IDLE",     "LOGOUT", "CLOSED",
    };
    return (unsigned)st < sizeof names / sizeof *names ? names[st] : "?";
}

const char *imap_conn_caps(const struct imap_conn *c)
{
    return c && c->caps ? c->caps : "";
}

const char *imap_conn_caps_prelogin(const struct imap_conn *c)
{
    return c && c->caps_pre ? c->caps_pre : "";
}

const char *imap_conn_greeting(const struct imap_conn *c)
{
    return c && c->greeting ? c->greeting : "";
}

const char *imap_conn_peer(const struct imap_conn *c)
{
    return peer(c);
}

const char *imap_conn_tls_info(const struct imap_conn *c)
{
    return c && c->s && net_is_tls(c->s) ? net_tls_info(c->s) : NULL;
}

uint32_t imap_result_highest_uid(const struct imap_result *res)
{
    uint32_t uid = 0;
    for (size_t i = 0; i < res->n_uids; i++)
        if (res->uids[i] > uid)
            uid = res->uids[i];
    return uid;
}

bool imap_conn_compressed(const struct imap_conn *c)
{
    return c->s && net_is_compressed(c->s);
}

void imap_conn_set_handlers(struct imap_conn *c, const struct imap_conn_handlers *h, void *arg)
{
    c->h = h;
    c->arg = arg;
}

const char *imap_conn_error(const struct imap_conn *c)
{
    return c && c->failed ? c->errmsg : NULL;
}

const struct imap_folder_info *imap_conn_folder(const struct imap_conn *c)
{
    return c && (c->state == IMAP_CONN_SELECTED || c->state == IMAP_CONN_IDLE) ? &c->folder : NULL;
}

/* The command's name: the words after the tag, "UID FETCH" or "SELECT". */
static void cmd_name(const struct cmd *cmd, char *out, size_t cap)
{
    const char *p = cmd->buf ? strchr(cmd->buf, ' ') : NULL;
    size_t n = 0;
    out[0] = '\0';
    if (!p)
        return;
    p++;
    bool uid = strncasecmp(p, "UID ", 4) == 0;
    for (size_t words = 0; p[n] && p[n] != '\r' && n + 1 < cap; n++)
        if (p[n] == ' ' && ++words == (uid ? 2u : 1u))
            break;
    memcpy(out, p, n);
    out[n] = '\0';
}

void imap_conn_get_stats(const struct imap_conn *c, struct imap_conn_stats *st)
{
    memset(st, 0, sizeof *st);
    for (const struct cmd *i = c->head; i; i = i->next) {
        if (!i->started) {
            st->waiting++;
            continue;
        }
        if (!st->oldest[0])
            cmd_name(i, st->oldest, sizeof st->oldest);
    }
    st->in_flight = c->in_flight;
    st->bytes_queued = c->s ? net_write_queued(c->s) : 0;
}

/* ---- commands ------------------------------------------------------------ */

int imap_flags_format(unsigned flags, const char *keywords, char *out, size_t cap)
{
    static const struct {
        unsigned bit;
        const char *name;
    } sys[] = {{IMAP_FLAG_SEEN, "\\Seen"},
               {IMAP_FLAG_ANSWERED, "\\Answered"},
               {IMAP_FLAG_FLAGGED, "\\Flagged"},
               {IMAP_FLAG_DELETED, "\\Deleted"},
               {IMAP_FLAG_DRAFT, "\\Draft"}};
    size_t o = 0;
    if (cap < 3)
        return OIMAP_ETOOBIG;
    out[o++] = '(';
    for (size_t i = 0; i < sizeof sys / sizeof *sys; i++) {
        if (!(flags & sys[i].bit))
            continue;
        int n = snprintf(out + o, cap - o, "%s%s", o > 1 ? " " : "", sys[i].name);
        if (n < 0 || (size_t)n >= cap - o)
            return OIMAP_ETOOBIG;
        o += (size_t)n;
    }
    for (const char *k = keywords; k && *k;) {
        while (*k == ' ')
            k++;
        size_t n = strcspn(k, " ");
        if (!n)
            break;
        for (size_t i = 0; i < n; i++) /* atom-specials would break the command */
            if (strchr("(){%*\"\\]", k[i]) && !(i == 0 && k[i] == '\\'))
                return UV_EINVAL;
        if (o + n + 3 > cap)
            return OIMAP_ETOOBIG;
        if (o > 1)
            out[o++] = ' ';
        memcpy(out + o, k, n);
        o += n;
        k += n;
    }
    if (o + 2 > cap)
        return OIMAP_ETOOBIG;
    out[o++] = ')';
    out[o] = 0;
    return (int)o;
}

int imap_conn_list(struct imap_conn *c, const char *reference, const char *pattern,
                   imap_list_cb on_entry, imap_done_cb done, void *arg)
{
    return imap_conn_list_status(c, reference, pattern, on_entry, NULL, done, arg);
}

int imap_conn_list_status(struct imap_conn *c, const char *reference, const char *pattern,
                          imap_list_cb on_entry, imap_status_cb on_status, imap_done_cb done,
                          void *arg)
{
    int rc = usable(c);
    if (rc < 0)
        return rc;
    if (!reference)
        reference = c->cfg->reference ? c->cfg->reference : "";
    if (!pattern)
        pattern = "*";
    struct builder b;
    struct cmd *cmd = cmd_begin(c, &b, K_LIST, done, arg);
    if (!cmd)
        return -ENOMEM;
    cmd->u.list.cb = on_entry;
    b_text(&b, "LIST ");
    b_mailbox(&b, reference);
    b_text(&b, " ");
    b_mailbox(&b, pattern);
    bool ext = *pattern && imap_conn_has(c, "LIST-EXTENDED");
    bool su = ext && imap_conn_has(c, "SPECIAL-USE");
    bool st = *pattern && on_status && imap_conn_has(c, "LIST-STATUS");
    if (su || st) {
        b_text(&b, " RETURN (");
        if (su)
            b_text(&b, imap_conn_has(c, "CHILDREN") ? "SPECIAL-USE CHILDREN" : "SPECIAL-USE");
        if (st) {
            cmd->u.list.status_cb = on_status;
            b_text(&b, "%sSTATUS (MESSAGES UIDNEXT UIDVALIDITY%s)", su ? " " : "",
                   imap_conn_has(c, "CONDSTORE") ? " HIGHESTMODSEQ" : "");
        }
        b_text(&b, ")");
    }
    return submit(c, &b, cmd);
}

/* subscribedonly: LSUB answers have LIST's shape and go to on_entry the
 * same way (on_list() does not tell them apart). */
int imap_conn_lsub(struct imap_conn *c, const char *reference, const char *pattern,
                   imap_list_cb on_entry, imap_done_cb done, void *arg)
{
    int rc = usable(c);
    if (rc < 0)
        return rc;
    struct builder b;
    struct cmd *cmd = cmd_begin(c, &b, K_LIST, done, arg);
    if (!cmd)
        return -ENOMEM;
    cmd->u.list.cb = on_entry;
    b_text(&b, "LSUB ");
    b_mailbox(&b, reference ? reference : c->cfg->reference ? c->cfg->reference : "");
    b_text(&b, " ");
    b_mailbox(&b, pattern ? pattern : "*");
    return submit(c, &b, cmd);
}

int imap_conn_select(struct imap_conn *c, const char *folder, const struct imap_select_opts *opts,
                     imap_done_cb done, void *arg)
{
    int rc = usable(c);
    if (rc < 0)
        return rc;
    if (!folder)
        return UV_EINVAL;
    struct imap_select_opts none = {0};
    if (!opts)
        opts = &none;
    if (opts->qresync_uids && !valid_set(opts->qresync_uids))
        return UV_EINVAL;
    struct builder b;
    struct cmd *cmd = cmd_begin(c, &b, K_SELECT, done, arg);
    if (!cmd)
        return -ENOMEM;
    b_text(&b, "%s ", opts->readonly ? "EXAMINE" : "SELECT");
    b_mailbox(&b, folder);
    if (opts->qresync_uidvalidity && (c->enabled & ENABLED_QRESYNC)) {
        b_text(&b, " (QRESYNC (%u %llu", opts->qresync_uidvalidity,
               (unsigned long long)opts->qresync_modseq);
        if (opts->qresync_uids) {
            b_text(&b, " ");
            b_raw(&b, opts->qresync_uids, strlen(opts->qresync_uids));
        }
        b_text(&b, "))");
    } else if (opts->condstore && imap_conn_has(c, "CONDSTORE") &&
               !imap_conn_enabled(c, "CONDSTORE")) {
        b_text(&b, " (CONDSTORE)");
    }
    /* SELECT leaves the current folder at once: data from now on is the new one's */
    memset(&c->folder, 0, sizeof c->folder);
    return submit(c, &b, cmd);
}

static int fetch_cmd(struct imap_conn *c, enum cmd_kind kind, const char *uidset,
                     struct cmd **cmd_r, struct builder *b, imap_done_cb done, void *arg)
{
    int rc = usable(c);
    if (rc < 0)
        return rc;
    if (!valid_set(uidset))
        return UV_EINVAL;
    struct cmd *cmd = cmd_begin(c, b, kind, done, arg);
    if (!cmd)
        return -ENOMEM;
    b_text(b, "UID FETCH ");
    size_t off = b->len;
    b_raw(b, uidset, strlen(uidset));
    cmd->set = strdup(uidset);
    if (!cmd->set)
        b->err = -ENOMEM;
    (void)off;
    *cmd_r = cmd;
    return 0;
}

int imap_conn_fetch_list(struct imap_conn *c, const char *uidset, const struct imap_fetch_opts *o,
                         imap_fetch_cb on_msg, imap_done_cb done, void *arg)
{
    struct imap_fetch_opts none = {0};
    if (!o)
        o = &none;
    if (o->extra_items && strpbrk(o->extra_items, "\r\n()"))
        return UV_EINVAL;
    struct builder b;
    struct cmd *cmd = NULL;
    int rc = fetch_cmd(c, K_FETCH_LIST, uidset, &cmd, &b, done, arg);
    if (rc < 0)
        return rc;
    cmd->u.fl.cb = on_msg;
    bool modseq = o->changedsince || imap_conn_enabled(c, "CONDSTORE");
    b_text(&b, " (UID FLAGS RFC822.SIZE INTERNALDATE%s%s%s)", modseq ? " MODSEQ" : "",
           o->extra_items ? " " : "", o->extra_items ? o->extra_items : "");
    if (o->changedsince)
        b_text(&b, " (CHANGEDSINCE %llu%s)", (unsigned long long)o->changedsince,
               o->vanished && (c->enabled & ENABLED_QRESYNC) ? " VANISHED" : "");
    return submit(c, &b, cmd);
}

int imap_conn_fetch_body(struct imap_conn *c, const char *uidset, const struct imap_body_cbs *cbs,
                         imap_done_cb done, void *arg)
{
    if (!cbs)
        return UV_EINVAL;
    struct builder b;
    struct cmd *cmd = NULL;
    int rc = fetch_cmd(c, K_FETCH_BODY, uidset, &cmd, &b, done, arg);
    if (rc < 0)
        return rc;
    cmd->u.fb = *cbs;
    b_text(&b, " (UID FLAGS INTERNALDATE BODY.PEEK[])");
    return submit(c, &b, cmd);
}

/* Flags that imap_flags_format() can write (checked before a tag is taken). */
static int append_flags_ok(const struct imap_append_msg *m)
{
    char flags[1024];
    int rc = imap_flags_format(m->flags & ~(IMAP_FLAG_RECENT | IMAP_FLAG_ANY), m->keywords, flags,
                               sizeof flags);
    return rc < 0 ? rc : 0;
}

/* One message of an APPEND: " [flags] [date-time] literal". */
static int b_append_msg(struct builder *b, const struct imap_append_msg *m, void *read_arg)
{
    if (!m || (!m->data && !m->read))
        return UV_EINVAL;
    char flags[1024];
    int rc = imap_flags_format(m->flags & ~(IMAP_FLAG_RECENT | IMAP_FLAG_ANY), m->keywords, flags,
                               sizeof flags);
    if (rc < 0)
        return rc;
    if (strcmp(flags, "()") != 0)
        b_text(b, " %s", flags);
    if (m->internaldate) {
        static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        struct tm tm;
        time_t t = m->internaldate;
        gmtime_r(&t, &tm);
        b_text(b, " \"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday, mon[tm.tm_mon],
               tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    }
    b_text(b, " ");
    struct part *p = b_literal(b, m->data, m->size, false, !m->data, false);
    if (p && !m->data) {
        p->read = m->read;
        p->read_arg = m->read_arg ? m->read_arg : read_arg;
    }
    return 0;
}

int imap_conn_append(struct imap_conn *c, const struct imap_append_msg *m, imap_done_cb done,
                     void *arg)
{
    int rc = usable(c);
    if (rc < 0)
        return rc;
    if (!m || !m->folder || (!m->data && !m->read))
        return UV_EINVAL;
    if ((rc = append_flags_ok(m)) < 0)
        return rc;
    struct builder b;
    struct cmd *cmd = cmd_begin(c, &b, K_APPEND, done, arg);
    if (!cmd)
        return -ENOMEM;
    cmd->u.app.n_msgs = 1;
    b_text(&b, "APPEND ");
    b_mailbox(&b, m->folder);
    if ((rc = b_append_msg(&b, m, arg)) < 0)
        b.err = b.err ? b.err : rc;
    return submit(c, &b, cmd);
}

int imap_conn_multiappend(struct imap_conn *c, const char *folder, const struct imap_append_msg *m,
                          size_t n, imap_done_cb done, void *arg)
{
    int rc = usable(c);
    if (rc < 0)
        return rc;
    if (!folder || !m || n == 0 || n > IMAP_MULTIAPPEND_MAX)
        return UV_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!m[i].data && !m[i].read)
            return UV_EINVAL;
        if ((rc = append_flags_ok(&m[i])) < 0)
            return rc;
    }
    struct builder b;
    struct cmd *cmd = cmd_begin(c, &b, K_APPEND, done, arg);
    if (!cmd)
        return -ENOMEM;
    cmd->u.app.n_msgs = n;
    /* "A1 APPEND box" + per message: the options and "{n}" (text), the literal */
    b.pmax = (unsigned)(2 * n + 4);
    b_text(&b, "APPEND ");
    b_mailbox(&b, folder);
    for (size_t i = 0; i < n && !b.err; i++)
        if ((rc = b_append_msg(&b, &m[i], arg)) < 0)
            b.err = b.err ? b.err : rc;
    return submit(c, &b, cmd);
}

int imap_conn_store(struct imap_conn *c, const char *uidset, bool add, unsigned flags,
                    const char *keywords, imap_done_cb done, void *arg)
{
    int rc = usable(c);
    if (rc < 0)
        return rc;
    if (!valid_set(uidset))
        return UV_EINVAL;
    char fl[1024];
    rc = imap_flags_format(flags & ~(IMAP_FLAG_RECENT | IMAP_FLAG_ANY), keywords, fl, sizeof fl);
    if (rc < 0)
        return rc;
    struct builder b;
    struct cmd *cmd = cmd_begin(c, &b, K_GENERIC, done, arg);
    if (!cmd)
        return -ENOMEM;
    b_text(&b, "UID STORE ");
    b_raw(&b, uidset, strlen(uidset));
    b_text(&b, " %cFLAGS.SILENT %s", add ? '+' : '-', fl);
    return submit(c, &b, cmd);
}

int imap_conn_expunge(struct imap_conn *c, const char *uidset, imap_done_cb done, void *arg)
{
    int rc = usable(c);
    if (rc < 0)
        return rc;
    if (uidset && !valid_set(uidset))
        return UV_EINVAL;
    struct builder b;
    struct cmd *cmd = cmd_begin(c, &b, K_GENERIC, done, arg);
    if (!cmd)
        return -ENOMEM;
    if (uidset && imap_conn_has(c, "UIDPLUS")) {
        b_text(&b, "UID EXPUNGE ");
        b_raw(&b, uidset, strlen(uidset));
    } else {
        b_text(&b, "EXPUNGE");
    }
    return submit(c, &b, cmd);
}

/* A command whose one argument is a folder: "CREATE <mailbox>"... */
static int folder_command(struct imap_conn *c, const char *verb, const char *folder,
                          imap_done_cb done, void *arg)
{
    int rc = usable(c);
    if (rc < 0)
        return rc;
    if (!folder || !*folder)
        return UV_EINVAL;
    struct builder b;
    struct cmd *cmd = cmd_begin(c, &b, K_GENERIC, done, arg);
    if (!cmd)
        return -ENOMEM;
    b_text(&b, "%s ", verb);
    b_mailbox(&b, folder);
    return submit(c, &b, cmd);
}

int imap_conn_create(struct imap_conn *c, const char *folder, imap_done_cb done, void *arg)
{
    return folder_command(c, "CREATE", folder, done, arg);
}

int imap_conn_subscribe(struct imap_conn *c, const char *folder, imap_done_cb done, void *arg)
{
    return folder_command(c, "SUBSCRIBE", folder, done, arg);
}

int imap_conn_delete(struct imap_conn *c, const char *folder, imap_done_cb done, void *arg)
{
    return folder_command(c, "DELETE", folder, done, arg);
}

int imap_conn_search_header(struct imap_conn *c, const char *name, const char *value,
                            imap_done_cb done, void *arg)
{
    int rc = usable(c);
    if (rc < 0)
        return rc;
    if (!name || !value || !*name)
        return UV_EINVAL;
    struct builder b;
    struct cmd *cmd = cmd_begin(c, &b, K_SEARCH, done, arg);
    if (!cmd)
        return -ENOMEM;
    b_text(&b, "UID SEARCH HEADER ");
    b_astring(&b, name, strlen(name), false);
    b_text(&b, " ");
    b_astring(&b, value, strlen(value), false);
    return submit(c, &b, cmd);
}

int imap_conn_noop(struct imap_conn *c, imap_done_cb done, void *arg)
{
    int rc = usable(c);
    return rc < 0 ? rc : simple_cmd(c, K_GENERIC, "NOOP", done, arg);
}

int imap_conn_idle(struct imap_conn *c, imap_done_cb done, void *arg)
{
    int rc = usable(c);
    if (rc < 0)
        return rc;
    for (struct cmd *i = c->head; i; i = i->next)
        if (i->kind == K_IDLE)
            return UV_EBUSY;
    struct builder b;
    struct cmd *cmd = cmd_begin(c, &b, K_IDLE, done, arg);
    if (!cmd)
        return -ENOMEM;
    cmd->barrier = true;
    b_text(&b, "IDLE");
    c->idle_done_pending = c->idle_done_sent = false;
    return submit(c, &b, cmd);
}

void imap_conn_done(struct imap_conn *c)
{
    if (!c || c->failed || c->closing)
        return;
    for (struct cmd *i = c->head; i; i = i->next)
        if (i->kind == K_IDLE) {
            c->idle_done_pending = true;
            schedule_pump(c);
        }
}

int imap_conn_logout(struct imap_conn *c, imap_done_cb done, void *arg)
{
    int rc = usable(c);
    return rc < 0 ? rc : simple_cmd(c, K_LOGOUT, "LOGOUT", done, arg);
}

int imap_conn_command(struct imap_conn *c, const char *text, const char *keyword,
                      imap_data_cb on_data, imap_done_cb done, void *arg)
{
    int rc = usable(c);
    if (rc < 0)
        return rc;
    if (!text || !*text || strpbrk(text, "\r\n") || (keyword && strlen(keyword) >= 32))
        return UV_EINVAL;
    struct builder b;
    struct cmd *cmd = cmd_begin(c, &b, K_GENERIC, done, arg);
    if (!cmd)
        return -ENOMEM;
    cmd->u.gen.cb = on_data;
    if (keyword)
        snprintf(cmd->u.gen.kw, sizeof cmd->u.gen.kw, "%s", keyword);
    b_raw(&b, text, strlen(text));
    return submit(c, &b, cmd);
}

/* ---- configuration from a repository ------------------------------------ */

struct conn_config_owned {
    struct imap_conn_config pub; /* first: the public pointer is this one */
    char *user, *pass, *fingerprints;
};

static const char *nonempty(const char *s)
{
    return s && *s ? s : NULL;
}

/* oauth2_refresh_token & co.  The URL is checked now, so a bad one is a
 * configuration error before anything connects.  Only used when no access
 * token (nor oauth2_access_token_cmd) is configured, as in offlineimap. */
static int oauth2_config(const struct config_repo *repo, struct imap_conn_config *cf, char *err,
                         size_t errlen)
{
    if (!nonempty(repo->oauth2_refresh_token) || nonempty(repo->oauth2_access_token) ||
        repo->oauth2_access_token_cmd)
        return 0;
    cf->oauth2 = (struct oauth2_params){
        .url = repo->oauth2_request_url,
        .client_id = nonempty(repo->oauth2_client_id),
        .client_secret = nonempty(repo->oauth2_client_secret),
        .refresh_token = repo->oauth2_refresh_token,
        .timeout_s = cf->net.timeout_s,
        .proxy = repo->authproxy,
    };
    struct oauth2_url u;
    char why[1024];
    if (!nonempty(repo->oauth2_request_url)) {
        snprintf(err, errlen,
                 "[Repository %s] oauth2_refresh_token is set but oauth2_request_url is not (the "
                 "token URL; only type = Gmail has a default)",
                 repo->name);
        return OIMAP_ECONFIG;
    }
    if (oauth2_url_parse(repo->oauth2_request_url, &u, why, sizeof why) < 0) {
        snprintf(err, errlen, "[Repository %s] %s", repo->name, why);
        return OIMAP_ECONFIG;
    }
    return 0;
}

int imap_conn_config_new(const struct config_repo *repo, struct imap_conn_config **cfg_r, char *err,
                         size_t errlen)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof dummy;
    }
    *cfg_r = NULL;
    err[0] = 0;
    /* offlineimap ignores preauthtunnel for Gmail (no such thing there) */
    const char *preauth = repo->type == CONFIG_REPO_GMAIL ? NULL : nonempty(repo->preauthtunnel);
    const char *tunnel = preauth ? preauth : nonempty(repo->transporttunnel);
    if (preauth && nonempty(repo->transporttunnel)) {
        snprintf(err, errlen, "[Repository %s] preauthtunnel and transporttunnel: set only one",
                 repo->name);
        return OIMAP_ECONFIG;
    }
    if (!tunnel && !nonempty(repo->remotehost)) {
        snprintf(err, errlen, "[Repository %s] remotehost: not set", repo->name);
        return OIMAP_ECONFIG;
    }
    struct conn_config_owned *o = calloc(1, sizeof *o);
    if (!o)
        return -ENOMEM;
    struct imap_conn_config *cf = &o->pub;
    cf->label = repo->name;
    cf->host = nonempty(repo->remotehost) ? repo->remotehost : "tunnel";
    cf->port = (unsigned)config_repo_port(repo);
    cf->tunnel = tunnel;
    cf->tunnel_preauth = preauth != NULL;
    cf->tls_mode = tunnel           ? IMAP_TLS_NONE
                   : repo->ssl      ? IMAP_TLS_IMPLICIT
                   : repo->starttls ? IMAP_TLS_STARTTLS
                                    : IMAP_TLS_NONE;
    cf->reference = repo->reference ? repo->reference : "";
    cf->authzid = repo->remote_identity;
    cf->oauth2_token = repo->oauth2_access_token;
    cf->oauth2_token_cmd = repo->oauth2_access_token_cmd;
    cf->mechs = repo->auth_mechanisms.n ? (const char *const *)repo->auth_mechanisms.v : NULL;
    cf->n_mechs = repo->auth_mechanisms.n;
    cf->net.family = repo->ipv6 < 0 ? NET_FAMILY_ANY
                     : repo->ipv6   ? NET_FAMILY_IPV6
                                    : NET_FAMILY_IPV4;
    cf->net.timeout_s = repo->socktimeout > 0 ? (unsigned)repo->socktimeout : 0;
    cf->net.proxy = repo->proxy; /* a tunnel ignores it (net_spawn) */
    /* without zlib config.c has warned once; stay uncompressed */
    cf->compress = repo->usecompression && zstream_available();
    int rc = oauth2_config(repo, cf, err, errlen);
    if (rc < 0)
        goto fail;
    if (cf->tls_mode != IMAP_TLS_NONE) {
        static const char *const versions[] = {
            [CONFIG_SSLV_UNSET] = NULL,      [CONFIG_SSLV_SSL2] = "ssl2",
            [CONFIG_SSLV_SSL3] = "ssl3",     [CONFIG_SSLV_SSL23] = "ssl23",
            [CONFIG_SSLV_TLS1] = "tls1",     [CONFIG_SSLV_TLS1_1] = "tls1_1",
            [CONFIG_SSLV_TLS1_2] = "tls1_2", [CONFIG_SSLV_TLS1_3] = "tls1_3",
        };
        static const char *const levels[] = {[CONFIG_TLS_COMPAT] = "tls_compat",
                                             [CONFIG_TLS_NO_SSL] = "tls_no_ssl",
                                             [CONFIG_TLS_SECURE] = "tls_secure"};
        size_t fl = 1;
        for (size_t i = 0; i < repo->cert_fingerprint.n; i++)
            fl += strlen(repo->cert_fingerprint.v[i]) + 1;
        o->fingerprints = calloc(1, fl);
        if (!o->fingerprints) {
            rc = -ENOMEM;
            goto fail;
        }
        for (size_t i = 0; i < repo->cert_fingerprint.n; i++) {
            if (i)
                strcat(o->fingerprints, ",");
            strcat(o->fingerprints, repo->cert_fingerprint.v[i]);
        }
        struct tls_opts to = {
            .cafile = repo->sslcacertfile,
            .fingerprints = repo->cert_fingerprint.n ? o->fingerprints : NULL,
            .ssl_version = (unsigned)repo->ssl_version < sizeof versions / sizeof *versions
                               ? versions[repo->ssl_version]
                               : NULL,
            .tls_level = (unsigned)repo->tls_level < sizeof levels / sizeof *levels
                             ? levels[repo->tls_level]
                             : NULL,
            .client_cert = repo->sslclientcert,
            .client_key = repo->sslclientkey,
        };
        char terr[256] = "";
        rc = tls_config_new(&to, &cf->tls, terr, sizeof terr);
        if (rc < 0) {
            snprintf(err, errlen, "[Repository %s] %s", repo->name, terr);
            goto fail;
        }
        cf->fingerprint_pinned = repo->cert_fingerprint.n > 0;
    }
    bool token = (repo->oauth2_access_token && *repo->oauth2_access_token) ||
                 repo->oauth2_access_token_cmd || cf->oauth2.refresh_token;
    rc = preauth ? OIMAP_EAUTH : cred_lookup(repo, cf->host, &o->user, &o->pass);
    if (rc < 0 && !preauth && !(token && rc == OIMAP_EAUTH && repo->remoteuser)) {
        snprintf(err, errlen, "[Repository %s] no usable credentials for %s (%s)", repo->name,
                 repo->remotehost, err_str(rc));
        goto fail;
    }
    if (rc < 0) { /* a token or a preauthenticated tunnel: no password */
        o->user = strdup(repo->remoteuser ? repo->remoteuser : "");
        if (!o->user) {
            rc = -ENOMEM;
            goto fail;
        }
    }
    cf->user = o->user;
    cf->pass = o->pass;
    *cfg_r = cf;
    return 0;
fail:
    imap_conn_config_free(&cf);
    return rc;
}

void imap_conn_config_free(struct imap_conn_config **cfg)
{
    if (!cfg || !*cfg)
        return;
    struct conn_config_owned *o = (struct conn_config_owned *)*cfg;
    *cfg = NULL;
    tls_config_free(&o->pub.tls);
    free(o->user);
    cred_free(&o->pass);
    free(o->fingerprints);
    free(o);
}
