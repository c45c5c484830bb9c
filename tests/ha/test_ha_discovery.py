"""Home Assistant's own validation of everything the gateway publishes for it (issue 15).

Input: the JSON document of `cargo run -p melv-gateway --example ha_payloads -- SITE.toml` (a real
run of the gateway's site loop: discovery configs, the state JSON, alert events, and the verdicts on
`select`/`number` commands applied through the settings path). scripts/ha-tests.sh makes it.

Checked with the `homeassistant` package from PyPI (imported offline, no running instance):
* every discovery config passes its MQTT platform's DISCOVERY_SCHEMA (sensor, binary_sensor,
  event, select, number), and that schema keeps every key we sent: the discovery schemas drop
  unknown keys silently (vol.REMOVE_EXTRA), so a misspelt option would otherwise pass. The one key
  it may drop is `default_entity_id`, which Home Assistant 2025.10 added (it replaced `object_id`,
  which stops working in 2026.4); the newest Home Assistant that installs on this machine's Python
  3.11 is 2024.3, so that key is checked as 2025.10 validates it: an entity id `<domain>.<slug>` of
  the config's own platform (transcribed from HA's repair message "Replace the object_id option
  with default_entity_id: <domain>.<object_id>");
* every value_template, rendered with Home Assistant's Template engine against the state JSON,
  gives a value the entity accepts (a number for numeric sensors, one of the options for enums and
  selects, ON/OFF for binary sensors);
* the energy dashboard: a dashboard configuration using our sensors for its six flows (grid in and
  out, solar, battery in and out, and the home's consumption as an individual device) passes
  `homeassistant.components.energy.data`'s schemas, and every sensor it names meets
  `energy.validate`'s rules (device class, unit, state class);
* alert events carry an `event_type` their event entity declares; the commands were applied or
  refused with a reason, and the state after an accepted one shows the new mode or reserve.

Usage: python test_ha_discovery.py PAYLOADS.json
Prints one line per test and "ha-tests: N passed, M failed"; exit status 1 on failure.
"""

import json
import re
import sys
import traceback

from homeassistant.components.energy import data as energy_data
from homeassistant.components.energy import validate as energy_validate
from homeassistant.components.mqtt import binary_sensor, event, number, select, sensor
from homeassistant.components.sensor import SensorDeviceClass, SensorStateClass
import jinja2

DOC = json.load(open(sys.argv[1]))
PLATFORMS = {
    "sensor": sensor,
    "binary_sensor": binary_sensor,
    "event": event,
    "select": select,
    "number": number,
}
# Added in Home Assistant 2025.10, unknown to the installed 2024.3 (see the module docstring).
NEWER_KEYS = {"default_entity_id"}
SLUG = re.compile(r"^[a-z0-9_]+$")


def configs():
    for d in DOC["discovery"]:
        component = d["topic"].split("/")[1]
        yield component, d["topic"], d["payload"]


def render(template, value_json):
    # Home Assistant renders an MQTT value_template with Jinja2 and the payload parsed as JSON in
    # `value_json` (helpers/template.py, async_render_with_possible_json_value); its Template class
    # needs a running instance, so plain Jinja2 (which Home Assistant installs) renders it here.
    return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(template).render(
        value_json=value_json)


def test_every_config_passes_home_assistants_discovery_schema():
    n = 0
    for component, topic, payload in configs():
        assert component in PLATFORMS, topic
        validated = PLATFORMS[component].DISCOVERY_SCHEMA(dict(payload))
        dropped = set(payload) - set(validated)
        assert dropped <= NEWER_KEYS, (topic, dropped)
        assert "object_id" not in payload, topic
        domain, _, slug = payload["default_entity_id"].partition(".")
        assert domain == component and SLUG.match(slug), (topic, payload["default_entity_id"])
        n += 1
    assert n == len(DOC["discovery"]) and n > 0, n
    # Unique ids and entity ids are unique.
    for key in ("unique_id", "default_entity_id"):
        ids = [p[key] for _, _, p in configs()]
        assert len(ids) == len(set(ids)), key
    return n


def test_templates_render_values_the_entities_accept():
    st = DOC["state"]
    for component, topic, p in configs():
        if component == "event":
            continue
        v = render(p["value_template"], st)
        assert v is not None and v != "", (topic, v)
        if component == "sensor":
            if "unit_of_measurement" in p:
                float(v)
            else:
                assert v in ("off", "standby", "active", "fault", "latched_fault"), (topic, v)
        elif component == "binary_sensor":
            assert v in (p["payload_on"], p["payload_off"]), (topic, v)
        elif component == "select":
            assert v in p["options"], (topic, v)
        elif component == "number":
            assert p["min"] <= float(v) <= p["max"], (topic, v)


