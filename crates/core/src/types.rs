//! Enums of the product that several layers share.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How the unit is wired to the grid. Manual 4.6: single phase with the plug-in bridge fully
/// inserted, or three phase (3/N/PE) with the power balanced across L1, L2, L3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phases {
    Single,
    Three,
}

impl Phases {
    pub fn count(self) -> usize {
        match self {
            Phases::Single => 1,
            Phases::Three => 3,
        }
    }
    /// Batteries allowed on a site wired this way (manual appendix 1 tables a and b).
    pub fn max_batteries(self) -> usize {
        match self {
            Phases::Single => crate::spec::MAX_BATTERIES_SINGLE_PHASE,
            Phases::Three => crate::spec::MAX_BATTERIES_THREE_PHASE,
        }
    }
    /// From a count typed by a user: 1 or 3, anything else is refused.
    pub fn from_count(n: i64) -> Result<Self, String> {
        match n {
            1 => Ok(Phases::Single),
            3 => Ok(Phases::Three),
            other => Err(format!(
                "phases must be 1 (single phase) or 3 (three phase), not {other} (manual 4.1.1)"
            )),
        }
    }
}

/// The site's battery working mode (manual 5.1 and the datasheet's "Services" line, 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkingMode {
    SelfConsumption,
    TimeOfUse,
    GridServices,
    OffGridBackup,
}

impl fmt::Display for WorkingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorkingMode::SelfConsumption => "self_consumption",
            WorkingMode::TimeOfUse => "time_of_use",
            WorkingMode::GridServices => "grid_services",
            WorkingMode::OffGridBackup => "off_grid_backup",
        })
    }
}

impl FromStr for WorkingMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "self_consumption" => Ok(WorkingMode::SelfConsumption),
            "time_of_use" | "tou" => Ok(WorkingMode::TimeOfUse),
            "grid_services" => Ok(WorkingMode::GridServices),
            "off_grid_backup" | "backup" => Ok(WorkingMode::OffGridBackup),
            other => Err(format!(
                "unknown working mode {other:?}: expected self_consumption, time_of_use, grid_services or off_grid_backup"
            )),
        }
    }
}

/// Site status as the app shows it (manual 6.2: alert codes are shown only when Faulty or Offline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteStatus {
    Normal,
    Faulty,
    Offline,
}

/// The SOC status LED (manual 6.1: solid blue, showing the remaining energy percentage; 4.11: solid
/// blue once the system is activated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum SocLed {
    Off,
    SolidBlue { percent: u8 },
}

/// The battery status LED (manual 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusLed {
    Off,
    /// "Dim: normal operation".
    Dim,
    /// "Quick flash: abnormal working condition".
    QuickFlash,
    /// "Solid red: the battery has an internal fault".
    SolidRed,
}

/// Lifecycle of a battery unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// No AC input and shut down (or never powered): LEDs out.
    Off,
    /// Powered, not yet activated through the app (manual 4.10 to 4.11): no power exchange.
    Standby,
    /// Activated and running (manual 4.11: SOC LED solid blue).
    Active,
    /// An alert that clears by itself stops power exchange for now.
    Fault,
    /// An alert that needs "reset the system" or a power cycle (or service) stops the unit.
    LatchedFault,
}

/// Whether the country lets storage charge from the grid (manual 5.1 note: "In some countries, grid
/// charging of energy storage systems is not permitted, and this mode is prohibited").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GridCharging {
    Permitted,
    Forbidden,
}

/// Country of installation: selects the grid-protection profile and the grid-charging policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Country {
    /// The manual's own ranges (4.1.1, 7.1), for sites without a national profile.
    #[serde(rename = "generic")]
    Generic,
    /// Australia, AS/NZS 4777.2:2020 (listed in the datasheet's compliance line, manual 7.1).
    #[serde(rename = "AU")]
    Australia,
    /// Germany, VDE-AR-N 4105:2018.
    #[serde(rename = "DE")]
    Germany,
    /// Italy, CEI 0-21.
    #[serde(rename = "IT")]
    Italy,
}

impl Country {
    /// Default grid-charging policy; a site may still forbid it in its own settings.
    ///
    /// Italy: storage added to a PV plant that receives the Conto Energia feed-in premium may not be
    /// charged from the grid when it sits on the production side (GSE, "Regole tecniche per
    /// l'attuazione delle disposizioni relative all'integrazione di sistemi di accumulo", 2015 and later
    /// editions). Many Italian residential sites are in that case, so we take the conservative default.
    pub fn grid_charging(self) -> GridCharging {
        match self {
            Country::Italy => GridCharging::Forbidden,
            Country::Generic | Country::Australia | Country::Germany => GridCharging::Permitted,
        }
    }
    /// Nominal frequency of the country's grid, Hz.
    pub fn nominal_frequency_hz(self) -> f64 {
        50.0
    }
    /// Nominal phase voltage of the country's grid, V L-N (manual 7.1 lists 220 and 230 V).
    pub fn nominal_voltage_v(self) -> f64 {
        230.0
    }
}

impl FromStr for Country {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "generic" => Ok(Country::Generic),
            "au" => Ok(Country::Australia),
            "de" => Ok(Country::Germany),
            "it" => Ok(Country::Italy),
            other => Err(format!(
                "unknown country {other:?}: expected generic, AU, DE or IT"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_from_count() {
        assert_eq!(Phases::from_count(1), Ok(Phases::Single));
        assert_eq!(Phases::from_count(3), Ok(Phases::Three));
        for bad in [0, 2, 4, -1] {
            assert!(Phases::from_count(bad)
                .unwrap_err()
                .contains("1 (single phase) or 3"));
        }
        assert_eq!(Phases::Single.max_batteries(), 3);
        assert_eq!(Phases::Three.max_batteries(), 6);
    }

    #[test]
    fn modes_parse_and_print() {
        for m in [
            WorkingMode::SelfConsumption,
            WorkingMode::TimeOfUse,
            WorkingMode::GridServices,
            WorkingMode::OffGridBackup,
        ] {
            assert_eq!(m.to_string().parse::<WorkingMode>(), Ok(m));
        }
        assert!("turbo"
            .parse::<WorkingMode>()
            .unwrap_err()
            .contains("unknown working mode"));
    }
}
