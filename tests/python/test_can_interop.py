"""Interop test of the M-ELV CAN link against standard tools.

python-can (interface "socketcand") joins the bus served by our Rust socketcand server, on which
demo batteries 1 and 2 run (crates/can/src/demo.rs); cantools decodes every frame against the
repo's DBC (crates/can/melv.dbc). The expected values are those of demo_status() in demo.rs.

Run through scripts/can-interop.sh, which starts the server. Prints one summary line,
"can-interop: N passed, M failed", and exits non-zero on any failure.
"""

import argparse
import sys
import time
import traceback

import can
import cantools


def crc8_j1850(can_id, data):
    """CRC-8 SAE J1850 over the id's low byte and the data (crates/can/src/repr.rs)."""
    crc = 0xFF
    for b in bytes([can_id & 0xFF]) + bytes(data):
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1D) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ 0xFF


class Link:
    def __init__(self, host, port, dbc):
        self.db = cantools.database.load_file(dbc)
        self.bus = can.Bus(interface="socketcand", host=host, port=port, channel="can0")
        self.counter = 0
        self.seq = 0
        # The gateway's boot counter (GW_REQUEST.Session): this test is one gateway life.
        self.session = 1

    def collect(self, seconds, on_tick=None):
        """Frames received during `seconds`, decoded: list of (message name, signals)."""
        out = []
        end = time.time() + seconds
        next_tick = 0.0
        while time.time() < end:
            if on_tick and time.time() >= next_tick:
                on_tick()
                next_tick = time.time() + 0.1
            msg = self.bus.recv(timeout=0.05)
            if msg is None:
                continue
            try:
                m = self.db.get_message_by_frame_id(msg.arbitration_id)
            except KeyError:
                raise AssertionError(f"frame id 0x{msg.arbitration_id:03X} is not in the DBC")
            out.append((m.name, m.decode(msg.data, decode_choices=True)))
        return out

    def send(self, name, signals):
        m = self.db.get_message_by_name(name)
        data = bytearray(m.encode(dict(signals, Crc=0)))
        data[-1] = crc8_j1850(m.frame_id, data[:-1])
        msg = can.Message(arbitration_id=m.frame_id, data=bytes(data), is_extended_id=False)
        self.bus.send(msg)
        return msg

    def heartbeat(self, unit, watts):
        self.counter = (self.counter + 1) % 256
        self.send(f"GW_CMD_{unit}", {"AliveCounter": self.counter, "GridForming": 0,
                                      "ActivePowerSetpoint": watts, "ReactivePowerSetpoint": 0})

    def request(self, unit, what, seq=None, session=None):
        if seq is None:
            self.seq = (self.seq + 1) % 256
            seq = self.seq
        session = self.session if session is None else session
        return self.send(f"GW_REQUEST_{unit}", {"Request": what, "RequestSeq": seq, "Session": session})


def last(frames, name):
    found = [s for n, s in frames if n == name]
    assert found, f"no {name} received (got {sorted(set(n for n, _ in frames))})"
    return found[-1]


def close(a, b, tol=1e-6):
    assert abs(a - b) <= tol, f"{a} != {b}"


def test_dbc_loads(link, frames):
    assert len(link.db.messages) == 49, len(link.db.messages)
    assert link.db.get_message_by_name("GW_CMD_1").frame_id == 0x111
    assert link.db.get_message_by_name("BAT_STATUS_6").frame_id == 0x186
    assert link.db.get_message_by_name("BAT_STATUS_1").cycle_time == 100


def test_status_values(link, frames):
    s1, s2 = last(frames, "BAT_STATUS_1"), last(frames, "BAT_STATUS_2")
    close(s1["Soc"], 45.0)
    close(s1["PackVoltage"], 26.1)
    close(s2["Soc"], 50.0)
    close(s2["PackVoltage"], 26.2)
    close(s1["AcPower"], 0)
    p1 = last(frames, "BAT_POWER_1")
    assert str(p1["Lifecycle"]) == "Standby", p1
    close(p1["MaxChargePower"], 3750)
    close(p1["MaxDischargePower"], 4500)


def test_alert_bits_and_health(link, frames):
    h1, h2 = last(frames, "BAT_HEALTH_1"), last(frames, "BAT_HEALTH_2")
    assert h2["Alert57_LowSoh"] == 1, h2
    assert sum(v for k, v in h2.items() if k.startswith("Alert")) == 1, h2
    assert sum(v for k, v in h1.items() if k.startswith("Alert")) == 0, h1
    close(h1["Soh"], 98.0)
    close(h2["Soh"], 65.0)


def test_identity_cells_energy(link, frames):
    i2 = last(frames, "BAT_IDENT_2")
    assert i2["SerialNumber"] == 24110002 and i2["UnitIndex"] == 2, i2
    assert (i2["FirmwareMajor"], i2["FirmwareMinor"], i2["FirmwarePatch"]) == (1, 0, 0), i2
    c1 = last(frames, "BAT_CELLS_1")
    close(c1["MinCellVoltage"], 3.25)
    close(c1["MaxTemperature"], 26.0)
    e2 = last(frames, "BAT_ENERGY_2")
    close(e2["AcChargedEnergy"], 2469.0, 0.05)


def test_cycle_times(link, frames):
    fast = sum(1 for n, _ in frames if n == "BAT_STATUS_1")
    slow = sum(1 for n, _ in frames if n == "BAT_CELLS_1")
    # 100 ms against 1000 ms: about ten to one, whatever the scheduling jitter.
    assert slow >= 1 and 5 * slow <= fast, (fast, slow)


