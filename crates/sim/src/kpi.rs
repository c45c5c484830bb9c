//! Energy accounting: the site balance of every step, summed into the run's KPIs, and binned into
//! the series the report plots.
//!
//! The AC balance of a step is an identity the runner builds (ARCHITECTURE.md 3):
//! `pv_used + grid_import + battery_discharge = load_served + grid_export + battery_charge`, with
//! `pv_used = pv - pv_curtailed` and `load_served = load - load_unserved`. The accumulator sums each
//! term on its own, so [`Kpis::energy_balance_error_kwh`] checks the bookkeeping, not an assumption.

use melv_core::AlertCode;
use serde::Serialize;

pub use melv_site::flows::{Connection, StepFlows};
pub use melv_site::AlertEdge;

/// Running sums, Wh and currency.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Accumulator {
    pub steps: u64,
    pub pv_wh: f64,
    pub load_wh: f64,
    pub pv_curtailed_wh: f64,
    pub load_unserved_wh: f64,
    pub import_wh: f64,
    pub export_wh: f64,
    pub charge_wh: f64,
    pub discharge_wh: f64,
    pub cost: f64,
    pub cost_without_battery: f64,
    pub import_without_battery_wh: f64,
    pub export_without_battery_wh: f64,
    pub islanded_s: f64,
    /// The parts of `cost` and `cost_without_battery`: import cost and export revenue.
    pub import_cost: f64,
    pub export_revenue: f64,
    pub import_cost_without_battery: f64,
    pub export_revenue_without_battery: f64,
    /// Battery charge from the grid, Wh, and what the charged energy was worth: the grid's part at
    /// the import price, the PV's part at the export price it would have fetched ([`Self::add_charge`]).
    pub grid_charge_wh: f64,
    pub charge_cost_grid: f64,
    pub charge_value_pv: f64,
}

impl Accumulator {
    /// The batteries' charge of a step split by source: `from_grid_wh` (the [`TruthProbe`]'s share)
    /// at the import price, the rest of the AC charge at the export price.
    #[inline]
    pub fn add_charge(&mut self, f: &StepFlows, from_grid_wh: f64) {
        let charge_wh = f.battery_charge_w * f.dt_s / 3600.0;
        self.grid_charge_wh += from_grid_wh;
        self.charge_cost_grid += from_grid_wh * f.import_price / 1000.0;
        self.charge_value_pv += (charge_wh - from_grid_wh).max(0.0) * f.export_price / 1000.0;
    }

    #[inline]
    pub fn add(&mut self, f: &StepFlows, islanded: bool) {
        let h = f.dt_s / 3600.0;
        self.steps += 1;
        self.pv_wh += f.pv_w * h;
        self.load_wh += f.load_w * h;
        self.pv_curtailed_wh += f.pv_curtailed_w * h;
        self.load_unserved_wh += f.load_unserved_w * h;
        let (imp, exp) = (f.grid_w.max(0.0) * h, (-f.grid_w).max(0.0) * h);
        self.import_wh += imp;
        self.export_wh += exp;
        self.charge_wh += f.battery_charge_w * h;
        self.discharge_wh += f.battery_discharge_w * h;
        self.cost += (imp * f.import_price - exp * f.export_price) / 1000.0;
        self.import_cost += imp * f.import_price / 1000.0;
        self.export_revenue += exp * f.export_price / 1000.0;
        // The same house without a battery: PV first to the load, the rest to or from the grid.
        // During an outage it would have had no supply at all, and it pays nothing then.
        if !islanded {
            let net = f.load_w - f.pv_w;
            let (i0, e0) = (net.max(0.0) * h, (-net).max(0.0) * h);
            self.import_without_battery_wh += i0;
            self.export_without_battery_wh += e0;
            self.cost_without_battery += (i0 * f.import_price - e0 * f.export_price) / 1000.0;
            self.import_cost_without_battery += i0 * f.import_price / 1000.0;
            self.export_revenue_without_battery += e0 * f.export_price / 1000.0;
        } else {
            self.islanded_s += f.dt_s;
        }
    }
}

/// Count and first/last time of one alert code over the run (raised = a rising edge on one unit).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertCount {
    pub code: u8,
    pub name: String,
    pub count: u64,
}

