"""pysunspec2 against the melv-modbus example server (scripts/modbus-tests.sh starts it).

The server runs a simulated site in self-consumption with PV surplus (load 500 W, PV 3000 W), so
the battery charges at about 2.5 kW unless a client limits it. The server writes its own values
(SOC, battery power, EMS reason) to a JSON status file every control cycle; the tests compare
what pysunspec2 reads over TCP with those.

Usage: python test_sunspec.py HOST PORT STATUS_JSON WATCHDOG_S
Prints one line per test and "modbus-tests: N passed, M failed"; exit status 1 on failure.
"""

import json
import struct
import sys
import time
import traceback

import sunspec2.modbus.client as client

HOST, PORT, STATUS, WATCHDOG_S = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
MODELS = [1, 701, 702, 704, 713, 802, 124]
# Charging with PV surplus: load - PV = 500 - 3000 W.
FREE_W = -2500.0


def status():
    with open(STATUS) as f:
        return json.load(f)


def connect():
    d = client.SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr=HOST, ipport=PORT, timeout=5)
    d.scan()
    return d


def model(d, mid):
    return d.models[mid][0]


def wait_until(what, pred, timeout=15.0):
    """Polls pred() every 0.5 s; fails with its last value after timeout seconds."""
    t_end = time.time() + timeout
    last = None
    while time.time() < t_end:
        ok, last = pred()
        if ok:
            return last
        time.sleep(0.5)
    raise AssertionError("%s: still %r after %.0f s" % (what, last, timeout))


def battery_w(d):
    m = model(d, 701)
    m.read()
    return m.W.cvalue


def near(a, b, tol):
    return a is not None and b is not None and abs(a - b) <= tol


def set_points(d, mid, **values):
    m = model(d, mid)
    m.read()
    for k, v in values.items():
        getattr(m, k).cvalue = v
    m.write()


def exception_code(fn):
    try:
        fn()
    except Exception as e:  # pysunspec2 raises ModbusClientException("Modbus exception N...")
        text = str(e)
        if "exception" in text:
            return int(text.split("exception")[1].strip(" :").split(":")[0].split()[0])
        raise
    return None


def test_scan_finds_every_model(d):
    found = [mid for mid in d.models if isinstance(mid, int)]
    assert found == MODELS, found
    c = model(d, 1)
    assert c.Mn.cvalue == "ATMOCE", c.Mn.cvalue
    cap = model(d, 702)
    # Manual 7.1: 4.5 kVA out, 3.75 kVA in per unit; one unit here.
    assert cap.WMaxRtg.cvalue == 4500 and cap.WChaRteMaxRtg.cvalue == 3750, (
        cap.WMaxRtg.cvalue, cap.WChaRteMaxRtg.cvalue)
    bat = model(d, 802)
    assert bat.AHRtg.cvalue == 280 and bat.WHRtg.cvalue == 7000, (bat.AHRtg.cvalue, bat.WHRtg.cvalue)


def test_soc_and_power_match_the_site(d):
    def pred():
        s = status()
        b, st = model(d, 802), model(d, 713)
        b.read()
        st.read()
        w = battery_w(d)
        ok = (near(b.SoC.cvalue, s["soc"] * 100, 0.2) and near(st.SoC.cvalue, s["soc"] * 100, 0.2)
              and near(w, s["battery_w"], max(25.0, 0.02 * abs(s["battery_w"]))))
        return ok, (b.SoC.cvalue, st.SoC.cvalue, w, s["soc"], s["battery_w"])
    got = wait_until("SOC/power vs the server's own values", pred)
    # Self-consumption with surplus: charging at the surplus.
    assert near(got[2], FREE_W, 150), got
    ac = model(d, 701)
    ac.read()
    assert near(ac.Hz.cvalue, 50.0, 0.01) and near(ac.LNV.cvalue, 230.0, 0.1), (ac.Hz.cvalue, ac.LNV.cvalue)


def test_charge_limit_is_obeyed(d):
    # 124: CHARGE bit, InWRte 20 % of WChaMax 3750 W = 750 W.
    set_points(d, 124, InWRte=20, StorCtl_Mod=1)
    w = wait_until("charge limited to 750 W", lambda: (near(battery_w(d), -750, 30), battery_w(d)))
    s = status()
    assert near(s["battery_w"], -750, 30) and s["external"], s
    m = model(d, 124)
    m.read()
    assert m.InWRte.cvalue == 20 and m.StorCtl_Mod.cvalue == 1, (m.InWRte.cvalue, m.StorCtl_Mod.cvalue)
    b = model(d, 802)
    b.read()
    assert b.LocRemCtl.cvalue == 0, b.LocRemCtl.cvalue  # REMOTE
    set_points(d, 124, StorCtl_Mod=0)
    wait_until("limit lifted", lambda: (near(battery_w(d), FREE_W, 150), battery_w(d)))
    return w


