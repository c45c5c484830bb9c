//! SunSpec model definitions, read from the official JSON files (see `models/README.md`).
//!
//! A model definition is a group of points, possibly with nested groups. Every model we serve has
//! fixed-size groups (`count` is a number, 1 in 704), so the layout is a flat list of points in
//! order: a point's offset is the sum of the sizes before it. The offsets therefore come from the
//! JSON files and from nothing else; [`ModelDef::point`] looks them up by name.

use serde::Deserialize;
use std::collections::HashMap;

/// The JSON files this crate serves, in the order the device presents them. Model 1 must come first
/// (SunSpec: "All SunSpec compliant devices must include this as the first model", model_1.json).
/// The models added after 124 (the meters, the per-unit batteries) come after it, so that the
/// addresses of the first seven, which clients' configurations name, never move.
pub const MODEL_FILES: [(u16, &str); 11] = [
    (1, include_str!("../models/model_1.json")),
    (701, include_str!("../models/model_701.json")),
    (702, include_str!("../models/model_702.json")),
    (704, include_str!("../models/model_704.json")),
    (713, include_str!("../models/model_713.json")),
    (802, include_str!("../models/model_802.json")),
    (124, include_str!("../models/model_124.json")),
    (203, include_str!("../models/model_203.json")),
    (705, include_str!("../models/model_705.json")),
    (706, include_str!("../models/model_706.json")),
    (711, include_str!("../models/model_711.json")),
];

/// The repeating groups of the DER curve models, fixed to what the EMS's settings hold: one
/// volt-var curve of 4 points (AS/NZS 4777.2:2020's four set-points, `melv_ems::GridServicesSettings`),
/// one volt-watt curve of 2 points (its discharge curve), one frequency-droop control. A model's
/// `NCrv`/`NPt`/`NCtl` points read these counts.
pub const GROUP_COUNTS: &[(u16, &str, u64)] = &[
    (705, "NCrv", 1),
    (705, "NPt", 4),
    (706, "NCrv", 1),
    (706, "NPt", 2),
    (711, "NCtl", 1),
];

/// The meters the device serves, in this order, each one instance of model 203 (wye-connected
/// three-phase meter): the grid connection, the PV production, the house load. evcc's SunSpec grid
/// meter template reads `203:W` of the first instance ("SunSpec compliant 3-phase meter via
/// inverter (Grid Meter)", evcc-io/docs `templates/meter-modbus-sunspec-grid.go`); a single-phase
/// site reads "not implemented" on phases B and C.
pub const METERS: [&str; 3] = ["grid", "pv", "load"];

/// The largest number of battery units a site has (three-phase; `melv_core::spec`, from the manual).
pub const MAX_UNITS: usize = melv_core::spec::MAX_BATTERIES_THREE_PHASE;

/// The device's layout for a site of `units` batteries: the models of [`MODEL_FILES`] up to 124,
/// the three meters, the DER curves (705 volt-var, 706 volt-watt, 711 frequency droop), then one
/// model 802 per unit (unit 1 first). The first 802 (after 713) is the
/// site's bank as one battery; the per-unit ones carry each unit's own values.
pub fn layout(units: usize) -> Vec<u16> {
    let mut ids: Vec<u16> = MODEL_FILES.iter().map(|(id, _)| *id).take(7).collect();
    ids.extend([203; METERS.len()]);
    ids.extend([705, 706, 711]);
    ids.extend(std::iter::repeat_n(802, units.min(MAX_UNITS)));
    ids
}

/// A model definition that cannot be used, naming the model, the point and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("model {model}: JSON does not parse: {reason}")]
    Json { model: u16, reason: String },
    #[error("model {model}: file declares id {found}")]
    WrongId { model: u16, found: u16 },
    #[error("model {model}, point {point}: {reason}")]
    Point {
        model: u16,
        point: String,
        reason: String,
    },
}

/// The SunSpec point types that fixed-length models use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointType {
    Uint16,
    Int16,
    Uint32,
    Int32,
    Uint64,
    /// An accumulator, unsigned 32 bits that wraps (meter energies); 0 is "not implemented".
    Acc32,
    Enum16,
    Bitfield16,
    Bitfield32,
    /// A scale factor: the power of ten that the points naming it are multiplied by.
    Sunssf,
    /// ASCII text, `size` registers (2 characters each), NUL padded.
    String,
    Pad,
}

