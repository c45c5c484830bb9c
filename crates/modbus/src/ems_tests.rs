//! Tests of the EMS bridge: external controls through the controller's own layers.

use crate::control::ExternalControl;
use crate::ems::EmsBridge;
use melv_core::status::BatteryStatus;
use melv_core::{AlertSet, Country, Lifecycle, Phases, SocLed, StatusLed, WorkingMode};
use melv_ems::{Controller, Reason, Settings, SiteConfig, SiteInputs};

fn battery(soc: f64) -> BatteryStatus {
    BatteryStatus {
        soc,
        soh: 1.0,
        pack_v: 26.4,
        pack_current_a: 0.0,
        ac_power_w: 0.0,
        reactive_power_var: 0.0,
        min_cell_v: 3.3,
        max_cell_v: 3.3,
        min_temp_c: 25.0,
        max_temp_c: 25.0,
        // Manual 7.1: 3.75 kVA in, 4.5 kVA out.
        max_charge_w: 3750.0,
        max_discharge_w: 4500.0,
        alerts: AlertSet::EMPTY,
        lifecycle: Lifecycle::Active,
        soc_led: SocLed::Off,
        status_led: StatusLed::Off,
        ac_charged_wh: 0.0,
        ac_discharged_wh: 0.0,
    }
}

struct Case {
    load_w: f64,
    pv_w: f64,
    soc: f64,
    ext: ExternalControl,
}

/// Runs three 60 s cycles under `ext`; the last decision's power and reason, whether it was
/// dispatched, and the controller's mode and reserve afterwards.
fn run(c: &Case) -> (f64, Reason, bool, WorkingMode, f64) {
    let site = SiteConfig::new(Phases::Single, Country::Generic, 1, chrono_tz::UTC);
    let owner = Settings::self_consumption();
    let mut ctrl = Controller::new(site, owner.clone()).unwrap();
    let bridge = EmsBridge::new(owner);
    let b = [battery(c.soc)];
    let mut applied = None;
    for k in 0..3 {
        let inp = SiteInputs {
            now_s: 1_780_272_000 + 60 * k,
            grid_available: true,
            grid_power_w: [c.load_w - c.pv_w, 0.0, 0.0],
            grid_v: [230.0, 0.0, 0.0],
            frequency_hz: 50.0,
            pv_w: Some(c.pv_w),
            load_w: Some(c.load_w),
            batteries: &b,
        };
        applied = Some(bridge.step(&mut ctrl, &inp, &c.ext));
    }
    let a = applied.unwrap();
    let d = ctrl.decision();
    (
        d.battery_w,
        d.reason,
        a.dispatched_w.is_some(),
        ctrl.settings().mode,
        ctrl.settings().reserve_soc,
    )
}

fn check(c: Case, power_w: f64, reason: Reason, dispatched: bool) {
    let (p, r, disp, mode, _) = run(&c);
    assert!((p - power_w).abs() < 1.0, "power {p} vs {power_w}");
    assert_eq!((r, disp), (reason, dispatched), "power {p}");
    // The owner's mode is what the controller holds between cycles.
    assert_eq!(mode, WorkingMode::SelfConsumption);
}

fn ext(f: impl FnOnce(&mut ExternalControl)) -> ExternalControl {
    let mut e = ExternalControl::NONE;
    f(&mut e);
    e
}

#[test]
fn a_remote_stop_holds_the_bank_at_zero_power() {
    // 802 SetInvState = STOPPED (or SetOp = DISCONNECT), as the control state hands it over.
    let mut s = crate::control::ControlState::new(crate::control::WatchdogConfig::default());
    s.handle(
        0.0,
        crate::control::ExternalCommand::SetInverterState {
            state: crate::control::InverterState::Stopped,
        },
    );
    let stopped = s.current();
    for (load_w, pv_w) in [(500.0, 3000.0), (3000.0, 0.0)] {
        check(
            Case {
                load_w,
                pv_w,
                soc: 0.5,
                ext: stopped,
            },
            0.0,
            Reason::ExternalDispatch,
            true,
        );
    }
}

