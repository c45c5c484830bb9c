//! Working modes on grid as data: inputs over time, expected setpoints and reasons.
//! Self-consumption, time of use (manual 5.1) and the calibration charge (manual 6.1 note).

mod common;
use common::*;
use melv_core::{Country, Lifecycle, Phases, WorkingMode};
use melv_ems::{Controller, PeriodKind, Reason, Settings, SiteConfig, TouPeriod};

fn site1(country: Country) -> SiteConfig {
    SiteConfig::new(Phases::Single, country, 1, chrono_tz::UTC)
}

fn controller(site: SiteConfig, settings: Settings) -> Controller {
    Controller::new(site, settings).expect("valid test site")
}

fn sc(reserve: f64) -> Settings {
    Settings {
        reserve_soc: reserve,
        ..Settings::self_consumption()
    }
}

#[test]
fn self_consumption() {
    use Reason::*;
    let b = [bat(0.5)];
    let mut ctl = controller(site1(Country::Germany), sc(0.2));
    check(
        &mut ctl,
        &[
            // Manual 5.1 a: PV to the load, surplus into the battery, the rest to the grid.
            Case::at(0, 3000.0, 500.0, &b).want(&[-2500.0], SelfConsumptionCharge),
            Case::at(60, 6000.0, 500.0, &b).want(&[-3750.0], BatteryLimit),
            // Manual 5.1 b: the battery covers the deficit, the grid what exceeds its power.
            Case::at(120, 0.0, 800.0, &b).want(&[800.0], SelfConsumptionDischarge),
            Case::at(180, 0.0, 6000.0, &b).want(&[4500.0], BatteryLimit),
            Case::at(240, 500.0, 500.0, &b).want(&[0.0], Idle),
            // Reserve 20 %: no discharge at it, charging still welcome.
            Case::at(300, 0.0, 800.0, &[bat(0.2)]).want(&[0.0], ReserveReached),
            Case::at(360, 1000.0, 200.0, &[bat(0.2)]).want(&[-800.0], SelfConsumptionCharge),
            // Full: the BMS accepts nothing more.
            Case::at(420, 3000.0, 500.0, &[bat(1.0)]).want(&[0.0], BatteryFull),
            // Full but for the taper: the trickle it still takes in sunshine is `battery_full`
            // (issue 19: it was logged as `battery_limit`, up to 3,139 h a year)...
            Case::at(450, 3000.0, 500.0, &[limits(bat(0.997), 29.0, 4500.0)])
                .want(&[-29.0], BatteryFull),
            // ...while a half-full unit held back by its limit is `battery_limit`.
            Case::at(465, 3000.0, 500.0, &[limits(bat(0.6), 29.0, 4500.0)])
                .want(&[-29.0], BatteryLimit),
            // A derated unit (e.g. cold cells) is never asked beyond its report.
            Case::at(480, 0.0, 2000.0, &[limits(bat(0.5), 3750.0, 1000.0)])
                .want(&[1000.0], BatteryLimit),
            // A unit in fault publishes no limits (melv-bms) and gets nothing to do.
            Case::at(
                540,
                0.0,
                800.0,
                &[{
                    let mut f = bat(0.5);
                    f.lifecycle = Lifecycle::Fault;
                    f.max_charge_w = 0.0;
                    f.max_discharge_w = 0.0;
                    f
                }],
            )
            .want(&[0.0], NoBatteryAvailable),
            // A live gateway without PV or load meters: load - PV = grid + battery output.
            Case::at(
                600,
                0.0,
                0.0,
                &[{
                    let mut r = bat(0.5);
                    r.ac_power_w = 200.0;
                    r
                }],
            )
            .meter([600.0, 0.0, 0.0])
            .want(&[800.0], SelfConsumptionDischarge),
            // Not a number from the meter: hold still.
            Case::at(660, 0.0, 0.0, &b)
                .meter([f64::NAN, 0.0, 0.0])
                .want(&[0.0], InvalidInput),
        ],
    );
}

#[test]
fn reserve_is_approached_without_overshoot() {
    // 60 s steps, 0.01 % above a 20 % reserve: 0.7 Wh above it, so at most 0.7 Wh x 60 /h x 0.9 =
    // 37.8 W for the next minute.
    let mut ctl = controller(site1(Country::Germany), sc(0.2));
    check(
        &mut ctl,
        &[
            Case::at(0, 0.0, 800.0, &[bat(0.6)]).want(&[800.0], Reason::SelfConsumptionDischarge),
            Case::at(60, 0.0, 800.0, &[bat(0.2001)]).want(&[37.8], Reason::ReserveReached),
        ],
    );
}

