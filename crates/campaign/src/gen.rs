//! Drawing one scenario from `(seed, index)`: a site, a working mode, a world and a fault schedule.
//!
//! Everything comes from one ChaCha8 stream keyed by the campaign seed and the scenario index, so
//! scenario `k` of seed `s` is the same on every machine and in every run, whatever else the
//! campaign runs (the streams do not depend on each other).

use melv_core::{Country, Phases, WorkingMode};
use melv_site::events::{Event, EventKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// 2025-01-01T00:00Z, the campaign's calendar origin (a scenario starts on a drawn day of 2025).
pub const EPOCH_UTC_S: i64 = 1_735_689_600;

/// Time the campaign gives every scenario after its last fault to follow the manual's solution
/// steps (reset, power cycle, AC off and on) and return to service, s.
pub const RECOVERY_S: f64 = 4.0 * 3600.0;

/// One drawn scenario. Times are seconds from the scenario's start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    pub seed: u64,
    pub index: u64,
    pub batteries: usize,
    pub phases: Phases,
    pub country: Country,
    pub mode: WorkingMode,
    pub backup_capable: bool,
    /// True SOC of every unit at the start.
    pub initial_soc: f64,
    /// Daily mean ambient and half the daily swing, degC.
    pub ambient_mean_c: f64,
    pub ambient_swing_c: f64,
    /// PV peak, W (0: no PV), and the house's base and evening load, W.
    pub pv_peak_w: f64,
    pub base_load_w: f64,
    pub evening_load_w: f64,
    /// Start of the run, Unix s (UTC), and its length before the recovery phase, s.
    pub start_utc_s: i64,
    pub duration_s: f64,
    pub step_s: f64,
    pub sensor_noise: bool,
    /// The fault schedule (scenario-relative times, in `from_utc_s` / `to_utc_s`).
    pub faults: Vec<Event>,
}

impl Scenario {
    /// Length of the whole run: the faulted part and the recovery phase.
    pub fn total_s(&self) -> f64 {
        self.duration_s + RECOVERY_S
    }

    /// Simulated hours of the run.
    pub fn hours(&self) -> f64 {
        self.total_s() / 3600.0
    }
}

/// The ChaCha8 stream of scenario `index` of campaign `seed`.
pub fn stream(seed: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // One stream per scenario (2^64 of them per seed): independent, order-free.
    rng.set_stream(index);
    rng
}

