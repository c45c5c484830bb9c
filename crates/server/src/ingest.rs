//! The gateway's side of the API: telemetry and alert ingest, and settings delivery with ack.
//!
//! A gateway authenticates with the token issued when it was added to its site. A batch is keyed by
//! (gateway serial, sequence number) per point and per event, so a retried batch stores nothing twice
//! (the store counts what it recognised). A batch is validated whole before anything is stored: one
//! bad value refuses the batch with its path (`points[3].soc: ...`) and stores nothing.

use crate::auth::{same, GatewayToken};
use crate::error::{ApiError, ApiResult};
use crate::service::{current_settings, SettingsView};
use crate::AppState;
use melv_core::{AlertCode, Lifecycle, SocLed, StatusLed};
use melv_store::{BatteryRow, Device, DeviceKind, EventRow, IngestCounts, PointRow, Site};
use serde::{Deserialize, Serialize};

/// Points per batch at most: a day of 10-second samples fits (8,640), and one request stays bounded.
pub const MAX_POINTS: usize = 10_000;
pub const MAX_EVENTS: usize = 1_000;
/// Powers beyond 1 MW are not a home site's (6 x 4.5 kVA batteries, manual 7.1, plus PV and load are
/// tens of kW): such a value is a unit error, refused.
pub const MAX_POWER_W: f64 = 1.0e6;
/// Timestamps from 2000-01-01 to 2200-01-01 (ms): anything else is a clock that was never set.
const MIN_TS_MS: i64 = 946_684_800_000;
const MAX_TS_MS: i64 = 7_258_118_400_000;
/// How far ahead of the server's clock a point or event may be dated: 10 minutes. A gateway keeps
/// UTC by NTP (within a second); minutes ahead is a clock that is wrong, and a point dated years
/// ahead would stay "the newest" for ever (issue 16: one point dated 2199 froze a site's status and
/// its "Power now"). Such a record is refused with this reason (HTTP: 422; MQTT: an ingest reject).
pub const MAX_FUTURE_SKEW_MS: i64 = 10 * 60 * 1000;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub gateway_serial: String,
    #[serde(default)]
    pub points: Vec<Point>,
    #[serde(default)]
    pub batteries: Vec<BatteryReport>,
    #[serde(default)]
    pub events: Vec<Event>,
}

/// A site sample. Signs (ARCHITECTURE.md 3): battery_w positive = discharging, grid_w positive =
/// importing, pv_w and load_w >= 0. It covers the `interval_s` seconds ending at `ts_ms`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    pub seq: i64,
    pub ts_ms: i64,
    pub interval_s: f64,
    pub pv_w: f64,
    pub load_w: f64,
    pub grid_w: f64,
    pub battery_w: f64,
    pub soc: f64,
}

/// The newest report of one battery: its SOC, AC power (positive = discharging) and LEDs (manual 6.1),
/// as `melv_core::status::BatteryStatus` carries them.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatteryReport {
    pub serial: Serial,
    pub ts_ms: i64,
    pub soc: f64,
    pub power_w: f64,
    pub soc_led: SocLed,
    pub status_led: StatusLed,
    pub lifecycle: Lifecycle,
}

/// A serial as a small copyable string (1-32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Serial([u8; 32], u8);

impl Serial {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0[..self.1 as usize]).unwrap_or("")
    }
}

impl<'de> Deserialize<'de> for Serial {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let v = crate::service::serial(&s).map_err(|e| serde::de::Error::custom(e.message))?;
        let mut b = [0u8; 32];
        b[..v.len()].copy_from_slice(v.as_bytes());
        Ok(Serial(b, v.len() as u8))
    }
}

impl Serialize for Serial {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An alert of manual 6.3 raised (`active: true`) or cleared on a device of the site.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub seq: i64,
    pub ts_ms: i64,
    pub device_serial: String,
    pub code: u32,
    pub active: bool,
}

