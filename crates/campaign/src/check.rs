//! The safety invariants, checked after every cycle on the twins' true state (never on what the
//! firmware or the gateway believe).
//!
//! Thresholds on the truth carry the sensors' error budget (`melv_model::sensors`): a cell voltage
//! is known to the firmware within 1 mV fixed + 1.5 mV noise + 0.5 mV quantisation, a temperature
//! within 0.5 + 0.1 + 0.05 K, so a cause counts as "present" for the latency check only beyond the
//! firmware's threshold by [`V_MARGIN`] / [`T_MARGIN`], and a code counts as "false" only when the
//! truth is short of the threshold by more than the same margins and no injected fault explains it.

use crate::gen::Scenario;
use melv_core::alerts::{AlertCode, Latch};
use melv_core::status::BatteryStatus;
use melv_core::{GridCharging, Lifecycle};
use melv_model::{Faults, TrueState};
use melv_site::events::{Event, EventKind};
use serde::Serialize;

/// Sensor error budget on a cell voltage, V (3 mV total, rounded up).
pub const V_MARGIN: f64 = 0.005;
/// Sensor error budget on a temperature, K (0.65 K total, rounded up).
pub const T_MARGIN: f64 = 1.0;
/// The cell's safe window while the unit may conduct, V: EVE LF280K datasheet charge limit 3.65 V
/// and discharge cut-off 2.5 V (`melv_core::spec::assumed`).
pub const CELL_V_SAFE: (f64, f64) = (2.5, 3.65);
/// Damage limit in any state, V: below 2.0 V the copper current collector dissolves (the
/// firmware's second 51 stage, protect.rs `cell_uv_hard`).
pub const CELL_V_DAMAGE: f64 = 2.0;
/// Largest charge current into a pack whose lowest cell is below the window, A (0.05 C of 280 Ah).
pub const PRECHARGE_A: f64 = 14.0;
/// Charge current counted as charging a cell, A: the pack current sensor's offset bound (0.2 A,
/// `melv_model::sensors::CURRENT`) halved; below it the cells are at rest for every purpose.
pub const CHARGE_TOLERANCE_A: f64 = 0.1;
/// A battery code raised more often than this within [`FLAP_WINDOW_S`] is flapping.
pub const FLAP_LIMIT: usize = 6;
pub const FLAP_WINDOW_S: f64 = 3600.0;
/// How far back an injected fault or a true cause explains a raised code, s.
pub const CAUSE_MEMORY_S: f64 = 3600.0;

/// The invariants, as the JSON names them.
pub const INVARIANTS: [&str; 9] = [
    "cell_voltage_window",
    "no_deep_discharge",
    "no_cold_charge",
    "alert_latency",
    "no_false_alert",
    "energy_balance",
    "grid_charging_policy",
    "recoverable",
    "limits_respected",
];

/// One broken invariant: what, where and when, with what replays it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub invariant: &'static str,
    pub seed: u64,
    pub scenario: u64,
    /// Seconds from the scenario's start.
    pub t_s: f64,
    /// Unit slot (0-based), if one unit.
    pub unit: Option<usize>,
    pub detail: String,
}

/// A latency rule: while `cause` holds on the truth for `delay_s` plus one cycle, `code` must be
/// held by the unit's firmware (which must be powered and not shut down).
struct LatencyRule {
    name: &'static str,
    code: AlertCode,
    delay_s: f64,
    cause: fn(&UnitView) -> bool,
}

/// What the checks see of one unit in one cycle.
pub struct UnitView<'a> {
    pub truth: &'a TrueState,
    pub faults: &'a Faults,
    pub status: &'a BatteryStatus,
    pub powered: bool,
    pub fan_commanded: bool,
    pub heater_commanded: bool,
    pub may_conduct: bool,
    /// The unit forms the grid itself with no grid at its terminals (an island).
    pub islanded: bool,
}

