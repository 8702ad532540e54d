#!/bin/sh
# Run one libFuzzer target for SECONDS, growing a corpus in the build tree
# (never in the sources) from the seeds in tests/fuzz/seeds/NAME.
# Usage: run-fuzz.sh FUZZER SEEDDIR CORPUSDIR SECONDS [extra libFuzzer args]
set -eu
fuzzer=$1 seeds=$2 corpus=$3 secs=$4
shift 4
mkdir -p "$corpus" "$seeds"
exec "$fuzzer" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=5 \
    -print_final_stats=1 -artifact_prefix="$corpus/" "$@" "$corpus" "$seeds"
