//! # melv-model: the physics twin of an MS-7K-U battery unit
//!
//! The plant is the hardware's true state: eight 280 Ah LFP cells in series (manual 7.1), the air and
//! metal around them, the bidirectional inverter, the fan and the heater, and the slow wear of the cells.
//! The firmware (`melv-bms`) never sees it: it reads [`melv_core::io::Measurements`] produced by
//! [`Plant::measure`] through noisy, offset, quantised sensors, and drives [`melv_core::io::Actuation`],
//! which [`Plant::step`] obeys within physics (a broken fan does not turn; an empty pack cannot deliver
//! 5 kVA; a cell can be over-charged if the firmware lets it).
//!
//! ## Design
//! * **Cells** ([`cell`], [`ocv`]): Thevenin model per cell, OCV from published LFP and graphite
//!   electrode curves, R0 plus two RC pairs with Arrhenius temperature dependence; capacity, resistance,
//!   self-discharge and ageing rate spread from the seed. Self-discharge is calibrated on the manual's
//!   storage table (section 3).
//! * **Ageing** ([`ageing`]): NREL BLAST-Lite's `Lfp_Gr_250AhPrismatic` equations, integrated online;
//!   tests hold it to the numbers BLAST-Lite itself gives (`tools/blast_reference.py`).
//! * **Thermal** ([`thermal`]): eight cell nodes and an enclosure node against ambient; the fan raises
//!   conductances (most at the inlet end, so cells differ), the heater pads warm the cells.
//! * **Inverter** ([`inverter`]): ratings of manual 7.1 with a 10 s peak budget, PF 0.8 on grid and 1.0
//!   off grid, datasheet current limits, and a `p0 + k1 S + k2 S^2` loss model calibrated to the 96 % DC
//!   and 90 % AC round trips (`tests/cycle.rs`).
//! * **Energy** ([`ledger`]): every joule is booked once; the AC and DC balances close to rounding.
//! * **Speed**: a step is a few hundred flops and no allocation; transcendental functions run only on
//!   slow refreshes (every 30 s of simulated time), the ageing sample (every 300 s) or when the step
//!   length changes.
//!
//! Signs (ARCHITECTURE.md 3): battery power and current are positive when discharging; AC power at
//! the unit's terminals is positive when the unit delivers (discharges).
//!
//! ## Architecture invariant
//! This crate knows physics only. It knows nothing of the firmware's decisions (limits, protections,
//! alerts, SOC estimation), of CAN, of the gateway or of any clock: time and seeds come in as arguments,
//! and nothing here reads a file, a socket or the system time.

pub mod ageing;
pub mod cell;
pub mod env;
pub mod inverter;
pub mod ledger;
pub mod ocv;
pub mod plant;
pub mod sensors;
pub mod thermal;

pub use cell::{self_discharge_fraction_per_day, storage_soc_after};
pub use env::{Environment, Faults, GridState};
pub use inverter::InverterLimits;
pub use ledger::EnergyLedger;
pub use plant::Plant;

use melv_core::spec::CELLS_IN_SERIES;
use melv_core::Phases;
use serde::{Deserialize, Serialize};

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("plant config: {field} = {value} is out of range ({range})")]
    OutOfRange {
        field: &'static str,
        value: f64,
        range: &'static str,
    },
}

/// How to build a plant. Deserialisable with defaults for missing fields, so a scenario file may give
/// only what differs from [`PlantConfig::default`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlantConfig {
    /// Seed of the cell spread and of the sensors' errors and noise.
    pub seed: u64,
    /// Single phase (plug-in bridge) or balanced three phase (manual 4.6).
    pub phases: Phases,
    /// Initial SOC of every cell, fraction of its own capacity.
    pub initial_soc: f64,
    /// Initial temperature of every node, degC.
    pub initial_temp_c: f64,
    /// Capacity already lost (0 = new), fraction.
    pub initial_capacity_fade: f64,
    /// Sensor noise, offsets and quantisation on (off: exact readings).
    pub sensor_noise: bool,
    /// Cell-to-cell spread on (off: eight identical mean cells).
    pub cell_spread: bool,
    /// Control-electronics consumption while awake, W.
    pub standby_w: f64,
}

impl Default for PlantConfig {
    /// A new unit at 50 % SOC and 25 degC, single phase, seed 1, noise on.
    fn default() -> Self {
        PlantConfig {
            seed: 1,
            phases: Phases::Single,
            initial_soc: 0.5,
            initial_temp_c: 25.0,
            initial_capacity_fade: 0.0,
            sensor_noise: true,
            cell_spread: true,
            standby_w: plant::STANDBY_W,
        }
    }
}

impl PlantConfig {
    /// Checks every field; the error names the field, its value and the accepted range.
    pub fn validate(&self) -> Result<(), ModelError> {
        let check = |field, value: f64, lo: f64, hi: f64, range| {
            if value.is_finite() && (lo..=hi).contains(&value) {
                Ok(())
            } else {
                Err(ModelError::OutOfRange {
                    field,
                    value,
                    range,
                })
            }
        };
        check("initial_soc", self.initial_soc, 0.0, 1.0, "0..=1")?;
        check(
            "initial_temp_c",
            self.initial_temp_c,
            -40.0,
            80.0,
            "-40..=80 degC",
        )?;
        check(
            "initial_capacity_fade",
            self.initial_capacity_fade,
            0.0,
            0.5,
            "0..=0.5",
        )?;
        check("standby_w", self.standby_w, 0.0, 200.0, "0..=200 W")?;
        Ok(())
    }
}

/// The plant's true state. Currents and powers: positive when discharging.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrueState {
    /// Simulated time since the plant was built, s.
    pub time_s: f64,
    pub cell_soc: [f64; CELLS_IN_SERIES],
    pub cell_ocv_v: [f64; CELLS_IN_SERIES],
    /// Terminal voltage of each cell in the last sub-step, V.
    pub cell_v: [f64; CELLS_IN_SERIES],
    pub cell_temp_c: [f64; CELLS_IN_SERIES],
    pub cell_capacity_ah: [f64; CELLS_IN_SERIES],
    /// Capacity of each cell relative to its new capacity.
    pub cell_soh: [f64; CELLS_IN_SERIES],
    /// R0 + R1 + R2 of each cell at its present temperature and age, mOhm.
    pub cell_resistance_mohm: [f64; CELLS_IN_SERIES],
    /// Capacity-weighted mean SOC.
    pub pack_soc: f64,
    pub pack_v: f64,
    pub pack_current_a: f64,
    /// Capacity of the weakest cell (what the series string can deliver), Ah.
    pub capacity_ah: f64,
    /// Lowest cell SOH.
    pub soh: f64,
    /// Mean equivalent full cycles of the cells.
    pub efc: f64,
    pub enclosure_c: f64,
    /// AC active power at the terminals, W, positive when discharging.
    pub ac_power_w: f64,
    /// Reactive power, var, positive when supplying.
    pub reactive_power_var: f64,
    pub fan_rpm: f64,
    pub fan_w: f64,
    pub heater_w: f64,
    /// Seconds of 5 kVA peak left.
    pub peak_budget_s: f64,
    pub awake: bool,
}
