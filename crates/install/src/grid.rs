//! The grid check before installation: manual 4.1.1.
//!
//! "Measure AC line voltages at the point of connection to confirm that they are within the ranges":
//! L to N for single phase, L1, L2, L3 to N for three phase, each 176 to 276 V (both ends allowed, as
//! the manual writes "176 to 276 Vac"; the datasheet's operating range in 7.1 is the same). A reading
//! outside the range is a result (the phase fails and installation is refused), not an input error;
//! a reading that is not a voltage at all (NaN, infinite, negative) is an input error.

use melv_core::spec::{GRID_VOLTAGE_MAX_V, GRID_VOLTAGE_MIN_V};
use melv_core::Phases;
use serde::Serialize;
use thiserror::Error;

/// Why a list of voltages cannot be checked.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum GridInputError {
    #[error("grid voltage: {phases} needs {expected} value(s) ({names}), got {given}")]
    Count {
        phases: &'static str,
        expected: usize,
        names: &'static str,
        given: usize,
    },
    #[error("grid voltage {conductor}-N: {value} is not a voltage (expected a finite number of volts >= 0)")]
    NotAVoltage { conductor: &'static str, value: f64 },
}

/// The check of one phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseCheck {
    /// "L" (single phase) or "L1", "L2", "L3".
    pub conductor: &'static str,
    pub voltage_v: f64,
    pub pass: bool,
    /// Why the phase failed, in words; empty when it passed.
    pub reason: String,
}

/// The check of all phases.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridCheck {
    /// Allowed range L-N, V (manual 4.1.1).
    pub range_v: (f64, f64),
    pub phases: Vec<PhaseCheck>,
    pub pass: bool,
}

/// Conductor names in the order the voltages are given.
pub fn conductors(phases: Phases) -> &'static [&'static str] {
    match phases {
        Phases::Single => &["L"],
        Phases::Three => &["L1", "L2", "L3"],
    }
}

/// Check measured L-N voltages, one per phase in the order of [`conductors`].
pub fn check_grid(phases: Phases, voltages_v: &[f64]) -> Result<GridCheck, GridInputError> {
    let names = conductors(phases);
    if voltages_v.len() != names.len() {
        return Err(GridInputError::Count {
            phases: match phases {
                Phases::Single => "single phase",
                Phases::Three => "three phase",
            },
            expected: names.len(),
            names: match phases {
                Phases::Single => "L-N",
                Phases::Three => "L1-N,L2-N,L3-N",
            },
            given: voltages_v.len(),
        });
    }
    let mut checks = Vec::with_capacity(names.len());
    for (&conductor, &v) in names.iter().zip(voltages_v) {
        if !v.is_finite() || v < 0.0 {
            return Err(GridInputError::NotAVoltage {
                conductor,
                value: v,
            });
        }
        let reason = if v < GRID_VOLTAGE_MIN_V {
            format!("{conductor}-N {v} V is below {GRID_VOLTAGE_MIN_V} V (manual 4.1.1)")
        } else if v > GRID_VOLTAGE_MAX_V {
            format!("{conductor}-N {v} V is above {GRID_VOLTAGE_MAX_V} V (manual 4.1.1)")
        } else {
            String::new()
        };
        checks.push(PhaseCheck {
            conductor,
            voltage_v: v,
            pass: reason.is_empty(),
            reason,
        });
    }
    Ok(GridCheck {
        range_v: (GRID_VOLTAGE_MIN_V, GRID_VOLTAGE_MAX_V),
        pass: checks.iter().all(|c| c.pass),
        phases: checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expected`: per phase pass/fail, or the start of the error message.
    fn check(phases: Phases, v: &[f64], expected: Result<&[bool], &str>) {
        match (check_grid(phases, v), expected) {
            (Ok(g), Ok(want)) => {
                let got: Vec<bool> = g.phases.iter().map(|p| p.pass).collect();
                assert_eq!(got, want, "{v:?}");
                assert_eq!(g.pass, want.iter().all(|&p| p));
                for p in &g.phases {
                    assert_eq!(p.reason.is_empty(), p.pass);
                }
            }
            (Err(e), Err(want)) => assert!(e.to_string().starts_with(want), "{e}"),
            (got, want) => panic!("{v:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn single_phase_edges() {
        check(Phases::Single, &[230.0], Ok(&[true]));
        check(Phases::Single, &[176.0], Ok(&[true]));
        check(Phases::Single, &[276.0], Ok(&[true]));
        check(Phases::Single, &[175.9], Ok(&[false]));
        check(Phases::Single, &[276.1], Ok(&[false]));
        check(Phases::Single, &[0.0], Ok(&[false]));
    }

    #[test]
    fn three_phase_per_phase() {
        check(
            Phases::Three,
            &[230.0, 231.0, 229.0],
            Ok(&[true, true, true]),
        );
        check(
            Phases::Three,
            &[230.0, 280.0, 229.0],
            Ok(&[true, false, true]),
        );
        check(
            Phases::Three,
            &[170.0, 230.0, 300.0],
            Ok(&[false, true, false]),
        );
    }

    #[test]
    fn input_errors() {
        check(
            Phases::Three,
            &[230.0],
            Err("grid voltage: three phase needs 3 value(s) (L1-N,L2-N,L3-N), got 1"),
        );
        check(
            Phases::Single,
            &[230.0, 230.0],
            Err("grid voltage: single phase needs 1 value(s) (L-N), got 2"),
        );
        check(
            Phases::Single,
            &[],
            Err("grid voltage: single phase needs 1 value(s) (L-N), got 0"),
        );
        check(
            Phases::Three,
            &[230.0, f64::NAN, 230.0],
            Err("grid voltage L2-N: NaN"),
        );
        check(Phases::Single, &[-230.0], Err("grid voltage L-N: -230"));
    }

    #[test]
    fn reasons_name_the_conductor_and_the_limit() {
        let g = check_grid(Phases::Three, &[230.0, 280.0, 170.0]).unwrap();
        assert_eq!(
            g.phases[1].reason,
            "L2-N 280 V is above 276 V (manual 4.1.1)"
        );
        assert_eq!(
            g.phases[2].reason,
            "L3-N 170 V is below 176 V (manual 4.1.1)"
        );
    }
}
