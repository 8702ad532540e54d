#!/usr/bin/env python3
"""offlineimap options real configurations carry, against the private
Dovecot: what a user sees of each.

  subscribedonly      only subscribed folders are synced; an unsubscribed
                      server folder is neither synced nor created again from
                      its local copy; a folder created from a local one is
                      subscribed to
  customflag_x        keywords <-> Maildir letters both ways; a customflag
                      naming $Forwarded takes it from P (as in offlineimap)
  filterheaders       the fields are not in the server's copy of an upload
                      (every occurrence, any case, continuation lines), the
                      body and the local file untouched
  startdate           remote: older server mail is not downloaded; at the
                      first sync the other side must be empty (the folder
                      fails otherwise); with maxage: a configuration error
  copy_ignore_eval    the UIDs it names are never downloaded
  restoreatime        new/ and cur/ keep their access times
  retrycount          a folder whose connection dropped is synced again on a
                      new connection (retrycount 0: it fails)
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
from faultproxy import Fault, FaultProxy  # noqa: E402
from test_sync import (TUID_RE, letters_of, local_files, local_path, make_config,  # noqa: E402
                       set_local_flags, summaries, sync, uid_of)

DAY = 86400


def msg(subject, headers=b'', body=b'Hello.\n', eol=b'\n'):
    """A small message; headers (LF-separated) go after Subject."""
    text = (b'From: a@example.org\nTo: b@example.org\nSubject: ' + subject.encode() + b'\n' +
            b'Message-ID: <' + subject.encode().replace(b' ', b'.') + b'@opts>\n' + headers +
            b'\n' + body)
    return text.replace(b'\n', eol)


def local_folder_names(root):
    return sorted(corpus.maildir_folders(root))


def write_local(root, folder, name, data, sub='new'):
    d = local_path(root, folder)
    for s in ('cur', 'new', 'tmp'):
        os.makedirs(os.path.join(d, s), exist_ok=True)
    with open(os.path.join(d, sub, name), 'wb') as f:
        f.write(data)
    return os.path.join(d, sub, name)


class TestOptions(util.DovecotTestCase):
    dovecot_args = {'users': {'o%d' % i: 'pw-%d' % i for i in range(1, 12)}}

    def conf(self, user, **kw):
        return make_config(self.dv, os.path.join(self.tmp, 'mail'), user, **kw)

    @property
    def root(self):
        return os.path.join(self.tmp, 'mail')

    def sync_ok(self, conf, *args):
        r = sync(conf, *args)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        self.assertNotIn('not implemented', r.stdout + r.stderr)
        return r

    # -- subscribedonly ----------------------------------------------------------

    def test_subscribedonly(self):
        user = 'o1'
        with self.dv.session(user) as s:
            for f in ('Work', 'Old', 'Lists/dev'):
                s.create_folder(f)
                s.append(f, msg('in ' + f))
            s.append('INBOX', msg('in INBOX'))
            for f in ('INBOX', 'Lists/dev', 'Ghost'):  # Ghost: subscribed, does not exist
                s.command('SUBSCRIBE', '"%s"' % f)
        # a local copy of the unsubscribed Old, and a folder of our own
        old_file = write_local(self.root, 'Old', '1.x.test', msg('local in Old'))
        write_local(self.root, 'Mine', '2.x.test', msg('local in Mine'))
        conf = self.conf(user, remote={'subscribedonly': 'yes'})
        r = self.sync_ok(conf)
        self.assertEqual(local_folder_names(self.root), ['INBOX', 'Lists.dev', 'Mine', 'Old'])
        self.assertEqual(len(local_files(self.root, 'INBOX')), 1)
        self.assertEqual(len(local_files(self.root, 'Lists/dev')), 1)
        self.assertEqual(local_files(self.root, 'Old'), [old_file], 'Old left alone')
        with self.dv.session(user) as s:
            self.assertEqual(len(s.uids('Old')), 1, 'nothing uploaded to the unsubscribed Old')
            self.assertEqual(len(s.uids('Mine')), 1, 'Mine created and its message uploaded')
            typ, data = s.imap.lsub('""', '*')
            subs = b' '.join(d for d in data if isinstance(d, bytes))
        self.assertIn(b'Mine', subs, 'a folder oimap created is subscribed to')
        self.assertNotIn('Ghost', str(os.listdir(self.root)))
        self.assertNotIn('Work', str(os.listdir(self.root)))
        # nothing left to do, and Old still not touched
        r = self.sync_ok(conf)
        self.assertEqual([v for v in summaries(r.stdout + r.stderr).values() if any(v)], [])
        self.assertNotIn('gone from the server', r.stdout + r.stderr)

    # -- customflag_x ------------------------------------------------------------

    def test_customflags(self):
        user = 'o2'
        conf = self.conf(user, local={'customflag_a': 'work', 'customflag_f': '$Forwarded'})
        with self.dv.session(user) as s:
            for i, fl in enumerate([['work'], ['$Forwarded', '\\Seen'], [], ['$forwarded']]):
                s.append('INBOX', msg('kw %d' % i), fl)
        self.sync_ok(conf)
        files = {uid_of(p): p for p in local_files(self.root, 'INBOX')}
        self.assertEqual({u: letters_of(p) for u, p in files.items()},
                         {1: 'a', 2: 'Sf', 3: '', 4: 'f'})
        # up: letter f is $Forwarded, letter a is work; P is a local letter only
        files[3] = set_local_flags(files[3], {'f', 'a'})
        set_local_flags(files[1], {'a', 'P'})
        r = self.sync_ok(conf)
        with self.dv.session(user) as s:
            fl = s.fetch_flags('INBOX')
        self.assertIn('$Forwarded', fl[3])
        self.assertIn('work', fl[3])
        self.assertNotIn('$Forwarded', fl[1])
        files = {uid_of(p): p for p in local_files(self.root, 'INBOX')}
        self.assertEqual(letters_of(files[1]), 'Pa', 'P stays in the file')
        r = self.sync_ok(conf)
        self.assertEqual([v for v in summaries(r.stdout + r.stderr).values() if any(v)], [],
                         r.stdout + r.stderr)

    # -- filterheaders -----------------------------------------------------------

    def test_filterheaders(self):
        user = 'o3'
        conf = self.conf(user, account_opts={'filterheaders': 'X-Keywords, X-Spam-Status'})
        self.sync_ok(conf)
        hdrs = (b'X-Keywords: work, todo\n'
                b'x-spam-status: No, score=-1.0\n\ttests=ALL_TRUSTED,\n  BAYES_00\n'
                b'X-Kept: yes\n'
                b'X-KEYWORDS: second\n')
        body = b'Body line\nX-Keywords: this is body text\n'
        small = msg('filtered small', hdrs, body)
        # big enough to travel in several chunks of the Maildir reader
        big = msg('filtered big', hdrs, body + b''.join(b'line %06d %s\n' % (i, b'y' * 70)
                                                      for i in range(9000)))
        crlf = msg('filtered crlf', hdrs, body, eol=b'\r\n')
        paths = [write_local(self.root, 'INBOX', n, d)
                 for n, d in (('1.s.test', small), ('2.b.test', big), ('3.c.test', crlf))]
        self.sync_ok(conf)
        with self.dv.session(user) as s:
            recs = s.fetch_all('INBOX', with_body=True)
        self.assertEqual(len(recs), 3)
        want = {}
        for d in (small, big, crlf):
            kept = d.replace(hdrs.replace(b'\n', b'\r\n') if b'\r\n' in d else hdrs,
                             b'X-Kept: yes\r\n' if b'\r\n' in d else b'X-Kept: yes\n', 1)
            want[imaputil.message_id(d)] = re.sub(rb'(?<!\r)\n', b'\r\n', kept)
        for rec in recs:
            got = TUID_RE.sub(b'', rec['body'], count=1)
            self.assertEqual(got, want[rec['message_id']], rec['message_id'])
            head = got.split(b'\r\n\r\n', 1)[0]
            self.assertNotIn(b'keywords', head.lower())
            self.assertNotIn(b'spam', head.lower())
            self.assertIn(b'X-Keywords: this is body text', got)
        # the local files are not rewritten (same content, now named with U=)
        contents = []
        for p in local_files(self.root, 'INBOX'):
            with open(p, 'rb') as f:
                contents.append(f.read())
        contents.sort()
        self.assertEqual(contents, sorted([small, big, crlf]))
        self.assertFalse(any(os.path.exists(p) for p in paths), 'renamed to carry their UIDs')

    # -- startdate ---------------------------------------------------------------

    def test_startdate_remote(self):
        user = 'o4'
        now = int(time.time())
        start = time.strftime('%Y-%m-%d', time.localtime(now - 10 * DAY))
        with self.dv.session(user) as s:
            s.append('INBOX', msg('old mail'), date=now - 30 * DAY)
            s.append('INBOX', msg('new mail'), date=now - 2 * DAY)
        conf = self.conf(user, remote={'startdate': start})
        self.sync_ok(conf)
        files = local_files(self.root, 'INBOX')
        self.assertEqual([uid_of(p) for p in files], [2], 'only the mail since startdate')
        # the local side has no startdate: an old local message goes up
        old = write_local(self.root, 'INBOX', '%d_1.x.test' % (now - 40 * DAY), msg('old local'))
        os.utime(old, (now - 40 * DAY, now - 40 * DAY))
        self.sync_ok(conf)
        with self.dv.session(user) as s:
            self.assertEqual(len(s.uids('INBOX')), 3)
        r = self.sync_ok(conf)
        self.assertEqual([v for v in summaries(r.stdout + r.stderr).values() if any(v)], [])

    def test_startdate_other_side_not_empty(self):
        user = 'o5'
        with self.dv.session(user) as s:
            s.append('INBOX', msg('on the server'))
        write_local(self.root, 'INBOX', '1.x.test', msg('local'))
        start = time.strftime('%Y-%m-%d', time.localtime(time.time() - 5 * DAY))
        conf = self.conf(user, local={'startdate': start})
        r = sync(conf)
        self.assertEqual(r.rc, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r'folder INBOX: to use startdate on Repository test-local, '
                                   r'Repository test-remote must be empty .* holds 1 message')
        with self.dv.session(user) as s:
            self.assertEqual(len(s.uids('INBOX')), 1, 'nothing uploaded')
        self.assertEqual(len(local_files(self.root, 'INBOX')), 1, 'nothing downloaded')

    def test_startdate_with_maxage(self):
        conf = self.conf('o6', account_opts={'maxage': '30'}, remote={'startdate': '2024-01-31'})
        r = util.run_oimap(['--info'], conf)
        self.assertEqual(r.rc, 2, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r'\[Account test\] maxage: set at most one of maxage')

    # -- copy_ignore_eval --------------------------------------------------------

    def test_copy_ignore_eval(self):
        user = 'o7'
        with self.dv.session(user) as s:
            for i in range(4):
                s.append('INBOX', msg('inbox %d' % i))
            s.create_folder('Sent')
            for i in range(2):
                s.append('Sent', msg('sent %d' % i))
        conf = self.conf(user, remote={
            'copy_ignore_eval': "lambda foldername: {'INBOX': [2, 4]}.get(foldername)"})
        self.sync_ok(conf)
        self.assertEqual(sorted(uid_of(p) for p in local_files(self.root, 'INBOX')), [1, 3])
        self.assertEqual(len(local_files(self.root, 'Sent')), 2)
        r = self.sync_ok(conf, '-d', 'sync')
        self.assertEqual([v for v in summaries(r.stdout + r.stderr).values() if any(v)], [])
        with self.dv.session(user) as s:
            self.assertEqual(len(s.uids('INBOX')), 4, 'the ignored messages stay on the server')
        bad = self.conf(user, remote={'copy_ignore_eval': "lambda f: 'not a list'"})
        r = sync(bad)
        self.assertEqual(r.rc, 1)
        self.assertIn('expected a list of UIDs or None', r.stderr)

    # -- restoreatime ------------------------------------------------------------

    def test_restoreatime(self):
        user = 'o8'
        conf = self.conf(user, local={'restoreatime': 'yes'})
        with self.dv.session(user) as s:
            s.append('INBOX', msg('first'))
        self.sync_ok(conf)
        d = local_path(self.root, 'INBOX')
        old = time.time() - 3 * DAY
        for sub in ('new', 'cur'):
            os.utime(os.path.join(d, sub), (old, old))
        with self.dv.session(user) as s:
            s.append('INBOX', msg('second'))
        self.sync_ok(conf)
        for sub in ('new', 'cur'):  # (before anything here reads them)
            st = os.stat(os.path.join(d, sub))
            self.assertAlmostEqual(st.st_atime, old, delta=1, msg=sub)
        self.assertGreater(os.stat(os.path.join(d, 'new')).st_mtime, old + DAY,
                           'new/ got the message: its mtime is not put back')
        self.assertEqual(len(local_files(self.root, 'INBOX')), 2)

    # -- retrycount --------------------------------------------------------------

    def test_retrycount(self):
        for user, retry, want_rc in (('o9', '0', 1), ('o10', '2', 0)):
            with self.dv.session(user) as s:
                for i in range(6):
                    s.append('INBOX', msg('retry %d' % i, body=b'x' * 20000 + b'\n'))
            root = os.path.join(self.tmp, 'mail-' + retry)
            # the first connection dies in the middle of the third message
            with FaultProxy(self.dv.host, self.dv.port,
                            plan=lambda i: Fault('drop', literal=(2, 5000)) if i == 0 else None
                            ) as px:
                # (the proxy's reset is noticed through socktimeout)
                conf = make_config(self.dv, root, user, general={'socktimeout': '3'}, remote={
                    'remoteport': px.port, 'retrycount': retry})
                r = sync(conf)
            self.assertTrue(px.stats[0]['fired'], px.stats)
            self.assertEqual(r.rc, want_rc, r.stdout + r.stderr)
            if want_rc == 0:
                self.assertIn('trying again on a new connection (1 of 2)', r.stderr)
                self.assertEqual(len(local_files(root, 'INBOX')), 6)
            else:
                self.assertNotIn('trying again', r.stderr)


if __name__ == '__main__':
    util.main()
