//! `melv simulate SITE.toml [--step 60s] [--days N | --years N] [--json OUT] [--report OUT.html]
//! [--timeseries FILE.parquet|FILE.csv [--timeseries-step 1h]]`: run a site for a year (N days, or N
//! years repeating the profile) and print its KPI table; optionally write the KPIs as JSON, a
//! standalone HTML report and the time series.

use anyhow::{Context, Result};
use melv_scenario::builtin::SiteSource;
use melv_sim::config::parse_duration_s;
use melv_sim::report::{self, SimResult};
use melv_sim::runner;
use melv_sim::scenario::Overrides;
use melv_sim::timeseries::{Aggregator, NoSink, StepSink};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Site description (TOML), e.g. examples/self-consumption.toml.
    #[arg(required_unless_present = "example", conflicts_with = "example")]
    site: Option<PathBuf>,
    /// A built-in example site instead of a file: self-consumption, tou-two-batteries or
    /// backup-outages (the same as examples/NAME.toml).
    #[arg(long)]
    example: Option<String>,
    /// Time step, 1s to 1h (e.g. 1s, 60s, 15min, 1h); overrides [simulation] step.
    #[arg(long)]
    step: Option<String>,
    /// Days to simulate from the profile's start; overrides [simulation] days.
    #[arg(long, conflicts_with = "years")]
    days: Option<f64>,
    /// Years to simulate, repeating the profile's first year (leap days handled; ageing, SOH and
    /// SOC carry over); overrides [simulation] years.
    #[arg(long)]
    years: Option<u32>,
    /// Write the time series to this file: Parquet (.parquet) or CSV (.csv).
    #[arg(long, value_name = "FILE")]
    timeseries: Option<PathBuf>,
    /// Interval of the time series (a whole multiple of the step, e.g. 60s, 15min, 1h, 1d); default:
    /// 15 minutes, or the step when it is longer (the report's bins; 15 years of 60 s rows would be
    /// 7.9 million rows, 0.6 GB of Parquet).
    #[arg(long, value_name = "INTERVAL", requires = "timeseries")]
    timeseries_step: Option<String>,
    /// Write the KPIs as JSON to this file ("-" for standard output, which replaces the table).
    #[arg(long, value_name = "OUT")]
    json: Option<PathBuf>,
    /// Write a standalone HTML report with plots to this file.
    #[arg(long, value_name = "OUT.html")]
    report: Option<PathBuf>,
    /// Route every battery-gateway message through the CAN codec (crates/can, the DBC contract)
    /// and write the frames to this file in candump log format (`(secs) can0 ID#DATA`).
    #[arg(long, value_name = "FILE")]
    can_log: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: Args) -> Result<()> {
    let step_s =
        match &args.step {
            Some(s) => Some(parse_duration_s(s).with_context(|| {
                format!("--step {s:?}: expected a duration like 60s, 15min or 1h")
            })?),
            None => None,
        };
    let site = SiteSource::from_args(args.site.clone(), args.example.as_deref())?;
    let mut sc = site.load(Overrides {
        step_s,
        days: args.days,
    })?;
    if let Some(n) = args.years {
        sc.set_years(n, "--years")?;
    }
    let ts_interval_s = timeseries_interval(args.timeseries_step.as_deref(), sc.step_s)?;
    let json_to_stdout = args.json.as_deref().is_some_and(|p| p.as_os_str() == "-");
    let show_bar =
        !args.quiet && !json_to_stdout && std::io::stderr().is_terminal() && sc.steps() >= 100_000;
    let bar = if show_bar {
        let b = indicatif::ProgressBar::new(sc.steps());
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} simulating [{bar:40}] {percent:>3}% {pos}/{len} steps, {eta} left",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    // Wall time is the command's to measure: the simulator's results depend only on the scenario.
    let wall = std::time::Instant::now();
    let mut sink: Box<dyn StepSink> = match &args.timeseries {
        None => Box::new(NoSink),
        Some(path) => {
            let w = crate::timeseries_out::open(path, sc.site.batteries, sc.site.timezone)
                .map_err(|e| anyhow::anyhow!("--timeseries {e}"))?;
            Box::new(Aggregator::new(w, sc.start_utc_s as f64, ts_interval_s))
        }
    };
    let result = match &args.can_log {
        None => runner::run_with(&sc, &mut |done, _| bar.set_position(done), sink.as_mut())?,
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("--can-log {}: cannot create the file", path.display()))?;
            let mut link = melv_can::SimLink::new(&runner::can_identities(&sc), sc.seed)
                .with_context(|| format!("{}: CAN link", site.label()))?;
            link.set_log(std::io::BufWriter::new(file), "can0", sc.start_utc_s as f64);
            let (r, mut link) = runner::run_over_can_with(
                &sc,
                link,
                &mut |done, _| bar.set_position(done),
                sink.as_mut(),
            )?;
            if let Some(mut log) = link.take_log() {
                log.flush()
                    .with_context(|| format!("--can-log {}: writing the log", path.display()))?;
            }
            r
        }
    };
    bar.finish_and_clear();
    let wall_s = wall.elapsed().as_secs_f64();

    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&result.kpis)? + "\n";
        if json_to_stdout {
            std::io::stdout().write_all(text.as_bytes())?;
        } else {
            write_file(path, text.as_bytes())?;
        }
    }
    if let Some(path) = &args.report {
        let html = report::render(&result)?;
        write_file(path, html.as_bytes())?;
    }
    if !json_to_stdout {
        print!("{}", table(&result, wall_s));
        if let Some(p) = &args.report {
            println!("report: {}", p.display());
        }
    }
    Ok(())
}

