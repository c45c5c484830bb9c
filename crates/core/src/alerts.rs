//! The alert catalogue of manual 6.3, as data.
//!
//! Each of the 22 codes carries the manual's issue, its causes and the ordered solution steps, word
//! for word (only the table's layout artefacts are removed). The manual groups causes with the
//! solutions that answer them: code 13 has two groups (four wiring faults, then a phase-configuration
//! mismatch), codes 51 and 62 have two, code 53 has three causes under one set of steps. We keep that
//! grouping as [`CauseGroup`].
//!
//! What we add, because a running system needs it and the manual leaves it implicit, is in
//! [`AlertInfo::severity`], [`AlertInfo::latch`], [`AlertInfo::actor`] and [`AlertInfo::source`]; the
//! reasoning for each is in the table's comments and follows the manual's own solution steps (a code
//! whose steps start with "wait for a while" clears on its own; one whose steps say "reset the
//! system" latches until a reset; one that says "stop using the battery" never clears).

use serde::{Deserialize, Serialize};
use std::fmt;

/// An alert code of manual 6.3. Construct with [`AlertCode::new`], which accepts only catalogued codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct AlertCode(u8);

/// A number that is not one of the 22 codes of manual 6.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0} is not an alert code of the MS-7K-U (manual 6.3 lists 2-7, 13, 18, 50-60, 62, 63, 64)"
)]
pub struct UnknownAlertCode(pub u32);

impl AlertCode {
    pub const GRID_POWER_OUTAGE: Self = Self(2);
    pub const GRID_UNDERVOLTAGE: Self = Self(3);
    pub const GRID_OVERVOLTAGE: Self = Self(4);
    pub const GRID_UNDERFREQUENCY: Self = Self(5);
    pub const GRID_OVERFREQUENCY: Self = Self(6);
    pub const DC_CURRENT_COMPONENT: Self = Self(7);
    pub const DISTRIBUTION_ERROR: Self = Self(13);
    pub const DC_VOLTAGE_COMPONENT: Self = Self(18);
    pub const BATTERY_OVERVOLTAGE: Self = Self(50);
    pub const BATTERY_UNDERVOLTAGE: Self = Self(51);
    pub const CELL_VOLTAGE_DIFFERENCE: Self = Self(52);
    pub const BATTERY_OVERTEMPERATURE: Self = Self(53);
    pub const LOW_BATTERY_TEMPERATURE: Self = Self(54);
    pub const CELL_TEMPERATURE_DIFFERENCE: Self = Self(55);
    pub const BATTERY_OVERCURRENT: Self = Self(56);
    pub const LOW_SOH: Self = Self(57);
    pub const LIFE_TERMINATED: Self = Self(58);
    pub const MICRO_SHORT_CIRCUIT: Self = Self(59);
    pub const THERMAL_RUNAWAY: Self = Self(60);
    pub const INTERNAL_DEVICE_ERROR: Self = Self(62);
    pub const COMMUNICATION_LOST: Self = Self(63);
    pub const ACTIVE_DEVICE_PROTECTION: Self = Self(64);

    /// The code, if manual 6.3 lists it.
    pub fn new(code: u32) -> Result<Self, UnknownAlertCode> {
        CATALOGUE
            .iter()
            .find(|a| u32::from(a.code.0) == code)
            .map(|a| a.code)
            .ok_or(UnknownAlertCode(code))
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// The catalogue entry. Total: every `AlertCode` value is catalogued by construction.
    pub fn info(self) -> &'static AlertInfo {
        &CATALOGUE[self.index()]
    }

    /// Position in [`CATALOGUE`], 0..22; also the bit of this code in an [`AlertSet`].
    pub fn index(self) -> usize {
        CATALOGUE
            .iter()
            .position(|a| a.code == self)
            .expect("AlertCode values are built only from the catalogue")
    }

    /// All 22 codes in catalogue order.
    pub fn all() -> impl Iterator<Item = AlertCode> {
        CATALOGUE.iter().map(|a| a.code)
    }
}

impl TryFrom<u8> for AlertCode {
    type Error = UnknownAlertCode;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        Self::new(u32::from(v))
    }
}

