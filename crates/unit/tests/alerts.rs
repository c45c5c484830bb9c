//! Alert scenarios on the whole unit: a cause is created in the twin's hardware or surroundings (never
//! by setting an alert), and the unit's own firmware must raise the code the manual lists for that
//! cause (6.3), and only the codes that cause implies, within the protection's delay; then it must
//! clear or latch as the catalogue says.
//!
//! Codes 50, 51, 52 and 56 guard against what the firmware itself prevents while it is in control
//! (over-charge, over-discharge, imbalance beyond balancing, over-current): with a healthy firmware
//! the twin cannot reach them, which `tests/safety.rs` checks; their detection is tested on
//! synthetic measurements in `crates/bms/tests/alerts.rs`. Code 63 is the gateway's (crate
//! `melv-can`).

use melv_core::io::PhaseRotation;
use melv_core::status::{BatteryCommand, UnitRequest};
use melv_core::{AlertCode, Country, Latch, Lifecycle, Phases};
use melv_model::{Environment, Faults, GridState};
use melv_unit::{BatteryUnit, UnitConfig};

/// A unit on a test bench: a site that cycles it daily (charge in the morning, discharge in the
/// evening), like a self-consumption home would.
struct Bench {
    unit: BatteryUnit,
    env: Environment,
    now_s: f64,
    dt_s: f64,
    /// Fixed setpoint; `None` follows the daily pattern.
    setpoint_w: Option<f64>,
}

impl Bench {
    fn new(phases: Phases, ambient_c: f64, soc: f64) -> Self {
        let cfg = UnitConfig {
            phases,
            initial_soc: soc,
            initial_temp_c: ambient_c,
            ..UnitConfig::default()
        };
        let mut env = Environment::nominal(phases);
        env.ambient_c = ambient_c;
        let mut b = Self {
            unit: BatteryUnit::new(&cfg, 0.0),
            env,
            now_s: 0.0,
            dt_s: 1.0,
            setpoint_w: None,
        };
        // Past the start-up reconnection wait of the grid profile (60 s generic).
        b.run(120.0);
        assert_eq!(
            b.codes(),
            Vec::<u8>::new(),
            "a healthy unit starts without alerts"
        );
        b
    }

    fn setpoint(&self) -> f64 {
        if let Some(p) = self.setpoint_w {
            return p;
        }
        let hour = (self.now_s / 3600.0) % 24.0;
        match hour {
            h if (6.0..12.0).contains(&h) => -3000.0,
            h if (16.0..23.0).contains(&h) => 3000.0,
            _ => 0.0,
        }
    }

    fn run(&mut self, seconds: f64) {
        let end = self.now_s + seconds;
        while self.now_s < end {
            let cmd = BatteryCommand {
                active_power_w: self.setpoint(),
                ..BatteryCommand::default()
            };
            self.unit.command(self.now_s, &cmd);
            self.unit.step(self.now_s, self.dt_s, &self.env);
            self.now_s += self.dt_s;
        }
    }

    /// Run until `code` is raised, at most `limit_s`; returns the seconds it took.
    fn run_until(&mut self, code: AlertCode, limit_s: f64) -> Option<f64> {
        let start = self.now_s;
        while self.now_s - start < limit_s {
            self.run(self.dt_s);
            if self.unit.status().alerts.contains(code) {
                return Some(self.now_s - start);
            }
        }
        None
    }

    fn codes(&self) -> Vec<u8> {
        self.unit.status().alerts.iter().map(|c| c.get()).collect()
    }

    fn faults(&mut self) -> &mut Faults {
        self.unit.faults_mut()
    }
}

/// One grid scenario: bad grid for a while, then a healthy grid again.
fn grid_case(code: AlertCode, phases: Phases, within_s: f64, spoil: impl Fn(&mut GridState)) {
    let mut b = Bench::new(phases, 25.0, 0.5);
    b.setpoint_w = Some(2000.0);
    spoil(&mut b.env.grid);
    let took = b
        .run_until(code, within_s)
        .unwrap_or_else(|| panic!("{code} not raised within {within_s} s: {:?}", b.codes()));
    assert!(took <= within_s, "{code} took {took} s");
    assert_eq!(b.codes(), vec![code.get()], "only {code}");
    b.run(5.0);
    assert!(
        b.unit.actuation().ac_power_w.abs() < 1e-9 || !b.unit.actuation().power_enabled,
        "{code}: the unit stops exchanging power"
    );
    // Healthy grid: the alert clears (AutoClear) and power comes back after the reconnection wait.
    assert_eq!(code.info().latch, Latch::AutoClear);
    b.env.grid = GridState::nominal(phases);
    b.run(400.0);
    assert_eq!(
        b.codes(),
        Vec::<u8>::new(),
        "{code} clears on a healthy grid"
    );
    assert!(
        b.unit.actuation().ac_power_w > 1000.0,
        "{code}: power is back after reconnection"
    );
}

