//! One scenario through the site core on its three battery buses: direct function calls, the CAN
//! codec in process ([`melv_site::CodecBus`]), and the live gateway's bus on a real CAN transport
//! ([`melv_gateway::remote::RemoteBus`] over socketcand on loopback, twins behind a socketcand
//! server). The cycle is the same code on all three; only the link differs.
//!
//! The two CAN buses carry the same frames in the same order at the same instants, so their KPIs
//! and alert edges are identical, bit for bit. The direct bus gives the gateway the units' exact
//! reports instead of the codec's decoded ones (SOC to 0.1 %, powers to 1 W ...), so its decisions
//! differ by that resolution: its energy KPIs agree within a small tolerance, its alerts exactly.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "a test: it runs the real-CAN bus over socketcand on loopback, with threads and deadlines"
)]

use melv_can::transport::socketcand::{SocketcandClient, SocketcandServer};
use melv_can::transport::{Transport, TransportError};
use melv_can::{BatteryEvent, BatteryNode, CanFrame, SimLink, Supervision, UnitIndex};
use melv_core::status::{BatteryCommand, BatteryStatus, UnitRequest};
use melv_gateway::remote::RemoteBus;
use melv_model::Environment;
use melv_sim::kpi::Kpis;
use melv_sim::report::SimResult;
use melv_sim::runner;
use melv_sim::scenario::{Overrides, Scenario};
use melv_site::{BatteryBus, BusError, CodecBus, DirectBus, UnitFlow};
use melv_unit::BatteryUnit;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn scenario() -> Scenario {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut text = std::fs::read_to_string(dir.join("tou-two-batteries.toml")).unwrap();
    // A grid outage on the first evening and a heater failure in a cold snap on battery 2: alerts
    // from the gateway and from a unit's firmware.
    text.push_str(
        "\n[[events]]\nkind = \"grid_outage\"\nfrom = \"2019-01-01T18:00\"\nto = \"2019-01-01T19:30\"\n\
         \n[[events]]\nkind = \"ambient\"\nfrom = \"2019-01-02T00:00\"\nto = \"2019-01-02T12:00\"\nvalue = -25.0\n\
         \n[[events]]\nkind = \"heater_failure\"\nfrom = \"2019-01-02T00:00\"\nbattery = 1\n",
    );
    let profile = std::fs::read(dir.join("../data/greensboro-h0-hourly-2019.csv")).unwrap();
    Scenario::from_text(
        "tou-two-batteries.toml + events",
        &text,
        ("greensboro-h0-hourly-2019.csv", &profile),
        None,
        Overrides {
            step_s: Some(60.0),
            days: Some(2.0),
        },
    )
    .unwrap()
}

/// The gateway's end of the socketcand connection, in lockstep with the far end: a poll returns
/// nothing until every frame the far end said it sent has arrived, so that the gateway node takes
/// in exactly one cycle's reports before it supervises (TCP keeps their order).
struct Gate {
    inner: SocketcandClient,
    expected: Arc<AtomicU64>,
    got: u64,
}

impl Transport for Gate {
    fn send(&mut self, frame: &CanFrame) -> Result<(), TransportError> {
        self.inner.send(frame)
    }
    fn recv(&mut self, _: Duration) -> Result<Option<CanFrame>, TransportError> {
        if self.got >= self.expected.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(f) = self.inner.recv(Duration::from_millis(100))? {
                self.got += 1;
                return Ok(Some(f));
            }
            assert!(Instant::now() < deadline, "a report frame never arrived");
        }
    }
}

/// The real-CAN bus for the test: the live gateway's [`RemoteBus`] on a socketcand client, and the
/// twins behind battery nodes on the socketcand server, stepped in lockstep with the site.
struct LoopbackCan {
    remote: RemoteBus,
    far: SocketcandServer,
    expected: Arc<AtomicU64>,
    nodes: Vec<BatteryNode>,
    units: Vec<BatteryUnit>,
    reports: Vec<BatteryStatus>,
    prev_ac: Vec<(f64, f64)>,
}

impl LoopbackCan {
    fn new(sc: &Scenario) -> Self {
        let mut far = SocketcandServer::bind("127.0.0.1:0", "can0").unwrap();
        let addr = far.local_addr().to_string();
        let client = SocketcandClient::connect(&addr, "can0").unwrap();
        // The server hands a client frames once it is in raw mode and settled.
        let deadline = Instant::now() + Duration::from_secs(10);
        while far.raw_clients() < 1 {
            let _ = far.recv(Duration::from_millis(10)).unwrap();
            assert!(Instant::now() < deadline, "socketcand client never settled");
        }
        let expected = Arc::new(AtomicU64::new(0));
        let gate = Gate {
            inner: client,
            expected: expected.clone(),
            got: 0,
        };
        let n = sc.site.batteries;
        let remote = RemoteBus::new(n, Box::new(gate)).unwrap();
        let ids = runner::can_identities(sc);
        let nodes = (0..n)
            .map(|i| BatteryNode::new(UnitIndex::new(i as u8 + 1).unwrap(), ids[i]))
            .collect();
        let units = sc.units();
        let reports = units.iter().map(|u| u.status()).collect();
        let prev_ac = units
            .iter()
            .map(|u| (u.energy().ac_import_wh(), u.energy().ac_out_wh))
            .collect();
        Self {
            remote,
            far,
            expected,
            nodes,
            units,
            reports,
            prev_ac,
        }
    }
}

