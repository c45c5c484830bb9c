//! melv-sim: Site and fleet simulator: scenarios, profiles, tariffs, faults, KPIs, reports
//!
//! (being written)
