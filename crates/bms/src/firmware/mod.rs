//! The unit's firmware as one sans-IO state machine: inputs through `handle_request`,
//! `handle_command` and `step` (with `now_s`), outputs as the returned [`Actuation`] and
//! [`Firmware::status`].

mod signals;

use signals::{above_or_nan, below_or_nan};

use crate::codes::{self, Masks};
use crate::config::{FirmwareConfig, Nvm};
use crate::estimate::{CalPoint, LeakDetector, SocEstimator};
use crate::grid::{GridProfile, GridProtection, ProfileError};
use crate::limits::{self, DcLimits, LimitInputs, PeakBudget};
use crate::protect::Protections;
use crate::thermal;
use melv_core::alerts::{AlertCode, AlertSet};
use melv_core::io::{Actuation, Measurements};
use melv_core::spec;
use melv_core::status::{BatteryCommand, BatteryStatus, UnitRequest};
use melv_core::types::{Lifecycle, SocLed, StatusLed};

/// No valid command or heartbeat from the gateway for this long: the unit goes to 0 W on its own, s.
/// Ten missed cycles of the gateway's 1 s control loop; long enough to ride through a CAN bus-off
/// recovery (128 x 11 recessive bits is milliseconds), short enough that an orphaned unit does
/// not keep exporting on a stale order.
pub const COMMAND_TIMEOUT_S: f64 = 10.0;

/// The firmware of one MS-7K-U.
#[derive(Debug, Clone)]
pub struct Firmware {
    cfg: FirmwareConfig,
    config_error: Option<ProfileError>,
    nvm: Nvm,
    shut_down: bool,
    prot: Protections,
    grid: GridProtection,
    soc: SocEstimator,
    leak: LeakDetector,
    leak_last_t: f64,
    peak: PeakBudget,
    // Last command and its time.
    cmd: BatteryCommand,
    cmd_t: f64,
    // Control state carried between steps.
    last_t: f64,
    step_hint_s: f64,
    /// The next cycle's step hint, if the host planned it ([`Firmware::plan_next_step`]).
    planned_hint_s: Option<f64>,
    /// Time between the last two cycles, s (the step hint is the plan when there is one).
    last_dt_s: f64,
    dc: DcLimits,
    max_charge_w: f64,
    max_discharge_w: f64,
    /// DC currents the AC limits correspond to, A (what the power stage may draw).
    allowed_charge_a: f64,
    allowed_discharge_a: f64,
    /// Maintenance charge in progress (see `FORCE_CHARGE_ON_V`).
    force_charge: bool,
    /// Recovery charge in progress (see `RECOVERY_ON_V`): 51 is the only stopping code.
    recovery: bool,
    /// Deep sleep decided (see `DEEP_SLEEP_SOC`): no grid-forming; the unit powers the controller
    /// down until AC returns.
    deep_sleep: bool,
    /// First sample that showed the heater on but drawing no current (NaN: none), and when the
    /// heater was found dead (see `HEATER_RETRY_S`).
    heater_dead_first: f64,
    heater_dead_at: Option<f64>,
    /// The heater is known dead and the cells want heat: code 54 ("the heating system is not
    /// working normally", manual 6.3) is held while it lasts, not only while the heater is on.
    heater_fault: bool,
    /// The bits of codes 51 and 54 in an alert set.
    uv_bit: u32,
    /// Over-voltage (50): alone it blocks charging only (see `Firmware::update_recovery`).
    ov_bit: u32,
    /// Stopping codes under which the unit still takes its own maintenance charge (a latched
    /// cell-voltage or temperature difference, the end-of-warranty SOH): none of them makes a
    /// 100 W charge unsafe, and waiting for a reset must not cost the cells.
    maintain_ok: u32,
    cold_bit: u32,
    /// Codes a dead fan holds (53 and 55, manual 6.3 causes "the fan is not working normally").
    fan_bits: u32,
    /// When the fan was first seen stalled while driven (NaN when not), when it was confirmed
    /// dead, and when cooling was last wanted (see `FAN_HOLD_S`).
    fan_stall_first: f64,
    fan_dead_at: Option<f64>,
    fan_wanted_at: f64,
    fan_held: bool,
    /// When heat was last wanted (the heater-dead latch holds 54 for `HEATER_RETRY_S` after).
    heater_wanted_at: f64,
    act: Actuation,
    // Thermal-runaway rate reference.
    temp_ref_t: f64,
    temp_ref_c: f64,
    temp_rate_c_per_s: f64,
    /// The rate of the window before, degC/s (the GB 38031 rate must hold).
    temp_rate_prev: f64,
    runaway: signals::RunawayWatch,
    // Last measurement summary for the status.
    /// Pack voltage, pack current and AC power of the last sample (for the status).
    last_sample: [f64; 3],
    min_cell_v: f64,
    max_cell_v: f64,
    min_temp_c: f64,
    max_temp_c: f64,
    alerts: AlertSet,
    lifecycle: Lifecycle,
    masks: Masks,
}

