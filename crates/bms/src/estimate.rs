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
        }
    }
}

impl LeakDetector {
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
            *self = Self::default();
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
