//! The regression corpus: one hand-made scenario per defect that the campaign found (issue 13),
//! each of which broke an invariant before its fix. `melv campaign --corpus` runs them, and so does
//! a test: every one must pass every invariant.

use crate::gen::{Scenario, EPOCH_UTC_S};
use melv_core::{Country, Phases, WorkingMode};
use melv_site::events::{Event, EventKind};

const DAY: f64 = 86_400.0;

/// A quiet one-unit site to start from: no faults, sensor noise on.
fn base(index: u64, country: Country, mode: WorkingMode, soc: f64, days: f64) -> Scenario {
    Scenario {
        seed: 0,
        index,
        batteries: 1,
        phases: Phases::Single,
        country,
        mode,
        backup_capable: true,
        initial_soc: soc,
        ambient_mean_c: 20.0,
        ambient_swing_c: 3.0,
        pv_peak_w: 0.0,
        base_load_w: 300.0,
        evening_load_w: 1500.0,
        // 2025-01-15, a winter day.
        start_utc_s: EPOCH_UTC_S + 14 * 86_400,
        duration_s: days * DAY,
        step_s: 60.0,
        sensor_noise: true,
        faults: Vec::new(),
    }
}

fn fault(kind: EventKind, from_s: f64, to_s: f64, value: f64, cell: usize) -> Event {
    Event {
        kind,
        from_utc_s: from_s as i64,
        to_utc_s: to_s as i64,
        battery: None,
        value,
        cell,
    }
}

/// The corpus: (name, scenario), each named after the defect it guards.
pub fn corpus() -> Vec<(&'static str, Scenario)> {
    let mut v = Vec::new();

    // 1. Self-bricking: a unit stopped by a fault with the grid present kept feeding its standby,
    // fan and heater from the cells (an unactivated unit reached ~0 V per cell in 10.5 days).
    let mut s = base(
        1,
        Country::Generic,
        WorkingMode::SelfConsumption,
        0.06,
        20.0,
    );
    s.step_s = 300.0;
    s.faults
        .push(fault(EventKind::PowerStageFault, 600.0, 20.0 * DAY, 0.0, 0));
    v.push(("stopped unit on grid does not drain its cells", s));

    // 1b. Near empty in a hot room: code 51 came after 3.3 h at 52 degC and 2 % SOC, latched, and
    // could never release.
    let mut s = base(2, Country::Generic, WorkingMode::SelfConsumption, 0.03, 2.0);
    s.faults
        .push(fault(EventKind::Ambient, 0.0, 2.0 * DAY, 52.0, 0));
    v.push(("near empty at 52 degC ambient", s));

    // 2. Cold charging: with a failed heater the firmware imported the heater's 200 W and it
    // charged cells at -15 degC (13 Ah a day).
    let mut s = base(3, Country::Germany, WorkingMode::TimeOfUse, 0.3, 2.0);
    s.ambient_mean_c = -15.0;
    s.initial_soc = 0.3;
    s.faults
        .push(fault(EventKind::HeaterFailure, 0.0, 2.0 * DAY, 0.0, 0));
    v.push(("failed heater at -15 degC", s));

    // 2b. Cells warming through 0 degC while the gateway asks for charge.
    let mut s = base(4, Country::Generic, WorkingMode::TimeOfUse, 0.2, 1.0);
    s.ambient_mean_c = -8.0;
    s.ambient_swing_c = 8.0;
    s.pv_peak_w = 6000.0;
    s.step_s = 5.0;
    v.push(("charging through 0 degC", s));

    // 4. The grid-charging ban below the EMS: in Italy with no PV the maintenance charge bought
    // 265.7 kWh a year.
    let s = base(5, Country::Italy, WorkingMode::SelfConsumption, 0.04, 4.0);
    v.push(("Italy without PV, near empty", s));

    // 6. Islanding raises 2; a long outage empties the pack without deep discharge.
    let mut s = base(6, Country::Germany, WorkingMode::OffGridBackup, 0.3, 3.0);
    s.faults
        .push(fault(EventKind::GridOutage, 3600.0, 2.5 * DAY, 0.0, 0));
    v.push(("islanded until empty", s));

    // 6b. Thermal runaway at low SOC (missed at SOC <= 0.13).
    let mut s = base(7, Country::Generic, WorkingMode::SelfConsumption, 0.1, 0.5);
    s.step_s = 5.0;
    s.faults
        .push(fault(EventKind::ThermalRunaway, 1800.0, 0.5 * DAY, 0.0, 3));
    v.push(("thermal runaway at 10 % SOC", s));

    // 6c. 53 stopped the unit at 50-55 degC ambient, inside the rating; 54 tripped at -20 degC
    // and flapped.
    let mut s = base(
        8,
        Country::Australia,
        WorkingMode::SelfConsumption,
        0.6,
        2.0,
    );
    s.pv_peak_w = 6000.0;
    s.faults
        .push(fault(EventKind::Ambient, 0.0, 2.0 * DAY, 54.0, 0));
    v.push(("54 degC ambient, inside the rating", s));
    let mut s = base(9, Country::Germany, WorkingMode::SelfConsumption, 0.6, 2.0);
    s.faults
        .push(fault(EventKind::Ambient, 0.0, 2.0 * DAY, -20.0, 0));
    v.push(("-20 degC ambient, inside the rating", s));

    // 6d. A dead fan raises 53 and 55 (manual 6.3), once, not every time it is retried.
    let mut s = base(10, Country::Generic, WorkingMode::SelfConsumption, 0.5, 1.0);
    s.ambient_mean_c = 38.0;
    s.pv_peak_w = 8000.0;
    s.faults
        .push(fault(EventKind::FanFailure, 3600.0, 0.9 * DAY, 0.0, 0));
    v.push(("dead fan on a hot day", s));

    // 6e. A micro-short under load (missed in 101 of 104 campaign micro-shorts).
    let mut s = base(11, Country::Generic, WorkingMode::SelfConsumption, 0.5, 3.0);
    s.pv_peak_w = 7000.0;
    s.faults
        .push(fault(EventKind::MicroShort, 3600.0, 3.0 * DAY, 50.0, 5));
    v.push(("50 ohm micro-short while cycling", s));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_corpus_scenario_keeps_every_invariant() {
        let mut failed = Vec::new();
        for (name, sc) in corpus() {
            let out = crate::run::run(&sc, None);
            for v in out.violations {
                failed.push(format!(
                    "{name}: {} at {:.0} s: {}",
                    v.invariant, v.t_s, v.detail
                ));
            }
        }
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }
}