impl PointType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "uint16" => Self::Uint16,
            "int16" => Self::Int16,
            "uint32" => Self::Uint32,
            "int32" => Self::Int32,
            "uint64" => Self::Uint64,
            "acc32" => Self::Acc32,
            "enum16" => Self::Enum16,
            "bitfield16" => Self::Bitfield16,
            "bitfield32" => Self::Bitfield32,
            "sunssf" => Self::Sunssf,
            "string" => Self::String,
            "pad" => Self::Pad,
            _ => return None,
        })
    }

    /// Registers the type occupies (strings take their declared size).
    fn fixed_size(self) -> Option<u16> {
        match self {
            Self::Uint16
            | Self::Int16
            | Self::Enum16
            | Self::Bitfield16
            | Self::Sunssf
            | Self::Pad => Some(1),
            Self::Uint32 | Self::Int32 | Self::Bitfield32 | Self::Acc32 => Some(2),
            Self::Uint64 => Some(4),
            Self::String => None,
        }
    }

    /// The SunSpec "not implemented" value of the type, as registers (SunSpec Information Model
    /// Specification, table "Unimplemented values": 0xFFFF for unsigned and enums, 0x8000 for
    /// signed and scale factors, 0 for strings and pads).
    pub fn unimplemented(self, size: u16) -> Vec<u16> {
        let n = size as usize;
        match self {
            Self::Int16 | Self::Sunssf => vec![0x8000],
            Self::Int32 => vec![0x8000, 0],
            Self::String | Self::Pad | Self::Acc32 => vec![0; n],
            _ => vec![0xFFFF; n],
        }
    }
}

/// Who may write a point (the JSON's `access`: "R" when absent, or "RW").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    R,
    RW,
}

/// One point of a model, with its place in the model's registers.
#[derive(Debug, Clone, PartialEq)]
pub struct PointDef {
    pub name: String,
    /// Registers from the model's first register (its `ID`), so `ID` is 0 and `L` is 1.
    pub offset: u16,
    pub size: u16,
    pub ty: PointType,
    /// The name of the scale-factor point, or a fixed power of ten.
    pub sf: Option<ScaleRef>,
    pub access: Access,
    pub units: Option<String>,
    pub label: String,
    /// Enumeration or bit names with their values.
    pub symbols: Vec<(String, i64)>,
}

/// A point's scale factor: another point of the same model, or a constant in the definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaleRef {
    Point(String),
    Fixed(i16),
}

/// One model: its id, its length `L` (registers after `ID` and `L`) and its points.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDef {
    pub id: u16,
    pub name: String,
    pub len: u16,
    pub points: Vec<PointDef>,
    index: HashMap<String, usize>,
}

impl ModelDef {
    /// Parses one JSON model definition; `expected_id` names the file in errors.
    pub fn from_json(expected_id: u16, text: &str) -> Result<Self, ModelError> {
        let raw: RawModel = serde_json::from_str(text).map_err(|e| ModelError::Json {
            model: expected_id,
            reason: e.to_string(),
        })?;
        if raw.id != expected_id {
            return Err(ModelError::WrongId {
                model: expected_id,
                found: raw.id,
            });
        }
        let mut points = Vec::new();
        let mut offset = 0u16;
        let counts: Vec<(&str, u64)> = GROUP_COUNTS
            .iter()
            .filter(|(m, _, _)| *m == expected_id)
            .map(|(_, n, c)| (*n, *c))
            .collect();
        flatten(
            expected_id,
            &raw.group,
            "",
            &counts,
            &mut offset,
            &mut points,
        )?;
        let len = offset.checked_sub(2).ok_or_else(|| ModelError::Point {
            model: expected_id,
            point: "L".into(),
            reason: "model has no ID and L points".into(),
        })?;
        let index: HashMap<String, usize> = points
            .iter()
            .enumerate()
            .map(|(i, p): (usize, &PointDef)| (p.name.clone(), i))
            .collect();
        // A scale factor named inside a group may be the group's own point or, failing that, one
        // of an enclosing group (704's `PFWInj.PF` uses the model's `PF_SF`): search outwards.
        for p in points.iter_mut() {
            if let Some(ScaleRef::Point(name)) = &p.sf {
                let mut candidate = name.clone();
                while !index.contains_key(&candidate) {
                    let Some((outer, _)) = candidate.rsplit_once('.') else {
                        break;
                    };
                    let Some((outer_prefix, _)) = outer.rsplit_once('.') else {
                        candidate = name.rsplit('.').next().unwrap_or(name).to_string();
                        break;
                    };
                    let leaf = name.rsplit('.').next().unwrap_or(name);
                    candidate = format!("{outer_prefix}.{leaf}");
                }
                if !index.contains_key(&candidate) {
                    return Err(ModelError::Point {
                        model: expected_id,
                        point: p.name.clone(),
                        reason: format!("scale factor {name} is not a point of the model"),
                    });
                }
                p.sf = Some(ScaleRef::Point(candidate));
            }
        }
        Ok(Self {
            id: raw.id,
            name: raw.group.name,
            len,
            points,
            index,
        })
    }

