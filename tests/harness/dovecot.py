#!/usr/bin/env python3
"""A private Dovecot (Debian dovecot-imapd 2.3) for tests, on 127.0.0.1.

    from dovecot import Dovecot
    with Dovecot() as dv:                 # cert='good', starttls=True
        dv.port, dv.tls_port, dv.ca_file, dv.users['alice']
        with dv.session('alice') as s:    # ImapSession (see imaputil.py)
            s.append('INBOX', b'...', ['\\Seen'])

Everything lives in a fresh directory (config, run dir, state, log, mail);
/etc/dovecot is never read. Mail processes run as the unprivileged system
user 'oimaptest' (created on first use). The master is started in the
foreground in its own process group and dies with the process that started
it (PR_SET_PDEATHSIG), unless detached for the command-line use:

    python3 tests/harness/dovecot.py start --dir DIR [--sample N] [--tls good]
    python3 tests/harness/dovecot.py stop --dir DIR
"""

import argparse
import atexit
import ctypes
import json
import os
import pwd
import grp
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import certs as certs_mod  # noqa: E402
import imaputil  # noqa: E402
from imaputil import ImapSession, mutf7_encode  # noqa: E402

DOVECOT_BIN = os.environ.get('OIMAP_DOVECOT', '/usr/sbin/dovecot')
DOVEADM_BIN = os.environ.get('OIMAP_DOVEADM', '/usr/bin/doveadm')
MAIL_USER = 'oimaptest'
HOST = '127.0.0.1'

DEFAULT_USERS = {'alice': 'secret pass;#%', 'bob': 'bob-Passw0rd'}


class DovecotError(RuntimeError):
    pass


# ---------------------------------------------------------------------------
# helpers

