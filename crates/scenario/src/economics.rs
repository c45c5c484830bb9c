//! The `[economics]` table: what the batteries cost and how money is valued over the years.
//!
//! Every key has a documented default (docs/simulator.md), so a site without the table still gets
//! an NPV, a payback year, an IRR and an LCOS; the report then says that the defaults were used.
//! Prices are in the tariff's currency. The computation is `melv_sim::economics`.

use crate::error::ConfigError;
use serde::{Deserialize, Serialize};

/// `[economics]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EconomicsConfig {
    /// Price of one MS-7K-U unit, currency. Default 5,600: 800 per kWh of the 7 kWh rated energy
    /// (manual 7.1), a round figure of the order of NREL ATB 2024's residential LFP battery
    /// (5 kW / 12.5 kWh representative system); replace it with a quote.
    #[serde(default = "battery_price")]
    pub battery_price: f64,
    /// Installation of the site (gateway, wiring, labour), currency, once. Default 1,500.
    #[serde(default = "installation")]
    pub installation: f64,
    /// Yearly maintenance, currency per year. Default 0: the manual's "Operation and Maintenance"
    /// chapter (5) lists no periodic service of the unit, only settings and troubleshooting (6).
    #[serde(default)]
    pub maintenance: f64,
    /// Discount rate per year (nominal). Default 0.05.
    #[serde(default = "discount_rate")]
    pub discount_rate: f64,
    /// Yearly escalation of the import price. Default 0.02 (prices follow a 2 % inflation).
    #[serde(default = "import_escalation")]
    pub import_escalation: f64,
    /// Yearly escalation of the export price. Default 0: feed-in and net-billing credits are often
    /// fixed for a contract's term (e.g. the German EEG feed-in tariff, fixed for 20 years).
    #[serde(default)]
    pub export_escalation: f64,
    /// Cost of replacing the batteries at end of life, currency; no replacement when absent.
    pub replacement_cost: Option<f64>,
    /// End of life for the replacement: the weakest cell's SOH below this at a year's end.
    /// Default 0.70, the threshold of alert 57 (low SOH) in the firmware.
    #[serde(default = "replace_at_soh")]
    pub replace_at_soh: f64,
}

fn battery_price() -> f64 {
    5_600.0
}
fn installation() -> f64 {
    1_500.0
}
fn discount_rate() -> f64 {
    0.05
}
fn import_escalation() -> f64 {
    0.02
}
fn replace_at_soh() -> f64 {
    0.70
}

impl Default for EconomicsConfig {
    fn default() -> Self {
        Self {
            battery_price: battery_price(),
            installation: installation(),
            maintenance: 0.0,
            discount_rate: discount_rate(),
            import_escalation: import_escalation(),
            export_escalation: 0.0,
            replacement_cost: None,
            replace_at_soh: replace_at_soh(),
        }
    }
}

impl EconomicsConfig {
    /// Check every value's range; the error names the key.
    pub fn check(&self, file: &str) -> Result<(), ConfigError> {
        let money = [
            ("economics.battery_price", Some(self.battery_price)),
            ("economics.installation", Some(self.installation)),
            ("economics.maintenance", Some(self.maintenance)),
            ("economics.replacement_cost", self.replacement_cost),
        ];
        for (k, v) in money {
            if let Some(v) = v {
                if !(v.is_finite() && (0.0..=1e9).contains(&v)) {
                    return Err(ConfigError::new(
                        file,
                        k,
                        format!("{v} is not an amount within 0..=1e9"),
                    ));
                }
            }
        }
        let rates = [
            ("economics.discount_rate", self.discount_rate, -0.5, 1.0),
            (
                "economics.import_escalation",
                self.import_escalation,
                -0.5,
                1.0,
            ),
            (
                "economics.export_escalation",
                self.export_escalation,
                -0.5,
                1.0,
            ),
            ("economics.replace_at_soh", self.replace_at_soh, 0.0, 1.0),
        ];
        for (k, v, lo, hi) in rates {
            if !(v.is_finite() && (lo..=hi).contains(&v)) {
                return Err(ConfigError::new(
                    file,
                    k,
                    format!("{v} is not a fraction within {lo}..={hi}"),
                ));
            }
        }
        Ok(())
    }
}
