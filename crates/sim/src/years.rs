//! A run over years: one KPI record per run year, and the lifetime summary.
//!
//! The runner keeps one [`Accumulator`] per year beside the run's; at each year's end it reads the
//! units' true state (SOH, EFC, capacity) and closes the year here. Definitions are one sentence
//! each in docs/simulator.md ("Over the years").

use crate::kpi::Accumulator;
use melv_unit::BatteryUnit;
use serde::Serialize;

/// Alert 57 (low SOH) is raised below 0.70 by the firmware (`melv-bms` protections); 0.80 is the
/// usual warranty end of life of home batteries.
pub const SOH_MILESTONES: [f64; 2] = [0.80, 0.70];

/// The KPIs of one run year.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct YearKpis {
    /// 1-based run year.
    pub year: u32,
    pub start_utc_s: i64,
    pub days: f64,
    pub pv_kwh: f64,
    pub load_kwh: f64,
    pub grid_import_kwh: f64,
    pub grid_export_kwh: f64,
    pub battery_charge_kwh: f64,
    pub battery_discharge_kwh: f64,
    pub battery_charge_from_grid_kwh: f64,
    pub self_consumption_ratio: f64,
    pub self_sufficiency_ratio: f64,
    /// At the tariff's own prices (no escalation; `economics` escalates).
    pub cost_without_battery: f64,
    pub cost_with_battery: f64,
    pub savings: f64,
    /// The parts of the costs, for escalation: import cost and export revenue with and without the
    /// batteries.
    pub import_cost: f64,
    pub export_revenue: f64,
    pub import_cost_without_battery: f64,
    pub export_revenue_without_battery: f64,
    /// What the charged energy was worth: grid charge at the import price, PV charge at the export
    /// price it would have fetched.
    pub charge_cost_grid: f64,
    pub charge_value_pv: f64,
    /// Equivalent full cycles in the year and from the start (mean over units).
    pub equivalent_full_cycles: f64,
    pub equivalent_full_cycles_to_date: f64,
    /// AC discharge from the start, kWh.
    pub battery_discharge_kwh_to_date: f64,
    /// At the year's end: weakest-cell SOH (mean over units), mean-cell SOH, capacity (kWh).
    pub soh_end: f64,
    pub soh_mean_cell_end: f64,
    pub capacity_kwh_end: f64,
}

/// The lifetime summary of a run over years.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Lifetime {
    pub years: u32,
    /// The run year (1-based) in which the weakest-cell SOH (mean over units) first fell below
    /// 80 % and 70 % (alert 57's threshold); `null` if it did not within the run.
    pub soh_80_year: Option<u32>,
    pub soh_70_year: Option<u32>,
    pub battery_discharge_kwh: f64,
    pub equivalent_full_cycles: f64,
}

/// The site's SOH: each unit's weakest cell (its usable capacity relative to new), mean over units.
pub fn soh_weakest(units: &[BatteryUnit]) -> f64 {
    let n = units.len().max(1) as f64;
    units.iter().map(|u| u.truth().soh).sum::<f64>() / n
}

/// The mean SOH of every cell of every unit.
pub fn soh_mean_cell(units: &[BatteryUnit]) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for u in units {
        for c in u.truth().cell_soh {
            s += c;
            n += 1;
        }
    }
    if n > 0 {
        s / n as f64
    } else {
        0.0
    }
}

/// Equivalent full cycles of the site: each unit's cell charge throughput (Ah in + Ah out) over
/// twice its cells' nominal capacity, mean over units (`TrueState::efc`).
pub fn efc(units: &[BatteryUnit]) -> f64 {
    let n = units.len().max(1) as f64;
    units.iter().map(|u| u.truth().efc).sum::<f64>() / n
}

/// The usable capacity now, kWh: each unit's weakest cell's capacity at the nominal pack voltage.
pub fn capacity_kwh(units: &[BatteryUnit]) -> f64 {
    units
        .iter()
        .map(|u| u.truth().capacity_ah * melv_core::spec::NOMINAL_DC_V / 1000.0)
        .sum()
}

/// Closes years as the run crosses their ends.
#[derive(Debug, Clone, Default)]
pub struct YearBook {
    pub years: Vec<YearKpis>,
    pub acc: Accumulator,
    efc_start: f64,
    discharge_to_date_wh: f64,
    start_utc_s: i64,
    pub lifetime: Lifetime,
}

impl YearBook {
    pub fn new(start_utc_s: i64, units: &[BatteryUnit]) -> Self {
        Self {
            efc_start: efc(units),
            start_utc_s,
            ..Default::default()
        }
    }

    /// A daily look at the SOH for the milestones (`year` is the 0-based run year).
    pub fn check_soh(&mut self, year: usize, units: &[BatteryUnit]) {
        let soh = soh_weakest(units);
        let y = year as u32 + 1;
        if soh < SOH_MILESTONES[0] && self.lifetime.soh_80_year.is_none() {
            self.lifetime.soh_80_year = Some(y);
        }
        if soh < SOH_MILESTONES[1] && self.lifetime.soh_70_year.is_none() {
            self.lifetime.soh_70_year = Some(y);
        }
    }

    /// Close the year that ends now (at `end_utc_s`), and start the next one.
    pub fn close(&mut self, end_utc_s: i64, units: &[BatteryUnit]) {
        let a = std::mem::take(&mut self.acc);
        let (sc, ss, _) = a.ratios();
        let efc_now = efc(units);
        self.discharge_to_date_wh += a.discharge_wh;
        self.check_soh(self.years.len(), units);
        let y = YearKpis {
            year: self.years.len() as u32 + 1,
            start_utc_s: self.start_utc_s,
            days: (end_utc_s - self.start_utc_s) as f64 / 86_400.0,
            pv_kwh: a.pv_wh / 1000.0,
            load_kwh: a.load_wh / 1000.0,
            grid_import_kwh: a.import_wh / 1000.0,
            grid_export_kwh: a.export_wh / 1000.0,
            battery_charge_kwh: a.charge_wh / 1000.0,
            battery_discharge_kwh: a.discharge_wh / 1000.0,
            battery_charge_from_grid_kwh: a.grid_charge_wh / 1000.0,
            self_consumption_ratio: sc,
            self_sufficiency_ratio: ss,
            cost_without_battery: a.cost_without_battery,
            cost_with_battery: a.cost,
            savings: a.cost_without_battery - a.cost,
            import_cost: a.import_cost,
            export_revenue: a.export_revenue,
            import_cost_without_battery: a.import_cost_without_battery,
            export_revenue_without_battery: a.export_revenue_without_battery,
            charge_cost_grid: a.charge_cost_grid,
            charge_value_pv: a.charge_value_pv,
            equivalent_full_cycles: efc_now - self.efc_start,
            equivalent_full_cycles_to_date: efc_now,
            battery_discharge_kwh_to_date: self.discharge_to_date_wh / 1000.0,
            soh_end: soh_weakest(units),
            soh_mean_cell_end: soh_mean_cell(units),
            capacity_kwh_end: capacity_kwh(units),
        };
        self.efc_start = efc_now;
        self.start_utc_s = end_utc_s;
        self.lifetime.years = y.year;
        self.lifetime.battery_discharge_kwh = y.battery_discharge_kwh_to_date;
        self.lifetime.equivalent_full_cycles = efc_now;
        self.years.push(y);
    }
}
