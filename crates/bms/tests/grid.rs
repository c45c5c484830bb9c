//! Grid protection: country profiles, clearing times, anti-islanding, reconnection and ramps.

mod common;

use common::Bench;
use melv_bms::grid::{GridProfile, Quantity};
use melv_bms::{Firmware, FirmwareConfig, Nvm};
use melv_core::status::BatteryCommand;
use melv_core::types::{Country, Lifecycle, Phases, StatusLed};

const COUNTRIES: [Country; 4] = [
    Country::Generic,
    Country::Australia,
    Country::Germany,
    Country::Italy,
];

#[test]
fn every_profile_is_valid_and_cited() {
    for c in COUNTRIES {
        let p = GridProfile::for_country(c);
        assert_eq!(p.validate(), Ok(()), "{c:?}");
        assert!(!p.source.is_empty());
        // Every profile trips on loss of voltage fast enough for anti-islanding (<= 2 s).
        let fastest_uv = p
            .stages
            .iter()
            .filter(|s| s.quantity == Quantity::VoltageLow)
            .map(|s| s.clear_s)
            .fold(f64::INFINITY, f64::min);
        assert!(fastest_uv <= 2.0, "{c:?}");
    }
    let g = GridProfile::generic(60.0);
    assert!(g
        .stages
        .iter()
        .any(|s| s.quantity == Quantity::Frequency && s.threshold == 65.0));
}

#[test]
fn a_bad_installer_profile_is_refused_with_a_clear_error_and_the_country_default_used() {
    let mut p = GridProfile::germany();
    p.stages[0].clear_s = f64::NAN;
    let err = p.validate().unwrap_err().to_string();
    assert!(
        err.contains("DE") && err.contains("stages[0].clear_s"),
        "{err}"
    );
    let fw = Firmware::boot(
        FirmwareConfig {
            grid_profile: Some(p),
            ..FirmwareConfig::for_country(Country::Germany, Phases::Single)
        },
        Nvm::new_unit(0.5, true),
        0.0,
    );
    assert!(fw.config_error().is_some());
    assert_eq!(fw.grid_profile(), &GridProfile::germany());

    let mut p = GridProfile::australia();
    p.reconnect_v = (253.0, 205.0);
    assert!(p
        .validate()
        .unwrap_err()
        .to_string()
        .contains("reconnect_v"));
}

/// Time until the code shows, holding phase voltage `v` and frequency `f` from a connected state.
fn trip_time(country: Country, v: f64, f: f64, code: u8, dt: f64, max_s: f64) -> Option<f64> {
    let mut b = Bench::new(country, Phases::Single);
    let mut t = 0.0;
    while t < max_s {
        b.run(dt, dt, |m, _| {
            m.ac.phase_v[0] = v;
            m.ac.frequency_hz = f;
        });
        t += dt;
        if b.codes().contains(&code) {
            return Some(t);
        }
    }
    None
}

#[test]
fn clearing_times_follow_each_profile() {
    // (country, V, Hz, code, expected trip time s) within one 0.1 s step.
    let cases = [
        (Country::Generic, 170.0, 50.0, 3, 2.1),
        (Country::Generic, 230.0, 55.2, 6, 0.3),
        (Country::Australia, 178.0, 50.0, 3, 11.1),
        (Country::Australia, 60.0, 50.0, 3, 2.1),
        (Country::Australia, 270.0, 50.0, 4, 2.1),
        (Country::Australia, 276.0, 50.0, 4, 0.3),
        (Country::Australia, 230.0, 46.9, 5, 2.1),
        (Country::Australia, 230.0, 52.1, 6, 0.3),
        (Country::Germany, 180.0, 50.0, 3, 3.1),
        (Country::Germany, 100.0, 50.0, 3, 0.4),
        (Country::Germany, 290.0, 50.0, 4, 0.2),
        (Country::Germany, 230.0, 47.4, 5, 0.2),
        (Country::Germany, 230.0, 51.6, 6, 0.2),
        (Country::Italy, 190.0, 50.0, 3, 1.6),
        (Country::Italy, 30.0, 50.0, 3, 0.3),
        (Country::Italy, 266.0, 50.0, 4, 0.3),
        (Country::Italy, 230.0, 51.6, 6, 0.2),
    ];
    for (c, v, f, code, expect) in cases {
        let t = trip_time(c, v, f, code, 0.1, 20.0);
        assert!(
            t.is_some_and(|t| (t - expect).abs() < 0.15),
            "{c:?} {v} V {f} Hz: {t:?} vs {expect}"
        );
    }
    // Inside the window: never.
    for c in COUNTRIES {
        assert_eq!(trip_time(c, 240.0, 50.1, 4, 1.0, 60.0), None, "{c:?}");
    }
}

