#!/usr/bin/env python3
"""The crash promise: SIGKILL oimap at many points of a two-way sync of
about 2,000 messages (new on both sides, deletions on both sides, flag
changes on both sides), rerun each time, then to completion: both sides
hold exactly the expected messages (Message-ID + body hash), each once,
with the expected flags; a final run changes nothing.

OIMAP_CRASH_KILLS (default 15) and OIMAP_CRASH_SEED choose the kill
schedule; the seed is printed so a failure can be replayed."""

import os
import random
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from util import corpus  # noqa: E402
from test_sync import (assert_same, letters_of, local_files, local_summary,  # noqa: E402
                       make_config, new_local_message, server_summary, set_local_flags,
                       summaries, sync, uid_of)

FOLDERS = ('INBOX', 'Lists/dev')
KILLS = int(os.environ.get('OIMAP_CRASH_KILLS', '15'))
SEED = int(os.environ.get('OIMAP_CRASH_SEED', str(int(time.time()) % 100000)))


class TestSyncCrash(util.DovecotTestCase):
    dovecot_args = {'users': {'k1': 'pw-k1'}}

    def test_kill9_anywhere(self):
        print('seed %d, %d kills' % (SEED, KILLS), file=sys.stderr)
        rng = random.Random(SEED)
        user = 'k1'
        root = os.path.join(self.tmp, 'mail')
        folders = (('INBOX', 60, 'inbox'), ('Lists/dev', 40, 'list'))
        corpus.fill(self.dv, user, 1200, seed=31, folders=folders, min_size=1500,
                    max_size=12000)
        conf = make_config(self.dv, root, user)
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)

        # The changes, remembered as the expected end state per folder:
        # {(message_id, body_sha256): set of IMAP flags}.
        expect = {}
        for f in FOLDERS:
            expect[f] = {k[:2]: set(k[2]) for k in local_summary(root, f)}
        flagmap = {'F': '\\Flagged', 'S': '\\Seen', 'R': '\\Answered', 'D': '\\Draft'}
        with self.dv.session(user) as s:
            for f in FOLDERS:
                recs = {k['uid']: k for k in s.fetch_all(f)}
                uids = sorted(recs)
                rng.shuffle(uids)
                dele, flag, rest = uids[:50], uids[50:150], uids[150:]
                s.delete(f, dele)
                for u in dele:
                    expect[f].pop((recs[u]['message_id'], recs[u]['body_sha256']))
                s.set_flags(f, flag, ['\\Flagged'])
                for u in flag:
                    expect[f][(recs[u]['message_id'], recs[u]['body_sha256'])].add('\\Flagged')
                for i in range(250):
                    data, mid, _ = corpus.make_message(rng, 5000 + i, rng.randint(1500, 9000),
                                                       seed=SEED, folder=f)
                    fl = ['\\Seen'] if i % 3 else []
                    s.append(f, data, fl)
                    expect[f][(mid, corpus.body_sha256(data))] = set(fl)
                # local changes on other messages than the server's
                files = {uid_of(p): p for p in local_files(root, f)}
                ldel = rest[:50]
                lflag = rest[50:150]
                for u in ldel:
                    os.unlink(files[u])
                    expect[f].pop((recs[u]['message_id'], recs[u]['body_sha256']))
                for u in lflag:
                    key = (recs[u]['message_id'], recs[u]['body_sha256'])
                    letters = set(letters_of(files[u])) ^ {'S'}
                    set_local_flags(files[u], letters | {'R'})
                    expect[f][key] = {flagmap[c] for c in letters | {'R'}}
                for i in range(250):
                    key = new_local_message(root, f, rng, 7000 + i, seed=SEED + 1,
                                            flags='S' if i % 2 else '')
                    expect[f][key] = {'\\Seen'} if i % 2 else set()

        killed = 0
        for k in range(KILLS):
            p = util.start_oimap(['-o', '-u', 'basic'], config_text=conf)
            time.sleep(rng.uniform(0.02, 0.6))
            if p.poll() is None:
                p.kill()
                killed += 1
            else:
                p.wait(5)
        print('killed %d of %d runs' % (killed, KILLS), file=sys.stderr)
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        for f in FOLDERS:
            want = sorted(k + (tuple(sorted(v)),) for k, v in expect[f].items())
            for side, got in (('server', server_summary(self.dv, user, f)),
                              ('local', local_summary(root, f))):
                d = corpus.diff(want, got, 'expected', side)
                self.assertEqual(d, '', 'seed %d folder %s %s:\n%s' % (SEED, f, side, d[:4000]))
        assert_same(self, self.dv, user, root, folders=FOLDERS)
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        self.assertEqual(summaries(r.stdout + r.stderr), {}, r.stdout + r.stderr)


if __name__ == '__main__':
    util.main()
