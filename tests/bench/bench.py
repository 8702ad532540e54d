#!/usr/bin/env python3
"""Benchmark oimap side by side with mbsync (isync) and offlineimap.

    python3 tests/bench/bench.py                       # 10,000 messages, 3 runs
    python3 tests/bench/bench.py --messages 10000 --runs 1 --tools mbsync,offlineimap
    python3 tests/bench/bench.py --smoke               # 1,000 messages, 1 run

Every tool syncs the same corpus from the same private Dovecot (plain IMAP
on 127.0.0.1) with the same local fsync setting, through four scenarios
run in order on one fresh Maildir per tool and run:

  initial      download everything into an empty Maildir (fresh tool state)
  noop         sync again, nothing changed anywhere
  incremental  the server got new messages and flag changes (same for all)
  upload       new files in the local Maildir's new/ (same files for all)

Each tool run is timed (wall clock), and its CPU time (user+sys) and peak
RSS come from wait4() on that child. After each scenario the local Maildir
(every message by Message-ID, with its flags) and the server (message count
per folder) are compared with what must be there, so a tool that is fast
because it did nothing is reported as failed, not as a winner.

Fairness: every (tool, run) gets its own Dovecot user whose mail store is a
copy of one template (message files hard-linked, Dovecot's index files
copied), so each starts from the same server state with the same UIDs and
UIDVALIDITY. The template is built once per (messages, seed) and cached in
the work directory. Before each timed run the bench sleeps 1.1 s so the
clock has moved past the last change to any Maildir (mbsync otherwise
sleeps up to a second by design). Python stdlib only; see README.md.
"""

import argparse
import collections
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get('OIMAP_SRCDIR') or os.path.abspath(os.path.join(HERE, '..', '..'))
HARNESS = os.path.join(SRCDIR, 'tests', 'harness')
if not os.path.isdir(HARNESS):
    HARNESS = os.path.abspath(os.path.join(HERE, '..', 'harness'))
sys.path.insert(0, HARNESS)

import corpus  # noqa: E402
import imaputil  # noqa: E402
from dovecot import Dovecot, ensure_mail_user  # noqa: E402

TEMPLATE_VERSION = 1
TOOLS = ('oimap', 'mbsync', 'offlineimap')
SCENARIOS = ('initial', 'noop', 'incremental', 'upload')

# Ten folders, weighted like a real account: a big INBOX and archive, lists,
# two nested levels, a non-ASCII name (modified UTF-7 on the wire).
FOLDERS = (
    ('INBOX', 30, 'inbox'),
    ('Archive', 18, 'mixed'),
    ('Sent', 12, 'sent'),
    ('Lists/dev', 10, 'list'),
    ('Lists/users', 8, 'list'),
    ('Lists/announce', 5, 'list'),
    ('Work/Projects', 6, 'mixed'),
    ('Work/Reports', 4, 'mixed'),
    ('Privé', 5, 'mixed'),
    ('Drafts', 2, 'drafts'),
)
FOLDER_NAMES = tuple(f[0] for f in FOLDERS)

_MID_RE = re.compile(rb'^Message-ID:[ \t]*(<[^>\r\n]*>)', re.I | re.M)


