//! The driver's cost per message per pass-through layer: stacks of 0, 1, 4 and 8
//! pass-through layers, one message down and back up. The per-layer figure is the
//! slope between stack heights: (t(8) - t(1)) / 7 per layer and round trip (down and
//! up), half that per layer traversal. Each traversal is a push of the event into the
//! driver's queue and a pop into the next layer's call (one copy of the event each).
//!
//! `cargo bench -p benches --bench driver -- --warm-up-time 1 --measurement-time 3`

use benches::{round_trip, stack};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use layers::pass::{Pass, PassParams};
use stack_core::{Bytes, Layer, Time};

fn passes(n: usize) -> Vec<Box<dyn Layer>> {
    (0..n).map(|_| Box::new(Pass::new(PassParams::default())) as Box<dyn Layer>).collect()
}

fn driver(c: &mut Criterion) {
    let mut g = c.benchmark_group("driver/pass-through");
    g.throughput(Throughput::Elements(1));
    let payload = Bytes::from(vec![0u8; 64]);
    for n in [0, 1, 4, 8] {
        let mut s = stack(passes(n));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| round_trip(&mut s, Time::ZERO, &payload))
        });
    }
    g.finish();
}

criterion_group!(benches, driver);
criterion_main!(benches);
