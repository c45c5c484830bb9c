//! # melv-campaign: a seeded, replayable fault campaign
//!
//! In the manner of TigerBeetle's VOPR and FoundationDB's simulation testing: each scenario is
//! drawn from one seed and its index ([`gen::draw`]): a site of 1-6 units, a country and working
//! mode, an ambient and a house, sensor noise on, and a schedule of faults of every kind the site
//! core can inject (grid outages, voltage and frequency excursions, chattering voltages near trip
//! levels, ambient beyond the rating, fan and heater failures, micro-shorts, thermal runaway,
//! open sense wires, insulation and power-stage faults, cut CAN cables, shutdown and power-on
//! from the app, long idle periods). It runs through the one site core for hours to months, then
//! through a recovery phase where the manual's solution steps are followed (section 6.3: reset,
//! power cycle from the app, AC off and on). After every cycle the invariants of [`check`] are
//! checked on the twins' true state.
//!
//! A failing scenario is replayed from `(seed, index)` alone, and shrunk ([`shrink`]) to fewer
//! faults and a shorter run where the same invariant still fails.
//!
//! Pure: no clock, no file; the host (`melv campaign`, or the `melv-campaign` binary) writes the
//! JSON and the traces. Scenarios run in parallel (rayon) and their results are gathered in index
//! order, so the report is the same whatever the number of cores.

pub mod check;
pub mod cli;
pub mod corpus;
pub mod gen;
pub mod run;

use rayon::prelude::*;
use serde::Serialize;

pub use check::{Violation, INVARIANTS};
pub use gen::{draw, Scenario};
pub use run::{Outcome, TraceRow};

/// Largest number of scenarios one campaign runs (a bound on every input).
pub const MAX_SCENARIOS: u64 = 10_000_000;
/// Violations kept in full in the report (the counts are complete).
pub const MAX_REPORTED: usize = 200;
/// Of those, how many are shrunk (each shrink replays its scenario up to 12 times).
pub const MAX_SHRUNK: usize = 20;

/// Count of one invariant's violations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvariantCount {
    pub invariant: &'static str,
    /// Scenarios in which it failed.
    pub violations: u64,
}

/// A failing scenario, shrunk where possible.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub violation: Violation,
    /// The smallest fault schedule (and run length) found that still breaks the same invariant.
    pub shrunk_faults: usize,
    pub shrunk_duration_s: f64,
    pub shrunk: Scenario,
    /// `melv campaign --seed S --scenario K --trace FILE` replays it.
    pub replay: String,
}

/// What a campaign found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub seed: u64,
    pub scenarios: u64,
    pub simulated_hours: f64,
    /// Faults injected over all scenarios, by kind.
    pub faults_injected: u64,
    pub invariants: Vec<InvariantCount>,
    pub failures: Vec<Failure>,
}

impl Report {
    /// Total violations over every invariant.
    pub fn total_violations(&self) -> u64 {
        self.invariants.iter().map(|c| c.violations).sum()
    }
}

/// Runs scenarios `0..scenarios` of `seed`. `progress(done)` is called from the worker threads as
/// scenarios finish (any order); the report does not depend on it.
pub fn campaign(seed: u64, scenarios: u64, progress: &(dyn Fn(u64) + Sync)) -> Report {
    let scenarios = scenarios.min(MAX_SCENARIOS);
    let done = std::sync::atomic::AtomicU64::new(0);
    let results: Vec<(Scenario, Outcome)> = (0..scenarios)
        .into_par_iter()
        .map(|k| {
            let sc = gen::draw(seed, k);
            let out = run::run(&sc, None);
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(n);
            (sc, out)
        })
        .collect();
    let mut counts: Vec<InvariantCount> = INVARIANTS
        .iter()
        .map(|&invariant| InvariantCount {
            invariant,
            violations: 0,
        })
        .collect();
    let mut hours = 0.0;
    let mut faults = 0u64;
    let mut failing = Vec::new();
    for (sc, out) in &results {
        hours += out.hours;
        faults += sc.faults.len() as u64;
        for v in &out.violations {
            if let Some(c) = counts.iter_mut().find(|c| c.invariant == v.invariant) {
                c.violations += 1;
            }
            if failing.len() < MAX_REPORTED {
                failing.push((sc.clone(), v.clone()));
            }
        }
    }
    let failures = failing
        .into_par_iter()
        .enumerate()
        .map(|(n, (sc, v))| {
            let shrunk = if n < MAX_SHRUNK {
                shrink(&sc, v.invariant)
            } else {
                sc.clone()
            };
            Failure {
                replay: format!(
                    "melv campaign --seed {} --scenario {} --trace trace.csv",
                    sc.seed, sc.index
                ),
                shrunk_faults: shrunk.faults.len(),
                shrunk_duration_s: shrunk.duration_s,
                shrunk,
                violation: v,
            }
        })
        .collect();
    Report {
        seed,
        scenarios,
        simulated_hours: hours,
        faults_injected: faults,
        invariants: counts,
        failures,
    }
}

/// Whether `sc` breaks `invariant`.
fn breaks(sc: &Scenario, invariant: &str) -> bool {
    run::run(sc, None)
        .violations
        .iter()
        .any(|v| v.invariant == invariant)
}

/// Shrinks a failing scenario: drops faults one at a time while the same invariant still fails,
/// then shortens the run to the last remaining fault's end (at most 12 replays, so a campaign's
/// report stays quick).
pub fn shrink(sc: &Scenario, invariant: &str) -> Scenario {
    let mut best = sc.clone();
    let mut budget = 12;
    let mut i = 0;
    while i < best.faults.len() && budget > 0 {
        let mut trial = best.clone();
        trial.faults.remove(i);
        budget -= 1;
        if breaks(&trial, invariant) {
            best = trial;
        } else {
            i += 1;
        }
    }
    if budget > 0 {
        let last_end = best
            .faults
            .iter()
            .map(|e| e.to_utc_s as f64)
            .fold(0.0, f64::max);
        let shorter = (last_end + 3600.0).max(3600.0);
        if shorter < best.duration_s {
            let mut trial = best.clone();
            trial.duration_s = shorter;
            if breaks(&trial, invariant) {
                best = trial;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_report() {
        let a = campaign(3, 4, &|_| {});
        let b = campaign(3, 4, &|_| {});
        assert_eq!(a, b);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        assert_eq!(a.scenarios, 4);
        assert!(a.simulated_hours > 4.0);
        assert_eq!(a.invariants.len(), INVARIANTS.len());
    }
}
