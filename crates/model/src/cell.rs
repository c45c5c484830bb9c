//! Parameters of one 280 Ah LFP cell, its temperature dependence, self-discharge, and the seeded
//! cell-to-cell spread of a pack.
//!
//! The electrical model is a Thevenin circuit: OCV(SOC) ([`crate::ocv`]) in series with an ohmic
//! resistance R0 and two RC pairs (charge transfer, tau about 20 s; solid diffusion, tau about 10 min).
//! Resistances follow Arrhenius in temperature; the time constants are held fixed (the capacitances
//! scale inversely with R), which keeps the exact exponential discretisation cacheable per time step.

use melv_core::spec::{CELLS_IN_SERIES, NOMINAL_CAPACITY_AH};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// Universal gas constant, J/(mol K).
pub const GAS_CONSTANT: f64 = 8.314_462_618;
/// 0 degC in K.
pub const KELVIN: f64 = 273.15;
/// Reference temperature of every parameter below, K (25 degC).
pub const T_REF_K: f64 = 298.15;

/// The parameters of a mean cell at 25 degC.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellParams {
    /// Mean capacity of a new cell, Ah.
    pub capacity_ah: f64,
    /// Ohmic resistance at 25 degC, ohm.
    pub r0_ohm: f64,
    /// Charge-transfer RC pair: resistance at 25 degC, ohm, and time constant, s.
    pub r1_ohm: f64,
    pub tau1_s: f64,
    /// Diffusion RC pair: resistance at 25 degC, ohm, and time constant, s.
    pub r2_ohm: f64,
    pub tau2_s: f64,
    /// Half-gap of the OCV hysteresis between charge and discharge, V.
    pub hysteresis_v: f64,
    /// SOC-rate of the hysteresis transition (Plett's gamma): the state moves e-fold per 1/gamma of
    /// capacity passed in the new direction.
    pub hysteresis_gamma: f64,
    /// Activation energy of R0 (electrolyte conductivity), J/mol.
    pub ea_r0_j_mol: f64,
    /// Activation energy of R1 and R2 (charge transfer, diffusion), J/mol.
    pub ea_rc_j_mol: f64,
    /// Relative resistance growth per unit of capacity lost (R = R_new * (1 + k * fade)).
    pub r_growth_per_fade: f64,
    /// Cell mass, kg.
    pub mass_kg: f64,
    /// Specific heat, J/(kg K).
    pub cp_j_kg_k: f64,
}

/// The 280 Ah prismatic LFP cell of the MS-7K-U (manual 7.1: 280 Ah, 8S; the cell itself is not named,
/// so the numbers are those of the EVE LF280K, the common 280 Ah cell of 24 V home batteries).
pub const CELL: CellParams = CellParams {
    // Manual 7.1: 280 Ah nominal. Cells are binned to meet the nominal at 0.5 C, so the mean of a batch
    // sits above it: 1.5 % above (284 Ah) is typical of grade-A LF280K lots (capacity test sheets of
    // resellers report 281-287 Ah). Assumption, stated in docs/model.md.
    capacity_ah: NOMINAL_CAPACITY_AH * 1.015,
    // EVE LF280K datasheet: AC internal resistance (1 kHz) <= 0.25 mOhm; we take 0.18 mOhm for the cell
    // and add each cell's share of the pack's series path (busbars, main relay, fuse, shunt: about
    // 0.65 mOhm for the pack, 0.08 mOhm per cell), so R0 = 0.26 mOhm. The RC pairs carry the rest of the
    // DC resistance; the cell total of 0.41 mOhm at 25 degC (0.49 with the series path) is what DC pulse tests of 280 Ah LFP cells
    // give at mid SOC (0.3-0.45 mOhm). With the hysteresis below this calibrates the datasheet's 96 % DC
    // round trip (manual 7.1) in tests/cycle.rs.
    r0_ohm: 0.26e-3,
    r1_ohm: 0.09e-3,
    tau1_s: 20.0,
    r2_ohm: 0.14e-3,
    tau2_s: 600.0,
    // LFP/graphite has a marked OCV hysteresis: 20-40 mV between charge and discharge branches at mid
    // SOC (e.g. Dreyer et al., Nature Materials 9 (2010) 448; Plett, Battery Management Systems vol. 1
    // ch. 2 for the one-state model). Half-gap 12 mV (a 24 mV gap, the low end of that range: large
    // prismatic cells at 25 degC); the transition completes within about 3 % SOC. Together with the
    // resistances this calibrates the datasheet's 96 % DC round trip (manual 7.1) for the full cycle
    // that the unit's own firmware runs (melv-unit, tests/cycle_test.rs).
    hysteresis_v: 0.012,
    hysteresis_gamma: 35.0,
    // Arrhenius energies: electrolyte conductivity of LiPF6 carbonates about 15-20 kJ/mol, charge
    // transfer of LFP/graphite 40-55 kJ/mol (e.g. Jow et al., J. Electrochem. Soc. 165 (2018) A361).
    // They make the total resistance about 3x at 0 degC and 6x at -10 degC, as cold LFP pulse tests show.
    ea_r0_j_mol: 18_000.0,
    ea_rc_j_mol: 45_000.0,
    // LFP cells at 80 % capacity show 30-50 % higher DC resistance (e.g. Naumann et al., J. Energy
    // Storage 17 (2018) 153); 1.6 per unit fade gives +32 % at 80 %.
    r_growth_per_fade: 1.6,
    // EVE LF280K datasheet: 5.49 kg.
    mass_kg: 5.49,
    // Calorimetry of prismatic LFP cells gives 1,000-1,100 J/(kg K); middle of the range.
    cp_j_kg_k: 1_050.0,
};

