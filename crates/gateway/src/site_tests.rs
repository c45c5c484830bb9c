//! Tests of [`super::SiteRuntime`] on the example sites.
use super::*;
use melv_core::Phases;
use melv_scenario::Overrides;

fn scenario(name: &str) -> Scenario {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    Scenario::load(&p, Overrides::default()).unwrap()
}

fn telemetry(site: &mut SiteRuntime, cycles: usize) -> Vec<Telemetry> {
    let mut out = Vec::new();
    for _ in 0..cycles {
        for r in site.step().unwrap() {
            if let Record::Telemetry(t) = r {
                out.push(t);
            }
        }
    }
    out
}

/// Run `minutes` of `file` starting `offset_s` into the profile with `cycle_s`; check the number
/// of records, their time stamps and that the site's energy account closes.
fn check(file: &str, cycle_s: f64, offset_s: f64, minutes: usize) {
    let sc = scenario(file);
    let start = sc.profile.start_utc_s;
    let mut site = SiteRuntime::new("gw-test", sc, cycle_s, offset_s, Counters::default()).unwrap();
    let tel = telemetry(&mut site, (minutes as f64 * 60.0 / cycle_s) as usize);
    assert_eq!(tel.len(), minutes, "{file} cycle {cycle_s}");
    for (k, t) in tel.iter().enumerate() {
        assert_eq!(t.t_utc_s, start + offset_s as i64 + 60 * (k as i64 + 1));
        assert_eq!(t.interval_s, 60.0);
        assert_eq!(t.batteries.len(), site.scenario().site.batteries);
        for b in &t.batteries {
            assert!((0.0..=1.0).contains(&b.soc), "{b:?}");
        }
    }
    let c = site.counters();
    let left = c.pv_wh + c.grid_import_wh + c.battery_discharge_wh;
    let right = c.load_wh + c.grid_export_wh + c.battery_charge_wh;
    assert!((left - right).abs() < 1e-6 * left.max(1.0), "{c:?}");
    assert!(c.load_wh > 0.0);
}

#[test]
fn minutes_of_telemetry_close_their_energy_account() {
    check("self-consumption.toml", 1.0, 0.0, 10);
    check("self-consumption.toml", 60.0, 0.0, 30);
    // Noon in June: PV charges the battery.
    check("self-consumption.toml", 5.0, 172.5 * 86_400.0, 20);
    check("tou-two-batteries.toml", 10.0, 0.0, 15);
}

#[test]
fn cycles_must_divide_the_minute() {
    for (cycle, ok) in [
        (1.0, true),
        (15.0, true),
        (60.0, true),
        (7.0, false),
        (0.5, false),
        (120.0, false),
        (f64::NAN, false),
    ] {
        let r = SiteRuntime::new(
            "gw",
            scenario("self-consumption.toml"),
            cycle,
            0.0,
            Counters::default(),
        );
        assert_eq!(r.is_ok(), ok, "{cycle}");
    }
}

#[test]
fn statuses_cross_the_can_codec() {
    let mut site = SiteRuntime::new(
        "gw",
        scenario("tou-two-batteries.toml"),
        1.0,
        0.0,
        Counters::default(),
    )
    .unwrap();
    telemetry(&mut site, 120);
    // The gateway hears the batteries at the start of a cycle: take their reports in now.
    let (now, utc) = (site.now_s(), site.clock_utc_s());
    site.site.observe(now, utc, &mut Vec::new()).unwrap();
    let truth: Vec<BatteryStatus> = site.units().iter().map(|u| u.status()).collect();
    for (got, truth) in site.received_statuses().iter().zip(&truth) {
        // BAT_STATUS carries SOC in 0.01 % steps.
        assert!(
            (got.soc - truth.soc).abs() <= 0.5e-4 + 1e-12,
            "{} vs {}",
            got.soc,
            truth.soc
        );
        assert_eq!(got.lifecycle, truth.lifecycle);
    }
}

