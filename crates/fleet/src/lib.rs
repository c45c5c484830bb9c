//! # melv-fleet: many sites, on all cores and across machines
//!
//! `melv simulate` answers "what does this do for one home"; an operator asks it of a fleet. A
//! fleet file names site templates (site TOMLs or built-in examples) and distributions over them
//! (battery count, phases, country, working mode, tariff, load and PV scale, initial state of
//! health), and site `i` is drawn from its own seed. Every site runs through the simulator's own
//! loop (`melv_sim::runner::run_on`); what it keeps is one row of KPIs.
//!
//! ## Shape
//! * [`config`] is the fleet TOML (serde, unknown keys refused, bounds on everything); [`fleet`]
//!   builds it from a [`fleet::Bundle`] (the fleet file and every file it names, as bytes), reads the
//!   templates, compiles tariffs and checks every combination a site can draw against the
//!   controller's own validation, so that no site fails late.
//! * [`run`] runs one site ([`fleet::Fleet::run_site`]) and many with rayon, rows out through a
//!   bounded channel; [`summary`] turns rows into the fleet's distributions; [`output`] writes rows
//!   as CSV and Parquet; [`report`] renders the HTML report with a histogram per KPI.
//! * [`nats`] is the distributed mode: tasks of a few sites on a JetStream work queue, results on a
//!   result stream keyed by (run, chunk), the bundle in the object store; [`cli`] is the command line.
//!
//! ## Invariants
//! * Determinism: a site's row depends on the bundle and its index only. Its draws come from a
//!   ChaCha8 generator seeded with [`fleet::site_seed`], which also seeds its units; no clock, no
//!   thread id, no order. One thread or many, shuffled or not, local or on NATS workers: the same
//!   rows, bit for bit (tests/determinism.rs and scripts/fleet-nats-test.sh check it).
//! * Bounded memory: a site's time series live only while it runs (one per thread); a fleet keeps a
//!   row per site (a few hundred bytes, at most [`config::MAX_SITES`] sites).
//! * Counted once: in the distributed mode a site's row is taken from the first result that carries
//!   it; redelivered tasks and republished results change nothing.
//!
//! ## Never knows
//! Any decision a battery or a gateway makes, physics, or a site's rules: those are the simulator's
//! crates'. Only [`cli`] and [`nats`] touch files, sockets and clocks.

pub mod cli;
pub mod config;
pub mod fleet;
pub mod nats;
pub mod output;
pub mod report;
pub mod run;
pub mod summary;

pub use fleet::{Bundle, Fleet, FleetError};
pub use run::SiteRow;
