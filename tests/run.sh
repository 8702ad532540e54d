#!/bin/sh
# The whole test suite: installs what is missing, builds oimap with
# AddressSanitizer and UndefinedBehaviorSanitizer, and runs the unit and
# integration tests (integration tests start their own private Dovecot on
# 127.0.0.1).  Ends with meson's summary.  Usage: tests/run.sh
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sh tests/setup-deps.sh test

build=build-test
if [ ! -f "$build/build.ninja" ]; then
    CC=${CC:-clang} meson setup "$build" -Db_sanitize=address,undefined -Db_lundef=false -Dfuzz=true \
        --buildtype=debug >/dev/null
fi
ninja -C "$build"
meson test -C "$build" --setup asan --print-errorlogs --num-processes 2
