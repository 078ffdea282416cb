use super::*;
use stack_core::testing::Harness;
use stack_core::{Bytes, ViewReason};

const A: MemberId = MemberId::new(1, 0);
const B: MemberId = MemberId::new(2, 0);
const J: MemberId = MemberId::new(3, 0);

fn view(id: u64, ms: &[MemberId]) -> View {
    View::new(id, ms.to_vec(), ViewReason::Join)
}

fn wire(h: FlushHdr, body: &'static [u8]) -> Msg {
    let mut m = Msg::new(Bytes::from_static(body), 16);
    m.push(&h);
    Msg::from_wire(m.to_bytes())
}

fn kinds(up: &[Up]) -> Vec<&'static str> {
    up.iter().map(|e| e.kind()).collect()
}

#[test]
fn block_goes_up_and_one_block_ok_goes_down_per_view() {
    let mut h = Harness::with_member(Flush::default(), A);
    h.up(Up::View(view(1, &[A])));
    h.up(Up::Block);
    assert_eq!(kinds(&h.take_up()), ["view", "block"]);
    h.down(Down::BlockOk);
    h.down(Down::BlockOk);
    let d = h.take_down();
    assert!(matches!(&d[..], [Down::BlockOk]));
    h.up(Up::View(view(2, &[A, B])));
    h.take_up();
    h.down(Down::BlockOk);
    assert_eq!(h.take_down().len(), 1, "a new view needs a new BlockOk");
}

#[test]
fn auto_block_ok_answers_itself_and_drops_casts_until_the_next_view() {
    let mut h = Harness::with_member(Flush::new(FlushParams { auto_block_ok: true }), A);
    h.up(Up::View(view(1, &[A])));
    h.take_up();
    h.up(Up::Block);
    assert!(h.take_up().is_empty());
    assert!(matches!(&h.take_down()[..], [Down::BlockOk]));
    h.down(Down::Cast(Msg::new(Bytes::from_static(b"late"), 16)));
    assert!(h.take_down().is_empty());
    assert_eq!(h.counters.get("blocked_dropped"), 1);
    h.up(Up::View(view(2, &[A])));
    h.down(Down::Cast(Msg::new(Bytes::from_static(b"ok"), 16)));
    let d = h.take_down();
    let [Down::Cast(m)] = &d[..] else { panic!("{d:?}") };
    assert_eq!(m.headers(), [0]);
}

#[test]
fn provider_gets_state_request_before_the_view_and_sends_state_to_each_joiner() {
    let mut h = Harness::with_member(Flush::default(), A);
    h.up(Up::View(view(4, &[A, B])));
    h.take_up();
    h.up(Up::View(view(5, &[A, B, J])));
    assert_eq!(kinds(&h.take_up()), ["state_request", "view"]);
    h.down(Down::StateReply(Bytes::from_static(b"S")));
    let d = h.take_down();
    let [Down::Send(to, m)] = &d[..] else { panic!("{d:?}") };
    assert_eq!(*to, J);
    assert_eq!(m.to_bytes()[..], [1, 5, b'S']);
    h.down(Down::StateReply(Bytes::from_static(b"again")));
    assert!(h.take_down().is_empty(), "one reply per request");
}

#[test]
fn only_the_oldest_previous_member_provides() {
    let mut h = Harness::with_member(Flush::default(), B);
    h.up(Up::View(view(4, &[A, B])));
    h.up(Up::View(view(5, &[A, B, J])));
    assert_eq!(kinds(&h.take_up()), ["view", "view"]);
}

#[test]
fn joiner_gets_state_before_any_cast_of_its_first_view() {
    let mut h = Harness::with_member(Flush::default(), J);
    h.up(Up::View(view(5, &[A, B, J])));
    h.up(Up::Cast(A, wire(FlushHdr::Data, b"m1")));
    h.up(Up::Send(B, wire(FlushHdr::Data, b"p2p")));
    assert_eq!(kinds(&h.take_up()), ["view", "send"]);
    h.up(Up::Send(A, wire(FlushHdr::State { view: 4 }, b"old")));
    assert!(h.take_up().is_empty());
    assert_eq!(h.counters.get("stale_state_dropped"), 1);
    h.up(Up::Send(A, wire(FlushHdr::State { view: 5 }, b"S")));
    let up = h.take_up();
    assert!(matches!(&up[0], Up::State(s) if &s[..] == b"S"));
    assert!(matches!(&up[1], Up::Cast(from, m) if *from == A && &m.body()[..] == b"m1"));
    assert_eq!(up.len(), 2);
}

#[test]
fn founder_waits_for_no_state() {
    let mut h = Harness::with_member(Flush::default(), A);
    h.up(Up::View(View::new(1, vec![A], ViewReason::Initial)));
    h.up(Up::Cast(A, wire(FlushHdr::Data, b"x")));
    assert_eq!(kinds(&h.take_up()), ["view", "cast"]);
}

#[test]
fn a_joiner_whose_provider_failed_stops_waiting_at_the_next_view() {
    let mut h = Harness::with_member(Flush::default(), J);
    h.up(Up::View(view(5, &[A, J])));
    h.up(Up::Cast(J, wire(FlushHdr::Data, b"mine")));
    h.up(Up::View(view(6, &[J])));
    assert_eq!(kinds(&h.take_up()), ["view", "cast", "view"]);
    assert_eq!(h.counters.get("state_missed"), 1);
}

#[test]
fn malformed_is_dropped_and_counted() {
    let mut h = Harness::with_member(Flush::default(), A);
    h.up(Up::Cast(B, Msg::from_wire(Bytes::from_static(&[7]))));
    h.up(Up::Send(B, Msg::from_wire(Bytes::new())));
    assert!(h.take_up().is_empty());
    assert_eq!(h.counters.get("malformed_dropped"), 2);
}

#[test]
fn a_state_that_overtakes_its_view_is_kept_until_the_view() {
    let mut h = Harness::with_member(Flush::default(), J);
    h.up(Up::Send(A, wire(FlushHdr::State { view: 5 }, b"S")));
    assert!(h.take_up().is_empty());
    h.up(Up::View(view(5, &[A, B, J])));
    let up = h.take_up();
    assert_eq!(kinds(&up), ["view", "state"]);
    h.up(Up::Cast(A, wire(FlushHdr::Data, b"m1")));
    assert_eq!(kinds(&h.take_up()), ["cast"]);
}