/// Scenario `index` of campaign `seed`.
pub fn draw(seed: u64, index: u64) -> Scenario {
    let mut r = stream(seed, index);
    let phases = if r.gen_bool(0.3) {
        Phases::Three
    } else {
        Phases::Single
    };
    // Manual appendix 1: 1-3 units on a single-phase site, 1-6 on three phases; most homes have one.
    let max = phases.max_batteries();
    let batteries = if r.gen_bool(0.6) {
        1
    } else {
        r.gen_range(1..=max)
    };
    let country = match r.gen_range(0..4) {
        0 => Country::Generic,
        1 => Country::Australia,
        2 => Country::Germany,
        _ => Country::Italy,
    };
    let mode = match r.gen_range(0..4) {
        0 => WorkingMode::SelfConsumption,
        1 => WorkingMode::TimeOfUse,
        2 => WorkingMode::GridServices,
        _ => WorkingMode::OffGridBackup,
    };
    // Length: most scenarios are days; some weeks; a few are months of idle or storage.
    let (duration_s, step_s) = match r.gen_range(0..100) {
        0..=9 => (r.gen_range(1.0..4.0) * 3600.0, 5.0),
        10..=79 => (r.gen_range(0.5..1.5) * 86_400.0, 60.0),
        80..=96 => (r.gen_range(1.5..4.0) * 86_400.0, 60.0),
        _ => (r.gen_range(30.0..90.0) * 86_400.0, 1800.0),
    };
    // Ambient: the rating is -20..55 degC (manual 7.1); draws reach a little beyond both ends.
    let ambient_mean_c = r.gen_range(-25.0..50.0);
    let ambient_swing_c = r.gen_range(0.0..8.0);
    // Where grid charging of storage is forbidden (Italy) the rule concerns storage on a PV plant
    // (GSE's rules for storage on incentivised PV, melv_core::Country::grid_charging): such
    // sites always have PV. (An Italian site without PV is a test of its own:
    // crates/sim/tests/unit_safety.rs.)
    let no_pv = r.gen_bool(0.25) && country != Country::Italy;
    let pv_peak_w = if no_pv {
        0.0
    } else {
        r.gen_range(1000.0..9000.0)
    };
    let mut sc = Scenario {
        seed,
        index,
        batteries,
        phases,
        country,
        mode,
        backup_capable: r.gen_bool(0.7),
        // From 3 %: below it a cell rests under 2.6 V, a unit already deep-discharged on delivery.
        initial_soc: r.gen_range(0.03..1.0),
        ambient_mean_c,
        ambient_swing_c,
        pv_peak_w,
        base_load_w: r.gen_range(100.0..600.0),
        evening_load_w: r.gen_range(0.0..3000.0),
        start_utc_s: EPOCH_UTC_S + r.gen_range(0..365) * 86_400,
        duration_s,
        step_s,
        sensor_noise: true,
        faults: Vec::new(),
    };
    let n_faults = r.gen_range(0..=4);
    for _ in 0..n_faults {
        draw_fault(&mut r, &mut sc);
    }
    sc
}

/// Every kind the schedule draws from, with its relative weight.
const KINDS: [(EventKind, u32); 20] = [
    (EventKind::GridOutage, 10),
    (EventKind::Voltage, 8),
    (EventKind::Frequency, 6),
    (EventKind::Ambient, 8),
    (EventKind::FanFailure, 8),
    (EventKind::HeaterFailure, 8),
    (EventKind::MicroShort, 6),
    (EventKind::CanCut, 4),
    (EventKind::Shutdown, 8),
    (EventKind::ThermalRunaway, 2),
    (EventKind::OpenSenseWire, 4),
    (EventKind::InsulationFault, 4),
    (EventKind::PowerStageFault, 4),
    (EventKind::CellVoltageOffset, 4),
    (EventKind::CurrentOffset, 4),
    (EventKind::BleedStuck, 4),
    (EventKind::ContactorWeld, 3),
    (EventKind::StuckTempSensor, 4),
    (EventKind::AgeingJump, 3),
    // A chattering grid voltage around a trip threshold (many short events).
    (EventKind::Voltage, 4),
];

