//! The calibration full charge (manual 6.1 note: "charge the system to SOC=100% at least once to
//! calibrate SOC accuracy") as data: PV surplus first, the grid only when overdue, only where grid
//! charging is permitted, only in the cheapest allowed time, never in a TOU discharging period.
//!
//! Most tests run days hour by hour against an energy bucket (one 7 kWh unit, the 90 % AC round trip
//! split evenly) beside a twin controller with calibration off that sees the same battery reports:
//! wherever calibration must not cost grid energy, the two must decide the same.

mod common;
use chrono::Timelike;
use common::*;
use melv_core::{Country, GridCharging, Phases, WorkingMode};
use melv_ems::controller::CALIBRATION_OVERDUE_MARGIN_DAYS;
use melv_ems::{Controller, Decision, PeriodKind, Reason, Settings, SiteConfig, TouPeriod};

const DAY: i64 = 24 * H;
/// Calibration interval of these tests, days: short, so that due and overdue come within days.
const INTERVAL_DAYS: f64 = 1.0;
/// The margin beyond the interval after which calibration may use the grid (7 days), s.
const MARGIN: i64 = (CALIBRATION_OVERDUE_MARGIN_DAYS * 86_400.0) as i64;

fn site(country: Country, tz: chrono_tz::Tz) -> SiteConfig {
    SiteConfig::new(Phases::Single, country, 1, tz)
}

fn settings(mode: WorkingMode, interval_days: f64) -> Settings {
    Settings {
        mode,
        calibration_interval_days: interval_days,
        ..Default::default()
    }
}

/// The calibrating controller and its twin with calibration off.
fn pair(site: &SiteConfig, mode: WorkingMode) -> (Controller, Controller) {
    let ctl = Controller::new(site.clone(), settings(mode, INTERVAL_DAYS)).unwrap();
    let twin = Controller::new(site.clone(), settings(mode, 0.0)).unwrap();
    (ctl, twin)
}

/// PV and load at a local hour, W. `pv_peak` 900 W is a winter day whose surplus (about 1.8 kWh)
/// never fills the battery after a night's load; 5000 W is a sunny day.
fn world(local_hour: u32, pv_peak: f64) -> (f64, f64) {
    let h = f64::from(local_hour);
    let pv = if (8.0..=16.0).contains(&h) {
        pv_peak * (std::f64::consts::PI * (h - 8.0) / 8.0).sin()
    } else {
        0.0
    };
    let load = if (17.0..21.0).contains(&h) {
        1500.0
    } else {
        400.0
    };
    (pv, load)
}

fn local_hour(tz: chrono_tz::Tz, t: i64) -> u32 {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .with_timezone(&tz)
        .hour()
}

/// One unit's SOC after `p` W (positive = discharge) for an hour.
fn integrate(soc: f64, p: f64) -> f64 {
    let eta = 0.9f64.sqrt();
    let dc_wh = if p > 0.0 { p / eta } else { p * eta };
    (soc - dc_wh / 7_000.0).clamp(0.0, 1.0)
}

/// One hour: both controllers see the same report; the bucket follows `ctl`.
struct Hour {
    t: i64,
    pv: f64,
    load: f64,
    d: Decision,
    twin: Decision,
}

/// Runs `hours` hourly steps from `start` with `pv_peak(day)`, returning every hour.
fn run(
    ctl: &mut Controller,
    twin: &mut Controller,
    tz: chrono_tz::Tz,
    start: i64,
    hours: i64,
    soc0: f64,
    pv_peak: impl Fn(i64) -> f64,
) -> Vec<Hour> {
    let mut soc = soc0;
    let mut out = Vec::new();
    for k in 0..hours {
        let t = start + k * H;
        let (pv, load) = world(local_hour(tz, t), pv_peak((t - start) / DAY));
        let mut c = Case::at(t - T0, pv, load, &[bat(soc)]);
        c.t = t;
        let d = ctl.step(&c.inputs()).clone();
        let tw = twin.step(&c.inputs()).clone();
        soc = integrate(soc, d.battery_w);
        out.push(Hour {
            t,
            pv,
            load,
            d,
            twin: tw,
        });
    }
    out
}

/// Battery charging beyond the PV surplus, W: what the grid supplies to the battery.
fn grid_to_battery(h: &Hour) -> f64 {
    ((-h.d.battery_w) - (h.pv - h.load).max(0.0)).max(0.0)
}

/// Site import, W, with the decision `d`.
fn import(h: &Hour, d: &Decision) -> f64 {
    (h.load - h.pv - d.battery_w).max(0.0)
}

