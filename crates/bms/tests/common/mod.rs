//! A synthetic test bench: a healthy `Measurements` baseline that answers the firmware's fan and
//! heater commands like working hardware, plus one perturbation per scenario.
#![allow(dead_code)]

use melv_bms::{Firmware, FirmwareConfig, Nvm};
use melv_core::io::{AcMeasurements, Actuation, Measurements, PhaseRotation};
use melv_core::status::{BatteryCommand, UnitRequest};
use melv_core::types::{Country, Phases};

/// Healthy sample: 3.30 V cells (mid plateau), 25 degC, 230 V 50 Hz.
pub fn healthy(phases: Phases) -> Measurements {
    let v3 = match phases {
        Phases::Single => [230.0, 0.0, 0.0],
        Phases::Three => [230.0, 230.0, 230.0],
    };
    Measurements {
        cell_v: [3.30; 8],
        pack_v: 26.4,
        pack_current_a: 0.0,
        cell_temp_c: [25.0; 4],
        inlet_temp_c: 22.0,
        fan_rpm: 0.0,
        heater_current_a: 0.0,
        ac: AcMeasurements {
            phase_v: v3,
            frequency_hz: 50.0,
            rotation: PhaseRotation::Positive,
            wired_phases: phases,
            dc_current_component_a: 0.0,
            dc_voltage_component_v: 0.0,
            ac_power_w: 0.0,
            ac_short_circuit: false,
        },
        insulation_kohm: 10_000.0,
        power_stage_fault: false,
    }
}

pub type Perturb = fn(&mut Measurements, f64);

pub struct Bench {
    pub fw: Firmware,
    pub t: f64,
    pub phases: Phases,
    pub cfg: FirmwareConfig,
    pub act: Actuation,
    pub cmd: BatteryCommand,
    /// Pack current follows the AC setpoint (P / V).
    pub follow_power: bool,
}

impl Bench {
    /// An activated unit that has seen a healthy grid long enough to connect and ramp up.
    pub fn new(country: Country, phases: Phases) -> Self {
        let cfg = FirmwareConfig::for_country(country, phases);
        let mut b = Self::booted(cfg, Nvm::new_unit(0.5, true));
        let settle = b.fw.grid_profile().reconnect_s + 1.0 / b.fw.grid_profile().ramp_per_s + 5.0;
        b.run(settle, 1.0, |_, _| {});
        b
    }

    pub fn booted(cfg: FirmwareConfig, nvm: Nvm) -> Self {
        let phases = cfg.phases;
        Self {
            fw: Firmware::boot(cfg.clone(), nvm, 0.0),
            t: 0.0,
            phases,
            cfg,
            act: Actuation::default(),
            cmd: BatteryCommand::default(),
            follow_power: false,
        }
    }

    /// The sample working hardware would give now, before any perturbation.
    pub fn sample(&self) -> Measurements {
        let mut m = healthy(self.phases);
        m.fan_rpm = self.act.fan_duty * 3000.0;
        m.heater_current_a = if self.act.heater_on { 2.0 } else { 0.0 };
        if self.follow_power {
            m.ac.ac_power_w = self.act.ac_power_w;
            m.pack_current_a = self.act.ac_power_w / m.pack_v;
        }
        m
    }

    /// Runs `secs` seconds in steps of `dt`, perturbing each sample with `f(m, t_since_start)`.
    pub fn run(&mut self, secs: f64, dt: f64, f: impl Fn(&mut Measurements, f64)) {
        let start = self.t;
        let n = (secs / dt).round() as u64;
        for _ in 0..n {
            self.t += dt;
            let mut m = self.sample();
            f(&mut m, self.t - start);
            self.fw.handle_command(self.t, &self.cmd);
            self.act = self.fw.step(self.t, &m);
        }
    }

    pub fn request(&mut self, req: UnitRequest) {
        self.fw.handle_request(self.t, req);
    }

    /// Power cycle: boot again from the NVM image.
    pub fn power_cycle(&mut self) {
        let nvm = self.fw.nvm();
        self.fw = Firmware::boot(self.cfg.clone(), nvm, self.t);
        self.act = Actuation::default();
    }

    pub fn codes(&self) -> Vec<u8> {
        self.fw.status().alerts.iter().map(|c| c.get()).collect()
    }
}
