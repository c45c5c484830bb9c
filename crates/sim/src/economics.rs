//! Is the battery worth it: cash flows over the run's years, NPV, payback, IRR and LCOS.
//!
//! Inputs are the `[economics]` table (`melv_scenario::economics`, documented defaults) and the
//! per-year KPIs of the run. Year `t` (1-based) of the run is year `t` of the cash flow; the
//! investment is at `t = 0`. Definitions (docs/simulator.md, "Economics"):
//! * savings_t = (import cost without - with battery) x (1 + import escalation)^(t-1)
//!   - (export revenue without - with battery) x (1 + export escalation)^(t-1);
//! * net_t = savings_t - maintenance - replacement_t (the replacement is booked once, in the first
//!   year whose weakest-cell SOH ends below `replace_at_soh`);
//! * NPV = -investment + sum net_t / (1 + r)^t; payback year = the first t whose cumulative
//!   undiscounted cash flow (investment included) is >= 0; IRR = the r that makes NPV zero;
//! * LCOS = (investment + sum (maintenance + replacement_t + charging cost_t) / (1 + r)^t) /
//!   (sum discharge_t / (1 + r)^t), per kWh discharged (AC), with the charging cost the grid charge
//!   at the import price plus the PV charge at the export price it would have fetched, escalated
//!   like the prices (Schmidt et al., "Projecting the future levelized cost of electricity storage
//!   technologies", Joule 3 (2019) 81-100, eq. 1).

use crate::years::YearKpis;
use melv_scenario::economics::EconomicsConfig;
use serde::Serialize;

/// One year of the cash flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CashFlow {
    pub year: u32,
    pub savings: f64,
    pub maintenance: f64,
    pub replacement: f64,
    pub net: f64,
    /// Undiscounted, the investment included.
    pub cumulative: f64,
    pub discounted_cumulative: f64,
}

/// The run's economics.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Economics {
    /// The site has no `[economics]` table: every input is its documented default.
    pub defaults_used: bool,
    pub inputs: Option<EconomicsConfig>,
    pub years: u32,
    /// Batteries x unit price + installation, at t = 0.
    pub investment: f64,
    pub npv: f64,
    pub payback_year: Option<u32>,
    pub irr: Option<f64>,
    /// Currency per kWh discharged (AC); `null` without discharge.
    pub lcos: Option<f64>,
    pub replacement_year: Option<u32>,
    pub cash_flows: Vec<CashFlow>,
}

/// Net present value of `flows` (index = year, 0 = now) at `r`.
pub fn npv(r: f64, flows: &[f64]) -> f64 {
    flows
        .iter()
        .enumerate()
        .map(|(t, c)| c / (1.0 + r).powi(t as i32))
        .sum()
}

