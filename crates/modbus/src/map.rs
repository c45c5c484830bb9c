//! The register image: the SunSpec marker, the models in order, the end model.
//!
//! [`SunSpecMap`] is plain data (a `Vec<u16>` and the model layouts). It knows SunSpec encoding
//! (types, "not implemented" values, scale factors, model boundaries) and nothing of the battery:
//! [`crate::device`] fills it from the site's values and interprets writes.

use crate::model::{standard_models, Access, ModelDef, ModelError, PointDef, PointType, ScaleRef};

/// The SunSpec base address: "SunS" here, the first model right after (SunSpec Information Model
/// Specification: the base register is 40000, 0 or 50000; pysunspec2 tries them in that order).
pub const SUNSPEC_BASE: u16 = 40_000;
/// "SunS" as two registers (SunSpec marker 0x53756e53).
pub const MARKER: [u16; 2] = [0x5375, 0x6e53];
/// The end model: ID 0xFFFF, L 0.
pub const END_MODEL: [u16; 2] = [0xFFFF, 0];

/// A register access the map refuses, with its Modbus exception code ([`MapError::exception`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// Exception 02: outside the map, across a model boundary, not aligned to a point, or a write
    /// to a read-only point.
    #[error("registers {addr}..+{count}: {reason}")]
    IllegalAddress {
        addr: u16,
        count: u16,
        reason: String,
    },
    /// Exception 06 (server device busy): another client holds the controls.
    #[error("registers {addr}..+{count}: {reason}")]
    Busy {
        addr: u16,
        count: u16,
        reason: String,
    },
    /// Exception 03: a value the point cannot take.
    #[error("model {model}, point {point}: value {value} {reason}")]
    IllegalValue {
        model: u16,
        point: String,
        value: i64,
        reason: String,
    },
    /// A programming error of the caller (not reachable from the wire): no such model or point.
    #[error("model {model}: no point {point:?}")]
    UnknownPoint { model: u16, point: String },
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl MapError {
    /// The Modbus exception code this error answers with (Modbus Application Protocol V1.1b3, 7).
    pub fn exception(&self) -> u8 {
        match self {
            MapError::IllegalValue { .. } => 3,
            // 02 for writes to read-only points: the choice of SunSpec devices in the field (SMA's
            // SunSpec Modbus interface, STP60-SunSpec_Modbus-TI-en-12, "Troubleshooting": exception
            // 2 when "the target address range has registers that are not writable").
            MapError::IllegalAddress { .. } => 2,
            MapError::Busy { .. } => 6,
            // Not reachable from a request; a server-side failure if it ever is.
            MapError::UnknownPoint { .. } | MapError::Model(_) => 4,
        }
    }
}

/// One model placed in the map.
#[derive(Debug, Clone)]
pub struct Placed {
    pub def: ModelDef,
    /// Absolute address of the model's `ID` register.
    pub start: u16,
}

impl Placed {
    /// One past the model's last register.
    pub fn end(&self) -> u32 {
        self.start as u32 + self.def.len as u32 + 2
    }
}

/// One instance of a model: its id and which of its instances (0 = the first). A plain `u16`
/// names the first instance, so single-instance models read as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelKey {
    pub id: u16,
    pub instance: usize,
}

impl From<u16> for ModelKey {
    fn from(id: u16) -> Self {
        Self { id, instance: 0 }
    }
}

impl From<(u16, usize)> for ModelKey {
    fn from((id, instance): (u16, usize)) -> Self {
        Self { id, instance }
    }
}

/// A point a write covers, with the raw registers written to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointWrite {
    pub model: u16,
    /// Which instance of the model (0 = the first), for models the device serves more than once.
    pub instance: usize,
    pub point: String,
    pub regs: Vec<u16>,
}

/// The SunSpec register image of one device.
#[derive(Debug, Clone)]
pub struct SunSpecMap {
    base: u16,
    regs: Vec<u16>,
    models: Vec<Placed>,
}

impl SunSpecMap {
    /// The models of [`crate::model::layout`] for `units` batteries at [`SUNSPEC_BASE`].
    pub fn standard(units: usize) -> Result<Self, MapError> {
        Self::new(standard_models(units)?, SUNSPEC_BASE)
    }

