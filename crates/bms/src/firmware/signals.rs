//! Deriving the protection table's signals from one measurement.

use super::Firmware;
use crate::limits;
use crate::protect::{Signal, SIGNALS};
use crate::thermal;
use melv_core::io::{Measurements, CELL_TEMP_SENSORS};
use melv_core::spec::CELLS_IN_SERIES;

/// A rise rate is measured over at least this window, s (GB 38031-2020: dT/dt >= 1 degC/s held
/// for 3 s); shorter windows would turn sensor noise into a rate.
const RATE_WINDOW_S: f64 = 3.0;
/// Thermal-runaway thresholds: rise rate, degC/s, and absolute temperature, degC, either of which
/// together with a voltage collapse (a cell below 75 % of the others' mean: a drop of over 25 %,
/// GB 38031-2020 annex C) proves runaway. 80 degC is beyond every LFP operating window and is
/// where LFP self-heating onset starts in ARC tests (Feng et al., Energy Storage Materials 2018).
const RUNAWAY_RATE_C_PER_S: f64 = 1.0;
const RUNAWAY_TEMP_C: f64 = 80.0;
const COLLAPSE_FRACTION: f64 = 0.75;
/// GB 38031-2020 annex C criterion (b): "the maximum operating temperature specified by the
/// manufacturer": 60 degC, the top of the LFP discharge window (EVE LF280K datasheet).
const MAX_OPERATING_C: f64 = 60.0;
/// Early runaway signature (an internal short heating one cell, before the decomposition and
/// at any SOC): one NTC at least `HOT_SPOT_K` above the mean of the others, rising at least
/// `HOT_SPOT_RATE_C_PER_S` over `HOT_SPOT_WINDOW_S`, with a cell beside it `SAG_V` below the mean
/// of the six cells not beside it. 10 K is two thirds of the 15 K spread alarm (55) and twice the
/// 5 K module design target (Pesaran 2001); 1.2 K/min is six times the rise of a healthy cell at
/// the unit's largest current (~200 A through ~0.5 mOhm: 20 W on a 5.8 kJ/K cell, 0.2 K/min) and
/// above the 200 W heater spread over the module; a 40 mV sag is 8x the 5 mV worst-case AFE error
/// of two channels (model/sensors.rs) and, near rest, beyond any healthy plateau spread. Under
/// load the sag gets the IR allowance `SAG_PER_A_V` x |I| (2 mOhm: about the rise of an LFP
/// cell's DC resistance from 25 to 0 degC, so a heated cell next to cold ones is not a sag).
const HOT_SPOT_K: f64 = 10.0;
const HOT_SPOT_RATE_C_PER_S: f64 = 0.02;
const HOT_SPOT_WINDOW_S: f64 = 60.0;
const SAG_V: f64 = 0.040;
const SAG_PER_A_V: f64 = 0.002;
/// The sag in the knees, V: code 52's alarm level (`protect::TABLE` `cell_delta`).
const SAG_KNEE_V: f64 = 0.30;
/// The LFP OCV plateau, V (8 % to 99 % SOC on the cell curve of `estimate`, with room for
/// the IR drop at moderate current): code 52 is judged while the typical cell is inside it.
const PLATEAU_LOW_V: f64 = 3.10;
/// The pack divider and the sum of the AFE's cells measure the same thing; more than 0.2 V apart
/// means one of them failed. The budget (model/sensors.rs): the divider's 0.3 % gain error at
/// 28.8 V (86 mV), its 20 mV noise and 10 mV steps, and 8 x 3 mV of cell error: 0.14 V at worst.
/// It was 1 V; the fault campaign found a cell reading 0.15-0.21 V low (a sense drift) that let
/// the true cell charge to 3.78 V unseen (seed 1, scenarios 250, 1188, 1832). A drift below this
/// tolerance is beyond what one front end and a divider can tell (docs/firmware.md).
const PACK_DIVIDER_TOLERANCE_V: f64 = 0.2;
const PLATEAU_HIGH_V: f64 = 3.36;
/// A collapsed cell and healthy others, V (see `protect::Signal::CollapsedCell`): 2.0 V is the
/// instant stage of 51, below any cell a load takes down (the firmware stops discharging at
/// 2.60 V); the others at 3.0 V or more (about 4 % SOC at rest) are off the lower knee, where a
/// weak cell's self-discharge alone parts cells from 2.0 to 2.9 V (fault campaign seed 1,
/// scenario 6594, which 2.5 V took for a short).
const COLLAPSED_CELL_V: f64 = 2.0;
const COLLAPSED_OTHERS_V: f64 = 3.0;

