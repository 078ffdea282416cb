//! Layers.

pub mod nak;
pub mod stable;
