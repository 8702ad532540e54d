"""A scripted fake Gmail IMAP server: folders and messages in memory, enough
IMAP for oimap, with Gmail's labels (X-GM-EXT-1).

    from fakegmail import FakeGmail
    with FakeGmail(user='me@gmail.com', password='pw') as g:
        uid = g.add('INBOX', b'Subject: x\\r\\n\\r\\nbody\\r\\n', flags={'\\\\Seen'},
                    labels={'Work', '\\\\Important'})
        g.port, g.labels('INBOX', uid), g.set_labels('INBOX', uid, {...}), g.messages('INBOX')
        g.commands            # every command line received (bytes, tags stripped)

It speaks: CAPABILITY (IMAP4rev1 UIDPLUS X-GM-EXT-1 LITERAL+ ID NAMESPACE
SPECIAL-USE AUTH=PLAIN), LOGIN, AUTHENTICATE PLAIN, NOOP, LOGOUT, ID,
NAMESPACE, ENABLE (enables nothing), LIST/LSUB with Gmail's [Gmail]/...
folders and their special-use flags, STATUS, CREATE, SELECT/EXAMINE,
CLOSE/UNSELECT, CHECK, UID FETCH (UID FLAGS RFC822.SIZE INTERNALDATE
X-GM-LABELS X-GM-MSGID BODY.PEEK[] BODY[] RFC822), UID STORE (FLAGS and
X-GM-LABELS, +/-, .SILENT), APPEND (flags, date, synchronising or not
literals; APPENDUID), UID SEARCH HEADER / ALL / UID, EXPUNGE and UID
EXPUNGE.  With condstore=True (the default, as Gmail) also CONDSTORE (ENABLE,
SELECT (CONDSTORE), HIGHESTMODSEQ, FETCH MODSEQ and CHANGEDSINCE; every
change of a message, its labels included, raises its MODSEQ) and
LIST-STATUS.  No QRESYNC, no IDLE.

The model is simpler than Gmail's: each folder holds its own messages and
each message its own label set (a label is not a folder here, and APPEND
gives no label).  Anything else gets BAD.  Loopback only, one thread per
connection, all state under one lock.
"""

import re
import threading
import time

import listeners

CAPS = 'IMAP4rev1 UIDPLUS X-GM-EXT-1 LITERAL+ ID NAMESPACE SPECIAL-USE AUTH=PLAIN'
CAPS_CONDSTORE = CAPS + ' ENABLE CONDSTORE LIST-STATUS'
GMAIL_FOLDERS = {
    'INBOX': '',
    '[Gmail]': '\\Noselect',
    '[Gmail]/All Mail': '\\All',
    '[Gmail]/Drafts': '\\Drafts',
    '[Gmail]/Sent Mail': '\\Sent',
    '[Gmail]/Spam': '\\Junk',
    '[Gmail]/Starred': '\\Flagged',
    '[Gmail]/Trash': '\\Trash',
    '[Gmail]/Important': '\\Important',
}
MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']


class Literal(bytes):
    """A literal argument (tells apart {3}abc from the atom abc)."""


class ImapSyntax(Exception):
    pass


def tokenize(parts):
    """Tokens of a command after the tag: parts alternate text (bytes) and
    literal data.  Atoms and quoted strings are bytes, literals Literal,
    parenthesised lists Python lists."""
    stack = [[]]
    for i, part in enumerate(parts):
        if i % 2 == 1:
            stack[-1].append(Literal(part))
            continue
        if i + 1 < len(parts):
            part = re.sub(rb'\{\d+\+?\}$', b'', part)
        p = 0
        while p < len(part):
            c = part[p:p + 1]
            if c == b' ':
                p += 1
            elif c == b'(':
                stack.append([])
                p += 1
            elif c == b')':
                if len(stack) < 2:
                    raise ImapSyntax('unbalanced )')
                lst = stack.pop()
                stack[-1].append(lst)
                p += 1
            elif c == b'"':
                p += 1
                out = bytearray()
                while p < len(part) and part[p:p + 1] != b'"':
                    if part[p:p + 1] == b'\\':
                        p += 1
                    out += part[p:p + 1]
                    p += 1
                if p >= len(part):
                    raise ImapSyntax('unterminated string')
                p += 1
                stack[-1].append(bytes(out))
            else:
                m = re.match(rb'[^ ()"\[]+(\[[^\]]*\](<[0-9.]+>)?)?', part[p:])
                if not m or not m.group(0):
                    raise ImapSyntax('bad atom at %r' % part[p:p + 10])
                stack[-1].append(m.group(0))
                p += len(m.group(0))
    if len(stack) != 1:
        raise ImapSyntax('unbalanced (')
    return stack[0]


