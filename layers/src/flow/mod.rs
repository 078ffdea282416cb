//! # flow — credit-based flow control
//!
//! ## Protocol
//! Every member is a receiver that grants credit, in bytes, to every other member of
//! the view as a sender. A sender may send a receiver up to the receiver's cumulative
//! `limit` (bytes counted as flow sees them going down: payload plus the headers
//! above). At the start of a view every limit is `window`.
//!
//! *Receiver.* A message from a member is consumed when flow passes it up to the
//! layer above — the only consumption point a sans-IO layer can see; an application
//! that stops polling its events stops its event loop, and with it the stack, so this
//! is where a slow receiver shows. Once the sender's bytes consumed plus `window`
//! exceed the last limit granted by half a window, the receiver grants the new limit
//! (consumed + `window`) with a `Credit` message sent point-to-point to that sender
//! over the reliable layer below. Credits are not piggybacked on data: one small
//! message per half window per pair of members costs little, and casts, which go to
//! everyone, cannot carry a per-sender credit cheaply.
//!
//! *Sender.* A cast uses credit of every member of the view, a send to one member only
//! of that member's. A message goes down at once while the sender is under the limit
//! of every receiver concerned (so it may pass a limit by less than one message;
//! requiring room for the whole message could wait forever for a credit the receiver
//! never sends, since it grants only in half windows). Otherwise flow queues it — and
//! every later message, keeping the sender's order — and passes up
//! `Up::Flow { open: false }`. The driver then refuses application casts and sends with
//! `CastError::WouldBlock`; the application retries after `AppEvent::Flow { open:
//! true }`, which flow passes up once credits have let its queue drain and the cast
//! window is open again. Members suspected (`Down::Suspect`, from the membership
//! layer) no longer hold the window: a failed receiver never grants credit.
//!
//! *Control traffic from above is never blocked for good.* The driver stops the
//! application as soon as the window closes, so messages that keep arriving while the
//! queue is full come from layers above flow (membership, flush, ordering), whose
//! protocols may need them delivered before any credit can come back. When a message
//! arrives with `queue` messages already waiting, flow sends the whole queue and the
//! message at once, over the limits (an *overdraft*, counted in `overdrafts`): order is
//! kept, the sender's memory stays bounded, and the window stays closed until credit
//! covers the overdraft. For the same reason `Down::BlockOk`, `Down::Leave` and
//! `Down::View` first send everything queued (it belongs to the ending view), and a
//! view resets all credits for its members and reopens the window.
//!
//! ## Parameters
//! - `window` (bytes, default 1 MiB, at least 1): credit a receiver grants ahead.
//! - `queue` (messages, default 8, at least 1): messages held while the window is
//!   closed before an overdraft.
//!
//! ## Properties
//! Requires `reliable-fifo` (credits and counts must not be lost or duplicated);
//! provides `flow-control`.
//!
//! ## Events generated
//! `Down::Cast`/`Down::Send` (data, with a one-byte header; credits);
//! `Up::Flow { open }`. Counters: `blocked` (times the window closed), `credits_sent`,
//! `credits_received`, `overdrafts`, `queued_peak`, gauge `queued`,
//! `malformed_dropped`.
//!
//! ## Testing
//! Unit tests below drive the layer through `Harness` (window closing after `window`
//! bytes, reopening on credit, bounded queue and overdraft, credit grants every half
//! window, views, suspicion, sends); `wire.rs` tests the header bytes;
//! `layers/tests/loopback.rs` runs a fast sender against a slow receiver over an
//! in-order loopback network and checks the bytes in flight stay bounded.

pub mod wire;

use bytes::Bytes;
use serde::Deserialize;
use stack_core::{props, Ctx, Down, Header, Layer, MemberId, Msg, Property, Up};
use std::collections::VecDeque;
pub use wire::FlowHdr;

/// Parameters of [`Flow`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowParams {
    /// Credit granted ahead by each receiver, bytes.
    pub window: u64,
    /// Messages held while the window is closed.
    pub queue: usize,
}

impl Default for FlowParams {
    fn default() -> Self {
        FlowParams { window: 1 << 20, queue: 8 }
    }
}

/// What this member knows of another member of the view.
#[derive(Debug)]
struct Peer {
    id: MemberId,
    /// As a sender: bytes it lets us send in all, and bytes we sent it.
    limit: u64,
    sent: u64,
    /// As a receiver: bytes of it we passed up, and the limit we last granted.
    consumed: u64,
    granted: u64,
    /// Suspected members do not hold the cast window.
    suspected: bool,
}

impl Peer {
    fn open(&self) -> bool {
        self.suspected || self.sent < self.limit
    }
}

/// The flow layer: see the module documentation.
pub struct Flow {
    p: FlowParams,
    view: u64,
    /// The other members of the view, sorted.
    peers: Vec<Peer>,
    queue: VecDeque<Down>,
    closed: bool,
}

impl Flow {
    pub fn new(p: FlowParams) -> Self {
        let p = FlowParams { window: p.window.max(1), queue: p.queue.max(1) };
        Flow { p, view: 0, peers: Vec::new(), queue: VecDeque::new(), closed: false }
    }

    fn peer(&mut self, m: MemberId) -> Option<&mut Peer> {
        self.peers.binary_search_by_key(&m, |p| p.id).ok().map(|i| &mut self.peers[i])
    }

    fn cast_open(&self) -> bool {
        self.peers.iter().all(Peer::open)
    }

    fn can_go(&mut self, ev: &Down) -> bool {
        match ev {
            Down::Cast(_) => self.cast_open(),
            Down::Send(d, _) => self.peer(*d).is_none_or(|p| p.open()),
            _ => true,
        }
    }

