//! Country profiles: the thresholds of grid protection as data, each citing its standard.

use super::MAX_STAGES;
use melv_core::types::Country;
use serde::{Deserialize, Serialize};

/// What a stage watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// Highest configured phase voltage, V L-N (over-voltage stages).
    VoltageHigh,
    /// Lowest present configured phase voltage, V L-N (under-voltage stages).
    VoltageLow,
    /// Frequency, Hz (both directions).
    Frequency,
}

/// One protection stage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub quantity: Quantity,
    /// True: trips when the value is above `threshold`; false: below.
    pub above: bool,
    pub threshold: f64,
    /// Clearing (trip) time, s.
    pub clear_s: f64,
    /// Evaluate on a moving average of this length (s) instead of the instant value (the
    /// "10-minute average" over-voltage of AS/NZS 4777.2, VDE-AR-N 4105, CEI 0-21).
    pub average_s: Option<f64>,
}

/// A country's grid-protection settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridProfile {
    pub name: String,
    pub source: String,
    pub nominal_v: f64,
    pub nominal_hz: f64,
    pub stages: Vec<Stage>,
    /// DC current component limit, A, and its clearing time, s (code 7).
    pub dc_current_a: f64,
    pub dc_current_clear_s: f64,
    /// DC voltage component limit, V, and its clearing time, s (code 18).
    pub dc_voltage_v: f64,
    pub dc_voltage_clear_s: f64,
    /// Reconnection window: voltage (all configured phases) and frequency.
    pub reconnect_v: (f64, f64),
    pub reconnect_hz: (f64, f64),
    /// The grid must stay inside the window this long before power resumes, s.
    pub reconnect_s: f64,
    /// Power ramp after (re)connection, fraction of rated power per second.
    pub ramp_per_s: f64,
}

/// A profile that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProfileError {
    #[error("grid profile {profile:?}, {field}: {reason}")]
    Invalid {
        profile: String,
        field: String,
        reason: String,
    },
}

const fn st(quantity: Quantity, above: bool, threshold: f64, clear_s: f64) -> Stage {
    Stage {
        quantity,
        above,
        threshold,
        clear_s,
        average_s: None,
    }
}
use Quantity::{Frequency as F, VoltageHigh as VH, VoltageLow as VL};

impl GridProfile {
    /// The profile for a country.
    pub fn for_country(country: Country) -> Self {
        match country {
            Country::Generic => Self::generic(country.nominal_frequency_hz()),
            Country::Australia => Self::australia(),
            Country::Germany => Self::germany(),
            Country::Italy => Self::italy(),
        }
    }

    /// The manual's own ranges: 176-276 V L-N (manual 4.1.1 and 7.1), 45-55 Hz at 50 Hz and
    /// 55-65 Hz at 60 Hz (manual 7.1). The manual gives no clearing times; we take IEC 61727:2004
    /// table 1 (2 s for 50-85 % and 110-135 % of nominal, 0.1 s below 50 %, 0.05 s above 135 %)
    /// and 0.2 s for frequency (IEC 61727 5.2.2).
    pub fn generic(nominal_hz: f64) -> Self {
        let (f_lo, f_hi) = if nominal_hz > 57.5 {
            melv_core::spec::FREQUENCY_RANGE_60HZ
        } else {
            melv_core::spec::FREQUENCY_RANGE_50HZ
        };
        let un = 230.0;
        Self {
            name: "generic".into(),
            source: "manual 4.1.1/7.1 ranges; clearing times IEC 61727:2004 table 1 and 5.2.2"
                .into(),
            nominal_v: un,
            nominal_hz,
            stages: vec![
                st(VL, false, melv_core::spec::GRID_VOLTAGE_MIN_V, 2.0), // manual 7.1: 176 V
                st(VL, false, 0.5 * un, 0.1),                            // IEC 61727: < 50 %
                st(VH, true, melv_core::spec::GRID_VOLTAGE_MAX_V, 2.0),  // manual 7.1: 276 V
                st(VH, true, 1.35 * un, 0.05),                           // IEC 61727: > 135 %
                st(F, false, f_lo, 0.2),                                 // manual 7.1: 45 / 55 Hz
                st(F, true, f_hi, 0.2),                                  // manual 7.1: 55 / 65 Hz
            ],
            // IEC 61727 9.? DC injection <= 1 % of rated output current (21.74 A @ 230 V, manual 7.1).
            dc_current_a: 0.01 * 21.74,
            dc_current_clear_s: 0.2,
            // No standard bounds the DC voltage component; 1 V on a 230 V grid (0.4 %) is our choice.
            dc_voltage_v: 1.0,
            dc_voltage_clear_s: 1.0,
            // IEC 61727 5.4: reconnect after 20 s to 5 min of normal grid; we take 60 s and the
            // 85-110 % / +-1 Hz window of the same clause.
            reconnect_v: (0.85 * un, 1.10 * un),
            reconnect_hz: (nominal_hz - 1.0, nominal_hz + 1.0),
            reconnect_s: 60.0,
            // Our choice: 20 % of rated power per minute (between AS/NZS 4777.2 and VDE 4105).
            ramp_per_s: 0.20 / 60.0,
        }
    }