impl From<AlertCode> for u8 {
    fn from(c: AlertCode) -> u8 {
        c.0
    }
}

impl fmt::Display for AlertCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A set of alert codes, one bit per catalogue entry (bit = [`AlertCode::index`]). Copy, no allocation:
/// it is what the firmware's hot loop and the CAN frames carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AlertSet(u32);

impl AlertSet {
    pub const EMPTY: Self = Self(0);

    pub fn from_bits(bits: u32) -> Self {
        Self(bits & ((1 << CATALOGUE.len()) - 1))
    }
    pub fn bits(self) -> u32 {
        self.0
    }
    pub fn insert(&mut self, code: AlertCode) {
        self.0 |= 1 << code.index();
    }
    pub fn remove(&mut self, code: AlertCode) {
        self.0 &= !(1 << code.index());
    }
    pub fn set(&mut self, code: AlertCode, on: bool) {
        if on {
            self.insert(code)
        } else {
            self.remove(code)
        }
    }
    pub fn contains(self, code: AlertCode) -> bool {
        self.0 & (1 << code.index()) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
    /// Codes in the set, in catalogue (ascending) order.
    pub fn iter(self) -> impl Iterator<Item = AlertCode> {
        CATALOGUE
            .iter()
            .map(|a| a.code)
            .filter(move |c| self.contains(*c))
    }
    /// The most severe code in the set, if any.
    pub fn worst(self) -> Option<Severity> {
        self.iter().map(|c| c.info().severity).max()
    }
}

impl FromIterator<AlertCode> for AlertSet {
    fn from_iter<I: IntoIterator<Item = AlertCode>>(iter: I) -> Self {
        let mut s = AlertSet::EMPTY;
        for c in iter {
            s.insert(c);
        }
        s
    }
}

/// How bad an alert is for the unit. Ordered: `Warning < Fault < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The unit keeps working, possibly derated (e.g. grid outage: it may island; low SOH).
    Warning,
    /// The unit stops exchanging power until the cause is gone (and, if latched, until reset).
    Fault,
    /// A safety hazard: power off, and the owner must act at once (thermal runaway).
    Critical,
}

/// When an alert goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Latch {
    /// Clears by itself when the cause is gone (the manual's "returns to normal after the fault is
    /// resolved", "wait for a while").
    AutoClear,
    /// Stays until "reset the system" or a power cycle (the manual's solution steps name them).
    UntilReset,
    /// Never clears in the field: end of life, or a fault only service may clear.
    Permanent,
}

/// Who acts on the alert first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// The homeowner can follow the steps in the app.
    Owner,
    /// The steps need an electrician / the installer (wiring, protection thresholds).
    Installer,
    /// Only the distributor or ATMOCE service can resolve it.
    Service,
}

/// Which part of the system detects the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The unit's grid protection (inverter side).
    GridProtection,
    /// The unit's battery management system.
    Bms,
    /// The gateway (code 63: it is the gateway that notices a silent battery).
    Gateway,
}

/// Causes that share one list of solution steps in the manual's table.
#[derive(Debug, Clone, Serialize)]
pub struct CauseGroup {
    pub causes: &'static [&'static str],
    pub solutions: &'static [&'static str],
}

/// One row of manual 6.3, plus our operational attributes.
#[derive(Debug, Clone, Serialize)]
pub struct AlertInfo {
    pub code: AlertCode,
    /// The manual's "Issue" column.
    pub issue: &'static str,
    /// The manual's causes with their solutions, in the manual's order.
    pub groups: &'static [CauseGroup],
    pub severity: Severity,
    pub latch: Latch,
    pub actor: Actor,
    pub source: Source,
}

impl AlertInfo {
    /// Every cause, in order, across groups.
    pub fn causes(&self) -> impl Iterator<Item = &'static str> {
        self.groups.iter().flat_map(|g| g.causes.iter().copied())
    }
}

const DISCONNECT_AC: &str = "If the battery is connected to the grid, disconnect the AC input, wait for the battery indicator to go out, and then restore the AC input.";
const RESET_IN_APP: &str = "Reset the system in the app.";
const SHUT_DOWN_POWER_ON_IN_APP: &str =
    "In the app, shut down the battery and then power it on again.";
