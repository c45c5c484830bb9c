//! Test harness: a private Mosquitto, a recording subscriber, gateway processes.

#![allow(dead_code)]

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod broker;
#[allow(unused_imports)] // each test binary uses a different part
pub use broker::{free_port, signal_pid, Broker};

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("melv-gw-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Broker {
    /// The gateway tests' broker: anonymous, nothing dropped from offline sessions' queues.
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, "allow_anonymous true\nmax_queued_messages 0\n")
    }
}

pub fn signal(c: &Child, sig: &str) {
    signal_pid(c.id(), sig);
}

/// One received sequenced record.
#[derive(Debug, Clone)]
pub struct Got {
    pub gateway: String,
    pub seq: u64,
    pub kind: String,
    pub t_utc_s: i64,
}

/// A subscriber with a persistent session that records every telemetry and alert record.
pub struct Recorder {
    pub got: Arc<Mutex<Vec<Got>>>,
    pub client: Client,
}

impl Recorder {
    pub fn start(port: u16, client_id: &str) -> Self {
        let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
        o.set_clean_session(false);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut conn) = Client::new(o, 1000);
        client
            .subscribe("melv/v1/+/telemetry", QoS::AtLeastOnce)
            .unwrap();
        client
            .subscribe("melv/v1/+/alerts", QoS::AtLeastOnce)
            .unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut subacks = 0;
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        subacks += 1;
                        if subacks == 2 {
                            let _ = ready_tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
                        g.lock().unwrap().push(Got {
                            gateway: v["gateway"].as_str().unwrap().to_string(),
                            seq: v["seq"].as_u64().unwrap(),
                            kind: v["kind"].as_str().unwrap().to_string(),
                            t_utc_s: v["t_utc_s"].as_i64().unwrap(),
                        });
                    }
                    Ok(_) => {}
                    // The broker is down: rumqttc reconnects on the next poll.
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("subscriber did not get its SUBACKs");
        Self { got, client }
    }

    pub fn snapshot(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Wait until every gateway in `expected` (id -> highest seq) has all its numbers.
    pub fn wait_complete(&self, expected: &HashMap<String, u64>, timeout: Duration) -> bool {
        let t0 = Instant::now();
        loop {
            let per = distinct(&self.snapshot());
            if expected
                .iter()
                .all(|(g, &max)| per.get(g).map_or(0, |s| s.len() as u64) >= max)
            {
                return true;
            }
            if t0.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Distinct sequence numbers per gateway, with the record of each.
pub fn distinct(got: &[Got]) -> HashMap<String, BTreeMap<u64, Got>> {
    let mut m: HashMap<String, BTreeMap<u64, Got>> = HashMap::new();
    for g in got {
        m.entry(g.gateway.clone())
            .or_default()
            .entry(g.seq)
            .or_insert_with(|| g.clone());
    }
    m
}

pub fn site_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/self-consumption.toml")
}

/// Start a gateway process.
pub fn gateway(broker: &str, id: &str, state: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_melv-gateway"))
        .arg(site_file())
        .args(["--mqtt", broker, "--gateway-id", id, "--state-dir"])
        .arg(state)
        // No melv cloud behind these brokers: the PUBACK confirms (docs/gateway.md 5).
        .args(["--confirm", "broker"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Wait for a gateway to exit and parse its summary line.
pub fn summary(c: Child) -> serde_json::Value {
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "gateway failed: {:?}", out.status);
    let s = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("summary {s:?}: {e}"))
}
