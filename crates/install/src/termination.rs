//! The CAN wiring and termination plan: manual 4.6.1 (one battery) and 4.6.2 (several).
//!
//! The batteries form one daisy chain that starts at the combiner's CAN communication terminal.
//! Each battery has two CAN terminals, C1 (towards the combiner) and C2 (towards the next battery),
//! and each terminal leaves the factory with a terminating resistor fitted. The manual states:
//! * one battery (4.6.1 A c-d): remove the resistor on C1, connect the 3 m cable to C1, leave C2 and
//!   its resistor alone;
//! * two batteries (4.6.2 A c-d): battery 1 removes the resistors on C1 and C2 and takes cables on both;
//!   battery 2 removes the resistor on C1, takes the cable on C1, and leaves C2 and its resistor alone.
//!
//! Generalised to N batteries (the rule the CAN crate's topology check follows too): every battery
//! removes its C1 resistor and receives the incoming cable on C1; every battery but the last removes
//! its C2 resistor and sends a 1.5 m cable from C2 to the next battery's C1; the last battery keeps its
//! C2 resistor, which terminates the far end of the bus. The manual does not say where the near end
//! is terminated; since it never asks to fit a resistor there, we take it to be inside the combiner or
//! gateway. Exactly one battery resistor stays fitted, so a linear bus gets its two terminated ends
//! (ISO 11898-2 asks for 120 Ω at each end and none in between). Cables: one 3 m cable from the combiner to battery 1 (4.6.1 A a,
//! 4.6.2 A a), then a 1.5 m cable between neighbours (4.6.2 A b); each battery's box ships one of each
//! (manual 4.2 a, accessories).

use melv_core::Phases;
use serde::Serialize;

/// Length of the combiner-to-battery-1 CAN cable, m. Manual 4.2 accessories and 4.6.1/4.6.2 A a: 3 m.
pub const COMBINER_CABLE_M: f64 = 3.0;
/// Length of the battery-to-battery CAN cable, m. Manual 4.2 accessories and 4.6.2 A b: 1.5 m.
pub const LINK_CABLE_M: f64 = 1.5;

/// A CAN terminal on a battery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Terminal {
    C1,
    C2,
}

/// One end of a CAN cable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Endpoint {
    /// The combiner's CAN communication terminal (see the label inside the combiner, manual 4.6 note).
    Combiner,
    /// A terminal of battery `battery` (1-based, counted from the combiner).
    Battery { battery: usize, terminal: Terminal },
}

/// One CAN cable to lay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CanCable {
    pub length_m: f64,
    pub from: Endpoint,
    pub to: Endpoint,
}

/// What to do with a factory-fitted terminating resistor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resistor {
    /// Remove the resistor, then connect the cable to the terminal.
    Remove,
    /// Do not touch the terminal or its resistor (manual 4.6.1 A d, 4.6.2 A d).
    Keep,
}

/// The resistor actions on one battery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BatteryTermination {
    /// 1-based position in the chain, counted from the combiner.
    pub battery: usize,
    pub c1: Resistor,
    pub c2: Resistor,
}

/// The plug-in bridge of the power terminal block (manual 4.6, "Single-phase application").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlugInBridge {
    pub required: bool,
    pub instruction: &'static str,
}

/// How many cables of one length the plan uses, and how many the battery boxes bring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CableCount {
    pub used: usize,
    pub supplied: usize,
}

/// The whole CAN plan of a site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanPlan {
    pub batteries: usize,
    pub cables: Vec<CanCable>,
    pub termination: Vec<BatteryTermination>,
    /// The battery whose C2 resistor terminates the bus (always the last one).
    pub terminated_at_battery: usize,
    /// 3 m cables: used, and supplied (one per battery box, manual 4.2).
    pub cables_3m: CableCount,
    /// 1.5 m cables: used, and supplied (one per battery box, manual 4.2).
    pub cables_1_5m: CableCount,
    pub plug_in_bridge: PlugInBridge,
    /// Knockouts to remove on the battery housing (manual 4.5 a).
    pub knockouts: &'static str,
}

/// The resistor actions for battery `battery` (1-based) of `batteries`: every battery removes C1,
/// all but the last remove C2, the last keeps its C2 terminator.
pub fn termination_for(battery: usize, batteries: usize) -> BatteryTermination {
    BatteryTermination {
        battery,
        c1: Resistor::Remove,
        c2: if battery >= batteries {
            Resistor::Keep
        } else {
            Resistor::Remove
        },
    }
}

