#!/usr/bin/env python3
"""MULTIAPPEND (RFC 3502) for Maildir -> IMAP uploads against Dovecot.

- 250 new local messages in three folders arrive on the server exactly
  once each (Message-ID + body hash) with their flags, the Maildir files get
  their U= UIDs, and the -d imap log shows far fewer APPEND commands than
  messages (so this fails if batching silently stops);
- the same without UIDPLUS (UIDs found by the marker header) and without
  LITERAL+ (each literal waits for the server's '+');
- a MULTIAPPEND answered NO although stored (a rewriting proxy): each
  message is found by its marker before a resend, none stored twice;
- a batch holding one message the server refuses (quota_max_mail_size):
  the others are uploaded and recorded, the refused one is named and the
  run fails; a rerun refuses it again and duplicates nothing;
- kill -9 during a large batched upload, several times, then a full run:
  nothing lost, nothing twice, and a final run has nothing to do;
- a server without MULTIAPPEND: one APPEND per message, as before."""

import os
import random
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402
from test_sync import (assert_same, local_files, make_config, new_local_message,  # noqa: E402
                       server_summary, summaries, sync)

APPEND_RE = re.compile(r'C: A\d+ APPEND .*')
MULTI_RE = re.compile(r'\(MULTIAPPEND: (\d+) messages, (\d+) bytes\)')
FOLDERS = ('INBOX', 'Lists/dev', 'Archive')

# Dovecot 2.3's post-login capabilities, for imap_capability without some.
CAPS = ('IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY '
        'THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE '
        'UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC '
        'ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SPECIAL-USE '
        'LITERAL+')


def caps_without(*drop):
    return 'imap_capability = %s\n' % ' '.join(w for w in CAPS.split() if w not in drop)


def prepare(tc, user, folders=FOLDERS):
    """Server folders, a first sync that creates them locally; the config."""
    for f in folders:
        if f != 'INBOX':
            tc.dv.create_folder(user, f)
    root = os.path.join(tc.tmp, 'mail-' + user)
    conf = make_config(tc.dv, root, user)
    r = sync(conf)
    tc.assertEqual(r.rc, 0, r.stdout + r.stderr)
    return root, conf


def add_local(root, counts, seed, size=None):
    """New local messages: {folder: n}; every third flagged, every other seen."""
    rng = random.Random(seed)
    n = 0
    for f, k in counts.items():
        for i in range(k):
            flags = ''.join(x for x, on in (('F', i % 3 == 0), ('S', i % 2 == 1)) if on)
            new_local_message(root, f, rng, seed * 10000 + n, flags=flags, seed=seed)
            n += 1
    return n


def append_stats(out):
    """(APPEND commands, messages in MULTIAPPENDs, MULTIAPPEND commands)."""
    cmds = APPEND_RE.findall(out)
    multi = [int(m.group(1)) for m in MULTI_RE.finditer(out)]
    return len(cmds), sum(multi), len(multi)


def all_have_uid(tc, root, folders):
    for f in folders:
        for p in local_files(root, f):
            tc.assertRegex(os.path.basename(p), r',U=\d+', p)


