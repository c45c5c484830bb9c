//! The unit's bidirectional inverter: ratings, the 5 kVA peak budget, power-factor and current limits,
//! and its loss model.
//!
//! Ratings (manual 7.1): 4.5 kVA continuous and 5 kVA peak discharge, 3.75 kVA charge, PF 0.8 leading
//! to 0.8 lagging on grid, 1.0 off grid. The peak may be held for `spec::assumed::PEAK_OUTPUT_DURATION_S`
//! (10 s) and refills over `PEAK_RECOVERY_S` (60 s) below the continuous rating. The datasheet's maximum
//! currents (manual 7.1, rows at 220 V, the highest) cap the apparent power when the grid voltage sags.
//!
//! Losses follow the Sandia / PVWatts form `P_loss = p0 + k1 S + k2 S^2` on the apparent power `S`
//! (no-load, switching, conduction), calibrated in `tests/cycle.rs` so that a full cycle gives the
//! datasheet's 90 % AC round trip on top of the pack's 96 % DC round trip (manual 7.1).

use crate::env::GridState;
use melv_core::spec::{
    assumed, MAX_CONTINUOUS_INPUT_VA, MAX_CONTINUOUS_OUTPUT_VA, MAX_OUTPUT_VA,
    MIN_POWER_FACTOR_ON_GRID,
};
use melv_core::Phases;
use serde::Serialize;

/// Largest output current per phase, A: manual 7.1 "Max. output current" 22.73 A @ 220 V (single
/// phase) and 7.58 A @ 380 V (three phase, per phase).
pub const MAX_OUTPUT_CURRENT_PER_PHASE_A: [f64; 2] = [22.73, 7.58];
/// Largest input current per phase, A: manual 7.1 "Max. input current" 17.05 A @ 220 V and 5.70 A @ 380 V.
pub const MAX_INPUT_CURRENT_PER_PHASE_A: [f64; 2] = [17.05, 5.70];

/// Converting below this apparent power is idle: the bridge stops switching (burst mode), so the no-load
/// loss is not paid at a zero setpoint.
pub const IDLE_VA: f64 = 1.0;

/// `P_loss = p0 + k1 S + k2 S^2`, W with S in VA.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LossModel {
    pub p0_w: f64,
    pub k1: f64,
    pub k2_per_w: f64,
}

/// Calibrated losses. p0 = 20 W no-load (a 5 kVA transformerless bridge with its filter and
/// isolation stage: galvanic isolation, manual 7.1 protection table); k1 and k2 put the efficiency at
/// 96.7 % at 3.75 kVA and 96.4 % at 4.5 kVA, typical of isolated low-voltage (25.6 V) battery
/// inverters, and together with the pack reproduce the 90 % AC round trip of manual 7.1.
pub const LOSSES: LossModel = LossModel {
    p0_w: 20.0,
    k1: 0.018,
    k2_per_w: 1.7e-6,
};

impl LossModel {
    /// Loss at apparent power `s_va` (0 when idle).
    #[inline]
    pub fn loss_w(&self, s_va: f64) -> f64 {
        let s = s_va.abs();
        if s < IDLE_VA {
            0.0
        } else {
            self.p0_w + self.k1 * s + self.k2_per_w * s * s
        }
    }

    /// Largest apparent power whose AC output plus loss fits in `dc_w` of DC input (discharging): the
    /// positive root of `k2 S^2 + (1 + k1) S + p0 - dc = 0`, assuming the reactive share `q_share`
    /// (|Q|/S) so that P = S sqrt(1 - q_share^2).
    pub fn max_s_for_dc(&self, dc_w: f64, q_share: f64) -> f64 {
        let pf = (1.0 - q_share * q_share).max(0.0).sqrt();
        let c = self.p0_w - dc_w;
        if c >= 0.0 {
            return 0.0;
        }
        let b = pf + self.k1;
        let a = self.k2_per_w;
        (-b + (b * b - 4.0 * a * c).sqrt()) / (2.0 * a)
    }
}

