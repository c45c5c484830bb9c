//! Golden files of the wire: one JSON file per message type in `tests/fixtures`, compared byte for
//! byte with what this build serializes (pretty-printed, fields in declaration order, so the output
//! is deterministic). Any change of the schema, a renamed enum variant included, fails here with a
//! diff; if it is meant, bump `SCHEMA_VERSION` (and `SCHEMA`) in `src/record.rs`, then rewrite the
//! files with
//!
//! ```text
//! MELV_BLESS=1 cargo test -p melv-wire --test golden
//! ```
//!
//! and commit them with the change. Every file is also parsed back and must equal its sample
//! (the round trip), and the cloud's parse of each file is tested in `crates/server/src/feed.rs`.
#![allow(
    clippy::disallowed_methods,
    reason = "a test: it reads (and with MELV_BLESS=1 rewrites) the golden fixture files"
)]

use melv_core::{AlertCode, Lifecycle, Severity, SiteStatus, SocLed, StatusLed, WorkingMode};
use melv_ems::Reason;
use melv_wire::*;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;
use std::path::PathBuf;

const GW: &str = "gw-1";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.json"))
}

/// Serializes `sample`, compares it with (or, with MELV_BLESS=1, writes) the fixture `name`, and
/// parses the fixture back into a value equal to `sample`.
fn golden<T: Serialize + DeserializeOwned + PartialEq + Debug>(name: &str, sample: &T) {
    let json = serde_json::to_string_pretty(sample).unwrap() + "\n";
    let path = fixture(name);
    if std::env::var_os("MELV_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &json).unwrap();
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (write it with MELV_BLESS=1 cargo test -p melv-wire --test golden)",
            path.display()
        )
    });
    assert!(
        stored == json,
        "{name}: the wire changed; bump SCHEMA_VERSION if that is meant, and re-bless.\n\
         --- {}\n{stored}\n--- this build\n{json}",
        path.display()
    );
    let back: T = serde_json::from_str(&stored).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(&back, sample, "{name}: round trip");
}

pub fn telemetry() -> RecordMessage {
    RecordMessage::new(
        GW,
        42,
        Record::Telemetry(Telemetry {
            t_utc_s: 1_764_057_660,
            interval_s: 60.0,
            site: SiteTelemetry {
                grid_w: 49.0,
                pv_w: 0.0,
                load_w: 289.7,
                battery_w: 240.7,
                soc: 0.5,
                status: SiteStatus::Normal,
                reason: Reason::SelfConsumptionDischarge,
                mode: WorkingMode::SelfConsumption,
                settings_version: 3,
                alerts: vec![],
            },
            counters: Counters {
                grid_import_wh: 5.6,
                grid_export_wh: 0.0,
                pv_wh: 0.0,
                load_wh: 9.7,
                battery_charge_wh: 0.0,
                battery_discharge_wh: 4.0,
            },
            batteries: vec![
                BatteryTelemetry {
                    unit: 1,
                    serial: 3_456_789,
                    soc: 0.5,
                    soh: 1.0,
                    power_w: 240.7,
                    alerts: vec![],
                    lifecycle: Lifecycle::Active,
                    soc_led: SocLed::SolidBlue { percent: 50 },
                    status_led: StatusLed::Dim,
                    min_temp_c: 20.0,
                    max_temp_c: 21.5,
                    ac_charged_wh: 0.0,
                    ac_discharged_wh: 3.9,
                },
                BatteryTelemetry {
                    unit: 2,
                    serial: 3_456_790,
                    soc: 0.0,
                    soh: 0.93,
                    power_w: 0.0,
                    alerts: vec![53],
                    lifecycle: Lifecycle::LatchedFault,
                    soc_led: SocLed::Off,
                    status_led: StatusLed::SolidRed,
                    min_temp_c: 19.0,
                    max_temp_c: 19.5,
                    ac_charged_wh: 0.0,
                    ac_discharged_wh: 0.0,
                },
            ],
        }),
    )
}

pub fn alert() -> RecordMessage {
    RecordMessage::new(
        GW,
        43,
        Record::Alert(AlertRecord::new(
            1_764_057_661,
            Some((2, 3_456_790)),
            AlertCode::COMMUNICATION_LOST,
            true,
        )),
    )
}

fn status() -> StatusMessage {
    StatusMessage {
        schema: SCHEMA.into(),
        gateway: GW.into(),
        state: LinkState::Online,
        detail: Some(StatusDetail {
            t_utc_s: 1_764_057_662,
            queue_len: 12,
            queue_capacity: 1_000_000,
            dropped: 0,
            next_seq: 44,
            settings_version: 3,
            speed: 60.0,
        }),
    }
}

fn settings() -> SettingsMessage {
    SettingsMessage::new(3, melv_ems::Settings::self_consumption())
}

fn settings_ack() -> SettingsAck {
    SettingsAck {
        schema: SCHEMA.into(),
        gateway: GW.into(),
        version: Some(4),
        accepted: false,
        reason: Some("reserve_soc: 1.5: expected 0 to 1".into()),
        applied_version: 3,
    }
}

fn uplink_ack() -> UplinkAck {
    UplinkAck {
        schema: SCHEMA.into(),
        gateway: GW.into(),
        stored_through: 40,
        highest: 43,
        missing: 1,
    }
}

/// A record sent after the queue's bound discarded unconfirmed records up to 17.
fn alert_after_drop() -> RecordMessage {
    RecordMessage {
        dropped_through: 17,
        ..alert()
    }
}

#[test]
fn uplink_ack_message() {
    golden("ack", &uplink_ack());
}

#[test]
fn alert_record_after_a_drop() {
    golden("alert_after_drop", &alert_after_drop());
}

#[test]
fn telemetry_record() {
    golden("telemetry", &telemetry());
}

#[test]
fn alert_record() {
    let a = alert();
    match &a.record {
        Record::Alert(r) => assert_eq!(r.severity, Severity::Fault),
        other => panic!("{other:?}"),
    }
    golden("alert", &a);
}

#[test]
fn status_message() {
    golden("status", &status());
}

#[test]
fn status_last_will() {
    golden("status_offline", &StatusMessage::offline_will(GW));
}

#[test]
fn settings_message() {
    golden("settings", &settings());
}

#[test]
fn settings_ack_message() {
    golden("settings_ack", &settings_ack());
}

/// What the gateway queues (`Record::to_payload`) is the golden record, compactly.
#[test]
fn the_gateway_payload_is_the_golden_record() {
    for m in [telemetry(), alert()] {
        let p = m.record.to_payload(&m.gateway, m.seq);
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(v, serde_json::to_value(&m).unwrap());
        let e: Envelope = serde_json::from_slice(&p).unwrap();
        assert_eq!(
            (
                e.schema.as_str(),
                e.gateway.as_str(),
                e.seq,
                e.kind.as_str()
            ),
            (SCHEMA, GW, m.seq as i64, m.record.kind())
        );
        assert_eq!(e.t_utc_s, m.record.t_utc_s());
    }
}
