//! State estimation from measurements: SOC (coulomb counting with recalibration at full and at
//! empty), capacity / SOH (charge counted between two opposite calibration points), and the
//! rest-voltage drift detector behind code 59.
//!
//! LFP's open-circuit voltage is flat between about 20 % and 90 % SOC (a few mV per 10 %), so the
//! voltage says little about SOC in the middle; the counter carries the estimate there, and the
//! two knees (full: cell near 3.6 V with the current tapered; empty: a cell at the discharge stop)
//! reset it. That is why manual 6.1's note asks for one charge to 100 % after first power-on or
//! long storage: it is the first calibration point.

use melv_core::spec::{self, CELLS_IN_SERIES};

/// Full: the highest cell at or above this, V, with the current tapered (below [`TAPER_A`]).
/// 50 mV under the 3.60 V charge end (manual 7.1: 28.8 V / 8), where the firmware's CV taper sits.
pub const FULL_CELL_V: f64 = 3.55;
/// Taper current that marks the end of charge, A: 0.05 C of 280 Ah (manual 7.1), the usual CC-CV
/// termination current of LFP datasheets (EVE LF280K: 0.05 C cut-off).
pub const TAPER_A: f64 = 0.05 * spec::NOMINAL_CAPACITY_AH;
/// Fraction of the nominal capacity that lies between the firmware's two calibration points on a
/// new cell: "empty" (2.65 V at <= 0.1 C) is about 1.5 % above the cell's 0 % on the OCV table below,
/// and "full" (3.55 V, 0.05 C taper) about 0.5 % past its 100 % point: 0.985.
pub const USABLE_FRACTION_NEW: f64 = 0.985;
/// Usable capacity of a new unit between the calibration points, Ah (manual 7.1: 280 Ah nominal).
pub const USABLE_AH_NEW: f64 = USABLE_FRACTION_NEW * spec::NOMINAL_CAPACITY_AH;

/// Empty: the lowest cell at or below this, V, with the current tapered below [`EMPTY_MAX_A`]. The
/// firmware's discharge taper (2.95 -> 2.60 V, see `limits`) settles the cell here at low current.
pub const EMPTY_CELL_V: f64 = 2.65;
/// Current under which the empty reading is trusted, A (0.1 C): at higher current, especially in
/// the cold (LFP resistance rises several-fold below 0 degC), the IR sag alone can pull a cell to
/// 2.9 V with 15 % left, and a false "empty" would shorten the capacity estimate.
pub const EMPTY_MAX_A: f64 = 0.1 * spec::NOMINAL_CAPACITY_AH;

/// LFP/graphite open-circuit voltage at 25 degC after rest, (SOC, V): the characterisation table a
/// cell maker supplies. Ours is sampled from the full-cell curve of published electrode data (LFP:
/// Afshar, Morris & Khajepour 2017, arXiv:1709.03970; graphite: Safari & Delacourt 2011, J.
/// Electrochem. Soc. 158(5) A562), the same data the plant model uses; the plateau is flat (about
/// 3.22-3.32 V from 20 to 97 %), the knees are steep. Used to seed SOC and to correct it in the
/// knees.
const OCV: [(f64, f64); 16] = [
    (0.00, 2.31),
    (0.01, 2.53),
    (0.02, 2.70),
    (0.03, 2.82),
    (0.05, 2.98),
    (0.08, 3.107),
    (0.10, 3.149),
    (0.15, 3.198),
    (0.20, 3.222),
    (0.30, 3.254),
    (0.50, 3.276),
    (0.70, 3.300),
    (0.90, 3.318),
    (0.97, 3.322),
    (0.99, 3.347),
    (1.00, 3.434),
];

/// SOC from a rested cell voltage (monotone interpolation of [`OCV`]).
pub fn soc_from_ocv(v: f64) -> f64 {
    if !v.is_finite() || v <= OCV[0].1 {
        return 0.0;
    }
    for w in OCV.windows(2) {
        let ((s0, v0), (s1, v1)) = (w[0], w[1]);
        if v <= v1 {
            return s0 + (s1 - s0) * (v - v0) / (v1 - v0);
        }
    }
    1.0
}

/// Which end the last calibration was at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalPoint {
    Full,
    Empty,
}

/// Coulomb counter with recalibration and capacity learning.
#[derive(Debug, Clone)]
pub struct SocEstimator {
    pub soc: f64,
    pub capacity_ah: f64,
    /// Net Ah taken out since the last calibration (positive = discharged).
    pub ah_since_cal: f64,
    pub last_cal: Option<CalPoint>,
    pub last_full_s: Option<f64>,
    /// Capacity estimates accepted so far.
    pub capacity_updates: u32,
    pub soc_valid: bool,
    /// Bound on the SOC error, fraction: grows with the counted time and charge, shrinks at each
    /// calibration. Coarse-step limits keep this far from the ends.
    pub soc_unc: f64,
    /// Start of the current near-rest period, s (NaN while current flows).
    pub rest_since: f64,
    /// The last accepted span between opposite calibration points (RAM only).
    pub last_span: Option<Span>,
}

/// One charge counted between two opposite calibration points (full to empty or back), for the
/// window-shrink leak detector: when it ended, s, and its charge, Ah.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    pub end_s: f64,
    pub ah: f64,
}

/// Near-rest time before a knee voltage is trusted, s (see `SocEstimator::update`).
pub const OCV_REST_S: f64 = 600.0;

