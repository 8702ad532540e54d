#!/usr/bin/env python3
"""OAuth2 refresh-token flow (oauth2_refresh_token, oauth2_client_id,
oauth2_client_secret, oauth2_request_url and their _eval forms): the token
request a local HTTPS endpoint receives, the token Dovecot accepts in
AUTHENTICATE XOAUTH2 / OAUTHBEARER, one request per run (the token is
cached), a refreshed one after expires_in, the server's words when the
refresh token is refused, and no secret in -d imap output.

Dovecot 2.3 checks an XOAUTH2/OAUTHBEARER token against the passdb like a
password, so the test user's password is the access token the endpoint
hands out.  The endpoint serves the harness CA's 'good' certificate
(IP:127.0.0.1); oimap trusts it through $SSL_CERT_FILE, as Python's urllib
does for offlineimap."""

import http.server
import json
import os
import re
import signal
import ssl
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402

TOKEN = 'ya29.A0-test_Access.Token~42'
CLIENT_SECRET = 'cl1ent s3cret&x'
REFRESH = 'rt-1//0gGood-Refresh'
SUMMARY = re.compile(r'Account (\S+): \d+ folders, ')


class TokenEndpoint:
    """An HTTPS token endpoint on 127.0.0.1 in a thread.  .requests holds
    (path, headers dict, parsed form) of every POST.  answers maps a
    refresh token to (status, dict); unknown ones get invalid_grant.
    chunked=True sends the answer with Transfer-Encoding: chunked."""

    def __init__(self, certs, expires_in=3599, chunked=False, cert='good'):
        self.requests = []
        self.expires_in = expires_in
        self.chunked = chunked
        self.answers = {REFRESH: (200, {'access_token': TOKEN, 'token_type': 'Bearer',
                                        'scope': 'https://mail.google.com/'})}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get('Content-Length', '0'))
                raw = self.rfile.read(n).decode()
                form = urllib.parse.parse_qs(raw, keep_blank_values=True)
                outer.requests.append((self.path, dict(self.headers.items()), form, raw))
                rt = form.get('refresh_token', [''])[0]
                status, body = outer.answers.get(rt, (400, {
                    'error': 'invalid_grant',
                    'error_description': 'Token has been expired or revoked.'}))
                body = dict(body)
                if status == 200 and outer.expires_in is not None:
                    body['expires_in'] = outer.expires_in
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json; charset=utf-8')
                if outer.chunked:
                    self.send_header('Transfer-Encoding', 'chunked')
                    self.end_headers()
                    for i in range(0, len(data), 7):
                        part = data[i:i + 7]
                        self.wfile.write(b'%x\r\n%s\r\n' % (len(part), part))
                    self.wfile.write(b'0\r\n\r\n')
                else:
                    self.send_header('Content-Length', str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs.cert_file(cert), certs.key_file(cert))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = 'https://127.0.0.1:%d/o/oauth2/token' % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


