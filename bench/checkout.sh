#!/usr/bin/env bash
# Issue 7's figures in one run: the cached product GET's CPU µs/request through the full
# stack and with `http.middleware = off`; checkout orders/s and p99 on SQLite and on
# PostgreSQL, beside the box's own pgbench TPC-B tps measured in the same run; and SQL round
# trips per checkout.
#
#   bench/checkout.sh            build (cargo build --release), then the four parts below
#
# 1. SQLite: bench/run.sh's `healthz`, `product_get` (served from the read cache after the
#    warm-up) and `orders` scenarios on the default SQLite file, then the two reads again
#    with `http.middleware = off` (BENCH_SQLITE_SCENARIOS to choose).
# 2. PostgreSQL: the same scenarios against a scratch database (created, then dropped).
# 3. pgbench: `pgbench -i -s $PGBENCH_SCALE` into another scratch database, then
#    `pgbench -c8 -j2 -T$PGBENCH_SECONDS -M prepared` (TPC-B-like), right after part 2.
# 4. Round trips: the server talks to PostgreSQL through bench/pgwire.py, which counts the
#    frontend messages that end a round trip (Sync, Query) and names what each carried;
#    $BENCH_RT_ORDERS sequential checkouts after a warm-up, one line item, sandbox card.
#
# Knobs (environment): BENCH_DURATION=15 BENCH_WARMUP=3 BENCH_ORDER_CONNECTIONS="8 32"
#   BENCH_PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432/postgres  PGBENCH_SCALE=10
#   PGBENCH_SECONDS=10  BENCH_RT_ORDERS=50  BENCH_OUT=DIR  ORDERLY_BIN=PATH (skip the build)
# wrk has no fixed-rate mode (wrk2 is not packaged here): p99 is reported at the rate each
# run reached with its number of connections, not at a fixed 1,000 orders/s.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
die() { echo "bench: $*" >&2; exit 1; }
for tool in wrk curl python3 psql pgbench; do
    command -v "$tool" >/dev/null || die "$tool is missing (Debian: apt-get install -y wrk curl python3 postgresql-client)"
done