def log(msg):
    print('bench: ' + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# template server state (built once, cached)

def template_path(workdir, n, seed):
    return os.path.join(workdir, 'template-v%d-n%d-s%d' % (TEMPLATE_VERSION, n, seed))


def build_template(workdir, n, seed):
    """Fill a throw-away Dovecot user with the corpus and keep its mail store
    as the template. Returns the manifest {folder: [[uid, message_id,
    flags], ...]}."""
    tdir = template_path(workdir, n, seed)
    man_path = os.path.join(tdir, 'manifest.json')
    if os.path.exists(man_path):
        with open(man_path) as f:
            return json.load(f)['folders']
    if os.path.isdir(tdir):
        shutil.rmtree(tdir)
    build = tdir + '.build'
    shutil.rmtree(build, ignore_errors=True)
    log('building the server template: %d messages (seed %d), cached in %s' % (n, seed, tdir))
    t0 = time.monotonic()
    dv = Dovecot(users={'tmpl': 'tmpl-pw'}, starttls=False, fsync='never',
                 directory=build)
    dv.start()
    try:
        recs = corpus.fill(dv, 'tmpl', n, seed=seed, folders=FOLDERS)
    finally:
        dv.stop(graceful=True)
    man = collections.OrderedDict()
    for folder, lst in recs.items():
        man[folder] = [[r['uid'], r['message_id'], sorted(r['flags'])] for r in lst or ()]
    os.makedirs(tdir)
    os.rename(dv.mail_root('tmpl'), os.path.join(tdir, 'mail'))
    size = sum(os.path.getsize(os.path.join(dp, f))
               for dp, _, fs in os.walk(os.path.join(tdir, 'mail'))
               for f in fs if os.path.basename(dp) in ('cur', 'new'))
    with open(man_path + '.tmp', 'w') as f:
        json.dump({'messages': n, 'seed': seed, 'bytes': size, 'folders': man}, f)
    os.rename(man_path + '.tmp', man_path)
    shutil.rmtree(build, ignore_errors=True)
    log('template built in %.1f s (%.1f MB)' % (time.monotonic() - t0, size / 1e6))
    return man


def template_bytes(workdir, n, seed):
    with open(os.path.join(template_path(workdir, n, seed), 'manifest.json')) as f:
        return json.load(f)['bytes']


def clone_mail(src, dst):
    """Copy a Dovecot mail store: message files (immutable in Maildir; a flag
    change is a rename, an expunge an unlink) hard-linked, everything else
    (indexes, uidlists) copied so the clone evolves on its own."""
    uid, gid = ensure_mail_user()
    if os.path.lexists(dst):
        shutil.rmtree(dst)
    for dirpath, _dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        d = dst if rel == '.' else os.path.join(dst, rel)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o700)
        os.chown(d, uid, gid)
        leaf = os.path.basename(dirpath)
        for name in filenames:
            s, t = os.path.join(dirpath, name), os.path.join(d, name)
            if leaf in ('cur', 'new'):
                os.link(s, t)
            else:
                shutil.copy2(s, t)
                os.chown(t, uid, gid)


# ---------------------------------------------------------------------------
# the workload: identical for every tool

