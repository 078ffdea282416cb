//! `nak`: reliable FIFO multicast and point-to-point delivery with negative
//! acknowledgements (after Horus's `NAK` and Ensemble's `mnak`/`pt2pt`).
//!
//! # Protocol
//!
//! *Casts.* In every view each member numbers its casts from 0 (`Data{view, seq}`).
//! A receiver delivers a sender's casts in order and holds back those that arrive
//! early. When it knows of a message it does not have (a later one arrived, or a
//! digest announced it) it waits `nak_delay_ms`, then sends a NAK carrying the missing
//! *ranges* (at most [`MAX_RANGES`] ranges and `max_nak_span` numbers) point-to-point.
//! The first NAK goes to the original sender; retries alternate between the sender and
//! a random other member of the view, and back off (`nak_retry_ms`, doubling up to
//! `nak_max_ms`) so that a burst of gaps cannot flood the group. Any member holding
//! a requested message answers, point-to-point to the requester: the sender with the
//! original `Data` header, anyone else with `Retrans{view, sender, seq}`.
//! (Point-to-point answers keep one member's loss from costing everyone a duplicate;
//! NAKs from several members are answered separately.)
//!
//! Every member keeps each cast it delivered (its own included) until the stability
//! layer above reports it held by all (`Down::Stable`), so any member can answer a
//! NAK. A lost *last* message is recovered by a digest: while this member has sent
//! casts that are not yet stable it multicasts `Digest{view, next}`, the first one
//! `digest_ms` after a period in which it cast nothing new, then at doubling
//! intervals up to `digest_max_ms`; it stops once all its casts are stable (an idle,
//! stable group is quiet). While casts flow, no digest is needed or sent. Other
//! traffic (point-to-point sends such as stability gossip or credits) does not
//! hold the digest back: each stream is judged on its own.
//!
//! A member delivers its own casts itself, at once; a copy of its own cast arriving
//! from the network is dropped (`own_dropped`).
//!
//! *Views.* The layer learns the view from `Down::View` (passed on down). Numbers
//! restart in each view and the header carries the view id: casts for another view
//! are dropped (`other_view_dropped`), sequenced casts from a sender outside the view
//! are dropped (`foreign_dropped`), and all buffers of the old view are released.
//! Before the first view (or while this member is not in its view) casts go out
//! `Unseq`: unsequenced, unreliable, passed up by every receiver as they come
//! (discovery traffic for a membership layer). `Down::CastUnreliable` always goes
//! out `Unseq`, in a view too (`unsequenced_sent`): it is not numbered, kept or
//! repaired (a membership layer's merge beacon, heard by other groups). An
//! unsequenced cast from a member
//! whose sequenced casts in the current view already arrived was sent before that
//! member installed the view and overtaken: it is dropped (`stale_unseq_dropped`),
//! so that the layers above see each member's casts of a view as one reliable FIFO
//! stream, never with a stray message in the middle of it.
//!
//! *Flush cut.* `Down::Cut(vector)` (from the membership layer during a view change)
//! says that every cast of each listed sender numbered below its count exists in the
//! view: the layer NAKs what it misses. `Down::Suspect(members)` marks members gone
//! for the rest of the view: NAKs for their messages go to other members only.
//!
//! *Point-to-point.* `Send` is numbered per destination (`P2p{seq}`), independently of
//! views. The receiver delivers in order, NAKs gaps the same way (`P2pNak`), and
//! acknowledges cumulatively after `ack_delay_ms` (`P2pAck{next}`), which frees the
//! sender's buffer; while unacknowledged sends remain the sender repeats
//! `P2pDigest{next}` on the digest timer.
//!
//! Stability reaches the application through [`Up::Progress`]: the view id and, per
//! member, how many of its casts were delivered contiguously (this member's own
//! included). It is coalesced: sent after `progress_every` deliveries or
//! `progress_delay_ms` after the first undeclared one.
//!
//! # Parameters
//!
//! See [`NakParams`]; every field has a default.
//!
//! # Properties
//!
//! Requires nothing; provides `reliable-fifo`.
//!
//! # Events generated
//!
//! Down: `Cast` (data, digests; `CastUnreliable` from above as an `Unseq` cast),
//! `Send` (data, NAKs, retransmissions, acks), `View` (passed on). `Down::Stable`, `Down::Cut` and `Down::Suspect` are consumed. Up: `Cast`, `Send`, `Progress`.
//! Counters: `naks_sent`, `naks_received`, `retransmissions`, `digests_sent`,
//! `duplicates_dropped`, `malformed_dropped`, `foreign_dropped`, `other_view_dropped`,
//! `own_dropped`, `window_dropped`, `delivered`, `unsequenced_sent`, `unsequenced_received`,
//! `stale_unseq_dropped`; gauges
//! `buffered_bytes`, `buffered_msgs`, and the high-water mark `buffered_bytes_peak`.
//!
//! # Testing
//!
//! Unit tests drive the layer through `stack_core::testing::Harness` and assert the
//! exact events emitted (`tests.rs`); the header has byte-vector, truncation,
//! corruption and quickcheck tests (`wire.rs`); `layers/tests/reliable.rs` runs
//! several stacks over a seeded lossy, duplicating, reordering network.

