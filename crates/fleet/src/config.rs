//! The fleet TOML: which site templates, how many sites, and the distributions each site is drawn
//! from. Every table refuses unknown keys; `toml` names line and column of syntax and schema errors,
//! and our own checks name the key path (`distributions.batteries.weights: ...`).
//!
//! ```toml
//! [fleet]
//! name = "10,000 homes"
//! sites = 10000            # drawn sites (explicit [[site]] files come on top)
//! seed = 1                 # every draw of every site derives from it
//! step = "15min"           # overrides each template's [simulation] step
//!
//! [[template]]
//! example = "self-consumption"     # a built-in example, or file = "path/site.toml"
//! weight = 3
//! [template.distributions]         # overrides [distributions] for this template
//! batteries = { values = [1, 2, 3], weights = [6, 3, 1] }
//!
//! [distributions]
//! country = { values = ["generic", "DE"] }
//! load_scale = { min = 0.5, max = 2.0 }
//!
//! [tariffs.us-tou]                 # named tariffs, exactly a site's [tariff] table (flat or tou)
//! kind = "tou"
//! ```

use melv_core::{Country, WorkingMode};
use melv_scenario::tariff::TariffConfig;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Largest fleet TOML, bytes (a fleet file with a few hundred explicit sites takes tens of KB).
pub const MAX_FLEET_FILE_BYTES: u64 = 1 << 20;
/// Most sites one fleet run holds: each keeps one row of KPIs (about 400 bytes) until the outputs are
/// written, so 100,000 sites take about 40 MB; a bigger study is several fleets (other seeds).
pub const MAX_SITES: u64 = 100_000;
/// Most templates, explicit sites, values of one distribution and named tariffs.
pub const MAX_TEMPLATES: usize = 256;
pub const MAX_EXPLICIT_SITES: usize = 10_000;
pub const MAX_VALUES: usize = 64;
pub const MAX_TARIFFS: usize = 64;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    pub fleet: FleetSection,
    #[serde(default)]
    pub template: Vec<TemplateEntry>,
    #[serde(default)]
    pub distributions: Distributions,
    #[serde(default)]
    pub tariffs: BTreeMap<String, TariffConfig>,
    /// Site files run as they are (their own seed, settings and tariff), once each.
    #[serde(default)]
    pub site: Vec<SiteEntry>,
}

/// `[fleet]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSection {
    #[serde(default)]
    pub name: String,
    /// Number of sites drawn from the templates.
    #[serde(default)]
    pub sites: u64,
    /// Seed of the fleet: site `i`'s seed is mixed from it and `i`.
    #[serde(default)]
    pub seed: u64,
    /// Step of every site ("1s" to "1h"); each template's own when absent.
    pub step: Option<String>,
    /// Days of every site from its profile's start; each template's own when absent.
    pub days: Option<f64>,
    /// Sites per task in the distributed mode (default 4).
    pub chunk: Option<u64>,
}

/// `[[template]]`: a site file or built-in example the drawn sites start from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateEntry {
    /// Name in outputs; the file stem or example name when absent.
    pub name: Option<String>,
    /// A site TOML, relative to the fleet file.
    pub file: Option<String>,
    /// A built-in example (`self-consumption`, `tou-two-batteries`, `backup-outages`).
    pub example: Option<String>,
    /// Relative weight of the template in the draw (default 1).
    #[serde(default = "one")]
    pub weight: f64,
    /// This template's distributions; a key absent here takes the fleet's `[distributions]`.
    #[serde(default)]
    pub distributions: Distributions,
}

/// `[[site]]`: one site file (or built-in example) run as it is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteEntry {
    pub file: Option<String>,
    pub example: Option<String>,
}

fn one() -> f64 {
    1.0
}

/// A choice among values, with optional relative weights (equal when absent).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice<T> {
    pub values: Vec<T>,
    #[serde(default)]
    pub weights: Vec<f64>,
}

/// A uniform draw within `[min, max]` (`min == max` for a constant).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

/// What each site is drawn from; an absent key keeps the template's value (scales 1, SOH 1).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distributions {
    /// Battery count (manual appendix: 1-3 on single phase, 1-6 on three phase).
    pub batteries: Option<Choice<usize>>,
    /// 1 or 3 (manual 4.1.1).
    pub phases: Option<Choice<i64>>,
    pub country: Option<Choice<Country>>,
    /// Working mode (manual 5.1); the template's other settings (reserve, TOU periods) stay.
    pub mode: Option<Choice<WorkingMode>>,
    /// Names of `[tariffs.NAME]`, or `"template"` for the template's own tariff.
    pub tariff: Option<Choice<String>>,
    /// Factor on every load row of the template's profile.
    pub load_scale: Option<Range>,
    /// Factor on every PV row (a bigger or smaller array of the same orientation and weather).
    pub pv_scale: Option<Range>,
    /// State of health of every unit at the start, 0.5..=1 (capacity already lost: 1 - SOH).
    pub initial_soh: Option<Range>,
}

