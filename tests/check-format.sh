#!/bin/sh
# Fails when a C file is not formatted as .clang-format says (clang-format 14).
# Fix with: clang-format -i FILE
set -u
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null 2>&1 || { echo "1..0 # SKIP clang-format not installed"; exit 0; }
n=0 bad=0
for f in src/*.c include/*.h tests/unit/*.c tests/unit/*.h tests/fuzz/*.c; do
    n=$((n + 1))
    if clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
        echo "ok $n - $f"
    else
        echo "not ok $n - $f (run clang-format -i $f)"
        bad=$((bad + 1))
    fi
done
echo "1..$n"
[ "$bad" -eq 0 ]
