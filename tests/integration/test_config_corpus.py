#!/usr/bin/env python3
"""A corpus of offlineimaprc files in the shapes real users write
(tests/integration/data/configs/NAME.conf), each run against the private
Dovecot: `oimap --info` must exit 0 (the file parses, every Python
expression is understood, the login works) and `oimap -o` must sync the
folders the file's folderfilter/nametrans/folderincludes select, under the
local names they give (CASES below: local folder directory -> the server
folder its message came from).

Placeholders in the files: @HOST@, @PORT@ (plain + STARTTLS), @TLSPORT@,
@CA@, @PASS@ / @BOBPASS@ (the users' passwords; '%' doubled in .conf files,
as ConfigParser needs, raw elsewhere), @SHA256@ (the server certificate's
fingerprint), @SHA1COLON@ (SHA-1, upper case with colons).  NAME.py, when
present, is the case's pythonfile, copied where the case says.  Each case
runs with its own HOME, so '~' in the files is that directory.

The server has two users: alice with a Dovecot-like tree, bob with a
Gmail-like one ([Gmail]/... under a \\Noselect parent).  Every folder holds
one message whose X-Test-Folder header names the folder (modified UTF-7).

OIMAP_CORPUS_SHOW=1 prints the warnings of each sync (options oimap
accepts but does not implement yet, retired ones).

Also: python3 missing makes a pythonfile config a one-line configuration
error, and passwords from Python never show up in `-d imap` output.
"""

import concurrent.futures
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from util import mutf7_encode  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'configs')
SHOW = bool(os.environ.get('OIMAP_CORPUS_SHOW'))  # print each case's warnings

ALICE = ['INBOX', 'Sent', 'Drafts', 'Trash', 'Junk', 'Archive', 'Archive/2023', 'Lists/dev',
         'Lists/announce', 'Brouillons/Été', 'Old Stuff']
BOB = ['INBOX', '[Gmail]/Sent Mail', '[Gmail]/All Mail', '[Gmail]/Spam', '[Gmail]/Trash',
       '[Gmail]/Drafts', '[Gmail]/Starred', '[Gmail]/Important', 'Receipts', 'Travel/2024']
ETE = mutf7_encode('Été')  # '&AMk-t&AOk-', as local folder names keep it
BE = 'Brouillons/Été'

ALL_ALICE_DOT = {'INBOX': 'INBOX', 'Sent': 'Sent', 'Drafts': 'Drafts', 'Trash': 'Trash',
                 'Junk': 'Junk', 'Archive': 'Archive', 'Archive.2023': 'Archive/2023',
                 'Lists.dev': 'Lists/dev', 'Lists.announce': 'Lists/announce',
                 'Brouillons.' + ETE: BE, 'Old Stuff': 'Old Stuff'}

