//! The uplink's decisions, sans-IO: what to publish next ([`SendPlan`]) and what to make of a
//! settings message ([`SettingsMessage`], [`SettingsAck`]). The tokio shell ([`crate::runtime`])
//! only carries them out.
//!
//! ## Live first, backlog behind
//! When a connection comes up, every record already in the queue is *backlog* and every record
//! produced from then on is *live*. Live records are published as soon as they exist; the backlog is
//! published oldest first at a bounded rate (a token bucket, `backlog_rate` records per wall-clock
//! second), so that after an outage the cloud sees the present at once and the past fills in behind
//! without flooding the broker. Both share one window of publishes awaiting the broker's PUBACK
//! (MQTT's own "receive maximum" idea, MQTT 5.0 3.3.4): the PUBACK only frees room in the window.
//!
//! ## The cloud's mark, and sending again
//! A record leaves the disk only when the cloud's acknowledgement ([`melv_wire::UplinkAck`], on
//! `melv/v1/{gateway}/ack`) says it is committed: its `stored_through` is the highest number up to
//! which the cloud holds everything. Whatever was published above that mark may still be lost on
//! the way (a broker that restarts without its sessions, a worker killed with its batch), so the
//! plan watches the mark: when records above it have waited `resend_after` wall seconds without the
//! mark moving, it **rewinds**: everything from `mark + 1` up to what was published becomes backlog
//! again, sent oldest first at the backlog rate. A gap the cloud sees (records above a missing one)
//! stalls its mark, so the same rule repairs it. Each rewind without progress doubles the wait (up
//! to [`MAX_RESEND_AFTER_S`]), so a cloud that is down for days is not flooded with copies; any
//! progress of the mark resets it. A new connection starts from the mark too. The cloud stores each
//! `(gateway, seq)` once, so what is sent twice is only counted as a duplicate there.

/// Longest wait before sending unconfirmed records again (the rewind's back-off ceiling).
pub const MAX_RESEND_AFTER_S: f64 = 600.0;

/// Which records to read from the queue next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetch {
    pub live: bool,
    /// `from <= seq < below`.
    pub from: u64,
    pub below: u64,
    pub limit: usize,
}

/// The publish scheduler of one gateway.
#[derive(Debug, Clone)]
pub struct SendPlan {
    window: usize,
    backlog_rate: f64,
    connected: bool,
    live_from: u64,
    live_cursor: u64,
    backlog_cursor: u64,
    inflight: usize,
    tokens: f64,
    last_wall_s: f64,
    /// The cloud's contiguous mark.
    confirmed: u64,
    /// Highest number published since the last rewind or connection.
    sent_hi: u64,
    /// Since when records above the mark have waited without the mark moving.
    waiting_since: Option<f64>,
    resend_after: f64,
    wait_s: f64,
    rewinds: u64,
    rewind: bool,
}

impl SendPlan {
    /// `window`: most publishes awaiting PUBACK; `backlog_rate`: backlog records per second;
    /// `resend_after`: wall seconds without progress of the cloud's mark before a rewind.
    pub fn new(window: usize, backlog_rate: f64, resend_after: f64) -> Self {
        let resend_after = resend_after.clamp(0.1, MAX_RESEND_AFTER_S);
        Self {
            window: window.max(1),
            backlog_rate: backlog_rate.max(0.0),
            connected: false,
            live_from: 0,
            live_cursor: 0,
            backlog_cursor: 0,
            inflight: 0,
            tokens: 0.0,
            last_wall_s: 0.0,
            confirmed: 0,
            sent_hi: 0,
            waiting_since: None,
            resend_after,
            wait_s: resend_after,
            rewinds: 0,
            rewind: true,
        }
    }

    /// Never send again on a timer (`--confirm broker`: the PUBACK is the confirmation).
    pub fn without_rewind(mut self) -> Self {
        self.rewind = false;
        self
    }