/// What the inverter can do right now. Powers are magnitudes (>= 0); signs as ARCHITECTURE.md 3 when
/// applied.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct InverterLimits {
    /// Largest discharge (export) active power, W.
    pub max_discharge_w: f64,
    /// Largest charge (import) active power, W.
    pub max_charge_w: f64,
    /// Apparent-power limit when discharging, VA (5 kVA while the peak budget lasts, else 4.5 kVA).
    pub max_discharge_va: f64,
    /// Apparent-power limit when charging, VA.
    pub max_charge_va: f64,
    /// Largest |Q| as a fraction of |P| (0.75 for PF 0.8 on grid, 0 off grid).
    pub max_q_per_p: f64,
    /// Largest |Q| at the rated apparent power, var.
    pub max_reactive_var: f64,
    /// Seconds of 5 kVA peak left.
    pub peak_budget_s: f64,
}

impl InverterLimits {
    /// Nothing: power stage faulted, short circuit, or no voltage to follow.
    pub const NONE: InverterLimits = InverterLimits {
        max_discharge_w: 0.0,
        max_charge_w: 0.0,
        max_discharge_va: 0.0,
        max_charge_va: 0.0,
        max_q_per_p: 0.0,
        max_reactive_var: 0.0,
        peak_budget_s: 0.0,
    };

    /// Clamps a setpoint (P positive = discharging, Q positive = supplying) to these limits. Active power
    /// has priority over reactive power inside the apparent-power circle.
    pub fn clamp(&self, p_w: f64, q_var: f64) -> (f64, f64) {
        // Limits are magnitudes (`limits` builds them from non-negative voltages and ratings), so
        // the active-power clamp's bounds are ordered.
        assert!(
            self.max_charge_w >= 0.0 && self.max_discharge_w >= 0.0,
            "inverter active-power limits non-negative: charge {} W, discharge {} W",
            self.max_charge_w,
            self.max_discharge_w
        );
        let p = if p_w.is_finite() {
            p_w.clamp(-self.max_charge_w, self.max_discharge_w)
        } else {
            0.0
        };
        let s_max = if p >= 0.0 {
            self.max_discharge_va
        } else {
            self.max_charge_va
        };
        let q_pf = self.max_q_per_p * p.abs();
        let q_circle = (s_max * s_max - p * p).max(0.0).sqrt();
        let q_lim = q_pf.min(q_circle);
        assert!(
            q_lim >= 0.0,
            "inverter reactive limit non-negative: {q_lim} var"
        );
        let q = if q_var.is_finite() {
            q_var.clamp(-q_lim, q_lim)
        } else {
            0.0
        };
        (p, q)
    }
}

/// The budget that lets the inverter exceed its continuous rating for a short time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PeakBudget {
    /// Seconds of full peak (5 kVA) left, 0..=PEAK_OUTPUT_DURATION_S.
    pub remaining_s: f64,
    /// The budget ran out and has not yet refilled completely: no peak until it has
    /// (`spec::assumed::PEAK_RECOVERY_S`: "recovery after a peak before the next one is allowed").
    pub recovering: bool,
}

impl Default for PeakBudget {
    fn default() -> Self {
        PeakBudget {
            remaining_s: assumed::PEAK_OUTPUT_DURATION_S,
            recovering: false,
        }
    }
}

impl PeakBudget {
    /// Mean apparent power the inverter may deliver over the next `dt_s`: the peak while the budget
    /// lasts, blended with the continuous rating when the budget runs out inside the step.
    pub fn allowed_va(&self, dt_s: f64) -> f64 {
        if self.recovering {
            return MAX_CONTINUOUS_OUTPUT_VA;
        }
        let share = if dt_s > 0.0 {
            (self.remaining_s / dt_s).min(1.0)
        } else {
            1.0
        };
        MAX_CONTINUOUS_OUTPUT_VA + (MAX_OUTPUT_VA - MAX_CONTINUOUS_OUTPUT_VA) * share
    }

