//! The gateways' message feed: what a live gateway publishes over MQTT (`docs/gateway.md` 2-4), turned
//! into the cloud's rows. The MQTT ingest worker ([`crate::mqtt`]) feeds it from the broker and
//! `melv demo` from an in-process channel; both hand over `(topic, payload)` messages and acknowledge
//! them only after [`Feed::ingest`] returned `Ok`, so a message is either committed (as data, or as a
//! reject row with its reason) or delivered again.
//!
//! ## Rules
//! * Topics: `melv/v1/{gateway}/telemetry`, `.../alerts`, `.../settings/ack`. The gateway id is the
//!   gateway's serial in the cloud; the record's `gateway` must equal the topic's (the broker's ACL
//!   is what authenticates a gateway on its own subtree, see docs/cloud.md).
//! * A telemetry record becomes one point (`seq`, `ts_ms = t_utc_s * 1000`, the site's powers and
//!   SOC) and the batteries' latest reports; an alert record one event (device serial: the
//!   battery's CAN serial in decimal, or the gateway's own serial). Ingest is idempotent on
//!   `(gateway, seq)`: a redelivered record stores nothing and is counted as a duplicate.
//! * A record the cloud cannot store (not JSON, wrong schema, a value out of range, an unknown
//!   gateway, an alert from a device that is not on the site) is kept in `ingest_rejects` with the
//!   reason and the payload, never dropped silently. Battery reports of a battery the site does not
//!   list (yet) are left out of the latest-state table and counted; the site's point is kept.
//! * Settings acks update the delivery state of the site's settings version (`acked`/`rejected`
//!   with the gateway's reason).

use crate::ingest::{self, Batch, BatteryReport, Event, Point};
use crate::AppState;
use melv_core::{Lifecycle, SocLed, StatusLed};
use melv_store::{
    BatteryRow, Device, DeviceKind, EventRow, IngestPart, PointRow, RejectRow, Site, StoreError,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The schema name a gateway record must carry (`melv_gateway::record::SCHEMA`).
pub const SCHEMA: &str = "melv.gateway.v1";
/// Root of the topic tree (`melv_gateway::record::TOPIC_ROOT`).
pub const TOPIC_ROOT: &str = "melv/v1";

/// One message as the broker (or the in-process link) delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
}

impl Message {
    pub fn new(topic: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            topic: topic.into(),
            payload: payload.into(),
        }
    }
}

/// What a call to [`Feed::ingest`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FeedCounts {
    pub messages: u64,
    pub points_stored: u64,
    pub points_duplicate: u64,
    pub events_stored: u64,
    pub events_duplicate: u64,
    /// Settings acks applied to a settings version.
    pub settings_acks: u64,
    /// Messages kept in `ingest_rejects` instead of as data.
    pub rejected: u64,
    /// Battery reports left out because the site does not list that battery.
    pub batteries_unknown: u64,
}

impl FeedCounts {
    pub fn add(&mut self, o: &FeedCounts) {
        self.messages += o.messages;
        self.points_stored += o.points_stored;
        self.points_duplicate += o.points_duplicate;
        self.events_stored += o.events_stored;
        self.events_duplicate += o.events_duplicate;
        self.settings_acks += o.settings_acks;
        self.rejected += o.rejected;
        self.batteries_unknown += o.batteries_unknown;
    }
}

/// What a topic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    Telemetry,
    Alerts,
    SettingsAck,
}

/// `melv/v1/{gw}/telemetry` -> (`gw`, Telemetry); anything else is `None`.
pub fn parse_topic(topic: &str) -> Option<(&str, TopicKind)> {
    let rest = topic.strip_prefix(TOPIC_ROOT)?.strip_prefix('/')?;
    let (gw, tail) = rest.split_once('/')?;
    if gw.is_empty() {
        return None;
    }
    let kind = match tail {
        "telemetry" => TopicKind::Telemetry,
        "alerts" => TopicKind::Alerts,
        "settings/ack" => TopicKind::SettingsAck,
        _ => return None,
    };
    Some((gw, kind))
}

/// The topic on which the cloud publishes a gateway's desired settings (retained).
pub fn settings_topic(gateway: &str) -> String {
    format!("{TOPIC_ROOT}/{gateway}/settings")
}

#[derive(Debug, Deserialize)]
struct Envelope {
    schema: String,
    gateway: String,
    seq: i64,
    kind: String,
    t_utc_s: i64,
}

#[derive(Debug, Deserialize)]
struct TelemetryBody {
    interval_s: f64,
    site: SiteBody,
    batteries: Vec<BatteryBody>,
}

