//! Home Assistant MQTT discovery (`--ha-discovery`).
//!
//! Home Assistant creates entities from retained JSON configs published to
//! `<discovery_prefix>/<component>/[<node_id>/]<object_id>/config` (home-assistant.io/integrations/
//! mqtt, "MQTT Discovery"; default prefix `homeassistant`). Each sensor reads one field of one retained
//! state topic through a `value_template`, and is available while the gateway's `/status` says
//! `online` (the broker publishes `offline`, our last will, when the gateway vanishes).
//!
//! The energy dashboard accepts only sensors with `device_class: energy`, a unit of energy and
//! `state_class: total` or `total_increasing` (developers.home-assistant.io, "Sensor entity",
//! long-term statistics). Our cumulative counters are persisted and only grow, so they are
//! `total_increasing`; power and SOC are `measurement`.

use crate::record::{Telemetry, Topics};
use serde_json::{json, Value};

/// Discovery prefix Home Assistant listens on by default.
pub const DISCOVERY_PREFIX: &str = "homeassistant";

/// One sensor: object id, name, field of the state JSON, unit, device class, state class.
struct Sensor {
    id: &'static str,
    name: &'static str,
    unit: &'static str,
    device_class: &'static str,
    state_class: &'static str,
}

const SENSORS: [Sensor; 10] = [
    Sensor {
        id: "soc",
        name: "Battery SOC",
        unit: "%",
        device_class: "battery",
        state_class: "measurement",
    },
    Sensor {
        id: "battery_power_w",
        name: "Battery power",
        unit: "W",
        device_class: "power",
        state_class: "measurement",
    },
    Sensor {
        id: "grid_power_w",
        name: "Grid power",
        unit: "W",
        device_class: "power",
        state_class: "measurement",
    },
    Sensor {
        id: "pv_power_w",
        name: "PV power",
        unit: "W",
        device_class: "power",
        state_class: "measurement",
    },
    Sensor {
        id: "load_power_w",
        name: "Load power",
        unit: "W",
        device_class: "power",
        state_class: "measurement",
    },
    Sensor {
        id: "battery_charge_kwh",
        name: "Battery energy in",
        unit: "kWh",
        device_class: "energy",
        state_class: "total_increasing",
    },
    Sensor {
        id: "battery_discharge_kwh",
        name: "Battery energy out",
        unit: "kWh",
        device_class: "energy",
        state_class: "total_increasing",
    },
    Sensor {
        id: "grid_import_kwh",
        name: "Grid import",
        unit: "kWh",
        device_class: "energy",
        state_class: "total_increasing",
    },
    Sensor {
        id: "grid_export_kwh",
        name: "Grid export",
        unit: "kWh",
        device_class: "energy",
        state_class: "total_increasing",
    },
    Sensor {
        id: "pv_kwh",
        name: "PV production",
        unit: "kWh",
        device_class: "energy",
        state_class: "total_increasing",
    },
];

/// The retained discovery messages `(topic, payload)` of gateway `id`.
pub fn discovery(id: &str, topics: &Topics) -> Vec<(String, Vec<u8>)> {
    SENSORS
        .iter()
        .map(|s| {
            let cfg = json!({
                "name": s.name,
                "unique_id": format!("melv_{id}_{}", s.id),
                "object_id": format!("melv_{id}_{}", s.id),
                "state_topic": topics.ha_state,
                "value_template": format!("{{{{ value_json.{} }}}}", s.id),
                "unit_of_measurement": s.unit,
                "device_class": s.device_class,
                "state_class": s.state_class,
                "availability": [{"topic": topics.status, "value_template": "{{ value_json.state }}"}],
                "device": {
                    "identifiers": [format!("melv_{id}")],
                    "name": format!("M-ELV {id}"),
                    "manufacturer": "ATMOCE",
                    "model": "M-ELV (MS-7K-U)",
                },
            });
            (
                format!("{DISCOVERY_PREFIX}/sensor/melv_{id}/{}/config", s.id),
                cfg.to_string().into_bytes(),
            )
        })
        .collect()
}

/// The state JSON that the sensors read, from the latest telemetry record.
pub fn state(t: &Telemetry) -> Value {
    let kwh = |wh: f64| (wh / 10.0).round() / 100.0;
    json!({
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
        "t_utc_s": t.t_utc_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sensor_reads_a_field_of_the_state() {
        let topics = Topics::new("gw-1").unwrap();
        let msgs = discovery("gw-1", &topics);
        assert_eq!(msgs.len(), SENSORS.len());
        let t = Telemetry {
            t_utc_s: 60,
            interval_s: 60.0,
            site: crate::record::SiteTelemetry {
                grid_w: 1.0,
                pv_w: 2.0,
                load_w: 3.0,
                battery_w: 4.0,
                soc: 0.5,
                status: melv_core::SiteStatus::Normal,
                reason: melv_ems::Reason::Idle,
                mode: melv_core::WorkingMode::SelfConsumption,
                settings_version: 0,
                alerts: vec![],
            },
            counters: crate::record::Counters {
                battery_charge_wh: 1234.0,
                ..Default::default()
            },
            batteries: vec![],
        };
        let st = state(&t);
        assert_eq!(st["soc"], 50.0);
        assert_eq!(st["battery_charge_kwh"], 1.23);
        for (topic, p) in msgs {
            let v: Value = serde_json::from_slice(&p).unwrap();
            assert!(
                topic.starts_with("homeassistant/sensor/melv_gw-1/") && topic.ends_with("/config"),
                "{topic}"
            );
            let field = v["value_template"]
                .as_str()
                .unwrap()
                .trim_matches(|c| "{} ".contains(c))
                .trim_start_matches("value_json.")
                .to_string();
            assert!(st.get(&field).is_some(), "{field}");
            if v["device_class"] == "energy" {
                assert_eq!(v["state_class"], "total_increasing");
                assert_eq!(v["unit_of_measurement"], "kWh");
            }
        }
    }
}
