//! Modbus TCP framing and request handling, sans-IO.
//!
//! After smoltcp's `wire` module (ARCHITECTURE.md 4): [`frame_len`] is the checked view of the bytes
//! (is a whole, sane ADU in the buffer?), [`Request::parse`] turns a PDU into a plain value, and
//! [`handle_adu`] answers it. Nothing here can panic on any input: every length is checked before
//! it is used, and the property test in `tests/tcp.rs` feeds arbitrary bytes.
//!
//! References: Modbus Application Protocol Specification V1.1b3 (function codes 3, 4, 6, 16, the
//! quantity limits 125 and 123, exception codes 01 to 04 and 0B), and Modbus Messaging on TCP/IP
//! Implementation Guide V1.0b (MBAP header: transaction id, protocol id 0, length, unit id).

use crate::control::ClientId;
use crate::device::SunSpecDevice;

/// MBAP header length (transaction 2, protocol 2, length 2), before the unit id.
pub const MBAP_LEN: usize = 6;
/// Largest ADU on TCP: 7-byte header (with unit id) plus a 253-byte PDU (V1.1b3, 4.1).
pub const MAX_ADU: usize = 260;
/// Largest read quantity (V1.1b3, 6.3 and 6.4: 1 to 125 registers).
pub const MAX_READ: u16 = 125;
/// Largest write quantity (V1.1b3, 6.12: 1 to 123 registers).
pub const MAX_WRITE: u16 = 123;

/// Modbus exception codes we answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exception {
    IllegalFunction = 1,
    IllegalDataAddress = 2,
    IllegalDataValue = 3,
    ServerDeviceFailure = 4,
    /// Another client holds the controls (the ownership rule, `control.rs`).
    ServerDeviceBusy = 6,
    /// For a unit id this server does not answer to (V1.1b3, 7: "gateway target device failed to
    /// respond"): the client learns at once that the id is wrong instead of waiting for a timeout.
    GatewayTargetFailed = 0x0B,
}

/// The byte stream cannot be Modbus TCP: the connection must be closed (Implementation Guide
/// 4.4.1: a frame with a protocol id other than 0 or an impossible length is not answered).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("MBAP protocol id {0}: only 0 (Modbus) is served")]
    Protocol(u16),
    #[error("MBAP length {0}: expected 2 to 254 (unit id and PDU)")]
    Length(u16),
}

/// Length of the first ADU in `buf`: `Ok(None)` while incomplete.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    if buf.len() < MBAP_LEN {
        return Ok(None);
    }
    let protocol = u16::from_be_bytes([buf[2], buf[3]]);
    let len = u16::from_be_bytes([buf[4], buf[5]]);
    if protocol != 0 {
        return Err(FrameError::Protocol(protocol));
    }
    if !(2..=(MAX_ADU - MBAP_LEN) as u16).contains(&len) {
        return Err(FrameError::Length(len));
    }
    let total = MBAP_LEN + len as usize;
    Ok((buf.len() >= total).then_some(total))
}

/// A parsed request PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    ReadHolding { addr: u16, count: u16 },
    ReadInput { addr: u16, count: u16 },
    WriteSingle { addr: u16, value: u16 },
    WriteMultiple { addr: u16, values: Vec<u16> },
}

impl Request {
    /// Parses a PDU (function code first). Errors are the exception to answer.
    pub fn parse(pdu: &[u8]) -> Result<Self, Exception> {
        let (&fc, body) = pdu.split_first().ok_or(Exception::IllegalFunction)?;
        let word = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]);
        match fc {
            3 | 4 => {
                if body.len() != 4 {
                    return Err(Exception::IllegalDataValue);
                }
                let (addr, count) = (word(0), word(2));
                if !(1..=MAX_READ).contains(&count) {
                    return Err(Exception::IllegalDataValue);
                }
                Ok(if fc == 3 {
                    Request::ReadHolding { addr, count }
                } else {
                    Request::ReadInput { addr, count }
                })
            }
            6 => {
                if body.len() != 4 {
                    return Err(Exception::IllegalDataValue);
                }
                Ok(Request::WriteSingle {
                    addr: word(0),
                    value: word(2),
                })
            }
            16 => {
                if body.len() < 5 {
                    return Err(Exception::IllegalDataValue);
                }
                let (addr, count, bytes) = (word(0), word(2), body[4] as usize);
                if !(1..=MAX_WRITE).contains(&count)
                    || bytes != 2 * count as usize
                    || body.len() != 5 + bytes
                {
                    return Err(Exception::IllegalDataValue);
                }
                let values = (0..count as usize).map(|i| word(5 + 2 * i)).collect();
                Ok(Request::WriteMultiple { addr, values })
            }
            _ => Err(Exception::IllegalFunction),
        }
    }
}

/// Answers one complete ADU (as cut by [`frame_len`]) for the device at `unit_id`.
pub fn handle_adu(
    dev: &mut SunSpecDevice,
    unit_id: u8,
    client: ClientId,
    now_s: f64,
    adu: &[u8],
) -> Vec<u8> {
    if adu.len() < MBAP_LEN + 2 {
        // frame_len never cuts one this short; answer nothing rather than guess.
        return Vec::new();
    }
    let (head, pdu) = adu.split_at(MBAP_LEN + 1);
    let fc = pdu[0];
    // On TCP the unit id does not route to a non-gateway server (Implementation Guide 4.4.2.1:
    // "the MODBUS Unit Identifier is useless. The value 0xFF has to be used"); clients differ in
    // what they send, so 0xFF and 0 reach the device as well as its configured id.
    let uid = head[MBAP_LEN];
    let pdu_out = if uid != unit_id && uid != 0xFF && uid != 0 {
        exception(fc, Exception::GatewayTargetFailed)
    } else {
        match Request::parse(pdu) {
            Err(e) => exception(fc, e),
            Ok(req) => answer(dev, client, now_s, fc, &req),
        }
    };
    let mut out = Vec::with_capacity(MBAP_LEN + 1 + pdu_out.len());
    out.extend_from_slice(&head[..4]);
    out.extend_from_slice(&((pdu_out.len() + 1) as u16).to_be_bytes());
    out.push(head[MBAP_LEN]);
    out.extend_from_slice(&pdu_out);
    out
}

