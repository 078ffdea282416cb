//! The `udp` transport: UDP multicast.
//!
//! Each group address gets two sockets, set up with `socket2` before binding:
//!
//! - the *group socket* receives the group's multicasts: `SO_REUSEADDR` and
//!   `SO_REUSEPORT` (several processes on one host share the port), the buffer sizes
//!   of the descriptor, bound to the group address and port (so other groups on the
//!   same port are filtered out by the kernel), then joined to the group on the
//!   descriptor's interface;
//! - the *unicast socket*, bound to the interface on an ephemeral port, sends every
//!   datagram (multicast through `IP_MULTICAST_IF` = the interface, with the
//!   descriptor's TTL and `IP_MULTICAST_LOOP`) and receives point-to-point sends. Its
//!   address is unique to the process, so a point-to-point send to it reaches this
//!   process and no other process sharing the group port (`SO_REUSEPORT` would
//!   spread unicast among them).
//!
//! A member's unicast address is learned from the source of its datagrams; a send to
//! a member not heard from yet goes to the group with its destination set, and
//! receivers drop sends not meant for one of their members.
//!
//! With `loopback: false` the kernel does not loop multicasts back to this host, so
//! the runtime hands a cast to the other members of the group in the same process
//! itself (and ignores its own datagrams should they come back anyway, as they do on
//! the loopback device, which loops every packet whatever the option says).
//!
//! Every stack on the sockets is told how large a datagram the interface carries
//! ([`crate::mtu`]: its MTU, or the descriptor's smaller `mtu`, less the IP, UDP and
//! packet headers), so bundling and fragmentation size their datagrams from it.
//!
//! Loopback: multicast on `127.0.0.1` works on Linux without a route once the
//! outgoing interface is set with `IP_MULTICAST_IF` and the group is joined on
//! `127.0.0.1`, which is what the defaults do.

use crate::runtime::error::TransportError;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use stack_core::transport::UdpSpec;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

/// The two sockets of a multicast group, nonblocking.
pub struct UdpSockets {
    pub group: SocketAddrV4,
    pub interface: Ipv4Addr,
    /// Receives the group's multicasts.
    pub group_socket: UdpSocket,
    /// Sends everything; receives point-to-point sends.
    pub unicast: UdpSocket,
    /// Bytes of stack data one datagram carries ([`crate::mtu`]).
    pub max_datagram: usize,
}

/// Parses and checks a group address: IPv4 multicast with a port.
pub fn parse_group(s: &str) -> Result<SocketAddrV4, TransportError> {
    let addr: SocketAddr = s.trim().parse().map_err(|e: std::net::AddrParseError| {
        TransportError::BadAddress { addr: s.into(), reason: e.to_string() }
    })?;
    match addr {
        SocketAddr::V4(a) if a.ip().is_multicast() => {
            if a.port() == 0 {
                return Err(TransportError::BadAddress {
                    addr: s.into(),
                    reason: "a multicast group needs a port".into(),
                });
            }
            Ok(a)
        }
        other => Err(TransportError::NotMulticast(other)),
    }
}

/// Parses an interface address (IPv4).
pub fn parse_interface(s: &str) -> Result<Ipv4Addr, TransportError> {
    s.trim().parse().map_err(|e: std::net::AddrParseError| TransportError::BadAddress {
        addr: s.into(),
        reason: format!("interface must be an IPv4 address: {e}"),
    })
}

/// Sets the socket buffers, forcing past the system limit when allowed (Linux,
/// privileged); the effective sizes can be read back from the socket.
pub(crate) fn set_buffers(sock: &Socket, recv: usize, send: usize) -> Result<(), TransportError> {
    sock.set_recv_buffer_size(recv).map_err(|source| TransportError::Buffer {
        which: "receive",
        requested: recv,
        source,
    })?;
    sock.set_send_buffer_size(send).map_err(|source| TransportError::Buffer {
        which: "send",
        requested: send,
        source,
    })?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let force = |opt: libc::c_int, want: usize, have: io::Result<usize>| {
            // Linux reports twice the size asked for; below the request means capped.
            if have.map_or(true, |h| h < want) {
                let v = want.min(i32::MAX as usize) as libc::c_int;
                // SAFETY: a plain setsockopt with an int argument on a live socket;
                // failure (not privileged) leaves the capped size in place.
                unsafe {
                    libc::setsockopt(
                        sock.as_raw_fd(),
                        libc::SOL_SOCKET,
                        opt,
                        (&v as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    );
                }
            }
        };
        force(libc::SO_RCVBUFFORCE, recv, sock.recv_buffer_size());
        force(libc::SO_SNDBUFFORCE, send, sock.send_buffer_size());
    }
    Ok(())
}

