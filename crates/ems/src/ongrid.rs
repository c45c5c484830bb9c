//! On grid: the working mode proposes a site battery power, the safety layers bound it.
//!
//! Order of authority, strongest first (ARCHITECTURE.md 4.2: a limit is the minimum of every
//! constraint):
//! 1. hard layers, never crossed: each unit's reported limits, the backup reserve, the grid-charging
//!    policy, and (grid-services mode) volt-watt;
//! 2. grid-connection layers, met as far as the hard layers allow: import limit (and the
//!    grid-services peak limit), export limit, per-phase limits; PV is curtailed for what the
//!    batteries cannot absorb;
//! 3. the working mode's wish (with calibration, dispatch and frequency responses folded in).
//!
//! The reason reported is the layer that decided the final value.

use crate::controller::{Calibration, Controller, SiteInputs};
use crate::reason::Reason;
use crate::tou::PeriodKind;
use melv_core::{spec, GridCharging, WorkingMode};

/// Below this the batteries are idle for the reason's sake, W (a meter's resolution; the setpoint
/// itself is not rounded, so energy accounts still close).
const IDLE_W: f64 = 1.0;

/// A unit reporting this SOC or more is full for the reason's sake: an app showing whole percent
/// shows it at 100 % (the manual's "SOC=100%", 6.1), and what it still takes is the charge taper.
pub const FULL_SOC: f64 = 0.995;

/// Bounds on the site battery power with the layer behind each.
#[derive(Debug, Clone, Copy)]
struct Bound {
    w: f64,
    why: Reason,
}

impl Controller {
    /// The site's battery power on grid (positive = discharge), its reason, and a PV limit if any.
    pub(crate) fn on_grid_power(
        &mut self,
        inp: &SiteInputs,
        net: f64,
        grid_w: f64,
    ) -> (f64, Reason, Option<f64>) {
        let n = self.site.batteries;
        let gs = self.settings.mode == WorkingMode::GridServices;
        let usable = self.usable[..n].iter().filter(|u| **u).count() as f64;
        let (lo, hi) = self.hard_bounds(inp, net, gs, usable);
        let (target, why) = self.wish(inp, net, lo, hi, gs, usable);
        let nph = self.site.phases.count();
        let offsets = phase_offsets(inp, grid_w, nph);
        let (soft_lo, soft_hi) = self.soft_bounds(net, gs, nph, &offsets);
        let (p, why) = bind(target, why, [soft_lo, lo], [soft_hi, hi], lo);
        // Manual 5.1 note: where grid charging is forbidden the batteries take at most the PV
        // surplus, whatever the mode, calibration or dispatch asks.
        let surplus = (-net).max(0.0);
        assert!(
            self.site.grid_charging != GridCharging::Forbidden || p >= -surplus - 1e-6,
            "no grid charging where forbidden: {p} W charge against {surplus} W of PV surplus"
        );
        let why = idle_reason(why, p, self.settings.mode);
        let (why, curtail) = self.curtailment(inp, net, p, nph, &offsets, why);
        (p, why, curtail)
    }

    /// Hard layers, never crossed: the units' limits, the reserve, the grid-charging policy and (in
    /// grid-services mode) volt-watt. Returns the (lower, upper) bounds; the lower is <= 0 <= the
    /// upper while the units report non-negative limits.
    #[inline(always)] // one call site: the step it was split from stays one function
    fn hard_bounds(&self, inp: &SiteInputs, net: f64, gs: bool, usable: f64) -> (Bound, Bound) {
        let n = self.site.batteries;
        let mut caps = self.units;
        self.floor_caps(&mut caps, self.settings.reserve_soc);
        let raw_hi: f64 = self.units[..n].iter().map(|u| u.discharge_cap_w).sum();
        let hi_w: f64 = caps[..n].iter().map(|u| u.discharge_cap_w).sum();
        let lo_w: f64 = -caps[..n].iter().map(|u| u.charge_cap_w).sum::<f64>();
        let mut hi = Bound {
            w: hi_w,
            // The floor guard binds: at a reserve that is the reserve, at 0 % it is an empty battery.
            why: if hi_w < raw_hi && self.settings.reserve_soc > 0.0 {
                Reason::ReserveReached
            } else if hi_w < raw_hi || raw_hi <= 0.0 {
                Reason::BatteryEmpty
            } else {
                Reason::BatteryLimit
            },
        };
        // Full: nothing more is accepted, or every unit that still accepts some charge reports a
        // full SOC and takes only its taper (the CV-like trickle near the charge end, melv-bms
        // limits): a full battery in sunshine is `battery_full`, not `battery_limit` (issue 19).
        let full = lo_w >= 0.0
            || self.units[..n]
                .iter()
                .zip(&self.usable[..n])
                .all(|(u, ok)| !*ok || u.charge_cap_w <= 0.0 || u.soc >= FULL_SOC);
        let mut lo = Bound {
            w: lo_w,
            why: if full {
                Reason::BatteryFull
            } else {
                Reason::BatteryLimit
            },
        };
        // Grid-charging policy: charge only from PV surplus (manual 5.1 note).
        if self.site.grid_charging == GridCharging::Forbidden {
            // Less what lost units may still be taking on their last orders.
            let surplus = ((-net).max(0.0) - self.stale_charge_w(inp.now_s)).max(0.0);
            if -surplus > lo.w {
                lo = Bound {
                    w: -surplus,
                    why: Reason::GridChargingForbidden,
                };
            }
        }
        if gs {
            self.volt_watt(inp, usable, &mut lo, &mut hi);
        }
        (lo, hi)
    }

