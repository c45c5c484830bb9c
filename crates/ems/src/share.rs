//! Sharing the site's battery power among up to six units so that their SOCs converge.
//!
//! Discharge is shared in proportion to each unit's energy above the floor (reserve on grid, off-grid
//! minimum when islanded), charge in proportion to its room below full. A unit with more energy then
//! gives more, so the SOC spread shrinks every step (d(soc_i)/dt is proportional to soc_i - floor).
//! Each unit's own limit caps its share; what a capped unit cannot take is shared again among the
//! others ("water filling"), at most once per unit, so the loop is bounded by the unit count.

/// Most units a site can have (manual appendix 1 b: 1-6 sets on three phase).
pub const MAX_UNITS: usize = melv_core::spec::MAX_BATTERIES_THREE_PHASE;

/// One unit as the sharing sees it. Powers are magnitudes (>= 0); an unusable unit has both caps 0.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Unit {
    pub soc: f64,
    /// Usable capacity now, Wh (rated energy times SOH).
    pub capacity_wh: f64,
    /// Largest discharge this step, W: the unit's own limit, tightened by the floor.
    pub discharge_cap_w: f64,
    /// Largest charge this step, W.
    pub charge_cap_w: f64,
}

/// Splits `total_w` (positive = discharge) over `units`, writing each unit's signed share to `out`.
/// The sum of `out` equals `total_w` clipped to the sum of the caps in its direction.
pub fn share(total_w: f64, floor_soc: f64, units: &[Unit], out: &mut [f64]) {
    let n = units.len().min(out.len());
    out[..n].iter_mut().for_each(|o| *o = 0.0);
    if total_w == 0.0 || n == 0 {
        return;
    }
    let discharge = total_w > 0.0;
    let cap = |u: &Unit| {
        if discharge {
            u.discharge_cap_w
        } else {
            u.charge_cap_w
        }
    };
    let weight = |u: &Unit| {
        let room = if discharge {
            u.soc - floor_soc
        } else {
            1.0 - u.soc
        };
        room.max(0.0) * u.capacity_wh
    };
    if n == 1 {
        out[0] = total_w.abs().min(cap(&units[0])).copysign(total_w);
        return;
    }
    let mut open = [false; MAX_UNITS];
    let mut weights = [0.0; MAX_UNITS];
    let mut wsum = 0.0;
    let mut any_weight = false;
    for (i, u) in units[..n].iter().enumerate() {
        open[i] = cap(u) > 0.0;
        weights[i] = weight(u);
        any_weight |= open[i] && weights[i] > 0.0;
    }
    // A unit may still accept power with no room by our estimate (SOC reads 100 % while the BMS
    // keeps accepting a taper current): share by caps then.
    for (i, u) in units[..n].iter().enumerate() {
        if !any_weight {
            weights[i] = cap(u);
        }
        if open[i] {
            wsum += weights[i];
        }
    }
    let mut remaining = total_w.abs();
    for _round in 0..n {
        if remaining <= 0.0 || wsum <= 0.0 {
            break;
        }
        let mut saturated = false;
        for i in 0..n {
            if open[i] && remaining * weights[i] / wsum >= cap(&units[i]) {
                out[i] = cap(&units[i]);
                open[i] = false;
                saturated = true;
            }
        }
        if !saturated {
            for i in 0..n {
                if open[i] {
                    out[i] = remaining * weights[i] / wsum;
                }
            }
            break;
        }
        let taken: f64 = (0..n).filter(|&i| !open[i]).map(|i| out[i]).sum();
        remaining = (total_w.abs() - taken).max(0.0);
        wsum = (0..n).filter(|&i| open[i]).map(|i| weights[i]).sum();
    }
    if !discharge {
        out[..n].iter_mut().for_each(|o| *o = -*o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(soc: f64, dis: f64, ch: f64) -> Unit {
        Unit {
            soc,
            capacity_wh: 7_000.0,
            discharge_cap_w: dis,
            charge_cap_w: ch,
        }
    }

    fn check(total: f64, floor: f64, units: &[Unit], expected: &[f64]) {
        let mut out = [f64::NAN; MAX_UNITS];
        share(total, floor, units, &mut out);
        for (i, want) in expected.iter().enumerate() {
            assert!(
                (out[i] - want).abs() < 1e-6,
                "total {total}: unit {i} got {}, expected {want}; all {:?}",
                out[i],
                &out[..units.len()]
            );
        }
    }

    #[test]
    fn single_unit_is_clamped() {
        check(3000.0, 0.0, &[u(0.5, 4500.0, 3750.0)], &[3000.0]);
        check(6000.0, 0.0, &[u(0.5, 4500.0, 3750.0)], &[4500.0]);
        check(-6000.0, 0.0, &[u(0.5, 4500.0, 3750.0)], &[-3750.0]);
        check(0.0, 0.0, &[u(0.5, 4500.0, 3750.0)], &[0.0]);
    }

    #[test]
    fn discharge_follows_energy_above_the_floor() {
        // 0.8 and 0.4 above a 0.2 floor: 0.6 : 0.2 = 3 : 1.
        check(
            2000.0,
            0.2,
            &[u(0.8, 4500.0, 3750.0), u(0.4, 4500.0, 3750.0)],
            &[1500.0, 500.0],
        );
        // A unit at the floor gives nothing.
        check(
            2000.0,
            0.2,
            &[u(0.8, 4500.0, 3750.0), u(0.2, 0.0, 3750.0)],
            &[2000.0, 0.0],
        );
    }

    #[test]
    fn charge_follows_room_below_full() {
        // Room 0.2 and 0.6: 1 : 3.
        check(
            -2000.0,
            0.0,
            &[u(0.8, 4500.0, 3750.0), u(0.4, 4500.0, 3750.0)],
            &[-500.0, -1500.0],
        );
    }

    #[test]
    fn capped_units_pass_the_rest_on() {
        // Unit 0 would take 6000 * 0.6 / 0.8 = 4500 > its 1000 W derating: it gets 1000, unit 1 the rest.
        check(
            6000.0,
            0.2,
            &[u(0.8, 1000.0, 3750.0), u(0.4, 4500.0, 3750.0)],
            &[1000.0, 4500.0],
        );
        // A unit in fault (caps 0) is skipped.
        check(
            3000.0,
            0.0,
            &[
                u(0.9, 0.0, 0.0),
                u(0.5, 4500.0, 3750.0),
                u(0.5, 4500.0, 3750.0),
            ],
            &[0.0, 1500.0, 1500.0],
        );
        // Asking beyond everyone's caps gives every cap.
        check(
            -20_000.0,
            0.0,
            &[u(0.1, 4500.0, 3750.0), u(0.5, 4500.0, 2000.0)],
            &[-3750.0, -2000.0],
        );
    }

    #[test]
    fn full_units_still_accepting_share_by_caps() {
        check(
            -1000.0,
            0.0,
            &[u(1.0, 4500.0, 300.0), u(1.0, 4500.0, 100.0)],
            &[-300.0, -100.0],
        );
        check(
            -200.0,
            0.0,
            &[u(1.0, 4500.0, 300.0), u(1.0, 4500.0, 100.0)],
            &[-150.0, -50.0],
        );
    }
}
