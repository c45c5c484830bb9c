//! CAN fault confinement (ISO 11898-1 clause 12), so that a bad bus has the effect it has on a real
//! one: a frame that fails is retransmitted automatically, every failure costs the sender 8 points
//! of its transmit error counter (TEC) and every success gives one back; at TEC >= 256 the node goes
//! bus-off and falls silent. With per-attempt error probability `p`, the TEC drifts by
//! `8 p / (1 - p) - 1` per frame, so a node stays error-active below p = 1/9 (retransmissions hide
//! the errors from the gateway) and cycles through bus-off above it. A bus-off node rejoins after
//! [`BUS_OFF_RECOVERY_S`] with its counters cleared, so a poor bus (p = 0.5) still carries most
//! frames, late; a dead bus (p near 1, e.g. no terminator at all) carries none, the gateway hears
//! nothing and raises 63.
//!
//! Sans-IO and deterministic: the random draws come from a seeded SplitMix64, so every run replays.

use serde::Serialize;

/// TEC at which a node goes bus-off (ISO 11898-1: TEC > 255).
pub const BUS_OFF_TEC: u32 = 256;
/// TEC at which a node turns error-passive (ISO 11898-1: TEC > 127).
pub const ERROR_PASSIVE_TEC: u32 = 128;
/// Time a bus-off node stays off before rejoining, s. ISO 11898-1 needs 128 x 11 recessive bits
/// (2.8 ms at 500 kbit/s) once the controller is restarted; Linux SocketCAN restarts after the
/// interface's `restart-ms`, commonly set to 100 ms (`ip link set can0 type can restart-ms 100`).
pub const BUS_OFF_RECOVERY_S: f64 = 0.1;
/// Attempts per frame before the model stops retrying it. The hardware retries forever; the bound
/// keeps the model's loop bounded, and 32 failures already push TEC from 0 to 256.
const MAX_ATTEMPTS: u32 = 33;

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, seedable, good enough for error draws.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A node's error state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ErrorState {
    Active,
    Passive,
    BusOff,
}

/// The outcome of one frame handed to the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TxOutcome {
    /// On the bus after this many attempts (1 = first try).
    Delivered { attempts: u32 },
    /// The node is (or just went) bus-off; the frame is lost.
    BusOff,
}

/// One node's transmit error counter and bus-off timer.
#[derive(Debug, Clone, Default)]
pub struct Confinement {
    tec: u32,
    off_until_s: Option<f64>,
    /// Frames lost because the node was bus-off.
    pub frames_lost: u64,
    /// Failed attempts (each one an error frame on the bus).
    pub error_frames: u64,
    /// Times the node went bus-off.
    pub bus_off_events: u64,
}

impl Confinement {
    pub fn state(&self, now_s: f64) -> ErrorState {
        if self.off_until_s.is_some_and(|t| now_s < t) {
            ErrorState::BusOff
        } else if self.tec >= ERROR_PASSIVE_TEC {
            ErrorState::Passive
        } else {
            ErrorState::Active
        }
    }

    pub fn tec(&self) -> u32 {
        self.tec
    }

    /// Hand one frame to the controller on a bus where each attempt fails with probability `p`.
    pub fn transmit(&mut self, now_s: f64, p: f64, rng: &mut SplitMix64) -> TxOutcome {
        match self.off_until_s {
            Some(t) if now_s < t => {
                self.frames_lost += 1;
                return TxOutcome::BusOff;
            }
            Some(_) => {
                // Recovery: rejoin with cleared counters.
                self.off_until_s = None;
                self.tec = 0;
            }
            None => {}
        }
        let p = if p.is_nan() { 1.0 } else { p.clamp(0.0, 1.0) };
        for attempt in 1..=MAX_ATTEMPTS {
            if p <= 0.0 || rng.next_f64() >= p {
                self.tec = self.tec.saturating_sub(1);
                return TxOutcome::Delivered { attempts: attempt };
            }
            self.error_frames += 1;
            self.tec += 8;
            if self.tec >= BUS_OFF_TEC {
                break;
            }
        }
        self.off_until_s = Some(now_s + BUS_OFF_RECOVERY_S);
        self.bus_off_events += 1;
        self.frames_lost += 1;
        TxOutcome::BusOff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Send `n` frames 10 ms apart at error rate `p`; return (delivered, bus-off events).
    fn run(p: f64, n: u32, seed: u64) -> (u32, u64) {
        let mut c = Confinement::default();
        let mut rng = SplitMix64::new(seed);
        let mut ok = 0;
        for i in 0..n {
            if let TxOutcome::Delivered { .. } = c.transmit(f64::from(i) * 0.01, p, &mut rng) {
                ok += 1;
            }
        }
        (ok, c.bus_off_events)
    }

    #[test]
    fn error_rate_decides_between_retransmission_and_bus_off() {
        let check = |p: f64, min_ok: u32, max_ok: u32, bus_off: bool| {
            for seed in [1, 2, 3] {
                let (ok, offs) = run(p, 1000, seed);
                assert!(
                    (min_ok..=max_ok).contains(&ok),
                    "p {p} seed {seed}: {ok} delivered"
                );
                assert_eq!(
                    offs > 0,
                    bus_off,
                    "p {p} seed {seed}: {offs} bus-off events"
                );
            }
        };
        check(0.0, 1000, 1000, false);
        check(0.001, 1000, 1000, false);
        check(0.05, 1000, 1000, false);
        // Above 1/9 the TEC climbs to bus-off; the 100 ms restart lets most frames through late.
        check(0.5, 600, 900, true);
        check(0.99, 0, 50, true);
        check(1.0, 0, 0, true);
    }

    #[test]
    fn bus_off_recovers_after_the_restart_delay() {
        let mut c = Confinement::default();
        let mut rng = SplitMix64::new(7);
        assert_eq!(c.transmit(0.0, 1.0, &mut rng), TxOutcome::BusOff);
        assert_eq!(c.state(0.05), ErrorState::BusOff);
        assert_eq!(c.transmit(0.05, 0.0, &mut rng), TxOutcome::BusOff);
        assert_eq!(
            c.transmit(0.2, 0.0, &mut rng),
            TxOutcome::Delivered { attempts: 1 }
        );
        assert_eq!(c.state(0.2), ErrorState::Active);
    }

    #[test]
    fn splitmix_is_seeded_and_uniform_enough() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        let xs: Vec<f64> = (0..1000).map(|_| a.next_f64()).collect();
        assert!(xs
            .iter()
            .all(|&x| (0.0..1.0).contains(&x) && x == b.next_f64()));
        let mean = xs.iter().sum::<f64>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }
}
