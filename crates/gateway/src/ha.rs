//! Home Assistant MQTT discovery (`--ha-discovery`).
//!
//! Home Assistant creates entities from retained JSON configs published to
//! `<discovery_prefix>/<component>/[<node_id>/]<object_id>/config` (home-assistant.io/integrations/
//! mqtt, "MQTT Discovery"; default prefix `homeassistant`). Each entity reads one field of one
//! retained state topic through a `value_template`, and is available while the gateway's `/status`
//! says `online` (the broker publishes `offline`, our last will, when the gateway vanishes).
//!
//! What the gateway publishes:
//! * sensors for the site (SOC, powers) and the six flows of HA's energy dashboard: grid in and
//!   out, solar, battery in and out, and home (the load). The energy dashboard accepts only sensors
//!   with `device_class: energy`, a unit of energy and `state_class: total` or `total_increasing`
//!   (developers.home-assistant.io, "Sensor entity", long-term statistics). Our cumulative
//!   counters are persisted and only grow, so they are `total_increasing`; power and SOC are
//!   `measurement`;
//! * per battery unit: SOC, power, temperature (the hottest sensor) and status (its lifecycle);
//! * per alert code of the manual's catalogue (6.3): a `binary_sensor` (device class `problem`,
//!   on while the alert is active at any unit or at the gateway) and an `event` entity that fires
//!   `raised` and `cleared` as the alert records are made;
//! * a `select` for the working mode and a `number` for the backup reserve. Their commands
//!   ([`command`]) become new settings that go through the same validation as the cloud's
//!   (`SiteRuntime::apply_settings`, `melv_ems::Settings::validate`); the runtime keeps an audit
//!   record of each change.
//!
//! Entity ids are suggested with `default_entity_id` (`<domain>.<slug>`), which replaced the
//! `object_id` option in Home Assistant 2025.10 (`object_id` stops working in 2026.4: HA's repair
//! message, "Replace the object_id option with default_entity_id").

use crate::record::{AlertRecord, Telemetry, Topics};
use melv_core::{AlertCode, Lifecycle, WorkingMode};
use melv_ems::Settings;
use serde_json::{json, Map, Value};

/// Discovery prefix Home Assistant listens on by default.
pub const DISCOVERY_PREFIX: &str = "homeassistant";

/// The working modes the `select` offers, as the settings spell them.
pub const MODES: [WorkingMode; 4] = [
    WorkingMode::SelfConsumption,
    WorkingMode::TimeOfUse,
    WorkingMode::GridServices,
    WorkingMode::OffGridBackup,
];

/// A command payload longer than this is refused unread (a mode name or a number fits easily).
pub const MAX_COMMAND_BYTES: usize = 64;

/// One sensor: object id, name, unit, device class, state class.
struct Sensor {
    id: &'static str,
    name: &'static str,
    unit: &'static str,
    device_class: &'static str,
    state_class: &'static str,
}

const fn sensor(
    id: &'static str,
    name: &'static str,
    unit: &'static str,
    device_class: &'static str,
    state_class: &'static str,
) -> Sensor {
    Sensor {
        id,
        name,
        unit,
        device_class,
        state_class,
    }
}

const M: &str = "measurement";
const TI: &str = "total_increasing";

/// The site's sensors: SOC, the four powers, and the six energy flows of the energy dashboard.
const SENSORS: [Sensor; 11] = [
    sensor("soc", "Battery SOC", "%", "battery", M),
    sensor("battery_power_w", "Battery power", "W", "power", M),
    sensor("grid_power_w", "Grid power", "W", "power", M),
    sensor("pv_power_w", "PV power", "W", "power", M),
    sensor("load_power_w", "Load power", "W", "power", M),
    sensor(
        "battery_charge_kwh",
        "Battery energy in",
        "kWh",
        "energy",
        TI,
    ),
    sensor(
        "battery_discharge_kwh",
        "Battery energy out",
        "kWh",
        "energy",
        TI,
    ),
    sensor("grid_import_kwh", "Grid import", "kWh", "energy", TI),
    sensor("grid_export_kwh", "Grid export", "kWh", "energy", TI),
    sensor("pv_kwh", "PV production", "kWh", "energy", TI),
    sensor("load_kwh", "Home consumption", "kWh", "energy", TI),
];

/// The per-unit sensors (object id `u{n}_{id}`); `u{n}_status` (the lifecycle) is added to them.
const UNIT_SENSORS: [Sensor; 3] = [
    sensor("soc", "SOC", "%", "battery", M),
    sensor("power_w", "power", "W", "power", M),
    sensor("temperature_c", "temperature", "°C", "temperature", M),
];

