#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace (unit, property, scenario and CLI tests, and each
# benchmark once with tiny inputs so they cannot rot), then the interoperability tests that use real
# third-party clients (python-can and cantools for the CAN link). It installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."

# The MQTT tests (crates/gateway/tests, crates/cli/tests/cloud_mqtt.rs) start their own Mosquitto and
# use its command-line clients; install them when missing (Debian packages).
if ! command -v mosquitto >/dev/null || ! command -v mosquitto_sub >/dev/null || ! command -v mosquitto_passwd >/dev/null; then
  echo "== installing mosquitto and mosquitto-clients"
  apt-get update -qq > /dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients > /dev/null
fi

# The invariants the build enforces (issue 12): formatting, clippy with warnings as errors (which
# includes the clippy.toml bans on clocks, IO and unseeded randomness in the pure crates), and no
# function over 120 lines in crates/*/src.
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (workspace, all targets, -D warnings)"
cargo clippy --workspace --all-targets -- -D warnings
echo "== function lengths (at most 120 lines)"
python3 scripts/fn-lengths.py 120

echo "== cargo test (workspace, all targets)"
cargo test --workspace --all-targets

echo "== cargo test --doc"
cargo test --workspace --doc

for extra in scripts/can-interop.sh scripts/modbus-tests.sh scripts/gateway-tests.sh scripts/cloud-tests.sh; do
  if [ -f "$extra" ]; then
    echo "== $extra"
    bash "$extra"
  fi
done
echo "== all tests passed"
