//! Transports.

pub mod sim;