def ensure_mail_user():
    """(uid, gid) of the unprivileged mail user, created if missing."""
    try:
        pw = pwd.getpwnam(MAIL_USER)
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        pass
    if os.geteuid() != 0:
        raise DovecotError('user %s does not exist and we are not root' % MAIL_USER)
    p = subprocess.run(['useradd', '--system', '--user-group', '--no-create-home',
                        '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin',
                        MAIL_USER], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:  # a parallel process may have won the race: that is fine
        pw = pwd.getpwnam(MAIL_USER)
    except KeyError:
        raise DovecotError('useradd %s failed: %s' % (MAIL_USER, p.stdout.decode())) from None
    return pw.pw_uid, pw.pw_gid


def free_port():
    """A port the kernel considers free right now (may be taken before use;
    start() retries on a bind failure)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _login_user():
    for u in ('dovenull', 'nobody'):
        try:
            pwd.getpwnam(u)
            return u
        except KeyError:
            pass
    return MAIL_USER


def _internal_user():
    try:
        pwd.getpwnam('dovecot')
        grp.getgrnam('dovecot')
        return 'dovecot'
    except KeyError:
        return MAIL_USER


def _pdeathsig():
    """preexec_fn: the master gets SIGKILL if the process that started it
    dies, so no Dovecot outlives a crashed or killed test."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort
        pass


def pid_alive(pid):
    """True if pid runs (zombies count as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open('/proc/%d/stat' % pid) as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
        return state not in ('Z', 'X')
    except OSError:
        return False


def group_members(pgid, zombies=False):
    """PIDs of live processes in process group pgid (with zombies=True:
    only the zombies)."""
    out = []
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % name) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        # fields[0] is the state, fields[2] the process group
        if int(fields[2]) == pgid and (fields[0] in ('Z', 'X')) == zombies:
            out.append(int(name))
    return out


def _kill_group(pgid, timeout=5.0):
    """SIGKILL every process of our master's group and wait until gone.
    Orphans that were re-parented to us (we are a child subreaper) are
    reaped, each by its own PID, so no zombies pile up where init does not
    reap them."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        live = group_members(pgid)
        for pid in group_members(pgid, zombies=True):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        if not live or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    # orphans reach us a moment after their parent died: reap what is ours
    for _ in range(20):
        mine = False
        for pid in group_members(pgid, zombies=True):
            try:
                os.waitpid(pid, os.WNOHANG)
                mine = True
            except ChildProcessError:
                pass
        if not mine:
            return
        time.sleep(0.005)


_subreaper_set = False


def _become_subreaper():
    """Orphaned Dovecot children re-parent to us instead of PID 1 (which,
    in some containers, never reaps them)."""
    global _subreaper_set
    if _subreaper_set:
        return
    _subreaper_set = True
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:  # noqa: BLE001 - best effort
        pass


def _check_traversable(path):
    """Dovecot's auth and mail processes run unprivileged: every directory
    above ours must let others through (o+x)."""
    p = os.path.abspath(path)
    while True:
        parent = os.path.dirname(p)
        st = os.stat(p)
        if not st.st_mode & 0o001:
            raise DovecotError('%s (mode %o) is not traversable by other users; Dovecot\'s '
                               'unprivileged processes need o+x on every directory above %s'
                               % (p, st.st_mode & 0o777, path))
        if parent == p:
            return
        p = parent


def _cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return f.read().split(b'\0')
    except OSError:
        return []


_live = weakref.WeakSet()
_live_lock = threading.Lock()


@atexit.register
def _stop_all():
    with _live_lock:
        items = list(_live)
    for dv in items:
        try:
            dv.stop()
        except Exception:  # noqa: BLE001
            pass


# ---------------------------------------------------------------------------

_CONF = """\
# generated by tests/harness/dovecot.py -- private test instance
base_dir = {dir}/run
state_dir = {dir}/state
instance_name = {instance}
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
debug_log_path = {dir}/dovecot.log
protocols = imap
listen = {host}
shutdown_clients = yes
default_internal_user = {internal_user}
default_internal_group = {internal_user}
default_login_user = {login_user}
first_valid_uid = 1
default_process_limit = 500
default_client_limit = 2000
ssl = {ssl}
ssl_cert = <{cert}
ssl_key = <{key}
ssl_dh = <{dh}
ssl_min_protocol = {tls_min}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = {auth_failure_delay}
auth_verbose = yes
auth_cache_size = 0
mail_location = maildir:{dir}/mail/%u{layout}
mail_fsync = {fsync}
mail_max_userip_connections = 500
maildir_very_dirty_syncs = no
# The mailbox list index of 2.3.19 deadlocks on concurrent CREATEs of one
# user (with fcntl locks the kernel reports EDEADLK and Dovecot panics the
# sessions; with flock they hang). Without it LIST reads the file system.
mailbox_list_index = {list_index}
{idle_line}
namespace inbox {{
  inbox = yes
  mailbox Drafts {{
    special_use = \\Drafts
  }}
  mailbox Sent {{
    special_use = \\Sent
  }}
  mailbox Trash {{
    special_use = \\Trash
  }}
  mailbox Junk {{
    special_use = \\Junk
  }}
  mailbox Archive {{
    special_use = \\Archive
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    address = {host}
    port = {tls_port}
    ssl = yes
  }}
}}
# No growing login delay after failed logins from 127.0.0.1: wrong-password
# tests would slow down every later test.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
{extra}
"""


class Dovecot:
    """A private Dovecot instance.

    cert: 'good' | 'wronghost' | 'expired' | 'selfsigned' (see certs.py)
    starttls: False -> ssl = no: CAPABILITY lacks STARTTLS, and there is no
              implicit-TLS port (tls_port is None; Dovecot 2.3 cannot enable
              TLS per listener).
    users: {name: password} (passwords without ':' or newline)
    delimiter: '/' (maildir LAYOUT=fs, default) or '.' (Maildir++)
    fsync: mail_fsync: 'never' (fast, default), 'optimized' or 'always'
    idle_notify_interval: imap_idle_notify_interval, e.g. '2 mins'
    directory: use this directory (created) instead of a fresh temp dir;
               it is not removed on stop.
    extra_conf: text appended to the generated config.
    list_index: mailbox_list_index (off by default: see the config comment).
    compress: load the zlib and imap_zlib plugins, so CAPABILITY after login
              offers COMPRESS=DEFLATE (RFC 4978); off by default.
    """

    def __init__(self, cert='good', starttls=True, users=None, delimiter='/', fsync='never',
                 idle_notify_interval=None, directory=None, extra_conf='', certs=None,
                 tls_min='TLSv1.2', auth_failure_delay='0', list_index=False, keep=False,
                 start=False, compress=False):
        certs_mod.Certs._check(cert)
        if delimiter not in ('/', '.'):
            raise ValueError("delimiter must be '/' or '.'")
        self.cert = cert
        self.starttls = starttls
        self.users = dict(DEFAULT_USERS if users is None else users)
        for u, p in self.users.items():
            if re.search(r'[:\n\r]', u + p) or not u:
                raise ValueError('user/password %r cannot be in a passwd-file' % u)
        self.delimiter = delimiter
        self.fsync = fsync
        self.idle_notify_interval = idle_notify_interval
        self.extra_conf = extra_conf
        self.tls_min = tls_min
        self.auth_failure_delay = auth_failure_delay
        self.list_index = list_index
        self.compress = compress
        self.keep = keep or directory is not None
        self._certs = certs
        self._given_dir = directory
        self.dir = None
        self.host = HOST
        self.port = None
        self.tls_port = None
        self.pid = None
        self.proc = None
        self.detached = False
        if start:
            self.start()

    # -- paths -------------------------------------------------------------
    @property
    def certs(self):
        if self._certs is None:
            self._certs = certs_mod.get()
        return self._certs

    @property
    def conf_path(self):
        return os.path.join(self.dir, 'dovecot.conf')

    @property
    def log_path(self):
        return os.path.join(self.dir, 'dovecot.log')

    @property
    def ca_file(self):
        return self.certs.ca_file

    @property
    def cert_file(self):
        return self.certs.cert_file(self.cert)

    @property
    def key_file(self):
        return self.certs.key_file(self.cert)

    def fingerprint(self, alg='sha256'):
        """Hex digest (lowercase, no colons) of the served certificate."""
        return self.certs.fingerprint(self.cert, alg)

    def fingerprints(self):
        return self.certs.fingerprints(self.cert)

    def mail_root(self, user='alice'):
        """The user's server-side Maildir root (INBOX lives in it)."""
        return os.path.join(self.dir, 'mail', user)

    def maildir_path(self, user, folder='INBOX'):
        """Server-side Maildir directory of a folder (for white-box checks)."""
        root = self.mail_root(user)
        if folder.upper() == 'INBOX':
            return root
        enc = mutf7_encode(folder)
        if self.delimiter == '/':
            return os.path.join(root, *enc.split('/'))
        return os.path.join(root, '.' + enc)

    def log_text(self):
        try:
            with open(self.log_path, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def count_logins(self, user=None, failed=False):
        """Successful (or, with failed=True, failed) logins in the log."""
        text = self.log_text()
        if failed:
            pat = r'auth: (?:passwd-file|Info: passwd-file)\(%s,' % (re.escape(user) if user else
                                                                     r'[^,]*')
            return len(re.findall(pat + r'.*(?:Password mismatch|unknown user)', text))
        pat = r'imap-login: Info: Login: user=<%s>' % (re.escape(user) if user else r'[^>]*')
        return len(re.findall(pat, text))

    # -- lifecycle ---------------------------------------------------------
    def _write_files(self):
        d = self.dir
        uid, gid = ensure_mail_user()
        os.chmod(d, 0o755)  # mail and auth processes must traverse it
        _check_traversable(d)
        mail = os.path.join(d, 'mail')
        os.makedirs(mail, exist_ok=True)
        os.chown(mail, uid, gid)
        for u in self.users:
            p = os.path.join(mail, u)
            if not os.path.isdir(p):
                os.makedirs(p)
                os.chown(p, uid, gid)
                os.chmod(p, 0o700)
        with open(os.path.join(d, 'passwd'), 'w') as f:
            for u, p in self.users.items():
                f.write('%s:{PLAIN}%s::::::\n' % (u, p))
        os.chmod(os.path.join(d, 'passwd'), 0o644)
        dh = '/usr/share/dovecot/dh.pem'
        if not os.path.exists(dh):
            dh = os.path.join(d, 'dh.pem')
            if not os.path.exists(dh):
                subprocess.run(['openssl', 'genpkey', '-genparam', '-algorithm', 'DH',
                                '-pkeyopt', 'group:ffdhe2048', '-out', dh], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        idle = ''
        if self.idle_notify_interval:
            idle = 'imap_idle_notify_interval = %s' % self.idle_notify_interval
        if self.compress:
            idle += ('\nmail_plugins = $mail_plugins zlib\n'
                     'protocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}')
        conf = _CONF.format(
            dir=d, host=self.host, port=self.port, tls_port=self.tls_port,
            instance='oimaptest-%d-%d' % (os.getpid(), id(self) % 100000),
            internal_user=_internal_user(), login_user=_login_user(),
            ssl='yes' if self.starttls else 'no', cert=self.cert_file, key=self.key_file,
            dh=dh, tls_min=self.tls_min, auth_failure_delay=self.auth_failure_delay,
            layout=':LAYOUT=fs' if self.delimiter == '/' else '', fsync=self.fsync,
            idle_line=idle, uid=uid, gid=gid, extra=self.extra_conf,
            list_index='yes' if self.list_index else 'no')
        with open(self.conf_path, 'w') as f:
            f.write(conf)

    def start(self, timeout=15.0):
        """Start the master; returns when the plain port greets. Retries with
        new ports if one was taken in the meantime."""
        if self.proc is not None or self.pid is not None:
            raise DovecotError('already started')
        if not os.path.exists(DOVECOT_BIN):
            raise DovecotError('%s not found (apt-get install dovecot-imapd)' % DOVECOT_BIN)
        if self.dir is None:
            if self._given_dir:
                self.dir = os.path.abspath(self._given_dir)
                os.makedirs(self.dir, exist_ok=True)
            else:
                self.dir = tempfile.mkdtemp(prefix='oimap-dovecot-')
        last = ''
        for _attempt in range(8):
            if self.port is None or _attempt > 0:
                self.port = free_port()
                self.tls_port = free_port()
                while self.tls_port == self.port:
                    self.tls_port = free_port()
            self._write_files()
            err = self._spawn(timeout)
            if err is None:
                if not self.starttls:
                    self.tls_port = None
                return self
            last = err
            if 'in use' not in err:
                break
        self._cleanup_dir()
        raise DovecotError('Dovecot did not start: %s' % last)

    def _spawn(self, timeout, detach=False):
        """Start once on the chosen ports; None if up, else an error text."""
        log_size = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        # A master.pid left by an earlier instance in this directory may name
        # a zombie (where init does not reap), which Dovecot takes for a
        # running master: remove it when that process is really gone.
        pidfile = os.path.join(self.dir, 'run', 'master.pid')
        try:
            with open(pidfile) as f:
                old = int(f.read().split()[0])
            if not pid_alive(old):
                os.unlink(pidfile)
        except (OSError, ValueError, IndexError):
            pass
        if not detach:
            _become_subreaper()
        out = open(os.path.join(self.dir, 'master.out'), 'ab')
        try:
            self.proc = subprocess.Popen(
                [DOVECOT_BIN, '-F', '-c', self.conf_path], stdin=subprocess.DEVNULL,
                stdout=out, stderr=out, start_new_session=True, close_fds=True,
                preexec_fn=None if detach else _pdeathsig)
        finally:
            out.close()
        self.pid = self.proc.pid
        self.detached = detach
        if not detach:
            with _live_lock:
                _live.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                self.pid = None
                with _live_lock:
                    _live.discard(self)
                return self._new_log(log_size) + self._master_out()
            if self._greets():
                if not self.starttls or imaputil.port_open(self.host, self.tls_port):
                    return None
            time.sleep(0.01)
        msg = 'no greeting within %.0f s: %s' % (timeout, self._new_log(log_size))
        self.stop()
        return msg

    def _greets(self):
        try:
            with socket.create_connection((self.host, self.port), timeout=2) as s:
                s.settimeout(2)
                return s.makefile('rb').readline().startswith(b'* OK')
        except OSError:
            return False

    def _new_log(self, offset):
        try:
            with open(self.log_path, 'rb') as f:
                f.seek(offset)
                return f.read().decode(errors='replace')
        except OSError:
            return ''

    def _master_out(self):
        try:
            with open(os.path.join(self.dir, 'master.out'), errors='replace') as f:
                return f.read()[-2000:]
        except OSError:
            return ''

    def stop(self, graceful=False, timeout=10.0):
        """Kill our master (and its process group) and wait until gone.

        graceful=True sends SIGTERM and lets Dovecot shut down (about 2 s);
        the default SIGKILL is instant and safe for mail already acknowledged
        (Dovecot has written it before answering)."""
        pid = self.pid
        if pid is None:
            return
        if pid_alive(pid) and self._is_ours(pid):
            if graceful:
                os.kill(pid, signal.SIGTERM)
                self._wait(pid, timeout)
            # the master leads its own process group (start_new_session); kill
            # any child that is still in it, by that group id
            for target in (lambda: os.killpg(pid, signal.SIGKILL),
                           lambda: os.kill(pid, signal.SIGKILL)):
                try:
                    target()
                except (ProcessLookupError, PermissionError):
                    pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._wait(pid, timeout)
        # children exit when they see the master gone; make sure none lingers
        _kill_group(pid)
        self._wait_ports_closed(2.0)
        self.proc = None
        self.pid = None
        with _live_lock:
            _live.discard(self)
        if not self.keep:
            self._cleanup_dir()

    def restart(self, graceful=False, down_time=0.0):
        """Stop and start again on the same ports with the same mail (for
        'server restarted under a running client' tests)."""
        keep = self.keep
        self.keep = True
        try:
            self.stop(graceful=graceful)
        finally:
            self.keep = keep
        if down_time:
            time.sleep(down_time)
        tls_port = self.tls_port
        if self.tls_port is None:
            self.tls_port = free_port()
        err = None
        for _ in range(50):  # the port may be briefly busy; do not move ports
            err = self._spawn(15.0)
            if err is None:
                if not self.starttls:
                    self.tls_port = None
                else:
                    self.tls_port = tls_port or self.tls_port
                return self
            if 'in use' not in err:
                break
            time.sleep(0.1)
        raise DovecotError('Dovecot did not restart: %s' % err)

    def _is_ours(self, pid):
        cmd = _cmdline(pid)
        return self.dir is not None and os.path.join(self.dir, 'dovecot.conf').encode() in cmd

    @staticmethod
    def _wait(pid, timeout):
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)

    def _wait_ports_closed(self, timeout):
        deadline = time.monotonic() + timeout
        for port in (self.port, self.tls_port):
            while port and imaputil.port_open(self.host, port) and time.monotonic() < deadline:
                time.sleep(0.01)

    def _cleanup_dir(self):
        if self.dir and not self.keep and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def running(self):
        return self.pid is not None and pid_alive(self.pid)

    def detach(self):
        """Forget the process: it keeps running after we exit (CLI use)."""
        with _live_lock:
            _live.discard(self)
        self.keep = True
        self.detached = True
        self.proc = None

    def __enter__(self):
        if self.pid is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __del__(self):
        try:
            if self.pid is not None and not self.detached:
                self.stop()
        except Exception:  # noqa: BLE001
            pass

    # -- IMAP --------------------------------------------------------------
    def session(self, user='alice', tls=None, password=None, timeout=30):
        """A logged-in ImapSession. tls: None (plain), 'starttls' or 'tls'."""
        port = self.tls_port if tls in ('tls', 'ssl', True) else self.port
        return ImapSession(self.host, port, user,
                           self.users[user] if password is None else password,
                           tls=tls, ca_file=self.ca_file, timeout=timeout)

    def _with(self, user, fn):
        with self.session(user) as s:
            return fn(s)

    def create_folder(self, user, name):
        return self._with(user, lambda s: s.create_folder(name))

    def delete_folder(self, user, name):
        return self._with(user, lambda s: s.delete_folder(name))

    def list_folders(self, user='alice'):
        return self._with(user, lambda s: s.list_folders())

    def append(self, user, folder, msg, flags=(), date=None):
        """Append one message (creating the folder if needed); returns UID."""
        def f(s):
            s.create_folder(folder)
            return s.append(folder, msg, flags, date)
        return self._with(user, f)

    def append_many(self, user, folder, items):
        def f(s):
            s.create_folder(folder)
            return s.append_many(folder, items)
        return self._with(user, f)

    deliver = append  # a new message while a client is connected (IDLE tests)

    def fetch_all(self, user, folder='INBOX', **kw):
        return self._with(user, lambda s: s.fetch_all(folder, **kw))

    def set_flags(self, user, folder, uids, flags):
        return self._with(user, lambda s: s.set_flags(folder, uids, flags))

    def clear_flags(self, user, folder, uids, flags):
        return self._with(user, lambda s: s.clear_flags(folder, uids, flags))

    def delete_messages(self, user, folder, uids, expunge=True):
        return self._with(user, lambda s: s.delete(folder, uids, expunge))

    def status(self, user, folder='INBOX'):
        return self._with(user, lambda s: s.status(folder))

    # -- doveadm -----------------------------------------------------------
    def doveadm(self, *args, input=None, check=True, timeout=60):
        """Run doveadm against this instance; returns CompletedProcess."""
        p = subprocess.run([DOVEADM_BIN, '-c', self.conf_path] + list(args), input=input,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        if check and p.returncode != 0:
            raise DovecotError('doveadm %s failed (%d): %s' % (
                ' '.join(args), p.returncode, p.stderr.decode(errors='replace')))
        return p

    def set_uidvalidity(self, user, folder, value):
        """Change a folder's UIDVALIDITY (clients must notice)."""
        self.doveadm('mailbox', 'update', '-u', user, '--uid-validity', str(int(value)),
                     folder)  # doveadm takes UTF-8 names

    def uidvalidity(self, user, folder='INBOX'):
        return self.status(user, folder)['uidvalidity']

    def deliver_doveadm(self, user, folder, msg):
        """Save a message with 'doveadm save' (no IMAP session involved)."""
        self.doveadm('save', '-u', user, '-m', folder, input=msg)

    # -- description -------------------------------------------------------
    def env(self):
        """What a script needs to talk to this instance (JSON-able)."""
        return {'host': self.host, 'port': self.port, 'tls_port': self.tls_port,
                'users': dict(self.users), 'ca_file': self.ca_file, 'cert': self.cert,
                'cert_file': self.cert_file, 'fingerprints': self.fingerprints(),
                'delimiter': self.delimiter, 'pid': self.pid, 'dir': self.dir,
                'conf': self.conf_path, 'log': self.log_path,
                'mail_root': os.path.join(self.dir, 'mail')}


# ---------------------------------------------------------------------------
# command line

def _stop_pid(pid, ddir):
    """Kill a (detached) master by PID after checking it runs ddir's config."""
    if pid and pid_alive(pid) and os.path.join(ddir, 'dovecot.conf').encode() in _cmdline(pid):
        for fn in (os.killpg, os.kill):
            try:
                fn(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        Dovecot._wait(pid, 10)
        _kill_group(pid)


def _cli_start(a):
    d = os.path.abspath(a.dir)
    envf = os.path.join(d, 'env.json')
    if os.path.exists(envf):
        with open(envf) as f:
            old = json.load(f)
        if old.get('pid') and pid_alive(old['pid']) and \
                os.path.join(old['dir'], 'dovecot.conf').encode() in _cmdline(old['pid']):
            print('already running (pid %d); stop it first' % old['pid'], file=sys.stderr)
            return 1
    os.makedirs(d, exist_ok=True)
    c = certs_mod.Certs(os.path.join(d, 'certs'))
    ddir = os.path.join(d, 'dovecot')
    if not os.path.exists(ddir):
        try:
            _check_traversable(d)
        except DovecotError:
            # e.g. DIR under /root (0700): Dovecot's unprivileged processes
            # cannot reach it, so its files live in /tmp behind a symlink
            real = tempfile.mkdtemp(prefix='oimap-dovecot-')
            os.symlink(real, ddir)
    ddir = os.path.realpath(ddir)
    os.makedirs(ddir, exist_ok=True)
    dv = Dovecot(cert=a.tls, starttls=not a.no_starttls, directory=ddir,
                 certs=c, fsync=a.fsync, delimiter=a.delimiter)
    # detached: no PDEATHSIG; spawn by hand
    dv.dir = ddir
    err = 'not started'
    for _ in range(8):
        dv.port, dv.tls_port = free_port(), free_port()
        dv._write_files()
        err = dv._spawn(15.0, detach=True)
        if err is None or 'in use' not in err:
            break
    if err is not None:
        print('Dovecot did not start: %s' % err, file=sys.stderr)
        return 1
    if not dv.starttls:
        dv.tls_port = None
    dv.detach()
    try:
        if a.sample:
            import corpus
            t = time.monotonic()
            man = corpus.fill(dv, a.user, a.sample, seed=a.seed)
            print('filled %s with %d messages in %d folders (%.1f s)' % (
                a.user, sum(len(v) for v in man.values()), len(man), time.monotonic() - t),
                file=sys.stderr)
    except Exception:
        _stop_pid(dv.pid, dv.dir)
        raise
    with open(envf + '.tmp', 'w') as f:
        json.dump(dv.env(), f, indent=2, ensure_ascii=False)
        f.write('\n')
    os.replace(envf + '.tmp', envf)
    print(envf)
    return 0


def _cli_stop(a):
    envf = os.path.join(os.path.abspath(a.dir), 'env.json')
    try:
        with open(envf) as f:
            env = json.load(f)
    except OSError:
        print('no %s: nothing to stop' % envf, file=sys.stderr)
        return 1
    _stop_pid(env.get('pid'), env['dir'])
    if env.get('pid') and pid_alive(env['pid']):
        print('pid %d still alive' % env['pid'], file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description='private test Dovecot')
    sub = ap.add_subparsers(dest='cmd', required=True)
    s = sub.add_parser('start', help='start detached; write DIR/env.json')
    s.add_argument('--dir', required=True)
    s.add_argument('--sample', type=int, default=0, help='fill with N corpus messages')
    s.add_argument('--user', default='alice', help='user to fill (default alice)')
    s.add_argument('--seed', type=int, default=1)
    s.add_argument('--tls', default='good', choices=certs_mod.NAMES)
    s.add_argument('--no-starttls', action='store_true')
    s.add_argument('--fsync', default='never', choices=('never', 'optimized', 'always'))
    s.add_argument('--delimiter', default='/', choices=('/', '.'))
    t = sub.add_parser('stop', help='kill the instance of DIR/env.json')
    t.add_argument('--dir', required=True)
    a = ap.parse_args(argv)
    return _cli_start(a) if a.cmd == 'start' else _cli_stop(a)


if __name__ == '__main__':
    sys.exit(main())
