//! The `strata` commands, one module each.

pub mod bench;
pub mod check;
pub mod demo;
pub mod member;
pub mod sim;