    /// Charges a message against the credits and passes it down.
    fn go(&mut self, ev: Down, ctx: &mut Ctx) {
        match ev {
            Down::Cast(mut m) => {
                let n = m.len() as u64;
                for p in &mut self.peers {
                    p.sent += n;
                }
                m.push(&FlowHdr::Data);
                ctx.down(Down::Cast(m))
            }
            Down::Send(d, mut m) => {
                let n = m.len() as u64;
                if let Some(p) = self.peer(d) {
                    p.sent += n;
                }
                m.push(&FlowHdr::Data);
                ctx.down(Down::Send(d, m))
            }
            ev => ctx.down(ev),
        }
    }

    fn data(&mut self, ev: Down, ctx: &mut Ctx) {
        if self.queue.is_empty() && self.can_go(&ev) {
            return self.go(ev, ctx);
        }
        if self.queue.len() >= self.p.queue {
            ctx.count("overdrafts", 1);
            self.send_all(ctx);
            self.go(ev, ctx);
            return self.reopen(ctx);
        }
        self.queue.push_back(ev);
        ctx.gauge("queued", self.queue.len() as u64);
        ctx.peak("queued_peak", self.queue.len() as u64);
        if !self.closed {
            self.closed = true;
            ctx.count("blocked", 1);
            ctx.up(Up::Flow { open: false });
        }
    }

    /// Sends what the credits allow, in order.
    fn drain(&mut self, ctx: &mut Ctx) {
        while let Some(ev) = self.queue.front() {
            let ok = match ev {
                Down::Cast(_) => self.cast_open(),
                Down::Send(d, _) => {
                    let d = *d;
                    self.peer(d).is_none_or(|p| p.open())
                }
                _ => true,
            };
            if !ok {
                break;
            }
            let ev = self.queue.pop_front().expect("front exists");
            self.go(ev, ctx);
        }
        ctx.gauge("queued", self.queue.len() as u64);
        self.reopen(ctx);
    }

    /// Sends everything queued, over the limits.
    fn send_all(&mut self, ctx: &mut Ctx) {
        while let Some(ev) = self.queue.pop_front() {
            self.go(ev, ctx);
        }
        ctx.gauge("queued", 0);
    }

    fn reopen(&mut self, ctx: &mut Ctx) {
        if self.closed && self.queue.is_empty() && self.cast_open() {
            self.closed = false;
            ctx.up(Up::Flow { open: true });
        }
    }

    /// A message of `from` is passed up: account for it, grant credit if due.
    fn consume(&mut self, from: MemberId, n: u64, ctx: &mut Ctx) {
        let (window, view) = (self.p.window, self.view);
        let Some(p) = self.peer(from) else { return };
        p.consumed += n;
        let limit = p.consumed + window;
        if limit - p.granted >= window / 2 {
            p.granted = limit;
            let mut m = ctx.new_msg(Bytes::new());
            m.push(&FlowHdr::Credit { view, limit });
            ctx.count("credits_sent", 1);
            ctx.down(Down::Send(from, m));
        }
    }

    fn receive(&mut self, from: MemberId, mut m: Msg, ctx: &mut Ctx, out: impl Fn(Msg) -> Up) {
        match m.pop::<FlowHdr>() {
            Ok(FlowHdr::Data) => {
                self.consume(from, m.len() as u64, ctx);
                ctx.up(out(m))
            }
            Ok(FlowHdr::Credit { view, limit }) => {
                ctx.count("credits_received", 1);
                if view == self.view {
                    if let Some(p) = self.peer(from) {
                        p.limit = p.limit.max(limit);
                    }
                    self.drain(ctx);
                }
            }
            Err(_) => ctx.count("malformed_dropped", 1),
        }
    }

    /// Whether the window is closed (the application is being held back).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Messages waiting for credit.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

const REQUIRES: &[Property] = &[props::RELIABLE_FIFO];
const PROVIDES: &[Property] = &[props::FLOW_CONTROL];

impl Layer for Flow {
    fn name(&self) -> &'static str {
        "flow"
    }
    fn requires(&self) -> &[Property] {
        REQUIRES
    }
    fn provides(&self) -> &[Property] {
        PROVIDES
    }
    fn header_max(&self) -> usize {
        FlowHdr::MAX_LEN
    }

    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        match ev {
            Down::Cast(_) | Down::Send(..) => self.data(ev, ctx),
            Down::View(v) => {
                self.send_all(ctx);
                let (me, w) = (ctx.me(), self.p.window);
                self.view = v.id;
                let mut ids: Vec<MemberId> =
                    v.members.iter().copied().filter(|&m| m != me).collect();
                ids.sort();
                ids.dedup();
                self.peers = ids
                    .into_iter()
                    .map(|id| Peer {
                        id,
                        limit: w,
                        sent: 0,
                        consumed: 0,
                        granted: w,
                        suspected: false,
                    })
                    .collect();
                self.reopen(ctx);
                ctx.down(Down::View(v))
            }
            Down::Suspect(ms) => {
                for &m in &ms {
                    if let Some(p) = self.peer(m) {
                        p.suspected = true;
                    }
                }
                self.drain(ctx);
                ctx.down(Down::Suspect(ms))
            }
            ev @ (Down::BlockOk | Down::Leave) => {
                self.send_all(ctx);
                ctx.down(ev)
            }
            ev => ctx.down(ev),
        }
    }

    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        match ev {
            Up::Cast(from, m) => self.receive(from, m, ctx, |m| Up::Cast(from, m)),
            Up::Send(from, m) => self.receive(from, m, ctx, |m| Up::Send(from, m)),
            ev => ctx.up(ev),
        }
    }
}

#[cfg(test)]
mod tests;
