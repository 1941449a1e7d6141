#!/usr/bin/env bash
# Export throughput: rows/s of GET /api/v1/exports/orders (CSV and NDJSON, 9,994 Superstore
# lines; REPEAT times each) on SQLite and on PostgreSQL, and the server's peak RSS during
# the exports against its RSS before (constant memory: the peak must not grow with the
# export's size).
#
#   bench/export.sh                         builds and uses a release binary
#   ORDERLY_BIN=path bench/export.sh        a given build (a debug build for a smoke run)
#   BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/postgres   the PostgreSQL server (default);
#   BENCH_PG_URL= (empty) skips PostgreSQL. EXPORT_REPEAT (default 3).
# Needs curl, python3, psql (for PostgreSQL).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
if [ -z "${ORDERLY_BIN:-}" ]; then
    (cd "$root" && cargo build --release --bin orderly)
    ORDERLY_BIN=${CARGO_TARGET_DIR:-$root/target}/release/orderly
fi
bin=$ORDERLY_BIN
repeat=${EXPORT_REPEAT:-3}
pg_admin=${BENCH_PG_URL-postgres://postgres@127.0.0.1:5432/postgres}
csv=$root/datasets/superstore/superstore.csv
password='bench-export-passphrase-1'
pg_db=orderly_export_bench_$$_$(date +%s)
work=$(mktemp -d /tmp/orderly-export-bench.XXXXXX)
pid=
stop() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    pid=
}
cleanup() {
    stop
    rm -rf "$work"
    [ -z "$pg_admin" ] || psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# run <label> <database url or empty>
run() {
    local label=$1 url=$2 port=$((20000 + RANDOM % 20000))
    local env=(ORDERLY_DATA_DIR="$work/$label" ORDERLY_HTTP_ADDR="127.0.0.1:$port"
        ORDERLY_ADMIN_ADDR="127.0.0.1:0" ORDERLY_GRPC_ADDR="127.0.0.1:0" ORDERLY_LOG_FORMAT=json
        ORDERLY_RATELIMIT_API_LIMIT=1000000 ORDERLY_RATELIMIT_LOGIN_LIMIT=1000000)
    [ -z "$url" ] || env+=(ORDERLY_DATABASE_URL="$url")
    mkdir -p "$work/$label"
    env "${env[@]}" "$bin" migrate >/dev/null 2>&1
    env "${env[@]}" ORDERLY_ADMIN_PASSWORD="$password" "$bin" user create-admin --email bench@example.com >/dev/null 2>&1
    env "${env[@]}" "$bin" serve --import-superstore "$csv" >"$work/$label.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
    local token
    token=$(curl -fs "http://127.0.0.1:$port/api/v1/auth/login" -H 'content-type: application/json' \
        -d "{\"email\":\"bench@example.com\",\"password\":\"$password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    local before peak=0
    before=$(rss_kib "$pid")
    for format in csv ndjson; do
        local start end rows=0
        start=$(date +%s.%N)
        for _ in $(seq 1 "$repeat"); do
            curl -fs -H "authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/exports/orders?format=$format" -o "$work/out.$format" &
            local cpid=$!
            while kill -0 "$cpid" 2>/dev/null; do
                local now; now=$(rss_kib "$pid"); [ "$now" -gt "$peak" ] && peak=$now; sleep 0.02
            done
            wait "$cpid"
            rows=$((rows + $(wc -l <"$work/out.$format")))
        done
        end=$(date +%s.%N)
        [ "$format" = csv ] && rows=$((rows - repeat))
        python3 -c "import sys; r,s,e=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); print(f'$label $format: {r} rows in {e-s:.2f} s = {r/(e-s):,.0f} rows/s')" "$rows" "$start" "$end"
    done
    echo "$label server RSS: before ${before} KiB, peak during exports ${peak} KiB (+$((peak - before)) KiB)"
    stop
}

echo "== SQLite"
run sqlite ""
if [ -n "$pg_admin" ]; then
    echo "== PostgreSQL"
    psql -q "$pg_admin" -c "CREATE DATABASE $pg_db" >/dev/null
    run postgres "${pg_admin%/*}/$pg_db"
fi
