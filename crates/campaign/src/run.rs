//! Running one scenario through the site core ([`melv_site::Site::step_with`]): a synthetic but
//! plausible world (PV bell, evening load, daily ambient swing), the fault schedule as site events,
//! then the recovery phase with the manual's solution steps, and the invariants after every cycle.

use crate::check::{Checker, UnitView, Violation};
use crate::gen::Scenario;
use melv_can::{SimLink, UnitIndex};
use melv_core::status::UnitRequest;
use melv_core::{Country, Lifecycle, WorkingMode};
use melv_ems::{PeriodKind, SiteConfig, TouPeriod};
use melv_model::{Environment, GridState};
use melv_site::events::EventKind;
use melv_site::{BatteryBus, CodecBus, DirectBus, Site, SiteEnv, SiteSpec, StepOutcome};
use serde::Serialize;

/// One unit in one cycle of a trace (`melv campaign --scenario K --trace FILE`).
#[derive(Debug, Clone, Serialize)]
pub struct TraceRow {
    pub t_s: f64,
    pub unit: usize,
    pub grid: bool,
    pub ambient_c: f64,
    pub lifecycle: Lifecycle,
    pub powered: bool,
    pub alerts: String,
    /// The protection rows holding a code (which signal proved which cause).
    pub causes: String,
    pub soc_true: f64,
    pub soc_reported: f64,
    pub cell_v_min: f64,
    pub cell_v_max: f64,
    pub cell_t_min: f64,
    pub cell_t_max: f64,
    pub pack_current_a: f64,
    pub ac_power_w: f64,
    pub command_w: f64,
    pub max_charge_w: f64,
    pub max_discharge_w: f64,
    pub events: String,
}

/// What one scenario gave.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub hours: f64,
    pub violations: Vec<Violation>,
}

/// Local standard time offset of each country's sample site, s (for the sun and the TOU clock).
fn zone(country: Country) -> (chrono_tz::Tz, f64) {
    match country {
        Country::Generic => (chrono_tz::America::New_York, -5.0),
        Country::Australia => (chrono_tz::Australia::Sydney, 10.0),
        Country::Germany => (chrono_tz::Europe::Berlin, 1.0),
        Country::Italy => (chrono_tz::Europe::Rome, 1.0),
    }
}

/// The site as the core needs it.
pub fn site_spec(sc: &Scenario) -> SiteSpec {
    let (tz, _) = zone(sc.country);
    let mut site = SiteConfig::new(sc.phases, sc.country, sc.batteries, tz);
    site.backup_capable = sc.backup_capable;
    // Time-of-use is prohibited where grid charging is (manual 5.1 note): such sites run
    // self-consumption instead.
    let mode = if sc.mode == WorkingMode::TimeOfUse
        && site.grid_charging == melv_core::GridCharging::Forbidden
    {
        WorkingMode::SelfConsumption
    } else {
        sc.mode
    };
    let mut settings = melv_ems::Settings {
        mode,
        ..melv_ems::Settings::default()
    };
    let period = |s: u16, e: u16, kind| TouPeriod {
        start: melv_ems::ClockTime::new(s, 0).expect("hour in range"),
        end: melv_ems::ClockTime::new(e, 0).expect("hour in range"),
        kind,
    };
    let day = vec![
        period(1, 5, PeriodKind::Charge),
        period(17, 21, PeriodKind::Discharge),
    ];
    settings.tou.weekday = day.clone();
    settings.tou.weekend = day;
    SiteSpec {
        site,
        settings,
        seed: sc.seed ^ sc.index.rotate_left(17),
        initial_soc: sc.initial_soc,
        initial_temp_c: sc.ambient_mean_c.clamp(-30.0, 55.0),
        sensor_noise: sc.sensor_noise,
        events: sc.faults.clone(),
    }
}

