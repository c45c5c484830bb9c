//! # melv-unit: one MS-7K-U battery unit, the twin driven by its own firmware
//!
//! A real MS-7K-U is hardware (cells, inverter, fan, heater, sensors) plus firmware (BMS, grid
//! protection, LEDs, lifecycle). This crate puts the two halves we model separately back together:
//! [`melv_model::Plant`] is the hardware's true physics, [`melv_bms::Firmware`] is the logic that runs
//! on the unit's controller. Each step the firmware samples the plant's sensors, decides, and the plant
//! obeys that decision for the step. The firmware never reads the plant's true state; only this crate,
//! the tests and the simulator's KPIs do, through [`BatteryUnit::truth`] and [`BatteryUnit::energy`].
//!
//! The unit also owns what neither half can decide alone: whether the controller is powered at all.
//! The manual's solution steps for a latched alert include "disconnect the AC input, wait for the
//! battery indicator to go out, and then restore the AC input" (manual 6.3, codes 50-52, 62): the
//! unit's auxiliary supply comes from its AC side, so without AC (and not forming its own grid) the
//! controller goes dark after a hold-up time and boots again when AC returns, keeping only what its
//! non-volatile memory keeps ([`melv_bms::Nvm`]). While AC is present the same supply feeds the
//! electronics, fan and heater (the plant books it as `EnergyLedger::aux_from_ac_wh`), so an idle
//! unit's cells pay only for their self-discharge. Without AC, when the firmware asks for deep sleep
//! ([`melv_bms::Firmware::wants_deep_sleep`]: islanded and nearly empty) the controller goes dark at
//! once and every auxiliary load is shed until AC returns.
//!
//! ## Architecture invariant
//! Control decisions come only from [`melv_bms::Firmware`] fed with [`melv_core::io::Measurements`].
//! This crate adds no control logic of its own, no IO and no clock: time is passed in.

pub mod cycle_test;

use melv_bms::{Firmware, FirmwareConfig, Nvm};
use melv_core::io::{Actuation, Measurements};
use melv_core::status::{BatteryCommand, BatteryStatus, UnitRequest};
use melv_core::types::{Country, GridCharging, Lifecycle, Phases};
use melv_model::{EnergyLedger, Environment, Faults, Plant, PlantConfig, TrueState};

/// How long the controller stays powered from its hold-up supply after the AC input is removed, s.
/// The manual gives no figure for the controller; its nameplate's 60 s (manual 2.1.4, "Delayed
/// discharge ... 60 seconds") is the time the power stage's capacitors take to discharge, and the
/// LEDs stay lit while they hold up the auxiliary supply, so we use the same 60 s.
pub const AUX_HOLDUP_S: f64 = melv_core::spec::DISCHARGE_DELAY_S;

/// Shortest part of a step, s. A real MS-7K-U's firmware runs its control loop many times a
/// second; the simulator may call [`BatteryUnit::step`] with steps of up to an hour, over which a
/// firmware decision would stand unrevised. On the flat middle of the LFP curve that is harmless,
/// but near full or empty one hour at the inverter's current is a quarter of the capacity, far past
/// the point where the firmware would have tapered. So the unit integrates such a step in parts, as
/// an ODE solver with event location does: after each firmware decision it bounds how fast any
/// cell's SOC can move at the decided power ([`melv_model::Plant::soc_rate_bound`]) and lets the
/// decision stand until a cell could reach the knee band ([`COARSE_SOC_BAND`]), or, inside the
/// band, until a cell could have moved [`KNEE_PART_SOC`]; the firmware gets a cycle at that moment.
/// A part is never shorter than this (10 s at the largest current, 250 A, is 0.24 % of capacity,
/// inside the firmware's knee-guard step `melv_bms::limits::KNEE_STEP_SOC`, 0.3 %), and the
/// firmware is told how long its decision will stand ([`melv_bms::Firmware::plan_next_step`], at
/// most [`PLAN_HINT_MAX_S`]). A cell that idles in the band (full or empty, the gateway asking
/// nothing) runs the whole step in one piece.
pub const KNEE_SUBSTEP_S: f64 = 10.0;
/// The SOC a part inside the knee band may move at most, unless it is only [`KNEE_SUBSTEP_S`]
/// long: 0.05 %, what 10 s at 50 A (about 1.2 kW) move. Near full an LFP cell rises about 50 mV
/// per 0.1 % of SOC, so the firmware sees its highest cell move at most about 25 mV between two
/// cycles, and its voltage taper can follow. Measured: with 0.19 % parts (25 s at 2.1 kW) the
/// taper lagged and a cell reached 3.67 V (code 50).
const KNEE_PART_SOC: f64 = 0.0005;
/// Longest step hint the unit plans for the firmware, s. The firmware stops short of the knees by
/// a margin when its decisions stand unrevised for long (`melv_bms::limits::COARSE_STEP_S`, 600 s,
/// "a simulation stepping by the hour sees the knee once"); the unit's event location already
/// gives it a cycle before any cell reaches the knee band, so a longer plan would only stop the
/// charge short. Measured on `examples/self-consumption.toml` against 1 s steps (the year, see
/// BENCHMARKS.md): with plans capped at 30 s the 60 s year's battery charge is 1.5 % low (the
/// firmware declares full instead of trickling at the top), at 60 s it is -0.04 % at 60 s steps
/// and -0.9 % at 15 min, at 120 s -0.04 %, -0.2 % and -0.05 % at 60 s, 15 min and 1 h steps.
const PLAN_HINT_MAX_S: f64 = 120.0;
/// How far a cell's voltage may relax inside the knee band before the firmware gets a cycle, V:
/// twice the AFE's 1 mV resolution.
const KNEE_RELAX_V: f64 = 0.002;

