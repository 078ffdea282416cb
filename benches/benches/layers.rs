//! Cost of each layer of the fifo stack, per message: a one-member stack of that one
//! layer against the empty stack, a cast going down, out as a datagram, back in as if
//! received and up to the application. The layer's figure is the difference between
//! the two (its header pushed and popped, its bookkeeping, its timers).
//!
//! - `nak`: numbering, keeping the cast for retransmission, the own copy dropped.
//! - `frag`: a 4000-byte message cut into 4 fragments (mtu 1300) and reassembled,
//!   against the empty stack carrying the same 4000 bytes whole.
//! - `stable`, `flow`: their header and bookkeeping (one member: no gossip, no credit).
//! - `bundle`: one message per datagram (flushed by its 200 µs timer), and 16 small
//!   messages packed into one datagram (per message).
//!
//! A fresh stack is built every [`CHUNK`] messages (outside the timed part), so
//! buffers that only stability would free stay small.
//!
//! `cargo bench -p benches --bench layers -- --warm-up-time 1 --measurement-time 3`

use benches::{burst_round_trip, stack};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use layers::bundle::{Bundle, BundleParams};
use layers::flow::{Flow, FlowParams};
use layers::frag::{Frag, FragParams};
use layers::nak::{Nak, NakParams};
use layers::stable::{Stable, StableParams};
use stack_core::{Bytes, Layer, Time};
use std::time::{Duration, Instant};

/// Messages per stack before it is replaced.
const CHUNK: u64 = 4096;

type Make = fn() -> Vec<Box<dyn Layer>>;

fn empty() -> Vec<Box<dyn Layer>> {
    Vec::new()
}
fn nak() -> Vec<Box<dyn Layer>> {
    vec![Box::new(Nak::new(NakParams::default()))]
}
fn frag() -> Vec<Box<dyn Layer>> {
    vec![Box::new(Frag::new(FragParams { mtu: Some(1300), ..FragParams::default() }))]
}
fn stable() -> Vec<Box<dyn Layer>> {
    vec![Box::new(Stable::new(StableParams::default()))]
}
fn flow() -> Vec<Box<dyn Layer>> {
    vec![Box::new(Flow::new(FlowParams::default()))]
}
fn bundle() -> Vec<Box<dyn Layer>> {
    vec![Box::new(Bundle::new(BundleParams {
        max_bytes: Some(1400),
        delay_us: 200,
        ..BundleParams::default()
    }))]
}

/// Times `iters` messages, `burst` per call, building a fresh stack every [`CHUNK`].
fn timed(make: Make, payload: &Bytes, burst: usize, iters: u64) -> Duration {
    let hold = Duration::from_micros(500);
    let mut total = Duration::ZERO;
    let mut done = 0;
    let mut now = Time::ZERO;
    while done < iters {
        let mut s = stack(make());
        let n = CHUNK.min(iters - done);
        let calls = n.div_ceil(burst as u64);
        let start = Instant::now();
        for _ in 0..calls {
            now = now + Duration::from_millis(1);
            let got = burst_round_trip(&mut s, now, payload, burst, hold);
            assert_eq!(got, burst, "every message is delivered within the call");
            std::hint::black_box(got);
        }
        total += start.elapsed();
        done += calls * burst as u64;
    }
    Duration::from_nanos((total.as_nanos() * iters as u128 / done.max(1) as u128) as u64)
}

fn layers(c: &mut Criterion) {
    let small = Bytes::from(vec![7u8; 64]);
    let large = Bytes::from(vec![7u8; 4000]);
    let cases: [(&str, Make, &Bytes, usize); 9] = [
        ("empty/64B", empty, &small, 1),
        ("nak/64B", nak, &small, 1),
        ("stable/64B", stable, &small, 1),
        ("flow/64B", flow, &small, 1),
        ("bundle/64B", bundle, &small, 1),
        ("empty/64Bx16", empty, &small, 16),
        ("bundle/64Bx16", bundle, &small, 16),
        ("empty/4000B", empty, &large, 1),
        ("frag/4000B", frag, &large, 1),
    ];
    let mut g = c.benchmark_group("layers/round-trip");
    g.throughput(Throughput::Elements(1));
    for (name, make, payload, burst) in cases {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| timed(make, payload, burst, iters))
        });
    }
    g.finish();
}

criterion_group!(benches, layers);
criterion_main!(benches);