/// Draws one fault (or, for the last row of [`KINDS`], a burst of chattering ones) into `sc`.
fn draw_fault(r: &mut ChaCha8Rng, sc: &mut Scenario) {
    let total: u32 = KINDS.iter().map(|(_, w)| w).sum();
    let mut pick = r.gen_range(0..total);
    let mut which = 0;
    for (i, (_, w)) in KINDS.iter().enumerate() {
        if pick < *w {
            which = i;
            break;
        }
        pick -= w;
    }
    let kind = KINDS[which].0;
    let d = sc.duration_s;
    let from = r.gen_range(0.0..d * 0.8);
    // Lengths: from a second to most of the run, log-uniform.
    let len = (r.gen_range(0.0f64..1.0) * (d - from).max(2.0).ln())
        .exp()
        .max(1.0);
    // Dark periods from near empty are the manual's storage case (section 3: recharge to 30 %
    // first): outages of at most a week, shutdowns of at most two weeks.
    // A grid held beyond its limits for days is not a grid (and a disconnected inverter cannot
    // keep its cells): voltage and frequency excursions last at most a day.
    let cap = match kind {
        EventKind::GridOutage => 7.0 * 86_400.0,
        EventKind::Shutdown => 14.0 * 86_400.0,
        EventKind::Voltage | EventKind::Frequency => 86_400.0,
        _ => f64::INFINITY,
    };
    let to = (from + len.min(cap)).min(d);
    let battery = if kind.is_unit_fault() && r.gen_bool(0.7) {
        Some(r.gen_range(0..sc.batteries))
    } else {
        None
    };
    let cell = if kind.concerns_a_cell() {
        r.gen_range(0..melv_core::spec::CELLS_IN_SERIES)
    } else {
        0
    };
    let value = match kind {
        EventKind::Voltage => r.gen_range(150.0..300.0),
        EventKind::Frequency => r.gen_range(46.0..54.0),
        EventKind::Ambient => r.gen_range(-35.0..65.0),
        // Feng et al. 2016: 10-1000 ohm for a micro-short.
        EventKind::MicroShort => (r.gen_range(10f64.ln()..1000f64.ln())).exp(),
        EventKind::InsulationFault => r.gen_range(5.0..90.0),
        // A gross sense drift, beyond the pack divider's 0.2 V tolerance (a smaller one is beyond
        // what one front end and a divider can tell: docs/campaign.md).
        EventKind::CellVoltageOffset => {
            let d = r.gen_range(0.25..0.6);
            if r.gen_bool(0.5) {
                d
            } else {
                -d
            }
        }
        EventKind::CurrentOffset => r.gen_range(-60.0..60.0),
        EventKind::StuckTempSensor => r.gen_range(-30.0..70.0),
        // A jump to anywhere between a used unit and one past its end of life (58 at 60 %).
        EventKind::AgeingJump => r.gen_range(0.05..0.45),
        _ => 0.0,
    };
    if which == KINDS.len() - 1 {
        // Chatter: a voltage just beyond a trip level, on for `on` s and off for `off` s, 20-200 times.
        let on = r.gen_range(0.5..20.0);
        let off = r.gen_range(0.5..20.0);
        let high = r.gen_bool(0.5);
        let v = if high {
            r.gen_range(255.0..275.0)
        } else {
            r.gen_range(180.0..200.0)
        };
        let n = r.gen_range(20..200);
        let mut t = from;
        for _ in 0..n {
            if t + on >= d {
                break;
            }
            sc.faults.push(event(kind, t, t + on, None, v, 0));
            t += on + off;
        }
        return;
    }
    sc.faults.push(event(kind, from, to, battery, value, cell));
}

fn event(
    kind: EventKind,
    from: f64,
    to: f64,
    battery: Option<usize>,
    value: f64,
    cell: usize,
) -> Event {
    Event {
        kind,
        from_utc_s: from.round() as i64,
        to_utc_s: (to.round() as i64).max(from.round() as i64 + 1),
        battery,
        value,
        cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_and_index_give_the_same_scenario() {
        assert_eq!(draw(7, 42), draw(7, 42));
        assert_ne!(draw(7, 42), draw(7, 43));
        assert_ne!(draw(7, 42), draw(8, 42));
    }

    #[test]
    fn scenarios_cover_every_kind_mode_and_size() {
        let all: Vec<Scenario> = (0..400).map(|k| draw(1, k)).collect();
        for (kind, _) in KINDS {
            assert!(
                all.iter().any(|s| s.faults.iter().any(|e| e.kind == kind)),
                "{kind:?} never drawn"
            );
        }
        for b in 1..=6 {
            assert!(
                all.iter().any(|s| s.batteries == b),
                "{b} units never drawn"
            );
        }
        assert!(all.iter().any(|s| s.mode == WorkingMode::TimeOfUse));
        assert!(all.iter().any(|s| s.duration_s > 30.0 * 86_400.0));
        for s in &all {
            assert!(s.batteries <= s.phases.max_batteries());
            for e in &s.faults {
                assert!(e.from_utc_s < e.to_utc_s && e.to_utc_s as f64 <= s.duration_s + 1.0);
            }
        }
    }
}
