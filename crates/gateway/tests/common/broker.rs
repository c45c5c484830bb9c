//! A Mosquitto of the test's own on a free port, with persistence so that sessions (subscriptions and
//! the messages queued for them) survive a broker restart. Shared by the gateway's MQTT tests and the
//! cloud's end-to-end tests (`crates/cli/tests/cloud_mqtt.rs` includes this file by path).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `kill -SIG pid`.
pub fn signal_pid(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

pub struct Broker {
    pub port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl Broker {
    /// Start with `settings` as the configuration lines beyond the listener and persistence
    /// (access, queue and packet limits).
    pub fn start_with(dir: &Path, settings: &str) -> Self {
        let persistence = format!(
            "persistence true\npersistence_location {}/\n",
            dir.display()
        );
        Self::start_conf(dir, &format!("{settings}{persistence}"))
    }

    /// Start WITHOUT persistence: a restart (or a `kill -9`) forgets every session, subscription
    /// and queued message.
    pub fn start_volatile(dir: &Path, settings: &str) -> Self {
        Self::start_conf(dir, &format!("{settings}persistence false\n"))
    }

    fn start_conf(dir: &Path, settings: &str) -> Self {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "per_listener_settings false\nlistener {port} 127.0.0.1\n{settings}user root\n\
                 log_dest none\n"
            ),
        )
        .unwrap();
        let mut b = Self {
            port,
            conf,
            child: None,
        };
        b.restart();
        b
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (Debian package mosquitto)");
        self.child = Some(child);
        // Ready when it accepts connections.
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "mosquitto did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM: Mosquitto saves its persistence file and exits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal_pid(c.id(), "TERM");
            let _ = c.wait();
        }
    }

    /// SIGKILL: nothing is saved.
    pub fn kill_9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