#[test]
fn grid_limits() {
    use Reason::*;
    let b = [bat(0.5)];
    let mut site = site1(Country::Germany);
    site.export_limit_w = Some(1000.0);
    site.import_limit_w = Some(3000.0);
    let mut ctl = controller(site, sc(0.2));
    check(
        &mut ctl,
        &[
            // 5500 W surplus, 3750 W into the battery, 1750 W would leave: PV is cut by 750 W.
            Case::at(0, 6000.0, 500.0, &b)
                .want(&[-3750.0], ExportLimit)
                .curtail(5250.0),
            Case::at(60, 3000.0, 500.0, &b).want(&[-2500.0], SelfConsumptionCharge),
            // 8 kW load behind a 3 kW import limit: the battery gives all it has (4.5 kW).
            Case::at(120, 0.0, 8000.0, &b).want(&[4500.0], BatteryLimit),
            // At the reserve the import limit cannot be met: the reserve wins.
            Case::at(180, 0.0, 3500.0, &[bat(0.2)]).want(&[0.0], ReserveReached),
        ],
    );
}

fn p(start: &str, end: &str, kind: PeriodKind) -> TouPeriod {
    TouPeriod {
        start: start.parse().unwrap(),
        end: end.parse().unwrap(),
        kind,
    }
}

fn tou_settings(target: f64) -> Settings {
    let mut s = Settings {
        mode: WorkingMode::TimeOfUse,
        ..Default::default()
    };
    s.tou.weekday = vec![
        p("01:00", "05:00", PeriodKind::Charge),
        p("17:00", "21:00", PeriodKind::Discharge),
    ];
    s.tou.charge_target_soc = target;
    s
}

#[test]
fn time_of_use() {
    use Reason::*;
    let b = [bat(0.5)];
    let mut ctl = controller(site1(Country::Germany), tou_settings(0.8));
    let d = check(
        &mut ctl,
        &[
            // Charging period: from grid and PV, no discharge (manual 5.1 TOU a).
            Case::at(2 * H, 0.0, 500.0, &b).want(&[-3750.0], TouChargePeriod),
            Case::at(2 * H + 60, 0.0, 500.0, &[bat(0.85)]).want(&[0.0], TouChargePeriod),
            Case::at(2 * H + 120, 1500.0, 500.0, &[bat(0.85)]).want(&[-1000.0], TouChargePeriod),
            // Other period: PV surplus charges, no discharge (TOU c).
            Case::at(10 * H, 3000.0, 500.0, &b).want(&[-2500.0], TouOtherPeriod),
            Case::at(10 * H + 60, 0.0, 500.0, &b).want(&[0.0], TouOtherPeriod),
            // Discharging period: the battery supplies the load; surplus still charges (TOU b).
            Case::at(18 * H, 0.0, 800.0, &b).want(&[800.0], TouDischargePeriod),
            Case::at(18 * H + 60, 2000.0, 800.0, &b).want(&[-1200.0], TouDischargePeriod),
            // Saturday 18:00: the weekend set is empty, so it is an "other" period.
            Case::at(5 * 24 * H + 18 * H, 0.0, 800.0, &b).want(&[0.0], TouOtherPeriod),
        ],
    );
    assert_eq!(d.tou_period, None);
    let mut ctl = controller(site1(Country::Germany), tou_settings(1.0));
    let d = check(
        &mut ctl,
        &[Case::at(18 * H, 0.0, 800.0, &b).want(&[800.0], TouDischargePeriod)],
    );
    assert_eq!(d.tou_period, Some(PeriodKind::Discharge));
}

#[test]
fn tou_charging_respects_the_import_limit_and_full_batteries() {
    use Reason::*;
    let mut site = site1(Country::Germany);
    site.import_limit_w = Some(3000.0);
    let mut ctl = controller(site, tou_settings(1.0));
    check(
        &mut ctl,
        &[
            Case::at(2 * H, 0.0, 500.0, &[bat(0.5)]).want(&[-2500.0], ImportLimit),
            // At the charge target the period only holds the charge.
            Case::at(3 * H, 0.0, 500.0, &[bat(1.0)]).want(&[0.0], TouChargePeriod),
        ],
    );
}

