//! Physical causes in the twin (the `Faults` fields a sense drift, a current-sensor offset, a stuck
//! bleed FET, a welded contactor, a stuck NTC, thermal runaway at any SOC, micro-shorts under load)
//! and the codes the unit's own firmware raises for them through its normal detection.

use melv_core::status::BatteryCommand;
use melv_core::{AlertCode, Phases};
use melv_model::{Environment, Faults};
use melv_unit::{BatteryUnit, UnitConfig};

struct Bench {
    unit: BatteryUnit,
    env: Environment,
    now_s: f64,
    dt_s: f64,
    /// Setpoint as a function of time since the start, W (positive = discharge).
    setpoint: fn(f64) -> f64,
}

fn idle(_: f64) -> f64 {
    0.0
}

impl Bench {
    fn new(soc: f64, noise: bool) -> Self {
        let cfg = UnitConfig {
            phases: Phases::Single,
            initial_soc: soc,
            sensor_noise: noise,
            ..UnitConfig::default()
        };
        let mut b = Self {
            unit: BatteryUnit::new(&cfg, 0.0),
            env: Environment::nominal(Phases::Single),
            now_s: 0.0,
            dt_s: 1.0,
            setpoint: idle,
        };
        b.run(400.0); // past the reconnection wait and the ramp
        assert!(b.codes().is_empty(), "healthy start: {:?}", b.codes());
        b
    }

    fn run(&mut self, seconds: f64) {
        let end = self.now_s + seconds;
        while self.now_s < end {
            let cmd = BatteryCommand {
                active_power_w: (self.setpoint)(self.now_s),
                ..BatteryCommand::default()
            };
            self.unit.command(self.now_s, &cmd);
            self.unit.step(self.now_s, self.dt_s, &self.env);
            self.now_s += self.dt_s;
        }
    }

