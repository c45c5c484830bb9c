//! Lumped thermal network of the unit: eight cell nodes in a row, one enclosure node (air, structure,
//! inverter heat sink), and the ambient.
//!
//! ```text
//!  cell0 -g_cc- cell1 -g_cc- ... -g_cc- cell7        cells: I^2R, leak, heater pads, runaway
//!    |            |                       |
//!  g_ce[0]     g_ce[1]      ...        g_ce[7]        natural + fan-forced, by position
//!    +------------+------ enclosure -------+         enclosure: inverter, standby, fan, bleed
//!                             |
//!                          g_ea (natural + fan)
//!                             |
//!                          ambient
//! ```
//!
//! "Intelligent air cooling" (manual 7.1) is a fan that blows ambient air along the cell row from the
//! cell-0 end and through the inverter heat sink: it raises every conductance, most at the inlet end, so
//! cells differ by position, and the differences grow when the fan fails. Integrated explicitly; the
//! plant never calls it with more than [`MAX_STEP_S`], far below the fastest time constant (~500 s).

use crate::cell::CELL;
use melv_core::spec::{CELLS_IN_SERIES, LIFTING_WEIGHT_KG};

/// Largest explicit integration step, s.
pub const MAX_STEP_S: f64 = 10.0;

/// Heat capacity of one cell node, J/K (EVE LF280K 5.49 kg x 1050 J/(kg K), see `cell::CELL`).
pub const CELL_HEAT_CAPACITY_J_K: f64 = CELL.mass_kg * CELL.cp_j_kg_k;
/// Heat capacity of the enclosure node, J/K: the unit's 73.5 kg (manual 7.1) less eight 5.49 kg cells
/// is about 29.6 kg of steel, aluminium, copper and plastics; 700 J/(kg K) is the mass-weighted mean of
/// aluminium (900), steel (490) and plastics (1,500) in roughly 4:4:1.
pub const ENCLOSURE_HEAT_CAPACITY_J_K: f64 =
    (LIFTING_WEIGHT_KG - CELLS_IN_SERIES as f64 * CELL.mass_kg) * 700.0;

/// Conductance between neighbouring cells, W/K: 0.2 x 0.17 m faces (LF280K) through a 1 mm insulating
/// sheet of about 0.05 W/(m K) conductance in series with contact resistance: about 2 W/K.
pub const G_CELL_CELL_W_K: f64 = 2.0;
/// Natural-convection conductance cell-to-enclosure at full exposure, W/K (about 0.1 m2 of free cell
/// surface at h = 4 W/(m2 K)).
pub const G_CELL_ENC_NATURAL_W_K: f64 = 0.4;
/// Extra conductance cell-to-enclosure with the fan at full duty, W/K (forced air at 2-3 m/s along the
/// row, h about 15 W/(m2 K)).
pub const G_CELL_ENC_FAN_W_K: f64 = 1.4;
/// Position factors of the natural path: the end cells have a large face to the walls and free air,
/// the middle cells only their narrow sides, so without airflow the middle of the row runs hottest.
pub const NATURAL_POSITION: [f64; CELLS_IN_SERIES] = [1.8, 0.9, 0.6, 0.4, 0.4, 0.6, 0.9, 1.8];
/// Position factors of the fan path: forced air reaches every cell's sides and warms along the row
/// from the inlet at cell 0, a milder gradient.
pub const FAN_POSITION: [f64; CELLS_IN_SERIES] = [1.15, 1.1, 1.05, 1.0, 0.95, 0.95, 0.9, 0.9];
/// Enclosure-to-ambient conductance without fan, W/K: about 1.6 m2 of housing (830 x 480 x 195 mm,
/// manual 7.1) at h = 4 W/(m2 K) natural convection.
pub const G_ENC_AMB_NATURAL_W_K: f64 = 6.5;
/// Extra enclosure-to-ambient conductance at full fan duty, W/K (forced air through the heat sink).
pub const G_ENC_AMB_FAN_W_K: f64 = 16.0;

/// Temperatures of the thermal nodes, degC, and the conductances for the last airflow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thermal {
    pub cell_c: [f64; CELLS_IN_SERIES],
    pub enclosure_c: f64,
    airflow: f64,
    g_ce: [f64; CELLS_IN_SERIES],
    g_ea: f64,
}

impl Thermal {
    /// Every node at `temp_c`.
    pub fn uniform(temp_c: f64) -> Self {
        let mut th = Thermal {
            cell_c: [temp_c; CELLS_IN_SERIES],
            enclosure_c: temp_c,
            airflow: f64::NAN,
            g_ce: [0.0; CELLS_IN_SERIES],
            g_ea: 0.0,
        };
        th.set_airflow(0.0);
        th
    }

