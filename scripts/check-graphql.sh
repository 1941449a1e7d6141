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

. scripts/lib/server.sh

# --- tools -------------------------------------------------------------------------------
venv="${GQL_VENV:-$scratch/venv}"
if ! "$venv/bin/python" -c 'import gql, websockets, aiohttp' 2>/dev/null; then
  python3 -m venv "$venv" || fail "python3 -m venv (Debian: apt-get install python3-venv)"
  timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check 'gql[websockets,aiohttp]==4.4.0' \
    || fail "pip install gql[websockets,aiohttp]"
fi
log "gql $("$venv/bin/python" -c 'import gql; print(gql.__version__)')"

orderly_binary

# --- server ------------------------------------------------------------------------------
admin_email=admin@example.com
admin_password='check-graphql-admin-passphrase'
export ORDERLY_DATA_DIR="$scratch/data"
echo "$admin_password" | "$orderly" user create-admin --email "$admin_email" --password-stdin >/dev/null \
  || fail "orderly user create-admin"
http_port=$(free_port)
base="http://127.0.0.1:$http_port"
ORDERLY_HTTP_ADDR="127.0.0.1:$http_port" ORDERLY_ADMIN_ADDR="127.0.0.1:0" ORDERLY_GRPC_ADDR="127.0.0.1:0" "$orderly" serve >"$scratch/orderly.log" 2>&1 &
orderly_pid=$!
pids+=($orderly_pid)
wait_ready "$base" "$orderly_pid" "$scratch/orderly.log" 30

# --- the client --------------------------------------------------------------------------
log "gql: query, mutations, subscription against $base/graphql"
ORDERLY_BASE="$base" ORDERLY_ADMIN_EMAIL="$admin_email" ORDERLY_ADMIN_PASSWORD="$admin_password" \
  timeout 120 "$venv/bin/python" scripts/graphql_client.py || { tail -50 "$scratch/orderly.log"; fail "gql client"; }
log "check-graphql: ok"
