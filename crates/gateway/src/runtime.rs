//! The tokio shell: wall clock (or N x accelerated), the MQTT connection, the queue on disk.
//!
//! One task owns everything that decides (site, queue, send plan); a second task per connection
//! only polls rumqttc's event loop and forwards what happened. A connection that fails is dropped
//! whole (client, event loop, their in-flight state) and a new one is made a second later, so no
//! publish is ever retransmitted by rumqttc behind our back: what is unacknowledged is on disk and
//! the [`SendPlan`] sends it again as backlog.
//!
//! What leaves the queue is what the cloud confirmed on `melv/v1/{gateway}/ack` (retained, read at
//! every connection): [`Queue::confirm_through`] its mark, and the [`SendPlan`] sends again what is
//! above it when the mark stalls (`crate::uplink`, docs/gateway.md 5). With `--confirm broker` the
//! broker's PUBACK deletes a record instead (a gateway with no melv cloud behind its broker).
//!
//! PUBACKs are matched to records by packet id: rumqttc reports `Outgoing::Publish(pkid)` for our
//! publish requests in the order we made them, so a FIFO of the sequence numbers we asked to publish
//! (with `None` for unsequenced messages: status, acks, discovery) names each packet id.

use crate::args::{clock_start, ClockStart, Confirm, GatewayArgs};
use crate::ha;
use crate::queue::{Queue, QueueError};
use crate::record::{Counters, LinkState, Record, StatusDetail, StatusMessage, Topics, SCHEMA};
use crate::site::{SiteError, SiteRuntime, TELEMETRY_INTERVAL_S};
use crate::uplink::{answer_settings, SendPlan, SettingsAnswer, SettingsMessage};
use melv_scenario::builtin::SiteSource;
use melv_wire::UplinkAck;
use melv_wire::{Credentials, MqttUrl};
use rumqttc::{AsyncClient, Event, LastWill, Outgoing, Packet, QoS};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Args(String),
    #[error(transparent)]
    Site(#[from] SiteError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Scenario(#[from] melv_scenario::SimError),
    #[error("--modbus {addr}: cannot serve SunSpec Modbus there")]
    Modbus {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
}

/// What a run did, printed at exit.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub gateway: String,
    pub records_produced: u64,
    /// Records confirmed (by the cloud's mark, or with `--confirm broker` by the broker's PUBACK)
    /// and deleted from the queue in this run.
    pub records_acked: u64,
    /// The cloud's contiguous mark at exit.
    pub cloud_mark: u64,
    /// Times unconfirmed records were sent again because the cloud's mark stalled.
    pub resends: u64,
    pub queue_left: u64,
    pub dropped: u64,
    pub next_seq: u64,
    /// Simulated seconds since the profile start, over all runs of this state directory.
    pub sim_elapsed_s: f64,
    /// Simulated seconds of this run.
    pub sim_run_s: f64,
    pub connections: u64,
}

/// Most publishes awaiting PUBACK (records); rumqttc's own inflight limit is set well above it.
const WINDOW: usize = 64;
/// Wall-clock tick of the loop.
const TICK: Duration = Duration::from_millis(10);
/// Most control cycles per tick, so that a very high speed cannot starve the uplink.
const MAX_CYCLES_PER_TICK: u32 = 2_000;
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

enum ConnEvent {
    Up,
    Published(u16),
    PubAck(u16),
    Message(String, Vec<u8>),
    Down(String),
}

struct Conn {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<ConnEvent>,
    task: tokio::task::JoinHandle<()>,
    up: bool,
    /// Our publish requests not yet given a packet id, in order.
    requested: VecDeque<Option<u64>>,
    inflight: HashMap<u16, Option<u64>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The broker and how to log in, fixed for the run.
struct Broker {
    url: MqttUrl,
    auth: Option<Credentials>,
}

fn connect(id: &str, broker: &Broker, topics: &Topics) -> Conn {
    let mut o = melv_wire::mqtt_options(
        &broker.url,
        format!("melv-gw-{id}"),
        Duration::from_secs(5),
        broker.auth.as_ref(),
    );
    o.set_clean_session(true);
    o.set_inflight(1024);
    o.set_max_packet_size(1 << 20, 1 << 20);
    o.set_last_will(LastWill::new(
        &topics.status,
        StatusMessage::offline_will(id).to_payload(),
        QoS::AtLeastOnce,
        true,
    ));
    let (client, mut eventloop) = AsyncClient::new(o, 1024);
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            let ev = match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => ConnEvent::Up,
                Ok(Event::Incoming(Packet::PubAck(a))) => ConnEvent::PubAck(a.pkid),
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    ConnEvent::Message(p.topic.clone(), p.payload.to_vec())
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => ConnEvent::Published(pkid),
                Ok(_) => continue,
                Err(e) => {
                    let _ = tx.send(ConnEvent::Down(e.to_string()));
                    return;
                }
            };
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
    Conn {
        client,
        events: rx,
        task,
        up: false,
        requested: VecDeque::new(),
        inflight: HashMap::new(),
    }
}

