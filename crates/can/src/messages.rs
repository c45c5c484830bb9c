//! The message table: every frame of the protocol, its identifier scheme, length, cycle time and
//! signals. This table is the Rust side of the contract; `melv.dbc` is the other side, and a test
//! (`dbc.rs`) parses the DBC and checks that both say the same thing, id for id and bit for bit.
//!
//! ## Identifier scheme (11-bit, CAN 2.0A)
//! `id = base + unit`, with the unit index 1..=6 in the low nibble (manual appendix 1b: at most six
//! batteries on a three-phase site) and the message kind in the bits above. The gateway's bases are
//! lower than the batteries', so its commands win arbitration (lower id = higher priority,
//! ISO 11898-1); the broadcast time message uses unit nibble 0.
//!
//! | base  | name        | dir       | dlc | cycle    |
//! |-------|-------------|-----------|-----|----------|
//! | 0x100 | GW_TIME     | gw -> all | 6   | 1000 ms  |
//! | 0x110 | GW_CMD_n    | gw -> n   | 8   | 100 ms   |
//! | 0x120 | GW_REQUEST_n| gw -> n   | 5   | on event |
//! | 0x180 | BAT_STATUS_n| n -> gw   | 8   | 100 ms   |
//! | 0x190 | BAT_POWER_n | n -> gw   | 8   | 100 ms   |
//! | 0x1A0 | BAT_HEALTH_n| n -> gw   | 5   | 200 ms   |
//! | 0x1B0 | BAT_CELLS_n | n -> gw   | 8   | 1000 ms  |
//! | 0x1C0 | BAT_ENERGY_n| n -> gw   | 8   | 1000 ms  |
//! | 0x1D0 | BAT_IDENT_n | n -> gw   | 8   | 1000 ms  |
//!
//! Why these cycle times: power setpoints and the measured power are the control loop's signals;
//! 100 ms matches the 0.1 s response that grid-support functions ask of an inverter (e.g. AS/NZS
//! 4777.2:2020 volt-watt response, manual 7.1 lists that standard) and keeps the gateway's
//! comm-loss verdict (1 s = 10 missed frames) well above single-frame noise. Alerts at 200 ms
//! bound the time an alert takes to reach the gateway. Cell extremes, energy counters and identity
//! change slowly and go at 1 s.

use crate::frame::SignalDef;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Bit rate of the link, bit/s. The manual gives none; 500 kbit/s is the usual rate of battery
/// CAN links in residential storage (e.g. the Pylontech / "PYLON" low-voltage battery protocol and
/// BYD Battery-Box run at 500 kbit/s) and leaves ample margin for 6 units (see `busload`).
pub const BITRATE_BPS: u32 = 500_000;
/// Units on one bus: manual appendix 1b, at most 6 batteries (three-phase).
pub const MAX_UNITS: u8 = melv_core::spec::MAX_BATTERIES_THREE_PHASE as u8;

/// A battery's address on the bus, 1..=6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct UnitIndex(u8);

/// A unit index outside 1..=6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "unit index {0} is not an M-ELV CAN address: batteries are numbered 1..=6 (manual appendix 1b)"
)]
pub struct BadUnitIndex(pub u8);

impl UnitIndex {
    pub fn new(n: u8) -> Result<Self, BadUnitIndex> {
        if (1..=MAX_UNITS).contains(&n) {
            Ok(Self(n))
        } else {
            Err(BadUnitIndex(n))
        }
    }
    pub fn get(self) -> u8 {
        self.0
    }
    /// All six addresses.
    pub fn all() -> impl Iterator<Item = UnitIndex> {
        (1..=MAX_UNITS).map(UnitIndex)
    }
    /// 0-based slot, for arrays of six.
    pub fn slot(self) -> usize {
        usize::from(self.0 - 1)
    }
}

