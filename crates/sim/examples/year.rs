//! One scenario at a chosen step, timed: `cargo run --release -p melv-sim --example year --
//! SITE.toml STEP_S [DAYS]`. Prints one JSON line with the step, the simulated days, the CPU
//! seconds of the run (the process's user + system time, loading excluded) and the KPIs and alert
//! edges. `scripts/bench-pysam.py` runs it side by side with NREL PySAM.
#![allow(
    clippy::disallowed_methods,
    reason = "an example program: it reads its own CPU time and the wall clock"
)]

use melv_sim::runner;
use melv_sim::scenario::{Overrides, Scenario};
use std::path::Path;

/// The process's CPU time so far (user + system), s, from /proc/self/stat (no libc dependency).
fn cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = |i: usize| {
        f.get(i)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // The kernel's USER_HZ is 100 on every Linux architecture we build for.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: year SITE.toml STEP_S [DAYS]");
        std::process::exit(2);
    }
    let step_s: f64 = match args[2].parse() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("STEP_S {:?}: {e}", args[2]);
            std::process::exit(2);
        }
    };
    let days = args.get(3).map(|d| d.parse::<f64>());
    let days = match days {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            eprintln!("DAYS {:?}: {e}", args[3]);
            std::process::exit(2);
        }
    };
    let sc = match Scenario::load(
        Path::new(&args[1]),
        Overrides {
            step_s: Some(step_s),
            days,
        },
    ) {
        Ok(sc) => sc,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let c0 = cpu_s();
    let w0 = std::time::Instant::now();
    let r = match runner::run(&sc, &mut |_, _| {}) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let wall = w0.elapsed().as_secs_f64();
    let cpu = cpu_s() - c0;
    // Alert edges as [t_utc_s, unit or -1, code, raised].
    let edges: Vec<[i64; 4]> = r
        .alert_edges
        .iter()
        .map(|e| {
            let unit = e.unit.map_or(-1, |u| u as i64);
            [e.t_utc_s, unit, i64::from(e.code), i64::from(e.raised)]
        })
        .collect();
    let out = serde_json::json!({
        "step_s": step_s,
        "cpu_s": cpu,
        "wall_s": wall,
        "kpis": r.kpis,
        "edges": edges,
    });
    println!("{out}");
}
