#!/usr/bin/env python3
"""usecompression = yes: IMAP COMPRESS=DEFLATE (RFC 4978) against Dovecot's
imap_zlib plugin.  Two-way syncs over plain IMAP and TLS give exactly the
server's messages; the server->client traffic, counted by a pass-through
faultproxy, is clearly smaller than the same sync uncompressed; a server
without the plugin syncs uncompressed without a word; a cut in the middle
of the compressed stream fails cleanly and a rerun converges with nothing
lost or twice; -d imap shows clear-text commands and no password; IDLE
pushes through a compressed connection."""

import os
import random
import re
import sys
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from util import corpus, listeners  # noqa: E402
from faultproxy import Fault, FaultProxy  # noqa: E402
from test_sync import assert_same, new_local_message, sync  # noqa: E402
from test_daemon import message, stop, wait_count  # noqa: E402

USERS = {u: 'pw-' + u for u in ('plain', 'tls', 'trc', 'trp', 'cut1', 'cut2', 'cut3', 'dbg',
                                  'idle', 'nop', 'tun')}
ON = {'usecompression': 'yes'}
NEGOTIATED = 'COMPRESS=DEFLATE on'


def config(dv, tmp, user, security='plain', port=None, remote=None, **kw):
    root = os.path.join(tmp, 'mail-' + user)
    r = dict(ON)
    if port:
        r['remoteport'] = port
    r.update(remote or {})
    text = util.offlineimap_config(dv, root, user=user, security=security,
                                   metadata=os.path.join(tmp, 'meta-' + user), remote=r, **kw)
    return root, text


def fill(dv, user, n=40, seed=5):
    return corpus.fill(dv, user, n, seed=seed, min_size=1500, max_size=30000)


def add_local(root, n, seed):
    rng = random.Random(seed)
    for i in range(n):
        new_local_message(root, 'INBOX', rng, 1000 + i, flags='S' if i % 2 else '', seed=seed)


