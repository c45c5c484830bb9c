//! Helpers for the controller's data tests: a battery report builder and a stepping `check`.

#![allow(dead_code)] // each test file uses a different subset

use melv_core::status::BatteryStatus;
use melv_core::{AlertSet, Lifecycle, SocLed, StatusLed};
use melv_ems::{Controller, Decision, Reason, SiteInputs};

/// 2024-01-01T00:00:00Z, a Monday.
pub const T0: i64 = 1_704_067_200;
pub const H: i64 = 3_600;

/// An active unit at `soc` with the datasheet's limits (manual 7.1: 3.75 kVA in, 4.5 kVA out).
pub fn bat(soc: f64) -> BatteryStatus {
    BatteryStatus {
        soc,
        soh: 1.0,
        pack_v: 26.4,
        pack_current_a: 0.0,
        ac_power_w: 0.0,
        reactive_power_var: 0.0,
        min_cell_v: 3.3,
        max_cell_v: 3.3,
        min_temp_c: 25.0,
        max_temp_c: 25.0,
        max_charge_w: if soc >= 1.0 { 0.0 } else { 3_750.0 },
        max_discharge_w: if soc <= 0.0 { 0.0 } else { 4_500.0 },
        alerts: AlertSet::EMPTY,
        lifecycle: Lifecycle::Active,
        soc_led: SocLed::SolidBlue {
            percent: (soc * 100.0) as u8,
        },
        status_led: StatusLed::Dim,
        ac_charged_wh: 0.0,
        ac_discharged_wh: 0.0,
    }
}

pub fn limits(mut b: BatteryStatus, charge_w: f64, discharge_w: f64) -> BatteryStatus {
    b.max_charge_w = charge_w;
    b.max_discharge_w = discharge_w;
    b
}

/// One cycle's inputs and what the controller must answer.
#[derive(Clone)]
pub struct Case {
    pub t: i64,
    pub grid: bool,
    pub pv: Option<f64>,
    pub load: Option<f64>,
    pub meter: [f64; 3],
    pub v: [f64; 3],
    pub f: f64,
    pub bats: Vec<BatteryStatus>,
    /// Expected active-power setpoint per unit, W (positive = discharge).
    pub want: Vec<f64>,
    pub reason: Reason,
    pub island: bool,
    pub curtail: Option<f64>,
}

impl Case {
    /// At `T0 + t`, on grid, 230 V, 50 Hz, PV and load measured.
    pub fn at(t: i64, pv: f64, load: f64, bats: &[BatteryStatus]) -> Self {
        Self {
            t: T0 + t,
            grid: true,
            pv: Some(pv),
            load: Some(load),
            meter: [0.0; 3],
            v: [230.0; 3],
            f: 50.0,
            bats: bats.to_vec(),
            want: vec![],
            reason: Reason::Idle,
            island: false,
            curtail: None,
        }
    }
    pub fn want(mut self, w: &[f64], reason: Reason) -> Self {
        self.want = w.to_vec();
        self.reason = reason;
        self
    }
    pub fn off_grid(mut self) -> Self {
        self.grid = false;
        self
    }
    pub fn island(mut self) -> Self {
        self.island = true;
        self
    }
    pub fn curtail(mut self, w: f64) -> Self {
        self.curtail = Some(w);
        self
    }
    pub fn freq(mut self, f: f64) -> Self {
        self.f = f;
        self
    }
    pub fn volts(mut self, v: f64) -> Self {
        self.v = [v; 3];
        self
    }
    /// A live gateway: no PV or load meter, only the grid meter.
    pub fn meter(mut self, m: [f64; 3]) -> Self {
        self.meter = m;
        self.pv = None;
        self.load = None;
        self
    }
    pub fn inputs(&self) -> SiteInputs<'_> {
        SiteInputs {
            now_s: self.t,
            grid_available: self.grid,
            grid_power_w: self.meter,
            grid_v: self.v,
            frequency_hz: self.f,
            pv_w: self.pv,
            load_w: self.load,
            batteries: &self.bats,
        }
    }
}

/// Steps `ctl` through `cases` in order, asserting each decision. Returns the last decision.
pub fn check(ctl: &mut Controller, cases: &[Case]) -> Decision {
    let mut last = None;
    for (k, c) in cases.iter().enumerate() {
        let d = ctl.step(&c.inputs());
        let got: Vec<f64> = d.commands.iter().map(|c| c.active_power_w).collect();
        let ok =
            got.len() == c.want.len() && got.iter().zip(&c.want).all(|(g, w)| (g - w).abs() < 0.01);
        assert!(
            ok && d.reason == c.reason && d.island == c.island,
            "case {k} (t = T0 + {} s): got {got:?} {:?} island {}, expected {:?} {:?} island {}",
            c.t - T0,
            d.reason,
            d.island,
            c.want,
            c.reason,
            c.island
        );
        match (d.pv_curtail_to_w, c.curtail) {
            (None, None) => {}
            (Some(g), Some(w)) if (g - w).abs() < 0.01 => {}
            (g, w) => panic!("case {k}: PV limit {g:?}, expected {w:?}"),
        }
        last = Some(d.clone());
    }
    last.expect("at least one case")
}
