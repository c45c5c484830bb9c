//! Power and CAN cable recommendations: manual 4.1.2 and the two tables of appendix 1.
//!
//! The appendix gives, per number of battery sets on one combiner, the maximum current on the shared
//! power cable and the recommended copper cross-section. The rows are data ([`SINGLE_PHASE_TABLE`],
//! [`THREE_PHASE_TABLE`]); the lookup only chooses the row. Section 4.1.2 recommends 6 to 10 mm² for the
//! power cable in general, while the appendix allows 2.5 or 4 mm² for small systems: we report the
//! appendix row (it is specific to the battery count) and add 4.1.2's general recommendation as a note,
//! together with the appendix note that local rules may require a larger section.

use melv_core::Phases;
use serde::Serialize;

/// One row of an appendix 1 table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WireRow {
    /// Number of battery sets sharing the power cable.
    pub sets: usize,
    /// Maximum current on the cable, A.
    pub max_current_a: f64,
    /// Recommended copper cross-section, mm².
    pub cross_section_mm2: f64,
}

const fn row(sets: usize, max_current_a: f64, cross_section_mm2: f64) -> WireRow {
    WireRow {
        sets,
        max_current_a,
        cross_section_mm2,
    }
}

/// Manual appendix 1, table a ("single-phase mode"): 1 set 23.8 A 4 mm², 2 sets 47.6 A 10 mm²,
/// 3 sets 50 A 10 mm². The 3-set row is not 3 x 23.8 A: the manual caps it at 50 A without saying why
/// (a 50 A combiner breaker is the likely reason); we keep the manual's figure.
pub const SINGLE_PHASE_TABLE: [WireRow; 3] = [
    row(1, 23.8, 4.0),  // manual appendix 1a, row 1
    row(2, 47.6, 10.0), // manual appendix 1a, row 2
    row(3, 50.0, 10.0), // manual appendix 1a, row 3
];

/// Manual appendix 1, table b ("three-phase mode"), current per line conductor.
pub const THREE_PHASE_TABLE: [WireRow; 6] = [
    row(1, 7.9, 2.5),   // manual appendix 1b, row 1
    row(2, 15.9, 2.5),  // manual appendix 1b, row 2
    row(3, 23.9, 4.0),  // manual appendix 1b, row 3
    row(4, 31.9, 6.0),  // manual appendix 1b, row 4
    row(5, 39.9, 10.0), // manual appendix 1b, row 5
    row(6, 47.9, 10.0), // manual appendix 1b, row 6
];

/// The appendix table for a phase setup.
pub fn table(phases: Phases) -> &'static [WireRow] {
    match phases {
        Phases::Single => &SINGLE_PHASE_TABLE,
        Phases::Three => &THREE_PHASE_TABLE,
    }
}

/// The power and CAN cable recommendation for one site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WireRecommendation {
    /// Which table the row comes from ("manual appendix 1a" or "1b").
    pub source: &'static str,
    pub sets: usize,
    /// Maximum current on the shared power cable, A (per line conductor for three phase).
    pub max_current_a: f64,
    /// Recommended copper cross-section of the power cable, mm².
    pub cross_section_mm2: f64,
    /// The power cable's construction (manual 4.1.2).
    pub power_cable: &'static str,
    /// The CAN communication cable's construction (manual 4.1.2).
    pub can_cable: &'static str,
    /// Notes that qualify the figures (local rules, 4.1.2 versus the appendix).
    pub notes: Vec<String>,
}

/// Manual 4.1.2, "Power cable": 5-core (3*L+N+PE), 450/750 V, copper, rated for at least 90 °C.
pub const POWER_CABLE: &str =
    "5-core (3*L+N+PE), 450/750 V, copper core, max. operating temperature not less than 90 °C";
/// Manual 4.1.2, "CAN COM cable": 0.2 to 0.5 mm², 3-core, 300 V, shielded.
pub const CAN_CABLE: &str = "0.2 to 0.5 mm², 3-core, 300 V, three-core shielded";
/// Manual 4.1.2: general power cable recommendation 6 to 10 mm².
pub const POWER_CABLE_GENERAL_MM2: (f64, f64) = (6.0, 10.0);

