//! Runs over years and the KPI definitions of docs/simulator.md, one test per formula that a unit
//! test of `kpi`, `years` or `economics` cannot check on its own.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "a test: it reads the example site files from the repository"
)]

use melv_sim::runner;
use melv_sim::scenario::{Overrides, Scenario};
use melv_site::{BatteryBus, DirectBus};
use std::path::Path;

fn example(step_s: f64, days: Option<f64>) -> Scenario {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/self-consumption.toml");
    Scenario::load(
        &p,
        Overrides {
            step_s: Some(step_s),
            days,
        },
    )
    .unwrap()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1e-12)
}

/// Two years of the 2019 profile: 2019 (365 days) and 2020 (366 days, 29 February replays 28
/// February), with 2 % load growth and 1 % PV degradation a year. Each year's energies follow from
/// the profile exactly; the years add up to the run; ageing and cycles carry over.
#[test]
fn two_years_repeat_the_profile_with_the_leap_day_and_carry_the_battery_over() {
    let mut sc = example(3600.0, None);
    sc.load_growth = 0.02;
    sc.pv_degradation = 0.01;
    sc.set_years(2, "test").unwrap();
    assert_eq!(sc.days, 731.0);
    let r = runner::run(&sc, &mut |_, _| {}).unwrap();
    let k = &r.kpis;
    assert_eq!(k.years.len(), 2);
    let (y1, y2) = (&k.years[0], &k.years[1]);
    assert_eq!((y1.days, y2.days), (365.0, 366.0));
    // The profile's 28 February (local standard time, UTC-5), the day 29 February replays.
    let feb28 = sc.profile.start_utc_s as f64 + 58.0 * 86_400.0;
    let (l28, p28) = sc.profile.mean_w(feb28, feb28 + 86_400.0);
    let year = sc
        .profile
        .mean_w(sc.profile.start_utc_s as f64, sc.profile.end_utc_s() as f64);
    let (load1, pv1) = (year.0 * 8.76, year.1 * 8.76); // kWh over 8,760 h
    assert!(close(y1.load_kwh, load1, 1e-9) && close(y1.pv_kwh, pv1, 1e-9));
    let load2 = (load1 + l28 * 24.0 / 1000.0) * 1.02;
    let pv2 = (pv1 + p28 * 24.0 / 1000.0) * 0.99;
    assert!(
        close(y2.load_kwh, load2, 1e-9),
        "{} vs {load2}",
        y2.load_kwh
    );
    assert!(close(y2.pv_kwh, pv2, 1e-9), "{} vs {pv2}", y2.pv_kwh);
    // The years add up to the run.
    let sum = |f: &dyn Fn(&melv_sim::years::YearKpis) -> f64| k.years.iter().map(f).sum::<f64>();
    assert!(close(sum(&|y| y.pv_kwh), k.pv_kwh, 1e-9));
    assert!(close(sum(&|y| y.grid_import_kwh), k.grid_import_kwh, 1e-9));
    assert!(close(
        sum(&|y| y.battery_discharge_kwh),
        k.battery_discharge_kwh,
        1e-9
    ));
    assert!(close(sum(&|y| y.savings), k.savings, 1e-9));
    // Ageing carries over: SOH falls year on year, cycles and throughput accumulate.
    assert!(1.0 > y1.soh_end && y1.soh_end > y2.soh_end, "{y1:?} {y2:?}");
    assert_eq!(y2.soh_end, k.soh_end);
    assert!(close(
        y1.equivalent_full_cycles + y2.equivalent_full_cycles,
        k.equivalent_full_cycles,
        1e-9
    ));
    assert!(y1.equivalent_full_cycles > 100.0 && y2.equivalent_full_cycles > 100.0);
    assert!(close(
        y2.battery_discharge_kwh_to_date,
        k.battery_discharge_kwh,
        1e-9
    ));
    assert_eq!(k.lifetime.years, 2);
    assert_eq!(k.lifetime.soh_80_year, None);
    // The economics run over both years.
    assert_eq!(k.economics.cash_flows.len(), 2);
    assert!(k.economics.defaults_used);
    assert!(close(k.economics.cash_flows[0].savings, y1.savings, 1e-9));
}

/// `soh_end` is each unit's weakest cell, mean over units; `soh_mean_cell_end` every cell's mean;
/// `equivalent_full_cycles` the pack's charge throughput over twice the cells' new capacity, which
/// on the DC side is close to the DC energy throughput over twice the rated 7 kWh (the cell voltage
/// stays within a few percent of its nominal 3.2 V on the LFP plateau). A definition on discharge
/// alone (the old docs) would be half of it.
#[test]
fn soh_and_cycle_definitions_match_the_units() {
    let sc = example(600.0, Some(20.0));
    let (r, bus) = runner::run_on(&sc, DirectBus::new(sc.units()), &mut |_, _| {}).unwrap();
    let k = &r.kpis;
    let units = bus.units();
    let weakest = units
        .iter()
        .map(|u| u.truth().cell_soh.iter().copied().fold(1.0, f64::min))
        .sum::<f64>()
        / units.len() as f64;
    let cells: Vec<f64> = units.iter().flat_map(|u| u.truth().cell_soh).collect();
    let mean = cells.iter().sum::<f64>() / cells.len() as f64;
    assert!(
        close(k.soh_end, weakest, 1e-12),
        "{} vs {weakest}",
        k.soh_end
    );
    assert!(close(k.soh_mean_cell_end, mean, 1e-12));
    assert!(k.soh_end < k.soh_mean_cell_end);
    let e = units[0].energy();
    let dc_efc = (e.dc_in_wh + e.dc_out_wh) / (2.0 * 7000.0);
    assert!(
        close(k.equivalent_full_cycles, dc_efc, 0.06),
        "EFC {} vs DC energy throughput / 14 kWh {dc_efc}",
        k.equivalent_full_cycles
    );
    // The SOC estimate is compared at every step's end with the truth.
    assert_eq!(k.soc_error.samples, k.steps);
    assert!(k.soc_error.rms > 0.0 && k.soc_error.max_abs >= k.soc_error.rms);
}

/// A full battery in sunshine is `battery_full`: in a summer week the battery fills every day.
#[test]
fn a_full_battery_in_sunshine_is_battery_full() {
    let mut sc = example(60.0, Some(7.0));
    sc.start_utc_s += 171 * 86_400; // the June solstice week
    let r = runner::run(&sc, &mut |_, _| {}).unwrap();
    let hours = |name: &str| {
        r.kpis
            .reasons
            .iter()
            .find(|h| h.reason == name)
            .map_or(0.0, |h| h.hours)
    };
    assert!(hours("battery_full") > 10.0, "{:?}", r.kpis.reasons);
    assert!(
        hours("battery_limit") < hours("battery_full"),
        "{:?}",
        r.kpis.reasons
    );
}
