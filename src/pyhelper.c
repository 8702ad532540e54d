/* pyhelper.c - the python3 helper for expressions pyeval does not take.
 *
 * One helper process per run, started by the first expression that needs it
 * and stopped at exit.  The exchange is synchronous (see pyhelper.h for why
 * and for the protocol): a request is written, the reply line read, both
 * with poll() and a deadline so a hung user function cannot hang oimap for
 * ever.  Replies are parsed by a small JSON reader straight into struct
 * pyval values held in per-expression arenas, so the callers (folder.c,
 * config.c) handle a value from python3 exactly like one from pyeval.
 */
#include "pyhelper.h"

#include "err.h"
#include "log.h"
#include "strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PH_MAX_LINE (8u << 20)    /* a reply longer than this is a protocol error */
#define PH_MAX_DEPTH 64           /* JSON nesting */
#define PH_EVAL_TIMEOUT_MS 600000 /* load, eval: may wait for a passphrase prompt */
#define PH_CALL_TIMEOUT_MS 30000  /* a folder function: no human involved */
#define PH_STOP_GRACE_MS 2000     /* time to exit after end of input */
#define PH_FD_IN 3                /* the helper reads requests here */
#define PH_FD_OUT 4               /* and writes replies here */
#define PH_MAX_RESTARTS 3         /* after a crash or a hang, per run */

/* The helper program.  It mirrors offlineimap's LocalEval: the pythonfile
 * is executed as a module called '<none>' and every name of it (dir())
 * forms the namespace; each evaluation gets a fresh copy, plus 're' for the
 * folder options.  Python 3 only (offlineimap3). */
static const char helper_py[] =
    "import inspect, json, os, re, signal, sys, traceback, types\n"
    "sys.dont_write_bytecode = True\n"
    "if sys.path and sys.path[0] == '':\n"
    "    del sys.path[0]\n"
    "# oimap ends us (end of input); a handler, unlike SIG_IGN, is not inherited\n"
    "# by what pythonfile runs (a passphrase prompt stays interruptible)\n"
    "signal.signal(signal.SIGINT, lambda signum, frame: None)\n"
    "PATH = sys.argv[1] if len(sys.argv) > 1 else ''\n"
    "rd = os.fdopen(3, 'rb')\n"
    "wr = os.fdopen(4, 'wb')\n"
    "os.set_inheritable(3, False)\n"
    "os.set_inheritable(4, False)\n"
    "NS = {}\n"
    "FNS = []\n"
    "def send(obj):\n"
    "    wr.write(json.dumps(obj, ensure_ascii=True).encode('ascii') + b'\\n')\n"
    "    wr.flush()\n"
    "def fail(e):\n"
    "    if isinstance(e, SyntaxError):\n"
    "        text = 'SyntaxError: %s' % e.msg\n"
    "        if e.filename == '<string>':\n"
    "            text += ' (line %s, column %s)' % (e.lineno, e.offset)\n"
    "        else:\n"
    "            text += ' (%s:%s)' % (e.filename, e.lineno)\n"
    "    else:\n"
    "        lines = traceback.format_exception_only(type(e), e)\n"
    "        text = lines[-1].strip() if lines else type(e).__name__\n"
    "        for fr in reversed(traceback.extract_tb(e.__traceback__)):\n"
    "            if PATH and fr.filename == PATH:\n"
    "                text += ' (%s:%d in %s)' % (PATH, fr.lineno, fr.name)\n"
    "                break\n"
    "    return {'ok': False, 'error': text}\n"
    "def conv(v, depth):\n"
    "    if depth > 32:\n"
    "        raise ValueError('value nested too deeply for oimap')\n"
    "    if v is None or isinstance(v, (bool, str)):\n"
    "        return v\n"
    "    if isinstance(v, int):\n"
    "        if not -2**63 <= v < 2**63:\n"
    "            raise OverflowError('integer too large for oimap')\n"
    "        return v\n"
    "    if isinstance(v, (bytes, bytearray)):\n"
    "        return bytes(v).decode('utf-8', 'surrogateescape')\n"
    "    if isinstance(v, (list, tuple)):\n"
    "        return [conv(x, depth + 1) for x in v]\n"
    "    if isinstance(v, dict):\n"
    "        out = {}\n"
    "        for k, x in v.items():\n"
    "            if not isinstance(k, str):\n"
    "                raise TypeError('oimap takes only str dictionary keys, not %r' % (k,))\n"
    "            out[k] = conv(x, depth + 1)\n"
    "        return out\n"
    "    raise TypeError('oimap cannot use a value of type %s' % type(v).__name__)\n"
    "def arity(f):\n"
    "    try:\n"
    "        ps = inspect.signature(f).parameters.values()\n"
    "    except (TypeError, ValueError):\n"
    "        return 0, -1\n"
    "    lo = hi = 0\n"
    "    for p in ps:\n"
    "        if p.kind == p.VAR_POSITIONAL:\n"
    "            hi = -1\n"
    "        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):\n"
    "            hi = hi + 1 if hi >= 0 else hi\n"
    "            lo += p.default is p.empty\n"
    "    return lo, hi\n"
    "def load(path):\n"
    "    with open(path, 'rb') as f:\n"
    "        src = f.read()\n"
    "    mod = types.ModuleType('<none>')\n"
    "    mod.__file__ = path\n"
    "    sys.modules['<none>'] = mod\n"
    "    exec(compile(src, path, 'exec'), mod.__dict__)\n"
    "    for k in dir(mod):\n"
    "        NS[k] = getattr(mod, k)\n"
    "def answer(req):\n"
    "    if req.get('op') == 'eval':\n"
    "        names = dict(NS)\n"
    "        if req.get('re'):\n"
    "            names['re'] = re\n"
    "        v = eval(req['expr'], names)\n"
    "        if callable(v):\n"
    "            FNS.append(v)\n"
    "            lo, hi = arity(v)\n"
    "            return {'ok': True, 'fn': len(FNS) - 1, 'min': lo, 'max': hi}\n"
    "        return {'ok': True, 'value': conv(v, 0)}\n"
    "    if req.get('op') == 'call':\n"
    "        return {'ok': True, 'value': conv(FNS[req['fn']](*req['args']), 0)}\n"
    "    raise ValueError('unknown request %r' % req.get('op'))\n"
    "try:\n"
    "    if PATH:\n"
    "        load(PATH)\n"
    "except BaseException as e:\n"
    "    r = fail(e)\n"
    "    r['error'] = 'cannot load %s: %s' % (PATH, r['error'])\n"
    "    send(r)\n"
    "    sys.exit(1)\n"
    "send({'ok': True, 'hello': 'oimap-pyhelper 1'})\n"
    "for line in rd:\n"
    "    try:\n"
    "        out = answer(json.loads(line))\n"
    "    except BaseException as e:  # SystemExit from user code is an error too\n"
    "        out = fail(e)\n"
    "    send(out)\n";

