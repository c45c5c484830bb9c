//! The candump log format (can-utils `candump -l`): `(1700000000.000000) can0 18A#0102030405060708`.
//!
//! [`CandumpWriter`] writes frames to any `std::io::Write` (the simulator passes its `--can-log`
//! file; this crate opens no files). [`parse_line`] reads a line back, for `melv can decode` and
//! for tests; python-can's `can.CanutilsLogReader` and cantools' `decode` read the same lines.
//!
//! A real bus is shared: a `candump -L` log of it also holds frames this protocol never uses.
//! [`parse_entry`] reads every line can-utils writes (`lib.c`, `sprint_canframe`) and tells our
//! classic 11-bit data frames from the [`Foreign`] ones (29-bit ids `12345678#..`, remote requests
//! `123#R`, CAN FD `123##1..`, error frames), which a reader skips and counts.

use crate::frame::CanFrame;
use serde::Serialize;
use std::io::{self, Write};

/// One candump log line (without newline) for a frame at `t_unix_s` on `iface`.
pub fn format_line(t_unix_s: f64, iface: &str, frame: &CanFrame) -> String {
    let data: String = frame.data().iter().map(|b| format!("{b:02X}")).collect();
    format!("({t_unix_s:.6}) {iface} {:03X}#{data}", frame.id())
}

/// A log line that is not candump format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("candump line {line}: {reason}")]
pub struct CandumpError {
    pub line: usize,
    pub reason: String,
}

/// A frame on the bus that is not a classic 11-bit data frame, so never one of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Foreign {
    /// A 29-bit identifier (CAN 2.0B; candump writes 8 hex digits).
    Extended,
    /// A remote transmission request (`123#R`, `123#R5`).
    Remote,
    /// A CAN FD frame (`123##<flags><data>`).
    Fd,
    /// An error frame (8 hex digits with the CAN_ERR_FLAG bit 0x20000000).
    Error,
}

/// One line of a candump log: one of our frames, or a foreign one to skip.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Classic(CanFrame),
    Foreign(Foreign),
}

/// Linux `CAN_ERR_FLAG`: the bit candump sets in an error frame's 8-digit id.
const CAN_ERR_FLAG: u32 = 0x2000_0000;

/// Parse one candump log line (`line_no` is for the error message): our classic frames, and the
/// kind of every foreign frame. A line that is not candump format at all is an error.
pub fn parse_entry(text: &str, line_no: usize) -> Result<(f64, String, Entry), CandumpError> {
    let err = |reason: String| CandumpError {
        line: line_no,
        reason,
    };
    let mut it = text.split_whitespace();
    let ts = it.next().ok_or_else(|| err("empty line".into()))?;
    let t =
        timestamp(ts).ok_or_else(|| err(format!("timestamp {ts:?} is not (seconds.micros)")))?;
    let iface = it.next().ok_or_else(|| err("no interface".into()))?;
    let body = it.next().ok_or_else(|| err("no frame".into()))?;
    let (id, data) = body
        .split_once('#')
        .ok_or_else(|| err(format!("frame {body:?} has no '#'")))?;
    let id_value = (!id.is_empty() && id.len() <= 8)
        .then(|| u32::from_str_radix(id, 16).ok())
        .flatten()
        .ok_or_else(|| err(format!("id {id:?} is not hex")))?;
    let foreign = if id.len() == 8 {
        // can-utils writes 3 digits for an 11-bit id and 8 for a 29-bit one or an error frame.
        Some(if id_value & CAN_ERR_FLAG != 0 {
            Foreign::Error
        } else {
            Foreign::Extended
        })
    } else if data.starts_with('#') {
        Some(Foreign::Fd)
    } else if data.starts_with('R') || data.starts_with('r') {
        Some(Foreign::Remote)
    } else {
        None
    };
    if let Some(f) = foreign {
        return Ok((t, iface.to_string(), Entry::Foreign(f)));
    }
    let (t, iface, frame) = parse_line(text, line_no)?;
    Ok((t, iface, Entry::Classic(frame)))
}

fn timestamp(ts: &str) -> Option<f64> {
    ts.strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .and_then(|s| s.parse().ok())
}