fn answer(dev: &mut SunSpecDevice, client: ClientId, now_s: f64, fc: u8, req: &Request) -> Vec<u8> {
    let code = |e: crate::map::MapError| match e.exception() {
        2 => Exception::IllegalDataAddress,
        3 => Exception::IllegalDataValue,
        6 => Exception::ServerDeviceBusy,
        _ => Exception::ServerDeviceFailure,
    };
    match req {
        Request::ReadHolding { addr, count } | Request::ReadInput { addr, count } => {
            match dev.read(*addr, *count) {
                Ok(regs) => {
                    let mut out = vec![fc, (regs.len() * 2) as u8];
                    for r in regs {
                        out.extend_from_slice(&r.to_be_bytes());
                    }
                    out
                }
                Err(e) => exception(fc, code(e)),
            }
        }
        Request::WriteSingle { addr, value } => {
            match dev.write_from(client, now_s, *addr, &[*value]) {
                Ok(()) => {
                    let mut out = vec![fc];
                    out.extend_from_slice(&addr.to_be_bytes());
                    out.extend_from_slice(&value.to_be_bytes());
                    out
                }
                Err(e) => exception(fc, code(e)),
            }
        }
        Request::WriteMultiple { addr, values } => {
            match dev.write_from(client, now_s, *addr, values) {
                Ok(()) => {
                    let mut out = vec![fc];
                    out.extend_from_slice(&addr.to_be_bytes());
                    out.extend_from_slice(&(values.len() as u16).to_be_bytes());
                    out
                }
                Err(e) => exception(fc, code(e)),
            }
        }
    }
}

fn exception(fc: u8, e: Exception) -> Vec<u8> {
    vec![fc | 0x80, e as u8]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_parse(pdu: &[u8], expected: Result<Request, Exception>) {
        assert_eq!(Request::parse(pdu), expected, "{pdu:02x?}");
    }

    #[test]
    fn requests_parse_or_name_their_exception() {
        use Exception::*;
        check_parse(
            &[3, 0x9c, 0x40, 0, 3],
            Ok(Request::ReadHolding {
                addr: 40000,
                count: 3,
            }),
        );
        check_parse(
            &[4, 0, 1, 0, 125],
            Ok(Request::ReadInput {
                addr: 1,
                count: 125,
            }),
        );
        check_parse(&[3, 0, 1, 0, 126], Err(IllegalDataValue));
        check_parse(&[3, 0, 1, 0, 0], Err(IllegalDataValue));
        check_parse(&[3, 0, 1, 0], Err(IllegalDataValue));
        check_parse(&[3, 0, 1, 0, 1, 9], Err(IllegalDataValue));
        check_parse(
            &[6, 0, 7, 0x12, 0x34],
            Ok(Request::WriteSingle {
                addr: 7,
                value: 0x1234,
            }),
        );
        check_parse(&[6, 0, 7, 0x12], Err(IllegalDataValue));
        check_parse(
            &[16, 0, 7, 0, 2, 4, 0, 1, 0, 2],
            Ok(Request::WriteMultiple {
                addr: 7,
                values: vec![1, 2],
            }),
        );
        // Byte count disagrees with the quantity, or with the bytes present.
        check_parse(&[16, 0, 7, 0, 2, 3, 0, 1, 0], Err(IllegalDataValue));
        check_parse(&[16, 0, 7, 0, 2, 4, 0, 1, 0], Err(IllegalDataValue));
        check_parse(&[16, 0, 7, 0, 124, 248], Err(IllegalDataValue));
        check_parse(&[16, 0, 7, 0], Err(IllegalDataValue));
        for fc in [0u8, 1, 2, 5, 15, 17, 23, 43, 0x83, 0xFF] {
            check_parse(&[fc, 0, 0, 0, 1], Err(IllegalFunction));
        }
        check_parse(&[], Err(IllegalFunction));
    }

    fn check_frame(buf: &[u8], expected: Result<Option<usize>, FrameError>) {
        assert_eq!(frame_len(buf), expected, "{buf:02x?}");
    }

    #[test]
    fn frames_are_cut_by_the_mbap_length() {
        check_frame(&[0, 1, 0, 0, 0], Ok(None));
        check_frame(&[0, 1, 0, 0, 0, 6, 1, 3, 0], Ok(None));
        check_frame(&[0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1], Ok(Some(12)));
        check_frame(&[0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1, 9, 9], Ok(Some(12)));
        check_frame(&[0, 1, 0, 1, 0, 6], Err(FrameError::Protocol(1)));
        check_frame(&[0, 1, 0, 0, 0, 1], Err(FrameError::Length(1)));
        check_frame(&[0, 1, 0, 0, 0, 255], Err(FrameError::Length(255)));
        check_frame(&[0, 1, 0, 0, 0, 254], Ok(None));
    }
}
