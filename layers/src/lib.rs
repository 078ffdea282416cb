//! Layers.

pub mod flush;
pub mod membership;
pub mod suspect;
