//! The Modbus TCP server: tokio tasks around the sans-IO device.
//!
//! One task accepts; one task per client reads bytes, cuts frames ([`crate::pdu::frame_len`]) and
//! answers each under a short lock of the shared device. A client that sends garbage is
//! disconnected (its own task ends); the others never notice. Bounds (TigerBeetle style,
//! ARCHITECTURE.md 4): at most [`ServerConfig::max_clients`] connections, one ADU buffer of 2 x 260
//! bytes each, and an idle timeout so that dead clients free their slot.
//!
//! Why hand-written framing rather than `tokio-modbus`: the MBAP header is 7 bytes and the four
//! function codes fit in `pdu.rs`; owning it lets every malformed frame get the exact exception
//! the tests specify (unknown function codes, bad byte counts, unit ids) and keeps the parsing
//! testable without sockets.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the Modbus TCP server is the IO edge of this crate: it owns the sockets and their idle timers"
)]

use crate::control::ClientId;
use crate::device::SunSpecDevice;
use crate::pdu::{frame_len, handle_adu, MAX_ADU};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The device as the server and the gateway share it.
pub type SharedDevice = Arc<Mutex<SunSpecDevice>>;
/// Monotonic seconds, the same clock the gateway's control cycle uses (for revert timers).
pub type Clock = Arc<dyn Fn() -> f64 + Send + Sync>;

/// Server settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerConfig {
    /// The unit id the device answers to (Modbus TCP: 1 by default for a single device; SunSpec
    /// devices commonly use 1 and pysunspec2's default is 1).
    pub unit_id: u8,
    /// Connections served at once; more are accepted and closed at once.
    pub max_clients: usize,
    /// A client that sends nothing for this long is disconnected, s.
    pub idle_timeout_s: f64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            unit_id: 1,
            // Home Assistant, evcc and a SCADA at once, with room for tools: 16.
            max_clients: 16,
            // Home Assistant polls every 30 s by default (modbus `scan_interval`); 120 s leaves
            // room for a missed poll or two before a silent client loses its slot.
            idle_timeout_s: 120.0,
        }
    }
}

/// Locks the device; a panic elsewhere while holding the lock leaves plain data, still usable.
pub fn lock(dev: &SharedDevice) -> std::sync::MutexGuard<'_, SunSpecDevice> {
    dev.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves clients on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    device: SharedDevice,
    clock: Clock,
    cfg: ServerConfig,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(cfg.max_clients));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            // Per-connection accept errors (e.g. the peer reset before accept) must not stop
            // the server; a short pause avoids spinning when descriptors run out.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let (device, clock) = (device.clone(), clock.clone());
        tokio::spawn(async move {
            let _ = client(stream, peer, device, clock, cfg).await;
            drop(permit);
        });
    }
}

async fn client(
    mut stream: TcpStream,
    peer: SocketAddr,
    device: SharedDevice,
    clock: Clock,
    cfg: ServerConfig,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let idle = Duration::from_secs_f64(cfg.idle_timeout_s.max(0.1));
    let mut buf: Vec<u8> = Vec::with_capacity(2 * MAX_ADU);
    let mut chunk = [0u8; MAX_ADU];
    loop {
        let n = match tokio::time::timeout(idle, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) => return Ok(()),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        // Bounded: each pass removes one whole frame; a buffer holds at most two frames' bytes.
        loop {
            let len = match frame_len(&buf) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(_) => return Ok(()),
            };
            let response = {
                let mut dev = lock(&device);
                handle_adu(
                    &mut dev,
                    cfg.unit_id,
                    ClientId::Peer(peer.ip()),
                    clock(),
                    &buf[..len],
                )
            };
            buf.drain(..len);
            if !response.is_empty() {
                stream.write_all(&response).await?;
            }
        }
        if buf.len() > MAX_ADU {
            return Ok(());
        }
    }
}
