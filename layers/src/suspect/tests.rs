use super::*;
use stack_core::testing::Harness;
use stack_core::{Bytes, View, ViewReason};

const A: MemberId = MemberId::new(1, 0);
const B: MemberId = MemberId::new(2, 0);
const C: MemberId = MemberId::new(3, 0);

fn layer() -> Harness<Suspect> {
    let mut h = Harness::with_member(
        Suspect::new(SuspectParams { timeout_ms: 1000, heartbeat_ms: 250 }),
        A,
    );
    h.down(Down::View(View::new(1, vec![A, B, C], ViewReason::Initial)));
    let d = h.take_down();
    assert!(matches!(&d[..], [Down::View(v)] if v.id == 1));
    h
}

fn wire(h: SuspectHdr) -> Msg {
    let mut m = Msg::new(Bytes::from_static(b"x"), 8);
    m.push(&h);
    Msg::from_wire(m.to_bytes())
}

fn heartbeats(d: &[Down]) -> usize {
    d.iter()
        .filter(|e| match e {
            Down::Cast(m) => m.clone().pop::<SuspectHdr>() == Ok(SuspectHdr::Heartbeat),
            _ => false,
        })
        .count()
}

#[test]
fn idle_member_casts_heartbeats_each_period() {
    let mut h = layer();
    h.advance(Duration::from_millis(1000));
    assert_eq!(heartbeats(&h.take_down()), 4);
    assert_eq!(h.counters.get("heartbeats_sent"), 4);
}

#[test]
fn traffic_piggybacks_the_heartbeat() {
    let mut h = layer();
    for _ in 0..10 {
        h.advance(Duration::from_millis(100));
        h.down(Down::Cast(Msg::new(Bytes::from_static(b"app"), 8)));
    }
    let d = h.take_down();
    assert_eq!(heartbeats(&d), 0);
    assert_eq!(d.len(), 10);
    for e in d {
        let Down::Cast(mut m) = e else { panic!("cast expected") };
        assert_eq!(m.pop::<SuspectHdr>(), Ok(SuspectHdr::Data));
    }
}

#[test]
fn silent_member_is_suspected_after_the_timeout_and_cleared_when_heard() {
    let mut h = layer();
    for _ in 0..4 {
        h.advance(Duration::from_millis(250));
        h.up(Up::Cast(B, wire(SuspectHdr::Heartbeat)));
    }
    assert!(h.take_up().is_empty(), "heartbeats are consumed, nobody late yet");
    // C has been silent 1250 ms at the next tick; B was heard 250 ms ago.
    h.advance(Duration::from_millis(250));
    let up = h.take_up();
    assert!(matches!(&up[..], [Up::Suspect(s)] if s == &vec![C]), "{up:?}");
    h.up(Up::Send(C, wire(SuspectHdr::Data)));
    let up = h.take_up();
    assert!(matches!(&up[0], Up::Suspect(s) if s.is_empty()), "{up:?}");
    assert!(matches!(&up[1], Up::Send(from, _) if *from == C));
    assert_eq!(up.len(), 2);
}

#[test]
fn suspicion_is_reported_exactly_once_with_the_whole_set() {
    let mut h = layer();
    h.advance(Duration::from_millis(1000));
    assert!(h.take_up().is_empty(), "no one is late at exactly the timeout");
    h.advance(Duration::from_millis(250));
    let up = h.take_up();
    assert_eq!(up.len(), 1);
    assert!(matches!(&up[0], Up::Suspect(s) if s == &vec![B, C]));
    h.advance(Duration::from_millis(2000));
    assert!(h.take_up().is_empty(), "the set did not change");
    assert_eq!(h.counters.get("suspicions"), 2);
}

#[test]
fn a_new_view_clears_suspicion_and_gives_grace() {
    let mut h = layer();
    h.advance(Duration::from_millis(1250));
    assert_eq!(h.take_up().len(), 1);
    h.down(Down::View(View::new(2, vec![A, C], ViewReason::Failure)));
    assert!(h.layer.suspected().is_empty());
    h.advance(Duration::from_millis(1000));
    assert!(h.take_up().is_empty());
    h.advance(Duration::from_millis(250));
    let up = h.take_up();
    assert!(matches!(&up[..], [Up::Suspect(s)] if s == &vec![C]));
}

#[test]
fn malformed_messages_are_dropped_and_counted() {
    let mut h = layer();
    h.up(Up::Cast(B, Msg::from_wire(Bytes::from_static(&[9, 1, 2]))));
    h.up(Up::Cast(B, Msg::from_wire(Bytes::new())));
    assert!(h.take_up().is_empty());
    assert_eq!(h.counters.get("malformed_dropped"), 2);
}

#[test]
fn decisions_from_above_pass_down_untouched() {
    let mut h = layer();
    h.down(Down::Suspect(vec![B]));
    assert!(matches!(&h.take_down()[..], [Down::Suspect(s)] if s == &vec![B]));
}

#[test]
fn no_heartbeats_before_a_view() {
    let mut h = Harness::with_member(Suspect::default(), A);
    h.advance(Duration::from_secs(5));
    assert!(h.take_down().is_empty());
    assert!(h.timers().is_empty());
}
