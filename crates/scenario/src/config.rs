//! The site TOML: what a user writes to describe a site and a run.
//!
//! Tables: `[site]` (hardware and data), `[settings]` (the gateway's working-mode settings, exactly
//! `melv_ems::Settings`, validated by the controller itself so that the cloud and the simulator refuse
//! the same things), `[tariff]`, `[simulation]` and `[[events]]`. Every table denies unknown keys;
//! `toml` reports line and column of syntax and schema errors, and our own checks name the key path.

use crate::error::{ConfigError, SimError};
use crate::events::EventConfig;
use crate::tariff::TariffConfig;
use melv_core::{Country, GridCharging};
use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteFile {
    pub site: SiteSection,
    pub settings: melv_ems::Settings,
    pub tariff: TariffConfig,
    #[serde(default)]
    pub simulation: SimulationSection,
    #[serde(default)]
    pub events: Vec<EventConfig>,
    /// `[economics]`; documented defaults when absent.
    pub economics: Option<crate::economics::EconomicsConfig>,
}

/// Ambient temperature at the batteries: a constant or the profile's `ambient_c` column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ambient {
    Constant(f64),
    /// The string "profile".
    Named(String),
}

/// `[site]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSection {
    #[serde(default)]
    pub name: String,
    /// 1 or 3 (manual 4.1.1).
    pub phases: i64,
    #[serde(default = "generic")]
    pub country: Country,
    /// IANA time zone of the site, for TOU periods and local-time plots, e.g. "America/New_York".
    pub timezone: String,
    /// Number of MS-7K-U units (manual appendix: 1-3 on single phase, 1-6 on three phase).
    pub batteries: usize,
    /// SOC of every unit at the start, 0..=1.
    #[serde(default = "half")]
    pub initial_soc: f64,
    /// Ambient temperature at the batteries, degC, or "profile".
    #[serde(default = "indoor")]
    pub ambient_c: Ambient,
    /// Load/PV profile CSV (plain or .gz), relative to this TOML file.
    pub profile: String,
    /// Fixed UTC offset of the profile's local standard time, "+HH:MM" or "-HH:MM".
    pub profile_utc_offset: String,
    /// Override of the country's grid-charging policy (manual 5.1 note).
    pub grid_charging: Option<GridCharging>,
    /// Export limit at the grid connection point, kW.
    pub export_limit_kw: Option<f64>,
    /// Import limit at the grid connection point, kW.
    pub import_limit_kw: Option<f64>,
    /// Per-phase power limit, kW.
    pub phase_limit_kw: Option<f64>,
    /// The gateway's backup relay is fitted, so the site can island on grid loss (default true).
    #[serde(default = "yes")]
    pub backup_relay: bool,
}

fn yes() -> bool {
    true
}

fn generic() -> Country {
    Country::Generic
}
fn half() -> f64 {
    0.5
}
/// A unit installed indoors or in a garage: 20 degC, the middle of the manual's optimum 0..30 degC
/// (manual 7.1), unless the site gives a value or the profile carries ambient temperature.
fn indoor() -> Ambient {
    Ambient::Constant(20.0)
}

/// `[simulation]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationSection {
    /// Time step, "1s" to "1h" (e.g. "60s", "15min").
    #[serde(default = "minute")]
    pub step: String,
    /// Days to simulate from the profile's start; the whole profile when absent.
    pub days: Option<f64>,
    /// Years to simulate, repeating the profile's first year (`calendar`); excludes `days`.
    pub years: Option<u32>,
    /// Yearly growth of the load over a run of years, fraction (0.01 = +1 % a year; default 0).
    #[serde(default)]
    pub load_growth: f64,
    /// Yearly degradation of the PV output over a run of years, fraction (default 0; 0.005 a year
    /// is the median of Jordan & Kurtz 2013, "Photovoltaic Degradation Rates - an Analytical Review").
    #[serde(default)]
    pub pv_degradation: f64,
    /// Seed of every random choice (sensor noise, unit manufacturing spread).
    #[serde(default)]
    pub seed: u64,
    /// Model sensor noise in the units' measurements.
    #[serde(default)]
    pub sensor_noise: bool,
    /// First day (1-based, from the profile's start) of the week shown in the report's power plot.
    #[serde(default = "summer_week")]
    pub report_week_day: u32,
}

fn minute() -> String {
    "60s".into()
}
/// Day 172: the June solstice week, where PV surplus and battery cycling are at their clearest.
fn summer_week() -> u32 {
    172
}

impl Default for SimulationSection {
    fn default() -> Self {
        Self {
            step: minute(),
            days: None,
            years: None,
            load_growth: 0.0,
            pv_degradation: 0.0,
            seed: 0,
            sensor_noise: false,
            report_week_day: summer_week(),
        }
    }
}

/// "60s", "1 min", "15m", "1h", "3600" to seconds.
pub fn parse_duration_s(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    Some(v * mult)
}

