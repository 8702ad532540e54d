/* test_tls.c - TLS through net_stream against `openssl s_server` and a small
 * Python STARTTLS server, with a CA and certificates made by the openssl CLI
 * in a temporary directory at test time.
 *
 * OIMAP_TLS_BULK_MB (default 16) sets the size of the throughput probe,
 * OIMAP_TLS_CIPHERS (OpenSSL syntax) the server's cipher choice for it, and
 * OIMAP_TEST_KEEP=1 keeps the temporary directory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <mbedtls/ssl.h> /* version and feature macros */

#include "err.h"
#include "net.h"
#include "tap.h"
#include "uvtest.h"
#include "tls.h"

static char dir[] = "/tmp/oimap-tls-XXXXXX";
static char path_buf[8][300];
static int path_i;

/* "dir/name" in a small ring of buffers */
static const char *P(const char *name)
{
    char *b = path_buf[path_i++ % 8];
    snprintf(b, sizeof path_buf[0], "%s/%s", dir, name);
    return b;
}

/* ---- loop and client helpers ------------------------------------------------ */

struct client {
    struct net_stream *s;
    bool connected, failed, closed, done, tls_done;
    int err;
    char msg[1024];
    char data[4096];
    size_t dlen;
    uint64_t total;
    bool count_only;
    int dropped; /* result of net_start_tls */
    struct tls_config *starttls;
};

static bool bulk_mode; /* count bytes from the first one on */

static void c_connect(struct net_stream *s, void *arg)
{
    (void)s;
    ((struct client *)arg)->connected = true;
}

static void c_tls(struct net_stream *s, void *arg)
{
    struct client *c = arg;
    c->tls_done = true;
    c->dlen = 0; /* from now on, only what came through TLS */
    c->data[0] = '\0';
    net_expect_data(s, true);
    net_write(s, "hello\r\n", 7);
}

static void c_read(struct net_stream *s, const char *data, size_t len, void *arg)
{
    struct client *c = arg;
    if (c->count_only || bulk_mode) {
        c->total += len;
        net_consume(s, len);
        return;
    }
    if (c->starttls && !c->tls_done && !net_is_tls(s)) {
        /* a STARTTLS conversation: consume line by line */
        const char *nl = memchr(data, '\n', len);
        if (!nl)
            return;
        size_t n = (size_t)(nl - data) + 1;
        if (n < sizeof c->data - c->dlen) {
            memcpy(c->data + c->dlen, data, n);
            c->dlen += n;
            c->data[c->dlen] = '\0';
        }
        net_consume(s, n);
        if (strncmp(data, "* OK", 4) == 0)
            net_write(s, "a STARTTLS\r\n", 12);
        else if (strncmp(data, "a OK", 4) == 0)
            c->dropped = net_start_tls(s, c->starttls, c_tls);
        return;
    }
    size_t keep = len < sizeof c->data - 1 - c->dlen ? len : sizeof c->data - 1 - c->dlen;
    memcpy(c->data + c->dlen, data, keep);
    c->dlen += keep;
    c->data[c->dlen] = '\0';
    net_consume(s, len);
    if (memchr(data, '\n', len))
        c->done = true;
}

static void c_error(struct net_stream *s, int code, const char *msg, void *arg)
{
    struct client *c = arg;
    (void)s;
    c->failed = true;
    c->err = code;
    snprintf(c->msg, sizeof c->msg, "%s", msg);
}

static void c_closed(void *arg)
{
    ((struct client *)arg)->closed = true;
}

static const struct net_callbacks cbs = {c_connect, c_read, NULL, c_error};

static void c_close(struct client *c)
{
    if (!c->s)
        return;
    net_close(c->s, c_closed);
    c->s = NULL;
    run_until(&c->closed, 2000);
}

