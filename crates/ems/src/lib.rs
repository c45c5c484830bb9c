//! # melv-ems: the gateway's energy manager
//!
//! The ATMOCE gateway runs the site's working mode for all its MS-7K-U batteries (manual 5.1 and the
//! datasheet's services line, 7.1: self-consumption, time of use, grid ancillary services, off-grid).
//! This crate is that control logic, written to run unchanged in a live gateway and in a year-long
//! simulation: a sans-IO state machine ([`Controller`]) that is stepped once per control cycle with
//! the cycle's measurements and `now` ([`SiteInputs`]) and answers with a [`Decision`]: one
//! [`melv_core::status::BatteryCommand`] per unit, the site status, whether the site is islanded, a
//! PV limit, and a [`Reason`] that says why the batteries do what they do.
//!
//! ## Design
//! * Three layers decide a cycle's site power. Hard safety layers that no mode can override (each
//!   unit's reported limits, the backup reserve, the grid-charging policy, volt-watt); grid-connection
//!   layers met as far as the hard ones allow (import, export and per-phase limits, with PV curtailed
//!   for what cannot be absorbed); and the working mode's wish, with calibration, dispatch and the
//!   frequency responses folded in ([`ongrid`]). The reason is the layer that decided.
//! * Off grid the batteries form the grid (manual 5.1 note: they may then discharge at any time),
//!   down to an off-grid minimum, and the site reconnects after the grid has been stable for a while.
//! * The site's power is shared among units so their SOCs converge ([`share`]).
//! * Settings are validated by one function that the cloud reuses ([`Settings::validate`]); every
//!   error names its field.
//! * Speed: `step` allocates nothing and converts time zones only when a TOU boundary or a
//!   daylight-saving change is due ([`tou::TouSchedule`]). `cargo bench -p melv-ems` measures it.
//!
//! ## Architecture invariant
//! This crate knows no physics (it sees batteries only through their reports), no transport (CAN,
//! HTTP), no files, no system clock and no randomness. It depends on `melv-core` and nothing else of
//! ours. Time is a `now_s` argument; the only calendar knowledge is the site's time zone for TOU.

pub mod config;
pub mod controller;
pub mod grid_services;
pub mod ongrid;
pub mod reason;
pub mod settings;
pub mod share;
pub mod tou;

pub use config::{ConfigError, SiteConfig};
pub use controller::{Controller, Decision, DispatchError, EmsError, ExternalDispatch, SiteInputs};
pub use grid_services::{Curve, Droop, FrequencyWatt, GridServicesSettings, VoltWatt};
pub use reason::Reason;
pub use settings::{BackupSettings, Settings, SettingsError};
pub use share::MAX_UNITS;
pub use tou::{ClockTime, PeriodKind, TouPeriod, TouSettings};
