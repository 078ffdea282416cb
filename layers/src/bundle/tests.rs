use super::*;
use stack_core::testing::Harness;
use stack_core::{Bytes, Time, View, ViewReason};

const A: MemberId = MemberId::new(1, 0);
const B: MemberId = MemberId::new(2, 0);
const C: MemberId = MemberId::new(3, 0);

fn bundle(max_bytes: usize) -> Harness<Bundle> {
    Harness::new(Bundle::new(BundleParams {
        max_bytes: Some(max_bytes),
        delay_us: 200,
        ..BundleParams::default()
    }))
}

fn cast(h: &mut Harness<Bundle>, b: &'static [u8]) {
    h.down(Down::Cast(Msg::new(Bytes::from_static(b), 8)));
}

/// What went down, as (destination, datagram bytes); `None` for the group.
fn sent(h: &mut Harness<Bundle>) -> Vec<(Option<MemberId>, Vec<u8>)> {
    h.take_down()
        .into_iter()
        .map(|d| match d {
            Down::Cast(m) => (None, m.to_bytes().to_vec()),
            Down::Send(p, m) => (Some(p), m.to_bytes().to_vec()),
            other => panic!("expected a datagram, got {other:?}"),
        })
        .collect()
}

fn at_us(us: u64) -> Time {
    Time::ZERO + Duration::from_micros(us)
}

#[test]
fn packs_small_casts_into_one_datagram_on_timer() {
    let mut h = bundle(1400);
    cast(&mut h, b"a");
    assert_eq!(h.timers(), vec![(FLUSH_TIMER, at_us(200))]);
    h.advance(Duration::from_micros(50));
    cast(&mut h, b"bb");
    cast(&mut h, b"ccc");
    assert!(h.take_down().is_empty());
    // The timer is not moved by later messages: the first one waits at most delay_us.
    assert_eq!(h.timers(), vec![(FLUSH_TIMER, at_us(200))]);
    h.advance(Duration::from_micros(149));
    assert!(h.take_down().is_empty());
    h.advance(Duration::from_micros(1));
    assert_eq!(sent(&mut h), vec![(None, b"\x01\x01a\x02bb\x03ccc".to_vec())]);
    assert!(h.timers().is_empty());
    assert_eq!(h.counters.get("bundles_sent"), 1);
    assert_eq!(h.counters.get("messages_bundled"), 3);
}