def quote(s):
    if isinstance(s, str):
        s = s.encode()
    return b'"' + s.replace(b'\\', b'\\\\').replace(b'"', b'\\"') + b'"'


def astring(s):
    """A label or name as an atom when it is one, else quoted (as Gmail)."""
    b = s.encode() if isinstance(s, str) else s
    if b and re.fullmatch(rb'\\?[A-Za-z0-9_.\-&+,/\[\]]+', b):
        return b
    return quote(b)


def mutf7_name(b):
    return b.decode('ascii', 'replace')


class Msg:
    def __init__(self, uid, body, flags=(), labels=(), date=None):
        self.uid = uid
        self.modseq = 0
        self.body = body
        self.flags = set(flags)
        self.labels = set(labels)
        self.date = date if date is not None else time.time()


class Folder:
    def __init__(self, name, special='', uidvalidity=1):
        self.name = name
        self.special = special
        self.uidvalidity = uidvalidity
        self.uidnext = 1
        self.msgs = []
        self.modseq = 1

    def touch(self, m):
        self.modseq += 1
        m.modseq = self.modseq


def parse_set(s, maxuid):
    out = []
    for part in s.decode().split(','):
        a, _, b = part.partition(':')
        lo = maxuid if a == '*' else int(a)
        hi = lo if not b else (maxuid if b == '*' else int(b))
        if lo > hi:
            lo, hi = hi, lo
        out.append((lo, hi))
    return out


def in_set(uid, ranges):
    return any(lo <= uid <= hi for lo, hi in ranges)


