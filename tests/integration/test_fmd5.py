#!/usr/bin/env python3
"""Maildir names under a local nametrans, as offlineimap names them (issue 7).

offlineimap (since 6.3.5; offlineimap3 is Debian's) puts into every file name
,FMD5=<md5 of the folder's *visible* name>: the local repository's nametrans
applied to the folder's name on disk (levels joined by the Maildir's sep),
and trusts a file's U= only when that FMD5 is its folder's.  Its folder
mapping: a remote folder's local name is the remote nametrans of its name
with the server's delimiter then turned into sep; a local folder's remote
name is the local nametrans of its name on disk with sep then turned into
the server's delimiter.

(a) offlineimap syncs an account with a local + remote nametrans pair and
    nested folders; oimap takes over with the same config and metadata:
    no body fetched, no APPEND, the Maildir unchanged; a message oimap
    downloads later is named as offlineimap names it.
(b) for a few nametrans idioms, offlineimap and oimap each sync a copy of
    the same account: same local folders on disk, same folders created on
    the server for local-only folders, same FMD5s.
(c) --migrate-fmd5-using-nametrans renames files carrying the md5 of the
    name on disk to the md5 of the nametrans'd name (dry run first, then
    for real, then again: nothing to do), and the next sync pairs them all.

(a) and (b) need Debian's offlineimap (OIMAP_OFFLINEIMAP, default
/usr/bin/offlineimap); without it they are skipped and the script exits 77
once (c) has run.
"""

import hashlib
import os
import random
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from util import corpus  # noqa: E402

OFFLINEIMAP = os.environ.get('OIMAP_OFFLINEIMAP', '/usr/bin/offlineimap')
HAVE_OFFLINEIMAP = os.access(OFFLINEIMAP, os.X_OK)
BODY_FETCH_RE = re.compile(r'C: \S+ (?:UID )?FETCH .*BODY(?:\.PEEK)?\[')
APPEND_RE = re.compile(r'C: \S+ APPEND ')
FMD5_RE = re.compile(r',FMD5=([0-9a-f]{32})')
USERS = {'u%d' % i: 'pw-u%d' % i for i in range(1, 15)}


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def tree(root):
    """{path relative to root: bytes} of every file (metadata excluded)."""
    out = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x != '.meta']
        for n in files:
            p = os.path.join(d, n)
            with open(p, 'rb') as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


def folder_fmd5s(root):
    """{folder directory on disk: sorted set of FMD5s of its files}."""
    out = {}
    for rel in corpus.maildir_folders(root):
        s = set()
        for sub in ('new', 'cur'):
            for n in os.listdir(os.path.join(root, rel, sub)):
                m = FMD5_RE.search(n)
                if m:
                    s.add(m.group(1))
        out[rel] = sorted(s)
    return out


def run_offlineimap(conf_path, *extra):
    r = util.run_cmd([OFFLINEIMAP, '-o', '-u', 'basic', '-c', conf_path] + list(extra),
                     timeout=120, env=util.oimap_env())
    out = r.stdout + r.stderr
    if r.rc != 0 or re.search(r'^ERROR|\bERROR:|Traceback', out, re.M):
        raise AssertionError('offlineimap failed (exit %d):\n%s' % (r.rc, out[-6000:]))
    return r


def run_oimap(conf_path, *args, rc=0):
    r = util.run_oimap(list(args), config_path=conf_path, timeout=120)
    if rc is not None and r.rc != rc:
        raise AssertionError('oimap %s: exit %d, expected %d\n%s%s' % (
            ' '.join(args), r.rc, rc, r.stdout[-4000:], r.stderr[-4000:]))
    return r


