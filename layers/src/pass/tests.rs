use super::*;
use stack_core::testing::Harness;
use stack_core::{AppEvent, Bytes, MemberId, Msg, NetOut, Stack, StackConfig, Time};

fn msg(body: &'static [u8]) -> Msg {
    Msg::new(Bytes::from_static(body), 0)
}

#[test]
fn events_pass_unchanged_both_ways() {
    let mut h = Harness::new(Pass::new(PassParams::default()));
    let a = MemberId::new(1, 0);
    h.down(Down::Cast(msg(b"down")));
    h.down(Down::Send(a, msg(b"to a")));
    h.up(Up::Cast(a, msg(b"up")));
    h.up(Up::Block);
    let down = h.take_down();
    assert!(matches!(&down[..], [Down::Cast(m), Down::Send(d, n)]
        if m.body() == &b"down"[..] && *d == a && n.body() == &b"to a"[..]));
    let up = h.take_up();
    assert!(matches!(&up[..], [Up::Cast(f, m), Up::Block] if *f == a && m.body() == &b"up"[..]));
    assert!(h.timers().is_empty());
    assert_eq!(h.counters.iter().count(), 0, "not counting by default");
}

#[test]
fn counting_is_opt_in() {
    let mut h = Harness::new(Pass::new(PassParams { count: true }));
    h.down(Down::Join);
    h.down(Down::Leave);
    h.up(Up::Exit);
    assert_eq!(h.take_down().len(), 2);
    assert_eq!(h.take_up().len(), 1);
    assert_eq!(h.counters.get("down_passed"), 2);
    assert_eq!(h.counters.get("up_passed"), 1);
}

#[test]
fn a_stack_of_pass_layers_adds_no_bytes() {
    let me = MemberId::new(1, 0);
    let wire = |layers: usize| {
        let stack: Vec<Box<dyn Layer>> =
            (0..layers).map(|_| Box::new(Pass::default()) as Box<dyn Layer>).collect();
        let cfg = StackConfig { me, seed: 1, members: vec![me] };
        let mut s = Stack::new(stack, cfg);
        s.join(Time(0));
        s.cast(Time(1), Bytes::from_static(b"hello")).unwrap();
        let mut out = None;
        while let Some(n) = s.poll_net() {
            if let NetOut::Cast(m) = n {
                out = Some(m.to_bytes());
            }
        }
        let bytes = out.expect("the cast reached the network");
        // And it is delivered back up through the same layers.
        s.receive(Time(2), me, true, bytes.clone());
        let delivered = std::iter::from_fn(|| s.poll_event())
            .any(|e| matches!(e, AppEvent::Deliver { payload, .. } if payload == b"hello"[..]));
        assert!(delivered, "{layers} pass layers delivered the cast");
        bytes
    };
    assert_eq!(wire(1), wire(3));
}
