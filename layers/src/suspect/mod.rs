//! `suspect`: failure suspicion from heartbeats and a timeout.
//!
//! # Protocol
//!
//! The layer learns the members of the view from `Down::View` (passed on down). Every
//! message that arrives from a member, cast or point-to-point, of any layer above,
//! is evidence that it is alive: application traffic carries the heartbeat for free
//! (a one-byte `Data` tag). When this member has cast nothing for `heartbeat_ms` it
//! casts a small `Heartbeat` instead, so an idle group stays observable.
//! A member not heard from for `timeout_ms` is *suspected*. The layer only suspects,
//! it never decides: it reports the complete set of currently suspected members of
//! the view with `Up::Suspect(set)` each time that set changes (a suspected member
//! heard again leaves it; an empty set is reported then). Deciding (excluding a
//! member from the next view) is the membership layer's business. Each new view
//! gives every member a fresh `timeout_ms` of grace and clears the set.
//!
//! `Down::Suspect` (a decision taken above) is passed on down untouched.
//!
//! # Parameters
//!
//! [`SuspectParams`]: `timeout_ms` (1000), `heartbeat_ms` (0 means `timeout_ms / 4`).
//!
//! # Properties
//!
//! Requires nothing (heartbeats are casts to the view, reliable or not); provides
//! `suspicion`.
//!
//! # Events generated
//!
//! Down: `Cast` (heartbeats), everything from above with the `Data` tag (a
//! `CastUnreliable` does not count as a cast that spares a heartbeat). Up:
//! `Suspect(set)`; messages from below without the tag; heartbeats are consumed.
//! Counters: `heartbeats_sent`, `heartbeats_received`, `suspicions`,
//! `malformed_dropped`.
//!
//! # Testing
//!
//! `tests.rs` drives the layer through `stack_core::testing::Harness` and asserts the
//! exact events emitted (heartbeat when idle, none when traffic piggybacks, suspicion
//! after the timeout, recovery, reset on a new view); `wire.rs` has the header's byte,
//! truncation, corruption and quickcheck tests.

#[cfg(test)]
mod tests;
mod wire;

pub use wire::SuspectHdr;

use serde::Deserialize;
use stack_core::{props, Ctx, Down, Layer, MemberId, Msg, Property, Time, TimerId, Up};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Parameters of the `suspect` layer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SuspectParams {
    /// Silence after which a member is suspected.
    pub timeout_ms: u64,
    /// Longest silence of this member before it casts a heartbeat (0: `timeout_ms / 4`).
    pub heartbeat_ms: u64,
}

impl Default for SuspectParams {
    fn default() -> Self {
        SuspectParams { timeout_ms: 1000, heartbeat_ms: 0 }
    }
}

/// Timer: send a heartbeat if idle and check for silent members.
pub const TIMER_TICK: TimerId = TimerId(0);

const PROVIDES: &[Property] = &[props::SUSPICION];

/// The `suspect` layer.
pub struct Suspect {
    timeout: Duration,
    period: Duration,
    /// Members of the view other than this one, with when each was last heard.
    heard: BTreeMap<MemberId, Time>,
    suspected: BTreeSet<MemberId>,
    last_cast: Time,
    in_view: bool,
}

impl Suspect {
    pub fn new(p: SuspectParams) -> Self {
        let timeout = p.timeout_ms.max(1);
        let hb = if p.heartbeat_ms == 0 { (timeout / 4).max(1) } else { p.heartbeat_ms };
        Suspect {
            timeout: Duration::from_millis(timeout),
            period: Duration::from_millis(hb),
            heard: BTreeMap::new(),
            suspected: BTreeSet::new(),
            last_cast: Time::ZERO,
            in_view: false,
        }
    }

    /// Members currently suspected, sorted.
    pub fn suspected(&self) -> Vec<MemberId> {
        self.suspected.iter().copied().collect()
    }

    fn report(&self, ctx: &mut Ctx) {
        ctx.up(Up::Suspect(self.suspected()));
    }

    fn heard_from(&mut self, from: MemberId, ctx: &mut Ctx) {
        if let Some(t) = self.heard.get_mut(&from) {
            *t = ctx.now();
            if self.suspected.remove(&from) {
                self.report(ctx);
            }
        }
    }

    fn tick(&mut self, ctx: &mut Ctx) {
        let now = ctx.now();
        if self.in_view && !self.heard.is_empty() {
            if now.since(self.last_cast) >= self.period {
                let mut m = ctx.new_msg(stack_core::Bytes::new());
                m.push(&SuspectHdr::Heartbeat);
                self.last_cast = now;
                ctx.count("heartbeats_sent", 1);
                ctx.down(Down::Cast(m));
            }
            let mut changed = false;
            for (&m, &t) in &self.heard {
                if now.since(t) > self.timeout && self.suspected.insert(m) {
                    ctx.count("suspicions", 1);
                    changed = true;
                }
            }
            if changed {
                self.report(ctx);
            }
        }
        if self.in_view {
            ctx.set_timer_after(TIMER_TICK, self.period);
        }
    }

    fn up_msg(&mut self, from: MemberId, cast: bool, mut msg: Msg, ctx: &mut Ctx) {
        match msg.pop::<SuspectHdr>() {
            Ok(SuspectHdr::Data) => {
                self.heard_from(from, ctx);
                ctx.up(if cast { Up::Cast(from, msg) } else { Up::Send(from, msg) });
            }
            Ok(SuspectHdr::Heartbeat) => {
                ctx.count("heartbeats_received", 1);
                self.heard_from(from, ctx);
            }
            Err(_) => ctx.count("malformed_dropped", 1),
        }
    }
}

impl Default for Suspect {
    fn default() -> Self {
        Suspect::new(SuspectParams::default())
    }
}

impl Layer for Suspect {
    fn name(&self) -> &'static str {
        "suspect"
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
                m.push(&SuspectHdr::Data);
                self.last_cast = ctx.now();
                ctx.down(Down::Cast(m));
            }
            Down::Send(d, mut m) => {
                m.push(&SuspectHdr::Data);
                ctx.down(Down::Send(d, m));
            }
            Down::CastUnreliable(mut m) => {
                // Not a sign of life to rely on (it may be lost): the heartbeat clock
                // is left alone.
                m.push(&SuspectHdr::Data);
                ctx.down(Down::CastUnreliable(m));
            }
            Down::View(v) => {
                let now = ctx.now();
                let me = ctx.me();
                self.heard = v.members.iter().filter(|&&m| m != me).map(|&m| (m, now)).collect();
                self.suspected.clear();
                self.in_view = v.contains(me);
                if self.in_view && !ctx.timer_is_set(TIMER_TICK) {
                    ctx.set_timer_after(TIMER_TICK, self.period);
                }
                ctx.down(Down::View(v));
            }
            other => ctx.down(other),
        }
    }

    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        match ev {
            Up::Cast(from, m) => self.up_msg(from, true, m, ctx),
            Up::Send(from, m) => self.up_msg(from, false, m, ctx),
            other => ctx.up(other),
        }
    }

    fn timer(&mut self, id: TimerId, ctx: &mut Ctx) {
        if id == TIMER_TICK {
            self.tick(ctx);
        }
    }
}
