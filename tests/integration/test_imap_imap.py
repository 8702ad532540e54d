#!/usr/bin/env python3
"""IMAP <-> IMAP: an account whose local repository is type = IMAP.

Two users of one private Dovecot (a second Dovecot with '.' as delimiter
for the delimiter test) are synced both ways, and compared message by
message: (Message-ID, body hash without our X-OIMAP-TUID marker, flags with
keywords), INTERNALDATE where a message was copied, and no message twice on
either side.  Scenarios: new mail, deletions and flag changes both ways,
folders created on either side (nested, different delimiters, a reference
and a nametrans), --dry-run, kill -9 during transfers, a readonly-source
migration of 2,000 messages, a source cut in the middle of a message, and
the memory a 50 MB message costs."""

import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from util import Dovecot, corpus, imaputil  # noqa: E402
from test_sync import TUID_RE, summaries  # noqa: E402

USERS = {'r%d' % i: 'pw-r%d' % i for i in range(1, 9)}
USERS.update({'l%d' % i: 'pw-l%d' % i for i in range(1, 9)})
FOLDERS = (('INBOX', 50, 'inbox'), ('Sent', 20, 'sent'), ('Lists/dev', 20, 'list'),
           ('Brouillons/Été', 10, 'drafts'))


def repo(dv, user, extra=None):
    r = {'type': 'IMAP', 'remotehost': dv.host, 'remoteport': dv.port, 'remoteuser': user,
         'remotepass': util.cfg_escape(dv.users[user]), 'ssl': 'no', 'starttls': 'no'}
    r.update(extra or {})
    return r


def config(rdv, ruser, ldv, luser, meta, remote=None, local=None, account=None):
    """An account syncing ruser on rdv (remote) with luser on ldv (local)."""
    def section(name, opts):
        return '\n'.join(['[%s]' % name] + ['%s = %s' % kv for kv in opts.items()
                                            if kv[1] is not None]) + '\n'
    a = {'localrepository': 'loc', 'remoterepository': 'rem'}
    a.update(account or {})
    return '\n'.join([
        section('general', {'accounts': 'ii', 'metadata': meta, 'ui': 'basic'}),
        section('Account ii', a),
        section('Repository rem', repo(rdv, ruser, remote)),
        section('Repository loc', repo(ldv, luser, local))])


def sync(conf, *args, timeout=120):
    return util.run_oimap(['-o', '-u', 'basic'] + list(args), conf, timeout=timeout)


def records(dv, user, folder):
    """fetch_all records; the body hash and Message-ID taken without our
    marker header (a copy carries one)."""
    with dv.session(user) as s:
        return records_of(s, folder)


def summary(dv, user, folder, dates=False):
    recs = records(dv, user, folder)
    out = corpus.summary(recs)
    if dates:
        by = {(r['message_id'] or '', r['body_sha256']): r['internaldate'] for r in recs}
        out = sorted(k + (by[k[:2]],) for k in out)
    return out


def records_of(sess, folder):
    """fetch_all records of an open session, hashed without our marker."""
    recs = sess.fetch_all(folder, with_body=True)
    for r in recs:
        body = TUID_RE.sub(b'', r.pop('body'), count=1)
        r['body_sha256'] = imaputil.body_sha256(body)
        r['message_id'] = imaputil.message_id(body)
    return recs


def key_of(rec):
    return (rec['message_id'] or '', rec['body_sha256'])


def all_flags(dv, user, folder='INBOX'):
    with dv.session(user) as s:
        return s.fetch_flags(folder).values()


def folders_of(dv, user):
    with dv.session(user) as s:
        return sorted(s.list_folders())


def state(dv, user):
    """Everything a dry run must leave alone: folders, UIDs, flags, UIDNEXT."""
    out = {}
    with dv.session(user) as s:
        for f in s.list_folders():
            st = s.select(f)
            out[f] = (st['uidnext'], sorted(s.fetch_flags(f).items()))
    return out


