use super::wire::{Counts, SafeHdr};
use super::*;
use smallvec::smallvec;
use stack_core::testing::Harness;
use stack_core::ViewReason;

fn m(n: u32) -> MemberId {
    MemberId::new(n, 0)
}

fn view(id: u64, nodes: &[u32]) -> View {
    View::new(id, nodes.iter().map(|&n| m(n)).collect(), ViewReason::Initial)
}

fn arriving(hdr: SafeHdr, body: &'static str) -> Msg {
    let mut msg = Msg::new(Bytes::from_static(body.as_bytes()), 64);
    msg.push(&hdr);
    Msg::from_wire(msg.to_bytes())
}

fn ack(counts: Counts) -> Msg {
    arriving(SafeHdr::Ack { counts }, "")
}

fn ups(h: &mut Harness<Safe>) -> Vec<String> {
    h.take_up()
        .into_iter()
        .map(|e| match e {
            Up::Cast(f, msg) => format!("{f}:{}", String::from_utf8_lossy(&msg.into_body())),
            Up::View(v) => format!("view:{}", v.id),
            e => e.kind().to_string(),
        })
        .collect()
}

fn downs(h: &mut Harness<Safe>) -> Vec<SafeHdr> {
    h.take_down()
        .into_iter()
        .filter_map(|e| match e {
            Down::Cast(mut msg) => Some(msg.pop::<SafeHdr>().unwrap()),
            _ => None,
        })
        .collect()
}

fn harness() -> Harness<Safe> {
    let mut h = Harness::with_member(Safe::new(SafeParams::default()), m(1));
    h.down(Down::View(view(1, &[1, 2, 3])));
    h.take_down();
    h
}

#[test]
fn holds_each_cast_until_every_member_acked_it() {
    let mut h = harness();
    h.up(Up::Cast(m(2), arriving(SafeHdr::Data, "b1")));
    h.up(Up::Cast(m(3), arriving(SafeHdr::Data, "c1")));
    assert!(ups(&mut h).is_empty());
    // One ack covers the burst.
    h.advance(Duration::ZERO);
    assert_eq!(downs(&mut h), [SafeHdr::Ack { counts: smallvec![0, 1, 1] }]);
    assert_eq!(h.counters.get("acks_sent"), 1);
    h.up(Up::Cast(m(2), ack(smallvec![0, 1, 1])));
    assert!(ups(&mut h).is_empty());
    // m3 holds b1 but not yet c1... its own c1 came back later than b1.
    h.up(Up::Cast(m(3), ack(smallvec![0, 1, 0])));
    assert_eq!(ups(&mut h), ["m2.0:b1"]);
    h.up(Up::Cast(m(3), ack(smallvec![0, 1, 1])));
    assert_eq!(ups(&mut h), ["m3.0:c1"]);
    assert_eq!(h.counters.get("held_back_peak"), 2);
    // Nothing new: the ack timer sends nothing.
    h.fire(TimerId(1));
    assert!(downs(&mut h).is_empty());
}

#[test]
fn keeps_the_order_of_the_layers_below() {
    let mut h = harness();
    h.up(Up::Cast(m(3), arriving(SafeHdr::Data, "c1")));
    h.up(Up::Cast(m(2), arriving(SafeHdr::Data, "b1")));
    // b1 is stable before c1, but c1 came first from below.
    h.up(Up::Cast(m(2), ack(smallvec![0, 1, 0])));
    h.up(Up::Cast(m(3), ack(smallvec![0, 1, 0])));
    assert!(ups(&mut h).is_empty());
    h.up(Up::Cast(m(2), ack(smallvec![0, 1, 1])));
    h.up(Up::Cast(m(3), ack(smallvec![0, 1, 1])));
    assert_eq!(ups(&mut h), ["m3.0:c1", "m2.0:b1"]);
}

#[test]
fn own_casts_and_own_acks() {
    let mut h = harness();
    h.down(Down::Cast(Msg::new(Bytes::from_static(b"a1"), 64)));
    assert_eq!(downs(&mut h), [SafeHdr::Data]);
    h.up(Up::Cast(m(1), arriving(SafeHdr::Data, "a1")));
    h.advance(Duration::ZERO);
    assert_eq!(downs(&mut h), [SafeHdr::Ack { counts: smallvec![1, 0, 0] }]);
    // Our own ack coming back changes nothing; the others' do.
    h.up(Up::Cast(m(1), ack(smallvec![1, 0, 0])));
    h.up(Up::Cast(m(2), ack(smallvec![1, 0, 0])));
    assert!(ups(&mut h).is_empty());
    h.up(Up::Cast(m(3), ack(smallvec![1, 0, 0])));
    assert_eq!(ups(&mut h), ["m1.0:a1"]);
}

#[test]
fn view_change_delivers_what_is_held_and_block_stops_acks() {
    let mut h = harness();
    h.up(Up::Cast(m(2), arriving(SafeHdr::Data, "b1")));
    h.down(Down::BlockOk);
    let out = h.take_down();
    assert!(matches!(&out[..], [Down::Cast(_), Down::BlockOk]));
    h.up(Up::Cast(m(3), arriving(SafeHdr::Data, "c1")));
    h.advance(Duration::from_secs(1));
    assert!(downs(&mut h).is_empty());
    h.up(Up::View(view(2, &[1, 2])));
    assert_eq!(ups(&mut h), ["m2.0:b1", "m3.0:c1", "view:2"]);
    assert_eq!(h.counters.get("delivered_at_view_change"), 2);
}

#[test]
fn malformed_and_foreign_are_dropped() {
    let mut h = harness();
    h.up(Up::Cast(m(2), ack(smallvec![1, 1])));
    h.up(Up::Cast(m(2), Msg::from_wire(Bytes::from_static(&[5]))));
    assert_eq!(h.counters.get("malformed_dropped"), 2);
    h.up(Up::Cast(m(7), arriving(SafeHdr::Data, "x")));
    assert_eq!(h.counters.get("foreign_dropped"), 1);
    assert!(ups(&mut h).is_empty());
}
