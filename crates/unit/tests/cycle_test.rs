//! The datasheet check of issue "battery unit": `melv cycle-test` at 25 °C and at -10 °C.

use melv_unit::cycle_test::{run, CycleTestError, CycleTestOptions};

#[test]
fn full_cycle_at_25c_meets_the_datasheet() {
    let r = run(&CycleTestOptions::default()).unwrap();
    println!("{r:#?}");
    // Manual 7.1: 7 kWh usable, DC round trip 96 %, AC round trip 90 %.
    assert!(
        (6.8..=7.2).contains(&r.usable_energy_kwh),
        "usable {}",
        r.usable_energy_kwh
    );
    assert!(
        (0.955..=0.965).contains(&r.dc_round_trip_efficiency),
        "dc {}",
        r.dc_round_trip_efficiency
    );
    assert!(
        (0.89..=0.91).contains(&r.ac_round_trip_efficiency),
        "ac {}",
        r.ac_round_trip_efficiency
    );
    assert!(r.alerts.is_empty(), "alerts {:?}", r.alerts);
    // 7 kWh at 3.75 kW is about 2 h; at 4.5 kW about 1.6 h.
    assert!(
        (1.7..=2.8).contains(&r.charge_hours),
        "charge {}",
        r.charge_hours
    );
    assert!(
        (1.3..=1.8).contains(&r.discharge_hours),
        "discharge {}",
        r.discharge_hours
    );
    assert!(
        r.soc_after_charge > 0.97 && r.soc_after_discharge < 0.03,
        "{r:?}"
    );
    assert!(r.heater_kwh < 1e-6, "no heating at 25 °C");
}

#[test]
fn cold_start_at_minus_10c_waits_for_the_heater_without_alerts() {
    let r = run(&CycleTestOptions {
        ambient_c: -10.0,
        ..CycleTestOptions::default()
    })
    .unwrap();
    println!("{r:#?}");
    assert!(r.alerts.is_empty(), "alerts {:?}", r.alerts);
    assert!(r.heater_kwh > 0.05, "the heater worked: {}", r.heater_kwh);
    assert!(
        r.charge_wait_hours > 0.1,
        "charging waited for heat: {}",
        r.charge_wait_hours
    );
    assert!(r.usable_energy_kwh > 6.0, "usable {}", r.usable_energy_kwh);
}

#[test]
fn bad_options_are_refused() {
    let check =
        |opts: CycleTestOptions, want: CycleTestError| assert_eq!(run(&opts).unwrap_err(), want);
    check(
        CycleTestOptions {
            power_w: Some(0.0),
            ..Default::default()
        },
        CycleTestError::Power {
            got: 0.0,
            max: 4500.0,
        },
    );
    check(
        CycleTestOptions {
            power_w: Some(6000.0),
            ..Default::default()
        },
        CycleTestError::Power {
            got: 6000.0,
            max: 4500.0,
        },
    );
    check(
        CycleTestOptions {
            ambient_c: 60.0,
            ..Default::default()
        },
        CycleTestError::Ambient(60.0),
    );
    let nan = run(&CycleTestOptions {
        ambient_c: f64::NAN,
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(nan, CycleTestError::Ambient(t) if t.is_nan()));
    check(
        CycleTestOptions {
            step_s: 0.0,
            ..Default::default()
        },
        CycleTestError::Step(0.0),
    );
}