/* ---- fixtures: certificates and servers --------------------------------------- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static bool make_certs(void)
{
    FILE *f = fopen(P("ca.cnf"), "w");
    if (!f)
        return false;
    fprintf(f,
            "[ca]\ndefault_ca = t\n[t]\ndir = %s\ndatabase = %s/index.txt\n"
            "new_certs_dir = %s\nserial = %s/serial\ndefault_md = sha256\npolicy = pol\n"
            "copy_extensions = copy\nunique_subject = no\n[pol]\ncommonName = supplied\n",
            dir, dir, dir, dir);
    fclose(f);
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    return sh("cd %s && : > index.txt && echo 01 > serial && exec 2>openssl.log && "
              "openssl req -x509 %s -keyout ca.key -out ca.crt -days 30 -subj '/CN=oimap test "
              "CA' && "
              "for c in good:IP:127.0.0.1,DNS:localhost wrong:DNS:wrong.example "
              "dnsonly:DNS:localhost expired:IP:127.0.0.1 client:DNS:client.example; do "
              "n=${c%%%%:*}; san=${c#*:}; "
              "openssl req -new %s -keyout $n.key -out $n.csr -subj /CN=$n "
              "-addext subjectAltName=$san || exit 1; done && "
              "for n in good wrong dnsonly client; do openssl x509 -req -in $n.csr -CA ca.crt "
              "-CAkey ca.key -CAcreateserial -days 30 -copy_extensions copy -out $n.crt || "
              "exit 1; done && "
              "openssl ca -config ca.cnf -batch -notext -cert ca.crt -keyfile ca.key -in "
              "expired.csr -out expired.crt -startdate 20200101000000Z -enddate "
              "20200201000000Z >/dev/null && "
              "openssl req -x509 %s -keyout self.key -out self.crt -days 30 -subj /CN=self "
              "-addext subjectAltName=IP:127.0.0.1",
              dir, ec, ec, ec) == 0;
}

/* The certificate's fingerprint as `openssl x509 -fingerprint` prints it
 * (upper case with colons), to exercise offlineimap's normalisation. */
static void openssl_fp(const char *crt, const char *md, char *out, size_t outlen)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "openssl x509 -in %s -noout -fingerprint -%s", crt, md);
    FILE *p = popen(cmd, "r");
    char line[400] = "";
    if (p) {
        if (!fgets(line, sizeof line, p))
            line[0] = '\0';
        pclose(p);
    }
    char *eq = strchr(line, '=');
    snprintf(out, outlen, "%s", eq ? eq + 1 : "");
    out[strcspn(out, "\r\n")] = '\0';
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

static bool wait_listen(int port, pid_t pid)
{
    for (int i = 0; i < 100; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int r = connect(fd, (struct sockaddr *)&a, sizeof a);
        close(fd);
        if (r == 0)
            return true;
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return false;
        usleep(50000);
    }
    return false;
}

struct server {
    pid_t pid;
    int port;
    int out; /* the Python server's stdout: kept open, it may write more */
};

