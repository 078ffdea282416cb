//! CPU cost per delivered message of each shipped stack, free of the kernel: three
//! members over the in-memory network ([`benches::Mesh`]: no loss, no delay, virtual
//! time) each cast 1000 payloads of 64 B or 1 KiB as fast as the stack takes them,
//! until every member delivered every cast. Joining is outside the timed part; the
//! figure is the wall time of the casting phase per delivery (a cast is delivered
//! once per member, the sender included).
//!
//! `cargo bench -p benches --bench stacks -- --warm-up-time 1 --measurement-time 5`

use benches::Mesh;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use stack_core::descriptor::Descriptor;
use stack_core::Bytes;
use std::time::{Duration, Instant};

const MEMBERS: usize = 3;
const CASTS: u64 = 1000;
const STACKS: [&str; 6] = ["fifo", "vsync", "causal", "total", "total-lamport", "safe"];

fn descriptor(name: &str) -> Descriptor {
    let path = format!("{}/../stacks/{name}.ron", env!("CARGO_MANIFEST_DIR"));
    Descriptor::load(std::path::Path::new(&path), &layers::registry()).expect("shipped stack")
}

/// Times `iters` deliveries: as many fresh meshes as needed, joining untimed.
fn timed(desc: &Descriptor, payload: &Bytes, iters: u64) -> Duration {
    let reg = layers::registry();
    let (mut total, mut done) = (Duration::ZERO, 0u64);
    while done < iters {
        let mut mesh = Mesh::new(MEMBERS, || desc.build_layers(&reg).expect("layers"));
        assert!(mesh.join(), "{}: one view", desc.name);
        let start = Instant::now();
        let all = mesh.flood(CASTS, payload, 16, Duration::from_secs(60));
        total += start.elapsed();
        assert!(all, "{}: every cast delivered everywhere", desc.name);
        done += mesh.delivered;
    }
    Duration::from_nanos((total.as_nanos() * iters as u128 / done as u128) as u64)
}

fn stacks(c: &mut Criterion) {
    for size in [64usize, 1024] {
        let payload = Bytes::from(vec![7u8; size]);
        let mut g = c.benchmark_group(format!("stacks/{MEMBERS}-members/{size}B"));
        g.throughput(Throughput::Elements(1));
        for name in STACKS {
            let desc = descriptor(name);
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| timed(&desc, &payload, iters))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, stacks);
criterion_main!(benches);
