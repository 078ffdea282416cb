//! The stack driver: runs a list of layers, bottom to top, through an explicit event
//! queue (no recursion), with per-layer timers and counters.
//!
//! The driver is itself sans-IO: whoever owns it (the simulator or a transport's event
//! loop) feeds it datagrams, application calls and the time, then pulls datagrams to
//! transmit ([`Stack::poll_net`]) and events for the application
//! ([`Stack::poll_event`]). The driver is the implicit top of every stack: it numbers
//! the application's casts (a varint in front of the payload) and writes the trace.

use crate::event::{Down, SeqVector, TimerId, Up};
use crate::layer::{props, Core, Counters, Ctx, Item, Layer, Property, Slot};
use crate::member::{MemberId, View, ViewReason};
use crate::message::Msg;
use crate::queue::Fifo;
use crate::rng::Rng;
use crate::time::Time;
use crate::trace::TraceWriter;
use crate::wire::{varint_len, Header, Reader, WireError, Writer, VARINT_MAX};
use bytes::Bytes;
use std::collections::VecDeque;
use thiserror::Error;

mod profile;
pub use profile::{clock_cost_ns, LayerProfile};

/// How a stack starts.
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// This member.
    pub me: MemberId,
    /// Seed of the stack's random generator.
    pub seed: u64,
    /// The static member list used when no layer provides `views` (ranked, oldest
    /// first). Ignored by stacks with a membership layer.
    pub members: Vec<MemberId>,
}

/// What the application receives.
#[derive(Clone, Debug, PartialEq)]
pub enum AppEvent {
    /// A multicast, the `seq`-th cast of `from`.
    Deliver { from: MemberId, seq: u64, payload: Bytes },
    /// A point-to-point message.
    Receive { from: MemberId, payload: Bytes },
    /// A new view.
    View(View),
    /// Stop sending and call `block_ok`.
    Block,
    /// Provide the group state with `state_reply`.
    StateRequest,
    /// The group state, before any message of the first view.
    State(Bytes),
    /// Members suspected of failure (informational).
    Suspect(Vec<MemberId>),
    /// Messages every member holds.
    Stable(SeqVector),
    /// The send window opened or closed.
    Flow { open: bool },
    /// This member is in a minority partition.
    NotPrimary,
    /// The member has left (or was excluded from) the group.
    Exit,
}

/// Why a cast or send was refused. Nothing was sent; the caller keeps its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum CastError {
    #[error("not a member of a view yet")]
    NotJoined,
    #[error("the view is being flushed; wait for the next view")]
    Blocked,
    #[error("flow control window is closed; wait for Flow {{ open: true }}")]
    WouldBlock,
    #[error("the member has left the group")]
    Exited,
}

/// What the bottom layer hands the transport.
#[derive(Debug)]
pub enum NetOut {
    /// Multicast a datagram to the group.
    Cast(Msg),
    /// Send a datagram to one member.
    Send(MemberId, Msg),
    /// The current view (unicast transports fan out to its members).
    View(View),
}

/// The application's cast counter, the implicit top header.
struct AppSeq(u64);

impl Header for AppSeq {
    const MAX_LEN: usize = VARINT_MAX;
    fn encoded_len(&self) -> usize {
        varint_len(self.0)
    }
    fn encode(&self, out: &mut [u8]) {
        Writer::new(out).varint(self.0)
    }
    fn decode(buf: &[u8]) -> Result<(Self, usize), WireError> {
        let mut r = Reader::new(buf);
        let v = r.varint()?;
        Ok((AppSeq(v), r.position()))
    }
}

/// One member's stack for one group.
pub struct Stack {
    layers: Vec<Box<dyn Layer>>,
    slots: Vec<Slot>,
    /// Queues, time, member and generator shared by every layer's context.
    core: Core,
    events: VecDeque<AppEvent>,
    static_members: Vec<MemberId>,
    has_views: bool,
    headroom: usize,
    cast_seq: u64,
    view: Option<View>,
    blocked: bool,
    flow_open: bool,
    exited: bool,
    joined: bool,
    trace: Option<TraceWriter>,
    own: Counters,
    /// Per-layer figures, only while profiling is on.
    profile: Option<Box<[LayerProfile]>>,
}

