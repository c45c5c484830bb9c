//! Why the batteries do what they do: one reason per control cycle.
//!
//! Owners of every home battery ask "why is it not discharging?". The controller answers with the
//! layer that decided the setpoint: a safety layer when one bound it, otherwise the working mode.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The reason for a control cycle's decision. Stable snake_case names for logs, JSON and the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Nothing to do: no deficit, no surplus.
    Idle,
    /// Self-consumption: PV surplus goes into the battery (manual 5.1, function a).
    SelfConsumptionCharge,
    /// Self-consumption: the battery covers the deficit (manual 5.1, function b).
    SelfConsumptionDischarge,
    /// Discharge wanted, but the batteries are at the backup reserve (on grid).
    ReserveReached,
    /// A unit's reported charge or discharge limit bound the setpoint.
    BatteryLimit,
    /// Charge wanted, but every unit reports that it accepts no more.
    BatteryFull,
    /// Discharge wanted, but every unit reports that it can deliver nothing.
    BatteryEmpty,
    /// Charge from the grid wanted, but the country or site forbids it (manual 5.1 note).
    GridChargingForbidden,
    /// The site's export limit bound the setpoint or curtailed PV.
    ExportLimit,
    /// The site's import limit (or the grid-services peak limit) made the batteries discharge or
    /// limited their charging.
    ImportLimit,
    /// A per-phase limit bound the setpoint.
    PhaseLimit,
    /// TOU charging period: charge from grid and PV, no discharge (manual 5.1, TOU function a).
    TouChargePeriod,
    /// TOU discharging period: the battery supplies the load (manual 5.1, TOU function b).
    TouDischargePeriod,
    /// TOU other period: PV surplus charges, no discharge (manual 5.1, TOU function c).
    TouOtherPeriod,
    /// Full charge for SOC calibration (manual 6.1 note) from the grid: the calibration is overdue
    /// and this is the cheapest allowed time (a TOU charging period, else the local night window).
    /// While it is only due, PV surplus fills the batteries under the mode's own reason.
    Calibration,
    /// Frequency-watt response to a frequency excursion.
    FrequencyWatt,
    /// Frequency droop service changed the setpoint.
    FrequencyDroop,
    /// Volt-watt response limited the power at a high (or low) grid voltage.
    VoltWatt,
    /// Following an aggregator's setpoint.
    ExternalDispatch,
    /// The aggregator's setpoint expired; self-consumption runs again.
    DispatchExpired,
    /// Off-grid backup mode on grid: filling the batteries for the next outage.
    BackupCharging,
    /// Off-grid backup mode on grid: full, holding the charge for the next outage.
    BackupStandby,
    /// Grid lost: the site is islanded and the batteries form the grid.
    OffGridIslanded,
    /// Islanded and the load exceeds what the batteries can deliver.
    OffGridOverload,
    /// Islanded and the batteries are at the off-grid minimum: they stop.
    OffGridDepleted,
    /// Islanded with the batteries full: PV is curtailed to the load.
    PvCurtailed,
    /// The grid is back; waiting for it to stay stable before reconnecting.
    ReconnectWaiting,
    /// Grid lost on a site without the backup relay: the batteries stop (anti-islanding).
    GridLost,
    /// No battery can exchange power (all in fault, off, or silent).
    NoBatteryAvailable,
    /// A measurement was not a number: the batteries hold still until it is.
    InvalidInput,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Idle => "idle",
            Reason::SelfConsumptionCharge => "self_consumption_charge",
            Reason::SelfConsumptionDischarge => "self_consumption_discharge",
            Reason::ReserveReached => "reserve_reached",
            Reason::BatteryLimit => "battery_limit",
            Reason::BatteryFull => "battery_full",
            Reason::BatteryEmpty => "battery_empty",
            Reason::GridChargingForbidden => "grid_charging_forbidden",
            Reason::ExportLimit => "export_limit",
            Reason::ImportLimit => "import_limit",
            Reason::PhaseLimit => "phase_limit",
            Reason::TouChargePeriod => "tou_charge_period",
            Reason::TouDischargePeriod => "tou_discharge_period",
            Reason::TouOtherPeriod => "tou_other_period",
            Reason::Calibration => "calibration",
            Reason::FrequencyWatt => "frequency_watt",
            Reason::FrequencyDroop => "frequency_droop",
            Reason::VoltWatt => "volt_watt",
            Reason::ExternalDispatch => "external_dispatch",
            Reason::DispatchExpired => "dispatch_expired",
            Reason::BackupCharging => "backup_charging",
            Reason::BackupStandby => "backup_standby",
            Reason::OffGridIslanded => "off_grid_islanded",
            Reason::OffGridOverload => "off_grid_overload",
            Reason::OffGridDepleted => "off_grid_depleted",
            Reason::PvCurtailed => "pv_curtailed",
            Reason::ReconnectWaiting => "reconnect_waiting",
            Reason::GridLost => "grid_lost",
            Reason::NoBatteryAvailable => "no_battery_available",
            Reason::InvalidInput => "invalid_input",
        }
    }

    /// Every reason, for documentation and for counting reasons in a simulation.
    pub const ALL: [Reason; 30] = [
        Reason::Idle,
        Reason::SelfConsumptionCharge,
        Reason::SelfConsumptionDischarge,
        Reason::ReserveReached,
        Reason::BatteryLimit,
        Reason::BatteryFull,
        Reason::BatteryEmpty,
        Reason::GridChargingForbidden,
        Reason::ExportLimit,
        Reason::ImportLimit,
        Reason::PhaseLimit,
        Reason::TouChargePeriod,
        Reason::TouDischargePeriod,
        Reason::TouOtherPeriod,
        Reason::Calibration,
        Reason::FrequencyWatt,
        Reason::FrequencyDroop,
        Reason::VoltWatt,
        Reason::ExternalDispatch,
        Reason::DispatchExpired,
        Reason::BackupCharging,
        Reason::BackupStandby,
        Reason::OffGridIslanded,
        Reason::OffGridOverload,
        Reason::OffGridDepleted,
        Reason::PvCurtailed,
        Reason::ReconnectWaiting,
        Reason::GridLost,
        Reason::NoBatteryAvailable,
        Reason::InvalidInput,
    ];

    /// Position in [`Reason::ALL`], for a counting array.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde_and_index_matches_all() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            let json = serde_json::to_string(r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
        }
    }
}
