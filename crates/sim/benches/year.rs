//! A year of the self-consumption example (one MS-7K-U, Greensboro hourly profile) at 60 s and at
//! 1 s steps. `cargo bench -p melv-sim --bench year` measures; under `cargo test` (no `--bench`
//! argument) the same code runs one day per case so that the bench cannot rot.

use criterion::{criterion_group, criterion_main, Criterion};
use melv_sim::runner;
use melv_sim::scenario::{Overrides, Scenario};
use std::path::Path;

fn scenario(step_s: f64, days: f64) -> Scenario {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/self-consumption.toml");
    Scenario::load(
        &p,
        Overrides {
            step_s: Some(step_s),
            days: Some(days),
        },
    )
    .expect("example loads")
}

fn year(c: &mut Criterion) {
    let measuring = std::env::args().any(|a| a == "--bench");
    let days = if measuring { 365.0 } else { 1.0 };
    let mut g = c.benchmark_group("year_one_battery");
    g.sample_size(10);
    for (name, step) in [("60s", 60.0), ("1s", 1.0)] {
        let sc = scenario(step, days);
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = runner::run(&sc, &mut |_, _| {}).expect("runs");
                assert!(r.kpis.energy_balance_error_kwh.abs() < 1e-6);
                r.kpis.grid_import_kwh
            })
        });
    }
    g.finish();
}

criterion_group!(benches, year);
criterion_main!(benches);
