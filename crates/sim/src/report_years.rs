//! The report's "Over the years" section: SOH and capacity by year, savings and cash flow by year,
//! the economics, and two charts (SOH by year against BLAST-Lite's fade for a comparable use, and the
//! cumulative cash flow).

use crate::kpi::Kpis;
use crate::report::{esc, svg, ReportError};
use plotters::prelude::*;
use std::fmt::Write as _;

/// BLAST-Lite 1.1.1 `Lfp_Gr_250AhPrismatic` for a home profile of 240 EFC a year at 25 degC
/// (docs/model.md, "Ageing": q = 0.9005 after 10 years, calendar loss 0.0367, cycling loss 0.0628).
/// Other years follow BLAST's own power laws through that point: the calendar loss as t^0.526, the
/// cycling loss as EFC^0.828 with the EFC proportional to the years.
pub fn blast_lite_reference(years: f64) -> f64 {
    let cal = 0.0367 * (years / 10.0).powf(0.526);
    let cyc = 0.0628 * (years / 10.0).powf(0.828);
    1.0 - cal - cyc
}

fn money(v: f64) -> String {
    format!("{v:.2}")
}

fn economics_table(k: &Kpis) -> String {
    let e = &k.economics;
    let c = esc(&k.currency);
    let at = |v: Option<u32>, none: &str| v.map_or(none.to_string(), |y| format!("year {y}"));
    let mut s = String::new();
    if e.defaults_used {
        s.push_str(
            "<p><b>This site has no <code>[economics]</code> table: the documented defaults apply \
             (docs/simulator.md); replace them with a quote.</b></p>",
        );
    }
    let _ = write!(
        s,
        "<table><tr><th>Investment (batteries and installation)</th><td>{} {c}</td></tr>\
         <tr><th>NPV over {} years</th><td>{} {c}</td></tr>\
         <tr><th>Payback (undiscounted)</th><td>{}</td></tr>\
         <tr><th>IRR</th><td>{}</td></tr>\
         <tr><th>LCOS (per kWh discharged)</th><td>{}</td></tr>\
         <tr><th>Replacement</th><td>{}</td></tr>",
        money(e.investment),
        e.years,
        money(e.npv),
        at(e.payback_year, "not within the run"),
        e.irr.map_or("none (never paid back)".into(), |r| format!(
            "{:.2} %",
            r * 100.0
        )),
        e.lcos.map_or("none".into(), |l| format!("{l:.3} {c}/kWh")),
        at(e.replacement_year, "none"),
    );
    if let Some(i) = &e.inputs {
        let _ = write!(
            s,
            "<tr><th>Inputs</th><td>unit price {} {c}, installation {} {c}, maintenance {} {c}/year, \
             discount rate {:.1} %, import price escalation {:.1} %/year, export {:.1} %/year</td></tr>",
            money(i.battery_price),
            money(i.installation),
            money(i.maintenance),
            i.discount_rate * 100.0,
            i.import_escalation * 100.0,
            i.export_escalation * 100.0
        );
    }
    s.push_str("</table>");
    s
}

fn years_table(k: &Kpis) -> String {
    let mut s = String::from(
        "<table><tr><th>year</th><th>SOH weakest cell</th><th>SOH mean cell</th>\
         <th>capacity kWh</th><th>EFC to date</th><th>discharge kWh</th><th>self-sufficiency</th>\
         <th>savings</th><th>net cash flow</th><th>cumulative</th></tr>",
    );
    for (y, cf) in k.years.iter().zip(&k.economics.cash_flows) {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{:.2} %</td><td>{:.2} %</td><td>{:.2}</td><td>{:.0}</td>\
             <td>{:.0}</td><td>{:.1} %</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            y.year,
            y.soh_end * 100.0,
            y.soh_mean_cell_end * 100.0,
            y.capacity_kwh_end,
            y.equivalent_full_cycles_to_date,
            y.battery_discharge_kwh,
            y.self_sufficiency_ratio * 100.0,
            money(cf.savings),
            money(cf.net),
            money(cf.cumulative)
        );
    }
    s.push_str("</table>");
    let l = &k.lifetime;
    let at = |v: Option<u32>| v.map_or("not within the run".to_string(), |y| format!("year {y}"));
    let _ = write!(
        s,
        "<p>SOH (weakest cell) below 80 %: {}; below 70 % (alert 57): {}. Over the run: {:.0} kWh \
         discharged, {:.0} equivalent full cycles.</p>",
        at(l.soh_80_year),
        at(l.soh_70_year),
        l.battery_discharge_kwh,
        l.equivalent_full_cycles
    );
    s
}

