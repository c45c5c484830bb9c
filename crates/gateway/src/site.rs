//! [`SiteRuntime`]: one site's control loop as the live gateway hosts it. The cycle itself is
//! [`melv_site::Site::step`], the same one the simulator runs; this module adds what a gateway adds
//! around it: the site's clock (profile time wrapped, so a gateway can run past its profile), the
//! batteries' bus (twins behind the CAN codec, or real batteries on a CAN transport), SunSpec Modbus
//! local control, the energy counters and the 1-minute telemetry records.
//!
//! Time is passed in (monotonic simulated seconds since the gateway started); the site's UTC clock is
//! the profile's start plus that time.

use crate::record::{AlertRecord, BatteryTelemetry, Counters, Record, SiteTelemetry, Telemetry};
use crate::remote::RemoteBus;
use melv_can::{SimLink, Supervision, UnitIndex};
use melv_core::status::{BatteryCommand, BatteryStatus, UnitRequest};
use melv_ems::{Settings, SettingsError};
use melv_model::Environment;
use melv_scenario::Scenario;
use melv_site::{
    AlertEdge, BatteryBus, BusError, CodecBus, Event, Site, SiteEnv, StepOutcome, UnitFlow,
};
use melv_unit::BatteryUnit;

/// Length of one telemetry record's interval, s. One minute: the resolution of the profiles we
/// run and of the cloud's history charts, and 43 200 records per 30 days (the queue's bound).
pub const TELEMETRY_INTERVAL_S: f64 = 60.0;

