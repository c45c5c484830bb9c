//! Calendar and cycle ageing of one LFP cell: the equations and parameters of NREL BLAST-Lite's
//! `Lfp_Gr_250AhPrismatic` model (Gasper et al., J. Energy Storage 73 (2023) 109042; PyPI
//! `blast-lite` 1.1.1, `blast/models/lfp_gr_250AhPrismatic_2019.py`), integrated online.
//!
//! BLAST-Lite writes the capacity as `q = 1 - q_cal - q_cyc` with
//! * calendar: `q_cal = k_cal * t_days^0.526`, `k_cal = p1 exp(p2/T) exp(p3 Ua(soc)/T)`;
//! * cycling: `q_cyc = k_cyc * EFC^0.828`, `k_cyc = (p4 + p5 DoD + p6 Crate)(exp(p7/T) + exp(-p8/T))`,
//!
//! where `Ua` is the graphite potential at the cell's SOC (Safari & Delacourt 2011, with the anode
//! window of Schimpe et al. 2018), `DoD` is the SOC swing of a cycle and `Crate` the time-averaged
//! |current|/capacity over the same chunk (rests included). BLAST evaluates stressors per chunk of at
//! most one day; we keep the same meaning online: DoD and C-rate are those of the last completed day
//! (the current day's until one completes). Power laws are advanced by BLAST's own state equation
//! (`dy = k p (y/k)^((p-1)/p) dx`, i.e. time-equivalent updating), so changing stressors compose.
//! A per-cell `scalar` (mean 1, seeded spread) multiplies both rates, as BLAST's degradation scalar.
//!
//! The reference numbers we match (from `tools/blast_reference.py`) are in the tests below.

/// BLAST-Lite `Lfp_Gr_250AhPrismatic._params_life`.
const P1: f64 = 8.37e4;
const P2: f64 = -5.21e3;
const P3: f64 = -3.56e3;
const PCAL: f64 = 0.526;
const P4: f64 = 4.38e-8;
const P5: f64 = 1.55e-8;
const P6: f64 = 1.68e-7;
const P7: f64 = 2.19e3;
const P8: f64 = 1.55e5;
const PCYC: f64 = 0.828;

/// BLAST treats |C-rate| below 0.01 as storage when averaging (`abs_instantaneous_crate < 1e-2 = 0`).
const CRATE_STORAGE: f64 = 0.01;
/// Length of a stressor chunk, s (BLAST `breakpoints_max_time_diff_s` = 86400).
const CHUNK_S: f64 = 86_400.0;

/// Graphite potential vs Li, V, at a full-cell SOC (BLAST `BatteryDegradationModel._get_Ua`).
pub fn anode_potential_v(soc: f64) -> f64 {
    let xa = 8.5e-3 + soc.clamp(0.0, 1.0) * (0.78 - 8.5e-3);
    0.6379 + 0.5416 * (-305.5309 * xa).exp() + 0.044 * (-(xa - 0.1958) / 0.1088).tanh()
        - 0.1978 * ((xa - 1.0571) / 0.0854).tanh()
        - 0.6875 * ((xa + 0.0117) / 0.0529).tanh()
        - 0.0175 * ((xa - 0.5692) / 0.0875).tanh()
}

/// Calendar rate constant at temperature `temp_c` and SOC.
pub fn k_cal(temp_c: f64, soc: f64) -> f64 {
    let t = temp_c.clamp(-40.0, 100.0) + 273.15;
    P1 * (P2 / t).exp() * (P3 * anode_potential_v(soc) / t).exp()
}

/// Cycle rate constant at temperature `temp_c`, depth of discharge and mean C-rate.
pub fn k_cyc(temp_c: f64, dod: f64, crate_: f64) -> f64 {
    let t = temp_c.clamp(-40.0, 100.0) + 273.15;
    (P4 + P5 * dod.clamp(0.0, 1.0) + P6 * crate_.max(0.0)) * ((P7 / t).exp() + (-P8 / t).exp())
}

