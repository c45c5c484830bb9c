"""The live gateway on a socketcand bus, watched and poked with python-can (issue 15).

Starts the demo batteries 1 and 2 on our socketcand server (the `can_serve` example) and
`melv gateway examples/tou-two-batteries.toml --can socketcand://ADDR/can0` (no MQTT broker: the
uplink retries and the records wait on disk), then:

* a duplicate address: python-can announces a second battery on unit 1's address (BAT_IDENT_1
  with another serial number); the gateway names both serials (stderr) and raises 63 for unit 1;
* a dropped socketcand server: the server is killed; the gateway keeps running and says it lost
  the connection; a new server on the same port is taken back (the gateway's heartbeats GW_CMD_n
  are seen on it by python-can again).

Run through scripts/can-interop.sh. Prints "can-gateway: N passed, M failed"; exit 0 only if all
passed.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback

import can
import cantools


def start_server(serve, addr):
    out = tempfile.NamedTemporaryFile("w+", suffix=".out", delete=False)
    p = subprocess.Popen([serve, "--addr", addr, "--units", "1,2", "--seconds", "300"],
                         stdout=out, stderr=subprocess.STDOUT)
    for _ in range(200):
        with open(out.name) as f:
            for line in f:
                if line.startswith("listening on "):
                    return p, line.split()[-1]
        if p.poll() is not None:
            raise AssertionError(f"server exited: {open(out.name).read()}")
        time.sleep(0.05)
    raise AssertionError("server did not start within 10 s")


def join(host, port):
    """python-can on the bus, retried while the server is starting."""
    for _ in range(100):
        try:
            return can.Bus(interface="socketcand", host=host, port=int(port), channel="can0")
        except Exception:
            time.sleep(0.1)
    raise AssertionError(f"python-can cannot join {host}:{port}")


def frames(bus, db, seconds):
    out = []
    end = time.time() + seconds
    while time.time() < end:
        msg = bus.recv(timeout=0.05)
        if msg is None or msg.is_extended_id:
            continue
        try:
            m = db.get_message_by_frame_id(msg.arbitration_id)
        except KeyError:
            continue
        out.append(m.name)
    return out


def wait_for(pred, seconds, what):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not seen within {seconds} s")


class World:
    def __init__(self, args):
        self.args = args
        self.db = cantools.database.load_file(args.dbc)
        self.server, self.addr = start_server(args.serve, "127.0.0.1:0")
        self.host, self.port = self.addr.rsplit(":", 1)
        self.state = tempfile.mkdtemp(prefix="melv-can-gw-")
        self.log = os.path.join(self.state, "gateway.err")
        # A broker port nobody listens on: the gateway runs without its uplink.
        self.gateway = subprocess.Popen(
            [args.melv, "gateway", "examples/tou-two-batteries.toml",
             "--can", f"socketcand://{self.addr}/can0", "--mqtt", "mqtt://127.0.0.1:9",
             "--state-dir", self.state, "--gateway-id", "gw-can", "--clock", "profile"],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        self.bus = join(self.host, self.port)

    def stderr(self):
        with open(self.log) as f:
            return f.read()

    def close(self):
        for p in (self.gateway, self.server):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
        try:
            self.bus.shutdown()
        except Exception:
            pass


def test_gateway_drives_the_bus(w):
    got = frames(w.bus, w.db, 2.0)
    assert "GW_CMD_1" in got and "GW_CMD_2" in got, sorted(set(got))
    assert "BAT_STATUS_1" in got, sorted(set(got))


def test_duplicate_address_detected(w):
    m = w.db.get_message_by_name("BAT_IDENT_1")
    data = m.encode({"SerialNumber": 999, "FirmwareMajor": 1, "FirmwareMinor": 0,
                     "FirmwarePatch": 0, "UnitIndex": 1})
    msg = can.Message(arbitration_id=m.frame_id, data=data, is_extended_id=False)
    want = "unit 1: two batteries answer on one CAN address (serials 999 and 24110001)"
    end = time.time() + 10
    while time.time() < end and want not in w.stderr():
        w.bus.send(msg)
        frames(w.bus, w.db, 0.5)
    assert want in w.stderr(), w.stderr()[-2000:]
    # The impostor stops: one battery answers again.
    wait_for(lambda: "unit 1: one battery answers on its address again" in w.stderr(), 15,
             "the conflict's end")


def test_gateway_survives_a_dropped_server(w):
    w.server.send_signal(signal.SIGKILL)
    w.server.wait(timeout=10)
    w.bus.shutdown()
    wait_for(lambda: "connection lost" in w.stderr(), 10, "the gateway's 'connection lost'")
    time.sleep(2.0)
    assert w.gateway.poll() is None, f"the gateway exited: {w.stderr()[-2000:]}"
    w.server, _ = start_server(w.args.serve, w.addr)
    w.bus = join(w.host, w.port)
    wait_for(lambda: w.stderr().count("connected") >= 2, 20, "the gateway's reconnection")
    got = frames(w.bus, w.db, 2.0)
    assert "GW_CMD_1" in got, sorted(set(got))
    assert w.gateway.poll() is None


TESTS = [test_gateway_drives_the_bus, test_duplicate_address_detected,
         test_gateway_survives_a_dropped_server]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--melv", required=True)
    ap.add_argument("--serve", required=True, help="the can_serve example")
    ap.add_argument("--dbc", required=True)
    args = ap.parse_args()
    passed = failed = 0
    try:
        w = World(args)
    except Exception:
        traceback.print_exc()
        print(f"can-gateway: 0 passed, {len(TESTS)} failed (could not start)")
        return 1
    try:
        for t in TESTS:
            try:
                t(w)
                passed += 1
                print(f"  ok    {t.__name__}")
            except Exception as e:
                failed += 1
                print(f"  FAIL  {t.__name__}: {e!r}")
    finally:
        w.close()
    print(f"can-gateway: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
