//! Layers.

pub mod causal;
pub mod total;
