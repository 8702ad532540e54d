#!/usr/bin/env python3
"""Fault campaign: two-way syncs through tests/harness/faultproxy.py, which
drops, truncates, stalls (past socktimeout) or injects '* BYE' (also in the
middle of a literal) at random byte offsets, in either direction.

Two Dovecot users start identical: 'f' (faulted) and 'r' (reference).  Each
round applies the same changes to both (new messages, deletions and flag
changes on the server and in the Maildir, on disjoint messages), syncs 'r'
through a pass-through proxy (which measures the traffic, to pick offsets
inside it), syncs 'f' through the faulting proxy, then reruns 'f' without
the proxy.  After every round both sides of 'f' must equal both sides of 'r'
by (Message-ID, body hash, flags), with nothing twice; so must they right
after a faulted sync that exited 0 (it recovered: it may not have skipped
anything); a final rerun of each changes nothing (status store consistent).

OIMAP_FAULT_RUNS (default 20) rounds, OIMAP_FAULT_SEED picks them (printed,
so a failure can be replayed); OIMAP_FAULT_FIRED (default 0) keeps going
past the rounds until that many faults have fired.  Folders stay near 100
messages however long it runs.  The long campaign (at least 1,000 faulted
connections, each followed by a clean rerun), about an hour on 2 cores:
    OIMAP_BIN=build/oimap nice -n 10 python3 tests/integration/test_faults.py \
        --rounds 1000 --fired 1000 TestFaults.test_fault_campaign
(--rounds, --fired and --seed set the variables above.)
"""

import os
import random
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from util import corpus, imaputil  # noqa: E402
from faultproxy import Fault, FaultProxy  # noqa: E402
from test_sync import (local_path, local_summary, make_config, server_summary,  # noqa: E402
                       summaries, sync)


def _options_to_env(argv):
    """--rounds N, --fired N, --seed N (before unittest's own arguments)."""
    names = {'--rounds': 'OIMAP_FAULT_RUNS', '--fired': 'OIMAP_FAULT_FIRED',
             '--seed': 'OIMAP_FAULT_SEED'}
    rest = [argv[0]]
    args = iter(argv[1:])
    for a in args:
        key, eq, val = a.partition('=')
        if key in names:
            os.environ[names[key]] = str(int(val if eq else next(args)))
        else:
            rest.append(a)
    return rest


if __name__ == '__main__':
    sys.argv = _options_to_env(sys.argv)
RUNS = int(os.environ.get('OIMAP_FAULT_RUNS', '20'))
FIRED = int(os.environ.get('OIMAP_FAULT_FIRED', '0'))
SEED = int(os.environ.get('OIMAP_FAULT_SEED', str(int(time.time()) % 100000)))
FOLDERS = (('INBOX', 30, 'inbox'), ('Lists/dev', 30, 'list'))
NAMES = [f for f, _, _ in FOLDERS]
SOCKTIMEOUT = 2
SANITIZER_MARKS = ('AddressSanitizer', 'runtime error:', 'LeakSanitizer', 'Invalid read',
                   'Invalid write')


def maildir_files(root, folder):
    d = local_path(root, folder)
    out = []
    for sub in ('cur', 'new'):
        p = os.path.join(d, sub)
        for n in sorted(os.listdir(p)):
            out.append(os.path.join(p, n))
    return out


def by_mid(paths):
    out = {}
    for p in paths:
        with open(p, 'rb') as f:
            out[imaputil.message_id(f.read())] = p
    return out


def set_letters(path, letters):
    d, name = os.path.split(path)
    base = name.split(':2,')[0]
    new = os.path.join(os.path.dirname(d), 'cur', base + ':2,' + ''.join(sorted(letters)))
    os.rename(path, new)


class Side:
    """One user and its Maildir."""

    def __init__(self, tc, user, root):
        self.tc, self.user, self.root = tc, user, root

    def conf(self, port=None, maxconn=1):
        remote = {'maxconnections': maxconn}
        if port is not None:
            remote['remoteport'] = port
        return make_config(self.tc.dv, self.root, self.user, remote=remote,
                           general={'socktimeout': SOCKTIMEOUT})

    def state(self):
        return {f: (server_summary(self.tc.dv, self.user, f), local_summary(self.root, f))
                for f in NAMES}


