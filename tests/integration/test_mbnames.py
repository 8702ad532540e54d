#!/usr/bin/env python3
"""[mbnames], --mbnames-prune, --delete-folder, newmail_hook,
OFFLINEIMAPSYNCMODE, -s and -V, against a private Dovecot.

The mbnames output is compared with what offlineimap writes for the same
configuration when Debian's offlineimap3 is installed (skipped otherwise)."""

import json
import os
import shutil
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402

OFFLINEIMAP = os.environ.get('OIMAP_OFFLINEIMAP', '/usr/bin/offlineimap')
USERS = {u: 'pw-' + u for u in ('alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gina',
                                 'hank', 'ivy', 'oalice', 'obob', 'malice', 'mbob', 'judy')}


def message(n, subject='mbnames test'):
    return ('From: Tester <t@example.org>\r\nTo: alice@example.org\r\n'
            'Subject: %s %d\r\nMessage-ID: <mbn-%d-%d@example.org>\r\n'
            'Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nBody %d\r\n'
            % (subject, n, n, os.getpid(), n)).encode()


def read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def section(name, opts):
    return '[%s]\n' % name + ''.join('%s = %s\n' % kv for kv in opts.items() if kv[1] is not None)


class MbnamesTest(util.DovecotTestCase):
    dovecot_args = {'users': USERS}

    def two_accounts(self, base, users=('alice', 'bob'), mbnames=None, general=None,
                     account_opts=None, remote_opts=None):
        """A config with accounts A and B (users[0], users[1]) under base."""
        g = {'accounts': 'A, B', 'metadata': os.path.join(base, 'meta'), 'ui': 'basic'}
        g.update(general or {})
        parts = [section('general', g)]
        for acct, user in zip(('A', 'B'), users):
            a = {'localrepository': acct + '-local', 'remoterepository': acct + '-remote'}
            a.update((account_opts or {}).get(acct, {}))
            parts.append(section('Account ' + acct, a))
            parts.append(section('Repository %s-local' % acct, {
                'type': 'Maildir', 'localfolders': os.path.join(base, 'Mail', acct)}))
            r = {'type': 'IMAP', 'remotehost': self.dv.host, 'remoteport': self.dv.port,
                 'remoteuser': user, 'remotepass': self.dv.users[user], 'ssl': 'no',
                 'starttls': 'no'}
            r.update((remote_opts or {}).get(acct, {}))
            parts.append(section('Repository %s-remote' % acct, r))
        m = {'enabled': 'yes', 'filename': os.path.join(base, 'mailboxes')}
        m.update(mbnames or {})
        parts.append(section('mbnames', m))
        return '\n'.join(parts)

    def fill(self, user, folders):
        for i, f in enumerate(folders):
            self.dv.append(user, f, message(i))

    def oimap(self, args, conf, rc=0, timeout=60, **kw):
        r = util.run_oimap(['-u', 'basic'] + list(args), conf, timeout=timeout, **kw)
        self.assertEqual(r.rc, rc, r.stderr)
        return r

    # -- the mailboxes file ---------------------------------------------------

    def test_default_layout_and_intermediate_files(self):
        self.fill('alice', ['INBOX', 'Sent', 'Lists/dev'])
        self.fill('bob', ['INBOX', 'Archive'])
        conf = self.two_accounts(self.tmp)
        self.oimap(['-o'], conf)
        self.assertEqual(read(os.path.join(self.tmp, 'mailboxes')),
                         'mailboxes +A/INBOX +A/Lists.dev +A/Sent +B/Archive +B/INBOX\n')
        with open(os.path.join(self.tmp, 'meta', 'mbnames', 'A.json')) as f:
            items = json.load(f)
        self.assertEqual(sorted(i['foldername'] for i in items), ['INBOX', 'Lists.dev', 'Sent'])
        self.assertEqual(items[0]['localfolders'], os.path.join(self.tmp, 'Mail', 'A'))
        # Nothing left behind by the atomic writes.
        self.assertEqual(sorted(os.listdir(self.tmp)), ['Mail', 'mailboxes', 'meta'])
        self.assertEqual(sorted(os.listdir(os.path.join(self.tmp, 'meta', 'mbnames'))),
                         ['.lock', 'A.json', 'B.json'])

    def test_dry_run_writes_nothing(self):
        self.fill('carol', ['INBOX'])
        conf = self.two_accounts(self.tmp, users=('carol', 'carol'))
        r = self.oimap(['-o', '--dry-run'], conf)
        self.assertIn('mbnames: would write', r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, 'mailboxes')))

    def test_custom_settings(self):
        self.fill('dave', ['INBOX', 'Trash', 'Junk', 'Work/Reports'])
        conf = self.two_accounts(self.tmp, users=('dave', 'dave'), mbnames={
            'header': '"# generated\\nmailboxes "',
            'peritem': '"%(localfolders)s/%(foldername)s"',
            'sep': '" \\\\\\n  "',
            'footer': '"\\n"',
            'folderfilter': "lambda acct, f: f not in ['Trash', 'Junk'] and "
                            "(acct == 'A' or f == 'INBOX')",
            'sort_keyfunc': "lambda d: (d['foldername'] != 'INBOX', d['accountname'], "
                            "d['foldername'])"})
        self.oimap(['-o'], conf)
        a = os.path.join(self.tmp, 'Mail', 'A')
        b = os.path.join(self.tmp, 'Mail', 'B')
        self.assertEqual(read(os.path.join(self.tmp, 'mailboxes')),
                         '# generated\nmailboxes "%s/INBOX" \\\n  "%s/INBOX" \\\n  '
                         '"%s/Work.Reports"\n' % (a, b, a))

    def test_pythonfile_folderfilter(self):
        """offlineimap's documented folderfilter = mbnames_folderfilter, a
        function of pythonfile (run by the python3 helper)."""
        self.fill('judy', ['INBOX', 'Sent', 'Spam'])
        py = util.write_file(os.path.join(self.tmp, 'mb.py'),
                             'def mbnames_folderfilter(accountname, foldername):\n'
                             '    allowed = {"A": ["INBOX", "Sent"]}\n'
                             '    return foldername in allowed.get(accountname, ["INBOX"])\n')
        conf = self.two_accounts(self.tmp, users=('judy', 'judy'), general={'pythonfile': py},
                                 mbnames={'folderfilter': 'mbnames_folderfilter',
                                          'incremental': 'yes'})
        self.oimap(['-o'], conf)
        self.assertEqual(read(os.path.join(self.tmp, 'mailboxes')),
                         'mailboxes +A/INBOX +A/Sent +B/INBOX\n')

    def test_bad_expression_is_a_config_error(self):
        conf = self.two_accounts(self.tmp, mbnames={'sort_keyfunc': 'lambda: 1'})
        r = self.oimap(['-o'], conf, rc=2)
        self.assertRegex(r.stderr, r':\d+: \[mbnames\] sort_keyfunc: expected a lambda')

    def test_incremental(self):
        """incremental = yes: the file is rewritten after each account (B's
        presynchook sees A's entries); no: only once all are done."""
        self.fill('erin', ['INBOX'])
        for inc in ('yes', 'no'):
            base = os.path.join(self.tmp, inc)
            snap = os.path.join(base, 'snapshot')
            mb = os.path.join(base, 'mailboxes')
            conf = self.two_accounts(base, users=('erin', 'erin'), mbnames={'incremental': inc},
                                     account_opts={'B': {
                                         'presynchook': 'cat %s > %s 2>/dev/null; true'
                                                        % (mb, snap)}})
            self.oimap(['-o'], conf)
            self.assertEqual(read(mb), 'mailboxes +A/INBOX +B/INBOX\n')
            self.assertEqual(read(snap), 'mailboxes +A/INBOX\n' if inc == 'yes' else '', inc)

    def test_partial_sync_adds_full_sync_replaces(self):
        self.fill('frank', ['INBOX', 'Sent'])
        conf = self.two_accounts(self.tmp, users=('frank', 'frank'))
        mb = os.path.join(self.tmp, 'mailboxes')
        self.oimap(['-o'], conf)
        self.assertEqual(read(mb), 'mailboxes +A/INBOX +A/Sent +B/INBOX +B/Sent\n')
        self.oimap(['-o', '-f', 'INBOX'], conf)
        self.assertEqual(read(mb), 'mailboxes +A/INBOX +A/Sent +B/INBOX +B/Sent\n')
        conf2 = conf.replace('[Repository A-remote]',
                             "[Repository A-remote]\nfolderfilter = lambda f: f == 'INBOX'")
        self.oimap(['-o'], conf2)
        self.assertEqual(read(mb), 'mailboxes +A/INBOX +B/INBOX +B/Sent\n')

    def test_failed_account_keeps_its_list(self):
        self.fill('gina', ['INBOX', 'Sent'])
        conf = self.two_accounts(self.tmp, users=('gina', 'gina'))
        mb = os.path.join(self.tmp, 'mailboxes')
        self.oimap(['-o'], conf)
        bad = conf.replace('remotepass = pw-gina', 'remotepass = wrong', 1)
        self.oimap(['-o'], bad, rc=1)
        self.assertEqual(read(mb), 'mailboxes +A/INBOX +A/Sent +B/INBOX +B/Sent\n')

    def test_symlinked_file_and_mode_kept(self):
        self.fill('hank', ['INBOX'])
        target = os.path.join(self.tmp, 'dotfiles', 'mailboxes')
        util.write_file(target, 'old\n', mode=0o640)
        link = os.path.join(self.tmp, 'mailboxes')
        os.symlink(target, link)
        conf = self.two_accounts(self.tmp, users=('hank', 'hank'))
        self.oimap(['-o'], conf)
        self.assertTrue(os.path.islink(link))
        self.assertEqual(read(target), 'mailboxes +A/INBOX +B/INBOX\n')
        self.assertEqual(os.stat(target).st_mode & 0o777, 0o640)

    def test_prune(self):
        self.fill('ivy', ['INBOX'])
        conf = self.two_accounts(self.tmp, users=('ivy', 'ivy'))
        mdir = os.path.join(self.tmp, 'meta', 'mbnames')
        mb = os.path.join(self.tmp, 'mailboxes')
        self.oimap(['-o'], conf)
        util.write_file(os.path.join(mdir, 'Old.json'), json.dumps(
            [{'accountname': 'Old', 'foldername': 'INBOX', 'localfolders': '/x'}]))
        self.oimap(['-o', '-a', 'A'], conf)
        self.assertEqual(read(mb), 'mailboxes +A/INBOX +B/INBOX +Old/INBOX\n')
        r = self.oimap(['--mbnames-prune', '--dry-run'], conf)
        self.assertIn('would remove', r.stderr)
        self.assertTrue(os.path.exists(os.path.join(mdir, 'Old.json')))
        r = self.oimap(['--mbnames-prune'], conf)
        self.assertFalse(os.path.exists(os.path.join(mdir, 'Old.json')))
        self.assertEqual(read(mb), 'mailboxes +A/INBOX +B/INBOX\n')
        r = self.oimap(['--mbnames-prune'], conf)
        self.assertIn('no intermediate file to remove', r.stderr)
        # -a narrows the accounts, as in offlineimap: B's list goes.
        self.oimap(['--mbnames-prune', '-a', 'A'], conf)
        self.assertEqual(sorted(os.listdir(mdir)), ['.lock', 'A.json'])
        self.assertEqual(read(mb), 'mailboxes +A/INBOX\n')
        # Disabled: every intermediate file goes, the output file stays.
        self.oimap(['--mbnames-prune', '-k', 'mbnames:enabled=no'], conf)
        self.assertEqual(os.listdir(mdir), ['.lock'])
        self.assertEqual(read(mb), 'mailboxes +A/INBOX\n')

    @unittest.skipUnless(os.access(OFFLINEIMAP, os.X_OK), 'offlineimap3 not installed')
    def test_same_as_offlineimap(self):
        """The same configuration through offlineimap and oimap: the same
        mailboxes file, the same intermediate items."""
        folders = ['INBOX', 'Sent', 'Lists/dev', 'Entwürfe', 'Trash', 'Spam']
        py = util.write_file(os.path.join(self.tmp, 'mb.py'),
                             'def mbnames_folderfilter(accountname, foldername):\n'
                             '    return foldername != "Spam"\n')
        mbn = {'header': '"mailboxes "', 'peritem': '"+%(accountname)s/%(foldername)s"',
               'sep': '" "', 'footer': '"\\n"',
               'folderfilter': "lambda a, f: f != 'Trash' and mbnames_folderfilter(a, f)",
               'sort_keyfunc': "lambda d: (d['foldername'] != 'INBOX', d['foldername'], "
                               "d['accountname'])"}
        out = {}
        for tool, users in (('offlineimap', ('oalice', 'obob')), ('oimap', ('malice', 'mbob'))):
            for u in users:
                self.fill(u, folders)
            base = os.path.join(self.tmp, tool)
            os.makedirs(os.path.join(base, 'meta'))
            conf = self.two_accounts(base, users=users, mbnames=mbn, general={'pythonfile': py})
            if tool == 'offlineimap':
                path = util.write_config(conf)
                r = util.run_cmd([OFFLINEIMAP, '-o', '-u', 'basic', '-c', path], timeout=120,
                                 env=util.oimap_env())
                self.assertEqual(r.rc, 0, r.stderr + r.stdout)
            else:
                self.oimap(['-o'], conf)
            items = []
            for acct in ('A', 'B'):
                with open(os.path.join(base, 'meta', 'mbnames', acct + '.json')) as f:
                    items += [(i['accountname'], i['foldername'],
                               os.path.relpath(i['localfolders'], base)) for i in json.load(f)]
            out[tool] = (read(os.path.join(base, 'mailboxes')), sorted(items))
        self.assertEqual(out['offlineimap'][0], out['oimap'][0])
        self.assertEqual(out['offlineimap'][1], out['oimap'][1])
        self.assertIn('+A/Entw&APw-rfe', out['oimap'][0])
        self.assertNotIn('Spam', out['oimap'][0])
        self.assertNotIn('Trash', out['oimap'][0])


