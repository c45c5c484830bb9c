//! The CAN wiring of a site, checked against manual 4.6 before power-on.
//!
//! ## What the manual says
//! Each battery has two CAN terminals, C1 and C2, each delivered with a terminating resistor
//! fitted. The 3 m cable runs from the combiner (gateway side) to the first battery.
//! * 4.6.1, one battery: "Remove the resistor on the C1 terminal, and connect the CAN communication
//!   cable" there; "do not perform any operations on the C2 terminal and resistor".
//! * 4.6.2, several batteries: "For the battery 1, remove the resistor on the C1 and C2 terminal"
//!   and connect cables to both; "For the battery 2, remove the resistor on the C1 terminal, and
//!   then connect the cable to the C1 terminal ... do not perform any operations on the C2 terminal
//!   and resistor" (the 1.5 m cable links battery 1's C2 to battery 2's C1).
//!
//! ## The rule for N batteries (our generalisation)
//! The bus is a line: combiner -> B1.C1, B1.C2 -> B2.C1, ..., B(N-1).C2 -> BN.C1. Every battery
//! but the last removes both resistors; the last removes C1 and keeps C2, which terminates the far
//! end. For N = 1 and N = 2 this is exactly 4.6.1 and 4.6.2. The near end is terminated at the
//! combiner: the manual never asks the installer to touch it, and a CAN line needs 120 ohm at both
//! ends (ISO 11898-2), so we assume the combiner's CAN port has its own terminator
//! (`gateway_terminated`, default true).
//!
//! The check walks the line from the combiner, so batteries are judged by their position on the
//! line (the manual's "battery 1" is the one cabled to the combiner), and reports each deviation
//! with the battery (by the installer's label) and terminal to fix. It also gives the electrical
//! consequence, a per-attempt frame error probability that the simulator applies through CAN fault
//! confinement (`confinement`), and which batteries the gateway cannot hear at all.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A battery's CAN terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Terminal {
    C1,
    C2,
}

impl Terminal {
    fn other(self) -> Terminal {
        match self {
            Terminal::C1 => Terminal::C2,
            Terminal::C2 => Terminal::C1,
        }
    }
}

/// One end of a cable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum End {
    /// The CAN terminal in the combiner (the gateway).
    Gateway,
    /// A battery's terminal; batteries are labelled 1..=N as in the description.
    Battery(u8, Terminal),
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Gateway => write!(f, "gateway"),
            End::Battery(b, t) => write!(f, "battery {b} {t:?}"),
        }
    }
}

impl std::str::FromStr for End {
    type Err = String;
    /// `gateway`, or `<n>.C1` / `battery<n>.C2` / `B<n>.C1` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let l = s.trim().to_ascii_lowercase();
        if l == "gateway" || l == "combiner" {
            return Ok(End::Gateway);
        }
        let bad = || {
            format!("cable end {s:?}: expected \"gateway\" or a battery terminal such as \"2.C1\"")
        };
        let (b, t) = l.split_once('.').ok_or_else(bad)?;
        let b = b.trim_start_matches("battery").trim_start_matches('b');
        let n: u8 = b.parse().map_err(|_| bad())?;
        let t = match t {
            "c1" => Terminal::C1,
            "c2" => Terminal::C2,
            _ => return Err(bad()),
        };
        Ok(End::Battery(n, t))
    }
}

/// What the installer did to one battery's resistors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resistors {
    #[serde(default)]
    pub c1_removed: bool,
    #[serde(default)]
    pub c2_removed: bool,
}

impl Resistors {
    fn fitted(&self, t: Terminal) -> bool {
        match t {
            Terminal::C1 => !self.c1_removed,
            Terminal::C2 => !self.c2_removed,
        }
    }
}

fn yes() -> bool {
    true
}

/// A described wiring, as an installer would write it down (JSON via serde).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wiring {
    /// Battery `i + 1`'s resistors.
    pub batteries: Vec<Resistors>,
    /// Cables, each as two ends (`"gateway"`, `"1.C1"`, ...).
    pub cables: Vec<(String, String)>,
    #[serde(default = "yes")]
    pub gateway_terminated: bool,
}