/// Calibration costs no grid energy at this hour: no grid charge, and no import the mode without
/// calibration would not have had (a withheld discharge is grid energy by another name).
fn assert_no_grid_for_calibration(h: &Hour, what: &str) {
    let at = (h.t - T0) as f64 / 3600.0;
    assert!(
        grid_to_battery(h) < 1e-6,
        "{what}, T0 + {at} h: {} W from the grid into the battery ({:?})",
        grid_to_battery(h),
        h.d.reason
    );
    assert!(
        (h.d.battery_w - h.twin.battery_w).abs() < 1e-3
            && import(h, &h.d) <= import(h, &h.twin) + 1e-3,
        "{what}, T0 + {at} h: {} W ({:?}), the mode without calibration {} W ({:?})",
        h.d.battery_w,
        h.d.reason,
        h.twin.battery_w,
        h.twin.reason
    );
}

/// (1) Self-consumption, calibration due: the battery takes PV surplus only and the mode runs as
/// usual until the calibration is overdue by the margin; a sunny day completes it from PV alone.
#[test]
fn due_calibration_takes_pv_surplus_only() {
    let tz = chrono_tz::UTC;
    let site = site(Country::Germany, tz);
    // A winter week: due from day 1, never full, overdue at day 8.
    let (mut ctl, mut twin) = pair(&site, WorkingMode::SelfConsumption);
    let hours = run(&mut ctl, &mut twin, tz, T0, 8 * 24, 0.5, |_| 900.0);
    for h in &hours {
        assert_no_grid_for_calibration(h, "due, winter week");
        assert_eq!(h.d.calibrating, h.t >= T0 + DAY, "calibrating at {}", h.t);
    }
    assert!(hours
        .iter()
        .any(|h| h.d.calibrating && h.d.battery_w < -100.0));
    assert!(hours
        .iter()
        .any(|h| h.d.calibrating && h.d.battery_w > 100.0));
    // Two winter days, then a sunny one: the PV surplus fills the battery and calibration ends.
    let (mut ctl, mut twin) = pair(&site, WorkingMode::SelfConsumption);
    let hours = run(&mut ctl, &mut twin, tz, T0, 4 * 24, 0.5, |d| {
        if d == 2 {
            5000.0
        } else {
            900.0
        }
    });
    for h in &hours {
        assert_no_grid_for_calibration(h, "due, sunny day");
    }
    let done = hours
        .iter()
        .position(|h| h.t > T0 + DAY && !h.d.calibrating)
        .expect("calibration completes on the sunny day");
    assert_eq!((hours[done].t - T0) / DAY, 2, "completes on day 2");
    // The clock restarts: not due again for the interval.
    assert!(hours[done..done + 24].iter().all(|h| !h.d.calibrating));
}

/// (2) Overdue by the margin, grid charging permitted: the grid charges the battery only in the
/// night window (00:00-06:00 local, Europe/Berlin), and the mode runs as usual outside it.
#[test]
fn overdue_calibration_charges_from_the_grid_only_at_night() {
    let tz = chrono_tz::Europe::Berlin;
    let site = site(Country::Germany, tz);
    // The clock starts at 13:00 local: overdue at 13:00 on day 8, with an evening before the window.
    let start = T0 + 12 * H;
    let overdue = start + (INTERVAL_DAYS as i64) * DAY + MARGIN;
    for mode in [WorkingMode::SelfConsumption, WorkingMode::GridServices] {
        let (mut ctl, mut twin) = pair(&site, mode);
        let hours = run(&mut ctl, &mut twin, tz, start, 11 * 24, 0.5, |_| 900.0);
        // Completed in the first night after it became overdue, and the clock restarted.
        let first_night = overdue + 11 * H; // local midnight after the overdue afternoon
        let done = hours
            .iter()
            .find(|h| h.t > overdue && !h.d.calibrating)
            .expect("calibration completes")
            .t;
        assert!(done <= first_night + 6 * H, "{mode:?}: done at {done}");
        let mut grid_hours = 0;
        for h in &hours {
            let local = local_hour(tz, h.t);
            if h.t >= overdue && h.t < done && local < 6 {
                // In the window while overdue: charge at the most the layers allow.
                assert_eq!(h.d.reason, Reason::Calibration, "{mode:?} at {local}:00");
                assert!(
                    (h.d.battery_w + 3750.0).abs() < 1e-6,
                    "{mode:?} at {local}:00"
                );
                grid_hours += 1;
            } else {
                assert_no_grid_for_calibration(h, &format!("{mode:?} at {local}:00"));
            }
        }
        assert!(
            grid_hours > 0,
            "{mode:?}: the overdue calibration used the grid"
        );
    }
}

