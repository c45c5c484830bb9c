//! The gateways' message feed: what a live gateway publishes over MQTT (`docs/gateway.md` 2-4), turned
//! into the cloud's rows. The MQTT ingest worker ([`crate::mqtt`]) feeds it from the broker and
//! `melv demo` from an in-process channel; both hand over `(topic, payload)` messages and acknowledge
//! them only after [`Feed::ingest`] returned `Ok`, so a message is either committed (as data, or as a
//! reject row with its reason) or delivered again.
//!
//! ## Rules
//! * Topics and records are `melv-wire`'s (the gateway builds on the same crate):
//!   `melv/v1/{gateway}/telemetry`, `.../alerts`, `.../settings/ack`, schema [`melv_wire::SCHEMA`];
//!   a record or ack of another schema is refused, naming the field. The gateway id is the
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
use melv_store::{
    BatteryRow, Device, DeviceKind, EventRow, IngestPart, PointRow, RejectRow, Site, StoreError,
};
pub use melv_wire::{parse_topic, settings_topic, TopicKind, SCHEMA, TOPIC_ROOT};
use melv_wire::{AlertRecord, Envelope, SettingsAck, Telemetry, UplinkAck};
use serde::Serialize;
use std::collections::BTreeMap;

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

/// A settings ack that passed its checks.
#[derive(Debug)]
struct AckBody {
    gateway: String,
    version: i64,
    accepted: bool,
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
        /// The envelope's `dropped_through` (0: none).
        dropped_through: i64,
    },
    Ack {
        gateway: String,
        ack: AckBody,
    },
}

/// Why a message was refused, with what could be read of it.
#[derive(Debug)]
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

/// Per gateway, in arrival order: points, battery reports, events.
type Rows = (Vec<PointRow>, Vec<BatteryRow>, Vec<EventRow>);

