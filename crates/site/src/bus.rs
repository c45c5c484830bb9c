//! [`BatteryBus`]: how the site core reaches its batteries, whatever is between them and the
//! gateway.
//!
//! One control cycle on a bus is three calls, in the order a real gateway works:
//! 1. [`BatteryBus::poll`]: take in what the batteries reported and supervise silence (code 63);
//!    afterwards [`BatteryBus::received`] is what the gateway knows of each unit;
//! 2. [`BatteryBus::send`]: put the controller's commands (and one-shot requests) on the bus;
//! 3. [`BatteryBus::advance`]: the batteries run for the cycle. For twins this steps their firmware
//!    and physics and measures their AC energy from their ledgers; for real batteries it only reads
//!    what they report.
//!
//! Three implementations: [`DirectBus`] (function calls, the simulator's fast path), [`CodecBus`]
//! (every message through the real CAN codec on a [`SimLink`]), and the live gateway's bus on a real
//! CAN transport (`melv_gateway::remote::RemoteBus`).

use crate::events::{Event, EventKind};
use melv_can::link::LinkError;
use melv_can::{BatteryEvent, SimLink, Supervision, UnitIndex};
use melv_core::status::{BatteryCommand, BatteryStatus, UnitRequest};
use melv_core::AlertCode;
use melv_model::{Environment, Faults};
use melv_unit::BatteryUnit;

/// Why a bus could not carry a cycle. Frames that do not decode are not failures (they are
/// counted); these are.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("CAN link: {0}")]
    Link(#[from] LinkError),
    /// A bus implemented outside this crate (a real transport) failed.
    #[error("{0}")]
    Other(String),
}

/// What one unit did over a cycle, as the site balance needs it: mean AC powers, W. `charge_w` is
/// everything the unit drew at its AC terminals: the inverter's import and its auxiliary supply's
/// (electronics, fan, heater fed from AC while the grid is there).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UnitFlow {
    pub charge_w: f64,
    pub discharge_w: f64,
}

/// The batteries of a site, reached over some link (module doc).
pub trait BatteryBus {
    /// Number of batteries configured on the bus (units 1..=n).
    fn len(&self) -> usize;

    /// Whether no battery is configured.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take in the batteries' reports at `now_s` (monotonic s) and append the gateway's changed
    /// comm-loss verdicts (code 63) to `verdicts`.
    fn poll(
        &mut self,
        now_s: f64,
        unix_ms: Option<u64>,
        verdicts: &mut Vec<Supervision>,
    ) -> Result<(), BusError>;

    /// What the gateway knows of each unit after the last [`BatteryBus::poll`], unit 1 first.
    fn received(&self) -> &[BatteryStatus];

    /// Put the commands (one per unit) and one-shot requests on the bus at `now_s`.
    fn send(
        &mut self,
        now_s: f64,
        unix_ms: Option<u64>,
        commands: &[BatteryCommand],
        requests: &[(UnitIndex, UnitRequest)],
    ) -> Result<(), BusError>;

    /// The batteries run `[now_s, now_s + dt_s)` in `env`; `flows[i]` gets unit i + 1's AC energy
    /// over the cycle as mean powers.
    fn advance(&mut self, now_s: f64, dt_s: f64, env: &Environment, flows: &mut [UnitFlow]);

    /// Mean SOC of the batteries at the end of the last [`BatteryBus::advance`], as reported.
    fn soc_mean(&self) -> f64;

    /// The simulated units, when they are this process's own (empty for real batteries).
    fn units(&self) -> &[BatteryUnit] {
        &[]
    }

    /// Switch a unit hardware fault of `event` (fan, heater, micro-short) on or off in unit `slot`
    /// (0-based). Real batteries are not ours to break: the default does nothing.
    fn set_fault(&mut self, _slot: usize, _event: &Event, _on: bool) {}

    /// Cut or restore unit `slot`'s CAN cable (0-based). Only a bus with cables can.
    fn set_cut(&mut self, _slot: usize, _cut: bool) {}

    /// Serve the bus between control cycles (real buses need heartbeats every 100 ms); appends
    /// changed comm-loss verdicts. Buses that move only in whole cycles do nothing.
    fn pump(
        &mut self,
        _now_s: f64,
        _unix_ms: Option<u64>,
        _verdicts: &mut Vec<Supervision>,
    ) -> Result<(), BusError> {
        Ok(())
    }

    /// The CAN serial number (BAT_IDENT) unit `slot` (0-based) announced, where the bus learns it.
    fn serial(&self, _slot: usize) -> Option<u32> {
        None
    }
}