impl TryFrom<u8> for UnitIndex {
    type Error = BadUnitIndex;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        Self::new(v)
    }
}
impl From<UnitIndex> for u8 {
    fn from(u: UnitIndex) -> u8 {
        u.0
    }
}
impl fmt::Display for UnitIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Who transmits a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Sender {
    Gateway,
    Battery,
}

/// The kinds of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum MessageKind {
    GwTime,
    GwCmd,
    GwRequest,
    BatStatus,
    BatPower,
    BatHealth,
    BatCells,
    BatEnergy,
    BatIdent,
}

/// One message of the protocol.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MessageDef {
    pub kind: MessageKind,
    /// DBC name; per-unit messages get `_<unit>` appended.
    pub name: &'static str,
    pub base_id: u16,
    /// One copy per unit (`base_id + unit`), or one broadcast message at `base_id`.
    pub per_unit: bool,
    pub dlc: u8,
    /// Cycle time, ms; 0 = sent on event.
    pub cycle_ms: u32,
    pub sender: Sender,
    #[serde(skip)]
    pub signals: &'static [SignalDef],
    pub comment: &'static str,
}

impl MessageDef {
    /// The frame id of this message for `unit` (ignored for broadcast messages).
    pub fn id(&self, unit: UnitIndex) -> u16 {
        if self.per_unit {
            self.base_id + u16::from(unit.get())
        } else {
            self.base_id
        }
    }
    pub fn signal(&self, name: &str) -> Option<&'static SignalDef> {
        self.signals.iter().find(|s| s.name == name)
    }
}

#[allow(clippy::too_many_arguments)]
const fn s(
    name: &'static str,
    start: u16,
    len: u8,
    signed: bool,
    factor: f64,
    min: f64,
    max: f64,
    unit: &'static str,
    comment: &'static str,
) -> SignalDef {
    SignalDef {
        name,
        start,
        len,
        signed,
        factor,
        offset: 0.0,
        min,
        max,
        unit,
        comment,
    }
}

const fn bit(name: &'static str, start: u16, comment: &'static str) -> SignalDef {
    s(name, start, 1, false, 1.0, 0.0, 1.0, "", comment)
}

// Ranges: powers are declared to +-10 kW / 10 kvar, twice the unit's 5 kVA peak (manual 7.1), so a
// measurement overshoot is still representable; setpoints are declared to the 5 kVA peak itself.
#[rustfmt::skip]
pub mod sig {
    use super::*;

    pub const UNIX_TIME_MS: SignalDef = s("UnixTimeMs", 0, 48, false, 1.0, 0.0, 281_474_976_710_655.0, "ms", "UTC, milliseconds since 1970-01-01");

    pub const ALIVE_COUNTER: SignalDef = s("AliveCounter", 0, 8, false, 1.0, 0.0, 255.0, "", "increments by one per heartbeat; a repeated value is not a heartbeat");
    pub const GRID_FORMING: SignalDef = bit("GridForming", 8, "1 = form the grid (off-grid backup)");
    // manual 7.1: 5 kVA peak output; the unit clamps to its own limits.
    pub const ACTIVE_POWER_SETPOINT: SignalDef = s("ActivePowerSetpoint", 16, 16, true, 1.0, -5000.0, 5000.0, "W", "positive = discharge");
    pub const REACTIVE_POWER_SETPOINT: SignalDef = s("ReactivePowerSetpoint", 32, 16, true, 1.0, -5000.0, 5000.0, "var", "");
    pub const CMD_CRC: SignalDef = s("Crc", 56, 8, false, 1.0, 0.0, 255.0, "", "CRC-8 SAE J1850 over the id's low byte and bytes 0..6");

    pub const REQUEST: SignalDef = s("Request", 0, 8, false, 1.0, 1.0, 4.0, "", "1 activate, 2 reset, 3 shutdown, 4 power on");
    pub const REQUEST_SEQ: SignalDef = s("RequestSeq", 8, 8, false, 1.0, 0.0, 255.0, "", "same value = repetition of the same request; counts up within a session");
    pub const REQUEST_SESSION: SignalDef = s("Session", 16, 16, false, 1.0, 0.0, 65535.0, "", "the gateway's boot counter: a new value starts a new sequence; an older one is a replay");
    pub const REQUEST_CRC: SignalDef = s("Crc", 32, 8, false, 1.0, 0.0, 255.0, "", "CRC-8 SAE J1850 over the id's low byte and bytes 0..3");

