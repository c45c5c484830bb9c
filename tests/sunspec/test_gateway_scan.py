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
MODELS = [1, 701, 702, 704, 713, 802, 124, 203, 705, 706, 711]


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
        # Three meters (grid, PV, load) and the bank's 802 then one per unit (one unit here).
        assert len(d.models[203]) == 3 and len(d.models[802]) == 2, (len(d.models[203]), len(d.models[802]))

    def meters_match_telemetry():
        """The grid meter's counters are the gateway's own (the energy counters of its telemetry)."""
        deadline = time.time() + 20
        while True:
            tel = newest_telemetry()
            grid, pv, load = d.models[203]
            unit1 = d.models[802][1]
            for m in (grid, pv, load, unit1):
                m.read()
            got = (grid.TotWhImp.cvalue or 0, pv.TotWhExp.cvalue or 0, load.TotWhImp.cvalue or 0)
            if tel is not None:
                c = tel["counters"]
                want = (c["grid_import_wh"], c["pv_wh"], c["load_wh"])
                # One simulated minute (one wall second at --speed 60) apart at most.
                close = all(abs(g - w) <= 0.05 * w + 100 for g, w in zip(got, want))
                soc = unit1.SoC.cvalue
                if close and want[2] > 0 and soc is not None and abs(soc - 100 * tel["batteries"][0]["soc"]) <= 2:
                    return
            if time.time() > deadline:
                raise AssertionError("meters %r vs telemetry counters %r" % (got, tel and tel["counters"]))
            time.sleep(1.0)

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
                    ("SoC matches the gateway's telemetry", soc_matches_telemetry),
                    ("meters and unit 1 match the gateway's telemetry", meters_match_telemetry)]:
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
