//! # bundle — packing small messages into fewer datagrams
//!
//! ## Protocol
//! Going down, casts are collected into one pending bundle and sends into one pending
//! bundle per destination. A pending bundle is passed down as one datagram
//! - when the next message would not fit in `max_bytes` (the pending bundle goes
//!   first, the message starts the next one),
//! - as soon as it is full (no room left for even a one-byte message),
//! - when the stack's owner runs out of input ([`Layer::idle`]: the transport has
//!   read every datagram that arrived and taken every cast the application made), so
//!   a lone message waits for no timer while a burst, handled in one turn, still
//!   shares datagrams (with `idle_flush: true`, the default),
//! - when the `delay_us` timer, set by the first message of an empty bundle, fires
//!   (every pending bundle goes then; with a transport that never goes idle, such as
//!   the simulator's, this is the only wait),
//! - before a view, a leave or any other control event passes down, so datagrams keep
//!   their order relative to it.
//!
//! A datagram holding one message carries a one-byte `Single` header in front of it
//! (the message itself is not copied). A datagram holding several is one buffer: the
//! `Bundle` tag, then each message behind a varint length ([`wire`]); copying the
//! messages into it is the one copy onto the wire the transport would otherwise make.
//! A message too large to share a datagram (`1 + len + prefix > max_bytes`) goes alone
//! right away, after the pending bundle of its destination.
//!
//! Going up, a bundle is checked whole, then each message is passed up as a slice of
//! the datagram (`Bytes::slice`, no copy), in order, with the datagram's sender and
//! kind (cast or send). A malformed datagram is dropped whole and counted.
//!
//! ## Where it goes
//! At the bottom of the stack, under the reliable layer (`Bundle(), Nak(), ...`).
//! There it packs whole datagrams of the reliable layer: its sequenced messages, but
//! also its retransmissions, negative acknowledgements and the stability gossip that
//! travel between them, which is where most small datagrams come from. Placed above
//! the reliable layer it could only pack application messages, and each bundle would
//! still be one sequenced message (so a loss would cost a retransmission of the whole
//! bundle anyway). Bundling needs no property below it: it neither loses nor reorders
//! what it is given, and a datagram it sends is lost or delivered whole.
//!
//! ## Parameters
//! - `max_bytes` (default: the transport's): the largest datagram it makes, its own
//!   header included. Left out, it is what the transport carries less the headers of
//!   the layers below ([`Ctx::datagram_room`]): the path MTU of the interface less
//!   the IP, UDP and packet headers, so 65,483 bytes on loopback and 1,448 on a
//!   1500-byte Ethernet; 1400 when the stack's owner names no size. A value given is
//!   lowered to that room too (a larger datagram could not be sent), and kept within
//!   2..=65483. The size in use is the gauge `max_bytes`.
//! - `delay_us` (microseconds, default 200): how long a message may wait for company.
//! - `idle_flush` (default true): send pending bundles as soon as the transport is
//!   idle; false keeps them until full or `delay_us` (fewer, fuller datagrams at
//!   moderate load, for up to `delay_us` more latency).
//!
//! ## Properties
//! Requires nothing; provides `bundling`.
//!
//! ## Events generated
//! `Down::Cast`/`Down::Send` per datagram; `Down::CastUnreliable` alone behind a
//! `Single` header, after the pending casts; `Up::Cast`/`Up::Send` per message; timer
//! [`FLUSH_TIMER`]. Counters: `bundles_sent` (datagrams of two or more messages),
//! `messages_bundled` (messages that went in them), `singles_sent`, `bundles_received`,
//! `malformed_dropped`.
//!
//! ## Testing
//! Unit tests below drive the layer through `Harness` (packing, flush on full, on
//! timer and before control events, large messages alone, per-destination sends,
//! exact unpacking as slices, malformed datagrams); `wire.rs` tests the format;
//! `layers/tests/loopback.rs` runs it in stacks over a loopback network.

pub mod wire;

