"""Helpers of the reference suite (test_reference.py): run offlineimap and
oimap on one config text, read back a Maildir or a server account as a
tool-neutral state, and describe the differences between two states so that
a failure names folder, Message-ID and flags.

A state is {folder: [Msg]}, folder being the logical name (Unicode, '/' as
the hierarchy separator), whatever the tool's file names or UIDs are.
"""

import collections
import os
import re
import time

import util
from util import corpus, imaputil

OFFLINEIMAP = os.environ.get('OIMAP_OFFLINEIMAP', '/usr/bin/offlineimap')

# Markers the tools put into the server copy of an uploaded message so that
# an interrupted APPEND can be found again: offlineimap's X-OfflineIMAP and
# oimap's X-OIMAP-TUID. Removed before hashing, as they differ by design.
MARKER_RE = re.compile(rb'^(?:X-OfflineIMAP|X-OIMAP-TUID):[^\r\n]*\r?\n', re.M | re.I)

# The subset of a message both sides keep: flags are Maildir letters (upper
# case system flags and lower case keywords) or sorted IMAP flag names.
Msg = collections.namedtuple('Msg', 'mid sha flags extra')

IMAP_WRITES_RE = re.compile(r'C: \S+ (?:UID )?(APPEND|STORE|EXPUNGE|COPY|MOVE|CREATE|DELETE)\b')
IMAP_BODY_FETCH_RE = re.compile(r'C: \S+ (?:UID )?FETCH .*BODY(?:\.PEEK)?\[')


def starttls_stalled(stdout, stderr=''):
    """True if an offlineimap run ended in its STARTTLS handshake: it printed
    the TLS failure message, or nothing after "Establishing connection"."""
    if 'Failed to start TLS connection' in stdout + stderr:
        return True
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    return bool(lines) and lines[-1].startswith('Establishing connection to')


class Tool:
    """One tool's world: its Dovecot user, Maildir, metadata dir, config.

    Both tools get the same config text (util.offlineimap_config, plain IMAP,
    sep '.', default options), differing only in user and paths."""

    def __init__(self, name, dv, user, base, config_text=None, security='plain',
                 account_opts=None):
        self.name = name
        self.dv = dv
        self.security = security
        self.user = user
        self.dir = os.path.join(base, name)
        self.root = os.path.join(self.dir, 'mail')
        self.meta = os.path.join(self.dir, 'meta')
        os.makedirs(self.root, exist_ok=True)
        self.config_text = config_text or util.offlineimap_config(
            dv, self.root, user=user, security=security, metadata=self.meta,
            account_opts=account_opts)
        self.config = util.write_config(self.config_text, self.dir, 'offlineimaprc')
        self.runs = []

    def sync(self, *extra, tool=None, expect_rc=0, timeout=90):
        """One '-o -u basic' run of `tool` (default: self.name) on our config.
        Returns the Result; asserts the exit status unless expect_rc is None."""
        tool = tool or self.name
        t0 = time.monotonic()
        if tool == 'offlineimap':
            # offlineimap 8's STARTTLS (imaplib2 under Python 3.11) now and
            # then fails its handshake before it has touched anything: its
            # reader thread races the switch to TLS and either swallows the
            # first bytes of the TLS exchange ("[SSL] internal error", "EOF
            # occurred in violation of protocol"), stops before the STARTTLS
            # answer and waits forever after "Establishing connection", or
            # (two threads in one SSL object) dies of SIGSEGV there. About
            # one run in twenty here, one in five under CI load. The
            # yardstick's own flake is retried, at most four times, so it
            # cannot fail a test about oimap: only a run that never got past
            # "Establishing connection" is retried; any other offlineimap
            # failure is reported at once. A STARTTLS attempt gets 30 s,
            # which a small sync never needs.
            starttls = self.security == 'starttls'
            attempt_timeout = min(timeout, 30) if starttls else timeout
            for attempt in range(5):
                last = attempt == 4 or not starttls
                try:
                    r = util.run_cmd([OFFLINEIMAP, '-o', '-u', 'basic', '-c', self.config]
                                     + list(extra), timeout=attempt_timeout,
                                     env=util.oimap_env())
                except util.OimapTimeout as e:
                    if last or not starttls_stalled(e.stdout):
                        raise
                    continue
                if last or r.rc == 0 or not starttls_stalled(r.stdout, r.stderr):
                    break
        else:
            r = util.run_oimap(['-o', '-u', 'basic'] + list(extra), config_path=self.config,
                               timeout=timeout)
        self.runs.append((tool, time.monotonic() - t0))
        out = r.stdout + r.stderr
        if expect_rc is not None and r.rc != expect_rc:
            raise AssertionError('%s run for %s: exit %d, expected %d\n%s' % (
                tool, self.user, r.rc, expect_rc, out[-6000:]))
        if tool == 'offlineimap' and expect_rc == 0 and re.search(r'^ERROR|\bERROR:', out, re.M):
            raise AssertionError('offlineimap reported an error (exit 0):\n' + out[-6000:])
        return r


