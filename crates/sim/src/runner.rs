//! The time-stepped run of one site: environment, gateway controller, battery units, site balance.
//!
//! Each step `[t, t + dt)`:
//! 1. the environment: the profile's mean load and PV over the step, the ambient temperature, the
//!    grid's state from the profile and the event schedule; hardware faults switched on or off;
//! 2. the gateway ([`melv_ems::Controller`]) decides from what a gateway would see: the grid meter of
//!    the previous step, PV and load, and each unit's *reported* status;
//! 3. each [`melv_unit::BatteryUnit`] takes its command and advances its firmware and physics by dt;
//! 4. the site balance: the units' AC energy over the step comes from their ledgers, and
//!    `grid = load - pv_used - battery`; off grid the residual is load not supplied or PV curtailed.
//!
//! With [`run_over_can`], steps 2 and 3 talk through the CAN link instead of function calls: the
//! gateway decides from the statuses it decoded off the bus, its commands cross the bus as frames
//! (real codec, heartbeats with alive counters and CRC) and reach each unit's firmware as the battery
//! node delivers them, and the gateway's supervision raises 63 for a silent unit. Every frame can be
//! logged in candump format. The fast path ([`run`]) and the CAN path must give the same KPIs within
//! the effect of the one-step lag a bus adds; a test holds them to it.
//!
//! Determinism: the only randomness is inside the units, seeded from the scenario's seed and the
//! unit's index; the same scenario gives the same numbers, bit for bit.

use crate::events::{Event, EventKind};
use crate::kpi::{
    count_alerts, Accumulator, AlertEdge, Connection, Kpis, LossBreakdown, ReasonHours, Series,
    StepFlows,
};
use crate::report::SimResult;
use crate::scenario::{AmbientSource, Scenario};
use melv_can::{BatteryEvent, BatteryIdentity, SimLink, StepOutput, Supervision, UnitIndex};
use melv_core::status::{BatteryCommand, BatteryStatus};
use melv_core::{AlertCode, AlertSet, Phases};
use melv_ems::{Controller, Reason, SiteInputs};
use melv_model::{EnergyLedger, Environment, Faults, GridState};
use melv_unit::{BatteryUnit, UnitConfig};

/// Why a run could not go on: the controller refused the scenario (it validates again when built),
/// or the CAN path failed (an encoding error, or the CAN log could not be written).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{file}: {source}")]
    Controller {
        file: String,
        #[source]
        source: melv_ems::EmsError,
    },
    #[error("{file}: CAN link: {source}")]
    Can {
        file: String,
        #[source]
        source: melv_can::link::LinkError,
    },
}

/// The CAN identities of a scenario's units: serial numbers derived from the seed and slot.
pub fn can_identities(sc: &Scenario) -> Vec<BatteryIdentity> {
    (0..sc.site.batteries)
        .map(|i| BatteryIdentity {
            serial: (unit_seed(sc.seed, i) >> 32) as u32,
            firmware: (1, 0, 0),
        })
        .collect()
}

/// Run the scenario with every battery-gateway message through the CAN codec on `link` (built with
/// [`can_identities`]; give it a candump writer with `SimLink::set_log` to keep the frames).
pub fn run_over_can<W: std::io::Write>(
    sc: &Scenario,
    link: &mut SimLink<W>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<SimResult, RunError> {
    run_inner(sc, Some(link), progress)
}

/// Seed of unit `i`: the scenario seed mixed with the index (SplitMix64's increment, Steele et al.
/// 2014), so units differ and the whole run still replays from one number.
pub fn unit_seed(seed: u64, i: usize) -> u64 {
    seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1))
}

/// Switch one kind of hardware fault on a unit's fault set.
/// Switch a unit hardware fault of `e` on or off in `f` (fan, heater, micro-short); other kinds
/// are not unit hardware and change nothing here. The live gateway applies a site file's events
/// with it too.
pub fn set_fault(f: &mut Faults, e: &Event, on: bool) {
    match e.kind {
        EventKind::FanFailure => f.fan_failed = on,
        EventKind::HeaterFailure => f.heater_failed = on,
        EventKind::MicroShort => f.micro_short = on.then_some((e.cell, e.value)),
        _ => {}
    }
}

