use super::wire::{Runs, TotalHdr};
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

fn arriving(hdr: TotalHdr, body: &'static str) -> Msg {
    let mut msg = Msg::new(Bytes::from_static(body.as_bytes()), 64);
    msg.push(&hdr);
    Msg::from_wire(msg.to_bytes())
}

fn ups(h: &mut Harness<Total>) -> Vec<String> {
    h.take_up()
        .into_iter()
        .map(|e| match e {
            Up::Cast(f, msg) => format!("{f}:{}", String::from_utf8_lossy(&msg.into_body())),
            Up::View(v) => format!("view:{}", v.id),
            e => e.kind().to_string(),
        })
        .collect()
}

/// Headers of the casts passed down.
fn downs(h: &mut Harness<Total>) -> Vec<TotalHdr> {
    h.take_down()
        .into_iter()
        .filter_map(|e| match e {
            Down::Cast(mut msg) => Some(msg.pop::<TotalHdr>().unwrap()),
            _ => None,
        })
        .collect()
}

fn harness(me: u32, params: TotalParams) -> Harness<Total> {
    let mut h = Harness::with_member(Total::new(params), m(me));
    h.down(Down::View(view(1, &[1, 2, 3])));
    assert!(matches!(&h.take_down()[..], [Down::View(_)]));
    h
}

fn lamport() -> TotalParams {
    TotalParams { algorithm: Algorithm::Lamport, ..TotalParams::default() }
}

fn order(runs: Runs) -> Msg {
    arriving(TotalHdr::Order { runs }, "")
}

#[test]
fn sequencer_batches_runs_and_delivers_on_its_own_order() {
    let mut h = harness(1, TotalParams::default());
    h.up(Up::Cast(m(2), arriving(TotalHdr::Data, "b1")));
    h.up(Up::Cast(m(2), arriving(TotalHdr::Data, "b2")));
    h.up(Up::Cast(m(3), arriving(TotalHdr::Data, "c1")));
    h.up(Up::Cast(m(1), arriving(TotalHdr::Data, "a1")));
    h.up(Up::Cast(m(2), arriving(TotalHdr::Data, "b3")));
    // Nothing is delivered before the order message; one timer batches the burst.
    assert!(ups(&mut h).is_empty());
    assert!(downs(&mut h).is_empty());
    assert_eq!(h.timers(), [(TimerId(1), h.now)]);
    h.advance(Duration::ZERO);
    let runs: Runs = smallvec![(1, 2), (2, 1), (0, 1), (1, 1)];
    assert_eq!(downs(&mut h), [TotalHdr::Order { runs: runs.clone() }]);
    assert_eq!(h.counters.get("order_msgs_sent"), 1);
    // The sequencer delivers when its own order message comes back.
    h.up(Up::Cast(m(1), order(runs)));
    assert_eq!(ups(&mut h), ["m2.0:b1", "m2.0:b2", "m3.0:c1", "m1.0:a1", "m2.0:b3"]);
    assert_eq!(h.counters.get("ordered"), 5);
    assert_eq!(h.counters.get("held_back_peak"), 5);
}

#[test]
fn sequencer_sends_at_once_when_the_batch_is_full() {
    let mut h = harness(1, TotalParams { max_runs: 2, ..TotalParams::default() });
    h.up(Up::Cast(m(2), arriving(TotalHdr::Data, "b1")));
    h.up(Up::Cast(m(3), arriving(TotalHdr::Data, "c1")));
    assert_eq!(downs(&mut h), [TotalHdr::Order { runs: smallvec![(1, 1), (2, 1)] }]);
    assert!(h.timers().is_empty());
}