class Workload:
    """Expected contents and the scripted changes, derived from the template
    manifest and the seed only."""

    def __init__(self, manifest, seed, n_new, n_flags, n_upload):
        self.base = collections.OrderedDict()
        for folder in FOLDER_NAMES:
            self.base[folder] = {mid: tuple(flags) for _, mid, flags in manifest.get(folder, [])}
        self.uids = {folder: {mid: uid for uid, mid, _ in manifest.get(folder, [])}
                     for folder in FOLDER_NAMES}
        rng = random.Random(seed * 7919 + 17)
        pool = [(folder, mid) for folder in FOLDER_NAMES for mid in sorted(self.base[folder])]
        n_flags = min(n_flags, len(pool))
        # flag changes: \Seen or \Flagged toggled on distinct messages
        self.flag_ops = []  # (folder, uid, '+'/'-', flag)
        after = {f: dict(m) for f, m in self.base.items()}
        for folder, mid in rng.sample(pool, n_flags):
            flag = '\\Seen' if rng.random() < 0.6 else '\\Flagged'
            cur = set(after[folder][mid])
            op = '-' if flag in cur else '+'
            (cur.discard if op == '-' else cur.add)(flag)
            after[folder][mid] = tuple(sorted(cur))
            self.flag_ops.append((folder, self.uids[folder][mid], op, flag))
        self.new_msgs = corpus.generate(n_new, seed=seed + 1000, folders=FOLDERS)
        for m in self.new_msgs:
            after[m.folder][m.message_id] = tuple(sorted(m.flags))
        self.after_incr = after
        # uploads: plain new/ files (no info suffix, so no flags), LF line ends
        # as a mail reader writes them
        self.uploads = corpus.generate(n_upload, seed=seed + 2000, folders=FOLDERS, eol=b'\n')
        self.after_upload = {f: dict(m) for f, m in after.items()}
        for m in self.uploads:
            self.after_upload[m.folder][m.message_id] = ()
        self.n_new, self.n_flags, self.n_upload = len(self.new_msgs), n_flags, len(self.uploads)

    def apply_server_changes(self, dv, user):
        """The incremental scenario's server side: APPEND the new messages,
        UID STORE the flag changes (grouped per folder, op and flag)."""
        by_folder = collections.defaultdict(list)
        for m in self.new_msgs:
            by_folder[m.folder].append((m.data, m.flags, m.date))
        groups = collections.defaultdict(list)
        for folder, uid, op, flag in self.flag_ops:
            groups[(folder, op, flag)].append(uid)
        with dv.session(user) as s:
            for (folder, op, flag), uids in sorted(groups.items()):
                s.store(folder, sorted(uids), op + 'FLAGS', [flag])
            for folder in FOLDER_NAMES:
                if by_folder[folder]:
                    s.append_many(folder, by_folder[folder])

    def write_uploads(self, folder_dirs):
        """The upload scenario's local side: new files in each folder's new/."""
        for i, m in enumerate(self.uploads):
            d = folder_dirs.get(m.folder)
            if d is None:
                raise RuntimeError('no local folder for %r' % m.folder)
            name = '%d.B%05dP%d.oimap-bench' % (1700000000 + i, i, 4242)
            p = os.path.join(d, 'new', name)
            with open(p + '.part', 'wb') as f:
                f.write(m.data)
            os.rename(p + '.part', p)  # '.part' never seen by a tool: none runs now

    def expected(self, scenario):
        if scenario in ('initial', 'noop'):
            return self.base
        if scenario == 'incremental':
            return self.after_incr
        return self.after_upload


# ---------------------------------------------------------------------------
# checking what a tool did

def local_folder_name(rel):
    """Server folder name of a local Maildir folder (relative path), as the
    tools lay them out: '/'-nested, names kept in modified UTF-7 (mbsync,
    offlineimap) or decoded to UTF-8."""
    if rel in ('', '.'):
        return 'INBOX'
    name = rel.replace(os.sep, '/')
    if '&' in name:
        try:
            return imaputil.mutf7_decode(name)
        except Exception:  # noqa: BLE001 - not mUTF-7: keep as is
            return name
    return name


def scan_local(root):
    """({folder: {message_id: [flags tuples]}}, {folder: directory})."""
    out, dirs = {}, {}
    for rel in corpus.maildir_folders(root):
        folder = local_folder_name(rel)
        path = root if rel == '' else os.path.join(root, rel)
        dirs[folder] = path
        msgs = out.setdefault(folder, collections.defaultdict(list))
        for sub in ('new', 'cur'):
            d = os.path.join(path, sub)
            try:
                names = os.listdir(d)
            except FileNotFoundError:
                continue
            for n in names:
                if n.startswith('.'):
                    continue
                with open(os.path.join(d, n), 'rb') as f:
                    head = f.read(16384)
                m = _MID_RE.search(head)
                mid = m.group(1).decode() if m else '(no Message-ID: %s)' % n
                _, _, info = corpus.parse_maildir_name(n)
                letters = ''.join(c for c in (info or '') if c.isupper())
                msgs[mid].append(tuple(imaputil.maildir_to_imap_flags(letters)))
    return out, dirs