#[derive(Debug, Deserialize)]
struct SiteBody {
    grid_w: f64,
    pv_w: f64,
    load_w: f64,
    battery_w: f64,
    soc: f64,
}

#[derive(Debug, Deserialize)]
struct BatteryBody {
    serial: u32,
    soc: f64,
    power_w: f64,
    lifecycle: Lifecycle,
    soc_led: SocLed,
    status_led: StatusLed,
}

#[derive(Debug, Deserialize)]
struct AlertBody {
    serial: Option<u32>,
    code: u32,
    raised: bool,
}

#[derive(Debug, Deserialize)]
struct AckBody {
    gateway: String,
    version: i64,
    accepted: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// A record that passed every check, ready for the store.
enum Parsed {
    Record {
        gateway: String,
        point: Option<PointRow>,
        batteries: Vec<BatteryRow>,
        event: Option<EventRow>,
        unknown_batteries: u64,
    },
    Ack {
        gateway: String,
        ack: AckBody,
    },
}

/// Why a message was refused, with what could be read of it.
struct Refusal {
    gateway: Option<String>,
    seq: Option<i64>,
    reason: String,
}

impl Refusal {
    fn new(gateway: Option<&str>, seq: Option<i64>, reason: impl Into<String>) -> Self {
        Self {
            gateway: gateway.map(str::to_string),
            seq,
            reason: reason.into(),
        }
    }
}

/// The site of a gateway and its devices, looked up once per batch.
struct GatewaySite {
    site: Site,
    devices: Vec<Device>,
}

/// Turns gateway messages into the cloud's rows.
pub struct Feed {
    state: AppState,
}

impl Feed {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stores a batch of messages: every message ends as data (idempotent on `(gateway, seq)`), as
    /// a settings ack, or as a reject row with its reason. `Err` only when the store failed; then
    /// nothing of this batch may be acknowledged to the broker (what was committed is idempotent on
    /// redelivery).
    pub async fn ingest(&self, msgs: &[Message]) -> Result<FeedCounts, StoreError> {
        let mut counts = FeedCounts {
            messages: msgs.len() as u64,
            ..Default::default()
        };
        let mut sites: BTreeMap<String, Option<GatewaySite>> = BTreeMap::new();
        // Per gateway, in arrival order: points, battery reports, events.
        type Rows = (Vec<PointRow>, Vec<BatteryRow>, Vec<EventRow>);
        let mut rows: BTreeMap<String, Rows> = BTreeMap::new();
        let mut acks: Vec<(i64, AckBody)> = Vec::new();
        for m in msgs {
            let gw = parse_topic(&m.topic).map(|(g, _)| g.to_string());
            if let Some(g) = &gw {
                if !sites.contains_key(g) {
                    let found = self.gateway_site(g).await?;
                    sites.insert(g.clone(), found);
                }
            }
            let site = gw
                .as_ref()
                .and_then(|g| sites.get(g))
                .and_then(|s| s.as_ref());
            match parse(m, site) {
                Ok(Parsed::Record {
                    gateway,
                    point,
                    batteries,
                    event,
                    unknown_batteries,
                }) => {
                    counts.batteries_unknown += unknown_batteries;
                    let e = rows.entry(gateway).or_default();
                    e.0.extend(point);
                    e.1.extend(batteries);
                    e.2.extend(event);
                }
                Ok(Parsed::Ack { gateway, ack }) => {
                    let site_id = sites
                        .get(&gateway)
                        .and_then(|s| s.as_ref())
                        .map(|s| s.site.id);
                    // `parse` refuses an ack of a gateway the store does not know.
                    if let Some(id) = site_id {
                        acks.push((id, ack));
                    }
                }
                Err(r) => {
                    self.reject(m, r).await?;
                    counts.rejected += 1;
                }
            }
        }
        // Every gateway's share in one transaction: one commit per batch, not per gateway.
        let mut shares: Vec<(i64, String, Rows)> = Vec::new();
        for (gw, (points, batteries, events)) in rows {
            let Some(Some(gs)) = sites.get(&gw) else {
                continue;
            };
            // Only the newest report per battery matters for the latest-state table.
            let mut newest: BTreeMap<String, BatteryRow> = BTreeMap::new();
            for b in batteries {
                match newest.get(&b.serial) {
                    Some(o) if o.ts_ms > b.ts_ms => {}
                    _ => {
                        newest.insert(b.serial.clone(), b);
                    }
                }
            }
            shares.push((
                gs.site.id,
                gw,
                (points, newest.into_values().collect(), events),
            ));
        }
        let parts: Vec<IngestPart<'_>> = shares
            .iter()
            .map(|(site_id, gw, (points, batteries, events))| IngestPart {
                site_id: *site_id,
                gateway_serial: gw,
                points,
                batteries,
                events,
            })
            .collect();
        if !parts.is_empty() {
            for c in self.state.store.ingest_many(&parts).await? {
                counts.points_stored += c.points_stored;
                counts.points_duplicate += c.points_duplicate;
                counts.events_stored += c.events_stored;
                counts.events_duplicate += c.events_duplicate;
            }
        }
        let now = self.state.clock.now_ms();
        for (site_id, ack) in acks {
            let msg = ack.reason.as_deref().map(|r| truncate(r, 1000));
            match self
                .state
                .store
                .ack_settings(site_id, ack.version, ack.accepted, msg.as_deref(), now)
                .await
            {
                Ok(_) => counts.settings_acks += 1,
                Err(StoreError::NotFound(what)) => {
                    let r = Refusal::new(
                        Some(&ack.gateway),
                        None,
                        format!("settings ack: {what} does not exist"),
                    );
                    let m = Message::new(
                        format!("{TOPIC_ROOT}/{}/settings/ack", ack.gateway),
                        serde_json::to_vec(&serde_json::json!({
                            "version": ack.version, "accepted": ack.accepted, "reason": ack.reason
                        }))
                        .unwrap_or_default(),
                    );
                    self.reject(&m, r).await?;
                    counts.rejected += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(counts)
    }

    async fn gateway_site(&self, gw: &str) -> Result<Option<GatewaySite>, StoreError> {
        let Some(d) = self.state.store.device(gw).await? else {
            return Ok(None);
        };
        if d.kind != DeviceKind::Gateway {
            return Ok(None);
        }
        let Some(site) = self.state.store.site(d.site_id).await? else {
            return Ok(None);
        };
        let devices = self.state.store.devices(site.id).await?;
        Ok(Some(GatewaySite { site, devices }))
    }

    async fn reject(&self, m: &Message, r: Refusal) -> Result<(), StoreError> {
        self.state
            .store
            .reject(&RejectRow {
                received_ms: self.state.clock.now_ms(),
                source: truncate(&m.topic, 300),
                gateway_serial: r.gateway.map(|g| truncate(&g, 64)),
                seq: r.seq,
                reason: truncate(&r.reason, 1000),
                payload: String::from_utf8_lossy(&m.payload).into_owned(),
            })
            .await
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Checks one message against the topic tree, the record schema and the gateway's site.
fn parse(m: &Message, site: Option<&GatewaySite>) -> Result<Parsed, Refusal> {
    let Some((gw, kind)) = parse_topic(&m.topic) else {
        return Err(Refusal::new(
            None,
            None,
            format!(
                "topic {:?}: expected {TOPIC_ROOT}/{{gateway}}/telemetry, /alerts or /settings/ack",
                m.topic
            ),
        ));
    };
    let unknown = |seq: Option<i64>| {
        Refusal::new(
            Some(gw),
            seq,
            format!("gateway {gw:?} is not a gateway of any site in this cloud"),
        )
    };
    if kind == TopicKind::SettingsAck {
        let ack: AckBody = serde_json::from_slice(&m.payload)
            .map_err(|e| Refusal::new(Some(gw), None, format!("settings ack: {e}")))?;
        if ack.gateway != gw {
            return Err(Refusal::new(
                Some(gw),
                None,
                format!(
                    "settings ack: gateway {:?} published on the topic of {gw:?}",
                    ack.gateway
                ),
            ));
        }
        site.ok_or_else(|| unknown(None))?;
        return Ok(Parsed::Ack {
            gateway: gw.to_string(),
            ack,
        });
    }
    let env: Envelope = serde_json::from_slice(&m.payload)
        .map_err(|e| Refusal::new(Some(gw), None, format!("record envelope: {e}")))?;
    let seq = Some(env.seq);
    let refuse = |reason: String| Refusal::new(Some(gw), seq, reason);
    if env.schema != SCHEMA {
        return Err(refuse(format!(
            "schema {:?}: this cloud reads {SCHEMA:?}",
            env.schema
        )));
    }
    if env.gateway != gw {
        return Err(refuse(format!(
            "gateway {:?} published on the topic of {gw:?}",
            env.gateway
        )));
    }
    let expected = match kind {
        TopicKind::Telemetry => "telemetry",
        _ => "alert",
    };
    if env.kind != expected {
        return Err(refuse(format!(
            "kind {:?} on the {expected} topic",
            env.kind
        )));
    }
    if env.seq < 1 {
        return Err(refuse(format!("seq: {}: expected >= 1", env.seq)));
    }
    let site = site.ok_or_else(|| unknown(seq))?;
    let ts_ms = env.t_utc_s.saturating_mul(1000);
    let invalid = |e: crate::error::ApiError| refuse(e.message);
    match kind {
        TopicKind::Telemetry => {
            let t: TelemetryBody = serde_json::from_slice(&m.payload)
                .map_err(|e| refuse(format!("telemetry: {e}")))?;
            let point = Point {
                seq: env.seq,
                ts_ms,
                interval_s: t.interval_s,
                pv_w: t.site.pv_w,
                load_w: t.site.load_w,
                grid_w: t.site.grid_w,
                battery_w: t.site.battery_w,
                soc: t.site.soc,
            };
            let mut reports = Vec::new();
            let mut unknown_batteries = 0;
            for b in &t.batteries {
                let serial = b.serial.to_string();
                let known = site
                    .devices
                    .iter()
                    .any(|d| d.kind == DeviceKind::Battery && d.serial == serial);
                if !known {
                    unknown_batteries += 1;
                    continue;
                }
                let report: BatteryReport = serde_json::from_value(serde_json::json!({
                    "serial": serial, "ts_ms": ts_ms, "soc": b.soc, "power_w": b.power_w,
                    "soc_led": b.soc_led, "status_led": b.status_led, "lifecycle": b.lifecycle,
                }))
                .map_err(|e| refuse(format!("batteries: {e}")))?;
                reports.push(report);
            }
            let batch = Batch {
                gateway_serial: gw.to_string(),
                points: vec![point],
                batteries: reports,
                events: vec![],
            };
            ingest::validate(&batch, &site.devices).map_err(invalid)?;
            Ok(Parsed::Record {
                gateway: gw.to_string(),
                point: Some(PointRow {
                    seq: point.seq,
                    ts_ms: point.ts_ms,
                    interval_s: point.interval_s,
                    pv_w: point.pv_w,
                    load_w: point.load_w,
                    grid_w: point.grid_w,
                    battery_w: point.battery_w,
                    soc: point.soc,
                }),
                batteries: batch
                    .batteries
                    .iter()
                    .map(|b| BatteryRow {
                        serial: b.serial.as_str().to_string(),
                        ts_ms: b.ts_ms,
                        soc: b.soc,
                        power_w: b.power_w,
                        soc_led: serde_json::to_string(&b.soc_led).unwrap_or_default(),
                        status_led: ingest::json_name(&b.status_led),
                        lifecycle: ingest::json_name(&b.lifecycle),
                    })
                    .collect(),
                event: None,
                unknown_batteries,
            })
        }
        _ => {
            let a: AlertBody =
                serde_json::from_slice(&m.payload).map_err(|e| refuse(format!("alert: {e}")))?;
            let device = match a.serial {
                Some(s) => s.to_string(),
                None => gw.to_string(),
            };
            let event = Event {
                seq: env.seq,
                ts_ms,
                device_serial: device,
                code: a.code,
                active: a.raised,
            };
            let batch = Batch {
                gateway_serial: gw.to_string(),
                points: vec![],
                batteries: vec![],
                events: vec![event.clone()],
            };
            ingest::validate(&batch, &site.devices).map_err(invalid)?;
            Ok(Parsed::Record {
                gateway: gw.to_string(),
                point: None,
                batteries: vec![],
                event: Some(EventRow {
                    seq: event.seq,
                    ts_ms: event.ts_ms,
                    device_serial: event.device_serial,
                    code: event.code as i64,
                    active: event.active,
                }),
                unknown_batteries: 0,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        assert_eq!(
            parse_topic("melv/v1/gw-1/telemetry"),
            Some(("gw-1", TopicKind::Telemetry))
        );
        assert_eq!(
            parse_topic("melv/v1/gw-1/alerts"),
            Some(("gw-1", TopicKind::Alerts))
        );
        assert_eq!(
            parse_topic("melv/v1/gw-1/settings/ack"),
            Some(("gw-1", TopicKind::SettingsAck))
        );
        assert_eq!(parse_topic("melv/v1/gw-1/status"), None);
        assert_eq!(parse_topic("melv/v1//telemetry"), None);
        assert_eq!(parse_topic("melv/v2/gw-1/telemetry"), None);
        assert_eq!(parse_topic("melv/v1/gw-1/telemetry/x"), None);
        assert_eq!(settings_topic("gw-1"), "melv/v1/gw-1/settings");
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
