//! The udp transport over loopback multicast (interface 127.0.0.1, groups in
//! 239.255.77.0/24). Every test bounds its time and message count. If this host
//! cannot loop multicast back, the multicast tests print why and skip.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use stack_core::group::SendState;
use stack_core::packet::PacketHeader;
use stack_core::transport::UdpSpec;
use stack_core::{
    AppEvent, Bytes, CastError, GroupConfig, GroupHandle, Header, MemberId, StackConfig,
    TraceWriter, TransportSpec,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use transports::{Runtime, TransportError};

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn spec(group: &str) -> TransportSpec {
    TransportSpec::Udp(UdpSpec {
        group: group.into(),
        interface: "127.0.0.1".into(),
        ttl: 0,
        loopback: true,
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

/// A socket that sends to loopback multicast, as a foreign process would.
fn raw_sender() -> Socket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_multicast_if_v4(&LOOPBACK).unwrap();
    s.set_multicast_ttl_v4(0).unwrap();
    s.set_multicast_loop_v4(true).unwrap();
    s.bind(&SockAddr::from(SocketAddrV4::new(LOOPBACK, 0))).unwrap();
    s
}

/// Whether a multicast sent on 127.0.0.1 comes back to a socket joined there.
fn multicast_works(group: SocketAddrV4) -> bool {
    let r = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    r.set_reuse_address(true).unwrap();
    r.set_reuse_port(true).unwrap();
    if r.bind(&SockAddr::from(group)).is_err()
        || r.join_multicast_v4(group.ip(), &LOOPBACK).is_err()
    {
        return false;
    }
    r.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let _ = raw_sender().send_to(b"probe", &SockAddr::from(group));
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 16];
    r.recv_from(&mut buf).is_ok()
}

macro_rules! require_multicast {
    ($group:expr) => {
        if !multicast_works($group.parse().unwrap()) {
            eprintln!(
                "SKIPPED: loopback multicast does not work on this host (IP_MULTICAST_IF \
                 127.0.0.1 and a membership on 127.0.0.1 did not loop a datagram back)"
            );
            return;
        }
    };
}

/// Collects deliveries until `n` arrived or `limit` passed: (from, seq, payload).
fn deliveries(h: &GroupHandle, n: usize, limit: Duration) -> Vec<(MemberId, u64, Bytes)> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match h.recv_timeout(left) {
            Ok(AppEvent::Deliver { from, seq, payload }) => got.push((from, seq, payload)),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    got
}

/// Collects the next `n` events (fewer if `limit` passes first).
fn collect(h: &GroupHandle, n: usize, limit: Duration) -> Vec<AppEvent> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < n {
        match h.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(e) => got.push(e),
            Err(_) => break,
        }
    }
    got
}

/// Waits for the first view.
fn first_view(h: &GroupHandle) -> stack_core::View {
    match h.recv_timeout(Duration::from_secs(5)) {
        Ok(AppEvent::View(v)) => v,
        other => panic!("expected a view, got {other:?}"),
    }
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);
impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn casts_reach_every_member_including_the_sender_across_runtimes() {
    const GROUP: &str = "239.255.77.1:47411";
    require_multicast!(GROUP);
    const N: u64 = 20;
    let members = [m(1), m(2), m(3)];
    let trace = Shared::default();
    let runtimes: Vec<Runtime> = (0..3).map(|_| Runtime::start().unwrap()).collect();
    let mut handles: Vec<GroupHandle> = runtimes
        .iter()
        .zip(members)
        .map(|(rt, me)| {
            let mut c = config(spec(GROUP), 1, me, &members);
            if me == m(1) {
                c = c.with_trace(TraceWriter::new(me, Box::new(trace.clone())));
            }
            rt.join(c).unwrap()
        })
        .collect();
    for h in &handles {
        assert_eq!(&first_view(h).members[..], &members[..]);
        assert_eq!(h.send_state(), SendState::Open);
    }
    for h in handles.iter_mut() {
        for i in 1..=N {
            let payload = Bytes::from(format!("{}:{i}", h.me()));
            assert_eq!(h.cast_blocking(payload, Duration::from_secs(5)), Ok(i));
        }
    }
    for h in &handles {
        let got = deliveries(h, 3 * N as usize, Duration::from_secs(10));
        let mut per: BTreeMap<MemberId, Vec<u64>> = BTreeMap::new();
        for (from, seq, payload) in &got {
            assert_eq!(payload, &Bytes::from(format!("{from}:{seq}")));
            per.entry(*from).or_default().push(*seq);
        }
        for s in members {
            assert_eq!(per.get(&s), Some(&(1..=N).collect()), "{} from {s}", h.me());
        }
        assert!(h.counters().contains(&("stack", "delivered", 3 * N)));
        let st = h.stats();
        assert_eq!((st.datagrams_in, st.datagrams_out, st.foreign_dropped), (3 * N, N, 0));
        assert!(h.socket_stats().recv_buffer > 0);
    }
    handles[0].end_trace();
    let text = String::from_utf8(trace.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("\"ev\":\"view\""), "{text}");
    assert_eq!(text.matches("\"ev\":\"send\"").count(), N as usize);
    assert_eq!(text.matches("\"ev\":\"deliver\"").count(), 3 * N as usize);
    assert!(text.contains("\"ev\":\"end\""));
}