impl Conn {
    async fn publish(
        &mut self,
        topic: &str,
        retain: bool,
        payload: Vec<u8>,
        seq: Option<u64>,
    ) -> bool {
        self.requested.push_back(seq);
        let ok = self
            .client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .is_ok();
        if !ok {
            self.requested.pop_back();
        }
        ok
    }
}

/// Everything the loop owns.
struct Gateway {
    id: String,
    topics: Topics,
    site: SiteRuntime,
    queue: Queue,
    plan: SendPlan,
    args: GatewayArgs,
    started: Instant,
    summary: Summary,
    /// The site file's path, or `built-in example NAME`.
    site_label: String,
    state_dir: std::path::PathBuf,
    ha_state: Option<serde_json::Value>,
    /// The last Home Assistant state made (to show a command's effect before the next record).
    ha_last: Option<serde_json::Value>,
    /// Home Assistant alert events waiting for the connection (bounded by [`HA_EVENTS_MAX`]).
    ha_events: std::collections::VecDeque<(String, Vec<u8>)>,
    last_status: Option<Instant>,
}

/// Alert events kept for Home Assistant while the broker is away; older ones are dropped (the
/// binary sensors still show which alerts are active).
const HA_EVENTS_MAX: usize = 256;
/// Changes made from Home Assistant kept in the queue's `ha_audit` meta entry, newest last.
const HA_AUDIT_MAX: usize = 100;

