#!/usr/bin/env bash
# Events per second through the outbox relay to NATS JetStream.
#
#   bench/relay.sh                        uses $CARGO_TARGET_DIR/release/orderly (or debug/)
#   ORDERLY_BIN=path bench/relay.sh       a given build
#
# Creates a fresh PostgreSQL database, migrates it, inserts RELAY_EVENTS (default 50,000)
# unpublished outbox rows with one SQL statement, starts `orderly serve` with NATS on it
# (a stream and subject prefix of its own), and times from the process start until no row
# is unpublished; prints events/s. Then stops orderly, drops the database and deletes the
# stream. Knobs: RELAY_EVENTS, RELAY_BATCH (events.relay_batch, default 256),
# BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres),
# BENCH_NATS_URL (default nats://127.0.0.1:4222). Needs psql, python3.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=${ORDERLY_BIN:-}
if [ -z "$bin" ]; then
    if [ -x "$target/release/orderly" ]; then bin=$target/release/orderly; else bin=$target/debug/orderly; fi
fi
[ -x "$bin" ] || { echo "relay: no executable at $bin (cargo build --release)" >&2; exit 1; }
n=${RELAY_EVENTS:-50000}
batch=${RELAY_BATCH:-256}
pg=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
nats=${BENCH_NATS_URL:-nats://127.0.0.1:4222}
tag=$(python3 -c 'import secrets; print(secrets.token_hex(6))')
dbname=orderly_bench_relay_$tag
stream=BENCH_RELAY_$tag
db_url=${pg%/*}/$dbname
work=$(mktemp -d /tmp/orderly-relay-bench.XXXXXX)
pid=

stop() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    pid=
}
delete_stream() {
    # $JS.API.STREAM.DELETE.<name> over the plain NATS protocol (no nats CLI needed).
    python3 - "$nats" "$stream" <<'EOF' || true
import socket, sys
from urllib.parse import urlparse
u = urlparse(sys.argv[1]); name = sys.argv[2]
s = socket.create_connection((u.hostname or "127.0.0.1", u.port or 4222), timeout=3)
s.recv(4096)
s.sendall(b'CONNECT {"verbose":false}\r\nSUB _INBOX.relaybench 1\r\n'
          + f"PUB $JS.API.STREAM.DELETE.{name} _INBOX.relaybench 0\r\n\r\nPING\r\n".encode())
s.recv(4096)
EOF
}
cleanup() {
    stop
    delete_stream
    psql -q "$pg" -c "DROP DATABASE IF EXISTS $dbname WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^ORDERLY_' || true)
unset RUST_LOG OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
export ORDERLY_DATA_DIR=$work/data ORDERLY_DATABASE_URL=$db_url ORDERLY_LOG_FILTER=warn
export ORDERLY_HTTP_ADDR=127.0.0.1:$(python3 "$here/probe.py" port)
export ORDERLY_ADMIN_ADDR=127.0.0.1:$(python3 "$here/probe.py" port)
export ORDERLY_GRPC_ADDR=127.0.0.1:0
export ORDERLY_AUTH_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')

psql -q "$pg" -c "CREATE DATABASE $dbname" >/dev/null
"$bin" migrate >/dev/null
# Ids sort in insertion order like UUID v7; one aggregate per 10 events.
psql -q "$db_url" >/dev/null <<SQL
INSERT INTO outbox (id, event_type, aggregate_id, payload, created_at, event_version)
SELECT '00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'),
       'product.updated',
       '00000000-0000-7000-9000-' || lpad(to_hex(i / 10), 12, '0'),
       '{"product_id":"00000000-0000-7000-9000-' || lpad(to_hex(i / 10), 12, '0') || '","fields":["price_minor"]}',
       to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       1
FROM generate_series(1, $n) AS i;
SQL

export ORDERLY_NATS_URL=$nats ORDERLY_NATS_STREAM=$stream ORDERLY_NATS_SUBJECT_PREFIX=bench.relay$tag
export ORDERLY_EVENTS_RELAY_BATCH=$batch
start=$(date +%s.%N)
"$bin" serve >"$work/orderly.log" 2>&1 &
pid=$!
while :; do
    left=$(psql -tA "$db_url" -c "SELECT count(*) FROM outbox WHERE published_at IS NULL")
    [ "$left" = 0 ] && break
    kill -0 "$pid" 2>/dev/null || { echo "relay: orderly exited:" >&2; cat "$work/orderly.log" >&2; exit 1; }
    sleep 0.05
done
end=$(date +%s.%N)
python3 - "$n" "$start" "$end" "$batch" "$bin" <<'EOF'
import sys
n, start, end, batch, binary = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
secs = end - start
print(f"relay to NATS: {n} events in {secs:.2f} s = {n / secs:,.0f} events/s "
      f"(batch {batch}, from process start, {binary})")
EOF
