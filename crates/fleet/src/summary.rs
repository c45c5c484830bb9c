//! The fleet's distributions: percentiles of the KPIs people compare sites by, from the rows.
//!
//! Percentiles use the nearest-rank method on the sorted values (no interpolation), so a percentile
//! is always the value of some site, and the same rows give the same summary whatever their order.

use crate::run::SiteRow;
use serde::Serialize;
use std::collections::BTreeMap;

/// Percentiles of one KPI over the fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Distribution {
    pub min: f64,
    pub p5: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p95: f64,
    pub max: f64,
    pub mean: f64,
}

impl Distribution {
    /// `None` for no values. NaN values (none are expected: every KPI is finite) sort last.
    pub fn of(values: &[f64]) -> Option<Distribution> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        // Nearest rank: the smallest value with at least p % of the values at or below it.
        let pct = |p: f64| v[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1];
        // Summed in index order after sorting, so the mean does not depend on arrival order.
        let mean = v.iter().sum::<f64>() / n as f64;
        Some(Distribution {
            min: v[0],
            p5: pct(5.0),
            p25: pct(25.0),
            p50: pct(50.0),
            p75: pct(75.0),
            p95: pct(95.0),
            max: v[n - 1],
            mean,
        })
    }
}

/// The KPIs whose distributions the summary and the report give: (JSON name, label, value).
pub type Metric = (&'static str, &'static str, fn(&SiteRow) -> f64);

pub const METRICS: &[Metric] = &[
    ("savings", "savings per site-year (currency)", |r| {
        r.savings / r.site_years.max(1e-12)
    }),
    ("self_sufficiency_ratio", "self-sufficiency (%)", |r| {
        r.self_sufficiency_ratio * 100.0
    }),
    (
        "equivalent_full_cycles",
        "equivalent full cycles per site-year",
        |r| r.equivalent_full_cycles / r.site_years.max(1e-12),
    ),
    ("soh_end", "state of health at the end (%)", |r| {
        r.soh_end * 100.0
    }),
    ("alerts", "alerts raised per site", |r| r.alerts as f64),
];

/// What the fleet's rows add up to (the deterministic part of `--json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetKpis {
    pub sites: u64,
    pub site_years: f64,
    /// `savings` and `equivalent_full_cycles` per site-year; `self_sufficiency_ratio` and
    /// `soh_end` in percent; `alerts` per site.
    pub distributions: BTreeMap<String, Distribution>,
    /// Sites per template.
    pub templates: BTreeMap<String, u64>,
    /// Rising edges per alert code over the whole fleet, and how many sites raised each.
    pub alert_codes: BTreeMap<u8, AlertTotal>,
    /// Currencies of the savings (a fleet mixing them sums numbers of different units; the report says so).
    pub currencies: Vec<String>,
    /// Largest |energy balance error| of any site, kWh (the books close at every site).
    pub max_energy_balance_error_kwh: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct AlertTotal {
    pub edges: u64,
    pub sites: u64,
}

/// Parses `alert_codes` (`"4:1 54:2"`) back into (code, count) pairs; malformed parts are skipped
/// (the field is written by [`SiteRow::new`] only).
pub fn parse_codes(s: &str) -> impl Iterator<Item = (u8, u64)> + '_ {
    s.split_whitespace().filter_map(|p| {
        let (c, n) = p.split_once(':')?;
        Some((c.parse().ok()?, n.parse().ok()?))
    })
}

impl FleetKpis {
    /// The summary of `rows` (sorted by site or not: the result is the same).
    pub fn of(rows: &[SiteRow]) -> FleetKpis {
        let mut sorted: Vec<&SiteRow> = rows.iter().collect();
        sorted.sort_by_key(|r| r.site);
        let mut distributions = BTreeMap::new();
        for (name, _, f) in METRICS {
            let v: Vec<f64> = sorted.iter().map(|r| f(r)).collect();
            if let Some(d) = Distribution::of(&v) {
                distributions.insert(name.to_string(), d);
            }
        }
        let mut templates = BTreeMap::new();
        let mut alert_codes: BTreeMap<u8, AlertTotal> = BTreeMap::new();
        let mut currencies: Vec<String> = Vec::new();
        for r in &sorted {
            *templates.entry(r.template.clone()).or_insert(0) += 1;
            for (code, n) in parse_codes(&r.alert_codes) {
                let t = alert_codes.entry(code).or_default();
                t.edges += n;
                t.sites += 1;
            }
            if !currencies.contains(&r.currency) {
                currencies.push(r.currency.clone());
            }
        }
        currencies.sort();
        FleetKpis {
            sites: sorted.len() as u64,
            site_years: sorted.iter().map(|r| r.site_years).sum(),
            distributions,
            templates,
            alert_codes,
            currencies,
            max_energy_balance_error_kwh: sorted
                .iter()
                .map(|r| r.energy_balance_error_kwh.abs())
                .fold(0.0, f64::max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let d = Distribution::of(&v).unwrap();
        assert_eq!((d.min, d.p5, d.p25, d.p50), (1.0, 5.0, 25.0, 50.0));
        assert_eq!((d.p75, d.p95, d.max, d.mean), (75.0, 95.0, 100.0, 50.5));
        let d = Distribution::of(&[3.0]).unwrap();
        assert_eq!((d.min, d.p5, d.p95, d.max), (3.0, 3.0, 3.0, 3.0));
        assert_eq!(Distribution::of(&[]), None);
        // Order does not matter.
        let mut w = v.clone();
        w.reverse();
        assert_eq!(Distribution::of(&w), Distribution::of(&v));
    }

    #[test]
    fn alert_codes_round_trip() {
        let v: Vec<_> = parse_codes("4:1 54:22").collect();
        assert_eq!(v, vec![(4, 1), (54, 22)]);
        assert_eq!(parse_codes("").count(), 0);
    }
}