/* ---- the process ---------------------------------------------------------------------------- */

static struct {
    bool enabled;
    char *pythonfile; /* NULL: none */
    char *where;      /* "FILE:LINE: [general] pythonfile" */
    pid_t pid;        /* 0: not running */
    int to_fd, from_fd;
    char *dead;      /* why the helper cannot be used any more; NULL while usable */
    bool dead_final; /* pythonfile does not load: no restart helps */
    unsigned gen;    /* helper processes started: function ids are per process */
    unsigned restarts;
    char *rbuf; /* bytes received and not yet consumed */
    size_t rlen, rcap, consumed;
    bool atexit_set;
} H = {.to_fd = -1, .from_fd = -1};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pyhelper_find_python(char *buf, size_t len)
{
    const char *env = getenv("OIMAP_PYTHON");
    if (env && *env) {
        if (access(env, X_OK) < 0 || (size_t)snprintf(buf, len, "%s", env) >= len)
            return -ENOENT;
        return 0;
    }
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path;;) {
        size_t n = strcspn(p, ":");
        struct stat st;
        /* an empty PATH entry is the current directory, as for execvp */
        if ((size_t)snprintf(buf, len, "%.*s%spython3", (int)n, n ? p : ".", "/") < len &&
            access(buf, X_OK) == 0 && stat(buf, &st) == 0 && S_ISREG(st.st_mode))
            return 0;
        if (!p[n])
            break;
        p += n + 1;
    }
    return -ENOENT;
}

