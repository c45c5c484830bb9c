//! Bus load of the protocol, computed from the message table.
//!
//! Frame length of a classic base-format (11-bit) data frame with `s` data bytes, in bits:
//! without stuffing, 44 + 8s plus the 3-bit interframe space; in the worst case of bit stuffing
//! (one stuff bit per 4 bits after the first, over the 34 + 8s bits that are stuffed), following
//! Davis, Burns, Bril and Lukkien, "Controller Area Network (CAN) schedulability analysis: Refuted,
//! revisited and revised", Real-Time Systems 35 (2007), eq. (1):
//! `C = 34 + 8s + 13 + floor((34 + 8s - 1) / 4)` (135 bits for 8 bytes).
//!
//! Event messages (GW_REQUEST) are budgeted as one full burst (3 repeats) per unit per second,
//! far more than any real use, so the figure is an upper bound.

use crate::gateway::REQUEST_REPEATS;
use crate::messages::{BITRATE_BPS, MESSAGES};
use serde::Serialize;

/// Bits on the wire for one frame of `dlc` bytes, interframe space included.
pub fn frame_bits(dlc: u8, worst_case_stuffing: bool) -> u32 {
    let s = u32::from(dlc);
    if worst_case_stuffing {
        34 + 8 * s + 13 + (34 + 8 * s - 1) / 4
    } else {
        44 + 8 * s + 3
    }
}

/// The load of a bus carrying `units` batteries and their gateway.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BusLoad {
    pub units: u8,
    pub frames_per_s: f64,
    pub bits_per_s: f64,
    /// Fraction of the bit rate, 0..=1.
    pub load: f64,
}

/// Bus load for `units` batteries, nominal or with worst-case stuffing.
pub fn bus_load(units: u8, worst_case_stuffing: bool) -> BusLoad {
    let mut frames = 0.0;
    let mut bits = 0.0;
    for m in MESSAGES.iter() {
        let copies = if m.per_unit { f64::from(units) } else { 1.0 };
        let per_s = if m.cycle_ms == 0 {
            f64::from(REQUEST_REPEATS)
        } else {
            1000.0 / f64::from(m.cycle_ms)
        };
        frames += copies * per_s;
        bits += copies * per_s * f64::from(frame_bits(m.dlc, worst_case_stuffing));
    }
    BusLoad {
        units,
        frames_per_s: frames,
        bits_per_s: bits,
        load: bits / f64::from(BITRATE_BPS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_match_the_literature() {
        let check = |dlc: u8, worst: bool, bits: u32| {
            assert_eq!(frame_bits(dlc, worst), bits, "{dlc} {worst}")
        };
        // Davis et al. 2007: 8-byte base frame, 135 bits worst case; 0 bytes, 55 bits (47 + 8).
        check(8, true, 135);
        check(0, true, 55);
        check(8, false, 111);
        check(5, true, 105);
    }

    #[test]
    fn six_batteries_stay_under_30_percent_with_worst_case_stuffing() {
        let worst = bus_load(6, true);
        let nominal = bus_load(6, false);
        // docs/can.md quotes these figures; keep them in step.
        assert!((worst.frames_per_s - 247.0).abs() < 1e-9, "{worst:?}");
        assert!(worst.load < 0.30, "{worst:?}");
        assert!(nominal.load < worst.load);
        assert!((worst.load - 0.0638).abs() < 0.0005, "{:.4}", worst.load);
        assert!(bus_load(1, true).load < worst.load);
    }
}
