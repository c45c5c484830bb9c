"""pysunspec2 against the live gateway: `melv gateway SITE.toml --modbus HOST:PORT` (issue 8, item 1).

scripts/modbus-tests.sh starts the gateway with an unreachable broker (so that telemetry waits in its
store-and-forward queue) and runs
this after the library tests. pysunspec2 scans the running gateway, finds the SunSpec models in order,
and reads a state of charge and battery power that are the site's own: the gateway's state directory
holds its telemetry queue, whose newest record this test reads back and compares.

Usage: python test_gateway_scan.py HOST PORT QUEUE_SQLITE
Prints "modbus-gateway: N passed, M failed"; exit status 1 on failure.
"""

import json
import sqlite3
import sys
import time
import traceback

import sunspec2.modbus.client as client

HOST, PORT, QUEUE = sys.argv[1], int(sys.argv[2]), sys.argv[3]
MODELS = [1, 701, 702, 704, 713, 802, 124]


def newest_telemetry():
    """The newest 1-minute telemetry record in the gateway's store-and-forward queue."""
    con = sqlite3.connect(QUEUE)
    try:
        row = con.execute(
            "SELECT payload FROM records WHERE kind = 'telemetry' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    finally:
        con.close()
    return json.loads(row[0]) if row else None


def main():
    passed = failed = 0
    d = client.SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr=HOST, ipport=PORT, timeout=5)
    checks = []

    def scan():
        d.scan()
        found = [m for m in d.models if isinstance(m, int)]
        assert found == MODELS, found

    def soc_matches_telemetry():
        deadline = time.time() + 20
        while True:
            tel = newest_telemetry()
            m = d.models[802][0]
            m.read()
            soc = m.SoC.cvalue
            if tel is not None and soc is not None:
                want = 100.0 * tel["batteries"][0]["soc"]
                if abs(soc - want) <= 2.0:
                    return
            if time.time() > deadline:
                raise AssertionError("802 SoC %r vs telemetry %r" % (soc, tel and tel["batteries"][0]["soc"]))
            time.sleep(1.0)

    def nameplate():
        m = d.models[1][0]
        m.read()
        assert m.Mn.cvalue == "ATMOCE" and "MS-7K-U" in m.Md.cvalue, (m.Mn.cvalue, m.Md.cvalue)

    for name, f in [("scan finds every model", scan), ("nameplate", nameplate),
                    ("SoC matches the gateway's telemetry", soc_matches_telemetry)]:
        try:
            f()
            passed += 1
            print("ok  ", name)
        except Exception:
            failed += 1
            print("FAIL", name)
            traceback.print_exc()
    d.close()
    print("modbus-gateway: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