impl Stack {
    /// A stack of `layers`, listed bottom to top. Call [`Stack::join`] to start it.
    pub fn new(layers: Vec<Box<dyn Layer>>, cfg: StackConfig) -> Stack {
        let mut slots = Vec::with_capacity(layers.len());
        let mut headroom = 0;
        for l in &layers {
            let below = headroom;
            headroom += l.header_max();
            slots.push(Slot {
                timers: Vec::new(),
                counters: Counters::default(),
                headroom,
                below,
                idle_wanted: false,
            });
        }
        let has_views = layers.iter().any(|l| l.provides().contains(&props::VIEWS));
        let core = Core {
            top: layers.len().saturating_sub(1),
            now: Time::ZERO,
            me: cfg.me,
            queue: Fifo::with_capacity(64),
            net: Fifo::with_capacity(16),
            app: Fifo::with_capacity(16),
            rng: Rng::new(cfg.seed),
            max_datagram: None,
        };
        Stack {
            layers,
            slots,
            core,
            events: VecDeque::with_capacity(16),
            static_members: cfg.members,
            has_views,
            headroom: headroom + VARINT_MAX,
            cast_seq: 0,
            view: None,
            blocked: false,
            flow_open: true,
            exited: false,
            joined: false,
            trace: None,
            own: Counters::default(),
            profile: None,
        }
    }

    /// Switches the trace on: every view, send, delivery and the end are written.
    pub fn set_trace(&mut self, trace: TraceWriter) {
        self.trace = Some(trace);
    }

    /// Tells the layers how large a datagram the transport carries (bytes of stack
    /// data, after the transport's own packet header): bundling and fragmentation
    /// size their datagrams from it unless their descriptor fixes a size. Call it
    /// before [`Stack::join`]; layers read it when they start.
    pub fn set_max_datagram(&mut self, bytes: usize) {
        self.core.max_datagram = Some(bytes);
    }

    /// What [`Stack::set_max_datagram`] set.
    pub fn max_datagram(&self) -> Option<usize> {
        self.core.max_datagram
    }

    pub fn me(&self) -> MemberId {
        self.core.me
    }

    /// The view the application is in.
    pub fn view(&self) -> Option<&View> {
        self.view.as_ref()
    }

    /// Headroom a message needs for every header of this stack.
    pub fn headroom(&self) -> usize {
        self.headroom
    }

