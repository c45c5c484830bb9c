//! A SunSpec Modbus TCP server in front of a simulated site: one or more MS-7K-U twins
//! ([`melv_unit::BatteryUnit`]) run by the gateway's energy manager ([`melv_ems::Controller`]) in
//! self-consumption, under a constant house load and PV, with a 1 s control cycle in real time.
//! Modbus writes go through [`melv_modbus::EmsBridge`] as in the gateway.
//!
//! Run: `cargo run -p melv-modbus --example sim_server -- --listen 127.0.0.1:15020`
//! Options: `--unit-id N` (1), `--batteries N` (1), `--load-w W` (500), `--pv-w W` (3000),
//! `--soc F` (0.5), `--watchdog-s S` (900), `--country generic|AU|DE|IT` (generic),
//! `--status PATH` (writes the site's own values as JSON every cycle, for tests).
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "an example program: it serves Modbus TCP in real time"
)]

use anyhow::{anyhow, bail, Context, Result};
use melv_core::status::BatteryStatus;
use melv_core::{Country, Phases};
use melv_ems::{Controller, Settings, SiteConfig, SiteInputs};
use melv_modbus::server::{lock, serve, Clock, ServerConfig, SharedDevice};
use melv_modbus::{EmsBridge, Nameplate, SiteSnapshot, SunSpecDevice, WatchdogConfig};
use melv_model::env::Environment;
use melv_unit::{BatteryUnit, UnitConfig};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    listen: String,
    unit_id: u8,
    batteries: usize,
    load_w: f64,
    pv_w: f64,
    soc: f64,
    watchdog_s: f64,
    country: Country,
    status: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        listen: "127.0.0.1:15020".into(),
        unit_id: 1,
        batteries: 1,
        load_w: 500.0,
        pv_w: 3_000.0,
        soc: 0.5,
        watchdog_s: WatchdogConfig::default().comm_timeout_s,
        country: Country::Generic,
        status: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| anyhow!("{flag}: missing value"));
        match flag.as_str() {
            "--listen" => a.listen = val()?,
            "--unit-id" => a.unit_id = val()?.parse().context("--unit-id")?,
            "--batteries" => a.batteries = val()?.parse().context("--batteries")?,
            "--load-w" => a.load_w = val()?.parse().context("--load-w")?,
            "--pv-w" => a.pv_w = val()?.parse().context("--pv-w")?,
            "--soc" => a.soc = val()?.parse().context("--soc")?,
            "--watchdog-s" => a.watchdog_s = val()?.parse().context("--watchdog-s")?,
            "--country" => a.country = val()?.parse().map_err(|e| anyhow!("--country: {e}"))?,
            "--status" => a.status = Some(val()?),
            other => bail!("unknown option {other} (see the example's header)"),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let phases = Phases::Single;
    let site = SiteConfig::new(phases, args.country, args.batteries, chrono_tz::UTC);
    let settings = Settings::self_consumption();
    let ctrl = Controller::new(site.clone(), settings.clone())?;
    let bridge = EmsBridge::new(settings);
    let units: Vec<BatteryUnit> = (0..args.batteries)
        .map(|i| {
            BatteryUnit::new(
                &UnitConfig {
                    seed: i as u64 + 1,
                    phases,
                    country: args.country,
                    initial_soc: args.soc,
                    ..UnitConfig::default()
                },
                0.0,
            )
        })
        .collect();
    let env = Environment::nominal(phases);
    let nameplate = Nameplate {
        manufacturer: "ATMOCE".into(),
        model: "M-ELV MS-7K-U".into(),
        serial: "MELV-SIM-0001".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        batteries: args.batteries,
        phases,
        nominal_v: args.country.nominal_voltage_v(),
        nominal_hz: args.country.nominal_frequency_hz(),
        grid_charging: site.grid_charging,
    };
    let watchdog = WatchdogConfig {
        comm_timeout_s: args.watchdog_s,
    };
    let device = Arc::new(Mutex::new(SunSpecDevice::new(nameplate, watchdog)?));
    let start = Instant::now();
    let clock: Clock = Arc::new(move || start.elapsed().as_secs_f64());

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("--listen {}", args.listen))?;
    println!(
        "sim_server: SunSpec Modbus TCP on {}, unit id {}",
        listener.local_addr()?,
        args.unit_id
    );
    let cfg = ServerConfig {
        unit_id: args.unit_id,
        ..ServerConfig::default()
    };
    let mut sim = Sim {
        units,
        ctrl,
        bridge,
        env,
        load_w: args.load_w,
        pv_w: args.pv_w,
        status: args.status.clone(),
        t: 0.0,
        energy_wh: [0.0; 4],
    };
    // The units' grid protection waits for a stable grid and then ramps up (generic profile: 60 s
    // and a ramp; melv-bms grid profiles) before it exchanges power: run that part at full speed
    // (at most an hour of simulated time) so that clients meet a site that is already running.
    for _ in 0..3_600 {
        sim.cycle(&device, &clock, false)?;
        let ready = sim.units.iter().all(|u| {
            let s = u.status();
            s.max_charge_w >= 0.95 * melv_core::spec::MAX_CONTINUOUS_INPUT_VA
        });
        if ready {
            break;
        }
    }
    println!(
        "sim_server: site running after {} s of simulated warm-up",
        sim.t
    );
    tokio::spawn(serve(listener, device.clone(), clock.clone(), cfg));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(DT_S));
    loop {
        tick.tick().await;
        sim.cycle(&device, &clock, true)?;
    }
}