    /// The point named `name` (nested group points are `Group.Point`, e.g. `PFWInj.PF`).
    pub fn point(&self, name: &str) -> Option<&PointDef> {
        self.index.get(name).map(|&i| &self.points[i])
    }

    /// The point that starts at `offset`, if one does.
    pub fn point_at(&self, offset: u16) -> Option<&PointDef> {
        // Points are sorted by offset: a binary search keeps register writes O(log n).
        self.points
            .binary_search_by_key(&offset, |p| p.offset)
            .ok()
            .map(|i| &self.points[i])
    }
}

/// The models of [`layout`] for a site of `units` batteries, parsed from [`MODEL_FILES`].
pub fn standard_models(units: usize) -> Result<Vec<ModelDef>, ModelError> {
    let defs: Vec<ModelDef> = MODEL_FILES
        .iter()
        .map(|(id, text)| ModelDef::from_json(*id, text))
        .collect::<Result<_, _>>()?;
    Ok(layout(units)
        .into_iter()
        .filter_map(|id| defs.iter().find(|d| d.id == id).cloned())
        .collect())
}

fn flatten(
    model: u16,
    g: &RawGroup,
    prefix: &str,
    counts: &[(&str, u64)],
    offset: &mut u16,
    out: &mut Vec<PointDef>,
) -> Result<(), ModelError> {
    let err = |point: &str, reason: String| ModelError::Point {
        model,
        point: point.to_string(),
        reason,
    };
    for p in &g.points {
        let name = format!("{prefix}{}", p.name);
        let ty = PointType::parse(&p.ty)
            .ok_or_else(|| err(&name, format!("type {:?} is not supported", p.ty)))?;
        let size = match (ty.fixed_size(), p.size) {
            (Some(s), Some(d)) if s != d => {
                return Err(err(&name, format!("size {d} but type {:?} has {s}", p.ty)))
            }
            (Some(s), _) => s,
            (None, Some(d)) if d > 0 => d,
            (None, _) => return Err(err(&name, "string without a size".into())),
        };
        let sf = match &p.sf {
            None => None,
            Some(serde_json::Value::String(s)) => Some(ScaleRef::Point(format!("{prefix}{s}"))),
            Some(serde_json::Value::Number(n)) => {
                let v = n
                    .as_i64()
                    .and_then(|v| i16::try_from(v).ok())
                    .ok_or_else(|| err(&name, format!("scale factor {n} is not an integer")))?;
                Some(ScaleRef::Fixed(v))
            }
            Some(v) => {
                return Err(err(
                    &name,
                    format!("scale factor {v} is neither name nor number"),
                ))
            }
        };
        let access = match p.access.as_deref() {
            None | Some("R") => Access::R,
            Some("RW") => Access::RW,
            Some(a) => return Err(err(&name, format!("access {a:?} is not R or RW"))),
        };
        out.push(PointDef {
            name,
            offset: *offset,
            size,
            ty,
            sf,
            access,
            units: p.units.clone(),
            label: p.label.clone().unwrap_or_default(),
            symbols: p
                .symbols
                .iter()
                .map(|s| (s.name.clone(), s.value))
                .collect(),
        });
        *offset = offset
            .checked_add(size)
            .ok_or_else(|| err(&p.name, "model longer than 65535 registers".into()))?;
    }
    for sub in &g.groups {
        let count = match &sub.count {
            None => 1,
            Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(0),
            // A count named by a point (705's `NCrv`): fixed here by GROUP_COUNTS.
            Some(serde_json::Value::String(name)) => counts
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, c)| *c)
                .ok_or_else(|| {
                    err(
                        &sub.name,
                        format!("group count {name} is not fixed: repeating groups are not served"),
                    )
                })?,
            Some(v) => {
                return Err(err(
                    &sub.name,
                    format!("group count {v} is not fixed: repeating groups are not served"),
                ))
            }
        };
        for i in 0..count {
            // One instance keeps the plain `Group.` prefix, as pysunspec2 names it.
            let p = if count == 1 {
                format!("{prefix}{}.", sub.name)
            } else {
                format!("{prefix}{}[{i}].", sub.name)
            };
            flatten(model, sub, &p, counts, offset, out)?;
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct RawModel {
    id: u16,
    group: RawGroup,
}

#[derive(Deserialize)]
struct RawGroup {
    name: String,
    #[serde(default)]
    count: Option<serde_json::Value>,
    #[serde(default)]
    points: Vec<RawPoint>,
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
struct RawPoint {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    size: Option<u16>,
    sf: Option<serde_json::Value>,
    access: Option<String>,
    units: Option<String>,
    label: Option<String>,
    #[serde(default)]
    symbols: Vec<RawSymbol>,
}

#[derive(Deserialize)]
struct RawSymbol {
    name: String,
    value: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models() -> Vec<ModelDef> {
        standard_models(1).expect("the shipped JSON files parse")
    }

    /// (model, point, offset from ID, size, scale factor point)
    fn check(model: u16, point: &str, offset: u16, size: u16, sf: Option<&str>) {
        let ms = models();
        let m = ms.iter().find(|m| m.id == model).expect("model served");
        let p = m.point(point).unwrap_or_else(|| panic!("{model}.{point}"));
        assert_eq!(
            (p.offset, p.size),
            (offset, size),
            "{model}.{point} offset/size"
        );
        assert_eq!(
            p.sf,
            sf.map(|s| ScaleRef::Point(s.into())),
            "{model}.{point} sf"
        );
    }

    #[test]
    fn lengths_are_the_published_ones() {
        // The L values SunSpec publishes for these models (the sum of the JSON's point sizes).
        let lens: Vec<(u16, u16)> = models().iter().map(|m| (m.id, m.len)).collect();
        assert_eq!(
            lens,
            vec![
                (1, 66),
                (701, 153),
                (702, 50),
                (704, 65),
                (713, 7),
                (802, 62),
                (124, 24),
                (203, 105),
                (203, 105),
                (203, 105),
                // 13 + one curve (10) + 4 points (2 each); 13 + 5 + 2 x 2; 12 + one control (10).
                (705, 31),
                (706, 22),
                (711, 22),
                (802, 62)
            ]
        );
    }

    #[test]
    fn offsets_come_from_the_json() {
        check(1, "Mn", 2, 16, None);
        check(1, "SN", 50, 16, None);
        check(701, "W", 10, 1, Some("W_SF"));
        check(701, "Hz", 17, 2, Some("Hz_SF"));
        check(701, "TotWhInj", 19, 4, Some("TotWh_SF"));
        check(702, "WMaxRtg", 2, 1, Some("W_SF"));
        check(704, "WSet", 24, 2, Some("WSet_SF"));
        check(704, "PFWInj.PF", 59, 1, Some("PF_SF"));
        check(713, "SoC", 4, 1, Some("Pct_SF"));
        check(802, "SoC", 11, 1, Some("SoC_SF"));
        check(802, "CtrlHb", 19, 1, None);
        check(124, "InWRte", 13, 1, Some("InOutWRte_SF"));
        check(124, "ChaGriSet", 17, 1, None);
    }

    #[test]
    fn points_tile_each_model_without_gaps() {
        for m in models() {
            let mut next = 0;
            for p in &m.points {
                assert_eq!(p.offset, next, "{}.{}", m.id, p.name);
                next += p.size;
            }
            assert_eq!(next, m.len + 2, "model {}", m.id);
        }
    }

    #[test]
    fn bad_definitions_are_refused_with_their_place() {
        let e = ModelDef::from_json(9, "{").unwrap_err();
        assert!(matches!(e, ModelError::Json { model: 9, .. }), "{e}");
        let e = ModelDef::from_json(2, MODEL_FILES[0].1).unwrap_err();
        assert_eq!(e, ModelError::WrongId { model: 2, found: 1 });
        let bad = r#"{"id": 5, "group": {"name": "x", "points": [
            {"name": "ID", "type": "uint16"}, {"name": "L", "type": "uint16"},
            {"name": "F", "type": "float32"}]}}"#;
        let e = ModelDef::from_json(5, bad).unwrap_err();
        assert!(e.to_string().contains("model 5, point F"), "{e}");
        let rep = r#"{"id": 6, "group": {"name": "x", "points": [
            {"name": "ID", "type": "uint16"}, {"name": "L", "type": "uint16"}],
            "groups": [{"name": "G", "count": "N", "points": []}]}}"#;
        let e = ModelDef::from_json(6, rep).unwrap_err();
        assert!(e.to_string().contains("not fixed"), "{e}");
    }
}
