#!/usr/bin/env python3
"""Logging in: plain, STARTTLS, implicit TLS; a wrong password is one clear
error, tried once; the password never appears in -d imap output; STARTTLS
demanded but not offered is refused before any credential; socktimeout
against a server that never answers."""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from util import Dovecot, listeners  # noqa: E402


def login_lines(text):
    return re.findall(r'C: A\d+ (?:LOGIN|AUTHENTICATE)\b.*', text)


class TestLogin(util.DovecotTestCase):

    def conf(self, security, **remote):
        return util.offlineimap_config(self.dv, os.path.join(self.tmp, 'mail'),
                                       security=security, remote=remote or None)

    def test_login_each_security(self):
        for sec in ('plain', 'starttls', 'tls'):
            with self.subTest(sec):
                before = self.dv.count_logins('alice')
                r = util.run_oimap(['--info', '-d', 'imap'], self.conf(sec), timeout=30)
                self.assertEqual(r.rc, 0, r.stderr)
                self.assertIn('logged in as: alice', r.stdout)
                time.sleep(0.2)
                self.assertEqual(self.dv.count_logins('alice'), before + 1)

    def test_debug_log_masks_password(self):
        pw = self.dv.users['alice']
        self.assertEqual(pw, 'secret pass;#%')  # awkward on purpose
        for sec, mechs in (('plain', None), ('starttls', 'LOGIN'), ('tls', 'PLAIN')):
            with self.subTest(sec):
                extra = {'auth_mechanisms': mechs} if mechs else {}
                r = util.run_oimap(['--info', '-d', 'imap'], self.conf(sec, **extra), timeout=30)
                self.assertEqual(r.rc, 0, r.stderr)
                both = r.stdout + r.stderr
                self.assertNotIn(pw, both)
                self.assertNotIn('secret pass', both)
                lines = login_lines(both)
                self.assertEqual(len(lines), 1, both)
                self.assertIn('********', lines[0])
                if mechs == 'LOGIN':
                    self.assertRegex(lines[0], r'LOGIN "alice" \*{8}$')
                else:
                    self.assertRegex(lines[0], r'AUTHENTICATE PLAIN \*{8}$')

    def test_wrong_password_once(self):
        failed_before = self.dv.count_logins('alice', failed=True)
        r = util.run_oimap(['--info', '-d', 'imap'], self.conf('plain', remotepass='wrong pw'),
                           timeout=30)
        self.assertNotEqual(r.rc, 0)
        self.assertIn('[AUTHENTICATIONFAILED] Authentication failed.', r.stdout)
        self.assertIn('login as alice failed', r.stdout)
        self.assertEqual(len(login_lines(r.stderr)), 1, r.stderr)
        self.assertNotIn('wrong pw', r.stdout + r.stderr)
        time.sleep(0.3)
        self.assertEqual(self.dv.count_logins('alice', failed=True), failed_before + 1)


class TestNoStarttls(util.DovecotTestCase):
    dovecot_args = {'starttls': False}

    def test_starttls_required_but_not_offered(self):
        conf = util.offlineimap_config(self.dv, os.path.join(self.tmp, 'mail'),
                                       security='starttls')
        r = util.run_oimap(['--info', '-d', 'imap'], conf, timeout=30)
        self.assertNotEqual(r.rc, 0)
        self.assertIn('server does not offer STARTTLS; refusing to log in in plain text', r.stdout)
        self.assertEqual(login_lines(r.stderr), [])
        self.assertNotRegex(self.dv.log_text(), r'Login: user=<alice>.*%s' % self.dv.port)


class TestTimeout(unittest.TestCase):

    def test_socktimeout_silent_server(self):
        with listeners.SilentServer() as srv:
            conf = ('[general]\naccounts = t\nsocktimeout = 2\n'
                    '[Account t]\nlocalrepository = l\nremoterepository = r\n'
                    '[Repository l]\ntype = Maildir\nlocalfolders = %s\n'
                    '[Repository r]\ntype = IMAP\nremotehost = 127.0.0.1\nremoteport = %d\n'
                    'ssl = no\nstarttls = no\nremoteuser = u\nremotepass = p\n'
                    % (util.tmpdir('m'), srv.port))
            t0 = time.monotonic()
            r = util.run_oimap(['--info'], conf, timeout=30)
            elapsed = time.monotonic() - t0
        self.assertNotEqual(r.rc, 0)
        self.assertLess(elapsed, 2 + 5)
        self.assertGreater(elapsed, 1.5)
        self.assertRegex(r.stdout, r'127\.0\.0\.1:%d: timed out' % srv.port)


if __name__ == '__main__':
    util.main()
