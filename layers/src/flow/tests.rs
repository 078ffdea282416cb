use super::*;
use stack_core::testing::Harness;
use stack_core::{View, ViewReason};

const A: MemberId = MemberId::new(1, 0);
const B: MemberId = MemberId::new(2, 0);
const C: MemberId = MemberId::new(3, 0);

/// Member A's flow layer in view 1 of {A, B, C}.
fn flow(window: u64, queue: usize) -> Harness<Flow> {
    let mut h = Harness::with_member(Flow::new(FlowParams { window, queue }), A);
    h.down(Down::View(View::new(1, vec![A, B, C], ViewReason::Initial)));
    assert!(matches!(&h.take_down()[..], [Down::View(_)]));
    h
}

fn msg(n: usize) -> Msg {
    Msg::new(Bytes::from(vec![7u8; n]), 32)
}

fn credit(view: u64, limit: u64) -> Msg {
    let mut m = Msg::new(Bytes::new(), 32);
    m.push(&FlowHdr::Credit { view, limit });
    Msg::from_wire(m.to_bytes())
}

fn data(n: usize) -> Msg {
    let mut m = msg(n);
    m.push(&FlowHdr::Data);
    Msg::from_wire(m.to_bytes())
}

/// Lengths (with the flow header) of the casts passed down.
fn casts(h: &mut Harness<Flow>) -> Vec<usize> {
    h.take_down()
        .into_iter()
        .map(|d| match d {
            Down::Cast(m) => {
                assert_eq!(m.headers()[0], 0, "data header");
                m.len()
            }
            other => panic!("expected a cast, got {other:?}"),
        })
        .collect()
}

fn flows(h: &mut Harness<Flow>) -> Vec<bool> {
    h.take_up()
        .into_iter()
        .map(|u| match u {
            Up::Flow { open } => open,
            other => panic!("expected flow, got {other:?}"),
        })
        .collect()
}

#[test]
fn window_closes_after_window_bytes_without_credit() {
    let mut h = flow(1000, 4);
    for _ in 0..10 {
        h.down(Down::Cast(msg(100)));
    }
    assert_eq!(casts(&mut h), vec![101; 10]);
    assert!(h.take_up().is_empty());
    h.down(Down::Cast(msg(100)));
    assert!(h.take_down().is_empty());
    assert_eq!(flows(&mut h), vec![false]);
    assert_eq!(h.counters.get("blocked"), 1);
    assert_eq!(h.counters.get("queued_peak"), 1);
    assert!(h.timers().is_empty());
}

#[test]
fn credit_from_every_member_reopens_the_window() {
    let mut h = flow(1000, 4);
    for _ in 0..11 {
        h.down(Down::Cast(msg(100)));
    }
    assert_eq!(casts(&mut h).len(), 10);
    assert_eq!(flows(&mut h), vec![false]);
    // B's credit alone is not enough: C still holds the window.
    h.up(Up::Send(B, credit(1, 1500)));
    assert!(h.take_down().is_empty());
    assert!(h.take_up().is_empty());
    h.up(Up::Send(C, credit(1, 1500)));
    assert_eq!(casts(&mut h), vec![101]);
    assert_eq!(flows(&mut h), vec![true]);
    assert_eq!(h.counters.get("credits_received"), 2);
    // Four more fit (1100 + 4 × 100 = 1500), the fifth closes again.
    for _ in 0..5 {
        h.down(Down::Cast(msg(100)));
    }
    assert_eq!(casts(&mut h), vec![101; 4]);
    assert_eq!(flows(&mut h), vec![false]);
    assert_eq!(h.counters.get("blocked"), 2);
}

#[test]
fn a_message_may_pass_the_limit_by_less_than_itself() {
    let mut h = flow(1000, 4);
    h.down(Down::Cast(msg(999)));
    h.down(Down::Cast(msg(5000)));
    assert_eq!(casts(&mut h), vec![1000, 5001]);
    h.down(Down::Cast(msg(1)));
    assert!(h.take_down().is_empty());
    assert_eq!(flows(&mut h), vec![false]);
}