def check_local(root, expected):
    """A list of problems (empty when the Maildir holds exactly `expected`)."""
    got, _ = scan_local(root)
    problems = []
    for folder in sorted(set(got) | set(expected)):
        want = expected.get(folder, {})
        have = got.get(folder, {})
        missing = [m for m in want if m not in have]
        extra = [m for m in have if m not in want]
        dups = [m for m, v in have.items() if len(v) > 1]
        wrong = [m for m, v in have.items() if m in want and len(v) == 1 and
                 tuple(sorted(v[0])) != tuple(sorted(want[m]))]
        if folder not in got and want:
            problems.append('%s: local folder missing (%d messages expected)' % (folder, len(want)))
            continue
        for what, lst in (('missing', missing), ('unexpected', extra), ('duplicated', dups),
                          ('wrong flags', wrong)):
            if lst:
                ex = lst[0]
                extra_txt = ''
                if what == 'wrong flags':
                    extra_txt = ' (have %s, want %s)' % (have[ex][0], want[ex])
                problems.append('%s: %d %s locally, e.g. %s%s' % (folder, len(lst), what, ex,
                                                                 extra_txt))
    return problems


def check_server(dv, user, expected):
    problems = []
    with dv.session(user) as s:
        for folder in FOLDER_NAMES:
            n = s.status(folder)['messages']
            if n != len(expected[folder]):
                problems.append('%s: %d messages on the server, %d expected' % (
                    folder, n, len(expected[folder])))
    return problems


# ---------------------------------------------------------------------------
# the tools

class Tool:
    name = None

    def __init__(self, args, dv, user, password, wdir):
        self.args, self.dv, self.user, self.password, self.wdir = args, dv, user, password, wdir
        self.maildir = os.path.join(wdir, 'Mail')
        self.home = os.path.join(wdir, 'home')

    def available(self):
        """None if the tool can run, else why not."""
        return None

    def prepare(self):
        """Write config; return the argv of one sync."""
        raise NotImplementedError

    def env(self):
        e = dict(os.environ)
        e['HOME'] = self.home
        e['XDG_CONFIG_HOME'] = os.path.join(self.home, '.config')
        e.pop('NOTIFY_SOCKET', None)
        return e

    def version(self):
        return ''


def _offlineimap_config(tool, fsync):
    """offlineimap-format config shared by offlineimap and oimap. Local folders
    '/'-nested (sep = /) so the layout matches mbsync's SubFolders Verbatim.
    No status_backend: offlineimap3 8.0 refuses it as retired (sqlite is its
    only backend now)."""
    return """\
[general]
accounts = bench
maxsyncaccounts = 1
metadata = {meta}
fsync = {fsync}

[Account bench]
localrepository = bench-local
remoterepository = bench-remote

[Repository bench-local]
type = Maildir
localfolders = {maildir}
sep = /

[Repository bench-remote]
type = IMAP
remotehost = {host}
remoteport = {port}
remoteuser = {user}
remotepass = {password}
ssl = no
starttls = no
maxconnections = 3
""".format(meta=os.path.join(tool.wdir, 'metadata'), fsync='true' if fsync else 'false',
           maildir=tool.maildir, host=tool.dv.host, port=tool.dv.port, user=tool.user,
           password=tool.password)


class Mbsync(Tool):
    name = 'mbsync'

    def available(self):
        return None if shutil.which('mbsync') else 'mbsync not installed (apt-get install isync)'

    def version(self):
        p = subprocess.run(['mbsync', '--version'], stdout=subprocess.PIPE, text=True)
        return p.stdout.strip()

    def prepare(self):
        rc = os.path.join(self.wdir, 'mbsyncrc')
        with open(rc, 'w') as f:
            f.write("""\
FSync {fsync}

IMAPAccount bench
Host {host}
Port {port}
User {user}
Pass "{password}"
SSLType None
AuthMechs LOGIN PLAIN

IMAPStore bench-remote
Account bench

MaildirStore bench-local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel bench
Far :bench-remote:
Near :bench-local:
Patterns *
Create Both
Expunge Both
SyncState *
Sync All
""".format(fsync='yes' if self.args.fsync == 'on' else 'no', host=self.dv.host,
                port=self.dv.port, user=self.user, password=self.password,
                maildir=self.maildir))
        return ['mbsync', '-q', '-c', rc, '-a']