/// The time series' interval, s: a whole multiple of the step; when not given, 15 minutes or the
/// step when that is not a multiple of it (the report's bins, `melv_sim::kpi::Series`).
fn timeseries_interval(arg: Option<&str>, step_s: f64) -> Result<f64> {
    let Some(s) = arg else {
        let k = (900.0 / step_s).floor().max(1.0);
        return Ok(if (k * step_s - 900.0).abs() < 1e-9 {
            900.0
        } else {
            step_s
        });
    };
    let v = parse_interval_s(s).with_context(|| {
        format!("--timeseries-step {s:?}: expected an interval like 15min, 1h or 1d")
    })?;
    let k = v / step_s;
    if !(v > 0.0 && (k - k.round()).abs() < 1e-9 && k.round() >= 1.0) {
        anyhow::bail!(
            "--timeseries-step {s:?}: {v} s is not a whole multiple of the step ({step_s} s)"
        );
    }
    if v > 366.0 * 86_400.0 {
        anyhow::bail!("--timeseries-step {s:?}: at most a year (366d)");
    }
    Ok(v)
}

/// A duration with days allowed ("1d", "7d") on top of `parse_duration_s`.
fn parse_interval_s(s: &str) -> Option<f64> {
    match s.trim().strip_suffix('d') {
        Some(n) => n.trim().parse::<f64>().ok().map(|d| d * 86_400.0),
        None => parse_duration_s(s),
    }
}

fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// The KPI table for people.
fn table(r: &SimResult, wall_s: f64) -> String {
    let k = &r.kpis;
    let c = &k.currency;
    let mut rows: Vec<(String, String)> = vec![
        ("PV generation".into(), format!("{:>10.1} kWh", k.pv_kwh)),
        ("Load".into(), format!("{:>10.1} kWh", k.load_kwh)),
        (
            "Grid import".into(),
            format!("{:>10.1} kWh", k.grid_import_kwh),
        ),
        (
            "Grid export".into(),
            format!("{:>10.1} kWh", k.grid_export_kwh),
        ),
        (
            "Battery charge (AC)".into(),
            format!("{:>10.1} kWh", k.battery_charge_kwh),
        ),
        (
            "Battery discharge (AC)".into(),
            format!("{:>10.1} kWh", k.battery_discharge_kwh),
        ),
        (
            "Self-consumption".into(),
            format!("{:>10.1} %", k.self_consumption_ratio * 100.0),
        ),
        (
            "Self-sufficiency".into(),
            format!(
                "{:>10.1} %  (without battery {:.1} %)",
                k.self_sufficiency_ratio * 100.0,
                k.self_sufficiency_without_battery * 100.0
            ),
        ),
        (
            "Equivalent full cycles".into(),
            format!("{:>10.1}", k.equivalent_full_cycles),
        ),
        (
            "State of health at end".into(),
            format!("{:>10.2} %  (weakest cell)", k.soh_end * 100.0),
        ),
        (
            "Cost without battery".into(),
            format!("{:>10.2} {c}", k.cost_without_battery),
        ),
        (
            "Cost with battery".into(),
            format!("{:>10.2} {c}", k.cost_with_battery),
        ),
        ("Savings".into(), format!("{:>10.2} {c}", k.savings)),
    ];
    if k.islanded_hours > 0.0 || k.load_unserved_kwh > 0.0 {
        rows.push((
            "Hours off grid".into(),
            format!("{:>10.1} h", k.islanded_hours),
        ));
        rows.push((
            "Load not supplied".into(),
            format!("{:>10.2} kWh", k.load_unserved_kwh),
        ));
    }
    if k.pv_curtailed_kwh > 0.0 {
        rows.push((
            "PV curtailed".into(),
            format!("{:>10.1} kWh", k.pv_curtailed_kwh),
        ));
    }
    let alerts = if k.alerts.is_empty() {
        "none".to_string()
    } else {
        k.alerts
            .iter()
            .map(|a| format!("{} x{}", a.code, a.count))
            .collect::<Vec<_>>()
            .join(", ")
    };
    rows.push(("Alerts (code x times)".into(), format!("{:>10}", alerts)));
    rows.push((
        "Battery charge from grid".into(),
        format!("{:>10.2} kWh", k.battery_charge_from_grid_kwh),
    ));
    rows.push((
        "True cell V min / max".into(),
        format!("{:>10.3} / {:.3} V", k.cell_v_min, k.cell_v_max),
    ));
    rows.push((
        "Energy balance error".into(),
        format!(
            "{:>10.1e} kWh AC, {:.1e} kWh DC",
            k.energy_balance_error_kwh, k.dc_balance_error_kwh
        ),
    ));
    rows.push((
        "Run".into(),
        format!(
            "{:>10} steps of {} s, {:.1} days, {:.3} s wall",
            k.steps, k.step_s, k.days, wall_s
        ),
    ));
    rows.extend(health_rows(k));
    rows.extend(economics_rows(k));
    let mut out = format!("{}\n", r.title);
    for (name, v) in rows {
        out.push_str(&format!("  {name:<24}{v}\n"));
    }
    if k.years.len() > 1 {
        out.push_str(&years_table(k));
    }
    out
}

