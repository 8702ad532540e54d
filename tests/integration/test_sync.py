#!/usr/bin/env python3
"""Two-way IMAP <-> Maildir sync against the private Dovecot (oimap -o).

Both sides are compared message by message: (Message-ID, body hash, flags).
The server copy of an uploaded message carries our X-OIMAP-TUID marker
header (the crash-safe way to find an interrupted APPEND again, as
offlineimap's X-OfflineIMAP); it is removed before hashing.

The helpers at the top are shared with test_dryrun.py and
test_sync_crash.py (import functions only, never the TestCase classes).
"""

import os
import random
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from util import corpus, imaputil  # noqa: E402

FOLDERS = ('INBOX', 'Sent', 'Lists/dev', 'Brouillons/Été')
TUID_RE = re.compile(rb'^X-OIMAP-TUID: [^\r\n]*\r?\n', re.M | re.I)
WRITES_RE = re.compile(r'C: A\d+ (?:UID )?(?:APPEND|STORE|EXPUNGE|COPY|MOVE)\b.*')
SUMMARY_RE = re.compile(r'(\[dry-run\] )?[^:\n]+: folder (.+?): download (\d+), upload (\d+), '
                        r'delete-remote (\d+), delete-local (\d+), flags-remote (\d+), '
                        r'flags-local (\d+), pair (\d+), held-back (\d+)')


def local_path(root, folder):
    """The Maildir directory of a server folder as offlineimap lays it out:
    sep '.', and (utf8foldernames = no) the name in modified UTF-7."""
    return os.path.join(root, util.mutf7_encode(folder).replace('/', '.'))


def make_config(dv, root, user, account='test', account_opts=None, remote=None, local=None,
                general=None):
    return util.offlineimap_config(dv, root, user=user, security='plain', account=account,
                                   metadata=os.path.join(root, '..', 'meta-' + user),
                                   account_opts=account_opts, remote=remote, local=local,
                                   general=general)


def sync(conf, *args, timeout=300):
    return util.run_oimap(['-o', '-u', 'basic'] + list(args), conf, timeout=timeout)


def server_records(dv, user, folder):
    """fetch_all records with the body hash taken without our marker."""
    with dv.session(user) as s:
        recs = s.fetch_all(folder, with_body=True)
    for r in recs:
        body = TUID_RE.sub(b'', r.pop('body'), count=1)
        r['body_sha256'] = imaputil.body_sha256(body)
        r['message_id'] = imaputil.message_id(body)
    return recs


def server_summary(dv, user, folder, flags=True):
    return corpus.summary(server_records(dv, user, folder), flags=flags)


def local_summary(root, folder, flags=True):
    return corpus.summary(corpus.hash_maildir(local_path(root, folder)), flags=flags)


def assert_same(tc, dv, user, root, folders=FOLDERS):
    for f in folders:
        s, l = server_summary(dv, user, f), local_summary(root, f)
        d = corpus.diff(s, l, 'server', 'local')
        tc.assertEqual(d, '', 'folder %s differs:\n%s' % (f, d[:3000]))
        # nothing twice, on either side
        ids = [k[:2] for k in s]
        tc.assertEqual(len(ids), len(set(ids)), 'duplicates on the server in %s' % f)


def summaries(output):
    """{(folder, dry): (download, upload, del-remote, del-local, flags-remote,
    flags-local, pair, held)} from oimap's per-folder summary lines."""
    out = {}
    for m in SUMMARY_RE.finditer(output):
        out[(m.group(2), bool(m.group(1)))] = tuple(int(x) for x in m.groups()[2:])
    return out


def new_local_message(root, folder, rng, index, flags='', seed=77):
    """Write a new message (LF line ends, no U=) into folder's new/ or cur/."""
    data, mid, _ = corpus.make_message(rng, index, rng.randint(1500, 6000), seed=seed,
                                       folder=folder, eol=b'\n')
    sub = 'cur' if flags else 'new'
    name = '%d_%d.%d.oimaptest' % (int(time.time()), index, os.getpid())
    if flags or sub == 'cur':
        name += ':2,' + flags
    path = os.path.join(local_path(root, folder), sub, name)
    with open(path, 'wb') as f:
        f.write(data)
    return mid, imaputil.body_sha256(data)


def local_files(root, folder):
    d = local_path(root, folder)
    out = []
    for sub in ('cur', 'new'):
        for n in sorted(os.listdir(os.path.join(d, sub))):
            out.append(os.path.join(d, sub, n))
    return out


def set_local_flags(path, letters):
    """Rename a Maildir file to carry exactly these flag letters (into cur/)."""
    d, name = os.path.split(path)
    base = name.split(':2,')[0]
    new = os.path.join(os.path.dirname(d), 'cur', base + ':2,' + ''.join(sorted(letters)))
    os.rename(path, new)
    return new


def letters_of(path):
    name = os.path.basename(path)
    return name.split(':2,')[1] if ':2,' in name else ''


def uid_of(path):
    return corpus.parse_maildir_name(os.path.basename(path))[1]


