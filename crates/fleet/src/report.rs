//! The fleet report: one standalone HTML file with the fleet's numbers and a histogram per KPI,
//! drawn as inline SVG with plotters' SVG backend (as `melv simulate --report` draws its charts:
//! no script, no external file).

use crate::run::SiteRow;
use crate::summary::{FleetKpis, METRICS};
use plotters::prelude::*;
use std::fmt::Write;

/// Bins of each histogram.
const BINS: usize = 30;

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Counts of `v` in `BINS` equal bins over `[lo, hi]`; the bin width is returned with them.
fn bins(v: &[f64], lo: f64, hi: f64) -> (Vec<u64>, f64) {
    let w = ((hi - lo) / BINS as f64).max(1e-9);
    let mut counts = vec![0u64; BINS];
    for x in v.iter().filter(|x| x.is_finite()) {
        let i = (((x - lo) / w).floor().max(0.0) as usize).min(BINS - 1);
        counts[i] += 1;
    }
    (counts, w)
}

/// One histogram as an SVG string.
fn histogram(label: &str, v: &[f64]) -> Result<String, String> {
    let lo = v
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f64::INFINITY, f64::min);
    let hi = v
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() {
        (lo, hi.max(lo + 1e-6))
    } else {
        (0.0, 1.0)
    };
    let (counts, w) = bins(v, lo, hi);
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.1;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (640, 300)).into_drawing_area();
        let draw = || -> Result<(), Box<dyn std::error::Error>> {
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(label, ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(50)
                .build_cartesian_2d(lo..lo + w * BINS as f64, 0.0..top)?;
            chart.configure_mesh().y_desc("sites").draw()?;
            chart.draw_series(counts.iter().enumerate().map(|(i, c)| {
                let x0 = lo + i as f64 * w;
                Rectangle::new(
                    [(x0, 0.0), (x0 + w, *c as f64)],
                    RGBColor(0, 114, 178).filled(),
                )
            }))?;
            root.present()?;
            Ok(())
        };
        draw().map_err(|e| format!("report: cannot draw {label}: {e}"))?;
    }
    Ok(out)
}

/// The report of a fleet run: `title`, the rows (any order), their summary, and the run's timing
/// line (wall and CPU time: the caller's, since the report's numbers must not depend on them).
pub fn render(
    title: &str,
    rows: &[SiteRow],
    k: &FleetKpis,
    timing: &str,
) -> Result<String, String> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;max-width:980px;margin:auto}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}\
         </style></head><body><h1>{t}</h1><p>{} sites, {:.1} site-years. {}</p>",
        k.sites,
        k.site_years,
        esc(timing),
        t = esc(title)
    );
    if k.currencies.len() > 1 {
        let _ = write!(
            h,
            "<p><b>Savings are in several currencies ({}) and are not converted.</b></p>",
            esc(&k.currencies.join(", "))
        );
    }
    h.push_str("<h2>Distributions</h2><table><tr><th>KPI</th><th>min</th><th>p5</th><th>p25</th><th>median</th><th>p75</th><th>p95</th><th>max</th><th>mean</th></tr>");
    for (name, label, _) in METRICS {
        if let Some(d) = k.distributions.get(*name) {
            let _ = write!(
                h,
                "<tr><th>{}</th><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>",
                esc(label), d.min, d.p5, d.p25, d.p50, d.p75, d.p95, d.max, d.mean
            );
        }
    }
    h.push_str("</table>");
    for (_, label, f) in METRICS {
        let v: Vec<f64> = rows.iter().map(f).collect();
        h.push_str(&histogram(label, &v)?);
    }
    h.push_str("<h2>Templates</h2><table><tr><th>template</th><th>sites</th></tr>");
    for (t, n) in &k.templates {
        let _ = write!(h, "<tr><th>{}</th><td>{n}</td></tr>", esc(t));
    }
    h.push_str("</table><h2>Alerts</h2><table><tr><th>code</th><th>alert</th><th>edges</th><th>sites</th></tr>");
    for (code, t) in &k.alert_codes {
        let name = melv_core::AlertCode::try_from(*code)
            .ok()
            .map(|c| c.info().issue.to_string())
            .unwrap_or_default();
        let _ = write!(
            h,
            "<tr><td>{code}</td><td style=\"text-align:left\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&name),
            t.edges,
            t.sites
        );
    }
    let _ = write!(
        h,
        "</table><p>Largest energy-balance error of any site: {:.3e} kWh.</p></body></html>",
        k.max_energy_balance_error_kwh
    );
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_count_every_value_once() {
        let v: Vec<f64> = (0..300).map(|i| i as f64 / 10.0).collect();
        let (c, w) = bins(&v, 0.0, 29.9);
        assert_eq!(c.iter().sum::<u64>(), 300);
        assert!((w - 29.9 / 30.0).abs() < 1e-12);
        // The maximum lands in the last bin, not past it.
        assert!(c[BINS - 1] > 0);
    }
}
