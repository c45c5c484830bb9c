//! The battery's end of the link: [`BatteryNode`], sans-IO.
//!
//! The node turns the firmware's [`BatteryStatus`] into the frames due at `now_s` (each message at
//! its own cycle time) and turns the gateway's frames into [`BatteryEvent`]s. It owns the protocol
//! half of the battery's comm-loss safety: a heartbeat counts only if its CRC matches and its alive
//! counter advanced (a repeated counter means a stuck sender or a replayed frame, AUTOSAR E2E
//! profile 1's "repeated" state); [`BatteryNode::command`] returns the zero command once no valid
//! heartbeat arrived for [`HEARTBEAT_TIMEOUT_S`] (the protocol's view, ten heartbeat cycles).
//! Each valid heartbeat is also a [`BatteryEvent::Command`] for the firmware, whose own
//! `melv_bms::COMMAND_TIMEOUT_S` (10 s, sized for a 1 s control loop) is its independent safe state:
//! a caller that obeys [`BatteryNode::command`] gets the stricter 1 s, one that only forwards the
//! events gets the firmware's 10 s.

use crate::frame::{CanFrame, SignalDef};
use crate::messages::{sig, MessageKind, UnitIndex};
use crate::repr::{
    CellsRepr, DecodeError, EncodeError, EnergyRepr, ErrorClass, HealthRepr, IdentRepr, Message,
    PowerRepr, StatusRepr,
};
use melv_core::status::{BatteryCommand, BatteryStatus, UnitRequest};
use melv_core::SocLed;
use serde::Serialize;

/// A battery that hears no valid heartbeat for this long stops exchanging power, s. Ten GW_CMD
/// cycles (100 ms): one lost frame is noise, ten in a row is a broken link. The same figure as the
/// gateway's verdict, so both ends give up at the same moment.
pub const HEARTBEAT_TIMEOUT_S: f64 = 1.0;
/// Largest alive-counter step still accepted as the next heartbeat: up to 9 frames lost in between
/// (AUTOSAR E2E "MaxDeltaCounter"). A bigger jump resynchronises without accepting the frame.
pub const MAX_COUNTER_DELTA: u8 = 10;
/// Within one gateway session, a request whose sequence number is ahead of the last delivered one
/// by 1..=this is new; 0 is a repeat, anything else an old request played again (serial-number
/// arithmetic, RFC 1982, over the 8-bit RequestSeq: half the circle is "ahead").
pub const REQUEST_SEQ_WINDOW: u8 = 127;
/// Earlier gateway sessions a battery remembers, so that a request recorded before a gateway
/// restart and played again afterwards is refused. Eight restarts back; the gateway's boot counter
/// (16 bits) repeats a value only after 65 536 boots.
pub const REMEMBERED_SESSIONS: usize = 8;

/// What the battery's serial number and firmware version are; reported in BAT_IDENT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BatteryIdentity {
    pub serial: u32,
    pub firmware: (u8, u8, u8),
}

/// Counters of everything a node received and refused. Nothing is dropped silently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RxStats {
    /// Frames decoded and used.
    pub accepted: u64,
    /// Valid frames not addressed to this node (other units' traffic, own echo).
    pub ignored: u64,
    /// Frames whose values, enumerations or CRC are wrong.
    pub malformed: u64,
    /// Frames with an id outside the protocol.
    pub unknown_id: u64,
    /// Frames with a known id and the wrong DLC.
    pub wrong_length: u64,
    /// Heartbeats whose alive counter did not advance (not valid heartbeats).
    pub stale_heartbeats: u64,
    /// Heartbeats whose alive counter jumped by more than [`MAX_COUNTER_DELTA`].
    pub counter_jumps: u64,
    /// Frames from a unit the gateway was not configured for (an addressing mistake).
    pub unconfigured_unit: u64,
    /// Requests refused as replays: an older sequence number of the current gateway session, or
    /// any request of an earlier session (see [`RequestHistory`]).
    pub replayed_requests: u64,
}

impl RxStats {
    pub(crate) fn count_error(&mut self, e: &DecodeError) {
        match e.class() {
            ErrorClass::Malformed => self.malformed += 1,
            ErrorClass::UnknownId => self.unknown_id += 1,
            ErrorClass::WrongLength => self.wrong_length += 1,
        }
    }
    /// All refused frames.
    pub fn errors(&self) -> u64 {
        self.malformed + self.unknown_id + self.wrong_length
    }
}

/// When each cyclic message is next due. Returns at most one frame per message per poll: a caller
/// that steps more coarsely than a cycle time gets one frame per step, never a backlog.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cycle {
    next_due_s: Option<f64>,
}

impl Cycle {
    pub(crate) fn due(&mut self, now_s: f64, cycle_ms: u32) -> bool {
        let period = f64::from(cycle_ms) / 1000.0;
        // A microsecond of slack absorbs float drift from summing periods.
        match self.next_due_s {
            Some(t) if now_s + 1e-6 < t => false,
            Some(t) => {
                let next = t + period;
                self.next_due_s = Some(if next <= now_s { now_s + period } else { next });
                true
            }
            None => {
                self.next_due_s = Some(now_s + period);
                true
            }
        }
    }
}