    /// Australia, AS/NZS 4777.2:2020 table 4.1 (passive anti-islanding settings, Australia region A)
    /// and clauses 4.5.3 (sustained over-voltage, 10-min average), 4.9 (reconnection: 60 s inside
    /// 205-253 V (A) and 47.5-50.15 Hz) and 4.10 (soft ramp 16.67 % of rated power per minute).
    pub fn australia() -> Self {
        Self {
            name: "AU".into(),
            source: "AS/NZS 4777.2:2020 tables 4.1, clauses 4.5.3, 4.9, 4.10 (Australia A)".into(),
            nominal_v: 230.0,
            nominal_hz: 50.0,
            stages: vec![
                st(VL, false, 70.0, 2.0),   // V<< 70 V, max disconnection 2 s
                st(VL, false, 180.0, 11.0), // V<  180 V, max disconnection 11 s
                st(VH, true, 265.0, 2.0),   // V>  265 V, 2 s
                st(VH, true, 275.0, 0.2),   // V>> 275 V, 0.2 s
                Stage {
                    average_s: Some(600.0), // V nom-max 258 V, 10-min average, trip within 3 s
                    ..st(VH, true, 258.0, 3.0)
                },
                st(F, false, 47.0, 2.0), // F<  47 Hz, 2 s
                st(F, true, 52.0, 0.2),  // F>  52 Hz, 0.2 s
            ],
            // 0.5 % of rated current (AS/NZS 4777.2 clause 2.? DC injection), trip within 1 s.
            dc_current_a: 0.005 * 21.74,
            dc_current_clear_s: 1.0,
            dc_voltage_v: 1.0, // our choice, as in the generic profile
            dc_voltage_clear_s: 1.0,
            reconnect_v: (205.0, 253.0),
            reconnect_hz: (47.5, 50.15),
            reconnect_s: 60.0,
            ramp_per_s: 0.1667 / 60.0,
        }
    }

    /// Germany, VDE-AR-N 4105:2018-11 clause 6.5.3 (NA protection): U> 1.1 Un on a 10-min
    /// average, U>> 1.25 Un in 100 ms, U< 0.8 Un in 3 s, U<< 0.45 Un in 300 ms, f< 47.5 Hz and
    /// f> 51.5 Hz in 100 ms; reconnection 0.9-1.1 Un and 47.5-50.1 Hz for 60 s; after a trip the
    /// power rises by at most 10 % Pmax per minute (clause 5.7.4.? "Zuschaltbedingungen"). DC
    /// injection: 1 A within 0.2 s (DIN VDE V 0126-1-1 4.2, referenced by VDE-AR-N 4105).
    pub fn germany() -> Self {
        let un = 230.0;
        Self {
            name: "DE".into(),
            source:
                "VDE-AR-N 4105:2018-11 6.5.3, 8.3.? reconnection; DIN VDE V 0126-1-1 DC injection"
                    .into(),
            nominal_v: un,
            nominal_hz: 50.0,
            stages: vec![
                st(VL, false, 0.80 * un, 3.0),
                st(VL, false, 0.45 * un, 0.3),
                st(VH, true, 1.25 * un, 0.1),
                Stage {
                    average_s: Some(600.0),
                    ..st(VH, true, 1.10 * un, 0.1)
                },
                st(F, false, 47.5, 0.1),
                st(F, true, 51.5, 0.1),
            ],
            dc_current_a: 1.0,
            dc_current_clear_s: 0.2,
            dc_voltage_v: 1.0,
            dc_voltage_clear_s: 1.0,
            reconnect_v: (0.90 * un, 1.10 * un),
            reconnect_hz: (47.5, 50.1),
            reconnect_s: 60.0,
            ramp_per_s: 0.10 / 60.0,
        }
    }