#[cfg(test)]
mod tests;
mod wire;

pub use wire::{NakHdr, Ranges, MAX_RANGES};

use serde::Deserialize;
use stack_core::{
    props, Ctx, Down, Layer, MemberId, Msg, Property, SeqVector, Time, TimerId, Up, View,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// Parameters of the `nak` layer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NakParams {
    /// How long a gap may stay open before the first NAK (reordering tolerance).
    pub nak_delay_ms: u64,
    /// Delay before the first repeated NAK; doubles with each retry.
    pub nak_retry_ms: u64,
    /// Longest delay between two NAKs for the same stream. Kept a small multiple of
    /// `nak_retry_ms`: the back-off restarts only when the stream progresses, so on a
    /// lossy link (where a NAK or its answer is lost now and then) a large cap turns a
    /// few unlucky losses into a stall of seconds.
    pub nak_max_ms: u64,
    /// Most sequence numbers requested by one NAK.
    pub max_nak_span: u64,
    /// Digest period while casts are unstable.
    pub digest_ms: u64,
    /// Longest digest period (reached by doubling while nothing new is sent).
    pub digest_max_ms: u64,
    /// Delay of the cumulative acknowledgement of point-to-point messages.
    pub ack_delay_ms: u64,
    /// Deliveries after which `Progress` is sent at once.
    pub progress_every: u64,
    /// Longest delay between a delivery and the `Progress` that reports it.
    pub progress_delay_ms: u64,
    /// Most messages held back ahead of a gap, per sender.
    pub max_ahead: u64,
}

impl Default for NakParams {
    fn default() -> Self {
        NakParams {
            nak_delay_ms: 5,
            nak_retry_ms: 20,
            nak_max_ms: 80,
            max_nak_span: 256,
            digest_ms: 50,
            digest_max_ms: 1600,
            ack_delay_ms: 10,
            progress_every: 32,
            progress_delay_ms: 10,
            max_ahead: 1 << 16,
        }
    }
}

/// Timer: NAK the gaps that are due.
pub const TIMER_NAK: TimerId = TimerId(0);
/// Timer: send digests of unstable casts and unacknowledged sends.
pub const TIMER_DIGEST: TimerId = TimerId(1);
/// Timer: report coalesced progress.
pub const TIMER_PROGRESS: TimerId = TimerId(2);
/// Timer: acknowledge point-to-point messages.
pub const TIMER_ACK: TimerId = TimerId(3);

/// One sender's numbered messages, as held here: `kept` covers `[base, next)`
/// (delivered or sent, kept for retransmission), `ahead[i]` is message `next + i`
/// when it arrived early. `known` is one past the highest number known to exist.
#[derive(Default)]
struct Stream {
    next: u64,
    base: u64,
    kept: VecDeque<Msg>,
    ahead: VecDeque<Option<Msg>>,
    known: u64,
    nak_at: Option<Time>,
    attempts: u32,
    /// Delivered messages are kept for retransmission (casts; not received sends).
    keep: bool,
    /// (Own streams) a new message went out since the last digest period.
    fresh: bool,
}

