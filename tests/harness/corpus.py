"""Deterministic sample mail, and Maildir/IMAP comparison helpers.

    msgs = corpus.generate(100, seed=1)          # list of Message
    msgs[0].data, .flags, .date, .message_id, .folder
    corpus.fill(dovecot, 'alice', 500, seed=1)   # -> {folder: [record...]}
    corpus.hash_maildir('/path/Maildir/INBOX')   # -> [record...]
    corpus.summary(records)                      # comparable multiset

Same seed, same bytes, on every machine and Python 3 version (only
random.Random with an explicit seed is used, never hash() or the clock).
"""

import base64
import collections
import hashlib
import os
import random
import re
import threading

from imaputil import body_sha256, maildir_to_imap_flags, message_id as parse_message_id

Message = collections.namedtuple('Message', 'data flags date message_id folder size')

# default folder mix for fill(): (name, weight, flag profile); names use '/'
# and are translated to the server's delimiter
DEFAULT_FOLDERS = (
    ('INBOX', 50, 'inbox'),
    ('Sent', 20, 'sent'),
    ('Lists/dev', 15, 'list'),
    ('Brouillons/Été', 15, 'drafts'),
)

_WORDS = (
    'the of and to in is that for it as was with be by on not he this are or his from at '
    'which but have an they you were her she there been one all we their has would when if '
    'so no what can out other time up more some its into only could new about then these '
    'two may first any like now my such make over our even most me state after also made '
    'many did must before back see through way where get much go well your know should '
    'down work year because come people just say each those take day good how long little '
    'use very great same own under last right never old while found still between mail '
    'server folder sync message release patch build review meeting notes draft update '
    'schedule budget report invoice ticket deploy branch merge offline imap maildir').split()

_FIRST = ('Alice', 'Bob', 'Carol', 'Dave', 'Eve', 'Frank', 'Grace', 'Heidi', 'Ivan', 'Judy',
          'Mallory', 'Niaj', 'Olivia', 'Peggy', 'Rupert', 'Sybil', 'Trent', 'Victor',
          'Walter', 'Zoë', 'José', 'Søren', 'Ōta', 'Łukasz')
_LAST = ('Smith', 'Jones', 'Martin', 'Bernard', 'Dubois', 'Müller', 'Rossi', 'García',
         'Kowalski', 'Nakamura', 'Novák', 'Andersen', 'Ng', 'Okafor')
_DOMAINS = ('example.com', 'example.org', 'example.net', 'lists.example.org', 'mail.test')

_MONTHS = ('Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec')
_DAYS = ('Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun')

BASE_EPOCH = 1672531200  # 2023-01-01T00:00:00Z


def _rfc2047(s):
    try:
        s.encode('ascii')
        return s
    except UnicodeEncodeError:
        return '=?UTF-8?B?' + base64.b64encode(s.encode()).decode() + '?='