static void set_dead(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_dead(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    free(H.dead);
    H.dead = strdup(msg);
    if (!H.dead)
        H.dead = strdup("out of memory");
}

static void close_fds(void)
{
    if (H.to_fd >= 0)
        close(H.to_fd);
    if (H.from_fd >= 0)
        close(H.from_fd);
    H.to_fd = H.from_fd = -1;
    H.rlen = H.consumed = 0;
}

/* The helper answers no more: kill it now.  reason becomes the error of
 * every later request. */
static void helper_kill(const char *reason)
{
    if (H.pid > 0) {
        kill(H.pid, SIGKILL);
        while (waitpid(H.pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    H.pid = 0;
    close_fds();
    if (!H.dead)
        set_dead("the python3 helper stopped: %s", reason);
}

void pyhelper_stop(void)
{
    if (H.pid <= 0) {
        close_fds();
        return;
    }
    /* End of input is the helper's signal to exit. */
    if (H.to_fd >= 0)
        close(H.to_fd);
    H.to_fd = -1;
    int64_t deadline = now_ms() + PH_STOP_GRACE_MS;
    pid_t r;
    while ((r = waitpid(H.pid, NULL, WNOHANG)) == 0 && now_ms() < deadline)
        poll(NULL, 0, 10);
    if (r == 0) {
        kill(H.pid, SIGKILL);
        while (waitpid(H.pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    H.pid = 0;
    close_fds();
}

pid_t pyhelper_pid(void)
{
    return H.pid;
}

int pyhelper_enable(const char *pythonfile, const char *where)
{
    if (pythonfile && !*pythonfile)
        pythonfile = NULL;
    bool same = H.enabled && ((!pythonfile && !H.pythonfile) ||
                              (pythonfile && H.pythonfile && !strcmp(pythonfile, H.pythonfile)));
    if (same)
        return 0;
    pyhelper_disable();
    H.pythonfile = pythonfile ? strdup(pythonfile) : NULL;
    H.where = strdup(where ? where : "[general] pythonfile");
    if ((pythonfile && !H.pythonfile) || !H.where) {
        pyhelper_disable();
        return -ENOMEM;
    }
    H.enabled = true;
    return 0;
}

void pyhelper_disable(void)
{
    pyhelper_stop();
    free(H.pythonfile);
    free(H.where);
    free(H.dead);
    free(H.rbuf);
    H.pythonfile = H.where = H.dead = H.rbuf = NULL;
    H.rcap = 0;
    H.enabled = H.dead_final = false;
    H.restarts = 0;
}

static void on_exit_stop(void)
{
    pyhelper_stop();
}

/* Between fork and exec only async-signal-safe calls.  The pipe ends are
 * first moved above the target numbers so that dup2 never meets itself
 * (dup2(3, 3) would keep close-on-exec). */
static void child_exec(const char *py, char *const argv[], int rfd, int wfd)
{
    int r = fcntl(rfd, F_DUPFD, 10), w = fcntl(wfd, F_DUPFD, 10);
    if (r < 0 || w < 0 || dup2(r, PH_FD_IN) < 0 || dup2(w, PH_FD_OUT) < 0)
        _exit(127);
    dup2(STDERR_FILENO, STDOUT_FILENO); /* print() in pythonfile goes to stderr */
    /* No descriptor of oimap (sockets, the status store) lives on in the
     * helper or in what pythonfile runs. */
#ifdef SYS_close_range
    if (syscall(SYS_close_range, PH_FD_OUT + 1, ~0U, 0) < 0)
#endif
        for (int fd = PH_FD_OUT + 1; fd < 4096; fd++)
            close(fd);
    execv(py, argv);
    _exit(127);
}

static int helper_start(void)
{
    char py[PATH_MAX];
    if (pyhelper_find_python(py, sizeof py) < 0)
        return -ENOENT; /* not fatal: python3 may be installed before the next try */
    /* As main() does: a helper that died must be EPIPE, not a kill. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(out, O_CLOEXEC) < 0) {
        int e = -errno;
        close(in[0]);
        close(in[1]);
        return e;
    }
    char *argv[] = {py, "-c", (char *)helper_py, H.pythonfile ? H.pythonfile : "", NULL};
    pid_t pid = fork();
    if (pid == 0)
        child_exec(py, argv, in[0], out[1]);
    int e = pid < 0 ? -errno : 0;
    close(in[0]);
    close(out[1]);
    if (pid < 0) {
        close(in[1]);
        close(out[0]);
        return e;
    }
    H.pid = pid;
    H.to_fd = in[1];
    H.from_fd = out[0];
    fcntl(H.to_fd, F_SETFL, fcntl(H.to_fd, F_GETFL) | O_NONBLOCK);
    fcntl(H.from_fd, F_SETFL, fcntl(H.from_fd, F_GETFL) | O_NONBLOCK);
    if (!H.atexit_set)
        H.atexit_set = atexit(on_exit_stop) == 0;
    return 0;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return OIMAP_ETIMEOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

static int write_all(const char *buf, size_t len, int64_t deadline)
{
    while (len) {
        ssize_t n = write(H.to_fd, buf, len);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return -errno;
        int r = wait_fd(H.to_fd, POLLOUT, deadline);
        if (r < 0)
            return r;
    }
    return 0;
}

/* The next line from the helper, '\n' replaced by NUL; valid until the next
 * read_line.  Returns 0, OIMAP_ETIMEOUT, OIMAP_ETOOBIG, -EPIPE (end of
 * input: the helper exited) or another negative errno. */
static int read_line(int64_t deadline, char **line_r, size_t *len_r)
{
    if (H.consumed) {
        memmove(H.rbuf, H.rbuf + H.consumed, H.rlen - H.consumed);
        H.rlen -= H.consumed;
        H.consumed = 0;
    }
    size_t scanned = 0;
    for (;;) {
        char *nl = H.rbuf ? memchr(H.rbuf + scanned, '\n', H.rlen - scanned) : NULL;
        if (nl) {
            *nl = '\0';
            *line_r = H.rbuf;
            *len_r = (size_t)(nl - H.rbuf);
            H.consumed = *len_r + 1;
            return 0;
        }
        scanned = H.rlen;
        if (H.rlen >= PH_MAX_LINE)
            return OIMAP_ETOOBIG;
        if (H.rcap - H.rlen < 4096) {
            size_t cap = H.rcap ? H.rcap * 2 : 16384;
            char *nb = realloc(H.rbuf, cap);
            if (!nb)
                return -ENOMEM;
            H.rbuf = nb;
            H.rcap = cap;
        }
        ssize_t n = read(H.from_fd, H.rbuf + H.rlen, H.rcap - H.rlen);
        if (n > 0) {
            H.rlen += (size_t)n;
            continue;
        }
        if (n == 0)
            return -EPIPE;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int r = wait_fd(H.from_fd, POLLIN, deadline);
        if (r < 0)
            return r;
    }
}

static const char *io_reason(int r, char *buf, size_t len)
{
    if (r == OIMAP_ETIMEOUT)
        return "no answer in time";
    if (r == OIMAP_ETOOBIG)
        return "an answer too long";
    if (r != -EPIPE || H.pid <= 0)
        return err_str(r);
    /* It exited: say how, if it is already gone. */
    int st;
    pid_t w = waitpid(H.pid, &st, WNOHANG);
    if (w == H.pid) {
        H.pid = 0;
        if (WIFEXITED(st))
            snprintf(buf, len, "it exited with status %d", WEXITSTATUS(st));
        else
            snprintf(buf, len, "it was killed by signal %d", WTERMSIG(st));
        return buf;
    }
    return "it closed its output";
}

/* ---- arenas --------------------------------------------------------------------------------- */

struct ablk {
    struct ablk *next;
    size_t used, cap;
    max_align_t data[];
};

struct arena {
    struct ablk *head;
};

static void *arena_alloc(struct arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct ablk *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 8192 ? n : 8192;
        if (!(b = malloc(sizeof *b + cap)))
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
    }
    void *p = (unsigned char *)b->data + b->used;
    b->used += n;
    return p;
}

static void arena_reset(struct arena *a)
{
    for (struct ablk *b = a->head, *nx; b; b = nx) {
        nx = b->next;
        /* Passwords pass through here. */
        explicit_bzero(b->data, b->used);
        free(b);
    }
    a->head = NULL;
}

/* ---- JSON: encoding requests ---------------------------------------------------------------- */

/* A JSON string, ASCII only; a byte that is not UTF-8 becomes \udcXX, which
 * Python reads as surrogateescape does. */
static void json_str(struct strbuf *b, const char *s, size_t len)
{
    strbuf_add(b, "\"", 1);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += pyeval_u8_decode(s, len, i, &cp);
        char e[16];
        if (cp == '"' || cp == '\\') {
            e[0] = '\\', e[1] = (char)cp;
            strbuf_add(b, e, 2);
        } else if (cp >= 0x20 && cp < 0x7f) {
            e[0] = (char)cp;
            strbuf_add(b, e, 1);
        } else if (cp < 0x10000) {
            snprintf(e, sizeof e, "\\u%04" PRIx32, cp);
            strbuf_add(b, e, 6);
        } else {
            cp -= 0x10000;
            snprintf(e, sizeof e, "\\u%04" PRIx32 "\\u%04" PRIx32, 0xD800 + (cp >> 10),
                     0xDC00 + (cp & 0x3FF));
            strbuf_add(b, e, 12);
        }
    }
    strbuf_add(b, "\"", 1);
}

static int json_value(struct strbuf *b, const struct pyval *v, int depth)
{
    char num[32];
    if (depth > PH_MAX_DEPTH)
        return OIMAP_ETOOBIG;
    switch (v->type) {
    case PYV_NONE:
        strbuf_adds(b, "null");
        return 0;
    case PYV_BOOL:
        strbuf_adds(b, v->u.b ? "true" : "false");
        return 0;
    case PYV_INT:
        snprintf(num, sizeof num, "%" PRId64, v->u.i);
        strbuf_adds(b, num);
        return 0;
    case PYV_STR:
        json_str(b, v->u.str.s, v->u.str.len);
        return 0;
    case PYV_LIST:
    case PYV_TUPLE:
        strbuf_adds(b, "[");
        for (size_t i = 0; i < v->u.seq.n; i++) {
            if (i)
                strbuf_adds(b, ",");
            int r = json_value(b, &v->u.seq.v[i], depth + 1);
            if (r < 0)
                return r;
        }
        strbuf_adds(b, "]");
        return 0;
    case PYV_DICT:
        strbuf_adds(b, "{");
        for (size_t i = 0; i < v->u.dict.n; i++) {
            if (v->u.dict.k[i].type != PYV_STR)
                return OIMAP_ECONFIG;
            if (i)
                strbuf_adds(b, ",");
            json_str(b, v->u.dict.k[i].u.str.s, v->u.dict.k[i].u.str.len);
            strbuf_adds(b, ":");
            int r = json_value(b, &v->u.dict.v[i], depth + 1);
            if (r < 0)
                return r;
        }
        strbuf_adds(b, "}");
        return 0;
    default:
        return OIMAP_ECONFIG;
    }
}

/* ---- JSON: decoding replies into pyvals ----------------------------------------------------- */

struct jp {
    const char *s, *end;
    struct arena *a;
    int depth;
};

static void jp_ws(struct jp *p)
{
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\r' || *p->s == '\n'))
        p->s++;
}

static int hex4(const char *s, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

/* A string: the decoded form is never longer than the escaped one. */
static int jp_string(struct jp *p, struct pyval *out)
{
    const char *s = ++p->s; /* after the quote */
    const char *q = s;
    while (q < p->end && *q != '"')
        q += *q == '\\' ? 2 : 1;
    if (q >= p->end)
        return OIMAP_EPROTO;
    char *o = arena_alloc(p->a, (size_t)(q - s) + 1);
    if (!o)
        return -ENOMEM;
    size_t n = 0;
    while (s < q) {
        unsigned char c = (unsigned char)*s++;
        if (c < 0x20)
            return OIMAP_EPROTO;
        if (c != '\\') {
            o[n++] = (char)c;
            continue;
        }
        char e = *s++;
        uint32_t cp, lo;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            o[n++] = e;
            continue;
        case 'b':
            o[n++] = '\b';
            continue;
        case 'f':
            o[n++] = '\f';
            continue;
        case 'n':
            o[n++] = '\n';
            continue;
        case 'r':
            o[n++] = '\r';
            continue;
        case 't':
            o[n++] = '\t';
            continue;
        case 'u':
            if (q - s < 4 || hex4(s, &cp) < 0)
                return OIMAP_EPROTO;
            s += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && q - s >= 6 && s[0] == '\\' && s[1] == 'u' &&
                hex4(s + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                s += 6;
            } else if (cp >= 0xD800 && cp < 0xE000 && !(cp >= 0xDC80 && cp <= 0xDCFF)) {
                cp = 0xFFFD; /* a lone surrogate that is no escaped byte */
            }
            n += pyeval_u8_encode(cp, o + n);
            continue;
        default:
            return OIMAP_EPROTO;
        }
    }
    o[n] = '\0';
    p->s = q + 1;
    *out = (struct pyval){.type = PYV_STR, .u.str = {o, n}};
    return 0;
}

static int jp_value(struct jp *p, struct pyval *out);

/* Items of an array (keys == NULL) or object, collected then copied into
 * the arena. */
static int jp_items(struct jp *p, char close, struct pyval *out)
{
    struct pyval *vals = NULL, *keys = NULL;
    size_t n = 0, cap = 0;
    int r = 0;
    bool object = close == '}';
    p->s++;
    jp_ws(p);
    if (p->s < p->end && *p->s == close) {
        p->s++;
        goto done;
    }
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            struct pyval *nv = realloc(vals, cap * sizeof *nv);
            if (nv)
                vals = nv;
            struct pyval *nk = object ? realloc(keys, cap * sizeof *nk) : NULL;
            if (nk)
                keys = nk;
            if (!nv || (object && !nk)) {
                r = -ENOMEM;
                goto out;
            }
        }
        jp_ws(p);
        if (object) {
            if (p->s >= p->end || *p->s != '"' || (r = jp_string(p, &keys[n])) < 0) {
                r = r < 0 ? r : OIMAP_EPROTO;
                goto out;
            }
            jp_ws(p);
            if (p->s >= p->end || *p->s++ != ':') {
                r = OIMAP_EPROTO;
                goto out;
            }
        }
        if ((r = jp_value(p, &vals[n])) < 0)
            goto out;
        n++;
        jp_ws(p);
        if (p->s < p->end && *p->s == ',') {
            p->s++;
            continue;
        }
        if (p->s < p->end && *p->s == close) {
            p->s++;
            break;
        }
        r = OIMAP_EPROTO;
        goto out;
    }
done:;
    struct pyval *av = arena_alloc(p->a, (n ? n : 1) * sizeof *av);
    struct pyval *ak = object ? arena_alloc(p->a, (n ? n : 1) * sizeof *ak) : NULL;
    if (!av || (object && !ak)) {
        r = -ENOMEM;
        goto out;
    }
    if (n)
        memcpy(av, vals, n * sizeof *av);
    if (object) {
        if (n)
            memcpy(ak, keys, n * sizeof *ak);
        *out = (struct pyval){.type = PYV_DICT, .u.dict = {ak, av, n}};
    } else {
        *out = (struct pyval){.type = PYV_LIST, .u.seq = {av, n}};
    }
out:
    free(vals);
    free(keys);
    return r;
}

static bool jp_word(struct jp *p, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(p->end - p->s) < n || memcmp(p->s, w, n) != 0)
        return false;
    p->s += n;
    return true;
}

static int jp_value(struct jp *p, struct pyval *out)
{
    jp_ws(p);
    if (p->s >= p->end)
        return OIMAP_EPROTO;
    if (p->depth > PH_MAX_DEPTH)
        return OIMAP_ETOOBIG;
    char c = *p->s;
    int r;
    switch (c) {
    case '{':
    case '[':
        p->depth++;
        r = jp_items(p, c == '{' ? '}' : ']', out);
        p->depth--;
        return r;
    case '"':
        return jp_string(p, out);
    case 't':
    case 'f':
        if (!jp_word(p, c == 't' ? "true" : "false"))
            return OIMAP_EPROTO;
        *out = (struct pyval){.type = PYV_BOOL, .u.b = c == 't'};
        return 0;
    case 'n':
        if (!jp_word(p, "null"))
            return OIMAP_EPROTO;
        *out = (struct pyval){.type = PYV_NONE};
        return 0;
    default:
        break;
    }
    /* Integers only: the helper never sends anything else. */
    const char *s = p->s;
    bool neg = *s == '-';
    s += neg;
    if (s >= p->end || *s < '0' || *s > '9')
        return OIMAP_EPROTO;
    uint64_t v = 0;
    for (; s < p->end && *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return OIMAP_EPROTO;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v > (uint64_t)INT64_MAX + neg || (s < p->end && (*s == '.' || *s == 'e' || *s == 'E')))
        return OIMAP_EPROTO;
    p->s = s;
    *out = (struct pyval){.type = PYV_INT, .u.i = neg ? (int64_t)(0 - v) : (int64_t)v};
    return 0;
}

static const struct pyval *dict_get(const struct pyval *d, const char *key)
{
    if (d->type != PYV_DICT)
        return NULL;
    for (size_t i = 0; i < d->u.dict.n; i++)
        if (d->u.dict.k[i].type == PYV_STR && strcmp(d->u.dict.k[i].u.str.s, key) == 0)
            return &d->u.dict.v[i];
    return NULL;
}

/* ---- one exchange --------------------------------------------------------------------------- */

/* Start the helper if needed and read its greeting.  A helper that crashed
 * or hung is started again for a new expression (restart: a daemon's next
 * sync compiles its expressions again), a few times per run; expressions
 * compiled before keep failing, their functions lived in the old process.
 * Returns 0, or OIMAP_ECONFIG / -ENOENT with H.dead saying why. */
static int helper_ready(void)
{
    if (H.dead && (H.dead_final || H.restarts >= PH_MAX_RESTARTS))
        return OIMAP_ECONFIG;
    if (H.dead) {
        log_warn("%s: starting python3 again (%s)", H.where, H.dead);
        free(H.dead);
        H.dead = NULL;
        H.restarts++;
    }
    if (H.pid > 0)
        return 0;
    int r = helper_start();
    if (r == -ENOENT)
        return r;
    if (r < 0) {
        set_dead("cannot start python3: %s", err_str(r));
        return OIMAP_ECONFIG;
    }
    char *line = NULL, why[96]; /* (read_line's -errno: the analyzer cannot see it is < 0) */
    size_t len = 0;
    r = read_line(now_ms() + PH_EVAL_TIMEOUT_MS, &line, &len);
    if (r < 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", io_reason(r, why, sizeof why));
        helper_kill(msg);
        return OIMAP_ECONFIG;
    }
    struct arena a = {0};
    struct jp p = {.s = line, .end = line + len, .a = &a};
    struct pyval hello;
    r = jp_value(&p, &hello);
    const struct pyval *err = r == 0 ? dict_get(&hello, "error") : NULL;
    if (r == 0 && dict_get(&hello, "hello")) {
        arena_reset(&a);
        H.gen++;
        return 0;
    }
    if (err && err->type == PYV_STR) {
        set_dead("%s: %s", H.where, err->u.str.s);
        H.dead_final = true;
    }
    arena_reset(&a);
    helper_kill("it did not greet as expected");
    return OIMAP_ECONFIG;
}

/* Send req (one JSON line, without the line end) and parse the reply into
 * a.  want_gen: 0 for an eval (the helper is started, or started again, as
 * needed); for a call, the helper process holding the function.  Returns 0
 * with the reply object in *reply_r, or OIMAP_ECONFIG with H.dead set (the
 * helper is gone), -ESTALE (not the process of want_gen), -ENOENT (no
 * python3), -ENOMEM. */
static int exchange(struct strbuf *req, int timeout_ms, unsigned want_gen, struct arena *a,
                    struct pyval *reply_r)
{
    int r;
    if (want_gen) { /* a call: the function lives in helper process want_gen */
        if (H.dead)
            return OIMAP_ECONFIG;
        if (H.pid <= 0 || H.gen != want_gen)
            return -ESTALE;
    } else if ((r = helper_ready()) < 0) {
        return r;
    }
    strbuf_add(req, "\n", 1);
    if (req->err)
        return -ENOMEM;
    int64_t deadline = now_ms() + timeout_ms;
    char *line = NULL, why[96]; /* (read_line's -errno: the analyzer cannot see it is < 0) */
    size_t len = 0;
    if ((r = write_all(req->p, req->len, deadline)) < 0 ||
        (r = read_line(deadline, &line, &len)) < 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", io_reason(r, why, sizeof why));
        if (r == OIMAP_ETIMEOUT)
            snprintf(msg, sizeof msg, "no answer within %d s", timeout_ms / 1000);
        helper_kill(msg);
        return r == -ENOMEM ? r : OIMAP_ECONFIG;
    }
    struct jp p = {.s = line, .end = line + len, .a = a};
    r = jp_value(&p, reply_r);
    if (r == 0 && reply_r->type != PYV_DICT)
        r = OIMAP_EPROTO;
    if (r < 0) {
        helper_kill(r == -ENOMEM ? "out of memory" : "an answer that is not valid JSON");
        return r == -ENOMEM ? r : OIMAP_ECONFIG;
    }
    return 0;
}

/* ---- expressions ---------------------------------------------------------------------------- */

struct pyexpr {
    struct pyeval *pe; /* NULL: in python3 */
    unsigned gen;      /* the helper process holding fn */
    char *src;         /* kept to hand it to python3 later (see pyeval_gave_up) */
    bool with_re;
    bool is_fn;
    int64_t fn;
    int min, max;
    struct pyval value; /* a plain expression's value, in keep */
    struct arena keep, scratch;
    char *where;
    char err[1024];
};

/* pyeval's message without the "WHERE: " it starts with. */
static const char *strip_where(const char *msg, const char *where)
{
    size_t n = strlen(where);
    if (strncmp(msg, where, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
        return msg + n + 2;
    return msg;
}

static void report(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(char *err, size_t errlen, const char *fmt, ...)
{
    char msg[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    else if (!err)
        log_error("%s", msg);
}

/* The error text of a reply {"ok": false, "error": ...}, or NULL. */
static const char *reply_error(const struct pyval *reply)
{
    const struct pyval *ok = dict_get(reply, "ok");
    if (ok && ok->type == PYV_BOOL && ok->u.b)
        return NULL;
    const struct pyval *e = dict_get(reply, "error");
    return e && e->type == PYV_STR ? e->u.str.s : "the python3 helper answered nonsense";
}

static int int_field(const struct pyval *reply, const char *key, int64_t *v)
{
    const struct pyval *f = dict_get(reply, key);
    if (!f || f->type != PYV_INT)
        return -1;
    *v = f->u.i;
    return 0;
}

/* Evaluate src in the helper: a value, or a callable kept there. */
static int python_compile(struct pyexpr *x, const char *src, bool with_re, const char *reason,
                          char *err, size_t errlen)
{
    struct strbuf req = {0};
    strbuf_adds(&req, "{\"op\":\"eval\",\"re\":");
    strbuf_adds(&req, with_re ? "true" : "false");
    strbuf_adds(&req, ",\"expr\":");
    json_str(&req, src, strlen(src));
    strbuf_adds(&req, "}");
    struct pyval reply;
    int r = exchange(&req, PH_EVAL_TIMEOUT_MS, 0, &x->keep, &reply);
    strbuf_wipe(&req);
    if (r == -ENOENT) {
        const char *env = getenv("OIMAP_PYTHON");
        if (env && *env)
            report(err, errlen,
                   "%s: needs python3, and $OIMAP_PYTHON (%s) is not executable (oimap's own "
                   "evaluator: %s)",
                   x->where, env, reason);
        else
            report(err, errlen,
                   "%s: needs python3, which was not found in PATH (oimap's own evaluator: %s)",
                   x->where, reason);
        return OIMAP_ECONFIG;
    }
    if (r == -ENOMEM)
        return r;
    if (r < 0) {
        report(err, errlen, "%s: %s", x->where, H.dead);
        return OIMAP_ECONFIG;
    }
    const char *e = reply_error(&reply);
    if (e) {
        bool hint = !H.pythonfile && strncmp(e, "NameError", 9) == 0;
        report(err, errlen, "%s: %s%s", x->where, e,
               hint ? " (no [general] pythonfile is set)" : "");
        return OIMAP_ECONFIG;
    }
    int64_t lo, hi;
    const struct pyval *v = dict_get(&reply, "value");
    if (int_field(&reply, "fn", &x->fn) == 0 && int_field(&reply, "min", &lo) == 0 &&
        int_field(&reply, "max", &hi) == 0) {
        x->is_fn = true;
        x->gen = H.gen;
        x->min = lo > 1000 ? 1000 : (int)lo;
        x->max = hi > 1000 ? 1000 : (int)hi;
    } else if (v) {
        x->value = *v;
    } else {
        report(err, errlen, "%s: the python3 helper answered nonsense", x->where);
        return OIMAP_ECONFIG;
    }
    return 0;
}

int pyexpr_compile(const char *src, const char *where, bool with_re, char *err, size_t errlen,
                   struct pyexpr **x_r)
{
    *x_r = NULL;
    if (err && errlen)
        err[0] = '\0';
    struct pyexpr *x = calloc(1, sizeof *x);
    if (!x || !(x->where = strdup(where ? where : "expression")) ||
        !(x->src = strdup(src ? src : ""))) {
        if (x)
            free(x->where);
        free(x);
        return -ENOMEM;
    }
    x->with_re = with_re;
    char perr[1024];
    int r = pyeval_compile(src, x->where, perr, sizeof perr, &x->pe);
    if (r == 0) {
        *x_r = x;
        return 0;
    }
    if (r != -ENOMEM && !H.enabled) {
        report(err, errlen, "%s", perr);
        r = OIMAP_ECONFIG;
    } else if (r != -ENOMEM) {
        r = python_compile(x, src ? src : "", with_re, strip_where(perr, x->where), err, errlen);
    }
    if (r < 0) {
        pyexpr_free(&x);
        return r;
    }
    *x_r = x;
    return 0;
}

void pyexpr_free(struct pyexpr **xp)
{
    struct pyexpr *x = *xp;
    if (!x)
        return;
    pyeval_free(&x->pe);
    arena_reset(&x->keep);
    arena_reset(&x->scratch);
    free(x->where);
    free(x->src);
    free(x);
    *xp = NULL;
}

bool pyexpr_is_python(const struct pyexpr *x)
{
    return !x->pe;
}

bool pyexpr_accepts(const struct pyexpr *x, int n)
{
    if (x->pe)
        return pyeval_nparams(x->pe) == n;
    return x->is_fn && n >= x->min && (x->max < 0 || n <= x->max);
}

bool pyexpr_is_identity(const struct pyexpr *x)
{
    return x->pe && pyeval_is_identity(x->pe);
}

/* pyeval compiled the expression but stopped at something it does not do
 * that Python does ("%-formatting of strings is not supported", a regular
 * expression feature): Python's answer is the one that counts. */
static bool pyeval_gave_up(const struct pyexpr *x, int r)
{
    const char *m = pyeval_errmsg(x->pe);
    return r == OIMAP_ECONFIG && H.enabled &&
           (strstr(m, " is not supported") || strstr(m, "unsupported regular expression"));
}

/* From now on x is evaluated by python3.  Returns 0, or <0 with x->err
 * set (x stays pyeval's). */
static int switch_to_python(struct pyexpr *x)
{
    char reason[1024];
    snprintf(reason, sizeof reason, "%s", strip_where(pyeval_errmsg(x->pe), x->where));
    int r = python_compile(x, x->src, x->with_re, reason, x->err, sizeof x->err);
    if (r == 0)
        pyeval_free(&x->pe);
    return r;
}

int pyexpr_eval(struct pyexpr *x, struct pyval *out)
{
    x->err[0] = '\0';
    if (x->pe) {
        int r = pyeval_eval(x->pe, out);
        if (!pyeval_gave_up(x, r))
            return r;
        if ((r = switch_to_python(x)) < 0)
            return r;
    }
    if (x->is_fn) /* (an if, not ?: with a compound literal: cppcheck 2.10 cannot parse it) */
        *out = (struct pyval){.type = PYV_LAMBDA};
    else
        *out = x->value;
    return 0;
}

int pyexpr_call(struct pyexpr *x, const struct pyval *args, size_t nargs, struct pyval *out)
{
    x->err[0] = '\0';
    if (x->pe) {
        int r = pyeval_call(x->pe, args, nargs, out);
        if (!pyeval_gave_up(x, r))
            return r;
        if ((r = switch_to_python(x)) < 0)
            return r;
    }
    arena_reset(&x->scratch);
    if (!x->is_fn) {
        snprintf(x->err, sizeof x->err, "%s: TypeError: the value is not callable", x->where);
        return OIMAP_ECONFIG;
    }
    struct strbuf req = {0};
    char num[48];
    snprintf(num, sizeof num, "{\"op\":\"call\",\"fn\":%" PRId64 ",\"args\":[", x->fn);
    strbuf_adds(&req, num);
    int r = 0;
    for (size_t i = 0; i < nargs && r == 0; i++) {
        if (i)
            strbuf_adds(&req, ",");
        r = json_value(&req, &args[i], 0);
    }
    strbuf_adds(&req, "]}");
    if (r < 0) {
        strbuf_wipe(&req);
        snprintf(x->err, sizeof x->err, "%s: an argument python3 cannot be given", x->where);
        return OIMAP_ECONFIG;
    }
    struct pyval reply;
    r = exchange(&req, PH_CALL_TIMEOUT_MS, x->gen, &x->scratch, &reply);
    strbuf_wipe(&req);
    if (r == -ENOMEM)
        return r;
    if (r == -ESTALE) {
        snprintf(x->err, sizeof x->err,
                 "%s: the python3 helper was restarted since this expression was compiled",
                 x->where);
        return OIMAP_ECONFIG;
    }
    if (r < 0) {
        snprintf(x->err, sizeof x->err, "%s: %s", x->where, H.dead ? H.dead : "python3 failed");
        return OIMAP_ECONFIG;
    }
    const char *e = reply_error(&reply);
    const struct pyval *v = dict_get(&reply, "value");
    if (e || !v) {
        snprintf(x->err, sizeof x->err, "%s: %s", x->where,
                 e ? e : "the python3 helper answered nonsense");
        return OIMAP_ECONFIG;
    }
    *out = *v;
    return 0;
}

int pyexpr_call1(struct pyexpr *x, const char *arg, struct pyval *out)
{
    struct pyval a = pyval_str(arg);
    return pyexpr_call(x, &a, 1, out);
}

const char *pyexpr_errmsg(const struct pyexpr *x)
{
    return x->err[0] || !x->pe ? x->err : pyeval_errmsg(x->pe);
}

const char *pyexpr_where(const struct pyexpr *x)
{
    return x->where;
}