/// Bytes and messages held in all buffers.
#[derive(Default)]
struct Acct {
    bytes: u64,
    msgs: u64,
}

impl Acct {
    fn add(&mut self, m: &Msg) {
        self.bytes += m.len() as u64;
        self.msgs += 1;
    }
    fn sub(&mut self, m: &Msg) {
        self.bytes -= m.len() as u64;
        self.msgs -= 1;
    }
}

impl Stream {
    /// Releases kept messages numbered below `n`.
    fn free_below(&mut self, n: u64, acct: &mut Acct) {
        let n = n.min(self.next);
        while self.base < n {
            match self.kept.pop_front() {
                Some(m) => acct.sub(&m),
                None => {
                    self.base = n;
                    break;
                }
            }
            self.base += 1;
        }
    }

    fn release_all(&mut self, acct: &mut Acct) {
        for m in self.kept.drain(..) {
            acct.sub(&m);
        }
        for m in self.ahead.drain(..).flatten() {
            acct.sub(&m);
        }
    }

    /// The message numbered `seq`, if held.
    fn get(&self, seq: u64) -> Option<&Msg> {
        if seq >= self.base && seq < self.next {
            self.kept.get((seq - self.base) as usize)
        } else if seq >= self.next {
            self.ahead.get((seq - self.next) as usize).and_then(|m| m.as_ref())
        } else {
            None
        }
    }

    /// Missing numbers in `[next, known)`, as at most [`MAX_RANGES`] ranges covering
    /// at most `span` numbers.
    fn missing(&self, span: u64) -> Ranges {
        let mut out = Ranges::new();
        let mut budget = span;
        let mut run: Option<u64> = None;
        let end = self.known.min(self.next + self.ahead.len() as u64);
        let mut seq = self.next;
        let push = |lo: u64, hi: u64, out: &mut Ranges, budget: &mut u64| -> bool {
            let hi = hi.min(lo + *budget);
            if hi > lo && out.len() < MAX_RANGES {
                out.push((lo, hi));
                *budget -= hi - lo;
            }
            out.len() < MAX_RANGES && *budget > 0
        };
        while seq < end {
            let have = self.ahead[(seq - self.next) as usize].is_some();
            match (have, run) {
                (false, None) => run = Some(seq),
                (true, Some(lo)) => {
                    run = None;
                    if !push(lo, seq, &mut out, &mut budget) {
                        return out;
                    }
                }
                _ => {}
            }
            seq += 1;
        }
        let lo = run.unwrap_or(end);
        push(lo, self.known.max(lo), &mut out, &mut budget);
        out
    }
}

/// The current view as this layer tracks it: members sorted by id, one stream each.
struct ViewState {
    id: u64,
    members: Vec<MemberId>,
    streams: Vec<Stream>,
    me: Option<usize>,
    /// Members announced gone (`Down::Suspect`): NAK other holders, never them.
    gone: BTreeSet<MemberId>,
}

impl ViewState {
    fn index(&self, m: MemberId) -> Option<usize> {
        self.members.binary_search(&m).ok()
    }
}

/// The `nak` layer. See the module documentation.
pub struct Nak {
    p: NakParams,
    view: Option<ViewState>,
    p2p_out: BTreeMap<MemberId, Stream>,
    p2p_in: BTreeMap<MemberId, Stream>,
    ack_pending: BTreeSet<MemberId>,
    acct: Acct,
    nak_timer: Option<Time>,
    digest_interval: u64,
    since_progress: u64,
    progress_dirty: bool,
    /// (bytes, msgs) last published by `gauges`.
    gauged: Option<(u64, u64)>,
}

const PROVIDES: &[Property] = &[props::RELIABLE_FIFO];

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

impl Nak {
    pub fn new(p: NakParams) -> Self {
        Nak {
            digest_interval: p.digest_ms,
            p,
            view: None,
            p2p_out: BTreeMap::new(),
            p2p_in: BTreeMap::new(),
            ack_pending: BTreeSet::new(),
            acct: Acct::default(),
            nak_timer: None,
            since_progress: 0,
            progress_dirty: false,
            gauged: None,
        }
    }

