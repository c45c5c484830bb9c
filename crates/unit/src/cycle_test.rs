//! The full-cycle test behind `melv cycle-test`: what an engineer does on a test bench to check a
//! unit against its datasheet.
//!
//! From empty, charge at the maximum charge power until the firmware stops charging, rest, then
//! discharge at the maximum continuous power until the firmware stops discharging. Everything goes
//! through the unit's own firmware: the test only sends the gateway's setpoint, as a gateway would,
//! and reads the firmware's status to know when a phase is over. The energy figures come from the
//! plant's meters at the AC terminals and at the pack terminals.
//!
//! Datasheet targets (manual 7.1): usable energy 7 kWh, DC round trip 96 %, AC round trip 90 %.

use crate::{BatteryUnit, UnitConfig};
use melv_core::spec;
use melv_core::status::BatteryCommand;
use melv_core::{AlertCode, AlertSet};
use melv_model::{Environment, GridState};
use serde::Serialize;

/// Options of the cycle test.
#[derive(Debug, Clone)]
pub struct CycleTestOptions {
    /// Power cap for both charge and discharge, W; `None` uses the datasheet's maxima
    /// (3.75 kVA charge, 4.5 kVA continuous discharge, manual 7.1).
    pub power_w: Option<f64>,
    /// Ambient temperature, degC; the unit starts at ambient.
    pub ambient_c: f64,
    /// Control and physics step, s.
    pub step_s: f64,
    /// Rest between charge and discharge, s.
    pub rest_s: f64,
    /// Seed of the unit.
    pub seed: u64,
}

impl Default for CycleTestOptions {
    fn default() -> Self {
        Self {
            power_w: None,
            ambient_c: 25.0,
            step_s: 1.0,
            rest_s: 3600.0,
            seed: 1,
        }
    }
}

/// Why the options were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CycleTestError {
    #[error("power must be above 0 and at most {max} W (manual 7.1), got {got} W")]
    Power { got: f64, max: f64 },
    #[error("ambient temperature {0} °C is outside the operating range -20..55 °C (manual 7.1)")]
    Ambient(f64),
    #[error("step must be between 0.1 s and 60 s, got {0} s")]
    Step(f64),
    #[error("rest must be between 0 and 86400 s, got {0} s")]
    Rest(f64),
}

/// Results, with the JSON field names `melv cycle-test --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct CycleTestReport {
    /// AC energy delivered in the discharge phase, kWh.
    pub usable_energy_kwh: f64,
    /// DC energy out of the pack over DC energy into it.
    pub dc_round_trip_efficiency: f64,
    /// AC energy delivered over all AC energy drawn (charge phase and rest, standby and heater included).
    pub ac_round_trip_efficiency: f64,
    /// Hours from the charge command to the end of charging (heater wait included).
    pub charge_hours: f64,
    /// Hours from the discharge command to the end of discharging.
    pub discharge_hours: f64,
    /// Energy the heater used during the test, kWh.
    pub heater_kwh: f64,
    /// Alert codes raised at any time during the test (not counting the deliberate breaker-off
    /// period before it, which raises 2, grid power outage, as it should).
    pub alerts: Vec<u8>,
    /// AC energy drawn in the charge phase and rest, kWh.
    pub ac_charged_kwh: f64,
    /// DC energy into and out of the pack, kWh.
    pub dc_charged_kwh: f64,
    pub dc_discharged_kwh: f64,
    /// Hours before charging actually started: the grid profile's reconnection wait after power-on,
    /// and in the cold the heating of the cells to 0 °C and above.
    pub charge_wait_hours: f64,
    /// The firmware's SOC estimate at the end of charge and discharge.
    pub soc_after_charge: f64,
    pub soc_after_discharge: f64,
    /// The cells' true SOC (capacity-weighted mean; lowest cell) at the same moments, from the twin:
    /// how well the firmware's estimate and its end-of-charge and end-of-discharge rules did.
    pub true_soc_after_charge: (f64, f64),
    pub true_soc_after_discharge: (f64, f64),
    pub ambient_c: f64,
    pub charge_power_w: f64,
    pub discharge_power_w: f64,
    /// Where the energy went over charge, rest and discharge (the plant's ledger), kWh.
    pub losses_kwh: Losses,
    /// Net energy left in (positive) or taken from (negative) the cells' chemistry over the
    /// measured cycle, kWh: the end state differs a little from the start state.
    pub stored_change_kwh: f64,
}

/// Losses over the measured cycle by kind, kWh.
#[derive(Debug, Clone, Serialize)]
pub struct Losses {
    pub cells: f64,
    pub inverter: f64,
    pub standby: f64,
    pub fan: f64,
    pub heater: f64,
    pub balancing: f64,
    pub self_discharge: f64,
}