/// AC at the terminals powers the auxiliary supply from this phase voltage, V: the low end of the
/// 85-264 VAC "universal input" range of off-line switch-mode supplies (e.g. Mean Well IRM/RAC
/// series datasheets); below it the supply drops out and the auxiliaries run from the cells. The
/// firmware's knowledge of its own hardware (the twin's `melv_model::plant::AUX_SUPPLY_MIN_V`).
const AUX_SUPPLY_MIN_V: f64 = 85.0;
/// Deep sleep without AC (islanded, grid-forming from the cells): at or below this estimated SOC,
/// or at near rest with the lowest cell at or below [`DEEP_SLEEP_REST_V`], the unit stops forming
/// and sheds every auxiliary load (controller dark) until AC returns. 5 % keeps ~4 % above the
/// 2.50 V cut-off (EVE LF280K; about 0.9 % on the OCV table), which the cells' self-discharge
/// (calibrated on the manual's storage table, section 3: 30 % -> 10 % in 15 months at <= 25 degC,
/// 0.044 %/day) takes about 3 months to use at 25 degC and 40 days at 40 degC.
const DEEP_SLEEP_SOC: f64 = 0.05;
/// Near-rest lowest cell voltage of deep sleep, V: the discharge taper start (`limits::
/// DISCHARGE_TAPER_V`), about 4.5 % SOC on the OCV table; under load the sag hides the OCV, so
/// only near rest (the taper has brought the current down by then).
const DEEP_SLEEP_REST_V: f64 = limits::DISCHARGE_TAPER_V;
/// Recovery charge: while 51 (under-voltage) is the only stopping code, AC is present and grid
/// charging is permitted, the unit takes a small charge (it blocks discharging only) from below
/// this lowest cell voltage, V (51's release, `protect::TABLE` cell_uv) ...
const RECOVERY_ON_V: f64 = 3.00;
/// ... to this one, V (0.10 V above the release, about 8 % SOC on the OCV table, so that the cell
/// stays past the release while it waits for the reset of manual 6.3, code 51).
const RECOVERY_OFF_V: f64 = 3.10;
/// No recovery charge below this lowest cell voltage, V: 51's instant stage (2.00 V, a deep
/// over-discharge with copper-dissolution risk, `protect::TABLE` cell_uv_hard) is for service.
const RECOVERY_MIN_V: f64 = 2.00;
/// A heater switched on but drawing under 0.5 A for this long is dead, s (the heater_dead row's
/// delay in `protect::TABLE`) ...
const HEATER_DEAD_CONFIRM_S: f64 = 10.0;
/// ... and is not switched on again for this long, s, or until a reset or power cycle. A PTC pad
/// with an open element or blown thermal fuse stays dead; the cell row's thermal time constant is
/// 1-4 h (46 kJ/K against ~3 W/K to the enclosure without fan, ~11 W/K with it,
/// `melv_model::thermal`), so a heater that comes back (a loose connector) is found within an hour,
/// before the cells have cooled by more than one time constant, and the heater is tried at most 24
/// times a day instead of on every other cycle.
const HEATER_RETRY_S: f64 = 3600.0;
/// A fan found dead (stalled while driven for the fan rows' 10 s) holds 53 and 55 while cooling is
/// wanted and for this long after, s, until a reset or power cycle or until it turns again: at
/// coarse steps the want comes and goes with each sample, and 53 came and went 7 times an hour
/// (fault campaign seed 1, scenario 876). One hour: the same retry period as the heater's.
const FAN_HOLD_S: f64 = 3600.0;
/// Storage reserve where grid charging is forbidden, SOC: the unit stops discharging here, since
/// it may not charge itself from the grid later (manual 5.1 note). 8 % leaves 7 % above the 2.5 V
/// cut-off (about 1 % SOC on the OCV table), which the twin's self-discharge (calibrated on the
/// manual's storage table, section 3: 20 % in 15 months at 25 degC, 0.044 %/day) takes about
/// 160 days to use at 25 degC and 50 days at 45 degC. Without it an Italian site without PV
/// self-discharged below 2.5 V within weeks and latched 51 for good (fault campaign seed 1,
/// scenarios 53, 217).
const BANNED_RESERVE_SOC: f64 = 0.08;
/// Maintenance charge: on below this lowest cell voltage, V (under the 2.60 V discharge stop, so it
/// is the standby draw that brought the cell here, not a discharge; 0.05 V above the 2.50 V
/// under-voltage protection), off above the second (about 4 % SOC on the OCV table).
const FORCE_CHARGE_ON_V: f64 = 2.55;
const FORCE_CHARGE_OFF_V: f64 = 2.95;
/// Maintenance and recovery charge power, W: ten times a unit's standby draw (~8 W), 0.5 % of
/// capacity an hour (0.014 C, well under the C/10 precharge of deeply discharged lithium cells,
/// e.g. TI BQ24610 datasheet, "Precharge").
const FORCE_CHARGE_W: f64 = 100.0;
/// Over-voltage recovery: with 50 alone the unit discharges on its own while its highest cell is
/// above this, V: 0.02 V under the cell_ov row's 3.45 V release, so that the release is reached
/// (at 3.50 V, above it, an over-charged cell stopped between the two and 50 never released:
/// fault campaign seed 1, scenario 29890), and still above where a full LFP cell rests (3.38-3.43 V).
const OV_RECOVERY_V: f64 = 3.43;
/// Capacity is learned only from spans with the cells at or above this, degC: LFP delivers
/// noticeably less below 10 degC (EVE LF280K: ~90 % at 0 degC), which is not ageing.
const LEARN_MIN_TEMP_C: f64 = 10.0;

/// Leak detector cadence, s: drift is judged over hours, so once a minute is plenty and keeps
/// `step` cheap.
const LEAK_PERIOD_S: f64 = 60.0;

/// One cycle's AC limits as the setpoint needs them, W, and the heater's decision.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Largest charge and discharge power, W (>= 0).
    chg: f64,
    dis: f64,
    /// Maintenance or recovery charge power, W (0 when off).
    force_w: f64,
    heater_on: bool,
}