    /// Publishes the buffer gauges; skipped when nothing changed since the last time
    /// (the counters would be set to the values they already hold).
    fn gauges(&mut self, ctx: &mut Ctx) {
        let now = (self.acct.bytes, self.acct.msgs);
        if self.gauged == Some(now) {
            return;
        }
        self.gauged = Some(now);
        ctx.gauge("buffered_bytes", self.acct.bytes);
        ctx.gauge("buffered_msgs", self.acct.msgs);
        ctx.peak("buffered_bytes_peak", self.acct.bytes);
    }

    fn install(&mut self, v: &View, ctx: &mut Ctx) {
        if let Some(old) = self.view.as_mut() {
            for s in &mut old.streams {
                s.release_all(&mut self.acct);
            }
        }
        let mut members: Vec<MemberId> = v.members.to_vec();
        members.sort_unstable();
        members.dedup();
        let streams = members.iter().map(|_| Stream { keep: true, ..Stream::default() }).collect();
        let me = members.binary_search(&ctx.me()).ok();
        self.view = Some(ViewState { id: v.id, members, streams, me, gone: BTreeSet::new() });
        self.since_progress = 0;
        self.progress_dirty = false;
        self.digest_interval = self.p.digest_ms;
    }

    /// The flush cut (`Down::Cut`): messages below it exist; fetch the missing ones.
    fn on_cut(&mut self, cut: &SeqVector, ctx: &mut Ctx) {
        let now = ctx.now();
        let delay = self.p.nak_delay_ms;
        let Some(vs) = self.view.as_mut() else { return };
        if cut.view != vs.id {
            return;
        }
        for &(m, n) in &cut.entries {
            if let Some(i) = vs.index(m) {
                let st = &mut vs.streams[i];
                if n > st.known {
                    st.known = n;
                    Self::check_gap(st, false, now, delay);
                }
            }
        }
        self.arm_nak(ctx);
    }

    fn note_sent(&mut self, ctx: &mut Ctx) {
        if !ctx.timer_is_set(TIMER_DIGEST) {
            self.digest_interval = self.p.digest_ms;
            ctx.set_timer_after(TIMER_DIGEST, ms(self.digest_interval));
        }
    }

    fn note_delivered(&mut self, n: u64, ctx: &mut Ctx) {
        if n == 0 {
            return;
        }
        self.since_progress += n;
        self.progress_dirty = true;
        if self.since_progress >= self.p.progress_every {
            self.emit_progress(ctx);
        } else if !ctx.timer_is_set(TIMER_PROGRESS) {
            ctx.set_timer_after(TIMER_PROGRESS, ms(self.p.progress_delay_ms));
        }
    }

    fn emit_progress(&mut self, ctx: &mut Ctx) {
        self.since_progress = 0;
        self.progress_dirty = false;
        if let Some(vs) = &self.view {
            let entries = vs.members.iter().zip(&vs.streams).map(|(m, s)| (*m, s.next)).collect();
            ctx.up(Up::Progress(SeqVector { view: vs.id, entries }));
        }
    }

    /// Re-arms the NAK timer for the earliest due gap.
    fn arm_nak(&mut self, ctx: &mut Ctx) {
        let cast = self.view.iter().flat_map(|v| v.streams.iter());
        let due = cast.chain(self.p2p_in.values()).filter_map(|s| s.nak_at).min();
        match due {
            Some(t) if self.nak_timer.is_none_or(|c| t < c || !ctx.timer_is_set(TIMER_NAK)) => {
                self.nak_timer = Some(t);
                ctx.set_timer(TIMER_NAK, t);
            }
            Some(_) => {}
            None => {
                self.nak_timer = None;
                ctx.cancel_timer(TIMER_NAK);
            }
        }
    }

