//! `stable`: stability detection by gossip (after Horus's `STABLE`).
//!
//! # Protocol
//!
//! The reliable layer below reports, in `Up::Progress`, how many casts of each member
//! of the view this member has received contiguously (in its own sequence numbers).
//! Each member gossips its latest such vector to the group, and keeps, per member of
//! the view, the highest vector heard from it. The *stability vector* is, per sender,
//! the minimum over all members: every message of `sender` numbered below it is held
//! by everyone. Whenever it advances the layer sends `Down::Stable` (so the reliable
//! layer frees its retransmission buffers) and `Up::Stable` (for the layers above and
//! the application).
//!
//! Gossip is piggybacked on an outgoing cast when this member's vector changed since
//! it was last sent and fits in `piggyback_bytes`. Otherwise, on the `period_ms`
//! timer, the changed vector goes to each other member of the view as a standalone
//! `Gossip` **point-to-point** message. Standalone gossip must not be a cast: the
//! reliable layer numbers casts, so a gossip cast would itself be a new unstable
//! message whose receipt needs more gossip, and the group would never go quiet.
//! Point-to-point streams are reliable too but are not counted in `Progress`. Since
//! every vector travels reliably, a vector is sent once per change and an idle group,
//! whose vectors no longer change, is quiet.
//!
//! Counts are the reliable layer's sequence numbers carried in `Progress`, never
//! counts of messages seen here, so fragmentation between the two layers is harmless.
//! All state restarts with each view (`Down::View`, passed on down); vectors of other
//! views are ignored.
//!
//! # Parameters
//!
//! See [`StableParams`].
//!
//! # Properties
//!
//! Requires `reliable-fifo`; provides `stability`.
//!
//! # Events generated
//!
//! Down: `Cast` (with a `Data` or `DataVec` header), `Send` (application sends with a
//! `Data` header, standalone `Gossip`), `CastUnreliable` (with a `Data` header: a
//! vector riding on it could be lost), `View` passed on, `Stable`. Up: `Cast`,
//! `Send`, `Stable`, and `Progress`/`View` passed on.
//! Counters: `gossip_sent`, `piggybacked`, `stable_advanced`, `malformed_dropped`,
//! `foreign_dropped`.
//!
//! # Testing
//!
//! Unit tests through `stack_core::testing::Harness` (`tests.rs`), header tests in
//! `wire.rs`, and with `nak` over a lossy network in `layers/tests/reliable.rs`.

#[cfg(test)]
mod tests;
mod wire;

pub use wire::{Counts, StableHdr, Vector, MAX_MEMBERS};

use serde::Deserialize;
use stack_core::{props, Ctx, Down, Layer, MemberId, Msg, Property, SeqVector, TimerId, Up};
use std::time::Duration;

/// Parameters of the `stable` layer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StableParams {
    /// Gossip period.
    pub period_ms: u64,
    /// Largest vector piggybacked on a cast (its bytes count towards every message's
    /// headroom); larger vectors go out as standalone gossip.
    pub piggyback_bytes: usize,
}

impl Default for StableParams {
    fn default() -> Self {
        StableParams { period_ms: 100, piggyback_bytes: 24 }
    }
}

/// Timer: the gossip period.
pub const TIMER_GOSSIP: TimerId = TimerId(0);

struct ViewState {
    id: u64,
    /// Sorted by id; indexes every vector.
    members: Vec<MemberId>,
    me: Option<usize>,
    /// Highest vector heard from each member (this member's own at `me`).
    seen: Vec<Counts>,
    /// The stability vector last announced.
    stable: Counts,
    /// This member's vector changed since it was last sent.
    dirty: bool,
}

impl ViewState {
    fn mine(&self) -> Option<&Counts> {
        self.me.map(|i| &self.seen[i])
    }
    fn vector(&self) -> Option<Vector> {
        Some(Vector { view: self.id, counts: self.mine()?.clone() })
    }
    fn seq_vector(&self) -> SeqVector {
        let entries = self.members.iter().copied().zip(self.stable.iter().copied()).collect();
        SeqVector { view: self.id, entries }
    }
}

/// The `stable` layer. See the module documentation.
pub struct Stable {
    p: StableParams,
    view: Option<ViewState>,
}

const REQUIRES: &[Property] = &[props::RELIABLE_FIFO];
const PROVIDES: &[Property] = &[props::STABILITY];

impl Stable {
    pub fn new(p: StableParams) -> Self {
        Stable { p, view: None }
    }

    fn arm(&self, ctx: &mut Ctx) {
        if !ctx.timer_is_set(TIMER_GOSSIP) {
            ctx.set_timer_after(TIMER_GOSSIP, Duration::from_millis(self.p.period_ms));
        }
    }

    /// Recomputes the stability vector; announces it if it advanced.
    fn recompute(vs: &mut ViewState, ctx: &mut Ctx) {
        let mut advanced = false;
        for s in 0..vs.members.len() {
            let min = vs.seen.iter().map(|v| v[s]).min().unwrap_or(0);
            if min > vs.stable[s] {
                vs.stable[s] = min;
                advanced = true;
            }
        }
        if advanced {
            ctx.count("stable_advanced", 1);
            let sv = vs.seq_vector();
            ctx.down(Down::Stable(sv.clone()));
            ctx.up(Up::Stable(sv));
        }
    }

