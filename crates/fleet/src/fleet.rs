//! A fleet, built and checked: its templates read into scenarios, its named tariffs compiled for
//! each template, every combination of drawn values checked by the controller's own validation, so
//! that any site `i` of the fleet is a run that can only succeed.
//!
//! A fleet is built from a [`Bundle`]: the fleet TOML and every file it names, as bytes. The
//! command line reads the bundle from disk (`crate::cli`); a worker on another machine gets the same
//! bundle from the JetStream object store. Both build the same fleet from the same bytes, which is
//! what makes a site's result independent of where it runs.
//!
//! Site `i` is drawn from its own seed ([`site_seed`]: the fleet's seed mixed with `i`) by a ChaCha8
//! generator, in a fixed order: template, phases, batteries, country, mode, tariff, load scale, PV
//! scale, initial SOH. The same seed also seeds the site's units. So a site depends on the fleet file
//! and its index only, never on the worker, the thread or the order in which sites run.

use crate::config::{Choice, Distributions, FleetConfigError, FleetFile, Range};
use melv_core::{Country, Phases, WorkingMode};
use melv_scenario::builtin;
use melv_scenario::config::SiteFile;
use melv_scenario::tariff::{PriceSchedule, TariffConfig, TariffKind};
use melv_scenario::{Overrides, Scenario, SimError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The fleet TOML and every file it names (site TOMLs, their profiles and price series), keyed by
/// the path as the fleet names it (relative to the fleet file's directory, joined with `/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    /// Name of the fleet file, for messages.
    pub file: String,
    pub text: String,
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Most bytes of one bundle (a year of 1-minute profile rows with every column is about 40 MB).
pub const MAX_BUNDLE_BYTES: u64 = 512 << 20;

/// Anything that stops a fleet from being built or a site from running.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Config(#[from] FleetConfigError),
    #[error("{context}: {source}")]
    Site {
        context: String,
        #[source]
        source: SimError,
    },
    #[error("{file}: {name}: not in the bundle (the fleet names it but it was not read)")]
    Missing { file: String, name: String },
    #[error("site {site}: {source}")]
    Run {
        site: u64,
        #[source]
        source: melv_sim::runner::RunError,
    },
}

/// Joins a path named inside `base` (a file in the bundle) the way the bundle keys it.
pub fn join(base: &str, name: &str) -> String {
    match base.rfind('/') {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => name.to_string(),
    }
}

/// The files a site TOML names: its profile, and its price series for `kind = "series"`.
pub fn named_files(site_key: &str, cfg: &SiteFile) -> Vec<String> {
    let mut v = vec![join(site_key, &cfg.site.profile)];
    if let (TariffKind::Series, Some(f)) = (&cfg.tariff.kind, &cfg.tariff.file) {
        v.push(join(site_key, f));
    }
    v
}

/// Site `i`'s seed: the fleet's seed mixed with the index (SplitMix64's finaliser, Steele et al.
/// 2014), so that neighbouring sites get unrelated streams.
pub fn site_seed(fleet_seed: u64, i: u64) -> u64 {
    let mut z = fleet_seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i + 1));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What was drawn for one site (or read, for an explicit `[[site]]`): the first columns of its row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteDraw {
    pub site: u64,
    pub seed: u64,
    pub template: String,
    pub batteries: u32,
    pub phases: u8,
    pub country: String,
    pub mode: String,
    pub tariff: String,
    pub load_scale: f64,
    pub pv_scale: f64,
    pub initial_soh: f64,
}

/// One template: its scenario as read, its file, its distributions and its tariffs compiled.
#[derive(Debug, Clone)]
struct Template {
    name: String,
    weight: f64,
    base: Scenario,
    cfg: SiteFile,
    dist: Distributions,
    /// `"template"` and every named tariff, compiled for this template's time zone and span.
    tariffs: BTreeMap<String, (PriceSchedule, String)>,
}

/// A fleet ready to run: site `i` for `i` in `0..fleet.sites()`.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub name: String,
    pub file: String,
    seed: u64,
    drawn: u64,
    /// Sites per task in the distributed mode.
    pub chunk: u64,
    explicit: Vec<(String, Scenario)>,
    templates: Vec<Template>,
    /// Cumulative template weights, for the draw.
    cum_weights: Vec<f64>,
}