/// Run the scenario. `progress(done, total)` is called about a thousand times over the run.
/// Hand one CAN step's output to its receivers: each battery's events to that unit's firmware
/// (commands with their heartbeat, one-shot requests), and the gateway's comm-loss verdicts to the
/// controller (code 63). The simulator and the live gateway (`melv-gateway`) both use it.
pub fn deliver(out: &StepOutput, now_s: f64, units: &mut [BatteryUnit], ctrl: &mut Controller) {
    deliver_supervision(&out.supervision, ctrl);
    for (u, events) in units.iter_mut().zip(&out.battery_events) {
        for e in events {
            match *e {
                BatteryEvent::Command(ref c) => u.command(now_s, c),
                BatteryEvent::Request(r) => u.request(now_s, r),
                // The twin's firmware keeps no wall clock of its own.
                BatteryEvent::Time { .. } => {}
            }
        }
    }
}

/// Hand the CAN gateway node's comm-loss verdicts to the controller (code 63). The live gateway
/// with batteries on a real bus has only these to deliver.
pub fn deliver_supervision(verdicts: &[Supervision], ctrl: &mut Controller) {
    for s in verdicts {
        match *s {
            Supervision::Lost(u) => ctrl.handle_comm_status(u.slot(), false),
            Supervision::Restored(u) => ctrl.handle_comm_status(u.slot(), true),
        }
    }
}

/// A scenario with CAN events (`can_cut`) always runs through the codec: a cut cable only means
/// something on a bus.
pub fn run(sc: &Scenario, progress: &mut dyn FnMut(u64, u64)) -> Result<SimResult, RunError> {
    if sc.events.iter().any(|e| e.kind == EventKind::CanCut) {
        let mut link =
            SimLink::<std::io::Sink>::new(&can_identities(sc), sc.seed).map_err(|source| {
                RunError::Can {
                    file: sc.file.clone(),
                    source,
                }
            })?;
        return run_inner(sc, Some(&mut link), progress);
    }
    run_inner::<std::io::Sink>(sc, None, progress)
}

