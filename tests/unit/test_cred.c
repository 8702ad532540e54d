/* test_cred.c - netrc lookup and password commands. */
#include "cred.h"
#include "err.h"
#include "tap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void netrc(const char *buf, const char *host, const char *login, int want_r,
                  const char *want_login, const char *want_pass, const char *name)
{
    char *l = NULL, *p = NULL;
    int r = cred_netrc_find(buf, strlen(buf), host, login, &l, &p);
    is_int(r, want_r, "%s: result", name);
    if (r == 0) {
        is_str(l, want_login, "%s: login", name);
        is_str(p, want_pass, "%s: password", name);
    }
    free(l);
    free(p);
}

int main(void)
{
    const char *rc = "machine imap.example.com login alice password s3cret\n"
                     "machine other.example.com\n  login bob\n  password b0b\n"
                     "macdef init\ncd /pub\nmachine evil.example.com password macro\n\n"
                     "machine imap.example.com login carol password c4rol\n"
                     "default login anon password guest\n";
    netrc(rc, "imap.example.com", NULL, 0, "alice", "s3cret", "first entry for host");
    netrc(rc, "IMAP.EXAMPLE.COM", NULL, 0, "alice", "s3cret", "host is case-insensitive");
    netrc(rc, "imap.example.com", "carol", 0, "carol", "c4rol", "entry for the given login");
    netrc(rc, "other.example.com", NULL, 0, "bob", "b0b", "multi-line entry");
    netrc(rc, "evil.example.com", NULL, 0, "anon", "guest", "macdef body is not an entry");
    netrc(rc, "nowhere.example.com", NULL, 0, "anon", "guest", "default entry");
    netrc("machine a login x password y\n", "b", NULL, -ENOENT, NULL, NULL, "no match");
    netrc("machine a login x\n", "a", NULL, 0, "x", NULL, "entry without password");
    netrc("", "a", NULL, -ENOENT, NULL, NULL, "empty file");
    netrc("machine", "a", NULL, -ENOENT, NULL, NULL, "truncated file");

    char *line = NULL;
    is_int(cred_run_command("printf 'pa ss;#%%\\nsecond\\n'", &line), 0, "command runs");
    is_str(line, "pa ss;#%", "first line only");
    cred_free(&line);
    ok(line == NULL, "cred_free clears the pointer");
    is_int(cred_run_command("printf 'tok\\r\\n'", &line), 0, "CRLF output");
    is_str(line, "tok", "CR stripped");
    cred_free(&line);
    is_int(cred_run_command("exit 3", &line), OIMAP_ECONFIG, "failing command");
    is_int(cred_run_command("true", &line), -ENODATA, "command printing nothing");
    is_int(cred_run_command("head -c 100000 /dev/zero | tr '\\0' x", &line), 0,
           "long output does not block");
    ok(line && strlen(line) == 16384, "line cut at the bound");
    cred_free(&line);
    return tap_done();
}
