//! # melv-modbus: the gateway's local control API, SunSpec over Modbus TCP
//!
//! Home-energy tools (Home Assistant, evcc, OpenEMS, EMHASS) and SCADAs speak SunSpec Modbus. This
//! crate makes the M-ELV gateway one standard SunSpec device: the marker "SunS" at 40000, then the
//! models 1 (common), 701 (DER AC measurement), 702 (DER capacity), 704 (DER AC controls), 713 (DER
//! storage capacity), 802 (battery base) and 124 (basic storage controls, for older clients), three
//! 203 meters (grid connection, PV, load), the DER curves 705, 706 and 711 (read-only), one 802 per
//! battery unit, then the end model.
//!
//! ## Design
//! * The register layout is built at start-up from the official SunSpec JSON model definitions
//!   (`models/`, copied from the `pysunspec2` package) by [`model`]: no offset is written by hand.
//!   [`map::SunSpecMap`] is the register image with SunSpec encoding (types, "not implemented"
//!   values, scale factors, model boundaries).
//! * [`device::SunSpecDevice`] is sans-IO: the gateway calls `update(now_s, &SiteSnapshot)` once per
//!   control cycle and reads `control()`; the server calls `read` and `write` per request. Writes
//!   become typed [`control::ExternalCommand`]s; [`control::ControlState`] keeps those in force and
//!   ends them by the models' revert timers and a communication watchdog, with `now_s` passed in.
//! * [`ems::EmsBridge`] applies the external controls to the energy manager through the same
//!   validation and safety layers as every other command (settings validation, dispatch), so a
//!   client can ask for anything and gets what is safe, with the EMS's reason published.
//! * [`pdu`] is the Modbus TCP framing and request handling (function codes 3, 4, 6, 16 and
//!   exceptions 01, 02, 03, 04, 0B), sans-IO; [`server`] puts it on tokio sockets, one task per
//!   client, so one misbehaving client never stops the others.
//!
//! ## Architecture invariant
//! Everything but [`server`] is sans-IO: no sockets, no clock, no threads, no files (the model
//! definitions are compiled in). This crate knows no physics and no CAN: it sees the site only
//! through [`values::SiteSnapshot`] (the units' [`melv_core::status::BatteryStatus`] reports and the
//! EMS's decision), and it commands the site only through [`melv_ems::Controller`]'s public inputs.
//! It never decides a battery power itself.
//!
//! ## Conventions
//! SunSpec DER power is positive for generation, which is our battery sign (ARCHITECTURE.md 3:
//! positive = discharging). Scale factors are published in the models' `*_SF` points ([`values`]).

pub mod control;
pub mod device;
pub mod ems;
pub mod map;
pub mod model;
pub mod pdu;
pub mod server;
pub mod values;

#[cfg(test)]
mod device_tests;
#[cfg(test)]
mod ems_tests;
#[cfg(test)]
mod map_tests;

pub use control::{
    Busy, ClientId, ControlState, ExternalCommand, ExternalControl, InverterState, WatchdogConfig,
};
pub use device::SunSpecDevice;
pub use ems::{Applied, EmsBridge};
pub use map::{MapError, SunSpecMap, SUNSPEC_BASE};
pub use server::{serve, Clock, ServerConfig, SharedDevice};
pub use values::{Meters, Nameplate, SiteSnapshot};
