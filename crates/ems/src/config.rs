//! The site as installed: what the installer fixes once at commissioning (phases, country, number of
//! batteries, time zone, grid connection limits). The owner's choices live in [`crate::Settings`].

use melv_core::{Country, GridCharging, Phases};
use serde::{Deserialize, Serialize};

/// A site description that is not valid, with the key that is wrong and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// The key, as the site file spells it (e.g. `batteries`).
    pub field: &'static str,
    pub reason: String,
}

/// How the site is wired and what the grid connection allows.
///
/// Power signs (ARCHITECTURE.md 3): grid power positive = importing. The limits below are magnitudes
/// (> 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Single phase (plug-in bridge) or three phase (manual 4.6).
    pub phases: Phases,
    /// Country of installation: grid-charging policy and nominal grid values.
    pub country: Country,
    /// Number of MS-7K-U units: 1-3 single phase, 1-6 three phase (manual appendix 1 a and b).
    pub batteries: usize,
    /// The site's time zone (IANA name, e.g. "Europe/Berlin"): TOU periods are local times.
    #[serde(with = "tz_serde")]
    pub timezone: chrono_tz::Tz,
    /// Whether storage may charge from the grid. Defaults to the country's policy
    /// ([`Country::grid_charging`]); a site may forbid it where the country allows it, not the reverse.
    pub grid_charging: GridCharging,
    /// Largest power the site may feed into the grid, W (e.g. a DNSP's 5 kW export limit). `None`: no limit.
    pub export_limit_w: Option<f64>,
    /// Largest power the site may draw from the grid, W (main fuse or contract). `None`: no limit.
    pub import_limit_w: Option<f64>,
    /// Largest power per phase, either direction, W (phase fuse, or a national unbalance rule such as
    /// VDE-AR-N 4105's 4.6 kVA per phase). `None`: no limit.
    pub phase_limit_w: Option<f64>,
    /// The gateway's backup relay is installed, so the site can island on grid loss. Without it the
    /// batteries simply stop when the grid goes (anti-islanding, manual 7.1 "Anti-islanding protection").
    pub backup_capable: bool,
}

impl SiteConfig {
    /// A site with the country's grid-charging policy, no grid limits and the backup relay fitted.
    pub fn new(
        phases: Phases,
        country: Country,
        batteries: usize,
        timezone: chrono_tz::Tz,
    ) -> Self {
        Self {
            phases,
            country,
            batteries,
            timezone,
            grid_charging: country.grid_charging(),
            export_limit_w: None,
            import_limit_w: None,
            phase_limit_w: None,
            backup_capable: true,
        }
    }

    /// Checks the installation rules the controller relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let max = self.phases.max_batteries();
        if self.batteries == 0 || self.batteries > max {
            let wiring = match self.phases {
                Phases::Single => "single phase",
                Phases::Three => "three phase",
            };
            return Err(ConfigError {
                field: "batteries",
                reason: format!(
                    "{} batteries on a {wiring} site: the manual allows 1 to {max} (appendix 1 {})",
                    self.batteries,
                    if self.phases == Phases::Single {
                        "a"
                    } else {
                        "b"
                    }
                ),
            });
        }
        if self.grid_charging == GridCharging::Permitted
            && self.country.grid_charging() == GridCharging::Forbidden
        {
            return Err(ConfigError {
                field: "grid_charging",
                reason: format!(
                    "permitted, but grid charging of storage is forbidden in {:?} (manual 5.1 note)",
                    self.country
                ),
            });
        }
        for (field, v) in [
            ("export_limit_w", self.export_limit_w),
            ("import_limit_w", self.import_limit_w),
            ("phase_limit_w", self.phase_limit_w),
        ] {
            if let Some(v) = v {
                // An export limit of 0 W (zero export) is a real and common DNSP rule; an import or
                // phase limit of 0 would forbid running the house at all.
                let ok = v.is_finite()
                    && if field == "export_limit_w" {
                        v >= 0.0
                    } else {
                        v > 0.0
                    };
                if !ok {
                    return Err(ConfigError {
                        field,
                        reason: format!("{v} W: expected a finite power above 0 W"),
                    });
                }
            }
        }
        Ok(())
    }
}