/// A batch sorted out: the rows per gateway, the acks per site, and the gateways' sites.
#[derive(Default)]
struct Sorted {
    sites: BTreeMap<String, Option<GatewaySite>>,
    rows: BTreeMap<String, Rows>,
    acks: Vec<(i64, AckBody)>,
    /// Gateways whose numbered records this batch committed, with the highest `dropped_through`.
    touched: BTreeMap<String, i64>,
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
        self.ingest_marked(msgs).await.map(|(c, _)| c)
    }

    /// [`Feed::ingest`], then the uplink mark of every gateway whose numbered records the batch
    /// committed ([`melv_store::Store::advance_uplink`]), as the acknowledgements to publish on
    /// `melv/v1/{gateway}/ack` (docs/cloud.md, "The uplink mark").
    pub async fn ingest_marked(
        &self,
        msgs: &[Message],
    ) -> Result<(FeedCounts, Vec<UplinkAck>), StoreError> {
        let mut counts = FeedCounts {
            messages: msgs.len() as u64,
            ..Default::default()
        };
        let sorted = self.sort(msgs, &mut counts).await?;
        let touched = sorted.touched;
        let shares = shares(sorted.rows, &sorted.sites);
        self.store_shares(&shares, &mut counts).await?;
        self.apply_acks(sorted.acks, &mut counts).await?;
        let mut acks = Vec::with_capacity(touched.len());
        let now = self.state.clock.now_ms();
        for (gw, dropped_through) in touched {
            let u = self
                .state
                .store
                .advance_uplink(&gw, dropped_through, now)
                .await?;
            acks.push(uplink_ack(&gw, &u));
        }
        Ok((counts, acks))
    }

    /// Parses every message against its gateway's site (looked up once per gateway), keeping the
    /// rows and acks, and storing the refusals as rejects.
    async fn sort(&self, msgs: &[Message], counts: &mut FeedCounts) -> Result<Sorted, StoreError> {
        let mut out = Sorted::default();
        for m in msgs {
            let gw = parse_topic(&m.topic).map(|(g, _)| g.to_string());
            if let Some(g) = &gw {
                if !out.sites.contains_key(g) {
                    let found = self.gateway_site(g).await?;
                    out.sites.insert(g.clone(), found);
                }
            }
            let site = gw
                .as_ref()
                .and_then(|g| out.sites.get(g))
                .and_then(|s| s.as_ref());
            match parse(m, site, self.state.clock.now_ms()) {
                Ok(Parsed::Record {
                    gateway,
                    point,
                    batteries,
                    event,
                    unknown_batteries,
                    dropped_through,
                }) => {
                    counts.batteries_unknown += unknown_batteries;
                    let d = out.touched.entry(gateway.clone()).or_default();
                    *d = (*d).max(dropped_through);
                    let e = out.rows.entry(gateway).or_default();
                    e.0.extend(point);
                    e.1.extend(batteries);
                    e.2.extend(event);
                }
                Ok(Parsed::Ack { gateway, ack }) => {
                    let site_id = out
                        .sites
                        .get(&gateway)
                        .and_then(|s| s.as_ref())
                        .map(|s| s.site.id);
                    // `parse` refuses an ack of a gateway the store does not know.
                    if let Some(id) = site_id {
                        out.acks.push((id, ack));
                    }
                }
                Err(r) => {
                    // A numbered record kept as a reject is committed too: its gateway's mark may
                    // move over it.
                    if let (Some(g), Some(_)) = (&r.gateway, r.seq) {
                        out.touched.entry(g.clone()).or_default();
                    }
                    self.reject(m, r).await?;
                    counts.rejected += 1;
                }
            }
        }
        Ok(out)
    }

    /// Every gateway's share in one transaction: one commit per batch, not per gateway.
    async fn store_shares(
        &self,
        shares: &[(i64, String, Rows)],
        counts: &mut FeedCounts,
    ) -> Result<(), StoreError> {
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
        if parts.is_empty() {
            return Ok(());
        }
        for c in self.state.store.ingest_many(&parts).await? {
            counts.points_stored += c.points_stored;
            counts.points_duplicate += c.points_duplicate;
            counts.events_stored += c.events_stored;
            counts.events_duplicate += c.events_duplicate;
        }
        Ok(())
    }

    /// Applies the settings acks; an ack of a version the site does not have becomes a reject.
    async fn apply_acks(
        &self,
        acks: Vec<(i64, AckBody)>,
        counts: &mut FeedCounts,
    ) -> Result<(), StoreError> {
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
                        melv_wire::settings_ack_topic(&ack.gateway),
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
        Ok(())
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

/// The acknowledgement of `gateway`'s uplink as the wire carries it.
pub fn uplink_ack(gateway: &str, u: &melv_store::UplinkRow) -> UplinkAck {
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    UplinkAck {
        schema: SCHEMA.into(),
        gateway: gateway.to_string(),
        stored_through: n(u.stored_through),
        highest: n(u.highest),
        missing: n(u.missing),
    }
}

/// The rows of each known gateway with its site id; of the battery reports only the newest per
/// battery (all that matters for the latest-state table).
fn shares(
    rows: BTreeMap<String, Rows>,
    sites: &BTreeMap<String, Option<GatewaySite>>,
) -> Vec<(i64, String, Rows)> {
    let mut out = Vec::new();
    for (gw, (points, batteries, events)) in rows {
        let Some(Some(gs)) = sites.get(&gw) else {
            continue;
        };
        let mut newest: BTreeMap<String, BatteryRow> = BTreeMap::new();
        for b in batteries {
            match newest.get(&b.serial) {
                Some(o) if o.ts_ms > b.ts_ms => {}
                _ => {
                    newest.insert(b.serial.clone(), b);
                }
            }
        }
        out.push((
            gs.site.id,
            gw,
            (points, newest.into_values().collect(), events),
        ));
    }
    out
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

/// A message whose topic and envelope passed their checks; its body is read after the gateway's
/// site is known.
#[derive(Debug)]
enum Read<'a> {
    Record {
        gw: &'a str,
        kind: TopicKind,
        env: Envelope,
    },
    Ack {
        gw: &'a str,
        ack: AckBody,
    },
}

/// A record's body, of the kind its topic carries.
#[derive(Debug)]
enum Body {
    Telemetry(Telemetry),
    Alert(AlertRecord),
}

/// Checks one message against the topic tree, the record schema and the gateway's site.
fn parse(m: &Message, site: Option<&GatewaySite>, now_ms: i64) -> Result<Parsed, Refusal> {
    let unknown = |gw: &str, seq: Option<i64>| {
        Refusal::new(
            Some(gw),
            seq,
            format!("gateway {gw:?} is not a gateway of any site in this cloud"),
        )
    };
    match read(m)? {
        Read::Ack { gw, ack } => {
            site.ok_or_else(|| unknown(gw, None))?;
            Ok(Parsed::Ack {
                gateway: gw.to_string(),
                ack,
            })
        }
        Read::Record { gw, kind, env } => {
            let site = site.ok_or_else(|| unknown(gw, Some(env.seq)))?;
            let refuse = |reason: String| Refusal::new(Some(gw), Some(env.seq), reason);
            match read_body(kind, &m.payload).map_err(refuse)? {
                Body::Telemetry(t) => telemetry_rows(gw, &env, &t, site, now_ms).map_err(refuse),
                Body::Alert(a) => alert_rows(gw, &env, &a, site, now_ms).map_err(refuse),
            }
        }
    }
}

/// The checks that need no site: topic, schema, envelope (or the ack).
fn read(m: &Message) -> Result<Read<'_>, Refusal> {
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
    if kind == TopicKind::SettingsAck {
        let ack = read_ack(gw, &m.payload).map_err(|r| Refusal::new(Some(gw), None, r))?;
        return Ok(Read::Ack { gw, ack });
    }
    let env: Envelope = serde_json::from_slice(&m.payload)
        .map_err(|e| Refusal::new(Some(gw), None, format!("record envelope: {e}")))?;
    let refuse = |reason: String| Refusal::new(Some(gw), Some(env.seq), reason);
    melv_wire::check_schema(&env.schema).map_err(|e| refuse(e.to_string()))?;
    if env.gateway != gw {
        return Err(refuse(format!(
            "gateway {:?} published on the topic of {gw:?}",
            env.gateway
        )));
    }
    let expected = kind.record_kind().unwrap_or_default();
    if env.kind != expected {
        return Err(refuse(format!(
            "kind {:?} on the {expected} topic",
            env.kind
        )));
    }
    if env.seq < 1 {
        return Err(refuse(format!("seq: {}: expected >= 1", env.seq)));
    }
    Ok(Read::Record { gw, kind, env })
}

