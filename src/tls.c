/* tls.c - TLS client on mbedTLS over memory buffers; see include/tls.h.
 *
 * Builds against mbedTLS 2.28 (Debian 12) and 3.6: the few API differences
 * are behind MBEDTLS_VERSION_NUMBER checks (version setters, key parsing,
 * PSA initialisation, error names).
 */
#include "tls.h"
#include "chars.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include <mbedtls/version.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#include <psa/crypto.h>
#endif

#include "err.h"
#include "log.h"

#define TLS_INBUF_CAP (64 * 1024)

/* ---- process-wide state: random generator and CA bundle cache ---------- */

struct ca_entry {
    struct ca_entry *next;
    char *path;
    mbedtls_x509_crt chain;
};

static struct {
    bool rng_ready;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    struct ca_entry *cas;
} g;

static int rng_init(void)
{
    if (g.rng_ready)
        return 0;
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    if (psa_crypto_init() != PSA_SUCCESS)
        return OIMAP_ETLS;
#endif
    mbedtls_entropy_init(&g.entropy);
    mbedtls_ctr_drbg_init(&g.drbg);
    static const char pers[] = "oimap tls";
    if (mbedtls_ctr_drbg_seed(&g.drbg, mbedtls_entropy_func, &g.entropy,
                              (const unsigned char *)pers, sizeof pers - 1) != 0) {
        mbedtls_ctr_drbg_free(&g.drbg);
        mbedtls_entropy_free(&g.entropy);
        return OIMAP_ETLS;
    }
    g.rng_ready = true;
    return 0;
}

