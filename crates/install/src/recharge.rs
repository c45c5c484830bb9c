//! The storage plan of one battery: due date, what to do then, inspections, re-test, flags, and the
//! twin's cross-check. The rules and decisions are in [`crate::storage`]; this module assembles them.

use crate::mounting::ChecklistItem;
use crate::storage::{
    add_months, interval, BandUsage, Flag, StorageError, INSPECTION_MONTHS, MAX_RECHARGES,
    RECHARGE_TARGET_SOC, RETEST_MONTHS,
};
use crate::templog::Reading;
use crate::twin::{report, SelfDischarge, Twin, TwinReport};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The temperatures the battery has seen since the interval start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum History {
    /// One storage temperature since `since` (the last recharge, or the start of storage).
    Constant { temp_c: f64, since: NaiveDate },
    /// A log of readings, sorted by strictly increasing date; the first reading starts the interval.
    Log { readings: Vec<Reading> },
}

/// A storage question, as the CLI or the web wizard asks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageRequest {
    pub history: History,
    /// Recharges already done during storage (manual 3 allows at most 3).
    #[serde(default)]
    pub recharges_done: i64,
    /// When the battery entered storage, for inspections and the two-year re-test; by default the
    /// interval start.
    #[serde(default)]
    pub stored_since: Option<NaiveDate>,
    /// The date to evaluate the status on; by default none for a constant history and the last reading
    /// for a log.
    #[serde(default)]
    pub as_of: Option<NaiveDate>,
}

/// What to do when the interval is used up.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum DueAction {
    /// Recharge to the target (manual 3: 30 % SOC); this is recharge `number` of at most `max`.
    Recharge {
        target_soc: f64,
        number: u32,
        max: u32,
    },
    /// The manual's maximum of 3 recharges is used up: discarding is recommended (manual 3).
    Discard { reason: String },
}

/// The battery's state on `as_of`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Status {
    /// Within the storage time: no recharge needed (manual 3 note).
    WithinStorageTime { days_left: i64 },
    /// The storage time is exceeded: recharge as soon as possible (manual 3 note).
    RechargeDue { days_overdue: i64 },
    /// The storage time is exceeded and no recharge is left (or more than 3 were done).
    DiscardRecommended { days_overdue: i64 },
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoragePlan {
    pub interval_start: NaiveDate,
    pub stored_since: NaiveDate,
    /// The consumption rule, in words.
    pub rule: &'static str,
    pub band_usage: Vec<BandUsage>,
    pub recharge_due: NaiveDate,
    pub action_at_due: DueAction,
    pub recharge_target_soc: f64,
    pub recharges_done: u32,
    pub max_recharges: u32,
    /// Inspections (every 3 months from `stored_since`, manual 3) between the interval start and the
    /// due date.
    pub inspections: Vec<NaiveDate>,
    /// Two years from `stored_since`: inspection and test by qualified personnel before use (manual 3).
    pub retest_due: NaiveDate,
    pub as_of: Option<NaiveDate>,
    /// Fraction of the interval consumed on `as_of` (may exceed 1 once overdue).
    pub consumed_fraction: Option<f64>,
    pub status: Option<Status>,
    pub next_inspection: Option<NaiveDate>,
    /// Temperatures outside the storage range.
    pub flags: Vec<Flag>,
    /// Other things the warehouse must know (re-test reached, recharges exceeded).
    pub notices: Vec<String>,
    /// How the battery must be kept (manual 3, 6.4).
    pub conditions: Vec<ChecklistItem>,
    pub twin: TwinReport,
}

/// The storage conditions of manual section 3 (and the inspection content of 6.4).
pub fn storage_conditions() -> Vec<ChecklistItem> {
    let item = |text: &str, section| ChecklistItem {
        text: text.to_string(),
        section,
    };
    vec![
        item("Do not remove the outer packaging.", "3"),
        item("Keep the storage temperature within -20 °C to +55 °C.", "3"),
        item("Keep the relative humidity between 4 % RH and 100 % RH.", "3"),
        item("Store in a clean and dry place, away from dust and moisture.", "3"),
        item("Stack no more than 7 layers high; place boxes carefully so they cannot tip over.", "3"),
        item("Inspect every three months: no electrolyte leakage, thermal abnormality or signs of ignition.", "3, 6.4"),
    ]
}