class TestMultiappend(util.DovecotTestCase):
    dovecot_args = {'users': {u: 'pw-' + u for u in ('up', 'kill', 'big', 'dbg')}}

    def test_upload_250_batched(self):
        root, conf = prepare(self, 'up')
        counts = {'INBOX': 110, 'Lists/dev': 90, 'Archive': 50}
        n = add_local(root, counts, seed=3)
        r = sync(conf, '-d', 'imap')
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 0, out[-3000:])
        cmds, in_multi, nmulti = append_stats(out)
        # 250 messages: at most 2 commands per folder (100 a command).
        self.assertGreater(nmulti, 0, 'no MULTIAPPEND in the -d imap log')
        self.assertLessEqual(cmds, 6, 'APPEND commands: %d for %d messages' % (cmds, n))
        self.assertEqual(in_multi + (cmds - nmulti), n)
        # the log stays readable: no literal data, no huge lines
        for line in APPEND_RE.findall(out):
            self.assertLess(len(line), 400, line)
        self.assertNotIn('X-OIMAP-TUID:', out)
        all_have_uid(self, root, FOLDERS)
        assert_same(self, self.dv, 'up', root, folders=FOLDERS)
        for f, k in counts.items():
            self.assertEqual(len(server_summary(self.dv, 'up', f)), k)
        got = summaries(out)
        self.assertEqual(sum(v[1] for v in got.values()), n, got)
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        self.assertEqual(summaries(r.stdout + r.stderr), {}, r.stdout + r.stderr)

    def test_large_messages_split(self):
        """Messages over the non-synchronizing limit, and commands split by
        size: a 1.5 MB message waits for '+', all arrive once."""
        root, conf = prepare(self, 'big', folders=('INBOX',))
        rng = random.Random(9)
        from util import corpus
        d = os.path.join(root, 'INBOX', 'new')
        for i in range(12):
            size = 1500000 if i in (3, 8) else rng.randint(600000, 900000)
            data, _, _ = corpus.make_message(rng, 500 + i, size, seed=9, eol=b'\n')
            with open(os.path.join(d, '%d_%d.big' % (int(time.time()), i)), 'wb') as fh:
                fh.write(data)
        r = sync(conf, '-d', 'imap')
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 0, out[-3000:])
        cmds, in_multi, nmulti = append_stats(out)
        self.assertGreater(nmulti, 1, out[-2000:])
        self.assertLess(cmds, 12)
        self.assertIn('S: + ', out)  # a synchronizing literal waited for '+'
        all_have_uid(self, root, ('INBOX',))
        assert_same(self, self.dv, 'big', root, folders=('INBOX',))

    def test_kill9_during_batched_upload(self):
        user = 'kill'
        root, conf = prepare(self, user, folders=('INBOX', 'Lists/dev'))
        add_local(root, {'INBOX': 400, 'Lists/dev': 300}, seed=11)
        seed = int(os.environ.get('OIMAP_CRASH_SEED', str(int(time.time()) % 100000)))
        print('seed %d' % seed, file=sys.stderr)
        rng = random.Random(seed)
        # Eight kills: the even ones at a random time (possibly before
        # anything is sent), the odd ones just after the server's message
        # count grew (polled with STATUS), so that kills surely land while
        # the upload is under way, however slowly a loaded machine starts.
        def on_server():
            return sum(self.dv.status(user, f)['messages'] for f in ('INBOX', 'Lists/dev'))

        killed, mid, got = 0, 0, 0
        for k in range(8):
            p = util.start_oimap(['-o', '-u', 'basic'], config_text=conf)
            if k % 2:
                deadline = time.monotonic() + 60
                while (p.poll() is None and on_server() == got
                       and time.monotonic() < deadline):
                    time.sleep(0.02)
                time.sleep(rng.uniform(0, 0.1))
            else:
                time.sleep(rng.uniform(0.05, 0.5))
            if p.poll() is not None:
                p.wait(5)
                break  # it finished: everything is uploaded
            p.kill()
            p.wait(5)
            killed += 1
            got = on_server()
            mid += 0 < got < 700
        print('killed %d runs, %d during the upload; %d of 700 on the server after the '
              'kills' % (killed, mid, got), file=sys.stderr)
        self.assertGreater(mid, 0, 'no kill came during the upload')
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        for f, k in (('INBOX', 400), ('Lists/dev', 300)):
            self.assertEqual(len(server_summary(self.dv, user, f)), k, 'seed %d %s' % (seed, f))
        all_have_uid(self, root, ('INBOX', 'Lists/dev'))
        assert_same(self, self.dv, user, root, folders=('INBOX', 'Lists/dev'))
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        self.assertEqual(summaries(r.stdout + r.stderr), {}, r.stdout + r.stderr)


QUOTA_CONF = ('mail_plugins = $mail_plugins quota\n'
              'plugin {\n  quota = maildir:User quota\n'
              '  quota_rule = *:storage=1G\n'
              '  quota_max_mail_size = 200k\n}\n')