    pub const SOC: SignalDef = s("Soc", 0, 16, false, 0.01, 0.0, 100.0, "%", "state of charge estimate");
    // manual 7.1: 28.8 V max DC voltage; declared to 40 V for margin.
    pub const PACK_VOLTAGE: SignalDef = s("PackVoltage", 16, 16, false, 0.01, 0.0, 40.0, "V", "");
    // 5 kVA / 25.6 V = 195 A at the DC side (manual 7.1); declared to +-3000 A.
    pub const PACK_CURRENT: SignalDef = s("PackCurrent", 32, 16, true, 0.1, -3000.0, 3000.0, "A", "positive = discharging");
    pub const AC_POWER: SignalDef = s("AcPower", 48, 16, true, 1.0, -10000.0, 10000.0, "W", "positive = discharging");

    pub const REACTIVE_POWER: SignalDef = s("ReactivePower", 0, 16, true, 1.0, -10000.0, 10000.0, "var", "");
    pub const MAX_CHARGE_POWER: SignalDef = s("MaxChargePower", 16, 16, false, 1.0, 0.0, 10000.0, "W", "largest AC charging power accepted now");
    pub const MAX_DISCHARGE_POWER: SignalDef = s("MaxDischargePower", 32, 16, false, 1.0, 0.0, 10000.0, "W", "largest AC discharging power delivered now");
    pub const LIFECYCLE: SignalDef = s("Lifecycle", 48, 3, false, 1.0, 0.0, 4.0, "", "");
    pub const STATUS_LED: SignalDef = s("StatusLed", 51, 2, false, 1.0, 0.0, 3.0, "", "manual 6.1");
    pub const SOC_LED_ON: SignalDef = bit("SocLedOn", 53, "manual 6.1: solid blue");
    pub const SOC_LED_PERCENT: SignalDef = s("SocLedPercent", 56, 7, false, 1.0, 0.0, 100.0, "%", "percentage the SOC LED shows");

    pub const SOH: SignalDef = s("Soh", 24, 16, false, 0.01, 0.0, 100.0, "%", "state of health estimate");

    pub const MIN_CELL_VOLTAGE: SignalDef = s("MinCellVoltage", 0, 16, false, 0.001, 0.0, 5.0, "V", "");
    pub const MAX_CELL_VOLTAGE: SignalDef = s("MaxCellVoltage", 16, 16, false, 0.001, 0.0, 5.0, "V", "");
    // Sensor range of an NTC front end; manual 7.1 operating range is -20..55 degC ambient.
    pub const MIN_TEMPERATURE: SignalDef = s("MinTemperature", 32, 16, true, 0.1, -40.0, 125.0, "degC", "");
    pub const MAX_TEMPERATURE: SignalDef = s("MaxTemperature", 48, 16, true, 0.1, -40.0, 125.0, "degC", "");

    // 0.1 Wh steps over 32 bits hold 429 MWh, 61 000 full 7 kWh cycles: six times the rated 10 000.
    pub const AC_CHARGED_ENERGY: SignalDef = s("AcChargedEnergy", 0, 32, false, 0.1, 0.0, 429_496_729.5, "Wh", "cumulative AC energy taken in");
    pub const AC_DISCHARGED_ENERGY: SignalDef = s("AcDischargedEnergy", 32, 32, false, 0.1, 0.0, 429_496_729.5, "Wh", "cumulative AC energy delivered");

