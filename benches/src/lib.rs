//! Shared helpers for Strata's criterion benchmarks (`benches/benches/*.rs`).
//!
//! The loop every in-process benchmark measures: the application casts, the stack's
//! datagram goes back in as if received from the network, and the delivery is taken
//! by the application. No sockets, no clock: time is injected.

use stack_core::{AppEvent, Bytes, Layer, MemberId, NetOut, Stack, StackConfig, Time};

/// A joined one-member stack over `layers` (bottom to top).
pub fn stack(layers: Vec<Box<dyn Layer>>) -> Stack {
    let me = MemberId::new(1, 0);
    let mut s = Stack::new(layers, StackConfig { me, seed: 1, members: vec![me] });
    s.join(Time::ZERO);
    while s.poll_net().is_some() {}
    while s.poll_event().is_some() {}
    s
}

/// One cast down through every layer and back up through every layer. Returns the
/// number of messages delivered (1 unless a layer holds it back).
#[inline]
pub fn round_trip(s: &mut Stack, now: Time, payload: &Bytes) -> usize {
    let me = s.me();
    let _ = s.cast(now, payload.clone());
    while let Some(out) = s.poll_net() {
        if let NetOut::Cast(m) = out {
            s.receive(now, me, true, m.to_bytes());
        }
    }
    let mut n = 0;
    while let Some(ev) = s.poll_event() {
        n += matches!(ev, AppEvent::Deliver { .. }) as usize;
    }
    n
}

/// Like [`round_trip`], for layers that hold datagrams back for a short while
/// (bundling): casts `burst` messages at `now`, then fires the stack's timers that are
/// due within `hold` and passes what they release back in. Returns the deliveries.
pub fn burst_round_trip(
    s: &mut Stack,
    now: Time,
    payload: &Bytes,
    burst: usize,
    hold: std::time::Duration,
) -> usize {
    let me = s.me();
    let mut n = 0;
    for _ in 0..burst {
        let _ = s.cast(now, payload.clone());
    }
    let until = now + hold;
    loop {
        while let Some(out) = s.poll_net() {
            if let NetOut::Cast(m) = out {
                s.receive(now, me, true, m.to_bytes());
            }
        }
        while let Some(ev) = s.poll_event() {
            n += matches!(ev, AppEvent::Deliver { .. }) as usize;
        }
        match s.next_timeout() {
            Some(t) if t <= until => s.handle_timeout(t),
            _ => break,
        }
    }
    n
}

/// N stacks of one group in one thread, joined by a perfect in-memory network: no
/// loss, no delay, multicast to every member including the sender (as loopback
/// multicast does). Time is virtual and moves in small steps while members cast and
/// jumps to the next timer when nothing else happens, so a run costs only the
/// stacks' own work plus a queue. Members are `MemberId::new(1..=n, 0)`; stacks
/// without a membership layer install them all as the static view.
pub struct Mesh {
    pub stacks: Vec<Stack>,
    pub now: Time,
    /// Casts the application made, all members.
    pub sent: u64,
    /// Casts delivered, all members (a cast counts once per member).
    pub delivered: u64,
    wire: std::collections::VecDeque<(usize, Option<MemberId>, Bytes)>,
}

/// How far virtual time moves per round while members cast.
const STEP: std::time::Duration = std::time::Duration::from_micros(20);

impl Mesh {
    /// `n` members, each running the layers `make` builds (bottom to top).
    pub fn new(n: usize, mut make: impl FnMut() -> Vec<Box<dyn Layer>>) -> Mesh {
        let ids: Vec<MemberId> = (1..=n as u32).map(|i| MemberId::new(i, 0)).collect();
        let stacks = ids
            .iter()
            .map(|&me| Stack::new(make(), StackConfig { me, seed: me.0, members: ids.clone() }))
            .collect();
        Mesh { stacks, now: Time::ZERO, sent: 0, delivered: 0, wire: Default::default() }
    }

    /// Joins every member and runs until every member's view holds all of them
    /// (false if that takes more than 30 virtual seconds).
    pub fn join(&mut self) -> bool {
        for s in &mut self.stacks {
            s.join(self.now);
        }
        let n = self.stacks.len();
        let limit = self.now + std::time::Duration::from_secs(30);
        loop {
            self.pump();
            if self.stacks.iter().all(|s| s.view().is_some_and(|v| v.members.len() == n)) {
                return true;
            }
            if self.now > limit || !self.jump_to_next_timer() {
                return false;
            }
        }
    }

    /// Moves every datagram and event until nothing moves.
    pub fn pump(&mut self) {
        loop {
            for (i, s) in self.stacks.iter_mut().enumerate() {
                while let Some(out) = s.poll_net() {
                    match out {
                        NetOut::Cast(m) => self.wire.push_back((i, None, m.to_bytes())),
                        NetOut::Send(d, m) => self.wire.push_back((i, Some(d), m.to_bytes())),
                        NetOut::View(_) => {}
                    }
                }
                while let Some(ev) = s.poll_event() {
                    match ev {
                        AppEvent::Deliver { .. } => self.delivered += 1,
                        AppEvent::Block => s.block_ok(self.now),
                        AppEvent::StateRequest => s.state_reply(self.now, Bytes::new()),
                        _ => {}
                    }
                }
            }
            if self.wire.is_empty() {
                return;
            }
            while let Some((from, dest, bytes)) = self.wire.pop_front() {
                let me = self.stacks[from].me();
                for s in &mut self.stacks {
                    match dest {
                        None => s.receive(self.now, me, true, bytes.clone()),
                        Some(d) if d == s.me() => s.receive(self.now, me, false, bytes.clone()),
                        Some(_) => {}
                    }
                }
            }
        }
    }

    fn fire_timers(&mut self) {
        for s in &mut self.stacks {
            if s.next_timeout().is_some_and(|t| t <= self.now) {
                s.handle_timeout(self.now);
            }
        }
    }

    /// Moves time to the earliest timer and fires it; false if no timer is set.
    fn jump_to_next_timer(&mut self) -> bool {
        let Some(t) = self.stacks.iter().filter_map(|s| s.next_timeout()).min() else {
            return false;
        };
        self.now = self.now.max(t);
        self.fire_timers();
        true
    }

    /// Every member casts `per_member` copies of `payload` as fast as its stack takes
    /// them (at most `burst` per round), then the mesh runs until every member
    /// delivered every cast or `limit` of virtual time passed. Returns whether every
    /// cast was delivered everywhere.
    pub fn flood(
        &mut self,
        per_member: u64,
        payload: &Bytes,
        burst: usize,
        limit: std::time::Duration,
    ) -> bool {
        let n = self.stacks.len() as u64;
        let mut left = vec![per_member; self.stacks.len()];
        let target = self.delivered + per_member * n * n;
        let until = self.now + limit;
        while self.delivered < target && self.now <= until {
            let mut cast_any = false;
            for (s, left) in self.stacks.iter_mut().zip(left.iter_mut()) {
                for _ in 0..burst {
                    if *left == 0 || s.cast(self.now, payload.clone()).is_err() {
                        break;
                    }
                    *left -= 1;
                    self.sent += 1;
                    cast_any = true;
                }
            }
            self.pump();
            if cast_any || left.iter().any(|&l| l > 0) {
                self.now = self.now + STEP;
                self.fire_timers();
            } else if !self.jump_to_next_timer() {
                break;
            }
            self.pump();
        }
        self.delivered >= target
    }
}
