/* xfer.h - copy messages from one IMAP connection to another, streamed.
 *
 * For each message: UID FETCH <uid> (BODY.PEEK[]) on the source connection,
 * and one APPEND on the destination connection whose literal is the
 * message's bytes (after an optional prefix, e.g. a marker header line),
 * read straight from the FETCH through one bounded FIFO.  The source is
 * paused while the FIFO holds fifo_max bytes and resumed when it has drained
 * to half, so a message of any size costs about fifo_max bytes, not its
 * size.  Up to window messages are in progress at once: FETCHes and APPENDs
 * are pipelined, one connection reads while the other writes.
 *
 * A message whose size (with the prefix) is at most fifo_max / 2 is only
 * APPENDed once it has arrived whole, so a source that fails in the middle
 * of it leaves the destination untouched; a larger one is APPENDed as it
 * arrives, and a source failure in the middle of it fails the destination
 * connection too (an APPEND literal cannot be abandoned half way; the server
 * discards the partial message).
 *
 * The APPEND carries m->flags, m->keywords and m->date (INTERNALDATE).  The
 * destination folder is named in the APPEND, so the destination connection
 * may have it (or any folder) selected.  The source connection must have
 * the source folder selected.
 *
 * Ownership: the array v, its strings and both connections must stay valid
 * until done runs.  Callbacks are never called from inside xfer_start();
 * msg_done runs once per message, then done once; the transfer frees itself
 * after done returns.  Nothing else may be submitted on the source connection
 * while the transfer runs (its reading is paused and resumed).
 */
#ifndef OIMAP_XFER_H
#define OIMAP_XFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct imap_conn;
struct imap_result;

#define XFER_FIFO_MAX (1u << 20) /* default fifo_max */
#define XFER_WINDOW 16           /* default window */
#define XFER_GONE 1              /* m->status: the source has no such message (any more) */

struct xfer_msg {
    /* in */
    uint32_t uid;         /* on the source */
    unsigned flags;       /* IMAP_FLAG_* for the APPEND */
    const char *keywords; /* space separated, or NULL */
    time_t date;          /* INTERNALDATE for the APPEND, 0: the server's clock */
    const char *prefix;   /* bytes sent before the message, or NULL */
    size_t prefix_len;
    void *user;
    /* out, set when msg_done runs */
    int status;                        /* 0: appended; XFER_GONE; or a negative code */
    uint32_t new_uid, new_uidvalidity; /* APPENDUID (UIDPLUS), else 0 */
    uint64_t size;                     /* the source message's size, once known */
};

struct xfer_opts {
    size_t fifo_max; /* 0: XFER_FIFO_MAX */
    unsigned window; /* 0: XFER_WINDOW */
};

struct xfer_cbs {
    /* One message is finished (see m->status).  res is the APPEND's or the
     * FETCH's result when one failed (its text names the server's words),
     * else NULL or the APPEND's OK. */
    void (*msg_done)(struct xfer_msg *m, const struct imap_result *res, void *arg);
    /* Every message is finished and no command of the transfer is pending:
     * st 0, or the error that stopped it early (a connection failed, or a
     * command could not be submitted); the messages it stopped have it as
     * their status. */
    void (*done)(int st, void *arg);
};

/* Start copying v[0..n) (n >= 1) from src (selected on the source folder) to
 * folder (UTF-8) through dst.  o may be NULL.  Returns 0, or a negative code
 * (UV_EINVAL, -ENOMEM, or imap_conn's code for the first FETCH): nothing
 * started and no callback will run. */
int xfer_start(struct imap_conn *src, struct imap_conn *dst, const char *folder, struct xfer_msg *v,
               size_t n, const struct xfer_opts *o, const struct xfer_cbs *cbs, void *arg);

#endif