/// Arrhenius factor of a quantity with activation energy `ea_j_mol` at `temp_c` relative to 25 degC
/// (greater than 1 below 25 degC for a resistance). Temperature is clamped to -50..=150 degC.
#[inline]
pub fn arrhenius(ea_j_mol: f64, temp_c: f64) -> f64 {
    let t_k = temp_c.clamp(-50.0, 150.0) + KELVIN;
    (ea_j_mol / GAS_CONSTANT * (1.0 / t_k - 1.0 / T_REF_K)).exp()
}

/// The Arrhenius factors of one cell for several activation energies, kept current as its temperature
/// drifts, with one `exp` per factor only when the temperature has moved far.
///
/// `arrhenius(ea, t) = exp(ea z(t))` with `z(t) = (1/T - 1/T_ref) / R`. The tracker keeps the exact
/// factors `f0 = exp(ea z0)` at an anchor `z0` and returns `f0 exp(ea (z - z0))` with the second
/// exponential as its Taylor polynomial of degree 4 while `|ea (z - z0)| <= TAYLOR_MAX` (0.01: about
/// 0.16 K for the largest energy, 45 kJ/mol). The truncation error is below `0.01^5 / 5! = 8.4e-13`
/// relative, and it does not accumulate: every value is computed from the exact anchor. Further away
/// the factors are recomputed exactly and the anchor moves. The plant refreshes its resistances every
/// 30 s of simulated time; cells drift by hundredths of a kelvin in that time, so most refreshes
/// take the polynomial.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArrheniusTracker<const K: usize> {
    ea_over_r: [f64; K],
    z0: f64,
    f0: [f64; K],
}

impl<const K: usize> ArrheniusTracker<K> {
    /// Largest `|ea (z - z0)|` evaluated by the polynomial.
    pub const TAYLOR_MAX: f64 = 0.01;

    /// A tracker for activation energies `ea_j_mol`, anchored at `temp_c`.
    pub fn new(ea_j_mol: [f64; K], temp_c: f64) -> Self {
        let mut t = Self {
            ea_over_r: ea_j_mol.map(|e| e / GAS_CONSTANT),
            z0: f64::NAN,
            f0: [1.0; K],
        };
        t.anchor(Self::z(temp_c));
        t
    }

    /// `(1/T - 1/T_ref)` with the temperature clamped as [`arrhenius`] does.
    #[inline]
    fn z(temp_c: f64) -> f64 {
        1.0 / (temp_c.clamp(-50.0, 150.0) + KELVIN) - 1.0 / T_REF_K
    }

    fn anchor(&mut self, z: f64) {
        self.z0 = z;
        for (f, e) in self.f0.iter_mut().zip(&self.ea_over_r) {
            *f = (e * z).exp();
        }
    }

    /// The factors `arrhenius(ea_j_mol[k], temp_c)`, to 1e-12 relative (see the type's notes).
    #[inline]
    pub fn factors(&mut self, temp_c: f64) -> [f64; K] {
        let z = Self::z(temp_c);
        let dz = z - self.z0;
        // NaN (a broken temperature) takes the exact path.
        let far = dz.is_nan()
            || self
                .ea_over_r
                .iter()
                .any(|e| (e * dz).abs() > Self::TAYLOR_MAX);
        if far {
            self.anchor(z);
            return self.f0;
        }
        let mut out = self.f0;
        for (o, e) in out.iter_mut().zip(&self.ea_over_r) {
            let x = e * dz;
            // exp(x) = 1 + x + x^2/2 + x^3/6 + x^4/24 (Horner).
            *o *= 1.0 + x * (1.0 + x * (0.5 + x * (1.0 / 6.0 + x * (1.0 / 24.0))));
        }
        out
    }
}

