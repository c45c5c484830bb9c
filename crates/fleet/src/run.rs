//! Running sites: one site through the simulator's own runner, and many on all cores with rayon.
//!
//! A site's run keeps nothing but its row of KPIs: the simulator's binned series and alert edges
//! are dropped as soon as the KPIs are read, so a fleet of 10,000 sites holds at most one series per
//! thread, and rows (a few hundred bytes each) go to the caller through a bounded channel as they
//! finish.

use crate::fleet::{Fleet, FleetError, SiteDraw};
use melv_sim::kpi::Kpis;
use melv_sim::runner::{self, RunError};
use melv_site::{CodecBus, DirectBus};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// One site's row: what was drawn and what the year gave. These are the columns of the CSV and
/// Parquet outputs, in this order. Everything here depends only on the fleet file and the site's
/// index (no time, no worker), so two runs give the same rows bit for bit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteRow {
    pub site: u64,
    pub seed: u64,
    pub template: String,
    pub batteries: u32,
    pub phases: u8,
    pub country: String,
    pub mode: String,
    pub tariff: String,
    pub load_scale: f64,
    pub pv_scale: f64,
    pub initial_soh: f64,
    pub step_s: f64,
    pub site_years: f64,
    pub pv_kwh: f64,
    pub load_kwh: f64,
    pub grid_import_kwh: f64,
    pub grid_export_kwh: f64,
    pub battery_charge_kwh: f64,
    pub battery_discharge_kwh: f64,
    pub self_consumption_ratio: f64,
    pub self_sufficiency_ratio: f64,
    pub self_sufficiency_without_battery: f64,
    pub equivalent_full_cycles: f64,
    pub soh_end: f64,
    pub currency: String,
    pub cost_without_battery: f64,
    pub cost_with_battery: f64,
    pub savings: f64,
    /// Rising alert edges over all units and the gateway.
    pub alerts: u64,
    /// Per code, `code:count` separated by spaces (`"4:1 54:2"`), empty without alerts.
    pub alert_codes: String,
    pub islanded_hours: f64,
    pub load_unserved_kwh: f64,
    pub energy_balance_error_kwh: f64,
}

/// A Julian year, days: site-years are simulated days over it.
pub const YEAR_DAYS: f64 = 365.25;

impl SiteRow {
    pub fn new(d: SiteDraw, k: &Kpis) -> SiteRow {
        let alert_codes = k
            .alerts
            .iter()
            .map(|a| format!("{}:{}", a.code, a.count))
            .collect::<Vec<_>>()
            .join(" ");
        SiteRow {
            site: d.site,
            seed: d.seed,
            template: d.template,
            batteries: d.batteries,
            phases: d.phases,
            country: d.country,
            mode: d.mode,
            tariff: d.tariff,
            load_scale: d.load_scale,
            pv_scale: d.pv_scale,
            initial_soh: d.initial_soh,
            step_s: k.step_s,
            site_years: k.days / YEAR_DAYS,
            pv_kwh: k.pv_kwh,
            load_kwh: k.load_kwh,
            grid_import_kwh: k.grid_import_kwh,
            grid_export_kwh: k.grid_export_kwh,
            battery_charge_kwh: k.battery_charge_kwh,
            battery_discharge_kwh: k.battery_discharge_kwh,
            self_consumption_ratio: k.self_consumption_ratio,
            self_sufficiency_ratio: k.self_sufficiency_ratio,
            self_sufficiency_without_battery: k.self_sufficiency_without_battery,
            equivalent_full_cycles: k.equivalent_full_cycles,
            soh_end: k.soh_end,
            currency: k.currency.clone(),
            cost_without_battery: k.cost_without_battery,
            cost_with_battery: k.cost_with_battery,
            savings: k.savings,
            alerts: k.alerts.iter().map(|a| a.count).sum(),
            alert_codes,
            islanded_hours: k.islanded_hours,
            load_unserved_kwh: k.load_unserved_kwh,
            energy_balance_error_kwh: k.energy_balance_error_kwh,
        }
    }
}

impl Fleet {
    /// Runs site `i` through `melv_sim::runner::run_on`, the same loop as `melv simulate`: on the
    /// direct bus, or on the CAN codec when its scenario cuts a cable (as `runner::run` does).
    pub fn run_site(&self, i: u64) -> Result<SiteRow, FleetError> {
        let (draw, sc, fade) = self.site(i)?;
        let units = melv_site::build_units_aged(&sc.site_spec(), fade);
        let run_err = |source| FleetError::Run { site: i, source };
        let cut = sc
            .events
            .iter()
            .any(|e| e.kind == melv_sim::events::EventKind::CanCut);
        let result = if cut {
            let link = melv_can_link(&sc).map_err(run_err)?;
            runner::run_on(&sc, CodecBus::new(units, link), &mut |_, _| {})
                .map(|(r, _)| r)
                .map_err(run_err)?
        } else {
            runner::run_on(&sc, DirectBus::new(units), &mut |_, _| {})
                .map(|(r, _)| r)
                .map_err(run_err)?
        };
        Ok(SiteRow::new(draw, &result.kpis))
    }
}

fn melv_can_link(
    sc: &melv_sim::scenario::Scenario,
) -> Result<melv_can::SimLink<std::io::Sink>, RunError> {
    melv_can::SimLink::new(&runner::can_identities(sc), sc.seed).map_err(|source| RunError::Can {
        file: sc.file.clone(),
        source: source.into(),
    })
}

/// One finished site: its row and the CPU time its thread spent on it, s.
#[derive(Debug, Clone)]
pub struct Done {
    pub row: SiteRow,
    pub cpu_s: f64,
}

/// Runs `sites` on `threads` threads (0: one per core) and hands each finished site to `on_done` on
/// the calling thread, in the order they finish. Stops at the first error and returns it (the sites
/// already running finish; no new one starts).
pub fn run_local(
    fleet: &Fleet,
    sites: &[u64],
    threads: usize,
    on_done: &mut dyn FnMut(Done),
) -> Result<(), FleetError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| {
            crate::config::FleetConfigError::new(&fleet.file, "--threads", e.to_string())
        })?;
    let stop = AtomicBool::new(false);
    // Bounded: a slow consumer holds back the workers instead of growing a queue.
    let (tx, rx) = mpsc::sync_channel::<Result<Done, FleetError>>(256);
    let mut first_err = None;
    std::thread::scope(|s| {
        let stop = &stop;
        s.spawn(move || {
            pool.install(|| {
                sites.par_iter().for_each_with(tx, |tx, &i| {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let t0 = cpu_time::ThreadTime::now();
                    let r = fleet.run_site(i).map(|row| Done {
                        row,
                        cpu_s: t0.elapsed().as_secs_f64(),
                    });
                    let _ = tx.send(r);
                })
            })
        });
        for r in rx {
            match r {
                Ok(d) => on_done(d),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    first_err.get_or_insert(e);
                }
            }
        }
    });
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
