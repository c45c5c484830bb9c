//! [`SimLink`]: a whole site's bus in one sans-IO value, for the simulator.
//!
//! One call per simulation step moves every frame that is due: the gateway's heartbeats, setpoints,
//! requests and time go out, each battery takes in what reached it (as [`BatteryEvent`]s for its
//! firmware), the batteries' reports go back, and the gateway decodes them and supervises. Frames
//! pass through the real codec at the protocol's cycle times (step at 100 ms or finer for the
//! exact rates; coarser steps send one frame per message per step). Faults apply where they do on a
//! real bus: a per-attempt error probability (from [`crate::topology`]) through each sender's fault
//! confinement, and cut cables per battery. Every frame that reaches the bus can be logged in
//! candump format to any `io::Write` (the simulator's `--can-log FILE`).
//!
//! Deterministic: the error draws come from the seed given to [`SimLink::new`].

use crate::candump::CandumpWriter;
use crate::confinement::{Confinement, SplitMix64, TxOutcome};
use crate::frame::CanFrame;
use crate::gateway::{GatewayError, GatewayNode, Supervision};
use crate::messages::UnitIndex;
use crate::node::{BatteryEvent, BatteryIdentity, BatteryNode};
use crate::repr::EncodeError;
use melv_core::status::{BatteryCommand, BatteryStatus, UnitRequest};
use std::io::Write;

/// Why a link step failed. Frame errors are not failures (they are counted); these are.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("{what} has {got} entries for {units} batteries")]
    Arity {
        what: &'static str,
        got: usize,
        units: usize,
    },
    #[error("writing the CAN log: {0}")]
    Log(#[from] std::io::Error),
}

/// What one step delivered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepOutput {
    /// Per battery (index = unit - 1): what its firmware should be told.
    pub battery_events: Vec<Vec<BatteryEvent>>,
    /// Changes of the gateway's comm-loss verdicts (alert 63).
    pub supervision: Vec<Supervision>,
}

/// The bus of a site with `n` batteries, units 1..=n.
pub struct SimLink<W: Write> {
    gateway: GatewayNode,
    batteries: Vec<BatteryNode>,
    /// Index 0 is the gateway, i + 1 battery i.
    confinement: Vec<Confinement>,
    cut: Vec<bool>,
    /// Per battery: whether it has anything to report yet (see [`SimLink::set_reporting`]).
    reporting: Vec<bool>,
    error_rate: f64,
    rng: SplitMix64,
    log: Option<CandumpWriter<W>>,
    frames_on_bus: u64,
}

impl<W: Write> SimLink<W> {
    /// A site with batteries 1..=`n` (identities from `identities`, one per battery).
    pub fn new(identities: &[BatteryIdentity], seed: u64) -> Result<Self, LinkError> {
        let units: Vec<UnitIndex> = (1..=identities.len())
            .map(|i| UnitIndex::new(i as u8))
            .collect::<Result<_, _>>()
            .map_err(|_| LinkError::Arity {
                what: "identities",
                got: identities.len(),
                units: 6,
            })?;
        Ok(Self {
            gateway: GatewayNode::new(&units)?,
            batteries: units
                .iter()
                .zip(identities)
                .map(|(&u, &id)| BatteryNode::new(u, id))
                .collect(),
            confinement: vec![Confinement::default(); units.len() + 1],
            cut: vec![false; units.len()],
            reporting: vec![true; units.len()],
            error_rate: 0.0,
            rng: SplitMix64::new(seed),
            log: None,
            frames_on_bus: 0,
        })
    }

    /// Log every frame that reaches the bus; `epoch_unix_s` is the Unix time of `now_s = 0`.
    pub fn set_log(&mut self, out: W, iface: &str, epoch_unix_s: f64) {
        self.log = Some(CandumpWriter::new(out, iface, epoch_unix_s));
    }
    /// Take the log writer back (to flush and close it).
    pub fn take_log(&mut self) -> Option<CandumpWriter<W>> {
        self.log.take()
    }
    /// Per-attempt frame error probability of the bus (see `topology::frame_error_rate`).
    pub fn set_error_rate(&mut self, p: f64) {
        self.error_rate = p;
    }
    /// Cut (or restore) battery `unit`'s CAN cable: nothing from or to it gets through.
    pub fn set_cut(&mut self, unit: UnitIndex, cut: bool) {
        if let Some(c) = self.cut.get_mut(unit.slot()) {
            *c = cut;
        }
    }
    /// Whether battery `unit` sends its reports (default yes). A unit that has not measured yet
    /// has nothing true to say: a report then would put a 0 V pack and 0 degC cells next to its
    /// stored SOC (issue 15). It still hears the gateway.
    pub fn set_reporting(&mut self, unit: UnitIndex, on: bool) {
        if let Some(r) = self.reporting.get_mut(unit.slot()) {
            *r = on;
        }
    }
    pub fn gateway(&self) -> &GatewayNode {
        &self.gateway
    }
    /// The gateway, to set commands or stop heartbeats (fault injection).
    pub fn gateway_mut(&mut self) -> &mut GatewayNode {
        &mut self.gateway
    }
    pub fn battery(&self, unit: UnitIndex) -> Option<&BatteryNode> {
        self.batteries.get(unit.slot())
    }
    pub fn frames_on_bus(&self) -> u64 {
        self.frames_on_bus
    }
    /// Error frames and bus-off events on the bus so far.
    pub fn error_counts(&self) -> (u64, u64) {
        self.confinement.iter().fold((0, 0), |(e, b), c| {
            (e + c.error_frames, b + c.bus_off_events)
        })
    }

