"""Shared helpers for every integration test.

    import util                       # puts tests/harness on sys.path
    from util import Dovecot, corpus, listeners, run_oimap

    rc, out, err = run_oimap(['-o'], config_text)          # foreground
    p = start_oimap(['-u', 'quiet'], config_text)          # background
    p.signal(signal.SIGUSR1); rc = p.wait(10)

The binary is $OIMAP_BIN (set by meson). $OIMAP_WRAPPER, if set, is a
command prefix (e.g. "valgrind --error-exitcode=99 --leak-check=full").
Every oimap run gets an isolated HOME (and XDG_CONFIG_HOME under it) unless
the caller's env gives one, so no test ever reads or writes the real
~/.offlineimaprc or ~/.offlineimap.
"""

import atexit
import collections
import os
import shlex
import shutil
import signal
import signal as _signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get('OIMAP_SRCDIR') or os.path.abspath(os.path.join(HERE, '..', '..'))
HARNESS = os.path.join(SRCDIR, 'tests', 'harness')
if not os.path.isdir(HARNESS):
    HARNESS = os.path.abspath(os.path.join(HERE, '..', 'harness'))
if HARNESS not in sys.path:
    sys.path.insert(0, HARNESS)

import certs  # noqa: E402,F401
import corpus  # noqa: E402,F401
import imaputil  # noqa: E402,F401
import listeners  # noqa: E402,F401
from dovecot import Dovecot  # noqa: E402,F401
from imaputil import mutf7_decode, mutf7_encode  # noqa: E402,F401

__all__ = ['Dovecot', 'certs', 'corpus', 'imaputil', 'listeners', 'mutf7_encode',
           'mutf7_decode', 'Result', 'OimapTimeout', 'OimapProcess', 'run_oimap',
           'start_oimap', 'run_cmd', 'oimap_bin', 'oimap_env', 'tmpdir', 'write_file',
           'write_config', 'cfg_escape', 'offlineimap_config', 'DovecotTestCase', 'main']

Result = collections.namedtuple('Result', 'rc stdout stderr')

DEFAULT_TIMEOUT = float(os.environ.get('OIMAP_TEST_TIMEOUT', '60'))

_tmp_root = tempfile.mkdtemp(prefix='oimap-it-')
os.chmod(_tmp_root, 0o755)  # a Dovecot may live below it (unprivileged processes)
atexit.register(shutil.rmtree, _tmp_root, True)
_live = {}  # pid -> Popen of background oimap processes


@atexit.register
def _kill_leftovers():
    for pid, p in list(_live.items()):
        if p.poll() is None:
            _kill_tree(p)


class OimapTimeout(AssertionError):
    """oimap did not finish in time; it was killed. Carries the output."""

    def __init__(self, msg, stdout='', stderr=''):
        super().__init__('%s\n--- stdout ---\n%s\n--- stderr ---\n%s' % (msg, stdout, stderr))
        self.stdout = stdout
        self.stderr = stderr


def oimap_bin():
    """Path of the binary under test ($OIMAP_BIN, else build/oimap)."""
    b = os.environ.get('OIMAP_BIN')
    if b:
        return b
    for cand in (os.path.join(os.environ.get('OIMAP_BUILDDIR', ''), 'oimap'),
                 os.path.join(SRCDIR, 'build', 'oimap')):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise unittest.SkipTest('OIMAP_BIN not set and no build/oimap')


def tmpdir(prefix='t'):
    """A fresh directory (mode 0755, so a Dovecot may live in it), removed
    when the test process exits."""
    d = tempfile.mkdtemp(prefix=prefix + '-', dir=_tmp_root)
    os.chmod(d, 0o755)
    return d


def write_file(path, text, mode=0o600):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w' if isinstance(text, str) else 'wb') as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def write_config(text, directory=None, name='oimap.conf'):
    return write_file(os.path.join(directory or tmpdir('conf'), name), text)


_default_home = None


def isolated_home():
    """The isolated HOME used when the caller does not give one."""
    global _default_home
    if _default_home is None:
        _default_home = tmpdir('home')
    return _default_home


def oimap_env(env=None, home=None):
    """Environment for an oimap run: os.environ + isolated HOME + env."""
    e = dict(os.environ)
    for k in ('XDG_CONFIG_HOME', 'OFFLINEIMAPRC', 'NOTIFY_SOCKET'):
        e.pop(k, None)
    h = home or isolated_home()
    e['HOME'] = h
    e['XDG_CONFIG_HOME'] = os.path.join(h, '.config')
    e.setdefault('LC_ALL', 'C.UTF-8')
    if env:
        for k, v in env.items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
    return e


def _argv(args, config_text, config_path):
    argv = shlex.split(os.environ.get('OIMAP_WRAPPER', '')) + [oimap_bin()]
    args = list(args)
    if config_text is not None:
        config_path = write_config(config_text)
    if config_path is not None and '-c' not in args:
        argv += ['-c', config_path]
    return argv + args