    fn merge(into: &mut Counts, from: impl Iterator<Item = u64>) -> bool {
        let mut changed = false;
        for (a, b) in into.iter_mut().zip(from) {
            if b > *a {
                *a = b;
                changed = true;
            }
        }
        changed
    }

    fn on_progress(&mut self, pv: &SeqVector, ctx: &mut Ctx) {
        let Some(vs) = self.view.as_mut() else { return };
        let Some(me) = vs.me else { return };
        if pv.view != vs.id {
            return;
        }
        let counts = vs.members.iter().map(|&m| pv.get(m));
        if Self::merge(&mut vs.seen[me], counts) {
            vs.dirty = true;
            Self::recompute(vs, ctx);
            self.arm(ctx);
        }
    }

    fn absorb(&mut self, from: MemberId, v: Vector, ctx: &mut Ctx) {
        let Some(vs) = self.view.as_mut() else { return };
        if v.view != vs.id {
            return;
        }
        let Ok(r) = vs.members.binary_search(&from) else {
            ctx.count("foreign_dropped", 1);
            return;
        };
        if Some(r) == vs.me {
            return;
        }
        if v.counts.len() != vs.members.len() {
            ctx.count("malformed_dropped", 1);
            return;
        }
        if Self::merge(&mut vs.seen[r], v.counts.iter().copied()) {
            Self::recompute(vs, ctx);
        }
    }

    /// Sends a changed vector that no cast carried, to each other member.
    fn on_timer(&mut self, ctx: &mut Ctx) {
        let Some(vs) = self.view.as_mut().filter(|v| v.dirty) else { return };
        let Some(v) = vs.vector() else { return };
        vs.dirty = false;
        let me = ctx.me();
        for &m in vs.members.iter().filter(|&&m| m != me) {
            let mut msg = ctx.new_msg(stack_core::Bytes::new());
            msg.push(&StableHdr::Gossip(v.clone()));
            ctx.down(Down::Send(m, msg));
            ctx.count("gossip_sent", 1);
        }
    }

    fn cast_down(&mut self, mut msg: Msg, ctx: &mut Ctx) {
        if let Some(vs) = self.view.as_mut().filter(|v| v.dirty) {
            if let Some(v) = vs.vector().filter(|v| v.encoded_len() <= self.p.piggyback_bytes) {
                msg.push(&StableHdr::DataVec(v));
                vs.dirty = false;
                ctx.count("piggybacked", 1);
                ctx.down(Down::Cast(msg));
                return;
            }
        }
        msg.push(&StableHdr::Data);
        ctx.down(Down::Cast(msg));
    }

    fn msg_up(&mut self, from: MemberId, cast: bool, mut msg: Msg, ctx: &mut Ctx) {
        let up = |m| if cast { Up::Cast(from, m) } else { Up::Send(from, m) };
        match msg.pop::<StableHdr>() {
            Err(_) => ctx.count("malformed_dropped", 1),
            Ok(StableHdr::Data) => ctx.up(up(msg)),
            Ok(StableHdr::DataVec(v)) => {
                self.absorb(from, v, ctx);
                ctx.up(up(msg));
            }
            Ok(StableHdr::Gossip(v)) => self.absorb(from, v, ctx),
        }
    }
}

impl Default for Stable {
    fn default() -> Self {
        Stable::new(StableParams::default())
    }
}

impl Layer for Stable {
    fn name(&self) -> &'static str {
        "stable"
    }

    fn requires(&self) -> &[Property] {
        REQUIRES
    }

    fn provides(&self) -> &[Property] {
        PROVIDES
    }

    fn header_max(&self) -> usize {
        1 + self.p.piggyback_bytes
    }

    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        match ev {
            Down::Cast(m) => self.cast_down(m, ctx),
            Down::CastUnreliable(mut m) => {
                // No piggybacked vector: it could be lost with the message.
                m.push(&StableHdr::Data);
                ctx.down(Down::CastUnreliable(m));
            }
            Down::Send(d, mut m) => {
                m.push(&StableHdr::Data);
                ctx.down(Down::Send(d, m));
            }
            Down::View(v) => {
                let mut members = v.members.to_vec();
                members.sort_unstable();
                members.dedup();
                let n = members.len();
                let me = members.binary_search(&ctx.me()).ok();
                let zeros = Counts::from_elem(0, n);
                self.view = Some(ViewState {
                    id: v.id,
                    members,
                    me,
                    seen: vec![zeros.clone(); n],
                    stable: zeros,
                    dirty: false,
                });
                ctx.cancel_timer(TIMER_GOSSIP);
                ctx.down(Down::View(v));
            }
            other => ctx.down(other),
        }
    }

    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        match ev {
            Up::Cast(from, m) => self.msg_up(from, true, m, ctx),
            Up::Send(from, m) => self.msg_up(from, false, m, ctx),
            Up::Progress(pv) => {
                self.on_progress(&pv, ctx);
                ctx.up(Up::Progress(pv));
            }
            other => ctx.up(other),
        }
    }

    fn timer(&mut self, id: TimerId, ctx: &mut Ctx) {
        if id == TIMER_GOSSIP {
            self.on_timer(ctx);
        }
    }
}
