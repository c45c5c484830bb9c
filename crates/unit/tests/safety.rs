//! Safety invariants of the whole unit, firmware in control of the twin:
//! - normal cycling for a simulated year raises no alert;
//! - no cell leaves its safe voltage window (2.5..3.65 V, EVE LF280K datasheet limits, the same as the
//!   firmware's 51/50 protections), whatever the gateway asks, at any step length;
//! - the energy accounts close on both sides (ARCHITECTURE.md section 3).
//!
//! Random tests print their seed through proptest's failure persistence and accept it back.

use melv_core::status::BatteryCommand;
use melv_model::Environment;
use melv_unit::{BatteryUnit, UnitConfig};
use proptest::prelude::*;

/// Safe window of an LFP cell, V: EVE LF280K charge limit 3.65 V and discharge cut-off 2.5 V.
const CELL_MIN_V: f64 = 2.50;
const CELL_MAX_V: f64 = 3.65;

#[test]
fn a_year_of_daily_cycling_raises_no_alert() {
    // One full cycle a day (charge at 3 kW in the morning, discharge at 3 kW in the evening), 60 s
    // steps, ambient following the seasons between 5 and 30 °C (the manual's optimum 0-30 °C, 7.1).
    let cfg = UnitConfig {
        seed: 7,
        ..UnitConfig::default()
    };
    let mut env = Environment::nominal(cfg.phases);
    let mut unit = BatteryUnit::new(&cfg, 0.0);
    let dt = 60.0;
    let mut now = 0.0;
    let mut seen = melv_core::AlertSet::EMPTY;
    let (mut vmin, mut vmax) = (f64::INFINITY, f64::NEG_INFINITY);
    while now < 365.0 * 86_400.0 {
        let day = now / 86_400.0;
        env.ambient_c = 17.5 - 12.5 * (2.0 * std::f64::consts::PI * day / 365.0).cos();
        let hour = (now / 3600.0) % 24.0;
        let p = match hour {
            h if (7.0..13.0).contains(&h) => -3000.0,
            h if (17.0..23.0).contains(&h) => 3000.0,
            _ => 0.0,
        };
        unit.command(
            now,
            &BatteryCommand {
                active_power_w: p,
                ..BatteryCommand::default()
            },
        );
        unit.step(now, dt, &env);
        now += dt;
        seen = seen.union(unit.status().alerts);
        let t = unit.truth();
        for v in t.cell_v {
            vmin = vmin.min(v);
            vmax = vmax.max(v);
        }
    }
    let st = unit.status();
    let truth = unit.truth();
    println!(
        "efc {:.0}, soh est {:.3} true {:.3}, cells {vmin:.3}..{vmax:.3} V",
        truth.efc, st.soh, truth.soh
    );
    assert!(
        seen.is_empty(),
        "alerts in a normal year: {:?}",
        seen.iter().collect::<Vec<_>>()
    );
    assert!(
        vmin >= CELL_MIN_V && vmax <= CELL_MAX_V,
        "cells {vmin}..{vmax}"
    );
    // About one full cycle a day, and LFP ageing of a first year (BLAST-Lite: ~97-98 % after one year).
    assert!((300.0..=380.0).contains(&truth.efc), "efc {}", truth.efc);
    assert!((0.95..=0.995).contains(&truth.soh), "soh {}", truth.soh);
    let e = unit.energy();
    assert!(
        e.ac_balance_error_wh().abs() < 1e-6 * e.ac_in_wh.max(1.0),
        "{e:?}"
    );
    assert!(
        e.dc_balance_error_wh().abs() < 1e-6 * e.dc_in_wh.max(1.0),
        "{e:?}"
    );
}

/// One random drive: a list of (hold seconds, requested power W), a step length and a start.
#[derive(Debug, Clone)]
struct Drive {
    seed: u64,
    soc: f64,
    ambient_c: f64,
    dt_s: f64,
    segments: Vec<(f64, f64)>,
}

fn drive() -> impl Strategy<Value = Drive> {
    (
        any::<u64>(),
        0.02f64..0.98,
        -15.0f64..45.0,
        prop_oneof![
            Just(1.0),
            Just(10.0),
            Just(60.0),
            Just(300.0),
            Just(900.0),
            Just(3600.0)
        ],
        prop::collection::vec((60.0f64..20_000.0, -8_000.0f64..8_000.0), 1..12),
    )
        .prop_map(|(seed, soc, ambient_c, dt_s, segments)| Drive {
            seed,
            soc,
            ambient_c,
            dt_s,
            segments,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_cell_leaves_its_window_and_the_accounts_close(d in drive()) {
        let cfg = UnitConfig { seed: d.seed, initial_soc: d.soc, initial_temp_c: d.ambient_c, ..UnitConfig::default() };
        let mut env = Environment::nominal(cfg.phases);
        env.ambient_c = d.ambient_c;
        let mut unit = BatteryUnit::new(&cfg, 0.0);
        let mut now = 0.0;
        for &(hold, p) in &d.segments {
            let end = now + hold;
            while now < end {
                unit.command(now, &BatteryCommand { active_power_w: p, ..BatteryCommand::default() });
                unit.step(now, d.dt_s, &env);
                now += d.dt_s;
                let t = unit.truth();
                for (i, v) in t.cell_v.iter().enumerate() {
                    prop_assert!((CELL_MIN_V..=CELL_MAX_V).contains(v), "cell {i} at {v} V, t {now} s, {:?}", d);
                }
                // Never beyond the reported limits (AC side, 1 W of rounding).
                let st = unit.status();
                let ac = unit.actuation().ac_power_w;
                prop_assert!(ac <= st.max_discharge_w + 1.0 && -ac <= st.max_charge_w + 1.0, "ac {ac} vs {st:?}");
            }
        }
        let e = unit.energy();
        prop_assert!(e.ac_balance_error_wh().abs() < 1e-6 * e.ac_in_wh.max(e.ac_out_wh).max(1.0), "{e:?}");
        prop_assert!(e.dc_balance_error_wh().abs() < 1e-6 * e.dc_in_wh.max(e.dc_out_wh).max(1.0), "{e:?}");
    }
}