# name -> {'roots': {local root (relative to HOME): {local folder dir: server folder}},
#          'files': {path in HOME: text, or ('py', NAME.py) to copy}, 'after': [files the
#          run must have created in HOME]}
CASES = {
    '01-gmail-dict-nametrans': {'roots': {'Mail/gmail': {
        'INBOX': 'INBOX', 'sent': '[Gmail]/Sent Mail', 'archive': '[Gmail]/All Mail',
        'drafts': '[Gmail]/Drafts', 'flagged': '[Gmail]/Starred', 'Receipts': 'Receipts',
        'Travel.2024': 'Travel/2024'}}},
    '02-gmail-regex-lower': {'roots': {'.mail/gmail': {
        'inbox': 'INBOX', 'sent_mail': '[Gmail]/Sent Mail', 'all_mail': '[Gmail]/All Mail',
        'travel.2024': 'Travel/2024'}}},
    '03-fastmail': {'files': {'.config/fastmail.pass': '@RAWPASS@\n'},
                    'roots': {'Maildir/fastmail': {
        'INBOX': 'INBOX', 'Sent': 'Sent', 'Drafts': 'Drafts', 'Archive': 'Archive',
        'Archive/2023': 'Archive/2023', 'Lists/dev': 'Lists/dev',
        'Lists/announce': 'Lists/announce', 'Brouillons/' + ETE: BE,
        'Old Stuff': 'Old Stuff'}}},
    '04-dovecot-resub-chain': {'roots': {'Mail/home': {
        'INBOX': 'INBOX', 'Sent': 'Sent', 'Drafts': 'Drafts', 'Archive': 'Archive',
        'Archive-2023': 'Archive/2023', 'lists-dev': 'Lists/dev',
        'lists-announce': 'Lists/announce', 'Brouillons.Et&AOk-': BE,
        'Old_Stuff': 'Old Stuff'}}},
    '05-multi-account-default': {'roots': {
        'mail/personal': {'INBOX': 'INBOX', 'Sent': 'Sent'},
        'mail/work': {'INBOX': 'INBOX', 'Travel.2024': 'Travel/2024'}}},
    '06-pythonfile-get-password': {
        'files': {'.offlineimap.py': ('py',), '.passwords/alice.txt': '@RAWPASS@\n'},
        'roots': {'Maildir': {'inbox': 'INBOX', 'sent': 'Sent', 'drafts': 'Drafts',
                              'archive': 'Archive', 'archive.2023': 'Archive/2023'}}},
    '07-pythonfile-mailpasswd-bytes': {
        'files': {'.config/offlineimap/helpers.py': ('py',), '.mailpass-gmail': '@RAWBOB@\n'},
        'roots': {'mail/gmail': {'INBOX': 'INBOX', 'Receipts': 'Receipts',
                                 '[Gmail].Starred': '[Gmail]/Starred'}}},
    '08-remotepasseval-plain': {'roots': {'Mail/plain': {'INBOX': 'INBOX'}}},
    '09-idlefolders': {'roots': {'Mail/push': ALL_ALICE_DOT}},
    '10-mbnames': {'files': {'.mutt/muttrc': 'source ~/.mutt/mailboxes\n'},
                   'after': ['.mutt/mailboxes'],
                   'roots': {'Mail/mutt': {'INBOX': 'INBOX', 'Sent': 'Sent', 'Junk': 'Junk'}}},
    '11-cert-fingerprint': {'roots': {'Mail/pinned': {'INBOX': 'INBOX'}}},
    '12-maxage-startdate': {'roots': {'Mail/recent': {'INBOX': 'INBOX', 'Sent': 'Sent'}}},
    '13-utf8foldernames': {'roots': {'Mail/utf8': {
        'INBOX': 'INBOX', 'Brouillons.Sommer': BE}}},
    '14-readonly-no-deletes': {'roots': {'backup/mail': {
        'Archive': 'Archive', 'Archive.2023': 'Archive/2023'}}},
    '15-folderincludes': {'roots': {'Mail/inc': {
        'INBOX': 'INBOX', 'Archive.2023': 'Archive/2023', 'Lists.dev': 'Lists/dev'}}},
    '16-foldersort-cmp': {
        'files': {'.offlineimap.py': ('py',)},
        'roots': {'Mail/sorted': {'INBOX': 'INBOX', 'Sent': 'Sent', 'Drafts': 'Drafts'}}},
    '17-netrc': {
        'files': {'.netrc': 'machine @HOST@\n  login bob\n  password @RAWBOB@\n'},
        'roots': {'Mail/netrc': {'INBOX': 'INBOX', '[Gmail].Sent Mail': '[Gmail]/Sent Mail',
                                 '[Gmail].Starred': '[Gmail]/Starred', 'Receipts': 'Receipts',
                                 'Travel.2024': 'Travel/2024'}}},
    '18-gmail-idioms': {'roots': {'Mail/idioms': {
        'INBOX': 'INBOX', 'Sent Mail': '[Gmail]/Sent Mail', 'Drafts': '[Gmail]/Drafts',
        'Starred': '[Gmail]/Starred', 'Travel.2024': 'Travel/2024'}}},
    '19-hooks-copy-ignore': {'after': ['presync-ran', 'postsync-ran'],
                             'roots': {'Mail/hooks': {'INBOX': 'INBOX', 'Drafts': 'Drafts'}}},
    '20-legacy-syntax': {'roots': {'Mail/legacy': {'INBOX': 'INBOX', 'Old_Stuff': 'Old Stuff'}}},
    '21-windows-customflags': {'roots': {'Mail/win': {'INBOX': 'INBOX', 'Sent': 'Sent'}}},
    '22-pythonfile-accounts-table': {
        'files': {'.offlineimap/accounts.py': ('py',),
                  '.offlineimap/secrets.json': '{"work": @JSONPASS@}'},
        'roots': {'Mail/work': {'INBOX': 'INBOX', 'Sent': 'Sent',
                                'announce': 'Lists/announce'}}},
    '23-default-interpolated-eval': {
        'files': {'.offlineimap.py': ('py',),
                  '.passwords': 'alice@@HOST@:@RAWPASS@\nbob@@HOST@:@RAWBOB@\n'},
        'roots': {'Mail/alice': {'INBOX': 'INBOX'},
                  'Mail/bob': {'INBOX': 'INBOX', 'Receipts': 'Receipts'}}},
}


