//! Why a runtime could not start or a member could not join.

use std::io;
use std::net::SocketAddr;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TransportError {
    #[error("bad address {addr:?}: {reason}")]
    BadAddress { addr: String, reason: String },
    #[error("{0} is not a multicast group address (IPv4 224.0.0.0/4)")]
    NotMulticast(SocketAddr),
    #[error(
        "interface {addr} is not usable for multicast (is it an address of this host?): {source}"
    )]
    BadInterface {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("no multicast route for group {group} on interface {interface}: {source}")]
    NoMulticastRoute {
        group: SocketAddr,
        interface: String,
        #[source]
        source: io::Error,
    },
    #[error("address {0} is already in use")]
    PortInUse(SocketAddr),
    #[error("cannot set the socket {which} buffer to {requested} bytes: {source}")]
    Buffer {
        which: &'static str,
        requested: usize,
        #[source]
        source: io::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the {0} transport does not run on the real network")]
    Unsupported(&'static str),
    #[error("member {member} already runs in group {group} in this process")]
    DuplicateMember { group: u32, member: String },
    #[error("the runtime has stopped")]
    Stopped,
}

impl TransportError {
    pub(crate) fn io(context: &'static str) -> impl FnOnce(io::Error) -> TransportError {
        move |source| TransportError::Io { context, source }
    }
}