/// Reads one site (a file of the bundle or a built-in example) as a scenario, with the fleet's step
/// and days. Returns its name, its scenario and its parsed file.
fn read_site(
    b: &Bundle,
    file: Option<&str>,
    example: Option<&str>,
    ov: Overrides,
) -> Result<(String, Scenario, SiteFile), FleetError> {
    let site_err = |context: String| move |source| FleetError::Site { context, source };
    let missing = |name: &str| FleetError::Missing {
        file: b.file.clone(),
        name: name.to_string(),
    };
    if let Some(name) = example {
        let bi = builtin::find(name).map_err(site_err(b.file.clone()))?;
        let cfg = SiteFile::parse(&bi.label(), bi.toml).map_err(site_err(b.file.clone()))?;
        let sc = bi.scenario(ov).map_err(site_err(b.file.clone()))?;
        return Ok((name.to_string(), sc, cfg));
    }
    let key = join(&b.file, file.unwrap_or_default());
    let bytes = b.files.get(&key).ok_or_else(|| missing(&key))?;
    let text = std::str::from_utf8(bytes).map_err(|_| {
        site_err(b.file.clone())(SimError::Toml {
            file: key.clone(),
            message: "not UTF-8 text".into(),
        })
    })?;
    let cfg = SiteFile::parse(&key, text).map_err(site_err(b.file.clone()))?;
    let files = named_files(&key, &cfg);
    let get = |k: &String| b.files.get(k).ok_or_else(|| missing(k));
    let profile = get(&files[0])?;
    let prices = match files.get(1) {
        Some(k) => Some((k.as_str(), get(k)?.as_slice())),
        None => None,
    };
    let sc = Scenario::from_text(&key, text, (&files[0], profile), prices, ov)
        .map_err(site_err(b.file.clone()))?;
    let stem = key.rsplit('/').next().unwrap_or(&key);
    Ok((stem.trim_end_matches(".toml").to_string(), sc, cfg))
}

/// Compiles a named tariff for a template's zone and span; series tariffs name a file, which a
/// fleet's own tariffs cannot (a template with a price series keeps it as `"template"`).
fn compile_tariff(
    file: &str,
    name: &str,
    t: &TariffConfig,
    base: &Scenario,
) -> Result<PriceSchedule, FleetError> {
    let key = format!("tariffs.{name}");
    if t.kind == TariffKind::Series {
        return Err(FleetConfigError::new(
            file,
            key,
            "a fleet's tariffs are flat or tou; a price series stays in its site file",
        )
        .into());
    }
    let end = base.start_utc_s + (base.days * 86_400.0).ceil() as i64;
    t.compile(file, base.site.timezone, base.start_utc_s, end, None)
        .map_err(|e| FleetConfigError::new(file, key, e.to_string()).into())
}

impl Fleet {
    /// Builds the fleet from its bundle: reads every template and explicit site, compiles tariffs,
    /// and checks every combination a site can draw.
    pub fn build(b: &Bundle) -> Result<Fleet, FleetError> {
        let f = FleetFile::parse(&b.file, &b.text)?;
        let step_s = match &f.fleet.step {
            Some(s) => Some(melv_scenario::config::parse_duration_s(s).ok_or_else(|| {
                FleetConfigError::new(&b.file, "fleet.step", format!("{s:?} is not a duration"))
            })?),
            None => None,
        };
        let ov = Overrides {
            step_s,
            days: f.fleet.days,
        };
        let mut explicit = Vec::with_capacity(f.site.len());
        for s in &f.site {
            let (name, sc, _) = read_site(b, s.file.as_deref(), s.example.as_deref(), ov)?;
            explicit.push((name, sc));
        }
        let mut templates = Vec::with_capacity(f.template.len());
        for (i, t) in f.template.iter().enumerate() {
            let (stem, base, cfg) = read_site(b, t.file.as_deref(), t.example.as_deref(), ov)?;
            let mut tariffs = BTreeMap::new();
            tariffs.insert(
                "template".to_string(),
                (base.prices.clone(), base.currency.clone()),
            );
            for (name, tc) in &f.tariffs {
                let sched = compile_tariff(&b.file, name, tc, &base)?;
                tariffs.insert(name.clone(), (sched, tc.currency.clone()));
            }
            let tpl = Template {
                name: t.name.clone().unwrap_or(stem),
                weight: t.weight,
                base,
                cfg,
                dist: t.distributions.over(&f.distributions),
                tariffs,
            };
            check_combinations(&b.file, &format!("template[{i}]"), &tpl)?;
            templates.push(tpl);
        }
        let mut acc = 0.0;
        let cum_weights = templates
            .iter()
            .map(|t| {
                acc += t.weight;
                acc
            })
            .collect();
        Ok(Fleet {
            name: if f.fleet.name.is_empty() {
                b.file.clone()
            } else {
                f.fleet.name.clone()
            },
            file: b.file.clone(),
            seed: f.fleet.seed,
            drawn: f.fleet.sites,
            chunk: f.fleet.chunk.unwrap_or(4),
            explicit,
            templates,
            cum_weights,
        })
    }

