//! A scenario: the site TOML with its profile and price files read, every key checked, and the
//! controller's own validation passed. This is the only module of the crate that touches files
//! ([`Scenario::load`]); [`Scenario::from_text`] does the same from bytes for tests and embedders.

use crate::calendar::Calendar;
use crate::config::{parse_offset_s, Ambient, SiteFile};
use crate::economics::EconomicsConfig;
use crate::error::{ConfigError, SimError};
use crate::events::{self, Event};
use crate::profile::Profile;
use crate::tariff::{PriceSchedule, TariffConfig, TariffKind};
use melv_core::Phases;
use std::path::{Path, PathBuf};

/// Command-line overrides of `[simulation]`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Overrides {
    /// Step, s.
    pub step_s: Option<f64>,
    pub days: Option<f64>,
}

/// Where the batteries' ambient temperature comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AmbientSource {
    Constant(f64),
    Profile,
}

/// Everything a run needs, checked.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name of the TOML file, for messages.
    pub file: String,
    pub title: String,
    pub site: melv_ems::SiteConfig,
    pub settings: melv_ems::Settings,
    pub profile: Profile,
    pub prices: PriceSchedule,
    pub currency: String,
    pub events: Vec<Event>,
    pub step_s: f64,
    pub days: f64,
    pub start_utc_s: i64,
    pub seed: u64,
    pub sensor_noise: bool,
    pub initial_soc: f64,
    pub ambient: AmbientSource,
    pub report_week_day: u32,
    /// Offset of the profile's local standard time, s east of UTC (for plots and event times).
    pub utc_offset_s: i64,
    /// A run over years (`[simulation] years`, `--years`): the profile's first year repeated.
    /// `None`: one pass through the profile (`days`).
    pub calendar: Option<Calendar>,
    /// `[economics]`, or its defaults when the table is absent (`economics_given` false).
    pub economics: EconomicsConfig,
    pub economics_given: bool,
    /// The tariff table (recompiled over the whole run when the run is set to years).
    pub tariff: TariffConfig,
    /// Yearly load growth and PV degradation for a run over years.
    pub load_growth: f64,
    pub pv_degradation: f64,
}

/// Largest site TOML, bytes: the examples take 2 KB, a long schedule of events a few hundred.
pub const MAX_SITE_FILE_BYTES: u64 = 1 << 20;

#[allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the one place a site file and the files it names are read from disk"
)]
fn read(path: &Path, max: u64) -> Result<Vec<u8>, SimError> {
    use std::io::Read;
    let io = |err| SimError::Io {
        path: path.to_path_buf(),
        err,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(SimError::TooLarge {
            path: path.to_path_buf(),
            max,
        });
    }
    Ok(bytes)
}

/// The run's length in days (`--days`, `[simulation] days` or the whole profile), checked against
/// the profile and the step.
fn run_days(
    file: &str,
    cfg: &SiteFile,
    profile: &Profile,
    ov: Overrides,
    step_s: f64,
) -> Result<f64, SimError> {
    let s = &cfg.site;
    let available_days = (profile.end_utc_s() - profile.start_utc_s) as f64 / 86_400.0;
    let days = ov.days.or(cfg.simulation.days).unwrap_or(available_days);
    let days_key = if ov.days.is_some() {
        "--days"
    } else {
        "simulation.days"
    };
    if days.is_nan() || days <= 0.0 || days > available_days + 1e-9 {
        return Err(ConfigError::new(
            file,
            days_key,
            format!(
                "{days} days: the profile {} covers {available_days:.2} days",
                s.profile
            ),
        )
        .into());
    }
    // A run shorter than one step would do nothing and report an empty year as a result.
    if days * 86_400.0 < step_s {
        return Err(ConfigError::new(
            file,
            days_key,
            format!("{days} days is shorter than one step of {step_s} s"),
        )
        .into());
    }
    Ok(days)
}

impl Scenario {
    /// Read the TOML at `path` and the files it names (relative to its directory).
    pub fn load(path: &Path, ov: Overrides) -> Result<Self, SimError> {
        let text = read(path, MAX_SITE_FILE_BYTES)?;
        let text = String::from_utf8(text).map_err(|_| SimError::Toml {
            file: path.display().to_string(),
            message: "not UTF-8 text".into(),
        })?;
        let file = path.display().to_string();
        let cfg = SiteFile::parse(&file, &text)?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let profile_path = dir.join(&cfg.site.profile);
        let profile_bytes = read(&profile_path, crate::profile::MAX_PROFILE_BYTES)?;
        let prices = match (&cfg.tariff.kind, &cfg.tariff.file) {
            (TariffKind::Series, Some(f)) => {
                let p = dir.join(f);
                Some((
                    p.display().to_string(),
                    read(&p, crate::profile::MAX_PROFILE_BYTES)?,
                ))
            }
            _ => None,
        };
        Self::build(
            &file,
            cfg,
            (&profile_path.display().to_string(), &profile_bytes),
            prices.as_ref().map(|(n, b)| (n.as_str(), b.as_slice())),
            ov,
        )
    }