/// Run a gateway until `shutdown` completes (or `--run-for` is reached), then flush and return.
pub async fn run(
    args: GatewayArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<Summary, RunError> {
    check_args(&args)?;
    let broker = broker(&args)?;
    let mut gw = Gateway::open(args).await?;
    eprintln!(
        "melv-gateway {}: site {} at {}x, broker {}, state {}, queue {} records (next seq {})",
        gw.id,
        gw.site_label,
        gw.args.speed,
        broker.url,
        gw.state_dir.display(),
        gw.queue.len(),
        gw.queue.next_seq()
    );
    let mut link = Link {
        conn: Some(connect(&gw.id, &broker, &gw.topics)),
        reconnect_at: None,
        broker,
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    gw.run_live(&mut link, &mut tick, shutdown).await?;
    gw.flush(&mut link, &mut tick).await?;
    if let Some(c) = link.conn.as_mut() {
        gw.say_goodbye(c).await;
    }
    Ok(gw.finish())
}

fn check_args(args: &GatewayArgs) -> Result<(), RunError> {
    args.check().map_err(RunError::Args)
}

/// `--mqtt` and the credentials: the username from `--mqtt-username` (or the URL), the password only
/// from the environment (a command line is visible to every user of the machine) unless the URL
/// carries one. deploy/mosquitto/acl expects the gateway id as the username.
fn broker(args: &GatewayArgs) -> Result<Broker, RunError> {
    let url = MqttUrl::parse(&args.mqtt).map_err(|e| RunError::Args(format!("--mqtt: {e}")))?;
    // The password: MELV_MQTT_PASSWORD, else the gateway's claim code (crate::claim).
    let password = match std::env::var(melv_wire::PASSWORD_ENV).ok() {
        Some(p) => Some(p),
        None => crate::claim::stored(args).map_err(RunError::Args)?,
    };
    let auth = url
        .credentials(args.mqtt_username.as_deref(), password)
        .map_err(|e| RunError::Args(e.to_string()))?;
    Ok(Broker { url, auth })
}

/// The site clock as `(clock_offset_s, sim_elapsed_s)`: fixed at the first run of this state
/// directory and kept. With `--clock now` a restart skips the time the gateway was down, as a real
/// site's clock does (never backwards).
fn site_clock(
    queue: &Queue,
    scenario: &melv_scenario::Scenario,
    clock: ClockStart,
    elapsed: f64,
) -> Result<(f64, f64), RunError> {
    let start_s = scenario.profile.start_utc_s as f64;
    let span_s = (scenario.profile.end_utc_s() - scenario.profile.start_utc_s) as f64;
    let wall_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    Ok(
        match queue
            .meta("clock_offset_s")?
            .and_then(|v| v.parse::<f64>().ok())
        {
            Some(off) if clock == ClockStart::Now => {
                let now_pos = ((wall_unix - start_s - off) / TELEMETRY_INTERVAL_S).floor()
                    * TELEMETRY_INTERVAL_S;
                (off, elapsed.max(now_pos))
            }
            Some(off) => (off, elapsed),
            None if clock == ClockStart::Now => clock_start(wall_unix, start_s, span_s),
            None => (0.0, elapsed),
        },
    )
}

/// The site runtime as the state directory left it: clock, counters, the batteries on CAN
/// (`--can`) or in process, local control (`--modbus`) and the settings in force.
async fn open_site(
    args: &GatewayArgs,
    source: &SiteSource,
    id: &str,
    queue: &mut Queue,
) -> Result<SiteRuntime, RunError> {
    let scenario = source.load(Default::default())?;
    let elapsed: f64 = queue
        .meta("sim_elapsed_s")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let counters: Counters = queue
        .meta("counters")?
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default();
    let (offset, elapsed) = site_clock(queue, &scenario, args.clock, elapsed)?;
    queue.set_meta("clock_offset_s", &offset.to_string())?;
    let n_batteries = scenario.site.batteries;
    let mut site =
        SiteRuntime::new(id, scenario, args.cycle, elapsed, counters)?.with_clock_offset(offset);
    // The in-process twins resume where the last run left them (crate::twins).
    if args.can.is_none() {
        if let Some(json) = queue.meta("twins")? {
            match crate::twins::parse(&json, n_batteries) {
                Ok(states) => crate::twins::restore(&mut site, &states)?,
                Err(e) => eprintln!("melv-gateway {id}: {e}; the twins start from the site file"),
            }
        }
    }
    if let Some(target) = &args.can {
        site = site.with_remote_bus(open_can(target, id, queue, n_batteries)?);
    }
    if let Some(addr) = &args.modbus {
        start_modbus(&mut site, args, addr, id).await?;
    }
    // The settings in force survive restarts: the site keeps running on its last settings.
    if let Some(m) = queue
        .meta("settings")?
        .and_then(|v| serde_json::from_str::<SettingsMessage>(&v).ok())
    {
        if let Err(e) = site.apply_settings(m.version, m.settings) {
            eprintln!("melv-gateway {id}: stored settings v{} no longer valid ({e}); using the site file's", m.version);
        }
    }
    Ok(site)
}

/// The batteries' bus (`--can`): a connection that is re-made with backoff (the gateway starts
/// without its socketcand server and survives it going away; the silent units get 63 meanwhile),
/// requests sent in a new session at every start (the boot counter, kept in the state directory),
/// and connection changes and address conflicts on stderr.
fn open_can(
    target: &str,
    id: &str,
    queue: &mut Queue,
    n_batteries: usize,
) -> Result<crate::remote::RemoteBus, RunError> {
    let target = crate::remote::CanTarget::parse(target).map_err(RunError::Args)?;
    // A first start (or a wiped state directory) takes the minute count as its session, so it is
    // almost surely none of the few earlier sessions a battery remembers.
    let first = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 60) as u16);
    let session = queue
        .meta("can_session")?
        .and_then(|v| v.parse::<u16>().ok())
        .map_or(first, |s| s.wrapping_add(1));
    queue.set_meta("can_session", &session.to_string())?;
    let (gw, gw2) = (id.to_string(), id.to_string());
    let transport = target.open_reconnecting(move |e| eprintln!("melv-gateway {gw}: CAN {e}"));
    let bus = crate::remote::RemoteBus::new(n_batteries, Box::new(transport))
        .map_err(|e| RunError::Args(format!("--can: {e}")))?
        .with_session(session)
        .on_note(move |n| eprintln!("melv-gateway {gw2}: CAN {n}"));
    Ok(bus)
}

/// The connection, if any, and when to make the next one.
struct Link {
    broker: Broker,
    conn: Option<Conn>,
    reconnect_at: Option<Instant>,
}