/// A settings ack of gateway `gw` in the current schema, with the version it judged.
fn read_ack(gw: &str, payload: &[u8]) -> Result<AckBody, String> {
    let ack: SettingsAck =
        serde_json::from_slice(payload).map_err(|e| format!("settings ack: {e}"))?;
    melv_wire::check_schema(&ack.schema).map_err(|e| format!("settings ack: {e}"))?;
    if ack.gateway != gw {
        return Err(format!(
            "settings ack: gateway {:?} published on the topic of {gw:?}",
            ack.gateway
        ));
    }
    let version = match ack.version {
        None => {
            return Err(
                "settings ack: version: null (the gateway could not read a settings message; nothing to apply)"
                    .into(),
            )
        }
        Some(v) => i64::try_from(v)
            .map_err(|_| format!("settings ack: version: {v}: expected at most {}", i64::MAX))?,
    };
    Ok(AckBody {
        gateway: ack.gateway,
        version,
        accepted: ack.accepted,
        reason: ack.reason,
    })
}

/// The body of a record on a `kind` topic (the envelope fields are in the same object).
fn read_body(kind: TopicKind, payload: &[u8]) -> Result<Body, String> {
    match kind {
        TopicKind::Telemetry => serde_json::from_slice(payload)
            .map(Body::Telemetry)
            .map_err(|e| format!("telemetry: {e}")),
        _ => serde_json::from_slice(payload)
            .map(Body::Alert)
            .map_err(|e| format!("alert: {e}")),
    }
}

/// A telemetry record as the site's point and the reports of the batteries the site lists,
/// validated as the HTTP ingest validates a batch.
fn telemetry_rows(
    gw: &str,
    env: &Envelope,
    t: &Telemetry,
    site: &GatewaySite,
    now_ms: i64,
) -> Result<Parsed, String> {
    let ts_ms = env.t_utc_s.saturating_mul(1000);
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
        .map_err(|e| format!("batteries: {e}"))?;
        reports.push(report);
    }
    let batch = Batch {
        gateway_serial: gw.to_string(),
        points: vec![point],
        batteries: reports,
        events: vec![],
    };
    ingest::validate(&batch, &site.devices, now_ms).map_err(|e| e.message)?;
    Ok(Parsed::Record {
        dropped_through: env.dropped_through,
        gateway: gw.to_string(),
        point: Some(ingest::point_row(&point)),
        batteries: batch.batteries.iter().map(ingest::battery_row).collect(),
        event: None,
        unknown_batteries,
    })
}

