//! A full cycle on the plant alone, with simple cut-offs at the cell voltage limits, against the
//! datasheet: DC round trip 96 %, AC round trip 90 %, usable energy 7 kWh (manual 7.1).

use melv_core::io::Actuation;
use melv_core::spec::assumed::{CELL_CHARGE_END_V, CELL_DISCHARGE_END_V};
use melv_core::spec::{MAX_CONTINUOUS_INPUT_VA, MAX_CONTINUOUS_OUTPUT_VA};
use melv_core::Phases;
use melv_model::{EnergyLedger, Environment, Plant, PlantConfig};

fn act(p_w: f64) -> Actuation {
    Actuation {
        power_enabled: true,
        ac_power_w: p_w,
        fan_duty: 0.3,
        ..Default::default()
    }
}

/// Runs at `p_w` until the cut-off (max cell >= 3.60 V charging, min cell <= 2.50 V discharging), at
/// most `max_s`; returns the seconds run.
fn run_to_cutoff(plant: &mut Plant, env: &Environment, p_w: f64, max_s: f64) -> f64 {
    let mut t = 0.0;
    while t < max_s {
        plant.step(1.0, &act(p_w), env);
        t += 1.0;
        let v = plant.truth().cell_v;
        let hit = if p_w < 0.0 {
            v.iter().any(|&x| x >= CELL_CHARGE_END_V)
        } else {
            v.iter().any(|&x| x <= CELL_DISCHARGE_END_V)
        };
        if hit {
            break;
        }
    }
    t
}

fn rest(plant: &mut Plant, env: &Environment, s: f64) {
    for _ in 0..(s as usize / 10) {
        plant.step(10.0, &act(0.0), env);
    }
}

/// (DC round trip, AC round trip, AC energy out Wh) of charge 3.75 kW / rest / discharge 4.5 kW.
fn full_cycle(seed: u64, ambient_c: f64) -> (f64, f64, f64, EnergyLedger, EnergyLedger) {
    let cfg = PlantConfig {
        seed,
        initial_temp_c: ambient_c,
        ..PlantConfig::default()
    };
    let mut plant = Plant::new(&cfg);
    let env = Environment {
        ambient_c,
        ..Environment::nominal(Phases::Single)
    };
    // Start where the previous discharge ended.
    run_to_cutoff(&mut plant, &env, MAX_CONTINUOUS_OUTPUT_VA, 20_000.0);
    rest(&mut plant, &env, 1800.0);
    let e0 = *plant.energy();
    run_to_cutoff(&mut plant, &env, -MAX_CONTINUOUS_INPUT_VA, 20_000.0);
    let e1 = *plant.energy();
    rest(&mut plant, &env, 1800.0);
    let e2 = *plant.energy();
    run_to_cutoff(&mut plant, &env, MAX_CONTINUOUS_OUTPUT_VA, 20_000.0);
    let e3 = *plant.energy();
    let charge = e1.since(&e0);
    let discharge = e3.since(&e2);
    let all = e3.since(&e0);
    let dc = all.dc_out_wh / all.dc_in_wh;
    // At the unit's AC terminals: the inverter's import and the auxiliary supply's (standby, fan),
    // which a meter there sees together.
    let ac = all.ac_out_wh / all.ac_import_wh();
    eprintln!("seed {seed} {ambient_c} degC: dc {dc:.4} ac {ac:.4} ac_out {:.0} Wh dc_out {:.0} ac_in {:.0}\n charge {charge:?}\n discharge {discharge:?}", all.ac_out_wh, all.dc_out_wh, all.ac_in_wh);
    (dc, ac, all.ac_out_wh, charge, discharge)
}

#[test]
fn datasheet_round_trips_and_usable_energy() {
    for seed in [1, 2, 3] {
        let (dc, ac, out_wh, charge, discharge) = full_cycle(seed, 25.0);
        // This cycle runs the bare plant between hard voltage cut-offs, with no firmware taper or
        // balancing; the datasheet's 96 % (manual 7.1) is asserted on the product's own cycle,
        // through the firmware, in melv-unit's tests/cycle_test.rs. The bare plant is a little more
        // efficient (no balancing bleed, no taper tail), hence the wider band above 96 %.
        assert!(
            (0.955..=0.970).contains(&dc),
            "seed {seed}: DC round trip {dc}"
        );
        assert!(
            (0.89..=0.91).contains(&ac),
            "seed {seed}: AC round trip {ac}"
        );
        assert!(
            (6_800.0..=7_200.0).contains(&out_wh),
            "seed {seed}: AC out {out_wh} Wh"
        );
        for l in [charge, discharge] {
            assert!(l.ac_balance_error_wh().abs() < 1e-6, "{l:?}");
            assert!(l.dc_balance_error_wh().abs() < 1e-6, "{l:?}");
        }
    }
}