/// What the unit is doing this cycle, as the limits need it.
#[derive(Debug, Clone, Copy)]
struct Mode {
    /// Exchanging power as ordered (Active and connected or grid-forming).
    running: bool,
    forming: bool,
    /// Stopped by 51 alone: charge only (see `Firmware::update_recovery`); or by codes that allow
    /// the unit's own maintenance charge only (`maintain_ok`), then at most `FORCE_CHARGE_W`.
    charge_only: bool,
    /// The charge limit is the maintenance charge's (not 51 alone).
    maintenance_only: bool,
    /// Stopped by 50 alone: discharge only (the mirror of 51's charge only).
    discharge_only: bool,
    /// AC at the terminals from outside: the auxiliary supply runs from it.
    ac_present: bool,
}

impl Firmware {
    /// Power-on (also after a power cycle): RAM state is fresh, so `UntilReset` alerts are gone
    /// (they come back if their cause persists); `Permanent` ones come back from NVM.
    pub fn boot(cfg: FirmwareConfig, nvm: Nvm, now_s: f64) -> Self {
        let (cfg, config_error) = match cfg.validate() {
            Ok(()) => (cfg, None),
            Err(e) => (
                FirmwareConfig {
                    grid_profile: None,
                    ..cfg
                },
                Some(e),
            ),
        };
        let profile = cfg
            .grid_profile
            .clone()
            .unwrap_or_else(|| GridProfile::for_country(cfg.country));
        let mut nvm = nvm.sanitized(now_s);
        nvm.boots = nvm.boots.saturating_add(1);
        let soc = SocEstimator {
            soc: nvm.soc,
            capacity_ah: nvm.capacity_ah,
            ah_since_cal: nvm.ah_since_cal,
            last_cal: nvm.last_cal,
            last_full_s: nvm.last_full_s,
            capacity_updates: nvm.capacity_updates,
            soc_valid: nvm.soc_valid,
            rest_since: f64::NAN,
            last_span: None,
            soc_unc: if nvm.soc_unc.is_finite() {
                nvm.soc_unc.clamp(0.0, 0.5)
            } else {
                0.5
            },
        };
        let mut fw = Self {
            grid: GridProtection::new(profile, cfg.phases),
            cfg,
            config_error,
            shut_down: false,
            prot: Protections::default(),
            soc,
            leak: LeakDetector::default(),
            leak_last_t: f64::NEG_INFINITY,
            peak: PeakBudget::default(),
            cmd: BatteryCommand::default(),
            cmd_t: f64::NEG_INFINITY,
            last_t: now_s,
            step_hint_s: 1.0,
            planned_hint_s: None,
            last_dt_s: 1.0,
            dc: DcLimits::default(),
            max_charge_w: 0.0,
            max_discharge_w: 0.0,
            allowed_charge_a: 0.0,
            allowed_discharge_a: 0.0,
            force_charge: false,
            recovery: false,
            deep_sleep: false,
            heater_dead_first: f64::NAN,
            heater_dead_at: None,
            heater_fault: false,
            uv_bit: codes::bit(AlertCode::BATTERY_UNDERVOLTAGE),
            ov_bit: codes::bit(AlertCode::BATTERY_OVERVOLTAGE),
            maintain_ok: codes::bit(AlertCode::BATTERY_UNDERVOLTAGE)
                | codes::bit(AlertCode::CELL_VOLTAGE_DIFFERENCE)
                | codes::bit(AlertCode::CELL_TEMPERATURE_DIFFERENCE)
                | codes::bit(AlertCode::LOW_SOH),
            cold_bit: codes::bit(AlertCode::LOW_BATTERY_TEMPERATURE),
            fan_bits: codes::bit(AlertCode::BATTERY_OVERTEMPERATURE)
                | codes::bit(AlertCode::CELL_TEMPERATURE_DIFFERENCE),
            fan_stall_first: f64::NAN,
            fan_dead_at: None,
            fan_wanted_at: f64::NEG_INFINITY,
            fan_held: false,
            heater_wanted_at: f64::NEG_INFINITY,
            act: Actuation::default(),
            temp_ref_t: f64::NAN,
            temp_ref_c: f64::NAN,
            temp_rate_c_per_s: 0.0,
            temp_rate_prev: 0.0,
            runaway: signals::RunawayWatch::default(),
            last_sample: [0.0; 3],
            min_cell_v: f64::NAN,
            max_cell_v: f64::NAN,
            min_temp_c: f64::NAN,
            max_temp_c: f64::NAN,
            alerts: nvm.permanent_alerts,
            lifecycle: Lifecycle::Standby,
            masks: Masks::new(),
            nvm,
        };
        fw.lifecycle = fw.lifecycle_now();
        fw
    }

    /// The configuration error found at boot, if the installer's grid profile was refused (the
    /// country's profile is used instead).
    pub fn config_error(&self) -> Option<&ProfileError> {
        self.config_error.as_ref()
    }

    pub fn config(&self) -> &FirmwareConfig {
        &self.cfg
    }

    pub fn grid_profile(&self) -> &GridProfile {
        self.grid.profile()
    }

