//! `total`: one total order on all casts of a view, by a sequencer or by Lamport
//! timestamps.
//!
//! # Protocol
//!
//! Both algorithms sit on reliable FIFO per sender within a view, and count each
//! sender's casts in the view at this layer (the `i`-th cast of a sender is the same
//! message at every member). A member's own casts come back from the layers below like
//! everyone else's and are ordered with them.
//!
//! **`Sequencer`** (Amoeba, JGroups SEQUENCER). Members cast with a one-byte `Data`
//! header. The member ranked 0 in the view, the sequencer, appends every data cast it
//! receives to a batch of runs `(rank, count)` ("the next `count` casts of the member
//! ranked `rank`"; FIFO below makes the sender's sequence numbers implicit) and casts
//! the batch as one `Order` message when the batch timer fires (`batch_delay_us` after
//! the first entry; 0 means once the current burst of input is processed) or when it
//! holds `max_runs` runs. A burst of a thousand casts from one sender is ordered by a
//! four-byte message. Every member, the sequencer included, delivers on receipt of
//! order messages: the head of the order once that cast has arrived.
//!
//! **`Lamport`** (Lamport clocks, as Isis abcast / Skeen without the proposal round).
//! Each cast carries its sender's Lamport timestamp (`Stamped`); the clock advances on
//! every send and receive, so a sender's timestamps strictly increase. Casts are
//! delivered in `(timestamp, sender rank)` order: the smallest held cast is delivered
//! once every other member has been heard from with a timestamp at least as large
//! (FIFO below means nothing smaller can still come from it). Members that have nothing
//! to send answer with a payload-less `Clock` cast, `clock_delay_us` after receiving a
//! cast stamped beyond their last send, so the group makes progress; a member's own
//! in-flight casts are waited for before anything stamped after them.
//!
//! **Trade-offs.** The sequencer delivers after two hops (cast, then order) whoever
//! sends, sends one small order message per burst (not per cast), and is idle when the
//! group is; but every cast waits for one member, whose failure stalls ordering until
//! the view change, and which sees all the traffic. Lamport has no special member and
//! no extra hop when every member casts continuously (the casts themselves carry the
//! clocks: highest throughput under all-to-all load), but a cast waits to hear from
//! *every* member, so the slowest member sets latency, and an otherwise idle group pays
//! `n - 1` clock messages per burst of casts; one crashed member stops all delivery
//! until the view change removes it.
//!
//! **Views.** The layer learns views from `Up::View` (above membership) or
//! `Down::View` (a static view). Before passing a new view up it delivers everything
//! left of the old view in a deterministic order, then resets its state (order and
//! clocks restart with each view). Sequencer: first the ordered prefix (casts named by
//! order messages, in order, skipping casts that never arrived: with FIFO below, a
//! missing cast means the rest of that sender's casts are missing too), then the
//! unordered remainder by sender rank, then sender sequence. Lamport: everything held,
//! in `(timestamp, rank)` order. All survivors deliver the same sequence because flush
//! below gives every survivor the same set of old-view casts *including order and clock
//! messages* (they are casts too), and the rule above depends only on that set: each
//! survivor's earlier deliveries were a prefix of the same sequence. If the sequencer
//! crashed mid-way, its order messages that reached no survivor simply do not count.
//! After passing `BlockOk` down the layer sends nothing more in the view (the sequencer
//! flushes its batch just before).
//!
//! Point-to-point sends are not ordered and carry no header of this layer.
//!
//! # Parameters
//!
//! `Total(algorithm: Sequencer, batch_delay_us: 0, max_runs: 64, clock_delay_us: 0)`
//! (the defaults); `algorithm` is `Sequencer` or `Lamport`.
//!
//! # Properties
//!
//! Requires `reliable-fifo` and `views`; provides `total`.
//!
//! # Events generated
//!
//! `Up::Cast` in the total order; `Down::Cast` of `Order` (sequencer) or `Clock`
//! (Lamport) messages. Counters: `ordered` (casts delivered by the ordering rule),
//! `delivered_at_view_change` (casts delivered by the view-change rule), `held_back`
//! (gauge), `held_back_peak`, `order_msgs_sent` (order or clock messages),
//! `foreign_dropped`, `malformed_dropped`.
//!
//! # Testing
//!
//! Unit tests through the harness assert order assignment, batching and delivery by
//! order, the Lamport delivery rule and clock messages, and both view-change rules;
//! `wire.rs` has byte vectors and never-panics tests; `layers/tests/order.rs` runs
//! several stacks with concurrent senders over a network that reorders across senders
//! and checks that every member delivers the same sequence.

