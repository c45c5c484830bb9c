//! melv-model: Physics twin of the MS-7K-U: LFP cells, pack, thermal, ageing, inverter
//!
//! (being written)
