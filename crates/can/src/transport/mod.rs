//! Transports: one trait, several ways to move frames.
//!
//! Everything above this module is sans-IO; this is where frames meet threads and sockets.
//! * [`inproc`]: an in-process bus (tests, the simulator), with fault confinement and muting.
//! * [`socketcand`]: the socketcand ASCII protocol over TCP, server and client, so python-can
//!   (`interface="socketcand"`) and other socketcand clients join our bus.
//! * `socketcan` (cargo feature `socketcan`): Linux SocketCAN, for a real `can0`.
//! * [`reconnect`]: any of them behind a connection that is re-made with backoff when it drops, so
//!   a gateway survives its socketcand server going away and starts before it is up.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the transports are the IO edge of the CAN crate: they wait on sockets and threads with deadlines"
)]

pub mod inproc;
pub mod reconnect;
#[cfg(feature = "socketcan")]
pub mod socketcan;
pub mod socketcand;

use crate::frame::{CanFrame, FrameError};
use std::time::Duration;

/// Why a transport could not move a frame.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: unexpected {got:?}")]
    Protocol { context: String, got: String },
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("the transport is closed")]
    Closed,
    #[error("the node is bus-off (too many transmit errors); the frame was not sent")]
    BusOff,
}

impl TransportError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        TransportError::Io {
            context: context.into(),
            source,
        }
    }
}

/// A way to put frames on a CAN bus and take them off.
pub trait Transport: Send {
    /// Put one frame on the bus.
    fn send(&mut self, frame: &CanFrame) -> Result<(), TransportError>;
    /// Wait up to `timeout` for the next frame from the bus; `Duration::ZERO` only polls.
    fn recv(&mut self, timeout: Duration) -> Result<Option<CanFrame>, TransportError>;
}
