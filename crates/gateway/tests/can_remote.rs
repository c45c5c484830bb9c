//! The live gateway driving batteries on a real CAN transport: `melv-gateway --can socketcand://...`
//! against battery twins hosted behind a socketcand server (what `melv can serve --site` runs), each
//! in its own process/thread, over TCP. No broker: the records stay in the gateway's queue, which is
//! read afterwards.

mod common;

use common::*;
use melv_can::transport::socketcand::SocketcandServer;
use melv_gateway::remote::{run_twins, TwinHost};
use melv_gateway::site::battery_serial;
use melv_gateway::Queue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn a_gateway_drives_twins_over_socketcand() {
    // Both ends run at 6x: the protocol's 1 s silence timeout is 170 ms of wall time, far above
    // loopback latency even on a loaded machine.
    const SPEED: f64 = 6.0;
    let id = "gw-can";
    let scenario = melv_scenario::Scenario::load(&site_file(), Default::default()).unwrap();
    let n = scenario.site.batteries;
    let mut server = SocketcandServer::bind("127.0.0.1:0", "can0").unwrap();
    let addr = server.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_twins = stop.clone();
    let twins = std::thread::spawn(move || {
        let mut host = TwinHost::new(id, scenario);
        run_twins(
            &mut host,
            &mut server,
            SPEED,
            Duration::from_millis(10),
            &mut |_| stop_twins.load(Ordering::SeqCst),
        )
        .unwrap();
        (
            host.frames(),
            host.units()
                .iter()
                .map(|u| u.energy().ac_out_wh + u.energy().ac_in_wh)
                .collect::<Vec<f64>>(),
        )
    });
    let state = temp_dir("can-remote");
    let can = format!("socketcand://{addr}/can0");
    let gw = gateway(
        // No broker: records stay on disk.
        "mqtt://127.0.0.1:1",
        id,
        &state,
        &[
            "--can",
            &can,
            "--speed",
            &SPEED.to_string(),
            "--clock",
            "profile",
            "--run-for",
            "120",
            "--flush-timeout",
            "0",
        ],
    );
    let s = summary(gw);
    stop.store(true, Ordering::SeqCst);
    let ((sent, received), energy) = twins.join().unwrap();
    assert!(
        sent > 100 && received > 100,
        "twins sent {sent}, received {received}"
    );
    assert!(s["records_produced"].as_u64().unwrap() >= 2, "{s}");
    let q = Queue::open(&state.join("queue.sqlite"), 1000).unwrap();
    let recs = q.fetch(0, i64::MAX as u64, 1000).unwrap();
    let tel: Vec<serde_json::Value> = recs
        .iter()
        .filter(|r| r.kind == "telemetry")
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    assert_eq!(tel.len(), 2, "two minutes of telemetry");
    let last = tel.last().unwrap();
    let bats = last["batteries"].as_array().unwrap();
    assert_eq!(bats.len(), n);
    for (i, b) in bats.iter().enumerate() {
        // The serial is what the twin announced on the bus (BAT_IDENT), not a local guess.
        assert_eq!(b["serial"].as_u64().unwrap(), battery_serial(id, i) as u64);
        assert_eq!(b["lifecycle"], "active", "{b}");
    }
    // The twins exchanged energy because the gateway's setpoints reached them, and the gateway's
    // books saw it through the units' own reports.
    assert!(energy.iter().all(|e| *e > 0.5), "{energy:?}");
    let site_battery_wh = last["counters"]["battery_charge_wh"].as_f64().unwrap()
        + last["counters"]["battery_discharge_wh"].as_f64().unwrap();
    assert!(site_battery_wh > 0.5, "{last}");
}
