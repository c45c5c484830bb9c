//! A transport that outlives its connection: [`Reconnecting`].
//!
//! A gateway on a socketcand server (or a SocketCAN interface) must not stop when the server does:
//! the batteries keep their safe state on their own (no heartbeat for 1 s, zero power), and the
//! gateway must keep running its site, raise 63 for the units it no longer hears (its supervision
//! does that by itself once no frames arrive) and take the bus back when the server returns. It
//! must also start while the server is not up yet.
//!
//! [`Reconnecting`] wraps whatever opens the real transport. While connected it passes frames
//! through; a send or receive error drops the connection. While disconnected, sends are dropped and
//! counted (a heartbeat that cannot be sent is not worth queueing: the next one supersedes it) and
//! receives return nothing; a new connection is attempted after a backoff delay that doubles from
//! [`BACKOFF_FIRST`] to [`BACKOFF_MAX`] and starts again from the first after a success. Each
//! attempt runs on its own thread, so a slow connect or handshake never stalls the caller's
//! control loop; at most one attempt is in flight.
//!
//! What happened is reported through an optional callback ([`LinkEvent`]), for the host's log.

use super::{Transport, TransportError};
use crate::frame::CanFrame;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The first wait before reconnecting. Half a second: twice the socketcand handshake's settle time,
/// and short against the gateway's 1 s silence verdict, so a server restart costs little.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// The longest wait between attempts: a returning server is taken back within 10 s at worst,
/// while a server down for hours costs one connection attempt per 10 s.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Opens the real transport (connects, does the handshake). Called on a background thread.
pub type Opener = Arc<dyn Fn() -> Result<Box<dyn Transport>, TransportError> + Send + Sync>;

/// A change of the connection, for the host's log.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// Connected (again); `attempt` counts attempts since the last connection was lost.
    Connected { attempt: u32 },
    /// The connection was lost; frames are dropped until it is back.
    Lost { reason: String },
    /// An attempt failed; the next one is in `retry_in`.
    Failed { reason: String, retry_in: Duration },
}

impl std::fmt::Display for LinkEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkEvent::Connected { attempt } => write!(f, "connected (attempt {attempt})"),
            LinkEvent::Lost { reason } => write!(
                f,
                "connection lost ({reason}); reconnecting, units not heard meanwhile get alert 63"
            ),
            LinkEvent::Failed { reason, retry_in } => write!(
                f,
                "cannot connect ({reason}); next attempt in {:.1} s",
                retry_in.as_secs_f64()
            ),
        }
    }
}

/// The delay sequence: doubling from `first` to `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max: max.max(first),
            next: first,
        }
    }
    /// The wait before the next attempt; each call doubles the one after, up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
    /// After a success: start again from the first delay.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

type Pending = Receiver<Result<Box<dyn Transport>, TransportError>>;
/// Where [`LinkEvent`]s go.
type EventSink = Box<dyn FnMut(&LinkEvent) + Send>;

/// A transport that reconnects (see the module header).
pub struct Reconnecting {
    open: Opener,
    inner: Option<Box<dyn Transport>>,
    pending: Option<Pending>,
    retry_at: Option<Instant>,
    backoff: Backoff,
    attempts: u32,
    on_event: Option<EventSink>,
    /// Frames not sent because there was no connection.
    pub dropped_sends: u64,
    /// Connections made so far.
    pub connections: u64,
}

impl Reconnecting {
    /// Starts the first connection attempt at once (in the background) and returns.
    #[allow(
        clippy::disallowed_methods,
        reason = "the reconnect schedule is wall time"
    )]
    pub fn new(open: Opener) -> Self {
        let mut r = Self {
            open,
            inner: None,
            pending: None,
            retry_at: Some(Instant::now()),
            backoff: Backoff::new(BACKOFF_FIRST, BACKOFF_MAX),
            attempts: 0,
            on_event: None,
            dropped_sends: 0,
            connections: 0,
        };
        r.poll_connect();
        r
    }

    /// Report every [`LinkEvent`] to `f` (e.g. the gateway's log).
    pub fn on_event(mut self, f: impl FnMut(&LinkEvent) + Send + 'static) -> Self {
        self.on_event = Some(Box::new(f));
        self
    }

    /// Another backoff schedule (tests).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    pub fn is_connected(&self) -> bool {
        self.inner.is_some()
    }

    fn event(&mut self, e: LinkEvent) {
        if let Some(f) = self.on_event.as_mut() {
            f(&e);
        }
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "the reconnect schedule is wall time"
    )]
    fn lose(&mut self, e: &TransportError) {
        self.inner = None;
        self.attempts = 0;
        self.backoff.reset();
        // The first retry at once: a server that restarts is usually back quickly.
        self.retry_at = Some(Instant::now());
        self.event(LinkEvent::Lost {
            reason: e.to_string(),
        });
    }

    /// Take a finished attempt's result, or start an attempt when one is due.
    #[allow(
        clippy::disallowed_methods,
        reason = "the reconnect schedule is wall time"
    )]
    fn poll_connect(&mut self) {
        if self.inner.is_some() {
            return;
        }
        if let Some(rx) = &self.pending {
            let result = match rx.try_recv() {
                Ok(r) => r,
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => Err(TransportError::Closed),
            };
            self.pending = None;
            match result {
                Ok(t) => {
                    self.inner = Some(t);
                    self.connections += 1;
                    self.backoff.reset();
                    let attempt = self.attempts;
                    self.attempts = 0;
                    self.event(LinkEvent::Connected { attempt });
                }
                Err(e) => {
                    let retry_in = self.backoff.next_delay();
                    self.retry_at = Some(Instant::now() + retry_in);
                    self.event(LinkEvent::Failed {
                        reason: e.to_string(),
                        retry_in,
                    });
                }
            }
            return;
        }
        if self.retry_at.is_some_and(|t| Instant::now() >= t) {
            self.retry_at = None;
            self.attempts += 1;
            let (tx, rx) = mpsc::channel();
            let open = Arc::clone(&self.open);
            thread::spawn(move || {
                // The receiver may be gone (the transport was dropped): nothing to do then.
                let _ = tx.send(open());
            });
            self.pending = Some(rx);
        }
    }
}

