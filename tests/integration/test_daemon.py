#!/usr/bin/env python3
"""oimap as a daemon (no -o): IDLE push, autorefresh, reconnection after a
Dovecot restart, a refused password not hammered, and the systemd
notification protocol on a fake NOTIFY_SOCKET.

The helpers at the top are shared with test_signals.py."""

import os
import re
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402

SUMMARY = re.compile(r'Account (\S+): \d+ folders, ')


def message(n, subject='daemon test'):
    return ('From: Tester <t@example.org>\r\nTo: alice@example.org\r\n'
            'Subject: %s %d\r\nMessage-ID: <daemon-%d-%d@example.org>\r\n'
            'Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nBody %d\r\n'
            % (subject, n, n, os.getpid(), n)).encode()


def local_dir(root, folder):
    return os.path.join(root, folder.replace('/', '.'))


def count_local(root, folder):
    n = 0
    for sub in ('new', 'cur'):
        d = os.path.join(local_dir(root, folder), sub)
        if os.path.isdir(d):
            n += len(os.listdir(d))
    return n


def wait_count(root, folder, n, timeout):
    """Seconds until folder holds n messages, or None after timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if count_local(root, folder) >= n:
            return time.monotonic() - t0
        time.sleep(0.01)
    return None


def wait_syncs(p, n, timeout=20):
    """Wait until the account summary line appeared n times; True/False."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if len(SUMMARY.findall(p.stderr + p.stdout)) >= n:
            return True
        if p.poll() is not None:
            break
        time.sleep(0.02)
    return len(SUMMARY.findall(p.stderr + p.stdout)) >= n


def config(dv, tmp, user='alice', account_opts=None, remote=None, general=None):
    root = os.path.join(tmp, 'Mail')
    text = util.offlineimap_config(dv, root, user=user, security='plain',
                                   metadata=os.path.join(tmp, 'meta'),
                                   account_opts=account_opts, remote=remote, general=general)
    return root, text


def stop(tc, p, sig=signal.SIGTERM, within=10):
    """Signal p, assert it exits within `within` seconds; returns (rc, secs)."""
    t0 = time.monotonic()
    p.signal(sig)
    rc = p.wait(within + 5)
    secs = time.monotonic() - t0
    tc.assertLess(secs, within, 'exit took %.1f s\n%s' % (secs, p.stderr[-3000:]))
    return rc, secs


