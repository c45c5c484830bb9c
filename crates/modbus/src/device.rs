//! The SunSpec device: the register map, the site's values, and what writes mean.
//!
//! [`SunSpecDevice`] is sans-IO. The gateway calls [`SunSpecDevice::update`] once per control
//! cycle with the site's values and reads [`SunSpecDevice::control`] to learn what external
//! clients ask; the server calls [`SunSpecDevice::read`] and [`SunSpecDevice::write`] for each
//! request. Writes are checked in three steps, each with its Modbus exception:
//! 1. the map: inside one model, aligned to points, every point writable by definition (02);
//! 2. the device: the point is one this device implements as a control (02 otherwise, the same
//!    answer as for an unmapped register, so clients learn it is not there);
//! 3. the value: in the point's range, a known enumeration value, allowed at this site (03).
//!
//! Only then are the registers stored and the command derived.

use crate::control::{
    ClientId, Control, ControlState, ExternalCommand, ExternalControl, InverterState,
    WatchdogConfig,
};
use crate::map::{decode, MapError, PointWrite, SunSpecMap};
use crate::values::{fill_dynamic, fill_static, Nameplate, SiteSnapshot};
use melv_core::GridCharging;
use std::collections::VecDeque;

/// Commands kept for the gateway to collect; older ones are dropped beyond this (the controls in
/// force never are: they live in [`ControlState`]).
pub const EVENT_QUEUE: usize = 64;

/// The control points this device implements, by model. Every other writable point of the models
/// answers exception 02.
const CONTROL_POINTS: &[(u16, &[&str])] = &[
    (
        124,
        &[
            "StorCtl_Mod",
            "OutWRte",
            "InWRte",
            "InOutWRte_RvrtTms",
            "MinRsvPct",
            "ChaGriSet",
        ],
    ),
    (
        704,
        &[
            "WMaxLimPctEna",
            "WMaxLimPct",
            "WMaxLimPctRvrtTms",
            "WSetEna",
            "WSetMod",
            "WSet",
            "WSetPct",
            "WSetRvrtTms",
        ],
    ),
    (
        802,
        &["SoCRsvMin", "CtrlHb", "AlmRst", "SetOp", "SetInvState"],
    ),
];

/// One SunSpec device: map, nameplate, external control.
#[derive(Debug, Clone)]
pub struct SunSpecDevice {
    map: SunSpecMap,
    nameplate: Nameplate,
    control: ControlState,
    events: VecDeque<(f64, ExternalCommand)>,
    owner_reserve_soc: f64,
}

impl SunSpecDevice {
    /// The standard models with the nameplate's values.
    pub fn new(nameplate: Nameplate, watchdog: WatchdogConfig) -> Result<Self, MapError> {
        let mut map = SunSpecMap::standard(nameplate.batteries)?;
        fill_static(&mut map, &nameplate)?;
        let mut d = Self {
            map,
            nameplate,
            control: ControlState::new(watchdog),
            events: VecDeque::new(),
            owner_reserve_soc: 0.0,
        };
        d.refresh_control_points(0.0)?;
        Ok(d)
    }

    /// Whether a client may write `model.point` on this device (the points of `CONTROL_POINTS`).
    pub fn is_control_point(model: u16, point: &str) -> bool {
        CONTROL_POINTS
            .iter()
            .any(|(m, ps)| *m == model && ps.contains(&point))
    }

    pub fn map(&self) -> &SunSpecMap {
        &self.map
    }
    pub fn nameplate(&self) -> &Nameplate {
        &self.nameplate
    }

    /// One control cycle: the site's values, revert timers and the watchdog.
    pub fn update(&mut self, now_s: f64, snap: &SiteSnapshot) -> Result<(), MapError> {
        self.owner_reserve_soc = snap.reserve_soc;
        fill_dynamic(&mut self.map, &self.nameplate, snap)?;
        self.expire(now_s)
    }

