#!/usr/bin/env bash
# The same product read through REST and GraphQL, in one run, with wrk on loopback:
#   rest     GET  /api/v1/products/{id}                 (anonymous, cache-aside read)
#   graphql  POST /graphql { product(id) { …every field } }  (anonymous)
# For each: requests/s, latency p50/p99 (from wrk) and the server's CPU time per request
# (from /proc/<pid>/stat, user + system, over the measured run).
#
#   bench/graphql.sh            release build (the integrator's run)
#   BENCH_PROFILE=debug bench/graphql.sh   a quick smoke run on the debug build
#
# Knobs: BENCH_DURATION=10 BENCH_CONNECTIONS=32 BENCH_THREADS=2, ORDERLY_BIN=PATH (skip the
# build). A gRPC row belongs here too once the gRPC transport lands (same product, ghz or a
# grpcio loop). The server runs on a scratch data dir with every ORDERLY_* of the calling
# shell cleared, and is stopped when this script exits.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
duration=${BENCH_DURATION:-10}
conns=${BENCH_CONNECTIONS:-32}
threads=${BENCH_THREADS:-2}
profile=${BENCH_PROFILE:-release}
die() { echo "bench: $*" >&2; exit 1; }
for tool in wrk curl python3; do command -v "$tool" >/dev/null || die "$tool is missing (Debian: apt-get install -y $tool)"; done

if [ -n "${ORDERLY_BIN:-}" ]; then
  bin=$ORDERLY_BIN
else
  (cd "$root" && if [ "$profile" = release ]; then cargo build --release --locked -q; else cargo build --locked -q; fi)
  target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  bin="$target_dir/$profile/orderly"
fi

scratch=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$scratch"; }
trap cleanup EXIT
for v in $(env | grep -o '^ORDERLY_[A-Z_]*' || true); do unset "$v"; done
export ORDERLY_DATA_DIR="$scratch/data" ORDERLY_LOG_FILTER=warn
echo 'bench-admin-passphrase' | "$bin" user create-admin --email bench@example.com --password-stdin >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
# Limits far above the load (one client address).
ORDERLY_HTTP_ADDR="127.0.0.1:$port" ORDERLY_ADMIN_ADDR="127.0.0.1:0" ORDERLY_GRPC_ADDR="127.0.0.1:0" ORDERLY_RATELIMIT_API_LIMIT=100000000 \
  "$bin" serve >"$scratch/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 150); do curl -fsS "$base/readyz" >/dev/null 2>&1 && break; sleep 0.2; done

token=$(curl -fsS "$base/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"bench-admin-passphrase"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
id=$(curl -fsS "$base/api/v1/products" -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"sku":"BENCH-1","name":"Bench product","description":"A product for the benchmark","price_minor":1999,"currency":"USD","initial_stock":100}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

# The GraphQL request: the product by variable, every field REST's body has.
body=$(python3 -c 'import json,sys; print(json.dumps({"query": "query($id: ID!) { product(id: $id) { id sku name description priceMinor currency status categoryId available version createdAt updatedAt } }", "variables": {"id": sys.argv[1]}}))' "$id")
printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[%s]]\n' "$body" >"$scratch/graphql.lua"
# Both answer 200 with the product before measuring.
curl -fsS "$base/api/v1/products/$id" >/dev/null
curl -fsS "$base/graphql" -H 'content-type: application/json' -d "$body" \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); assert "errors" not in d and d["data"]["product"]["sku"]=="BENCH-1", d'

cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
printf '%-8s %12s %10s %10s %14s\n' scenario req/s p50 p99 cpu_us/req
run() { # name, wrk args…
  local name=$1; shift
  wrk -t"$threads" -c"$conns" -d2s "$@" >/dev/null   # warm-up
  local before; before=$(cpu_ticks)
  wrk -t"$threads" -c"$conns" -d"${duration}s" --latency "$@" >"$scratch/$name.txt"
  local after; after=$(cpu_ticks)
  python3 - "$scratch/$name.txt" "$name" "$before" "$after" "$hz" <<'PY'
import re, sys
text, name, before, after, hz = open(sys.argv[1]).read(), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
total = int(re.search(r"(\d+) requests in", text).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", text, re.M))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
cpu_us = (after - before) / hz * 1e6 / max(total, 1)
print(f"{name:<8} {rps:12.0f} {lat.get('50','?'):>10} {lat.get('99','?'):>10} {cpu_us:14.1f}" + (f"  NON-2XX: {bad.group(1)}" if bad else ""))
PY
}
run rest "$base/api/v1/products/$id"
run graphql -s "$scratch/graphql.lua" "$base/graphql"
echo "($bin, ${duration}s, $conns connections; server CPU per request from /proc)"
