//! # melv-scenario: a site described in files, read and checked
//!
//! A user describes a site in one TOML file (batteries, phases, country, working mode, tariff, the
//! load/PV profile, a schedule of injected events). This crate reads it and the files it names,
//! checks every key (ours and the controller's), and hands out a [`scenario::Scenario`]: a run that
//! can only succeed. The simulator and the live gateway both start from it.
//!
//! ## Shape
//! * [`config`] is the TOML schema (serde, unknown keys refused); [`scenario`] reads the files it
//!   names ([`scenario::Scenario::load`], the only function here that touches the file system) or
//!   takes them as bytes ([`scenario::Scenario::from_text`], for tests and embedders);
//!   [`builtin`] holds the example sites and their profile, built into the binary.
//! * [`profile`] holds the load/PV series and answers "mean power over `[t0, t1)`" from cumulative
//!   energy, so any step from 1 s to 1 h keeps the profile's energy exactly.
//! * [`calendar`] maps a run over several years onto a profile of one year (leap days, load growth,
//!   PV degradation); [`economics`] is the `[economics]` table and its defaults.
//! * [`tariff`] compiles flat, TOU (site-local time, daylight saving handled once) or price-series
//!   tariffs into UTC segments walked by a cursor; [`events`] checks the schedule of injected
//!   events (their runtime type is `melv_site::Event`).
//!
//! ## Never knows
//! How a site runs (that is `melv-site`), KPIs, reports, sockets, clocks.

pub mod builtin;
pub mod calendar;
pub mod config;
pub mod economics;
pub mod error;
pub mod events;
pub mod profile;
pub mod scenario;
pub mod tariff;

pub use error::{ConfigError, CsvError, SimError};
pub use scenario::{AmbientSource, Overrides, Scenario};