fn run_inner<W: std::io::Write>(
    sc: &Scenario,
    mut link: Option<&mut SimLink<W>>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<SimResult, RunError> {
    let can_err = |source| RunError::Can {
        file: sc.file.clone(),
        source,
    };
    let wall = std::time::Instant::now();
    let n_units = sc.site.batteries;
    let phases = sc.site.phases;
    let dt = sc.step_s;
    let total = sc.steps();
    let ambient0 = match sc.ambient {
        AmbientSource::Constant(c) => c,
        AmbientSource::Profile => sc.profile.ambient_c.as_ref().map_or(20.0, |v| v[0]),
    };
    let mut units: Vec<BatteryUnit> = (0..n_units)
        .map(|i| {
            let cfg = UnitConfig {
                seed: unit_seed(sc.seed, i),
                phases,
                country: sc.site.country,
                initial_soc: sc.initial_soc,
                initial_temp_c: ambient0,
                activated: true,
                sensor_noise: sc.sensor_noise,
                ..UnitConfig::default()
            };
            BatteryUnit::new(&cfg, 0.0)
        })
        .collect();
    let mut ctrl = Controller::new(sc.site.clone(), sc.settings.clone()).map_err(|source| {
        RunError::Controller {
            file: sc.file.clone(),
            source,
        }
    })?;
    let mut prices = sc.prices.clone();
    let mut statuses: Vec<BatteryStatus> = units.iter().map(|u| u.status()).collect();
    // What the gateway knows of each unit: the units' own reports on the fast path, what it decoded
    // off the bus on the CAN path.
    let mut received = statuses.clone();
    if let Some(link) = link.as_deref_mut() {
        // Prime the bus: the gateway hears every battery once before its first decision, as a real
        // gateway waits for the first reports after boot.
        let idle = vec![BatteryCommand::default(); n_units];
        let start_ms = Some(sc.start_utc_s.max(0) as u64 * 1000);
        link.step(0.0, start_ms, &idle, &[], &statuses)
            .map_err(can_err)?;
    }
    let mut prev_alerts: Vec<AlertSet> = statuses.iter().map(|s| s.alerts).collect();
    let mut prev_gw_alerts = AlertSet::default();
    let mut prev_ac: Vec<(f64, f64)> = units
        .iter()
        .map(|u| (u.energy().ac_in_wh, u.energy().ac_out_wh))
        .collect();
    let mut fault_on: Vec<Vec<bool>> = vec![vec![false; n_units]; sc.events.len()];
    let mut edges: Vec<AlertEdge> = Vec::new();
    let mut acc = Accumulator::default();
    let mut series = Series::new(sc.start_utc_s, dt, total as f64 * dt);
    let mut grid_prev_w = 0.0;
    let mut reason_s = [0.0f64; Reason::ALL.len()];
    let nominal = GridState::nominal(phases);
    let report_every = (total / 1000).max(1);
    // A countdown rather than `k % report_every`: an integer division per step is measurable at 1 s.
    let mut next_report = 0u64;

    for k in 0..total {
        let now = k as f64 * dt;
        let t = sc.start_utc_s as f64 + now;
        let t_i = t as i64;
        let (load_w, pv_w) = sc.profile.mean_w(t, t + dt);
        let row = sc.profile.row(t);

        // 1. Environment.
        let mut grid = nominal;
        if let Some(v) = &sc.profile.grid_v {
            for p in 0..phases.count() {
                grid.phase_v[p] = v[row];
            }
        }
        if let Some(f) = &sc.profile.grid_hz {
            grid.frequency_hz = f[row];
        }
        let mut ambient_c = match sc.ambient {
            AmbientSource::Constant(c) => c,
            AmbientSource::Profile => sc.profile.ambient_c.as_ref().map_or(ambient0, |v| v[row]),
        };
        for (j, e) in sc.events.iter().enumerate() {
            let on = e.active(t_i);
            match e.kind {
                EventKind::GridOutage if on => grid = GridState::outage(phases),
                EventKind::Voltage if on && grid.present => {
                    for p in 0..phases.count() {
                        grid.phase_v[p] = e.value;
                    }
                }
                EventKind::Frequency if on && grid.present => grid.frequency_hz = e.value,
                EventKind::Ambient if on => ambient_c = e.value,
                EventKind::CanCut => {
                    for (i, state) in fault_on[j].iter_mut().enumerate() {
                        if e.battery.is_none_or(|b| b == i) && *state != on {
                            *state = on;
                            if let (Some(link), Some(unit)) =
                                (link.as_deref_mut(), UnitIndex::new(i as u8 + 1).ok())
                            {
                                link.set_cut(unit, on);
                            }
                        }
                    }
                }
                kind if kind.is_unit_fault() => {
                    for (i, u) in units.iter_mut().enumerate() {
                        if e.battery.is_none_or(|b| b == i) && fault_on[j][i] != on {
                            fault_on[j][i] = on;
                            set_fault(u.faults_mut(), e, on);
                        }
                    }
                }
                _ => {}
            }
        }
        let env = Environment { ambient_c, grid };

        // 2. Gateway.
        let mut meter = [0.0; 3];
        match phases {
            Phases::Single => meter[0] = grid_prev_w,
            // The house and the units are balanced across phases (manual 4.6), so the meter reads a
            // third of the site's power on each.
            Phases::Three => meter = [grid_prev_w / 3.0; 3],
        }
        let inputs = SiteInputs {
            now_s: t_i,
            grid_available: grid.present,
            grid_power_w: meter,
            grid_v: grid.phase_v,
            frequency_hz: grid.frequency_hz,
            pv_w: Some(pv_w),
            load_w: Some(load_w),
            batteries: &received,
        };
        let d = ctrl.step(&inputs);
        let island = d.island;
        let pv_limit = d.pv_curtail_to_w;
        // 63 is recorded per battery from the supervision (CAN path); the rest of the gateway's own
        // alerts belong to the site.
        let mut gw_alerts = d.alerts;
        gw_alerts.remove(AlertCode::COMMUNICATION_LOST);
        reason_s[d.reason.index()] += dt;

        // 3. Units: the commands reach them directly, or as the battery nodes deliver them.
        match link.as_deref_mut() {
            None => {
                for (u, c) in units.iter_mut().zip(&d.commands) {
                    u.command(now, c);
                }
            }
            Some(link) => {
                let unix_ms = Some((t.max(0.0) * 1000.0) as u64);
                let out = link
                    .step(now, unix_ms, &d.commands[..n_units], &[], &statuses)
                    .map_err(can_err)?;
                deliver(&out, now, &mut units, &mut ctrl);
                // Code 63 is the gateway's verdict on one battery: recorded with that battery.
                for s in &out.supervision {
                    let (u, online) = match *s {
                        Supervision::Lost(u) => (u, false),
                        Supervision::Restored(u) => (u, true),
                    };
                    edges.push(AlertEdge {
                        t_utc_s: t_i,
                        unit: Some(u.slot()),
                        code: AlertCode::COMMUNICATION_LOST.get(),
                        raised: !online,
                    });
                }
            }
        }
        let (mut charge_w, mut discharge_w) = (0.0, 0.0);
        for (i, u) in units.iter_mut().enumerate() {
            u.step(now, dt, &env);
            statuses[i] = u.status();
            let l = u.energy();
            charge_w += (l.ac_in_wh - prev_ac[i].0) * 3600.0 / dt;
            discharge_w += (l.ac_out_wh - prev_ac[i].1) * 3600.0 / dt;
            prev_ac[i] = (l.ac_in_wh, l.ac_out_wh);
            let a = statuses[i].alerts;
            if a != prev_alerts[i] {
                push_edges(&mut edges, t_i, Some(i), prev_alerts[i], a);
                prev_alerts[i] = a;
            }
        }
        match link.as_deref() {
            None => received.copy_from_slice(&statuses),
            Some(link) => {
                for (i, r) in received.iter_mut().enumerate() {
                    let unit = UnitIndex::new(i as u8 + 1)
                        .expect("at most 6 units, checked by the scenario");
                    // A unit never heard keeps its last known report; the supervision says 63.
                    if let Some(s) = link.gateway().status(unit) {
                        *r = s;
                    }
                }
            }
        }
        if gw_alerts != prev_gw_alerts {
            push_edges(&mut edges, t_i, None, prev_gw_alerts, gw_alerts);
            prev_gw_alerts = gw_alerts;
        }

        // 4. Site balance.
        let conn = if grid.present && !island {
            Connection::OnGrid
        } else {
            Connection::OffGrid
        };
        let mut f = StepFlows::balance(dt, load_w, pv_w, pv_limit, charge_w, discharge_w, conn);
        grid_prev_w = f.grid_w;
        let (buy, sell) = prices.at(t_i);
        f.import_price = buy;
        f.export_price = sell;
        f.soc = statuses.iter().map(|s| s.soc).sum::<f64>() / n_units as f64;
        acc.add(&f, !grid.present);
        series.add(t, &f, island || !grid.present);
        if k == next_report {
            next_report += report_every;
            progress(k, total);
        }
    }
    series.finish();
    progress(total, total);
    let reasons = Reason::ALL
        .iter()
        .zip(reason_s)
        .filter(|(_, s)| *s > 0.0)
        .map(|(r, s)| ReasonHours {
            reason: r.as_str().to_string(),
            hours: s / 3600.0,
        })
        .collect();
    Ok(finish(
        sc,
        &units,
        acc,
        series,
        edges,
        reasons,
        wall.elapsed().as_secs_f64(),
    ))
}

fn push_edges(
    edges: &mut Vec<AlertEdge>,
    t: i64,
    unit: Option<usize>,
    before: AlertSet,
    after: AlertSet,
) {
    for c in after.iter().filter(|c| !before.contains(*c)) {
        edges.push(AlertEdge {
            t_utc_s: t,
            unit,
            code: c.get(),
            raised: true,
        });
    }
    for c in before.iter().filter(|c| !after.contains(*c)) {
        edges.push(AlertEdge {
            t_utc_s: t,
            unit,
            code: c.get(),
            raised: false,
        });
    }
}

fn finish(
    sc: &Scenario,
    units: &[BatteryUnit],
    acc: Accumulator,
    series: Series,
    edges: Vec<AlertEdge>,
    reasons: Vec<ReasonHours>,
    wall_s: f64,
) -> SimResult {
    let (sc_ratio, ss, ss0) = acc.ratios();
    let n = units.len() as f64;
    let sum = |f: &dyn Fn(&EnergyLedger) -> f64| {
        units.iter().map(|u| f(u.energy())).sum::<f64>() / 1000.0
    };
    let losses_kwh = sum(&|l| l.total_losses_wh());
    // The whole unit closes: AC in - AC out = stored + losses (both ledger balances together).
    let dc_err = sum(&|l| l.ac_balance_error_wh() + l.dc_balance_error_wh());
    let soh = units.iter().map(|u| u.truth().soh).sum::<f64>() / n;
    let kpis = Kpis {
        pv_kwh: acc.pv_wh / 1000.0,
        load_kwh: acc.load_wh / 1000.0,
        grid_import_kwh: acc.import_wh / 1000.0,
        grid_export_kwh: acc.export_wh / 1000.0,
        battery_charge_kwh: acc.charge_wh / 1000.0,
        battery_discharge_kwh: acc.discharge_wh / 1000.0,
        pv_curtailed_kwh: acc.pv_curtailed_wh / 1000.0,
        load_unserved_kwh: acc.load_unserved_wh / 1000.0,
        self_consumption_ratio: sc_ratio,
        self_sufficiency_ratio: ss,
        self_sufficiency_without_battery: ss0,
        // The cells' charge throughput (in + out) over twice their capacity, the usual definition
        // and the one the ageing model counts; the mean over units.
        equivalent_full_cycles: units.iter().map(|u| u.truth().efc).sum::<f64>() / n,
        soh_end: soh,
        currency: sc.currency.clone(),
        cost_without_battery: acc.cost_without_battery,
        cost_with_battery: acc.cost,
        savings: acc.cost_without_battery - acc.cost,
        alerts: count_alerts(&edges),
        reasons,
        steps: acc.steps,
        step_s: sc.step_s,
        days: acc.steps as f64 * sc.step_s / 86_400.0,
        islanded_hours: acc.islanded_s / 3600.0,
        energy_balance_error_kwh: acc.balance_error_kwh(),
        dc_balance_error_kwh: dc_err,
        battery_losses_kwh: losses_kwh,
        battery_loss_breakdown_kwh: LossBreakdown {
            inverter: sum(&|l| l.loss_inverter_wh),
            cells: sum(&|l| l.loss_cell_wh),
            standby: sum(&|l| l.loss_standby_wh),
            fan: sum(&|l| l.loss_fan_wh),
            heater: sum(&|l| l.loss_heater_wh),
            balancing: sum(&|l| l.loss_bleed_wh),
            self_discharge: sum(&|l| l.loss_self_discharge_wh),
        },
        wall_seconds: wall_s,
    };
    SimResult {
        title: sc.title.clone(),
        kpis,
        series,
        alert_edges: edges,
        display_offset_s: sc.utc_offset_s,
        report_week_day: sc.report_week_day,
    }
}
