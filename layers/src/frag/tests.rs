use super::*;
use stack_core::testing::Harness;
use stack_core::{Bytes, View, ViewReason};

const A: MemberId = MemberId::new(1, 0);
const B: MemberId = MemberId::new(2, 0);
const C: MemberId = MemberId::new(3, 0);

fn frag(mtu: usize) -> Harness<Frag> {
    Harness::new(Frag::new(FragParams { mtu: Some(mtu), ..FragParams::default() }))
}

fn payload(n: usize) -> Bytes {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect::<Vec<u8>>().into()
}

/// What the layer passed down, as the bytes a receiver would see.
fn wire_casts(h: &mut Harness<Frag>) -> Vec<Bytes> {
    h.take_down()
        .into_iter()
        .map(|d| match d {
            Down::Cast(m) => m.to_bytes(),
            other => panic!("expected a cast, got {other:?}"),
        })
        .collect()
}

fn up_casts(h: &mut Harness<Frag>) -> Vec<(MemberId, Bytes)> {
    h.take_up()
        .into_iter()
        .map(|u| match u {
            Up::Cast(from, m) => (from, m.into_body()),
            other => panic!("expected a cast, got {other:?}"),
        })
        .collect()
}

fn feed(h: &mut Harness<Frag>, from: MemberId, frags: &[Bytes]) {
    for f in frags {
        h.up(Up::Cast(from, Msg::from_wire(f.clone())));
    }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn small_message_gets_one_byte_whole_header() {
    let mut h = frag(1400);
    h.down(Down::Cast(Msg::new(Bytes::from_static(b"hello"), 40)));
    assert_eq!(wire_casts(&mut h), vec![Bytes::from(cat(&[&[0], b"hello"]))]);
    feed(&mut h, A, &[Bytes::from(cat(&[&[0], b"hello"]))]);
    assert_eq!(up_casts(&mut h), vec![(A, Bytes::from_static(b"hello"))]);
    assert!(h.timers().is_empty());
}

#[test]
fn exact_mtu_goes_whole_counting_headers_above() {
    let mut h = frag(10);
    // 2 header bytes pushed above frag + 8 payload bytes = 10 = mtu.
    let mut m = Msg::new(payload(8), 40);
    m.push_bytes(&[0xaa, 0xbb]);
    h.down(Down::Cast(m));
    let out = wire_casts(&mut h);
    assert_eq!(out, vec![Bytes::from(cat(&[&[0, 0xaa, 0xbb], &payload(8)]))]);
    assert_eq!(h.counters.get("fragmented"), 0);
}

#[test]
fn mtu_plus_one_makes_two_fragments() {
    let mut h = frag(10);
    let mut m = Msg::new(payload(9), 40);
    m.push_bytes(&[0xaa, 0xbb]);
    h.down(Down::Cast(m));
    let out = wire_casts(&mut h);
    let p = payload(9);
    assert_eq!(
        out,
        vec![
            Bytes::from(cat(&[&[1, 0, 2, 11, 0xaa, 0xbb], &p[..8]])),
            Bytes::from(cat(&[&[2, 0, 1], &p[8..]])),
        ]
    );
    feed(&mut h, A, &out);
    assert_eq!(up_casts(&mut h), vec![(A, Bytes::from(cat(&[&[0xaa, 0xbb], &p])))]);
    assert_eq!(h.counters.get("reassembled"), 1);
    assert_eq!(h.counters.get("reassembly_bytes"), 0);
    assert_eq!(h.counters.get("reassembly_peak"), 11);
}

#[test]
fn headers_longer_than_mtu_span_fragments() {
    let mut h = frag(2);
    let mut m = Msg::new(Bytes::from_static(b"xyz"), 0);
    m.push_bytes(&[1, 2, 3]);
    h.down(Down::Send(B, m));
    let out: Vec<Bytes> = h
        .take_down()
        .into_iter()
        .map(|d| match d {
            Down::Send(to, m) => {
                assert_eq!(to, B);
                m.to_bytes()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        out,
        vec![
            Bytes::from_static(&[1, 0, 3, 6, 1, 2]),
            Bytes::from_static(&[2, 0, 1, 3, b'x']),
            Bytes::from_static(&[2, 0, 2, b'y', b'z']),
        ]
    );
    for f in &out {
        h.up(Up::Send(A, Msg::from_wire(f.clone())));
    }
    match &h.take_up()[..] {
        [Up::Send(from, m)] => {
            assert_eq!(*from, A);
            assert_eq!(&m.body()[..], &[1, 2, 3, b'x', b'y', b'z']);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sixteen_mib_round_trip_with_zero_copy_fragments() {
    let n = 16 << 20;
    let mut h = frag(1400);
    let original = payload(n);
    let range = original.as_ptr() as usize..original.as_ptr() as usize + n;
    let mut m = Msg::new(original.clone(), 40);
    m.push_bytes(&[0x42]); // one header byte from above
    h.down(Down::Cast(m));
    let down = h.take_down();
    assert_eq!(down.len(), (n + 1).div_ceil(1400));
    let mut wire = Vec::with_capacity(down.len());
    for (i, d) in down.into_iter().enumerate() {
        let Down::Cast(f) = d else { panic!("expected a cast") };
        // Every fragment's payload lies inside the original buffer: a slice, not a copy.
        let p = f.body().as_ptr() as usize;
        assert!(range.contains(&p), "fragment {i} was copied");
        assert!(f.body().len() <= 1400);
        wire.push(f.to_bytes());
    }
    feed(&mut h, A, &wire);
    let got = up_casts(&mut h);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.len(), n + 1);
    assert_eq!(got[0].1[0], 0x42);
    assert!(got[0].1[1..] == original[..], "reassembled bytes differ");
    assert_eq!(h.counters.get("reassembly_bytes"), 0);
}

#[test]
fn interleaved_senders_and_streams_reassemble_independently() {
    let mut h = frag(4);
    let mut split = |m: Bytes| {
        h.down(Down::Cast(Msg::new(m, 40)));
        wire_casts(&mut h)
    };
    let a = split(payload(10));
    let b = split(Bytes::from_static(b"0123456789abc"));
    let s = split(Bytes::from_static(b"send-stream"));
    assert_eq!((a.len(), b.len(), s.len()), (3, 4, 3));
    let mut h = frag(4);
    // A's casts, B's casts and A's sends, fragments interleaved.
    for i in 0..4 {
        if let Some(f) = b.get(i) {
            h.up(Up::Cast(B, Msg::from_wire(f.clone())));
        }
        if let Some(f) = a.get(i) {
            h.up(Up::Cast(A, Msg::from_wire(f.clone())));
        }
        if let Some(f) = s.get(i) {
            h.up(Up::Send(A, Msg::from_wire(f.clone())));
        }
    }
    let up: Vec<(String, MemberId, Bytes)> = h
        .take_up()
        .into_iter()
        .map(|u| match u {
            Up::Cast(f, m) => ("cast".into(), f, m.into_body()),
            Up::Send(f, m) => ("send".into(), f, m.into_body()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        up,
        vec![
            ("cast".into(), A, payload(10)),
            ("send".into(), A, Bytes::from_static(b"send-stream")),
            ("cast".into(), B, Bytes::from_static(b"0123456789abc")),
        ]
    );
    assert_eq!(h.layer.partial_count(), 0);
}

#[test]
fn oversize_message_is_counted_skipped_and_sender_keeps_working() {
    let mut h = Harness::new(Frag::new(FragParams {
        mtu: Some(100),
        max_message: 1000,
        max_buffered: 10_000,
    }));
    h.down(Down::Cast(Msg::new(payload(5000), 40)));
    let big = wire_casts(&mut h);
    h.down(Down::Cast(Msg::new(payload(500), 40)));
    let ok = wire_casts(&mut h);
    assert_eq!((big.len(), ok.len()), (50, 5));
    feed(&mut h, A, &big);
    assert!(h.take_up().is_empty());
    assert_eq!(h.counters.get("oversize_dropped"), 1);
    assert_eq!(
        h.counters.get("reassembly_peak"),
        0,
        "nothing of the oversize message was buffered"
    );
    assert_eq!(h.layer.partial_count(), 0);
    feed(&mut h, A, &ok);
    assert_eq!(up_casts(&mut h), vec![(A, payload(500))]);
    assert_eq!(h.counters.get("malformed_dropped"), 0);
}

#[test]
fn total_reassembly_memory_is_bounded() {
    let mut h = Harness::new(Frag::new(FragParams {
        mtu: Some(100),
        max_message: 1000,
        max_buffered: 2000,
    }));
    h.down(Down::Cast(Msg::new(payload(900), 40)));
    let m = wire_casts(&mut h);
    // Three senders start a 900-byte message each: the third would pass 2000 bytes.
    for s in [A, B, C] {
        feed(&mut h, s, &m[..1]);
    }
    assert_eq!(h.counters.get("memory_dropped"), 1);
    assert_eq!(h.counters.get("reassembly_bytes"), 1800);
    for s in [A, B, C] {
        feed(&mut h, s, &m[1..]);
    }
    assert_eq!(up_casts(&mut h), vec![(A, payload(900)), (B, payload(900))]);
    assert_eq!(h.counters.get("reassembly_peak"), 1800);
    assert_eq!(h.counters.get("reassembly_bytes"), 0);
    // With the memory back, C's next message gets through.
    feed(&mut h, C, &m);
    assert_eq!(up_casts(&mut h), vec![(C, payload(900))]);
}

#[test]
fn view_discards_partial_messages_of_departed_senders_only() {
    let mut h = frag(10);
    h.down(Down::Cast(Msg::new(payload(30), 40)));
    let m = wire_casts(&mut h);
    feed(&mut h, A, &m[..1]);
    feed(&mut h, B, &m[..2]);
    let v = View::new(2, vec![A, C], ViewReason::Failure);
    h.down(Down::View(v.clone()));
    match &h.take_down()[..] {
        [Down::View(got)] => assert_eq!(*got, v),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.counters.get("view_discarded"), 1);
    assert_eq!(h.counters.get("reassembly_bytes"), 30);
    assert_eq!(h.layer.partial_count(), 1);
    feed(&mut h, A, &m[1..]);
    assert_eq!(up_casts(&mut h), vec![(A, payload(30))]);
}

#[test]
fn new_message_while_one_is_open_drops_the_open_one() {
    let mut h = frag(10);
    h.down(Down::Cast(Msg::new(payload(30), 40)));
    let m = wire_casts(&mut h);
    feed(&mut h, A, &m[..2]);
    feed(&mut h, A, &[Bytes::from_static(&[0, b'z'])]);
    assert_eq!(up_casts(&mut h), vec![(A, Bytes::from_static(b"z"))]);
    feed(&mut h, A, &m[..1]);
    feed(&mut h, A, &m);
    assert_eq!(up_casts(&mut h), vec![(A, payload(30))]);
    assert_eq!(h.counters.get("incomplete_dropped"), 2);
    assert_eq!(h.counters.get("reassembly_bytes"), 0);
}

#[test]
fn malformed_fragments_are_dropped_and_counted() {
    let mut h = frag(10);
    h.down(Down::Cast(Msg::new(payload(30), 40)));
    let m = wire_casts(&mut h);
    // A stray next fragment, a garbage tag, an empty datagram.
    feed(&mut h, A, &[m[1].clone(), Bytes::from_static(&[9, 9]), Bytes::new()]);
    assert_eq!(h.counters.get("malformed_dropped"), 3);
    // A skipped index drops the partial message.
    feed(&mut h, A, &[m[0].clone(), m[2].clone()]);
    assert_eq!(h.counters.get("malformed_dropped"), 4);
    assert_eq!(h.layer.partial_count(), 0);
    // A first fragment announcing fewer bytes than it carries.
    feed(&mut h, A, &[Bytes::from_static(&[1, 7, 2, 3, 1, 2, 3, 4])]);
    assert_eq!(h.counters.get("malformed_dropped"), 5);
    // A last fragment that leaves the message short of its announced total.
    feed(
        &mut h,
        A,
        &[Bytes::from_static(&[1, 7, 2, 9, 1, 2, 3]), Bytes::from_static(&[2, 7, 1, 4])],
    );
    assert_eq!(h.counters.get("malformed_dropped"), 6);
    // A middle fragment that overflows the total.
    feed(
        &mut h,
        A,
        &[Bytes::from_static(&[1, 7, 3, 4, 1, 2]), Bytes::from_static(&[2, 7, 1, 3, 4, 5])],
    );
    assert_eq!(h.counters.get("malformed_dropped"), 7);
    assert!(h.take_up().is_empty());
    assert_eq!(h.counters.get("reassembly_bytes"), 0);
    // Still working.
    feed(&mut h, A, &m);
    assert_eq!(up_casts(&mut h), vec![(A, payload(30))]);
}

#[test]
fn other_events_pass_through() {
    let mut h = frag(10);
    h.down(Down::Leave);
    h.up(Up::Block);
    assert!(matches!(&h.take_down()[..], [Down::Leave]));
    assert!(matches!(&h.take_up()[..], [Up::Block]));
}

quickcheck::quickcheck! {
    /// Any message, any mtu: split then reassembled gives the same bytes.
    fn split_reassemble_round_trip(body: Vec<u8>, hdr: Vec<u8>, mtu: u8) -> bool {
        let mtu = mtu as usize % 64 + 1;
        let mut h = frag(mtu);
        let mut m = Msg::new(Bytes::from(body.clone()), 8);
        m.push_bytes(&hdr);
        h.down(Down::Cast(m));
        let out = wire_casts(&mut h);
        let n = hdr.len() + body.len();
        if out.len() != n.div_ceil(mtu).max(1) {
            return false;
        }
        feed(&mut h, B, &out);
        up_casts(&mut h) == vec![(B, Bytes::from(cat(&[&hdr, &body])))]
    }

    /// Arbitrary datagrams never panic the receiver, and memory stays bounded.
    fn garbage_never_panics(dgrams: Vec<Vec<u8>>) -> bool {
        let mut h = Harness::new(Frag::new(FragParams { mtu: Some(10), max_message: 100, max_buffered: 150 }));
        for d in dgrams {
            h.up(Up::Cast(A, Msg::from_wire(Bytes::from(d))));
        }
        h.counters.get("reassembly_peak") <= 150
    }
}

/// How many pieces a cast of `len` bytes goes down in, and the mtu gauge.
fn pieces(mut h: Harness<Frag>, len: usize) -> (usize, u64) {
    h.down(Down::Cast(Msg::new(payload(len), 0)));
    (wire_casts(&mut h).len(), h.counters.get("mtu"))
}

#[test]
fn without_an_mtu_a_message_is_cut_only_where_a_datagram_ends() {
    let room = 65_000;
    let mtu = room - FragHdr::MAX_LEN;
    let auto = || Harness::new(Frag::new(FragParams::default())).with_datagram(room + 30, 30);
    assert_eq!(pieces(auto(), 8 << 10), (1, mtu as u64));
    assert_eq!(pieces(auto(), mtu), (1, mtu as u64));
    assert_eq!(pieces(auto(), mtu + 1), (2, mtu as u64));
    assert_eq!(pieces(auto(), 200_000), (200_000usize.div_ceil(mtu), mtu as u64));
}

#[test]
fn an_mtu_given_is_lowered_to_what_a_datagram_holds() {
    let given = |mtu| {
        Harness::new(Frag::new(FragParams { mtu: Some(mtu), ..FragParams::default() }))
            .with_datagram(1448, 10)
    };
    let fits = 1448 - 10 - FragHdr::MAX_LEN;
    assert_eq!(pieces(given(1000), 3000), (3, 1000));
    assert_eq!(pieces(given(60_000), 3000), (3000usize.div_ceil(fits), fits as u64));
    // No size from the transport either: the default.
    let none = Harness::new(Frag::new(FragParams::default()));
    assert_eq!(pieces(none, 3000), (3, DEFAULT_MTU as u64));
}
