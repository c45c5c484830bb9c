//! The demo's gateway, sans-IO: the live gateway's own [`SiteRuntime`] (controller, CAN codec,
//! battery firmware and twins), whose records become the MQTT messages a real gateway publishes, and
//! its answer to a settings version, judged and applied by the gateway's own [`answer_settings`].
//!
//! What the real gateway does with a broker (docs/gateway.md), this does with a list of
//! [`Message`]s that the caller hands to the cloud's [`melv_server::feed::Feed`]: same topics, same
//! payloads ([`Record::to_payload`]), same sequence numbers (one counter over all kinds, gapless, never
//! reused: the caller starts it after the highest one the cloud already holds).

use chrono::TimeZone;
use melv_gateway::record::{Counters, Record, Topics, SCHEMA};
use melv_gateway::uplink::{answer_settings, SettingsAck, SettingsAnswer};
use melv_gateway::{SiteError, SiteRuntime};
use melv_server::feed::Message;
use melv_sim::scenario::Scenario;

/// What one [`DemoGateway::run_until`] produced.
#[derive(Debug, Default)]
pub struct Produced {
    /// Telemetry and alert messages in record order.
    pub messages: Vec<Message>,
    /// One progress line per simulated hour that closed (telemetry ending on a full hour).
    pub hours: Vec<String>,
    /// Control cycles run.
    pub cycles: u64,
}

/// A settings version as the gateway answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The ack on `melv/v1/{gateway}/settings/ack`.
    pub message: Message,
    pub ack: SettingsAck,
}

pub struct DemoGateway {
    site: SiteRuntime,
    topics: Topics,
    next_seq: u64,
}

impl DemoGateway {
    /// A gateway `id` running `scenario` whose site clock starts at `start_utc_s` (floored to the
    /// minute, at the same place of the profile's year, as `melv gateway --clock now` does), with
    /// control cycles of `cycle_s` and the first record numbered `next_seq`.
    pub fn new(
        scenario: Scenario,
        id: &str,
        start_utc_s: f64,
        cycle_s: f64,
        next_seq: u64,
    ) -> anyhow::Result<Self> {
        let topics = Topics::new(id)?;
        let p = &scenario.profile;
        let (offset, elapsed) = melv_gateway::args::clock_start(
            start_utc_s,
            p.start_utc_s as f64,
            (p.end_utc_s() - p.start_utc_s) as f64,
        );
        let site = SiteRuntime::new(id, scenario, cycle_s, elapsed, Counters::default())?
            .with_clock_offset(offset);
        Ok(Self {
            site,
            topics,
            next_seq: next_seq.max(1),
        })
    }

    /// The site's UTC clock, Unix s: the start of the next control cycle.
    pub fn clock_utc_s(&self) -> f64 {
        self.site.clock_utc_s()
    }

