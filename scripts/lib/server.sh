# Sourced (from the repository root) by scripts/check-*.sh, which define `fail` first:
# a scratch directory removed on exit together with every process listed in `pids`, free
# loopback ports, the orderly binary, and a bounded wait for a server's /readyz.

scratch=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Sets `orderly`: $ORDERLY_BIN when given (a binary built already), else the debug build,
# built now.
orderly_binary() {
  if [ -n "${ORDERLY_BIN:-}" ]; then
    orderly=$ORDERLY_BIN
  else
    cargo build --locked -q
    local target_dir
    target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    orderly="$target_dir/debug/orderly"
  fi
}

# wait_ready BASE PID LOG SECONDS: returns once BASE/readyz answers 200; fails (printing
# LOG) if PID exits or SECONDS pass first.
wait_ready() {
  local base=$1 pid=$2 log=$3 deadline=$((SECONDS + $4))
  until curl -fsS --max-time 2 "$base/readyz" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; fail "orderly exited"; }
    [ "$SECONDS" -lt "$deadline" ] || { cat "$log" >&2; fail "orderly not ready in $4 s"; }
    sleep 0.2
  done
}
