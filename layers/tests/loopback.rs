//! Stacks of `bundle`, `frag` and `flow` over a perfect in-order loopback network (no
//! loss, no reordering: it stands in for the reliable FIFO layer these layers need).

use layers::bundle::{Bundle, BundleParams};
use layers::flow::{Flow, FlowParams};
use layers::frag::{Frag, FragParams};
use stack_core::{AppEvent, Bytes, CastError, Layer, MemberId, NetOut, Stack, StackConfig, Time};
use std::collections::VecDeque;
use std::time::Duration;

const WINDOW: u64 = 20_000;
const MSG: usize = 3000;

struct Net {
    ids: Vec<MemberId>,
    stacks: Vec<Stack>,
    /// Per member: datagrams waiting, with sender and kind.
    inbox: Vec<VecDeque<(MemberId, bool, Bytes)>>,
}

impl Net {
    fn new(n: u32) -> Net {
        let ids: Vec<MemberId> = (1..=n).map(|i| MemberId::new(i, 0)).collect();
        let stacks = ids
            .iter()
            .map(|&me| {
                let layers: Vec<Box<dyn Layer>> = vec![
                    Box::new(Bundle::new(BundleParams::default())),
                    Box::new(Frag::new(FragParams { mtu: Some(1000), ..FragParams::default() })),
                    Box::new(Flow::new(FlowParams { window: WINDOW })),
                ];
                let mut s = Stack::new(layers, StackConfig { me, seed: 1, members: ids.clone() });
                s.join(Time::ZERO);
                s
            })
            .collect();
        Net { inbox: vec![VecDeque::new(); ids.len()], ids, stacks }
    }

    /// Moves every datagram the stacks produced into the inboxes.
    fn pump(&mut self) {
        for i in 0..self.stacks.len() {
            let from = self.ids[i];
            while let Some(out) = self.stacks[i].poll_net() {
                match out {
                    NetOut::Cast(m) => {
                        let b = m.to_bytes();
                        for j in 0..self.ids.len() {
                            if j != i {
                                self.inbox[j].push_back((from, true, b.clone()));
                            }
                        }
                    }
                    NetOut::Send(d, m) => {
                        let j = self.ids.iter().position(|&x| x == d).expect("member");
                        self.inbox[j].push_back((from, false, m.to_bytes()));
                    }
                    NetOut::View(_) => {}
                }
            }
        }
    }

    /// Member `i` processes up to `max` datagrams.
    fn process(&mut self, i: usize, now: Time, max: usize) {
        for _ in 0..max {
            let Some((from, cast, b)) = self.inbox[i].pop_front() else { break };
            self.stacks[i].receive(now, from, cast, b);
        }
    }
}

fn payload(k: u64) -> Bytes {
    (0..MSG).map(|i| (i as u64 * 31 + k) as u8).collect::<Vec<u8>>().into()
}

#[test]
fn slow_receiver_bounds_what_a_fast_sender_has_outstanding() {
    let mut net = Net::new(3);
    let total = 150u64;
    let mut accepted = 0u64;
    let mut delivered = [0u64; 3];
    let mut flow_events = Vec::new();
    let mut max_outstanding = 0u64;
    let mut would_block = 0;
    let mut now = Time::ZERO;
    for _tick in 0..20_000 {
        now = now + Duration::from_micros(100);
        for s in &mut net.stacks {
            s.handle_timeout(now);
        }
        // Member 0 casts as fast as it is allowed.
        for _ in 0..5 {
            if accepted == total {
                break;
            }
            match net.stacks[0].cast(now, payload(accepted + 1)) {
                Ok(seq) => {
                    accepted += 1;
                    assert_eq!(seq, accepted);
                }
                Err(CastError::WouldBlock) => {
                    would_block += 1;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        net.pump();
        // Member 1 is slow: one datagram per tick. Members 0 and 2 keep up.
        net.process(1, now, 1);
        net.process(0, now, usize::MAX);
        net.process(2, now, usize::MAX);
        net.pump();
        for (i, s) in net.stacks.iter_mut().enumerate() {
            while let Some(ev) = s.poll_event() {
                match ev {
                    AppEvent::Deliver { from, seq, payload: p } => {
                        assert_eq!(from, MemberId::new(1, 0));
                        delivered[i] += 1;
                        assert_eq!(seq, delivered[i], "FIFO at member {i}");
                        assert!(p == payload(seq), "payload {seq} at member {i}");
                    }
                    AppEvent::Flow { open } => {
                        assert_eq!(i, 0);
                        flow_events.push(open);
                    }
                    AppEvent::View(_) => {}
                    other => panic!("{other:?}"),
                }
            }
        }
        let outstanding = (accepted - delivered[1]) * MSG as u64;
        max_outstanding = max_outstanding.max(outstanding);
        // Credit covers `WINDOW` bytes and one message may pass the limit: the
        // window closes with it, so the application's next cast is refused.
        assert!(outstanding <= WINDOW + MSG as u64, "{outstanding} bytes outstanding");
        if delivered == [0, total, total] {
            break;
        }
    }
    assert_eq!(delivered, [0, total, total], "every cast delivered to the others");
    assert!(would_block > 0, "the sender was held back");
    assert!(flow_events.len() >= 2 && flow_events.chunks(2).all(|c| !c[0]));
    assert!(flow_events.last() == Some(&true));
    let s = &net.stacks[0];
    assert!(s.counter("flow", "blocked") >= 1);
    assert_eq!(s.counter("flow", "overdrafts"), 0);
    assert!(net.stacks[1].counter("flow", "credits_sent") > 0);
    assert_eq!(s.counter("frag", "fragmented"), total);
    eprintln!(
        "max outstanding {max_outstanding} bytes, {would_block} refusals, {} flow events",
        flow_events.len()
    );
}

#[test]
fn small_messages_are_bundled_and_large_ones_fragmented_end_to_end() {
    let mut net = Net::new(2);
    let mut now = Time::ZERO;
    let mut sent = Vec::new();
    for k in 0..40u64 {
        let n = if k % 10 == 9 { 5000 } else { 20 + k as usize };
        let p: Bytes = vec![k as u8; n].into();
        net.stacks[0].cast(now, p.clone()).expect("window open");
        sent.push(p);
    }
    net.pump();
    now = now + Duration::from_micros(200);
    net.stacks[0].handle_timeout(now);
    net.pump();
    let datagrams = net.inbox[1].len();
    net.process(1, now, usize::MAX);
    let mut got = Vec::new();
    while let Some(ev) = net.stacks[1].poll_event() {
        if let AppEvent::Deliver { payload, .. } = ev {
            got.push(payload);
        }
    }
    assert_eq!(got, sent);
    // 36 small casts share datagrams; each 5000-byte cast needs 6 fragments.
    assert!(datagrams < 36 / 2 + 4 * 6, "{datagrams} datagrams");
    assert!(net.stacks[0].counter("bundle", "bundles_sent") > 0);
    assert_eq!(net.stacks[0].counter("frag", "fragmented"), 4);
}