/// `gw-1` as an entity-id slug (`gw_1`): entity ids take lowercase letters, digits and `_`.
fn slug(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The topic under which Home Assistant's commands arrive: `melv/v1/{gw}/ha/set/{what}`.
pub fn command_topic(topics: &Topics, what: &str) -> String {
    format!("{}/set/{what}", ha_root(topics))
}

/// The subscription that receives every command.
pub fn command_filter(topics: &Topics) -> String {
    format!("{}/set/+", ha_root(topics))
}

/// The topic of alert `code`'s event entity (not retained: an event is a moment).
pub fn alert_topic(topics: &Topics, code: u8) -> String {
    format!("{}/alert/{code}", ha_root(topics))
}

fn ha_root(topics: &Topics) -> &str {
    topics
        .ha_state
        .strip_suffix("/state")
        .unwrap_or(&topics.ha_state)
}

/// One config: the keys every entity has, then the component's own.
fn config(
    id: &str,
    topics: &Topics,
    component: &str,
    object: &str,
    name: &str,
    own: Value,
) -> (String, Vec<u8>) {
    let mut cfg = Map::new();
    cfg.insert("name".into(), name.into());
    cfg.insert("unique_id".into(), format!("melv_{id}_{object}").into());
    cfg.insert(
        "default_entity_id".into(),
        format!("{component}.melv_{}_{object}", slug(id)).into(),
    );
    cfg.insert(
        "availability".into(),
        json!([{"topic": topics.status, "value_template": "{{ value_json.state }}"}]),
    );
    cfg.insert(
        "device".into(),
        json!({
            "identifiers": [format!("melv_{id}")],
            "name": format!("M-ELV {id}"),
            "manufacturer": "ATMOCE",
            "model": "M-ELV (MS-7K-U)",
        }),
    );
    if let Value::Object(o) = own {
        cfg.extend(o);
    }
    (
        format!("{DISCOVERY_PREFIX}/{component}/melv_{id}/{object}/config"),
        Value::Object(cfg).to_string().into_bytes(),
    )
}

fn sensor_config(topics: &Topics, object: &str, s: &Sensor) -> Value {
    json!({
        "state_topic": topics.ha_state,
        "value_template": format!("{{{{ value_json.{object} }}}}"),
        "unit_of_measurement": s.unit,
        "device_class": s.device_class,
        "state_class": s.state_class,
    })
}

/// The retained discovery messages `(topic, payload)` of gateway `id` with `units` batteries.
pub fn discovery(id: &str, topics: &Topics, units: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for s in &SENSORS {
        let own = sensor_config(topics, s.id, s);
        out.push(config(id, topics, "sensor", s.id, s.name, own));
    }
    for n in 1..=units {
        for s in &UNIT_SENSORS {
            let object = format!("u{n}_{}", s.id);
            let name = format!("Battery {n} {}", s.name);
            let own = sensor_config(topics, &object, s);
            out.push(config(id, topics, "sensor", &object, &name, own));
        }
        // A text sensor: the `enum` device class needs `options`, which the MQTT sensor of Home
        // Assistant 2024.3 drops from a discovery config (so it would refuse every state).
        let object = format!("u{n}_status");
        let own = json!({
            "state_topic": topics.ha_state,
            "value_template": format!("{{{{ value_json.{object} }}}}"),
            "icon": "mdi:battery-heart-variant",
        });
        let name = format!("Battery {n} status");
        out.push(config(id, topics, "sensor", &object, &name, own));
    }
    for code in AlertCode::all() {
        let c = code.get();
        let issue = code.info().issue;
        let object = format!("alert_{c}");
        let own = json!({
            "state_topic": topics.ha_state,
            "value_template": format!("{{{{ value_json.{object} }}}}"),
            "payload_on": "ON",
            "payload_off": "OFF",
            "device_class": "problem",
        });
        let name = format!("Alert {c}: {issue}");
        out.push(config(id, topics, "binary_sensor", &object, &name, own));
        let own = json!({
            "state_topic": alert_topic(topics, c),
            "event_types": ["raised", "cleared"],
        });
        let name = format!("Alert {c} event");
        let object = format!("alert_event_{c}");
        out.push(config(id, topics, "event", &object, &name, own));
    }
    let modes: Vec<String> = MODES.iter().map(|m| m.to_string()).collect();
    let own = json!({
        "state_topic": topics.ha_state,
        "value_template": "{{ value_json.mode }}",
        "command_topic": command_topic(topics, "mode"),
        "options": modes,
        "entity_category": "config",
    });
    out.push(config(id, topics, "select", "mode", "Working mode", own));
    let own = json!({
        "state_topic": topics.ha_state,
        "value_template": "{{ value_json.reserve_pct }}",
        "command_topic": command_topic(topics, "reserve"),
        "min": 0,
        "max": 100,
        "step": 1,
        "unit_of_measurement": "%",
        "mode": "box",
        "entity_category": "config",
    });
    out.push(config(
        id,
        topics,
        "number",
        "reserve",
        "Backup reserve",
        own,
    ));
    out
}

fn lifecycle_name(l: Lifecycle) -> String {
    serde_json::to_value(l)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The state JSON that the entities read, from the latest telemetry record and the settings in
/// force (mode and reserve, for the `select` and the `number`).
pub fn state(t: &Telemetry, settings: &Settings) -> Value {
    let kwh = |wh: f64| (wh / 10.0).round() / 100.0;
    let mut st = json!({
        "soc": (t.site.soc * 1000.0).round() / 10.0,
        "battery_power_w": t.site.battery_w,
        "grid_power_w": t.site.grid_w,
        "pv_power_w": t.site.pv_w,
        "load_power_w": t.site.load_w,
        "battery_charge_kwh": kwh(t.counters.battery_charge_wh),
        "battery_discharge_kwh": kwh(t.counters.battery_discharge_wh),
        "grid_import_kwh": kwh(t.counters.grid_import_wh),
        "grid_export_kwh": kwh(t.counters.grid_export_wh),
        "pv_kwh": kwh(t.counters.pv_wh),
        "load_kwh": kwh(t.counters.load_wh),
        "t_utc_s": t.t_utc_s,
    });
    show_settings(&mut st, settings);
    let Value::Object(o) = &mut st else {
        return st;
    };
    for b in &t.batteries {
        let n = b.unit;
        o.insert(
            format!("u{n}_soc"),
            ((b.soc * 1000.0).round() / 10.0).into(),
        );
        o.insert(format!("u{n}_power_w"), b.power_w.into());
        o.insert(format!("u{n}_temperature_c"), b.max_temp_c.into());
        o.insert(format!("u{n}_status"), lifecycle_name(b.lifecycle).into());
    }
    for code in AlertCode::all() {
        let c = code.get();
        let active =
            t.site.alerts.contains(&c) || t.batteries.iter().any(|b| b.alerts.contains(&c));
        o.insert(
            format!("alert_{c}"),
            if active { "ON" } else { "OFF" }.into(),
        );
    }
    st
}

/// Puts the settings' mode and reserve into a state JSON (what the `select` and `number` read).
pub fn show_settings(st: &mut Value, settings: &Settings) {
    if let Value::Object(o) = st {
        o.insert("mode".into(), settings.mode.to_string().into());
        o.insert(
            "reserve_pct".into(),
            ((settings.reserve_soc * 1000.0).round() / 10.0).into(),
        );
    }
}

/// The event an alert record fires on its event entity: `(topic, payload)`.
pub fn alert_event(topics: &Topics, a: &AlertRecord) -> (String, Vec<u8>) {
    let payload = json!({
        "event_type": if a.raised { "raised" } else { "cleared" },
        "unit": a.unit,
        "serial": a.serial,
        "issue": a.issue,
        "severity": a.severity,
        "t_utc_s": a.t_utc_s,
    });
    (
        alert_topic(topics, a.code),
        payload.to_string().into_bytes(),
    )
}

/// A command from Home Assistant that cannot become settings, naming the topic and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Home Assistant command on {topic}: {reason}")]
pub struct CommandError {
    pub topic: String,
    pub reason: String,
}

/// The settings a command asks for: `current` with the mode (`set/mode`, one of [`MODES`]) or the
/// reserve (`set/reserve`, percent 0 to 100) changed. The caller applies them through the
/// settings path, which validates them against the site (e.g. a reserve the site refuses).
/// `Ok(None)`: not a command topic of this gateway.
pub fn command(
    topics: &Topics,
    topic: &str,
    payload: &[u8],
    current: &Settings,
) -> Result<Option<Settings>, CommandError> {
    let Some(what) = topic
        .strip_prefix(ha_root(topics))
        .and_then(|r| r.strip_prefix("/set/"))
    else {
        return Ok(None);
    };
    let fail = |reason: String| CommandError {
        topic: topic.to_string(),
        reason,
    };
    if payload.len() > MAX_COMMAND_BYTES {
        return Err(fail(format!(
            "payload of {} bytes (at most {MAX_COMMAND_BYTES})",
            payload.len()
        )));
    }
    let text = std::str::from_utf8(payload)
        .map_err(|e| fail(format!("payload is not UTF-8: {e}")))?
        .trim();
    let mut s = current.clone();
    match what {
        "mode" => {
            s.mode = MODES
                .iter()
                .copied()
                .find(|m| m.to_string() == text)
                .ok_or_else(|| {
                    let names: Vec<String> = MODES.iter().map(|m| m.to_string()).collect();
                    fail(format!("{text:?} is not one of {}", names.join(", ")))
                })?;
        }
        "reserve" => {
            let pct: f64 = text
                .parse()
                .map_err(|e| fail(format!("{text:?} is not a number: {e}")))?;
            if !(0.0..=100.0).contains(&pct) {
                return Err(fail(format!("{pct} % is outside 0 to 100 %")));
            }
            s.reserve_soc = pct / 100.0;
        }
        other => return Err(fail(format!("unknown command {other:?} (mode, reserve)"))),
    }
    Ok(Some(s))
}

#[cfg(test)]
#[path = "ha_tests.rs"]
mod tests;