    /// The number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The batteries' serials as the cloud registers them: the CAN serial (BAT_IDENT) in decimal,
    /// which is what the records carry.
    pub fn battery_serials(&self) -> Vec<String> {
        self.site
            .battery_serials()
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    pub fn settings_version(&self) -> u64 {
        self.site.settings_version()
    }

    pub fn site(&self) -> &SiteRuntime {
        &self.site
    }

    /// Change the control cycle (only between telemetry intervals, which is after every
    /// [`DemoGateway::run_until`] that ran whole minutes).
    pub fn set_cycle_s(&mut self, cycle_s: f64) -> Result<(), SiteError> {
        self.site.set_cycle_s(cycle_s)
    }

    /// Run the control cycles that end at or before `until_utc_s`, at most `max_cycles` of them,
    /// and turn their records into messages.
    pub fn run_until(&mut self, until_utc_s: f64, max_cycles: u64) -> Result<Produced, SiteError> {
        let mut out = Produced::default();
        let dt = self.site.cycle_s();
        while out.cycles < max_cycles && self.site.clock_utc_s() + dt <= until_utc_s + 1e-6 {
            for r in self.site.step()? {
                if let Record::Telemetry(t) = &r {
                    if t.t_utc_s.rem_euclid(3600) == 0 {
                        out.hours.push(self.hour_line(t, self.next_seq));
                    }
                }
                let topic = self.topics.for_kind(r.kind()).to_string();
                out.messages.push(Message::new(
                    topic,
                    r.to_payload(self.site.gateway_id(), self.next_seq),
                ));
                self.next_seq += 1;
            }
            out.cycles += 1;
        }
        Ok(out)
    }

    fn hour_line(&self, t: &melv_gateway::record::Telemetry, seq: u64) -> String {
        let tz = self.site.scenario().site.timezone;
        let when = tz
            .timestamp_opt(t.t_utc_s, 0)
            .single()
            .map(|d| d.format("%Y-%m-%d %H:%M %Z").to_string())
            .unwrap_or_else(|| format!("{} UTC s", t.t_utc_s));
        let kw = |w: f64| w / 1000.0;
        format!(
            "site time {when}: SOC {:.0} %, solar {:.2} kW, home {:.2} kW, grid {:+.2} kW, \
             battery {:+.2} kW ({}, settings v{}, {}), seq {seq}",
            t.site.soc * 100.0,
            kw(t.site.pv_w),
            kw(t.site.load_w),
            kw(t.site.grid_w),
            kw(t.site.battery_w),
            t.site.mode,
            t.site.settings_version,
            // The wire name ("normal"), as the mode above.
            serde_json::to_value(t.site.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        )
    }

    /// Put back the settings in force at an earlier run (the cloud's newest acknowledged version),
    /// as the real gateway restores them from its state directory. No ack: the cloud has it.
    pub fn restore_settings(&mut self, version: i64, settings_json: &str) -> Result<(), String> {
        let v = u64::try_from(version).map_err(|_| format!("settings version {version}"))?;
        let s: melv_ems::Settings =
            serde_json::from_str(settings_json).map_err(|e| format!("settings v{version}: {e}"))?;
        self.site
            .apply_settings(v, s)
            .map_err(|e| format!("settings v{version}: {e}"))
    }

    /// The gateway's answer to settings version `version` (the cloud's stored JSON), as the live
    /// gateway gives it ([`answer_settings`]: judged against the version in force, applied to the
    /// site when new and valid), with the ack payload the gateway publishes.
    pub fn answer_settings(&mut self, version: i64, settings_json: &str) -> Answer {
        // The message the cloud would publish on `.../settings` (retained). Stored JSON that is not
        // JSON is passed on as a string, so the gateway's own check refuses it with its reason.
        let settings = serde_json::from_str::<serde_json::Value>(settings_json)
            .unwrap_or_else(|_| serde_json::Value::String(settings_json.to_string()));
        let payload = serde_json::json!({"version": version, "settings": settings}).to_string();
        let ack = match answer_settings(&mut self.site, payload.as_bytes()) {
            SettingsAnswer::Ack { ack, .. } => ack,
            // The JSON built above is never empty; answered as the gateway would an empty one.
            SettingsAnswer::Ignore => SettingsAck {
                schema: SCHEMA.into(),
                gateway: self.site.gateway_id().to_string(),
                version: u64::try_from(version).ok(),
                accepted: false,
                reason: Some("empty settings message".to_string()),
                applied_version: self.site.settings_version(),
            },
        };
        let message = Message::new(
            self.topics.settings_ack.clone(),
            serde_json::to_vec(&ack).unwrap_or_default(),
        );
        Answer { message, ack }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use melv_gateway::record::Envelope;

    pub(crate) fn scenario() -> Scenario {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/self-consumption.toml");
        Scenario::load(&path, Default::default()).expect("example site file")
    }

    /// 2026-11-25 12:00:30 UTC.
    const NOON: f64 = 1_795_608_030.0;

    fn envelopes(msgs: &[Message]) -> Vec<(String, Envelope)> {
        msgs.iter()
            .map(|m| {
                (
                    m.topic.clone(),
                    serde_json::from_slice::<Envelope>(&m.payload).expect("envelope"),
                )
            })
            .collect()
    }

    #[test]
    fn the_clock_starts_on_the_minute_and_records_are_numbered_on() {
        let mut g = DemoGateway::new(scenario(), "demo-gw", NOON, 60.0, 41).unwrap();
        assert_eq!(g.clock_utc_s(), NOON - 30.0);
        let p = g.run_until(NOON - 30.0 + 3600.0, u64::MAX).unwrap();
        assert_eq!(p.cycles, 60);
        let env = envelopes(&p.messages);
        let tel: Vec<_> = env.iter().filter(|(_, e)| e.kind == "telemetry").collect();
        assert_eq!(tel.len(), 60, "one telemetry record per minute");
        for (i, (_, e)) in env.iter().enumerate() {
            assert_eq!(e.seq, 41 + i as i64, "gapless from the first number");
            assert_eq!(e.gateway, "demo-gw");
            assert_eq!(e.schema, SCHEMA);
        }
        for (topic, e) in &env {
            let want = if e.kind == "alert" {
                "melv/v1/demo-gw/alerts"
            } else {
                "melv/v1/demo-gw/telemetry"
            };
            assert_eq!(topic, want);
        }
        assert_eq!(tel[0].1.t_utc_s, (NOON - 30.0) as i64 + 60);
        assert_eq!(g.next_seq(), 41 + env.len() as u64);
        // 12:00 to 13:00 closes one hour: one progress line.
        assert_eq!(p.hours.len(), 1, "{:?}", p.hours);
        assert!(
            p.hours[0].contains("site time 2026-11-25 08:00 EST"),
            "{}",
            p.hours[0]
        );
    }

    #[test]
    fn a_fast_prefill_hands_over_to_one_second_cycles_without_a_seam() {
        let start = NOON - 30.0;
        let mut g = DemoGateway::new(scenario(), "demo-gw", start, 60.0, 1).unwrap();
        let a = g.run_until(start + 600.0, u64::MAX).unwrap();
        g.set_cycle_s(1.0).unwrap();
        // The cap bounds one call; the next call goes on where it stopped.
        let b = g.run_until(start + 1200.0, 300).unwrap();
        assert_eq!(b.cycles, 300);
        let c = g.run_until(start + 1200.0, u64::MAX).unwrap();
        assert_eq!((a.cycles, c.cycles), (10, 300));
        let times: Vec<i64> = [a, b, c]
            .iter()
            .flat_map(|p| envelopes(&p.messages))
            .filter(|(_, e)| e.kind == "telemetry")
            .map(|(_, e)| e.t_utc_s)
            .collect();
        let want: Vec<i64> = (1..=20).map(|k| start as i64 + 60 * k).collect();
        assert_eq!(times, want);
        // Mid-minute the cycle cannot change.
        g.run_until(start + 1230.0, u64::MAX).unwrap();
        assert!(matches!(
            g.set_cycle_s(60.0),
            Err(SiteError::CycleMidInterval(s)) if s == 30.0
        ));
        assert!(matches!(g.set_cycle_s(7.0), Err(SiteError::Cycle(_))));
    }

    #[test]
    fn battery_serials_are_the_ones_the_records_carry() {
        let mut g = DemoGateway::new(scenario(), "demo-gw", NOON, 60.0, 1).unwrap();
        let serials = g.battery_serials();
        assert_eq!(serials.len(), 1);
        let p = g.run_until(NOON + 60.0, u64::MAX).unwrap();
        let tel = p
            .messages
            .iter()
            .find(|m| m.topic.ends_with("/telemetry"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&tel.payload).unwrap();
        assert_eq!(v["batteries"][0]["serial"].to_string(), serials[0]);
    }

    fn ack_json(a: &Answer) -> serde_json::Value {
        assert_eq!(a.message.topic, "melv/v1/demo-gw/settings/ack");
        serde_json::from_slice(&a.message.payload).unwrap()
    }

    #[test]
    fn settings_are_judged_applied_and_acknowledged() {
        let mut g = DemoGateway::new(scenario(), "demo-gw", NOON, 60.0, 1).unwrap();
        let tou = r#"{"mode": "time_of_use", "tou": {"weekday": [{"start": "00:00", "end": "24:00", "kind": "charge"}],
                      "weekend": [{"start": "00:00", "end": "24:00", "kind": "charge"}]}}"#;
        let a = g.answer_settings(2, tou);
        assert_eq!(
            ack_json(&a),
            serde_json::json!({"schema": SCHEMA, "gateway": "demo-gw", "version": 2,
                               "accepted": true, "reason": null, "applied_version": 2})
        );
        assert_eq!(g.settings_version(), 2);
        assert_eq!(
            g.site().settings().mode,
            melv_core::WorkingMode::TimeOfUse,
            "applied to the site"
        );
        // The same version again (a repeated poll after a lost ack): acknowledged, nothing changes.
        let a = g.answer_settings(2, tou);
        assert!(a.ack.accepted);
        assert_eq!(a.ack.applied_version, 2);
        // An older one is stale.
        let a = g.answer_settings(1, "{}");
        assert!(!a.ack.accepted);
        assert!(a.ack.reason.unwrap().contains("not newer"));
        // A newer one the site refuses keeps the old in force and says why, naming the field.
        let a = g.answer_settings(3, r#"{"reserve_soc": 1.5}"#);
        assert_eq!(
            (a.ack.version, a.ack.accepted, a.ack.applied_version),
            (Some(3), false, 2)
        );
        assert!(a.ack.reason.unwrap().contains("reserve_soc"));
        // Stored text that is not settings: refused by the gateway's reading of the message.
        let a = g.answer_settings(4, "not json");
        assert_eq!((a.ack.version, a.ack.accepted), (Some(4), false));
        assert!(a.ack.reason.unwrap().starts_with("settings message:"));
    }

    #[test]
    fn settings_are_restored_without_an_ack() {
        let mut g = DemoGateway::new(scenario(), "demo-gw", NOON, 60.0, 1).unwrap();
        g.restore_settings(5, r#"{"reserve_soc": 0.3}"#).unwrap();
        assert_eq!(g.settings_version(), 5);
        assert_eq!(g.site().settings().reserve_soc, 0.3);
        let e = g.restore_settings(6, r#"{"reserve_soc": 2}"#).unwrap_err();
        assert!(e.starts_with("settings v6: reserve_soc"), "{e}");
        assert!(g.restore_settings(7, "{").is_err());
        assert!(g.restore_settings(-1, "{}").is_err());
        assert_eq!(g.settings_version(), 5);
    }
}
