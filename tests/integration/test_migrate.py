#!/usr/bin/env python3
"""Taking over an account that offlineimap synced (issue 7), without
offlineimap itself: the state offlineimap leaves after a sync is written
here as offlineimap writes it (its Maildir names with U= and FMD5=, its
status caches in plain text, both formats, or SQLite, and its FolderValidity
files; formats in include/migrate.h), then changes are made on both sides,
then oimap runs with the same config.  What must hold on that first run:

- no message that offlineimap had synced is downloaded or uploaded again
  (counted in oimap's `-d imap` protocol log: BODY[ / BODY.PEEK[ fetches and
  APPENDs), only the message new on each side travels;
- a message deleted locally since offlineimap's last sync is deleted on the
  server (not downloaded again), one deleted on the server is deleted
  locally, flags changed on either or both sides are merged;
- the Maildir's files are unchanged in name and content except for what
  those changes require, and offlineimap's metadata files are byte for
  byte as they were.

The reference suite (test_reference.py) runs the same with Debian's
offlineimap producing the state.
"""

import fcntl
import hashlib
import os
import random
import re
import sqlite3
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from util import corpus, imaputil  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

FOLDERS = ('INBOX', 'Sent', 'Lists/dev', 'Brouillons/Été')
MAGIC = 'OFFLINEIMAP LocalStatus CACHE DATA - DO NOT MODIFY - FORMAT %d\n'
BODY_FETCH_RE = re.compile(r'C: \S+ (?:UID )?FETCH (\S+) .*BODY(?:\.PEEK)?\[')
APPEND_RE = re.compile(r'C: \S+ APPEND ')
WRITES_RE = re.compile(r'C: \S+ (?:UID )?(APPEND|STORE|EXPUNGE|COPY|MOVE|CREATE|DELETE)\b')
USERS = {'u%d' % i: 'pw-u%d' % i for i in range(1, 12)}


def have_sqlite():
    """Whether the oimap under test reads SQLite caches (meson option sqlite)."""
    bc = os.path.join(os.environ.get('OIMAP_BUILDDIR', ''), 'build_config.h')
    try:
        with open(bc) as f:
            return 'OIMAP_HAVE_SQLITE 1' in f.read()
    except OSError:
        return True


def local_name(folder):
    """offlineimap's local folder (and status cache) name: modified UTF-7,
    sep '.'."""
    return util.mutf7_encode(folder).replace('/', '.')


def tree(root):
    """{relative path: bytes} of every file under root."""
    out = {}
    for d, _, files in os.walk(root):
        for n in files:
            p = os.path.join(d, n)
            with open(p, 'rb') as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


def base_of(rel):
    """A Maildir file's path without its flags (what a flag change keeps)."""
    folder, sub, name = rel.rsplit(os.sep, 2)
    return folder, re.split(r'[:!]2,', name)[0]


