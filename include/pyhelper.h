/* pyhelper.h - Python expressions beyond pyeval, evaluated by python3.
 *
 * offlineimap eval()s its Python-expression options in a namespace made of
 * the [general] pythonfile's globals.  oimap evaluates what it can with its
 * own evaluator (pyeval.h); an expression that evaluator refuses (a call
 * into pythonfile such as get_password("host"), a name it does not know, a
 * construct outside its subset) goes to one python3 helper process per run,
 * started the first time such an expression is compiled.
 *
 * The helper: `python3 -c SCRIPT PYTHONFILE` (the script is embedded in
 * pyhelper.c).  It executes PYTHONFILE in a fresh module namespace as
 * offlineimap does (no bytecode written, the current directory not on
 * sys.path), then answers requests.  Its standard input and error are
 * oimap's, its standard output goes to oimap's standard error (a print() in
 * pythonfile cannot disturb oimap's output); the protocol uses fds 3 and 4.
 *
 * Protocol (documented in oimap.conf(5), PYTHONFILE): JSON text, one object
 * per line (JSON escapes newlines, so a line is a message), ASCII only;
 * non-UTF-8 bytes of a string travel as lone surrogates \udc80..\udcff
 * (Python's surrogateescape).  oimap sends a request and waits for its reply.
 *   helper, once at start:  {"ok": true, "hello": "oimap-pyhelper 1"}
 *                       or  {"ok": false, "error": "cannot load ...: ..."}
 *   {"op": "eval", "expr": TEXT, "re": BOOL}
 *       eval(TEXT, copy of the pythonfile namespace [+ 're' if BOOL])
 *       -> {"ok": true, "value": V}
 *       -> {"ok": true, "fn": ID, "min": N, "max": M}   a callable, kept as ID;
 *          it takes N to M positional arguments (M = -1: no upper bound)
 *   {"op": "call", "fn": ID, "args": [V...]}  -> {"ok": true, "value": V}
 *   any failure                               -> {"ok": false, "error": TEXT}
 * V is None, a bool, an int (64-bit), a str, a list (tuples too) or a dict
 * with str keys; bytes are decoded as UTF-8.  Other types are an error.
 * The helper exits at end of input: oimap closes its end when it exits
 * (atexit) or with pyhelper_stop().
 *
 * Calls block the calling thread (the loop thread): the callers' interfaces
 * are synchronous and a warm helper answers in tens of microseconds.  A call
 * gets no answer within 30 s (an eval request, which may be a passphrase
 * prompt: 10 minutes) -> the helper is killed and the calls of expressions
 * compiled until then fail; the next pyexpr_compile() (a daemon's next sync)
 * starts a new helper, at most 3 times per run.  A pythonfile that does not
 * load is final.  Not thread-safe: one thread.
 */
#ifndef OIMAP_PYHELPER_H
#define OIMAP_PYHELPER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "pyeval.h"

/* Allow the python3 fallback for this run.  pythonfile (expanded; NULL or
 * "" for none) is what the helper will load; where ("FILE:LINE: [general]
 * pythonfile") prefixes errors about loading it.  Nothing is started here.
 * Calling it again with another file stops a running helper.  Until it is
 * called, pyexpr_compile() uses pyeval only (unit tests, fuzzers). */
int pyhelper_enable(const char *pythonfile, const char *where);
/* Forget the fallback (and stop the helper). */
void pyhelper_disable(void);
/* Close the helper's input and wait for it (killed after 2 s).  Registered
 * with atexit() when the helper starts; safe to call any time. */
void pyhelper_stop(void);
/* The helper's process id, 0 when it is not running (for tests). */
pid_t pyhelper_pid(void);

/* The python3 to run: $OIMAP_PYTHON if set, else python3 found in $PATH.
 * Returns 0 with the path in buf, or -ENOENT. */
int pyhelper_find_python(char *buf, size_t len);

/* A Python expression: pyeval's when it can, else a value or callable in
 * the helper. */
struct pyexpr;

/* Compile src.  with_re: 're' is in the namespace (folderfilter,
 * nametrans, folderincludes, foldersort); the *eval options do not get it in
 * offlineimap.  A plain (non-callable) expression that goes to python3 is
 * evaluated now, once.  An error is one line prefixed with where
 * ("FILE:LINE: [section] option"), python3 missing being one of them; it
 * goes to err (errlen bytes) when err is not NULL, to log_error()
 * otherwise.  Returns 0, OIMAP_ECONFIG or -ENOMEM. */
int pyexpr_compile(const char *src, const char *where, bool with_re, char *err, size_t errlen,
                   struct pyexpr **x_r);
void pyexpr_free(struct pyexpr **x);

/* Whether the expression went to python3. */
bool pyexpr_is_python(const struct pyexpr *x);
/* Whether it is a function accepting n positional arguments (a lambda of n
 * parameters, a function from pythonfile...). */
bool pyexpr_accepts(const struct pyexpr *x, int n);
/* True for "lambda x: x". */
bool pyexpr_is_identity(const struct pyexpr *x);

/* Evaluate, as pyeval_eval() / pyeval_call() (same value lifetime: until the
 * next evaluation on x or pyexpr_free).  Returns 0, OIMAP_ECONFIG (a Python
 * error, a value oimap cannot take, the helper failing) or -ENOMEM; then
 * pyexpr_errmsg() says "WHERE: KeyError: 'x'".  Nothing is logged. */
int pyexpr_eval(struct pyexpr *x, struct pyval *out);
int pyexpr_call(struct pyexpr *x, const struct pyval *args, size_t nargs, struct pyval *out);
int pyexpr_call1(struct pyexpr *x, const char *arg, struct pyval *out);
const char *pyexpr_errmsg(const struct pyexpr *x);
const char *pyexpr_where(const struct pyexpr *x);

#endif