/* openssl s_server -rev with the named certificate and extra arguments. */
static bool s_server(struct server *sv, const char *cert, const char *extra)
{
    sv->port = free_port();
    sv->out = 0;
    char cmd[1500];
    snprintf(cmd, sizeof cmd,
             "exec openssl s_server -quiet -rev -accept 127.0.0.1:%d -cert %s/%s.crt -key "
             "%s/%s.key %s </dev/null >>%s/s_server.log 2>&1",
             sv->port, dir, cert, dir, cert, extra ? extra : "", dir);
    sv->pid = fork();
    if (sv->pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return sv->pid > 0 && wait_listen(sv->port, sv->pid);
}

static const char py_server[] =
    "import os, socket, ssl, sys\n"
    "mode, cert, key = sys.argv[1], sys.argv[2], sys.argv[3]\n"
    "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
    "ctx.load_cert_chain(cert, key)\n"
    "if os.environ.get('OIMAP_TLS_CIPHERS'): ctx.set_ciphers(os.environ['OIMAP_TLS_CIPHERS'])\n"
    "ls = socket.socket(); ls.bind(('127.0.0.1', 0)); ls.listen(4)\n"
    "print(ls.getsockname()[1], flush=True)\n"
    "while True:\n"
    "    c, _ = ls.accept()\n"
    "    try:\n"
    "        if mode == 'starttls':\n"
    "            c.sendall(b'* OK ready\\r\\n')\n"
    "            buf = b''\n"
    "            while not buf.endswith(b'\\n'):\n"
    "                buf += c.recv(1)\n"
    "            c.sendall(b'a OK begin\\r\\n* INJECTED\\r\\n')\n"
    "            t = ctx.wrap_socket(c, server_side=True)\n"
    "            line = t.recv(100)\n"
    "            t.sendall(b'ECHO ' + line)\n"
    "            t.close()\n"
    "        else:\n"
    "            t = ctx.wrap_socket(c, server_side=True)\n"
    "            n = int(sys.argv[4]); chunk = b'x' * 65536\n"
    "            while n > 0:\n"
    "                t.sendall(chunk[:n]); n -= len(chunk)\n"
    "            t.close()\n"
    "    except BaseException as e:\n"
    "        print(e, file=sys.stderr)\n";

/* Start the Python server; its first output line is the port. */
static bool py_start(struct server *sv, const char *mode, const char *arg4)
{
    FILE *f = fopen(P("server.py"), "w");
    if (!f)
        return false;
    fputs(py_server, f);
    fclose(f);
    int fds[2];
    if (pipe(fds) < 0)
        return false;
    sv->pid = fork();
    if (sv->pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        int e = open(P("py.log"), O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (e >= 0)
            dup2(e, 2);
        /* Debian's python3 first: a pyenv shim on PATH may print things */
        const char *a1 = P("server.py"), *a2 = P("good.crt"), *a3 = P("good.key");
        execl("/usr/bin/python3", "python3", a1, mode, a2, a3, arg4, (char *)NULL);
        execlp("python3", "python3", a1, mode, a2, a3, arg4, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[32] = "";
    ssize_t n = read(fds[0], line, sizeof line - 1);
    sv->out = fds[0];
    if (n <= 0)
        return false;
    line[n] = '\0';
    sv->port = atoi(line);
    return sv->port > 0;
}

static void stop(struct server *sv)
{
    if (sv->pid > 0) {
        kill(sv->pid, SIGTERM);
        waitpid(sv->pid, NULL, 0);
        sv->pid = 0;
    }
    if (sv->out > 0)
        close(sv->out);
    sv->out = 0;
}

static struct tls_config *cfg_new(const char *cafile, const char *pins, const char *ver)
{
    struct tls_opts o = {.cafile = cafile, .fingerprints = pins, .ssl_version = ver};
    struct tls_config *cfg = NULL;
    char err[300];
    if (tls_config_new(&o, &cfg, err, sizeof err) < 0)
        printf("# tls_config_new: %s\n", err);
    return cfg;
}

/* Connect with implicit TLS; returns after on_connect or on_error. */
static void tls_connect(struct client *c, const char *host, int port, struct tls_config *cfg)
{
    struct net_opts o = {.timeout_s = 5, .tls = cfg};
    memset(c, 0, sizeof *c);
    if (net_connect(loop, host, (unsigned)port, &o, &cbs, c, &c->s) < 0) {
        c->failed = true;
        return;
    }
    bool any = false;
    uint64_t end = uv_now(loop) + 8000;
    while (!any && uv_now(loop) < end) {
        run_until(&c->connected, 100);
        any = c->connected || c->failed;
    }
}

/* ---- tests ------------------------------------------------------------------ */

static void test_config(void)
{
    struct tls_config *cfg = NULL;
    char err[300] = "";
    struct tls_opts o = {.fingerprints = "zz:11"};
    is_int(tls_config_new(&o, &cfg, err, sizeof err), OIMAP_ECONFIG, "bad fingerprint refused");
    ok(strstr(err, "cert_fingerprint") != NULL, "message: %s", err);
    o = (struct tls_opts){.tls_level = "tls_paranoid"};
    is_int(tls_config_new(&o, &cfg, err, sizeof err), OIMAP_ECONFIG, "unknown tls_level");
    o = (struct tls_opts){.ssl_version = "ssl3"};
    is_int(tls_config_new(&o, &cfg, err, sizeof err), OIMAP_ECONFIG, "ssl3 refused: %s", err);
    o = (struct tls_opts){.ssl_version = "tls1", .tls_level = "tls_secure"};
    is_int(tls_config_new(&o, &cfg, err, sizeof err), OIMAP_ECONFIG,
           "tls1 under tls_secure refused");
    o = (struct tls_opts){.ssl_version = "tls1_3"};
    int r = tls_config_new(&o, &cfg, err, sizeof err);
#if MBEDTLS_VERSION_NUMBER < 0x03000000
    is_int(r, OIMAP_ECONFIG, "tls1_3 on mbedTLS 2.28: clear error (%s)", err);
#else
    ok(1, "tls1_3: %d", r);
#endif
    tls_config_free(&cfg);
    o = (struct tls_opts){.cafile = "/nonexistent/ca.pem"};
    is_int(tls_config_new(&o, &cfg, err, sizeof err), OIMAP_ECONFIG, "missing CA file");
    ok(strstr(err, "/nonexistent/ca.pem") != NULL, "message names the file: %s", err);
    o = (struct tls_opts){.fingerprints = " AB:cd"
                                          "000000000000000000000000000000000000, ,",
                          .cafile = "OS-DEFAULT"};
    is_int(tls_config_new(&o, &cfg, err, sizeof err), 0, "sha1 pin with colons and case (%s)", err);
    tls_config_free(&cfg);
    ok(cfg == NULL, "free NULLs the pointer");

    char hexs[129];
    const unsigned char abc[] = "abc";
    tls_fingerprint_hex(abc, 3, "sha256", hexs, sizeof hexs);
    is_str(hexs, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "sha256 hex");
}

static void test_verify(void)
{
    struct tls_config *ca = cfg_new(P("ca.crt"), NULL, NULL);
    struct tls_config *sys = cfg_new(NULL, NULL, NULL);
    ok(ca && sys, "configs built");
    struct client c;
    struct server sv;

    ok(s_server(&sv, "good", NULL), "s_server with a good certificate");
    tls_connect(&c, "127.0.0.1", sv.port, ca);
    ok(c.connected, "good certificate for 127.0.0.1 (IP SAN) accepted %s", c.msg);
    ok(c.s && net_is_tls(c.s), "stream is TLS: %s", c.s ? net_tls_info(c.s) : "");
    ok(c.s && net_tls_info(c.s) && strstr(net_tls_info(c.s), "TLSv1.2") != NULL,
       "TLS 1.2 (or newer) negotiated");
    if (c.connected) {
        net_write(c.s, "hello\n", 6);
        net_expect_data(c.s, true);
        run_until(&c.done, 3000);
        ok(strstr(c.data, "olleh") != NULL, "data through TLS: %s", c.data);
    }
    c_close(&c);
    tls_connect(&c, "localhost", sv.port, ca);
    ok(c.connected, "by name 'localhost' accepted %s", c.msg);
    c_close(&c);

    /* unknown CA: system bundle only */
    tls_connect(&c, "127.0.0.1", sv.port, sys);
    ok(c.failed && !c.connected, "unknown CA refused");
    is_int(c.err, OIMAP_ECERT, "OIMAP_ECERT");
    char want[200];
    snprintf(want, sizeof want, "127.0.0.1:%d: certificate not trusted (unknown CA)", sv.port);
    ok(strncmp(c.msg, want, strlen(want)) == 0, "message: %s", c.msg);
    char fp[200];
    openssl_fp(P("good.crt"), "sha256", fp, sizeof fp);
    char fpl[200];
    size_t j = 0;
    for (size_t i = 0; fp[i] && j + 1 < sizeof fpl; i++)
        if (fp[i] != ':')
            fpl[j++] = (char)(fp[i] >= 'A' && fp[i] <= 'F' ? fp[i] + 32 : fp[i]);
    fpl[j] = '\0';
    ok(j == 64 && strstr(c.msg, fpl) != NULL, "message shows the sha256 to pin");
    c_close(&c);

    /* pinned: the good cert by its fingerprint, chain not verifiable */
    struct tls_config *pin = cfg_new(NULL, fp, NULL);
    tls_connect(&c, "127.0.0.1", sv.port, pin);
    ok(c.connected, "pin accepts a certificate of an unknown CA %s", c.msg);
    c_close(&c);
    tls_config_free(&pin);

    /* wrong pin, even though the chain verifies */
    pin = cfg_new(P("ca.crt"), "00112233445566778899aabbccddeeff00112233", NULL);
    tls_connect(&c, "127.0.0.1", sv.port, pin);
    ok(c.failed && c.err == OIMAP_ECERT, "wrong pin refused although the chain verifies");
    ok(strstr(c.msg, "fingerprint") && strstr(c.msg, fpl), "mismatch shows the real one: %s",
       c.msg);
    c_close(&c);
    tls_config_free(&pin);
    stop(&sv);

    ok(s_server(&sv, "wrong", NULL), "s_server with a certificate for wrong.example");
    tls_connect(&c, "127.0.0.1", sv.port, ca);
    is_int(c.err, OIMAP_ECERT, "wrong host refused");
    snprintf(want, sizeof want, "127.0.0.1:%d: certificate is for wrong.example, not 127.0.0.1",
             sv.port);
    is_str(c.msg, want, "message names both names");
    c_close(&c);
    stop(&sv);

    ok(s_server(&sv, "dnsonly", NULL), "s_server with a certificate for DNS:localhost only");
    tls_connect(&c, "127.0.0.1", sv.port, ca);
    is_int(c.err, OIMAP_ECERT, "IP host without an IP SAN refused");
    ok(strstr(c.msg, "certificate is for localhost, not 127.0.0.1") != NULL, "message: %s", c.msg);
    c_close(&c);
    tls_connect(&c, "localhost", sv.port, ca);
    ok(c.connected, "same certificate by name accepted %s", c.msg);
    c_close(&c);
    stop(&sv);

    ok(s_server(&sv, "expired", NULL), "s_server with an expired certificate");
    tls_connect(&c, "127.0.0.1", sv.port, ca);
    is_int(c.err, OIMAP_ECERT, "expired refused");
    ok(strstr(c.msg, "certificate expired on 2020-02-01 00:00:00 UTC") != NULL, "message: %s",
       c.msg);
    c_close(&c);
    stop(&sv);

    ok(s_server(&sv, "self", NULL), "s_server with a self-signed certificate");
    tls_connect(&c, "127.0.0.1", sv.port, ca);
    is_int(c.err, OIMAP_ECERT, "self-signed refused");
    ok(strstr(c.msg, "certificate not trusted (self-signed)") != NULL, "message: %s", c.msg);
    c_close(&c);
    char fp1[200];
    openssl_fp(P("self.crt"), "sha1", fp1, sizeof fp1);
    char pins[400];
    snprintf(pins, sizeof pins, "0000000000000000000000000000000000000000, %s", fp1);
    pin = cfg_new(NULL, pins, NULL);
    tls_connect(&c, "127.0.0.1", sv.port, pin);
    ok(c.connected, "self-signed accepted by its sha1 pin (second of a list) %s", c.msg);
    c_close(&c);
    tls_config_free(&pin);
    stop(&sv);

    /* client certificate required by the server */
    char extra[400];
    snprintf(extra, sizeof extra, "-Verify 1 -CAfile %s", P("ca.crt"));
    ok(s_server(&sv, "good", extra), "s_server requiring a client cert");
    tls_connect(&c, "127.0.0.1", sv.port, ca);
    if (c.connected) { /* TLS 1.2: the server's refusal comes after our Finished */
        net_write(c.s, "x\n", 2);
        net_expect_data(c.s, true);
        run_until(&c.failed, 3000);
    }
    ok(c.failed, "no client certificate: refused (%s)", c.msg);
    c_close(&c);
    struct tls_opts co = {
        .cafile = P("ca.crt"), .client_cert = P("client.crt"), .client_key = P("client.key")};
    struct tls_config *ccfg = NULL;
    char err[300] = "";
    is_int(tls_config_new(&co, &ccfg, err, sizeof err), 0, "client cert config %s", err);
    tls_connect(&c, "127.0.0.1", sv.port, ccfg);
    ok(c.connected, "with a client certificate: accepted %s", c.msg);
    if (c.connected) {
        net_write(c.s, "abc\n", 4);
        net_expect_data(c.s, true);
        run_until(&c.done, 3000);
        ok(strstr(c.data, "cba") != NULL, "data with a client cert: %s", c.data);
    }
    c_close(&c);
    tls_config_free(&ccfg);

    /* the key in the certificate's file (Python's ssl takes that too) */
    ok(sh("cd %s && cat client.crt client.key > client-both.pem", dir) == 0, "combined PEM");
    struct tls_opts both = {.cafile = P("ca.crt"), .client_cert = P("client-both.pem")};
    is_int(tls_config_new(&both, &ccfg, err, sizeof err), 0, "key inside sslclientcert %s", err);
    tls_connect(&c, "127.0.0.1", sv.port, ccfg);
    ok(c.connected, "combined certificate and key: accepted %s", c.msg);
    c_close(&c);
    tls_config_free(&ccfg);
    stop(&sv);

    /* unusable client certificates are configuration errors naming the file */
    struct tls_opts bad = {
        .cafile = P("ca.crt"), .client_cert = P("client.crt"), .client_key = P("good.key")};
    is_int(tls_config_new(&bad, &ccfg, err, sizeof err), OIMAP_ECONFIG, "another cert's key");
    ok(strstr(err, "good.key is not the key of sslclientcert") != NULL, "%s", err);
    bad.client_key = NULL;
    is_int(tls_config_new(&bad, &ccfg, err, sizeof err), OIMAP_ECONFIG, "no key at all");
    ok(strstr(err, "no unencrypted private key in it; set sslclientkey") != NULL, "%s", err);
    bad.client_cert = P("missing.crt");
    is_int(tls_config_new(&bad, &ccfg, err, sizeof err), OIMAP_ECONFIG, "missing file");
    ok(strstr(err, "missing.crt: no such file") != NULL, "%s", err);
    bad.client_cert = NULL;
    bad.client_key = P("client.key");
    is_int(tls_config_new(&bad, &ccfg, err, sizeof err), OIMAP_ECONFIG, "key without cert");
    ok(ccfg == NULL, "no config on errors");

    /* a TLS 1.1-only server; SECLEVEL=0 so OpenSSL 3 really offers it */
    if (s_server(&sv, "good", "-tls1_1 -cipher DEFAULT:@SECLEVEL=0")) {
        tls_connect(&c, "127.0.0.1", sv.port, ca);
        ok(c.failed && c.err == OIMAP_ETLS, "TLS 1.1 server refused by default: %s", c.msg);
        c_close(&c);
#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_SSL_PROTO_TLS1_1)
        struct tls_config *old = cfg_new(P("ca.crt"), NULL, "tls1_1");
        tls_connect(&c, "127.0.0.1", sv.port, old);
        ok(c.connected, "explicit ssl_version = tls1_1 connects %s", c.msg);
        c_close(&c);
        tls_config_free(&old);
#endif
        stop(&sv);
    } else {
        ok(1, "# SKIP s_server cannot do TLS 1.1 here");
    }

    /* handshake time, mean of 20 on loopback */
    ok(s_server(&sv, "good", NULL), "s_server for timing");
    uint64_t t0 = uv_hrtime(), best = UINT64_MAX;
    int good = 0;
    for (int i = 0; i < 20; i++) {
        uint64_t t1 = uv_hrtime();
        tls_connect(&c, "127.0.0.1", sv.port, ca);
        if (uv_hrtime() - t1 < best)
            best = uv_hrtime() - t1;
        good += c.connected;
        c_close(&c);
    }
    double ms = (double)(uv_hrtime() - t0) / 1e6 / 20;
    is_int(good, 20, "20 handshakes");
    printf("# TLS connect + handshake + verify to s_server (ECDSA P-256): %.2f ms mean, %.2f ms "
           "best\n",
           ms, (double)best / 1e6);
    stop(&sv);

    tls_config_free(&ca);
    tls_config_free(&sys);
}

static void test_starttls(void)
{
    struct server sv;
    if (!py_start(&sv, "starttls", "0")) {
        ok(1, "# SKIP python3 STARTTLS server unavailable");
        stop(&sv);
        return;
    }
    struct client c = {0};
    c.starttls = cfg_new(P("ca.crt"), NULL, NULL);
    struct net_opts o = {.timeout_s = 5};
    net_connect(loop, "127.0.0.1", (unsigned)sv.port, &o, &cbs, &c, &c.s);
    run_until(&c.tls_done, 5000);
    ok(c.tls_done, "STARTTLS upgraded the stream %s", c.msg);
    is_int(c.dropped, 12, "the 12 injected bytes after the OK were discarded");
    run_until(&c.done, 5000);
    is_str(c.data, "ECHO hello\r\n", "only data from inside TLS arrives");
    ok(strstr(c.data, "INJECTED") == NULL, "injected response never offered");
    ok(net_is_tls(c.s), "stream is TLS now");
    c_close(&c);
    tls_config_free(&c.starttls);
    stop(&sv);
}

static void test_bulk(void)
{
    const char *env = getenv("OIMAP_TLS_BULK_MB");
    long mb = env ? atol(env) : 16;
    char n[32];
    snprintf(n, sizeof n, "%ld", mb << 20);
    struct server sv;
    if (!py_start(&sv, "bulk", n)) {
        ok(1, "# SKIP python3 bulk server unavailable");
        stop(&sv);
        return;
    }
    struct tls_config *ca = cfg_new(P("ca.crt"), NULL, NULL);
    struct client c;
    bulk_mode = true;
    tls_connect(&c, "127.0.0.1", sv.port, ca);
    uint64_t t0 = uv_hrtime();
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    net_expect_data(c.s, true);
    run_until(&c.failed, 60000);
    double s = (double)(uv_hrtime() - t0) / 1e9;
    getrusage(RUSAGE_SELF, &r1);
    double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec -
                          r0.ru_stime.tv_sec) +
                 (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec -
                          r0.ru_stime.tv_usec) /
                     1e6;
    is_int((long long)c.total, (long long)(mb << 20), "%ld MB received through TLS", mb);
    ok(c.err == UV_EOF, "then EOF (%s)", c.msg);
    printf("# user %.2f s sys %.2f s\n",
           (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) +
               (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6,
           (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
               (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6);
    printf("# TLS bulk read (%s): %ld MB in %.2f s = %.0f MB/s; client CPU %.2f s = %.0f MB per "
           "CPU second\n",
           c.s ? net_tls_info(c.s) : "?", mb, s, (double)mb / s, cpu, (double)mb / cpu);
    c_close(&c);
    bulk_mode = false;
    tls_config_free(&ca);
    stop(&sv);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    test_config();
    if (!mkdtemp(dir) || !make_certs()) {
        ok(0, "openssl CLI made the test certificates (see %s/openssl.log)", dir);
        return tap_done();
    }
    test_verify();
    test_starttls();
    test_bulk();
    tls_global_cleanup();
    if (!getenv("OIMAP_TEST_KEEP"))
        sh("rm -rf %s", dir);
    uv_run(loop, UV_RUN_NOWAIT);
    is_int(uv_loop_close(loop), 0, "every handle closed");
    return tap_done();
}