#[test]
fn grid_outage_raises_2_and_the_unit_ceases_within_2_s() {
    // Manual 6.3 code 2; anti-islanding: cease within 2 s (issue, AS/NZS 4777.2 and IEC 62116).
    grid_case(AlertCode::GRID_POWER_OUTAGE, Phases::Single, 2.0, |g| {
        *g = GridState::outage(g.wired_phases)
    });
}

#[test]
fn grid_voltage_and_frequency_out_of_range() {
    // Manual 4.1.1 and 7.1: 176-276 V L-N; 45-55 Hz at 50 Hz.
    grid_case(AlertCode::GRID_UNDERVOLTAGE, Phases::Single, 3.0, |g| {
        g.phase_v[0] = 160.0
    });
    grid_case(AlertCode::GRID_OVERVOLTAGE, Phases::Single, 3.0, |g| {
        g.phase_v[0] = 290.0
    });
    grid_case(AlertCode::GRID_UNDERFREQUENCY, Phases::Single, 3.0, |g| {
        g.frequency_hz = 44.0
    });
    grid_case(AlertCode::GRID_OVERFREQUENCY, Phases::Single, 3.0, |g| {
        g.frequency_hz = 56.0
    });
}

#[test]
fn distribution_errors_raise_13() {
    // Manual 6.3 code 13, causes: phase loss, reversed phase sequence, wiring inconsistent with the
    // configuration. (Short circuit: see below.)
    grid_case(AlertCode::DISTRIBUTION_ERROR, Phases::Three, 5.0, |g| {
        g.phase_v[2] = 0.0
    });
    grid_case(AlertCode::DISTRIBUTION_ERROR, Phases::Three, 5.0, |g| {
        g.rotation = PhaseRotation::Negative
    });
    grid_case(AlertCode::DISTRIBUTION_ERROR, Phases::Three, 5.0, |g| {
        *g = GridState::nominal(Phases::Single)
    });
    grid_case(AlertCode::DISTRIBUTION_ERROR, Phases::Three, 5.0, |g| {
        g.short_circuit = true
    });
}

#[test]
fn dc_components_raise_7_and_18() {
    for (code, inject) in [
        (AlertCode::DC_CURRENT_COMPONENT, (2.0, 0.0)),
        (AlertCode::DC_VOLTAGE_COMPONENT, (0.0, 20.0)),
    ] {
        let mut b = Bench::new(Phases::Single, 25.0, 0.5);
        b.setpoint_w = Some(2000.0);
        b.faults().dc_current_injection_a = inject.0;
        b.faults().dc_voltage_injection_v = inject.1;
        assert!(b.run_until(code, 10.0).is_some(), "{code}: {:?}", b.codes());
        assert_eq!(b.codes(), vec![code.get()]);
        b.faults().dc_current_injection_a = 0.0;
        b.faults().dc_voltage_injection_v = 0.0;
        b.run(400.0);
        assert_eq!(
            b.codes(),
            Vec::<u8>::new(),
            "{code} clears by itself (manual: returns to normal)"
        );
    }
}

#[test]
fn failed_fan_in_a_hot_room_raises_53_and_it_clears_when_cool() {
    // Manual 6.3 code 53, cause 3: the fan is not working normally.
    let mut b = Bench::new(Phases::Single, 45.0, 0.5);
    b.faults().fan_failed = true;
    let took = b.run_until(AlertCode::BATTERY_OVERTEMPERATURE, 2.0 * 86_400.0);
    assert!(
        took.is_some(),
        "53 within two days of cycling: {:?}",
        b.codes()
    );
    b.run(20.0);
    // Manual 6.3 lists the fan for 55 too (cell temperature difference): both are raised.
    assert_eq!(b.codes(), vec![53, 55]);
    assert!(
        b.unit
            .firmware()
            .unwrap()
            .active_causes()
            .any(|c| c == "fan_stalled"),
        "the fan is named as the cause"
    );
    // Repaired fan and a cooler room: 53 clears by itself (AutoClear), 55 waits for "reset the
    // system" (UntilReset, manual 6.3's solution for 55).
    b.faults().fan_failed = false;
    b.env.ambient_c = 25.0;
    b.run(6.0 * 3600.0);
    assert_eq!(b.codes(), vec![55]);
    b.unit.request(b.now_s, UnitRequest::Reset);
    b.run(10.0);
    assert_eq!(b.codes(), Vec::<u8>::new());
}

