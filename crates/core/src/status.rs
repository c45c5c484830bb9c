//! What a battery reports to the gateway and what the gateway commands. The CAN protocol carries
//! these values; the EMS decides from them.

use crate::alerts::AlertSet;
use crate::types::{Lifecycle, SocLed, StatusLed};
use serde::{Deserialize, Serialize};

/// A battery's report, as its firmware estimates it (never the twin's true state).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BatteryStatus {
    /// State of charge estimate, 0..=1.
    pub soc: f64,
    /// State of health estimate (capacity now / nominal), 0..=1.
    pub soh: f64,
    /// Pack voltage, V.
    pub pack_v: f64,
    /// Pack current, A, positive = discharging.
    pub pack_current_a: f64,
    /// AC active power, W, positive = discharging.
    pub ac_power_w: f64,
    /// AC reactive power, var, positive = supplied to the grid (same sign as [`BatteryCommand`]).
    pub reactive_power_var: f64,
    pub min_cell_v: f64,
    pub max_cell_v: f64,
    pub min_temp_c: f64,
    pub max_temp_c: f64,
    /// Largest AC charging power the unit accepts now, W (>= 0).
    pub max_charge_w: f64,
    /// Largest AC discharging power the unit delivers now, W (>= 0).
    pub max_discharge_w: f64,
    pub alerts: AlertSet,
    pub lifecycle: Lifecycle,
    pub soc_led: SocLed,
    pub status_led: StatusLed,
    /// Cumulative AC energy taken in while charging, Wh.
    pub ac_charged_wh: f64,
    /// Cumulative AC energy delivered while discharging, Wh.
    pub ac_discharged_wh: f64,
}

impl BatteryStatus {
    /// The report of a unit whose controller is dark (no AC input and not forming the grid, or
    /// never powered): nothing measured, nothing allowed, LEDs out (manual 6.1).
    pub fn off() -> Self {
        Self {
            soc: 0.0,
            soh: 0.0,
            pack_v: 0.0,
            pack_current_a: 0.0,
            ac_power_w: 0.0,
            reactive_power_var: 0.0,
            min_cell_v: 0.0,
            max_cell_v: 0.0,
            min_temp_c: 0.0,
            max_temp_c: 0.0,
            max_charge_w: 0.0,
            max_discharge_w: 0.0,
            alerts: AlertSet::EMPTY,
            lifecycle: Lifecycle::Off,
            soc_led: SocLed::Off,
            status_led: StatusLed::Off,
            ac_charged_wh: 0.0,
            ac_discharged_wh: 0.0,
        }
    }
}

/// The gateway's standing order to one battery, refreshed every control cycle.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct BatteryCommand {
    /// Active power, W, positive = discharge. The unit clamps it to its own limits.
    pub active_power_w: f64,
    /// Reactive power, var, positive = the battery supplies reactive power to the grid (over-excited,
    /// capacitive behaviour, raising the voltage), negative = it absorbs. The unit clamps it to its
    /// apparent-power and power-factor limits (manual 7.1: PF 0.8 leading..lagging on grid).
    pub reactive_power_var: f64,
    /// Form the grid (off-grid backup) instead of following it.
    pub grid_forming: bool,
}

/// One-shot requests from the app or gateway, as the manual's solution steps use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitRequest {
    /// Activation from the app (manual 4.11).
    Activate,
    /// "Reset the system in the app" (manual 6.3): clears latched alerts whose cause is gone.
    Reset,
    /// "In the app, shut down the battery" (manual 6.3).
    Shutdown,
    /// "... and then power it on again" (manual 6.3).
    PowerOn,
}
