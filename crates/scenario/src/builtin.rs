//! The example sites, built into the binary: `examples/*.toml` and the load/PV profile they name
//! (`data/greensboro-h0-hourly-2019.csv`, provenance in `data/README.md`), embedded with
//! `include_bytes!`, so that `melv demo`, `melv gateway` and `melv simulate` run from any directory,
//! with no repository beside them.
//!
//! A built-in site reads exactly as the same file read from the repository would: the same TOML, the
//! same profile bytes, parsed by [`Scenario::from_text`]. A test checks both give the same scenario.

use crate::{Overrides, Scenario, SimError};
use std::path::PathBuf;

/// One example site and the files it names.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// The name users type (`--example NAME`): the file stem in `examples/`.
    pub name: &'static str,
    /// One line of what it shows.
    pub summary: &'static str,
    /// The site TOML, as in `examples/NAME.toml`.
    pub toml: &'static str,
    /// The profile the TOML names, as `(path relative to examples/, bytes)`.
    pub profile: (&'static str, &'static [u8]),
}

/// The hourly Greensboro profile every example names.
const GREENSBORO_HOURLY: (&str, &[u8]) = (
    "../data/greensboro-h0-hourly-2019.csv",
    include_bytes!("../../../data/greensboro-h0-hourly-2019.csv"),
);

/// Every built-in site; the first is the default of `melv demo` and `melv gateway`.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "self-consumption",
        summary: "one MS-7K-U in self-consumption at a home in Greensboro NC, a year of 2019",
        toml: include_str!("../../../examples/self-consumption.toml"),
        profile: GREENSBORO_HOURLY,
    },
    Builtin {
        name: "tou-two-batteries",
        summary: "two MS-7K-U on a time-of-use tariff",
        toml: include_str!("../../../examples/tou-two-batteries.toml"),
        profile: GREENSBORO_HOURLY,
    },
    Builtin {
        name: "backup-outages",
        summary: "off-grid backup through injected grid outages",
        toml: include_str!("../../../examples/backup-outages.toml"),
        profile: GREENSBORO_HOURLY,
    },
];

/// The default built-in site (`self-consumption`).
pub fn default_site() -> &'static Builtin {
    &BUILTINS[0]
}

/// The built-in site called `name`, or an error listing the names there are.
pub fn find(name: &str) -> Result<&'static Builtin, SimError> {
    BUILTINS.iter().find(|b| b.name == name).ok_or_else(|| {
        let names: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
        SimError::UnknownExample {
            name: name.to_string(),
            known: names.join(", "),
        }
    })
}

impl Builtin {
    /// How the site is named in messages: `built-in example NAME`.
    pub fn label(&self) -> String {
        format!("built-in example {}", self.name)
    }

    /// The site as a scenario, with `ov` applied as `Scenario::load` would.
    pub fn scenario(&self, ov: Overrides) -> Result<Scenario, SimError> {
        let file = format!("examples/{}.toml", self.name);
        Scenario::from_text(&file, self.toml, self.profile, None, ov)
    }
}

/// Where a host's site comes from: a file the user names, or a built-in example.
#[derive(Debug, Clone)]
pub enum SiteSource {
    File(PathBuf),
    Builtin(&'static Builtin),
}

impl SiteSource {
    /// From the two command-line options every host offers: `--site FILE` and `--example NAME`
    /// (at most one is given; with neither, the default built-in site).
    pub fn from_args(site: Option<PathBuf>, example: Option<&str>) -> Result<Self, SimError> {
        match (site, example) {
            (Some(p), None) => Ok(Self::File(p)),
            (None, Some(name)) => Ok(Self::Builtin(find(name)?)),
            (None, None) => Ok(Self::Builtin(default_site())),
            (Some(p), Some(name)) => Err(SimError::Toml {
                file: p.display().to_string(),
                message: format!("give a site file or --example {name}, not both"),
            }),
        }
    }

    /// The site as a scenario.
    pub fn load(&self, ov: Overrides) -> Result<Scenario, SimError> {
        match self {
            Self::File(p) => Scenario::load(p, ov),
            Self::Builtin(b) => b.scenario(ov),
        }
    }

    /// How the site is named in messages: the path, or `built-in example NAME`.
    pub fn label(&self) -> String {
        match self {
            Self::File(p) => p.display().to_string(),
            Self::Builtin(b) => b.label(),
        }
    }

    /// A short name for ids (a gateway's default id): the file stem, or the example's name.
    pub fn stem(&self) -> String {
        match self {
            Self::File(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "site".into()),
            Self::Builtin(b) => b.name.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn every_builtin_reads_as_its_file_does() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for b in BUILTINS {
            let embedded = b.scenario(Overrides::default()).unwrap();
            let from_disk = Scenario::load(
                &root.join(format!("examples/{}.toml", b.name)),
                Overrides::default(),
            )
            .unwrap();
            let n = b.name;
            assert_eq!(embedded.title, from_disk.title, "{n}");
            assert_eq!(
                format!("{:?}", embedded.site),
                format!("{:?}", from_disk.site),
                "{n}"
            );
            assert_eq!(
                format!("{:?}", embedded.settings),
                format!("{:?}", from_disk.settings),
                "{n}"
            );
            assert_eq!(embedded.profile.len(), from_disk.profile.len(), "{n}");
            let (t0, t1) = (
                embedded.start_utc_s as f64,
                embedded.start_utc_s as f64 + 86_400.0,
            );
            assert_eq!(
                embedded.profile.mean_w(t0, t1),
                from_disk.profile.mean_w(t0, t1),
                "{n}"
            );
            assert_eq!(embedded.events.len(), from_disk.events.len(), "{n}");
            assert_eq!(
                (embedded.step_s, embedded.days),
                (from_disk.step_s, from_disk.days),
                "{n}"
            );
        }
    }

    #[test]
    fn a_run_shorter_than_one_step_is_refused() {
        // Issue 13 item 7: `--days 1e-9` ran zero steps and reported them as a result.
        let ov = Overrides {
            step_s: Some(60.0),
            days: Some(1e-9),
        };
        let e = default_site().scenario(ov).unwrap_err().to_string();
        assert!(
            e.contains("--days") && e.contains("shorter than one step"),
            "{e}"
        );
        let ov = Overrides {
            step_s: Some(60.0),
            days: Some(60.0 / 86_400.0),
        };
        assert_eq!(default_site().scenario(ov).unwrap().steps(), 1);
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        let e = find("nope").unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("self-consumption"), "{e}");
        assert_eq!(find("backup-outages").unwrap().name, "backup-outages");
    }
}
