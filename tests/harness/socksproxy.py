"""A loopback proxy for the `proxy` / `authproxy` tests: SOCKS5 (RFC 1928,
"no authentication" only), SOCKS4 and SOCKS4a, and HTTP CONNECT on one port
(the first byte tells which), relaying bytes both ways to the target.

    from socksproxy import SocksProxy
    with SocksProxy() as px:            # 127.0.0.1 on a free port (bind='::1')
        ... point oimap at px.port: proxy = SOCKS5:127.0.0.1:<px.port> ...
        px.requests     # [Request(protocol, host, port, atyp, extra)]
        px.targets()    # [(protocol, host, port, atyp)]

protocol is 'SOCKS5', 'SOCKS4', 'SOCKS4a' or 'HTTP'; host is the target as
the client sent it (a name, or an address in its usual text form); atyp is
SOCKS5's address type (1 IPv4, 3 domain name, 4 IPv6), else None.  extra
holds the details: SOCKS5 'methods' (the greeting's method list), SOCKS4
'userid', HTTP 'request_line' and 'headers'.

The proxy resolves names itself, and only to loopback: 'localhost' is
127.0.0.1, names=dict adds others (e.g. {'imap.test.invalid': '127.0.0.1'}),
an IP literal must be loopback; anything else is refused (SOCKS5 REP=2,
SOCKS4 CD=91, HTTP 403) and never connected to.  A target that refuses the
connection gives SOCKS5 REP=5, SOCKS4 CD=91, HTTP 502.

mode (an attribute, read for each new connection) makes it misbehave:
  'ok'       relay (the default)
  'refuse'   refuse every request: SOCKS5 REP=5, SOCKS4 CD=91, HTTP 403
  'auth'     demand authentication: SOCKS5 method 0xFF, SOCKS4 CD=93,
             HTTP 407 Proxy Authentication Required
  'garbage'  answer the first request with junk (.garbage, by default an
             IMAP greeting, as a server mistaken for a proxy would send)
  'silent'   accept, read, never answer (socktimeout)
  'close'    close the connection at once (FIN), before reading anything
Every request is recorded before the mode acts (except 'silent' and
'close', which never read one).  .connections counts accepted connections,
.received holds what 'silent' connections sent, .errors exceptions of the
proxy itself (a test asserts it is empty).  stop() closes every socket and
joins every thread.
"""

import collections
import ipaddress
import select
import socket
import struct

import listeners

Request = collections.namedtuple('Request', 'protocol host port atyp extra')

MODES = ('ok', 'refuse', 'auth', 'garbage', 'silent', 'close')
HTTP_MAX = 8192  # a CONNECT request's head longer than this is refused

S5_OK, S5_NOT_ALLOWED, S5_REFUSED, S5_ATYP = 0, 2, 5, 8
S4_OK, S4_REJECTED, S4_IDENT_MISMATCH = 90, 91, 93


class _Refused(Exception):
    """The target is not allowed, or refused the connection."""

    def __init__(self, why, allowed=True):
        super().__init__(why)
        self.allowed = allowed


class _Closed(Exception):
    """The client went away in the middle of the handshake."""