    #[allow(clippy::needless_range_loop)]
    fn set_airflow(&mut self, a: f64) {
        self.airflow = a;
        for i in 0..CELLS_IN_SERIES {
            self.g_ce[i] = G_CELL_ENC_NATURAL_W_K * NATURAL_POSITION[i]
                + G_CELL_ENC_FAN_W_K * FAN_POSITION[i] * a;
        }
        self.g_ea = G_ENC_AMB_NATURAL_W_K + G_ENC_AMB_FAN_W_K * a;
    }

    // Index loops over parallel per-cell arrays: plain to read, and they vectorise.
    /// Advances by `h_s` (<= MAX_STEP_S) with heat `cell_heat_w` into each cell, `enclosure_heat_w` into
    /// the enclosure, and fan airflow `airflow` (0..=1, 0 when stopped or broken).
    #[allow(clippy::needless_range_loop)]
    pub fn step(
        &mut self,
        h_s: f64,
        ambient_c: f64,
        cell_heat_w: &[f64; CELLS_IN_SERIES],
        enclosure_heat_w: f64,
        airflow: f64,
    ) {
        let a = airflow.clamp(0.0, 1.0);
        if a != self.airflow {
            self.set_airflow(a);
        }
        let t = self.cell_c;
        let te = self.enclosure_c;
        // Heat from each cell to the enclosure, and along the row between neighbours
        // (link[j] flows from cell j into cell j - 1; the ends have none).
        let mut q_enc = [0.0; CELLS_IN_SERIES];
        for i in 0..CELLS_IN_SERIES {
            q_enc[i] = self.g_ce[i] * (t[i] - te);
        }
        let mut link = [0.0; CELLS_IN_SERIES + 1];
        for i in 0..CELLS_IN_SERIES - 1 {
            link[i + 1] = G_CELL_CELL_W_K * (t[i + 1] - t[i]);
        }
        let k_cell = h_s * (1.0 / CELL_HEAT_CAPACITY_J_K);
        for i in 0..CELLS_IN_SERIES {
            // Into cell i: from its right neighbour link[i + 1], out to its left neighbour link[i].
            let q = cell_heat_w[i] - q_enc[i] + link[i + 1] - link[i];
            self.cell_c[i] = t[i] + k_cell * q;
        }
        let to_enclosure = ((q_enc[0] + q_enc[1]) + (q_enc[2] + q_enc[3]))
            + ((q_enc[4] + q_enc[5]) + (q_enc[6] + q_enc[7]));
        let q_e = enclosure_heat_w + to_enclosure - self.g_ea * (te - ambient_c);
        self.enclosure_c = te + h_s * (1.0 / ENCLOSURE_HEAT_CAPACITY_J_K) * q_e;
    }

    /// Mean cell temperature, degC.
    pub fn mean_cell_c(&self) -> f64 {
        self.cell_c.iter().sum::<f64>() / CELLS_IN_SERIES as f64
    }

    /// Hottest minus coldest cell, K.
    pub fn cell_spread_k(&self) -> f64 {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &c in &self.cell_c {
            lo = lo.min(c);
            hi = hi.max(c);
        }
        hi - lo
    }
}

/// Nodes of the network: the eight cells and the enclosure.
const NODES: usize = CELLS_IN_SERIES + 1;

/// The thermal network's modes at one airflow, for integrating a step of any length in closed form.
///
/// The network is linear for constant heat inputs: `C dx/dt = -G x + b`, with the heat capacities
/// `C` (diagonal), the conductance matrix `G` (symmetric, positive definite: a weighted Laplacian
/// plus the enclosure's path to ambient) and `b` the heat into each node (the enclosure's includes
/// `g_ea T_ambient`). With `S = C^-1/2 G C^-1/2 = Q diag(lambda) Q^T` (symmetric: Jacobi rotations),
/// the exact solution over `h` is, in mode coordinates `y = Q^T C^1/2 x`,
/// `y(h) = y_ss + exp(-lambda h) (y(0) - y_ss)` with `y_ss = lambda^-1 Q^T C^-1/2 b`. One step costs
/// three 9x9 products and nine `exp`, whatever its length; the decomposition is made once per
/// airflow (the fan's duty), which changes rarely.
#[derive(Debug, Clone, PartialEq)]
pub struct ThermalModes {
    airflow: f64,
    /// Eigenvectors of S as columns.
    q: [[f64; NODES]; NODES],
    /// Eigenvalues of S, 1/s (all positive).
    lambda: [f64; NODES],
    g_ea: f64,
}

/// Square roots of the nodes' heat capacities, sqrt(J/K).
fn sqrt_c(k: usize) -> f64 {
    if k < CELLS_IN_SERIES {
        CELL_HEAT_CAPACITY_J_K.sqrt()
    } else {
        ENCLOSURE_HEAT_CAPACITY_J_K.sqrt()
    }
}