#[test]
fn members_deliver_by_order_whatever_the_arrival_order() {
    let mut h = harness(2, TotalParams::default());
    // The order overtakes the casts it names.
    h.up(Up::Cast(m(1), order(smallvec![(2, 1), (0, 1), (1, 1)])));
    h.up(Up::Cast(m(1), arriving(TotalHdr::Data, "a1")));
    h.up(Up::Cast(m(2), arriving(TotalHdr::Data, "b1")));
    assert!(ups(&mut h).is_empty());
    h.up(Up::Cast(m(3), arriving(TotalHdr::Data, "c1")));
    assert_eq!(ups(&mut h), ["m3.0:c1", "m1.0:a1", "m2.0:b1"]);
    // Not the sequencer: no order messages, no timer.
    assert!(downs(&mut h).is_empty());
    assert!(h.timers().is_empty());
    // Own casts get a Data header.
    h.down(Down::Cast(Msg::new(Bytes::from_static(b"b2"), 64)));
    assert_eq!(downs(&mut h), [TotalHdr::Data]);
}

#[test]
fn order_from_a_non_sequencer_or_wrong_algorithm_is_dropped() {
    let mut h = harness(2, TotalParams::default());
    h.up(Up::Cast(m(3), order(smallvec![(2, 1)])));
    h.up(Up::Cast(m(1), order(smallvec![(7, 1)])));
    h.up(Up::Cast(m(1), arriving(TotalHdr::Stamped { ts: 1 }, "x")));
    h.up(Up::Cast(m(1), Msg::from_wire(Bytes::from_static(&[9]))));
    assert_eq!(h.counters.get("malformed_dropped"), 4);
    h.up(Up::Cast(m(8), arriving(TotalHdr::Data, "x")));
    assert_eq!(h.counters.get("foreign_dropped"), 1);
    assert!(ups(&mut h).is_empty());
}

#[test]
fn sequencer_view_change_delivers_ordered_prefix_then_rest_by_rank() {
    let mut h = harness(2, TotalParams::default());
    for (f, b) in [(2, "b1"), (3, "c1"), (3, "c2"), (1, "a1"), (3, "c3")] {
        h.up(Up::Cast(m(f), arriving(TotalHdr::Data, b)));
    }
    // The sequencer ordered c1, then a cast of m1 nobody received (a2 follows a1, so
    // a1 is named by the run too), then c2, then crashed.
    h.up(Up::Cast(m(1), order(smallvec![(2, 1), (0, 2), (2, 1)])));
    assert_eq!(ups(&mut h), ["m3.0:c1", "m1.0:a1"]);
    h.up(Up::View(view(2, &[2, 3])));
    assert_eq!(ups(&mut h), ["m3.0:c2", "m2.0:b1", "m3.0:c3", "view:2"]);
    assert_eq!(h.counters.get("ordered"), 3);
    assert_eq!(h.counters.get("delivered_at_view_change"), 2);
    // m2 is now the sequencer of view 2.
    h.up(Up::Cast(m(3), arriving(TotalHdr::Data, "c4")));
    h.advance(Duration::ZERO);
    assert_eq!(downs(&mut h), [TotalHdr::Order { runs: smallvec![(1, 1)] }]);
}

#[test]
fn sequencer_flushes_its_batch_before_block_ok_then_stays_quiet() {
    let mut h = harness(1, TotalParams::default());
    h.up(Up::Cast(m(2), arriving(TotalHdr::Data, "b1")));
    h.down(Down::BlockOk);
    let out = h.take_down();
    assert_eq!(out.len(), 2);
    assert!(matches!(&out[1], Down::BlockOk));
    h.up(Up::Cast(m(3), arriving(TotalHdr::Data, "c1")));
    h.advance(Duration::from_secs(1));
    assert!(downs(&mut h).is_empty());
}

#[test]
fn lamport_waits_until_every_member_has_passed_the_stamp() {
    let mut h = harness(1, lamport());
    h.up(Up::Cast(m(2), arriving(TotalHdr::Stamped { ts: 1 }, "b1")));
    assert!(ups(&mut h).is_empty());
    // This member has sent nothing past 1: it announces its clock.
    h.advance(Duration::ZERO);
    assert_eq!(downs(&mut h), [TotalHdr::Clock { ts: 2 }]);
    assert_eq!(h.counters.get("order_msgs_sent"), 1);
    h.up(Up::Cast(m(3), arriving(TotalHdr::Clock { ts: 3 }, "")));
    // m3 has passed 1, but our own clock message is still in flight.
    assert!(ups(&mut h).is_empty());
    h.up(Up::Cast(m(1), arriving(TotalHdr::Clock { ts: 2 }, "")));
    assert_eq!(ups(&mut h), ["m2.0:b1"]);
    // A cast is stamped past everything received.
    h.down(Down::Cast(Msg::new(Bytes::from_static(b"a1"), 64)));
    assert_eq!(downs(&mut h), [TotalHdr::Stamped { ts: 4 }]);
}