class ImapImapCase(util.DovecotTestCase):
    dovecot_args = {'users': USERS}

    def assert_same(self, rdv, ruser, ldv, luser, pairs, dates=False):
        """pairs: [(remote folder, local folder)]: same messages, once each."""
        for rf, lf in pairs:
            a, b = summary(rdv, ruser, rf, dates), summary(ldv, luser, lf, dates)
            d = corpus.diff(a, b, 'remote', 'local')
            self.assertEqual(d, '', 'folder %s / %s differs:\n%s' % (rf, lf, d[:3000]))
            for side, s in (('remote', a), ('local', b)):
                ids = [k[:2] for k in s]
                self.assertEqual(len(ids), len(set(ids)), 'duplicates on the %s in %s' % (
                    side, rf))

    def meta(self):
        return os.path.join(self.tmp, 'meta')


class TestTwoWay(ImapImapCase):

    def test_new_deleted_flags_folders_both_ways(self):
        dv, r, l = self.dv, 'r1', 'l1'
        corpus.fill(dv, r, 160, seed=11, folders=FOLDERS, min_size=1500, max_size=20000,
                    keywords=True)
        conf = config(dv, r, dv, l, self.meta())
        res = sync(conf)
        self.assertEqual(res.rc, 0, res.stdout + res.stderr)
        pairs = [(f, f) for f, _, _ in FOLDERS]
        self.assertEqual(folders_of(dv, l), folders_of(dv, r))
        self.assert_same(dv, r, dv, l, pairs, dates=True)

        rng = random.Random(5)
        with dv.session(r) as rs, dv.session(l) as ls:
            ru, lu = rs.uids('INBOX'), ls.uids('INBOX')
            rs.delete('INBOX', ru[:4])
            ls.delete('INBOX', lu[-4:])
            rs.set_flags('INBOX', ru[10:16], ['\\Answered'])
            ls.set_flags('INBOX', lu[20:26], ['\\Flagged', '$Forwarded'])
            ls.clear_flags('INBOX', lu[30:40], ['\\Seen'])
            rs.set_flags('INBOX', ru[40:44], ['$Work'])  # keywords, both ways
            ls.set_flags('INBOX', lu[44:46], ['$Later'])
            kw = [u for u, fl in ls.fetch_flags('INBOX').items() if '$Label1' in fl]
            if kw:
                ls.clear_flags('INBOX', kw[:1], ['$Label1'])
            for i in range(5):
                data, _, _ = corpus.make_message(rng, 900 + i, 3000, seed=12, folder='INBOX')
                rs.append('INBOX', data, ['\\Seen', '$Label%d' % i], 1500000000 + i)
                data, _, _ = corpus.make_message(rng, 950 + i, 3000, seed=13, folder='Sent')
                ls.append('Sent', data, ['\\Draft'], 1400000000 + i)
            ls.create_folder('Projects/oimap')  # local only: created on the remote
            data, _, _ = corpus.make_message(rng, 990, 2500, seed=14)
            ls.append('Projects/oimap', data, ['\\Flagged'], 1300000000)
        res = sync(conf)
        out = res.stdout + res.stderr
        self.assertEqual(res.rc, 0, out)
        self.assertIn('created folder Projects/oimap on the server', out)
        got = summaries(out)
        self.assertEqual(got[('INBOX', False)][:4], (5, 0, 4, 4), out)
        self.assertEqual(got[('Sent', False)][:2], (0, 5), out)
        pairs.append(('Projects/oimap', 'Projects/oimap'))
        self.assert_same(dv, r, dv, l, pairs, dates=True)
        with dv.session(r) as rs, dv.session(l) as ls:  # keywords removed, both ways
            ls.clear_flags('INBOX', [u for u, f in ls.fetch_flags('INBOX').items()
                                     if '$Work' in f or '$Label1' in f], ['$Work', '$Label1'])
            rs.clear_flags('INBOX', [u for u, f in rs.fetch_flags('INBOX').items()
                                     if '$Later' in f], ['$Later'])
        res = sync(conf)
        self.assertEqual(res.rc, 0, res.stdout + res.stderr)
        self.assert_same(dv, r, dv, l, pairs)
        flags = [f for fl in list(all_flags(dv, r)) + list(all_flags(dv, l)) for f in fl]
        self.assertFalse({'$Work', '$Later', '$Label1'} & set(flags), flags)
        # idempotent: nothing left to do, and nothing written
        res = sync(conf)
        self.assertEqual(res.rc, 0, res.stdout + res.stderr)
        self.assertEqual(summaries(res.stdout + res.stderr), {}, res.stdout + res.stderr)

    def test_deletions_not_propagated(self):
        """sync_deletes = no on both sides: each side's deletions stay on
        that side, remembered as half records (a local-only one is the
        status store's near-only key), and nothing is copied back."""
        dv, r, l = self.dv, 'r7', 'l7'
        corpus.fill(dv, r, 30, seed=71, folders=FOLDERS[:1], min_size=1500, max_size=4000)
        conf = config(dv, r, dv, l, self.meta(), remote={'sync_deletes': 'no'},
                      local={'sync_deletes': 'no'})
        self.assertEqual(sync(conf).rc, 0)
        with dv.session(r) as rs, dv.session(l) as ls:
            rs.delete('INBOX', rs.uids('INBOX')[:3])
            ls.delete('INBOX', ls.uids('INBOX')[-2:])
        for _ in range(2):
            res = sync(conf)
            self.assertEqual(res.rc, 0, res.stdout + res.stderr)
            self.assertEqual(summaries(res.stdout + res.stderr), {}, res.stdout + res.stderr)
            self.assertEqual((len(summary(dv, r, 'INBOX')), len(summary(dv, l, 'INBOX'))),
                             (27, 28))

    def test_dry_run_changes_nothing(self):
        dv, r, l = self.dv, 'r2', 'l2'
        corpus.fill(dv, r, 60, seed=21, folders=FOLDERS[:2], min_size=1500, max_size=8000)
        conf = config(dv, r, dv, l, self.meta())
        before = (state(dv, r), state(dv, l), os.path.exists(self.meta()))
        res = sync(conf, '--dry-run')
        self.assertEqual(res.rc, 0, res.stdout + res.stderr)
        self.assertIn('would create the local folder Sent', res.stdout + res.stderr)
        self.assertEqual((state(dv, r), state(dv, l), os.path.exists(self.meta())), before)
        self.assertEqual(sync(conf).rc, 0)
        with dv.session(r) as rs, dv.session(l) as ls:
            rs.delete('INBOX', rs.uids('INBOX')[:3])
            ls.set_flags('Sent', ls.uids('Sent')[:5], ['\\Flagged'])
            ls.append('INBOX', b'Message-ID: <dry@x>\r\nSubject: dry\r\n\r\nx\r\n', [], None)
        before = (state(dv, r), state(dv, l))
        res = sync(conf, '--dry-run')
        out = res.stdout + res.stderr
        self.assertEqual(res.rc, 0, out)
        got = summaries(out)
        self.assertEqual(got[('INBOX', True)][:4], (0, 1, 0, 3), out)
        self.assertEqual(got[('Sent', True)][4], 5, out)
        self.assertEqual((state(dv, r), state(dv, l)), before)
        res = sync(conf)
        self.assertEqual(res.rc, 0, res.stdout + res.stderr)
        self.assert_same(dv, r, dv, l, [('INBOX', 'INBOX'), ('Sent', 'Sent')])


