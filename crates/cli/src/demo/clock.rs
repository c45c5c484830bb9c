//! The demo's time: one accelerated clock shared by the cloud and the site, and the small decisions
//! about where it starts and how much history to fill in.
//!
//! The cloud asks [`melv_server::Clock`] for "now" (status, Offline, history ranges, acks); the
//! site runs its control cycles up to the same "now". So at `--speed 60` both see an hour pass per
//! wall minute, and a site that reported a simulated minute ago is Normal, not five hours stale.

use std::time::{Duration, Instant};

const DAY_MS: i64 = 86_400_000;

/// `start + wall time elapsed x speed`.
#[derive(Debug)]
pub struct DemoClock {
    start_ms: i64,
    speed: f64,
    started: Instant,
}

impl DemoClock {
    /// A clock reading `start_ms` (Unix ms) now and running `speed` times faster than the wall.
    pub fn new(start_ms: i64, speed: f64) -> Self {
        Self {
            start_ms,
            speed,
            started: Instant::now(),
        }
    }

    /// The reading after `wall` has passed since the clock was made.
    pub fn at(&self, wall: Duration) -> i64 {
        self.start_ms + (wall.as_secs_f64() * self.speed * 1000.0).floor() as i64
    }
}

impl melv_server::Clock for DemoClock {
    fn now_ms(&self) -> i64 {
        self.at(self.started.elapsed())
    }
}

/// Where the demo's clock starts: the wall clock, or the newest telemetry already stored if that is
/// later (a demo that ran at 60x for an hour left its site 2.5 days ahead; restarted on the same
/// database, time goes on from there and never runs backwards).
pub fn start_ms(wall_now_ms: i64, last_seen_ms: Option<i64>) -> i64 {
    last_seen_ms.map_or(wall_now_ms, |t| t.max(wall_now_ms))
}

/// Where the site's clock starts: `history_days` before `start_ms`, but not before the newest
/// telemetry already stored (a restart fills only the gap). Equal to `start_ms` when there is
/// nothing to fill.
pub fn history_from_ms(start_ms: i64, last_seen_ms: Option<i64>, history_days: f64) -> i64 {
    let from = start_ms - (history_days * DAY_MS as f64).round() as i64;
    match last_seen_ms {
        Some(t) => from.max(t).min(start_ms),
        None => from.min(start_ms),
    }
}

/// After this much wall time without telemetry the demo's cloud calls the site Offline.
pub const OFFLINE_WALL_S: f64 = 5.0;

/// The cloud's Offline threshold at `speed`, site seconds: its usual 300 s
/// ([`melv_server::DEFAULT_OFFLINE_AFTER_S`]), or [`OFFLINE_WALL_S`] of wall time if that is longer,
/// so that a fast demo on a busy machine does not flicker to Offline between two of its ticks.
pub fn offline_after_s(speed: f64) -> i64 {
    let wall = (speed * OFFLINE_WALL_S).ceil();
    melv_server::DEFAULT_OFFLINE_AFTER_S.max(wall.min(i64::MAX as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use melv_server::Clock;

    #[test]
    fn the_clock_runs_at_the_speed() {
        let c = DemoClock::new(1_000_000, 60.0);
        assert_eq!(c.at(Duration::ZERO), 1_000_000);
        assert_eq!(c.at(Duration::from_secs(1)), 1_060_000);
        assert_eq!(c.at(Duration::from_millis(1500)), 1_090_000);
        assert_eq!(c.at(Duration::from_secs(60)), 1_000_000 + 3_600_000);
        let slow = DemoClock::new(0, 0.5);
        assert_eq!(slow.at(Duration::from_secs(3)), 1_500);
        // The live reading is never before the start and never goes backwards.
        let a = c.now_ms();
        let b = c.now_ms();
        assert!(1_000_000 <= a && a <= b);
    }

    #[test]
    fn time_never_runs_backwards_across_restarts() {
        assert_eq!(start_ms(5_000, None), 5_000);
        assert_eq!(start_ms(5_000, Some(4_000)), 5_000);
        assert_eq!(start_ms(5_000, Some(9_000)), 9_000);
    }

    #[test]
    fn history_fills_the_days_asked_or_only_the_gap() {
        let now = 100 * DAY_MS;
        assert_eq!(history_from_ms(now, None, 1.0), now - DAY_MS);
        assert_eq!(history_from_ms(now, None, 0.5), now - DAY_MS / 2);
        assert_eq!(history_from_ms(now, None, 0.0), now);
        // Stored up to two hours ago: fill the two hours.
        assert_eq!(
            history_from_ms(now, Some(now - 7_200_000), 1.0),
            now - 7_200_000
        );
        // Stored up to a week ago: the days asked for, not the week.
        assert_eq!(
            history_from_ms(now, Some(now - 7 * DAY_MS), 1.0),
            now - DAY_MS
        );
        // Stored up to the start (a restart ahead of the wall clock): nothing to fill.
        assert_eq!(history_from_ms(now, Some(now), 1.0), now);
    }

    #[test]
    fn offline_needs_five_wall_seconds_of_silence_at_high_speed() {
        assert_eq!(offline_after_s(1.0), 300);
        assert_eq!(offline_after_s(60.0), 300);
        assert_eq!(offline_after_s(600.0), 3_000);
        assert_eq!(offline_after_s(3600.0), 18_000);
    }
}
