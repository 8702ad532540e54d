/* imap_conn.h - one IMAP client connection, a non-blocking state machine.
 *
 * A struct imap_conn is one connection to one IMAP server on the one uv loop:
 * net.c underneath (DNS, TCP, TLS, timeouts), imap_parse.c for responses.
 * imap_conn_open() connects, reads the greeting, learns the capabilities,
 * upgrades with STARTTLS when configured, authenticates, turns on
 * COMPRESS=DEFLATE (cfg->compress, when offered after login; net.h) and
 * ENABLEs CONDSTORE/QRESYNC; then the owner (the sync engine, the IDLE daemon,
 * --info) submits commands, any number of them pipelined.
 *
 * States (imap_conn_state()): RESOLVING -> CONNECTING -> [TLS] -> GREETING ->
 * CAPS -> [STARTTLS -> TLS -> CAPS] -> AUTH -> AUTHENTICATED <-> SELECTED
 * <-> IDLE, then LOGOUT and CLOSED.  Each step is a small named continuation
 * in imap_conn.c.
 *
 * TLS policy (man oimap.conf(5)):
 *   IMAP_TLS_IMPLICIT  TLS from the first byte (ssl = yes).
 *   IMAP_TLS_STARTTLS  (ssl = no, starttls = yes) STARTTLS is REQUIRED: a
 *                      server that does not offer it, refuses it, or greets
 *                      with PREAUTH fails the connection with OIMAP_ENOTLS
 *                      before any credential is sent.  Bytes that arrived
 *                      after STARTTLS's tagged OK and before the handshake
 *                      are discarded and fail the connection (an injection
 *                      attempt, "NO STARTTLS", USENIX Security 2021).
 *   IMAP_TLS_NONE      plain IMAP (ssl = no, starttls = no); a warning is
 *                      logged once per process unless the peer is loopback.
 * Capabilities are asked again after TLS and after login (unless the tagged
 * OK carried [CAPABILITY ...]).  LOGIN/AUTHENTICATE is never sent on a
 * connection that is neither verified TLS nor configured as plain IMAP.
 *
 * Authentication: the first mechanism of cfg->mechs (offlineimap's
 * auth_mechanisms order) that we implement, the server offers and we have
 * the secret for: XOAUTH2 / OAUTHBEARER (with an OAuth2 token), PLAIN
 * (AUTHENTICATE PLAIN, SASL-IR when offered), LOGIN (the LOGIN command,
 * unless LOGINDISABLED).  GSSAPI and CRAM-MD5 are skipped.  It is tried once:
 * a rejection fails the connection with OIMAP_EAUTH and the server's words.
 * The OAuth2 token is cfg->oauth2_token, else the output of
 * cfg->oauth2_token_cmd, else one from cfg->oauth2's token URL (cached for
 * the process; a token the server refuses is forgotten).
 *
 * Tunnels (cfg->tunnel): the connection is a command's stdin and stdout
 * (net_spawn()), in clear text: tls_mode must be IMAP_TLS_NONE (the command
 * is the transport: ssh, openssl s_client); no clear-text warning.  With
 * tunnel_preauth the greeting must be PREAUTH (else OIMAP_EAUTH: the server
 * wants a login, use transporttunnel); without it a PREAUTH greeting is
 * accepted as it is over TCP.
 *
 * Callbacks (libuv's rules)
 *   - Never called from inside the call that started the operation; a call
 *     that returns a negative code has started nothing and calls nothing.
 *   - Every command's done callback is called exactly once: with the tagged
 *     status, or with the connection's error code when it fails first.  After
 *     imap_conn_close() no callback at all is called.
 *   - Any callback may submit commands or call imap_conn_close().
 *   - Pointers handed to callbacks (results, entries, fetch data, chunks) are
 *     valid only during the callback.
 *
 * Errors: a failing connection (DNS, refused, timeout, TLS, certificate, EOF,
 * BYE, protocol error, authentication) first completes every pending command
 * (including the open) with the code, then calls handlers->on_error once with
 * the code and a sentence naming host:port and the reason
 * ("imap.example.org:143: server does not offer STARTTLS; ...").  The
 * connection is dead afterwards: submitting returns OIMAP_ECANCELED; call
 * imap_conn_close().  imap_conn itself logs only warnings (ALERT, injection,
 * clear text) and -d imap traffic; the owner logs the error once.
 *
 * Codes: 0 = tagged OK; OIMAP_ENO / OIMAP_EBAD = tagged NO / BAD (the result
 * has the server's code and text); anything else negative = the connection
 * failed (OIMAP_ETIMEOUT, OIMAP_ECERT, OIMAP_ETLS, OIMAP_ENOTLS, OIMAP_EAUTH,
 * OIMAP_EBYE, OIMAP_EPROTO, OIMAP_ETOOBIG, UV_E*...).
 *
 * Logging: -d imap logs "C: ..." and "S: ..." lines; passwords, tokens and
 * AUTHENTICATE payloads are written as ******** at the source, literals as
 * "{N bytes}".
 *
 * Bounds: at most cfg->max_in_flight commands on the wire (others wait in
 * the queue, in order); writing pauses while more than 256 KiB are queued in
 * net and resumes on drain; response sizes are bounded by the parser.
 */
