//! Cost of one battery-unit plant step plus one sensor reading (the model half of a unit step).
//! Run: `CARGO_TARGET_DIR=/work/target-model cargo bench -p melv-model --bench plant`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use melv_core::io::Actuation;
use melv_core::Phases;
use melv_model::{Environment, Plant, PlantConfig};

fn bench(c: &mut Criterion) {
    let env = Environment::nominal(Phases::Single);
    let mut plant = Plant::new(&PlantConfig::default());
    // A slow sine of power so that the plant never reaches a limit during the bench.
    let mut k = 0u64;
    c.bench_function("plant_step_1s_plus_measure", |b| {
        b.iter(|| {
            k += 1;
            let p = if (k / 3600) & 1 == 0 { 2000.0 } else { -2000.0 };
            let act = Actuation {
                power_enabled: true,
                ac_power_w: p,
                fan_duty: 0.4,
                ..Default::default()
            };
            plant.step(black_box(1.0), &act, &env);
            black_box(plant.measure(&env))
        })
    });
    let mut plant = Plant::new(&PlantConfig {
        sensor_noise: false,
        ..PlantConfig::default()
    });
    c.bench_function("plant_step_1s_plus_measure_exact_sensors", |b| {
        b.iter(|| {
            k += 1;
            let p = if (k / 3600) & 1 == 0 { 2000.0 } else { -2000.0 };
            let act = Actuation {
                power_enabled: true,
                ac_power_w: p,
                fan_duty: 0.4,
                ..Default::default()
            };
            plant.step(black_box(1.0), &act, &env);
            black_box(plant.measure(&env))
        })
    });
    let mut plant = Plant::new(&PlantConfig::default());
    c.bench_function("plant_step_60s_plus_measure", |b| {
        b.iter(|| {
            k += 1;
            let p = if (k / 60) & 1 == 0 { 2000.0 } else { -2000.0 };
            let act = Actuation {
                power_enabled: true,
                ac_power_w: p,
                fan_duty: 0.4,
                ..Default::default()
            };
            plant.step(black_box(60.0), &act, &env);
            black_box(plant.measure(&env))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