class Side:
    """One tool's copy of an account: a Dovecot user, a Maildir, a config."""

    def __init__(self, dv, user, local=None, remote=None):
        self.dv, self.user = dv, user
        self.conf_local, self.conf_remote = local, remote
        self.dir = util.tmpdir(user)
        self.root = os.path.join(self.dir, 'mail')
        self.meta = os.path.join(self.dir, 'meta')
        os.makedirs(self.root)
        self.conf_text = util.offlineimap_config(
            dv, self.root, user=user, security='plain', metadata=self.meta,
            local=local, remote=remote)
        self.conf = util.write_config(self.conf_text, self.dir, 'offlineimaprc')

    def make_local(self, disk_name, n=2):
        """A local-only Maildir folder (name as on disk) holding n messages
        without U= (mail the next sync uploads)."""
        for sub in ('cur', 'new', 'tmp'):
            os.makedirs(os.path.join(self.root, disk_name, sub), exist_ok=True)
        for i in range(n):
            name = '17000000%02d.M%dP1.host:2,S' % (i, i)
            data = ('From: a@example.org\nTo: b@example.org\nSubject: %s %d\n'
                    'Message-ID: <local-%d-%s@example.org>\n\nbody\n' % (
                        disk_name, i, i, md5(disk_name)[:8]))
            util.write_file(os.path.join(self.root, disk_name, 'cur', name), data)

    def server_folders(self):
        with self.dv.session(self.user) as s:
            return s.list_folders()


class TakeoverTest(util.DovecotTestCase):
    """(a): offlineimap first, then oimap on its Maildir and metadata."""

    dovecot_args = {'users': USERS}

    LOCAL = {'nametrans': "lambda f: re.sub('^sent$', 'Sent Items', re.sub('^ml\\.', "
                          "'Lists.', f))"}
    REMOTE = {'nametrans': "lambda f: re.sub('^Sent Items$', 'sent', re.sub('^Lists/', "
                           "'ml/', f))"}
    FOLDERS = (('INBOX', 4, 'plain'), ('Sent Items', 3, 'plain'), ('Lists/dev', 3, 'plain'),
               ('Lists/dev/old', 2, 'plain'), ('Lists/users', 2, 'plain'))

    @unittest.skipUnless(HAVE_OFFLINEIMAP, 'offlineimap not installed (apt-get install '
                         'offlineimap3)')
    def test_takeover_pairs_everything(self):
        corpus.fill(self.dv, 'u1', 14, seed=7, folders=self.FOLDERS, min_size=800,
                    max_size=4000)
        side = Side(self.dv, 'u1', local=self.LOCAL, remote=self.REMOTE)
        run_offlineimap(side.conf)
        on_disk = sorted(corpus.maildir_folders(side.root))
        self.assertEqual(on_disk, ['INBOX', 'ml.dev', 'ml.dev.old', 'ml.users', 'sent'])
        fmd5s = folder_fmd5s(side.root)
        # offlineimap's rule, which oimap must follow: the nametrans'd name.
        self.assertEqual(fmd5s['ml.dev'], [md5('Lists.dev')])
        self.assertEqual(fmd5s['sent'], [md5('Sent Items')])
        before = tree(side.root)

        r = run_oimap(side.conf, '-o', '-u', 'basic', '-d', 'imap')
        log = r.stdout + r.stderr
        self.assertEqual(BODY_FETCH_RE.findall(log), [], 'bodies fetched again')
        self.assertEqual(APPEND_RE.findall(log), [], 'messages uploaded again')
        self.assertEqual(tree(side.root), before, 'the Maildir changed')
        self.assertEqual(side.server_folders(), sorted(f for f, _, _ in self.FOLDERS))

        # New mail on the server: oimap names it as offlineimap would.
        with self.dv.session('u1') as s:
            s.append('Lists/dev/old', corpus.make_message(random.Random(3), 99, 900)[0])
        r = run_oimap(side.conf, '-o', '-u', 'basic', '-d', 'imap')
        self.assertEqual(APPEND_RE.findall(r.stdout + r.stderr), [])
        self.assertEqual(folder_fmd5s(side.root)['ml.dev.old'], [md5('Lists.dev.old')])
        new = set(tree(side.root)) - set(before)
        self.assertEqual(len(new), 1, new)
        # ...and offlineimap, run again, trusts it (no re-download, no upload).
        r = run_offlineimap(side.conf)
        self.assertNotRegex(r.stdout + r.stderr, r'Copy message')
        self.assertEqual(len(tree(side.root)), len(before) + 1)


