#!/bin/sh
# Install what oimap needs to build and test, from Debian's packages, only when
# something is missing.  Usage: tests/setup-deps.sh [build|test|demo|bench]
set -eu

build_pkgs="gcc meson ninja-build pkg-config libuv1-dev libmbedtls-dev liblmdb-dev libinih-dev libsqlite3-dev zlib1g-dev scdoc"
# time: /usr/bin/time measures peak RSS in the hostile and imap_imap suites
test_pkgs="dovecot-imapd dovecot-core openssl python3 lmdb-utils procps time clang-format offlineimap3 clang-tidy cppcheck"
fuzz_pkgs="clang libclang-rt-14-dev"
bench_pkgs="isync"

case "${1:-test}" in
    build) want="$build_pkgs" ;;
    demo) want="$build_pkgs $test_pkgs" ;;
    test) want="$build_pkgs $test_pkgs $fuzz_pkgs" ;;
    bench) want="$build_pkgs $test_pkgs $bench_pkgs" ;;
    *) echo "usage: $0 [build|test|demo|bench]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = installed ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "Installing from Debian:$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "oimap: need root (or sudo) to install:$missing" >&2; exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Debian's dovecot-core postinst tries to start the system Dovecot; where no
# init system runs that fails harmlessly.  We never use the system instance.
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
