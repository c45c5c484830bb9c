//! The messages of the contract and their JSON (`docs/gateway.md` 3-4).
//!
//! Every sequenced record is one JSON object with the same envelope, so that the cloud's ingest can
//! key it on `(gateway, seq)` before it looks at the kind:
//!
//! ```json
//! {"schema": "melv.gateway.v2", "gateway": "gw-1", "seq": 42, "kind": "telemetry",
//!  "t_utc_s": 1546300860, ...kind's fields...}
//! ```
//!
//! `seq` is allocated by the gateway's on-disk queue in the same transaction that stores the
//! record: it starts at 1, increases by one per record over all kinds and across restarts, and is
//! never reused, so a gap in what the cloud holds is a lost record and a repeat is a duplicate.
//!
//! A gateway keeps every record until the cloud confirms it committed it ([`UplinkAck`] on
//! `.../ack`, `docs/gateway.md` 5). Only its queue's bound may discard a record the cloud does not
//! have; a record then carries `dropped_through`, the highest number so discarded, so that the
//! cloud stops waiting for those (and counts them as lost) instead of stalling its contiguous mark.
//!
//! Every enumerated value (site status, working mode, reason, severity, lifecycle, LEDs) is the
//! domain enum of `melv-core` / `melv-ems` with its serde snake_case name, never a `Debug` string: a
//! renamed Rust variant fails to compile against the golden files in `tests/fixtures` instead of
//! silently changing the schema.

use melv_core::{AlertCode, Lifecycle, Severity, SiteStatus, SocLed, StatusLed, WorkingMode};
use melv_ems::Reason;
use serde::{Deserialize, Serialize};

/// Version of the record schema. 2: status, mode and severity in snake case (`"normal"`,
/// `"self_consumption"`, `"warning"`) where schema 1 had Rust `Debug` names (`"Normal"`,
/// `"SelfConsumption"`, `"Warning"`).
pub const SCHEMA_VERSION: u32 = 2;
/// The schema name carried in every payload's `schema` field: `melv.gateway.v{SCHEMA_VERSION}`.
pub const SCHEMA: &str = "melv.gateway.v2";

/// A payload of another schema than [`SCHEMA`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema {found:?}: unknown schema version, this side reads {SCHEMA:?} only")]
pub struct SchemaError {
    pub found: String,
}

/// `Ok` when `schema` is [`SCHEMA`].
pub fn check_schema(schema: &str) -> Result<(), SchemaError> {
    if schema == SCHEMA {
        Ok(())
    } else {
        Err(SchemaError {
            found: schema.to_string(),
        })
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
    /// As the controller sees it: `"normal"`, `"faulty"`, `"offline"`.
    pub status: SiteStatus,
    /// Why the controller did what it did in the last cycle (`"self_consumption_discharge"`, ...).
    pub reason: Reason,
    /// The working mode in force: `"self_consumption"`, `"time_of_use"`, ...
    pub mode: WorkingMode,
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
    /// `"active"`, `"latched_fault"`, ...
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
    /// `"warning"`, `"fault"`, `"critical"`.
    pub severity: Severity,
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
            severity: info.severity,
        }
    }
}

/// A sequenced record: the body of a [`RecordMessage`], tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// On `.../telemetry`.
    Telemetry(Telemetry),
    /// On `.../alerts`.
    Alert(AlertRecord),
}

impl Record {
    /// The `kind` field.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Telemetry(_) => "telemetry",
            Record::Alert(_) => "alert",
        }
    }

    pub fn t_utc_s(&self) -> i64 {
        match self {
            Record::Telemetry(t) => t.t_utc_s,
            Record::Alert(a) => a.t_utc_s,
        }
    }

    /// The wire payload with its envelope. Total: our records hold only finite numbers and strings.
    pub fn to_payload(&self, gateway: &str, seq: u64) -> Vec<u8> {
        self.to_payload_after_drop(gateway, seq, 0)
    }

    /// [`Record::to_payload`] from a gateway whose queue bound has discarded every record up to
    /// `dropped_through` that the cloud had not confirmed (0: none; then the field is left out).
    pub fn to_payload_after_drop(&self, gateway: &str, seq: u64, dropped_through: u64) -> Vec<u8> {
        let m = RecordRef {
            schema: SCHEMA,
            gateway,
            seq,
            dropped_through,
            record: self,
        };
        serde_json::to_vec(&m).unwrap_or_default()
    }
}

/// A sequenced record with its envelope, as published on `.../telemetry` and `.../alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordMessage {
    pub schema: String,
    pub gateway: String,
    pub seq: u64,
    /// Every record numbered up to this one that the cloud has not confirmed will never be sent
    /// (again): the gateway's queue bound discarded it, or it left the queue before the cloud's ack
    /// existed. 0, left out of the JSON: nothing to say.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_through: u64,
    #[serde(flatten)]
    pub record: Record,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl RecordMessage {
    /// The message of `record` as gateway `gateway` numbers it, in the current [`SCHEMA`].
    pub fn new(gateway: &str, seq: u64, record: Record) -> Self {
        Self {
            schema: SCHEMA.into(),
            gateway: gateway.into(),
            seq,
            dropped_through: 0,
            record,
        }
    }
}

/// [`RecordMessage`] without owning its parts, for serializing.
#[derive(Serialize)]
struct RecordRef<'a> {
    schema: &'a str,
    gateway: &'a str,
    seq: u64,
    #[serde(skip_serializing_if = "is_zero")]
    dropped_through: u64,
    #[serde(flatten)]
    record: &'a Record,
}

