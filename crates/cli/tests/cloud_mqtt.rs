//! End to end, with real processes: `melv gateway` -> a private Mosquitto -> `melv ingest` workers
//! (shared subscription, persistent sessions, manual PUBACKs) -> the cloud's store, on SQLite, and on
//! PostgreSQL when `MELV_TEST_POSTGRES` is set (the `*_postgres` tests; they report "skipped" and
//! pass without it). After broker outages and `kill -9` of gateways and workers, the store must hold
//! every record of every gateway exactly once: sequence numbers exactly `1..next_seq`, telemetry
//! minutes consecutive, nothing rejected. Settings go down retained and come back acknowledged or
//! rejected with the gateway's reason; malformed or foreign messages end in `ingest_rejects`.

use melv_store::{Delivery, DeviceKind, NewSite, Role, Store};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "../../gateway/tests/common/broker.rs"]
mod broker;
use broker::{free_port, signal_pid, Broker};

static N: AtomicUsize = AtomicUsize::new(0);

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("melv-cloud-mqtt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sleep_s(s: f64) {
    std::thread::sleep(Duration::from_secs_f64(s));
}

fn signal(pid: u32, sig: &str) {
    signal_pid(pid, sig);
}

/// A child process that is killed if the test ends early (a failed assertion).
struct Proc {
    name: String,
    child: Option<Child>,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command) -> Self {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        Self {
            name: name.to_string(),
            child: Some(child),
        }
    }

    fn kill_9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then the JSON summary the process prints on stdout.
    fn stop(&mut self) -> serde_json::Value {
        let c = self.child.take().expect("running");
        signal(c.id(), "TERM");
        Self::summary(&self.name, c)
    }

    /// Waits for the process to end by itself (`--run-for`), then its summary.
    fn wait(&mut self) -> serde_json::Value {
        let c = self.child.take().expect("running");
        Self::summary(&self.name, c)
    }

    fn summary(name: &str, c: Child) -> serde_json::Value {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{name} failed: {:?}", out.status);
        let s = String::from_utf8(out.stdout).unwrap();
        serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("{name}: summary {s:?}: {e}"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// A Mosquitto of the test's own on a free port, configured as deploy/mosquitto/melv.conf asks
/// (persistence, a large queue per session, an in-flight window above the worker's batch), but
/// anonymous and without an ACL.
impl Broker {
    /// Configured like deploy/mosquitto/melv.conf: queues and in-flight windows large enough that
    /// the broker drops nothing for a worker that is down, anonymous here.
    fn start(dir: &Path) -> Self {
        Self::start_with(
            dir,
            "allow_anonymous true\nmax_queued_messages 1000000\nmax_inflight_messages 1000\n\
             max_packet_size 1048576\n",
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The cloud's database, reached through `melv_store` on a runtime of the test's own.
struct Db {
    url: String,
    store: Store,
    rt: tokio::runtime::Runtime,
    installer: i64,
}

impl Db {
    /// A fresh database, or `None` for PostgreSQL when `MELV_TEST_POSTGRES` is not set.
    fn new(backend: Backend, dir: &Path) -> Option<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.join("cloud.db").display()),
            Backend::Postgres => {
                let Ok(base) = std::env::var("MELV_TEST_POSTGRES") else {
                    eprintln!("skipped: MELV_TEST_POSTGRES is not set");
                    return None;
                };
                let n = N.fetch_add(1, Ordering::SeqCst);
                let name = format!("melv_cli_{}_{n}", std::process::id());
                rt.block_on(melv_store::scratch_postgres(&base, &name))
                    .unwrap()
            }
        };
        let store = rt.block_on(Store::open(&url)).unwrap();
        let installer = rt
            .block_on(store.create_user("inst@example.com", "Ina", Role::Installer, "x", 1))
            .unwrap()
            .id;
        Some(Self {
            url,
            store,
            rt,
            installer,
        })
    }

    /// A site for gateway `gw` running `site_file`: the gateway device is `gw`, the batteries the
    /// decimal CAN serials the gateway's twins announce (`melv_gateway::site::battery_serial`).
    fn site(&self, gw: &str, site_file: &Path) -> i64 {
        let sc = melv_sim::scenario::Scenario::load(site_file, Default::default()).unwrap();
        let site = self
            .rt
            .block_on(self.store.create_site(
                &NewSite {
                    name: format!("site of {gw}"),
                    installer_id: self.installer,
                    phases: sc.site.phases.count() as i64,
                    country: melv_server::service::country_name(sc.site.country),
                    timezone: sc.site.timezone.name().to_string(),
                },
                1,
            ))
            .unwrap();
        self.rt
            .block_on(
                self.store
                    .add_device(site.id, gw, DeviceKind::Gateway, None, 1),
            )
            .unwrap();
        for slot in 0..sc.site.batteries {
            self.rt
                .block_on(self.store.add_device(
                    site.id,
                    &melv_gateway::site::battery_serial(gw, slot).to_string(),
                    DeviceKind::Battery,
                    None,
                    1,
                ))
                .unwrap();
        }
        site.id
    }

    fn seqs(&self, gw: &str) -> Vec<(String, i64)> {
        self.rt.block_on(self.store.stored_seqs(gw)).unwrap()
    }

    /// Waits until the store holds `n` records of every gateway; false on timeout.
    fn wait_complete(&self, expected: &[(String, i64)], timeout: Duration) -> bool {
        let t0 = Instant::now();
        loop {
            if expected
                .iter()
                .all(|(gw, n)| self.seqs(gw).len() as i64 >= *n)
            {
                return true;
            }
            if t0.elapsed() > timeout {
                return false;
            }
            sleep_s(0.2);
        }
    }

    /// Every record `1..=last` exactly once, and one telemetry point per minute with no minute
    /// missing (the gateway resumes at the minute after the last record it stored).
    fn assert_exactly_once(&self, gw: &str, site: i64, last: i64) {
        let seqs = self.seqs(gw);
        let numbers: Vec<i64> = seqs.iter().map(|(_, s)| *s).collect();
        let missing: Vec<i64> = (1..=last).filter(|s| !numbers.contains(s)).collect();
        assert!(missing.is_empty(), "{gw}: missing {missing:?}");
        assert_eq!(
            numbers,
            (1..=last).collect::<Vec<_>>(),
            "{gw}: every number exactly once"
        );
        let points = seqs.iter().filter(|(k, _)| k == "point").count() as i64;
        let minutes = self
            .rt
            .block_on(self.store.history(site, 60_000, 0, i64::MAX / 2))
            .unwrap();
        assert_eq!(minutes.len() as i64, points, "{gw}: one point per minute");
        assert!(
            minutes.iter().all(|b| b.points == 1),
            "{gw}: a minute was stored twice"
        );
        assert!(
            minutes
                .windows(2)
                .all(|w| w[1].start_ms - w[0].start_ms == 60_000),
            "{gw}: a minute is missing"
        );
    }

    fn rejects(&self) -> Vec<melv_store::RejectRow> {
        self.rt.block_on(self.store.rejects(100)).unwrap()
    }

    fn latest_settings(&self, site: i64) -> melv_store::SettingsVersion {
        self.rt
            .block_on(self.store.latest_settings(site))
            .unwrap()
            .unwrap()
    }

    fn save_settings(&self, site: i64, json: &str) -> i64 {
        self.rt
            .block_on(
                self.store
                    .save_settings(site, self.installer, "{}", json, 2),
            )
            .unwrap()
            .version
    }

    /// Waits until the newest settings version of `site` is in `state`; false on timeout.
    fn wait_delivery(&self, site: i64, state: Delivery, timeout: Duration) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if self.latest_settings(site).delivery == state {
                return true;
            }
            sleep_s(0.1);
        }
        false
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.rt.block_on(self.store.close());
    }
}

