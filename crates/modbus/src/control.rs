//! External control: the commands that Modbus writes become, and the watchdog that ends them.
//!
//! Writes change registers; after each accepted write the device derives one typed
//! [`ExternalCommand`] from the registers of the control it touched (so that a client writing
//! `InWRte` and `StorCtl_Mod` in two requests ends with the same command as one writing both in
//! one). [`ControlState`] keeps the commands in force and ends them:
//! * by the models' own revert timers (124 `InOutWRte_RvrtTms`, 704 `WMaxLimPctRvrtTms` and
//!   `WSetRvrtTms`; 0 means "no reversion", as the models define it), and
//! * by a communication watchdog: when no write (and no change of 802 `CtrlHb`) has come for
//!   [`WatchdogConfig::comm_timeout_s`], every external command ends and the site runs its own
//!   working mode again.
//!
//! Between several clients, one owns the controls at a time ([`ControlState::claim`]): the last
//! client that wrote holds them until its watchdog expires (no write from it for
//! [`WatchdogConfig::comm_timeout_s`]) or until it leaves nothing in force; meanwhile any write
//! from another client is refused with exception 06 "server device busy" (Modbus Application
//! Protocol V1.1b3, 7: "the server is engaged in processing a long-duration program command ...
//! the client should retransmit the message later"). So two controllers never fight over the
//! battery unseen, and the one that is refused learns it at once.
//!
//! Sans-IO: time is `now_s` (monotonic seconds) passed in.

use serde::Serialize;
use std::net::IpAddr;

/// Who wrote: a Modbus TCP client, known by its IP address (not its port, so that a controller
/// that reconnects, as evcc and Home Assistant do after a network hiccup, is still the owner), or
/// the gateway process itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientId {
    Local,
    Peer(IpAddr),
}

/// A write refused because another client owns the controls (exception 06).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("the controls are held by {owner:?} for {remaining_s:.0} s more (its watchdog)")]
pub struct Busy {
    pub owner: ClientId,
    pub remaining_s: f64,
}

/// 802 `SetInvState` (model_802.json symbols).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InverterState {
    Stopped = 1,
    Standby = 2,
    Started = 3,
}

/// The watchdog's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WatchdogConfig {
    /// External commands end when no client has written for this long, s. Default 900 s: one
    /// imbalance settlement period (15 min, EU Electricity Balancing Guideline 2017/2195 Art. 53),
    /// the same notice the EMS gives after an aggregator's setpoint expires. evcc's `watchdog`
    /// option and Home Assistant automations re-write well within it.
    pub comm_timeout_s: f64,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        Self {
            comm_timeout_s: 900.0,
        }
    }
}

/// What a Modbus write asks of the site. Powers in W, site battery power positive = discharge.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum ExternalCommand {
    /// Model 124 storage rates: the site's battery power must stay within
    /// `-charge_limit_w ..= discharge_limit_w`. A negative limit forces the other direction
    /// (`discharge_limit_w < 0` forces charging). `None`: that side is not limited.
    StorageRates {
        charge_limit_w: Option<f64>,
        discharge_limit_w: Option<f64>,
        revert_after_s: Option<f64>,
    },
    /// Model 704 `WMaxLimPct`: discharge (DER output) limited to `max_w`. `None`: no limit.
    OutputLimit {
        max_w: Option<f64>,
        revert_after_s: Option<f64>,
    },
    /// Model 704 `WSet`/`WSetPct`: follow this site battery power. `None`: setpoint off.
    Setpoint {
        power_w: Option<f64>,
        revert_after_s: Option<f64>,
    },
    /// Model 124 `MinRsvPct` or 802 `SoCRsvMin`: backup reserve SOC, 0..=1.
    Reserve { soc: f64 },
    /// Model 124 `ChaGriSet`: may the batteries charge from the grid (`GRID`) or only from PV (`PV`).
    GridCharging { allowed: bool },
    /// Model 802 `AlmRst` = 1: reset latched alarms (the manual's "reset the system", 6.3).
    ResetAlarms,
    /// Model 802 `CtrlHb` written: the external controller is alive.
    Heartbeat,
    /// Model 802 `SetOp`: CONNECT (`true`) or DISCONNECT (`false`) the battery bank. Disconnected,
    /// the batteries exchange no power (as far as the safety layers allow).
    SetOperation { connect: bool },
    /// Model 802 `SetInvState`: STOPPED and STANDBY hold the batteries at zero power, STARTED
    /// lets them run.
    SetInverterState { state: InverterState },
}

