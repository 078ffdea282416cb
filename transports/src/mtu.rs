//! How large a datagram a transport can send without the network cutting it: the
//! path MTU of the interface a socket uses, less the IP, UDP and packet headers.
//!
//! The interface is the one that holds the socket's address (Linux: its `mtu` under
//! `/sys/class/net`); a descriptor can name a smaller MTU for a path through a router
//! or tunnel (`mtu:` of `Udp` and `Udpu`). A wildcard address, or an interface whose
//! MTU cannot be read, is taken for a 1500-byte Ethernet.

use stack_core::packet::PacketHeader;
use stack_core::Header;
use std::net::IpAddr;

/// The MTU assumed when none can be read: Ethernet's.
pub const ETHERNET_MTU: usize = 1500;

/// The largest IP packet (the IPv4 total length is 16 bits).
const MAX_IP_PACKET: usize = 65_535;

/// Bytes of stack data one datagram carries over a path of `mtu` bytes from `addr`:
/// the MTU (at most 65,535) less the IP header (20 bytes for IPv4, 40 for IPv6), the
/// UDP header (8) and the largest packet header.
pub fn max_datagram(addr: IpAddr, mtu: usize) -> usize {
    let ip = if addr.is_ipv4() { 20 } else { 40 };
    mtu.min(MAX_IP_PACKET).saturating_sub(ip + 8 + PacketHeader::MAX_LEN)
}

/// The MTU of the interface holding `addr`, when one does and it can be read.
pub fn interface_mtu(addr: IpAddr) -> Option<usize> {
    if addr.is_unspecified() {
        return None;
    }
    let name = interface_name(addr)?;
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu")).ok()?;
    text.trim().parse().ok()
}

/// The MTU a socket at `addr` sends with: its interface's, or the smaller one the
/// descriptor names (a path through a router or tunnel); `asked`, else Ethernet's,
/// when the interface's cannot be read.
pub fn path_mtu(addr: IpAddr, asked: Option<usize>) -> usize {
    match (interface_mtu(addr), asked) {
        (Some(i), Some(a)) => a.min(i),
        (Some(i), None) => i,
        (None, Some(a)) => a,
        (None, None) => ETHERNET_MTU,
    }
}

/// The name of the interface that holds `addr` (`getifaddrs`).
#[cfg(unix)]
fn interface_name(addr: IpAddr) -> Option<String> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `getifaddrs` fills `list` with a linked list it allocates, freed below
    // with `freeifaddrs` and not used after.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list `getifaddrs` returned, alive until
        // `freeifaddrs`; `ifa_addr` is null or points to a sockaddr whose family says
        // which sockaddr type it is; `ifa_name` is a NUL-terminated string.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
        let here: Option<IpAddr> = match family {
            libc::AF_INET => {
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                Some(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()))
            }
            libc::AF_INET6 => {
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                Some(IpAddr::from(sin6.sin6_addr.s6_addr))
            }
            _ => None,
        };
        if here == Some(addr) {
            let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
            found = Some(name.to_string_lossy().into_owned());
            break;
        }
    }
    // SAFETY: `list` came from a successful `getifaddrs` and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

#[cfg(not(unix))]
fn interface_name(_: IpAddr) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn loopback_mtu_is_the_loopback_interfaces() {
        let lo = std::fs::read_to_string("/sys/class/net/lo/mtu").unwrap();
        let lo: usize = lo.trim().parse().unwrap();
        assert_eq!(interface_mtu(IpAddr::V4(Ipv4Addr::LOCALHOST)), Some(lo));
        assert_eq!(path_mtu(IpAddr::V4(Ipv4Addr::LOCALHOST), None), lo);
    }

    #[test]
    fn an_address_no_interface_holds_or_a_wildcard_is_taken_for_ethernet() {
        // TEST-NET-1 (RFC 5737) is never assigned to an interface here.
        let nowhere = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 77));
        assert_eq!(interface_mtu(nowhere), None);
        assert_eq!(path_mtu(nowhere, None), ETHERNET_MTU);
        assert_eq!(path_mtu(IpAddr::V4(Ipv4Addr::UNSPECIFIED), None), ETHERNET_MTU);
    }

    #[test]
    fn an_mtu_asked_for_is_kept_below_the_interfaces() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let lo_mtu = interface_mtu(lo).unwrap();
        assert_eq!(path_mtu(lo, Some(1280)), 1280);
        assert_eq!(path_mtu(lo, Some(lo_mtu + 1)), lo_mtu);
        // An interface that cannot be read: what the descriptor says.
        let wildcard = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        assert_eq!(path_mtu(wildcard, Some(9000)), 9000);
    }

    #[test]
    fn datagram_sizes_leave_room_for_ip_udp_and_packet_headers() {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(max_datagram(v4, 1500), 1500 - 20 - 8 - 24);
        assert_eq!(max_datagram(v6, 1500), 1500 - 40 - 8 - 24);
        // Loopback's 65,536 is more than an IPv4 packet holds.
        assert_eq!(max_datagram(v4, 65_536), 65_535 - 28 - 24);
        assert_eq!(max_datagram(v4, 10), 0);
    }
}
