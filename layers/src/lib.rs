//! Layers.

pub mod causal;
pub mod safe;
pub mod total;