admin_url=${BENCH_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
scale=${PGBENCH_SCALE:-10}
pg_seconds=${PGBENCH_SECONDS:-10}
rt_orders=${BENCH_RT_ORDERS:-50}
export BENCH_ORDER_CONNECTIONS=${BENCH_ORDER_CONNECTIONS:-8 32}
export BENCH_SCENARIOS=orders BENCH_COMPARE_STACK=0

if [ -z "${ORDERLY_BIN:-}" ]; then
    (cd "$root" && cargo build --release --bin orderly)
    ORDERLY_BIN=${CARGO_TARGET_DIR:-$root/target}/release/orderly
    export BENCH_COMMIT=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
fi
export ORDERLY_BIN
bin=$ORDERLY_BIN # part 4 clears every ORDERLY_* variable
out=${BENCH_OUT:-$(mktemp -d /tmp/orderly-checkout-bench.XXXXXX)}
mkdir -p "$out"

suffix=$$_$(date +%s)
db_orders=orderly_bench_$suffix
db_rt=orderly_bench_rt_$suffix
db_pgbench=pgbench_$suffix
base_url=${admin_url%%\?*}
base_url=${base_url%/*}
server_pid=
proxy_pid=
work=
cleanup() {
    [ -z "$server_pid" ] || { kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
    [ -z "$proxy_pid" ] || { kill -TERM "$proxy_pid" 2>/dev/null || true; wait "$proxy_pid" 2>/dev/null || true; }
    [ -z "$work" ] || rm -rf "$work"
    for d in "$db_orders" "$db_rt" "$db_pgbench"; do
        psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== 1. SQLite"
BENCH_SCENARIOS=${BENCH_SQLITE_SCENARIOS:-healthz product_get orders} BENCH_COMPARE_STACK=1 \
    BENCH_OUT=$out/sqlite "$here/run.sh" | tee "$out/sqlite.txt"

echo "== 2. PostgreSQL"
psql -q "$admin_url" -c "CREATE DATABASE $db_orders" >/dev/null
BENCH_OUT=$out/postgres BENCH_SERVER_ENV="ORDERLY_DATABASE_URL=$base_url/$db_orders ${BENCH_SERVER_ENV:-}" \
    "$here/run.sh" | tee "$out/postgres.txt"

echo "== 3. pgbench (TPC-B-like), same session"
psql -q "$admin_url" -c "CREATE DATABASE $db_pgbench" >/dev/null
pgbench -q -i -s "$scale" "$base_url/$db_pgbench" >"$out/pgbench-init.txt" 2>&1
pgbench -c8 -j2 -T"$pg_seconds" -M prepared "$base_url/$db_pgbench" >"$out/pgbench.txt" 2>&1
pgbench_tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out/pgbench.txt" | tail -1)
echo "pgbench: $pgbench_tps tps (scale $scale, 8 clients, 2 threads, ${pg_seconds} s, prepared)"

echo "== 4. SQL round trips per checkout (PostgreSQL, through bench/pgwire.py)"
psql -q "$admin_url" -c "CREATE DATABASE $db_rt" >/dev/null
pg_hostport=${base_url#*://}
pg_hostport=${pg_hostport#*@}
proxy_port=$(python3 "$here/probe.py" port)
python3 "$here/pgwire.py" --listen "$proxy_port" --upstream "$pg_hostport" --stats "$out/pgwire.json" &
proxy_pid=$!
proxied=${base_url/$pg_hostport/127.0.0.1:$proxy_port}/$db_rt?sslmode=disable
work=$(mktemp -d /tmp/orderly-checkout-rt.XXXXXX)
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^ORDERLY_' || true)
port=$(python3 "$here/probe.py" port)
export ORDERLY_DATA_DIR=$work/data ORDERLY_HTTP_ADDR=127.0.0.1:$port ORDERLY_LOG_FILTER=warn
export ORDERLY_ADMIN_ADDR=127.0.0.1:$(python3 "$here/probe.py" port) ORDERLY_DATABASE_URL=$proxied
export ORDERLY_GRPC_ADDR=127.0.0.1:0
export ORDERLY_AUTH_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export ORDERLY_RATELIMIT_API_LIMIT=1000000000 ORDERLY_RATELIMIT_CHECKOUT_LIMIT=1000000000
admin_password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
(cd "$work" && printf '%s\n' "$admin_password" | "$bin" user create-admin --email rt@example.com \
    --password-stdin) >"$out/rt-admin.log" 2>&1 || { cat "$out/rt-admin.log" >&2; die "create-admin failed"; }
(cd "$work" && exec "$bin" serve) >"$out/rt-server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 200); do
    curl -fsS --max-time 1 "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.05
done
mkdir -p "$out/rt"
python3 "$here/setup.py" --base "http://127.0.0.1:$port" --admin-email rt@example.com \
    --admin-password "$admin_password" --customers 4 --products 2 --out "$out/rt" >/dev/null
python3 - "$port" "$out/rt" "$out/pgwire.json" "$rt_orders" <<'PY' | tee "$out/round_trips.txt"
import json, sys, time, urllib.request
port, d, stats, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
tokens = [t for t in open(f"{d}/tokens.txt").read().split() if t]
sku = open(f"{d}/skus.txt").read().split()[0]
def order(i):
    body = json.dumps({"line_items": [{"sku": sku, "quantity": 1}], "payment": {"card_number": "4242424242424242"}})
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/orders", data=body.encode(), method="POST",
        headers={"Authorization": "Bearer " + tokens[i % len(tokens)], "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 201 and json.load(r)["status"] == "paid"
def snap():
    time.sleep(0.3)  # the pool's release pings run after the response
    return json.load(open(stats))
for i in range(20):  # warm-up: every pooled connection prepares its statements once
    order(i)
a = snap()
for i in range(n):
    order(i)
b = snap()
per = (b["round_trips"] - a["round_trips"]) / n
print(f"round trips per checkout (PostgreSQL, at the wire): {per:.2f}")
for k in sorted(b["by_kind"], key=lambda k: -(b["by_kind"][k] - a["by_kind"].get(k, 0))):
    d_ = (b["by_kind"][k] - a["by_kind"].get(k, 0)) / n
    if d_ > 0:
        print(f"  {d_:5.2f}  {k}")
PY

echo
echo "== summary"
python3 - "$out" "$pgbench_tps" <<'PY'
import json, pathlib, sys
out, tps = pathlib.Path(sys.argv[1]), float(sys.argv[2] or 0)
for backend in ("sqlite", "postgres"):
    for f in sorted((out / backend).glob("orders_c*.json")):
        r = json.loads(f.read_text())
        rate, p99 = r["requests_per_s"], r["latency_ms"]["p99"]
        extra = f", {rate / tps:.2f}x pgbench's {tps:.0f} tps" if backend == "postgres" and tps else ""
        print(f"{backend:<9}{r['name']:<12}{rate:8.0f} orders/s  p99 {p99:7.2f} ms (at that rate){extra}")
print(f"pgbench  TPC-B-like     {tps:8.0f} tps")
print((out / "round_trips.txt").read_text().strip())
PY
