//! The MS-7K-U datasheet (manual 7.1) and the other numbers the manual states, in one place.
//!
//! Every value carries the section (and table) of `MS-7K-U-installation-manual.txt` it comes from.
//! Values the manual does not give, but that the system needs a number for (cell voltage window,
//! peak-power duration...), are in [`assumed`], each with its source.

use serde::Serialize;

/// Maximum continuous output (discharge) apparent power, VA. Manual 7.1, "Max. continuous output power": 4.5 kVA.
pub const MAX_CONTINUOUS_OUTPUT_VA: f64 = 4_500.0;
/// Maximum (peak) output apparent power, VA. Manual 7.1, "Max. output power": 5 kVA.
pub const MAX_OUTPUT_VA: f64 = 5_000.0;
/// Maximum continuous input (charge) apparent power, VA. Manual 7.1, "Max. continuous input power": 3.75 kVA.
pub const MAX_CONTINUOUS_INPUT_VA: f64 = 3_750.0;
/// Nominal phase voltages, V L-N. Manual 7.1, "Nominal voltage": 1/N/PE ~ 220, 230; 3/N/PE ~ 220/380, 230/400.
pub const NOMINAL_VOLTAGES_LN_V: [f64; 2] = [220.0, 230.0];
/// Lower end of the operating (and installation) voltage range, V L-N. Manual 7.1 and 4.1.1: 176 V.
pub const GRID_VOLTAGE_MIN_V: f64 = 176.0;
/// Upper end of the operating (and installation) voltage range, V L-N. Manual 7.1 and 4.1.1: 276 V.
pub const GRID_VOLTAGE_MAX_V: f64 = 276.0;
/// Nominal frequencies, Hz. Manual 7.1, "Nominal frequency": 50/60 Hz.
pub const NOMINAL_FREQUENCIES_HZ: [f64; 2] = [50.0, 60.0];
/// Frequency range at 50 Hz nominal, Hz. Manual 7.1, "Frequency range": 45-55 @ 50 Hz.
pub const FREQUENCY_RANGE_50HZ: (f64, f64) = (45.0, 55.0);
/// Frequency range at 60 Hz nominal, Hz. Manual 7.1, "Frequency range": 55-65 @ 60 Hz.
pub const FREQUENCY_RANGE_60HZ: (f64, f64) = (55.0, 65.0);
/// Maximum input current, A, by nominal voltage. Manual 7.1, "Max. input current":
/// 17.05 @ 220 V, 5.70 @ 380 V, 16.30 @ 230 V, 5.41 @ 400 V.
pub const MAX_INPUT_CURRENT_A: [(f64, f64); 4] =
    [(220.0, 17.05), (380.0, 5.70), (230.0, 16.30), (400.0, 5.41)];
/// Maximum output current, A, by nominal voltage. Manual 7.1, "Max. output current":
/// 22.73 @ 220 V, 7.58 @ 380 V, 21.74 @ 230 V, 7.25 @ 400 V.
pub const MAX_OUTPUT_CURRENT_A: [(f64, f64); 4] =
    [(220.0, 22.73), (380.0, 7.58), (230.0, 21.74), (400.0, 7.25)];
/// Minimum power factor on grid (leading or lagging). Manual 7.1, "Power factor (On grid)": 0.8 leading...0.8 lagging.
pub const MIN_POWER_FACTOR_ON_GRID: f64 = 0.8;
/// Power factor off grid. Manual 7.1, "Power factor (Off grid)": 1.0 leading...1.0 lagging.
pub const POWER_FACTOR_OFF_GRID: f64 = 1.0;
/// AC round-trip efficiency. Manual 7.1: 90 %.
pub const AC_ROUND_TRIP_EFFICIENCY: f64 = 0.90;
/// Current total harmonic distortion bound. Manual 7.1, "THDi": < 3 %.
pub const THDI_MAX: f64 = 0.03;

