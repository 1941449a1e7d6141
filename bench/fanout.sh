#!/usr/bin/env bash
# Live-stream figures (issue 8): fan-out latency of one event to 1,000 SSE clients (p50/p99),
# and the server's RSS with 10,000 idle SSE connections, then with 10,000 idle WebSocket
# sessions (DESIGN.md budget: < 300 MB).
#
#   bench/fanout.sh        build (cargo build --release), then run both parts on SQLite
#
# Latency: BENCH_CLIENTS SSE clients on the staff feed (`?types=order.placed`) spread over
# BENCH_PROCS client processes; BENCH_ORDERS orders placed one after another, BENCH_GAP_MS
# apart. Reported from the event's `occurred_at` (the outbox row's stamp at commit: includes
# the relay's polling wait, `events.relay_interval_ms`, BENCH_RELAY_INTERVAL_MS here) and from
# the moment the order's POST returned. The client is Python (aiohttp, in a venv under the
# scratch dir): its own scheduling is part of the figure, so it is an upper bound.
# Idle: BENCH_IDLE connections opened BENCH_IDLE_BATCH at a time; RSS is VmRSS of the server.
#
# Knobs: BENCH_PARTS="latency sse ws" BENCH_CLIENTS=1000 BENCH_PROCS=4 BENCH_ORDERS=50 BENCH_GAP_MS=100 BENCH_IDLE=10000
#   BENCH_IDLE_BATCH=250 BENCH_RELAY_INTERVAL_MS=100 BENCH_OUT=DIR ORDERLY_BIN=PATH (no build)
#   BENCH_VENV=DIR (a venv that has aiohttp)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
die() { echo "bench: $*" >&2; exit 1; }
for tool in curl python3; do command -v "$tool" >/dev/null || die "$tool is missing"; done

# 10,000 connections: the server and the client (separate processes) each hold one
# descriptor per connection, plus their own files.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
need=$(( ${BENCH_IDLE:-10000} + 1000 ))
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge "$need" ] || die "ulimit -n is $(ulimit -n); need $need or more"

if [ -z "${ORDERLY_BIN:-}" ]; then
    (cd "$root" && cargo build --release --bin orderly)
    ORDERLY_BIN=${CARGO_TARGET_DIR:-$root/target}/release/orderly
fi
bin=$ORDERLY_BIN
out=${BENCH_OUT:-$(mktemp -d /tmp/orderly-fanout-bench.XXXXXX)}
mkdir -p "$out"
work=$(mktemp -d /tmp/orderly-fanout-work.XXXXXX)
server_pid=
cleanup() {
    [ -z "$server_pid" ] || { kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT

venv=${BENCH_VENV:-$work/venv}
if ! "$venv/bin/python" -c 'import aiohttp' 2>/dev/null; then
    python3 -m venv "$venv" || die "python3 -m venv (Debian: apt-get install python3-venv)"
    timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check 'aiohttp==3.14.5' || die "pip install aiohttp"
fi

port=$(python3 "$here/probe.py" port)
base=http://127.0.0.1:$port
export ORDERLY_DATA_DIR=$work/data
export ORDERLY_HTTP_ADDR=127.0.0.1:$port
export ORDERLY_ADMIN_ADDR=127.0.0.1:$(python3 "$here/probe.py" port)
export ORDERLY_GRPC_ADDR=127.0.0.1:0
export ORDERLY_LOG_FILTER=warn
export ORDERLY_AUTH_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export ORDERLY_AUTH_ACCESS_TOKEN_TTL_SECS=7200
export ORDERLY_RATELIMIT_API_LIMIT=1000000000 ORDERLY_RATELIMIT_CHECKOUT_LIMIT=1000000000
export ORDERLY_RATELIMIT_LOGIN_LIMIT=100000
export ORDERLY_EVENTS_RELAY_INTERVAL_MS=${BENCH_RELAY_INTERVAL_MS:-100}

admin_email=fanout-admin@example.com
admin_password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
(cd "$work" && printf '%s\n' "$admin_password" | "$bin" user create-admin --email "$admin_email" --password-stdin) \
    >"$out/create-admin.log" 2>&1 || { cat "$out/create-admin.log" >&2; die "create-admin failed"; }
# A fresh server for each part, so one part's freed memory does not blur the next's RSS.
start_server() {
    (cd "$work" && exec "$bin" serve) >>"$out/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 200); do
        curl -fsS --max-time 1 "$base/readyz" >/dev/null 2>&1 && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$out/server.log" >&2; die "the server exited"; }
        sleep 0.05
    done
    curl -fsS --max-time 2 "$base/readyz" >/dev/null || die "the server was not ready within 10 s"
}
stop_server() {
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}
start_server

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
post() { curl -fsS --max-time 15 -X POST "$base$1" -H 'content-type: application/json' ${3:+-H "authorization: Bearer $3"} -d "$2"; }
staff=$(post /api/v1/auth/login "{\"email\":\"$admin_email\",\"password\":\"$admin_password\"}" | json_field '["access_token"]')
sku=FANOUT-1
post /api/v1/products "{\"sku\":\"$sku\",\"name\":\"Fan-out\",\"price_minor\":100,\"currency\":\"USD\",\"initial_stock\":1000000}" "$staff" >/dev/null
customer=$(post /api/v1/auth/register '{"email":"fanout@example.com","password":"fanout-password-123","name":"Fan Out"}' | json_field '["access_token"]')

echo "bench: server pid $server_pid on $base ($(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')), relay every ${ORDERLY_EVENTS_RELAY_INTERVAL_MS} ms"
parts=${BENCH_PARTS:-latency sse ws}
[[ " $parts " != *" latency "* ]] || "$venv/bin/python" "$here/fanout_client.py" latency --base "$base" --staff-token "$staff" --customer-token "$customer" \
    --sku "$sku" --clients "${BENCH_CLIENTS:-1000}" --procs "${BENCH_PROCS:-4}" --orders "${BENCH_ORDERS:-50}" \
    --gap-ms "${BENCH_GAP_MS:-100}" | tee "$out/latency.json"
for kind in sse ws; do
    [[ " $parts " == *" $kind "* ]] || continue
    stop_server
    start_server
    sleep 2
    "$venv/bin/python" "$here/fanout_client.py" idle --base "$base" --staff-token "$staff" --pid "$server_pid" \
        --kind "$kind" --connections "${BENCH_IDLE:-10000}" --batch "${BENCH_IDLE_BATCH:-250}" | tee "$out/idle-$kind.json"
    sleep 2
done
echo "bench: results in $out"