def tree_snapshot(root):
    """{relative path: (size, mtime_ns, sha)} of every file and dir under root."""
    import hashlib
    out = {}
    for dp, dns, fns in os.walk(root):
        for d in dns:
            out[os.path.relpath(os.path.join(dp, d), root) + '/'] = None
        for fn in fns:
            p = os.path.join(dp, fn)
            st = os.stat(p)
            with open(p, 'rb') as f:
                out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns,
                                                 hashlib.sha256(f.read()).hexdigest())
    return out


class SyncTestCase(util.DovecotTestCase):
    dovecot_args = {'users': {'u%d' % i: 'pw-%d' % i for i in range(1, 9)}}


class TestSync(SyncTestCase):

    def setUp(self):
        super().setUp()
        self.root = os.path.join(self.tmp, 'mail')

    def fill(self, user, n, seed=3):
        return corpus.fill(self.dv, user, n, seed=seed, min_size=1500, max_size=20000)

    def test_initial_download_and_noop(self):
        user = 'u1'
        self.fill(user, 160)
        conf = make_config(self.dv, self.root, user, remote={'maxconnections': '3'})
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        assert_same(self, self.dv, user, self.root)
        got = summaries(r.stdout + r.stderr)
        self.assertEqual(sum(v[0] for v in got.values()), 160, r.stdout + r.stderr)
        # every local file carries its UID and sits in cur/ iff \Seen
        for f in FOLDERS:
            for p in local_files(self.root, f):
                self.assertIsNotNone(uid_of(p), p)
                self.assertEqual('/cur/' in p, 'S' in letters_of(p), p)
        # rerun: nothing fetched, appended or stored; no summary line at all
        r = sync(conf, '-d', 'imap')
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        out = r.stdout + r.stderr
        self.assertNotIn('BODY.PEEK[]', out)
        self.assertEqual(WRITES_RE.findall(out), [])
        self.assertNotIn('BODY.PEEK', out)
        self.assertEqual(summaries(out), {})
        # a no-op is one connection and one LIST-STATUS: no folder SELECTed
        self.assertEqual(len(re.findall(r' C: \S+ SELECT ', out)), 0, out[-3000:])
        self.assertEqual(out.count('connecting ('), 1, out[-3000:])
        assert_same(self, self.dv, user, self.root)

    def test_two_way_changes(self):
        user = 'u2'
        self.fill(user, 120, seed=5)
        conf = make_config(self.dv, self.root, user)
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        rng = random.Random(9)

        # --- changes on the server
        with self.dv.session(user) as s:
            uids = s.uids('INBOX')
            s.delete('INBOX', uids[:3])                     # deleted remotely
            s.set_flags('INBOX', uids[3:6], ['\\Flagged'])  # flags added remotely
            s.clear_flags('INBOX', uids[6:9], ['\\Seen'])
            s.set_flags('INBOX', [uids[9]], ['\\Answered'])  # conflict, see below
            new_srv = []
            for i in range(4):
                data, mid, _ = corpus.make_message(rng, 900 + i, 3000, seed=11)
                s.append('Lists/dev', data, ['\\Seen'] if i % 2 else [])
                new_srv.append(mid)
        # --- changes in the Maildir
        files = {uid_of(p): p for p in local_files(self.root, 'INBOX')}
        for u in uids[12:15]:
            os.unlink(files[u])                              # deleted locally
        for u in uids[15:18]:
            set_local_flags(files[u], set(letters_of(files[u])) | {'F', 'S'})
        set_local_flags(files[uids[9]], set(letters_of(files[uids[9]])) | {'F'})
        new_loc = [new_local_message(self.root, 'INBOX', rng, 950 + i, flags='S' if i else '')
                   for i in range(5)]
        new_loc.append(new_local_message(self.root, 'Brouillons/Été', rng, 960, flags='DS'))

        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        got = summaries(r.stdout + r.stderr)
        self.assertEqual(got[('INBOX', False)][:4], (0, 5, 3, 3), got)
        self.assertEqual(got[('Lists/dev', False)][:4], (4, 0, 0, 0), got)
        self.assertEqual(got[('Brouillons/Été', False)][:4], (0, 1, 0, 0), got)
        assert_same(self, self.dv, user, self.root)
        srv = server_records(self.dv, user, 'INBOX')
        ids = {r['message_id'] for r in srv}
        for mid, _ in new_loc[:5]:
            self.assertIn(mid, ids)
        # the conflict: \Answered from the server and \Flagged from the Maildir both kept
        with self.dv.session(user) as s:
            fl = s.fetch_flags('INBOX')
        self.assertIn('\\Answered', fl[uids[9]])
        self.assertIn('\\Flagged', fl[uids[9]])
        # uploaded files were renamed to carry their new UID
        for p in local_files(self.root, 'INBOX'):
            self.assertIsNotNone(uid_of(p), p)
        # and once more: nothing to do, with a full listing (our own stores
        # raised HIGHESTMODSEQ) and then with the listing taken from the
        # status (CONDSTORE: nothing changed since)
        for _ in range(2):
            r = sync(conf, '-d', 'sync')
            self.assertEqual(r.rc, 0, r.stdout + r.stderr)
            self.assertEqual(summaries(r.stdout + r.stderr), {})
        self.assertIn('HIGHESTMODSEQ unchanged', r.stdout + r.stderr)
        assert_same(self, self.dv, user, self.root)

    def test_uidvalidity_change_stops_folder(self):
        user = 'u3'
        self.fill(user, 40, seed=7)
        conf = make_config(self.dv, self.root, user)
        self.assertEqual(sync(conf).rc, 0)
        before = tree_snapshot(self.root)
        old = self.dv.uidvalidity(user, 'Sent')
        self.dv.set_uidvalidity(user, 'Sent', old + 1000)
        r = sync(conf)
        self.assertNotEqual(r.rc, 0)
        self.assertRegex(r.stdout + r.stderr, r'Sent.*UIDVALIDITY')
        after = tree_snapshot(self.root)
        self.assertEqual(before, after)  # nothing deleted, nothing downloaded
        # the other folders still synced fine (and stay as they were)
        assert_same(self, self.dv, user, self.root, folders=('INBOX', 'Lists/dev'))

    def test_mass_deletion_guard(self):
        user = 'u4'
        conf = make_config(self.dv, self.root, user)
        with self.dv.session(user) as s:
            s.create_folder('Big')
            rng = random.Random(4)
            s.append_many('Big', ((corpus.make_message(rng, i, 1500, seed=4)[0], [], None)
                                  for i in range(150)))
        self.assertEqual(sync(conf).rc, 0)
        self.assertEqual(len(local_files(self.root, 'Big')), 150)
        with self.dv.session(user) as s:
            s.delete('Big', s.uids('Big')[:120])   # 80% vanish remotely
        r = sync(conf)
        self.assertEqual(r.rc, 1, r.stdout + r.stderr)
        self.assertIn('deletion_guard=no', r.stdout + r.stderr)
        self.assertIn('held back', r.stdout + r.stderr)
        self.assertEqual(len(local_files(self.root, 'Big')), 150)
        r = sync(conf, '-k', 'Account_test:deletion_guard=no')
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        self.assertEqual(len(local_files(self.root, 'Big')), 30)
        assert_same(self, self.dv, user, self.root, folders=('Big',))
        # an emptied local folder is held back as well
        for p in local_files(self.root, 'Big'):
            os.unlink(p)
        r = sync(conf)
        self.assertEqual(r.rc, 1, r.stdout + r.stderr)
        with self.dv.session(user) as s:
            self.assertEqual(len(s.uids('Big')), 30)

    def test_readonly_remote_never_changed(self):
        user = 'u5'
        self.fill(user, 30, seed=8)
        conf = make_config(self.dv, self.root, user, remote={'readonly': 'yes'})
        self.assertEqual(sync(conf).rc, 0)
        with self.dv.session(user) as s:
            before = {f: s.fetch_all(f) for f in FOLDERS}
            st_before = {f: s.status(f) for f in FOLDERS}
        rng = random.Random(1)
        files = local_files(self.root, 'INBOX')
        os.unlink(files[0])
        set_local_flags(files[1], {'F', 'S', 'R'})
        new_local_message(self.root, 'INBOX', rng, 5)
        r = sync(conf, '-d', 'imap')
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        self.assertEqual(WRITES_RE.findall(r.stdout + r.stderr), [])
        self.assertNotRegex(r.stdout + r.stderr, r'C: A\d+ SELECT')
        with self.dv.session(user) as s:
            self.assertEqual(before, {f: s.fetch_all(f) for f in FOLDERS})
            self.assertEqual(st_before, {f: s.status(f) for f in FOLDERS})
        # the local changes stay local and are not reverted either
        self.assertTrue(os.path.exists(os.path.join(os.path.dirname(os.path.dirname(files[1])),
                                                    'cur', os.path.basename(files[1])
                                                    .split(':2,')[0] + ':2,FRS')))
        r = sync(conf)
        self.assertEqual(summaries(r.stdout + r.stderr), {})

    def test_keywords_and_forwarded(self):
        user = 'u6'
        conf = make_config(self.dv, self.root, user, local={'customflag_a': 'work',
                                                            'customflag_b': 'todo'})
        rng = random.Random(2)
        with self.dv.session(user) as s:
            for i, fl in enumerate([['work'], ['$Forwarded', '\\Seen'], ['todo', 'other'], []]):
                s.append('INBOX', corpus.make_message(rng, i, 1500, seed=2)[0], fl)
        self.assertEqual(sync(conf).rc, 0)
        letters = sorted(letters_of(p) for p in local_files(self.root, 'INBOX'))
        self.assertEqual(letters, ['', 'PS', 'a', 'b'])
        # a local keyword letter goes up as the keyword
        p = [p for p in local_files(self.root, 'INBOX') if letters_of(p) == ''][0]
        set_local_flags(p, {'b', 'F'})
        self.assertEqual(sync(conf).rc, 0)
        with self.dv.session(user) as s:
            fl = s.fetch_flags('INBOX')
        self.assertIn('todo', fl[uid_of(p)])
        self.assertIn('\\Flagged', fl[uid_of(p)])


if __name__ == '__main__':
    util.main()