/// Self-discharge at 25 degC, fraction of capacity per day. Manual 3 (storage table): a unit stored at
/// -20..25 degC needs recharging after 15 months, and is recharged to 30 % SOC. We read this as: 30 % SOC
/// falls to a 10 % reserve in 15 months (456.6 days), i.e. 0.20 / 456.6 per day (1.3 % a month, well
/// within the EVE LF280K datasheet's "<= 3 % per month").
pub const SELF_DISCHARGE_25C_PER_DAY: f64 = 0.20 / (15.0 * 30.4375);
/// Activation energy of self-discharge, J/mol, fitted through the manual 3 table's end points: 15
/// months at 25 degC and 3 months at 55 degC (ratio 5 over 30 K gives 43.6 kJ/mol). The 35 and 45 degC
/// rows (9 and 6 months) fall within 25 % of this line.
pub const SELF_DISCHARGE_EA_J_MOL: f64 = 43_600.0;

/// Fraction of capacity (SOC points) a mean cell loses per day in storage at `temp_c`, with the unit
/// switched off (no BMS draw: the unit's control electronics are off in storage, manual 3 says nothing
/// of a parasitic load, and the storage table is reproduced by cell self-discharge alone).
pub fn self_discharge_fraction_per_day(temp_c: f64) -> f64 {
    // arrhenius() is a resistance-like factor (>1 when cold); self-discharge goes the other way.
    SELF_DISCHARGE_25C_PER_DAY / arrhenius(SELF_DISCHARGE_EA_J_MOL, temp_c)
}

/// SOC after `days` of storage at a constant `temp_c`, starting at `initial_soc`; never below 0.
/// Self-discharge of LFP is a near-constant leak in Ah, so the loss is linear in time.
pub fn storage_soc_after(initial_soc: f64, days: f64, temp_c: f64) -> f64 {
    (initial_soc - self_discharge_fraction_per_day(temp_c) * days.max(0.0)).max(0.0)
}

/// Standard deviations of the cell-to-cell spread, as fractions of the mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpreadSigma {
    /// Capacity: 0.6 %. Cells of one pack are capacity-matched; measured spreads of new LFP batches
    /// are 0.3-1 % (e.g. Rumpf et al., J. Energy Storage 14 (2017) 224: 0.5 % on 1,100 LFP cells).
    pub capacity: f64,
    /// Resistance: 3 % (same source: resistance spread is several times the capacity spread).
    pub resistance: f64,
    /// Self-discharge: 20 % (self-discharge is the least controlled cell property).
    pub self_discharge: f64,
    /// Ageing rate: 5 % (BLAST-Lite uses 15 % for cells of different lots; one lot is tighter).
    pub ageing: f64,
}

/// The default spread, see [`SpreadSigma`].
pub const SPREAD: SpreadSigma = SpreadSigma {
    capacity: 0.006,
    resistance: 0.03,
    self_discharge: 0.20,
    ageing: 0.05,
};

/// Multipliers (mean 1) of each cell's capacity, resistance, self-discharge and ageing rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellSpread {
    pub capacity: [f64; CELLS_IN_SERIES],
    pub resistance: [f64; CELLS_IN_SERIES],
    pub self_discharge: [f64; CELLS_IN_SERIES],
    pub ageing: [f64; CELLS_IN_SERIES],
}