/// Which control a revert or the watchdog ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    StorageRates,
    OutputLimit,
    Setpoint,
    Reserve,
    GridCharging,
    /// 802 `SetOp` = DISCONNECT or `SetInvState` = STOPPED/STANDBY.
    Stop,
}

/// The external controls in force this cycle, as one value the gateway applies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ExternalControl {
    /// Lowest allowed site battery power, W (negative = charging); `-inf` when not limited.
    pub min_w: f64,
    /// Highest allowed site battery power, W; `+inf` when not limited.
    pub max_w: f64,
    /// Site battery power to follow, W, positive = discharge.
    pub setpoint_w: Option<f64>,
    pub reserve_soc: Option<f64>,
    pub grid_charging: Option<bool>,
    /// The batteries are stopped remotely (802 `SetOp` or `SetInvState`): `min_w = max_w = 0`.
    pub stopped: bool,
}

impl ExternalControl {
    /// Nothing external: the site's own working mode.
    pub const NONE: Self = Self {
        min_w: f64::NEG_INFINITY,
        max_w: f64::INFINITY,
        setpoint_w: None,
        reserve_soc: None,
        grid_charging: None,
        stopped: false,
    };

    /// Whether any external control is in force (802 `LocRemCtl` reads REMOTE).
    pub fn is_active(&self) -> bool {
        *self != Self::NONE
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Timed<T> {
    value: T,
    /// Monotonic seconds at which it reverts; `None` = no revert timer.
    until_s: Option<f64>,
}

impl<T> Timed<T> {
    fn new(value: T, now_s: f64, revert_after_s: Option<f64>) -> Self {
        Self {
            value,
            until_s: revert_after_s.filter(|s| *s > 0.0).map(|s| now_s + s),
        }
    }
    fn remaining_s(&self, now_s: f64) -> Option<f64> {
        self.until_s.map(|t| (t - now_s).max(0.0))
    }
}

/// The commands in force and their timers.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlState {
    cfg: WatchdogConfig,
    rates: Option<Timed<(Option<f64>, Option<f64>)>>,
    output: Option<Timed<f64>>,
    setpoint: Option<Timed<f64>>,
    reserve: Option<f64>,
    grid_charging: Option<bool>,
    disconnected: bool,
    inverter: Option<InverterState>,
    last_activity_s: Option<f64>,
    owner: Option<ClientId>,
}

impl ControlState {
    pub fn new(cfg: WatchdogConfig) -> Self {
        Self {
            cfg,
            rates: None,
            output: None,
            setpoint: None,
            reserve: None,
            grid_charging: None,
            disconnected: false,
            inverter: None,
            last_activity_s: None,
            owner: None,
        }
    }

    /// Whether `client` may write at `now_s`, and if so it becomes the owner. Another client's
    /// claim holds while its watchdog runs (call [`ControlState::expire`] first in a cycle: an
    /// expired watchdog has no owner left).
    pub fn claim(&mut self, client: ClientId, now_s: f64) -> Result<(), Busy> {
        if let (Some(owner), Some(t)) = (self.owner, self.last_activity_s) {
            let remaining_s = self.cfg.comm_timeout_s - (now_s - t);
            if owner != client && remaining_s > 0.0 {
                return Err(Busy { owner, remaining_s });
            }
        }
        self.owner = Some(client);
        Ok(())
    }

    /// The client that holds the controls, if any.
    pub fn owner(&self) -> Option<ClientId> {
        self.owner
    }

    /// After the owner's write: an owner that left nothing in force lets go at once (writing
    /// `StorCtl_Mod = 0` hands the site back and frees it for another controller).
    pub fn release_if_idle(&mut self) {
        if !self.current().is_active() {
            self.owner = None;
        }
    }

    /// The inverter state a client set (`None`: never set, or ended by the watchdog).
    pub fn inverter_state(&self) -> Option<InverterState> {
        self.inverter
    }

    /// Whether a client disconnected the bank (802 `SetOp` = DISCONNECT).
    pub fn disconnected(&self) -> bool {
        self.disconnected
    }

    pub fn config(&self) -> WatchdogConfig {
        self.cfg
    }