#[test]
fn settings_are_validated_and_versioned() {
    let mut site = SiteRuntime::new(
        "gw",
        scenario("self-consumption.toml"),
        60.0,
        0.0,
        Counters::default(),
    )
    .unwrap();
    let mut bad = Settings::self_consumption();
    bad.reserve_soc = 1.5;
    let e = site.apply_settings(4, bad).unwrap_err();
    assert!(e.to_string().contains("reserve_soc"), "{e}");
    assert_eq!(site.settings_version(), 0);
    let mut good = Settings::self_consumption();
    good.reserve_soc = 0.3;
    site.apply_settings(5, good).unwrap();
    assert_eq!(site.settings_version(), 5);
    let t = telemetry(&mut site, 1);
    assert_eq!(t[0].site.settings_version, 5);
    assert_eq!(site.settings().reserve_soc, 0.3);
}

#[test]
fn a_restarted_site_continues_time_and_counters() {
    let c0 = Counters {
        load_wh: 1000.0,
        ..Counters::default()
    };
    let sc = scenario("self-consumption.toml");
    let start = sc.profile.start_utc_s;
    let mut site = SiteRuntime::new("gw", sc, 60.0, 600.0, c0).unwrap();
    let t = telemetry(&mut site, 2);
    assert_eq!(t[0].t_utc_s, start + 660);
    // A clock offset moves the time stamps, not the profile position.
    let span = site.profile_span_s();
    let mut moved = SiteRuntime::new("gw", scenario("self-consumption.toml"), 60.0, 600.0, c0)
        .unwrap()
        .with_clock_offset(2.0 * span);
    let m = telemetry(&mut moved, 2);
    assert_eq!(m[0].t_utc_s, start + 660 + 2 * span as i64);
    assert_eq!(m[1].site.load_w, t[1].site.load_w);
    assert_eq!(moved.sim_elapsed_at(m[1].t_utc_s as f64), 720.0);
    assert!(t[1].counters.load_wh > 1000.0);
    assert!(t[1].counters.load_wh >= t[0].counters.load_wh);
}

#[test]
fn a_cut_can_cable_raises_and_clears_63_as_alert_records() {
    let mut site = SiteRuntime::new(
        "gw",
        scenario("tou-two-batteries.toml"),
        1.0,
        0.0,
        Counters::default(),
    )
    .unwrap();
    let serial2 = site.serials[1];
    let mut alerts = Vec::new();
    for k in 0..30 {
        site.set_can_cut(2, (10..20).contains(&k));
        for r in site.step().unwrap() {
            if let Record::Alert(a) = r {
                alerts.push((k, a.unit, a.serial, a.code, a.raised));
            }
        }
    }
    // Silent from 10 s: more than 1 s later (the cycle is the granularity) 63 is raised for unit
    // 2 only; heard again at 20 s, it clears.
    assert_eq!(
        alerts,
        vec![
            (11, Some(2), Some(serial2), 63, true),
            (20, Some(2), Some(serial2), 63, false)
        ]
    );
}

#[test]
fn serials_differ_between_gateways_and_slots() {
    let a: Vec<u32> = (0..3).map(|i| serial_of("gw-1", i)).collect();
    let b: Vec<u32> = (0..3).map(|i| serial_of("gw-2", i)).collect();
    let all: std::collections::HashSet<u32> = a.iter().chain(&b).copied().collect();
    assert_eq!(all.len(), 6);
    assert_eq!(serial_of("gw-1", 0), a[0]);
}

