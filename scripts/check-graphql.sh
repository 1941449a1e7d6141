#!/usr/bin/env bash
# GraphQL checked with a real third-party client against a running server on loopback:
# `gql` (PyPI, with its websockets and aiohttp transports) runs a query, mutations
# (createProduct as an admin, checkout as a customer) and a subscription over
# `graphql-transport-ws` (the order's events), asserting the results
# (scripts/graphql_client.py). The tools go into a venv under the scratch dir unless
# GQL_VENV names one that has them. Bounded: every wait has a deadline.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf -- '--- %s\n' "$*"; }
fail() { printf 'check-graphql: FAILED: %s\n' "$*" >&2; exit 1; }

scratch=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

# --- tools -------------------------------------------------------------------------------
venv="${GQL_VENV:-$scratch/venv}"
if ! "$venv/bin/python" -c 'import gql, websockets, aiohttp' 2>/dev/null; then
  python3 -m venv "$venv" || fail "python3 -m venv (Debian: apt-get install python3-venv)"
  timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check 'gql[websockets,aiohttp]==4.4.0' \
    || fail "pip install gql[websockets,aiohttp]"
fi
log "gql $("$venv/bin/python" -c 'import gql; print(gql.__version__)')"

cargo build --locked -q
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
orderly="$target_dir/debug/orderly"

# --- server ------------------------------------------------------------------------------
admin_email=admin@example.com
admin_password='check-graphql-admin-passphrase'
export ORDERLY_DATA_DIR="$scratch/data"
echo "$admin_password" | "$orderly" user create-admin --email "$admin_email" --password-stdin >/dev/null \
  || fail "orderly user create-admin"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_port=$(free_port)
base="http://127.0.0.1:$http_port"
ORDERLY_HTTP_ADDR="127.0.0.1:$http_port" ORDERLY_ADMIN_ADDR="127.0.0.1:0" ORDERLY_GRPC_ADDR="127.0.0.1:0" "$orderly" serve >"$scratch/orderly.log" 2>&1 &
orderly_pid=$!
pids+=($orderly_pid)
for _ in $(seq 1 150); do
  curl -fsS --max-time 2 "$base/readyz" >/dev/null 2>&1 && break
  kill -0 $orderly_pid 2>/dev/null || { cat "$scratch/orderly.log"; fail "orderly exited"; }
  sleep 0.2
done
curl -fsS --max-time 5 "$base/readyz" >/dev/null || { cat "$scratch/orderly.log"; fail "orderly not ready"; }

# --- the client --------------------------------------------------------------------------
log "gql: query, mutations, subscription against $base/graphql"
ORDERLY_BASE="$base" ORDERLY_ADMIN_EMAIL="$admin_email" ORDERLY_ADMIN_PASSWORD="$admin_password" \
  timeout 120 "$venv/bin/python" scripts/graphql_client.py || { tail -50 "$scratch/orderly.log"; fail "gql client"; }
log "check-graphql: ok"