/// Shunt offset bound, A: 0.17 % of a 300 A range, what a 16-bit ADC on a 100 uV/A class shunt
/// holds over temperature (assumed; a real unit's datasheet would state it).
pub const SHUNT_OFFSET_BOUND_A: f64 = 0.5;
/// Shunt gain error bound, fraction of the counted charge (1 %, a manganin shunt's tolerance plus
/// drift).
pub const SHUNT_GAIN_BOUND: f64 = 0.01;
/// SOC error after a calibration at full or empty.
pub const CAL_UNC: f64 = 0.01;
/// SOC error after an OCV correction in a knee, and after seeding on the plateau.
pub const OCV_KNEE_UNC: f64 = 0.03;
pub const OCV_PLATEAU_UNC: f64 = 0.20;

/// Current at which a cell's voltage is within ~10 mV of its OCV, A: the 0.05 C taper current
/// through ~0.6 mOhm of cell and interconnect. The IR error has the safe sign: it lifts the voltage
/// while charging (SOC read high before the next charge) and lowers it while discharging.
pub const NEAR_REST_A: f64 = TAPER_A;
/// OCV knees where a rested voltage says something about SOC, V. LFP rests on a charge branch
/// after charging and a discharge branch after discharging, about +-20 mV around [`OCV`]
/// (hysteresis: Roscher & Sauer, J. Power Sources 196 (2011) 331; Plett vol. 1 ch. 2), and the
/// polarisation of a 0.5 C charge still adds ~10 mV after ten minutes. The plateau's top (97 %,
/// 3.322 V) read after a charge can therefore show 3.35 V; only above 3.37 V is the cell really
/// in its upper knee (>= 99 %). Below 3.15 V (<= 10 %) it is in the lower knee.
pub const OCV_UPPER_KNEE_V: f64 = 3.37;
/// Half-gap of the OCV hysteresis, V: a knee reading is moved back by this toward [`OCV`] (down
/// at the top, where the cell arrived charging; up at the bottom).
pub const OCV_HYSTERESIS_V: f64 = 0.02;
pub const OCV_LOWER_KNEE_V: f64 = 3.15;

/// Weight of a new capacity measurement. One full span is a good but noisy measurement (shunt
/// offset, the calibration thresholds' own SOC error), so it moves the estimate a third of the way.
const CAPACITY_GAIN: f64 = 0.3;

impl SocEstimator {
    /// Counts `current_a` (positive = discharging) over `dt_s`, then recalibrates if the cells are
    /// at a knee. `learn_capacity`: the cells are warm enough (>= 10 degC) for a span between two
    /// calibrations to measure the capacity. Returns the calibration made, if any.
    pub fn update(
        &mut self,
        now_s: f64,
        dt_s: f64,
        current_a: f64,
        max_cell_v: f64,
        min_cell_v: f64,
        learn_capacity: bool,
    ) -> Option<CalPoint> {
        if !self.soc_valid {
            // First sample: seed from the OCV of the median-ish cell (the mean of min and max).
            let v = 0.5 * (max_cell_v + min_cell_v);
            if v.is_finite() {
                self.soc = soc_from_ocv(v);
                self.soc_valid = true;
                let knee = !(OCV_LOWER_KNEE_V..=OCV_UPPER_KNEE_V).contains(&v);
                self.soc_unc = if knee { OCV_KNEE_UNC } else { OCV_PLATEAU_UNC };
            }
            return None;
        }
        if current_a.is_finite() && dt_s > 0.0 {
            let ah = current_a * dt_s / 3600.0;
            self.ah_since_cal += ah;
            self.soc = (self.soc - ah / self.capacity_ah).clamp(0.0, 1.0);
            let err_ah = SHUNT_OFFSET_BOUND_A * dt_s / 3600.0 + SHUNT_GAIN_BOUND * ah.abs();
            self.soc_unc = (self.soc_unc + err_ah / self.capacity_ah).min(0.5);
        }
        // Near-rest voltage in a knee, where the OCV curve is steep enough to mean something: the
        // estimate takes the voltage's word once the pack has been near rest for OCV_REST_S (the
        // polarisation of a 0.5 C charge still lifts the voltage by ~15 mV five minutes later,
        // which on the flat upper plateau would read as 20 % of SOC). A sample reports the
        // interval just ended, so a near-rest sample opens a rest that began `dt` earlier.
        let near_rest = current_a.is_finite() && current_a.abs() <= NEAR_REST_A;
        if !near_rest {
            self.rest_since = f64::NAN;
        } else if self.rest_since.is_nan() {
            self.rest_since = now_s - dt_s;
        }
        if near_rest && now_s - self.rest_since >= OCV_REST_S {
            // The fullest cell bounds the charge, the emptiest the discharge: each knee is read
            // on the cell that reaches it first (as the calibrations at full and empty do).
            if (OCV_UPPER_KNEE_V..4.0).contains(&max_cell_v) {
                self.soc = soc_from_ocv(max_cell_v - OCV_HYSTERESIS_V);
                self.soc_unc = self.soc_unc.min(OCV_KNEE_UNC);
            } else if min_cell_v <= OCV_LOWER_KNEE_V && min_cell_v > 1.0 {
                self.soc = soc_from_ocv(min_cell_v + OCV_HYSTERESIS_V);
                self.soc_unc = self.soc_unc.min(OCV_KNEE_UNC);
            }
        }
        let full = max_cell_v >= FULL_CELL_V && current_a.abs() <= TAPER_A;
        let empty =
            min_cell_v <= EMPTY_CELL_V && min_cell_v > 1.0 && current_a.abs() <= EMPTY_MAX_A;
        let point = if full {
            CalPoint::Full
        } else if empty {
            CalPoint::Empty
        } else {
            return None;
        };
        // Charge counted between two opposite ends is the usable capacity.
        let span_ah = self.ah_since_cal.abs();
        if let Some(prev) = self.last_cal {
            // A span counted in the cold or across a seeding is not a capacity measurement.
            if prev != point && learn_capacity {
                let nominal = spec::NOMINAL_CAPACITY_AH;
                // Accept only plausible spans: a shunt glitch must not age the pack by 50 %.
                if (0.3 * nominal..=1.2 * nominal).contains(&span_ah) {
                    self.last_span = Some(Span {
                        end_s: now_s,
                        ah: span_ah,
                    });
                    self.capacity_ah += CAPACITY_GAIN * (span_ah - self.capacity_ah);
                    self.capacity_updates += 1;
                }
            }
        }
        self.soc = if point == CalPoint::Full { 1.0 } else { 0.0 };
        self.soc_unc = CAL_UNC;
        if point == CalPoint::Full {
            self.last_full_s = Some(now_s);
        }
        self.last_cal = Some(point);
        self.ah_since_cal = 0.0;
        Some(point)
    }

