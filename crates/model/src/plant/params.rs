//! Parameters of the plant's stepping, auxiliaries, power stage and fault models, with sources.

/// Longest electrical sub-step of [`crate::Plant::step`], s. Within a sub-step the pack current is
/// constant and solved once; the RC pairs are integrated exactly for it, SOC is linear in it, and the
/// thermal network inside takes explicit parts of at most [`crate::thermal::MAX_STEP_S`]. 60 s at the
/// 5 kVA peak moves a cell by 1.2 % of SOC; on the LFP plateau (where the unit lets a step run in one
/// piece, `melv_unit::KNEE_SUBSTEP_S`) the OCV moves a fraction of a millivolt over that, so solving
/// the current once instead of six times changes the energy flows by parts per million
/// (`tests/plant.rs::electrical_sub_steps_of_60_s_match_10_s`).
pub const MAX_ELECTRICAL_STEP_S: f64 = 60.0;
/// Refresh interval of temperature- and age-dependent parameters, s.
/// (Cell time constants are 1,000 s and more, so 30 s moves a cell well under 0.1 K.)
pub const SLOW_REFRESH_S: f64 = 30.0;
/// Sampling interval of ageing stress, s (mean SOC and temperature of a chunk; 5 minutes resolves a
/// daily cycle finely).
pub const AGE_SAMPLE_S: f64 = 300.0;
/// Ageing chunk: stress is applied to the capacity once a day (BLAST-Lite's chunk length).
pub const AGE_CHUNK_S: f64 = 86_400.0;

/// Control electronics (BMS board, CAN, inverter controller) consumption while awake, W. The manual gives
/// none; HTW Berlin's "Stromspeicher-Inspektion" measures 2-30 W standby for AC-coupled home batteries,
/// the better half under 10 W: we take 8 W.
pub const STANDBY_W: f64 = 8.0;
/// Lowest phase-1 voltage at which the auxiliary supply runs from AC, V: the low end of the
/// 85-264 VAC "universal input" range of off-line switch-mode supplies (e.g. Mean Well IRM/RAC
/// series datasheets). Below it (or without a grid) the auxiliaries run from the pack.
pub const AUX_SUPPLY_MIN_V: f64 = 85.0;
/// Heater power, W: four 50 W PTC pads on the cell faces (a common kit for 280 Ah 8S modules), enough
/// to lift 46 kJ/K of cells by 10 K in well under an hour at -20 degC ambient (manual 7.1 range).
pub const HEATER_W: f64 = 200.0;
/// Fan electrical power at full duty, W (two 120 mm 24 V fans of about 6 W; power ~ duty^3 by the fan
/// affinity laws).
pub const FAN_MAX_W: f64 = 12.0;
/// Fan speed at full duty, rpm.
pub const FAN_MAX_RPM: f64 = 3_000.0;
/// Below this PWM duty the fans do not start (typical 4-wire fan minimum, 10-20 %).
pub const FAN_MIN_DUTY: f64 = 0.15;
/// Passive-balancing bleed resistor per cell, ohm: about 100 mA at 3.3 V, the usual external-FET
/// balancing current of 280 Ah 8S boards.
pub const BLEED_OHM: f64 = 33.0;
pub(super) const BLEED_S: f64 = 1.0 / BLEED_OHM;
/// Power stage's DC current limit, A (hardware): 5 kVA at the 2.5 V/cell end (20 V) plus losses.
pub const DC_CURRENT_MAX_A: f64 = 260.0;
/// Power stage's DC under-voltage lockout, V (2.0 V/cell): below it the bridge cannot run.
pub const DC_UVLO_V: f64 = 16.0;
/// Power stage's DC voltage ceiling when charging, V (4.0 V/cell): the DC stage regulates to it.
pub const DC_OVLO_V: f64 = 32.0;
/// Internal short of a cell in thermal runaway, ohm at 25 degC, falling e-fold every 20 K as the
/// separator shrinks, floored at 1 mOhm (a hard internal short).
pub(super) const RUNAWAY_SHORT_OHM: f64 = 0.05;
pub(super) const RUNAWAY_SHORT_MIN_OHM: f64 = 1e-3;
/// Energy a runaway cell can release by decomposition, J (about 1 MJ for a 5.5 kg LFP cell, ARC data
/// of large LFP cells give 150-250 kJ/kg).
pub(super) const RUNAWAY_FUEL_J: f64 = 1.0e6;

/// SOC window in which a step longer than [`MAX_ELECTRICAL_STEP_S`] runs as one sub-step
/// (`Plant::long_substep`): every cell inside it at the start and, at the start's current, at the
/// end. Inside it the OCV is the LFP plateau's (a few mV per % of SOC), so the current solved at
/// the step's midpoint OCV is within a fraction of a per mille of the true mean, and no hardware
/// limit of the power stage can bind; outside it the step takes 60 s sub-steps. Slightly wider than
/// the unit's knee band (`melv_unit`'s 6-94 %), where the unit cuts its steps.
pub const LONG_STEP_SOC: (f64, f64) = (0.05, 0.95);

/// Largest SOC move of any cell over a step that runs as one sub-step wherever the cells are (an
/// idle pack sitting full or empty): 0.05 %, the unit's knee part (`melv_unit`'s `KNEE_PART_SOC`);
/// near full an LFP cell's OCV moves about 25 mV over it, and the current is solved at the
/// midpoint's OCV.
pub const LONG_STEP_STILL_SOC: f64 = 0.0005;