/// The control cycle, s.
const DT_S: f64 = 1.0;
/// Unix time for the controller at simulated time 0 (TOU needs a calendar; self-consumption does
/// not care): 2026-06-01T00:00:00Z.
const T0: i64 = 1_780_272_000;

struct Sim {
    units: Vec<BatteryUnit>,
    ctrl: Controller,
    bridge: EmsBridge,
    env: Environment,
    load_w: f64,
    pv_w: f64,
    status: Option<String>,
    t: f64,
    /// Grid import, grid export, PV and load energy since start, Wh (the meters' counters).
    energy_wh: [f64; 4],
}

impl Sim {
    /// One control cycle: the gateway's loop as `melv gateway` runs it, with twins for units.
    fn cycle(&mut self, device: &SharedDevice, clock: &Clock, live: bool) -> Result<()> {
        let t = self.t;
        let env = self.env;
        let statuses: Vec<BatteryStatus> = self.units.iter().map(|u| u.status()).collect();
        let battery_w: f64 = statuses.iter().map(|s| s.ac_power_w).sum();
        let inputs = SiteInputs {
            now_s: T0 + t as i64,
            grid_available: true,
            grid_power_w: [self.load_w - self.pv_w - battery_w, 0.0, 0.0],
            grid_v: env.grid.phase_v,
            frequency_hz: env.grid.frequency_hz,
            pv_w: Some(self.pv_w),
            load_w: Some(self.load_w),
            batteries: &statuses,
        };
        let now = clock();
        let (ext, events) = {
            let mut dev = lock(device);
            dev.expire(now)?;
            (dev.control(), dev.take_events())
        };
        for (_, ev) in &events {
            println!("sim_server: command {}", serde_json::to_string(ev)?);
            if let Some(req) = melv_modbus::ems::unit_request(ev) {
                self.units.iter_mut().for_each(|u| u.request(t, req));
            }
        }
        let applied = self.bridge.step(&mut self.ctrl, &inputs, &ext);
        if let Some(e) = &applied.refused {
            println!("sim_server: refused by the EMS: {e}");
        }
        let decision = self.ctrl.decision().clone();
        for (u, cmd) in self.units.iter_mut().zip(&decision.commands) {
            u.command(t, cmd);
            u.step(t, DT_S, &env);
        }
        self.t += DT_S;
        let after: Vec<BatteryStatus> = self.units.iter().map(|u| u.status()).collect();
        // The site balance after the cycle: what the grid meter measures (+ import).
        let grid_w = self.load_w - self.pv_w - after.iter().map(|s| s.ac_power_w).sum::<f64>();
        let wh = DT_S / 3600.0;
        let e = &mut self.energy_wh;
        e[0] += grid_w.max(0.0) * wh;
        e[1] += (-grid_w).max(0.0) * wh;
        e[2] += self.pv_w * wh;
        e[3] += self.load_w * wh;
        let mut snap =
            SiteSnapshot::from_cycle(&after, &inputs, &decision, self.ctrl.settings().reserve_soc);
        snap.meters.grid_w = [grid_w, f64::NAN, f64::NAN];
        snap.meters.grid_import_wh = e[0];
        snap.meters.grid_export_wh = e[1];
        snap.meters.pv_wh = e[2];
        snap.meters.load_wh = e[3];
        snap.settings = Some(self.bridge.owner_settings());
        let owner = {
            let mut dev = lock(device);
            dev.update(clock(), &snap)?;
            dev.owner()
        };
        if let (Some(path), true) = (&self.status, live) {
            let soc = after.iter().map(|s| s.soc * s.soh).sum::<f64>()
                / after.iter().map(|s| s.soh).sum::<f64>();
            let status = serde_json::json!({
                "t": self.t,
                "soc": soc,
                "battery_w": after.iter().map(|s| s.ac_power_w).sum::<f64>(),
                "grid_w": grid_w,
                "pv_w": self.pv_w,
                "load_w": self.load_w,
                "grid_import_wh": self.energy_wh[0],
                "grid_export_wh": self.energy_wh[1],
                "owner": owner,
                "commanded_w": decision.battery_w,
                "reason": decision.reason.as_str(),
                "reason_code": melv_modbus::values::reason_code(decision.reason),
                "dispatched_w": applied.dispatched_w,
                "external": ext.is_active(),
                "control": ext,
            });
            // Write then rename, so a reader never sees half a file.
            let tmp = format!("{path}.tmp");
            std::fs::write(&tmp, status.to_string())?;
            std::fs::rename(&tmp, path)?;
        }
        Ok(())
    }
}