    /// One-shot requests from the app (manual 4.11 and 6.3 solution steps).
    pub fn handle_request(&mut self, _now_s: f64, req: UnitRequest) {
        match req {
            UnitRequest::Activate => self.nvm.activated = true,
            UnitRequest::Reset => {
                self.prot.reset();
                self.heater_dead_at = None;
                self.heater_fault = false;
                self.fan_dead_at = None;
                self.fan_held = false;
            }
            UnitRequest::Shutdown => self.shut_down = true,
            UnitRequest::PowerOn => {
                // "Shut down the battery and then power it on again" (manual 6.3): a soft power
                // cycle, which, like a reset, releases latched alerts whose cause is gone.
                if self.shut_down {
                    self.shut_down = false;
                    self.prot.reset();
                    self.heater_dead_at = None;
                    self.heater_fault = false;
                    self.fan_dead_at = None;
                    self.fan_held = false;
                }
            }
        }
        self.alerts = self.collect_alerts();
        self.lifecycle = self.lifecycle_now();
    }

    /// The gateway's setpoint, which is also its heartbeat. A command with non-finite numbers is
    /// refused and does not refresh the heartbeat.
    pub fn handle_command(&mut self, now_s: f64, cmd: &BatteryCommand) {
        if cmd.active_power_w.is_finite() && cmd.reactive_power_var.is_finite() && now_s.is_finite()
        {
            self.cmd = *cmd;
            self.cmd_t = now_s;
        }
    }

    /// Whether the gateway has been silent for longer than [`COMMAND_TIMEOUT_S`].
    pub fn command_timed_out(&self, now_s: f64) -> bool {
        above_or_nan(now_s - self.cmd_t, COMMAND_TIMEOUT_S)
    }

    /// One control cycle.
    pub fn step(&mut self, now_s: f64, m: &Measurements) -> Actuation {
        let dt = self.advance_clock(now_s);
        let ac_present = self.ac_at_terminals(m);
        let forming = self.protect(now_s, m);
        self.estimate(now_s, dt, m);
        let forming = forming && !self.update_deep_sleep(m, ac_present);
        let running = self.lifecycle == Lifecycle::Active && (self.grid.connected() || forming);
        let (charge_only, maintenance_only, discharge_only) =
            self.update_recovery(running, ac_present);
        let mode = Mode {
            running,
            forming,
            charge_only,
            maintenance_only,
            discharge_only,
            ac_present,
        };
        let lim = self.update_limits(now_s, dt, m, mode);
        let (p_set, q_set) = if running {
            self.setpoint(now_s, forming, &lim)
        } else if charge_only {
            (self.charge_only_setpoint(now_s, &lim), 0.0)
        } else if discharge_only {
            (self.discharge_only_setpoint(now_s, &lim), 0.0)
        } else {
            (0.0, 0.0)
        };
        let (fan_duty, balance_mask) = self.cell_care(now_s, m);
        self.act = Actuation {
            power_enabled: running
                || (charge_only && p_set < 0.0)
                || (discharge_only && p_set > 0.0),
            ac_power_w: p_set,
            reactive_power_var: q_set,
            grid_forming: forming && running,
            fan_duty,
            heater_on: lim.heater_on,
            balance_mask,
        };
        self.last_sample = [m.pack_v, m.pack_current_a, m.ac.ac_power_w];
        self.sync_nvm(now_s);
        self.act
    }

    /// Time since the last cycle, s (0 for a clock that did not advance); remembers the step length.
    #[inline(always)] // one call site: the step it was split from stays one function
    fn advance_clock(&mut self, now_s: f64) -> f64 {
        let dt = if now_s.is_finite() && now_s > self.last_t {
            now_s - self.last_t
        } else {
            0.0
        };
        let plan = self.planned_hint_s.take();
        if dt > 0.0 {
            self.last_t = now_s;
            self.last_dt_s = dt;
        }
        if let Some(s) = plan {
            self.step_hint_s = s;
        } else if dt > 0.0 {
            self.step_hint_s = dt;
        }
        dt
    }

    /// The host's plan for the next cycle: its decision will stand for about `s` seconds. A real
    /// controller cycles every 100 ms and needs no plan; the step hint (how long a decision may
    /// stand: knee guard, headroom, peak budget) is then the time since the last cycle. A
    /// simulation that cuts its steps at located events (`melv_unit::BatteryUnit::step`) knows the
    /// next part's length better than the last one's, and says so here; it holds for the next cycle
    /// only. Values that are not positive and finite are ignored.
    pub fn plan_next_step(&mut self, s: f64) {
        if s > 0.0 && s.is_finite() {
            self.planned_hint_s = Some(s);
        }
    }

    /// Battery and grid protection, then the alerts and the lifecycle. Returns whether the gateway
    /// orders grid-forming (and may: fresh order, activated, not shut down).
    #[inline(always)] // one call site: the step it was split from stays one function
    fn protect(&mut self, now_s: f64, m: &Measurements) -> bool {
        let signals = self.derive_signals(now_s, m);
        self.prot.evaluate(now_s, &signals);
        let forming = self.cmd.grid_forming
            && !self.command_timed_out(now_s)
            && self.nvm.activated
            && !self.shut_down;
        self.grid.step(now_s, &m.ac, forming);
        self.alerts = self.collect_alerts();
        self.lifecycle = self.lifecycle_now();
        forming
    }

    /// Estimation (after protection: a calibration never hides a voltage fault): SOC, the charge
    /// and energy counters, the peak budget.
    #[inline(always)] // one call site: the step it was split from stays one function
    fn estimate(&mut self, now_s: f64, dt: f64, m: &Measurements) {
        let i = m.pack_current_a;
        if self.soc.update(
            now_s,
            dt,
            i,
            self.max_cell_v,
            self.min_cell_v,
            self.min_temp_c >= LEARN_MIN_TEMP_C,
        ) == Some(CalPoint::Full)
        {
            self.nvm.last_full_s = Some(now_s);
        }
        if i.is_finite() {
            let ah = i * dt / 3600.0;
            if ah > 0.0 {
                self.nvm.ah_discharged += ah;
            } else {
                self.nvm.ah_charged -= ah;
            }
        }
        let p = m.ac.ac_power_w;
        if p.is_finite() {
            let wh = p * dt / 3600.0;
            if wh > 0.0 {
                self.nvm.ac_discharged_wh += wh;
            } else {
                self.nvm.ac_charged_wh -= wh;
            }
            self.peak.account(p, dt);
        }
    }