/// Where the units' losses went, kWh (summed over units).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct LossBreakdown {
    pub inverter: f64,
    pub cells: f64,
    pub standby: f64,
    pub fan: f64,
    pub heater: f64,
    pub balancing: f64,
    pub self_discharge: f64,
}

/// Time spent under one of the gateway's reasons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonHours {
    pub reason: String,
    pub hours: f64,
}

/// The KPIs of a run; these are the JSON fields of `melv simulate --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kpis {
    pub pv_kwh: f64,
    pub load_kwh: f64,
    pub grid_import_kwh: f64,
    pub grid_export_kwh: f64,
    /// AC side, summed over units.
    pub battery_charge_kwh: f64,
    pub battery_discharge_kwh: f64,
    pub pv_curtailed_kwh: f64,
    pub load_unserved_kwh: f64,
    /// Share of the PV energy used on site: (pv_used - export) / pv_used.
    pub self_consumption_ratio: f64,
    /// Share of the load not bought from the grid: 1 - import / load.
    pub self_sufficiency_ratio: f64,
    /// The same without a battery, for comparison.
    pub self_sufficiency_without_battery: f64,
    /// The pack's charge throughput (Ah charged + Ah discharged) over twice each cell's capacity when
    /// new, mean of the cells, mean of the units (`years::efc`).
    pub equivalent_full_cycles: f64,
    /// At the end: each unit's weakest cell's capacity relative to new (what its series string can
    /// deliver), mean over units (`years::soh_weakest`).
    pub soh_end: f64,
    pub currency: String,
    pub cost_without_battery: f64,
    pub cost_with_battery: f64,
    pub savings: f64,
    pub alerts: Vec<AlertCount>,
    /// Hours the gateway spent under each decision reason (why the battery did what it did).
    pub reasons: Vec<ReasonHours>,
    pub steps: u64,
    pub step_s: f64,
    pub days: f64,
    pub islanded_hours: f64,
    /// pv_used + import + discharge - (load_served + export + charge), kWh: zero up to rounding.
    pub energy_balance_error_kwh: f64,
    /// DC side of the units' ledgers: AC in - AC out - losses - stored energy change, kWh.
    pub dc_balance_error_kwh: f64,
    /// Losses of the units (inverter, cells, standby), kWh.
    pub battery_losses_kwh: f64,
    /// The same by cause, kWh, from the units' ledgers.
    pub battery_loss_breakdown_kwh: LossBreakdown,
    /// The batteries' charge drawn from the grid, kWh: per step, what the units' inverters took in
    /// beyond the PV surplus (PV used less the house's load served), on the twins' own ledgers.
    /// Zero where the grid-charging policy forbids it (manual 5.1 note).
    pub battery_charge_from_grid_kwh: f64,
    /// Lowest and highest true cell terminal voltage of any unit over the run, V (the twins' truth,
    /// sampled at the start and at the end of every step).
    pub cell_v_min: f64,
    pub cell_v_max: f64,
    /// At the end: the mean SOH of every cell of every unit (`years::soh_mean_cell`).
    pub soh_mean_cell_end: f64,
    /// At the end: the firmware's SOH estimate, mean over units (what the app shows).
    pub soh_bms_end: f64,
    /// The firmware's SOC estimate against the true pack SOC, every unit at the end of every step.
    pub soc_error: SocError,
    /// One record per run year (one for a run through the profile).
    pub years: Vec<crate::years::YearKpis>,
    /// The run's lifetime summary (SOH milestones, throughput and cycles to date).
    pub lifetime: crate::years::Lifetime,
    /// NPV, payback, IRR and LCOS over the run's years (`economics`).
    pub economics: crate::economics::Economics,
    /// Which clock the tariff's hours are on (`[tariff] clock` for TOU).
    pub tariff_clock: String,
}

/// The SOC estimate's error: reported SOC minus true pack SOC (capacity-weighted mean of the cells),
/// over every powered unit at the end of every step.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct SocError {
    /// Root mean square, fraction of full (0.01 = 1 percentage point).
    pub rms: f64,
    /// Largest absolute error, fraction of full.
    pub max_abs: f64,
    /// When the largest error happened, UTC s.
    pub max_at_utc_s: i64,
    pub samples: u64,
    #[serde(skip)]
    sum_sq: f64,
}