    /// Spends the budget in proportion to the overload (5 kVA for 1 s costs 1 s) and refills it below
    /// the continuous rating, from empty to full in PEAK_RECOVERY_S.
    pub fn update(&mut self, dt_s: f64, s_va: f64) {
        let over = s_va - MAX_CONTINUOUS_OUTPUT_VA;
        if over > 1e-9 {
            self.remaining_s -= dt_s * over / (MAX_OUTPUT_VA - MAX_CONTINUOUS_OUTPUT_VA);
        } else {
            self.remaining_s += dt_s * assumed::PEAK_OUTPUT_DURATION_S / assumed::PEAK_RECOVERY_S;
        }
        self.remaining_s = self.remaining_s.clamp(0.0, assumed::PEAK_OUTPUT_DURATION_S);
        if self.remaining_s <= 0.0 {
            self.recovering = true;
        } else if self.remaining_s >= assumed::PEAK_OUTPUT_DURATION_S - 1e-9 {
            // Snap: sixty additions of 1/6 s fall a rounding error short of 10 s.
            self.remaining_s = assumed::PEAK_OUTPUT_DURATION_S;
            self.recovering = false;
        }
    }
}

/// Limits for a unit wired `phases` on `grid` (on grid if a grid is present, grid-forming otherwise),
/// given the peak budget and the step length it will be applied over.
pub fn limits(
    phases: Phases,
    grid: &GridState,
    budget: &PeakBudget,
    dt_s: f64,
    power_stage_ok: bool,
) -> InverterLimits {
    if !power_stage_ok || grid.short_circuit {
        return InverterLimits::NONE;
    }
    let idx = match phases {
        Phases::Single => 0,
        Phases::Three => 1,
    };
    // Sum of phase voltages the bridge works into: the grid's on grid, its own 230 V off grid.
    let (sum_v, max_q_per_p) = if grid.present {
        let sum: f64 = grid
            .phase_v
            .iter()
            .take(phases.count())
            .map(|v| v.max(0.0))
            .sum();
        let pf = MIN_POWER_FACTOR_ON_GRID;
        (sum, (1.0 - pf * pf).sqrt() / pf)
    } else {
        // Manual 7.1: PF 1.0 off grid.
        (crate::env::NOMINAL_PHASE_V * phases.count() as f64, 0.0)
    };
    let dis_va = budget
        .allowed_va(dt_s)
        .min(sum_v * MAX_OUTPUT_CURRENT_PER_PHASE_A[idx]);
    let chg_va = MAX_CONTINUOUS_INPUT_VA.min(sum_v * MAX_INPUT_CURRENT_PER_PHASE_A[idx]);
    InverterLimits {
        max_discharge_w: dis_va,
        max_charge_w: chg_va,
        max_discharge_va: dis_va,
        max_charge_va: chg_va,
        max_q_per_p,
        // At PF 0.8 the reactive share of S is 0.6.
        max_reactive_var: dis_va * max_q_per_p / (1.0 + max_q_per_p * max_q_per_p).sqrt(),
        peak_budget_s: budget.remaining_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::GridState;

    fn check(lim: &InverterLimits, p: f64, q: f64, expected: (f64, f64)) {
        let got = lim.clamp(p, q);
        assert!(
            (got.0 - expected.0).abs() < 1e-6 && (got.1 - expected.1).abs() < 1e-6,
            "clamp({p}, {q}) = {got:?}, expected {expected:?}"
        );
    }

    fn on_grid(phases: Phases) -> InverterLimits {
        limits(
            phases,
            &GridState::nominal(phases),
            &PeakBudget::default(),
            1.0,
            true,
        )
    }

    #[test]
    fn clamps_on_grid() {
        let lim = on_grid(Phases::Single);
        check(&lim, 6000.0, 0.0, (5000.0, 0.0));
        check(&lim, -6000.0, 0.0, (-3750.0, 0.0));
        // PF 0.8: |Q| <= 0.75 |P|.
        check(&lim, 2000.0, 3000.0, (2000.0, 1500.0));
        check(&lim, -2000.0, -3000.0, (-2000.0, -1500.0));
        // Inside the circle: 4000 W leaves 3000 var of 5 kVA, PF caps it at 3000 too.
        check(&lim, 4000.0, 4000.0, (4000.0, 3000.0));
        check(&lim, 4800.0, 4000.0, (4800.0, 1400.0));
        check(&lim, 0.0, 1000.0, (0.0, 0.0));
        check(&lim, f64::NAN, f64::INFINITY, (0.0, 0.0));
        assert!((lim.max_reactive_var - 3000.0).abs() < 1e-6);
        // Three phase has the same ratings (balanced).
        check(&on_grid(Phases::Three), 6000.0, 0.0, (5000.0, 0.0));
    }

    #[test]
    fn off_grid_unity_pf_and_faults() {
        let g = GridState::outage(Phases::Single);
        let lim = limits(Phases::Single, &g, &PeakBudget::default(), 1.0, true);
        check(&lim, 3000.0, 500.0, (3000.0, 0.0));
        let mut short = GridState::nominal(Phases::Single);
        short.short_circuit = true;
        let none = limits(Phases::Single, &short, &PeakBudget::default(), 1.0, true);
        check(&none, 3000.0, 500.0, (0.0, 0.0));
        let faulted = limits(
            Phases::Single,
            &GridState::nominal(Phases::Single),
            &PeakBudget::default(),
            1.0,
            false,
        );
        check(&faulted, -3000.0, 0.0, (0.0, 0.0));
    }

    #[test]
    fn current_limit_at_low_voltage() {
        let mut g = GridState::nominal(Phases::Single);
        g.phase_v[0] = 176.0;
        let lim = limits(Phases::Single, &g, &PeakBudget::default(), 1.0, true);
        // 176 V x 22.73 A = 4000 VA, 176 V x 17.05 A = 3000.8 VA.
        check(&lim, 6000.0, 0.0, (176.0 * 22.73, 0.0));
        check(&lim, -6000.0, 0.0, (-176.0 * 17.05, 0.0));
    }

    #[test]
    fn peak_for_ten_seconds_then_continuous() {
        let mut b = PeakBudget::default();
        let mut allowed = Vec::new();
        for _ in 0..14 {
            let a = b.allowed_va(1.0);
            allowed.push(a);
            b.update(1.0, a);
        }
        assert_eq!(&allowed[..10], &[5000.0; 10]);
        assert_eq!(&allowed[10..], &[4500.0; 4]);
        // No new peak until the budget has refilled completely: 60 s at or below 4.5 kVA.
        for _ in 0..45 {
            b.update(1.0, 4500.0);
        }
        assert_eq!(b.allowed_va(1.0), 4500.0);
        for _ in 0..11 {
            b.update(1.0, 4000.0);
        }
        assert_eq!(b.allowed_va(1.0), 5000.0);
        // A long step blends: 10 s of peak in a 100 s step is 4550 VA mean.
        assert!((b.allowed_va(100.0) - 4550.0).abs() < 1e-6);
    }

    #[test]
    fn losses() {
        let l = LOSSES;
        assert_eq!(l.loss_w(0.0), 0.0);
        let eff = |s: f64| s / (s + l.loss_w(s));
        assert!((0.95..0.98).contains(&eff(3750.0)), "{}", eff(3750.0));
        assert!((0.95..0.98).contains(&eff(4500.0)), "{}", eff(4500.0));
        // max_s_for_dc inverts S + loss(S) at PF 1.
        let s = 3000.0;
        let dc = s + l.loss_w(s);
        assert!((l.max_s_for_dc(dc, 0.0) - s).abs() < 1e-6);
        assert_eq!(l.max_s_for_dc(10.0, 0.0), 0.0);
    }
}