class TestDelimiters(ImapImapCase):
    """Remote '/', local '.' (a second Dovecot, Maildir++), the local
    repository under a reference folder, and a nametrans on the remote."""

    def test_delimiter_reference_nametrans(self):
        dv, r = self.dv, 'r3'
        with Dovecot(users={'dot': 'pw-dot'}, delimiter='.') as ldv:
            corpus.fill(dv, r, 40, seed=31, folders=FOLDERS, min_size=1500, max_size=6000)
            with ldv.session('dot') as s:
                s.create_folder('Archive')
            conf = config(dv, r, ldv, 'dot', self.meta(),
                          remote={'nametrans': "lambda f: re.sub('^Sent$', 'Sent Items', f)"},
                          local={'reference': 'Archive',
                                 'nametrans': "lambda f: re.sub('^Sent Items$', 'Sent', f)"})
            res = sync(conf)
            self.assertEqual(res.rc, 0, res.stdout + res.stderr)
            lf = folders_of(ldv, 'dot')
            for want in ('Archive.INBOX', 'Archive.Lists.dev', 'Archive.Sent Items',
                         'Archive.Brouillons.Été'):
                self.assertIn(want, lf)
            self.assertNotIn('Sent', lf)  # only under the reference
            pairs = [('INBOX', 'Archive.INBOX'), ('Lists/dev', 'Archive.Lists.dev'),
                     ('Sent', 'Archive.Sent Items'),
                     ('Brouillons/Été', 'Archive.Brouillons.Été')]
            self.assert_same(dv, r, ldv, 'dot', pairs, dates=True)
            # a nested folder made on the local side appears on the remote
            with ldv.session('dot') as s:
                s.create_folder('Archive.Lists.fresh')
                s.append('Archive.Lists.fresh', b'Message-ID: <n@x>\r\nSubject: n\r\n\r\nn\r\n',
                         ['\\Seen'], 1234567890)
                s.create_folder('Elsewhere')  # outside the reference: not synced
            res = sync(conf)
            self.assertEqual(res.rc, 0, res.stdout + res.stderr)
            self.assertIn('Lists/fresh', folders_of(dv, r))
            self.assertNotIn('Elsewhere', folders_of(dv, r))
            self.assert_same(dv, r, ldv, 'dot', [('Lists/fresh', 'Archive.Lists.fresh')],
                             dates=True)
            res = sync(conf)
            self.assertEqual(summaries(res.stdout + res.stderr), {}, res.stdout + res.stderr)