impl SocError {
    /// Add one unit's sample at `t_utc_s`.
    #[inline]
    pub fn add(&mut self, reported: f64, truth: f64, t_utc_s: f64) {
        let e = reported - truth;
        self.sum_sq += e * e;
        self.samples += 1;
        if e.abs() > self.max_abs {
            self.max_abs = e.abs();
            self.max_at_utc_s = t_utc_s as i64;
        }
        self.rms = (self.sum_sq / self.samples as f64).sqrt();
    }
}

/// What the simulator measures on the twins' true state step by step (never what the firmware
/// sees): cell-voltage extremes and the charge the batteries took from the grid.
#[derive(Debug, Clone)]
pub struct TruthProbe {
    /// Each unit's inverter AC import at the end of the last step, Wh.
    prev_ac_in_wh: Vec<f64>,
    pub grid_charge_wh: f64,
    pub cell_v_min: f64,
    pub cell_v_max: f64,
}

impl TruthProbe {
    pub fn new(units: &[melv_unit::BatteryUnit]) -> Self {
        let mut p = Self {
            prev_ac_in_wh: units.iter().map(|u| u.energy().ac_in_wh).collect(),
            grid_charge_wh: 0.0,
            cell_v_min: f64::INFINITY,
            cell_v_max: f64::NEG_INFINITY,
        };
        p.extremes(units);
        p
    }

    fn extremes(&mut self, units: &[melv_unit::BatteryUnit]) {
        for u in units {
            let (lo, hi) = u.plant().cell_v_min_max();
            self.cell_v_min = self.cell_v_min.min(lo);
            self.cell_v_max = self.cell_v_max.max(hi);
        }
    }

    /// After a step with flows `f`: the units' inverter import beyond the PV surplus is grid charge.
    /// Returns the step's share, Wh.
    #[inline]
    pub fn add(&mut self, units: &[melv_unit::BatteryUnit], f: &StepFlows) -> f64 {
        let mut charge_wh = 0.0;
        for (u, prev) in units.iter().zip(self.prev_ac_in_wh.iter_mut()) {
            let now = u.energy().ac_in_wh;
            charge_wh += now - *prev;
            *prev = now;
        }
        let h = f.dt_s / 3600.0;
        let pv_used = f.pv_w - f.pv_curtailed_w;
        let load_served = f.load_w - f.load_unserved_w;
        let surplus_wh = (pv_used - load_served).max(0.0) * h;
        // 1 mWh per step of rounding is not a purchase.
        let from_grid = charge_wh - surplus_wh;
        self.extremes(units);
        if from_grid > 1e-3 {
            self.grid_charge_wh += from_grid;
            from_grid
        } else {
            0.0
        }
    }
}

impl Accumulator {
    /// AC closure, kWh (see the module doc).
    pub fn balance_error_kwh(&self) -> f64 {
        let left = (self.pv_wh - self.pv_curtailed_wh) + self.import_wh + self.discharge_wh;
        let right = (self.load_wh - self.load_unserved_wh) + self.export_wh + self.charge_wh;
        (left - right) / 1000.0
    }

    /// Ratios guarded against empty denominators (a run without PV has no self-consumption to speak of).
    pub fn ratios(&self) -> (f64, f64, f64) {
        let pv_used = self.pv_wh - self.pv_curtailed_wh;
        let sc = if pv_used > 0.0 {
            (pv_used - self.export_wh) / pv_used
        } else {
            0.0
        };
        let ss = if self.load_wh > 0.0 {
            1.0 - self.import_wh / self.load_wh
        } else {
            0.0
        };
        let ss0 = if self.load_wh > 0.0 {
            1.0 - self.import_without_battery_wh / self.load_wh
        } else {
            0.0
        };
        (sc, ss, ss0)
    }
}

/// Fixed-width time bins of the run for the report (15 min, or the step when it is longer).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Series {
    pub start_utc_s: i64,
    pub bin_s: i64,
    /// Mean powers per bin, W.
    pub load_w: Vec<f32>,
    pub pv_w: Vec<f32>,
    pub grid_w: Vec<f32>,
    pub battery_w: Vec<f32>,
    /// Mean SOC per bin, 0..=1.
    pub soc: Vec<f32>,
    /// Seconds islanded per bin.
    pub islanded_s: Vec<f32>,
    #[serde(skip)]
    acc: [f64; 7],
}