impl BatteryBus for LoopbackCan {
    fn len(&self) -> usize {
        self.units.len()
    }
    fn poll(
        &mut self,
        now_s: f64,
        unix_ms: Option<u64>,
        verdicts: &mut Vec<Supervision>,
    ) -> Result<(), BusError> {
        let mut sent = 0;
        for (node, report) in self.nodes.iter_mut().zip(&self.reports) {
            for f in node.poll_transmit(now_s, report).unwrap() {
                self.far.send(&f).unwrap();
                sent += 1;
            }
        }
        self.expected.fetch_add(sent, Ordering::SeqCst);
        self.remote.poll(now_s, unix_ms, verdicts)
    }
    fn received(&self) -> &[BatteryStatus] {
        self.remote.received()
    }
    fn send(
        &mut self,
        now_s: f64,
        unix_ms: Option<u64>,
        commands: &[BatteryCommand],
        requests: &[(UnitIndex, UnitRequest)],
    ) -> Result<(), BusError> {
        let before = self.remote.frames().0;
        self.remote.send(now_s, unix_ms, commands, requests)?;
        let mut left = self.remote.frames().0 - before;
        let deadline = Instant::now() + Duration::from_secs(10);
        while left > 0 {
            let Some(f) = self.far.recv(Duration::from_millis(100)).unwrap() else {
                assert!(Instant::now() < deadline, "a gateway frame never arrived");
                continue;
            };
            left -= 1;
            for (node, unit) in self.nodes.iter_mut().zip(self.units.iter_mut()) {
                match node.handle_frame(now_s, &f) {
                    Some(BatteryEvent::Command(c)) => unit.command(now_s, &c),
                    Some(BatteryEvent::Request(r)) => unit.request(now_s, r),
                    Some(BatteryEvent::Time { .. }) | None => {}
                }
            }
        }
        Ok(())
    }
    fn advance(&mut self, now_s: f64, dt_s: f64, env: &Environment, flows: &mut [UnitFlow]) {
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
    fn units(&self) -> &[BatteryUnit] {
        &self.units
    }
    fn set_fault(&mut self, slot: usize, event: &melv_site::Event, on: bool) {
        melv_site::bus::set_fault(self.units[slot].faults_mut(), event, on);
    }
}

fn energies(k: &Kpis) -> [(&'static str, f64); 5] {
    [
        ("grid import", k.grid_import_kwh),
        ("grid export", k.grid_export_kwh),
        ("battery charge", k.battery_charge_kwh),
        ("battery discharge", k.battery_discharge_kwh),
        ("load unserved", k.load_unserved_kwh),
    ]
}

#[test]
fn one_site_core_on_three_buses() {
    let sc = scenario();
    let run = |bus| runner::run_on(&sc, bus, &mut |_, _| {}).unwrap().0;
    let direct: SimResult = run_direct(&sc);
    let link = SimLink::<std::io::Sink>::new(&runner::can_identities(&sc), sc.seed).unwrap();
    let codec = runner::run_on(&sc, CodecBus::new(sc.units(), link), &mut |_, _| {})
        .unwrap()
        .0;
    let real = run(LoopbackCan::new(&sc));

    // The run saw something happen: the outage and the cold snap raise alerts.
    assert!(!codec.alert_edges.is_empty(), "no alert in the run");
    assert!(codec.kpis.islanded_hours > 1.0, "{:?}", codec.kpis);

    // Through the codec, in process or over TCP: the same run, bit for bit.
    assert_eq!(codec.kpis, real.kpis);
    assert_eq!(codec.alert_edges, real.alert_edges);

    // Direct: the same alerts at the same instants, the energy within the codec's resolution.
    assert_eq!(direct.alert_edges, codec.alert_edges);
    for ((what, a), (_, b)) in energies(&direct.kpis)
        .into_iter()
        .zip(energies(&codec.kpis))
    {
        let tol = 0.02 * direct.kpis.battery_discharge_kwh.max(1.0);
        assert!(
            (a - b).abs() <= tol,
            "{what}: direct {a} vs codec {b} (tolerance {tol})"
        );
    }
}

fn run_direct(sc: &Scenario) -> SimResult {
    runner::run_on(sc, DirectBus::new(sc.units()), &mut |_, _| {})
        .unwrap()
        .0
}
