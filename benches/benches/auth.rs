//! Cost of the `auth` layer per message: a one-member stack of that one layer against
//! the empty stack, a cast going down (counter, HMAC-SHA256 over the datagram, header
//! pushed), out as a datagram, back in as if received (header decoded, MAC recomputed
//! and compared, replay window checked) and up to the application. The layer's figure
//! is the difference between the two, for a small message and a full datagram.
//!
//! A fresh stack is built every [`CHUNK`] messages (outside the timed part), as in
//! the `layers` benchmark.
//!
//! `cargo bench -p benches --bench auth -- --warm-up-time 1 --measurement-time 3`

use benches::{round_trip, stack};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use layers::auth::{Auth, AuthKey, AuthParams};
use stack_core::{Bytes, Layer, Time};
use std::time::{Duration, Instant};

/// Messages per stack before it is replaced.
const CHUNK: u64 = 4096;

type Make = fn() -> Vec<Box<dyn Layer>>;

fn empty() -> Vec<Box<dyn Layer>> {
    Vec::new()
}

fn auth() -> Vec<Box<dyn Layer>> {
    let key = AuthKey::new((0u8..32).collect()).expect("a 32-byte key");
    vec![Box::new(Auth::new(AuthParams::with_key(key)))]
}

/// Times `iters` round trips, building a fresh stack every [`CHUNK`].
fn timed(make: Make, payload: &Bytes, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    let mut now = Time::ZERO;
    while done < iters {
        let mut s = stack(make());
        let n = CHUNK.min(iters - done);
        let start = Instant::now();
        for _ in 0..n {
            now = now + Duration::from_micros(1);
            let got = round_trip(&mut s, now, payload);
            assert_eq!(got, 1, "every message is delivered within the call");
            std::hint::black_box(got);
        }
        total += start.elapsed();
        done += n;
    }
    total
}

fn auth_cost(c: &mut Criterion) {
    let small = Bytes::from(vec![7u8; 64]);
    let full = Bytes::from(vec![7u8; 1400]);
    let cases: [(&str, Make, &Bytes); 4] = [
        ("empty/64B", empty, &small),
        ("auth/64B", auth, &small),
        ("empty/1400B", empty, &full),
        ("auth/1400B", auth, &full),
    ];
    let mut g = c.benchmark_group("auth/round-trip");
    g.throughput(Throughput::Elements(1));
    for (name, make, payload) in cases {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| timed(make, payload, iters))
        });
    }
    g.finish();
}

criterion_group!(benches, auth_cost);
criterion_main!(benches);
