//! The gateway controller: a sans-IO state machine stepped once per control cycle.
//!
//! Shape (after quinn-proto's `Connection`, ARCHITECTURE.md 4): inputs arrive through `handle_*` methods
//! and [`Controller::step`], which takes the cycle's measurements with `now` inside them and returns
//! the [`Decision`]. The controller owns no clock, no socket, no thread; it allocates only in `new`.
//!
//! Each cycle: survey the batteries; derive the house's net load; run the grid-loss state machine;
//! then either form the grid (islanded) or run the working mode and the safety
//! layers on grid ([`crate::ongrid`]); finally share the site's power among the units
//! ([`crate::share`]).

use crate::config::{ConfigError, SiteConfig};
use crate::reason::Reason;
use crate::settings::{Settings, SettingsError};
use crate::share::{share, Unit, MAX_UNITS};
use crate::tou::{ClockTime, PeriodKind, TouSchedule, TouSettings};
use melv_core::spec;
use melv_core::status::{BatteryCommand, BatteryStatus};
use melv_core::{AlertCode, AlertSet, Lifecycle, SiteStatus};
use serde::{Deserialize, Serialize};

/// One control cycle's measurements. Power signs (ARCHITECTURE.md 3): grid positive = importing,
/// battery positive = discharging, PV and load >= 0.
#[derive(Debug, Clone, Copy)]
pub struct SiteInputs<'a> {
    /// Unix seconds, UTC. Must not go backwards by much; a repeat or a step back is tolerated.
    pub now_s: i64,
    /// The grid is present at the gateway's grid-side terminals (the backup relay's input).
    pub grid_available: bool,
    /// Grid meter, per phase, W, positive = importing. Single-phase sites use `[0]` only.
    pub grid_power_w: [f64; 3],
    /// Grid voltage per phase, V L-N.
    pub grid_v: [f64; 3],
    pub frequency_hz: f64,
    /// PV output, W (>= 0), where measured (the simulator always gives it).
    pub pv_w: Option<f64>,
    /// House load, W (>= 0), where measured.
    pub load_w: Option<f64>,
    /// Each battery's report, in address order. Missing entries count as silent units.
    pub batteries: &'a [BatteryStatus],
}

/// An aggregator's setpoint for the whole site (grid-services mode).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExternalDispatch {
    /// Site battery power, W, positive = discharge.
    pub power_w: f64,
    /// Unix seconds, UTC, from which the setpoint no longer applies.
    pub expires_at_s: i64,
}

/// A dispatch the controller refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("dispatch.power_w: {0} W is not a finite power")]
pub struct DispatchError(pub f64);

/// The controller could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmsError {
    #[error("site: {0}")]
    Config(#[from] ConfigError),
    #[error("settings: {0}")]
    Settings(#[from] SettingsError),
}

/// What the gateway does this cycle (serialisable for the uplink and logs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// One command per configured battery, in address order (units that cannot run get zeros).
    pub commands: Vec<BatteryCommand>,
    pub reason: Reason,
    pub site_status: SiteStatus,
    /// The backup relay is open: the batteries form the house's grid.
    pub island: bool,
    /// Limit PV to this AC power, W, when the site must shed PV (export limit, or full batteries
    /// off grid). `None`: no limit.
    pub pv_curtail_to_w: Option<f64>,
    /// Alerts the gateway raises itself (code 63 for silent batteries). Units' own alerts stay theirs.
    pub alerts: AlertSet,
    /// Sum of the active-power commands, W, positive = discharge.
    pub battery_w: f64,
    /// The house's net demand the decision was made for, load - PV, W.
    pub net_load_w: f64,
    /// The TOU period in force (TOU mode only).
    pub tou_period: Option<PeriodKind>,
    /// A calibration full charge is under way (manual 6.1 note).
    pub calibrating: bool,
}

