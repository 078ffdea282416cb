//! The `stable` layer driven alone through the recording harness.

use super::*;
use smallvec::smallvec;
use stack_core::testing::Harness;
use stack_core::{Bytes, Header, View, ViewReason};

const M1: MemberId = MemberId::new(1, 0);
const M2: MemberId = MemberId::new(2, 0);
const M3: MemberId = MemberId::new(3, 0);
const OUT: MemberId = MemberId::new(9, 0);

#[derive(Debug, PartialEq)]
enum D {
    Cast(StableHdr, Vec<u8>),
    Send(MemberId, StableHdr, Vec<u8>),
    View(u64),
    Stable(SeqVector),
}

#[derive(Debug, PartialEq)]
enum U {
    Cast(MemberId, Vec<u8>),
    Send(MemberId, Vec<u8>),
    Stable(SeqVector),
    Progress(SeqVector),
}

fn split(m: &Msg) -> (StableHdr, Vec<u8>) {
    let mut w = Msg::from_wire(m.to_bytes());
    let h = w.pop::<StableHdr>().expect("a stable header");
    (h, w.into_body().to_vec())
}

fn downs(h: &mut Harness<Stable>) -> Vec<D> {
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
            Down::Stable(v) => D::Stable(v),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn ups(h: &mut Harness<Stable>) -> Vec<U> {
    h.take_up()
        .into_iter()
        .map(|u| match u {
            Up::Cast(f, m) => U::Cast(f, m.into_body().to_vec()),
            Up::Send(f, m) => U::Send(f, m.into_body().to_vec()),
            Up::Stable(v) => U::Stable(v),
            Up::Progress(v) => U::Progress(v),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn wire(h: StableHdr, body: &[u8]) -> Msg {
    let mut m = Msg::new(Bytes::copy_from_slice(body), StableHdr::MAX_LEN);
    m.push(&h);
    Msg::from_wire(m.to_bytes())
}

fn gossip(view: u64, counts: &[u64]) -> Msg {
    wire(StableHdr::Gossip(Vector { view, counts: counts.iter().copied().collect() }), b"")
}

fn sv(view: u64, counts: &[u64]) -> SeqVector {
    SeqVector { view, entries: [M1, M2, M3].into_iter().zip(counts.iter().copied()).collect() }
}

fn joined(p: StableParams) -> Harness<Stable> {
    let mut h = Harness::with_member(Stable::new(p), M1);
    h.down(Down::View(View::new(1, vec![M3, M1, M2], ViewReason::Initial)));
    assert_eq!(downs(&mut h), [D::View(1)]);
    h
}

/// Feeds `Progress` and checks it is passed on.
fn progress(h: &mut Harness<Stable>, v: SeqVector) {
    h.up(Up::Progress(v.clone()));
    let u = ups(h);
    assert_eq!(u.last(), Some(&U::Progress(v)));
}

#[test]
fn stability_is_the_minimum_over_members_announced_once_per_advance() {
    let mut h = joined(StableParams::default());
    progress(&mut h, sv(1, &[2, 3, 0]));
    assert!(downs(&mut h).is_empty(), "the others have reported nothing yet");
    h.up(Up::Send(M2, gossip(1, &[2, 3, 0])));
    assert!(downs(&mut h).is_empty() && ups(&mut h).is_empty(), "m3 still at zero");
    h.up(Up::Send(M3, gossip(1, &[1, 2, 0])));
    let s = sv(1, &[1, 2, 0]);
    assert_eq!(downs(&mut h), [D::Stable(s.clone())]);
    assert_eq!(ups(&mut h), [U::Stable(s)]);
    // The same vector again, or an older one: nothing.
    h.up(Up::Send(M3, gossip(1, &[1, 2, 0])));
    h.up(Up::Send(M3, gossip(1, &[0, 1, 0])));
    assert!(downs(&mut h).is_empty() && ups(&mut h).is_empty());
    // m3 catches up on m1 only; m2's entry stays where m3's older report put it.
    h.up(Up::Cast(
        M3,
        wire(StableHdr::DataVec(Vector { view: 1, counts: smallvec![2, 2, 0] }), b"x"),
    ));
    let s = sv(1, &[2, 2, 0]);
    assert_eq!(downs(&mut h), [D::Stable(s.clone())]);
    assert_eq!(ups(&mut h), [U::Stable(s), U::Cast(M3, b"x".to_vec())]);
    assert_eq!(h.counters.get("stable_advanced"), 2);
}

#[test]
fn a_changed_vector_is_piggybacked_once_on_a_cast() {
    let mut h = joined(StableParams::default());
    progress(&mut h, sv(1, &[1, 0, 4]));
    h.down(Down::Cast(Msg::new(Bytes::from_static(b"a"), 64)));
    h.down(Down::Cast(Msg::new(Bytes::from_static(b"b"), 64)));
    h.down(Down::Send(M2, Msg::new(Bytes::from_static(b"c"), 64)));
    assert_eq!(
        downs(&mut h),
        [
            D::Cast(
                StableHdr::DataVec(Vector { view: 1, counts: smallvec![1, 0, 4] }),
                b"a".to_vec()
            ),
            D::Cast(StableHdr::Data, b"b".to_vec()),
            D::Send(M2, StableHdr::Data, b"c".to_vec()),
        ]
    );
    // Already sent: the timer sends nothing.
    h.advance(Duration::from_millis(1000));
    assert!(downs(&mut h).is_empty());
    assert_eq!(h.counters.get("piggybacked"), 1);
}

#[test]
fn without_casts_a_changed_vector_goes_point_to_point_on_the_timer_then_quiet() {
    let p = StableParams::default();
    let mut h = joined(p.clone());
    progress(&mut h, sv(1, &[0, 5, 0]));
    h.advance(Duration::from_millis(p.period_ms - 1));
    assert!(downs(&mut h).is_empty());
    h.advance(Duration::from_millis(1));
    let g = StableHdr::Gossip(Vector { view: 1, counts: smallvec![0, 5, 0] });
    assert_eq!(downs(&mut h), [D::Send(M2, g.clone(), vec![]), D::Send(M3, g, vec![])]);
    h.advance(Duration::from_millis(10 * p.period_ms));
    assert!(downs(&mut h).is_empty(), "nothing changed, nothing sent");
    assert!(h.timers().is_empty());
}

#[test]
fn a_vector_too_large_to_piggyback_goes_on_the_timer() {
    let p = StableParams { piggyback_bytes: 3, ..StableParams::default() };
    let mut h = joined(p.clone());
    assert_eq!(h.layer.header_max(), 4);
    progress(&mut h, sv(1, &[300, 0, 0]));
    h.down(Down::Cast(Msg::new(Bytes::from_static(b"a"), 64)));
    assert_eq!(downs(&mut h), [D::Cast(StableHdr::Data, b"a".to_vec())]);
    h.advance(Duration::from_millis(p.period_ms));
    assert_eq!(downs(&mut h).len(), 2);
}

#[test]
fn a_new_view_resets_and_old_vectors_are_ignored() {
    let mut h = joined(StableParams::default());
    progress(&mut h, sv(1, &[1, 1, 1]));
    h.up(Up::Send(M2, gossip(1, &[1, 1, 1])));
    h.down(Down::View(View::new(2, vec![M1, M2], ViewReason::Leave)));
    assert_eq!(downs(&mut h), [D::View(2)]);
    // A late vector of view 1 completes nothing.
    h.up(Up::Send(M3, gossip(1, &[1, 1, 1])));
    assert!(downs(&mut h).is_empty() && ups(&mut h).is_empty());
    progress(&mut h, SeqVector { view: 2, entries: vec![(M1, 1), (M2, 0)] });
    h.up(Up::Send(M2, gossip(2, &[1, 0])));
    let s = SeqVector { view: 2, entries: vec![(M1, 1), (M2, 0)] };
    assert_eq!(downs(&mut h), [D::Stable(s.clone())]);
    assert_eq!(ups(&mut h), [U::Stable(s)]);
}

#[test]
fn malformed_and_foreign_vectors_are_dropped() {
    let mut h = joined(StableParams::default());
    h.up(Up::Cast(M2, Msg::from_wire(Bytes::from_static(&[7]))));
    h.up(Up::Send(M2, gossip(1, &[1, 1])));
    h.up(Up::Send(OUT, gossip(1, &[1, 1, 1])));
    assert!(downs(&mut h).is_empty() && ups(&mut h).is_empty());
    assert_eq!(h.counters.get("malformed_dropped"), 2);
    assert_eq!(h.counters.get("foreign_dropped"), 1);
}

#[test]
fn parameters_default_and_reject_unknown_fields() {
    let p: StableParams = ron::from_str("(period_ms: 50)").unwrap();
    assert_eq!(p, StableParams { period_ms: 50, ..StableParams::default() });
    assert_eq!(ron::from_str::<StableParams>("()").unwrap(), StableParams::default());
    assert!(ron::from_str::<StableParams>("(period: 50)").is_err());
}
