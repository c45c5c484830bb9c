//! [`SiteRuntime`]: one site's control loop, sans-IO. The live gateway's heart.
//!
//! Each control cycle `[now, now + dt)` (dt = 1 s by default):
//! 1. the controller ([`melv_ems::Controller`]) decides from what the gateway *received*: the
//!    batteries' statuses as decoded by the CAN gateway node (with 63 while a unit is silent), the
//!    meter reading of the previous cycle, PV and load;
//! 2. the commands cross the CAN link ([`melv_can::SimLink`]: real codec, heartbeats, CRC, alive
//!    counters) and each battery's firmware takes what reached it; the batteries' reports travel back;
//! 3. each simulated [`BatteryUnit`] advances by dt under its firmware;
//! 4. the site balance (the simulator's own [`StepFlows::balance`], so the books close the same way)
//!    accumulates into the current 1-minute telemetry interval; alert edges become records at once.
//!
//! Time is passed in (monotonic simulated seconds since the gateway started); the site's UTC clock is
//! the profile's start plus that time, wrapped over the profile's length so that a gateway can run
//! for longer than its profile covers.

use crate::record::{AlertRecord, BatteryTelemetry, Counters, Record, SiteTelemetry, Telemetry};
use melv_can::{BatteryIdentity, SimLink, UnitIndex};
use melv_core::status::{BatteryCommand, BatteryStatus};
use melv_core::{AlertSet, Phases};
use melv_ems::{Controller, Settings, SettingsError, SiteInputs};
use melv_model::{Environment, GridState};
use melv_sim::kpi::{Connection, StepFlows};
use melv_sim::scenario::{AmbientSource, Scenario};
use melv_unit::{BatteryUnit, UnitConfig};

/// Length of one telemetry record's interval, s. One minute: the resolution of the profiles we
/// run and of the cloud's history charts, and 43 200 records per 30 days (the queue's bound).
pub const TELEMETRY_INTERVAL_S: f64 = 60.0;

