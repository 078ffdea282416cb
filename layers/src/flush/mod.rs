//! `flush`: the application's side of a view change (block, stop sending, resume in
//! the new view) and state transfer to joiners.
//!
//! # Protocol
//!
//! The layer sits **above** `membership`. The flush itself, the agreement on which
//! messages every survivor delivers in the old view (the *cut*) and the fetching of
//! missing ones, is part of membership's view-change round, because a view is only
//! valid together with its cut and the same majority must consent to both. This
//! layer turns that round into what the application sees:
//!
//! - *Block.* Membership emits `Up::Block` when a round opens. The layer passes it to
//!   the application, which stops casting and answers `Down::BlockOk` (the driver
//!   refuses casts from then on); the layer passes one `BlockOk` per view down, which
//!   lets this member report its delivered counts. With `auto_block_ok: true` the
//!   layer answers at once itself and drops (and counts) casts the application makes
//!   until the next view: for applications that do not cast during view changes.
//! - *State transfer.* When a view adds members, the oldest member that was also in
//!   the previous view is the provider: it gets `Up::StateRequest` *before* the new
//!   `Up::View`, so its answer is the state at the end of the old view. Its
//!   `Down::StateReply(bytes)` is sent to each joiner as an ordinary reliable
//!   point-to-point message (`State{view}` header; large states are fragmented
//!   below). A joiner gets `Up::View` and then holds every cast of its first view
//!   until the state arrives; it then emits `Up::State(bytes)` followed by the held
//!   casts, so the state comes before any message of the new view (a state that
//!   overtakes the view adding this member is kept until that view). If another view
//!   is installed before the state arrives (the provider failed), the joiner stops
//!   waiting, delivers what it holds and counts `state_missed`.
//!
//! # Parameters
//!
//! [`FlushParams`]: `auto_block_ok` (false).
//!
//! # Properties
//!
//! Requires `views`; provides `virtual-synchrony` and `state-transfer`.
//!
//! # Events generated
//!
//! Down: `BlockOk` (once per view), `Send` (state to joiners), casts and sends from
//! above with the `Data` tag. Up: `Block`, `StateRequest`, `View`, `State`, casts and
//! sends. Counters: `states_sent`, `states_received`, `state_missed`,
//! `stale_state_dropped`, `blocked_dropped`, `malformed_dropped`.
//!
//! # Testing
//!
//! `tests.rs` asserts the exact events through `stack_core::testing::Harness`
//! (block handshake, automatic answer, provider and joiner sides of state transfer,
//! held casts); `wire.rs` has the header's byte, truncation, corruption and
//! quickcheck tests; `layers/tests/vsync*.rs` check replicated state end to end.

#[cfg(test)]
mod tests;
mod wire;

pub use wire::FlushHdr;

use serde::Deserialize;
use stack_core::{props, Bytes, Ctx, Down, Layer, MemberId, Msg, Property, Up, View};

/// Parameters of the `flush` layer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlushParams {
    /// Answer `Block` without asking the application.
    pub auto_block_ok: bool,
}

const REQUIRES: &[Property] = &[props::VIEWS];
const PROVIDES: &[Property] = &[props::VIRTUAL_SYNCHRONY, props::STATE_TRANSFER];

/// The `flush` layer.
pub struct Flush {
    p: FlushParams,
    view: Option<View>,
    blocked: bool,
    awaiting_state: Option<u64>,
    held: Vec<(MemberId, Msg)>,
    pending_state: Option<(u64, Vec<MemberId>)>,
    /// A state that arrived before the view it belongs to.
    early_state: Option<(u64, Bytes)>,
}

impl Flush {
    pub fn new(p: FlushParams) -> Self {
        Flush {
            p,
            view: None,
            blocked: false,
            awaiting_state: None,
            held: Vec::new(),
            pending_state: None,
            early_state: None,
        }
    }

    fn release(&mut self, ctx: &mut Ctx) {
        for (from, m) in std::mem::take(&mut self.held) {
            ctx.up(Up::Cast(from, m));
        }
    }