    /// Whether AC is present at the terminals from outside (a grid, not the unit's own forming):
    /// then the auxiliary supply feeds the electronics, fan and heater from it.
    fn ac_at_terminals(&self, m: &Measurements) -> bool {
        !self.act.grid_forming && m.ac.frequency_hz > 0.0 && m.ac.phase_v[0] >= AUX_SUPPLY_MIN_V
    }

    /// Deep sleep without AC (see [`DEEP_SLEEP_SOC`]); AC at the terminals wakes the unit. Returns
    /// whether the unit is to sleep.
    #[inline(always)] // one call site: the step it was split from stays one function
    fn update_deep_sleep(&mut self, m: &Measurements, ac_present: bool) -> bool {
        if ac_present {
            self.deep_sleep = false;
        } else if !self.deep_sleep {
            let near_rest = m.pack_current_a.abs() <= crate::estimate::NEAR_REST_A;
            self.deep_sleep = self.soc.soc <= DEEP_SLEEP_SOC
                || (near_rest && self.min_cell_v <= DEEP_SLEEP_REST_V);
        }
        self.deep_sleep
    }

    /// Whether the unit wants its controller powered down now (deep sleep without AC): the unit's
    /// auxiliary supply then sheds every load until AC returns at the terminals.
    pub fn wants_deep_sleep(&self) -> bool {
        self.deep_sleep
    }

    /// Under-voltage blocks discharging only: stopped with 51 as the only stopping code, AC
    /// present and the grid connected, the unit is "charge only": it takes the gateway's charge
    /// orders within its charge limit, and, where grid charging is permitted, its own recovery
    /// charge (see [`RECOVERY_ON_V`]; `self.recovery`). Stopped by other codes that allow it
    /// (`maintain_ok`: 52, 55, 57, with or without 51) it takes only that maintenance charge,
    /// and publishes it as its charge limit. Over-voltage (50) alone blocks charging only: the unit
    /// is "discharge only" and takes the gateway's discharge orders, which bring the cell back
    /// under its release. Returns (charge only, maintenance only, discharge only).
    #[inline(always)] // one call site: the step it was split from stays one function
    fn update_recovery(&mut self, running: bool, ac_present: bool) -> (bool, bool, bool) {
        let stops = self.alerts.bits() & (self.masks.stop | self.masks.latched_stop);
        let may = !running
            && stops != 0
            && ac_present
            && self.grid.connected()
            && self.nvm.activated
            && !self.shut_down;
        // A latched code whose cause is gone (it only waits for the owner's reset) does not make
        // the small charge unsafe either: a unit latched by a cleared 62 self-discharged to 2.0 V
        // in 44 days waiting (fault campaign seed 1, scenario 7445).
        let ok = self.maintain_ok | self.prot.awaiting_reset_bits();
        let maintain = may && stops & !ok == 0 && self.min_cell_v >= RECOVERY_MIN_V;
        let charge_only = maintain && stops == self.uv_bit;
        let maintenance_only = maintain && !charge_only;
        let discharge_only = may && stops == self.ov_bit;
        self.recovery = maintain
            && self.cfg.may_charge_from_grid()
            && (self.min_cell_v < RECOVERY_ON_V
                || (self.recovery && self.min_cell_v < RECOVERY_OFF_V));
        (
            charge_only || maintenance_only,
            maintenance_only,
            discharge_only,
        )
    }

    /// Setpoint while "discharge only" (50): the gateway's discharge order within the discharge
    /// limit (no charge).
    #[inline(always)] // one call site: the step it was split from stays one function
    fn discharge_only_setpoint(&self, now_s: f64, lim: &Limits) -> f64 {
        let order = if self.command_timed_out(now_s) {
            0.0
        } else {
            self.cmd.active_power_w.clamp(0.0, lim.dis)
        };
        // An over-charged cell is brought back by the unit itself when the gateway orders no
        // discharge (a TOU period that holds, an export limit): the mirror of the recovery
        // charge, at the same 100 W, into the house.
        if self.max_cell_v > OV_RECOVERY_V {
            order.max(FORCE_CHARGE_W.min(lim.dis))
        } else {
            order
        }
    }

    /// Setpoint while "charge only" (51): the gateway's charge order within the charge limit (no
    /// discharge), with the recovery charge as a floor on the import where it runs.
    #[inline(always)] // one call site: the step it was split from stays one function
    fn charge_only_setpoint(&self, now_s: f64, lim: &Limits) -> f64 {
        let order = if self.command_timed_out(now_s) {
            0.0
        } else {
            self.cmd.active_power_w
        };
        let p = order.clamp(-lim.chg, 0.0);
        if self.recovery {
            p.min(-lim.force_w)
        } else {
            p
        }
    }

