#!/usr/bin/env bash
# Load test of orderly on its default SQLite database, with wrk on loopback.
#
#   bench/run.sh                 build (cargo build --release), set up, run, print a summary
#
# Scenarios (each after a short unmeasured warm-up):
#   healthz      GET /healthz: the middleware stack and HTTP alone, no database (a floor)
#   product_get  GET /api/v1/products/{id}, anonymous: a read through the full stack
#   orders_cN    POST /api/v1/orders, N connections, customers' tokens in rotation, one line
#                item, sandbox card 4242…: the whole checkout saga per request
#
# Knobs (environment):
#   BENCH_DURATION=15  BENCH_WARMUP=3  BENCH_THREADS=2  BENCH_GET_CONNECTIONS=64
#   BENCH_ORDER_CONNECTIONS="32"   one orders scenario per value, e.g. "4 32"
#   BENCH_SCENARIOS="healthz product_get orders"
#   BENCH_CUSTOMERS=64  BENCH_PRODUCTS=16
#   BENCH_OUT=DIR      where results go (default: a new /tmp/orderly-bench.XXXXXX)
#   ORDERLY_BIN=PATH   benchmark this binary instead of building target/release/orderly
#                      (CARGO_TARGET_DIR is honoured when building)
#   BENCH_SERVER_ENV="ORDERLY_DATABASE_MAX_CONNECTIONS=4 ..."   extra server settings
#   BENCH_LOG_FILTER=info   the server's log.filter
# Instruction counts per request (stable under noise, for comparing builds): bench/callgrind.sh
#
# Every ORDERLY_* variable of the calling shell is cleared for the server (so it uses the
# default SQLite file in a fresh data dir), it runs in a temp dir (no orderly.toml), logs at
# `info` (the production default; BENCH_LOG_FILTER=warn for the old setting) as JSON to
# BENCH_OUT/server.log, and it is stopped when this script exits. All traffic goes
# to 127.0.0.1. Results: BENCH_OUT/*.json, raw wrk output in BENCH_OUT/*.wrk.txt.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

duration=${BENCH_DURATION:-15}
warmup=${BENCH_WARMUP:-3}
threads=${BENCH_THREADS:-2}
get_conns=${BENCH_GET_CONNECTIONS:-64}
order_conns=${BENCH_ORDER_CONNECTIONS:-32}
scenarios=${BENCH_SCENARIOS:-healthz product_get orders}
customers=${BENCH_CUSTOMERS:-64}
products=${BENCH_PRODUCTS:-16}

die() { echo "bench: $*" >&2; exit 1; }
is_int() { case $1 in '' | *[!0-9]*) return 1 ;; esac; [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }
is_int "$duration" 1 300 || die "BENCH_DURATION must be 1..300 seconds"
is_int "$warmup" 0 60 || die "BENCH_WARMUP must be 0..60 seconds"
is_int "$threads" 1 64 || die "BENCH_THREADS must be 1..64"
is_int "$get_conns" "$threads" 2000 || die "BENCH_GET_CONNECTIONS must be BENCH_THREADS..2000"
for c in $order_conns; do
    is_int "$c" "$threads" 2000 || die "BENCH_ORDER_CONNECTIONS values must be BENCH_THREADS..2000"
done
is_int "$customers" "$threads" 2000 || die "BENCH_CUSTOMERS must be BENCH_THREADS..2000"
for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (Debian: apt-get install -y $tool)"
done

# ---- build ----------------------------------------------------------------------------
if [ -n "${ORDERLY_BIN:-}" ]; then
    bin=$ORDERLY_BIN
    commit=${BENCH_COMMIT:-unknown (ORDERLY_BIN=$bin)}
else
    (cd "$root" && cargo build --release --bin orderly)
    bin=${CARGO_TARGET_DIR:-$root/target}/release/orderly
    commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
    [ -z "$(git -C "$root" status --porcelain 2>/dev/null)" ] || commit="$commit+uncommitted changes"
fi
[ -x "$bin" ] || die "no executable at $bin"

# ---- a fresh server -------------------------------------------------------------------
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
out=${BENCH_OUT:-$(mktemp -d /tmp/orderly-bench.XXXXXX)}
mkdir -p "$out"
[ -z "$(ls -A "$out")" ] || die "BENCH_OUT=$out is not empty; results would mix"
work=$(mktemp -d /tmp/orderly-bench-data.XXXXXX)
server_pid=

stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 150); do # at most 15 s for a graceful stop
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=
}
cleanup() {
    stop_server
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^ORDERLY_' || true)
unset RUST_LOG
port=$(python3 "$here/probe.py" port)
base=http://127.0.0.1:$port
export ORDERLY_DATA_DIR=$work/data
export ORDERLY_HTTP_ADDR=127.0.0.1:$port
# The production default: the full stack includes the per-request INFO log line.
export ORDERLY_LOG_FILTER=${BENCH_LOG_FILTER:-info}
export ORDERLY_LOG_FORMAT=json
export ORDERLY_AUTH_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export ORDERLY_AUTH_ACCESS_TOKEN_TTL_SECS=7200 # outlives any run
# Settings of newer builds, set only when the binary has them, so older commits still run.
settings=$(cd "$work" && "$bin" config check 2>/dev/null || true)
has_section() { printf '%s\n' "$settings" | grep -q "^\[$1\]"; }
if has_section admin; then # the /metrics listener: a free port, not the default 9464
    export ORDERLY_ADMIN_ADDR=127.0.0.1:$(python3 "$here/probe.py" port)
    export ORDERLY_GRPC_ADDR=127.0.0.1:0
fi
if has_section ratelimit; then # the limiter stays in the stack, with limits no run reaches
    export ORDERLY_RATELIMIT_API_LIMIT=1000000000 ORDERLY_RATELIMIT_CHECKOUT_LIMIT=1000000000
    export ORDERLY_RATELIMIT_LOGIN_LIMIT=100000
fi
for kv in ${BENCH_SERVER_ENV:-}; do
    case $kv in ORDERLY_*=*) export "${kv?}" ;; *) die "BENCH_SERVER_ENV takes ORDERLY_KEY=value words" ;; esac
