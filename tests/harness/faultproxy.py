"""A fault-injecting TCP proxy on loopback, between oimap and a server.

    from faultproxy import FaultProxy, Fault
    with FaultProxy(dv.host, dv.port, plan=lambda i: Fault('drop', offset=5000)) as px:
        ... point oimap at px.port ...
        px.stats      # per connection: bytes each way, fault fired or not

plan(index) is called for every accepted connection (0, 1, ...) and returns
a Fault or None (plain pass-through).  A Fault is:

  Fault(kind, offset=0, direction='s2c', literal=None, text=b'* BYE ...')
    kind 'drop'      forward `offset` bytes, then reset both sides (RST)
         'truncate'  forward `offset` bytes, then a clean FIN to the client
                     and close the upstream
         'stall'     forward `offset` bytes, then forward nothing more in
                     either direction and keep both sockets open (the client
                     must notice with socktimeout)
         'bye'       forward `offset` bytes, inject `text` (default
                     '\\r\\n* BYE fault injected\\r\\n'), then FIN
    direction 's2c' counts bytes from the server, 'c2s' from the client.
    literal=(k, m): instead of `offset`, fire m bytes into the k-th literal
    (0-based) the server sends ({n}, {n+} or ~{n}); if the stream has fewer
    literals the fault never fires (stats say so).

rewriter(conn) (optional) makes an object with
    on_command(bytes) -> bytes        each client command (line + literals)
    on_response(bytes) -> bytes       each server response (line + literals)
for the hostile-server tests: rewriting is done on whole IMAP responses, so
a rewriter can corrupt one folder's FETCH and leave the rest alone.  It may
return b'' to swallow a response; conn.send_client(bytes) injects.  With a
rewriter the byte-offset faults still apply (on the rewritten stream).

errors: exceptions a rewriter raised (that connection was closed); a test
should assert it is empty.

stats: list of dicts {index, s2c, c2s, literals, fired, kind}; the bytes
are counted as forwarded.  Python 3 standard library only.
"""

import re
import socket
import struct
import threading

import listeners

LITERAL_RE = re.compile(rb'~?\{(\d+)\+?\}\r?\n?$')
DEFAULT_BYE = b'\r\n* BYE fault injected\r\n'


class Fault:
    KINDS = ('drop', 'truncate', 'stall', 'bye')

    def __init__(self, kind, offset=0, direction='s2c', literal=None, text=None):
        if kind not in self.KINDS:
            raise ValueError('fault kind: ' + ', '.join(self.KINDS))
        if direction not in ('s2c', 'c2s'):
            raise ValueError("direction: 's2c' or 'c2s'")
        self.kind = kind
        self.offset = int(offset)
        self.direction = direction
        self.literal = literal
        self.text = DEFAULT_BYE if text is None else text

    def __repr__(self):
        where = ('literal %d +%d' % self.literal if self.literal is not None
                 else 'offset %d' % self.offset)
        return 'Fault(%s %s %s)' % (self.kind, self.direction, where)


class _Splitter:
    """Cuts an IMAP byte stream into whole units (a line plus the literals it
    announces and the lines that follow them).  Unbounded by design: it is
    a test tool and the peer is our own Dovecot."""

    def __init__(self):
        self.buf = bytearray()
        self.pos = 0          # scan position in buf
        self.line_start = 0   # start of the current line segment
        self.need = 0         # literal bytes still to take

    def feed(self, data):
        """Append data; return the list of complete units."""
        self.buf += data
        out = []
        while True:
            if self.need:
                take = min(self.need, len(self.buf) - self.pos)
                self.pos += take
                self.need -= take
                if self.need:
                    break
                self.line_start = self.pos
                continue
            nl = self.buf.find(b'\n', self.pos)
            if nl < 0:
                self.pos = len(self.buf)
                break
            tail = bytes(self.buf[max(self.line_start, nl - 40):nl + 1])
            self.pos = nl + 1
            m = LITERAL_RE.search(tail)
            if m:
                self.need = int(m.group(1))
                if not self.need:
                    self.line_start = self.pos
                continue
            out.append(bytes(self.buf[:self.pos]))
            del self.buf[:self.pos]
            self.pos = 0
            self.line_start = 0
        return out


class _LiteralFinder:
    """Tracks, over a raw s2c stream, the absolute offset where the k-th
    literal's data begins (without buffering the data itself)."""

    def __init__(self):
        self.total = 0
        self.line = bytearray()
        self.skip = 0
        self.starts = []

    def feed(self, data):
        i = 0
        n = len(data)
        while i < n:
            if self.skip:
                t = min(self.skip, n - i)
                self.skip -= t
                i += t
                continue
            nl = data.find(b'\n', i)
            if nl < 0:
                if len(self.line) < 256:
                    self.line += data[i:i + 256]
                i = n
                break
            self.line += data[i:nl + 1]
            m = LITERAL_RE.search(bytes(self.line[-64:]))
            if m:
                self.skip = int(m.group(1))
                self.starts.append(self.total + nl + 1)
            self.line = bytearray()
            i = nl + 1
        self.total += n


