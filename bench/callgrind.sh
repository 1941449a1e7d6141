#!/usr/bin/env bash
# Instructions per request on the GET hot path, counted by valgrind's callgrind: unlike CPU
# time it does not move with the noise of other processes on the box, so it can compare
# builds (and layers) to a few percent.
#
#   bench/callgrind.sh                      uses $CARGO_TARGET_DIR/release/orderly (or target/)
#   ORDERLY_BIN=path bench/callgrind.sh     a given build
#
# Sets up one product with a normal (native) server, then restarts the server under
# callgrind with instrumentation off, warms up, counts CALLGRIND_REQUESTS (default 2000)
# sequential keep-alive requests per scenario, and prints instructions/request (all
# threads: the log writer and the runtime included). Scenarios, as in bench/run.sh but at
# the production log level (`info`, JSON to a file):
#   healthz, product_get                full stack
#   product_get_traceparent             full stack, the request continues a caller's trace
#   healthz_bare, product_get_bare      http.middleware = off
#   checkout                            POST /api/v1/orders (one line, sandbox card), full
#                                       stack, SQLite: CALLGRIND_ORDERS (default 300) orders
#                                       from 2 customers in turn, each answered 201
# Knobs: CALLGRIND_SCENARIOS, CALLGRIND_REQUESTS, CALLGRIND_OUT (dir; callgrind.out.* kept
# there for callgrind_annotate). Needs valgrind, curl, python3.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${ORDERLY_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/orderly}
[ -x "$bin" ] || { echo "callgrind: no executable at $bin (cargo build --release)" >&2; exit 1; }
n=${CALLGRIND_REQUESTS:-2000}
scenarios=${CALLGRIND_SCENARIOS:-healthz product_get product_get_traceparent healthz_bare product_get_bare}
out=${CALLGRIND_OUT:-$(mktemp -d /tmp/orderly-callgrind.XXXXXX)}
mkdir -p "$out"
work=$(mktemp -d /tmp/orderly-callgrind-data.XXXXXX)
pid=
stop() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    pid=
}
trap 'stop; rm -rf "$work"' EXIT

while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^ORDERLY_' || true)
unset RUST_LOG OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
port=$(python3 "$here/probe.py" port)
base=http://127.0.0.1:$port
export ORDERLY_DATA_DIR=$work/data ORDERLY_HTTP_ADDR=127.0.0.1:$port ORDERLY_LOG_FORMAT=json ORDERLY_LOG_FILTER=info
export ORDERLY_ADMIN_ADDR=127.0.0.1:$(python3 "$here/probe.py" port)
export ORDERLY_GRPC_ADDR=127.0.0.1:0
export ORDERLY_AUTH_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export ORDERLY_RATELIMIT_API_LIMIT=1000000000 ORDERLY_RATELIMIT_CHECKOUT_LIMIT=1000000000
export ORDERLY_AUTH_ACCESS_TOKEN_TTL_SECS=7200
password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
(cd "$work" && printf '%s\n' "$password" | "$bin" user create-admin --email cg@example.com --password-stdin) >"$out/setup.log" 2>&1

wait_ready() {
    for _ in $(seq 1 600); do
        curl -fsS --max-time 2 "$base/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || { tail "$out/server.log" >&2; exit 1; }
        sleep 0.2
    done
    echo "callgrind: server not ready" >&2
    exit 1
}

(cd "$work" && exec "$bin" serve) >"$out/server.log" 2>&1 &
pid=$!
wait_ready
python3 "$here/setup.py" --base "$base" --admin-email cg@example.com --admin-password "$password" \
    --customers 2 --products 1 --out "$out" >>"$out/setup.log"
product=$(cat "$out/product_id.txt")
stop

# GET `path` n times over one keep-alive connection; exits non-zero on an unexpected status.
client() { # path count [header:value]
    python3 - "$port" "$1" "$2" "${3:-}" <<'EOF'
import http.client, sys
port, path, count, header = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
headers = {}
if header:
    k, v = header.split(":", 1)
    headers[k] = v
c = http.client.HTTPConnection("127.0.0.1", int(port))
for _ in range(count):
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"{path}: {r.status}")
EOF
}

# POST an order `count` times over one keep-alive connection, customers in turn; each must be 201.
orders_client() { # count
    python3 - "$port" "$1" "$out/tokens.txt" "$out/skus.txt" <<'EOF'
import http.client, json, sys
port, count = sys.argv[1], int(sys.argv[2])
tokens = [t for t in open(sys.argv[3]).read().split() if t]
skus = [s for s in open(sys.argv[4]).read().split() if s]
c = http.client.HTTPConnection("127.0.0.1", int(port))
for i in range(count):
    body = json.dumps({"line_items": [{"sku": skus[i % len(skus)], "quantity": 1}],
                       "payment": {"card_number": "4242424242424242"}})
    c.request("POST", "/api/v1/orders", body=body,
              headers={"Authorization": "Bearer " + tokens[i % len(tokens)], "Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    if r.status != 201:
        sys.exit(f"order {i}: {r.status}")
EOF
}

measure_checkout() {
    local name=checkout orders=${CALLGRIND_ORDERS:-300}
    (cd "$work" && ORDERLY_HTTP_MIDDLEWARE=full exec valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$out/callgrind.out.$name" "$bin" serve) >"$out/server-$name.log" 2>&1 &
    pid=$!
    wait_ready
    orders_client 30
    callgrind_control -i on "$pid" >/dev/null
    orders_client "$orders"
    callgrind_control -i off "$pid" >/dev/null
    stop
    local total
    total=$(grep '^totals:' "$out/callgrind.out.$name" | tail -1 | awk '{print $2}')
    printf '%-26s %10d instructions/order\n' "$name" $((total / orders))
}

measure() { # name middleware path [header]
    local name=$1 middleware=$2 path=$3 header=${4:-}
    (cd "$work" && ORDERLY_HTTP_MIDDLEWARE=$middleware exec valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$out/callgrind.out.$name" "$bin" serve) >"$out/server-$name.log" 2>&1 &
    pid=$!
    wait_ready
    client "$path" 200 "$header"
    callgrind_control -i on "$pid" >/dev/null
    client "$path" "$n" "$header"
    callgrind_control -i off "$pid" >/dev/null
    stop
    local total
    total=$(grep '^totals:' "$out/callgrind.out.$name" | tail -1 | awk '{print $2}')
    printf '%-26s %10d instructions/request\n' "$name" $((total / n))
}

tp=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
for s in $scenarios; do
    case $s in
        healthz) measure healthz full /healthz ;;
        product_get) measure product_get full "/api/v1/products/$product" ;;
        product_get_traceparent) measure product_get_traceparent full "/api/v1/products/$product" "traceparent:$tp" ;;
        healthz_bare) measure healthz_bare off /healthz ;;
        product_get_bare) measure product_get_bare off "/api/v1/products/$product" ;;
        checkout) measure_checkout ;;
        *) echo "callgrind: unknown scenario $s" >&2; exit 1 ;;
    esac
done
echo "callgrind: profiles in $out (callgrind_annotate --inclusive=yes $out/callgrind.out.product_get)"
