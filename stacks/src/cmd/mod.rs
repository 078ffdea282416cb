//! The `strata` commands, one module each.

pub mod check;
pub mod sim;
