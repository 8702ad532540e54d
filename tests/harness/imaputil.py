"""IMAP helpers for tests, on Python's imaplib: modified UTF-7 folder names,
and ImapSession (one logged-in connection with the operations tests need).

Folder names are always given and returned as Python (Unicode) strings with
the server's hierarchy delimiter; the session encodes them to modified UTF-7.
"""

import base64
import calendar
import datetime
import email.parser
import email.policy
import hashlib
import imaplib
import re
import socket
import ssl
import time

# ---------------------------------------------------------------------------
# Modified UTF-7 (RFC 3501 section 5.1.3)


def mutf7_encode(name):
    """Unicode folder name -> modified UTF-7 (str, ASCII only)."""
    out = []
    pending = []

    def flush():
        if pending:
            raw = ''.join(pending).encode('utf-16-be')
            b64 = base64.b64encode(raw).decode('ascii').rstrip('=').replace('/', ',')
            out.append('&' + b64 + '-')
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append('&-' if ch == '&' else ch)
        else:
            pending.append(ch)
    flush()
    return ''.join(out)


class Utf7Error(ValueError):
    pass


def mutf7_decode(name):
    """Modified UTF-7 -> Unicode. Raises Utf7Error on malformed input."""
    if isinstance(name, bytes):
        name = name.decode('ascii')
    out = []
    i = 0
    n = len(name)
    while i < n:
        ch = name[i]
        if ord(ch) < 0x20 or ord(ch) > 0x7e:
            raise Utf7Error('non-ASCII or control character in %r' % name)
        if ch != '&':
            out.append(ch)
            i += 1
            continue
        end = name.find('-', i + 1)
        if end < 0:
            raise Utf7Error('unterminated shift in %r' % name)
        chunk = name[i + 1:end]
        i = end + 1
        if not chunk:
            out.append('&')
            continue
        b64 = chunk.replace(',', '/')
        if not re.fullmatch(r'[A-Za-z0-9+/]+', b64):
            raise Utf7Error('bad base64 in %r' % name)
        try:
            raw = base64.b64decode(b64 + '=' * (-len(b64) % 4), validate=True)
            text = raw.decode('utf-16-be')
        except Exception as e:  # noqa: BLE001 - report as ours
            raise Utf7Error('bad shifted sequence in %r: %s' % (name, e)) from None
        if any(0x20 <= ord(c) <= 0x7e for c in text):
            raise Utf7Error('printable ASCII encoded in shifted form in %r' % name)
        out.append(text)
    return ''.join(out)


# ---------------------------------------------------------------------------
# Flags

# Maildir info letters (ASCII order) <-> IMAP system flags.
MAILDIR_FLAGS = {'D': '\\Draft', 'F': '\\Flagged', 'P': '$Forwarded', 'R': '\\Answered',
                 'S': '\\Seen', 'T': '\\Deleted'}
IMAP_TO_MAILDIR = {v.lower(): k for k, v in MAILDIR_FLAGS.items()}


def maildir_to_imap_flags(letters):
    """'FS' -> ['\\Flagged', '\\Seen'] (sorted; unknown letters kept as-is)."""
    return sorted(MAILDIR_FLAGS.get(c, c) for c in letters)


def imap_to_maildir_flags(flags):
    """['\\Seen', '\\Flagged'] -> 'FS' (unmappable flags dropped)."""
    return ''.join(sorted(IMAP_TO_MAILDIR[f.lower()] for f in flags
                          if f.lower() in IMAP_TO_MAILDIR))


def _flag_list(flags):
    if isinstance(flags, str):
        flags = flags.split()
    return '(' + ' '.join(flags) + ')'


# ---------------------------------------------------------------------------
# Message helpers

def normalize_eol(data):
    return data.replace(b'\r\n', b'\n')


def to_crlf(data):
    """Line ends as CRLF (what IMAP sends), fast when already so."""
    n = data.count(b'\n')
    if n == data.count(b'\r\n'):
        return data
    return data.replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')


def body_sha256(data):
    """sha256 of the whole message with line ends normalised to LF, so a
    message compares equal whether stored with CRLF (IMAP) or LF (Maildir)."""
    return hashlib.sha256(normalize_eol(data)).hexdigest()


