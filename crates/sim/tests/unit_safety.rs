//! Issue 13's site-level checks, through the simulator and the one site core: a unit shut down for
//! 90 days keeps its cells above 2.5 V and comes back; an Italian site with no PV never charges its
//! battery from the grid.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "a test: it reads its site files from the repository"
)]

use melv_sim::report::SimResult;
use melv_sim::runner;
use melv_sim::scenario::{Overrides, Scenario};
use std::path::Path;

fn run(name: &str) -> SimResult {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sites")
        .join(name);
    let sc = Scenario::load(&p, Overrides::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    runner::run(&sc, &mut |_, _| {}).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn a_unit_shut_down_for_90_days_keeps_its_cells_and_comes_back() {
    let r = run("no-pv-shutdown-90-days.toml");
    let k = &r.kpis;
    assert!(
        k.cell_v_min >= 2.5,
        "a cell fell to {:.3} V during or after the shutdown",
        k.cell_v_min
    );
    // After power-on (day 90) the unit serves the house again: it discharges.
    let bins_per_day = (86_400 / r.series.bin_s) as usize;
    let after: f64 = r.series.battery_w[90 * bins_per_day..]
        .iter()
        .filter(|w| **w > 0.0)
        .map(|w| f64::from(*w))
        .sum();
    assert!(after > 0.0, "no discharge after power-on");
    // No latched code anywhere in the run.
    for e in &r.alert_edges {
        let code = melv_core::AlertCode::new(u32::from(e.code)).expect("catalogue code");
        assert_eq!(
            code.info().latch,
            melv_core::alerts::Latch::AutoClear,
            "latched code {} at {}",
            e.code,
            e.t_utc_s
        );
    }
}

#[test]
fn an_italian_site_without_pv_never_charges_from_the_grid() {
    let r = run("no-pv-italy.toml");
    let k = &r.kpis;
    assert_eq!(
        k.battery_charge_from_grid_kwh, 0.0,
        "{} kWh from the grid into the battery where it is forbidden",
        k.battery_charge_from_grid_kwh
    );
    assert!(
        k.battery_discharge_kwh > 0.0,
        "the battery never served the house"
    );
}
