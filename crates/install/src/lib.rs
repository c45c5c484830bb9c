//! # melv-install: the installer's and the warehouse's rules of the MS-7K-U manual, as functions
//!
//! An installer types what they have in front of them (phases, number of batteries, measured grid
//! voltages, floor or wall) and gets the manual's rules applied; a warehouse types its storage
//! temperatures and gets recharge, inspection and discard dates. The `melv plan` and `melv storage`
//! commands and the cloud's deployment wizard call the same two entry points, so the CLI and the web
//! app cannot disagree:
//!
//! * [`plan()`] ([`PlanRequest`] -> [`Plan`]): wire cross-section and current from appendix 1
//!   ([`wire`]), the CAN cabling and termination plan of 4.6 ([`termination`]), the per-phase grid check
//!   of 4.1.1 ([`grid`]), and mounting and wiring checklists with the torques of 4.3 to 4.10
//!   ([`mounting`]).
//! * [`storage_plan()`] ([`StorageRequest`] -> [`StoragePlan`]): the storage rules of section 3
//!   ([`storage`]): recharge due date by temperature band, pro rata across bands for a temperature log
//!   ([`templog`] reads the CSV), the action at the due date (recharge to 30 % or, after 3 recharges,
//!   discard), inspections every three months and the two-year re-test, and a cross-check of every
//!   band against the physics twin's self-discharge ([`twin`]).
//!
//! Each manual table is a `const` array with the section cited on every row, and every decision the
//! manual leaves open is written where it is made (band edges, month arithmetic, the pro-rata rule,
//! termination for more than two batteries). Outputs are plain `Serialize` structs; invalid input is a
//! typed error ([`PlanError`], [`StorageError`], [`LogError`]) that names the field or the CSV line and
//! the reason. A request that is valid but fails a rule (a phase voltage out of range) is an answer,
//! not an error: the plan marks each phase and says why installation is refused.
//!
//! ## Architecture invariant
//! This crate knows the manual's installation and storage rules and nothing of how they are shown:
//! no printing, no files, no clock (dates such as "today" come in as arguments), no CAN frames and no
//! control logic. It depends on `melv-core` for the datasheet and shared enums and on `melv-model`
//! only for the self-discharge function behind [`twin::SelfDischarge`].

pub mod grid;
pub mod mounting;
pub mod plan;
pub mod recharge;
pub mod storage;
pub mod templog;
pub mod termination;
pub mod twin;
pub mod wire;

pub use grid::{GridCheck, GridInputError, PhaseCheck};
pub use mounting::{ChecklistItem, Mount, MountingChecklist, Torque};
pub use plan::{plan, Plan, PlanError, PlanRequest};
pub use recharge::{
    storage_plan, storage_plan_with, DueAction, History, Status, StoragePlan, StorageRequest,
};
pub use storage::{Band, StorageError, BANDS};
pub use templog::{parse_log, LogError, Reading};
pub use termination::{CanPlan, Endpoint, Resistor, Terminal};
pub use twin::{SelfDischarge, Twin, TwinReport, SAFE_FLOOR_SOC};
pub use wire::WireRecommendation;

/// Re-exported for callers that need today's date at the IO layer.
pub use chrono;
/// Re-exported so that callers (the CLI, the web app) use the same date type without their own
/// dependency.
pub use chrono::NaiveDate;