# Idioms of (b): (name, dovecot delimiter, sep, remote nametrans, local
# nametrans, server folders, local-only folders as on disk, remote filter).
# A local-only folder's parent is a folder on the server already:
# offlineimap CREATEs every level of a new folder's name, and a level that
# is new on the server then makes its run fail (it has no local folder for
# it yet); oimap CREATEs the folder alone, as the server makes the levels.
IDIOMS = [
    ('dict map, Gmail style', '/', '.',
     "lambda f: {'[Gmail]/Sent Mail': 'sent', '[Gmail]/All Mail': 'archive'}.get(f, f)",
     "lambda f: {'sent': '[Gmail]/Sent Mail', 'archive': '[Gmail]/All Mail'}.get(f, f)",
     ('INBOX', '[Gmail]/Sent Mail', '[Gmail]/All Mail', 'Lists', 'Lists/dev', 'Lists/dev/old'),
     ('Lists.fresh', 'Lists.dev.fresh', 'sent2'), "lambda f: f != '[Gmail]'"),
    ('prefix added with the local sep', '/', '.',
     "lambda f: re.sub('^Mail/', '', f)",
     "lambda f: f if f == 'INBOX' else 'Mail.' + f",
     ('INBOX', 'Mail', 'Mail/Sent', 'Mail/Lists', 'Mail/Lists/dev'),
     ('Lists.fresh', 'Todo'), "lambda f: f != 'Mail'"),
    ('spaces', '/', '.',
     "lambda f: f.replace(' ', '_')",
     "lambda f: f.replace('_', ' ')",
     ('INBOX', 'Sent Items', 'Old Lists', 'Old Lists/Dev Team'),
     ('Old_Lists.New_Stuff', 'To_do'), None),
    ('Maildir++ INBOX. prefix', '.', '.',
     "lambda f: re.sub('^INBOX\\\\.', '', f)",
     "lambda f: f if f == 'INBOX' else 'INBOX.' + f",
     ('INBOX', 'INBOX.Sent', 'INBOX.Lists', 'INBOX.Lists.dev', 'INBOX.Lists.dev.old'),
     ('Lists.fresh', 'Todo'), None),
    ('re.sub on the delimiter, nested Maildir', '.', '/',
     "lambda f: re.sub('\\\\.', '/', f)",
     "lambda f: re.sub('/', '.', f)",
     ('INBOX', 'Sent', 'Lists', 'Lists.dev', 'Lists.dev.old'),
     ('Lists/fresh', 'Todo'), None),
]


