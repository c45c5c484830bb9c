//! Mounting and wiring facts as a checklist: manual 4.3 to 4.10.
//!
//! Every item is a sentence an installer can tick, with the section it comes from. Tightening torques
//! are also given as a table ([`TORQUES`]) so the web wizard can show them in its own layout.
//! Figures the manual gives only as pictures (clearances of 4.1.6 c, terminal layout of 4.4 b) are not
//! in the text and therefore not here; the checklist says so rather than invent numbers.

use melv_core::spec::WALL_LOAD_KG;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How the battery is mounted (manual 4.3, 7.1 "Mounting: Floor or wall mount").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mount {
    Floor,
    Wall,
}

impl FromStr for Mount {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "floor" => Ok(Mount::Floor),
            "wall" => Ok(Mount::Wall),
            other => Err(format!(
                "mount must be floor or wall, not {other:?} (manual 4.3)"
            )),
        }
    }
}

impl fmt::Display for Mount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mount::Floor => "floor",
            Mount::Wall => "wall",
        })
    }
}

/// A tightening torque of the manual.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Torque {
    pub what: &'static str,
    pub min_nm: f64,
    pub max_nm: f64,
    pub section: &'static str,
    /// `None`: applies to both mounts.
    pub mount: Option<Mount>,
}

/// Every torque the manual states.
pub const TORQUES: [Torque; 6] = [
    Torque {
        what: "expansion screws in the wall (set, then loosen)",
        min_nm: 9.0,
        max_nm: 14.0,
        section: "4.3.1 c / 4.3.2 c",
        mount: None,
    },
    Torque {
        what: "M6 screws of the mounting lugs",
        min_nm: 3.0,
        max_nm: 3.0,
        section: "4.3.1 e",
        mount: Some(Mount::Floor),
    },
    Torque {
        what: "M10 expansion screws through the mounting lugs",
        min_nm: 9.0,
        max_nm: 14.0,
        section: "4.3.1 f",
        mount: Some(Mount::Floor),
    },
    Torque {
        what: "screws of the mounting plate",
        min_nm: 9.0,
        max_nm: 14.0,
        section: "4.3.2 d",
        mount: Some(Mount::Wall),
    },
    Torque {
        what: "lock nuts of the waterproof glands",
        min_nm: 4.0,
        max_nm: 5.0,
        section: "4.5 c",
        mount: None,
    },
    Torque {
        what: "sealing nuts of the waterproof glands",
        min_nm: 7.0,
        max_nm: 7.5,
        section: "4.5 c",
        mount: None,
    },
];

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChecklistItem {
    pub text: String,
    pub section: &'static str,
}

/// The mounting checklist for one mount.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MountingChecklist {
    pub mount: Mount,
    /// Drill bit diameter, mm (manual 4.3.1 b, 4.3.2 b: Φ14).
    pub drill_bit_mm: f64,
    /// Holes to drill per battery (4.3.1 b: two; 4.3.2 b: four).
    pub holes_per_battery: usize,
    /// Load the wall must bear per battery, kg (4.3.2 note: 75 kg); `None` for floor mounting.
    pub wall_load_kg_per_battery: Option<f64>,
    /// The same for all batteries of the site, kg.
    pub wall_load_kg_total: Option<f64>,
    pub torques: Vec<Torque>,
    pub items: Vec<ChecklistItem>,
}

/// Drill bit diameter, mm. Manual 4.3.1 b and 4.3.2 b: "a bit (Φ14)".
pub const DRILL_BIT_MM: f64 = 14.0;

fn item(text: impl Into<String>, section: &'static str) -> ChecklistItem {
    ChecklistItem {
        text: text.into(),
        section,
    }
}

/// The checklist for mounting `batteries` batteries this way.
pub fn mounting_checklist(mount: Mount, batteries: usize) -> MountingChecklist {
    let mut items = Vec::new();
    match mount {
        Mount::Floor => {
            items.push(item(
                "The floor is level; otherwise wall mounting is recommended.",
                "4.3",
            ));
            items.push(item(
                "Marking plate on the wall, levelled with the spirit level; mark the holes.",
                "4.3.1 a",
            ));
            items.push(item(
                format!("Drill the 2 marks with a Φ{DRILL_BIT_MM} bit."),
                "4.3.1 b",
            ));
            items.push(item(
                "Knock in the expansion screws, tighten to 9-14 N·m, then loosen them.",
                "4.3.1 c",
            ));
            items.push(item(
                "Battery close to the wall, parallel to it and perpendicular to the floor.",
                "4.3.1 d",
            ));
            items.push(item(
                "Mounting lugs on both sides with M6 screws at 3 N·m.",
                "4.3.1 e",
            ));
            items.push(item("M10 expansion screws through the lugs at 9-14 N·m; do not tighten fully until the lugs fit.", "4.3.1 f"));
            items.push(item(
                "Remove the mounting buckles of the upper cover (floor mounting).",
                "4.9",
            ));
        }
        Mount::Wall => {
            items.push(item(
                format!("The wall bears {WALL_LOAD_KG} kg per battery (unit and mounting plate), {} kg for {batteries} batteries.", WALL_LOAD_KG * batteries as f64),
                "4.3.2 note",
            ));
            items.push(item(
                "Marking plate on the wall, levelled with the spirit level; mark the holes.",
                "4.3.2 a",
            ));
            items.push(item(
                format!("Drill the 4 marks with a Φ{DRILL_BIT_MM} bit."),
                "4.3.2 b",
            ));
            items.push(item(
                "Knock in the expansion screws, tighten to 9-14 N·m, then loosen them.",
                "4.3.2 c",
            ));
            items.push(item(
                "Mounting plate on the holes, screws at 9-14 N·m.",
                "4.3.2 d",
            ));
            items.push(item("Slide the four mounting columns on the back of the battery to the end of the rail, then remove the handlebars.", "4.3.2 e"));
        }
    }
    items.push(item(
        "Clearances and environment as in the figures of manual 4.1.6 (not given in the text).",
        "4.1.6",
    ));
    MountingChecklist {
        mount,
        drill_bit_mm: DRILL_BIT_MM,
        holes_per_battery: match mount {
            Mount::Floor => 2,
            Mount::Wall => 4,
        },
        wall_load_kg_per_battery: (mount == Mount::Wall).then_some(WALL_LOAD_KG),
        wall_load_kg_total: (mount == Mount::Wall).then_some(WALL_LOAD_KG * batteries as f64),
        torques: TORQUES
            .iter()
            .copied()
            .filter(|t| t.mount.is_none() || t.mount == Some(mount))
            .collect(),
        items,
    }
}