    /// Layer names, bottom to top.
    pub fn layer_names(&self) -> Vec<&'static str> {
        self.layers.iter().map(|l| l.name()).collect()
    }

    /// Properties the whole stack provides.
    pub fn provides(&self) -> Vec<Property> {
        let mut v: Vec<Property> =
            self.layers.iter().flat_map(|l| l.provides().iter().copied()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Starts the stack: initializes every layer, then joins the group (through the
    /// membership layer if there is one, else by installing the static member list).
    pub fn join(&mut self, now: Time) {
        if self.joined {
            return;
        }
        self.joined = true;
        self.core.now = now;
        for i in 0..self.layers.len() {
            self.with_ctx(i, |l, ctx| l.init(ctx));
        }
        self.run();
        if self.has_views {
            self.push_down(Down::Join);
        } else {
            let mut members = self.static_members.clone();
            if !members.contains(&self.core.me) {
                members.push(self.core.me);
            }
            let v = View::new(1, members, ViewReason::Initial);
            self.push_down(Down::View(v.clone()));
            self.core.app.push(Up::View(v));
        }
        self.run();
    }

    /// Casts `payload` to the current view. Returns the cast's number (from 1).
    pub fn cast(&mut self, now: Time, payload: Bytes) -> Result<u64, CastError> {
        self.check_can_send()?;
        self.core.now = now;
        self.cast_seq += 1;
        let seq = self.cast_seq;
        let mut msg = Msg::new(payload, self.headroom);
        msg.push(&AppSeq(seq));
        if let (Some(t), Some(v)) = (self.trace.as_mut(), self.view.as_ref()) {
            t.send(now, seq, v.id);
        }
        self.push_down(Down::Cast(msg));
        self.run();
        Ok(seq)
    }

    /// Sends `payload` to one member.
    pub fn send(&mut self, now: Time, dest: MemberId, payload: Bytes) -> Result<(), CastError> {
        self.check_can_send()?;
        self.core.now = now;
        let msg = Msg::new(payload, self.headroom);
        self.push_down(Down::Send(dest, msg));
        self.run();
        Ok(())
    }

    fn check_can_send(&self) -> Result<(), CastError> {
        if self.exited {
            Err(CastError::Exited)
        } else if self.view.is_none() {
            Err(CastError::NotJoined)
        } else if self.blocked {
            Err(CastError::Blocked)
        } else if !self.flow_open {
            Err(CastError::WouldBlock)
        } else {
            Ok(())
        }
    }

    /// Whether a cast would be accepted now.
    pub fn can_send(&self) -> bool {
        self.check_can_send().is_ok()
    }

    /// The application answers `Block`: it sends nothing more in this view.
    pub fn block_ok(&mut self, now: Time) {
        self.core.now = now;
        self.blocked = true;
        self.push_down(Down::BlockOk);
        self.run();
    }

    /// The application answers `StateRequest`.
    pub fn state_reply(&mut self, now: Time, state: Bytes) {
        self.core.now = now;
        self.push_down(Down::StateReply(state));
        self.run();
    }

    /// Leaves the group cleanly.
    pub fn leave(&mut self, now: Time) {
        self.core.now = now;
        self.push_down(Down::Leave);
        self.run();
    }

    /// A datagram for this stack arrived from `from` (its packet header already
    /// removed by the transport); `cast` tells a multicast from a point-to-point send.
    pub fn receive(&mut self, now: Time, from: MemberId, cast: bool, datagram: Bytes) {
        self.core.now = now;
        let msg = Msg::from_wire(datagram);
        let ev = if cast { Up::Cast(from, msg) } else { Up::Send(from, msg) };
        if self.layers.is_empty() {
            self.core.app.push(ev);
        } else {
            self.core.queue.push(Item::Up(0, ev));
        }
        self.run();
    }

    /// The earliest timer deadline, if any timer is set.
    pub fn next_timeout(&self) -> Option<Time> {
        self.slots.iter().flat_map(|s| s.timers.iter().map(|t| t.1)).min()
    }

    /// Fires every timer due at `now`, earliest first.
    pub fn handle_timeout(&mut self, now: Time) {
        self.core.now = now;
        loop {
            let mut due: Option<(Time, usize, TimerId)> = None;
            for (i, s) in self.slots.iter().enumerate() {
                for &(id, at) in &s.timers {
                    if at <= now && due.is_none_or(|d| (at, i, id) < d) {
                        due = Some((at, i, id));
                    }
                }
            }
            let Some((_, i, id)) = due else { break };
            self.slots[i].timers.retain(|t| t.0 != id);
            self.core.queue.push(Item::Timer(i as u32, id));
            self.run();
        }
    }

    /// Whether a layer asked to hear when the owner runs out of input
    /// ([`Stack::idle`]).
    pub fn wants_idle(&self) -> bool {
        self.slots.iter().any(|s| s.idle_wanted)
    }

    /// The owner has nothing more to hand the stack for now: every layer that asked
    /// ([`Ctx::call_when_idle`]) gets [`Layer::idle`], top to bottom, so what an upper
    /// layer sends then still passes the layers below before this returns.
    pub fn idle(&mut self, now: Time) {
        self.core.now = now;
        for i in (0..self.layers.len()).rev() {
            if std::mem::take(&mut self.slots[i].idle_wanted) {
                self.with_ctx(i, |l, ctx| l.idle(ctx));
                self.run();
            }
        }
    }

    /// The next datagram (or view) for the transport.
    pub fn poll_net(&mut self) -> Option<NetOut> {
        loop {
            match self.core.net.pop()? {
                Down::Cast(m) | Down::CastUnreliable(m) => return Some(NetOut::Cast(m)),
                Down::Send(d, m) => return Some(NetOut::Send(d, m)),
                Down::View(v) => return Some(NetOut::View(v)),
                _ => continue,
            }
        }
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<AppEvent> {
        self.events.pop_front()
    }

    /// Whether the member has left or been excluded.
    pub fn exited(&self) -> bool {
        self.exited
    }

    /// Writes the trace's `end` line (the member is alive at the end of a clean run).
    pub fn end_trace(&mut self) {
        let now = self.core.now;
        if let Some(t) = self.trace.as_mut() {
            t.end(now);
        }
    }

    /// Every counter: `(layer, counter, value)`, bottom to top, then the driver's own
    /// under the layer name `stack`.
    pub fn counters(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut out = Vec::new();
        for (l, s) in self.layers.iter().zip(&self.slots) {
            out.extend(s.counters.iter().map(|(k, v)| (l.name(), k, v)));
        }
        out.extend(self.own.iter().map(|(k, v)| ("stack", k, v)));
        out
    }

    /// One counter of one layer (0 if never bumped).
    pub fn counter(&self, layer: &str, name: &str) -> u64 {
        self.layers
            .iter()
            .zip(&self.slots)
            .filter(|(l, _)| l.name() == layer)
            .map(|(_, s)| s.counters.get(name))
            .sum()
    }

    fn push_down(&mut self, ev: Down) {
        match self.layers.len() {
            0 => self.core.net.push(ev),
            n => self.core.queue.push(Item::Down((n - 1) as u32, ev)),
        }
    }

    #[inline]
    fn with_ctx<R>(&mut self, i: usize, f: impl FnOnce(&mut dyn Layer, &mut Ctx) -> R) -> R {
        let (layer, mut ctx) = self.layer_and_ctx(i);
        f(layer, &mut ctx)
    }

    /// Layer `i` and its context, borrowed apart from each other.
    #[inline(always)]
    fn layer_and_ctx(&mut self, i: usize) -> (&mut dyn Layer, Ctx<'_>) {
        let ctx = Ctx { index: i, core: &mut self.core, slot: &mut self.slots[i] };
        (self.layers[i].as_mut(), ctx)
    }

    /// Drains the queue, then hands what reached the top to the application.
    fn run(&mut self) {
        loop {
            if self.profile.is_some() {
                self.drain_profiled();
            }
            // The event is moved straight from its slot in the queue into the layer's
            // call: one copy per hop (moving the item out whole, then its event out of
            // it, would be two). The layer is looked up before the event is read, so
            // nothing that can panic lies between the read and the call (a panic there
            // would need a second copy of the event to drop).
            while let Some(item) = self.core.queue.pop_in_place() {
                let (layers, slots) = (&mut self.layers, &mut self.slots);
                // SAFETY (each `ptr::read`): the item was popped, so it is ours; its
                // event is read out once and the rest of it is `Copy`, and the item is
                // forgotten (never dropped) once its borrow of the queue ends here.
                match &**item {
                    Item::Down(i, ev) => {
                        let i = *i as usize;
                        let (l, slot) = (layers[i].as_mut(), &mut slots[i]);
                        let ev = unsafe { std::ptr::read(ev) };
                        l.down(ev, &mut Ctx { index: i, core: &mut self.core, slot })
                    }
                    Item::Up(i, ev) => {
                        let i = *i as usize;
                        let (l, slot) = (layers[i].as_mut(), &mut slots[i]);
                        let ev = unsafe { std::ptr::read(ev) };
                        l.up(ev, &mut Ctx { index: i, core: &mut self.core, slot })
                    }
                    &Item::Timer(i, id) => {
                        let (l, mut c) = self.layer_and_ctx(i as usize);
                        l.timer(id, &mut c)
                    }
                }
            }
            if self.core.app.is_empty() {
                break;
            }
            while let Some(ev) = self.core.app.pop() {
                self.hand_to_app(ev);
            }
        }
    }

    fn hand_to_app(&mut self, ev: Up) {
        let now = self.core.now;
        match ev {
            Up::Cast(from, mut msg) => {
                let Ok(AppSeq(seq)) = msg.pop::<AppSeq>() else {
                    self.own.add("malformed_dropped", 1);
                    return;
                };
                if let (Some(t), Some(v)) = (self.trace.as_mut(), self.view.as_ref()) {
                    t.deliver(now, from, seq, v.id);
                }
                self.own.add("delivered", 1);
                self.events.push_back(AppEvent::Deliver { from, seq, payload: msg.into_body() });
            }
            Up::Send(from, msg) => {
                self.events.push_back(AppEvent::Receive { from, payload: msg.into_body() })
            }
            Up::View(v) => {
                if let Some(t) = self.trace.as_mut() {
                    t.view(now, &v);
                }
                self.blocked = false;
                self.view = Some(v.clone());
                self.events.push_back(AppEvent::View(v));
            }
            Up::Block => self.events.push_back(AppEvent::Block),
            Up::StateRequest => self.events.push_back(AppEvent::StateRequest),
            Up::State(s) => self.events.push_back(AppEvent::State(s)),
            Up::Suspect(s) => self.events.push_back(AppEvent::Suspect(s)),
            Up::Stable(s) => self.events.push_back(AppEvent::Stable(s)),
            Up::Flow { open } => {
                if open != self.flow_open {
                    self.flow_open = open;
                    self.events.push_back(AppEvent::Flow { open });
                }
            }
            Up::NotPrimary => self.events.push_back(AppEvent::NotPrimary),
            Up::Exit => {
                self.exited = true;
                if let Some(t) = self.trace.as_mut() {
                    t.flush();
                }
                self.events.push_back(AppEvent::Exit);
            }
            Up::Progress(_) => {}
        }
    }
}
