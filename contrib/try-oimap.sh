#!/bin/sh
# Try oimap on a fresh machine: install what is missing, build, start a
# private Dovecot on 127.0.0.1 filled with sample mail, write a configuration
# for it, sync it into a local Maildir and show what arrived.
# Everything lives in build/demo/; the Dovecot is stopped at the end.
# Usage: contrib/try-oimap.sh [NUMBER_OF_MESSAGES]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
n=${1:-300}

sh tests/setup-deps.sh demo
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null

demo=$top/build/demo
python3 tests/harness/dovecot.py stop --dir "$demo/server" >/dev/null 2>&1 || true
rm -rf "$demo"
mkdir -p "$demo"
echo "== Starting a private Dovecot with $n sample messages"
python3 tests/harness/dovecot.py start --dir "$demo/server" --sample "$n" >/dev/null
trap 'python3 tests/harness/dovecot.py stop --dir "$demo/server" >/dev/null 2>&1 || true' EXIT INT TERM

eval "$(python3 - "$demo/server/env.json" <<'PY'
import json, sys, shlex
e = json.load(open(sys.argv[1]))
print('port=%s ca=%s pass=%s' % (e['port'], shlex.quote(e['ca_file']),
      shlex.quote(e['users']['alice'].replace('%', '%%'))))
PY
)"

cat > "$demo/oimaprc" <<EOC
# An offlineimap-style configuration, as a new user would write it.
[general]
accounts = Demo
metadata = $demo/metadata

[Account Demo]
localrepository = Local
remoterepository = Remote

[Repository Local]
type = Maildir
localfolders = $demo/Mail

[Repository Remote]
type = IMAP
remotehost = 127.0.0.1
remoteport = $port
ssl = no
starttls = yes
sslcacertfile = $ca
remoteuser = alice
remotepass = $pass
EOC

echo "== Configuration: $demo/oimaprc"
echo "== oimap --info"
build/oimap -c "$demo/oimaprc" --info
if build/oimap -c "$demo/oimaprc" -o -u basic; then
    echo "== What arrived in $demo/Mail:"
    for d in $(find "$demo/Mail" -type d -name cur | sort); do
        f=${d%/cur}
        printf '%6d  %s\n' "$(ls "$f/cur" "$f/new" | grep -c ,U=)" "${f#$demo/Mail/}"
    done
    echo "== Run it again: nothing to do"
    build/oimap -c "$demo/oimaprc" -o -u basic
else
    status=$?
    echo "== oimap failed (exit $status): see its messages above" >&2
    exit $status
fi