    pub const SERIAL_NUMBER: SignalDef = s("SerialNumber", 0, 32, false, 1.0, 0.0, 4_294_967_295.0, "", "");
    pub const FIRMWARE_MAJOR: SignalDef = s("FirmwareMajor", 32, 8, false, 1.0, 0.0, 255.0, "", "");
    pub const FIRMWARE_MINOR: SignalDef = s("FirmwareMinor", 40, 8, false, 1.0, 0.0, 255.0, "", "");
    pub const FIRMWARE_PATCH: SignalDef = s("FirmwarePatch", 48, 8, false, 1.0, 0.0, 255.0, "", "");
    pub const UNIT_INDEX: SignalDef = s("UnitIndex", 56, 8, false, 1.0, 1.0, 6.0, "", "the unit's configured address; must match the id");

    /// One bit per alert code of manual 6.3, at bit `AlertCode::index()` (the `AlertSet` layout).
    pub const ALERTS: [SignalDef; 22] = [
        bit("Alert02_GridPowerOutage", 0, "manual 6.3 code 2"),
        bit("Alert03_GridUndervoltage", 1, "manual 6.3 code 3"),
        bit("Alert04_GridOvervoltage", 2, "manual 6.3 code 4"),
        bit("Alert05_GridUnderfrequency", 3, "manual 6.3 code 5"),
        bit("Alert06_GridOverfrequency", 4, "manual 6.3 code 6"),
        bit("Alert07_DcCurrentComponent", 5, "manual 6.3 code 7"),
        bit("Alert13_DistributionError", 6, "manual 6.3 code 13"),
        bit("Alert18_DcVoltageComponent", 7, "manual 6.3 code 18"),
        bit("Alert50_BatteryOvervoltage", 8, "manual 6.3 code 50"),
        bit("Alert51_BatteryUndervoltage", 9, "manual 6.3 code 51"),
        bit("Alert52_CellVoltageDifference", 10, "manual 6.3 code 52"),
        bit("Alert53_BatteryOvertemperature", 11, "manual 6.3 code 53"),
        bit("Alert54_LowBatteryTemperature", 12, "manual 6.3 code 54"),
        bit(
            "Alert55_CellTemperatureDifference",
            13,
            "manual 6.3 code 55",
        ),
        bit("Alert56_BatteryOvercurrent", 14, "manual 6.3 code 56"),
        bit("Alert57_LowSoh", 15, "manual 6.3 code 57"),
        bit("Alert58_LifeTerminated", 16, "manual 6.3 code 58"),
        bit("Alert59_MicroShortCircuit", 17, "manual 6.3 code 59"),
        bit("Alert60_ThermalRunaway", 18, "manual 6.3 code 60"),
        bit("Alert62_InternalDeviceError", 19, "manual 6.3 code 62"),
        bit("Alert63_CommunicationLost", 20, "manual 6.3 code 63"),
        bit("Alert64_ActiveDeviceProtection", 21, "manual 6.3 code 64"),
    ];

    // The health decoder ORs each alert bit into a u32 at `start` (the `AlertSet` layout): every
    // alert signal is one bit below bit 32, checked at compile time.
    const _: () = {
        let mut i = 0;
        while i < ALERTS.len() {
            assert!(
                ALERTS[i].len == 1 && ALERTS[i].start < 32,
                "alert signals are single bits that fit an AlertSet's u32"
            );
            i += 1;
        }
    };

