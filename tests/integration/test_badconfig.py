#!/usr/bin/env python3
"""Malformed configurations: each file in tests/integration/data/badconfig/
must make `oimap -o` exit with status 2 and a one-line error
"FILE:LINE: ..." (the line the case names), and touch nothing: no Maildir,
no metadata directory, no connection to the server (a SilentServer that
counts connections stands in for it).

A case file starts with a header of comment lines, then the config:
    # line: 7                  the line the error must name (0: no line,
    #                          the error names the file only)
    # expect: regex            (optional) must appear in the message
    # setup: passdir           (optional) extra set-up, see SETUPS
@ROOT@ in a case is replaced by a fresh directory per case, @PORT@ by the
silent server's port.  The header lines are removed before the run, so
line numbers count from the first line after them.

OIMAP_BADCONFIG_SHOW=1 prints every message (to review their wording).
"""

import glob
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from util import listeners  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'badconfig')
SHOW = bool(os.environ.get('OIMAP_BADCONFIG_SHOW'))
SANITIZER_MARKS = ('AddressSanitizer', 'runtime error:', 'LeakSanitizer')


def setup_passdir(root):
    os.makedirs(os.path.join(root, 'passdir'))


SETUPS = {'passdir': setup_passdir}


def load(path):
    meta = {}
    with open(path, 'rb') as f:
        raw = f.read()
    lines = raw.split(b'\n')
    i = 0
    while i < len(lines) and lines[i].startswith(b'#!'):
        k, _, v = lines[i][2:].decode().partition(':')
        meta[k.strip()] = v.strip()
        i += 1
    body = b'\n'.join(lines[i:])
    return meta, body


class TestBadConfig(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = listeners.SilentServer()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_cases(self):
        files = sorted(glob.glob(os.path.join(DATA, '*.conf')))
        self.assertGreaterEqual(len(files), 30)
        for path in files:
            name = os.path.basename(path)
            with self.subTest(name):
                meta, body = load(path)
                root = util.tmpdir('bad')
                body = body.replace(b'@ROOT@', root.encode()).replace(
                    b'@PORT@', str(self.srv.port).encode())
                if meta.get('setup'):
                    SETUPS[meta['setup']](root)
                conf = os.path.join(root, name)
                with open(conf, 'wb') as f:
                    f.write(body)
                before = sorted(os.listdir(root))
                conns = self.srv.connections
                r = util.run_oimap(['-o', '-u', 'basic'], config_path=conf, timeout=30,
                                   home=root)
                out = r.stdout + r.stderr
                if SHOW:
                    print('%-32s rc=%d %s' % (name, r.rc, out.strip().replace('\n', ' | ')),
                          file=sys.stderr)
                for mark in SANITIZER_MARKS:
                    self.assertNotIn(mark, out)
                self.assertEqual(r.rc, 2, out)
                line = int(meta.get('line', '0'))
                if line:
                    self.assertRegex(out, re.escape(conf) + ':%d: ' % line)
                else:
                    self.assertIn(conf, out)
                if meta.get('expect'):
                    self.assertRegex(out, meta['expect'])
                self.assertEqual(sorted(os.listdir(root)), before, 'files were created')
                self.assertEqual(self.srv.connections, conns, 'it connected to the server')


if __name__ == '__main__':
    util.main()
