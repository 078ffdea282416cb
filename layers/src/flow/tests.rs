use super::*;
use stack_core::testing::Harness;
use stack_core::{View, ViewReason};

const A: MemberId = MemberId::new(1, 0);
const B: MemberId = MemberId::new(2, 0);
const C: MemberId = MemberId::new(3, 0);

/// Member A's flow layer in view 1 of {A, B, C}.
fn flow(window: u64) -> Harness<Flow> {
    let mut h = Harness::with_member(Flow::new(FlowParams { window }), A);
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
fn window_closes_as_soon_as_window_bytes_are_sent() {
    let mut h = flow(1000);
    for _ in 0..9 {
        h.down(Down::Cast(msg(100)));
    }
    assert_eq!(casts(&mut h), vec![101; 9]);
    assert!(h.take_up().is_empty(), "900 of 1000 bytes: open");
    // The tenth reaches every receiver's limit: the window closes with it, so the
    // driver refuses the application's next cast before it enters the stack.
    h.down(Down::Cast(msg(100)));
    assert_eq!(casts(&mut h), vec![101]);
    assert_eq!(flows(&mut h), vec![false]);
    assert!(h.layer.is_closed());
    assert_eq!(h.counters.get("blocked"), 1);
    assert_eq!(h.counters.get("overdrafts"), 0);
    assert!(h.timers().is_empty());
}

#[test]
fn credit_from_every_member_reopens_the_window() {
    let mut h = flow(1000);
    for _ in 0..10 {
        h.down(Down::Cast(msg(100)));
    }
    assert_eq!(casts(&mut h).len(), 10);
    assert_eq!(flows(&mut h), vec![false]);
    // B's credit alone is not enough: C still holds the window.
    h.up(Up::Send(B, credit(1, 1500)));
    assert!(h.take_up().is_empty());
    h.up(Up::Send(C, credit(1, 1500)));
    assert_eq!(flows(&mut h), vec![true]);
    assert!(h.take_down().is_empty(), "credit sends nothing");
    assert_eq!(h.counters.get("credits_received"), 2);
    // Five more fit (1000 + 5 × 100 = 1500): the fifth closes again.
    for _ in 0..4 {
        h.down(Down::Cast(msg(100)));
    }
    assert!(h.take_up().is_empty());
    h.down(Down::Cast(msg(100)));
    assert_eq!(casts(&mut h), vec![101; 5]);
    assert_eq!(flows(&mut h), vec![false]);
    assert_eq!(h.counters.get("blocked"), 2);
}

#[test]
fn a_message_may_pass_the_limit_by_less_than_itself() {
    let mut h = flow(1000);
    h.down(Down::Cast(msg(998)));
    assert!(h.take_up().is_empty());
    h.down(Down::Cast(msg(5000)));
    assert_eq!(casts(&mut h), vec![999, 5001]);
    assert_eq!(flows(&mut h), vec![false]);
    assert_eq!(h.counters.get("overdrafts"), 0);
}

#[test]
fn messages_from_above_are_never_held_while_closed() {
    // Regression: flow used to queue messages while the window was closed and send
    // them when credit came. Membership (above flow) counts a cast as sent once it
    // has passed below it and reports that count as its part of the flush cut; a cast
    // held here reached the reliable layer after the report, so its sender delivered
    // it in the old view and every other member dropped it as beyond the cut (a
    // 6-member flood of 2-19 kB casts, conformance/regressions/safe-flood-large.ron).
    let mut h = flow(100);
    h.down(Down::Cast(msg(100)));
    assert_eq!(casts(&mut h), vec![101]);
    assert_eq!(flows(&mut h), vec![false]);
    // While closed, only layers above flow send (the driver refuses the application):
    // a cast and a control send go down at once, in order, over the limits.
    h.down(Down::Cast(msg(3)));
    h.down(Down::Send(B, msg(4)));
    match &h.take_down()[..] {
        [Down::Cast(c), Down::Send(to, s)] => {
            assert_eq!((c.len(), *to, s.len()), (4, B, 5));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.counters.get("overdrafts"), 2);
    assert!(h.take_up().is_empty(), "still closed, no second closing");
    // The window stays closed until credit covers the overdraft: 103 bytes to C,
    // 107 to B.
    h.up(Up::Send(B, credit(1, 107)));
    h.up(Up::Send(C, credit(1, 150)));
    assert!(h.take_up().is_empty(), "107 bytes sent, B's limit 107: still closed");
    h.up(Up::Send(B, credit(1, 108)));
    assert_eq!(flows(&mut h), vec![true]);
    assert_eq!(h.counters.get("blocked"), 1);
}

#[test]
fn receiver_grants_credit_every_half_window() {
    let mut h = flow(1000);
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
    let mut h = flow(100);
    h.down(Down::Cast(msg(100)));
    assert_eq!(casts(&mut h).len(), 1);
    assert_eq!(flows(&mut h), vec![false]);
    h.up(Up::Send(B, credit(7, 1000)));
    h.up(Up::Send(C, credit(7, 1000)));
    assert!(h.take_up().is_empty());
    assert!(h.layer.is_closed());
}

#[test]
fn view_resets_credits_and_reopens() {
    let mut h = flow(100);
    h.down(Down::Cast(msg(100)));
    assert_eq!(casts(&mut h).len(), 1);
    assert_eq!(flows(&mut h), vec![false]);
    let v = View::new(2, vec![A, B], ViewReason::Leave);
    h.down(Down::View(v.clone()));
    assert!(matches!(&h.take_down()[..], [Down::View(got)] if *got == v));
    assert_eq!(flows(&mut h), vec![true]);
    // A fresh window of 100 towards B only.
    h.down(Down::Cast(msg(99)));
    assert!(h.take_up().is_empty());
    h.down(Down::Cast(msg(1)));
    assert_eq!(casts(&mut h), vec![100, 2]);
    assert_eq!(flows(&mut h), vec![false]);
    h.up(Up::Send(B, credit(2, 200)));
    assert_eq!(flows(&mut h), vec![true]);
    // Credit of the old view's members is gone with it.
    h.up(Up::Send(C, credit(2, 10_000)));
    assert!(h.take_up().is_empty());
}

#[test]
fn suspected_member_no_longer_holds_the_window() {
    let mut h = flow(100);
    h.down(Down::Cast(msg(100)));
    assert_eq!(casts(&mut h).len(), 1);
    assert_eq!(flows(&mut h), vec![false]);
    h.up(Up::Send(B, credit(1, 200)));
    assert!(h.take_up().is_empty(), "C still holds the window");
    h.down(Down::Suspect(vec![C]));
    assert!(matches!(&h.take_down()[..], [Down::Suspect(s)] if s == &vec![C]));
    assert_eq!(flows(&mut h), vec![true]);
}

#[test]
fn block_ok_and_leave_pass_through() {
    let mut h = flow(100);
    h.down(Down::Cast(msg(100)));
    h.down(Down::BlockOk);
    h.down(Down::Leave);
    let d = h.take_down();
    assert!(matches!(&d[..], [Down::Cast(_), Down::BlockOk, Down::Leave]));
}

#[test]
fn sends_use_only_their_destinations_credit() {
    let mut h = flow(100);
    h.down(Down::Send(C, msg(50)));
    assert_eq!(h.take_down().len(), 1);
    assert!(h.take_up().is_empty(), "C has 50 bytes left, B all of its window");
    // A send that spends B's credit closes the window: a cast needs B too.
    h.down(Down::Send(B, msg(100)));
    assert_eq!(h.take_down().len(), 1);
    assert_eq!(flows(&mut h), vec![false]);
    // A send to C, which still has credit, is no overdraft; one to B is.
    h.down(Down::Send(C, msg(1)));
    assert_eq!(h.counters.get("overdrafts"), 0);
    h.down(Down::Send(B, msg(1)));
    assert_eq!(h.counters.get("overdrafts"), 1);
    assert_eq!(h.take_down().len(), 2);
    h.up(Up::Send(B, credit(1, 150)));
    assert_eq!(flows(&mut h), vec![true]);
}

#[test]
fn malformed_and_other_events() {
    let mut h = flow(100);
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
    /// Whatever the casts and credits, every message goes down at once and in order,
    /// and the window is closed exactly when some receiver's credit is spent.
    fn never_holds_and_closes_exactly_when_spent(ops: Vec<(bool, u16)>) -> bool {
        let mut h = flow(500);
        let mut limit = 500u64;
        let mut sent = 0u64;
        for (is_credit, n) in ops.into_iter().take(200) {
            if is_credit {
                limit += n as u64;
                h.up(Up::Send(B, credit(1, limit)));
                h.up(Up::Send(C, credit(1, limit)));
            } else {
                let n = n as usize % 300;
                sent += n as u64;
                h.down(Down::Cast(msg(n)));
                if casts(&mut h) != vec![n + 1] {
                    return false;
                }
            }
            h.take_up();
            if h.layer.is_closed() != (sent >= limit) {
                return false;
            }
        }
        true
    }
}

#[test]
fn unreliable_casts_use_no_credit_and_are_not_consumed() {
    let mut h = flow(1000);
    for _ in 0..20 {
        h.down(Down::CastUnreliable(msg(100)));
    }
    let down = h.take_down();
    assert_eq!(down.len(), 20);
    for d in down {
        match d {
            Down::CastUnreliable(m) => assert_eq!((m.headers()[0], m.len()), (2, 101)),
            other => panic!("expected an unreliable cast, got {other:?}"),
        }
    }
    // 2000 bytes sent, none charged: the window stays open.
    assert!(h.take_up().is_empty());
    assert!(!h.layer.is_closed());
    // A receiver passes a `Free` message up and grants no credit for it.
    let mut m = msg(900);
    m.push(&FlowHdr::Free);
    h.up(Up::Cast(B, Msg::from_wire(m.to_bytes())));
    assert!(matches!(&h.take_up()[..], [Up::Cast(f, m)] if *f == B && m.len() == 900));
    h.up(Up::Cast(B, data(400)));
    assert!(matches!(&h.take_up()[..], [Up::Cast(..)]));
    assert!(h.take_down().is_empty(), "400 bytes consumed: under half a window");
    assert_eq!(h.counters.get("credits_sent"), 0);
}
