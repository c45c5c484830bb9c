//! Plain representations of each message, with `parse` (frame -> value) and `emit` (value -> frame).
//!
//! A `Repr` holds the message's physical values exactly as the DBC declares them (percent, volts,
//! watts), so that a value read by cantools and a value read here are the same number. Conversion to
//! the system's own types (`BatteryStatus`, `BatteryCommand`) happens in `node.rs`, once.
//!
//! Parsing checks, in order: the id is one of ours, the length is the message's DLC, every signal
//! is inside its declared range, enumerations hold a defined value, and the CRC (gateway messages)
//! matches. Each failure is a distinct [`DecodeError`] variant so the gateway can count them.

use crate::frame::{CanFrame, FrameError, Payload, SignalDef, SignalError};
use crate::messages::{classify, sig, MessageDef, MessageKind, UnitIndex, UnknownId};
use melv_core::status::UnitRequest;
use melv_core::{AlertSet, Lifecycle, StatusLed};

/// Why a frame is not a valid M-ELV message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    UnknownId(#[from] UnknownId),
    #[error("{message} (id 0x{id:03X}) must have {expected} data bytes, got {got}")]
    WrongLength {
        message: &'static str,
        id: u16,
        expected: u8,
        got: usize,
    },
    #[error("{message} (id 0x{id:03X}) is malformed: {source}")]
    Malformed {
        message: &'static str,
        id: u16,
        source: SignalError,
    },
    #[error("{message} (id 0x{id:03X}) fails its CRC: computed 0x{computed:02X}, frame says 0x{received:02X}")]
    BadCrc {
        message: &'static str,
        id: u16,
        computed: u8,
        received: u8,
    },
}

impl DecodeError {
    /// The counter this error increments (see `RxStats`).
    pub fn class(&self) -> ErrorClass {
        match self {
            DecodeError::Frame(_) | DecodeError::Malformed { .. } | DecodeError::BadCrc { .. } => {
                ErrorClass::Malformed
            }
            DecodeError::UnknownId(_) => ErrorClass::UnknownId,
            DecodeError::WrongLength { .. } => ErrorClass::WrongLength,
        }
    }
}

/// The three ways a received frame is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Malformed,
    UnknownId,
    WrongLength,
}

/// Why a value could not be put on the wire.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot emit {message}: {source}")]
pub struct EncodeError {
    pub message: &'static str,
    pub source: SignalError,
}

/// CRC-8 SAE J1850 (poly 0x1D, init 0xFF, final xor 0xFF), the CRC of AUTOSAR E2E profile 1 and 2.
/// Covering the id's low byte too means a frame meant for another unit fails the check.
pub fn crc8_j1850(id: u16, bytes: &[u8]) -> u8 {
    let mut crc: u8 = 0xFF;
    for &b in std::iter::once(&(id as u8)).chain(bytes) {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x1D
            } else {
                crc << 1
            };
        }
    }
    crc ^ 0xFF
}

/// GW_TIME: the gateway's UTC clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeRepr {
    pub unix_time_ms: u64,
}

/// GW_CMD_n: heartbeat and standing power order for one unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CmdRepr {
    pub alive_counter: u8,
    pub grid_forming: bool,
    /// W, positive = discharge.
    pub active_power_w: f64,
    pub reactive_power_var: f64,
}

/// GW_REQUEST_n: a one-shot request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestRepr {
    pub request: UnitRequest,
    /// Counts up by one per new request within a session; repeats of one request share it.
    pub seq: u8,
    /// The gateway's boot counter (see `GatewayNode::with_session`): a restarted gateway starts
    /// a new session, so its first sequence number is not mistaken for a repeat.
    pub session: u16,
}

/// BAT_STATUS_n.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatusRepr {
    pub soc_pct: f64,
    pub pack_v: f64,
    /// A, positive = discharging.
    pub pack_current_a: f64,
    /// W, positive = discharging.
    pub ac_power_w: f64,
}

/// BAT_POWER_n.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerRepr {
    pub reactive_power_var: f64,
    pub max_charge_w: f64,
    pub max_discharge_w: f64,
    pub lifecycle: Lifecycle,
    pub status_led: StatusLed,
    /// `None` = SOC LED off; `Some(p)` = solid blue showing `p` percent (manual 6.1).
    pub soc_led_percent: Option<u8>,
}