/// Without a previous cycle, the controller assumes its command holds this long when it guards the
/// floor SOC: a long guess only makes the first discharge smaller.
const FIRST_STEP_GUESS_S: f64 = 3_600.0;
/// How long a battery that hears nothing from the gateway keeps its last order, s: the firmware's
/// `melv_bms::COMMAND_TIMEOUT_S` (a test in melv-site holds the two equal). The gateway declares
/// it lost after 1 s of silence (melv_can::gateway::SILENCE_TIMEOUT_S), so for up to this long
/// after the verdict it may still be charging on its last order (the fault campaign, seed 1
/// scenario 2763: 1.2 Wh from the grid in Italy when the surplus was handed to the others).
pub const UNIT_COMMAND_TIMEOUT_S: f64 = 10.0;
/// A SOC counted as full for calibration. BMSs report 100 % only after the charge-end voltage and
/// taper (EVE LF280K: CC to 3.65 V then CV to 0.05 C); 99 % allows for SOC display rounding.
pub(crate) const FULL_SOC: f64 = 0.99;
/// Calibration may draw on the grid only when it is overdue by this many days beyond
/// `Settings::calibration_interval_days`; until then it waits for a PV surplus that fills the cells.
/// A week: longer than a spell of overcast weather usually lasts at mid latitudes (the passing lows
/// and highs have periods of about 2.5 to 6 days, the synoptic band of Blackmon 1976, J. Atmos. Sci.
/// 33, 1607), so a sunny day usually comes first, while the default 30-day interval still gives a
/// full charge within 37 days, about monthly as the interval's source asks.
pub const CALIBRATION_OVERDUE_MARGIN_DAYS: f64 = 7.0;
/// Outside TOU mode the controller knows no prices, so an overdue calibration draws on the grid only
/// in this local-time window, [start, end) in hours of the site's time zone (`SiteConfig::timezone`),
/// taken as the usual off-peak night: it lies within Italy's F3 band (23:00-07:00, ARERA deliberation
/// 181/06) and the common German and French night tariffs (NT / heures creuses, typically
/// 22:00-06:00), and it leaves the window before the morning peak.
pub const CALIBRATION_NIGHT_HOURS: (u16, u16) = (0, 6);
/// How long the reason says "dispatch expired" after an aggregator's setpoint lapses, s: one
/// imbalance settlement period of the European balancing market (15 min, EB GL Art. 53).
const DISPATCH_EXPIRED_NOTICE_S: i64 = 900;

/// Where the calibration full charge stands (manual 6.1 note).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Calibration {
    /// Not needed (or turned off).
    NotDue,
    /// Some unit has not been full for the interval: PV surplus fills it, the mode runs as usual.
    Due,
    /// Due for [`CALIBRATION_OVERDUE_MARGIN_DAYS`] more: the grid may fill it in the cheapest
    /// allowed time, where grid charging is permitted.
    Overdue,
}

/// The gateway's energy manager for one site.
#[derive(Debug, Clone)]
pub struct Controller {
    pub(crate) site: SiteConfig,
    pub(crate) settings: Settings,
    pub(crate) tou: TouSchedule,
    /// [`CALIBRATION_NIGHT_HOURS`] compiled for the site's time zone (a one-period TOU schedule).
    pub(crate) night: TouSchedule,
    dispatch: Option<ExternalDispatch>,
    dispatch_expired_at: Option<i64>,
    last_now: Option<i64>,
    /// Expected duration of this cycle's command, s (the last interval between steps).
    pub(crate) dt_s: f64,
    last_full_s: [Option<i64>; MAX_UNITS],
    pub(crate) calibrating: bool,
    islanded: bool,
    grid_ok_since: Option<i64>,
    comm_lost: [bool; MAX_UNITS],
    /// A unit just reported lost, the charge it was last ordered (W, >= 0), and from when it was
    /// lost: it may go on obeying that order until its own command timeout (see
    /// [`UNIT_COMMAND_TIMEOUT_S`]), so where grid charging is forbidden that share of the PV
    /// surplus is not handed to the others meanwhile.
    lost_new: [bool; MAX_UNITS],
    pub(crate) stale_charge: [(f64, i64); MAX_UNITS],
    /// This cycle's view of each unit (raw limits before any floor).
    pub(crate) units: [Unit; MAX_UNITS],
    pub(crate) usable: [bool; MAX_UNITS],
    shares: [f64; MAX_UNITS],
    pub(crate) decision: Decision,
}