class RefusedMixin:
    """Dovecot refuses a message over quota_max_mail_size (NO [LIMIT]); in a
    MULTIAPPEND that refuses the whole command.  The other messages are
    uploaded and recorded, the refused one is named and the run exits
    non-zero, and the folder still carries on: flag changes and deletions
    made on the server arrive although the refusal repeats every run."""
    user = None
    multi = True

    def test_one_refused_others_uploaded(self):
        user = self.user
        root, conf = prepare(self, user, folders=('INBOX',))
        add_local(root, {'INBOX': 60}, seed=21)
        from util import corpus
        rng = random.Random(4)
        data, _, _ = corpus.make_message(rng, 999, 400000, seed=4, eol=b'\n')
        bad = '%d_999.toobig:2,S' % int(time.time())
        with open(os.path.join(root, 'INBOX', 'cur', bad), 'wb') as fh:
            fh.write(data)
        r = sync(conf, '-d', 'imap')
        out = r.stdout + r.stderr
        self.assertNotEqual(r.rc, 0, out[-3000:])
        self.assertIn(bad, out)
        self.assertRegex(out, r'refused local message .*%s' % re.escape(bad))
        self.assertRegex(out, r'the server refused 1 local message: .*%s' % re.escape(bad))
        self.assertEqual(append_stats(out)[2] > 0, self.multi, 'MULTIAPPEND use')
        srv = server_summary(self.dv, user, 'INBOX')
        self.assertEqual(len(srv), 60)
        for p in local_files(root, 'INBOX'):
            if bad in p:
                self.assertNotIn(',U=', os.path.basename(p))
            else:
                self.assertRegex(os.path.basename(p), r',U=\d+', p)
        # Changes on the server meanwhile: one message answered, one deleted.
        with self.dv.session(user) as s:
            uids = s.uids('INBOX')
            s.set_flags('INBOX', [uids[0]], ['\\Answered'])
            s.delete('INBOX', [uids[1]])
        # Again: the same refusal, nothing twice, and the changes arrive.
        r = sync(conf)
        out = r.stdout + r.stderr
        self.assertNotEqual(r.rc, 0, out[-3000:])
        self.assertIn(bad, out)
        self.assertEqual(len(server_summary(self.dv, user, 'INBOX')), 59)
        names = [os.path.basename(p) for p in local_files(root, 'INBOX')]
        self.assertEqual(len(names), 60, names)  # 59 synced + the refused one
        first = [n for n in names if re.search(r',U=%d[,:]' % uids[0], n)]
        self.assertEqual(len(first), 1, names)
        self.assertIn('R', first[0].rsplit(':2,', 1)[1], first)
        self.assertFalse([n for n in names if re.search(r',U=%d[,:]' % uids[1], n)], names)
        # Without it, everything is in place.
        os.unlink([p for p in local_files(root, 'INBOX') if bad in p][0])
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        assert_same(self, self.dv, user, root, folders=('INBOX',))


class TestMultiappendRefused(RefusedMixin, util.DovecotTestCase):
    dovecot_args = {'users': {'q1': 'pw-q1'}, 'extra_conf': QUOTA_CONF}
    user = 'q1'


class TestSingleAppendRefused(RefusedMixin, util.DovecotTestCase):
    """The same with one APPEND per message (no MULTIAPPEND offered)."""
    dovecot_args = {'users': {'q2': 'pw-q2'},
                    'extra_conf': QUOTA_CONF + caps_without('MULTIAPPEND')}
    user = 'q2'
    multi = False


class TestWithoutMultiappend(util.DovecotTestCase):
    dovecot_args = {'users': {'n1': 'pw-n1'}, 'extra_conf': caps_without('MULTIAPPEND')}

    def test_single_appends(self):
        root, conf = prepare(self, 'n1', folders=('INBOX', 'Lists/dev'))
        n = add_local(root, {'INBOX': 70, 'Lists/dev': 50}, seed=5)
        r = sync(conf, '-d', 'imap')
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 0, out[-3000:])
        cmds, _, nmulti = append_stats(out)
        self.assertEqual(nmulti, 0)
        self.assertEqual(cmds, n)
        all_have_uid(self, root, ('INBOX', 'Lists/dev'))
        assert_same(self, self.dv, 'n1', root, folders=('INBOX', 'Lists/dev'))


class TestMultiappendNoUidplus(util.DovecotTestCase):
    """MULTIAPPEND without UIDPLUS advertised."""
    dovecot_args = {'users': {'u1': 'pw-u1'}, 'extra_conf': caps_without('UIDPLUS')}

    def test_no_uidplus(self):
        root, conf = prepare(self, 'u1', folders=('INBOX',))
        add_local(root, {'INBOX': 130}, seed=6)
        r = sync(conf, '-d', 'imap')
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 0, out[-3000:])
        self.assertGreater(append_stats(out)[2], 0)
        all_have_uid(self, root, ('INBOX',))
        assert_same(self, self.dv, 'u1', root, folders=('INBOX',))


APPENDUID_RE = re.compile(rb'\[APPENDUID (\d+) ([0-9:,]+)\] ')


class AppendUidRewriter:
    """For faultproxy: spoils the APPENDUID of every MULTIAPPEND in turn:
    dropped, one UID short, written descending ("hi:lo"), too many."""

    def __init__(self, conn):
        self.multi = set()
        self.n = 0

    def on_command(self, unit):
        line = unit.split(b'\r\n', 1)[0]
        tag = line.split(b' ', 1)[0]
        # a MULTIAPPEND announces a second literal in the same command
        if b' APPEND ' in line[:40] and unit.count(b'}\r\n') > 1:
            self.multi.add(tag)
        return unit

    def on_response(self, unit):
        tag = unit.split(b' ', 1)[0]
        m = APPENDUID_RE.search(unit)
        if tag not in self.multi or not m:
            return unit
        self.n += 1
        uv, st = m.group(1), m.group(2)
        lo, hi = (int(x) for x in st.split(b':')) if b':' in st else (int(st), int(st))
        kind = self.n % 4
        if kind == 1:
            new = b''
        elif kind == 2:
            new = b'[APPENDUID %s %d:%d] ' % (uv, lo, hi - 1)
        elif kind == 3:
            new = b'[APPENDUID %s %d:%d] ' % (uv, hi, lo)
        else:
            new = b'[APPENDUID %s %d:%d] ' % (uv, lo, hi + 1)
        return unit[:m.start()] + new + unit[m.end():]