#[test]
fn lamport_breaks_ties_by_rank_and_skips_the_clock_message_when_casting() {
    let mut h = harness(1, lamport());
    h.up(Up::Cast(m(3), arriving(TotalHdr::Stamped { ts: 1 }, "c1")));
    assert!(ups(&mut h).is_empty());
    // Both stamped 1; nothing of ours in flight and our next stamp will exceed 1.
    h.up(Up::Cast(m(2), arriving(TotalHdr::Stamped { ts: 1 }, "b1")));
    assert_eq!(ups(&mut h), ["m2.0:b1", "m3.0:c1"]);
    assert_eq!(h.timers(), [(TimerId(2), h.now)]);
    // Casting stamps past both, so no clock message is needed.
    h.down(Down::Cast(Msg::new(Bytes::from_static(b"a1"), 64)));
    assert_eq!(downs(&mut h), [TotalHdr::Stamped { ts: 2 }]);
    assert!(h.timers().is_empty());
    // m3's c2 (stamped 2 too) waits for our own a1, which comes first by rank.
    h.up(Up::Cast(m(3), arriving(TotalHdr::Stamped { ts: 2 }, "c2")));
    h.up(Up::Cast(m(2), arriving(TotalHdr::Clock { ts: 3 }, "")));
    assert!(ups(&mut h).is_empty());
    h.up(Up::Cast(m(1), arriving(TotalHdr::Stamped { ts: 2 }, "a1")));
    assert_eq!(ups(&mut h), ["m1.0:a1", "m3.0:c2"]);
    // Stamps must increase per sender.
    h.up(Up::Cast(m(3), arriving(TotalHdr::Stamped { ts: 2 }, "again")));
    assert_eq!(h.counters.get("malformed_dropped"), 1);
}

#[test]
fn lamport_view_change_delivers_held_casts_by_stamp_then_rank() {
    let mut h = harness(1, lamport());
    // Our own cast stays in flight, so everything stamped later is held.
    h.down(Down::Cast(Msg::new(Bytes::from_static(b"a1"), 64)));
    assert_eq!(downs(&mut h), [TotalHdr::Stamped { ts: 1 }]);
    h.up(Up::Cast(m(3), arriving(TotalHdr::Stamped { ts: 5 }, "c5")));
    h.up(Up::Cast(m(2), arriving(TotalHdr::Stamped { ts: 5 }, "b5")));
    h.up(Up::Cast(m(2), arriving(TotalHdr::Stamped { ts: 7 }, "b7")));
    h.up(Up::Cast(m(3), arriving(TotalHdr::Stamped { ts: 6 }, "c6")));
    assert!(ups(&mut h).is_empty());
    h.up(Up::View(view(2, &[1, 2])));
    assert_eq!(ups(&mut h), ["m2.0:b5", "m3.0:c5", "m3.0:c6", "m2.0:b7", "view:2"]);
    assert_eq!(h.counters.get("delivered_at_view_change"), 4);
    assert!(h.timers().is_empty());
}

#[test]
fn descriptor_parameters_choose_the_algorithm() {
    let r = crate::registry();
    for text in ["()", "(algorithm: Sequencer)", "(algorithm: Lamport, clock_delay_us: 50)"] {
        assert_eq!(r.build("Total", text).unwrap().name(), "total", "{text}");
    }
    assert!(r.build("Total", "(algorithm: Token)").is_err());
    assert!(r.build("Total", "(batch_delay: 5)").is_err());
    assert!(r.build("Safe", "(ack_delay_us: 100)").is_ok());
    assert!(r.build("Causal", "(x: 1)").is_err());
}