impl Controller {
    pub fn new(site: SiteConfig, settings: Settings) -> Result<Self, EmsError> {
        site.validate()?;
        settings.validate(&site)?;
        let tou = TouSchedule::new(&settings.tou, site.timezone);
        let night = night_schedule(site.timezone);
        let decision = Decision {
            commands: vec![BatteryCommand::default(); site.batteries],
            reason: Reason::Idle,
            site_status: SiteStatus::Normal,
            island: false,
            pv_curtail_to_w: None,
            alerts: AlertSet::EMPTY,
            battery_w: 0.0,
            net_load_w: 0.0,
            tou_period: None,
            calibrating: false,
        };
        Ok(Self {
            site,
            settings,
            tou,
            night,
            dispatch: None,
            dispatch_expired_at: None,
            last_now: None,
            dt_s: FIRST_STEP_GUESS_S,
            last_full_s: [None; MAX_UNITS],
            calibrating: false,
            islanded: false,
            grid_ok_since: None,
            comm_lost: [false; MAX_UNITS],
            lost_new: [false; MAX_UNITS],
            stale_charge: [(0.0, i64::MIN); MAX_UNITS],
            units: [Unit::default(); MAX_UNITS],
            usable: [false; MAX_UNITS],
            shares: [0.0; MAX_UNITS],
            decision,
        })
    }

    pub fn site(&self) -> &SiteConfig {
        &self.site
    }
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
    /// The last decision (the same one [`Controller::step`] returned).
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// New settings from the app, checked with the same rules as the cloud's.
    pub fn update_settings(&mut self, s: Settings) -> Result<(), SettingsError> {
        s.validate(&self.site)?;
        self.tou = TouSchedule::new(&s.tou, self.site.timezone);
        self.settings = s;
        Ok(())
    }

    /// An aggregator's setpoint; replaces the previous one. Non-finite powers are dropped.
    pub fn handle_dispatch(&mut self, d: ExternalDispatch) {
        // A setpoint that is not a number cannot be followed; keeping the previous one (or none) is
        // the safe answer, and `try_dispatch` tells callers who want to know.
        let _ = self.try_dispatch(d);
    }

    /// As [`Controller::handle_dispatch`], telling whether the setpoint was taken.
    pub fn try_dispatch(&mut self, d: ExternalDispatch) -> Result<(), DispatchError> {
        if !d.power_w.is_finite() {
            return Err(DispatchError(d.power_w));
        }
        self.dispatch = Some(d);
        self.dispatch_expired_at = None;
        Ok(())
    }

    /// The CAN supervisor's verdict on one unit: `false` when it has gone silent (code 63). Out-of-range
    /// indices are ignored.
    pub fn handle_comm_status(&mut self, battery: usize, online: bool) {
        if let Some(c) = self.comm_lost.get_mut(battery) {
            if !online && !*c {
                self.lost_new[battery] = true;
            }
            if online {
                self.stale_charge[battery] = (0.0, i64::MIN);
            }
            *c = !online;
        }
    }

    /// The charge lost units may still be taking from the surplus over this cycle, W (mean):
    /// each one's last charge order for what remains of its own command timeout.
    pub(crate) fn stale_charge_w(&self, now_s: i64) -> f64 {
        let n = self.site.batteries;
        let mut w = 0.0;
        for &(p, since) in &self.stale_charge[..n] {
            if since == i64::MIN {
                continue;
            }
            let left = since as f64 + UNIT_COMMAND_TIMEOUT_S - now_s as f64;
            w += p * (left / self.dt_s).clamp(0.0, 1.0);
        }
        w
    }

    /// The active external dispatch at `now_s`, expiring it if its time has come.
    pub(crate) fn active_dispatch(&mut self, now_s: i64) -> (Option<ExternalDispatch>, bool) {
        if let Some(d) = self.dispatch {
            if now_s >= d.expires_at_s {
                self.dispatch = None;
                self.dispatch_expired_at = Some(d.expires_at_s);
            }
        }
        let recently_expired = self
            .dispatch_expired_at
            .is_some_and(|t| now_s - t < DISPATCH_EXPIRED_NOTICE_S);
        (self.dispatch, recently_expired)
    }