#ifndef OIMAP_IMAP_CONN_H
#define OIMAP_IMAP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <uv.h>

#include "imap_parse.h"
#include "net.h"
#include "oauth2.h"

struct imap_conn;
struct config_repo;
struct tls_config;
struct imap_status_entry;

enum imap_tls_mode { IMAP_TLS_IMPLICIT, IMAP_TLS_STARTTLS, IMAP_TLS_NONE };

enum imap_conn_state {
    IMAP_CONN_RESOLVING,
    IMAP_CONN_CONNECTING,
    IMAP_CONN_TLS,
    IMAP_CONN_GREETING,
    IMAP_CONN_CAPS,
    IMAP_CONN_STARTTLS,
    IMAP_CONN_AUTH,
    IMAP_CONN_AUTHENTICATED,
    IMAP_CONN_SELECTED,
    IMAP_CONN_IDLE,
    IMAP_CONN_LOGOUT,
    IMAP_CONN_CLOSED,
};

/* ---- configuration ------------------------------------------------------ */

/* What a connection needs, shared by every connection of a repository (it
 * must outlive them; nothing is copied).  Fill it by hand (tests) or with
 * imap_conn_config_new(). */
struct imap_conn_config {
    const char *label; /* repository name, for messages; may be NULL */
    const char *host;
    unsigned port;
    enum imap_tls_mode tls_mode;
    struct tls_config *tls;  /* required unless IMAP_TLS_NONE */
    bool fingerprint_pinned; /* cert_fingerprint set (for --info only) */
    const char *user;
    const char *pass;             /* NULL if none (token-only accounts) */
    const char *authzid;          /* remote_identity, for PLAIN; may be NULL */
    const char *oauth2_token;     /* may be NULL */
    const char *oauth2_token_cmd; /* run in the thread pool before each
                                     XOAUTH2/OAUTHBEARER attempt; may be NULL */
    struct oauth2_params oauth2;  /* with oauth2.refresh_token set: the access
                                     token comes from the token URL (oauth2.h),
                                     unless oauth2_token or _cmd is set */
    const char *tunnel;           /* preauthtunnel / transporttunnel command:
                                     net_spawn() instead of TCP (host is then
                                     only a label; no TLS); NULL: TCP */
    bool tunnel_preauth;          /* preauthtunnel: the server greets with
                                     PREAUTH, no login */
    const char *const *mechs;     /* upper-case names; NULL: offlineimap's default */
    size_t n_mechs;
    const char *reference;  /* LIST reference, "" default; may be NULL */
    struct net_opts net;    /* family, timeout_s (socktimeout), bounds */
    bool no_enable;         /* do not ENABLE QRESYNC/CONDSTORE after login */
    bool compress;          /* usecompression: COMPRESS DEFLATE after login
                               when the server offers COMPRESS=DEFLATE */
    unsigned max_in_flight; /* 0: 128 */
};

/* Build the config of an IMAP repository: credentials (cred_lookup(); may
 * run remotepasscmd, so call it before the loop gets busy), the TLS config,
 * the mechanism list.  Returns 0 and *cfg_r, or a negative code with a
 * message in err: OIMAP_ECONFIG, OIMAP_EAUTH (no password and no token),
 * -ENOMEM. */
int imap_conn_config_new(const struct config_repo *repo, struct imap_conn_config **cfg_r, char *err,
                         size_t errlen);
/* Free a config from imap_conn_config_new() (wipes the secrets); NULLs it. */
void imap_conn_config_free(struct imap_conn_config **cfg);

/* ---- results ------------------------------------------------------------ */

/* SELECT/EXAMINE outcome, also kept up to date while the folder is selected
 * (EXISTS, EXPUNGE, VANISHED). */
