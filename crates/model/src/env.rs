//! What the plant is exposed to: the grid at its AC terminals, the ambient air, and injected faults.

use melv_core::io::PhaseRotation;
use melv_core::Phases;
use serde::{Deserialize, Serialize};

/// Nominal phase voltage used by [`GridState::nominal`], V L-N. Manual 7.1: 230 V (also 220 V).
pub const NOMINAL_PHASE_V: f64 = 230.0;
/// Nominal frequency used by [`GridState::nominal`], Hz. Manual 7.1: 50/60 Hz.
pub const NOMINAL_FREQUENCY_HZ: f64 = 50.0;

/// The grid as seen at the unit's AC terminals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GridState {
    /// A grid (or another voltage source) is connected and energised.
    pub present: bool,
    /// RMS voltage of L1, L2, L3 to neutral, V. Unwired phases read 0.
    pub phase_v: [f64; 3],
    /// Frequency, Hz.
    pub frequency_hz: f64,
    /// Phase sequence of L1, L2, L3.
    pub rotation: PhaseRotation,
    /// Phases that the combiner / terminal block actually wires to the unit.
    pub wired_phases: Phases,
    /// A short circuit on the AC side (e.g. a faulty load or cable).
    pub short_circuit: bool,
}

impl GridState {
    /// A healthy grid: 230 V on each wired phase, 50 Hz, positive rotation.
    #[inline]
    pub fn nominal(phases: Phases) -> Self {
        let mut phase_v = [0.0; 3];
        for v in phase_v.iter_mut().take(phases.count()) {
            *v = NOMINAL_PHASE_V;
        }
        GridState {
            present: true,
            phase_v,
            frequency_hz: NOMINAL_FREQUENCY_HZ,
            rotation: PhaseRotation::Positive,
            wired_phases: phases,
            short_circuit: false,
        }
    }

    /// A grid outage: no voltage, no frequency, wiring unchanged.
    pub fn outage(phases: Phases) -> Self {
        GridState {
            present: false,
            phase_v: [0.0; 3],
            frequency_hz: 0.0,
            rotation: PhaseRotation::Positive,
            wired_phases: phases,
            short_circuit: false,
        }
    }
}

/// Everything outside the unit that its physics depends on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// Ambient air temperature, degC (manual 7.1: operating range -20..55, optimum 0..30).
    pub ambient_c: f64,
    /// The grid at the AC terminals.
    pub grid: GridState,
}

impl Environment {
    /// 25 degC and a nominal grid.
    pub fn nominal(phases: Phases) -> Self {
        Environment {
            ambient_c: 25.0,
            grid: GridState::nominal(phases),
        }
    }
}

/// Healthy insulation resistance reading, kOhm. Manual 7.1 lists an insulation resistance monitor but
/// no value; a dry, healthy installation reads in the megaohms (IEC 62109-1 asks for more than
/// 1 kOhm/V, i.e. about 400 kOhm at 400 V, as the trip level), so 10 MOhm is a healthy reading.
pub const HEALTHY_INSULATION_KOHM: f64 = 10_000.0;

/// Faults injected into the plant (by a test or a simulation scenario). The firmware must detect each
/// from measurements alone. Fields missing from a serialised `Faults` take their healthy default, so
/// older JSON still reads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// The cooling fan does not turn (no airflow, tachometer 0, no fan power).
    pub fan_failed: bool,
    /// The heater does not heat (no heat, heater current 0).
    pub heater_failed: bool,
    /// An internal micro-short: leak resistance in ohm across one cell (index 0..8).
    pub micro_short: Option<(usize, f64)>,
    /// Thermal runaway of one cell (index 0..8): self-heating, internal short, voltage collapse.
    pub thermal_runaway: Option<usize>,
    /// The power stage's own protection has latched (gate-driver desaturation, welded relay...):
    /// the inverter cannot run and reports the latch.
    pub power_stage_fault: bool,
    /// DC component injected into the AC output current, A (reported by the sensor; code 7).
    pub dc_current_injection_a: f64,
    /// DC component on the AC output voltage, V (reported by the sensor; code 18).
    pub dc_voltage_injection_v: f64,
    /// Insulation resistance of the installation, kOhm.
    pub insulation_kohm: f64,
    /// Cell voltage sense wire of this cell (index 0..8) is open: the front end reads 0 V for it.
    pub open_sense_wire: Option<usize>,
    /// Sense drift of the front end: cell `i` (0..8) reads `offset` V away from its true voltage
    /// (the pack divider still reads the truth). Raises 50 (or 51) once the reading crosses a cell
    /// limit, 52 on the plateau beyond 0.3 V, 62 beyond 1 V (the divider disagrees with the cells).
    pub cell_v_offset: Option<(usize, f64)>,
    /// Offset of the pack current sensor, A (added to the reading; positive = reads more
    /// discharge). Large offsets raise 56 (the measured current beyond the limit the firmware set).
    pub current_offset_a: f64,
    /// The balancing FET of cell `i` (0..8) is stuck on: its 33 ohm bleed stays connected whatever
    /// the balance mask (also with the controller asleep). Electrically a 33 ohm leak on that cell.
    pub bleed_stuck_on: Option<usize>,
    /// The DC contactor is welded and the power stage's enable is taken through its auxiliary
    /// contact (which reads "closed"): when the firmware stops (`power_enabled` false) the unit
    /// cannot isolate the pack and the power stage holds its last AC setpoint. The firmware sees
    /// pack current flowing while it commanded stop and raises 62 (internal circuit failed).
    pub contactor_welded: bool,
    /// Cell temperature sensor `k` (0..4) reads the fixed value `c` degC whatever the truth (a
    /// frozen ADC channel or a sensor glued to the wrong spot).
    pub temp_sensor_stuck: Option<(usize, f64)>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            fan_failed: false,
            heater_failed: false,
            micro_short: None,
            thermal_runaway: None,
            power_stage_fault: false,
            dc_current_injection_a: 0.0,
            dc_voltage_injection_v: 0.0,
            insulation_kohm: HEALTHY_INSULATION_KOHM,
            open_sense_wire: None,
            cell_v_offset: None,
            current_offset_a: 0.0,
            bleed_stuck_on: None,
            contactor_welded: false,
            temp_sensor_stuck: None,
        }
    }
}
