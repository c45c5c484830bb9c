//! # melv-core: the shared vocabulary of the M-ELV system
//!
//! Everything that more than one part of the system must agree on lives here, once:
//! the MS-7K-U datasheet (manual 7.1) as typed constants, the alert catalogue of manual 6.3
//! as data, the enums of the product (phases, working modes, site status, LEDs, lifecycle),
//! and the two interfaces that cross the battery unit's boundaries:
//!
//! * [`io`]: what the unit's sensors report to its firmware ([`io::Measurements`]) and what the
//!   firmware drives ([`io::Actuation`]). The physics twin produces the former and obeys the latter;
//!   the BMS sees nothing else, which is how we keep the firmware honest (it never reads true state).
//! * [`status`]: what a battery reports to the gateway ([`status::BatteryStatus`]) and what the
//!   gateway commands ([`status::BatteryCommand`]). The CAN protocol carries exactly these.
//!
//! ## Architecture invariant
//! This crate knows no physics, no control logic, no IO and no clock. It depends on nothing but
//! `serde` and `thiserror`. A number from the manual appears here once, with its citation, and every
//! other crate takes it from here.
//!
//! ## Conventions (ARCHITECTURE.md section 3)
//! Battery power and current are positive when discharging; grid power is positive when importing;
//! PV and load power are never negative. Units are in names: `_w`, `_wh`, `_kwh`, `_v`, `_a`, `_c`, `_s`;
//! `soc` and `soh` are fractions in 0..=1.

pub mod alerts;
pub mod io;
pub mod spec;
pub mod status;
pub mod types;

pub use alerts::{Actor, AlertCode, AlertInfo, AlertSet, CauseGroup, Latch, Severity, Source};
pub use types::{
    Country, GridCharging, Lifecycle, Phases, SiteStatus, SocLed, StatusLed, WorkingMode,
};
