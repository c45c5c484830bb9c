//! The owner's working-mode settings (manual 5.1, "Site Settings" > "Battery Working Mode"), and the
//! one validation that the gateway and the cloud both run, so that the app refuses exactly what the
//! gateway would refuse.

use crate::config::SiteConfig;
use crate::grid_services::GridServicesSettings;
use crate::tou::TouSettings;
use melv_core::{GridCharging, WorkingMode};
use serde::{Deserialize, Serialize};

/// A setting that is not valid: the field's path (as the settings file spells it) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SettingsError {
    /// e.g. `tou.weekday[2]`, `reserve_soc`.
    pub field: String,
    pub reason: String,
}

impl SettingsError {
    pub fn new(field: String, reason: String) -> Self {
        Self { field, reason }
    }
}

/// Off-grid backup (the datasheet's "Off-grid mode", manual 7.1 Services; manual 5.1 note).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupSettings {
    /// The grid must be back and within the reconnection band this long before the site reconnects,
    /// s. Default 60 s: the reconnection delay of VDE-AR-N 4105:2018 and AS/NZS 4777.2:2020.
    pub reconnect_stable_s: f64,
    /// Reconnection frequency band, Hz. Default 47.5 to 50.1 Hz: VDE-AR-N 4105:2018's conditions for
    /// (re)connection on a 50 Hz grid. Voltages must lie in the manual's operating range (7.1: 176 to
    /// 276 V L-N).
    pub reconnect_min_hz: f64,
    pub reconnect_max_hz: f64,
    /// Islanded, the batteries supply the load down to this SOC and then stop, keeping enough energy
    /// to restart and to report. Default 5 %: our choice; the manual allows 100 % depth of discharge
    /// (7.1) but a unit emptied to its cut-off cannot black-start.
    pub off_grid_min_soc: f64,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            reconnect_stable_s: 60.0,
            reconnect_min_hz: 47.5,
            reconnect_max_hz: 50.1,
            off_grid_min_soc: 0.05,
        }
    }
}

/// Everything the owner chooses in the app. Serialises to the site TOML and the cloud's JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub mode: WorkingMode,
    /// Backup reserve: while on grid no battery discharges below this SOC (0..=1). Default 0: the
    /// manual's 100 % depth of discharge (7.1); owners who want backup set it.
    pub reserve_soc: f64,
    pub tou: TouSettings,
    pub grid_services: GridServicesSettings,
    pub backup: BackupSettings,
    /// Charge to 100 % for SOC calibration (manual 6.1 note) when no battery has been full for this
    /// many days. 0 turns it off. Default 30 days: an LFP cell's flat voltage curve lets the SOC
    /// estimate drift, and BMS vendors ask for a full charge about monthly (e.g. Victron's advice to
    /// synchronise LiFePO4 battery monitors at least once a month).
    pub calibration_interval_days: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: WorkingMode::SelfConsumption,
            reserve_soc: 0.0,
            tou: TouSettings::default(),
            grid_services: GridServicesSettings::default(),
            backup: BackupSettings::default(),
            calibration_interval_days: 30.0,
        }
    }
}

impl Settings {
    /// Self-consumption with the defaults.
    pub fn self_consumption() -> Self {
        Self::default()
    }