/// The envelope fields of a sequenced record, read before anything else so that a refusal can name
/// the gateway and the sequence number. `seq` is signed here so that a consumer can refuse
/// `seq: 0` or `-1` with its own words rather than a type error.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Envelope {
    pub schema: String,
    pub gateway: String,
    pub seq: i64,
    /// [`RecordMessage::dropped_through`]; 0 when absent.
    #[serde(default)]
    pub dropped_through: i64,
    pub kind: String,
    pub t_utc_s: i64,
}

/// Cloud -> gateway on `.../ack`, retained: the end-to-end acknowledgement. The cloud publishes it
/// after every commit that touched the gateway's records; the gateway deletes every record numbered
/// up to `stored_through` from its queue and sends again, oldest first, whatever it still holds
/// above it when the mark stops moving (`docs/gateway.md` 5). It is also the cloud's request for a
/// gap: `highest > stored_through` says that records above the mark arrived while
/// `stored_through + 1` did not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UplinkAck {
    pub schema: String,
    pub gateway: String,
    /// Every record numbered 1 to this is committed in the cloud (stored, or kept as a reject with
    /// its reason), or was discarded by the gateway's bound (`dropped_through`).
    pub stored_through: u64,
    /// The highest number the cloud has committed.
    pub highest: u64,
    /// Numbers between `stored_through` and `highest` the cloud does not have.
    pub missing: u64,
}

/// Whether a gateway is connected, on `.../status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Online,
    Offline,
}

/// Gateway -> cloud on `.../status`, retained: `{"schema", "gateway", "state"}` and, except in the
/// last will (which the broker publishes for a gateway that vanished), the queue and clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusMessage {
    pub schema: String,
    pub gateway: String,
    pub state: LinkState,
    #[serde(flatten)]
    pub detail: Option<StatusDetail>,
}

/// What a live status message tells besides the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusDetail {
    /// The site's clock, Unix s (UTC).
    pub t_utc_s: i64,
    /// Records on disk waiting for the cloud's confirmation (or, with `--confirm broker`, the
    /// broker's), the bound, and how many the bound dropped.
    pub queue_len: u64,
    pub queue_capacity: u64,
    pub dropped: u64,
    /// The sequence number the next record will get.
    pub next_seq: u64,
    pub settings_version: u64,
    /// Time acceleration (simulated seconds per wall second).
    pub speed: f64,
}

impl StatusMessage {
    /// The last will: only the state.
    pub fn offline_will(gateway: &str) -> Self {
        Self {
            schema: SCHEMA.into(),
            gateway: gateway.into(),
            state: LinkState::Offline,
            detail: None,
        }
    }

    pub fn to_payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Cloud -> gateway on `.../settings` (retained): the desired settings and their version. The
/// cloud publishes its settings as it stored them (`S = serde_json::Value`); the gateway reads them
/// as [`melv_ems::Settings`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingsMessage<S = melv_ems::Settings> {
    /// [`SCHEMA`]; absent in what clouds of schema 1 published, which is read as the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Increases with every change the cloud makes; the gateway applies a version once.
    pub version: u64,
    pub settings: S,
}

impl<S> SettingsMessage<S> {
    pub fn new(version: u64, settings: S) -> Self {
        Self {
            schema: Some(SCHEMA.into()),
            version,
            settings,
        }
    }
}

/// Gateway -> cloud on `.../settings/ack`: the verdict on a settings version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsAck {
    pub schema: String,
    pub gateway: String,
    /// The version judged; `None` when the message could not even be read.
    pub version: Option<u64>,
    pub accepted: bool,
    /// Why it was rejected: names the field and the reason.
    pub reason: Option<String>,
    /// The version in force after this message.
    pub applied_version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_name_carries_the_version() {
        assert_eq!(SCHEMA, format!("melv.gateway.v{SCHEMA_VERSION}"));
        assert!(check_schema(SCHEMA).is_ok());
        let e = check_schema("melv.gateway.v1").unwrap_err().to_string();
        assert!(
            e.starts_with("schema \"melv.gateway.v1\": unknown schema version"),
            "{e}"
        );
        assert!(e.contains(SCHEMA), "{e}");
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
                dropped_through: 0,
                kind: "alert".into(),
                t_utc_s: 100
            }
        );
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(v["code"], 63);
        assert_eq!(v["unit"], 2);
        assert_eq!(v["serial"], 77);
        assert_eq!(v["raised"], true);
        let m: RecordMessage = serde_json::from_slice(&p).unwrap();
        assert_eq!(m, RecordMessage::new("gw-1", 7, r));
    }

    #[test]
    fn the_drop_mark_travels_in_the_envelope_only_when_set() {
        let r = Record::Alert(AlertRecord::new(
            100,
            None,
            AlertCode::COMMUNICATION_LOST,
            true,
        ));
        let p = r.to_payload_after_drop("gw-1", 9, 4);
        let e: Envelope = serde_json::from_slice(&p).unwrap();
        assert_eq!((e.seq, e.dropped_through), (9, 4));
        let m: RecordMessage = serde_json::from_slice(&p).unwrap();
        assert_eq!(m.dropped_through, 4);
        let p = r.to_payload("gw-1", 9);
        assert!(!String::from_utf8(p).unwrap().contains("dropped_through"));
    }

    #[test]
    fn the_offline_will_is_only_the_state() {
        let p = StatusMessage::offline_will("gw-1").to_payload();
        assert_eq!(
            String::from_utf8(p).unwrap(),
            r#"{"schema":"melv.gateway.v2","gateway":"gw-1","state":"offline"}"#
        );
    }

    #[test]
    fn settings_of_a_schema_1_cloud_are_read() {
        let s = serde_json::to_value(melv_ems::Settings::self_consumption()).unwrap();
        let m: SettingsMessage =
            serde_json::from_value(serde_json::json!({"version": 3, "settings": s})).unwrap();
        assert_eq!(m.schema, None);
        assert_eq!(m.version, 3);
    }
}