    /// State of health: estimated usable capacity over a new unit's (the same window, so a new
    /// unit reads 100 %; manual 7.1: 280 Ah nominal).
    pub fn soh(&self) -> f64 {
        (self.capacity_ah / USABLE_AH_NEW).clamp(0.0, 1.0)
    }
}

/// Rest-voltage drift detector (code 59). At rest (|I| below [`REST_A`], no balancing), each cell's
/// deviation from the mean of the other cells is filtered; after a settling time a baseline is taken, and from
/// then on the drift of each cell's deviation is a rate in mV/h. A cell with an internal leak loses
/// charge that its neighbours keep, so its deviation falls; a healthy pack's deviations stay flat
/// (common-mode relaxation cancels in the deviation).
#[derive(Debug, Clone)]
pub struct LeakDetector {
    rest_since: f64,
    baseline_t: f64,
    dev: [f64; CELLS_IN_SERIES],
    baseline: [f64; CELLS_IN_SERIES],
    last_t: f64,
    /// Samples since the baseline was taken.
    samples: u32,
    /// Most negative drift of the current window, mV/h (0 before a window is complete).
    pub worst_mv_per_h: f64,
    /// The under-load detector (charge balance at the upper knee), which runs every cycle.
    pub knee: KneeLeak,
    /// The under-load detector on the usable window between full and empty.
    pub window: WindowLeak,
}

/// Current under which the pack is at rest, A (the shunt's noise floor plus BMS draw).
pub const REST_A: f64 = 2.0;
/// Settling after current stops before a baseline is taken, s: LFP relaxation is mostly done in
/// 1-2 h (polarisation time constants of minutes to an hour); 2 h keeps the detector quiet after
/// every normal charge.
pub const LEAK_SETTLE_S: f64 = 7200.0;
/// Shortest window over which a drift is judged, s.
pub const LEAK_WINDOW_S: f64 = 3600.0;
/// Plateau band in which drift is judged, V: 15 % to 97 % SOC on [`OCV`].
pub const LEAK_PLATEAU_V: (f64, f64) = (3.20, 3.33);
/// Fewest samples a drift window must hold before it is judged: at 1 h steps a window of one or
/// two samples is one noisy difference (the filter below cannot average at that cadence), so the
/// rest detector then needs 10 h of rest; at the firmware's 60 s leak cadence a 1 h window holds 60.
pub const LEAK_MIN_SAMPLES: u32 = 10;
/// Filter time constant of the deviations, s (averages the AFE's 1 mV quantisation and noise).
const LEAK_TAU_S: f64 = 300.0;

impl Default for LeakDetector {
    fn default() -> Self {
        Self {
            rest_since: f64::NAN,
            baseline_t: f64::NAN,
            dev: [0.0; CELLS_IN_SERIES],
            baseline: [0.0; CELLS_IN_SERIES],
            last_t: f64::NAN,
            samples: 0,
            worst_mv_per_h: 0.0,
            knee: KneeLeak::default(),
            window: WindowLeak::default(),
        }
    }
}

impl LeakDetector {
    /// The under-load detectors, every cycle: the knee charge balance and the window shrink.
    /// `mask`: the balance mask applied over the interval just ended; `temps_c`: coldest and
    /// hottest cell sensor; `span`: the estimator's last full-to-empty span; `step_s`: the
    /// control cycle. The window rule is judged only at controller cadence (at most
    /// [`WINDOW_MAX_STEP_S`]): where the firmware is stepped once a minute or slower (a coarse
    /// simulation) the ends of a span fall where the coarse step lands, and healthy windows moved
    /// by up to 25 Ah from span to span in the fault campaign (seed 1, scenario 18).
    #[allow(clippy::too_many_arguments)]
    pub fn under_load(
        &mut self,
        now_s: f64,
        cell_v: &[f64; CELLS_IN_SERIES],
        current_a: f64,
        mask: u8,
        temps_c: (f64, f64),
        span: Option<Span>,
        step_s: f64,
    ) {
        self.knee.update(now_s, cell_v, current_a, mask, temps_c);
        let bled = self.knee.mean_bled_ah();
        if step_s <= WINDOW_MAX_STEP_S {
            self.window.update(span, bled, temps_c.0);
        }
    }

