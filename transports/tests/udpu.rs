//! The udpu transport over 127.0.0.1 unicast. Every test bounds its time and message
//! count.

use stack_core::transport::UdpuSpec;
use stack_core::{AppEvent, Bytes, GroupConfig, GroupHandle, MemberId, StackConfig, TransportSpec};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use transports::{Runtime, TransportError};

fn spec(bind: &str, seeds: &[SocketAddr]) -> TransportSpec {
    TransportSpec::Udpu(UdpuSpec {
        bind: bind.into(),
        seeds: seeds.iter().map(|s| s.to_string()).collect(),
        recv_buffer: 1 << 20,
        send_buffer: 1 << 20,
        mtu: None,
    })
}

fn m(n: u32) -> MemberId {
    MemberId::new(n, 0)
}

fn config(t: TransportSpec, group: u32, me: MemberId, members: &[MemberId]) -> GroupConfig {
    GroupConfig::new(
        Vec::new(),
        t,
        group,
        StackConfig { me, seed: me.0, members: members.to_vec() },
    )
}

/// Free loopback ports: bound, read, released.
fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let socks: Vec<_> = (0..n).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    socks.iter().map(|s| s.local_addr().unwrap()).collect()
}

fn deliveries(h: &GroupHandle, n: usize, limit: Duration) -> Vec<(MemberId, u64, Bytes)> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < n {
        match h.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(AppEvent::Deliver { from, seq, payload }) => got.push((from, seq, payload)),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    got
}

#[test]
fn casts_fan_out_to_every_seed_and_back_to_the_sender() {
    const N: u64 = 20;
    let members = [m(1), m(2), m(3)];
    let addrs = free_addrs(3);
    let runtimes: Vec<Runtime> = (0..3).map(|_| Runtime::start().unwrap()).collect();
    let mut hs: Vec<GroupHandle> = (0..3)
        .map(|i| {
            let t = spec(&addrs[i].to_string(), &addrs);
            runtimes[i].join(config(t, 1, members[i], &members)).unwrap()
        })
        .collect();
    for (h, a) in hs.iter().zip(&addrs) {
        assert_eq!(h.local_addr(), Some(*a));
        assert!(matches!(h.recv_timeout(Duration::from_secs(5)), Ok(AppEvent::View(_))));
    }
    for h in hs.iter_mut() {
        for i in 1..=N {
            let p = Bytes::from(format!("{}:{i}", h.me()));
            assert_eq!(h.cast_blocking(p, Duration::from_secs(5)), Ok(i));
        }
    }
    for h in &hs {
        let got = deliveries(h, 3 * N as usize, Duration::from_secs(10));
        let mut per: BTreeMap<MemberId, Vec<u64>> = BTreeMap::new();
        for (from, seq, payload) in &got {
            assert_eq!(payload, &Bytes::from(format!("{from}:{seq}")));
            per.entry(*from).or_default().push(*seq);
        }
        for s in members {
            assert_eq!(per.get(&s), Some(&(1..=N).collect()), "{} from {s}", h.me());
        }
        // One datagram per peer, itself included, the seed list naming it too.
        assert_eq!(h.stats().datagrams_out, 3 * N);
    }
}

