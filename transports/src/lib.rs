//! Transports: where a stack's datagrams travel.
//!
//! - [`runtime`]: the event loop that runs every stack of a process over the real
//!   network, and the handles applications use;
//! - [`udp`]: UDP multicast (the default);
//! - [`udpu`]: UDP unicast fan-out, where multicast is unavailable;
//! - [`sim`]: the deterministic in-memory network with virtual time.

pub mod mtu;
pub mod runtime;
pub mod sim;
pub mod udp;
pub mod udpu;

pub use runtime::{Runtime, TransportError};
