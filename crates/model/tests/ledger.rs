//! The energy accounts close (ARCHITECTURE.md 3) whatever the plant is asked to do: random actuations,
//! step lengths, ambient temperatures, grid states and faults.

use melv_core::io::Actuation;
use melv_core::Phases;
use melv_model::{Environment, GridState, Plant, PlantConfig};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Step {
    dt_s: f64,
    act: Actuation,
    ambient_c: f64,
    grid_present: bool,
    micro_short: bool,
}

fn step_strategy() -> impl Strategy<Value = Step> {
    (
        prop::sample::select(vec![0.1, 1.0, 7.0, 60.0, 900.0, 3600.0]),
        any::<bool>(),
        -7000.0..7000.0f64,
        -5000.0..5000.0f64,
        any::<bool>(),
        0.0..1.0f64,
        any::<bool>(),
        any::<u8>(),
        -20.0..55.0f64,
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(dt_s, en, p, q, gf, fan, heat, mask, amb, grid, ms)| Step {
                dt_s,
                act: Actuation {
                    power_enabled: en,
                    ac_power_w: p,
                    reactive_power_var: q,
                    grid_forming: gf,
                    fan_duty: fan,
                    heater_on: heat,
                    balance_mask: mask,
                },
                ambient_c: amb,
                grid_present: grid,
                micro_short: ms,
            },
        )
}

fn check(seed: u64, three_phase: bool, soc: f64, steps: &[Step]) {
    let phases = if three_phase {
        Phases::Three
    } else {
        Phases::Single
    };
    let mut plant = Plant::new(&PlantConfig {
        seed,
        phases,
        initial_soc: soc,
        ..PlantConfig::default()
    });
    let mut throughput = 1.0;
    for s in steps {
        let grid = if s.grid_present {
            GridState::nominal(phases)
        } else {
            GridState::outage(phases)
        };
        let env = Environment {
            ambient_c: s.ambient_c,
            grid,
        };
        plant.faults_mut().micro_short = if s.micro_short { Some((1, 5.0)) } else { None };
        plant.step(s.dt_s, &s.act, &env);
        let _ = plant.measure(&env);
        let l = plant.energy();
        throughput =
            1.0 + l.ac_import_wh() + l.ac_out_wh + l.dc_in_wh + l.dc_out_wh + l.total_losses_wh();
        let tol = 1e-9 * throughput;
        assert!(
            l.ac_balance_error_wh().abs() <= tol,
            "seed {seed}: AC {l:?}"
        );
        assert!(
            l.dc_balance_error_wh().abs() <= tol,
            "seed {seed}: DC {l:?}"
        );
        for x in [
            l.ac_in_wh,
            l.ac_out_wh,
            l.aux_from_ac_wh,
            l.dc_in_wh,
            l.dc_out_wh,
            l.loss_cell_wh,
            l.loss_inverter_wh,
        ] {
            assert!(x >= 0.0 && x.is_finite(), "seed {seed}: {l:?}");
        }
    }
    assert!(throughput.is_finite());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn ledger_closes_over_random_actions(
        seed in any::<u64>(),
        three_phase in any::<bool>(),
        soc in 0.0..1.0f64,
        steps in prop::collection::vec(step_strategy(), 1..24),
    ) {
        check(seed, three_phase, soc, &steps);
    }
}

#[test]
fn ledger_closes_in_a_plain_cycle() {
    let s = |p: f64, dt: f64| Step {
        dt_s: dt,
        act: Actuation {
            power_enabled: true,
            ac_power_w: p,
            fan_duty: 0.5,
            balance_mask: 0b1010_0101,
            ..Default::default()
        },
        ambient_c: 25.0,
        grid_present: true,
        micro_short: false,
    };
    check(
        3,
        false,
        0.5,
        &[
            s(-3750.0, 600.0),
            s(0.0, 60.0),
            s(4500.0, 900.0),
            s(5000.0, 5.0),
        ],
    );
}
