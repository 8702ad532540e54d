#!/usr/bin/env python3
"""Reference suite: the same scenarios through Debian's offlineimap (8,
offlineimap3) and through oimap, each on its own Dovecot user with identical
starting content (same corpus seed, so the same messages, flags and UIDs),
each with its own Maildir and metadata directory, and one config text for
both (util.offlineimap_config: plain IMAP, default options).

Compared after every scenario:
- the two Maildirs, as {folder: (Message-ID, body sha256, ':2,' letters)}
  with folder names made logical (sep -> '/', modified UTF-7 decoded), and
  separately the raw folder layout on disk;
- the two server accounts, as {folder: (Message-ID, body sha256, flags)},
  with the tools' upload markers (X-OfflineIMAP, X-OIMAP-TUID) removed from
  the bodies before hashing, and the raw (modified UTF-7) folder names.
Bodies are hashed with CRLF turned into LF; line ends are compared apart.

Where oimap differs on purpose the test says so and checks the difference:
- mass-deletion guard (a folder emptied on one side is held back, test 3);
- a deletion on one side is not propagated when the other side's copy was
  newly \\Flagged since the last sync: it is copied back (test 2b).
Every assertion names the folder, the Message-ID and the flags that differ.
"""

import glob
import os
import random
import re
import shutil
import sqlite3
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from util import corpus, imaputil  # noqa: E402
import reference_compare as rc  # noqa: E402

USERS = {'%s%d' % (p, i): 'pw-%s%d' % (p, i) for p in ('o', 'm') for i in range(1, 12)}
MTIME = 1690000000  # mtime of new local messages (offlineimap's INTERNALDATE source)
TIMES = []


def imap_flags(letters):
    """Maildir letters -> the server flag text of Msg.flags."""
    return ' '.join(sorted(corpus.maildir_to_imap_flags(
        ''.join(c for c in letters if c.isupper()))))


def new_message(seed, index, folder='INBOX', size=2500, eol=b'\r\n'):
    """A new message, the same bytes for both tools. Local files get LF line
    ends (what mail readers write), server appends CRLF."""
    rng = random.Random(seed * 1000 + index)
    data, mid, _ = corpus.make_message(rng, index, size, seed=seed, folder=folder, eol=eol)
    return data, mid


def local_message(seed, index, folder='INBOX'):
    return new_message(seed, index, folder, eol=b'\n')[0]


def local_message_id(seed, index, folder='INBOX'):
    return new_message(seed, index, folder, eol=b'\n')[1]


def sqlite_caches_to_plain(meta):
    """Turn offlineimap's LocalStatus-sqlite/<folder> databases into the
    LocalStatus/<folder> files offlineimap writes with status_backend =
    plain (format 2: "uid|flags|mtime|labels"), and remove the databases."""
    sq = glob.glob(os.path.join(meta, 'Account-*', 'LocalStatus-sqlite'))
    assert sq, 'no SQLite caches under %s' % meta
    for d in sq:
        plain = os.path.join(os.path.dirname(d), 'LocalStatus')
        os.makedirs(plain, exist_ok=True)
        for name in os.listdir(d):
            db = sqlite3.connect(os.path.join(d, name))
            rows = db.execute('SELECT id, flags, mtime, labels FROM status').fetchall()
            db.close()
            with open(os.path.join(plain, name), 'w') as f:
                f.write('OFFLINEIMAP LocalStatus CACHE DATA - DO NOT MODIFY - FORMAT 2\n')
                for uid, flags, mtime, labels in rows:
                    f.write('%d|%s|%d|%s\n' % (uid, ''.join(sorted(flags or '')), mtime or 0,
                                               labels or ''))
        shutil.rmtree(d)


