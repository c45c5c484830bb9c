//! The plant: eight cells, the thermal network, the inverter and the auxiliaries, stepped together.
//!
//! Each call to [`Plant::step`] splits `dt_s` into equal electrical sub-steps of at most
//! [`MAX_ELECTRICAL_STEP_S`] (of at most [`thermal::MAX_STEP_S`] while a cell is in thermal runaway,
//! whose heat and internal short follow the cell's temperature second by second).
//! In a sub-step the pack current is constant: it is solved exactly from the DC power the inverter and
//! the auxiliaries draw (`P = I (E - R I)` with the RC pairs' exact exponential response folded into
//! `E` and `R`), clamped by the power stage's hardware limits, then every cell, the ledger and the
//! thermal nodes advance (the thermal network in explicit parts of at most [`thermal::MAX_STEP_S`]
//! under the sub-step's constant heat). Steps of up to 10 s are one sub-step of one thermal part,
//! the same arithmetic as when every sub-step was at most 10 s; why the longer sub-step is within
//! numerical noise is in `docs/model.md` ("Step structure") and the test at the end of this file.
//! Slow quantities (resistance at the present temperature and age, natural self-discharge) are
//! refreshed every [`SLOW_REFRESH_S`]; ageing stress is sampled every [`AGE_SAMPLE_S`] and applied
//! once a day, as BLAST-Lite does.

use crate::ageing::{Ageing, StressorTracker};
use crate::cell::{
    ArrheniusTracker, CellSpread, CELL, SELF_DISCHARGE_25C_PER_DAY, SELF_DISCHARGE_EA_J_MOL, SPREAD,
};
use crate::env::{Environment, Faults};
use crate::inverter::{self, InverterLimits, PeakBudget, LOSSES};
use crate::ledger::EnergyLedger;
use crate::ocv::ocv;
use crate::sensors::Sensors;
use crate::thermal::{self, runaway_decomposition_w, Thermal, ThermalModes};
use crate::{ModelError, PlantConfig};
use melv_core::io::Actuation;
use melv_core::spec::{CELLS_IN_SERIES, NOMINAL_CAPACITY_AH};

mod params;
mod readout;

pub use params::*;
use params::{BLEED_S, RUNAWAY_FUEL_J, RUNAWAY_SHORT_MIN_OHM, RUNAWAY_SHORT_OHM};

const N: usize = CELLS_IN_SERIES;
/// Activation energies of the tracked Arrhenius factors: R0, R1 and R2, self-discharge.
const ARRHENIUS_EA: [f64; 3] = [CELL.ea_r0_j_mol, CELL.ea_rc_j_mol, SELF_DISCHARGE_EA_J_MOL];
/// The physics twin of one MS-7K-U.
#[derive(Debug, Clone)]
pub struct Plant {
    cfg: PlantConfig,
    spread: CellSpread,
    soc: [f64; N],
    v1: [f64; N],
    v2: [f64; N],
    /// Hysteresis state per cell, -1 (discharge branch) ..= +1 (charge branch).
    hyst: [f64; N],
    cap_ah: [f64; N],
    inv_cap_ah: [f64; N],
    /// Resistance multiplier of age and spread, and self-discharge current per unit of the
    /// fraction-per-day rate, A (both change with age only: see `refresh_age`).
    r_grow: [f64; N],
    sd_a_per_fraction: [f64; N],
    r0: [f64; N],
    r1: [f64; N],
    r2: [f64; N],
    /// r0 + r1 (1 - f1) + r2 (1 - f2): the resistance a constant current sees on average over a sub-step.
    r_eff: [f64; N],
    /// Cached per-cell path terms: bleed conductance (from the balance mask), d = 1/(1 + r g),
    /// rd = r d, and the pack's R = sum rd. Updated when the mask, a leak or a resistance changes.
    g_bleed: [f64; N],
    d: [f64; N],
    rd: [f64; N],
    r_pack: f64,
    path_mask: u8,
    leak_key: (Option<(usize, f64)>, Option<usize>),
    i_sd: [f64; N],
    g_leak: [f64; N],
    /// Arrhenius factors of R0, R1/R2 and self-discharge per cell (one `exp` only when a cell's
    /// temperature moved far since the last exact evaluation; see [`ArrheniusTracker`]).
    arrhenius: [ArrheniusTracker<3>; N],
    ageing: [Ageing; N],
    tracker: StressorTracker,
    thermal: Thermal,
    /// The thermal network's modes for the last long sub-step's airflow (see [`LONG_STEP_SOC`]).
    modes: Option<Box<ThermalModes>>,
    faults: Faults,
    ledger: EnergyLedger,
    budget: PeakBudget,
    sensors: Sensors,
    awake: bool,
    // Last sub-step's results (what sensors read).
    cell_v: [f64; N],
    pack_current_a: f64,
    ac_power_w: f64,
    reactive_var: f64,
    heater_w: f64,
    fan_w: f64,
    fan_rpm: f64,
    forming: bool,
    running: bool,
    /// AC is present at the terminals (a grid): the auxiliary supply feeds the auxiliaries from it.
    /// Like the auxiliary supplies of hybrid and AC-coupled inverters (an 85-264 VAC universal-input
    /// flyback on the AC side; SMA Sunny Island and Victron MultiPlus feed their electronics "from AC
    /// when available, from the battery otherwise"), the electronics, fan and heater are fed from the
    /// AC terminals whenever a grid is present there, so the cells do not pay for them; islanded
    /// (grid-forming from its cells) they come from the pack. The supply's own conversion loss is
    /// folded into `STANDBY_W`. Booked as `EnergyLedger::aux_from_ac_wh`.
    aux_from_ac: bool,
    // Caches and timers.
    rc_h: f64,
    rc: [f64; 4],
    /// Longest electrical sub-step, s: [`MAX_ELECTRICAL_STEP_S`]; the unit tests set
    /// [`thermal::MAX_STEP_S`] to reproduce the integration with 10 s sub-steps as the reference.
    max_electrical_s: f64,
    slow_timer_s: f64,
    age_timer_s: f64,
    chunk_timer_s: f64,
    age_abs_current_as: f64,
    runaway_fuel_j: f64,
    time_s: f64,
}

