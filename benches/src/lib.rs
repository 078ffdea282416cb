//! Shared helpers for Strata's criterion benchmarks (`benches/benches/*.rs`).
//!
//! The loop every in-process benchmark measures: the application casts, the stack's
//! datagram goes back in as if received from the network, and the delivery is taken
//! by the application. No sockets, no clock: time is injected.

use stack_core::{AppEvent, Bytes, Layer, MemberId, NetOut, Stack, StackConfig, Time};

/// A joined one-member stack over `layers` (bottom to top).
pub fn stack(layers: Vec<Box<dyn Layer>>) -> Stack {
    let me = MemberId::new(1, 0);
    let mut s = Stack::new(layers, StackConfig { me, seed: 1, members: vec![me] });
    s.join(Time::ZERO);
    while s.poll_net().is_some() {}
    while s.poll_event().is_some() {}
    s
}

/// One cast down through every layer and back up through every layer. Returns the
/// number of messages delivered (1 unless a layer holds it back).
#[inline]
pub fn round_trip(s: &mut Stack, now: Time, payload: &Bytes) -> usize {
    let me = s.me();
    let _ = s.cast(now, payload.clone());
    while let Some(out) = s.poll_net() {
        if let NetOut::Cast(m) = out {
            s.receive(now, me, true, m.to_bytes());
        }
    }
    let mut n = 0;
    while let Some(ev) = s.poll_event() {
        n += matches!(ev, AppEvent::Deliver { .. }) as usize;
    }
    n
}

/// Like [`round_trip`], for layers that hold datagrams back for a short while
/// (bundling): casts `burst` messages at `now`, then fires the stack's timers that are
/// due within `hold` and passes what they release back in. Returns the deliveries.
pub fn burst_round_trip(
    s: &mut Stack,
    now: Time,
    payload: &Bytes,
    burst: usize,
    hold: std::time::Duration,
) -> usize {
    let me = s.me();
    let mut n = 0;
    for _ in 0..burst {
        let _ = s.cast(now, payload.clone());
    }
    let until = now + hold;
    loop {
        while let Some(out) = s.poll_net() {
            if let NetOut::Cast(m) = out {
                s.receive(now, me, true, m.to_bytes());
            }
        }
        while let Some(ev) = s.poll_event() {
            n += matches!(ev, AppEvent::Deliver { .. }) as usize;
        }
        match s.next_timeout() {
            Some(t) if t <= until => s.handle_timeout(t),
            _ => break,
        }
    }
    n
}