/// BLAST's power-state update: the increase of `y = k x^p` when x grows by `dx` from state `y0`.
fn power_state_step(y0: f64, dx: f64, k: f64, p: f64) -> f64 {
    if dx <= 0.0 || k <= 0.0 {
        return 0.0;
    }
    if y0 <= 0.0 {
        return k * dx.powf(p);
    }
    // Time-equivalent form: x_eq = (y0/k)^(1/p); exact for constant k, and the same as BLAST's
    // derivative form in the limit of small dx.
    let x_eq = (y0 / k).powf(1.0 / p);
    k * (x_eq + dx).powf(p) - y0
}

/// Ageing state of one cell.
///
/// Stress is first accumulated ([`Ageing::accumulate`]) and applied to the power laws once per chunk
/// ([`Ageing::flush`]) with the chunk's mean rate constants, as BLAST-Lite does. Applying the power
/// laws at every small step instead would over-count: with a rate constant that swings with SOC during
/// a day, time-equivalent updating makes each swing restart the steep early part of the sqrt curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ageing {
    /// Calendar capacity loss, fraction of the new capacity.
    pub q_cal: f64,
    /// Cycle capacity loss, fraction of the new capacity.
    pub q_cyc: f64,
    /// Equivalent full cycles so far (charge throughput / 2 / capacity), flushed or not.
    pub efc: f64,
    /// Rate multiplier of this cell (seeded spread, mean 1).
    pub scalar: f64,
    /// Chunk accumulators: days, integral of k_cal over days, EFC, integral of k_cyc over EFC.
    chunk_days: f64,
    chunk_kcal_days: f64,
    chunk_efc: f64,
    chunk_kcyc_efc: f64,
}

impl Ageing {
    /// A cell that has already lost `initial_fade` (booked as calendar loss, the usual history of a
    /// stored or lightly used unit).
    pub fn new(initial_fade: f64, scalar: f64) -> Self {
        Ageing {
            q_cal: initial_fade.clamp(0.0, 0.9),
            q_cyc: 0.0,
            efc: 0.0,
            scalar,
            chunk_days: 0.0,
            chunk_kcal_days: 0.0,
            chunk_efc: 0.0,
            chunk_kcyc_efc: 0.0,
        }
    }

    /// Remaining capacity as a fraction of the new capacity (BLAST `q`), never below 0.05.
    pub fn capacity_fraction(&self) -> f64 {
        (1.0 - self.q_cal - self.q_cyc).max(0.05)
    }

    /// Total capacity lost.
    pub fn fade(&self) -> f64 {
        1.0 - self.capacity_fraction()
    }

    /// Days accumulated since the last flush.
    pub fn pending_days(&self) -> f64 {
        self.chunk_days
    }

    /// Records `dt_days` at mean `soc` and `temp_c`, with `delta_efc` equivalent full cycles done in
    /// the interval under cycling stressors `dod` and `crate_`. Nothing changes until [`Self::flush`].
    pub fn accumulate(
        &mut self,
        dt_days: f64,
        soc: f64,
        temp_c: f64,
        delta_efc: f64,
        dod: f64,
        crate_: f64,
    ) {
        if dt_days > 0.0 {
            self.chunk_days += dt_days;
            self.chunk_kcal_days += k_cal(temp_c, soc) * dt_days;
        }
        if delta_efc > 0.0 {
            self.chunk_efc += delta_efc;
            self.chunk_kcyc_efc += k_cyc(temp_c, dod, crate_) * delta_efc;
            self.efc += delta_efc;
        }
    }

    /// Applies the accumulated chunk with its mean rate constants.
    pub fn flush(&mut self) {
        if self.chunk_days > 0.0 {
            let kc = self.chunk_kcal_days / self.chunk_days * self.scalar;
            self.q_cal += power_state_step(self.q_cal, self.chunk_days, kc, PCAL);
        }
        if self.chunk_efc > 0.0 {
            let ky = self.chunk_kcyc_efc / self.chunk_efc * self.scalar;
            self.q_cyc += power_state_step(self.q_cyc, self.chunk_efc, ky, PCYC);
        }
        self.chunk_days = 0.0;
        self.chunk_kcal_days = 0.0;
        self.chunk_efc = 0.0;
        self.chunk_kcyc_efc = 0.0;
    }

