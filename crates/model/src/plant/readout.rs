//! The plant's read-outs: what its sensors report ([`Plant::measure`]) and its true state
//! ([`Plant::truth`]).

use super::{Plant, N};
use crate::env::{Environment, NOMINAL_FREQUENCY_HZ, NOMINAL_PHASE_V};
use crate::ocv::ocv;
use crate::TrueState;
use melv_core::io::{AcMeasurements, Measurements, CELL_TEMP_SENSORS};

impl Plant {
    /// What the sensors read now. Noise, offsets and quantisation come from the plant's seeded RNG when
    /// `sensor_noise` is on.
    pub fn measure(&mut self, env: &Environment) -> Measurements {
        let s = &mut self.sensors;
        let mut cell_v = s.cell_voltages(&self.cell_v);
        if let Some((i, off)) = self.faults.cell_v_offset {
            if i < N && off.is_finite() {
                cell_v[i] = (cell_v[i] + off).max(0.0);
            }
        }
        if let Some(i) = self.faults.open_sense_wire {
            if i < N {
                cell_v[i] = 0.0;
            }
        }
        let v = &self.cell_v;
        let pack_true = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
        let mut cell_temp_c = [0.0; CELL_TEMP_SENSORS];
        for (k, t) in cell_temp_c.iter_mut().enumerate() {
            // Sensor k sits between cells 2k and 2k+1.
            let truth = 0.5 * (self.thermal.cell_c[2 * k] + self.thermal.cell_c[2 * k + 1]);
            *t = s.cell_temp_c(k, truth);
        }
        if let Some((k, c)) = self.faults.temp_sensor_stuck {
            if k < CELL_TEMP_SENSORS {
                cell_temp_c[k] = c;
            }
        }
        // The inlet sensor sees ambient air drawn in by the fan; with the fan stopped it warms towards
        // the enclosure.
        let amb = env.ambient_c;
        let mix = if self.fan_rpm > 0.0 { 0.05 } else { 0.3 };
        let inlet_temp_c = s.inlet_temp_c(amb + mix * (self.thermal.enclosure_c - amb));
        let grid = &env.grid;
        let n_ph = self.cfg.phases.count();
        let mut phase_v = [0.0; 3];
        let frequency_hz;
        if grid.present {
            for (m, &v) in phase_v.iter_mut().zip(grid.phase_v.iter()) {
                *m = s.ac_v(v);
            }
            frequency_hz = s.frequency_hz(grid.frequency_hz);
        } else if self.forming {
            for m in phase_v.iter_mut().take(n_ph) {
                *m = s.ac_v(NOMINAL_PHASE_V);
            }
            frequency_hz = s.frequency_hz(NOMINAL_FREQUENCY_HZ);
        } else {
            frequency_hz = 0.0;
        }
        let (dc_i, dc_v) = if self.running {
            (
                self.faults.dc_current_injection_a,
                self.faults.dc_voltage_injection_v,
            )
        } else {
            (0.0, 0.0)
        };
        let heater_a = if pack_true > 1.0 {
            self.heater_w / pack_true
        } else {
            0.0
        };
        Measurements {
            cell_v,
            pack_v: s.pack_v(pack_true),
            pack_current_a: s.current_a(self.pack_current_a) + self.faults.current_offset_a,
            cell_temp_c,
            inlet_temp_c,
            fan_rpm: s.fan_rpm(self.fan_rpm),
            heater_current_a: s.heater_a(heater_a),
            ac: AcMeasurements {
                phase_v,
                frequency_hz,
                rotation: grid.rotation,
                wired_phases: grid.wired_phases,
                dc_current_component_a: dc_i,
                dc_voltage_component_v: dc_v,
                ac_power_w: s.ac_power_w(self.ac_power_w),
                ac_short_circuit: grid.short_circuit,
            },
            insulation_kohm: self.faults.insulation_kohm,
            power_stage_fault: self.faults.power_stage_fault,
        }
    }

    /// The true state (for tests, KPIs and plots; never for the firmware).
    pub fn truth(&self) -> TrueState {
        let mut cell_ocv_v = [0.0; N];
        let mut cell_soh = [0.0; N];
        let mut cell_r_mohm = [0.0; N];
        let mut charge_ah = 0.0;
        let mut cap_sum = 0.0;
        for i in 0..N {
            cell_ocv_v[i] = ocv(self.soc[i]);
            cell_soh[i] = self.ageing[i].capacity_fraction();
            cell_r_mohm[i] = (self.r0[i] + self.r1[i] + self.r2[i]) * 1e3;
            charge_ah += self.soc[i] * self.cap_ah[i];
            cap_sum += self.cap_ah[i];
        }
        let pack_v: f64 = self.cell_v.iter().sum();
        let min_cap = self.cap_ah.iter().cloned().fold(f64::INFINITY, f64::min);
        let efc = self.ageing.iter().map(|a| a.efc).sum::<f64>() / N as f64;
        TrueState {
            time_s: self.time_s,
            cell_soc: self.soc,
            cell_ocv_v,
            cell_v: self.cell_v,
            cell_temp_c: self.thermal.cell_c,
            cell_capacity_ah: self.cap_ah,
            cell_soh,
            cell_resistance_mohm: cell_r_mohm,
            pack_soc: charge_ah / cap_sum,
            pack_v,
            pack_current_a: self.pack_current_a,
            capacity_ah: min_cap,
            soh: cell_soh.iter().cloned().fold(f64::INFINITY, f64::min),
            efc,
            enclosure_c: self.thermal.enclosure_c,
            ac_power_w: self.ac_power_w,
            reactive_power_var: self.reactive_var,
            fan_rpm: self.fan_rpm,
            fan_w: self.fan_w,
            heater_w: self.heater_w,
            peak_budget_s: self.budget.remaining_s,
            awake: self.awake,
        }
    }
}