# ---------------------------------------------------------------------------
# Maildir side

def logical_folder(rel, sep='.'):
    """The logical folder of a Maildir directory relative to localfolders: the
    local sep becomes '/', and a valid modified UTF-7 name (offlineimap's
    layout without utf8foldernames) is decoded, so that 'Brouillons.&AMk-t&AOk-'
    and 'Brouillons.Été' both read 'Brouillons/Été'. The raw layout is
    compared separately (maildir_layout)."""
    name = rel.replace(os.sep, sep).replace(sep, '/')
    if '&' in name:
        try:
            return imaputil.mutf7_decode(name)
        except imaputil.Utf7Error:
            pass
    return name


def maildir_layout(root):
    """Sorted raw directory names of every Maildir folder under root."""
    return [f for f in corpus.maildir_folders(root) if f]


def maildir_files(root, folder_rel):
    """[(subdir, file name, bytes)] of one Maildir folder."""
    out = []
    for sub in ('new', 'cur'):
        d = os.path.join(root, folder_rel, sub)
        for n in sorted(os.listdir(d)) if os.path.isdir(d) else ():
            if n.startswith('.'):
                continue
            with open(os.path.join(d, n), 'rb') as f:
                out.append((sub, n, f.read()))
    return out


def maildir_state(root):
    """{logical folder: [Msg]} of a Maildir tree. flags: the letters after
    ':2,' sorted; extra: {subdir, name, uid, fmd5, eol, rel}."""
    state = {}
    for rel in maildir_layout(root):
        msgs = []
        for sub, name, data in maildir_files(root, rel):
            base, uid, info = corpus.parse_maildir_name(name)
            m = re.search(r',FMD5=([0-9a-f]+)', base)
            eol = 'CRLF' if b'\r\n' in data else 'LF'
            msgs.append(Msg(imaputil.message_id(data), imaputil.body_sha256(data),
                            ''.join(sorted(info or '')),
                            {'subdir': sub, 'name': name, 'uid': uid,
                             'fmd5': m.group(1) if m else None, 'eol': eol, 'rel': rel}))
        state[logical_folder(rel)] = msgs
    return state


def find_local(root, mid):
    """Path of the Maildir file holding Message-ID mid (exactly one)."""
    hits = []
    for rel in maildir_layout(root):
        for sub, name, data in maildir_files(root, rel):
            if imaputil.message_id(data) == mid:
                hits.append(os.path.join(root, rel, sub, name))
    if len(hits) != 1:
        raise AssertionError('%s: %d files hold %s' % (root, len(hits), mid))
    return hits[0]


def set_local_letters(path, letters):
    """Rename a Maildir file into cur/ with exactly these info letters."""
    d, name = os.path.split(path)
    base = re.split(r'[:!]2,', name)[0]
    new = os.path.join(os.path.dirname(d), 'cur', base + ':2,' + ''.join(sorted(letters)))
    os.rename(path, new)
    return new


def letters_of(path):
    return corpus.parse_maildir_name(os.path.basename(path))[2] or ''


def write_local(root, rel, data, name, letters=None, mtime=None):
    """A new local message (no U=): in new/ without info when letters is
    None, else in cur/ with ':2,<letters>'. Creates the folder if needed."""
    for sub in ('cur', 'new', 'tmp'):
        os.makedirs(os.path.join(root, rel, sub), exist_ok=True)
    if letters is None:
        path = os.path.join(root, rel, 'new', name)
    else:
        path = os.path.join(root, rel, 'cur', name + ':2,' + ''.join(sorted(letters)))
    with open(path, 'wb') as f:
        f.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def file_contents(root, skip=None):
    """{relative path: bytes} of every file under root (paths starting with
    skip left out)."""
    out = {}
    for n in tree_names(root):
        if n.endswith('/') or (skip and n.startswith(skip)):
            continue
        with open(os.path.join(root, n), 'rb') as f:
            out[n] = f.read()
    return out


def tree_names(root):
    """Every file and directory path under root (relative), for 'nothing
    changed' checks; file contents are covered by the states."""
    out = set()
    for dp, dns, fns in os.walk(root):
        for n in dns:
            out.add(os.path.relpath(os.path.join(dp, n), root) + '/')
        for n in fns:
            out.add(os.path.relpath(os.path.join(dp, n), root))
    return out


# ---------------------------------------------------------------------------
# server side

def server_folders(session):
    """Sorted (decoded name, raw mUTF-7 name) of selectable folders; a name
    that is not valid modified UTF-7 is kept raw and marked."""
    typ, data = session.imap.list('""', '"*"')
    out = []
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):
            head, raw = item
            attrs = re.match(rb'\((.*?)\)', head).group(1)
        else:
            m = re.match(rb'\((.*?)\) (?:NIL|"(?:\\.|[^"])*") (.*)$', item)
            attrs, raw = m.groups()
            if raw.startswith(b'"'):
                raw = re.sub(rb'\\(.)', rb'\1', raw[1:-1])
        if b'\\noselect' in attrs.lower() or b'\\nonexistent' in attrs.lower():
            continue
        raw = raw.decode('utf-8', 'replace')
        try:
            name = imaputil.mutf7_decode(raw)
        except imaputil.Utf7Error:
            name = '<invalid mUTF-7 %r>' % raw
        out.append((name, raw))
    return sorted(out)


