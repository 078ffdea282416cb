//! Workloads and fault schedules.
//!
//! A [`Workload`] says what every member casts; [`Faults`] draws a schedule of crashes,
//! restarts, partitions, joins and leaves from the simulator's seed; an [`Action`] is
//! one scheduled step that tests can also apply or schedule by hand.

use super::net::SlowReceiver;
use bytes::Bytes;
use stack_core::{Rng, Time};

/// What every member casts.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// Casts per member (per incarnation, see `joiners`).
    pub messages: u64,
    /// Payload size range, bytes (a fixed size when equal).
    pub min_size: usize,
    pub max_size: usize,
    /// One cast every `interval_us`; `None`: as fast as the stack accepts casts.
    pub interval_us: Option<u64>,
    /// At most this many casts in one go when sending as fast as possible.
    pub burst: u32,
    /// Each member starts after a delay drawn from `0..=start_jitter_us`.
    pub start_jitter_us: u64,
    /// After a refused cast (`WouldBlock`, `Blocked`, `NotJoined`) the member retries
    /// on `Flow { open: true }` or a new view, and at the latest after `retry_us`.
    pub retry_us: u64,
    /// Whether members that join or restart during the run cast too.
    pub joiners: bool,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            messages: 10,
            min_size: 32,
            max_size: 32,
            interval_us: Some(1000),
            burst: 16,
            start_jitter_us: 1000,
            retry_us: 1000,
            joiners: true,
        }
    }
}

impl Workload {
    /// No casts at all.
    pub fn none() -> Self {
        Workload { messages: 0, ..Self::default() }
    }
    /// `messages` casts of `size` bytes, one every `interval_us`.
    pub fn every(messages: u64, size: usize, interval_us: u64) -> Self {
        Workload {
            messages,
            min_size: size,
            max_size: size,
            interval_us: Some(interval_us),
            ..Self::default()
        }
    }
    /// `messages` casts of `size` bytes, as fast as the stack accepts them.
    pub fn flood(messages: u64, size: usize) -> Self {
        Workload { messages, min_size: size, max_size: size, interval_us: None, ..Self::default() }
    }
}

/// One step of a scenario. Node numbers name machines; a restarted node runs a new
/// incarnation under the same number.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// The node stops: its stack is dropped, packets to it vanish.
    Crash(u32),
    /// A crashed node comes back as a new incarnation with a fresh stack that joins.
    Restart(u32),
    /// Cuts both directions between two sets of nodes.
    Partition(Vec<u32>, Vec<u32>),
    /// Cuts only the direction from the first set to the second.
    PartitionOneWay(Vec<u32>, Vec<u32>),
    /// Heals both directions between two sets of nodes.
    Heal(Vec<u32>, Vec<u32>),
    /// Heals every cut.
    HealAll,
    /// A new node joins the group.
    Join,
    /// The node leaves the group cleanly (its workload stops).
    Leave(u32),
    /// Makes the node a slow receiver, or a normal one again with `None`.
    Slow(u32, Option<SlowReceiver>),
    /// A datagram of these bytes arrives at the node (garbage, foreign traffic).
    Inject(u32, Bytes),
}

/// A random fault schedule. Times are drawn uniformly in `window_ms`; crashed nodes
/// and leavers are distinct nodes of the initial membership.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// How many distinct initial nodes crash.
    pub crashes: u32,
    /// Whether each crashed node restarts, after a delay drawn from `down_ms`.
    pub restart: bool,
    /// How many random two-way partitions (a random split of the initial nodes into two
    /// non-empty sides); each heals after a delay drawn from `down_ms`.
    pub partitions: u32,
    /// How many new nodes join.
    pub joins: u32,
    /// How many distinct initial nodes (not among the crashed) leave cleanly.
    pub leaves: u32,
    /// When faults start, virtual milliseconds.
    pub window_ms: (u64, u64),
    /// How long a node stays down or a partition lasts, virtual milliseconds.
    pub down_ms: (u64, u64),
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            crashes: 0,
            restart: false,
            partitions: 0,
            joins: 0,
            leaves: 0,
            window_ms: (10, 200),
            down_ms: (50, 300),
        }
    }
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Draws the schedule for the initial `nodes`, in time order (ties in draw order).
    pub fn plan(&self, rng: &mut Rng, nodes: &[u32]) -> Vec<(Time, Action)> {
        let mut out = Vec::new();
        let ms = |rng: &mut Rng, r: (u64, u64)| rng.range(r.0, r.1);
        let mut pool: Vec<u32> = nodes.to_vec();
        shuffle(rng, &mut pool);
        let crashed: Vec<u32> = pool.iter().copied().take(self.crashes as usize).collect();
        for &n in &crashed {
            let at = ms(rng, self.window_ms);
            out.push((Time::from_millis(at), Action::Crash(n)));
            if self.restart {
                let back = at + ms(rng, self.down_ms).max(1);
                out.push((Time::from_millis(back), Action::Restart(n)));
            }
        }
        let leavers = pool.iter().copied().skip(crashed.len()).take(self.leaves as usize);
        for n in leavers {
            out.push((Time::from_millis(ms(rng, self.window_ms)), Action::Leave(n)));
        }
        for _ in 0..self.partitions {
            if nodes.len() < 2 {
                break;
            }
            let mut side = nodes.to_vec();
            shuffle(rng, &mut side);
            let k = rng.range(1, side.len() as u64 - 1) as usize;
            let (mut a, mut b) = (side[..k].to_vec(), side[k..].to_vec());
            a.sort_unstable();
            b.sort_unstable();
            let at = ms(rng, self.window_ms);
            let heal = at + ms(rng, self.down_ms).max(1);
            out.push((Time::from_millis(at), Action::Partition(a.clone(), b.clone())));
            out.push((Time::from_millis(heal), Action::Heal(a, b)));
        }
        for _ in 0..self.joins {
            out.push((Time::from_millis(ms(rng, self.window_ms)), Action::Join));
        }
        out.sort_by_key(|e| e.0);
        out
    }
}

fn shuffle(rng: &mut Rng, v: &mut [u32]) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_a_function_of_the_seed() {
        let f = Faults {
            crashes: 2,
            restart: true,
            partitions: 2,
            joins: 1,
            leaves: 1,
            ..Faults::default()
        };
        let nodes = [0, 1, 2, 3, 4];
        let a = f.plan(&mut Rng::new(7), &nodes);
        assert_eq!(a, f.plan(&mut Rng::new(7), &nodes));
        assert_ne!(a, f.plan(&mut Rng::new(8), &nodes));
        assert_eq!(a.len(), 2 * 2 + 2 * 2 + 1 + 1);
        assert!(a.windows(2).all(|w| w[0].0 <= w[1].0));
        let crashed: Vec<u32> = a
            .iter()
            .filter_map(|(_, x)| if let Action::Crash(n) = x { Some(*n) } else { None })
            .collect();
        let left: Vec<u32> = a
            .iter()
            .filter_map(|(_, x)| if let Action::Leave(n) = x { Some(*n) } else { None })
            .collect();
        assert_eq!(crashed.len(), 2);
        assert_ne!(crashed[0], crashed[1]);
        assert!(!crashed.contains(&left[0]));
        for (_, x) in &a {
            if let Action::Partition(p, q) = x {
                assert!(!p.is_empty() && !q.is_empty());
                assert_eq!(p.len() + q.len(), nodes.len());
            }
        }
    }
}