impl ThermalModes {
    /// The modes at `airflow` (0..=1; anything else is clamped, NaN is no airflow).
    pub fn new(airflow: f64) -> Self {
        let a = if airflow.is_nan() {
            0.0
        } else {
            airflow.clamp(0.0, 1.0)
        };
        let mut th = Thermal::uniform(0.0);
        th.set_airflow(a);
        // S = C^-1/2 G C^-1/2.
        let mut s = [[0.0; NODES]; NODES];
        let e = CELLS_IN_SERIES;
        for i in 0..CELLS_IN_SERIES {
            let links = if i == 0 || i == CELLS_IN_SERIES - 1 {
                1.0
            } else {
                2.0
            };
            s[i][i] = th.g_ce[i] + links * G_CELL_CELL_W_K;
            if i + 1 < CELLS_IN_SERIES {
                s[i][i + 1] = -G_CELL_CELL_W_K;
                s[i + 1][i] = -G_CELL_CELL_W_K;
            }
            s[i][e] = -th.g_ce[i];
            s[e][i] = -th.g_ce[i];
        }
        s[e][e] = th.g_ce.iter().sum::<f64>() + th.g_ea;
        for (i, row) in s.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v /= sqrt_c(i) * sqrt_c(j);
            }
        }
        let (lambda, q) = jacobi_eigen(s);
        ThermalModes {
            airflow: a,
            q,
            lambda,
            g_ea: th.g_ea,
        }
    }

    /// The airflow these modes are for.
    pub fn airflow(&self) -> f64 {
        self.airflow
    }

    /// Advances `th` by `h_s` (any length) exactly, under constant heat `cell_heat_w` into each
    /// cell, `enclosure_heat_w` into the enclosure and the ambient at `ambient_c`.
    #[allow(clippy::needless_range_loop)]
    pub fn advance(
        &self,
        th: &mut Thermal,
        h_s: f64,
        ambient_c: f64,
        cell_heat_w: &[f64; CELLS_IN_SERIES],
        enclosure_heat_w: f64,
    ) {
        let e = CELLS_IN_SERIES;
        // x scaled by C^1/2, b scaled by C^-1/2.
        let mut xs = [0.0; NODES];
        let mut bs = [0.0; NODES];
        for k in 0..NODES {
            let (x, b) = if k < e {
                (th.cell_c[k], cell_heat_w[k])
            } else {
                (th.enclosure_c, enclosure_heat_w + self.g_ea * ambient_c)
            };
            xs[k] = x * sqrt_c(k);
            bs[k] = b / sqrt_c(k);
        }
        let mut y = [0.0; NODES];
        for m in 0..NODES {
            let (mut y0, mut yb) = (0.0, 0.0);
            for k in 0..NODES {
                y0 += self.q[k][m] * xs[k];
                yb += self.q[k][m] * bs[k];
            }
            let y_ss = yb / self.lambda[m];
            y[m] = y_ss + (-self.lambda[m] * h_s).exp() * (y0 - y_ss);
        }
        for k in 0..NODES {
            let mut x = 0.0;
            for m in 0..NODES {
                x += self.q[k][m] * y[m];
            }
            let x = x / sqrt_c(k);
            if k < e {
                th.cell_c[k] = x;
            } else {
                th.enclosure_c = x;
            }
        }
    }
}