/// "+HH:MM" / "-HH:MM" to seconds east of UTC.
pub fn parse_offset_s(s: &str) -> Option<i64> {
    let (sign, rest) = match s.trim().as_bytes().first()? {
        b'+' => (1, &s.trim()[1..]),
        b'-' => (-1, &s.trim()[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    // `HH:MM` in digits only: `+05:-30` or `+5:3` are not offsets (ISO 8601 / RFC 3339 time-offset).
    let digits = |s: &str, n: std::ops::RangeInclusive<usize>| {
        n.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(h, 1..=2) || !digits(m, 2..=2) {
        return None;
    }
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

/// Step limits of the simulator (issue 3 item 6: "steps from 1 s to 1 h").
pub const STEP_RANGE_S: (f64, f64) = (1.0, 3600.0);

impl SiteFile {
    /// Parse the TOML text. `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, SimError> {
        toml::from_str(text).map_err(|e| SimError::Toml {
            file: file.to_string(),
            message: e.to_string(),
        })
    }

    /// Step in whole seconds, checked.
    pub fn step_s(&self, file: &str) -> Result<f64, ConfigError> {
        let s = &self.simulation.step;
        let v = parse_duration_s(s).ok_or_else(|| {
            ConfigError::new(
                file,
                "simulation.step",
                format!("{s:?} is not a duration like \"60s\", \"15min\" or \"1h\""),
            )
        })?;
        if !(STEP_RANGE_S.0..=STEP_RANGE_S.1).contains(&v) || v.fract() != 0.0 {
            return Err(ConfigError::new(
                file,
                "simulation.step",
                format!("{s:?} must be a whole number of seconds from 1 s to 1 h"),
            ));
        }
        Ok(v)
    }

    /// Checks of the keys this crate owns (the controller checks `[settings]` and the site limits).
    pub fn check(&self, file: &str) -> Result<(), ConfigError> {
        let e = |k: &str, r: String| Err(ConfigError::new(file, k, r));
        let s = &self.site;
        if !(0.0..=1.0).contains(&s.initial_soc) {
            return e(
                "site.initial_soc",
                format!("{} is not a fraction within 0..=1", s.initial_soc),
            );
        }
        match &s.ambient_c {
            Ambient::Constant(c) if !(-40.0..=70.0).contains(c) => {
                return e("site.ambient_c", format!("{c} degC is outside -40..=70"))
            }
            Ambient::Named(n) if n != "profile" => {
                return e(
                    "site.ambient_c",
                    format!("{n:?}: expected a temperature in degC or \"profile\""),
                )
            }
            _ => {}
        }
        if parse_offset_s(&s.profile_utc_offset).is_none() {
            return e(
                "site.profile_utc_offset",
                format!(
                    "{:?} is not an offset like \"-05:00\"",
                    s.profile_utc_offset
                ),
            );
        }
        if s.timezone.parse::<chrono_tz::Tz>().is_err() {
            return e(
                "site.timezone",
                format!(
                    "{:?} is not an IANA time zone like \"Europe/Berlin\"",
                    s.timezone
                ),
            );
        }
        for (k, v) in [
            ("site.export_limit_kw", s.export_limit_kw),
            ("site.import_limit_kw", s.import_limit_kw),
            ("site.phase_limit_kw", s.phase_limit_kw),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v >= 0.0) {
                    return e(k, format!("{v} must be a power >= 0 kW"));
                }
            }
        }
        if let Some(d) = self.simulation.days {
            if !(d > 0.0 && d.is_finite()) {
                return e("simulation.days", format!("{d} must be > 0"));
            }
            if self.simulation.years.is_some() {
                return e(
                    "simulation.years",
                    "give either days or years, not both".into(),
                );
            }
        }
        for (k, v) in [
            ("simulation.load_growth", self.simulation.load_growth),
            ("simulation.pv_degradation", self.simulation.pv_degradation),
        ] {
            if !(v.is_finite() && (-0.5..=0.5).contains(&v)) {
                return e(k, format!("{v} is not a yearly fraction within -0.5..=0.5"));
            }
        }
        if let Some(ec) = &self.economics {
            ec.check(file)?;
        }
        self.step_s(file)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_offset_s;

    #[test]
    fn utc_offsets_are_hours_and_two_digit_minutes() {
        assert_eq!(parse_offset_s("-05:00"), Some(-5 * 3600));
        assert_eq!(parse_offset_s("+05:30"), Some(5 * 3600 + 1800));
        assert_eq!(parse_offset_s(" +14:00 "), Some(14 * 3600));
        // Issue 13 item 7: `+05:-30` was taken as +04:30.
        for bad in [
            "+05:-30", "+05:+30", "+5:3", "+005:00", "+15:00", "+05:60", "05:00", "+05", "",
        ] {
            assert_eq!(parse_offset_s(bad), None, "{bad:?}");
        }
    }
}