class _Client:
    """Buffered reads from the client socket during the handshake."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b''

    def _more(self):
        data = self.sock.recv(65536)
        if not data:
            raise _Closed()
        self.buf += data

    def exact(self, n):
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def until(self, sep, limit):
        while sep not in self.buf:
            if len(self.buf) > limit:
                return None
            self._more()
        out, self.buf = self.buf.split(sep, 1)
        return out + sep


class SocksProxy(listeners._Base):
    def __init__(self, mode='ok', names=None, garbage=b'* OK [CAPABILITY IMAP4rev1] ready\r\n',
                 bind='127.0.0.1'):
        if mode not in MODES:
            raise ValueError('mode: ' + ', '.join(MODES))
        self.mode = mode
        self.names = {'localhost': '127.0.0.1'}
        self.names.update(names or {})
        self.garbage = garbage
        self.requests = []
        self.received = b''
        self.errors = []
        super().__init__(bind)

    def targets(self):
        """(protocol, host, port, atyp) of every request, in order."""
        with self._lock:
            return [(r.protocol, r.host, r.port, r.atyp) for r in self.requests]

    def _record(self, *fields):
        r = Request(*fields)
        with self._lock:
            self.requests.append(r)
        return r

    def _track(self, s):
        with self._lock:
            self._socks.append(s)

    # -- per connection

    def _serve(self, s):
        mode = self.mode
        if mode == 'close':
            # FIN at once (a close with the client's greeting unread would
            # be a reset); then drop whatever comes until the client goes
            s.shutdown(socket.SHUT_WR)
            s.settimeout(5)
            while not self._stopping.is_set() and s.recv(65536):
                pass
            return
        if mode == 'silent':
            while not self._stopping.is_set():
                data = s.recv(65536)
                if not data:
                    return
                with self._lock:
                    self.received += data
            return
        c = _Client(s)
        try:
            first = c.exact(1)
            if first == b'\x05':
                target = self._socks5(c, mode)
            elif first == b'\x04':
                target = self._socks4(c, mode)
            else:
                c.buf = first + c.buf
                target = self._http(c, mode)
        except _Closed:
            return
        if target is not None:
            self._relay(s, target, c.buf)

    def _resolve(self, host):
        """The loopback address host stands for; _Refused for anything else
        (nothing outside this machine is ever connected to or looked up)."""
        addr = self.names.get(host.lower(), host)
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            raise _Refused('%s: not a name this proxy knows' % host, allowed=False) from None
        if not ip.is_loopback:
            raise _Refused('%s: not a loopback address' % addr, allowed=False)
        return str(ip)

    def _connect(self, host, port):
        addr = self._resolve(host)
        fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
        t = socket.socket(fam, socket.SOCK_STREAM)
        self._track(t)
        try:
            t.settimeout(10)
            t.connect((addr, port))
            t.settimeout(None)
        except OSError as e:
            t.close()
            raise _Refused('%s:%d: %s' % (addr, port, e)) from None
        return t

    def _socks5(self, c, mode):
        n = c.exact(1)[0]
        methods = list(c.exact(n))
        if mode == 'garbage':
            self._record('SOCKS5', None, None, None, {'methods': methods})
            c.sock.sendall(self.garbage)
            return None
        if mode == 'auth' or 0 not in methods:
            self._record('SOCKS5', None, None, None, {'methods': methods})
            c.sock.sendall(b'\x05\xff')
            return None
        c.sock.sendall(b'\x05\x00')
        ver, cmd, _, atyp = c.exact(4)
        if atyp == 1:
            host = socket.inet_ntop(socket.AF_INET, c.exact(4))
        elif atyp == 4:
            host = socket.inet_ntop(socket.AF_INET6, c.exact(16))
        elif atyp == 3:
            host = c.exact(c.exact(1)[0]).decode('utf-8', 'replace')
        else:
            self._record('SOCKS5', None, None, atyp, {'methods': methods, 'cmd': cmd})
            c.sock.sendall(self._s5_reply(S5_ATYP))
            return None
        port = struct.unpack('!H', c.exact(2))[0]
        self._record('SOCKS5', host, port, atyp, {'methods': methods, 'cmd': cmd, 'ver': ver})
        if mode == 'refuse' or ver != 5 or cmd != 1:
            c.sock.sendall(self._s5_reply(S5_REFUSED if mode == 'refuse' else 7))
            return None
        try:
            t = self._connect(host, port)
        except _Refused as e:
            c.sock.sendall(self._s5_reply(S5_REFUSED if e.allowed else S5_NOT_ALLOWED))
            return None
        c.sock.sendall(self._s5_reply(S5_OK, t.getsockname()))
        return t

    @staticmethod
    def _s5_reply(rep, bound=('0.0.0.0', 0)):
        addr, port = bound[0], bound[1]
        if ':' in addr:
            return b'\x05' + bytes([rep, 0, 4]) + socket.inet_pton(socket.AF_INET6, addr) + \
                struct.pack('!H', port)
        return b'\x05' + bytes([rep, 0, 1]) + socket.inet_aton(addr) + struct.pack('!H', port)

    def _socks4(self, c, mode):
        cmd = c.exact(1)[0]
        port = struct.unpack('!H', c.exact(2))[0]
        ip = c.exact(4)
        userid = c.until(b'\0', 1024)
        if userid is None:
            return None
        userid = userid[:-1].decode('utf-8', 'replace')
        if ip[:3] == b'\0\0\0' and ip[3] != 0:  # SOCKS4a: a name follows
            name = c.until(b'\0', 1024)
            if name is None:
                return None
            proto, host = 'SOCKS4a', name[:-1].decode('utf-8', 'replace')
        else:
            proto, host = 'SOCKS4', socket.inet_ntoa(ip)
        self._record(proto, host, port, None, {'userid': userid, 'cmd': cmd})
        if mode == 'garbage':
            c.sock.sendall(self.garbage)
            return None
        if mode in ('refuse', 'auth') or cmd != 1:
            cd = S4_IDENT_MISMATCH if mode == 'auth' else S4_REJECTED
            c.sock.sendall(struct.pack('!BBH4s', 0, cd, 0, b'\0' * 4))
            return None
        try:
            t = self._connect(host, port)
        except _Refused:
            c.sock.sendall(struct.pack('!BBH4s', 0, S4_REJECTED, 0, b'\0' * 4))
            return None
        c.sock.sendall(struct.pack('!BBH4s', 0, S4_OK, port, b'\0' * 4))
        return t

    def _http(self, c, mode):
        head = c.until(b'\r\n\r\n', HTTP_MAX)
        if head is None:
            self._record('HTTP', None, None, None, {'request_line': None, 'headers': {}})
            return self._http_answer(c, '431 Request Header Fields Too Large')
        lines = head.decode('latin-1').split('\r\n')
        headers = {}
        for ln in lines[1:]:
            if ':' in ln:
                k, v = ln.split(':', 1)
                headers[k.strip().lower()] = v.strip()
        parts = lines[0].split(' ')
        method = parts[0]
        authority = parts[1] if len(parts) == 3 else ''
        host, _, port = authority.rpartition(':')
        if host.startswith('[') and host.endswith(']'):
            host = host[1:-1]
        try:
            port = int(port)
        except ValueError:
            port = None
        self._record('HTTP', host or None, port, None,
                     {'request_line': lines[0], 'headers': headers})
        if mode == 'garbage':
            c.sock.sendall(self.garbage)
            return None
        if mode == 'auth':
            return self._http_answer(c, '407 Proxy Authentication Required',
                                     'Proxy-Authenticate: Basic realm="test proxy"\r\n')
        if mode == 'refuse':
            return self._http_answer(c, '403 Forbidden')
        if method != 'CONNECT' or len(parts) != 3 or not host or port is None:
            return self._http_answer(c, '400 Bad Request')
        try:
            t = self._connect(host, port)
        except _Refused as e:
            return self._http_answer(c, '502 Bad Gateway' if e.allowed else '403 Forbidden')
        c.sock.sendall(b'HTTP/1.1 200 Connection established\r\n\r\n')
        return t

    @staticmethod
    def _http_answer(c, status, more=''):
        body = status + '\r\n'
        c.sock.sendall(('HTTP/1.1 %s\r\n%sContent-Type: text/plain\r\nContent-Length: %d\r\n'
                        'Connection: close\r\n\r\n%s' % (status, more, len(body), body)).encode())
        return None

    def _relay(self, client, target, pending):
        """Copy bytes both ways until both sides have closed (a half-close is
        passed on) or the proxy stops."""
        try:
            if pending:
                target.sendall(pending)
            open_ = {client: target, target: client}
            while open_ and not self._stopping.is_set():
                ready, _, _ = select.select(list(open_), [], [], 0.5)
                for src in ready:
                    dst = open_[src]
                    try:
                        data = src.recv(65536)
                    except OSError:
                        data = b''
                    if data:
                        dst.sendall(data)
                        continue
                    del open_[src]
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
        finally:
            for s in (client, target):
                try:
                    s.close()
                except OSError:
                    pass