    /// One control cycle.
    pub fn step(&mut self, inp: &SiteInputs) -> &Decision {
        let now = inp.now_s;
        if let Some(t) = self.last_now {
            if now > t {
                self.dt_s = ((now - t) as f64).min(FIRST_STEP_GUESS_S);
            }
        }
        self.last_now = Some(now);
        for i in 0..self.site.batteries {
            if std::mem::take(&mut self.lost_new[i]) {
                let last = self
                    .decision
                    .commands
                    .get(i)
                    .map_or(0.0, |c| c.active_power_w);
                self.stale_charge[i] = ((-last).max(0.0), now);
            }
        }
        let (battery_ac_w, usable_count) = self.survey(inp);

        let nph = self.site.phases.count();
        let grid_w: f64 = inp.grid_power_w[..nph].iter().sum();
        let net = match (inp.pv_w, inp.load_w) {
            (Some(pv), Some(load)) => load - pv,
            // A live gateway: what the house draws is what the grid and the batteries supply.
            _ => grid_w + battery_ac_w,
        };
        let d = &mut self.decision;
        d.pv_curtail_to_w = None;
        d.net_load_w = net;
        d.tou_period = None;

        // Grid-loss state machine (manual 5.1 note: off grid the system may discharge at any time).
        if !inp.grid_available {
            self.grid_ok_since = None;
            self.islanded = self.site.backup_capable;
        } else if self.islanded {
            if self.grid_stable(inp) {
                let since = *self.grid_ok_since.get_or_insert(now);
                if (now - since) as f64 >= self.settings.backup.reconnect_stable_s {
                    self.islanded = false;
                    self.grid_ok_since = None;
                }
            } else {
                self.grid_ok_since = None;
            }
        }

        let valid = net.is_finite() && grid_w.is_finite();
        let (power_w, reason, forming) = if !inp.grid_available && !self.islanded {
            (0.0, Reason::GridLost, false)
        } else if usable_count == 0 {
            (0.0, Reason::NoBatteryAvailable, false)
        } else if !valid {
            (0.0, Reason::InvalidInput, self.islanded)
        } else if self.islanded {
            let base = if inp.grid_available {
                Reason::ReconnectWaiting
            } else {
                Reason::OffGridIslanded
            };
            let (p, r, forming, curtail) = self.island_power(net, inp.pv_w, base);
            self.decision.pv_curtail_to_w = curtail;
            (p, r, forming)
        } else {
            let (p, r, curtail) = self.on_grid_power(inp, net, grid_w);
            self.decision.pv_curtail_to_w = curtail;
            (p, r, false)
        };

        let floor = if self.islanded {
            self.settings.backup.off_grid_min_soc
        } else {
            self.settings.reserve_soc
        };
        let n = self.site.batteries;
        let mut caps = self.units;
        self.floor_caps(&mut caps, floor);
        share(power_w, floor, &caps[..n], &mut self.shares[..n]);
        let q_frac = if self.islanded || !valid || !inp.grid_available {
            // Off grid the units run at unity power factor (manual 7.1, "Power factor (Off grid)"),
            // and without a grid there is no voltage to support.
            0.0
        } else {
            self.reactive_fraction(inp)
        };
        let d = &mut self.decision;
        let mut total = 0.0;
        for i in 0..n {
            let p = self.shares[i];
            total += p;
            d.commands[i] = BatteryCommand {
                active_power_w: p,
                reactive_power_var: if self.usable[i] {
                    reactive(q_frac, p)
                } else {
                    0.0
                },
                grid_forming: forming && self.usable[i],
            };
        }
        d.battery_w = total;
        d.reason = reason;
        d.island = self.islanded;
        d.calibrating = self.calibrating;
        &self.decision
    }