const char *tls_system_cafile(void)
{
    static const char *const paths[] = {
        "/etc/ssl/certs/ca-certificates.crt",     /* Debian, Ubuntu, Arch */
        "/etc/pki/tls/certs/ca-bundle.crt",       /* Fedora, RHEL */
        "/etc/ssl/cert.pem",                      /* Alpine, BSDs, macOS */
        "/etc/ssl/ca-bundle.pem",                 /* openSUSE */
        "/usr/local/share/certs/ca-root-nss.crt", /* FreeBSD */
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (access(paths[i], R_OK) == 0)
            return paths[i];
    return NULL;
}

/* Parsing the system bundle costs tens of milliseconds, so each file is
 * parsed once per process and shared by every config that names it. */
static int ca_get(const char *path, mbedtls_x509_crt **chain_r, char *err, size_t errlen)
{
    for (struct ca_entry *e = g.cas; e; e = e->next) {
        if (strcmp(e->path, path) == 0) {
            *chain_r = &e->chain;
            return 0;
        }
    }
    struct ca_entry *e = calloc(1, sizeof *e);
    if (!e || !(e->path = strdup(path))) {
        free(e);
        return UV_ENOMEM;
    }
    mbedtls_x509_crt_init(&e->chain);
    /* A positive result counts certificates mbedTLS could not parse (exotic
     * ones in a system bundle); that is fine as long as some were loaded. */
    int r = mbedtls_x509_crt_parse_file(&e->chain, path);
    if (r < 0 || e->chain.version == 0) {
        if (access(path, R_OK) != 0)
            snprintf(err, errlen, "sslcacertfile %s: %s", path, strerror(errno));
        else
            snprintf(err, errlen, "sslcacertfile %s: no usable certificate in the file", path);
        mbedtls_x509_crt_free(&e->chain);
        free(e->path);
        free(e);
        return OIMAP_ECONFIG;
    }
    e->next = g.cas;
    g.cas = e;
    *chain_r = &e->chain;
    return 0;
}

void tls_global_cleanup(void)
{
    while (g.cas) {
        struct ca_entry *e = g.cas;
        g.cas = e->next;
        mbedtls_x509_crt_free(&e->chain);
        free(e->path);
        free(e);
    }
    if (g.rng_ready) {
        mbedtls_ctr_drbg_free(&g.drbg);
        mbedtls_entropy_free(&g.entropy);
        g.rng_ready = false;
    }
}

/* ---- fingerprints -------------------------------------------------------- */

struct md_name {
    const char *name;
    mbedtls_md_type_t type;
    size_t len;
};

/* offlineimap compares the hex digests sha512, sha384, sha256, sha224, sha1
 * of the DER certificate; the digest length tells which one a pin is. */
static const struct md_name mds[] = {
    {"sha1", MBEDTLS_MD_SHA1, 20},     {"sha224", MBEDTLS_MD_SHA224, 28},
    {"sha256", MBEDTLS_MD_SHA256, 32}, {"sha384", MBEDTLS_MD_SHA384, 48},
    {"sha512", MBEDTLS_MD_SHA512, 64},
};
#define N_MDS (sizeof mds / sizeof mds[0])

struct pin {
    const struct md_name *md;
    unsigned char digest[64];
};

static int digest(const struct md_name *md, const unsigned char *der, size_t len,
                  unsigned char out[64])
{
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(md->type);
    if (!info || mbedtls_md(info, der, len, out) != 0)
        return OIMAP_ETLS;
    return 0;
}

static void hex(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

int tls_fingerprint_hex(const unsigned char *der, size_t len, const char *md, char *out,
                        size_t outlen)
{
    for (size_t i = 0; i < N_MDS; i++) {
        if (strcmp(mds[i].name, md) != 0)
            continue;
        unsigned char d[64];
        if (outlen < 2 * mds[i].len + 1)
            return UV_ENOBUFS;
        int r = digest(&mds[i], der, len, d);
        if (r < 0)
            return r;
        hex(d, mds[i].len, out);
        return 0;
    }
    return OIMAP_ECONFIG;
}

/* Parse cert_fingerprint as offlineimap does: split at ',', strip blanks,
 * ignore case and ':' separators, skip empty items.  Unlike offlineimap (for
 * which a malformed pin silently never matches) a malformed pin is an error. */
static int pins_parse(const char *s, struct pin **pins_r, size_t *n_r, char *err, size_t errlen)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    struct pin *pins = calloc(cap, sizeof *pins);
    if (!pins)
        return UV_ENOMEM;
    size_t n = 0;
    const char *p = s;
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        char digits[129];
        size_t nd = 0;
        bool bad = false;
        for (const char *q = p; q < end; q++) {
            if (*q == ':' || isspace((unsigned char)*q))
                continue;
            if (chars_hex_value((unsigned char)*q) < 0 || nd >= 128) {
                bad = true;
                break;
            }
            digits[nd++] = *q;
        }
        const struct md_name *md = NULL;
        for (size_t i = 0; i < N_MDS && !bad; i++)
            if (mds[i].len * 2 == nd)
                md = &mds[i];
        if (bad || (nd > 0 && !md)) {
            snprintf(err, errlen,
                     "cert_fingerprint: '%.*s' is not a hex SHA-1, SHA-224, SHA-256, SHA-384 or "
                     "SHA-512 digest",
                     (int)(end - p > 140 ? 140 : end - p), p);
            free(pins);
            return OIMAP_ECONFIG;
        }
        if (md) {
            pins[n].md = md;
            for (size_t i = 0; i < md->len; i++)
                pins[n].digest[i] = (unsigned char)(chars_hex_value(digits[2 * i]) << 4 |
                                                    chars_hex_value(digits[2 * i + 1]));
            n++;
        }
        p = *end ? end + 1 : end;
    }
    *pins_r = pins;
    *n_r = n;
    return 0;
}

