"""pysunspec2 and pymodbus against the melv-modbus example server (scripts/modbus-tests.sh starts it).

The server runs a simulated site in self-consumption with PV surplus (load 500 W, PV 3000 W), so
the battery charges at about 2.5 kW unless a client limits it. The server writes its own values
(SOC, battery power, EMS reason) to a JSON status file every control cycle; the tests compare
what pysunspec2 reads over TCP with those.

pymodbus plays the second client (and evcc's raw register reads): it connects from 127.0.0.2, so
that the server, which tells clients apart by their IP address, sees two controllers.

Usage: python test_sunspec.py HOST PORT STATUS_JSON WATCHDOG_S
Prints one line per test and "modbus-tests: N passed, M failed"; exit status 1 on failure.
"""

import json
import socket
import struct
import sys
import time
import traceback

import sunspec2.modbus.client as client
from pymodbus.client import ModbusTcpClient

HOST, PORT, STATUS, WATCHDOG_S = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
# In the order the device presents them: 203 three times (grid, PV, load), then one 802 per unit.
LAYOUT = [1, 701, 702, 704, 713, 802, 124, 203, 203, 203, 705, 706, 711, 802]
MODELS = [1, 701, 702, 704, 713, 802, 124, 203, 705, 706, 711]
LENGTHS = {1: 66, 701: 153, 702: 50, 704: 65, 713: 7, 802: 62, 124: 24, 203: 105,
           705: 31, 706: 22, 711: 22}
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
    assert len(d.models[203]) == 3 and len(d.models[802]) == 2, (len(d.models[203]), len(d.models[802]))
    for mid in (705, 706, 711):
        assert len(d.models[mid]) == 1, mid
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
    # Across the boundary between models 1 and 701: answered (model 1's pad, then 701's ID).
    assert d.read(c701 - 1, 2) == struct.pack(">HH", 0, 701)
    # Unmapped.
    assert exception_code(lambda: d.read(30000, 2)) == 2
    # 701 W is read-only.
    assert exception_code(lambda: d.write(c701 + model(d, 701).W.offset, struct.pack(">h", 5))) == 2
    # InWRte 200 % is not a rate.
    assert exception_code(lambda: d.write(c124 + model(d, 124).InWRte.offset, struct.pack(">h", 200))) == 3
    # The server still answers.
    assert battery_w(d) is not None


def second_client():
    """pymodbus from another address of the loopback network: a second controller to the server."""
    c = ModbusTcpClient(HOST, port=PORT, source_address=("127.0.0.2", 0), timeout=5, retries=0)
    assert c.connect(), "pymodbus could not connect from 127.0.0.2"
    return c


def sf(v, sf_value):
    return v * 10 ** sf_value


def int16(r):
    return r - 0x10000 if r >= 0x8000 else r


def test_meter_models_read_the_grid_pv_and_load(d):
    grid, pv, load = d.models[203]
    # Charging limited to 750 W: the rest of the 2.5 kW surplus is exported, about 1750 W.
    set_points(d, 124, InWRte=20, StorCtl_Mod=1)
    wait_until("charge limited to 750 W", lambda: (near(battery_w(d), -750, 30), battery_w(d)))
    def pred():
        s = status()
        for m in (grid, pv, load):
            m.read()
        ok = (near(grid.W.cvalue, s["grid_w"], 30) and near(grid.W.cvalue, -1750, 50)
              and near(pv.W.cvalue, s["pv_w"], 1) and near(load.W.cvalue, s["load_w"], 1)
              and near(grid.Hz.cvalue, 50.0, 0.01) and near(grid.PhV.cvalue, 230.0, 0.1)
              and grid.WphB.cvalue is None  # a single-phase site
              # The counters: within a few cycles' energy of the server's own.
              and near(grid.TotWhExp.cvalue, s["grid_export_wh"], 3))
        return ok, (grid.W.cvalue, pv.W.cvalue, load.W.cvalue, grid.TotWhExp.cvalue, s)
    wait_until("meters vs the server's own values", pred)
    # Export grows, PV production and load consumption count up.
    e0 = grid.TotWhExp.cvalue
    time.sleep(3)
    for m in (grid, pv, load):
        m.read()
    assert grid.TotWhExp.cvalue > e0, (grid.TotWhExp.cvalue, e0)
    assert pv.TotWhExp.cvalue > 0 and load.TotWhImp.cvalue > 0, (pv.TotWhExp.cvalue, load.TotWhImp.cvalue)
    # evcc's grid meter template reads "203:W": the first model 203's W with its W_SF, raw.
    c = second_client()
    try:
        base = grid.model_addr
        rr = c.read_holding_registers(base, count=LENGTHS[203] + 2)
        assert not rr.isError(), rr
        regs = rr.registers
        assert regs[0] == 203 and regs[1] == 105, regs[:2]
        w = sf(int16(regs[grid.W.offset]), int16(regs[grid.W_SF.offset]))
        assert near(w, status()["grid_w"], 50), (w, status())
    finally:
        c.close()
    set_points(d, 124, StorCtl_Mod=0)
    wait_until("limit lifted", lambda: (near(battery_w(d), FREE_W, 150), battery_w(d)))