/// Longest a phase may take before the test gives up on it, s: a 280 Ah pack charges at 0.5 C in about
/// two hours; twelve hours also covers a cold start at -20 °C.
const PHASE_LIMIT_S: f64 = 12.0 * 3600.0;
/// A phase is over once the unit has exchanged less than this power for [`SETTLE_S`]. 100 W is
/// 3.9 A at 25.6 V, about C/70: below the C/20 (14 A) taper current at which LFP cell datasheets
/// (e.g. EVE LF280K, standard charge "CC 0.5C to 3.65 V, CV to 0.05C") end a charge, so the test waits
/// for the firmware's own end of charge, and above the short top-balancing pulses that follow it.
const IDLE_W: f64 = 100.0;
const SETTLE_S: f64 = 120.0;

struct Bench {
    unit: BatteryUnit,
    env: Environment,
    now_s: f64,
    step_s: f64,
    alerts: AlertSet,
    /// Whether alerts are being recorded (not while the breaker is deliberately off).
    recording: bool,
}

impl Bench {
    /// Run with a constant setpoint until the unit stops exchanging power (after having started),
    /// or until `limit_s`. Returns (seconds elapsed, seconds before power started flowing).
    fn run_until_idle(&mut self, setpoint_w: f64, limit_s: f64) -> (f64, f64) {
        let start = self.now_s;
        let mut started_at: Option<f64> = None;
        let mut idle_since: Option<f64> = None;
        while self.now_s - start < limit_s {
            self.tick(setpoint_w);
            // Judge by the power at the pack terminals, as the firmware measures it: when cold, the
            // inverter imports power for the heater without charging the cells.
            // The phase has started once a tenth of the setpoint flows in its direction (a heater or a
            // maintenance trickle is not a start); it is over once less than IDLE_W does.
            let st = self.unit.status();
            let along_w = st.pack_v * st.pack_current_a * setpoint_w.signum();
            if along_w > 0.1 * setpoint_w.abs() {
                started_at.get_or_insert(self.now_s);
            }
            if along_w > IDLE_W {
                idle_since = None;
            } else if started_at.is_some() {
                let since = *idle_since.get_or_insert(self.now_s);
                if self.now_s - since >= SETTLE_S {
                    let end = since;
                    let wait = started_at.map_or(0.0, |t| t - start);
                    return (end - start, wait);
                }
            }
        }
        let wait = started_at.map_or(self.now_s - start, |t| t - start);
        (self.now_s - start, wait)
    }

    fn rest(&mut self, seconds: f64) {
        let end = self.now_s + seconds;
        while self.now_s < end {
            self.tick(0.0);
        }
    }

    /// Breaker off for at least ten minutes and until the warmest cell is within 1 degC of ambient
    /// (at most two days), then on again.
    fn settle_with_breaker_off(&mut self, ambient_c: f64) {
        let grid = self.env.grid;
        self.env.grid = GridState::outage(grid.wired_phases);
        self.recording = false;
        let start = self.now_s;
        loop {
            self.tick(0.0);
            let elapsed = self.now_s - start;
            let warmest = self
                .unit
                .truth()
                .cell_temp_c
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
            if (elapsed >= 600.0 && warmest <= ambient_c + 1.0) || elapsed >= 2.0 * 86_400.0 {
                break;
            }
        }
        self.env.grid = grid;
        self.recording = true;
    }

    fn tick(&mut self, setpoint_w: f64) {
        let cmd = BatteryCommand {
            active_power_w: setpoint_w,
            ..BatteryCommand::default()
        };
        self.unit.command(self.now_s, &cmd);
        self.unit.step(self.now_s, self.step_s, &self.env);
        if self.recording {
            self.alerts = self.alerts.union(self.unit.status().alerts);
        }
        self.now_s += self.step_s;
    }
}

fn true_soc(unit: &crate::BatteryUnit) -> (f64, f64) {
    let t = unit.truth();
    (
        t.pack_soc,
        t.cell_soc.iter().copied().fold(f64::INFINITY, f64::min),
    )
}

