//! The `Layer` trait, its context, and properties.
//!
//! A layer is a sans-IO state machine: it reacts to a downcall, an upcall or one of its
//! timers, and acts only through the [`Ctx`] it is handed (pass events on, set and
//! cancel timers, read the injected `now`, draw from the seeded generator, bump
//! counters). It never opens a socket, spawns a thread, sleeps or reads a clock.

use crate::event::{Down, TimerId, Up};
use crate::member::MemberId;
use crate::message::Msg;
use crate::queue::Fifo;
use crate::rng::Rng;
use crate::time::Time;
use bytes::Bytes;
use std::fmt;
use std::time::Duration;

/// A property a layer provides above it or requires below it, such as
/// `reliable-fifo` or `views`. User layers may name their own.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Property(pub &'static str);

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.0)
    }
}

/// The properties the shipped layers speak of.
pub mod props {
    use super::Property;
    /// Messages are delivered once each, in per-sender order, within a view.
    pub const RELIABLE_FIFO: Property = Property("reliable-fifo");
    /// Messages of any size (fragmentation and reassembly).
    pub const LARGE_MESSAGES: Property = Property("large-messages");
    /// Stability is detected and announced.
    pub const STABILITY: Property = Property("stability");
    /// Senders are slowed to what receivers can absorb.
    pub const FLOW_CONTROL: Property = Property("flow-control");
    /// Small messages are packed into fewer datagrams.
    pub const BUNDLING: Property = Property("bundling");
    /// Failures are suspected (heartbeats, timeouts).
    pub const SUSPICION: Property = Property("suspicion");
    /// Agreed views are installed (group membership).
    pub const VIEWS: Property = Property("views");
    /// Survivors of a view delivered the same messages in it (flush).
    pub const VIRTUAL_SYNCHRONY: Property = Property("virtual-synchrony");
    /// Joiners receive the group state with the view that adds them.
    pub const STATE_TRANSFER: Property = Property("state-transfer");
    /// Causal order.
    pub const CAUSAL: Property = Property("causal");
    /// One total order of all casts in a view.
    pub const TOTAL: Property = Property("total");
    /// Messages are delivered only once every member of the view holds them.
    pub const SAFE: Property = Property("safe");
}

/// One layer of a stack. Handlers default to passing events on untouched.
pub trait Layer: Send + 'static {
    /// The layer's name, as written in descriptors (lower case).
    fn name(&self) -> &'static str;
    /// Properties the layers below must provide.
    fn requires(&self) -> &[Property] {
        &[]
    }
    /// Properties this layer adds for the layers above.
    fn provides(&self) -> &[Property] {
        &[]
    }
    /// The most header bytes this layer pushes on one message (headroom).
    fn header_max(&self) -> usize {
        0
    }
    /// Called once when the stack starts, before any event.
    fn init(&mut self, _ctx: &mut Ctx) {}
    /// An event from above.
    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        ctx.down(ev)
    }
    /// An event from below.
    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        ctx.up(ev)
    }
    /// One of this layer's timers fired.
    fn timer(&mut self, _id: TimerId, _ctx: &mut Ctx) {}
    /// The stack's owner has nothing more to hand the stack for now (the transport
    /// read every datagram that had arrived and took every application call waiting).
    /// Called once after each [`Ctx::call_when_idle`]; a layer holding messages back
    /// for company (bundling) sends them here rather than wait for a timer.
    fn idle(&mut self, _ctx: &mut Ctx) {}
}

/// Named counters of one layer (`naks_sent`, `retransmissions`, `buffered_bytes`, ...).
#[derive(Clone, Debug, Default)]
pub struct Counters {
    entries: Vec<(&'static str, u64)>,
}

impl Counters {
    /// The counter called `name`, created at 0 on first use. Names are string
    /// literals, so the same literal is found by its address first (no string
    /// comparison on the hot path); equal names at other addresses still share a slot.
    #[inline]
    fn slot(&mut self, name: &'static str) -> &mut u64 {
        let found = match self.entries.iter().position(|e| std::ptr::eq(e.0, name)) {
            Some(i) => Some(i),
            None => self.entries.iter().position(|e| e.0 == name),
        };
        let i = match found {
            Some(i) => i,
            None => {
                self.entries.push((name, 0));
                self.entries.len() - 1
            }
        };
        &mut self.entries[i].1
    }
    /// Adds `n` to a counter.
    #[inline]
    pub fn add(&mut self, name: &'static str, n: u64) {
        *self.slot(name) += n;
    }
    /// Sets a gauge.
    #[inline]
    pub fn set(&mut self, name: &'static str, v: u64) {
        *self.slot(name) = v;
    }
    /// Raises a high-water mark.
    #[inline]
    pub fn max(&mut self, name: &'static str, v: u64) {
        let s = self.slot(name);
        *s = (*s).max(v);
    }
    pub fn get(&self, name: &str) -> u64 {
        self.entries.iter().find(|e| e.0 == name).map(|e| e.1).unwrap_or(0)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.entries.iter().copied()
    }
}

/// An event waiting in the driver's queue, addressed to a layer (by its index, kept
/// to 32 bits so that it shares a word with the tag: an item is 80 bytes, see
/// `queued_events_stay_small`).
#[derive(Debug)]
pub(crate) enum Item {
    Down(u32, Down),
    Up(u32, Up),
    Timer(u32, TimerId),
}

/// The driver's state every layer's context shares: built once, not per event.
pub(crate) struct Core {
    /// Index of the top layer.
    pub(crate) top: usize,
    pub(crate) now: Time,
    pub(crate) me: MemberId,
    pub(crate) queue: Fifo<Item>,
    /// Events passed down by the bottom layer, for the transport.
    pub(crate) net: Fifo<Down>,
    /// Events passed up by the top layer, for the application.
    pub(crate) app: Fifo<Up>,
    pub(crate) rng: Rng,
    /// The largest datagram the transport carries, if the owner said.
    pub(crate) max_datagram: Option<usize>,
}

/// One layer's own state in the driver.
#[derive(Default)]
pub(crate) struct Slot {
    pub(crate) timers: Vec<(TimerId, Time)>,
    pub(crate) counters: Counters,
    /// Headroom for a message created at this layer.
    pub(crate) headroom: usize,
    /// Header bytes every layer below this one may add (the sum of their `header_max`).
    pub(crate) below: usize,
    /// The layer asked for [`Layer::idle`].
    pub(crate) idle_wanted: bool,
}

/// What a layer can do: its only window on the world. Three words, built for every
/// event a layer handles.
pub struct Ctx<'a> {
    pub(crate) index: usize,
    pub(crate) core: &'a mut Core,
    pub(crate) slot: &'a mut Slot,
}