impl Plant {
    /// A plant built from `cfg`. Out-of-range values are clamped into range (SOC to -0.02..=1.02,
    /// temperature to -40..=80 degC, fade to 0..=0.5); use [`Plant::try_new`] to refuse them instead.
    pub fn new(cfg: &PlantConfig) -> Self {
        let mut c = *cfg;
        c.initial_soc = finite_or(c.initial_soc, 0.5).clamp(-0.02, 1.02);
        c.initial_temp_c = finite_or(c.initial_temp_c, 25.0).clamp(-40.0, 80.0);
        c.initial_capacity_fade = finite_or(c.initial_capacity_fade, 0.0).clamp(0.0, 0.5);
        c.standby_w = finite_or(c.standby_w, STANDBY_W).clamp(0.0, 200.0);
        Self::build(&c)
    }

    /// A plant built from `cfg`, or the first reason `cfg` is not acceptable.
    pub fn try_new(cfg: &PlantConfig) -> Result<Self, ModelError> {
        cfg.validate()?;
        Ok(Self::build(cfg))
    }

    fn build(cfg: &PlantConfig) -> Self {
        let spread = if cfg.cell_spread {
            CellSpread::from_seed(cfg.seed, &SPREAD)
        } else {
            CellSpread::uniform()
        };
        let ageing =
            std::array::from_fn(|i| Ageing::new(cfg.initial_capacity_fade, spread.ageing[i]));
        let mut p = Plant {
            cfg: *cfg,
            spread,
            soc: [cfg.initial_soc; N],
            v1: [0.0; N],
            v2: [0.0; N],
            hyst: [0.0; N],
            cap_ah: [0.0; N],
            inv_cap_ah: [0.0; N],
            r_grow: [0.0; N],
            sd_a_per_fraction: [0.0; N],
            r0: [0.0; N],
            r1: [0.0; N],
            r2: [0.0; N],
            r_eff: [0.0; N],
            g_bleed: [0.0; N],
            d: [1.0; N],
            rd: [0.0; N],
            r_pack: 0.0,
            path_mask: 0,
            leak_key: (None, None),
            i_sd: [0.0; N],
            g_leak: [0.0; N],
            arrhenius: [ArrheniusTracker::new(ARRHENIUS_EA, cfg.initial_temp_c); N],
            ageing,
            tracker: StressorTracker::new(cfg.initial_soc),
            thermal: Thermal::uniform(cfg.initial_temp_c),
            modes: None,
            faults: Faults::default(),
            ledger: EnergyLedger::default(),
            budget: PeakBudget::default(),
            sensors: Sensors::new(cfg.seed, cfg.sensor_noise),
            awake: true,
            cell_v: [0.0; N],
            pack_current_a: 0.0,
            ac_power_w: 0.0,
            reactive_var: 0.0,
            heater_w: 0.0,
            fan_w: 0.0,
            fan_rpm: 0.0,
            forming: false,
            running: false,
            aux_from_ac: false,
            rc_h: f64::NAN,
            rc: [0.0; 4],
            max_electrical_s: MAX_ELECTRICAL_STEP_S,
            slow_timer_s: 0.0,
            age_timer_s: 0.0,
            chunk_timer_s: 0.0,
            age_abs_current_as: 0.0,
            runaway_fuel_j: RUNAWAY_FUEL_J,
            time_s: 0.0,
        };
        p.refresh_age();
        p.refresh_slow();
        for i in 0..N {
            p.cell_v[i] = ocv(p.soc[i]);
        }
        p
    }

    /// The configuration the plant was built with (after clamping).
    pub fn config(&self) -> &PlantConfig {
        &self.cfg
    }

    /// Powers the control electronics on or off. Asleep (a unit switched off, or in storage) there is no
    /// standby draw, no fan, heater or balancing, and the inverter does not run. Default: awake.
    pub fn set_awake(&mut self, awake: bool) {
        self.awake = awake;
    }