/// What a battery makes of a GW_REQUEST: the (session, sequence) pair decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A request not delivered before: act on it.
    New,
    /// A repetition of the request just delivered (the gateway sends each one 3 times).
    Repeat,
    /// An old request played again (an earlier sequence number, or an earlier gateway session).
    Replay,
}

/// The requests a battery has delivered: the current gateway session with its last sequence
/// number, and the sessions before it.
///
/// A restarted gateway counts its sequence numbers from 0 again, so a sequence number alone cannot
/// tell a new request from a repeat (a Shutdown with seq 0 after a reboot was taken for a repeat of
/// the seq 0 before it). With the gateway's boot counter as the session, a request of a session the
/// battery has not seen starts a new sequence, and a request of a session it has seen end is a
/// replay (a recorded frame played back, a stuck buffer).
#[derive(Debug, Clone, Default)]
pub struct RequestHistory {
    current: Option<(u16, u8)>,
    earlier: [Option<u16>; REMEMBERED_SESSIONS],
    next_earlier: usize,
}

impl RequestHistory {
    /// Decide on a request of `session` with sequence number `seq`, and remember it when new.
    pub fn admit(&mut self, session: u16, seq: u8) -> Admission {
        match self.current {
            Some((s, last)) if s == session => match seq.wrapping_sub(last) {
                0 => Admission::Repeat,
                d if d <= REQUEST_SEQ_WINDOW => {
                    self.current = Some((s, seq));
                    Admission::New
                }
                _ => Admission::Replay,
            },
            _ if self.earlier.contains(&Some(session)) => Admission::Replay,
            current => {
                if let Some((s, _)) = current {
                    self.earlier[self.next_earlier] = Some(s);
                    self.next_earlier = (self.next_earlier + 1) % REMEMBERED_SESSIONS;
                }
                self.current = Some((session, seq));
                Admission::New
            }
        }
    }
}

/// What the gateway told this battery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BatteryEvent {
    /// A valid heartbeat with the standing order.
    Command(BatteryCommand),
    /// A one-shot request (delivered once, however often the gateway repeats it).
    Request(UnitRequest),
    /// The gateway's UTC clock.
    Time { unix_time_ms: u64 },
}

/// The kinds the battery sends, in the order it sends them when several are due.
const BATTERY_KINDS: [MessageKind; 6] = [
    MessageKind::BatStatus,
    MessageKind::BatPower,
    MessageKind::BatHealth,
    MessageKind::BatCells,
    MessageKind::BatEnergy,
    MessageKind::BatIdent,
];

/// A battery's CAN endpoint.
#[derive(Debug, Clone)]
pub struct BatteryNode {
    unit: UnitIndex,
    identity: BatteryIdentity,
    cycles: [Cycle; 6],
    last_counter: Option<u8>,
    last_heartbeat_s: Option<f64>,
    command: BatteryCommand,
    requests: RequestHistory,
    stats: RxStats,
}

/// Clamp a value into a signal's declared range (NaN passes through, and emit refuses it): the
/// battery keeps reporting a saturated reading rather than falling silent over one odd value.
fn fit(s: &SignalDef, v: f64) -> f64 {
    if v.is_nan() {
        v
    } else {
        v.clamp(s.min, s.max)
    }
}

impl BatteryNode {
    pub fn new(unit: UnitIndex, identity: BatteryIdentity) -> Self {
        Self {
            unit,
            identity,
            cycles: Default::default(),
            last_counter: None,
            last_heartbeat_s: None,
            command: BatteryCommand::default(),
            requests: RequestHistory::default(),
            stats: RxStats::default(),
        }
    }

    /// The serial number and firmware version this node announces (BAT_IDENT).
    pub fn identity(&self) -> BatteryIdentity {
        self.identity
    }

    pub fn unit(&self) -> UnitIndex {
        self.unit
    }
    pub fn stats(&self) -> RxStats {
        self.stats
    }

