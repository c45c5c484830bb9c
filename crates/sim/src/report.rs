//! The standalone HTML report: SVG charts drawn with plotters and inlined, a KPI table and the energy
//! balance check. No JavaScript, no external CSS or fonts: the file opens anywhere, offline, and can
//! be mailed to an owner.

use crate::kpi::{AlertEdge, Kpis, Series};
use plotters::prelude::*;
use std::fmt::Write as _;

/// What a finished run hands to the report (and to `--json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SimResult {
    pub title: String,
    pub kpis: Kpis,
    #[serde(skip)]
    pub series: Series,
    pub alert_edges: Vec<AlertEdge>,
    /// Offset of the local standard time used on the plots' axes, s east of UTC.
    #[serde(skip)]
    pub display_offset_s: i64,
    /// First day (1-based) of the week shown in the power-flow chart.
    #[serde(skip)]
    pub report_week_day: u32,
}

/// A chart that could not be drawn (plotters' backend error, as text).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("report: cannot draw the {chart} chart: {reason}")]
pub struct ReportError {
    pub chart: &'static str,
    pub reason: String,
}

/// Axis labels without decimals (days, hours, percent).
fn int(v: &f64) -> String {
    format!("{v:.0}")
}

type Draw = Result<(), Box<dyn std::error::Error>>;

pub(crate) fn svg(
    chart: &'static str,
    size: (u32, u32),
    f: impl FnOnce(DrawingArea<SVGBackend, plotters::coord::Shift>) -> Draw,
) -> Result<String, ReportError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        f(root).map_err(|e| ReportError {
            chart,
            reason: e.to_string(),
        })?;
    }
    Ok(out)
}

// Colours shared by every chart so that a flow looks the same everywhere.
const PV: RGBColor = RGBColor(230, 159, 0);
const LOAD: RGBColor = RGBColor(40, 40, 40);
const IMPORT: RGBColor = RGBColor(213, 94, 0);
const EXPORT: RGBColor = RGBColor(0, 158, 115);
const CHARGE: RGBColor = RGBColor(86, 180, 233);
const DISCHARGE: RGBColor = RGBColor(0, 114, 178);

/// Daily sums, kWh: (pv, load, import, export, charge, discharge).
fn daily(s: &Series, offset_s: i64) -> Vec<[f64; 6]> {
    let mut days: Vec<[f64; 6]> = Vec::new();
    let h = s.bin_s as f64 / 3600.0 / 1000.0;
    for i in 0..s.len() {
        let t = s.start_utc_s + offset_s + i as i64 * s.bin_s;
        let d = ((t - (s.start_utc_s + offset_s).div_euclid(86_400) * 86_400) / 86_400) as usize;
        if days.len() <= d {
            days.resize(d + 1, [0.0; 6]);
        }
        let (g, b) = (s.grid_w[i] as f64, s.battery_w[i] as f64);
        let row = &mut days[d];
        row[0] += s.pv_w[i] as f64 * h;
        row[1] += s.load_w[i] as f64 * h;
        row[2] += g.max(0.0) * h;
        row[3] += (-g).max(0.0) * h;
        row[4] += (-b).max(0.0) * h;
        row[5] += b.max(0.0) * h;
    }
    days
}

