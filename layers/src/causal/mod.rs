//! `causal`: causal order of casts with vector timestamps (Isis cbcast).
//!
//! # Protocol
//!
//! Each member keeps `delivered[k]`, the number of casts of the member ranked `k` in
//! the current view it has delivered. A cast carries its sender's vector: for `k` not
//! the sender, `delivered[k]` at the sender when it cast; for the sender itself, the
//! cast's own number in the view (1, 2, ...). A receiver holds a cast of `j` back until
//! it is the next of `j` (`V[j] = delivered[j] + 1`) and everything it depends on is
//! delivered (`V[k] ≤ delivered[k]` for every `k ≠ j`), then delivers it and retries
//! the held casts, oldest first.
//!
//! **Compression.** A header carries only the entries (`rank`, value) that changed
//! since the sender's previous cast in the view; the sender's own entry is never sent.
//! Receivers rebuild the full vector from the previous one of the same sender, which
//! the reliable FIFO layer below guarantees they have seen. A member that casts in a
//! burst while receiving nothing sends 2-byte headers; the worst case is a cast after
//! every other member cast since the sender's last one: `n - 1` entries, about
//! `1 + 2 + (n - 1) · (1 + 3)` bytes for `n ≤ 128` members and counts below 2^21
//! ([`CausalHdr::worst_len`]). [`Layer::header_max`] reserves that worst case for 16
//! members; larger headers grow the header area once (a copy), never fail.
//!
//! **Own casts.** A member's own casts come back from the layers below like everyone
//! else's (the reliable layer loops them back); they are always deliverable on arrival
//! because the sender had delivered everything they depend on.
//!
//! **Views.** Vectors are indexed by rank and restart at zero with every view; the
//! layer learns views from `Up::View` (above membership) or `Down::View` (a static
//! view), whichever it sees first for a view id. At a view change, any held cast that
//! has become deliverable is delivered (by construction none is: delivery is eager);
//! the rest are dropped and counted in `dropped_at_view_change`. Under flush every
//! survivor holds the same set of old-view casts, so every survivor drops the same ones:
//! a cast stays held only if something it depends on is held by no survivor, which
//! means its sender (which delivered all it depended on) failed. Delivering it instead
//! would break causal order. Casts from a member not in the view, or arriving before
//! any view, are dropped (`foreign_dropped`).
//!
//! Point-to-point sends are not ordered and carry no header of this layer.
//!
//! # Parameters
//!
//! `Causal()`: none.
//!
//! # Properties
//!
//! Requires `reliable-fifo` and `views`; provides `causal`.
//!
//! # Events generated
//!
//! `Up::Cast` in causal order (possibly later than received); casts pass down with a
//! `Data` header. Counters: `delivered`, `held_back` (gauge), `held_back_peak`,
//! `delta_entries_sent`, `dropped_at_view_change`, `foreign_dropped`,
//! `malformed_dropped`.
//!
//! # Testing
//!
//! Unit tests through the harness assert hold-back and release, compression and view
//! changes; `wire.rs` has byte vectors and never-panics tests; `layers/tests/order.rs`
//! runs several stacks with concurrent senders over a network that reorders across
//! senders and checks every delivery against the causal history of its cast.

pub mod wire;

use serde::Deserialize;
use stack_core::{props, Ctx, Down, Layer, MemberId, Msg, Property, Up, View};
use wire::{CausalHdr, Delta};

/// Parameters of `Causal()` (none yet).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CausalParams {}

struct Held {
    from: usize,
    vt: Vec<u64>,
    msg: Msg,
}

/// The causal-order layer.
pub struct Causal {
    view: Option<View>,
    me: usize,
    /// Casts delivered, per rank.
    delivered: Vec<u64>,
    /// The vector carried by this member's previous cast (for deltas).
    last_sent: Vec<u64>,
    /// Per sender rank, the full vector of its previous cast.
    last_seen: Vec<Vec<u64>>,
    held: Vec<Held>,
}

impl Causal {
    pub fn new(_params: CausalParams) -> Self {
        Causal {
            view: None,
            me: 0,
            delivered: Vec::new(),
            last_sent: Vec::new(),
            last_seen: Vec::new(),
            held: Vec::new(),
        }
    }

