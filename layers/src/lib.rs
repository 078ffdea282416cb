//! Layers.

pub mod suspect;