/// Why the site could not be built or stepped.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("{file}: the controller refused the site: {source}")]
    Controller {
        file: String,
        #[source]
        source: melv_ems::EmsError,
    },
    #[error("CAN link: {0}")]
    Link(#[from] melv_can::link::LinkError),
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

/// One site: controller, CAN link, simulated batteries, and the telemetry being built.
pub struct SiteRuntime {
    gateway_id: String,
    scenario: Scenario,
    cycle_s: f64,
    ctrl: Controller,
    link: SimLink<std::io::Sink>,
    units: Vec<BatteryUnit>,
    /// Batteries on a real bus (`--can`): then `units` and `link` stand idle and this carries the
    /// site's traffic.
    remote: Option<crate::remote::RemoteBus>,
    serials: Vec<u32>,
    unit_status: Vec<BatteryStatus>,
    prev_ac: Vec<(f64, f64)>,
    prev_alerts: Vec<AlertSet>,
    prev_gw_alerts: AlertSet,
    grid_prev_w: f64,
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
    /// Per site-file event, per unit: whether its fault is switched on now.
    fault_on: Vec<Vec<bool>>,
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
        let units = build_units(&scenario);
        // Serial numbers: a stable hash of the gateway id and the slot, so that two simulated sites
        // never report the same battery.
        let serials: Vec<u32> = (0..n).map(|i| serial_of(gateway_id, i)).collect();
        let ids: Vec<BatteryIdentity> = serials
            .iter()
            .map(|&serial| BatteryIdentity {
                serial,
                firmware: (1, 0, 0),
            })
            .collect();
        let mut link = SimLink::new(&ids, scenario.seed)?;
        let scenario_events = scenario.events.len();
        let ctrl = Controller::new(scenario.site.clone(), scenario.settings.clone()).map_err(
            |source| SiteError::Controller {
                file: scenario.file.clone(),
                source,
            },
        )?;
        let unit_status: Vec<BatteryStatus> = units.iter().map(|u| u.status()).collect();
        // Prime the bus: the gateway node hears every battery once before the first decision, as a
        // real gateway waits for the first reports after boot.
        link.step(
            0.0,
            None,
            &vec![BatteryCommand::default(); n],
            &[],
            &unit_status,
        )?;
        let prev_ac = units
            .iter()
            .map(|u| (u.energy().ac_in_wh, u.energy().ac_out_wh))
            .collect();
        Ok(Self {
            gateway_id: gateway_id.to_string(),
            cycle_s,
            ctrl,
            link,
            remote: None,
            serials,
            prev_alerts: vec![AlertSet::EMPTY; n],
            unit_status,
            units,
            prev_ac,
            prev_gw_alerts: AlertSet::EMPTY,
            grid_prev_w: 0.0,
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
            fault_on: vec![vec![false; n]; scenario_events],
        })
    }

    /// Drive batteries on a real bus instead of the in-process twins: from the next cycle the
    /// controller's setpoints go out on `bus` and the site's batteries are whatever answers there
    /// (their serials as they announce them in BAT_IDENT). See [`crate::remote`].
    pub fn with_remote_bus(mut self, bus: crate::remote::RemoteBus) -> Self {
        self.remote = Some(bus);
        self
    }

    /// Serve a real bus between control cycles (no-op with the in-process twins): heartbeats at
    /// the protocol's rate, reports in, silence supervised (63 to the controller). `now_s` is this
    /// runtime's monotonic simulated time, between the cycle boundaries the runtime has stepped.
    pub fn pump_bus(&mut self, now_s: f64) -> Result<(), SiteError> {
        let utc = self.clock_utc_at(now_s);
        if let Some(r) = self.remote.as_mut() {
            let verdicts = r.pump(now_s, Some((utc * 1000.0) as u64))?;
            melv_sim::runner::deliver_supervision(&verdicts, &mut self.ctrl);
        }
        Ok(())
    }

    /// Whether the batteries are on a real bus.
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
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
        self.ctrl.settings()
    }
    pub fn settings_version(&self) -> u64 {
        self.settings_version
    }
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }
    /// The batteries' statuses as the gateway decoded them from CAN.
    pub fn received_statuses(&self) -> Vec<BatteryStatus> {
        if let Some(r) = &self.remote {
            return (1..=self.units.len()).map(|i| r.status(i)).collect();
        }
        (1..=self.units.len())
            .map(|i| {
                let u = UnitIndex::new(i as u8).expect("at most 6 units, checked by the link");
                self.link
                    .gateway()
                    .status(u)
                    .unwrap_or(self.unit_status[i - 1])
            })
            .collect()
    }

    /// Fault injection: cut (or restore) battery `unit`'s CAN cable (1-based). The gateway's
    /// supervision raises 63 for it after [`melv_can::gateway::SILENCE_TIMEOUT_S`].
    pub fn set_can_cut(&mut self, unit: usize, cut: bool) {
        if let Ok(u) = UnitIndex::new(unit as u8) {
            self.link.set_cut(u, cut);
        }
    }

    /// The site file's `[[events]]` at profile instant `t` (the profile wraps, so they recur every
    /// profile span): grid outage, voltage, frequency and ambient change what the site sees this
    /// cycle; fan, heater and micro-short faults switch on and off in the twins; a cut CAN cable is
    /// cut on the link. With batteries on a real bus (`--can`) the unit faults and cable cuts are
    /// not ours to inject and are skipped.
    fn apply_events(&mut self, t: i64, grid: &mut GridState, ambient_c: &mut f64) {
        use melv_sim::events::EventKind;
        let phases = self.scenario.site.phases;
        for (j, e) in self.scenario.events.iter().enumerate() {
            let on = e.active(t);
            match e.kind {
                EventKind::GridOutage if on => *grid = GridState::outage(phases),
                EventKind::Voltage if on && grid.present => {
                    for p in 0..phases.count() {
                        grid.phase_v[p] = e.value;
                    }
                }
                EventKind::Frequency if on && grid.present => grid.frequency_hz = e.value,
                EventKind::Ambient if on => *ambient_c = e.value,
                kind if kind.is_unit_fault() && self.remote.is_none() => {
                    for i in 0..self.units.len() {
                        if e.battery.is_some_and(|b| b != i) || self.fault_on[j][i] == on {
                            continue;
                        }
                        self.fault_on[j][i] = on;
                        if kind == EventKind::CanCut {
                            if let Ok(u) = UnitIndex::new(i as u8 + 1) {
                                self.link.set_cut(u, on);
                            }
                        } else {
                            melv_sim::runner::set_fault(self.units[i].faults_mut(), e, on);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Validate settings against this site (the cloud and the simulator refuse the same things) and
    /// apply them from the next cycle. The version is recorded only when they are accepted.
    pub fn apply_settings(&mut self, version: u64, s: Settings) -> Result<(), SettingsError> {
        s.validate(self.ctrl.site())?;
        self.ctrl.update_settings(s.clone())?;
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
        let bridge = melv_modbus::EmsBridge::new(self.ctrl.settings().clone());
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

    /// Run one control cycle; the records it completed (alert edges, and a telemetry record when a
    /// minute closes) are returned in order.
    pub fn step(&mut self) -> Result<Vec<Record>, SiteError> {
        let dt = self.cycle_s;
        let now = self.now_s;
        let sim = self.sim_elapsed_s();
        let t = self.utc_at(sim);
        // The site's UTC clock keeps running past the profile's end (the profile wraps, time does not).
        let t_clock = self.clock_utc_s();
        let (load_w, pv_w) = self.scenario.profile.mean_w(t, t + dt);
        let phases = self.scenario.site.phases;
        let Environment {
            mut ambient_c,
            mut grid,
        } = environment_at(&self.scenario, t);
        self.apply_events(t as i64, &mut grid, &mut ambient_c);
        let env = Environment { ambient_c, grid };

        // 1. Decide from what the gateway received over CAN.
        let received = self.received_statuses();
        let mut meter = [0.0; 3];
        match phases {
            Phases::Single => meter[0] = self.grid_prev_w,
            // Units and house balanced across phases (manual 4.6): a third on each.
            Phases::Three => meter = [self.grid_prev_w / 3.0; 3],
        }
        let inputs = SiteInputs {
            now_s: t_clock as i64,
            grid_available: grid.present,
            grid_power_w: meter,
            grid_v: grid.phase_v,
            frequency_hz: grid.frequency_hz,
            pv_w: Some(pv_w),
            load_w: Some(load_w),
            batteries: &received,
        };
        let mut requests: Vec<(UnitIndex, melv_core::status::UnitRequest)> = Vec::new();
        let d = match self.local.as_mut() {
            None => self.ctrl.step(&inputs).clone(),
            Some(l) => {
                let wall = (l.clock)();
                let (ext, events) = {
                    let mut dev = lock(&l.device);
                    dev.expire(wall)?;
                    (dev.control(), dev.take_events())
                };
                // An alarm reset written over Modbus is "reset the system" for every unit.
                for (_, ev) in &events {
                    if let Some(req) = melv_modbus::ems::unit_request(ev) {
                        for i in 1..=self.units.len() {
                            if let Ok(u) = UnitIndex::new(i as u8) {
                                requests.push((u, req));
                            }
                        }
                    }
                }
                l.bridge.step(&mut self.ctrl, &inputs, &ext);
                self.ctrl.decision().clone()
            }
        };

        // 2. Across the bus, both ways.
        let unix_ms = (t_clock * 1000.0) as u64;
        let mut records = Vec::new();
        let (mut charge_w, mut discharge_w) = (0.0, 0.0);
        if let Some(r) = self.remote.as_mut() {
            // 2-3 on a real bus: the batteries run on their own; what they report is the truth.
            let verdicts = r.step(now, Some(unix_ms), &d.commands, &requests)?;
            melv_sim::runner::deliver_supervision(&verdicts, &mut self.ctrl);
            for i in 0..self.units.len() {
                if let Some(serial) = r.serial(i + 1) {
                    self.serials[i] = serial;
                }
                let p = r.status(i + 1).ac_power_w;
                charge_w += (-p).max(0.0);
                discharge_w += p.max(0.0);
                self.interval.battery_ws[i] += p * dt;
            }
        } else {
            let out = self.link.step(
                now,
                Some(unix_ms),
                &d.commands,
                &requests,
                &self.unit_status,
            )?;
            melv_sim::runner::deliver(&out, now, &mut self.units, &mut self.ctrl);

            // 3. The batteries run.
            for (i, u) in self.units.iter_mut().enumerate() {
                u.step(now, dt, &env);
                self.unit_status[i] = u.status();
                let l = u.energy();
                let c = (l.ac_in_wh - self.prev_ac[i].0) * 3600.0 / dt;
                let dis = (l.ac_out_wh - self.prev_ac[i].1) * 3600.0 / dt;
                self.prev_ac[i] = (l.ac_in_wh, l.ac_out_wh);
                charge_w += c;
                discharge_w += dis;
                self.interval.battery_ws[i] += (dis - c) * dt;
            }
        }
        // Alert edges, as the gateway sees them (decoded statuses, 63 included).
        let t_end = t_clock + dt;
        let seen = self.received_statuses();
        for (i, st) in seen.iter().enumerate() {
            if st.alerts != self.prev_alerts[i] {
                push_edges(
                    &mut records,
                    t_end,
                    Some((i + 1, self.serials[i])),
                    self.prev_alerts[i],
                    st.alerts,
                );
                self.prev_alerts[i] = st.alerts;
            }
        }
        // The controller's own 63 repeats the CAN supervisor's per-unit verdict without naming the
        // unit; the per-battery record above already carries it with the unit and serial.
        let mut gw_alerts = d.alerts;
        gw_alerts.remove(melv_core::AlertCode::COMMUNICATION_LOST);
        if gw_alerts != self.prev_gw_alerts {
            push_edges(&mut records, t_end, None, self.prev_gw_alerts, gw_alerts);
            self.prev_gw_alerts = gw_alerts;
        }

        // 4. Site balance and counters.
        let conn = if grid.present && !d.island {
            Connection::OnGrid
        } else {
            Connection::OffGrid
        };
        let f = StepFlows::balance(
            dt,
            load_w,
            pv_w,
            d.pv_curtail_to_w,
            charge_w,
            discharge_w,
            conn,
        );
        self.grid_prev_w = f.grid_w;
        let wh = dt / 3600.0;
        let c = &mut self.counters;
        c.grid_import_wh += f.grid_w.max(0.0) * wh;
        c.grid_export_wh += (-f.grid_w).max(0.0) * wh;
        c.pv_wh += (f.pv_w - f.pv_curtailed_w) * wh;
        c.load_wh += (f.load_w - f.load_unserved_w) * wh;
        c.battery_charge_wh += charge_w * wh;
        c.battery_discharge_wh += discharge_w * wh;
        let iv = &mut self.interval;
        iv.seconds += dt;
        iv.grid_ws += f.grid_w * dt;
        iv.pv_ws += (f.pv_w - f.pv_curtailed_w) * dt;
        iv.load_ws += (f.load_w - f.load_unserved_w) * dt;

        if let Some(l) = &self.local {
            let snap = melv_modbus::SiteSnapshot::from_cycle(
                &seen,
                &inputs,
                &d,
                l.bridge.owner_settings().reserve_soc,
            );
            lock(&l.device).update((l.clock)(), &snap)?;
        }

        self.now_s += dt;
        if self.interval.seconds >= TELEMETRY_INTERVAL_S - 1e-9 {
            let tel = self.close_interval(t_end, &d, &seen);
            records.push(Record::Telemetry(tel));
        }
        Ok(records)
    }

    fn close_interval(
        &mut self,
        t_end: f64,
        d: &melv_ems::Decision,
        seen: &[BatteryStatus],
    ) -> Telemetry {
        let iv = std::mem::replace(
            &mut self.interval,
            Interval {
                battery_ws: vec![0.0; self.units.len()],
                ..Interval::default()
            },
        );
        let s = iv.seconds;
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
                status: format!("{:?}", d.site_status),
                reason: d.reason.as_str().to_string(),
                mode: format!("{:?}", self.ctrl.settings().mode),
                settings_version: self.settings_version,
                alerts: d.alerts.iter().map(|c| c.get()).collect(),
            },
            counters: self.counters.rounded(),
            batteries,
        }
    }
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

/// The site's battery twins as the gateway simulates them (also hosted on a bus by
/// [`crate::remote::TwinHost`]): one seed per slot from the scenario's, activated, at the site
/// file's initial SOC and the ambient of the profile's first row.
pub(crate) fn build_units(scenario: &Scenario) -> Vec<BatteryUnit> {
    let ambient0 = ambient_at(scenario, 0);
    (0..scenario.site.batteries)
        .map(|i| {
            let cfg = UnitConfig {
                seed: melv_sim::runner::unit_seed(scenario.seed, i),
                phases: scenario.site.phases,
                country: scenario.site.country,
                initial_soc: scenario.initial_soc,
                initial_temp_c: ambient0,
                activated: true,
                sensor_noise: scenario.sensor_noise,
                ..UnitConfig::default()
            };
            BatteryUnit::new(&cfg, 0.0)
        })
        .collect()
}

/// What the profile says the batteries see at profile instant `t`: ambient, grid voltage and
/// frequency (nominal where the profile has no column), before any `[[events]]`.
pub(crate) fn environment_at(scenario: &Scenario, t: f64) -> Environment {
    let row = scenario.profile.row(t);
    let phases = scenario.site.phases;
    let mut grid = GridState::nominal(phases);
    if let Some(v) = &scenario.profile.grid_v {
        for p in 0..phases.count() {
            grid.phase_v[p] = v[row];
        }
    }
    if let Some(f) = &scenario.profile.grid_hz {
        grid.frequency_hz = f[row];
    }
    Environment {
        ambient_c: ambient_at(scenario, row),
        grid,
    }
}

fn ambient_at(sc: &Scenario, row: usize) -> f64 {
    match sc.ambient {
        AmbientSource::Constant(c) => c,
        AmbientSource::Profile => sc
            .profile
            .ambient_c
            .as_ref()
            .and_then(|v| v.get(row).copied())
            .unwrap_or(20.0),
    }
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

fn push_edges(
    out: &mut Vec<Record>,
    t: f64,
    unit: Option<(usize, u32)>,
    before: AlertSet,
    after: AlertSet,
) {
    for c in after.iter().filter(|c| !before.contains(*c)) {
        out.push(Record::Alert(AlertRecord::new(t as i64, unit, c, true)));
    }
    for c in before.iter().filter(|c| !after.contains(*c)) {
        out.push(Record::Alert(AlertRecord::new(t as i64, unit, c, false)));
    }
}

#[cfg(test)]
#[path = "site_tests.rs"]
mod tests;
