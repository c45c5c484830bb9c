//! The time-stepped run of one site: environment, gateway controller, battery units, site balance.
//!
//! Each step `[t, t + dt)`:
//! 1. the environment: the profile's mean load and PV over the step, the ambient temperature, the
//!    grid's state from the profile and the event schedule; hardware faults switched on or off;
//! 2. the gateway ([`melv_ems::Controller`]) decides from what a gateway would see: the grid meter of
//!    the previous step, PV and load, and each unit's *reported* status;
//! 3. each [`melv_unit::BatteryUnit`] takes its command and advances its firmware and physics by dt;
//! 4. the site balance: the units' AC energy over the step comes from their ledgers, and
//!    `grid = load - pv_used - battery`; off grid the residual is load not supplied or PV curtailed.
//!
//! With [`run_over_can`], steps 2 and 3 talk through the CAN link instead of function calls: the
//! gateway decides from the statuses it decoded off the bus, its commands cross the bus as frames
//! (real codec, heartbeats with alive counters and CRC) and reach each unit's firmware as the battery
//! node delivers them, and the gateway's supervision raises 63 for a silent unit. Every frame can be
//! logged in candump format. The fast path ([`run`]) and the CAN path must give the same KPIs within
//! the effect of the codec's resolution on what the gateway decides from; a test holds them to it.
//!
//! Steps 1-4 are [`melv_site::Site::step`], the same cycle the live gateway runs; this module only
//! feeds it from the profile and keeps the books.
//!
//! Determinism: the only randomness is inside the units, seeded from the scenario's seed and the
//! unit's index; the same scenario gives the same numbers, bit for bit.

use crate::events::EventKind;
use crate::kpi::{count_alerts, Accumulator, AlertEdge, Kpis, LossBreakdown, ReasonHours, Series};
use crate::report::SimResult;
use crate::scenario::Scenario;
use melv_can::{BatteryIdentity, SimLink};
use melv_ems::Reason;
use melv_model::EnergyLedger;
use melv_site::{BatteryBus, CodecBus, DirectBus, Site, StepOutcome};
use melv_unit::BatteryUnit;

pub use melv_site::unit_seed;

/// Why a run could not go on: the controller refused the scenario (it validates again when built),
/// or the CAN path failed (an encoding error, or the CAN log could not be written).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{file}: {source}")]
    Controller {
        file: String,
        #[source]
        source: melv_site::SiteError,
    },
    #[error("{file}: CAN link: {source}")]
    Can {
        file: String,
        #[source]
        source: melv_site::BusError,
    },
}

/// The CAN identities of a scenario's units: serial numbers derived from the seed and slot.
pub fn can_identities(sc: &Scenario) -> Vec<BatteryIdentity> {
    let serials: Vec<u32> = (0..sc.site.batteries)
        .map(|i| (unit_seed(sc.seed, i) >> 32) as u32)
        .collect();
    melv_site::identities(&serials)
}

