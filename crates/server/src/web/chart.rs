//! Inline SVG: the power-flow diagram and the history bar chart. Each picture has a `title` and its
//! numbers are also given as text or a table, so a screen reader gets the same information.

use super::layout::{esc, kw, kwh, local_time};
use crate::service::Resolution;
use melv_store::Bucket;

/// Solar, home, grid and battery around a hub, each arrow pointing the way power flows. Signs:
/// battery_w positive = discharging, grid_w positive = importing.
pub fn power_flow(pv_w: f64, load_w: f64, grid_w: f64, battery_w: f64, soc: f64) -> String {
    let node = |x: i32, y: i32, label: &str, value: &str| {
        format!(
            r##"<g><rect x="{}" y="{}" width="120" height="52" rx="8" fill="#f1f3f4" stroke="#5f6368"/><text x="{x}" y="{}" text-anchor="middle" font-weight="700">{label}</text><text x="{x}" y="{}" text-anchor="middle">{}</text></g>"##,
            x - 60,
            y - 26,
            y - 4,
            y + 16,
            esc(value)
        )
    };
    // An arrow on the line between a node and the hub (200,130), pointing in the flow direction.
    let arrow = |x: i32, y: i32, into_hub: bool, active: bool| {
        if !active {
            return format!(
                r##"<line x1="{x}" y1="{y}" x2="200" y2="130" stroke="#c4c7c5" stroke-width="3"/>"##
            );
        }
        let (x1, y1, x2, y2) = if into_hub {
            (x, y, 200, 130)
        } else {
            (200, 130, x, y)
        };
        format!(
            r##"<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#0b57d0" stroke-width="4" marker-end="url(#arrow)"/>"##
        )
    };
    const EPS: f64 = 10.0;
    let battery = if battery_w > EPS {
        format!("{} out", kw(battery_w))
    } else if battery_w < -EPS {
        format!("{} in", kw(-battery_w))
    } else {
        "idle".into()
    };
    let grid = if grid_w > EPS {
        format!("{} import", kw(grid_w))
    } else if grid_w < -EPS {
        format!("{} export", kw(-grid_w))
    } else {
        "0 kW".into()
    };
    let desc = format!(
        "Solar {}, home {}, grid {grid}, battery {battery} at {:.0} % state of charge.",
        kw(pv_w),
        kw(load_w),
        soc * 100.0
    );
    format!(
        r##"<svg viewBox="0 0 400 260" role="img" aria-labelledby="pf-t pf-d" width="400"><title id="pf-t">Power flow now</title><desc id="pf-d">{d}</desc>
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#0b57d0"/></marker></defs>
{a1}{a2}{a3}{a4}<circle cx="200" cy="130" r="8" fill="#5f6368"/>
{n1}{n2}{n3}{n4}</svg><p>{d}</p>"##,
        d = esc(&desc),
        a1 = arrow(200, 56, true, pv_w > EPS),
        a2 = arrow(200, 204, false, load_w > EPS),
        a3 = arrow(124, 130, grid_w > 0.0, grid_w.abs() > EPS),
        a4 = arrow(276, 130, battery_w > 0.0, battery_w.abs() > EPS),
        n1 = node(200, 30, "Solar", &kw(pv_w)),
        n2 = node(200, 230, "Home", &kw(load_w)),
        n3 = node(64, 130, "Grid", &grid),
        n4 = node(336, 130, &format!("Battery {:.0}%", soc * 100.0), &battery),
    )
}

/// A chart series: name, colour, value of a bucket.
type Series = (&'static str, &'static str, fn(&Bucket) -> f64);