    /// Same as [`Scenario::load`] with the files given as bytes.
    pub fn from_text(
        file: &str,
        text: &str,
        profile: (&str, &[u8]),
        prices: Option<(&str, &[u8])>,
        ov: Overrides,
    ) -> Result<Self, SimError> {
        let cfg = SiteFile::parse(file, text)?;
        Self::build(file, cfg, profile, prices, ov)
    }

    fn build(
        file: &str,
        cfg: SiteFile,
        profile: (&str, &[u8]),
        prices: Option<(&str, &[u8])>,
        ov: Overrides,
    ) -> Result<Self, SimError> {
        cfg.check(file)?;
        let s = &cfg.site;
        let offset = parse_offset_s(&s.profile_utc_offset).unwrap_or(0);
        let profile = Profile::parse(profile.0, profile.1, offset)?;
        let ambient = match s.ambient_c {
            Ambient::Constant(c) => AmbientSource::Constant(c),
            Ambient::Named(_) if profile.ambient_c.is_some() => AmbientSource::Profile,
            Ambient::Named(_) => {
                return Err(ConfigError::new(
                    file,
                    "site.ambient_c",
                    format!("\"profile\" needs an ambient_c column in {}", s.profile),
                )
                .into())
            }
        };
        let mut step_s = cfg.step_s(file)?;
        if let Some(v) = ov.step_s {
            if !(crate::config::STEP_RANGE_S.0..=crate::config::STEP_RANGE_S.1).contains(&v)
                || v.fract() != 0.0
            {
                return Err(ConfigError::new(
                    file,
                    "--step",
                    format!("{v} s must be a whole number of seconds from 1 s to 1 h"),
                )
                .into());
            }
            step_s = v;
        }
        let days = run_days(file, &cfg, &profile, ov, step_s)?;
        let years = if ov.days.is_some() {
            None
        } else {
            cfg.simulation.years
        };
        let tz: chrono_tz::Tz = s
            .timezone
            .parse()
            .map_err(|_| ConfigError::new(file, "site.timezone", "not an IANA time zone"))?;
        let phases =
            Phases::from_count(s.phases).map_err(|r| ConfigError::new(file, "site.phases", r))?;
        let mut site = melv_ems::SiteConfig::new(phases, s.country, s.batteries, tz);
        if let Some(g) = s.grid_charging {
            site.grid_charging = g;
        }
        site.export_limit_w = s.export_limit_kw.map(|v| v * 1000.0);
        site.import_limit_w = s.import_limit_kw.map(|v| v * 1000.0);
        site.phase_limit_w = s.phase_limit_kw.map(|v| v * 1000.0);
        site.backup_capable = s.backup_relay;
        site.validate()
            .map_err(|e| ConfigError::new(file, format!("site.{}", e.field), e.reason))?;
        let settings = cfg.settings.clone();
        settings
            .validate(&site)
            .map_err(|e| ConfigError::new(file, format!("settings.{}", e.field), e.reason))?;
        let start = profile.start_utc_s;
        let end = start + (days * 86_400.0).ceil() as i64;
        let price_bytes = prices.map(|(n, b)| (n, b, offset));
        let prices = cfg.tariff.compile(file, tz, start, end, price_bytes)?;
        let events = events::compile(file, &cfg.events, offset, s.batteries)?;
        let mut sc = Scenario {
            file: file.to_string(),
            title: if s.name.is_empty() {
                file.to_string()
            } else {
                s.name.clone()
            },
            site,
            settings,
            profile,
            prices,
            currency: cfg.tariff.currency.clone(),
            events,
            step_s,
            days,
            start_utc_s: start,
            seed: cfg.simulation.seed,
            sensor_noise: cfg.simulation.sensor_noise,
            initial_soc: s.initial_soc,
            ambient,
            report_week_day: cfg.simulation.report_week_day,
            utc_offset_s: offset,
            calendar: None,
            economics: cfg.economics.clone().unwrap_or_default(),
            economics_given: cfg.economics.is_some(),
            tariff: cfg.tariff.clone(),
            load_growth: cfg.simulation.load_growth,
            pv_degradation: cfg.simulation.pv_degradation,
        };
        if let Some(n) = years {
            sc.set_years(n, "simulation.years")?;
        }
        Ok(sc)
    }