    /// The cloud's mark as the queue kept it (at start).
    pub fn with_confirmed(mut self, mark: u64) -> Self {
        self.confirmed = mark;
        self.sent_hi = mark;
        self
    }

    /// A connection came up (CONNACK) at `wall_s`; `next_seq` is the number the next record will get.
    /// Everything the cloud has not confirmed is backlog.
    pub fn on_connected(&mut self, wall_s: f64, next_seq: u64) {
        self.connected = true;
        self.live_from = next_seq;
        self.live_cursor = next_seq;
        self.backlog_cursor = self.confirmed + 1;
        self.inflight = 0;
        self.tokens = 0.0;
        self.last_wall_s = wall_s;
        self.sent_hi = self.confirmed;
        self.waiting_since = None;
    }

    /// The connection is gone: nothing is in flight any more (it is all still on disk).
    pub fn on_disconnected(&mut self) {
        self.connected = false;
        self.inflight = 0;
    }

    /// `n` publishes were acknowledged by the broker (room in the window; nothing is confirmed).
    pub fn on_acked(&mut self, n: usize) {
        self.inflight = self.inflight.saturating_sub(n);
    }

    /// The cloud confirmed every record up to `mark` at `wall_s`. Progress resets the back-off.
    pub fn on_cloud_ack(&mut self, wall_s: f64, mark: u64) {
        if mark <= self.confirmed {
            return;
        }
        self.confirmed = mark;
        self.sent_hi = self.sent_hi.max(mark);
        self.backlog_cursor = self.backlog_cursor.max(mark + 1);
        self.wait_s = self.resend_after;
        self.waiting_since = (self.sent_hi > mark).then_some(wall_s);
    }

    pub fn connected(&self) -> bool {
        self.connected
    }
    pub fn inflight(&self) -> usize {
        self.inflight
    }
    /// The cloud's mark.
    pub fn confirmed(&self) -> u64 {
        self.confirmed
    }
    /// Rewinds so far.
    pub fn rewinds(&self) -> u64 {
        self.rewinds
    }
    /// True while backlog from before this connection (or the last rewind) may remain unsent.
    pub fn backlog_pending(&self) -> bool {
        self.backlog_cursor < self.live_from
    }

    /// Sends again what the cloud has not confirmed, when it has waited too long.
    fn rewind_if_stalled(&mut self, wall_s: f64) {
        let Some(since) = self.waiting_since.filter(|_| self.rewind) else {
            return;
        };
        if self.sent_hi <= self.confirmed || wall_s - since < self.wait_s {
            return;
        }
        self.backlog_cursor = self.confirmed + 1;
        self.live_from = self.live_cursor;
        self.sent_hi = self.confirmed;
        self.waiting_since = None;
        self.wait_s = (self.wait_s * 2.0).min(MAX_RESEND_AFTER_S);
        self.rewinds += 1;
    }

    /// What to read next at `wall_s`, given the next sequence number of the queue. Live first.
    pub fn next(&mut self, wall_s: f64, next_seq: u64) -> Option<Fetch> {
        if !self.connected {
            return None;
        }
        self.rewind_if_stalled(wall_s);
        let dt = (wall_s - self.last_wall_s).max(0.0);
        self.last_wall_s = wall_s;
        // Burst of at most one second's worth (and at least one record).
        let burst = self.backlog_rate.max(1.0);
        self.tokens = (self.tokens + dt * self.backlog_rate).min(burst);
        let room = self.window.saturating_sub(self.inflight);
        if room == 0 {
            return None;
        }
        if self.live_cursor < next_seq {
            return Some(Fetch {
                live: true,
                from: self.live_cursor,
                below: next_seq,
                limit: room,
            });
        }
        let tokens = self.tokens.floor() as usize;
        if self.backlog_pending() && tokens > 0 {
            return Some(Fetch {
                live: false,
                from: self.backlog_cursor,
                below: self.live_from,
                limit: room.min(tokens),
            });
        }
        None
    }