class TestMultiappendSpoiledUids(util.DovecotTestCase):
    """APPENDUID that cannot be mapped one UID per message: each message
    of that MULTIAPPEND is found by its X-OIMAP-TUID marker instead."""
    dovecot_args = {'users': {'s1': 'pw-s1'}}

    def test_marker_search(self):
        from faultproxy import FaultProxy
        root, conf = prepare(self, 's1', folders=('INBOX',))
        n = add_local(root, {'INBOX': 400}, seed=8)
        with FaultProxy(self.dv.host, self.dv.port, rewriter=AppendUidRewriter) as px:
            conf2 = make_config(self.dv, root, 's1', remote={'remoteport': px.port})
            r = sync(conf2, '-d', 'imap')
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 0, out[-3000:])
        cmds, in_multi, nmulti = append_stats(out)
        self.assertGreaterEqual(nmulti, 4, out[-3000:])
        searches = len(re.findall(r'C: A\d+ UID SEARCH HEADER "?X-OIMAP-TUID', out))
        self.assertEqual(searches, n, "\n".join(l[:200] for l in out.splitlines() if "APPEND" in l)[-3000:])
        all_have_uid(self, root, ('INBOX',))
        assert_same(self, self.dv, 's1', root, folders=('INBOX',))
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        self.assertEqual(summaries(r.stdout + r.stderr), {}, r.stdout + r.stderr)


class RefusalForger:
    """For faultproxy: the first MULTIAPPEND's tagged OK becomes a NO, so
    the server has stored messages that oimap is told were refused (a
    server breaking RFC 3502's all-or-nothing rule looks like this)."""

    def __init__(self, conn):
        self.tag = None
        self.forged = 0

    def on_command(self, unit):
        line = unit.split(b'\r\n', 1)[0]
        if self.tag is None and b' APPEND ' in line[:40] and unit.count(b'}\r\n') > 1:
            self.tag = line.split(b' ', 1)[0]
        return unit

    def on_response(self, unit):
        if self.tag and not self.forged and unit.startswith(self.tag + b' OK'):
            self.forged += 1
            return self.tag + b' NO [LIMIT] refused by the test proxy\r\n'
        return unit


class TestMultiappendForgedRefusal(util.DovecotTestCase):
    """A MULTIAPPEND answered NO although the server stored it: before its
    messages are sent again one by one each is searched for by its marker,
    found, and not sent twice."""
    dovecot_args = {'users': {'f1': 'pw-f1'}}

    def test_no_duplicate_after_forged_no(self):
        from faultproxy import FaultProxy
        root, conf = prepare(self, 'f1', folders=('INBOX',))
        n = add_local(root, {'INBOX': 30}, seed=9)
        with FaultProxy(self.dv.host, self.dv.port, rewriter=RefusalForger) as px:
            conf2 = make_config(self.dv, root, 'f1', remote={'remoteport': px.port})
            r = sync(conf2, '-d', 'imap')
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 0, out[-3000:])
        self.assertIn('sending them one by one', out)
        self.assertEqual(out.count('was stored although its APPEND was refused'), n, out[-3000:])
        _, in_multi, nmulti = append_stats(out)
        self.assertEqual((nmulti, in_multi), (1, n), out[-3000:])
        all_have_uid(self, root, ('INBOX',))
        assert_same(self, self.dv, 'f1', root, folders=('INBOX',))
        r = sync(conf)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        self.assertEqual(summaries(r.stdout + r.stderr), {}, r.stdout + r.stderr)


class TestMultiappendNoLiteralPlus(util.DovecotTestCase):
    """MULTIAPPEND without LITERAL+: each literal waits for '+'."""
    dovecot_args = {'users': {'l1': 'pw-l1'}, 'extra_conf': caps_without('LITERAL+')}

    def test_synchronizing_literals(self):
        root, conf = prepare(self, 'l1', folders=('INBOX',))
        add_local(root, {'INBOX': 120}, seed=7)
        r = sync(conf, '-d', 'imap')
        out = r.stdout + r.stderr
        self.assertEqual(r.rc, 0, out[-3000:])
        cmds, _, nmulti = append_stats(out)
        self.assertGreater(nmulti, 0)
        self.assertNotRegex(out, r'C: A\d+ APPEND .*\{\d+\+\}')
        all_have_uid(self, root, ('INBOX',))
        assert_same(self, self.dv, 'l1', root, folders=('INBOX',))


if __name__ == '__main__':
    util.main()