use bytes::{BufMut, BytesMut};
use serde::Deserialize;
use stack_core::wire::varint_len;
use stack_core::{props, Ctx, Down, Header, Layer, MemberId, Msg, Property, TimerId, Up};
use std::collections::BTreeMap;
use std::time::Duration;
pub use wire::BundleHdr;

/// The timer that flushes pending bundles.
pub const FLUSH_TIMER: TimerId = TimerId(0);

/// Largest UDP payload (65507) less the largest packet header (24).
pub const MAX_DATAGRAM: usize = 65_483;

/// The datagram size when neither the descriptor nor the transport gives one: fits
/// one 1500-byte Ethernet frame over IPv4 and IPv6.
pub const DEFAULT_MAX_BYTES: usize = 1400;

/// Parameters of [`Bundle`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BundleParams {
    /// Largest datagram made, bundle header included, bytes (default: what the
    /// transport carries).
    pub max_bytes: Option<usize>,
    /// Longest wait for more messages, microseconds.
    pub delay_us: u64,
    /// Send pending bundles once the transport has no more input.
    pub idle_flush: bool,
}

impl Default for BundleParams {
    fn default() -> Self {
        BundleParams { max_bytes: None, delay_us: 200, idle_flush: true }
    }
}

/// Messages waiting for one destination (or for the group).
#[derive(Default)]
struct Pending {
    msgs: Vec<Msg>,
    /// Encoded size of the bundle so far, tag included (0 when empty).
    bytes: usize,
}

/// Where a pending bundle goes.
#[derive(Clone, Copy)]
enum Dest {
    Group,
    Peer(MemberId),
}

/// The bundle layer: see the module documentation.
pub struct Bundle {
    p: BundleParams,
    /// The largest datagram made, fixed when the layer starts.
    max: usize,
    casts: Pending,
    sends: BTreeMap<MemberId, Pending>,
}

impl Bundle {
    pub fn new(p: BundleParams) -> Self {
        let max = datagram_size(p.max_bytes, None);
        Bundle { p, max, casts: Pending::default(), sends: BTreeMap::new() }
    }

    fn pending(&mut self, d: Dest) -> &mut Pending {
        match d {
            Dest::Group => &mut self.casts,
            Dest::Peer(m) => self.sends.entry(m).or_default(),
        }
    }

    fn add(&mut self, d: Dest, mut msg: Msg, ctx: &mut Ctx) {
        let n = msg.len();
        let cost = varint_len(n as u64) + n;
        let max = self.max;
        if 1 + cost > max {
            self.flush(d, ctx);
            msg.push(&BundleHdr::Single);
            ctx.count("singles_sent", 1);
            emit(d, msg, ctx);
            return;
        }
        let p = self.pending(d);
        if p.bytes + cost > max {
            self.flush(d, ctx);
        }
        let p = self.pending(d);
        p.bytes = p.bytes.max(1) + cost;
        p.msgs.push(msg);
        if max - p.bytes < 2 {
            self.flush(d, ctx);
        } else if !ctx.timer_is_set(FLUSH_TIMER) {
            ctx.set_timer_after(FLUSH_TIMER, Duration::from_micros(self.p.delay_us));
            if self.p.idle_flush {
                ctx.call_when_idle();
            }
        }
    }

    /// Passes the pending bundle of `d` down as one datagram.
    fn flush(&mut self, d: Dest, ctx: &mut Ctx) {
        let p = self.pending(d);
        let bytes = std::mem::take(&mut p.bytes);
        match p.msgs.len() {
            0 => {}
            1 => {
                let mut m = p.msgs.pop().expect("one message");
                m.push(&BundleHdr::Single);
                ctx.count("singles_sent", 1);
                emit(d, m, ctx);
            }
            k => {
                let mut buf = BytesMut::with_capacity(bytes);
                buf.put_u8(1);
                for m in p.msgs.drain(..) {
                    put_varint(&mut buf, m.len() as u64);
                    buf.extend_from_slice(m.headers());
                    buf.extend_from_slice(m.body());
                }
                debug_assert_eq!(buf.len(), bytes);
                ctx.count("bundles_sent", 1);
                ctx.count("messages_bundled", k as u64);
                emit(d, ctx.new_msg(buf.freeze()), ctx);
            }
        }
        if let Dest::Peer(m) = d {
            self.sends.remove(&m);
        }
        if self.casts.msgs.is_empty() && self.sends.is_empty() {
            ctx.cancel_timer(FLUSH_TIMER);
        }
    }

