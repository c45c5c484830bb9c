//! The boundary between the battery unit's hardware and its firmware.
//!
//! The physics twin (`melv-model`) fills a [`Measurements`] from its true state through sensor models
//! (noise, offsets, quantisation); the firmware (`melv-bms`) decides from nothing else and answers
//! with an [`Actuation`], which the twin obeys. A real unit's firmware sees exactly this much, so the
//! same firmware logic could run against real hardware.

use crate::spec::CELLS_IN_SERIES;
use crate::types::Phases;
use serde::{Deserialize, Serialize};

/// Number of cell temperature sensors (NTCs) on the 8S module. The manual does not say; four NTCs on
/// an 8S 280 Ah module (one per cell pair) is the common layout of LFP home-battery modules (e.g. the
/// EVE LF280K 8S reference design and most 24 V rack BMS boards offer 4 NTC inputs).
pub const CELL_TEMP_SENSORS: usize = 4;

/// Direction of the three-phase voltage rotation as the unit measures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseRotation {
    /// L1 -> L2 -> L3 (or single phase, where rotation is not defined).
    Positive,
    /// L1 -> L3 -> L2: reversed phase sequence (a cause of code 13).
    Negative,
}

/// What the unit measures on its AC terminals, after the inverter's own filtering.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AcMeasurements {
    /// RMS voltage of each phase to neutral, V. On a single-phase unit only `[0]` is meaningful;
    /// the others read what the terminals carry (about 0 V unless miswired).
    pub phase_v: [f64; 3],
    /// Frequency, Hz (0 when there is no voltage to measure).
    pub frequency_hz: f64,
    /// Measured rotation of the three phases.
    pub rotation: PhaseRotation,
    /// Phases the unit finds wired on its AC terminal block (the plug-in bridge present means single).
    pub wired_phases: Phases,
    /// DC component of the output current, A (code 7).
    pub dc_current_component_a: f64,
    /// DC component of the output voltage, V (code 18).
    pub dc_voltage_component_v: f64,
    /// Real power on the AC side, W, positive when the unit delivers power (discharging).
    pub ac_power_w: f64,
    /// A short circuit seen by the inverter's over-current comparator on the AC side.
    pub ac_short_circuit: bool,
}

/// One sample of everything the firmware can read. All currents and powers: positive = discharging.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measurements {
    /// Cell voltages from the analogue front end, V (noisy, quantised to 1 mV).
    pub cell_v: [f64; CELLS_IN_SERIES],
    /// Pack voltage from its own divider, V.
    pub pack_v: f64,
    /// Pack current from the shunt, A, positive when discharging.
    pub pack_current_a: f64,
    /// Cell temperature sensors, degC.
    pub cell_temp_c: [f64; CELL_TEMP_SENSORS],
    /// Air inlet (ambient) temperature sensor, degC.
    pub inlet_temp_c: f64,
    /// Fan tachometer, rpm (0 when stopped or broken).
    pub fan_rpm: f64,
    /// Heater current sense, A (0 when off or broken).
    pub heater_current_a: f64,
    /// AC side.
    pub ac: AcMeasurements,
    /// Insulation resistance monitor, kOhm (manual 7.1: "Insulation resistance monitor: YES").
    pub insulation_kohm: f64,
    /// Hardware fault latch of the power stage (gate-driver desaturation, relay welded, self-test
    /// failure): the inverter's own protection circuit (code 62).
    pub power_stage_fault: bool,
}

/// What the firmware drives. The twin obeys it within physics (a broken fan does not turn).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Actuation {
    /// Main DC relay / inverter enable. Open: no power flows.
    pub power_enabled: bool,
    /// AC active-power setpoint, W, positive = discharging; the firmware has already clamped it to
    /// its limits.
    pub ac_power_w: f64,
    /// AC reactive-power setpoint, var, positive = supplying (capacitive/leading convention of the
    /// gateway); clamped to the apparent-power and power-factor limits.
    pub reactive_power_var: f64,
    /// Grid-forming (off-grid, the unit sets voltage and frequency) instead of grid-following.
    pub grid_forming: bool,
    /// Fan duty, 0..=1.
    pub fan_duty: f64,
    /// Heater on.
    pub heater_on: bool,
    /// Passive balancing: bit i set bleeds cell i.
    pub balance_mask: u8,
}
