//! The cloud's MQTT ingest worker (`melv ingest`, or `melv serve --mqtt`): gateway records from the
//! broker into the store, exactly once in the store, and working-mode settings back to the gateways.
//!
//! ## Delivery
//! * One persistent session (`clean_session = false`) under a stable client id, subscribed with
//!   QoS 1 to `$share/{group}/melv/v1/+/telemetry`, `.../alerts` and `.../settings/ack`. Workers of
//!   the same group split the messages between them (Mosquitto's shared subscriptions, which it
//!   also offers to MQTT 3.1.1 clients).
//! * Manual acknowledgements: messages are collected into a batch (at most
//!   [`WorkerConfig::batch_max`], or what arrived within [`WorkerConfig::batch_wait`] of the first),
//!   handed to [`Feed::ingest`] in one go, and only when that returned `Ok` (every message committed
//!   as data, as a duplicate, or as a reject row) are they PUBACKed, in the order received.
//! * When the store fails, nothing of the batch is acknowledged: the connection is dropped without
//!   a DISCONNECT and made again after a back-off, and the broker delivers the unacknowledged
//!   messages again on the persistent session. Redelivery plus the store's idempotence on
//!   `(gateway, seq)` is what makes the store hold every record exactly once.
//! * Each connection has its own rumqttc client and event loop, dropped whole when it fails (the
//!   same rule as the gateway, `crates/gateway/src/runtime.rs`): no acknowledgement of one
//!   connection is ever sent on the next, where a packet id could name another message.
//!
//! ## The end-to-end acknowledgement: what the broker may lose
//! Neither the broker's sessions nor the guards survive a broker that restarts *without* its
//! persistence (or loses it): everything it had acknowledged to a gateway and not yet delivered is
//! gone. The guarantee is therefore end to end: after every committed batch the worker advances the
//! uplink mark of each gateway in it ([`Feed::ingest_marked`], `melv_store::Store::advance_uplink`)
//! and publishes it **retained** on `melv/v1/{gateway}/ack` ([`melv_wire::UplinkAck`]). A gateway
//! deletes a record only when the mark covers it, and sends again from the mark when the mark stalls
//! (`crates/gateway/src/uplink.rs`). The ack goes out at QoS 0: a lost one is repaired by the next
//! (each carries the whole mark), and the retained copy is what a reconnecting gateway reads first.
//!
//! That is also why a batch in hand when the connection drops is **stored anyway** (its PUBACKs can
//! no longer be sent): the broker may deliver it again (then it is a duplicate) or, after a restart
//! without persistence, not at all; either way it is in the store, and had the commit failed, the
//! gateway would still hold the records and send them again. No message is dropped on the
//! assumption that the broker still has it.
//!
//! ## The guard: broker restarts
//! Mosquitto 2.0 keeps a persistent session's queued messages and its *plain* subscriptions over a
//! restart, but not its *shared* subscriptions (measured with 2.0.11: a `$share` subscriber of a
//! persistent session gets nothing published after the restart until it subscribes again). Between
//! the broker's start and the workers' new SUBSCRIBE, a gateway's record would find no subscriber:
//! the broker acknowledges it to the gateway, which deletes it, and drops it. Lost.
//!
//! Each worker therefore keeps two **guard sessions** (`{client_id}.g0`, `.g1`): persistent sessions
//! with *plain* subscriptions to the same three topics, normally disconnected, so the broker queues
//! every message for them, and restores them, subscriptions included, after a restart.
//! * After every (re)connection of the main session (once its shared subscriptions are acknowledged),
//!   the worker **sweeps** both guards: connects each, publishes a marker to itself on
//!   `melv-ingest/marker/{guard id}`, and ingests and acknowledges everything queued before the marker
//!   came back (messages of a session are delivered in order), then disconnects. Whatever the broker
//!   dropped for want of a shared subscriber is in there; the rest are duplicates, which the store
//!   recognises.
//! * While the main session stays up, the guards' queues only repeat what the shared subscriptions
//!   delivered, so every [`WorkerConfig::guard_period`] the older guard is **reset**: a clean-session
//!   connection discards its queue, and it is armed again. The two are reset half a period apart,
//!   so one is always armed, even if the broker restarts during a reset.
//!
//! ## Several workers, and retiring one
//! Mosquitto routes each message of a shared subscription to the next member in turn, offline
//! members included: a stopped worker's share waits in its session until it comes back under the
//! same client id. A worker that will not come back is taken out with [`retire`]: its session
//! leaves the shared subscriptions, what waited there is drained (the same marker drain as a guard
//! sweep), and its and its guards' sessions are ended at the broker.
//!
//! ## Settings downstream
//! At every (re)connection and then every [`WorkerConfig::settings_poll`], the worker reads
//! [`melv_store::Store::unacked_settings`] (each gateway whose site's newest settings version is
//! neither acked nor rejected) and publishes `{"version": N, "settings": {...}}` **retained**, QoS 1,
//! on `melv/v1/{gw}/settings`: a new version at once, an unanswered one again after
//! [`WorkerConfig::settings_retry`] (the retry of an unacknowledged change; a connected gateway
//! receives the republished retained message and acknowledges again). A version becomes `delivered`
//! when the broker PUBACKs its publish (the broker then holds it for the gateway, retained); the
//! gateway's ack on `/settings/ack` makes it `acked` or `rejected` ([`crate::feed`]).

use crate::feed::{Feed, FeedCounts, Message};
use melv_wire::{ack_topic, Credentials, MqttUrl, SettingsMessage, UplinkAck};
use rumqttc::{
    AsyncClient, Event, Outgoing, Packet, Publish, QoS, SubscribeFilter, SubscribeReasonCode,
};
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Default shared-subscription group.
pub const DEFAULT_GROUP: &str = "ingest";
/// Where a session sends itself the marker that ends a drain (`{MARKER_TOPIC_ROOT}/{client id}`).
pub const MARKER_TOPIC_ROOT: &str = "melv-ingest/marker";
/// Largest MQTT packet accepted from the broker. The broker must be configured with a smaller
/// `max_packet_size` (deploy/mosquitto/melv.conf: 1 MiB): a larger message would break the
/// connection every time it is redelivered.
pub const MAX_PACKET: usize = 2 * 1024 * 1024;
/// Longest client id: the guards append `.g0` / `.g1`, and 64 bytes keep every broker happy.
const MAX_CLIENT_ID: usize = 60;
/// Most settings messages published per poll, so a full republish after a reconnect cannot hold up
/// the telemetry batches for long.
const SETTINGS_PER_POLL: usize = 200;
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A connection that lived this long resets the back-off.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// At shutdown, how long to wait for the DISCONNECT to be written.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// A guard connection fails when the broker says nothing for this long (no CONNACK, no SUBACK, no
/// message while the marker is awaited).
const GUARD_IDLE: Duration = Duration::from_secs(10);