#[test]
fn failed_heater_in_the_cold_raises_54() {
    // Manual 6.3 code 54, cause 3: the heating system is not working normally.
    let mut b = Bench::new(Phases::Single, -15.0, 0.5);
    b.faults().heater_failed = true;
    assert!(
        b.run_until(AlertCode::LOW_BATTERY_TEMPERATURE, 86_400.0)
            .is_some(),
        "{:?}",
        b.codes()
    );
    assert_eq!(b.codes(), vec![54]);
}

#[test]
fn a_healthy_heater_prevents_54_in_the_same_cold() {
    let mut b = Bench::new(Phases::Single, -15.0, 0.5);
    b.run(86_400.0);
    assert_eq!(b.codes(), Vec::<u8>::new());
}

#[test]
fn ambient_outside_the_operating_range_raises_64() {
    // Manual 7.1: ambient -20..55 °C; 6.3 code 64: the operating environment is abnormal.
    let mut b = Bench::new(Phases::Single, 25.0, 0.5);
    b.env.ambient_c = 60.0;
    assert!(
        b.run_until(AlertCode::ACTIVE_DEVICE_PROTECTION, 86_400.0)
            .is_some(),
        "{:?}",
        b.codes()
    );
    assert!(b.codes().contains(&64));
    // A room at 60 °C is also "ambient temperature too high" (53, cause 2); nothing else.
    assert!(
        b.codes().iter().all(|c| [53, 64].contains(c)),
        "{:?}",
        b.codes()
    );
    b.env.ambient_c = 25.0;
    b.run(12.0 * 3600.0);
    assert_eq!(b.codes(), Vec::<u8>::new(), "both clear by themselves");
}

#[test]
fn internal_circuit_faults_raise_62_which_latches_until_reset() {
    let cases: [fn(&mut Faults); 3] = [
        |f| f.power_stage_fault = true,
        |f| f.insulation_kohm = 30.0,
        |f| f.open_sense_wire = Some(3),
    ];
    for spoil in cases {
        let mut b = Bench::new(Phases::Single, 25.0, 0.5);
        spoil(b.faults());
        assert!(
            b.run_until(AlertCode::INTERNAL_DEVICE_ERROR, 60.0)
                .is_some(),
            "{:?}",
            b.codes()
        );
        assert_eq!(b.codes(), vec![62]);
        assert_eq!(b.unit.status().lifecycle, Lifecycle::LatchedFault);
        // Repaired: still latched until "reset the system" (manual 6.3 code 62 solution steps).
        *b.faults() = Faults::default();
        b.run(60.0);
        assert_eq!(b.codes(), vec![62], "latched");
        b.unit.request(b.now_s, UnitRequest::Reset);
        b.run(120.0);
        assert_eq!(b.codes(), Vec::<u8>::new(), "cleared by reset");
        assert_eq!(b.unit.status().lifecycle, Lifecycle::Active);
    }
}

#[test]
fn power_cycle_by_the_ac_input_also_clears_a_latched_62() {
    // Manual 6.3 code 62, step 3: disconnect the AC input, wait for the indicator to go out, restore.
    let mut b = Bench::new(Phases::Single, 25.0, 0.5);
    b.faults().power_stage_fault = true;
    assert!(b
        .run_until(AlertCode::INTERNAL_DEVICE_ERROR, 60.0)
        .is_some());
    *b.faults() = Faults::default();
    b.env.grid = GridState::outage(Phases::Single);
    b.run(melv_unit::AUX_HOLDUP_S + 5.0);
    assert!(!b.unit.is_powered(), "the indicator went out");
    b.env.grid = GridState::nominal(Phases::Single);
    b.run(120.0);
    assert!(b.unit.is_powered());
    assert_eq!(b.codes(), Vec::<u8>::new());
}

