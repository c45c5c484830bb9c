//! The wire: a classic CAN 2.0A data frame, and a checked view over its payload bytes.
//!
//! Two layers, in the smoltcp manner. [`CanFrame`] is what a transport moves: an 11-bit identifier,
//! a length (DLC 0..=8) and up to eight bytes; building one checks the identifier and the length, so
//! every later layer can rely on them. [`Payload`] is a view over the payload bytes that reads and
//! writes one signal (a little-endian bit field with factor and offset, as the DBC declares it);
//! it never indexes past the bytes it was given, which is what makes decoding total: every path
//! returns a value or a typed error.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest 11-bit (CAN 2.0A, ISO 11898-1 base format) identifier.
pub const MAX_STANDARD_ID: u32 = 0x7FF;
/// Largest classic CAN payload, bytes (ISO 11898-1: DLC 0..=8).
pub const MAX_DLC: usize = 8;

/// Why bytes from the outside are not a classic 11-bit CAN frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("CAN id 0x{0:X} does not fit in 11 bits (the M-ELV link uses base-format ids 0x000..=0x7FF)")]
    IdOutOfRange(u32),
    #[error("CAN payload of {0} bytes is longer than the 8 bytes of a classic CAN frame")]
    TooLong(usize),
}

/// A classic CAN data frame with an 11-bit identifier. Plain data, `Copy`, no allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CanFrame {
    id: u16,
    len: u8,
    data: [u8; MAX_DLC],
}

impl CanFrame {
    /// A frame from an identifier and its payload; refuses ids past 11 bits and payloads past 8 bytes.
    pub fn new(id: u32, payload: &[u8]) -> Result<Self, FrameError> {
        if id > MAX_STANDARD_ID {
            return Err(FrameError::IdOutOfRange(id));
        }
        if payload.len() > MAX_DLC {
            return Err(FrameError::TooLong(payload.len()));
        }
        let mut data = [0u8; MAX_DLC];
        data[..payload.len()].copy_from_slice(payload);
        Ok(Self {
            id: id as u16,
            len: payload.len() as u8,
            data,
        })
    }

    pub fn id(&self) -> u16 {
        self.id
    }
    /// Payload length in bytes (the DLC), 0..=8.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The payload bytes (exactly `len()` of them).
    pub fn data(&self) -> &[u8] {
        &self.data[..self.len()]
    }
    /// The payload as a signal view.
    pub fn payload(&self) -> Payload<&[u8]> {
        Payload::new(self.data())
    }
}

impl fmt::Debug for CanFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CanFrame({:03X}#", self.id)?;
        for b in self.data() {
            write!(f, "{b:02X}")?;
        }
        write!(f, ")")
    }
}

/// How a signal's raw bits map to a physical value: `physical = raw * factor + offset`
/// (the DBC convention). Little-endian (Intel, DBC `@1`) bit numbering: bit `n` is bit `n % 8` of
/// byte `n / 8`, and `start` is the least significant bit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignalDef {
    pub name: &'static str,
    pub start: u16,
    pub len: u8,
    pub signed: bool,
    pub factor: f64,
    pub offset: f64,
    /// Physical range the DBC declares; values outside it are refused on emit and flagged on parse.
    pub min: f64,
    pub max: f64,
    pub unit: &'static str,
    pub comment: &'static str,
}

impl SignalDef {
    /// Bytes a payload needs to hold this signal.
    pub fn bytes_needed(&self) -> usize {
        (usize::from(self.start) + usize::from(self.len)).div_ceil(8)
    }
    fn mask(&self) -> u64 {
        if self.len >= 64 {
            u64::MAX
        } else {
            (1u64 << self.len) - 1
        }
    }
    /// Smallest and largest raw values the bit field holds.
    pub fn raw_range(&self) -> (i64, i64) {
        if self.signed && self.len >= 64 {
            (i64::MIN, i64::MAX)
        } else if self.signed && self.len > 0 {
            let half = 1i64 << (self.len - 1);
            (-half, half - 1)
        } else if self.len >= 64 {
            (0, i64::MAX)
        } else {
            (0, self.mask() as i64)
        }
    }
}