fn site_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/self-consumption.toml")
}

fn melv() -> Command {
    Command::new(env!("CARGO_BIN_EXE_melv"))
}

fn gateway(broker: &str, id: &str, state: &Path, extra: &[&str]) -> Proc {
    let mut c = melv();
    c.arg("gateway")
        .arg(site_file())
        .args(["--mqtt", broker, "--gateway-id", id, "--clock", "profile"])
        .arg("--state-dir")
        .arg(state)
        .args(extra);
    Proc::spawn(&format!("gateway {id}"), &mut c)
}

fn worker(broker: &str, db: &Db, id: &str, extra: &[&str]) -> Proc {
    let mut c = melv();
    c.args(["ingest", "--mqtt", broker, "--database", &db.url])
        .args(["--client-id", id, "--log-every-s", "0"])
        .args(extra);
    Proc::spawn(&format!("worker {id}"), &mut c)
}

fn n(v: &serde_json::Value, key: &str) -> i64 {
    v[key].as_i64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// The books of one worker's run: every message received was committed (as a point or event
/// stored, a duplicate, a settings ack or a reject) or left unacknowledged for redelivery, and
/// every committed one was acknowledged.
/// A batch in hand when the connection was lost is committed without PUBACKs (`saved_at_loss`,
/// counted in `unacked` as well).
fn assert_books_balance(s: &serde_json::Value) {
    let committed = n(s, "stored") + n(s, "duplicates") + n(s, "settings_acks") + n(s, "rejected");
    let saved = n(s, "saved_at_loss");
    assert_eq!(n(s, "messages"), committed + n(s, "unacked") - saved, "{s}");
    assert_eq!(n(s, "acked"), committed - saved, "{s}");
    // The cloud lists the batteries the gateways report.
    assert_eq!(n(s, "batteries_unknown"), 0, "{s}");
}

/// A test MQTT client that publishes QoS 1 messages and waits for each PUBACK.
fn publish_all(port: u16, msgs: &[(String, Vec<u8>)]) {
    let mut o = MqttOptions::new(format!("melv-test-pub-{}", free_port()), "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut conn) = Client::new(o, 100);
    for (topic, payload) in msgs {
        client
            .publish(topic.as_str(), QoS::AtLeastOnce, false, payload.clone())
            .unwrap();
    }
    let mut acked = 0;
    for ev in conn.iter() {
        match ev.unwrap() {
            Event::Incoming(Packet::PubAck(_)) => {
                acked += 1;
                if acked == msgs.len() {
                    break;
                }
            }
            _ => continue,
        }
    }
    client.disconnect().unwrap();
}

fn outage(backend: Backend) {
    let dir = temp_dir(&format!("outage-{backend:?}"));
    let Some(db) = Db::new(backend, &dir) else {
        return;
    };
    let ids = ["out-a", "out-b"];
    let sites: Vec<i64> = ids.iter().map(|gw| db.site(gw, &site_file())).collect();
    let mut broker = Broker::start(&dir);
    let url = broker.url();
    let mut w1 = worker(&url, &db, "melv-test-w1", &[]);
    let mut w2 = worker(&url, &db, "melv-test-w2", &[]);
    // 1200x with a 10 s cycle: 20 records per wall second per gateway.
    let args = ["--speed", "1200", "--cycle", "10", "--flush-timeout", "30"];
    let mut gws: Vec<Proc> = ids
        .iter()
        .map(|id| gateway(&url, id, &dir.join(id), &args))
        .collect();
    sleep_s(2.0);
    // The broker goes away for 3 s: records wait on the gateways' disks, the workers reconnect.
    broker.stop();
    sleep_s(3.0);
    broker.restart();
    sleep_s(2.0);
    // A gateway killed in the middle of its backlog, and restarted.
    gws[0].kill_9();
    gws[0] = gateway(&url, ids[0], &dir.join(ids[0]), &args);
    sleep_s(1.5);
    // A worker killed between receiving and acknowledging; its session keeps what it had not
    // acknowledged and what arrived for it meanwhile, and the restarted worker gets it all.
    w1.kill_9();
    sleep_s(1.0);
    let mut w1 = worker(&url, &db, "melv-test-w1", &[]);
    sleep_s(2.0);
    let mut expected = Vec::new();
    for (id, g) in ids.iter().zip(gws.iter_mut()) {
        let s = g.stop();
        assert_eq!(s["queue_left"], 0, "graceful stop flushes the queue: {s}");
        assert_eq!(s["dropped"], 0, "{s}");
        let last = n(&s, "next_seq") - 1;
        assert!(last > 50, "{s}");
        expected.push((id.to_string(), last));
    }
    let complete = db.wait_complete(&expected, Duration::from_secs(60));
    let s1 = w1.stop();
    let s2 = w2.stop();
    for ((id, last), site) in expected.iter().zip(&sites) {
        db.assert_exactly_once(id, *site, *last);
    }
    assert!(complete, "the store did not get every record");
    assert!(db.rejects().is_empty(), "{:?}", db.rejects());
    for s in [&s1, &s2] {
        assert_books_balance(s);
        assert_eq!(n(s, "rejected"), 0, "{s}");
        assert_eq!(n(s, "store_errors"), 0, "{s}");
    }
    // Both workers took a share (the shared subscription splits the load), and the one that was
    // never killed lived through the broker outage on one session.
    assert!(n(&s1, "stored") > 0 && n(&s2, "stored") > 0, "{s1} {s2}");
    assert!(n(&s2, "reconnects") >= 1, "{s2}");
    let total: i64 = expected.iter().map(|(_, l)| l).sum();
    eprintln!(
        "outage ({backend:?}): {total} records stored once; deliveries seen by the surviving worker \
         lives: {} + {}, duplicates {} + {}, redelivered {} + {}, rescued by guard sweeps {} + {}",
        n(&s1, "messages"),
        n(&s2, "messages"),
        n(&s1, "duplicates"),
        n(&s2, "duplicates"),
        n(&s1, "redelivered"),
        n(&s2, "redelivered"),
        n(&s1, "guard_stored"),
        n(&s2, "guard_stored"),
    );
    drop(broker);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 15: a broker WITHOUT persistence, SIGKILLed three times while records flow, with a
/// gateway and a worker also killed (`kill -9`) and restarted during the outages. The broker
/// forgets every session and everything it had acknowledged; the gateways keep each record until
/// the cloud's uplink mark covers it and send again from the mark, so the store ends with every
/// record of every gateway exactly once. `MELV_UPLINK_CONFIRM=broker` runs the same test with the
/// old rule (the broker's PUBACK deletes a record) to show the loss it prevents.
fn broker_sigkill(backend: Backend) {
    let dir = temp_dir(&format!("sigkill-{backend:?}"));
    let Some(db) = Db::new(backend, &dir) else {
        return;
    };
    let ids = ["kill-a", "kill-b", "kill-c"];
    let sites: Vec<i64> = ids.iter().map(|gw| db.site(gw, &site_file())).collect();
    let mut broker = Broker::start_volatile(
        &dir,
        "allow_anonymous true\nmax_queued_messages 1000000\nmax_inflight_messages 1000\n\
         max_packet_size 1048576\n",
    );
    let url = broker.url();
    let confirm = std::env::var("MELV_UPLINK_CONFIRM").unwrap_or_else(|_| "cloud".into());
    let w = |id: &str| worker(&url, &db, id, &[]);
    let mut workers = [w("melv-test-k1"), w("melv-test-k2")];
    // 1200x with a 10 s cycle: 20 records per wall second per gateway; a stalled mark is sent
    // again after 2 s (doubling while it stays stalled).
    let args = [
        "--speed",
        "1200",
        "--cycle",
        "10",
        "--flush-timeout",
        "90",
        "--resend-after",
        "2",
        "--backlog-rate",
        "200",
        "--confirm",
        &confirm,
    ];
    let gw = |i: usize| gateway(&url, ids[i], &dir.join(ids[i]), &args);
    let mut gws: Vec<Proc> = (0..ids.len()).map(gw).collect();
    for (round, g) in gws.iter_mut().enumerate() {
        sleep_s(2.5);
        broker.kill_9();
        // While the broker is down: a gateway (in turn) and, in the second round, a worker die.
        g.kill_9();
        if round == 1 {
            workers[0].kill_9();
        }
        sleep_s(0.5);
        *g = gw(round);
        if round == 1 {
            workers[0] = w("melv-test-k1");
        }
        sleep_s(0.5);
        broker.restart();
    }
    sleep_s(2.5);
    let mut expected = Vec::new();
    let mut resends = 0;
    for (id, g) in ids.iter().zip(gws.iter_mut()) {
        let s = g.stop();
        assert_eq!(s["dropped"], 0, "{s}");
        if confirm == "cloud" {
            assert_eq!(s["queue_left"], 0, "the cloud confirmed everything: {s}");
            assert_eq!(s["cloud_mark"], s["next_seq"].as_i64().unwrap() - 1, "{s}");
        }
        resends += n(&s, "resends");
        expected.push((id.to_string(), n(&s, "next_seq") - 1));
    }
    let complete = db.wait_complete(&expected, Duration::from_secs(30));
    let summaries: Vec<serde_json::Value> = workers.iter_mut().map(|w| w.stop()).collect();
    let total: i64 = expected.iter().map(|(_, l)| l).sum();
    let stored: i64 = expected
        .iter()
        .map(|(gw, _)| db.seqs(gw).len() as i64)
        .sum();
    eprintln!(
        "broker SIGKILL x3 without persistence ({backend:?}, --confirm {confirm}): {total} records \
         produced, {stored} stored, {} lost; gateway resends {resends}; worker summaries {}",
        total - stored,
        summaries.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" "),
    );
    for ((id, last), site) in expected.iter().zip(&sites) {
        db.assert_exactly_once(id, *site, *last);
    }
    assert!(complete, "the store did not get every record");
    assert!(db.rejects().is_empty(), "{:?}", db.rejects());
    for s in &summaries {
        assert_books_balance(s);
        assert_eq!(n(s, "store_errors"), 0, "{s}");
    }
    drop(broker);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn broker_sigkill_without_persistence_loses_nothing_sqlite() {
    broker_sigkill(Backend::Sqlite);
}

#[test]
fn broker_sigkill_without_persistence_loses_nothing_postgres() {
    broker_sigkill(Backend::Postgres);
}

#[test]
fn outage_and_kill_9_store_every_record_once_sqlite() {
    outage(Backend::Sqlite);
}

#[test]
fn outage_and_kill_9_store_every_record_once_postgres() {
    outage(Backend::Postgres);
}

fn soak(backend: Backend) {
    let dir = temp_dir(&format!("soak-{backend:?}"));
    let Some(db) = Db::new(backend, &dir) else {
        return;
    };
    let ids = ["soak-1", "soak-2", "soak-3"];
    let sites: Vec<i64> = ids.iter().map(|gw| db.site(gw, &site_file())).collect();
    let broker = Broker::start(&dir);
    let url = broker.url();
    let mut w1 = worker(&url, &db, "melv-soak-w1", &[]);
    let mut w2 = worker(&url, &db, "melv-soak-w2", &[]);
    let week = (7 * 86_400).to_string();
    let mut gws: Vec<Proc> = ids
        .iter()
        .map(|id| {
            gateway(
                &url,
                id,
                &dir.join(id),
                &[
                    "--speed",
                    "200000",
                    "--cycle",
                    "60",
                    "--run-for",
                    &week,
                    "--flush-timeout",
                    "120",
                    "--backlog-rate",
                    "1000",
                ],
            )
        })
        .collect();
    let mut expected = Vec::new();
    for (id, g) in ids.iter().zip(gws.iter_mut()) {
        let s = g.wait();
        assert_eq!(s["queue_left"], 0, "{s}");
        assert_eq!(s["sim_run_s"], 604_800.0, "{s}");
        expected.push((id.to_string(), n(&s, "next_seq") - 1));
    }
    let complete = db.wait_complete(&expected, Duration::from_secs(120));
    let s1 = w1.stop();
    let s2 = w2.stop();
    assert!(complete, "the store did not get every record");
    for ((id, last), site) in expected.iter().zip(&sites) {
        db.assert_exactly_once(id, *site, *last);
        // A week of one-minute telemetry: 7 x 1440 points.
        let points = db.seqs(id).iter().filter(|(k, _)| k == "point").count();
        assert_eq!(points, 10_080, "{id}");
    }
    assert!(db.rejects().is_empty(), "{:?}", db.rejects());
    let total: i64 = expected.iter().map(|(_, l)| l).sum();
    for s in [&s1, &s2] {
        assert_books_balance(s);
    }
    // Nothing was lost or killed here: the two workers together stored each record once.
    assert_eq!(n(&s1, "stored") + n(&s2, "stored"), total, "{s1} {s2}");
    eprintln!(
        "soak ({backend:?}): {total} records; worker 1 {} messages in {} batches, worker 2 {} in {}",
        n(&s1, "messages"),
        n(&s1, "batches"),
        n(&s2, "messages"),
        n(&s2, "batches")
    );
    drop(broker);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn soak_a_week_from_three_gateways_sqlite() {
    soak(Backend::Sqlite);
}

#[test]
fn soak_a_week_from_three_gateways_postgres() {
    soak(Backend::Postgres);
}

fn settings(backend: Backend) {
    let dir = temp_dir(&format!("settings-{backend:?}"));
    let Some(db) = Db::new(backend, &dir) else {
        return;
    };
    let gw = "set-1";
    let site = db.site(gw, &site_file());
    let broker = Broker::start(&dir);
    let url = broker.url();
    let fast = ["--settings-poll-s", "0.2", "--settings-retry-s", "1"];
    let mut w = worker(&url, &db, "melv-set-w1", &fast);
    let wait = Duration::from_secs(30);
    // Saved while the gateway is away: the worker publishes it retained; the broker's PUBACK makes
    // it `delivered`.
    let mut good = serde_json::to_value(melv_ems::Settings::self_consumption()).unwrap();
    good["reserve_soc"] = 0.2.into();
    let v1 = db.save_settings(site, &good.to_string());
    assert!(
        db.wait_delivery(site, Delivery::Delivered, wait),
        "v1 never delivered"
    );
    // The gateway comes up, gets the retained message, applies it and acknowledges.
    let mut g = gateway(
        &url,
        gw,
        &dir.join(gw),
        &["--speed", "600", "--cycle", "10"],
    );
    assert!(
        db.wait_delivery(site, Delivery::Acked, wait),
        "v1 never acked"
    );
    let s = db.latest_settings(site);
    assert_eq!(s.version, v1);
    assert!(s.delivered_ms.is_some() && s.acked_ms.is_some(), "{s:?}");
    // One the gateway's `Settings::validate` refuses: rejected with its reason naming the field.
    let mut bad = good.clone();
    bad["reserve_soc"] = 1.5.into();
    let v2 = db.save_settings(site, &bad.to_string());
    assert!(
        db.wait_delivery(site, Delivery::Rejected, wait),
        "v2 never rejected"
    );
    let s = db.latest_settings(site);
    assert_eq!(s.version, v2);
    let reason = s.ack_message.clone().unwrap_or_default();
    assert!(reason.contains("reserve_soc: 1.5"), "{s:?}");
    // A newer good version after a rejected one is delivered and applied.
    good["reserve_soc"] = 0.3.into();
    let v3 = db.save_settings(site, &good.to_string());
    assert!(
        db.wait_delivery(site, Delivery::Acked, wait),
        "v3 never acked"
    );
    assert_eq!(db.latest_settings(site).version, v3);
    let gs = g.stop();
    let ws = w.stop();
    assert_books_balance(&ws);
    assert!(n(&ws, "settings_acks") >= 3, "{ws}");
    assert!(n(&ws, "settings_delivered") >= 3, "{ws}");
    assert!(db.rejects().is_empty(), "{:?}", db.rejects());
    eprintln!("settings ({backend:?}): gateway {gs}, worker {ws}");
    drop(broker);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn settings_go_down_retained_and_come_back_acked_or_rejected_sqlite() {
    settings(Backend::Sqlite);
}

#[test]
fn settings_go_down_retained_and_come_back_acked_or_rejected_postgres() {
    settings(Backend::Postgres);
}

fn record(gw: &str, seq: u64, t_utc_s: i64, battery: u32) -> Vec<u8> {
    serde_json::json!({
        "schema": "melv.gateway.v2", "gateway": gw, "seq": seq, "kind": "telemetry", "t_utc_s": t_utc_s,
        "interval_s": 60.0,
        "site": {"grid_w": 49.0, "pv_w": 0.0, "load_w": 289.7, "battery_w": 240.7, "soc": 0.5,
                 "status": "normal", "reason": "self_consumption_discharge", "mode": "self_consumption",
                 "settings_version": 0, "alerts": []},
        "counters": {"grid_import_wh": 5.6, "grid_export_wh": 0.0, "pv_wh": 0.0, "load_wh": 9.7,
                     "battery_charge_wh": 0.0, "battery_discharge_wh": 4.0},
        "batteries": [{"unit": 1, "serial": battery, "soc": 0.5, "soh": 1.0, "power_w": 240.7,
                       "alerts": [], "lifecycle": "active",
                       "soc_led": {"state": "solid_blue", "percent": 50}, "status_led": "dim",
                       "min_temp_c": 20.0, "max_temp_c": 20.0, "ac_charged_wh": 0.0,
                       "ac_discharged_wh": 3.9}]})
    .to_string()
    .into_bytes()
}

fn bad_messages(backend: Backend) {
    let dir = temp_dir(&format!("bad-{backend:?}"));
    let Some(db) = Db::new(backend, &dir) else {
        return;
    };
    let gw = "bad-1";
    db.site(gw, &site_file());
    let battery = melv_gateway::site::battery_serial(gw, 0);
    let broker = Broker::start(&dir);
    let mut w = worker(&broker.url(), &db, "melv-bad-w1", &[]);
    // Wait for the worker's subscriptions: a first good record must arrive.
    let t = 1_760_000_000;
    let topic = format!("melv/v1/{gw}/telemetry");
    let t0 = Instant::now();
    while db.seqs(gw).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the worker never stored"
        );
        publish_all(broker.port, &[(topic.clone(), record(gw, 1, t, battery))]);
        sleep_s(0.3);
    }
    publish_all(
        broker.port,
        &[
            // Not JSON.
            (topic.clone(), b"\xff not json".to_vec()),
            // A gateway the cloud does not know.
            (
                "melv/v1/stranger/telemetry".into(),
                record("stranger", 1, t, battery),
            ),
            // One gateway's record on another's topic.
            (topic.clone(), record("stranger", 9, t, battery)),
            // A record delivered again, and the next one.
            (topic.clone(), record(gw, 1, t, battery)),
            (topic.clone(), record(gw, 2, t + 60, battery)),
        ],
    );
    let t0 = Instant::now();
    while db.rejects().len() < 3 || db.seqs(gw).len() < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "rejects {:?}, stored {:?}",
            db.rejects(),
            db.seqs(gw)
        );
        sleep_s(0.1);
    }
    let ws = w.stop();
    assert_books_balance(&ws);
    assert_eq!(
        db.seqs(gw),
        vec![("point".to_string(), 1), ("point".to_string(), 2)]
    );
    assert!(n(&ws, "duplicates") >= 1, "{ws}");
    assert_eq!(n(&ws, "rejected"), 3, "{ws}");
    let rejects = db.rejects();
    assert_eq!(rejects.len(), 3, "{rejects:?}");
    let find = |what: &str| {
        rejects
            .iter()
            .find(|r| r.reason.contains(what))
            .unwrap_or_else(|| panic!("no reject with {what:?}: {rejects:?}"))
    };
    let r = find("record envelope");
    assert_eq!(r.source, topic);
    assert_eq!(r.gateway_serial.as_deref(), Some(gw));
    assert!(r.payload.contains("not json"), "{r:?}");
    let r = find("is not a gateway of any site");
    assert_eq!(r.gateway_serial.as_deref(), Some("stranger"));
    assert_eq!(r.seq, Some(1));
    let r = find("published on the topic of");
    assert_eq!(r.seq, Some(9));
    drop(broker);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn malformed_and_foreign_messages_end_in_rejects_sqlite() {
    bad_messages(Backend::Sqlite);
}

#[test]
fn malformed_and_foreign_messages_end_in_rejects_postgres() {
    bad_messages(Backend::Postgres);
}

/// Mosquitto 2.0 does not keep shared subscriptions over a restart: what gateways publish after the
/// broker is back and before a worker subscribes again finds no subscriber and is dropped. The
/// worker's guard sessions (plain subscriptions, which the broker does keep) catch it, and the
/// worker's sweep stores it. Without the guard (`--guard-period-s 0`) it is lost: that half of the
/// test pins down the broker behaviour the guard exists for.
fn restart_window(backend: Backend) {
    let dir = temp_dir(&format!("window-{backend:?}"));
    let Some(db) = Db::new(backend, &dir) else {
        return;
    };
    let mut broker = Broker::start(&dir);
    let url = broker.url();
    let t = 1_760_000_000;
    for (gw, guard, kept) in [("win-guard", "60", true), ("win-bare", "0", false)] {
        db.site(gw, &site_file());
        let battery = melv_gateway::site::battery_serial(gw, 0);
        let id = format!("melv-{gw}");
        let args = ["--guard-period-s", guard];
        // Once up and subscribed (a first record is stored), the worker stops; its session, with
        // its shared subscriptions, waits at the broker.
        let mut w = worker(&url, &db, &id, &args);
        let topic = format!("melv/v1/{gw}/telemetry");
        let t0 = Instant::now();
        while db.seqs(gw).is_empty() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the worker never stored"
            );
            publish_all(broker.port, &[(topic.clone(), record(gw, 1, t, battery))]);
            sleep_s(0.3);
        }
        let first = w.stop();
        // With the guard, the first run swept its guards once (they were armed then).
        assert_eq!(n(&first, "guard_sweeps"), (guard != "0") as i64, "{first}");
        broker.stop();
        broker.restart();
        // Published while no worker has subscribed since the restart.
        let window: Vec<(String, Vec<u8>)> = (2..=11)
            .map(|seq| {
                (
                    topic.clone(),
                    record(gw, seq, t + 60 * (seq as i64 - 1), battery),
                )
            })
            .collect();
        publish_all(broker.port, &window);
        let mut w = worker(&url, &db, &id, &args);
        if kept {
            let expected = [(gw.to_string(), 11)];
            let complete = db.wait_complete(&expected, Duration::from_secs(20));
            let s = w.stop();
            assert!(complete, "{:?} {s}", db.seqs(gw));
            assert_eq!(
                n(&s, "guard_stored"),
                10,
                "the guard sweep stored the window: {s}"
            );
            assert_books_balance(&s);
        } else {
            // Let the worker subscribe and ingest whatever it gets: nothing of the window.
            let probe = (topic.clone(), record(gw, 12, t + 60 * 11, battery));
            let t0 = Instant::now();
            while db.seqs(gw).len() < 2 {
                assert!(
                    t0.elapsed() < Duration::from_secs(20),
                    "the worker never stored"
                );
                publish_all(broker.port, std::slice::from_ref(&probe));
                sleep_s(0.3);
            }
            let s = w.stop();
            assert_eq!(
                db.seqs(gw),
                vec![("point".to_string(), 1), ("point".to_string(), 12)],
                "without the guard the broker drops the window (if this fails, the broker now \
                 keeps shared subscriptions over a restart and the guard could be turned off)"
            );
            assert_eq!(n(&s, "guard_sweeps"), 0, "{s}");
        }
    }
    drop(broker);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn records_published_before_workers_resubscribe_after_a_broker_restart_are_kept_sqlite() {
    restart_window(Backend::Sqlite);
}

#[test]
fn records_published_before_workers_resubscribe_after_a_broker_restart_are_kept_postgres() {
    restart_window(Backend::Postgres);
}

/// A worker taken out of service for good: Mosquitto goes on routing its share of the shared
/// subscription to its session while it is stopped; `melv ingest --retire` ingests what waited there
/// and ends the session, and from then on the other worker gets everything.
#[test]
fn a_retired_worker_leaves_nothing_behind() {
    let dir = temp_dir("retire");
    let db = Db::new(Backend::Sqlite, &dir).unwrap();
    let gw = "ret-1";
    db.site(gw, &site_file());
    let battery = melv_gateway::site::battery_serial(gw, 0);
    let broker = Broker::start(&dir);
    let url = broker.url();
    let topic = format!("melv/v1/{gw}/telemetry");
    let msg = |seq: u64| {
        (
            topic.clone(),
            record(gw, seq, 1_760_000_000 + 60 * seq as i64, battery),
        )
    };
    // Each worker subscribed once (a probe of its own stored), the first one stopped.
    let mut w1 = worker(&url, &db, "ret-w1", &[]);
    let probe = |seq: u64| {
        let t0 = Instant::now();
        while !db.seqs(gw).iter().any(|(_, s)| *s == seq as i64) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "probe {seq} never stored"
            );
            publish_all(broker.port, &[msg(seq)]);
            sleep_s(0.3);
        }
    };
    probe(1);
    let s1 = w1.stop();
    let mut w2 = worker(&url, &db, "ret-w2", &[]);
    probe(2);
    // While w1 is stopped, part of these wait in its session.
    publish_all(broker.port, &(3..=12).map(msg).collect::<Vec<_>>());
    let out = melv()
        .args(["ingest", "--mqtt", &url, "--database", &db.url])
        .args(["--client-id", "ret-w1", "--retire"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let retired: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        n(&retired, "stored") > 0,
        "w1's share was waiting for it: {retired}"
    );
    assert_books_balance(&retired);
    assert!(db.wait_complete(&[(gw.to_string(), 12)], Duration::from_secs(20)));
    // From now on everything goes to w2.
    publish_all(broker.port, &(13..=20).map(msg).collect::<Vec<_>>());
    let complete = db.wait_complete(&[(gw.to_string(), 20)], Duration::from_secs(20));
    let s2 = w2.stop();
    assert!(complete, "{:?}", db.seqs(gw));
    let numbers: Vec<i64> = db.seqs(gw).iter().map(|(_, s)| *s).collect();
    assert_eq!(numbers, (1..=20).collect::<Vec<_>>());
    for s in [&s1, &s2] {
        assert_books_balance(s);
    }
    drop(broker);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `melv serve --mqtt`: one worker inside the cloud service, beside the web app and the API.
#[test]
fn serve_runs_an_ingest_worker_beside_the_web_app() {
    let dir = temp_dir("serve");
    let db = Db::new(Backend::Sqlite, &dir).unwrap();
    let gw = "srv-1";
    let site = db.site(gw, &site_file());
    let battery = melv_gateway::site::battery_serial(gw, 0);
    let broker = Broker::start(&dir);
    let port = free_port();
    let mut c = melv();
    c.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--database", &db.url, "--mqtt", &broker.url()])
        .args(["--mqtt-client-id", "melv-serve-test"])
        .env("MELV_ADMIN_PASSWORD", "admin-password-1");
    let mut serve = Proc::spawn("serve", &mut c);
    let topic = format!("melv/v1/{gw}/telemetry");
    let t0 = Instant::now();
    while db.seqs(gw).is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(20), "serve never stored");
        publish_all(
            broker.port,
            &[(topic.clone(), record(gw, 1, 1_760_000_000, battery))],
        );
        sleep_s(0.3);
    }
    // The web app answers in the same process.
    let mut http = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(
        &mut http,
        b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut http, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Settings go out from the serve process too (no gateway here: delivered, not acked).
    db.save_settings(
        site,
        &serde_json::to_string(&melv_ems::Settings::self_consumption()).unwrap(),
    );
    assert!(db.wait_delivery(site, Delivery::Delivered, Duration::from_secs(20)));
    // SIGTERM: the worker finishes its batch, the server stops, exit 0.
    let child = serve.child.take().unwrap();
    signal(child.id(), "TERM");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(db.seqs(gw), vec![("point".to_string(), 1)]);
    drop(broker);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "ingest",
                "--mqtt",
                "http://x",
                "--database",
                "sqlite://x.db",
                "--client-id",
                "a",
            ],
            "scheme \"http\" is not supported",
        ),
        (
            &[
                "ingest",
                "--mqtt",
                "mqtt://h:1",
                "--database",
                "sqlite://x.db",
                "--client-id",
                "a/b",
            ],
            "client id \"a/b\"",
        ),
        (
            &[
                "ingest",
                "--mqtt",
                "mqtt://h:1",
                "--database",
                "sqlite://x.db",
                "--client-id",
                "a",
                "--group",
                "g+",
            ],
            "group \"g+\"",
        ),
        (
            &[
                "ingest",
                "--mqtt",
                "mqtt://h:1",
                "--database",
                "mysql://x",
                "--client-id",
                "a",
            ],
            "database URL",
        ),
    ];
    for (args, want) in cases {
        let out = melv().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {want:?} not in {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