    /// Runs until `code` is held; returns the time it took, s.
    fn run_until(&mut self, code: u8, limit_s: f64) -> Option<f64> {
        let start = self.now_s;
        while self.now_s - start < limit_s {
            self.run(self.dt_s);
            if self.codes().contains(&code) {
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

#[test]
fn a_cell_sense_drift_raises_50_or_51() {
    // +0.45 V on cell 3: a 3.29 V cell reads 3.74 V, over the 3.65 V limit; the divider still
    // agrees within 1 V, so it is not a sensor fault.
    let mut b = Bench::new(0.5, false);
    b.faults().cell_v_offset = Some((3, 0.45));
    let t = b.run_until(50, 60.0);
    assert!(
        t.is_some_and(|t| t <= 2.0),
        "50 after {t:?}: {:?}",
        b.codes()
    );
    assert!(!b.codes().contains(&62), "{:?}", b.codes());
    let mut b = Bench::new(0.5, false);
    b.faults().cell_v_offset = Some((3, -0.85));
    let t = b.run_until(51, 60.0);
    assert!(
        t.is_some_and(|t| t <= 2.0),
        "51 after {t:?}: {:?}",
        b.codes()
    );
}

#[test]
fn a_current_sensor_offset_raises_56() {
    // -300 A read while idle: beyond 125 % of the ~180 A charge current the firmware allows.
    let mut b = Bench::new(0.5, true);
    b.faults().current_offset_a = -300.0;
    let t = b.run_until(AlertCode::BATTERY_OVERCURRENT.get(), 60.0);
    assert!(
        t.is_some_and(|t| t <= 6.0),
        "56 after {t:?}: {:?}",
        b.codes()
    );
}

#[test]
fn a_welded_contactor_raises_62_when_a_stop_is_not_obeyed() {
    for welded in [false, true] {
        let mut b = Bench::new(0.6, false);
        b.setpoint = |_| 3000.0;
        b.faults().contactor_welded = welded;
        b.run(60.0);
        assert!(b.unit.actuation().power_enabled);
        assert!(b.codes().is_empty(), "running normally: {:?}", b.codes());
        // The grid goes to 56 Hz: the firmware stops the unit (code 6); a welded contactor keeps
        // the pack on the bus and the power stage delivering.
        b.env.grid.frequency_hz = 56.0;
        let t = b.run_until(62, 60.0);
        if welded {
            assert!(
                t.is_some_and(|t| t <= 7.0),
                "62 after {t:?}: {:?}",
                b.codes()
            );
            let causes: Vec<_> = b.unit.firmware().unwrap().active_causes().collect();
            assert!(causes.contains(&"stop_not_obeyed"), "{causes:?}");
        } else {
            assert_eq!(
                b.codes(),
                vec![6],
                "a healthy contactor: the stop is obeyed"
            );
        }
    }
}

#[test]
fn a_stuck_temperature_sensor_raises_the_code_its_reading_implies() {
    // NTC 1 frozen at 70 degC: a hot cell to the firmware (53) and a spread of 45 K (55).
    let mut b = Bench::new(0.5, false);
    b.faults().temp_sensor_stuck = Some((1, 70.0));
    assert!(b.run_until(53, 60.0).is_some(), "{:?}", b.codes());
    assert!(b.run_until(55, 120.0).is_some(), "{:?}", b.codes());
    // Frozen at -30 degC: a cold cell (54).
    let mut b = Bench::new(0.5, false);
    b.faults().temp_sensor_stuck = Some((1, -30.0));
    assert!(b.run_until(54, 60.0).is_some(), "{:?}", b.codes());
}

#[test]
fn thermal_runaway_raises_60_first_at_low_and_mid_soc() {
    for soc in [0.1, 0.5] {
        let mut b = Bench::new(soc, true);
        b.faults().thermal_runaway = Some(4);
        let mut first: Option<Vec<u8>> = None;
        let mut took = None;
        for k in 0..3600 {
            b.run(1.0);
            let codes = b.codes();
            if first.is_none() && !codes.is_empty() {
                first = Some(codes.clone());
            }
            if codes.contains(&60) {
                took = Some(k + 1);
                break;
            }
        }
        // Before: at SOC 0.5 60 came 720 s in, after 55, 53, 62 and 51; at SOC 0.1 never.
        println!("SOC {soc}: 60 after {took:?} s");
        assert!(
            took.is_some_and(|t| t <= 480),
            "SOC {soc}: 60 after {took:?} s"
        );
        assert_eq!(first, Some(vec![60]), "SOC {soc}: 60 is the first code");
        assert!(!b.unit.actuation().power_enabled, "the unit stops");
    }
}

#[test]
fn a_healthy_noisy_unit_cycling_hard_never_raises_60() {
    let mut b = Bench::new(0.5, true);
    b.setpoint = |t| {
        if ((t / 7200.0) as u64).is_multiple_of(2) {
            3500.0
        } else {
            -3500.0
        }
    };
    let mut lo: f64 = 1.0;
    let mut hi: f64 = 0.0;
    for _ in 0..(3 * 24 * 4) {
        b.run(900.0);
        let soc = b.unit.truth().pack_soc;
        lo = lo.min(soc);
        hi = hi.max(soc);
        assert!(!b.codes().contains(&60), "{:?}", b.codes());
    }
    assert!(hi - lo > 0.6, "it cycled: SOC {lo}..{hi}");
}

/// Charge 3 kW for 3 h, discharge 3 kW for 3 h: both knees every cycle (7.2 kWh pack).
fn cycling(t: f64) -> f64 {
    if ((t / 10_800.0) as u64).is_multiple_of(2) {
        3000.0
    } else {
        -3000.0
    }
}

/// Cycles with the leak on cell 3 (or a stuck bleed FET) until 59 or `days`; returns the days.
fn days_to_59(fault: fn(&mut Faults), days: f64) -> Option<f64> {
    let mut b = Bench::new(0.5, true);
    fault(b.faults());
    b.setpoint = cycling;
    let start = b.now_s;
    while b.now_s - start < days * 86_400.0 {
        b.run(600.0);
        if b.codes().contains(&59) {
            return Some((b.now_s - start) / 86_400.0);
        }
    }
    None
}

#[test]
fn micro_shorts_under_cycling_raise_59() {
    // Before: only an idle pack was judged, so a cycling pack never raised 59 (50 ohm: 51 and 52
    // after days instead).
    type Case = (fn(&mut Faults), f64, &'static str);
    let cases: [Case; 3] = [
        (|f| f.micro_short = Some((3, 50.0)), 4.0, "50 ohm"),
        (|f| f.micro_short = Some((3, 200.0)), 5.0, "200 ohm"),
        (
            |f| f.bleed_stuck_on = Some(3),
            4.0,
            "stuck bleed FET (33 ohm)",
        ),
    ];
    for (fault, limit, name) in cases {
        let d = days_to_59(fault, limit);
        println!("{name}: 59 after {d:?} days");
        assert!(d.is_some(), "{name}: no 59 within {limit} days");
    }
}

#[test]
fn a_healthy_noisy_pack_cycling_30_days_never_raises_59() {
    let mut b = Bench::new(0.5, true);
    b.setpoint = cycling;
    for _ in 0..30 {
        b.run(86_400.0);
        assert!(
            b.codes().is_empty(),
            "day {}: {:?}",
            b.now_s / 86_400.0,
            b.codes()
        );
    }
}

#[test]
fn an_islanded_unit_forming_the_grid_holds_code_2() {
    // The utility goes; the gateway orders grid-forming (backup). The unit measures its own
    // 230 V, but it knows it is forming without a grid: code 2 (warning) while islanded, at 1 s
    // and at 1 h steps (where it never sees the outage before the order).
    for dt in [1.0, 3600.0] {
        let mut b = Bench::new(0.6, false);
        b.dt_s = dt;
        b.env.grid = melv_model::GridState::outage(Phases::Single);
        let mut held = true;
        let end = b.now_s + 4.0 * 3600.0;
        while b.now_s < end {
            // 500 W for 4 h from 60 %: the pack stays above the deep-sleep cut-off (5 % SOC).
            let cmd = BatteryCommand {
                active_power_w: 500.0,
                grid_forming: true,
                ..BatteryCommand::default()
            };
            b.unit.command(b.now_s, &cmd);
            b.unit.step(b.now_s, b.dt_s, &b.env);
            b.now_s += b.dt_s;
            if b.now_s > end - 3.0 * 3600.0 {
                held &= b.codes() == vec![2];
            }
        }
        assert!(held, "dt {dt}: {:?}", b.codes());
        assert!(
            b.unit.actuation().grid_forming,
            "dt {dt}: still forming (2 is a warning)"
        );
    }
}