/// The gateway device behind a token, checked against the serial it claims.
pub async fn gateway(
    state: &AppState,
    token: &GatewayToken,
    serial: &str,
) -> ApiResult<(Device, Site)> {
    let refused = || {
        ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            // The serial is not echoed: a refusal says nothing about which serials exist.
            "unknown gateway or wrong token",
        )
    };
    // A serial that cannot exist is refused before SQL (PostgreSQL answers an error for a NUL byte).
    let serial = crate::service::serial(serial).map_err(|e| ApiError::bad(e.message))?;
    let d = state.store.device(&serial).await?.ok_or_else(refused)?;
    match (&d.kind, &d.token_hash) {
        (DeviceKind::Gateway, Some(h)) if same(h, &token.0) => {}
        _ => return Err(refused()),
    }
    let site = state
        .store
        .site(d.site_id)
        .await?
        .ok_or_else(|| ApiError::not_found("the gateway's site"))?;
    Ok((d, site))
}

fn finite(path: &str, v: f64, lo: f64, hi: f64) -> ApiResult<()> {
    if v.is_finite() && v >= lo && v <= hi {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{path}: {v}: expected {lo} to {hi}"
        )))
    }
}

fn ts(path: &str, v: i64, now_ms: i64) -> ApiResult<()> {
    if !(MIN_TS_MS..MAX_TS_MS).contains(&v) {
        return Err(ApiError::invalid(format!(
            "{path}: {v}: expected milliseconds since 1970 between the years 2000 and 2200"
        )));
    }
    if v > now_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
        return Err(ApiError::invalid(format!(
            "{path}: {v}: {} s ahead of the server's clock ({now_ms}); at most {} s are accepted \
             (is the gateway's clock set?)",
            (v - now_ms) / 1000,
            MAX_FUTURE_SKEW_MS / 1000
        )));
    }
    Ok(())
}

/// Checks the whole batch; the first bad value refuses it, naming its path.
/// `now_ms` is the server's clock: nothing may be dated more than [`MAX_FUTURE_SKEW_MS`] after it.
pub fn validate(batch: &Batch, devices: &[Device], now_ms: i64) -> ApiResult<()> {
    if batch.points.len() > MAX_POINTS
        || batch.events.len() > MAX_EVENTS
        || batch.batteries.len() > 6
    {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "batch: at most {MAX_POINTS} points, {MAX_EVENTS} events and 6 battery reports per request"
            ),
        ));
    }
    for (i, p) in batch.points.iter().enumerate() {
        let at = |f: &str| format!("points[{i}].{f}");
        if p.seq < 0 {
            return Err(ApiError::invalid(format!(
                "{}: {}: expected >= 0",
                at("seq"),
                p.seq
            )));
        }
        ts(&at("ts_ms"), p.ts_ms, now_ms)?;
        finite(&at("interval_s"), p.interval_s, 0.001, 86_400.0)?;
        finite(&at("pv_w"), p.pv_w, 0.0, MAX_POWER_W)?;
        finite(&at("load_w"), p.load_w, 0.0, MAX_POWER_W)?;
        finite(&at("grid_w"), p.grid_w, -MAX_POWER_W, MAX_POWER_W)?;
        finite(&at("battery_w"), p.battery_w, -MAX_POWER_W, MAX_POWER_W)?;
        finite(&at("soc"), p.soc, 0.0, 1.0)?;
    }
    for (i, b) in batch.batteries.iter().enumerate() {
        let at = |f: &str| format!("batteries[{i}].{f}");
        let known = devices
            .iter()
            .any(|d| d.kind == DeviceKind::Battery && d.serial == b.serial.as_str());
        if !known {
            return Err(ApiError::invalid(format!(
                "{}: {:?} is not a battery of this site",
                at("serial"),
                b.serial.as_str()
            )));
        }
        ts(&at("ts_ms"), b.ts_ms, now_ms)?;
        finite(&at("soc"), b.soc, 0.0, 1.0)?;
        finite(&at("power_w"), b.power_w, -MAX_POWER_W, MAX_POWER_W)?;
    }
    for (i, e) in batch.events.iter().enumerate() {
        let at = |f: &str| format!("events[{i}].{f}");
        if e.seq < 0 {
            return Err(ApiError::invalid(format!("{}: expected >= 0", at("seq"))));
        }
        ts(&at("ts_ms"), e.ts_ms, now_ms)?;
        AlertCode::new(e.code).map_err(|_| {
            ApiError::invalid(format!(
                "{}: {} is not an alert code of manual 6.3",
                at("code"),
                e.code
            ))
        })?;
        if !devices.iter().any(|d| d.serial == e.device_serial) {
            return Err(ApiError::invalid(format!(
                "{}: {:?} is not a device of this site",
                at("device_serial"),
                e.device_serial
            )));
        }
    }
    Ok(())
}