/// SOC band of the cells inside which a decision may stand until a cell reaches the band's edge
/// (see [`KNEE_SUBSTEP_S`]): the LFP knees start at about 5 % and 95 %.
const COARSE_SOC_BAND: (f64, f64) = (0.06, 0.94);

/// Configuration of one unit.
#[derive(Debug, Clone)]
pub struct UnitConfig {
    /// Seed of the unit's cell spread and sensor noise: the same seed gives the same unit.
    pub seed: u64,
    /// Wiring of the unit (plug-in bridge: single phase; manual 4.6).
    pub phases: Phases,
    /// Country profile for grid protection.
    pub country: Country,
    /// Whether the cells may be charged from the grid (`melv_bms::FirmwareConfig::grid_charging`);
    /// `None`: the country's policy ([`Country::grid_charging`]).
    pub grid_charging: Option<GridCharging>,
    /// True initial state of charge of the cells, 0..=1.
    pub initial_soc: f64,
    /// Initial temperature of cells and enclosure, degC.
    pub initial_temp_c: f64,
    /// Capacity already lost at the start (0 = new unit), fraction.
    pub initial_capacity_fade: f64,
    /// Whether the unit starts activated (manual 4.11) or in standby waiting for activation.
    pub activated: bool,
    /// Sensor noise on (realistic) or off (for exact tests).
    pub sensor_noise: bool,
}

impl Default for UnitConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            phases: Phases::Single,
            country: Country::Generic,
            grid_charging: None,
            initial_soc: 0.5,
            initial_temp_c: 25.0,
            initial_capacity_fade: 0.0,
            activated: true,
            sensor_noise: true,
        }
    }
}

/// One battery unit: plant + firmware + auxiliary supply.
pub struct BatteryUnit {
    plant: Plant,
    /// `None` while the controller is unpowered (LEDs out).
    firmware: Option<Firmware>,
    fw_config: FirmwareConfig,
    /// What survives while the controller is dark.
    nvm: Nvm,
    /// Last actuation the firmware chose; the plant obeys it over the next step.
    actuation: Actuation,
    /// When the AC input went away while not grid-forming, if it has.
    ac_lost_since: Option<f64>,
    /// The last sensor sample the firmware saw.
    last_measurements: Option<Measurements>,
    /// The gateway's last command and when it came: within a step that the unit integrates in parts,
    /// the gateway's heartbeat (every 100 ms in the protocol) keeps repeating it.
    last_command: Option<(f64, BatteryCommand)>,
}

