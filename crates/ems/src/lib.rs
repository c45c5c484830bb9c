//! melv-ems: Gateway energy management: working modes, safety layers, dispatch (sans-IO)
//!
//! (being written)
