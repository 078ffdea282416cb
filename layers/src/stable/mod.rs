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
//! it was last sent and fits in `piggyback_bytes`; otherwise a standalone `Gossip`
//! is multicast on the `period_ms` timer. On each tick a vector is sent only if it
//! changed, if some member asked (below), or if this member still waits for
//! stability and sent nothing for a whole period. A member waiting for stability sets
//! the `need` flag, which makes members that went quiet repeat their vectors once: if
//! a vector was lost, the waiting member still learns it. Once every member's vector
//! equals the stability vector nobody sends anything: an idle group is quiet.
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
//! Down: `Cast` (data with a `Data`/`DataVec` header, standalone `Gossip`), `View` and
//! `Send` passed on, `Stable`. Up: `Cast`, `Stable`, and `Progress`/`View` passed on.
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
use stack_core::{props, Ctx, Down, Layer, MemberId, Msg, Property, SeqVector, Time, TimerId, Up};
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
    /// Some member asked for vectors to be repeated.
    reply: bool,
    last_sent: Option<Time>,
}

impl ViewState {
    fn mine(&self) -> Option<&Counts> {
        self.me.map(|i| &self.seen[i])
    }
    /// This member holds casts not yet known to be stable.
    fn unstable(&self) -> bool {
        self.mine().is_some_and(|m| *m != self.stable)
    }
    fn vector(&self) -> Option<Vector> {
        Some(Vector { view: self.id, need: self.unstable(), counts: self.mine()?.clone() })
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
        if v.need {
            vs.reply = true;
        }
        if vs.reply || vs.unstable() {
            self.arm(ctx);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx) {
        let Some(vs) = self.view.as_mut() else { return };
        let now = ctx.now();
        let period = Duration::from_millis(self.p.period_ms);
        let quiet_for_period = vs.last_sent.is_none_or(|t| now.since(t) >= period);
        let unstable = vs.unstable();
        if vs.dirty || vs.reply || (unstable && quiet_for_period) {
            if let Some(v) = vs.vector() {
                let mut m = ctx.new_msg(stack_core::Bytes::new());
                m.push(&StableHdr::Gossip(v));
                ctx.down(Down::Cast(m));
                ctx.count("gossip_sent", 1);
                vs.last_sent = Some(now);
            }
            vs.dirty = false;
            vs.reply = false;
        }
        if unstable {
            ctx.set_timer_after(TIMER_GOSSIP, period);
        }
    }

    fn cast_down(&mut self, mut msg: Msg, ctx: &mut Ctx) {
        if let Some(vs) = self.view.as_mut().filter(|v| v.dirty) {
            if let Some(v) = vs.vector().filter(|v| v.encoded_len() <= self.p.piggyback_bytes) {
                msg.push(&StableHdr::DataVec(v));
                vs.dirty = false;
                vs.last_sent = Some(ctx.now());
                ctx.count("piggybacked", 1);
                ctx.down(Down::Cast(msg));
                return;
            }
        }
        msg.push(&StableHdr::Data);
        ctx.down(Down::Cast(msg));
    }

    fn cast_up(&mut self, from: MemberId, mut msg: Msg, ctx: &mut Ctx) {
        match msg.pop::<StableHdr>() {
            Err(_) => ctx.count("malformed_dropped", 1),
            Ok(StableHdr::Data) => ctx.up(Up::Cast(from, msg)),
            Ok(StableHdr::DataVec(v)) => {
                self.absorb(from, v, ctx);
                ctx.up(Up::Cast(from, msg));
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
            Down::View(v) => {
                let mut members = v.members.to_vec();
                members.sort_unstable();
                members.dedup();
                let n = members.len();
                let me = members.binary_search(&ctx.me()).ok();
                let zeros: Counts = std::iter::repeat(0).take(n).collect();
                self.view = Some(ViewState {
                    id: v.id,
                    members,
                    me,
                    seen: vec![zeros.clone(); n],
                    stable: zeros,
                    dirty: false,
                    reply: false,
                    last_sent: None,
                });
                ctx.cancel_timer(TIMER_GOSSIP);
                ctx.down(Down::View(v));
            }
            other => ctx.down(other),
        }
    }

    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        match ev {
            Up::Cast(from, m) => self.cast_up(from, m, ctx),
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