    /// Volt-watt (grid-services mode): the highest phase voltage caps discharging, the lowest caps
    /// charging.
    #[inline(always)] // one call site: the step it was split from stays one function
    fn volt_watt(&self, inp: &SiteInputs, usable: f64, lo: &mut Bound, hi: &mut Bound) {
        let Some(vw) = &self.settings.grid_services.volt_watt else {
            return;
        };
        let nph = self.site.phases.count();
        let v = &inp.grid_v[..nph];
        let vmax = v.iter().copied().fold(f64::MIN, f64::max);
        let vmin = v.iter().copied().fold(f64::MAX, f64::min);
        if vmax.is_finite() && vmax > 0.0 {
            let cap = vw.discharge.eval(vmax) * usable * spec::MAX_CONTINUOUS_OUTPUT_VA;
            if cap < hi.w {
                *hi = Bound {
                    w: cap.max(0.0),
                    why: Reason::VoltWatt,
                };
            }
        }
        if vmin.is_finite() && vmin > 0.0 {
            let cap = -vw.charge.eval(vmin) * usable * spec::MAX_CONTINUOUS_INPUT_VA;
            if cap > lo.w {
                *lo = Bound {
                    w: cap.min(0.0),
                    why: Reason::VoltWatt,
                };
            }
        }
    }

    /// The working mode's wish within the hard bounds `lo`..`hi` where it asks for "as much as
    /// possible", with the frequency responses (grid-services mode) folded in.
    #[inline(always)] // one call site: the step it was split from stays one function
    fn wish(
        &mut self,
        inp: &SiteInputs,
        net: f64,
        lo: Bound,
        hi: Bound,
        gs: bool,
        usable: f64,
    ) -> (f64, Reason) {
        // The mode's wish; infinite = as much as the hard layers allow.
        let (mut target, mut why) = self.mode_target(inp.now_s, net);
        if target.is_infinite() {
            // "As much as possible" is bounded by the units, which is no news: keep the mode's reason
            // unless the batteries can take nothing at all.
            let (lo_w, hi_w) = (lo.w, hi.w);
            assert!(
                lo_w <= hi_w,
                "hard bounds ordered: charge bound {lo_w} W <= discharge bound {hi_w} W"
            );
            let clamped = target.clamp(lo.w, hi.w);
            if clamped == 0.0 && target < 0.0 && lo.why == Reason::BatteryFull {
                why = Reason::BatteryFull;
            }
            target = clamped;
        }
        if gs {
            target = self.frequency_response(inp, target, &mut why, lo.w, hi.w, usable);
        }
        (target, why)
    }

    /// Grid-connection layers: import limit (and the grid-services peak limit), export limit,
    /// per-phase limits. Returns the (lower, upper) soft bounds; infinite where there is no limit.
    #[inline(always)] // one call site: the step it was split from stays one function
    fn soft_bounds(&self, net: f64, gs: bool, nph: usize, offsets: &[f64; 3]) -> (Bound, Bound) {
        let mut soft_lo = Bound {
            w: f64::NEG_INFINITY,
            why: Reason::ImportLimit,
        };
        let mut soft_hi = Bound {
            w: f64::INFINITY,
            why: Reason::ExportLimit,
        };
        let peak = if gs {
            self.settings.grid_services.import_peak_limit_w
        } else {
            None
        };
        let import = match (self.site.import_limit_w, peak) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(l) = import {
            soft_lo.w = net - l;
        }
        if let Some(e) = self.site.export_limit_w {
            soft_hi.w = net + e;
        }
        if let Some(l) = self.site.phase_limit_w {
            let k = nph as f64;
            for off in &offsets[..nph] {
                let (plo, phi) = (net + k * (off - l), net + k * (off + l));
                if plo > soft_lo.w {
                    soft_lo = Bound {
                        w: plo,
                        why: Reason::PhaseLimit,
                    };
                }
                if phi < soft_hi.w {
                    soft_hi = Bound {
                        w: phi,
                        why: Reason::PhaseLimit,
                    };
                }
            }
        }
        (soft_lo, soft_hi)
    }

