/* err.c - names for oimap's error codes. */
#include "err.h"

#include <string.h>

const char *err_str(int code)
{
    switch (code) {
    case OIMAP_ECONFIG:
        return "configuration error";
    case OIMAP_EUSAGE:
        return "usage error";
    case OIMAP_EPROTO:
        return "IMAP protocol error";
    case OIMAP_ETOOBIG:
        return "response exceeds size limit";
    case OIMAP_ENO:
        return "server answered NO";
    case OIMAP_EBAD:
        return "server answered BAD";
    case OIMAP_EBYE:
        return "server closed the connection (BYE)";
    case OIMAP_EAUTH:
        return "authentication failed";
    case OIMAP_ETLS:
        return "TLS error";
    case OIMAP_ECERT:
        return "certificate verification failed";
    case OIMAP_ENOTLS:
        return "TLS required but not offered by the server";
    case OIMAP_ETIMEOUT:
        return "timed out";
    case OIMAP_EUIDVALIDITY:
        return "UIDVALIDITY changed";
    case OIMAP_EGUARD:
        return "held back by the mass-deletion guard";
    case OIMAP_ELOCKED:
        return "account is locked by another oimap";
    case OIMAP_ECANCELED:
        return "cancelled";
    case OIMAP_ENAME:
        return "unsafe or malformed name";
    case OIMAP_ESTATUS:
        return "status store error";
    case OIMAP_ENEEDMORE:
        return "need more input";
    case OIMAP_EPROXY:
        return "refused by the proxy";
    default:
        break;
    }
    if (code < 0 && code > OIMAP_EBASE)
        return strerror(-code);
    return "unknown error";
}