    /// Number of sites: the explicit ones first, then the drawn ones.
    pub fn sites(&self) -> u64 {
        self.explicit.len() as u64 + self.drawn
    }

    /// Site `i`'s draw and scenario, and the capacity its units have lost at the start.
    pub fn site(&self, i: u64) -> Result<(SiteDraw, Scenario, f64), FleetError> {
        if let Some((name, sc)) = self.explicit.get(i as usize) {
            let d = SiteDraw {
                site: i,
                seed: sc.seed,
                template: name.clone(),
                batteries: sc.site.batteries as u32,
                phases: sc.site.phases.count() as u8,
                country: country_name(sc.site.country),
                mode: sc.settings.mode.to_string(),
                tariff: "template".into(),
                load_scale: 1.0,
                pv_scale: 1.0,
                initial_soh: 1.0,
            };
            return Ok((d, sc.clone(), 0.0));
        }
        let seed = site_seed(self.seed, i);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let total = *self.cum_weights.last().unwrap_or(&1.0);
        let x = rng.gen::<f64>() * total;
        let ti = self.cum_weights.iter().position(|c| x < *c).unwrap_or(0);
        let t = &self.templates[ti];
        let d = &t.dist;
        let base = &t.base;
        let phases = pick(&mut rng, &d.phases).unwrap_or(base.site.phases.count() as i64);
        let batteries = pick(&mut rng, &d.batteries).unwrap_or(base.site.batteries);
        let country = pick(&mut rng, &d.country).unwrap_or(base.site.country);
        let mode = pick(&mut rng, &d.mode).unwrap_or(base.settings.mode);
        let tariff = pick(&mut rng, &d.tariff).unwrap_or_else(|| "template".into());
        let load_scale = uniform(&mut rng, &d.load_scale, 1.0);
        let pv_scale = uniform(&mut rng, &d.pv_scale, 1.0);
        let initial_soh = uniform(&mut rng, &d.initial_soh, 1.0);
        let file = &self.file;
        let (site, settings) = configure(file, t, phases, batteries, country, mode)?;
        let (prices, currency) = t.tariffs.get(&tariff).cloned().ok_or_else(|| {
            FleetConfigError::new(
                file,
                "tariff",
                format!("{tariff:?} names no [tariffs.NAME]"),
            )
        })?;
        let mut sc = base.clone();
        if load_scale != 1.0 || pv_scale != 1.0 {
            sc.profile = base.profile.scaled(load_scale, pv_scale);
        }
        sc.title = format!("{} site {i}", self.name);
        sc.site = site;
        sc.settings = settings;
        sc.prices = prices;
        sc.currency = currency;
        sc.seed = seed;
        let draw = SiteDraw {
            site: i,
            seed,
            template: t.name.clone(),
            batteries: batteries as u32,
            phases: phases as u8,
            country: country_name(country),
            mode: mode.to_string(),
            tariff,
            load_scale,
            pv_scale,
            initial_soh,
        };
        Ok((draw, sc, 1.0 - initial_soh))
    }
}

/// The country as the site TOML spells it (`generic`, `AU`, `DE`, `IT`).
pub fn country_name(c: Country) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{c:?}"))
}

