"""Test certificates made with the openssl CLI at test time.

A test CA and four server certificates, each with its own key:

  good        signed by the CA, valid now, SAN IP:127.0.0.1 + DNS:localhost
  wronghost   signed by the CA, valid now, SAN DNS:wrong.example only
  expired     signed by the CA, SAN like 'good', valid only in January 2020
  selfsigned  self-signed (not from the CA), SAN like 'good': the
              "unknown CA" case, and the one to pin by fingerprint

Keys are EC P-256 by default (instant to make; mbedTLS 2.28/3.x and Python's
ssl both handle them); key_type='rsa' gives RSA 2048 instead.

    c = certs.get()                  # made once per process, removed at exit
    c.ca_file, c.cert_file('good'), c.key_file('good')
    c.fingerprint('selfsigned', 'sha256')   # lowercase hex, no colons
    c2 = certs.Certs('/some/dir')    # made in (and kept in) a chosen dir
"""

import atexit
import hashlib
import os
import shutil
import ssl
import subprocess
import tempfile
import threading

NAMES = ('good', 'wronghost', 'expired', 'selfsigned')

_SAN_GOOD = 'IP:127.0.0.1,DNS:localhost'

_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = {cn}
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[srv]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {san}
subjectKeyIdentifier = hash
{aki}
[ca]
default_ca = testca
[testca]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
default_md = sha256
policy = pol
unique_subject = no
copy_extensions = none
[pol]
commonName = supplied
"""


class CertError(RuntimeError):
    pass


def _run(args, cwd):
    p = subprocess.run(['openssl'] + args, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise CertError('openssl %s failed (%d): %s' % (
            args[0], p.returncode, p.stderr.decode(errors='replace')))
    return p


class Certs:
    """All test certificates in one directory (created if missing).

    If the directory already holds a complete set (from an earlier run), it is
    reused as is."""

    def __init__(self, directory, key_type='ec'):
        self.dir = os.path.abspath(directory)
        self.key_type = key_type
        os.makedirs(self.dir, exist_ok=True)
        if not self._complete():
            self._make()

    # -- paths -------------------------------------------------------------
    @property
    def ca_file(self):
        return os.path.join(self.dir, 'ca.pem')

    @property
    def ca_key(self):
        return os.path.join(self.dir, 'ca.key')

    def cert_file(self, name='good'):
        self._check(name)
        return os.path.join(self.dir, name + '.pem')

    def key_file(self, name='good'):
        self._check(name)
        return os.path.join(self.dir, name + '.key')

    # -- fingerprints ------------------------------------------------------
    def der(self, name='good'):
        with open(self.cert_file(name)) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())

    def fingerprint(self, name='good', alg='sha256'):
        """Hex (lowercase, no separators) digest of the DER certificate."""
        return hashlib.new(alg, self.der(name)).hexdigest()

    def fingerprints(self, name='good'):
        return {a: self.fingerprint(name, a) for a in ('sha1', 'sha256', 'sha512')}

    # -- generation --------------------------------------------------------
    @staticmethod
    def _check(name):
        if name not in NAMES:
            raise ValueError('unknown certificate %r (one of %s)' % (name, ', '.join(NAMES)))

    def _complete(self):
        files = [self.ca_file, self.ca_key] + [os.path.join(self.dir, n + e)
                                                for n in NAMES for e in ('.pem', '.key')]
        return all(os.path.exists(f) and os.path.getsize(f) > 0 for f in files)

    def _genkey(self, path):
        if self.key_type == 'rsa':
            opts = ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']
        else:
            opts = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']
        _run(['genpkey'] + opts + ['-out', path], self.dir)

    def _cnf(self, name, cn, san, aki=True):
        path = os.path.join(self.dir, name + '.cnf')
        with open(path, 'w') as f:
            f.write(_CNF.format(cn=cn, san=san, dir=self.dir,
                                aki='authorityKeyIdentifier = keyid' if aki else ''))
        return path

    def _make(self):
        d = self.dir
        os.makedirs(os.path.join(d, 'newcerts'), exist_ok=True)
        open(os.path.join(d, 'index.txt'), 'w').close()
        with open(os.path.join(d, 'serial'), 'w') as f:
            f.write('1000\n')
        # CA
        self._genkey(self.ca_key)
        cnf = self._cnf('ca', 'oimap test CA', _SAN_GOOD, aki=False)
        _run(['req', '-config', cnf, '-new', '-x509', '-key', self.ca_key, '-sha256',
              '-days', '3650', '-extensions', 'v3_ca', '-out', self.ca_file], d)
        # CA-signed server certificates; 'openssl ca' because it can set explicit
        # dates (x509 -req on OpenSSL 3.0 has no -not_before/-not_after).
        signed = {
            'good': ('localhost', _SAN_GOOD, None),
            'wronghost': ('wrong.example', 'DNS:wrong.example', None),
            'expired': ('localhost', _SAN_GOOD, ('20200101000000Z', '20200131000000Z')),
        }
        for name, (cn, san, dates) in signed.items():
            key = os.path.join(d, name + '.key')
            csr = os.path.join(d, name + '.csr')
            self._genkey(key)
            cnf = self._cnf(name, cn, san)
            _run(['req', '-config', cnf, '-new', '-key', key, '-out', csr], d)
            if dates is None:
                # start a day back so small clock differences do not matter
                import datetime
                start = (datetime.datetime.now(datetime.timezone.utc)
                         - datetime.timedelta(days=1)).strftime('%Y%m%d%H%M%SZ')
                dates = (start, None)
            args = ['ca', '-batch', '-config', cnf, '-notext', '-extensions', 'srv',
                    '-cert', self.ca_file, '-keyfile', self.ca_key, '-in', csr,
                    '-out', os.path.join(d, name + '.pem'), '-startdate', dates[0]]
            args += ['-enddate', dates[1]] if dates[1] else ['-days', '3000']
            _run(args, d)
        # self-signed, same names as 'good'
        key = self.key_file('selfsigned')
        self._genkey(key)
        cnf = self._cnf('selfsigned', 'localhost', _SAN_GOOD, aki=False)
        _run(['req', '-config', cnf, '-new', '-x509', '-key', key, '-sha256', '-days', '3000',
              '-extensions', 'srv', '-out', self.cert_file('selfsigned')], d)
        for n in os.listdir(d):
            os.chmod(os.path.join(d, n), 0o644 if n.endswith(('.pem', '.key')) else
                     os.stat(os.path.join(d, n)).st_mode & 0o777)


_lock = threading.Lock()
_cached = None


def get(key_type='ec'):
    """The process-wide set of certificates, made on first use in a temp dir
    that is removed when the process exits."""
    global _cached
    with _lock:
        if _cached is None or _cached.key_type != key_type:
            d = tempfile.mkdtemp(prefix='oimap-certs-')
            atexit.register(shutil.rmtree, d, True)
            _cached = Certs(d, key_type)
        return _cached