struct imap_folder_info {
    uint32_t uidvalidity, uidnext, exists, recent, unseen;
    uint64_t highestmodseq; /* 0 with nomodseq or without CONDSTORE */
    bool nomodseq;
    bool read_only;
    unsigned flags;          /* FLAGS: IMAP_FLAG_* bits */
    unsigned permanentflags; /* IMAP_FLAG_* bits, IMAP_FLAG_ANY for \* */
    bool has_uidvalidity, has_uidnext, has_permanentflags;
};

/* A tagged completion.  Strings are NUL-terminated and "" when absent. */
struct imap_result {
    enum imap_status status; /* OK/NO/BAD, or NONE when the connection failed */
    enum imap_code code;
    const char *code_name; /* e.g. "TRYCREATE" */
    const char *code_args;
    const char *text; /* the server's text, or the connection error message */
    /* SELECT/EXAMINE (OK only) */
    const struct imap_folder_info *folder;
    /* APPEND with UIDPLUS: APPENDUID (0 if none; the first UID of a MULTIAPPEND) */
    uint32_t append_uidvalidity, append_uid;
    /* MULTIAPPEND with UIDPLUS: APPENDUID's UIDs, one per message in the
     * command's order, when its uid-set is ascending and names exactly as
     * many UIDs as there were messages; else NULL and 0. */
    const uint32_t *append_uids;
    size_t n_append_uids;
    /* UID SEARCH: the UIDs found, in the server's order */
    const uint32_t *uids;
    size_t n_uids;
};

/* The highest of res->uids (a UID SEARCH's answer), or 0 when none: the
 * copy just appended, when a marker search finds more than one. */
uint32_t imap_result_highest_uid(const struct imap_result *res);

/* status: 0, OIMAP_ENO, OIMAP_EBAD or the connection's error. */
typedef void (*imap_done_cb)(struct imap_conn *c, int status, const struct imap_result *res,
                             void *arg);

/* Connection-level events: unsolicited data, and the end.  All optional. */
struct imap_conn_handlers {
    void (*on_exists)(struct imap_conn *c, uint32_t exists, void *arg);
    void (*on_expunge)(struct imap_conn *c, uint32_t seq, void *arg);
    /* set: a UID set such as "3:5,9" (not NUL-terminated); earlier: (EARLIER) */
    void (*on_vanished)(struct imap_conn *c, const char *set, size_t len, bool earlier, void *arg);
    /* FETCH not belonging to a fetch command (flag changes by others). */
    void (*on_fetch)(struct imap_conn *c, const struct imap_fetch *f, void *arg);
    void (*on_flags)(struct imap_conn *c, unsigned flags, void *arg);
    /* The connection died (see "Errors").  Not called after imap_conn_close()
     * nor for the server closing after our LOGOUT. */
    void (*on_error)(struct imap_conn *c, int code, const char *msg, void *arg);
    /* STATUS that no LIST-STATUS or STATUS command is waiting for: the
     * notifications of NOTIFY (RFC 5465). */
    void (*on_status)(struct imap_conn *c, const struct imap_status_entry *e, void *arg);
    /* An untagged OK/NO/BAD whose response code imap_conn has no use for
     * itself (code.id IMAP_CODE_OTHER), e.g. [NOTIFICATIONOVERFLOW]. */
    void (*on_notice)(struct imap_conn *c, const struct imap_response *r, void *arg);
};

/* ---- life cycle --------------------------------------------------------- */

/* Connect and log in.  cfg and handlers are not copied (they must outlive
 * the connection); arg is passed to the handlers and to on_open.  on_open
 * runs once: status 0 when authenticated (state AUTHENTICATED), else the
 * error (then on_error follows).  Returns 0 and *c_r, or a negative code
 * (UV_EINVAL for an unusable cfg, -ENOMEM, net_connect's errors). */
int imap_conn_open(uv_loop_t *loop, const struct imap_conn_config *cfg,
                   const struct imap_conn_handlers *handlers, imap_done_cb on_open, void *arg,
                   struct imap_conn **c_r);

/* Drop the connection at once (no LOGOUT: use imap_conn_logout first for a
 * polite end) and free it once its handles are closed (the loop must run).
 * No callback of any kind is called after this.  NULLs *c; NULL is fine. */
void imap_conn_close(struct imap_conn **c);

/* Send the connection's events to other handlers from now on: a connection
 * handed from one owner to another (held between two syncs, conn_cache.h).
 * Same rules as for imap_conn_open(): h must outlive the connection. */