    /// The message of `kind` that reports `status`.
    pub fn message(&self, kind: MessageKind, st: &BatteryStatus) -> Option<Message> {
        let u = self.unit;
        Some(match kind {
            MessageKind::BatStatus => Message::Status(
                u,
                StatusRepr {
                    soc_pct: fit(&sig::SOC, st.soc * 100.0),
                    pack_v: fit(&sig::PACK_VOLTAGE, st.pack_v),
                    pack_current_a: fit(&sig::PACK_CURRENT, st.pack_current_a),
                    ac_power_w: fit(&sig::AC_POWER, st.ac_power_w),
                },
            ),
            MessageKind::BatPower => Message::Power(
                u,
                PowerRepr {
                    reactive_power_var: fit(&sig::REACTIVE_POWER, st.reactive_power_var),
                    max_charge_w: fit(&sig::MAX_CHARGE_POWER, st.max_charge_w),
                    max_discharge_w: fit(&sig::MAX_DISCHARGE_POWER, st.max_discharge_w),
                    lifecycle: st.lifecycle,
                    status_led: st.status_led,
                    soc_led_percent: match st.soc_led {
                        SocLed::Off => None,
                        SocLed::SolidBlue { percent } => Some(percent.min(100)),
                    },
                },
            ),
            MessageKind::BatHealth => Message::Health(
                u,
                HealthRepr {
                    alerts: st.alerts,
                    soh_pct: fit(&sig::SOH, st.soh * 100.0),
                },
            ),
            MessageKind::BatCells => Message::Cells(
                u,
                CellsRepr {
                    min_cell_v: fit(&sig::MIN_CELL_VOLTAGE, st.min_cell_v),
                    max_cell_v: fit(&sig::MAX_CELL_VOLTAGE, st.max_cell_v),
                    min_temp_c: fit(&sig::MIN_TEMPERATURE, st.min_temp_c),
                    max_temp_c: fit(&sig::MAX_TEMPERATURE, st.max_temp_c),
                },
            ),
            MessageKind::BatEnergy => Message::Energy(
                u,
                EnergyRepr {
                    ac_charged_wh: fit(&sig::AC_CHARGED_ENERGY, st.ac_charged_wh),
                    ac_discharged_wh: fit(&sig::AC_DISCHARGED_ENERGY, st.ac_discharged_wh),
                },
            ),
            MessageKind::BatIdent => Message::Ident(
                u,
                IdentRepr {
                    serial: self.identity.serial,
                    firmware: self.identity.firmware,
                    unit_index: u,
                },
            ),
            MessageKind::GwTime | MessageKind::GwCmd | MessageKind::GwRequest => return None,
        })
    }

    /// Every battery message for `status`, regardless of cycle times (a full snapshot).
    pub fn encode_all(&self, status: &BatteryStatus) -> Result<Vec<CanFrame>, EncodeError> {
        BATTERY_KINDS
            .iter()
            .filter_map(|k| self.message(*k, status))
            .map(|m| m.emit())
            .collect()
    }

    /// The frames due at `now_s`. Call at least every 100 ms for the protocol's real cycle times.
    pub fn poll_transmit(
        &mut self,
        now_s: f64,
        status: &BatteryStatus,
    ) -> Result<Vec<CanFrame>, EncodeError> {
        let mut out = Vec::new();
        for (i, kind) in BATTERY_KINDS.iter().enumerate() {
            if self.cycles[i].due(now_s, kind.def().cycle_ms) {
                if let Some(m) = self.message(*kind, status) {
                    out.push(m.emit()?);
                }
            }
        }
        Ok(out)
    }

    /// Take in one frame heard on the bus. Refused frames are counted in [`Self::stats`].
    pub fn handle_frame(&mut self, now_s: f64, frame: &CanFrame) -> Option<BatteryEvent> {
        let msg = match Message::parse(frame) {
            Ok(m) => m,
            Err(e) => {
                self.stats.count_error(&e);
                return None;
            }
        };
        let event = match msg {
            Message::Time(t) => Some(BatteryEvent::Time {
                unix_time_ms: t.unix_time_ms,
            }),
            Message::Cmd(u, c) if u == self.unit => {
                let delta = self
                    .last_counter
                    .map(|last| c.alive_counter.wrapping_sub(last));
                match delta {
                    Some(0) => {
                        self.stats.stale_heartbeats += 1;
                        return None;
                    }
                    Some(d) if d > MAX_COUNTER_DELTA => {
                        self.stats.counter_jumps += 1;
                        self.last_counter = Some(c.alive_counter);
                        return None;
                    }
                    _ => {}
                }
                self.last_counter = Some(c.alive_counter);
                self.last_heartbeat_s = Some(now_s);
                self.command = BatteryCommand {
                    active_power_w: c.active_power_w,
                    reactive_power_var: c.reactive_power_var,
                    grid_forming: c.grid_forming,
                };
                Some(BatteryEvent::Command(self.command))
            }
            Message::Request(u, r) if u == self.unit => {
                match self.requests.admit(r.session, r.seq) {
                    Admission::New => Some(BatteryEvent::Request(r.request)),
                    // A repetition of a request already delivered.
                    Admission::Repeat => None,
                    Admission::Replay => {
                        self.stats.replayed_requests += 1;
                        return None;
                    }
                }
            }
            _ => None,
        };
        if event.is_some() {
            self.stats.accepted += 1;
        } else {
            self.stats.ignored += 1;
        }
        event
    }

    /// Whether a valid heartbeat arrived within [`HEARTBEAT_TIMEOUT_S`].
    pub fn heartbeat_ok(&self, now_s: f64) -> bool {
        self.last_heartbeat_s
            .is_some_and(|t| now_s - t <= HEARTBEAT_TIMEOUT_S)
    }

    /// The order to obey now: the last valid one, or zero power (the safe state) once the
    /// heartbeat is lost or before the first one.
    pub fn command(&self, now_s: f64) -> BatteryCommand {
        if self.heartbeat_ok(now_s) {
            self.command
        } else {
            BatteryCommand::default()
        }
    }
}
