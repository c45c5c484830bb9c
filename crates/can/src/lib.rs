//! # melv-can: the CAN link between M-ELV batteries and their gateway
//!
//! The manual (4.6) wires up to six MS-7K-U batteries and the combiner's gateway into one CAN
//! line through each battery's C1/C2 terminals, and names one alert for the link: 63, "Abnormal
//! Communication Between Battery and Gateway" (6.3). It gives no protocol, so this crate defines
//! one, and makes it a contract that standard tools can read.
//!
//! ## Layers, bottom up
//! * [`frame`]: a checked classic CAN frame (11-bit id, DLC <= 8) and a [`frame::Payload`] view that
//!   reads and writes one little-endian signal, bounds-checked: decoding is total.
//! * [`messages`]: the message table (ids = base + unit 1..=6, DLC, cycle times, signals with
//!   factor, offset and range). [`dbc`] writes `melv.dbc` from it and its tests parse the committed
//!   file back and compare, so the Rust codec and the DBC cannot drift apart.
//! * [`repr`]: one plain `Repr` per message with `parse`/`emit` (the smoltcp `wire` shape); every
//!   refusal is a typed [`repr::DecodeError`] (unknown id, wrong length, malformed: out-of-range
//!   value, undefined enumeration, CRC).
//! * [`node`] ([`node::BatteryNode`]) and [`gateway`] ([`gateway::GatewayNode`]): the two ends,
//!   sans-IO (the quinn-proto shape: `handle_frame(now, frame)`, `poll_transmit(now)`): cycle
//!   scheduling, heartbeat with alive counter and CRC, request repetition and de-duplication,
//!   assembly of a `BatteryStatus` per unit, counting of refused frames, comm-loss supervision
//!   (alert 63 within [`gateway::SILENCE_TIMEOUT_S`], cleared when heard again) and the battery's
//!   own heartbeat timeout ([`node::HEARTBEAT_TIMEOUT_S`]).
//! * [`topology`]: a described wiring checked against manual 4.6, generalised to N batteries, with
//!   the electrical consequence as a frame error rate; [`confinement`] turns error rates into
//!   retransmissions and bus-off exactly as ISO 11898-1 fault confinement does, so a dead bus
//!   silences batteries and the gateway raises 63 by the same path as a pulled cable.
//! * [`busload`]: the load of the protocol with worst-case bit stuffing (6.4 % for six batteries).
//! * [`candump`]: candump log lines, written to any `io::Write` (the simulator's `--can-log`).
//! * [`transport`]: one [`transport::Transport`] trait; in-process bus, socketcand server and
//!   client over TCP (python-can joins with `interface="socketcand"`), Linux SocketCAN behind the
//!   `socketcan` feature. The only module with threads and sockets.
//! * [`demo`]: stand-in batteries for interop tests and for gateway developers (`melv can serve`).
//!
//! ## Architecture invariant
//! The codec and the nodes know no clock, no randomness they were not given, no sockets and no
//! files: time is `now_s` (monotonic seconds) and seeds are arguments, so the simulator can run a
//! year of frames deterministically. This crate knows nothing of batteries' physics, the BMS or the
//! EMS: it carries `melv_core::status` values and decides nothing but protocol validity and
//! communication loss. Only [`transport`] (and [`demo::run`], which drives a transport in real time)
//! touches threads, sockets and the wall clock.
//!
//! ## Conventions
//! Powers and currents keep the system's signs (ARCHITECTURE.md 3): positive = discharging. Signals
//! carry their DBC units (percent, V, A, W, var, degC, Wh); conversions to fractions happen in the
//! nodes.

pub mod busload;
pub mod candump;
pub mod confinement;
pub mod dbc;
pub mod demo;
pub mod frame;
pub mod gateway;
pub mod link;
pub mod messages;
pub mod node;
pub mod repr;
pub mod topology;
pub mod transport;

pub use frame::CanFrame;
pub use gateway::{AddressConflict, GatewayNode, Supervision};
pub use link::{SimLink, StepOutput};
pub use messages::UnitIndex;
pub use node::{Admission, BatteryEvent, BatteryIdentity, BatteryNode, RequestHistory, RxStats};
pub use repr::{DecodeError, Message};