/// Eigenvalues and eigenvectors (columns) of a symmetric matrix by cyclic Jacobi rotations.
#[allow(clippy::needless_range_loop)]
fn jacobi_eigen(mut a: [[f64; NODES]; NODES]) -> ([f64; NODES], [[f64; NODES]; NODES]) {
    let mut v = [[0.0; NODES]; NODES];
    for (i, row) in v.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    let scale: f64 = a.iter().flatten().map(|x| x * x).sum::<f64>();
    // Bounded: Jacobi converges quadratically; 50 sweeps is far beyond what 9x9 needs (6-8).
    for _ in 0..50 {
        let off: f64 = (0..NODES)
            .flat_map(|i| (0..NODES).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        // Converged (or NaN input: nothing to rotate towards).
        if off <= 1e-30 * scale || off.is_nan() {
            break;
        }
        for p in 0..NODES - 1 {
            for q in p + 1..NODES {
                if a[p][q] == 0.0 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..NODES {
                    let (akp, akq) = (a[k][p], a[k][q]);
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..NODES {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for k in 0..NODES {
                    let (vkp, vkq) = (v[k][p], v[k][q]);
                    v[k][p] = c * vkp - s * vkq;
                    v[k][q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut lambda = [0.0; NODES];
    for i in 0..NODES {
        lambda[i] = a[i][i];
    }
    (lambda, v)
}

/// Exothermic decomposition heat of a cell in thermal runaway, W, at cell temperature `temp_c`:
/// onset near 90 degC (SEI decomposition), growing e-fold every 12 K, capped at 8 kW. Accelerating-rate
/// calorimetry of large LFP cells shows self-heating from 80-100 degC and peak rates of several K/s
/// only in the last seconds; the cap (about 1.4 K/s on one cell's 5.8 kJ/K) is a middle value that
/// also keeps the explicit integration stable.
pub fn runaway_decomposition_w(temp_c: f64) -> f64 {
    if temp_c < 60.0 {
        // Below SEI decomposition the fault acts through its internal short only.
        0.0
    } else {
        (30.0 * ((temp_c - 90.0) / 12.0).exp()).min(8_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `hours` with constant heat and airflow at `ambient`, returns the final state.
    fn run(hours: f64, ambient: f64, cell_w: f64, enc_w: f64, airflow: f64) -> Thermal {
        let mut th = Thermal::uniform(ambient);
        let n = (hours * 3600.0 / MAX_STEP_S) as usize;
        for _ in 0..n {
            th.step(
                MAX_STEP_S,
                ambient,
                &[cell_w; CELLS_IN_SERIES],
                enc_w,
                airflow,
            );
        }
        th
    }

    fn check(th: &Thermal, mean_c: (f64, f64), spread_k: (f64, f64)) {
        let m = th.mean_cell_c();
        let s = th.cell_spread_k();
        assert!(
            (mean_c.0..=mean_c.1).contains(&m) && (spread_k.0..=spread_k.1).contains(&s),
            "mean {m} spread {s}: {th:?}"
        );
    }

    #[test]
    fn steady_states() {
        // No heat: everything stays at ambient.
        check(
            &run(2.0, 25.0, 0.0, 0.0, 1.0),
            (24.999, 25.001),
            (0.0, 1e-9),
        );
        // Full discharge power: ~8 W per cell and ~160 W inverter; fan on keeps cells within ~15 K.
        let fan = run(24.0, 30.0, 8.0, 160.0, 1.0);
        check(&fan, (38.0, 48.0), (0.0, 3.0));
        // Same with a broken fan: much hotter and a larger spread between cells.
        let nofan = run(24.0, 30.0, 8.0, 160.0, 0.0);
        assert!(
            nofan.mean_cell_c() > fan.mean_cell_c() + 10.0,
            "{nofan:?} vs {fan:?}"
        );
        assert!(
            nofan.cell_spread_k() > fan.cell_spread_k(),
            "{nofan:?} vs {fan:?}"
        );
    }

    #[test]
    fn heater_pads_warm_cold_cells() {
        // 200 W of pads over 8 cells from -10 degC: above 0 degC within about 2 hours.
        let th = run(2.0, -10.0, 25.0, 0.0, 0.0);
        assert!(th.mean_cell_c() > 0.0, "{th:?}");
    }

    /// The closed form agrees with the explicit integration at 1 s parts (whose own error is
    /// first order in the step, about 1e-3 K here) over an hour and a day, with and without the fan,
    /// and is exact at steady state.
    #[test]
    fn modes_match_fine_explicit_steps() {
        for airflow in [0.0, 0.35, 1.0] {
            let modes = ThermalModes::new(airflow);
            let heat = [8.0, 3.0, 0.0, 1.0, 5.0, 2.0, 0.5, 12.0];
            for hours in [1.0, 24.0] {
                let mut fine = Thermal::uniform(20.0);
                fine.cell_c[3] = 35.0;
                let mut exact = fine;
                for _ in 0..(hours * 3600.0) as usize {
                    fine.step(1.0, 28.0, &heat, 60.0, airflow);
                }
                modes.advance(&mut exact, hours * 3600.0, 28.0, &heat, 60.0);
                for i in 0..CELLS_IN_SERIES {
                    let d = (fine.cell_c[i] - exact.cell_c[i]).abs();
                    assert!(d < 2e-3, "{airflow} {hours} h cell {i}: {d}");
                }
                let d = (fine.enclosure_c - exact.enclosure_c).abs();
                assert!(d < 2e-3, "{airflow} {hours} h enclosure: {d}");
            }
        }
        // No heat, everything at ambient: stays there to rounding.
        let mut th = Thermal::uniform(25.0);
        ThermalModes::new(0.5).advance(&mut th, 1e6, 25.0, &[0.0; CELLS_IN_SERIES], 0.0);
        assert!(th.cell_c.iter().all(|c| (c - 25.0).abs() < 1e-9), "{th:?}");
    }

    #[test]
    fn decomposition_heat() {
        assert_eq!(runaway_decomposition_w(25.0), 0.0);
        assert!(runaway_decomposition_w(90.0) > 20.0);
        assert_eq!(runaway_decomposition_w(400.0), 8_000.0);
    }
}