    /// Limits: the minimum of every constraint, then ramps, then AC; the heater, and the
    /// maintenance and recovery charges within the AC limits. Publishes the limits (`max_*_w`,
    /// `allowed_*_a`).
    #[inline(always)] // one call site: the step it was split from stays one function
    fn update_limits(&mut self, now_s: f64, dt: f64, m: &Measurements, mode: Mode) -> Limits {
        let Mode {
            running,
            forming,
            charge_only,
            maintenance_only,
            discharge_only,
            ac_present,
        } = mode;
        let target = if running || charge_only || discharge_only {
            limits::dc_targets(&LimitInputs {
                max_cell_v: self.max_cell_v,
                min_cell_v: self.min_cell_v,
                max_temp_c: self.max_temp_c,
                min_temp_c: self.min_temp_c,
                soc: self.soc.soc,
                soc_unc: self.soc.soc_unc,
                near_rest: m.pack_current_a.abs() <= crate::estimate::NEAR_REST_A,
                capacity_ah: self.soc.capacity_ah,
                step_hint_s: self.step_hint_s,
            })
        } else {
            DcLimits::default()
        };
        let target = self.storage_reserve(target);
        self.dc = limits::ramp_limits(self.dc, target, dt);
        let ramp = if forming { 1.0 } else { self.grid.ramp() };
        let (chg, dis) =
            limits::ac_limits(self.dc, m.pack_v, self.peak.cap_w(self.step_hint_s), ramp);
        // With AC at the terminals the auxiliary supply feeds the heater (and the electronics and
        // fan) from AC, so the cells do not pay for it and nothing is imported through the
        // inverter for it: a failed heater can no longer charge cold cells.
        let follows_grid = running && !forming;
        let heater_on = self.heater(now_s, m, ac_present);
        // Maintenance charge: the cells' self-discharge (and, islanded, the auxiliaries) still
        // drain a pack left at its empty point; below FORCE_CHARGE_ON_V the unit takes a little
        // from the grid on its own until the cells are back above FORCE_CHARGE_OFF_V
        // (self-protection, like the "force charge" of common home batteries), where grid
        // charging is permitted. Where it is forbidden the unit only sheds its loads.
        self.force_charge = follows_grid
            && self.cfg.may_charge_from_grid()
            && (self.min_cell_v < FORCE_CHARGE_ON_V
                || (self.force_charge && self.min_cell_v < FORCE_CHARGE_OFF_V));
        // The recovery charge (a stopped unit's cells below RECOVERY_ON_V) takes the pre-charge
        // current, 0.05 C (limits::PRECHARGE_A): at 100 W a unit left latched for weeks could not
        // climb back to 51's release within the hours of the manual's steps (fault campaign seed 1,
        // scenario 8704: 2.29 V after 71 days latched by 62, still under 3.0 V after 2 h).
        let pack_v = if m.pack_v.is_finite() {
            m.pack_v.max(0.0)
        } else {
            0.0
        };
        let recovery_w =
            (limits::PRECHARGE_A * pack_v / limits::inverter_efficiency()).max(FORCE_CHARGE_W);
        let force_w = if self.recovery {
            recovery_w.min(chg)
        } else if self.force_charge {
            FORCE_CHARGE_W.min(chg)
        } else {
            0.0
        };
        // Stopped, the gateway can order nothing; charge only (51), it can order charge. The
        // current check allows the unit's own recovery charge on top.
        let (pub_chg, pub_dis) = if running {
            (chg, dis)
        } else if maintenance_only {
            (force_w, 0.0)
        } else if charge_only {
            (chg, 0.0)
        } else if discharge_only {
            (0.0, dis)
        } else {
            (0.0, 0.0)
        };
        self.max_charge_w = pub_chg;
        self.max_discharge_w = pub_dis;
        let eta = limits::inverter_efficiency();
        let v = if m.pack_v.is_finite() && m.pack_v > 1.0 {
            m.pack_v
        } else {
            spec::NOMINAL_DC_V
        };
        self.allowed_charge_a = pub_chg.max(force_w) * eta / v;
        self.allowed_discharge_a = pub_dis / (v * eta);
        // Guards the setpoint's clamp (bounds -chg ..= dis) and the limits the unit publishes;
        // holds by construction (`ac_limits` returns non-negative, non-NaN powers, the voltage and
        // efficiency are positive).
        assert!(
            chg >= 0.0 && dis >= 0.0,
            "AC power limits non-negative: charge {chg} W, discharge {dis} W"
        );
        assert!(
            self.allowed_charge_a >= 0.0 && self.allowed_discharge_a >= 0.0,
            "DC current limits non-negative: charge {} A, discharge {} A",
            self.allowed_charge_a,
            self.allowed_discharge_a
        );
        Limits {
            // Maintenance only: the gateway's charge orders within the maintenance charge.
            chg: if maintenance_only { force_w } else { chg },
            dis,
            force_w,
            heater_on,
        }
    }

