#!/usr/bin/env python3
"""oimap as a daemon (no -o): IDLE push, autorefresh, reconnection after a
Dovecot restart, a refused password not hammered, and the systemd
notification protocol on a fake NOTIFY_SOCKET.

The helpers at the top are shared with test_signals.py."""

import contextlib
import os
import re
import resource
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from faultproxy import Fault, FaultProxy  # noqa: E402

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


def wait_logins(dv, user, n, timeout=10):
    """Wait until Dovecot logged n logins of user; returns the count."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = dv.count_logins(user)
        if got >= n:
            return got
        time.sleep(0.05)
    return dv.count_logins(user)


def local_flags(root, folder):
    """The Maildir flag letters of every message in folder, sorted."""
    out = []
    for sub in ('new', 'cur'):
        d = os.path.join(local_dir(root, folder), sub)
        for name in os.listdir(d) if os.path.isdir(d) else ():
            out.append(name.rsplit(':2,', 1)[1] if ':2,' in name else '')
    return sorted(out)


def wait_for(cond, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


HOLD = {'holdconnectionopen': 'yes'}


@contextlib.contextmanager
def no_core_files():
    """oimap processes started inside get RLIMIT_CORE 0 (SIGQUIT tests:
    the abort is checked, no core file is left behind)."""
    old = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, old)


class TestDaemon(util.DovecotTestCase):
    dovecot_args = {'users': {u: 'pw-' + u for u in (
        'alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gina', 'hank', 'ivy', 'jack',
        'kate', 'liam')}}

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
        # one sync + the watcher's first connection (which learns whether the
        # server has NOTIFY before it splits into one per folder), no more
        self.assertEqual(self.dv.count_logins('dave', failed=True) - before, 2,
                         self.dv.log_text()[-2000:])
        self.assertEqual(p.stderr.count('not retrying'), 1, p.stderr)
        self.assertIn('IDLE on INBOX, Sent:', p.stderr)
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

    def test_idle_one_connection_per_folder(self):
        """Without NOTIFY (this Dovecot has no mailbox list index): one IDLE
        connection per folder; the first one, opened to learn the server's
        capabilities, is kept for the first folder."""
        user = 'hank'
        for n, f in enumerate(('INBOX', 'Lists/dev', 'Sent')):
            self.dv.append(user, f, message(n))
        before = self.dv.count_logins(user)
        root, conf = config(self.dv, self.tmp, user, account_opts={'autorefresh': '10'},
                            remote=dict(HOLD, idlefolders="['INBOX', 'Lists/dev', 'Sent']"))
        p = util.start_oimap(['-u', 'basic'], conf, cwd=self.tmp)
        self.assertTrue(p.wait_for_output('watching 3 folder', 20), p.stderr)
        self.assertIsNotNone(wait_count(root, 'Sent', 1, 10))
        # the sync's connection (held) + one IDLE connection per folder
        self.assertEqual(wait_logins(self.dv, user, before + 4) - before, 4)
        time.sleep(1)
        for n, f in ((10, 'Lists/dev'), (11, 'Sent'), (12, 'INBOX')):
            self.dv.deliver_doveadm(user, f, message(n))
            self.assertIsNotNone(wait_count(root, f, 2, 5),
                                 '%s: not pushed within 5 s\n%s' % (f, p.stderr))
        self.assertEqual(self.dv.count_logins(user) - before, 4, 'a connection per push?')
        rc, _ = stop(self, p)
        self.assertEqual(rc, 0, p.stderr)
        self.assertNotIn('NOTIFY', p.stderr)

    def test_holdconnectionopen(self):
        """holdconnectionopen: every autorefresh sync uses the connection of
        the first one; one that died while held (Dovecot restarted) is
        replaced without a word."""
        user = 'ivy'
        self.dv.append(user, 'INBOX', message(1))
        before = self.dv.count_logins(user)
        root, conf = config(self.dv, self.tmp, user, account_opts={'autorefresh': '0.02'},
                            remote=HOLD)
        p = util.start_oimap(['-u', 'basic'], conf, cwd=self.tmp)
        self.assertTrue(wait_syncs(p, 4, timeout=30), p.stderr)
        self.assertEqual(self.dv.count_logins(user) - before, 1, 'one login for 4 syncs')
        self.dv.deliver_doveadm(user, 'INBOX', message(2))
        self.assertIsNotNone(wait_count(root, 'INBOX', 2, 10), p.stderr)
        self.dv.restart()
        self.dv.deliver_doveadm(user, 'INBOX', message(3))
        self.assertIsNotNone(wait_count(root, 'INBOX', 3, 15), p.stderr)
        n = len(SUMMARY.findall(p.stderr))
        self.assertTrue(wait_syncs(p, n + 2, timeout=20), p.stderr)
        rc, _ = stop(self, p)
        self.assertEqual(rc, 0, p.stderr)
        self.assertNotIn('ERROR', p.stderr)
        self.assertNotIn('WARNING', p.stderr)

    def _hold_black_hole(self, user, keepalive):
        """The held connection becomes a black hole (as after a suspend):
        the next sync gets a fresh connection, no error is shown.  Without
        keepalive the check (NOOP, socktimeout 2 s) finds it dead when the
        sync takes it; with keepalive the unanswered NOOP drops it before."""
        self.dv.append(user, 'INBOX', message(1))
        with FaultProxy(self.dv.host, self.dv.port) as px:
            remote = dict(HOLD, remoteport=px.port, socktimeout='2')
            if keepalive:
                remote['keepalive'] = str(keepalive)
            root, conf = config(self.dv, self.tmp, user, account_opts={'autorefresh': '0.1'},
                                remote=remote)
            p = util.start_oimap(['-u', 'basic', '-d', 'imap'], conf, cwd=self.tmp)
            self.assertTrue(wait_syncs(p, 1), p.stderr)
            time.sleep(2.5)
            px.stall_all()
            self.dv.deliver_doveadm(user, 'INBOX', message(2))
            self.assertIsNotNone(wait_count(root, 'INBOX', 2, 15), p.stderr[-5000:])
            rc, _ = stop(self, p)
            self.assertEqual(rc, 0, p.stderr[-5000:])
            self.assertEqual(len(px.stats), 2, px.stats)
        err = p.stderr
        self.assertNotIn('ERROR', err)
        self.assertNotIn('WARNING', err)
        return err

    def test_hold_dead_connection_checked(self):
        err = self._hold_black_hole('jack', keepalive=None)
        self.assertIn('is dead (no answer to NOOP); connecting again', err)
        self.assertEqual(err.count('NOOP\n'), 1, 'one NOOP: the check')

    def test_hold_keepalive(self):
        err = self._hold_black_hole('kate', keepalive=1)
        self.assertIn('dropped: no answer to the keepalive NOOP', err)
        self.assertGreaterEqual(err.count('NOOP\n'), 2, 'a NOOP every second while held')
        self.assertNotIn('is dead', err)

    def test_suspend_resume(self):
        """A simulated suspend: the daemon is stopped (SIGSTOP) for longer
        than socktimeout while the server drops its connections and mail
        arrives; after SIGCONT the network is down for two more connection
        attempts.  The daemon reconnects with back-off (1 s, 2 s) and the
        mail arrives."""
        user = 'liam'
        self.dv.append(user, 'INBOX', message(1))
        outage = {'left': 0}

        def plan(i):
            if outage['left'] > 0:
                outage['left'] -= 1
                return Fault('drop')
            return None
        with FaultProxy(self.dv.host, self.dv.port, plan=plan) as px:
            root, conf = config(self.dv, self.tmp, user, account_opts={'autorefresh': '10'},
                                remote=dict(HOLD, remoteport=px.port, socktimeout='2',
                                            idlefolders="['INBOX']"))
            p = util.start_oimap(['-u', 'basic'], conf, cwd=self.tmp)
            self.assertTrue(p.wait_for_output('watching 1 folder', 20), p.stderr)
            self.assertIsNotNone(wait_count(root, 'INBOX', 1, 10))
            time.sleep(0.5)
            p.signal(signal.SIGSTOP)
            try:
                px.reset_all()
                outage['left'] = 2
                self.dv.deliver_doveadm(user, 'INBOX', message(2))
                time.sleep(3)  # longer than socktimeout
            finally:
                p.signal(signal.SIGCONT)
            secs = wait_count(root, 'INBOX', 2, 20)
            self.assertIsNotNone(secs, 'mail not synced after the resume\n' + p.stderr)
            self.assertGreater(secs, 2.5, 'before the back-off ended?')
            err = p.stderr
            self.assertIn('reconnecting in 1 s', err)
            self.assertIn('next attempt in 2 s', err)
            self.assertIn('connected again', err)
            self.assertEqual(outage['left'], 0)
            # push works again
            time.sleep(0.5)
            self.dv.deliver_doveadm(user, 'INBOX', message(3))
            self.assertIsNotNone(wait_count(root, 'INBOX', 3, 5), p.stderr)
            rc, _ = stop(self, p)
            self.assertEqual(rc, 0, p.stderr)
        self.assertNotIn('ERROR', p.stderr)

    def test_notify_socket(self):
        self._notify_run('erin', abstract=False)

    def test_notify_socket_abstract(self):
        self._notify_run('frank', abstract=True)


class NotifyRewriter:
    """Proxied connection hook: remembers which connection set NOTIFY and
    can refuse NOTIFY SET as a server without it would."""

    refuse = False

    def __init__(self, conn, registry):
        self.conn = conn
        self.registry = registry

    def on_command(self, unit):
        line = unit.split(b'\r\n', 1)[0]
        if b' NOTIFY SET ' in line.upper():
            self.registry.append(self.conn)
            if self.refuse:
                self.conn.send_client(line.split(b' ', 1)[0] + b' NO NOTIFY is not for you\r\n')
                return b''
        return unit

    def on_response(self, unit):
        return unit


class TestNotify(util.DovecotTestCase):
    """Dovecot 2.3 offers NOTIFY (RFC 5465) with mailbox_list_index = yes:
    one connection then watches every idlefolder."""
    dovecot_args = {'users': {u: 'pw-' + u for u in ('nina', 'omar', 'pia', 'quinn')},
                    'list_index': True}

    FOLDERS = ('INBOX', 'Lists/dev', 'Sent')

    def start(self, user, remote=None, args=()):
        """Start the daemon on FOLDERS (and Nope, which does not exist);
        returns (root, process, Dovecot's logins of user before it)."""
        for n, f in enumerate(self.FOLDERS):
            self.dv.append(user, f, message(n))
        before = self.dv.count_logins(user)
        rem = dict(HOLD, idlefolders="['INBOX', 'Lists/dev', 'Sent', 'Nope']")
        rem.update(remote or {})
        root, conf = config(self.dv, self.tmp, user, account_opts={'autorefresh': '10'},
                            remote=rem)
        p = util.start_oimap(['-u', 'basic'] + list(args), conf, cwd=self.tmp)
        self.assertTrue(p.wait_for_output('watching 4 folder', 20), p.stderr)
        for f in self.FOLDERS:
            self.assertIsNotNone(wait_count(root, f, 1, 10), p.stderr)
        return root, p, before

    def test_notify_one_connection(self):
        user = 'nina'
        root, p, before = self.start(user)
        self.assertTrue(p.wait_for_output('no such folder?', 10), p.stderr)
        # the sync's (held) connection + one for every folder
        self.assertEqual(wait_logins(self.dv, user, before + 2) - before, 2)
        time.sleep(1)
        for n, f in ((10, 'Lists/dev'), (11, 'INBOX'), (12, 'Sent')):
            self.dv.deliver_doveadm(user, f, message(n))
            self.assertIsNotNone(wait_count(root, f, 2, 5),
                                 '%s: not pushed within 5 s\n%s' % (f, p.stderr))
        self.assertEqual(self.dv.count_logins(user) - before, 2, 'a connection per push?')
        # a flag set and an expunge on the server, in folders nobody selected
        self.dv.set_flags(user, 'Sent', [1], ['\\Flagged'])
        self.assertTrue(wait_for(lambda: 'F' in ''.join(local_flags(root, 'Sent')), 5),
                        local_flags(root, 'Sent'))
        self.dv.delete_messages(user, 'Lists/dev', [1])
        self.assertTrue(wait_for(lambda: count_local(root, 'Lists/dev') == 1, 5), p.stderr)
        rc, _ = stop(self, p)
        self.assertEqual(rc, 0, p.stderr)
        self.assertEqual(p.stderr.count('not watched'), 1, p.stderr)

    def test_notify_refused(self):
        """NOTIFY SET answered NO: one IDLE connection per folder instead."""
        user = 'omar'
        registry = []

        class Refuse(NotifyRewriter):
            refuse = True
        with FaultProxy(self.dv.host, self.dv.port,
                        rewriter=lambda c: Refuse(c, registry)) as px:
            root, p, before = self.start(user, remote={'remoteport': px.port})
            self.assertTrue(p.wait_for_output('the server refused NOTIFY', 10), p.stderr)
            # the sync's + one per folder, the first reused, Nope's too (it
            # then fails to EXAMINE)
            self.assertEqual(wait_logins(self.dv, user, before + 5) - before, 5)
            time.sleep(1)
            self.dv.deliver_doveadm(user, 'Lists/dev', message(10))
            self.assertIsNotNone(wait_count(root, 'Lists/dev', 2, 5), p.stderr)
            rc, _ = stop(self, p)
            self.assertEqual(rc, 0, p.stderr)
            self.assertEqual(px.errors, [])
            self.assertEqual(len(registry), 1)

    def test_notification_overflow(self):
        """[NOTIFICATIONOVERFLOW]: the server stopped notifying; the watcher
        connects again (and syncs every folder once)."""
        user = 'pia'
        registry = []
        with FaultProxy(self.dv.host, self.dv.port,
                        rewriter=lambda c: NotifyRewriter(c, registry)) as px:
            root, p, _ = self.start(user, remote={'remoteport': px.port})
            self.assertTrue(wait_for(lambda: len(registry) == 1, 10))
            time.sleep(1)
            registry[0].send_client(b'* OK [NOTIFICATIONOVERFLOW] too much going on\r\n')
            self.assertTrue(p.wait_for_output('NOTIFICATIONOVERFLOW', 5), p.stderr)
            self.assertTrue(wait_for(lambda: len(registry) == 2, 10), p.stderr)
            time.sleep(1)
            self.dv.deliver_doveadm(user, 'Sent', message(10))
            self.assertIsNotNone(wait_count(root, 'Sent', 2, 5), p.stderr)
            rc, _ = stop(self, p)
            self.assertEqual(rc, 0, p.stderr)
            self.assertEqual(px.errors, [])

    def test_notify_sigquit(self):
        """SIGQUIT's dump shows the NOTIFY connection and the held one."""
        user = 'quinn'
        with no_core_files():
            root, p, _ = self.start(user)
        time.sleep(1)
        p.signal(signal.SIGQUIT)
        self.assertEqual(p.wait(15), -signal.SIGABRT, p.stderr)
        err = p.stderr
        self.assertRegex(err, r'NOTIFY INBOX, Lists/dev, Sent: idle; connection IDLE '
                              r'\(127\.0\.0\.1:\d+\); up \d+ s; \d+ events, 0 reconnects; '
                              r'1 command\(s\) in flight, oldest IDLE, 0 bytes queued; '
                              r'timer due in \d+ ms')
        self.assertRegex(err, r'held connection of Account test: 127\.0\.0\.1:\d+, '
                              r'(SELECTED|AUTHENTICATED); held \d+ s')


if __name__ == '__main__':
    util.main()
