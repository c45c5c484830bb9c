//! melv-can: CAN link between batteries and gateway: DBC contract, codec, topology, supervision, transports
//!
//! (being written)