/// The rule of [`crate::storage`], for the report.
pub const RULE: &str = "pro rata: each day at temperature t consumes 1/A of the interval, A = the storage time of t's band (manual 3) in days counted as calendar months from the interval start; due on the first day the sum reaches 1";

/// Upper bound on the inspection series we walk (100 years of quarterly inspections).
const MAX_INSPECTIONS: u32 = 400;

/// Plan with the physics twin.
pub fn storage_plan(req: &StorageRequest) -> Result<StoragePlan, StorageError> {
    storage_plan_with(req, &Twin)
}

/// Plan with any self-discharge model.
pub fn storage_plan_with(
    req: &StorageRequest,
    model: &dyn SelfDischarge,
) -> Result<StoragePlan, StorageError> {
    if req.recharges_done < 0 {
        return Err(StorageError::Recharges(req.recharges_done));
    }
    let recharges_done = u32::try_from(req.recharges_done)
        .map_err(|_| StorageError::Recharges(req.recharges_done))?;
    let (readings, default_as_of) = match &req.history {
        History::Constant { temp_c, since } => (
            vec![Reading {
                line: None,
                date: *since,
                temp_c: *temp_c,
            }],
            None,
        ),
        History::Log { readings } => (readings.clone(), readings.last().map(|r| r.date)),
    };
    let iv = interval(&readings)?;
    let stored_since = req.stored_since.unwrap_or(iv.start);
    if stored_since > iv.start {
        return Err(StorageError::StoredSinceAfterStart {
            stored_since,
            start: iv.start,
        });
    }
    let action_at_due = if recharges_done < MAX_RECHARGES {
        DueAction::Recharge {
            target_soc: RECHARGE_TARGET_SOC,
            number: recharges_done + 1,
            max: MAX_RECHARGES,
        }
    } else {
        DueAction::Discard {
            reason: format!("{recharges_done} recharges done; the maximum is {MAX_RECHARGES}: discarding is recommended (manual 3)"),
        }
    };
    let mut inspections = Vec::new();
    let as_of = req.as_of.or(default_as_of);
    let mut next_inspection = None;
    for k in 1..=MAX_INSPECTIONS {
        let d = add_months(stored_since, k * INSPECTION_MONTHS)?;
        if d > iv.start && d <= iv.due {
            inspections.push(d);
        }
        if next_inspection.is_none() && as_of.is_some_and(|a| d >= a) {
            next_inspection = Some(d);
        }
        if d > iv.due && (as_of.is_none() || next_inspection.is_some()) {
            break;
        }
    }
    let retest_due = add_months(stored_since, RETEST_MONTHS)?;
    let mut notices = Vec::new();
    if recharges_done > MAX_RECHARGES {
        notices.push(format!(
            "{recharges_done} recharges exceed the maximum of {MAX_RECHARGES}: discarding is recommended (manual 3)"
        ));
    }
    // The re-test matters if it falls within this interval, or has already passed on `as_of`.
    if retest_due <= iv.due || as_of.is_some_and(|a| a >= retest_due) {
        notices.push(format!(
            "two years in storage on {retest_due}: before use the battery must be inspected and tested by qualified personnel (manual 3)"
        ));
    }
    let status = as_of.map(|a| {
        let days = (a - iv.due).num_days();
        if days < 0 {
            Status::WithinStorageTime { days_left: -days }
        } else if recharges_done >= MAX_RECHARGES {
            Status::DiscardRecommended { days_overdue: days }
        } else {
            Status::RechargeDue { days_overdue: days }
        }
    });
    let twin = report(model, &iv.stretches, iv.allowance_days);
    Ok(StoragePlan {
        interval_start: iv.start,
        stored_since,
        rule: RULE,
        band_usage: iv.usage.clone(),
        recharge_due: iv.due,
        action_at_due,
        recharge_target_soc: RECHARGE_TARGET_SOC,
        recharges_done,
        max_recharges: MAX_RECHARGES,
        inspections,
        retest_due,
        as_of,
        consumed_fraction: as_of.map(|a| iv.consumed_by(a)),
        status,
        next_inspection,
        flags: iv.flags.clone(),
        notices,
        conditions: storage_conditions(),
        twin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    struct NoLoss;
    impl SelfDischarge for NoLoss {
        fn name(&self) -> &'static str {
            "none"
        }
        fn fraction_per_day(&self, _: f64) -> f64 {
            0.0
        }
        fn soc_after(&self, s: f64, _: f64, _: f64) -> f64 {
            s
        }
    }

    fn constant(temp_c: f64, since: &str, recharges: i64, as_of: Option<&str>) -> StorageRequest {
        StorageRequest {
            history: History::Constant {
                temp_c,
                since: date(since),
            },
            recharges_done: recharges,
            stored_since: None,
            as_of: as_of.map(date),
        }
    }

    /// Expected: (due date, status) or the start of the error message.
    fn check(req: StorageRequest, expected: Result<(&str, Option<Status>), &str>) {
        match (storage_plan_with(&req, &NoLoss), expected) {
            (Ok(p), Ok((due, status))) => {
                assert_eq!(p.recharge_due, date(due), "{req:?}");
                assert_eq!(p.status, status, "{req:?}");
            }
            (Err(e), Err(want)) => assert!(e.to_string().starts_with(want), "{e}"),
            (got, want) => panic!("{req:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn every_band_from_the_cli_example_date() {
        check(
            constant(30.0, "2026-01-01", 0, None),
            Ok(("2026-10-01", None)),
        );
        check(
            constant(25.0, "2026-01-01", 0, None),
            Ok(("2027-04-01", None)),
        );
        check(
            constant(-20.0, "2026-01-01", 0, None),
            Ok(("2027-04-01", None)),
        );
        check(
            constant(35.0, "2026-01-01", 0, None),
            Ok(("2026-10-01", None)),
        );
        check(
            constant(45.0, "2026-01-01", 0, None),
            Ok(("2026-07-01", None)),
        );
        check(
            constant(55.0, "2026-01-01", 0, None),
            Ok(("2026-04-01", None)),
        );
    }

    #[test]
    fn status_on_a_date() {
        use Status::*;
        check(
            constant(30.0, "2026-01-01", 0, Some("2026-09-30")),
            Ok(("2026-10-01", Some(WithinStorageTime { days_left: 1 }))),
        );
        check(
            constant(30.0, "2026-01-01", 0, Some("2026-10-01")),
            Ok(("2026-10-01", Some(RechargeDue { days_overdue: 0 }))),
        );
        check(
            constant(30.0, "2026-01-01", 2, Some("2026-10-11")),
            Ok(("2026-10-01", Some(RechargeDue { days_overdue: 10 }))),
        );
        check(
            constant(30.0, "2026-01-01", 3, Some("2026-10-11")),
            Ok(("2026-10-01", Some(DiscardRecommended { days_overdue: 10 }))),
        );
        check(
            constant(30.0, "2026-01-01", 3, Some("2026-02-01")),
            Ok(("2026-10-01", Some(WithinStorageTime { days_left: 242 }))),
        );
    }

    #[test]
    fn refusals() {
        check(
            constant(30.0, "2026-01-01", -1, None),
            Err("recharges: must be 0 or more, not -1"),
        );
        check(
            constant(300.0, "2026-01-01", 0, None),
            Err("temp-c: 300 °C is not a plausible"),
        );
        let mut r = constant(30.0, "2026-01-01", 0, None);
        r.stored_since = Some(date("2026-02-01"));
        check(
            r,
            Err("stored-since 2026-02-01 is after the start of the interval 2026-01-01"),
        );
        let r = StorageRequest {
            history: History::Log { readings: vec![] },
            recharges_done: 0,
            stored_since: None,
            as_of: None,
        };
        check(r, Err("the temperature log has no readings"));
    }

    #[test]
    fn recharge_count_decides_the_action() {
        let p = storage_plan_with(&constant(20.0, "2026-01-01", 0, None), &NoLoss).unwrap();
        assert_eq!(
            p.action_at_due,
            DueAction::Recharge {
                target_soc: 0.30,
                number: 1,
                max: 3
            }
        );
        let p = storage_plan_with(&constant(20.0, "2026-01-01", 2, None), &NoLoss).unwrap();
        assert_eq!(
            p.action_at_due,
            DueAction::Recharge {
                target_soc: 0.30,
                number: 3,
                max: 3
            }
        );
        let p = storage_plan_with(&constant(20.0, "2026-01-01", 3, None), &NoLoss).unwrap();
        assert!(matches!(p.action_at_due, DueAction::Discard { .. }));
        assert!(p.notices.is_empty());
        let p = storage_plan_with(&constant(20.0, "2026-01-01", 4, None), &NoLoss).unwrap();
        assert!(p.notices[0].starts_with("4 recharges exceed the maximum of 3"));
    }

    #[test]
    fn inspections_every_three_months_and_retest_after_two_years() {
        let p = storage_plan_with(&constant(20.0, "2026-01-01", 0, None), &NoLoss).unwrap();
        let want: Vec<NaiveDate> = [
            "2026-04-01",
            "2026-07-01",
            "2026-10-01",
            "2027-01-01",
            "2027-04-01",
        ]
        .map(date)
        .to_vec();
        assert_eq!(p.inspections, want);
        assert_eq!(p.retest_due, date("2028-01-01"));
        assert!(p.notices.is_empty());
        // Stored since 2024-06-15, last recharge 2026-01-01: the series keeps its own phase and the
        // two-year mark (2026-06-15) falls inside this interval.
        let mut r = constant(30.0, "2026-01-01", 1, Some("2026-05-01"));
        r.stored_since = Some(date("2024-06-15"));
        let p = storage_plan_with(&r, &NoLoss).unwrap();
        assert_eq!(
            p.inspections,
            ["2026-03-15", "2026-06-15", "2026-09-15"]
                .map(date)
                .to_vec()
        );
        assert_eq!(p.next_inspection, Some(date("2026-06-15")));
        assert_eq!(p.retest_due, date("2026-06-15"));
        assert!(p.notices[0].starts_with("two years in storage on 2026-06-15"));
        // A re-test date after the due date but already passed on `as_of` is still reported.
        let mut r = constant(50.0, "2026-01-01", 0, Some("2026-07-01"));
        r.stored_since = Some(date("2024-06-15"));
        let p = storage_plan_with(&r, &NoLoss).unwrap();
        assert_eq!(p.recharge_due, date("2026-04-01"));
        assert!(p.notices[0].starts_with("two years in storage on 2026-06-15"));
    }

    #[test]
    fn log_defaults_as_of_to_the_last_reading() {
        let readings = vec![
            Reading {
                line: Some(1),
                date: date("2026-01-01"),
                temp_c: 50.0,
            },
            Reading {
                line: Some(2),
                date: date("2026-02-15"),
                temp_c: 20.0,
            },
        ];
        let r = StorageRequest {
            history: History::Log { readings },
            recharges_done: 0,
            stored_since: None,
            as_of: None,
        };
        let p = storage_plan_with(&r, &NoLoss).unwrap();
        assert_eq!(p.recharge_due, date("2026-10-01"));
        assert_eq!(p.as_of, Some(date("2026-02-15")));
        assert!((p.consumed_fraction.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(p.status, Some(Status::WithinStorageTime { days_left: 228 }));
        assert_eq!(p.twin.estimated_soc_at_due, 0.30);
    }

    #[test]
    fn the_twin_agrees_with_every_band() {
        // With the real twin, a battery kept at each band's temperatures until the due date still
        // holds a safe charge, for every band edge.
        for t in [-20.0, 0.0, 25.0, 25.5, 30.0, 35.0, 40.0, 45.0, 50.0, 55.0] {
            let p = storage_plan(&constant(t, "2026-01-01", 0, None)).unwrap();
            assert!(p.twin.ok, "{t} °C: {:?}", p.twin);
            assert!(
                p.twin.estimated_soc_at_due > crate::SAFE_FLOOR_SOC,
                "{t} °C: {:?}",
                p.twin
            );
            assert!(
                p.twin.estimated_soc_at_due < RECHARGE_TARGET_SOC,
                "{t} °C: {:?}",
                p.twin
            );
        }
    }

    #[test]
    fn request_reads_from_json() {
        let r: StorageRequest = serde_json::from_str(
            r#"{"history":{"kind":"constant","temp_c":30,"since":"2026-01-01"},"recharges_done":1}"#,
        )
        .unwrap();
        assert_eq!(r, constant(30.0, "2026-01-01", 1, None));
    }
}
