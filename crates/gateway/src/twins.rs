//! The in-process battery twins' state across gateway restarts (issue 15, Home Assistant section:
//! "After a gateway restart, SOC jumps back to the site file's initial SOC").
//!
//! With every telemetry record the runtime stores, in the same queue transaction, one [`TwinState`]
//! per unit: the true state of charge, the cell temperature and the capacity already lost. At start
//! the twins are rebuilt from it with the unit's own seed (so each keeps its cell spread and sensor
//! noise), and the firmware boots from the stored SOC as a real unit's does from its non-volatile
//! memory after a power cycle. What is not kept: the RC polarisation of the cells (it relaxes within
//! minutes, IEC 62660-1 rest periods are 1 h), per-cell SOC differences beyond the seed's spread (the
//! balancer evens them out over days), the units' own energy counters and a latched fault (a
//! restart of the gateway is not a restart of the batteries; the site's energy counters are kept by
//! the runtime). A stored state that does not fit the site (another number of batteries, a value out
//! of range) is refused with the reason and the site file's initial state is used.

use crate::site::SiteRuntime;
use melv_site::unit_seed;
use melv_unit::{BatteryUnit, UnitConfig};
use serde::{Deserialize, Serialize};

/// What one twin needs to resume.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TwinState {
    /// True state of charge of the pack (capacity-weighted mean of the cells), 0..=1.
    pub soc: f64,
    /// Mean cell temperature, degC.
    pub temp_c: f64,
    /// Capacity lost to ageing: 1 - the mean cell state of health, 0..0.5 (the plant's own bound).
    pub capacity_fade: f64,
}

/// The twins' state now; `None` when the site drives batteries on a real bus.
pub fn capture(site: &SiteRuntime) -> Option<Vec<TwinState>> {
    if site.is_remote() {
        return None;
    }
    let units = site.units();
    if units.is_empty() {
        return None;
    }
    Some(
        units
            .iter()
            .map(|u| {
                let t = u.truth();
                let n = t.cell_soh.len() as f64;
                TwinState {
                    soc: t.pack_soc,
                    temp_c: t.cell_temp_c.iter().sum::<f64>() / n,
                    capacity_fade: 1.0 - t.cell_soh.iter().sum::<f64>() / n,
                }
            })
            .collect(),
    )
}

/// Why a stored state was not used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TwinStateError {
    #[error("stored twin state: {0}")]
    Json(String),
    #[error("stored twin state: {stored} units, the site has {site} batteries")]
    Count { stored: usize, site: usize },
    #[error("stored twin state: unit {unit}: {field} {value}: expected {range}")]
    Range {
        unit: usize,
        field: &'static str,
        value: f64,
        range: &'static str,
    },
}

/// Parses and checks a stored state against the site's battery count.
pub fn parse(json: &str, batteries: usize) -> Result<Vec<TwinState>, TwinStateError> {
    let states: Vec<TwinState> =
        serde_json::from_str(json).map_err(|e| TwinStateError::Json(e.to_string()))?;
    if states.len() != batteries {
        return Err(TwinStateError::Count {
            stored: states.len(),
            site: batteries,
        });
    }
    for (i, s) in states.iter().enumerate() {
        // Ranges: SOC is a fraction; the plant clamps fade to 0..=0.5 (crates/model/src/plant.rs);
        // -40..=90 degC spans any cell temperature the thermal model reaches (storage -20..55 degC,
        // manual 7.1, plus self-heating).
        let checks: [(&'static str, f64, f64, f64, &'static str); 3] = [
            ("soc", s.soc, 0.0, 1.0, "0 to 1"),
            ("temp_c", s.temp_c, -40.0, 90.0, "-40 to 90 degC"),
            ("capacity_fade", s.capacity_fade, 0.0, 0.5, "0 to 0.5"),
        ];
        for (field, value, lo, hi, range) in checks {
            if !(value.is_finite() && (lo..=hi).contains(&value)) {
                return Err(TwinStateError::Range {
                    unit: i + 1,
                    field,
                    value,
                    range,
                });
            }
        }
    }
    Ok(states)
}

/// The site's twins rebuilt from `states` (one per battery, checked by [`parse`]): each unit with
/// its own seed, activated, at the stored SOC, temperature and capacity fade.
pub fn restore(site: &mut SiteRuntime, states: &[TwinState]) -> Result<(), crate::SiteError> {
    let spec = site.scenario().site_spec();
    let units = states
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let cfg = UnitConfig {
                seed: unit_seed(spec.seed, i),
                phases: spec.site.phases,
                country: spec.site.country,
                grid_charging: Some(spec.site.grid_charging),
                initial_soc: s.soc,
                initial_temp_c: s.temp_c,
                initial_capacity_fade: s.capacity_fade,
                activated: true,
                sensor_noise: spec.sensor_noise,
            };
            BatteryUnit::new(&cfg, 0.0)
        })
        .collect();
    site.replace_twins(units)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str, n: usize, expected: Result<usize, &str>) {
        match (parse(json, n), expected) {
            (Ok(v), Ok(len)) => assert_eq!(v.len(), len),
            (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{e}"),
            (got, want) => panic!("{json}: {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn stored_states_are_checked() {
        let one = r#"{"soc": 0.4, "temp_c": 21.0, "capacity_fade": 0.01}"#;
        check(&format!("[{one}]"), 1, Ok(1));
        check(&format!("[{one},{one}]"), 2, Ok(2));
        check(
            &format!("[{one}]"),
            2,
            Err("1 units, the site has 2 batteries"),
        );
        check("nonsense", 1, Err("stored twin state:"));
        check(
            r#"[{"soc": 1.2, "temp_c": 21.0, "capacity_fade": 0.0}]"#,
            1,
            Err("unit 1: soc 1.2: expected 0 to 1"),
        );
        check(
            r#"[{"soc": 0.5, "temp_c": 21.0, "capacity_fade": 0.9}]"#,
            1,
            Err("unit 1: capacity_fade 0.9: expected 0 to 0.5"),
        );
        check(
            r#"[{"soc": 0.5, "temp_c": 400.0, "capacity_fade": 0.0}]"#,
            1,
            Err("temp_c 400"),
        );
    }
}
