#!/usr/bin/env bash
# Issue 16 item 2: 600 failed sign-ins with 2 MiB bodies (each a different made-up address) must move
# the server's resident memory (VmRSS, /proc/PID/status) by less than 20 MB. Starts its own
# `melv serve` on a free port with a scratch SQLite database.
# Usage: MELV=target/debug/melv bash tests/api/login-memory.sh   (prints the RSS before and after)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MELV=${MELV:-$ROOT/target/debug/melv}
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
MELV_ADMIN_PASSWORD=admin-$RANDOM$RANDOM "$MELV" serve --listen "127.0.0.1:$PORT" --database "sqlite://$WORK/m.db" > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/api/health" > /dev/null && break; sleep 0.1; done
python3 - "$PORT" "$SERVER" <<'PY'
import http.client, json, sys
port, pid = int(sys.argv[1]), sys.argv[2]
def rss_kb():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
def attempt(i, size):
    body = json.dumps({"email": f"{i}-" + "x" * size + "@example.com", "password": "wrong-password"})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", "/api/login", body=body, headers={"content-type": "application/json"})
        return c.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        return "closed"  # the server stopped reading at the limit
    finally:
        c.close()
for i in range(20):  # warm-up: allocator pools, database connections
    attempt(-i, 100)
before = rss_kb()
codes = {}
for i in range(600):
    s = attempt(i, 2 * 1024 * 1024 - 200)  # the whole body just under the old 2 MiB limit
    codes[s] = codes.get(s, 0) + 1
after = rss_kb()
delta_mb = (after - before) / 1024
print(f"login-memory: RSS {before} kB -> {after} kB ({delta_mb:+.1f} MB) after 600 sign-ins of 2 MiB; answers {codes}")
ok = delta_mb < 20 and set(codes) <= {413, "closed"}
print(f"login-memory: {1 if ok else 0} passed, {0 if ok else 1} failed")
sys.exit(0 if ok else 1)
PY
