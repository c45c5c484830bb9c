//! The cold-charge margin of the firmware (`melv_bms::limits::COLD_CHARGE_MARGIN_C`) against the
//! twin: its sensor error is the twin's NTC budget, and its placement budget covers how far a cell
//! falls below the sensor it shares with its neighbour, measured here under the heater and at high
//! current (docs/firmware.md, "Cold charging").

use melv_bms::limits::{TEMP_PLACEMENT_BUDGET_C, TEMP_SENSOR_ERROR_C};
use melv_core::io::Actuation;
use melv_core::Phases;
use melv_model::sensors::TEMP;
use melv_model::{Environment, Plant, PlantConfig};

#[test]
fn sensor_error_is_the_twins_ntc_budget() {
    // Fixed error + noise + half a quantum.
    let twin = TEMP.0 + TEMP.1 + 0.5 * TEMP.2;
    assert!((TEMP_SENSOR_ERROR_C - twin).abs() < 1e-12, "{twin}");
}

/// Largest half-difference of the two cells under one sensor over six hours, K.
fn worst_pair_half_difference(ambient_c: f64, t0: f64, soc: f64, act: &Actuation) -> f64 {
    let mut p = Plant::new(&PlantConfig {
        sensor_noise: false,
        initial_soc: soc,
        initial_temp_c: t0,
        ..PlantConfig::default()
    });
    let env = Environment {
        ambient_c,
        ..Environment::nominal(Phases::Single)
    };
    let mut worst = 0.0f64;
    for _ in 0..(6 * 360) {
        p.step(10.0, act, &env);
        let t = p.truth().cell_temp_c;
        for k in 0..4 {
            worst = worst.max((t[2 * k] - t[2 * k + 1]).abs() / 2.0);
        }
        let (lo, hi) = p.cell_v_min_max();
        if !(2.6..=3.6).contains(&lo) || hi > 3.6 {
            break;
        }
    }
    worst
}

#[test]
fn placement_budget_covers_heater_and_high_current() {
    let act = |p_w: f64, heater_on: bool, fan_duty: f64| Actuation {
        power_enabled: true,
        ac_power_w: p_w,
        heater_on,
        fan_duty,
        ..Actuation::default()
    };
    let cases = [
        (
            "heater on at -20 degC",
            -20.0,
            -20.0,
            0.5,
            act(0.0, true, 0.0),
        ),
        (
            "heater on at -15 degC",
            -15.0,
            -15.0,
            0.5,
            act(0.0, true, 0.0),
        ),
        (
            "heater and 3.75 kW charge",
            -15.0,
            0.0,
            0.1,
            act(-3750.0, true, 0.0),
        ),
        (
            "heater, charge, fan",
            -15.0,
            0.0,
            0.1,
            act(-3750.0, true, 1.0),
        ),
        (
            "4.5 kW discharge, cold",
            -15.0,
            -5.0,
            0.9,
            act(4500.0, false, 0.0),
        ),
        (
            "4.5 kW discharge, fan",
            -15.0,
            -5.0,
            0.9,
            act(4500.0, false, 1.0),
        ),
        ("cooling down", -15.0, 10.0, 0.5, act(0.0, false, 0.0)),
    ];
    let mut worst = 0.0f64;
    for (name, amb, t0, soc, a) in cases {
        let w = worst_pair_half_difference(amb, t0, soc, &a);
        println!("{name}: a cell up to {w:.2} K below its sensor");
        worst = worst.max(w);
    }
    // Measured: 2.45 K with the heater on (the end cells lose more heat), 0.7 K at high current.
    assert!(worst > 2.0, "{worst}");
    assert!(worst <= TEMP_PLACEMENT_BUDGET_C, "{worst}");
}