def entity(object_suffix):
    for component, topic, p in configs():
        if component == "sensor" and p["unique_id"].endswith("_" + object_suffix):
            return p
    raise AssertionError("no sensor %s" % object_suffix)


def test_the_energy_dashboards_six_flows_have_sensors():
    ids = {k: entity(k)["default_entity_id"] for k in (
        "grid_import_kwh", "grid_export_kwh", "pv_kwh", "battery_charge_kwh",
        "battery_discharge_kwh", "load_kwh")}
    prefs = [
        # As the energy panel saves a grid without prices.
        {"type": "grid",
         "flow_from": [{"stat_energy_from": ids["grid_import_kwh"], "stat_cost": None,
                        "entity_energy_price": None, "number_energy_price": None}],
         "flow_to": [{"stat_energy_to": ids["grid_export_kwh"], "stat_compensation": None,
                      "entity_energy_price": None, "number_energy_price": None}],
         "cost_adjustment_day": 0},
        {"type": "solar", "stat_energy_from": ids["pv_kwh"]},
        {"type": "battery", "stat_energy_from": ids["battery_discharge_kwh"],
         "stat_energy_to": ids["battery_charge_kwh"]},
    ]
    energy_data.ENERGY_SOURCE_SCHEMA(prefs)
    energy_data.DEVICE_CONSUMPTION_SCHEMA({"stat_consumption": ids["load_kwh"]})
    units = energy_validate.ENERGY_USAGE_UNITS[SensorDeviceClass.ENERGY]
    for key in ids:
        p = entity(key)
        assert p["device_class"] in energy_validate.ENERGY_USAGE_DEVICE_CLASSES, (key, p)
        assert p["unit_of_measurement"] in units, (key, p)
        # A cumulative counter: total_increasing (a measurement would need last_reset).
        assert p["state_class"] == SensorStateClass.TOTAL_INCREASING, (key, p)
        assert float(render(p["value_template"], DOC["state"])) >= 0, key
    soc = entity("soc")
    assert soc["state_class"] == SensorStateClass.MEASUREMENT and soc["device_class"] == "battery"
    # Per battery: SOC, power, temperature and status.
    for n in range(1, DOC["units"] + 1):
        for k in ("soc", "power_w", "temperature_c", "status"):
            entity("u%d_%s" % (n, k))


def test_alerts_have_a_binary_sensor_and_an_event_each():
    binary = {p["unique_id"].rsplit("_", 1)[1] for c, _, p in configs() if c == "binary_sensor"}
    events = {p["unique_id"].rsplit("_", 1)[1]: p for c, _, p in configs() if c == "event"}
    assert binary == set(events) and len(binary) >= 20, (binary, set(events))
    assert DOC["state"]["alert_63"] == "ON", DOC["state"]["alert_63"]  # a CAN cable was cut
    assert DOC["events"], "no alert event in the run"
    for e in DOC["events"]:
        code = e["topic"].rsplit("/", 1)[1]
        declared = events[code]
        assert e["topic"] == declared["state_topic"], e
        assert e["payload"]["event_type"] in declared["event_types"], e


def test_select_and_number_go_through_the_settings_path():
    by = {(c["topic"].rsplit("/", 1)[1], c["payload"]): c for c in DOC["commands"]}
    ok = by[("mode", "time_of_use")]
    assert ok["accepted"] and ok["state_after"]["mode"] == "time_of_use", ok
    ok = by[("reserve", "30")]
    assert ok["accepted"] and ok["state_after"]["reserve_pct"] == 30.0, ok
    bad = by[("reserve", "150")]
    assert not bad["accepted"] and "150" in bad["reason"], bad
    assert bad["state_after"]["reserve_pct"] == 30.0, bad
    bad = by[("mode", "turbo")]
    assert not bad["accepted"] and "turbo" in bad["reason"], bad
    # The command topics are those the select and the number publish to.
    filt = DOC["command_filter"].rstrip("+")
    for c, _, p in configs():
        if c in ("select", "number"):
            assert p["command_topic"].startswith(filt), p["command_topic"]


TESTS = [
    test_every_config_passes_home_assistants_discovery_schema,
    test_templates_render_values_the_entities_accept,
    test_the_energy_dashboards_six_flows_have_sensors,
    test_alerts_have_a_binary_sensor_and_an_event_each,
    test_select_and_number_go_through_the_settings_path,
]


def main():
    passed = failed = 0
    for t in TESTS:
        try:
            r = t()
            passed += 1
            print("ok   %s%s" % (t.__name__, "" if r is None else " (%s configs)" % r))
        except Exception:
            failed += 1
            print("FAIL %s" % t.__name__)
            traceback.print_exc()
    print("ha-tests: %d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
