use super::wire::{CausalHdr, Delta};
use super::*;
use smallvec::smallvec;
use stack_core::testing::Harness;
use stack_core::{Bytes, ViewReason};

fn m(n: u32) -> MemberId {
    MemberId::new(n, 0)
}

fn view(id: u64, n: u32) -> View {
    View::new(id, (1..=n).map(m).collect(), ViewReason::Initial)
}

/// A cast as it arrives from below: `delta` header then `body`.
fn data(delta: Delta, body: &'static str) -> Msg {
    let mut msg = Msg::new(Bytes::from_static(body.as_bytes()), 64);
    msg.push(&CausalHdr::Data { delta });
    Msg::from_wire(msg.to_bytes())
}

/// What went up, as `from:body` and `view:<id>`.
fn ups(h: &mut Harness<Causal>) -> Vec<String> {
    h.take_up()
        .into_iter()
        .map(|e| match e {
            Up::Cast(f, msg) | Up::Send(f, msg) => {
                format!("{f}:{}", String::from_utf8_lossy(&msg.into_body()))
            }
            Up::View(v) => format!("view:{}", v.id),
            e => e.kind().to_string(),
        })
        .collect()
}

fn harness(n: u32) -> Harness<Causal> {
    let mut h = Harness::with_member(Causal::new(CausalParams::default()), m(1));
    h.down(Down::View(view(1, n)));
    assert!(matches!(&h.take_down()[..], [Down::View(_)]));
    h
}

#[test]
fn holds_a_reply_until_the_message_it_answers() {
    let mut h = harness(3);
    // m3 cast after delivering m2's first cast; m2's cast is still on its way here.
    h.up(Up::Cast(m(3), data(smallvec![(1, 1)], "reply")));
    assert!(ups(&mut h).is_empty());
    assert_eq!(h.counters.get("held_back"), 1);
    h.up(Up::Cast(m(2), data(smallvec![], "question")));
    assert_eq!(ups(&mut h), ["m2.0:question", "m3.0:reply"]);
    assert_eq!(h.counters.get("held_back"), 0);
    assert_eq!(h.counters.get("held_back_peak"), 1);
    assert_eq!(h.counters.get("delivered"), 2);
}

#[test]
fn releases_a_chain_of_held_casts_in_causal_order() {
    let mut h = harness(3);
    // m3#1 depends on m2#2, which depends on m2#1 (FIFO, held at m2's own entry).
    h.up(Up::Cast(m(3), data(smallvec![(1, 2)], "c1")));
    h.up(Up::Cast(m(2), data(smallvec![], "b1")));
    assert_eq!(ups(&mut h), ["m2.0:b1"]);
    h.up(Up::Cast(m(2), data(smallvec![], "b2")));
    assert_eq!(ups(&mut h), ["m2.0:b2", "m3.0:c1"]);
}

#[test]
fn own_casts_carry_only_changed_entries() {
    let mut h = harness(3);
    let hdr = |h: &mut Harness<Causal>| match h.take_down().pop() {
        Some(Down::Cast(mut msg)) => msg.pop::<CausalHdr>().unwrap(),
        e => panic!("{e:?}"),
    };
    h.down(Down::Cast(Msg::new(Bytes::from_static(b"a1"), 64)));
    assert_eq!(hdr(&mut h), CausalHdr::Data { delta: smallvec![] });
    h.up(Up::Cast(m(2), data(smallvec![], "b1")));
    h.up(Up::Cast(m(3), data(smallvec![], "c1")));
    h.up(Up::Cast(m(3), data(smallvec![], "c2")));
    h.down(Down::Cast(Msg::new(Bytes::from_static(b"a2"), 64)));
    assert_eq!(hdr(&mut h), CausalHdr::Data { delta: smallvec![(1, 1), (2, 2)] });
    h.down(Down::Cast(Msg::new(Bytes::from_static(b"a3"), 64)));
    assert_eq!(hdr(&mut h), CausalHdr::Data { delta: smallvec![] });
    assert_eq!(h.counters.get("delta_entries_sent"), 2);
    // Own casts coming back from below are deliverable at once, in order.
    h.up(Up::Cast(m(1), data(smallvec![], "a1")));
    h.up(Up::Cast(m(1), data(smallvec![(1, 1), (2, 2)], "a2")));
    assert_eq!(ups(&mut h), ["m2.0:b1", "m3.0:c1", "m3.0:c2", "m1.0:a1", "m1.0:a2"]);
}

#[test]
fn receiver_rebuilds_vectors_from_deltas() {
    let mut h = harness(3);
    // m2's second cast carries no entry for m3: it still depends on m3#1 from its first.
    h.up(Up::Cast(m(2), data(smallvec![(2, 1)], "b1")));
    h.up(Up::Cast(m(2), data(smallvec![], "b2")));
    assert!(ups(&mut h).is_empty());
    h.up(Up::Cast(m(3), data(smallvec![], "c1")));
    assert_eq!(ups(&mut h), ["m3.0:c1", "m2.0:b1", "m2.0:b2"]);
}

#[test]
fn view_change_drops_what_cannot_be_delivered_and_restarts_vectors() {
    let mut h = harness(3);
    h.up(Up::Cast(m(3), data(smallvec![(1, 1)], "stuck")));
    h.up(Up::View(view(2, 3)));
    assert_eq!(ups(&mut h), ["view:2"]);
    assert_eq!(h.counters.get("dropped_at_view_change"), 1);
    assert_eq!(h.counters.get("held_back"), 0);
    // Vectors restart: m3's first cast of view 2 is deliverable.
    h.up(Up::Cast(m(3), data(smallvec![], "fresh")));
    assert_eq!(ups(&mut h), ["m3.0:fresh"]);
    // A view already known (seen going down too) changes nothing.
    h.down(Down::View(view(2, 3)));
    h.up(Up::Cast(m(3), data(smallvec![], "fresh2")));
    assert_eq!(ups(&mut h), ["m3.0:fresh2"]);
}

#[test]
fn malformed_and_foreign_casts_are_dropped_and_counted() {
    let mut h = harness(3);
    h.up(Up::Cast(m(2), Msg::from_wire(Bytes::from_static(&[9, 9]))));
    // A delta naming the sender itself, or a rank outside the view.
    h.up(Up::Cast(m(2), data(smallvec![(1, 1)], "x")));
    h.up(Up::Cast(m(2), data(smallvec![(5, 1)], "x")));
    assert_eq!(h.counters.get("malformed_dropped"), 3);
    h.up(Up::Cast(m(9), data(smallvec![], "x")));
    assert_eq!(h.counters.get("foreign_dropped"), 1);
    assert!(ups(&mut h).is_empty());
    // Sends pass untouched both ways.
    h.up(Up::Send(m(2), Msg::from_wire(Bytes::from_static(b"p"))));
    assert_eq!(ups(&mut h), ["m2.0:p"]);
}
