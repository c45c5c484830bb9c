#!/usr/bin/env bash
# Issue 16 item 1 over a real broker: a second installer who knows a gateway's serial gets neither
# its telemetry nor its settings channel. Starts its own `melv serve` (SQLite, with an ingest worker
# and the broker password file) and its own Mosquitto on free ports, configured with
# deploy/mosquitto/acl and the password file the cloud writes. Prints "hijack-mqtt: N passed, M failed".
# Usage: MELV=target/debug/melv bash tests/api/hijack-mqtt.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MELV=${MELV:-$ROOT/target/debug/melv}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"; }
trap cleanup EXIT
PASS=0; FAIL=0
ok() { if eval "$2"; then PASS=$((PASS + 1)); echo "ok: $1"; else FAIL=$((FAIL + 1)); echo "FAILED: $1"; fi; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
HTTP=$(free_port); MQ=$(free_port); BASE="http://127.0.0.1:$HTTP"
INGEST_PW=ingest-$RANDOM$RANDOM; ADMIN_PW=admin-$RANDOM$RANDOM

mosquitto_passwd -c -b "$WORK/service" melv-ingest "$INGEST_PW" || exit 1
MELV_ADMIN_PASSWORD=$ADMIN_PW MELV_MQTT_PASSWORD=$INGEST_PW "$MELV" serve --listen "127.0.0.1:$HTTP" \
  --database "sqlite://$WORK/cloud.db" --mosquitto-passwd "$WORK/passwd" --mosquitto-passwd-include "$WORK/service" \
  --mqtt "mqtt://melv-ingest@127.0.0.1:$MQ" --mqtt-client-id hijack-test > "$WORK/serve.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do curl -sf "$BASE/api/health" > /dev/null && break; sleep 0.1; done
cat > "$WORK/mosquitto.conf" <<EOF
per_listener_settings false
# (run as root, Mosquitto would switch to the mosquitto user, who cannot read this private directory)
user $(id -un)
listener $MQ 127.0.0.1
allow_anonymous false
password_file $WORK/passwd
acl_file $ROOT/deploy/mosquitto/acl
persistence false
log_dest file $WORK/mosquitto.log
EOF
mosquitto -c "$WORK/mosquitto.conf" &
MOSQ=$!; PIDS+=($MOSQ)
reload() { kill -HUP "$MOSQ"; sleep 0.5; }

j() { python3 -c "import sys,json;v=json.load(sys.stdin);print(eval(sys.argv[1]))" "$1"; }
api() { # token method path [body]
  local t=$1 m=$2 p=$3; shift 3
  curl -s -X "$m" -H 'content-type: application/json' -H "Authorization: Bearer $t" "$@" "$BASE$p"
}
status() { curl -s -o /dev/null -w '%{http_code}' -X "$2" -H 'content-type: application/json' -H "Authorization: Bearer $1" ${4:+-d "$4"} "$BASE$3"; }
ADMIN=$(curl -s -H 'content-type: application/json' -d "{\"email\":\"admin@localhost\",\"password\":\"$ADMIN_PW\"}" "$BASE/api/login" | j 'v["token"]')
for who in alice mallory; do
  api "$ADMIN" POST /api/accounts -d "{\"email\":\"$who@example.com\",\"name\":\"$who\",\"password\":\"password-$who\",\"role\":\"installer\"}" > /dev/null
done
login() { curl -s -H 'content-type: application/json' -d "{\"email\":\"$1@example.com\",\"password\":\"password-$1\"}" "$BASE/api/login" | j 'v["token"]'; }
ALICE=$(login alice); MALLORY=$(login mallory)
site() { api "$1" POST /api/sites -d "{\"name\":\"$2\",\"phases\":1,\"country\":\"DE\",\"timezone\":\"UTC\"}" | j 'v["id"]'; }
SA=$(site "$ALICE" "Alice site"); SM=$(site "$MALLORY" "Mallory site"); SM2=$(site "$MALLORY" "Mallory 2")
# The code as the label shows it is grouped (7K2M-9QXD-...); the broker password is its canonical
# form without dashes (what the gateway sends); the cloud takes either.
claim() { "$MELV" gateway --state-dir "$WORK/$1" --gateway-id "$1" --print-claim | j 'v["claim_code"].replace("-", "")'; }
CODE_A=$(claim GW-A); CODE_M=$(claim GW-M); CODE_S=$(claim GW-S)
bind() { status "$1" POST "/api/sites/$2/devices" "{\"serial\":\"$3\",\"kind\":\"gateway\",\"claim_code\":\"$4\"}"; }
ok "the real installer binds GW-A with its claim code" '[ "$(bind "$ALICE" "$SA" GW-A "$CODE_A")" = 201 ]'
ok "a second installer who knows the serial cannot bind it" '[ "$(bind "$MALLORY" "$SM" GW-A "$CODE_M")" = 409 ]'
ok "the second installer binds his own gateway GW-M" '[ "$(bind "$MALLORY" "$SM" GW-M "$CODE_M")" = 201 ]'
ok "a squatter binds GW-S (not yet bound) with a made-up code" '[ "$(bind "$MALLORY" "$SM2" GW-S ABCD-EFGH-JKMN-PQRS-TVWX)" = 201 ]'
api "$MALLORY" PUT "/api/sites/$SM2/settings" -d '{"mode":"off_grid_backup","reserve_soc":0.77}' > /dev/null
ok "the cloud wrote the broker's password file (service account + 3 gateways)" \
  '[ "$(cut -d: -f1 "$WORK/passwd" | sort | tr "\n" " ")" = "GW-A GW-M GW-S melv-ingest " ]'
reload

# The second installer, signed in to the broker as his own gateway, listens to everything of GW-A.
timeout 12 mosquitto_sub -p "$MQ" -u GW-M -P "$CODE_M" -t 'melv/v1/GW-A/#' -t 'melv/v1/+/telemetry' -t '#' -v > "$WORK/spy.out" 2>&1 &
SPY=$!
# ... and forges a record in GW-A's name.
mosquitto_pub -p "$MQ" -u GW-M -P "$CODE_M" -q 1 -t melv/v1/GW-A/telemetry -m '{"forged":true}' 2> "$WORK/forge.err"
# The real gateway runs with its claim code as its broker password (no MELV_MQTT_PASSWORD).
( cd "$WORK" && env -u MELV_MQTT_PASSWORD "$MELV" gateway --gateway-id GW-A --state-dir "$WORK/GW-A" \
    --mqtt "mqtt://GW-A@127.0.0.1:$MQ" --speed 600 --run-for 900 --clock profile > "$WORK/gwa.json" 2> "$WORK/gwa.log" )
ok "the real gateway ran and its records were acknowledged, signed in with its claim code" \
  '[ "$(j "v[\"records_acked\"]" < "$WORK/gwa.json")" -gt 0 ] && ! grep -qi "not authori" "$WORK/gwa.log"'
last_seen() { api "$1" GET "/api/sites/$2" | j 'v["last_seen_ms"]'; }
for _ in $(seq 1 50); do [ "$(last_seen "$ALICE" "$SA")" != None ] && break; sleep 0.2; done
ok "the real gateway's telemetry reached the real installer's site" '[ "$(last_seen "$ALICE" "$SA")" != None ]'
ok "the second installer's site got no telemetry" '[ "$(last_seen "$MALLORY" "$SM")" = None ]'
# GW-A's settings channel: the cloud publishes (retained) what Alice saves; only GW-A reads it.
api "$ALICE" PUT "/api/sites/$SA/settings" -d '{"mode":"self_consumption","reserve_soc":0.2}' > /dev/null
sleep 3
timeout 3 mosquitto_sub -p "$MQ" -u GW-A -P "$CODE_A" -t melv/v1/GW-A/settings -C 1 > "$WORK/gwa-settings.out" 2>&1
ok "the real gateway reads its own settings channel" 'grep -q "reserve_soc" "$WORK/gwa-settings.out"'
wait "$SPY" 2>/dev/null
ok "the spy saw nothing of GW-A (telemetry, settings, status)" '! grep -q "GW-A" "$WORK/spy.out"'
ok "the forged record was not ingested" '! grep -q "forged" "$WORK/serve.log" && [ "$(api "$ADMIN" GET /api/ingest/rejects | j "v[\"total\"]")" = 0 ]'
ok "a guessed password for GW-A is refused by the broker" \
  '! timeout 5 mosquitto_pub -p "$MQ" -u GW-A -P "$CODE_M" -t melv/v1/GW-A/telemetry -m x 2>/dev/null'
ok "the squatted GW-S's real gateway is refused (it never gets the squatter's settings)" \
  '! timeout 5 mosquitto_sub -p "$MQ" -u GW-S -P "$CODE_S" -t melv/v1/GW-S/settings -C 1 -W 2 > "$WORK/gws.out" 2>&1 && ! grep -q reserve_soc "$WORK/gws.out"'

# Rotation and unbinding.
NEW_A=$("$MELV" gateway --state-dir "$WORK/GW-A" --gateway-id GW-A --new-claim | j 'v["claim_code"]')
ok "the new code is printed grouped, as on a label" '[[ "$NEW_A" =~ ^[0-9A-Z]{4}(-[0-9A-Z]{4}){4}$ ]]'
NEW_A=$(echo "$NEW_A" | tr -d -)
ok "rotation: the installer binds the gateway's new code" \
  '[ "$(status "$ALICE" POST "/api/sites/$SA/devices/GW-A/claim" "{\"claim_code\":\"$NEW_A\"}")" = 204 ]'
reload
ok "rotation: the old code is refused" '! timeout 5 mosquitto_pub -p "$MQ" -u GW-A -P "$CODE_A" -t melv/v1/GW-A/status -m x 2>/dev/null'
ok "rotation: the new code works" 'timeout 5 mosquitto_pub -p "$MQ" -u GW-A -P "$NEW_A" -t melv/v1/GW-A/status -m x'
ok "unbinding GW-A" '[ "$(status "$ALICE" DELETE "/api/sites/$SA/devices/GW-A")" = 204 ]'
reload
ok "unbound: the gateway is refused by the broker" '! timeout 5 mosquitto_pub -p "$MQ" -u GW-A -P "$NEW_A" -t melv/v1/GW-A/status -m x 2>/dev/null'

echo "hijack-mqtt: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