pub async fn ingest(
    state: &AppState,
    token: &GatewayToken,
    batch: &Batch,
) -> ApiResult<IngestCounts> {
    let (gw, site) = gateway(state, token, &batch.gateway_serial).await?;
    let devices = state.store.devices(site.id).await?;
    validate(batch, &devices, state.clock.now_ms())?;
    let points: Vec<PointRow> = batch.points.iter().map(point_row).collect();
    let batteries: Vec<BatteryRow> = batch.batteries.iter().map(battery_row).collect();
    let events: Vec<EventRow> = batch
        .events
        .iter()
        .map(|e| EventRow {
            seq: e.seq,
            ts_ms: e.ts_ms,
            device_serial: e.device_serial.clone(),
            code: e.code as i64,
            active: e.active,
        })
        .collect();
    let counts = state
        .store
        .ingest(site.id, &gw.serial, &points, &batteries, &events)
        .await?;
    // The uplink mark covers HTTP batches as well (the gateway page shows it for either link).
    if !points.is_empty() || !events.is_empty() {
        state
            .store
            .advance_uplink(&gw.serial, 0, state.clock.now_ms())
            .await?;
    }
    Ok(counts)
}

/// A telemetry point as the store keeps it (HTTP batches and MQTT records alike).
pub(crate) fn point_row(p: &Point) -> PointRow {
    PointRow {
        seq: p.seq,
        ts_ms: p.ts_ms,
        interval_s: p.interval_s,
        pv_w: p.pv_w,
        load_w: p.load_w,
        grid_w: p.grid_w,
        battery_w: p.battery_w,
        soc: p.soc,
    }
}

/// A battery report as the store keeps it: LEDs and lifecycle by their JSON names.
pub(crate) fn battery_row(b: &BatteryReport) -> BatteryRow {
    BatteryRow {
        serial: b.serial.as_str().to_string(),
        ts_ms: b.ts_ms,
        soc: b.soc,
        power_w: b.power_w,
        soc_led: serde_json::to_string(&b.soc_led).unwrap_or_default(),
        status_led: json_name(&b.status_led),
        lifecycle: json_name(&b.lifecycle),
    }
}

/// A unit enum's serde name (`"dim"`), without quotes.
pub fn json_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The settings the gateway should run; fetching marks the version delivered.
pub async fn gateway_settings(
    state: &AppState,
    token: &GatewayToken,
    serial: &str,
) -> ApiResult<SettingsView> {
    let (_, site) = gateway(state, token, serial).await?;
    let view = current_settings(state, &site).await?;
    if view.version > 0 {
        state
            .store
            .mark_delivered(site.id, view.version, state.clock.now_ms())
            .await?;
    }
    Ok(view)
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    pub version: i64,
    /// True: applied. False: refused, `message` says why.
    pub ok: bool,
    #[serde(default)]
    pub message: Option<String>,
}