async fn next_event(conn: &mut Option<Conn>) -> ConnEvent {
    match conn.as_mut() {
        Some(c) => c
            .events
            .recv()
            .await
            .unwrap_or_else(|| ConnEvent::Down("event loop ended".into())),
        None => std::future::pending().await,
    }
}

impl Gateway {
    /// The gateway of `args`: its id and topics, its state directory and queue, its site.
    async fn open(args: GatewayArgs) -> Result<Self, RunError> {
        let source = args.site_source()?;
        let id = args.gateway_id(&source);
        let topics = Topics::new(&id).map_err(|e| RunError::Args(e.to_string()))?;
        let state_dir = args.state_dir(&id).map_err(RunError::Args)?;
        std::fs::create_dir_all(&state_dir).map_err(|source| RunError::StateDir {
            path: state_dir.display().to_string(),
            source,
        })?;
        let mut queue = Queue::open(&state_dir.join("queue.sqlite"), args.queue_capacity)?;
        let site = open_site(&args, &source, &id, &mut queue).await?;
        let plan = SendPlan::new(WINDOW, args.backlog_rate, args.resend_after)
            .with_confirmed(queue.cloud_mark());
        let plan = match args.confirm {
            Confirm::Cloud => plan,
            Confirm::Broker => plan.without_rewind(),
        };
        Ok(Gateway {
            site_label: source.label(),
            state_dir,
            summary: Summary {
                gateway: id.clone(),
                ..Summary::default()
            },
            id,
            topics,
            site,
            plan,
            queue,
            started: Instant::now(),
            args,
            ha_state: None,
            ha_last: None,
            ha_events: std::collections::VecDeque::new(),
            last_status: None,
        })
    }

    /// The site runs and the uplink publishes until `shutdown` or `--run-for`.
    async fn run_live(
        &mut self,
        link: &mut Link,
        tick: &mut tokio::time::Interval,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), RunError> {
        tokio::pin!(shutdown);
        let mut stop = false;
        while !stop {
            tokio::select! {
                _ = &mut shutdown => stop = true,
                ev = next_event(&mut link.conn) => self.on_link_event(link, ev).await?,
                _ = tick.tick() => {
                    stop = self.advance()?;
                    self.tend_link(link).await?;
                }
            }
        }
        Ok(())
    }

    /// Graceful shutdown: the simulation has stopped; give the uplink a bounded time to empty the
    /// queue (whatever is left stays on disk for the next start).
    async fn flush(
        &mut self,
        link: &mut Link,
        tick: &mut tokio::time::Interval,
    ) -> Result<(), RunError> {
        let deadline = Instant::now() + Duration::from_secs_f64(self.args.flush_timeout.max(0.0));
        while !self.queue.is_empty() && Instant::now() < deadline {
            tokio::select! {
                ev = next_event(&mut link.conn) => self.on_link_event(link, ev).await?,
                _ = tick.tick() => self.tend_link(link).await?,
            }
        }
        Ok(())
    }

    /// One connection event; a lost connection is dropped and made again later.
    async fn on_link_event(&mut self, link: &mut Link, ev: ConnEvent) -> Result<(), RunError> {
        if !self.handle_event(&mut link.conn, ev).await? {
            link.conn = None;
            self.plan.on_disconnected();
            link.reconnect_at = Some(Instant::now() + RECONNECT_AFTER);
        }
        Ok(())
    }

    /// Publishes what is due on the connection, or makes a new one when it is time.
    async fn tend_link(&mut self, link: &mut Link) -> Result<(), RunError> {
        if let Some(c) = link.conn.as_mut() {
            self.pump(c).await?;
        }
        if link.conn.is_none() && link.reconnect_at.is_some_and(|t| Instant::now() >= t) {
            link.conn = Some(connect(&self.id, &link.broker, &self.topics));
            link.reconnect_at = None;
        }
        Ok(())
    }

