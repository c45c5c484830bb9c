//! # melv-site: one control cycle of one site, written once
//!
//! The simulator, the live gateway and `melv demo` all run a site through [`Site::step`]: the
//! scenario's events change the world, the gateway controller ([`melv_ems::Controller`]) decides
//! from what the gateway received, the commands cross the [`BatteryBus`], the batteries run, and
//! the site balance closes. Only the hosts differ: the simulator feeds it from a profile as fast as
//! it can and sums KPIs; the gateway feeds it in real time and turns the outcome into telemetry.
//!
//! One cycle `[now, now + dt)` (ARCHITECTURE.md "One control cycle"):
//! 1. events: grid outage, voltage, frequency and ambient override the environment the host gave;
//!    unit hardware faults and cut CAN cables switch on the bus;
//! 2. poll: the batteries' reports come in; the gateway's comm-loss verdicts reach the controller;
//!    alert edges are found in what the gateway *received* (63 included), stamped at `now`;
//! 3. decide: the controller sees the meter of the previous cycle, PV, load and the received
//!    reports; its own alerts (less 63, which belongs to a battery) give site-level edges;
//! 4. send, then advance: the commands go out and the batteries run for dt;
//! 5. balance: [`StepFlows::balance`] from the batteries' AC energy over the cycle.
//!
//! Sans-IO: time is passed in (monotonic seconds and the site's UTC clock), nothing here reads a
//! clock, a file or a socket, and the only randomness is inside the units, seeded from the spec.
//!
//! ## Never knows
//! Files, sockets, clocks, threads, MQTT, the cloud, KPIs, reports: the hosts' business.

pub mod bus;
pub mod events;
pub mod flows;

pub use bus::{BatteryBus, BusError, CodecBus, DirectBus, UnitFlow};
pub use events::{Event, EventKind};
pub use flows::{Connection, StepFlows};

use melv_can::{BatteryIdentity, Supervision, UnitIndex};
use melv_core::status::UnitRequest;
use melv_core::{AlertCode, AlertSet, Phases};
use melv_ems::{Controller, Decision, SiteConfig, SiteInputs};
use melv_model::{Environment, GridState};
use melv_unit::{BatteryUnit, UnitConfig};
use serde::Serialize;

/// Firmware version the simulated batteries announce (BAT_IDENT).
pub const TWIN_FIRMWARE: (u8, u8, u8) = (1, 0, 0);

/// What a site is made of, as the core needs it (a site file gives it: `melv-scenario`).
#[derive(Debug, Clone)]
pub struct SiteSpec {
    pub site: SiteConfig,
    pub settings: melv_ems::Settings,
    /// Seed of the whole site: each unit's is mixed from it ([`unit_seed`]).
    pub seed: u64,
    pub initial_soc: f64,
    /// The batteries' temperature at the start, degC (the ambient of the profile's first row).
    pub initial_temp_c: f64,
    pub sensor_noise: bool,
    /// Injected events on the scenario's timeline.
    pub events: Vec<Event>,
}

/// Seed of unit `i`: the site seed mixed with the index (SplitMix64's increment, Steele et al.
/// 2014), so units differ and the whole run still replays from one number.
pub fn unit_seed(seed: u64, i: usize) -> u64 {
    seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1))
}

/// The site's battery twins: one seed per slot from the spec's, activated, at the initial SOC and
/// temperature.
pub fn build_units(spec: &SiteSpec) -> Vec<BatteryUnit> {
    build_units_aged(spec, 0.0)
}

/// [`build_units`] with units that have already lost `capacity_fade` (0..=0.5, a fraction) of their
/// capacity: a fleet's older installations (`UnitConfig::initial_capacity_fade`).
pub fn build_units_aged(spec: &SiteSpec, capacity_fade: f64) -> Vec<BatteryUnit> {
    (0..spec.site.batteries)
        .map(|i| {
            let cfg = UnitConfig {
                seed: unit_seed(spec.seed, i),
                phases: spec.site.phases,
                country: spec.site.country,
                grid_charging: Some(spec.site.grid_charging),
                initial_soc: spec.initial_soc,
                initial_temp_c: spec.initial_temp_c,
                activated: true,
                sensor_noise: spec.sensor_noise,
                initial_capacity_fade: capacity_fade,
            };
            BatteryUnit::new(&cfg, 0.0)
        })
        .collect()
}

