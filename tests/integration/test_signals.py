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
from test_daemon import config, count_local, message, stop, wait_count, wait_syncs  # noqa: E402


class TestSignals(util.DovecotTestCase):
    dovecot_args = {'users': {u: 'pw-' + u for u in
                              ('u1', 'u2', 'u3', 'u4', 'u5', 'u6', 'u7', 'u8')}}

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
        _, _, p = self.start('u6', remote={'idlefolders': "['INBOX']"})
        self.assertTrue(p.wait_for_output('watching 1 folder', 20), p.stderr)
        time.sleep(0.3)
        p.signal(signal.SIGQUIT)
        rc = p.wait(15)
        self.assertEqual(rc, -signal.SIGABRT, p.stderr)
        err = p.stderr
        self.assertIn('SIGQUIT: state of oimap', err)
        self.assertRegex(err, r'Account test: waiting; \d+ sync\(s\) done, last ok')
        self.assertRegex(err,
                         r'IDLE INBOX: idle; connection IDLE \(127\.0\.0\.1:\d+\).* 0 reconnects')

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