    fn put_on_bus(
        &mut self,
        now_s: f64,
        sender: usize,
        frame: &CanFrame,
    ) -> Result<bool, LinkError> {
        if self.confinement[sender].transmit(now_s, self.error_rate, &mut self.rng)
            == TxOutcome::BusOff
        {
            return Ok(false);
        }
        self.frames_on_bus += 1;
        if let Some(log) = self.log.as_mut() {
            log.write(now_s, frame)?;
        }
        Ok(true)
    }

    /// Move one step's frames: [`SimLink::command`] then [`SimLink::report`] at the same instant.
    /// `commands[i]` is the gateway's order for battery i + 1 and `statuses[i]` that battery's
    /// firmware report at `now_s`.
    pub fn step(
        &mut self,
        now_s: f64,
        unix_time_ms: Option<u64>,
        commands: &[BatteryCommand],
        requests: &[(UnitIndex, UnitRequest)],
        statuses: &[BatteryStatus],
    ) -> Result<StepOutput, LinkError> {
        self.check_arity("statuses", statuses.len())?;
        let battery_events = self.command(now_s, unix_time_ms, commands, requests)?;
        let supervision = self.report(now_s, statuses)?;
        Ok(StepOutput {
            battery_events,
            supervision,
        })
    }

    fn check_arity(&self, what: &'static str, got: usize) -> Result<(), LinkError> {
        let units = self.batteries.len();
        if got != units {
            return Err(LinkError::Arity { what, got, units });
        }
        Ok(())
    }

    /// The gateway's half of a step: its heartbeats with `commands` (one per battery), `requests`
    /// and time go out, and each battery takes in what reached it. Returns, per battery (index =
    /// unit - 1), what its firmware should be told.
    pub fn command(
        &mut self,
        now_s: f64,
        unix_time_ms: Option<u64>,
        commands: &[BatteryCommand],
        requests: &[(UnitIndex, UnitRequest)],
    ) -> Result<Vec<Vec<BatteryEvent>>, LinkError> {
        self.check_arity("commands", commands.len())?;
        for (i, c) in commands.iter().enumerate() {
            self.gateway.set_command(self.batteries[i].unit(), *c)?;
        }
        for &(u, r) in requests {
            self.gateway.request(u, r)?;
        }
        let mut events = vec![Vec::new(); self.batteries.len()];
        for f in self.gateway.poll_transmit(now_s, unix_time_ms)? {
            if self.put_on_bus(now_s, 0, &f)? {
                for (i, b) in self.batteries.iter_mut().enumerate() {
                    if !self.cut[i] {
                        events[i].extend(b.handle_frame(now_s, &f));
                    }
                }
            }
        }
        Ok(events)
    }