const CONTACT_IF_PERSISTS: &str =
    "If the alert persists, contact your distributor or Customer Service.";
const AUTO_RECOVERS: &str = "The device automatically monitors external working conditions in real time and returns to normal after the fault is resolved.";
const CONTACT_IF_FREQUENT: &str =
    "If the fault occurs frequently, contact your distributor or Customer Service.";
const END_OF_LIFE: &[&str] = &[
    "The battery lifespan has reached its end. Please stop using the battery.",
    "Please follow the legal regulations in your country/region and contact local battery recycling services for disposal.",
];

/// Manual 6.3, all 22 codes, in the manual's order.
pub static CATALOGUE: [AlertInfo; 22] = [
    AlertInfo {
        code: AlertCode(2),
        issue: "Grid Power Outage",
        groups: &[CauseGroup {
            causes: &["Grid power outage occurred."],
            solutions: &[
                "Check whether the grid is normally powered.",
                "Check whether the alternating current cable or breaker is disconnected.",
            ],
        }],
        // The unit stops feeding the grid (anti-islanding) but may island with the gateway (off-grid
        // mode, manual 5.1 note), so it is a warning; it clears when the grid returns.
        severity: Severity::Warning,
        latch: Latch::AutoClear,
        actor: Actor::Owner,
        source: Source::GridProtection,
    },
    AlertInfo {
        code: AlertCode(3),
        issue: "Grid Undervoltage",
        groups: &[CauseGroup {
            causes: &["The grid voltage is lower than the lower limit."],
            solutions: &[
                "Check whether the grid voltage is within the allowed range. If not, contact your local electric system operator. If so, modify the grid undervoltage protection threshold after obtaining consent from your local electric system operator.",
                "If the fault persists, check whether the alternating current breaker and cable are connected properly.",
            ],
        }],
        // Protection thresholds and AC wiring are installer work.
        severity: Severity::Fault,
        latch: Latch::AutoClear,
        actor: Actor::Installer,
        source: Source::GridProtection,
    },
    AlertInfo {
        code: AlertCode(4),
        issue: "Grid Overvoltage",
        groups: &[CauseGroup {
            causes: &["The grid voltage is higher than the upper limit."],
            solutions: &[
                "Check whether the grid voltage is within the allowed range. If not, contact your local electric system operator. If so, modify the grid overvoltage protection threshold after obtaining consent from your local electric system operator.",
                "If the fault persists, check whether the alternating current breaker and cable are connected properly, or whether the cable complies with the recommended specifications.",
            ],
        }],
        severity: Severity::Fault,
        latch: Latch::AutoClear,
        actor: Actor::Installer,
        source: Source::GridProtection,
    },
    AlertInfo {
        code: AlertCode(5),
        issue: "Grid Underfrequency",
        groups: &[CauseGroup {
            causes: &["The grid frequency is lower than the lower limit."],
            solutions: &["Check whether the grid frequency is within the allowed range. If not, contact your local electric system operator. If so, modify the grid underfrequency protection threshold after obtaining consent from your local electric system operator."],
        }],
        severity: Severity::Fault,
        latch: Latch::AutoClear,
        actor: Actor::Installer,
        source: Source::GridProtection,
    },
    AlertInfo {
        code: AlertCode(6),
        issue: "Grid Overfrequency",
        groups: &[CauseGroup {
            causes: &["The grid frequency is higher than the upper limit."],
            solutions: &["Check whether the grid frequency is within the allowed range. If not, contact your local electric system operator. If so, modify the grid overfrequency protection threshold after obtaining consent from your local electric system operator."],
        }],
        severity: Severity::Fault,
        latch: Latch::AutoClear,
        actor: Actor::Installer,
        source: Source::GridProtection,
    },
    AlertInfo {
        code: AlertCode(7),
        issue: "High Output Direct Current Component",
        groups: &[CauseGroup {
            causes: &["The output direct current component is higher than the upper limit."],
            solutions: &[AUTO_RECOVERS, CONTACT_IF_FREQUENT],
        }],
        // "Returns to normal after the fault is resolved": auto-clear; only service can fix a
        // recurring DC injection, the owner just reports it.
        severity: Severity::Fault,
        latch: Latch::AutoClear,
        actor: Actor::Service,
        source: Source::GridProtection,
    },
    AlertInfo {
        code: AlertCode(13),
        issue: "Distribution error occurred.",
        groups: &[
            CauseGroup {
                causes: &[
                    "Abnormal phase in the single-phase system.",
                    "Phase loss in the three-phase system.",
                    "Reversed phase sequence in the three-phase system.",
                    "Short circuit in the three-phase system.",
                ],
                solutions: &[
                    "For single-phase battery, check for a short circuit in the AC input.",
                    "For three-phase battery, check for phase loss, reversed phase sequence, or short circuits in the AC wiring.",
                    "If the alert persists, contact your distributor or Customer Service.",
                ],
            },
            CauseGroup {
                causes: &["The single-/three-phase wiring in the battery is inconsistent with the single-/three-phase configuration in the combiner."],
                solutions: &[
                    "Please check whether the AC distribution wiring of the battery is consistent with the single/three-phase configuration in the combiner.",
                    "If the alert persists, contact your distributor or Customer Service.",
                ],
            },
        ],
        // Every cause is a wiring fault: installer; the unit must not run until it is fixed, and
        // the check repeats on its own, so it clears when the wiring is right.
        severity: Severity::Fault,
        latch: Latch::AutoClear,
        actor: Actor::Installer,
        source: Source::GridProtection,
    },
    AlertInfo {
        code: AlertCode(18),
        issue: "High Output DC Voltage Component",
        groups: &[CauseGroup {
            causes: &["The output DC voltage component is higher than the upper limit."],
            solutions: &[AUTO_RECOVERS, CONTACT_IF_FREQUENT],
        }],
        severity: Severity::Fault,
        latch: Latch::AutoClear,
        actor: Actor::Service,
        source: Source::GridProtection,
    },
    AlertInfo {
        code: AlertCode(50),
        issue: "Battery Overvoltage",
        groups: &[CauseGroup {
            causes: &["The total battery voltage or battery cell voltage exceeds the alert threshold."],
            solutions: &[SHUT_DOWN_POWER_ON_IN_APP, RESET_IN_APP, DISCONNECT_AC, CONTACT_IF_PERSISTS],
        }],
        // The steps are power cycle and reset: latched until reset; the owner can do both in the app.
        severity: Severity::Fault,
        latch: Latch::UntilReset,
        actor: Actor::Owner,
        source: Source::Bms,
    },
    AlertInfo {
        code: AlertCode(51),
        issue: "Battery Undervoltage",
        groups: &[
            CauseGroup {
                causes: &["The total battery voltage is below the alert threshold."],
                solutions: &[DISCONNECT_AC, RESET_IN_APP, CONTACT_IF_PERSISTS],
            },
            CauseGroup {
                causes: &["The voltage of a battery cell is too low."],
                solutions: &[DISCONNECT_AC, RESET_IN_APP, CONTACT_IF_PERSISTS],
            },
        ],
        severity: Severity::Fault,
        latch: Latch::UntilReset,
        actor: Actor::Owner,
        source: Source::Bms,
    },
    AlertInfo {
        code: AlertCode(52),
        issue: "Large Battery Cell Voltage Difference",
        groups: &[CauseGroup {
            causes: &["The voltage difference between battery cells exceeds the alert threshold."],
            solutions: &[DISCONNECT_AC, RESET_IN_APP, CONTACT_IF_PERSISTS],
        }],
        severity: Severity::Fault,
        latch: Latch::UntilReset,
        actor: Actor::Owner,
        source: Source::Bms,
    },
    AlertInfo {
        code: AlertCode(53),
        issue: "Battery Overtemperature",
        groups: &[CauseGroup {
            causes: &[
                "The battery temperature exceeds the alert threshold.",
                "The ambient temperature is too high.",
                "The fan is not working normally.",
            ],
            solutions: &[
                "Wait for a while and check if the alert disappears automatically.",
                "If the alert is reported frequently, please ensure that the working conditions of the device are within the allowed range.",
                "If the alert persists, contact your distributor or Customer Service.",
            ],
        }],
        // "Wait for a while ... disappears automatically": auto-clear.
        severity: Severity::Fault,
        latch: Latch::AutoClear,
        actor: Actor::Owner,
        source: Source::Bms,
    },
    AlertInfo {
        code: AlertCode(54),
        issue: "Low Battery Temperature",
        groups: &[CauseGroup {
            causes: &[
                "The battery temperature is below the alert threshold.",
                "The ambient temperature is too low.",
                "The heating system is not working normally.",
            ],
            solutions: &[
                "Please ensure that the working conditions of the device are within the allowed range.",
                "If the alert persists, contact your distributor or Customer Service.",
            ],
        }],
        severity: Severity::Fault,
        latch: Latch::AutoClear,
        actor: Actor::Owner,
        source: Source::Bms,
    },
    AlertInfo {
        code: AlertCode(55),
        issue: "Large Battery Cell Temperature Difference",
        groups: &[CauseGroup {
            causes: &[
                "The temperature difference between battery cells exceeds the alert threshold.",
                "The fan is not working normally.",
            ],
            solutions: &[
                "Shut down the battery and then power it on again.",
                "Reset the system.",
                "If the alert is reported frequently, contact your distributor or Customer Service.",
            ],
        }],
        severity: Severity::Fault,
        latch: Latch::UntilReset,
        actor: Actor::Owner,
        source: Source::Bms,
    },
    AlertInfo {
        code: AlertCode(56),
        issue: "Battery Overcurrent",
        groups: &[CauseGroup {
            causes: &["The battery current exceeds the alert threshold."],
            solutions: &[
                "Wait for a while and check if the alert disappears automatically.",
                "If the alert is reported frequently, reset the system in the app.",
                "If the alert persists, contact your distributor or Customer Service.",
            ],
        }],
        severity: Severity::Fault,
        latch: Latch::AutoClear,
        actor: Actor::Owner,
        source: Source::Bms,
    },
    AlertInfo {
        code: AlertCode(57),
        issue: "Low Battery SOH",
        groups: &[CauseGroup {
            causes: &["The battery health metric is below the alert threshold."],
            solutions: END_OF_LIFE,
        }],
        // Capacity does not come back: permanent. Manual 6.3's solution for 57 is the same as for
        // 58: "The battery lifespan has reached its end. Please stop using the battery." So the
        // unit stops (a fault, latched for good); the recycling is arranged by service.
        severity: Severity::Fault,
        latch: Latch::Permanent,
        actor: Actor::Service,
        source: Source::Bms,
    },
    AlertInfo {
        code: AlertCode(58),
        issue: "Battery Life Terminated",
        groups: &[CauseGroup {
            causes: &["The battery lifespan has reached its end."],
            solutions: END_OF_LIFE,
        }],
        severity: Severity::Fault,
        latch: Latch::Permanent,
        actor: Actor::Service,
        source: Source::Bms,
    },
    AlertInfo {
        code: AlertCode(59),
        issue: "Battery Micro-Short Circuit",
        groups: &[CauseGroup {
            causes: &["The battery micro-short circuit fault occurred."],
            solutions: &["Please contact your distributor or Customer Service."],
        }],
        // An internal short does not heal and can precede a thermal event: only service clears it.
        severity: Severity::Critical,
        latch: Latch::Permanent,
        actor: Actor::Service,
        source: Source::Bms,
    },
    AlertInfo {
        code: AlertCode(60),
        issue: "Battery Thermal Runaway",
        groups: &[CauseGroup {
            causes: &["The battery thermal runaway fault occurred."],
            solutions: &[
                "Please immediately disconnect the battery AC input and stop using the battery.",
                "Please contact your distributor or Customer Service.",
            ],
        }],
        severity: Severity::Critical,
        latch: Latch::Permanent,
        actor: Actor::Owner,
        source: Source::Bms,
    },
    AlertInfo {
        code: AlertCode(62),
        issue: "Internal Device Error",
        groups: &[
            CauseGroup {
                causes: &["The internal circuit fault protection of the battery is triggered."],
                solutions: &[SHUT_DOWN_POWER_ON_IN_APP, RESET_IN_APP, DISCONNECT_AC, CONTACT_IF_PERSISTS],
            },
            CauseGroup {
                causes: &["The internal circuit of the battery failed."],
                solutions: &[SHUT_DOWN_POWER_ON_IN_APP, RESET_IN_APP, DISCONNECT_AC, CONTACT_IF_PERSISTS],
            },
        ],
        severity: Severity::Fault,
        latch: Latch::UntilReset,
        actor: Actor::Owner,
        source: Source::Bms,
    },
    AlertInfo {
        code: AlertCode(63),
        issue: "Abnormal Communication Between Battery and Gateway",
        groups: &[CauseGroup {
            causes: &[
                "The device is shut down.",
                "The CAN bus cable between the device and the gateway is abnormal.",
            ],
            solutions: &[
                "Please ensure that the CAN bus cable between the gateway and battery module is reliably connected.",
                "Reset the system.",
                "If the alert persists, contact your distributor or Customer Service.",
            ],
        }],
        // Raised by the gateway, cleared as soon as the battery is heard again.
        severity: Severity::Fault,
        latch: Latch::AutoClear,
        actor: Actor::Installer,
        source: Source::Gateway,
    },
    AlertInfo {
        code: AlertCode(64),
        issue: "Active Device Protection",
        groups: &[CauseGroup {
            causes: &["The operating environment of the battery is abnormal."],
            solutions: &[
                "The device automatically monitors external working conditions and returns to normal after the fault is resolved.",
                "If the alert is reported frequently, contact your distributor or Customer Service.",
            ],
        }],
        severity: Severity::Fault,
        latch: Latch::AutoClear,
        actor: Actor::Owner,
        source: Source::Bms,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_has_the_22_codes_of_manual_6_3_in_order() {
        let codes: Vec<u8> = AlertCode::all().map(|c| c.get()).collect();
        assert_eq!(
            codes,
            vec![2, 3, 4, 5, 6, 7, 13, 18, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 62, 63, 64]
        );
    }

    #[test]
    fn codes_with_several_causes_have_them_all() {
        // Manual 6.3: 13 (5 causes in 2 groups), 51 (2), 53 (3), 54 (3), 55 (2), 62 (2), 63 (2).
        let check = |code: u32, n: usize| {
            let info = AlertCode::new(code).unwrap().info();
            assert_eq!(info.causes().count(), n, "code {code}");
            assert!(
                info.groups.iter().all(|g| !g.solutions.is_empty()),
                "code {code}"
            );
        };
        for (code, n) in [
            (13, 5),
            (51, 2),
            (53, 3),
            (54, 3),
            (55, 2),
            (62, 2),
            (63, 2),
            (2, 1),
            (60, 1),
        ] {
            check(code, n);
        }
    }

    #[test]
    fn unknown_codes_are_refused() {
        for bad in [0, 1, 8, 12, 14, 49, 61, 65, 255, 100_000] {
            assert_eq!(AlertCode::new(bad), Err(UnknownAlertCode(bad)));
        }
        assert!(serde_json::from_str::<AlertCode>("61").is_err());
        assert_eq!(
            serde_json::from_str::<AlertCode>("53").unwrap(),
            AlertCode::BATTERY_OVERTEMPERATURE
        );
    }

    #[test]
    fn alert_set_round_trips_every_code() {
        let mut set = AlertSet::EMPTY;
        for c in AlertCode::all() {
            assert!(!set.contains(c));
            set.insert(c);
            assert!(set.contains(c));
        }
        assert_eq!(set.len(), 22);
        assert_eq!(AlertSet::from_bits(set.bits()), set);
        assert_eq!(
            AlertSet::from_bits(u32::MAX),
            set,
            "bits past the catalogue are dropped"
        );
        set.remove(AlertCode::GRID_OVERVOLTAGE);
        assert!(!set.contains(AlertCode::GRID_OVERVOLTAGE));
        assert_eq!(set.worst(), Some(Severity::Critical));
    }
}