    /// [`Self::accumulate`] then [`Self::flush`]: one chunk under constant stress.
    pub fn advance(
        &mut self,
        dt_days: f64,
        soc: f64,
        temp_c: f64,
        delta_efc: f64,
        dod: f64,
        crate_: f64,
    ) {
        self.accumulate(dt_days, soc, temp_c, delta_efc, dod, crate_);
        self.flush();
    }
}

/// The pack-level cycling stressors BLAST computes per chunk (one day): the SOC swing and the time
/// average of |C-rate|, rests included, rates under 0.01 C counted as rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StressorTracker {
    chunk_s: f64,
    soc_min: f64,
    soc_max: f64,
    crate_integral: f64,
    /// Stressors of the last completed chunk, or `None` before the first one completes.
    last: Option<(f64, f64)>,
}

impl StressorTracker {
    pub fn new(soc: f64) -> Self {
        StressorTracker {
            chunk_s: 0.0,
            soc_min: soc,
            soc_max: soc,
            crate_integral: 0.0,
            last: None,
        }
    }

    /// Records `dt_s` seconds ending at `soc` with mean |current|/capacity `crate_abs`.
    pub fn record(&mut self, dt_s: f64, soc: f64, crate_abs: f64) {
        self.soc_min = self.soc_min.min(soc);
        self.soc_max = self.soc_max.max(soc);
        if crate_abs >= CRATE_STORAGE {
            self.crate_integral += crate_abs * dt_s;
        }
        self.chunk_s += dt_s;
        if self.chunk_s >= CHUNK_S {
            self.last = Some(self.current());
            self.chunk_s = 0.0;
            self.soc_min = soc;
            self.soc_max = soc;
            self.crate_integral = 0.0;
        }
    }

    fn current(&self) -> (f64, f64) {
        let crate_ = if self.chunk_s > 0.0 {
            self.crate_integral / self.chunk_s
        } else {
            0.0
        };
        (self.soc_max - self.soc_min, crate_)
    }

