//! Grid ancillary services as data: frequency-watt, droop, volt-watt, volt-var, external dispatch
//! with expiry, and the import peak limit.

mod common;
use common::*;
use melv_core::{Country, Phases, WorkingMode};
use melv_ems::{Controller, Droop, ExternalDispatch as Dispatch, Reason, Settings, SiteConfig};

fn gs(country: Country, edit: impl FnOnce(&mut Settings)) -> Controller {
    let mut s = Settings {
        mode: WorkingMode::GridServices,
        ..Default::default()
    };
    edit(&mut s);
    let site = SiteConfig::new(Phases::Single, country, 1, chrono_tz::UTC);
    Controller::new(site, s).expect("valid test site")
}

#[test]
fn frequency_watt() {
    use Reason::*;
    let b = [bat(0.5)];
    let mut ctl = gs(Country::Australia, |_| {});
    check(
        &mut ctl,
        &[
            Case::at(0, 0.0, 800.0, &b).want(&[800.0], SelfConsumptionDischarge),
            // Inside 49.85..50.15 Hz nothing changes.
            Case::at(1, 0.0, 800.0, &b)
                .freq(49.9)
                .want(&[800.0], SelfConsumptionDischarge),
            // Half-way to 48 Hz: half-way from 800 W to the 4.5 kW limit.
            Case::at(2, 0.0, 800.0, &b)
                .freq(48.925)
                .want(&[2650.0], FrequencyWatt),
            Case::at(3, 0.0, 800.0, &b)
                .freq(47.5)
                .want(&[4500.0], FrequencyWatt),
            // Over-frequency: towards full charge, from the grid if need be.
            Case::at(4, 0.0, 800.0, &b)
                .freq(51.075)
                .want(&[-1475.0], FrequencyWatt),
            Case::at(5, 0.0, 800.0, &b)
                .freq(52.0)
                .want(&[-3750.0], FrequencyWatt),
            // An empty unit cannot respond.
            Case::at(6, 0.0, 800.0, &[bat(0.0)])
                .freq(48.0)
                .want(&[0.0], BatteryEmpty),
        ],
    );
    // Where grid charging is forbidden, over-frequency can only stop the discharge.
    let mut ctl = gs(Country::Italy, |_| {});
    check(
        &mut ctl,
        &[Case::at(0, 0.0, 800.0, &b)
            .freq(51.075)
            .want(&[400.0], FrequencyWatt)],
    );
}

#[test]
fn droop() {
    let b = [bat(0.5)];
    let mut ctl = gs(Country::Germany, |s| {
        s.grid_services.droop = Some(Droop::default());
        s.grid_services.frequency_watt = None;
    });
    check(
        &mut ctl,
        &[
            Case::at(0, 0.0, 800.0, &b)
                .freq(50.005)
                .want(&[800.0], Reason::SelfConsumptionDischarge),
            // 80 mHz beyond the 10 mHz band of a 200 mHz full activation: 40 % of 4.5 kW added.
            Case::at(1, 0.0, 800.0, &b)
                .freq(49.91)
                .want(&[2600.0], Reason::FrequencyDroop),
            // Same deviation upwards: 40 % of the 3.75 kW input rating taken away.
            Case::at(2, 0.0, 800.0, &b)
                .freq(50.09)
                .want(&[-700.0], Reason::FrequencyDroop),
        ],
    );
}

#[test]
fn volt_watt_and_volt_var() {
    let b = [bat(0.5)];
    let mut ctl = gs(Country::Australia, |_| {});
    let d = check(
        &mut ctl,
        &[
            // 256.5 V: half-way from 253 V (100 %) to 260 V (20 %) = 60 % of 4.5 kW.
            Case::at(0, 0.0, 4000.0, &b)
                .volts(256.5)
                .want(&[2700.0], Reason::VoltWatt),
        ],
    );
    // Volt-var at 256.5 V: -60 % x (256.5-240)/18 = -55 % of 4.5 kVA, within sqrt(4500^2 - 2700^2).
    let q = d.commands[0].reactive_power_var;
    assert!((q - (-0.55 * 4500.0)).abs() < 1.0, "{q}");
    let d = check(
        &mut ctl,
        &[Case::at(1, 0.0, 800.0, &b)
            .volts(213.5)
            .want(&[800.0], Reason::SelfConsumptionDischarge)],
    );
    // 213.5 V: +22 % of 4.5 kVA supplied.
    assert!((d.commands[0].reactive_power_var - 990.0).abs() < 1.0);
    let d = check(
        &mut ctl,
        &[Case::at(2, 0.0, 6000.0, &b)
            .volts(207.0)
            .want(&[4500.0], Reason::BatteryLimit)],
    );
    // At full active power there is no room left for vars: active power has priority.
    assert_eq!(d.commands[0].reactive_power_var, 0.0);
    let d = check(
        &mut ctl,
        // 211 V: charging limited to 60 % of 3.75 kVA.
        &[Case::at(3, 3000.0, 500.0, &b)
            .volts(211.0)
            .want(&[-2250.0], Reason::VoltWatt)],
    );
    assert!(d.commands[0].reactive_power_var > 0.0);
}

