//! # frag — fragmentation and reassembly
//!
//! ## Protocol
//! Going down, a cast or send whose length (the payload plus every header pushed above
//! this layer) is at most `mtu` gets a one-byte `Whole` header. A longer one is cut
//! into `ceil(len / mtu)` fragments of `mtu` bytes (the last one shorter). Fragments
//! are slices of the original payload (`Bytes::slice`, no copy); only the few header
//! bytes pushed above frag are copied, into the first fragment's header area. The first
//! fragment carries `First { id, count, total }`, the others `Next { id, index }`
//! ([`wire::FragHdr`]).
//!
//! Going up, frag relies on reliable FIFO below: the fragments of one sender arrive
//! once each and in order, so the receiver keeps at most one partial message per
//! sender and stream (one for its casts, one for its sends to this member), copied
//! into a buffer sized from `total` as fragments arrive (the one copy of reassembly).
//!
//! Memory is bounded: a message announcing more than `max_message` bytes is not
//! buffered; its fragments are dropped up to its last one and counted
//! (`oversize_dropped`); the sender's later messages are delivered normally. Likewise a
//! message that would take the sum of all partial messages past `max_buffered` is
//! dropped and counted (`memory_dropped`). Either drop is a loss the application must
//! treat as a configuration error of the sender (a message larger than the group
//! accepts), not as a failure of the sender.
//!
//! A view (`Down::View`, passed on down) discards the partial messages of senders that
//! are no longer members (`view_discarded`). A survivor's partial message is kept: its
//! remaining fragments may still arrive in order. A `First` or `Whole` arriving while a
//! partial message of the same stream is open means the rest will never come (the
//! stream was cut by a view change below): the partial message is dropped
//! (`incomplete_dropped`) and the new one handled.
//!
//! ## Parameters
//! - `mtu` (bytes, default: the transport's): the largest message frag passes down
//!   whole, counted as the bytes frag sees (payload and headers above it). Left out,
//!   it is what fits one datagram of the transport ([`Ctx::datagram_room`]) less
//!   frag's own header (at most 31 bytes): about 65,400 bytes on loopback, 1,380 on a
//!   1500-byte Ethernet, so a message is cut only where the network would have to cut
//!   it; 1400 when the stack's owner names no size (then keep
//!   `mtu + headers below + 24 <= 1472`, a UDP payload on a 1500-byte Ethernet MTU
//!   over IPv4). A value given is lowered to that room too, and is at least 1. The
//!   size in use is the gauge `mtu`.
//! - `max_message` (bytes, default 64 MiB): the largest message reassembled.
//! - `max_buffered` (bytes, default 256 MiB): all partial messages together.
//!
//! ## Properties
//! Requires `reliable-fifo`; provides `large-messages`.
//!
//! ## Events generated
//! `Down::Cast`/`Down::Send` per fragment; `Up::Cast`/`Up::Send` per reassembled
//! message. `Down::CastUnreliable` goes down whole (reassembly needs every fragment
//! in order, which an unreliable cast does not promise) or, larger than the mtu, is
//! dropped (`unreliable_oversize_dropped`). Other events pass through. Counters:
//! `fragmented` (messages split),
//! `fragments_sent`, `reassembled`, `oversize_dropped`, `memory_dropped`,
//! `incomplete_dropped`, `view_discarded`, `malformed_dropped`; gauge
//! `reassembly_bytes` and its peak `reassembly_peak`.
//!
//! ## Testing
//! Unit tests below drive the layer through `Harness` (small, exact-mtu, mtu+1 and
//! 16 MiB messages, zero-copy fragments, interleaved senders, oversize and memory
//! bounds, views, malformed fragments); `wire.rs` tests the header bytes;
//! `layers/tests/loopback.rs` runs frag in stacks over an in-order loopback network.

pub mod wire;

use bytes::BytesMut;
use serde::Deserialize;
use stack_core::{props, Ctx, Down, Header, Layer, MemberId, Msg, Property, Up};
use std::collections::BTreeMap;
pub use wire::FragHdr;

/// Parameters of [`Frag`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FragParams {
    /// Largest message passed down whole (payload and headers above frag), bytes
    /// (default: what fits one datagram of the transport).
    pub mtu: Option<usize>,
    /// Largest message reassembled, bytes.
    pub max_message: u64,
    /// Largest sum of all partial messages being reassembled, bytes.
    pub max_buffered: u64,
}

impl Default for FragParams {
    fn default() -> Self {
        FragParams { mtu: None, max_message: 64 << 20, max_buffered: 256 << 20 }
    }
}

