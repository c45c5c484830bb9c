//! Cumulative energy accounts of the plant, in Wh, so that every joule is booked once.
//!
//! Boundaries: the AC terminals (`ac_in`, `ac_out` through the inverter, `aux_from_ac` through the
//! auxiliary supply), the pack terminals (`dc_in`, `dc_out`), and the cells' chemistry (`stored`, net
//! energy into chemical storage). Auxiliaries (control electronics, fan, heater) are fed by the
//! auxiliary supply from the AC terminals while AC is present there (`aux_from_ac`, which passes
//! through neither the cells nor the inverter), and from the pack bus otherwise. The AC side closes
//! as `ac_in + aux_from_ac - ac_out = dc_in - dc_out + inverter + standby + fan + heater` and the DC
//! side as `dc_in - dc_out = stored + cell + bleed + self_discharge`. The unit's whole AC import is
//! [`EnergyLedger::ac_import_wh`] (`ac_in + aux_from_ac`).
//! Within a step the currents are constant and each cell's terminal voltage is what its OCV, resistances
//! and RC states give, so the two balances close to rounding error; tests assert it.
//! Thermal-runaway decomposition heat is chemistry leaving the cell other than through its OCV and is
//! not electrical energy: it is reported separately and belongs to neither balance.

use serde::Serialize;

/// Cumulative energies, Wh. All are >= 0 except `stored`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct EnergyLedger {
    /// Energy drawn from the grid / AC bus at the AC terminals (charging, and losses when charging).
    pub ac_in_wh: f64,
    /// Energy delivered to the AC terminals (discharging).
    pub ac_out_wh: f64,
    /// Energy the auxiliary supply drew from the AC terminals for the control electronics, fan and
    /// heater (while AC is present there): neither through the inverter nor through the cells.
    pub aux_from_ac_wh: f64,
    /// Energy into the pack terminals.
    pub dc_in_wh: f64,
    /// Energy out of the pack terminals (to the inverter and the auxiliaries).
    pub dc_out_wh: f64,
    /// Net energy put into the cells' chemistry (at their open-circuit voltage), may be negative.
    pub stored_wh: f64,
    /// Ohmic and polarisation losses inside the cells.
    pub loss_cell_wh: f64,
    /// Inverter conversion losses.
    pub loss_inverter_wh: f64,
    /// Control electronics (BMS, communication) consumption.
    pub loss_standby_wh: f64,
    /// Heater consumption.
    pub loss_heater_wh: f64,
    /// Fan consumption.
    pub loss_fan_wh: f64,
    /// Passive balancing bleed resistors.
    pub loss_bleed_wh: f64,
    /// Self-discharge and internal shorts (micro-short, runaway short).
    pub loss_self_discharge_wh: f64,
    /// Heat of thermal-runaway decomposition (not electrical: outside both balances).
    pub runaway_heat_wh: f64,
}

impl EnergyLedger {
    /// AC balance residual, Wh (0 when the accounts close).
    pub fn ac_balance_error_wh(&self) -> f64 {
        (self.ac_in_wh + self.aux_from_ac_wh - self.ac_out_wh)
            - (self.dc_in_wh - self.dc_out_wh)
            - (self.loss_inverter_wh
                + self.loss_standby_wh
                + self.loss_fan_wh
                + self.loss_heater_wh)
    }

    /// DC balance residual, Wh (0 when the accounts close).
    pub fn dc_balance_error_wh(&self) -> f64 {
        (self.dc_in_wh - self.dc_out_wh)
            - (self.stored_wh
                + self.loss_cell_wh
                + self.loss_bleed_wh
                + self.loss_self_discharge_wh)
    }

    /// Everything the unit drew from its AC terminals, Wh: the inverter's import and the auxiliary
    /// supply's.
    pub fn ac_import_wh(&self) -> f64 {
        self.ac_in_wh + self.aux_from_ac_wh
    }

    /// Sum of all electrical losses, Wh.
    pub fn total_losses_wh(&self) -> f64 {
        self.loss_cell_wh
            + self.loss_inverter_wh
            + self.loss_standby_wh
            + self.loss_heater_wh
            + self.loss_fan_wh
            + self.loss_bleed_wh
            + self.loss_self_discharge_wh
    }

    /// Account change since an earlier snapshot `before` of the same plant.
    pub fn since(&self, before: &EnergyLedger) -> EnergyLedger {
        EnergyLedger {
            ac_in_wh: self.ac_in_wh - before.ac_in_wh,
            ac_out_wh: self.ac_out_wh - before.ac_out_wh,
            aux_from_ac_wh: self.aux_from_ac_wh - before.aux_from_ac_wh,
            dc_in_wh: self.dc_in_wh - before.dc_in_wh,
            dc_out_wh: self.dc_out_wh - before.dc_out_wh,
            stored_wh: self.stored_wh - before.stored_wh,
            loss_cell_wh: self.loss_cell_wh - before.loss_cell_wh,
            loss_inverter_wh: self.loss_inverter_wh - before.loss_inverter_wh,
            loss_standby_wh: self.loss_standby_wh - before.loss_standby_wh,
            loss_heater_wh: self.loss_heater_wh - before.loss_heater_wh,
            loss_fan_wh: self.loss_fan_wh - before.loss_fan_wh,
            loss_bleed_wh: self.loss_bleed_wh - before.loss_bleed_wh,
            loss_self_discharge_wh: self.loss_self_discharge_wh - before.loss_self_discharge_wh,
            runaway_heat_wh: self.runaway_heat_wh - before.runaway_heat_wh,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(l: &EnergyLedger, ac_err: f64, dc_err: f64) {
        assert!((l.ac_balance_error_wh() - ac_err).abs() < 1e-9, "{l:?}");
        assert!((l.dc_balance_error_wh() - dc_err).abs() < 1e-9, "{l:?}");
    }

    #[test]
    fn balances() {
        check(&EnergyLedger::default(), 0.0, 0.0);
        // Charging 100 Wh AC: 4 lost in the inverter, 1 standby; 95 into the pack, 92 stored, 3 in cells.
        let charge = EnergyLedger {
            ac_in_wh: 100.0,
            dc_in_wh: 95.0,
            stored_wh: 92.0,
            loss_cell_wh: 3.0,
            loss_inverter_wh: 4.0,
            loss_standby_wh: 1.0,
            ..Default::default()
        };
        check(&charge, 0.0, 0.0);
        // A missing booking shows up as a residual of its size and sign.
        let missing = EnergyLedger {
            loss_standby_wh: 0.0,
            ..charge
        };
        check(&missing, 1.0, 0.0);
        let d = charge.since(&EnergyLedger::default());
        assert_eq!(d, charge);
        assert!((charge.total_losses_wh() - 8.0).abs() < 1e-12);
        // Idle on grid: the auxiliary supply feeds 8 Wh of standby and 2 Wh of fan from AC; the cells
        // only self-discharge (0.5 Wh), nothing crosses the pack terminals, the inverter does not run.
        let idle = EnergyLedger {
            aux_from_ac_wh: 10.0,
            stored_wh: -0.5,
            loss_self_discharge_wh: 0.5,
            loss_standby_wh: 8.0,
            loss_fan_wh: 2.0,
            ..Default::default()
        };
        check(&idle, 0.0, 0.0);
        check(
            &EnergyLedger {
                aux_from_ac_wh: 0.0,
                ..idle
            },
            -10.0,
            0.0,
        );
        assert_eq!(idle.ac_import_wh(), 10.0);
    }
}