def test_der_curves_read_the_grid_services_settings(d):
    """705/706/711 with pysunspec2, which sizes their repeating groups from NCrv/NPt/NCtl."""
    vv, vw, fd = model(d, 705), model(d, 706), model(d, 711)
    for m in (vv, vw, fd):
        m.read()
    # The EMS's default curves (AS/NZS 4777.2:2020 Australia A), configured but not enabled: the
    # site runs self-consumption.
    assert vv.Ena.cvalue == 0 and vv.NPt.cvalue == 4 and vv.Crv[0].ActPt.cvalue == 4
    pts = [(p.V.cvalue, p.Var.cvalue) for p in vv.Crv[0].Pt]
    assert pts == [(90.0, 44.0), (95.7, 0.0), (104.3, 0.0), (112.2, -60.0)], pts
    pts = [(p.V.cvalue, p.W.cvalue) for p in vw.Crv[0].Pt]
    assert pts == [(110.0, 100.0), (113.0, 20.0)], pts
    assert fd.Ena.cvalue == 0 and fd.Ctl[0].DbOf.cvalue is None  # no droop configured
    # Read-only: writing a curve answers 02.
    assert exception_code(lambda: d.write(vv.model_addr + vv.Ena.offset, struct.pack(">H", 1))) == 2


def test_125_registers_from_any_start(d):
    """Every start from 40000 to the last one with 125 registers left answers, across every model
    boundary; each model header inside a chunk is where the scan put it (the data is one image)."""
    headers = {}
    addr = 40002
    for mid in LAYOUT:
        headers[addr] = (mid, LENGTHS[mid])
        addr += LENGTHS[mid] + 2
    end = addr + 2  # one past the end model
    c = second_client()
    try:
        assert end - 40000 > 250, end
        for start in range(40000, end - 125 + 1):
            rr = c.read_holding_registers(start, count=125)
            assert not rr.isError(), (start, rr)
            regs = rr.registers
            assert len(regs) == 125, (start, len(regs))
            for a, (mid, ln) in headers.items():
                if start <= a and a + 1 < start + 125:
                    assert regs[a - start:a - start + 2] == [mid, ln], (start, a, mid)
            if start == 40000:
                assert regs[0:2] == [0x5375, 0x6E53], regs[0:2]  # "SunS"
            if start == end - 125:
                assert regs[-2:] == [0xFFFF, 0], regs[-2:]  # the end model
        # One register past the end model, and more than 125 at once: refused.
        rr = c.read_holding_registers(end - 124, count=125)
        assert rr.isError() and rr.exception_code == 2, rr
    finally:
        c.close()
    # More than 125 at once (pymodbus refuses to send it, so a raw frame): exception 03.
    with socket.create_connection((HOST, PORT), timeout=5) as sock:
        sock.sendall(struct.pack(">HHHBBHH", 7, 0, 6, 1, 3, 40000, 126))
        reply = sock.recv(64)
    assert reply[7:9] == bytes([0x83, 3]), reply


def test_heartbeat_survives_the_wrap(d):
    # A controller holds a charge limit and counts 802 CtrlHb up through 65535 back to 0.
    set_points(d, 124, InWRte=20, StorCtl_Mod=1)
    wait_until("charge limited to 750 W", lambda: (near(battery_w(d), -750, 30), battery_w(d)))
    hb_addr = model(d, 802).model_addr + model(d, 802).CtrlHb.offset
    for v in [65533, 65534, 65535, 0, 1, 2]:
        d.write(hb_addr, struct.pack(">H", v))  # raises on any exception
        # Raw: pysunspec2 shows a uint16 of 65535 as "not implemented" (None).
        assert d.read(hb_addr, 1) == struct.pack(">H", v), (d.read(hb_addr, 1), v)
        time.sleep(0.3)
    s = status()
    assert s["external"] and near(s["battery_w"], -750, 30), s
    set_points(d, 124, StorCtl_Mod=0)
    wait_until("limit lifted", lambda: (near(battery_w(d), FREE_W, 150), battery_w(d)))


