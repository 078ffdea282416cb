//! Test support: drive one layer by hand and record exactly what it emits.
//!
//! ```
//! use stack_core::testing::Harness;
//! use stack_core::{Down, Layer, Msg, Bytes};
//! struct Pass;
//! impl Layer for Pass { fn name(&self) -> &'static str { "pass" } }
//! let mut h = Harness::new(Pass);
//! h.down(Down::Cast(Msg::new(Bytes::from_static(b"x"), 0)));
//! assert_eq!(h.take_down().len(), 1);
//! assert!(h.take_up().is_empty());
//! ```

use crate::event::{Down, TimerId, Up};
use crate::layer::{Core, Counters, Ctx, Layer, Slot};
use crate::member::MemberId;
use crate::queue::Fifo;
use crate::rng::Rng;
use crate::time::Time;
use std::time::Duration;

/// One layer with a recording context: what it passes down, up, and which timers it set.
pub struct Harness<L: Layer> {
    pub layer: L,
    pub now: Time,
    pub me: MemberId,
    pub counters: Counters,
    core: Core,
    slot: Slot,
    initialized: bool,
}

impl<L: Layer> Harness<L> {
    pub fn new(layer: L) -> Self {
        Self::with_member(layer, MemberId::new(1, 0))
    }

    pub fn with_member(layer: L, me: MemberId) -> Self {
        Harness {
            layer,
            now: Time::ZERO,
            me,
            counters: Counters::default(),
            core: Core {
                top: 0,
                now: Time::ZERO,
                me,
                queue: Fifo::with_capacity(1),
                net: Fifo::with_capacity(1),
                app: Fifo::with_capacity(1),
                rng: Rng::new(7),
                max_datagram: None,
            },
            slot: Slot::default(),
            initialized: false,
        }
    }

    /// The layer as if the transport carried datagrams of `bytes` and the layers below
    /// it added `below` header bytes ([`Ctx::datagram_room`] is `bytes - below`). Set
    /// before the first event.
    pub fn with_datagram(mut self, bytes: usize, below: usize) -> Self {
        self.core.max_datagram = Some(bytes);
        self.slot.below = below;
        self
    }

    fn call(&mut self, f: impl FnOnce(&mut L, &mut Ctx)) {
        // `now`, `me` and `counters` are the harness's public fields: lent to the
        // context for the call.
        self.core.now = self.now;
        self.core.me = self.me;
        self.slot.headroom = self.layer.header_max() + 64;
        std::mem::swap(&mut self.slot.counters, &mut self.counters);
        let mut ctx = Ctx { index: 0, core: &mut self.core, slot: &mut self.slot };
        if !self.initialized {
            self.initialized = true;
            self.layer.init(&mut ctx);
        }
        f(&mut self.layer, &mut ctx);
        std::mem::swap(&mut self.slot.counters, &mut self.counters);
        debug_assert!(self.core.queue.is_empty());
    }

    /// Calls `init` (done implicitly by the first event otherwise).
    pub fn init(&mut self) {
        self.call(|_, _| {});
    }

    pub fn down(&mut self, ev: Down) {
        self.call(|l, c| l.down(ev, c));
    }

    pub fn up(&mut self, ev: Up) {
        self.call(|l, c| l.up(ev, c));
    }

    /// Whether the layer asked for [`Layer::idle`] since the last call.
    pub fn wants_idle(&self) -> bool {
        self.slot.idle_wanted
    }

    /// Calls [`Layer::idle`] as an owner running out of input does, if the layer
    /// asked for it.
    pub fn idle(&mut self) {
        if std::mem::take(&mut self.slot.idle_wanted) {
            self.call(|l, c| l.idle(c));
        }
    }

    /// Fires timer `id` directly (as a spurious or due timeout would).
    pub fn fire(&mut self, id: TimerId) {
        self.slot.timers.retain(|t| t.0 != id);
        self.call(|l, c| l.timer(id, c));
    }

    /// Advances time by `d` and fires every timer due, earliest first.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let due =
                self.slot.timers.iter().filter(|t| t.1 <= end).min_by_key(|t| (t.1, t.0)).copied();
            let Some((id, at)) = due else { break };
            self.now = self.now.max(at);
            self.fire(id);
        }
        self.now = end;
    }

    /// Events the layer passed down since the last call.
    pub fn take_down(&mut self) -> Vec<Down> {
        std::iter::from_fn(|| self.core.net.pop()).collect()
    }

    /// Events the layer passed up since the last call.
    pub fn take_up(&mut self) -> Vec<Up> {
        std::iter::from_fn(|| self.core.app.pop()).collect()
    }

    /// Timers currently set, sorted.
    pub fn timers(&self) -> Vec<(TimerId, Time)> {
        let mut t = self.slot.timers.clone();
        t.sort();
        t
    }
}