/// Rated battery energy, Wh. Manual 7.1, "Rated battery energy": 7 kWh; 2.1.1: usable 7.0 kWh.
pub const RATED_ENERGY_WH: f64 = 7_000.0;
/// Nominal capacity, Ah. Manual 7.1, "Nominal battery capacity": 280 Ah.
pub const NOMINAL_CAPACITY_AH: f64 = 280.0;
/// Nominal DC voltage, V. Manual 7.1, "Nominal DC voltage": 25.6 V.
pub const NOMINAL_DC_V: f64 = 25.6;
/// Maximum DC voltage, V. Manual 7.1, "Max. DC voltage": 28.8 V.
pub const MAX_DC_V: f64 = 28.8;
/// Cells in series. Derived: manual 7.1's 25.6 V nominal / 3.2 V nominal per LFP cell = 8 (8S),
/// and 28.8 V max / 8 = 3.6 V, the usual LFP charge cut-off.
pub const CELLS_IN_SERIES: usize = 8;
/// Rated cycle life. Manual 7.1, "Number of cycles": 10,000.
pub const RATED_CYCLES: f64 = 10_000.0;
/// Depth of discharge. Manual 7.1, "Depth of Discharge": 100 %.
pub const DEPTH_OF_DISCHARGE: f64 = 1.0;
/// DC round-trip efficiency. Manual 7.1: 96 %.
pub const DC_ROUND_TRIP_EFFICIENCY: f64 = 0.96;

/// Dimensions H x W x D, mm. Manual 7.1: 830 x 480 x 195.
pub const DIMENSIONS_MM: (f64, f64, f64) = (830.0, 480.0, 195.0);
/// Lifting weight without bracket, kg. Manual 7.1: 73.5 kg.
pub const LIFTING_WEIGHT_KG: f64 = 73.5;
/// Total weight with mounting plate that a wall must bear, kg. Manual 4.3.2 note: 75 kg.
pub const WALL_LOAD_KG: f64 = 75.0;
/// Ambient operating temperature range, degC. Manual 7.1 and 1.4: -20 to 55.
pub const AMBIENT_OPERATING_C: (f64, f64) = (-20.0, 55.0);
/// Optimum operating temperature range, degC. Manual 7.1: 0 to 30.
pub const AMBIENT_OPTIMUM_C: (f64, f64) = (0.0, 30.0);
/// Storage temperature range, degC. Manual 7.1 and section 3: -20 to 55.
pub const STORAGE_C: (f64, f64) = (-20.0, 55.0);
/// Operating humidity, % RH. Manual 7.1: 4 to 100, condensing.
pub const HUMIDITY_RH: (f64, f64) = (4.0, 100.0);
/// Altitude, m. Manual 7.1: up to 3,000.
pub const MAX_ALTITUDE_M: f64 = 3_000.0;
/// Operation noise, dB. Manual 7.1: < 35.
pub const MAX_NOISE_DB: f64 = 35.0;
/// Capacitor discharge delay after power-off, s. Manual 2.1.4 nameplate: "Wait 60 seconds".
pub const DISCHARGE_DELAY_S: f64 = 60.0;

/// Batteries allowed on one site, single phase. Manual appendix 1a lists 1-3 sets.
pub const MAX_BATTERIES_SINGLE_PHASE: usize = 3;
/// Batteries allowed on one site, three phase. Manual appendix 1b lists 1-6 sets.
pub const MAX_BATTERIES_THREE_PHASE: usize = 6;

/// Values the manual does not state, with their sources.
pub mod assumed {
    /// LFP cell nominal voltage, V: the chemistry's standard figure (e.g. EVE LF280K and CATL 280 Ah
    /// datasheets: 3.2 V), consistent with manual 7.1's 25.6 V / 8.
    pub const CELL_NOMINAL_V: f64 = 3.2;
    /// LFP cell charge cut-off, V: EVE LF280K datasheet 3.65 V max; the pack's 28.8 V (manual 7.1)
    /// divided by 8 cells gives 3.60 V, which we use as the normal charge end.
    pub const CELL_CHARGE_END_V: f64 = 3.60;
    /// LFP cell discharge cut-off, V: EVE LF280K datasheet 2.5 V.
    pub const CELL_DISCHARGE_END_V: f64 = 2.50;
    /// Duration the 5 kVA peak output (manual 7.1) may be held, s. The manual gives none; 10 s is what
    /// comparable AC-coupled storage inverters state for their peak rating (e.g. Tesla Powerwall 2
    /// "peak 7 kW, 10 s"; SMA Sunny Boy Storage overload 10 s), long enough to start a motor load.
    pub const PEAK_OUTPUT_DURATION_S: f64 = 10.0;
    /// Recovery after a peak before the next one is allowed, s. Same sources: a thermal budget that
    /// refills over one minute at continuous power.
    pub const PEAK_RECOVERY_S: f64 = 60.0;
}