    /// Italy, CEI 0-21:2019 clause 8.6 (SPI interface protection, permissive frequency thresholds
    /// without the remote signal): 59.S1 1.10 Un 10-min average (trip <= 3 s), 59.S2 1.15 Un 0.2 s,
    /// 27.S1 0.85 Un 1.5 s, 27.S2 0.15 Un 0.2 s, 81>.S2 51.5 Hz 0.1 s, 81<.S2 47.5 Hz 0.1 s;
    /// reconnection 0.85-1.10 Un, 49.9-50.1 Hz for 300 s, then a ramp of 20 % Pn per minute; DC
    /// injection 0.5 % of rated current within 1 s (CEI 0-21 8.5.?).
    pub fn italy() -> Self {
        let un = 230.0;
        Self {
            name: "IT".into(),
            source:
                "CEI 0-21:2019 8.6 SPI thresholds (permissive), 8.5 reconnection and DC injection"
                    .into(),
            nominal_v: un,
            nominal_hz: 50.0,
            stages: vec![
                st(VL, false, 0.85 * un, 1.5),
                st(VL, false, 0.15 * un, 0.2),
                st(VH, true, 1.15 * un, 0.2),
                Stage {
                    average_s: Some(600.0),
                    ..st(VH, true, 1.10 * un, 3.0)
                },
                st(F, false, 47.5, 0.1),
                st(F, true, 51.5, 0.1),
            ],
            dc_current_a: 0.005 * 21.74,
            dc_current_clear_s: 1.0,
            dc_voltage_v: 1.0,
            dc_voltage_clear_s: 1.0,
            reconnect_v: (0.85 * un, 1.10 * un),
            reconnect_hz: (49.9, 50.1),
            reconnect_s: 300.0,
            ramp_per_s: 0.20 / 60.0,
        }
    }

    /// Checks the profile is usable (an installer may edit thresholds, manual 6.3 codes 3-6).
    pub fn validate(&self) -> Result<(), ProfileError> {
        let bad = |field: &str, reason: String| {
            Err(ProfileError::Invalid {
                profile: self.name.clone(),
                field: field.into(),
                reason,
            })
        };
        if self.stages.is_empty() || self.stages.len() > MAX_STAGES {
            return bad(
                "stages",
                format!("need 1..={MAX_STAGES} stages, got {}", self.stages.len()),
            );
        }
        for (i, s) in self.stages.iter().enumerate() {
            if !(s.threshold.is_finite() && s.threshold >= 0.0) {
                return bad(
                    &format!("stages[{i}].threshold"),
                    format!("{} is not a finite value >= 0", s.threshold),
                );
            }
            if !(s.clear_s.is_finite() && (0.0..=60.0).contains(&s.clear_s)) {
                return bad(
                    &format!("stages[{i}].clear_s"),
                    format!("{} s is outside 0..=60 s", s.clear_s),
                );
            }
            if let Some(a) = s.average_s {
                if !(a.is_finite() && a > 0.0) {
                    return bad(
                        &format!("stages[{i}].average_s"),
                        format!("{a} s must be > 0"),
                    );
                }
            }
            if s.quantity == Quantity::Frequency
                && s.threshold > 0.0
                && (s.threshold - self.nominal_hz).abs() > 15.0
            {
                return bad(
                    &format!("stages[{i}].threshold"),
                    format!(
                        "{} Hz is not near the nominal {} Hz",
                        s.threshold, self.nominal_hz
                    ),
                );
            }
        }
        let (vl, vh) = self.reconnect_v;
        if !(vl.is_finite() && vh.is_finite() && 0.0 < vl && vl < vh) {
            return bad(
                "reconnect_v",
                format!("({vl}, {vh}) is not an increasing window"),
            );
        }
        let (fl, fh) = self.reconnect_hz;
        if !(fl.is_finite() && fh.is_finite() && 0.0 < fl && fl < fh) {
            return bad(
                "reconnect_hz",
                format!("({fl}, {fh}) is not an increasing window"),
            );
        }
        for (field, v) in [
            ("reconnect_s", self.reconnect_s),
            ("dc_current_a", self.dc_current_a),
            ("dc_voltage_v", self.dc_voltage_v),
            ("dc_current_clear_s", self.dc_current_clear_s),
            ("dc_voltage_clear_s", self.dc_voltage_clear_s),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(field, format!("{v} must be a finite value >= 0"));
            }
        }
        if !(self.ramp_per_s.is_finite() && self.ramp_per_s > 0.0) {
            return bad("ramp_per_s", format!("{} must be > 0", self.ramp_per_s));
        }
        Ok(())
    }
}
