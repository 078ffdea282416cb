//! Several stacks over a small deterministic lossy network (seeded, virtual time,
//! loss, duplication, reordering): `nak` alone and `nak` + `stable` deliver every
//! cast of every sender exactly once in per-sender order, every point-to-point
//! message exactly once in order, and with `stable` every buffer drains and the
//! group goes quiet once traffic stops.

use layers::nak::{Nak, NakParams};
use layers::stable::{Stable, StableParams};
use stack_core::{AppEvent, Bytes, Layer, MemberId, NetOut, Rng, Stack, StackConfig, Time};
use std::collections::BTreeMap;
use std::time::Duration;

struct Faults {
    loss: f64,
    dup: f64,
    min_delay_us: u64,
    max_delay_us: u64,
}

struct Packet {
    from: usize,
    to: usize,
    cast: bool,
    bytes: Bytes,
}

struct World {
    stacks: Vec<Stack>,
    ids: Vec<MemberId>,
    rng: Rng,
    faults: Faults,
    /// In flight, keyed by (arrival time, sequence) so ties are deterministic.
    flight: BTreeMap<(Time, u64), Packet>,
    seq: u64,
    now: Time,
    datagrams: u64,
    last_datagram: Time,
    /// Per member: (from, seq) of every delivered cast, in order.
    delivered: Vec<Vec<(MemberId, u64)>>,
    /// Per member: (from, payload) of every point-to-point message, in order.
    received: Vec<Vec<(MemberId, Bytes)>>,
}

impl World {
    fn new(n: usize, seed: u64, faults: Faults, stable: bool) -> World {
        let ids: Vec<MemberId> = (0..n).map(|i| MemberId::new(i as u32 + 1, 0)).collect();
        let stacks = ids
            .iter()
            .enumerate()
            .map(|(i, &me)| {
                let mut layers: Vec<Box<dyn Layer>> =
                    vec![Box::new(Nak::new(NakParams::default()))];
                if stable {
                    layers.push(Box::new(Stable::new(StableParams::default())));
                }
                let cfg = StackConfig { me, seed: seed ^ (i as u64 * 7919), members: ids.clone() };
                Stack::new(layers, cfg)
            })
            .collect();
        World {
            stacks,
            ids,
            rng: Rng::new(seed),
            faults,
            flight: BTreeMap::new(),
            seq: 0,
            now: Time::ZERO,
            datagrams: 0,
            last_datagram: Time::ZERO,
            delivered: vec![Vec::new(); n],
            received: vec![Vec::new(); n],
        }
    }

    fn transmit(&mut self, from: usize, to: usize, cast: bool, bytes: &Bytes) {
        self.datagrams += 1;
        self.last_datagram = self.now;
        if self.rng.chance(self.faults.loss) {
            return;
        }
        let copies = if self.rng.chance(self.faults.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let d = self.rng.range(self.faults.min_delay_us, self.faults.max_delay_us);
            let at = self.now + Duration::from_micros(d);
            self.seq += 1;
            self.flight.insert((at, self.seq), Packet { from, to, cast, bytes: bytes.clone() });
        }
    }

    /// Moves what stack `i` produced onto the network and into the records.
    fn pump(&mut self, i: usize) {
        while let Some(out) = self.stacks[i].poll_net() {
            match out {
                NetOut::Cast(m) => {
                    let b = m.to_bytes();
                    for j in 0..self.ids.len() {
                        if j != i {
                            self.transmit(i, j, true, &b);
                        }
                    }
                }
                NetOut::Send(d, m) => {
                    let j = self.ids.iter().position(|&x| x == d).expect("known member");
                    self.transmit(i, j, false, &m.to_bytes());
                }
                NetOut::View(_) => {}
            }
        }
        while let Some(ev) = self.stacks[i].poll_event() {
            match ev {
                AppEvent::Deliver { from, seq, .. } => self.delivered[i].push((from, seq)),
                AppEvent::Receive { from, payload } => self.received[i].push((from, payload)),
                _ => {}
            }
        }
    }