    /// (DoD, C-rate) to use now.
    pub fn stressors(&self) -> (f64, f64) {
        self.last.unwrap_or_else(|| self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a cell through a daily SOC profile `soc_at(hour)` at 15-minute steps, like BLAST does with
    /// the profiles of tools/blast_reference.py, until `days` have passed or `max_efc` is reached.
    /// `conserve`: BLAST's `is_conserve_energy_throughput` (the swing deepens as the cell fades, so
    /// the Ah per day stay the same, as in the plant); it cannot for a 0-100 % profile.
    fn run_profile(
        days: usize,
        max_efc: f64,
        temp_c: f64,
        conserve: bool,
        soc_at: impl Fn(f64) -> f64,
    ) -> Ageing {
        let mut a = Ageing::new(0.0, 1.0);
        let mut tr = StressorTracker::new(soc_at(0.0));
        let dt_h = 0.25;
        for step in 0..(days * 96) {
            let h0 = (step % 96) as f64 * dt_h;
            let (s0, s1) = (soc_at(h0), soc_at(h0 + dt_h));
            let dsoc = (s1 - s0).abs();
            tr.record(dt_h * 3600.0, s1, dsoc / dt_h * a.capacity_fraction());
            let (d, c) = tr.stressors();
            // EFC in units of the new capacity: the same Ah when throughput is conserved, else
            // |dSOC|/2 * q of the faded cell.
            let efc = if conserve {
                dsoc / 2.0
            } else {
                dsoc / 2.0 * a.capacity_fraction()
            };
            a.accumulate(dt_h / 24.0, 0.5 * (s0 + s1), temp_c, efc, d, c);
            if step % 96 == 95 {
                a.flush();
            }
            if a.efc >= max_efc {
                a.flush();
                break;
            }
        }
        a
    }

    /// The home profile of tools/blast_reference.py: charge 09-14 h to 0.90, hold, discharge 18-24 h
    /// to 0.90 - dod, rest.
    fn home(dod: f64) -> impl Fn(f64) -> f64 {
        move |h: f64| {
            let (hi, lo) = (0.90, 0.90 - dod);
            if h < 9.0 {
                lo
            } else if h < 14.0 {
                lo + (hi - lo) * (h - 9.0) / 5.0
            } else if h < 18.0 {
                hi
            } else {
                hi - (hi - lo) * (h - 18.0) / 6.0
            }
        }
    }

    fn run_home(days: usize, dod: f64, temp_c: f64) -> Ageing {
        run_profile(days, f64::INFINITY, temp_c, true, home(dod))
    }

    /// (name, our result, BLAST-Lite 1.1.1 result from tools/blast_reference.py, tolerance).
    fn check(name: &str, ours: f64, blast: f64, tol: f64) {
        eprintln!("{name}: ours {ours:.4}, BLAST-Lite {blast:.4}");
        assert!(
            (ours - blast).abs() <= tol,
            "{name}: ours {ours:.4} vs BLAST {blast:.4} (+- {tol})"
        );
    }

    #[test]
    fn blast_reference_points() {
        // home_240efc_25C_10y: q=0.9005 q_cal=0.9633 q_cyc=0.9372 (issue item 4: about 90 % after 10
        // years at 25 degC and 240 EFC a year).
        let a = run_home(3650, 240.0 / 365.0, 25.0);
        check("10 y 25 degC q", a.capacity_fraction(), 0.9005, 0.006);
        check("10 y 25 degC q_cal", 1.0 - a.q_cal, 0.9633, 0.003);
        check("10 y 25 degC q_cyc", 1.0 - a.q_cyc, 0.9372, 0.005);
        check("10 y 25 degC efc", a.efc, 2422.0, 30.0);
        // home_240efc_35C_10y: q=0.8825.
        check(
            "10 y 35 degC q",
            run_home(3650, 240.0 / 365.0, 35.0).capacity_fraction(),
            0.8825,
            0.01,
        );
        // home_240efc_10C_10y: q=0.8939 (BLAST's cycling term grows when cold).
        check(
            "10 y 10 degC q",
            run_home(3650, 240.0 / 365.0, 10.0).capacity_fraction(),
            0.8939,
            0.01,
        );
    }

    #[test]
    fn calendar_only_reference_points() {
        // storage_socX_25C_10y: q = 0.9727 (30 %), 0.9630 (50 %), 0.9425 (100 %).
        for (soc, blast) in [(0.3, 0.9727), (0.5, 0.9630), (1.0, 0.9425)] {
            let mut a = Ageing::new(0.0, 1.0);
            for _ in 0..3650 {
                a.advance(1.0, soc, 25.0, 0.0, 0.0, 0.0);
            }
            check(
                &format!("storage {soc}"),
                a.capacity_fraction(),
                blast,
                0.003,
            );
        }
    }

    #[test]
    fn ten_thousand_full_cycles() {
        // full_cycles_25C_10000efc (one 0-100 % cycle a day: charge 2 h, hold full 10 h, discharge
        // 2 h, hold empty 10 h): q=0.7210 q_cal=0.9433 q_cyc=0.7777 after 12,522 days. Datasheet:
        // 10,000 cycles at 100 % DoD (manual 7.1); issue item 4 asks for 70-80 % left at that count.
        let full = |h: f64| -> f64 {
            if h < 2.0 {
                h / 2.0
            } else if h < 12.0 {
                1.0
            } else if h < 14.0 {
                1.0 - (h - 12.0) / 2.0
            } else {
                0.0
            }
        };
        let a = run_profile(20_000, 10_000.0, 25.0, false, full);
        check("10k cycles q", a.capacity_fraction(), 0.7210, 0.02);
        check("10k cycles q_cal", 1.0 - a.q_cal, 0.9433, 0.01);
        assert!((0.70..=0.80).contains(&a.capacity_fraction()));
    }

    #[test]
    fn time_equivalent_updating_composes() {
        // One 100-day step equals 100 one-day steps under constant stress (exact power law).
        let mut a = Ageing::new(0.0, 1.0);
        let mut b = Ageing::new(0.0, 1.0);
        a.advance(100.0, 0.5, 25.0, 0.0, 0.0, 0.0);
        for _ in 0..100 {
            b.advance(1.0, 0.5, 25.0, 0.0, 0.0, 0.0);
        }
        check("composition", a.q_cal, b.q_cal, 1e-12);
        // Initial fade is kept, nothing happens in zero time.
        let mut c = Ageing::new(0.1, 1.0);
        c.advance(0.0, 0.5, 25.0, 0.0, 0.0, 0.0);
        check("initial fade", c.fade(), 0.1, 1e-12);
    }
}
