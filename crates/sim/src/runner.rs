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
use crate::kpi::{
    count_alerts, Accumulator, AlertEdge, Kpis, LossBreakdown, ReasonHours, Series, SocError,
    StepFlows,
};
use crate::report::SimResult;
use crate::scenario::Scenario;
use crate::tariff::TariffKind;
use crate::timeseries::{NoSink, StepSample, StepSink, UnitSample};
use crate::years::YearBook;
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
    /// The time series could not be written (`--timeseries`).
    #[error("{file}: time series: {message}")]
    Sink { file: String, message: String },
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
    run_over_can_with(sc, link, progress, &mut NoSink)
}

/// [`run_over_can`], handing every step to `sink`.
pub fn run_over_can_with<W: std::io::Write>(
    sc: &Scenario,
    link: SimLink<W>,
    progress: &mut dyn FnMut(u64, u64),
    sink: &mut dyn StepSink,
) -> Result<(SimResult, SimLink<W>), RunError> {
    let bus = CodecBus::new(sc.units(), link);
    let (r, bus) = run_on_with(sc, bus, progress, sink)?;
    Ok((r, bus.into_link()))
}

/// Run the scenario. `progress(done, total)` is called about a thousand times over the run. A
/// scenario with CAN events (`can_cut`) always runs through the codec: a cut cable only means
/// something on a bus.
pub fn run(sc: &Scenario, progress: &mut dyn FnMut(u64, u64)) -> Result<SimResult, RunError> {
    run_with(sc, progress, &mut NoSink)
}

/// [`run`], handing every step to `sink` (`--timeseries`).
pub fn run_with(
    sc: &Scenario,
    progress: &mut dyn FnMut(u64, u64),
    sink: &mut dyn StepSink,
) -> Result<SimResult, RunError> {
    if sc.events.iter().any(|e| e.kind == EventKind::CanCut) {
        let link = SimLink::new(&can_identities(sc), sc.seed).map_err(|source| RunError::Can {
            file: sc.file.clone(),
            source: source.into(),
        })?;
        return run_over_can_with::<std::io::Sink>(sc, link, progress, sink).map(|(r, _)| r);
    }
    run_on_with(sc, DirectBus::new(sc.units()), progress, sink).map(|(r, _)| r)
}

