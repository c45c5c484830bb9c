//! Alert-code bit masks, computed once at boot from the catalogue.
//!
//! `AlertCode::index` finds a code's position by a search of the catalogue, which is right for
//! occasional use and wrong for a loop that runs 31.5 million times a simulated year. The hot path
//! works on `u32` masks built here once, from the same catalogue, so nothing is duplicated.

use melv_core::alerts::{AlertCode, Latch, Severity};

/// The bit of `code` in an `AlertSet`.
pub(crate) fn bit(code: AlertCode) -> u32 {
    1 << code.index()
}

/// Catalogue attributes as masks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Masks {
    /// Severity Fault or Critical: the unit stops exchanging power.
    pub stop: u32,
    /// Stopping codes that do not clear by themselves (UntilReset or Permanent).
    pub latched_stop: u32,
    pub permanent: u32,
    pub critical: u32,
}

impl Masks {
    pub(crate) fn new() -> Self {
        let mut m = Masks {
            stop: 0,
            latched_stop: 0,
            permanent: 0,
            critical: 0,
        };
        for c in AlertCode::all() {
            let info = c.info();
            let b = bit(c);
            if info.severity >= Severity::Fault {
                m.stop |= b;
                if info.latch != Latch::AutoClear {
                    m.latched_stop |= b;
                }
            }
            if info.latch == Latch::Permanent {
                m.permanent |= b;
            }
            if info.severity == Severity::Critical {
                m.critical |= b;
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_follow_the_catalogue() {
        let m = Masks::new();
        let has = |mask: u32, code: AlertCode| mask & bit(code) != 0;
        assert!(has(m.stop, AlertCode::GRID_UNDERVOLTAGE));
        assert!(!has(m.stop, AlertCode::GRID_POWER_OUTAGE), "2 is a warning");
        // Manual 6.3, 57: "Please stop using the battery": a fault, and a latched one.
        assert!(has(m.latched_stop, AlertCode::LOW_SOH), "57 stops the unit");
        assert!(has(m.latched_stop, AlertCode::BATTERY_OVERVOLTAGE));
        assert!(!has(m.latched_stop, AlertCode::BATTERY_OVERTEMPERATURE));
        assert!(
            has(m.permanent, AlertCode::LOW_SOH) && has(m.permanent, AlertCode::THERMAL_RUNAWAY)
        );
        assert!(has(m.critical, AlertCode::MICRO_SHORT_CIRCUIT));
    }
}