/// (3) Italy: grid charging forbidden (manual 5.1 note). Overdue for days, calibration never imports
/// for the battery, neither by charging nor by withholding the mode's discharge.
#[test]
fn overdue_calibration_never_imports_where_grid_charging_is_forbidden() {
    let tz = chrono_tz::Europe::Rome;
    let site = site(Country::Italy, tz);
    assert_eq!(site.grid_charging, GridCharging::Forbidden);
    for mode in [WorkingMode::SelfConsumption, WorkingMode::GridServices] {
        let (mut ctl, mut twin) = pair(&site, mode);
        let hours = run(&mut ctl, &mut twin, tz, T0, 14 * 24, 0.5, |_| 900.0);
        for h in &hours {
            assert_no_grid_for_calibration(h, &format!("Italy, {mode:?}"));
        }
        assert!(hours.last().unwrap().d.calibrating, "still waiting for PV");
    }
    // A site that forbids grid charging in a country that permits it, the same.
    let mut de = self::site(Country::Germany, chrono_tz::Europe::Berlin);
    de.grid_charging = GridCharging::Forbidden;
    let (mut ctl, mut twin) = pair(&de, WorkingMode::SelfConsumption);
    let hours = run(&mut ctl, &mut twin, de.timezone, T0, 14 * 24, 0.5, |_| {
        900.0
    });
    for h in &hours {
        assert_no_grid_for_calibration(h, "site forbids grid charging");
    }
}

fn p(start: &str, end: &str, kind: PeriodKind) -> TouPeriod {
    TouPeriod {
        start: start.parse().unwrap(),
        end: end.parse().unwrap(),
        kind,
    }
}

fn tou(periods: Vec<TouPeriod>, target: f64) -> Settings {
    let mut s = settings(WorkingMode::TimeOfUse, INTERVAL_DAYS);
    s.tou.weekday = periods.clone();
    s.tou.weekend = periods;
    s.tou.charge_target_soc = target;
    s
}

/// (4) TOU: a discharging period discharges as the mode says whether calibration is due or
/// overdue; the overdue grid charge goes into the configured charging period, to full.
#[test]
fn tou_discharge_periods_keep_discharging_while_calibration_is_due() {
    use Reason::*;
    let site = site(Country::Germany, chrono_tz::UTC);
    let periods = vec![
        p("01:00", "05:00", PeriodKind::Charge),
        p("17:00", "21:00", PeriodKind::Discharge),
    ];
    let mut ctl = Controller::new(site.clone(), tou(periods, 0.8)).unwrap();
    let b = [bat(0.5)];
    let high = [bat(0.85)];
    let od = DAY + MARGIN; // overdue from here
    let d = check(
        &mut ctl,
        &[
            Case::at(0, 0.0, 500.0, &b).want(&[0.0], TouOtherPeriod),
            // Due: the mode as usual, charging only to its target in the charging period.
            Case::at(DAY + 2 * H, 0.0, 500.0, &high).want(&[0.0], TouChargePeriod),
            Case::at(DAY + 10 * H, 3000.0, 500.0, &b).want(&[-2500.0], TouOtherPeriod),
            Case::at(DAY + 10 * H + 60, 0.0, 500.0, &b).want(&[0.0], TouOtherPeriod),
            Case::at(DAY + 18 * H, 0.0, 800.0, &b).want(&[800.0], TouDischargePeriod),
            // Overdue: the charging period charges to full, beyond the 80 % target...
            Case::at(od + 2 * H, 0.0, 500.0, &high).want(&[-3750.0], Calibration),
            // ...other periods take PV surplus only...
            Case::at(od + 10 * H, 3000.0, 500.0, &high).want(&[-2500.0], TouOtherPeriod),
            // ...and the discharging period discharges.
            Case::at(od + 18 * H, 0.0, 800.0, &high).want(&[800.0], TouDischargePeriod),
            Case::at(od + 18 * H + 60, 2000.0, 800.0, &high).want(&[-1200.0], TouDischargePeriod),
            Case::at(od + 22 * H, 0.0, 500.0, &high).want(&[0.0], TouOtherPeriod),
        ],
    );
    assert!(d.calibrating);
    assert_eq!(d.tou_period, None);
    // Without a charging period, the overdue grid charge goes into an "other" period, never into
    // the discharging one.
    let only_discharge = vec![p("17:00", "21:00", PeriodKind::Discharge)];
    let mut ctl = Controller::new(site, tou(only_discharge, 1.0)).unwrap();
    check(
        &mut ctl,
        &[
            Case::at(0, 0.0, 500.0, &b).want(&[0.0], TouOtherPeriod),
            Case::at(DAY + 2 * H, 0.0, 500.0, &b).want(&[0.0], TouOtherPeriod),
            Case::at(DAY + 18 * H, 0.0, 800.0, &b).want(&[800.0], TouDischargePeriod),
            Case::at(od + 2 * H, 0.0, 500.0, &b).want(&[-3750.0], Calibration),
            Case::at(od + 18 * H, 0.0, 800.0, &b).want(&[800.0], TouDischargePeriod),
            // Full: calibration ends.
            Case::at(od + 19 * H, 0.0, 800.0, &[bat(0.995)]).want(&[800.0], TouDischargePeriod),
            Case::at(od + 26 * H, 0.0, 500.0, &b).want(&[0.0], TouOtherPeriod),
        ],
    );
}