class DeleteFolderTest(util.DovecotTestCase):
    dovecot_args = {'users': {'alice': 'pw-alice', 'bob': 'pw-bob', 'carol': 'pw-carol'}}

    def conf(self, user, remote=None):
        root = os.path.join(self.tmp, 'Mail')
        return root, util.offlineimap_config(self.dv, root, user=user, security='plain',
                                             account='test', metadata=os.path.join(
                                                 self.tmp, 'meta'), remote=remote)

    def test_refusals(self):
        root, conf = self.conf('alice')
        two = conf.replace('accounts = test', 'accounts = test, other') + (
            '[Account other]\nlocalrepository = test-local\nremoterepository = test-remote\n')
        r = util.run_oimap(['--delete-folder', 'Old'], two)
        self.assertEqual(r.rc, 2, r.stderr)
        self.assertIn('choose it with -a (configured: test, other)', r.stderr)
        for name in ('INBOX', 'inbox', 'A*'):
            r = util.run_oimap(['--delete-folder', name], conf)
            self.assertEqual(r.rc, 2, r.stderr)
        r = util.run_oimap(['--delete-folder', 'Nope'], conf)
        self.assertEqual(r.rc, 1, r.stderr)
        self.assertIn("there is no folder 'Nope' on the server", r.stderr)
        _, ro = self.conf('alice', remote={'readonly': 'yes'})
        r = util.run_oimap(['--delete-folder', 'Old'], ro)
        self.assertEqual(r.rc, 2, r.stderr)
        self.assertIn('readonly = yes', r.stderr)

    def test_delete(self):
        self.dv.append('bob', 'INBOX', message(1))
        self.dv.append('bob', 'Old', message(2))
        self.dv.append('bob', 'Old/Sub', message(3))
        root, conf = self.conf('bob')
        r = util.run_oimap(['-o', '-u', 'basic'], conf)
        self.assertEqual(r.rc, 0, r.stderr)
        # The local copy still holds the message: refused, nothing changed.
        r = util.run_oimap(['--delete-folder', 'Old', '-a', 'test'], conf)
        self.assertEqual(r.rc, 1, r.stderr)
        self.assertIn('move the local folder away first', r.stderr)
        self.assertIn('Old', self.dv.list_folders('bob'))
        # Moved away: a dry run says what it would do, then the real thing.
        shutil.move(os.path.join(root, 'Old'), os.path.join(self.tmp, 'Old-saved'))
        r = util.run_oimap(['--delete-folder', 'Old', '--dry-run'], conf)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertIn("would try to remove 'Old'", r.stderr)
        self.assertIn('Old', self.dv.list_folders('bob'))
        r = util.run_oimap(['--delete-folder', 'Old'], conf)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertIn("Folder 'Old' deleted.", r.stderr)
        self.assertNotIn('Old', self.dv.list_folders('bob'))
        # The next sync neither recreates it nor complains about it.
        r = util.run_oimap(['-o', '-u', 'basic'], conf)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertNotIn('Old', self.dv.list_folders('bob'))
        self.assertNotIn('gone from the server', r.stderr)
        self.assertIn('Old/Sub', self.dv.list_folders('bob'))
        self.assertFalse(os.path.exists(os.path.join(root, 'Old')))

    def test_empty_local_copy_removed_and_createfolders_no(self):
        self.dv.create_folder('carol', 'Empty')
        self.dv.append('carol', 'Kept', message(4))
        root, conf = self.conf('carol')
        self.assertEqual(util.run_oimap(['-o'], conf).rc, 0)
        self.assertTrue(os.path.isdir(os.path.join(root, 'Empty', 'cur')))
        r = util.run_oimap(['--delete-folder', 'Empty'], conf)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(root, 'Empty')))
        # createfolders = no: the local copy is kept, and stays local.
        _, noc = self.conf('carol', remote={'createfolders': 'no'})
        r = util.run_oimap(['--delete-folder', 'Kept'], noc)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertEqual(len(os.listdir(os.path.join(root, 'Kept', 'new'))) +
                         len(os.listdir(os.path.join(root, 'Kept', 'cur'))), 1)
        r = util.run_oimap(['-o', '-u', 'basic'], noc)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertNotIn('Kept', self.dv.list_folders('carol'))
        self.assertNotIn('Empty', self.dv.list_folders('carol'))