class Account:
    """One Dovecot user, its Maildir and metadata as offlineimap left them."""

    def __init__(self, tc, user, backend, n=100, seed=71, port=None):
        self.tc, self.dv, self.user, self.backend = tc, tc.dv, user, backend
        d = os.path.join(tc.tmp, user)
        self.root, self.meta = os.path.join(d, 'mail'), os.path.join(d, 'meta')
        os.makedirs(self.root)
        corpus.fill(self.dv, user, n, seed=seed, min_size=1500, max_size=30000)
        self.conf = util.offlineimap_config(self.dv, self.root, user=user, security='plain',
                                            metadata=self.meta,
                                            remote={'remoteport': port} if port else None)
        self.recs = {}
        for folder in FOLDERS:
            self.write_folder(folder)

    def write_folder(self, folder):
        with self.dv.session(self.user) as s:
            recs = s.fetch_all(folder, with_body=True)
            uv = s.status(folder)['uidvalidity']
        self.recs[folder] = recs
        name = local_name(folder)
        fmd5 = hashlib.md5(name.encode()).hexdigest()
        for sub in ('cur', 'new', 'tmp'):
            os.makedirs(os.path.join(self.root, name, sub), exist_ok=True)
        lines = []
        for i, r in enumerate(recs):
            letters = imaputil.imap_to_maildir_flags(r['flags'])
            r['letters'] = letters
            fn = '%d_%d.%d.testhost,U=%d,FMD5=%s:2,%s' % (1690000000 + i, i, 4242, r['uid'],
                                                          fmd5, letters)
            sub = 'cur' if 'S' in letters else 'new'
            r['path'] = os.path.join(self.root, name, sub, fn)
            with open(r['path'], 'wb') as f:
                f.write(r['body'].replace(b'\r\n', b'\n'))
            lines.append((r['uid'], ''.join(sorted(letters))))
        self.write_cache(name, lines)
        for repo, value in (('test-remote', uv), ('test-local', 42)):
            d = os.path.join(self.meta, 'Repository-' + repo, 'FolderValidity')
            os.makedirs(d, exist_ok=True)
            os.makedirs(os.path.join(self.meta, 'Repository-' + repo, 'UIDMapping'),
                        exist_ok=True)
            with open(os.path.join(d, name), 'w') as f:
                f.write('%d\n' % value)

    def cache_path(self, name):
        sub = 'LocalStatus-sqlite' if self.backend == 'sqlite' else 'LocalStatus'
        return os.path.join(self.meta, 'Account-test', sub, name)

    def write_cache(self, name, lines):
        p = self.cache_path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if self.backend == 'sqlite':
            db = sqlite3.connect(p)
            db.executescript(
                "CREATE TABLE metadata (key VARCHAR(50) PRIMARY KEY, value VARCHAR(128));"
                "INSERT INTO metadata VALUES('db_version', '2');"
                "CREATE TABLE status (id INTEGER PRIMARY KEY, flags VARCHAR(50), "
                "mtime INTEGER, labels VARCHAR(256));")
            db.executemany('INSERT INTO status VALUES (?, ?, 0, ?)',
                           [(u, f, '') for u, f in lines])
            db.commit()
            db.close()
        elif self.backend == 'plain1':
            with open(p, 'w') as f:
                f.write(MAGIC % 1 + ''.join('%d:%s\n' % x for x in lines))
        elif self.backend == 'plain':
            with open(p, 'w') as f:
                f.write(MAGIC % 2 + ''.join('%d|%s|0|\n' % x for x in lines))

    def sync(self, *args, timeout=120):
        return util.run_oimap(['-o', '-u', 'basic'] + list(args), self.conf, timeout=timeout)

    def server(self, folder):
        """{Message-ID: sorted flags} on the server."""
        return {r['message_id']: ' '.join(sorted(f for f in r['flags'] if f != '\\Recent'))
                for r in self.dv.fetch_all(self.user, folder)}