def test_activate_and_setpoint(link, frames):
    link.request(1, "Activate")
    got = link.collect(2.0, on_tick=lambda: link.heartbeat(1, 1000))
    p1 = last(got, "BAT_POWER_1")
    assert str(p1["Lifecycle"]) == "Active", p1
    assert p1["SocLedOn"] == 1 and p1["SocLedPercent"] == 45, p1
    s1 = last(got, "BAT_STATUS_1")
    close(s1["AcPower"], 1000)
    assert s1["PackCurrent"] > 0, s1
    # Unit 2 was not addressed and stays in standby.
    assert str(last(got, "BAT_POWER_2")["Lifecycle"]) == "Standby"


def test_heartbeat_loss_is_safe_state(link, frames):
    # No heartbeat for well over the 1 s timeout: the battery drops to zero power on its own.
    got = link.collect(1.6)
    s1 = last(got, "BAT_STATUS_1")
    close(s1["AcPower"], 0)
    assert str(last(got, "BAT_POWER_1")["Lifecycle"]) == "Active"


def test_repeated_counter_is_not_a_heartbeat(link, frames):
    def stuck():
        link.send("GW_CMD_1", {"AliveCounter": 7, "GridForming": 0,
                                "ActivePowerSetpoint": 2000, "ReactivePowerSetpoint": 0})
    got = link.collect(1.6, on_tick=stuck)
    # The first frame with counter 7 is accepted; the repeats are not, so the command times out.
    close(last(got, "BAT_STATUS_1")["AcPower"], 0)


def test_garbage_is_survived(link, frames):
    link.bus.send(can.Message(arbitration_id=0x7FF, data=b"\x01", is_extended_id=False))
    link.bus.send(can.Message(arbitration_id=0x111, data=b"\x01\x02", is_extended_id=False))
    got = link.collect(0.5)
    last(got, "BAT_STATUS_2")


def test_day_log_decodes(link, frames, log_path):
    """A simulated two-battery day (examples/can_log.rs, 10 s steps) read by python-can's candump
    reader and decoded by cantools: every frame decodes, each message once per step, battery 2
    silent from 12:00 to 13:00 (its cable cut), battery 1's SOC on its daily sine."""
    import math
    counts, last_seen, gap = {}, {}, 0.0
    t0 = None
    for msg in can.CanutilsLogReader(log_path):
        t0 = msg.timestamp if t0 is None else t0
        m = link.db.get_message_by_frame_id(msg.arbitration_id)
        sig = m.decode(msg.data)
        counts[m.name] = counts.get(m.name, 0) + 1
        if m.name in last_seen and m.name == "BAT_STATUS_2":
            gap = max(gap, msg.timestamp - last_seen[m.name])
        last_seen[m.name] = msg.timestamp
        if m.name == "BAT_STATUS_1":
            expected = 100 * (0.5 + 0.4 * math.sin((msg.timestamp - t0) / 86400 * 2 * math.pi))
            assert abs(sig["Soc"] - expected) <= 0.006, (msg.timestamp, sig["Soc"], expected)
    assert counts["GW_TIME"] == 8640 and counts["BAT_STATUS_1"] == 8640, counts
    assert counts["BAT_STATUS_2"] == 8640 - 360, counts
    assert sum(counts.values()) == 127440, sum(counts.values())
    assert abs(gap - 3610) < 1e-3, gap


def test_simulate_log_decodes(link, frames, log_path):
    """`melv simulate examples/tou-two-batteries.toml --days 1 --can-log FILE` (issue 4, done-when): a
    one-day, two-battery simulation routed through the codec; python-can reads the candump log and
    cantools decodes every frame against the repo's DBC; both batteries report on every 60 s step with
    plausible values, and the gateway's heartbeat reaches both."""
    counts, socs, powers = {}, [], []
    for msg in can.CanutilsLogReader(log_path):
        m = link.db.get_message_by_frame_id(msg.arbitration_id)
        sig = m.decode(msg.data)
        counts[m.name] = counts.get(m.name, 0) + 1
        if m.name.startswith("BAT_STATUS_"):
            socs.append(sig["Soc"])
    for unit in (1, 2):
        assert counts.get(f"BAT_STATUS_{unit}", 0) >= 1440, counts
        assert counts.get(f"GW_CMD_{unit}", 0) >= 1440, counts
    assert counts["BAT_STATUS_1"] == counts["BAT_STATUS_2"], counts
    assert all(0.0 <= s <= 100.0 for s in socs), (min(socs), max(socs))
    assert max(socs) - min(socs) > 10.0, "the batteries cycled during the day"


TESTS = [
    test_dbc_loads,
    test_status_values,
    test_alert_bits_and_health,
    test_identity_cells_energy,
    test_cycle_times,
    test_activate_and_setpoint,
    test_heartbeat_loss_is_safe_state,
    test_repeated_counter_is_not_a_heartbeat,
    test_garbage_is_survived,
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dbc", required=True)
    ap.add_argument("--log", help="candump log of a simulated day (examples/can_log.rs)")
    ap.add_argument("--sim-log", help="candump log of `melv simulate ... --can-log`")
    args = ap.parse_args()
    passed = failed = 0
    try:
        link = Link(args.host, args.port, args.dbc)
        frames = link.collect(2.5)
    except Exception:
        traceback.print_exc()
        print(f"can-interop: 0 passed, {len(TESTS)} failed (could not join the bus)")
        return 1
    tests = [(t, (link, frames)) for t in TESTS]
    if args.log:
        tests.append((test_day_log_decodes, (link, frames, args.log)))
    if args.sim_log:
        tests.append((test_simulate_log_decodes, (link, frames, args.sim_log)))
    for t, targs in tests:
        try:
            t(*targs)
            passed += 1
            print(f"  ok    {t.__name__}")
        except Exception as e:
            failed += 1
            print(f"  FAIL  {t.__name__}: {e!r}")
    link.bus.shutdown()
    print(f"can-interop: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