/// CAN identities for the given serial numbers, unit 1 first.
pub fn identities(serials: &[u32]) -> Vec<BatteryIdentity> {
    serials
        .iter()
        .map(|&serial| BatteryIdentity {
            serial,
            firmware: TWIN_FIRMWARE,
        })
        .collect()
}

/// One rising or falling edge of an alert on a unit (`unit` = 0-based slot) or on the gateway
/// (`unit = None`), at the site UTC instant the gateway saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AlertEdge {
    pub t_utc_s: i64,
    pub unit: Option<usize>,
    pub code: u8,
    pub raised: bool,
}

/// What the host gives a cycle: the time and the world before any injected event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SiteEnv {
    /// The site's UTC clock at the cycle's start, Unix s (the controller's `now`, edges' stamps).
    pub utc_s: f64,
    /// The instant on the scenario's timeline the events are scheduled on (the simulator: the
    /// clock; the live gateway: the clock wrapped over its profile).
    pub schedule_s: i64,
    /// Mean house load and PV over the cycle, W.
    pub load_w: f64,
    pub pv_w: f64,
    /// Ambient and grid as the profile has them.
    pub world: Environment,
}

/// What one cycle did. Reused from cycle to cycle (no allocation per step).
#[derive(Debug, Clone, Default)]
pub struct StepOutcome {
    /// The site balance, `soc` included (prices are the host's).
    pub flows: StepFlows,
    /// Per unit, its AC energy over the cycle.
    pub units: Vec<UnitFlow>,
    /// Alert edges the gateway saw this cycle, in order.
    pub edges: Vec<AlertEdge>,
    /// The grid was present at the connection point.
    pub grid_present: bool,
    /// The backup relay was open (the batteries formed the house's grid).
    pub island: bool,
}

/// Why a site could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("the controller refused the site: {0}")]
    Controller(#[from] melv_ems::EmsError),
    #[error("the bus has {bus} batteries, the site {site}")]
    Arity { bus: usize, site: usize },
}

/// One site: controller, battery bus, the injected events and what the gateway saw last.
pub struct Site<B: BatteryBus> {
    ctrl: Controller,
    bus: B,
    events: Vec<Event>,
    /// Per event, per unit: whether its fault is switched on now.
    fault_on: Vec<Vec<bool>>,
    prev_alerts: Vec<AlertSet>,
    prev_gw_alerts: AlertSet,
    grid_prev_w: f64,
    verdicts: Vec<Supervision>,
    /// The app's requests that this cycle's events make (shutdown and power-on), and the cycle's
    /// requests with them (reused: no allocation per cycle).
    event_requests: Vec<(UnitIndex, UnitRequest)>,
    all_requests: Vec<(UnitIndex, UnitRequest)>,
}

impl<B: BatteryBus> Site<B> {
    /// A site on `bus` (which must carry `spec.site.batteries` units). Alerts already standing in
    /// the bus's first reports are the starting state, not edges.
    pub fn new(spec: &SiteSpec, bus: B) -> Result<Self, SiteError> {
        let n = spec.site.batteries;
        if bus.len() != n {
            return Err(SiteError::Arity {
                bus: bus.len(),
                site: n,
            });
        }
        let ctrl = Controller::new(spec.site.clone(), spec.settings.clone())?;
        let prev_alerts = bus.received().iter().map(|s| s.alerts).collect();
        Ok(Self {
            ctrl,
            bus,
            events: spec.events.clone(),
            fault_on: vec![vec![false; n]; spec.events.len()],
            prev_alerts,
            prev_gw_alerts: AlertSet::EMPTY,
            grid_prev_w: 0.0,
            verdicts: Vec::new(),
            event_requests: Vec::new(),
            all_requests: Vec::new(),
        })
    }

    pub fn controller(&self) -> &Controller {
        &self.ctrl
    }
    pub fn controller_mut(&mut self) -> &mut Controller {
        &mut self.ctrl
    }
    /// The last cycle's decision.
    pub fn decision(&self) -> &Decision {
        self.ctrl.decision()
    }
    pub fn bus(&self) -> &B {
        &self.bus
    }
    pub fn bus_mut(&mut self) -> &mut B {
        &mut self.bus
    }
    pub fn into_bus(self) -> B {
        self.bus
    }
    /// What the gateway knows of each battery (as of the last poll), unit 1 first.
    pub fn received(&self) -> &[melv_core::status::BatteryStatus] {
        self.bus.received()
    }