#[test]
fn two_groups_share_one_socket_and_keep_their_deliveries_apart() {
    const GROUP: &str = "239.255.77.2:47412";
    require_multicast!(GROUP);
    let rt = Runtime::start().unwrap();
    let both = [m(1), m(2)];
    let mut a: Vec<GroupHandle> =
        both.iter().map(|&me| rt.join(config(spec(GROUP), 10, me, &both)).unwrap()).collect();
    let mut b: Vec<GroupHandle> =
        both.iter().map(|&me| rt.join(config(spec(GROUP), 11, me, &both)).unwrap()).collect();
    let addr = a[0].local_addr().unwrap();
    assert!(a.iter().chain(&b).all(|h| h.local_addr() == Some(addr)), "one socket");
    for h in a.iter().chain(&b) {
        first_view(h);
    }
    for i in 0..5 {
        a[0].cast(Bytes::from(format!("A{i}"))).unwrap();
        b[1].cast(Bytes::from(format!("B{i}"))).unwrap();
    }
    let quiet = Duration::from_millis(300);
    for (hs, tag, sender) in [(&mut a, "A", m(1)), (&mut b, "B", m(2))] {
        for h in hs.iter() {
            let got = deliveries(h, 5, Duration::from_secs(5));
            let want: Vec<_> =
                (0..5).map(|i| (sender, i + 1, Bytes::from(format!("{tag}{i}")))).collect();
            assert_eq!(got, want, "{tag} at {}", h.me());
            assert!(deliveries(h, 1, quiet).is_empty(), "nothing of the other group");
        }
    }
    // One socket: both groups count the same socket datagrams.
    assert_eq!(a[0].socket_stats().datagrams_out, 10);
    assert_eq!(b[0].socket_stats().datagrams_in, 10);
}

#[test]
fn foreign_datagrams_are_dropped_and_counted() {
    const GROUP: &str = "239.255.77.3:47413";
    require_multicast!(GROUP);
    let rt = Runtime::start().unwrap();
    let h = rt.join(config(spec(GROUP), 20, m(1), &[m(1)])).unwrap();
    first_view(&h);
    let enc = |hdr: PacketHeader| {
        let mut v = vec![0; hdr.encoded_len()];
        hdr.encode(&mut v);
        v
    };
    let good = enc(PacketHeader { group: 20, sender: m(5), dest: None });
    let mut wrong_magic = good.clone();
    wrong_magic[0] = b'X';
    let mut wrong_version = good.clone();
    wrong_version[2] = 9;
    let unknown_group = enc(PacketHeader { group: 999, sender: m(5), dest: None });
    let not_ours = enc(PacketHeader { group: 20, sender: m(5), dest: Some(m(9)) });
    let foreign: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![],
        good[..10].to_vec(),
        wrong_magic,
        wrong_version,
        unknown_group,
        not_ours,
    ];
    let raw = raw_sender();
    let to = SockAddr::from(GROUP.parse::<SocketAddrV4>().unwrap());
    for d in &foreign {
        raw.send_to(d, &to).unwrap();
    }
    // And garbage straight to the member's unicast address.
    let uni = SockAddr::from(h.local_addr().unwrap());
    raw.send_to(&[0xff; 40], &uni).unwrap();
    let want = foreign.len() as u64 + 1;
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.socket_stats().foreign_dropped < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(h.socket_stats().foreign_dropped, want);
    assert_eq!(h.stats().foreign_dropped, 1, "the send for m9 is counted by its group");
    assert_eq!(h.try_recv().ok(), None, "nothing delivered");
    // The loop is still alive: a well-formed datagram (header, cast number 1, body).
    let mut ok = good.clone();
    ok.push(1);
    ok.extend_from_slice(b"hi");
    raw.send_to(&ok, &to).unwrap();
    assert_eq!(
        deliveries(&h, 1, Duration::from_secs(5)),
        vec![(m(5), 1, Bytes::from_static(b"hi"))]
    );
}

