//! Broker authentication and the ACL of `deploy/mosquitto/acl`: a gateway logs in with its id as
//! username (`--mqtt-username`, password from `MELV_MQTT_PASSWORD`); the right password delivers
//! its records to the ingest account, a wrong one never connects and the records wait on disk.

mod common;

use common::*;
use std::process::{Command, Stdio};

fn gateway_with(broker: &str, state: &std::path::Path, password: &str) -> serde_json::Value {
    let c = Command::new(env!("CARGO_BIN_EXE_melv-gateway"))
        .arg(site_file())
        .args(["--mqtt", broker, "--gateway-id", "gw-1", "--state-dir"])
        .arg(state)
        .args([
            "--mqtt-username",
            "gw-1",
            "--confirm",
            "broker",
            "--speed",
            "6000",
            "--clock",
            "profile",
            "--run-for",
            "600",
            "--flush-timeout",
            "3",
        ])
        .env("MELV_MQTT_PASSWORD", password)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    summary(c)
}

#[test]
fn gateways_authenticate_and_the_acl_lets_their_records_through() {
    let dir = temp_dir("mqtt-auth");
    let passwd = dir.join("passwd");
    for (i, (user, pw)) in [("gw-1", "gw-secret"), ("melv-ingest", "ingest-secret")]
        .iter()
        .enumerate()
    {
        let mut cmd = Command::new("mosquitto_passwd");
        cmd.arg("-b");
        if i == 0 {
            cmd.arg("-c");
        }
        let ok = cmd.arg(&passwd).args([user, pw]).status().unwrap();
        assert!(ok.success(), "mosquitto_passwd");
    }
    let acl = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/mosquitto/acl");
    let broker = Broker::start_with(
        &dir,
        &format!(
            "allow_anonymous false\npassword_file {}\nacl_file {}\nmax_queued_messages 0\n",
            passwd.display(),
            acl.display()
        ),
    );
    // The ingest account reads every gateway's telemetry (10 minutes = 10 records).
    let sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["-u", "melv-ingest", "-P", "ingest-secret", "-q", "1"])
        .args(["-t", "melv/v1/+/telemetry", "-C", "10", "-W", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));

    let s = gateway_with(&broker.url(), &dir.join("good"), "gw-secret");
    assert_eq!(s["connections"], 1, "{s}");
    assert_eq!(s["queue_left"], 0, "{s}");
    let out = sub.wait_with_output().unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10, "the ingest account got every record");
    assert!(lines.iter().all(|v| v["gateway"] == "gw-1"));

    // A wrong password: never connected, nothing lost.
    let s = gateway_with(&broker.url(), &dir.join("bad"), "wrong");
    assert_eq!(s["connections"], 0, "{s}");
    assert_eq!(s["records_acked"], 0, "{s}");
    assert_eq!(s["queue_left"], s["records_produced"], "{s}");
}