    /// PV the batteries cannot take and the grid may not: the PV limit that curtails it, and the
    /// reason (the export or phase limit) when it binds.
    #[inline(always)] // one call site: the step it was split from stays one function
    fn curtailment(
        &self,
        inp: &SiteInputs,
        net: f64,
        p: f64,
        nph: usize,
        offsets: &[f64; 3],
        why: Reason,
    ) -> (Reason, Option<f64>) {
        let mut excess: f64 = 0.0;
        if let Some(e) = self.site.export_limit_w {
            excess = excess.max(-(net - p) - e);
        }
        let mut phase_bound = false;
        if let Some(l) = self.site.phase_limit_w {
            let k = nph as f64;
            for off in &offsets[..nph] {
                let export_k = -(net / k + off - p / k);
                if (export_k - l) * k > excess + 1e-6 {
                    excess = (export_k - l) * k;
                    phase_bound = true;
                }
            }
        }
        if excess <= 1e-6 {
            return (why, None);
        }
        let why = if phase_bound {
            Reason::PhaseLimit
        } else {
            Reason::ExportLimit
        };
        let pv = inp.pv_w.unwrap_or(0.0);
        (why, inp.pv_w.map(|_| (pv - excess).max(0.0)))
    }

    /// What the working mode (with calibration and dispatch) asks for, before any bound.
    fn mode_target(&mut self, now: i64, net: f64) -> (f64, Reason) {
        let self_consumption = || {
            let why = if net > IDLE_W {
                Reason::SelfConsumptionDischarge
            } else if net < -IDLE_W {
                Reason::SelfConsumptionCharge
            } else {
                Reason::Idle
            };
            (net, why)
        };
        // Bookkeeping every cycle, so that `Decision::calibrating` holds under a dispatch too.
        let calibration = self.calibration(now);
        let (dispatch, expired) = self.active_dispatch(now);
        if self.settings.mode == WorkingMode::GridServices {
            if let Some(d) = dispatch {
                return (d.power_w, Reason::ExternalDispatch);
            }
        }
        let period = if self.settings.mode == WorkingMode::TimeOfUse {
            let p = self.tou.period_at(now);
            self.decision.tou_period = p;
            p
        } else {
            None
        };
        // Due, the mode runs as usual: every mode on grid already puts PV surplus into the
        // batteries, which fills them on a sunny day. Overdue, the grid fills them, but only in the
        // cheapest allowed time.
        if calibration == Calibration::Overdue && self.calibration_grid_window(now, period) {
            return (f64::NEG_INFINITY, Reason::Calibration);
        }
        match self.settings.mode {
            WorkingMode::SelfConsumption => self_consumption(),
            WorkingMode::GridServices if expired => (net, Reason::DispatchExpired),
            WorkingMode::GridServices => self_consumption(),
            WorkingMode::TimeOfUse => match period {
                Some(PeriodKind::Charge)
                    if self.site_soc() < self.settings.tou.charge_target_soc =>
                {
                    (f64::NEG_INFINITY, Reason::TouChargePeriod)
                }
                Some(PeriodKind::Charge) => (net.min(0.0), Reason::TouChargePeriod),
                Some(PeriodKind::Discharge) => (net, Reason::TouDischargePeriod),
                None => (net.min(0.0), Reason::TouOtherPeriod),
            },
            // On grid, backup mode fills the batteries for the next outage and never discharges.
            WorkingMode::OffGridBackup => (f64::NEG_INFINITY, Reason::BackupCharging),
        }
    }

