#!/bin/sh
# Run one libFuzzer target for SECONDS, growing a corpus in the build tree
# (never in the sources) from the seeds in tests/fuzz/seeds/NAME.
# Usage: run-fuzz.sh FUZZER SEEDDIR CORPUSDIR SECONDS [extra libFuzzer args]
set -eu
fuzzer=$1 seeds=$2 corpus=$3 secs=$4
shift 4
mkdir -p "$corpus" "$seeds"
# libFuzzer's own exit code for a finding is 77, which meson reads as SKIP:
# a crash must fail the test.
exec "$fuzzer" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=5 -error_exitcode=1 \
    -print_final_stats=1 -artifact_prefix="$corpus/" "$@" "$corpus" "$seeds"
