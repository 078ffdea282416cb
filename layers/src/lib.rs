//! Layers.

pub mod membership;
pub mod suspect;
