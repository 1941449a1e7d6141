#!/usr/bin/env bash
# End-to-end check of orderly's telemetry against real tools, on loopback only:
#  - traces: orderly exports over OTLP/gRPC to a real receiver (rotel, from PyPI), which
#    forwards over OTLP/HTTP to a small sink that decodes the protobuf (opentelemetry-proto);
#    asserts span names, that an incoming `traceparent` is continued (same trace id, the
#    caller's span as parent), and that the HTTP payment gateway received a `traceparent`
#    of the same trace, whose parent is an exported `payments.charge` span;
#  - metrics: scrapes the admin listener after traffic and runs `promtool check metrics`,
#    then asserts the series the operations guide promises;
#  - profiling: a 2-second CPU profile under load is a gzip-compressed pprof protobuf with
#    samples and symbol names.
# Installs what it needs (pip: rotel, opentelemetry-proto; Debian: prometheus for promtool).
# OTLP_PROTOCOL=http/protobuf exports over OTLP/HTTP instead of gRPC (the default here).
# Bounded: every wait has a deadline; the whole run takes well under two minutes once built.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf -- '--- %s\n' "$*"; }
fail() { printf 'check-telemetry: FAILED: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------------
python3 -c 'import opentelemetry.proto, rotel' 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check 'rotel==0.0.1a15' 'opentelemetry-proto==1.45.2'
rotel_agent=$(python3 -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')
[ -x "$rotel_agent" ] || fail "rotel-agent not found at $rotel_agent"
if ! command -v promtool >/dev/null; then
  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus >/dev/null
fi
command -v promtool >/dev/null || fail "promtool is missing (Debian package prometheus)"


# --- scratch space and processes ------------------------------------------------------------
. scripts/lib/server.sh
orderly_binary

wait_port() { # port, what
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  fail "$2 did not listen on 127.0.0.1:$1"
}

grpc_port=$(free_port); rotel_http_port=$(free_port); sink_port=$(free_port); gateway_port=$(free_port)
http_port=$(free_port); admin_port=$(free_port)

python3 scripts/telemetry_stubs.py sink "$sink_port" "$scratch/spans.jsonl" &
pids+=($!)
python3 scripts/telemetry_stubs.py gateway "$gateway_port" "$scratch/gateway.jsonl" &
pids+=($!)
"$rotel_agent" start \
  --otlp-grpc-endpoint "127.0.0.1:$grpc_port" --otlp-http-endpoint "127.0.0.1:$rotel_http_port" \
  --exporter otlp --otlp-exporter-endpoint "http://127.0.0.1:$sink_port" \
  --otlp-exporter-protocol http --otlp-exporter-compression none --batch-timeout 100ms \
  --pid-file "$scratch/rotel.pid" --log-file "$scratch/rotel.log" >"$scratch/rotel.out" 2>&1 &
pids+=($!)
wait_port "$sink_port" "span sink"; wait_port "$gateway_port" "gateway stub"
wait_port "$grpc_port" "rotel (gRPC)"; wait_port "$rotel_http_port" "rotel (HTTP)"
protocol="${OTLP_PROTOCOL:-grpc}"
case "$protocol" in
  grpc) otlp_endpoint="http://127.0.0.1:$grpc_port" ;;
  http/protobuf) otlp_endpoint="http://127.0.0.1:$rotel_http_port" ;;
  *) fail "OTLP_PROTOCOL must be grpc or http/protobuf" ;;
esac
log "rotel $("$rotel_agent" version 2>/dev/null || true) receiving OTLP ($protocol) at $otlp_endpoint"

export ORDERLY_DATA_DIR="$scratch/data" ORDERLY_HTTP_ADDR="127.0.0.1:$http_port" \
  ORDERLY_ADMIN_ADDR="127.0.0.1:$admin_port" ORDERLY_GRPC_ADDR="127.0.0.1:0" ORDERLY_PAYMENTS_URL="http://127.0.0.1:$gateway_port" \
  ORDERLY_LOG_FORMAT=json ORDERLY_LOG_FILTER=info
password='telemetry-check-passphrase'
echo "$password" | "$orderly" user create-admin --email ops@example.com --password-stdin >"$scratch/admin.log" 2>&1 \
  || { cat "$scratch/admin.log"; fail "create-admin"; }

OTEL_EXPORTER_OTLP_ENDPOINT="$otlp_endpoint" OTEL_EXPORTER_OTLP_PROTOCOL="$protocol" \
  OTEL_SERVICE_NAME=orderly-ci OTEL_BSP_SCHEDULE_DELAY=200 \
  "$orderly" serve >"$scratch/orderly.log" 2>&1 &
orderly_pid=$!
pids+=($orderly_pid)
base="http://127.0.0.1:$http_port"
admin="http://127.0.0.1:$admin_port"
wait_ready "$base" "$orderly_pid" "$scratch/orderly.log" 20

