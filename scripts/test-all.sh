#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace (unit, property, scenario and CLI tests, and each
# benchmark once with tiny inputs so they cannot rot), then the interoperability tests that use real
# third-party clients (python-can and cantools for the CAN link). It installs what it needs itself.
set -euo pipefail
cd "$(dirname "$0")/.."

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