class TestCrash(ImapImapCase):

    def kill_runs(self, conf, rng, n):
        kills = 0
        for _ in range(n):
            p = util.start_oimap(['-o', '-u', 'basic'], config_text=conf)
            time.sleep(rng.uniform(0.05, 0.6))
            if p.poll() is None:
                p.kill()
                kills += 1
            else:
                p.wait(5)
        return kills

    def test_kill9_during_transfers(self):
        """SIGKILL at random points of a two-way sync, rerun: every message
        exactly once on each side with the expected flags (no loss, no
        duplicate).  First the initial copies both ways, then new messages,
        deletions and flag changes on both sides."""
        dv, r, l = self.dv, 'r4', 'l4'
        seed = int(os.environ.get('OIMAP_CRASH_SEED', str(int(time.time()) % 100000)))
        kills = int(os.environ.get('OIMAP_CRASH_KILLS', '6'))
        print('seed %d, %d kills per round' % (seed, kills), file=sys.stderr)
        rng = random.Random(seed)
        names = ('INBOX', 'Lists/dev')
        folders = (('INBOX', 60, 'inbox'), ('Lists/dev', 40, 'list'))
        corpus.fill(dv, r, 400, seed=41, folders=folders, min_size=1500, max_size=60000)
        corpus.fill(dv, l, 200, seed=42, folders=folders, min_size=1500, max_size=60000)
        conf = config(dv, r, dv, l, self.meta())
        killed = self.kill_runs(conf, rng, kills)
        res = sync(conf)
        self.assertEqual(res.rc, 0, res.stdout + res.stderr)
        pairs = [(f, f) for f in names]
        self.assert_same(dv, r, dv, l, pairs, dates=True)
        total = sum(len(summary(dv, r, f)) for f in names)
        self.assertEqual(total, 600, 'seed %d: %d messages, want 600' % (seed, total))

        # Round 2: changes on both sides, on distinct messages, so the end
        # state is known: {(message_id, hash): flags}.
        expect = {f: {k[:2]: set(k[2]) for k in summary(dv, r, f)} for f in names}
        with dv.session(r) as rs, dv.session(l) as ls:
            for f in names:
                keys = sorted(expect[f])
                rng.shuffle(keys)
                for n, (sess, seed2) in enumerate(((rs, 43), (ls, 44))):
                    uid = {key_of(x): x['uid'] for x in records_of(sess, f)}
                    gone = keys[20 * n:20 * n + 20]
                    flag = keys[40 + 30 * n:70 + 30 * n]
                    sess.delete(f, [uid[k] for k in gone])
                    for k in gone:
                        expect[f].pop(k)
                    sess.set_flags(f, [uid[k] for k in flag], ['\\Flagged'])
                    for k in flag:
                        expect[f][k].add('\\Flagged')
                    for i in range(40):
                        data, mid, _ = corpus.make_message(rng, 5000 + i, rng.randint(1500, 9000),
                                                           seed=seed2 * 1000 + seed, folder=f)
                        sess.append(f, data, ['\\Seen'], 1600000000 + i)
                        expect[f][(mid, imaputil.body_sha256(data))] = {'\\Seen'}
        killed += self.kill_runs(conf, rng, kills)
        print('killed %d runs' % killed, file=sys.stderr)
        res = sync(conf)
        self.assertEqual(res.rc, 0, res.stdout + res.stderr)
        for f in names:
            want = sorted(k + (tuple(sorted(v)),) for k, v in expect[f].items())
            for side, user in (('remote', r), ('local', l)):
                d = corpus.diff(want, summary(dv, user, f), 'expected', side)
                self.assertEqual(d, '', 'seed %d folder %s %s:\n%s' % (seed, f, side, d[:3000]))
        self.assert_same(dv, r, dv, l, pairs)
        res = sync(conf)
        self.assertEqual(summaries(res.stdout + res.stderr), {}, res.stdout + res.stderr)


