//! An in-process CAN bus: every port hears every other port's frames, in order.
//!
//! Used by tests and the simulator. Two faults can be injected: a per-attempt error probability
//! (what a badly terminated bus does, see `topology`), fed through each sender's fault confinement
//! so a bad enough bus silences nodes exactly as a real one does; and muting a port (a pulled
//! cable). Queues are bounded ([`QUEUE_CAP`]); a reader that falls behind loses its oldest frames
//! and the loss is counted.

use super::{Transport, TransportError};
use crate::confinement::{Confinement, SplitMix64, TxOutcome};
use crate::frame::CanFrame;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Frames a port may hold unread: 10 s of a full six-battery bus (about 230 frames/s).
pub const QUEUE_CAP: usize = 4096;

#[derive(Debug, Default)]
struct Port {
    queue: VecDeque<CanFrame>,
    muted: bool,
    confinement: Confinement,
    overflowed: u64,
}

#[derive(Debug)]
struct State {
    ports: Vec<Port>,
    error_rate: f64,
    rng: SplitMix64,
    now_s: f64,
    delivered: u64,
}

/// Counters of the whole bus.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct BusStats {
    pub delivered: u64,
    pub error_frames: u64,
    pub frames_lost_bus_off: u64,
    pub bus_off_events: u64,
    pub overflowed: u64,
}

/// The bus; clone it freely, all clones are the same bus.
#[derive(Debug, Clone)]
pub struct InProcBus {
    inner: Arc<(Mutex<State>, Condvar)>,
}

impl Default for InProcBus {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcBus {
    pub fn new() -> Self {
        Self {
            inner: Arc::new((
                Mutex::new(State {
                    ports: Vec::new(),
                    error_rate: 0.0,
                    rng: SplitMix64::new(0),
                    now_s: 0.0,
                    delivered: 0,
                }),
                Condvar::new(),
            )),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain counters behind; keep using them.
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new node on the bus.
    pub fn connect(&self) -> InProcPort {
        let mut st = self.lock();
        st.ports.push(Port::default());
        InProcPort {
            bus: self.clone(),
            id: st.ports.len() - 1,
            muted_drops: 0,
        }
    }

    /// Per-attempt frame error probability, and the seed of the draws (replayable).
    pub fn set_error_rate(&self, p: f64, seed: u64) {
        let mut st = self.lock();
        st.error_rate = p;
        st.rng = SplitMix64::new(seed);
    }

    /// The bus's notion of time for bus-off recovery, s (the simulator's clock).
    pub fn set_time(&self, now_s: f64) {
        self.lock().now_s = now_s;
    }

    pub fn stats(&self) -> BusStats {
        let st = self.lock();
        let mut s = BusStats {
            delivered: st.delivered,
            ..Default::default()
        };
        for p in &st.ports {
            s.error_frames += p.confinement.error_frames;
            s.frames_lost_bus_off += p.confinement.frames_lost;
            s.bus_off_events += p.confinement.bus_off_events;
            s.overflowed += p.overflowed;
        }
        s
    }
}

/// One node's connection to an [`InProcBus`].
#[derive(Debug)]
pub struct InProcPort {
    bus: InProcBus,
    id: usize,
    muted_drops: u64,
}

impl InProcPort {
    /// Cut this node off (its frames go nowhere; it still hears the bus).
    pub fn set_muted(&mut self, muted: bool) {
        self.bus.lock().ports[self.id].muted = muted;
    }
    pub fn muted_drops(&self) -> u64 {
        self.muted_drops
    }
    /// Frames waiting to be read.
    pub fn pending(&self) -> usize {
        self.bus.lock().ports[self.id].queue.len()
    }
}

impl Transport for InProcPort {
    fn send(&mut self, frame: &CanFrame) -> Result<(), TransportError> {
        let mut st = self.bus.lock();
        if st.ports[self.id].muted {
            self.muted_drops += 1;
            return Ok(());
        }
        let (now, p) = (st.now_s, st.error_rate);
        let State { ports, rng, .. } = &mut *st;
        if ports[self.id].confinement.transmit(now, p, rng) == TxOutcome::BusOff {
            return Err(TransportError::BusOff);
        }
        for (i, port) in ports.iter_mut().enumerate() {
            if i != self.id {
                if port.queue.len() >= QUEUE_CAP {
                    port.queue.pop_front();
                    port.overflowed += 1;
                }
                port.queue.push_back(*frame);
                // The bound the drop above keeps (a reader that falls behind loses frames, the
                // memory stays bounded).
                assert!(
                    port.queue.len() <= QUEUE_CAP,
                    "in-process CAN queue within QUEUE_CAP"
                );
            }
        }
        st.delivered += 1;
        self.bus.inner.1.notify_all();
        Ok(())
    }

    fn recv(&mut self, timeout: Duration) -> Result<Option<CanFrame>, TransportError> {
        let deadline = Instant::now() + timeout;
        let mut st = self.bus.lock();
        loop {
            if let Some(f) = st.ports[self.id].queue.pop_front() {
                return Ok(Some(f));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            st = self
                .bus
                .inner
                .1
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(id: u32) -> CanFrame {
        CanFrame::new(id, &[1, 2, 3]).unwrap()
    }

    #[test]
    fn every_other_port_hears_a_frame_in_order() {
        let bus = InProcBus::new();
        let (mut a, mut b, mut c) = (bus.connect(), bus.connect(), bus.connect());
        a.send(&f(0x181)).unwrap();
        a.send(&f(0x182)).unwrap();
        c.send(&f(0x111)).unwrap();
        let drain = |p: &mut InProcPort| {
            let mut ids = Vec::new();
            while let Some(fr) = p.recv(Duration::ZERO).unwrap() {
                ids.push(fr.id());
            }
            ids
        };
        assert_eq!(drain(&mut a), vec![0x111]);
        assert_eq!(drain(&mut b), vec![0x181, 0x182, 0x111]);
        assert_eq!(drain(&mut c), vec![0x181, 0x182]);
    }

    #[test]
    fn a_muted_port_is_not_heard() {
        let bus = InProcBus::new();
        let (mut a, mut b) = (bus.connect(), bus.connect());
        a.set_muted(true);
        a.send(&f(0x181)).unwrap();
        assert_eq!(b.recv(Duration::ZERO).unwrap(), None);
        assert_eq!(a.muted_drops(), 1);
        a.set_muted(false);
        a.send(&f(0x181)).unwrap();
        assert_eq!(b.recv(Duration::ZERO).unwrap(), Some(f(0x181)));
    }

    #[test]
    fn a_dead_bus_drives_senders_bus_off() {
        let bus = InProcBus::new();
        bus.set_error_rate(1.0, 3);
        let (mut a, mut b) = (bus.connect(), bus.connect());
        assert!(matches!(a.send(&f(0x181)), Err(TransportError::BusOff)));
        assert_eq!(b.recv(Duration::ZERO).unwrap(), None);
        let s = bus.stats();
        assert_eq!((s.bus_off_events, s.delivered), (1, 0));
        assert_eq!(s.error_frames, 32);
    }

    #[test]
    fn queues_are_bounded() {
        let bus = InProcBus::new();
        let (mut a, b) = (bus.connect(), bus.connect());
        for _ in 0..QUEUE_CAP + 5 {
            a.send(&f(0x181)).unwrap();
        }
        assert_eq!(b.pending(), QUEUE_CAP);
        assert_eq!(bus.stats().overflowed, 5);
    }
}
