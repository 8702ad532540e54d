#!/usr/bin/env python3
"""[Account] proxy / authproxy ("TYPE:host:port", TYPE SOCKS5, SOCKS4 or
HTTP) against a loopback proxy (tests/harness/socksproxy.py) in front of
Dovecot and the fake OAuth2 token endpoint of test_oauth2.py.

What a user relies on: a sync through each proxy type gives the server's
messages; the server's name reaches the proxy as a name (no DNS query of
our own: a name only the proxy knows works) and an IP literal as an
address; TLS and STARTTLS run end to end, verified against remotehost; a
proxy that refuses, wants authentication, talks nonsense, hangs up or never
answers gives a one-line error naming the proxy type and the reason, and
nothing is touched; a malformed option names the file, the line and the
option before any connection; authproxy routes the token request only
(unset: as proxy, empty: direct); -d imap never shows the password."""

import os
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from util import corpus, listeners  # noqa: E402
from socksproxy import SocksProxy  # noqa: E402
from test_oauth2 import REFRESH, TOKEN, TokenEndpoint  # noqa: E402

PASSWORD = 'secret pass;#%'
FOLDERS = ('INBOX', 'Sent', 'Lists/dev', 'Brouillons/Été')
SANITIZER_MARKS = ('AddressSanitizer', 'runtime error:', 'LeakSanitizer')
# a name only the proxy can resolve (.invalid never resolves, RFC 6761)
PROXY_ONLY_NAME = 'imap.proxy-test.invalid'
WRONG_NAME = 'wrong.proxy-test.invalid'


# -- minimal clients, to check the harness proxy on its own

def _recv_exact(s, n):
    out = b''
    while len(out) < n:
        data = s.recv(n - len(out))
        if not data:
            raise EOFError('proxy closed after %d of %d bytes' % (len(out), n))
        out += data
    return out


def _opener(handshake):
    """A client: opener(px, host, port) gives a socket tunnelled to
    host:port, or (what, code) when the proxy said no."""
    def opener(px, host, port):
        s = socket.create_connection(px.address, timeout=5)
        try:
            r = handshake(s, host, port)
        except BaseException:
            s.close()
            raise
        if r is not None:
            s.close()
            return r
        return s
    opener.__name__ = handshake.__name__
    return opener


@_opener
def socks5(s, host, port):
    """A name goes as ATYP 3, an IPv4 literal as ATYP 1."""
    s.sendall(b'\x05\x01\x00')
    _, method = _recv_exact(s, 2)
    if method != 0:
        return ('method', method)
    try:
        req = b'\x01' + socket.inet_pton(socket.AF_INET, host)
    except OSError:
        req = b'\x03' + bytes([len(host)]) + host.encode()
    s.sendall(b'\x05\x01\x00' + req + struct.pack('!H', port))
    _, rep, _, atyp = _recv_exact(s, 4)
    _recv_exact(s, {1: 4, 4: 16}[atyp] + 2)
    return ('rep', rep) if rep != 0 else None


@_opener
def socks4(s, host, port):
    """SOCKS4 for an IPv4 literal, SOCKS4a for a name."""
    try:
        req = struct.pack('!BBH4s', 4, 1, port, socket.inet_aton(host)) + b'u\0'
    except OSError:
        req = struct.pack('!BBH4s', 4, 1, port, b'\0\0\0\1') + b'u\0' + host.encode() + b'\0'
    s.sendall(req)
    _, cd, _, _ = struct.unpack('!BBH4s', _recv_exact(s, 8))
    return ('cd', cd) if cd != 90 else None


@_opener
def http(s, host, port):
    s.sendall(b'CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n' % (
        host.encode(), port, host.encode(), port))
    head = b''
    while b'\r\n\r\n' not in head:
        data = s.recv(1)
        if not data:
            raise EOFError('proxy closed in its answer: %r' % head)
        head += data
    status = int(head.split(b' ', 2)[1])
    return ('status', status) if status != 200 else None


def greeting(s):
    with s:
        data = b''
        while b'\n' not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data