    /// Lays out `models` after the marker at `base`, every point "not implemented" but `ID` and `L`.
    pub fn new(models: Vec<ModelDef>, base: u16) -> Result<Self, MapError> {
        let mut regs = MARKER.to_vec();
        let mut placed = Vec::with_capacity(models.len());
        for def in models {
            let start = base as u32 + regs.len() as u32;
            let too_long = || MapError::IllegalAddress {
                addr: base,
                count: 0,
                reason: format!("model {} does not fit below register 65535", def.id),
            };
            let start = u16::try_from(start).map_err(|_| too_long())?;
            if start as u32 + def.len as u32 + 2 + 2 > 65_536 {
                return Err(too_long());
            }
            for p in &def.points {
                regs.extend(p.ty.unimplemented(p.size));
            }
            let at = regs.len() - def.len as usize - 2;
            regs[at] = def.id;
            regs[at + 1] = def.len;
            placed.push(Placed { def, start });
        }
        regs.extend(END_MODEL);
        Ok(Self {
            base,
            regs,
            models: placed,
        })
    }

    pub fn base(&self) -> u16 {
        self.base
    }
    pub fn models(&self) -> &[Placed] {
        &self.models
    }
    /// The whole image, from the marker to the end model.
    pub fn registers(&self) -> &[u16] {
        &self.regs
    }

    /// The first instance of model `id`.
    pub fn model(&self, id: u16) -> Option<&Placed> {
        self.instance(id, 0)
    }

    /// Instance `n` (0-based) of model `id`, for models served more than once (203, 802).
    pub fn instance(&self, id: u16, n: usize) -> Option<&Placed> {
        self.models.iter().filter(|m| m.def.id == id).nth(n)
    }

    /// Registers `addr .. addr + count`, anywhere from the marker to the end model. A read may cross
    /// model boundaries and start or end inside a multi-register point: real SunSpec servers answer
    /// any read within their map (a client reading 125 registers from 40000 gets the marker, model
    /// 1 and the start of 701 at once), and clients cut long models into chunks where they fall.
    pub fn read(&self, addr: u16, count: u16) -> Result<&[u16], MapError> {
        let last = addr as u32 + count as u32;
        let fail = |reason: &str| MapError::IllegalAddress {
            addr,
            count,
            reason: reason.into(),
        };
        if count == 0 {
            return Err(fail("empty read"));
        }
        let base = self.base as u32;
        if (addr as u32) < base || addr as u32 >= base + self.regs.len() as u32 {
            return Err(fail("not mapped"));
        }
        if last > base + self.regs.len() as u32 {
            return Err(fail("runs past the end model"));
        }
        let i = (addr - self.base) as usize;
        Ok(&self.regs[i..i + count as usize])
    }

    /// Checks a write of `values` at `addr`: inside one model, covering whole points, every point
    /// writable. Returns the points written; changes nothing.
    pub fn check_write(&self, addr: u16, values: &[u16]) -> Result<Vec<PointWrite>, MapError> {
        let count = values.len() as u16;
        let fail = |reason: String| MapError::IllegalAddress {
            addr,
            count,
            reason,
        };
        let m = self
            .models
            .iter()
            .find(|m| (m.start as u32..m.end()).contains(&(addr as u32)))
            .ok_or_else(|| fail("not a model register".into()))?;
        if addr as u32 + values.len() as u32 > m.end() {
            return Err(fail(format!("crosses the end of model {}", m.def.id)));
        }
        let mut out = Vec::new();
        let mut off = addr - m.start;
        let mut rest = values;
        while !rest.is_empty() {
            let p = m.def.point_at(off).ok_or_else(|| {
                fail(format!(
                    "register {} is inside a point of model {}, not at its start",
                    m.start + off,
                    m.def.id
                ))
            })?;
            if p.access != Access::RW {
                return Err(fail(format!(
                    "model {}, point {} is read-only",
                    m.def.id, p.name
                )));
            }
            let n = p.size as usize;
            if rest.len() < n {
                return Err(fail(format!(
                    "model {}, point {} needs {n} registers",
                    m.def.id, p.name
                )));
            }
            out.push(PointWrite {
                model: m.def.id,
                instance: self
                    .models
                    .iter()
                    .take_while(|o| o.start < m.start)
                    .filter(|o| o.def.id == m.def.id)
                    .count(),
                point: p.name.clone(),
                regs: rest[..n].to_vec(),
            });
            rest = &rest[n..];
            off += p.size;
        }
        Ok(out)
    }