/// Switch a unit hardware fault of `e` on or off in `f` (fan, heater, micro-short); other kinds are
/// not unit hardware and change nothing here.
pub fn set_fault(f: &mut Faults, e: &Event, on: bool) {
    match e.kind {
        EventKind::FanFailure => f.fan_failed = on,
        EventKind::HeaterFailure => f.heater_failed = on,
        EventKind::MicroShort => f.micro_short = on.then_some((e.cell, e.value)),
        EventKind::ThermalRunaway => f.thermal_runaway = on.then_some(e.cell),
        EventKind::OpenSenseWire => f.open_sense_wire = on.then_some(e.cell),
        EventKind::InsulationFault => {
            f.insulation_kohm = if on {
                e.value
            } else {
                melv_model::env::HEALTHY_INSULATION_KOHM
            }
        }
        EventKind::PowerStageFault => f.power_stage_fault = on,
        EventKind::CellVoltageOffset => f.cell_v_offset = on.then_some((e.cell, e.value)),
        EventKind::CurrentOffset => f.current_offset_a = if on { e.value } else { 0.0 },
        EventKind::BleedStuck => f.bleed_stuck_on = on.then_some(e.cell),
        EventKind::ContactorWeld => f.contactor_welded = on,
        EventKind::StuckTempSensor => f.temp_sensor_stuck = on.then_some((e.cell / 2, e.value)),
        _ => {}
    }
}

/// Switch a unit hardware fault of `e` on or off in twin `u`: the fault flags, and the one-shot
/// ageing jump (applied as the event starts).
pub fn apply_fault(u: &mut BatteryUnit, e: &Event, on: bool) {
    if e.kind == EventKind::AgeingJump {
        if on {
            u.age_by(e.value);
        }
        return;
    }
    set_fault(u.faults_mut(), e, on);
}

/// Twins stepped in this process: their AC energy over a cycle from their own ledgers.
struct Twins {
    units: Vec<BatteryUnit>,
    /// Each unit's report at the end of its last step.
    reports: Vec<BatteryStatus>,
    /// Each unit's ledger (AC import, AC out) at the end of its last step, Wh. The import is the
    /// inverter's and the auxiliary supply's (`EnergyLedger::ac_import_wh`): the house's grid meter
    /// sees both.
    prev_ac: Vec<(f64, f64)>,
}

impl Twins {
    fn new(units: Vec<BatteryUnit>) -> Self {
        let reports = units.iter().map(|u| u.status()).collect();
        let prev_ac = units
            .iter()
            .map(|u| (u.energy().ac_import_wh(), u.energy().ac_out_wh))
            .collect();
        Self {
            units,
            reports,
            prev_ac,
        }
    }

    #[inline]
    fn advance(&mut self, now_s: f64, dt_s: f64, env: &Environment, flows: &mut [UnitFlow]) {
        assert_eq!(flows.len(), self.units.len(), "one flow per unit");
        for (i, u) in self.units.iter_mut().enumerate() {
            u.step(now_s, dt_s, env);
            self.reports[i] = u.status();
            let l = u.energy();
            flows[i] = UnitFlow {
                charge_w: (l.ac_import_wh() - self.prev_ac[i].0) * 3600.0 / dt_s,
                discharge_w: (l.ac_out_wh - self.prev_ac[i].1) * 3600.0 / dt_s,
            };
            self.prev_ac[i] = (l.ac_import_wh(), l.ac_out_wh);
        }
    }

    fn soc_mean(&self) -> f64 {
        self.reports.iter().map(|s| s.soc).sum::<f64>() / self.reports.len() as f64
    }
}

/// Units reached by function calls: the gateway knows each unit's own report, at once and exactly.
/// The simulator's fast path.
pub struct DirectBus {
    twins: Twins,
}

impl DirectBus {
    pub fn new(units: Vec<BatteryUnit>) -> Self {
        Self {
            twins: Twins::new(units),
        }
    }
}

impl BatteryBus for DirectBus {
    fn len(&self) -> usize {
        self.twins.units.len()
    }
    fn poll(&mut self, _: f64, _: Option<u64>, _: &mut Vec<Supervision>) -> Result<(), BusError> {
        Ok(())
    }
    fn received(&self) -> &[BatteryStatus] {
        &self.twins.reports
    }
    fn send(
        &mut self,
        now_s: f64,
        _: Option<u64>,
        commands: &[BatteryCommand],
        requests: &[(UnitIndex, UnitRequest)],
    ) -> Result<(), BusError> {
        for (u, c) in self.twins.units.iter_mut().zip(commands) {
            u.command(now_s, c);
        }
        for &(unit, r) in requests {
            if let Some(u) = self.twins.units.get_mut(unit.slot()) {
                u.request(now_s, r);
            }
        }
        Ok(())
    }
    fn advance(&mut self, now_s: f64, dt_s: f64, env: &Environment, flows: &mut [UnitFlow]) {
        self.twins.advance(now_s, dt_s, env, flows);
    }
    fn soc_mean(&self) -> f64 {
        self.twins.soc_mean()
    }
    fn units(&self) -> &[BatteryUnit] {
        &self.twins.units
    }
    fn set_fault(&mut self, slot: usize, event: &Event, on: bool) {
        if let Some(u) = self.twins.units.get_mut(slot) {
            apply_fault(u, event, on);
        }
    }
}