class ProxyCase(util.DovecotTestCase):
    """One Dovecot for the file: alice has a corpus, oauser logs in with the
    token test_oauth2's endpoint hands out."""
    dovecot_args = {
        'users': {'alice': PASSWORD, 'bob': 'bob-Passw0rd', 'oauser': TOKEN},
        'extra_conf': 'auth_mechanisms = plain login xoauth2 oauthbearer\n',
    }

    def setUp(self):
        super().setUp()
        self._proxies = []

    def tearDown(self):
        for px in self._proxies:
            px.stop()
            self.assertEqual(px.errors, [], 'the test proxy itself failed')
        super().tearDown()

    def proxy(self, **kw):
        px = SocksProxy(**kw)
        self._proxies.append(px)
        return px

    def logins_since(self, user, before, expect=None, timeout=3):
        """Logins of user since the count was before; waits up to timeout
        for expect of them (Dovecot's log may lag behind oimap's exit)."""
        deadline = time.monotonic() + timeout
        while True:
            n = self.dv.count_logins(user) - before
            if expect is None or n >= expect or time.monotonic() > deadline:
                return n
            time.sleep(0.05)


class TestHarnessProxy(ProxyCase):
    """The test proxy on its own (Python clients): each protocol reaches
    Dovecot and reads its greeting; requests are recorded as sent; a
    non-loopback or unknown target is refused without a connection; the
    failure modes answer as documented."""

    def test_each_protocol_reaches_dovecot(self):
        px = self.proxy(names={PROXY_ONLY_NAME: '127.0.0.1'})
        port = self.dv.port
        for opener, host in ((socks5, 'localhost'), (socks5, '127.0.0.1'),
                             (socks5, PROXY_ONLY_NAME), (socks4, '127.0.0.1'),
                             (socks4, 'localhost'), (http, 'localhost'),
                             (http, '127.0.0.1')):
            with self.subTest(opener.__name__ + ' ' + host):
                s = opener(px, host, port)
                self.assertIsInstance(s, socket.socket, s)
                self.assertTrue(greeting(s).startswith(b'* OK'))
        self.assertEqual(px.targets(), [
            ('SOCKS5', 'localhost', port, 3), ('SOCKS5', '127.0.0.1', port, 1),
            ('SOCKS5', PROXY_ONLY_NAME, port, 3), ('SOCKS4', '127.0.0.1', port, None),
            ('SOCKS4a', 'localhost', port, None), ('HTTP', 'localhost', port, None),
            ('HTTP', '127.0.0.1', port, None)])
        self.assertEqual(px.requests[0].extra['methods'], [0])

    def test_refusals_and_modes(self):
        px = self.proxy()
        with listeners.SilentServer() as closed:
            dead_port = closed.port
        for opener, want in ((socks5, ('rep', 2)), (socks4, ('cd', 91)),
                             (http, ('status', 403))):
            self.assertEqual(opener(px, '192.0.2.1', 143), want)
            self.assertEqual(opener(px, 'example.org', 143), want)
        self.assertEqual(socks5(px, '127.0.0.1', dead_port), ('rep', 5))
        self.assertEqual(http(px, '127.0.0.1', dead_port), ('status', 502))
        px.mode = 'refuse'
        self.assertEqual(socks5(px, 'localhost', self.dv.port), ('rep', 5))
        self.assertEqual(socks4(px, 'localhost', self.dv.port), ('cd', 91))
        self.assertEqual(http(px, 'localhost', self.dv.port), ('status', 403))
        px.mode = 'auth'
        self.assertEqual(socks5(px, 'localhost', self.dv.port), ('method', 0xff))
        self.assertEqual(http(px, 'localhost', self.dv.port), ('status', 407))
        px.mode = 'close'
        with self.assertRaises(EOFError):
            socks5(px, 'localhost', self.dv.port)
        with self.assertRaises(EOFError):
            http(px, 'localhost', self.dv.port)
        px.mode = 'silent'
        s = socket.create_connection(px.address, timeout=0.5)
        s.sendall(b'\x05\x01\x00')
        with self.assertRaises(socket.timeout):
            s.recv(10)
        s.close()