void imap_conn_set_handlers(struct imap_conn *c, const struct imap_conn_handlers *h, void *arg);

/* Stop / restart reading from the server (a consumer's disk queue is full).
 * Data already received is still delivered up to the end of that read. */
void imap_conn_pause(struct imap_conn *c);
void imap_conn_resume(struct imap_conn *c);

/* ---- state and capabilities --------------------------------------------- */

enum imap_conn_state imap_conn_state(const struct imap_conn *c);
const char *imap_conn_state_name(enum imap_conn_state st);
/* Capability (case-insensitive), e.g. "UIDPLUS", "AUTH=PLAIN". */
bool imap_conn_has(const struct imap_conn *c, const char *cap);
/* Extension enabled with ENABLE ("CONDSTORE", "QRESYNC"). */
bool imap_conn_enabled(const struct imap_conn *c, const char *ext);
/* Capabilities now (space separated) and as they were before login. */
const char *imap_conn_caps(const struct imap_conn *c);
const char *imap_conn_caps_prelogin(const struct imap_conn *c);
/* The greeting's text ("Dovecot ready."). */
const char *imap_conn_greeting(const struct imap_conn *c);
/* "host:port" */
const char *imap_conn_peer(const struct imap_conn *c);
/* "TLSv1.2, <cipher>" or NULL for clear text. */
const char *imap_conn_tls_info(const struct imap_conn *c);
/* COMPRESS=DEFLATE is on (usecompression, offered and accepted). */
bool imap_conn_compressed(const struct imap_conn *c);
/* The error message once the connection failed, else NULL. */
const char *imap_conn_error(const struct imap_conn *c);
/* The selected folder's info (NULL unless SELECTED/IDLE). */
const struct imap_folder_info *imap_conn_folder(const struct imap_conn *c);

/* What the connection is busy with, for a state dump (SIGQUIT). */
struct imap_conn_stats {
    unsigned in_flight;  /* commands sent (or being sent), not answered yet */
    unsigned waiting;    /* commands queued behind them */
    size_t bytes_queued; /* written to the socket layer, not yet taken by the kernel */
    char oldest[32];     /* the oldest unanswered command, e.g. "UID FETCH"; "" if none */
};
void imap_conn_get_stats(const struct imap_conn *c, struct imap_conn_stats *st_r);

/* ---- commands ------------------------------------------------------------
 * Every command returns 0 (done will be called) or a negative code (nothing
 * happened): OIMAP_ECANCELED (connection dead or not open yet), UV_EINVAL,
 * OIMAP_ENAME (a folder name that is not valid UTF-8), -ENOMEM.  Folder names
 * are UTF-8; they are sent in modified UTF-7.  UID sets are strings such as
 * "1:*" or "4,7:9" (validated). */

/* LIST entry flags */
#define IMAP_LIST_NOSELECT 0x0001u
#define IMAP_LIST_NOINFERIORS 0x0002u
#define IMAP_LIST_HASCHILDREN 0x0004u
#define IMAP_LIST_HASNOCHILDREN 0x0008u
#define IMAP_LIST_MARKED 0x0010u
#define IMAP_LIST_UNMARKED 0x0020u
#define IMAP_LIST_NONEXISTENT 0x0040u
#define IMAP_LIST_SUBSCRIBED 0x0080u
#define IMAP_LIST_ALL 0x0100u /* SPECIAL-USE (RFC 6154) from here on */
#define IMAP_LIST_ARCHIVE 0x0200u
#define IMAP_LIST_DRAFTS 0x0400u
#define IMAP_LIST_FLAGGED 0x0800u
#define IMAP_LIST_JUNK 0x1000u
#define IMAP_LIST_SENT 0x2000u
#define IMAP_LIST_TRASH 0x4000u
#define IMAP_LIST_IMPORTANT 0x8000u

struct imap_list_entry {
    const char *name;       /* UTF-8; the raw name when it does not decode */
    const char *raw;        /* as on the wire (modified UTF-7) */
    bool decoded;           /* false: name is raw because decoding failed */
    char delim;             /* hierarchy delimiter, 0 for NIL */
    unsigned flags;         /* IMAP_LIST_* */
    const char *flags_text; /* the attributes as sent, "\HasNoChildren \Sent" */
};
typedef void (*imap_list_cb)(struct imap_conn *c, const struct imap_list_entry *e, void *arg);

