//! Linux SocketCAN (cargo feature `socketcan`): our frames on a real interface such as `can0`.
//!
//! Bring the interface up at the protocol's bit rate first, e.g.
//! `ip link set can0 up type can bitrate 500000 restart-ms 100`. Remote, error and extended-id
//! frames are not part of the protocol and are skipped (counted in `skipped`).

use super::{Transport, TransportError};
use crate::frame::CanFrame;
use socketcan::{CanFrame as ScFrame, CanSocket, EmbeddedFrame, Id, Socket, StandardId};
use std::io::ErrorKind;
use std::time::{Duration, Instant};

/// A raw CAN socket bound to one interface.
pub struct SocketCanTransport {
    sock: CanSocket,
    iface: String,
    /// Frames read that are not base-format data frames.
    pub skipped: u64,
}

impl SocketCanTransport {
    pub fn open(iface: &str) -> Result<Self, TransportError> {
        let sock = CanSocket::open(iface)
            .map_err(|e| TransportError::io(format!("socketcan: open {iface}"), e))?;
        Ok(Self {
            sock,
            iface: iface.to_string(),
            skipped: 0,
        })
    }
}

impl Transport for SocketCanTransport {
    fn send(&mut self, frame: &CanFrame) -> Result<(), TransportError> {
        let id = StandardId::new(frame.id()).ok_or(TransportError::Frame(
            crate::frame::FrameError::IdOutOfRange(u32::from(frame.id())),
        ))?;
        let f = ScFrame::new(id, frame.data()).ok_or(TransportError::Frame(
            crate::frame::FrameError::TooLong(frame.len()),
        ))?;
        self.sock
            .write_frame(&f)
            .map_err(|e| TransportError::io(format!("socketcan: write on {}", self.iface), e))
    }

    fn recv(&mut self, timeout: Duration) -> Result<Option<CanFrame>, TransportError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_micros(100));
            let f = match self.sock.read_frame_timeout(left) {
                Ok(f) => f,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) => {
                    return Err(TransportError::io(
                        format!("socketcan: read on {}", self.iface),
                        e,
                    ))
                }
            };
            match (&f, f.id()) {
                (ScFrame::Data(_), Id::Standard(sid)) => {
                    return Ok(Some(CanFrame::new(u32::from(sid.as_raw()), f.data())?))
                }
                _ => self.skipped += 1,
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }
}
