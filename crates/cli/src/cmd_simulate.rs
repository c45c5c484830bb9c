//! `melv simulate SITE.toml [--step 60s] [--days N] [--json OUT] [--report OUT.html]`: run a site
//! for a year (or N days) and print its KPI table; optionally write the KPIs as JSON and a standalone
//! HTML report.

use anyhow::{Context, Result};
use melv_scenario::builtin::SiteSource;
use melv_sim::config::parse_duration_s;
use melv_sim::report::{self, SimResult};
use melv_sim::runner;
use melv_sim::scenario::Overrides;
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
    #[arg(long)]
    days: Option<f64>,
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
    let sc = site.load(Overrides {
        step_s,
        days: args.days,
    })?;
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
    let result = match &args.can_log {
        None => runner::run(&sc, &mut |done, _| bar.set_position(done))?,
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("--can-log {}: cannot create the file", path.display()))?;
            let mut link = melv_can::SimLink::new(&runner::can_identities(&sc), sc.seed)
                .with_context(|| format!("{}: CAN link", site.label()))?;
            link.set_log(std::io::BufWriter::new(file), "can0", sc.start_utc_s as f64);
            let (r, mut link) =
                runner::run_over_can(&sc, link, &mut |done, _| bar.set_position(done))?;
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
            format!("{:>10.2} %", k.soh_end * 100.0),
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
    let mut out = format!("{}\n", r.title);
    for (name, v) in rows {
        out.push_str(&format!("  {name:<24}{v}\n"));
    }
    out
}
