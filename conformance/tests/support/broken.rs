//! Layers broken on purpose, for testing that the checkers catch what they should.
//!
//! Each sits at the top of a real stack and misbehaves at one member (node `node`,
//! first incarnation) on the `nth` application cast it sees coming up (counting from
//! 1, all senders together); at every other member and for every other cast it
//! passes events through untouched.

use serde::Deserialize;
use stack_core::registry::Registry;
use stack_core::{Ctx, Layer, MemberId, Msg, Up};

/// Parameters every broken layer takes.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct At {
    /// The misbehaving member's node.
    pub node: u32,
    /// Which cast coming up it misbehaves on (from 1).
    pub nth: u64,
}

/// Counts casts coming up at the chosen member; true on the `nth`.
struct Trigger {
    at: At,
    seen: u64,
}

impl Trigger {
    fn new(at: At) -> Self {
        Trigger { at, seen: 0 }
    }
    fn hit(&mut self, me: MemberId) -> bool {
        if me != MemberId::new(self.at.node, 0) {
            return false;
        }
        self.seen += 1;
        self.seen == self.at.nth
    }
}

/// Silently drops the `nth` cast.
pub struct DropNth(Trigger);

impl Layer for DropNth {
    fn name(&self) -> &'static str {
        "drop_nth"
    }
    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        if matches!(ev, Up::Cast(..)) && self.0.hit(ctx.me()) {
            ctx.count("dropped", 1);
            return;
        }
        ctx.up(ev)
    }
}

/// Delivers the `nth` cast twice.
pub struct DupNth(Trigger);

impl Layer for DupNth {
    fn name(&self) -> &'static str {
        "dup_nth"
    }
    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        if let Up::Cast(from, msg) = &ev {
            if self.0.hit(ctx.me()) {
                ctx.up(Up::Cast(*from, msg.clone()));
            }
        }
        ctx.up(ev)
    }
}

/// Parameters of [`SwapNth`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwapParams {
    pub node: u32,
    pub nth: u64,
    /// Release after the next cast of the same sender (else of any sender).
    pub same_sender: bool,
}

/// Holds the `nth` cast back and delivers it right after the next one (of the same
/// sender with `same_sender`).
pub struct SwapNth {
    trigger: Trigger,
    same_sender: bool,
    held: Option<(MemberId, Msg)>,
}

impl Layer for SwapNth {
    fn name(&self) -> &'static str {
        "swap_nth"
    }
    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        let Up::Cast(from, msg) = ev else { return ctx.up(ev) };
        if self.trigger.hit(ctx.me()) {
            self.held = Some((from, msg));
            return;
        }
        ctx.up(Up::Cast(from, msg));
        if self.held.as_ref().is_some_and(|(h, _)| !self.same_sender || *h == from) {
            if let Some((h, m)) = self.held.take() {
                ctx.up(Up::Cast(h, m));
            }
        }
    }
}

/// Parameters of [`LateNth`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LateParams {
    pub node: u32,
    pub nth: u64,
    /// At the next view, deliver the held cast after it (else discard it).
    pub release: bool,
}

/// Holds the `nth` cast until the next view comes up; then delivers it in the new
/// view (`release`) or discards it, as a flush that forgot this member would.
pub struct LateNth {
    trigger: Trigger,
    release: bool,
    held: Option<(MemberId, Msg)>,
}

impl Layer for LateNth {
    fn name(&self) -> &'static str {
        "late_nth"
    }
    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        match ev {
            Up::Cast(from, msg) if self.trigger.hit(ctx.me()) => self.held = Some((from, msg)),
            Up::View(v) => {
                ctx.up(Up::View(v));
                if let Some((from, msg)) = self.held.take() {
                    if self.release {
                        ctx.up(Up::Cast(from, msg));
                    }
                }
            }
            ev => ctx.up(ev),
        }
    }
}

/// Registers the broken layers: `DropNth`, `DupNth`, `SwapNth`, `LateNth`.
pub fn register(reg: &mut Registry) {
    reg.register("DropNth", |p: At| DropNth(Trigger::new(p)));
    reg.register("DupNth", |p: At| DupNth(Trigger::new(p)));
    reg.register("SwapNth", |p: SwapParams| SwapNth {
        trigger: Trigger::new(At { node: p.node, nth: p.nth }),
        same_sender: p.same_sender,
        held: None,
    });
    reg.register("LateNth", |p: LateParams| LateNth {
        trigger: Trigger::new(At { node: p.node, nth: p.nth }),
        release: p.release,
        held: None,
    });
}
