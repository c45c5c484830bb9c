//! The records a gateway sends, their JSON envelope, and the MQTT topic tree.
//!
//! Every sequenced record is one JSON object with the same envelope, so that the cloud's ingest can
//! key it on `(gateway, seq)` before it looks at the kind:
//!
//! ```json
//! {"schema": "melv.gateway.v1", "gateway": "gw-1", "seq": 42, "kind": "telemetry",
//!  "t_utc_s": 1546300860, ...kind's fields...}
//! ```
//!
//! `seq` is allocated by the on-disk queue ([`crate::queue`]) in the same transaction that stores the
//! record: it starts at 1, increases by one per record over all kinds and across restarts, and is
//! never reused, so a gap in what the cloud holds is a lost record and a repeat is a duplicate.

use melv_core::{AlertCode, Lifecycle, SocLed, StatusLed};
use serde::{Deserialize, Serialize};

/// Schema name carried in every payload; a breaking change bumps it and the topic's `v1`.
pub const SCHEMA: &str = "melv.gateway.v1";
/// Root of the topic tree.
pub const TOPIC_ROOT: &str = "melv/v1";

/// The topics of one gateway (see `docs/gateway.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub telemetry: String,
    pub alerts: String,
    /// Retained, `online`/`offline` (the offline one as the MQTT last will).
    pub status: String,
    /// Cloud -> gateway, retained: the desired settings with their version.
    pub settings: String,
    /// Gateway -> cloud: the verdict on a settings version.
    pub settings_ack: String,
    /// Retained live state for Home Assistant (not sequenced, not queued).
    pub ha_state: String,
}

/// Why a gateway id was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("gateway id {0:?}: use 1 to 64 characters from a-z, A-Z, 0-9, '-' and '_' (it is an MQTT topic level)")]
pub struct BadGatewayId(pub String);

impl Topics {
    /// Topics of gateway `id`; ids are topic levels, so `/`, `+`, `#` and the like are refused.
    pub fn new(id: &str) -> Result<Self, BadGatewayId> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(BadGatewayId(id.to_string()));
        }
        let base = format!("{TOPIC_ROOT}/{id}");
        Ok(Self {
            telemetry: format!("{base}/telemetry"),
            alerts: format!("{base}/alerts"),
            status: format!("{base}/status"),
            settings: format!("{base}/settings"),
            settings_ack: format!("{base}/settings/ack"),
            ha_state: format!("{base}/ha/state"),
        })
    }

    /// The topic of a sequenced record kind.
    pub fn for_kind(&self, kind: &str) -> &str {
        match kind {
            "alert" => &self.alerts,
            _ => &self.telemetry,
        }
    }
}

/// Cumulative energy counters of the site, Wh, since the gateway was first started (persisted, so
/// they only grow: Home Assistant's `total_increasing`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub grid_import_wh: f64,
    pub grid_export_wh: f64,
    pub pv_wh: f64,
    pub load_wh: f64,
    pub battery_charge_wh: f64,
    pub battery_discharge_wh: f64,
}

impl Counters {
    /// Rounded to 0.1 Wh for the wire.
    pub fn rounded(&self) -> Self {
        let r = |x: f64| (x * 10.0).round() / 10.0;
        Self {
            grid_import_wh: r(self.grid_import_wh),
            grid_export_wh: r(self.grid_export_wh),
            pv_wh: r(self.pv_wh),
            load_wh: r(self.load_wh),
            battery_charge_wh: r(self.battery_charge_wh),
            battery_discharge_wh: r(self.battery_discharge_wh),
        }
    }
}

/// Site part of a telemetry record. Powers are means over the interval, W; grid + = importing,
/// battery + = discharging (ARCHITECTURE.md 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteTelemetry {
    pub grid_w: f64,
    pub pv_w: f64,
    pub load_w: f64,
    pub battery_w: f64,
    /// Mean SOC of the units at the interval's end, 0..=1.
    pub soc: f64,
    /// `SiteStatus` (Normal / Faulty / ...), as the controller sees it.
    pub status: String,
    /// Why the controller did what it did in the last cycle.
    pub reason: String,
    pub mode: String,
    /// Version of the settings in force (0: the site file's own).
    pub settings_version: u64,
    /// Gateway-level alert codes in force.
    pub alerts: Vec<u8>,
}