def test_revert_timer_ends_the_limit(d):
    set_points(d, 124, InWRte=10, InOutWRte_RvrtTms=4, StorCtl_Mod=1)
    wait_until("charge limited to 375 W", lambda: (near(battery_w(d), -375, 30), battery_w(d)))
    # InOutWRte_RvrtTms = 4 s: the limit reverts by itself.
    wait_until("reverted after 4 s", lambda: (near(battery_w(d), FREE_W, 150), battery_w(d)))
    m = model(d, 124)
    m.read()
    assert m.StorCtl_Mod.cvalue == 0, m.StorCtl_Mod.cvalue
    set_points(d, 124, InOutWRte_RvrtTms=0)


def test_watchdog_returns_the_site_to_its_mode(d):
    set_points(d, 124, InWRte=10, StorCtl_Mod=1)
    wait_until("charge limited to 375 W", lambda: (near(battery_w(d), -375, 30), battery_w(d)))
    t0 = time.time()
    # No writes now: after the watchdog the site runs self-consumption again.
    wait_until("watchdog fallback", lambda: (status()["external"] is False, status()),
               timeout=WATCHDOG_S + 10)
    assert time.time() - t0 >= WATCHDOG_S - 2, time.time() - t0
    wait_until("own mode again", lambda: (near(battery_w(d), FREE_W, 150), battery_w(d)))
    b = model(d, 802)
    b.read()
    assert b.LocRemCtl.cvalue == 1, b.LocRemCtl.cvalue  # LOCAL


def test_setpoint_is_clamped_by_the_safety_layers(d):
    set_points(d, 704, WSetMod=1, WSet=1000, WSetEna=1)
    wait_until("discharge setpoint 1000 W", lambda: (near(battery_w(d), 1000, 30), battery_w(d)))
    # 20 kW is beyond the unit (manual 7.1: 4.5 kVA continuous): a safety layer of the EMS clamps
    # it and 802 StateVnd names that layer (the EMS reason code; battery_limit, or volt_watt at
    # rated power in grid-services mode), not "external_dispatch".
    set_points(d, 704, WSet=20000)
    hb = [0]
    def pred():
        # A controller that holds a setpoint keeps the watchdog fed: 802 CtrlHb.
        hb[0] += 1
        set_points(d, 802, CtrlHb=hb[0])
        s = status()
        b = model(d, 802)
        b.read()
        return (3000 < s["battery_w"] <= 4600 and s["external"]
                and s["reason"] in ("battery_limit", "volt_watt")
                and b.StateVnd.cvalue == s["reason_code"]), (s, b.StateVnd.cvalue)
    wait_until("clamped by a safety layer", pred)
    set_points(d, 704, WSetEna=0)
    wait_until("setpoint off", lambda: (near(battery_w(d), FREE_W, 150), battery_w(d)))


def test_malformed_requests_get_exceptions(d):
    c701 = model(d, 701).model_addr
    c124 = model(d, 124).model_addr
    # Across the boundary between models 1 and 701.
    assert exception_code(lambda: d.read(c701 - 1, 2)) == 2
    # Unmapped.
    assert exception_code(lambda: d.read(30000, 2)) == 2
    # 701 W is read-only.
    assert exception_code(lambda: d.write(c701 + model(d, 701).W.offset, struct.pack(">h", 5))) == 2
    # InWRte 200 % is not a rate.
    assert exception_code(lambda: d.write(c124 + model(d, 124).InWRte.offset, struct.pack(">h", 200))) == 3
    # The server still answers.
    assert battery_w(d) is not None


TESTS = [
    test_scan_finds_every_model,
    test_soc_and_power_match_the_site,
    test_charge_limit_is_obeyed,
    test_revert_timer_ends_the_limit,
    test_setpoint_is_clamped_by_the_safety_layers,
    test_malformed_requests_get_exceptions,
    test_watchdog_returns_the_site_to_its_mode,
]


def main():
    passed = failed = 0
    d = None
    for t in TESTS:
        try:
            if d is None:
                d = connect()
            t(d)
            passed += 1
            print("ok   %s" % t.__name__)
        except Exception:
            failed += 1
            print("FAIL %s" % t.__name__)
            traceback.print_exc()
    if d is not None:
        d.close()
    print("modbus-tests: %d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