    fn cast_down(&mut self, mut msg: Msg, ctx: &mut Ctx) {
        let Some(vs) = self.view.as_mut() else {
            msg.push(&NakHdr::Unseq);
            ctx.down(Down::Cast(msg));
            return;
        };
        let Some(i) = vs.me else {
            msg.push(&NakHdr::Unseq);
            ctx.down(Down::Cast(msg));
            return;
        };
        let me = ctx.me();
        let st = &mut vs.streams[i];
        let seq = st.next;
        st.next += 1;
        st.known = st.next;
        self.acct.add(&msg);
        st.kept.push_back(msg.clone());
        st.fresh = true;
        ctx.up(Up::Cast(me, msg.clone()));
        ctx.count("delivered", 1);
        msg.push(&NakHdr::Data { view: vs.id, seq });
        ctx.down(Down::Cast(msg));
        self.note_sent(ctx);
        self.note_delivered(1, ctx);
    }

    fn send_down(&mut self, dest: MemberId, mut msg: Msg, ctx: &mut Ctx) {
        if dest == ctx.me() {
            ctx.count("delivered", 1);
            ctx.up(Up::Send(dest, msg));
            return;
        }
        let st = self.p2p_out.entry(dest).or_default();
        let seq = st.next;
        st.next += 1;
        st.known = st.next;
        self.acct.add(&msg);
        st.kept.push_back(msg.clone());
        st.fresh = true;
        msg.push(&NakHdr::P2p { seq });
        ctx.down(Down::Send(dest, msg));
        self.note_sent(ctx);
    }

    /// Accepts message `seq` of a stream; returns how many were delivered.
    fn accept(
        st: &mut Stream,
        seq: u64,
        msg: Msg,
        acct: &mut Acct,
        max_ahead: u64,
        ctx: &mut Ctx,
        up: impl Fn(Msg) -> Up,
    ) -> u64 {
        if seq < st.next {
            ctx.count("duplicates_dropped", 1);
            return 0;
        }
        let idx = seq - st.next;
        if idx >= max_ahead {
            ctx.count("window_dropped", 1);
            return 0;
        }
        st.known = st.known.max(seq + 1);
        if idx > 0 {
            let idx = idx as usize;
            if st.ahead.len() <= idx {
                st.ahead.resize(idx + 1, None);
            }
            if st.ahead[idx].is_some() {
                ctx.count("duplicates_dropped", 1);
            } else {
                acct.add(&msg);
                st.ahead[idx] = Some(msg);
            }
            return 0;
        }
        st.ahead.pop_front();
        let mut next = Some(msg);
        let mut n = 0;
        while let Some(m) = next.take() {
            if st.keep {
                acct.add(&m);
                st.kept.push_back(m.clone());
            } else {
                st.base += 1;
            }
            st.next += 1;
            n += 1;
            ctx.up(up(m));
            if let Some(Some(_)) = st.ahead.front() {
                let m = st.ahead.pop_front().flatten().expect("checked");
                acct.sub(&m);
                next = Some(m);
            }
        }
        ctx.count("delivered", n);
        n
    }

    /// After messages arrived or a digest: start, move or stop the NAK clock.
    fn check_gap(st: &mut Stream, progressed: bool, now: Time, delay: u64) {
        if st.known > st.next {
            if st.nak_at.is_none() || progressed {
                st.nak_at = Some(now + ms(delay));
                st.attempts = 0;
            }
        } else {
            st.nak_at = None;
            st.attempts = 0;
        }
    }

    fn cast_up(&mut self, from: MemberId, view: u64, seq: u64, msg: Msg, ctx: &mut Ctx) {
        let Some(vs) = self.view.as_mut() else {
            ctx.count("other_view_dropped", 1);
            return;
        };
        if view != vs.id {
            ctx.count("other_view_dropped", 1);
            return;
        }
        let Some(i) = vs.index(from) else {
            ctx.count("foreign_dropped", 1);
            return;
        };
        if Some(i) == vs.me {
            ctx.count("own_dropped", 1);
            return;
        }
        let st = &mut vs.streams[i];
        let n = Self::accept(st, seq, msg, &mut self.acct, self.p.max_ahead, ctx, |m| {
            Up::Cast(from, m)
        });
        let had_gap = st.nak_at.is_some();
        Self::check_gap(st, n > 0, ctx.now(), self.p.nak_delay_ms);
        // In order, no gap before or after, no NAK clock running: re-arming would find
        // nothing due and change nothing (the common case, skipped).
        if had_gap || st.nak_at.is_some() || self.nak_timer.is_some() {
            self.arm_nak(ctx);
        }
        self.note_delivered(n, ctx);
    }