    /// Runs until `end`, with `casts` (time, member) and `sends` (time, from, to).
    fn run(
        &mut self,
        end: Time,
        mut casts: Vec<(Time, usize)>,
        mut sends: Vec<(Time, usize, usize)>,
    ) {
        casts.sort();
        sends.sort();
        let (mut ci, mut si) = (0, 0);
        let mut sent_p2p = 0u64;
        for i in 0..self.stacks.len() {
            self.stacks[i].join(Time::ZERO);
            self.pump(i);
        }
        for _step in 0..2_000_000 {
            let mut next = Time::MAX;
            if let Some((&(t, _), _)) = self.flight.iter().next() {
                next = next.min(t);
            }
            for s in &self.stacks {
                if let Some(t) = s.next_timeout() {
                    next = next.min(t);
                }
            }
            if let Some(&(t, _)) = casts.get(ci) {
                next = next.min(t);
            }
            if let Some(&(t, _, _)) = sends.get(si) {
                next = next.min(t);
            }
            if next > end {
                return;
            }
            self.now = self.now.max(next);
            let now = self.now;
            while let Some(entry) = self.flight.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let p = entry.remove();
                let from = self.ids[p.from];
                self.stacks[p.to].receive(now, from, p.cast, p.bytes);
                self.pump(p.to);
            }
            while ci < casts.len() && casts[ci].0 <= now {
                let i = casts[ci].1;
                self.stacks[i].cast(now, Bytes::from(vec![i as u8; 40])).expect("cast accepted");
                self.pump(i);
                ci += 1;
            }
            while si < sends.len() && sends[si].0 <= now {
                let (_, i, j) = sends[si];
                sent_p2p += 1;
                let payload = Bytes::from(format!("{i}->{j}#{sent_p2p}"));
                self.stacks[i].send(now, self.ids[j], payload).expect("send accepted");
                self.pump(i);
                si += 1;
            }
            for i in 0..self.stacks.len() {
                if self.stacks[i].next_timeout().is_some_and(|t| t <= now) {
                    self.stacks[i].handle_timeout(now);
                    self.pump(i);
                }
            }
        }
        panic!("step bound reached");
    }
}

struct Traffic {
    casts: Vec<(Time, usize)>,
    sends: Vec<(Time, usize, usize)>,
    /// Per member, casts made.
    per_member: Vec<u64>,
    /// (from, to) → payloads in order.
    p2p: BTreeMap<(usize, usize), u64>,
}

fn traffic(n: usize, casts: usize, sends: usize, over_ms: u64, seed: u64) -> Traffic {
    let mut rng = Rng::new(seed.wrapping_mul(31));
    let mut t =
        Traffic { casts: vec![], sends: vec![], per_member: vec![0; n], p2p: BTreeMap::new() };
    for _ in 0..casts {
        let i = rng.below(n as u64) as usize;
        t.per_member[i] += 1;
        t.casts.push((Time::from_millis(1) + Duration::from_micros(rng.below(over_ms * 1000)), i));
    }
    for _ in 0..sends {
        let i = rng.below(n as u64) as usize;
        let j = (i + 1 + rng.below(n as u64 - 1) as usize) % n;
        *t.p2p.entry((i, j)).or_default() += 1;
        t.sends.push((
            Time::from_millis(1) + Duration::from_micros(rng.below(over_ms * 1000)),
            i,
            j,
        ));
    }
    t
}

