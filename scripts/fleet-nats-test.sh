#!/usr/bin/env bash
# Issue 18: a fleet on NATS JetStream. Starts a PRIVATE nats-server with JetStream on a free port and
# its own store directory, three `melv fleet-worker`s and a coordinator; kills one worker with -9
# while it runs a task and the coordinator too; restarts the coordinator, which resumes from the
# streams; then checks that the rows are identical, bit for bit, to the same fleet run on this
# machine's cores, that the killed worker's task was delivered again, and that the restarted
# coordinator did not publish the tasks again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nats-server >/dev/null; then
  echo "== installing nats-server (Debian package)"
  apt-get update -qq > /dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server > /dev/null
fi

echo "== building melv"
cargo build -q -p melv-cli
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
MELV="$TARGET/debug/melv"
FLEET=crates/fleet/tests/data/nats-small.toml

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="nats://127.0.0.1:$PORT"
nats-server -js -a 127.0.0.1 -p "$PORT" -sd "$WORK/js" > "$WORK/nats.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null && break
  sleep 0.1
done

echo "== the same fleet on this machine's cores"
"$MELV" fleet "$FLEET" --threads 2 --quiet --csv "$WORK/local.csv" --json "$WORK/local.json" 2>/dev/null

echo "== three workers on $URL"
for w in 1 2 3; do
  "$MELV" fleet-worker --nats "$URL" --name "w$w" --threads 1 --ack-wait 3 > "$WORK/w$w.log" 2>&1 &
  PIDS+=($!)
  eval "W$w=$!"
done

# Waits until FILE has at least N lines matching PATTERN (at most 120 s).
wait_for() {
  for _ in $(seq 1200); do
    [ "$(grep -c "$2" "$1" 2>/dev/null || true)" -ge "$3" ] && return 0
    sleep 0.1
  done
  echo "timed out waiting for $3 x '$2' in $1"; cat "$1"; exit 1
}

echo "== coordinator, killed with -9 once the workers are busy"
"$MELV" fleet "$FLEET" --nats "$URL" --ack-wait 3 --quiet --json "$WORK/first.json" > "$WORK/c1.log" 2>&1 &
C1=$!
PIDS+=($C1)
wait_for "$WORK/w1.log" "chunk" 1
kill -9 "$C1"

echo "== worker 1 killed with -9 in the middle of its second task"
wait_for "$WORK/w1.log" "chunk" 2
kill -9 "$W1"

echo "== coordinator restarted: it resumes from the streams"
"$MELV" fleet "$FLEET" --nats "$URL" --ack-wait 3 --quiet --csv "$WORK/nats.csv" --json "$WORK/nats.json" 2> "$WORK/c2.log"

echo "== checks"
cmp "$WORK/local.csv" "$WORK/nats.csv"
echo "per-site rows identical to the local run ($(($(wc -l < "$WORK/local.csv") - 1)) sites)"
grep -h "delivery [2-9]" "$WORK/w2.log" "$WORK/w3.log" | head -3
if ! grep -q "delivery [2-9]" "$WORK/w2.log" "$WORK/w3.log"; then
  echo "no task was delivered again after worker 1 died"; exit 1
fi
python3 - "$WORK/local.json" "$WORK/nats.json" <<'EOF'
import json, sys
local, nats = (json.load(open(p)) for p in sys.argv[1:3])
assert nats["mode"] == "nats" and local["mode"] == "local"
for k in ("sites", "site_years", "distributions", "templates", "alert_codes"):
    assert local[k] == nats[k], (k, local[k], nats[k])
n = nats["nats"]
# The first coordinator published tasks before it was killed (a worker ran one); the second
# published only those that were neither done nor queued, not the whole fleet again (20 tasks).
assert n["tasks_published"] < 20, n
print("distributions identical; workers", n["workers"], "duplicates dropped", n["duplicates"],
      "tasks republished by the restarted coordinator", n["tasks_published"])
EOF
echo "== fleet NATS test passed"
