//! # melv-sim: what the M-ELV system does at a real site, over a year, in a second
//!
//! A user describes a site in one TOML file (batteries, phases, country, working mode, tariff, the
//! load/PV profile, a schedule of injected events); the simulator runs the *real* gateway controller
//! (`melv-ems`) against the *real* battery units (`melv-unit`: the physics twin driven by its
//! firmware) through the profile, step by step, and accounts for every watt-hour.
//!
//! ## Shape
//! * [`config`] is the TOML schema (serde, unknown keys refused); [`scenario`] reads the files it
//!   names and runs every check, ours and the controller's, so that a [`scenario::Scenario`] is a run
//!   that can only succeed. It is the only module that touches the file system.
//! * [`profile`] holds the load/PV series and answers "mean power over `[t0, t1)`" from cumulative
//!   energy, so any step from 1 s to 1 h keeps the profile's energy exactly.
//! * [`tariff`] compiles flat, TOU (site-local time, daylight saving handled once) or price-series
//!   tariffs into UTC segments walked by a cursor; [`events`] is the schedule of injected events.
//! * [`runner`] is the loop: environment, controller, units, site balance; [`kpi`] sums the balance
//!   and bins it for plots; [`years`] closes one KPI record per run year; [`economics`] turns the
//!   years into cash flows (NPV, payback, IRR, LCOS); [`timeseries`] aggregates the steps for
//!   `--timeseries` (the CLI writes the file); [`report`] renders a standalone HTML page with inline
//!   SVG charts.
//!
//! ## Invariants
//! * Every run closes its energy accounts (ARCHITECTURE.md 3): on the AC side
//!   `pv_used + import + discharge = load_served + export + charge`, where the battery terms come
//!   from the units' own ledgers; on the DC side each unit's ledger closes with its losses. Both
//!   errors are KPIs, printed in the table and the report, and asserted in tests.
//! * Runs are deterministic: time is the step counter, randomness lives in the units, seeded from
//!   the scenario's seed and each unit's index.
//! * The controller sees only what a gateway sees: the meter reading of the previous step, PV and
//!   load, and each unit's *reported* status. The units' true state is read for KPIs only (SOH).
//!
//! ## Architecture invariant
//! The simulator never decides anything a gateway or a battery decides: it holds no control logic, no
//! battery physics and no protection thresholds. It changes the world (grid, ambient, hardware
//! faults) and keeps the books; every alert in its output was raised by firmware or the gateway.
//! Nothing above it (CLI, server) is known here; plots are strings, files are read only in
//! [`scenario`].

pub mod economics;
pub mod kpi;
pub mod report;
mod report_years;
pub mod runner;
pub mod timeseries;
pub mod years;

// The site files and their checks live in `melv-scenario`, shared with the live gateway; they are
// re-exported here so a simulator user needs one crate.
pub use melv_scenario::{config, error, events, profile, scenario, tariff};
pub use melv_scenario::{ConfigError, CsvError, SimError};