/// How to reach the broker and how to batch.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// The broker (`melv_wire::url`); its user, if any, is the default username of
    /// [`WorkerConfig::credentials`].
    pub broker: MqttUrl,
    /// Stable across restarts: the broker keeps this session's subscriptions and unacknowledged
    /// messages under it.
    pub client_id: String,
    /// Shared-subscription group (`$share/{group}/...`).
    pub group: String,
    /// Most messages per batch (one store call, then their PUBACKs).
    pub batch_max: usize,
    /// Longest a message waits for its batch to fill.
    pub batch_wait: Duration,
    /// How often to look for settings versions to publish.
    pub settings_poll: Duration,
    /// An unanswered settings version is published again after this long.
    pub settings_retry: Duration,
    /// MQTT keep-alive (a dead connection is noticed after about 1.5 times this).
    pub keep_alive: Duration,
    /// A one-line JSON summary on stderr this often while counters change (`None`: never).
    pub log_every: Option<Duration>,
    /// Reset period of the guard sessions (module documentation); `None`: no guard, for a broker
    /// that keeps shared subscriptions over a restart. The broker holds up to two periods of all
    /// traffic per worker for them.
    pub guard_period: Option<Duration>,
    /// Username and password for the broker (deploy/mosquitto/acl: `melv-ingest`); `None`: anonymous.
    pub credentials: Option<Credentials>,
}

impl WorkerConfig {
    /// `url`: `mqtt://[USER[:PASSWORD]@]HOST[:PORT]` ([`melv_wire::url`]: port 1883 by default,
    /// port 0 refused). `client_id`: 1 to 60, `group`: 1 to 64 letters, digits, `-`, `_` or `.`.
    /// The credentials are left to the caller ([`MqttUrl::credentials`]).
    pub fn new(url: &str, client_id: &str, group: &str) -> Result<Self, String> {
        let broker = MqttUrl::parse(url).map_err(|e| e.to_string())?;
        check_name("client id", client_id, MAX_CLIENT_ID)?;
        check_name("group", group, 64)?;
        Ok(Self {
            broker,
            client_id: client_id.to_string(),
            group: group.to_string(),
            batch_max: 500,
            batch_wait: Duration::from_millis(20),
            settings_poll: Duration::from_secs(2),
            settings_retry: Duration::from_secs(30),
            keep_alive: Duration::from_secs(5),
            log_every: Some(Duration::from_secs(60)),
            guard_period: Some(Duration::from_secs(60)),
            credentials: None,
        })
    }

    /// The three subscriptions of the worker's main session.
    pub fn filters(&self) -> [String; 3] {
        let g = &self.group;
        plain_filters().map(|f| format!("$share/{g}/{f}"))
    }

    /// Client ids of the two guard sessions.
    pub fn guard_ids(&self) -> [String; 2] {
        [0, 1].map(|i| format!("{}.g{i}", self.client_id))
    }
}

/// The gateway topics the worker ingests.
fn plain_filters() -> [String; 3] {
    melv_wire::ingest_filters()
}

fn check_name(what: &str, v: &str, max: usize) -> Result<(), String> {
    let ok = (1..=max).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {v:?}: expected 1 to {max} letters, digits, '-', '_' or '.'"
        ))
    }
}

/// What a worker did; printed as JSON at exit and, with [`WorkerConfig::log_every`], while running.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkerSummary {
    pub client_id: String,
    pub group: String,
    /// Messages received (every delivery, redeliveries and guard sweeps included).
    pub messages: u64,
    /// Of those, flagged as a redelivery by the broker (DUP).
    pub redelivered: u64,
    /// Batches committed to the store.
    pub batches: u64,
    /// Points and events stored.
    pub stored: u64,
    /// Points and events that were already stored (a record delivered again).
    pub duplicates: u64,
    /// Settings acks applied.
    pub settings_acks: u64,
    /// Messages kept in `ingest_rejects`.
    pub rejected: u64,
    /// Battery reports of batteries the site does not list (left out; the point is kept).
    pub batteries_unknown: u64,
    /// PUBACKs sent (messages committed and acknowledged).
    pub acked: u64,
    /// Messages received but not acknowledged because the store failed or the connection was lost
    /// before their batch was committed; the broker delivers them again.
    pub unacked: u64,
    pub store_errors: u64,
    /// Connections of the main session made (CONNACK received).
    pub connections: u64,
    /// Connections of the main session lost or dropped after they were up.
    pub reconnects: u64,
    /// Settings messages published, and how many of them the broker acknowledged.
    pub settings_published: u64,
    pub settings_delivered: u64,
    /// Guard sweeps done, guard resets done.
    pub guard_sweeps: u64,
    pub guard_resets: u64,
    /// Messages the guard sweeps ingested, and the points and events among them that were not in
    /// the store yet (records the broker had dropped for want of a shared subscriber).
    pub guard_messages: u64,
    pub guard_stored: u64,
    /// Uplink acknowledgements published (one per gateway per committed batch).
    pub uplink_acks: u64,
    /// Messages committed to the store whose connection was lost before their PUBACK (a batch in
    /// hand at the loss, or the rest of one whose PUBACKs failed half way); a redelivery of them is
    /// a duplicate. Counted in `unacked` too.
    pub saved_at_loss: u64,
}

impl WorkerSummary {
    fn add(&mut self, c: &FeedCounts) {
        self.stored += c.points_stored + c.events_stored;
        self.duplicates += c.points_duplicate + c.events_duplicate;
        self.settings_acks += c.settings_acks;
        self.rejected += c.rejected;
        self.batteries_unknown += c.batteries_unknown;
    }
}

/// A settings message waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsOut {
    pub gateway: String,
    pub site_id: i64,
    pub version: i64,
    pub settings_json: String,
}