class MigrateTest(util.DovecotTestCase):
    dovecot_args = {'users': USERS}

    def changes(self, a):
        """Changes since offlineimap's last sync, on both sides.  Returns what
        each should lead to."""
        inbox = a.recs['INBOX']
        seen = [r for r in inbox if r['letters'] == 'S']
        self.assertGreaterEqual(len(seen), 6)
        A, B, C, D, E = seen[:5]
        os.unlink(A['path'])                                 # deleted locally
        a.dv.set_flags(a.user, 'INBOX', [B['uid']], ['\\Flagged'])    # flagged remotely
        a.dv.set_flags(a.user, 'INBOX', [C['uid']], ['\\Flagged'])    # both sides:
        renamed = {}
        for r, letters in ((C, 'RS'), (E, '')):              # C +R locally, E -S locally
            new = re.sub(r':2,[A-Za-z]*$', ':2,' + letters, r['path'])
            os.rename(r['path'], new)
            renamed[r['message_id']] = new
        a.dv.delete_messages(a.user, 'INBOX', [D['uid']])    # deleted remotely
        new_remote = corpus.make_message(random.Random(5), 900, 3000, seed=5)[0]
        a.dv.append(a.user, 'INBOX', new_remote, ['\\Seen'])
        new_local = corpus.make_message(random.Random(6), 901, 3000, seed=6, eol=b'\n')[0]
        p = os.path.join(a.root, 'Sent', 'new', '1690009999.local1.testhost')
        with open(p, 'wb') as f:
            f.write(new_local)
        return {'A': A, 'B': B, 'C': C, 'D': D, 'E': E, 'renamed': renamed,
                'new_remote': imaputil.message_id(new_remote),
                'new_local': imaputil.message_id(new_local)}

    def check_takeover(self, a, ch, r, before_tree, before_meta):
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 0, out[-4000:])
        self.assertEqual(len(re.findall(r'taking over from offlineimap', out)), len(FOLDERS),
                         out[-4000:])
        fetched = BODY_FETCH_RE.findall(out)
        new_uid = max(x['uid'] for x in a.dv.fetch_all(a.user, 'INBOX'))
        self.assertEqual(fetched, [str(new_uid)],
                         'only the new server message may be downloaded:\n' + out[-4000:])
        self.assertEqual(len(APPEND_RE.findall(out)), 1, 'only the new local message '
                         'may be uploaded:\n' + out[-4000:])
        inbox = a.server('INBOX')
        self.assertNotIn(ch['A']['message_id'], inbox, 'deleted locally: deleted remotely')
        self.assertNotIn(ch['D']['message_id'], inbox)
        self.assertIn('\\Flagged', inbox[ch['B']['message_id']])
        self.assertEqual(set(inbox[ch['C']['message_id']].split()),
                         {'\\Answered', '\\Flagged', '\\Seen'}, 'both sides changed C')
        self.assertEqual(inbox[ch['E']['message_id']], '', 'E unseen locally')
        self.assertIn(ch['new_remote'], inbox)
        self.assertIn(ch['new_local'], a.server('Sent'))
        # the Maildir: every file as it was, but for the changes
        after = tree(a.root)
        mids = {imaputil.message_id(b): rel for rel, b in after.items()}
        self.assertNotIn(ch['A']['message_id'], mids, 'A downloaded again')
        self.assertNotIn(ch['D']['message_id'], mids, 'D not deleted locally')
        flag_changed = {ch['B']['message_id']: 'FS', ch['C']['message_id']: 'FRS'}
        problems = []
        for rel, body in before_tree.items():
            mid = imaputil.message_id(body)
            if mid == ch['D']['message_id'] or mid == ch['new_local']:
                continue
            if mid in flag_changed:
                got = mids.get(mid)
                if not got or base_of(got) != base_of(rel) or after[got] != body or \
                        not got.endswith(':2,' + flag_changed[mid]):
                    problems.append('%s: %s -> %s' % (mid, rel, got))
            elif after.get(rel) != body:
                problems.append('%s changed or gone (now %s)' % (rel, mids.get(mid)))
        self.assertEqual(problems, [], 'Maildir files changed beyond the changes made')
        self.assertEqual(tree(a.meta), tree_with_oimap(a.meta, before_meta),
                         "offlineimap's metadata changed")
        # and the next run has nothing to do
        r2 = a.sync('-d', 'imap')
        out2 = r2.stdout + r2.stderr
        self.assertEqual(r2.rc, 0, out2[-3000:])
        self.assertEqual(WRITES_RE.findall(out2), [], out2[-3000:])
        self.assertEqual(BODY_FETCH_RE.findall(out2), [], out2[-3000:])

    def takeover(self, user, backend):
        with FaultProxy(self.dv.host, self.dv.port, plan=lambda i: None) as px:
            a = Account(self, user, backend, port=px.port)
            ch = self.changes(a)
            before_tree, before_meta = tree(a.root), tree(a.meta)
            t0 = time.monotonic()
            r = a.sync('-d', 'imap')
            secs = time.monotonic() - t0
            s2c, c2s = sum(s['s2c'] for s in px.stats), sum(s['c2s'] for s in px.stats)
            print('\n%s: takeover of %d messages in %d folders: %.2f s, %d bytes from the '
                  'server, %d to it' % (backend, sum(len(v) for v in a.recs.values()),
                                        len(FOLDERS), secs, s2c, c2s), file=sys.stderr)
            self.check_takeover(a, ch, r, before_tree, before_meta)
        return a

    def test_plain_format2(self):
        """status_backend = plain (offlineimap 6.x/7.x), format 2."""
        self.takeover('u1', 'plain')

    def test_plain_format1(self):
        """A plain cache still in format 1 (offlineimap before 6.5)."""
        self.takeover('u2', 'plain1')

    def test_sqlite(self):
        """LocalStatus-sqlite (offlineimap 7's default, offlineimap3's only)."""
        if not have_sqlite():
            a = Account(self, 'u3', 'sqlite', n=20)
            r = a.sync()
            self.assertEqual(r.rc, 1, r.stdout + r.stderr)
            self.assertIn('libsqlite3-dev', r.stdout + r.stderr)
            return
        self.takeover('u3', 'sqlite')

    def test_without_status_deleted_mail_comes_back(self):
        """Why the caches matter: without them (only the U= pairing), the
        message deleted locally since offlineimap's last sync is downloaded
        again."""
        a = Account(self, 'u4', 'none', n=40)
        ch = self.changes(a)
        r = a.sync('-d', 'imap')
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 0, out[-3000:])
        self.assertNotIn('taking over from offlineimap', out)
        self.assertIn(ch['A']['message_id'], a.server('INBOX'))
        self.assertIn(ch['A']['message_id'],
                      {imaputil.message_id(b) for b in tree(a.root).values()})

    def test_corrupt_cache(self):
        """A cache offlineimap would refuse: that folder fails, naming the file
        and line; nothing of it changes; the other folders are taken over."""
        a = Account(self, 'u5', 'plain', n=40)
        p = a.cache_path('Sent')
        with open(p, 'a') as f:
            f.write('12|S|0\n')
        os.unlink(a.recs['Sent'][0]['path'])
        srv, before_meta = a.server('Sent'), tree(a.meta)
        r = a.sync()
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 1, out)
        with open(p) as f:
            lines = len(f.read().splitlines())
        self.assertRegex(out, r'Sent.*LocalStatus/Sent:%d: corrupt line' % lines)
        self.assertEqual(a.server('Sent'), srv, 'the server folder changed')
        self.assertEqual(out.count('taking over from offlineimap'), len(FOLDERS) - 1, out)
        self.assertEqual(tree_with_oimap(a.meta, before_meta), tree(a.meta))

    def test_offlineimap_running(self):
        """offlineimap holds its account lock: nothing is taken over."""
        a = Account(self, 'u6', 'plain', n=20)
        lock = os.path.join(a.meta, 'test.lock')
        srv = {f: a.server(f) for f in FOLDERS}
        before = tree(a.root)
        with open(lock, 'w') as f:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            r = a.sync()
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 1, out)
        self.assertIn('offlineimap is running on this account', out)
        self.assertEqual({f: a.server(f) for f in FOLDERS}, srv)
        self.assertEqual(tree(a.root), before)
        os.unlink(lock)
        r = a.sync()
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)

    def test_dry_run(self):
        """--dry-run says it would take over and what it would do, and
        writes nothing (not even oimap's status store)."""
        a = Account(self, 'u7', 'plain', n=30)
        os.unlink(a.recs['INBOX'][0]['path'])
        before, srv = tree(a.root), a.server('INBOX')
        r = a.sync('--dry-run')
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 0, out)
        self.assertIn('[dry-run] test: folder INBOX: taking over from offlineimap', out)
        self.assertRegex(out, r'\[dry-run\].*INBOX.*delete-remote 1')
        self.assertFalse(os.path.exists(os.path.join(a.meta, 'oimap', 'Account-test',
                                                     'status.lmdb')))
        self.assertEqual(tree(a.root), before)
        self.assertEqual(a.server('INBOX'), srv)

    def test_uidvalidity_changed(self):
        """The server renumbered a folder since offlineimap's last sync: it is
        stopped, nothing deleted on either side (as offlineimap does)."""
        a = Account(self, 'u8', 'plain', n=30)
        uv = self.dv.uidvalidity(a.user, 'INBOX')
        self.dv.set_uidvalidity(a.user, 'INBOX', uv + 1000)
        before, srv = tree(a.root), a.server('INBOX')
        r = a.sync()
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 1, out)
        self.assertIn('UIDVALIDITY', out)
        self.assertEqual(tree(a.root), before)
        self.assertEqual(a.server('INBOX'), srv)


def tree_with_oimap(meta, before):
    """before, plus oimap's own files now under meta/oimap (which the
    comparison leaves out: only offlineimap's files must be unchanged)."""
    now = tree(meta)
    return dict(before, **{k: v for k, v in now.items() if k.startswith('oimap' + os.sep)})


if __name__ == '__main__':
    util.main()