    /// Run over `years` years from the profile's start, repeating its first year (module
    /// [`crate::calendar`]); `key` names the option in errors (`--years`, `simulation.years`).
    pub fn set_years(&mut self, years: u32, key: &str) -> Result<(), SimError> {
        let cal = Calendar::new(
            self.profile.start_utc_s,
            self.profile.end_utc_s(),
            self.utc_offset_s,
            years,
            self.load_growth,
            self.pv_degradation,
        )
        .map_err(|r| ConfigError::new(&self.file, key, r))?;
        let end = cal.end_utc_s();
        // A price series is in profile time and repeats with the profile (`price_time`); flat and
        // TOU tariffs are calendar rules, compiled over the whole run.
        if self.tariff.kind != TariffKind::Series {
            self.prices =
                self.tariff
                    .compile(&self.file, self.site.timezone, self.start_utc_s, end, None)?;
        }
        self.days = (end - self.start_utc_s) as f64 / 86_400.0;
        self.calendar = Some(cal);
        Ok(())
    }

    /// Number of run years: the calendar's, or 1 for a run through the profile.
    pub fn years(&self) -> usize {
        self.calendar.as_ref().map_or(1, Calendar::years)
    }

    /// UTC s of each run year's start and of the run's end (`years() + 1` entries).
    pub fn year_starts(&self) -> Vec<i64> {
        match &self.calendar {
            Some(c) => c.year_starts.clone(),
            None => vec![
                self.start_utc_s,
                self.start_utc_s + (self.steps() as f64 * self.step_s).round() as i64,
            ],
        }
    }

    /// The profile instant run instant `t` replays and its run year (`t` itself and year 0 for a run
    /// through the profile).
    #[inline]
    pub fn profile_time(&self, t: f64) -> (f64, usize) {
        match &self.calendar {
            Some(c) => c.profile_time(t),
            None => (t, 0),
        }
    }

    /// When to look up the price of run instant `t`: a price series is in profile time (it repeats
    /// with the profile over years), flat and TOU tariffs in calendar time.
    #[inline]
    pub fn price_time(&self, t: f64) -> i64 {
        match &self.calendar {
            Some(c) if self.tariff.kind == TariffKind::Series => c.profile_time(t).0 as i64,
            _ => t as i64,
        }
    }

    /// Number of steps of the run.
    pub fn steps(&self) -> u64 {
        (self.days * 86_400.0 / self.step_s).floor() as u64
    }
}

impl Scenario {
    /// What the site core needs of this scenario (`melv_site::Site::new`).
    pub fn site_spec(&self) -> melv_site::SiteSpec {
        melv_site::SiteSpec {
            site: self.site.clone(),
            settings: self.settings.clone(),
            seed: self.seed,
            initial_soc: self.initial_soc,
            initial_temp_c: self.ambient_at_row(0),
            sensor_noise: self.sensor_noise,
            events: self.events.clone(),
        }
    }

    /// The battery twins of this site (`melv_site::build_units`).
    pub fn units(&self) -> Vec<melv_unit::BatteryUnit> {
        melv_site::build_units(&self.site_spec())
    }

    /// The ambient temperature the batteries see at profile row `row`, degC.
    #[inline]
    pub fn ambient_at_row(&self, row: usize) -> f64 {
        match self.ambient {
            AmbientSource::Constant(c) => c,
            AmbientSource::Profile => self
                .profile
                .ambient_c
                .as_ref()
                .and_then(|v| v.get(row).copied())
                .unwrap_or(20.0),
        }
    }

    /// What the profile says the batteries see at profile instant `t`: ambient, grid voltage and
    /// frequency (nominal where the profile has no column), before any event.
    #[inline]
    pub fn environment_at(&self, t: f64) -> melv_model::Environment {
        let row = self.profile.row(t);
        let phases = self.site.phases;
        let mut grid = melv_model::GridState::nominal(phases);
        if let Some(v) = &self.profile.grid_v {
            for p in 0..phases.count() {
                grid.phase_v[p] = v[row];
            }
        }
        if let Some(f) = &self.profile.grid_hz {
            grid.frequency_hz = f[row];
        }
        melv_model::Environment {
            ambient_c: self.ambient_at_row(row),
            grid,
        }
    }

    /// The cycle `[t, t + dt)` of the profile as the site core takes it: `t` is both the clock and
    /// the events' schedule (the simulator's case).
    ///
    /// Over years the profile's weather and load replay (`profile_time`), scaled by the year's
    /// load growth and PV degradation; the clock and the events stay calendar time.
    #[inline]
    pub fn site_env(&self, t: f64, dt: f64) -> melv_site::SiteEnv {
        let Some(cal) = &self.calendar else {
            let (load_w, pv_w) = self.profile.mean_w(t, t + dt);
            return melv_site::SiteEnv {
                utc_s: t,
                schedule_s: t as i64,
                load_w,
                pv_w,
                world: self.environment_at(t),
            };
        };
        let (pt, y) = cal.profile_time(t);
        let end = (self.profile.end_utc_s() as f64).min(pt + dt);
        let (load_w, pv_w) = self.profile.mean_w(pt, end);
        melv_site::SiteEnv {
            utc_s: t,
            schedule_s: t as i64,
            load_w: load_w * cal.load_factor[y],
            pv_w: pv_w * cal.pv_factor[y],
            world: self.environment_at(pt),
        }
    }
}