/// One sender's stream being reassembled.
enum Partial {
    /// Copying fragments into `buf` (capacity `total`).
    Assembling { id: u64, count: u64, next: u64, total: u64, buf: BytesMut },
    /// Dropping the fragments of a message that was refused.
    Skipping { id: u64, count: u64, next: u64 },
}

impl Partial {
    fn reserved(&self) -> u64 {
        match self {
            Partial::Assembling { total, .. } => *total,
            Partial::Skipping { .. } => 0,
        }
    }
}

/// Which stream of a sender: its casts or its sends to this member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stream {
    Cast,
    Send,
}

/// The frag layer: see the module documentation.
pub struct Frag {
    p: FragParams,
    /// The largest message passed down whole, fixed when the layer starts.
    mtu: usize,
    next_id: u64,
    partial: BTreeMap<(MemberId, Stream), Partial>,
    /// Sum of `total` over assembling partial messages.
    buffered: u64,
}

impl Frag {
    pub fn new(p: FragParams) -> Self {
        let mtu = mtu_in_use(p.mtu, None);
        Frag { p, mtu, next_id: 0, partial: BTreeMap::new(), buffered: 0 }
    }

    fn split(&mut self, mut msg: Msg, ctx: &mut Ctx, out: impl Fn(Msg) -> Down) {
        let len = msg.len();
        let mtu = self.mtu;
        if len <= mtu {
            msg.push(&FragHdr::Whole);
            ctx.down(out(msg));
            return;
        }
        let count = len.div_ceil(mtu) as u64;
        let id = self.next_id;
        self.next_id += 1;
        ctx.count("fragmented", 1);
        ctx.count("fragments_sent", count);
        let hdrs = msg.headers();
        let h = hdrs.len();
        let body = msg.body();
        let headroom = msg.headroom();
        for i in 0..count as usize {
            let (start, end) = (i * mtu, ((i + 1) * mtu).min(len));
            // The part of [start, end) in the headers, then the part in the body.
            let hs = &hdrs[start.min(h)..end.min(h)];
            let slice = body.slice(start.max(h) - h..end.max(h) - h);
            let mut f = if hs.is_empty() {
                ctx.new_msg(slice)
            } else {
                let mut f = Msg::new(slice, headroom + hs.len());
                f.push_bytes(hs);
                f
            };
            let hdr = if i == 0 {
                FragHdr::First { id, count, total: len as u64 }
            } else {
                FragHdr::Next { id, index: i as u64 }
            };
            f.push(&hdr);
            ctx.down(out(f));
        }
    }

    fn set_buffered(&mut self, v: u64, ctx: &mut Ctx) {
        self.buffered = v;
        ctx.gauge("reassembly_bytes", v);
        ctx.peak("reassembly_peak", v);
    }

    /// Drops the open partial message of `key`, if any, as incomplete.
    fn drop_open(&mut self, key: (MemberId, Stream), ctx: &mut Ctx) {
        if let Some(p) = self.partial.remove(&key) {
            ctx.count("incomplete_dropped", 1);
            self.set_buffered(self.buffered - p.reserved(), ctx);
        }
    }

    /// One fragment (or whole message) from `from`; returns a message to pass up.
    fn reassemble(
        &mut self,
        from: MemberId,
        stream: Stream,
        mut msg: Msg,
        ctx: &mut Ctx,
    ) -> Option<Msg> {
        let Ok(hdr) = msg.pop::<FragHdr>() else {
            ctx.count("malformed_dropped", 1);
            return None;
        };
        let key = (from, stream);
        match hdr {
            FragHdr::Whole => {
                self.drop_open(key, ctx);
                Some(msg)
            }
            FragHdr::First { id, count, total } => {
                self.drop_open(key, ctx);
                let part = msg.into_body();
                let refuse = if total > self.p.max_message {
                    Some("oversize_dropped")
                } else if self.buffered + total > self.p.max_buffered {
                    Some("memory_dropped")
                } else if part.len() as u64 > total {
                    ctx.count("malformed_dropped", 1);
                    return None;
                } else {
                    None
                };
                let p = match refuse {
                    Some(counter) => {
                        ctx.count(counter, 1);
                        Partial::Skipping { id, count, next: 1 }
                    }
                    None => {
                        let mut buf = BytesMut::with_capacity(total as usize);
                        buf.extend_from_slice(&part);
                        self.set_buffered(self.buffered + total, ctx);
                        Partial::Assembling { id, count, next: 1, total, buf }
                    }
                };
                self.partial.insert(key, p);
                None
            }
            FragHdr::Next { id, index } => {
                let Some(p) = self.partial.get_mut(&key) else {
                    ctx.count("malformed_dropped", 1);
                    return None;
                };
                match p {
                    Partial::Skipping { id: pid, count, next } if *pid == id && *next == index => {
                        *next += 1;
                        if *next == *count {
                            self.partial.remove(&key);
                        }
                        None
                    }
                    Partial::Assembling { id: pid, count, next, total, buf }
                        if *pid == id && *next == index =>
                    {
                        // The rest of the message, headers of the layers above
                        // included when they were pushed locally.
                        let part = msg.into_body();
                        let last = index + 1 == *count;
                        let have = (buf.len() + part.len()) as u64;
                        if have > *total || (last && have != *total) {
                            self.malformed(key, ctx);
                            return None;
                        }
                        buf.extend_from_slice(&part);
                        *next += 1;
                        if !last {
                            return None;
                        }
                        let Some(Partial::Assembling { buf, total, .. }) =
                            self.partial.remove(&key)
                        else {
                            unreachable!("matched above")
                        };
                        self.set_buffered(self.buffered - total, ctx);
                        ctx.count("reassembled", 1);
                        Some(Msg::from_wire(buf.freeze()))
                    }
                    _ => {
                        self.malformed(key, ctx);
                        None
                    }
                }
            }
        }
    }