impl Series {
    pub fn new(start_utc_s: i64, step_s: f64, total_s: f64) -> Self {
        let bin_s = (step_s as i64).max(900);
        let n = (total_s / bin_s as f64).ceil() as usize;
        let mut s = Series {
            start_utc_s,
            bin_s,
            ..Default::default()
        };
        for v in [
            &mut s.load_w,
            &mut s.pv_w,
            &mut s.grid_w,
            &mut s.battery_w,
            &mut s.soc,
            &mut s.islanded_s,
        ] {
            v.reserve(n);
        }
        s
    }

    /// Add a step that starts at `t_utc_s`; a step never straddles bins because bins are whole
    /// multiples of the step when the step divides 900 s, and equal to it otherwise; a step that does
    /// straddle is credited to the bin it starts in.
    #[inline]
    pub fn add(&mut self, t_utc_s: f64, f: &StepFlows, islanded: bool) {
        let bin = ((t_utc_s - self.start_utc_s as f64) / self.bin_s as f64) as usize;
        while self.load_w.len() < bin {
            self.flush();
        }
        let w = f.dt_s;
        self.acc[0] += f.load_w * w;
        self.acc[1] += f.pv_w * w;
        self.acc[2] += f.grid_w * w;
        self.acc[3] += f.battery_w * w;
        self.acc[4] += f.soc * w;
        self.acc[5] += if islanded { w } else { 0.0 };
        self.acc[6] += w;
    }

    fn flush(&mut self) {
        let w = if self.acc[6] > 0.0 { self.acc[6] } else { 1.0 };
        let last_soc = self.soc.last().copied().unwrap_or(0.0);
        self.load_w.push((self.acc[0] / w) as f32);
        self.pv_w.push((self.acc[1] / w) as f32);
        self.grid_w.push((self.acc[2] / w) as f32);
        self.battery_w.push((self.acc[3] / w) as f32);
        self.soc.push(if self.acc[6] > 0.0 {
            (self.acc[4] / w) as f32
        } else {
            last_soc
        });
        self.islanded_s.push(self.acc[5] as f32);
        self.acc = [0.0; 7];
    }

    /// Close the last bin.
    pub fn finish(&mut self) {
        if self.acc[6] > 0.0 {
            self.flush();
        }
    }

    pub fn len(&self) -> usize {
        self.load_w.len()
    }

    pub fn is_empty(&self) -> bool {
        self.load_w.is_empty()
    }
}