class TestCompress(util.DovecotTestCase):
    dovecot_args = {'compress': True, 'users': USERS}

    def two_way(self, user, security):
        fill(self.dv, user)
        root, conf = config(self.dv, self.tmp, user, security)
        r = sync(conf, '-d', 'imap')
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 0, out[-3000:])
        self.assertIn(NEGOTIATED, out)
        assert_same(self, self.dv, user, root)
        add_local(root, 5, seed=len(user))
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        assert_same(self, self.dv, user, root)
        r = sync(conf)  # nothing left to do, nothing twice
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        assert_same(self, self.dv, user, root)

    def test_two_way_plain(self):
        self.two_way('plain', 'plain')

    def test_two_way_tls(self):
        self.two_way('tls', 'tls')

    def test_traffic_smaller(self):
        """The same corpus for two users; one syncs compressed."""
        got = {}
        for user, comp in (('trc', 'yes'), ('trp', 'no')):
            fill(self.dv, user, n=60, seed=9)
            with FaultProxy(self.dv.host, self.dv.port) as px:
                root, conf = config(self.dv, self.tmp, user, port=px.port,
                                    remote={'usecompression': comp})
                t0 = time.monotonic()
                r = sync(conf)
                secs = time.monotonic() - t0
                self.assertEqual(r.rc, 0, r.stdout + r.stderr)
                got[comp] = (sum(s['s2c'] for s in px.stats), sum(s['c2s'] for s in px.stats),
                             secs)
            assert_same(self, self.dv, user, root)
        (zs, zc, zt), (ps, pc, pt) = got['yes'], got['no']
        sys.stderr.write('\n# server->client: %d bytes compressed, %d uncompressed (%.1f%%); '
                         'client->server %d / %d; wall %.2f s / %.2f s\n'
                         % (zs, ps, 100.0 * zs / ps, zc, pc, zt, pt))
        self.assertLess(zs, 0.6 * ps, got)

    def test_cut_in_compressed_stream(self):
        """A drop (RST) and a truncation (FIN) in the middle of the
        compressed download, and a drop in the middle of the compressed
        uploads, with uploads pending each time: a clean error (or a clean
        recovery on a new connection), then a rerun converges with nothing
        lost or twice."""
        cases = (('cut1', 'drop', 's2c', 40000), ('cut2', 'truncate', 's2c', 60000),
                 ('cut3', 'drop', 'c2s', 1500))
        for user, kind, direction, offset in cases:
            fill(self.dv, user, n=60, seed=11)
            root, conf = config(self.dv, self.tmp, user)
            r = sync(conf)  # the folders exist locally; then new local mail
            self.assertEqual(r.rc, 0, r.stdout + r.stderr)
            add_local(root, 4, seed=len(user) + 100)
            with self.dv.session(user) as s:  # and new server mail
                for i in range(8):
                    s.append('INBOX', corpus.make_message(random.Random(i), 500 + i, 20000,
                                                          seed=len(user))[0])

            def plan(i, k=kind, d=direction, o=offset):
                return Fault(k, offset=o, direction=d) if i == 0 else None

            with FaultProxy(self.dv.host, self.dv.port, plan=plan) as px:
                # socktimeout: the proxy's RST only goes out once its other
                # pump thread lets go of the client socket, which can wait
                # for a client that has nothing to say (as in test_faults)
                _, fconf = config(self.dv, self.tmp, user, port=px.port,
                                  remote={'maxconnections': '1'},
                                  general={'socktimeout': '3'})
                r = sync(fconf)
                out = r.stdout + r.stderr
                self.assertTrue(px.stats and px.stats[0]['fired'], (px.stats, out[-2000:]))
            self.assertNotIn('AddressSanitizer', out)
            self.assertNotIn('runtime error', out)
            self.assertRegex(out, r'connection (reset|closed)|timed out|broken pipe',
                             out[-3000:])
            err = [ln for ln in out.splitlines() if ln.startswith(('WARNING', 'ERROR'))]
            sys.stderr.write('\n# %s %s at %d: rc %d: %s\n' % (kind, direction, offset, r.rc,
                                                               err[:1]))
            if r.rc == 0:  # recovered on a new connection: must be complete
                assert_same(self, self.dv, user, root)
            r = sync(conf)
            self.assertEqual(r.rc, 0, r.stdout + r.stderr)
            assert_same(self, self.dv, user, root)
            r = sync(conf)
            self.assertEqual(r.rc, 0, r.stdout + r.stderr)
            self.assertNotRegex(r.stdout + r.stderr, r'download [1-9]|upload [1-9]')
            assert_same(self, self.dv, user, root)

    @unittest.skipUnless(os.access('/usr/lib/dovecot/imap', os.X_OK), 'no dovecot imap binary')
    def test_preauthtunnel_compressed(self):
        """offlineimap compresses a tunnel too (imaplibutil's tunnel class
        inflates and deflates): so does oimap."""
        fill(self.dv, 'tun', n=10)
        root, conf = config(self.dv, self.tmp, 'tun', remote={
            'preauthtunnel': '/usr/lib/dovecot/imap -c %s -u tun' % self.dv.conf_path,
            'remotehost': None, 'remoteport': None, 'ssl': None, 'starttls': None,
            'remoteuser': None, 'remotepass': None})
        r = sync(conf, '-d', 'imap')
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 0, out[-3000:])
        self.assertIn(NEGOTIATED, out)
        assert_same(self, self.dv, 'tun', root)

    def test_debug_log_clear_text_no_password(self):
        fill(self.dv, 'dbg', n=5)
        root, conf = config(self.dv, self.tmp, 'dbg')
        r = sync(conf, '-d', 'imap')
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 0, out[-3000:])
        self.assertRegex(out, r' C: A\d+ COMPRESS DEFLATE')
        self.assertIn(NEGOTIATED, out)
        after = out[out.index(NEGOTIATED):]
        # commands and answers after it are logged as text, not DEFLATE
        self.assertRegex(after, r' C: A\d+ (SELECT|EXAMINE|UID FETCH|LIST|ENABLE)')
        self.assertRegex(after, r' S: A\d+ OK')
        self.assertNotIn(self.dv.users['dbg'], out)
        self.assertRegex(out, r'DEFLATE: received \d+ bytes for \d+')

    def test_info_says_deflate(self):
        fill(self.dv, 'nop', n=2)
        _, conf = config(self.dv, self.tmp, 'nop')
        r = util.run_oimap(['--info'], conf, timeout=60)
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 0, out[-3000:])
        self.assertIn('compression: DEFLATE', out)
        self.assertNotIn(self.dv.users['nop'], out)

    def test_idle_push_compressed(self):
        self.dv.append('idle', 'INBOX', message(1))
        root, conf = config(self.dv, self.tmp, 'idle', account_opts={'autorefresh': '10'},
                            remote={'idlefolders': "['INBOX']"})
        p = util.start_oimap(['-u', 'basic', '-d', 'imap'], conf, cwd=self.tmp)
        try:
            self.assertTrue(p.wait_for_output('watching 1 folder', 20), p.stderr[-3000:])
            self.assertIsNotNone(wait_count(root, 'INBOX', 1, 10))
            time.sleep(0.3)  # let the IDLE connection settle
            self.dv.deliver_doveadm('idle', 'INBOX', message(2))
            self.assertIsNotNone(wait_count(root, 'INBOX', 2, 5),
                                 'not pushed within 5 s\n' + p.stderr[-3000:])
            self.assertRegex(p.stderr, r' C: A\d+ IDLE')
        finally:
            rc, _ = stop(self, p)
        self.assertEqual(rc, 0, p.stderr[-3000:])
        # every connection of the daemon compressed (sync and IDLE ones)
        self.assertGreaterEqual(p.stderr.count(NEGOTIATED), 2, p.stderr[-3000:])


