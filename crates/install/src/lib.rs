//! melv-install: Installer tools: pre-installation checks, wire sizes, CAN termination plan, storage planner
//!
//! (being written)