/* Constant time: how much of a digest matches must not leak through timing. */
static bool ct_equal(const unsigned char *a, const unsigned char *b, size_t n)
{
    volatile unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

/* ---- configuration --------------------------------------------------------- */

struct tls_config {
    int refs;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt *ca; /* borrowed from the cache, or NULL */
    bool has_client;
    mbedtls_x509_crt client_crt;
    mbedtls_pk_context client_key;
    struct pin *pins;
    size_t npins;
    int *suites; /* our preference order, zero-terminated; conf points to it */
};

/* TLS versions as minor numbers of the 3.x wire version: 1 = TLS 1.0 ... 4 = 1.3. */
static int versions_parse(const struct tls_opts *o, int *min_r, int *max_r, char *err,
                          size_t errlen)
{
    const char *lvl = o->tls_level ? o->tls_level : "tls_compat";
    int level; /* 0 compat, 1 no_ssl, 2 secure */
    if (strcmp(lvl, "tls_compat") == 0)
        level = 0;
    else if (strcmp(lvl, "tls_no_ssl") == 0)
        level = 1;
    else if (strcmp(lvl, "tls_secure") == 0)
        level = 2;
    else {
        snprintf(err, errlen, "tls_level: unknown value '%s' (tls_compat, tls_no_ssl, tls_secure)",
                 lvl);
        return OIMAP_ECONFIG;
    }
    const char *v = o->ssl_version;
    /* Unlike offlineimap, whose default lets Python pick anything down to
     * SSLv3 under tls_compat, the default here is TLS 1.2 or newer. */
    if (!v || strcmp(v, "ssl23") == 0 || strcmp(v, "tls") == 0) {
        *min_r = 3;
        *max_r = 4;
        return 0;
    }
    if (strcmp(v, "tls1_3") == 0)
        *min_r = *max_r = 4;
    else if (strcmp(v, "tls1_2") == 0)
        *min_r = *max_r = 3;
    else if (strcmp(v, "tls1_1") == 0)
        *min_r = *max_r = 2;
    else if (strcmp(v, "tls1") == 0 && level < 2)
        *min_r = *max_r = 1;
    else if (strcmp(v, "tls1") == 0) {
        snprintf(err, errlen, "ssl_version tls1 is not allowed with tls_level tls_secure");
        return OIMAP_ECONFIG;
    } else if (strcmp(v, "ssl3") == 0) {
        snprintf(err, errlen, "ssl_version ssl3: SSLv3 is broken and not supported");
        return OIMAP_ECONFIG;
    } else {
        snprintf(err, errlen,
                 "ssl_version: unknown value '%s' (tls1_3, tls1_2, tls1_1, tls1, ssl23)", v);
        return OIMAP_ECONFIG;
    }
    return 0;
}

static int set_versions(mbedtls_ssl_config *c, int min, int max, char *err, size_t errlen)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    if (min < 3) {
        snprintf(err, errlen, "ssl_version: mbedTLS %s supports nothing older than TLS 1.2",
                 MBEDTLS_VERSION_STRING);
        return OIMAP_ECONFIG;
    }
#if !defined(MBEDTLS_SSL_PROTO_TLS1_3)
    if (min == 4) {
        snprintf(err, errlen, "ssl_version tls1_3: mbedTLS %s was built without TLS 1.3",
                 MBEDTLS_VERSION_STRING);
        return OIMAP_ECONFIG;
    }
    if (max == 4)
        max = 3;
#endif
    mbedtls_ssl_conf_min_tls_version(c, min == 4 ? MBEDTLS_SSL_VERSION_TLS1_3
                                                 : MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_max_tls_version(c, max == 4 ? MBEDTLS_SSL_VERSION_TLS1_3
                                                 : MBEDTLS_SSL_VERSION_TLS1_2);
#else
    /* mbedTLS 2.28 speaks at most TLS 1.2; its TLS 1.3 was an experiment. */
    if (min == 4) {
        snprintf(err, errlen, "ssl_version tls1_3: mbedTLS %s has no TLS 1.3",
                 MBEDTLS_VERSION_STRING);
        return OIMAP_ECONFIG;
    }
    if (max == 4)
        max = 3;
#if !defined(MBEDTLS_SSL_PROTO_TLS1_1)
    if (min == 2) {
        snprintf(err, errlen, "ssl_version tls1_1: not supported by this mbedTLS");
        return OIMAP_ECONFIG;
    }
#endif
#if !defined(MBEDTLS_SSL_PROTO_TLS1)
    if (min == 1) {
        snprintf(err, errlen, "ssl_version tls1: not supported by this mbedTLS");
        return OIMAP_ECONFIG;
    }
#endif
    mbedtls_ssl_conf_min_version(c, MBEDTLS_SSL_MAJOR_VERSION_3, min);
    mbedtls_ssl_conf_max_version(c, MBEDTLS_SSL_MAJOR_VERSION_3, max);
#endif
    if (min < 3)
        log_warn("ssl_version asks for TLS 1.%d, which is obsolete and insecure (RFC 8996)",
                 min - 1);
    return 0;
}

/* mbedTLS's own order is kept, except that ChaCha20-Poly1305 moves to the
 * front: in mbedTLS 2.28 it costs about half the CPU of AES-GCM per byte
 * (measured: 222 against 120-137 MB per CPU second), and message bodies are
 * the bulk of what we move.  Servers that prefer their own order still
 * decide. */
static int order_suites(struct tls_config *c)
{
    const int *all = mbedtls_ssl_list_ciphersuites();
    size_t n = 0;
    while (all[n])
        n++;
    c->suites = calloc(n + 1, sizeof *c->suites);
    if (!c->suites)
        return UV_ENOMEM;
    size_t k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++) {
            const char *name = mbedtls_ssl_get_ciphersuite_name(all[i]);
            bool chacha = name && strstr(name, "CHACHA20") != NULL;
            if (chacha == (pass == 0))
                c->suites[k++] = all[i];
        }
    mbedtls_ssl_conf_ciphersuites(&c->conf, c->suites);
#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_ECP_C)
    /* 2.28 offers every curve, strongest first, so a server that follows
     * the client's order picks P-521: X25519 and P-256 give the same
     * security margin for this purpose at a fraction of the cost. */
    static const mbedtls_ecp_group_id curves[] = {
#if defined(MBEDTLS_ECP_DP_CURVE25519_ENABLED)
        MBEDTLS_ECP_DP_CURVE25519,
#endif
#if defined(MBEDTLS_ECP_DP_SECP256R1_ENABLED)
        MBEDTLS_ECP_DP_SECP256R1,
#endif
#if defined(MBEDTLS_ECP_DP_SECP384R1_ENABLED)
        MBEDTLS_ECP_DP_SECP384R1,
#endif
#if defined(MBEDTLS_ECP_DP_SECP521R1_ENABLED)
        MBEDTLS_ECP_DP_SECP521R1,
#endif
        MBEDTLS_ECP_DP_NONE,
    };
    mbedtls_ssl_conf_curves(&c->conf, curves);
#endif
    return 0;
}