class TestFaults(util.DovecotTestCase):
    dovecot_args = {'users': {'f': 'pw-f', 'r': 'pw-r', 'p': 'pw-p'}}

    def check_run(self, r, what):
        out = r.stdout + r.stderr
        self.assertIn(r.rc, (0, 1), '%s: exit %d (a signal)\n%s' % (what, r.rc, out[-3000:]))
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, out, '%s\n%s' % (what, out[-6000:]))

    def mutate(self, rng, sides, round_no):
        """The same random changes on every side (chosen by Message-ID)."""
        ref = sides[-1]
        with self.dv.session(ref.user) as s:
            recs = {f: s.fetch_all(f) for f in NAMES}
        plan = {}
        for f in NAMES:
            mids = sorted(r['message_id'] for r in recs[f])
            rng.shuffle(mids)
            flags = {r['message_id']: set(r['flags']) for r in recs[f]}
            nd = 3 if len(mids) > 100 else 2  # 3 new each side: a long run stays near 100
            srv_del, srv_flag = mids[:nd], mids[nd:nd + 3]
            loc_del, loc_flag = mids[nd + 3:2 * nd + 3], mids[2 * nd + 3:2 * nd + 6]
            srv_flag_ops = [(m, '\\Flagged' if '\\Flagged' not in flags[m] else None)
                            for m in srv_flag]
            new_srv = [corpus.make_message(rng, 10000 * round_no + i, rng.randint(1500, 8000),
                                           seed=SEED, folder=f)[0] for i in range(3)]
            new_loc = [corpus.make_message(rng, 10000 * round_no + 500 + i,
                                           rng.randint(1500, 8000), seed=SEED + 1, folder=f,
                                           eol=b'\n')[0] for i in range(3)]
            loc_letters = {m: rng.choice(['S', 'FS', 'RS', '', 'F']) for m in loc_flag}
            plan[f] = (srv_del, srv_flag_ops, new_srv, loc_del, loc_letters, new_loc)
        for side in sides:
            with self.dv.session(side.user) as s:
                for f in NAMES:
                    srv_del, srv_flag_ops, new_srv, _, _, _ = plan[f]
                    uid_of = {r['message_id']: r['uid'] for r in s.fetch_all(f)}
                    s.delete(f, [uid_of[m] for m in srv_del])
                    for m, add in srv_flag_ops:
                        if add:
                            s.set_flags(f, [uid_of[m]], [add])
                        else:
                            s.clear_flags(f, [uid_of[m]], ['\\Flagged'])
                    for i, data in enumerate(new_srv):
                        s.append(f, data, ['\\Seen'] if i % 2 else [])
            for f in NAMES:
                _, _, _, loc_del, loc_letters, new_loc = plan[f]
                files = by_mid(maildir_files(side.root, f))
                for m in loc_del:
                    os.unlink(files[m])
                for m, letters in loc_letters.items():
                    set_letters(files[m], letters)
                for i, data in enumerate(new_loc):
                    name = 'r%d_%d.%d.faulttest' % (round_no, i, os.getpid())
                    sub = 'cur' if i % 2 else 'new'
                    if sub == 'cur':
                        name += ':2,S'
                    with open(os.path.join(local_path(side.root, f), sub, name), 'wb') as fp:
                        fp.write(data)

    def assert_same(self, fs, rs, what):
        """Both sides of fs hold what both sides of rs hold."""
        got, want = fs.state(), rs.state()
        for f in NAMES:
            for i, side in ((0, 'server'), (1, 'local')):
                d = corpus.diff(want[f][i], got[f][i], 'reference', 'faulted')
                self.assertEqual(d, '', '%s, folder %s %s:\n%s' % (what, f, side, d[:3000]))

    def pick_fault(self, rng, stat):
        kind = rng.choice(['drop', 'drop', 'truncate', 'truncate', 'bye', 'bye-literal',
                           'bye-literal', 'stall'])
        if kind == 'bye-literal':
            n = max(1, stat.get('literals', 0))
            return Fault('bye', literal=(rng.randrange(n), rng.randint(0, 1500)))
        direction = 'c2s' if rng.random() < 0.25 else 's2c'
        total = max(1, stat[direction])
        return Fault(kind, offset=rng.randrange(total), direction=direction)

    def test_reset_during_upload(self):
        """The server resets the connection while a 2 MB APPEND is streaming:
        a clean error (exit 1), not death by SIGPIPE; the rerun uploads the
        message exactly once.  (Found by the campaign: exit -13.)"""
        root = os.path.join(self.tmp, 'mail-p')
        side = Side(self, 'p', root)
        r = sync(side.conf())
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        rng = random.Random(3)
        body = corpus.make_message(rng, 1, 8000, eol=b'\n')[0]
        body = body + b'\n'.join(b'filler line %07d ' % i + b'x' * 60 for i in range(28000))
        mid = imaputil.message_id(body)
        with open(os.path.join(local_path(root, 'INBOX'), 'new', 'big.1.test'), 'wb') as f:
            f.write(body)
        for kind, offset in (('truncate', 150000), ('drop', 1000000), ('truncate', 1800000)):
            with FaultProxy(self.dv.host, self.dv.port,
                            plan=lambda i: Fault(kind, offset, direction='c2s')) as px:
                t = time.monotonic()
                r = sync(side.conf(px.port))
                print('%s at %d: %.1f s' % (kind, offset, time.monotonic() - t), file=sys.stderr)
            self.assertTrue(px.stats[0]['fired'], px.stats)
            self.check_run(r, 'reset during APPEND at %d' % offset)
            self.assertEqual(r.rc, 1, r.stdout + r.stderr)
        r = sync(side.conf())
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        with self.dv.session('p') as s:
            mids = [x['message_id'] for x in s.fetch_all('INBOX')]
        self.assertEqual(mids.count(mid), 1, mids)

    def test_fault_campaign(self):
        print('seed %d, %d runs, until %d faults fired' % (SEED, RUNS, FIRED), file=sys.stderr)
        rng = random.Random(SEED)
        fs = Side(self, 'f', os.path.join(self.tmp, 'mail-f'))
        rs = Side(self, 'r', os.path.join(self.tmp, 'mail-r'))
        for side in (fs, rs):
            corpus.fill(self.dv, side.user, 60, seed=41, folders=FOLDERS, min_size=1500,
                        max_size=8000)
            r = sync(side.conf())
            self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        self.assertEqual(fs.state(), rs.state())

        fired = faulted_rc = 0
        kinds = {}
        t0 = time.monotonic()
        k = -1
        while k + 1 < RUNS or (fired < FIRED and k + 1 < 10 * FIRED):
            k += 1
            if k and k % 100 == 0:
                print('round %d, %.0f s: %d faults fired (%s), %d faulted syncs failed' % (
                    k, time.monotonic() - t0, fired, kinds, faulted_rc), file=sys.stderr)
            self.mutate(rng, (fs, rs), k + 1)
            # the reference: fault-free, through a counting proxy
            with FaultProxy(self.dv.host, self.dv.port, plan=lambda i: Fault('drop', 1 << 60),
                            ) as px:
                r = sync(rs.conf(px.port))
                self.assertEqual(r.rc, 0, r.stdout + r.stderr)
                # literal positions are only tracked for literal faults: count here
                stat = dict(px.stats[0])
            stat['literals'] = sum(summaries(r.stdout + r.stderr).get((f, False), (0,))[0]
                                   for f in NAMES)
            maxconn = rng.choice([1, 1, 2])
            faults = [self.pick_fault(rng, stat) for _ in range(maxconn)]
            with FaultProxy(self.dv.host, self.dv.port,
                            plan=lambda i: faults[i] if i < len(faults) else None) as px:
                r = sync(fs.conf(px.port, maxconn), timeout=120)
                self.check_run(r, 'round %d %s' % (k, faults))
            n_fired = sum(1 for s in px.stats if s['fired'])
            fired += n_fired
            faulted_rc += r.rc != 0
            if r.rc == 0:  # it says it finished despite the fault: it must have
                self.assert_same(fs, rs, 'seed %d round %d %s, exit 0 before the rerun' % (
                    SEED, k, faults))
            for s in px.stats:
                if s['fired']:  # 'Fault(bye s2c literal 3 +20)' -> 'bye literal'
                    what = s['fault'][len('Fault('):].split()
                    label = what[0] + (' literal' if what[2] == 'literal' else '')
                    kinds[label] = kinds.get(label, 0) + 1
            r2 = sync(fs.conf())
            self.check_run(r2, 'round %d clean rerun' % k)
            self.assertEqual(r2.rc, 0, 'seed %d round %d after %s:\n%s' % (
                SEED, k, faults, (r.stdout + r.stderr)[-3000:] + '\n---rerun---\n' +
                (r2.stdout + r2.stderr)[-3000:]))
            self.assert_same(fs, rs, 'seed %d round %d %s' % (SEED, k, faults))
        for side in (fs, rs):
            r = sync(side.conf())
            self.assertEqual(r.rc, 0, r.stdout + r.stderr)
            self.assertEqual(summaries(r.stdout + r.stderr), {}, r.stdout + r.stderr)
        print('%d rounds in %.1f s: %d faults fired (%s), %d faulted syncs failed' % (
            k + 1, time.monotonic() - t0, fired, kinds, faulted_rc), file=sys.stderr)
        self.assertGreaterEqual(fired, RUNS // 2, 'most faults should fire')


if __name__ == '__main__':
    util.main()
