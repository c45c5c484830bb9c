//! Cost of one battery-unit step (firmware sample + decision + physics), the simulator's inner loop.
//! A year at 1 s steps is 31.5 million of them.
//!
//! `cargo bench -p melv-unit --bench step`. Under `cargo test` (no `--bench` flag) each case runs
//! once with a tiny input so that the bench cannot rot.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use melv_core::status::BatteryCommand;
use melv_model::Environment;
use melv_unit::{BatteryUnit, UnitConfig};
use std::hint::black_box;

fn unit_at(soc: f64) -> (BatteryUnit, Environment, f64) {
    let cfg = UnitConfig {
        initial_soc: soc,
        ..UnitConfig::default()
    };
    let env = Environment::nominal(cfg.phases);
    let mut unit = BatteryUnit::new(&cfg, 0.0);
    // Past start-up (reconnection wait and ramp).
    let mut now = 0.0;
    while now < 300.0 {
        unit.command(
            now,
            &BatteryCommand {
                active_power_w: 2000.0,
                ..BatteryCommand::default()
            },
        );
        unit.step(now, 1.0, &env);
        now += 1.0;
    }
    (unit, env, now)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("unit");
    for (name, dt) in [("step_1s", 1.0), ("step_60s", 60.0)] {
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || unit_at(0.5),
                |(unit, env, now)| {
                    // 100 steps per batch, alternating charge and discharge around mid SOC.
                    for k in 0..100 {
                        let p = if (k / 50) % 2 == 0 { 2000.0 } else { -2000.0 };
                        unit.command(
                            *now,
                            &BatteryCommand {
                                active_power_w: p,
                                ..BatteryCommand::default()
                            },
                        );
                        unit.step(*now, dt, env);
                        *now += dt;
                    }
                    black_box(unit.status().soc)
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
