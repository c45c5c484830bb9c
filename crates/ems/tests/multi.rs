//! Several batteries as data (manual appendix 1: 1-3 single phase, 1-6 three phase): sharing so
//! SOCs converge, units in fault or silent, site status, per-phase limits.

mod common;
use common::*;
use melv_core::{AlertCode, AlertSet, Country, Lifecycle, Phases, SiteStatus};
use melv_ems::{Controller, Reason, Settings, SiteConfig};

fn three_phase(n: usize, reserve: f64) -> Controller {
    let site = SiteConfig::new(Phases::Three, Country::Germany, n, chrono_tz::UTC);
    let s = Settings {
        reserve_soc: reserve,
        ..Default::default()
    };
    Controller::new(site, s).expect("valid test site")
}

#[test]
fn sharing_follows_energy_above_reserve_and_room_below_full() {
    use Reason::*;
    let b = [bat(0.8), bat(0.5), bat(0.2)];
    let mut ctl = three_phase(3, 0.0);
    check(
        &mut ctl,
        &[
            Case::at(0, 0.0, 3000.0, &b).want(&[1600.0, 1000.0, 400.0], SelfConsumptionDischarge),
            Case::at(60, 3500.0, 500.0, &b)
                .want(&[-400.0, -1000.0, -1600.0], SelfConsumptionCharge),
            // Beyond what the units can take, each gets its own limit.
            Case::at(120, 20_000.0, 500.0, &b).want(&[-3750.0; 3], BatteryLimit),
        ],
    );
    let mut ctl = three_phase(3, 0.1);
    check(
        &mut ctl,
        &[Case::at(0, 0.0, 3000.0, &b).want(&[1750.0, 1000.0, 250.0], SelfConsumptionDischarge)],
    );
}

#[test]
fn faulty_and_silent_units_are_dropped() {
    use Reason::*;
    let mut hot = bat(0.9);
    hot.lifecycle = Lifecycle::Fault;
    // A stopped unit publishes no limits (melv-bms; only the one-way states of 50 or 51 alone do).
    hot.max_charge_w = 0.0;
    hot.max_discharge_w = 0.0;
    hot.alerts = AlertSet::from_iter([AlertCode::BATTERY_OVERTEMPERATURE]);
    let mut derated = limits(bat(0.5), 3750.0, 500.0);
    derated.alerts = AlertSet::from_iter([AlertCode::LOW_BATTERY_TEMPERATURE]);
    let mut ctl = three_phase(3, 0.0);
    let d = check(
        &mut ctl,
        &[Case::at(0, 0.0, 3000.0, &[hot, derated, bat(0.5)])
            .want(&[0.0, 500.0, 2500.0], SelfConsumptionDischarge)],
    );
    assert_eq!(d.site_status, SiteStatus::Faulty);
    assert!(
        d.alerts.is_empty(),
        "units' own alerts are theirs, not the gateway's"
    );

    // The CAN supervisor reports unit 1 silent: code 63 from the gateway, unit 1 gets nothing.
    ctl.handle_comm_status(1, false);
    let b = [bat(0.5), bat(0.5), bat(0.5)];
    let d = check(
        &mut ctl,
        &[Case::at(60, 0.0, 3000.0, &b).want(&[1500.0, 0.0, 1500.0], SelfConsumptionDischarge)],
    );
    assert!(d.alerts.contains(AlertCode::COMMUNICATION_LOST));
    assert_eq!(d.site_status, SiteStatus::Faulty);
    ctl.handle_comm_status(1, true);
    let d = check(
        &mut ctl,
        &[Case::at(120, 0.0, 3000.0, &b).want(&[1000.0; 3], SelfConsumptionDischarge)],
    );
    assert_eq!(d.site_status, SiteStatus::Normal);
    // Two reports for three configured units: the third is silent.
    let d = check(
        &mut ctl,
        &[Case::at(180, 0.0, 3000.0, &b[..2])
            .want(&[1500.0, 1500.0, 0.0], SelfConsumptionDischarge)],
    );
    assert!(d.alerts.contains(AlertCode::COMMUNICATION_LOST));
    // Nobody reporting: the site is offline.
    let d = check(
        &mut ctl,
        &[Case::at(240, 0.0, 3000.0, &[]).want(&[0.0; 3], NoBatteryAvailable)],
    );
    assert_eq!(d.site_status, SiteStatus::Offline);
}

#[test]
fn per_phase_limit() {
    // A 4 kW single-phase load on L1 of a three-phase site with a 2 kW per-phase limit: the
    // balanced batteries must give 6 kW so that L1 draws 4 - 6/3 = 2 kW (and L2, L3 export 2 kW).
    let mut site = SiteConfig::new(Phases::Three, Country::Germany, 2, chrono_tz::UTC);
    site.phase_limit_w = Some(2000.0);
    let mut ctl = Controller::new(site, Settings::default()).unwrap();
    let b = [bat(0.5), bat(0.5)];
    check(
        &mut ctl,
        &[
            Case::at(0, 0.0, 0.0, &b)
                .meter([4000.0, 0.0, 0.0])
                .want(&[3000.0, 3000.0], Reason::PhaseLimit),
            // Balanced 3 kW load: plain self-consumption.
            Case::at(60, 0.0, 0.0, &b)
                .meter([1000.0, 1000.0, 1000.0])
                .want(&[1500.0, 1500.0], Reason::SelfConsumptionDischarge),
        ],
    );
}

#[test]
fn battery_count_is_checked_against_the_phases() {
    let site = SiteConfig::new(Phases::Single, Country::Germany, 4, chrono_tz::UTC);
    let err = Controller::new(site, Settings::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("site: batteries: 4 batteries on a single phase site"),
        "{err}"
    );
}

#[test]
fn socs_converge_over_cycles() {
    // Three units start far apart; a day-night cycle of 3 kW discharge and charge, integrated with
    // the datasheet's efficiency, brings them together.
    let mut ctl = three_phase(3, 0.1);
    let mut socs = [0.9, 0.5, 0.3];
    let spread = |s: &[f64; 3]| {
        s.iter().cloned().fold(f64::MIN, f64::max) - s.iter().cloned().fold(f64::MAX, f64::min)
    };
    let start = spread(&socs);
    let dt = 300;
    for k in 0..(4 * 24 * 12) {
        let hour = (k * dt / 3600) % 24;
        let (pv, load) = if (8..16).contains(&hour) {
            (3500.0, 500.0)
        } else {
            (0.0, 1000.0)
        };
        let bats: Vec<_> = socs.iter().map(|&s| bat(s)).collect();
        let c = Case::at(k * dt, pv, load, &bats);
        let d = ctl.step(&c.inputs());
        for (s, cmd) in socs.iter_mut().zip(&d.commands) {
            let p = cmd.active_power_w;
            let dc_wh = if p > 0.0 { p / 0.95 } else { p * 0.95 } * dt as f64 / 3600.0;
            *s = (*s - dc_wh / 7000.0).clamp(0.0, 1.0);
        }
    }
    let end = spread(&socs);
    assert!(end < start / 4.0, "spread {start} -> {end}: {socs:?}");
}