pub mod wire;

use serde::Deserialize;
use stack_core::{props, Bytes, Ctx, Down, Layer, MemberId, Msg, Property, TimerId, Up, View};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use wire::{Runs, TotalHdr};

/// How the total order is decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum Algorithm {
    /// The member ranked 0 assigns the order.
    #[default]
    Sequencer,
    /// Lamport timestamps; delivery once every member's clock has passed.
    Lamport,
}

/// Parameters of `Total(...)`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TotalParams {
    pub algorithm: Algorithm,
    /// Sequencer: how long the first unannounced cast waits for others to join its
    /// order message (0: until the current burst of input is processed).
    pub batch_delay_us: u64,
    /// Sequencer: an order message is sent at once when it holds this many runs.
    pub max_runs: usize,
    /// Lamport: how long a member that has nothing to send waits before announcing its
    /// clock (0: once the current burst of input is processed).
    pub clock_delay_us: u64,
}

impl Default for TotalParams {
    fn default() -> Self {
        TotalParams {
            algorithm: Algorithm::Sequencer,
            batch_delay_us: 0,
            max_runs: 64,
            clock_delay_us: 0,
        }
    }
}

const BATCH: TimerId = TimerId(1);
const CLOCK: TimerId = TimerId(2);

/// The total-order layer.
pub struct Total {
    params: TotalParams,
    view: Option<View>,
    /// This member's rank (`usize::MAX` outside the view).
    me: usize,
    /// `BlockOk` went down: no more casts from this layer in this view.
    blocked: bool,
    /// Casts received and not delivered.
    waiting: usize,
    // Sequencer.
    /// Received, undelivered casts per sender rank, in FIFO order.
    queues: Vec<VecDeque<Msg>>,
    /// Ordered runs not yet delivered.
    order: VecDeque<(u32, u64)>,
    /// The sequencer's runs not yet announced.
    batch: Runs,
    // Lamport.
    clock: u64,
    last_sent: u64,
    /// Last timestamp received from each rank.
    heard: Vec<u64>,
    held: BTreeMap<(u64, u32), Msg>,
}

impl Total {
    pub fn new(params: TotalParams) -> Self {
        Total {
            params,
            view: None,
            me: usize::MAX,
            blocked: false,
            waiting: 0,
            queues: Vec::new(),
            order: VecDeque::new(),
            batch: Runs::new(),
            clock: 0,
            last_sent: 0,
            heard: Vec::new(),
            held: BTreeMap::new(),
        }
    }

    fn install(&mut self, v: &View, ctx: &mut Ctx) {
        if self.view.as_ref().is_some_and(|c| c.id >= v.id) {
            return;
        }
        self.finish_view(ctx);
        let n = v.len();
        self.me = v.rank(ctx.me()).unwrap_or(usize::MAX);
        self.blocked = false;
        self.waiting = 0;
        self.queues = (0..n).map(|_| VecDeque::new()).collect();
        self.order.clear();
        self.batch.clear();
        self.clock = 0;
        self.last_sent = 0;
        self.heard = vec![0; n];
        self.held.clear();
        ctx.cancel_timer(BATCH);
        ctx.cancel_timer(CLOCK);
        ctx.gauge("held_back", 0);
        self.view = Some(v.clone());
    }