fn soh_chart(k: &Kpis) -> Result<String, ReportError> {
    let n = k.years.len() as f64;
    let lo = k
        .years
        .iter()
        .map(|y| y.soh_end)
        .fold(0.85f64, f64::min)
        .min(blast_lite_reference(n))
        - 0.02;
    svg("SOH by year", (900, 380), |root| {
        root.fill(&WHITE)?;
        let mut c = ChartBuilder::on(&root)
            .caption("State of health at each year's end (%)", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..n, lo * 100.0..100.5f64)?;
        c.configure_mesh().x_desc("year").y_desc("SOH %").draw()?;
        let pts = |f: &dyn Fn(&crate::years::YearKpis) -> f64| {
            std::iter::once((0.0, 100.0))
                .chain(k.years.iter().map(|y| (y.year as f64, f(y) * 100.0)))
                .collect::<Vec<_>>()
        };
        let blue = RGBColor(0, 114, 178);
        let green = RGBColor(0, 158, 115);
        let grey = RGBColor(150, 150, 150);
        c.draw_series(LineSeries::new(pts(&|y| y.soh_end), blue.stroke_width(2)))?
            .label("weakest cell (melv)")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], blue.stroke_width(3))
            });
        c.draw_series(LineSeries::new(
            pts(&|y| y.soh_mean_cell_end),
            green.stroke_width(2),
        ))?
        .label("mean cell (melv)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], green.stroke_width(3)));
        let steps = (n * 10.0) as usize;
        c.draw_series(LineSeries::new(
            (0..=steps).map(|i| {
                let t = i as f64 / 10.0;
                (t, blast_lite_reference(t) * 100.0)
            }),
            grey.stroke_width(2),
        ))?
        .label("BLAST-Lite LFP, 240 EFC/year at 25 degC (docs/model.md)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey.stroke_width(3)));
        c.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerLeft)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

fn cash_chart(k: &Kpis) -> Result<String, ReportError> {
    let e = &k.economics;
    let pts: Vec<(f64, f64)> = std::iter::once((0.0, -e.investment))
        .chain(e.cash_flows.iter().map(|c| (c.year as f64, c.cumulative)))
        .collect();
    let disc: Vec<(f64, f64)> = std::iter::once((0.0, -e.investment))
        .chain(
            e.cash_flows
                .iter()
                .map(|c| (c.year as f64, c.discounted_cumulative)),
        )
        .collect();
    let lo = pts.iter().chain(&disc).fold(0f64, |m, p| m.min(p.1)) * 1.1 - 1.0;
    let hi = pts.iter().chain(&disc).fold(0f64, |m, p| m.max(p.1)) * 1.1 + 1.0;
    let n = e.cash_flows.len().max(1) as f64;
    svg("cumulative cash flow", (900, 380), |root| {
        root.fill(&WHITE)?;
        let mut c = ChartBuilder::on(&root)
            .caption(
                format!("Cumulative cash flow ({})", k.currency),
                ("sans-serif", 20),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..n, lo..hi)?;
        c.configure_mesh().x_desc("year").draw()?;
        let blue = RGBColor(0, 114, 178);
        let orange = RGBColor(213, 94, 0);
        c.draw_series(LineSeries::new(
            [(0.0, 0.0), (n, 0.0)],
            BLACK.stroke_width(1),
        ))?;
        c.draw_series(LineSeries::new(pts, blue.stroke_width(2)))?
            .label("undiscounted")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], blue.stroke_width(3))
            });
        c.draw_series(LineSeries::new(disc, orange.stroke_width(2)))?
            .label("discounted")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], orange.stroke_width(3))
            });
        c.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// The section, HTML.
pub fn section(k: &Kpis) -> Result<String, ReportError> {
    let mut s = String::from("<h2>Over the years</h2>");
    s.push_str(&economics_table(k));
    s.push_str(&years_table(k));
    if !k.years.is_empty() {
        s.push_str("<div class=\"row\">");
        s.push_str(&soh_chart(k)?);
        s.push_str(&cash_chart(k)?);
        s.push_str("</div>");
    }
    if k.years.len() > 1 {
        s.push_str(
            "<p>The daily flows, the SOC heat map and the week below show the first year.</p>",
        );
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blast_reference_is_the_documented_point() {
        assert!((blast_lite_reference(10.0) - 0.9005).abs() < 1e-9);
        assert_eq!(blast_lite_reference(0.0), 1.0);
    }
}
