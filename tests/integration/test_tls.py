#!/usr/bin/env python3
"""Certificate checks through oimap --info: wrong host, expired and unknown
CA refused with the reason named (before any credential is sent); a
cert_fingerprint pin accepted for a self-signed certificate, a wrong pin
refused with the actual fingerprint printed."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from util import Dovecot  # noqa: E402


class CertCase(unittest.TestCase):
    cert = 'good'

    @classmethod
    def setUpClass(cls):
        cls.dv = Dovecot(cert=cls.cert).start()

    @classmethod
    def tearDownClass(cls):
        cls.dv.stop()

    def run_info(self, security='tls', **remote):
        conf = util.offlineimap_config(self.dv, util.tmpdir('mail'), security=security,
                                       remote=remote or None)
        return util.run_oimap(['--info', '-d', 'imap'], conf, timeout=30)

    def refused(self, reason, **remote):
        for sec in ('tls', 'starttls'):
            with self.subTest(sec):
                r = self.run_info(sec, **remote)
                self.assertNotEqual(r.rc, 0, r.stdout)
                self.assertIn('error: 127.0.0.1:', r.stdout)
                self.assertIn(reason, r.stdout)
                self.assertNotIn('logged in as', r.stdout)
                self.assertNotRegex(r.stderr, r'C: A\d+ (LOGIN|AUTHENTICATE)')
        return r


class TestWrongHost(CertCase):
    cert = 'wronghost'

    def test_refused(self):
        self.refused('certificate is for wrong.example, not 127.0.0.1')


class TestExpired(CertCase):
    cert = 'expired'

    def test_refused(self):
        self.refused('certificate expired on 2020-01-31')


class TestUnknownCA(CertCase):
    cert = 'selfsigned'

    def test_refused(self):
        self.refused('certificate not trusted (self-signed)')

    def test_pin_accepted(self):
        for alg in ('sha1', 'sha256', 'sha512'):
            with self.subTest(alg):
                fp = self.dv.certs.fingerprint('selfsigned', alg)
                # with colons and in capitals, as users paste them
                pretty = ':'.join(fp[i:i + 2] for i in range(0, len(fp), 2)).upper()
                r = self.run_info('tls', cert_fingerprint=pretty)
                self.assertEqual(r.rc, 0, r.stdout + r.stderr)
                self.assertIn('certificate pinned by cert_fingerprint', r.stdout)
                self.assertIn('logged in as: alice', r.stdout)

    def test_pin_mismatch(self):
        wrong = self.dv.certs.fingerprint('good', 'sha256')
        actual = self.dv.certs.fingerprint('selfsigned', 'sha256')
        r = self.run_info('tls', cert_fingerprint=wrong)
        self.assertNotEqual(r.rc, 0)
        self.assertIn('matches no cert_fingerprint', r.stdout)
        self.assertIn(actual, r.stdout)
        self.assertNotIn('logged in as', r.stdout)


class TestGoodCertUnknownCA(CertCase):
    cert = 'good'

    def test_system_bundle_does_not_know_the_test_ca(self):
        self.refused('certificate not trusted (unknown CA)', sslcacertfile='OS-DEFAULT')


if __name__ == '__main__':
    unittest.main(verbosity=2)