/// Counts of rising edges per code, in code order.
pub fn count_alerts(edges: &[AlertEdge]) -> Vec<AlertCount> {
    let mut counts = [0u64; 256];
    for e in edges.iter().filter(|e| e.raised) {
        counts[e.code as usize] += 1;
    }
    AlertCode::all()
        .filter(|c| counts[c.get() as usize] > 0)
        .map(|c| AlertCount {
            code: c.get(),
            name: c.info().issue.to_string(),
            count: counts[c.get() as usize],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flows(load: f64, pv: f64, batt: f64) -> StepFlows {
        let grid = load - pv - batt;
        StepFlows {
            dt_s: 3600.0,
            load_w: load,
            pv_w: pv,
            battery_w: batt,
            battery_discharge_w: batt.max(0.0),
            battery_charge_w: (-batt).max(0.0),
            grid_w: grid,
            import_price: 0.3,
            export_price: 0.1,
            ..Default::default()
        }
    }

    /// Sum the steps (load, pv, battery) and compare (import, export, cost, cost without, error) in kWh.
    fn check(steps: &[(f64, f64, f64)], expected: (f64, f64, f64, f64)) {
        let mut a = Accumulator::default();
        for &(l, p, b) in steps {
            a.add(&flows(l, p, b), false);
        }
        let got = (
            a.import_wh / 1000.0,
            a.export_wh / 1000.0,
            a.cost,
            a.cost_without_battery,
        );
        let close = |x: f64, y: f64| (x - y).abs() < 1e-9;
        assert!(
            close(got.0, expected.0)
                && close(got.1, expected.1)
                && close(got.2, expected.2)
                && close(got.3, expected.3),
            "{steps:?}: {got:?}"
        );
        assert!(a.balance_error_kwh().abs() < 1e-12);
    }

    #[test]
    fn balance_and_costs() {
        check(&[(1000.0, 0.0, 0.0)], (1.0, 0.0, 0.3, 0.3));
        check(&[(1000.0, 0.0, 1000.0)], (0.0, 0.0, 0.0, 0.3));
        check(&[(0.0, 3000.0, -2000.0)], (0.0, 1.0, -0.1, -0.3));
        check(
            &[(500.0, 3000.0, -2000.0), (1000.0, 0.0, 900.0)],
            (0.1, 0.5, 0.03 - 0.05, 0.3 - 0.25),
        );
    }

    /// (load, pv, pv limit, charge, discharge, connection) -> (grid, curtailed, unserved).
    fn check_balance(i: (f64, f64, Option<f64>, f64, f64, Connection), want: (f64, f64, f64)) {
        let f = StepFlows::balance(60.0, i.0, i.1, i.2, i.3, i.4, i.5);
        assert_eq!(
            (f.grid_w, f.pv_curtailed_w, f.load_unserved_w),
            want,
            "{i:?}"
        );
        let closes = (f.pv_w - f.pv_curtailed_w) + f.grid_w + f.battery_discharge_w
            - (f.load_w - f.load_unserved_w + f.battery_charge_w);
        assert!(closes.abs() < 1e-9, "{i:?}: {closes}");
    }

    #[test]
    fn step_balance_cases() {
        use Connection::*;
        check_balance((500.0, 0.0, None, 0.0, 0.0, OnGrid), (500.0, 0.0, 0.0));
        check_balance(
            (500.0, 3000.0, None, 2000.0, 0.0, OnGrid),
            (-500.0, 0.0, 0.0),
        );
        check_balance(
            (500.0, 3000.0, Some(2500.0), 2000.0, 0.0, OnGrid),
            (0.0, 500.0, 0.0),
        ); // export limit
        check_balance((500.0, 0.0, None, 0.0, 500.0, OffGrid), (0.0, 0.0, 0.0)); // islanded, covered
        check_balance((800.0, 0.0, None, 0.0, 500.0, OffGrid), (0.0, 0.0, 300.0)); // short of power
        check_balance(
            (500.0, 3000.0, None, 1000.0, 0.0, OffGrid),
            (0.0, 1500.0, 0.0),
        ); // batteries full-ish
        check_balance((500.0, 0.0, None, 0.0, 0.0, OffGrid), (0.0, 0.0, 500.0)); // dark house
        check_balance((500.0, 0.0, None, 200.0, 0.0, OffGrid), (0.0, 0.0, 700.0));
        // a unit drawing AC off grid shows
    }

    #[test]
    fn ratios_match_definitions() {
        let mut a = Accumulator::default();
        a.add(&flows(1000.0, 3000.0, -1000.0), false); // 1 kWh export, all load from PV
        a.add(&flows(1000.0, 0.0, 500.0), false); // 0.5 kWh import
        let (sc, ss, ss0) = a.ratios();
        assert!((sc - 2.0 / 3.0).abs() < 1e-12, "{sc}");
        assert!((ss - 0.75).abs() < 1e-12, "{ss}");
        assert!((ss0 - 0.5).abs() < 1e-12, "{ss0}");
    }

    #[test]
    fn series_bins_are_means() {
        let mut s = Series::new(0, 300.0, 3600.0);
        for k in 0..6 {
            let mut f = flows(100.0 * k as f64, 0.0, 0.0);
            f.dt_s = 300.0;
            f.soc = 0.5;
            s.add(300.0 * k as f64, &f, k == 5);
        }
        s.finish();
        assert_eq!(s.bin_s, 900);
        assert_eq!(s.load_w, vec![100.0, 400.0]);
        assert_eq!(s.islanded_s, vec![0.0, 300.0]);
        assert_eq!(s.soc, vec![0.5, 0.5]);
    }

    #[test]
    fn alert_counts() {
        let e = |code, raised| AlertEdge {
            t_utc_s: 0,
            unit: Some(0),
            code,
            raised,
        };
        let c = count_alerts(&[e(2, true), e(2, false), e(2, true), e(54, true)]);
        assert_eq!(
            c.iter().map(|a| (a.code, a.count)).collect::<Vec<_>>(),
            vec![(2, 2), (54, 1)]
        );
    }
}