class HooksTest(util.DovecotTestCase):
    dovecot_args = {'users': {'alice': 'pw-alice', 'bob': 'pw-bob', 'carol': 'pw-carol'}}

    def conf(self, user, remote=None, account_opts=None, general=None):
        root = os.path.join(self.tmp, 'Mail')
        return root, util.offlineimap_config(self.dv, root, user=user, security='plain',
                                             metadata=os.path.join(self.tmp, 'meta'),
                                             remote=remote, account_opts=account_opts,
                                             general=general)

    def lines(self, path):
        return read(path).split() if os.path.exists(path) else []

    def test_newmail_hook_only_for_new_unseen_inbox_mail(self):
        log = os.path.join(self.tmp, 'hook.log')
        argv_log = os.path.join(self.tmp, 'hook2.log')
        root, conf = self.conf('alice', remote={
            'newmail_hook': 'lambda: os.system("echo hook >> " + %r)' % log})
        self.dv.append('alice', 'INBOX', message(1))
        r = util.run_oimap(['-o', '-u', 'basic'], conf)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertIn('new mail: running newmail_hook', r.stderr)
        self.assertEqual(self.lines(log), ['hook'])
        for what in ('nothing new', 'seen', 'other folder'):
            if what == 'seen':
                self.dv.append('alice', 'INBOX', message(2), flags=('\\Seen',))
            elif what == 'other folder':
                self.dv.append('alice', 'Lists', message(3))
            r = util.run_oimap(['-o', '-u', 'basic'], conf)
            self.assertEqual(r.rc, 0, r.stderr)
            self.assertEqual(self.lines(log), ['hook'], what)
        self.dv.append('alice', 'INBOX', message(4))
        self.dv.append('alice', 'INBOX', message(5))
        r = util.run_oimap(['-o', '-u', 'basic', '--dry-run'], conf)
        self.assertEqual(self.lines(log), ['hook'], 'dry run')
        # subprocess.call's list form, no shell.
        _, conf2 = self.conf('alice', remote={
            'newmail_hook': "lambda: subprocess.call(['sh', '-c', 'echo $0 >> %s', 'argv'])"
                            % argv_log})
        r = util.run_oimap(['-o', '-u', 'basic'], conf2)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertEqual(self.lines(argv_log), ['argv'], 'once for two messages')

    def test_newmail_hook_through_pythonfile(self):
        """Other forms go to python3 with [general] pythonfile, as in
        offlineimap; a name that is not defined is refused at start."""
        log = os.path.join(self.tmp, 'py.log')
        py = util.write_file(os.path.join(self.tmp, 'hooks.py'),
                             'def notify_me():\n    with open(%r, "a") as f:\n'
                             '        f.write("called\\n")\n' % log)
        _, conf = self.conf('carol', remote={'newmail_hook': 'notify_me'},
                            general={'pythonfile': py})
        self.dv.append('carol', 'INBOX', message(1))
        r = util.run_oimap(['-o', '-u', 'basic'], conf)
        self.assertEqual(r.rc, 0, r.stderr)
        self.assertEqual(self.lines(log), ['called'])
        _, conf = self.conf('carol', remote={'newmail_hook': 'not_defined'})
        r = util.run_oimap(['-o', '-u', 'basic'], conf)
        self.assertEqual(r.rc, 2, r.stderr)
        self.assertRegex(r.stderr, r':\d+: \[Repository test-remote\] newmail_hook: oimap runs')
        self.assertIn('not_defined', r.stderr)

    def test_syncmode_full_quick_idle(self):
        modes = os.path.join(self.tmp, 'modes')
        hooks = {'presynchook': 'echo pre-$OFFLINEIMAPSYNCMODE >> %s' % modes,
                 'postsynchook': 'echo post-$OFFLINEIMAPSYNCMODE >> %s' % modes}
        root, conf = self.conf('bob', account_opts=hooks)
        self.assertEqual(util.run_oimap(['-o'], conf).rc, 0)
        self.assertEqual(util.run_oimap(['-o', '-q'], conf).rc, 0)
        self.assertEqual(self.lines(modes), ['pre-full', 'post-full', 'pre-quick', 'post-quick'])
        os.unlink(modes)
        hooks['autorefresh'] = '10'
        root, conf = self.conf('bob', account_opts=hooks, remote={'idlefolders': "['INBOX']"})
        p = util.start_oimap(['-u', 'basic'], conf, cwd=self.tmp)
        try:
            self.assertTrue(p.wait_for_output('watching 1 folder', 30), p.stderr)
            deadline = time.monotonic() + 10
            while self.lines(modes).count('post-idle') < 1 and time.monotonic() < deadline:
                time.sleep(0.05)  # the watcher's first sync (IDLE_EV_UP)
            n = self.lines(modes).count('post-idle')
            self.dv.deliver_doveadm('bob', 'INBOX', message(9))
            deadline = time.monotonic() + 15
            while self.lines(modes).count('post-idle') <= n and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            p.signal(15)
            p.wait(20)
        got = self.lines(modes)
        self.assertEqual(got[:2], ['pre-full', 'post-full'], got)
        self.assertGreater(got.count('post-idle'), n, got)
        self.assertEqual(set(got[2:]), {'pre-idle', 'post-idle'}, got)