    /// Delivers what is left of the view by the deterministic view-change rule.
    fn finish_view(&mut self, ctx: &mut Ctx) {
        if self.waiting == 0 {
            return;
        }
        match self.params.algorithm {
            Algorithm::Sequencer => {
                self.deliver_ordered(ctx);
                // The ordered prefix, skipping casts that never arrived.
                while let Some((r, c)) = self.order.pop_front() {
                    for _ in 0..c {
                        match self.queues[r as usize].pop_front() {
                            Some(msg) => self.deliver(r as usize, msg, "ordered", ctx),
                            None => break,
                        }
                    }
                }
                // Then the rest by rank, then sender sequence.
                for r in 0..self.queues.len() {
                    while let Some(msg) = self.queues[r].pop_front() {
                        self.deliver(r, msg, "delivered_at_view_change", ctx);
                    }
                }
            }
            Algorithm::Lamport => {
                self.deliver_stamped(ctx);
                while let Some(((_, r), msg)) = self.held.pop_first() {
                    self.deliver(r as usize, msg, "delivered_at_view_change", ctx);
                }
            }
        }
    }

    fn deliver(&mut self, rank: usize, msg: Msg, counter: &'static str, ctx: &mut Ctx) {
        self.waiting -= 1;
        ctx.count(counter, 1);
        let from = self.view.as_ref().map(|v| v.members[rank]).unwrap_or(MemberId(0));
        ctx.up(Up::Cast(from, msg));
    }

    fn hold(&mut self, ctx: &mut Ctx) {
        self.waiting += 1;
        ctx.peak("held_back_peak", self.waiting as u64);
    }

    fn cast_local(&mut self, hdr: TotalHdr, ctx: &mut Ctx) {
        let mut msg = ctx.new_msg(Bytes::new());
        msg.push(&hdr);
        ctx.down(Down::Cast(msg));
        ctx.count("order_msgs_sent", 1);
    }

    // ---- Sequencer ----

    fn send_order(&mut self, ctx: &mut Ctx) {
        ctx.cancel_timer(BATCH);
        if self.batch.is_empty() || self.blocked {
            return;
        }
        let runs = std::mem::take(&mut self.batch);
        self.cast_local(TotalHdr::Order { runs }, ctx);
    }

    fn deliver_ordered(&mut self, ctx: &mut Ctx) {
        while let Some(&(r, c)) = self.order.front() {
            let Some(msg) = self.queues[r as usize].pop_front() else { break };
            if c == 1 {
                self.order.pop_front();
            } else {
                self.order[0].1 = c - 1;
            }
            self.deliver(r as usize, msg, "ordered", ctx);
        }
    }

    fn on_data(&mut self, j: usize, msg: Msg, ctx: &mut Ctx) {
        self.queues[j].push_back(msg);
        self.hold(ctx);
        if self.me == 0 && !self.blocked {
            match self.batch.last_mut() {
                Some((r, c)) if *r as usize == j => *c += 1,
                _ => self.batch.push((j as u32, 1)),
            }
            if self.batch.len() >= self.params.max_runs.max(1) {
                self.send_order(ctx);
            } else if !ctx.timer_is_set(BATCH) {
                let at = ctx.now() + Duration::from_micros(self.params.batch_delay_us);
                ctx.set_timer(BATCH, at);
            }
        }
        self.deliver_ordered(ctx);
    }

    fn on_order(&mut self, j: usize, runs: Runs, ctx: &mut Ctx) {
        let n = self.queues.len();
        if j != 0 || runs.iter().any(|&(r, _)| r as usize >= n) {
            ctx.count("malformed_dropped", 1);
            return;
        }
        for run in runs {
            match self.order.back_mut() {
                Some((r, c)) if *r == run.0 => *c += run.1,
                _ => self.order.push_back(run),
            }
        }
        self.deliver_ordered(ctx);
    }

    // ---- Lamport ----

    /// Whether the member ranked `k` can no longer send anything stamped `ts` or lower
    /// that this member has not received.
    fn passed(&self, k: usize, ts: u64) -> bool {
        if k == self.me && self.heard[k] >= self.last_sent {
            true // nothing of ours in flight, and our next stamp exceeds our clock
        } else {
            self.heard[k] >= ts
        }
    }

    fn deliver_stamped(&mut self, ctx: &mut Ctx) {
        while let Some((&(ts, j), _)) = self.held.first_key_value() {
            let ready = (0..self.heard.len()).all(|k| k == j as usize || self.passed(k, ts));
            if !ready {
                break;
            }
            let (_, msg) = self.held.pop_first().expect("first exists");
            self.deliver(j as usize, msg, "ordered", ctx);
        }
    }