#[test]
fn a_micro_short_raises_59_permanently() {
    // Manual 6.3 code 59: a cell whose self-discharge is abnormal. 0.5 Ohm leaks 6.5 A from one cell.
    let mut b = Bench::new(Phases::Single, 25.0, 0.5);
    b.setpoint_w = Some(0.0);
    b.faults().micro_short = Some((2, 0.5));
    assert!(
        b.run_until(AlertCode::MICRO_SHORT_CIRCUIT, 24.0 * 3600.0)
            .is_some(),
        "{:?}",
        b.codes()
    );
    assert!(b.codes().contains(&59));
    assert_eq!(
        AlertCode::MICRO_SHORT_CIRCUIT.info().latch,
        Latch::Permanent
    );
    b.unit.request(b.now_s, UnitRequest::Reset);
    b.run(60.0);
    assert!(b.codes().contains(&59), "only service clears 59");
}

#[test]
fn thermal_runaway_raises_60() {
    let mut b = Bench::new(Phases::Single, 25.0, 0.9);
    b.faults().thermal_runaway = Some(4);
    assert!(
        b.run_until(AlertCode::THERMAL_RUNAWAY, 3600.0).is_some(),
        "{:?}",
        b.codes()
    );
    assert!(!b.unit.actuation().power_enabled, "the unit stops");
    assert_eq!(b.unit.status().status_led, melv_core::StatusLed::SolidRed);
}

#[test]
fn an_aged_pack_raises_57_from_the_soh_estimate() {
    // 33 % capacity lost: the firmware learns it from the charge counted between full and empty on
    // ordinary cycles (it never reads the twin's capacity) and raises 57 (manual 6.3: low SOH).
    let cfg = UnitConfig {
        initial_soc: 0.5,
        initial_capacity_fade: 0.33,
        ..UnitConfig::default()
    };
    let env = Environment::nominal(cfg.phases);
    let mut unit = BatteryUnit::new(&cfg, 0.0);
    let mut now = 0.0;
    let dt = 10.0;
    let mut raised = false;
    // Cycle full/empty at 3 kW (about 1.5 h each way on the aged pack), at most 20 days.
    let mut charging = true;
    while now < 20.0 * 86_400.0 && !raised {
        let st = unit.status();
        if charging && st.max_charge_w < 1.0 && st.soc > 0.9 {
            charging = false;
        } else if !charging && st.max_discharge_w < 1.0 && st.soc < 0.1 {
            charging = true;
        }
        let p = if charging { -3000.0 } else { 3000.0 };
        unit.command(
            now,
            &BatteryCommand {
                active_power_w: p,
                ..BatteryCommand::default()
            },
        );
        unit.step(now, dt, &env);
        now += dt;
        raised = unit.status().alerts.contains(AlertCode::LOW_SOH);
    }
    let st = unit.status();
    assert!(raised, "57 after learning the capacity; soh {}", st.soh);
    assert!(st.soh < 0.70 && st.soh > 0.6, "soh {}", st.soh);
    assert_eq!(
        st.alerts.iter().map(|c| c.get()).collect::<Vec<_>>(),
        vec![57]
    );
    // Manual 6.3, 57: "The battery lifespan has reached its end. Please stop using the battery."
    assert_eq!(st.lifecycle, Lifecycle::LatchedFault, "57 stops the unit");
    assert!(!unit.actuation().power_enabled);
}

#[test]
fn country_profiles_change_the_trip_points() {
    // 255 V passes the manual's generic 276 V limit but trips AS/NZS 4777.2's sustained 10-minute
    // average (258 V) only above it; 262 V trips the Australian profile's 10-minute average.
    let mut b = Bench::new(Phases::Single, 25.0, 0.5);
    b.env.grid.phase_v[0] = 262.0;
    b.run(1200.0);
    assert_eq!(
        b.codes(),
        Vec::<u8>::new(),
        "generic profile: 262 V is within 176-276 V"
    );

    let cfg = UnitConfig {
        country: Country::Australia,
        ..UnitConfig::default()
    };
    let mut unit = BatteryUnit::new(&cfg, 0.0);
    let mut env = Environment::nominal(Phases::Single);
    env.grid.phase_v[0] = 262.0;
    let mut now = 0.0;
    let mut raised = false;
    while now < 1200.0 && !raised {
        unit.command(now, &BatteryCommand::default());
        unit.step(now, 1.0, &env);
        now += 1.0;
        raised = unit.status().alerts.contains(AlertCode::GRID_OVERVOLTAGE);
    }
    assert!(
        raised,
        "AS/NZS 4777.2 sustained over-voltage trips at 262 V"
    );
}