def message_id(data):
    """The Message-ID header (with <>), or None."""
    end = data.find(b'\r\n\r\n')
    end2 = data.find(b'\n\n')
    cut = min(x for x in (end, end2, len(data)) if x >= 0)
    hdr = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data[:cut])
    v = hdr.get('Message-ID')
    return ' '.join(str(v).split()) if v is not None else None


def to_internaldate(date):
    """None / epoch / datetime (naive = UTC) / '"dd-Mon-yyyy ..."' -> quoted
    IMAP date-time, or None."""
    if date is None:
        return None
    if isinstance(date, str):
        return date if date.startswith('"') else '"' + date + '"'
    if isinstance(date, datetime.datetime):
        if date.tzinfo is None:
            date = date.replace(tzinfo=datetime.timezone.utc)
        return imaplib.Time2Internaldate(date)
    return imaplib.Time2Internaldate(datetime.datetime.fromtimestamp(
        float(date), tz=datetime.timezone.utc))


_MONTHS = {m: i for i, m in enumerate(
    ('Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'), 1)}


def parse_internaldate(s):
    """'01-Jan-2020 10:00:00 +0100' -> epoch seconds (int)."""
    m = re.fullmatch(r'\s*(\d{1,2})-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)', s)
    if not m:
        raise ValueError('bad INTERNALDATE %r' % s)
    d, mon, y, hh, mm, ss, sign, zh, zm = m.groups()
    t = calendar.timegm((int(y), _MONTHS[mon], int(d), int(hh), int(mm), int(ss), 0, 0, 0))
    off = (int(zh) * 3600 + int(zm) * 60) * (1 if sign == '+' else -1)
    return t - off


def _quote(s):
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"') + '"'


def _uidset(uids):
    uids = sorted(set(int(u) for u in uids))
    if not uids:
        return ''
    parts = []
    start = prev = uids[0]
    for u in uids[1:]:
        if u == prev + 1:
            prev = u
            continue
        parts.append(str(start) if start == prev else '%d:%d' % (start, prev))
        start = prev = u
    parts.append(str(start) if start == prev else '%d:%d' % (start, prev))
    return ','.join(parts)


def _parse_uid_ranges(s):
    out = []
    for part in s.split(','):
        if ':' in part:
            a, b = part.split(':')
            a, b = int(a), int(b)
            out.extend(range(min(a, b), max(a, b) + 1))
        else:
            out.append(int(part))
    return out


class ImapError(RuntimeError):
    pass


