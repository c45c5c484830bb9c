//! Tests of the Home Assistant discovery configs, state and commands.

use super::*;
use crate::record::{BatteryTelemetry, Counters, SiteTelemetry};
use melv_core::{SiteStatus, SocLed, StatusLed};

fn telemetry() -> Telemetry {
    let unit = |n: usize, alerts: Vec<u8>| BatteryTelemetry {
        unit: n,
        serial: 1000 + n as u32,
        soc: 0.456,
        soh: 1.0,
        power_w: -1200.0,
        alerts,
        lifecycle: Lifecycle::Active,
        soc_led: SocLed::Off,
        status_led: StatusLed::Off,
        min_temp_c: 21.0,
        max_temp_c: 23.5,
        ac_charged_wh: 0.0,
        ac_discharged_wh: 0.0,
    };
    Telemetry {
        t_utc_s: 60,
        interval_s: 60.0,
        site: SiteTelemetry {
            grid_w: 1.0,
            pv_w: 2.0,
            load_w: 3.0,
            battery_w: 4.0,
            soc: 0.5,
            status: SiteStatus::Normal,
            reason: melv_ems::Reason::Idle,
            mode: WorkingMode::SelfConsumption,
            settings_version: 0,
            alerts: vec![],
        },
        counters: Counters {
            battery_charge_wh: 1234.0,
            load_wh: 5678.0,
            ..Default::default()
        },
        batteries: vec![unit(1, vec![]), unit(2, vec![63])],
    }
}

fn configs() -> Vec<(String, Value)> {
    let topics = Topics::new("gw-1").unwrap();
    discovery("gw-1", &topics, 2)
        .into_iter()
        .map(|(t, p)| (t, serde_json::from_slice(&p).unwrap()))
        .collect()
}

/// The field a `{{ value_json.x }}` template reads.
fn field(v: &Value) -> Option<String> {
    Some(
        v["value_template"]
            .as_str()?
            .trim_matches(|c| "{} ".contains(c))
            .trim_start_matches("value_json.")
            .to_string(),
    )
}

#[test]
fn every_entity_reads_a_field_of_the_state() {
    let st = state(&telemetry(), &Settings::self_consumption());
    assert_eq!(st["soc"], 50.0);
    assert_eq!(st["battery_charge_kwh"], 1.23);
    assert_eq!(st["load_kwh"], 5.68);
    assert_eq!(st["u2_soc"], 45.6);
    assert_eq!(st["u2_temperature_c"], 23.5);
    assert_eq!(st["u1_status"], "active");
    assert_eq!(st["alert_63"], "ON");
    assert_eq!(st["alert_52"], "OFF");
    assert_eq!(st["mode"], "self_consumption");
    for (topic, v) in configs() {
        assert!(
            topic.starts_with("homeassistant/") && topic.ends_with("/config"),
            "{topic}"
        );
        if let Some(f) = field(&v) {
            assert!(st.get(&f).is_some(), "{topic}: {f}");
        }
    }
}

#[test]
fn the_energy_dashboard_has_its_six_flows_and_ids_are_default_entity_ids() {
    let cs = configs();
    let energy: Vec<String> = cs
        .iter()
        .filter(|(_, v)| v["device_class"] == "energy")
        .map(|(_, v)| {
            assert_eq!(v["state_class"], "total_increasing");
            assert_eq!(v["unit_of_measurement"], "kWh");
            field(v).unwrap()
        })
        .collect();
    for flow in [
        "grid_import_kwh",
        "grid_export_kwh",
        "pv_kwh",
        "battery_charge_kwh",
        "battery_discharge_kwh",
        "load_kwh",
    ] {
        assert!(energy.iter().any(|e| e == flow), "{flow} in {energy:?}");
    }
    for (topic, v) in &cs {
        assert!(v.get("object_id").is_none(), "{topic}");
        let component = topic.split('/').nth(1).unwrap();
        let id = v["default_entity_id"].as_str().unwrap();
        let (domain, slug) = id.split_once('.').unwrap();
        assert_eq!(domain, component, "{topic}");
        assert!(
            slug.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{id}"
        );
    }
    // Battery SOC is a measurement; one set of four per unit; two entities per alert code.
    let soc = cs.iter().find(|(t, _)| t.ends_with("/soc/config")).unwrap();
    assert_eq!(soc.1["state_class"], "measurement");
    let count = |c: &str| cs.iter().filter(|(t, _)| t.contains(c)).count();
    assert_eq!(count("/u2_"), 4);
    assert_eq!(count("/binary_sensor/"), AlertCode::all().count());
    assert_eq!(count("/event/"), AlertCode::all().count());
    assert_eq!(count("/select/"), 1);
    assert_eq!(count("/number/"), 1);
}

fn check(topic_tail: &str, payload: &str, expected: Result<Option<(WorkingMode, f64)>, &str>) {
    let topics = Topics::new("gw-1").unwrap();
    let topic = format!("melv/v1/gw-1/ha/{topic_tail}");
    let got = command(
        &topics,
        &topic,
        payload.as_bytes(),
        &Settings::self_consumption(),
    );
    match (got, expected) {
        (Ok(s), Ok(e)) => assert_eq!(s.map(|s| (s.mode, s.reserve_soc)), e, "{topic_tail}"),
        (Err(g), Err(e)) => assert!(g.to_string().contains(e), "{g} vs {e}"),
        (g, e) => panic!("{topic_tail} {payload}: {g:?} vs {e:?}"),
    }
}

#[test]
fn commands_become_settings_or_name_their_fault() {
    check(
        "set/mode",
        "time_of_use",
        Ok(Some((WorkingMode::TimeOfUse, 0.0))),
    );
    check(
        "set/reserve",
        "30",
        Ok(Some((WorkingMode::SelfConsumption, 0.3))),
    );
    check(
        "set/reserve",
        " 12.5\n",
        Ok(Some((WorkingMode::SelfConsumption, 0.125))),
    );
    check("state", "{}", Ok(None));
    check("set/mode", "turbo", Err("\"turbo\" is not one of"));
    check("set/reserve", "101", Err("outside 0 to 100"));
    check("set/reserve", "NaN", Err("outside 0 to 100"));
    check("set/reserve", "abc", Err("is not a number"));
    check("set/colour", "red", Err("unknown command"));
    check("set/mode", &"x".repeat(65), Err("at most 64"));
    let topics = Topics::new("gw-1").unwrap();
    let bad = command(
        &topics,
        "melv/v1/gw-1/ha/set/mode",
        &[0xff, 0xfe],
        &Settings::self_consumption(),
    );
    assert!(bad.unwrap_err().reason.contains("UTF-8"));
}

#[test]
fn alert_records_fire_events() {
    let topics = Topics::new("gw-1").unwrap();
    let a = AlertRecord::new(120, Some((2, 1002)), AlertCode::COMMUNICATION_LOST, true);
    let (topic, p) = alert_event(&topics, &a);
    assert_eq!(topic, "melv/v1/gw-1/ha/alert/63");
    let v: Value = serde_json::from_slice(&p).unwrap();
    assert_eq!(v["event_type"], "raised");
    assert_eq!(v["unit"], 2);
    let cleared = AlertRecord::new(180, None, AlertCode::COMMUNICATION_LOST, false);
    let v: Value = serde_json::from_slice(&alert_event(&topics, &cleared).1).unwrap();
    assert_eq!(v["event_type"], "cleared");
}