    /// Flushes every pending bundle: casts, then sends by destination.
    fn flush_all(&mut self, ctx: &mut Ctx) {
        self.flush(Dest::Group, ctx);
        while let Some(&m) = self.sends.keys().next() {
            self.flush(Dest::Peer(m), ctx);
        }
    }

    fn unpack(&mut self, mut msg: Msg, ctx: &mut Ctx, out: impl Fn(Msg) -> Up) {
        match msg.pop::<BundleHdr>() {
            Ok(BundleHdr::Single) => ctx.up(out(msg)),
            Ok(BundleHdr::Bundle) => {
                let body = msg.into_body();
                if wire::check(&body).is_err() {
                    ctx.count("malformed_dropped", 1);
                    return;
                }
                ctx.count("bundles_received", 1);
                for r in wire::parts(&body).flatten() {
                    ctx.up(out(Msg::from_wire(body.slice(r))));
                }
            }
            Err(_) => ctx.count("malformed_dropped", 1),
        }
    }
}

/// The datagram size in use: the one asked for, within what the transport carries.
fn datagram_size(asked: Option<usize>, room: Option<usize>) -> usize {
    let size = match (asked, room) {
        (Some(a), Some(r)) => a.min(r),
        (Some(a), None) => a,
        (None, Some(r)) => r,
        (None, None) => DEFAULT_MAX_BYTES,
    };
    size.clamp(2, MAX_DATAGRAM)
}

fn emit(d: Dest, m: Msg, ctx: &mut Ctx) {
    match d {
        Dest::Group => ctx.down(Down::Cast(m)),
        Dest::Peer(p) => ctx.down(Down::Send(p, m)),
    }
}

fn put_varint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

const PROVIDES: &[Property] = &[props::BUNDLING];

impl Layer for Bundle {
    fn name(&self) -> &'static str {
        "bundle"
    }
    fn provides(&self) -> &[Property] {
        PROVIDES
    }
    fn header_max(&self) -> usize {
        BundleHdr::MAX_LEN
    }

    fn init(&mut self, ctx: &mut Ctx) {
        self.max = datagram_size(self.p.max_bytes, ctx.datagram_room());
        ctx.gauge("max_bytes", self.max as u64);
    }

    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        match ev {
            Down::Cast(m) => self.add(Dest::Group, m, ctx),
            Down::Send(d, m) => self.add(Dest::Peer(d), m, ctx),
            Down::CastUnreliable(mut m) => {
                // Alone, after the pending casts: a bundle is one datagram of the layer
                // below, and this message must not ride in a reliable one.
                self.flush(Dest::Group, ctx);
                m.push(&BundleHdr::Single);
                ctx.count("singles_sent", 1);
                ctx.down(Down::CastUnreliable(m));
            }
            ev => {
                self.flush_all(ctx);
                ctx.down(ev)
            }
        }
    }

    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        match ev {
            Up::Cast(from, m) => self.unpack(m, ctx, |m| Up::Cast(from, m)),
            Up::Send(from, m) => self.unpack(m, ctx, |m| Up::Send(from, m)),
            ev => ctx.up(ev),
        }
    }

    fn idle(&mut self, ctx: &mut Ctx) {
        self.flush_all(ctx);
    }

    fn timer(&mut self, id: TimerId, ctx: &mut Ctx) {
        if id == FLUSH_TIMER {
            self.flush_all(ctx);
        }
    }
}

#[cfg(test)]
mod tests;
