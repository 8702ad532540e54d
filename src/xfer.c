/* xfer.c - FETCH -> APPEND streaming between two IMAP connections (xfer.h).
 *
 * Why one FIFO is enough: every message is its own UID FETCH, and a server
 * answers commands in order, so message bodies arrive one after the other
 * in the order the FETCHes were sent.  Each APPEND is submitted when its
 * message's size is known, in that same order, and a connection writes its
 * commands' literals one after the other.  So the bytes at the front of the
 * FIFO always belong to the APPEND being written, and the FIFO never needs
 * to know which message a byte belongs to; each message only counts how
 * many of its bytes went in (in) and came out (out).
 *
 * Bytes that no APPEND will take are dropped where they are:
 *   - an APPEND refused before its literal was read (a synchronizing literal
 *     answered NO): every earlier APPEND is complete, so its bytes are at
 *     the front;
 *   - a message cut by a failing source before its APPEND was submitted: it
 *     is the last message that arrived, so its bytes are at the back.
 * After a fatal error (a connection is dead, a command could not be
 * submitted) no new APPEND starts and bytes of messages without one are not
 * stored any more: the transfer drains to its end.
 *
 * Memory: the FIFO is one ring buffer of fifo_max plus slack for what a
 * paused connection still delivers from the read in progress (it grows if
 * that slack is ever too small, which bounded socket reads prevent).
 */
#include "xfer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "imap_conn.h"
#include "log.h"

#define FIFO_SLACK (256u << 10)

struct ring {
    char *buf;
    size_t cap, head, len;
};

struct xitem {
    struct xfer *x;
    struct xfer_msg *m;
    uint64_t in, out; /* bytes of the message put into / taken out of the FIFO */
    uint64_t rcvd;    /* bytes of the message received */
    size_t pfx_sent;
    bool submitted, fetching, began, ended, appending, discard, finished;
};

struct xfer {
    struct imap_conn *src, *dst;
    const char *folder;
    struct xitem *it;
    size_t n, next;  /* it[next..] not fetched yet */
    size_t inflight; /* fetched and not finished */
    size_t finished;
    unsigned fetches; /* FETCH commands pending */
    size_t fifo_max;
    unsigned window;
    struct ring q;
    bool paused;
    int err;           /* first fatal error */
    int depth;         /* callbacks of ours on the stack */
    bool done;         /* done called */
    struct xitem *cur; /* the message whose body is arriving */
    struct xfer_cbs cbs;
    void *arg;
};

/* ---- the ring ------------------------------------------------------------ */

static int ring_reserve(struct ring *r, size_t want)
{
    if (want <= r->cap)
        return 0;
    size_t cap = r->cap ? r->cap : want;
    while (cap < want)
        cap *= 2;
    char *nb = malloc(cap);
    if (!nb)
        return -ENOMEM;
    /* linearise the old contents at the start of the new buffer */
    size_t first = r->len < r->cap - r->head ? r->len : r->cap - r->head;
    if (r->len) {
        memcpy(nb, r->buf + r->head, first);
        memcpy(nb + first, r->buf, r->len - first);
    }
    free(r->buf);
    r->buf = nb;
    r->cap = cap;
    r->head = 0;
    return 0;
}

static int ring_push(struct ring *r, const char *p, size_t n, size_t initial)
{
    int rc = ring_reserve(r, r->len + n > initial ? r->len + n : initial);
    if (rc < 0)
        return rc;
    size_t tail = (r->head + r->len) % r->cap;
    size_t first = n < r->cap - tail ? n : r->cap - tail;
    memcpy(r->buf + tail, p, first);
    memcpy(r->buf, p + first, n - first);
    r->len += n;
    return 0;
}

/* Take n bytes from the front into out (out NULL: drop them). */
static void ring_take(struct ring *r, char *out, size_t n)
{
    size_t first = n < r->cap - r->head ? n : r->cap - r->head;
    if (out) {
        memcpy(out, r->buf + r->head, first);
        memcpy(out + first, r->buf, n - first);
    }
    r->head = (r->head + n) % r->cap;
    r->len -= n;
}

/* ---- flow control --------------------------------------------------------- */

static void flow_check(struct xfer *x)
{
    if (!x->paused && x->q.len >= x->fifo_max) {
        LOG_DEBUG(LOGC_SYNC, "xfer to %s: %zu bytes buffered: source paused", x->folder, x->q.len);
        x->paused = true;
        imap_conn_pause(x->src);
    } else if (x->paused && x->q.len <= x->fifo_max / 2) {
        x->paused = false;
        imap_conn_resume(x->src);
    }
}