    /// Reads every unit's report into `units`/`usable`, raises code 63 for silent units and sets the
    /// site status. Returns the batteries' reported AC power and the number of usable units.
    fn survey(&mut self, inp: &SiteInputs) -> (f64, usize) {
        let n = self.site.batteries;
        let mut battery_ac_w = 0.0;
        let mut usable_count = 0;
        let mut reporting = 0;
        let mut unit_alerts = AlertSet::EMPTY;
        let mut gateway_alerts = AlertSet::EMPTY;
        let mut faulted = false;
        for i in 0..n {
            let Some(b) = inp.batteries.get(i).filter(|_| !self.comm_lost[i]) else {
                gateway_alerts.insert(AlertCode::COMMUNICATION_LOST);
                self.usable[i] = false;
                self.units[i] = Unit::default();
                continue;
            };
            reporting += 1;
            unit_alerts = unit_alerts.union(b.alerts);
            faulted |= matches!(b.lifecycle, Lifecycle::Fault | Lifecycle::LatchedFault);
            if b.ac_power_w.is_finite() {
                battery_ac_w += b.ac_power_w;
            }
            let sane = b.soc.is_finite() && b.soh.is_finite() && b.soh > 0.0;
            // A stopped unit that still publishes a limit takes orders within it: 51 alone is
            // "charge only", 50 alone "discharge only", a maintenance charge is its charge limit
            // (melv-bms docs/firmware.md section 10). Every other stopped unit publishes 0 W.
            let one_way = matches!(b.lifecycle, Lifecycle::Fault | Lifecycle::LatchedFault)
                && (nonneg(b.max_charge_w) > 0.0 || nonneg(b.max_discharge_w) > 0.0);
            let ok = (b.lifecycle == Lifecycle::Active || one_way) && sane;
            self.usable[i] = ok;
            self.units[i] = if ok {
                usable_count += 1;
                Unit {
                    soc: b.soc.clamp(0.0, 1.0),
                    capacity_wh: spec::RATED_ENERGY_WH * b.soh.min(1.0),
                    discharge_cap_w: nonneg(b.max_discharge_w),
                    charge_cap_w: nonneg(b.max_charge_w),
                }
            } else {
                Unit::default()
            };
            if ok && (b.soc >= FULL_SOC || self.last_full_s[i].is_none()) {
                // Until a unit has been seen full, count from the first cycle it ran: the
                // calibration clock starts at commissioning, not at 1970.
                self.last_full_s[i] = Some(inp.now_s);
            }
        }
        let d = &mut self.decision;
        d.alerts = gateway_alerts;
        d.site_status = if reporting == 0 {
            SiteStatus::Offline
        } else if faulted || !unit_alerts.union(gateway_alerts).is_empty() {
            SiteStatus::Faulty
        } else {
            SiteStatus::Normal
        };
        (battery_ac_w, usable_count)
    }

    /// Tightens each unit's discharge cap so that this cycle cannot take it below `floor` (reserve on
    /// grid, off-grid minimum islanded). The AC energy of one cycle must fit in the energy above the
    /// floor; dividing by the AC round-trip efficiency (manual 7.1: 90 %) is a conservative stand-in
    /// for the one-way discharge efficiency, which is higher.
    pub(crate) fn floor_caps(&self, caps: &mut [Unit; MAX_UNITS], floor: f64) {
        for u in caps.iter_mut().take(self.site.batteries) {
            let above_wh = (u.soc - floor).max(0.0) * u.capacity_wh;
            let energy_cap_w = above_wh * 3_600.0 / self.dt_s * spec::AC_ROUND_TRIP_EFFICIENCY;
            u.discharge_cap_w = u.discharge_cap_w.min(energy_cap_w);
        }
    }

    /// Calibration bookkeeping (manual 6.1 note): whether a full charge is due now, or overdue.
    pub(crate) fn calibration(&mut self, now_s: i64) -> Calibration {
        let days = self.settings.calibration_interval_days;
        if days <= 0.0 {
            self.calibrating = false;
            return Calibration::NotDue;
        }
        let n = self.site.batteries;
        let mut oldest = i64::MAX;
        let mut all_full = true;
        for i in (0..n).filter(|&i| self.usable[i]) {
            oldest = oldest.min(self.last_full_s[i].unwrap_or(now_s));
            all_full &= self.units[i].soc >= FULL_SOC;
        }
        let age_days = if oldest == i64::MAX {
            0.0
        } else {
            (now_s - oldest) as f64 / 86_400.0
        };
        if self.calibrating && all_full {
            self.calibrating = false;
        } else if !self.calibrating && oldest != i64::MAX {
            self.calibrating = age_days >= days;
        }
        if !self.calibrating {
            Calibration::NotDue
        } else if age_days >= days + CALIBRATION_OVERDUE_MARGIN_DAYS {
            Calibration::Overdue
        } else {
            Calibration::Due
        }
    }

