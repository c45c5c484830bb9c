//! Grid ancillary services (manual 7.1 "Services": grid ancillary services): the settings of each
//! response and the pure functions that evaluate them.
//!
//! Defaults follow AS/NZS 4777.2:2020 "Australia A" (the standard the datasheet lists under
//! compliance, manual 7.1) where it has a number; where it does not, the source is named.
//! Reactive power sign: positive = the battery supplies vars (over-excited, raises the voltage).

use crate::settings::SettingsError;
use serde::{Deserialize, Serialize};

/// A piecewise-linear curve through `(x, y)` points with strictly increasing `x`, flat beyond its ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Curve(pub Vec<(f64, f64)>);

impl Curve {
    /// The curve at `x`. No allocation; a handful of points, so a linear scan is fastest.
    #[inline]
    pub fn eval(&self, x: f64) -> f64 {
        let pts = &self.0;
        let Some(&(x0, y0)) = pts.first() else {
            return 0.0;
        };
        if x <= x0 {
            return y0;
        }
        for w in pts.windows(2) {
            let ((xa, ya), (xb, yb)) = (w[0], w[1]);
            if x <= xb {
                return ya + (yb - ya) * (x - xa) / (xb - xa);
            }
        }
        pts[pts.len() - 1].1
    }

    fn validate(&self, field: &str, y_range: (f64, f64)) -> Result<(), SettingsError> {
        if self.0.is_empty() {
            return Err(SettingsError::new(
                field.into(),
                "needs at least one point".into(),
            ));
        }
        for (i, &(x, y)) in self.0.iter().enumerate() {
            if !x.is_finite() || !y.is_finite() || y < y_range.0 || y > y_range.1 {
                return Err(SettingsError::new(
                    format!("{field}[{i}]"),
                    format!(
                        "({x}, {y}): expected finite values with y in {}..={}",
                        y_range.0, y_range.1
                    ),
                ));
            }
            if i > 0 && x <= self.0[i - 1].0 {
                return Err(SettingsError::new(
                    format!("{field}[{i}]"),
                    format!(
                        "x = {x} does not increase (previous point x = {})",
                        self.0[i - 1].0
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Frequency-watt response: below `under_start_hz` the site moves linearly from its planned power
/// towards full discharge, reached at `under_full_hz`; above `over_start_hz` towards full charge,
/// reached at `over_full_hz`. Defaults: AS/NZS 4777.2:2020 Australia A, f_LLCO 49.85 Hz / f_Pmax
/// 48 Hz and f_ULCO 50.15 Hz / f_Pmin 52 Hz.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrequencyWatt {
    pub under_full_hz: f64,
    pub under_start_hz: f64,
    pub over_start_hz: f64,
    pub over_full_hz: f64,
}

impl Default for FrequencyWatt {
    fn default() -> Self {
        Self {
            under_full_hz: 48.0,
            under_start_hz: 49.85,
            over_start_hz: 50.15,
            over_full_hz: 52.0,
        }
    }
}

impl FrequencyWatt {
    /// How far to move from the planned power towards the limit: +1 full discharge, -1 full charge.
    #[inline]
    pub fn response(&self, f_hz: f64) -> f64 {
        if f_hz < self.under_start_hz {
            ((self.under_start_hz - f_hz) / (self.under_start_hz - self.under_full_hz)).min(1.0)
        } else if f_hz > self.over_start_hz {
            -((f_hz - self.over_start_hz) / (self.over_full_hz - self.over_start_hz)).min(1.0)
        } else {
            0.0
        }
    }
}

/// Symmetric proportional frequency droop, added to the planned power: outside a dead band of
/// `deadband_hz` around nominal the site changes its power by its full rating per
/// `full_deviation_hz`. Defaults: the ENTSO-E frequency containment reserve, full activation at
/// ±200 mHz with at most ±10 mHz insensitivity (Commission Regulation (EU) 2017/1485, Annex V).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Droop {
    pub deadband_hz: f64,
    pub full_deviation_hz: f64,
}

impl Default for Droop {
    fn default() -> Self {
        Self {
            deadband_hz: 0.01,
            full_deviation_hz: 0.2,
        }
    }
}

impl Droop {
    /// Fraction of the site's rating to add: positive (discharge) when the frequency is low.
    #[inline]
    pub fn response(&self, f_hz: f64, nominal_hz: f64) -> f64 {
        let df = f_hz - nominal_hz;
        let beyond = (df.abs() - self.deadband_hz).max(0.0).copysign(df);
        (-beyond / self.full_deviation_hz).clamp(-1.0, 1.0)
    }
}

/// Volt-watt response: the largest discharge (as a fraction of rated output) allowed at the highest
/// phase voltage, and the largest charge (fraction of rated input) at the lowest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoltWatt {
    /// Default AS/NZS 4777.2:2020 volt-watt set-points, Australia A region: 253 V 100 %, 260 V 20 %.
    pub discharge: Curve,
    /// Our choice, the mirror image around the low end of the normal band: 207 V 20 %, 215 V 100 %.
    /// Charging at full power on a sagging feeder would deepen the sag.
    pub charge: Curve,
}

impl Default for VoltWatt {
    fn default() -> Self {
        Self {
            discharge: Curve(vec![(253.0, 1.0), (260.0, 0.2)]),
            charge: Curve(vec![(207.0, 0.2), (215.0, 1.0)]),
        }
    }
}

/// The grid-services mode's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GridServicesSettings {
    pub frequency_watt: Option<FrequencyWatt>,
    /// Off by default: a droop service is contracted with an operator, not switched on by a site.
    pub droop: Option<Droop>,
    /// Reactive power as a fraction of rated apparent power against the average phase voltage.
    /// Default AS/NZS 4777.2:2020 volt-var set-points, Australia A region: 207 V +44 %, 220 V 0, 240 V 0, 258 V -60 %.
    pub volt_var: Option<Curve>,
    pub volt_watt: Option<VoltWatt>,
    /// Grid-import peak limit, W: the batteries discharge to keep the import at or below it.
    pub import_peak_limit_w: Option<f64>,
}

impl Default for GridServicesSettings {
    fn default() -> Self {
        Self {
            frequency_watt: Some(FrequencyWatt::default()),
            droop: None,
            volt_var: Some(Curve(vec![
                (207.0, 0.44),
                (220.0, 0.0),
                (240.0, 0.0),
                (258.0, -0.60),
            ])),
            volt_watt: Some(VoltWatt::default()),
            import_peak_limit_w: None,
        }
    }
}

/// Largest reactive power as a fraction of rated apparent power: PF 0.8 at rated power
/// (manual 7.1, "Power factor (On grid) 0.8 leading...0.8 lagging") gives sin(acos 0.8) = 0.6.
pub const MAX_REACTIVE_FRACTION: f64 = 0.6;

impl GridServicesSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if let Some(fw) = &self.frequency_watt {
            let pts = [
                fw.under_full_hz,
                fw.under_start_hz,
                fw.over_start_hz,
                fw.over_full_hz,
            ];
            let ordered = pts.iter().all(|v| v.is_finite()) && pts.windows(2).all(|w| w[0] < w[1]);
            if !ordered {
                return Err(SettingsError::new(
                    "grid_services.frequency_watt".into(),
                    format!(
                        "expected under_full_hz < under_start_hz < over_start_hz < over_full_hz, got {} < {} < {} < {}",
                        pts[0], pts[1], pts[2], pts[3]
                    ),
                ));
            }
        }
        if let Some(d) = &self.droop {
            let ok = d.deadband_hz.is_finite()
                && d.deadband_hz >= 0.0
                && d.full_deviation_hz.is_finite()
                && d.full_deviation_hz > 0.0;
            if !ok {
                return Err(SettingsError::new(
                    "grid_services.droop".into(),
                    format!(
                        "deadband_hz {} must be >= 0 and full_deviation_hz {} > 0",
                        d.deadband_hz, d.full_deviation_hz
                    ),
                ));
            }
        }
        if let Some(vv) = &self.volt_var {
            vv.validate(
                "grid_services.volt_var",
                (-MAX_REACTIVE_FRACTION, MAX_REACTIVE_FRACTION),
            )?;
        }
        if let Some(vw) = &self.volt_watt {
            vw.discharge
                .validate("grid_services.volt_watt.discharge", (0.0, 1.0))?;
            vw.charge
                .validate("grid_services.volt_watt.charge", (0.0, 1.0))?;
        }
        if let Some(v) = self.import_peak_limit_w {
            if !(v.is_finite() && v > 0.0) {
                return Err(SettingsError::new(
                    "grid_services.import_peak_limit_w".into(),
                    format!("{v} W: expected a finite power above 0 W"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(f: impl Fn(f64) -> f64, cases: &[(f64, f64)]) {
        for &(x, want) in cases {
            let got = f(x);
            assert!((got - want).abs() < 1e-9, "f({x}) = {got}, expected {want}");
        }
    }

    #[test]
    fn curve_interpolates_and_holds_its_ends() {
        let vv = GridServicesSettings::default().volt_var.unwrap();
        check(
            |v| vv.eval(v),
            &[
                (180.0, 0.44),
                (207.0, 0.44),
                (213.5, 0.22),
                (230.0, 0.0),
                (249.0, -0.30),
                (258.0, -0.60),
                (270.0, -0.60),
            ],
        );
        check(|v| Curve(vec![]).eval(v), &[(230.0, 0.0)]);
    }

    #[test]
    fn frequency_watt_moves_towards_the_limits() {
        let fw = FrequencyWatt::default();
        check(
            |f| fw.response(f),
            &[
                (50.0, 0.0),
                (49.85, 0.0),
                (50.15, 0.0),
                (48.925, 0.5),
                (48.0, 1.0),
                (47.0, 1.0),
                (51.075, -0.5),
                (52.0, -1.0),
                (53.0, -1.0),
            ],
        );
    }

    #[test]
    fn droop_is_symmetric_with_a_dead_band() {
        let d = Droop::default();
        check(
            |f| d.response(f, 50.0),
            &[
                (50.0, 0.0),
                (50.01, 0.0),
                (49.99, 0.0),
                (49.91, 0.4),
                (50.09, -0.4),
                (49.5, 1.0),
                (50.5, -1.0),
            ],
        );
    }

    fn check_validate(g: GridServicesSettings, want: Result<(), &str>) {
        match (g.validate(), want) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(w)) => assert!(e.to_string().starts_with(w), "{e} vs {w}"),
            (got, w) => panic!("got {got:?}, expected {w:?}"),
        }
    }

    type Edit = fn(&mut GridServicesSettings);

    #[test]
    fn bad_curves_are_refused_with_their_place() {
        let cases: [(Edit, Result<(), &str>); 7] = [
            (|_| {}, Ok(())),
            (
                |g| g.volt_var = Some(Curve(vec![(207.0, 0.44), (200.0, 0.0)])),
                Err("grid_services.volt_var[1]: x = 200 does not increase"),
            ),
            (
                |g| g.volt_var = Some(Curve(vec![(207.0, 0.9)])),
                Err("grid_services.volt_var[0]: (207, 0.9)"),
            ),
            (
                |g| {
                    g.frequency_watt = Some(FrequencyWatt {
                        under_start_hz: 47.0,
                        ..Default::default()
                    })
                },
                Err("grid_services.frequency_watt: expected"),
            ),
            (
                |g| {
                    g.droop = Some(Droop {
                        deadband_hz: 0.01,
                        full_deviation_hz: 0.0,
                    })
                },
                Err("grid_services.droop"),
            ),
            (
                |g| g.import_peak_limit_w = Some(-5.0),
                Err("grid_services.import_peak_limit_w: -5 W"),
            ),
            (
                |g| g.volt_watt.as_mut().unwrap().charge = Curve(vec![]),
                Err("grid_services.volt_watt.charge: needs at least one point"),
            ),
        ];
        for (edit, want) in cases {
            let mut g = GridServicesSettings::default();
            edit(&mut g);
            check_validate(g, want);
        }
    }
}
