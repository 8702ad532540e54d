#!/usr/bin/env python3
"""type = Gmail and GmailMaildir with synclabels, against the scripted fake
Gmail server (tests/harness/fakegmail.py: no Gmail is reachable from here).

Labels travel as offlineimap stores them: in the X-Keywords header of the
local message (comma-separated, sorted), system labels as "\\Inbox",
user labels decoded from modified UTF-7.
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from fakegmail import FakeGmail  # noqa: E402

USER, PASS = 'me@gmail.com', 'app pass'
STORE_RE = re.compile(rb'^UID STORE \S+ [+-]X-GM-LABELS')


def msg(n, extra=b''):
    return (b'From: a@example.org\r\nSubject: message %d\r\nMessage-ID: <%d@example.org>\r\n'
            % (n, n) + extra + b'\r\nbody of message %d\r\n' % n)


def config(g, root, synclabels=True, local_type='GmailMaildir', account=None, remote=None):
    acct = {'localrepository': 'L', 'remoterepository': 'R'}
    if synclabels:
        acct['synclabels'] = 'yes'
    acct.update(account or {})
    rem = {'type': 'Gmail', 'remoteuser': USER, 'remotepass': PASS}
    if g is not None:
        rem.update({'remotehost': g.host, 'remoteport': g.port, 'ssl': 'no', 'starttls': 'no',
                    'folderfilter': "lambda f: f in ['INBOX', 'Work']"})
    rem.update(remote or {})
    sect = lambda name, d: '[%s]\n' % name + ''.join(  # noqa: E731
        '%s = %s\n' % (k, v) for k, v in d.items() if v is not None)
    return (sect('general', {'accounts': 'gm', 'metadata': os.path.join(root, 'meta'),
                             'ui': 'basic'}) +
            sect('Account gm', acct) +
            sect('Repository L', {'type': local_type, 'localfolders': os.path.join(root, 'mail')}) +
            sect('Repository R', rem))


def sync(conf, *args):
    r = util.run_oimap(['-o', '-u', 'basic'] + list(args), conf, timeout=60)
    return r


def local_files(root, folder='INBOX'):
    """{Message-ID: (path, bytes)} of a local folder."""
    out = {}
    for p in glob.glob(os.path.join(root, 'mail', folder, '*', '*')):
        with open(p, 'rb') as f:
            data = f.read()
        m = re.search(rb'^Message-ID: <(\d+)@', data, re.M | re.I)
        out[int(m.group(1))] = (p, data)
    return out


def keywords(data):
    """Values of every X-Keywords field (folded lines joined)."""
    head = data.split(b'\n\n', 1)[0]
    vals = re.findall(rb'^X-Keywords:(.*(?:\n[ \t].*)*)', head, re.M | re.I)
    return [re.sub(rb'\s*\n\s*', b' ', v).strip().decode() for v in vals]


def edit_keywords(path, new_value):
    """Rewrite the local message's X-Keywords the way a mail client would."""
    with open(path, 'rb') as f:
        data = f.read()
    head, body = data.split(b'\n\n', 1)
    head = re.sub(rb'^X-Keywords:.*\n?', b'', head + b'\n', flags=re.M | re.I).rstrip(b'\n')
    head += b'\nX-Keywords: ' + new_value.encode()
    with open(path, 'wb') as f:
        f.write(head + b'\n\n' + body)