/// Grouped bars per bucket: solar, home, grid import and export (kWh), with a table of the numbers.
pub fn history(buckets: &[Bucket], tz: &str, res: Resolution) -> String {
    if buckets.is_empty() {
        return "<p>No data for this period yet.</p>".into();
    }
    let series: [Series; 4] = [
        ("Solar", "#b06000", |b| b.pv_wh),
        ("Home", "#0b57d0", |b| b.load_wh),
        ("Grid import", "#a50e0e", |b| b.import_wh),
        ("Grid export", "#0d652d", |b| b.export_wh),
    ];
    let max = buckets
        .iter()
        .flat_map(|b| series.iter().map(move |s| (s.2)(b)))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    // A narrow picture so that its text stays readable when a phone scales it to 330 px.
    let (w, h, left, bottom, top) = (480.0, 260.0, 70.0, 30.0, 20.0);
    let slot = (w - left) / buckets.len() as f64;
    let bar = (slot / 5.0).max(0.5);
    let mut bars = String::new();
    for (i, b) in buckets.iter().enumerate() {
        for (j, (name, colour, f)) in series.iter().enumerate() {
            let v = f(b);
            let bh = v / max * (h - bottom - top);
            let x = left + i as f64 * slot + j as f64 * bar;
            bars.push_str(&format!(
                r#"<rect x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{bh:.1}" fill="{colour}"><title>{name}: {}</title></rect>"#,
                h - bottom - bh,
                kwh(v)
            ));
        }
    }
    let fmt = match res {
        Resolution::FiveMin | Resolution::Hour => "%H:%M",
        Resolution::Day => "%d %b",
        Resolution::Month => "%b %Y",
    };
    let label = |ms: i64| {
        use chrono::TimeZone;
        let z: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
        z.timestamp_millis_opt(ms)
            .earliest()
            .map(|t| t.format(fmt).to_string())
            .unwrap_or_default()
    };
    let first = label(buckets[0].start_ms);
    let last = label(buckets[buckets.len() - 1].start_ms);
    // The legend is HTML under the chart: it wraps on a phone, and a screen reader reads it as text.
    let legend: String = series
        .iter()
        .map(|(n, c, _)| {
            format!(r#"<li><span class="swatch" style="background:{c}" aria-hidden="true"></span>{n}</li>"#)
        })
        .collect();
    let mut table = String::from(
        r#"<details><summary>Numbers</summary><table><thead><tr><th scope="col">Start</th><th scope="col">Solar</th><th scope="col">Home</th><th scope="col">Grid import</th><th scope="col">Grid export</th><th scope="col">Battery in / out</th><th scope="col">Mean SOC</th></tr></thead><tbody>"#,
    );
    for b in buckets {
        table.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{:.0} %</td></tr>",
            local_time(b.start_ms, tz),
            kwh(b.pv_wh),
            kwh(b.load_wh),
            kwh(b.import_wh),
            kwh(b.export_wh),
            kwh(b.charge_wh),
            kwh(b.discharge_wh),
            b.soc_avg * 100.0
        ));
    }
    table.push_str("</tbody></table></details>");
    format!(
        r##"<svg viewBox="0 0 {w} {h}" role="img" aria-labelledby="h-t" width="{w}"><title id="h-t">Energy per period from {first} to {last}, kWh</title>
<line x1="{left}" y1="{y0}" x2="{w}" y2="{y0}" stroke="#5f6368"/><text x="{lx}" y="{ty}" text-anchor="end">{maxl}</text><text x="{lx}" y="{y0}" text-anchor="end">0</text>
{bars}<text x="{left}" y="{yl}">{first}</text><text x="{w}" y="{yl}" text-anchor="end">{last}</text></svg><ul class="legend">{legend}</ul>{table}"##,
        y0 = h - bottom,
        yl = h - 8.0,
        lx = left - 4.0,
        ty = top + 10.0,
        maxl = esc(&kwh(max)),
        first = esc(&first),
        last = esc(&last),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_flow_tells_directions_in_words() {
        let svg = power_flow(3000.0, 1000.0, -1500.0, -500.0, 0.42);
        assert!(
            svg.contains("grid 1.50 kW export, battery 0.50 kW in at 42 %"),
            "{svg}"
        );
        let svg = power_flow(0.0, 800.0, 300.0, 500.0, 0.3);
        assert!(
            svg.contains("grid 0.30 kW import, battery 0.50 kW out"),
            "{svg}"
        );
    }

    #[test]
    fn history_has_a_bar_per_series_and_bucket() {
        let b = Bucket {
            start_ms: 0,
            pv_wh: 1000.0,
            load_wh: 500.0,
            import_wh: 0.0,
            export_wh: 500.0,
            charge_wh: 0.0,
            discharge_wh: 0.0,
            soc_avg: 0.5,
            points: 60,
        };
        let svg = history(
            &[
                b,
                Bucket {
                    start_ms: 3_600_000,
                    ..b
                },
            ],
            "UTC",
            Resolution::Hour,
        );
        assert_eq!(
            svg.matches("<rect x=").count(),
            2 * 4,
            "a bar per series and bucket"
        );
        assert_eq!(
            svg.matches("class=\"swatch\"").count(),
            4,
            "a legend entry per series"
        );
        assert!(svg.contains("Solar: 1.00 kWh"));
        assert_eq!(
            history(&[], "UTC", Resolution::Hour),
            "<p>No data for this period yet.</p>"
        );
    }
}