impl Firmware {
    /// Computes every signal of the protection table from one measurement.
    pub(super) fn derive_signals(&mut self, now_s: f64, m: &Measurements) -> [f64; SIGNALS] {
        let CellSummary {
            min_v,
            max_v,
            sum_v,
            raw_min_v,
            raw_sum_v,
            implausible,
            divider_agrees,
        } = CellSummary::of(m);
        // Readings the divider contradicts are no runaway evidence (see `divider_agrees`).
        let wire_fault = implausible || !divider_agrees;
        let mut implausible = implausible;
        // Raw extreme, plausible or not: thermal runaway drives an NTC past its range.
        let mut raw_max_t = f64::NEG_INFINITY;
        let mut min_t = f64::INFINITY;
        let mut max_t = f64::NEG_INFINITY;
        for &t in &m.cell_temp_c {
            raw_max_t = raw_max_t.max(t);
            // NTC open reads very cold, shorted reads very hot (beyond -40..125 degC, the usual
            // NTC curve range of BMS front ends). Such a reading is a sensor fault (62), not a
            // temperature: it is left out of min/max so it cannot also raise 53 or 54.
            if (-40.0..=125.0).contains(&t) {
                min_t = min_t.min(t);
                max_t = max_t.max(t);
            } else {
                implausible = true;
            }
        }
        if min_t > max_t {
            // No plausible sensor at all: unknown temperature, and the limits go to zero.
            min_t = f64::NAN;
            max_t = f64::NAN;
        }
        implausible |= !(-40.0..=125.0).contains(&m.inlet_temp_c);
        implausible |= above_or_nan((m.pack_v - sum_v).abs(), PACK_DIVIDER_TOLERANCE_V);
        implausible |= above_or_nan(m.pack_current_a.abs(), 2.0 * limits::CELL_MAX_A);
        self.min_cell_v = min_v;
        self.max_cell_v = max_v;
        self.min_temp_c = min_t;
        self.max_temp_c = max_t;

        self.update_rise_rate(now_s, raw_max_t);
        let others_mean = (raw_sum_v - raw_min_v) / (CELLS_IN_SERIES - 1) as f64;
        let collapse = !wire_fault && raw_min_v < COLLAPSE_FRACTION * others_mean;
        // GB 38031-2020 annex C: (a) voltage drop > 25 % or (b) the maximum operating temperature,
        // each together with (c) dT/dt >= 1 degC/s for 3 s; and the older absolute alternative
        // (80 degC with a collapse) for steps too coarse for a rate.
        // Criterion (b) is taken at a local hot spot only: every sensor jumping past 60 degC at
        // once is heat from outside (or a synthetic step), not one cell running away.
        let early = self.runaway.update(now_s, m) && !wire_fault;
        // GB 38031's rate "held": two windows in a row. A stuck or shorted NTC jumps once and
        // then stands still (one window); a cell in runaway keeps rising (fault campaign seed 1:
        // scenarios 25 and 99 raised 60 for a stuck sensor).
        let fast_rise = self.temp_rate_c_per_s >= RUNAWAY_RATE_C_PER_S
            && self.temp_rate_prev >= RUNAWAY_RATE_C_PER_S;
        let gb = fast_rise
            && (collapse || (raw_max_t >= MAX_OPERATING_C && self.runaway.hot_spot_seen()));
        let absolute = collapse && raw_max_t >= RUNAWAY_TEMP_C;

        let i = m.pack_current_a;
        let floor = crate::estimate::TAPER_A;
        // Against the current the firmware allowed in the previous cycle (the one the power stage
        // was obeying while this sample was taken).
        let over = if i >= 0.0 {
            i / (self.allowed_discharge_a + floor)
        } else {
            -i / (self.allowed_charge_a + floor)
        };

        let mut s = [0.0; SIGNALS];
        s[Signal::MaxCellV as usize] = max_v;
        s[Signal::MinCellV as usize] = min_v;
        s[Signal::PackV as usize] = m.pack_v;
        // In the knees LFP cells part by tenths of a volt for a 1 % SOC difference, which is
        // normal; a cell 300 mV away from the others while the pack sits on the plateau is not.
        // "The pack" is the mean of the six middle cells (no sort, no allocation).
        let typical = (sum_v - min_v - max_v) / (CELLS_IN_SERIES - 2) as f64;
        s[Signal::CellDeltaV as usize] = if (PLATEAU_LOW_V..=PLATEAU_HIGH_V).contains(&typical) {
            max_v - min_v
        } else {
            0.0
        };
        s[Signal::MaxCellTempC as usize] = max_t;
        s[Signal::MinCellTempC as usize] = min_t;
        s[Signal::CellTempSpreadC as usize] = max_t - min_t;
        s[Signal::InletTempC as usize] = m.inlet_temp_c;
        s[Signal::FanStalled as usize] = f64::from(u8::from(
            self.act.fan_duty >= thermal::FAN_MIN_DUTY && below_or_nan(m.fan_rpm, 300.0),
        ));
        s[Signal::HeaterDead as usize] = f64::from(u8::from(
            self.act.heater_on && below_or_nan(m.heater_current_a, 0.5),
        ));
        s[Signal::CurrentOverLimit as usize] = over;
        s[Signal::Soh as usize] = self.soc.soh();
        s[Signal::CellLeakMvPerH as usize] = self.leak.worst_mv_per_h;
        s[Signal::CellLeakAhPerDay as usize] = self
            .leak
            .knee
            .worst_ah_per_day
            .max(self.leak.window.worst_ah_per_day);
        s[Signal::RunawayIndicator as usize] = f64::from(u8::from(gb || absolute || early));
        s[Signal::CollapsedCell as usize] = f64::from(u8::from(collapsed(min_v, sum_v)));
        s[Signal::InsulationKohm as usize] = m.insulation_kohm;
        s[Signal::PowerStageFault as usize] = f64::from(u8::from(m.power_stage_fault));
        s[Signal::SensorImplausible as usize] = f64::from(u8::from(implausible));
        s[Signal::CurrentWhileStoppedA as usize] = if self.act.power_enabled {
            0.0
        } else {
            // The heater runs off the DC bus in every state: its measured current is expected.
            let heater = if m.heater_current_a.is_finite() {
                m.heater_current_a
            } else {
                0.0
            };
            (i.abs() - heater).max(0.0)
        };
        s
    }
}