    /// Lowest and highest true cell terminal voltage, V (cheap; for tests and examples).
    pub fn cell_v_min_max(&self) -> (f64, f64) {
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for &v in &self.cell_v {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        (lo, hi)
    }

    /// Lowest and highest true cell SOC, and the smallest cell capacity in Ah (cheap). For the
    /// simulation's numerics (how long a step may be), never for control.
    pub fn cell_soc_span(&self) -> (f64, f64, f64) {
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        let mut cap = f64::INFINITY;
        for i in 0..N {
            lo = lo.min(self.soc[i]);
            hi = hi.max(self.soc[i]);
            cap = cap.min(self.cap_ah[i]);
        }
        (lo, hi, cap)
    }

    /// The AC power of the last sub-step, W (positive = discharging). For the simulation's
    /// numerics, never for control.
    pub fn ac_power_w(&self) -> f64 {
        self.ac_power_w
    }

    /// An upper bound of how fast any cell's SOC can move, per second, while the plant obeys `act`
    /// in `env`: the DC current of the larger of the commanded and the present AC power (a welded
    /// contactor holds the present one) with the inverter's loss and the auxiliaries the pack feeds,
    /// at 90 % of the present pack voltage (a cell on the way to a knee loses less than that), plus
    /// each cell's own leak and bleed at the 4.0 V/cell charge ceiling, within the power stage's
    /// current limit. For the unit's event location (how long a decision may stand before a cell
    /// could reach a knee), never for control. NaN inputs give the largest rate.
    pub fn soc_rate_bound(&self, act: &Actuation, env: &Environment) -> f64 {
        let s = act
            .ac_power_w
            .abs()
            .max(act.reactive_power_var.abs())
            .max(self.ac_power_w.abs())
            .max(self.reactive_var.abs());
        // The auxiliary supply feeds from AC while a grid is at the terminals (see `aux_from_ac`).
        let aux_w = if env.grid.present && env.grid.phase_v[0] >= AUX_SUPPLY_MIN_V {
            0.0
        } else {
            let duty = act.fan_duty.clamp(0.0, 1.0);
            let heater = if act.heater_on { HEATER_W } else { 0.0 };
            self.cfg.standby_w + FAN_MAX_W * duty * duty * duty + heater
        };
        let p_dc = s + LOSSES.loss_w(s) + aux_w;
        let v_pack = sum8(&self.cell_v).max(DC_UVLO_V);
        let bleeding = act.balance_mask != 0 || self.faults.bleed_stuck_on.is_some();
        let g_bleed = if bleeding { BLEED_S } else { 0.0 };
        let mut own_a = 0.0f64;
        let mut cap = f64::INFINITY;
        for i in 0..N {
            own_a = own_a.max(self.i_sd[i].abs() + (self.g_leak[i] + g_bleed) * 4.0);
            cap = cap.min(self.cap_ah[i]);
        }
        let i = (p_dc / (0.9 * v_pack) + own_a).min(DC_CURRENT_MAX_A);
        let rate = i / 3600.0 / cap;
        if rate.is_finite() {
            rate
        } else {
            DC_CURRENT_MAX_A / 3600.0 / cap.min(CELL.capacity_ah)
        }
    }

    /// How long, s, the cells' relaxing RC overpotentials alone can move no cell's terminal voltage
    /// by more than `dv` (infinite once they are relaxed to within `dv`): the bound
    /// `|v1| t / tau1 + |v2| t / tau2` of `|v1| (1 - exp(-t / tau1)) + |v2| (1 - exp(-t / tau2))`.
    /// For the unit's event location (the firmware sees a knee voltage relax), never for control.
    pub fn relaxation_time_s(&self, dv: f64) -> f64 {
        let mut t = f64::INFINITY;
        for i in 0..N {
            let (a, b) = (self.v1[i].abs(), self.v2[i].abs());
            if a + b > dv {
                t = t.min(dv / (a / CELL.tau1_s + b / CELL.tau2_s));
            }
        }
        t
    }

    /// Ages every cell at once by `fade` (fraction of its new capacity, 0..=0.5; anything else is
    /// ignored) as calendar loss: capacities, resistances and the self-discharge scale follow.
    pub fn age_by(&mut self, fade: f64) {
        if !(fade.is_finite() && (0.0..=0.5).contains(&fade)) {
            return;
        }
        for a in &mut self.ageing {
            a.q_cal = (a.q_cal + fade).min(0.9);
        }
        self.refresh_age();
        self.refresh_slow();
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn faults_mut(&mut self) -> &mut Faults {
        &mut self.faults
    }

    pub fn energy(&self) -> &EnergyLedger {
        &self.ledger
    }

    /// What the inverter's ratings allow now in `env` (peak budget, PF, phases, current limits), on grid
    /// when a grid is present and grid-forming otherwise.
    pub fn inverter_limits(&self, env: &Environment) -> InverterLimits {
        inverter::limits(
            self.cfg.phases,
            &env.grid,
            &self.budget,
            1.0,
            !self.faults.power_stage_fault,
        )
    }

    /// Recomputes resistances, self-discharge currents and leak conductances for the present
    /// temperatures, ages and faults.
    fn refresh_slow(&mut self) {
        for i in 0..N {
            let t = self.thermal.cell_c[i];
            let grow = self.r_grow[i];
            let [a0, arc, asd] = self.arrhenius[i].factors(t);
            let f0 = a0 * grow;
            let frc = arc * grow;
            self.r0[i] = CELL.r0_ohm * f0;
            self.r1[i] = CELL.r1_ohm * frc;
            self.r2[i] = CELL.r2_ohm * frc;
            // A leak of a fraction of capacity per day, as a current (0 once the cell is empty):
            // self_discharge_fraction_per_day(t) from the tracked factor, times the cell's share.
            self.i_sd[i] = if self.soc[i] > -0.02 {
                self.sd_a_per_fraction[i] / asd
            } else {
                0.0
            };
        }
        self.set_leaks();
        self.update_r_eff();
    }

    /// Recomputes what depends on age only (capacities, resistance growth, the self-discharge
    /// scale): at build and when a day's ageing is applied, not on every refresh.
    fn refresh_age(&mut self) {
        for i in 0..N {
            let q = self.ageing[i].capacity_fraction();
            self.cap_ah[i] = CELL.capacity_ah * self.spread.capacity[i] * q;
            self.inv_cap_ah[i] = 1.0 / self.cap_ah[i];
            self.r_grow[i] = (1.0 + CELL.r_growth_per_fade * (1.0 - q)) * self.spread.resistance[i];
            self.sd_a_per_fraction[i] = SELF_DISCHARGE_25C_PER_DAY
                * self.spread.self_discharge[i]
                * self.cap_ah[i]
                * (1.0 / 24.0);
        }
    }

    fn update_r_eff(&mut self) {
        let [_, _, f1, f2] = self.rc;
        for i in 0..N {
            self.r_eff[i] = self.r0[i] + self.r1[i] * (1.0 - f1) + self.r2[i] * (1.0 - f2);
        }
        self.update_paths();
    }

    /// Recomputes the cached path terms from r_eff, the leaks and the balance mask.
    fn update_paths(&mut self) {
        for i in 0..N {
            self.g_bleed[i] = if self.path_mask & (1 << i) != 0 {
                BLEED_S
            } else {
                0.0
            };
            let g = self.g_leak[i] + self.g_bleed[i];
            // No leak and no bleed (the common case): d = 1 exactly, without the division.
            self.d[i] = if g == 0.0 {
                1.0
            } else {
                1.0 / (1.0 + self.r_eff[i] * g)
            };
            self.rd[i] = self.r_eff[i] * self.d[i];
        }
        self.r_pack = sum8(&self.rd);
    }

    fn refresh_leaks(&mut self) {
        self.set_leaks();
        self.update_paths();
    }

    /// The leak conductances of the present faults (the caller updates the paths).
    fn set_leaks(&mut self) {
        self.leak_key = (self.faults.micro_short, self.faults.thermal_runaway);
        self.g_leak = [0.0; N];
        if let Some((k, ohm)) = self.faults.micro_short {
            if k < N && ohm > 0.0 && ohm.is_finite() {
                self.g_leak[k] += 1.0 / ohm;
            }
        }
        if let Some(k) = self.faults.thermal_runaway {
            if k < N {
                let t = self.thermal.cell_c[k];
                let r = (RUNAWAY_SHORT_OHM * (-(t - 25.0) / 20.0).exp()).max(RUNAWAY_SHORT_MIN_OHM);
                self.g_leak[k] += 1.0 / r;
            }
        }
    }

    /// Advances the physics by `dt_s` seconds, obeying `act` within physics. A `dt_s` that is not a
    /// positive finite number does nothing.
    pub fn step(&mut self, dt_s: f64, act: &Actuation, env: &Environment) {
        if !(dt_s > 0.0 && dt_s.is_finite()) {
            return;
        }
        // Electrical sub-steps: one for steps up to the limit (the common case, no division), else
        // the fewest equal ones. In thermal runaway the cell's heat and short follow its temperature
        // closely: then 10 s sub-steps, as the thermal network's explicit parts.
        let max_h = if self.faults.thermal_runaway.is_some() {
            thermal::MAX_STEP_S.min(self.max_electrical_s)
        } else {
            self.max_electrical_s
        };
        if self.leak_key != (self.faults.micro_short, self.faults.thermal_runaway) {
            self.refresh_leaks();
        }
        let ambient = if env.ambient_c.is_finite() {
            env.ambient_c
        } else {
            25.0
        };

        // Setpoints and auxiliaries hold for the whole step.
        let awake = self.awake;
        let fan_duty = if awake && act.fan_duty.is_finite() {
            act.fan_duty.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let fan_turns = !self.faults.fan_failed && fan_duty >= FAN_MIN_DUTY;
        let airflow = if fan_turns { fan_duty } else { 0.0 };
        self.fan_w = if fan_turns {
            FAN_MAX_W * fan_duty * fan_duty * fan_duty
        } else {
            0.0
        };
        self.fan_rpm = airflow * FAN_MAX_RPM;
        self.heater_w = if awake && act.heater_on && !self.faults.heater_failed {
            HEATER_W
        } else {
            0.0
        };
        let standby_w = if awake { self.cfg.standby_w } else { 0.0 };
        let mask = if awake { act.balance_mask } else { 0 };
        // A stuck balancing FET bleeds whatever the mask (Faults::bleed_stuck_on).
        let mask = mask
            | self
                .faults
                .bleed_stuck_on
                .filter(|&i| i < N)
                .map_or(0, |i| 1 << i);

        let grid = &env.grid;
        let lim = inverter::limits(
            self.cfg.phases,
            grid,
            &self.budget,
            dt_s,
            !self.faults.power_stage_fault,
        );
        let can_run = act.power_enabled && awake && (grid.present || act.grid_forming);
        // A welded contactor (Faults::contactor_welded): a stop does not isolate the pack and the
        // power stage holds the power it was delivering.
        let held = self.faults.contactor_welded && !act.power_enabled && awake && grid.present;
        let (p_set, q_set) = if can_run {
            lim.clamp(act.ac_power_w, act.reactive_power_var)
        } else if held {
            lim.clamp(self.ac_power_w, self.reactive_var)
        } else {
            (0.0, 0.0)
        };
        self.forming = can_run && act.grid_forming && !grid.present && lim != InverterLimits::NONE;
        // The auxiliary supply (see the field): from the AC terminals while a grid is there.
        self.aux_from_ac = grid.present && grid.phase_v[0] >= AUX_SUPPLY_MIN_V;
        let set = Setpoints {
            ambient,
            p_set,
            q_set,
            standby_w,
            airflow,
            mask,
        };
        if dt_s <= max_h || !self.long_substep(dt_s, &set) {
            let (steps, h) = equal_parts(dt_s, max_h);
            for _ in 0..steps {
                self.substep(h, &set, None);
            }
        }
        self.running = can_run && (self.ac_power_w != 0.0 || self.reactive_var != 0.0);
    }

    /// One electrical sub-step of `h` seconds at constant setpoints: the pack's source, the power
    /// stage's hardware limits, the cells, the energy books, the heat, the clocks.
    /// `long`: the sub-step's source and flow, already solved by [`Plant::long_substep`] (which
    /// also integrates the thermal network in closed form); `None`: solved here.
    fn substep(&mut self, h: f64, set: &Setpoints, long: Option<(Source, Flow)>) {
        let Setpoints {
            ambient,
            standby_w,
            airflow,
            ..
        } = *set;
        // Thermal parts per electrical sub-step (1 for sub-steps up to 10 s).
        let (thermal_parts, _) = equal_parts(h, thermal::MAX_STEP_S);
        let aux_w = standby_w + self.fan_w + self.heater_w;
        // With AC at the terminals the auxiliary supply feeds them from AC, not from the pack.
        let dc_aux_w = if self.aux_from_ac { 0.0 } else { aux_w };
        let is_long = long.is_some();
        let (src, flow) = match long {
            Some(sf) => sf,
            None => {
                self.prepare(h, set.mask);
                let src = self.source();
                let flow = dc_limited_flow(set.p_set, set.q_set, dc_aux_w, src.e_pack, self.r_pack);
                (src, flow)
            }
        };
        let hh = h * (1.0 / 3600.0);
        let mut cells = self.advance_cells(&src, flow.i_pack, hh, thermal_parts);
        let p_ac = self.book_energy(&cells, &flow, dc_aux_w, aux_w - dc_aux_w, standby_w, hh);
        self.add_runaway_heat(h, &mut cells.heat);
        let enclosure_w = flow.inv_loss + standby_w + self.fan_w + cells.bleed_loss;
        if is_long {
            let a = airflow.clamp(0.0, 1.0);
            if self.modes.as_ref().is_none_or(|m| m.airflow() != a) {
                self.modes = Some(Box::new(ThermalModes::new(a)));
            }
            if let Some(m) = &self.modes {
                m.advance(&mut self.thermal, h, ambient, &cells.heat, enclosure_w);
            }
        } else {
            self.step_thermal(h, thermal_parts, ambient, &cells.heat, enclosure_w, airflow);
        }

        self.pack_current_a = flow.i_pack;
        self.ac_power_w = if flow.p == 0.0 && flow.q == 0.0 {
            0.0
        } else {
            p_ac
        };
        self.reactive_var = flow.q;
        self.budget.update(h, flow.s_va);
        self.time_s += h;
        // Ageing throughput is counted at the pack current; the cells' own leak and bleed currents are
        // milliamps against amps.
        self.age_abs_current_as += flow.i_pack.abs() * h;
        self.advance_timers(h);
    }

    /// The RC factors for a sub-step of `h`, the leaks of a runaway cell, the balance mask's paths.
    #[inline]
    fn prepare(&mut self, h: f64, mask: u8) {
        if h != self.rc_h {
            let a1 = (-h / CELL.tau1_s).exp();
            let a2 = (-h / CELL.tau2_s).exp();
            // Mean of a first-order response over the step: v_ss + (v0 - v_ss) * f.
            self.rc = [
                a1,
                a2,
                CELL.tau1_s / h * (1.0 - a1),
                CELL.tau2_s / h * (1.0 - a2),
            ];
            self.rc_h = h;
            self.update_r_eff();
        }
        if self.faults.thermal_runaway.is_some() {
            self.refresh_leaks();
        }
        if mask != self.path_mask {
            self.path_mask = mask;
            self.update_paths();
        }
    }

    /// A step longer than [`MAX_ELECTRICAL_STEP_S`] in one sub-step, when every cell stays on the
    /// plateau ([`LONG_STEP_SOC`]) or hardly moves ([`LONG_STEP_STILL_SOC`]) and no hardware limit
    /// binds: the RC pairs and SOC exact for the
    /// constant current, the current solved at the OCV of the step's midpoint (a predictor from the
    /// start), the thermal network in closed form ([`ThermalModes`]). Returns false, having changed
    /// nothing the regular sub-steps depend on, when the step does not qualify.
    #[allow(clippy::needless_range_loop)]
    fn long_substep(&mut self, h: f64, set: &Setpoints) -> bool {
        if self.faults.thermal_runaway.is_some() {
            return false;
        }
        self.prepare(h, set.mask);
        let aux_w = set.standby_w + self.fan_w + self.heater_w;
        let dc_aux_w = if self.aux_from_ac { 0.0 } else { aux_w };
        let src0 = self.source();
        let flow0 = dc_limited_flow(set.p_set, set.q_set, dc_aux_w, src0.e_pack, self.r_pack);
        if flow0.p != set.p_set || flow0.q != set.q_set {
            return false;
        }
        // Each cell's SOC at the end and at the middle of the step at the start's current. A cell
        // that hardly moves (an idle pack, full or empty) may be anywhere.
        let mut mid = [0.0; N];
        let mut hyst = [0.0; N];
        let mut on_plateau = true;
        let mut still = true;
        for i in 0..N {
            let d = (flow0.i_pack + self.i_sd[i]) * h * (1.0 / 3600.0) * self.inv_cap_ah[i];
            let end = self.soc[i] - d;
            on_plateau &= (LONG_STEP_SOC.0..=LONG_STEP_SOC.1).contains(&self.soc[i]);
            on_plateau &= (LONG_STEP_SOC.0..=LONG_STEP_SOC.1).contains(&end);
            still &= d.abs() <= LONG_STEP_STILL_SOC;
            mid[i] = self.soc[i] - 0.5 * d;
            // The hysteresis's mean over the step's n parts (see `advance_cells`): a geometric
            // series from the start towards the current's branch.
            let n = (h * (1.0 / thermal::MAX_STEP_S)).ceil();
            let kp = (CELL.hysteresis_gamma * d.abs() / n).min(1.0);
            let frac = if kp > 0.0 {
                (1.0 - (1.0 - kp).powf(n)) / (n * kp)
            } else {
                1.0
            };
            let target = if d < 0.0 { 1.0 } else { -1.0 };
            hyst[i] = target + (self.hyst[i] - target) * frac;
        }
        if !(on_plateau || still) {
            return false;
        }
        let src = self.source_at(&mid, &hyst);
        let flow = dc_limited_flow(set.p_set, set.q_set, dc_aux_w, src.e_pack, self.r_pack);
        if flow.p != set.p_set || flow.q != set.q_set || !flow.i_pack.is_finite() {
            return false;
        }
        self.substep(h, set, Some((src, flow)));
        true
    }

    /// The pack as a source this sub-step. Cell i: V_i = (e_i - r_i (I + i_sd_i)) d_i with
    /// d_i = 1 / (1 + r_i g_i), i.e. V_i = en_i - rd_i I; the pack: V = E - R I with E = sum en_i,
    /// R = sum rd_i (cached in `r_pack`).
    // Index loops over parallel per-cell arrays read more plainly than zipped iterators here.
    #[allow(clippy::needless_range_loop)]
    #[inline]
    fn source(&self) -> Source {
        self.source_at(&self.soc, &self.hyst)
    }

    /// [`Plant::source`] with the OCV taken at `soc` and the hysteresis at `hyst` instead of the
    /// cells' present ones (a long sub-step's means).
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn source_at(&self, soc: &[f64; N], hyst: &[f64; N]) -> Source {
        let [_, _, f1, f2] = self.rc;
        // Element-wise loops and tree sums: no long chains of dependent additions, and the compiler
        // vectorises the arithmetic.
        let mut ocv_v = [0.0; N];
        for i in 0..N {
            ocv_v[i] = ocv(soc[i]);
        }
        let mut en = [0.0; N];
        for i in 0..N {
            let e = ocv_v[i] + CELL.hysteresis_v * hyst[i] - f1 * self.v1[i] - f2 * self.v2[i];
            en[i] = (e - self.r_eff[i] * self.i_sd[i]) * self.d[i];
        }
        let e_pack = sum8(&en);
        Source { ocv_v, en, e_pack }
    }

    /// Advances every cell with the constant sub-step pack current `i_pack` over `hh` hours: RC
    /// branches, SOC, hysteresis. Returns the cells' powers.
    #[allow(clippy::needless_range_loop)]
    #[inline]
    fn advance_cells(
        &mut self,
        src: &Source,
        i_pack: f64,
        hh: f64,
        thermal_parts: u64,
    ) -> CellPowers {
        let [a1, a2, _, _] = self.rc;
        let Source { ocv_v, en, .. } = src;
        let heater_share = self.heater_w / N as f64;
        let mut v = [0.0; N];
        let mut i_cell = [0.0; N];
        let mut loss = [0.0; N];
        let mut leak = [0.0; N];
        let mut bleed = [0.0; N];
        let mut chem = [0.0; N];
        let mut heat = [0.0; N];
        for i in 0..N {
            v[i] = en[i] - self.rd[i] * i_pack;
            let i_leak = self.i_sd[i] + self.g_leak[i] * v[i];
            let i_bleed = self.g_bleed[i] * v[i];
            i_cell[i] = i_pack + i_leak + i_bleed;
            loss[i] = i_cell[i] * (ocv_v[i] - v[i]);
            leak[i] = v[i] * i_leak;
            bleed[i] = v[i] * i_bleed;
            chem[i] = ocv_v[i] * i_cell[i];
            heat[i] = loss[i] + leak[i] + heater_share;
        }
        for i in 0..N {
            let s1 = self.r1[i] * i_cell[i];
            let s2 = self.r2[i] * i_cell[i];
            self.v1[i] = s1 + (self.v1[i] - s1) * a1;
            self.v2[i] = s2 + (self.v2[i] - s2) * a2;
            let dsoc = i_cell[i] * hh * self.inv_cap_ah[i];
            self.soc[i] -= dsoc;
            // One-state hysteresis (Plett): moves towards the branch of the current's direction in
            // proportion to the charge passed; linear form per 10 s part (at most a few % of SOC).
            // A longer sub-step applies the same linear update once per thermal part with the
            // part's equal share of the charge, in closed form: 1 - (1 - k)^n, what n parts of
            // constant current give (n = 1 is the plain linear update, bit for bit).
            let target = if i_cell[i] < 0.0 { 1.0 } else { -1.0 };
            let k = if thermal_parts == 1 {
                (CELL.hysteresis_gamma * dsoc.abs()).min(1.0)
            } else {
                let kp = (CELL.hysteresis_gamma * dsoc.abs() / thermal_parts as f64).min(1.0);
                1.0 - (1.0 - kp).powi(thermal_parts as i32)
            };
            self.hyst[i] += (target - self.hyst[i]) * k;
        }
        // The integration stays finite: every input is sanitised (setpoints, ambient, fault values)
        // and a collapsed pack carries no current, so a NaN or infinite SOC is a bug that would poison
        // every later step. Branch-free over the eight cells. SOC is deliberately not held to 0..=1:
        // the twin can be over-charged or over-discharged (the OCV table runs from -0.03 to 1.03) so
        // that the BMS sees its faults.
        let finite = self.soc.iter().fold(true, |ok, s| ok & s.is_finite());
        assert!(finite, "cell SOC finite after integration: {:?}", self.soc);
        self.cell_v = v;
        CellPowers {
            v_pack: sum8(&v),
            cell_loss: sum8(&loss),
            bleed_loss: sum8(&bleed),
            leak_loss: sum8(&leak),
            stored: -sum8(&chem),
            heat,
        }
    }

    /// Books the sub-step's energies into the ledger; returns the inverter's AC power, W.
    /// `aux_w` is the auxiliaries' draw from the pack bus, `ac_aux_w` the auxiliary supply's from AC.
    #[inline]
    fn book_energy(
        &mut self,
        cells: &CellPowers,
        flow: &Flow,
        aux_w: f64,
        ac_aux_w: f64,
        standby_w: f64,
        hh: f64,
    ) -> f64 {
        let p_pack = cells.v_pack * flow.i_pack;
        let l = &mut self.ledger;
        if p_pack >= 0.0 {
            l.dc_out_wh += p_pack * hh;
        } else {
            l.dc_in_wh -= p_pack * hh;
        }
        // The AC side closes on the pack side's actual flow, so rounding of the current solve stays in
        // the inverter's books (it is ~1e-12 W).
        let p_ac = p_pack - aux_w - flow.inv_loss;
        if p_ac >= 0.0 {
            l.ac_out_wh += p_ac * hh;
        } else {
            l.ac_in_wh -= p_ac * hh;
        }
        l.aux_from_ac_wh += ac_aux_w * hh;
        l.stored_wh += cells.stored * hh;
        l.loss_cell_wh += cells.cell_loss * hh;
        l.loss_bleed_wh += cells.bleed_loss * hh;
        l.loss_self_discharge_wh += cells.leak_loss * hh;
        l.loss_inverter_wh += flow.inv_loss * hh;
        l.loss_standby_wh += standby_w * hh;
        l.loss_fan_wh += self.fan_w * hh;
        l.loss_heater_wh += self.heater_w * hh;
        p_ac
    }

    /// A cell in thermal runaway burns its remaining fuel: adds the decomposition heat of the
    /// sub-step to that cell.
    #[inline]
    fn add_runaway_heat(&mut self, h: f64, cell_heat: &mut [f64; N]) {
        if let Some(k) = self.faults.thermal_runaway {
            if k < N && self.runaway_fuel_j > 0.0 {
                let w = runaway_decomposition_w(self.thermal.cell_c[k]);
                let j = (w * h).min(self.runaway_fuel_j);
                self.runaway_fuel_j -= j;
                cell_heat[k] += j / h;
                self.ledger.runaway_heat_wh += j / 3600.0;
            }
        }
    }

    /// The thermal network over the sub-step, in `thermal_parts` equal parts.
    #[inline]
    fn step_thermal(
        &mut self,
        h: f64,
        thermal_parts: u64,
        ambient: f64,
        cell_heat: &[f64; N],
        enclosure_w: f64,
        airflow: f64,
    ) {
        if thermal_parts == 1 {
            self.thermal
                .step(h, ambient, cell_heat, enclosure_w, airflow);
        } else {
            let ht = h / thermal_parts as f64;
            for _ in 0..thermal_parts {
                self.thermal
                    .step(ht, ambient, cell_heat, enclosure_w, airflow);
            }
        }
    }

    /// The slow refresh and the ageing sample, when their time has come.
    #[inline]
    fn advance_timers(&mut self, h: f64) {
        self.slow_timer_s += h;
        if self.slow_timer_s >= SLOW_REFRESH_S {
            self.slow_timer_s = 0.0;
            self.refresh_slow();
        }
        self.age_timer_s += h;
        if self.age_timer_s >= AGE_SAMPLE_S {
            self.sample_ageing();
        }
    }

    /// Books the stress of the last AGE_SAMPLE_S into every cell's ageing, and applies a day's stress
    /// to the capacities when a chunk completes.
    fn sample_ageing(&mut self) {
        let dt = self.age_timer_s;
        self.age_timer_s = 0.0;
        let mean_soc = self.soc.iter().sum::<f64>() / N as f64;
        let crate_abs = self.age_abs_current_as / dt / NOMINAL_CAPACITY_AH;
        let throughput_ah = self.age_abs_current_as / 3600.0;
        self.age_abs_current_as = 0.0;
        self.tracker.record(dt, mean_soc, crate_abs);
        let (dod, crate_) = self.tracker.stressors();
        for i in 0..N {
            let new_cap = CELL.capacity_ah * self.spread.capacity[i];
            let efc = throughput_ah / (2.0 * new_cap);
            self.ageing[i].accumulate(
                dt / 86_400.0,
                self.soc[i],
                self.thermal.cell_c[i],
                efc,
                dod,
                crate_,
            );
        }
        self.chunk_timer_s += dt;
        if self.chunk_timer_s >= AGE_CHUNK_S {
            self.chunk_timer_s = 0.0;
            for a in &mut self.ageing {
                a.flush();
            }
            self.refresh_age();
            self.refresh_slow();
        }
    }
}

/// What holds for a whole step: ambient, setpoints and auxiliaries.
#[derive(Debug, Clone, Copy)]
struct Setpoints {
    ambient: f64,
    p_set: f64,
    q_set: f64,
    standby_w: f64,
    airflow: f64,
    mask: u8,
}

/// The pack as a source for one sub-step: per-cell OCV and source terms `en`, and their sum `E`.
struct Source {
    ocv_v: [f64; N],
    en: [f64; N],
    e_pack: f64,
}

/// What the power stage does in one sub-step, after its hardware limits.
struct Flow {
    /// AC active and reactive power, W and var (as limited).
    p: f64,
    q: f64,
    s_va: f64,
    inv_loss: f64,
    /// Pack current, A (positive = discharging).
    i_pack: f64,
}

/// The cells' powers over one sub-step (sums over the pack, W) and each cell's heat.
struct CellPowers {
    v_pack: f64,
    cell_loss: f64,
    bleed_loss: f64,
    leak_loss: f64,
    stored: f64,
    heat: [f64; N],
}

/// The power stage's flow for setpoints `p_set`, `q_set` and auxiliaries `aux_w` from a pack source
/// `E - R I`, within the hardware limits: DC current, under-voltage lockout, charge ceiling. The test
/// is in multiplied form (no division on the common path): V = E - R I must stay within
/// UVLO..OVLO, I within +-DC_CURRENT_MAX_A and below the maximum-power current E / 2R.
#[inline]
fn dc_limited_flow(p_set: f64, q_set: f64, aux_w: f64, e_pack: f64, r_pack: f64) -> Flow {
    let (p, q) = (p_set, q_set);
    let s_va = (p * p + q * q).sqrt();
    let inv_loss = LOSSES.loss_w(s_va);
    let i_pack = solve_current(p + inv_loss + aux_w, e_pack, r_pack);
    let ri = r_pack * i_pack;
    let over = i_pack > DC_CURRENT_MAX_A || 2.0 * ri > e_pack || e_pack - ri < DC_UVLO_V;
    let under = i_pack < 0.0 && (i_pack < -DC_CURRENT_MAX_A || e_pack - ri > DC_OVLO_V);
    if i_pack.is_nan() || (i_pack > 0.0 && over) || under {
        return derated_flow(p, q, i_pack, aux_w, e_pack, r_pack);
    }
    Flow {
        p,
        q,
        s_va,
        inv_loss,
        i_pack,
    }
}

/// The flow scaled down to the DC current the pack can give or take (`i_pack` is the unlimited
/// solve, NaN when the pack cannot deliver at all); nothing flows when not even the auxiliaries can
/// be fed.
#[cold]
#[inline(always)] // one call site: the step it was split from stays one function
fn derated_flow(p: f64, q: f64, i_pack: f64, aux_w: f64, e_pack: f64, r_pack: f64) -> Flow {
    let i_hi = DC_CURRENT_MAX_A
        .min(e_pack / (2.0 * r_pack))
        .min((e_pack - DC_UVLO_V) / r_pack);
    let i_lo = -DC_CURRENT_MAX_A.min(((DC_OVLO_V - e_pack) / r_pack).max(0.0));
    let i_lim = if i_pack.is_nan() || i_pack > 0.0 {
        i_hi.max(0.0)
    } else {
        i_lo
    };
    let dc_avail = i_lim * (e_pack - r_pack * i_lim);
    let inv_dc = dc_avail - aux_w;
    let s_old = (p * p + q * q).sqrt();
    let q_share = if s_old > 0.0 { q.abs() / s_old } else { 0.0 };
    let s_new = if p >= 0.0 {
        LOSSES.max_s_for_dc(inv_dc, q_share)
    } else {
        ac_for_dc_charge(-inv_dc).min(s_old)
    };
    let k = if s_old > 0.0 {
        (s_new / s_old).min(1.0)
    } else {
        0.0
    };
    let (p, q) = (p * k, q * k);
    let s_va = (p * p + q * q).sqrt();
    let inv_loss = LOSSES.loss_w(s_va);
    let i_pack = solve_current(p + inv_loss + aux_w, e_pack, r_pack);
    if i_pack.is_nan() {
        // Not even the auxiliaries can be fed: the pack is collapsed; nothing flows.
        return Flow {
            p: 0.0,
            q: 0.0,
            s_va: 0.0,
            inv_loss: 0.0,
            i_pack: 0.0,
        };
    }
    Flow {
        p,
        q,
        s_va,
        inv_loss,
        i_pack,
    }
}

/// `total` split into the fewest equal parts of at most `max`: (count, length). One part (and no
/// division) when `total <= max`.
#[inline]
fn equal_parts(total: f64, max: f64) -> (u64, f64) {
    if total <= max {
        return (1, total);
    }
    let whole = (total * (1.0 / max)) as u64;
    let n = if whole as f64 * max < total {
        whole + 1
    } else {
        whole
    };
    (n, total / n as f64)
}

/// Sum of eight values as a balanced tree (three dependent additions instead of seven).
#[inline(always)]
fn sum8(x: &[f64; N]) -> f64 {
    ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]))
}