    pub const TIME: [SignalDef; 1] = [UNIX_TIME_MS];
    pub const CMD: [SignalDef; 5] = [
        ALIVE_COUNTER,
        GRID_FORMING,
        ACTIVE_POWER_SETPOINT,
        REACTIVE_POWER_SETPOINT,
        CMD_CRC,
    ];
    pub const REQ: [SignalDef; 4] = [REQUEST, REQUEST_SEQ, REQUEST_SESSION, REQUEST_CRC];
    pub const STATUS: [SignalDef; 4] = [SOC, PACK_VOLTAGE, PACK_CURRENT, AC_POWER];
    pub const POWER: [SignalDef; 7] = [
        REACTIVE_POWER,
        MAX_CHARGE_POWER,
        MAX_DISCHARGE_POWER,
        LIFECYCLE,
        STATUS_LED,
        SOC_LED_ON,
        SOC_LED_PERCENT,
    ];
    pub const HEALTH: [SignalDef; 23] = {
        let mut out = [SOH; 23];
        let mut i = 0;
        while i < 22 {
            out[i] = ALERTS[i];
            i += 1;
        }
        out
    };
    pub const CELLS: [SignalDef; 4] = [
        MIN_CELL_VOLTAGE,
        MAX_CELL_VOLTAGE,
        MIN_TEMPERATURE,
        MAX_TEMPERATURE,
    ];
    pub const ENERGY: [SignalDef; 2] = [AC_CHARGED_ENERGY, AC_DISCHARGED_ENERGY];
    pub const IDENT: [SignalDef; 5] = [
        SERIAL_NUMBER,
        FIRMWARE_MAJOR,
        FIRMWARE_MINOR,
        FIRMWARE_PATCH,
        UNIT_INDEX,
    ];
}

/// Every message of the protocol, in id order.
#[rustfmt::skip]
pub static MESSAGES: [MessageDef; 9] = [
    MessageDef { kind: MessageKind::GwTime, name: "GW_TIME", base_id: 0x100, per_unit: false, dlc: 6, cycle_ms: 1000, sender: Sender::Gateway, signals: &sig::TIME, comment: "gateway time, broadcast" },
    MessageDef { kind: MessageKind::GwCmd, name: "GW_CMD", base_id: 0x110, per_unit: true, dlc: 8, cycle_ms: 100, sender: Sender::Gateway, signals: &sig::CMD, comment: "heartbeat and power setpoint" },
    MessageDef { kind: MessageKind::GwRequest, name: "GW_REQUEST", base_id: 0x120, per_unit: true, dlc: 5, cycle_ms: 0, sender: Sender::Gateway, signals: &sig::REQ, comment: "one-shot request, repeated 3 times 100 ms apart" },
    MessageDef { kind: MessageKind::BatStatus, name: "BAT_STATUS", base_id: 0x180, per_unit: true, dlc: 8, cycle_ms: 100, sender: Sender::Battery, signals: &sig::STATUS, comment: "state of charge, pack voltage and current, AC power" },
    MessageDef { kind: MessageKind::BatPower, name: "BAT_POWER", base_id: 0x190, per_unit: true, dlc: 8, cycle_ms: 100, sender: Sender::Battery, signals: &sig::POWER, comment: "reactive power, power limits, lifecycle and LEDs" },
    MessageDef { kind: MessageKind::BatHealth, name: "BAT_HEALTH", base_id: 0x1A0, per_unit: true, dlc: 5, cycle_ms: 200, sender: Sender::Battery, signals: &sig::HEALTH, comment: "alert codes (manual 6.3), one bit each, and state of health" },
    MessageDef { kind: MessageKind::BatCells, name: "BAT_CELLS", base_id: 0x1B0, per_unit: true, dlc: 8, cycle_ms: 1000, sender: Sender::Battery, signals: &sig::CELLS, comment: "cell voltage and temperature extremes" },
    MessageDef { kind: MessageKind::BatEnergy, name: "BAT_ENERGY", base_id: 0x1C0, per_unit: true, dlc: 8, cycle_ms: 1000, sender: Sender::Battery, signals: &sig::ENERGY, comment: "cumulative AC energy counters" },
    MessageDef { kind: MessageKind::BatIdent, name: "BAT_IDENT", base_id: 0x1D0, per_unit: true, dlc: 8, cycle_ms: 1000, sender: Sender::Battery, signals: &sig::IDENT, comment: "identity: serial, firmware, unit index" },
];

impl MessageKind {
    pub fn def(self) -> &'static MessageDef {
        MESSAGES
            .iter()
            .find(|m| m.kind == self)
            .expect("every MessageKind has a row in MESSAGES")
    }
}

/// An id that belongs to no message of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("CAN id 0x{0:03X} is not an M-ELV message")]
pub struct UnknownId(pub u16);