def server_state(dv, user):
    """({folder: [Msg]}, [(name, raw)]) of a server account. Bodies are
    hashed without the tools' upload markers; flags are sorted IMAP names;
    extra: {uid, internaldate, marker}."""
    state = {}
    with dv.session(user) as s:
        folders = server_folders(s)
        for name, raw in folders:
            if name.startswith('<invalid'):
                state[name] = []  # the harness cannot select it; reported by the layout check
                continue
            msgs = []
            for r in s.fetch_all(name, with_body=True):
                body = r.pop('body')
                marker = MARKER_RE.search(body)
                clean = MARKER_RE.sub(b'', body, count=1)
                msgs.append(Msg(imaputil.message_id(clean), imaputil.body_sha256(clean),
                                ' '.join(r['flags']),
                                {'uid': r['uid'], 'internaldate': r['internaldate'],
                                 'marker': marker.group(0).strip().decode(errors='replace')
                                 if marker else None}))
            state[name] = msgs
    return state, folders


# ---------------------------------------------------------------------------
# comparison

def _short(mid):
    return mid or '<no Message-ID>'


def diff_states(a, b, name_a, name_b, what, ignore=()):
    """Readable differences between two states ([] when equal): folders on one
    side only, messages (by Message-ID and body hash) missing or duplicated,
    flags that differ. `ignore` is a set of (folder, mid) left out (the
    caller's documented differences)."""
    out = []
    for folder in sorted(set(a) | set(b)):
        if folder not in a or folder not in b:
            has, lacks = (name_a, name_b) if folder in a else (name_b, name_a)
            n = len((a if folder in a else b)[folder])
            out.append('%s: folder %r only in %s (%d messages), missing in %s' % (
                what, folder, has, n, lacks))
            continue
        ga, gb = collections.defaultdict(list), collections.defaultdict(list)
        for m in a[folder]:
            ga[(m.mid, m.sha)].append(m.flags)
        for m in b[folder]:
            gb[(m.mid, m.sha)].append(m.flags)
        for key in sorted(set(ga) | set(gb), key=lambda k: (k[0] or '', k[1])):
            if (folder, key[0]) in ignore:
                continue
            fa, fb = sorted(ga.get(key, [])), sorted(gb.get(key, []))
            if fa == fb:
                continue
            where = '%s: folder %r, message %s (body %s)' % (what, folder, _short(key[0]),
                                                            key[1][:12])
            if len(fa) == 1 and len(fb) == 1:
                out.append('%s: flags %r in %s, %r in %s' % (where, fa[0], name_a, fb[0],
                                                               name_b))
            else:
                out.append('%s: %d copies in %s (flags %r), %d in %s (flags %r)' % (
                    where, len(fa), name_a, fa, len(fb), name_b, fb))
    return out


def duplicates(state, what):
    """Messages present more than once in a folder (never wanted)."""
    out = []
    for folder, msgs in sorted(state.items()):
        c = collections.Counter((m.mid, m.sha) for m in msgs)
        for (mid, sha), n in sorted(c.items(), key=lambda kv: (kv[0][0] or '', kv[0][1])):
            if n > 1:
                out.append('%s: folder %r, message %s: %d copies' % (what, folder, _short(mid),
                                                                   n))
    return out


def file_level_diffs(lo, lm, aspects=('subdir', 'fmd5', 'eol')):
    """Per-message file differences between two Maildir states (offlineimap's,
    oimap's): new/ or cur/, FMD5, line ends (and 'uid' when asked). Grouped
    by (aspect, folder, value in lo, value in lm), one example each."""
    groups = {}
    for folder in sorted(set(lo) & set(lm)):
        mo, mm = by_mid(lo, folder), by_mid(lm, folder)
        for mid in sorted(set(mo) & set(mm), key=lambda m: m or ''):
            a, b = mo[mid].extra, mm[mid].extra
            for k in aspects:
                # Intended difference: when a message becomes unseen again,
                # offlineimap moves its file back to new/; oimap leaves it in
                # cur/ (a mail reader has seen it: the Maildir spec's meaning
                # of cur/, and what mbsync does).  Both show it unread.
                if k == 'subdir' and a[k] == 'new' and b[k] == 'cur' and \
                        'S' not in mm[mid].flags:
                    continue
                if a[k] != b[k]:
                    groups.setdefault((k, folder, a[k], b[k]), []).append(
                        (mid, a['name'], b['name']))
    return ['%s differs for %d messages of folder %r: %r from offlineimap, %r from oimap (%s)'
            % (k, len(v), folder, va, vb, '; '.join('%s: %s vs %s' % x for x in v[:3]))
            for (k, folder, va, vb), v in sorted(groups.items(), key=str)]


def by_mid(state, folder):
    return {m.mid: m for m in state.get(folder, [])}
