//! The bridge from external controls to the gateway's energy manager ([`melv_ems::Controller`]).
//!
//! External commands take the same path as every other command: the reserve goes through
//! [`Controller::update_settings`] (the validation the cloud also runs), and powers go through
//! [`Controller::try_dispatch`] as an aggregator's setpoint, which the controller bounds by its hard
//! safety layers (each unit's limits, the reserve, the grid-charging policy, volt-watt) and its
//! grid-connection layers (import, export, phase limits). The decision's [`melv_ems::Reason`] then
//! says which layer had the last word, and the device publishes it (802 `StateVnd`).
//!
//! The controller has no "external limit" layer yet, and follows a dispatch only in grid-services
//! mode. With what exists, a cycle under external control runs as follows:
//! * a setpoint (704 `WSet`) is clamped into the limit window and dispatched, with the mode set to
//!   grid services for that one step;
//! * a limit window alone (124 rates, 704 `WMaxLimPct`, `ChaGriSet` = PV) first lets a copy of the
//!   controller run the owner's mode; if that wish lies inside the window the copy's step is the
//!   cycle's step (nothing external shows), otherwise the wish clamped into the window is
//!   dispatched as above.
//!
//! When the device's watchdog ends the external controls, the next cycle is the owner's mode
//! again, with the owner's settings. What the controller would need to do this natively is listed
//! in `docs/modbus.md` ("What the EMS would need").

use crate::control::{ExternalCommand, ExternalControl};
use melv_core::status::UnitRequest;
use melv_core::WorkingMode;
use melv_ems::{Controller, ExternalDispatch, Settings, SettingsError, SiteInputs};

/// Half a watt: a wish this close to a bound is inside it (the controller's setpoints are not
/// rounded, so a bound reached exactly must not count as a violation).
const TOLERANCE_W: f64 = 0.5;

/// What the bridge did this cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The site power dispatched to the controller, W (positive = discharge); `None` when the
    /// owner's mode ran unchanged.
    pub dispatched_w: Option<f64>,
    /// External settings the controller's validation refused (the owner's stay in force).
    pub refused: Option<SettingsError>,
}

/// Applies [`ExternalControl`] to a controller, keeping the owner's settings to return to.
#[derive(Debug, Clone)]
pub struct EmsBridge {
    owner: Settings,
}

impl EmsBridge {
    pub fn new(owner: Settings) -> Self {
        Self { owner }
    }

    /// New settings from the app (the bridge applies them from the next cycle).
    pub fn set_owner_settings(&mut self, s: Settings) {
        self.owner = s;
    }

    pub fn owner_settings(&self) -> &Settings {
        &self.owner
    }

    /// One control cycle under `ext`. The decision is `ctrl.decision()` afterwards.
    pub fn step(&self, ctrl: &mut Controller, inp: &SiteInputs, ext: &ExternalControl) -> Applied {
        let mut refused = None;
        let mut base = self.owner.clone();
        if let Some(r) = ext.reserve_soc {
            base.reserve_soc = r;
        }
        if ctrl.settings() != &base {
            if let Err(e) = ctrl.update_settings(base.clone()) {
                refused = Some(e);
                base = self.owner.clone();
                // The owner's settings were valid when they were set; if not, keep what runs.
                let _ = ctrl.update_settings(base.clone());
                base = ctrl.settings().clone();
            }
        }
        let (lo, hi) = window(inp, ext);
        let target = match ext.setpoint_w {
            Some(w) if w.is_finite() => w.clamp(lo, hi),
            _ if lo == f64::NEG_INFINITY && hi == f64::INFINITY => {
                ctrl.step(inp);
                return Applied {
                    dispatched_w: None,
                    refused,
                };
            }
            _ => {
                let mut shadow = ctrl.clone();
                let wish = shadow.step(inp).battery_w;
                if wish >= lo - TOLERANCE_W && wish <= hi + TOLERANCE_W {
                    *ctrl = shadow;
                    return Applied {
                        dispatched_w: None,
                        refused,
                    };
                }
                wish.clamp(lo, hi)
            }
        };
        let mut gs = base.clone();
        gs.mode = WorkingMode::GridServices;
        let dispatched = ctrl.update_settings(gs).is_ok()
            && ctrl
                .try_dispatch(ExternalDispatch {
                    power_w: target,
                    // For this cycle only: the next cycle decides again from the device's state.
                    expires_at_s: inp.now_s.saturating_add(1),
                })
                .is_ok();
        ctrl.step(inp);
        let _ = ctrl.update_settings(base);
        Applied {
            dispatched_w: dispatched.then_some(target),
            refused,
        }
    }
}

/// The window of allowed site battery power, W: the external limits, and with `ChaGriSet` = PV
/// no more charging than the PV surplus (the same rule the EMS applies where grid charging is
/// forbidden, manual 5.1 note).
pub fn window(inp: &SiteInputs, ext: &ExternalControl) -> (f64, f64) {
    let (mut lo, hi) = (ext.min_w, ext.max_w);
    if ext.grid_charging == Some(false) {
        let battery_w: f64 = inp
            .batteries
            .iter()
            .map(|b| b.ac_power_w)
            .filter(|w| w.is_finite())
            .sum();
        let grid_w: f64 = inp.grid_power_w.iter().filter(|w| w.is_finite()).sum();
        // As the controller derives it: measured load - PV, or what the grid and batteries supply.
        let net = match (inp.pv_w, inp.load_w) {
            (Some(pv), Some(load)) => load - pv,
            _ => grid_w + battery_w,
        };
        lo = lo.max(-(-net).max(0.0));
    }
    (lo, hi.max(lo))
}

/// The unit request a command stands for, if any (802 `AlmRst` = the app's "reset the system").
pub fn unit_request(cmd: &ExternalCommand) -> Option<UnitRequest> {
    match cmd {
        ExternalCommand::ResetAlarms => Some(UnitRequest::Reset),
        _ => None,
    }
}
