//! Sensor models: fixed per-unit errors (offsets, gains) drawn once from the seed, fresh noise at each
//! reading, and ADC quantisation. With noise disabled every reading is the exact truth.
//!
//! Noise is cheap on purpose (a year at 1 s is 31.5 million readings): one `SmallRng` draw yields four
//! 16-bit uniforms, each reading takes one, and quantisation is a multiply and a cast.

use melv_core::io::CELL_TEMP_SENSORS;
use melv_core::spec::CELLS_IN_SERIES;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

/// Error budget of each channel: (fixed error bound, noise amplitude, quantum).
/// Cell voltage: a 16-bit battery-monitor AFE (e.g. TI BQ76952: +-1.5 mV total error at 25 degC)
/// reported in 1 mV (melv_core::io says "quantised to 1 mV").
pub const CELL_V: (f64, f64, f64) = (0.001, 0.0015, 0.001);
/// Pack voltage divider: 0.3 % gain error, 20 mV noise, 10 mV steps.
pub const PACK_V_GAIN: f64 = 0.003;
pub const PACK_V: (f64, f64, f64) = (0.0, 0.02, 0.01);
/// Shunt current: 0.5 % gain, 0.2 A offset, 0.3 A noise, 0.1 A steps (a 300 A shunt on a 16-bit ADC).
pub const CURRENT_GAIN: f64 = 0.005;
pub const CURRENT: (f64, f64, f64) = (0.2, 0.3, 0.1);
/// NTC temperatures: +-0.5 K (1 % beta tolerance around 25 degC), 0.1 K noise, 0.1 K steps.
pub const TEMP: (f64, f64, f64) = (0.5, 0.1, 0.1);
/// Fan tachometer: 15 rpm jitter of the tach period measurement, 1 rpm steps.
pub const FAN_RPM: (f64, f64, f64) = (0.0, 15.0, 1.0);
/// Heater current sense: 0.05 A.
pub const HEATER_A: (f64, f64, f64) = (0.0, 0.05, 0.01);
/// AC voltage: 0.5 V, 0.1 V steps; frequency 0.01 Hz; power 0.5 % + 5 W, 1 W steps.
pub const AC_V: (f64, f64, f64) = (0.0, 0.5, 0.1);
pub const FREQ: (f64, f64, f64) = (0.0, 0.01, 0.001);
pub const AC_POWER_GAIN: f64 = 0.005;
pub const AC_POWER: (f64, f64, f64) = (0.0, 5.0, 1.0);

/// Rounds `v` to the nearest multiple of `quantum` (ties to even) without a library call: adding and
/// subtracting 1.5 * 2^52 leaves an integer in IEEE-754 double arithmetic (valid for |v / quantum| below
/// 2^51, which every reading is by many orders of magnitude; `f64::round` is a libm call on baseline
/// x86-64).
#[inline]
fn quantise(v: f64, quantum: f64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    // The quanta are constants, so after inlining the division folds into a multiplication.
    let x = v * (1.0 / quantum);
    ((x + MAGIC) - MAGIC) * quantum
}

/// The unit's sensors with their fixed errors and their noise source.
#[derive(Debug, Clone)]
pub struct Sensors {
    enabled: bool,
    rng: SmallRng,
    bits: u64,
    left: u32,
    cell_offset_v: [f64; CELLS_IN_SERIES],
    temp_offset_c: [f64; CELL_TEMP_SENSORS],
    inlet_offset_c: f64,
    pack_gain: f64,
    current_gain: f64,
    current_offset_a: f64,
    ac_power_gain: f64,
}