/// Parse one candump log line holding a classic 11-bit data frame (`line_no` is for the error
/// message); any other line is an error (see [`parse_entry`] for logs of a shared bus).
pub fn parse_line(text: &str, line_no: usize) -> Result<(f64, String, CanFrame), CandumpError> {
    let err = |reason: String| CandumpError {
        line: line_no,
        reason,
    };
    let mut it = text.split_whitespace();
    let ts = it.next().ok_or_else(|| err("empty line".into()))?;
    let t =
        timestamp(ts).ok_or_else(|| err(format!("timestamp {ts:?} is not (seconds.micros)")))?;
    let iface = it
        .next()
        .ok_or_else(|| err("no interface".into()))?
        .to_string();
    let body = it.next().ok_or_else(|| err("no frame".into()))?;
    let (id, data) = body
        .split_once('#')
        .ok_or_else(|| err(format!("frame {body:?} has no '#'")))?;
    let id = u32::from_str_radix(id, 16).map_err(|_| err(format!("id {id:?} is not hex")))?;
    if data.len() % 2 != 0 {
        return Err(err(format!(
            "data {data:?} has an odd number of hex digits"
        )));
    }
    let bytes: Vec<u8> = (0..data.len())
        .step_by(2)
        .map(|i| {
            data.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<_>>()
        .ok_or_else(|| err(format!("data {data:?} is not hex")))?;
    let frame = CanFrame::new(id, &bytes).map_err(|e| err(e.to_string()))?;
    Ok((t, iface, frame))
}

/// Writes frames as candump log lines. Time is given by the caller: Unix seconds at monotonic 0
/// (`epoch_unix_s`) plus the simulation's `now_s`.
pub struct CandumpWriter<W: Write> {
    out: W,
    iface: String,
    epoch_unix_s: f64,
    /// Frames written.
    pub frames: u64,
}

impl<W: Write> CandumpWriter<W> {
    pub fn new(out: W, iface: &str, epoch_unix_s: f64) -> Self {
        Self {
            out,
            iface: iface.to_string(),
            epoch_unix_s,
            frames: 0,
        }
    }
    pub fn write(&mut self, now_s: f64, frame: &CanFrame) -> io::Result<()> {
        self.frames += 1;
        writeln!(
            self.out,
            "{}",
            format_line(self.epoch_unix_s + now_s, &self.iface, frame)
        )
    }
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_written_and_read_back() {
        let f = CanFrame::new(0x18A, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        let mut w = CandumpWriter::new(Vec::new(), "can0", 1_700_000_000.0);
        w.write(0.25, &f).unwrap();
        let text = String::from_utf8(w.into_inner()).unwrap();
        assert_eq!(text, "(1700000000.250000) can0 18A#0102030405060708\n");
        assert_eq!(
            parse_line(text.trim(), 1),
            Ok((1_700_000_000.25, "can0".to_string(), f))
        );
    }

    #[test]
    fn bad_lines_name_line_and_reason() {
        let check = |text: &str, has: &str| {
            let e = parse_line(text, 7).unwrap_err();
            assert_eq!(e.line, 7);
            assert!(e.reason.contains(has), "{e}");
        };
        check("", "empty");
        check("1.0 can0 181#00", "timestamp");
        check("(1.0) can0", "no frame");
        check("(1.0) can0 181-00", "no '#'");
        check("(1.0) can0 18G#00", "not hex");
        check("(1.0) can0 181#0", "odd");
        check(
            "(1.0) can0 181#000102030405060708",
            "longer than the 8 bytes",
        );
        check("(1.0) can0 800#00", "11 bits");
    }

    #[test]
    fn a_shared_bus_log_tells_foreign_frames_from_ours() {
        let check = |text: &str, expected: Entry| {
            let (_, iface, e) = parse_entry(text, 1).unwrap();
            assert_eq!(iface, "can0", "{text}");
            assert_eq!(e, expected, "{text}");
        };
        let ours = CanFrame::new(0x181, &[1, 2]).unwrap();
        check("(1.000000) can0 181#0102", Entry::Classic(ours));
        check(
            "(1.000000) can0 18FF50E5#0102030405060708",
            Entry::Foreign(Foreign::Extended),
        );
        check(
            "(1.000000) can0 00000181#01",
            Entry::Foreign(Foreign::Extended),
        );
        check("(1.000000) can0 123#R", Entry::Foreign(Foreign::Remote));
        check("(1.000000) can0 123#R5", Entry::Foreign(Foreign::Remote));
        check(
            "(1.000000) can0 1F334455#R",
            Entry::Foreign(Foreign::Extended),
        );
        check("(1.000000) can0 123##1112233", Entry::Foreign(Foreign::Fd));
        check(
            "(1.000000) can0 12345678##300112233445566778899AABB",
            Entry::Foreign(Foreign::Extended),
        );
        check(
            "(1.000000) can0 20000080#0000000000000000",
            Entry::Foreign(Foreign::Error),
        );
        // Not candump at all: still an error naming the line.
        for bad in [
            "(1.0) can0 123456789#00",
            "(1.0) can0 #00",
            "(1.0) can0 12G45678#00",
        ] {
            let e = parse_entry(bad, 4).unwrap_err();
            assert!(e.to_string().contains("line 4"), "{e}");
        }
    }
}
