#!/usr/bin/env bash
# Tests of the live gateway (crates/gateway, docs/gateway.md) against real Mosquitto brokers:
#  1. cargo test -p melv-gateway: unit tests, and the integration tests that start their own
#     Mosquitto on free ports (broker outage, gateway kill -9 and restarts, exactly-once after
#     de-duplication with no gaps; a soak of three gateways over a simulated week);
#  2. a paho-mqtt client (PyPI, venv .venv-gw or $MELV_GW_VENV) against the machine's broker on
#     127.0.0.1:1883, started here if it is not running: JSON schemas of every topic, settings
#     acknowledgements, Home Assistant discovery conventions, graceful shutdown;
#  3. cargo test -p melv-cli --test cloud_mqtt: gateways -> a private Mosquitto -> `melv ingest`
#     workers -> the cloud's store, exactly once after broker restarts and kill -9 of gateways and
#     workers, a broker WITHOUT persistence SIGKILLed three times mid-run (issue 15: the cloud's
#     end-to-end ack, docs/gateway.md 5), a simulated week from three gateways, settings
#     acked/rejected, rejects; on SQLite, then the *_postgres tests on a private PostgreSQL cluster
#     started here on a free port (or $MELV_TEST_POSTGRES) and removed at exit.
# Prints "gateway-tests: N passed, M failed"; exit 0 only when every test passed. About 2 min once built.
set -uo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "gateway-tests: 0 passed, 1 failed ($*)"
    exit 1
}

command -v mosquitto >/dev/null || fail "mosquitto is not installed (Debian package mosquitto)"
if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
    # The machine's start command (/work/.library/env/machines/rust-svc.md).
    mosquitto -d -c /etc/mosquitto/mosquitto.conf || fail "cannot start mosquitto"
    for _ in $(seq 1 50); do
        (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break
        sleep 0.1
    done
fi

VENV="${MELV_GW_VENV:-.venv-gw}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || fail "cannot create venv $VENV"
fi
if ! "$VENV/bin/python" -c "import paho.mqtt, jsonschema" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet paho-mqtt jsonschema || fail "pip install paho-mqtt jsonschema"
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --quiet -p melv-gateway --bins || fail "cargo build -p melv-gateway"

PASSED=0
FAILED=0
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT

cargo test --quiet -p melv-gateway 2>&1 | tee "$LOG" | grep -E "^test result|FAILED|panicked" || true
while read -r p f; do
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
done < <(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p' "$LOG")
grep -q "^test result" "$LOG" || FAILED=$((FAILED + 1))  # did not even compile

"$VENV/bin/python" crates/gateway/tests/python/check_mqtt.py \
    --gateway-cmd "$CARGO_TARGET_DIR/debug/melv-gateway" --site examples/self-consumption.toml \
    2>/dev/null | tee "$LOG"
PASSED=$((PASSED + $(grep -c '^ok ' "$LOG")))
FAILED=$((FAILED + $(grep -c '^FAIL ' "$LOG")))
grep -q "^python checks:" "$LOG" || FAILED=$((FAILED + 1))

# Counts "test result" lines of a cargo test log into PASSED/FAILED (a log without one: 1 failure).
count_cargo() {
    local found=0
    while read -r p f; do
        PASSED=$((PASSED + p))
        FAILED=$((FAILED + f))
        found=1
    done < <(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p' "$1")
    [ "$found" -eq 1 ] || FAILED=$((FAILED + 1))
}

# The cloud's MQTT ingest, end to end: on SQLite...
cargo test --quiet -p melv-cli --test cloud_mqtt -- --skip postgres 2>&1 | tee "$LOG" | grep -E "^test result|FAILED|panicked|broker SIGKILL" || true
count_cargo "$LOG"
# ... then the PostgreSQL variant only, on a private PostgreSQL cluster of this run (a free port,
# a temporary directory, removed at exit), never the machine's shared one; MELV_TEST_POSTGRES
# overrides it. The scratch databases melv_cli_PID_N go with the cluster.
source scripts/lib/private-postgres.sh
trap 'rm -f "$LOG"; stop_private_postgres' EXIT
if [ -n "${MELV_TEST_POSTGRES:-}" ]; then
    PG_URL=$MELV_TEST_POSTGRES
elif ! start_private_postgres; then
    echo "cannot start a private PostgreSQL cluster (Debian package postgresql)"
    FAILED=$((FAILED + 1))
    PG_URL=""
fi
if [ -n "$PG_URL" ]; then
    MELV_TEST_POSTGRES="$PG_URL" cargo test --quiet -p melv-cli --test cloud_mqtt postgres 2>&1 \
        | tee "$LOG" | grep -E "^test result|FAILED|panicked|skipped|broker SIGKILL" || true
    count_cargo "$LOG"
    for db in $(psql "$PG_URL" -Atc "SELECT datname FROM pg_database WHERE datname ~ '^melv_cli_[0-9]+_[0-9]+$'" 2>/dev/null); do
        psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db" || true
    done
fi

echo "gateway-tests: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
