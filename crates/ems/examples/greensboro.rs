//! The controller alone against NREL PySAM's reference on the Greensboro year (data/README.md):
//! one 7 kWh unit in self-consumption, driven hour by hour, with an ideal energy-bucket battery
//! (90 % AC round trip split evenly between charge and discharge, the datasheet's 3.75 / 4.5 kW
//! limits, SOC from 0 to 100 %). It isolates the dispatch logic from the physics twin: the
//! simulator (`melv simulate`) runs the same controller against the full unit model.
//!
//! Run: `cargo run --release -p melv-ems --example greensboro [CSV]`.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "an example program: it reads the profile from disk"
)]

use melv_core::status::BatteryStatus;
use melv_core::{AlertSet, Country, Lifecycle, Phases, SocLed, StatusLed};
use melv_ems::{Controller, Reason, Settings, SiteConfig, SiteInputs};
use std::collections::BTreeMap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let default = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/greensboro-h0-hourly-2019.csv"
    );
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| default.to_string());
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    // Timestamps are local standard time, UTC-5 (data/README.md).
    let tz: chrono_tz::Tz = "Etc/GMT+5".parse().map_err(|_| "time zone")?;
    let site = SiteConfig::new(Phases::Single, Country::Generic, 1, tz);
    let calib_days: f64 = std::env::var("CALIBRATION_DAYS").map_or(Ok(30.0), |s| s.parse())?;
    let settings = Settings {
        calibration_interval_days: calib_days,
        ..Settings::self_consumption()
    };
    let mut ctl = Controller::new(site, settings)?;

    let eta = 0.9f64.sqrt(); // manual 7.1: 90 % AC round trip
    let cap_wh = 7_000.0; // manual 7.1: 7 kWh
    let mut soc = 0.5;
    let (mut imp, mut exp, mut ch, mut dis, mut pv_sum, mut load_sum) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let mut reasons: BTreeMap<Reason, u32> = BTreeMap::new();
    let t0 = 1_546_318_800i64; // 2019-01-01T00:00:00-05:00
    for (k, line) in text.lines().skip(1).enumerate() {
        let mut f = line.split(',');
        let _ts = f.next();
        let load_w: f64 = f.next().ok_or("load column")?.parse::<f64>()? * 1000.0;
        let pv_w: f64 = f.next().ok_or("pv column")?.parse::<f64>()? * 1000.0;
        let b = BatteryStatus {
            soc,
            soh: 1.0,
            pack_v: 26.4,
            pack_current_a: 0.0,
            ac_power_w: 0.0,
            reactive_power_var: 0.0,
            min_cell_v: 3.3,
            max_cell_v: 3.3,
            min_temp_c: 25.0,
            max_temp_c: 25.0,
            // What a BMS reports: no more charge when full, no discharge when empty, and the
            // hour's remaining room (the bucket cannot take more than fills it).
            max_charge_w: 3_750.0f64.min((1.0 - soc) * cap_wh / eta),
            max_discharge_w: 4_500.0f64.min(soc * cap_wh * eta),
            alerts: AlertSet::EMPTY,
            lifecycle: Lifecycle::Active,
            soc_led: SocLed::SolidBlue {
                percent: (soc * 100.0) as u8,
            },
            status_led: StatusLed::Dim,
            ac_charged_wh: 0.0,
            ac_discharged_wh: 0.0,
        };
        let batteries = [b];
        let d = ctl.step(&SiteInputs {
            now_s: t0 + 3_600 * k as i64,
            grid_available: true,
            grid_power_w: [0.0; 3],
            grid_v: [230.0; 3],
            frequency_hz: 50.0,
            pv_w: Some(pv_w),
            load_w: Some(load_w),
            batteries: &batteries,
        });
        *reasons.entry(d.reason).or_default() += 1;
        let p = d.commands[0].active_power_w; // one hour at p watts = p Wh
        if p > 0.0 {
            dis += p;
            soc -= p / eta / cap_wh;
        } else {
            ch -= p;
            soc += -p * eta / cap_wh;
        }
        soc = soc.clamp(0.0, 1.0);
        let grid = load_w - pv_w - p;
        if grid > 0.0 {
            imp += grid;
        } else {
            exp -= grid;
        }
        pv_sum += pv_w;
        load_sum += load_w;
    }
    let kwh = |wh: f64| wh / 1000.0;
    println!("controller + ideal bucket, hourly, calibration every {calib_days} days");
    println!("pv {:.1} kWh, load {:.1} kWh", kwh(pv_sum), kwh(load_sum));
    println!("grid import {:.1} kWh (PySAM 351.8)", kwh(imp));
    println!("grid export {:.1} kWh (PySAM 2806.5)", kwh(exp));
    println!("battery AC charge {:.1} kWh (PySAM 1821.3)", kwh(ch));
    println!("battery AC discharge {:.1} kWh (PySAM 1667.2)", kwh(dis));
    println!(
        "equivalent full cycles {:.1} (PySAM 240.2; discharge / 7 kWh DC)",
        dis / eta / cap_wh
    );
    println!(
        "self-sufficiency {:.1} % (PySAM 91.2)",
        100.0 * (1.0 - imp / load_sum)
    );
    println!(
        "self-consumption {:.1} % (PySAM 57.5)",
        100.0 * (1.0 - exp / pv_sum)
    );
    let balance = pv_sum + imp + dis - load_sum - exp - ch;
    println!("AC balance pv + import + discharge - load - export - charge = {balance:.3} Wh");
    for (r, h) in reasons {
        println!("  {:<28} {h:>5} h", r.as_str());
    }
    Ok(())
}