    /// Says goodbye: the retained offline status, then a DISCONNECT.
    async fn say_goodbye(&mut self, c: &mut Conn) {
        if !c.up {
            return;
        }
        let p = self.status_payload(LinkState::Offline);
        c.publish(&self.topics.status, true, p, None).await;
        let _ = c.client.disconnect().await;
        // Let the event loop write the last packets.
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while let Some(ev) = c.events.recv().await {
                if matches!(ev, ConnEvent::Down(_)) {
                    break;
                }
            }
        })
        .await;
    }

    fn finish(mut self) -> Summary {
        self.summary.queue_left = self.queue.len();
        self.summary.dropped = self.queue.dropped();
        self.summary.next_seq = self.queue.next_seq();
        self.summary.cloud_mark = self.queue.cloud_mark();
        self.summary.resends = self.plan.rewinds();
        self.summary.sim_elapsed_s = self.site.sim_elapsed_s();
        self.summary.sim_run_s = self.site.now_s();
        self.summary
    }

    /// Handle one connection event; `false` when the connection is gone.
    async fn handle_event(
        &mut self,
        conn: &mut Option<Conn>,
        ev: ConnEvent,
    ) -> Result<bool, RunError> {
        let Some(c) = conn.as_mut() else {
            return Ok(true);
        };
        match ev {
            ConnEvent::Down(why) => {
                if c.up {
                    eprintln!("melv-gateway {}: connection lost: {why}", self.id);
                }
                return Ok(false);
            }
            ConnEvent::Up => {
                c.up = true;
                self.summary.connections += 1;
                eprintln!(
                    "melv-gateway {}: connected; backlog {} records",
                    self.id,
                    self.queue.len()
                );
                self.plan.on_connected(self.wall_s(), self.queue.next_seq());
                let _ = c
                    .client
                    .subscribe(&self.topics.settings, QoS::AtLeastOnce)
                    .await;
                if self.args.confirm == Confirm::Cloud {
                    let _ = c.client.subscribe(&self.topics.ack, QoS::AtLeastOnce).await;
                }
                let p = self.status_payload(LinkState::Online);
                c.publish(&self.topics.status, true, p, None).await;
                self.last_status = Some(Instant::now());
                if self.args.ha_discovery {
                    let _ = c
                        .client
                        .subscribe(ha::command_filter(&self.topics), QoS::AtLeastOnce)
                        .await;
                    let units = self.site.battery_serials().len();
                    for (topic, payload) in ha::discovery(&self.id, &self.topics, units) {
                        c.publish(&topic, true, payload, None).await;
                    }
                }
            }
            ConnEvent::Published(pkid) => {
                let seq = c.requested.pop_front().flatten();
                c.inflight.insert(pkid, seq);
            }
            ConnEvent::PubAck(pkid) => {
                if let Some(Some(seq)) = c.inflight.remove(&pkid) {
                    self.plan.on_acked(1);
                    if self.args.confirm == Confirm::Broker {
                        self.summary.records_acked += self.queue.remove(&[seq])?;
                    }
                }
            }
            ConnEvent::Message(topic, payload) => {
                if topic == self.topics.settings {
                    self.on_settings(c, &payload).await?;
                } else if topic == self.topics.ack {
                    self.on_cloud_ack(&payload)?;
                } else if self.args.ha_discovery {
                    self.on_ha_command(&topic, &payload)?;
                }
            }
        }
        Ok(true)
    }

    /// The cloud's acknowledgement: delete what it confirmed. A payload that is not an ack of this
    /// gateway is reported and ignored (it confirms nothing, so nothing is lost).
    fn on_cloud_ack(&mut self, payload: &[u8]) -> Result<(), RunError> {
        if payload.is_empty() {
            // A retained ack being cleared.
            return Ok(());
        }
        let ack = match serde_json::from_slice::<UplinkAck>(payload) {
            Ok(a) if a.gateway == self.id && melv_wire::check_schema(&a.schema).is_ok() => a,
            Ok(a) => {
                eprintln!(
                    "melv-gateway {}: ack on {} for gateway {:?} schema {:?} ignored",
                    self.id, self.topics.ack, a.gateway, a.schema
                );
                return Ok(());
            }
            Err(e) => {
                eprintln!(
                    "melv-gateway {}: ack on {}: {e}; ignored",
                    self.id, self.topics.ack
                );
                return Ok(());
            }
        };
        self.summary.records_acked += self.queue.confirm_through(ack.stored_through)?;
        self.plan
            .on_cloud_ack(self.wall_s(), self.queue.cloud_mark());
        Ok(())
    }

    async fn on_settings(&mut self, c: &mut Conn, payload: &[u8]) -> Result<(), RunError> {
        let SettingsAnswer::Ack { ack, applied } = answer_settings(&mut self.site, payload) else {
            return Ok(());
        };
        if let Some(m) = applied {
            let json = serde_json::to_string(&*m).unwrap_or_default();
            self.queue.set_meta("settings", &json)?;
            eprintln!("melv-gateway {}: settings v{} applied", self.id, m.version);
        }
        let p = serde_json::to_vec(&ack).unwrap_or_default();
        c.publish(&self.topics.settings_ack, false, p, None).await;
        Ok(())
    }

    /// A `select`/`number` command from Home Assistant: new settings through the same validation
    /// as the cloud's, persisted as the settings in force (under the version in force, so the
    /// cloud's next version still replaces them), and audited in the queue's `ha_audit` entry.
    fn on_ha_command(&mut self, topic: &str, payload: &[u8]) -> Result<(), RunError> {
        let verdict = match ha::command(&self.topics, topic, payload, self.site.settings()) {
            Ok(None) => return Ok(()),
            Ok(Some(s)) => {
                let v = self.site.settings_version();
                self.site
                    .apply_settings(v, s.clone())
                    .map(|()| s)
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        let entry = serde_json::json!({
            "t_utc_s": self.site.clock_utc_s() as i64,
            "topic": topic,
            "payload": String::from_utf8_lossy(&payload[..payload.len().min(ha::MAX_COMMAND_BYTES)]),
            "accepted": verdict.is_ok(),
            "reason": verdict.as_ref().err(),
            "mode": self.site.settings().mode,
            "reserve_soc": self.site.settings().reserve_soc,
        });
        eprintln!("melv-gateway {}: Home Assistant command {entry}", self.id);
        let mut audit: Vec<serde_json::Value> = self
            .queue
            .meta("ha_audit")?
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default();
        audit.push(entry);
        let excess = audit.len().saturating_sub(HA_AUDIT_MAX);
        audit.drain(..excess);
        self.queue
            .set_meta("ha_audit", &serde_json::Value::from(audit).to_string())?;
        if let Ok(s) = verdict {
            let m = SettingsMessage::new(self.site.settings_version(), s);
            let json = serde_json::to_string(&m).unwrap_or_default();
            self.queue.set_meta("settings", &json)?;
        }
        // The select and the number show the settings now in force at the next state publish.
        if let Some(mut st) = self.ha_last.clone() {
            ha::show_settings(&mut st, self.site.settings());
            self.ha_last = Some(st.clone());
            self.ha_state = Some(st);
        }
        Ok(())
    }

    fn wall_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn status_payload(&self, state: LinkState) -> Vec<u8> {
        StatusMessage {
            schema: SCHEMA.into(),
            gateway: self.id.clone(),
            state,
            detail: Some(StatusDetail {
                t_utc_s: self.site.clock_utc_s() as i64,
                queue_len: self.queue.len(),
                queue_capacity: self.queue.capacity(),
                dropped: self.queue.dropped(),
                next_seq: self.queue.next_seq(),
                settings_version: self.site.settings_version(),
                speed: self.args.speed,
            }),
        }
        .to_payload()
    }

    /// Run the control cycles that wall time asks for and store their records. `true` when
    /// `--run-for` is reached.
    fn advance(&mut self) -> Result<bool, RunError> {
        let target = self.wall_s() * self.args.speed;
        let limit = self.args.run_for.unwrap_or(f64::INFINITY);
        let mut records = Vec::new();
        let mut n = 0;
        while self.site.now_s() + self.site.cycle_s() <= target.min(limit) + 1e-9
            && n < MAX_CYCLES_PER_TICK
        {
            records.extend(self.site.step()?);
            n += 1;
        }
        if self.site.is_remote() {
            self.site.pump_bus(target.min(limit))?;
        }
        if !records.is_empty() {
            // The state written with the records is that of the last telemetry record's end: a
            // restart resumes there, on a minute boundary, with the counters that record carried.
            let mut state = Vec::new();
            if let Some(t) = records.iter().rev().find_map(|r| match r {
                Record::Telemetry(t) => Some(t),
                Record::Alert(_) => None,
            }) {
                let elapsed = self.site.sim_elapsed_at(t.t_utc_s as f64);
                state.push(("sim_elapsed_s", elapsed.to_string()));
                state.push((
                    "counters",
                    serde_json::to_string(&t.counters).unwrap_or_default(),
                ));
                if let Some(twins) = crate::twins::capture(&self.site) {
                    state.push(("twins", serde_json::to_string(&twins).unwrap_or_default()));
                }
                if self.args.ha_discovery {
                    let st = ha::state(t, self.site.settings());
                    self.ha_last = Some(st.clone());
                    self.ha_state = Some(st);
                }
            }
            if self.args.ha_discovery {
                for r in &records {
                    if let Record::Alert(a) = r {
                        if self.ha_events.len() == HA_EVENTS_MAX {
                            self.ha_events.pop_front();
                        }
                        self.ha_events.push_back(ha::alert_event(&self.topics, a));
                    }
                }
            }
            self.queue.append(&self.id, &records, &state)?;
            self.summary.records_produced += records.len() as u64;
        }
        Ok(self.site.now_s() + self.site.cycle_s() > limit + 1e-9)
    }

    /// Publish what the plan allows, and the periodic unsequenced messages.
    async fn pump(&mut self, c: &mut Conn) -> Result<(), RunError> {
        if !c.up {
            return Ok(());
        }
        while let Some(f) = self.plan.next(self.wall_s(), self.queue.next_seq()) {
            let batch = self.queue.fetch(f.from, f.below, f.limit)?;
            let last = batch.last().map(|q| q.seq);
            let count = batch.len();
            for q in batch {
                let topic = self.topics.for_kind(&q.kind).to_string();
                if !c.publish(&topic, false, q.payload, Some(q.seq)).await {
                    return Ok(());
                }
            }
            // Terminates: each round moves a cursor forward or fills the window.
            self.plan.sent(f, count, last);
        }
        // Status and Home Assistant state at most once per wall second, whatever the speed.
        if self
            .last_status
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.last_status = Some(Instant::now());
            let p = self.status_payload(LinkState::Online);
            c.publish(&self.topics.status, true, p, None).await;
            if let Some(s) = self.ha_state.take() {
                c.publish(
                    &self.topics.ha_state,
                    true,
                    s.to_string().into_bytes(),
                    None,
                )
                .await;
            }
            while let Some((topic, p)) = self.ha_events.pop_front() {
                c.publish(&topic, false, p, None).await;
            }
        }
        Ok(())
    }
}

