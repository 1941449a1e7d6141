#!/usr/bin/env bash
# A real S3-compatible server for the test suite: moto's server (PyPI `moto[server]`, pinned)
# on a free loopback port, with one bucket, stopped when its owner exits.
#
# Sourced (by .ci/run):   source scripts/s3-for-tests.sh && s3_for_tests_start
#   exports ORDERLY_TEST_S3_URL=s3://orderly-test?endpoint=http://127.0.0.1:PORT&…, so the
#   tests that follow run their file storage against it (tests/api/helpers.rs gives each
#   test a prefix of its own). The server stops when the sourcing shell exits, whatever
#   traps that shell sets later (a watchdog follows the shell's pid).
# Run directly:           bash scripts/s3-for-tests.sh cargo test --test api images::
#   runs the command with ORDERLY_TEST_S3_URL set, then stops the server.
#
# The venv lives under ${XDG_CACHE_HOME:-$HOME/.cache}/orderly-ci/moto-<version> and is
# reused. Nothing listens beyond 127.0.0.1; the credentials are moto's dummies.

S3_FOR_TESTS_MOTO_VERSION="${S3_FOR_TESTS_MOTO_VERSION:-5.2.5}"

s3_for_tests_start() {
  local cache venv port owner bucket=orderly-test log
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/orderly-ci"
  venv="$cache/moto-$S3_FOR_TESTS_MOTO_VERSION"
  mkdir -p "$cache"
  if ! "$venv/bin/moto_server" --help >/dev/null 2>&1; then
    python3 -m venv "$venv" || { echo "s3-for-tests: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; return 1; }
    timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$S3_FOR_TESTS_MOTO_VERSION" \
      || { echo "s3-for-tests: pip install moto[server]==$S3_FOR_TESTS_MOTO_VERSION failed" >&2; return 1; }
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  log=$(mktemp)
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  S3_FOR_TESTS_PID=$!
  owner=$$
  # Stops the server when the owning shell is gone, even if its EXIT trap was replaced.
  ( trap '' HUP; while kill -0 "$owner" 2>/dev/null && kill -0 "$S3_FOR_TESTS_PID" 2>/dev/null; do sleep 2; done
    kill "$S3_FOR_TESTS_PID" 2>/dev/null; rm -f "$log" ) >/dev/null 2>&1 &
  local ok=""
  for _ in $(seq 1 100); do
    if curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then ok=1; break; fi
    kill -0 "$S3_FOR_TESTS_PID" 2>/dev/null || break
    sleep 0.2
  done
  [ -n "$ok" ] || { cat "$log" >&2; echo "s3-for-tests: moto_server did not start" >&2; return 1; }
  curl -fsS --max-time 10 -X PUT "http://127.0.0.1:$port/$bucket" -o /dev/null \
    || { echo "s3-for-tests: could not create bucket $bucket" >&2; return 1; }
  export ORDERLY_TEST_S3_URL="s3://$bucket?endpoint=http://127.0.0.1:$port&allow_http=true&region=us-east-1&access_key_id=test&secret_access_key=test"
  echo "s3-for-tests: moto $S3_FOR_TESTS_MOTO_VERSION on 127.0.0.1:$port (pid $S3_FOR_TESTS_PID), bucket $bucket"
}

s3_for_tests_stop() {
  [ -n "${S3_FOR_TESTS_PID:-}" ] && kill "$S3_FOR_TESTS_PID" 2>/dev/null
  unset ORDERLY_TEST_S3_URL S3_FOR_TESTS_PID
  return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  s3_for_tests_start
  trap s3_for_tests_stop EXIT
  if [ $# -gt 0 ]; then "$@"; else echo "ORDERLY_TEST_S3_URL=$ORDERLY_TEST_S3_URL (Ctrl-C stops it)"; wait "$S3_FOR_TESTS_PID"; fi
fi
