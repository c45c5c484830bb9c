#!/usr/bin/env bash
# Tests of the cloud service (issue 5): Rust tests on SQLite and PostgreSQL, schemathesis against the
# OpenAPI document of a running `melv serve`, and browser tests in headless Debian chromium.
# Prints "cloud-tests: N passed, M failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PASS=0; FAIL=0
step() { # name, command...
  local name=$1; shift
  echo "== $name"
  if "$@"; then PASS=$((PASS + 1)); echo "ok: $name"; else FAIL=$((FAIL + 1)); echo "FAILED: $name"; fi
}

# PostgreSQL: a private cluster of this run (scripts/lib/private-postgres.sh; a free port, a temporary
# directory, removed at exit), never the machine's shared server; MELV_TEST_POSTGRES overrides it.
# Each test creates its own scratch database in it, so runs never collide.
source scripts/lib/private-postgres.sh
SERVER=""
WORK=""
trap '[ -z "$SERVER" ] || kill $SERVER 2>/dev/null; [ -z "$WORK" ] || rm -rf "$WORK"; stop_private_postgres' EXIT
if [ -n "${MELV_TEST_POSTGRES:-}" ]; then
  PG_URL=$MELV_TEST_POSTGRES
elif ! start_private_postgres; then
  echo "cannot start a private PostgreSQL cluster (Debian package postgresql)"
  echo "cloud-tests: 0 passed, 1 failed"
  exit 1
fi

# (The SQLite variant runs in the workspace's `cargo test`; here the same tests run again with PostgreSQL.)
step "rust tests (SQLite + PostgreSQL)" env MELV_TEST_POSTGRES="$PG_URL" cargo test -q -p melv-store -p melv-server
# The tests' scratch databases (melv_store_PID_N, melv_server_PID_N) are dropped once the run is over.
for db in $(psql "$PG_URL" -Atc "SELECT datname FROM pg_database WHERE datname ~ '^melv_(store|server)_[0-9]+_[0-9]+$'" 2>/dev/null); do
  psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db" || true
done

# A running service for schemathesis and the browser.
cargo build -q -p melv-cli || { echo "cloud-tests: 0 passed, 1 failed"; exit 1; }
WORK=$(mktemp -d)
PORT=${MELV_TEST_PORT:-18080}
export MELV_ADMIN_PASSWORD=admin-pass-$RANDOM$RANDOM
"$CARGO_TARGET_DIR/debug/melv" serve --listen "127.0.0.1:$PORT" --database "sqlite://$WORK/cloud.db" > "$WORK/serve.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/api/health" > /dev/null && break; sleep 0.2; done
BASE="http://127.0.0.1:$PORT"

# Gateway hijack over a real broker: its own `melv serve` and Mosquitto on free ports (issue 16 item 1).
step "gateway hijack over MQTT" env MELV="$CARGO_TARGET_DIR/debug/melv" bash tests/api/hijack-mqtt.sh

step "sign-in memory bound (RSS)" env MELV="$CARGO_TARGET_DIR/debug/melv" bash tests/api/login-memory.sh

step "schemathesis (no 5xx)" env BASE="$BASE" ADMIN_PASSWORD="$MELV_ADMIN_PASSWORD" bash tests/api/schemathesis.sh

browser_run() {
  if ! command -v chromium > /dev/null; then
    # A fresh machine has no package lists yet (machine notes: run apt-get update once first).
    apt-get update -qq > /dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null || return 1
  fi
  (cd tests/web && { [ -d node_modules/playwright-core ] || npm install --no-audit --no-fund --silent; }) || return 1
  (cd tests/web && BASE=$BASE ADMIN_EMAIL=admin@localhost ADMIN_PASSWORD=$MELV_ADMIN_PASSWORD node e2e.mjs "$WORK")
}
step "browser tests (chromium)" browser_run

echo "cloud-tests: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