    /// `idle`: the firmware drove no power and no balancing over the interval just ended. A small
    /// current in a knee (the taper allowance, a heater on battery) moves the cells apart by their
    /// different slopes, which is not a leak, so only a truly idle pack is judged.
    pub fn update(
        &mut self,
        now_s: f64,
        cell_v: &[f64; CELLS_IN_SERIES],
        current_a: f64,
        idle: bool,
    ) {
        // Only on the OCV plateau: in the knees the cells' different relaxation and slopes move
        // their voltages apart by several mV an hour with no leak at all.
        let resting = idle
            && current_a.is_finite()
            && current_a.abs() < REST_A
            && cell_v
                .iter()
                .all(|v| (LEAK_PLATEAU_V.0..=LEAK_PLATEAU_V.1).contains(v));
        if !resting {
            let (knee, window) = (self.knee, self.window);
            *self = Self::default();
            (self.knee, self.window) = (knee, window);
            return;
        }
        let sum = cell_v.iter().sum::<f64>();
        let others = (CELLS_IN_SERIES - 1) as f64;
        let dt = if self.last_t.is_finite() {
            (now_s - self.last_t).max(0.0)
        } else {
            f64::INFINITY
        };
        self.last_t = now_s;
        let a = 1.0 - (-dt / LEAK_TAU_S).exp();
        for (d, v) in self.dev.iter_mut().zip(cell_v) {
            // Against the mean of the *other* cells, so one cell's drift shows at full size.
            *d += (v - (sum - v) / others - *d) * a;
        }
        if self.rest_since.is_nan() {
            self.rest_since = now_s;
            return;
        }
        if self.baseline_t.is_nan() {
            if now_s - self.rest_since >= LEAK_SETTLE_S {
                self.baseline = self.dev;
                self.baseline_t = now_s;
            }
            return;
        }
        let hours = (now_s - self.baseline_t) / 3600.0;
        self.samples = self.samples.saturating_add(1);
        if hours * 3600.0 >= LEAK_WINDOW_S && self.samples >= LEAK_MIN_SAMPLES {
            self.worst_mv_per_h = self
                .dev
                .iter()
                .zip(&self.baseline)
                .map(|(d, b)| (d - b) * 1000.0 / hours)
                .fold(0.0, f64::min);
        }
    }
}

/// Upper-knee reference voltage of the under-load leak detector, V: above the 3.32-3.35 V top of
/// the plateau (OCV table), where a cell under charge climbs 0.2-0.5 mV/s at 0.4 C, so the moment
/// a cell passes it marks its charge to a few hundredths of an Ah; the balancer starts here too
/// (`thermal::BALANCE_START_V`).
pub const KNEE_REF_V: f64 = 3.40;
/// A charge session is armed once the highest cell is back below this, V (the plateau).
const KNEE_ARM_V: f64 = 3.33;
/// Crossings count while charging at least this hard, A: the firmware's end-of-charge taper
/// current (0.05 C, [`TAPER_A`]). The taper lowers the IR rise, so a cell that crosses late does
/// so at a slightly higher state of charge; the bias repeats on every charge that ends in the
/// firmware's taper, and only the growth of a deficit is judged.
const KNEE_MIN_CHARGE_A: f64 = TAPER_A;
/// Time constant of the cell-voltage filter the crossings are judged on, s: averages the AFE's
/// +-1.5 mV noise and 1 mV steps (model/sensors.rs) down to a few tenths of a mV; a ramp lags by
/// the same 30 s for every cell, so the comparison between cells is unbiased.
const KNEE_TAU_S: f64 = 30.0;
/// The unit's balancing resistor, ohm (the same 33 ohm part the twin models in plant/params.rs:
/// 0.1 A at 3.3 V, the usual passive-balancing current of 100-300 Ah LFP BMS boards).
pub const BLEED_OHM: f64 = 33.0;
/// Trip rule of the under-load detector: a cell's charge deficit against the others (bleed
/// removed) has grown by at least `KNEE_MIN_GROWTH_AH` over at least `KNEE_MIN_SPAN_S`, at a rate of
/// at least `KNEE_MIN_RATE_AH_PER_DAY`, on two consecutive charges (or by three times the growth
/// over a quarter of the span: a fast leak). 0.25 Ah/day is a 320 ohm leak (3.3 V x 24 h / R) and
/// about three times the largest healthy difference of self-discharge in the twin at 25 degC
/// (0.044 %/day of 280 Ah with a 20 % spread, 3 sigma: 0.07 Ah/day; LFP self-discharge ~2-3 %/month);
/// 0.5 Ah is more than ten times the session-to-session scatter of a healthy cell's deficit in
/// the twin with sensor noise (0.03 Ah).
const KNEE_MIN_GROWTH_AH: f64 = 0.5;
const KNEE_MIN_SPAN_S: f64 = 86_400.0;
/// Crossings are judged only with every cell sensor at or above this and within
/// `KNEE_MAX_SPREAD_K` of each other: LFP's resistance grows steeply in the cold (about 1.4x at
/// 15 degC and 2x at 0 degC against 25 degC, the plant's Arrhenius law, cell.rs), so uneven
/// cold cells cross the knee up to an Ah apart from one charge to the next (seen in the twin at
/// 5-10 degC); the capacity learner has the same kind of gate (10 degC).
/// Raised from 15 degC: at 15 degC, charging at 70 A, healthy packs parted by more than the
/// threshold in the fault campaign (seed 1, scenario 5921).
const KNEE_MIN_TEMP_C: f64 = 20.0;
/// Largest charge between the two samples that bracket a crossing, Ah: the interpolation across
/// a knee that bends within the step errs by a fraction of the step, so a session sampled more
/// coarsely than this (about 8 s at 0.4 C; the controller's own cadence is 0.1-1 s) is not
/// judged. At 60 s steps (1.8 Ah at 3 kW) the twin's healthy deficits scatter by ~1 Ah.
const KNEE_MAX_RES_AH: f64 = 0.25;
const KNEE_MAX_SPREAD_K: f64 = 5.0;
/// Charges whose depth differs by more than this are not compared, Ah: 10 % of capacity, so a
/// cell 1.5 % off in capacity (3 sigma of the twin's 0.6 %; +-1 % in the bms cycling stand-in)
/// parts by at most 0.4 Ah, under the growth threshold.
const KNEE_DEPTH_BAND_AH: f64 = 0.1 * spec::NOMINAL_CAPACITY_AH;
pub const KNEE_MIN_RATE_AH_PER_DAY: f64 = 0.25;
/// Above this cell temperature the knee rule's rate floor grows with the healthy self-discharge,
/// degC (see [`leak_rate_floor`]).
const KNEE_WARM_C: f64 = 35.0;
/// Activation energy of the cells' self-discharge, J/mol (the twin's, `melv_model::cell`,
/// calibrated on the manual's storage table, section 3).
const SELF_DISCHARGE_EA_J_MOL: f64 = 43_600.0;