    /// The records of `fetch` that were read (`last_seq` the highest, `count` how many) were handed
    /// to the MQTT client.
    pub fn sent(&mut self, fetch: Fetch, count: usize, last_seq: Option<u64>) {
        self.inflight += count;
        let end = match last_seq {
            // Fewer than asked: nothing else below `below` is stored.
            Some(s) if count >= fetch.limit => s + 1,
            _ => fetch.below,
        };
        if fetch.live {
            self.live_cursor = end;
        } else {
            self.backlog_cursor = end;
            self.tokens -= count as f64;
        }
        if let Some(s) = last_seq {
            self.sent_hi = self.sent_hi.max(s);
        }
        if self.sent_hi > self.confirmed && self.waiting_since.is_none() {
            self.waiting_since = Some(self.last_wall_s);
        }
    }
}

pub use melv_wire::record::{SettingsAck, SettingsMessage};

/// What to do with a settings payload.
#[derive(Debug, Clone)]
pub enum SettingsVerdict {
    /// An empty payload (a retained message being cleared): nothing to do.
    Ignore,
    /// Apply these (then acknowledge with the result of applying).
    Apply(Box<SettingsMessage>),
    /// Acknowledge without applying.
    Ack {
        version: Option<u64>,
        accepted: bool,
        reason: Option<String>,
    },
}

/// What the gateway answers to a settings message, once judged and, when new and valid, applied.
#[derive(Debug)]
pub enum SettingsAnswer {
    /// An empty payload (a retained message being cleared): nothing to answer.
    Ignore,
    /// The ack to publish on `.../settings/ack`; `applied` is the message now in force when it
    /// changed, for the host to keep (the live gateway writes it to its state directory).
    Ack {
        ack: SettingsAck,
        applied: Option<Box<SettingsMessage>>,
    },
}

/// The one answer to a settings payload, for the live gateway and the demo alike: judged with
/// [`judge_settings`] against the version in force on `site`, applied to it when new and valid, and
/// acknowledged with what is in force afterwards.
pub fn answer_settings(site: &mut crate::site::SiteRuntime, payload: &[u8]) -> SettingsAnswer {
    let mut applied = None;
    let (version, accepted, reason) = match judge_settings(payload, site.settings_version()) {
        SettingsVerdict::Ignore => return SettingsAnswer::Ignore,
        SettingsVerdict::Ack {
            version,
            accepted,
            reason,
        } => (version, accepted, reason),
        SettingsVerdict::Apply(m) => {
            let v = m.version;
            match site.apply_settings(v, m.settings.clone()) {
                Ok(()) => {
                    applied = Some(m);
                    (Some(v), true, None)
                }
                Err(e) => (Some(v), false, Some(e.to_string())),
            }
        }
    };
    let ack = SettingsAck {
        schema: crate::record::SCHEMA.into(),
        gateway: site.gateway_id().to_string(),
        version,
        accepted,
        reason,
        applied_version: site.settings_version(),
    };
    SettingsAnswer::Ack { ack, applied }
}

