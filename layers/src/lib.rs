//! Layers.

pub mod causal;