/// The CAN plan for `batteries` batteries (at least 1; the caller checks the phase limit).
pub fn can_plan(phases: Phases, batteries: usize) -> CanPlan {
    let batteries = batteries.max(1);
    let mut cables = vec![CanCable {
        length_m: COMBINER_CABLE_M,
        from: Endpoint::Combiner,
        to: Endpoint::Battery {
            battery: 1,
            terminal: Terminal::C1,
        },
    }];
    cables.extend((1..batteries).map(|k| CanCable {
        length_m: LINK_CABLE_M,
        from: Endpoint::Battery {
            battery: k,
            terminal: Terminal::C2,
        },
        to: Endpoint::Battery {
            battery: k + 1,
            terminal: Terminal::C1,
        },
    }));
    let plug_in_bridge = match phases {
        // Manual 4.6.1 and 4.6.2 B, single-phase application notes.
        Phases::Single => PlugInBridge {
            required: true,
            instruction: "Single phase: the plug-in bridge must be fully inserted in every battery; confirm after installation that it is not loose (manual 4.6.1/4.6.2 B).",
        },
        // The manual shows the bridge only in the single-phase application; on three phase it would
        // join L1, L2 and L3 (alert 13 lists a short circuit in the three-phase system as a cause).
        Phases::Three => PlugInBridge {
            required: false,
            instruction: "Three phase: do not insert the plug-in bridge; wire L1, L2, L3, N and PE (manual 4.6, three-phase application).",
        },
    };
    CanPlan {
        batteries,
        cables,
        termination: (1..=batteries)
            .map(|k| termination_for(k, batteries))
            .collect(),
        terminated_at_battery: batteries,
        cables_3m: CableCount {
            used: 1,
            supplied: batteries,
        },
        cables_1_5m: CableCount {
            used: batteries - 1,
            supplied: batteries,
        },
        plug_in_bridge,
        knockouts: if batteries > 1 {
            "Several batteries: remove the knockout on both sides of each battery (manual 4.5 a)."
        } else {
            "One battery: remove the knockout on the cable entry side (manual 4.5 a)."
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Resistor::{Keep, Remove};

    fn check(batteries: usize, expected: &[(Resistor, Resistor)]) {
        let plan = can_plan(Phases::Three, batteries);
        let got: Vec<(Resistor, Resistor)> =
            plan.termination.iter().map(|t| (t.c1, t.c2)).collect();
        assert_eq!(got, expected, "{batteries} batteries");
        // Exactly one battery resistor stays fitted, on the last battery.
        let kept: Vec<usize> = plan
            .termination
            .iter()
            .filter(|t| t.c2 == Keep)
            .map(|t| t.battery)
            .collect();
        assert_eq!(kept, vec![batteries]);
        assert_eq!(plan.terminated_at_battery, batteries);
        assert_eq!(plan.cables.len(), batteries);
    }

    #[test]
    fn one_battery_matches_manual_4_6_1() {
        check(1, &[(Remove, Keep)]);
    }

    #[test]
    fn two_batteries_match_manual_4_6_2() {
        check(2, &[(Remove, Remove), (Remove, Keep)]);
    }

    #[test]
    fn generalises_to_six() {
        check(3, &[(Remove, Remove), (Remove, Remove), (Remove, Keep)]);
        check(
            4,
            &[
                (Remove, Remove),
                (Remove, Remove),
                (Remove, Remove),
                (Remove, Keep),
            ],
        );
        let mut six = vec![(Remove, Remove); 5];
        six.push((Remove, Keep));
        check(6, &six);
    }

    #[test]
    fn cables_form_one_chain_from_the_combiner() {
        let plan = can_plan(Phases::Three, 3);
        let b = |battery, terminal| Endpoint::Battery { battery, terminal };
        let expected = vec![
            CanCable {
                length_m: 3.0,
                from: Endpoint::Combiner,
                to: b(1, Terminal::C1),
            },
            CanCable {
                length_m: 1.5,
                from: b(1, Terminal::C2),
                to: b(2, Terminal::C1),
            },
            CanCable {
                length_m: 1.5,
                from: b(2, Terminal::C2),
                to: b(3, Terminal::C1),
            },
        ];
        assert_eq!(plan.cables, expected);
        assert_eq!(
            plan.cables_3m,
            CableCount {
                used: 1,
                supplied: 3
            }
        );
        assert_eq!(
            plan.cables_1_5m,
            CableCount {
                used: 2,
                supplied: 3
            }
        );
    }

    #[test]
    fn every_removed_resistor_gets_a_cable_and_every_cable_end_a_removed_resistor() {
        for n in 1..=6 {
            let plan = can_plan(Phases::Three, n);
            for t in &plan.termination {
                for (terminal, action) in [(Terminal::C1, t.c1), (Terminal::C2, t.c2)] {
                    let end = Endpoint::Battery {
                        battery: t.battery,
                        terminal,
                    };
                    let cabled = plan.cables.iter().any(|c| c.from == end || c.to == end);
                    assert_eq!(cabled, action == Remove, "{n}: {end:?}");
                }
            }
        }
    }

    #[test]
    fn the_can_crate_accepts_every_plan() {
        // The CAN crate's wiring checker (melv_can::topology) follows the same generalisation; the
        // installer's plan must be exactly its reference wiring and pass its check.
        use melv_can::topology::{check, Resistors, Wiring};
        let end = |e: &Endpoint| match e {
            Endpoint::Combiner => "gateway".to_string(),
            Endpoint::Battery { battery, terminal } => format!("{battery}.{terminal:?}"),
        };
        for n in 1..=6usize {
            let plan = can_plan(Phases::Three, n);
            let wiring = Wiring {
                batteries: plan
                    .termination
                    .iter()
                    .map(|t| Resistors {
                        c1_removed: t.c1 == Remove,
                        c2_removed: t.c2 == Remove,
                    })
                    .collect(),
                cables: plan
                    .cables
                    .iter()
                    .map(|c| (end(&c.from), end(&c.to)))
                    .collect(),
                gateway_terminated: true,
            };
            assert_eq!(wiring, Wiring::manual_plan(n as u8), "{n}");
            let report = check(&wiring).unwrap();
            assert!(report.ok(), "{n}: {report:?}");
        }
    }

    #[test]
    fn plug_in_bridge_only_on_single_phase() {
        assert!(can_plan(Phases::Single, 1).plug_in_bridge.required);
        assert!(can_plan(Phases::Single, 3).plug_in_bridge.required);
        assert!(!can_plan(Phases::Three, 1).plug_in_bridge.required);
    }
}