/// Judge a settings payload given the version in force. Redelivery of the version in force (a
/// retained message after a reconnect) is acknowledged again as accepted, so that a lost ack is
/// repaired by the cloud's retry; an older version is refused as stale.
pub fn judge_settings(payload: &[u8], applied_version: u64) -> SettingsVerdict {
    if payload.is_empty() {
        return SettingsVerdict::Ignore;
    }
    let msg: SettingsMessage = match serde_json::from_slice(payload) {
        Ok(m) => m,
        Err(e) => {
            let version = serde_json::from_slice::<serde_json::Value>(payload)
                .ok()
                .and_then(|v| v.get("version").and_then(|v| v.as_u64()));
            return SettingsVerdict::Ack {
                version,
                accepted: false,
                reason: Some(format!("settings message: {e}")),
            };
        }
    };
    if let Some(Err(e)) = msg.schema.as_deref().map(melv_wire::check_schema) {
        return SettingsVerdict::Ack {
            version: Some(msg.version),
            accepted: false,
            reason: Some(format!("settings message: {e}")),
        };
    }
    if msg.version == applied_version && applied_version > 0 {
        return SettingsVerdict::Ack {
            version: Some(msg.version),
            accepted: true,
            reason: None,
        };
    }
    if msg.version < applied_version || msg.version == 0 {
        return SettingsVerdict::Ack {
            version: Some(msg.version),
            accepted: false,
            reason: Some(format!(
                "version {} is not newer than the version in force ({applied_version})",
                msg.version
            )),
        };
    }
    SettingsVerdict::Apply(Box::new(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drive a plan through `(wall_s, next_seq, acked)` steps, recording each fetch as
    /// `(live, from, below, limit)` and pretending every fetched range is full.
    fn check(
        window: usize,
        rate: f64,
        live_from: u64,
        steps: &[(f64, u64, usize)],
        expected: &[(bool, u64, u64, usize)],
    ) {
        let mut p = SendPlan::new(window, rate, 30.0);
        p.on_connected(0.0, live_from);
        let mut got = Vec::new();
        for &(wall, next, acked) in steps {
            p.on_acked(acked);
            while let Some(f) = p.next(wall, next) {
                got.push((f.live, f.from, f.below, f.limit));
                let n = f.limit.min((f.below - f.from) as usize);
                p.sent(f, n, Some(f.from + n as u64 - 1));
            }
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn live_goes_first_and_backlog_is_paced() {
        // No backlog (connected with an empty queue at 1): live records go out as they come.
        check(10, 5.0, 1, &[(0.0, 1, 0), (1.0, 3, 0)], &[(true, 1, 3, 10)]);
        // Backlog 1..100, live from 100: at t = 1 s live first, then 5 backlog records.
        check(
            100,
            5.0,
            100,
            &[(1.0, 102, 0)],
            &[(true, 100, 102, 100), (false, 1, 100, 5)],
        );
        // The window bounds both: 4 in flight allowed, 2 live, then 2 backlog, then nothing
        // until acks come.
        check(
            4,
            10.0,
            50,
            &[(1.0, 52, 0), (2.0, 52, 0), (3.0, 52, 3)],
            &[(true, 50, 52, 4), (false, 1, 50, 2), (false, 3, 50, 3)],
        );
    }

    #[test]
    fn nothing_while_disconnected_and_backlog_restarts_after_reconnect() {
        let mut p = SendPlan::new(10, 100.0, 30.0);
        assert_eq!(p.next(0.0, 5), None);
        p.on_connected(0.0, 5);
        p.on_disconnected();
        assert_eq!(p.next(1.0, 6), None);
        p.on_connected(2.0, 9);
        assert!(p.backlog_pending());
        let f = p.next(3.0, 9).unwrap();
        assert_eq!((f.live, f.from, f.below), (false, 1, 9));
        // Only 3 records were stored below 9: the backlog is done.
        p.sent(f, 3, Some(8));
        assert!(!p.backlog_pending());
    }

    /// Everything `p` would publish at `wall_s` (pretending each fetched range is full), as
    /// `(live, from, below)`.
    fn drain(p: &mut SendPlan, wall_s: f64, next_seq: u64) -> Vec<(bool, u64, u64)> {
        let mut got = Vec::new();
        while let Some(f) = p.next(wall_s, next_seq) {
            got.push((f.live, f.from, f.below));
            let n = f.limit.min((f.below - f.from) as usize);
            p.sent(f, n, Some(f.from + n as u64 - 1));
            p.on_acked(n);
        }
        got
    }

    #[test]
    fn what_the_cloud_does_not_confirm_is_sent_again_with_back_off() {
        let mut p = SendPlan::new(100, 1000.0, 30.0);
        p.on_connected(0.0, 1);
        assert_eq!(drain(&mut p, 0.5, 11), [(true, 1, 11)]);
        // The cloud holds 1..=4 (the broker lost 5.. on a restart, say).
        p.on_cloud_ack(1.0, 4);
        assert!(drain(&mut p, 30.0, 11).is_empty());
        // 30 s after the mark last moved: everything above it again, as backlog.
        assert_eq!(drain(&mut p, 31.0, 11), [(false, 5, 11)]);
        assert_eq!(p.rewinds(), 1);
        // No progress: the next rewind waits twice as long (60 s after the resend).
        assert!(drain(&mut p, 90.0, 11).is_empty());
        assert_eq!(drain(&mut p, 91.5, 11), [(false, 5, 11)]);
        assert_eq!(p.rewinds(), 2);
        // Progress resets the wait; a stale mark changes nothing.
        p.on_cloud_ack(100.0, 8);
        p.on_cloud_ack(100.0, 6);
        assert_eq!(p.confirmed(), 8);
        assert!(drain(&mut p, 129.0, 11).is_empty());
        assert_eq!(drain(&mut p, 130.5, 11), [(false, 9, 11)]);
        // All confirmed: nothing waits, however long it stays quiet; a new record goes out live
        // and is not sent again at once.
        p.on_cloud_ack(131.0, 10);
        assert!(drain(&mut p, 5000.0, 11).is_empty());
        assert_eq!(drain(&mut p, 5000.0, 12), [(true, 11, 12)]);
        assert!(drain(&mut p, 5001.0, 12).is_empty());
        assert_eq!(p.rewinds(), 3);
    }

    #[test]
    fn a_new_connection_starts_from_the_cloud_mark() {
        let mut p = SendPlan::new(100, 1000.0, 30.0).with_confirmed(6);
        p.on_connected(0.0, 10);
        assert_eq!(drain(&mut p, 1.0, 10), [(false, 7, 10)]);
        p.on_disconnected();
        p.on_cloud_ack(2.0, 8);
        p.on_connected(3.0, 12);
        assert_eq!(drain(&mut p, 4.0, 12), [(false, 9, 12)]);
    }

    fn verdict(payload: &str, applied: u64) -> String {
        match judge_settings(payload.as_bytes(), applied) {
            SettingsVerdict::Ignore => "ignore".into(),
            SettingsVerdict::Apply(m) => format!("apply {}", m.version),
            SettingsVerdict::Ack {
                version,
                accepted,
                reason,
            } => {
                format!("ack {version:?} {accepted} {}", reason.unwrap_or_default())
            }
        }
    }

    #[test]
    fn settings_messages() {
        let s = serde_json::to_string(&melv_ems::Settings::self_consumption()).unwrap();
        let msg = |v: u64| format!(r#"{{"version": {v}, "settings": {s}}}"#);
        assert_eq!(verdict("", 0), "ignore");
        assert_eq!(verdict(&msg(1), 0), "apply 1");
        assert_eq!(verdict(&msg(5), 3), "apply 5");
        assert_eq!(verdict(&msg(3), 3), "ack Some(3) true ");
        assert!(verdict(&msg(2), 3).starts_with("ack Some(2) false version 2 is not newer"));
        assert!(verdict(&msg(0), 0).starts_with("ack Some(0) false"));
        assert!(verdict("{\"version\": 4}", 0)
            .starts_with("ack Some(4) false settings message: missing field"));
        assert!(verdict("nonsense", 0).starts_with("ack None false settings message:"));
        let v9 = format!(r#"{{"schema": "melv.gateway.v9", "version": 6, "settings": {s}}}"#);
        assert!(
            verdict(&v9, 3).starts_with(
                "ack Some(6) false settings message: schema \"melv.gateway.v9\": unknown schema version"
            ),
            "{}",
            verdict(&v9, 3)
        );
        let current = serde_json::to_string(&SettingsMessage::new(
            7,
            melv_ems::Settings::self_consumption(),
        ))
        .unwrap();
        assert_eq!(verdict(&current, 3), "apply 7");
    }
}
