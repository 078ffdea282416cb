//! The `auth` layer driven alone through the recording harness: exact events emitted.

use super::*;
use stack_core::registry::BuildError;
use stack_core::testing::Harness;
use stack_core::{Bytes, View, ViewReason};

const M1: MemberId = MemberId::new(1, 0);
const M2: MemberId = MemberId::new(2, 0);
const M3: MemberId = MemberId::new(3, 0);

const KEY: &str = "000102030405060708090a0b0c0d0e0f";
const OTHER_KEY: &str = "000102030405060708090a0b0c0d0e0e";

fn key(hex: &str) -> AuthKey {
    AuthKey::from_hex(hex, "test").unwrap()
}

fn member(me: MemberId, hex: &str) -> Harness<Auth> {
    Harness::with_member(Auth::new(AuthParams::with_key(key(hex))), me)
}

fn msg(body: &'static [u8]) -> Msg {
    let mut m = Msg::new(Bytes::from_static(body), 64);
    m.push_bytes(b"hdr:");
    m
}

/// What went down or up, flattened to bytes.
#[derive(Debug, PartialEq)]
enum E {
    Cast(MemberId, Vec<u8>),
    Send(MemberId, Vec<u8>),
    Other(&'static str),
}

fn downs(h: &mut Harness<Auth>) -> Vec<E> {
    let me = h.me;
    h.take_down()
        .into_iter()
        .map(|d| match d {
            Down::Cast(m) => E::Cast(me, m.to_bytes().to_vec()),
            Down::Send(d, m) => E::Send(d, m.to_bytes().to_vec()),
            d => E::Other(d.kind()),
        })
        .collect()
}

fn ups(h: &mut Harness<Auth>) -> Vec<E> {
    h.take_up()
        .into_iter()
        .map(|u| match u {
            Up::Cast(f, m) => E::Cast(f, m.into_body().to_vec()),
            Up::Send(f, m) => E::Send(f, m.into_body().to_vec()),
            u => E::Other(u.kind()),
        })
        .collect()
}

/// The datagram `h` sends for a cast of `m`.
fn sealed_cast(h: &mut Harness<Auth>, m: Msg) -> Vec<u8> {
    h.down(Down::Cast(m));
    match &downs(h)[..] {
        [E::Cast(_, b)] => b.clone(),
        other => panic!("one cast expected, got {other:?}"),
    }
}

fn sealed_send(h: &mut Harness<Auth>, to: MemberId, m: Msg) -> Vec<u8> {
    h.down(Down::Send(to, m));
    match &downs(h)[..] {
        [E::Send(d, b)] if *d == to => b.clone(),
        other => panic!("one send expected, got {other:?}"),
    }
}

fn cast_up(h: &mut Harness<Auth>, from: MemberId, bytes: &[u8]) {
    h.up(Up::Cast(from, Msg::from_wire(Bytes::copy_from_slice(bytes))));
}

fn send_up(h: &mut Harness<Auth>, from: MemberId, bytes: &[u8]) {
    h.up(Up::Send(from, Msg::from_wire(Bytes::copy_from_slice(bytes))));
}

fn dropped(h: &Harness<Auth>) -> (u64, u64) {
    (h.counters.get("unauthenticated_dropped"), h.counters.get("replayed_dropped"))
}

#[test]
fn casts_and_sends_pass_with_the_header_stripped() {
    let mut a = member(M1, KEY);
    let mut b = member(M2, KEY);
    let c1 = sealed_cast(&mut a, msg(b"one"));
    assert_eq!(c1.len(), AuthHdr::LEN + 7, "25 bytes of overhead");
    assert_eq!(&c1[..9], &[1, 0, 0, 0, 0, 0, 0, 0, 1], "version, counter 1");
    assert_eq!(&c1[AuthHdr::LEN..], b"hdr:one", "the datagram follows unchanged");
    let s2 = sealed_send(&mut a, M2, msg(b"two"));
    assert_eq!(&s2[..9], &[1, 0, 0, 0, 0, 0, 0, 0, 2], "one counter for casts and sends");
    cast_up(&mut b, M1, &c1);
    send_up(&mut b, M1, &s2);
    assert_eq!(
        ups(&mut b),
        vec![E::Cast(M1, b"hdr:one".to_vec()), E::Send(M1, b"hdr:two".to_vec())]
    );
    // The sender hears its own cast back (multicast loopback).
    cast_up(&mut a, M1, &c1);
    assert_eq!(ups(&mut a), vec![E::Cast(M1, b"hdr:one".to_vec())]);
    assert_eq!(dropped(&b), (0, 0));
    assert!(b.timers().is_empty());
}

#[test]
fn the_same_message_gets_a_different_tag_each_time() {
    let mut a = member(M1, KEY);
    let x = sealed_cast(&mut a, msg(b"same"));
    let y = sealed_cast(&mut a, msg(b"same"));
    assert_ne!(x[9..25], y[9..25]);
}

#[test]
fn every_tampered_byte_is_dropped() {
    let mut a = member(M1, KEY);
    let mut b = member(M2, KEY);
    let d = sealed_cast(&mut a, msg(b"payload"));
    for i in 0..d.len() {
        for bit in [0x01u8, 0x80] {
            let mut t = d.clone();
            t[i] ^= bit;
            cast_up(&mut b, M1, &t);
        }
    }
    let mut longer = d.clone();
    longer.push(0);
    cast_up(&mut b, M1, &longer);
    assert_eq!(ups(&mut b), vec![]);
    assert_eq!(dropped(&b), (2 * d.len() as u64 + 1, 0));
    // The window was not moved by any of them: the genuine datagram still passes.
    cast_up(&mut b, M1, &d);
    assert_eq!(ups(&mut b), vec![E::Cast(M1, b"hdr:payload".to_vec())]);
}

#[test]
fn another_key_is_dropped_both_ways() {
    let mut a = member(M1, KEY);
    let mut out = member(M3, OTHER_KEY);
    let mut b = member(M2, KEY);
    let forged = sealed_cast(&mut out, msg(b"let me in"));
    cast_up(&mut b, M3, &forged);
    cast_up(&mut b, M1, &forged);
    let forged_send = sealed_send(&mut out, M2, msg(b"psst"));
    send_up(&mut b, M3, &forged_send);
    assert_eq!(ups(&mut b), vec![]);
    assert_eq!(dropped(&b), (3, 0));
    let genuine = sealed_cast(&mut a, msg(b"hi"));
    cast_up(&mut out, M1, &genuine);
    assert_eq!(ups(&mut out), vec![]);
    assert_eq!(dropped(&out), (1, 0));
}

#[test]
fn sender_destination_and_kind_are_bound() {
    let mut a = member(M1, KEY);
    let mut b = member(M2, KEY);
    let mut c = member(M3, KEY);
    let cast = sealed_cast(&mut a, msg(b"c"));
    let to_b = sealed_send(&mut a, M2, msg(b"s"));
    cast_up(&mut b, M3, &cast); // claimed by another sender
    send_up(&mut b, M1, &cast); // a cast replayed as a send
    cast_up(&mut b, M1, &to_b); // a send replayed as a cast
    send_up(&mut c, M1, &to_b); // a send replayed to another member
    assert_eq!(ups(&mut b), vec![]);
    assert_eq!(ups(&mut c), vec![]);
    assert_eq!((dropped(&b), dropped(&c)), ((3, 0), (1, 0)));
    cast_up(&mut b, M1, &cast);
    send_up(&mut b, M1, &to_b);
    assert_eq!(ups(&mut b), vec![E::Cast(M1, b"hdr:c".to_vec()), E::Send(M1, b"hdr:s".to_vec())]);
}

#[test]
fn truncated_and_headerless_datagrams_are_dropped() {
    let mut a = member(M1, KEY);
    let mut b = member(M2, KEY);
    let d = sealed_cast(&mut a, msg(b"abc"));
    for n in 0..d.len() {
        cast_up(&mut b, M1, &d[..n]);
    }
    cast_up(&mut b, M1, &d[AuthHdr::LEN..]); // the bare datagram, no header
    assert_eq!(ups(&mut b), vec![]);
    assert_eq!(dropped(&b), (d.len() as u64 + 1, 0));
}

#[test]
fn replays_are_dropped_and_reordering_within_the_window_is_not() {
    let mut a = member(M1, KEY);
    let mut b = member(M2, KEY);
    let d: Vec<Vec<u8>> = (0..5).map(|_| sealed_cast(&mut a, msg(b"x"))).collect();
    for i in [0usize, 0, 3, 1, 3, 2, 4, 4, 0] {
        cast_up(&mut b, M1, &d[i]);
    }
    assert_eq!(ups(&mut b).len(), 5);
    assert_eq!(dropped(&b), (0, 4));
}

#[test]
fn counters_older_than_the_window_are_dropped() {
    let p = AuthParams { replay_window: 64, ..AuthParams::with_key(key(KEY)) };
    let mut a = Harness::with_member(Auth::new(p.clone()), M1);
    let mut b = Harness::with_member(Auth::new(p), M2);
    let d: Vec<Vec<u8>> = (0..200).map(|_| sealed_cast(&mut a, msg(b"x"))).collect();
    // Counters 1..=200; deliver 1, 101, then 37 (64 below: gone), 38 (in).
    cast_up(&mut b, M1, &d[0]);
    cast_up(&mut b, M1, &d[100]);
    cast_up(&mut b, M1, &d[36]);
    cast_up(&mut b, M1, &d[37]);
    assert_eq!(ups(&mut b).len(), 3);
    assert_eq!(dropped(&b), (0, 1));
    // A jump past the whole window forgets it; what is behind the new top is judged
    // afresh (counter 199 is fresh, 101 is now too old).
    cast_up(&mut b, M1, &d[199]);
    cast_up(&mut b, M1, &d[198]);
    cast_up(&mut b, M1, &d[198]);
    cast_up(&mut b, M1, &d[100]);
    assert_eq!(ups(&mut b).len(), 2);
    assert_eq!(dropped(&b), (0, 3));
}

#[test]
fn counters_below_the_first_one_heard_count_as_seen() {
    let mut a = member(M1, KEY);
    let mut b = member(M2, KEY);
    let d: Vec<Vec<u8>> = (0..6).map(|_| sealed_cast(&mut a, msg(b"x"))).collect();
    cast_up(&mut b, M1, &d[3]);
    cast_up(&mut b, M1, &d[0]);
    cast_up(&mut b, M1, &d[2]);
    cast_up(&mut b, M1, &d[5]);
    cast_up(&mut b, M1, &d[4]);
    assert_eq!(ups(&mut b).len(), 3);
    assert_eq!(dropped(&b), (0, 2));
}

#[test]
fn windows_are_per_sender() {
    let mut a = member(M1, KEY);
    let mut c = member(M3, KEY);
    let mut b = member(M2, KEY);
    let x = sealed_cast(&mut a, msg(b"a"));
    let y = sealed_cast(&mut c, msg(b"c"));
    cast_up(&mut b, M1, &x);
    cast_up(&mut b, M3, &y);
    assert_eq!(ups(&mut b), vec![E::Cast(M1, b"hdr:a".to_vec()), E::Cast(M3, b"hdr:c".to_vec())]);
}

fn view(id: u64, members: &[MemberId]) -> View {
    View { id, members: members.to_vec().into(), reason: ViewReason::Initial }
}

#[test]
fn a_view_forgets_the_windows_of_members_outside_it() {
    let mut a = member(M1, KEY);
    let mut c = member(M3, KEY);
    let mut b = member(M2, KEY);
    let x = sealed_cast(&mut a, msg(b"a"));
    let y = sealed_cast(&mut c, msg(b"c"));
    cast_up(&mut b, M1, &x);
    cast_up(&mut b, M3, &y);
    let _ = ups(&mut b);
    b.down(Down::View(view(2, &[M1, M2])));
    assert_eq!(downs(&mut b), vec![E::Other("view")]);
    cast_up(&mut b, M1, &x);
    assert_eq!(dropped(&b), (0, 1), "a member of the view is still protected");
    // M3 left: its window is gone, so a restarted M3 counting from 1 is heard.
    let mut c2 = member(M3, KEY);
    let z = sealed_cast(&mut c2, msg(b"again"));
    cast_up(&mut b, M3, &z);
    assert_eq!(ups(&mut b), vec![E::Cast(M3, b"hdr:again".to_vec())]);
    // Forgotten, then heard again from counter 2: what came before is a replay.
    let mut c3 = member(M3, KEY);
    let old = sealed_cast(&mut c3, msg(b"old"));
    let new = sealed_cast(&mut c3, msg(b"new"));
    b.down(Down::View(view(3, &[M1, M2])));
    let _ = downs(&mut b);
    cast_up(&mut b, M3, &new);
    cast_up(&mut b, M3, &old);
    assert_eq!(ups(&mut b), vec![E::Cast(M3, b"hdr:new".to_vec())]);
    assert_eq!(dropped(&b), (0, 2));
}

#[test]
fn a_keyless_layer_refuses_all_traffic() {
    let mut h = Harness::with_member(Auth::new(AuthParams::default()), M1);
    let mut a = member(M2, KEY);
    h.down(Down::Cast(msg(b"x")));
    h.down(Down::Send(M2, msg(b"y")));
    assert_eq!(downs(&mut h), vec![]);
    assert_eq!(h.counters.get("unkeyed_dropped"), 2);
    let d = sealed_cast(&mut a, msg(b"z"));
    cast_up(&mut h, M2, &d);
    assert_eq!(ups(&mut h), vec![]);
    assert_eq!(dropped(&h), (1, 0));
}

#[test]
fn other_events_pass_untouched() {
    let mut h = member(M1, KEY);
    h.down(Down::Join);
    h.down(Down::Leave);
    h.up(Up::Block);
    h.up(Up::View(view(1, &[M1])));
    assert_eq!(downs(&mut h), vec![E::Other("join"), E::Other("leave")]);
    assert_eq!(ups(&mut h), vec![E::Other("block"), E::Other("view")]);
    assert_eq!(h.layer.header_max(), 25);
    assert_eq!(h.layer.provides(), &[AUTHENTICATED]);
    assert!(h.layer.requires().is_empty());
}

fn build(params: &str) -> Result<Box<dyn Layer>, String> {
    crate::registry().build("Auth", params).map_err(|e| match e {
        BuildError::Params(p) => p.message,
        e => e.to_string(),
    })
}

#[test]
fn the_registry_refuses_a_stack_without_a_good_key() {
    let err = |p: &str| build(p).err().unwrap_or_else(|| panic!("{p} built"));
    assert!(err("()").contains("no key: give one of `key` (hex), `key_file`"), "{}", err("()"));
    assert!(err(r#"(key: "0011")"#).contains("`key` is 2 bytes; a key must be at least 16 bytes"));
    assert!(err(r#"(key: "zz0102030405060708090a0b0c0d0e0f")"#).contains("`key` is not a hex key"));
    assert!(err(r#"(key: "0001020304050607")"#).contains("at least 16"));
    let both = format!(r#"(key: "{KEY}", key_env: "X")"#);
    assert!(err(&both).contains("only one of"));
    assert!(err(r#"(key_env: "STRATA_AUTH_TEST_SURELY_UNSET")"#).contains("is not set"));
    let missing = err(r#"(key_file: "/nonexistent/strata.key")"#);
    assert!(missing.contains("cannot read `key_file` `/nonexistent/strata.key`"), "{missing}");
    assert!(err(r#"(keys: "00")"#).contains("unknown parameter `keys`"));
    // No message shows the key.
    let short = "00112233445566778899aabbccdd";
    assert!(!err(&format!(r#"(key: "{short}")"#)).contains(short));
    // The registry learned the layer's properties from its keyless default.
    let r = crate::registry();
    assert_eq!(r.default_properties("Auth"), Some((&[][..], &[AUTHENTICATED][..])));
}

#[test]
fn keys_come_from_the_descriptor_a_file_or_the_environment() {
    let from_text = build(&format!(r#"(key: "{KEY}", replay_window: 128)"#)).unwrap();
    assert_eq!(from_text.name(), "auth");
    let path = std::env::temp_dir().join(format!("strata-auth-test-{}.key", std::process::id()));
    std::fs::write(&path, format!("  {}\n", KEY.to_uppercase())).unwrap();
    let spec = AuthSpec { key_file: Some(path.display().to_string()), ..AuthSpec::default() };
    assert_eq!(spec.resolve().unwrap().key, Some(key(KEY)));
    assert!(build(&format!(r#"(key_file: "{}")"#, path.display())).is_ok());
    std::fs::write(&path, "not a key\n").unwrap();
    let e = build(&format!(r#"(key_file: "{}")"#, path.display())).err().unwrap();
    assert!(e.contains("the content of `key_file`") && e.contains("is not a hex key"), "{e}");
    let _ = std::fs::remove_file(&path);
    // A variable name no other test uses.
    let var = "STRATA_AUTH_TEST_KEY_FROM_ENV";
    std::env::set_var(var, OTHER_KEY);
    let spec = AuthSpec { key_env: Some(var.into()), ..AuthSpec::default() };
    assert_eq!(spec.resolve().unwrap().key, Some(key(OTHER_KEY)));
    assert!(build(&format!(r#"(key_env: "{var}")"#)).is_ok());
    assert_eq!(format!("{:?}", key(KEY)), "AuthKey(16 bytes)", "Debug hides the key");
}

quickcheck::quickcheck! {
    fn never_panics_and_never_passes_garbage(data: Vec<u8>, send: bool, from: u64) -> bool {
        let mut h = member(M2, KEY);
        let from = MemberId(from);
        if send { send_up(&mut h, from, &data) } else { cast_up(&mut h, from, &data) }
        ups(&mut h).is_empty() && dropped(&h) == (1, 0)
    }

    fn any_payload_round_trips(body: Vec<u8>, to: Option<u64>) -> bool {
        let mut a = member(M1, KEY);
        let mut b = member(M2, KEY);
        let m = Msg::new(Bytes::from(body.clone()), 32);
        match to {
            Some(_) => {
                let d = sealed_send(&mut a, M2, m);
                send_up(&mut b, M1, &d);
                ups(&mut b) == vec![E::Send(M1, body)]
            }
            None => {
                let d = sealed_cast(&mut a, m);
                cast_up(&mut b, M1, &d);
                ups(&mut b) == vec![E::Cast(M1, body)]
            }
        }
    }
}