/// Run the cycle test.
pub fn run(opts: &CycleTestOptions) -> Result<CycleTestReport, CycleTestError> {
    let max_w = spec::MAX_CONTINUOUS_OUTPUT_VA;
    if let Some(p) = opts.power_w {
        if !(p > 0.0 && p <= max_w) {
            return Err(CycleTestError::Power { got: p, max: max_w });
        }
    }
    let (lo, hi) = spec::AMBIENT_OPERATING_C;
    if !(opts.ambient_c >= lo && opts.ambient_c <= hi) {
        return Err(CycleTestError::Ambient(opts.ambient_c));
    }
    if !(opts.step_s >= 0.1 && opts.step_s <= 60.0) {
        return Err(CycleTestError::Step(opts.step_s));
    }
    if !(opts.rest_s >= 0.0 && opts.rest_s <= 86_400.0) {
        return Err(CycleTestError::Rest(opts.rest_s));
    }
    // Manual 7.1: 3.75 kVA continuous input, 4.5 kVA continuous output.
    let charge_w = opts.power_w.map_or(spec::MAX_CONTINUOUS_INPUT_VA, |p| {
        p.min(spec::MAX_CONTINUOUS_INPUT_VA)
    });
    let discharge_w = opts.power_w.unwrap_or(spec::MAX_CONTINUOUS_OUTPUT_VA);

    let cfg = UnitConfig {
        seed: opts.seed,
        initial_soc: 0.05,
        initial_temp_c: opts.ambient_c,
        ..UnitConfig::default()
    };
    let env = Environment {
        ambient_c: opts.ambient_c,
        grid: GridState::nominal(cfg.phases),
    };
    let mut bench = Bench {
        unit: BatteryUnit::new(&cfg, 0.0),
        env,
        now_s: 0.0,
        step_s: opts.step_s,
        alerts: AlertSet::EMPTY,
        recording: true,
    };

    // "From empty": discharge what little is left until the firmware stops, so that the cycle starts
    // where its own discharge ends. Then switch the battery breaker off (manual 4.10) and let the
    // pack settle to ambient: the test then starts like a commissioning, with the unit as cold or warm
    // as its surroundings (at -10 degC the firmware must heat before it may charge).
    bench.run_until_idle(discharge_w, PHASE_LIMIT_S);
    bench.settle_with_breaker_off(opts.ambient_c);

    let e0 = *bench.unit.energy();
    let (charge_s, wait_s) = bench.run_until_idle(-charge_w, PHASE_LIMIT_S);
    let soc_after_charge = bench.unit.status().soc;
    let true_soc_after_charge = true_soc(&bench.unit);
    bench.rest(opts.rest_s);
    let e1 = *bench.unit.energy();
    let (discharge_s, _) = bench.run_until_idle(discharge_w, PHASE_LIMIT_S);
    let soc_after_discharge = bench.unit.status().soc;
    let true_soc_after_discharge = true_soc(&bench.unit);
    let e2 = *bench.unit.energy();

    let cycle = e2.since(&e0);
    let kwh = |wh: f64| wh / 1000.0;
    let losses_kwh = Losses {
        cells: kwh(cycle.loss_cell_wh),
        inverter: kwh(cycle.loss_inverter_wh),
        standby: kwh(cycle.loss_standby_wh),
        fan: kwh(cycle.loss_fan_wh),
        heater: kwh(cycle.loss_heater_wh),
        balancing: kwh(cycle.loss_bleed_wh),
        self_discharge: kwh(cycle.loss_self_discharge_wh),
    };
    // Net at the AC terminals, as a meter there sees it: the auxiliary supply draws from AC on grid
    // (melv-model's `aux_from_ac_wh`) in both phases.
    let ac_in = e1.ac_import_wh() - e0.ac_import_wh();
    let ac_out = (e2.ac_out_wh - e1.ac_out_wh) - (e2.aux_from_ac_wh - e1.aux_from_ac_wh);
    let dc_in = e1.dc_in_wh - e0.dc_in_wh;
    let dc_out = e2.dc_out_wh - e1.dc_out_wh;
    let ratio = |num: f64, den: f64| if den > 0.0 { num / den } else { 0.0 };
    Ok(CycleTestReport {
        usable_energy_kwh: ac_out / 1000.0,
        dc_round_trip_efficiency: ratio(dc_out, dc_in),
        ac_round_trip_efficiency: ratio(ac_out, ac_in),
        charge_hours: charge_s / 3600.0,
        discharge_hours: discharge_s / 3600.0,
        heater_kwh: kwh(cycle.loss_heater_wh),
        alerts: bench.alerts.iter().map(AlertCode::get).collect(),
        ac_charged_kwh: ac_in / 1000.0,
        dc_charged_kwh: dc_in / 1000.0,
        dc_discharged_kwh: dc_out / 1000.0,
        charge_wait_hours: wait_s / 3600.0,
        soc_after_charge,
        soc_after_discharge,
        true_soc_after_charge,
        true_soc_after_discharge,
        ambient_c: opts.ambient_c,
        charge_power_w: charge_w,
        discharge_power_w: discharge_w,
        losses_kwh,
        stored_change_kwh: kwh(cycle.stored_wh),
    })
}