/// Which settings to publish when, sans-IO: a new version at once, the same version again after
/// `retry`, everything again after a reconnection ([`SettingsSchedule::reset`]).
#[derive(Debug, Default)]
pub struct SettingsSchedule {
    /// gateway -> (version, when it was last published).
    sent: HashMap<String, (i64, Instant)>,
}

impl SettingsSchedule {
    /// A new connection: publish everything again.
    pub fn reset(&mut self) {
        self.sent.clear();
    }

    /// Of what is unanswered now, what to publish at `now` (at most `limit`), marking it sent.
    pub fn due(
        &mut self,
        unanswered: Vec<SettingsOut>,
        now: Instant,
        retry: Duration,
        limit: usize,
    ) -> Vec<SettingsOut> {
        let current: HashSet<&str> = unanswered.iter().map(|s| s.gateway.as_str()).collect();
        // Answered ones are forgotten, so a later version of theirs goes out at once.
        self.sent.retain(|g, _| current.contains(g.as_str()));
        let mut out = Vec::new();
        for s in unanswered {
            if out.len() >= limit {
                break;
            }
            let fresh = match self.sent.get(&s.gateway) {
                Some(&(v, at)) => v == s.version && now.saturating_duration_since(at) < retry,
                None => false,
            };
            if !fresh {
                self.sent.insert(s.gateway.clone(), (s.version, now));
                out.push(s);
            }
        }
        out
    }
}

/// What a guard should do next, sans-IO (module documentation, "The guard").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardStep {
    /// Sweep both guards (the main session came up since the last sweep).
    Sweep,
    /// Reset this guard (0 or 1): its period is over and nothing happened since the last sweep.
    Reset(usize),
    /// Nothing before this instant (or before the main session changes).
    Wait(Option<Instant>),
}

/// The guards' schedule.
#[derive(Debug, Clone)]
pub struct GuardSchedule {
    period: Duration,
    /// The main session's epoch (one per acknowledged subscription) the last sweep followed.
    swept: u64,
    /// When each guard's queue was last emptied (swept or reset).
    since: [Instant; 2],
}

impl GuardSchedule {
    pub fn new(period: Duration, now: Instant) -> Self {
        Self {
            period,
            swept: 0,
            since: [now, now],
        }
    }

    /// `up`: the main session's shared subscriptions are in place; `epoch`: how many times they
    /// were made.
    pub fn next(&self, up: bool, epoch: u64, now: Instant) -> GuardStep {
        if !up {
            return GuardStep::Wait(None);
        }
        if epoch != self.swept {
            return GuardStep::Sweep;
        }
        let g = if self.since[0] <= self.since[1] { 0 } else { 1 };
        let due = self.since[g] + self.period;
        if now >= due {
            GuardStep::Reset(g)
        } else {
            GuardStep::Wait(Some(due))
        }
    }

    /// Both guards were swept after subscription `epoch`. Their resets are staggered by half a
    /// period, so that one of them is always armed.
    pub fn swept(&mut self, epoch: u64, now: Instant) {
        self.swept = epoch;
        self.since = [now, now.checked_sub(self.period / 2).unwrap_or(now)];
    }

    pub fn reset_done(&mut self, g: usize, now: Instant) {
        self.since[g] = now;
    }
}

/// What the event-loop task of one connection reports.
enum ConnEvent {
    Up {
        session_present: bool,
    },
    Message(Publish),
    SubAck(Vec<SubscribeReasonCode>),
    /// rumqttc wrote one of our publishes with this packet id (in the order we asked).
    Published(u16),
    PubAck(u16),
    /// Our DISCONNECT was written: everything asked before it is on the wire.
    Closed,
    Down(String),
}

/// One connection: its client, its event-loop task, and the settings publishes in flight on it.
struct Conn {
    client: AsyncClient,
    events: mpsc::UnboundedReceiver<ConnEvent>,
    task: tokio::task::JoinHandle<()>,
    up_since: Option<Instant>,
    /// Settings publishes asked for and not yet given a packet id: (site, version).
    requested: VecDeque<(i64, i64)>,
    inflight: HashMap<u16, (i64, i64)>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Closes the socket without a DISCONNECT: the broker keeps the session and its
        // unacknowledged messages for the next connection.
        self.task.abort();
    }
}

fn connect(cfg: &WorkerConfig, client_id: &str, clean_session: bool) -> Conn {
    let mut o = melv_wire::mqtt_options(
        &cfg.broker,
        client_id,
        cfg.keep_alive,
        cfg.credentials.as_ref(),
    );
    o.set_clean_session(clean_session);
    o.set_manual_acks(true);
    o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    // Our own publishes are settings messages, at most SETTINGS_PER_POLL at a time.
    o.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(o, 4096);
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            let ev = match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(c))) => ConnEvent::Up {
                    session_present: c.session_present,
                },
                Ok(Event::Incoming(Packet::Publish(p))) => ConnEvent::Message(p),
                Ok(Event::Incoming(Packet::SubAck(s))) => ConnEvent::SubAck(s.return_codes),
                Ok(Event::Incoming(Packet::PubAck(a))) => ConnEvent::PubAck(a.pkid),
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => ConnEvent::Published(pkid),
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    let _ = tx.send(ConnEvent::Closed);
                    return;
                }
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
        up_since: None,
        requested: VecDeque::new(),
        inflight: HashMap::new(),
    }
}

/// A clean DISCONNECT, waiting until what was asked before it (PUBACKs) is written.
async fn close(conn: &mut Conn) {
    if conn.up_since.is_none() || conn.client.disconnect().await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(ev) = conn.events.recv().await {
            if matches!(ev, ConnEvent::Closed | ConnEvent::Down(_)) {
                return;
            }
        }
    })
    .await;
}

/// How a batch failed.
enum Fail {
    /// The store failed: nothing acknowledged; drop the connection.
    Store(String),
    /// The connection is gone.
    Conn(String),
}

/// The store side and the counters, shared by the main session and the guards.
#[derive(Clone)]
struct Sink {
    feed: Arc<Feed>,
    summary: Arc<Mutex<WorkerSummary>>,
    id: String,
}

impl Sink {
    fn count(&self, f: impl FnOnce(&mut WorkerSummary)) {
        if let Ok(mut s) = self.summary.lock() {
            f(&mut s);
        }
    }

