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
            # Issue 15: no frame before the first measurement (the first one said 0 V at 30 % SOC).
            assert sig["PackVoltage"] > 20.0, (msg.timestamp, m.name, sig)
        if m.name.startswith("BAT_CELLS_"):
            assert sig["MinCellVoltage"] > 2.0, (msg.timestamp, m.name, sig)
    for unit in (1, 2):
        assert counts.get(f"BAT_STATUS_{unit}", 0) >= 1440, counts
        assert counts.get(f"GW_CMD_{unit}", 0) >= 1440, counts
    assert counts["BAT_STATUS_1"] == counts["BAT_STATUS_2"], counts
    assert all(0.0 <= s <= 100.0 for s in socs), (min(socs), max(socs))
    assert max(socs) - min(socs) > 10.0, "the batteries cycled during the day"


def test_heartbeat_timeout_measured(link, frames):
    """Issue 15: a battery stops exchanging power 1 s after its last valid heartbeat (the protocol's
    HEARTBEAT_TIMEOUT_S). Unit 1 (activated above) runs at 1500 W on python's heartbeats; they stop;
    the delay from the last heartbeat sent to the first BAT_STATUS_1 at 0 W is measured with the
    server's frame timestamps (same host clock). 1 s, plus at most one 100 ms report cycle and the
    demo's 10 ms tick; a 10 s firmware timeout would show as 10 s."""
    link.collect(1.5, on_tick=lambda: link.heartbeat(1, 1500))
    t_last = time.time()
    link.heartbeat(1, 1500)
    zero_at = None
    end = time.time() + 4.0
    while time.time() < end and zero_at is None:
        msg = link.bus.recv(timeout=0.05)
        if msg is None or msg.arbitration_id != 0x181:
            continue
        sig = link.db.decode_message(msg.arbitration_id, msg.data)
        if sig["AcPower"] == 0 and msg.timestamp > t_last:
            zero_at = msg.timestamp
    assert zero_at is not None, "power never dropped within 4 s"
    delay = zero_at - t_last
    print(f"        heartbeat timeout measured: {delay:.3f} s after the last heartbeat")
    assert 0.9 <= delay <= 1.5, delay


def reports_of(link, unit, seconds):
    """BAT_STATUS frames of `unit` in the second half of `seconds` (after the request took effect)."""
    got = link.collect(seconds)
    half = len(got) // 2
    return sum(1 for n, _ in got[half:] if n == f"BAT_STATUS_{unit}")


def test_request_after_restart_and_replay(link, frames):
    """Issue 15: a restarted gateway counts RequestSeq from 0 again, and a battery dropped its
    Shutdown with seq 0 as a repeat. With the gateway's boot counter in GW_REQUEST.Session, the
    first request of a new session is executed, and replays (an older session, an older seq) are
    not. Unit 2 of the demo sends nothing while shut down."""
    assert reports_of(link, 2, 0.6) > 0
    recorded = link.request(2, "Shutdown", seq=0, session=100)
    assert reports_of(link, 2, 1.0) == 0, "Shutdown (session 100, seq 0) not executed"
    link.request(2, "PowerOn", seq=1, session=100)
    assert reports_of(link, 2, 1.0) > 0, "PowerOn (session 100, seq 1) not executed"
    # The gateway restarts: session 101, sequence from 0 again.
    link.request(2, "Shutdown", seq=0, session=101)
    assert reports_of(link, 2, 1.0) == 0, "Shutdown with seq 0 after a restart was dropped"
    link.request(2, "PowerOn", seq=1, session=101)
    assert reports_of(link, 2, 1.0) > 0, "PowerOn (session 101, seq 1) not executed"
    # Replays: the Shutdown of session 100 played back as recorded, one of session 100 with a newer
    # seq, and session 101's own Shutdown (an older seq).
    link.bus.send(recorded)
    link.request(2, "Shutdown", seq=2, session=100)
    link.request(2, "Shutdown", seq=0, session=101)
    assert reports_of(link, 2, 1.0) > 0, "a replayed Shutdown was executed"


def test_29_bit_frame_survived(link, frames):
    """Issue 15: our server answered a 29-bit send with `< error ... >`, which python-can's client
    parses as a frame and crashes on. socketcand relays it and replies nothing; the bus goes on."""
    link.bus.send(can.Message(arbitration_id=0x18FF50E5, data=b"\x01\x02", is_extended_id=True))
    got = link.collect(0.5)
    last(got, "BAT_STATUS_1")


def test_mixed_candump_decodes(link, frames, args):
    """A `candump -L` log of a shared bus (29-bit, remote and CAN FD frames of other devices,
    an error frame, and a last line cut short) decodes: our frames are decoded, the others skipped
    and counted. Built from the simulated day's log with foreign lines in can-utils' formats."""
    import json
    import subprocess
    import tempfile
    with open(args.log) as f:
        ours = [next(f) for _ in range(200)]
    foreign = ["(1700000000.010000) can0 18FF50E5#0102030405060708\n",
               "(1700000000.020000) can0 123#R\n",
               "(1700000000.030000) can0 1F334455#R\n",
               "(1700000000.040000) can0 123##1112233445566778899AABBCCDDEEFF\n",
               "(1700000000.050000) can0 20000080#0000000000000000\n"]
    lines = []
    for i, l in enumerate(ours):
        lines.append(l)
        if i % 40 == 0:
            lines.extend(foreign)
    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
        f.writelines(lines)
        f.write("(1700000000.990000) can0 181#01020")  # cut short, no newline
        path = f.name
    out = subprocess.run([args.melv, "can", "decode", path, "--json"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert s["frames"] == 200 and sum(s["decoded"].values()) == 200, s
    assert s["foreign"] == {"extended": 10, "remote": 5, "fd": 5, "error": 5}, s["foreign"]
    assert s["truncated_last_line"] is True, s
    # A line that is not candump at all, in the middle, is still refused with its line number.
    with open(path, "a") as f:
        f.write("0\nnot a candump line\n")
    out = subprocess.run([args.melv, "can", "decode", path, "--json"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and "line" in out.stderr, (out.returncode, out.stderr)


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
    test_heartbeat_timeout_measured,
    test_request_after_restart_and_replay,
    test_29_bit_frame_survived,
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dbc", required=True)
    ap.add_argument("--log", help="candump log of a simulated day (examples/can_log.rs)")
    ap.add_argument("--sim-log", help="candump log of `melv simulate ... --can-log`")
    ap.add_argument("--melv", help="the melv binary, for `melv can decode`")
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
    if args.melv and args.log:
        tests.append((test_mixed_candump_decodes, (link, frames, args)))
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