fn in_use(addr: SocketAddr) -> impl FnOnce(io::Error) -> TransportError {
    move |e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            TransportError::PortInUse(addr)
        } else {
            TransportError::Io { context: "bind", source: e }
        }
    }
}

fn new_socket() -> Result<Socket, TransportError> {
    Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(TransportError::io("create a UDP socket"))
}

/// Opens and configures both sockets of `spec`'s group.
pub fn open(spec: &UdpSpec) -> Result<UdpSockets, TransportError> {
    let group = parse_group(&spec.group)?;
    let interface = parse_interface(&spec.interface)?;
    let bad_if = |source| TransportError::BadInterface { addr: spec.interface.clone(), source };

    // The unicast socket: binding to the interface checks that it is local.
    let uni = new_socket()?;
    set_buffers(&uni, spec.recv_buffer, spec.send_buffer)?;
    let uni_addr = SocketAddr::V4(SocketAddrV4::new(interface, 0));
    uni.bind(&SockAddr::from(uni_addr)).map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => TransportError::PortInUse(uni_addr),
        _ => bad_if(e),
    })?;
    uni.set_multicast_if_v4(&interface).map_err(bad_if)?;
    uni.set_multicast_ttl_v4(spec.ttl).map_err(TransportError::io("set the multicast TTL"))?;
    uni.set_multicast_loop_v4(spec.loopback)
        .map_err(TransportError::io("set multicast loopback"))?;
    uni.set_nonblocking(true).map_err(TransportError::io("make the socket nonblocking"))?;

    // The group socket.
    let g = new_socket()?;
    g.set_reuse_address(true).map_err(TransportError::io("set SO_REUSEADDR"))?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    g.set_reuse_port(true).map_err(TransportError::io("set SO_REUSEPORT"))?;
    set_buffers(&g, spec.recv_buffer, spec.send_buffer)?;
    let bind_ip = if cfg!(unix) { *group.ip() } else { Ipv4Addr::UNSPECIFIED };
    let bind = SocketAddr::V4(SocketAddrV4::new(bind_ip, group.port()));
    g.bind(&SockAddr::from(bind)).map_err(in_use(SocketAddr::V4(group)))?;
    g.join_multicast_v4(group.ip(), &interface).map_err(|e| match e.raw_os_error() {
        #[cfg(unix)]
        Some(libc::ENODEV) | Some(libc::EADDRNOTAVAIL) => bad_if(e),
        _ => TransportError::NoMulticastRoute {
            group: SocketAddr::V4(group),
            interface: spec.interface.clone(),
            source: e,
        },
    })?;
    g.set_nonblocking(true).map_err(TransportError::io("make the socket nonblocking"))?;

    let mtu = crate::mtu::path_mtu(IpAddr::V4(interface), spec.mtu);
    let max_datagram = crate::mtu::max_datagram(IpAddr::V4(interface), mtu);
    Ok(UdpSockets { group, interface, group_socket: g.into(), unicast: uni.into(), max_datagram })
}

/// The address peers reach a socket bound to `local` at.
pub(crate) fn reachable(local: SocketAddr) -> SocketAddr {
    match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), local.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), local.port())
        }
        _ => local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_addresses_are_checked() {
        assert!(parse_group("239.255.1.2:7400").is_ok());
        assert!(matches!(parse_group("127.0.0.1:7400"), Err(TransportError::NotMulticast(_))));
        assert!(matches!(parse_group("[ff02::1]:7400"), Err(TransportError::NotMulticast(_))));
        assert!(matches!(parse_group("239.255.1.2"), Err(TransportError::BadAddress { .. })));
        assert!(matches!(parse_group("239.255.1.2:0"), Err(TransportError::BadAddress { .. })));
        assert!(matches!(parse_interface("eth0"), Err(TransportError::BadAddress { .. })));
    }
}