    /// One control cycle `[now_s, now_s + dt_s)` with the controller's own decision.
    pub fn step(
        &mut self,
        now_s: f64,
        dt_s: f64,
        env: &SiteEnv,
        out: &mut StepOutcome,
    ) -> Result<(), BusError> {
        self.step_with(
            now_s,
            dt_s,
            env,
            &[],
            |c, i| {
                c.step(i);
            },
            out,
        )
    }

    /// One control cycle where `decide` runs the controller (a local-control bridge can steer it
    /// through its safety layers); afterwards the controller's decision is the cycle's. `requests`
    /// go to the units with the commands.
    pub fn step_with<F>(
        &mut self,
        now_s: f64,
        dt_s: f64,
        env: &SiteEnv,
        requests: &[(UnitIndex, UnitRequest)],
        decide: F,
        out: &mut StepOutcome,
    ) -> Result<(), BusError>
    where
        F: FnOnce(&mut Controller, &SiteInputs<'_>),
    {
        assert!(dt_s > 0.0 && dt_s.is_finite(), "cycle length {dt_s} s");
        out.edges.clear();
        let world = self.apply_events(env);
        let grid = world.grid;
        self.observe(now_s, env.utc_s, &mut out.edges)?;

        // Decide from what the gateway received.
        let t_i = env.utc_s as i64;
        let inputs = SiteInputs {
            now_s: t_i,
            grid_available: grid.present,
            grid_power_w: meter(self.ctrl.site().phases, self.grid_prev_w),
            grid_v: grid.phase_v,
            frequency_hz: grid.frequency_hz,
            pv_w: Some(env.pv_w),
            load_w: Some(env.load_w),
            batteries: self.bus.received(),
        };
        decide(&mut self.ctrl, &inputs);
        let d = self.ctrl.decision();
        // 63 is a battery's (found in what was received); the rest of the gateway's own alerts
        // belong to the site.
        let mut gw_alerts = d.alerts;
        gw_alerts.remove(AlertCode::COMMUNICATION_LOST);
        if gw_alerts != self.prev_gw_alerts {
            push_edges(&mut out.edges, t_i, None, self.prev_gw_alerts, gw_alerts);
            self.prev_gw_alerts = gw_alerts;
        }

        // Across the bus, and the batteries run.
        let unix_ms = Some((env.utc_s.max(0.0) * 1000.0) as u64);
        if self.event_requests.is_empty() {
            self.bus.send(now_s, unix_ms, &d.commands, requests)?;
        } else {
            self.all_requests.clear();
            self.all_requests.extend_from_slice(requests);
            self.all_requests.append(&mut self.event_requests);
            self.bus
                .send(now_s, unix_ms, &d.commands, &self.all_requests)?;
        }
        let n = self.bus.len();
        out.units.resize(n, UnitFlow::default());
        self.bus.advance(now_s, dt_s, &world, &mut out.units);

        // The site balance.
        let (mut charge_w, mut discharge_w) = (0.0, 0.0);
        for u in &out.units {
            charge_w += u.charge_w;
            discharge_w += u.discharge_w;
        }
        let island = d.island;
        let conn = if grid.present && !island {
            Connection::OnGrid
        } else {
            Connection::OffGrid
        };
        let mut f = StepFlows::balance(
            dt_s,
            env.load_w,
            env.pv_w,
            d.pv_curtail_to_w,
            charge_w,
            discharge_w,
            conn,
        );
        let scale = f.load_w.abs() + f.pv_w.abs() + charge_w.abs() + discharge_w.abs() + 1.0;
        assert!(
            f.closure_error_w().abs() <= 1e-9 * scale,
            "site balance does not close: {f:?}"
        );
        f.soc = self.bus.soc_mean();
        self.grid_prev_w = f.grid_w;
        out.flows = f;
        out.grid_present = grid.present;
        out.island = island;
        Ok(())
    }

    /// Take in the batteries' reports at `now_s` (site clock `utc_s`) and append the alert edges
    /// found in them. [`Site::step`] starts with it; a host calls it once after its last cycle so
    /// that what the batteries did in that cycle is seen too.
    pub fn observe(
        &mut self,
        now_s: f64,
        utc_s: f64,
        edges: &mut Vec<AlertEdge>,
    ) -> Result<(), BusError> {
        self.verdicts.clear();
        self.bus.poll(
            now_s,
            Some((utc_s.max(0.0) * 1000.0) as u64),
            &mut self.verdicts,
        )?;
        deliver_supervision(&self.verdicts, &mut self.ctrl);
        let t_i = utc_s as i64;
        for (i, st) in self.bus.received().iter().enumerate() {
            if st.alerts != self.prev_alerts[i] {
                push_edges(edges, t_i, Some(i), self.prev_alerts[i], st.alerts);
                self.prev_alerts[i] = st.alerts;
            }
        }
        Ok(())
    }

    /// Serve the bus between cycles (a real bus needs heartbeats every 100 ms); comm-loss verdicts
    /// reach the controller.
    pub fn pump(&mut self, now_s: f64, utc_s: f64) -> Result<(), BusError> {
        self.verdicts.clear();
        self.bus.pump(
            now_s,
            Some((utc_s.max(0.0) * 1000.0) as u64),
            &mut self.verdicts,
        )?;
        deliver_supervision(&self.verdicts, &mut self.ctrl);
        Ok(())
    }

    /// The events at `env.schedule_s`: the world this cycle, with faults and cuts switched on the
    /// bus as they start and end.
    fn apply_events(&mut self, env: &SiteEnv) -> Environment {
        let phases = self.ctrl.site().phases;
        let Environment {
            mut ambient_c,
            mut grid,
        } = env.world;
        let t = env.schedule_s;
        for (j, e) in self.events.iter().enumerate() {
            let on = e.active(t);
            match e.kind {
                EventKind::GridOutage if on => grid = GridState::outage(phases),
                EventKind::Voltage if on && grid.present => {
                    for p in 0..phases.count() {
                        grid.phase_v[p] = e.value;
                    }
                }
                EventKind::Frequency if on && grid.present => grid.frequency_hz = e.value,
                EventKind::Ambient if on => ambient_c = e.value,
                kind if kind.is_unit_fault() => {
                    for (i, state) in self.fault_on[j].iter_mut().enumerate() {
                        if e.battery.is_some_and(|b| b != i) || *state == on {
                            continue;
                        }
                        *state = on;
                        if kind == EventKind::CanCut {
                            self.bus.set_cut(i, on);
                        } else if kind == EventKind::Shutdown {
                            // The app's request, carried to the unit with this cycle's commands.
                            let req = if on {
                                UnitRequest::Shutdown
                            } else {
                                UnitRequest::PowerOn
                            };
                            if let Ok(u) = UnitIndex::new(i as u8 + 1) {
                                self.event_requests.push((u, req));
                            }
                        } else {
                            self.bus.set_fault(i, e, on);
                        }
                    }
                }
                _ => {}
            }
        }
        Environment { ambient_c, grid }
    }
}

/// The grid meter as the controller reads it: the previous cycle's site power. The house and the
/// units are balanced across phases (manual 4.6), so a three-phase meter reads a third on each.
fn meter(phases: Phases, grid_w: f64) -> [f64; 3] {
    let mut m = [0.0; 3];
    match phases {
        Phases::Single => m[0] = grid_w,
        Phases::Three => m = [grid_w / 3.0; 3],
    }
    m
}

/// Hand the CAN gateway node's comm-loss verdicts to the controller (code 63).
pub fn deliver_supervision(verdicts: &[Supervision], ctrl: &mut Controller) {
    for s in verdicts {
        match *s {
            Supervision::Lost(u) => ctrl.handle_comm_status(u.slot(), false),
            Supervision::Restored(u) => ctrl.handle_comm_status(u.slot(), true),
        }
    }
}

fn push_edges(
    edges: &mut Vec<AlertEdge>,
    t: i64,
    unit: Option<usize>,
    before: AlertSet,
    after: AlertSet,
) {
    for c in after.iter().filter(|c| !before.contains(*c)) {
        edges.push(AlertEdge {
            t_utc_s: t,
            unit,
            code: c.get(),
            raised: true,
        });
    }
    for c in before.iter().filter(|c| !after.contains(*c)) {
        edges.push(AlertEdge {
            t_utc_s: t,
            unit,
            code: c.get(),
            raised: false,
        });
    }
}

#[cfg(test)]
mod contract_tests {
    #[test]
    fn the_gateway_knows_how_long_a_silent_unit_keeps_its_order() {
        assert_eq!(
            melv_ems::controller::UNIT_COMMAND_TIMEOUT_S,
            melv_bms::COMMAND_TIMEOUT_S
        );
    }
}