done

admin_email=bench-admin@example.com
admin_password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
# --password-stdin: up to commit 7912f36 the configuration loader took ORDERLY_ADMIN_PASSWORD
# for an unknown setting and exited with status 2.
(cd "$work" && printf '%s\n' "$admin_password" | "$bin" user create-admin --email "$admin_email" --password-stdin) \
    >"$out/create-admin.log" 2>&1 || { cat "$out/create-admin.log" >&2; die "create-admin failed"; }

ms() { python3 -c 'import time; print(time.monotonic_ns() // 1000000)'; }
t0=$(ms)
(cd "$work" && exec "$bin" serve) >"$out/server.log" 2>&1 &
server_pid=$!
ready_ms=
for _ in $(seq 1 200); do # at most ~10 s
    if curl -fsS --max-time 1 "$base/readyz" >/dev/null 2>&1; then ready_ms=$(($(ms) - t0)); break; fi
    kill -0 "$server_pid" 2>/dev/null || { cat "$out/server.log" >&2; die "the server exited"; }
    sleep 0.05
done
[ -n "$ready_ms" ] || die "the server was not ready within 10 s"
sleep 1
read -r idle_rss _ < <(python3 "$here/probe.py" mem "$server_pid")
echo "bench: server pid $server_pid on $base, ready after ${ready_ms} ms (migrations included), idle RSS $((idle_rss / 1024)) MiB"

# ---- data, through the API --------------------------------------------------------------
python3 "$here/setup.py" --base "$base" --admin-email "$admin_email" --admin-password "$admin_password" \
    --customers "$customers" --products "$products" --out "$out"
sleep 1
read -r setup_rss _ < <(python3 "$here/probe.py" mem "$server_pid")
product_id=$(cat "$out/product_id.txt")

# ---- scenarios ------------------------------------------------------------------------
export BENCH_LUA_DIR=$here/lua
scenario() { # name connections url [script args...]
    local name=$1 conns=$2 url=$3 script=$4
    shift 4
    local args=(-t"$threads" -c"$conns" --timeout 10s -s "$here/lua/$script" "$url")
    [ $# -eq 0 ] || args+=(-- "$@")
    if [ "$warmup" -gt 0 ]; then
        wrk -d"${warmup}s" "${args[@]}" >/dev/null
    fi
    python3 "$here/probe.py" scenario --pid "$server_pid" --name "$name" --out "$out" --duration "$duration" \
        -- wrk -d"${duration}s" --latency "${args[@]}"
    sleep 1
}

for s in $scenarios; do
    case $s in
        healthz) scenario healthz "$get_conns" "$base/healthz" get_product.lua ;;
        product_get) scenario product_get "$get_conns" "$base/api/v1/products/$product_id" get_product.lua ;;
        orders)
            for c in $order_conns; do
                scenario "orders_c$c" "$c" "$base/api/v1/orders" orders.lua "$out/tokens.txt" "$out/skus.txt" "$threads"
            done
            ;;
        *) die "unknown scenario $s" ;;
    esac
done

sleep 5 # let in-flight work and the allocator settle
read -r rest_rss peak_rss < <(python3 "$here/probe.py" mem "$server_pid")

# ---- the same reads without the middleware stack, in the same run ------------------------
# http.middleware=off serves the bare routes (no limits, headers, logs, metrics, tracing):
# the difference to healthz/product_get above is what the production stack costs.
if [ "${BENCH_COMPARE_STACK:-1}" = 1 ] && has_section http && printf '%s\n' "$settings" | grep -q '^middleware'; then
    stop_server
    (cd "$work" && ORDERLY_HTTP_MIDDLEWARE=off exec "$bin" serve) >"$out/server-bare.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 200); do
        curl -fsS --max-time 1 "$base/readyz" >/dev/null 2>&1 && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$out/server-bare.log" >&2; die "the bare server exited"; }
        sleep 0.05
    done
    sleep 1
    for s in $scenarios; do
        case $s in
            healthz) scenario healthz_bare "$get_conns" "$base/healthz" get_product.lua ;;
            product_get) scenario product_get_bare "$get_conns" "$base/api/v1/products/$product_id" get_product.lua ;;
        esac
    done
fi

log_lines=$(grep -c . "$out/server.log" || true)
log_errors=$(grep -c '"level":"ERROR"' "$out/server.log" || true)
cat >"$out/meta.json" <<JSON
{"started": "$started", "commit": "$commit", "cpus": $(nproc),
 "duration_s": $duration, "threads": $threads, "ready_ms": $ready_ms,
 "idle_rss_kib": $idle_rss, "setup_rss_kib": $setup_rss, "rest_rss_kib": $rest_rss, "peak_rss_kib": $peak_rss,
 "server_log_lines": $log_lines, "server_log_errors": $log_errors}
JSON
python3 "$here/probe.py" summary "$out"