impl Firmware {
    /// Rise rate of the hottest raw reading over a window of at least `RATE_WINDOW_S`, and the
    /// window's before.
    fn update_rise_rate(&mut self, now_s: f64, raw_max_t: f64) {
        if self.temp_ref_t.is_nan() || !self.temp_ref_c.is_finite() {
            self.temp_ref_t = now_s;
            self.temp_ref_c = raw_max_t;
        } else if now_s - self.temp_ref_t >= RATE_WINDOW_S {
            self.temp_rate_prev = self.temp_rate_c_per_s;
            self.temp_rate_c_per_s = (raw_max_t - self.temp_ref_c) / (now_s - self.temp_ref_t);
            self.temp_ref_t = now_s;
            self.temp_ref_c = raw_max_t;
        }
    }
}

/// One cell collapsed, the others not (`min_v` counts a real dead cell; see `CellSummary`).
fn collapsed(min_v: f64, sum_v: f64) -> bool {
    let others_mean = (sum_v - min_v) / (CELLS_IN_SERIES - 1) as f64;
    min_v < COLLAPSED_CELL_V && others_mean > COLLAPSED_OTHERS_V
}

/// `x > limit`, with a NaN reading counted as out of bounds (a broken sensor is not "fine").
pub(super) fn above_or_nan(x: f64, limit: f64) -> bool {
    x.is_nan() || x > limit
}

/// `x < limit`, with a NaN reading counted as out of bounds.
pub(super) fn below_or_nan(x: f64, limit: f64) -> bool {
    x.is_nan() || x < limit
}

/// The cell voltages of one sample, summarised.
struct CellSummary {
    /// Lowest and highest plausible reading (NaN when none), V.
    min_v: f64,
    max_v: f64,
    /// Sum of the readings when all eight are plausible, else NaN, V.
    sum_v: f64,
    /// Raw lowest reading and raw sum, plausible or not (runaway drives a cell to ~0 V), V.
    raw_min_v: f64,
    raw_sum_v: f64,
    /// A reading outside the physical range that is not a real dead cell.
    implausible: bool,
    /// The pack divider agrees with the raw sum of the readings (within its tolerance; false for a
    /// NaN reading). Readings it contradicts (an open sense wire reads 0 V while the cell is
    /// there, a sense drift reads it off) are no voltage evidence of a runaway: with them the raw
    /// collapse and sag tests are off (fault campaign seed 1, scenarios 16812 and 51052 of the
    /// 10^5 run: either beside a stuck NTC raised 60).
    divider_agrees: bool,
}