def _kill_tree(p):
    """SIGKILL a process we started (and its process group, which we made
    with start_new_session: children such as password commands go too)."""
    for fn in (os.killpg, os.kill):
        try:
            fn(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        pass
    _live.pop(p.pid, None)


def run_cmd(argv, timeout=DEFAULT_TIMEOUT, env=None, input=None, cwd=None):
    """Run argv to completion; Result(rc, stdout, stderr) as text. On
    timeout the process group is killed by its id and OimapTimeout raised."""
    if isinstance(input, str):
        input = input.encode()
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                         start_new_session=True)
    _live[p.pid] = p
    try:
        out, err = p.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(p)
        out, err = p.communicate()
        raise OimapTimeout('%s: no exit within %.1f s (killed)' % (' '.join(argv), timeout),
                           out.decode(errors='replace'), err.decode(errors='replace')) from None
    finally:
        _live.pop(p.pid, None)
    return Result(p.returncode, out.decode(errors='replace'), err.decode(errors='replace'))


def run_oimap(args, config_text=None, timeout=DEFAULT_TIMEOUT, env=None, input=None, cwd=None,
              home=None, config_path=None):
    """Run oimap with args (plus '-c FILE' for config_text / config_path unless
    args has -c). Returns Result(rc, stdout, stderr)."""
    return run_cmd(_argv(args, config_text, config_path), timeout=timeout,
                   env=oimap_env(env, home), input=input, cwd=cwd)


class OimapProcess:
    """A background oimap; output goes to files (no pipe can fill up)."""

    def __init__(self, argv, env, cwd=None):
        d = tmpdir('run')
        self.stdout_path = os.path.join(d, 'stdout')
        self.stderr_path = os.path.join(d, 'stderr')
        with open(self.stdout_path, 'wb') as o, open(self.stderr_path, 'wb') as e:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                                         env=env, cwd=cwd, start_new_session=True)
        self.pid = self.proc.pid
        self.argv = argv
        _live[self.pid] = self.proc

    def signal(self, sig):
        self.proc.send_signal(sig)

    def poll(self):
        return self.proc.poll()

    def wait(self, timeout=DEFAULT_TIMEOUT):
        """Exit status; on timeout kill it and raise OimapTimeout."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_tree(self.proc)
            raise OimapTimeout('%s: no exit within %.1f s (killed)' % (
                ' '.join(self.argv), timeout), self.stdout, self.stderr) from None
        _live.pop(self.pid, None)
        return rc

    def kill(self, sig=_signal.SIGKILL):
        """Kill just the oimap process (default SIGKILL) and reap it."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(30)
        _live.pop(self.pid, None)
        return rc

    def kill_tree(self):
        _kill_tree(self.proc)

    def _read(self, path):
        with open(path, 'rb') as f:
            return f.read().decode(errors='replace')

    @property
    def stdout(self):
        return self._read(self.stdout_path)

    @property
    def stderr(self):
        return self._read(self.stderr_path)

    def wait_for_output(self, text, timeout=10, stream='stderr'):
        """Wait until text appears in stdout/stderr; True or False."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in (self.stderr if stream == 'stderr' else self.stdout):
                return True
            if self.proc.poll() is not None:
                return text in (self.stderr if stream == 'stderr' else self.stdout)
            time.sleep(0.02)
        return False


def start_oimap(args, config_text=None, env=None, cwd=None, home=None, config_path=None):
    return OimapProcess(_argv(args, config_text, config_path), oimap_env(env, home), cwd)


def cfg_escape(value):
    """A value as ConfigParser needs it (interpolation: % -> %%)."""
    return str(value).replace('%', '%%')


def offlineimap_config(dv, localfolders, user='alice', security='starttls', account='test',
                       metadata=None, general=None, account_opts=None, remote=None,
                       local=None):
    """An offlineimaprc for one account syncing dv's user into a Maildir.

    security: 'starttls' (plain port + STARTTLS), 'tls' (implicit TLS port)
    or 'plain'. The dicts add or override options per section (None values
    drop an option)."""
    def section(name, opts):
        lines = ['[%s]' % name]
        for k, v in opts.items():
            if v is not None:
                lines.append('%s = %s' % (k, v))
        return '\n'.join(lines) + '\n'

    g = {'accounts': account, 'metadata': metadata or os.path.join(localfolders, '.meta'),
         'ui': 'basic'}
    g.update(general or {})
    a = {'localrepository': account + '-local', 'remoterepository': account + '-remote'}
    a.update(account_opts or {})
    loc = {'type': 'Maildir', 'localfolders': localfolders}
    loc.update(local or {})
    r = {'type': 'IMAP', 'remotehost': dv.host, 'remoteuser': user,
         'remotepass': cfg_escape(dv.users[user])}
    if security == 'tls':
        r.update({'remoteport': dv.tls_port, 'ssl': 'yes', 'sslcacertfile': dv.ca_file})
    elif security == 'starttls':
        r.update({'remoteport': dv.port, 'ssl': 'no', 'starttls': 'yes',
                  'sslcacertfile': dv.ca_file})
    elif security == 'plain':
        r.update({'remoteport': dv.port, 'ssl': 'no', 'starttls': 'no'})
    else:
        raise ValueError('security: starttls, tls or plain')
    r.update(remote or {})
    return '\n'.join([section('general', g), section('Account ' + account, a),
                      section('Repository %s-local' % account, loc),
                      section('Repository %s-remote' % account, r)])


class DovecotTestCase(unittest.TestCase):
    """A TestCase with one Dovecot for the class (self.dv) and a fresh
    directory per test (self.tmp). Override dovecot_args for options."""

    dovecot_args = {}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dv = Dovecot(**cls.dovecot_args).start()

    @classmethod
    def tearDownClass(cls):
        cls.dv.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.tmp = tmpdir(self.id().rsplit('.', 1)[-1])


def main():
    unittest.main(verbosity=2)
