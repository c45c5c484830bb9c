//! A stand-in battery fleet that speaks the protocol, for interop tests and for gateway developers
//! who want a bus to talk to without the full twin (`melv can serve`, `examples/can_serve.rs`).
//!
//! The values are fixed per unit (see [`demo_status`]) so a test on the far side of a socket knows
//! what to expect; the behaviour that matters for the protocol is real: the lifecycle follows the
//! requests (activate, shut down, power on), the AC power follows the heartbeat's setpoint within
//! the datasheet limits, and drops to zero when the heartbeat is lost.

use crate::candump::CandumpWriter;
use crate::frame::CanFrame;
use crate::messages::UnitIndex;
use crate::node::{BatteryEvent, BatteryIdentity, BatteryNode};
use crate::repr::EncodeError;
use crate::transport::{Transport, TransportError};
use melv_core::status::{BatteryStatus, UnitRequest};
use melv_core::{spec, AlertCode, AlertSet, Lifecycle, SocLed, StatusLed};
use std::io::Write;
use std::time::{Duration, Instant};

/// The fixed part of unit `n`'s report: SOC 0.40 + 0.05 n, pack 26.0 + 0.1 n V, even units report
/// a worn battery (SOH 0.65, alert 57 Low SOH).
pub fn demo_status(unit: UnitIndex) -> BatteryStatus {
    let n = f64::from(unit.get());
    let worn = unit.get().is_multiple_of(2);
    let mut alerts = AlertSet::EMPTY;
    alerts.set(AlertCode::LOW_SOH, worn);
    BatteryStatus {
        soc: 0.40 + 0.05 * n,
        soh: if worn { 0.65 } else { 0.98 },
        pack_v: 26.0 + 0.1 * n,
        pack_current_a: 0.0,
        ac_power_w: 0.0,
        reactive_power_var: 0.0,
        min_cell_v: 3.25,
        max_cell_v: 3.27,
        min_temp_c: 24.5,
        max_temp_c: 26.0,
        max_charge_w: spec::MAX_CONTINUOUS_INPUT_VA,
        max_discharge_w: spec::MAX_CONTINUOUS_OUTPUT_VA,
        alerts,
        lifecycle: Lifecycle::Standby,
        soc_led: SocLed::Off,
        status_led: StatusLed::Dim,
        ac_charged_wh: 1234.5 * n,
        ac_discharged_wh: 1000.0 * n,
    }
}

/// Serial number of demo unit `n`.
pub fn demo_identity(unit: UnitIndex) -> BatteryIdentity {
    BatteryIdentity {
        serial: 24_110_000 + u32::from(unit.get()),
        firmware: (1, 0, 0),
    }
}

/// Demo batteries behind their CAN nodes.
#[derive(Debug, Clone)]
pub struct DemoBatteries {
    units: Vec<(BatteryNode, Lifecycle)>,
}

impl DemoBatteries {
    pub fn new(units: &[UnitIndex]) -> Self {
        Self {
            units: units
                .iter()
                .map(|&u| (BatteryNode::new(u, demo_identity(u)), Lifecycle::Standby))
                .collect(),
        }
    }

    /// Unit `unit`'s report at `now_s`.
    pub fn status(&self, unit: UnitIndex, now_s: f64) -> Option<BatteryStatus> {
        let (node, lifecycle) = self.units.iter().find(|(n, _)| n.unit() == unit)?;
        let mut st = demo_status(unit);
        st.lifecycle = *lifecycle;
        if *lifecycle == Lifecycle::Active {
            let cmd = node.command(now_s);
            st.ac_power_w = cmd
                .active_power_w
                .clamp(-st.max_charge_w, st.max_discharge_w)
                .round();
            st.reactive_power_var = cmd.reactive_power_var.round();
            st.pack_current_a = (st.ac_power_w / st.pack_v * 10.0).round() / 10.0;
            st.soc_led = SocLed::SolidBlue {
                percent: (st.soc * 100.0).round() as u8,
            };
        }
        if *lifecycle == Lifecycle::Off {
            st.status_led = StatusLed::Off;
        }
        Some(st)
    }

    pub fn handle_frame(&mut self, now_s: f64, frame: &CanFrame) {
        for (node, lifecycle) in self.units.iter_mut() {
            if let Some(BatteryEvent::Request(r)) = node.handle_frame(now_s, frame) {
                *lifecycle = match (r, *lifecycle) {
                    (UnitRequest::Activate, Lifecycle::Standby) => Lifecycle::Active,
                    (UnitRequest::Shutdown, _) => Lifecycle::Off,
                    (UnitRequest::PowerOn, Lifecycle::Off) => Lifecycle::Standby,
                    (_, l) => l,
                };
            }
        }
    }

    pub fn poll_transmit(&mut self, now_s: f64) -> Result<Vec<CanFrame>, EncodeError> {
        let statuses: Vec<BatteryStatus> = self
            .units
            .iter()
            .filter_map(|(n, _)| self.status(n.unit(), now_s))
            .collect();
        let mut out = Vec::new();
        for ((node, lifecycle), st) in self.units.iter_mut().zip(statuses) {
            // A unit that is shut down sends nothing: the gateway raises 63 for it (manual 6.3).
            let frames = node.poll_transmit(now_s, &st)?;
            if *lifecycle != Lifecycle::Off {
                out.extend(frames);
            }
        }
        Ok(out)
    }
}

/// What a [`run`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub sent: u64,
    pub received: u64,
}

/// Run the demo batteries on `bus` in real time (10 ms ticks) for `duration`, logging every frame
/// sent and received to `log` when given. `epoch_unix_s` stamps the log.
#[allow(
    clippy::disallowed_methods,
    reason = "runs the demo batteries against a real transport in real time, so it reads the clock"
)]
pub fn run<T: Transport, W: Write>(
    bus: &mut T,
    demo: &mut DemoBatteries,
    duration: Duration,
    mut log: Option<&mut CandumpWriter<W>>,
) -> Result<RunSummary, TransportError> {
    let tick = Duration::from_millis(10);
    let start = Instant::now();
    let mut summary = RunSummary::default();
    let log_err = |e: std::io::Error| TransportError::io("candump log", e);
    while start.elapsed() < duration {
        let now_s = start.elapsed().as_secs_f64();
        while let Some(f) = bus.recv(Duration::ZERO)? {
            summary.received += 1;
            if let Some(l) = log.as_deref_mut() {
                l.write(now_s, &f).map_err(log_err)?;
            }
            demo.handle_frame(now_s, &f);
        }
        let frames = demo
            .poll_transmit(now_s)
            .map_err(|e| TransportError::Protocol {
                context: "demo battery".into(),
                got: e.to_string(),
            })?;
        for f in frames {
            bus.send(&f)?;
            summary.sent += 1;
            if let Some(l) = log.as_deref_mut() {
                l.write(now_s, &f).map_err(log_err)?;
            }
        }
        // Wait for the next tick, or for a frame (which is handled at once on the next pass).
        let next = tick.saturating_sub(Duration::from_secs_f64(
            (start.elapsed().as_secs_f64() - now_s).max(0.0),
        ));
        if let Some(f) = bus.recv(next)? {
            summary.received += 1;
            let t = start.elapsed().as_secs_f64();
            if let Some(l) = log.as_deref_mut() {
                l.write(t, &f).map_err(log_err)?;
            }
            demo.handle_frame(t, &f);
        }
    }
    Ok(summary)
}