#[test]
fn sustained_overvoltage_trips_on_the_ten_minute_average() {
    // DE: 1.1 Un = 253 V on the 10-min average. 256 V trips after minutes, not seconds.
    let t = trip_time(Country::Germany, 256.0, 50.0, 4, 1.0, 3600.0).unwrap();
    assert!((300.0..=1200.0).contains(&t), "{t}");
    // AU: 258 V average; 262 V trips, 256 V never.
    assert!(trip_time(Country::Australia, 262.0, 50.0, 4, 5.0, 3600.0).is_some());
    assert_eq!(
        trip_time(Country::Australia, 256.0, 50.0, 4, 5.0, 3600.0),
        None
    );
}

#[test]
fn anti_islanding_ceases_power_within_two_seconds_and_reconnects_after_the_profile_time() {
    for (c, reconnect_s) in [
        (Country::Generic, 60.0),
        (Country::Australia, 60.0),
        (Country::Italy, 300.0),
    ] {
        let mut b = Bench::new(c, Phases::Single);
        b.cmd = BatteryCommand {
            active_power_w: 3000.0,
            ..Default::default()
        };
        b.run(2.0, 0.1, |_, _| {});
        assert_eq!(b.act.ac_power_w, 3000.0, "{c:?}");
        // Grid lost: all voltage gone.
        b.run(2.0, 0.1, |m, _| {
            m.ac.phase_v = [0.0; 3];
            m.ac.frequency_hz = 0.0;
        });
        assert_eq!(
            b.act.ac_power_w, 0.0,
            "{c:?}: still exporting 2 s after loss of grid"
        );
        assert!(!b.act.power_enabled);
        assert_eq!(b.codes(), vec![2]);
        assert_eq!(b.fw.status().lifecycle, Lifecycle::Active, "2 is a warning");
        // Grid back: code clears, power waits the reconnection time, flashing meanwhile.
        b.run(reconnect_s - 2.0, 1.0, |_, _| {});
        assert!(b.codes().is_empty());
        assert_eq!(b.act.ac_power_w, 0.0, "{c:?}: reconnected early");
        assert_eq!(b.fw.status().status_led, StatusLed::QuickFlash);
        b.run(4.0, 1.0, |_, _| {});
        assert!(b.act.power_enabled, "{c:?}");
        // Then power ramps (AS/NZS 4777.2 16.67 %/min, CEI 0-21 20 %/min).
        let p = b.act.ac_power_w;
        assert!(p > 0.0 && p < 500.0, "{c:?}: {p}");
        assert_eq!(b.fw.status().status_led, StatusLed::Dim);
    }
}

#[test]
fn a_brief_dip_resets_the_reconnection_timer() {
    let mut b = Bench::new(Country::Generic, Phases::Single);
    b.run(1.0, 0.1, |m, _| m.ac.frequency_hz = 44.0);
    assert_eq!(b.codes(), vec![5]);
    b.run(40.0, 1.0, |_, _| {});
    // A voltage outside the reconnection window (85-110 %) but inside the trip range: no code, but
    // the timer restarts.
    b.run(5.0, 1.0, |m, _| m.ac.phase_v[0] = 190.0);
    b.run(40.0, 1.0, |_, _| {});
    assert!(
        !b.act.power_enabled,
        "reconnected before 60 s of a stable grid"
    );
    b.run(25.0, 1.0, |_, _| {});
    assert!(b.act.power_enabled);
}

#[test]
fn grid_forming_does_not_trip_on_grid_absence() {
    let mut b = Bench::new(Country::Generic, Phases::Single);
    b.run(1.0, 0.1, |m, _| {
        m.ac.phase_v = [0.0; 3];
        m.ac.frequency_hz = 0.0;
    });
    assert_eq!(b.codes(), vec![2]);
    // The gateway opens its transfer switch and orders backup: the unit forms the grid.
    b.cmd = BatteryCommand {
        active_power_w: 1500.0,
        reactive_power_var: 500.0,
        grid_forming: true,
    };
    b.run(60.0, 1.0, |m, _| {
        m.ac.phase_v = [0.0; 3];
        m.ac.frequency_hz = 0.0;
    });
    assert!(b.act.power_enabled && b.act.grid_forming);
    assert_eq!(b.act.ac_power_w, 1500.0);
    assert_eq!(b.act.reactive_power_var, 0.0, "manual 7.1: PF 1.0 off grid");
    assert_eq!(b.codes(), vec![2], "the outage is still reported");
    // Grid back, gateway returns to grid-following: the reconnection wait applies.
    b.cmd = BatteryCommand {
        active_power_w: 1500.0,
        ..Default::default()
    };
    b.run(5.0, 1.0, |_, _| {});
    assert!(b.codes().is_empty());
    assert!(!b.act.power_enabled);
    b.run(60.0, 1.0, |_, _| {});
    assert!(b.act.power_enabled);
}