/* LIST reference pattern (reference NULL: cfg->reference; pattern NULL: "*").
 * With LIST-EXTENDED and SPECIAL-USE, RETURN (SPECIAL-USE) is asked for.
 * LIST "" "" gives the delimiter (one entry with an empty name). */
int imap_conn_list(struct imap_conn *c, const char *reference, const char *pattern,
                   imap_list_cb on_entry, imap_done_cb done, void *arg);

/* LIST-STATUS (RFC 5819): the LIST above with RETURN (... STATUS (MESSAGES
 * UIDNEXT UIDVALIDITY [HIGHESTMODSEQ])) when the server offers LIST-STATUS
 * (HIGHESTMODSEQ with CONDSTORE); on_status for each STATUS answer, any time
 * after its folder's LIST entry.  Without LIST-STATUS this is imap_conn_list()
 * and on_status is never called. */
struct imap_status_entry {
    const char *name; /* UTF-8 (the raw name when it does not decode) */
    bool decoded;
    uint32_t messages, uidnext, uidvalidity, unseen;
    uint64_t highestmodseq;
    unsigned present; /* IMAP_STATUS_* bits of what the server sent */
};
#define IMAP_STATUS_MESSAGES 0x01u
#define IMAP_STATUS_UIDNEXT 0x02u
#define IMAP_STATUS_UIDVALIDITY 0x04u
#define IMAP_STATUS_UNSEEN 0x08u
#define IMAP_STATUS_HIGHESTMODSEQ 0x10u
typedef void (*imap_status_cb)(struct imap_conn *c, const struct imap_status_entry *e, void *arg);
int imap_conn_list_status(struct imap_conn *c, const char *reference, const char *pattern,
                          imap_list_cb on_entry, imap_status_cb on_status, imap_done_cb done,
                          void *arg);

/* LSUB reference pattern (as imap_conn_list): the subscribed folders, each
 * to on_entry (subscribedonly).  Servers may list a subscribed folder that
 * no longer exists: check it against LIST. */
int imap_conn_lsub(struct imap_conn *c, const char *reference, const char *pattern,
                   imap_list_cb on_entry, imap_done_cb done, void *arg);

struct imap_select_opts {
    bool readonly;                /* EXAMINE */
    bool condstore;               /* (CONDSTORE) when offered and not enabled */
    uint32_t qresync_uidvalidity; /* non-zero: (QRESYNC (uidvalidity modseq [uids])) */
    uint64_t qresync_modseq;
    const char *qresync_uids; /* known UIDs or NULL */
};
/* SELECT/EXAMINE; res->folder on success.  VANISHED/FETCH caused by QRESYNC
 * go to the handlers. opts may be NULL. */
int imap_conn_select(struct imap_conn *c, const char *folder, const struct imap_select_opts *opts,
                     imap_done_cb done, void *arg);

/* The message list: UID FETCH uidset (UID FLAGS RFC822.SIZE INTERNALDATE
 * [MODSEQ] [extra]) [(CHANGEDSINCE m [VANISHED])].  on_msg for each message
 * with a UID in uidset (others go to handlers->on_fetch). */
struct imap_fetch_opts {
    uint64_t changedsince;   /* 0: none */
    bool vanished;           /* with changedsince, QRESYNC enabled */
    const char *extra_items; /* e.g. "X-GM-LABELS", or NULL */
};
typedef void (*imap_fetch_cb)(struct imap_conn *c, const struct imap_fetch *f, void *arg);
int imap_conn_fetch_list(struct imap_conn *c, const char *uidset, const struct imap_fetch_opts *o,
                         imap_fetch_cb on_msg, imap_done_cb done, void *arg);

/* Message bodies: UID FETCH uidset (UID FLAGS INTERNALDATE BODY.PEEK[]).
 * Per message: begin (partial: what the server sent before the body; its
 * uid is 0 when the server sends UID after the body), data chunks straight
 * from the input buffer (no copy), end with the complete FETCH data (UID,
 * FLAGS, INTERNALDATE; the body sizes).  A message whose body is NIL or ""
 * gets begin (size 0) and end.  The consumer may imap_conn_pause() in data
 * and imap_conn_resume() later. */
struct imap_body_cbs {
    void (*begin)(struct imap_conn *c, const struct imap_fetch *partial, uint64_t size, void *arg);
    void (*data)(struct imap_conn *c, const char *chunk, size_t len, void *arg);
    void (*end)(struct imap_conn *c, const struct imap_fetch *f, void *arg);
};
int imap_conn_fetch_body(struct imap_conn *c, const char *uidset, const struct imap_body_cbs *cbs,
                         imap_done_cb done, void *arg);