/// BAT_HEALTH_n.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthRepr {
    pub alerts: AlertSet,
    pub soh_pct: f64,
}

/// BAT_CELLS_n.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellsRepr {
    pub min_cell_v: f64,
    pub max_cell_v: f64,
    pub min_temp_c: f64,
    pub max_temp_c: f64,
}

/// BAT_ENERGY_n.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnergyRepr {
    pub ac_charged_wh: f64,
    pub ac_discharged_wh: f64,
}

/// BAT_IDENT_n.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdentRepr {
    pub serial: u32,
    pub firmware: (u8, u8, u8),
    /// The unit's configured address; parse refuses a frame whose id says otherwise.
    pub unit_index: UnitIndex,
}

/// Any message, with its unit (`None` for the broadcast time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Message {
    Time(TimeRepr),
    Cmd(UnitIndex, CmdRepr),
    Request(UnitIndex, RequestRepr),
    Status(UnitIndex, StatusRepr),
    Power(UnitIndex, PowerRepr),
    Health(UnitIndex, HealthRepr),
    Cells(UnitIndex, CellsRepr),
    Energy(UnitIndex, EnergyRepr),
    Ident(UnitIndex, IdentRepr),
}

fn lifecycle_code(l: Lifecycle) -> u8 {
    match l {
        Lifecycle::Off => 0,
        Lifecycle::Standby => 1,
        Lifecycle::Active => 2,
        Lifecycle::Fault => 3,
        Lifecycle::LatchedFault => 4,
    }
}
fn lifecycle_from(code: i64) -> Option<Lifecycle> {
    Some(match code {
        0 => Lifecycle::Off,
        1 => Lifecycle::Standby,
        2 => Lifecycle::Active,
        3 => Lifecycle::Fault,
        4 => Lifecycle::LatchedFault,
        _ => return None,
    })
}
fn status_led_code(l: StatusLed) -> u8 {
    match l {
        StatusLed::Off => 0,
        StatusLed::Dim => 1,
        StatusLed::QuickFlash => 2,
        StatusLed::SolidRed => 3,
    }
}
fn status_led_from(code: i64) -> StatusLed {
    match code {
        0 => StatusLed::Off,
        1 => StatusLed::Dim,
        2 => StatusLed::QuickFlash,
        _ => StatusLed::SolidRed,
    }
}
/// Request codes on the wire (the DBC's value table).
pub fn request_code(r: UnitRequest) -> u8 {
    match r {
        UnitRequest::Activate => 1,
        UnitRequest::Reset => 2,
        UnitRequest::Shutdown => 3,
        UnitRequest::PowerOn => 4,
    }
}
fn request_from(code: i64) -> Option<UnitRequest> {
    Some(match code {
        1 => UnitRequest::Activate,
        2 => UnitRequest::Reset,
        3 => UnitRequest::Shutdown,
        4 => UnitRequest::PowerOn,
        _ => return None,
    })
}

/// Value tables (DBC `VAL_`), for the DBC writer and its consistency test.
pub fn value_table(signal: &str) -> Option<&'static [(u8, &'static str)]> {
    match signal {
        "Lifecycle" => Some(&[
            (0, "Off"),
            (1, "Standby"),
            (2, "Active"),
            (3, "Fault"),
            (4, "LatchedFault"),
        ]),
        "StatusLed" => Some(&[(0, "Off"), (1, "Dim"), (2, "QuickFlash"), (3, "SolidRed")]),
        "Request" => Some(&[
            (1, "Activate"),
            (2, "Reset"),
            (3, "Shutdown"),
            (4, "PowerOn"),
        ]),
        _ => None,
    }
}

/// Reads signals of one received message, turning signal errors into `Malformed`.
struct Reader<'a> {
    def: &'static MessageDef,
    id: u16,
    bytes: &'a [u8],
    p: Payload<&'a [u8]>,
}

