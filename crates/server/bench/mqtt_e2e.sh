#!/usr/bin/env bash
# End-to-end ingest rate of the cloud over MQTT: GATEWAYS `melv gateway` processes at full speed
# (--cycle 60, --speed 1e9: one-minute records as fast as they can be made) -> a private Mosquitto
# configured like deploy/mosquitto/melv.conf -> WORKERS `melv ingest` workers (shared subscription)
# -> the database. Rate = records / (wall time from the gateways' start until the store holds every
# record). Release build.
#
#   bash crates/server/bench/mqtt_e2e.sh sqlite:///tmp/melv-e2e.db [GATEWAYS] [WORKERS] [DAYS]
#   bash crates/server/bench/mqtt_e2e.sh postgres://root@127.0.0.1:5432/melv_e2e [GATEWAYS] [WORKERS] [DAYS]
#
# The database is created afresh (the SQLite file is deleted; the PostgreSQL database is dropped and
# created). Defaults: 4 gateways, 2 workers, 7 simulated days per gateway (10,080 records each).
# GUARD=0 turns the workers' guard sessions off (docs/cloud.md, MQTT ingest).
# Prints one JSON line: {"database", "gateways", "workers", "records", "seconds", "records_per_s", ...}.
set -euo pipefail
cd "$(dirname "$0")/../../.."
DB=${1:?usage: mqtt_e2e.sh DATABASE_URL [GATEWAYS] [WORKERS] [DAYS]}
GATEWAYS=${2:-4}
WORKERS=${3:-2}
DAYS=${4:-7}
GUARD=${GUARD:-60}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p melv-cli
MELV="$CARGO_TARGET_DIR/release/melv"
SITE=examples/self-consumption.toml

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A fresh database.
case "$DB" in
sqlite://*)
    rm -f "${DB#sqlite://}" "${DB#sqlite://}-wal" "${DB#sqlite://}-shm"
    count() { sqlite3 "${DB#sqlite://}" "SELECT (SELECT COUNT(*) FROM telemetry) + (SELECT COUNT(*) FROM events)"; }
    ;;