impl Wiring {
    /// The manual's plan for `n` batteries (4.6.1 for one, 4.6.2 generalised).
    pub fn manual_plan(n: u8) -> Wiring {
        let mut cables = vec![("gateway".to_string(), "1.C1".to_string())];
        for b in 1..n {
            cables.push((format!("{b}.C2"), format!("{}.C1", b + 1)));
        }
        let batteries = (1..=n)
            .map(|b| Resistors {
                c1_removed: true,
                c2_removed: b < n,
            })
            .collect();
        Wiring {
            batteries,
            cables,
            gateway_terminated: true,
        }
    }
}

/// A description that cannot be checked at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WiringError {
    #[error("the wiring lists {0} batteries; a site has 1 to 6 (manual appendix 1b)")]
    BatteryCount(usize),
    #[error("cable {index}: {reason}")]
    Cable { index: usize, reason: String },
}

/// One thing to fix, naming the battery and terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Finding {
    /// A resistor the manual says to remove is still fitted (an extra terminator).
    ResistorNotRemoved { battery: u8, terminal: Terminal },
    /// The last battery's C2 resistor was removed: the far end of the bus is unterminated.
    TerminatorMissing { battery: u8, terminal: Terminal },
    /// The upstream cable enters a battery on C2 instead of C1.
    CableOnWrongTerminal {
        battery: u8,
        used: Terminal,
        expected: Terminal,
    },
    /// No cable from the combiner.
    GatewayNotConnected,
    /// The gateway cannot reach this battery (no cable path from the combiner).
    Unreachable { battery: u8 },
    /// The combiner's end of the line has no terminator (`gateway_terminated: false`).
    GatewayUnterminated,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::ResistorNotRemoved { battery, terminal } => write!(f, "battery {battery} {terminal:?}: remove the terminating resistor (manual 4.6.1 c / 4.6.2 c-d); with it the bus is terminated more than twice"),
            Finding::TerminatorMissing { battery, terminal } => write!(f, "battery {battery} {terminal:?}: refit the terminating resistor; the last battery keeps its C2 resistor (manual 4.6.1 d / 4.6.2 d), without it the far end of the bus is unterminated"),
            Finding::CableOnWrongTerminal { battery, used, expected } => write!(f, "battery {battery}: the cable from the gateway side is on {used:?}; move it to {expected:?} (manual 4.6.2 c-d)"),
            Finding::GatewayNotConnected => write!(f, "gateway: no CAN cable from the combiner; connect the 3 m cable to battery 1 C1 (manual 4.6.1 a / 4.6.2 a)"),
            Finding::Unreachable { battery } => write!(f, "battery {battery}: not on the cable line from the combiner; the gateway will not hear it (alert 63)"),
            Finding::GatewayUnterminated => write!(f, "gateway: the combiner's end of the CAN line is not terminated; enable or fit its 120 ohm terminator (ISO 11898-2 terminates both ends; the manual never asks to remove it)"),
        }
    }
}

/// The check's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopologyReport {
    /// Batteries in line order from the combiner, by label.
    pub line: Vec<u8>,
    pub findings: Vec<Finding>,
    /// Terminators on the line the gateway is on (the combiner's included).
    pub terminators: usize,
    /// Per-attempt frame error probability of that line (see [`frame_error_rate`]).
    pub frame_error_rate: f64,
    /// Batteries the gateway cannot hear at all.
    pub unreachable: Vec<u8>,
}