/// An alert record as one event of a device of the site (the battery by its CAN serial, or the
/// gateway itself).
fn alert_rows(
    gw: &str,
    env: &Envelope,
    a: &AlertRecord,
    site: &GatewaySite,
    now_ms: i64,
) -> Result<Parsed, String> {
    let device = match a.serial {
        Some(s) => s.to_string(),
        None => gw.to_string(),
    };
    let event = Event {
        seq: env.seq,
        ts_ms: env.t_utc_s.saturating_mul(1000),
        device_serial: device,
        code: u32::from(a.code),
        active: a.raised,
    };
    let batch = Batch {
        gateway_serial: gw.to_string(),
        points: vec![],
        batteries: vec![],
        events: vec![event.clone()],
    };
    ingest::validate(&batch, &site.devices, now_ms).map_err(|e| e.message)?;
    Ok(Parsed::Record {
        dropped_through: env.dropped_through,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        assert_eq!(
            parse_topic("melv/v1/gw-1/telemetry"),
            Some(("gw-1", TopicKind::Telemetry))
        );
        assert_eq!(parse_topic("melv/v1/gw-1/status"), None);
        assert_eq!(settings_topic("gw-1"), "melv/v1/gw-1/settings");
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }

    /// The golden files of `melv-wire` pass every check that needs no site.
    #[test]
    fn the_golden_records_are_read() {
        let fixture = |name: &str, topic: &str| {
            Message::new(
                topic,
                match name {
                    "telemetry" => {
                        include_bytes!("../../wire/tests/fixtures/telemetry.json").to_vec()
                    }
                    "alert" => include_bytes!("../../wire/tests/fixtures/alert.json").to_vec(),
                    _ => include_bytes!("../../wire/tests/fixtures/settings_ack.json").to_vec(),
                },
            )
        };
        let t = fixture("telemetry", "melv/v1/gw-1/telemetry");
        match read(&t).unwrap() {
            Read::Record { gw, kind, env } => {
                assert_eq!((gw, env.seq, env.kind.as_str()), ("gw-1", 42, "telemetry"));
                match read_body(kind, &t.payload).unwrap() {
                    Body::Telemetry(b) => {
                        assert_eq!(b.batteries.len(), 2);
                        assert_eq!(b.site.status, melv_core::SiteStatus::Normal);
                    }
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
        let a = fixture("alert", "melv/v1/gw-1/alerts");
        match read(&a).unwrap() {
            Read::Record { kind, env, .. } => {
                assert_eq!((env.seq, env.kind.as_str()), (43, "alert"));
                match read_body(kind, &a.payload).unwrap() {
                    Body::Alert(b) => assert_eq!((b.code, b.serial), (63, Some(3_456_790))),
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
        match read(&fixture("ack", "melv/v1/gw-1/settings/ack")).unwrap() {
            Read::Ack { gw, ack } => {
                assert_eq!((gw, ack.version, ack.accepted), ("gw-1", 4, false));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_schemas_are_refused_naming_the_field() {
        for (topic, name) in [
            ("melv/v1/gw-1/telemetry", "telemetry"),
            ("melv/v1/gw-1/settings/ack", "ack"),
        ] {
            let payload: &[u8] = if name == "telemetry" {
                include_bytes!("../../wire/tests/fixtures/telemetry.json")
            } else {
                include_bytes!("../../wire/tests/fixtures/settings_ack.json")
            };
            let v1 = String::from_utf8(payload.to_vec())
                .unwrap()
                .replace(SCHEMA, "melv.gateway.v1");
            let r = read(&Message::new(topic, v1)).unwrap_err();
            assert!(
                r.reason
                    .contains("schema \"melv.gateway.v1\": unknown schema version"),
                "{}",
                r.reason
            );
            assert_eq!(r.gateway.as_deref(), Some("gw-1"));
        }
    }
}