fn pick<T: Clone>(rng: &mut ChaCha8Rng, c: &Option<Choice<T>>) -> Option<T> {
    let c = c.as_ref()?;
    if c.weights.is_empty() {
        return Some(c.values[rng.gen_range(0..c.values.len())].clone());
    }
    let total: f64 = c.weights.iter().sum();
    let x = rng.gen::<f64>() * total;
    let mut acc = 0.0;
    for (v, w) in c.values.iter().zip(&c.weights) {
        acc += w;
        if x < acc {
            return Some(v.clone());
        }
    }
    // Rounding at the top end: the last value with a weight.
    c.values
        .iter()
        .zip(&c.weights)
        .rev()
        .find(|(_, w)| **w > 0.0)
        .map(|(v, _)| v.clone())
}

fn uniform(rng: &mut ChaCha8Rng, r: &Option<Range>, default: f64) -> f64 {
    match r {
        Some(r) if r.max > r.min => r.min + rng.gen::<f64>() * (r.max - r.min),
        Some(r) => r.min,
        None => default,
    }
}

/// The site and settings of a template with drawn values, validated as the scenario reader would.
fn configure(
    file: &str,
    t: &Template,
    phases: i64,
    batteries: usize,
    country: Country,
    mode: WorkingMode,
) -> Result<(melv_ems::SiteConfig, melv_ems::Settings), FleetError> {
    let what = format!(
        "template {:?} with {phases} phases, {batteries} batteries, country {}, mode {mode}",
        t.name,
        country_name(country)
    );
    let err = |k: String, r: String| FleetError::from(FleetConfigError::new(file, k, r));
    let ph = Phases::from_count(phases).map_err(|r| err(format!("{what}: phases"), r))?;
    let s = &t.cfg.site;
    let mut site = melv_ems::SiteConfig::new(ph, country, batteries, t.base.site.timezone);
    if let Some(g) = s.grid_charging {
        site.grid_charging = g;
    }
    site.export_limit_w = s.export_limit_kw.map(|v| v * 1000.0);
    site.import_limit_w = s.import_limit_kw.map(|v| v * 1000.0);
    site.phase_limit_w = s.phase_limit_kw.map(|v| v * 1000.0);
    site.backup_capable = s.backup_relay;
    site.validate()
        .map_err(|e| err(format!("{what}: site.{}", e.field), e.reason))?;
    let mut settings = t.base.settings.clone();
    settings.mode = mode;
    settings
        .validate(&site)
        .map_err(|e| err(format!("{what}: settings.{}", e.field), e.reason))?;
    Ok((site, settings))
}

/// Most combinations of drawn values checked for one template.
const MAX_COMBINATIONS: usize = 65_536;

/// Every combination of phases, batteries, country and mode a template can draw (values of weight 0
/// excluded) must pass the controller's validation, so that no site of the fleet fails late.
fn check_combinations(file: &str, key: &str, t: &Template) -> Result<(), FleetError> {
    fn vals<T: Clone>(c: &Option<Choice<T>>, default: T) -> Vec<T> {
        match c {
            None => vec![default],
            Some(c) if c.weights.is_empty() => c.values.clone(),
            Some(c) => c
                .values
                .iter()
                .zip(&c.weights)
                .filter(|(_, w)| **w > 0.0)
                .map(|(v, _)| v.clone())
                .collect(),
        }
    }
    let d = &t.dist;
    let b = &t.base;
    let ph = vals(&d.phases, b.site.phases.count() as i64);
    let bat = vals(&d.batteries, b.site.batteries);
    let co = vals(&d.country, b.site.country);
    let mo = vals(&d.mode, b.settings.mode);
    let n = ph.len() * bat.len() * co.len() * mo.len();
    if n > MAX_COMBINATIONS {
        return Err(FleetConfigError::new(
            file,
            key,
            format!("{n} combinations of phases, batteries, country and mode: at most {MAX_COMBINATIONS}"),
        )
        .into());
    }
    for &p in &ph {
        for &nb in &bat {
            for &c in &co {
                for &m in &mo {
                    configure(file, t, p, nb, c, m)?;
                }
            }
        }
    }
    for name in vals(&d.tariff, "template".to_string()) {
        if !t.tariffs.contains_key(&name) {
            return Err(FleetConfigError::new(
                file,
                format!("{key}: tariff"),
                format!("{name:?} names no [tariffs.NAME] (nor \"template\")"),
            )
            .into());
        }
    }
    Ok(())
}