impl Reader<'_> {
    fn err(&self, source: SignalError) -> DecodeError {
        DecodeError::Malformed {
            message: self.def.name,
            id: self.id,
            source,
        }
    }
    fn get(&self, s: &SignalDef) -> Result<f64, DecodeError> {
        self.p.get_checked(s).map_err(|e| self.err(e))
    }
    fn raw(&self, s: &SignalDef) -> Result<i64, DecodeError> {
        self.get(s)?;
        self.p.raw(s).map_err(|e| self.err(e))
    }
    fn bad_value(&self, s: &SignalDef, raw: i64) -> DecodeError {
        self.err(SignalError::OutOfRange {
            signal: s.name,
            value: raw as f64,
            unit: s.unit,
            min: s.min,
            max: s.max,
        })
    }
    fn check_crc(&self, crc: &SignalDef) -> Result<(), DecodeError> {
        // The CRC is the last whole byte of the message; the length was checked before.
        let n = usize::from(crc.start / 8);
        let computed = crc8_j1850(self.id, &self.bytes[..n]);
        let received = self.bytes[n];
        if computed != received {
            return Err(DecodeError::BadCrc {
                message: self.def.name,
                id: self.id,
                computed,
                received,
            });
        }
        Ok(())
    }
}

/// The per-unit messages' decoders. `unit` is what `classify` found; it is `Some` for every
/// per-unit message (only GW_TIME has none), and each decoder asks for it where the original
/// single decoder did, so the first error reported is the same.
impl Reader<'_> {
    fn unit(&self, unit: Option<UnitIndex>) -> Result<UnitIndex, DecodeError> {
        unit.ok_or(DecodeError::UnknownId(UnknownId(self.id)))
    }

    fn cmd(&self, unit: Option<UnitIndex>) -> Result<Message, DecodeError> {
        self.check_crc(&sig::CMD_CRC)?;
        Ok(Message::Cmd(
            self.unit(unit)?,
            CmdRepr {
                alive_counter: self.raw(&sig::ALIVE_COUNTER)? as u8,
                grid_forming: self.raw(&sig::GRID_FORMING)? == 1,
                active_power_w: self.get(&sig::ACTIVE_POWER_SETPOINT)?,
                reactive_power_var: self.get(&sig::REACTIVE_POWER_SETPOINT)?,
            },
        ))
    }

    fn request(&self, unit: Option<UnitIndex>) -> Result<Message, DecodeError> {
        self.check_crc(&sig::REQUEST_CRC)?;
        let code = self.raw(&sig::REQUEST)?;
        let request = request_from(code).ok_or_else(|| self.bad_value(&sig::REQUEST, code))?;
        Ok(Message::Request(
            self.unit(unit)?,
            RequestRepr {
                request,
                seq: self.raw(&sig::REQUEST_SEQ)? as u8,
                session: self.raw(&sig::REQUEST_SESSION)? as u16,
            },
        ))
    }

    fn status(&self, unit: Option<UnitIndex>) -> Result<Message, DecodeError> {
        Ok(Message::Status(
            self.unit(unit)?,
            StatusRepr {
                soc_pct: self.get(&sig::SOC)?,
                pack_v: self.get(&sig::PACK_VOLTAGE)?,
                pack_current_a: self.get(&sig::PACK_CURRENT)?,
                ac_power_w: self.get(&sig::AC_POWER)?,
            },
        ))
    }

    fn power(&self, unit: Option<UnitIndex>) -> Result<Message, DecodeError> {
        let lc = self.raw(&sig::LIFECYCLE)?;
        let lifecycle = lifecycle_from(lc).ok_or_else(|| self.bad_value(&sig::LIFECYCLE, lc))?;
        let on = self.raw(&sig::SOC_LED_ON)? == 1;
        let pct = self.raw(&sig::SOC_LED_PERCENT)? as u8;
        Ok(Message::Power(
            self.unit(unit)?,
            PowerRepr {
                reactive_power_var: self.get(&sig::REACTIVE_POWER)?,
                max_charge_w: self.get(&sig::MAX_CHARGE_POWER)?,
                max_discharge_w: self.get(&sig::MAX_DISCHARGE_POWER)?,
                lifecycle,
                status_led: status_led_from(self.raw(&sig::STATUS_LED)?),
                soc_led_percent: on.then_some(pct),
            },
        ))
    }

    fn health(&self, unit: Option<UnitIndex>) -> Result<Message, DecodeError> {
        let mut bits = 0u32;
        for s in sig::ALERTS.iter() {
            bits |= (self.raw(s)? as u32) << s.start;
        }
        Ok(Message::Health(
            self.unit(unit)?,
            HealthRepr {
                alerts: AlertSet::from_bits(bits),
                soh_pct: self.get(&sig::SOH)?,
            },
        ))
    }

    fn cells(&self, unit: Option<UnitIndex>) -> Result<Message, DecodeError> {
        Ok(Message::Cells(
            self.unit(unit)?,
            CellsRepr {
                min_cell_v: self.get(&sig::MIN_CELL_VOLTAGE)?,
                max_cell_v: self.get(&sig::MAX_CELL_VOLTAGE)?,
                min_temp_c: self.get(&sig::MIN_TEMPERATURE)?,
                max_temp_c: self.get(&sig::MAX_TEMPERATURE)?,
            },
        ))
    }

    fn energy(&self, unit: Option<UnitIndex>) -> Result<Message, DecodeError> {
        Ok(Message::Energy(
            self.unit(unit)?,
            EnergyRepr {
                ac_charged_wh: self.get(&sig::AC_CHARGED_ENERGY)?,
                ac_discharged_wh: self.get(&sig::AC_DISCHARGED_ENERGY)?,
            },
        ))
    }

    fn ident(&self, unit: Option<UnitIndex>) -> Result<Message, DecodeError> {
        let unit = self.unit(unit)?;
        let idx = self.raw(&sig::UNIT_INDEX)?;
        if idx != i64::from(unit.get()) {
            // An address conflict or a misconfigured unit: the id and the payload disagree.
            return Err(self.bad_value(&sig::UNIT_INDEX, idx));
        }
        Ok(Message::Ident(
            unit,
            IdentRepr {
                serial: self.raw(&sig::SERIAL_NUMBER)? as u32,
                firmware: (
                    self.raw(&sig::FIRMWARE_MAJOR)? as u8,
                    self.raw(&sig::FIRMWARE_MINOR)? as u8,
                    self.raw(&sig::FIRMWARE_PATCH)? as u8,
                ),
                unit_index: unit,
            },
        ))
    }
}

