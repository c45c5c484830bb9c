//! What the firmware is configured with ([`FirmwareConfig`]) and what it keeps across power
//! cycles ([`Nvm`]).

use crate::estimate::CalPoint;
use crate::grid::{GridProfile, ProfileError};
use melv_core::alerts::AlertSet;
use melv_core::spec;
use melv_core::types::{Country, GridCharging, Phases};
use serde::{Deserialize, Serialize};

/// Stored NVM older than this is not trusted for SOC (manual 6.1 note: after long-term storage
/// the SOC may deviate): the first sample re-seeds SOC from the cell voltages.
pub const NVM_SOC_TRUST_S: f64 = 30.0 * 86_400.0;

/// How the unit is installed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirmwareConfig {
    pub country: Country,
    /// Configured wiring (the combiner's configuration, manual 4.6).
    pub phases: Phases,
    /// Installer-edited grid thresholds (manual 6.3 codes 3-6: "modify the ... threshold after
    /// obtaining consent from your local electric system operator"); `None` = the country's.
    pub grid_profile: Option<GridProfile>,
    /// Whether the cells may be charged from the grid (manual 5.1 note: "In some countries, grid
    /// charging of energy storage systems is not permitted"). Where it is
    /// [`GridCharging::Forbidden`] no firmware path imports AC into the cells on its own (no
    /// maintenance or recovery charge): the unit charges only what the gateway orders, and the
    /// gateway's EMS limits its orders to PV surplus. Default: the country's
    /// ([`Country::grid_charging`]); a site may forbid it in its own settings.
    pub grid_charging: GridCharging,
}

impl Default for FirmwareConfig {
    fn default() -> Self {
        Self::for_country(Country::Generic, Phases::Single)
    }
}

impl FirmwareConfig {
    /// The configuration of a unit installed in `country` with `phases` wiring: the country's grid
    /// profile and grid-charging policy.
    pub fn for_country(country: Country, phases: Phases) -> Self {
        Self {
            country,
            phases,
            grid_profile: None,
            grid_charging: country.grid_charging(),
        }
    }

    /// Whether the firmware may import AC into the cells on its own (maintenance, recovery).
    pub fn may_charge_from_grid(&self) -> bool {
        self.grid_charging == GridCharging::Permitted
    }

    pub fn validate(&self) -> Result<(), ProfileError> {
        match &self.grid_profile {
            Some(p) => p.validate(),
            None => Ok(()),
        }
    }
}

/// What survives a power cycle (the unit's EEPROM).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Nvm {
    /// Activated through the app (manual 4.11).
    pub activated: bool,
    /// Alerts of the `Permanent` kind raised so far (only service clears them).
    pub permanent_alerts: AlertSet,
    /// SOC estimate, 0..=1, valid when `soc_valid`.
    pub soc: f64,
    pub soc_valid: bool,
    /// Bound on the SOC error, fraction (a factory SOC is known to about 5 %).
    pub soc_unc: f64,
    /// Usable capacity estimate, Ah (0 = unknown: a new unit's, `estimate::USABLE_AH_NEW`).
    pub capacity_ah: f64,
    pub capacity_updates: u32,
    pub last_cal: Option<CalPoint>,
    /// Net Ah out since the last calibration point.
    pub ah_since_cal: f64,
    /// Time of the last full charge (recalibration), s.
    pub last_full_s: Option<f64>,
    /// Throughput counters, Ah (DC) and Wh (AC).
    pub ah_charged: f64,
    pub ah_discharged: f64,
    pub ac_charged_wh: f64,
    pub ac_discharged_wh: f64,
    /// Power-ons so far.
    pub boots: u32,
    /// When this image was written, s.
    pub saved_at_s: f64,
}

impl Nvm {
    /// A new unit from the factory: SOC as measured at the factory, activated or not.
    pub fn new_unit(soc: f64, activated: bool) -> Self {
        Self {
            activated,
            soc: soc.clamp(0.0, 1.0),
            soc_valid: soc.is_finite(),
            soc_unc: 0.05,
            ..Self::default()
        }
    }

    /// Repairs what a corrupt or foreign image could hold (NaN, negative capacity...), so that
    /// boot never trusts garbage.
    pub(crate) fn sanitized(mut self, now_s: f64) -> Self {
        let nominal = spec::NOMINAL_CAPACITY_AH;
        if !(self.capacity_ah.is_finite()
            && self.capacity_ah >= 0.3 * nominal
            && self.capacity_ah <= 1.2 * nominal)
        {
            // Unknown (0 in a factory image) or garbage: a new unit's usable capacity.
            self.capacity_ah = crate::estimate::USABLE_AH_NEW;
        }
        if !self.soc.is_finite() {
            self.soc_valid = false;
        }
        self.soc = if self.soc.is_finite() {
            self.soc.clamp(0.0, 1.0)
        } else {
            0.5
        };
        if self.saved_at_s.is_finite()
            && self.saved_at_s > 0.0
            && now_s - self.saved_at_s > NVM_SOC_TRUST_S
        {
            self.soc_valid = false;
        }
        for x in [
            &mut self.ah_since_cal,
            &mut self.ah_charged,
            &mut self.ah_discharged,
            &mut self.ac_charged_wh,
            &mut self.ac_discharged_wh,
        ] {
            if !x.is_finite() {
                *x = 0.0;
            }
        }
        self
    }
}