    fn snapshot(&self) -> WorkerSummary {
        self.summary.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn log(&self, msg: impl std::fmt::Display) {
        eprintln!("melv ingest {}: {msg}", self.id);
    }

    fn received(&self, p: &Publish, guard: bool) {
        self.count(|s| {
            s.messages += 1;
            s.redelivered += p.dup as u64;
            s.guard_messages += guard as u64;
        });
    }

    /// Commits the batch, then acknowledges it in the order received, then publishes the uplink
    /// marks it advanced. On a store error nothing is acknowledged (the caller drops the connection
    /// so the broker delivers it again).
    async fn commit(
        &self,
        client: &AsyncClient,
        batch: &mut Vec<Publish>,
        guard: bool,
    ) -> Result<(), Fail> {
        if batch.is_empty() {
            return Ok(());
        }
        let msgs: Vec<Message> = batch
            .iter()
            .map(|p| Message::new(p.topic.clone(), p.payload.to_vec()))
            .collect();
        match self.feed.ingest_marked(&msgs).await {
            Ok((c, acks)) => {
                self.count(|s| {
                    s.add(&c);
                    s.batches += 1;
                    if guard {
                        s.guard_stored += c.points_stored + c.events_stored;
                    }
                });
                let n = batch.len();
                for (i, p) in batch.drain(..).enumerate() {
                    if let Err(e) = client.ack(&p).await {
                        // The connection is gone: the rest is committed but unacknowledged; the
                        // broker may deliver it again (then a duplicate).
                        let left = (n - i) as u64;
                        self.count(|s| {
                            s.unacked += left;
                            s.saved_at_loss += left;
                        });
                        return Err(Fail::Conn(format!("acknowledging: {e}")));
                    }
                    self.count(|s| s.acked += 1);
                }
                self.publish_acks(client, &acks).await
            }
            Err(e) => {
                let n = batch.len() as u64;
                batch.clear();
                self.count(|s| {
                    s.store_errors += 1;
                    s.unacked += n;
                });
                Err(Fail::Store(format!(
                    "store: {e}; batch not acknowledged, the broker delivers it again"
                )))
            }
        }
    }

    /// The uplink marks, retained, QoS 0 (module documentation, "The end-to-end acknowledgement").
    async fn publish_acks(&self, client: &AsyncClient, acks: &[UplinkAck]) -> Result<(), Fail> {
        for a in acks {
            let payload = serde_json::to_vec(a).unwrap_or_default();
            match client
                .publish(ack_topic(&a.gateway), QoS::AtMostOnce, true, payload)
                .await
            {
                Ok(()) => self.count(|s| s.uplink_acks += 1),
                // Not a topic (a gateway id the topic tree cannot carry): nothing to tell it.
                Err(rumqttc::ClientError::Request(_)) => {}
                Err(e) => return Err(Fail::Conn(format!("publishing an uplink ack: {e}"))),
            }
        }
        Ok(())
    }

    /// The connection is gone with `batch` in hand: store it anyway (no PUBACK can be sent; a
    /// redelivery will be a duplicate). Had the store failed, the gateways still hold the records
    /// until the uplink mark covers them, and send them again.
    async fn save_at_loss(&self, batch: &mut Vec<Publish>) {
        let n = batch.len() as u64;
        if n == 0 {
            return;
        }
        let msgs: Vec<Message> = batch
            .drain(..)
            .map(|p| Message::new(p.topic.clone(), p.payload.to_vec()))
            .collect();
        self.count(|s| s.unacked += n);
        match self.feed.ingest_marked(&msgs).await {
            Ok((c, _)) => self.count(|s| {
                s.add(&c);
                s.batches += 1;
                s.saved_at_loss += n;
            }),
            Err(e) => {
                self.count(|s| s.store_errors += 1);
                self.log(format_args!(
                    "storing the batch in hand at connection loss: {e}; the gateways send it again"
                ));
            }
        }
    }
}

/// How a connection of the main session ended.
enum End {
    Shutdown,
    Lost { why: String, store_error: bool },
}

impl From<Fail> for End {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Store(why) => End::Lost {
                why,
                store_error: true,
            },
            Fail::Conn(why) => End::Lost {
                why,
                store_error: false,
            },
        }
    }
}

/// The main session's state as the guard task sees it.
#[derive(Debug, Clone, Copy, Default)]
struct MainState {
    /// Incremented at every acknowledged subscription.
    epoch: u64,
    up: bool,
}

/// Something that resolves when the worker should stop.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        // The sender is gone without a stop: never.
        std::future::pending::<()>().await;
    }
}

/// The ingest worker. [`Worker::run`] returns only at shutdown: a broker that is down or a store
/// that fails is retried with a back-off, never a reason to exit.
pub struct Worker {
    sink: Sink,
    cfg: WorkerConfig,
    schedule: SettingsSchedule,
    main: watch::Sender<MainState>,
    /// Log a failing connection once per streak, not at every retry.
    failing: bool,
}

impl Worker {
    pub fn new(feed: Feed, cfg: WorkerConfig) -> Self {
        let summary = WorkerSummary {
            client_id: cfg.client_id.clone(),
            group: cfg.group.clone(),
            ..Default::default()
        };
        Self {
            sink: Sink {
                feed: Arc::new(feed),
                summary: Arc::new(Mutex::new(summary)),
                id: cfg.client_id.clone(),
            },
            cfg,
            schedule: SettingsSchedule::default(),
            main: watch::channel(MainState::default()).0,
            failing: false,
        }
    }

    /// The live counters (updated as the worker runs).
    pub fn counters(&self) -> Arc<Mutex<WorkerSummary>> {
        self.sink.summary.clone()
    }

    fn log(&self, msg: impl std::fmt::Display) {
        self.sink.log(msg)
    }

