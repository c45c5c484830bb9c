//! Everything the gateway publishes for Home Assistant, from a real run, as one JSON document on
//! stdout, for `tests/ha/test_ha_discovery.py` (which validates it with Home Assistant's own MQTT
//! discovery schemas).
//!
//! Run: `cargo run -p melv-gateway --example ha_payloads -- examples/tou-two-batteries.toml`
//!
//! The site runs 10 simulated minutes (60 s cycles); battery 2's CAN cable is cut after 3 minutes
//! so that alert 63 is raised (and its event fired). Then the commands of a `select` and a `number`
//! are applied through the settings path, as the runtime applies them.
#![allow(
    clippy::disallowed_methods,
    reason = "an example program: it reads its arguments and prints"
)]

use melv_gateway::record::{Counters, Record};
use melv_gateway::{ha, SiteRuntime, Topics};
use melv_scenario::{Overrides, Scenario};
use serde_json::{json, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: ha_payloads SITE.toml")?;
    let id = "gw-ha";
    let topics = Topics::new(id)?;
    let sc = Scenario::load(std::path::Path::new(&path), Overrides::default())?;
    let mut site = SiteRuntime::new(id, sc, 60.0, 0.0, Counters::default())?;
    let mut last = None;
    let mut events = Vec::new();
    for minute in 0..10 {
        if minute == 3 {
            site.set_can_cut(2, true);
        }
        for r in site.step()? {
            match r {
                Record::Telemetry(t) => last = Some(t),
                Record::Alert(a) => events.push(ha::alert_event(&topics, &a)),
            }
        }
    }
    let tel = last.ok_or("no telemetry in 10 minutes")?;
    let units = site.battery_serials().len();
    let discovery: Vec<Value> = ha::discovery(id, &topics, units)
        .into_iter()
        .map(|(t, p)| Ok(json!({"topic": t, "payload": serde_json::from_slice::<Value>(&p)?})))
        .collect::<Result<_, serde_json::Error>>()?;
    let state = ha::state(&tel, site.settings());
    let mut commands = Vec::new();
    for (what, payload) in [
        ("mode", "time_of_use"),
        ("reserve", "30"),
        ("reserve", "150"),
        ("mode", "turbo"),
        ("reserve", "95"),
    ] {
        let topic = ha::command_topic(&topics, what);
        let verdict = match ha::command(&topics, &topic, payload.as_bytes(), site.settings()) {
            Ok(Some(s)) => {
                let v = site.settings_version();
                site.apply_settings(v, s).map_err(|e| e.to_string())
            }
            Ok(None) => Err("not a command topic".to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut st = state.clone();
        ha::show_settings(&mut st, site.settings());
        commands.push(json!({
            "topic": topic,
            "payload": payload,
            "accepted": verdict.is_ok(),
            "reason": verdict.err(),
            "state_after": st,
        }));
    }
    let events: Vec<Value> = events
        .into_iter()
        .map(|(t, p)| Ok(json!({"topic": t, "payload": serde_json::from_slice::<Value>(&p)?})))
        .collect::<Result<_, serde_json::Error>>()?;
    let out = json!({
        "gateway": id,
        "units": units,
        "status_topic": topics.status,
        "state_topic": topics.ha_state,
        "command_filter": ha::command_filter(&topics),
        "discovery": discovery,
        "state": state,
        "events": events,
        "commands": commands,
    });
    println!("{out}");
    Ok(())
}