/// Twins behind the real CAN codec on a [`SimLink`]: commands cross the bus as frames (heartbeats
/// with alive counters and CRC), reports come back as frames, the gateway node supervises silence,
/// and cables can be cut. What the gateway knows is what it decoded.
pub struct CodecBus<W: std::io::Write> {
    twins: Twins,
    link: SimLink<W>,
    received: Vec<BatteryStatus>,
    /// Whether the twins have stepped (and so measured) once.
    measured: bool,
}

impl<W: std::io::Write> CodecBus<W> {
    /// `link` carries the units' identities (built for `units.len()` batteries).
    pub fn new(units: Vec<BatteryUnit>, mut link: SimLink<W>) -> Self {
        let twins = Twins::new(units);
        let received = twins.reports.clone();
        // Before their first step the twins have measured nothing: no frame until then (the first
        // frame of every run put 0 V and 0 degC next to the stored SOC, issue 15).
        for i in 0..twins.units.len() {
            if let Ok(u) = UnitIndex::new(i as u8 + 1) {
                link.set_reporting(u, false);
            }
        }
        Self {
            twins,
            link,
            received,
            measured: false,
        }
    }
    pub fn link(&self) -> &SimLink<W> {
        &self.link
    }
    pub fn link_mut(&mut self) -> &mut SimLink<W> {
        &mut self.link
    }
    pub fn into_link(self) -> SimLink<W> {
        self.link
    }
}

impl<W: std::io::Write> BatteryBus for CodecBus<W> {
    fn len(&self) -> usize {
        self.twins.units.len()
    }
    fn poll(
        &mut self,
        now_s: f64,
        _: Option<u64>,
        verdicts: &mut Vec<Supervision>,
    ) -> Result<(), BusError> {
        verdicts.extend(self.link.report(now_s, &self.twins.reports)?);
        for (i, r) in self.received.iter_mut().enumerate() {
            let unit = UnitIndex::new(i as u8 + 1).expect("at most 6 units, checked by the link");
            // A unit never heard keeps its last known report; the supervision says 63.
            if let Some(s) = self.link.gateway().status(unit) {
                *r = s;
            }
            // Never heard at all: still silent, and the gateway says so.
            r.alerts.set(
                AlertCode::COMMUNICATION_LOST,
                self.link.gateway().comm_lost(unit),
            );
        }
        Ok(())
    }
    fn received(&self) -> &[BatteryStatus] {
        &self.received
    }
    fn send(
        &mut self,
        now_s: f64,
        unix_ms: Option<u64>,
        commands: &[BatteryCommand],
        requests: &[(UnitIndex, UnitRequest)],
    ) -> Result<(), BusError> {
        let n = self.twins.units.len();
        let events = self
            .link
            .command(now_s, unix_ms, &commands[..n], requests)?;
        for (u, events) in self.twins.units.iter_mut().zip(&events) {
            for e in events {
                match *e {
                    BatteryEvent::Command(ref c) => u.command(now_s, c),
                    BatteryEvent::Request(r) => u.request(now_s, r),
                    // The twin's firmware keeps no wall clock of its own.
                    BatteryEvent::Time { .. } => {}
                }
            }
        }
        Ok(())
    }
    fn advance(&mut self, now_s: f64, dt_s: f64, env: &Environment, flows: &mut [UnitFlow]) {
        self.twins.advance(now_s, dt_s, env, flows);
        if !self.measured {
            self.measured = true;
            for i in 0..self.twins.units.len() {
                if let Ok(u) = UnitIndex::new(i as u8 + 1) {
                    self.link.set_reporting(u, true);
                }
            }
        }
    }
    fn soc_mean(&self) -> f64 {
        self.twins.soc_mean()
    }
    fn units(&self) -> &[BatteryUnit] {
        &self.twins.units
    }
    fn set_fault(&mut self, slot: usize, event: &Event, on: bool) {
        if let Some(u) = self.twins.units.get_mut(slot) {
            apply_fault(u, event, on);
        }
    }
    fn set_cut(&mut self, slot: usize, cut: bool) {
        if let Ok(u) = UnitIndex::new(slot as u8 + 1) {
            self.link.set_cut(u, cut);
        }
    }
    fn serial(&self, slot: usize) -> Option<u32> {
        let u = UnitIndex::new(slot as u8 + 1).ok()?;
        self.link.battery(u).map(|b| b.identity().serial)
    }
}