def test_802_stops_the_battery(d):
    wait_until("charging from the surplus", lambda: (near(battery_w(d), FREE_W, 150), battery_w(d)))
    for point, stop, run in (("SetInvState", 1, 3), ("SetOp", 2, 1)):
        set_points(d, 802, **{point: stop})
        wait_until("%s = %d: battery stopped" % (point, stop),
                   lambda: (near(battery_w(d), 0, 15) and status()["control"]["stopped"],
                            (battery_w(d), status()["control"])))
        b = model(d, 802)
        b.read()
        assert getattr(b, point).cvalue == stop and b.LocRemCtl.cvalue == 0, (
            getattr(b, point).cvalue, b.LocRemCtl.cvalue)
        # Stopped means stopped: a charge request is not followed while it holds.
        set_points(d, 124, InWRte=50, OutWRte=-50, StorCtl_Mod=3)
        time.sleep(2.5)
        assert near(status()["battery_w"], 0, 15), status()
        set_points(d, 124, StorCtl_Mod=0)
        set_points(d, 802, **{point: run})
        wait_until("%s = %d: running again" % (point, run),
                   lambda: (near(battery_w(d), FREE_W, 150), battery_w(d)))


def test_one_controller_owns_the_controls(d):
    c124 = model(d, 124).model_addr
    mode = c124 + model(d, 124).StorCtl_Mod.offset
    in_rte = c124 + model(d, 124).InWRte.offset
    hb = model(d, 802).model_addr + model(d, 802).CtrlHb.offset
    other = second_client()
    try:
        # pysunspec2 (127.0.0.1) limits charging: it owns the controls.
        set_points(d, 124, InWRte=20, StorCtl_Mod=1)
        wait_until("owner 127.0.0.1", lambda: (status()["owner"] == {"peer": "127.0.0.1"}, status()["owner"]))
        # pymodbus (127.0.0.2) is refused with exception 06 (server busy), control writes and
        # heartbeat alike; its reads are served.
        for addr, v in ((mode, 2), (in_rte, 50), (hb, 7)):
            rr = other.write_register(addr, v)
            assert rr.isError() and rr.exception_code == 6, (addr, rr)
        assert not other.read_holding_registers(mode, count=1).isError()
        time.sleep(1.5)
        assert near(status()["battery_w"], -750, 30), status()
        # The owner hands the site back (StorCtl_Mod 0, nothing in force): free at once.
        set_points(d, 124, StorCtl_Mod=0)
        rr = other.write_registers(in_rte, [10])
        assert not rr.isError(), rr
        rr = other.write_register(mode, 1)
        assert not rr.isError(), rr
        wait_until("owner 127.0.0.2, 375 W", lambda: (
            status()["owner"] == {"peer": "127.0.0.2"} and near(battery_w(d), -375, 30),
            (status()["owner"], battery_w(d))))
        assert exception_code(lambda: set_points(d, 124, StorCtl_Mod=0)) == 6
        # 127.0.0.2 goes quiet: when its watchdog expires, the site is its own again and the
        # first client may take over.
        t0 = time.time()
        wait_until("watchdog of 127.0.0.2", lambda: (status()["owner"] is None, status()["owner"]),
                   timeout=WATCHDOG_S + 10)
        assert time.time() - t0 >= WATCHDOG_S - 2, time.time() - t0
        set_points(d, 124, InWRte=20, StorCtl_Mod=1)
        wait_until("owner 127.0.0.1 again", lambda: (status()["owner"] == {"peer": "127.0.0.1"}, status()["owner"]))
        set_points(d, 124, StorCtl_Mod=0)
    finally:
        other.close()


TESTS = [
    test_scan_finds_every_model,
    test_soc_and_power_match_the_site,
    test_charge_limit_is_obeyed,
    test_revert_timer_ends_the_limit,
    test_setpoint_is_clamped_by_the_safety_layers,
    test_malformed_requests_get_exceptions,
    test_meter_models_read_the_grid_pv_and_load,
    test_der_curves_read_the_grid_services_settings,
    test_125_registers_from_any_start,
    test_heartbeat_survives_the_wrap,
    test_802_stops_the_battery,
    test_one_controller_owns_the_controls,
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
