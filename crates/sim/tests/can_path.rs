//! The CAN path keeps the fast path honest: the same scenario run with every battery-gateway message
//! through the codec (crates/can) gives the same KPIs as the direct calls, within the effect of the
//! bus (the gateway decides from the statuses it decoded on the previous step), and its candump log
//! holds the frames of every unit.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "a test: it reads the example site files from the repository"
)]

use melv_can::SimLink;
use melv_sim::runner;
use melv_sim::scenario::{Overrides, Scenario};
use std::path::Path;

fn scenario(name: &str, days: f64) -> Scenario {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    Scenario::load(
        &p,
        Overrides {
            step_s: Some(60.0),
            days: Some(days),
        },
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn codec_path_gives_the_fast_path_kpis() {
    for name in ["self-consumption.toml", "tou-two-batteries.toml"] {
        let sc = scenario(name, 7.0);
        let fast = runner::run(&sc, &mut |_, _| {}).unwrap().kpis;
        let mut log = Vec::new();
        let mut link = SimLink::new(&runner::can_identities(&sc), sc.seed).unwrap();
        link.set_log(&mut log, "can0", sc.start_utc_s as f64);
        let (can, link) = runner::run_over_can(&sc, link, &mut |_, _| {}).unwrap();
        let can = can.kpis;
        drop(link);
        // Within 2 % of the battery throughput (and 1 kWh absolute on a week): one step of lag on
        // hundreds of decisions a day moves little energy.
        let close = |what: &str, a: f64, b: f64| {
            let tol = (0.02 * fast.battery_discharge_kwh).max(1.0);
            assert!(
                (a - b).abs() <= tol,
                "{name} {what}: fast {a} vs CAN {b} (tolerance {tol})"
            );
        };
        close("grid import", fast.grid_import_kwh, can.grid_import_kwh);
        close("grid export", fast.grid_export_kwh, can.grid_export_kwh);
        close(
            "battery charge",
            fast.battery_charge_kwh,
            can.battery_charge_kwh,
        );
        close(
            "battery discharge",
            fast.battery_discharge_kwh,
            can.battery_discharge_kwh,
        );
        assert!(
            can.energy_balance_error_kwh.abs() < 1e-6,
            "{name}: {}",
            can.energy_balance_error_kwh
        );
        assert!(
            can.alerts.is_empty(),
            "{name}: no comm loss on a healthy bus: {:?}",
            can.alerts
        );
        // Every unit's frames are in the log: battery status ids are 0x180 + unit (docs/can.md).
        let text = String::from_utf8(log).unwrap();
        for unit in 1..=sc.site.batteries {
            let id = format!(" can0 {:03X}#", 0x180 + unit);
            assert!(text.contains(&id), "{name}: no frame {id} in the log");
        }
    }
}

#[test]
fn a_cut_can_cable_raises_63_for_that_battery_only() {
    // Manual 6.3 code 63, cause 2: the CAN cable between a battery and the gateway is abnormal.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut text = std::fs::read_to_string(dir.join("tou-two-batteries.toml")).unwrap();
    text.push_str("\n[[events]]\nkind = \"can_cut\"\nfrom = \"2019-01-01T12:00\"\nto = \"2019-01-01T13:00\"\nbattery = 1\n");
    let profile = std::fs::read(dir.join("../data/greensboro-h0-hourly-2019.csv")).unwrap();
    let sc = Scenario::from_text(
        "tou-two-batteries.toml + can_cut",
        &text,
        ("greensboro-h0-hourly-2019.csv", &profile),
        None,
        Overrides {
            step_s: Some(60.0),
            days: Some(1.0),
        },
    )
    .unwrap();
    // `run` goes through the codec by itself when the scenario cuts a cable.
    let r = runner::run(&sc, &mut |_, _| {}).unwrap();
    let edges: Vec<_> = r.alert_edges.iter().filter(|e| e.code == 63).collect();
    assert_eq!(edges.len(), 2, "raised once and cleared once: {edges:?}");
    assert!(
        edges.iter().all(|e| e.unit == Some(1)),
        "only the cut battery: {edges:?}"
    );
    assert!(edges[0].raised && !edges[1].raised);
    // Raised about a second after the cut (the gateway's supervision timeout; one 60 s step here),
    // cleared once the battery is heard again.
    let noon = sc.start_utc_s + 12 * 3600;
    assert!((edges[0].t_utc_s - noon).abs() <= 120, "{edges:?}");
    assert!((edges[1].t_utc_s - (noon + 3600)).abs() <= 120, "{edges:?}");
    assert!(
        r.alert_edges.iter().all(|e| e.code == 63),
        "nothing else: {:?}",
        r.alert_edges
    );
}
