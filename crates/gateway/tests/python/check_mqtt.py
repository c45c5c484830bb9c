"""Check a live `melv gateway` from the outside with paho-mqtt (a client the gateway never saw).

Starts the gateway (command given with --gateway-cmd) against a broker, subscribes to its topic tree
and to Home Assistant discovery, and checks:
  * every telemetry / alert / status / settings-ack payload against the JSON schemas below
    (docs/gateway.md is the prose version);
  * sequence numbers: unique, consecutive from the first one seen;
  * settings: a valid version is applied and acknowledged, an invalid one is refused with a reason
    naming the field, and telemetry reports the version in force;
  * Home Assistant discovery follows HA's MQTT conventions: config topic
    `homeassistant/sensor/<node_id>/<object_id>/config`, unique_id, state_topic, value_template
    reading a field the state JSON carries, availability on the status topic, and the energy
    dashboard's requirements (device_class energy, unit kWh, state_class total_increasing, values
    never decreasing);
  * on SIGTERM: exit 0, retained status becomes "offline".
Cleans its retained messages from the broker afterwards. Prints "ok NAME" or "FAIL NAME: why" per
check and exits non-zero when any failed.
"""

import argparse
import json
import sqlite3
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time

import jsonschema
import paho.mqtt.client as mqtt

NUM = {"type": "number"}
INT = {"type": "integer"}
STR = {"type": "string"}
CODES = {"type": "array", "items": {"type": "integer", "minimum": 2, "maximum": 64}}

# melv_wire::SCHEMA; the golden payloads are in crates/wire/tests/fixtures.
SCHEMA = {"const": "melv.gateway.v2"}

ENVELOPE = {
    "schema": SCHEMA,
    "gateway": STR,
    "seq": {"type": "integer", "minimum": 1},
    "kind": {"enum": ["telemetry", "alert"]},
    "t_utc_s": INT,
}

TELEMETRY = {
    "type": "object",
    "required": list(ENVELOPE) + ["interval_s", "site", "counters", "batteries"],
    "properties": {
        **ENVELOPE,
        "kind": {"const": "telemetry"},
        "interval_s": {"const": 60.0},
        "site": {
            "type": "object",
            "required": ["grid_w", "pv_w", "load_w", "battery_w", "soc", "status", "reason", "mode",
                         "settings_version", "alerts"],
            "properties": {"grid_w": NUM, "pv_w": {"type": "number", "minimum": 0},
                           "load_w": {"type": "number", "minimum": 0}, "battery_w": NUM,
                           "soc": {"type": "number", "minimum": 0, "maximum": 1},
                           "status": {"enum": ["normal", "faulty", "offline"]}, "reason": STR,
                           "mode": {"enum": ["self_consumption", "time_of_use", "grid_services",
                                             "off_grid_backup"]}, "settings_version": INT, "alerts": CODES},
        },
        "counters": {
            "type": "object",
            "required": ["grid_import_wh", "grid_export_wh", "pv_wh", "load_wh", "battery_charge_wh",
                         "battery_discharge_wh"],
            "additionalProperties": {"type": "number", "minimum": 0},
        },
        "batteries": {
            "type": "array", "minItems": 1, "maxItems": 6,
            "items": {
                "type": "object",
                "required": ["unit", "serial", "soc", "soh", "power_w", "alerts", "lifecycle",
                             "soc_led", "status_led", "min_temp_c", "max_temp_c", "ac_charged_wh", "ac_discharged_wh"],
                "properties": {"unit": {"type": "integer", "minimum": 1, "maximum": 6}, "serial": INT,
                               "soc": {"type": "number", "minimum": 0, "maximum": 1},
                               "soh": {"type": "number", "minimum": 0, "maximum": 1}, "power_w": NUM,
                               "alerts": CODES,
                               "lifecycle": {"enum": ["off", "standby", "active", "fault", "latched_fault"]},
                               "soc_led": {"oneOf": [
                                   {"type": "object", "required": ["state"], "additionalProperties": False,
                                    "properties": {"state": {"const": "off"}}},
                                   {"type": "object", "required": ["state", "percent"], "additionalProperties": False,
                                    "properties": {"state": {"const": "solid_blue"},
                                                   "percent": {"type": "integer", "minimum": 0, "maximum": 100}}}]},
                               "status_led": {"enum": ["off", "dim", "quick_flash", "solid_red"]},
                               "min_temp_c": NUM,
                               "max_temp_c": NUM, "ac_charged_wh": NUM, "ac_discharged_wh": NUM},
            },
        },
    },
}