class ReferenceTest(util.DovecotTestCase):
    dovecot_args = {'users': USERS}

    @classmethod
    def setUpClass(cls):
        if not os.access(rc.OFFLINEIMAP, os.X_OK):
            raise unittest.SkipTest('%s not installed (apt-get install offlineimap3)'
                                    % rc.OFFLINEIMAP)
        super().setUpClass()

    def tearDown(self):
        for t in getattr(self, 'tools', ()):
            for tool, secs in t.runs:
                TIMES.append((self.id().rsplit('.', 1)[-1], tool, secs))
        super().tearDown()

    # -- set-up ---------------------------------------------------------------
    def pair(self, tag, n, seed, security='plain', account_opts=None):
        """(offlineimap Tool, oimap Tool) on users o<tag>/m<tag>, both filled
        with the same n corpus messages."""
        off = rc.Tool('offlineimap', self.dv, 'o' + tag, self.tmp, security=security,
                      account_opts=account_opts)
        oim = rc.Tool('oimap', self.dv, 'm' + tag, self.tmp, security=security,
                      account_opts=account_opts)
        self.tools = (off, oim)
        for t in self.tools:
            self.filled = corpus.fill(self.dv, t.user, n, seed=seed, min_size=1500,
                                      max_size=30000)
        return off, oim

    def sync_both(self, off, oim, *oimap_args, oimap_rc=0):
        off.sync()
        return oim.sync(*oimap_args, expect_rc=oimap_rc)

    # -- comparison -----------------------------------------------------------
    def compare(self, off, oim, label, ignore_local=(), ignore_server=(),
                file_aspects=('subdir', 'fmd5', 'eol')):
        """Both Maildirs and both servers, message by message; each aspect is a
        subTest so that one failure does not hide the others."""
        lo, lm = rc.maildir_state(off.root), rc.maildir_state(oim.root)
        (so, fo), (sm, fm) = rc.server_state(self.dv, off.user), rc.server_state(self.dv, oim.user)
        checks = [
            ('Maildir messages', rc.diff_states(lo, lm, 'offlineimap', 'oimap',
                                                label + ' Maildir', set(ignore_local))),
            ('server messages', rc.diff_states(so, sm, 'offlineimap', 'oimap',
                                               label + ' server', set(ignore_server))),
            ('duplicates', rc.duplicates(lo, 'offlineimap Maildir') +
             rc.duplicates(lm, 'oimap Maildir') + rc.duplicates(so, 'offlineimap server') +
             rc.duplicates(sm, 'oimap server')),
        ]
        # each tool's Maildir must equal its own server (flags mapped)
        for t, l, s in ((off, lo, so), (oim, lm, sm)):
            l2 = {f: [m._replace(flags=imap_flags(m.flags)) for m in ms] for f, ms in l.items()}
            checks.append(('%s Maildir = its server' % t.name,
                           rc.diff_states(l2, s, 'Maildir', 'server', label + ' ' + t.name,
                                          set(ignore_local) | set(ignore_server))))
        # file level, per message: new/ or cur/, FMD5, line ends (U= where the
        # scenario makes both servers assign the same UIDs)
        checks.append(('file names and line ends', rc.file_level_diffs(lo, lm, file_aspects)))
        layout_o, layout_m = rc.maildir_layout(off.root), rc.maildir_layout(oim.root)
        if layout_o != layout_m:
            checks.append(('Maildir layout', ['%s: local folder directories differ: offlineimap '
                                              '%r, oimap %r' % (label, layout_o, layout_m)]))
        raw_o, raw_m = [r for _, r in fo], [r for _, r in fm]
        if raw_o != raw_m:
            checks.append(('server folders', ['%s: server folders (raw mUTF-7) differ: '
                                              'offlineimap %r, oimap %r' % (label, raw_o, raw_m)]))
        for name, problems in checks:
            with self.subTest(check=name, at=label):
                self.assert_none(problems)
        return lo, lm, so, sm

    def assert_none(self, problems, what=''):
        """Fail with one line per problem (not a list diff)."""
        if problems:
            self.fail('%s\n%s%s' % (what, '\n'.join(problems[:40]),
                                    '\n(%d more)' % (len(problems) - 40)
                                    if len(problems) > 40 else ''))

    def assert_idempotent(self, t, label):
        """Another run of t's tool changes nothing on either side."""
        names, state = rc.tree_names(t.root), rc.maildir_state(t.root)
        srv = rc.server_state(self.dv, t.user)
        args = ('-d', 'imap') if t.name == 'oimap' else ()
        r = t.sync(*args)
        with self.subTest(check='idempotent', tool=t.name, at=label):
            self.assert_none(rc.diff_states(state, rc.maildir_state(t.root), 'before', 'after',
                                            '%s rerun' % t.name))
            self.assertEqual(sorted(names ^ rc.tree_names(t.root)), [],
                             '%s rerun renamed/created/removed Maildir files' % t.name)
            self.assertEqual(srv, rc.server_state(self.dv, t.user),
                             '%s rerun changed the server' % t.name)
            if t.name == 'oimap':
                out = r.stdout + r.stderr
                self.assertEqual(rc.IMAP_WRITES_RE.findall(out), [], out[-3000:])
                self.assertEqual(rc.IMAP_BODY_FETCH_RE.findall(out), [], out[-3000:])

    # -- scenarios ------------------------------------------------------------
    def test_1_initial_download(self):
        """~100 messages in 4 folders (nested, non-ASCII) downloaded."""
        off, oim = self.pair('1', 100, seed=21)
        self.sync_both(off, oim)
        lo, lm, _, _ = self.compare(off, oim, 'initial download',
                                    file_aspects=('subdir', 'uid', 'fmd5', 'eol'))
        # what was filled arrived (so that two empty Maildirs cannot pass)
        want = {f: sorted((r['message_id'], r['body_sha256'],
                           imaputil.imap_to_maildir_flags(r['flags'])) for r in recs)
                for f, recs in self.filled.items()}
        got = {f: sorted((m.mid, m.sha, m.flags) for m in ms) for f, ms in lo.items()}
        self.assertEqual(want, got, 'offlineimap did not download the corpus')
        self.assertEqual(sum(len(v) for v in want.values()), 100)
        for t in (off, oim):
            self.assert_idempotent(t, 'initial download')

    def test_2_two_way_changes(self):
        """New, deleted and re-flagged messages on both sides, conflicts
        (each side changed the same message differently), a new nested and a
        new non-ASCII folder on the server, a new nested folder locally."""
        off, oim = self.pair('2', 90, seed=22)
        self.sync_both(off, oim)
        self.compare(off, oim, 'before changes')
        inbox = self.dv.fetch_all(off.user, 'INBOX')
        seen = [r for r in inbox if '\\Seen' in r['flags'] and '\\Flagged' not in r['flags']]
        unseen = [r for r in inbox if '\\Seen' not in r['flags'] and
                  '\\Flagged' not in r['flags']]
        self.assertGreaterEqual(len(seen), 10)
        self.assertGreaterEqual(len(unseen), 7)
        S, U = [r['uid'] for r in seen], [r['uid'] for r in unseen]
        sent = [r['uid'] for r in self.dv.fetch_all(off.user, 'Sent')]
        mid_of = {r['uid']: r['message_id'] for r in inbox}

        for t in (off, oim):
            with self.dv.session(t.user) as s:
                self.assertEqual(s.uids('INBOX'), [r['uid'] for r in inbox],
                                 'the two users must start identical')
                s.delete('INBOX', [S[0], U[0]])             # deleted on the server
                s.set_flags('INBOX', [S[1], U[1]], ['\\Flagged'])
                s.clear_flags('INBOX', [S[2]], ['\\Seen'])
                s.set_flags('INBOX', [U[2]], ['\\Answered'])  # conflict A (local: +F)
                s.clear_flags('INBOX', [S[3]], ['\\Seen'])    # conflict B (local: +F)
                s.set_flags('INBOX', [S[4]], ['\\Flagged'])   # conflict C (local: +R)
                s.set_flags('INBOX', [U[3]], ['\\Seen'])      # same change on both sides
                s.delete('INBOX', [S[5]])                     # deleted on both sides
                s.delete('Sent', sent[:1])
                for i, fl in enumerate(([], ['\\Seen'], ['\\Flagged', '\\Seen'])):
                    s.append('Lists/dev', new_message(220, i, 'Lists/dev')[0], fl)
                s.append('INBOX', new_message(220, 3)[0], [])
                for i, folder in enumerate(('Archives/2023', 'Archives/2023', 'Archives/Année')):
                    s.create_folder(folder)
                    s.append(folder, new_message(220, 10 + i)[0], ['\\Seen'])
            root = t.root
            p = lambda uid: rc.find_local(root, mid_of[uid])  # noqa: E731
            os.unlink(p(S[6]))                                 # deleted locally
            os.unlink(p(U[4]))
            os.unlink(p(S[5]))
            rc.set_local_letters(p(U[5]), set(rc.letters_of(p(U[5]))) | {'F', 'S'})
            rc.set_local_letters(p(S[7]), set(rc.letters_of(p(S[7]))) - {'S'})
            rc.set_local_letters(p(U[2]), set(rc.letters_of(p(U[2]))) | {'F'})
            rc.set_local_letters(p(S[3]), set(rc.letters_of(p(S[3]))) | {'F'})
            rc.set_local_letters(p(S[4]), set(rc.letters_of(p(S[4]))) | {'R'})
            rc.set_local_letters(p(U[3]), set(rc.letters_of(p(U[3]))) | {'S'})
            rc.set_local_letters(p(S[8]), set(rc.letters_of(p(S[8]))) | {'T'})  # mutt's "d"
            for i, letters in enumerate((None, 'S', 'FS')):
                rc.write_local(root, 'INBOX', local_message(221, i), 'ref%d.local' % i,
                               letters, MTIME + i)
            drafts = [rel for rel in rc.maildir_layout(root)
                      if rc.logical_folder(rel) == 'Brouillons/Été']
            self.assertEqual(len(drafts), 1, rc.maildir_layout(root))
            rc.write_local(root, drafts[0], local_message(221, 5), 'ref5.local', 'DS',
                           MTIME + 5)
            # new local folders, top level and nested (not under a parent that is
            # only on the server: see test_4)
            for i, rel in ((6, 'Projets'), (7, 'Projets.2024')):
                rc.write_local(root, rel, local_message(221, i), 'ref%d.local' % i, 'S',
                               MTIME + i)

        self.sync_both(off, oim)
        lo, lm, so, sm = self.compare(off, oim, 'after two-way changes')
        # INTERNALDATE of the uploads (offlineimap: the file's mtime)
        diffs = []
        seen = 0
        for folder in ('INBOX', 'Brouillons/Été', 'Projets', 'Projets/2024'):
            a, b = rc.by_mid(so, folder), rc.by_mid(sm, folder)
            for i in (0, 1, 2, 5, 6, 7):
                mid = new_message(221, i)[1]
                seen += mid in a and mid in b
                if mid in a and mid in b and a[mid].extra['internaldate'] != \
                        b[mid].extra['internaldate']:
                    diffs.append('folder %r, uploaded %s: INTERNALDATE %s by offlineimap, %s by '
                                 'oimap (file mtime %d)' % (folder, mid,
                                                            a[mid].extra['internaldate'],
                                                            b[mid].extra['internaldate'],
                                                            MTIME + i))
        with self.subTest(check='INTERNALDATE of uploads'):
            self.assertEqual(seen, 6, 'uploads missing on a server')
            self.assert_none(diffs)
        # the outcome itself (both tools agree, per compare(); pin it down)
        fl = {m.mid: m.flags for m in so['INBOX']}
        orig = {r['uid']: set(r['flags']) for r in inbox}

        def exp(uid, add=(), remove=()):
            return ' '.join(sorted((orig[uid] | set(add)) - set(remove)))
        expect = {mid_of[U[2]]: exp(U[2], ['\\Answered', '\\Flagged']),
                  mid_of[S[3]]: exp(S[3], ['\\Flagged'], ['\\Seen']),
                  mid_of[S[4]]: exp(S[4], ['\\Answered', '\\Flagged']),
                  mid_of[U[3]]: exp(U[3], ['\\Seen']),
                  mid_of[U[5]]: exp(U[5], ['\\Flagged', '\\Seen']),
                  mid_of[S[2]]: exp(S[2], (), ['\\Seen']),
                  mid_of[S[7]]: exp(S[7], (), ['\\Seen']),
                  mid_of[S[8]]: exp(S[8], ['\\Deleted'])}
        for uid in (S[0], U[0], S[5], S[6], U[4]):
            expect[mid_of[uid]] = None
        got = {mid: fl.get(mid) for mid in expect}
        with self.subTest(check='expected outcome (offlineimap server)'):
            self.assertEqual(got, expect)
        # a second run changes nothing that makes them differ (T / \Deleted stays a
        # flag with both tools: neither expunges a message it did not delete itself)
        self.sync_both(off, oim)
        self.compare(off, oim, 'second sync after changes')
        for t in (off, oim):
            self.assert_idempotent(t, 'after two-way changes')

    def test_2b_flagged_copy_survives_deletion(self):
        """On purpose: a message deleted on one side whose other copy was newly
        \\Flagged since the last sync is copied back by oimap (the flag says
        the user still wants it); offlineimap deletes it."""
        off, oim = self.pair('3', 30, seed=26)
        self.sync_both(off, oim)
        inbox = self.dv.fetch_all(off.user, 'INBOX')
        plain = [r for r in inbox if '\\Flagged' not in r['flags']]
        x, y, z = plain[0], plain[1], plain[2]
        for t in (off, oim):
            with self.dv.session(t.user) as s:
                s.set_flags('INBOX', [x['uid']], ['\\Flagged'])  # flagged on the server...
                s.delete('INBOX', [y['uid'], z['uid']])          # ...deleted on the server
            os.unlink(rc.find_local(t.root, x['message_id']))    # ...deleted locally
            py = rc.find_local(t.root, y['message_id'])
            rc.set_local_letters(py, set(rc.letters_of(py)) | {'F'})  # flagged locally
        self.sync_both(off, oim)
        self.sync_both(off, oim)
        mx, my = x['message_id'], y['message_id']
        ignore = {('INBOX', mx), ('INBOX', my)}
        lo, lm, so, sm = self.compare(off, oim, 'flagged vs deleted', ignore, ignore)
        # offlineimap: both gone everywhere
        for state, where in ((lo, 'offlineimap Maildir'), (so, 'offlineimap server')):
            for mid in (mx, my):
                self.assertNotIn(mid, rc.by_mid(state, 'INBOX'), where)
        # oimap: both kept on both sides, with \Flagged
        for mid in (mx, my):
            self.assertIn('F', rc.by_mid(lm, 'INBOX').get(mid, rc.Msg(0, 0, '', 0)).flags,
                          'oimap Maildir should keep flagged %s' % mid)
            self.assertIn('\\Flagged', rc.by_mid(sm, 'INBOX').get(mid, rc.Msg(0, 0, '', 0))
                          .flags, 'oimap server should keep flagged %s' % mid)
        self.assertNotIn(z['message_id'], rc.by_mid(lm, 'INBOX'))

    def test_3_server_deletions(self):
        """Deletions on the server only; one folder emptied. On purpose:
        oimap's mass-deletion guard holds the emptied folder back (exit 1,
        says how to let it through); offlineimap empties the local folder.
        With deletion_guard = no the results are the same."""
        off, oim = self.pair('4', 60, seed=23)
        self.sync_both(off, oim)
        before = rc.maildir_state(oim.root)
        for t in (off, oim):
            with self.dv.session(t.user) as s:
                s.delete('INBOX', s.uids('INBOX')[2:6])
                s.delete('Sent', s.uids('Sent')[-1:])
                s.delete('Lists/dev', s.uids('Lists/dev'))
        off.sync()
        r = oim.sync(expect_rc=1)
        self.assertRegex(r.stdout + r.stderr, r'Lists/dev.*held back|held back.*Lists/dev',
                         r.stdout + r.stderr)
        self.assertIn('deletion_guard', r.stdout + r.stderr)
        held = {('Lists/dev', m.mid) for m in before['Lists/dev']}
        self.assertTrue(held)
        lo, lm, _, _ = self.compare(off, oim, 'server deletions (guard)', ignore_local=held)
        self.assertEqual(lo['Lists/dev'], [])
        self.assertEqual(sorted(lm['Lists/dev']), sorted(before['Lists/dev']),
                         'oimap must keep the held-back folder untouched')
        oim.sync('-k', 'Account_test:deletion_guard=no')
        self.compare(off, oim, 'server deletions (guard off)')
        for t in (off, oim):
            self.assert_idempotent(t, 'after server deletions')

    def test_4_local_new_folders(self):
        """Folders made in the Maildir are created on the server
        (createfolders): top level, nested under a new and under an existing
        parent, non-ASCII (named as offlineimap lays it out: modified
        UTF-7), and an empty one.

        Not here: a local folder nested under a parent that exists only on the
        server (a local 'Lists.ops' next to 'Lists.dev'): offlineimap 8 then
        CREATEs the parent 'Lists' on the server, fails the run with
        "getfolder() asked for a nonexisting folder 'Lists'", and about one
        run in four hangs for good after that error; no reference there."""
        off, oim = self.pair('5', 20, seed=24)
        self.sync_both(off, oim)
        for t in (off, oim):
            for i, (rel, letters) in enumerate((('Projets', 'S'), ('Projets', None),
                                                ('Projets.2024', 'FS'), ('Archives', ''),
                                                ('Archives.Ann&AOk-e', 'RS'),
                                                ('Re&AOc-us', 'S'))):
                rc.write_local(t.root, rel, local_message(240, i), 'ref%d.local' % i,
                               letters, MTIME + i)
            for sub in ('cur', 'new', 'tmp'):
                os.makedirs(os.path.join(t.root, 'Vide', sub))
        self.sync_both(off, oim)
        self.sync_both(off, oim)
        self.compare(off, oim, 'local new folders')
        for t in (off, oim):
            self.assert_idempotent(t, 'after local new folders')

    def switch_from_offlineimap(self, tag, seed, backend):
        """Migration (issue 7).  Two identical accounts are synced by
        offlineimap (with some history: an upload, flag changes, a deletion),
        then changed in the same way on both sides since that last sync:
        deleted locally (A), flagged on the server (B), changed on both sides
        (C: +R locally, +F on the server), deleted on the server (D), a new
        message on each side.  Then offlineimap syncs one account and oimap,
        with the same config file, takes the other over from offlineimap's
        metadata: the two results must be equal (oimap's first run is
        offlineimap's next run), with no message that offlineimap had synced
        downloaded or uploaded again, the Maildir's other files unchanged in
        name and content, and offlineimap's metadata byte for byte as it was.

        backend 'plain': an account last synced with status_backend = plain
        (offlineimap 6 and 7; offlineimap 8 refuses that option): the SQLite
        caches offlineimap 8 wrote are turned into LocalStatus files in its
        plain format 2 and removed."""
        off, oim = self.pair(tag, 100, seed=seed)
        for t in (off, oim):
            t.sync(tool='offlineimap')
        # some history, the same on both
        for t in (off, oim):
            rc.write_local(t.root, 'INBOX', local_message(250, 0), 'ref0.local', 'S', MTIME)
            with self.dv.session(t.user) as s:
                uids = s.uids('INBOX')
                s.set_flags('INBOX', uids[:2], ['\\Flagged'])
                s.delete('INBOX', uids[2:3])
            t.sync(tool='offlineimap')
            t.sync(tool='offlineimap')
        if backend == 'plain':
            sqlite_caches_to_plain(oim.meta)
        inbox = self.dv.fetch_all(oim.user, 'INBOX')
        seen = [r for r in inbox if r['flags'] == ['\\Seen']]
        self.assertGreaterEqual(len(seen), 5)
        A, B, C, D = seen[:4]
        for t in (off, oim):
            os.unlink(rc.find_local(t.root, A['message_id']))
            pc = rc.find_local(t.root, C['message_id'])
            rc.set_local_letters(pc, set(rc.letters_of(pc)) | {'R'})
            with self.dv.session(t.user) as s:
                s.set_flags('INBOX', [B['uid'], C['uid']], ['\\Flagged'])
                s.delete('INBOX', [D['uid']])
                s.append('Sent', new_message(250, 1)[0], ['\\Seen'])
            rc.write_local(t.root, 'Lists.dev', local_message(250, 2), 'ref2.local', 'S',
                           MTIME + 2)
        before = rc.file_contents(oim.root)
        meta = rc.file_contents(oim.meta, skip='oimap' + os.sep)
        new_sent = max(r['uid'] for r in self.dv.fetch_all(oim.user, 'Sent'))

        off.sync()
        r = oim.sync('-d', 'imap')
        out = r.stdout + r.stderr
        self.compare(off, oim, 'after the switch (%s caches)' % backend)
        problems = []
        fetches = [ln for ln in out.splitlines() if rc.IMAP_BODY_FETCH_RE.search(ln)]
        if len(fetches) != 1 or not re.search(r'FETCH %d \(' % new_sent, fetches[0]):
            problems.append('body FETCHes other than the new message (UID %d in Sent): %s'
                            % (new_sent, fetches[:5]))
        appends = [w for w in rc.IMAP_WRITES_RE.findall(out) if w == 'APPEND']
        if len(appends) != 1:
            problems.append('%d APPENDs, expected 1 (the new local message)' % len(appends))
        if out.count('taking over from offlineimap') != 4:
            problems.append('not every folder was taken over from offlineimap')
        # the Maildir: files as they were but for the changes (C and B renamed
        # to carry F, D deleted, the new local message given its UID, the new
        # server message added)
        after = rc.file_contents(oim.root)
        mid_of = {rel: imaputil.message_id(b) for rel, b in before.items()}
        allowed = {B['message_id'], C['message_id'], D['message_id'],
                   new_message(250, 1)[1], local_message_id(250, 2)}
        for rel in sorted(set(before) ^ set(after)):
            mid = mid_of.get(rel) or imaputil.message_id(after[rel])
            if mid not in allowed:
                problems.append('Maildir file %s %s' % (rel, 'gone' if rel in before
                                                        else 'new'))
        problems += ['Maildir file %s changed' % rel for rel in before
                     if rel in after and after[rel] != before[rel]]
        if rc.file_contents(oim.meta, skip='oimap' + os.sep) != meta:
            problems.append("offlineimap's metadata changed")
        if problems:
            problems.append('--- oimap output without the protocol lines ---\n' + '\n'.join(
                ln for ln in out.splitlines() if not re.match(r'imap: \S+ [SC]: ', ln))[-3000:])
        self.assert_none(problems, 'migration from offlineimap (%s caches):' % backend)
        self.assert_idempotent(oim, 'after the switch')
        # and from now on oimap syncs the account
        with self.dv.session(oim.user) as s:
            s.append('Sent', new_message(250, 3)[0], ['\\Seen'])
        oim.sync()
        lstate = {f: [m._replace(flags=imap_flags(m.flags)) for m in ms]
                  for f, ms in rc.maildir_state(oim.root).items()}
        self.assert_none(rc.diff_states(lstate, rc.server_state(self.dv, oim.user)[0],
                                        'Maildir', 'server', 'after takeover'))

    def test_5_switch_from_offlineimap(self):
        """Migration from offlineimap 8's SQLite status caches."""
        self.switch_from_offlineimap('6', 25, 'sqlite')

    def test_5b_switch_from_offlineimap_plain(self):
        """Migration from plain-text status caches (status_backend = plain)."""
        self.switch_from_offlineimap('10', 30, 'plain')

    def test_7_starttls(self):
        """The same config over STARTTLS with sslcacertfile (as most real
        configs are): both tools verify Dovecot's certificate and sync."""
        off, oim = self.pair('8', 10, seed=28, security='starttls')
        self.sync_both(off, oim)
        self.compare(off, oim, 'over STARTTLS')
        self.assertEqual(sum(len(v) for v in rc.maildir_state(oim.root).values()), 10)

    def test_8_utf8foldernames(self):
        """utf8foldernames = yes ([Account], offlineimap 8): local folders
        get UTF-8 names; a new local UTF-8 folder is created on the server
        under its modified UTF-7 name."""
        off, oim = self.pair('9', 20, seed=29, account_opts={'utf8foldernames': 'yes'})
        self.sync_both(off, oim)
        self.assertIn('Brouillons.Été', rc.maildir_layout(off.root))
        for t in (off, oim):
            rc.write_local(t.root, 'Reçus', local_message(290, 0), 'ref0.local', 'S', MTIME)
            rc.write_local(t.root, 'Reçus.Année', local_message(290, 1), 'ref1.local', '',
                           MTIME)
        self.sync_both(off, oim)
        self.sync_both(off, oim)
        self.compare(off, oim, 'utf8foldernames')

    # -- the comparison itself ------------------------------------------------
    def test_6_comparison_catches_differences(self):
        """The comparison fails on a missing message, changed flags, a changed
        body and an extra folder (so a green suite means something)."""
        off, oim = self.pair('7', 12, seed=27)
        for t in (off, oim):
            t.sync()
        lo = rc.maildir_state(off.root)

        def mutated(fn):
            st = {f: list(ms) for f, ms in lo.items()}
            fn(st)
            return rc.diff_states(lo, st, 'a', 'b', 'x')

        self.assertEqual(mutated(lambda st: None), [])
        gone = mutated(lambda st: st['INBOX'].pop(0))
        self.assertTrue(gone and lo['INBOX'][0].mid in gone[0], gone)
        flags = mutated(lambda st: st['INBOX'].__setitem__(0, st['INBOX'][0]._replace(
            flags='F')))
        self.assertTrue(flags and 'flags' in flags[0], flags)
        body = mutated(lambda st: st['Sent'].__setitem__(0, st['Sent'][0]._replace(sha='0')))
        self.assertEqual(len(body), 2, body)
        extra = mutated(lambda st: st.__setitem__('New', []))
        self.assertTrue(extra and "'New' only in b" in extra[0], extra)
        # and on disk: a message removed from one Maildir is reported by compare()
        os.unlink(rc.find_local(oim.root, lo['Sent'][0].mid))
        problems = rc.diff_states(rc.maildir_state(off.root), rc.maildir_state(oim.root),
                                  'offlineimap', 'oimap', 'Maildir')
        self.assertEqual(len(problems), 1, problems)
        self.assertIn(lo['Sent'][0].mid, problems[0])
        self.assertIn("folder 'Sent'", problems[0])


def _report():
    if TIMES:
        tot = {}
        for _, tool, secs in TIMES:
            tot[tool] = tot.get(tool, 0) + secs
        print('\nrun times: ' + ', '.join('%s %.1f s in %d runs' % (
            k, v, sum(1 for _, t, _ in TIMES if t == k)) for k, v in sorted(tot.items())),
            file=sys.stderr)


if __name__ == '__main__':
    import atexit
    atexit.register(_report)
    t0 = time.monotonic()
    atexit.register(lambda: print('suite: %.1f s' % (time.monotonic() - t0), file=sys.stderr))
    util.main()