class MappingTest(unittest.TestCase):
    """(b): the same account synced by each tool gives the same folders."""

    def check_idiom(self, dv, idiom, users):
        name, _, sep, rtrans, ltrans, folders, local_only, rfilter = idiom
        remote = {'nametrans': rtrans}
        if rfilter:
            remote['folderfilter'] = rfilter
        local = {'nametrans': ltrans, 'sep': sep}
        sides = {}
        for tool, user in zip(('offlineimap', 'oimap'), users):
            with dv.session(user) as s:
                for f in folders:
                    if f != 'INBOX':
                        s.create_folder(f)
                s.append('INBOX', b'From: a@b\r\nSubject: hi\r\n\r\nx\r\n')
                for f in folders[1:]:
                    s.append(f, b'From: a@b\r\nSubject: in ' + f.encode() + b'\r\n\r\nx\r\n')
            side = Side(dv, user, local=local, remote=remote)
            for d in local_only:
                side.make_local(d)
            if tool == 'offlineimap':
                run_offlineimap(side.conf)
            else:
                run_oimap(side.conf, '-o', '-u', 'basic')
            sides[tool] = side
        o, m = sides['offlineimap'], sides['oimap']
        msg = 'idiom %r' % name
        self.assertEqual(corpus.maildir_folders(m.root), corpus.maildir_folders(o.root), msg)
        self.assertEqual(m.server_folders(), o.server_folders(), msg)
        self.assertEqual(folder_fmd5s(m.root), folder_fmd5s(o.root), msg)
        # A second oimap run changes nothing (no loop of folder creations).
        before = (corpus.maildir_folders(m.root), m.server_folders())
        run_oimap(m.conf, '-o', '-u', 'basic')
        self.assertEqual((corpus.maildir_folders(m.root), m.server_folders()), before, msg)

    def test_creation_loop_refused(self):
        """A local folder whose remote name the remote nametrans does not
        bring back to it is not created (offlineimap: INFINITE FOLDER
        CREATION DETECTED, and it stops the account)."""
        dv = util.Dovecot(users=USERS).start()
        try:
            side = Side(dv, 'u11', local={'nametrans': "lambda f: f.replace('_', ' ')"},
                        remote={'nametrans': "lambda f: f.replace(' ', '-')"})
            side.make_local('New_Stuff')
            r = run_oimap(side.conf, '-o', '-u', 'basic', rc=1)
            self.assertRegex(r.stdout + r.stderr, r'local folder New_Stuff would be created on '
                             r'the server as New Stuff, which the remote nametrans maps to '
                             r'local folder New-Stuff')
            self.assertEqual(side.server_folders(), ['INBOX'])
            self.assertEqual(corpus.maildir_folders(side.root), ['INBOX', 'New_Stuff'])
            if HAVE_OFFLINEIMAP:
                o = Side(dv, 'u12', local=side.conf_local, remote=side.conf_remote)
                o.make_local('New_Stuff')
                r = util.run_cmd([OFFLINEIMAP, '-o', '-u', 'basic', '-c', o.conf],
                                 timeout=120, env=util.oimap_env())
                self.assertIn('INFINITE FOLDER CREATION DETECTED', r.stdout + r.stderr)
                self.assertEqual(o.server_folders(), ['INBOX'])
        finally:
            dv.stop()

    def test_sep_in_remote_name(self):
        """With sep '.', the server's 'lists.debian' and 'lists/debian' are
        the same Maildir: one is synced, the other is named in a warning;
        the Maildir is never created on the server as 'lists/debian'.
        (offlineimap skips 'lists.debian', then creates 'lists' and
        'lists/debian' on the server from the local folder, and fails.)"""
        dv = util.Dovecot(users=USERS).start()
        try:
            side = Side(dv, 'u13')
            with dv.session('u13') as s:
                s.create_folder('lists.debian')
                s.append('lists.debian', b'From: a@b\r\nSubject: x\r\n\r\nx\r\n')
            for _ in range(2):
                run_oimap(side.conf, '-o', '-u', 'basic')
                self.assertEqual(side.server_folders(), ['INBOX', 'lists.debian'])
                self.assertEqual(corpus.maildir_folders(side.root), ['INBOX', 'lists.debian'])
            with dv.session('u13') as s:
                s.create_folder('lists/debian')
                s.append('lists/debian', b'From: a@b\r\nSubject: y\r\n\r\ny\r\n')
            r = run_oimap(side.conf, '-o', '-u', 'basic')
            self.assertIn('folders lists.debian and lists/debian would both be the local folder '
                          'lists.debian: lists/debian is not synced', r.stdout + r.stderr)
            self.assertEqual(len(tree(os.path.join(side.root, 'lists.debian'))), 1)
        finally:
            dv.stop()

    @unittest.skipUnless(HAVE_OFFLINEIMAP, 'offlineimap not installed')
    def test_idioms(self):
        for delim in ('/', '.'):
            idioms = [i for i in IDIOMS if i[1] == delim]
            dv = util.Dovecot(users=USERS, delimiter=delim).start()
            try:
                for k, idiom in enumerate(idioms):
                    with self.subTest(idiom=idiom[0]):
                        self.check_idiom(dv, idiom, ('u%d' % (2 * k + 1), 'u%d' % (2 * k + 2)))
            finally:
                dv.stop()