class CliTest(unittest.TestCase):
    def test_version(self):
        r = util.run_oimap(['--version'])
        self.assertEqual(r.rc, 0)
        self.assertRegex(r.stdout, r'^oimap \d+\.\d+\.\d+\n$')
        r = util.run_oimap(['-V'])
        self.assertEqual(r.rc, 0)
        self.assertRegex(r.stdout, r'^oimap \d+\.\d+\.\d+, libuv \d+\.\d+\.\d+, mbed TLS '
                                   r'\d+\.\d+\.\d+, LMDB \d+\.\d+\.\d+\n$')

    @unittest.skipUnless(os.geteuid() == 0 and not os.path.exists('/dev/log'),
                         'needs root and no syslog daemon on /dev/log')
    def test_syslog_besides_the_ui(self):
        """-s: the lines go to syslog and still to the terminal UI."""
        tmp = util.tmpdir('syslog')
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            s.bind('/dev/log')
            s.settimeout(5)
            conf = ('[general]\naccounts = A\nmetadata = %s/meta\n[Account A]\n'
                    'localrepository = L\nremoterepository = R\n'
                    '[Repository L]\ntype = Maildir\nlocalfolders = %s/Mail\n'
                    '[Repository R]\ntype = IMAP\nremotehost = 127.0.0.1\nremoteport = 1\n'
                    'remoteuser = u\nremotepass = p\nssl = no\nstarttls = no\n' % (tmp, tmp))
            r = util.run_oimap(['-o', '-s', '-u', 'basic'], conf)
            self.assertEqual(r.rc, 1)
            self.assertIn('Account A', r.stderr)
            got = []
            s.settimeout(0.5)
            try:
                while True:
                    got.append(s.recv(65536).decode(errors='replace'))
            except socket.timeout:
                pass
            text = '\n'.join(got)
            self.assertRegex(text, r'oimap\[\d+\]: Account A')
        finally:
            s.close()
            os.unlink('/dev/log')


if __name__ == '__main__':
    util.main()