postgres://*)
    NAME=${DB##*/}
    ADMIN=${DB%/*}/postgres
    psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $NAME" >/dev/null
    psql "$ADMIN" -qc "CREATE DATABASE $NAME" >/dev/null
    count() { psql "$DB" -Atc "SELECT (SELECT COUNT(*) FROM telemetry) + (SELECT COUNT(*) FROM events)"; }
    ;;
*)
    echo "mqtt_e2e.sh: $DB: expected sqlite://PATH or postgres://USER@HOST:PORT/DB" >&2
    exit 2
    ;;
esac

# The sites, through the cloud's own API: a site per gateway, the gateway, its battery (the twin's
# CAN serial, melv_gateway::site::battery_serial: FNV-1a of the gateway id and the slot).
HTTP_PORT=$(free_port)
PASSWORD=bench-password-$RANDOM$RANDOM
MELV_ADMIN_PASSWORD=$PASSWORD "$MELV" serve --listen "127.0.0.1:$HTTP_PORT" --database "$DB" \
    >"$WORK/serve.log" 2>&1 &
SERVE=$!
PIDS+=("$SERVE")
API="http://127.0.0.1:$HTTP_PORT/api"
for _ in $(seq 1 100); do curl -sf "$API/health" >/dev/null && break; sleep 0.1; done
TOKEN=$(curl -sf "$API/login" -H 'content-type: application/json' \
    -d "{\"email\":\"admin@localhost\",\"password\":\"$PASSWORD\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
auth=(-H "authorization: Bearer $TOKEN" -H 'content-type: application/json')
battery_serial() {
    python3 -c '
import sys
h = 0x811C9DC5
for b in sys.argv[1].encode() + bytes([int(sys.argv[2])]):
    h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
print(h)' "$1" "$2"
}
for i in $(seq 1 "$GATEWAYS"); do
    gw=bench-$i
    id=$(curl -sf "${auth[@]}" "$API/sites" \
        -d "{\"name\":\"$gw\",\"phases\":1,\"country\":\"generic\",\"timezone\":\"America/New_York\"}" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    curl -sf "${auth[@]}" "$API/sites/$id/devices" -d "{\"serial\":\"$gw\",\"kind\":\"gateway\"}" >/dev/null
    curl -sf "${auth[@]}" "$API/sites/$id/devices" \
        -d "{\"serial\":\"$(battery_serial "$gw" 0)\",\"kind\":\"battery\"}" >/dev/null
done
kill -TERM "$SERVE"
wait "$SERVE" || true

# The broker, as deploy/mosquitto/melv.conf asks (anonymous, no ACL, its own port and directory).
MQTT_PORT=$(free_port)
mkdir -p "$WORK/broker"
cat >"$WORK/broker/mosquitto.conf" <<EOF
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
user root
persistence true
persistence_location $WORK/broker/
autosave_interval 60
max_queued_messages 1000000
max_queued_bytes 0
max_inflight_messages 1000
max_packet_size 1048576
log_dest none
EOF
mosquitto -c "$WORK/broker/mosquitto.conf" &
PIDS+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null && break; sleep 0.05; done
MQTT=mqtt://127.0.0.1:$MQTT_PORT

WPIDS=()
for w in $(seq 1 "$WORKERS"); do
    "$MELV" ingest --mqtt "$MQTT" --database "$DB" --client-id "bench-w$w" --log-every-s 0 \
        --guard-period-s "$GUARD" >"$WORK/w$w.json" 2>"$WORK/w$w.log" &
    WPIDS+=($!)
    PIDS+=($!)
done
# Every worker subscribed (and swept its fresh guards) before the first record.
for w in $(seq 1 "$WORKERS"); do
    for _ in $(seq 1 100); do grep -q "connected" "$WORK/w$w.log" && break; sleep 0.05; done
done
sleep 1

RUN_FOR=$((DAYS * 86400))
T0=$(date +%s.%N)
GPIDS=()
for i in $(seq 1 "$GATEWAYS"); do
    "$MELV" gateway "$SITE" --mqtt "$MQTT" --gateway-id "bench-$i" --state-dir "$WORK/gw$i" \
        --clock profile --speed 1e9 --cycle 60 --run-for "$RUN_FOR" --flush-timeout 300 --backlog-rate 1e6 \
        >"$WORK/gw$i.json" 2>"$WORK/gw$i.log" &
    GPIDS+=($!)
    PIDS+=($!)
done
for p in "${GPIDS[@]}"; do wait "$p"; done
T_GW=$(date +%s.%N)
RECORDS=0
for i in $(seq 1 "$GATEWAYS"); do
    n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["next_seq"] - 1)' "$WORK/gw$i.json")
    RECORDS=$((RECORDS + n))
done
while [ "$(count)" -lt "$RECORDS" ]; do sleep 0.05; done
T1=$(date +%s.%N)
for p in "${WPIDS[@]}"; do kill -TERM "$p"; done
for p in "${WPIDS[@]}"; do wait "$p" || true; done
STORED=$(count)
python3 - "$DB" "$GATEWAYS" "$WORKERS" "$RECORDS" "$STORED" "$T0" "$T_GW" "$T1" "$GUARD" "$WORK" <<'EOF'
import json, sys
db, gws, workers, records, stored, t0, tgw, t1, guard, work = sys.argv[1:]
workers, gws = int(workers), int(gws)
s = float(t1) - float(t0)
w = [json.load(open(f"{work}/w{i}.json")) for i in range(1, workers + 1)]
print(json.dumps({
    "database": db.split(":")[0], "gateways": gws, "workers": workers, "guard_period_s": float(guard),
    "records": int(records), "stored": int(stored), "seconds": round(s, 2),
    "records_per_s": round(int(records) / s),
    "gateways_done_s": round(float(tgw) - float(t0), 2),
    "batches": sum(x["batches"] for x in w), "duplicates": sum(x["duplicates"] for x in w),
    "rejected": sum(x["rejected"] for x in w),
}))
EOF