def message(user, folder):
    raw = mutf7_encode(folder)
    return ('From: corpus@example.org\r\nTo: %s@example.org\r\nSubject: in %s\r\n'
            'Message-ID: <%s.%s@corpus>\r\nX-Test-Folder: %s\r\n\r\nHello.\r\n' % (
                user, raw, user, raw.replace('/', '.').replace(' ', '_'), raw)).encode()


def local_folders(root):
    """{folder dir relative to root: [X-Test-Folder of each message]}"""
    out = {}
    for rel in util.corpus.maildir_folders(root):
        tags = []
        for sub in ('cur', 'new'):
            d = os.path.join(root, rel, sub)
            for name in sorted(os.listdir(d)):
                with open(os.path.join(d, name), 'rb') as f:
                    for line in f.read().split(b'\n\n', 1)[0].split(b'\n'):
                        if line.lower().startswith(b'x-test-folder:'):
                            tags.append(line.split(b':', 1)[1].strip().decode())
        out[rel] = tags
    return out


class TestConfigCorpus(util.DovecotTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for user, folders in (('alice', ALICE), ('bob', BOB)):
            with cls.dv.session(user) as s:
                for folder in folders:
                    if folder != 'INBOX':
                        s.create_folder(folder)
                    s.append(folder, message(user, folder))
        sha1 = cls.dv.fingerprint('sha1').upper()
        cls.subst = {
            '@HOST@': cls.dv.host, '@PORT@': str(cls.dv.port),
            '@TLSPORT@': str(cls.dv.tls_port), '@CA@': cls.dv.ca_file,
            '@SHA256@': cls.dv.fingerprint('sha256'),
            '@SHA1COLON@': ':'.join(sha1[i:i + 2] for i in range(0, len(sha1), 2)),
            '@RAWPASS@': cls.dv.users['alice'], '@RAWBOB@': cls.dv.users['bob'],
            '@JSONPASS@': json.dumps(cls.dv.users['alice']),
        }
        # python3 for the helper: this interpreter (a pyenv shim in PATH costs
        # seconds per start on a busy machine); PATH lookup is tested below.
        cls.env = {'OIMAP_PYTHON': sys.executable}

    def fill(self, text, conf):
        for k, v in self.subst.items():
            text = text.replace(k, v)
        if conf:  # ConfigParser interpolation: a literal % is %%
            text = text.replace('@PASS@', util.cfg_escape(self.dv.users['alice']))
            text = text.replace('@BOBPASS@', util.cfg_escape(self.dv.users['bob']))
        return text

    def prepare(self, name):
        """A HOME for case name with its files; returns (home, config path)."""
        home = util.tmpdir(name)
        case = CASES[name]
        with open(os.path.join(DATA, name + '.conf'), encoding='utf-8') as f:
            conf = util.write_file(os.path.join(home, '.offlineimaprc'),
                                   self.fill(f.read(), True))
        for rel, content in case.get('files', {}).items():
            if isinstance(content, tuple):
                with open(os.path.join(DATA, name + '.py'), encoding='utf-8') as f:
                    content = f.read()
            util.write_file(os.path.join(home, rel), self.fill(content, False))
        return home, conf

    def check_case(self, name):
        """Run case name; returns what is wrong with it (a list of texts)."""
        case = CASES[name]
        home, conf = self.prepare(name)
        r = util.run_oimap(['--info'], config_path=conf, home=home, env=self.env, timeout=60)
        out = r.stdout + r.stderr
        if r.rc != 0 or 'unsupported' in out or 'AUTHENTICATIONFAILED' in out:
            return ['--info exit %d:\n%s' % (r.rc, out)]
        r = util.run_oimap(['-o', '-u', 'basic'], config_path=conf, home=home, env=self.env,
                           timeout=60)
        if r.rc != 0 or 'unsupported' in r.stderr or 'ERROR' in r.stderr:
            return ['-o exit %d:\n%s' % (r.rc, r.stdout + r.stderr)]
        if SHOW:
            notes = [ln for ln in r.stderr.splitlines() if ln.startswith(('WARNING', 'NOTE'))]
            print('\n%s:\n  %s' % (name, '\n  '.join(notes) or '(no warnings)'), file=sys.stderr)
        problems = []
        for root, want in case['roots'].items():
            got = local_folders(os.path.join(home, root))
            if sorted(got) != sorted(want):
                problems.append('local folders under ~/%s: %s, expected %s' % (
                    root, sorted(got), sorted(want)))
                continue
            for local, remote in want.items():
                if got[local] != [mutf7_encode(remote)]:
                    problems.append('~/%s/%s holds the messages of %s, expected %s' % (
                        root, local, got[local], remote))
        for rel in case.get('after', []):
            if not os.path.exists(os.path.join(home, rel)):
                problems.append('no ~/%s after the run' % rel)
        return problems

    def test_corpus(self):
        names = sorted(os.path.basename(p)[:-5] for p in os.listdir(DATA) if p.endswith('.conf'))
        self.assertGreaterEqual(len(names), 20)
        self.assertEqual(sorted(CASES), names, 'every file in data/configs has a case')
        # Cases are independent (a HOME each): run a few at a time.
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            results = dict(zip(names, pool.map(self.check_case, names)))
        for name in names:
            with self.subTest(name):
                self.assertEqual(results[name], [], name)

    def test_no_python3(self):
        """A config that needs python3 where there is none: one line naming
        file, line and option; exit status 2, nothing created."""
        home, conf = self.prepare('06-pythonfile-get-password')
        bindir = util.tmpdir('bin')  # a PATH without python3
        r = util.run_oimap(['-o'], config_path=conf, home=home,
                           env={'PATH': bindir, 'OIMAP_PYTHON': None}, timeout=30)
        self.assertEqual(r.rc, 2, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if 'needs python3' in ln]
        self.assertTrue(lines, r.stderr)
        self.assertRegex(lines[0], r'\.offlineimaprc:\d+: \[Repository Main-Remote\] '
                                   r'remoteusereval: needs python3, which was not found in PATH')
        self.assertFalse(os.path.exists(os.path.join(home, 'Maildir')))

    def test_python3_from_path(self):
        """Without $OIMAP_PYTHON the helper is python3 from PATH."""
        home, conf = self.prepare('23-default-interpolated-eval')
        bindir = util.tmpdir('bin')
        os.symlink(sys.executable, os.path.join(bindir, 'python3'))
        r = util.run_oimap(['--info'], config_path=conf, home=home,
                           env={'PATH': bindir + ':/usr/bin:/bin', 'OIMAP_PYTHON': None},
                           timeout=60)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        self.assertIn('logged in as: bob', r.stdout)

    def test_secrets_masked(self):
        """Passwords from Python (a str, and bytes from check_output) never
        appear in the protocol trace."""
        for name, user in (('06-pythonfile-get-password', 'alice'),
                           ('07-pythonfile-mailpasswd-bytes', 'bob')):
            with self.subTest(name):
                home, conf = self.prepare(name)
                r = util.run_oimap(['-o', '-u', 'basic', '-d', 'imap'], config_path=conf,
                                   home=home, env=self.env, timeout=60)
                self.assertEqual(r.rc, 0, r.stderr)
                out = r.stdout + r.stderr
                self.assertIn('LOGIN', out.upper())
                self.assertNotIn(self.dv.users[user], out)
                self.assertIn('********', out)


if __name__ == '__main__':
    util.main()
