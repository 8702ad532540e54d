#!/usr/bin/env python3
"""Signals, as oimap(1) documents them, answered at once:
SIGUSR1 syncs now; SIGUSR2 exits after the current sync (status 0);
SIGTERM, SIGINT and SIGHUP stop within 10 s with the account lock released
(a second signal exits at once); SIGQUIT logs the state and aborts."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from util import corpus, listeners  # noqa: E402
from test_daemon import (config, count_local, message, no_core_files, stop,  # noqa: E402
                         wait_count, wait_syncs)


class TestSignals(util.DovecotTestCase):
    dovecot_args = {'users': {u: 'pw-' + u for u in
                              ('u1', 'u2', 'u3', 'u4', 'u5', 'u6', 'u7', 'u8', 'u9')}}

    def start(self, user, account_opts=None, remote=None):
        self.dv.append(user, 'INBOX', message(1))
        root, conf = config(self.dv, self.tmp, user,
                            account_opts=account_opts or {'autorefresh': '10'}, remote=remote)
        p = util.start_oimap(['-u', 'basic'], conf, cwd=self.tmp)
        return root, conf, p

    def test_usr1_syncs_now(self):
        root, _, p = self.start('u1')
        self.assertTrue(wait_syncs(p, 1), p.stderr)
        self.dv.deliver_doveadm('u1', 'INBOX', message(2))
        time.sleep(0.5)
        self.assertEqual(count_local(root, 'INBOX'), 1, 'synced without being asked')
        p.signal(signal.SIGUSR1)
        secs = wait_count(root, 'INBOX', 2, 5)
        self.assertIsNotNone(secs, 'SIGUSR1 did not sync\n' + p.stderr)
        self.assertIn('SIGUSR1', p.stderr)
        rc, _ = stop(self, p)
        self.assertEqual(rc, 0, p.stderr)

    def test_usr2_after_current_sync(self):
        """SIGUSR2 during the first sync: that sync completes, then exit 0."""
        user = 'u2'
        corpus.fill(self.dv, user, 400, seed=5, folders=(('INBOX', 100, 'inbox'),),
                    min_size=2000, max_size=8000)
        # fsync makes the sync last long enough to be signalled in the middle
        root, conf = config(self.dv, self.tmp, user, account_opts={'autorefresh': '10'},
                            general={'fsync': 'yes'})
        p = util.start_oimap(['-u', 'basic'], conf, cwd=self.tmp)
        self.assertTrue(p.wait_for_output('Account test: syncing', 10), p.stderr)
        rc, _ = stop(self, p, signal.SIGUSR2, within=30)
        self.assertEqual(rc, 0, p.stderr)
        self.assertEqual(count_local(root, 'INBOX'), 400, 'the current sync was cut short')
        self.assertIn('SIGUSR2', p.stderr)
        if 'exiting after the current sync' not in p.stderr:
            print('note: SIGUSR2 arrived after the sync', file=sys.stderr)
        # when idle, SIGUSR2 exits at once
        p = util.start_oimap(['-u', 'basic'], conf, cwd=self.tmp)
        self.assertTrue(wait_syncs(p, 1), p.stderr)
        rc, secs = stop(self, p, signal.SIGUSR2, within=2)
        self.assertEqual(rc, 0, p.stderr)

    def _graceful(self, user, sig):
        """Stop while idle (at once), then during a sync (within 10 s): the
        lock is released each time and a rerun completes the work."""
        root, conf, p = self.start(user)
        self.assertTrue(wait_syncs(p, 1), p.stderr)
        rc, secs = stop(self, p, sig, within=2)
        self.assertEqual(rc, 0, p.stderr)
        r = util.run_oimap(['-o', '-u', 'basic'], conf)
        self.assertEqual(r.rc, 0, 'lock not released?\n' + r.stderr)

        corpus.fill(self.dv, user, 150, seed=6, folders=(('INBOX', 60, 'inbox'),
                                                         ('Lists/dev', 40, 'list')),
                    min_size=2000, max_size=8000)
        p = util.start_oimap(['-u', 'basic'], conf, cwd=self.tmp)
        self.assertTrue(p.wait_for_output('Account test: syncing', 10), p.stderr)
        time.sleep(0.05)
        rc, secs = stop(self, p, sig, within=10)
        self.assertEqual(rc, 0, p.stderr)
        r = util.run_oimap(['-o', '-u', 'basic'], conf)
        self.assertEqual(r.rc, 0, 'lock not released?\n' + r.stderr)
        total = sum(count_local(root, f) for f in ('INBOX', 'Lists/dev'))
        self.assertEqual(total, 151, 'lost or duplicated messages')

    def test_sigterm(self):
        self._graceful('u3', signal.SIGTERM)

    def test_sigint(self):
        self._graceful('u4', signal.SIGINT)

    def test_sighup(self):
        self._graceful('u5', signal.SIGHUP)

    def test_sigquit_dumps_and_aborts(self):
        """Idle: the account, its IDLE connection and the connection held
        for the next sync are in the log; then SIGABRT."""
        with no_core_files():
            _, _, p = self.start('u6', remote={'idlefolders': "['INBOX']",
                                               'holdconnectionopen': 'yes'})
        self.assertTrue(p.wait_for_output('watching 1 folder', 20), p.stderr)
        time.sleep(0.3)
        p.signal(signal.SIGQUIT)
        rc = p.wait(15)
        self.assertEqual(rc, -signal.SIGABRT, p.stderr)
        err = p.stderr
        self.assertIn('SIGQUIT: state of oimap', err)
        self.assertRegex(err, r'Account test: waiting; \d+ sync\(s\) done, last ok')
        self.assertRegex(err,
                         r'IDLE INBOX: idle; connection IDLE \(127\.0\.0\.1:\d+\).* 0 reconnects; '
                         r'1 command\(s\) in flight, oldest IDLE, 0 bytes queued')
        self.assertRegex(err, r'held connection of Account test: 127\.0\.0\.1:\d+, SELECTED; '
                              r'held \d+ s; 0 keepalive NOOP\(s\); 0 command\(s\) in flight')
        self.assertIn('SIGQUIT: aborting for a core dump', err)

    def test_sigquit_during_sync(self):
        """In the middle of a download: the sync's stage, its connections
        (peer, state, folder, commands in flight, bytes queued) and its
        folder jobs are in the log."""
        user = 'u9'
        corpus.fill(self.dv, user, 300, seed=9, folders=(('INBOX', 100, 'inbox'),
                                                         ('Lists/dev', 40, 'list')),
                    min_size=2000, max_size=8000)
        root, conf = config(self.dv, self.tmp, user, account_opts={'autorefresh': '10'},
                            remote={'maxconnections': '2'}, general={'fsync': 'yes'})
        with no_core_files():
            p = util.start_oimap(['-u', 'basic'], conf, cwd=self.tmp)
        deadline = time.monotonic() + 20
        while count_local(root, 'INBOX') < 5 and time.monotonic() < deadline:
            time.sleep(0.005)
        p.signal(signal.SIGQUIT)
        self.assertEqual(p.wait(15), -signal.SIGABRT, p.stderr)
        err = p.stderr
        if count_local(root, 'INBOX') + count_local(root, 'Lists/dev') >= 300:
            self.skipTest('the sync ended before SIGQUIT arrived')
        self.assertRegex(err, r'sync of Account test: syncing folders for \d+ s; \d+ folder\(s\): '
                              r'\d+ done \(0 failed\)')
        self.assertRegex(err, r'connection [12]: 127\.0\.0\.1:\d+, SELECTED; syncing folder '
                              r'(INBOX|Lists/dev); \d+ command\(s\) in flight(, oldest '
                              r'[A-Z ]+)?, \d+ waiting, \d+ bytes queued')
        self.assertRegex(err, r'folder (INBOX|Lists/dev): syncing on connection [12]')

    def test_stuck_server_exit_within_10s(self):
        """A sync stuck on a server that never answers (no socktimeout):
        SIGTERM still ends oimap within 10 s, and a second signal at once."""
        with listeners.SilentServer() as srv:
            for second in (False, True):
                tmp = util.tmpdir('stuck')
                _, conf = config(self.dv, tmp, 'u7', account_opts={'autorefresh': '10'},
                                 remote={'remoteport': srv.port})
                p = util.start_oimap(['-u', 'basic'], conf, cwd=tmp)
                deadline = time.monotonic() + 10
                while srv.connections < 1 + second and time.monotonic() < deadline:
                    time.sleep(0.02)
                time.sleep(0.1)
                if second:
                    p.signal(signal.SIGTERM)
                    time.sleep(0.2)
                    rc, secs = stop(self, p, signal.SIGTERM, within=2)
                else:
                    rc, secs = stop(self, p, signal.SIGTERM, within=10.5)
                    self.assertGreater(secs, 5, 'did not wait for the sync at all?')
                self.assertEqual(rc, 1, p.stderr)
                self.assertIn('exiting now', p.stderr)


if __name__ == '__main__':
    util.main()