# --- traffic with known trace ids -----------------------------------------------------------
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
tp_read=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
tp_checkout=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01
token=$(curl -fsS --max-time 10 -X POST "$base/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"ops@example.com\",\"password\":\"$password\"}" | json '["access_token"]')
product=$(curl -fsS --max-time 10 -X POST "$base/api/v1/products" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' \
  -d '{"sku":"TEL-1","name":"Telemetry probe","price_minor":1234,"currency":"USD","initial_stock":10}' | json '["id"]')
curl -fsS --max-time 10 -o /dev/null -H "traceparent: $tp_read" "$base/api/v1/products/$product"
curl -sS --max-time 10 -o /dev/null "$base/no/such/route"
order_status=$(curl -fsS --max-time 20 -X POST "$base/api/v1/orders" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -H "traceparent: $tp_checkout" \
  -d '{"line_items":[{"sku":"TEL-1","quantity":1}],"payment":{"card_number":"4242424242424242"}}' | json '["status"]')
[ "$order_status" = paid ] || fail "checkout through the HTTP gateway: status $order_status, expected paid"
declined=$(curl -sS --max-time 20 -o /dev/null -w '%{http_code}' -X POST "$base/api/v1/orders" \
  -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"line_items":[{"sku":"TEL-1","quantity":1}],"payment":{"card_number":"4000000000000002"}}')
log "checkout: paid through the gateway stub; declined card answered $declined"

# --- metrics --------------------------------------------------------------------------------
[ "$(curl -sS -o /dev/null -w '%{http_code}' "$base/metrics")" = 404 ] || fail "/metrics must not be on the public port"
curl -fsS --max-time 10 "$admin/metrics" >"$scratch/metrics.txt"
promtool check metrics <"$scratch/metrics.txt" || fail "promtool check metrics"
log "promtool check metrics: ok ($(grep -vc '^#' "$scratch/metrics.txt") samples)"
for want in \
  'http_requests_total{method="GET",route="/api/v1/products/{id}",status="200"}' \
  'http_requests_total{method="GET",route="unmatched",status="404"}' \
  'http_request_duration_seconds_bucket{method="POST",route="/api/v1/orders",status="201",le="0.1"}' \
  'http_requests_in_flight' 'db_pool_connections{state="idle"}' 'db_pool_max_connections' \
  'orderly_orders_placed_total{currency="USD"} 2' \
  'orderly_saga_outcomes_total{outcome="paid"} 1' 'orderly_saga_outcomes_total{outcome="declined"} 1' \
  'orderly_payment_gateway_calls_total{operation="charge",result="succeeded"} 1' \
  'orderly_payment_gateway_call_duration_seconds_count{operation="charge"} 2' \
  'orderly_build_info{' '# HELP http_requests_total '; do
  grep -qF -- "$want" "$scratch/metrics.txt" || { cat "$scratch/metrics.txt"; fail "metrics lack: $want"; }
done
log "metrics: expected series present"

# --- profiling ------------------------------------------------------------------------------
# Load to sample: an idle process gives an empty profile.
( for _ in $(seq 1 150); do curl -s -o /dev/null --max-time 5 "$base/api/v1/products?limit=20"; done ) &
load_pid=$!
curl -fsS --max-time 30 "$admin/debug/pprof/profile?seconds=2" -o "$scratch/profile.pb.gz"
wait $load_pid || true
python3 - "$scratch/profile.pb.gz" <<'EOF' || fail "CPU profile is not a gzip-compressed protobuf with samples"
import gzip, sys
data = gzip.decompress(open(sys.argv[1], "rb").read())
# An empty profile is ~80 bytes; samples bring function names and locations.
assert len(data) > 200, f"profile of {len(data)} bytes has no samples"
assert b"orderly" in data or b"tokio" in data, "no symbol names in the profile"
print(f"--- profile: {len(data)} bytes of pprof protobuf")
EOF

# --- traces ---------------------------------------------------------------------------------
kill -TERM $orderly_pid
wait $orderly_pid || { cat "$scratch/orderly.log"; fail "orderly did not shut down cleanly"; }
python3 - "$scratch/spans.jsonl" "$scratch/gateway.jsonl" "$tp_read" "$tp_checkout" <<'EOF' || fail "trace assertions"
import json, sys, time
spans_path, gateway_path, tp_read, tp_checkout = sys.argv[1:5]
_, read_trace, read_parent, _ = tp_read.split("-")
_, checkout_trace, checkout_parent, _ = tp_checkout.split("-")
expected = {"http", "checkout.price", "checkout.reserve", "checkout.charge", "payments.charge", "checkout.finish_paid", "checkout.declined"}

def load(path):
    try:
        return [json.loads(l) for l in open(path) if l.strip()]
    except FileNotFoundError:
        return []

deadline = time.time() + 20  # rotel batches and forwards; give it a moment
while True:
    spans = load(spans_path)
    names = {s["name"] for s in spans}
    if expected <= names and any(s["trace_id"] == checkout_trace for s in spans) or time.time() > deadline:
        break
    time.sleep(0.2)
missing = expected - names
assert not missing, f"no spans named {sorted(missing)}; got {sorted(names)}"
assert all(s["service"] == "orderly-ci" for s in spans), {s["service"] for s in spans}
read_root = [s for s in spans if s["trace_id"] == read_trace and s["name"] == "http"]
assert read_root and read_root[0]["parent_span_id"] == read_parent, f"GET product did not continue {tp_read}: {read_root}"
checkout = {s["span_id"]: s for s in spans if s["trace_id"] == checkout_trace}
assert {"http", "checkout.charge", "payments.charge"} <= {s["name"] for s in checkout.values()}, checkout
calls = [g for g in load(gateway_path) if g["method"] == "POST" and g["path"].endswith("/charges")]
assert calls, "the gateway stub saw no charge"
parts = [(g["traceparent"] or "").split("-") for g in calls]
same = [p for p in parts if len(p) == 4 and p[1] == checkout_trace]
assert same, f"no charge carried trace {checkout_trace}: {[g['traceparent'] for g in calls]}"
assert checkout.get(same[0][2], {}).get("name") == "payments.charge", "gateway's parent span is not an exported payments.charge"
print(f"--- traces: {len(spans)} spans received by rotel, names {sorted(names)}")
print(f"--- traces: incoming trace {read_trace} continued; gateway saw traceparent {calls[0]['traceparent']}")
EOF
echo "check-telemetry: ok"