impl CellSummary {
    fn of(m: &Measurements) -> Self {
        let mut min_v = f64::INFINITY;
        let mut max_v = f64::NEG_INFINITY;
        let mut sum_v = 0.0;
        let mut n_ok = 0usize;
        let mut implausible = false;
        let mut raw_min_v = f64::INFINITY;
        let mut raw_sum_v = 0.0;
        for &v in &m.cell_v {
            raw_min_v = raw_min_v.min(v);
            raw_sum_v += v;
        }
        // The pack divider is an independent measurement of the sum of the cells: when it agrees
        // with the sum of the readings *including* a cell that reads near 0 V, that cell is really
        // dead (a collapsed or shorted cell: 51), not an open sense wire (which reads 0 V while
        // the divider still sees the cell's ~3.3 V: 62).
        let divider_agrees = (m.pack_v - raw_sum_v).abs() <= PACK_DIVIDER_TOLERANCE_V;
        for &v in &m.cell_v {
            // An open sense wire reads ~0 V on the AFE; nothing above 5 V is an LFP cell. Such a
            // reading is a sensor fault (62), left out of min/max so it cannot also raise 51/52.
            if (0.5..=5.0).contains(&v) || ((0.0..0.5).contains(&v) && divider_agrees) {
                min_v = min_v.min(v);
                max_v = max_v.max(v);
                sum_v += v;
                n_ok += 1;
            } else {
                implausible = true;
            }
        }
        if n_ok < CELLS_IN_SERIES {
            // Signals built on all eight cells are not available; min/max of the rest still guard.
            sum_v = f64::NAN;
        }
        if n_ok == 0 {
            min_v = f64::NAN;
            max_v = f64::NAN;
        }
        Self {
            min_v,
            max_v,
            sum_v,
            raw_min_v,
            raw_sum_v,
            implausible,
            divider_agrees,
        }
    }
}

/// The early runaway watch: the hottest NTC's rise over [`HOT_SPOT_WINDOW_S`] windows, and the
/// hot-spot and voltage-sag test of each sample (see [`HOT_SPOT_K`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct RunawayWatch {
    ref_t: f64,
    ref_c: [f64; CELL_TEMP_SENSORS],
    /// Rise rate of each sensor over the last complete window, degC/s.
    rate: [f64; CELL_TEMP_SENSORS],
    /// The hottest sensor is at least `HOT_SPOT_K` above the mean of the others (this sample).
    hot_spot: bool,
    /// A cell beside the hottest sensor sags below the others (this sample; see `SAG_V`).
    sag: bool,
}

impl Default for RunawayWatch {
    fn default() -> Self {
        Self {
            ref_t: f64::NAN,
            ref_c: [f64::NAN; CELL_TEMP_SENSORS],
            rate: [0.0; CELL_TEMP_SENSORS],
            hot_spot: false,
            sag: false,
        }
    }
}

impl RunawayWatch {
    /// Whether the last sample showed one sensor `HOT_SPOT_K` above the others.
    pub(super) fn hot_spot_seen(&self) -> bool {
        self.hot_spot
    }

    /// Updates the rates and returns whether the early signature is present now.
    pub(super) fn update(&mut self, now_s: f64, m: &Measurements) -> bool {
        let t = &m.cell_temp_c;
        if !self.ref_t.is_finite() || now_s < self.ref_t {
            self.ref_t = now_s;
            self.ref_c = *t;
        } else if now_s - self.ref_t >= HOT_SPOT_WINDOW_S {
            let span = now_s - self.ref_t;
            for ((r, now), then) in self.rate.iter_mut().zip(t).zip(&self.ref_c) {
                *r = (now - then) / span;
            }
            self.ref_t = now_s;
            self.ref_c = *t;
        }
        // The hottest sensor (NaN readings never win) and the mean of the others.
        let mut k = 0;
        for j in 1..CELL_TEMP_SENSORS {
            if t[j] > t[k] || t[k].is_nan() {
                k = j;
            }
        }
        let others = (t.iter().sum::<f64>() - t[k]) / (CELL_TEMP_SENSORS - 1) as f64;
        self.hot_spot = t[k] - others >= HOT_SPOT_K;
        self.sag = false;
        if !self.hot_spot {
            return false;
        }
        // Sensor k sits between cells 2k and 2k+1 (one NTC per cell pair, melv_core::io).
        let (a, b) = (m.cell_v[2 * k], m.cell_v[2 * k + 1]);
        let rest = (m.cell_v.iter().sum::<f64>() - a - b) / (CELLS_IN_SERIES - 2) as f64;
        let i = if m.pack_current_a.is_finite() {
            m.pack_current_a.abs()
        } else {
            0.0
        };
        // In the knees healthy cells part by tenths of a volt (a full pack spreads over 140 mV at
        // rest): there a sag must be of the size code 52 alarms at, 300 mV (a runaway's internal
        // short takes a cell far below that within minutes, at any SOC).
        let sag_v = if (PLATEAU_LOW_V..=PLATEAU_HIGH_V).contains(&rest) {
            SAG_V
        } else {
            SAG_KNEE_V
        };
        self.sag = a.min(b) <= rest - sag_v - SAG_PER_A_V * i;
        self.sag && self.rate[k] >= HOT_SPOT_RATE_C_PER_S
    }
}