/// The smallest leak rate the knee rule judges a micro-short, with the coldest cell at `temp_c`,
/// Ah/day: [`KNEE_MIN_RATE_AH_PER_DAY`] up to [`KNEE_WARM_C`], then scaled with the healthy
/// self-discharge (Arrhenius): 2.5x at 52 degC, where healthy packs parted faster than the floor
/// in the fault campaign (seed 1, scenarios 9358, 18, 6594). Below 35 degC a 200 ohm short
/// (0.4 Ah/day) is caught; at 52 degC from about 80 ohm.
pub fn leak_rate_floor(temp_c: f64) -> f64 {
    const R: f64 = 8.314;
    if temp_c.is_nan() || temp_c <= KNEE_WARM_C {
        return KNEE_MIN_RATE_AH_PER_DAY;
    }
    let (t0, t) = (KNEE_WARM_C + 273.15, temp_c.min(80.0) + 273.15);
    KNEE_MIN_RATE_AH_PER_DAY * (SELF_DISCHARGE_EA_J_MOL / R * (1.0 / t0 - 1.0 / t)).exp()
}

/// Micro-short detection under load: per-cell charge balance at the upper knee. On every charge
/// through the knee, the charge counter is read at the moment each (filtered) cell voltage passes
/// [`KNEE_REF_V`] (interpolated between samples). A cell that needs more charge than the others to
/// get there holds less charge: its deficit, less the charge the balancer bled from it (known from
/// the mask and [`BLEED_OHM`]) relative to the others, is the charge it lost by itself. Healthy
/// cells keep a constant deficit (their initial spread); a leaking cell's grows at its leak rate.
/// Needs no rest and is indifferent to IR (all cells carry the same current) and to balancing. A
/// cell that does not reach the level before the charge ends has only a lower bound (the charge
/// counter at the end), used to confirm a growth but never as a baseline, and only on charges
/// that reached the full voltage (which end the same way each time).
#[derive(Debug, Clone, Copy)]
pub struct KneeLeak {
    last_t: f64,
    /// The filter weight `1 - exp(-dt / KNEE_TAU_S)` and the step length it is for.
    w_dt: f64,
    w: f64,
    /// Filtered cell voltages, V (NaN before the first sample).
    vf: [f64; CELLS_IN_SERIES],
    prev_vf: [f64; CELLS_IN_SERIES],
    prev_ah: f64,
    /// Charge counter, Ah (up while charging).
    ah: f64,
    /// Charge bled from each cell, Ah.
    bled: [f64; CELLS_IN_SERIES],
    armed: bool,
    in_session: bool,
    session_max_v: f64,
    /// Every sample of the session had warm, even cells (see [`KNEE_MIN_TEMP_C`]).
    session_warm: bool,
    /// Coldest cell sensor of the session, degC (for [`leak_rate_floor`]).
    session_cold_c: f64,
    /// Largest charge between two samples at which a crossing was read, Ah.
    session_res_ah: f64,
    /// Lowest charge counter since the last session (the bottom of the discharge before it), and
    /// the depth of the current session's charge, Ah.
    ah_low: f64,
    depth_ah: f64,
    /// Depth of the charge that set each cell's lowest deficit, Ah.
    low_depth: [f64; CELLS_IN_SERIES],
    /// Charge counter and bled charge at each cell's crossing (NaN: not yet).
    cross_ah: [f64; CELLS_IN_SERIES],
    cross_bled: [f64; CELLS_IN_SERIES],
    /// Lowest deficit seen per cell and when, Ah / s (NaN before the first measurement).
    low_ah: [f64; CELLS_IN_SERIES],
    low_t: [f64; CELLS_IN_SERIES],
    strikes: [u8; CELLS_IN_SERIES],
    /// Largest confirmed leak rate, Ah/day (0 when none).
    pub worst_ah_per_day: f64,
}