def local_path(root, folder):
    """The Maildir of a server folder (sep '.', names in modified UTF-7)."""
    return os.path.join(root, util.mutf7_encode(folder).replace('/', '.'))


def message_files(root):
    """Every message file under a Maildir tree (none when it is absent)."""
    out = []
    for d, _, files in os.walk(root):
        if os.path.basename(d) in ('cur', 'new'):
            out += [os.path.join(d, f) for f in files]
    return out


class OimapProxyCase(ProxyCase):
    """oimap runs: alice's account, proxy options in [Account]."""

    def conf(self, account_opts=None, security='plain', remote=None, general=None, local=None):
        self.mail = os.path.join(self.tmp, 'mail')
        return util.offlineimap_config(self.dv, self.mail, security=security,
                                       account_opts=account_opts, remote=remote, local=local,
                                       general=general, metadata=os.path.join(self.tmp, 'meta'))

    def run_oimap(self, args, conf, timeout=60):
        r = util.run_oimap(args, conf, timeout=timeout)
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, r.stderr, r.stderr[-3000:])
        return r

    def assert_synced(self, r):
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 0, out[-3000:])
        for f in FOLDERS:
            got = corpus.summary(corpus.hash_maildir(local_path(self.mail, f)))
            d = corpus.diff(corpus.summary(self.expected[f]), got, 'server', 'local')
            self.assertEqual(d, '', 'folder %s differs:\n%s' % (f, d[:3000]))
        self.assertNotIn(PASSWORD, out)