fn health_rows(k: &melv_sim::kpi::Kpis) -> Vec<(String, String)> {
    vec![
        (
            "SOH mean cell / BMS".into(),
            format!(
                "{:>10.2} %  / {:.2} %",
                k.soh_mean_cell_end * 100.0,
                k.soh_bms_end * 100.0
            ),
        ),
        (
            "SOC estimate error".into(),
            format!(
                "{:>10.2} %  RMS, max {:.2} %",
                k.soc_error.rms * 100.0,
                k.soc_error.max_abs * 100.0
            ),
        ),
    ]
}

fn economics_rows(k: &melv_sim::kpi::Kpis) -> Vec<(String, String)> {
    let e = &k.economics;
    let c = &k.currency;
    let opt = |v: Option<u32>| v.map_or("not within the run".to_string(), |y| format!("year {y}"));
    vec![
        (
            "Investment".into(),
            format!(
                "{:>10.2} {c}{}",
                e.investment,
                if e.defaults_used {
                    "  (default [economics])"
                } else {
                    ""
                }
            ),
        ),
        (
            format!("NPV over {} y", e.years),
            format!("{:>10.2} {c}", e.npv),
        ),
        ("Payback".into(), format!("{:>10}", opt(e.payback_year))),
        (
            "IRR / LCOS".into(),
            format!(
                "{:>10} / {}",
                e.irr
                    .map_or("none".into(), |r| format!("{:.2} %", r * 100.0)),
                e.lcos.map_or("none".into(), |l| format!("{l:.3} {c}/kWh"))
            ),
        ),
    ]
}

fn years_table(k: &melv_sim::kpi::Kpis) -> String {
    let mut out = format!(
        "  {:>4} {:>9} {:>9} {:>8} {:>8} {:>9} {:>11}\n",
        "year", "SOH weak", "SOH mean", "EFC", "kWh", "savings", "cumul. cash"
    );
    for (y, cf) in k.years.iter().zip(&k.economics.cash_flows) {
        out.push_str(&format!(
            "  {:>4} {:>8.2}% {:>8.2}% {:>8.1} {:>8.1} {:>9.2} {:>11.2}\n",
            y.year,
            y.soh_end * 100.0,
            y.soh_mean_cell_end * 100.0,
            y.equivalent_full_cycles_to_date,
            y.battery_discharge_kwh,
            cf.savings,
            cf.cumulative
        ));
    }
    let l = &k.lifetime;
    let at = |v: Option<u32>| v.map_or("not reached".to_string(), |y| format!("year {y}"));
    out.push_str(&format!(
        "  SOH below 80 %: {}; below 70 %: {}; {:.0} kWh discharged, {:.0} EFC\n",
        at(l.soh_80_year),
        at(l.soh_70_year),
        l.battery_discharge_kwh,
        l.equivalent_full_cycles
    ));
    out
}
