#!/usr/bin/env bash
# SunSpec Modbus TCP end-to-end test: pysunspec2 and pymodbus (PyPI) against the melv-modbus example server, then
# against the live gateway (`melv gateway ... --modbus`).
# Creates .venv-modbus, installs pysunspec2 and pymodbus, builds and starts
# `cargo run -p melv-modbus --example sim_server`, runs tests/sunspec/test_sunspec.py.
# Prints "modbus-tests: N passed, M failed"; exits non-zero on failure.
# Env: PORT (15020), WATCHDOG_S (8), CARGO_TARGET_DIR (the caller's).
set -uo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-15020}"
WATCHDOG_S="${WATCHDOG_S:-8}"
VENV=.venv-modbus
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "modbus-tests: 0 passed, 1 failed ($1)"; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || fail "python3 -m venv"
fi
"$VENV/bin/python" -c "import sunspec2, pymodbus" 2>/dev/null \
    || "$VENV/bin/pip" install -q pysunspec2 "pymodbus==3.16.1" || fail "pip install pysunspec2 pymodbus"

cargo build -q -p melv-modbus --example sim_server || fail "cargo build"
EXE="${CARGO_TARGET_DIR:-target}/debug/examples/sim_server"
[ -x "$EXE" ] || fail "no $EXE"
"$EXE" --listen "127.0.0.1:$PORT" --status "$WORK/status.json" --watchdog-s "$WATCHDOG_S" \
    > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 50); do
    [ -f "$WORK/status.json" ] && break
    sleep 0.2
done
[ -f "$WORK/status.json" ] || { cat "$WORK/server.log"; fail "server did not start"; }

timeout 300 "$VENV/bin/python" tests/sunspec/test_sunspec.py 127.0.0.1 "$PORT" "$WORK/status.json" "$WATCHDOG_S"
rc=$?
if [ $rc -ne 0 ]; then
    echo "--- server log"; tail -n 40 "$WORK/server.log"
fi

# The same server inside the live gateway: `melv gateway SITE --modbus ADDR` (issue 8, item 1). The
# broker address is unreachable on purpose, so that telemetry stays in the gateway's queue, which the
# test reads to compare the SunSpec values with the gateway's own.
GW_PORT=$((PORT + 1))
cargo build -q -p melv-cli || fail "cargo build -p melv-cli"
MELV="${CARGO_TARGET_DIR:-target}/debug/melv"
"$MELV" gateway examples/self-consumption.toml --modbus "127.0.0.1:$GW_PORT" --mqtt mqtt://127.0.0.1:1 \
    --speed 60 --run-for 7200 --state-dir "$WORK/gw" > "$WORK/gateway.log" 2>&1 &
GW_PID=$!
for _ in $(seq 1 50); do
    grep -q "SunSpec Modbus TCP on" "$WORK/gateway.log" 2>/dev/null && break
    sleep 0.2
done
timeout 60 "$VENV/bin/python" tests/sunspec/test_gateway_scan.py 127.0.0.1 "$GW_PORT" "$WORK/gw/queue.sqlite"
rc_gw=$?
kill "$GW_PID" 2>/dev/null; wait "$GW_PID" 2>/dev/null
if [ $rc_gw -ne 0 ]; then
    echo "--- gateway log"; tail -n 40 "$WORK/gateway.log"
fi
[ $rc -eq 0 ] && [ $rc_gw -eq 0 ]
