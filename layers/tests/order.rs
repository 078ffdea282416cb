//! Several stacks over an in-memory network that is reliable and FIFO per link but
//! reorders freely across senders (what reliable FIFO below the ordering layers
//! provides), with concurrent senders and replies: `total` gives every member the same
//! sequence, `causal` never delivers a cast before one it depends on, `safe` over
//! `total` keeps the total order; with no ordering layer both checks catch violations.

use layers::causal::{Causal, CausalParams};
use layers::safe::{Safe, SafeParams};
use layers::total::{Algorithm, Total, TotalParams};
use stack_core::{AppEvent, Bytes, Layer, MemberId, NetOut, Rng, Stack, StackConfig, Time};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

type Layers = fn() -> Vec<Box<dyn Layer>>;
type Deps = BTreeMap<(MemberId, u64), BTreeMap<MemberId, u64>>;

struct Outcome {
    /// Per member, the casts it delivered: `(sender, number)`.
    delivered: Vec<Vec<(MemberId, u64)>>,
    /// Casts made in all.
    casts: usize,
    /// Deliveries that came before a cast they depend on.
    causal_violations: usize,
    stacks: Vec<Stack>,
}

struct World {
    ids: Vec<MemberId>,
    stacks: Vec<Stack>,
    /// Per member, casts delivered per sender.
    counts: Vec<BTreeMap<MemberId, u64>>,
    /// Per cast, the casts it depends on (per sender, how many).
    deps: Deps,
}

impl World {
    fn cast(&mut self, i: usize, now: Time) {
        let seq = self.stacks[i].cast(now, Bytes::from_static(b"x")).expect("static view");
        let mut d = self.counts[i].clone();
        d.insert(self.ids[i], seq - 1);
        self.deps.insert((self.ids[i], seq), d);
    }
}

/// Runs `n` members that each cast `casts` times at random moments and reply (with
/// probability 1/2, at most `casts` times) to casts of others they deliver, until the
/// network is quiet.
fn run(layers: Layers, n: u32, casts: u32, seed: u64) -> Outcome {
    let ids: Vec<MemberId> = (1..=n).map(|i| MemberId::new(i, 0)).collect();
    let stacks = ids
        .iter()
        .map(|&me| Stack::new(layers(), StackConfig { me, seed, members: ids.clone() }))
        .collect();
    let mut w = World { ids, stacks, counts: vec![BTreeMap::new(); n as usize], deps: Deps::new() };
    let mut rng = Rng::new(seed);
    let mut now = Time::ZERO;
    // links[(from, to)]: FIFO per link.
    let mut links: BTreeMap<(usize, usize), VecDeque<(bool, Bytes)>> = BTreeMap::new();
    let mut budget = vec![casts; n as usize];
    let mut replies = vec![0u32; n as usize];
    let mut delivered = vec![Vec::new(); n as usize];
    let mut causal_violations = 0;
    for s in &mut w.stacks {
        s.join(now);
    }
    for step in 0.. {
        assert!(step < 200_000, "seed {seed}: no quiescence");
        // Transmit what the stacks produced; hand events to the applications.
        for i in 0..w.stacks.len() {
            while let Some(out) = w.stacks[i].poll_net() {
                match out {
                    NetOut::Cast(m) => {
                        for j in 0..w.stacks.len() {
                            links.entry((i, j)).or_default().push_back((true, m.to_bytes()));
                        }
                    }
                    NetOut::Send(d, m) => {
                        let j = w.ids.iter().position(|&x| x == d).unwrap();
                        links.entry((i, j)).or_default().push_back((false, m.to_bytes()));
                    }
                    NetOut::View(_) => {}
                }
            }
            while let Some(ev) = w.stacks[i].poll_event() {
                if let AppEvent::Deliver { from, seq, .. } = ev {
                    let dep = &w.deps[&(from, seq)];
                    if dep.iter().any(|(k, &c)| w.counts[i].get(k).copied().unwrap_or(0) < c) {
                        causal_violations += 1;
                    }
                    *w.counts[i].entry(from).or_default() += 1;
                    delivered[i].push((from, seq));
                    if from != w.ids[i] && replies[i] < casts && rng.below(2) == 0 {
                        replies[i] += 1;
                        w.cast(i, now);
                    }
                }
            }
        }
        let busy: Vec<(usize, usize)> =
            links.iter().filter(|(_, q)| !q.is_empty()).map(|(&k, _)| k).collect();
        let pending = budget.iter().any(|&b| b > 0);
        if busy.is_empty() && !pending && w.stacks.iter().all(|s| s.next_timeout().is_none()) {
            break; // quiet: nothing in flight, nothing to send, no timer
        }
        now = now + Duration::from_micros(10);
        match rng.below(10) {
            // A new cast by a random member with budget left.
            0 | 1 if pending => {
                let i = rng.below(n as u64) as usize;
                if budget[i] > 0 {
                    budget[i] -= 1;
                    w.cast(i, now);
                }
            }
            // The end of a burst: due timers fire.
            2 | 3 => fire(&mut w.stacks, now),
            _ if !busy.is_empty() => {
                let (i, j) = busy[rng.below(busy.len() as u64) as usize];
                let (is_cast, bytes) = links.get_mut(&(i, j)).unwrap().pop_front().unwrap();
                w.stacks[j].receive(now, w.ids[i], is_cast, bytes);
            }
            _ => {
                if let Some(t) = w.stacks.iter().filter_map(|s| s.next_timeout()).min() {
                    now = now.max(t);
                }
                fire(&mut w.stacks, now);
            }
        }
    }
    Outcome { delivered, casts: w.deps.len(), causal_violations, stacks: w.stacks }
}