class TestOAuth2(util.DovecotTestCase):
    dovecot_args = {
        'users': {'alice': 'secret pass;#%', 'oauser': TOKEN},
        'extra_conf': 'auth_mechanisms = plain login xoauth2 oauthbearer\n',
    }

    def setUp(self):
        super().setUp()
        self.ep = None

    def tearDown(self):
        if self.ep:
            self.ep.stop()
        super().tearDown()

    def endpoint(self, **kw):
        self.ep = TokenEndpoint(self.dv.certs, **kw)
        return self.ep

    def conf(self, remote=None, account_opts=None, url=None):
        r = {'remotepass': None, 'auth_mechanisms': 'XOAUTH2',
             'oauth2_client_id': 'cid-123.apps.example',
             'oauth2_client_secret': util.cfg_escape(CLIENT_SECRET),
             'oauth2_refresh_token': REFRESH,
             'oauth2_request_url': url or self.ep.url}
        r.update(remote or {})
        return util.offlineimap_config(self.dv, os.path.join(self.tmp, 'mail'), user='oauser',
                                       security='plain', remote=r, account_opts=account_opts,
                                       metadata=os.path.join(self.tmp, 'meta'))

    def run_oimap(self, args, conf, env=None, **kw):
        e = {'SSL_CERT_FILE': self.dv.ca_file}
        e.update(env or {})
        return util.run_oimap(args, conf, env=e, timeout=60, **kw)

    def logins(self, method):
        return len(re.findall(r'Login: user=<oauser>, method=%s' % method, self.dv.log_text()))

    def assert_no_secret(self, text):
        for secret in (TOKEN, REFRESH, CLIENT_SECRET, 'cl1ent'):
            self.assertNotIn(secret, text)

    def test_refresh_then_xoauth2_sync(self):
        """One token request for a whole sync over two connections; the
        form is offlineimap's; Dovecot accepts the token; nothing secret is
        logged with -d imap."""
        ep = self.endpoint()
        for f in ('Work', 'Lists', 'Archive/2024'):
            self.dv.create_folder('oauser', f)
        before = self.logins('XOAUTH2')
        r = self.run_oimap(['-o', '-d', 'imap'],
                           self.conf(remote={'maxconnections': '2'}))
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        self.assertEqual(len(ep.requests), 1, ep.requests)
        path, headers, form, raw = ep.requests[0]
        self.assertEqual(path, '/o/oauth2/token')
        self.assertEqual(headers.get('Content-Type'), 'application/x-www-form-urlencoded')
        self.assertEqual(form, {'client_id': ['cid-123.apps.example'],
                                'client_secret': [CLIENT_SECRET],
                                'refresh_token': [REFRESH],
                                'grant_type': ['refresh_token']})
        self.assertEqual(raw.split('&')[-1], 'grant_type=refresh_token')
        time.sleep(0.3)
        self.assertGreaterEqual(self.logins('XOAUTH2') - before, 2,
                                'both connections log in with the one token')
        both = r.stdout + r.stderr
        self.assert_no_secret(both)
        auth = re.findall(r'C: \S+ AUTHENTICATE XOAUTH2.*', both)
        self.assertTrue(auth, both[-3000:])
        self.assertTrue(all(a.endswith('********') for a in auth), auth)
        self.assertIn('oauth2: POST %s' % ep.url, both)
        self.assertTrue(os.path.isdir(os.path.join(self.tmp, 'mail', 'Work')))

    def test_eval_options_oauthbearer_chunked(self):
        """The _eval forms, OAUTHBEARER, a chunked answer with expires_in
        as a string (some servers send that)."""
        ep = self.endpoint(chunked=True, expires_in='3599')
        conf = self.conf(remote={
            'auth_mechanisms': 'OAUTHBEARER',
            'oauth2_client_id': None, 'oauth2_client_secret': None,
            'oauth2_refresh_token': None,
            'oauth2_client_id_eval': '"cid-" + "eval"',
            'oauth2_client_secret_eval': '"sec" + "ret-eval\\n"',
            'oauth2_refresh_token_eval': repr(REFRESH)})
        before = self.logins('OAUTHBEARER')
        r = self.run_oimap(['--info', '-d', 'imap'], conf)
        self.assertEqual(r.rc, 0, r.stdout + r.stderr)
        self.assertIn('logged in as: oauser', r.stdout)
        self.assertEqual([q[2] for q in ep.requests], [{
            'client_id': ['cid-eval'], 'client_secret': ['secret-eval'],
            'refresh_token': [REFRESH], 'grant_type': ['refresh_token']}])
        time.sleep(0.3)
        self.assertEqual(self.logins('OAUTHBEARER'), before + 1)
        self.assert_no_secret(r.stdout + r.stderr)
        self.assertNotIn('secret-eval', r.stdout + r.stderr)

    def test_refused_refresh_token(self):
        """invalid_grant: one line with the HTTP status and the server's
        words; no login attempted."""
        ep = self.endpoint()
        before = self.logins('XOAUTH2')
        r = self.run_oimap(['-o'], self.conf(remote={'oauth2_refresh_token': 'rt-revoked'}))
        self.assertNotEqual(r.rc, 0)
        self.assertEqual(len(ep.requests), 1)
        self.assertIn('cannot get an OAuth2 access token: token request to %s: HTTP 400 Bad '
                      'Request: invalid_grant (Token has been expired or revoked.)' % ep.url,
                      r.stdout + r.stderr)
        self.assertNotIn('rt-revoked', r.stdout + r.stderr)
        self.assertEqual(self.logins('XOAUTH2'), before)

    def test_untrusted_endpoint(self):
        """The endpoint's certificate is verified: without $SSL_CERT_FILE
        the test CA is unknown."""
        ep = self.endpoint()
        r = self.run_oimap(['--info'], self.conf(), env={'SSL_CERT_FILE': None})
        self.assertNotEqual(r.rc, 0)
        self.assertRegex(r.stdout + r.stderr, r'token request to %s: 127\.0\.0\.1:%d: '
                         r'certificate not trusted' % (re.escape(ep.url), ep.port))
        self.assertEqual(ep.requests, [])

    def test_url_checked_before_connecting(self):
        """type = IMAP needs oauth2_request_url; http:// only to loopback."""
        self.endpoint()
        conf = self.conf(url='http://oauth2.example/token')
        r = self.run_oimap(['--info'], conf)
        self.assertNotEqual(r.rc, 0)
        self.assertIn('oauth2_request_url http://oauth2.example/token: http:// is only accepted '
                      'for a loopback host', r.stdout + r.stderr)
        conf = self.conf(remote={'oauth2_request_url': None})
        r = self.run_oimap(['--info'], conf)
        self.assertNotEqual(r.rc, 0)
        self.assertIn('oauth2_refresh_token is set but oauth2_request_url is not',
                      r.stdout + r.stderr)
        self.assertEqual(self.ep.requests, [])

    def daemon_token_requests(self, expires_in):
        """Token requests made by a daemon during 3 autorefresh syncs."""
        ep = self.endpoint(expires_in=expires_in)
        conf = self.conf(account_opts={'autorefresh': '0.02'})  # 1.2 s
        p = util.start_oimap([], conf, env={'SSL_CERT_FILE': self.dv.ca_file})
        try:
            t0 = time.monotonic()
            while len(SUMMARY.findall(p.stderr + p.stdout)) < 3 and time.monotonic() - t0 < 20:
                if p.poll() is not None:
                    break
                time.sleep(0.05)
            syncs = len(SUMMARY.findall(p.stderr + p.stdout))
        finally:
            p.signal(signal.SIGTERM)
            p.wait(20)
        self.assertGreaterEqual(syncs, 3, p.stderr[-3000:])
        return len(ep.requests)

    def test_token_cached_until_half_its_life(self):
        """expires_in 3599: one request for every sync of the run; expires_in
        2 (cached 1 s): a new one for each sync 1.2 s apart."""
        self.assertEqual(self.daemon_token_requests(3599), 1)
        self.ep.stop()
        self.ep = None
        self.assertGreaterEqual(self.daemon_token_requests(2), 3)


if __name__ == '__main__':
    util.main()