fn finite_or(x: f64, default: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        default
    }
}

/// Pack current for DC power `p_w` from a source `E - R I`: the smaller root of `R I^2 - E I + P = 0`
/// (NaN when the source cannot deliver `p_w`).
#[inline]
fn solve_current(p_w: f64, e: f64, r: f64) -> f64 {
    let disc = e * e - 4.0 * r * p_w;
    if disc < 0.0 {
        return f64::NAN;
    }
    // Numerically stable form of (E - sqrt(disc)) / 2R.
    2.0 * p_w / (e + disc.sqrt())
}

/// Largest AC input apparent power whose DC output (after losses) is `dc_w` (charging).
fn ac_for_dc_charge(dc_w: f64) -> f64 {
    // s - (p0 + k1 s + k2 s^2) = dc  ->  k2 s^2 - (1 - k1) s + (p0 + dc) = 0, smaller root.
    let (a, b, c) = (
        LOSSES.k2_per_w,
        1.0 - LOSSES.k1,
        LOSSES.p0_w + dc_w.max(0.0),
    );
    let disc = b * b - 4.0 * a * c;
    if dc_w <= 0.0 || disc < 0.0 {
        return 0.0;
    }
    2.0 * c / (b + disc.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use melv_core::Phases;

    /// A day of a home battery's duty at 60 s plant steps: charge from PV at midday, evening
    /// discharge, standby at night, a balancing episode, with the fan proportional to power and a
    /// warm ambient. `max_electrical_s` 10 reproduces the integration with 10 s sub-steps.
    fn day(max_electrical_s: f64) -> Plant {
        let mut p = Plant::new(&PlantConfig {
            sensor_noise: false,
            initial_soc: 0.4,
            initial_temp_c: 22.0,
            ..PlantConfig::default()
        });
        p.max_electrical_s = max_electrical_s;
        let env = Environment {
            ambient_c: 27.0,
            ..Environment::nominal(Phases::Single)
        };
        for k in 0..1440 {
            let minute = f64::from(k);
            let p_w = match k {
                0..=419 => 0.0,
                420..=539 => -1500.0 - 500.0 * (minute / 9.0).sin(),
                540..=1079 => 150.0,
                1080..=1139 => 2500.0 + 1500.0 * (minute / 4.0).cos(),
                _ => 0.0,
            };
            let act = Actuation {
                power_enabled: true,
                ac_power_w: p_w,
                fan_duty: (p_w.abs() / 5000.0).clamp(0.0, 1.0),
                balance_mask: if (700..760).contains(&k) {
                    0b1010_0101
                } else {
                    0
                },
                ..Actuation::default()
            };
            p.step(60.0, &act, &env);
        }
        p
    }

    #[test]
    fn electrical_sub_steps_of_60_s_match_10_s() {
        let (a, b) = (day(MAX_ELECTRICAL_STEP_S), day(thermal::MAX_STEP_S));
        let (ta, tb) = (a.truth(), b.truth());
        let (la, lb) = (a.energy(), b.energy());
        let mut worst = [0.0f64; 4];
        for i in 0..N {
            worst[0] = worst[0].max((ta.cell_soc[i] - tb.cell_soc[i]).abs());
            worst[1] = worst[1].max((ta.cell_temp_c[i] - tb.cell_temp_c[i]).abs());
            worst[2] = worst[2].max((a.hyst[i] - b.hyst[i]).abs());
        }
        let rel = |x: f64, y: f64| (x - y).abs() / y.abs().max(1.0);
        for (x, y) in [
            (la.ac_in_wh, lb.ac_in_wh),
            (la.ac_out_wh, lb.ac_out_wh),
            (la.dc_in_wh, lb.dc_in_wh),
            (la.dc_out_wh, lb.dc_out_wh),
            (la.stored_wh, lb.stored_wh),
            (la.loss_cell_wh, lb.loss_cell_wh),
            (la.loss_inverter_wh, lb.loss_inverter_wh),
            (la.loss_bleed_wh, lb.loss_bleed_wh),
        ] {
            worst[3] = worst[3].max(rel(x, y));
        }
        // The day moves every cell by tens of % of SOC and through both hysteresis branches, and
        // the reference and the long sub-steps are not the same computation.
        assert!((ta.pack_soc - 0.4).abs() > 0.15, "{}", ta.pack_soc);
        assert!(la != lb);
        // Measured: SOC 8.6e-5 (the current is solved at the sub-step's starting OCV, 0.3 mV
        // from its mean on the plateau), temperatures 2.3e-5 K, hysteresis 4e-12, energies
        // 4e-4 of the cell losses (the flows at the terminals agree to 1e-13).
        assert!(worst[0] < 2e-4, "SOC {worst:?}");
        assert!(worst[1] < 1e-3, "temperature {worst:?}");
        assert!(worst[2] < 1e-9, "hysteresis {worst:?}");
        assert!(worst[3] < 1e-3, "energy {worst:?}");
    }

    #[test]
    fn short_steps_are_one_sub_step_and_one_thermal_part() {
        assert_eq!(equal_parts(1.0, 60.0), (1, 1.0));
        assert_eq!(equal_parts(60.0, 60.0), (1, 60.0));
        assert_eq!(equal_parts(60.0, 10.0), (6, 10.0));
        assert_eq!(equal_parts(3600.0, 60.0), (60, 60.0));
        assert_eq!(equal_parts(61.0, 60.0).0, 2);
    }
}
