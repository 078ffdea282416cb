//! A fixed number of round trips through `n` pass-through layers, for instruction
//! counting (`valgrind --tool=callgrind target/release/examples/driver_count 8 100000`):
//! the difference between two heights divided by the layers and the round trips is the
//! driver's instructions per layer per message (down and up).

use benches::{round_trip, stack};
use layers::pass::{Pass, PassParams};
use stack_core::{Bytes, Layer, Time};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let iters: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let layers: Vec<Box<dyn Layer>> =
        (0..n).map(|_| Box::new(Pass::new(PassParams::default())) as Box<dyn Layer>).collect();
    let mut s = stack(layers);
    let payload = Bytes::from(vec![0u8; 64]);
    let t = std::time::Instant::now();
    let mut delivered = 0;
    for _ in 0..iters {
        delivered += round_trip(&mut s, Time::ZERO, &payload);
    }
    let ns = t.elapsed().as_nanos() as f64 / iters as f64;
    println!("{n} layers: {delivered} delivered, {ns:.1} ns per round trip");
}
