//! The `nak` layer driven alone through the recording harness: exact events emitted.

use super::*;
use smallvec::smallvec;
use stack_core::testing::Harness;
use stack_core::{Bytes, Header, ViewReason};

const M1: MemberId = MemberId::new(1, 0);
const M2: MemberId = MemberId::new(2, 0);
const M3: MemberId = MemberId::new(3, 0);
const OUT: MemberId = MemberId::new(9, 0);

/// What went down, decoded.
#[derive(Debug, PartialEq)]
enum D {
    Cast(NakHdr, Vec<u8>),
    Send(MemberId, NakHdr, Vec<u8>),
    View(u64),
}

/// What went up.
#[derive(Debug, PartialEq)]
enum U {
    Cast(MemberId, Vec<u8>),
    Send(MemberId, Vec<u8>),
    Progress(Vec<(MemberId, u64)>),
}

fn split(m: &Msg) -> (NakHdr, Vec<u8>) {
    let mut w = Msg::from_wire(m.to_bytes());
    let h = w.pop::<NakHdr>().expect("a nak header");
    (h, w.into_body().to_vec())
}

fn downs(h: &mut Harness<Nak>) -> Vec<D> {
    h.take_down()
        .into_iter()
        .map(|d| match d {
            Down::Cast(m) => {
                let (h, b) = split(&m);
                D::Cast(h, b)
            }
            Down::Send(to, m) => {
                let (h, b) = split(&m);
                D::Send(to, h, b)
            }
            Down::View(v) => D::View(v.id),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn ups(h: &mut Harness<Nak>) -> Vec<U> {
    h.take_up()
        .into_iter()
        .map(|u| match u {
            Up::Cast(f, m) => U::Cast(f, m.into_body().to_vec()),
            Up::Send(f, m) => U::Send(f, m.into_body().to_vec()),
            Up::Progress(v) => U::Progress(v.entries),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn wire(h: NakHdr, body: &[u8]) -> Msg {
    let mut m = Msg::new(Bytes::copy_from_slice(body), NakHdr::MAX_LEN);
    m.push(&h);
    Msg::from_wire(m.to_bytes())
}

fn data(view: u64, seq: u64, body: &[u8]) -> Msg {
    wire(NakHdr::Data { view, seq }, body)
}

fn app(body: &[u8]) -> Msg {
    Msg::new(Bytes::copy_from_slice(body), 32)
}

fn view(id: u64, members: &[MemberId]) -> View {
    View::new(id, members.to_vec(), ViewReason::Initial)
}

/// A harness for `m1` in view 1 of m1, m2, m3, with the view event already taken.
fn joined(p: NakParams) -> Harness<Nak> {
    let mut h = Harness::with_member(Nak::new(p), M1);
    h.down(Down::View(view(1, &[M1, M2, M3])));
    assert_eq!(downs(&mut h), [D::View(1)]);
    h
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn casts_are_numbered_per_view_and_delivered_locally() {
    let mut h = joined(NakParams::default());
    h.down(Down::Cast(app(b"a")));
    h.down(Down::Cast(app(b"b")));
    assert_eq!(
        downs(&mut h),
        [
            D::Cast(NakHdr::Data { view: 1, seq: 0 }, b"a".to_vec()),
            D::Cast(NakHdr::Data { view: 1, seq: 1 }, b"b".to_vec()),
        ]
    );
    assert_eq!(ups(&mut h), [U::Cast(M1, b"a".to_vec()), U::Cast(M1, b"b".to_vec())]);
    // A new view restarts the numbering.
    h.down(Down::View(view(2, &[M1, M2])));
    h.down(Down::Cast(app(b"c")));
    assert_eq!(
        downs(&mut h),
        [D::View(2), D::Cast(NakHdr::Data { view: 2, seq: 0 }, b"c".to_vec())]
    );
}

#[test]
fn gap_is_naked_as_a_range_after_the_delay_then_retried_elsewhere_with_backoff() {
    let p = NakParams::default();
    let mut h = joined(p.clone());
    h.up(Up::Cast(M2, data(1, 0, b"x0")));
    h.up(Up::Cast(M2, data(1, 3, b"x3")));
    assert_eq!(ups(&mut h), [U::Cast(M2, b"x0".to_vec())]);
    h.advance(ms(p.nak_delay_ms - 1));
    assert!(downs(&mut h).is_empty(), "no NAK before the delay");
    h.advance(ms(1));
    let nak = NakHdr::Nak { view: 1, sender: M2, ranges: smallvec![(1, 3)] };
    assert_eq!(downs(&mut h), [D::Send(M2, nak.clone(), vec![])]);
    assert_eq!(h.counters.get("naks_sent"), 1);
    // Not repeated before the retry delay; then asked of the other member.
    h.advance(ms(p.nak_retry_ms - 1));
    assert!(downs(&mut h).is_empty());
    h.advance(ms(1));
    assert_eq!(downs(&mut h), [D::Send(M3, nak.clone(), vec![])]);
    // The next retry waits twice as long, and goes to the sender again.
    h.advance(ms(2 * p.nak_retry_ms - 1));
    assert!(downs(&mut h).is_empty());
    h.advance(ms(1));
    assert_eq!(downs(&mut h), [D::Send(M2, nak, vec![])]);
    assert_eq!(ups(&mut h), [U::Progress(vec![(M1, 0), (M2, 1), (M3, 0)])]);
    // Filling the gap delivers in order and stops the NAKs.
    // (a retransmission from another member names the sender; one from the sender
    // itself carries the original header)
    h.up(Up::Send(M3, wire(NakHdr::Retrans { view: 1, sender: M2, seq: 2 }, b"x2")));
    h.up(Up::Send(M2, data(1, 1, b"x1")));
    assert_eq!(
        ups(&mut h),
        [U::Cast(M2, b"x1".to_vec()), U::Cast(M2, b"x2".to_vec()), U::Cast(M2, b"x3".to_vec())]
    );
    h.advance(ms(5000));
    assert!(downs(&mut h).is_empty(), "no NAK once the gap closed");
}

#[test]
fn nak_ranges_are_bounded_in_count_and_span() {
    let p = NakParams { max_nak_span: 10, ..NakParams::default() };
    let mut h = joined(p.clone());
    // Holes at 0, 2, 4, ..., 20: eleven one-number ranges, but the span caps at 10
    // numbers and the count at MAX_RANGES.
    for s in (1..22).step_by(2) {
        h.up(Up::Cast(M2, data(1, s, b"")));
    }
    h.advance(ms(p.nak_delay_ms));
    let d = downs(&mut h);
    let [D::Send(M2, NakHdr::Nak { ranges, .. }, _)] = &d[..] else { panic!("{d:?}") };
    let want: Ranges = (0..MAX_RANGES as u64).map(|i| (2 * i, 2 * i + 1)).collect();
    assert_eq!(*ranges, want);
}

#[test]
fn fifo_hold_back_and_duplicates_dropped() {
    let mut h = joined(NakParams::default());
    h.up(Up::Cast(M2, data(1, 2, b"2")));
    h.up(Up::Cast(M2, data(1, 1, b"1")));
    h.up(Up::Cast(M2, data(1, 2, b"2")));
    assert!(ups(&mut h).is_empty());
    h.up(Up::Cast(M2, data(1, 0, b"0")));
    h.up(Up::Cast(M2, data(1, 1, b"1")));
    assert_eq!(
        ups(&mut h),
        [U::Cast(M2, b"0".to_vec()), U::Cast(M2, b"1".to_vec()), U::Cast(M2, b"2".to_vec())]
    );
    assert_eq!(h.counters.get("duplicates_dropped"), 2);
    assert_eq!(h.counters.get("delivered"), 3);
}

#[test]
fn a_nak_is_answered_by_the_sender_and_by_any_holder() {
    let mut h = joined(NakParams::default());
    for b in [b"a", b"b", b"c"] {
        h.down(Down::Cast(app(b)));
    }
    h.up(Up::Cast(M2, data(1, 0, b"m2")));
    downs(&mut h);
    ups(&mut h);
    // Own casts go back with their original header, point-to-point to the requester.
    let nak = NakHdr::Nak { view: 1, sender: M1, ranges: smallvec![(1, 3)] };
    h.up(Up::Send(M2, wire(nak, b"")));
    assert_eq!(
        downs(&mut h),
        [
            D::Send(M2, NakHdr::Data { view: 1, seq: 1 }, b"b".to_vec()),
            D::Send(M2, NakHdr::Data { view: 1, seq: 2 }, b"c".to_vec()),
        ]
    );
    // Another member's cast goes back as a retransmission naming its sender; numbers
    // not held are skipped.
    let nak = NakHdr::Nak { view: 1, sender: M2, ranges: smallvec![(0, 5)] };
    h.up(Up::Send(M3, wire(nak, b"")));
    assert_eq!(
        downs(&mut h),
        [D::Send(M3, NakHdr::Retrans { view: 1, sender: M2, seq: 0 }, b"m2".to_vec())]
    );
    assert_eq!(h.counters.get("naks_received"), 2);
    assert_eq!(h.counters.get("retransmissions"), 3);
}

#[test]
fn digest_recovers_a_lost_last_message() {
    let p = NakParams::default();
    let mut h = joined(p.clone());
    h.up(Up::Cast(M2, data(1, 0, b"0")));
    h.up(Up::Cast(M2, wire(NakHdr::Digest { view: 1, next: 2 }, b"")));
    h.advance(ms(p.nak_delay_ms));
    let nak = NakHdr::Nak { view: 1, sender: M2, ranges: smallvec![(1, 2)] };
    assert_eq!(downs(&mut h), [D::Send(M2, nak, vec![])]);
}

#[test]
fn digests_are_sent_while_casts_are_unstable_then_stop() {
    let p = NakParams::default();
    let mut h = joined(p.clone());
    h.down(Down::Cast(app(b"a")));
    downs(&mut h);
    // The first period saw the cast itself: no digest yet.
    h.advance(ms(p.digest_ms));
    assert_eq!(downs(&mut h), []);
    let digest = || D::Cast(NakHdr::Digest { view: 1, next: 1 }, vec![]);
    h.advance(ms(p.digest_ms));
    assert_eq!(downs(&mut h), [digest()]);
    // Nothing new since: the period doubles.
    h.advance(ms(2 * p.digest_ms - 1));
    assert_eq!(downs(&mut h), []);
    h.advance(ms(1));
    assert_eq!(downs(&mut h), [digest()]);
    h.advance(ms(4 * p.digest_ms - 1));
    assert_eq!(downs(&mut h), []);
    h.advance(ms(1));
    assert_eq!(downs(&mut h), [digest()]);
    // Once stable, no more digests and no timer.
    h.down(Down::Stable(SeqVector { view: 1, entries: vec![(M1, 1)] }));
    h.advance(ms(10 * p.digest_max_ms));
    assert_eq!(downs(&mut h), []);
    assert!(!h.timers().iter().any(|t| t.0 == TIMER_DIGEST));
}

#[test]
fn point_to_point_sends_do_not_hold_back_the_digest_of_casts() {
    // Stability gossip and credits go out point-to-point every period after the last
    // cast; a lost last cast must still be announced.
    let p = NakParams::default();
    let mut h = joined(p.clone());
    h.down(Down::Cast(app(b"a")));
    h.advance(ms(p.digest_ms));
    downs(&mut h);
    h.down(Down::Send(M2, app(b"gossip")));
    assert_eq!(downs(&mut h), [D::Send(M2, NakHdr::P2p { seq: 0 }, b"gossip".to_vec())]);
    h.advance(ms(p.digest_ms));
    // The cast stream had nothing new: its digest goes; the send stream just did.
    assert_eq!(downs(&mut h), [D::Cast(NakHdr::Digest { view: 1, next: 1 }, vec![])]);
    // Something new went out in that period: the period does not double yet.
    h.advance(ms(p.digest_ms));
    assert_eq!(
        downs(&mut h),
        [
            D::Cast(NakHdr::Digest { view: 1, next: 1 }, vec![]),
            D::Send(M2, NakHdr::P2pDigest { next: 1 }, vec![]),
        ]
    );
}

#[test]
fn stable_frees_buffers_and_a_view_change_releases_the_rest() {
    let mut h = joined(NakParams::default());
    h.down(Down::Cast(app(b"aaaa")));
    h.down(Down::Cast(app(b"bbbb")));
    h.up(Up::Cast(M2, data(1, 0, b"cc")));
    h.up(Up::Cast(M3, data(1, 1, b"ddd"))); // held back
    assert_eq!(h.counters.get("buffered_bytes"), 4 + 4 + 2 + 3);
    assert_eq!(h.counters.get("buffered_msgs"), 4);
    // A stable vector of another view frees nothing.
    h.down(Down::Stable(SeqVector { view: 7, entries: vec![(M1, 2)] }));
    assert_eq!(h.counters.get("buffered_msgs"), 4);
    h.down(Down::Stable(SeqVector { view: 1, entries: vec![(M1, 1), (M2, 1)] }));
    assert_eq!(h.counters.get("buffered_bytes"), 4 + 3);
    assert_eq!(h.counters.get("buffered_msgs"), 2);
    assert_eq!(h.counters.get("buffered_bytes_peak"), 13);
    assert!(h.take_down().iter().all(|d| !matches!(d, Down::Stable(_))), "consumed");
    h.down(Down::View(view(2, &[M1, M2, M3])));
    assert_eq!(h.counters.get("buffered_bytes"), 0);
    assert_eq!(h.counters.get("buffered_msgs"), 0);
}

#[test]
fn other_views_foreign_senders_garbage_and_own_echoes_are_dropped() {
    let mut h = joined(NakParams::default());
    h.up(Up::Cast(M2, data(2, 0, b"future")));
    h.up(Up::Cast(OUT, data(1, 0, b"outsider")));
    h.up(Up::Cast(M2, Msg::from_wire(Bytes::from_static(&[0x42, 1]))));
    h.up(Up::Cast(M2, Msg::from_wire(Bytes::from_static(&[1, 1]))));
    h.up(Up::Cast(M1, data(1, 0, b"echo")));
    assert!(ups(&mut h).is_empty());
    assert!(downs(&mut h).is_empty());
    assert_eq!(h.counters.get("other_view_dropped"), 1);
    assert_eq!(h.counters.get("foreign_dropped"), 1);
    assert_eq!(h.counters.get("malformed_dropped"), 2);
    assert_eq!(h.counters.get("own_dropped"), 1);
}

#[test]
fn before_a_view_casts_are_unsequenced_both_ways() {
    let mut h = Harness::with_member(Nak::default(), M1);
    h.down(Down::Cast(app(b"hello")));
    assert_eq!(downs(&mut h), [D::Cast(NakHdr::Unseq, b"hello".to_vec())]);
    assert!(ups(&mut h).is_empty(), "unsequenced casts are not looped back");
    h.up(Up::Cast(OUT, wire(NakHdr::Unseq, b"hi")));
    assert_eq!(ups(&mut h), [U::Cast(OUT, b"hi".to_vec())]);
    // Unsequenced casts still pass up once a view is installed (discovery).
    h.down(Down::View(view(1, &[M1, M2])));
    h.up(Up::Cast(OUT, wire(NakHdr::Unseq, b"join?")));
    assert_eq!(ups(&mut h), [U::Cast(OUT, b"join?".to_vec())]);
    assert_eq!(h.counters.get("unsequenced_received"), 2);
}

#[test]
fn progress_is_coalesced() {
    let p = NakParams { progress_every: 3, ..NakParams::default() };
    let mut h = joined(p.clone());
    h.down(Down::Cast(app(b"a")));
    h.up(Up::Cast(M2, data(1, 0, b"b")));
    assert_eq!(ups(&mut h), [U::Cast(M1, b"a".to_vec()), U::Cast(M2, b"b".to_vec())]);
    h.up(Up::Cast(M3, data(1, 0, b"c")));
    assert_eq!(
        ups(&mut h),
        [U::Cast(M3, b"c".to_vec()), U::Progress(vec![(M1, 1), (M2, 1), (M3, 1)])]
    );
    h.up(Up::Cast(M2, data(1, 1, b"d")));
    assert_eq!(ups(&mut h), [U::Cast(M2, b"d".to_vec())]);
    h.advance(ms(p.progress_delay_ms));
    assert_eq!(ups(&mut h), [U::Progress(vec![(M1, 1), (M2, 2), (M3, 1)])]);
    h.advance(ms(10 * p.progress_delay_ms));
    assert!(ups(&mut h).is_empty(), "nothing new, nothing reported");
}

#[test]
fn sends_are_numbered_per_peer_acked_and_naked() {
    let p = NakParams::default();
    let mut h = joined(p.clone());
    h.down(Down::Send(M2, app(b"s0")));
    h.down(Down::Send(M2, app(b"s1")));
    h.down(Down::Send(M3, app(b"t0")));
    assert_eq!(
        downs(&mut h),
        [
            D::Send(M2, NakHdr::P2p { seq: 0 }, b"s0".to_vec()),
            D::Send(M2, NakHdr::P2p { seq: 1 }, b"s1".to_vec()),
            D::Send(M3, NakHdr::P2p { seq: 0 }, b"t0".to_vec()),
        ]
    );
    assert_eq!(h.counters.get("buffered_msgs"), 3);
    h.up(Up::Send(M2, wire(NakHdr::P2pNak { ranges: smallvec![(1, 2)] }, b"")));
    assert_eq!(downs(&mut h), [D::Send(M2, NakHdr::P2p { seq: 1 }, b"s1".to_vec())]);
    h.up(Up::Send(M2, wire(NakHdr::P2pAck { next: 2 }, b"")));
    assert_eq!(h.counters.get("buffered_msgs"), 1);
    // Unacknowledged sends are announced by digest (after a period without sends).
    h.advance(ms(2 * p.digest_ms));
    assert_eq!(downs(&mut h), [D::Send(M3, NakHdr::P2pDigest { next: 1 }, vec![])]);

    // Receiving: in order, a gap is NAKed, everything is acknowledged after a delay.
    h.up(Up::Send(M3, wire(NakHdr::P2p { seq: 0 }, b"r0")));
    h.up(Up::Send(M3, wire(NakHdr::P2p { seq: 2 }, b"r2")));
    assert_eq!(ups(&mut h), [U::Send(M3, b"r0".to_vec())]);
    h.advance(ms(p.nak_delay_ms));
    assert_eq!(downs(&mut h), [D::Send(M3, NakHdr::P2pNak { ranges: smallvec![(1, 2)] }, vec![])]);
    h.up(Up::Send(M3, wire(NakHdr::P2p { seq: 1 }, b"r1")));
    assert_eq!(ups(&mut h), [U::Send(M3, b"r1".to_vec()), U::Send(M3, b"r2".to_vec())]);
    h.advance(ms(p.ack_delay_ms));
    assert_eq!(downs(&mut h), [D::Send(M3, NakHdr::P2pAck { next: 3 }, vec![])]);
}

#[test]
fn parameters_default_and_reject_unknown_fields() {
    let p: NakParams = ron::from_str("(nak_delay_ms: 3, digest_ms: 70)").unwrap();
    assert_eq!(p, NakParams { nak_delay_ms: 3, digest_ms: 70, ..NakParams::default() });
    assert_eq!(ron::from_str::<NakParams>("()").unwrap(), NakParams::default());
    assert!(ron::from_str::<NakParams>("(nak_delay: 3)").is_err());
    assert!(ron::from_str::<NakParams>("(nak_delay_ms: \"3\")").is_err());
}

#[test]
fn a_flush_cut_fetches_a_gone_senders_messages_from_other_members_only() {
    let mut h = joined(NakParams::default());
    h.up(Up::Cast(M2, data(1, 0, b"a")));
    assert_eq!(ups(&mut h), [U::Cast(M2, b"a".to_vec())]);
    h.down(Down::Suspect(vec![M2, OUT]));
    h.down(Down::Cut(SeqVector { view: 1, entries: vec![(M2, 3)] }));
    h.down(Down::Cut(SeqVector { view: 9, entries: vec![(M3, 5)] })); // another view: ignored
    assert!(downs(&mut h).is_empty());
    h.advance(ms(1000));
    let d = downs(&mut h);
    assert!(!d.is_empty());
    for x in &d {
        match x {
            D::Send(to, NakHdr::Nak { view: 1, sender, ranges }, _) => {
                assert_eq!((*to, *sender), (M3, M2), "never NAK the gone sender");
                assert_eq!(ranges[..], [(1, 3)]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // The holder answers; the cut is reached.
    let r = |seq| wire(NakHdr::Retrans { view: 1, sender: M2, seq }, b"r");
    h.up(Up::Send(M3, r(1)));
    h.up(Up::Send(M3, r(2)));
    let casts = ups(&mut h).into_iter().filter(|u| matches!(u, U::Cast(..))).count();
    assert_eq!(casts, 2, "both fetched messages delivered");
}

#[test]
fn a_stale_unsequenced_cast_from_a_member_sequencing_in_the_view_is_dropped() {
    // M2 probed unsequenced before it installed view 1; the probe was overtaken by the
    // first fragment of its first sequenced cast. Passed up, it would fall between
    // that message's fragments.
    let mut h = joined(NakParams::default());
    h.up(Up::Cast(M2, wire(NakHdr::Unseq, b"probe-early")));
    assert_eq!(ups(&mut h), [U::Cast(M2, b"probe-early".to_vec())]);
    h.up(Up::Cast(M2, data(1, 0, b"first")));
    assert_eq!(ups(&mut h), [U::Cast(M2, b"first".to_vec())]);
    h.up(Up::Cast(M2, wire(NakHdr::Unseq, b"probe-late")));
    h.up(Up::Cast(M2, data(1, 1, b"second")));
    assert_eq!(ups(&mut h), [U::Cast(M2, b"second".to_vec())]);
    assert_eq!(h.counters.get("stale_unseq_dropped"), 1);
    // A member not yet sequencing in the view (or outside it) is still heard.
    h.up(Up::Cast(M3, wire(NakHdr::Unseq, b"join?")));
    h.up(Up::Cast(OUT, wire(NakHdr::Unseq, b"join?")));
    assert_eq!(ups(&mut h), [U::Cast(M3, b"join?".to_vec()), U::Cast(OUT, b"join?".to_vec())]);
}

#[test]
fn unreliable_casts_in_a_view_go_out_unsequenced_and_are_not_kept() {
    let mut h = joined(NakParams::default());
    h.down(Down::CastUnreliable(app(b"beacon")));
    h.down(Down::Cast(app(b"a")));
    assert_eq!(
        downs(&mut h),
        [
            D::Cast(NakHdr::Unseq, b"beacon".to_vec()),
            // The numbering is untouched: the first sequenced cast is still 0.
            D::Cast(NakHdr::Data { view: 1, seq: 0 }, b"a".to_vec()),
        ]
    );
    // Not delivered locally, not buffered for repair.
    assert_eq!(ups(&mut h), [U::Cast(M1, b"a".to_vec())]);
    assert_eq!(h.counters.get("unsequenced_sent"), 1);
    assert_eq!(h.counters.get("buffered_msgs"), 1, "only the sequenced cast is kept");
}