fn daily_chart(s: &Series, offset_s: i64) -> Result<String, ReportError> {
    let days = daily(s, offset_s);
    // Above zero: where the load's energy came from (PV directly, battery, grid), stacked, so the top
    // edge is the load. Below zero: where PV beyond the load went (battery charge, export).
    let up: Vec<[f64; 3]> = days
        .iter()
        .map(|d| {
            let (load, imp, dis) = (d[1], d[2], d[5]);
            [(load - imp - dis).max(0.0), dis, imp]
        })
        .collect();
    let down: Vec<[f64; 2]> = days.iter().map(|d| [d[4], d[3]]).collect();
    let hi = up
        .iter()
        .map(|u| u.iter().sum::<f64>())
        .fold(1.0f64, f64::max)
        * 1.1;
    let lo = down
        .iter()
        .map(|d| d.iter().sum::<f64>())
        .fold(1.0f64, f64::max)
        * 1.1;
    let n = days.len().max(1) as f64;
    svg("daily energy", (1300, 460), |root| {
        root.fill(&WHITE)?;
        let mut c = ChartBuilder::on(&root)
            .caption(
                "Daily energy (kWh): load supplied by PV, battery, grid (up); PV surplus to battery, grid (down)",
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..n, -lo..hi)?;
        c.configure_mesh()
            .x_desc("day of the run")
            .y_desc("kWh per day")
            .x_label_formatter(&int)
            .y_label_formatter(&int)
            .light_line_style(WHITE)
            .draw()?;
        let bands: [(&str, RGBColor, Outline, Outline); 5] = [
            ("PV to load", PV, stack(&up, 0, 1.0), stack(&up, 0, 0.0)),
            (
                "battery discharge",
                DISCHARGE,
                stack(&up, 1, 1.0),
                stack(&up, 0, 1.0),
            ),
            (
                "grid import",
                IMPORT,
                stack(&up, 2, 1.0),
                stack(&up, 1, 1.0),
            ),
            (
                "battery charge",
                CHARGE,
                stack2(&down, 0, -1.0),
                stack2(&down, 0, 0.0),
            ),
            (
                "grid export",
                EXPORT,
                stack2(&down, 1, -1.0),
                stack2(&down, 0, -1.0),
            ),
        ];
        for (name, col, top, bottom) in bands {
            let poly: Vec<(f64, f64)> = top
                .iter()
                .copied()
                .chain(bottom.iter().rev().copied())
                .collect();
            c.draw_series(std::iter::once(Polygon::new(poly, col.mix(0.85).filled())))?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], col.filled()));
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// A band's edge: (day, kWh) points.
type Outline = Vec<(f64, f64)>;

/// Step outline of the cumulative sum of `up[..=k]` per day (times `sign`; 0 gives the axis).
fn stack(up: &[[f64; 3]], k: usize, sign: f64) -> Vec<(f64, f64)> {
    up.iter()
        .enumerate()
        .flat_map(|(i, u)| {
            let v = sign * u[..=k].iter().sum::<f64>();
            [(i as f64, v), (i as f64 + 1.0, v)]
        })
        .collect()
}

fn stack2(down: &[[f64; 2]], k: usize, sign: f64) -> Vec<(f64, f64)> {
    let up: Vec<[f64; 3]> = down.iter().map(|d| [d[0], d[1], 0.0]).collect();
    stack(&up, k, sign)
}

/// Blue (empty) to yellow (full), a perceptually ordered ramp close to viridis' ends.
fn soc_colour(soc: f64) -> RGBColor {
    let x = soc.clamp(0.0, 1.0);
    let (r, g, b) = if x < 0.5 {
        let y = x * 2.0;
        (
            (68.0 + (33.0 - 68.0) * y) as u8,
            (1.0 + (145.0 - 1.0) * y) as u8,
            (84.0 + (140.0 - 84.0) * y) as u8,
        )
    } else {
        let y = (x - 0.5) * 2.0;
        (
            (33.0 + (253.0 - 33.0) * y) as u8,
            (145.0 + (231.0 - 145.0) * y) as u8,
            (140.0 + (37.0 - 140.0) * y) as u8,
        )
    };
    RGBColor(r, g, b)
}

fn soc_heatmap(s: &Series, offset_s: i64) -> Result<String, ReportError> {
    // Mean SOC per (day, local hour).
    let day0 = (s.start_utc_s + offset_s).div_euclid(86_400);
    let mut cells: Vec<[(f64, f64); 24]> = Vec::new();
    for i in 0..s.len() {
        let t = s.start_utc_s + offset_s + i as i64 * s.bin_s;
        let (d, hr) = (
            (t.div_euclid(86_400) - day0) as usize,
            (t.rem_euclid(86_400) / 3600) as usize,
        );
        if cells.len() <= d {
            cells.resize(d + 1, [(0.0, 0.0); 24]);
        }
        cells[d][hr].0 += s.soc[i] as f64;
        cells[d][hr].1 += 1.0;
    }
    let n = cells.len().max(1);
    svg("SOC heat map", (1300, 360), |root| {
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(1220);
        let mut c = ChartBuilder::on(&left)
            .caption(
                "Mean state of charge by day and hour (local standard time)",
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(0f64..n as f64, 0f64..24f64)?;
        c.configure_mesh()
            .disable_mesh()
            .x_desc("day of the run")
            .y_desc("hour")
            .x_label_formatter(&int)
            .y_label_formatter(&int)
            .y_labels(7)
            .draw()?;
        c.draw_series(cells.iter().enumerate().flat_map(|(d, hours)| {
            hours
                .iter()
                .enumerate()
                .filter(|(_, v)| v.1 > 0.0)
                .map(move |(h, v)| {
                    Rectangle::new(
                        [(d as f64, h as f64), (d as f64 + 1.0, h as f64 + 1.0)],
                        soc_colour(v.0 / v.1).filled(),
                    )
                })
        }))?;
        // Colour scale.
        let mut k = ChartBuilder::on(&right)
            .margin_top(40)
            .margin_bottom(45)
            .y_label_area_size(40)
            .build_cartesian_2d(0f64..1f64, 0f64..100f64)?;
        k.configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_desc("SOC %")
            .y_label_formatter(&int)
            .y_labels(6)
            .draw()?;
        k.draw_series((0..50).map(|i| {
            let a = i as f64 * 2.0;
            Rectangle::new([(0.0, a), (1.0, a + 2.0)], soc_colour(a / 100.0).filled())
        }))?;
        root.present()?;
        Ok(())
    })
}

fn week_chart(s: &Series, first_day: u32) -> Result<String, ReportError> {
    let per_day = (86_400 / s.bin_s.max(1)) as usize;
    let total_days = s.len() / per_day.max(1);
    let d0 = (first_day.max(1) as usize - 1).min(total_days.saturating_sub(7));
    let (a, b) = (
        (d0 * per_day).min(s.len()),
        ((d0 + 7) * per_day).min(s.len()),
    );
    let x = |i: usize| (i - a) as f64 * s.bin_s as f64 / 86_400.0 + d0 as f64 + 1.0;
    let kw = |v: &[f32]| {
        v[a..b]
            .iter()
            .map(|&w| w as f64 / 1000.0)
            .collect::<Vec<_>>()
    };
    let (load, pv, grid, batt) = (kw(&s.load_w), kw(&s.pv_w), kw(&s.grid_w), kw(&s.battery_w));
    let soc: Vec<f64> = s.soc[a..b].iter().map(|&v| v as f64).collect();
    let lo = grid.iter().chain(&batt).fold(-0.5f64, |m, &v| m.min(v)) * 1.1;
    let hi = pv
        .iter()
        .chain(&load)
        .chain(&grid)
        .chain(&batt)
        .fold(0.5f64, |m, &v| m.max(v))
        * 1.1;
    svg("week power", (1300, 460), |root| {
        root.fill(&WHITE)?;
        let mut c = ChartBuilder::on(&root)
            .caption(
                format!(
                    "Power flows, days {} to {} (kW; battery + discharging, grid + importing)",
                    d0 + 1,
                    d0 + 7
                ),
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .right_y_label_area_size(50)
            .build_cartesian_2d(d0 as f64 + 1.0..d0 as f64 + 8.0, lo..hi)?
            .set_secondary_coord(d0 as f64 + 1.0..d0 as f64 + 8.0, 0f64..100f64);
        c.configure_mesh()
            .x_desc("day of the run")
            .y_desc("kW")
            .x_label_formatter(&int)
            .light_line_style(WHITE)
            .draw()?;
        c.configure_secondary_axes()
            .y_desc("SOC %")
            .y_label_formatter(&int)
            .draw()?;
        let series: [(&str, &Vec<f64>, RGBColor); 4] = [
            ("PV", &pv, PV),
            ("load", &load, LOAD),
            ("grid", &grid, IMPORT),
            ("battery", &batt, DISCHARGE),
        ];
        for (name, v, col) in series {
            c.draw_series(LineSeries::new(
                v.iter().enumerate().map(|(i, &y)| (x(a + i), y)),
                col.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(3)));
        }
        let grey = RGBColor(150, 150, 150);
        c.draw_secondary_series(LineSeries::new(
            soc.iter().enumerate().map(|(i, &y)| (x(a + i), y * 100.0)),
            grey.stroke_width(1),
        ))?
        .label("SOC (right axis)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey.stroke_width(3)));
        c.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

fn alerts_chart(edges: &[AlertEdge], start_utc_s: i64, days: f64) -> Result<String, ReportError> {
    let mut codes: Vec<u8> = edges.iter().map(|e| e.code).collect();
    codes.sort_unstable();
    codes.dedup();
    let day = |t: i64| (t - start_utc_s) as f64 / 86_400.0 + 1.0;
    // Intervals: raised edge to the matching falling edge on the same unit (or the end of the run).
    let mut spans: Vec<(usize, f64, f64)> = Vec::new();
    for (i, e) in edges.iter().enumerate().filter(|(_, e)| e.raised) {
        let end = edges[i + 1..]
            .iter()
            .find(|f| !f.raised && f.code == e.code && f.unit == e.unit)
            .map(|f| day(f.t_utc_s))
            .unwrap_or(days + 1.0);
        let row = codes.iter().position(|&c| c == e.code).unwrap_or(0);
        spans.push((row, day(e.t_utc_s), end));
    }
    let rows = codes.len().max(1);
    svg("alerts timeline", (1300, 120 + 30 * rows as u32), |root| {
        root.fill(&WHITE)?;
        let mut c = ChartBuilder::on(&root)
            .caption(
                "Alerts raised by the units' firmware and the gateway",
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(90)
            .build_cartesian_2d(1f64..days + 1.0, 0f64..rows as f64)?;
        let labels = codes.clone();
        c.configure_mesh()
            .disable_mesh()
            .x_desc("day of the run")
            .x_label_formatter(&int)
            .y_labels(rows * 2 + 1)
            .y_label_formatter(&|y| {
                let i = y.floor() as usize;
                if (y - i as f64 - 0.5).abs() < 0.01 {
                    labels
                        .get(i)
                        .map(|c| format!("code {c}"))
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .draw()?;
        if edges.is_empty() {
            root.draw(&Text::new(
                "no alerts during the run",
                (600, 70),
                ("sans-serif", 16),
            ))?;
        }
        c.draw_series(spans.iter().map(|&(r, a, b)| {
            let b = if b - a < days / 600.0 {
                a + days / 600.0
            } else {
                b
            };
            Rectangle::new([(a, r as f64 + 0.2), (b, r as f64 + 0.8)], IMPORT.filled())
        }))?;
        root.present()?;
        Ok(())
    })
}

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn kpi_table(k: &Kpis) -> String {
    let c = &k.currency;
    let rows: Vec<(&str, String)> = vec![
        ("PV generation", format!("{:.1} kWh", k.pv_kwh)),
        ("Load", format!("{:.1} kWh", k.load_kwh)),
        ("Grid import", format!("{:.1} kWh", k.grid_import_kwh)),
        ("Grid export", format!("{:.1} kWh", k.grid_export_kwh)),
        (
            "Battery charge (AC)",
            format!("{:.1} kWh", k.battery_charge_kwh),
        ),
        (
            "Battery discharge (AC)",
            format!("{:.1} kWh", k.battery_discharge_kwh),
        ),
        ("PV curtailed", format!("{:.1} kWh", k.pv_curtailed_kwh)),
        (
            "Load not supplied",
            format!("{:.2} kWh", k.load_unserved_kwh),
        ),
        (
            "Self-consumption",
            format!("{:.1} %", k.self_consumption_ratio * 100.0),
        ),
        (
            "Self-sufficiency",
            format!(
                "{:.1} % (without battery {:.1} %)",
                k.self_sufficiency_ratio * 100.0,
                k.self_sufficiency_without_battery * 100.0
            ),
        ),
        (
            "Equivalent full cycles",
            format!("{:.1}", k.equivalent_full_cycles),
        ),
        (
            "State of health at the end",
            format!(
                "{:.2} % weakest cell, {:.2} % mean cell (BMS estimate {:.2} %)",
                k.soh_end * 100.0,
                k.soh_mean_cell_end * 100.0,
                k.soh_bms_end * 100.0
            ),
        ),
        (
            "SOC estimate error",
            format!(
                "{:.2} % RMS, {:.2} % max",
                k.soc_error.rms * 100.0,
                k.soc_error.max_abs * 100.0
            ),
        ),
        (
            "Cost without battery",
            format!("{:.2} {c}", k.cost_without_battery),
        ),
        (
            "Cost with battery",
            format!("{:.2} {c}", k.cost_with_battery),
        ),
        ("Savings", format!("{:.2} {c}", k.savings)),
        ("Tariff hours on", k.tariff_clock.clone()),
        ("Hours islanded", format!("{:.1} h", k.islanded_hours)),
        (
            "Steps",
            format!("{} of {} s ({:.1} days)", k.steps, k.step_s, k.days),
        ),
    ];
    let mut s = String::from("<table>");
    for (name, v) in rows {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(name), esc(&v));
    }
    s.push_str("</table>");
    s
}

fn balance_table(k: &Kpis) -> String {
    let left = k.pv_kwh - k.pv_curtailed_kwh + k.grid_import_kwh + k.battery_discharge_kwh;
    let right = k.load_kwh - k.load_unserved_kwh + k.grid_export_kwh + k.battery_charge_kwh;
    let ok = |e: f64| {
        if e.abs() < 1e-3 {
            "closes"
        } else {
            "DOES NOT CLOSE"
        }
    };
    format!(
        "<table><tr><th>AC sources: PV used + grid import + battery discharge</th><td>{left:.4} kWh</td></tr>\
         <tr><th>AC sinks: load served + grid export + battery charge</th><td>{right:.4} kWh</td></tr>\
         <tr><th>AC balance error</th><td>{:.2e} kWh ({})</td></tr>\
         <tr><th>Battery losses (units' ledgers)</th><td>{:.2} kWh</td></tr>\
         <tr><th>DC balance error: AC in - AC out - losses - stored energy change</th><td>{:.2e} kWh ({})</td></tr>\
         <tr><th>Battery charge drawn from the grid (PV surplus excluded)</th><td>{:.2} kWh</td></tr>\
         <tr><th>True cell voltage over the run, min / max</th><td>{:.3} / {:.3} V</td></tr></table>",
        k.energy_balance_error_kwh,
        ok(k.energy_balance_error_kwh),
        k.battery_losses_kwh,
        k.dc_balance_error_kwh,
        ok(k.dc_balance_error_kwh),
        k.battery_charge_from_grid_kwh,
        k.cell_v_min,
        k.cell_v_max
    )
}

fn reasons_table(k: &Kpis) -> String {
    let mut s = String::from("<table><tr><th>gateway reason</th><th>hours</th><th>share</th></tr>");
    let total: f64 = k.reasons.iter().map(|r| r.hours).sum::<f64>().max(1e-9);
    for r in &k.reasons {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{:.1}</td><td>{:.1} %</td></tr>",
            esc(&r.reason),
            r.hours,
            r.hours / total * 100.0
        );
    }
    s.push_str("</table>");
    s
}

fn alerts_table(k: &Kpis) -> String {
    if k.alerts.is_empty() {
        return "<p>No alert was raised.</p>".into();
    }
    let mut s = String::from(
        "<table><tr><th>code</th><th>issue (manual 6.3)</th><th>times raised</th></tr>",
    );
    for a in &k.alerts {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            a.code,
            esc(&a.name),
            a.count
        );
    }
    s.push_str("</table>");
    s
}

/// The whole report as one HTML document.
pub fn render(r: &SimResult) -> Result<String, ReportError> {
    let s = &r.series;
    let mut html = String::with_capacity(2 << 20);
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>\
         body{{font-family:sans-serif;max-width:1320px;margin:20px auto;color:#222}}\
         table{{border-collapse:collapse;margin:8px 0}}th,td{{border:1px solid #ccc;padding:4px 10px;text-align:left}}\
         th{{background:#f4f4f4;font-weight:normal}}td{{font-variant-numeric:tabular-nums}}\
         .row{{display:flex;gap:30px;flex-wrap:wrap}}svg{{display:block;margin:10px 0}}</style></head><body>\
         <h1>{t}</h1><p>melv simulate: M-ELV (MS-7K-U) site simulation. Times are the profile's local standard time.</p>\
         <div class=\"row\"><div><h2>Key figures</h2>{kpi}</div><div><h2>Energy balance</h2>{bal}<h2>Alerts</h2>{al}</div><div><h2>Why the batteries did what they did</h2>{rs}</div></div>",
        t = esc(&r.title),
        kpi = kpi_table(&r.kpis),
        bal = balance_table(&r.kpis),
        al = alerts_table(&r.kpis),
        rs = reasons_table(&r.kpis),
    );
    html.push_str(&crate::report_years::section(&r.kpis)?);
    if !s.is_empty() {
        html.push_str(&daily_chart(s, r.display_offset_s)?);
        html.push_str(&soc_heatmap(s, r.display_offset_s)?);
        html.push_str(&week_chart(s, r.report_week_day)?);
    }
    html.push_str(&alerts_chart(
        &r.alert_edges,
        s.start_utc_s,
        r.kpis.days.max(1.0),
    )?);
    html.push_str("</body></html>\n");
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soc_colours_span_the_ramp() {
        assert_eq!(soc_colour(0.0), RGBColor(68, 1, 84));
        assert_eq!(soc_colour(1.0), RGBColor(253, 231, 37));
        assert_eq!(soc_colour(2.0), soc_colour(1.0));
    }

    #[test]
    fn daily_sums_split_signs() {
        let mut s = Series::new(0, 3600.0, 2.0 * 86_400.0);
        for h in 0..48 {
            let f = crate::kpi::StepFlows {
                dt_s: 3600.0,
                pv_w: 1000.0,
                grid_w: if h < 24 { 500.0 } else { -500.0 },
                battery_w: -250.0,
                ..Default::default()
            };
            s.add(h as f64 * 3600.0, &f, false);
        }
        s.finish();
        let d = daily(&s, 0);
        assert_eq!(d.len(), 2);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(
            close(d[0][0], 24.0)
                && close(d[0][2], 12.0)
                && close(d[0][3], 0.0)
                && close(d[0][4], 6.0),
            "{:?}",
            d[0]
        );
        assert!(close(d[1][2], 0.0) && close(d[1][3], 12.0), "{:?}", d[1]);
    }
}