ALERT = {
    "type": "object",
    "required": list(ENVELOPE) + ["unit", "serial", "code", "raised", "issue", "severity"],
    "properties": {**ENVELOPE, "kind": {"const": "alert"},
                   "unit": {"type": ["integer", "null"]}, "serial": {"type": ["integer", "null"]}, "code": INT, "raised": {"type": "boolean"},
                   "issue": STR, "severity": {"enum": ["warning", "fault", "critical"]}},
}

STATUS = {
    "type": "object",
    "required": ["schema", "gateway", "state"],
    "properties": {"schema": SCHEMA, "gateway": STR,
                   "state": {"enum": ["online", "offline"]}, "queue_len": INT, "dropped": INT,
                   "next_seq": INT, "settings_version": INT},
}

ACK = {
    "type": "object",
    "required": ["schema", "gateway", "version", "accepted", "reason", "applied_version"],
    "properties": {"schema": SCHEMA, "gateway": STR,
                   "version": {"type": ["integer", "null"]}, "accepted": {"type": "boolean"},
                   "reason": {"type": ["string", "null"]}, "applied_version": INT},
}

HA_CONFIG = {
    "type": "object",
    # Sensors with a unit also have a device and state class; a unit's status is a text sensor.
    # `default_entity_id` replaced `object_id` in Home Assistant 2025.10.
    "required": ["name", "unique_id", "default_entity_id", "state_topic", "value_template",
                 "availability", "device"],
    "not": {"required": ["object_id"]},
    "properties": {
        "device": {"type": "object", "required": ["identifiers", "name", "manufacturer", "model"]},
        "availability": {"type": "array", "minItems": 1,
                         "items": {"type": "object", "required": ["topic"]}},
        "state_class": {"enum": ["measurement", "total", "total_increasing"]},
    },
}

results = []


