//! Fan, heater and balancing control: small, stateful, hysteretic rules.

use melv_core::spec::{self, CELLS_IN_SERIES};

/// Fan starts above this hottest-cell temperature, degC: the top of the manual's optimum range
/// (manual 7.1: optimum 0..30 degC).
pub const FAN_START_C: f64 = 30.0;
/// Fan at full duty from this temperature, degC (10 K above start, before the 45 degC charge derating).
pub const FAN_FULL_C: f64 = 40.0;
/// Lowest duty a running fan is driven at (a small axial fan stalls below about 20 %).
pub const FAN_MIN_DUTY: f64 = 0.2;
/// Heater on below this coldest-cell temperature, degC: warm the cells to where LFP may charge at a
/// useful rate (0.1 C at 0 degC, see `limits::charge_by_temp`).
pub const HEATER_ON_C: f64 = 5.0;
/// Heater off above this coldest-cell temperature, degC (5 K hysteresis).
pub const HEATER_OFF_C: f64 = 10.0;
/// Heater off whenever any cell is above this, degC (a hot spot near the heater pad).
pub const HEATER_HOT_SPOT_C: f64 = 25.0;
/// Heating from the battery itself (no AC) only above this SOC: below it the energy is kept for
/// the house.
pub const HEATER_MIN_SOC_ON_BATTERY: f64 = 0.30;
/// Top balancing starts when the highest cell is above this, V: in LFP's upper knee, voltage
/// differences reflect SOC differences; on the plateau they do not.
pub const BALANCE_START_V: f64 = 3.40;
/// Bleed a cell that is this far above the lowest, V (5x the AFE's 1 mV resolution, above noise).
pub const BALANCE_ON_DELTA_V: f64 = 0.015;
/// Stop bleeding it when within this of the lowest, V.
pub const BALANCE_OFF_DELTA_V: f64 = 0.005;

/// Fan duty from temperatures and power. "Intelligent air cooling" (manual 7.1): the fan cools the
/// cells when they are warm and the inverter when it works hard; below 1 kW and 30 degC it is off
/// (manual 7.1: < 35 dB).
pub fn fan_duty(max_cell_c: f64, inlet_c: f64, ac_power_w: f64) -> f64 {
    if !max_cell_c.is_finite() {
        // A broken sensor must not leave the fan off: run it at full.
        return 1.0;
    }
    let mut duty = 0.0f64;
    // Blowing air that is warmer than the cells would heat them: only for the cells' sake if the
    // inlet is cooler than the hottest cell.
    if max_cell_c > FAN_START_C && inlet_c < max_cell_c {
        duty = ((max_cell_c - FAN_START_C) / (FAN_FULL_C - FAN_START_C)).clamp(0.0, 1.0);
    }
    let p = ac_power_w.abs();
    if p > 1000.0 {
        duty = duty.max(0.6 * (p / spec::MAX_OUTPUT_VA).min(1.0));
    }
    if duty > 0.0 {
        duty.max(FAN_MIN_DUTY)
    } else {
        0.0
    }
}

/// Heater on/off with hysteresis.
pub fn heater(
    on_now: bool,
    min_cell_c: f64,
    max_cell_c: f64,
    ac_available: bool,
    soc: f64,
) -> bool {
    if !(min_cell_c.is_finite() && max_cell_c.is_finite()) || max_cell_c >= HEATER_HOT_SPOT_C {
        return false;
    }
    if !ac_available && soc < HEATER_MIN_SOC_ON_BATTERY {
        return false;
    }
    if on_now {
        min_cell_c < HEATER_OFF_C
    } else {
        min_cell_c < HEATER_ON_C
    }
}

/// Top balancing: passive bleed of the cells above the lowest, in the upper knee only, while
/// charging or resting (bleeding while discharging wastes energy the house needs).
pub fn balance_mask(
    prev: u8,
    cell_v: &[f64; CELLS_IN_SERIES],
    min_v: f64,
    max_v: f64,
    current_a: f64,
    max_temp_c: f64,
) -> u8 {
    // Bleed resistors heat the board: no balancing above 50 degC.
    if !(max_v >= BALANCE_START_V
        && current_a <= crate::estimate::REST_A
        && max_temp_c < 50.0
        && min_v.is_finite())
    {
        return 0;
    }
    let mut mask = 0u8;
    for (i, &v) in cell_v.iter().enumerate() {
        let d = v - min_v;
        let was = prev & (1 << i) != 0;
        if d >= BALANCE_ON_DELTA_V || (was && d > BALANCE_OFF_DELTA_V) {
            mask |= 1 << i;
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan() {
        let check = |cell: f64, inlet: f64, p: f64, duty: f64| {
            assert!(
                (fan_duty(cell, inlet, p) - duty).abs() < 1e-9,
                "{cell} {inlet} {p}"
            );
        };
        check(25.0, 20.0, 0.0, 0.0);
        check(35.0, 20.0, 0.0, 0.5);
        check(31.0, 20.0, 0.0, FAN_MIN_DUTY);
        check(45.0, 20.0, 0.0, 1.0);
        check(35.0, 40.0, 0.0, 0.0);
        check(25.0, 20.0, 4500.0, 0.54);
        check(f64::NAN, 20.0, 2000.0, 1.0);
    }

    #[test]
    fn heater_hysteresis() {
        let check = |on: bool, min: f64, max: f64, ac: bool, soc: f64, want: bool| {
            assert_eq!(
                heater(on, min, max, ac, soc),
                want,
                "{on} {min} {max} {ac} {soc}"
            );
        };
        check(false, 4.0, 6.0, true, 0.5, true);
        check(false, 6.0, 7.0, true, 0.5, false);
        check(true, 6.0, 7.0, true, 0.5, true);
        check(true, 10.0, 11.0, true, 0.5, false);
        check(false, -5.0, -4.0, false, 0.2, false);
        check(false, -5.0, -4.0, false, 0.5, true);
        check(true, 0.0, 26.0, true, 0.5, false);
        check(false, f64::NAN, 0.0, true, 0.5, false);
    }

    #[test]
    fn balancing_bleeds_high_cells_at_the_top_only() {
        let mut v = [3.45; CELLS_IN_SERIES];
        v[0] = 3.43;
        v[5] = 3.44;
        let check = |prev: u8, v: &[f64; 8], i: f64, want: u8| {
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(0.0, f64::max);
            assert_eq!(balance_mask(prev, v, min, max, i, 25.0), want);
        };
        check(0, &v, -50.0, 0b1101_1110);
        check(0, &v, 50.0, 0);
        check(0b0010_0000, &v, 0.0, 0b1111_1110);
        let mut low = v;
        for x in low.iter_mut() {
            *x -= 0.1;
        }
        check(0, &low, 0.0, 0);
    }
}