fn fire(stacks: &mut [Stack], now: Time) {
    for s in stacks {
        if s.next_timeout().is_some_and(|t| t <= now) {
            s.handle_timeout(now);
        }
    }
}

fn none() -> Vec<Box<dyn Layer>> {
    Vec::new()
}
fn causal() -> Vec<Box<dyn Layer>> {
    vec![Box::new(Causal::new(CausalParams::default()))]
}
fn lamport_params() -> TotalParams {
    TotalParams { algorithm: Algorithm::Lamport, ..TotalParams::default() }
}
fn sequencer() -> Vec<Box<dyn Layer>> {
    vec![Box::new(Total::new(TotalParams::default()))]
}
fn lamport() -> Vec<Box<dyn Layer>> {
    vec![Box::new(Total::new(lamport_params()))]
}
fn safe_over_sequencer() -> Vec<Box<dyn Layer>> {
    vec![Box::new(Total::new(TotalParams::default())), Box::new(Safe::new(SafeParams::default()))]
}
fn safe_over_lamport() -> Vec<Box<dyn Layer>> {
    vec![Box::new(Total::new(lamport_params())), Box::new(Safe::new(SafeParams::default()))]
}

const SEEDS: std::ops::Range<u64> = 1..9;

/// Every member delivered every cast once, and all in the same sequence.
fn assert_total(o: &Outcome, what: &str, seed: u64) {
    for (i, d) in o.delivered.iter().enumerate() {
        assert_eq!(d.len(), o.casts, "{what} seed {seed}: member {i} delivered {}", d.len());
        let mut sorted = d.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), d.len(), "{what} seed {seed}: member {i} delivered twice");
        assert_eq!(d, &o.delivered[0], "{what} seed {seed}: member {i} diverged from member 0");
    }
}

#[test]
fn sequencer_gives_every_member_the_same_sequence() {
    for seed in SEEDS {
        let o = run(sequencer, 5, 20, seed);
        assert_total(&o, "sequencer", seed);
        // Batching: one order message covers several casts; only the sequencer sends.
        let orders = o.stacks[0].counter("total", "order_msgs_sent");
        assert!(orders > 0 && (orders as usize) < o.casts, "seed {seed}: {orders} orders");
        assert_eq!(o.stacks[1].counter("total", "order_msgs_sent"), 0);
        assert_eq!(o.stacks[1].counter("total", "ordered") as usize, o.casts);
    }
}

#[test]
fn lamport_gives_every_member_the_same_sequence() {
    for seed in SEEDS {
        let o = run(lamport, 5, 20, seed);
        assert_total(&o, "lamport", seed);
        assert!(o.stacks.iter().all(|s| s.counter("total", "held_back_peak") > 0));
    }
}

#[test]
fn safe_over_total_keeps_the_total_order() {
    let stacks: [(&str, Layers); 2] =
        [("safe/sequencer", safe_over_sequencer), ("safe/lamport", safe_over_lamport)];
    for seed in SEEDS {
        for (what, layers) in stacks {
            let o = run(layers, 4, 15, seed);
            assert_total(&o, what, seed);
            assert!(o.stacks.iter().all(|s| s.counter("safe", "acks_sent") > 0));
            assert!(o.stacks.iter().all(|s| s.counter("safe", "held_back_peak") > 0));
        }
    }
}

#[test]
fn causal_never_delivers_a_reply_before_what_it_answers() {
    for seed in SEEDS {
        let o = run(causal, 5, 20, seed);
        assert_eq!(o.causal_violations, 0, "seed {seed}");
        for d in &o.delivered {
            assert_eq!(d.len(), o.casts, "seed {seed}: every cast delivered");
        }
        assert!(o.stacks.iter().any(|s| s.counter("causal", "held_back_peak") > 0));
    }
}

#[test]
fn without_ordering_layers_the_checks_catch_violations() {
    let mut diverged = 0;
    let mut violations = 0;
    for seed in SEEDS {
        let o = run(none, 5, 20, seed);
        if o.delivered.iter().any(|d| d != &o.delivered[0]) {
            diverged += 1;
        }
        violations += o.causal_violations;
    }
    assert_eq!(diverged, SEEDS.count(), "plain FIFO diverged in only {diverged} runs");
    assert!(violations > 0, "no causal violation without the causal layer");
}
