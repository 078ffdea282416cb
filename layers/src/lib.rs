//! Layers.
pub mod frag;