    /// Ends what is due (revert timers, watchdog) and shows it in the registers.
    pub fn expire(&mut self, now_s: f64) -> Result<(), MapError> {
        for c in self.control.expire(now_s) {
            match c {
                Control::StorageRates => self.map.set_int(124, "StorCtl_Mod", 0)?,
                Control::OutputLimit => self.map.set_int(704, "WMaxLimPctEna", 0)?,
                Control::Setpoint => self.map.set_int(704, "WSetEna", 0)?,
                Control::Reserve | Control::GridCharging | Control::Stop => {}
            }
        }
        self.refresh_control_points(now_s)
    }

    /// The external controls in force (after [`SunSpecDevice::update`] of this cycle).
    pub fn control(&self) -> ExternalControl {
        self.control.current()
    }

    /// The client that holds the controls, if any.
    pub fn owner(&self) -> Option<ClientId> {
        self.control.owner()
    }

    /// Commands received since the last call, oldest first, with their time.
    pub fn take_events(&mut self) -> Vec<(f64, ExternalCommand)> {
        self.events.drain(..).collect()
    }

    /// Registers for function codes 3 and 4.
    pub fn read(&self, addr: u16, count: u16) -> Result<Vec<u16>, MapError> {
        self.map.read(addr, count).map(<[u16]>::to_vec)
    }

    /// A write by the gateway itself ([`ClientId::Local`]); see [`SunSpecDevice::write_from`].
    pub fn write(&mut self, now_s: f64, addr: u16, values: &[u16]) -> Result<(), MapError> {
        self.write_from(ClientId::Local, now_s, addr, values)
    }

    /// A write (function codes 6 and 16) by `client` at `now_s`: all or nothing. A write that is
    /// valid in itself but comes from a client other than the one holding the controls answers
    /// [`MapError::Busy`] (exception 06; the ownership rule is [`ControlState::claim`]'s).
    pub fn write_from(
        &mut self,
        client: ClientId,
        now_s: f64,
        addr: u16,
        values: &[u16],
    ) -> Result<(), MapError> {
        let writes = self.map.check_write(addr, values)?;
        for w in &writes {
            self.check_point(addr, values.len() as u16, w)?;
        }
        // The previous owner's watchdog may have run out since the last cycle.
        self.expire(now_s)?;
        self.control
            .claim(client, now_s)
            .map_err(|b| MapError::Busy {
                addr,
                count: values.len() as u16,
                reason: b.to_string(),
            })?;
        for w in &writes {
            self.map.put_regs(w.model, &w.point, &w.regs)?;
        }
        // Derive one command per control touched, from the registers as they now stand.
        let touched = |model: u16, names: &[&str]| {
            writes
                .iter()
                .any(|w| w.model == model && names.contains(&w.point.as_str()))
        };
        let mut cmds = Vec::new();
        if touched(
            124,
            &["StorCtl_Mod", "OutWRte", "InWRte", "InOutWRte_RvrtTms"],
        ) {
            cmds.push(self.storage_rates()?);
        }
        if touched(704, &["WMaxLimPctEna", "WMaxLimPct", "WMaxLimPctRvrtTms"]) {
            cmds.push(self.output_limit()?);
        }
        if touched(
            704,
            &["WSetEna", "WSetMod", "WSet", "WSetPct", "WSetRvrtTms"],
        ) {
            cmds.push(self.setpoint()?);
        }
        for w in &writes {
            let raw = self.int(w.model, &w.point)?;
            match (w.model, w.point.as_str()) {
                (124, "MinRsvPct") | (802, "SoCRsvMin") => cmds.push(ExternalCommand::Reserve {
                    soc: self.pct_reg(w.model, &w.point)?,
                }),
                (124, "ChaGriSet") => {
                    cmds.push(ExternalCommand::GridCharging { allowed: raw == 1 })
                }
                (802, "AlmRst") if raw == 1 => {
                    cmds.push(ExternalCommand::ResetAlarms);
                    // A one-shot: it reads 0 again once taken.
                    self.map.set_int(802, "AlmRst", 0)?;
                }
                (802, "CtrlHb") => cmds.push(ExternalCommand::Heartbeat),
                (802, "SetOp") => cmds.push(ExternalCommand::SetOperation { connect: raw == 1 }),
                (802, "SetInvState") => cmds.push(ExternalCommand::SetInverterState {
                    state: match raw {
                        1 => InverterState::Stopped,
                        2 => InverterState::Standby,
                        _ => InverterState::Started,
                    },
                }),
                _ => {}
            }
        }
        for c in cmds {
            self.control.handle(now_s, c);
            if self.events.len() == EVENT_QUEUE {
                self.events.pop_front();
            }
            self.events.push_back((now_s, c));
        }
        self.control.release_if_idle();
        self.refresh_control_points(now_s)
    }