#[test]
fn lone_message_gets_one_byte_header_without_copy() {
    let mut h = bundle(1400);
    let body = Bytes::from(vec![5u8; 100]);
    let ptr = body.as_ptr();
    h.down(Down::Cast(Msg::new(body, 8)));
    h.advance(Duration::from_micros(200));
    match &h.take_down()[..] {
        [Down::Cast(m)] => {
            assert_eq!(m.headers(), &[0]);
            assert_eq!(m.body().as_ptr(), ptr);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.counters.get("bundles_sent"), 0);
    assert_eq!(h.counters.get("singles_sent"), 1);
}

#[test]
fn flushes_immediately_when_full() {
    // 1 tag + 2 × (1 prefix + 3) = 9: one byte left, no room for another message.
    let mut h = bundle(10);
    cast(&mut h, b"abc");
    assert!(h.take_down().is_empty());
    cast(&mut h, b"def");
    assert_eq!(sent(&mut h), vec![(None, b"\x01\x03abc\x03def".to_vec())]);
    assert!(h.timers().is_empty(), "nothing left pending, no timer");
}

#[test]
fn flushes_when_next_message_would_not_fit() {
    let mut h = bundle(10);
    cast(&mut h, b"abcd"); // 1 + 5 = 6
    cast(&mut h, b"efgh"); // 6 + 5 = 11 > 10: the first goes alone
    assert_eq!(sent(&mut h), vec![(None, b"\x00abcd".to_vec())]);
    cast(&mut h, b"ij"); // 6 + 3 = 9: full
    assert_eq!(sent(&mut h), vec![(None, b"\x01\x04efgh\x02ij".to_vec())]);
    // Every datagram stays within max_bytes.
    assert!(h.timers().is_empty());
}

#[test]
fn large_message_goes_alone_after_the_pending_bundle() {
    let mut h = bundle(10);
    cast(&mut h, b"a");
    cast(&mut h, b"b");
    cast(&mut h, b"0123456789");
    assert_eq!(
        sent(&mut h),
        vec![(None, b"\x01\x01a\x01b".to_vec()), (None, b"\x000123456789".to_vec())]
    );
    assert!(h.timers().is_empty());
    assert_eq!(h.counters.get("singles_sent"), 1);
}

#[test]
fn sends_are_bundled_per_destination() {
    let mut h = bundle(1400);
    h.down(Down::Send(C, Msg::new(Bytes::from_static(b"c1"), 8)));
    h.down(Down::Send(B, Msg::new(Bytes::from_static(b"b1"), 8)));
    cast(&mut h, b"g");
    h.down(Down::Send(C, Msg::new(Bytes::from_static(b"c2"), 8)));
    h.advance(Duration::from_micros(200));
    assert_eq!(
        sent(&mut h),
        vec![
            (None, b"\x00g".to_vec()),
            (Some(B), b"\x00b1".to_vec()),
            (Some(C), b"\x01\x02c1\x02c2".to_vec()),
        ]
    );
}

#[test]
fn control_events_flush_pending_bundles_first() {
    let mut h = bundle(1400);
    cast(&mut h, b"x");
    let v = View::new(2, vec![A, B], ViewReason::Join);
    h.down(Down::View(v.clone()));
    match &h.take_down()[..] {
        [Down::Cast(m), Down::View(got)] => {
            assert_eq!(&m.to_bytes()[..], b"\x00x");
            assert_eq!(*got, v);
        }
        other => panic!("{other:?}"),
    }
    assert!(h.timers().is_empty());
}

#[test]
fn unpacks_exactly_as_slices_of_the_datagram() {
    let mut h = bundle(1400);
    let d = Bytes::from_static(b"\x01\x01a\x00\x03ccc");
    h.up(Up::Send(B, Msg::from_wire(d.clone())));
    let range = d.as_ptr() as usize..d.as_ptr() as usize + d.len();
    let up = h.take_up();
    let got: Vec<(MemberId, Vec<u8>)> = up
        .into_iter()
        .map(|u| match u {
            Up::Send(f, m) => {
                let b = m.into_body();
                assert!(b.is_empty() || range.contains(&(b.as_ptr() as usize)), "copied");
                (f, b.to_vec())
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, vec![(B, b"a".to_vec()), (B, vec![]), (B, b"ccc".to_vec())]);
    h.up(Up::Cast(A, Msg::from_wire(Bytes::from_static(b"\x00solo"))));
    match &h.take_up()[..] {
        [Up::Cast(f, m)] => assert_eq!((*f, &m.body()[..]), (A, &b"solo"[..])),
        other => panic!("{other:?}"),
    }
}

#[test]
fn round_trip_through_a_second_layer() {
    let mut tx = bundle(100);
    let mut rx = bundle(100);
    let msgs: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; i % 23]).collect();
    for m in &msgs {
        tx.down(Down::Cast(Msg::new(Bytes::from(m.clone()), 8)));
    }
    tx.advance(Duration::from_micros(200));
    let dgrams = sent(&mut tx);
    assert!(dgrams.len() < msgs.len() / 3, "{} datagrams", dgrams.len());
    for (_, d) in dgrams {
        assert!(d.len() <= 100);
        rx.up(Up::Cast(A, Msg::from_wire(Bytes::from(d))));
    }
    let got: Vec<Vec<u8>> = rx
        .take_up()
        .into_iter()
        .map(|u| match u {
            Up::Cast(_, m) => m.into_body().to_vec(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, msgs);
}

#[test]
fn malformed_datagrams_are_dropped_whole() {
    let mut h = bundle(1400);
    for d in [
        &b""[..],           // empty
        b"\x07abc",         // unknown tag
        b"\x01",            // empty bundle
        b"\x01\x01a\x05bc", // second length beyond the datagram
        b"\x01\x01a\x80",   // truncated length
    ] {
        h.up(Up::Cast(A, Msg::from_wire(Bytes::from_static(d))));
    }
    assert!(h.take_up().is_empty(), "nothing of a malformed bundle is delivered");
    assert_eq!(h.counters.get("malformed_dropped"), 5);
}

#[test]
fn parameters_are_clamped_to_a_datagram() {
    let b = Bundle::new(BundleParams {
        max_bytes: Some(1 << 20),
        delay_us: 1,
        ..BundleParams::default()
    });
    assert_eq!(b.max, MAX_DATAGRAM);
    let b =
        Bundle::new(BundleParams { max_bytes: Some(0), delay_us: 1, ..BundleParams::default() });
    assert_eq!(b.max, 2);
}

/// Casts `n` messages of `size` bytes and returns the datagram sizes passed down.
fn datagrams(mut h: Harness<Bundle>, n: usize, size: usize) -> (Vec<usize>, u64) {
    for _ in 0..n {
        h.down(Down::Cast(Msg::new(Bytes::from(vec![7u8; size]), 0)));
    }
    h.advance(Duration::from_millis(1));
    let sizes = h
        .take_down()
        .into_iter()
        .map(|d| match d {
            Down::Cast(m) => m.len(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    (sizes, h.counters.get("max_bytes"))
}

#[test]
fn without_a_size_datagrams_are_as_large_as_the_transport_carries() {
    // 60,000 bytes of datagram, 20 of them taken by the headers of layers below.
    let h = Harness::new(Bundle::new(BundleParams {
        max_bytes: None,
        delay_us: 200,
        ..BundleParams::default()
    }))
    .with_datagram(60_000, 20);
    let (sizes, max) = datagrams(h, 100, 1024);
    assert_eq!(max, 59_980);
    // 58 messages of 1026 bytes (length varint + body) behind the tag fill one
    // datagram.
    assert_eq!(sizes, vec![1 + 58 * 1026, 1 + 42 * 1026]);
    assert!(sizes.iter().all(|&s| s <= 59_980));
}

#[test]
fn a_size_given_is_kept_below_what_the_transport_carries() {
    let small = Harness::new(Bundle::new(BundleParams {
        max_bytes: Some(4000),
        delay_us: 200,
        ..BundleParams::default()
    }))
    .with_datagram(60_000, 0);
    let (sizes, max) = datagrams(small, 10, 1024);
    assert_eq!(max, 4000);
    // The last one alone: a one-byte tag, no length.
    assert_eq!(sizes, vec![1 + 3 * 1026; 3].into_iter().chain([1 + 1024]).collect::<Vec<_>>());
    let large = Harness::new(Bundle::new(BundleParams {
        max_bytes: Some(60_000),
        delay_us: 200,
        ..BundleParams::default()
    }))
    .with_datagram(1448, 8);
    let (sizes, max) = datagrams(large, 3, 1024);
    assert_eq!(max, 1440);
    assert_eq!(sizes, vec![1 + 1024; 3]);
}

#[test]
fn with_no_size_from_anyone_datagrams_fit_an_ethernet_frame() {
    let h = Harness::new(Bundle::new(BundleParams::default()));
    let (sizes, max) = datagrams(h, 4, 600);
    assert_eq!(max, DEFAULT_MAX_BYTES as u64);
    assert_eq!(sizes, vec![1 + 2 * 602; 2]);
}

quickcheck::quickcheck! {
    fn garbage_never_panics(d: Vec<u8>) -> bool {
        let mut h = bundle(1400);
        h.up(Up::Cast(A, Msg::from_wire(Bytes::from(d))));
        true
    }

    /// Whatever the sizes, every datagram fits and the messages come back in order.
    fn any_messages_round_trip(sizes: Vec<u16>, max: u8) -> bool {
        let max = max as usize + 2;
        let mut tx = bundle(max);
        let mut rx = bundle(max);
        let msgs: Vec<Bytes> = sizes.iter().take(50).map(|&s| Bytes::from(vec![s as u8; s as usize % 300])).collect();
        for m in &msgs {
            tx.down(Down::Cast(Msg::new(m.clone(), 8)));
        }
        tx.advance(Duration::from_micros(200));
        for (_, d) in sent(&mut tx) {
            let alone = d[0] == 0;
            if d.len() > max && !alone {
                return false;
            }
            rx.up(Up::Cast(A, Msg::from_wire(Bytes::from(d))));
        }
        let got: Vec<Bytes> = rx.take_up().into_iter().map(|u| match u {
            Up::Cast(_, m) => m.into_body(),
            _ => Bytes::new(),
        }).collect();
        got == msgs
    }
}

#[test]
fn an_idle_transport_gets_what_is_pending_at_once() {
    let mut h = bundle(1400);
    h.down(Down::Cast(Msg::new(Bytes::from_static(b"a"), 0)));
    h.down(Down::Send(B, Msg::new(Bytes::from_static(b"b"), 0)));
    h.down(Down::Cast(Msg::new(Bytes::from_static(b"c"), 0)));
    assert!(h.take_down().is_empty(), "waiting for company");
    assert!(h.wants_idle(), "asked to hear when the transport is idle");
    h.idle();
    let out = h.take_down();
    assert_eq!(out.len(), 2, "the casts' bundle and the send: {out:?}");
    assert!(matches!(&out[0], Down::Cast(m) if m.len() == 1 + 2 * 2));
    assert!(matches!(&out[1], Down::Send(d, m) if *d == B && m.len() == 2));
    assert!(h.timers().is_empty(), "nothing pending, no timer");
    assert!(!h.wants_idle());
}

#[test]
fn without_idle_flush_bundles_wait_for_the_timer() {
    let p = BundleParams { idle_flush: false, ..BundleParams::default() };
    let mut h = Harness::new(Bundle::new(p));
    h.down(Down::Cast(Msg::new(Bytes::from_static(b"a"), 0)));
    assert!(!h.wants_idle());
    h.idle();
    assert!(h.take_down().is_empty());
    h.advance(Duration::from_micros(200));
    assert_eq!(h.take_down().len(), 1);
}
