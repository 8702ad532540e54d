#!/usr/bin/env python3
"""--dry-run predicts exactly what the next real run does, and changes
nothing anywhere: the Maildir tree, the server (messages, flags, UIDNEXT,
HIGHESTMODSEQ) and the status store files stay byte-identical."""

import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from util import corpus  # noqa: E402
from test_sync import (assert_same, letters_of,  # noqa: E402
                       local_files, make_config, new_local_message, set_local_flags,
                       summaries, sync, tree_snapshot, uid_of)


def server_state(dv, user):
    with dv.session(user) as s:
        out = {}
        for f in s.list_folders():
            out[f] = (s.fetch_all(f, modseq=True), s.status(f))
        return out


class TestDryRun(util.DovecotTestCase):
    dovecot_args = {'users': {'d1': 'pw-1', 'd2': 'pw-2'}}

    def setUp(self):
        super().setUp()
        self.root = os.path.join(self.tmp, 'mail')

    def check_dry_then_real(self, conf, user):
        meta = os.path.join(self.tmp, 'meta-' + user)
        before = (tree_snapshot(self.root) if os.path.isdir(self.root) else None,
                  tree_snapshot(meta) if os.path.isdir(meta) else None,
                  server_state(self.dv, user))
        r = sync(conf, '--dry-run')
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        after = (tree_snapshot(self.root) if os.path.isdir(self.root) else None,
                 tree_snapshot(meta) if os.path.isdir(meta) else None,
                 server_state(self.dv, user))
        self.assertEqual(before[0], after[0], 'the Maildir changed')
        self.assertEqual(before[1], after[1], 'the status store changed')
        self.assertEqual(before[2], after[2], 'the server changed')
        dry = {k[0]: v for k, v in summaries(r.stdout + r.stderr).items() if k[1]}
        self.assertTrue(dry, r.stdout + r.stderr)
        real_r = sync(conf)
        self.assertEqual(real_r.rc, 0, real_r.stdout + real_r.stderr)
        real = {k[0]: v for k, v in summaries(real_r.stdout + real_r.stderr).items()
                if not k[1]}
        zero = (0,) * 8
        for f in set(dry) | set(real):
            self.assertEqual(dry.get(f, zero), real.get(f, zero),
                             'folder %s: dry-run %s, real run %s\n%s' %
                             (f, dry.get(f), real.get(f), r.stdout + r.stderr))
        return r

    def test_first_sync_predicted_and_nothing_created(self):
        user = 'd1'
        corpus.fill(self.dv, user, 60, seed=21, min_size=1500, max_size=8000)
        conf = make_config(self.dv, self.root, user)
        r = self.check_dry_then_real(conf, user)
        self.assertIn('would create the local folder', r.stdout + r.stderr)
        self.assertRegex(r.stdout + r.stderr, r'\[dry-run\].*download \d+ messages: UIDs 1:\d+')
        assert_same(self, self.dv, user, self.root)

    def test_two_way_changes_predicted(self):
        user = 'd2'
        corpus.fill(self.dv, user, 80, seed=22, min_size=1500, max_size=8000)
        conf = make_config(self.dv, self.root, user)
        self.assertEqual(sync(conf).rc, 0)
        rng = random.Random(5)
        with self.dv.session(user) as s:
            uids = s.uids('INBOX')
            s.delete('INBOX', uids[:2])
            s.set_flags('INBOX', uids[2:5], ['\\Flagged', '\\Answered'])
            s.append('Sent', corpus.make_message(rng, 500, 2000, seed=5)[0], ['\\Seen'])
        files = {uid_of(p): p for p in local_files(self.root, 'INBOX')}
        os.unlink(files[uids[6]])
        set_local_flags(files[uids[7]], set(letters_of(files[uids[7]])) ^ {'S'})
        new_local_message(self.root, 'INBOX', rng, 1)
        new_local_message(self.root, 'Lists/dev', rng, 2, flags='S')
        r = self.check_dry_then_real(conf, user)
        out = r.stdout + r.stderr
        self.assertRegex(out, r'delete 2 remote messages|delete 1 remote messages')
        self.assertRegex(out, r'upload 1 messages: ')
        assert_same(self, self.dv, user, self.root)
        # and a dry run of a synced account predicts nothing
        r = sync(conf, '--dry-run')
        self.assertEqual(r.rc, 0)
        for k, v in summaries(r.stdout + r.stderr).items():
            self.assertEqual(v, (0,) * 8, k)


if __name__ == '__main__':
    util.main()