/* Why a file cannot be used: missing or unreadable, else what was wrong
 * with its content. */
static const char *file_problem(const char *path, const char *content_problem)
{
    if (access(path, R_OK) != 0)
        return errno == ENOENT ? "no such file" : strerror(errno);
    return content_problem;
}

static int parse_client_key(struct tls_config *c, const char *path)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    return mbedtls_pk_parse_keyfile(&c->client_key, path, NULL, mbedtls_ctr_drbg_random, &g.drbg);
#else
    return mbedtls_pk_parse_keyfile(&c->client_key, path, NULL);
#endif
}

static int check_client_pair(struct tls_config *c)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    return mbedtls_pk_check_pair(&c->client_crt.pk, &c->client_key, mbedtls_ctr_drbg_random,
                                 &g.drbg);
#else
    return mbedtls_pk_check_pair(&c->client_crt.pk, &c->client_key);
#endif
}

/* sslclientcert / sslclientkey.  As with Python's ssl under offlineimap, the
 * key may be in the certificate's file when sslclientkey is not set. */
static int load_client_cert(struct tls_config *c, const struct tls_opts *o, char *err,
                            size_t errlen)
{
    if (!o->client_cert && !o->client_key)
        return 0;
    if (!o->client_cert) {
        snprintf(err, errlen, "sslclientkey is set but sslclientcert is not");
        return OIMAP_ECONFIG;
    }
    mbedtls_x509_crt_init(&c->client_crt);
    mbedtls_pk_init(&c->client_key);
    c->has_client = true;
    if (mbedtls_x509_crt_parse_file(&c->client_crt, o->client_cert) != 0) {
        snprintf(err, errlen, "sslclientcert %s: %s", o->client_cert,
                 file_problem(o->client_cert, "not a PEM or DER certificate"));
        return OIMAP_ECONFIG;
    }
    const char *keyfile = o->client_key ? o->client_key : o->client_cert;
    if (parse_client_key(c, keyfile) != 0) {
        if (!o->client_key)
            snprintf(err, errlen,
                     "sslclientcert %s: no unencrypted private key in it; set "
                     "sslclientkey",
                     keyfile);
        else
            snprintf(err, errlen, "sslclientkey %s: %s", keyfile,
                     file_problem(keyfile, "not an unencrypted private key"));
        return OIMAP_ECONFIG;
    }
    if (check_client_pair(c) != 0) {
        snprintf(err, errlen, "sslclientkey %s is not the key of sslclientcert %s", keyfile,
                 o->client_cert);
        return OIMAP_ECONFIG;
    }
    if (mbedtls_ssl_conf_own_cert(&c->conf, &c->client_crt, &c->client_key) != 0) {
        snprintf(err, errlen, "sslclientcert %s: cannot use the certificate", o->client_cert);
        return OIMAP_ECONFIG;
    }
    return 0;
}