#[test]
fn queue_is_bounded_and_overflow_sends_everything_in_order() {
    let mut h = flow(100, 2);
    h.down(Down::Cast(msg(100)));
    assert_eq!(casts(&mut h), vec![101]);
    h.down(Down::Cast(msg(1)));
    h.down(Down::Cast(msg(2)));
    assert!(h.take_down().is_empty());
    assert_eq!(h.layer.queued(), 2);
    // A third message (control traffic from above: the application is refused by now)
    // sends the queue and itself at once, in order.
    h.down(Down::Cast(msg(3)));
    assert_eq!(casts(&mut h), vec![2, 3, 4]);
    assert_eq!(h.layer.queued(), 0);
    assert_eq!(h.counters.get("overdrafts"), 1);
    assert_eq!(h.counters.get("queued_peak"), 2);
    // Still closed until credit covers the overdraft.
    assert_eq!(flows(&mut h), vec![false]);
    assert!(h.layer.is_closed());
    h.up(Up::Send(B, credit(1, 106)));
    h.up(Up::Send(C, credit(1, 150)));
    assert!(h.take_up().is_empty(), "106 bytes sent, B's limit 106: still closed");
    h.up(Up::Send(B, credit(1, 107)));
    assert_eq!(flows(&mut h), vec![true]);
}