def corrupting_server(conn, line):
    """A scripted server (listeners.FakeImapServer handler): it logs in,
    accepts COMPRESS and sends, right behind its OK in the same write, one
    good compressed line and then bytes that are no DEFLATE at all."""
    st = conn.__dict__.setdefault('fake', {})
    caps = b'[CAPABILITY IMAP4rev1 COMPRESS=DEFLATE]'
    if st.get('compressed'):
        return  # the client's compressed commands: never answered
    if 'auth' in st:
        conn.send(b'%s OK %s in\r\n' % (st.pop('auth'), caps))
        return
    parts = line.split(b' ')
    tag, cmd = parts[0], parts[1].upper() if len(parts) > 1 else b''
    if cmd == b'AUTHENTICATE' and len(parts) == 3:
        st['auth'] = tag
        conn.send(b'+ \r\n')
    elif cmd in (b'AUTHENTICATE', b'LOGIN'):
        conn.send(b'%s OK %s in\r\n' % (tag, caps))
    elif cmd == b'COMPRESS':
        st['compressed'] = True
        z = zlib.compressobj(wbits=-15)
        good = z.compress(b'* OK still here\r\n') + z.flush(zlib.Z_SYNC_FLUSH)
        conn.send(b'%s OK DEFLATE active\r\n' % tag + good + b'\xff\xfe\xfd\xfc' * 8)
    else:
        conn.send(b'%s OK done\r\n' % tag)


class TestCorrupt(unittest.TestCase):
    def test_corrupt_stream_fails_cleanly(self):
        greeting = b'* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake\r\n'
        with listeners.FakeImapServer(handler=corrupting_server, greeting=greeting) as srv:
            srv.users = {'alice': 'x'}  # what offlineimap_config reads
            tmp = util.tmpdir('corrupt')
            conf = util.offlineimap_config(
                srv, os.path.join(tmp, 'mail'), security='plain',
                metadata=os.path.join(tmp, 'meta'),
                remote={'usecompression': 'yes', 'remoteport': srv.port,
                        'socktimeout': '10'})
            r = sync(conf, timeout=60)
        out = r.stdout + r.stderr
        self.assertNotEqual(r.rc, 0, out)
        self.assertRegex(out, r'\d+: compressed stream from the server is corrupt: [a-z]', out)
        sys.stderr.write('\n# %s\n' % [ln for ln in out.splitlines() if 'corrupt' in ln][:1])
        self.assertNotIn('AddressSanitizer', out)
        self.assertNotIn('runtime error', out)


class TestWithoutPlugin(util.DovecotTestCase):
    """A server without COMPRESS=DEFLATE: the same config syncs uncompressed."""
    dovecot_args = {'users': {'alice': 'pw-alice'}}

    def test_not_offered(self):
        fill(self.dv, 'alice', n=10)
        root, conf = config(self.dv, self.tmp, 'alice')
        r = sync(conf, '-d', 'imap')
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 0, out[-3000:])
        self.assertNotIn('COMPRESS DEFLATE', out)
        self.assertIn('does not offer COMPRESS=DEFLATE', out)
        self.assertNotRegex(out, re.compile(r'^(WARNING|ERROR)', re.M))
        assert_same(self, self.dv, 'alice', root)


if __name__ == '__main__':
    unittest.main(verbosity=2)
