//! Delivery against a real Mosquitto (each test starts its own on a free port): broker outage,
//! gateway `kill -9` and restarts, and a soak of several gateways over a simulated week.
//! After de-duplication by (gateway, seq) the subscriber must hold every number exactly once.

mod common;

use common::*;
use std::collections::HashMap;
use std::time::Duration;

fn sleep_s(s: f64) {
    std::thread::sleep(Duration::from_secs_f64(s));
}

#[test]
fn broker_outage_and_kill_9_lose_nothing() {
    let dir = temp_dir("outage");
    let mut broker = Broker::start(&dir);
    let rec = Recorder::start(broker.port, "melv-test-outage");
    let state = dir.join("gw-a");
    let url = broker.url();
    // 1200x with a 10 s cycle: 20 telemetry records per wall second. Backlog at 10/s, so that after
    // the outage live records overtake the backlog.
    let args = [
        "--speed",
        "1200",
        "--cycle",
        "10",
        "--backlog-rate",
        "10",
        "--flush-timeout",
        "30",
    ];
    let mut gw = gateway(&url, "gw-a", &state, &args);
    sleep_s(2.0);
    // The broker goes away for 3 s: about 60 records wait on disk.
    broker.stop();
    sleep_s(3.0);
    broker.restart();
    sleep_s(2.0);
    // kill -9 in the middle of the backlog, twice, then a graceful stop.
    gw.kill().unwrap();
    gw.wait().unwrap();
    let mut gw = gateway(&url, "gw-a", &state, &args);
    sleep_s(1.5);
    gw.kill().unwrap();
    gw.wait().unwrap();
    let gw = gateway(&url, "gw-a", &state, &args);
    sleep_s(2.0);
    signal(&gw, "TERM");
    let s = summary(gw);
    let last = s["next_seq"].as_u64().unwrap() - 1;
    assert_eq!(s["queue_left"], 0, "graceful stop flushes the queue: {s}");
    assert_eq!(s["dropped"], 0);
    assert!(last > 100, "{s}");

    let expected = HashMap::from([("gw-a".to_string(), last)]);
    let complete = rec.wait_complete(&expected, Duration::from_secs(20));
    let all = rec.snapshot();
    if !complete {
        let per = distinct(&all);
        let have = per.get("gw-a").cloned().unwrap_or_default();
        let missing: Vec<u64> = (1..=last).filter(|s| !have.contains_key(s)).collect();
        panic!("{} of {last} records missing: {missing:?}", missing.len());
    }
    let per = distinct(&all);
    let seqs: Vec<u64> = per["gw-a"].keys().copied().collect();
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "every number exactly once, no gaps"
    );
    // Telemetry time stamps are distinct minutes: a restart resumes where the last stored record ended.
    let mut times: Vec<i64> = per["gw-a"]
        .values()
        .filter(|g| g.kind == "telemetry")
        .map(|g| g.t_utc_s)
        .collect();
    let n = times.len();
    times.dedup();
    assert_eq!(times.len(), n, "a minute was sent twice under two numbers");
    assert!(
        times.windows(2).all(|w| w[1] - w[0] == 60),
        "a minute is missing"
    );
    // Live first: some record arrived before an older one (the backlog drained behind live data).
    let order: Vec<u64> = all.iter().map(|g| g.seq).collect();
    assert!(
        order.windows(2).any(|w| w[1] < w[0]),
        "backlog was never overtaken by live data"
    );
    eprintln!(
        "outage test: {last} records, {} deliveries ({} duplicates)",
        all.len(),
        all.len() as u64 - last
    );
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn soak_a_week_from_three_gateways() {
    let dir = temp_dir("soak");
    let broker = Broker::start(&dir);
    let rec = Recorder::start(broker.port, "melv-test-soak");
    let url = broker.url();
    let week = (7 * 86_400).to_string();
    let ids = ["soak-1", "soak-2", "soak-3"];
    let children: Vec<_> = ids
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
    let mut expected = HashMap::new();
    for (id, c) in ids.iter().zip(children) {
        let s = summary(c);
        assert_eq!(s["queue_left"], 0, "{s}");
        assert_eq!(s["sim_run_s"], 604_800.0, "{s}");
        expected.insert(id.to_string(), s["next_seq"].as_u64().unwrap() - 1);
    }
    assert!(
        rec.wait_complete(&expected, Duration::from_secs(60)),
        "records missing"
    );
    let per = distinct(&rec.snapshot());
    for id in ids {
        let m = &per[id];
        assert_eq!(m.len() as u64, expected[id]);
        assert_eq!(*m.keys().next_back().unwrap(), expected[id]);
        // A week of 1-minute telemetry: 7 x 1440.
        let tel = m.values().filter(|g| g.kind == "telemetry").count();
        assert_eq!(tel, 10_080, "{id}");
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_queue_drops_the_oldest_and_counts_them() {
    let dir = temp_dir("bound");
    let state = dir.join("gw-b");
    // No broker on this port: 200 minutes are produced offline into a queue of 100.
    let dead = format!("mqtt://127.0.0.1:{}", free_port());
    let offline = [
        "--speed",
        "100000",
        "--cycle",
        "60",
        "--run-for",
        "12000",
        "--queue-capacity",
        "100",
        "--flush-timeout",
        "0",
        "--clock",
        "profile",
    ];
    let s = summary(gateway(&dead, "gw-b", &state, &offline));
    assert_eq!(
        s["records_produced"].as_u64(),
        s["next_seq"].as_u64().map(|n| n - 1)
    );
    let produced = s["records_produced"].as_u64().unwrap();
    assert_eq!(s["queue_left"], 100, "{s}");
    assert_eq!(s["dropped"].as_u64().unwrap(), produced - 100, "{s}");
    // With a broker: the 100 newest arrive, then one more minute.
    let broker = Broker::start(&dir);
    let rec = Recorder::start(broker.port, "melv-test-bound");
    let online = [
        "--speed",
        "100000",
        "--cycle",
        "60",
        "--run-for",
        "60",
        "--flush-timeout",
        "30",
    ];
    let s = summary(gateway(&broker.url(), "gw-b", &state, &online));
    assert_eq!(s["queue_left"], 0, "{s}");
    assert_eq!(
        s["dropped"].as_u64().unwrap(),
        produced - 100,
        "the drop count is persisted: {s}"
    );
    let last = s["next_seq"].as_u64().unwrap() - 1;
    let t0 = std::time::Instant::now();
    loop {
        let per = distinct(&rec.snapshot());
        let n = per.get("gw-b").map_or(0, |m| m.len() as u64);
        if n >= last - (produced - 100) || t0.elapsed() > Duration::from_secs(20) {
            let seqs: Vec<u64> = per
                .get("gw-b")
                .map(|m| m.keys().copied().collect())
                .unwrap_or_default();
            assert_eq!(seqs, (produced - 100 + 1..=last).collect::<Vec<_>>());
            break;
        }
        sleep_s(0.1);
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}
