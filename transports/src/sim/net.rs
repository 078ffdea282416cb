//! The simulated network's fault model: per packet and per receiver, drawn from the
//! simulator's seeded generator in a fixed order, so one seed fixes every decision.
//!
//! For every datagram and every receiver (a cast goes to every live node, the sender
//! included; a send goes to one node) the network decides, in this order:
//!
//! 1. partition: the directed pair `(from, to)` is cut: dropped (`dropped_partition`);
//! 2. loss: with probability `loss`: dropped (`dropped_loss`);
//! 3. duplication: with probability `duplicate` a second copy travels (`duplicated`);
//! 4. for each copy: a delay uniform in `min_delay_us..=max_delay_us`; with
//!    probability `reorder` an extra delay uniform in `1..=reorder_extra_us`, so later
//!    packets overtake it (`reordered`); with probability `corrupt` one of the first
//!    three bytes (magic, version) is flipped, which the receiver's packet decode
//!    rejects (`corrupted`, then `dropped_malformed` on arrival).
//!
//! A node may also be slow ([`SlowReceiver`]): it processes at most `per_ms` packets
//! per millisecond of virtual time from a bounded inbound queue, and packets arriving
//! at a full queue are dropped (`dropped_overflow`), like a socket buffer.

use std::collections::BTreeSet;

/// Link behaviour, the same for every pair of nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Probability a packet is lost, per receiver.
    pub loss: f64,
    /// Probability a packet is delivered twice, per receiver.
    pub duplicate: f64,
    /// Probability a packet is held back by an extra delay, per copy.
    pub reorder: f64,
    /// Probability one copy arrives damaged (and is rejected by the packet decode).
    pub corrupt: f64,
    /// One-way delay range, microseconds.
    pub min_delay_us: u64,
    pub max_delay_us: u64,
    /// Upper bound of the extra delay of a reordered packet, microseconds.
    pub reorder_extra_us: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            corrupt: 0.0,
            min_delay_us: 100,
            max_delay_us: 2000,
            reorder_extra_us: 10_000,
        }
    }
}

impl NetConfig {
    /// A perfect network: no loss, duplication, reordering or corruption.
    pub fn perfect() -> Self {
        Self::default()
    }
    /// The link a descriptor's `transport: Sim(...)` names; unset fields keep defaults.
    pub fn from_spec(spec: &stack_core::transport::SimSpec) -> Self {
        let d = Self::default();
        let min_delay_us = spec.min_delay_us.unwrap_or(d.min_delay_us);
        let max_delay_us = spec.max_delay_us.unwrap_or(d.max_delay_us).max(min_delay_us);
        NetConfig { min_delay_us, max_delay_us, ..d }
    }
    /// A lossy network: `loss`, duplication and reordering.
    pub fn lossy(loss: f64, duplicate: f64, reorder: f64) -> Self {
        NetConfig { loss, duplicate, reorder, ..Self::default() }
    }
}

/// A node that processes at most `per_ms` packets per virtual millisecond, from an
/// inbound queue of at most `queue` packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowReceiver {
    pub per_ms: u32,
    pub queue: usize,
}

impl SlowReceiver {
    /// Virtual nanoseconds the node spends on one packet.
    pub(crate) fn service_ns(&self) -> u64 {
        1_000_000 / self.per_ms.max(1) as u64
    }
}

/// What the network did, summed over the run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams handed to the network by stacks (one per cast or send).
    pub datagrams: u64,
    /// Bytes of those datagrams, packet header included.
    pub bytes: u64,
    /// Packet copies scheduled for arrival (after loss and partitions, with duplicates).
    pub in_flight_total: u64,
    /// Packets handed to a stack.
    pub received: u64,
    pub dropped_loss: u64,
    pub dropped_partition: u64,
    /// Arrived at a node that is down (crashed, not yet joined, or left).
    pub dropped_down: u64,
    /// Inbound queue of a slow receiver full.
    pub dropped_overflow: u64,
    /// Failed the packet decode (garbage, damaged, foreign version).
    pub dropped_malformed: u64,
    /// Decoded, but for another group.
    pub dropped_foreign: u64,
    /// A send for an incarnation that no longer (or not yet) runs on the node.
    pub dropped_stale_dest: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub corrupted: u64,
}

impl NetStats {
    /// Every packet the network or a receiver dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped_loss
            + self.dropped_partition
            + self.dropped_down
            + self.dropped_overflow
            + self.dropped_malformed
            + self.dropped_foreign
            + self.dropped_stale_dest
    }
}

/// Cut links, as directed node pairs `(from, to)`.
#[derive(Clone, Debug, Default)]
pub struct Partitions {
    cut: BTreeSet<(u32, u32)>,
}

impl Partitions {
    /// Cuts every link from a node of `from` to a node of `to`.
    pub fn cut_one_way(&mut self, from: &[u32], to: &[u32]) {
        for &a in from {
            for &b in to {
                if a != b {
                    self.cut.insert((a, b));
                }
            }
        }
    }
    /// Cuts both directions between `a` and `b`.
    pub fn cut_two_way(&mut self, a: &[u32], b: &[u32]) {
        self.cut_one_way(a, b);
        self.cut_one_way(b, a);
    }
    /// Heals both directions between `a` and `b`.
    pub fn heal_between(&mut self, a: &[u32], b: &[u32]) {
        for &x in a {
            for &y in b {
                self.cut.remove(&(x, y));
                self.cut.remove(&(y, x));
            }
        }
    }
    /// Heals every link.
    pub fn heal_all(&mut self) {
        self.cut.clear();
    }
    pub fn is_cut(&self, from: u32, to: u32) -> bool {
        self.cut.contains(&(from, to))
    }
    pub fn is_empty(&self) -> bool {
        self.cut.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_way_cut_blocks_one_direction_only() {
        let mut p = Partitions::default();
        p.cut_one_way(&[1], &[2, 3]);
        assert!(p.is_cut(1, 2) && p.is_cut(1, 3));
        assert!(!p.is_cut(2, 1) && !p.is_cut(3, 1) && !p.is_cut(2, 3));
        p.cut_two_way(&[4], &[5]);
        assert!(p.is_cut(4, 5) && p.is_cut(5, 4));
        p.heal_between(&[5], &[4]);
        assert!(!p.is_cut(4, 5) && !p.is_cut(5, 4));
        assert!(p.is_cut(1, 2));
        p.heal_all();
        assert!(p.is_empty());
    }

    #[test]
    fn spec_sets_the_delay_range() {
        let spec = stack_core::transport::SimSpec { min_delay_us: Some(5), max_delay_us: None };
        let c = NetConfig::from_spec(&spec);
        assert_eq!((c.min_delay_us, c.max_delay_us), (5, 2000));
        let spec = stack_core::transport::SimSpec { min_delay_us: Some(50), max_delay_us: Some(7) };
        assert_eq!(NetConfig::from_spec(&spec).max_delay_us, 50);
    }

    #[test]
    fn slow_receiver_service_time() {
        assert_eq!(SlowReceiver { per_ms: 4, queue: 1 }.service_ns(), 250_000);
        assert_eq!(SlowReceiver { per_ms: 0, queue: 1 }.service_ns(), 1_000_000);
    }
}
