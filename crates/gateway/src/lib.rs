//! # melv-gateway: the live gateway process
//!
//! The simulator runs the gateway controller against battery twins as fast as it can and keeps the
//! books; this crate runs the *same* controller as a service: in wall-clock time (or N times
//! faster), with the batteries behind the CAN link, publishing what a real gateway publishes and
//! taking settings from the cloud, over MQTT, without losing a record when the link is down.
//!
//! ## Shape
//! * [`site`] ([`site::SiteRuntime`]) is the control loop, sans-IO: one `step()` is one control
//!   cycle (controller -> CAN codec -> battery firmware and physics -> CAN -> controller) and returns
//!   the records it completed: 1-minute telemetry and alert edges. Time is a step counter.
//! * [`record`] is the wire: topic tree, JSON envelope `{schema, gateway, seq, kind, t_utc_s, ...}`,
//!   re-exported from `melv-wire`, which the cloud reads with too.
//! * [`queue`] is the store-and-forward queue: SQLite (WAL) holding every record from the moment it
//!   is made until the broker acknowledges it, allocating gapless sequence numbers in the same
//!   transaction, bounded (oldest dropped, counted).
//! * [`uplink`] decides, sans-IO, what to publish next (live first, backlog behind at a bounded rate,
//!   one window of unacknowledged publishes) and what to make of a settings message.
//! * [`remote`] puts the batteries on a real bus instead: the gateway node on a CAN transport
//!   (socketcand or SocketCAN), and a host of battery twins for the other end (`melv can serve --site`).
//! * [`ha`] builds Home Assistant discovery and state messages.
//! * [`args`] holds the command line (shared by `melv gateway` and the `melv-gateway` binary).
//! * [`runtime`] is the only async code: tokio, rumqttc, signals, the wall clock.
//!
//! ## Delivery guarantee
//! At least once, per record, across broker outages, gateway restarts and `kill -9`: a record is on
//! disk before it is published and leaves the disk only on its PUBACK. Duplicates are possible (a
//! PUBACK lost with the connection, a crash between PUBACK and delete) and are removed by the
//! consumer keyed on `(gateway, seq)`, which is unique and gapless by construction.
//!
//! ## Architecture invariant
//! This crate decides nothing about energy: no working-mode logic, no protection thresholds, no
//! battery physics. The controller is `melv-ems`, the batteries are `melv-unit`, the bus is
//! `melv-can`, the cycle is `melv-site`'s and the site file `melv-scenario`'s. It never knows the cloud's database or HTTP
//! API: its contract with the cloud is the topic tree and record schema of `melv-wire` (`docs/gateway.md`). Only
//! [`runtime`] knows tokio, sockets and the clock; only [`queue`] knows SQL.

pub mod args;
pub mod claim;
pub mod ha;
pub mod queue;
pub mod record;
pub mod remote;
pub mod runtime;
pub mod site;
pub mod twins;
pub mod uplink;

pub use args::GatewayArgs;
pub use queue::{Queue, QueueError};
pub use record::{Envelope, Record, Topics};
pub use runtime::{run, run_blocking, RunError, Summary};
pub use site::{SiteError, SiteRuntime};