/// Why a signal could not be read or written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignalError {
    #[error("signal {signal} needs {needed} payload bytes, the frame has {got}")]
    Short {
        signal: &'static str,
        needed: usize,
        got: usize,
    },
    #[error("signal {signal} is {len} bits long; a CAN signal has 1 to 64")]
    BadLayout { signal: &'static str, len: u8 },
    #[error("signal {signal}: {value} is not a number")]
    NotANumber { signal: &'static str, value: f64 },
    #[error("signal {signal}: {value} {unit} is outside the declared range {min}..={max}")]
    OutOfRange {
        signal: &'static str,
        value: f64,
        unit: &'static str,
        min: f64,
        max: f64,
    },
}

/// A view over payload bytes that reads and writes signals. Construction cannot fail; every
/// accessor checks that the signal lies inside the bytes.
#[derive(Debug, Clone, Copy)]
pub struct Payload<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Payload<T> {
    pub fn new(buffer: T) -> Self {
        Self { buffer }
    }

    fn check(&self, sig: &SignalDef) -> Result<(), SignalError> {
        if sig.len == 0 || sig.len > 64 {
            return Err(SignalError::BadLayout {
                signal: sig.name,
                len: sig.len,
            });
        }
        let got = self.buffer.as_ref().len();
        let needed = sig.bytes_needed();
        if needed > got || needed > MAX_DLC {
            return Err(SignalError::Short {
                signal: sig.name,
                needed,
                got,
            });
        }
        Ok(())
    }

    fn word(&self) -> u64 {
        let mut w = [0u8; 8];
        let b = self.buffer.as_ref();
        let n = b.len().min(8);
        w[..n].copy_from_slice(&b[..n]);
        u64::from_le_bytes(w)
    }

    /// The raw bit field, sign-extended when the signal is signed.
    pub fn raw(&self, sig: &SignalDef) -> Result<i64, SignalError> {
        self.check(sig)?;
        let bits = (self.word() >> sig.start) & sig.mask();
        if sig.signed && sig.len < 64 && bits & (1 << (sig.len - 1)) != 0 {
            Ok((bits | !sig.mask()) as i64)
        } else {
            Ok(bits as i64)
        }
    }

    /// The physical value, `raw * factor + offset`. Not range-checked: the message layer decides
    /// what an out-of-range value means.
    pub fn get(&self, sig: &SignalDef) -> Result<f64, SignalError> {
        let raw = self.raw(sig)? as f64;
        // Divide by 1/factor when that is a whole number (0.01 -> 100): 5555 / 100 is the double
        // nearest 55.55, whereas 5555 * 0.01 is not, and a round trip should give back the value.
        let inv = 1.0 / sig.factor;
        let scaled = if inv > 1.0 && (inv - inv.round()).abs() < 1e-9 {
            raw / inv.round()
        } else {
            raw * sig.factor
        };
        Ok(scaled + sig.offset)
    }

    /// The physical value, refused when outside the declared range (a malformed frame).
    pub fn get_checked(&self, sig: &SignalDef) -> Result<f64, SignalError> {
        let v = self.get(sig)?;
        // Half a step of tolerance: the range ends themselves are often off the raw grid.
        let tol = sig.factor.abs() / 2.0;
        if v < sig.min - tol || v > sig.max + tol {
            return Err(SignalError::OutOfRange {
                signal: sig.name,
                value: v,
                unit: sig.unit,
                min: sig.min,
                max: sig.max,
            });
        }
        Ok(v)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Payload<T> {
    /// Write a raw bit field (truncated to the field's width).
    pub fn set_raw(&mut self, sig: &SignalDef, raw: i64) -> Result<(), SignalError> {
        self.check(sig)?;
        let mask = sig.mask() << sig.start;
        let word = (self.word() & !mask) | (((raw as u64) << sig.start) & mask);
        let bytes = word.to_le_bytes();
        let b = self.buffer.as_mut();
        let n = b.len().min(8);
        b[..n].copy_from_slice(&bytes[..n]);
        Ok(())
    }

    /// Write a physical value; refuses NaN and values outside the declared range.
    pub fn set(&mut self, sig: &SignalDef, value: f64) -> Result<(), SignalError> {
        if value.is_nan() {
            return Err(SignalError::NotANumber {
                signal: sig.name,
                value,
            });
        }
        let tol = sig.factor.abs() / 2.0;
        if value < sig.min - tol || value > sig.max + tol {
            return Err(SignalError::OutOfRange {
                signal: sig.name,
                value,
                unit: sig.unit,
                min: sig.min,
                max: sig.max,
            });
        }
        let (lo, hi) = sig.raw_range();
        let raw = (((value - sig.offset) / sig.factor).round() as i64).clamp(lo, hi);
        self.set_raw(sig, raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn sig(start: u16, len: u8, signed: bool, factor: f64) -> SignalDef {
        SignalDef {
            name: "t",
            start,
            len,
            signed,
            factor,
            offset: 0.0,
            min: -1e9,
            max: 1e9,
            unit: "",
            comment: "",
        }
    }

    #[test]
    fn frame_construction_checks_id_and_length() {
        let check = |id: u32, len: usize, expected: Result<(), FrameError>| {
            let r = CanFrame::new(id, &vec![0xAA; len]).map(|_| ());
            assert_eq!(r, expected, "id {id:X} len {len}");
        };
        check(0, 0, Ok(()));
        check(0x7FF, 8, Ok(()));
        check(0x800, 8, Err(FrameError::IdOutOfRange(0x800)));
        check(0x181, 9, Err(FrameError::TooLong(9)));
        check(u32::MAX, 0, Err(FrameError::IdOutOfRange(u32::MAX)));
    }

    #[test]
    fn raw_fields_read_little_endian() {
        let check = |bytes: &[u8], s: SignalDef, expected: i64| {
            assert_eq!(Payload::new(bytes).raw(&s), Ok(expected), "{bytes:?} {s:?}");
        };
        check(&[0x34, 0x12], sig(0, 16, false, 1.0), 0x1234);
        check(&[0xFF, 0xFF], sig(0, 16, true, 1.0), -1);
        check(&[0x00, 0x80], sig(0, 16, true, 1.0), -32768);
        check(&[0b1010_0000], sig(5, 3, false, 1.0), 0b101);
        check(&[0b1010_0000], sig(5, 3, true, 1.0), -3);
        check(&[0, 0, 0, 0, 0, 0, 0, 0x80], sig(63, 1, false, 1.0), 1);
        check(&[0xF0, 0x0F], sig(4, 8, false, 1.0), 0xFF);
    }

    #[test]
    fn zero_and_overlong_signals_are_errors_not_panics() {
        let full = sig(0, 64, true, 1.0);
        assert_eq!(Payload::new(&[0xFFu8; 8][..]).raw(&full), Ok(-1));
        for len in [0u8, 65, 255] {
            let s = sig(0, len, true, 1.0);
            assert!(matches!(
                Payload::new(&[0u8; 8][..]).raw(&s),
                Err(SignalError::BadLayout { .. })
            ));
            let mut buf = [0u8; 8];
            assert!(Payload::new(&mut buf[..]).set(&s, 0.0).is_err());
        }
    }

    #[test]
    fn short_payloads_are_errors_not_panics() {
        let s = sig(8, 16, false, 1.0);
        assert_eq!(
            Payload::new(&[0u8; 2][..]).raw(&s),
            Err(SignalError::Short {
                signal: "t",
                needed: 3,
                got: 2
            })
        );
    }

    #[test]
    fn set_then_get_round_trips_and_leaves_neighbours_alone() {
        let check = |s: SignalDef, value: f64| {
            let mut buf = [0xA5u8; 8];
            let before = buf;
            let mut p = Payload::new(&mut buf[..]);
            p.set(&s, value).unwrap();
            let got = p.get(&s).unwrap();
            assert!((got - value).abs() <= s.factor / 2.0, "{value} -> {got}");
            // Clearing the field back to the original raw value restores every other bit.
            let orig = Payload::new(&before[..]).raw(&s).unwrap();
            p.set_raw(&s, orig).unwrap();
            assert_eq!(buf, before);
        };
        check(sig(0, 16, true, 0.1), -123.4);
        check(sig(3, 11, false, 1.0), 2000.0);
        check(sig(40, 24, false, 0.01), 12345.67);
        check(sig(7, 2, false, 1.0), 3.0);
    }

    #[test]
    fn set_refuses_nan_and_out_of_range() {
        let mut s = sig(0, 8, false, 1.0);
        s.min = 0.0;
        s.max = 100.0;
        let mut buf = [0u8; 1];
        let mut p = Payload::new(&mut buf[..]);
        assert!(matches!(
            p.set(&s, f64::NAN),
            Err(SignalError::NotANumber { .. })
        ));
        assert!(matches!(
            p.set(&s, 101.0),
            Err(SignalError::OutOfRange { .. })
        ));
        assert!(matches!(
            p.set(&s, -1.0),
            Err(SignalError::OutOfRange { .. })
        ));
        assert_eq!(p.set(&s, 100.0), Ok(()));
    }
}
