#!/usr/bin/env python3
"""Tests of the test harness itself: a private Dovecot that really serves
plain/STARTTLS/TLS with the right certificates, the mail helpers, the
corpus, the fake servers and util.run_oimap."""

import datetime
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from util import Dovecot, certs, corpus, imaputil, listeners  # noqa: E402

import imaplib  # noqa: E402

MODERN_CAPS = ('IDLE', 'UIDPLUS', 'CONDSTORE', 'QRESYNC', 'MOVE', 'LITERAL+', 'SPECIAL-USE',
               'NAMESPACE', 'MULTIAPPEND', 'ENABLE', 'ID')


def tls_connect(host, port, ca_file, server_hostname=None):
    """A verified TLS connection (raises ssl.SSLCertVerificationError)."""
    ctx = ssl.create_default_context(cafile=ca_file)
    raw = socket.create_connection((host, port), timeout=10)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_hostname or host)
    except Exception:
        raw.close()
        raise


class TestDovecot(util.DovecotTestCase):

    def test_plain_login_and_capabilities(self):
        M = imaplib.IMAP4(self.dv.host, self.dv.port)
        self.assertIn('STARTTLS', M.capabilities)
        M.login('alice', 'secret pass;#%')
        caps = set(M.capability()[1][0].decode().upper().split())
        for c in MODERN_CAPS:
            self.assertIn(c, caps)
        M.logout()
        with self.dv.session('bob') as s:
            self.assertEqual(s.delimiter, '/')

    def test_wrong_password_refused_quickly(self):
        before = self.dv.count_logins('alice', failed=True)
        t = time.monotonic()
        with self.assertRaises(imaplib.IMAP4.error):
            self.dv.session('alice', password='secret pass;#')
        self.assertLess(time.monotonic() - t, 1.5)
        self.assertEqual(self.dv.count_logins('alice', failed=True), before + 1)

    def test_starttls_verified(self):
        M = imaplib.IMAP4(self.dv.host, self.dv.port)
        M.starttls(ssl_context=ssl.create_default_context(cafile=self.dv.ca_file))
        self.assertIsInstance(M.sock, ssl.SSLSocket)
        self.assertNotIn('STARTTLS', M.capabilities)
        self.assertEqual(M.login('alice', self.dv.users['alice'])[0], 'OK')
        M.logout()

    def test_implicit_tls_verified(self):
        for name in ('127.0.0.1', 'localhost'):
            s = tls_connect(self.dv.host, self.dv.tls_port, self.dv.ca_file, name)
            self.assertTrue(s.makefile('rb').readline().startswith(b'* OK'))
            der = s.getpeercert(binary_form=True)
            s.close()
            import hashlib
            self.assertEqual(hashlib.sha256(der).hexdigest(), self.dv.fingerprint('sha256'))
            self.assertEqual(hashlib.sha1(der).hexdigest(), self.dv.fingerprint('sha1'))
            self.assertEqual(len(self.dv.fingerprint('sha512')), 128)
        with self.dv.session('alice', tls='tls') as s:
            self.assertIn('IDLE', s.capabilities())

    def test_unknown_ca_fails(self):
        other = ssl.create_default_context()  # system CAs: our test CA is not there
        raw = socket.create_connection((self.dv.host, self.dv.tls_port), timeout=10)
        with self.assertRaises(ssl.SSLCertVerificationError):
            other.wrap_socket(raw, server_hostname='127.0.0.1')
        raw.close()

    def test_append_fetch_flags_delete(self):
        s = self.dv.session('alice')
        self.addCleanup(s.close)
        s.create_folder('T1')
        msgs = corpus.generate(30, seed=7, max_size=64 << 10)
        date = datetime.datetime(2021, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
        uids = s.append_many('T1', [(m.data, m.flags, date) for m in msgs])
        self.assertEqual(uids, list(range(1, 31)))
        recs = s.fetch_all('T1')
        self.assertEqual([r['uid'] for r in recs], uids)
        self.assertEqual(corpus.summary(recs),
                         corpus.summary([{'message_id': m.message_id,
                                          'body_sha256': imaputil.body_sha256(m.data),
                                          'flags': m.flags} for m in msgs]))
        self.assertTrue(all(r['internaldate'] == int(date.timestamp()) for r in recs))
        self.assertEqual(recs[0]['size'], len(msgs[0].data))
        # single append with LF line ends and an epoch date
        uid = s.append('T1', b'Message-ID: <one@x>\nSubject: one\n\nbody\n', ['\\Flagged'],
                       1500000000)
        self.assertEqual(uid, 31)
        s.set_flags('T1', [1, 2, uid], ['\\Seen', '\\Answered'])
        s.clear_flags('T1', [2], ['\\Seen'])
        fl = s.fetch_flags('T1')
        self.assertIn('\\Answered', fl[1])
        self.assertNotIn('\\Seen', fl[2])
        self.assertEqual(fl[uid], ['\\Answered', '\\Flagged', '\\Seen'])
        s.delete('T1', [3, 4])
        self.assertEqual(s.uids('T1'), [u for u in range(1, 32) if u not in (3, 4)])
        one = [r for r in s.fetch_all('T1', with_body=True) if r['uid'] == uid][0]
        self.assertEqual(one['message_id'], '<one@x>')
        self.assertEqual(one['body'], b'Message-ID: <one@x>\r\nSubject: one\r\n\r\nbody\r\n')
        self.assertEqual(one['internaldate'], 1500000000)
        self.assertEqual(one['body_sha256'],
                         imaputil.body_sha256(b'Message-ID: <one@x>\nSubject: one\n\nbody\n'))
        # the server's own Maildir agrees
        on_disk = corpus.hash_maildir(self.dv.maildir_path('alice', 'T1'))
        self.assertEqual(corpus.summary(on_disk), corpus.summary(s.fetch_all('T1')))

    def test_folders_nested_and_non_ascii(self):
        with self.dv.session('alice') as s:
            s.create_folder('Lists/dev')
            s.create_folder('Brouillons/Été')
            names = s.list_folders()
            self.assertIn('Lists/dev', names)
            self.assertIn('Brouillons/Été', names)
            raw = [x for x in s.imap.list('""', '*')[1] if b'Brouillons/' in x]
            self.assertRegex(raw[0], rb' "?Brouillons/&AMk-t&AOk-"?$')
            s.append('Brouillons/Été', b'Subject: x\r\n\r\ny\r\n', ['\\Draft'])
            self.assertEqual(s.status('Brouillons/Été')['messages'], 1)
            self.assertTrue(os.path.isdir(os.path.join(
                self.dv.maildir_path('alice', 'Brouillons/Été'), 'cur')))
            self.assertTrue(self.dv.maildir_path('alice', 'Brouillons/Été').endswith(
                os.path.join('Brouillons', '&AMk-t&AOk-')))
            s.delete_folder('Lists/dev')
            self.assertNotIn('Lists/dev', s.list_folders())

    def test_uidvalidity_change(self):
        self.dv.create_folder('alice', 'UV')
        self.dv.append('alice', 'UV', b'Subject: a\r\n\r\nb\r\n')
        old = self.dv.uidvalidity('alice', 'UV')
        self.dv.set_uidvalidity('alice', 'UV', old + 1000)
        self.assertEqual(self.dv.uidvalidity('alice', 'UV'), old + 1000)

    def test_idle_sees_delivery(self):
        M = imaplib.IMAP4(self.dv.host, self.dv.port)
        M.login('bob', self.dv.users['bob'])
        M.create('IdleBox')
        M.select('IdleBox')
        M.send(b'i1 IDLE\r\n')
        self.assertTrue(M.readline().startswith(b'+'))
        t = time.monotonic()
        self.dv.deliver('bob', 'IdleBox', b'Subject: push\r\n\r\nnew\r\n')
        M.sock.settimeout(10)
        line = M.readline()
        self.assertRegex(line, rb'^\* 1 EXISTS')
        self.assertLess(time.monotonic() - t, 5)
        M.send(b'DONE\r\n')
        while not M.readline().startswith(b'i1 OK'):
            pass
        M.logout()

    def test_doveadm_save(self):
        self.dv.deliver_doveadm('bob', 'INBOX', b'Message-ID: <dv@x>\n\nhi\n')
        ids = [r['message_id'] for r in self.dv.fetch_all('bob', 'INBOX')]
        self.assertIn('<dv@x>', ids)


class TestCertificates(unittest.TestCase):

    def _verify_fails(self, cert, reason):
        with Dovecot(cert=cert) as dv:
            for name in ('127.0.0.1', 'localhost'):
                with self.assertRaises(ssl.SSLCertVerificationError) as cm:
                    tls_connect(dv.host, dv.tls_port, dv.ca_file, name)
                self.assertRegex(cm.exception.verify_message, reason)
            # STARTTLS fails the same way
            M = imaplib.IMAP4(dv.host, dv.port)
            with self.assertRaises(ssl.SSLCertVerificationError):
                M.starttls(ssl_context=ssl.create_default_context(cafile=dv.ca_file))
            # the unverified connection still works: the failure is the cert's
            ctx = ssl.create_default_context(cafile=dv.ca_file)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            with socket.create_connection((dv.host, dv.tls_port)) as raw:
                with ctx.wrap_socket(raw) as s:
                    import hashlib
                    self.assertEqual(hashlib.sha256(s.getpeercert(True)).hexdigest(),
                                     dv.fingerprint())

    def test_wronghost(self):
        self._verify_fails('wronghost', '(IP address|Hostname) mismatch')

    def test_expired(self):
        self._verify_fails('expired', 'expired')

    def test_selfsigned(self):
        self._verify_fails('selfsigned', 'self-signed')

    def test_selfsigned_trusted_by_itself(self):
        with Dovecot(cert='selfsigned') as dv:
            c = certs.get()
            s = tls_connect(dv.host, dv.tls_port, c.cert_file('selfsigned'), 'localhost')
            s.close()
            self.assertNotEqual(dv.fingerprint(), c.fingerprint('good'))

    def test_certs_in_dir_reused(self):
        d = util.tmpdir('certs')
        a = certs.Certs(d)
        fp = a.fingerprint('good', 'sha1')
        self.assertEqual(certs.Certs(d).fingerprint('good', 'sha1'), fp)
        self.assertEqual(len(fp), 40)


class TestLifecycle(unittest.TestCase):

    def test_stop_kills_and_closes(self):
        dv = Dovecot().start()
        pid, port, tls_port, d = dv.pid, dv.port, dv.tls_port, dv.dir
        self.assertTrue(imaputil.port_open(dv.host, port))
        t = time.monotonic()
        dv.stop()
        self.assertLess(time.monotonic() - t, 5)
        from dovecot import pid_alive
        self.assertFalse(pid_alive(pid))
        self.assertFalse(imaputil.port_open('127.0.0.1', port))
        self.assertFalse(imaputil.port_open('127.0.0.1', tls_port))
        self.assertFalse(os.path.exists(d))
        from dovecot import group_members
        self.assertEqual(group_members(pid), [])  # zombies may remain where init does not reap

    def test_start_is_fast(self):
        t = time.monotonic()
        with Dovecot() as dv:
            self.assertTrue(dv.running)
        self.assertLess(time.monotonic() - t, 5)

    def test_restart_keeps_ports_and_mail(self):
        with Dovecot() as dv:
            dv.append('alice', 'INBOX', b'Message-ID: <r@x>\r\n\r\nr\r\n')
            port, tls_port, pid = dv.port, dv.tls_port, dv.pid
            dv.restart()
            self.assertEqual((dv.port, dv.tls_port), (port, tls_port))
            self.assertNotEqual(dv.pid, pid)
            self.assertEqual([r['message_id'] for r in dv.fetch_all('alice')], ['<r@x>'])

    def test_no_starttls(self):
        with Dovecot(starttls=False) as dv:
            M = imaplib.IMAP4(dv.host, dv.port)
            self.assertNotIn('STARTTLS', M.capabilities)
            with self.assertRaises(imaplib.IMAP4.error):
                M.starttls()
            self.assertIsNone(dv.tls_port)
            M.login('alice', dv.users['alice'])
            M.logout()

    def test_maildirpp_delimiter(self):
        with Dovecot(delimiter='.', users={'carol': 'c'}) as dv:
            with dv.session('carol') as s:
                self.assertEqual(s.delimiter, '.')
                s.create_folder('Lists.dev')
                s.append('Lists.dev', b'Subject: x\r\n\r\ny\r\n')
            self.assertTrue(os.path.isdir(os.path.join(dv.maildir_path('carol', 'Lists.dev'),
                                                       'cur')))
            self.assertEqual(len(corpus.hash_maildir(dv.maildir_path('carol', 'Lists.dev'))), 1)

    def test_dies_with_parent(self):
        code = ('import sys; sys.path.insert(0, %r)\n'
                'from dovecot import Dovecot\n'
                'dv = Dovecot().start(); print(dv.pid, dv.port, flush=True)\n'
                'import time; time.sleep(60)\n') % util.HARNESS
        p = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE)
        pid, port = map(int, p.stdout.readline().split())
        p.stdout.close()
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        from dovecot import pid_alive
        deadline = time.monotonic() + 5
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(pid_alive(pid))

    def test_cli_start_stop(self):
        d = util.tmpdir('cli')
        script = os.path.join(util.HARNESS, 'dovecot.py')
        r = subprocess.run([sys.executable, script, 'start', '--dir', d, '--sample', '40'],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(subprocess.run, [sys.executable, script, 'stop', '--dir', d], timeout=60)
        with open(os.path.join(d, 'env.json')) as f:
            env = json.load(f)
        from dovecot import pid_alive
        self.assertTrue(pid_alive(env['pid']))
        self.assertTrue(os.path.exists(env['ca_file']))
        M = imaplib.IMAP4_SSL(env['host'], env['tls_port'],
                              ssl_context=ssl.create_default_context(cafile=env['ca_file']))
        M.login('alice', env['users']['alice'])
        n = 0
        for line in M.list()[1]:
            name = line.rsplit(b' ', 1)[1].strip(b'"')
            if b'Noselect' in line:
                continue
            typ, data = M.status(b'"' + name + b'"', '(MESSAGES)')
            n += int(data[0].rsplit(b' ', 1)[1].rstrip(b')'))
        M.logout()
        self.assertEqual(n, 40)
        r = subprocess.run([sys.executable, script, 'stop', '--dir', d], timeout=60)
        self.assertEqual(r.returncode, 0)
        self.assertFalse(pid_alive(env['pid']))
        self.assertFalse(imaputil.port_open(env['host'], env['port']))


class TestUtf7(unittest.TestCase):
    CASES = [('INBOX', 'INBOX'), ('Été', '&AMk-t&AOk-'), ('a&b', 'a&-b'),
             ('~peter/mail/台北/日本語', '~peter/mail/&U,BTFw-/&ZeVnLIqe-'),
             ('😀', '&2D3eAA-'), ('', ''), ('&', '&-')]

    def test_vectors(self):
        for dec, enc in self.CASES:
            self.assertEqual(imaputil.mutf7_encode(dec), enc)
            self.assertEqual(imaputil.mutf7_decode(enc), dec)

    def test_bad(self):
        for bad in ('&AMk', '&AGE-', 'é', '&!!-'):
            with self.assertRaises(imaputil.Utf7Error):
                imaputil.mutf7_decode(bad)


class TestCorpus(unittest.TestCase):

    def test_deterministic_and_sized(self):
        a = corpus.generate(200, seed=3)
        b = corpus.generate(200, seed=3)
        c = corpus.generate(200, seed=4)
        self.assertEqual([m.data for m in a], [m.data for m in b])
        self.assertNotEqual([m.data for m in a], [m.data for m in c])
        self.assertEqual(len({m.message_id for m in a}), 200)
        for m in a:
            self.assertGreaterEqual(m.size, 2000)
            self.assertLessEqual(m.size, 1100 << 10)
            self.assertEqual(imaputil.message_id(m.data), m.message_id)
        self.assertTrue(any(b'multipart/mixed' in m.data for m in a))
        self.assertEqual({m.folder for m in a}, {'INBOX', 'Sent', 'Lists/dev', 'Brouillons/Été'})
        self.assertTrue(any(m.flags for m in a) and any(not m.flags for m in a))

    def test_fill_and_compare(self):
        with Dovecot() as dv:
            man = corpus.fill(dv, 'bob', 120, seed=5)
            self.assertEqual(sum(len(v) for v in man.values()), 120)
            with dv.session('bob') as s:
                self.assertEqual(set(s.list_folders()), set(man))
                for folder, recs in man.items():
                    got = s.fetch_all(folder)
                    self.assertEqual(corpus.diff(corpus.summary(got), corpus.summary(recs)), '')
                    disk = corpus.hash_maildir(dv.maildir_path('bob', folder))
                    self.assertEqual(corpus.summary(disk), corpus.summary(recs))

    def test_maildir_helpers(self):
        d = util.tmpdir('md')
        for sub in ('cur', 'new', 'tmp'):
            os.makedirs(os.path.join(d, 'F', sub))
        util.write_file(os.path.join(d, 'F', 'cur', '123.x,U=7,FMD5=abc:2,FS'),
                        'Message-ID: <m@x>\n\nhi\n')
        util.write_file(os.path.join(d, 'F', 'new', '124.y'), 'Message-ID: <n@x>\n\nho\n')
        recs = corpus.hash_maildir(os.path.join(d, 'F'))
        self.assertEqual([(r['message_id'], r['uid'], r['flags']) for r in recs],
                         [('<m@x>', 7, ['\\Flagged', '\\Seen']), ('<n@x>', None, [])])
        self.assertEqual(corpus.maildir_folders(d), ['F'])
        self.assertEqual(corpus.parse_maildir_name('1.a,U=12!2,RS'), ('1.a,U=12', 12, 'RS'))


class TestListeners(unittest.TestCase):

    def test_silent(self):
        with listeners.SilentServer() as srv:
            s = socket.create_connection(srv.address)
            s.settimeout(0.3)
            s.sendall(b'a CAPABILITY\r\n')
            with self.assertRaises(socket.timeout):
                s.recv(1)
            s.close()
            self.assertEqual(srv.connections, 1)

    def test_script_and_drop(self):
        script = [(None, '* OK fake\r\n'),
                  (r'CAPABILITY', '* CAPABILITY IMAP4rev1\r\n{tag} OK done\r\n'),
                  (r'LOGIN', listeners.DROP)]
        with listeners.FakeImapServer(script=script) as srv:
            M = imaplib.IMAP4(srv.host, srv.port)
            with self.assertRaises(imaplib.IMAP4.abort):
                M.login('u', 'p')
            M.shutdown()
            self.assertRegex(srv.lines[-1], rb'LOGIN u "?p"?$')

    def test_starttls_injection_script(self):
        script = [(None, '* OK [CAPABILITY IMAP4rev1 STARTTLS] fake\r\n'),
                  (r'STARTTLS', '{tag} OK go\r\n* OK injected\r\n'),
                  (None, listeners.STARTTLS),
                  (r'CAPABILITY', '* CAPABILITY IMAP4rev1\r\n{tag} OK done\r\n')]
        with listeners.FakeImapServer(script=script) as srv:
            raw = socket.create_connection(srv.address, timeout=5)
            f = raw.makefile('rb')
            f.readline()
            raw.sendall(b'a STARTTLS\r\n')
            self.assertEqual(f.readline(), b'a OK go\r\n')
            self.assertEqual(f.readline(), b'* OK injected\r\n')
            s = ssl.create_default_context(cafile=certs.get().ca_file).wrap_socket(
                raw, server_hostname='127.0.0.1')
            s.sendall(b'b CAPABILITY\r\n')
            g = s.makefile('rb')
            self.assertEqual(g.readline(), b'* CAPABILITY IMAP4rev1\r\n')
            self.assertEqual(g.readline(), b'b OK done\r\n')
            s.close()

    def test_handler_and_stall(self):
        def extra(conn, tag, cmd, line):
            if cmd == b'SELECT':
                conn.stall()
                return True
            return None
        with listeners.FakeImapServer(handler=listeners.imap_handler(extra=extra),
                                      greeting=b'* OK fake\r\n') as srv:
            M = imaplib.IMAP4(srv.host, srv.port, timeout=0.5)
            self.assertEqual(M.login('u', 'p w')[0], 'OK')
            with self.assertRaises((TimeoutError, socket.timeout, OSError)):
                M.select('INBOX')
            M.shutdown()
        self.assertTrue(any(b'LOGIN u "p w"' in x for x in srv.lines))

    def test_implicit_tls(self):
        script = [(None, '* OK tls\r\n'),
                  ('CAPABILITY', '* CAPABILITY IMAP4rev1\r\n{tag} OK done\r\n')]
        with listeners.FakeImapServer(script=script, tls=True, at_end='drop') as srv:
            M = imaplib.IMAP4_SSL(srv.host, srv.port, timeout=5,
                                  ssl_context=ssl.create_default_context(
                                      cafile=certs.get().ca_file))
            self.assertEqual(M.welcome, b'* OK tls')
            M.shutdown()


class TestUtil(unittest.TestCase):

    def test_run_oimap(self):
        dv = Dovecot.__new__(Dovecot)  # only for the config text: no server
        dv.host, dv.port, dv.tls_port = '127.0.0.1', 1, 2
        dv.users = {'alice': 'secret pass;#%'}
        dv._certs = certs.get()
        dv.cert = 'good'
        text = util.offlineimap_config(dv, '/tmp/x', security='tls')
        self.assertIn('remotepass = secret pass;#%%', text)
        self.assertIn('remoteport = 2', text)
        rc, out, err = util.run_oimap(['--version'], text)
        self.assertIsInstance(rc, int)
        import configparser
        cp = configparser.ConfigParser()
        cp.read_string(text)
        self.assertEqual(cp.get('Repository test-remote', 'remotepass'), 'secret pass;#%')

    def test_timeout_kills(self):
        t = time.monotonic()
        with self.assertRaises(util.OimapTimeout):
            util.run_cmd(['sh', '-c', 'sleep 30 & sleep 30'], timeout=0.5)
        self.assertLess(time.monotonic() - t, 5)

    def test_background(self):
        p = util.OimapProcess(['sh', '-c', 'echo up >&2; exec sleep 30'], util.oimap_env())
        self.assertTrue(p.wait_for_output('up'))
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait(5), -signal.SIGTERM)

    def test_isolated_home(self):
        env = util.oimap_env()
        self.assertNotEqual(env['HOME'], os.path.expanduser('~'))
        self.assertTrue(env['XDG_CONFIG_HOME'].startswith(env['HOME']))


if __name__ == '__main__':
    util.main()