impl Transport for Reconnecting {
    fn send(&mut self, frame: &CanFrame) -> Result<(), TransportError> {
        self.poll_connect();
        let Some(t) = self.inner.as_mut() else {
            self.dropped_sends += 1;
            return Ok(());
        };
        if let Err(e) = t.send(frame) {
            self.dropped_sends += 1;
            self.lose(&e);
        }
        Ok(())
    }

    fn recv(&mut self, timeout: Duration) -> Result<Option<CanFrame>, TransportError> {
        self.poll_connect();
        let Some(t) = self.inner.as_mut() else {
            if !timeout.is_zero() {
                // Honour the wait (callers use it as their tick), without a connection to wait on.
                thread::sleep(timeout.min(BACKOFF_FIRST));
            }
            return Ok(None);
        };
        match t.recv(timeout) {
            Ok(f) => Ok(f),
            Err(e) => {
                self.lose(&e);
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::socketcand::{SocketcandClient, SocketcandServer};
    use std::sync::Mutex;

    /// Bind the server on `addr`, retrying while the old listener's port is being released.
    fn serve(addr: &str) -> SocketcandServer {
        for _ in 0..100 {
            if let Ok(s) = SocketcandServer::bind(addr, "can0") {
                return s;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("cannot bind {addr}");
    }

    /// Receive (10 ms at a time, at most 10 s) until `cond` holds.
    fn until(r: &mut Reconnecting, mut cond: impl FnMut(&Reconnecting) -> bool) {
        for _ in 0..1000 {
            if cond(r) {
                return;
            }
            let _ = r.recv(Duration::from_millis(10)).unwrap();
        }
        panic!("condition not reached within 1000 polls");
    }

    /// Starts with no server, connects when one appears, survives its loss, takes the next one.
    #[test]
    fn starts_without_a_server_and_reconnects_after_it_drops() {
        let addr = {
            let probe = SocketcandServer::bind("127.0.0.1:0", "can0").unwrap();
            probe.local_addr().to_string()
        };
        let target = addr.clone();
        let open: Opener = Arc::new(move || {
            SocketcandClient::connect(&target, "can0").map(|c| Box::new(c) as Box<dyn Transport>)
        });
        let events = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&events);
        let ms = Duration::from_millis;
        let mut r = Reconnecting::new(open)
            .with_backoff(Backoff::new(ms(20), ms(100)))
            .on_event(move |e| log.lock().unwrap().push(e.clone()));
        let f = CanFrame::new(0x111, &[1]).unwrap();
        // No server: sends are dropped and counted, receives return nothing, no error surfaces.
        until(&mut r, |_| {
            events
                .lock()
                .unwrap()
                .iter()
                .any(|e| matches!(e, LinkEvent::Failed { .. }))
        });
        r.send(&f).unwrap();
        assert!(!r.is_connected() && r.dropped_sends >= 1);
        for round in 1..=2u64 {
            let mut server = serve(&addr);
            until(&mut r, |r| r.is_connected());
            assert_eq!(r.connections, round);
            // Frames flow both ways once the server streams to us.
            for _ in 0..200 {
                if server.raw_clients() == 1 {
                    break;
                }
                thread::sleep(ms(10));
            }
            r.send(&f).unwrap();
            assert_eq!(server.recv(Duration::from_secs(5)).unwrap(), Some(f));
            drop(server);
            until(&mut r, |r| !r.is_connected());
        }
        let ev = events.lock().unwrap();
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, LinkEvent::Lost { .. }))
                .count(),
            2,
            "{ev:?}"
        );
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(500), ms(10_000));
        let got: Vec<_> = (0..7).map(|_| b.next_delay()).collect();
        assert_eq!(
            got,
            [500, 1000, 2000, 4000, 8000, 10_000, 10_000]
                .map(ms)
                .to_vec()
        );
        b.reset();
        assert_eq!(b.next_delay(), ms(500));
    }
}