/// One battery in a telemetry record, as the gateway decoded it from CAN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatteryTelemetry {
    /// CAN unit index, 1..=6.
    pub unit: usize,
    pub serial: u32,
    pub soc: f64,
    pub soh: f64,
    /// Mean AC power over the interval, W, + discharging.
    pub power_w: f64,
    /// Alert codes in force (manual 6.3).
    pub alerts: Vec<u8>,
    /// `melv_core::Lifecycle` in snake case (`"active"`, `"latched_fault"`, ...).
    pub lifecycle: Lifecycle,
    /// The SOC LED as the unit drives it (manual 6.1): `{"state": "solid_blue", "percent": 64}` or
    /// `{"state": "off"}`.
    pub soc_led: SocLed,
    /// The status LED (manual 6.1): `"off"`, `"dim"`, `"quick_flash"`, `"solid_red"`.
    pub status_led: StatusLed,
    pub min_temp_c: f64,
    pub max_temp_c: f64,
    /// The unit's own AC energy counters, Wh (BAT_ENERGY).
    pub ac_charged_wh: f64,
    pub ac_discharged_wh: f64,
}

/// A 1-minute telemetry record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// End of the interval, Unix s (UTC).
    pub t_utc_s: i64,
    pub interval_s: f64,
    pub site: SiteTelemetry,
    pub counters: Counters,
    pub batteries: Vec<BatteryTelemetry>,
}

/// An alert raised or cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub t_utc_s: i64,
    /// Battery unit 1..=6, or `None` for the gateway's own alerts.
    pub unit: Option<usize>,
    /// That battery's serial number (BAT_IDENT), `None` for the gateway's own alerts.
    pub serial: Option<u32>,
    pub code: u8,
    pub raised: bool,
    /// The manual's "Issue" text (6.3).
    pub issue: String,
    pub severity: String,
}

impl AlertRecord {
    pub fn new(t_utc_s: i64, unit: Option<(usize, u32)>, code: AlertCode, raised: bool) -> Self {
        let info = code.info();
        Self {
            t_utc_s,
            unit: unit.map(|u| u.0),
            serial: unit.map(|u| u.1),
            code: code.get(),
            raised,
            issue: info.issue.to_string(),
            severity: format!("{:?}", info.severity),
        }
    }
}

/// A record that goes through the queue.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Telemetry(Telemetry),
    Alert(AlertRecord),
}

impl Record {
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Telemetry(_) => "telemetry",
            Record::Alert(_) => "alert",
        }
    }

    /// The wire payload with its envelope. Total: our records hold only finite numbers and strings.
    pub fn to_payload(&self, gateway: &str, seq: u64) -> Vec<u8> {
        let body = match self {
            Record::Telemetry(t) => serde_json::to_value(t),
            Record::Alert(a) => serde_json::to_value(a),
        }
        .unwrap_or(serde_json::Value::Null);
        let mut obj = serde_json::Map::new();
        obj.insert("schema".into(), SCHEMA.into());
        obj.insert("gateway".into(), gateway.into());
        obj.insert("seq".into(), seq.into());
        obj.insert("kind".into(), self.kind().into());
        if let serde_json::Value::Object(m) = body {
            obj.extend(m);
        }
        serde_json::to_vec(&serde_json::Value::Object(obj)).unwrap_or_default()
    }
}

/// The envelope fields, for consumers (tests, the cloud) that parse payloads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Envelope {
    pub schema: String,
    pub gateway: String,
    pub seq: u64,
    pub kind: String,
    pub t_utc_s: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_id(id: &str, ok: bool) {
        assert_eq!(Topics::new(id).is_ok(), ok, "{id:?}");
    }

    #[test]
    fn gateway_ids_are_single_topic_levels() {
        check_id("gw-1", true);
        check_id("Site_42", true);
        check_id("", false);
        check_id("a/b", false);
        check_id("a+", false);
        check_id("#", false);
        check_id("é", false);
        check_id(&"x".repeat(65), false);
    }

    #[test]
    fn topic_tree() {
        let t = Topics::new("gw-1").unwrap();
        assert_eq!(t.telemetry, "melv/v1/gw-1/telemetry");
        assert_eq!(t.alerts, "melv/v1/gw-1/alerts");
        assert_eq!(t.settings_ack, "melv/v1/gw-1/settings/ack");
        assert_eq!(t.for_kind("alert"), t.alerts);
        assert_eq!(t.for_kind("telemetry"), t.telemetry);
    }

    #[test]
    fn payload_carries_the_envelope() {
        let r = Record::Alert(AlertRecord::new(
            100,
            Some((2, 77)),
            AlertCode::COMMUNICATION_LOST,
            true,
        ));
        let p = r.to_payload("gw-1", 7);
        let e: Envelope = serde_json::from_slice(&p).unwrap();
        assert_eq!(
            e,
            Envelope {
                schema: SCHEMA.into(),
                gateway: "gw-1".into(),
                seq: 7,
                kind: "alert".into(),
                t_utc_s: 100
            }
        );
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(v["code"], 63);
        assert_eq!(v["unit"], 2);
        assert_eq!(v["serial"], 77);
        assert_eq!(v["raised"], true);
    }
}
