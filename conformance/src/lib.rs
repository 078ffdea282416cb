//! Trace checkers.