class FakeGmail(listeners.FakeImapServer):
    def __init__(self, user='me@gmail.com', password='secret', folders=None, tls=False,
                 condstore=True):
        self.user = user
        self.condstore = condstore
        self.password = password
        self.state_lock = threading.RLock()
        self.folders = {}
        self.commands = []
        self.next_validity = 1000
        for name, special in (folders or GMAIL_FOLDERS).items():
            self._mkfolder(name, special)
        super().__init__(handler=self._handle, greeting=b'* OK Gimap ready for requests\r\n',
                         tls=tls)

    # ---- test-side helpers ----------------------------------------------------

    def _mkfolder(self, name, special=''):
        self.next_validity += 1
        f = Folder(name, special, self.next_validity)
        self.folders[name] = f
        return f

    def add(self, folder, body, flags=(), labels=(), date=None):
        """Put a message in folder; returns its UID."""
        if isinstance(body, str):
            body = body.encode()
        with self.state_lock:
            f = self.folders.get(folder) or self._mkfolder(folder)
            m = Msg(f.uidnext, body, flags, labels, date)
            f.uidnext += 1
            f.msgs.append(m)
            f.touch(m)
            return m.uid

    def msg(self, folder, uid):
        with self.state_lock:
            for m in self.folders[folder].msgs:
                if m.uid == uid:
                    return m
        return None

    def labels(self, folder, uid):
        with self.state_lock:
            return set(self.msg(folder, uid).labels)

    def set_labels(self, folder, uid, labels):
        with self.state_lock:
            m = self.msg(folder, uid)
            m.labels = set(labels)
            self.folders[folder].touch(m)

    def messages(self, folder):
        """[(uid, flags, labels, body)] of folder."""
        with self.state_lock:
            return [(m.uid, set(m.flags), set(m.labels), m.body)
                    for m in self.folders[folder].msgs]

    # ---- the protocol ---------------------------------------------------------

    def _read_command(self, conn, line):
        """The command's parts: text and literal data alternating."""
        parts = [line]
        while True:
            m = re.search(rb'\{(\d+)(\+?)\}$', parts[-1])
            if not m:
                return parts
            if not m.group(2):
                conn.send(b'+ go ahead\r\n')
            parts.append(conn.read_exact(int(m.group(1))))
            nxt = conn.readline()
            parts.append(nxt if nxt is not None else b'')

    def _handle(self, conn, line):
        if not hasattr(conn, 'selected'):
            conn.selected = None
            conn.readonly = False
        tag, _, rest = line.partition(b' ')
        parts = self._read_command(conn, rest)
        with self.state_lock:
            self.commands.append(b' '.join(p for i, p in enumerate(parts) if i % 2 == 0))
        try:
            toks = tokenize(parts)
        except ImapSyntax as e:
            conn.send(tag + b' BAD ' + str(e).encode() + b'\r\n')
            return
        if not toks or not isinstance(toks[0], bytes):
            conn.send(tag + b' BAD no command\r\n')
            return
        cmd = toks[0].upper()
        args = toks[1:]
        if cmd == b'UID' and args and isinstance(args[0], bytes):
            cmd = b'UID ' + args[0].upper()
            args = args[1:]
        fn = getattr(self, '_cmd_' + cmd.decode().replace(' ', '_').lower(), None)
        if fn is None:
            conn.send(tag + b' BAD unknown command\r\n')
            return
        try:
            with self.state_lock:
                out = fn(conn, args)
        except (ImapSyntax, IndexError, ValueError, KeyError) as e:
            conn.send(tag + b' BAD ' + repr(e).encode() + b'\r\n')
            return
        if out is None:
            out = (b'', b'OK done')
        data, status = out
        conn.send(data + tag + b' ' + status + b'\r\n')
        if cmd == b'LOGOUT':
            conn.close()

    def _cmd_capability(self, conn, args):
        caps = CAPS_CONDSTORE if self.condstore else CAPS
        return b'* CAPABILITY ' + caps.encode() + b'\r\n', b'OK done'

    def _cmd_noop(self, conn, args):
        return None

    _cmd_check = _cmd_noop

    def _cmd_logout(self, conn, args):
        return b'* BYE LOGOUT Requested\r\n', b'OK 73 good day'

    def _cmd_id(self, conn, args):
        return b'* ID ("name" "GImap" "vendor" "Google, Inc.")\r\n', b'OK done'

    def _cmd_namespace(self, conn, args):
        return b'* NAMESPACE (("" "/")) NIL NIL\r\n', b'OK done'

    def _cmd_enable(self, conn, args):
        on = [a for a in args if self.condstore and a.upper() == b'CONDSTORE']
        return b'* ENABLED' + b''.join(b' ' + a for a in on) + b'\r\n', b'OK done'

    def _cmd_login(self, conn, args):
        if args[0].decode() == self.user and args[1].decode() == self.password:
            return b'', b'OK ' + self.user.encode() + b' authenticated (Success)'
        return b'', b'NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)'

    def _cmd_authenticate(self, conn, args):
        import base64
        if args[0].upper() != b'PLAIN':
            return b'', b'NO unsupported mechanism'
        if len(args) > 1:
            resp = args[1]
        else:
            conn.send(b'+ \r\n')
            resp = conn.readline() or b''
        _, user, pw = base64.b64decode(resp).split(b'\0')
        return self._cmd_login(conn, [user, pw])

    def _flags_of(self, f):
        return f.special.encode()

    def _cmd_list(self, conn, args):
        pattern = args[1].decode()
        rx = re.escape(pattern).replace(r'\*', '.*').replace('%', '[^/]*')
        out = b''
        for name in sorted(self.folders):
            if not re.fullmatch(rx, name):
                continue
            f = self.folders[name]
            attrs = [a for a in (f.special,) if a]
            kids = any(n.startswith(name + '/') for n in self.folders)
            attrs.append('\\HasChildren' if kids else '\\HasNoChildren')
            out += b'* LIST (' + ' '.join(attrs).encode() + b') "/" ' + quote(name) + b'\r\n'
            status = self._list_status(args)
            if status is not None and f.special != '\\Noselect':
                out += self._cmd_status(conn, [quote(name)[1:-1], status])[0]
        return out, b'OK Success'

    def _list_status(self, args):
        """The STATUS items of LIST ... RETURN (... STATUS (items))."""
        if not self.condstore or len(args) < 4 or args[2].upper() != b'RETURN':
            return None
        ret = args[3]
        for i, x in enumerate(ret):
            if isinstance(x, bytes) and x.upper() == b'STATUS' and i + 1 < len(ret):
                return ret[i + 1]
        return None

    _cmd_lsub = _cmd_list

    def _folder(self, name):
        n = name.decode()
        if n.upper() == 'INBOX':
            n = 'INBOX'
        f = self.folders.get(n)
        if f is None or f.special == '\\Noselect':
            raise KeyError('no folder ' + n)
        return f

    def _cmd_status(self, conn, args):
        f = self._folder(args[0])
        items = []
        for it in args[1]:
            it = it.upper()
            val = {b'MESSAGES': len(f.msgs), b'UIDNEXT': f.uidnext, b'UIDVALIDITY': f.uidvalidity,
                   b'UNSEEN': sum(1 for m in f.msgs if '\\Seen' not in m.flags),
                   b'RECENT': 0,
                   b'HIGHESTMODSEQ': f.modseq if self.condstore else None}.get(it)
            if val is None:
                raise ImapSyntax('status item')
            items.append(it + b' ' + str(val).encode())
        return (b'* STATUS ' + quote(f.name) + b' (' + b' '.join(items) + b')\r\n', b'OK Success')

    def _cmd_create(self, conn, args):
        n = args[0].decode()
        if n in self.folders:
            return b'', b'NO [ALREADYEXISTS] Duplicate folder name (Failure)'
        self._mkfolder(n)
        return b'', b'OK Success'

    def _select(self, conn, args, readonly):
        f = self._folder(args[0])
        conn.selected = f.name
        conn.readonly = readonly
        out = (b'* FLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen $Forwarded)\r\n'
               b'* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen '
               b'$Forwarded \\*)] Flags permitted.\r\n'
               b'* OK [UIDVALIDITY %d] UIDs valid.\r\n'
               b'* %d EXISTS\r\n* 0 RECENT\r\n'
               b'* OK [UIDNEXT %d] Predicted next UID.\r\n'
               % (f.uidvalidity, len(f.msgs), f.uidnext))
        if self.condstore:
            out += b'* OK [HIGHESTMODSEQ %d]\r\n' % f.modseq
        return out, (b'OK [READ-ONLY] ' if readonly else b'OK [READ-WRITE] ') + quote(f.name) + \
            b' selected. (Success)'

    def _cmd_select(self, conn, args):
        return self._select(conn, args, False)

    def _cmd_examine(self, conn, args):
        return self._select(conn, args, True)

    def _cmd_close(self, conn, args):
        conn.selected = None
        return None

    _cmd_unselect = _cmd_close

    def _sel(self, conn):
        if conn.selected is None:
            raise KeyError('no folder selected')
        return self.folders[conn.selected]

    def _date(self, t):
        tm = time.gmtime(t)
        return ('"%02d-%s-%04d %02d:%02d:%02d +0000"' % (
            tm.tm_mday, MONTHS[tm.tm_mon - 1], tm.tm_year, tm.tm_hour, tm.tm_min,
            tm.tm_sec)).encode()

    def _labels_item(self, m):
        return b'X-GM-LABELS (' + b' '.join(astring(x) for x in sorted(m.labels)) + b')'

    def _fetch_items(self, m, items):
        out = [b'UID ' + str(m.uid).encode()]
        for it in items:
            u = it.upper()
            if u == b'UID':
                continue
            if u == b'FLAGS':
                out.append(b'FLAGS (' + ' '.join(sorted(m.flags)).encode() + b')')
            elif u == b'RFC822.SIZE':
                out.append(b'RFC822.SIZE ' + str(len(m.body)).encode())
            elif u == b'INTERNALDATE':
                out.append(b'INTERNALDATE ' + self._date(m.date))
            elif u == b'X-GM-LABELS':
                out.append(self._labels_item(m))
            elif u == b'MODSEQ' and self.condstore:
                out.append(b'MODSEQ (%d)' % m.modseq)
            elif u == b'X-GM-MSGID':
                out.append(b'X-GM-MSGID ' + str(1000000 + m.uid).encode())
            elif u in (b'BODY.PEEK[]', b'BODY[]', b'RFC822'):
                name = b'RFC822' if u == b'RFC822' else b'BODY[]'
                out.append(name + b' {' + str(len(m.body)).encode() + b'}\r\n' + m.body)
                if u != b'BODY.PEEK[]':
                    m.flags.add('\\Seen')
            else:
                raise ImapSyntax('fetch item ' + u.decode())
        return b'(' + b' '.join(out) + b')'

    def _cmd_uid_fetch(self, conn, args):
        f = self._sel(conn)
        maxuid = f.msgs[-1].uid if f.msgs else 0
        ranges = parse_set(args[0], maxuid)
        items = args[1] if isinstance(args[1], list) else [args[1]]
        since = None
        if len(args) > 2 and isinstance(args[2], list) and args[2] and \
                args[2][0].upper() == b'CHANGEDSINCE' and self.condstore:
            since = int(args[2][1])
            items = list(items) + [b'MODSEQ']
        out = b''
        for seq, m in enumerate(f.msgs, 1):
            if since is not None and m.modseq <= since:
                continue
            if in_set(m.uid, ranges):
                out += b'* %d FETCH ' % seq + self._fetch_items(m, items) + b'\r\n'
        return out, b'OK Success'

    def _cmd_uid_store(self, conn, args):
        f = self._sel(conn)
        if conn.readonly:
            return b'', b'NO STORE attempt on READ-ONLY folder (Failure)'
        maxuid = f.msgs[-1].uid if f.msgs else 0
        ranges = parse_set(args[0], maxuid)
        item = args[1].upper()
        vals = args[2] if isinstance(args[2], list) else [args[2]]
        vals = [v.decode() for v in vals]
        silent = item.endswith(b'.SILENT')
        base = item[:-7] if silent else item
        op = base[:1] if base[:1] in (b'+', b'-') else b''
        what = base[len(op):]
        if what not in (b'FLAGS', b'X-GM-LABELS'):
            raise ImapSyntax('store item')
        out = b''
        for seq, m in enumerate(f.msgs, 1):
            if not in_set(m.uid, ranges):
                continue
            target = m.flags if what == b'FLAGS' else m.labels
            if op == b'+':
                target.update(vals)
            elif op == b'-':
                target.difference_update(vals)
            else:
                target.clear()
                target.update(vals)
            f.touch(m)
            if not silent:
                item_out = (b'FLAGS (' + ' '.join(sorted(m.flags)).encode() + b')'
                            if what == b'FLAGS' else self._labels_item(m))
                out += b'* %d FETCH (UID %d %s)\r\n' % (seq, m.uid, item_out)
        return out, b'OK Success'

    def _cmd_append(self, conn, args):
        f = self._folder(args[0])
        flags, date = (), None
        rest = args[1:]
        if rest and isinstance(rest[0], list):
            flags = [x.decode() for x in rest[0]]
            rest = rest[1:]
        if rest and not isinstance(rest[0], Literal):
            d = rest[0].decode()
            tm = time.strptime(d[:20], '%d-%b-%Y %H:%M:%S')
            date = time.mktime(tm) - time.timezone
            rest = rest[1:]
        if not rest or not isinstance(rest[0], Literal):
            raise ImapSyntax('append: no message')
        m = Msg(f.uidnext, bytes(rest[0]), flags, (), date)
        f.uidnext += 1
        f.msgs.append(m)
        f.touch(m)
        return b'', b'OK [APPENDUID %d %d] (Success)' % (f.uidvalidity, m.uid)

    def _search(self, f, args):
        res = []
        i = 0
        crit = [a.upper() if isinstance(a, bytes) and not isinstance(a, Literal) else a
                for a in args]
        msgs = list(f.msgs)
        while i < len(crit):
            c = crit[i]
            if c == b'ALL':
                i += 1
            elif c == b'HEADER':
                name, val = args[i + 1].decode().lower(), bytes(args[i + 2]).lower()
                msgs = [m for m in msgs if self._has_header(m.body, name, val)]
                i += 3
            elif c == b'UID':
                ranges = parse_set(args[i + 1], f.msgs[-1].uid if f.msgs else 0)
                msgs = [m for m in msgs if in_set(m.uid, ranges)]
                i += 2
            else:
                raise ImapSyntax('search key')
        res = [m.uid for m in msgs]
        return res

    @staticmethod
    def _has_header(body, name, val):
        head = body.split(b'\r\n\r\n', 1)[0].split(b'\n\n', 1)[0]
        for line in re.split(rb'\r?\n(?![ \t])', head):
            k, _, v = line.partition(b':')
            if k.strip().lower().decode(errors='replace') == name and val in v.lower():
                return True
        return False

    def _cmd_uid_search(self, conn, args):
        f = self._sel(conn)
        uids = self._search(f, args)
        return b'* SEARCH' + b''.join(b' %d' % u for u in uids) + b'\r\n', b'OK SEARCH completed'

    def _expunge(self, conn, ranges):
        f = self._sel(conn)
        if conn.readonly:
            return b'', b'NO EXPUNGE attempt on READ-ONLY folder (Failure)'
        out = b''
        seq = 1
        keep = []
        for m in f.msgs:
            if '\\Deleted' in m.flags and (ranges is None or in_set(m.uid, ranges)):
                out += b'* %d EXPUNGE\r\n' % seq
                f.modseq += 1
            else:
                keep.append(m)
                seq += 1
        f.msgs = keep
        return out, b'OK Success'

    def _cmd_expunge(self, conn, args):
        return self._expunge(conn, None)

    def _cmd_uid_expunge(self, conn, args):
        f = self._sel(conn)
        return self._expunge(conn, parse_set(args[0], f.msgs[-1].uid if f.msgs else 0))
