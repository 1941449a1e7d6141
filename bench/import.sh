#!/usr/bin/env bash
# Import throughput and memory over the API: generates a products CSV of IMPORT_MB
# megabytes (default 200, generic format), uploads it to `POST /api/v1/imports/products`
# of a freshly started server, polls the job's progress, and prints rows/s and the
# server's RSS peak against its idle RSS (acceptance: peak within 50 MB of idle; over it, the
# script exits 3 right after the import's report, and 1 if the job did not succeed, so CI's
# small run guards both). Then
# exports every imported product (`GET /api/v1/exports/products`, CSV) from the same server:
# rows/s, and the RSS peak during the export (constant memory: it must not grow with the
# table's size). IMPORT_EXPORT=0 skips the export.
#
#   bench/import.sh                         SQLite, release build if present, else debug
#   IMPORT_DB=pg bench/import.sh            PostgreSQL (BENCH_PG_URL, a fresh database)
#   IMPORT_MB=5 bench/import.sh             a smoke run
#   ORDERLY_BIN=path bench/import.sh        a given build
# Needs curl, python3 (and psql for PostgreSQL).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=${ORDERLY_BIN:-}
if [ -z "$bin" ]; then
    if [ -x "$target/release/orderly" ]; then bin=$target/release/orderly; else bin=$target/debug/orderly; fi