/* Remove what is left of it's bytes from the front or the back. */
static void drop_bytes(struct xfer *x, struct xitem *it, bool front)
{
    size_t n = (size_t)(it->in - it->out);
    if (front) {
        ring_take(&x->q, NULL, n);
    } else {
        x->q.len -= n;
    }
    it->out = it->in;
    flow_check(x);
}

/* ---- life cycle ----------------------------------------------------------- */

static void pump(struct xfer *x);

static void enter(struct xfer *x)
{
    x->depth++;
}

/* Leave a callback: the end is reported (and x freed) only from the
 * outermost one, so no caller up the stack touches a freed transfer. */
static void leave(struct xfer *x)
{
    if (--x->depth > 0 || x->done || x->finished < x->n || x->fetches)
        return;
    x->done = true;
    if (x->paused) {
        x->paused = false;
        imap_conn_resume(x->src);
    }
    LOG_DEBUG(LOGC_SYNC, "xfer to %s: %zu messages, ended: %s", x->folder, x->n,
              x->err ? err_str(x->err) : "ok");
    x->cbs.done(x->err, x->arg);
    free(x->q.buf);
    free(x->it);
    free(x);
}

static void fatal(struct xfer *x, int rc)
{
    if (!x->err)
        x->err = rc < 0 ? rc : -EIO;
    flow_check(x);
}

static void finish_item(struct xitem *it, int st, const struct imap_result *res)
{
    struct xfer *x = it->x;
    if (it->finished)
        return;
    it->finished = true;
    it->m->status = st;
    x->finished++;
    if (it->submitted)
        x->inflight--;
    x->cbs.msg_done(it->m, res, x->arg);
}

/* ---- the destination: APPEND --------------------------------------------- */

static ssize_t on_read(void *arg, char *buf, size_t cap)
{
    struct xitem *it = arg;
    struct xfer *x = it->x;
    const struct xfer_msg *m = it->m;
    if (it->pfx_sent < m->prefix_len) {
        size_t n = m->prefix_len - it->pfx_sent;
        n = n < cap ? n : cap;
        memcpy(buf, m->prefix + it->pfx_sent, n);
        it->pfx_sent += n;
        return (ssize_t)n;
    }
    uint64_t have = it->in - it->out;
    size_t n = have < cap ? (size_t)have : cap;
    if (n == 0) {
        /* Nothing yet: more is coming, unless the source failed under us
         * (then this literal cannot be completed). */
        if (it->ended || !it->fetching)
            return x->err ? x->err : OIMAP_EPROTO;
        return 0;
    }
    ring_take(&x->q, buf, n);
    it->out += n;
    flow_check(x);
    return (ssize_t)n;
}

static void on_appended(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct xitem *it = arg;
    struct xfer *x = it->x;
    (void)c;
    enter(x);
    if (it->in > it->out)
        drop_bytes(x, it, true); /* refused before its literal was read */
    if (!it->ended)
        it->discard = true; /* and what is still to come */
    if (st == 0) {
        it->m->new_uid = res->append_uid;
        it->m->new_uidvalidity = res->append_uidvalidity;
    } else if (st != OIMAP_ENO && st != OIMAP_EBAD) {
        fatal(x, st); /* the destination connection is gone */
    }
    finish_item(it, st, res);
    pump(x);
    leave(x);
}

static void submit_append(struct xitem *it)
{
    struct xfer *x = it->x;
    const struct xfer_msg *m = it->m;
    struct imap_append_msg am = {
        .folder = x->folder,
        .flags = m->flags,
        .keywords = m->keywords,
        .internaldate = m->date,
        .size = m->prefix_len + m->size,
        .read = on_read,
    };
    int rc = imap_conn_append(x->dst, &am, on_appended, it);
    if (rc < 0) {
        /* finished when its FETCH ends (its bytes may sit behind others') */
        fatal(x, rc);
        return;
    }
    it->appending = true;
}

/* ---- the source: FETCH ----------------------------------------------------- */

static void on_begin(struct imap_conn *c, const struct imap_fetch *partial, uint64_t size,
                     void *arg)
{
    struct xitem *it = arg;
    struct xfer *x = it->x;
    (void)c;
    if (it->began || ((partial->present & IMAP_FETCH_UID) && partial->uid != it->m->uid)) {
        x->cur = NULL; /* a second body for it, or not its: not ours to store */
        return;
    }
    it->began = true;
    it->m->size = size;
    x->cur = it;
    if (!x->err && it->m->prefix_len + size > x->fifo_max / 2)
        submit_append(it); /* too big to wait for: streamed as it comes */
}

