#!/usr/bin/env bash
# Home Assistant discovery test (issue 15): Home Assistant's own MQTT discovery and energy-dashboard
# validation, installed from PyPI, against what the gateway publishes for it.
# Creates .venv-ha with `homeassistant` (the newest that installs on this Python; 2024.3.3 on 3.11)
# and the requirements of the components the test imports (mqtt, recorder via energy), builds and
# runs `cargo run -p melv-gateway --example ha_payloads` on a two-battery site, and runs
# tests/ha/test_ha_discovery.py on its output. No broker and no Home Assistant instance are needed.
# Prints "ha-tests: N passed, M failed"; exits non-zero on failure.
# Env: CARGO_TARGET_DIR (the caller's).
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-ha
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

fail() { echo "ha-tests: 0 passed, 1 failed ($1)"; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || fail "python3 -m venv"
fi
# The pins are those of homeassistant 2024.3.3's manifests (mqtt: paho-mqtt; recorder: the rest).
"$VENV/bin/python" -c "import homeassistant.components.mqtt.sensor, homeassistant.components.energy.data" 2>/dev/null \
    || "$VENV/bin/pip" install -q "homeassistant==2024.3.3" "paho-mqtt==1.6.1" "SQLAlchemy==2.0.27" \
        "fnv-hash-fast==0.5.0" "psutil-home-assistant==0.0.1" \
    || fail "pip install homeassistant"

cargo run -q -p melv-gateway --example ha_payloads -- examples/tou-two-batteries.toml \
    > "$WORK/payloads.json" 2> "$WORK/example.log" \
    || { cat "$WORK/example.log"; fail "cargo run --example ha_payloads"; }
"$VENV/bin/python" tests/ha/test_ha_discovery.py "$WORK/payloads.json"
