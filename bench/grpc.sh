#!/usr/bin/env bash
# The same product read through REST, GraphQL and gRPC, in one run against one server:
#   rest_h1     GET /api/v1/products/{id} over HTTP/1.1 (wrk; the number bench/run.sh reports)
#   rest_h2c    the same GET over HTTP/2 without TLS (h2load), the transport gRPC uses
#   graphql_h2c POST /graphql `product(id)` selecting every field REST returns, over h2c (h2load)
#   grpc        orderly.v1.CatalogService/GetProduct, unary, over h2c (h2load, a raw
#               length-prefixed protobuf request: the load client costs no codegen)
# For each: requests/s, latency, and server CPU µs per request (utime+stime of the server
# from /proc, as bench/probe.py measures). The gRPC answers are checked through the server's
# own metrics: every call counted must be `OK`.
#
#   bench/grpc.sh                    build (cargo build --release), set up, run, print a table
#   ORDERLY_BIN=target/debug/orderly BENCH_DURATION=3 bench/grpc.sh     a smoke run
#
# Knobs: BENCH_DURATION=10 (s per scenario), BENCH_WARMUP=2, BENCH_CONNECTIONS=32,
# BENCH_STREAMS=1 (concurrent streams per HTTP/2 connection), BENCH_THREADS=2.
# Needs wrk, h2load (Debian: nghttp2-client), curl, python3. Loopback only.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
duration=${BENCH_DURATION:-10}
warmup=${BENCH_WARMUP:-2}
conns=${BENCH_CONNECTIONS:-32}
streams=${BENCH_STREAMS:-1}
threads=${BENCH_THREADS:-2}
die() { echo "bench/grpc: $*" >&2; exit 1; }
for tool in wrk h2load curl python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (Debian: apt-get install -y wrk nghttp2-client curl python3)"
done

if [ -n "${ORDERLY_BIN:-}" ]; then
    bin=$ORDERLY_BIN
else
    (cd "$root" && cargo build --release --bin orderly)
    bin=${CARGO_TARGET_DIR:-$root/target}/release/orderly
fi
[ -x "$bin" ] || die "no executable at $bin"

out=${BENCH_OUT:-$(mktemp -d /tmp/orderly-bench-grpc.XXXXXX)}
mkdir -p "$out"
work=$(mktemp -d /tmp/orderly-bench-grpc-data.XXXXXX)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^ORDERLY_' || true)
unset RUST_LOG
port=$(python3 "$here/probe.py" port)
grpc_port=$(python3 "$here/probe.py" port)
admin_port=$(python3 "$here/probe.py" port)
base=http://127.0.0.1:$port
export ORDERLY_DATA_DIR=$work/data ORDERLY_HTTP_ADDR=127.0.0.1:$port
export ORDERLY_GRPC_ADDR=127.0.0.1:$grpc_port ORDERLY_ADMIN_ADDR=127.0.0.1:$admin_port
export ORDERLY_LOG_FILTER=${BENCH_LOG_FILTER:-info} ORDERLY_LOG_FORMAT=json
export ORDERLY_AUTH_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export ORDERLY_RATELIMIT_API_LIMIT=1000000000 ORDERLY_RATELIMIT_CHECKOUT_LIMIT=1000000000
admin_email=bench-admin@example.com
admin_password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
(cd "$work" && printf '%s\n' "$admin_password" | "$bin" user create-admin --email "$admin_email" --password-stdin) \
    >"$out/create-admin.log" 2>&1 || { cat "$out/create-admin.log" >&2; die "create-admin failed"; }
(cd "$work" && exec "$bin" serve) >"$out/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 200); do
    curl -fsS --max-time 1 "$base/readyz" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { tail "$out/server.log" >&2; die "the server exited"; }
    sleep 0.05
done
python3 "$here/setup.py" --base "$base" --admin-email "$admin_email" --admin-password "$admin_password" \
    --customers 2 --products 2 --out "$out" >/dev/null
product_id=$(cat "$out/product_id.txt")

# GetProductRequest{id} as a gRPC message: flag 0, 4-byte big-endian length, field 1 (string).
python3 - "$product_id" "$out/get_product.bin" <<'PY'
import struct, sys
pid = sys.argv[1].encode()
msg = bytes([0x0A, len(pid)]) + pid
open(sys.argv[2], "wb").write(b"\x00" + struct.pack(">I", len(msg)) + msg)
PY
python3 - "$product_id" "$out/graphql_product.json" <<'PY'
import json, sys
q = "query($id: ID!) { product(id: $id) { id sku name description priceMinor currency status categoryId available version etag createdAt updatedAt } }"
open(sys.argv[2], "w").write(json.dumps({"query": q, "variables": {"id": sys.argv[1]}}))
PY