/// Why the site could not be built or stepped.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("{file}: {source}")]
    Controller {
        file: String,
        #[source]
        source: melv_site::SiteError,
    },
    #[error("CAN link: {0}")]
    Link(#[from] melv_can::link::LinkError),
    #[error("battery bus: {0}")]
    Bus(#[from] BusError),
    #[error("control cycle {0} s: must be a whole number of seconds that divides 60")]
    Cycle(f64),
    #[error("control cycle: can change only between telemetry intervals, not {0} s into one")]
    CycleMidInterval(f64),
    #[error("SunSpec Modbus device: {0}")]
    Modbus(#[from] melv_modbus::MapError),
    #[error("batteries on the CAN bus: {0}")]
    Remote(#[from] crate::remote::RemoteError),
}

/// Local control over SunSpec Modbus TCP (`--modbus ADDR`): the device whose registers home-energy
/// tools read and write, and the bridge that passes their writes through the controller's own
/// validation and safety layers (crate `melv-modbus`, `docs/modbus.md`). The device's watchdog ends
/// every external control when the client falls quiet, and the site returns to its own mode.
pub struct LocalControl {
    device: melv_modbus::SharedDevice,
    clock: melv_modbus::Clock,
    bridge: melv_modbus::EmsBridge,
}

/// The device stays usable after a panic in another thread: its state is plain registers.
fn lock(d: &melv_modbus::SharedDevice) -> std::sync::MutexGuard<'_, melv_modbus::SunSpecDevice> {
    d.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sums over the open telemetry interval.
#[derive(Debug, Clone, Default)]
struct Interval {
    seconds: f64,
    /// W*s per battery, + discharging.
    battery_ws: Vec<f64>,
    grid_ws: f64,
    pv_ws: f64,
    load_ws: f64,
}

/// The batteries of a live site: the in-process twins behind the CAN codec, or whatever answers on
/// a real bus (`--can`).
pub enum GatewayBus {
    Twins(CodecBus<std::io::Sink>),
    Remote(RemoteBus),
}

macro_rules! on_bus {
    ($self:expr, $b:ident => $e:expr) => {
        match $self {
            GatewayBus::Twins($b) => $e,
            GatewayBus::Remote($b) => $e,
        }
    };
}

impl BatteryBus for GatewayBus {
    fn len(&self) -> usize {
        on_bus!(self, b => b.len())
    }
    fn poll(
        &mut self,
        now_s: f64,
        unix_ms: Option<u64>,
        verdicts: &mut Vec<Supervision>,
    ) -> Result<(), BusError> {
        on_bus!(self, b => b.poll(now_s, unix_ms, verdicts))
    }
    fn received(&self) -> &[BatteryStatus] {
        on_bus!(self, b => b.received())
    }
    fn send(
        &mut self,
        now_s: f64,
        unix_ms: Option<u64>,
        commands: &[BatteryCommand],
        requests: &[(UnitIndex, UnitRequest)],
    ) -> Result<(), BusError> {
        on_bus!(self, b => b.send(now_s, unix_ms, commands, requests))
    }
    fn advance(&mut self, now_s: f64, dt_s: f64, env: &Environment, flows: &mut [UnitFlow]) {
        on_bus!(self, b => b.advance(now_s, dt_s, env, flows))
    }
    fn soc_mean(&self) -> f64 {
        on_bus!(self, b => b.soc_mean())
    }
    fn units(&self) -> &[BatteryUnit] {
        on_bus!(self, b => b.units())
    }
    fn set_fault(&mut self, slot: usize, event: &Event, on: bool) {
        on_bus!(self, b => b.set_fault(slot, event, on))
    }
    fn set_cut(&mut self, slot: usize, cut: bool) {
        on_bus!(self, b => b.set_cut(slot, cut))
    }
    fn pump(
        &mut self,
        now_s: f64,
        unix_ms: Option<u64>,
        verdicts: &mut Vec<Supervision>,
    ) -> Result<(), BusError> {
        on_bus!(self, b => BatteryBus::pump(b, now_s, unix_ms, verdicts))
    }
    fn serial(&self, slot: usize) -> Option<u32> {
        on_bus!(self, b => BatteryBus::serial(b, slot))
    }
}

/// One site: the site core on its bus, and the telemetry being built.
pub struct SiteRuntime {
    gateway_id: String,
    scenario: Scenario,
    cycle_s: f64,
    site: Site<GatewayBus>,
    out: StepOutcome,
    serials: Vec<u32>,
    counters: Counters,
    interval: Interval,
    now_s: f64,
    /// Simulated seconds from the profile start at `now_s = 0` (a restarted gateway resumes there).
    epoch_offset_s: f64,
    /// Added to the profile's time to give the site's UTC clock: a whole number of profile spans,
    /// so the profile position is unchanged (0: the clock is the profile's own, e.g. 2019).
    clock_offset_s: f64,
    settings_version: u64,
    /// SunSpec Modbus local control, when attached.
    local: Option<LocalControl>,
}

impl SiteRuntime {
    /// Build a site from a checked scenario. `epoch_offset_s` is the simulated time already run by
    /// an earlier life of this gateway (0 for a new one), `counters` its energy counters, so that
    /// telemetry time and the cumulative kWh continue across restarts.
    pub fn new(
        gateway_id: &str,
        scenario: Scenario,
        cycle_s: f64,
        epoch_offset_s: f64,
        counters: Counters,
    ) -> Result<Self, SiteError> {
        check_cycle(cycle_s)?;
        let n = scenario.site.batteries;
        // Serial numbers: a stable hash of the gateway id and the slot, so that two simulated sites
        // never report the same battery.
        let serials: Vec<u32> = (0..n).map(|i| serial_of(gateway_id, i)).collect();
        let link = SimLink::new(&melv_site::identities(&serials), scenario.seed)?;
        let bus = GatewayBus::Twins(CodecBus::new(scenario.units(), link));
        let site =
            Site::new(&scenario.site_spec(), bus).map_err(|source| SiteError::Controller {
                file: scenario.file.clone(),
                source,
            })?;
        Ok(Self {
            gateway_id: gateway_id.to_string(),
            cycle_s,
            site,
            out: StepOutcome::default(),
            serials,
            counters,
            interval: Interval {
                battery_ws: vec![0.0; n],
                ..Interval::default()
            },
            now_s: 0.0,
            epoch_offset_s,
            clock_offset_s: 0.0,
            scenario,
            settings_version: 0,
            local: None,
        })
    }

    /// Replace the in-process twins before the first cycle (a restarted gateway resumes its twins
    /// from its state directory, [`crate::twins`]); one unit per battery of the site.
    pub fn replace_twins(&mut self, units: Vec<BatteryUnit>) -> Result<(), SiteError> {
        let link = SimLink::new(&melv_site::identities(&self.serials), self.scenario.seed)?;
        *self.site.bus_mut() = GatewayBus::Twins(CodecBus::new(units, link));
        Ok(())
    }

    /// Drive batteries on a real bus instead of the in-process twins: from the next cycle the
    /// controller's setpoints go out on `bus` and the site's batteries are whatever answers there
    /// (their serials as they announce them in BAT_IDENT). See [`crate::remote`].
    pub fn with_remote_bus(mut self, bus: RemoteBus) -> Self {
        *self.site.bus_mut() = GatewayBus::Remote(bus);
        self
    }

    /// Serve a real bus between control cycles (no-op with the in-process twins): heartbeats at
    /// the protocol's rate, reports in, silence supervised (63 to the controller). `now_s` is this
    /// runtime's monotonic simulated time, between the cycle boundaries the runtime has stepped.
    pub fn pump_bus(&mut self, now_s: f64) -> Result<(), SiteError> {
        let utc = self.clock_utc_at(now_s);
        self.site.pump(now_s, utc)?;
        Ok(())
    }

    /// Whether the batteries are on a real bus.
    pub fn is_remote(&self) -> bool {
        matches!(self.site.bus(), GatewayBus::Remote(_))
    }

    /// Run the site's UTC clock `offset_s` ahead of the profile's (see [`SiteRuntime::clock_offset_s`]).
    pub fn with_clock_offset(mut self, offset_s: f64) -> Self {
        self.clock_offset_s = offset_s;
        self
    }

    /// The site's UTC clock offset from the profile's time, s.
    pub fn clock_offset_s(&self) -> f64 {
        self.clock_offset_s
    }

    /// The site's UTC clock now, Unix s.
    pub fn clock_utc_s(&self) -> f64 {
        self.clock_utc_at(self.now_s)
    }

    /// The site's UTC clock at this runtime's monotonic time `now_s`, Unix s.
    fn clock_utc_at(&self, now_s: f64) -> f64 {
        self.scenario.profile.start_utc_s as f64 + self.clock_offset_s + self.epoch_offset_s + now_s
    }

    /// Simulated seconds since the profile start at site UTC instant `t_utc_s`.
    pub fn sim_elapsed_at(&self, t_utc_s: f64) -> f64 {
        t_utc_s - self.scenario.profile.start_utc_s as f64 - self.clock_offset_s
    }

    /// Length of the profile, s (the site's time wraps over it).
    pub fn profile_span_s(&self) -> f64 {
        let p = &self.scenario.profile;
        (p.end_utc_s() - p.start_utc_s) as f64
    }

    pub fn gateway_id(&self) -> &str {
        &self.gateway_id
    }
    pub fn cycle_s(&self) -> f64 {
        self.cycle_s
    }
    /// Change the control cycle from the next step (`melv demo` fills its history at 60 s cycles,
    /// then runs live at 1 s). Only between telemetry intervals, so every record's interval is whole.
    pub fn set_cycle_s(&mut self, cycle_s: f64) -> Result<(), SiteError> {
        check_cycle(cycle_s)?;
        if self.interval.seconds != 0.0 {
            return Err(SiteError::CycleMidInterval(self.interval.seconds));
        }
        self.cycle_s = cycle_s;
        Ok(())
    }
    /// The batteries' serial numbers (BAT_IDENT) as their records carry them, unit 1 first.
    pub fn battery_serials(&self) -> &[u32] {
        &self.serials
    }
    /// Monotonic simulated seconds since this runtime started.
    pub fn now_s(&self) -> f64 {
        self.now_s
    }
    /// Simulated seconds since the profile start over all lives of this gateway.
    pub fn sim_elapsed_s(&self) -> f64 {
        self.epoch_offset_s + self.now_s
    }
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
    pub fn settings(&self) -> &Settings {
        self.site.controller().settings()
    }
    pub fn settings_version(&self) -> u64 {
        self.settings_version
    }
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }
    /// The in-process battery twins (none with batteries on a real bus).
    pub fn units(&self) -> &[BatteryUnit] {
        self.site.bus().units()
    }
    /// The batteries' statuses as the gateway decoded them from CAN (as of the last cycle's poll).
    pub fn received_statuses(&self) -> Vec<BatteryStatus> {
        self.site.received().to_vec()
    }

    /// Fault injection: cut (or restore) battery `unit`'s CAN cable (1-based). The gateway's
    /// supervision raises 63 for it after [`melv_can::gateway::SILENCE_TIMEOUT_S`].
    pub fn set_can_cut(&mut self, unit: usize, cut: bool) {
        if unit >= 1 {
            self.site.bus_mut().set_cut(unit - 1, cut);
        }
    }

    /// Validate settings against this site (the cloud and the simulator refuse the same things) and
    /// apply them from the next cycle. The version is recorded only when they are accepted.
    pub fn apply_settings(&mut self, version: u64, s: Settings) -> Result<(), SettingsError> {
        let ctrl = self.site.controller_mut();
        s.validate(ctrl.site())?;
        ctrl.update_settings(s.clone())?;
        // Under local control the bridge returns to these when the external controls end.
        if let Some(l) = self.local.as_mut() {
            l.bridge.set_owner_settings(s);
        }
        self.settings_version = version;
        Ok(())
    }

    /// Put the site under SunSpec Modbus local control: from the next cycle, `device`'s control
    /// points steer the controller (through its safety layers) and its registers show the site.
    /// `clock` is the monotonic seconds of the device's revert timers and watchdog.
    pub fn attach_local_control(
        &mut self,
        device: melv_modbus::SharedDevice,
        clock: melv_modbus::Clock,
    ) {
        let bridge = melv_modbus::EmsBridge::new(self.site.controller().settings().clone());
        self.local = Some(LocalControl {
            device,
            clock,
            bridge,
        });
    }

    /// Site UTC instant (s) of simulated time `sim_s` since the profile start, wrapped over the
    /// profile.
    fn utc_at(&self, sim_s: f64) -> f64 {
        self.scenario.profile.start_utc_s as f64 + sim_s.rem_euclid(self.profile_span_s())
    }

    /// This cycle's environment: the wrapped profile at the site's clock. The site file's
    /// `[[events]]` are scheduled on the profile's time too, so they recur every profile span.
    fn site_env(&self, dt: f64) -> SiteEnv {
        let t = self.utc_at(self.sim_elapsed_s());
        let (load_w, pv_w) = self.scenario.profile.mean_w(t, t + dt);
        SiteEnv {
            // The site's UTC clock keeps running past the profile's end (the profile wraps, time
            // does not).
            utc_s: self.clock_utc_s(),
            schedule_s: t as i64,
            load_w,
            pv_w,
            world: self.scenario.environment_at(t),
        }
    }

    /// Run one control cycle; the records it completed (alert edges, and a telemetry record when a
    /// minute closes) are returned in order.
    pub fn step(&mut self) -> Result<Vec<Record>, SiteError> {
        let dt = self.cycle_s;
        let now = self.now_s;
        let env = self.site_env(dt);
        match self.local.as_mut() {
            None => self.site.step(now, dt, &env, &mut self.out)?,
            Some(l) => step_local(
                l,
                &mut self.site,
                (now, dt),
                &env,
                &self.counters,
                &mut self.out,
            )?,
        }
        let mut records: Vec<Record> = self
            .out
            .edges
            .iter()
            .filter_map(|e| edge_record(e, &self.serials))
            .collect();
        for i in 0..self.serials.len() {
            if let Some(serial) = self.site.bus().serial(i) {
                self.serials[i] = serial;
            }
        }
        self.add_to_interval(dt);
        self.now_s += dt;
        if self.interval.seconds >= TELEMETRY_INTERVAL_S - 1e-9 {
            let t_end = env.utc_s + dt;
            let tel = self.close_interval(t_end);
            records.push(Record::Telemetry(tel));
        }
        Ok(records)
    }

    /// The cycle's flows into the energy counters and the open telemetry interval.
    fn add_to_interval(&mut self, dt: f64) {
        let f = &self.out.flows;
        let wh = dt / 3600.0;
        let c = &mut self.counters;
        c.grid_import_wh += f.grid_w.max(0.0) * wh;
        c.grid_export_wh += (-f.grid_w).max(0.0) * wh;
        c.pv_wh += (f.pv_w - f.pv_curtailed_w) * wh;
        c.load_wh += (f.load_w - f.load_unserved_w) * wh;
        c.battery_charge_wh += f.battery_charge_w * wh;
        c.battery_discharge_wh += f.battery_discharge_w * wh;
        let iv = &mut self.interval;
        iv.seconds += dt;
        iv.grid_ws += f.grid_w * dt;
        iv.pv_ws += (f.pv_w - f.pv_curtailed_w) * dt;
        iv.load_ws += (f.load_w - f.load_unserved_w) * dt;
        for (ws, u) in iv.battery_ws.iter_mut().zip(&self.out.units) {
            *ws += (u.discharge_w - u.charge_w) * dt;
        }
    }

    fn close_interval(&mut self, t_end: f64) -> Telemetry {
        let iv = std::mem::replace(
            &mut self.interval,
            Interval {
                battery_ws: vec![0.0; self.serials.len()],
                ..Interval::default()
            },
        );
        let s = iv.seconds;
        let seen = self.site.received();
        let d = self.site.decision();
        let batteries = seen
            .iter()
            .enumerate()
            .map(|(i, st)| BatteryTelemetry {
                unit: i + 1,
                serial: self.serials[i],
                soc: round(st.soc, 4),
                soh: round(st.soh, 4),
                power_w: round(iv.battery_ws[i] / s, 1),
                alerts: st.alerts.iter().map(|c| c.get()).collect(),
                lifecycle: st.lifecycle,
                soc_led: st.soc_led,
                status_led: st.status_led,
                min_temp_c: round(st.min_temp_c, 1),
                max_temp_c: round(st.max_temp_c, 1),
                ac_charged_wh: round(st.ac_charged_wh, 1),
                ac_discharged_wh: round(st.ac_discharged_wh, 1),
            })
            .collect();
        Telemetry {
            t_utc_s: t_end as i64,
            interval_s: s,
            site: SiteTelemetry {
                grid_w: round(iv.grid_ws / s, 1),
                pv_w: round(iv.pv_ws / s, 1),
                load_w: round(iv.load_ws / s, 1),
                battery_w: round(iv.battery_ws.iter().sum::<f64>() / s, 1),
                soc: round(
                    seen.iter().map(|b| b.soc).sum::<f64>() / seen.len().max(1) as f64,
                    4,
                ),
                status: d.site_status,
                reason: d.reason,
                mode: self.site.controller().settings().mode,
                settings_version: self.settings_version,
                alerts: d.alerts.iter().map(|c| c.get()).collect(),
            },
            counters: self.counters.rounded(),
            batteries,
        }
    }
}

/// One cycle under SunSpec Modbus local control: the device's control points and events are read
/// before the cycle (the lock is held only here, never inside the site's step), the bridge steers
/// the controller through its safety layers, and the device shows the cycle afterwards.
fn step_local(
    l: &mut LocalControl,
    site: &mut Site<GatewayBus>,
    (now, dt): (f64, f64),
    env: &SiteEnv,
    counters: &Counters,
    out: &mut StepOutcome,
) -> Result<(), SiteError> {
    let wall = (l.clock)();
    let (ext, events) = {
        let mut dev = lock(&l.device);
        dev.expire(wall)?;
        (dev.control(), dev.take_events())
    };
    // An alarm reset written over Modbus is "reset the system" for every unit.
    let mut requests: Vec<(UnitIndex, UnitRequest)> = Vec::new();
    for (_, ev) in &events {
        if let Some(req) = melv_modbus::ems::unit_request(ev) {
            for i in 1..=site.bus().len() {
                if let Ok(u) = UnitIndex::new(i as u8) {
                    requests.push((u, req));
                }
            }
        }
    }
    let bridge = &mut l.bridge;
    let mut measured = (env.world.grid.phase_v, env.world.grid.frequency_hz);
    let mut meters = melv_modbus::Meters::UNKNOWN;
    site.step_with(
        now,
        dt,
        env,
        &requests,
        |ctrl, inputs| {
            measured = (inputs.grid_v, inputs.frequency_hz);
            meters = melv_modbus::Meters::from_inputs(inputs);
            bridge.step(ctrl, inputs, &ext);
        },
        out,
    )?;
    // The meters' energy counters are the gateway's persisted ones (never decreasing across
    // restarts), as of the start of this cycle.
    meters.grid_import_wh = counters.grid_import_wh;
    meters.grid_export_wh = counters.grid_export_wh;
    meters.pv_wh = counters.pv_wh;
    meters.load_wh = counters.load_wh;
    let d = site.decision();
    let snap = melv_modbus::SiteSnapshot {
        batteries: site.received(),
        grid_v: measured.0,
        frequency_hz: measured.1,
        island: d.island,
        gateway_alerts: d.alerts,
        reason: d.reason,
        reserve_soc: l.bridge.owner_settings().reserve_soc,
        meters,
        settings: Some(l.bridge.owner_settings()),
    };
    lock(&l.device).update((l.clock)(), &snap)?;
    Ok(())
}

/// An alert edge as the record the cloud receives: units 1-based with their serial number.
/// (Edges carry codes of the manual's table only; anything else has no record.)
fn edge_record(e: &AlertEdge, serials: &[u32]) -> Option<Record> {
    let unit = e
        .unit
        .map(|i| (i + 1, serials.get(i).copied().unwrap_or(0)));
    let code = melv_core::AlertCode::new(u32::from(e.code)).ok()?;
    Some(Record::Alert(AlertRecord::new(
        e.t_utc_s, unit, code, e.raised,
    )))
}

/// Rounded for the wire; `+ 0.0` turns a negative zero into zero.
fn round(x: f64, decimals: i32) -> f64 {
    let k = 10f64.powi(decimals);
    (x * k).round() / k + 0.0
}

fn check_cycle(cycle_s: f64) -> Result<(), SiteError> {
    if !(1.0..=TELEMETRY_INTERVAL_S).contains(&cycle_s)
        || cycle_s.fract() != 0.0
        || TELEMETRY_INTERVAL_S % cycle_s != 0.0
    {
        return Err(SiteError::Cycle(cycle_s));
    }
    Ok(())
}

/// The CAN serial number (BAT_IDENT) of the simulated battery in `slot` (0-based) of gateway
/// `gateway_id`: an FNV-1a hash of the id and the slot, so that two simulated sites never report the
/// same battery. The cloud registers a battery under this number in decimal.
pub fn battery_serial(gateway_id: &str, slot: usize) -> u32 {
    serial_of(gateway_id, slot)
}

/// FNV-1a (Fowler, Noll, Vo) of the gateway id and slot: a stable pseudo serial number.
fn serial_of(gateway_id: &str, slot: usize) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in gateway_id.bytes().chain([slot as u8]) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
#[path = "site_tests.rs"]
mod tests;