    fn p2p_up(&mut self, from: MemberId, seq: u64, msg: Msg, ctx: &mut Ctx) {
        let st = self.p2p_in.entry(from).or_default();
        let n = Self::accept(st, seq, msg, &mut self.acct, self.p.max_ahead, ctx, |m| {
            Up::Send(from, m)
        });
        Self::check_gap(st, n > 0, ctx.now(), self.p.nak_delay_ms);
        self.arm_nak(ctx);
        self.schedule_ack(from, ctx);
    }

    fn schedule_ack(&mut self, peer: MemberId, ctx: &mut Ctx) {
        self.ack_pending.insert(peer);
        if !ctx.timer_is_set(TIMER_ACK) {
            ctx.set_timer_after(TIMER_ACK, ms(self.p.ack_delay_ms));
        }
    }

    fn digest_up(&mut self, from: MemberId, view: u64, next: u64, ctx: &mut Ctx) {
        let Some(vs) = self.view.as_mut() else { return };
        if view != vs.id {
            ctx.count("other_view_dropped", 1);
            return;
        }
        let Some(i) = vs.index(from) else {
            ctx.count("foreign_dropped", 1);
            return;
        };
        if Some(i) == vs.me {
            return;
        }
        let st = &mut vs.streams[i];
        st.known = st.known.max(next);
        Self::check_gap(st, false, ctx.now(), self.p.nak_delay_ms);
        self.arm_nak(ctx);
    }

    /// Answers a NAK for casts of `sender` from what this member holds.
    fn nak_up(&mut self, from: MemberId, view: u64, sender: MemberId, r: &Ranges, ctx: &mut Ctx) {
        ctx.count("naks_received", 1);
        let Some(vs) = self.view.as_ref() else { return };
        if view != vs.id {
            ctx.count("other_view_dropped", 1);
            return;
        }
        let Some(i) = vs.index(sender) else { return };
        let own = Some(i) == vs.me;
        let st = &vs.streams[i];
        let mut budget = self.p.max_nak_span;
        for &(lo, hi) in r {
            for seq in lo..hi.min(lo.saturating_add(budget)) {
                budget -= 1;
                let Some(m) = st.get(seq) else { continue };
                let mut m = m.clone();
                if own {
                    m.push(&NakHdr::Data { view, seq });
                } else {
                    m.push(&NakHdr::Retrans { view, sender, seq });
                }
                ctx.down(Down::Send(from, m));
                ctx.count("retransmissions", 1);
            }
        }
    }

    fn p2p_nak_up(&mut self, from: MemberId, r: &Ranges, ctx: &mut Ctx) {
        ctx.count("naks_received", 1);
        let Some(st) = self.p2p_out.get(&from) else { return };
        let mut budget = self.p.max_nak_span;
        for &(lo, hi) in r {
            for seq in lo..hi.min(lo.saturating_add(budget)) {
                budget -= 1;
                let Some(m) = st.get(seq) else { continue };
                let mut m = m.clone();
                m.push(&NakHdr::P2p { seq });
                ctx.down(Down::Send(from, m));
                ctx.count("retransmissions", 1);
            }
        }
    }

