//! melv-unit: One MS-7K-U battery unit: the twin driven by its firmware
//!
//! (being written)