impl<'a> Ctx<'a> {
    /// Passes an event to the layer below (or to the transport from the bottom layer).
    #[inline]
    pub fn down(&mut self, ev: Down) {
        if self.index == 0 {
            self.core.net.push(ev);
        } else {
            self.core.queue.push(Item::Down((self.index - 1) as u32, ev));
        }
    }
    /// Passes an event to the layer above (or to the application from the top layer).
    #[inline]
    pub fn up(&mut self, ev: Up) {
        if self.index == self.core.top {
            self.core.app.push(ev);
        } else {
            self.core.queue.push(Item::Up((self.index + 1) as u32, ev));
        }
    }
    /// Injected time.
    #[inline]
    pub fn now(&self) -> Time {
        self.core.now
    }
    /// This member.
    #[inline]
    pub fn me(&self) -> MemberId {
        self.core.me
    }
    /// Sets (or moves) timer `id` to fire at `at`.
    pub fn set_timer(&mut self, id: TimerId, at: Time) {
        match self.slot.timers.iter_mut().find(|t| t.0 == id) {
            Some(t) => t.1 = at,
            None => self.slot.timers.push((id, at)),
        }
    }
    /// Asks for one call of [`Layer::idle`] when the stack's owner next runs out of
    /// input. Owners without a notion of idleness (the simulator) never call it, so
    /// a layer that asks keeps a timer as well.
    #[inline]
    pub fn call_when_idle(&mut self) {
        self.slot.idle_wanted = true;
    }
    /// Sets (or moves) timer `id` to fire `after` from now.
    pub fn set_timer_after(&mut self, id: TimerId, after: Duration) {
        let at = self.core.now + after;
        self.set_timer(id, at)
    }
    /// Whether timer `id` is set.
    pub fn timer_is_set(&self, id: TimerId) -> bool {
        self.slot.timers.iter().any(|t| t.0 == id)
    }
    /// Cancels timer `id` (no effect if it is not set).
    pub fn cancel_timer(&mut self, id: TimerId) {
        self.slot.timers.retain(|t| t.0 != id);
    }
    /// The stack's seeded random generator.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.core.rng
    }
    /// Adds `n` to one of this layer's counters.
    #[inline]
    pub fn count(&mut self, name: &'static str, n: u64) {
        self.slot.counters.add(name, n)
    }
    /// Sets one of this layer's gauges (and its `<name>_peak` is not tracked: use
    /// [`Ctx::peak`] for that).
    #[inline]
    pub fn gauge(&mut self, name: &'static str, v: u64) {
        self.slot.counters.set(name, v)
    }
    /// Raises a high-water mark counter.
    #[inline]
    pub fn peak(&mut self, name: &'static str, v: u64) {
        self.slot.counters.max(name, v)
    }
    /// Reads one of this layer's counters.
    pub fn counter(&self, name: &str) -> u64 {
        self.slot.counters.get(name)
    }
    /// The largest message this layer may pass down so that, with every header the
    /// layers below it add, it still fits one datagram of the transport: the
    /// transport's datagram size (its path MTU less the IP, UDP and packet headers)
    /// less the `header_max` of each layer below. `None` when the stack's owner did
    /// not say ([`crate::Stack::set_max_datagram`]); a layer then uses its own default.
    /// Known from `init` on.
    pub fn datagram_room(&self) -> Option<usize> {
        self.core.max_datagram.map(|m| m.saturating_sub(self.slot.below))
    }
    /// A new message for layer-local traffic (acks, naks, gossip) with headroom for
    /// this layer's header and every header below it.
    pub fn new_msg(&self, body: Bytes) -> Msg {
        Msg::new(body, self.slot.headroom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queued events are copied twice on every hop (into the driver's queue and out
    /// of it into the layer's call): the copy is most of what a hop costs, so they
    /// stay small. A message keeps its header area on the heap for this.
    #[test]
    fn queued_events_stay_small() {
        assert!(std::mem::size_of::<Msg>() <= 56);
        assert!(std::mem::size_of::<Down>() <= 72 && std::mem::size_of::<Up>() <= 72);
        assert!(std::mem::size_of::<Item>() <= 80);
    }
}