    /// The heater's decision. With AC at the terminals the auxiliary supply feeds it; without
    /// (not yet reconnected, islanded) it runs on the cells only above a reserve
    /// (`thermal::HEATER_MIN_SOC_ON_BATTERY`). A heater found dead is not switched on again for
    /// [`HEATER_RETRY_S`] or until a reset or power cycle; one that draws current again is alive.
    #[inline(always)] // one call site: the step it was split from stays one function
    fn heater(&mut self, now_s: f64, m: &Measurements, ac_present: bool) -> bool {
        if !self.act.heater_on {
            self.heater_dead_first = f64::NAN;
        } else if below_or_nan(m.heater_current_a, 0.5) {
            if self.heater_dead_first.is_nan() {
                self.heater_dead_first = now_s;
            } else if now_s - self.heater_dead_first >= HEATER_DEAD_CONFIRM_S {
                self.heater_dead_at = Some(now_s);
                // Confirmed dead while switched on: 54 is raised here, and only here.
                self.heater_fault = true;
            }
        } else {
            self.heater_dead_first = f64::NAN;
            self.heater_dead_at = None;
        }
        let retry = self
            .heater_dead_at
            .is_none_or(|t| now_s - t >= HEATER_RETRY_S);
        let wanted = !self.shut_down
            && self.nvm.activated
            && thermal::heater(
                self.act.heater_on,
                self.min_temp_c,
                self.max_temp_c,
                ac_present,
                self.soc.soc,
            );
        // 54 is raised when a switched-on heater is confirmed dead, and held while it is known dead
        // and heat is wanted, or was within the retry period. Once released it is raised again only
        // by a new confirmation (a retry that finds it still dead), never from the stale flag: the
        // heater may have been repaired meanwhile (the fault campaign saw 54 raised long after the
        // fault ended, seed 1 scenarios 5111, 5285).
        if wanted {
            self.heater_wanted_at = now_s;
        }
        self.heater_fault &=
            self.heater_dead_at.is_some() && now_s - self.heater_wanted_at < HEATER_RETRY_S;
        wanted && retry
    }

    /// Setpoint while running: the gateway's order within the limits; 0 W without a fresh order.
    #[inline(always)] // one call site: the step it was split from stays one function
    fn setpoint(&self, now_s: f64, forming: bool, lim: &Limits) -> (f64, f64) {
        let Limits {
            chg, dis, force_w, ..
        } = *lim;
        let order = if self.command_timed_out(now_s) {
            0.0
        } else {
            self.cmd.active_power_w
        };
        // The order within the limits; the maintenance charge (where grid charging is permitted)
        // as a floor on the import.
        let mut p = order.clamp(-chg, dis);
        if self.force_charge {
            p = p.min(-force_w);
        }
        let q = if self.command_timed_out(now_s) {
            0.0
        } else {
            self.cmd.reactive_power_var
        };
        (p, self.reactive_within_limits(p, q, forming))
    }

    /// Thermal and balancing run in every state but Off: they protect the cells. Returns the fan
    /// duty and the balance mask; runs the leak detector at its cadence.
    #[inline(always)] // one call site: the step it was split from stays one function
    fn cell_care(&mut self, now_s: f64, m: &Measurements) -> (f64, u8) {
        let i = m.pack_current_a;
        let on = !self.shut_down;
        let balance_mask = if on {
            thermal::balance_mask(
                self.act.balance_mask,
                &m.cell_v,
                self.min_cell_v,
                self.max_cell_v,
                i,
                self.max_temp_c,
            )
        } else {
            0
        };
        let fan_duty = if on {
            thermal::fan_duty(self.max_temp_c, m.inlet_temp_c, m.ac.ac_power_w)
        } else {
            0.0
        };
        self.watch_fan(now_s, m, fan_duty);
        let temps = (self.min_temp_c, self.max_temp_c);
        let (mask, span) = (self.act.balance_mask, self.soc.last_span);
        self.leak
            // Controller cadence means both: the interval just ended and the one planned (a short
            // remainder of a long simulated step is not a controller-cadence sample).
            .under_load(
                now_s,
                &m.cell_v,
                i,
                mask,
                temps,
                span,
                self.step_hint_s.max(self.last_dt_s),
            );
        if now_s - self.leak_last_t >= LEAK_PERIOD_S {
            self.leak_last_t = now_s;
            let idle = self.act.ac_power_w == 0.0
                && !self.act.heater_on
                && self.act.balance_mask == 0
                && balance_mask == 0;
            self.leak.update(now_s, &m.cell_v, i, idle);
        }
        (fan_duty, balance_mask)
    }

    /// Reactive power within the apparent-power rating and the power-factor range (manual 7.1:
    /// 0.8 leading..lagging on grid, 1.0 off grid).
    fn reactive_within_limits(&self, p: f64, q: f64, forming: bool) -> f64 {
        if forming || q == 0.0 {
            return 0.0;
        }
        let s = if p >= 0.0 {
            spec::MAX_CONTINUOUS_OUTPUT_VA
        } else {
            spec::MAX_CONTINUOUS_INPUT_VA
        };
        let pf = spec::MIN_POWER_FACTOR_ON_GRID;
        let by_pf = p.abs() * (1.0 - pf * pf).sqrt() / pf;
        let by_s = (s * s - p * p).max(0.0).sqrt();
        let lim = by_pf.min(by_s);
        // Both bounds are magnitudes (the setpoint `p` is finite: it comes from the clamp above).
        assert!(lim >= 0.0, "reactive-power limit non-negative: {lim} var");
        q.clamp(-lim, lim)
    }

    /// Where grid charging is forbidden the unit cannot maintenance-charge, so it keeps a storage
    /// reserve instead: discharging fades out over the 2 % above [`BANNED_RESERVE_SOC`].
    fn storage_reserve(&self, mut target: DcLimits) -> DcLimits {
        if !self.cfg.may_charge_from_grid() {
            let k = ((self.soc.soc - BANNED_RESERVE_SOC) / 0.02).clamp(0.0, 1.0);
            target.discharge_a *= if k.is_nan() { 0.0 } else { k };
        }
        target
    }

