//! The site balance of one control cycle (ARCHITECTURE.md 3):
//! `pv_used + grid_import + battery_discharge = load_served + grid_export + battery_charge`, with
//! `pv_used = pv - pv_curtailed` and `load_served = load - load_unserved`. The simulator sums these
//! into its KPIs, the live gateway into its telemetry; both get them from [`StepFlows::balance`].

/// One step's mean powers, W. Signs: battery positive = discharging, grid positive = importing.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepFlows {
    pub dt_s: f64,
    pub load_w: f64,
    pub pv_w: f64,
    /// PV that was available but not taken (export limit, or islanded with full batteries).
    pub pv_curtailed_w: f64,
    /// Load that could not be supplied (islanded with empty batteries).
    pub load_unserved_w: f64,
    /// Sum of the units' AC power, + discharging.
    pub battery_w: f64,
    /// Of which discharging and charging parts (units may do both at once in one step).
    pub battery_discharge_w: f64,
    pub battery_charge_w: f64,
    pub grid_w: f64,
    /// Prices in force, currency per kWh (the simulator fills them from its tariff).
    pub import_price: f64,
    pub export_price: f64,
    /// Mean reported SOC of the units at the step's end, 0..=1.
    pub soc: f64,
}

/// The site's state at the connection point during a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// On grid: the grid takes or gives whatever the house, PV and batteries leave over.
    OnGrid,
    /// Islanded (backup relay open) or grid lost: nothing flows to or from the grid.
    OffGrid,
}

impl StepFlows {
    /// The balance of one step (module doc). `pv_limit_w` is the gateway's curtailment, the battery
    /// terms are the units' AC energy over the step as mean powers. Off grid, what PV and batteries
    /// do not cover is load not supplied, and what they give beyond the load is PV curtailed (the
    /// grid-forming units hold the frequency and the PV inverters back off).
    #[inline]
    pub fn balance(
        dt_s: f64,
        load_w: f64,
        pv_w: f64,
        pv_limit_w: Option<f64>,
        charge_w: f64,
        discharge_w: f64,
        conn: Connection,
    ) -> Self {
        let battery_w = discharge_w - charge_w;
        let pv_used = pv_limit_w.map_or(pv_w, |c| pv_w.min(c.max(0.0)));
        let mut f = StepFlows {
            dt_s,
            load_w,
            pv_w,
            pv_curtailed_w: pv_w - pv_used,
            battery_w,
            battery_discharge_w: discharge_w,
            battery_charge_w: charge_w,
            ..StepFlows::default()
        };
        let residual = load_w - pv_used - battery_w;
        match conn {
            Connection::OnGrid => f.grid_w = residual,
            // A unit that draws AC off grid with nothing to supply it would make this exceed the
            // load; we keep it visible in this term rather than hide it.
            Connection::OffGrid if residual > 0.0 => f.load_unserved_w = residual,
            Connection::OffGrid => f.pv_curtailed_w -= residual,
        }
        f
    }

    /// How far the step's books are from closing, W (zero up to rounding by construction).
    pub fn closure_error_w(&self) -> f64 {
        let sources =
            (self.pv_w - self.pv_curtailed_w) + self.grid_w.max(0.0) + self.battery_discharge_w;
        let sinks =
            (self.load_w - self.load_unserved_w) + (-self.grid_w).max(0.0) + self.battery_charge_w;
        sources - sinks
    }
}