#[test]
fn receiver_grants_credit_every_half_window() {
    let mut h = flow(1000, 4);
    for _ in 0..4 {
        h.up(Up::Cast(B, data(100)));
    }
    assert_eq!(h.take_up().len(), 4);
    assert!(h.take_down().is_empty(), "400 consumed: less than half a window");
    h.up(Up::Cast(B, data(100)));
    assert_eq!(h.take_up().len(), 1);
    match &h.take_down()[..] {
        [Down::Send(to, m)] => {
            assert_eq!(*to, B);
            assert_eq!(&m.to_bytes()[..], &[1, 1, 0xdc, 0x0b]); // Credit { view 1, limit 1500 }
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.counters.get("credits_sent"), 1);
    // Sends count too; C's account is separate.
    h.up(Up::Send(B, data(499)));
    h.up(Up::Cast(C, data(499)));
    assert!(h.take_down().is_empty());
    h.up(Up::Send(B, data(1)));
    assert!(matches!(&h.take_down()[..], [Down::Send(to, _)] if *to == B));
    // Own casts and strangers' are not accounted.
    h.up(Up::Cast(A, data(5000)));
    h.up(Up::Cast(MemberId::new(9, 0), data(5000)));
    assert!(h.take_down().is_empty());
    assert_eq!(h.take_up().len(), 5);
}

#[test]
fn credits_of_another_view_are_ignored() {
    let mut h = flow(100, 4);
    h.down(Down::Cast(msg(100)));
    h.down(Down::Cast(msg(100)));
    assert_eq!(casts(&mut h).len(), 1);
    assert_eq!(flows(&mut h), vec![false]);
    h.up(Up::Send(B, credit(7, 1000)));
    h.up(Up::Send(C, credit(7, 1000)));
    assert!(h.take_down().is_empty());
    assert!(h.take_up().is_empty());
}

#[test]
fn view_sends_queued_messages_first_then_resets_credits() {
    let mut h = flow(100, 4);
    h.down(Down::Cast(msg(100)));
    h.down(Down::Cast(msg(10)));
    assert_eq!(casts(&mut h).len(), 1);
    assert_eq!(flows(&mut h), vec![false]);
    let v = View::new(2, vec![A, B], ViewReason::Leave);
    h.down(Down::View(v.clone()));
    match &h.take_down()[..] {
        [Down::Cast(m), Down::View(got)] => {
            assert_eq!(m.len(), 11);
            assert_eq!(*got, v);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(flows(&mut h), vec![true]);
    // A fresh window of 100 towards B only.
    h.down(Down::Cast(msg(100)));
    h.down(Down::Cast(msg(1)));
    assert_eq!(casts(&mut h), vec![101]);
    assert_eq!(flows(&mut h), vec![false]);
    h.up(Up::Send(B, credit(2, 200)));
    assert_eq!(casts(&mut h), vec![2]);
    assert_eq!(flows(&mut h), vec![true]);
}

#[test]
fn suspected_member_no_longer_holds_the_window() {
    let mut h = flow(100, 4);
    h.down(Down::Cast(msg(100)));
    h.down(Down::Cast(msg(10)));
    assert_eq!(casts(&mut h).len(), 1);
    assert_eq!(flows(&mut h), vec![false]);
    h.up(Up::Send(B, credit(1, 200)));
    assert!(h.take_down().is_empty());
    h.down(Down::Suspect(vec![C]));
    match &h.take_down()[..] {
        [Down::Cast(m), Down::Suspect(s)] => {
            assert_eq!(m.len(), 11);
            assert_eq!(s, &vec![C]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(flows(&mut h), vec![true]);
}

#[test]
fn block_ok_sends_everything_queued_first() {
    let mut h = flow(100, 4);
    h.down(Down::Cast(msg(100)));
    h.down(Down::Send(B, msg(5)));
    h.down(Down::Cast(msg(6)));
    assert_eq!(h.take_down().len(), 1);
    h.down(Down::BlockOk);
    let d = h.take_down();
    assert!(matches!(&d[..], [Down::Send(to, _), Down::Cast(_), Down::BlockOk] if *to == B));
}

#[test]
fn sends_use_only_their_destinations_credit() {
    let mut h = flow(100, 4);
    h.down(Down::Send(B, msg(100)));
    h.down(Down::Send(C, msg(50)));
    assert_eq!(h.take_down().len(), 2);
    // B's credit is spent: a send to B waits, and the cast behind it too (order).
    h.down(Down::Send(B, msg(1)));
    h.down(Down::Cast(msg(1)));
    assert!(h.take_down().is_empty());
    assert_eq!(flows(&mut h), vec![false]);
    h.up(Up::Send(B, credit(1, 150)));
    assert_eq!(h.take_down().len(), 2);
    assert_eq!(flows(&mut h), vec![true]);
}

#[test]
fn malformed_and_other_events() {
    let mut h = flow(100, 4);
    h.up(Up::Cast(B, Msg::from_wire(Bytes::from_static(&[5]))));
    h.up(Up::Send(B, Msg::from_wire(Bytes::new())));
    h.up(Up::Send(B, Msg::from_wire(Bytes::from_static(&[1, 1]))));
    assert_eq!(h.counters.get("malformed_dropped"), 3);
    h.up(Up::Block);
    assert!(matches!(&h.take_up()[..], [Up::Block]));
    h.down(Down::Join);
    assert!(matches!(&h.take_down()[..], [Down::Join]));
}

quickcheck::quickcheck! {
    /// Whatever the casts and credits, the queue never exceeds its bound and what
    /// went down is, in order, what came from above.
    fn queue_bounded_and_order_kept(ops: Vec<(bool, u16)>) -> bool {
        let mut h = flow(500, 3);
        let mut sent = Vec::new();
        let mut out = Vec::new();
        let mut limit = 500u64;
        for (is_credit, n) in ops.into_iter().take(200) {
            if is_credit {
                limit += n as u64;
                h.up(Up::Send(B, credit(1, limit)));
                h.up(Up::Send(C, credit(1, limit)));
            } else {
                let n = n as usize % 300;
                sent.push(n + 1);
                h.down(Down::Cast(msg(n)));
            }
            if h.layer.queued() > 3 {
                return false;
            }
            out.extend(casts(&mut h));
            h.take_up();
        }
        h.down(Down::BlockOk);
        out.extend(h.take_down().into_iter().filter_map(|d| match d {
            Down::Cast(m) => Some(m.len()),
            _ => None,
        }));
        out == sent
    }
}
