//! Transport parameters as a descriptor names them.
//!
//! ```ron
//! transport: Udp(group: "239.255.42.1:7400"),                 // multicast, loopback
//! transport: Udp(group: "239.255.42.1:7400", interface: "10.0.0.1", ttl: 4),
//! transport: Udpu(bind: "127.0.0.1:7401", seeds: ["127.0.0.1:7402"]),
//! transport: Sim(),
//! ```
//!
//! Traffic leaves only through the loopback interface unless a descriptor names
//! another interface: `interface` defaults to `127.0.0.1`.

use crate::group::{GroupConfig, GroupHandle};
use serde::Deserialize;

/// Something that runs stacks over a network and lets applications join groups
/// through it (the real network's runtime, the simulator).
pub trait Transport {
    type Error: std::error::Error + Send + Sync + 'static;
    /// Starts one member of one group; its events arrive on the returned handle.
    fn join(&self, cfg: GroupConfig) -> Result<GroupHandle, Self::Error>;
}

/// The transport a descriptor asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum TransportSpec {
    Udp(UdpSpec),
    Udpu(UdpuSpec),
    Sim(SimSpec),
}

impl TransportSpec {
    /// The name as written in descriptors.
    pub fn kind(&self) -> &'static str {
        match self {
            TransportSpec::Udp(_) => "Udp",
            TransportSpec::Udpu(_) => "Udpu",
            TransportSpec::Sim(_) => "Sim",
        }
    }
}

fn loopback() -> String {
    "127.0.0.1".into()
}
fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}
fn four_mib() -> usize {
    4 << 20
}

/// UDP multicast (mio).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpSpec {
    /// Multicast group and port, e.g. `"239.255.42.1:7400"`.
    pub group: String,
    /// Address of the interface multicast leaves through (default loopback).
    #[serde(default = "loopback")]
    pub interface: String,
    /// Multicast time-to-live (default 1: the local link).
    #[serde(default = "one")]
    pub ttl: u32,
    /// Whether this host's own members receive its multicasts (default true).
    #[serde(default = "yes")]
    pub loopback: bool,
    /// Socket receive buffer in bytes (default 4 MiB).
    #[serde(default = "four_mib")]
    pub recv_buffer: usize,
    /// Socket send buffer in bytes (default 4 MiB).
    #[serde(default = "four_mib")]
    pub send_buffer: usize,
    /// The path MTU toward the other members, when it is smaller than the interface's
    /// (a router or tunnel between hosts). Datagrams are sized from it: the
    /// interface's MTU when left out (65,536 on loopback).
    #[serde(default)]
    pub mtu: Option<usize>,
}

/// UDP unicast fan-out, for networks without multicast.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpuSpec {
    /// Local address to bind (default `127.0.0.1:0`, an ephemeral port).
    #[serde(default = "udpu_bind")]
    pub bind: String,
    /// Addresses of members to contact first.
    #[serde(default)]
    pub seeds: Vec<String>,
    #[serde(default = "four_mib")]
    pub recv_buffer: usize,
    #[serde(default = "four_mib")]
    pub send_buffer: usize,
    /// The path MTU toward the peers, as for `Udp` (the bound interface's when left
    /// out; Ethernet's 1500 for a wildcard address).
    #[serde(default)]
    pub mtu: Option<usize>,
}

fn udpu_bind() -> String {
    "127.0.0.1:0".into()
}

/// The deterministic in-memory network (tests and `strata sim`).
#[derive(Clone, Debug, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SimSpec {
    /// One-way delay range in microseconds (default 100..=2000).
    pub min_delay_us: Option<u64>,
    pub max_delay_us: Option<u64>,
}