impl BatteryUnit {
    pub fn new(cfg: &UnitConfig, now_s: f64) -> Self {
        let plant = Plant::new(&PlantConfig {
            seed: cfg.seed,
            phases: cfg.phases,
            initial_soc: cfg.initial_soc,
            initial_temp_c: cfg.initial_temp_c,
            initial_capacity_fade: cfg.initial_capacity_fade,
            sensor_noise: cfg.sensor_noise,
            ..PlantConfig::default()
        });
        let fw_config = FirmwareConfig {
            grid_charging: cfg
                .grid_charging
                .unwrap_or_else(|| cfg.country.grid_charging()),
            ..FirmwareConfig::for_country(cfg.country, cfg.phases)
        };
        // The factory writes the SOC it measured at end of line; the firmware starts from it.
        let firmware = Firmware::boot(
            fw_config.clone(),
            Nvm::new_unit(cfg.initial_soc, cfg.activated),
            now_s,
        );
        let nvm = firmware.nvm();
        Self {
            plant,
            firmware: Some(firmware),
            fw_config,
            nvm,
            actuation: Actuation::default(),
            ac_lost_since: None,
            last_measurements: None,
            last_command: None,
        }
    }

    /// The gateway's setpoint and heartbeat. Lost while the controller is dark.
    pub fn command(&mut self, now_s: f64, cmd: &BatteryCommand) {
        self.last_command = Some((now_s, *cmd));
        if let Some(fw) = self.firmware.as_mut() {
            fw.handle_command(now_s, cmd);
        }
    }

    /// A request from the app (activate, reset, shut down, power on). Lost while the controller is dark.
    pub fn request(&mut self, now_s: f64, req: UnitRequest) {
        if let Some(fw) = self.firmware.as_mut() {
            fw.handle_request(now_s, req);
            self.nvm = fw.nvm();
        }
    }

    /// Advance the unit by `dt_s`: the firmware samples and decides at `now_s`, the plant then runs
    /// under that decision for as long as no event can happen (see [`KNEE_SUBSTEP_S`]): the step is
    /// cut only where a cell could reach a knee of its charge curve at the current the decision
    /// draws, or where the controller's hold-up time without AC runs out, and the firmware gets a
    /// control cycle at each cut.
    pub fn step(&mut self, now_s: f64, dt_s: f64, env: &Environment) {
        // A gateway that commanded at the start of this step keeps its heartbeat going through it.
        let heartbeat = self
            .last_command
            .filter(|(at, _)| *at >= now_s)
            .map(|(_, cmd)| cmd);
        let end = now_s + dt_s;
        let mut t = now_s;
        // Bounded: every part but the last is at least KNEE_SUBSTEP_S long.
        while end - t > 1e-9 {
            if t > now_s {
                if let (Some(cmd), Some(fw)) = (heartbeat, self.firmware.as_mut()) {
                    fw.handle_command(t, &cmd);
                }
            }
            // The plan: how long the decision may stand at the larger of the standing and the
            // commanded power (the firmware never exceeds the command), told to the firmware as its
            // step hint; then the decision, and the part cut shorter if it draws more.
            let cmd_w = self.last_command.map_or(0.0, |(_, c)| c.active_power_w);
            let standing = Actuation {
                ac_power_w: self.actuation.ac_power_w.abs().max(cmd_w.abs()),
                ..self.actuation
            };
            let plan = self.part_len(t, end - t, &standing, env);
            if let Some(fw) = self.firmware.as_mut() {
                fw.plan_next_step(plan.min(PLAN_HINT_MAX_S));
            }
            self.decide(t, env);
            let h = plan.min(self.part_len(t, end - t, &self.actuation, env));
            self.plant.step(h, &self.actuation, env);
            t += h;
        }
    }

    /// How much of the `remaining` step from `now_s` may run under the decision just taken: event
    /// location on a bound of the cells' SOC rate at the decided power (see [`KNEE_SUBSTEP_S`]).
    fn part_len(&self, now_s: f64, remaining: f64, act: &Actuation, env: &Environment) -> f64 {
        if remaining <= KNEE_SUBSTEP_S {
            return remaining;
        }
        let mut len = remaining;
        // The controller's hold-up supply runs out at a known time: a cycle there (it goes dark).
        if let (Some(since), true) = (self.ac_lost_since, self.firmware.is_some()) {
            let dark_in = since + AUX_HOLDUP_S - now_s;
            if dark_in > 0.0 {
                len = len.min(dark_in.max(KNEE_SUBSTEP_S));
            }
        }
        let (lo, hi, _) = self.plant.cell_soc_span();
        let rate = self.plant.soc_rate_bound(act, env);
        // The SOC a part may move: up to the knee band's edge outside it, KNEE_PART_SOC inside.
        let to_edge = (COARSE_SOC_BAND.1 - hi).min(lo - COARSE_SOC_BAND.0);
        let budget = to_edge.max(KNEE_PART_SOC);
        let mut t_event = budget / rate;
        if to_edge < KNEE_PART_SOC {
            // In the knee band the firmware reads the cell voltages: a cycle before a relaxing cell
            // moves more than KNEE_RELAX_V.
            t_event = t_event.min(self.plant.relaxation_time_s(KNEE_RELAX_V));
        }
        // NaN (a broken plant) takes the careful branch.
        if t_event <= KNEE_SUBSTEP_S || t_event.is_nan() {
            return KNEE_SUBSTEP_S.min(len);
        }
        len.min(t_event)
    }