    /// The dead-fan latch (see [`FAN_HOLD_S`]): `wanted` is this cycle's fan duty. 53 and 55 are
    /// raised when a driven fan is confirmed stalled, and only then (never from the stale flag:
    /// the fan may have been repaired meanwhile); held while it is known dead and cooling is
    /// wanted or was within the hold; a fan that turns when driven is alive again.
    fn watch_fan(&mut self, now_s: f64, m: &Measurements, wanted: f64) {
        if wanted >= thermal::FAN_MIN_DUTY {
            self.fan_wanted_at = now_s;
        }
        if self.act.fan_duty < thermal::FAN_MIN_DUTY {
            self.fan_stall_first = f64::NAN;
        } else if below_or_nan(m.fan_rpm, 300.0) {
            // The stall has lasted since the sample that drove the fan: one cycle at least (a
            // cycle longer than the confirmation time confirms at once, as the debounce does).
            if self.fan_stall_first.is_nan() {
                self.fan_stall_first = now_s - self.step_hint_s;
            }
            if now_s - self.fan_stall_first >= HEATER_DEAD_CONFIRM_S {
                self.fan_dead_at = Some(now_s);
                self.fan_held = true;
            }
        } else {
            self.fan_stall_first = f64::NAN;
            self.fan_dead_at = None;
        }
        self.fan_held &= self.fan_dead_at.is_some() && now_s - self.fan_wanted_at < FAN_HOLD_S;
    }

    fn collect_alerts(&mut self) -> AlertSet {
        let table = self.prot.alerts().bits();
        let permanent = self.nvm.permanent_alerts.bits() | (table & self.masks.permanent);
        self.nvm.permanent_alerts = AlertSet::from_bits(permanent);
        let heater = if self.heater_fault { self.cold_bit } else { 0 };
        let fan = if self.fan_held { self.fan_bits } else { 0 };
        AlertSet::from_bits(table | self.grid.alerts().bits() | permanent | heater | fan)
    }

    fn lifecycle_now(&self) -> Lifecycle {
        if self.shut_down {
            return Lifecycle::Off;
        }
        if !self.nvm.activated {
            return Lifecycle::Standby;
        }
        let bits = self.alerts.bits();
        if bits & self.masks.latched_stop != 0 {
            Lifecycle::LatchedFault
        } else if bits & self.masks.stop != 0 {
            Lifecycle::Fault
        } else {
            Lifecycle::Active
        }
    }

    fn sync_nvm(&mut self, now_s: f64) {
        self.nvm.soc = self.soc.soc;
        self.nvm.soc_valid = self.soc.soc_valid;
        self.nvm.soc_unc = self.soc.soc_unc;
        self.nvm.capacity_ah = self.soc.capacity_ah;
        self.nvm.capacity_updates = self.soc.capacity_updates;
        self.nvm.last_cal = self.soc.last_cal;
        self.nvm.ah_since_cal = self.soc.ah_since_cal;
        self.nvm.saved_at_s = now_s;
    }

    /// The unit's lifecycle state now.
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle
    }

    /// The LEDs of manual 6.1.
    pub fn leds(&self) -> (SocLed, StatusLed) {
        let soc_led = match self.lifecycle {
            // Manual 4.11: solid blue once activated; nothing to show before, or when shut down.
            Lifecycle::Off | Lifecycle::Standby => SocLed::Off,
            _ => SocLed::SolidBlue {
                percent: (self.soc.soc * 100.0).round().clamp(0.0, 100.0) as u8,
            },
        };
        let status = match self.lifecycle {
            Lifecycle::Off => StatusLed::Off,
            // "Solid red: the battery has an internal fault" (manual 6.1).
            Lifecycle::LatchedFault => StatusLed::SolidRed,
            _ if self.alerts.bits() & self.masks.critical != 0 => StatusLed::SolidRed,
            // "Quick flash: abnormal working condition": an alert that clears by itself, a warning,
            // or waiting for the grid to settle before reconnecting.
            _ if !self.alerts.is_empty() || self.grid.reconnect_pending() => StatusLed::QuickFlash,
            // "Dim: normal operation".
            _ => StatusLed::Dim,
        };
        (soc_led, status)
    }

    /// The report for the gateway.
    pub fn status(&self) -> BatteryStatus {
        let (soc_led, status_led) = self.leds();
        let [pack_v, pack_i, ac_p] = self.last_sample;
        let fin = |x: f64| if x.is_finite() { x } else { 0.0 };
        BatteryStatus {
            soc: self.soc.soc,
            soh: self.soc.soh(),
            pack_v: fin(pack_v),
            pack_current_a: fin(pack_i),
            ac_power_w: fin(ac_p),
            reactive_power_var: self.act.reactive_power_var,
            min_cell_v: fin(self.min_cell_v),
            max_cell_v: fin(self.max_cell_v),
            min_temp_c: fin(self.min_temp_c),
            max_temp_c: fin(self.max_temp_c),
            max_charge_w: self.max_charge_w,
            max_discharge_w: self.max_discharge_w,
            alerts: self.alerts,
            lifecycle: self.lifecycle,
            soc_led,
            status_led,
            ac_charged_wh: self.nvm.ac_charged_wh,
            ac_discharged_wh: self.nvm.ac_discharged_wh,
        }
    }

    /// The NVM image to keep across a power cycle.
    pub fn nvm(&self) -> Nvm {
        self.nvm.clone()
    }

    /// Names of the protection rows holding a code now (which measured signal proved which cause).
    pub fn active_causes(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.prot.active_rules().map(|r| r.name)
    }

    /// The current DC limits, A.
    pub fn dc_limits(&self) -> DcLimits {
        self.dc
    }

    /// True if the alert is held now.
    pub fn has_alert(&self, code: AlertCode) -> bool {
        self.alerts.contains(code)
    }
}