class MigrateTest(util.DovecotTestCase):
    """(c): --migrate-fmd5-using-nametrans."""

    dovecot_args = {'users': USERS}

    def test_migrate(self):
        folders = (('INBOX', 3, 'plain'), ('Lists/dev', 3, 'plain'), ('Lists/dev/old', 2, 'plain'))
        corpus.fill(self.dv, 'u13', 8, seed=5, folders=folders, min_size=800, max_size=3000)
        side = Side(self.dv, 'u13', local={'nametrans': "lambda f: re.sub('^ml\\.', 'Lists.', f)"},
                    remote={'nametrans': "lambda f: re.sub('^Lists/', 'ml/', f)"})
        run_oimap(side.conf, '-o', '-u', 'basic')
        good = tree(side.root)
        self.assertEqual(folder_fmd5s(side.root)['ml.dev'], [md5('Lists.dev')])

        # The Maildir as offlineimap < 6.3.5 (or oimap before it hashed the
        # nametrans'd name) left it: FMD5 of the name on disk.
        renamed = {}
        for rel in good:
            folder = rel.split(os.sep)[0]
            old = FMD5_RE.sub(',FMD5=' + md5(folder), rel)
            if old != rel:
                os.rename(os.path.join(side.root, rel), os.path.join(side.root, old))
                renamed[old] = rel
        self.assertTrue(any(k.startswith('ml.') for k in renamed))
        self.assertFalse(any(k.startswith('INBOX') and k != v for k, v in renamed.items()))
        # One file of another folder's FMD5: warned about, left alone.
        stray = os.path.join('ml.dev', 'cur', '1699999999_1.1.h,U=77,FMD5=%s:2,S' % md5('x'))
        util.write_file(os.path.join(side.root, stray), 'Subject: x\n\nx\n')
        old_tree = tree(side.root)

        r = run_oimap(side.conf, '--migrate-fmd5-using-nametrans', '--dry-run')
        out = r.stdout + r.stderr
        self.assertEqual(tree(side.root), old_tree, 'a dry run renamed files')
        n_old = sum(1 for k in renamed if k != renamed[k])
        self.assertIn('%d files would be renamed' % n_old, out)
        self.assertIn('neither', out)

        r = run_oimap(side.conf, '--migrate-fmd5-using-nametrans')
        out = r.stdout + r.stderr
        self.assertIn('%d files renamed' % n_old, out)
        now = tree(side.root)
        os.unlink(os.path.join(side.root, stray))
        del now[stray]
        self.assertEqual(now, good, 'files not renamed back to offlineimap\'s names')
        util.write_file(os.path.join(side.root, stray), 'Subject: x\n\nx\n')

        r = run_oimap(side.conf, '--migrate-fmd5-using-nametrans')
        self.assertIn('0 files renamed', r.stdout + r.stderr)
        os.unlink(os.path.join(side.root, stray))

        r = run_oimap(side.conf, '-o', '-u', 'basic', '-d', 'imap')
        log = r.stdout + r.stderr
        self.assertEqual(BODY_FETCH_RE.findall(log), [])
        self.assertEqual(APPEND_RE.findall(log), [])
        self.assertEqual(tree(side.root), good)

    def test_migrate_other_kinds(self):
        """Accounts without a Maildir, or without the Maildir yet: nothing
        to do, exit 0; a missing account: usage error."""
        d = util.tmpdir('nomd')
        conf = util.offlineimap_config(self.dv, os.path.join(d, 'none'), user='u14',
                                       security='plain', metadata=os.path.join(d, 'meta'))
        path = util.write_config(conf, d, 'rc')
        r = run_oimap(path, '--migrate-fmd5-using-nametrans')
        self.assertIn('nothing to migrate', r.stdout + r.stderr)
        self.assertFalse(os.path.exists(os.path.join(d, 'none')))
        run_oimap(path, '--migrate-fmd5-using-nametrans', '-a', 'nosuch', rc=None)


if __name__ == '__main__':
    import atexit

    def _exit_status():
        if not HAVE_OFFLINEIMAP:
            print('offlineimap not installed: (a) and (b) skipped')
    atexit.register(_exit_status)
    prog = unittest.main(verbosity=2, exit=False)
    ok = prog.result.wasSuccessful()
    if ok and not HAVE_OFFLINEIMAP:
        sys.exit(77)
    sys.exit(0 if ok else 1)
