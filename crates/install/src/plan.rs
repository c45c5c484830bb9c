//! The installer's plan: one request in, every rule of manual 4 applied, one answer out.
//!
//! [`plan`] validates the request (phase count, battery count, voltages) and refuses what the manual
//! does not allow with a [`PlanError`] that names the field and the rule. A request that is valid but
//! whose measured grid is out of range is not an error: the plan is returned with the failing phases
//! marked and `installable == false`, so the installer sees every phase's result at once.

use crate::grid::{check_grid, GridCheck, GridInputError};
use crate::mounting::{
    mounting_checklist, wiring_checklist, ChecklistItem, Mount, MountingChecklist,
};
use crate::termination::{can_plan, CanPlan};
use crate::wire::{recommend, WireRecommendation};
use melv_core::Phases;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What the installer (or the web wizard) enters. Counts are signed so that a negative number typed
/// by a user reaches the validation and gets a proper reason instead of a parse failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRequest {
    /// 1 or 3.
    pub phases: i64,
    /// Battery units on the site, 1-3 on single phase, 1-6 on three phase.
    pub batteries: i64,
    /// Measured L-N voltages, one per phase (L, or L1, L2, L3); empty when not yet measured.
    #[serde(default)]
    pub grid_voltages_v: Vec<f64>,
    /// `None`: give the checklists of both mounts.
    #[serde(default)]
    pub mount: Option<Mount>,
}

/// A request the manual does not allow, or that cannot be read.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PlanError {
    #[error("phases: must be 1 (single phase) or 3 (three phase), not {0} (manual 4.1.1)")]
    Phases(i64),
    #[error("batteries: must be at least 1, not {0}")]
    NoBattery(i64),
    #[error("batteries: {batteries} on a {phases} site is more than the {max} the manual allows (appendix 1{table} lists 1-{max} sets)")]
    TooManyBatteries {
        batteries: i64,
        phases: &'static str,
        max: usize,
        table: char,
    },
    #[error(transparent)]
    Grid(#[from] GridInputError),
}

/// The installer's plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub phases: Phases,
    pub batteries: usize,
    pub wire: WireRecommendation,
    pub can: CanPlan,
    /// `None` when no voltages were given.
    pub grid: Option<GridCheck>,
    pub mounting: Vec<MountingChecklist>,
    pub wiring: Vec<ChecklistItem>,
    /// False when a measured phase is out of range (the reasons are in `refusals`).
    pub installable: bool,
    pub refusals: Vec<String>,
    /// What the plan could not check (e.g. no grid voltages given).
    pub pending: Vec<String>,
}

fn phase_name(p: Phases) -> &'static str {
    match p {
        Phases::Single => "single-phase",
        Phases::Three => "three-phase",
    }
}