/// The appendix row for `sets` batteries, or `None` when the table has no such row (0 sets, or more
/// than the phase setup allows). Callers validate the count first and give the reason.
pub fn recommend(phases: Phases, sets: usize) -> Option<WireRecommendation> {
    let row = table(phases).iter().find(|r| r.sets == sets)?;
    let source = match phases {
        Phases::Single => "manual appendix 1a (single-phase mode)",
        Phases::Three => "manual appendix 1b (three-phase mode)",
    };
    let mut notes = vec![
        // Manual appendix 1, NOTE.
        "The wire diameter can be adjusted according to local regulations and installation conditions; local rules may require a larger cross-section (manual appendix 1, note).".to_string(),
        "Copper core cable with a maximum allowable operating temperature of no less than 90 °C (manual appendix 1, note).".to_string(),
    ];
    let (lo, hi) = POWER_CABLE_GENERAL_MM2;
    if row.cross_section_mm2 < lo {
        notes.push(format!(
            "Manual 4.1.2 recommends {lo} to {hi} mm² for the power cable in general; {} mm² is the appendix minimum for {sets} set(s).",
            row.cross_section_mm2
        ));
    }
    Some(WireRecommendation {
        source,
        sets,
        max_current_a: row.max_current_a,
        cross_section_mm2: row.cross_section_mm2,
        power_cable: POWER_CABLE,
        can_cable: CAN_CABLE,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(phases: Phases, sets: usize, expected: Option<(f64, f64)>) {
        let got = recommend(phases, sets).map(|r| (r.max_current_a, r.cross_section_mm2));
        assert_eq!(got, expected, "{phases:?} x {sets}");
    }

    #[test]
    fn every_row_of_appendix_1a() {
        check(Phases::Single, 0, None);
        check(Phases::Single, 1, Some((23.8, 4.0)));
        check(Phases::Single, 2, Some((47.6, 10.0)));
        check(Phases::Single, 3, Some((50.0, 10.0)));
        check(Phases::Single, 4, None);
    }

    #[test]
    fn every_row_of_appendix_1b() {
        check(Phases::Three, 0, None);
        check(Phases::Three, 1, Some((7.9, 2.5)));
        check(Phases::Three, 2, Some((15.9, 2.5)));
        check(Phases::Three, 3, Some((23.9, 4.0)));
        check(Phases::Three, 4, Some((31.9, 6.0)));
        check(Phases::Three, 5, Some((39.9, 10.0)));
        check(Phases::Three, 6, Some((47.9, 10.0)));
        check(Phases::Three, 7, None);
    }

    #[test]
    fn tables_cover_exactly_the_allowed_counts() {
        for phases in [Phases::Single, Phases::Three] {
            let sets: Vec<usize> = table(phases).iter().map(|r| r.sets).collect();
            let expected: Vec<usize> = (1..=phases.max_batteries()).collect();
            assert_eq!(sets, expected, "{phases:?}");
        }
    }

    #[test]
    fn current_and_section_never_decrease_with_sets() {
        for phases in [Phases::Single, Phases::Three] {
            for w in table(phases).windows(2) {
                assert!(w[1].max_current_a > w[0].max_current_a, "{w:?}");
                assert!(w[1].cross_section_mm2 >= w[0].cross_section_mm2, "{w:?}");
            }
        }
    }

    #[test]
    fn currents_are_about_n_times_peak_power_over_210_v() {
        // The appendix currents match N x 5 kVA (manual 7.1 max. output power) / (phases x 210 V)
        // within 1 %: 210 V is 4.1.1's 176-276 V range well below nominal. The single-phase
        // 3-set row is the exception: the manual caps it at 50 A.
        for phases in [Phases::Single, Phases::Three] {
            for r in table(phases) {
                let estimate = r.sets as f64 * melv_core::spec::MAX_OUTPUT_VA
                    / (phases.count() as f64 * 210.0);
                if phases == Phases::Single && r.sets == 3 {
                    assert!(r.max_current_a < estimate);
                    continue;
                }
                assert!(
                    (estimate - r.max_current_a).abs() / r.max_current_a < 0.01,
                    "{r:?}"
                );
            }
        }
    }

    #[test]
    fn small_sections_carry_the_general_recommendation_note() {
        let r = recommend(Phases::Three, 1).unwrap();
        assert!(r.notes.iter().any(|n| n.contains("4.1.2")));
        let r = recommend(Phases::Three, 4).unwrap();
        assert!(!r.notes.iter().any(|n| n.contains("4.1.2")));
        assert!(r.notes.iter().any(|n| n.contains("local")));
    }
}