    fn on_stamp(&mut self, j: usize, ts: u64, msg: Option<Msg>, ctx: &mut Ctx) {
        if ts <= self.heard[j] {
            ctx.count("malformed_dropped", 1);
            return;
        }
        self.heard[j] = ts;
        self.clock = self.clock.max(ts);
        if let Some(msg) = msg {
            self.held.insert((ts, j as u32), msg);
            self.hold(ctx);
            if ts > self.last_sent && !self.blocked && !ctx.timer_is_set(CLOCK) {
                let at = ctx.now() + Duration::from_micros(self.params.clock_delay_us);
                ctx.set_timer(CLOCK, at);
            }
        }
        self.deliver_stamped(ctx);
    }

    fn send_clock(&mut self, ctx: &mut Ctx) {
        ctx.cancel_timer(CLOCK);
        if self.blocked || self.last_sent >= self.clock || self.me == usize::MAX {
            return;
        }
        self.clock += 1;
        self.last_sent = self.clock;
        self.cast_local(TotalHdr::Clock { ts: self.clock }, ctx);
    }

    fn receive(&mut self, from: MemberId, mut msg: Msg, ctx: &mut Ctx) {
        let Some(j) = self.view.as_ref().and_then(|v| v.rank(from)) else {
            ctx.count("foreign_dropped", 1);
            return;
        };
        let Ok(hdr) = msg.pop::<TotalHdr>() else {
            ctx.count("malformed_dropped", 1);
            return;
        };
        match (self.params.algorithm, hdr) {
            (Algorithm::Sequencer, TotalHdr::Data) => self.on_data(j, msg, ctx),
            (Algorithm::Sequencer, TotalHdr::Order { runs }) => self.on_order(j, runs, ctx),
            (Algorithm::Lamport, TotalHdr::Stamped { ts }) => self.on_stamp(j, ts, Some(msg), ctx),
            (Algorithm::Lamport, TotalHdr::Clock { ts }) => self.on_stamp(j, ts, None, ctx),
            // A member running the other algorithm.
            _ => ctx.count("malformed_dropped", 1),
        }
        ctx.gauge("held_back", self.waiting as u64);
    }
}

impl Layer for Total {
    fn name(&self) -> &'static str {
        "total"
    }
    fn requires(&self) -> &[Property] {
        &[props::RELIABLE_FIFO, props::VIEWS]
    }
    fn provides(&self) -> &[Property] {
        &[props::TOTAL]
    }
    fn header_max(&self) -> usize {
        TotalHdr::DATA_MAX_LEN
    }

    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        match ev {
            Down::Cast(mut msg) => {
                if self.me == usize::MAX {
                    ctx.count("foreign_dropped", 1);
                    return;
                }
                match self.params.algorithm {
                    Algorithm::Sequencer => msg.push(&TotalHdr::Data),
                    Algorithm::Lamport => {
                        self.clock += 1;
                        self.last_sent = self.clock;
                        ctx.cancel_timer(CLOCK);
                        msg.push(&TotalHdr::Stamped { ts: self.clock });
                    }
                }
                ctx.down(Down::Cast(msg));
            }
            Down::BlockOk => {
                match self.params.algorithm {
                    Algorithm::Sequencer => self.send_order(ctx),
                    Algorithm::Lamport => self.send_clock(ctx),
                }
                self.blocked = true;
                ctx.cancel_timer(BATCH);
                ctx.cancel_timer(CLOCK);
                ctx.down(Down::BlockOk);
            }
            Down::View(v) => {
                self.install(&v, ctx);
                ctx.down(Down::View(v));
            }
            ev => ctx.down(ev),
        }
    }

    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        match ev {
            Up::Cast(from, msg) => self.receive(from, msg, ctx),
            Up::View(v) => {
                self.install(&v, ctx);
                ctx.up(Up::View(v));
            }
            ev => ctx.up(ev),
        }
    }

    fn timer(&mut self, id: TimerId, ctx: &mut Ctx) {
        match id {
            BATCH => self.send_order(ctx),
            CLOCK => self.send_clock(ctx),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