int tls_config_new(const struct tls_opts *opts, struct tls_config **cfg_r, char *err, size_t errlen)
{
    char dummy[1];
    if (!err) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    *cfg_r = NULL;
    int r = rng_init();
    if (r < 0) {
        snprintf(err, errlen, "cannot seed the random generator");
        return r;
    }
    struct tls_config *c = calloc(1, sizeof *c);
    if (!c)
        return UV_ENOMEM;
    c->refs = 1;
    mbedtls_ssl_config_init(&c->conf);
    if (mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0) {
        snprintf(err, errlen, "mbedTLS configuration failed");
        r = OIMAP_ETLS;
        goto fail;
    }
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &g.drbg);
    if ((r = order_suites(c)) < 0)
        goto fail;

    int vmin, vmax;
    if ((r = versions_parse(opts, &vmin, &vmax, err, errlen)) < 0 ||
        (r = set_versions(&c->conf, vmin, vmax, err, errlen)) < 0)
        goto fail;

    if (opts->fingerprints &&
        (r = pins_parse(opts->fingerprints, &c->pins, &c->npins, err, errlen)) < 0)
        goto fail;

    const char *cafile = opts->cafile;
    if (!cafile || strcmp(cafile, "OS-DEFAULT") == 0) {
        cafile = tls_system_cafile();
        if (!cafile && c->npins == 0) {
            snprintf(err, errlen,
                     "no system CA bundle found: set sslcacertfile or cert_fingerprint");
            r = OIMAP_ECONFIG;
            goto fail;
        }
    }
    if (cafile && (r = ca_get(cafile, &c->ca, err, errlen)) < 0)
        goto fail;

    if (c->ca) {
        mbedtls_ssl_conf_ca_chain(&c->conf, c->ca, NULL);
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    } else {
        /* Pins only and no bundle: mbedTLS refuses REQUIRED without a CA
         * chain, so it reports and our verify callback decides (a pin must
         * match); tls_session_handshake checks that decision afterwards. */
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
    }
    if ((r = load_client_cert(c, opts, err, errlen)) < 0)
        goto fail;
    *cfg_r = c;
    return 0;
fail:
    tls_config_free(&c);
    return r;
}

struct tls_config *tls_config_ref(struct tls_config *cfg)
{
    cfg->refs++;
    return cfg;
}

void tls_config_free(struct tls_config **cfgp)
{
    struct tls_config *c = *cfgp;
    if (!c)
        return;
    *cfgp = NULL;
    if (--c->refs > 0)
        return;
    mbedtls_ssl_config_free(&c->conf);
    if (c->has_client) {
        mbedtls_x509_crt_free(&c->client_crt);
        mbedtls_pk_free(&c->client_key);
    }
    free(c->pins);
    free(c->suites);
    free(c);
}

/* ---- sessions ----------------------------------------------------------- */

struct tls_session {
    struct tls_config *cfg;
    mbedtls_ssl_context ssl;
    char *host;
    bool host_is_ip;
    unsigned char ip[16];
    size_t iplen;
    tls_send_fn send;
    void *send_arg;
    int send_err;
    unsigned char *in;
    size_t in_off, in_len;
    uint32_t chain_flags; /* flags of the CA side of the chain, see verify_cb */
    bool verify_ran, verified;
    bool cert_error; /* err holds a certificate verdict */
    char err[768];
    char info[160];
};

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct tls_session *t = ctx;
    int r = t->send(t->send_arg, buf, len);
    if (r < 0) {
        t->send_err = r;
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    }
    return (int)len;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct tls_session *t = ctx;
    if (t->in_len == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    size_t n = len < t->in_len ? len : t->in_len;
    memcpy(buf, t->in + t->in_off, n);
    t->in_off += n;
    t->in_len -= n;
    if (t->in_len == 0)
        t->in_off = 0;
    return (int)n;
}

/* 2.28 stores every subjectAltName in the sequence with its context tag;
 * [2] dNSName and [7] iPAddress (RFC 5280, 4.2.1.6) are what we look at. */
#define SAN_DNS (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2)
#define SAN_IP (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7)

static bool crt_has_ip(const mbedtls_x509_crt *crt, const unsigned char *ip, size_t len)
{
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s; s = s->next)
        if (s->buf.p && s->buf.tag == SAN_IP && s->buf.len == len && memcmp(s->buf.p, ip, len) == 0)
            return true;
    return false;
}