    /// Whether an overdue calibration may charge from the grid now: never where grid charging is
    /// forbidden; in TOU mode in a charging period (in an "other" period only when the schedule has
    /// no charging period), never in a discharging period; in self-consumption and grid-services
    /// mode, which know no prices, in the local night window
    /// [`crate::controller::CALIBRATION_NIGHT_HOURS`].
    fn calibration_grid_window(&mut self, now: i64, period: Option<PeriodKind>) -> bool {
        if self.site.grid_charging == GridCharging::Forbidden {
            return false;
        }
        match self.settings.mode {
            WorkingMode::TimeOfUse => match period {
                Some(PeriodKind::Charge) => true,
                Some(PeriodKind::Discharge) => false,
                None => !self.settings.tou.has_charge_periods(),
            },
            WorkingMode::SelfConsumption | WorkingMode::GridServices => {
                self.night.period_at(now).is_some()
            }
            // On grid, backup mode charges to full from grid and PV anyway: that is the calibration.
            WorkingMode::OffGridBackup => false,
        }
    }

    /// Frequency droop (added) and frequency-watt (moves towards the hard limits), grid-services mode.
    fn frequency_response(
        &self,
        inp: &SiteInputs,
        mut target: f64,
        why: &mut Reason,
        lo_w: f64,
        hi_w: f64,
        usable: f64,
    ) -> f64 {
        let f = inp.frequency_hz;
        if !(f.is_finite() && f > 0.0) {
            return target;
        }
        let gs = &self.settings.grid_services;
        if let Some(droop) = &gs.droop {
            let x = droop.response(f, self.site.country.nominal_frequency_hz());
            if x != 0.0 {
                let rated = if x > 0.0 {
                    spec::MAX_CONTINUOUS_OUTPUT_VA
                } else {
                    spec::MAX_CONTINUOUS_INPUT_VA
                };
                target += x * rated * usable;
                *why = Reason::FrequencyDroop;
            }
        }
        if let Some(fw) = &gs.frequency_watt {
            let x = fw.response(f);
            assert!(
                lo_w <= hi_w,
                "hard bounds ordered: charge bound {lo_w} W <= discharge bound {hi_w} W"
            );
            let base = target.clamp(lo_w, hi_w);
            let limit = if x > 0.0 { hi_w } else { lo_w };
            // With no room towards the limit there is no response to claim; the bound reports itself.
            if x != 0.0 && (limit - base).abs() > IDLE_W {
                target = base + x.abs() * (limit - base);
                *why = Reason::FrequencyWatt;
            }
        }
        target
    }

    /// Energy-weighted SOC of the usable units.
    fn site_soc(&self) -> f64 {
        let n = self.site.batteries;
        let (mut e, mut c) = (0.0, 0.0);
        for u in &self.units[..n] {
            e += u.soc * u.capacity_wh;
            c += u.capacity_wh;
        }
        if c > 0.0 {
            e / c
        } else {
            0.0
        }
    }
}

/// The wish `target` within the bounds, soft before hard: the last bound to bind gives the reason.
#[inline(always)] // one call site: the step it was split from stays one function
fn bind(
    target: f64,
    why: Reason,
    lower: [Bound; 2],
    upper: [Bound; 2],
    hard_lo: Bound,
) -> (f64, Reason) {
    let (mut p, mut why) = (target, why);
    for b in lower {
        if p < b.w {
            p = b.w;
            why = b.why;
        }
    }
    for b in upper {
        if p > b.w {
            p = b.w;
            why = b.why;
        }
    }
    // A later hard bound may have undone an earlier clamp's direction; the last one to bind wins,
    // and a hard lower bound must still hold after a hard upper bound (both contain 0).
    if p < hard_lo.w {
        p = hard_lo.w;
        why = hard_lo.why;
    }
    (p, why)
}

/// A charge or discharge too small to meter reads as idle; in backup mode, a full or charging
/// battery that does not charge is standing by.
#[inline(always)] // one call site: the step it was split from stays one function
fn idle_reason(why: Reason, p: f64, mode: WorkingMode) -> Reason {
    match why {
        Reason::SelfConsumptionCharge | Reason::SelfConsumptionDischarge if p.abs() < IDLE_W => {
            Reason::Idle
        }
        Reason::BackupCharging | Reason::BatteryFull
            if mode == WorkingMode::OffGridBackup && p > -IDLE_W =>
        {
            Reason::BackupStandby
        }
        w => w,
    }
}

/// Each phase's share of the meter above the even split, W. The batteries (three-phase units on a
/// three-phase site, manual 4.6) and, by assumption, the PV inverter load the phases evenly, so only
/// the house's own imbalance differs from phase to phase.
fn phase_offsets(inp: &SiteInputs, grid_w: f64, nph: usize) -> [f64; 3] {
    let mut off = [0.0; 3];
    let even = grid_w / nph as f64;
    for (o, &g) in off.iter_mut().zip(&inp.grid_power_w).take(nph) {
        *o = if g.is_finite() { g - even } else { 0.0 };
    }
    off
}