    fn on_nak_timer(&mut self, ctx: &mut Ctx) {
        let now = ctx.now();
        let span = self.p.max_nak_span;
        let retry = |attempts: u32| {
            let d = self.p.nak_retry_ms.saturating_mul(1u64 << attempts.min(20));
            now + ms(d.min(self.p.nak_max_ms))
        };
        if let Some(vs) = self.view.as_mut() {
            let others: Vec<MemberId> = (0..vs.members.len())
                .filter(|&j| Some(j) != vs.me)
                .map(|j| vs.members[j])
                .collect();
            for (i, st) in vs.streams.iter_mut().enumerate() {
                if st.nak_at.is_none_or(|t| t > now) {
                    continue;
                }
                let sender = vs.members[i];
                let ranges = st.missing(span);
                let mut target = sender;
                if st.attempts % 2 == 1 || vs.gone.contains(&sender) {
                    let alt: Vec<MemberId> = others
                        .iter()
                        .copied()
                        .filter(|&m| m != sender && !vs.gone.contains(&m))
                        .collect();
                    if !alt.is_empty() {
                        target = alt[ctx.rng().below(alt.len() as u64) as usize];
                    }
                }
                st.nak_at = Some(retry(st.attempts));
                st.attempts += 1;
                if ranges.is_empty() {
                    continue;
                }
                let mut m = ctx.new_msg(stack_core::Bytes::new());
                m.push(&NakHdr::Nak { view: vs.id, sender, ranges });
                ctx.down(Down::Send(target, m));
                ctx.count("naks_sent", 1);
            }
        }
        for (&peer, st) in self.p2p_in.iter_mut() {
            if st.nak_at.is_none_or(|t| t > now) {
                continue;
            }
            let ranges = st.missing(span);
            st.nak_at = Some(retry(st.attempts));
            st.attempts += 1;
            if ranges.is_empty() {
                continue;
            }
            let mut m = ctx.new_msg(stack_core::Bytes::new());
            m.push(&NakHdr::P2pNak { ranges });
            ctx.down(Down::Send(peer, m));
            ctx.count("naks_sent", 1);
        }
        self.nak_timer = None;
        self.arm_nak(ctx);
    }

    /// Announces the highest number sent, on casts that are unstable and on sends that
    /// are unacknowledged, stream by stream. A stream on which a new message went out in
    /// the period needs no digest (the message itself tells receivers what exists); the
    /// others get one whatever else this member sends (gossip, credits, NAKs), so a
    /// lost last cast is announced at most two periods after it. The period doubles while no
    /// stream has anything new, up to `digest_max_ms`.
    fn on_digest_timer(&mut self, ctx: &mut Ctx) {
        let (mut active, mut fresh) = (false, false);
        if let Some(vs) = self.view.as_mut() {
            if let Some(i) = vs.me {
                let st = &mut vs.streams[i];
                if !st.kept.is_empty() {
                    active = true;
                    fresh |= st.fresh;
                    if !st.fresh {
                        let mut m = ctx.new_msg(stack_core::Bytes::new());
                        m.push(&NakHdr::Digest { view: vs.id, next: st.next });
                        ctx.down(Down::Cast(m));
                        ctx.count("digests_sent", 1);
                    }
                }
                st.fresh = false;
            }
        }
        for (&peer, st) in self.p2p_out.iter_mut() {
            if !st.kept.is_empty() {
                active = true;
                fresh |= st.fresh;
                if !st.fresh {
                    let mut m = ctx.new_msg(stack_core::Bytes::new());
                    m.push(&NakHdr::P2pDigest { next: st.next });
                    ctx.down(Down::Send(peer, m));
                    ctx.count("digests_sent", 1);
                }
            }
            st.fresh = false;
        }
        if !active || fresh {
            self.digest_interval = self.p.digest_ms;
        } else {
            self.digest_interval = (self.digest_interval * 2).min(self.p.digest_max_ms);
        }
        if active {
            ctx.set_timer_after(TIMER_DIGEST, ms(self.digest_interval));
        }
    }

    fn on_ack_timer(&mut self, ctx: &mut Ctx) {
        for peer in std::mem::take(&mut self.ack_pending) {
            let next = self.p2p_in.get(&peer).map_or(0, |s| s.next);
            let mut m = ctx.new_msg(stack_core::Bytes::new());
            m.push(&NakHdr::P2pAck { next });
            ctx.down(Down::Send(peer, m));
        }
    }

    fn on_stable(&mut self, v: &SeqVector) {
        let Some(vs) = self.view.as_mut() else { return };
        if v.view != vs.id {
            return;
        }
        for &(m, n) in &v.entries {
            if let Some(i) = vs.index(m) {
                vs.streams[i].free_below(n, &mut self.acct);
            }
        }
    }