impl Sensors {
    /// Sensors of the unit with `seed`; `enabled = false` gives exact readings.
    pub fn new(seed: u64, enabled: bool) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x7365_6e73_6f72_7321);
        let mut sym = |bound: f64| -> f64 {
            if enabled {
                rng.gen_range(-1.0..=1.0) * bound
            } else {
                0.0
            }
        };
        let mut cell_offset_v = [0.0; CELLS_IN_SERIES];
        for o in &mut cell_offset_v {
            *o = sym(CELL_V.0);
        }
        let mut temp_offset_c = [0.0; CELL_TEMP_SENSORS];
        for o in &mut temp_offset_c {
            *o = sym(TEMP.0);
        }
        let inlet_offset_c = sym(TEMP.0);
        let pack_gain = 1.0 + sym(PACK_V_GAIN);
        let current_gain = 1.0 + sym(CURRENT_GAIN);
        let current_offset_a = sym(CURRENT.0);
        let ac_power_gain = 1.0 + sym(AC_POWER_GAIN);
        Sensors {
            enabled,
            rng,
            bits: 0,
            left: 0,
            cell_offset_v,
            temp_offset_c,
            inlet_offset_c,
            pack_gain,
            current_gain,
            current_offset_a,
            ac_power_gain,
        }
    }

    /// Uniform in [-1, 1).
    #[inline]
    fn uniform(&mut self) -> f64 {
        if self.left == 0 {
            self.bits = self.rng.next_u64();
            self.left = 4;
        }
        let x = (self.bits & 0xffff) as f64;
        self.bits >>= 16;
        self.left -= 1;
        x * (1.0 / 32_768.0) - 1.0
    }

    #[inline]
    fn read(&mut self, truth: f64, offset: f64, gain: f64, spec: (f64, f64, f64)) -> f64 {
        if !self.enabled {
            return truth;
        }
        let v = truth * gain + offset + spec.1 * self.uniform();
        quantise(v, spec.2)
    }

    /// All eight cell voltages at once: two RNG draws, no per-reading branches (the hot path of a
    /// year-long run).
    #[inline]
    #[allow(clippy::needless_range_loop)]
    pub fn cell_voltages(&mut self, v: &[f64; CELLS_IN_SERIES]) -> [f64; CELLS_IN_SERIES] {
        if !self.enabled {
            return *v;
        }
        let words = [self.rng.next_u64(), self.rng.next_u64()];
        let mut out = [0.0; CELLS_IN_SERIES];
        for i in 0..CELLS_IN_SERIES {
            let bits = (words[i / 4] >> (16 * (i % 4))) & 0xffff;
            let u = bits as f64 * (1.0 / 32_768.0) - 1.0;
            let x = v[i] + self.cell_offset_v[i] + CELL_V.1 * u;
            out[i] = quantise(x, CELL_V.2).max(0.0);
        }
        out
    }

    #[inline]
    pub fn cell_v(&mut self, i: usize, v: f64) -> f64 {
        let o = self.cell_offset_v[i];
        self.read(v, o, 1.0, CELL_V).max(0.0)
    }
    #[inline]
    pub fn pack_v(&mut self, v: f64) -> f64 {
        let g = self.pack_gain;
        self.read(v, 0.0, g, PACK_V).max(0.0)
    }
    #[inline]
    pub fn current_a(&mut self, a: f64) -> f64 {
        let (g, o) = (self.current_gain, self.current_offset_a);
        self.read(a, o, g, CURRENT)
    }
    #[inline]
    pub fn cell_temp_c(&mut self, k: usize, c: f64) -> f64 {
        let o = self.temp_offset_c[k];
        self.read(c, o, 1.0, TEMP)
    }
    #[inline]
    pub fn inlet_temp_c(&mut self, c: f64) -> f64 {
        let o = self.inlet_offset_c;
        self.read(c, o, 1.0, TEMP)
    }
    #[inline]
    pub fn fan_rpm(&mut self, rpm: f64) -> f64 {
        if rpm <= 0.0 {
            return 0.0;
        }
        self.read(rpm, 0.0, 1.0, FAN_RPM).max(0.0)
    }
    #[inline]
    pub fn heater_a(&mut self, a: f64) -> f64 {
        if a <= 0.0 {
            return 0.0;
        }
        self.read(a, 0.0, 1.0, HEATER_A).max(0.0)
    }
    #[inline]
    pub fn ac_v(&mut self, v: f64) -> f64 {
        if v <= 0.0 {
            return 0.0;
        }
        self.read(v, 0.0, 1.0, AC_V).max(0.0)
    }
    #[inline]
    pub fn frequency_hz(&mut self, f: f64) -> f64 {
        if f <= 0.0 {
            return 0.0;
        }
        self.read(f, 0.0, 1.0, FREQ)
    }
    #[inline]
    pub fn ac_power_w(&mut self, p: f64) -> f64 {
        if p == 0.0 {
            return 0.0;
        }
        let g = self.ac_power_gain;
        self.read(p, 0.0, g, AC_POWER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantisation() {
        for (v, q, expected) in [
            (3.2874, 0.001, 3.287),
            (3.2876, 0.001, 3.288),
            (-12.34, 0.1, -12.3),
            (-12.36, 0.1, -12.4),
            (0.0, 0.01, 0.0),
            (2_999.6, 1.0, 3_000.0),
        ] {
            let got = quantise(v, q);
            assert!((got - expected).abs() < 1e-9, "quantise({v}, {q}) = {got}");
        }
    }

    #[test]
    fn exact_when_disabled() {
        let mut s = Sensors::new(1, false);
        assert_eq!(s.cell_v(3, 3.2871234), 3.2871234);
        assert_eq!(s.current_a(-123.456), -123.456);
        assert_eq!(s.cell_temp_c(2, 21.37), 21.37);
    }

    #[test]
    fn bounded_and_quantised_when_enabled() {
        let mut s = Sensors::new(9, true);
        for _ in 0..1000 {
            let v = s.cell_v(0, 3.3);
            assert!((v - 3.3).abs() <= CELL_V.0 + CELL_V.1 + CELL_V.2, "{v}");
            assert!(((v * 1000.0) - (v * 1000.0).round()).abs() < 1e-6, "{v}");
            let t = s.cell_temp_c(1, 25.0);
            assert!((t - 25.0).abs() <= TEMP.0 + TEMP.1 + TEMP.2, "{t}");
            let a = s.current_a(100.0);
            assert!((a - 100.0).abs() <= 100.0 * CURRENT_GAIN + CURRENT.0 + CURRENT.1 + CURRENT.2);
        }
        // Stopped things read exactly zero.
        assert_eq!(s.fan_rpm(0.0), 0.0);
        assert_eq!(s.heater_a(0.0), 0.0);
        assert_eq!(s.ac_v(0.0), 0.0);
    }

    #[test]
    fn batched_cell_voltages_match_the_error_budget() {
        let mut s = Sensors::new(4, true);
        let truth = [3.30, 3.31, 3.29, 3.30, 3.32, 3.28, 3.30, 3.305];
        for _ in 0..500 {
            let m = s.cell_voltages(&truth);
            for (v, t) in m.iter().zip(truth.iter()) {
                assert!(
                    (v - t).abs() <= CELL_V.0 + CELL_V.1 + CELL_V.2,
                    "{v} vs {t}"
                );
            }
        }
        let mut quiet = Sensors::new(4, false);
        assert_eq!(quiet.cell_voltages(&truth), truth);
    }

    #[test]
    fn reproducible_from_seed() {
        let mut a = Sensors::new(5, true);
        let mut b = Sensors::new(5, true);
        for _ in 0..10 {
            assert_eq!(a.cell_v(1, 3.3), b.cell_v(1, 3.3));
        }
    }
}