/* "a.example, b.example, 192.0.2.1" from the SANs, else the subject CN. */
static void crt_names(const mbedtls_x509_crt *crt, char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s && n + 1 < outlen;
         s = s->next) {
        if (!s->buf.p)
            continue;
        char one[INET6_ADDRSTRLEN + 1];
        if (s->buf.tag == SAN_DNS) {
            int len = (int)(s->buf.len < 200 ? s->buf.len : 200);
            n += (size_t)snprintf(out + n, outlen - n, "%s%.*s", n ? ", " : "", len,
                                  (const char *)s->buf.p);
            continue;
        }
        if (s->buf.tag == SAN_IP && (s->buf.len == 4 || s->buf.len == 16)) {
            inet_ntop(s->buf.len == 4 ? AF_INET : AF_INET6, s->buf.p, one, sizeof one);
            n += (size_t)snprintf(out + n, outlen - n, "%s%s", n ? ", " : "", one);
        }
    }
    if (n > 0)
        return;
    for (const mbedtls_x509_name *nm = &crt->subject; nm; nm = nm->next) {
        if (nm->oid.p && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &nm->oid) == 0) {
            snprintf(out, outlen, "%.*s", (int)(nm->val.len < 200 ? nm->val.len : 200),
                     (const char *)nm->val.p);
            return;
        }
    }
    snprintf(out, outlen, "(no name)");
}