/// The datasheet as one serialisable value, for `--json` output and the web app.
#[derive(Debug, Clone, Serialize)]
pub struct Datasheet {
    pub model: &'static str,
    pub max_continuous_output_va: f64,
    pub max_output_va: f64,
    pub peak_output_duration_s: f64,
    pub max_continuous_input_va: f64,
    pub grid_voltage_range_v: (f64, f64),
    pub frequency_range_50hz: (f64, f64),
    pub frequency_range_60hz: (f64, f64),
    pub min_power_factor_on_grid: f64,
    pub ac_round_trip_efficiency: f64,
    pub dc_round_trip_efficiency: f64,
    pub rated_energy_wh: f64,
    pub nominal_capacity_ah: f64,
    pub nominal_dc_v: f64,
    pub max_dc_v: f64,
    pub cells_in_series: usize,
    pub rated_cycles: f64,
    pub ambient_operating_c: (f64, f64),
    pub ambient_optimum_c: (f64, f64),
}

/// The MS-7K-U datasheet (manual 7.1).
pub fn datasheet() -> Datasheet {
    Datasheet {
        model: "MS-7K-U",
        max_continuous_output_va: MAX_CONTINUOUS_OUTPUT_VA,
        max_output_va: MAX_OUTPUT_VA,
        peak_output_duration_s: assumed::PEAK_OUTPUT_DURATION_S,
        max_continuous_input_va: MAX_CONTINUOUS_INPUT_VA,
        grid_voltage_range_v: (GRID_VOLTAGE_MIN_V, GRID_VOLTAGE_MAX_V),
        frequency_range_50hz: FREQUENCY_RANGE_50HZ,
        frequency_range_60hz: FREQUENCY_RANGE_60HZ,
        min_power_factor_on_grid: MIN_POWER_FACTOR_ON_GRID,
        ac_round_trip_efficiency: AC_ROUND_TRIP_EFFICIENCY,
        dc_round_trip_efficiency: DC_ROUND_TRIP_EFFICIENCY,
        rated_energy_wh: RATED_ENERGY_WH,
        nominal_capacity_ah: NOMINAL_CAPACITY_AH,
        nominal_dc_v: NOMINAL_DC_V,
        max_dc_v: MAX_DC_V,
        cells_in_series: CELLS_IN_SERIES,
        rated_cycles: RATED_CYCLES,
        ambient_operating_c: AMBIENT_OPERATING_C,
        ambient_optimum_c: AMBIENT_OPTIMUM_C,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nominal_energy_matches_capacity_times_voltage() {
        // 280 Ah x 25.6 V = 7.168 kWh nominal; the rated 7 kWh is within 3 % of it.
        let nominal_wh = NOMINAL_CAPACITY_AH * NOMINAL_DC_V;
        assert!(
            (nominal_wh - RATED_ENERGY_WH).abs() / RATED_ENERGY_WH < 0.03,
            "{nominal_wh}"
        );
        assert!((CELLS_IN_SERIES as f64 * assumed::CELL_NOMINAL_V - NOMINAL_DC_V).abs() < 1e-9);
        assert!((CELLS_IN_SERIES as f64 * assumed::CELL_CHARGE_END_V - MAX_DC_V).abs() < 1e-9);
    }

    #[test]
    fn datasheet_currents_are_power_over_voltage() {
        // The datasheet's currents are its powers divided by voltage (single phase) or by 3 x voltage
        // L-N (three phase). The datasheet rounds the three-phase rows inconsistently (7.58 A is
        // 5000 / 660, 5.41 A is 3750 / (sqrt(3) x 400)), so the check allows 0.03 A.
        for &(v, a) in &MAX_OUTPUT_CURRENT_A {
            let v_ln = match v as u32 {
                380 => 220.0,
                400 => 230.0,
                _ => v,
            };
            let phases = if v > 300.0 { 3.0 } else { 1.0 };
            let expected = MAX_OUTPUT_VA / (v_ln * phases);
            assert!(
                (expected - a).abs() < 0.03,
                "output {v} V: {expected} vs {a}"
            );
        }
        for &(v, a) in &MAX_INPUT_CURRENT_A {
            let v_ln = match v as u32 {
                380 => 220.0,
                400 => 230.0,
                _ => v,
            };
            let phases = if v > 300.0 { 3.0 } else { 1.0 };
            let expected = MAX_CONTINUOUS_INPUT_VA / (v_ln * phases);
            assert!(
                (expected - a).abs() < 0.03,
                "input {v} V: {expected} vs {a}"
            );
        }
    }
}
