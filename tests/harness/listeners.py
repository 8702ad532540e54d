"""Tiny loopback TCP servers for what Dovecot cannot do. Each runs in
threads, binds 127.0.0.1 on a free port (.port), and stops cleanly
(stop(), or use as a context manager).

SilentServer(): accepts connections and never sends a byte (socktimeout
tests). .connections counts accepted connections; .received holds bytes
the clients sent.

FakeImapServer(script=[...]) or FakeImapServer(handler=fn): a scriptable
IMAP server.

  Script: a list of steps, run from the top for every connection:
    (None, reply)           send reply at once (e.g. the greeting)
    (regex, reply)          read lines until one matches regex (bytes or
                            str, re.search; lines are CRLF-stripped), then
                            send reply
    reply may be:
      bytes/str             sent as is after replacing {tag} with the tag of
                            the matched line (first word)
      callable(conn, m)     called with the Connection and the match;
                            returns bytes/str to send, or None
      DROP                  close the connection
      STALL                 stop reading and answering, keep it open
      STARTTLS              (only after sending e.g. b'{tag} OK go\\r\\n'):
                            do the TLS handshake as server
    When the script ends: lines are still read and recorded, unanswered,
    unless at_end='drop' or at_end='bye' (sends '* BYE' and closes).

  Handler: fn(conn, line) for each line received (bytes, CRLF stripped),
    after greeting (optional bytes sent first). conn.send(), conn.close(),
    conn.read_exact(n) (for literals), conn.start_tls(), conn.stall().

  tls=True: implicit TLS with certs.get()'s 'good' certificate (or
  certfile/keyfile). Everything received is in .lines (all connections) and
  conn.lines.
"""

import ipaddress
import re
import socket
import ssl
import threading

import certs as certs_mod

DROP = object()
STALL = object()
STARTTLS = object()

HOST = '127.0.0.1'


class _Base:
    """A listener on a free loopback port: one thread per connection.
    Subclasses set their own state, then call __init__ (it starts accepting)."""

    def __init__(self, bind=HOST):
        # bind: a loopback address ('::1' for IPv6); never anything else
        if not ipaddress.ip_address(bind).is_loopback:
            raise ValueError('bind: a loopback address')
        fam = socket.AF_INET6 if ':' in bind else socket.AF_INET
        self._lsock = socket.socket(fam, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((bind, 0))
        self._lsock.listen(64)
        self.host = bind
        self.port = self._lsock.getsockname()[1]
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._socks = []
        self._threads = []
        self.connections = 0
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                s, _ = self._lsock.accept()
            except OSError:
                return
            if self._stopping.is_set():
                s.close()
                return
            t = threading.Thread(target=self._accepted(s), daemon=True)
            with self._lock:
                self._threads.append(t)
            t.start()

    def _accepted(self, s):
        """Record a new connection; return what its thread runs."""
        with self._lock:
            self.connections += 1
            self._socks.append(s)
        return lambda: self._serve_safe(s)

    def _close_connections(self):
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def _serve_safe(self, s):
        try:
            self._serve(s)
        except (OSError, ValueError, ssl.SSLError):
            pass
        except Exception as e:  # noqa: BLE001 - keep the failure for the test
            with self._lock:
                self.errors.append(e)

    def stop(self):
        self._stopping.set()
        try:
            self._lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._lsock.close()
        with self._lock:
            threads = list(self._threads)
        self._close_connections()
        self._acceptor.join(5)
        for t in threads:
            t.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def address(self):
        return (self.host, self.port)


class SilentServer(_Base):
    """Accepts and never answers; records what it receives."""

    def __init__(self):
        self.received = b''
        self.errors = []
        super().__init__()

    def _serve(self, s):
        while not self._stopping.is_set():
            data = s.recv(65536)
            if not data:
                return
            with self._lock:
                self.received += data


class Connection:
    """One client connection of a FakeImapServer."""

    def __init__(self, server, sock):
        self.server = server
        self.sock = sock
        self.buf = b''
        self.lines = []
        self.closed = False
        self.stalled = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def stall(self):
        """Stop answering (the connection stays open until stop())."""
        self.stalled = True

    def readline(self):
        """Next line without CRLF, or None at EOF."""
        while b'\n' not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b'\n', 1)
        line = line.rstrip(b'\r')
        self.lines.append(line)
        with self.server._lock:
            self.server.lines.append(line)
        return line

    def read_exact(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError('connection closed inside a literal')
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def start_tls(self, certfile=None, keyfile=None):
        """Server side of a TLS handshake on this connection. Bytes the
        client sent before it (buffered) are dropped, like a careful server."""
        ctx = self.server._tls_context(certfile, keyfile)
        self.buf = b''
        self.sock = ctx.wrap_socket(self.sock, server_side=True)
        with self.server._lock:
            self.server._socks.append(self.sock)


class FakeImapServer(_Base):
    def __init__(self, script=None, handler=None, greeting=None, tls=False, certfile=None,
                 keyfile=None, at_end='idle'):
        if (script is None) == (handler is None):
            raise ValueError('give exactly one of script and handler')
        self.script = list(script) if script is not None else None
        self.handler = handler
        self.greeting = greeting
        self.tls = tls
        self.certfile = certfile
        self.keyfile = keyfile
        self.at_end = at_end
        self.lines = []
        self.conns = []
        self.errors = []
        super().__init__()

    def _tls_context(self, certfile=None, keyfile=None):
        c = certs_mod.get()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certfile or self.certfile or c.cert_file('good'),
                            keyfile or self.keyfile or c.key_file('good'))
        return ctx

    def _serve(self, s):
        if self.tls:
            s = self._tls_context().wrap_socket(s, server_side=True)
            with self._lock:
                self._socks.append(s)
        conn = Connection(self, s)
        with self._lock:
            self.conns.append(conn)
        if self.handler is not None:
            if self.greeting:
                conn.send(self.greeting)
            while not conn.closed and not self._stopping.is_set():
                if conn.stalled:
                    self._stopping.wait()
                    return
                line = conn.readline()
                if line is None:
                    return
                self.handler(conn, line)
            return
        for expect, reply in self.script:
            m = None
            if expect is not None:
                pat = expect.encode() if isinstance(expect, str) else expect
                while True:
                    line = conn.readline()
                    if line is None:
                        return
                    m = re.search(pat, line)
                    if m:
                        break
            if reply is DROP:
                conn.close()
                return
            if reply is STALL:
                self._stopping.wait()
                return
            if reply is STARTTLS:
                conn.start_tls()
                continue
            if callable(reply):
                reply = reply(conn, m)
                if reply is None:
                    if conn.closed:
                        return
                    continue
            if isinstance(reply, str):
                reply = reply.encode()
            if m is not None:
                tag = m.string.split(b' ', 1)[0]
                reply = reply.replace(b'{tag}', tag)
            conn.send(reply)
        if self.at_end == 'drop':
            conn.close()
            return
        if self.at_end == 'bye':
            conn.send(b'* BYE fake server done\r\n')
            conn.close()
            return
        while conn.readline() is not None:
            pass