    /// Runs until `shutdown` resolves; then commits and acknowledges the batch in hand, disconnects
    /// and returns the summary.
    pub async fn run(mut self, shutdown: Shutdown) -> WorkerSummary {
        let (stop_tx, mut stop) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        self.log(format_args!(
            "broker {}:{}, shared subscription group {:?}, guard {}",
            self.cfg.broker.host,
            self.cfg.broker.port,
            self.cfg.group,
            match self.cfg.guard_period {
                Some(p) => format!(
                    "sessions {:?} reset every {} s",
                    self.cfg.guard_ids(),
                    p.as_secs_f64()
                ),
                None => "off".into(),
            }
        ));
        let guard = self.cfg.guard_period.map(|period| {
            let g = Guard {
                sink: self.sink.clone(),
                cfg: self.cfg.clone(),
                period,
            };
            tokio::spawn(g.run(self.main.subscribe(), stop.clone()))
        });
        let mut backoff = BACKOFF_MIN;
        loop {
            let mut conn = connect(&self.cfg, &self.cfg.client_id, false);
            let end = self.session(&mut conn, &mut stop).await;
            self.main.send_modify(|m| m.up = false);
            let lived = conn.up_since.map(|t| t.elapsed());
            drop(conn);
            match end {
                End::Shutdown => break,
                End::Lost { why, store_error } => {
                    if lived.is_some() {
                        self.sink.count(|s| s.reconnects += 1);
                    }
                    if lived.is_some_and(|l| l >= STABLE_AFTER) && !store_error {
                        backoff = BACKOFF_MIN;
                    }
                    if lived.is_some() || store_error || !self.failing {
                        self.log(format_args!(
                            "connection {}: {why}; again in {:.1} s",
                            if lived.is_some() { "lost" } else { "failed" },
                            backoff.as_secs_f64()
                        ));
                    }
                    self.failing = lived.is_none();
                    tokio::select! {
                        _ = stopped(&mut stop) => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        if let Some(g) = guard {
            let _ = g.await;
        }
        let s = self.sink.snapshot();
        self.log(format_args!(
            "stopped: {}",
            serde_json::to_string(&s).unwrap_or_default()
        ));
        s
    }

    async fn session(&mut self, conn: &mut Conn, stop: &mut watch::Receiver<bool>) -> End {
        let mut batch: Vec<Publish> = Vec::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut settings_tick = tokio::time::interval(self.cfg.settings_poll);
        settings_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let log_every = self.cfg.log_every.unwrap_or(Duration::from_secs(3600));
        let mut log_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + log_every, log_every);
        let mut logged = self.sink.snapshot();
        loop {
            let batch_due = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = stopped(stop) => {
                    // What was already received joins the batch in hand.
                    while let Ok(ev) = conn.events.try_recv() {
                        match ev {
                            ConnEvent::Message(p) => {
                                self.sink.received(&p, false);
                                batch.push(p);
                            }
                            ConnEvent::Down(_) | ConnEvent::Closed => {
                                conn.up_since = None;
                                break;
                            }
                            other => {
                                let _ = self.on_event(conn, other).await;
                            }
                        }
                    }
                    if conn.up_since.is_some() {
                        if let Err(Fail::Store(why) | Fail::Conn(why)) =
                            self.sink.commit(&conn.client, &mut batch, false).await
                        {
                            self.log(format_args!("at shutdown: {why}"));
                        }
                    }
                    self.sink.save_at_loss(&mut batch).await;
                    close(conn).await;
                    return End::Shutdown;
                }
                ev = conn.events.recv() => {
                    let Some(ev) = ev else {
                        return self.lost(&mut batch, "event loop ended".into()).await;
                    };
                    match ev {
                        ConnEvent::Message(p) => {
                            self.sink.received(&p, false);
                            batch.push(p);
                            if batch.len() >= self.cfg.batch_max {
                                deadline = None;
                                if let Err(f) = self.sink.commit(&conn.client, &mut batch, false).await {
                                    return f.into();
                                }
                            } else if deadline.is_none() {
                                deadline = Some(tokio::time::Instant::now() + self.cfg.batch_wait);
                            }
                        }
                        ConnEvent::Down(why) => return self.lost(&mut batch, why).await,
                        ConnEvent::Closed => {
                            return self.lost(&mut batch, "disconnected".into()).await
                        }
                        other => {
                            if let Err(e) = self.on_event(conn, other).await {
                                return e;
                            }
                        }
                    }
                }
                _ = batch_due => {
                    deadline = None;
                    if let Err(f) = self.sink.commit(&conn.client, &mut batch, false).await {
                        return f.into();
                    }
                }
                _ = settings_tick.tick(), if conn.up_since.is_some() => {
                    if let Err(e) = self.publish_settings(conn).await {
                        return e;
                    }
                }
                _ = log_tick.tick(), if self.cfg.log_every.is_some() => {
                    let now = self.sink.snapshot();
                    if now != logged {
                        self.log(serde_json::to_string(&now).unwrap_or_default());
                        logged = now;
                    }
                }
            }
        }
    }

    /// The connection is gone: the batch in hand is stored anyway ([`Sink::save_at_loss`]).
    async fn lost(&self, batch: &mut Vec<Publish>, why: String) -> End {
        self.sink.save_at_loss(batch).await;
        End::Lost {
            why,
            store_error: false,
        }
    }

    /// Everything but a message or the end of the connection.
    async fn on_event(&mut self, conn: &mut Conn, ev: ConnEvent) -> Result<(), End> {
        match ev {
            ConnEvent::Up { session_present } => {
                conn.up_since = Some(Instant::now());
                self.sink.count(|s| s.connections += 1);
                self.log(format_args!(
                    "connected (session present: {session_present})"
                ));
                self.failing = false;
                let filters = self
                    .cfg
                    .filters()
                    .into_iter()
                    .map(|f| SubscribeFilter::new(f, QoS::AtLeastOnce));
                if let Err(e) = conn.client.subscribe_many(filters).await {
                    return Err(End::Lost {
                        why: format!("subscribe: {e}"),
                        store_error: false,
                    });
                }
                // Everything unanswered goes out again on a new connection.
                self.schedule.reset();
                self.publish_settings(conn).await?;
            }
            ConnEvent::SubAck(codes) => {
                let mut ok = true;
                for (code, filter) in codes.iter().zip(self.cfg.filters()) {
                    if *code == SubscribeReasonCode::Failure {
                        ok = false;
                        self.log(format_args!(
                            "the broker refused the subscription {filter:?} (check its ACL)"
                        ));
                    }
                }
                if ok {
                    // The shared subscriptions are in place: the guards may be swept.
                    self.main.send_modify(|m| {
                        m.epoch += 1;
                        m.up = true;
                    });
                }
            }
            // Packet id 0: an uplink ack (QoS 0), not one of the settings publishes.
            ConnEvent::Published(0) => {}
            ConnEvent::Published(pkid) => {
                if let Some(sv) = conn.requested.pop_front() {
                    conn.inflight.insert(pkid, sv);
                }
            }
            ConnEvent::PubAck(pkid) => {
                if let Some((site, version)) = conn.inflight.remove(&pkid) {
                    self.sink.count(|s| s.settings_delivered += 1);
                    let state = self.sink.feed.state();
                    let now = state.clock.now_ms();
                    if let Err(e) = state.store.mark_delivered(site, version, now).await {
                        // Not fatal: the version stays pending and is published again.
                        self.log(format_args!(
                            "marking settings v{version} of site {site} delivered: {e}"
                        ));
                    }
                }
            }
            ConnEvent::Message(_) | ConnEvent::Down(_) | ConnEvent::Closed => {}
        }
        Ok(())
    }

    /// Publishes the settings versions that are due (retained, QoS 1).
    async fn publish_settings(&mut self, conn: &mut Conn) -> Result<(), End> {
        let rows = match self.sink.feed.state().store.unacked_settings().await {
            Ok(r) => r,
            Err(e) => {
                // Not fatal for ingest: the next poll tries again.
                self.log(format_args!("reading settings to deliver: {e}"));
                return Ok(());
            }
        };
        let unanswered = rows
            .into_iter()
            .map(|(gateway, site_id, version, settings_json)| SettingsOut {
                gateway,
                site_id,
                version,
                settings_json,
            })
            .collect();
        let due = self.schedule.due(
            unanswered,
            Instant::now(),
            self.cfg.settings_retry,
            SETTINGS_PER_POLL,
        );
        for s in due {
            let settings: serde_json::Value = match serde_json::from_str(&s.settings_json) {
                Ok(v) => v,
                Err(e) => {
                    self.log(format_args!(
                        "settings v{} of site {} are not JSON ({e}); not published",
                        s.version, s.site_id
                    ));
                    continue;
                }
            };
            let Ok(version) = u64::try_from(s.version) else {
                self.log(format_args!(
                    "settings v{} of site {}: not a version a gateway reads; not published",
                    s.version, s.site_id
                ));
                continue;
            };
            let payload =
                serde_json::to_string(&SettingsMessage::new(version, settings)).unwrap_or_default();
            let topic = melv_wire::settings_topic(&s.gateway);
            conn.requested.push_back((s.site_id, s.version));
            let r = conn
                .client
                .publish(&topic, QoS::AtLeastOnce, true, payload)
                .await;
            match r {
                Ok(()) => self.sink.count(|c| c.settings_published += 1),
                Err(rumqttc::ClientError::Request(_)) => {
                    // Not a valid topic (a serial the topic tree cannot carry); nothing was sent.
                    conn.requested.pop_back();
                    self.log(format_args!(
                        "gateway {:?}: {topic:?} is not a valid MQTT topic",
                        s.gateway
                    ));
                }
                Err(e) => {
                    return Err(End::Lost {
                        why: format!("publishing settings: {e}"),
                        store_error: false,
                    })
                }
            }
        }
        Ok(())
    }
}

/// The guard sessions of one worker (module documentation, "The guard").
struct Guard {
    sink: Sink,
    cfg: WorkerConfig,
    period: Duration,
}

impl Guard {
    async fn run(self, mut main: watch::Receiver<MainState>, mut stop: watch::Receiver<bool>) {
        let mut schedule = GuardSchedule::new(self.period, Instant::now());
        let mut backoff = BACKOFF_MIN;
        loop {
            if *stop.borrow() {
                break;
            }
            let m = *main.borrow_and_update();
            let failed = match schedule.next(m.up, m.epoch, Instant::now()) {
                GuardStep::Sweep => {
                    let mut failed = None;
                    for id in self.cfg.guard_ids() {
                        if let Err(why) = self.sweep(&id, &mut stop).await {
                            failed = Some(format!("guard {id}: sweep: {why}"));
                            break;
                        }
                    }
                    if failed.is_none() {
                        schedule.swept(m.epoch, Instant::now());
                        self.sink.count(|s| s.guard_sweeps += 1);
                    }
                    failed
                }
                GuardStep::Reset(g) => {
                    let id = &self.cfg.guard_ids()[g];
                    let r = self.reset(id, &mut stop).await;
                    if r.is_ok() {
                        schedule.reset_done(g, Instant::now());
                        self.sink.count(|s| s.guard_resets += 1);
                    }
                    r.err().map(|why| format!("guard {id}: reset: {why}"))
                }
                GuardStep::Wait(_) => None,
            };
            if *stop.borrow() {
                break;
            }
            let wait = match (&failed, schedule.next(m.up, m.epoch, Instant::now())) {
                (Some(why), _) => {
                    self.sink.log(format_args!(
                        "{why}; again in {:.1} s",
                        backoff.as_secs_f64()
                    ));
                    let b = backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    Some(b)
                }
                (None, GuardStep::Wait(until)) => {
                    backoff = BACKOFF_MIN;
                    until.map(|t| t.saturating_duration_since(Instant::now()))
                }
                // More to do at once (the next step of a rotation, or the main session changed).
                (None, _) => {
                    backoff = BACKOFF_MIN;
                    continue;
                }
            };
            let sleep = async {
                match wait {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = stopped(&mut stop) => break,
                r = main.changed() => {
                    if r.is_err() {
                        break;
                    }
                }
                _ = sleep => {}
            }
        }
        // Stopping before the guards were swept since the last subscription: sweep them now, so
        // that a worker stopped right after it started leaves its guards armed.
        let m = *main.borrow();
        if schedule.next(true, m.epoch, Instant::now()) == GuardStep::Sweep {
            // A stop signal that never comes: the sweep runs to its end.
            let mut never = watch::channel(false).1;
            for id in self.cfg.guard_ids() {
                if let Err(why) = self.sweep(&id, &mut never).await {
                    self.sink
                        .log(format_args!("guard {id}: sweep at shutdown: {why}"));
                    return;
                }
            }
            self.sink.count(|s| s.guard_sweeps += 1);
        }
    }

    /// Drains guard `id` (creating its session and plain subscriptions if the broker has none)
    /// and leaves it armed.
    async fn sweep(&self, id: &str, stop: &mut watch::Receiver<bool>) -> Result<(), String> {
        drain(&self.cfg, &self.sink, id, &[], &plain_filters(), true, stop).await
    }

    /// Discards guard `id`'s session and queue (a clean-session connection), then arms it again.
    async fn reset(&self, id: &str, stop: &mut watch::Receiver<bool>) -> Result<(), String> {
        discard(&self.cfg, id).await?;
        self.sweep(id, stop).await
    }
}

/// Waits for the CONNACK of a connection.
async fn connack(conn: &mut Conn) -> Result<bool, String> {
    loop {
        match tokio::time::timeout(GUARD_IDLE, conn.events.recv()).await {
            Err(_) => return Err("no CONNACK".into()),
            Ok(None) => return Err("event loop ended".into()),
            Ok(Some(ConnEvent::Up { session_present })) => {
                conn.up_since = Some(Instant::now());
                return Ok(session_present);
            }
            Ok(Some(ConnEvent::Down(why))) => return Err(why),
            Ok(Some(_)) => {}
        }
    }
}

/// Connects the persistent session `id`, unsubscribes `unsubscribe`, subscribes `subscribe` (plain,
/// QoS 1) and its marker topic, sends itself a marker and ingests and acknowledges everything the
/// broker delivers before the marker comes back: everything that was queued for the session (a
/// session's messages are delivered in order). Then disconnects; the session stays.
async fn drain(
    cfg: &WorkerConfig,
    sink: &Sink,
    id: &str,
    unsubscribe: &[String],
    subscribe: &[String],
    guard: bool,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let marker_topic = format!("{MARKER_TOPIC_ROOT}/{id}");
    let mut conn = connect(cfg, id, false);
    connack(&mut conn).await?;
    for f in unsubscribe {
        conn.client
            .unsubscribe(f.as_str())
            .await
            .map_err(|e| format!("unsubscribe: {e}"))?;
    }
    // Sent after the UNSUBSCRIBEs: its SUBACK means the broker has done them.
    let filters = subscribe
        .iter()
        .cloned()
        .chain([marker_topic.clone()])
        .map(|f| SubscribeFilter::new(f, QoS::AtLeastOnce));
    conn.client
        .subscribe_many(filters)
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    // A marker nobody else sends: the wall clock in nanoseconds and the id.
    let token = format!(
        "{}-{id}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let mut marker_sent = false;
    let mut batch: Vec<Publish> = Vec::new();
    let failed = |f: Fail| match f {
        Fail::Store(w) | Fail::Conn(w) => w,
    };
    loop {
        let ev = tokio::select! {
            biased;
            _ = stopped(stop) => {
                // Commit what is in hand; the rest stays queued for the next time.
                let _ = sink.commit(&conn.client, &mut batch, guard).await;
                close(&mut conn).await;
                return Err("stopped".into());
            }
            ev = tokio::time::timeout(GUARD_IDLE, conn.events.recv()) => ev,
        };
        match ev {
            Err(_) => {
                sink.save_at_loss(&mut batch).await;
                return Err(format!(
                    "the broker went quiet (does its ACL let {id:?} write and read {marker_topic:?}?)"
                ));
            }
            Ok(None) => {
                sink.save_at_loss(&mut batch).await;
                return Err("event loop ended".into());
            }
            Ok(Some(ConnEvent::SubAck(codes))) => {
                if codes.contains(&SubscribeReasonCode::Failure) {
                    return Err("the broker refused a subscription (check its ACL)".into());
                }
                conn.client
                    .publish(&marker_topic, QoS::AtLeastOnce, false, token.clone())
                    .await
                    .map_err(|e| format!("marker: {e}"))?;
                marker_sent = true;
            }
            Ok(Some(ConnEvent::Message(p))) if p.topic == marker_topic => {
                let ours = marker_sent && p.payload.as_ref() == token.as_bytes();
                if ours {
                    sink.commit(&conn.client, &mut batch, guard)
                        .await
                        .map_err(failed)?;
                }
                // An old marker (of a drain that failed) or ours: done with it either way.
                conn.client
                    .ack(&p)
                    .await
                    .map_err(|e| format!("acknowledging: {e}"))?;
                if ours {
                    close(&mut conn).await;
                    return Ok(());
                }
            }
            Ok(Some(ConnEvent::Message(p))) => {
                sink.received(&p, guard);
                batch.push(p);
                if batch.len() >= cfg.batch_max {
                    sink.commit(&conn.client, &mut batch, guard)
                        .await
                        .map_err(failed)?;
                }
            }
            Ok(Some(ConnEvent::Down(why))) => {
                sink.save_at_loss(&mut batch).await;
                return Err(why);
            }
            Ok(Some(_)) => {}
        }
    }
}

/// Ends session `id` at the broker, with whatever it still holds (a clean-session connection).
async fn discard(cfg: &WorkerConfig, id: &str) -> Result<(), String> {
    let mut conn = connect(cfg, id, true);
    connack(&mut conn).await?;
    close(&mut conn).await;
    Ok(())
}

/// Takes worker `cfg.client_id` out of service for good: its main session leaves the shared
/// subscriptions (the broker routes nothing more to it), what was queued for it is ingested, and
/// its sessions and its guards' are ended at the broker. Run it in place of the stopped worker,
/// while other workers of the group run (their guards cover broker restarts from then on).
pub async fn retire(feed: Feed, cfg: WorkerConfig) -> Result<WorkerSummary, String> {
    let sink = Sink {
        feed: Arc::new(feed),
        summary: Arc::new(Mutex::new(WorkerSummary {
            client_id: cfg.client_id.clone(),
            group: cfg.group.clone(),
            ..Default::default()
        })),
        id: cfg.client_id.clone(),
    };
    let mut never = watch::channel(false).1;
    drain(
        &cfg,
        &sink,
        &cfg.client_id,
        &cfg.filters(),
        &[],
        false,
        &mut never,
    )
    .await
    .map_err(|e| format!("draining {:?}: {e}", cfg.client_id))?;
    for id in [cfg.client_id.clone()].into_iter().chain(cfg.guard_ids()) {
        discard(&cfg, &id)
            .await
            .map_err(|e| format!("ending session {id:?}: {e}"))?;
    }
    let s = sink.snapshot();
    sink.log(format_args!(
        "retired: {}",
        serde_json::to_string(&s).unwrap_or_default()
    ));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = WorkerConfig::new("mqtt://melv-ingest@broker:11883/", "w", "g").unwrap();
        assert_eq!((c.broker.host.as_str(), c.broker.port), ("broker", 11883));
        assert_eq!(c.broker.username.as_deref(), Some("melv-ingest"));
        assert_eq!(c.credentials, None);
        for bad in [
            "mqtt://h:0",
            "mqtts://h:8883",
            "http://h:1",
            "mqtt://:1883",
            "",
        ] {
            let e = WorkerConfig::new(bad, "w", "g").unwrap_err();
            assert!(
                e.contains("expected mqtt://[USER[:PASSWORD]@]HOST[:PORT]"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn names_and_filters() {
        let c = WorkerConfig::new("mqtt://h:1", "melv-ingest-1", "ingest").unwrap();
        assert_eq!(
            c.filters(),
            [
                "$share/ingest/melv/v1/+/telemetry",
                "$share/ingest/melv/v1/+/alerts",
                "$share/ingest/melv/v1/+/settings/ack"
            ]
        );
        for (id, group) in [
            ("", "g"),
            ("a b", "g"),
            ("a", "g/h"),
            ("a", "+"),
            ("a", "#"),
        ] {
            assert!(
                WorkerConfig::new("h", id, group).is_err(),
                "{id:?} {group:?}"
            );
        }
        let long = "x".repeat(61);
        let e = WorkerConfig::new("h", &long, "g").unwrap_err();
        assert!(e.starts_with("client id"), "{e}");
        assert_eq!(c.guard_ids(), ["melv-ingest-1.g0", "melv-ingest-1.g1"]);
        let e = WorkerConfig::new("h", "a", "g/h").unwrap_err();
        assert!(e.starts_with("group \"g/h\""), "{e}");
    }

    fn out(gw: &str, version: i64) -> SettingsOut {
        SettingsOut {
            gateway: gw.into(),
            site_id: 1,
            version,
            settings_json: "{}".into(),
        }
    }

    fn names(v: &[SettingsOut]) -> Vec<(String, i64)> {
        v.iter().map(|s| (s.gateway.clone(), s.version)).collect()
    }

    #[test]
    fn settings_go_out_once_then_again_after_the_retry_time() {
        let mut s = SettingsSchedule::default();
        let t0 = Instant::now();
        let retry = Duration::from_secs(30);
        let at = |s: u64| t0 + Duration::from_secs(s);
        let due = s.due(vec![out("a", 1), out("b", 3)], at(0), retry, 100);
        assert_eq!(names(&due), [("a".into(), 1), ("b".into(), 3)]);
        // Nothing new: nothing to publish until the retry time.
        assert!(s
            .due(vec![out("a", 1), out("b", 3)], at(10), retry, 100)
            .is_empty());
        // A new version of a goes out at once; b is still waiting.
        let due = s.due(vec![out("a", 2), out("b", 3)], at(20), retry, 100);
        assert_eq!(names(&due), [("a".into(), 2)]);
        // b unanswered for 30 s: again.
        let due = s.due(vec![out("a", 2), out("b", 3)], at(30), retry, 100);
        assert_eq!(names(&due), [("b".into(), 3)]);
        // a answered (gone from the list), later a new version: at once.
        assert!(s.due(vec![out("b", 3)], at(31), retry, 100).is_empty());
        let due = s.due(vec![out("a", 2), out("b", 3)], at(32), retry, 100);
        assert_eq!(names(&due), [("a".into(), 2)]);
        // A reconnection publishes everything again.
        s.reset();
        let due = s.due(vec![out("a", 2), out("b", 3)], at(33), retry, 100);
        assert_eq!(due.len(), 2);
    }

    #[test]
    fn settings_are_published_at_most_limit_per_poll() {
        let mut s = SettingsSchedule::default();
        let t0 = Instant::now();
        let all: Vec<SettingsOut> = (0..5).map(|i| out(&format!("g{i}"), 1)).collect();
        let retry = Duration::from_secs(30);
        assert_eq!(s.due(all.clone(), t0, retry, 2).len(), 2);
        assert_eq!(
            names(&s.due(all.clone(), t0, retry, 2)),
            [("g2".into(), 1), ("g3".into(), 1)]
        );
        assert_eq!(names(&s.due(all.clone(), t0, retry, 2)), [("g4".into(), 1)]);
        assert!(s.due(all, t0, retry, 2).is_empty());
    }

    #[test]
    fn guards_are_swept_after_each_subscription_and_reset_in_turn() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut g = GuardSchedule::new(Duration::from_secs(60), t0);
        // The main session is not subscribed: nothing to do, whatever the time.
        assert_eq!(g.next(false, 0, at(500)), GuardStep::Wait(None));
        assert_eq!(g.next(false, 1, at(500)), GuardStep::Wait(None));
        // Subscribed (epoch 1): sweep both.
        assert_eq!(g.next(true, 1, at(1)), GuardStep::Sweep);
        g.swept(1, at(100));
        // Staggered: guard 1 is reset half a period after the sweep, guard 0 a period after it,
        // then each a period after its own last reset.
        assert_eq!(g.next(true, 1, at(101)), GuardStep::Wait(Some(at(130))));
        assert_eq!(g.next(true, 1, at(130)), GuardStep::Reset(1));
        g.reset_done(1, at(131));
        assert_eq!(g.next(true, 1, at(131)), GuardStep::Wait(Some(at(160))));
        assert_eq!(g.next(true, 1, at(160)), GuardStep::Reset(0));
        g.reset_done(0, at(160));
        assert_eq!(g.next(true, 1, at(161)), GuardStep::Wait(Some(at(191))));
        // The main session went down and came back (epoch 2): no reset before the sweep, even when
        // one is overdue; while it is down, nothing at all.
        assert_eq!(g.next(false, 1, at(300)), GuardStep::Wait(None));
        assert_eq!(g.next(true, 2, at(300)), GuardStep::Sweep);
        g.swept(2, at(301));
        assert_eq!(g.next(true, 2, at(302)), GuardStep::Wait(Some(at(331))));
    }
}
