//! Property tests of the safety layers (issue item 2). Modest case counts keep the suite fast;
//! proptest prints the failing input and its seed, and `PROPTEST_CASES` raises the count.

mod common;
use common::*;
use melv_core::status::BatteryStatus;
use melv_core::{Country, Lifecycle, Phases, WorkingMode};
use melv_ems::{Controller, ExternalDispatch, Reason, Settings, SiteConfig, SiteInputs};
use proptest::prelude::*;

fn mode() -> impl Strategy<Value = WorkingMode> {
    prop_oneof![
        Just(WorkingMode::SelfConsumption),
        Just(WorkingMode::GridServices),
        Just(WorkingMode::OffGridBackup),
    ]
}

fn battery() -> impl Strategy<Value = BatteryStatus> {
    (0.0..=1.0f64, 0.0..=3750.0f64, 0.0..=4500.0f64, 0..7u8).prop_map(|(soc, ch, dis, l)| {
        // A stopped unit publishes no limits, except in the one-way states of melv-bms (51 alone:
        // charge only; 50 alone: discharge only).
        let (ch, dis) = match l {
            0 => (0.0, 0.0),
            5 => (ch, 0.0),
            6 => (0.0, dis),
            _ => (ch, dis),
        };
        let mut b = limits(bat(soc), ch, dis);
        b.lifecycle = match l {
            0 => Lifecycle::Fault,
            1 => Lifecycle::Standby,
            5 | 6 => Lifecycle::LatchedFault,
            _ => Lifecycle::Active,
        };
        b
    })
}

/// Random but plausible site conditions for one cycle.
#[derive(Debug, Clone)]
struct World {
    pv: f64,
    load: f64,
    f: f64,
    v: f64,
    dispatch: Option<f64>,
}

fn world() -> impl Strategy<Value = World> {
    (
        0.0..12_000.0f64,
        0.0..15_000.0f64,
        47.0..53.0f64,
        200.0..265.0f64,
        proptest::option::of(-20_000.0..20_000.0f64),
    )
        .prop_map(|(pv, load, f, v, dispatch)| World {
            pv,
            load,
            f,
            v,
            dispatch,
        })
}

fn inputs<'a>(t: i64, w: &World, grid: bool, bats: &'a [BatteryStatus]) -> SiteInputs<'a> {
    SiteInputs {
        now_s: t,
        grid_available: grid,
        grid_power_w: [0.0; 3],
        grid_v: [w.v; 3],
        frequency_hz: w.f,
        pv_w: Some(w.pv),
        load_w: Some(w.load),
        batteries: bats,
    }
}