cpu() { python3 -c "import sys; sys.path.insert(0, '$here'); import probe; print(probe.proc_cpu_s($server_pid))"; }
results=()
measure() { # name requests-extractor command...
    local name=$1 kind=$2
    shift 2
    local c0 c1 t0 t1
    c0=$(cpu); t0=$(date +%s.%N)
    "$@" >"$out/$name.txt" 2>&1 || { cat "$out/$name.txt" >&2; die "$name failed"; }
    c1=$(cpu); t1=$(date +%s.%N)
    results+=("$(python3 - "$name" "$kind" "$out/$name.txt" "$c0" "$c1" "$t0" "$t1" <<'PY'
import re, sys
name, kind, path, c0, c1, t0, t1 = sys.argv[1:]
text = open(path).read()
if kind == "wrk":
    n = int(re.search(r"(\d+) requests in", text).group(1))
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", text))
    p50 = re.search(r"50%\s+([\d.]+\w+)", text).group(1)
    p99 = re.search(r"99%\s+([\d.]+\w+)", text).group(1)
else:
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", text)
    n, errors = int(m.group(1)), int(m.group(2)) + int(m.group(3))
    # h2load reports mean and max per request; no percentiles.
    lat = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text)
    p50, p99 = "mean " + lat.group(3), "max " + lat.group(2)
wall = float(t1) - float(t0)
cpu_us = (float(c1) - float(c0)) * 1e6 / max(n, 1)
print(f"{name:10} {n / wall:10.0f} req/s  server CPU {cpu_us:7.1f} µs/req  latency {p50} / {p99}  errors {errors}")
PY
)")
}

url_rest=$base/api/v1/products/$product_id
url_graphql=$base/graphql
graphql_h=(-H 'content-type: application/json' -d "$out/graphql_product.json")
url_grpc=http://127.0.0.1:$grpc_port/orderly.v1.CatalogService/GetProduct
grpc_h=(-H 'content-type: application/grpc' -H 'te: trailers' -d "$out/get_product.bin")
[ "$warmup" -gt 0 ] && {
    wrk -t"$threads" -c"$conns" -d"${warmup}s" "$url_rest" >/dev/null
    h2load -t"$threads" -c"$conns" -m"$streams" -D"$warmup" "${grpc_h[@]}" "$url_grpc" >/dev/null
}
metric() { curl -fsS "http://127.0.0.1:$admin_port/metrics" | python3 -c "
import sys
total = 0
for l in sys.stdin:
    if l.startswith('orderly_grpc_requests_total') and 'CatalogService/GetProduct' in l and '$1' in l:
        total += float(l.split()[-1])
print(int(total))"; }
ok_before=$(metric 'code="OK"'); all_before=$(metric 'code='); cut_before=$(metric 'code="CANCELLED"')
measure rest_h1 wrk wrk -t"$threads" -c"$conns" -d"${duration}s" --latency "$url_rest"
measure rest_h2c h2load h2load -t"$threads" -c"$conns" -m"$streams" -D"$duration" "$url_rest"
measure graphql_h2c h2load h2load -t"$threads" -c"$conns" -m"$streams" -D"$duration" "${graphql_h[@]}" "$url_graphql"
grep -q '"errors"' < <(curl -fsS -H 'content-type: application/json' --data-binary @"$out/graphql_product.json" "$url_graphql") \
    && die "the GraphQL product query answers errors"
measure grpc h2load h2load -t"$threads" -c"$conns" -m"$streams" -D"$duration" "${grpc_h[@]}" "$url_grpc"
ok=$(($(metric 'code="OK"') - ok_before)); all=$(($(metric 'code=') - all_before))
# h2load cancels the calls in flight when its time is up: at most one per stream, CANCELLED.
cut=$(($(metric 'code="CANCELLED"') - cut_before))
[ "$ok" -gt 0 ] && [ $((ok + cut)) -eq "$all" ] && [ "$cut" -le $((conns * streams)) ] \
    || die "gRPC calls not all OK: $ok OK, $cut cancelled at the end, of $all (see $out/grpc.txt)"

echo "bench/grpc: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown), $(basename "$bin") build, ${duration}s each, $conns connections x $streams streams, results in $out"
printf '%s\n' "${results[@]}" | tee "$out/summary.txt"
echo "grpc: $all calls counted by the server: $ok OK, $cut in flight when the load stopped (CANCELLED)"