fi
[ -x "$bin" ] || { echo "import: no executable at $bin (cargo build --release)" >&2; exit 1; }
mb=${IMPORT_MB:-200}
backend=${IMPORT_DB:-sqlite}
pg=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
tag=$(python3 -c 'import secrets; print(secrets.token_hex(6))')
dbname=orderly_bench_import_$tag
work=$(mktemp -d /tmp/orderly-import-bench.XXXXXX)
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
cleanup() {
    stop
    if [ "$backend" = pg ]; then psql -q "$pg" -c "DROP DATABASE IF EXISTS $dbname WITH (FORCE)" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^ORDERLY_' || true)
export ORDERLY_DATA_DIR=$work/data ORDERLY_LOG_FILTER=warn
export ORDERLY_HTTP_ADDR=127.0.0.1:$(python3 "$here/probe.py" port)
export ORDERLY_ADMIN_ADDR=127.0.0.1:$(python3 "$here/probe.py" port)
export ORDERLY_GRPC_ADDR=127.0.0.1:$(python3 "$here/probe.py" port)
export ORDERLY_AUTH_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export ORDERLY_IMPORTS_MAX_UPLOAD_BYTES=$(( (mb + 64) * 1024 * 1024 ))
export ORDERLY_JOBS_POLL_INTERVAL_MS=100
if [ "$backend" = pg ]; then
    psql -q "$pg" -c "CREATE DATABASE $dbname" >/dev/null
    export ORDERLY_DATABASE_URL=${pg%/*}/$dbname
fi
base=http://$ORDERLY_HTTP_ADDR

# ~110-byte rows: sku,name,description,category,price,currency,on_hand
python3 - "$work/products.csv" "$mb" <<'PY'
import sys
path, mb = sys.argv[1], int(sys.argv[2])
limit = mb * 1024 * 1024
with open(path, "w", buffering=1 << 20) as f:
    f.write("sku,name,description,category,price,currency,on_hand\n")
    i, size = 0, 0
    while size < limit:
        row = (f"BENCH-{i:09d},Bench product {i},A generated product for the import bench,"
               f"Bench/Cat{i % 20},{i % 997}.{i % 100:02d},USD,{i % 50}\n")
        f.write(row)
        size += len(row)
        i += 1
PY
rows=$(( $(wc -l < "$work/products.csv") - 1 ))
bytes=$(stat -c %s "$work/products.csv")

"$bin" migrate >/dev/null
echo 'bench-import-passphrase-1' | "$bin" user create-admin --email bench@example.com --password-stdin >/dev/null
"$bin" serve >"$work/orderly.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do curl -fs "$base/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
token=$(curl -fs "$base/api/v1/auth/login" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"bench-import-passphrase-1"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
sleep 1
idle_kib=$(python3 "$here/probe.py" mem "$pid" | awk '{print $1}')

start=$(date +%s.%N)
job=$(curl -fsS -X POST "$base/api/v1/imports/products" -H "authorization: Bearer $token" \
    -H 'content-type: text/csv' -T "$work/products.csv" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
uploaded=$(date +%s.%N)
peak_kib=$idle_kib
state=queued
while :; do
    state=$(curl -fs "$base/api/v1/jobs/$job" -H "authorization: Bearer $token" \
        | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["state"], j["done"])')
    rss=$(python3 "$here/probe.py" mem "$pid" | awk '{print $1}')
    if [ "$rss" -gt "$peak_kib" ]; then peak_kib=$rss; fi
    case $state in succeeded*|failed*|cancelled*) break ;; esac
    kill -0 "$pid" 2>/dev/null || { echo "import: orderly exited:" >&2; cat "$work/orderly.log" >&2; exit 1; }
    sleep 0.5
done
end=$(date +%s.%N)
os_peak_kib=$(python3 "$here/probe.py" mem "$pid" | awk '{print $2}')
python3 - "$rows" "$bytes" "$start" "$uploaded" "$end" "$idle_kib" "$peak_kib" "$os_peak_kib" "$backend" "$bin" "$state" <<'PY'
import sys
rows, size = int(sys.argv[1]), int(sys.argv[2])
start, uploaded, end = map(float, sys.argv[3:6])
idle, peak, os_peak = (int(x) / 1024 for x in sys.argv[6:9])
backend, binary, state = sys.argv[9], sys.argv[10], sys.argv[11]
secs = end - start
print(f"import over the API ({backend}, {binary}): {rows:,} rows, {size / 2**20:.0f} MiB: {state.split()[0]}")
print(f"  upload {uploaded - start:.1f} s, whole job {secs:.1f} s = {rows / secs:,.0f} rows/s")
print(f"  RSS idle {idle:.1f} MiB, peak sampled {peak:.1f} MiB (+{peak - idle:.1f}), "
      f"process peak (VmHWM) {os_peak:.1f} MiB (+{os_peak - idle:.1f})")
within = (os_peak - idle) * 2**20 <= 50e6
print("  within 50 MB of idle: " + ("yes" if within else "NO"))
sys.exit(0 if within else 3)
PY

case $state in succeeded*) ;; *) echo "import: the job ended ${state%% *}" >&2; exit 1 ;; esac
[ "${IMPORT_EXPORT:-1}" = 1 ] || exit 0
before_kib=$(python3 "$here/probe.py" mem "$pid" | awk '{print $1}')
curl -fsS "$base/api/v1/exports/products?format=csv" -H "authorization: Bearer $token" \
    -o "$work/export.csv" &
curl_pid=$!
export_start=$(date +%s.%N)
export_peak_kib=$before_kib
while kill -0 "$curl_pid" 2>/dev/null; do
    rss=$(python3 "$here/probe.py" mem "$pid" | awk '{print $1}')
    if [ "$rss" -gt "$export_peak_kib" ]; then export_peak_kib=$rss; fi
    sleep 0.2
done
wait "$curl_pid"
export_end=$(date +%s.%N)
exported=$(( $(wc -l < "$work/export.csv") - 1 ))
python3 - "$exported" "$(stat -c %s "$work/export.csv")" "$export_start" "$export_end" "$before_kib" "$export_peak_kib" <<'PY'
import sys
rows, size = int(sys.argv[1]), int(sys.argv[2])
start, end = float(sys.argv[3]), float(sys.argv[4])
before, peak = int(sys.argv[5]) / 1024, int(sys.argv[6]) / 1024
print(f"export of the imported products (CSV): {rows:,} rows, {size / 2**20:.0f} MiB in {end - start:.1f} s "
      f"= {rows / (end - start):,.0f} rows/s")
print(f"  RSS before {before:.1f} MiB, peak sampled during the export {peak:.1f} MiB (+{peak - before:.1f})")
PY
