//! # stack-core
//!
//! The model every Strata layer and transport builds on:
//!
//! - [`event`]: the shared event vocabulary (downcalls, upcalls, timers);
//! - [`message`]: messages with headroom, so pushing a header never copies the payload;
//! - [`wire`]: the checked reader/writer and the [`wire::Header`] trait of layer headers;
//! - [`layer`]: the sans-IO [`Layer`] trait, its [`Ctx`], properties and counters;
//! - [`stack`]: the driver that runs layers bottom to top through an explicit queue;
//! - [`descriptor`], [`registry`]: stack descriptors (RON), checked against the layers
//!   a registry knows;
//! - [`group`]: the application's handle on a group and the runtime's side of it;
//! - [`packet`]: the datagram header every transport puts in front of a stack's bytes;
//! - [`trace`]: the JSON-lines trace the conformance checkers read;
//! - [`member`], [`time`], [`rng`]: identities and views, injected time, seeded randomness.

pub mod descriptor;
pub mod event;
pub mod group;
pub mod layer;
pub mod member;
pub mod message;
pub mod packet;
mod queue;
pub mod registry;
pub mod rng;
pub mod stack;
pub mod testing;
pub mod time;
pub mod trace;
pub mod transport;
pub mod wire;

pub use bytes::Bytes;
pub use event::{Down, SeqVector, TimerId, Up};
pub use group::{GroupConfig, GroupHandle};
pub use layer::{props, Counters, Ctx, Layer, Property};
pub use member::{MemberId, View, ViewReason};
pub use message::Msg;
pub use rng::Rng;
pub use stack::{AppEvent, CastError, NetOut, Stack, StackConfig};
pub use time::Time;
pub use trace::TraceWriter;
pub use transport::{Transport, TransportSpec};
pub use wire::{Header, WireError};