class GmailLabels(unittest.TestCase):
    def setUp(self):
        self.tmp = util.tmpdir(self.id().rsplit('.', 1)[-1])
        self.g = FakeGmail(user=USER, password=PASS)
        self.addCleanup(self.g.stop)

    def stores(self, since=0):
        return [c for c in self.g.commands[since:] if STORE_RE.match(c)]

    def test_labels_arrive_in_x_keywords(self):
        g = self.g
        g.add('INBOX', msg(1), flags={'\\Seen'}, labels={'Work', '\\Important', '\\Inbox'})
        g.add('INBOX', msg(2, b'X-Keywords: stale,old\r\n'), labels={'Proj&AMk-t&AOk-', 'a b'})
        g.add('INBOX', msg(3), labels=set())
        conf = config(g, self.tmp)
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertIn('X-GM-LABELS', ' '.join(c.decode() for c in g.commands))
        files = local_files(self.tmp)
        self.assertEqual(keywords(files[1][1]), ['Work,\\Important,\\Inbox'])
        self.assertEqual(keywords(files[2][1]), ['ProjÉté,a b'], 'stale header replaced')
        self.assertEqual(keywords(files[3][1]), [], 'no labels, no header')
        # offlineimap's names, flags kept; LF line ends; the header ends the header block
        self.assertRegex(os.path.basename(files[1][0]), r',U=1,FMD5=[0-9a-f]{32}:2,S$')
        self.assertIn(b'Message-ID: <1@example.org>\nX-Keywords: Work,\\Important,\\Inbox\n\n'
                      b'body of message 1\n', files[1][1])
        # a second run changes nothing and stores nothing
        n = len(g.commands)
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertEqual(self.stores(n), [])
        self.assertEqual(local_files(self.tmp), files)
        self.assertNotIn('labels-', r.stdout + r.stderr)

    def test_server_change_rewrites_header(self):
        g = self.g
        uid = g.add('INBOX', msg(1), flags={'\\Flagged'}, labels={'Work'})
        conf = config(g, self.tmp)
        self.assertEqual(sync(conf).rc, 0)
        path, before = local_files(self.tmp)[1]
        g.set_labels('INBOX', uid, {'Work', 'Later', '\\Starred'})
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertRegex(r.stdout + r.stderr, r'labels-remote 0, labels-local 1')
        path2, after = local_files(self.tmp)[1]
        self.assertEqual(path2, path, 'same Maildir name and flags')
        self.assertEqual(keywords(after), ['Later,Work,\\Starred'])
        self.assertEqual(after.replace(b'Later,Work,\\Starred', b'Work'), before,
                         'nothing else in the file changed')
        self.assertEqual(self.stores(), [])
        # removing every label removes the header
        g.set_labels('INBOX', uid, set())
        self.assertEqual(sync(conf).rc, 0)
        self.assertEqual(keywords(local_files(self.tmp)[1][1]), [])
        self.assertFalse(os.listdir(os.path.join(self.tmp, 'mail', 'INBOX', 'tmp')))

    def test_local_edit_goes_to_server(self):
        g = self.g
        uid = g.add('INBOX', msg(1), labels={'Work', 'Old', '\\Important'})
        conf = config(g, self.tmp)
        self.assertEqual(sync(conf).rc, 0)
        path, _ = local_files(self.tmp)[1]
        edit_keywords(path, 'Work,\\Important,New label,Été')
        n = len(g.commands)
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertEqual(g.labels('INBOX', uid), {'Work', '\\Important', 'New label', '&AMk-t&AOk-'})
        self.assertEqual(sorted(self.stores(n)), sorted([
            b'UID STORE 1 +X-GM-LABELS ("&AMk-t&AOk-")', b'UID STORE 1 +X-GM-LABELS ("New label")',
            b'UID STORE 1 -X-GM-LABELS ("Old")']))
        self.assertRegex(r.stdout + r.stderr, r'labels-remote 1, labels-local 0')
        # converged: the next runs store nothing (the first may re-list after our own change)
        for _ in range(2):
            n = len(g.commands)
            self.assertEqual(sync(conf).rc, 0)
            self.assertEqual(self.stores(n), [])

    def test_both_sides_changed_merge_per_label(self):
        g = self.g
        uid = g.add('INBOX', msg(1), labels={'A', 'B', 'C'})
        conf = config(g, self.tmp)
        self.assertEqual(sync(conf).rc, 0)
        path, _ = local_files(self.tmp)[1]
        g.set_labels('INBOX', uid, {'A', 'B', 'C', 'Remote'})  # added on the server
        edit_keywords(path, 'A,C,Local')                         # B removed, Local added here
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertEqual(g.labels('INBOX', uid), {'A', 'C', 'Local', 'Remote'})
        self.assertEqual(keywords(local_files(self.tmp)[1][1]), ['A,C,Local,Remote'])

    def test_ignorelabels(self):
        g = self.g
        uid = g.add('INBOX', msg(1), labels={'Work', '\\Important', '\\Inbox'})
        conf = config(g, self.tmp, account={'ignorelabels': '\\Inbox, \\Important'})
        self.assertEqual(sync(conf).rc, 0)
        path, data = local_files(self.tmp)[1]
        self.assertEqual(keywords(data), ['Work'])
        # an ignored label written locally is neither sent nor removed from the file
        edit_keywords(path, 'Work,\\Starred,\\Important')
        n = len(g.commands)
        self.assertEqual(sync(conf).rc, 0)
        self.assertEqual(self.stores(n), [b'UID STORE 1 +X-GM-LABELS ("\\\\Starred")'])
        self.assertEqual(g.labels('INBOX', uid), {'Work', '\\Starred', '\\Important', '\\Inbox'})
        # a server change rewrites the header and keeps the ignored label there
        g.set_labels('INBOX', uid, {'\\Starred', '\\Important', '\\Inbox'})
        self.assertEqual(sync(conf).rc, 0)
        self.assertEqual(keywords(local_files(self.tmp)[1][1]), ['\\Important,\\Starred'])

    def test_upload_carries_labels(self):
        g = self.g
        g.add('INBOX', msg(1), labels={'Work'})
        conf = config(g, self.tmp)
        self.assertEqual(sync(conf).rc, 0)
        new = os.path.join(self.tmp, 'mail', 'INBOX', 'new', '1700000000.M1P1.host')
        with open(new, 'wb') as f:
            f.write(msg(2, b'X-Keywords: Travel,\\Starred\r\n').replace(b'\r\n', b'\n'))
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stderr)
        uids = [u for u, _, _, body in g.messages('INBOX') if b'<2@example.org>' in body]
        self.assertEqual(len(uids), 1)
        self.assertEqual(g.labels('INBOX', uids[0]), {'Travel', '\\Starred'})
        self.assertEqual(keywords(local_files(self.tmp)[2][1]), ['Travel,\\Starred'])

    def test_dry_run_changes_nothing(self):
        g = self.g
        uid = g.add('INBOX', msg(1), labels={'Work'})
        conf = config(g, self.tmp)
        self.assertEqual(sync(conf).rc, 0)
        path, data = local_files(self.tmp)[1]
        g.set_labels('INBOX', uid, {'Work', 'Later'})
        r = sync(conf, '--dry-run')
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertIn('[dry-run] gm: folder INBOX: labels-remote 0, labels-local 1',
                      r.stdout + r.stderr)
        self.assertEqual(local_files(self.tmp)[1], (path, data))

    def test_plain_gmail_syncs_like_imap(self):
        g = self.g
        uid = g.add('INBOX', msg(1, b'X-Keywords: kept\r\n'), labels={'Work'})
        keep = g.add('INBOX', msg(4), labels={'Work'})
        g.add('Work', msg(2), flags={'\\Seen'})
        conf = config(g, self.tmp, synclabels=False, local_type='Maildir')
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertNotIn('X-GM-LABELS', ' '.join(c.decode() for c in g.commands))
        files = local_files(self.tmp)
        self.assertEqual(keywords(files[1][1]), ['kept'], 'the message as the server has it')
        self.assertEqual(len(local_files(self.tmp, 'Work')), 1)
        # flags and deletions travel as with IMAP
        path = files[1][0]
        os.rename(path, path + 'FS')
        new = os.path.join(self.tmp, 'mail', 'Work', 'new', '1700000000.M2P2.host')
        with open(new, 'wb') as f:
            f.write(msg(3).replace(b'\r\n', b'\n'))
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stderr)
        m = g.msg('INBOX', uid)
        self.assertEqual(m.flags, {'\\Flagged', '\\Seen'})
        self.assertEqual(len(g.messages('Work')), 2)
        os.unlink(local_files(self.tmp)[1][0])
        self.assertEqual(sync(conf).rc, 0)
        self.assertEqual([u for u, _, _, _ in g.messages('INBOX')], [keep])

    def test_info_shows_gmail_defaults(self):
        unshare = shutil.which('unshare')
        if not unshare or subprocess.run([unshare, '-n', 'true']).returncode != 0:
            self.skipTest('needs unshare -n (no network namespace): --info would resolve '
                          'imap.gmail.com')
        conf = util.write_config(config(None, self.tmp, account={
            'ignorelabels': '\\Inbox, \\Important'}))
        argv = [unshare, '-n', util.oimap_bin(), '-c', conf, '--info']
        r = util.run_cmd(argv, env=util.oimap_env(), timeout=60)
        out = r.stdout + r.stderr
        for want in ('remote repository: R (Gmail)', 'host: imap.gmail.com', 'port: 993',
                     'TLS: implicit TLS',
                     'trashfolder: [Gmail]/Trash, spamfolder: [Gmail]/Spam',
                     'synclabels: yes, labelsheader: X-Keywords',
                     'ignorelabels: \\Inbox, \\Important',
                     'local repository: L (GmailMaildir)'):
            self.assertIn(want, out)
        self.assertNotIn('not implemented', out)
        # overriding a default
        r = util.run_cmd([unshare, '-n', util.oimap_bin(), '-c', conf, '--info', '-k',
                          'Repository_R:trashfolder=[Gmail]/Papierkorb'],
                         env=util.oimap_env(), timeout=60)
        self.assertIn('trashfolder: [Gmail]/Papierkorb', r.stdout)

    def test_synclabels_needs_gmailmaildir(self):
        g = self.g
        g.add('INBOX', msg(1), labels={'Work'})
        r = sync(config(g, self.tmp, local_type='Maildir'))
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertIn('labels are synced between a remote repository of type Gmail and a local '
                      'one of type GmailMaildir only', r.stderr)
        self.assertEqual(keywords(local_files(self.tmp)[1][1]), [])


if __name__ == '__main__':
    util.main()