    /// A fragment that does not continue the open message: drop both.
    fn malformed(&mut self, key: (MemberId, Stream), ctx: &mut Ctx) {
        ctx.count("malformed_dropped", 1);
        if let Some(p) = self.partial.remove(&key) {
            self.set_buffered(self.buffered - p.reserved(), ctx);
        }
    }

    /// Partial messages open (for tests and inspection).
    pub fn partial_count(&self) -> usize {
        self.partial.len()
    }
}

const REQUIRES: &[Property] = &[props::RELIABLE_FIFO];
const PROVIDES: &[Property] = &[props::LARGE_MESSAGES];

/// The message size passed down whole when neither the descriptor nor the transport
/// gives one.
pub const DEFAULT_MTU: usize = 1400;

/// The mtu in use: the one asked for, within what one datagram of the transport holds
/// behind frag's own header.
fn mtu_in_use(asked: Option<usize>, room: Option<usize>) -> usize {
    let room = room.map(|r| r.saturating_sub(FragHdr::MAX_LEN));
    let mtu = match (asked, room) {
        (Some(a), Some(r)) => a.min(r),
        (Some(a), None) => a,
        (None, Some(r)) => r,
        (None, None) => DEFAULT_MTU,
    };
    mtu.max(1)
}

impl Layer for Frag {
    fn name(&self) -> &'static str {
        "frag"
    }
    fn requires(&self) -> &[Property] {
        REQUIRES
    }
    fn provides(&self) -> &[Property] {
        PROVIDES
    }
    fn header_max(&self) -> usize {
        FragHdr::MAX_LEN
    }

    fn init(&mut self, ctx: &mut Ctx) {
        self.mtu = mtu_in_use(self.p.mtu, ctx.datagram_room());
        ctx.gauge("mtu", self.mtu as u64);
    }

    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        match ev {
            Down::Cast(m) => self.split(m, ctx, Down::Cast),
            Down::CastUnreliable(mut m) => {
                // Never fragmented: reassembly needs every fragment, in order.
                if m.len() <= self.mtu {
                    m.push(&FragHdr::Whole);
                    ctx.down(Down::CastUnreliable(m));
                } else {
                    ctx.count("unreliable_oversize_dropped", 1);
                }
            }
            Down::Send(d, m) => self.split(m, ctx, move |f| Down::Send(d, f)),
            Down::View(v) => {
                let before = self.partial.len();
                let mut freed = 0;
                self.partial.retain(|(m, _), p| {
                    let keep = v.contains(*m);
                    if !keep {
                        freed += p.reserved();
                    }
                    keep
                });
                ctx.count("view_discarded", (before - self.partial.len()) as u64);
                self.set_buffered(self.buffered - freed, ctx);
                ctx.down(Down::View(v))
            }
            ev => ctx.down(ev),
        }
    }

    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        match ev {
            Up::Cast(from, m) => {
                if let Some(m) = self.reassemble(from, Stream::Cast, m, ctx) {
                    ctx.up(Up::Cast(from, m))
                }
            }
            Up::Send(from, m) => {
                if let Some(m) = self.reassemble(from, Stream::Send, m, ctx) {
                    ctx.up(Up::Send(from, m))
                }
            }
            ev => ctx.up(ev),
        }
    }
}

#[cfg(test)]
mod tests;
