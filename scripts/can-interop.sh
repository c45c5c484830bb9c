#!/usr/bin/env bash
# Interop test of the CAN link: python-can joins our socketcand server over TCP and cantools
# decodes the demo batteries' frames against crates/can/melv.dbc. Installs python-can and cantools
# into a venv (.venv-can, or $MELV_CAN_VENV). Prints "can-interop: N passed, M failed"; exit 0 only
# when every test passed. About 15 s once built.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "can-interop: 0 passed, 1 failed ($*)"
    exit 1
}

VENV="${MELV_CAN_VENV:-.venv-can}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || fail "cannot create venv $VENV"
fi
if ! "$VENV/bin/python" -c "import can, cantools" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet python-can cantools || fail "pip install python-can cantools"
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --quiet -p melv-can --example can_serve --example can_log || fail "cargo build of the examples"
# The Linux SocketCAN transport cannot run here (no vcan), but it must build (issue 4, item 5).
cargo build --quiet -p melv-can --features socketcan || fail "cargo build -p melv-can --features socketcan"
SERVE="$CARGO_TARGET_DIR/debug/examples/can_serve"

OUT="$(mktemp)"
DAY="$(mktemp)"
"$CARGO_TARGET_DIR/debug/examples/can_log" "$DAY" >/dev/null || fail "writing the simulated day's CAN log"
# The simulator through the codec (issue 4, item 6): a one-day, two-battery run with --can-log.
SIMLOG="$(mktemp)"
cargo build --quiet -p melv-cli || fail "cargo build -p melv-cli"
"$CARGO_TARGET_DIR/debug/melv" simulate examples/tou-two-batteries.toml --days 1 --step 60s --quiet \
    --can-log "$SIMLOG" --json /dev/null >/dev/null || fail "melv simulate --can-log"
"$SERVE" --addr 127.0.0.1:0 --units 1,2 --seconds 60 >"$OUT" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; rm -f "$OUT" "$DAY" "$SIMLOG"' EXIT

ADDR=""
for _ in $(seq 1 100); do
    ADDR="$(sed -n 's/^listening on //p' "$OUT")"
    [ -n "$ADDR" ] && break
    kill -0 "$PID" 2>/dev/null || fail "server exited: $(cat "$OUT")"
    sleep 0.1
done
[ -n "$ADDR" ] || fail "server did not start within 10 s"

RC=0
"$VENV/bin/python" tests/python/test_can_interop.py \
    --host "${ADDR%:*}" --port "${ADDR##*:}" --dbc crates/can/melv.dbc --log "$DAY" --sim-log "$SIMLOG" \
    --melv "$CARGO_TARGET_DIR/debug/melv" || RC=1
# The live gateway on the bus (issue 15): a duplicate address detected, a dropped socketcand server
# survived. It starts its own server and gateway on free ports (no broker: the uplink just retries).
"$VENV/bin/python" tests/python/test_can_gateway.py --melv "$CARGO_TARGET_DIR/debug/melv" \
    --serve "$SERVE" --dbc crates/can/melv.dbc || RC=1
exit $RC