#[test]
fn external_dispatch_expires_into_self_consumption() {
    use Reason::*;
    let b = [bat(0.5)];
    let mut ctl = gs(Country::Germany, |_| {});
    ctl.handle_dispatch(Dispatch {
        power_w: -2000.0,
        expires_at_s: T0 + 600,
    });
    check(
        &mut ctl,
        &[
            Case::at(0, 0.0, 800.0, &b).want(&[-2000.0], ExternalDispatch),
            Case::at(599, 0.0, 800.0, &b).want(&[-2000.0], ExternalDispatch),
            Case::at(600, 0.0, 800.0, &b).want(&[800.0], DispatchExpired),
            Case::at(1499, 0.0, 800.0, &b).want(&[800.0], DispatchExpired),
            Case::at(1500, 0.0, 800.0, &b).want(&[800.0], SelfConsumptionDischarge),
        ],
    );
    // Limits bind a dispatch like any other wish; a NaN setpoint is refused.
    ctl.handle_dispatch(Dispatch {
        power_w: 9000.0,
        expires_at_s: T0 + 3000,
    });
    assert!(ctl
        .try_dispatch(Dispatch {
            power_w: f64::NAN,
            expires_at_s: T0 + 3000
        })
        .is_err());
    check(
        &mut ctl,
        &[Case::at(1560, 0.0, 800.0, &b).want(&[4500.0], BatteryLimit)],
    );
}

#[test]
fn dispatch_is_ignored_outside_grid_services() {
    let site = SiteConfig::new(Phases::Single, Country::Germany, 1, chrono_tz::UTC);
    let mut ctl = Controller::new(site, Settings::default()).unwrap();
    ctl.handle_dispatch(Dispatch {
        power_w: -2000.0,
        expires_at_s: T0 + 600,
    });
    check(
        &mut ctl,
        &[Case::at(0, 0.0, 800.0, &[bat(0.5)]).want(&[800.0], Reason::SelfConsumptionDischarge)],
    );
}

#[test]
fn import_peak_limit() {
    let b = [bat(0.5)];
    let mut ctl = gs(Country::Germany, |s| {
        s.grid_services.import_peak_limit_w = Some(1000.0)
    });
    ctl.handle_dispatch(Dispatch {
        power_w: -2000.0,
        expires_at_s: T0 + 600,
    });
    // Charging 2 kW on top of a 500 W load would draw 2.5 kW: only 500 W of charge fit under 1 kW.
    check(
        &mut ctl,
        &[Case::at(0, 0.0, 500.0, &b).want(&[-500.0], Reason::ImportLimit)],
    );
}

#[test]
fn no_vars_without_a_grid_and_decisions_serialise() {
    let mut s = Settings {
        mode: WorkingMode::GridServices,
        ..Default::default()
    };
    s.reserve_soc = 0.1;
    let mut site = SiteConfig::new(Phases::Single, Country::Australia, 1, chrono_tz::UTC);
    site.backup_capable = false;
    let mut ctl = Controller::new(site, s).unwrap();
    let d = check(
        &mut ctl,
        &[Case::at(0, 0.0, 800.0, &[bat(0.5)])
            .volts(250.0)
            .off_grid()
            .want(&[0.0], Reason::GridLost)],
    );
    assert_eq!(d.commands[0].reactive_power_var, 0.0);
    let json = serde_json::to_string(&d).unwrap();
    assert!(json.contains("\"reason\":\"grid_lost\""), "{json}");
}