def _rfc5322_date(epoch, tz_minutes):
    import time
    t = time.gmtime(epoch + tz_minutes * 60)
    sign = '+' if tz_minutes >= 0 else '-'
    tz = abs(tz_minutes)
    return '%s, %02d %s %04d %02d:%02d:%02d %s%02d%02d' % (
        _DAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min,
        t.tm_sec, sign, tz // 60, tz % 60)


def _sentence(rng):
    n = rng.randint(5, 14)
    words = [rng.choice(_WORDS) for _ in range(n)]
    return (' '.join(words)).capitalize() + rng.choice('.....?!')


def _make_pool():
    """A fixed pool of text lines (same on every run); bodies pick from it,
    which is ~50x faster than choosing word by word."""
    rng = random.Random(0x0171A9)
    pool = []
    cur = ''
    while len(pool) < 4096:
        s = _sentence(rng)
        if len(cur) + len(s) + 1 > 76:
            pool.append(cur)
            cur = s
        else:
            cur = (cur + ' ' + s) if cur else s
    return tuple(pool)


_POOL = None


def _paragraph_lines(rng, target):
    """Text lines (<= 76 chars) of about target bytes."""
    global _POOL
    if _POOL is None:
        _POOL = _make_pool()
    lines = []
    size = 0
    while size < target:
        batch = rng.choices(_POOL, k=max(1, (target - size) // 56 + 1))
        for ln in batch:
            lines.append(ln)
            size += len(ln) + 2
            if size >= target:
                break
        if rng.random() < 0.5 and size < target:
            lines.append('')
            size += 2
    return lines


def _pick_size(rng, lo, hi):
    """Mail-like sizes: mostly small, a tail of large ones (log-uniform within
    bands; about 22 KB mean for 2 KB..1 MB)."""
    r = rng.random()
    if r < 0.87:
        a, b = lo, min(hi, 16 << 10)
    elif r < 0.99:
        a, b = min(hi, 16 << 10), min(hi, 256 << 10)
    else:
        a, b = min(hi, 256 << 10), hi
    if b <= a:
        return a
    import math
    return int(math.exp(rng.uniform(math.log(a), math.log(b))))


_PROFILES = {
    # (P(\Seen), P(\Flagged), P(\Answered), P(\Draft), P($Forwarded))
    'inbox': (0.7, 0.1, 0.15, 0.0, 0.0),
    'sent': (1.0, 0.05, 0.0, 0.0, 0.0),
    'list': (0.5, 0.05, 0.02, 0.0, 0.0),
    'drafts': (0.3, 0.0, 0.0, 1.0, 0.0),
    'mixed': (0.6, 0.1, 0.1, 0.02, 0.0),
}


def _flags(rng, profile, keywords=False):
    ps = _PROFILES.get(profile, _PROFILES['mixed'])
    out = []
    for flag, p in zip(('\\Seen', '\\Flagged', '\\Answered', '\\Draft'), ps):
        if rng.random() < p:
            out.append(flag)
    if keywords and rng.random() < 0.1:
        out.append('$Forwarded')
    return sorted(out)


def make_message(rng, index, size, seed=0, folder='INBOX', date=None, eol=b'\r\n'):
    """One RFC 5322 message of about `size` bytes (never less than ~600)."""
    def person():
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        addr = '%s.%s@%s' % (first.lower(), last.lower(), rng.choice(_DOMAINS))
        addr = addr.encode('ascii', 'ignore').decode()
        return '%s <%s>' % (_rfc2047(first + ' ' + last), addr)

    if date is None:
        date = BASE_EPOCH + index * 3607 + rng.randint(0, 3600)
    tz = rng.choice((0, 60, 120, -300, -420, 330, 540))
    subject = ' '.join(rng.choice(_WORDS) for _ in range(rng.randint(2, 8))).capitalize()
    if rng.random() < 0.1:
        subject = 'Re: ' + subject
    if rng.random() < 0.08:
        subject += ' — ' + rng.choice(('café', 'Übersicht', 'naïve', '日本語', 'Ελληνικά'))
    mid = '<%d.%d.%08x@oimap.test>' % (seed, index, rng.getrandbits(32))
    hdrs = [
        'Return-Path: <bounce-%d@%s>' % (index, rng.choice(_DOMAINS)),
        'Received: from mx%d.example.net (mx%d.example.net [192.0.2.%d])' % (
            index % 7, index % 7, index % 250 + 1),
        '\tby mail.test with ESMTPS id %08x; %s' % (rng.getrandbits(32),
                                                    _rfc5322_date(date, 0)),
        'From: ' + person(),
        'To: ' + person(),
    ]
    if rng.random() < 0.3:
        hdrs.append('Cc: ' + person() + ', ' + person())
    hdrs += [
        'Subject: ' + _rfc2047(subject),
        'Date: ' + _rfc5322_date(date, tz),
        'Message-ID: ' + mid,
        'MIME-Version: 1.0',
    ]
    if folder.startswith('Lists'):
        hdrs.append('List-Id: Developers <dev.lists.example.org>')
    head_len = sum(len(h) + 2 for h in hdrs)
    body_target = max(200, size - head_len - 60)
    nonascii = rng.random() < 0.15
    if size > 8192 and rng.random() < 0.5:
        boundary = '=_oimap_%d_%08x' % (index, rng.getrandbits(32))
        text_target = min(body_target // 4, 4000)
        att_raw = max(64, (body_target - text_target - 400) * 3 // 4)
        text = _paragraph_lines(rng, text_target)
        b64 = base64.b64encode(rng.randbytes(att_raw)).decode()
        att_lines = [b64[i:i + 76] for i in range(0, len(b64), 76)]
        name = 'file-%d.%s' % (index, rng.choice(('pdf', 'png', 'zip', 'bin')))
        hdrs.append('Content-Type: multipart/mixed; boundary="%s"' % boundary)
        body = ['This is a multi-part message in MIME format.', '',
                '--' + boundary,
                'Content-Type: text/plain; charset=utf-8',
                'Content-Transfer-Encoding: 8bit' if nonascii else
                'Content-Transfer-Encoding: 7bit', ''] + text
        if nonascii:
            body.append('Grüße, ça va — 日本')
        body += ['', '--' + boundary,
                 'Content-Type: application/octet-stream; name="%s"' % name,
                 'Content-Transfer-Encoding: base64',
                 'Content-Disposition: attachment; filename="%s"' % name, ''] + att_lines
        body += ['--' + boundary + '--', '']
    else:
        hdrs.append('Content-Type: text/plain; charset=utf-8')
        hdrs.append('Content-Transfer-Encoding: %s' % ('8bit' if nonascii else '7bit'))
        body = _paragraph_lines(rng, body_target)
        if nonascii:
            body.append('Grüße, ça va — 日本')
    text = '\r\n'.join(hdrs) + '\r\n\r\n' + '\r\n'.join(body) + '\r\n'
    data = text.encode('utf-8')
    if eol != b'\r\n':
        data = data.replace(b'\r\n', eol)
    return data, mid, date


def generate(n, seed=1, min_size=2048, max_size=1 << 20, folders=DEFAULT_FOLDERS,
             keywords=False, eol=b'\r\n'):
    """n Messages spread over folders by weight, deterministic for a seed."""
    rng = random.Random(seed)
    total = sum(w for _, w, _ in folders)
    out = []
    for i in range(n):
        r = rng.random() * total
        for name, w, profile in folders:
            r -= w
            if r < 0:
                break
        size = _pick_size(rng, min_size, max_size)
        data, mid, date = make_message(rng, i, size, seed=seed, folder=name, eol=eol)
        out.append(Message(data, _flags(rng, profile, keywords), date, mid, name, len(data)))
    return out


def fill(dovecot, user, n, seed=1, folders=DEFAULT_FOLDERS, min_size=2048, max_size=1 << 20,
         keywords=False):
    """Put n corpus messages on the server for user, over `folders` (names
    with '/', mapped to the server's delimiter), with mixed flags and
    INTERNALDATE = the Date header. Returns {folder: [record...]} as
    fetch_all()/hash_maildir() records (uid, flags, message_id, body_sha256,
    size, internaldate)."""
    msgs = generate(n, seed, min_size, max_size, folders, keywords)
    by_folder = collections.OrderedDict((name, []) for name, _, _ in folders)
    for m in msgs:
        by_folder[m.folder].append(m)
    with dovecot.session(user) as s:
        delim = s.delimiter or '/'
        for name in by_folder:  # serially: see lock_method in dovecot.py
            s.create_folder(name.replace('/', delim))
    out = collections.OrderedDict((name.replace('/', delim), None) for name in by_folder)
    errors = []

    def one(name, ms):
        # one session per folder, in parallel: the server's storing is the
        # bottleneck, and Dovecot uses both cores this way
        folder = name.replace('/', delim)
        try:
            with dovecot.session(user) as s:
                uids = s.append_many(folder, ((m.data, m.flags, m.date) for m in ms))
            out[folder] = [{'uid': u, 'flags': list(m.flags), 'message_id': m.message_id,
                            'body_sha256': body_sha256(m.data), 'size': len(m.data),
                            'internaldate': m.date} for u, m in zip(uids, ms)]
        except Exception as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(name, ms)) for name, ms in by_folder.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


# ---------------------------------------------------------------------------
# Maildir side

_UID_RE = re.compile(r',U=(\d+)')


def parse_maildir_name(name):
    """(unique-part, uid or None, info letters or None) of a Maildir file
    name; ':2,' or '!2,' (maildir-windows-compatible) info separators."""
    info = None
    base = name
    for sep in (':2,', '!2,'):
        if sep in name:
            base, info = name.rsplit(sep, 1)
            break
    m = _UID_RE.search(base)
    return base, (int(m.group(1)) if m else None), info


def hash_maildir(path, with_body=False):
    """Every message of one Maildir folder (files in cur/ and new/), as
    records {message_id, body_sha256, flags (IMAP names, sorted), maildir_flags,
    uid (from ',U=' or None), size, path, subdir}, sorted by path.
    Keyword letters (a-z) are reported in maildir_flags only."""
    out = []
    for sub in ('new', 'cur'):
        d = os.path.join(path, sub)
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            continue
        for n in names:
            if n.startswith('.'):
                continue
            p = os.path.join(d, n)
            with open(p, 'rb') as f:
                data = f.read()
            _, uid, info = parse_maildir_name(n)
            letters = ''.join(sorted(c for c in (info or '') if c.isupper()))
            rec = {'message_id': parse_message_id(data), 'body_sha256': body_sha256(data),
                   'flags': maildir_to_imap_flags(letters), 'maildir_flags': info or '',
                   'uid': uid, 'size': len(data), 'path': p, 'subdir': sub}
            if with_body:
                rec['body'] = data
            out.append(rec)
    out.sort(key=lambda r: r['path'])
    return out


def maildir_folders(root):
    """Relative paths (os.sep-joined, as on disk) of every Maildir folder
    under root (a directory holding cur/ and new/); '' is root itself."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        if 'cur' in dirnames and 'new' in dirnames:
            rel = os.path.relpath(dirpath, root)
            found.append('' if rel == '.' else rel)
        dirnames[:] = sorted(d for d in dirnames if d not in ('cur', 'new', 'tmp'))
    return sorted(found)


def summary(records, flags=True, ignore=('\\Recent',)):
    """A sorted list of (message_id, body_sha256[, flags tuple]) from IMAP
    (fetch_all) or Maildir (hash_maildir) records: equal summaries mean the
    same messages with the same flags, whatever the UIDs and file names.
    Keywords the other side cannot hold are removed via `ignore`."""
    ign = {f.lower() for f in ignore}
    out = []
    for r in records:
        key = (r['message_id'] or '', r['body_sha256'])
        if flags:
            key += (tuple(sorted(f for f in r['flags'] if f.lower() not in ign)),)
        out.append(key)
    return sorted(out)


def diff(a, b, name_a='a', name_b='b'):
    """Human-readable differences between two summaries ('' when equal)."""
    ca, cb = collections.Counter(a), collections.Counter(b)
    lines = []
    for k in sorted(ca - cb):
        lines.append('only in %s: %s' % (name_a, k))
    for k in sorted(cb - ca):
        lines.append('only in %s: %s' % (name_b, k))
    return '\n'.join(lines)


def tree_hash(records):
    """One sha256 over a summary (quick equality of large folders)."""
    h = hashlib.sha256()
    for k in summary(records):
        h.update(repr(k).encode())
    return h.hexdigest()
