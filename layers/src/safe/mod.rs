//! `safe`: uniform (safe) delivery: a cast is delivered only once every member of the
//! view holds it.
//!
//! # Protocol
//!
//! The layer numbers casts per sender at its own level (the `i`-th cast of a sender in
//! the view, which reliable FIFO below makes the same message everywhere) and keeps
//! every received cast in one queue, in arrival order. Each member multicasts an `Ack`
//! with how many casts of each sender (by rank) it holds: `ack_delay_us` after the
//! first cast it has not acknowledged yet (0: once the current burst of input is
//! processed), so one ack covers a whole burst, and nothing is sent when nothing new
//! arrived. The head of the queue, the `i`-th cast of `s`, is delivered once every
//! member of the view has acknowledged at least `i` casts of `s` (this member's own
//! count is read directly). Delivering strictly from the head keeps whatever order the
//! layers below produced (FIFO, causal or total), so place `safe` above the ordering
//! layer; its acks are casts and travel through that layer like any other.
//!
//! Why not `Up::Stable` from the `stable` layer: it counts in the reliable layer's
//! sequence numbers, which do not map onto the casts seen here when `frag` (or any
//! layer adding its own traffic) sits in between; acknowledging at this level is exact
//! whatever lies below, at the cost of one ack cast per member per burst (`n²`
//! messages when every member receives one burst). `Up::Stable` passes through.
//!
//! **Views.** Counts restart with every view (learned from `Up::View` or `Down::View`).
//! Before a new view passes up, every cast still held is delivered in queue order:
//! flush below guarantees that every survivor holds the same old-view casts, which is
//! exactly what safe delivery waits for among the members that remain. After `BlockOk`
//! goes down the layer sends no more acks in the view.
//!
//! Point-to-point sends are not held and carry no header of this layer.
//!
//! # Parameters
//!
//! `Safe(ack_delay_us: 0)`.
//!
//! # Properties
//!
//! Requires `reliable-fifo` and `views`; provides `safe`.
//!
//! # Events generated
//!
//! `Up::Cast` once stable; `Down::Cast` of `Ack` messages. Counters: `delivered`,
//! `acks_sent`, `held_back` (gauge), `held_back_peak`, `delivered_at_view_change`,
//! `foreign_dropped`, `malformed_dropped`.
//!
//! # Testing
//!
//! Unit tests through the harness assert holding until every member acked, ack
//! batching and the view change; `wire.rs` has byte vectors and never-panics tests;
//! `layers/tests/order.rs` runs safe over total with several stacks.

pub mod wire;

use serde::Deserialize;
use stack_core::{props, Bytes, Ctx, Down, Layer, MemberId, Msg, Property, TimerId, Up, View};
use std::collections::VecDeque;
use std::time::Duration;
use wire::{Counts, SafeHdr};

/// Parameters of `Safe(...)`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SafeParams {
    /// How long the first unacknowledged cast waits before this member acks (0: once
    /// the current burst of input is processed).
    pub ack_delay_us: u64,
}

const ACK: TimerId = TimerId(1);

/// The safe-delivery layer.
pub struct Safe {
    params: SafeParams,
    view: Option<View>,
    me: usize,
    blocked: bool,
    /// Casts received from each rank in this view.
    received: Counts,
    /// What this member acknowledged last.
    acked_by_me: Counts,
    /// Per member rank, its latest acknowledged counts.
    acked: Vec<Counts>,
    /// Received, undelivered casts: `(sender rank, number, message)`, arrival order.
    held: VecDeque<(usize, u64, Msg)>,
}

impl Safe {
    pub fn new(params: SafeParams) -> Self {
        Safe {
            params,
            view: None,
            me: usize::MAX,
            blocked: false,
            received: Counts::new(),
            acked_by_me: Counts::new(),
            acked: Vec::new(),
            held: VecDeque::new(),
        }
    }

    fn install(&mut self, v: &View, ctx: &mut Ctx) {
        if self.view.as_ref().is_some_and(|c| c.id >= v.id) {
            return;
        }
        while let Some((r, _, msg)) = self.held.pop_front() {
            ctx.count("delivered_at_view_change", 1);
            self.deliver(r, msg, ctx);
        }
        let n = v.len();
        self.me = v.rank(ctx.me()).unwrap_or(usize::MAX);
        self.blocked = false;
        self.received = Counts::from_elem(0, n);
        self.acked_by_me = Counts::from_elem(0, n);
        self.acked = vec![Counts::from_elem(0, n); n];
        ctx.cancel_timer(ACK);
        ctx.gauge("held_back", 0);
        self.view = Some(v.clone());
    }

    fn deliver(&mut self, rank: usize, msg: Msg, ctx: &mut Ctx) {
        ctx.count("delivered", 1);
        let from = self.view.as_ref().map(|v| v.members[rank]).unwrap_or(MemberId(0));
        ctx.up(Up::Cast(from, msg));
    }

    fn release(&mut self, ctx: &mut Ctx) {
        while let Some(&(s, i, _)) = self.held.front() {
            let me = self.me;
            let stable = self.acked.iter().enumerate().all(|(k, a)| {
                if k == me {
                    self.received[s] >= i
                } else {
                    a[s] >= i
                }
            });
            if !stable {
                break;
            }
            let (s, _, msg) = self.held.pop_front().expect("front exists");
            self.deliver(s, msg, ctx);
        }
        ctx.gauge("held_back", self.held.len() as u64);
    }

    fn send_ack(&mut self, ctx: &mut Ctx) {
        ctx.cancel_timer(ACK);
        if self.blocked || self.received == self.acked_by_me {
            return;
        }
        self.acked_by_me.clone_from(&self.received);
        let mut msg = ctx.new_msg(Bytes::new());
        msg.push(&SafeHdr::Ack { counts: self.received.clone() });
        ctx.down(Down::Cast(msg));
        ctx.count("acks_sent", 1);
    }

    fn receive(&mut self, from: MemberId, mut msg: Msg, ctx: &mut Ctx) {
        let Some(j) = self.view.as_ref().and_then(|v| v.rank(from)) else {
            ctx.count("foreign_dropped", 1);
            return;
        };
        match msg.pop::<SafeHdr>() {
            Ok(SafeHdr::Data) => {
                self.received[j] += 1;
                self.held.push_back((j, self.received[j], msg));
                ctx.peak("held_back_peak", self.held.len() as u64);
                if !self.blocked && !ctx.timer_is_set(ACK) {
                    let at = ctx.now() + Duration::from_micros(self.params.ack_delay_us);
                    ctx.set_timer(ACK, at);
                }
            }
            Ok(SafeHdr::Ack { counts }) if counts.len() == self.received.len() => {
                if j != self.me {
                    for (a, c) in self.acked[j].iter_mut().zip(counts) {
                        *a = (*a).max(c);
                    }
                }
            }
            _ => {
                ctx.count("malformed_dropped", 1);
                return;
            }
        }
        self.release(ctx);
    }
}

impl Layer for Safe {
    fn name(&self) -> &'static str {
        "safe"
    }
    fn requires(&self) -> &[Property] {
        &[props::RELIABLE_FIFO, props::VIEWS]
    }
    fn provides(&self) -> &[Property] {
        &[props::SAFE]
    }
    fn header_max(&self) -> usize {
        1
    }

    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        match ev {
            Down::Cast(mut msg) => {
                msg.push(&SafeHdr::Data);
                ctx.down(Down::Cast(msg));
            }
            Down::BlockOk => {
                self.send_ack(ctx);
                self.blocked = true;
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
        if id == ACK {
            self.send_ack(ctx);
        }
    }
}

#[cfg(test)]
mod tests;