fn check_delivery(w: &World, t: &Traffic, seed: u64) {
    for (i, got) in w.delivered.iter().enumerate() {
        for (s, &sender) in w.ids.iter().enumerate() {
            let seqs: Vec<u64> = got.iter().filter(|d| d.0 == sender).map(|d| d.1).collect();
            let want: Vec<u64> = (1..=t.per_member[s]).collect();
            assert_eq!(seqs, want, "seed {seed}: member {i} delivered from {sender}");
        }
    }
    for (i, got) in w.received.iter().enumerate() {
        for (s, &sender) in w.ids.iter().enumerate() {
            let n = got.iter().filter(|d| d.0 == sender).count() as u64;
            assert_eq!(n, t.p2p.get(&(s, i)).copied().unwrap_or(0), "seed {seed}: {i} from {s}");
            // In order: the running number in each payload increases.
            let nums: Vec<u64> = got
                .iter()
                .filter(|d| d.0 == sender)
                .map(|d| {
                    let s = std::str::from_utf8(&d.1).unwrap();
                    s.rsplit('#').next().unwrap().parse().unwrap()
                })
                .collect();
            assert!(nums.windows(2).all(|w| w[0] < w[1]), "seed {seed}: p2p order at {i}");
        }
    }
}

fn lossy() -> Faults {
    Faults { loss: 0.15, dup: 0.05, min_delay_us: 100, max_delay_us: 3000 }
}

#[test]
fn nak_and_stable_deliver_exactly_once_in_fifo_order_and_drain_buffers() {
    for seed in 1..=4u64 {
        let n = 4 + (seed as usize % 2);
        let t = traffic(n, 300, 40, 2000, seed);
        let mut w = World::new(n, seed, lossy(), true);
        w.run(Time::from_millis(8000), t.casts.clone(), t.sends.clone());
        check_delivery(&w, &t, seed);
        for (i, s) in w.stacks.iter().enumerate() {
            assert_eq!(
                s.counter("nak", "buffered_bytes"),
                0,
                "seed {seed}: member {i} {:?}",
                s.counters()
            );
            assert_eq!(s.counter("nak", "buffered_msgs"), 0, "seed {seed}: member {i}");
            assert!(s.counter("nak", "buffered_bytes_peak") > 0);
        }
        let naks: u64 = w.stacks.iter().map(|s| s.counter("nak", "naks_sent")).sum();
        let dups: u64 = w.stacks.iter().map(|s| s.counter("nak", "duplicates_dropped")).sum();
        assert!(naks > 0 && dups > 0, "seed {seed}: the network did lose and duplicate");
        let sum = |l: &str, c: &str| w.stacks.iter().map(|s| s.counter(l, c)).sum::<u64>();
        eprintln!(
            "seed {seed}: {n} members, {} datagrams, naks {naks}, retransmissions {}, \
             digests {}, gossip {} (+{} piggybacked), last datagram at {} ms",
            w.datagrams,
            sum("nak", "retransmissions"),
            sum("nak", "digests_sent"),
            sum("stable", "gossip_sent"),
            sum("stable", "piggybacked"),
            w.last_datagram.as_millis()
        );
        // Quiet once everything is stable: nothing sent in the last 3 seconds.
        assert!(
            w.last_datagram < Time::from_millis(5000),
            "seed {seed}: still chatting at {:?}",
            w.last_datagram
        );
    }
}

#[test]
fn nak_alone_delivers_exactly_once_in_fifo_order() {
    for seed in 10..=12u64 {
        let t = traffic(5, 250, 30, 1500, seed);
        let mut w = World::new(5, seed, lossy(), false);
        w.run(Time::from_millis(6000), t.casts.clone(), t.sends.clone());
        check_delivery(&w, &t, seed);
        // Without stability nothing is freed but acknowledged point-to-point sends.
        assert!(w.stacks.iter().all(|s| s.counter("nak", "buffered_msgs") > 0));
    }
}

#[test]
fn same_seed_same_run() {
    let run = || {
        let t = traffic(4, 100, 10, 500, 99);
        let mut w = World::new(4, 99, lossy(), true);
        w.run(Time::from_millis(3000), t.casts, t.sends);
        (w.datagrams, w.delivered, w.stacks.iter().map(|s| s.counters()).collect::<Vec<_>>())
    };
    assert_eq!(run(), run());
}