/// Apply the manual's rules to a request.
pub fn plan(req: &PlanRequest) -> Result<Plan, PlanError> {
    let phases = Phases::from_count(req.phases).map_err(|_| PlanError::Phases(req.phases))?;
    if req.batteries < 1 {
        return Err(PlanError::NoBattery(req.batteries));
    }
    // The appendix tables cover exactly the counts the manual allows (a test in `wire` asserts it),
    // so a missing row is the refusal.
    let max = phases.max_batteries();
    let batteries = req.batteries as usize;
    let wire = recommend(phases, batteries).ok_or(PlanError::TooManyBatteries {
        batteries: req.batteries,
        phases: phase_name(phases),
        max,
        table: if phases == Phases::Single { 'a' } else { 'b' },
    })?;
    let grid = if req.grid_voltages_v.is_empty() {
        None
    } else {
        Some(check_grid(phases, &req.grid_voltages_v)?)
    };
    let mut refusals = Vec::new();
    let mut pending = Vec::new();
    match &grid {
        Some(g) => refusals.extend(g.phases.iter().filter(|p| !p.pass).map(|p| p.reason.clone())),
        None => pending.push("grid voltage not checked: measure L-N at the point of connection and pass it (manual 4.1.1)".to_string()),
    }
    let mounts = match req.mount {
        Some(m) => vec![m],
        None => vec![Mount::Floor, Mount::Wall],
    };
    Ok(Plan {
        phases,
        batteries,
        wire,
        can: can_plan(phases, batteries),
        grid,
        mounting: mounts
            .into_iter()
            .map(|m| mounting_checklist(m, batteries))
            .collect(),
        wiring: wiring_checklist(batteries),
        installable: refusals.is_empty(),
        refusals,
        pending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(phases: i64, batteries: i64, v: &[f64]) -> PlanRequest {
        PlanRequest {
            phases,
            batteries,
            grid_voltages_v: v.to_vec(),
            mount: None,
        }
    }

    /// Ok: (mm², A, installable); Err: the start of the message.
    fn check(r: PlanRequest, expected: Result<(f64, f64, bool), &str>) {
        match (plan(&r), expected) {
            (Ok(p), Ok(want)) => {
                assert_eq!(
                    (
                        p.wire.cross_section_mm2,
                        p.wire.max_current_a,
                        p.installable
                    ),
                    want,
                    "{r:?}"
                );
                assert_eq!(p.can.termination.len(), p.batteries);
            }
            (Err(e), Err(want)) => assert!(e.to_string().starts_with(want), "{r:?}: {e}"),
            (got, want) => panic!("{r:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn counts() {
        check(req(3, 4, &[]), Ok((6.0, 31.9, true)));
        check(req(1, 3, &[]), Ok((10.0, 50.0, true)));
        check(req(3, 6, &[]), Ok((10.0, 47.9, true)));
        check(
            req(1, 4, &[]),
            Err("batteries: 4 on a single-phase site is more than the 3"),
        );
        check(
            req(3, 7, &[]),
            Err("batteries: 7 on a three-phase site is more than the 6"),
        );
        check(req(3, 0, &[]), Err("batteries: must be at least 1, not 0"));
        check(
            req(1, -2, &[]),
            Err("batteries: must be at least 1, not -2"),
        );
        check(req(2, 1, &[]), Err("phases: must be 1 (single phase) or 3"));
        check(req(0, 1, &[]), Err("phases: must be 1"));
    }

    #[test]
    fn grid() {
        check(req(1, 1, &[230.0]), Ok((4.0, 23.8, true)));
        check(req(1, 1, &[290.0]), Ok((4.0, 23.8, false)));
        check(req(3, 2, &[230.0, 175.0, 230.0]), Ok((2.5, 15.9, false)));
        check(
            req(3, 2, &[230.0]),
            Err("grid voltage: three phase needs 3 value(s)"),
        );
    }

    #[test]
    fn refusals_and_pending_explain_themselves() {
        let p = plan(&req(3, 2, &[230.0, 175.0, 280.0])).unwrap();
        assert_eq!(p.refusals.len(), 2);
        assert!(p.refusals[0].starts_with("L2-N 175 V is below"));
        assert!(p.pending.is_empty());
        let p = plan(&req(3, 2, &[])).unwrap();
        assert!(p.grid.is_none() && p.installable && p.pending[0].contains("4.1.1"));
    }

    #[test]
    fn mounts() {
        let mut r = req(3, 2, &[]);
        assert_eq!(plan(&r).unwrap().mounting.len(), 2);
        r.mount = Some(Mount::Wall);
        let p = plan(&r).unwrap();
        assert_eq!(p.mounting.len(), 1);
        assert_eq!(p.mounting[0].wall_load_kg_total, Some(150.0));
    }

    #[test]
    fn request_round_trips_through_json() {
        let r: PlanRequest =
            serde_json::from_str(r#"{"phases":3,"batteries":4,"mount":"floor"}"#).unwrap();
        assert_eq!(
            r,
            PlanRequest {
                phases: 3,
                batteries: 4,
                grid_voltages_v: vec![],
                mount: Some(Mount::Floor)
            }
        );
    }
}