class TestDaemon(util.DovecotTestCase):
    dovecot_args = {'users': {'alice': 'pw-alice', 'bob': 'pw-bob', 'carol': 'pw-carol',
                              'dave': 'pw-dave', 'erin': 'pw-erin', 'frank': 'pw-frank',
                              'gina': 'pw-gina'}}

    def test_once_ignores_autorefresh(self):
        root, conf = config(self.dv, self.tmp, 'gina', account_opts={'autorefresh': '10'},
                            remote={'idlefolders': "['INBOX']"})
        self.dv.append('gina', 'INBOX', message(1))
        r = util.run_oimap(['-o', '-u', 'basic'], conf, timeout=30)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertNotIn('IDLE', r.stderr)
        self.assertEqual(count_local(root, 'INBOX'), 1)

    def test_quick_every_nth(self):
        """quick = 2: two quick syncs between full ones (offlineimap's
        meaning), seen through the hook's OFFLINEIMAPSYNCMODE."""
        modes = os.path.join(self.tmp, 'modes')
        root, conf = config(self.dv, self.tmp, 'gina', account_opts={
            'autorefresh': '0.01', 'quick': '2',
            'presynchook': 'echo $OFFLINEIMAPSYNCMODE >> %s' % modes})
        p = util.start_oimap(['-u', 'basic'], conf, cwd=self.tmp)
        self.assertTrue(wait_syncs(p, 5, timeout=20), p.stderr)
        rc, _ = stop(self, p)
        self.assertEqual(rc, 0, p.stderr)
        with open(modes) as f:
            got = f.read().split()
        self.assertEqual(got[:5], ['full', 'quick', 'quick', 'full', 'quick'], got)

    def test_idle_push(self):
        """Delivered while IDLE: arrives without waiting for autorefresh."""
        self.dv.append('alice', 'INBOX', message(1))
        root, conf = config(self.dv, self.tmp, 'alice', account_opts={'autorefresh': '10'},
                            remote={'idlefolders': "['INBOX']"})
        p = util.start_oimap(['-u', 'basic'], conf, cwd=self.tmp)
        self.assertTrue(p.wait_for_output('watching 1 folder', 20), p.stderr)
        self.assertIsNotNone(wait_count(root, 'INBOX', 1, 10))
        time.sleep(0.3)  # let the IDLE connection settle
        for n in (2, 3):
            self.dv.deliver_doveadm('alice', 'INBOX', message(n))
            secs = wait_count(root, 'INBOX', n, 5)
            self.assertIsNotNone(secs, 'message %d not pushed within 5 s\n%s' % (n, p.stderr))
        rc, _ = stop(self, p)
        self.assertEqual(rc, 0, p.stderr)
        self.assertEqual(count_local(root, 'INBOX'), 3)

    def test_autorefresh(self):
        """autorefresh = 0.05 (3 s) picks up a message in a folder nobody
        IDLEs on."""
        self.dv.append('bob', 'INBOX', message(1))
        self.dv.append('bob', 'Lists/dev', message(2))
        root, conf = config(self.dv, self.tmp, 'bob', account_opts={'autorefresh': '0.05'},
                            remote={'idlefolders': "['INBOX']"})
        p = util.start_oimap(['-u', 'basic'], conf, cwd=self.tmp)
        self.assertTrue(wait_syncs(p, 1), p.stderr)
        self.assertEqual(count_local(root, 'Lists/dev'), 1)
        self.dv.deliver_doveadm('bob', 'Lists/dev', message(3))
        secs = wait_count(root, 'Lists/dev', 2, 8)
        self.assertIsNotNone(secs, 'autorefresh did not sync within 8 s\n' + p.stderr)
        rc, _ = stop(self, p)
        self.assertEqual(rc, 0, p.stderr)

    def test_dovecot_restart(self):
        """The server restarts under the daemon: IDLE reconnects and what is
        delivered afterwards arrives."""
        self.dv.append('carol', 'INBOX', message(1))
        root, conf = config(self.dv, self.tmp, 'carol', account_opts={'autorefresh': '10'},
                            remote={'idlefolders': "['INBOX']"})
        p = util.start_oimap(['-u', 'basic'], conf, cwd=self.tmp)
        self.assertTrue(p.wait_for_output('watching 1 folder', 20), p.stderr)
        self.assertIsNotNone(wait_count(root, 'INBOX', 1, 10))
        time.sleep(0.3)
        self.dv.restart()
        self.dv.deliver_doveadm('carol', 'INBOX', message(2))
        secs = wait_count(root, 'INBOX', 2, 15)
        self.assertIsNotNone(secs, 'not synced after the restart\n' + p.stderr)
        self.assertIn('reconnecting', p.stderr)
        # and push works on the new connection
        self.assertTrue(p.wait_for_output('connected again', 10), p.stderr)
        time.sleep(0.3)
        self.dv.deliver_doveadm('carol', 'INBOX', message(3))
        self.assertIsNotNone(wait_count(root, 'INBOX', 3, 5), p.stderr)
        rc, _ = stop(self, p)
        self.assertEqual(rc, 0, p.stderr)

    def test_wrong_password_not_hammered(self):
        """A refused password stops the IDLE watcher at once (one try)."""
        root, conf = config(self.dv, self.tmp, 'dave', account_opts={'autorefresh': '10'},
                            remote={'idlefolders': "['INBOX', 'Sent']",
                                    'remotepass': 'wrong-password'})
        before = self.dv.count_logins('dave', failed=True)
        p = util.start_oimap(['-u', 'basic'], conf, cwd=self.tmp)
        self.assertTrue(p.wait_for_output('not retrying', 20), p.stderr)
        time.sleep(2.5)  # a retry loop would show up here (back-off starts at 1 s)
        self.assertTrue(p.poll() is None, 'the daemon exited\n' + p.stderr)
        # one sync + one per IDLE folder, no more
        self.assertEqual(self.dv.count_logins('dave', failed=True) - before, 3,
                         self.dv.log_text()[-2000:])
        self.assertEqual(p.stderr.count('not retrying'), 2, p.stderr)
        rc, _ = stop(self, p)
        self.assertEqual(rc, 1, 'the last sync failed: exit status 1\n' + p.stderr)

    def _notify_run(self, user, abstract):
        self.dv.append(user, 'INBOX', message(1))
        root, conf = config(self.dv, self.tmp, user, account_opts={'autorefresh': '10'},
                            remote={'idlefolders': "['INBOX']"})
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = 'oimap-test-%d-%d' % (os.getpid(), time.monotonic_ns())
            sock.bind('\0' + name)
            addr = '@' + name
        else:
            addr = os.path.join(self.tmp, 'notify.sock')
            sock.bind(addr)
        sock.settimeout(0.2)
        msgs = []

        def drain(until, timeout):
            t0 = time.monotonic()
            while time.monotonic() - t0 < timeout:
                try:
                    m = sock.recv(4096).decode()
                except socket.timeout:
                    continue
                msgs.append((m, count_local(root, 'INBOX')))
                if until in m:
                    return True
            return False

        try:
            p = util.start_oimap(['-u', 'basic'], conf, cwd=self.tmp,
                                 env={'NOTIFY_SOCKET': addr, 'WATCHDOG_USEC': '400000'})
            self.assertTrue(drain('READY=1', 20), '%r\n%s' % (msgs, p.stderr))
            ready = [c for m, c in msgs if 'READY=1' in m]
            self.assertEqual(ready, [1], 'READY=1 before the first sync ended: %r' % msgs)
            self.assertTrue(any(m.startswith('STATUS=syncing test') for m, _ in msgs), msgs)
            self.assertTrue(drain('WATCHDOG=1', 3), msgs)
            self.assertTrue(any(m.startswith('STATUS=idle; next sync in 10 min')
                                for m, _ in msgs), msgs)
            p.signal(signal.SIGTERM)
            self.assertTrue(drain('STOPPING=1', 10), msgs)
            self.assertEqual(p.wait(10), 0, p.stderr)
        finally:
            sock.close()

    def test_notify_socket(self):
        self._notify_run('erin', abstract=False)

    def test_notify_socket_abstract(self):
        self._notify_run('frank', abstract=True)


if __name__ == '__main__':
    util.main()