impl Message {
    /// Decode a received frame. Total: every input gives a message or a typed error.
    pub fn parse(frame: &CanFrame) -> Result<Message, DecodeError> {
        let id = frame.id();
        let (def, unit) = classify(id)?;
        if frame.len() != usize::from(def.dlc) {
            return Err(DecodeError::WrongLength {
                message: def.name,
                id,
                expected: def.dlc,
                got: frame.len(),
            });
        }
        let r = Reader {
            def,
            id,
            bytes: frame.data(),
            p: frame.payload(),
        };
        match def.kind {
            MessageKind::GwTime => Ok(Message::Time(TimeRepr {
                unix_time_ms: r.raw(&sig::UNIX_TIME_MS)? as u64,
            })),
            MessageKind::GwCmd => r.cmd(unit),
            MessageKind::GwRequest => r.request(unit),
            MessageKind::BatStatus => r.status(unit),
            MessageKind::BatPower => r.power(unit),
            MessageKind::BatHealth => r.health(unit),
            MessageKind::BatCells => r.cells(unit),
            MessageKind::BatEnergy => r.energy(unit),
            MessageKind::BatIdent => r.ident(unit),
        }
    }

    /// The message's definition.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Time(_) => MessageKind::GwTime,
            Message::Cmd(..) => MessageKind::GwCmd,
            Message::Request(..) => MessageKind::GwRequest,
            Message::Status(..) => MessageKind::BatStatus,
            Message::Power(..) => MessageKind::BatPower,
            Message::Health(..) => MessageKind::BatHealth,
            Message::Cells(..) => MessageKind::BatCells,
            Message::Energy(..) => MessageKind::BatEnergy,
            Message::Ident(..) => MessageKind::BatIdent,
        }
    }

    /// The unit the message is for or from (`None` for the broadcast time).
    pub fn unit(&self) -> Option<UnitIndex> {
        match *self {
            Message::Time(_) => None,
            Message::Cmd(u, _)
            | Message::Request(u, _)
            | Message::Status(u, _)
            | Message::Power(u, _)
            | Message::Health(u, _)
            | Message::Cells(u, _)
            | Message::Energy(u, _)
            | Message::Ident(u, _) => Some(u),
        }
    }

    /// Encode into a frame. Values outside the DBC's declared ranges, and NaN, are refused.
    pub fn emit(&self) -> Result<CanFrame, EncodeError> {
        let def = self.kind().def();
        // Unit 1 stands in for the broadcast message; `MessageDef::id` ignores it there.
        let id = def.id(self
            .unit()
            .unwrap_or(UnitIndex::all().next().expect("six units")));
        let mut buf = [0u8; 8];
        let n = usize::from(def.dlc);
        {
            let mut p = Payload::new(&mut buf[..n]);
            let mut set = |s: &SignalDef, v: f64| {
                p.set(s, v).map_err(|source| EncodeError {
                    message: def.name,
                    source,
                })
            };
            match *self {
                Message::Time(t) => set(&sig::UNIX_TIME_MS, t.unix_time_ms as f64)?,
                Message::Cmd(_, c) => {
                    set(&sig::ALIVE_COUNTER, f64::from(c.alive_counter))?;
                    set(&sig::GRID_FORMING, f64::from(u8::from(c.grid_forming)))?;
                    set(&sig::ACTIVE_POWER_SETPOINT, c.active_power_w)?;
                    set(&sig::REACTIVE_POWER_SETPOINT, c.reactive_power_var)?;
                }
                Message::Request(_, r) => {
                    set(&sig::REQUEST, f64::from(request_code(r.request)))?;
                    set(&sig::REQUEST_SEQ, f64::from(r.seq))?;
                    set(&sig::REQUEST_SESSION, f64::from(r.session))?;
                }
                Message::Status(_, s) => {
                    set(&sig::SOC, s.soc_pct)?;
                    set(&sig::PACK_VOLTAGE, s.pack_v)?;
                    set(&sig::PACK_CURRENT, s.pack_current_a)?;
                    set(&sig::AC_POWER, s.ac_power_w)?;
                }
                Message::Power(_, p) => {
                    set(&sig::REACTIVE_POWER, p.reactive_power_var)?;
                    set(&sig::MAX_CHARGE_POWER, p.max_charge_w)?;
                    set(&sig::MAX_DISCHARGE_POWER, p.max_discharge_w)?;
                    set(&sig::LIFECYCLE, f64::from(lifecycle_code(p.lifecycle)))?;
                    set(&sig::STATUS_LED, f64::from(status_led_code(p.status_led)))?;
                    set(
                        &sig::SOC_LED_ON,
                        f64::from(u8::from(p.soc_led_percent.is_some())),
                    )?;
                    set(
                        &sig::SOC_LED_PERCENT,
                        f64::from(p.soc_led_percent.unwrap_or(0)),
                    )?;
                }
                Message::Health(_, h) => {
                    for s in sig::ALERTS.iter() {
                        set(s, f64::from((h.alerts.bits() >> s.start) & 1))?;
                    }
                    set(&sig::SOH, h.soh_pct)?;
                }
                Message::Cells(_, c) => {
                    set(&sig::MIN_CELL_VOLTAGE, c.min_cell_v)?;
                    set(&sig::MAX_CELL_VOLTAGE, c.max_cell_v)?;
                    set(&sig::MIN_TEMPERATURE, c.min_temp_c)?;
                    set(&sig::MAX_TEMPERATURE, c.max_temp_c)?;
                }
                Message::Energy(_, e) => {
                    set(&sig::AC_CHARGED_ENERGY, e.ac_charged_wh)?;
                    set(&sig::AC_DISCHARGED_ENERGY, e.ac_discharged_wh)?;
                }
                Message::Ident(u, i) => {
                    set(&sig::SERIAL_NUMBER, f64::from(i.serial))?;
                    set(&sig::FIRMWARE_MAJOR, f64::from(i.firmware.0))?;
                    set(&sig::FIRMWARE_MINOR, f64::from(i.firmware.1))?;
                    set(&sig::FIRMWARE_PATCH, f64::from(i.firmware.2))?;
                    // The payload carries the unit's own idea of its address; emit the id's unit.
                    set(&sig::UNIT_INDEX, f64::from(u.get()))?;
                }
            }
        }
        // The CRC goes last, over the bytes before it.
        for crc in [&sig::CMD_CRC, &sig::REQUEST_CRC] {
            if def.signals.iter().any(|s| s == crc) {
                let k = usize::from(crc.start / 8);
                buf[k] = crc8_j1850(id, &buf[..k]);
            }
        }
        Ok(CanFrame::new(u32::from(id), &buf[..n]).expect("ids and DLCs of MESSAGES are valid"))
    }
}

// Round-trip and refusal tests: crates/can/tests/codec.rs (public API only).