class TestSourceFailure(ImapImapCase):
    """The source connection dies in the middle of a message body: a message
    small enough to be APPENDed only once whole is not APPENDed at all; a
    big one, already streaming, takes the destination connection down with
    it (the server discards the partial APPEND).  A clean rerun copies
    everything exactly once.  (The cut is a FIN: the proxy's RST of 'drop'
    reaches the client only once the proxy's reading thread wakes, which
    needs the client to write; a silent peer is socktimeout's case.)"""

    def run_cut(self, r, l, big):
        from faultproxy import Fault, FaultProxy
        dv = self.dv
        with dv.session(r) as s:
            s.append('INBOX', b'Message-ID: <first@x>\r\nSubject: 1\r\n\r\nfirst\r\n', [], None)
            size = (3 << 20) if big else 200000
            body = b'line of the body of a message that gets cut\r\n' * (size // 46)
            s.append('INBOX', b'Message-ID: <cut@x>\r\nSubject: 2\r\n\r\n' + body, ['\\Seen'],
                     1500000000)
            s.append('INBOX', b'Message-ID: <last@x>\r\nSubject: 3\r\n\r\nlast\r\n', [], None)
        with FaultProxy(dv.host, dv.port,
                        plan=lambda i: Fault('truncate', literal=(1, 100000)) if i == 0 else None
                        ) as px:
            conf = config(dv, r, dv, l, self.meta(), remote={'remoteport': px.port})
            res = sync(conf)
            self.assertTrue(px.stats[0]['fired'], px.stats)
        # 1, or 0 when the folder's retry on a new connection (retrycount)
        # already finished it
        self.assertIn(res.rc, (0, 1), res.stdout + res.stderr)
        with dv.session(l) as s:
            ids = [x['message_id'] for x in records_of(s, 'INBOX')] if 'INBOX' in \
                s.list_folders() else []
        self.assertLessEqual(ids.count('<cut@x>'), res.rc == 0)  # never a partial one
        conf = config(dv, r, dv, l, self.meta())
        res = sync(conf)
        self.assertEqual(res.rc, 0, res.stdout + res.stderr)
        self.assert_same(dv, r, dv, l, [('INBOX', 'INBOX')], dates=True)
        self.assertEqual(len(summary(dv, l, 'INBOX')), 3)

    def test_cut_small_message(self):
        self.run_cut('r1', 'l1', big=False)

    def test_cut_big_message(self):
        self.run_cut('r2', 'l2', big=True)


class TestMigration(ImapImapCase):

    def test_readonly_source_2000(self):
        """readonly = yes on the remote: the whole account is copied to the
        local server, restartable (one kill -9 on the way), the source left
        untouched; compared message by message, INTERNALDATE included."""
        dv, r, l = self.dv, 'r5', 'l5'
        corpus.fill(dv, r, 2000, seed=51, folders=FOLDERS, min_size=1000, max_size=12000,
                    keywords=True)
        source = {f: summary(dv, r, f, dates=True) for f, _, _ in FOLDERS}
        source_state = state(dv, r)
        conf = config(dv, r, dv, l, self.meta(), remote={'readonly': 'yes', 'maxconnections': 2},
                      local={'maxconnections': 2})
        p = util.start_oimap(['-o', '-u', 'basic'], config_text=conf)
        time.sleep(1.0)
        if p.poll() is None:
            p.kill()
        t = time.monotonic()
        res = sync(conf)
        took = time.monotonic() - t
        self.assertEqual(res.rc, 0, res.stdout + res.stderr)
        print('migration of 2,000 messages (after a kill -9): %.1f s' % took, file=sys.stderr)
        for f, _, _ in FOLDERS:
            self.assertEqual(summary(dv, l, f, dates=True), source[f], f)
        self.assertEqual(state(dv, r), source_state, 'the readonly source was changed')
        res = sync(conf)
        self.assertEqual(summaries(res.stdout + res.stderr), {}, res.stdout + res.stderr)


def oimap_peak_rss(conf_text):
    """Run oimap -o under /usr/bin/time: (rc, output, peak RSS in KiB or None)."""
    conf = util.write_config(conf_text)
    rss_file = os.path.join(util.tmpdir('rss'), 'rss')
    argv = util._argv(['-o', '-u', 'basic', '-c', conf], None, None)
    if not os.environ.get('OIMAP_WRAPPER'):
        argv = ['/usr/bin/time', '-f', '%M', '-o', rss_file] + argv
    # ASan's quarantine keeps freed memory resident: without it the figure is
    # oimap's own.
    env = util.oimap_env({'ASAN_OPTIONS': 'quarantine_size_mb=0:detect_leaks=1'})
    r = util.run_cmd(argv, timeout=180, env=env)
    peak = None
    if os.path.exists(rss_file):
        with open(rss_file) as f:
            nums = [x for x in f.read().split() if x.isdigit()]
        peak = int(nums[-1]) if nums else None
    return r.rc, r.stdout + r.stderr, peak


class TestLargeMessage(ImapImapCase):

    def test_50mb_message_bounded_memory(self):
        dv, r, l = self.dv, 'r6', 'l6'
        with dv.session(r) as s:
            s.append('INBOX', b'Message-ID: <small@x>\r\nSubject: s\r\n\r\nsmall\r\n', [], None)
        conf = config(dv, r, dv, l, self.meta())
        rc, out, baseline = oimap_peak_rss(conf)
        self.assertEqual(rc, 0, out)
        size = 50 << 20
        line = b'0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n'
        body = line * (size // len(line))
        big = b'Message-ID: <big@x>\r\nSubject: big\r\n\r\n' + body
        with dv.session(r) as s:
            s.append('INBOX', big, ['\\Seen', '$Big'], 1111111111)
        t = time.monotonic()
        rc, out, peak = oimap_peak_rss(conf)
        self.assertEqual(rc, 0, out)
        print('50 MB message: %.1f s, peak RSS %s KiB (a run with one small message: %s KiB)' % (
            time.monotonic() - t, peak, baseline), file=sys.stderr)
        self.assert_same(dv, r, dv, l, [('INBOX', 'INBOX')], dates=True)
        if peak is not None and baseline is not None:
            self.assertLess(peak - baseline, 12 << 10, 'peak RSS grew by %d KiB' % (
                peak - baseline))


if __name__ == '__main__':
    util.main()
