//! `melv cycle-test`: a full charge/discharge cycle of one simulated MS-7K-U through its firmware.

use anyhow::Result;
use melv_unit::cycle_test::{self, CycleTestOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Power for charge and discharge, kW (default: 3.75 kVA charge, 4.5 kVA discharge, manual 7.1).
    #[arg(long, allow_negative_numbers = true)]
    power_kw: Option<f64>,
    /// Ambient temperature, °C (operating range -20..55, manual 7.1).
    #[arg(long, default_value_t = 25.0, allow_negative_numbers = true)]
    ambient_c: f64,
    /// Rest between charge and discharge, minutes.
    #[arg(long, default_value_t = 60.0)]
    rest_min: f64,
    /// Seed of the simulated unit (cell spread and sensor noise).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let opts = CycleTestOptions {
        power_w: args.power_kw.map(|kw| kw * 1000.0),
        ambient_c: args.ambient_c,
        rest_s: args.rest_min * 60.0,
        seed: args.seed,
        ..CycleTestOptions::default()
    };
    let r = cycle_test::run(&opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "MS-7K-U cycle test at {:.1} °C ambient (charge {:.2} kW, discharge {:.2} kW)",
        r.ambient_c,
        r.charge_power_w / 1e3,
        r.discharge_power_w / 1e3
    );
    println!(
        "  usable energy (AC)       {:>8.3} kWh   datasheet 7.0 kWh (manual 7.1)",
        r.usable_energy_kwh
    );
    println!(
        "  DC round-trip efficiency {:>8.3}       datasheet 0.96",
        r.dc_round_trip_efficiency
    );
    println!(
        "  AC round-trip efficiency {:>8.3}       datasheet 0.90",
        r.ac_round_trip_efficiency
    );
    println!(
        "  charge time              {:>8.2} h     (of which {:.2} h before charging began: reconnection wait, and heating when cold)",
        r.charge_hours, r.charge_wait_hours
    );
    println!("  discharge time           {:>8.2} h", r.discharge_hours);
    println!("  heater energy            {:>8.3} kWh", r.heater_kwh);
    println!(
        "  SOC estimate after charge / discharge  {:.1} % / {:.1} %",
        r.soc_after_charge * 100.0,
        r.soc_after_discharge * 100.0
    );
    if r.alerts.is_empty() {
        println!("  alerts                   none");
    } else {
        let list: Vec<String> = r.alerts.iter().map(|c| c.to_string()).collect();
        println!(
            "  alerts                   {} (see `melv alerts CODE`)",
            list.join(", ")
        );
    }
    Ok(())
}
