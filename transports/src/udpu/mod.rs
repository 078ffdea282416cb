//! The `udpu` transport: UDP unicast fan-out, for networks without multicast.
//!
//! One socket bound to the descriptor's address (no `SO_REUSEADDR`: a port in use is
//! an error). A cast is one datagram per known peer, this member's own address
//! included (the member's stack receives its own casts like any other). Known peers
//! are the descriptor's seeds, always, plus the source addresses of members heard
//! from; when the stack installs a view, learned members outside it are forgotten.
//! A point-to-point send goes to the member's learned address, or to every known
//! peer with its destination set when the member has not been heard from.

use crate::runtime::error::TransportError;
use crate::udp::set_buffers;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use stack_core::member::MemberId;
use stack_core::packet::GroupId;
use stack_core::transport::UdpuSpec;
use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};

/// The bound socket and the parsed seeds.
pub struct UdpuSocket {
    pub socket: UdpSocket,
    /// Where peers reach this socket (the loopback address for a wildcard bind).
    pub reachable: SocketAddr,
    pub seeds: Vec<SocketAddr>,
    /// Bytes of stack data one datagram carries ([`crate::mtu`]).
    pub max_datagram: usize,
}

fn resolve(s: &str) -> Result<SocketAddr, TransportError> {
    let bad = |reason: String| TransportError::BadAddress { addr: s.into(), reason };
    if let Ok(a) = s.trim().parse::<SocketAddr>() {
        return Ok(a);
    }
    s.trim()
        .to_socket_addrs()
        .map_err(|e| bad(e.to_string()))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| bad("no IPv4 address".into()))
}

/// Binds `spec.bind` and parses the seeds.
pub fn open(spec: &UdpuSpec) -> Result<UdpuSocket, TransportError> {
    let bind = resolve(&spec.bind)?;
    let seeds = spec.seeds.iter().map(|s| resolve(s)).collect::<Result<Vec<_>, _>>()?;
    let sock = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))
        .map_err(TransportError::io("create a UDP socket"))?;
    set_buffers(&sock, spec.recv_buffer, spec.send_buffer)?;
    sock.bind(&SockAddr::from(bind)).map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => TransportError::PortInUse(bind),
        io::ErrorKind::AddrNotAvailable => {
            TransportError::BadInterface { addr: spec.bind.clone(), source: e }
        }
        _ => TransportError::Io { context: "bind", source: e },
    })?;
    sock.set_nonblocking(true).map_err(TransportError::io("make the socket nonblocking"))?;
    let socket: UdpSocket = sock.into();
    let local = socket.local_addr().map_err(TransportError::io("read the bound address"))?;
    let mtu = crate::mtu::path_mtu(bind.ip(), spec.mtu);
    let max_datagram = crate::mtu::max_datagram(bind.ip(), mtu);
    Ok(UdpuSocket { socket, reachable: crate::udp::reachable(local), seeds, max_datagram })
}

/// The addresses a cast of `group` goes to: seeds, learned members of the group and
/// this socket itself, each once, in address order.
pub fn fanout(
    me: SocketAddr,
    seeds: &[SocketAddr],
    learned: &BTreeMap<(GroupId, MemberId), SocketAddr>,
    group: GroupId,
) -> Vec<SocketAddr> {
    let mut v: Vec<SocketAddr> = seeds.to_vec();
    v.push(me);
    v.extend(learned.range((group, MemberId(0))..=(group, MemberId(u64::MAX))).map(|(_, &a)| a));
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanout_is_seeds_learned_of_the_group_and_self_once_each() {
        let a: SocketAddr = "127.0.0.1:1001".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:1002".parse().unwrap();
        let c: SocketAddr = "127.0.0.1:1003".parse().unwrap();
        let d: SocketAddr = "127.0.0.1:1004".parse().unwrap();
        let mut learned = BTreeMap::new();
        learned.insert((5, MemberId::new(2, 0)), b);
        learned.insert((5, MemberId::new(3, 0)), a);
        learned.insert((6, MemberId::new(4, 0)), d);
        assert_eq!(fanout(a, &[b, c, a], &learned, 5), vec![a, b, c]);
        assert_eq!(fanout(a, &[], &learned, 6), vec![a, d]);
    }

    #[test]
    fn bad_bind_addresses_are_errors() {
        let spec = |bind: &str| UdpuSpec {
            bind: bind.into(),
            seeds: vec![],
            recv_buffer: 1 << 16,
            send_buffer: 1 << 16,
            mtu: None,
        };
        assert!(matches!(open(&spec("not an address")), Err(TransportError::BadAddress { .. })));
        let taken = open(&spec("127.0.0.1:0")).unwrap();
        let port = taken.socket.local_addr().unwrap();
        assert!(
            matches!(open(&spec(&port.to_string())), Err(TransportError::PortInUse(p)) if p == port)
        );
    }
}
