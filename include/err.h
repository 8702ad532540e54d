/* err.h - oimap's error codes.
 *
 * Every fallible function returns 0 (or a non-negative count) on success and a
 * negative code on failure.  A code is either a negated errno value (as libuv's
 * UV_E* codes are on Unix) or one of the OIMAP_E* codes below, which live far
 * below any errno so the two ranges never meet.  err_str() names any of them.
 */
#ifndef OIMAP_ERR_H
#define OIMAP_ERR_H

enum {
    OIMAP_EBASE = -20000,
    OIMAP_ECONFIG,      /* configuration file or option is wrong */
    OIMAP_EUSAGE,       /* command line is wrong */
    OIMAP_EPROTO,       /* the server broke the IMAP protocol */
    OIMAP_ETOOBIG,      /* a line, literal or list exceeded our bounds */
    OIMAP_ENO,          /* the server answered NO */
    OIMAP_EBAD,         /* the server answered BAD */
    OIMAP_EBYE,         /* the server said BYE */
    OIMAP_EAUTH,        /* authentication failed */
    OIMAP_ETLS,         /* TLS handshake or record error */
    OIMAP_ECERT,        /* certificate verification failed */
    OIMAP_ENOTLS,       /* TLS required but the server does not offer it */
    OIMAP_ETIMEOUT,     /* socktimeout expired */
    OIMAP_EUIDVALIDITY, /* UIDVALIDITY changed */
    OIMAP_EGUARD,       /* mass-deletion guard held a change back */
    OIMAP_ELOCKED,      /* another oimap holds the account lock */
    OIMAP_ECANCELED,    /* the operation was cancelled (shutdown) */
    OIMAP_ENAME,        /* a folder or file name is unsafe or malformed */
    OIMAP_ESTATUS,      /* the status store is inconsistent or of another version */
    OIMAP_ENEEDMORE,    /* parser: feed more bytes (not an error for callers) */
    OIMAP_EPROXY,       /* the proxy refused the connection or wants credentials */
    OIMAP_ELAST
};

/* A static, human-readable description of code (negative errno or OIMAP_E*). */
const char *err_str(int code);

#endif
