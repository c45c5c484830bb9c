//! The fault injections added for codes 50/51/52/56/62: old JSON still reads, and each acts on
//! the reading (or the physics) it names.

use melv_model::Faults;

#[test]
fn old_fault_json_still_reads() {
    let f: Faults = serde_json::from_str(r#"{"fan_failed": true, "insulation_kohm": 500.0}"#)
        .expect("fields added later take their defaults");
    assert!(f.fan_failed && f.cell_v_offset.is_none() && !f.contactor_welded);
    assert_eq!(f.current_offset_a, 0.0);
    assert!(f.bleed_stuck_on.is_none() && f.temp_sensor_stuck.is_none());
    let all = Faults {
        cell_v_offset: Some((3, 0.1)),
        current_offset_a: 2.0,
        bleed_stuck_on: Some(1),
        contactor_welded: true,
        temp_sensor_stuck: Some((2, 40.0)),
        ..Faults::default()
    };
    let back: Faults = serde_json::from_str(&serde_json::to_string(&all).unwrap()).unwrap();
    assert_eq!(back, all);
}

fn quiet_plant(soc: f64) -> melv_model::Plant {
    melv_model::Plant::new(&melv_model::PlantConfig {
        initial_soc: soc,
        sensor_noise: false,
        ..melv_model::PlantConfig::default()
    })
}

#[test]
fn a_stuck_bleed_drains_its_cell_whatever_the_mask() {
    use melv_core::io::Actuation;
    let env = melv_model::Environment::nominal(melv_core::Phases::Single);
    let mut p = quiet_plant(0.5);
    p.faults_mut().bleed_stuck_on = Some(2);
    let before = p.truth().cell_soc;
    for _ in 0..24 {
        p.step(3600.0, &Actuation::default(), &env);
    }
    let after = p.truth().cell_soc;
    let lost = |i: usize| (before[i] - after[i]) * 280.0;
    // 3.3 V / 33 ohm = 0.1 A: about 2.4 Ah a day more than the neighbours.
    let extra = lost(2) - lost(3);
    assert!((2.0..2.8).contains(&extra), "cell 2 lost {extra} Ah more");
}

#[test]
fn a_welded_contactor_holds_the_last_power_when_disabled() {
    use melv_core::io::Actuation;
    let env = melv_model::Environment::nominal(melv_core::Phases::Single);
    let run = Actuation {
        power_enabled: true,
        ac_power_w: 2000.0,
        ..Actuation::default()
    };
    for welded in [false, true] {
        let mut p = quiet_plant(0.6);
        p.faults_mut().contactor_welded = welded;
        p.step(10.0, &run, &env);
        p.step(10.0, &Actuation::default(), &env);
        let i = p.truth().pack_current_a;
        if welded {
            assert!(i > 50.0, "welded: still {i} A");
        } else {
            assert!(i.abs() < 2.0, "healthy: {i} A");
        }
    }
}

#[test]
fn sensor_faults_act_on_their_readings() {
    let env = melv_model::Environment::nominal(melv_core::Phases::Single);
    let mut p = quiet_plant(0.5);
    let m0 = p.measure(&env);
    p.faults_mut().cell_v_offset = Some((4, 0.2));
    p.faults_mut().current_offset_a = 7.0;
    p.faults_mut().temp_sensor_stuck = Some((3, 66.0));
    let m = p.measure(&env);
    assert!((m.cell_v[4] - m0.cell_v[4] - 0.2).abs() < 1e-9);
    assert_eq!(m.pack_v, m0.pack_v, "the divider reads the truth");
    assert!((m.pack_current_a - m0.pack_current_a - 7.0).abs() < 1e-9);
    assert_eq!(m.cell_temp_c[3], 66.0);
}