    /// The firmware's control cycle at `now_s` (or none while the controller is dark): the
    /// actuation the plant obeys next.
    fn decide(&mut self, now_s: f64, env: &Environment) {
        self.update_aux_supply(now_s, env);
        // A dark controller, or one the app shut down, draws nothing and drives nothing: the plant's
        // auxiliaries (standby electronics, fan, heater, balancing) are off.
        let awake = self
            .firmware
            .as_ref()
            .is_some_and(|fw| fw.lifecycle() != Lifecycle::Off);
        self.plant.set_awake(awake);
        self.actuation = match self.firmware.as_mut() {
            Some(fw) => {
                let m = self.plant.measure(env);
                let act = fw.step(now_s, &m);
                self.last_measurements = Some(m);
                act
            }
            None => Actuation::default(),
        };
    }

    /// Power the controller down after the hold-up time without AC, at once when the firmware asks
    /// for deep sleep without AC, and boot it when AC returns.
    fn update_aux_supply(&mut self, now_s: f64, env: &Environment) {
        let forming = self.actuation.grid_forming && self.actuation.power_enabled;
        let sleep = !env.grid.present
            && self
                .firmware
                .as_ref()
                .is_some_and(|fw| fw.wants_deep_sleep());
        if sleep {
            // Deep sleep: the auxiliary supply sheds every load (controller dark) until AC returns.
            if let Some(fw) = self.firmware.take() {
                self.nvm = fw.nvm();
                self.last_measurements = None;
            }
            self.actuation = Actuation::default();
            self.ac_lost_since.get_or_insert(now_s);
            return;
        }
        if env.grid.present || forming {
            self.ac_lost_since = None;
            if self.firmware.is_none() {
                self.firmware = Some(Firmware::boot(
                    self.fw_config.clone(),
                    self.nvm.clone(),
                    now_s,
                ));
            }
            return;
        }
        let since = *self.ac_lost_since.get_or_insert(now_s);
        if now_s - since >= AUX_HOLDUP_S {
            if let Some(fw) = self.firmware.take() {
                self.nvm = fw.nvm();
                self.last_measurements = None;
            }
        }
    }

    /// Whether the controller is powered (LEDs can be lit).
    pub fn is_powered(&self) -> bool {
        self.firmware.is_some()
    }

    /// What the unit reports. While dark it reports nothing; this returns
    /// [`BatteryStatus::off`] (lifecycle Off, no limits, LEDs out) so that callers need no special case.
    pub fn status(&self) -> BatteryStatus {
        match &self.firmware {
            Some(fw) => fw.status(),
            None => BatteryStatus::off(),
        }
    }

    /// The last actuation the firmware chose (what the plant is doing now).
    pub fn actuation(&self) -> &Actuation {
        &self.actuation
    }

    /// The last sensor sample the firmware saw, if powered.
    pub fn last_measurements(&self) -> Option<&Measurements> {
        self.last_measurements.as_ref()
    }

    pub fn faults(&self) -> &Faults {
        self.plant.faults()
    }

    /// Inject or remove hardware faults.
    pub fn faults_mut(&mut self) -> &mut Faults {
        self.plant.faults_mut()
    }

    /// True physical state: for KPIs and tests, never for control.
    pub fn truth(&self) -> TrueState {
        self.plant.truth()
    }

    /// Cumulative energy accounts of the plant.
    pub fn energy(&self) -> &EnergyLedger {
        self.plant.energy()
    }

    /// Ages every cell at once by `fade` of its new capacity (a test's or a campaign's ageing jump;
    /// the firmware learns it from its own capacity estimate, as after months of wear).
    pub fn age_by(&mut self, fade: f64) {
        self.plant.age_by(fade);
    }

    pub fn plant(&self) -> &Plant {
        &self.plant
    }

    pub fn firmware(&self) -> Option<&Firmware> {
        self.firmware.as_ref()
    }
}
