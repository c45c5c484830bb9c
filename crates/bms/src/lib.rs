//! melv-bms: Firmware logic of the MS-7K-U: BMS, grid protection, LEDs, lifecycle (sans-IO)
//!
//! (being written)