impl Default for KneeLeak {
    fn default() -> Self {
        Self {
            last_t: f64::NAN,
            w_dt: f64::NAN,
            w: 1.0,
            vf: [f64::NAN; CELLS_IN_SERIES],
            prev_vf: [f64::NAN; CELLS_IN_SERIES],
            prev_ah: 0.0,
            ah: 0.0,
            bled: [0.0; CELLS_IN_SERIES],
            armed: false,
            in_session: false,
            session_max_v: 0.0,
            session_warm: false,
            session_cold_c: f64::NAN,
            session_res_ah: 0.0,
            ah_low: 0.0,
            depth_ah: 0.0,
            low_depth: [f64::NAN; CELLS_IN_SERIES],
            cross_ah: [f64::NAN; CELLS_IN_SERIES],
            cross_bled: [0.0; CELLS_IN_SERIES],
            low_ah: [f64::NAN; CELLS_IN_SERIES],
            low_t: [f64::NAN; CELLS_IN_SERIES],
            strikes: [0; CELLS_IN_SERIES],
            worst_ah_per_day: 0.0,
        }
    }
}

impl KneeLeak {
    /// Mean charge bled per cell so far, Ah.
    pub fn mean_bled_ah(&self) -> f64 {
        self.bled.iter().sum::<f64>() / CELLS_IN_SERIES as f64
    }

    /// One cycle: `mask` is the balance mask that was applied over the interval just ended;
    /// `temps_c`: the coldest and hottest cell sensor now.
    pub fn update(
        &mut self,
        now_s: f64,
        cell_v: &[f64; CELLS_IN_SERIES],
        current_a: f64,
        mask: u8,
        temps_c: (f64, f64),
    ) {
        let dt = if self.last_t.is_finite() && now_s > self.last_t {
            now_s - self.last_t
        } else {
            0.0
        };
        self.last_t = now_s;
        if !current_a.is_finite() || cell_v.iter().any(|v| !v.is_finite()) {
            return;
        }
        let h = dt / 3600.0;
        self.prev_ah = self.ah;
        self.ah -= current_a * h;
        self.prev_vf = self.vf;
        if dt != self.w_dt {
            // The filter weight for this step length, computed once per step length (the
            // firmware runs at a fixed cycle), not once per cycle.
            (self.w_dt, self.w) = (dt, 1.0 - (-dt / KNEE_TAU_S).exp());
        }
        let a = self.w;
        for (i, (f, v)) in self.vf.iter_mut().zip(cell_v).enumerate() {
            *f = if f.is_nan() { *v } else { *f + (v - *f) * a };
            if mask & (1 << i) != 0 {
                self.bled[i] += v / BLEED_OHM * h;
            }
        }
        let max_v = self.vf.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let charging = current_a <= -KNEE_MIN_CHARGE_A;
        if self.in_session {
            self.session_max_v = self.session_max_v.max(max_v);
            let (cold, hot) = temps_c;
            self.session_warm &= cold >= KNEE_MIN_TEMP_C && hot - cold <= KNEE_MAX_SPREAD_K;
            self.session_cold_c = self.session_cold_c.min(cold);
            if charging {
                self.mark_crossings();
            }
            if !charging || self.cross_ah.iter().all(|a| a.is_finite()) {
                self.finish(now_s);
            }
        } else if max_v < KNEE_ARM_V {
            self.armed = true;
            self.ah_low = self.ah_low.min(self.ah);
        } else if self.armed && charging && max_v >= KNEE_REF_V {
            self.armed = false;
            self.in_session = true;
            self.depth_ah = self.ah - self.ah_low;
            self.session_warm = true;
            self.session_cold_c = temps_c.0;
            self.session_res_ah = 0.0;
            self.session_max_v = max_v;
            self.cross_ah = [f64::NAN; CELLS_IN_SERIES];
            self.mark_crossings();
        }
    }

    fn mark_crossings(&mut self) {
        for i in 0..CELLS_IN_SERIES {
            let (v0, v1) = (self.prev_vf[i], self.vf[i]);
            if self.cross_ah[i].is_nan() && v1 >= KNEE_REF_V {
                // Interpolated between the two samples (the previous one was below).
                let f = if v1 > v0 && v0 < KNEE_REF_V {
                    ((KNEE_REF_V - v0) / (v1 - v0)).clamp(0.0, 1.0)
                } else {
                    1.0
                };
                self.cross_ah[i] = self.prev_ah + f * (self.ah - self.prev_ah);
                self.session_res_ah = self.session_res_ah.max(self.ah - self.prev_ah);
                self.cross_bled[i] = self.bled[i];
            }
        }
    }