static void on_data(struct imap_conn *c, const char *chunk, size_t len, void *arg)
{
    struct xitem *it = arg;
    struct xfer *x = it->x;
    (void)c;
    if (x->cur != it)
        return;
    it->rcvd += len;
    if (it->discard || (x->err && !it->appending))
        return;
    int rc = ring_push(&x->q, chunk, len, x->fifo_max + FIFO_SLACK);
    if (rc < 0) {
        fatal(x, rc);
        it->discard = true;
        return;
    }
    it->in += len;
    flow_check(x);
    if (it->appending)
        imap_conn_append_ready(x->dst);
}

static void on_end(struct imap_conn *c, const struct imap_fetch *f, void *arg)
{
    struct xitem *it = arg;
    struct xfer *x = it->x;
    (void)c;
    (void)f;
    if (x->cur != it)
        return;
    x->cur = NULL;
    it->ended = it->rcvd == it->m->size;
    if (it->ended && !it->appending && !it->discard && !x->err)
        submit_append(it);
}

static void on_fetched(struct imap_conn *c, int st, const struct imap_result *res, void *arg)
{
    struct xitem *it = arg;
    struct xfer *x = it->x;
    (void)c;
    enter(x);
    LOG_DEBUG(LOGC_SYNC, "xfer: UID %u: FETCH done (%s), %llu of %llu bytes%s", it->m->uid,
              st < 0 ? err_str(st) : "ok", (unsigned long long)it->rcvd,
              (unsigned long long)it->m->size, it->appending ? ", being appended" : "");
    x->fetches--;
    it->fetching = false;
    if (x->cur == it)
        x->cur = NULL;
    if (st < 0 && st != OIMAP_ENO && st != OIMAP_EBAD)
        fatal(x, st);
    if (it->appending) {
        /* the APPEND finishes it; if the body was cut, on_read fails the
         * destination connection now that it knows */
        if (!it->ended)
            imap_conn_append_ready(x->dst);
    } else if (!it->began) {
        finish_item(it, st == 0 ? XFER_GONE : st, res);
    } else {
        if (it->in > it->out)
            drop_bytes(x, it, false); /* cut short: the last bytes in */
        int why = x->err ? x->err : st < 0 ? st : OIMAP_EPROTO;
        finish_item(it, why, it->ended ? NULL : res);
    }
    pump(x);
    leave(x);
}

static const struct imap_body_cbs body_cbs = {on_begin, on_data, on_end};

static int submit_fetch(struct xfer *x)
{
    struct xitem *it = &x->it[x->next];
    char set[16];
    snprintf(set, sizeof set, "%u", it->m->uid);
    int rc = imap_conn_fetch_body(x->src, set, &body_cbs, on_fetched, it);
    if (rc < 0)
        return rc;
    x->next++;
    x->fetches++;
    x->inflight++;
    it->submitted = it->fetching = true;
    return 0;
}

/* Submit FETCHes while the window has room; after a fatal error, finish
 * the messages never fetched instead (from callbacks only: see xfer.h). */
static void pump(struct xfer *x)
{
    while (x->next < x->n) {
        if (x->err) {
            finish_item(&x->it[x->next++], x->err, NULL);
            continue;
        }
        if (x->inflight >= x->window)
            return;
        int rc = submit_fetch(x);
        if (rc < 0)
            fatal(x, rc);
    }
}

int xfer_start(struct imap_conn *src, struct imap_conn *dst, const char *folder, struct xfer_msg *v,
               size_t n, const struct xfer_opts *o, const struct xfer_cbs *cbs, void *arg)
{
    if (!src || !dst || !folder || !v || !n || !cbs || !cbs->msg_done || !cbs->done)
        return UV_EINVAL;
    struct xfer *x = calloc(1, sizeof *x);
    if (!x || !(x->it = calloc(n, sizeof *x->it))) {
        free(x);
        return -ENOMEM;
    }
    x->src = src;
    x->dst = dst;
    x->folder = folder;
    x->n = n;
    x->fifo_max = o && o->fifo_max ? o->fifo_max : XFER_FIFO_MAX;
    x->window = o && o->window ? o->window : XFER_WINDOW;
    x->cbs = *cbs;
    x->arg = arg;
    for (size_t i = 0; i < n; i++) {
        x->it[i] = (struct xitem){.x = x, .m = &v[i]};
        v[i].status = 0;
        v[i].new_uid = v[i].new_uidvalidity = 0;
        v[i].size = 0;
    }
    int rc = submit_fetch(x);
    if (rc < 0) {
        free(x->it);
        free(x);
        return rc;
    }
    /* Fill the window; a failure here is reported from the first callback
     * (pump's error branch), never from inside this call. */
    while (x->next < x->n && x->inflight < x->window && !x->err)
        if ((rc = submit_fetch(x)) < 0)
            x->err = rc;
    return 0;
}
