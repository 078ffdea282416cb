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
//! never sends, since it grants only in half windows). As soon as a message leaves
//! some receiver at or past its limit, flow passes up `Up::Flow { open: false }`: the
//! driver then refuses application casts and sends with `CastError::WouldBlock` before
//! they enter the stack, and the application retries after `AppEvent::Flow { open:
//! true }`, which flow passes up once credit has reopened the window. Members suspected
//! (`Down::Suspect`, from the membership layer) no longer hold the window: a failed
//! receiver never grants credit.
//!
//! *Flow never holds a message.* The driver stops the application when the window
//! closes, so what still reaches flow while it is closed comes from layers above
//! (membership, flush, ordering, safe delivery). Their protocols may need it delivered
//! before any credit can come back, and they count a message as sent once it has gone
//! below them: the membership layer reports the casts it passed down in the view as
//! the flush cut, and a message held here would reach the reliable layer after that
//! report, be delivered by its sender in the old view and dropped by the others as
//! beyond the cut. Such a message therefore goes down at once, over the limit (an
//! *overdraft*, counted in `overdrafts`), and the window stays closed until credit
//! covers it. A view resets all credits for its members and reopens the window.
//!
//! *Unreliable casts* (`Down::CastUnreliable`, e.g. a membership layer's merge beacon
//! heard by other groups) go down at once with a `Free` header, charged against no
//! credit: their receivers may be in no view of this member's and would never grant
//! any back. A receiver passes a `Free` message up without counting it as consumed.
//!
//! ## Parameters
//! - `window` (bytes, default 1 MiB, at least 1): credit a receiver grants ahead.
//!
//! ## Properties
//! Requires `reliable-fifo` (credits and counts must not be lost or duplicated);
//! provides `flow-control`.
//!
//! ## Events generated
//! `Down::Cast`/`Down::Send` (data, with a one-byte header; credits),
//! `Down::CastUnreliable` (with the one-byte `Free` header);
//! `Up::Flow { open }`. Counters: `blocked` (times the window closed), `credits_sent`,
//! `credits_received`, `overdrafts` (messages sent over a limit while closed),
//! `malformed_dropped`.
//!
//! ## Testing
//! Unit tests below drive the layer through `Harness` (window closing after `window`
//! bytes, reopening on credit, messages from above never held, credit grants every
//! half window, views, suspicion, sends); `wire.rs` tests the header bytes;
//! `layers/tests/loopback.rs` runs a fast sender against a slow receiver over an
//! in-order loopback network and checks the bytes in flight stay bounded.

pub mod wire;

use bytes::Bytes;
use serde::Deserialize;
use stack_core::{props, Ctx, Down, Header, Layer, MemberId, Msg, Property, Up};
pub use wire::FlowHdr;

/// Parameters of [`Flow`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowParams {
    /// Credit granted ahead by each receiver, bytes.
    pub window: u64,
}

impl Default for FlowParams {
    fn default() -> Self {
        FlowParams { window: 1 << 20 }
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
    closed: bool,
}

impl Flow {
    pub fn new(p: FlowParams) -> Self {
        let p = FlowParams { window: p.window.max(1) };
        Flow { p, view: 0, peers: Vec::new(), closed: false }
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

    /// A message from above: it goes down at once, whatever the credit (see the
    /// module documentation), and the window closes as soon as a receiver's credit is
    /// spent.
    fn data(&mut self, ev: Down, ctx: &mut Ctx) {
        if !self.can_go(&ev) {
            ctx.count("overdrafts", 1);
        }
        self.go(ev, ctx);
        if !self.closed && !self.cast_open() {
            self.closed = true;
            ctx.count("blocked", 1);
            ctx.up(Up::Flow { open: false });
        }
    }

    fn reopen(&mut self, ctx: &mut Ctx) {
        if self.closed && self.cast_open() {
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
            Ok(FlowHdr::Free) => ctx.up(out(m)),
            Ok(FlowHdr::Credit { view, limit }) => {
                ctx.count("credits_received", 1);
                if view == self.view {
                    if let Some(p) = self.peer(from) {
                        p.limit = p.limit.max(limit);
                    }
                    self.reopen(ctx);
                }
            }
            Err(_) => ctx.count("malformed_dropped", 1),
        }
    }

    /// Whether the window is closed (the application is being held back).
    pub fn is_closed(&self) -> bool {
        self.closed
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
            Down::CastUnreliable(mut m) => {
                // Receivers in another group never return credit for it.
                m.push(&FlowHdr::Free);
                ctx.down(Down::CastUnreliable(m))
            }
            Down::View(v) => {
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
                self.reopen(ctx);
                ctx.down(Down::Suspect(ms))
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
