//! What a run produced: counts, counters, views, and the hash of every trace.

use super::net::NetStats;
use std::collections::BTreeMap;
use std::fmt;

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Workloads done, nothing in flight, every live member delivered what live
    /// members sent.
    AllDelivered,
    /// Workloads done and no delivery, view or cast for the settle period.
    Settled,
    /// The virtual deadline (or the time given to `run_until`) passed.
    Deadline,
    /// The event-count cap was reached.
    EventCap,
    /// No event left at all.
    Idle,
}

/// The summary of a run. Every map is ordered, so printing it is deterministic.
#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    /// How to replay this run.
    pub replay: String,
    pub stop: Option<StopReason>,
    pub virtual_ms: u64,
    pub events: u64,
    /// Casts accepted by stacks (all members, all incarnations).
    pub sent: u64,
    /// Casts delivered to applications, summed over members.
    pub delivered: u64,
    /// Delivered casts per member (incarnation name).
    pub per_member: BTreeMap<String, u64>,
    /// Deliveries whose payload was not exactly what the sender cast.
    pub integrity_errors: u64,
    pub net: NetStats,
    /// Every stack counter, `layer.counter`, summed over members (crashed incarnations
    /// included, as they were when they crashed). Gauges are summed too: the sum of
    /// `buffered_bytes` is what the whole group holds at the end.
    pub counters: BTreeMap<String, u64>,
    /// Counters whose name ends in `_peak` or `buffered_bytes`: the MAXIMUM over
    /// members, i.e. the worst single member (what bounds one process's memory).
    pub peaks: BTreeMap<String, u64>,
    /// The final view `(id, members)` of every live member.
    pub views: BTreeMap<String, (u64, Vec<String>)>,
    /// Hash of every trace in member order (see [`super::Sim::trace_hash`]).
    pub trace_hash: u64,
}

impl Report {
    /// One counter, `0` if absent.
    pub fn counter(&self, key: &str) -> u64 {
        self.counters.get(key).copied().unwrap_or(0)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "sim seed {} ({:#x}); replay: {}", self.seed, self.seed, self.replay)?;
        writeln!(
            f,
            "stop {:?} at {} virtual ms after {} events; trace hash {:016x}",
            self.stop, self.virtual_ms, self.events, self.trace_hash
        )?;
        writeln!(
            f,
            "sent {} delivered {} integrity errors {}",
            self.sent, self.delivered, self.integrity_errors
        )?;
        writeln!(f, "net {:?}", self.net)?;
        for (m, n) in &self.per_member {
            write!(f, "  {m}: delivered {n}")?;
            if let Some((id, ms)) = self.views.get(m) {
                write!(f, ", view {id} [{}]", ms.join(" "))?;
            }
            writeln!(f)?;
        }
        for (k, v) in &self.counters {
            writeln!(f, "  {k} = {v}")?;
        }
        for (k, v) in &self.peaks {
            writeln!(f, "  max {k} = {v}")?;
        }
        Ok(())
    }
}