    /// Takes one command at `now_s`; every command also feeds the watchdog.
    pub fn handle(&mut self, now_s: f64, cmd: ExternalCommand) {
        self.last_activity_s = Some(now_s);
        match cmd {
            ExternalCommand::StorageRates {
                charge_limit_w,
                discharge_limit_w,
                revert_after_s,
            } => {
                self.rates = (charge_limit_w.is_some() || discharge_limit_w.is_some()).then(|| {
                    Timed::new((charge_limit_w, discharge_limit_w), now_s, revert_after_s)
                });
            }
            ExternalCommand::OutputLimit {
                max_w,
                revert_after_s,
            } => self.output = max_w.map(|w| Timed::new(w, now_s, revert_after_s)),
            ExternalCommand::Setpoint {
                power_w,
                revert_after_s,
            } => self.setpoint = power_w.map(|w| Timed::new(w, now_s, revert_after_s)),
            ExternalCommand::Reserve { soc } => self.reserve = Some(soc),
            ExternalCommand::GridCharging { allowed } => self.grid_charging = Some(allowed),
            ExternalCommand::SetOperation { connect } => self.disconnected = !connect,
            ExternalCommand::SetInverterState { state } => {
                self.inverter = (state != InverterState::Started).then_some(state)
            }
            ExternalCommand::ResetAlarms | ExternalCommand::Heartbeat => {}
        }
    }

    /// Ends what is due at `now_s` and returns the controls that ended (their registers must read
    /// the reverted state again). The watchdog ends everything at once.
    pub fn expire(&mut self, now_s: f64) -> Vec<Control> {
        let mut ended = Vec::new();
        let quiet = self
            .last_activity_s
            .is_some_and(|t| now_s - t >= self.cfg.comm_timeout_s);
        let due = |until: Option<f64>| quiet || until.is_some_and(|t| now_s >= t);
        if self.rates.is_some_and(|r| due(r.until_s)) {
            self.rates = None;
            ended.push(Control::StorageRates);
        }
        if self.output.is_some_and(|r| due(r.until_s)) {
            self.output = None;
            ended.push(Control::OutputLimit);
        }
        if self.setpoint.is_some_and(|r| due(r.until_s)) {
            self.setpoint = None;
            ended.push(Control::Setpoint);
        }
        if quiet && self.reserve.take().is_some() {
            ended.push(Control::Reserve);
        }
        if quiet && self.grid_charging.take().is_some() {
            ended.push(Control::GridCharging);
        }
        if quiet && (std::mem::take(&mut self.disconnected) | self.inverter.take().is_some()) {
            ended.push(Control::Stop);
        }
        if quiet {
            self.last_activity_s = None;
            self.owner = None;
        }
        ended
    }

    /// Seconds left on a control's revert timer (`None`: not in force or no timer).
    pub fn remaining_s(&self, c: Control, now_s: f64) -> Option<f64> {
        match c {
            Control::StorageRates => self.rates.and_then(|r| r.remaining_s(now_s)),
            Control::OutputLimit => self.output.and_then(|r| r.remaining_s(now_s)),
            Control::Setpoint => self.setpoint.and_then(|r| r.remaining_s(now_s)),
            Control::Reserve | Control::GridCharging | Control::Stop => None,
        }
    }