/// The internal rate of return: the rate in (-0.99, 10] at which `npv` is zero, by bisection;
/// `None` where NPV does not change sign over that range (no investment, or never paid back even at
/// a -99 % rate).
pub fn irr(flows: &[f64]) -> Option<f64> {
    let (mut lo, mut hi) = (-0.99, 10.0);
    let (f_lo, f_hi) = (npv(lo, flows), npv(hi, flows));
    if !(f_lo.is_finite() && f_hi.is_finite()) || f_lo.signum() == f_hi.signum() {
        return None;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        let f = npv(mid, flows);
        if f.signum() == f_lo.signum() {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-10 {
            break;
        }
    }
    Some(0.5 * (lo + hi))
}

/// Evaluate the cash flows of `years` for `units` batteries.
pub fn evaluate(cfg: &EconomicsConfig, given: bool, units: usize, years: &[YearKpis]) -> Economics {
    let r = cfg.discount_rate;
    let investment = cfg.battery_price * units as f64 + cfg.installation;
    let mut flows = vec![-investment];
    let mut out = Economics {
        defaults_used: !given,
        inputs: Some(cfg.clone()),
        years: years.len() as u32,
        investment,
        ..Default::default()
    };
    let (mut cum, mut dcum) = (-investment, -investment);
    let (mut cost_pv, mut energy_pv) = (investment, 0.0);
    for (i, y) in years.iter().enumerate() {
        let t = i as i32 + 1;
        let (ei, ee) = (
            (1.0 + cfg.import_escalation).powi(t - 1),
            (1.0 + cfg.export_escalation).powi(t - 1),
        );
        let savings = (y.import_cost_without_battery - y.import_cost) * ei
            - (y.export_revenue_without_battery - y.export_revenue) * ee;
        let replacement = match cfg.replacement_cost {
            Some(c) if out.replacement_year.is_none() && y.soh_end < cfg.replace_at_soh => {
                out.replacement_year = Some(y.year);
                c
            }
            _ => 0.0,
        };
        let net = savings - cfg.maintenance - replacement;
        let d = (1.0 + r).powi(t);
        cum += net;
        dcum += net / d;
        if cum >= 0.0 && out.payback_year.is_none() {
            out.payback_year = Some(y.year);
        }
        let charging = y.charge_cost_grid * ei + y.charge_value_pv * ee;
        cost_pv += (cfg.maintenance + replacement + charging) / d;
        energy_pv += y.battery_discharge_kwh / d;
        flows.push(net);
        out.cash_flows.push(CashFlow {
            year: y.year,
            savings,
            maintenance: cfg.maintenance,
            replacement,
            net,
            cumulative: cum,
            discounted_cumulative: dcum,
        });
    }
    out.npv = npv(r, &flows);
    out.irr = irr(&flows);
    out.lcos = (energy_pv > 0.0).then(|| cost_pv / energy_pv);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn year(n: u32, saving: f64, discharge: f64, soh: f64) -> YearKpis {
        YearKpis {
            year: n,
            start_utc_s: 0,
            days: 365.0,
            pv_kwh: 0.0,
            load_kwh: 0.0,
            grid_import_kwh: 0.0,
            grid_export_kwh: 0.0,
            battery_charge_kwh: 0.0,
            battery_discharge_kwh: discharge,
            battery_charge_from_grid_kwh: 0.0,
            self_consumption_ratio: 0.0,
            self_sufficiency_ratio: 0.0,
            cost_without_battery: 0.0,
            cost_with_battery: 0.0,
            savings: saving,
            import_cost: 1000.0 - saving,
            export_revenue: 0.0,
            import_cost_without_battery: 1000.0,
            export_revenue_without_battery: 0.0,
            charge_cost_grid: 0.0,
            charge_value_pv: 10.0,
            equivalent_full_cycles: 0.0,
            equivalent_full_cycles_to_date: 0.0,
            battery_discharge_kwh_to_date: 0.0,
            soh_end: soh,
            soh_mean_cell_end: soh,
            capacity_kwh_end: 0.0,
        }
    }

    fn cfg() -> EconomicsConfig {
        EconomicsConfig {
            battery_price: 1000.0,
            installation: 0.0,
            maintenance: 0.0,
            discount_rate: 0.1,
            import_escalation: 0.0,
            export_escalation: 0.0,
            replacement_cost: None,
            replace_at_soh: 0.7,
        }
    }

    #[test]
    fn npv_payback_irr_and_lcos_follow_their_definitions() {
        // 1000 invested, 300 a year for 5 years: the textbook annuity.
        let ys: Vec<_> = (1..=5).map(|n| year(n, 300.0, 100.0, 0.9)).collect();
        let e = evaluate(&cfg(), true, 1, &ys);
        let annuity = (1.0 - 1.1f64.powi(-5)) / 0.1; // 3.7908
        assert!(
            (e.npv - (300.0 * annuity - 1000.0)).abs() < 1e-9,
            "{}",
            e.npv
        );
        assert_eq!(e.payback_year, Some(4)); // -1000 + 4 x 300 >= 0 first in year 4
        let irr = e.irr.unwrap();
        assert!(npv(irr, &[-1000.0, 300.0, 300.0, 300.0, 300.0, 300.0]).abs() < 1e-6);
        assert!((irr - 0.1524).abs() < 1e-4, "{irr}"); // 15.24 % (annuity tables)
                                                       // LCOS: (1000 + 10 x annuity) / (100 x annuity) per kWh.
        let want = (1000.0 + 10.0 * annuity) / (100.0 * annuity);
        assert!((e.lcos.unwrap() - want).abs() < 1e-9);
        assert!(!e.defaults_used);
    }

    #[test]
    fn escalation_replacement_and_no_payback() {
        let mut c = cfg();
        c.import_escalation = 0.5;
        c.replacement_cost = Some(500.0);
        c.maintenance = 20.0;
        let ys = vec![
            year(1, 100.0, 10.0, 0.8),
            year(2, 100.0, 10.0, 0.69),
            year(3, 100.0, 10.0, 0.6),
        ];
        let e = evaluate(&c, false, 2, &ys);
        assert_eq!(e.investment, 2000.0);
        let s: Vec<f64> = e.cash_flows.iter().map(|f| f.savings).collect();
        assert_eq!(s, vec![100.0, 150.0, 225.0]);
        assert_eq!(e.replacement_year, Some(2));
        let r: Vec<f64> = e.cash_flows.iter().map(|f| f.replacement).collect();
        assert_eq!(r, vec![0.0, 500.0, 0.0]);
        assert_eq!(
            e.cash_flows[2].cumulative,
            -2000.0 + 80.0 + (130.0 - 500.0) + 205.0
        );
        assert_eq!(e.payback_year, None);
        assert!(e.defaults_used);
        // Never paid back even without discounting: the IRR is below -99 % or absent, not invented.
        assert!(e.irr.is_none_or(|r| r < 0.0));
    }
}