impl TopologyReport {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Per-attempt frame error probability for a line with `terminators` 120 ohm resistors, whose far
/// end is (or is not) terminated.
///
/// * 0: nothing pulls the bus back to recessive but the transceivers' own input resistance
///   (ISO 11898-2: 10..100 kohm), so the dominant-to-recessive edge takes microseconds, longer than a
///   2 us bit at 500 kbit/s: nothing gets through (1.0).
/// * 1, or a far end left open: on a line of about 10 m (3 m + 1.5 m per extra battery, manual
///   4.2) the reflection from the open end returns within 0.1 us, well before the sample point, so
///   frames mostly pass; the open end halves the damping and raises noise pick-up. We take 1e-3,
///   an estimate: enough errors to show in counters, not enough for bus-off.
/// * 2 or more: the load is 120/n ohm. A driver modelled as 3.0 V behind 30 ohm gives the ISO
///   11898-2 nominal 2.0 V at 60 ohm; a receiver needs 0.9 V for dominant. With Gaussian noise set
///   so the nominal 1.1 V margin is 8 sigma, a 111-bit frame fails with the tabled probability.
pub fn frame_error_rate(terminators: usize, far_end_terminated: bool) -> f64 {
    // n = 2..=6 from the model above (n = 2: 7e-14, below anything a simulation would see).
    const BY_COUNT: [f64; 7] = [1.0, 1e-3, 0.0, 1.8e-7, 7.1e-4, 8.6e-2, 0.80];
    let base = BY_COUNT.get(terminators).copied().unwrap_or(1.0);
    if terminators >= 1 && !far_end_terminated {
        base.max(1e-3)
    } else {
        base
    }
}

fn parse_cables(w: &Wiring) -> Result<Vec<(End, End)>, WiringError> {
    let n = w.batteries.len();
    let mut used: Vec<End> = Vec::new();
    let mut out = Vec::new();
    for (index, (a, b)) in w.cables.iter().enumerate() {
        let err = |reason: String| WiringError::Cable {
            index: index + 1,
            reason,
        };
        let ends = [
            a.parse::<End>().map_err(err)?,
            b.parse::<End>().map_err(err)?,
        ];
        for e in ends {
            if let End::Battery(k, _) = e {
                if k == 0 || usize::from(k) > n {
                    return Err(err(format!("{e}: there are only batteries 1..={n}")));
                }
            }
            if used.contains(&e) {
                return Err(err(format!(
                    "{e} already has a cable; a terminal takes one"
                )));
            }
            used.push(e);
        }
        if let [End::Battery(x, _), End::Battery(y, _)] = ends {
            if x == y {
                return Err(err(format!("both ends on battery {x}")));
            }
        }
        out.push((ends[0], ends[1]));
    }
    Ok(out)
}

/// Check a described wiring against manual 4.6.
pub fn check(w: &Wiring) -> Result<TopologyReport, WiringError> {
    let n = w.batteries.len();
    if !(1..=6).contains(&n) {
        return Err(WiringError::BatteryCount(n));
    }
    let cables = parse_cables(w)?;
    let peer = |e: End| {
        cables.iter().find_map(|&(a, b)| {
            if a == e {
                Some(b)
            } else if b == e {
                Some(a)
            } else {
                None
            }
        })
    };
    let mut findings = Vec::new();
    // Walk the line from the combiner. Each terminal has at most one cable, so it is a path; the
    // bound of n steps holds even for a malformed loop.
    let mut line: Vec<(u8, Terminal)> = Vec::new();
    let mut here = End::Gateway;
    for _ in 0..n {
        let Some(next) = peer(here) else { break };
        let End::Battery(b, entered) = next else {
            break;
        };
        if line.iter().any(|(x, _)| *x == b) {
            break;
        }
        line.push((b, entered));
        here = End::Battery(b, entered.other());
    }
    if line.is_empty() {
        findings.push(Finding::GatewayNotConnected);
    }
    let mut terminators = usize::from(w.gateway_terminated);
    let mut far_end_terminated = false;
    for (pos, &(b, entered)) in line.iter().enumerate() {
        let r = w.batteries[usize::from(b) - 1];
        let last = pos + 1 == line.len();
        if entered != Terminal::C1 {
            findings.push(Finding::CableOnWrongTerminal {
                battery: b,
                used: entered,
                expected: Terminal::C1,
            });
        }
        let exit = entered.other();
        if r.fitted(entered) {
            findings.push(Finding::ResistorNotRemoved {
                battery: b,
                terminal: entered,
            });
            terminators += 1;
        }
        if r.fitted(exit) {
            terminators += 1;
            if last {
                far_end_terminated = true;
            } else {
                findings.push(Finding::ResistorNotRemoved {
                    battery: b,
                    terminal: exit,
                });
            }
        } else if last {
            findings.push(Finding::TerminatorMissing {
                battery: b,
                terminal: exit,
            });
        }
    }
    let unreachable: Vec<u8> = (1..=n as u8)
        .filter(|b| !line.iter().any(|(x, _)| x == b))
        .collect();
    for &b in &unreachable {
        findings.push(Finding::Unreachable { battery: b });
    }
    // The near end counts as much as the far one: a report must never say "OK" next to one
    // terminator (test `ok_means_exactly_two_terminators_at_the_ends`).
    if !w.gateway_terminated {
        findings.push(Finding::GatewayUnterminated);
    }
    Ok(TopologyReport {
        line: line.iter().map(|(b, _)| *b).collect(),
        findings,
        terminators,
        // An open near end reflects as an open far end does.
        frame_error_rate: frame_error_rate(terminators, far_end_terminated && w.gateway_terminated),
        unreachable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Terminal::{C1, C2};

    fn wiring(resistors: &[(bool, bool)], cables: &[(&str, &str)]) -> Wiring {
        Wiring {
            batteries: resistors
                .iter()
                .map(|&(c1_removed, c2_removed)| Resistors {
                    c1_removed,
                    c2_removed,
                })
                .collect(),
            cables: cables
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            gateway_terminated: true,
        }
    }

    fn check_case(w: &Wiring, findings: &[Finding], terminators: usize, rate_is_zero: bool) {
        let r = check(w).unwrap();
        assert_eq!(r.findings, findings, "{w:?}");
        assert_eq!(r.terminators, terminators, "{w:?}");
        assert_eq!(
            r.frame_error_rate == 0.0,
            rate_is_zero,
            "{w:?}: {}",
            r.frame_error_rate
        );
    }

    #[test]
    fn the_manual_plan_passes_for_every_battery_count() {
        for n in 1..=6 {
            let r = check(&Wiring::manual_plan(n)).unwrap();
            assert!(r.ok(), "{n}: {:?}", r.findings);
            assert_eq!(r.terminators, 2);
            assert_eq!(r.line, (1..=n).collect::<Vec<_>>());
            assert_eq!(r.frame_error_rate, 0.0);
        }
    }

    #[test]
    fn an_unterminated_combiner_is_a_finding() {
        let mut w = Wiring::manual_plan(2);
        w.gateway_terminated = false;
        check_case(&w, &[Finding::GatewayUnterminated], 1, false);
    }

    /// Every combination of resistors (and of the combiner's terminator) on the manual's cables:
    /// the report is OK exactly when the line has two terminators, one at each end.
    #[test]
    fn ok_means_exactly_two_terminators_at_the_ends() {
        for n in 1..=4u8 {
            for bits in 0..(1u32 << (2 * n + 1)) {
                let mut w = Wiring::manual_plan(n);
                for (i, b) in w.batteries.iter_mut().enumerate() {
                    b.c1_removed = bits >> (2 * i) & 1 == 1;
                    b.c2_removed = bits >> (2 * i + 1) & 1 == 1;
                }
                w.gateway_terminated = bits >> (2 * n) & 1 == 1;
                let r = check(&w).unwrap();
                let last = &w.batteries[usize::from(n) - 1];
                let ends = w.gateway_terminated && !last.c2_removed;
                assert_eq!(r.ok(), r.terminators == 2 && ends, "{w:?}: {r:?}");
                assert_eq!(r.ok(), r.frame_error_rate == 0.0, "{w:?}: {r:?}");
            }
        }
    }

    #[test]
    fn single_battery_rules_of_4_6_1() {
        let cable = [("gateway", "1.C1")];
        check_case(&wiring(&[(true, false)], &cable), &[], 2, true);
        // C1 resistor left in: three terminators.
        check_case(
            &wiring(&[(false, false)], &cable),
            &[Finding::ResistorNotRemoved {
                battery: 1,
                terminal: C1,
            }],
            3,
            false,
        );
        // C2 resistor removed too: the far end is open.
        check_case(
            &wiring(&[(true, true)], &cable),
            &[Finding::TerminatorMissing {
                battery: 1,
                terminal: C2,
            }],
            1,
            false,
        );
    }

    #[test]
    fn three_battery_chain_catches_a_missing_last_terminator() {
        let cables = [("gateway", "1.C1"), ("1.C2", "2.C1"), ("2.C2", "3.C1")];
        check_case(
            &wiring(&[(true, true), (true, true), (true, false)], &cables),
            &[],
            2,
            true,
        );
        check_case(
            &wiring(&[(true, true), (true, true), (true, true)], &cables),
            &[Finding::TerminatorMissing {
                battery: 3,
                terminal: C2,
            }],
            1,
            false,
        );
        // Battery 2 kept its C2 resistor (as if it were last): a mid-bus terminator.
        check_case(
            &wiring(&[(true, true), (true, false), (true, false)], &cables),
            &[Finding::ResistorNotRemoved {
                battery: 2,
                terminal: C2,
            }],
            3,
            false,
        );
        // Battery 1 did only what a single battery does (4.6.1): C2 still fitted.
        check_case(
            &wiring(&[(true, false), (true, true), (true, false)], &cables),
            &[Finding::ResistorNotRemoved {
                battery: 1,
                terminal: C2,
            }],
            3,
            false,
        );
    }

    #[test]
    fn line_order_follows_cables_not_labels() {
        // Labels 1, 3, 2 along the line: battery 2 is last and keeps C2.
        let cables = [
            ("gateway", "B1.C1"),
            ("battery1.C2", "3.c1"),
            ("3.C2", "2.C1"),
        ];
        let r = check(&wiring(
            &[(true, true), (true, false), (true, true)],
            &cables,
        ))
        .unwrap();
        assert_eq!(r.line, vec![1, 3, 2]);
        assert!(r.ok(), "{:?}", r.findings);
    }

    #[test]
    fn wrong_terminal_and_unreachable_batteries_are_named() {
        let cables = [("gateway", "1.C2"), ("1.C1", "2.C1")];
        let r = check(&wiring(
            &[(true, true), (true, false), (true, false)],
            &cables,
        ))
        .unwrap();
        assert_eq!(r.line, vec![1, 2]);
        assert_eq!(
            r.findings,
            vec![
                Finding::CableOnWrongTerminal {
                    battery: 1,
                    used: C2,
                    expected: C1
                },
                Finding::Unreachable { battery: 3 },
            ]
        );
        assert_eq!(r.unreachable, vec![3]);
        let none = check(&wiring(&[(true, false)], &[])).unwrap();
        assert_eq!(
            none.findings,
            vec![
                Finding::GatewayNotConnected,
                Finding::Unreachable { battery: 1 }
            ]
        );
    }

    #[test]
    fn bad_descriptions_are_refused_with_the_place() {
        let check_err = |w: Wiring, has: &str| {
            let e = check(&w).unwrap_err().to_string();
            assert!(e.contains(has), "{e}");
        };
        check_err(wiring(&[], &[]), "0 batteries");
        check_err(wiring(&[(true, false); 7], &[]), "7 batteries");
        check_err(
            wiring(&[(true, false)], &[("gateway", "2.C1")]),
            "cable 1: battery 2 C1: there are only batteries 1..=1",
        );
        check_err(
            wiring(&[(true, false)], &[("gateway", "1.C3")]),
            "cable 1: cable end \"1.C3\"",
        );
        check_err(
            wiring(
                &[(true, false), (true, false)],
                &[("gateway", "1.C1"), ("1.C1", "2.C1")],
            ),
            "cable 2: battery 1 C1 already has a cable",
        );
        check_err(
            wiring(&[(true, false)], &[("1.C1", "1.C2")]),
            "both ends on battery 1",
        );
    }

    #[test]
    fn error_rate_grows_with_every_extra_terminator() {
        let rates: Vec<f64> = (0..=8).map(|n| frame_error_rate(n, true)).collect();
        assert_eq!(rates[0], 1.0);
        assert_eq!(rates[2], 0.0);
        for n in 3..8 {
            assert!(rates[n + 1] >= rates[n], "{n}: {rates:?}");
        }
        assert!(frame_error_rate(2, false) > 0.0);
    }

    #[test]
    fn a_misspelled_key_is_refused_not_read_as_good_wiring() {
        // Issue 13 item 7: a misspelled optional key passed as "OK wiring" (it took its default:
        // here an unterminated gateway read as terminated).
        let mut w = Wiring::manual_plan(2);
        w.gateway_terminated = false;
        let good = serde_json::to_string(&w).unwrap();
        assert_eq!(serde_json::from_str::<Wiring>(&good).unwrap(), w);
        let bad = good.replacen("\"gateway_terminated\"", "\"gateway_terminatd\"", 1);
        assert_ne!(bad, good);
        let e = serde_json::from_str::<Wiring>(&bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `gateway_terminatd`"), "{e}");
    }
}