/// The wiring and power-on checklist, the same for both mounts.
pub fn wiring_checklist(batteries: usize) -> Vec<ChecklistItem> {
    let mut items = vec![
        item("Loosen the 13 captive screws of the wiring cabinet cover by hand tool (no impact driver or drill); do not unscrew them completely.", "4.4"),
        item("Mount the waterproof glands; lock nuts 4-5 N·m, sealing nuts 7-7.5 N·m.", "4.5 c"),
        item("Power cable end: strip about 12 mm of insulation, fit the supplied cold-press terminal.", "4.1.2 note"),
        item("CAN cable end: strip about 8 mm of insulation, fit the supplied cold-press terminal.", "4.1.2 note"),
        item("Connect the power cables to the battery breaker and PE terminal in the combiner, as its label shows; L and N swapped damages the equipment.", "4.6 note"),
    ];
    if batteries > 1 {
        items.push(item(
            "Remove the knockouts on both sides of each battery.",
            "4.5 a",
        ));
        items.push(item("Strip about 120 mm of the power cable sheath on the left side and 270 mm on the right side.", "4.6.2 B note"));
    } else {
        items.push(item(
            "Strip about 120 mm of the power cable sheath.",
            "4.6.1 B note",
        ));
    }
    items.push(item("Re-install the wiring cabinet cover, tightening the 13 screws in the order 1 to 13 (no impact driver or drill).", "4.7"));
    items.push(item(
        "Remove the knockout of the upper cover as the wiring needs, then close the upper cover.",
        "4.8, 4.9",
    ));
    items.push(item("Before switching on, measure N-L1 (and N-L2, N-L3): about the nominal phase voltage, e.g. 220, 230 or 240 V.", "4.10 a"));
    items.push(item("Switch on the battery breaker in the combiner; activate the system in the ATMOZEN app (SOC LED solid blue).", "4.10 b, 4.11"));
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(mount: Mount, batteries: usize, expected: (usize, Option<f64>, usize)) {
        let c = mounting_checklist(mount, batteries);
        assert_eq!(
            (c.holes_per_battery, c.wall_load_kg_total, c.torques.len()),
            expected,
            "{mount} x {batteries}"
        );
        assert_eq!(c.drill_bit_mm, 14.0);
        assert!(c
            .items
            .iter()
            .all(|i| !i.section.is_empty() && !i.text.is_empty()));
    }

    #[test]
    fn floor_and_wall() {
        check(Mount::Floor, 1, (2, None, 5));
        check(Mount::Wall, 1, (4, Some(75.0), 4));
        check(Mount::Wall, 3, (4, Some(225.0), 4));
        assert!(mounting_checklist(Mount::Floor, 1).items[0]
            .text
            .contains("level"));
        assert!(mounting_checklist(Mount::Wall, 2).items[0]
            .text
            .contains("75 kg per battery"));
    }

    #[test]
    fn torques_are_ordered_ranges() {
        for t in TORQUES {
            assert!(t.min_nm > 0.0 && t.min_nm <= t.max_nm, "{t:?}");
        }
    }

    #[test]
    fn mount_parses() {
        assert_eq!("Wall".parse::<Mount>(), Ok(Mount::Wall));
        assert_eq!(" floor ".parse::<Mount>(), Ok(Mount::Floor));
        assert!("ceiling"
            .parse::<Mount>()
            .unwrap_err()
            .contains("floor or wall"));
    }

    #[test]
    fn multi_battery_wiring_adds_both_side_knockouts() {
        let one = wiring_checklist(1);
        let two = wiring_checklist(2);
        assert!(!one.iter().any(|i| i.section == "4.5 a"));
        assert!(two.iter().any(|i| i.section == "4.5 a"));
        assert!(two.iter().any(|i| i.text.contains("270 mm")));
    }
}