    fn on_view(&mut self, v: View, ctx: &mut Ctx) {
        let me = ctx.me();
        let prev = self.view.replace(v.clone());
        self.blocked = false;
        self.pending_state = None;
        if self.awaiting_state.take().is_some() {
            ctx.count("state_missed", 1);
            self.release(ctx);
        }
        match prev {
            None => {
                if v.members.iter().any(|&m| m != me) {
                    self.awaiting_state = Some(v.id);
                }
            }
            Some(p) => {
                let joiners: Vec<MemberId> =
                    v.members.iter().copied().filter(|&m| !p.contains(m)).collect();
                let provider = v.members.iter().copied().find(|&m| p.contains(m));
                if !joiners.is_empty() && provider == Some(me) {
                    self.pending_state = Some((v.id, joiners));
                    ctx.up(Up::StateRequest);
                }
            }
        }
        ctx.up(Up::View(v));
        if let Some((view, state)) = self.early_state.take() {
            self.on_state(view, state, ctx);
        }
    }

    fn on_state(&mut self, view: u64, state: Bytes, ctx: &mut Ctx) {
        if self.awaiting_state == Some(view) {
            self.awaiting_state = None;
            ctx.count("states_received", 1);
            ctx.up(Up::State(state));
            self.release(ctx);
        } else if self.view.as_ref().is_none_or(|v| v.id < view) {
            // The state can overtake the view that adds this member.
            self.early_state = Some((view, state));
        } else {
            ctx.count("stale_state_dropped", 1);
        }
    }

    fn block_ok(&mut self, ctx: &mut Ctx) {
        if !self.blocked {
            self.blocked = true;
            ctx.down(Down::BlockOk);
        }
    }
}

impl Default for Flush {
    fn default() -> Self {
        Flush::new(FlushParams::default())
    }
}

impl Layer for Flush {
    fn name(&self) -> &'static str {
        "flush"
    }

    fn requires(&self) -> &[Property] {
        REQUIRES
    }

    fn provides(&self) -> &[Property] {
        PROVIDES
    }

    fn header_max(&self) -> usize {
        1
    }

    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        match ev {
            Down::Cast(mut m) => {
                if self.p.auto_block_ok && self.blocked {
                    ctx.count("blocked_dropped", 1);
                    return;
                }
                m.push(&FlushHdr::Data);
                ctx.down(Down::Cast(m));
            }
            Down::Send(d, mut m) => {
                m.push(&FlushHdr::Data);
                ctx.down(Down::Send(d, m));
            }
            Down::BlockOk => self.block_ok(ctx),
            Down::StateReply(state) => {
                if let Some((view, joiners)) = self.pending_state.take() {
                    for j in joiners {
                        let mut m = ctx.new_msg(state.clone());
                        m.push(&FlushHdr::State { view });
                        ctx.count("states_sent", 1);
                        ctx.down(Down::Send(j, m));
                    }
                }
            }
            other => ctx.down(other),
        }
    }

    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        match ev {
            Up::Cast(from, mut m) => match m.pop::<FlushHdr>() {
                Ok(FlushHdr::Data) if self.awaiting_state.is_some() => self.held.push((from, m)),
                Ok(FlushHdr::Data) => ctx.up(Up::Cast(from, m)),
                _ => ctx.count("malformed_dropped", 1),
            },
            Up::Send(from, mut m) => match m.pop::<FlushHdr>() {
                Ok(FlushHdr::Data) => ctx.up(Up::Send(from, m)),
                Ok(FlushHdr::State { view }) => self.on_state(view, m.into_body(), ctx),
                Err(_) => ctx.count("malformed_dropped", 1),
            },
            Up::Block => {
                if self.p.auto_block_ok {
                    self.block_ok(ctx);
                } else {
                    ctx.up(Up::Block);
                }
            }
            Up::View(v) => self.on_view(v, ctx),
            other => ctx.up(other),
        }
    }
}