/// Run a gateway on a current-thread tokio runtime until Ctrl-C / SIGTERM or `--run-for`.
pub fn run_blocking(args: GatewayArgs) -> Result<Summary, RunError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Args(format!("tokio runtime: {e}")))?;
    rt.block_on(run(args, melv_wire::shutdown_signal()))
}

/// Serve SunSpec Modbus TCP local control for `site` on `addr` (issue 8). The device's revert timers
/// and watchdog run on wall-clock seconds, as the external controller's own timers do.
async fn start_modbus(
    site: &mut SiteRuntime,
    args: &GatewayArgs,
    addr: &str,
    id: &str,
) -> Result<(), RunError> {
    let sc = site.scenario();
    let phases = sc.site.phases;
    let nameplate = melv_modbus::Nameplate {
        manufacturer: "ATMOCE".into(),
        model: "M-ELV MS-7K-U".into(),
        serial: format!("MELV-{id}"),
        version: env!("CARGO_PKG_VERSION").into(),
        batteries: sc.site.batteries,
        phases,
        nominal_v: sc.site.country.nominal_voltage_v(),
        nominal_hz: sc.site.country.nominal_frequency_hz(),
        grid_charging: sc.site.grid_charging,
    };
    if !(args.modbus_watchdog_s.is_finite() && args.modbus_watchdog_s > 0.0) {
        return Err(RunError::Args(format!(
            "--modbus-watchdog-s {}: must be a positive number of seconds",
            args.modbus_watchdog_s
        )));
    }
    let watchdog = melv_modbus::WatchdogConfig {
        comm_timeout_s: args.modbus_watchdog_s,
    };
    let device = melv_modbus::SunSpecDevice::new(nameplate, watchdog).map_err(SiteError::from)?;
    let device = std::sync::Arc::new(std::sync::Mutex::new(device));
    let start = std::time::Instant::now();
    let clock: melv_modbus::Clock = std::sync::Arc::new(move || start.elapsed().as_secs_f64());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Modbus {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| RunError::Modbus {
        addr: addr.to_string(),
        source,
    })?;
    eprintln!(
        "melv-gateway {id}: SunSpec Modbus TCP on {local}, unit id {}",
        args.modbus_unit_id
    );
    site.attach_local_control(device.clone(), clock.clone());
    let cfg = melv_modbus::ServerConfig {
        unit_id: args.modbus_unit_id,
        ..melv_modbus::ServerConfig::default()
    };
    tokio::spawn(melv_modbus::serve(listener, device, clock, cfg));
    Ok(())
}