    fn int(&self, model: u16, point: &str) -> Result<i64, MapError> {
        Ok(self.map.get_int(model, point)?.unwrap_or(0))
    }

    /// Step 2 and 3 of a write: implemented here, and a value the point may take.
    fn check_point(&self, addr: u16, count: u16, w: &PointWrite) -> Result<(), MapError> {
        // The per-unit 802s are read-only: the bank is controlled as one through the first.
        if !Self::is_control_point(w.model, &w.point) || w.instance != 0 {
            return Err(MapError::IllegalAddress {
                addr,
                count,
                reason: format!(
                    "model {}, point {} is not implemented by this device",
                    w.model, w.point
                ),
            });
        }
        let def = self
            .map
            .model(w.model)
            .and_then(|m| m.def.point(&w.point))
            .ok_or_else(|| MapError::UnknownPoint {
                model: w.model,
                point: w.point.clone(),
            })?;
        // The controller heartbeat takes any value: a client counting up passes 65535 (0xFFFF, which
        // is "not implemented" for other uint16 points) and wraps to 0.
        if (w.model, w.point.as_str()) == (802, "CtrlHb") {
            return Ok(());
        }
        let raw = decode(def.ty, &w.regs);
        let bad = |value: i64, reason: String| MapError::IllegalValue {
            model: w.model,
            point: w.point.clone(),
            value,
            reason,
        };
        let Some(v) = raw else {
            return Err(bad(0xFFFF, "is the \"not implemented\" value".into()));
        };
        // Enumerations take one of their symbols; bitfields are checked per point below.
        if !def.symbols.is_empty()
            && def.ty != crate::model::PointType::Bitfield16
            && !def.symbols.iter().any(|(_, s)| *s == v)
        {
            {
                let names: Vec<String> = def
                    .symbols
                    .iter()
                    .map(|(n, s)| format!("{s}={n}"))
                    .collect();
                return Err(bad(v, format!("is not one of {}", names.join(", "))));
            }
        }
        let sf = self.map.scale_of(w.model, &w.point)?;
        let scaled = v as f64 * 10f64.powi(sf as i32);
        let pct = |lo: f64| -> Result<(), MapError> {
            if (lo..=100.0).contains(&scaled) {
                Ok(())
            } else {
                Err(bad(v, format!("({scaled} %) is outside {lo} to 100 %")))
            }
        };
        match (w.model, w.point.as_str()) {
            (124, "StorCtl_Mod") if v > 3 => Err(bad(
                v,
                "sets bits other than CHARGE (0) and DISCHARGE (1)".into(),
            )),
            (124, "OutWRte" | "InWRte") | (704, "WSetPct") => pct(-100.0),
            (124, "MinRsvPct") | (704, "WMaxLimPct") | (802, "SoCRsvMin") => pct(0.0),
            (124, "ChaGriSet")
                if v == 1 && self.nameplate.grid_charging == GridCharging::Forbidden =>
            {
                Err(bad(
                    v,
                    "(GRID): grid charging of storage is forbidden at this site (manual 5.1 note)"
                        .into(),
                ))
            }
            (802, "AlmRst") if v > 1 => Err(bad(v, "is not 0 or 1 (1 = reset)".into())),
            _ => Ok(()),
        }
    }

    fn pct_reg(&self, model: u16, point: &str) -> Result<f64, MapError> {
        Ok(self.map.get_scaled(model, point)?.unwrap_or(0.0) / 100.0)
    }