/* APPEND.  The message comes from data (kept valid until done) or, when
 * data is NULL, from read(read_arg, buf, cap) (read_arg NULL: done's arg):
 * it returns bytes written into buf (> 0), 0 when nothing is available yet
 * (call imap_conn_append_ready() when there is), or a negative code (the
 * connection is then failed: a literal cannot be abandoned half way).
 * Exactly size bytes are taken; read is not called once they are.
 * res->append_uid is set with UIDPLUS. */
struct imap_append_msg {
    const char *folder;   /* imap_conn_append() only */
    unsigned flags;       /* IMAP_FLAG_* (RECENT and ANY ignored) */
    const char *keywords; /* more flags, space separated, or NULL */
    time_t internaldate;  /* 0: let the server choose */
    uint64_t size;
    const char *data;
    ssize_t (*read)(void *arg, char *buf, size_t cap);
    void *read_arg;
};
int imap_conn_append(struct imap_conn *c, const struct imap_append_msg *m, imap_done_cb done,
                     void *arg);

/* MULTIAPPEND (RFC 3502; call it only when imap_conn_has(c, "MULTIAPPEND")):
 * the n messages m[0..n) (1 <= n <= IMAP_MULTIAPPEND_MAX) into folder in one
 * command; m[i].folder is ignored, each literal is pulled from its own
 * read(read_arg, ...) in turn.  Literals are non-synchronizing under the
 * same size rule as imap_conn_append()'s, else each waits for the server's
 * '+'.  The server stores all of them or none: status 0 means all were
 * appended (res->append_uids maps them to UIDs when it can), OIMAP_ENO or
 * OIMAP_EBAD means none was.  The m array itself may go after the call. */
#define IMAP_MULTIAPPEND_MAX 1000u
int imap_conn_multiappend(struct imap_conn *c, const char *folder, const struct imap_append_msg *m,
                          size_t n, imap_done_cb done, void *arg);
void imap_conn_append_ready(struct imap_conn *c);

/* UID STORE uidset +FLAGS.SILENT / -FLAGS.SILENT (flags keywords). */
int imap_conn_store(struct imap_conn *c, const char *uidset, bool add, unsigned flags,
                    const char *keywords, imap_done_cb done, void *arg);
/* UID EXPUNGE uidset with UIDPLUS; EXPUNGE when uidset is NULL or without
 * UIDPLUS (then every \Deleted message goes). */
int imap_conn_expunge(struct imap_conn *c, const char *uidset, imap_done_cb done, void *arg);
int imap_conn_create(struct imap_conn *c, const char *folder, imap_done_cb done, void *arg);
/* DELETE folder (--delete-folder). */
int imap_conn_delete(struct imap_conn *c, const char *folder, imap_done_cb done, void *arg);
int imap_conn_subscribe(struct imap_conn *c, const char *folder, imap_done_cb done, void *arg);
/* UID SEARCH HEADER name value: res->uids. */
int imap_conn_search_header(struct imap_conn *c, const char *name, const char *value,
                            imap_done_cb done, void *arg);
int imap_conn_noop(struct imap_conn *c, imap_done_cb done, void *arg);

/* IDLE: done runs after imap_conn_done() (or a command submitted meanwhile,
 * which sends DONE itself) and the server's tagged OK.  Untagged data goes to
 * the handlers while idling. */
int imap_conn_idle(struct imap_conn *c, imap_done_cb done, void *arg);
void imap_conn_done(struct imap_conn *c);

/* LOGOUT; the server's BYE and close are expected, not errors. */
int imap_conn_logout(struct imap_conn *c, imap_done_cb done, void *arg);

/* Any other simple command: text without tag and CRLF (no literals, no
 * secrets), e.g. "NAMESPACE".  Untagged data whose keyword is `keyword`
 * (case-insensitive; NULL: none) goes to on_data while it is in flight. */
typedef void (*imap_data_cb)(struct imap_conn *c, const struct imap_response *r, void *arg);
int imap_conn_command(struct imap_conn *c, const char *text, const char *keyword,
                      imap_data_cb on_data, imap_done_cb done, void *arg);

/* Write flags as an IMAP list "(\Seen \Flagged kw)" into out; returns the
 * length or OIMAP_ETOOBIG. */
int imap_flags_format(unsigned flags, const char *keywords, char *out, size_t cap);

#endif
