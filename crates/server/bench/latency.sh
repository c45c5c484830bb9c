#!/usr/bin/env bash
# Dashboard and API latency under load: starts a release `melv serve` on the given database, deploys
# one site with a day of one-minute telemetry and an active alert, then runs wrk on the API site view,
# the history query and the web dashboard. Usage (from the repository root):
#   bash crates/server/bench/latency.sh [sqlite:///tmp/melv-bench.db | postgres://...]
# Needs wrk (Debian package) and a release build: cargo build --release -p melv-cli
set -euo pipefail
DB=${1:-sqlite:///tmp/melv-bench-$$.db}
PORT=${PORT:-18090}
BIN=${CARGO_TARGET_DIR:-target}/release/melv
BASE=http://127.0.0.1:$PORT
export MELV_ADMIN_PASSWORD=bench-admin-pass
"$BIN" serve --listen 127.0.0.1:$PORT --database "$DB" > /tmp/melv-bench-serve.log 2>&1 &
SERVER=$!
trap 'kill $SERVER' EXIT
for _ in $(seq 1 50); do curl -sf $BASE/api/health > /dev/null && break; sleep 0.2; done
python3 - "$BASE" > /tmp/melv-bench-env <<'PY'
import json, sys, time, urllib.request
base = sys.argv[1]
def call(method, path, token=None, body=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"content-type": "application/json", **({"authorization": "Bearer " + token} if token else {})})
    with urllib.request.urlopen(req) as r:
        t = r.read()
        return json.loads(t) if t else None
stamp = str(int(time.time() * 1000))
admin = call("POST", "/api/login", body={"email": "admin@localhost", "password": "bench-admin-pass"})["token"]
call("POST", "/api/accounts", admin, {"email": f"b{stamp}@example.com", "name": "B", "password": "bench-pass-1", "role": "installer"})
inst = call("POST", "/api/login", body={"email": f"b{stamp}@example.com", "password": "bench-pass-1"})["token"]
site = call("POST", "/api/sites", inst, {"name": "Bench", "phases": 3, "country": "DE", "timezone": "Europe/Berlin"})["id"]
gw = call("POST", f"/api/sites/{site}/devices", inst, {"serial": f"G{stamp}", "kind": "gateway", "claim_code": "BENCH0000000000000" + str(stamp)[-2:]}) and "BENCH0000000000000" + str(stamp)[-2:]
call("POST", f"/api/sites/{site}/devices", inst, {"serial": f"B{stamp}", "kind": "battery"})
call("POST", f"/api/sites/{site}/checks", inst, {"grid_voltages_v": [230, 231, 229]})
call("POST", f"/api/sites/{site}/activate", inst)
now = int(time.time() * 1000)
points = [{"seq": i, "ts_ms": now - (1440 - i) * 60000, "interval_s": 60, "pv_w": 1500, "load_w": 700, "grid_w": -300, "battery_w": -500, "soc": 0.5} for i in range(1440)]
call("POST", "/api/ingest", gw, {"gateway_serial": f"G{stamp}", "points": points,
     "events": [{"seq": 1, "ts_ms": now, "device_serial": f"B{stamp}", "code": 53, "active": True}]})
print(f"SITE={site} TOKEN={inst}")
PY
eval "$(cat /tmp/melv-bench-env)"
for path in "/api/sites/$SITE" "/api/sites/$SITE/history?resolution=hour" "/sites/$SITE"; do
  echo "== GET $path"
  if [[ $path == /api/* ]]; then H="Authorization: Bearer $TOKEN"; else H="Cookie: melv_session=$TOKEN"; fi
  wrk -t2 -c16 -d10s --latency -H "$H" "$BASE$path" | grep -E "Latency|50%|99%|Requests/sec|Non-2xx"
done