/// Run the scenario with every battery-gateway message through the CAN codec on `link` (built with
/// [`can_identities`]; give it a candump writer with `SimLink::set_log` to keep the frames). The
/// link is handed back with the result, its log and counters as the run left them.
pub fn run_over_can<W: std::io::Write>(
    sc: &Scenario,
    link: SimLink<W>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(SimResult, SimLink<W>), RunError> {
    let bus = CodecBus::new(sc.units(), link);
    let (r, bus) = run_on(sc, bus, progress)?;
    Ok((r, bus.into_link()))
}

/// Run the scenario. `progress(done, total)` is called about a thousand times over the run. A
/// scenario with CAN events (`can_cut`) always runs through the codec: a cut cable only means
/// something on a bus.
pub fn run(sc: &Scenario, progress: &mut dyn FnMut(u64, u64)) -> Result<SimResult, RunError> {
    if sc.events.iter().any(|e| e.kind == EventKind::CanCut) {
        let link = SimLink::new(&can_identities(sc), sc.seed).map_err(|source| RunError::Can {
            file: sc.file.clone(),
            source: source.into(),
        })?;
        return run_over_can::<std::io::Sink>(sc, link, progress).map(|(r, _)| r);
    }
    run_on(sc, DirectBus::new(sc.units()), progress).map(|(r, _)| r)
}

/// Run the scenario on any battery bus: profile -> [`Site::step`] -> KPIs. The bus is handed back.
pub fn run_on<B: BatteryBus>(
    sc: &Scenario,
    bus: B,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(SimResult, B), RunError> {
    let mut site = Site::new(&sc.site_spec(), bus).map_err(|source| RunError::Controller {
        file: sc.file.clone(),
        source,
    })?;
    let can_err = |source| RunError::Can {
        file: sc.file.clone(),
        source,
    };
    let dt = sc.step_s;
    let total = sc.steps();
    let mut prices = sc.prices.clone();
    let mut edges: Vec<AlertEdge> = Vec::new();
    let mut acc = Accumulator::default();
    let mut series = Series::new(sc.start_utc_s, dt, total as f64 * dt);
    let mut reason_s = [0.0f64; Reason::ALL.len()];
    let mut out = StepOutcome::default();
    let mut probe = crate::kpi::TruthProbe::new(site.bus().units());
    let report_every = (total / 1000).max(1);
    // A countdown rather than `k % report_every`: an integer division per step is measurable at 1 s.
    let mut next_report = 0u64;

    for k in 0..total {
        let now = k as f64 * dt;
        let t = sc.start_utc_s as f64 + now;
        let env = sc.site_env(t, dt);
        site.step(now, dt, &env, &mut out).map_err(can_err)?;
        edges.extend_from_slice(&out.edges);
        reason_s[site.decision().reason.index()] += dt;
        let mut f = out.flows;
        let (buy, sell) = prices.at(t as i64);
        f.import_price = buy;
        f.export_price = sell;
        acc.add(&f, !out.grid_present);
        probe.add(site.bus().units(), &f);
        series.add(t, &f, out.island || !out.grid_present);
        if k == next_report {
            next_report += report_every;
            progress(k, total);
        }
    }
    // What the batteries did in the last step is seen at its end.
    let end = total as f64 * dt;
    site.observe(end, sc.start_utc_s as f64 + end, &mut edges)
        .map_err(can_err)?;
    series.finish();
    progress(total, total);
    let reasons = Reason::ALL
        .iter()
        .zip(reason_s)
        .filter(|(_, s)| *s > 0.0)
        .map(|(r, s)| ReasonHours {
            reason: r.as_str().to_string(),
            hours: s / 3600.0,
        })
        .collect();
    let result = finish(sc, site.bus().units(), acc, &probe, series, edges, reasons);
    Ok((result, site.into_bus()))
}

fn finish(
    sc: &Scenario,
    units: &[BatteryUnit],
    acc: Accumulator,
    probe: &crate::kpi::TruthProbe,
    series: Series,
    edges: Vec<AlertEdge>,
    reasons: Vec<ReasonHours>,
) -> SimResult {
    let (sc_ratio, ss, ss0) = acc.ratios();
    let n = units.len() as f64;
    let sum = |f: &dyn Fn(&EnergyLedger) -> f64| {
        units.iter().map(|u| f(u.energy())).sum::<f64>() / 1000.0
    };
    let losses_kwh = sum(&|l| l.total_losses_wh());
    // The whole unit closes: AC in - AC out = stored + losses (both ledger balances together).
    let dc_err = sum(&|l| l.ac_balance_error_wh() + l.dc_balance_error_wh());
    let soh = units.iter().map(|u| u.truth().soh).sum::<f64>() / n;
    let kpis = Kpis {
        pv_kwh: acc.pv_wh / 1000.0,
        load_kwh: acc.load_wh / 1000.0,
        grid_import_kwh: acc.import_wh / 1000.0,
        grid_export_kwh: acc.export_wh / 1000.0,
        battery_charge_kwh: acc.charge_wh / 1000.0,
        battery_discharge_kwh: acc.discharge_wh / 1000.0,
        pv_curtailed_kwh: acc.pv_curtailed_wh / 1000.0,
        load_unserved_kwh: acc.load_unserved_wh / 1000.0,
        self_consumption_ratio: sc_ratio,
        self_sufficiency_ratio: ss,
        self_sufficiency_without_battery: ss0,
        // The cells' charge throughput (in + out) over twice their capacity, the usual definition
        // and the one the ageing model counts; the mean over units.
        equivalent_full_cycles: units.iter().map(|u| u.truth().efc).sum::<f64>() / n,
        soh_end: soh,
        currency: sc.currency.clone(),
        cost_without_battery: acc.cost_without_battery,
        cost_with_battery: acc.cost,
        savings: acc.cost_without_battery - acc.cost,
        alerts: count_alerts(&edges),
        reasons,
        steps: acc.steps,
        step_s: sc.step_s,
        days: acc.steps as f64 * sc.step_s / 86_400.0,
        islanded_hours: acc.islanded_s / 3600.0,
        energy_balance_error_kwh: acc.balance_error_kwh(),
        dc_balance_error_kwh: dc_err,
        battery_losses_kwh: losses_kwh,
        battery_loss_breakdown_kwh: LossBreakdown {
            inverter: sum(&|l| l.loss_inverter_wh),
            cells: sum(&|l| l.loss_cell_wh),
            standby: sum(&|l| l.loss_standby_wh),
            fan: sum(&|l| l.loss_fan_wh),
            heater: sum(&|l| l.loss_heater_wh),
            balancing: sum(&|l| l.loss_bleed_wh),
            self_discharge: sum(&|l| l.loss_self_discharge_wh),
        },
        battery_charge_from_grid_kwh: probe.grid_charge_wh / 1000.0,
        cell_v_min: probe.cell_v_min,
        cell_v_max: probe.cell_v_max,
    };
    SimResult {
        title: sc.title.clone(),
        kpis,
        series,
        alert_edges: edges,
        display_offset_s: sc.utc_offset_s,
        report_week_day: sc.report_week_day,
    }
}