#[test]
fn external_controls_pass_through_the_controller() {
    let surplus = |e| Case {
        load_w: 500.0,
        pv_w: 3000.0,
        soc: 0.5,
        ext: e,
    };
    let deficit = |e| Case {
        load_w: 3000.0,
        pv_w: 0.0,
        soc: 0.5,
        ext: e,
    };
    // Nothing external: self-consumption charges the surplus.
    check(
        surplus(ExternalControl::NONE),
        -2500.0,
        Reason::SelfConsumptionCharge,
        false,
    );
    // A charge limit below the wish is dispatched as the bound.
    check(
        surplus(ext(|e| e.min_w = -750.0)),
        -750.0,
        Reason::ExternalDispatch,
        true,
    );
    // A limit the wish lies within changes nothing.
    check(
        surplus(ext(|e| e.min_w = -3000.0)),
        -2500.0,
        Reason::SelfConsumptionCharge,
        false,
    );
    // A forced charge (negative discharge limit) on a deficit: charge from the grid.
    check(
        deficit(ext(|e| e.max_w = -1000.0)),
        -1000.0,
        Reason::ExternalDispatch,
        true,
    );
    // ... but with ChaGriSet = PV there is no surplus to charge from: the window closes at 0.
    check(
        deficit(ext(|e| {
            e.max_w = -1000.0;
            e.grid_charging = Some(false);
        })),
        0.0,
        Reason::ExternalDispatch,
        true,
    );
    // A setpoint is followed ...
    check(
        deficit(ext(|e| e.setpoint_w = Some(1000.0))),
        1000.0,
        Reason::ExternalDispatch,
        true,
    );
    // ... within the window ...
    check(
        deficit(ext(|e| {
            e.setpoint_w = Some(3000.0);
            e.max_w = 2000.0;
        })),
        2000.0,
        Reason::ExternalDispatch,
        true,
    );
    // ... and within the safety layers, which name themselves.
    let (p, r, _, _, _) = run(&deficit(ext(|e| e.setpoint_w = Some(20_000.0))));
    assert!(p <= 4500.0 + 1e-6 && p > 4000.0, "{p}");
    assert_ne!(r, Reason::ExternalDispatch);
}

#[test]
fn the_reserve_goes_through_settings_validation() {
    // Reserve 60 % at SOC 50 %: no discharge on a deficit, the reserve layer says so.
    let c = Case {
        load_w: 3000.0,
        pv_w: 0.0,
        soc: 0.5,
        ext: ext(|e| e.reserve_soc = Some(0.6)),
    };
    let (p, r, _, _, reserve) = run(&c);
    assert!(p.abs() < 1.0, "{p}");
    assert_eq!((r, reserve), (Reason::ReserveReached, 0.6));
    // A reserve the validation refuses leaves the owner's in force and says why.
    let site = SiteConfig::new(Phases::Single, Country::Generic, 1, chrono_tz::UTC);
    let mut ctrl = Controller::new(site, Settings::self_consumption()).unwrap();
    let b = [battery(0.5)];
    let inp = SiteInputs {
        now_s: 1_780_272_000,
        grid_available: true,
        grid_power_w: [0.0; 3],
        grid_v: [230.0, 0.0, 0.0],
        frequency_hz: 50.0,
        pv_w: Some(0.0),
        load_w: Some(0.0),
        batteries: &b,
    };
    let a = EmsBridge::new(Settings::self_consumption()).step(
        &mut ctrl,
        &inp,
        &ext(|e| e.reserve_soc = Some(1.5)),
    );
    let err = a.refused.expect("refused");
    assert_eq!(err.field, "reserve_soc");
    assert_eq!(ctrl.settings().reserve_soc, 0.0);
}