impl Default for SiteConfig {
    /// One battery, single phase, generic country, UTC.
    fn default() -> Self {
        Self::new(Phases::Single, Country::Generic, 1, chrono_tz::UTC)
    }
}

/// Serde for a time zone as its IANA name, so site files and JSON carry "Europe/Berlin".
mod tz_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tz: &chrono_tz::Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<chrono_tz::Tz, D::Error> {
        let name = String::deserialize(d)?;
        name.parse::<chrono_tz::Tz>().map_err(|_| {
            serde::de::Error::custom(format!(
                "unknown time zone {name:?}: expected an IANA name such as \"Europe/Berlin\""
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(phases: Phases, country: Country, batteries: usize) -> SiteConfig {
        SiteConfig::new(phases, country, batteries, chrono_tz::Europe::Berlin)
    }

    fn check(cfg: SiteConfig, expected: Result<(), &str>) {
        match (cfg.validate(), expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{e} lacks {want:?}"),
            (got, want) => panic!("{cfg:?}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn battery_count_follows_the_appendix() {
        check(site(Phases::Single, Country::Generic, 1), Ok(()));
        check(site(Phases::Single, Country::Generic, 3), Ok(()));
        check(
            site(Phases::Single, Country::Generic, 4),
            Err("batteries: 4 batteries on a single phase site: the manual allows 1 to 3 (appendix 1 a)"),
        );
        check(site(Phases::Three, Country::Generic, 6), Ok(()));
        check(
            site(Phases::Three, Country::Generic, 7),
            Err("allows 1 to 6 (appendix 1 b)"),
        );
        check(
            site(Phases::Three, Country::Generic, 0),
            Err("batteries: 0"),
        );
    }

    #[test]
    fn grid_charging_may_only_be_tightened() {
        let mut s = site(Phases::Single, Country::Italy, 1);
        assert_eq!(s.grid_charging, GridCharging::Forbidden);
        check(s.clone(), Ok(()));
        s.grid_charging = GridCharging::Permitted;
        check(s, Err("grid_charging: permitted, but grid charging"));
        let mut de = site(Phases::Single, Country::Germany, 1);
        de.grid_charging = GridCharging::Forbidden;
        check(de, Ok(()));
    }

    #[test]
    fn limits_must_be_positive_and_finite() {
        type Limits = (Option<f64>, Option<f64>, Option<f64>);
        let cases: [(Limits, Result<(), &str>); 6] = [
            ((Some(5000.0), Some(15000.0), Some(4600.0)), Ok(())),
            ((Some(0.0), None, None), Ok(())),
            ((Some(-1.0), None, None), Err("export_limit_w: -1 W")),
            ((None, Some(0.0), None), Err("import_limit_w: 0 W")),
            ((None, None, Some(f64::NAN)), Err("phase_limit_w: NaN W")),
            (
                (None, Some(f64::INFINITY), None),
                Err("import_limit_w: inf W"),
            ),
        ];
        for ((e, i, p), want) in cases {
            let mut s = site(Phases::Three, Country::Germany, 2);
            s.export_limit_w = e;
            s.import_limit_w = i;
            s.phase_limit_w = p;
            check(s, want);
        }
    }

    #[test]
    fn timezone_round_trips_by_name() {
        let s = site(Phases::Three, Country::Australia, 2);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"Europe/Berlin\""), "{json}");
        let back: SiteConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        let bad = json.replace("Europe/Berlin", "Mars/Olympus");
        let err = serde_json::from_str::<SiteConfig>(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown time zone \"Mars/Olympus\""), "{err}");
    }
}