impl Distributions {
    /// This template's distributions over the fleet's: a key given here wins.
    pub fn over(&self, fleet: &Distributions) -> Distributions {
        Distributions {
            batteries: self.batteries.clone().or_else(|| fleet.batteries.clone()),
            phases: self.phases.clone().or_else(|| fleet.phases.clone()),
            country: self.country.clone().or_else(|| fleet.country.clone()),
            mode: self.mode.clone().or_else(|| fleet.mode.clone()),
            tariff: self.tariff.clone().or_else(|| fleet.tariff.clone()),
            load_scale: self.load_scale.or(fleet.load_scale),
            pv_scale: self.pv_scale.or(fleet.pv_scale),
            initial_soh: self.initial_soh.or(fleet.initial_soh),
        }
    }
}

/// Bad input in a fleet file: the key path and the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {key}: {reason}")]
pub struct FleetConfigError {
    pub file: String,
    pub key: String,
    pub reason: String,
}

impl FleetConfigError {
    pub fn new(file: &str, key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Checks that the weights of a choice are as many as its values, finite, >= 0, not all zero.
fn check_choice<T>(file: &str, key: &str, c: &Choice<T>) -> Result<(), FleetConfigError> {
    let e = |k: String, r: String| Err(FleetConfigError::new(file, k, r));
    if c.values.is_empty() || c.values.len() > MAX_VALUES {
        return e(
            format!("{key}.values"),
            format!("{} values: give 1 to {MAX_VALUES}", c.values.len()),
        );
    }
    if !c.weights.is_empty() {
        if c.weights.len() != c.values.len() {
            return e(
                format!("{key}.weights"),
                format!(
                    "{} weights for {} values: give one weight per value, or none",
                    c.weights.len(),
                    c.values.len()
                ),
            );
        }
        if let Some(w) = c.weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
            return e(
                format!("{key}.weights"),
                format!("{w} is not a weight >= 0"),
            );
        }
        if c.weights.iter().sum::<f64>() <= 0.0 {
            return e(format!("{key}.weights"), "all weights are 0".into());
        }
    }
    Ok(())
}

fn check_range(
    file: &str,
    key: &str,
    r: &Range,
    bounds: (f64, f64),
) -> Result<(), FleetConfigError> {
    let ok = |v: f64| v.is_finite() && (bounds.0..=bounds.1).contains(&v);
    if !ok(r.min) || !ok(r.max) || r.min > r.max {
        return Err(FleetConfigError::new(
            file,
            key,
            format!(
                "min {} and max {} must lie within {}..={} with min <= max",
                r.min, r.max, bounds.0, bounds.1
            ),
        ));
    }
    Ok(())
}

/// Load and PV factors: from an empty house (0) to ten times the template's; the profile's own
/// energy is what a factor of 1 gives.
pub const SCALE_BOUNDS: (f64, f64) = (0.0, 10.0);
/// Initial state of health: a unit at half its capacity is far past any warranty (the model's own
/// bound on `initial_capacity_fade` is 0.5, `melv_model::Plant::new`).
pub const SOH_BOUNDS: (f64, f64) = (0.5, 1.0);

impl Distributions {
    /// Checks every distribution; `key` is the table's path (`distributions`, `template[2].distributions`).
    pub fn check(&self, file: &str, key: &str) -> Result<(), FleetConfigError> {
        let k = |n: &str| format!("{key}.{n}");
        if let Some(c) = &self.batteries {
            check_choice(file, &k("batteries"), c)?;
            if let Some(b) = c.values.iter().find(|b| !(1..=6).contains(*b)) {
                return Err(FleetConfigError::new(
                    file,
                    k("batteries.values"),
                    format!("{b} batteries: a site has 1 to 6 (manual appendix)"),
                ));
            }
        }
        if let Some(c) = &self.phases {
            check_choice(file, &k("phases"), c)?;
            if let Some(p) = c.values.iter().find(|p| !matches!(p, 1 | 3)) {
                return Err(FleetConfigError::new(
                    file,
                    k("phases.values"),
                    format!("{p}: a site has 1 or 3 phases (manual 4.1.1)"),
                ));
            }
        }
        if let Some(c) = &self.country {
            check_choice(file, &k("country"), c)?;
        }
        if let Some(c) = &self.mode {
            check_choice(file, &k("mode"), c)?;
        }
        if let Some(c) = &self.tariff {
            check_choice(file, &k("tariff"), c)?;
        }
        for (n, r, b) in [
            ("load_scale", &self.load_scale, SCALE_BOUNDS),
            ("pv_scale", &self.pv_scale, SCALE_BOUNDS),
            ("initial_soh", &self.initial_soh, SOH_BOUNDS),
        ] {
            if let Some(r) = r {
                check_range(file, &k(n), r, b)?;
            }
        }
        Ok(())
    }
}

impl FleetFile {
    /// Parse and check the keys this module owns (templates, tariffs and combinations are checked
    /// when the fleet is built, `crate::fleet::Fleet`).
    pub fn parse(file: &str, text: &str) -> Result<Self, FleetConfigError> {
        let f: FleetFile =
            toml::from_str(text).map_err(|e| FleetConfigError::new(file, "toml", e.to_string()))?;
        f.check(file)?;
        Ok(f)
    }