class ProxyConn:
    def __init__(self, proxy, index, client, fault, stat):
        self.proxy = proxy
        self.index = index
        self.client = client
        self.upstream = None
        self.fault = fault
        self.stat = stat
        self.lock = threading.Lock()
        self.dead = False
        self.stalled = threading.Event()
        self.lits = _LiteralFinder()
        self.rewriter = None

    # -- helpers used by rewriters
    def send_client(self, data):
        with self.lock:
            if not self.dead:
                self.client.sendall(data)

    def _close(self, rst=False):
        with self.lock:
            if self.dead:
                return
            self.dead = True
        for s in (self.client, self.upstream):
            if s is None:
                continue
            try:
                if rst:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
                else:
                    s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def _fire(self, direction):
        f = self.fault
        self.stat['fired'] = True
        if f.kind == 'stall':
            self.stalled.set()
            return
        if f.kind == 'bye':
            try:
                self.client.sendall(f.text)
            except OSError:
                pass
        self._close(rst=(f.kind == 'drop'))

    def _limit(self, direction, sent):
        """Bytes of this direction that may still go before the fault, or
        None when no fault is due in this direction."""
        f = self.fault
        if f is None or self.stat['fired'] or f.direction != direction:
            return None
        if f.literal is not None:
            k, m = f.literal
            if len(self.lits.starts) > k:
                return max(0, self.lits.starts[k] + m - sent)
            return None
        return max(0, f.offset - sent)

    def _forward(self, direction, data, dst):
        """Send data to dst honouring the fault; False when the pump ends."""
        if direction == 's2c' and self.fault is not None and self.fault.literal is not None:
            self.lits.feed(data)  # offsets of literals starting in this chunk
        lim = self._limit(direction, self.stat[direction])
        piece = data if lim is None or lim > len(data) else data[:lim]
        if piece:
            try:
                with self.lock:
                    if self.dead:
                        return False
                    dst.sendall(piece)
            except OSError:
                self._close()
                return False
            self.stat[direction] += len(piece)
        if lim is not None and lim <= len(data):
            self._fire(direction)
            return False
        return True

    def _pump(self, src, dst, direction):
        splitter = _Splitter() if self.rewriter is not None else None
        while not self.dead:
            try:
                data = src.recv(65536)
            except OSError:
                data = b''
            if not data:
                break
            if self.stalled.is_set():
                continue  # swallow: nothing moves any more, sockets stay open
            if splitter is not None:
                try:
                    units = splitter.feed(data)
                    data = b''.join(
                        self.rewriter.on_response(u) if direction == 's2c'
                        else self.rewriter.on_command(u) for u in units)
                except Exception as e:  # noqa: BLE001 - a broken test hook
                    with self.proxy._lock:
                        self.proxy.errors.append(e)
                    break
                if not data:
                    continue
            if not self._forward(direction, data, dst) and not self.stalled.is_set():
                break
        self._close()

    def run(self):
        try:
            self.upstream = socket.create_connection(self.proxy.upstream, timeout=10)
            self.upstream.settimeout(None)
        except OSError:
            self._close()
            return
        if self.proxy.rewriter is not None:
            self.rewriter = self.proxy.rewriter(self)
        if self.fault is not None and self.fault.offset == 0 and self.fault.literal is None \
                and self.fault.direction == 's2c':
            self._fire('s2c')
            if self.fault.kind != 'stall':
                return
        t = threading.Thread(target=self._pump, args=(self.client, self.upstream, 'c2s'),
                             daemon=True)
        t.start()
        self._pump(self.upstream, self.client, 's2c')
        t.join(30)


class FaultProxy(listeners._Base):
    def __init__(self, upstream_host, upstream_port, plan=None, rewriter=None):
        self.upstream = (upstream_host, upstream_port)
        self.plan = plan or (lambda i: None)
        self.rewriter = rewriter
        self.stats = []
        self.errors = []  # exceptions raised by rewriters (the connection is closed)
        self._conns = []
        super().__init__()

    def _accepted(self, s):
        with self._lock:
            i = len(self.stats)
            fault = self.plan(i)
            stat = {'index': i, 's2c': 0, 'c2s': 0, 'fired': False,
                    'fault': repr(fault) if fault else None}
            self.stats.append(stat)
            c = ProxyConn(self, i, s, fault, stat)
            self._conns.append(c)
        return lambda: self._run(c)

    def _close_connections(self):
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c._close()

    def _run(self, c):
        try:
            c.run()
        finally:
            c.stat['literals'] = len(c.lits.starts)

    def stall_all(self):
        """Make every connection open now a black hole, as 'stall' does (a
        machine that slept: the server and the routers forgot it): nothing
        moves any more in either direction, the sockets stay open.  Later
        connections are not affected."""
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.stat['fired'] = True
            c.stalled.set()

    def reset_all(self):
        """Reset (RST) every connection open now; later ones are not affected."""
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.stat['fired'] = True
            with c.lock:
                if c.dead:
                    continue
                c.dead = True
            for s in (c.client, c.upstream):
                if s is None:
                    continue
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
                    # wakes the pump blocked in recv(), which holds the socket
                    # open: the reset goes out when it lets go
                    s.shutdown(socket.SHUT_RD)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass

    @property
    def fired(self):
        return sum(1 for s in self.stats if s['fired'])

    def reset_stats(self):
        with self._lock:
            self.stats = []
