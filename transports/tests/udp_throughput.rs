//! A short measurement, run by hand: `cargo test --release -p transports --test
//! udp_throughput -- --ignored --nocapture`. Two runtimes, stacks without layers
//! (no reliability: losses are reported, not retried), 64-byte casts over loopback
//! multicast for about one second.

use stack_core::transport::UdpSpec;
use stack_core::{AppEvent, Bytes, CastError, GroupConfig, MemberId, StackConfig, TransportSpec};
use std::time::{Duration, Instant};
use transports::Runtime;

#[test]
#[ignore]
fn loopback_multicast_casts_per_second() {
    let t = TransportSpec::Udp(UdpSpec {
        group: "239.255.77.9:47419".into(),
        interface: "127.0.0.1".into(),
        ttl: 0,
        loopback: true,
        recv_buffer: 8 << 20,
        send_buffer: 8 << 20,
        mtu: None,
    });
    let members = [MemberId::new(1, 0), MemberId::new(2, 0)];
    let rts = [Runtime::start().unwrap(), Runtime::start().unwrap()];
    let cfg = |me| {
        GroupConfig::new(
            Vec::new(),
            t.clone(),
            9,
            StackConfig { me, seed: 1, members: members.to_vec() },
        )
    };
    let mut tx = rts[0].join(cfg(members[0])).unwrap();
    let rx = rts[1].join(cfg(members[1])).unwrap();
    let payload = Bytes::from(vec![7u8; 64]);
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        match tx.cast(payload.clone()) {
            Ok(_) => sent += 1,
            Err(CastError::WouldBlock) => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
    let mut got = 0u64;
    let deadline = Instant::now() + Duration::from_secs(2);
    while got < sent && Instant::now() < deadline {
        if let Ok(AppEvent::Deliver { .. }) = rx.recv_timeout(Duration::from_millis(100)) {
            got += 1;
        }
    }
    let mut own = 0u64;
    while let Ok(ev) = tx.recv_timeout(Duration::from_millis(200)) {
        own += matches!(ev, AppEvent::Deliver { .. }) as u64;
    }
    println!("the sender delivered {own} of its own casts");
    let secs = start.elapsed().as_secs_f64().min(1.0);
    println!(
        "sent {sent} casts in 1 s ({:.0}/s), received {got} ({:.2}% lost); socket out {:?}",
        sent as f64 / secs,
        100.0 * (sent - got) as f64 / sent.max(1) as f64,
        tx.socket_stats()
    );
    assert!(got > 0);
}
