//! A simulated year of one plant at 1 s steps (31.5 million steps), for profiling and timing:
//! `CARGO_TARGET_DIR=/work/target-model cargo run --release -p melv-model --example year_run [days]`.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "an example program: it reads files and measures its own run time"
)]

use melv_core::io::Actuation;
use melv_core::Phases;
use melv_model::{Environment, Plant, PlantConfig};

fn main() {
    let days: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(365.0);
    let env = Environment::nominal(Phases::Single);
    let mut plant = Plant::new(&PlantConfig::default());
    let steps = (days * 86_400.0) as u64;
    let mut acc = 0.0;
    let t0 = std::time::Instant::now();
    for k in 0..steps {
        // A daily cycle: charge 2 kW 09-13 h, discharge 1.5 kW 18-23 h, idle otherwise, with a crude
        // stand-in for the firmware's voltage cut-offs (this example runs the plant alone).
        let h = (k % 86_400) / 3600;
        let (lo, hi) = (plant.cell_v_min_max().0, plant.cell_v_min_max().1);
        let p = match h {
            9..=12 if hi < 3.55 => -2000.0,
            18..=22 if lo > 2.9 => 1500.0,
            _ => 0.0,
        };
        let act = Actuation {
            power_enabled: true,
            ac_power_w: p,
            fan_duty: 0.3,
            ..Default::default()
        };
        plant.step(1.0, &act, &env);
        acc += plant.measure(&env).pack_v;
    }
    let el = t0.elapsed().as_secs_f64();
    let t = plant.truth();
    println!(
        "{steps} steps in {el:.2} s: {:.1} ns/step; soc {:.3} soh {:.4} efc {:.1} (checksum {acc:.0})",
        el * 1e9 / steps as f64,
        t.pack_soc,
        t.soh,
        t.efc
    );
    println!("{:?}", plant.energy());
}