impl CellSpread {
    /// Draws the spread from `seed`; the same seed gives the same pack. Draws are normal and clipped at
    /// 3 sigma so that no cell is absurd.
    pub fn from_seed(seed: u64, sigma: &SpreadSigma) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x6d65_6c76_5f63_656c);
        let mut draw = |s: f64| -> [f64; CELLS_IN_SERIES] {
            let mut out = [1.0; CELLS_IN_SERIES];
            if s > 0.0 {
                // Normal::new only fails for a non-finite or negative sigma, excluded here.
                if let Ok(n) = Normal::new(0.0, s) {
                    for o in &mut out {
                        *o = 1.0 + n.sample(&mut rng).clamp(-3.0 * s, 3.0 * s);
                    }
                }
            }
            out
        };
        let capacity = draw(sigma.capacity);
        let resistance = draw(sigma.resistance);
        let self_discharge = draw(sigma.self_discharge);
        let ageing = draw(sigma.ageing);
        CellSpread {
            capacity,
            resistance,
            self_discharge,
            ageing,
        }
    }

    /// No spread at all: every cell is the mean cell.
    pub fn uniform() -> Self {
        CellSpread {
            capacity: [1.0; CELLS_IN_SERIES],
            resistance: [1.0; CELLS_IN_SERIES],
            self_discharge: [1.0; CELLS_IN_SERIES],
            ageing: [1.0; CELLS_IN_SERIES],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(actual: f64, expected: f64, tol: f64, what: &str) {
        assert!(
            (actual - expected).abs() <= tol,
            "{what}: {actual} vs {expected} +- {tol}"
        );
    }

    #[test]
    fn arrhenius_factors() {
        check(arrhenius(CELL.ea_r0_j_mol, 25.0), 1.0, 1e-12, "ref");
        check(arrhenius(CELL.ea_r0_j_mol, 0.0), 1.94, 0.05, "R0 at 0 degC");
        check(arrhenius(CELL.ea_rc_j_mol, 0.0), 5.3, 0.2, "RC at 0 degC");
        assert!(arrhenius(CELL.ea_rc_j_mol, 45.0) < 0.4);
        // Clamped far outside the physical range rather than overflowing.
        assert!(arrhenius(CELL.ea_rc_j_mol, -1e9).is_finite());
    }

    #[test]
    fn arrhenius_tracker_matches_the_exact_factors() {
        let eas = [CELL.ea_r0_j_mol, CELL.ea_rc_j_mol, SELF_DISCHARGE_EA_J_MOL];
        let mut tr = ArrheniusTracker::new(eas, 20.0);
        let mut worst = 0.0f64;
        let mut anchors = 0;
        // Slow drifts (the common case), a jump, the clamped range and back, in 0.003 K steps.
        let mut path: Vec<f64> = (0..20_000).map(|k| 20.0 + 0.003 * f64::from(k)).collect();
        path.extend([85.0, 84.99, -60.0, 200.0, 25.0, 25.001]);
        path.extend((0..3000).map(|k| 25.0 - 0.01 * f64::from(k)));
        for &t in &path {
            let z0 = tr.z0;
            let f = tr.factors(t);
            if tr.z0 != z0 {
                anchors += 1;
            }
            for (k, &ea) in eas.iter().enumerate() {
                let exact = arrhenius(ea, t);
                worst = worst.max((f[k] - exact).abs() / exact);
            }
        }
        assert!(worst < 1e-12, "{worst:e}");
        // The polynomial carries most evaluations.
        assert!(anchors < path.len() / 10, "{anchors} of {}", path.len());
        // A NaN temperature behaves as arrhenius() does (NaN), and the next reading recovers.
        assert!(tr.factors(f64::NAN)[0].is_nan());
        check(tr.factors(25.0)[1], 1.0, 1e-15, "recovers at 25 degC");
    }

    #[test]
    fn storage_table_of_manual_3() {
        // (upper temperature of the band, months of storage before recharge) from manual 3. Starting at
        // 30 % (the recharge target), the end of each period must leave 5-16 % (the 10 % reserve, with
        // the Arrhenius line's deviation on the middle rows).
        let rows = [(25.0, 15.0), (35.0, 9.0), (45.0, 6.0), (55.0, 3.0)];
        for (t, months) in rows {
            let soc = storage_soc_after(0.30, months * 30.4375, t);
            assert!(
                (0.05..=0.16).contains(&soc),
                "{t} degC {months} months: {soc}"
            );
        }
        check(
            storage_soc_after(0.30, 15.0 * 30.4375, 25.0),
            0.10,
            1e-9,
            "25 degC row",
        );
        check(
            storage_soc_after(0.30, 3.0 * 30.4375, 55.0),
            0.10,
            0.005,
            "55 degC row",
        );
        check(
            storage_soc_after(0.05, 10_000.0, 25.0),
            0.0,
            0.0,
            "never below 0",
        );
        check(
            storage_soc_after(0.5, -3.0, 25.0),
            0.5,
            0.0,
            "negative days are no days",
        );
        assert!(self_discharge_fraction_per_day(-20.0) < self_discharge_fraction_per_day(0.0));
    }

    #[test]
    fn spread_is_reproducible_and_sized() {
        let a = CellSpread::from_seed(7, &SPREAD);
        let b = CellSpread::from_seed(7, &SPREAD);
        let c = CellSpread::from_seed(8, &SPREAD);
        assert_eq!(a, b);
        assert_ne!(a, c);
        for x in a.capacity {
            assert!((x - 1.0).abs() <= 3.0 * SPREAD.capacity + 1e-12);
        }
        assert!(a.capacity.iter().any(|&x| x != 1.0));
        assert_eq!(CellSpread::uniform().resistance, [1.0; CELLS_IN_SERIES]);
    }
}