/// Run the scenario on any battery bus: profile -> [`Site::step`] -> KPIs. The bus is handed back.
pub fn run_on<B: BatteryBus>(
    sc: &Scenario,
    bus: B,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(SimResult, B), RunError> {
    run_on_with(sc, bus, progress, &mut NoSink)
}

/// The run's books beside the site: everything summed or sampled step by step.
struct Books {
    acc: Accumulator,
    years: YearBook,
    /// UTC s of each run year's start and of the run's end.
    year_starts: Vec<i64>,
    year: usize,
    probe: crate::kpi::TruthProbe,
    series: Series,
    /// The report's series covers the first run year only (its daily and SOC charts).
    series_end_s: f64,
    edges: Vec<AlertEdge>,
    reason_s: [f64; Reason::ALL.len()],
    soc_error: SocError,
    samples: Vec<UnitSample>,
    /// Active alerts by (unit or gateway, code), for the time series.
    active: Vec<(Option<usize>, u8)>,
    codes: Vec<u8>,
}

impl Books {
    fn new(sc: &Scenario, units: &[BatteryUnit]) -> Self {
        let year_starts = sc.year_starts();
        let series_end_s = year_starts[1] as f64;
        let first_year_s = (series_end_s - sc.start_utc_s as f64).min(sc.days * 86_400.0);
        Self {
            acc: Accumulator::default(),
            years: YearBook::new(sc.start_utc_s, units),
            year_starts,
            year: 0,
            probe: crate::kpi::TruthProbe::new(units),
            series: Series::new(sc.start_utc_s, sc.step_s, first_year_s),
            series_end_s,
            edges: Vec::new(),
            reason_s: [0.0; Reason::ALL.len()],
            soc_error: SocError::default(),
            samples: vec![UnitSample::default(); units.len()],
            active: Vec::new(),
            codes: Vec::new(),
        }
    }

    /// Close the years that end at or before `t`.
    #[inline]
    fn roll_years(&mut self, t: f64, units: &[BatteryUnit]) {
        while self.year + 2 < self.year_starts.len() && t >= self.year_starts[self.year + 1] as f64
        {
            self.year += 1;
            self.years.close(self.year_starts[self.year], units);
        }
    }

    /// What the step at `t` did: sums, truth samples, alerts.
    #[inline]
    fn add(&mut self, t: f64, f: &StepFlows, out: &StepOutcome, units: &[BatteryUnit]) {
        let islanded = !out.grid_present;
        self.acc.add(f, islanded);
        self.years.acc.add(f, islanded);
        let from_grid = self.probe.add(units, f);
        self.acc.add_charge(f, from_grid);
        self.years.acc.add_charge(f, from_grid);
        if t < self.series_end_s {
            self.series.add(t, f, out.island || islanded);
        }
        let end = t + f.dt_s;
        for ((u, s), uf) in units.iter().zip(&mut self.samples).zip(&out.units) {
            let tr = u.truth();
            let fold = |(lo, hi): (f64, f64), v: &f64| (lo.min(*v), hi.max(*v));
            let inf = (f64::INFINITY, f64::NEG_INFINITY);
            let (vlo, vhi) = tr.cell_v.iter().fold(inf, fold);
            let (tlo, thi) = tr.cell_temp_c.iter().fold(inf, fold);
            let bms = u.firmware().map(|fw| fw.status().soc);
            if let Some(b) = bms {
                self.soc_error.add(b, tr.pack_soc, end);
            }
            *s = UnitSample {
                power_w: uf.discharge_w - uf.charge_w,
                soc: tr.pack_soc,
                soc_bms: bms.unwrap_or(f64::NAN),
                cell_v_min: vlo,
                cell_v_max: vhi,
                temp_min_c: tlo,
                temp_max_c: thi,
            };
        }
        for e in &out.edges {
            let key = (e.unit, e.code);
            if e.raised && !self.active.contains(&key) {
                self.active.push(key);
            } else if !e.raised {
                self.active.retain(|k| *k != key);
            }
        }
    }

    /// Refresh the active codes (ascending, no repeats) in `codes`.
    fn refresh_codes(&mut self) {
        self.codes.clear();
        self.codes.extend(self.active.iter().map(|(_, c)| *c));
        self.codes.sort_unstable();
        self.codes.dedup();
    }
}

/// [`run_on`], handing every step to `sink` (the time series of `--timeseries`).
pub fn run_on_with<B: BatteryBus>(
    sc: &Scenario,
    bus: B,
    progress: &mut dyn FnMut(u64, u64),
    sink: &mut dyn StepSink,
) -> Result<(SimResult, B), RunError> {
    let mut site = Site::new(&sc.site_spec(), bus).map_err(|source| RunError::Controller {
        file: sc.file.clone(),
        source,
    })?;
    let can_err = |source| RunError::Can {
        file: sc.file.clone(),
        source,
    };
    let sink_err = |message| RunError::Sink {
        file: sc.file.clone(),
        message,
    };
    let dt = sc.step_s;
    let total = sc.steps();
    let mut prices = sc.prices.clone();
    let mut books = Books::new(sc, site.bus().units());
    let mut out = StepOutcome::default();
    let report_every = (total / 1000).max(1);
    // Countdowns rather than `k % n`: an integer division per step is measurable at 1 s.
    let mut next_report = 0u64;
    let day_steps = ((86_400.0 / dt).round() as u64).max(1);
    let mut next_day = day_steps;

    for k in 0..total {
        let now = k as f64 * dt;
        let t = sc.start_utc_s as f64 + now;
        books.roll_years(t, site.bus().units());
        let env = sc.site_env(t, dt);
        site.step(now, dt, &env, &mut out).map_err(can_err)?;
        books.edges.extend_from_slice(&out.edges);
        let reason = site.decision().reason;
        books.reason_s[reason.index()] += dt;
        let mut f = out.flows;
        (f.import_price, f.export_price) = prices.at(sc.price_time(t));
        books.add(t, &f, &out, site.bus().units());
        books.refresh_codes();
        sink.step(&StepSample {
            t_utc_s: t,
            dt_s: dt,
            pv_w: f.pv_w,
            load_w: f.load_w,
            grid_w: f.grid_w,
            battery_w: f.battery_w,
            units: &books.samples,
            reason,
            alerts: &books.codes,
        })
        .map_err(sink_err)?;
        if k + 1 == next_day {
            next_day += day_steps;
            books.years.check_soh(books.year, site.bus().units());
        }
        if k == next_report {
            next_report += report_every;
            progress(k, total);
        }
    }
    sink.finish().map_err(sink_err)?;
    // What the batteries did in the last step is seen at its end.
    let end = total as f64 * dt;
    site.observe(end, sc.start_utc_s as f64 + end, &mut books.edges)
        .map_err(can_err)?;
    let end_utc = sc.start_utc_s + end.round() as i64;
    books.years.close(end_utc, site.bus().units());
    books.series.finish();
    progress(total, total);
    let result = finish(sc, site.bus().units(), books);
    Ok((result, site.into_bus()))
}

fn finish(sc: &Scenario, units: &[BatteryUnit], books: Books) -> SimResult {
    let Books {
        acc,
        years,
        probe,
        series,
        edges,
        reason_s,
        soc_error,
        ..
    } = books;
    let reasons = Reason::ALL
        .iter()
        .zip(reason_s)
        .filter(|(_, s)| *s > 0.0)
        .map(|(r, s)| ReasonHours {
            reason: r.as_str().to_string(),
            hours: s / 3600.0,
        })
        .collect();
    let (sc_ratio, ss, ss0) = acc.ratios();
    let n = units.len().max(1) as f64;
    let sum = |f: &dyn Fn(&EnergyLedger) -> f64| {
        units.iter().map(|u| f(u.energy())).sum::<f64>() / 1000.0
    };
    let losses_kwh = sum(&|l| l.total_losses_wh());
    // The whole unit closes: AC in - AC out = stored + losses (both ledger balances together).
    let dc_err = sum(&|l| l.ac_balance_error_wh() + l.dc_balance_error_wh());
    let economics =
        crate::economics::evaluate(&sc.economics, sc.economics_given, units.len(), &years.years);
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
        equivalent_full_cycles: crate::years::efc(units),
        soh_end: crate::years::soh_weakest(units),
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
        soh_mean_cell_end: crate::years::soh_mean_cell(units),
        soh_bms_end: units.iter().map(|u| u.status().soh).sum::<f64>() / n,
        soc_error,
        years: years.years,
        lifetime: years.lifetime,
        economics,
        tariff_clock: match sc.tariff.kind {
            TariffKind::Flat => "flat tariff: no hours".into(),
            TariffKind::Tou => sc.tariff.clock.describe(sc.site.timezone),
            TariffKind::Series => "price series in the profile's local standard time".into(),
        },
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
