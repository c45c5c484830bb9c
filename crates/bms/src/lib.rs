//! # melv-bms: the firmware logic of one MS-7K-U battery unit
//!
//! This crate is what runs on the unit's controller: the battery management system (SOC and SOH
//! estimation, top balancing, charge and discharge limits, fan and heater control, the protections
//! behind alert codes 50-60, 62 and 64), the inverter's grid protection (codes 2-7, 13, 18, with
//! anti-islanding and timed reconnection from a country profile), the LEDs of manual 6.1 and the
//! unit's lifecycle (off, standby, active, fault, latched fault; activation, "reset the system",
//! shut down and power on, power cycles with what survives them in [`Nvm`]).
//!
//! ## Shape
//! [`Firmware`] is a sans-IO state machine in the manner of quinn-proto's `Connection`: inputs
//! arrive through [`Firmware::handle_request`] (app), [`Firmware::handle_command`] (gateway setpoint
//! and heartbeat) and [`Firmware::step`] (one control cycle with a sensor sample), each with the
//! caller's monotonic `now_s`; outputs are the [`Actuation`](melv_core::io::Actuation) returned by
//! `step` and the [`BatteryStatus`](melv_core::status::BatteryStatus) of [`Firmware::status`]. Every
//! delay, rate and ramp is a function of `now_s` differences, so the same code runs at 0.1 s
//! cadence on hardware and at 1 s to 1 h steps in a year-long simulation.
//!
//! Inside, one cycle is: derive the protection signals from the measurement ([`protect::Signal`]),
//! evaluate the one protection table ([`protect::TABLE`]) and the grid protection ([`grid`]),
//! decide the lifecycle, update the estimators ([`estimate`]), compute the limits as the minimum
//! of every constraint with cuts at once and recovery on a ramp ([`limits`]), clamp the gateway's
//! order to them, and drive the fan, heater and balancing ([`thermal`]). Severity and latch kind of
//! every code come from `melv_core::alerts::CATALOGUE`, never from this crate.
//!
//! ## Architecture invariant
//! The firmware knows only what a real unit's controller can know: `Measurements` (noisy cell
//! voltages, pack voltage and current, four cell NTCs, inlet temperature, fan tach, heater current,
//! AC measurements, insulation monitor, the power stage's fault flag), the gateway's commands and
//! the app's requests. It never sees the physics twin's true state, and it depends on no other
//! crate of the workspace than `melv-core`. No clock, no randomness, no IO, no allocation in
//! [`Firmware::step`].

mod codes;
mod config;
pub mod estimate;
mod firmware;
pub mod grid;
pub mod limits;
pub mod protect;
pub mod thermal;

pub use config::{FirmwareConfig, Nvm, NVM_SOC_TRUST_S};
pub use firmware::{Firmware, COMMAND_TIMEOUT_S};
pub use grid::{GridProfile, ProfileError};