fn build(country: Country, three: bool, n: usize, mode: WorkingMode, reserve: f64) -> Controller {
    let phases = if three { Phases::Three } else { Phases::Single };
    let mut site = SiteConfig::new(phases, country, n, chrono_tz::UTC);
    site.export_limit_w = Some(5000.0);
    site.phase_limit_w = Some(7000.0);
    let s = Settings {
        mode,
        reserve_soc: reserve,
        calibration_interval_days: 1.0,
        ..Default::default()
    };
    Controller::new(site, s).expect("valid generated site")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// No unit is ever asked beyond its reported limits, and units that cannot run are asked nothing.
    #[test]
    fn never_beyond_reported_limits(
        three in any::<bool>(),
        bats in proptest::collection::vec(battery(), 1..=6),
        worlds in proptest::collection::vec(world(), 1..20),
        mode in mode(),
        reserve in 0.0..0.9f64,
        grid_pattern in any::<u32>(),
    ) {
        let n = if three { bats.len() } else { bats.len().min(3) };
        let mut ctl = build(Country::Germany, three, n, mode, reserve);
        for (k, w) in worlds.iter().enumerate() {
            if let Some(p) = w.dispatch {
                ctl.handle_dispatch(ExternalDispatch { power_w: p, expires_at_s: T0 + 100 * k as i64 + 50 });
            }
            let grid = grid_pattern >> (k % 32) & 1 == 1;
            let d = ctl.step(&inputs(T0 + 60 * k as i64, w, grid, &bats[..n]));
            for (b, c) in bats[..n].iter().zip(&d.commands) {
                let p = c.active_power_w;
                prop_assert!(p.is_finite());
                if b.lifecycle == Lifecycle::Standby {
                    prop_assert_eq!(p, 0.0);
                } else {
                    prop_assert!(p <= b.max_discharge_w + 1e-6, "{} > {}", p, b.max_discharge_w);
                    prop_assert!(-p <= b.max_charge_w + 1e-6, "{} < -{}", p, b.max_charge_w);
                }
                let s = (p * p + c.reactive_power_var * c.reactive_power_var).sqrt();
                prop_assert!(s <= 4500.0 + 1e-6, "apparent power {}", s);
            }
        }
    }

    /// On grid, a unit above the reserve never ends a cycle below it, with any step length, when the
    /// commands are integrated with a discharge efficiency no worse than the AC round trip (90 %).
    #[test]
    fn reserve_never_crossed_on_grid(
        socs in proptest::collection::vec(0.0..1.0f64, 1..=6),
        reserve in 0.0..0.9f64,
        dt in prop_oneof![Just(1i64), Just(60), Just(900), Just(3600)],
        loads in proptest::collection::vec(0.0..15_000.0f64, 1..40),
        mode in mode(),
    ) {
        let n = socs.len();
        let mut ctl = build(Country::Germany, true, n, mode, reserve);
        let mut soc: Vec<f64> = socs.iter().map(|s| s.max(reserve)).collect();
        for (k, &load) in loads.iter().enumerate() {
            let bats: Vec<_> = soc.iter().map(|&s| bat(s)).collect();
            let w = World { pv: 0.0, load, f: 50.0, v: 230.0, dispatch: None };
            let d = ctl.step(&inputs(T0 + dt * k as i64, &w, true, &bats));
            for (s, c) in soc.iter_mut().zip(&d.commands) {
                let p = c.active_power_w;
                let dc_wh = if p > 0.0 { p / 0.9 } else { p * 0.9 } * dt as f64 / 3600.0;
                *s = (*s - dc_wh / 7000.0).min(1.0);
                prop_assert!(*s >= reserve - 1e-9, "soc {} below reserve {} at step {}", s, reserve, k);
            }
        }
    }

    /// Where grid charging is forbidden the batteries never charge more than the PV surplus.
    #[test]
    fn no_grid_charging_where_forbidden(
        three in any::<bool>(),
        bats in proptest::collection::vec(battery(), 1..=3),
        worlds in proptest::collection::vec(world(), 1..20),
        mode in mode(),
    ) {
        let mut ctl = build(Country::Italy, three, bats.len(), mode, 0.1);
        for (k, w) in worlds.iter().enumerate() {
            if let Some(p) = w.dispatch {
                ctl.handle_dispatch(ExternalDispatch { power_w: p, expires_at_s: T0 + 1_000_000 });
            }
            let d = ctl.step(&inputs(T0 + 3600 * k as i64, w, true, &bats));
            let charge = -d.battery_w;
            let surplus = (w.pv - w.load).max(0.0);
            prop_assert!(charge <= surplus + 1e-6, "charging {} W with {} W surplus ({:?})", charge, surplus, d.reason);
        }
    }

    /// After an external setpoint expires the site does what a site that never had one does.
    #[test]
    fn expired_dispatch_falls_back_to_self_consumption(
        power in -20_000.0..20_000.0f64,
        life in 1i64..10_000,
        after in 0i64..2_000,
        w in world(),
        soc in 0.0..1.0f64,
    ) {
        let b = [bat(soc)];
        let mut with = build(Country::Germany, false, 1, WorkingMode::GridServices, 0.1);
        let mut without = build(Country::Germany, false, 1, WorkingMode::GridServices, 0.1);
        with.handle_dispatch(ExternalDispatch { power_w: power, expires_at_s: T0 + life });
        let before = with.step(&inputs(T0, &w, true, &b)).reason;
        prop_assert!(before != Reason::DispatchExpired);
        without.step(&inputs(T0, &w, true, &b));
        let t = T0 + life + after;
        let d1 = with.step(&inputs(t, &w, true, &b)).clone();
        let d2 = without.step(&inputs(t, &w, true, &b));
        prop_assert!((d1.battery_w - d2.battery_w).abs() < 1e-6, "{} vs {}", d1.battery_w, d2.battery_w);
        prop_assert!(d1.reason != Reason::ExternalDispatch);
    }
}