pub async fn ack(
    state: &AppState,
    token: &GatewayToken,
    serial: &str,
    ack: &Ack,
) -> ApiResult<melv_store::SettingsVersion> {
    let (_, site) = gateway(state, token, serial).await?;
    let msg = ack
        .message
        .as_deref()
        .map(|m| crate::service::text("message", m, 1000))
        .transpose()?;
    Ok(state
        .store
        .ack_settings(
            site.id,
            ack.version,
            ack.ok,
            msg.as_deref(),
            state.clock.now_ms(),
        )
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(serial: &str, kind: DeviceKind) -> Device {
        Device {
            serial: serial.into(),
            site_id: 1,
            kind,
            token_hash: None,
            mqtt_hash: None,
            added_ms: 0,
        }
    }

    fn check(json: &str, expected: Result<(), &str>) {
        let devices = [
            dev("GW1", DeviceKind::Gateway),
            dev("B1", DeviceKind::Battery),
        ];
        let got = serde_json::from_str::<Batch>(json)
            .map_err(|e| e.to_string())
            .and_then(|b| validate(&b, &devices, 1_800_000_000_000).map_err(|e| e.message));
        match (got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(w)) => assert!(e.contains(w), "{e:?} lacks {w:?}"),
            (got, want) => panic!("{json}: got {got:?}, expected {want:?}"),
        }
    }

    const P: &str = r#""seq":1,"ts_ms":1800000000000,"interval_s":60,"pv_w":100,"load_w":50,"grid_w":-50,"battery_w":0"#;

    #[test]
    fn batches() {
        check(r#"{"gateway_serial":"GW1"}"#, Ok(()));
        check(
            &format!(r#"{{"gateway_serial":"GW1","points":[{{{P},"soc":0.5}}]}}"#),
            Ok(()),
        );
        check(
            &format!(r#"{{"gateway_serial":"GW1","points":[{{{P},"soc":1.5}}]}}"#),
            Err("points[0].soc: 1.5"),
        );
        check(
            &format!(r#"{{"gateway_serial":"GW1","points":[{{{P},"soc":0.5,"x":1}}]}}"#),
            Err("unknown field `x`"),
        );
        check(
            &format!(r#"{{"gateway_serial":"GW1","points":[{{{P}}}]}}"#),
            Err("missing field `soc`"),
        );
        check(
            r#"{"gateway_serial":"GW1","events":[{"seq":1,"ts_ms":1800000000000,"device_serial":"B1","code":53,"active":true}]}"#,
            Ok(()),
        );
        // Up to 10 minutes ahead of the server's clock (1_800_000_000_000 in `check`), not more.
        check(
            r#"{"gateway_serial":"GW1","points":[{"seq":1,"ts_ms":1800000600000,"interval_s":60,"pv_w":1,"load_w":1,"grid_w":0,"battery_w":0,"soc":0.5}]}"#,
            Ok(()),
        );
        check(
            r#"{"gateway_serial":"GW1","points":[{"seq":1,"ts_ms":1800000600001,"interval_s":60,"pv_w":1,"load_w":1,"grid_w":0,"battery_w":0,"soc":0.5}]}"#,
            Err("points[0].ts_ms: 1800000600001: 600 s ahead of the server's clock"),
        );
        check(
            r#"{"gateway_serial":"GW1","events":[{"seq":1,"ts_ms":7258118300000,"device_serial":"B1","code":53,"active":true}]}"#,
            Err("events[0].ts_ms: 7258118300000: 5458118300 s ahead"),
        );
        check(
            r#"{"gateway_serial":"GW1","events":[{"seq":1,"ts_ms":1800000000000,"device_serial":"B1","code":1,"active":true}]}"#,
            Err("events[0].code: 1 is not an alert code"),
        );
        check(
            r#"{"gateway_serial":"GW1","events":[{"seq":1,"ts_ms":1800000000000,"device_serial":"B9","code":53,"active":true}]}"#,
            Err("events[0].device_serial: \"B9\" is not a device"),
        );
        check(
            r#"{"gateway_serial":"GW1","events":[{"seq":1,"ts_ms":5,"device_serial":"B1","code":53,"active":true}]}"#,
            Err("events[0].ts_ms: 5"),
        );
        check(
            r#"{"gateway_serial":"GW1","batteries":[{"serial":"B1","ts_ms":1800000000000,"soc":0.5,"power_w":1,"soc_led":{"state":"solid_blue","percent":50},"status_led":"dim","lifecycle":"active"}]}"#,
            Ok(()),
        );
        check(
            r#"{"gateway_serial":"GW1","batteries":[{"serial":"GW1","ts_ms":1800000000000,"soc":0.5,"power_w":1,"soc_led":{"state":"off"},"status_led":"dim","lifecycle":"active"}]}"#,
            Err("batteries[0].serial: \"GW1\" is not a battery"),
        );
        check(
            r#"{"gateway_serial":"GW1","batteries":[{"serial":"a b","ts_ms":1,"soc":0.5,"power_w":1,"soc_led":{"state":"off"},"status_led":"dim","lifecycle":"active"}]}"#,
            Err("serial \"a b\""),
        );
    }
}