#[test]
fn peers_are_learned_from_their_datagrams() {
    let rt_a = Runtime::start().unwrap();
    let rt_b = Runtime::start().unwrap();
    let both = [m(1), m(2)];
    let mut a = rt_a.join(config(spec("127.0.0.1:0", &[]), 2, m(1), &both)).unwrap();
    let a_addr = a.local_addr().unwrap();
    let mut b = rt_b.join(config(spec("127.0.0.1:0", &[a_addr]), 2, m(2), &both)).unwrap();
    // b knows a (seed); a learns b from b's first cast.
    b.cast(Bytes::from_static(b"from b")).unwrap();
    for h in [&a, &b] {
        assert_eq!(
            deliveries(h, 1, Duration::from_secs(5)),
            vec![(m(2), 1, Bytes::from_static(b"from b"))]
        );
    }
    a.cast(Bytes::from_static(b"from a")).unwrap();
    for h in [&a, &b] {
        assert_eq!(
            deliveries(h, 1, Duration::from_secs(5)),
            vec![(m(1), 1, Bytes::from_static(b"from a"))]
        );
    }
    // A send to a learned member goes to its address alone.
    a.send(m(2), Bytes::from_static(b"p2p")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = None;
    while got.is_none() && Instant::now() < deadline {
        if let Ok(AppEvent::Receive { from, payload }) = b.recv_timeout(Duration::from_millis(50)) {
            got = Some((from, payload));
        }
    }
    assert_eq!(got, Some((m(1), Bytes::from_static(b"p2p"))));
    assert_eq!(a.stats().datagrams_out, 3, "cast to b and itself, then one send");
}

#[test]
fn foreign_datagrams_are_dropped_and_counted() {
    let rt = Runtime::start().unwrap();
    let h = rt.join(config(spec("127.0.0.1:0", &[]), 3, m(1), &[m(1)])).unwrap();
    let to = h.local_addr().unwrap();
    let raw = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for d in [&b"garbage"[..], b"", b"St", b"St\x01\x00\x00\x00\x00\x03"] {
        raw.send_to(d, to).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.socket_stats().foreign_dropped < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(h.socket_stats().foreign_dropped, 4);
    assert!(matches!(h.try_recv(), Ok(AppEvent::View(_))));
    assert!(h.try_recv().is_err(), "nothing delivered");
}

#[test]
fn a_bind_address_in_use_is_an_error() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let rt = Runtime::start().unwrap();
    let e = rt.join(config(spec(&addr.to_string(), &[]), 4, m(1), &[])).err().expect("an error");
    assert!(matches!(e, TransportError::PortInUse(a) if a == addr), "{e}");
    let e = rt.join(config(spec("127.0.0.1", &[]), 4, m(1), &[])).err().expect("an error");
    assert!(matches!(e, TransportError::BadAddress { .. }), "{e}");
}

/// Installs a view of this member alone when a cast ending in "shrink" arrives.
struct Shrink;

impl stack_core::Layer for Shrink {
    fn name(&self) -> &'static str {
        "shrink"
    }
    fn up(&mut self, ev: stack_core::Up, ctx: &mut stack_core::Ctx) {
        if let stack_core::Up::Cast(_, msg) = &ev {
            if msg.body().ends_with(b"shrink") {
                let v = stack_core::View::new(2, vec![ctx.me()], stack_core::ViewReason::Leave);
                ctx.down(stack_core::Down::View(v));
            }
        }
        ctx.up(ev)
    }
}

#[test]
fn members_outside_a_new_view_are_forgotten_but_seeds_are_kept() {
    let rt_a = Runtime::start().unwrap();
    let rt_b = Runtime::start().unwrap();
    let rt_c = Runtime::start().unwrap();
    let all = [m(1), m(2), m(3)];
    let layered = |t, me| {
        let mut c = config(t, 5, me, &all);
        c.layers = vec![Box::new(Shrink)];
        c
    };
    let c = rt_c.join(layered(spec("127.0.0.1:0", &[]), m(3))).unwrap();
    let c_addr = c.local_addr().unwrap();
    // a's seed is c; b is learned.
    let mut a = rt_a.join(layered(spec("127.0.0.1:0", &[c_addr]), m(1))).unwrap();
    let a_addr = a.local_addr().unwrap();
    let mut b = rt_b.join(layered(spec("127.0.0.1:0", &[a_addr]), m(2))).unwrap();
    b.cast(Bytes::from_static(b"hello")).unwrap();
    assert_eq!(deliveries(&a, 1, Duration::from_secs(5)).len(), 1);
    let out = |h: &GroupHandle| h.stats().datagrams_out;
    a.cast(Bytes::from_static(b"one")).unwrap();
    assert_eq!(deliveries(&a, 1, Duration::from_secs(5)).len(), 1);
    assert_eq!(out(&a), 3, "a, b (learned), c (seed)");
    a.cast(Bytes::from_static(b"shrink")).unwrap();
    assert_eq!(deliveries(&a, 1, Duration::from_secs(5)).len(), 1);
    a.cast(Bytes::from_static(b"two")).unwrap();
    assert_eq!(deliveries(&a, 1, Duration::from_secs(5)).len(), 1);
    assert_eq!(out(&a), 3 + 3 + 2, "after the view: a and c (seed), not b");
    drop(b);
}