class Offlineimap(Tool):
    name = 'offlineimap'

    def available(self):
        return None if shutil.which('offlineimap') else \
            'offlineimap not installed (apt-get install offlineimap3)'

    def version(self):
        p = subprocess.run(['offlineimap', '--version'], stdout=subprocess.PIPE, text=True)
        return 'offlineimap ' + p.stdout.strip()

    def prepare(self):
        conf = os.path.join(self.wdir, 'offlineimaprc')
        with open(conf, 'w') as f:
            f.write(_offlineimap_config(self, self.args.fsync == 'on'))
        return ['offlineimap', '-o', '-u', 'quiet', '-c', conf]


class Oimap(Tool):
    name = 'oimap'

    @staticmethod
    def binary():
        b = os.environ.get('OIMAP_BIN') or os.path.join('build', 'oimap')
        return b if os.path.isabs(b) else os.path.join(SRCDIR, b)

    def available(self):
        b = self.binary()
        return None if os.access(b, os.X_OK) else '%s not built (ninja -C build)' % b

    def version(self):
        p = subprocess.run([self.binary(), '--version'], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        return p.stdout.strip().splitlines()[0] if p.stdout.strip() else 'oimap'

    def prepare(self):
        conf = os.path.join(self.wdir, 'oimaprc')
        with open(conf, 'w') as f:
            f.write(_offlineimap_config(self, self.args.fsync == 'on'))
        return [self.binary(), '-o', '-u', 'quiet', '-c', conf]


TOOL_CLASSES = {c.name: c for c in (Oimap, Mbsync, Offlineimap)}


# ---------------------------------------------------------------------------
# timing one child

# GNU time measures peak RSS from a ~1 MB process. ru_maxrss from our own
# wait4() cannot: Linux starts a forked child's high-water mark at the
# parent's RSS and keeps it across execve, so every tool would show at least
# this Python process's size (over 100 MB with the corpus loaded).
TIME_BIN = os.environ.get('OIMAP_BENCH_TIME', '/usr/bin/time')


def run_timed(argv, env, cwd, timeout, log_path):
    """Run argv; returns dict(wall, user, sys, cpu, maxrss_kb, rc, timeout).

    CPU time comes from wait4() on our child (which includes what it waited
    for, so the tool under GNU time is counted; time's own cost is about a
    millisecond). On timeout the child's process group (its own session, so
    only what it started) is killed by id; waitid(WNOWAIT) leaves the child
    unreaped until the killer is disarmed, so the id cannot be reused."""
    rss_file = None
    if os.access(TIME_BIN, os.X_OK):
        rss_file = os.path.join(cwd, '.maxrss')
        if os.path.exists(rss_file):
            os.unlink(rss_file)
        argv = [TIME_BIN, '-f', '%M', '-o', rss_file] + list(argv)
    with open(log_path, 'ab') as logf:
        logf.write(('\n$ %s\n' % ' '.join(argv)).encode())
        logf.flush()
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                             env=env, cwd=cwd, start_new_session=True, close_fds=True)
    lock = threading.Lock()
    state = {'done': False, 'killed': False}

    def kill():
        with lock:
            if state['done']:
                return
            state['killed'] = True
            for fn in (os.killpg, os.kill):
                try:
                    fn(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
    wall = time.perf_counter() - t0
    with lock:
        state['done'] = True
    timer.cancel()
    _, status, ru = os.wait4(p.pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    p.returncode = rc  # reaped here; keep Popen from waiting again
    try:  # anything the tool left behind in its group (none should)
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    maxrss, source = ru.ru_maxrss, 'wait4 (upper bound: includes the bench process)'
    if rss_file:
        try:
            with open(rss_file) as f:
                maxrss, source = int(f.read().split()[-1]), 'gnu-time'
        except (OSError, ValueError, IndexError):
            pass
    return {'wall': wall, 'user': ru.ru_utime, 'sys': ru.ru_stime, 'cpu': ru.ru_utime + ru.ru_stime,
            'maxrss_kb': maxrss, 'rss_source': source, 'rc': rc, 'timeout': state['killed']}


def tail(path, n=6):
    try:
        with open(path, errors='replace') as f:
            lines = [ln.rstrip() for ln in f if ln.strip()]
        return ' | '.join(lines[-n:])
    except OSError:
        return ''


# ---------------------------------------------------------------------------
# one tool, one run: the four scenarios in order

def run_tool(args, dv, work, tool_name, run_no, user, password, tmpl_mail):
    wdir = os.path.join(work, '%s-r%d' % (tool_name, run_no))
    shutil.rmtree(wdir, ignore_errors=True)
    os.makedirs(wdir)
    tool = TOOL_CLASSES[tool_name](args, dv, user, password, wdir)
    os.makedirs(tool.maildir)
    os.makedirs(tool.home)
    results = []

    def rec(scn, **kw):
        r = {'tool': tool_name, 'run': run_no, 'scenario': scn}
        r.update(kw)
        results.append(r)
        return r

    why = tool.available()
    if why:
        for scn in SCENARIOS:
            rec(scn, status='failed', error=why)
        log('%s: %s' % (tool_name, why))
        return results
    clone_mail(tmpl_mail, dv.mail_root(user))
    argv = tool.prepare()
    log_path = os.path.join(wdir, 'tool.log')
    wl = args.workload
    failed = None
    for scn in SCENARIOS:
        if failed:
            rec(scn, status='skipped', error='after %s failed' % failed)
            continue
        try:
            if scn == 'incremental':
                wl.apply_server_changes(dv, user)
            elif scn == 'upload':
                _, dirs = scan_local(tool.maildir)
                wl.write_uploads(dirs)
        except Exception as e:  # noqa: BLE001 - the tool's layout may be broken
            failed = scn
            rec(scn, status='failed', error='preparing %s: %s' % (scn, e))
            continue
        time.sleep(1.1)  # see the module doc: mbsync's same-second rule, for all tools
        t = run_timed(argv, tool.env(), wdir, args.timeout, log_path)
        problems = []
        if t['timeout']:
            problems.append('timed out after %.0f s (killed)' % args.timeout)
        elif t['rc'] != 0:
            problems.append('exit status %d: %s' % (t['rc'], tail(log_path)))
        want = wl.expected(scn)
        try:
            problems += check_local(tool.maildir, want)
            problems += check_server(dv, user, want)
        except Exception as e:  # noqa: BLE001
            problems.append('check failed: %s' % e)
        r = rec(scn, status='ok' if not problems else 'failed', **t)
        if problems:
            r['error'] = '; '.join(problems[:6]) + (' ...' if len(problems) > 6 else '')
            failed = scn
        log('run %d %-11s %-11s %6.2f s wall %6.2f s cpu %7.1f MB %s' % (
            run_no, tool_name, scn, t['wall'], t['cpu'], t['maxrss_kb'] / 1024.0,
            'ok' if not problems else 'FAILED: ' + r['error']))
    if not args.keep:
        shutil.rmtree(wdir, ignore_errors=True)
    return results


# ---------------------------------------------------------------------------
# report

def summarize(results, tools):
    """{(tool, scenario): {...medians..., ok_runs, runs}}."""
    out = {}
    for tool in tools:
        for scn in SCENARIOS:
            rs = [r for r in results if r['tool'] == tool and r['scenario'] == scn]
            ok = [r for r in rs if r['status'] == 'ok']
            s = {'runs': len(rs), 'ok_runs': len(ok)}
            if ok:
                for k in ('wall', 'cpu', 'user', 'sys', 'maxrss_kb'):
                    s[k] = statistics.median(r[k] for r in ok)
                s['wall_all'] = [round(r['wall'], 3) for r in ok]
            errs = [r.get('error') for r in rs if r['status'] != 'ok' and r.get('error')]
            if errs:
                s['error'] = errs[0]
            if ok:
                s['status'] = 'ok' if len(ok) == len(rs) else 'partial'
            elif rs and all(r['status'] == 'skipped' for r in rs):
                s['status'] = 'skipped'
            else:
                s['status'] = 'failed'
            out[(tool, scn)] = s
    return out


def fmt_ratio(x, base):
    if x is None or not base:
        return ''
    return '%.2fx' % (x / base)


def markdown(summary, tools, meta):
    lines = []
    lines.append('%d messages, %.0f MB in %d folders; local fsync %s, Dovecot mail_fsync=%s; '
                 'median of %d run(s); plain IMAP on 127.0.0.1; %d CPUs.' % (
                     meta['messages'], meta['bytes'] / 1e6, len(FOLDERS), meta['fsync'],
                     meta['server_fsync'], meta['runs'], meta['cpus']))
    lines.append('Incremental: %d new messages + %d flag changes on the server; upload: %d new '
                 'local messages.' % (meta['new'], meta['flag_changes'], meta['uploads']))
    lines.append('')
    lines.append('| Scenario | Tool | Wall (s) | Wall vs mbsync | CPU (s) | Peak RSS (MB) '
                 '| RSS vs mbsync | Runs ok |')
    lines.append('|---|---|---:|---:|---:|---:|---:|---:|')
    for scn in SCENARIOS:
        base = summary.get(('mbsync', scn), {})
        for tool in tools:
            s = summary[(tool, scn)]
            if 'wall' not in s:
                lines.append('| %s | %s | %s | | | | | %d/%d |' % (scn, tool, s['status'],
                                                                  s['ok_runs'], s['runs']))
                continue
            lines.append('| %s | %s | %.2f | %s | %.2f | %.1f | %s | %d/%d |' % (
                scn, tool, s['wall'], fmt_ratio(s['wall'], base.get('wall')), s['cpu'],
                s['maxrss_kb'] / 1024.0, fmt_ratio(s['maxrss_kb'], base.get('maxrss_kb')),
                s['ok_runs'], s['runs']))
    errs = [(k, s['error']) for k, s in summary.items() if s.get('error')]
    if errs:
        lines.append('')
        for (tool, scn), e in sorted(errs):
            lines.append('- %s %s: %s' % (tool, scn, e))
    return '\n'.join(lines)


# ---------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--messages', type=int, default=10000, help='corpus size (default 10000)')
    ap.add_argument('--tools', default='oimap,mbsync,offlineimap',
                    help='comma-separated, from: ' + ','.join(TOOLS))
    ap.add_argument('--runs', type=int, default=3, help='runs per tool; the median is reported')
    ap.add_argument('--fsync', choices=('on', 'off'), default='on',
                    help='local fsync of every tool (default on, as offlineimap)')
    ap.add_argument('--server-fsync', choices=('never', 'optimized', 'always'),
                    help="Dovecot's mail_fsync (default: optimized with --fsync on, else never)")
    ap.add_argument('--new', type=int, help='new server messages (default 2%% of --messages)')
    ap.add_argument('--flag-changes', type=int,
                    help='server flag changes (default 10%% of --messages)')
    ap.add_argument('--uploads', type=int, help='new local messages (default 10%% of --messages)')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--timeout', type=float,
                    help='seconds per tool run before it is killed (default 300 + 0.03 s '
                    'per message)')
    ap.add_argument('--workdir', help='template cache and scratch space (default '
                    '$OIMAP_BUILDDIR/bench-work, else /tmp/oimap-bench-UID)')
    ap.add_argument('--out', help='write all results as JSON here')
    ap.add_argument('--keep', action='store_true', help='keep Maildirs, configs and logs')
    ap.add_argument('--allow-fail', default='',
                    help='comma-separated tools whose failure does not make the exit status '
                    'non-zero (still reported as failed)')
    ap.add_argument('--smoke', action='store_true',
                    help='quick check: --messages 1000 --runs 1 unless given')
    a = ap.parse_args(argv)
    if a.smoke:
        if '--messages' not in ' '.join(argv or []):
            a.messages = 1000
        if '--runs' not in ' '.join(argv or []):
            a.runs = 1
    a.tools = [t.strip() for t in a.tools.split(',') if t.strip()]
    for t in a.tools:
        if t not in TOOLS:
            ap.error('unknown tool %r (choose from %s)' % (t, ', '.join(TOOLS)))
    a.allow_fail = {t.strip() for t in a.allow_fail.split(',') if t.strip()}
    if a.messages < 10 or a.runs < 1:
        ap.error('need --messages >= 10 and --runs >= 1')
    if a.new is None:
        a.new = max(1, a.messages // 50)
    if a.flag_changes is None:
        a.flag_changes = max(1, a.messages // 10)
    if a.uploads is None:
        a.uploads = max(1, a.messages // 10)
    if a.server_fsync is None:
        a.server_fsync = 'optimized' if a.fsync == 'on' else 'never'
    if a.timeout is None:
        a.timeout = 300 + 0.03 * a.messages
    if a.workdir is None:
        b = os.environ.get('OIMAP_BUILDDIR')
        a.workdir = os.path.join(b, 'bench-work') if b else '/tmp/oimap-bench-%d' % os.getuid()
    a.workdir = os.path.abspath(a.workdir)
    return a


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if os.geteuid() != 0:
        log('warning: the private Dovecot needs root (it runs mail as user oimaptest)')
    os.makedirs(args.workdir, exist_ok=True)
    manifest = build_template(args.workdir, args.messages, args.seed)
    tmpl_mail = os.path.join(template_path(args.workdir, args.messages, args.seed), 'mail')
    args.workload = Workload(manifest, args.seed, args.new, args.flag_changes, args.uploads)
    work = os.path.join(args.workdir, 'run-%d' % os.getpid())
    os.makedirs(work)
    users = {}
    for r in range(1, args.runs + 1):
        for t in args.tools:
            users['%s%d' % (t, r)] = 'pw-%s-%d' % (t, r)
    dv = Dovecot(users=users, starttls=False, fsync=args.server_fsync,
                 directory=os.path.join(work, 'dovecot'))
    dv.start()
    versions = {}
    results = []
    t_start = time.monotonic()
    try:
        for r in range(1, args.runs + 1):
            # rotate the order so no tool always runs first (or last)
            k = (r - 1) % len(args.tools)
            order = args.tools[k:] + args.tools[:k]
            for t in order:
                user = '%s%d' % (t, r)
                res = run_tool(args, dv, work, t, r, user, users[user], tmpl_mail)
                results += res
                if t not in versions:
                    try:
                        versions[t] = TOOL_CLASSES[t](args, dv, user, '', work).version()
                    except Exception:  # noqa: BLE001
                        versions[t] = ''
    finally:
        dv.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    meta = {'messages': args.messages, 'bytes': template_bytes(args.workdir, args.messages,
                                                              args.seed),
            'seed': args.seed, 'fsync': args.fsync, 'server_fsync': args.server_fsync,
            'runs': args.runs, 'new': args.workload.n_new,
            'flag_changes': args.workload.n_flags, 'uploads': args.workload.n_upload,
            'cpus': os.cpu_count(), 'kernel': platform.release(), 'versions': versions,
            'folders': list(FOLDER_NAMES), 'elapsed': round(time.monotonic() - t_start, 1)}
    summary = summarize(results, args.tools)
    table = markdown(summary, args.tools, meta)
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump({'meta': meta, 'results': results,
                       'summary': [dict(tool=k[0], scenario=k[1], **v)
                                   for k, v in summary.items()]}, f, indent=1)
            f.write('\n')
    bad = [k for k, s in summary.items() if s['status'] != 'ok' and k[0] not in args.allow_fail]
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
