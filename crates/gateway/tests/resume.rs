//! A restarted gateway resumes its in-process battery twins where the last run left them (issue 15:
//! the SOC jumped back to the site file's initial SOC). No broker: the records stay in the queue,
//! which is read afterwards.

mod common;

use common::*;
use melv_gateway::Queue;

/// The SOC of every telemetry record in the queue, oldest first.
fn socs(state: &std::path::Path) -> Vec<(u64, f64)> {
    let q = Queue::open(&state.join("queue.sqlite"), 1_000_000).unwrap();
    q.fetch(0, i64::MAX as u64, 100_000)
        .unwrap()
        .iter()
        .filter(|r| r.kind == "telemetry")
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
            (r.seq, v["site"]["soc"].as_f64().unwrap())
        })
        .collect()
}

fn run(state: &std::path::Path, run_for_s: &str) -> serde_json::Value {
    summary(gateway(
        "mqtt://127.0.0.1:1",
        "gw-resume",
        state,
        &[
            "--speed",
            "7200",
            "--cycle",
            "60",
            "--clock",
            "profile",
            "--run-for",
            run_for_s,
            "--flush-timeout",
            "0",
        ],
    ))
}

#[test]
fn a_restarted_gateway_resumes_the_twins_soc() {
    let state = temp_dir("resume");
    // Six simulated hours from the profile's start (a January night: the battery discharges into
    // the house from the site file's 50 %).
    let s = run(&state, "21600");
    let first_run = socs(&state);
    assert!(first_run.len() >= 300, "{s}");
    let (_, last_soc) = *first_run.last().unwrap();
    assert!(
        (last_soc - 0.5).abs() > 0.05,
        "the SOC must have moved away from the initial 50 % for this test to mean anything: {last_soc}"
    );
    // Restart: the next records continue from where the twins were, not from 50 %.
    run(&state, "600");
    let all = socs(&state);
    let (seq, resumed) = all[first_run.len()];
    assert!(
        (resumed - last_soc).abs() < 0.01,
        "record {seq}: SOC {resumed} after the restart, {last_soc} before it"
    );
    // A state that does not fit (edited by hand) is refused with its reason; the site file's
    // initial SOC is used and nothing fails.
    {
        let mut q = Queue::open(&state.join("queue.sqlite"), 1_000_000).unwrap();
        q.set_meta("twins", "[]").unwrap();
    }
    let out = gateway(
        "mqtt://127.0.0.1:1",
        "gw-resume",
        &state,
        &[
            "--speed",
            "7200",
            "--cycle",
            "60",
            "--clock",
            "profile",
            "--run-for",
            "120",
            "--flush-timeout",
            "0",
        ],
    );
    let s = summary(out);
    assert!(s["records_produced"].as_u64().unwrap() >= 1, "{s}");
    let after = socs(&state);
    let (_, fresh) = after[all.len()];
    assert!((fresh - 0.5).abs() < 0.02, "{fresh}");
}