    fn locate(
        &self,
        key: impl Into<ModelKey>,
        point: &str,
    ) -> Result<(usize, &PointDef, &Placed), MapError> {
        let key = key.into();
        let unknown = || MapError::UnknownPoint {
            model: key.id,
            point: point.into(),
        };
        let m = self.instance(key.id, key.instance).ok_or_else(unknown)?;
        let p = m.def.point(point).ok_or_else(unknown)?;
        Ok(((m.start - self.base + p.offset) as usize, p, m))
    }

    /// Stores the raw registers of one point (used for accepted writes).
    pub fn put_regs(
        &mut self,
        model: impl Into<ModelKey>,
        point: &str,
        regs: &[u16],
    ) -> Result<(), MapError> {
        let model: ModelKey = model.into();
        let (i, p, _) = self.locate(model, point)?;
        if regs.len() != p.size as usize {
            return Err(MapError::IllegalAddress {
                addr: self.base + i as u16,
                count: regs.len() as u16,
                reason: format!("model {}, point {point} has {} registers", model.id, p.size),
            });
        }
        self.regs[i..i + regs.len()].copy_from_slice(regs);
        Ok(())
    }

    /// Sets an integer point (enums, bitfields, scale factors, raw counts).
    pub fn set_int(
        &mut self,
        model: impl Into<ModelKey>,
        point: &str,
        v: i64,
    ) -> Result<(), MapError> {
        let model: ModelKey = model.into();
        let (i, p, _) = self.locate(model, point)?;
        let regs = encode(p.ty, v).ok_or_else(|| MapError::IllegalValue {
            model: model.id,
            point: point.into(),
            value: v,
            reason: format!("does not fit a {:?}", p.ty),
        })?;
        self.regs[i..i + regs.len()].copy_from_slice(&regs);
        Ok(())
    }

    /// Marks a point "not implemented".
    pub fn set_unimplemented(
        &mut self,
        model: impl Into<ModelKey>,
        point: &str,
    ) -> Result<(), MapError> {
        let model: ModelKey = model.into();
        let (i, p, _) = self.locate(model, point)?;
        let regs = p.ty.unimplemented(p.size);
        self.regs[i..i + regs.len()].copy_from_slice(&regs);
        Ok(())
    }

    /// Sets a string point, NUL padded; longer text is cut at the point's size.
    pub fn set_str(
        &mut self,
        model: impl Into<ModelKey>,
        point: &str,
        s: &str,
    ) -> Result<(), MapError> {
        let model: ModelKey = model.into();
        let (i, p, _) = self.locate(model, point)?;
        let mut bytes: Vec<u8> = s.bytes().filter(u8::is_ascii).collect();
        bytes.resize(p.size as usize * 2, 0);
        for (k, pair) in bytes.chunks(2).enumerate() {
            self.regs[i + k] = u16::from_be_bytes([pair[0], pair[1]]);
        }
        Ok(())
    }

    /// The integer value of a point; `None` when it reads "not implemented".
    pub fn get_int(
        &self,
        model: impl Into<ModelKey>,
        point: &str,
    ) -> Result<Option<i64>, MapError> {
        let model: ModelKey = model.into();
        let (i, p, _) = self.locate(model, point)?;
        Ok(decode(p.ty, &self.regs[i..i + p.size as usize]))
    }