#[test]
fn point_to_point_sends_reach_only_their_destination() {
    const GROUP: &str = "239.255.77.4:47414";
    require_multicast!(GROUP);
    let members = [m(1), m(2), m(3)];
    let runtimes: Vec<Runtime> = (0..3).map(|_| Runtime::start().unwrap()).collect();
    let mut hs: Vec<GroupHandle> = runtimes
        .iter()
        .zip(members)
        .map(|(rt, me)| rt.join(config(spec(GROUP), 30, me, &members)).unwrap())
        .collect();
    for h in &hs {
        first_view(h);
    }
    // m1's address is not known yet: the first send goes by multicast with its
    // destination set; after m1 casts, m2 sends to its unicast address.
    hs[1].send(m(1), Bytes::from_static(b"first")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while hs[2].stats().foreign_dropped == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    hs[0].cast(Bytes::from_static(b"hello")).unwrap();
    let hello = AppEvent::Deliver { from: m(1), seq: 1, payload: Bytes::from_static(b"hello") };
    for h in &hs[1..] {
        assert_eq!(collect(h, 1, Duration::from_secs(5)), vec![hello.clone()]);
    }
    hs[1].send(m(1), Bytes::from_static(b"second")).unwrap();
    let mut got = collect(&hs[0], 3, Duration::from_secs(5));
    got.sort_by_key(|e| format!("{e:?}"));
    let recv = |p: &'static [u8]| AppEvent::Receive { from: m(2), payload: Bytes::from_static(p) };
    assert_eq!(got, vec![hello, recv(b"first"), recv(b"second")]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(hs[2].try_recv().ok(), None, "m3 receives no send");
    assert_eq!(hs[2].stats().foreign_dropped, 1, "the multicast send was for m1");
}

#[test]
fn loopback_off_still_delivers_own_casts_in_process() {
    const GROUP: &str = "239.255.77.5:47415";
    require_multicast!(GROUP);
    let rt = Runtime::start().unwrap();
    let t = match spec(GROUP) {
        TransportSpec::Udp(u) => TransportSpec::Udp(UdpSpec { loopback: false, ..u }),
        _ => unreachable!(),
    };
    let both = [m(1), m(2)];
    let mut hs: Vec<GroupHandle> =
        both.iter().map(|&me| rt.join(config(t.clone(), 40, me, &both)).unwrap()).collect();
    for h in &hs {
        first_view(h);
    }
    hs[0].cast(Bytes::from_static(b"x")).unwrap();
    hs[0].send(m(2), Bytes::from_static(b"y")).unwrap();
    assert_eq!(
        collect(&hs[0], 1, Duration::from_secs(5)),
        vec![AppEvent::Deliver { from: m(1), seq: 1, payload: Bytes::from_static(b"x") }]
    );
    assert_eq!(
        collect(&hs[1], 2, Duration::from_secs(5)),
        vec![
            AppEvent::Deliver { from: m(1), seq: 1, payload: Bytes::from_static(b"x") },
            AppEvent::Receive { from: m(1), payload: Bytes::from_static(b"y") }
        ]
    );
}

#[test]
fn leaving_and_stopping_end_the_member() {
    const GROUP: &str = "239.255.77.6:47416";
    let rt = Runtime::start().unwrap();
    let mut h = rt.join(config(spec(GROUP), 50, m(1), &[m(1)])).unwrap();
    first_view(&h);
    h.leave();
    assert_eq!(h.recv_timeout(Duration::from_secs(5)), Ok(AppEvent::Exit));
    assert_eq!(h.cast(Bytes::new()), Err(CastError::Exited));
    let h2 = rt.join(config(spec(GROUP), 50, m(1), &[m(1)])).unwrap();
    first_view(&h2);
    rt.stop();
    assert!(h2.recv_timeout(Duration::from_secs(5)).is_err(), "events end with the runtime");
    assert_eq!(h2.send_state(), SendState::Exited);
}

#[test]
fn set_up_errors_are_reported() {
    let rt = Runtime::start().unwrap();
    let err = |t: TransportSpec| rt.join(config(t, 1, m(1), &[])).err().expect("an error");
    assert!(matches!(err(spec("127.0.0.1:47417")), TransportError::NotMulticast(_)));
    assert!(matches!(err(spec("239.255.77.7")), TransportError::BadAddress { .. }));
    let bad_if = TransportSpec::Udp(UdpSpec {
        interface: "192.0.2.123".into(),
        ..match spec("239.255.77.7:47417") {
            TransportSpec::Udp(u) => u,
            _ => unreachable!(),
        }
    });
    let e = err(bad_if);
    assert!(matches!(e, TransportError::BadInterface { .. }), "{e}");
    assert!(matches!(
        err(TransportSpec::Sim(Default::default())),
        TransportError::Unsupported("Sim")
    ));
    let _h = rt.join(config(spec("239.255.77.7:47417"), 1, m(1), &[])).unwrap();
    assert!(matches!(
        err(spec("239.255.77.7:47417")),
        TransportError::DuplicateMember { group: 1, .. }
    ));
    // A port taken by a socket without SO_REUSEPORT.
    let taken = std::net::UdpSocket::bind("0.0.0.0:47418").unwrap();
    let e = rt.join(config(spec("239.255.77.7:47418"), 2, m(1), &[])).err().expect("an error");
    assert!(matches!(e, TransportError::PortInUse(SocketAddr::V4(a)) if a.port() == 47418), "{e}");
    drop(taken);
}

/// `(layer, counter)` of a member's stack.
fn counter(h: &GroupHandle, layer: &str, name: &str) -> Option<u64> {
    h.counters().into_iter().find(|c| c.0 == layer && c.1 == name).map(|c| c.2)
}

#[test]
fn datagrams_are_sized_from_the_interface_mtu() {
    const GROUP: &str = "239.255.77.8:47418";
    require_multicast!(GROUP);
    use layers::bundle::{Bundle, BundleParams};
    use layers::frag::{Frag, FragHdr, FragParams};
    use layers::nak::{Nak, NakParams};
    use stack_core::Layer;
    let stack = || -> Vec<Box<dyn Layer>> {
        vec![
            Box::new(Bundle::new(BundleParams::default())),
            Box::new(Nak::new(NakParams::default())),
            Box::new(Frag::new(FragParams::default())),
        ]
    };
    let lo = std::net::IpAddr::V4(LOOPBACK);
    let max = transports::mtu::max_datagram(lo, transports::mtu::path_mtu(lo, None));
    assert!(max > 60_000, "loopback carries large datagrams: {max}");
    let both = [m(1), m(2)];
    let rts = [Runtime::start().unwrap(), Runtime::start().unwrap()];
    let mut hs: Vec<GroupHandle> = rts
        .iter()
        .zip(both)
        .map(|(rt, me)| {
            let c = config(spec(GROUP), 20, me, &both);
            rt.join(GroupConfig { layers: stack(), ..c }).unwrap()
        })
        .collect();
    for h in &hs {
        first_view(h);
    }
    // Bundle makes datagrams as large as the path carries; frag passes down whole
    // what fits one with the headers below it.
    let below_frag = Bundle::new(BundleParams::default()).header_max()
        + Nak::new(NakParams::default()).header_max();
    assert_eq!(counter(&hs[0], "bundle", "max_bytes"), Some(max as u64));
    assert_eq!(counter(&hs[0], "frag", "mtu"), Some((max - below_frag - FragHdr::MAX_LEN) as u64));
    // An 8 KiB message goes whole; a 100 KiB one is cut in two.
    let small = Bytes::from(vec![1u8; 8 << 10]);
    let large = Bytes::from((0..100 << 10).map(|i| i as u8).collect::<Vec<u8>>());
    hs[0].cast_blocking(small.clone(), Duration::from_secs(5)).unwrap();
    hs[0].cast_blocking(large.clone(), Duration::from_secs(5)).unwrap();
    let got = deliveries(&hs[1], 2, Duration::from_secs(10));
    let payloads: Vec<Bytes> = got.into_iter().map(|d| d.2).collect();
    assert_eq!(payloads, vec![small, large]);
    assert_eq!(counter(&hs[0], "frag", "fragmented"), Some(1));
    assert_eq!(counter(&hs[0], "frag", "fragments_sent"), Some(2));
}