    fn revert(&self, model: u16, point: &str) -> Result<Option<f64>, MapError> {
        Ok(Some(self.int(model, point)? as f64).filter(|s| *s > 0.0))
    }

    /// Model 124: `StorCtl_Mod` bit 0 (CHARGE) limits charging to `InWRte` % of `WChaMax`, bit 1
    /// (DISCHARGE) limits discharging to `OutWRte` % of the rated discharge power; a negative rate
    /// forces the other direction (the reading of SunSpec 124 that Fronius and SolarEdge devices
    /// implement, and that Home Assistant and evcc templates use).
    fn storage_rates(&self) -> Result<ExternalCommand, MapError> {
        let m = self.int(124, "StorCtl_Mod")?;
        let charge =
            (m & 1 != 0).then_some(self.pct_reg(124, "InWRte")? * self.nameplate.charge_w());
        let discharge =
            (m & 2 != 0).then_some(self.pct_reg(124, "OutWRte")? * self.nameplate.discharge_w());
        Ok(ExternalCommand::StorageRates {
            charge_limit_w: charge,
            discharge_limit_w: discharge,
            revert_after_s: self.revert(124, "InOutWRte_RvrtTms")?,
        })
    }

    /// Model 704 `WMaxLimPct`: a limit on DER output, that is on discharging (IEEE 1547-2018
    /// 4.6.2 limits active power generation; absorption is not limited by it).
    fn output_limit(&self) -> Result<ExternalCommand, MapError> {
        let on = self.int(704, "WMaxLimPctEna")? == 1;
        Ok(ExternalCommand::OutputLimit {
            max_w: on.then_some(self.pct_reg(704, "WMaxLimPct")? * self.nameplate.discharge_w()),
            revert_after_s: self.revert(704, "WMaxLimPctRvrtTms")?,
        })
    }

    /// Model 704 `WSet` (mode WATTS) or `WSetPct` (mode W_MAX_PCT, % of `WMaxRtg`).
    fn setpoint(&self) -> Result<ExternalCommand, MapError> {
        let on = self.int(704, "WSetEna")? == 1;
        let w = if self.int(704, "WSetMod")? == 1 {
            self.map.get_scaled(704, "WSet")?.unwrap_or(0.0)
        } else {
            self.pct_reg(704, "WSetPct")? * self.nameplate.discharge_w()
        };
        Ok(ExternalCommand::Setpoint {
            power_w: on.then_some(w),
            revert_after_s: self.revert(704, "WSetRvrtTms")?,
        })
    }

    /// Points that show the control state: remaining revert times, local/remote, reserve, ChaGriSet.
    fn refresh_control_points(&mut self, now_s: f64) -> Result<(), MapError> {
        let rem = |c| self.control.remaining_s(c, now_s);
        let (output, set) = (rem(Control::OutputLimit), rem(Control::Setpoint));
        // 124 has no remaining-time point; 704 has one per control.
        for (p, r) in [("WMaxLimPctRvrtRem", output), ("WSetRvrtRem", set)] {
            self.map.set_int(704, p, r.map_or(0, |s| s.ceil() as i64))?;
        }
        let c = self.control.current();
        self.map
            .set_int(802, "LocRemCtl", if c.is_active() { 0 } else { 1 })?;
        let reserve = c.reserve_soc.unwrap_or(self.owner_reserve_soc) * 100.0;
        self.map.set_scaled(124, "MinRsvPct", reserve)?;
        self.map.set_scaled(802, "SoCRsvMin", reserve)?;
        let grid = c
            .grid_charging
            .unwrap_or(self.nameplate.grid_charging == GridCharging::Permitted);
        self.map.set_int(124, "ChaGriSet", grid as i64)?;
        let op = if self.control.disconnected() { 2 } else { 1 };
        self.map.set_int(802, "SetOp", op)?;
        let inv = self
            .control
            .inverter_state()
            .unwrap_or(InverterState::Started);
        self.map.set_int(802, "SetInvState", inv as i64)?;
        Ok(())
    }
}