#[test]
fn tou_is_refused_where_grid_charging_is_forbidden() {
    let err = Controller::new(site1(Country::Italy), tou_settings(1.0)).unwrap_err();
    assert!(
        err.to_string().contains("time_of_use is not available"),
        "{err}"
    );
    let mut ctl = controller(site1(Country::Italy), sc(0.0));
    let err = ctl.update_settings(tou_settings(1.0)).unwrap_err();
    assert_eq!(err.field, "mode");
    assert_eq!(ctl.settings().mode, WorkingMode::SelfConsumption);
}

#[test]
fn tou_in_local_time_across_dst() {
    // Europe/Berlin on 2024-03-31 (Sunday): the clocks jump from 02:00 to 03:00 at 01:00 UTC. A
    // weekend charging period 02:30-04:00 local starts at 03:00 CEST = 01:00 UTC.
    let mut s = tou_settings(1.0);
    s.tou.weekend = vec![p("02:30", "04:00", PeriodKind::Charge)];
    let site = SiteConfig::new(
        Phases::Single,
        Country::Germany,
        1,
        chrono_tz::Europe::Berlin,
    );
    let mut ctl = controller(site, s);
    let day = 1_711_843_200 - T0; // 2024-03-31T00:00:00Z
    let b = [bat(0.5)];
    check(
        &mut ctl,
        &[
            Case::at(day + 59 * 60, 0.0, 500.0, &b).want(&[0.0], Reason::TouOtherPeriod),
            Case::at(day + H, 0.0, 500.0, &b).want(&[-3750.0], Reason::TouChargePeriod),
            Case::at(day + 2 * H - 60, 0.0, 500.0, &b).want(&[-3750.0], Reason::TouChargePeriod),
            Case::at(day + 2 * H, 0.0, 500.0, &b).want(&[0.0], Reason::TouOtherPeriod),
        ],
    );
}

#[test]
fn calibration_full_charge() {
    // The rule in short; `tests/calibration.rs` runs it over whole days.
    use Reason::*;
    let mut s = sc(0.0);
    s.calibration_interval_days = 1.0;
    let mut ctl = controller(site1(Country::Germany), s.clone());
    let overdue = 24 * H + 7 * 24 * H; // the interval, then the 7-day margin
    let d = check(
        &mut ctl,
        &[
            Case::at(0, 0.0, 500.0, &[bat(0.5)]).want(&[500.0], SelfConsumptionDischarge),
            // A day without being full: due. The mode runs as usual; PV surplus fills the battery.
            Case::at(24 * H, 0.0, 500.0, &[bat(0.4)]).want(&[500.0], SelfConsumptionDischarge),
            Case::at(36 * H, 2000.0, 500.0, &[bat(0.4)]).want(&[-1500.0], SelfConsumptionCharge),
            // Overdue: from the grid in the night window (00:00-06:00 local, here UTC), to full...
            Case::at(overdue, 0.0, 500.0, &[bat(0.4)]).want(&[-3750.0], Calibration),
            Case::at(overdue + 5 * H, 0.0, 500.0, &[bat(0.9)]).want(&[-3750.0], Calibration),
            // ...and by day the mode as usual.
            Case::at(overdue + 6 * H, 0.0, 500.0, &[bat(0.9)])
                .want(&[500.0], SelfConsumptionDischarge),
            // Full: calibration ends and the clock restarts.
            Case::at(overdue + 24 * H, 0.0, 500.0, &[bat(0.995)])
                .want(&[500.0], SelfConsumptionDischarge),
            Case::at(overdue + 48 * H, 0.0, 500.0, &[bat(0.6)])
                .want(&[500.0], SelfConsumptionDischarge),
        ],
    );
    assert!(d.calibrating);
    // Where grid charging is forbidden, an overdue calibration waits for PV and the mode runs on.
    let mut ctl = controller(site1(Country::Italy), s);
    check(
        &mut ctl,
        &[
            Case::at(0, 0.0, 500.0, &[bat(0.5)]).want(&[500.0], SelfConsumptionDischarge),
            Case::at(overdue, 0.0, 500.0, &[bat(0.4)]).want(&[500.0], SelfConsumptionDischarge),
            Case::at(overdue + 60, 2000.0, 500.0, &[bat(0.4)])
                .want(&[-1500.0], SelfConsumptionCharge),
        ],
    );
}