/// Which message (and unit) an id carries.
pub fn classify(id: u16) -> Result<(&'static MessageDef, Option<UnitIndex>), UnknownId> {
    for m in MESSAGES.iter() {
        if m.per_unit {
            if id > m.base_id && id <= m.base_id + u16::from(MAX_UNITS) {
                let unit = UnitIndex((id - m.base_id) as u8);
                return Ok((m, Some(unit)));
            }
        } else if id == m.base_id {
            return Ok((m, None));
        }
    }
    Err(UnknownId(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use melv_core::AlertCode;

    #[test]
    fn ids_classify_to_their_message_and_unit() {
        let check = |id: u16, expected: Result<(&str, Option<u8>), UnknownId>| {
            let got = classify(id).map(|(m, u)| (m.name, u.map(|u| u.get())));
            assert_eq!(got, expected, "id {id:03X}");
        };
        check(0x100, Ok(("GW_TIME", None)));
        check(0x111, Ok(("GW_CMD", Some(1))));
        check(0x116, Ok(("GW_CMD", Some(6))));
        check(0x117, Err(UnknownId(0x117)));
        check(0x110, Err(UnknownId(0x110)));
        check(0x123, Ok(("GW_REQUEST", Some(3))));
        check(0x182, Ok(("BAT_STATUS", Some(2))));
        check(0x1A6, Ok(("BAT_HEALTH", Some(6))));
        check(0x1D1, Ok(("BAT_IDENT", Some(1))));
        check(0x000, Err(UnknownId(0)));
        check(0x7FF, Err(UnknownId(0x7FF)));
    }

    #[test]
    fn ids_are_unique_and_gateway_wins_arbitration() {
        let mut ids = Vec::new();
        for m in MESSAGES.iter() {
            for u in UnitIndex::all() {
                if m.per_unit || u.get() == 1 {
                    ids.push((m.id(u), m.sender));
                }
            }
        }
        let n = ids.len();
        ids.sort_by_key(|(id, _)| *id);
        ids.dedup_by_key(|(id, _)| *id);
        assert_eq!(ids.len(), n, "duplicate ids");
        assert_eq!(n, 1 + 8 * 6);
        let max_gw = ids
            .iter()
            .filter(|(_, s)| *s == Sender::Gateway)
            .map(|(i, _)| *i)
            .max();
        let min_bat = ids
            .iter()
            .filter(|(_, s)| *s == Sender::Battery)
            .map(|(i, _)| *i)
            .min();
        assert!(max_gw < min_bat);
    }

    #[test]
    fn signals_fit_their_frames_and_do_not_overlap() {
        for m in MESSAGES.iter() {
            let mut used = 0u64;
            for s in m.signals {
                assert!(
                    s.bytes_needed() <= usize::from(m.dlc),
                    "{}.{}",
                    m.name,
                    s.name
                );
                let mask = ((1u128 << s.len) - 1) as u64;
                let field = mask << s.start;
                assert_eq!(used & field, 0, "{}.{} overlaps", m.name, s.name);
                used |= field;
                let (lo, hi) = s.raw_range();
                assert!(
                    s.min >= lo as f64 * s.factor - 1e-9,
                    "{}.{} min",
                    m.name,
                    s.name
                );
                assert!(
                    s.max <= hi as f64 * s.factor + 1e-9,
                    "{}.{} max",
                    m.name,
                    s.name
                );
            }
        }
    }

    #[test]
    fn alert_bits_follow_the_catalogue() {
        for code in AlertCode::all() {
            let s = &sig::ALERTS[code.index()];
            assert_eq!(usize::from(s.start), code.index());
            assert!(
                s.name.starts_with(&format!("Alert{:02}_", code.get())),
                "{}",
                s.name
            );
        }
    }

    #[test]
    fn unit_index_accepts_one_to_six() {
        for n in 0..=10u8 {
            assert_eq!(UnitIndex::new(n).is_ok(), (1..=6).contains(&n), "{n}");
        }
    }
}