    /// The controls in force (call [`ControlState::expire`] first in a cycle).
    pub fn current(&self) -> ExternalControl {
        let mut c = ExternalControl::NONE;
        if let Some(r) = self.rates {
            let (charge, discharge) = r.value;
            if let Some(w) = charge {
                c.min_w = -w;
            }
            if let Some(w) = discharge {
                c.max_w = w;
            }
        }
        if let Some(o) = self.output {
            c.max_w = c.max_w.min(o.value);
        }
        if c.min_w > c.max_w {
            // Contradictory limits (e.g. a forced discharge above the output limit): the lower
            // bound gives way, so the tighter "less discharge" reading wins, the safe side for a
            // grid that asked for a limit.
            c.min_w = c.max_w;
        }
        c.setpoint_w = self.setpoint.map(|s| s.value);
        c.reserve_soc = self.reserve;
        c.grid_charging = self.grid_charging;
        if self.disconnected || self.inverter.is_some() {
            // A remote stop overrides every power control: nothing in, nothing out.
            c.stopped = true;
            c.min_w = 0.0;
            c.max_w = 0.0;
            c.setpoint_w = None;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(charge: Option<f64>, discharge: Option<f64>, revert: Option<f64>) -> ExternalCommand {
        ExternalCommand::StorageRates {
            charge_limit_w: charge,
            discharge_limit_w: discharge,
            revert_after_s: revert,
        }
    }

    /// Feeds `(time, command)` pairs, expires at `at_s`, compares the controls in force.
    fn check(cmds: &[(f64, ExternalCommand)], at_s: f64, expected: ExternalControl) {
        let mut s = ControlState::new(WatchdogConfig {
            comm_timeout_s: 100.0,
        });
        for (t, c) in cmds {
            s.expire(*t);
            s.handle(*t, *c);
        }
        s.expire(at_s);
        assert_eq!(s.current(), expected, "{cmds:?} at {at_s}");
    }

    fn window(min_w: f64, max_w: f64) -> ExternalControl {
        ExternalControl {
            min_w,
            max_w,
            ..ExternalControl::NONE
        }
    }

    #[test]
    fn commands_become_controls_and_revert() {
        let inf = f64::INFINITY;
        check(&[], 0.0, ExternalControl::NONE);
        check(
            &[(0.0, rates(Some(1000.0), None, None))],
            50.0,
            window(-1000.0, inf),
        );
        check(
            &[(0.0, rates(None, Some(-500.0), None))],
            50.0,
            window(-inf, -500.0),
        );
        // The model's revert timer: in force before, gone at the deadline.
        check(
            &[(0.0, rates(Some(1000.0), None, Some(10.0)))],
            9.9,
            window(-1000.0, inf),
        );
        check(
            &[(0.0, rates(Some(1000.0), None, Some(10.0)))],
            10.0,
            ExternalControl::NONE,
        );
        // A revert time of 0 means "no reversion".
        check(
            &[(0.0, rates(Some(1000.0), None, Some(0.0)))],
            99.0,
            window(-1000.0, inf),
        );
        // The watchdog: 100 s of silence ends everything.
        check(
            &[(0.0, rates(Some(1000.0), None, None))],
            100.0,
            ExternalControl::NONE,
        );
        check(
            &[(0.0, ExternalCommand::Reserve { soc: 0.3 })],
            100.0,
            ExternalControl::NONE,
        );
        // A heartbeat keeps it alive.
        check(
            &[
                (0.0, rates(Some(1000.0), None, None)),
                (90.0, ExternalCommand::Heartbeat),
            ],
            150.0,
            window(-1000.0, inf),
        );
        // The output limit tightens the discharge side; contradictory bounds give way downwards.
        check(
            &[
                (0.0, rates(Some(-3000.0), None, None)),
                (
                    1.0,
                    ExternalCommand::OutputLimit {
                        max_w: Some(2000.0),
                        revert_after_s: None,
                    },
                ),
            ],
            2.0,
            window(2000.0, 2000.0),
        );
        check(
            &[(
                0.0,
                ExternalCommand::Setpoint {
                    power_w: Some(-1500.0),
                    revert_after_s: Some(5.0),
                },
            )],
            4.0,
            ExternalControl {
                setpoint_w: Some(-1500.0),
                ..ExternalControl::NONE
            },
        );
        check(
            &[(0.0, ExternalCommand::GridCharging { allowed: false })],
            4.0,
            ExternalControl {
                grid_charging: Some(false),
                ..ExternalControl::NONE
            },
        );
        // Turning a control off is a command too.
        check(
            &[
                (0.0, rates(Some(1000.0), None, None)),
                (1.0, rates(None, None, None)),
            ],
            2.0,
            ExternalControl::NONE,
        );
    }

    #[test]
    fn expire_reports_what_ended_and_remaining_time_counts_down() {
        let mut s = ControlState::new(WatchdogConfig {
            comm_timeout_s: 100.0,
        });
        s.handle(0.0, rates(Some(1.0), None, Some(30.0)));
        s.handle(0.0, ExternalCommand::GridCharging { allowed: true });
        assert_eq!(s.remaining_s(Control::StorageRates, 10.0), Some(20.0));
        assert_eq!(s.expire(30.0), vec![Control::StorageRates]);
        assert_eq!(s.remaining_s(Control::StorageRates, 31.0), None);
        assert_eq!(s.expire(100.0), vec![Control::GridCharging]);
        assert!(!s.current().is_active());
    }
}
