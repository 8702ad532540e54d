#!/usr/bin/env python3
"""Connection options against Dovecot: sslclientcert / sslclientkey (a
client certificate from the harness CA, Dovecot requiring one),
remote_identity (SASL PLAIN authorization id: a master user logs in as
alice) and ipv6 (the address family used)."""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402


def make_client_cert(certs, directory, cn='oimap-client'):
    """A client certificate (EC P-256, clientAuth) signed by the harness CA:
    (cert, key) paths."""
    key = os.path.join(directory, 'client.key')
    csr = os.path.join(directory, 'client.csr')
    crt = os.path.join(directory, 'client.pem')
    ext = util.write_file(os.path.join(directory, 'client.ext'),
                          'basicConstraints = critical,CA:FALSE\n'
                          'keyUsage = critical,digitalSignature\n'
                          'extendedKeyUsage = clientAuth\n', 0o644)
    for args in (['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256',
                  '-out', key],
                 ['req', '-new', '-key', key, '-subj', '/CN=' + cn, '-out', csr],
                 ['x509', '-req', '-in', csr, '-CA', certs.ca_file, '-CAkey', certs.ca_key,
                  '-set_serial', '4242', '-days', '30', '-extfile', ext, '-out', crt]):
        subprocess.run(['openssl'] + args, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=60)
    return crt, key


class TestClientCert(util.DovecotTestCase):
    """Dovecot asks for a client certificate and refuses logins without a
    valid one (auth_ssl_require_client_cert)."""

    @classmethod
    def setUpClass(cls):
        ca = util.certs.get().ca_file
        cls.dovecot_args = {'extra_conf': (
            'ssl_ca = <%s\nssl_verify_client_cert = yes\nssl_require_crl = no\n'
            'auth_ssl_require_client_cert = yes\n' % ca)}
        super().setUpClass()

    def conf(self, **remote):
        return util.offlineimap_config(self.dv, os.path.join(self.tmp, 'mail'), security='tls',
                                       remote=remote or None,
                                       metadata=os.path.join(self.tmp, 'meta'))

    def test_client_certificate(self):
        crt, key = make_client_cert(self.dv.certs, self.tmp)
        before = self.dv.count_logins('alice')
        r = util.run_oimap(['--info'], self.conf(sslclientcert=crt, sslclientkey=key),
                           timeout=30)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        self.assertIn('logged in as: alice', r.stdout)
        time.sleep(0.2)
        self.assertEqual(self.dv.count_logins('alice'), before + 1)

        # key and certificate in one file, as Python's ssl (offlineimap) allows
        both = os.path.join(self.tmp, 'both.pem')
        with open(both, 'w') as f, open(crt) as c, open(key) as k:
            f.write(c.read() + k.read())
        r = util.run_oimap(['--info'], self.conf(sslclientcert=both), timeout=30)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)

    def test_without_certificate_refused(self):
        r = util.run_oimap(['--info'], self.conf(), timeout=30)
        self.assertNotEqual(r.rc, 0)
        self.assertIn('login as alice failed', r.stdout)
        time.sleep(0.2)
        self.assertIn("didn't present valid SSL certificate", self.dv.log_text())

    def test_wrong_key_is_a_config_error(self):
        crt, _ = make_client_cert(self.dv.certs, self.tmp)
        r = util.run_oimap(['--info'], self.conf(sslclientcert=crt,
                                                 sslclientkey=self.dv.key_file), timeout=30)
        self.assertNotEqual(r.rc, 0)
        self.assertIn('sslclientkey %s is not the key of sslclientcert %s'
                      % (self.dv.key_file, crt), r.stdout + r.stderr)


class TestIdentityAndFamily(util.DovecotTestCase):
    """A Dovecot master user: PLAIN with authzid alice, authcid admin."""

    @classmethod
    def setUpClass(cls):
        cls.master_dir = util.tmpdir('master')
        path = util.write_file(os.path.join(cls.master_dir, 'master-passwd'),
                               'admin:{PLAIN}admin-Passw0rd::::::\n', 0o644)
        cls.dovecot_args = {'extra_conf': (
            'passdb {\n  driver = passwd-file\n  master = yes\n  pass = yes\n'
            '  args = scheme=PLAIN username_format=%%u %s\n}\n' % path)}
        super().setUpClass()

    def conf(self, **remote):
        return util.offlineimap_config(self.dv, os.path.join(self.tmp, 'mail'),
                                       security='plain', remote=remote or None,
                                       metadata=os.path.join(self.tmp, 'meta'))

    def test_remote_identity(self):
        self.dv.append('alice', 'INBOX', b'Subject: for alice\r\n\r\nhi\r\n')
        before = self.dv.count_logins('alice')
        r = util.run_oimap(['-o', '-d', 'imap'], self.conf(
            remoteuser='admin', remotepass='admin-Passw0rd', remote_identity='alice',
            auth_mechanisms='PLAIN'), timeout=30)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr[-3000:])
        self.assertNotIn('admin-Passw0rd', r.stdout + r.stderr)
        time.sleep(0.2)
        self.assertEqual(self.dv.count_logins('alice'), before + 1, 'logged in as alice')
        self.assertRegex(self.dv.log_text(), r'Login: user=<alice>, method=PLAIN')
        inbox = os.path.join(self.tmp, 'mail', 'INBOX')
        self.assertEqual(sum(len(os.listdir(os.path.join(inbox, d))) for d in ('new', 'cur')),
                         1)

    def test_ipv6_option(self):
        """ipv6 = no reaches 127.0.0.1; ipv6 = yes asks for IPv6 addresses
        only (none for 127.0.0.1); ipv6 = no refuses ::1."""
        r = util.run_oimap(['--info', '-d', 'imap'], self.conf(ipv6='no'), timeout=30)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        self.assertIn('connected to 127.0.0.1', r.stderr)
        r = util.run_oimap(['--info'], self.conf(ipv6='yes'), timeout=30)
        self.assertNotEqual(r.rc, 0)
        self.assertRegex(r.stdout, r'127\.0\.0\.1:%d: cannot resolve the host name' % self.dv.port)
        r = util.run_oimap(['--info'], self.conf(ipv6='no', remotehost='::1'), timeout=30)
        self.assertNotEqual(r.rc, 0)
        self.assertRegex(r.stdout, re.escape('[::1]:%d: cannot resolve the host name'
                                             % self.dv.port))


if __name__ == '__main__':
    util.main()