class ImapSession:
    """One logged-in IMAP connection.

    tls: None/'plain' (no TLS), 'starttls', or 'tls' (implicit). Certificates
    are verified against ca_file (or not at all with verify=False).
    """

    def __init__(self, host, port, user, password, tls=None, ca_file=None, verify=True,
                 timeout=30):
        self.user = user
        if tls in (None, 'plain', False):
            self.imap = imaplib.IMAP4(host, port, timeout=timeout)
        else:
            ctx = ssl.create_default_context(cafile=ca_file)
            if not verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if tls == 'starttls':
                self.imap = imaplib.IMAP4(host, port, timeout=timeout)
                self.imap.starttls(ssl_context=ctx)
            elif tls in ('tls', 'ssl', True):
                self.imap = imaplib.IMAP4_SSL(host, port, ssl_context=ctx, timeout=timeout)
            else:
                raise ValueError('tls must be None, "starttls" or "tls"')
        try:
            self.imap.login(user, password)
        except Exception:
            self.imap.shutdown()
            raise
        self._caps = None
        self._delim = None
        self._selected = None

    # -- basics ------------------------------------------------------------
    def close(self):
        try:
            self.imap.logout()
        except Exception:  # noqa: BLE001 - closing anyway
            try:
                self.imap.shutdown()
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _ok(self, res, what):
        typ, data = res
        if typ != 'OK':
            raise ImapError('%s: %s %r' % (what, typ, data))
        return data

    def capabilities(self):
        if self._caps is None:
            data = self._ok(self.imap.capability(), 'CAPABILITY')
            self._caps = set(data[0].decode().upper().split())
        return self._caps

    @property
    def delimiter(self):
        if self._delim is None:
            data = self._ok(self.imap.list('""', '""'), 'LIST')
            m = re.match(rb'\(.*?\) (NIL|"((?:\\.|[^"])*)")', data[0] or b'')
            self._delim = '' if not m or m.group(1) == b'NIL' else m.group(2).decode()
        return self._delim

    def command(self, name, *args):
        """Any command (e.g. 'ENABLE', 'QRESYNC'); returns (typ, data)."""
        if name not in imaplib.Commands:
            imaplib.Commands[name] = ('AUTH', 'SELECTED')
        return self.imap._simple_command(name, *args)

    # -- folders -----------------------------------------------------------
    def create_folder(self, name, exist_ok=True):
        typ, data = self.imap.create(_quote(mutf7_encode(name)))
        if typ != 'OK' and not (exist_ok and b'ALREADYEXISTS' in b' '.join(
                d for d in data if isinstance(d, bytes)).upper()):
            raise ImapError('CREATE %s: %s %r' % (name, typ, data))

    def delete_folder(self, name):
        self._unselect_if(name)
        self._ok(self.imap.delete(_quote(mutf7_encode(name))), 'DELETE ' + name)

    def rename_folder(self, old, new):
        self._unselect_if(old)
        self._ok(self.imap.rename(_quote(mutf7_encode(old)), _quote(mutf7_encode(new))),
                 'RENAME')

    def list_raw(self, pattern='*'):
        """[(attributes list, delimiter, Unicode name)] in server order."""
        data = self._ok(self.imap.list('""', _quote(pattern)), 'LIST')
        out = []
        i = 0
        while i < len(data):
            item = data[i]
            i += 1
            if item is None:
                continue
            if isinstance(item, tuple):  # name sent as a literal
                head, lit = item
                m = re.match(rb'\((.*?)\) (NIL|"(?:\\.|[^"])*") ', head)
                attrs, delim, raw = m.group(1), m.group(2), lit
            else:
                m = re.match(rb'\((.*?)\) (NIL|"(?:\\.|[^"])*") (.*)$', item)
                if not m:
                    raise ImapError('cannot parse LIST line %r' % item)
                attrs, delim, raw = m.groups()
                if raw.startswith(b'"'):
                    raw = re.sub(rb'\\(.)', rb'\1', raw[1:-1])
            d = None if delim == b'NIL' else re.sub(rb'\\(.)', rb'\1', delim[1:-1]).decode()
            out.append((attrs.decode().split(), d, mutf7_decode(raw.decode('ascii'))))
        return out

    def list_folders(self, selectable_only=True):
        """Sorted Unicode names of all folders (\\Noselect ones left out unless
        selectable_only=False)."""
        return sorted(name for attrs, _, name in self.list_raw()
                      if not selectable_only or '\\noselect' not in
                      [a.lower() for a in attrs] and '\\nonexistent' not in
                      [a.lower() for a in attrs])

    def select(self, name, readonly=False):
        """SELECT/EXAMINE; returns {exists, uidvalidity, uidnext, highestmodseq}."""
        typ, data = self.imap.select(_quote(mutf7_encode(name)), readonly=readonly)
        if typ != 'OK':
            raise ImapError('SELECT %s: %s %r' % (name, typ, data))
        self._selected = name
        info = {'exists': int(data[0])}
        for key in ('UIDVALIDITY', 'UIDNEXT', 'HIGHESTMODSEQ'):
            v = self.imap.untagged_responses.get(key)
            if v:
                info[key.lower()] = int(v[-1])
        return info

    def _unselect_if(self, name):
        if self._selected is not None and self._selected == name:
            self.imap.close()
            self._selected = None

    def _ensure(self, name):
        if self._selected != name:
            self.select(name)

    def status(self, name):
        """{messages, uidnext, uidvalidity, unseen[, highestmodseq]}."""
        items = 'MESSAGES UIDNEXT UIDVALIDITY UNSEEN'
        if 'CONDSTORE' in self.capabilities():
            items += ' HIGHESTMODSEQ'
        data = self._ok(self.imap.status(_quote(mutf7_encode(name)), '(' + items + ')'),
                        'STATUS')
        m = re.search(rb'\((.*)\)\s*$', data[0])
        toks = m.group(1).split()
        return {toks[i].decode().lower(): int(toks[i + 1]) for i in range(0, len(toks), 2)}

    def uidvalidity(self, name):
        return self.status(name)['uidvalidity']

    # -- messages ----------------------------------------------------------
    def append(self, folder, msg, flags=(), date=None):
        """APPEND one message; returns its UID (from APPENDUID)."""
        return self.append_many(folder, [(msg, flags, date)])[0]

    def append_many(self, folder, items, batch_bytes=8 << 20, batch_count=1000):
        """Append many messages fast: MULTIAPPEND (RFC 3502) batches with
        LITERAL+ literals, so each batch is one round trip.

        items: iterable of bytes, or (msg, flags, date) tuples, or dicts with
        keys data/flags/date. Returns the list of UIDs in order."""
        caps = self.capabilities()
        multi = 'MULTIAPPEND' in caps and 'LITERAL+' in caps
        mbox = _quote(mutf7_encode(folder))
        uids = []
        batch = []
        size = 0
        for it in items:
            if isinstance(it, (bytes, bytearray)):
                msg, flags, date = bytes(it), (), None
            elif isinstance(it, dict):
                msg, flags, date = it['data'], it.get('flags', ()), it.get('date')
            else:
                msg, flags, date = (tuple(it) + ((), None))[:3]
            msg = to_crlf(msg)
            if not multi:
                typ, data = self.imap.append(mbox, _flag_list(flags), to_internaldate(date), msg)
                uids.extend(self._appenduid(typ, data, 1))
                continue
            part = _flag_list(flags).encode()
            d = to_internaldate(date)
            if d:
                part += b' ' + d.encode()
            part += b' {%d+}\r\n' % len(msg) + msg
            batch.append(part)
            size += len(part)
            if size >= batch_bytes or len(batch) >= batch_count:
                uids.extend(self._flush_append(mbox, batch))
                batch, size = [], 0
        if batch:
            uids.extend(self._flush_append(mbox, batch))
        return uids

    def _flush_append(self, mbox, batch):
        typ, data = self.imap._simple_command('APPEND', mbox, b' '.join(batch))
        return self._appenduid(typ, data, len(batch))

    @staticmethod
    def _appenduid(typ, data, count):
        if typ != 'OK':
            raise ImapError('APPEND: %s %r' % (typ, data))
        text = b' '.join(d for d in data if isinstance(d, bytes))
        m = re.search(rb'\[APPENDUID (\d+) ([\d:,]+)\]', text)
        if not m:
            return [None] * count
        uids = _parse_uid_ranges(m.group(2).decode())
        if len(uids) != count:
            raise ImapError('APPENDUID gave %d UIDs for %d messages' % (len(uids), count))
        return uids

    def uids(self, folder):
        """All UIDs of a folder, ascending."""
        self._ensure(folder)
        data = self._ok(self.imap.uid('SEARCH', None, 'ALL'), 'UID SEARCH')
        return sorted(int(x) for x in b' '.join(d for d in data if d).split())

    def fetch_all(self, folder, with_body=False, modseq=False, chunk=500):
        """Every message of a folder as a list of dicts, by ascending UID:
        {uid, flags (sorted, without \\Recent), message_id, body_sha256, size,
         internaldate (epoch s)[, modseq][, body]}. Bodies are fetched in
        chunks and only kept when with_body=True."""
        self._ensure(folder)
        all_uids = self.uids(folder)
        items = 'UID FLAGS RFC822.SIZE INTERNALDATE'
        if modseq:
            items += ' MODSEQ'
        items += ' BODY.PEEK[]'
        out = []
        for i in range(0, len(all_uids), chunk):
            part = all_uids[i:i + chunk]
            data = self._ok(self.imap.uid('FETCH', _uidset(part), '(' + items + ')'),
                            'UID FETCH')
            for rec in self._records(data):
                if rec.get('body') is None or 'uid' not in rec:
                    continue  # unsolicited FETCH (flag change elsewhere)
                body = rec.pop('body')
                rec['message_id'] = message_id(body)
                rec['body_sha256'] = body_sha256(body)
                if with_body:
                    rec['body'] = body
                out.append(rec)
        out.sort(key=lambda r: r['uid'])
        return out

    def fetch_flags(self, folder):
        """{uid: sorted flags} for a folder (cheap; no bodies)."""
        self._ensure(folder)
        data = self._ok(self.imap.uid('FETCH', '1:*', '(UID FLAGS)'), 'UID FETCH')
        if data == [None]:
            return {}
        return {r['uid']: r['flags'] for r in self._records(data) if 'uid' in r}

    @staticmethod
    def _records(data):
        recs = []
        cur = None
        for item in data:
            if item is None:
                continue
            if isinstance(item, tuple):
                cur = {'_text': item[0], 'body': item[1]}
                recs.append(cur)
            elif re.match(rb'\d+ \(', item):
                cur = {'_text': item, 'body': None}
                recs.append(cur)
            elif cur is not None:
                cur['_text'] += b' ' + item
        out = []
        for r in recs:
            t = r.pop('_text')
            m = re.search(rb'\bUID (\d+)', t)
            if m:
                r['uid'] = int(m.group(1))
            m = re.search(rb'\bFLAGS \(([^)]*)\)', t)
            if m:
                r['flags'] = sorted(f for f in m.group(1).decode().split()
                                    if f.lower() != '\\recent')
            m = re.search(rb'\bRFC822\.SIZE (\d+)', t)
            if m:
                r['size'] = int(m.group(1))
            m = re.search(rb'\bINTERNALDATE "([^"]+)"', t)
            if m:
                r['internaldate'] = parse_internaldate(m.group(1).decode())
            m = re.search(rb'\bMODSEQ \((\d+)\)', t)
            if m:
                r['modseq'] = int(m.group(1))
            out.append(r)
        return out

    def store(self, folder, uids, op, flags):
        """op: '+FLAGS', '-FLAGS' or 'FLAGS' (silent variants used)."""
        uids = list(uids)
        if not uids:
            return
        self._ensure(folder)
        self._ok(self.imap.uid('STORE', _uidset(uids), op + '.SILENT', _flag_list(flags)),
                 'UID STORE')

    def set_flags(self, folder, uids, flags):
        self.store(folder, uids, '+FLAGS', flags)

    def clear_flags(self, folder, uids, flags):
        self.store(folder, uids, '-FLAGS', flags)

    def replace_flags(self, folder, uids, flags):
        self.store(folder, uids, 'FLAGS', flags)

    def delete(self, folder, uids, expunge=True):
        """Mark \\Deleted and (by default) UID EXPUNGE just those UIDs."""
        uids = list(uids)
        if not uids:
            return
        self.set_flags(folder, uids, ['\\Deleted'])
        if expunge:
            if 'UIDPLUS' in self.capabilities():
                self._ok(self.imap.uid('EXPUNGE', _uidset(uids)), 'UID EXPUNGE')
            else:
                self._ok(self.imap.expunge(), 'EXPUNGE')

    def expunge(self, folder):
        self._ensure(folder)
        self._ok(self.imap.expunge(), 'EXPUNGE')

    def copy(self, folder, uids, dest):
        self._ensure(folder)
        self._ok(self.imap.uid('COPY', _uidset(uids), _quote(mutf7_encode(dest))), 'UID COPY')

    def move(self, folder, uids, dest):
        self._ensure(folder)
        self._ok(self.imap.uid('MOVE', _uidset(uids), _quote(mutf7_encode(dest))), 'UID MOVE')


def wait_port(host, port, timeout=10.0, greeting=False):
    """Wait until host:port accepts TCP (and, with greeting=True, sends an
    IMAP '* OK' line). Returns True, or False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                if not greeting:
                    return True
                s.settimeout(max(0.1, deadline - time.monotonic()))
                if s.makefile('rb').readline().startswith(b'* OK'):
                    return True
        except OSError:
            pass
        time.sleep(0.01)
    return False


def port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
