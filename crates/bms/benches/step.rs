//! Cost of one firmware control cycle (`Firmware::step`), the hot loop of a year-long simulation
//! (31.5 M calls at 1 s). `cargo bench -p melv-bms` measures; `cargo test` runs it once, tiny, so
//! it cannot rot.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use melv_bms::{Firmware, FirmwareConfig, Nvm};
use melv_core::io::{AcMeasurements, Measurements, PhaseRotation};
use melv_core::status::BatteryCommand;
use melv_core::types::Phases;

fn sample(k: u64) -> Measurements {
    // A little variation so nothing is constant-folded; all healthy.
    let wobble = (k % 7) as f64 * 0.001;
    Measurements {
        cell_v: [3.30 + wobble; 8],
        pack_v: 26.4 + 8.0 * wobble,
        pack_current_a: -50.0 + wobble,
        cell_temp_c: [25.0, 25.5, 26.0, 25.2],
        inlet_temp_c: 22.0,
        fan_rpm: 0.0,
        heater_current_a: 0.0,
        ac: AcMeasurements {
            phase_v: [230.0 + wobble, 0.0, 0.0],
            frequency_hz: 50.0,
            rotation: PhaseRotation::Positive,
            wired_phases: Phases::Single,
            dc_current_component_a: 0.0,
            dc_voltage_component_v: 0.0,
            ac_power_w: -1300.0,
            ac_short_circuit: false,
        },
        insulation_kohm: 10_000.0,
        power_stage_fault: false,
    }
}

fn bench_step(c: &mut Criterion) {
    let mut fw = Firmware::boot(FirmwareConfig::default(), Nvm::new_unit(0.5, true), 0.0);
    let cmd = BatteryCommand {
        active_power_w: -1300.0,
        ..Default::default()
    };
    let mut t = 0.0;
    let mut k = 0u64;
    // Connect and ramp first, so the measured cycle is the normal running one.
    for _ in 0..400 {
        t += 1.0;
        fw.handle_command(t, &cmd);
        fw.step(t, &sample(0));
    }
    c.bench_function("firmware step (1 s cadence, running)", |b| {
        b.iter(|| {
            t += 1.0;
            k += 1;
            fw.handle_command(t, &cmd);
            black_box(fw.step(t, black_box(&sample(k))))
        })
    });
}

criterion_group!(benches, bench_step);
criterion_main!(benches);