/// SunSpec Modbus local control (issue 8): a client's 124 charge limit caps the site's charging
/// through the controller, the registers show the site, and the watchdog hands the site back.
#[test]
fn modbus_charge_limit_is_obeyed_and_the_watchdog_hands_back() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    // Noon of a sunny June day: PV surplus charges the battery at well over a kilowatt.
    let sc = scenario("self-consumption.toml");
    let noon_june = (31 + 28 + 31 + 30 + 31 + 14) as f64 * 86_400.0 + 11.0 * 3600.0;
    let mut site = SiteRuntime::new("gw-modbus", sc, 1.0, noon_june, Counters::default()).unwrap();
    let nameplate = melv_modbus::Nameplate {
        manufacturer: "ATMOCE".into(),
        model: "M-ELV MS-7K-U".into(),
        serial: "MELV-TEST".into(),
        version: "test".into(),
        batteries: 1,
        phases: Phases::Single,
        nominal_v: 230.0,
        nominal_hz: 50.0,
        grid_charging: melv_core::GridCharging::Permitted,
    };
    let watchdog = melv_modbus::WatchdogConfig {
        comm_timeout_s: 600.0,
    };
    let device = Arc::new(Mutex::new(
        melv_modbus::SunSpecDevice::new(nameplate, watchdog).unwrap(),
    ));
    // The device's clock: seconds, advanced by the test (one per control cycle).
    let secs = Arc::new(AtomicU64::new(0));
    let s2 = secs.clone();
    let clock: melv_modbus::Clock = Arc::new(move || s2.load(Ordering::Relaxed) as f64);
    site.attach_local_control(device.clone(), clock);
    let run = |site: &mut SiteRuntime, minutes: usize| {
        let mut tel = Vec::new();
        for _ in 0..minutes * 60 {
            secs.fetch_add(1, Ordering::Relaxed);
            for r in site.step().unwrap() {
                if let Record::Telemetry(t) = r {
                    tel.push(t);
                }
            }
        }
        tel
    };
    let before = run(&mut site, 10);
    let charging = before.last().unwrap().batteries[0].power_w;
    assert!(
        charging < -1000.0,
        "charging from PV surplus before any limit: {charging} W"
    );
    // The registers show the site: 802 SoC (% with its scale factor) against the unit's report.
    let m124 = device.lock().unwrap().map().model(124).unwrap().start;
    // 124: StorCtl_Mod (offset 5) bit 0 = charge limit; InWRte (offset 13) = 20 % of WChaMax
    // (3.75 kVA, manual 7.1) = 750 W.
    device
        .lock()
        .unwrap()
        .write(secs.load(Ordering::Relaxed) as f64, m124 + 13, &[20])
        .unwrap();
    device
        .lock()
        .unwrap()
        .write(secs.load(Ordering::Relaxed) as f64, m124 + 5, &[1])
        .unwrap();
    let ext = device.lock().unwrap().control();
    assert!(ext.is_active(), "the device holds the limit: {ext:?}");
    let limited = run(&mut site, 3);
    let p = limited.last().unwrap().batteries[0].power_w;
    assert!(
        (-760.0..=-600.0).contains(&p),
        "charging capped at 750 W by the Modbus limit: {p} W"
    );
    // No more writes: after the watchdog (600 s) the site charges as its own mode says again.
    let after = run(&mut site, 10);
    let p = after.last().unwrap().batteries[0].power_w;
    assert!(
        p < -1000.0,
        "back to self-consumption after the watchdog: {p} W"
    );
}

/// The site file's `[[events]]` happen live: the winter-storm outage of backup-outages.toml starts at
/// 18:00 local on 2019-01-17; the gateway islands the site and the meter reads nothing.
#[test]
fn site_file_events_apply_live() {
    let sc = scenario("backup-outages.toml");
    let start = sc.profile.start_utc_s;
    // 2019-01-17T17:55 local = 22:55 UTC; the profile starts 2019-01-01T00:00 local.
    let offset = 16.0 * 86_400.0 + 17.0 * 3600.0 + 55.0 * 60.0;
    let mut site = SiteRuntime::new("gw-ev", sc, 10.0, offset, Counters::default()).unwrap();
    let tel = telemetry(&mut site, 10 * 6);
    assert_eq!(tel.len(), 10);
    let outage_from = start + offset as i64 + 5 * 60;
    let before: Vec<&Telemetry> = tel.iter().filter(|t| t.t_utc_s <= outage_from).collect();
    let during: Vec<&Telemetry> = tel
        .iter()
        .filter(|t| t.t_utc_s > outage_from + 60)
        .collect();
    assert!(
        before.iter().all(|t| t.site.grid_w.abs() > 1.0),
        "on grid the meter reads the house"
    );
    assert!(
        during.iter().all(|t| t.site.grid_w == 0.0),
        "no grid, no meter reading"
    );
    assert!(during.len() >= 3);
    assert!(
        during
            .iter()
            .all(|t| t.site.reason == melv_ems::Reason::OffGridIslanded),
        "{during:?}"
    );
}