    /// Ends a session: each cell's deficit, its growth since its lowest, the confirmed worst rate.
    fn finish(&mut self, now_s: f64) {
        self.in_session = false;
        self.ah_low = self.ah;
        let hi = self.cross_ah;
        let n = hi.iter().filter(|x| x.is_finite()).count();
        if n * 2 < CELLS_IN_SERIES || !self.session_warm || self.session_res_ah > KNEE_MAX_RES_AH {
            return; // a charge that barely touched the knee says nothing
        }
        let full = self.session_max_v >= FULL_CELL_V;
        let mut a = [0.0; CELLS_IN_SERIES];
        let mut b = [0.0; CELLS_IN_SERIES];
        for i in 0..CELLS_IN_SERIES {
            (a[i], b[i]) = if hi[i].is_finite() {
                (hi[i], self.cross_bled[i])
            } else {
                (self.ah, self.bled[i])
            };
        }
        // The reference: the median of the other cells that reached the level (robust to one
        // cell joining or leaving the measured set from one charge to the next).
        let net: [f64; CELLS_IN_SERIES] = core::array::from_fn(|i| a[i] - b[i]);
        let median_others = |skip: usize| {
            let mut v = [f64::INFINITY; CELLS_IN_SERIES];
            let mut k = 0;
            for j in 0..CELLS_IN_SERIES {
                if j != skip && hi[j].is_finite() {
                    v[k] = net[j];
                    k += 1;
                }
            }
            v[..k].sort_by(f64::total_cmp);
            if k % 2 == 1 {
                v[k / 2]
            } else {
                0.5 * (v[k / 2 - 1] + v[k / 2])
            }
        };
        let mut worst = 0.0f64;
        // Warm cells part faster when healthy: both rules scale with the self-discharge.
        let floor = leak_rate_floor(self.session_cold_c);
        let warm = floor / KNEE_MIN_RATE_AH_PER_DAY;
        for i in 0..CELLS_IN_SERIES {
            let censored = hi[i].is_nan();
            if censored && !full {
                continue;
            }
            let deficit = net[i] - median_others(i);
            // Cells of different capacity part by the charge's depth times their capacity
            // difference (1 % of a 140 Ah charge is 1.4 Ah): deficits are compared only between
            // charges of a similar depth, else the baseline starts again.
            let same_depth = (self.depth_ah - self.low_depth[i]).abs() <= KNEE_DEPTH_BAND_AH;
            if !censored && (deficit < self.low_ah[i] || self.low_ah[i].is_nan() || !same_depth) {
                self.low_ah[i] = deficit;
                self.low_t[i] = now_s;
                self.low_depth[i] = self.depth_ah;
            }
            if !same_depth && censored {
                continue;
            }
            let span = now_s - self.low_t[i];
            let growth = deficit - self.low_ah[i];
            let rate = growth / span * 86_400.0;
            let suspect = (span >= KNEE_MIN_SPAN_S
                && growth >= KNEE_MIN_GROWTH_AH
                && rate >= floor)
                || (span >= 0.25 * KNEE_MIN_SPAN_S && growth >= 3.0 * KNEE_MIN_GROWTH_AH * warm);
            self.strikes[i] = if suspect {
                self.strikes[i].saturating_add(1)
            } else {
                0
            };
            if self.strikes[i] >= 2 {
                worst = worst.max(rate);
            }
        }
        self.worst_ah_per_day = worst;
    }
}

/// Window-shrink rule of the under-load leak detector: the charge counted between full and empty
/// (the usable window, limited by the emptiest cell) has fallen by at least `WINDOW_MIN_SHRINK_AH`
/// from its largest value, at a rate of at least [`KNEE_MIN_RATE_AH_PER_DAY`], over at least
/// `WINDOW_MIN_SPAN_S`, after the charge the balancer bled meanwhile is added back (bleeding the
/// fullest cell at the top lets the pack take more charge, which widens the window). Ageing shrinks
/// it by ~0.015 Ah/day (20 % of 280 Ah over 10 years), twenty times less; 2 Ah is 0.7 % of
/// capacity, beyond the span-to-span scatter of a healthy noisy pack in the twin at controller
/// cadence (1.3 Ah at most, charge and discharge spans alternating). At coarser steps the rule is
/// not judged (`LeakDetector::under_load`). Spans are compared only at a similar cell temperature
/// (within 5 K), since LFP's usable charge falls below 25 degC (EVE LF280K: ~90 % at 0 degC).
const WINDOW_MIN_SHRINK_AH: f64 = 2.0;
/// Longest control cycle at which the window rule is judged, s (see `LeakDetector::under_load`):
/// the controller runs at 0.1-1 s; the simulator's knee parts are 10 s (melv_unit).
pub const WINDOW_MAX_STEP_S: f64 = 2.0;
const WINDOW_MIN_SPAN_S: f64 = 86_400.0;
const WINDOW_TEMP_BAND_C: f64 = 5.0;

/// The window-shrink detector (see [`WINDOW_MIN_SHRINK_AH`]).
#[derive(Debug, Clone, Copy)]
pub struct WindowLeak {
    /// Largest bleed-corrected window seen, Ah, when, and at what cell temperature.
    best_ah: f64,
    best_t: f64,
    best_c: f64,
    last_end: f64,
    strikes: u8,
    /// Confirmed shrink rate, Ah/day (0 when none).
    pub worst_ah_per_day: f64,
}

impl Default for WindowLeak {
    fn default() -> Self {
        Self {
            best_ah: f64::NAN,
            best_t: f64::NAN,
            best_c: f64::NAN,
            last_end: f64::NAN,
            strikes: 0,
            worst_ah_per_day: 0.0,
        }
    }
}