    /// The grid is back within the reconnection band: every phase in the manual's operating range
    /// (7.1: 176 to 276 V L-N) and the frequency within the settings' band.
    fn grid_stable(&self, inp: &SiteInputs) -> bool {
        let b = &self.settings.backup;
        let nph = self.site.phases.count();
        let v_ok = inp.grid_v[..nph]
            .iter()
            .all(|v| (spec::GRID_VOLTAGE_MIN_V..=spec::GRID_VOLTAGE_MAX_V).contains(v));
        v_ok && (b.reconnect_min_hz..=b.reconnect_max_hz).contains(&inp.frequency_hz)
    }

    /// Islanded: the batteries form the grid and carry the house's net load within their limits,
    /// down to the off-grid minimum SOC; PV beyond what they can absorb is curtailed.
    fn island_power(
        &self,
        net: f64,
        pv_w: Option<f64>,
        base: Reason,
    ) -> (f64, Reason, bool, Option<f64>) {
        let mut caps = self.units;
        self.floor_caps(&mut caps, self.settings.backup.off_grid_min_soc);
        let n = self.site.batteries;
        let hi: f64 = caps[..n].iter().map(|u| u.discharge_cap_w).sum();
        let lo: f64 = -caps[..n].iter().map(|u| u.charge_cap_w).sum::<f64>();
        if net > hi {
            if hi <= 0.0 {
                // Nothing left above the minimum: stop forming the grid rather than run the cells to
                // their cut-off. The house is dark until the grid or the sun returns.
                return (0.0, Reason::OffGridDepleted, false, None);
            }
            return (hi, Reason::OffGridOverload, true, None);
        }
        if net < lo {
            let curtail = pv_w.map(|pv| (pv - (lo - net)).max(0.0));
            return (lo, Reason::PvCurtailed, true, curtail);
        }
        (net, base, true, None)
    }

    /// Reactive power as a fraction of rated apparent power (grid-services mode, volt-var).
    fn reactive_fraction(&self, inp: &SiteInputs) -> f64 {
        if self.settings.mode != melv_core::WorkingMode::GridServices {
            return 0.0;
        }
        let Some(vv) = &self.settings.grid_services.volt_var else {
            return 0.0;
        };
        let nph = self.site.phases.count();
        let v = inp.grid_v[..nph].iter().sum::<f64>() / nph as f64;
        if v.is_finite() && v > 0.0 {
            vv.eval(v)
        } else {
            0.0
        }
    }
}

/// [`CALIBRATION_NIGHT_HOURS`] as a schedule in `tz`, every day of the week.
fn night_schedule(tz: chrono_tz::Tz) -> TouSchedule {
    let (a, b) = CALIBRATION_NIGHT_HOURS;
    let window = crate::tou::TouPeriod {
        start: ClockTime::new(a, 0).expect("night window start is a clock time"),
        end: ClockTime::new(b, 0).expect("night window end is a clock time"),
        kind: PeriodKind::Charge,
    };
    let s = TouSettings {
        weekday: vec![window],
        weekend: vec![window],
        ..TouSettings::default()
    };
    TouSchedule::new(&s, tz)
}

fn nonneg(w: f64) -> f64 {
    if w.is_finite() {
        w.max(0.0)
    } else {
        0.0
    }
}

/// One unit's reactive power for a fraction of its rating, active power first: the apparent power
/// stays within the rating (manual 7.1: 4.5 kVA out, 3.75 kVA in) and |Q| within PF 0.8 at rated power.
fn reactive(q_frac: f64, p_w: f64) -> f64 {
    if q_frac == 0.0 {
        return 0.0;
    }
    let s = if p_w >= 0.0 {
        spec::MAX_CONTINUOUS_OUTPUT_VA
    } else {
        spec::MAX_CONTINUOUS_INPUT_VA
    };
    let room = (s * s - p_w * p_w).max(0.0).sqrt();
    let q = q_frac.clamp(
        -crate::grid_services::MAX_REACTIVE_FRACTION,
        crate::grid_services::MAX_REACTIVE_FRACTION,
    ) * s;
    // A square root of a non-negative number: NaN only for a NaN power, which f64::clamp would
    // refuse too; named here.
    assert!(
        room >= 0.0,
        "reactive room within the rating non-negative: {room} var"
    );
    q.clamp(-room, room)
}
