#!/usr/bin/env python3
"""preauthtunnel and transporttunnel: IMAP over a command's stdin and stdout.

preauthtunnel runs Dovecot's imap binary on stdio for a user (PREAUTH, no
login); transporttunnel runs a small TCP relay (then LOGIN) or openssl
s_client -quiet to the TLS port (offlineimap's own example, a command that
ignores the end of its input and must be signalled).  A failing command is
reported with its exit status, a server that wants a login over a
preauthtunnel is refused, and no tunnel process outlives oimap."""

import os
import re
import shlex
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402

IMAP_BIN = '/usr/lib/dovecot/imap'

RELAY = r'''
import os, socket, sys, threading
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
def up():
    while True:
        b = os.read(0, 65536)
        if not b:
            break
        s.sendall(b)
    s.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
while True:
    b = s.recv(65536)
    if not b:
        break
    os.write(1, b)
'''


def message(n):
    return ('From: t@example.org\r\nTo: alice@example.org\r\nSubject: tunnel %d\r\n'
            'Message-ID: <tunnel-%d-%d@example.org>\r\n\r\nbody %d\r\n'
            % (n, n, os.getpid(), n)).encode()


def count_local(root, folder):
    d = os.path.join(root, folder)
    return sum(len(os.listdir(os.path.join(d, sub))) for sub in ('new', 'cur')
               if os.path.isdir(os.path.join(d, sub)))


def processes_with(text):
    """PIDs whose command line contains text."""
    out = []
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % name, 'rb') as f:
                cmd = f.read().replace(b'\0', b' ').decode(errors='replace')
        except OSError:
            continue
        if text in cmd:
            out.append(int(name))
    return out


@unittest.skipUnless(os.access(IMAP_BIN, os.X_OK), IMAP_BIN + ' not installed')
class TestTunnel(util.DovecotTestCase):

    def conf(self, remote, user=None):
        r = {'remotehost': None, 'remoteport': None, 'ssl': None, 'starttls': None,
             'sslcacertfile': None, 'remoteuser': None, 'remotepass': None}
        if user:
            r.update({'remoteuser': user, 'remotepass': util.cfg_escape(self.dv.users[user])})
        r.update(remote)
        self.root = os.path.join(self.tmp, 'mail')
        return util.offlineimap_config(self.dv, self.root, remote=r,
                                       metadata=os.path.join(self.tmp, 'meta'))

    def relay(self, port):
        path = util.write_file(os.path.join(self.tmp, 'relay.py'), RELAY, 0o644)
        return 'python3 %s 127.0.0.1 %d' % (path, port)

    def preauth_cmd(self, user):
        return '%s -c %s -u %s' % (IMAP_BIN, self.dv.conf_path, user)

    def assert_no_leftover(self, marker):
        deadline = time.monotonic() + 5
        while processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(processes_with(marker), [], 'tunnel command still running')

    def test_preauthtunnel_sync(self):
        self.dv.append('alice', 'INBOX', message(1))
        self.dv.append('alice', 'Lists/oimap', message(2))
        logins = self.dv.count_logins('alice')
        conf = self.conf({'preauthtunnel': self.preauth_cmd('alice')})
        r = util.run_oimap(['-o', '-d', 'imap'], conf, timeout=60)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr[-3000:])
        self.assertEqual(count_local(self.root, 'INBOX'), 1)
        self.assertEqual(count_local(self.root, 'Lists.oimap'), 1)
        self.assertIn('S: * PREAUTH', r.stderr)
        self.assertNotRegex(r.stderr, r'C: \S+ (LOGIN|AUTHENTICATE)')
        self.assertEqual(self.dv.count_logins('alice'), logins, 'no login through imap-login')
        # the other way: a local message goes up through the tunnel
        util.write_file(os.path.join(self.root, 'INBOX', 'new', '1700000000.1.host'),
                        message(3).decode().replace('\r\n', '\n'))
        r = util.run_oimap(['-o'], conf, timeout=60)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr[-3000:])
        self.assertEqual(len(self.dv.fetch_all('alice', 'INBOX')), 2)
        self.assert_no_leftover(self.dv.conf_path + ' -u alice')

    def test_transporttunnel_relay_login(self):
        self.dv.append('bob', 'INBOX', message(4))
        before = self.dv.count_logins('bob')
        conf = self.conf({'transporttunnel': self.relay(self.dv.port)}, user='bob')
        r = util.run_oimap(['-o', '-d', 'imap'], conf, timeout=60)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr[-3000:])
        self.assertEqual(count_local(self.root, 'INBOX'), 1)
        time.sleep(0.2)
        self.assertEqual(self.dv.count_logins('bob'), before + 1)
        self.assertNotIn(self.dv.users['bob'], r.stdout + r.stderr)
        self.assertNotIn('travels in clear text', r.stdout + r.stderr)
        self.assertIn('tunnel "python3 ', r.stderr)
        self.assert_no_leftover(os.path.join(self.tmp, 'relay.py'))

    @unittest.skipUnless(shutil.which('openssl'), 'no openssl')
    def test_transporttunnel_openssl_s_client(self):
        """s_client -quiet ignores the end of its input: oimap ends it."""
        self.dv.append('bob', 'Sent', message(5))
        cmd = ('openssl s_client -connect 127.0.0.1:%d -quiet -verify_return_error -CAfile %s'
               % (self.dv.tls_port, shlex.quote(self.dv.ca_file)))
        conf = self.conf({'transporttunnel': cmd, 'ssl': 'yes'}, user='bob')
        t0 = time.monotonic()
        r = util.run_oimap(['-o'], conf, timeout=60)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr[-3000:])
        self.assertLess(time.monotonic() - t0, 15)
        self.assertEqual(count_local(self.root, 'Sent'), 1)
        self.assert_no_leftover('s_client -connect 127.0.0.1:%d ' % self.dv.tls_port)

    def test_failing_command(self):
        conf = self.conf({'transporttunnel': 'echo "no route to imap" >&2; exit 3'},
                         user='bob')
        r = util.run_oimap(['-o'], conf, timeout=60)
        self.assertNotEqual(r.rc, 0)
        self.assertIn('no route to imap', r.stderr)
        self.assertIn('tunnel "echo "no route to imap" >&2; exit 3": the tunnel command '
                      'exited with status 3', r.stdout + r.stderr)

    def test_preauthtunnel_to_a_login_server(self):
        conf = self.conf({'preauthtunnel': self.relay(self.dv.port)})
        r = util.run_oimap(['-o'], conf, timeout=60)
        self.assertNotEqual(r.rc, 0)
        self.assertIn('preauthtunnel: the server greeted with OK, not PREAUTH',
                      r.stdout + r.stderr)

    def test_both_tunnels(self):
        conf = self.conf({'preauthtunnel': 'true', 'transporttunnel': 'true'})
        r = util.run_oimap(['-o'], conf, timeout=60)
        self.assertNotEqual(r.rc, 0)
        self.assertIn('preauthtunnel and transporttunnel: set only one', r.stdout + r.stderr)

    def test_info_shows_tunnel(self):
        conf = self.conf({'preauthtunnel': self.preauth_cmd('alice')})
        r = util.run_oimap(['--info'], conf, timeout=60)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr[-3000:])
        self.assertIn('preauthtunnel: ' + self.preauth_cmd('alice'), r.stdout)
        self.assertRegex(r.stdout, re.compile(r'INBOX'))
        self.assertIn('through preauthtunnel', r.stdout)
        self.assertNotIn('remotehost not set', r.stdout)
        self.assertNotIn('clear text', r.stdout)


if __name__ == '__main__':
    util.main()