    fn install(&mut self, v: &View, ctx: &mut Ctx) -> bool {
        if self.view.as_ref().is_some_and(|c| c.id >= v.id) {
            return false;
        }
        if !self.held.is_empty() {
            self.release(ctx);
            ctx.count("dropped_at_view_change", self.held.len() as u64);
            self.held.clear();
            ctx.gauge("held_back", 0);
        }
        let n = v.len();
        self.me = v.rank(ctx.me()).unwrap_or(usize::MAX);
        self.delivered = vec![0; n];
        self.last_sent = vec![0; n];
        self.last_seen = vec![vec![0; n]; n];
        self.view = Some(v.clone());
        true
    }

    fn deliverable(&self, from: usize, vt: &[u64]) -> bool {
        vt.iter().zip(&self.delivered).enumerate().all(
            |(k, (&v, &d))| {
                if k == from {
                    v == d + 1
                } else {
                    v <= d
                }
            },
        )
    }

    fn deliver(&mut self, from: usize, msg: Msg, ctx: &mut Ctx) {
        self.delivered[from] += 1;
        ctx.count("delivered", 1);
        let id = self.view.as_ref().map(|v| v.members[from]).unwrap_or(MemberId(0));
        ctx.up(Up::Cast(id, msg));
    }

    /// Delivers held casts until none is deliverable, oldest first.
    fn release(&mut self, ctx: &mut Ctx) {
        while let Some(i) = self.held.iter().position(|h| self.deliverable(h.from, &h.vt)) {
            let h = self.held.remove(i);
            self.deliver(h.from, h.msg, ctx);
        }
        ctx.gauge("held_back", self.held.len() as u64);
    }

    fn receive(&mut self, from: MemberId, mut msg: Msg, ctx: &mut Ctx) {
        let Some(j) = self.view.as_ref().and_then(|v| v.rank(from)) else {
            ctx.count("foreign_dropped", 1);
            return;
        };
        let Ok(CausalHdr::Data { delta }) = msg.pop::<CausalHdr>() else {
            ctx.count("malformed_dropped", 1);
            return;
        };
        let prev = &self.last_seen[j];
        let n = prev.len();
        // A delta names other members, never the sender, and entries only grow.
        let ok = delta.iter().all(|&(r, v)| {
            let r = r as usize;
            r < n && r != j && v >= prev[r]
        });
        if !ok {
            ctx.count("malformed_dropped", 1);
            return;
        }
        let vt = &mut self.last_seen[j];
        for &(r, v) in &delta {
            vt[r as usize] = v;
        }
        vt[j] += 1;
        if self.deliverable(j, &self.last_seen[j]) {
            self.deliver(j, msg, ctx);
            if !self.held.is_empty() {
                self.release(ctx);
            }
        } else {
            let vt = self.last_seen[j].clone();
            self.held.push(Held { from: j, vt, msg });
            ctx.gauge("held_back", self.held.len() as u64);
            ctx.peak("held_back_peak", self.held.len() as u64);
        }
    }
}

impl Layer for Causal {
    fn name(&self) -> &'static str {
        "causal"
    }
    fn requires(&self) -> &[Property] {
        &[props::RELIABLE_FIFO, props::VIEWS]
    }
    fn provides(&self) -> &[Property] {
        &[props::CAUSAL]
    }
    fn header_max(&self) -> usize {
        CausalHdr::worst_len(16)
    }

    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        match ev {
            Down::Cast(mut msg) => {
                if self.me >= self.delivered.len() {
                    ctx.count("foreign_dropped", 1);
                    return;
                }
                let mut delta = Delta::new();
                for (k, (&d, last)) in self.delivered.iter().zip(&mut self.last_sent).enumerate() {
                    if k != self.me && d != *last {
                        *last = d;
                        delta.push((k as u32, d));
                    }
                }
                ctx.count("delta_entries_sent", delta.len() as u64);
                msg.push(&CausalHdr::Data { delta });
                ctx.down(Down::Cast(msg));
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
}

#[cfg(test)]
mod tests;
