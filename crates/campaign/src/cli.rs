//! The command line of the campaign, shared by `melv campaign` and the `melv-campaign` binary.
//! The only module here that touches files (the report and the trace) and the clock (throughput on
//! stderr; never in the report, which must be the same for the same seed).

#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::{campaign, gen, run, Report, MAX_SCENARIOS};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Seeded fault campaign: scenarios with faults through the site core, safety invariants on the
/// twins' truth (issue 13).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of scenarios (0..N of the seed).
    #[arg(long, default_value_t = 10_000)]
    pub scenarios: u64,
    /// Campaign seed: the same seed gives the same scenarios and the same report.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Replay one scenario (its index) instead of a campaign.
    #[arg(long)]
    pub scenario: Option<u64>,
    /// With --scenario: write its step trace (CSV, one row per unit per cycle) to this file.
    #[arg(long, requires = "scenario")]
    pub trace: Option<PathBuf>,
    /// Run the regression corpus instead (one scenario per defect found, docs/campaign.md).
    #[arg(long, conflicts_with = "scenario")]
    pub corpus: bool,
    /// No progress bar on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs the command; exit 0 when no invariant broke, 1 when one did, 2 on a usage or file error.
pub fn main(args: Args) -> ExitCode {
    match run_args(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("melv campaign: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_args(args: &Args) -> Result<bool, String> {
    if args.scenarios > MAX_SCENARIOS {
        return Err(format!(
            "--scenarios {}: at most {MAX_SCENARIOS}",
            args.scenarios
        ));
    }
    if let Some(k) = args.scenario {
        return replay(args.seed, k, args.trace.as_ref());
    }
    if args.corpus {
        let mut ok = true;
        for (name, sc) in crate::corpus::corpus() {
            let out = run::run(&sc, None);
            println!(
                "{:<50} {:>7.1} h  {}",
                name,
                out.hours,
                if out.violations.is_empty() {
                    "ok"
                } else {
                    "FAIL"
                }
            );
            for v in &out.violations {
                ok = false;
                println!(
                    "    {} t={:.0} s unit {:?}: {}",
                    v.invariant, v.t_s, v.unit, v.detail
                );
            }
        }
        return Ok(ok);
    }
    let t0 = std::time::Instant::now();
    let total = args.scenarios;
    let quiet = args.quiet;
    let progress = move |done: u64| {
        if !quiet && (done.is_multiple_of(100) || done == total) {
            eprint!("\r{done}/{total} scenarios");
        }
    };
    let report = campaign(args.seed, total, &progress);
    let wall = t0.elapsed().as_secs_f64();
    if !quiet {
        eprintln!();
    }
    print_summary(&report, wall);
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, json + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(report.total_violations() == 0)
}

fn print_summary(r: &Report, wall_s: f64) {
    println!(
        "{} scenarios, {:.0} simulated hours, {} faults injected (seed {})",
        r.scenarios, r.simulated_hours, r.faults_injected, r.seed
    );
    for c in &r.invariants {
        println!("  {:<22} {:>6} violations", c.invariant, c.violations);
    }
    for f in r.failures.iter().take(10) {
        let v = &f.violation;
        println!(
            "  FAIL {} scenario {} t={:.0} s unit {:?}: {} (shrunk to {} faults; {})",
            v.invariant, v.scenario, v.t_s, v.unit, v.detail, f.shrunk_faults, f.replay
        );
    }
    eprintln!(
        "{:.1} s wall: {:.0} scenarios/s, {:.0} simulated hours/s",
        wall_s,
        r.scenarios as f64 / wall_s.max(1e-9),
        r.simulated_hours / wall_s.max(1e-9)
    );
}

fn replay(seed: u64, k: u64, trace: Option<&PathBuf>) -> Result<bool, String> {
    let sc = gen::draw(seed, k);
    println!(
        "{}",
        serde_json::to_string_pretty(&sc).map_err(|e| e.to_string())?
    );
    let out = match trace {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            let mut w = std::io::BufWriter::new(file);
            let mut err = None;
            let mut header = true;
            let mut write_row = |r: &run::TraceRow| {
                if err.is_some() {
                    return;
                }
                let res = write_csv(&mut w, r, header);
                header = false;
                if let Err(e) = res {
                    err = Some(e);
                }
            };
            let out = run::run(&sc, Some(&mut write_row));
            if let Some(e) = err {
                return Err(format!("cannot write {}: {e}", path.display()));
            }
            w.flush()
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            out
        }
        None => run::run(&sc, None),
    };
    for v in &out.violations {
        println!(
            "FAIL {} t={:.0} s unit {:?}: {}",
            v.invariant, v.t_s, v.unit, v.detail
        );
    }
    println!(
        "{:.1} simulated hours, {} violations",
        out.hours,
        out.violations.len()
    );
    Ok(out.violations.is_empty())
}

fn write_csv(w: &mut impl Write, r: &run::TraceRow, header: bool) -> std::io::Result<()> {
    if header {
        writeln!(
            w,
            "t_s,unit,grid,ambient_c,lifecycle,powered,alerts,causes,soc_true,soc_reported,cell_v_min,\
             cell_v_max,cell_t_min,cell_t_max,pack_current_a,ac_power_w,command_w,max_charge_w,\
             max_discharge_w,events"
        )?;
    }
    writeln!(
        w,
        "{},{},{},{:.2},{:?},{},{},{},{:.5},{:.4},{:.4},{:.4},{:.2},{:.2},{:.2},{:.1},{:.1},{:.1},{:.1},{}",
        r.t_s,
        r.unit,
        r.grid,
        r.ambient_c,
        r.lifecycle,
        r.powered,
        r.alerts,
        r.causes,
        r.soc_true,
        r.soc_reported,
        r.cell_v_min,
        r.cell_v_max,
        r.cell_t_min,
        r.cell_t_max,
        r.pack_current_a,
        r.ac_power_w,
        r.command_w,
        r.max_charge_w,
        r.max_discharge_w,
        r.events
    )
}