    /// Whether a sequenced cast of `from` in the current view arrived here (`from`
    /// installed the view: everything it casts from then on is sequenced).
    fn sequencing(&self, from: MemberId) -> bool {
        let Some(vs) = self.view.as_ref() else { return false };
        vs.index(from).is_some_and(|i| vs.streams[i].known > 0)
    }

    fn on_up(&mut self, from: MemberId, is_cast: bool, mut msg: Msg, ctx: &mut Ctx) {
        let hdr = match msg.pop::<NakHdr>() {
            Ok(h) => h,
            Err(_) => {
                ctx.count("malformed_dropped", 1);
                return;
            }
        };
        match hdr {
            NakHdr::Unseq => {
                if from == ctx.me() {
                    ctx.count("own_dropped", 1);
                } else if is_cast && self.sequencing(from) {
                    // Sent before `from` installed this view and overtaken by its
                    // sequenced casts: passed up, it would land in the middle of the
                    // reliable stream above (frag would take it for a cut stream and
                    // drop the message it is reassembling).
                    ctx.count("stale_unseq_dropped", 1);
                } else {
                    ctx.count("unsequenced_received", 1);
                    ctx.up(if is_cast { Up::Cast(from, msg) } else { Up::Send(from, msg) });
                }
            }
            NakHdr::Data { view, seq } => self.cast_up(from, view, seq, msg, ctx),
            NakHdr::Retrans { view, sender, seq } => self.cast_up(sender, view, seq, msg, ctx),
            NakHdr::Digest { view, next } => self.digest_up(from, view, next, ctx),
            NakHdr::Nak { view, sender, ranges } => self.nak_up(from, view, sender, &ranges, ctx),
            NakHdr::P2p { seq } => self.p2p_up(from, seq, msg, ctx),
            NakHdr::P2pNak { ranges } => self.p2p_nak_up(from, &ranges, ctx),
            NakHdr::P2pAck { next } => {
                if let Some(st) = self.p2p_out.get_mut(&from) {
                    st.free_below(next, &mut self.acct);
                }
            }
            NakHdr::P2pDigest { next } => {
                let st = self.p2p_in.entry(from).or_default();
                st.known = st.known.max(next);
                Self::check_gap(st, false, ctx.now(), self.p.nak_delay_ms);
                self.arm_nak(ctx);
                self.schedule_ack(from, ctx);
            }
        }
    }
}

impl Default for Nak {
    fn default() -> Self {
        Nak::new(NakParams::default())
    }
}

impl Layer for Nak {
    fn name(&self) -> &'static str {
        "nak"
    }

    fn provides(&self) -> &[Property] {
        PROVIDES
    }

    fn header_max(&self) -> usize {
        NakHdr::DATA_MAX_LEN
    }

    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        match ev {
            Down::Cast(m) => self.cast_down(m, ctx),
            Down::CastUnreliable(mut m) => {
                m.push(&NakHdr::Unseq);
                ctx.count("unsequenced_sent", 1);
                ctx.down(Down::Cast(m));
            }
            Down::Send(d, m) => self.send_down(d, m, ctx),
            Down::View(v) => {
                self.install(&v, ctx);
                ctx.down(Down::View(v));
            }
            Down::Stable(v) => self.on_stable(&v),
            Down::Cut(c) => self.on_cut(&c, ctx),
            Down::Suspect(gone) => {
                if let Some(vs) = self.view.as_mut() {
                    vs.gone.extend(gone.iter().copied().filter(|m| vs.members.contains(m)));
                }
            }
            other => ctx.down(other),
        }
        self.gauges(ctx);
    }

    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        match ev {
            Up::Cast(from, m) => self.on_up(from, true, m, ctx),
            Up::Send(from, m) => self.on_up(from, false, m, ctx),
            other => ctx.up(other),
        }
        self.gauges(ctx);
    }

    fn timer(&mut self, id: TimerId, ctx: &mut Ctx) {
        match id {
            TIMER_NAK => self.on_nak_timer(ctx),
            TIMER_DIGEST => self.on_digest_timer(ctx),
            TIMER_PROGRESS if self.progress_dirty => self.emit_progress(ctx),
            TIMER_ACK => self.on_ack_timer(ctx),
            _ => {}
        }
        self.gauges(ctx);
    }
}
