#!/usr/bin/env python3
"""oimap --info against the private Dovecot: greeting, capabilities,
delimiter and folder list (nested and non-ASCII names decoded), over plain
IMAP, implicit TLS and STARTTLS; passwords never shown."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402


class TestInfo(util.DovecotTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for name in ('Archive/2024', 'Archive/2024/Q1', 'Général', 'Привет/мир'):
            cls.dv.create_folder('alice', name)
        cls.dv.append('alice', 'INBOX', b'Subject: hi\r\n\r\nhello\r\n')

    def info(self, security, *extra):
        conf = util.offlineimap_config(self.dv, os.path.join(self.tmp, 'mail'),
                                       security=security)
        r = util.run_oimap(['--info'] + list(extra), conf, timeout=30)
        return r

    def check(self, security):
        r = self.info(security)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        out = r.stdout
        self.assertIn('greeting: Dovecot', out)
        self.assertRegex(out, r'capabilities before login: IMAP4rev1 .*AUTH=PLAIN')
        self.assertRegex(out, r'capabilities after login: .*UIDPLUS')
        self.assertIn('hierarchy delimiter: "/"', out)
        for name in ('INBOX', 'Archive/2024', 'Archive/2024/Q1', 'Général', 'Привет/мир'):
            self.assertRegex(out, r'(?m)^    %s(  |$)' % name, name)
        self.assertIn('[G&AOk-n&AOk-ral]', out)  # the raw name next to the decoded one
        self.assertIn('namespace personal: ""', out)
        self.assertNotIn(self.dv.users['alice'], out + r.stderr)
        self.assertIn('********', out)
        return out

    def test_plain(self):
        out = self.check('plain')
        self.assertIn('TLS: none', out)
        self.assertIn('STARTTLS', out)  # offered before login, not used

    def test_starttls(self):
        out = self.check('starttls')
        self.assertIn('TLS: STARTTLS', out)
        self.assertRegex(out, r'TLS session: TLSv1\.[23].*certificate verified')
        # capabilities before login are those after the TLS upgrade
        self.assertNotRegex(out, r'capabilities before login: .*STARTTLS')

    def test_tls(self):
        out = self.check('tls')
        self.assertIn('TLS: implicit TLS', out)
        self.assertRegex(out, r'TLS session: TLSv1\.[23]')

    def test_two_repositories_one_failing(self):
        """Every repository is reported; a failing one does not hide the other."""
        good = util.offlineimap_config(self.dv, os.path.join(self.tmp, 'a'), account='a',
                                       security='plain')
        bad = util.offlineimap_config(self.dv, os.path.join(self.tmp, 'b'), account='b',
                                      security='plain', remote={'remotepass': 'nope'})
        # merge: [general] accounts = a, b
        bad_sections = bad.split('\n[', 1)[1]
        conf = good.replace('accounts = a', 'accounts = a, b') + '\n[' + bad_sections
        r = util.run_oimap(['--info'], conf, timeout=30)
        self.assertNotEqual(r.rc, 0)
        self.assertIn('[Repository a-remote]', r.stdout)
        self.assertIn('[Repository b-remote]', r.stdout)
        self.assertIn('Archive/2024/Q1', r.stdout)
        self.assertIn('AUTHENTICATIONFAILED', r.stdout)


if __name__ == '__main__':
    util.main()