def _literal_tail(conn, line):
    """If line ends with a synchronising literal {n}, send '+' and read the
    literal and the rest of the command; non-synchronising {n+} the same
    without '+'. Returns the full command bytes."""
    full = line
    while True:
        m = re.search(rb'\{(\d+)(\+?)\}$', line)
        if not m:
            return full
        if not m.group(2):
            conn.send(b'+ go ahead\r\n')
        full += b'\r\n' + conn.read_exact(int(m.group(1)))
        line = conn.readline()
        if line is None:
            return full
        full += line


def imap_handler(caps='IMAP4rev1 LITERAL+ UIDPLUS IDLE AUTH=PLAIN', extra=None):
    """A handler for FakeImapServer that behaves like a minimal server:
    CAPABILITY, LOGIN, AUTHENTICATE PLAIN (with or without SASL-IR), NOOP,
    LOGOUT; anything else gets BAD unless extra(conn, tag, cmd, line)
    handles it (it returns True, or bytes/str to send). Command lines with
    literals are read whole. Use with greeting=b'* OK fake\r\n'."""
    def handler(conn, line):
        parts = line.split(b' ', 2)
        tag = parts[0]
        cmd = parts[1].upper() if len(parts) > 1 else b''
        if cmd == b'UID' and len(parts) > 2:
            cmd = b'UID ' + parts[2].split(b' ', 1)[0].upper()
        line = _literal_tail(conn, line)
        if extra is not None:
            r = extra(conn, tag, cmd, line)
            if isinstance(r, (bytes, str)):
                conn.send(r)
                return
            if r:
                return
        if cmd == b'CAPABILITY':
            conn.send(b'* CAPABILITY ' + caps.encode() + b'\r\n' + tag + b' OK done\r\n')
        elif cmd == b'LOGIN':
            conn.send(tag + b' OK logged in\r\n')
        elif cmd == b'AUTHENTICATE':
            if len(line.split(b' ')) < 4:
                conn.send(b'+ \r\n')
                conn.readline()
            conn.send(tag + b' OK authenticated\r\n')
        elif cmd == b'NOOP':
            conn.send(tag + b' OK done\r\n')
        elif cmd == b'LOGOUT':
            conn.send(b'* BYE bye\r\n' + tag + b' OK done\r\n')
            conn.close()
        else:
            conn.send(tag + b' BAD unknown command\r\n')
    return handler
