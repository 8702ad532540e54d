#!/bin/sh
# Static analysis of src/*.c: clang-tidy 14 with the checks in .clang-tidy
# (which says what is enforced and why the rest is not) and cppcheck 2.10
# (--enable=warning,portability,performance).  Any finding fails.
# Usage: tests/check-static.sh [BUILDDIR]  (a meson build: compile_commands.json)
# Exit 77 (skipped) when clang-tidy or cppcheck is not installed.
# A false positive is silenced on its line with the reason:
#   // NOLINT(check-name): why       /* cppcheck-suppress id */ with why
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" 2>/dev/null && pwd) || { echo "no build directory ${1:-build}" >&2; exit 1; }
jobs=${OIMAP_STATIC_JOBS:-2}
[ -f "$build/compile_commands.json" ] || { echo "no $build/compile_commands.json" >&2; exit 1; }

tidy=""
for t in clang-tidy-14 clang-tidy; do
    command -v "$t" >/dev/null 2>&1 && { tidy=$t; break; }
done
if [ -z "$tidy" ] || ! command -v cppcheck >/dev/null 2>&1; then
    echo "clang-tidy or cppcheck not installed: skipped (tests/setup-deps.sh test installs them)"
    exit 77
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT INT TERM
cd "$top"
start=$(date +%s)

# clang-tidy, one file per process, $jobs at a time; .clang-tidy is found
# from the sources' directory.  Findings (with the analyzer's notes) and
# compile errors go to stdout; a file it could not process fails the run.
ls src/*.c | xargs -P "$jobs" -n 1 "$tidy" -p "$build" --quiet \
    --extra-arg=-Wno-unknown-warning-option >"$out/tidy" 2>"$out/tidy.err"
tidy_rc=$?
n_tidy=$(grep -c -E ': (warning|error): ' "$out/tidy")

cppcheck --project="$build/compile_commands.json" --file-filter="$top/src/*" \
    --enable=warning,portability,performance --inline-suppr -j "$jobs" --quiet \
    --error-exitcode=0 --template='{file}:{line}:{column}: {severity}: {message} [{id}]' \
    2>"$out/cppcheck" >/dev/null
n_cpp=$(grep -c -E ': (error|warning|portability|performance): ' "$out/cppcheck")

short='s#^( *)[^: ]*/((src|include)/)#\1\2#' # paths from the top
if [ "$n_tidy" -gt 0 ]; then
    echo "=== clang-tidy: $n_tidy findings"
    grep -E ': (warning|error): ' "$out/tidy" | sed -E "$short" | sort -u
    echo "--- with the analyzer's paths:"
    sed -E "$short" "$out/tidy"
fi
if [ "$n_cpp" -gt 0 ]; then
    echo "=== cppcheck: $n_cpp findings"
    sed "s|$top/||g" "$out/cppcheck"
fi
if [ "$tidy_rc" -ne 0 ]; then
    echo "=== clang-tidy failed (exit $tidy_rc):"
    grep -v ' warnings\? generated\.$' "$out/tidy.err"
fi
echo "clang-tidy: $n_tidy findings, cppcheck: $n_cpp findings ($(($(date +%s) - start)) s)"
[ "$n_tidy" -eq 0 ] && [ "$n_cpp" -eq 0 ] && [ "$tidy_rc" -eq 0 ]
