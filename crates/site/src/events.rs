//! Injected events as the site core applies them: what happens to the site's grid, environment or
//! hardware, and when (checked times on the scenario's timeline). The site core only changes the
//! world with them (the grid goes away, a fan stops turning, a cell leaks); the alerts that follow
//! come from the units' firmware and the gateway. Reading them from a site file is
//! `melv-scenario`'s job (`events::compile`).

use serde::{Deserialize, Serialize};

/// What happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The grid is lost (no voltage, no frequency).
    GridOutage,
    /// Every phase's voltage is `value` V.
    Voltage,
    /// The grid frequency is `value` Hz.
    Frequency,
    /// A unit's cooling fan stops turning.
    FanFailure,
    /// A unit's heater stops heating.
    HeaterFailure,
    /// A cell of a unit leaks through an internal micro-short of `value` ohm.
    MicroShort,
    /// The ambient temperature at the batteries is `value` degC.
    Ambient,
    /// A unit's CAN cable is cut (manual 6.3 code 63, cause 2): the run goes through the CAN codec so
    /// that the gateway's supervision notices the silence.
    CanCut,
    /// The app's "shut down the battery" (manual 6.3 solution steps): from `from` the unit is off at
    /// the owner's command; at `to` it is powered on again (`UnitRequest::Shutdown` / `PowerOn`).
    Shutdown,
    /// A cell of a unit goes into thermal runaway (self-heating, internal short, voltage collapse).
    ThermalRunaway,
    /// The sense wire of a unit's cell is open: the front end reads 0 V for it.
    OpenSenseWire,
    /// The installation's insulation resistance falls to `value` kOhm.
    InsulationFault,
    /// The power stage's own hardware protection latches.
    PowerStageFault,
    /// The front end reads a unit's cell `value` V away from its true voltage (sense drift).
    CellVoltageOffset,
    /// A unit's pack current sensor reads `value` A more discharge than flows.
    CurrentOffset,
    /// The balancing FET of a unit's cell is stuck on (its 33 ohm bleed stays connected).
    BleedStuck,
    /// A unit's DC contactor is welded: it cannot isolate the pack when the firmware stops.
    ContactorWeld,
    /// The temperature sensor at a unit's cell (sensor `cell / 2`, each sits between two cells)
    /// reads `value` degC whatever the truth.
    StuckTempSensor,
    /// A unit's cells lose `value` of their new capacity at once, as they start (an ageing jump:
    /// a stand-in for months of wear, or a unit swapped for a worn one).
    AgeingJump,
}

impl EventKind {
    /// Whether the event needs a `value`, and its plausible range with unit (for the error message).
    pub fn value_range(self) -> Option<(f64, f64, &'static str)> {
        match self {
            EventKind::GridOutage
            | EventKind::FanFailure
            | EventKind::HeaterFailure
            | EventKind::CanCut
            | EventKind::Shutdown
            | EventKind::ThermalRunaway
            | EventKind::OpenSenseWire
            | EventKind::PowerStageFault
            | EventKind::BleedStuck
            | EventKind::ContactorWeld => None,
            // An AFE sense drift: beyond +-1 V the divider check (62) sees it at once.
            EventKind::CellVoltageOffset => Some((-2.0, 2.0, "V")),
            // The shunt's range is +-300 A (melv_model::sensors::CURRENT).
            EventKind::CurrentOffset => Some((-300.0, 300.0, "A")),
            // An NTC channel's physical range (open reads very cold, shorted very hot).
            EventKind::StuckTempSensor => Some((-60.0, 150.0, "degC")),
            // Up to 50 % of capacity: beyond the 60 % end of life (code 58) with room.
            EventKind::AgeingJump => Some((0.0, 0.5, "of capacity")),
            // Healthy installations read megaohms; IEC 62109-2's trip level is about 400 kOhm at
            // 400 V. 0..100 MOhm covers a dead short to a dry site.
            EventKind::InsulationFault => Some((0.0, 100_000.0, "kOhm")),
            // 0..400 V L-N spans every excursion the manual's 176-276 V range (7.1) can be tested with.
            EventKind::Voltage => Some((0.0, 400.0, "V")),
            EventKind::Frequency => Some((40.0, 70.0, "Hz")),
            // A micro-short is a leak of some ohms to kilo-ohms (e.g. 10-1000 ohm in Feng et al.,
            // "Detecting the internal short circuit in large-format lithium-ion battery", 2016).
            EventKind::MicroShort => Some((0.01, 1.0e6, "ohm")),
            EventKind::Ambient => Some((-50.0, 80.0, "degC")),
        }
    }

    /// True for events that concern one unit's hardware.
    pub fn is_unit_fault(self) -> bool {
        matches!(
            self,
            EventKind::FanFailure
                | EventKind::HeaterFailure
                | EventKind::MicroShort
                | EventKind::CanCut
                | EventKind::Shutdown
                | EventKind::ThermalRunaway
                | EventKind::OpenSenseWire
                | EventKind::InsulationFault
                | EventKind::PowerStageFault
                | EventKind::CellVoltageOffset
                | EventKind::CurrentOffset
                | EventKind::BleedStuck
                | EventKind::ContactorWeld
                | EventKind::StuckTempSensor
                | EventKind::AgeingJump
        )
    }

    /// True for events that concern one cell of a unit (`cell` names it).
    pub fn concerns_a_cell(self) -> bool {
        matches!(
            self,
            EventKind::MicroShort
                | EventKind::ThermalRunaway
                | EventKind::OpenSenseWire
                | EventKind::CellVoltageOffset
                | EventKind::BleedStuck
                | EventKind::StuckTempSensor
        )
    }
}

/// A checked event in simulation time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Event {
    pub kind: EventKind,
    pub from_utc_s: i64,
    pub to_utc_s: i64,
    pub battery: Option<usize>,
    pub value: f64,
    pub cell: usize,
}

impl Event {
    #[inline]
    pub fn active(&self, t_utc_s: i64) -> bool {
        self.from_utc_s <= t_utc_s && t_utc_s < self.to_utc_s
    }
}