    /// The power of ten a point is scaled by (0 without a scale factor).
    pub fn scale_of(&self, model: impl Into<ModelKey>, point: &str) -> Result<i16, MapError> {
        let model: ModelKey = model.into();
        let (_, p, _) = self.locate(model, point)?;
        match &p.sf {
            None => Ok(0),
            Some(ScaleRef::Fixed(v)) => Ok(*v),
            Some(ScaleRef::Point(sf)) => {
                let v = self
                    .get_int(model, sf)?
                    .ok_or_else(|| MapError::IllegalValue {
                        model: model.id,
                        point: sf.clone(),
                        value: 0x8000,
                        reason: "scale factor not set".into(),
                    })?;
                Ok(v as i16)
            }
        }
    }

    /// Sets a scaled point to `value` in its units (rounded to the scale's resolution and clamped to
    /// the type's range, the largest implemented value; not a number reads "not implemented").
    pub fn set_scaled(
        &mut self,
        model: impl Into<ModelKey>,
        point: &str,
        value: f64,
    ) -> Result<(), MapError> {
        let model: ModelKey = model.into();
        if !value.is_finite() {
            return self.set_unimplemented(model, point);
        }
        let sf = self.scale_of(model, point)?;
        let (_, p, _) = self.locate(model, point)?;
        let (lo, hi) = range(p.ty);
        let raw = (value / 10f64.powi(sf as i32))
            .round()
            .clamp(lo as f64, hi as f64) as i64;
        self.set_int(model, point, raw)
    }

    /// A scaled point's value in its units; `None` when not implemented.
    pub fn get_scaled(
        &self,
        model: impl Into<ModelKey>,
        point: &str,
    ) -> Result<Option<f64>, MapError> {
        let model: ModelKey = model.into();
        let sf = self.scale_of(model, point)?;
        Ok(self
            .get_int(model, point)?
            .map(|v| v as f64 * 10f64.powi(sf as i32)))
    }
}

/// The implemented range of an integer type (the "not implemented" value excluded).
pub fn range(ty: PointType) -> (i64, i64) {
    match ty {
        PointType::Int16 => (-0x7FFF, 0x7FFF),
        PointType::Sunssf => (-10, 10),
        PointType::Int32 => (-0x7FFF_FFFF, 0x7FFF_FFFF),
        PointType::Uint32 | PointType::Bitfield32 => (0, 0xFFFF_FFFE),
        PointType::Acc32 => (0, 0xFFFF_FFFF),
        // u64 values beyond i64 are not needed: Wh counters would take 10^12 years to get there.
        PointType::Uint64 => (0, i64::MAX),
        _ => (0, 0xFFFE),
    }
}

/// Registers of an integer value, big-endian word order (SunSpec: most significant register first).
pub fn encode(ty: PointType, v: i64) -> Option<Vec<u16>> {
    let (lo, hi) = range(ty);
    if v < lo || v > hi || matches!(ty, PointType::String | PointType::Pad) {
        return None;
    }
    let u = v as u64;
    Some(match ty {
        PointType::Uint32 | PointType::Int32 | PointType::Bitfield32 | PointType::Acc32 => {
            vec![(u >> 16) as u16, u as u16]
        }
        PointType::Uint64 => vec![
            (u >> 48) as u16,
            (u >> 32) as u16,
            (u >> 16) as u16,
            u as u16,
        ],
        _ => vec![u as u16],
    })
}

/// The value of integer registers; `None` for "not implemented" (and for strings and pads).
pub fn decode(ty: PointType, r: &[u16]) -> Option<i64> {
    let u32v = || ((r[0] as u32) << 16) | r[1] as u32;
    let v = match ty {
        PointType::Int16 | PointType::Sunssf => r[0] as i16 as i64,
        PointType::Int32 => u32v() as i32 as i64,
        PointType::Uint32 | PointType::Bitfield32 | PointType::Acc32 => u32v() as i64,
        PointType::Uint64 => {
            let u = r.iter().fold(0u64, |a, &w| (a << 16) | w as u64);
            if u == u64::MAX {
                return None;
            }
            i64::try_from(u).ok()?
        }
        PointType::String | PointType::Pad => return None,
        _ => r[0] as i64,
    };
    if ty.unimplemented(r.len() as u16) == r {
        return None;
    }
    Some(v)
}