    /// The batteries' half of a step: each sends the reports due with `statuses[i]` (battery
    /// i + 1's firmware report at `now_s`), the gateway decodes them and supervises. Returns the
    /// changes of the gateway's comm-loss verdicts (alert 63).
    pub fn report(
        &mut self,
        now_s: f64,
        statuses: &[BatteryStatus],
    ) -> Result<Vec<Supervision>, LinkError> {
        self.check_arity("statuses", statuses.len())?;
        for (i, status) in statuses.iter().enumerate() {
            if !self.reporting[i] {
                continue;
            }
            let frames = self.batteries[i].poll_transmit(now_s, status)?;
            if self.cut[i] {
                continue;
            }
            for f in frames {
                if self.put_on_bus(now_s, i + 1, &f)? {
                    // Batteries ignore each other's reports; only the gateway takes them in. A
                    // refused frame is counted in the gateway's stats.
                    let _ = self.gateway.handle_frame(now_s, &f);
                }
            }
        }
        Ok(self.gateway.supervise(now_s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use melv_core::{AlertCode, AlertSet, Lifecycle, SocLed, StatusLed};

    fn st(soc: f64) -> BatteryStatus {
        BatteryStatus {
            soc,
            soh: 1.0,
            pack_v: 26.5,
            pack_current_a: 10.0,
            ac_power_w: 250.0,
            reactive_power_var: 0.0,
            min_cell_v: 3.3,
            max_cell_v: 3.31,
            min_temp_c: 20.0,
            max_temp_c: 21.0,
            max_charge_w: 3750.0,
            max_discharge_w: 4500.0,
            alerts: AlertSet::EMPTY,
            lifecycle: Lifecycle::Active,
            soc_led: SocLed::SolidBlue { percent: 50 },
            status_led: StatusLed::Dim,
            ac_charged_wh: 0.0,
            ac_discharged_wh: 0.0,
        }
    }

    fn ids(n: usize) -> Vec<BatteryIdentity> {
        (0..n)
            .map(|i| BatteryIdentity {
                serial: i as u32,
                firmware: (1, 0, 0),
            })
            .collect()
    }

    #[test]
    fn commands_reach_batteries_and_reports_reach_the_gateway() {
        let mut link: SimLink<Vec<u8>> = SimLink::new(&ids(2), 1).unwrap();
        link.set_log(Vec::new(), "can0", 1_700_000_000.0);
        let cmd = [
            BatteryCommand {
                active_power_w: 800.0,
                ..Default::default()
            },
            BatteryCommand::default(),
        ];
        let out = link
            .step(
                0.0,
                Some(1_700_000_000_000),
                &cmd,
                &[(UnitIndex::new(2).unwrap(), UnitRequest::Reset)],
                &[st(0.5), st(0.7)],
            )
            .unwrap();
        let time = BatteryEvent::Time {
            unix_time_ms: 1_700_000_000_000,
        };
        assert_eq!(
            out.battery_events[0],
            vec![time, BatteryEvent::Command(cmd[0])]
        );
        assert_eq!(
            out.battery_events[1],
            vec![
                time,
                BatteryEvent::Command(cmd[1]),
                BatteryEvent::Request(UnitRequest::Reset)
            ]
        );
        let u2 = UnitIndex::new(2).unwrap();
        assert!((link.gateway().status(u2).unwrap().soc - 0.7).abs() < 1e-4);
        // 1 time + 2 heartbeats + 1 request + 2 x 6 reports.
        assert_eq!(link.frames_on_bus(), 16);
        let log = String::from_utf8(link.take_log().unwrap().into_inner()).unwrap();
        assert_eq!(log.lines().count(), 16);
        assert!(log.starts_with("(1700000000.000000) can0 100#"), "{log}");
    }

    #[test]
    fn a_cut_cable_raises_63_for_that_battery_only() {
        let mut link: SimLink<std::io::Sink> = SimLink::new(&ids(2), 1).unwrap();
        let cmd = [BatteryCommand::default(); 2];
        let mut changes = Vec::new();
        // One-second steps, as a long simulation takes them.
        for s in 0..30 {
            let now = f64::from(s);
            if s == 10 {
                link.set_cut(UnitIndex::new(1).unwrap(), true);
            }
            if s == 20 {
                link.set_cut(UnitIndex::new(1).unwrap(), false);
            }
            for c in link
                .step(now, None, &cmd, &[], &[st(0.5), st(0.6)])
                .unwrap()
                .supervision
            {
                changes.push((s, c));
            }
        }
        let u1 = UnitIndex::new(1).unwrap();
        // Last heard at 9 s; at 11 s it has been silent for 2 s > 1 s (the step is the granularity).
        assert_eq!(
            changes,
            vec![(11, Supervision::Lost(u1)), (20, Supervision::Restored(u1))]
        );
        assert!(!link
            .gateway()
            .alerts(UnitIndex::new(2).unwrap())
            .contains(AlertCode::COMMUNICATION_LOST));
    }

    #[test]
    fn a_battery_with_nothing_to_report_stays_silent() {
        let mut link: SimLink<Vec<u8>> = SimLink::new(&ids(1), 1).unwrap();
        link.set_log(Vec::new(), "can0", 0.0);
        let u1 = UnitIndex::new(1).unwrap();
        link.set_reporting(u1, false);
        let cmd = [BatteryCommand::default()];
        let out = link.step(0.0, None, &cmd, &[], &[st(0.5)]).unwrap();
        // It hears the heartbeat, and sends nothing.
        assert_eq!(out.battery_events[0], vec![BatteryEvent::Command(cmd[0])]);
        assert_eq!(link.frames_on_bus(), 1);
        assert!(link.gateway().status(u1).is_none());
        link.set_reporting(u1, true);
        link.step(0.1, None, &cmd, &[], &[st(0.5)]).unwrap();
        assert!((link.gateway().status(u1).unwrap().soc - 0.5).abs() < 1e-4);
    }

    #[test]
    fn wrong_arity_is_an_error() {
        let mut link: SimLink<std::io::Sink> = SimLink::new(&ids(2), 1).unwrap();
        let e = link
            .step(
                0.0,
                None,
                &[BatteryCommand::default()],
                &[],
                &[st(0.5), st(0.5)],
            )
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("commands has 1 entries for 2 batteries"),
            "{e}"
        );
        assert!(SimLink::<std::io::Sink>::new(&ids(7), 1).is_err());
    }
}