def check(name, ok, why=""):
    results.append(ok)
    print(f"ok {name}" if ok else f"FAIL {name}: {why}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--gateway-cmd", required=True, help="e.g. 'target/debug/melv gateway'")
    ap.add_argument("--site", required=True)
    a = ap.parse_args()

    gw = f"py-{os.getpid()}"
    base = f"melv/v1/{gw}"
    msgs = []  # (topic, payload bytes, retain)
    lock = threading.Lock()

    def on_message(_c, _u, m):
        with lock:
            msgs.append((m.topic, m.payload, m.retain))

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"melv-check-{gw}")
    c.on_message = on_message
    c.connect(a.host, a.port)
    c.subscribe([(f"{base}/#", 1), (f"homeassistant/+/melv_{gw}/+/config", 1)])
    c.loop_start()
    time.sleep(0.3)

    state = tempfile.mkdtemp(prefix="melv-gw-py-")
    cmd = shlex.split(a.gateway_cmd) + [
        a.site, "--mqtt", f"mqtt://{a.host}:{a.port}", "--gateway-id", gw, "--state-dir", state,
        "--speed", "600", "--cycle", "10", "--ha-discovery", "--confirm", "broker"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)

    def wait_for(pred, timeout):
        t0 = time.time()
        while time.time() - t0 < timeout:
            with lock:
                if pred(list(msgs)):
                    return True
            time.sleep(0.05)
        return False

    def of(topic, ms):
        return [json.loads(p) for t, p, _ in ms if t == topic and p]

    ok = wait_for(lambda ms: len(of(f"{base}/telemetry", ms)) >= 5, 20)
    check("telemetry arrives", ok, "fewer than 5 records in 20 s")

    # Settings: a valid version, then an invalid one (reserve above 100 %).
    valid = {"version": 1, "settings": {"mode": "self_consumption", "reserve_soc": 0.2,
                                         "calibration_interval_days": 30}}
    c.publish(f"{base}/settings", json.dumps(valid), qos=1, retain=True)
    ok = wait_for(lambda ms: any(x.get("version") == 1 for x in of(f"{base}/settings/ack", ms)), 10)
    acks = []
    with lock:
        acks = of(f"{base}/settings/ack", msgs)
    a1 = next((x for x in acks if x.get("version") == 1), None)
    check("valid settings acknowledged as accepted", ok and a1 and a1["accepted"] and
          a1["applied_version"] == 1, str(a1))
    invalid = {"version": 2, "settings": {"mode": "self_consumption", "reserve_soc": 1.5,
                                           "calibration_interval_days": 30}}
    c.publish(f"{base}/settings", json.dumps(invalid), qos=1, retain=True)
    ok = wait_for(lambda ms: any(x.get("version") == 2 for x in of(f"{base}/settings/ack", ms)), 10)
    with lock:
        acks = of(f"{base}/settings/ack", msgs)
    a2 = next((x for x in acks if x.get("version") == 2), None)
    check("invalid settings refused with the field named", ok and a2 and not a2["accepted"] and
          "reserve_soc" in (a2["reason"] or "") and a2["applied_version"] == 1, str(a2))
    ok = wait_for(lambda ms: any(t["site"]["settings_version"] == 1
                                 for t in of(f"{base}/telemetry", ms)), 10)
    check("telemetry reports the settings version in force", ok)

    # Home Assistant's number and select: through the settings path, audited.
    c.publish(f"{base}/ha/set/reserve", b"35", qos=1)
    ok = wait_for(lambda ms: any(s.get("reserve_pct") == 35.0 for s in of(f"{base}/ha/state", ms)), 10)
    check("HA number: reserve 35 % applied and shown", ok)
    # The settings in force (version 1 above) have no TOU periods: Settings::validate refuses
    # time_of_use (manual 5.1 note).
    c.publish(f"{base}/ha/set/mode", b"time_of_use", qos=1)
    c.publish(f"{base}/ha/set/reserve", b"150", qos=1)
    time.sleep(1.5)  # let a few HA state updates through
    with lock:
        last = (of(f"{base}/ha/state", msgs) or [{}])[-1]
    check("HA refused commands change nothing", last.get("reserve_pct") == 35.0 and
          last.get("mode") == "self_consumption", str({k: last.get(k) for k in ("mode", "reserve_pct")}))

    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = -1
    check("SIGTERM: graceful exit 0", rc == 0, f"exit {rc}")
    summary = json.loads(proc.stdout.read() or b"{}")
    check("SIGTERM: queue flushed", summary.get("queue_left") == 0, str(summary))
    ok = wait_for(lambda ms: any(s["state"] == "offline" for s in of(f"{base}/status", ms)), 5)
    check("status goes offline", ok)
    con = sqlite3.connect(os.path.join(state, "queue.sqlite"))
    row = con.execute("SELECT value FROM meta WHERE key = 'ha_audit'").fetchone()
    con.close()
    audit = json.loads(row[0]) if row else []
    check("HA commands audited in the queue (accepted, refused by the settings rules, refused)",
          [a["accepted"] for a in audit] == [True, False, False]
          and "tou" in (audit[1]["reason"] or "") and "150" in (audit[2]["reason"] or ""),
          str(audit))
    time.sleep(0.5)

    with lock:
        ms = list(msgs)
    # Schemas.
    for name, topic, schema in [("telemetry", "telemetry", TELEMETRY), ("alerts", "alerts", ALERT),
                                ("status", "status", STATUS), ("settings ack", "settings/ack", ACK)]:
        errs = []
        for p in of(f"{base}/{topic}", ms):
            try:
                jsonschema.validate(p, schema)
            except jsonschema.ValidationError as e:
                errs.append(e.message)
        check(f"schema of {name} ({len(of(f'{base}/{topic}', ms))} messages)", not errs,
              "; ".join(errs[:3]))
    # Sequence numbers: unique and consecutive (no outage here, so no duplicates either).
    seqs = sorted(p["seq"] for t in ("telemetry", "alerts") for p in of(f"{base}/{t}", ms))
    check("sequence numbers unique and gapless", seqs == list(range(1, len(seqs) + 1)),
          f"{seqs[:10]}... ({len(seqs)})")
    check("summary's next_seq matches what arrived", summary.get("next_seq") == len(seqs) + 1,
          f"{summary.get('next_seq')} vs {len(seqs)}")

    # Home Assistant.
    # Every entity's config is cleaned up at the end; the sensors are checked here (all of them,
    # with Home Assistant's own schemas, in tests/ha by scripts/ha-tests.sh).
    all_configs = [t for t, p, _ in ms if t.startswith("homeassistant/") and p]
    configs = {t: json.loads(p) for t, p, _ in ms if t.startswith("homeassistant/sensor/") and p}
    states = of(f"{base}/ha/state", ms)
    check("HA discovery configs published", len(configs) >= 5, str(len(configs)))
    check("HA state published", len(states) >= 1, "none")
    errs = []
    uids = set()
    for t, cfg in configs.items():
        parts = t.split("/")
        if len(parts) != 5 or parts[0] != "homeassistant" or parts[1] != "sensor" or parts[4] != "config":
            errs.append(f"topic {t}")
        try:
            jsonschema.validate(cfg, HA_CONFIG)
        except jsonschema.ValidationError as e:
            errs.append(f"{t}: {e.message}")
            continue
        uids.add(cfg["unique_id"])
        if cfg["state_topic"] != f"{base}/ha/state":
            errs.append(f"{t}: state_topic {cfg['state_topic']}")
        if cfg["availability"][0]["topic"] != f"{base}/status":
            errs.append(f"{t}: availability topic")
        field = cfg["value_template"].strip("{} ").removeprefix("value_json.")
        if "unit_of_measurement" not in cfg:
            if not states or not isinstance(states[-1].get(field), str):
                errs.append(f"{t}: state has no text {field}")
            continue
        if not all(k in cfg for k in ("device_class", "state_class")):
            errs.append(f"{t}: a sensor with a unit needs device_class and state_class")
            continue
        if not states or not isinstance(states[-1].get(field), (int, float)):
            errs.append(f"{t}: state has no number {field}")
        if cfg["device_class"] == "energy":
            if cfg["state_class"] != "total_increasing" or cfg["unit_of_measurement"] not in ("kWh", "Wh"):
                errs.append(f"{t}: energy sensor needs total_increasing and kWh/Wh")
            vals = [s[field] for s in states]
            if any(b < a for a, b in zip(vals, vals[1:])):
                errs.append(f"{t}: {field} decreased")
        if cfg["device_class"] == "power" and cfg["unit_of_measurement"] != "W":
            errs.append(f"{t}: power in {cfg['unit_of_measurement']}")
        if cfg["device_class"] == "battery" and cfg["unit_of_measurement"] != "%":
            errs.append(f"{t}: battery SOC in {cfg['unit_of_measurement']}")
    check("HA discovery follows Home Assistant's conventions", not errs, "; ".join(errs[:4]))
    check("HA unique_ids are unique", len(uids) == len(configs), str(len(uids)))
    energy = [cfg for cfg in configs.values() if cfg.get("device_class") == "energy"]
    check("HA energy dashboard sensors (grid import/export, PV, battery in/out, home)", len(energy) >= 6,
          str(len(energy)))

    # Clean the retained messages this run left on the broker.
    for t in [f"{base}/status", f"{base}/ha/state", f"{base}/settings"] + all_configs:
        c.publish(t, b"", qos=1, retain=True).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()
    passed = sum(results)
    print(f"python checks: {passed} passed, {len(results) - passed} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
