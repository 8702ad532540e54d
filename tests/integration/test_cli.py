#!/usr/bin/env python3
"""The command line as offlineimap users type it: help, version, bad options,
exit statuses, and configuration errors that name file and line."""

import os
import unittest

import util
from util import run_oimap


GOOD = """\
[general]
accounts = Work
metadata = {meta}

[Account Work]
localrepository = Local
remoterepository = Remote

[Repository Local]
type = Maildir
localfolders = {mail}

[Repository Remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = 9
ssl = no
starttls = no
remoteuser = alice
remotepass = hunter2 ;#%%
"""


class Cli(unittest.TestCase):
    def setUp(self):
        self.dir = util.tmpdir('cli')
        self.cfg = GOOD.format(meta=os.path.join(self.dir, 'meta'),
                               mail=os.path.join(self.dir, 'Mail'))

    def test_help_lists_every_offlineimap_option(self):
        r = run_oimap(['-h'])
        self.assertEqual(r.rc, 0)
        for opt in ['--dry-run', '--info', '-1', '-P', '-a', '-c', '-d', '-l', '-f', '-k',
                    '-o', '-q', '-u', '-s', '-V', '--version', '--column', '--no-column',
                    '--delete-folder', '--mbnames-prune', '--migrate-fmd5-using-nametrans']:
            self.assertIn(opt, r.stdout, opt)

    def test_version(self):
        for flag in ['--version', '-V']:
            r = run_oimap([flag])
            self.assertEqual(r.rc, 0)
            self.assertRegex(r.stdout, r'^oimap \d+\.\d+')

    def test_bad_options_exit_2_with_one_line(self):
        for args in (['--frobnicate'], ['-z'], ['-u', 'fancy'], ['-d', 'bogus'],
                     ['-k', 'novalue'], ['stray']):
            r = run_oimap(args)
            self.assertEqual(r.rc, 2, args)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, (args, r.stderr))
            self.assertIn('oimap:', r.stderr)

    def test_compat_no_op_options_accepted(self):
        r = run_oimap(['--column', '--no-column', '--info'], self.cfg)
        self.assertNotEqual(r.rc, 2, r.stderr)

    def test_missing_config_file_named(self):
        r = run_oimap(['-o', '-c', os.path.join(self.dir, 'nope.conf')])
        self.assertEqual(r.rc, 2)
        self.assertIn('nope.conf', r.stderr)

    def test_config_errors_name_file_line_option(self):
        bad = self.cfg.replace('ssl = no', 'ssl = maybe')
        path = util.write_config(bad, self.dir, 'bad.conf')
        r = run_oimap(['-o', '-c', path])
        self.assertEqual(r.rc, 2)
        line = bad.splitlines().index('ssl = maybe') + 1
        self.assertIn('%s:%d: [Repository Remote] ssl:' % (path, line), r.stderr)
        # nothing was touched
        self.assertFalse(os.path.exists(os.path.join(self.dir, 'meta')))
        self.assertFalse(os.path.exists(os.path.join(self.dir, 'Mail')))

    def test_undefined_repository(self):
        bad = self.cfg.replace('remoterepository = Remote', 'remoterepository = Nowhere')
        path = util.write_config(bad, self.dir, 'undef.conf')
        r = run_oimap(['-o', '-c', path])
        self.assertEqual(r.rc, 2)
        self.assertIn('Nowhere', r.stderr)
        self.assertIn(path + ':', r.stderr)

    def test_syntax_error(self):
        path = util.write_config(self.cfg + "this line has no separator\n", self.dir, 's.conf')
        r = run_oimap(['--info', '-c', path])
        self.assertEqual(r.rc, 2)
        n = len(self.cfg.splitlines()) + 1
        self.assertIn('%s:%d:' % (path, n), r.stderr)

    def test_k_override_and_error(self):
        r = run_oimap(['--info', '-k', 'Repository_Remote:remotehost=127.0.0.2'], self.cfg)
        self.assertIn('127.0.0.2', r.stdout)
        r = run_oimap(['--info', '-k', 'Repository_Remote:ssl=perhaps'], self.cfg)
        self.assertEqual(r.rc, 2)
        self.assertIn('-k', r.stderr)

    def test_info_masks_password(self):
        r = run_oimap(['--info', '-d', 'imap'], self.cfg)
        self.assertIn('********', r.stdout)
        self.assertNotIn('hunter2', r.stdout + r.stderr)

    def test_unreachable_server_is_exit_1(self):
        # port 9 (discard) is closed on loopback: the account fails, clearly.
        r = run_oimap(['-o', '-u', 'basic'], self.cfg)
        self.assertEqual(r.rc, 1, r.stderr)
        self.assertIn('127.0.0.1', r.stderr)
        self.assertNotIn('hunter2', r.stderr)

    def test_retired_option_accepted(self):
        cfg = self.cfg.replace('[general]\n', '[general]\nstatus_backend = sqlite\n')
        r = run_oimap(['--info'], cfg)
        self.assertNotEqual(r.rc, 2, r.stderr)
        self.assertIn('status_backend', r.stderr)


if __name__ == '__main__':
    unittest.main(verbosity=2)