    fn check(&self, file: &str) -> Result<(), FleetConfigError> {
        let e = |k: &str, r: String| Err(FleetConfigError::new(file, k, r));
        if self.fleet.sites > MAX_SITES {
            return e(
                "fleet.sites",
                format!("{}: at most {MAX_SITES}", self.fleet.sites),
            );
        }
        if self.fleet.sites > 0 && self.template.is_empty() {
            return e(
                "template",
                format!("{} sites to draw but no [[template]]", self.fleet.sites),
            );
        }
        if self.fleet.sites == 0 && self.site.is_empty() {
            return e(
                "fleet.sites",
                "no site: give sites > 0 or [[site]] files".into(),
            );
        }
        if self.template.len() > MAX_TEMPLATES {
            return e("template", format!("at most {MAX_TEMPLATES} templates"));
        }
        if self.site.len() > MAX_EXPLICIT_SITES {
            return e(
                "site",
                format!("at most {MAX_EXPLICIT_SITES} [[site]] files"),
            );
        }
        if self.tariffs.len() > MAX_TARIFFS {
            return e("tariffs", format!("at most {MAX_TARIFFS} named tariffs"));
        }
        if let Some(c) = self.fleet.chunk {
            if !(1..=1000).contains(&c) {
                return e("fleet.chunk", format!("{c}: 1 to 1000 sites per task"));
            }
        }
        if let Some(d) = self.fleet.days {
            if !(d.is_finite() && d > 0.0) {
                return e("fleet.days", format!("{d} must be > 0"));
            }
        }
        self.distributions.check(file, "distributions")?;
        for (i, t) in self.template.iter().enumerate() {
            let key = format!("template[{i}]");
            if t.file.is_some() == t.example.is_some() {
                return e(
                    &key,
                    "give exactly one of file = ... or example = ...".into(),
                );
            }
            if !(t.weight.is_finite() && t.weight > 0.0) {
                return e(
                    &format!("{key}.weight"),
                    format!("{} must be > 0", t.weight),
                );
            }
            t.distributions
                .check(file, &format!("{key}.distributions"))?;
        }
        for (i, s) in self.site.iter().enumerate() {
            if s.file.is_some() == s.example.is_some() {
                return e(
                    &format!("site[{i}]"),
                    "give exactly one of file = ... or example = ...".into(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        FleetFile::parse("f.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn bad_input_names_the_key_and_the_reason() {
        let base = "[fleet]\nsites = 2\n[[template]]\nexample = \"self-consumption\"\n";
        for (extra, want) in [
            (
                "[distributions]\nbatteries = { values = [7] }",
                "distributions.batteries.values: 7 batteries",
            ),
            (
                "[distributions]\nphases = { values = [2] }",
                "distributions.phases.values: 2",
            ),
            (
                "[distributions]\nbatteries = { values = [1, 2], weights = [1] }",
                "distributions.batteries.weights: 1 weights for 2 values",
            ),
            (
                "[distributions]\nbatteries = { values = [1], weights = [-1] }",
                "not a weight",
            ),
            (
                "[distributions]\nload_scale = { min = 2, max = 1 }",
                "distributions.load_scale: min 2 and max 1",
            ),
            (
                "[distributions]\ninitial_soh = { min = 0.2, max = 1 }",
                "distributions.initial_soh",
            ),
            (
                "[distributions]\ncolour = { values = [1] }",
                "unknown field `colour`",
            ),
            ("[distributions]\nbatteries = { values = [] }", "0 values"),
        ] {
            let e = err(&format!("{base}{extra}"));
            assert!(e.contains(want), "{extra}: {e}");
        }
        assert!(err("[fleet]\nsites = 200000\n").contains("fleet.sites: 200000: at most"));
        assert!(err("[fleet]\nsites = 3\n").contains("no [[template]]"));
        assert!(err("[fleet]\n").contains("no site"));
        assert!(err("[fleet]\nsites=1\n[[template]]\n").contains("template[0]: give exactly one"));
        assert!(err("[fleet]\nsites=1\nspeed=2\n").contains("unknown field `speed`"));
        let e = err("[fleet]\nsites=1\n[[template]]\nexample=\"x\"\nweight=0\n");
        assert!(e.contains("template[0].weight: 0 must be > 0"), "{e}");
    }

    #[test]
    fn a_template_key_overrides_the_fleet_one() {
        let f = FleetFile::parse(
            "f.toml",
            "[fleet]\nsites = 2\n[distributions]\nbatteries = { values = [1] }\n\
             pv_scale = { min = 1, max = 2 }\n[[template]]\nexample = \"x\"\n\
             [template.distributions]\nbatteries = { values = [2, 3] }\n",
        )
        .unwrap();
        let d = f.template[0].distributions.over(&f.distributions);
        assert_eq!(d.batteries.unwrap().values, vec![2, 3]);
        assert_eq!(d.pv_scale, Some(Range { min: 1.0, max: 2.0 }));
        assert_eq!(d.country, None);
    }
}
