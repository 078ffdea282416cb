//! Layers.
pub mod bundle;
pub mod flow;
pub mod frag;
