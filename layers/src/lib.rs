//! Layers.
pub mod bundle;
pub mod frag;
