#!/usr/bin/env bash
# Instructions per request log line (valgrind's callgrind): tracing-subscriber's JSON format
# against orderly's own (src/telemetry/json.rs), in a small release program (bench/logline)
# that logs what a request logs, N times (default 10000), minus a run that logs nothing.
#   CARGO_TARGET_DIR=... bench/logline.sh [N]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
n=${1:-10000}
(cd "$here/logline" && cargo build --release --quiet)
bin=${CARGO_TARGET_DIR:-$here/logline/target}/release/logline
out=$(mktemp -d /tmp/orderly-logline.XXXXXX)
for which in library orderly; do
    valgrind --tool=callgrind --callgrind-out-file="$out/$which.0" "$bin" "$which" 0 >/dev/null 2>&1
    valgrind --tool=callgrind --callgrind-out-file="$out/$which.n" "$bin" "$which" "$n" >/dev/null 2>&1
    a=$(grep '^totals:' "$out/$which.0" | tail -1 | awk '{print $2}')
    b=$(grep '^totals:' "$out/$which.n" | tail -1 | awk '{print $2}')
    printf '%-8s %8d instructions/request line\n' "$which" $(((b - a) / n))
done
echo "logline: profiles in $out"