static size_t appendf(char *buf, size_t cap, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t appendf(char *buf, size_t cap, size_t n, const char *fmt, ...)
{
    if (n >= cap)
        return n;
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
    if (r < 0)
        return n;
    return n + (size_t)r >= cap ? cap - 1 : n + (size_t)r;
}

static void explain(struct tls_session *t, const mbedtls_x509_crt *crt, uint32_t f,
                    const char *fp256)
{
    size_t n = 0, cap = sizeof t->err;
    char *e = t->err;
    if (f & MBEDTLS_X509_BADCERT_NOT_TRUSTED) {
        bool self = crt->issuer_raw.len == crt->subject_raw.len &&
                    memcmp(crt->issuer_raw.p, crt->subject_raw.p, crt->subject_raw.len) == 0;
        n = appendf(e, cap, n, "certificate not trusted (%s)", self ? "self-signed" : "unknown CA");
    }
    if (f & MBEDTLS_X509_BADCERT_CN_MISMATCH) {
        char names[300];
        crt_names(crt, names, sizeof names);
        n = appendf(e, cap, n, "%scertificate is for %s, not %s", n ? "; " : "", names, t->host);
    }
    if (f & MBEDTLS_X509_BADCERT_EXPIRED) {
        const mbedtls_x509_time *v = &crt->valid_to;
        if (mbedtls_x509_time_is_past(v))
            n = appendf(e, cap, n, "%scertificate expired on %04d-%02d-%02d %02d:%02d:%02d UTC",
                        n ? "; " : "", v->year, v->mon, v->day, v->hour, v->min, v->sec);
        else
            n = appendf(e, cap, n, "%sa certificate of the chain has expired", n ? "; " : "");
    }
    if (f & MBEDTLS_X509_BADCERT_FUTURE) {
        const mbedtls_x509_time *v = &crt->valid_from;
        n = appendf(e, cap, n, "%scertificate not valid before %04d-%02d-%02d %02d:%02d:%02d UTC",
                    n ? "; " : "", v->year, v->mon, v->day, v->hour, v->min, v->sec);
    }
    uint32_t rest =
        f & ~(uint32_t)(MBEDTLS_X509_BADCERT_NOT_TRUSTED | MBEDTLS_X509_BADCERT_CN_MISMATCH |
                        MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE);
    if (rest) {
        char info[300];
        int r = mbedtls_x509_crt_verify_info(info, sizeof info, "", rest);
        /* verify_info writes one line per flag; make it one clause each. */
        for (int i = 0; i < r; i++)
            if (info[i] == '\n')
                info[i] = i + 1 < r ? ';' : '\0';
        n = appendf(e, cap, n, "%scertificate rejected: %s", n ? "; " : "",
                    r > 0 ? info : "unknown reason");
    }
    if (f & (MBEDTLS_X509_BADCERT_NOT_TRUSTED | MBEDTLS_X509_BADCERT_EXPIRED |
             MBEDTLS_X509_BADCERT_FUTURE))
        n = appendf(e, cap, n,
                    "; its SHA-256 fingerprint is %s (set cert_fingerprint to it to trust "
                    "this certificate)",
                    fp256);
    (void)n;
}

/* Called by mbedTLS for each certificate, from the top of the chain down to
 * the server's (depth 0).  The flags of the upper certificates are collected
 * and moved to depth 0 (their union is the verdict either way), so that the
 * final decision - IP address names, pins, the message - is made in one
 * place with the server certificate in hand. */
static int verify_cb(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    struct tls_session *t = ctx;
    if (depth > 0) {
        t->chain_flags |= *flags;
        *flags = 0;
        return 0;
    }
    t->verify_ran = true;
    uint32_t f = t->chain_flags | *flags;
    if (t->host_is_ip) {
        /* mbedTLS 2.28 compares the literal with DNS names and CN only. */
        f &= ~(uint32_t)MBEDTLS_X509_BADCERT_CN_MISMATCH;
        if (!crt_has_ip(crt, t->ip, t->iplen))
            f |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
    }
    unsigned char d256[64];
    char fp256[129] = "?", fp1[41] = "?";
    if (digest(&mds[2], crt->raw.p, crt->raw.len, d256) == 0)
        hex(d256, 32, fp256);
    struct tls_config *c = t->cfg;
    if (c->npins > 0) {
        bool match = false;
        for (size_t i = 0; i < c->npins; i++) {
            unsigned char d[64];
            if (digest(c->pins[i].md, crt->raw.p, crt->raw.len, d) == 0 &&
                ct_equal(d, c->pins[i].digest, c->pins[i].md->len))
                match = true;
        }
        if (match) {
            /* The user vouched for exactly this certificate. */
            t->verified = true;
            *flags = 0;
            return 0;
        }
        unsigned char d1[64];
        if (digest(&mds[0], crt->raw.p, crt->raw.len, d1) == 0)
            hex(d1, 20, fp1);
        snprintf(t->err, sizeof t->err,
                 "certificate fingerprint matches no cert_fingerprint; the server's is sha256 "
                 "%s (sha1 %s)",
                 fp256, fp1);
        t->cert_error = true;
        *flags = f | MBEDTLS_X509_BADCERT_OTHER;
        return 0;
    }
    if (f) {
        explain(t, crt, f, fp256);
        t->cert_error = true;
    } else {
        t->verified = true;
    }
    *flags = f;
    return 0;
}

int tls_session_new(struct tls_config *cfg, const char *host, tls_send_fn send, void *send_arg,
                    struct tls_session **sess_r)
{
    *sess_r = NULL;
    struct tls_session *t = calloc(1, sizeof *t);
    if (!t)
        return UV_ENOMEM;
    t->in = malloc(TLS_INBUF_CAP);
    t->host = strdup(host);
    if (!t->in || !t->host) {
        free(t->in);
        free(t->host);
        free(t);
        return UV_ENOMEM;
    }
    t->cfg = tls_config_ref(cfg);
    t->send = send;
    t->send_arg = send_arg;
    if (inet_pton(AF_INET, host, t->ip) == 1) {
        t->host_is_ip = true;
        t->iplen = 4;
    } else if (inet_pton(AF_INET6, host, t->ip) == 1) {
        t->host_is_ip = true;
        t->iplen = 16;
    }
    mbedtls_ssl_init(&t->ssl);
    int r = mbedtls_ssl_setup(&t->ssl, &cfg->conf);
    /* Always set the name, also for IP literals: without it mbedTLS 2.28.3
     * verifies no name at all (CVE-2025-27809). */
    if (r == 0)
        r = mbedtls_ssl_set_hostname(&t->ssl, host);
    if (r != 0) {
        tls_session_free(&t);
        return r == MBEDTLS_ERR_SSL_ALLOC_FAILED ? UV_ENOMEM : OIMAP_ETLS;
    }
    mbedtls_ssl_set_verify(&t->ssl, verify_cb, t);
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    *sess_r = t;
    return 0;
}

void tls_session_free(struct tls_session **sessp)
{
    struct tls_session *t = *sessp;
    if (!t)
        return;
    *sessp = NULL;
    mbedtls_ssl_free(&t->ssl);
    tls_config_free(&t->cfg);
    free(t->in);
    free(t->host);
    free(t);
}

unsigned char *tls_session_inbuf(struct tls_session *t, size_t *space_r)
{
    size_t tail = TLS_INBUF_CAP - t->in_off - t->in_len;
    /* Compact only when the tail is short, so bytes move rarely. */
    if (tail < TLS_INBUF_CAP / 4 && t->in_off > 0) {
        memmove(t->in, t->in + t->in_off, t->in_len);
        t->in_off = 0;
        tail = TLS_INBUF_CAP - t->in_len;
    }
    *space_r = tail;
    return t->in + t->in_off + t->in_len;
}

void tls_session_inbuf_commit(struct tls_session *t, size_t n)
{
    t->in_len += n;
}

size_t tls_session_inbuf_len(const struct tls_session *t)
{
    return t->in_len;
}

static void set_mbed_error(struct tls_session *t, const char *what, int r)
{
    char buf[200];
    mbedtls_strerror(r, buf, sizeof buf);
    snprintf(t->err, sizeof t->err, "%s: %s (-0x%04x)", what, buf, (unsigned)-r);
}

int tls_session_handshake(struct tls_session *t)
{
    int r = mbedtls_ssl_handshake(&t->ssl);
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
        return TLS_AGAIN;
    if (r == 0) {
        /* Defence in depth: whatever the library concluded, only a
         * certificate our callback approved is accepted. */
        if (!t->verify_ran || !t->verified || mbedtls_ssl_get_verify_result(&t->ssl) != 0) {
            if (!t->err[0])
                snprintf(t->err, sizeof t->err, "certificate not verified");
            return OIMAP_ECERT;
        }
        return 0;
    }
    if (t->send_err)
        return t->send_err;
    if (r == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED || t->cert_error) {
        if (!t->err[0]) {
            char info[300];
            int n = mbedtls_x509_crt_verify_info(info, sizeof info, "",
                                                 mbedtls_ssl_get_verify_result(&t->ssl));
            if (n > 0 && info[n - 1] == '\n')
                info[n - 1] = '\0';
            snprintf(t->err, sizeof t->err, "certificate rejected: %s", n > 0 ? info : "?");
        }
        return OIMAP_ECERT;
    }
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    if (r == MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION) {
#else
    if (r == MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION) {
#endif
        snprintf(t->err, sizeof t->err,
                 "TLS handshake failed: the server offers no protocol version we accept "
                 "(TLS 1.2 or newer unless ssl_version says otherwise)");
        return OIMAP_ETLS;
    }
    if (r == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) {
        snprintf(t->err, sizeof t->err,
                 "TLS handshake failed: the server sent a fatal alert (no common protocol "
                 "version or cipher, or it rejected us)");
        return OIMAP_ETLS;
    }
    set_mbed_error(t, "TLS handshake failed", r);
    return OIMAP_ETLS;
}

ssize_t tls_session_read(struct tls_session *t, void *buf, size_t cap)
{
    for (;;) {
        int r = mbedtls_ssl_read(&t->ssl, buf, cap);
        if (r > 0)
            return r;
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
            return 0;
#ifdef MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET
        if (r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
            continue; /* TLS 1.3 post-handshake message, not data */
#endif
        if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
            return UV_EOF;
        if (t->send_err)
            return t->send_err;
        set_mbed_error(t, "TLS error", r);
        return OIMAP_ETLS;
    }
}

bool tls_session_pending(const struct tls_session *t)
{
    return mbedtls_ssl_get_bytes_avail(&t->ssl) > 0 || mbedtls_ssl_check_pending(&t->ssl);
}

int tls_session_write(struct tls_session *t, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    while (len > 0) {
        int r = mbedtls_ssl_write(&t->ssl, p, len);
        if (r < 0) {
            if (t->send_err)
                return t->send_err;
            set_mbed_error(t, "TLS write failed", r);
            return OIMAP_ETLS;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

int tls_session_close_notify(struct tls_session *t)
{
    int r = mbedtls_ssl_close_notify(&t->ssl);
    return r == 0 ? 0 : OIMAP_ETLS;
}

const char *tls_session_error(const struct tls_session *t)
{
    return t->err;
}

const char *tls_session_info(struct tls_session *t)
{
    snprintf(t->info, sizeof t->info, "%s, %s", mbedtls_ssl_get_version(&t->ssl),
             mbedtls_ssl_get_ciphersuite(&t->ssl));
    return t->info;
}