impl UnitView<'_> {
    /// What an ideal version of each of the 4 cell NTCs would read (the mean of its two cells).
    fn sensor_temps(&self) -> [f64; 4] {
        let t = &self.truth.cell_temp_c;
        std::array::from_fn(|k| 0.5 * (t[2 * k] + t[2 * k + 1]))
    }
    fn v_min(&self) -> f64 {
        self.truth
            .cell_v
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
    }
    fn v_max(&self) -> f64 {
        self.truth
            .cell_v
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }
    fn t_min(&self) -> f64 {
        self.truth
            .cell_temp_c
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
    }
    fn t_max(&self) -> f64 {
        self.truth
            .cell_temp_c
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

fn delay_of(row: &str) -> f64 {
    melv_bms::protect::TABLE
        .iter()
        .find(|r| r.name == row)
        .map_or(0.0, |r| r.delay_s)
}

fn latency_rules() -> Vec<LatencyRule> {
    vec![
        LatencyRule {
            name: "cell over-voltage",
            code: AlertCode::BATTERY_OVERVOLTAGE,
            delay_s: delay_of("cell_ov"),
            cause: |u| u.v_max() >= 3.65 + V_MARGIN && u.faults.open_sense_wire.is_none(),
        },
        LatencyRule {
            name: "cell under-voltage",
            code: AlertCode::BATTERY_UNDERVOLTAGE,
            delay_s: delay_of("cell_uv"),
            cause: |u| {
                u.v_min() <= 2.50 - V_MARGIN
                    && u.faults.open_sense_wire.is_none()
                    && u.faults.thermal_runaway.is_none()
            },
        },
        LatencyRule {
            name: "cell over-temperature",
            code: AlertCode::BATTERY_OVERTEMPERATURE,
            delay_s: delay_of("cell_ot"),
            // A cell that went into runaway is 60's (Permanent, Critical), which supersedes 53.
            cause: |u| {
                u.sensor_temps().iter().any(|&t| t >= 60.0 + T_MARGIN)
                    && u.faults.thermal_runaway.is_none()
                    && !u.status.alerts.contains(AlertCode::THERMAL_RUNAWAY)
            },
        },
        LatencyRule {
            name: "fan stalled while driven",
            code: AlertCode::BATTERY_OVERTEMPERATURE,
            delay_s: delay_of("fan_stalled"),
            cause: |u| u.faults.fan_failed && u.fan_commanded,
        },
        LatencyRule {
            name: "heater dead while switched on",
            code: AlertCode::LOW_BATTERY_TEMPERATURE,
            delay_s: delay_of("heater_dead"),
            cause: |u| u.faults.heater_failed && u.heater_commanded,
        },
        LatencyRule {
            name: "thermal runaway",
            code: AlertCode::THERMAL_RUNAWAY,
            // The rise rate is judged over windows of at least 3 s (GB 38031-2020, firmware signals.rs).
            delay_s: delay_of("runaway") + 3.0,
            // At an NTC (each averages two cells): what the firmware can see.
            // A stuck NTC over the runaway cell hides its heat from every firmware.
            cause: |u| {
                u.faults
                    .thermal_runaway
                    .is_some_and(|c| u.faults.temp_sensor_stuck.is_none_or(|(k, _)| k != c / 2))
                    && u.sensor_temps().iter().any(|&t| t >= 80.0 + T_MARGIN)
            },
        },
        LatencyRule {
            name: "islanded (forming the grid without one)",
            code: AlertCode::GRID_POWER_OUTAGE,
            delay_s: 0.0,
            cause: |u| u.islanded,
        },
        LatencyRule {
            name: "open sense wire",
            code: AlertCode::INTERNAL_DEVICE_ERROR,
            delay_s: delay_of("sensor"),
            // On a cell already at ~0 V the wire reads what the cell is: a dead cell (51/59).
            cause: |u| {
                u.faults
                    .open_sense_wire
                    .is_some_and(|c| c < 8 && u.truth.cell_v[c] > 0.5)
            },
        },
        LatencyRule {
            name: "insulation fault",
            code: AlertCode::INTERNAL_DEVICE_ERROR,
            delay_s: delay_of("insulation"),
            cause: |u| u.faults.insulation_kohm < 100.0 * 0.9,
        },
        LatencyRule {
            name: "power stage fault",
            code: AlertCode::INTERNAL_DEVICE_ERROR,
            delay_s: delay_of("power_stage"),
            cause: |u| u.faults.power_stage_fault,
        },
    ]
}

/// Whether a raised battery `code` has a cause: the truth near the threshold or an injected fault
/// that produces it (in this cycle; the checker also remembers causes for [`CAUSE_MEMORY_S`]).
fn explained(code: AlertCode, u: &UnitView, ambient_c: f64) -> bool {
    let f = u.faults;
    let sensor_fault = f.open_sense_wire.is_some()
        || f.thermal_runaway.is_some()
        || f.cell_v_offset.is_some()
        || f.contactor_welded;
    // A runaway's internal short empties its cell too (59 for a collapsed cell).
    let leak = f.micro_short.is_some() || f.bleed_stuck_on.is_some() || f.thermal_runaway.is_some();
    let temp_sensor = f.temp_sensor_stuck.is_some();
    match code.get() {
        50 => u.v_max() >= 3.60 || sensor_fault,
        51 => u.v_min() <= 2.55 || sensor_fault || leak,
        52 => u.v_max() - u.v_min() >= 0.2 || sensor_fault || leak,
        53 => {
            u.sensor_temps().iter().any(|&t| t >= 55.0)
                || f.fan_failed
                || ambient_c >= 45.0
                || f.thermal_runaway.is_some()
                || temp_sensor
        }
        54 => u.t_min() <= -18.0 || f.heater_failed || ambient_c <= -18.0 || temp_sensor,
        55 => {
            u.t_max() - u.t_min() >= 10.0
                || f.fan_failed
                || f.thermal_runaway.is_some()
                || temp_sensor
        }
        56 => {
            u.truth.pack_current_a.abs() > 200.0 || f.current_offset_a != 0.0 || f.contactor_welded
        }
        57 => u.truth.soh < 0.72,
        58 => u.truth.soh < 0.62,
        59 => leak,
        60 => f.thermal_runaway.is_some(),
        62 => {
            sensor_fault
                || temp_sensor
                || f.current_offset_a != 0.0
                || f.insulation_kohm < 150.0
                || f.power_stage_fault
                || u.v_min() < 0.5
                || !(-40.0..=125.0).contains(&u.t_min())
                || !(-40.0..=125.0).contains(&u.t_max())
        }
        // The inlet sensor reads the air the unit draws in, warmed by the enclosure when the fan
        // stands still (up to a few K above ambient): 5 K of allowance on the hot side.
        64 => !(-20.0 + T_MARGIN..=50.0).contains(&ambient_c),
        // Grid codes (2-18) are judged against the grid events by the caller; 63 is the gateway's.
        _ => true,
    }
}

/// The invariant state of one scenario.
pub struct Checker {
    seed: u64,
    index: u64,
    rules: Vec<LatencyRule>,
    /// The battery codes (50-64) with their bit index, found once (`AlertCode::index` searches).
    battery_codes: Vec<(AlertCode, usize)>,
    /// Per unit, per latency rule: since when the cause has held.
    since: Vec<Vec<Option<f64>>>,
    /// Per unit, per code index: when it was last explained, and its recent raises.
    explained_at: Vec<[f64; 32]>,
    raises: Vec<Vec<Vec<f64>>>,
    prev_alerts: Vec<melv_core::AlertSet>,
    /// Per unit, the codes it has held so far (a Permanent one comes back from NVM at each boot).
    permanent_seen: Vec<melv_core::AlertSet>,
    pub violations: Vec<Violation>,
    /// Per unit: a cell has been below [`CELL_V_DAMAGE`] (it needs service: `recoverable` does
    /// not apply; `no_deep_discharge` has judged whether the firmware let it happen).
    pub damaged: Vec<bool>,
    /// Per unit: it has held 58, 59 or 60 (out of service for good).
    scrap: Vec<bool>,
}

impl Checker {
    pub fn new(sc: &Scenario) -> Self {
        let rules = latency_rules();
        let n = sc.batteries;
        Self {
            seed: sc.seed,
            index: sc.index,
            since: vec![vec![None; rules.len()]; n],
            battery_codes: AlertCode::all()
                .filter(|c| c.get() >= 50)
                .map(|c| (c, c.index()))
                .collect(),
            rules,
            explained_at: vec![[f64::NEG_INFINITY; 32]; n],
            raises: vec![vec![Vec::new(); 32]; n],
            prev_alerts: vec![melv_core::AlertSet::EMPTY; n],
            permanent_seen: vec![melv_core::AlertSet::EMPTY; n],
            violations: Vec::new(),
            damaged: vec![false; n],
            scrap: vec![false; n],
        }
    }

    /// Records a violation (the first of each invariant per scenario is kept in full).
    pub fn fail(&mut self, invariant: &'static str, t_s: f64, unit: Option<usize>, detail: String) {
        if self.violations.iter().any(|v| v.invariant == invariant) {
            return;
        }
        self.violations.push(Violation {
            invariant,
            seed: self.seed,
            scenario: self.index,
            t_s,
            unit,
            detail,
        });
    }

    /// Whether `invariant` has failed in this scenario.
    pub fn failed(&self, invariant: &str) -> bool {
        self.violations.iter().any(|v| v.invariant == invariant)
    }

    /// The per-unit checks of one cycle that ended at `t_s` (cycle length `dt_s`).
    #[allow(clippy::too_many_arguments)]
    pub fn unit(
        &mut self,
        t_s: f64,
        dt_s: f64,
        i: usize,
        u: &UnitView,
        ambient_c: f64,
        grid_events_active: bool,
        faults_recent: &[Event],
    ) {
        let v_lo = u.v_min();
        let v_hi = u.v_max();
        // A cell destroyed from inside (an internal short, a runaway, a stuck bleed FET) is not
        // the firmware's doing; whether it noticed is `alert_latency`'s and `recoverable`'s.
        let shorted_ever = faults_recent.iter().any(|e| {
            matches!(
                e.kind,
                EventKind::MicroShort
                    | EventKind::ThermalRunaway
                    | EventKind::BleedStuck
                    | EventKind::ContactorWeld
            ) && e.battery.is_none_or(|b| b == i)
                && (e.from_utc_s as f64) <= t_s
        });
        // Below the window a cell may only take a pre-charge (at most 0.05 C, from 2.0 V): the
        // usual CC pre-charge of Li-ion chargers for an over-discharged cell (e.g. TI bq2407x:
        // C/10 below the pre-charge threshold; we take half of that).
        let precharge = u.truth.pack_current_a <= 0.0
            && -u.truth.pack_current_a <= PRECHARGE_A
            && v_lo >= CELL_V_DAMAGE;
        let low = v_lo < CELL_V_SAFE.0 - V_MARGIN && !precharge;
        // Above the window the mirror: a small discharge that brings an over-charged cell back.
        let bleed_back = u.truth.pack_current_a >= 0.0 && u.truth.pack_current_a <= PRECHARGE_A;
        let high = v_hi > CELL_V_SAFE.1 + V_MARGIN && !bleed_back;
        if u.may_conduct && !shorted_ever && (low || high) {
            self.fail(
                "cell_voltage_window",
                t_s,
                Some(i),
                format!(
                    "true cells {v_lo:.3}..{v_hi:.3} V at {:.1} A while the unit may conduct",
                    u.truth.pack_current_a
                ),
            );
        }
        // A unit stopped for good (life terminated, micro-short, runaway: Permanent, manual 6.3
        // "stop using the battery") is scrap awaiting service; its cells' slow self-discharge is
        // no longer the firmware's to stop.
        let scrap = [
            AlertCode::LIFE_TERMINATED,
            AlertCode::MICRO_SHORT_CIRCUIT,
            AlertCode::THERMAL_RUNAWAY,
        ]
        .iter()
        .any(|c| u.status.alerts.contains(*c));
        // Sticky: a dark unit reports nothing, but a scrapped unit stays scrap.
        self.scrap[i] |= scrap;
        let scrap = self.scrap[i];
        // A cell destroyed by a runaway, or drained by an internal leak (the cause of 52 then
        // persists after the fault), needs service whatever the firmware saw of it.
        let burnt = faults_recent.iter().any(|e| {
            matches!(
                e.kind,
                EventKind::ThermalRunaway | EventKind::MicroShort | EventKind::BleedStuck
            ) && e.battery.is_none_or(|b| b == i)
                && (e.from_utc_s as f64) <= t_s
        });
        if burnt {
            self.damaged[i] = true;
        }
        if v_lo < CELL_V_DAMAGE {
            // A cell taken below its damage limit needs service, whatever took it there.
            self.damaged[i] = true;
        }
        if v_lo < CELL_V_DAMAGE && !shorted_ever && !scrap {
            self.fail(
                "no_deep_discharge",
                t_s,
                Some(i),
                format!(
                    "true cell at {v_lo:.3} V (lifecycle {:?}, powered {})",
                    u.status.lifecycle, u.powered
                ),
            );
        }
        let t_lo = u.t_min();
        if t_lo < 0.0 && u.truth.pack_current_a < -CHARGE_TOLERANCE_A {
            self.fail(
                "no_cold_charge",
                t_s,
                Some(i),
                format!(
                    "{:.1} A of charge into cells at {t_lo:.2} degC",
                    -u.truth.pack_current_a
                ),
            );
        }
        self.latency(t_s, dt_s, i, u);
        if shorted_ever {
            // A cell damaged from inside stays damaged: 59 (and 51, 52) stay explained.
            for c in [
                AlertCode::MICRO_SHORT_CIRCUIT,
                AlertCode::BATTERY_UNDERVOLTAGE,
                AlertCode::CELL_VOLTAGE_DIFFERENCE,
                AlertCode::THERMAL_RUNAWAY,
            ] {
                self.explained_at[i][c.index()] = t_s;
            }
        }
        self.false_alerts(t_s, i, u, ambient_c, grid_events_active);
        self.limits(t_s, i, u);
    }

    fn latency(&mut self, t_s: f64, dt_s: f64, i: usize, u: &UnitView) {
        let watching = u.powered && u.status.lifecycle != Lifecycle::Off;
        for k in 0..self.rules.len() {
            let r = &self.rules[k];
            if !(watching && (r.cause)(u)) {
                self.since[i][k] = None;
                continue;
            }
            // First seen at the end of this cycle, which is the firmware's next sample: the code is
            // due once its delay has passed, plus one cycle for the sample that shows it.
            let since = *self.since[i][k].get_or_insert(t_s);
            if t_s - since > r.delay_s + dt_s + 1e-6 && !u.status.alerts.contains(r.code) {
                let (name, code, delay) = (r.name, r.code.get(), r.delay_s);
                self.fail(
                    "alert_latency",
                    t_s,
                    Some(i),
                    format!(
                        "{name} for {:.0} s without code {code} (delay {delay} s + one {dt_s} s cycle)",
                        t_s - since
                    ),
                );
            }
        }
    }

    fn false_alerts(
        &mut self,
        t_s: f64,
        i: usize,
        u: &UnitView,
        ambient_c: f64,
        grid_events_active: bool,
    ) {
        for &(c, idx) in &self.battery_codes {
            if explained(c, u, ambient_c) {
                self.explained_at[i][idx] = t_s;
            }
        }
        if !u.powered {
            // A dark unit reports nothing; its codes are what they were.
            return;
        }
        let now = u.status.alerts;
        let before = self.prev_alerts[i];
        let permanent_before = self.permanent_seen[i];
        for c in now.iter().filter(|c| c.info().latch == Latch::Permanent) {
            self.permanent_seen[i].insert(c);
        }
        for c in now
            .iter()
            .filter(|c| !before.contains(*c) && !permanent_before.contains(*c))
        {
            let idx = c.index();
            let code = c.get();
            if code >= 50 {
                if t_s - self.explained_at[i][idx] > CAUSE_MEMORY_S {
                    self.fail(
                        "no_false_alert",
                        t_s,
                        Some(i),
                        format!("code {code} raised without its cause"),
                    );
                }
                let r = &mut self.raises[i][idx];
                r.retain(|&t| t_s - t <= FLAP_WINDOW_S);
                r.push(t_s);
                let raised = r.len();
                if raised > FLAP_LIMIT && c.info().latch == Latch::AutoClear {
                    self.fail(
                        "no_false_alert",
                        t_s,
                        Some(i),
                        format!(
                            "code {code} flapping: raised {raised} times within {FLAP_WINDOW_S} s"
                        ),
                    );
                }
            } else if code != 63 && !grid_events_active {
                // Grid codes need a grid event (or the recovery's AC off) to explain them.
                self.fail(
                    "no_false_alert",
                    t_s,
                    Some(i),
                    format!("grid code {code} raised on a healthy grid"),
                );
            }
        }
        self.prev_alerts[i] = now;
    }

    fn limits(&mut self, t_s: f64, i: usize, u: &UnitView) {
        // The limits the unit published with this cycle's decision (the setpoint of a cycle is
        // chosen within the limits computed in the same cycle; the gateway sees them next cycle).
        // A welded contactor is exactly a power stage that does not obey: its detection is 62's.
        if u.powered && !u.faults.contactor_welded {
            let (chg, dis) = (u.status.max_charge_w, u.status.max_discharge_w);
            let p = u.truth.ac_power_w;
            // 1 % of the limit and 15 W: the AC power sensor's error (0.5 % + 5 W noise, 1 W steps)
            // and the inverter's loss change within a cycle.
            let tol = |lim: f64| 0.01 * lim + 15.0;
            if p > dis + tol(dis) || -p > chg + tol(chg) {
                self.fail(
                    "limits_respected",
                    t_s,
                    Some(i),
                    format!("AC power {p:.0} W beyond the reported limits -{chg:.0}..{dis:.0} W"),
                );
            }
        }
    }

    /// Grid-charging policy of one cycle: `from_grid_wh` is the units' inverter import beyond the
    /// PV surplus.
    pub fn grid_charging(
        &mut self,
        t_s: f64,
        dt_s: f64,
        units: usize,
        policy: GridCharging,
        from_grid_wh: f64,
    ) {
        // 1 W per unit over the cycle: a fifth of each unit's AC power sensor noise (5 W,
        // melv_model::sensors), below what any meter bills.
        if policy == GridCharging::Forbidden && from_grid_wh > units as f64 * dt_s / 3600.0 {
            self.fail(
                "grid_charging_policy",
                t_s,
                None,
                format!(
                    "{from_grid_wh:.3} Wh into the batteries from the grid where it is forbidden"
                ),
            );
        }
    }
}
