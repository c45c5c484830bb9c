//! Cost of one control cycle. A year at 1 s steps is 31.5 M cycles, so the target is well under
//! 100 ns per step for self-consumption with one battery.
//!
//! Run: `cargo bench -p melv-ems --bench controller`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use melv_core::status::BatteryStatus;
use melv_core::{AlertSet, Country, Lifecycle, Phases, SocLed, StatusLed, WorkingMode};
use melv_ems::{Controller, PeriodKind, Settings, SiteConfig, SiteInputs, TouPeriod};

fn battery(soc: f64) -> BatteryStatus {
    BatteryStatus {
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
        max_charge_w: 3_750.0,
        max_discharge_w: 4_500.0,
        alerts: AlertSet::EMPTY,
        lifecycle: Lifecycle::Active,
        soc_led: SocLed::SolidBlue { percent: 50 },
        status_led: StatusLed::Dim,
        ac_charged_wh: 0.0,
        ac_discharged_wh: 0.0,
    }
}

/// A synthetic day at 1 s steps, precomputed so that the bench times the controller alone: the net
/// load swings between deficit (night) and PV surplus (midday).
fn profile(steps: i64) -> Vec<(f64, f64)> {
    (0..steps)
        .map(|i| {
            let x = (i * 8 % 86_400) as f64 / 86_400.0 * std::f64::consts::TAU;
            ((3_000.0 * x.sin()).max(0.0), 600.0 + 200.0 * x.cos())
        })
        .collect()
}

fn run(c: &mut Controller, batteries: &[BatteryStatus], profile: &[(f64, f64)], t0: i64) -> f64 {
    let mut acc = 0.0;
    for (i, &(pv, load)) in profile.iter().enumerate() {
        let inputs = SiteInputs {
            now_s: t0 + i as i64,
            grid_available: true,
            grid_power_w: [0.0; 3],
            grid_v: [230.0; 3],
            frequency_hz: 50.0,
            pv_w: Some(pv),
            load_w: Some(load),
            batteries,
        };
        acc += c.step(black_box(&inputs)).battery_w;
    }
    acc
}

fn bench(cr: &mut Criterion) {
    let prof = profile(10_000);
    let t0 = 1_704_067_200; // 2024-01-01T00:00:00Z
    let one = [battery(0.5)];
    let site = SiteConfig::new(
        Phases::Single,
        Country::Germany,
        1,
        chrono_tz::Europe::Berlin,
    );
    let mut sc = Controller::new(site.clone(), Settings::default()).unwrap();
    cr.bench_function("self_consumption_1_battery_10k_steps", |b| {
        b.iter(|| run(&mut sc, &one, &prof, t0))
    });

    let mut tou_settings = Settings {
        mode: WorkingMode::TimeOfUse,
        ..Default::default()
    };
    let p = |s: &str, e: &str, kind| TouPeriod {
        start: s.parse().unwrap(),
        end: e.parse().unwrap(),
        kind,
    };
    tou_settings.tou.weekday = vec![
        p("22:00", "06:00", PeriodKind::Charge),
        p("17:00", "21:00", PeriodKind::Discharge),
    ];
    tou_settings.tou.weekend = vec![p("17:00", "21:00", PeriodKind::Discharge)];
    let mut tou = Controller::new(site, tou_settings).unwrap();
    cr.bench_function("time_of_use_1_battery_10k_steps", |b| {
        b.iter(|| run(&mut tou, &one, &prof, t0))
    });

    let six = [0.2, 0.3, 0.5, 0.6, 0.8, 0.9].map(battery);
    let site6 = SiteConfig::new(
        Phases::Three,
        Country::Germany,
        6,
        chrono_tz::Europe::Berlin,
    );
    let mut gs = Controller::new(
        site6,
        Settings {
            mode: WorkingMode::GridServices,
            ..Default::default()
        },
    )
    .unwrap();
    cr.bench_function("grid_services_6_batteries_10k_steps", |b| {
        b.iter(|| run(&mut gs, &six, &prof, t0))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