/// A deterministic number in 0..1 from a key (SplitMix64's finaliser): clouds per day and load
/// noise per quarter hour, with no generator state to carry.
fn hash01(key: u64) -> f64 {
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The recovery phase's timetable, s after the faulted part: reset, power cycle from the app, AC
/// off for three minutes (past the 60 s hold-up, manual 2.1.4) and on again, reset again.
const RESET_AT: f64 = 600.0;
const SHUTDOWN_AT: f64 = 1200.0;
const POWER_ON_AT: f64 = 1260.0;
const AC_OFF: (f64, f64) = (1800.0, 1980.0);
const RESET_AGAIN_AT: f64 = 2400.0;
/// "If the alert persists", the owner resets once more before calling service (a unit that had
/// to climb back from under 51's release by its 0.05 C recovery charge needs hours).
const RESET_LAST_AT: f64 = 12_600.0;

/// The world of the cycle starting at `t` s into the scenario.
fn world(sc: &Scenario, t: f64) -> (SiteEnv, bool) {
    let (_, offset_h) = zone(sc.country);
    let utc = sc.start_utc_s as f64 + t;
    let local_h = ((utc / 3600.0 + offset_h) % 24.0 + 24.0) % 24.0;
    let day = ((utc / 3600.0 + offset_h) / 24.0).floor() as u64;
    let key = sc.seed.wrapping_mul(31).wrapping_add(sc.index) << 20;
    let clouds = 0.2 + 0.8 * hash01(key ^ day);
    let sun = (std::f64::consts::PI * (local_h - 6.0) / 12.0)
        .sin()
        .max(0.0);
    let pv_w = sc.pv_peak_w * sun * clouds;
    let evening = (-((local_h - 19.0) / 1.5).powi(2)).exp();
    let quarter = (utc / 900.0).floor() as u64;
    let load_w =
        sc.base_load_w * (0.7 + 0.6 * hash01(key ^ quarter ^ 0x5555)) + sc.evening_load_w * evening;
    let recovery = t - sc.duration_s;
    let ambient_c = if recovery >= 0.0 {
        // The manual's solutions assume working conditions within the rating.
        20.0
    } else {
        sc.ambient_mean_c
            + sc.ambient_swing_c * (2.0 * std::f64::consts::PI * (local_h - 9.0) / 24.0).sin()
    };
    let ac_off = (AC_OFF.0..AC_OFF.1).contains(&recovery);
    let grid = if ac_off {
        GridState::outage(sc.phases)
    } else {
        GridState::nominal(sc.phases)
    };
    let env = SiteEnv {
        utc_s: utc,
        schedule_s: t.floor() as i64,
        load_w,
        pv_w,
        world: Environment { ambient_c, grid },
    };
    (env, ac_off)
}

/// Runs scenario `sc`; `trace` gets every unit's row of every cycle when given.
pub fn run(sc: &Scenario, trace: Option<&mut dyn FnMut(&TraceRow)>) -> Outcome {
    let spec = site_spec(sc);
    let units = melv_site::build_units(&spec);
    if sc.faults.iter().any(|e| e.kind == EventKind::CanCut) {
        let serials: Vec<u32> = (0..sc.batteries)
            .map(|i| (melv_site::unit_seed(spec.seed, i) >> 32) as u32)
            .collect();
        match SimLink::<std::io::Sink>::new(&melv_site::identities(&serials), spec.seed) {
            Ok(link) => run_on(sc, &spec, CodecBus::new(units, link), trace),
            Err(e) => refused(sc, format!("CAN link: {e}")),
        }
    } else {
        run_on(sc, &spec, DirectBus::new(units), trace)
    }
}

fn refused(sc: &Scenario, why: String) -> Outcome {
    Outcome {
        hours: 0.0,
        violations: vec![Violation {
            invariant: "recoverable",
            seed: sc.seed,
            scenario: sc.index,
            t_s: 0.0,
            unit: None,
            detail: format!("the scenario could not be built: {why}"),
        }],
    }
}

fn requests_at(recovery: f64, dt: f64) -> Option<UnitRequest> {
    let hit = |at: f64| recovery >= at && recovery < at + dt;
    if hit(RESET_AT) || hit(RESET_AGAIN_AT) || hit(RESET_LAST_AT) {
        Some(UnitRequest::Reset)
    } else if hit(SHUTDOWN_AT) {
        Some(UnitRequest::Shutdown)
    } else if hit(POWER_ON_AT) {
        Some(UnitRequest::PowerOn)
    } else {
        None
    }
}

fn run_on<B: BatteryBus>(
    sc: &Scenario,
    spec: &SiteSpec,
    bus: B,
    mut trace: Option<&mut dyn FnMut(&TraceRow)>,
) -> Outcome {
    let mut site = match Site::new(spec, bus) {
        Ok(s) => s,
        Err(e) => return refused(sc, e.to_string()),
    };
    let mut chk = Checker::new(sc);
    let mut out = StepOutcome::default();
    let mut probe = melv_sim::kpi::TruthProbe::new(site.bus().units());
    let policy = spec.site.grid_charging;
    let total = sc.total_s();
    let mut t = 0.0;
    let mut requests: Vec<(UnitIndex, UnitRequest)> = Vec::new();
    let mut last_ac_off = f64::NEG_INFINITY;
    while t < total - 1e-9 {
        // Fine steps around the recovery phase's actions, the scenario's own elsewhere.
        // 20 s steps through the manual's steps, 60 s after them.
        let recovery = t - sc.duration_s;
        let dt = if recovery >= 2700.0 {
            60.0
        } else if recovery >= 0.0 {
            20.0
        } else {
            sc.step_s
        }
        .min(total - t);
        let (env, ac_off) = world(sc, t);
        requests.clear();
        if let Some(r) = requests_at(t - sc.duration_s, dt) {
            requests.extend(UnitIndex::all().take(sc.batteries).map(|u| (u, r)));
        }
        if let Err(e) = site.step_with(
            t,
            dt,
            &env,
            &requests,
            |c, i| {
                c.step(i);
            },
            &mut out,
        ) {
            chk.fail("recoverable", t, None, format!("the bus failed: {e}"));
            break;
        }
        let end = t + dt;
        if ac_off {
            last_ac_off = end;
        }
        let grid_cause = end - last_ac_off <= crate::check::CAUSE_MEMORY_S
            || sc.faults.iter().any(|e| {
                matches!(
                    e.kind,
                    EventKind::GridOutage | EventKind::Voltage | EventKind::Frequency
                ) && (e.from_utc_s as f64) <= end
                    && (e.to_utc_s as f64) + crate::check::CAUSE_MEMORY_S >= t
            });
        // The ambient the units saw: the world's, unless an ambient event overrode it.
        let ambient_c = sc
            .faults
            .iter()
            .rev()
            .find(|e| e.kind == EventKind::Ambient && e.active(env.schedule_s))
            .map_or(env.world.ambient_c, |e| e.value);
        let from_grid = probe.add(site.bus().units(), &out.flows);
        // A welded contactor holds the power stage's last setpoint whatever anyone orders: its
        // charge is the fault's, and its detection is 62's.
        let welded = site
            .bus()
            .units()
            .iter()
            .any(|u| u.faults().contactor_welded);
        if !welded {
            chk.grid_charging(end, dt, sc.batteries, policy, from_grid);
        }
        let commands = &site.decision().commands;
        // The grid at the units' terminals this cycle (events applied: an outage removes it).
        let env_grid_present = out.grid_present;
        for (i, u) in site.bus().units().iter().enumerate() {
            let truth = u.truth();
            let status = u.status();
            let act = u.actuation();
            let view = UnitView {
                truth: &truth,
                faults: u.faults(),
                status: &status,
                powered: u.is_powered(),
                fan_commanded: act.fan_duty >= melv_bms::thermal::FAN_MIN_DUTY,
                heater_commanded: act.heater_on,
                may_conduct: act.power_enabled,
                islanded: act.grid_forming && act.power_enabled && !env_grid_present,
            };
            chk.unit(end, dt, i, &view, ambient_c, grid_cause, &sc.faults);
            if let Some(f) = trace.as_mut() {
                f(&row(
                    end,
                    i,
                    &env,
                    u,
                    &truth,
                    &status,
                    commands.get(i).map_or(0.0, |c| c.active_power_w),
                    sc,
                ));
            }
        }
        t = end;
    }
    finish(sc, &mut chk, &site);
    Outcome {
        hours: t / 3600.0,
        violations: std::mem::take(&mut chk.violations),
    }
}

/// The end of the run: every unit closes its energy books and is back in service, unless it holds
/// a Permanent code.
fn finish<B: BatteryBus>(sc: &Scenario, chk: &mut Checker, site: &Site<B>) {
    let t = sc.total_s();
    for (i, u) in site.bus().units().iter().enumerate() {
        let l = u.energy();
        let scale = l.ac_in_wh + l.ac_out_wh + l.dc_in_wh + l.dc_out_wh + 1.0;
        let err = l.ac_balance_error_wh().abs() + l.dc_balance_error_wh().abs();
        if err > 1e-6 * scale {
            chk.fail(
                "energy_balance",
                t,
                Some(i),
                format!("ledger off by {err:.3e} Wh of {scale:.0} Wh"),
            );
        }
        let st = u.status();
        let permanent = st
            .alerts
            .iter()
            .any(|c| c.info().latch == melv_core::alerts::Latch::Permanent);
        if st.lifecycle != Lifecycle::Active && !permanent && !chk.damaged[i] {
            let codes: Vec<String> = st.alerts.iter().map(|c| c.get().to_string()).collect();
            chk.fail(
                "recoverable",
                t,
                Some(i),
                format!(
                    "after the manual's steps the unit is {:?} with codes [{}]",
                    st.lifecycle,
                    codes.join(",")
                ),
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn row(
    t_s: f64,
    unit: usize,
    env: &SiteEnv,
    u: &melv_unit::BatteryUnit,
    truth: &melv_model::TrueState,
    st: &melv_core::status::BatteryStatus,
    command_w: f64,
    sc: &Scenario,
) -> TraceRow {
    let fold = |xs: &[f64], f: fn(f64, f64) -> f64, init| xs.iter().copied().fold(init, f);
    let events: Vec<String> = sc
        .faults
        .iter()
        .filter(|e| e.active(env.schedule_s) && e.battery.is_none_or(|b| b == unit))
        .map(|e| format!("{:?}", e.kind))
        .collect();
    TraceRow {
        t_s,
        unit,
        grid: env.world.grid.present,
        ambient_c: env.world.ambient_c,
        lifecycle: st.lifecycle,
        powered: u.is_powered(),
        alerts: st
            .alerts
            .iter()
            .map(|c| c.get().to_string())
            .collect::<Vec<_>>()
            .join("|"),
        causes: u
            .firmware()
            .map(|fw| fw.active_causes().collect::<Vec<_>>().join("|"))
            .unwrap_or_default(),
        soc_true: truth.pack_soc,
        soc_reported: st.soc,
        cell_v_min: fold(&truth.cell_v, f64::min, f64::INFINITY),
        cell_v_max: fold(&truth.cell_v, f64::max, f64::NEG_INFINITY),
        cell_t_min: fold(&truth.cell_temp_c, f64::min, f64::INFINITY),
        cell_t_max: fold(&truth.cell_temp_c, f64::max, f64::NEG_INFINITY),
        pack_current_a: truth.pack_current_a,
        ac_power_w: truth.ac_power_w,
        command_w,
        max_charge_w: st.max_charge_w,
        max_discharge_w: st.max_discharge_w,
        events: events.join("|"),
    }
}