    /// All rules, for this site. The first broken rule is reported, naming its field.
    pub fn validate(&self, site: &SiteConfig) -> Result<(), SettingsError> {
        fraction("reserve_soc", self.reserve_soc, true)?;
        self.tou.validate()?;
        self.grid_services.validate()?;
        let b = &self.backup;
        if !(b.reconnect_stable_s.is_finite() && (0.0..=3_600.0).contains(&b.reconnect_stable_s)) {
            return Err(SettingsError::new(
                "backup.reconnect_stable_s".into(),
                format!("{} s: expected 0 to 3600 s", b.reconnect_stable_s),
            ));
        }
        if !(b.reconnect_min_hz.is_finite()
            && b.reconnect_max_hz.is_finite()
            && b.reconnect_min_hz < b.reconnect_max_hz)
        {
            return Err(SettingsError::new(
                "backup.reconnect_min_hz".into(),
                format!(
                    "{} to {} Hz: expected finite values with min < max",
                    b.reconnect_min_hz, b.reconnect_max_hz
                ),
            ));
        }
        fraction("backup.off_grid_min_soc", b.off_grid_min_soc, false)?;
        let days = self.calibration_interval_days;
        if !(days.is_finite() && (0.0..=365.0).contains(&days)) {
            return Err(SettingsError::new(
                "calibration_interval_days".into(),
                format!("{days}: expected 0 (off) to 365 days"),
            ));
        }
        if self.mode == WorkingMode::TimeOfUse {
            if site.grid_charging == GridCharging::Forbidden {
                return Err(SettingsError::new(
                    "mode".into(),
                    format!(
                        "time_of_use is not available: grid charging of storage is forbidden at this \
                         site (country {:?}), and manual 5.1 prohibits the mode there",
                        site.country
                    ),
                ));
            }
            if !self.tou.has_periods() {
                return Err(SettingsError::new(
                    "tou".into(),
                    "time_of_use needs at least one charging or discharging period (manual 5.1 note)"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

fn fraction(field: &str, v: f64, one_ok: bool) -> Result<(), SettingsError> {
    let ok = v.is_finite() && v >= 0.0 && (v < 1.0 || (one_ok && v == 1.0));
    if ok {
        Ok(())
    } else {
        Err(SettingsError::new(
            field.into(),
            format!(
                "{v}: expected a fraction from 0 to {}",
                if one_ok { "1" } else { "below 1" }
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tou::{PeriodKind, TouPeriod};
    use melv_core::{Country, Phases};

    fn site(country: Country) -> SiteConfig {
        SiteConfig::new(Phases::Single, country, 1, chrono_tz::Europe::Rome)
    }

    fn check(site: &SiteConfig, s: Settings, expected: Result<(), &str>) {
        match (s.validate(site), expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(want)) => assert!(e.to_string().starts_with(want), "{e} vs {want}"),
            (got, want) => panic!("got {got:?}, expected {want:?}"),
        }
    }

    fn tou(periods: Vec<TouPeriod>) -> Settings {
        Settings {
            mode: WorkingMode::TimeOfUse,
            tou: TouSettings {
                weekday: periods,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn period(start: &str, end: &str, kind: PeriodKind) -> TouPeriod {
        TouPeriod {
            start: start.parse().unwrap(),
            end: end.parse().unwrap(),
            kind,
        }
    }

    #[test]
    fn tou_rules_of_manual_5_1() {
        let de = site(Country::Germany);
        let it = site(Country::Italy);
        let one = vec![period("01:00", "05:00", PeriodKind::Charge)];
        check(&de, tou(one.clone()), Ok(()));
        check(&de, tou(vec![]), Err("tou: time_of_use needs at least one"));
        check(&it, tou(one), Err("mode: time_of_use is not available"));
        // Self-consumption stays available where grid charging is forbidden.
        check(&it, Settings::default(), Ok(()));
        check(
            &de,
            tou(vec![
                period("01:00", "05:00", PeriodKind::Charge),
                period("04:00", "06:00", PeriodKind::Discharge),
            ]),
            Err("tou.weekday[1]: 04:00-06:00 overlaps period 0 (01:00-05:00)"),
        );
    }

    #[test]
    fn fractions_and_durations_are_bounded() {
        let de = site(Country::Germany);
        type Edit = fn(&mut Settings);
        let cases: [(Edit, Result<(), &str>); 9] = [
            (|s| s.reserve_soc = 0.2, Ok(())),
            (|s| s.reserve_soc = 1.0, Ok(())),
            (|s| s.reserve_soc = 1.2, Err("reserve_soc: 1.2")),
            (|s| s.reserve_soc = f64::NAN, Err("reserve_soc: NaN")),
            (
                |s| s.backup.off_grid_min_soc = 1.0,
                Err("backup.off_grid_min_soc: 1"),
            ),
            (
                |s| s.backup.reconnect_stable_s = -1.0,
                Err("backup.reconnect_stable_s: -1 s"),
            ),
            (
                |s| s.backup.reconnect_max_hz = 47.0,
                Err("backup.reconnect_min_hz: 47.5 to 47 Hz"),
            ),
            (|s| s.calibration_interval_days = 0.0, Ok(())),
            (
                |s| s.calibration_interval_days = 400.0,
                Err("calibration_interval_days: 400"),
            ),
        ];
        for (edit, want) in cases {
            let mut s = Settings::default();
            edit(&mut s);
            check(&de, s, want);
        }
    }

    #[test]
    fn settings_read_from_toml_like_json_with_defaults() {
        let json = r#"{"mode":"time_of_use","reserve_soc":0.2,
            "tou":{"weekday":[{"start":"22:00","end":"06:00","kind":"charge"}]}}"#;
        let s: Settings = serde_json::from_str(json).unwrap();
        assert_eq!(s.mode, WorkingMode::TimeOfUse);
        assert_eq!(s.tou.weekday[0].start.to_string(), "22:00");
        assert_eq!(s.calibration_interval_days, 30.0);
        let bad = r#"{"mode":"time_of_use","tou":{"weekday":[{"start":"25:00","end":"06:00","kind":"charge"}]}}"#;
        let err = serde_json::from_str::<Settings>(bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid time \"25:00\""), "{err}");
        let typo = r#"{"mode":"self_consumption","reserve":0.2}"#;
        let err = serde_json::from_str::<Settings>(typo)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `reserve`"), "{err}");
        let round = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Settings>(&round).unwrap(), s);
    }
}