class TestProxy(OimapProxyCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.expected = corpus.fill(cls.dv, 'alice', 24, seed=7)

    def test_each_type_syncs_and_sends_names(self):
        """A full sync through SOCKS5, SOCKS4 and HTTP (TYPE in any case):
        the Maildir has the server's messages; the proxy got remotehost as
        sent (localhost as a name: the proxy resolves it, not us;
        127.0.0.1 as an address); -d imap shows no password."""
        port = self.dv.port
        cases = (
            ('SOCKS5', 'localhost', ('SOCKS5', 'localhost', port, 3)),
            ('socks5', '127.0.0.1', ('SOCKS5', '127.0.0.1', port, 1)),
            ('SOCKS4', 'localhost', ('SOCKS4a', 'localhost', port, None)),
            ('Socks4', '127.0.0.1', ('SOCKS4', '127.0.0.1', port, None)),
            ('HTTP', 'localhost', ('HTTP', 'localhost', port, None)),
            ('http', '127.0.0.1', ('HTTP', '127.0.0.1', port, None)),
        )
        for ptype, host, want in cases:
            with self.subTest(ptype=ptype, remotehost=host):
                self.tmp = util.tmpdir('sync')
                px = self.proxy()
                before = self.dv.count_logins('alice')
                r = self.run_oimap(['-o', '-d', 'imap'], self.conf(
                    account_opts={'proxy': '%s:127.0.0.1:%d' % (ptype, px.port)},
                    remote={'remotehost': host}))
                self.assert_synced(r)
                targets = px.targets()
                self.assertTrue(targets, 'nothing went through the proxy')
                self.assertEqual(set(targets), {want})
                self.assertEqual(self.logins_since('alice', before, len(targets)), len(targets),
                                 'every login came through the proxy')
                for req in px.requests:
                    if req.protocol == 'SOCKS5':
                        self.assertEqual(req.extra['methods'], [0], 'no-auth only')
                    if req.protocol == 'HTTP':
                        self.assertEqual(req.extra['request_line'],
                                         'CONNECT %s:%d HTTP/1.1' % (host, port))

    def test_name_only_the_proxy_knows(self):
        """remotehost that this machine cannot resolve: the name goes to the
        proxy, which resolves it (no DNS query from oimap). Proxy given as
        an IPv6 literal in brackets."""
        px = self.proxy(names={PROXY_ONLY_NAME: '127.0.0.1'}, bind='::1')
        r = self.run_oimap(['-o'], self.conf(
            account_opts={'proxy': 'SOCKS5:[::1]:%d' % px.port},
            remote={'remotehost': PROXY_ONLY_NAME}))
        self.assert_synced(r)
        self.assertEqual(set(px.targets()), {('SOCKS5', PROXY_ONLY_NAME, self.dv.port, 3)})

    def test_tls_and_starttls_end_to_end(self):
        """ssl = yes and STARTTLS through SOCKS5: verified against remotehost
        (the test certificate has DNS:localhost), the proxy only relays."""
        for security, port in (('tls', self.dv.tls_port), ('starttls', self.dv.port)):
            with self.subTest(security):
                self.tmp = util.tmpdir(security)
                px = self.proxy()
                r = self.run_oimap(['-o', '-d', 'imap'], self.conf(
                    security=security, account_opts={'proxy': 'SOCKS5:127.0.0.1:%d' % px.port},
                    remote={'remotehost': 'localhost'}))
                self.assert_synced(r)
                self.assertEqual(set(px.targets()), {('SOCKS5', 'localhost', port, 3)})

    def test_tls_verified_against_remotehost(self):
        """A name the certificate does not carry is refused, though the
        proxy reaches the right server: the check is against remotehost."""
        px = self.proxy(names={WRONG_NAME: '127.0.0.1'})
        before = self.dv.count_logins('alice')
        r = self.run_oimap(['-o'], self.conf(
            security='tls', account_opts={'proxy': 'SOCKS5:127.0.0.1:%d' % px.port},
            remote={'remotehost': WRONG_NAME}))
        out = r.stdout + r.stderr
        self.assertNotEqual(r.rc, 0, out)
        self.assertIn('certificate', out)
        self.assertIn(WRONG_NAME, out)
        self.assertEqual(message_files(self.mail), [])
        time.sleep(0.2)
        self.assertEqual(self.dv.count_logins('alice'), before)
        self.assertEqual(set(px.targets()), {('SOCKS5', WRONG_NAME, self.dv.tls_port, 3)})


    def test_imap_local_repository_too(self):
        """proxy covers every IMAP connection of the account: the local
        IMAP repository's (bob, via 127.0.0.1) as well as the remote's
        (alice, via localhost)."""
        px = self.proxy()
        r = self.run_oimap(['-o'], self.conf(
            account_opts={'proxy': 'SOCKS5:127.0.0.1:%d' % px.port},
            remote={'remotehost': 'localhost'},
            local={'type': 'IMAP', 'localfolders': None, 'remotehost': '127.0.0.1',
                   'remoteport': self.dv.port, 'remoteuser': 'bob',
                   'remotepass': 'bob-Passw0rd', 'ssl': 'no', 'starttls': 'no'}))
        self.assertEqual(r.rc, 0, (r.stdout + r.stderr)[-3000:])
        self.assertEqual(self.dv.status('bob', 'INBOX')['messages'],
                         len(self.expected['INBOX']))
        self.assertEqual(set(px.targets()), {('SOCKS5', 'localhost', self.dv.port, 3),
                                             ('SOCKS5', '127.0.0.1', self.dv.port, 1)})

    # -- failures

    def server_state(self):
        """alice's message files on the server (names carry the flags);
        read from disk, as a login would count as one."""
        return sorted(message_files(self.dv.mail_root('alice')))

    def assert_failed_untouched(self, r, state, logins, pattern):
        """Non-zero exit, an error line matching pattern, no message
        written, no login, the server as it was."""
        out = r.stdout + r.stderr
        self.assertNotEqual(r.rc, 0, out[-3000:])
        self.assertRegex(out, re.compile(pattern, re.M | re.I))
        self.assertEqual(message_files(self.mail), [])
        time.sleep(0.2)
        self.assertEqual(self.dv.count_logins('alice'), logins)
        self.assertEqual(self.server_state(), state)

    def test_proxy_failures(self):
        """refuse / auth / garbage / close, for each type: one line naming
        the proxy type (and for a refusal or an authentication demand, the
        reason); nothing touched. A proxy that is not there names its
        address."""
        reasons = {
            ('SOCKS5', 'refuse'): r'refused', ('SOCKS5', 'auth'): r'authentication',
            ('SOCKS4', 'refuse'): r'refused|rejected', ('SOCKS4', 'auth'): r'rejected|ident',
            ('HTTP', 'refuse'): r'403|forbidden|refused',
            ('HTTP', 'auth'): r'407|authentication'}
        state = self.server_state()
        logins = self.dv.count_logins('alice')
        for ptype in ('SOCKS5', 'SOCKS4', 'HTTP'):
            for mode in ('refuse', 'auth', 'garbage', 'close'):
                with self.subTest(ptype=ptype, mode=mode):
                    self.tmp = util.tmpdir(mode)
                    px = self.proxy(mode=mode)
                    r = self.run_oimap(['-o'], self.conf(
                        account_opts={'proxy': '%s:127.0.0.1:%d' % (ptype, px.port)},
                        remote={'remotehost': 'localhost'}))
                    reason = reasons.get((ptype, mode), '')
                    self.assert_failed_untouched(
                        r, state, logins, r'^.*\b%s\b.*(%s).*$' % (ptype, reason))
                    self.assertGreaterEqual(px.connections, 1)
        with listeners.SilentServer() as gone:
            port = gone.port
        self.tmp = util.tmpdir('noproxy')
        r = self.run_oimap(['-o'], self.conf(
            account_opts={'proxy': 'SOCKS5:127.0.0.1:%d' % port}))
        self.assert_failed_untouched(r, state, logins, r'^.*127\.0\.0\.1:%d.*$' % port)

    def test_silent_proxy_times_out(self):
        """A proxy that accepts and never answers: socktimeout applies."""
        state = self.server_state()
        logins = self.dv.count_logins('alice')
        for ptype in ('SOCKS5', 'HTTP'):
            with self.subTest(ptype):
                self.tmp = util.tmpdir('silent')
                px = self.proxy(mode='silent')
                t0 = time.monotonic()
                r = self.run_oimap(['-o'], self.conf(
                    account_opts={'proxy': '%s:127.0.0.1:%d' % (ptype, px.port)},
                    remote={'remotehost': 'localhost'}, general={'socktimeout': '3'}),
                    timeout=40)
                took = time.monotonic() - t0
                self.assert_failed_untouched(r, state, logins,
                                             r'^.*%s.*time(d)?[ -]?out.*$' % ptype)
                self.assertGreaterEqual(took, 2.5)
                self.assertLess(took, 10, 'socktimeout 3 s')
                self.assertTrue(px.received, 'the handshake was sent')


class TestProxyConfig(ProxyCase):
    """Malformed proxy / authproxy values: exit 2, FILE:LINE naming the
    option, before anything is created or connected."""

    def test_bad_values(self):
        with listeners.SilentServer() as srv, listeners.SilentServer() as fake_proxy:
            p = fake_proxy.port
            cases = (('proxy', 'SOCKS6:127.0.0.1:%d' % p),
                     ('proxy', 'SOCKS5:127.0.0.1'),
                     ('proxy', 'SOCKS5:127.0.0.1:99999'),
                     ('proxy', 'HTTP:127.0.0.1:80x'),
                     ('proxy', 'SOCKS5:[::1:%d' % p),
                     ('proxy', '127.0.0.1:%d' % p),
                     ('authproxy', 'SOCKS6:127.0.0.1:%d' % p))
            for opt, value in cases:
                with self.subTest(opt=opt, value=value):
                    tmp = util.tmpdir('bad')
                    mail = os.path.join(tmp, 'mail')
                    meta = os.path.join(tmp, 'meta')
                    text = util.offlineimap_config(
                        self.dv, mail, security='plain', metadata=meta,
                        account_opts={opt: value}, remote={'remoteport': srv.port},
                        general={'socktimeout': '3'})
                    line = text.splitlines().index('%s = %s' % (opt, value)) + 1
                    path = util.write_config(text, tmp)
                    r = util.run_oimap(['-o'], config_path=path, timeout=30)
                    out = r.stdout + r.stderr
                    self.assertEqual(r.rc, 2, out)
                    self.assertRegex(out, r'%s:%d:.*\b%s\b' % (re.escape(path), line, opt))
                    self.assertFalse(os.path.exists(mail), 'Maildir created')
                    self.assertFalse(os.path.exists(meta), 'metadata created')
            time.sleep(0.1)
            self.assertEqual(srv.connections, 0)
            self.assertEqual(fake_proxy.connections, 0)


class TestAuthProxy(ProxyCase):
    """authproxy carries the OAuth2 token request only; unset it is proxy;
    empty it is no proxy at all for the token request."""

    def setUp(self):
        super().setUp()
        self.ep = TokenEndpoint(self.dv.certs)

    def tearDown(self):
        self.ep.stop()
        super().tearDown()

    def sync(self, account_opts):
        r = {'remotepass': None, 'auth_mechanisms': 'XOAUTH2',
             'oauth2_client_id': 'cid-123.apps.example', 'oauth2_client_secret': 'sec',
             'oauth2_refresh_token': REFRESH, 'oauth2_request_url': self.ep.url}
        conf = util.offlineimap_config(self.dv, os.path.join(self.tmp, 'mail'), user='oauser',
                                       security='plain', remote=r, account_opts=account_opts,
                                       metadata=os.path.join(self.tmp, 'meta'))
        before = self.dv.count_logins('oauser')
        res = util.run_oimap(['-o', '-d', 'imap'], conf, timeout=60,
                             env={'SSL_CERT_FILE': self.dv.ca_file})
        out = res.stdout + res.stderr
        self.assertEqual(res.rc, 0, out[-3000:])
        for secret in (TOKEN, REFRESH):
            self.assertNotIn(secret, out)
        self.assertEqual(len(self.ep.requests), 1)
        return before

    def assert_imap_logins(self, before, n):
        """n IMAP connections (n >= 1) were seen: as many logins."""
        self.assertGreaterEqual(n, 1)
        self.assertEqual(self.logins_since('oauser', before, n), n)

    def token_target(self, ptype):
        return {'HTTP': ('HTTP', '127.0.0.1', self.ep.port, None),
                'SOCKS5': ('SOCKS5', '127.0.0.1', self.ep.port, 1)}[ptype]

    def imap_target(self, ptype):
        return {'HTTP': ('HTTP', '127.0.0.1', self.dv.port, None),
                'SOCKS5': ('SOCKS5', '127.0.0.1', self.dv.port, 1)}[ptype]

    def test_authproxy_only(self):
        """authproxy alone: the token request goes through it, IMAP direct."""
        px = self.proxy()
        before = self.sync({'authproxy': 'HTTP:127.0.0.1:%d' % px.port})
        self.assertEqual(px.targets(), [self.token_target('HTTP')])
        self.assertGreaterEqual(self.logins_since('oauser', before, 1), 1, 'IMAP direct')

    def test_proxy_covers_the_token_request(self):
        """proxy alone: both the token request and IMAP."""
        px = self.proxy()
        before = self.sync({'proxy': 'SOCKS5:127.0.0.1:%d' % px.port})
        t = px.targets()
        self.assertEqual(t.count(self.token_target('SOCKS5')), 1, t)
        imap = t.count(self.imap_target('SOCKS5'))
        self.assertEqual(len(t), imap + 1, t)
        self.assert_imap_logins(before, imap)

    def test_empty_authproxy_means_direct(self):
        """proxy set, authproxy empty: IMAP through the proxy, the token
        request direct."""
        px = self.proxy()
        before = self.sync({'proxy': 'SOCKS5:127.0.0.1:%d' % px.port, 'authproxy': ''})
        t = px.targets()
        self.assertEqual(set(t), {self.imap_target('SOCKS5')})
        self.assert_imap_logins(before, len(t))

    def test_two_proxies(self):
        """proxy and authproxy both set: each carries its own traffic."""
        imap_px, auth_px = self.proxy(), self.proxy()
        before = self.sync({'proxy': 'SOCKS5:127.0.0.1:%d' % imap_px.port,
                            'authproxy': 'http:127.0.0.1:%d' % auth_px.port})
        t = imap_px.targets()
        self.assertEqual(set(t), {self.imap_target('SOCKS5')})
        self.assert_imap_logins(before, len(t))
        self.assertEqual(auth_px.targets(), [self.token_target('HTTP')])


if __name__ == '__main__':
    util.main()