impl WindowLeak {
    /// Takes a new span (if `span` is one not seen yet); `bled_ah`: the mean charge bled per cell
    /// so far (cumulative), `temp_c`: the cell temperature now.
    pub fn update(&mut self, span: Option<Span>, bled_ah: f64, temp_c: f64) {
        let Some(span) = span else { return };
        if span.end_s == self.last_end || !temp_c.is_finite() {
            return;
        }
        self.last_end = span.end_s;
        let w = span.ah + bled_ah;
        if w > self.best_ah
            || self.best_ah.is_nan()
            || (temp_c - self.best_c).abs() > WINDOW_TEMP_BAND_C
        {
            if w > self.best_ah || self.best_ah.is_nan() || temp_c > self.best_c {
                (self.best_ah, self.best_t, self.best_c) = (w, span.end_s, temp_c);
            }
            self.strikes = 0;
            return;
        }
        let shrink = self.best_ah - w;
        let days = (span.end_s - self.best_t) / 86_400.0;
        let rate = shrink / days;
        let suspect = days * 86_400.0 >= WINDOW_MIN_SPAN_S
            && shrink >= WINDOW_MIN_SHRINK_AH
            && rate >= KNEE_MIN_RATE_AH_PER_DAY;
        self.strikes = if suspect {
            self.strikes.saturating_add(1)
        } else {
            0
        };
        self.worst_ah_per_day = if self.strikes >= 2 { rate } else { 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(soc: f64) -> SocEstimator {
        SocEstimator {
            soc,
            capacity_ah: 280.0,
            ah_since_cal: 0.0,
            last_cal: None,
            last_full_s: None,
            capacity_updates: 0,
            soc_valid: true,
            soc_unc: 0.0,
            rest_since: f64::NAN,
            last_span: None,
        }
    }

    #[test]
    fn ocv_table_is_monotone_and_inverts() {
        for w in OCV.windows(2) {
            assert!(w[1].0 > w[0].0 && w[1].1 > w[0].1);
        }
        let check = |v: f64, soc: f64| assert!((soc_from_ocv(v) - soc).abs() < 1e-9, "{v} V");
        check(2.0, 0.0);
        check(3.276, 0.50);
        check(3.149, 0.10);
        check(3.434, 1.0);
        check(3.45, 1.0);
        check(4.0, 1.0);
        check(f64::NAN, 0.0);
    }

    #[test]
    fn counts_and_recalibrates() {
        // (steps of (dt, current, max, min)) -> (soc, capacity)
        let check = |start: f64, steps: &[(f64, f64, f64, f64)], soc: f64, cap: f64| {
            let mut e = fresh(start);
            let mut t = 0.0;
            for &(dt, i, hi, lo) in steps {
                t += dt;
                e.update(t, dt, i, hi, lo, true);
            }
            assert!((e.soc - soc).abs() < 1e-6, "soc {} vs {soc}", e.soc);
            assert!(
                (e.capacity_ah - cap).abs() < 1e-6,
                "cap {} vs {cap}",
                e.capacity_ah
            );
        };
        // 28 A for 1 h out of 280 Ah: -10 %.
        check(0.5, &[(3600.0, 28.0, 3.3, 3.29)], 0.4, 280.0);
        // Charging to the knee with tapered current: full.
        check(0.9, &[(60.0, -10.0, 3.56, 3.50)], 1.0, 280.0);
        // Not tapered: no calibration.
        check(0.9, &[(36.0, -100.0, 3.56, 3.50)], 0.9 + 1.0 / 280.0, 280.0);
        // Full, then 250 Ah out, then empty: capacity moves 30 % toward 250 Ah.
        check(
            0.9,
            &[
                (1.0, 0.0, 3.56, 3.5),
                (3600.0, 250.0, 3.2, 3.1),
                (1.0, 0.0, 3.0, EMPTY_CELL_V - 0.01),
            ],
            0.0,
            280.0 - 0.3 * 30.0,
        );
        // An implausible span (20 Ah) is refused.
        check(
            0.9,
            &[
                (1.0, 0.0, 3.56, 3.5),
                (3600.0, 20.0, 3.2, 3.1),
                (1.0, 0.0, 3.0, EMPTY_CELL_V - 0.01),
            ],
            0.0,
            280.0,
        );
    }

    #[test]
    fn leak_detector_sees_a_drifting_cell_and_not_a_flat_pack() {
        let run = |drift_mv_per_h: f64, dt: f64| {
            let mut d = LeakDetector::default();
            let mut t = 0.0;
            // At 1 h steps a window needs LEAK_MIN_SAMPLES samples: 2 h settling + 10 h.
            let hours = if dt >= 600.0 { 12.0 } else { 4.0 };
            while t <= hours * 3600.0 {
                let mut v = [3.30; CELLS_IN_SERIES];
                // Common-mode relaxation plus a one-cell drift.
                for x in v.iter_mut() {
                    *x += 0.02 * (-t / 1800.0f64).exp();
                }
                v[3] -= drift_mv_per_h * t / 3600.0 / 1000.0;
                d.update(t, &v, 0.1, true);
                t += dt;
            }
            d.worst_mv_per_h
        };
        assert!(run(0.0, 1.0).abs() < 0.01);
        assert!((run(5.0, 1.0) + 5.0).abs() < 0.5, "{}", run(5.0, 1.0));
        assert!((run(5.0, 3600.0) + 5.0).abs() < 0.5, "{}", run(5.0, 3600.0));
        assert!(run(0.0, 3600.0).abs() < 0.01);
    }
}
