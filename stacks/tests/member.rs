//! `strata member` as real processes on loopback: three members over multicast and
//! over udpu each cast 200 messages; their traces pass the reliable-FIFO checkers.
//! Clean exits on SIGTERM, and clear errors for transports that cannot start.

mod common;

use common::*;
use conformance::Property;
use std::process::Command;
use std::time::Duration;

const NAMES: [&str; 3] = ["a", "b", "c"];
const CASTS: u64 = 200;

fn member(stack_file: &str, name: &str, trace: &Dir, extra: &[String]) -> Command {
    let mut c = Command::new(STRATA);
    c.args(["member", "--stack", stack_file, "--name", name, "--peers", "a,b,c"])
        .args(["--send", &CASTS.to_string(), "--size", "200", "--duration", "40"])
        .args(["--expect", &(3 * CASTS).to_string()])
        .arg("--trace")
        .arg(&trace.0)
        .args(extra);
    c
}

/// Starts the three members, waits until each delivered all 600 casts, stops them
/// with SIGTERM, and checks the summaries and traces.
fn three_members(stack_file: &str, extra: impl Fn(usize) -> Vec<String>) {
    let dir = Dir::new("member");
    let mut ms: Vec<Member> = NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| Member::spawn(n, member(stack_file, n, &dir, &extra(i))))
        .collect();
    for m in ms.iter_mut() {
        let l = m.wait_for("complete ", Duration::from_secs(30));
        assert!(l.is_some(), "{} did not deliver {} casts: {:?}", m.name, 3 * CASTS, m.seen);
    }
    for m in &ms {
        m.sigterm();
    }
    for m in ms.iter_mut() {
        let (ok, summary) = m.finish(Duration::from_secs(10));
        assert!(ok, "{} exits 0 on SIGTERM: {:?}", m.name, m.seen);
        let s = summary.expect("a JSON summary line");
        assert_eq!(s["exit"], "signal");
        assert_eq!(s["sent"], CASTS);
        assert_eq!(s["delivered"], 3 * CASTS);
        for n in NAMES {
            assert_eq!(s["from"][n], CASTS, "{} delivered every cast of {n}", m.name);
        }
    }
    let report = check_traces(&dir.0, 3, &FIFO_PROPS);
    assert_eq!(report.summary(Property::Fifo).unwrap().checked, 3 * 3 * CASTS);
}

#[test]
fn three_members_over_loopback_multicast_deliver_reliably_in_fifo_order() {
    let group = "239.255.42.40:7440";
    if !multicast_works(group) {
        eprintln!("SKIPPED: loopback multicast does not work on this host");
        return;
    }
    three_members(&stack("fifo.ron"), |_| vec!["--group".into(), group.into()]);
}

#[test]
fn three_members_over_udpu_deliver_reliably_in_fifo_order() {
    let ports = [7541, 7542, 7543];
    let seeds: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    three_members(&stack("fifo-udpu.ron"), |i| {
        vec!["--bind".into(), seeds[i].clone(), "--seeds".into(), seeds.join(",")]
    });
}

#[test]
fn a_member_exits_on_its_own_when_complete_and_ends_its_trace() {
    let dir = Dir::new("alone");
    let mut c = Command::new(STRATA);
    c.args(["member", "--stack", &stack("fifo.ron"), "--name", "solo"])
        .args(["--group", "239.255.42.41:7441", "--send", "50", "--rate", "1000"])
        .args(["--expect", "50", "--exit-when-complete", "--duration", "20"])
        .arg("--trace")
        .arg(dir.0.join("solo.jsonl"));
    if !multicast_works("239.255.42.41:7441") {
        eprintln!("SKIPPED: loopback multicast does not work on this host");
        return;
    }
    let mut m = Member::spawn("solo", c);
    let (ok, summary) = m.finish(Duration::from_secs(20));
    assert!(ok, "{:?}", m.seen);
    let s = summary.unwrap();
    assert_eq!(s["exit"], "complete");
    assert_eq!(s["delivered"], 50);
    // 50 casts at 1000/s take at least 49 ms.
    let span = s["send_end_ns"].as_u64().unwrap() - s["send_start_ns"].as_u64().unwrap();
    assert!(span >= 45_000_000, "rate respected: {span} ns");
    let text = std::fs::read_to_string(dir.0.join("solo.jsonl")).unwrap();
    assert!(text.trim_end().ends_with("\"ev\":\"end\"}"), "trace ends with end: {text}");
}

fn error_of(args: &[&str]) -> String {
    let out = Command::new(STRATA)
        .arg("member")
        .args(args)
        .args(["--duration", "5"])
        .output()
        .expect("strata runs");
    assert!(!out.status.success(), "fails: {args:?}");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn transports_that_cannot_start_are_clear_errors() {
    let e = error_of(&["--stack", &stack("fifo-sim.ron")]);
    assert!(e.contains("Sim transport") && e.contains("strata sim"), "{e}");
    let e = error_of(&["--group", "127.0.0.1:7400"]);
    assert!(e.contains("not a multicast group address"), "{e}");
    let e = error_of(&["--group", "239.255.42.42"]);
    assert!(e.contains("bad address"), "{e}");
    let e = error_of(&["--interface", "not-an-address", "--group", "239.255.42.42:7442"]);
    assert!(e.contains("interface must be an IPv4 address"), "{e}");
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let e = error_of(&["--stack", &stack("fifo-udpu.ron"), "--bind", &addr]);
    assert!(e.contains("already in use") && e.contains(&addr), "{e}");
    let e = error_of(&["--peers", "x,y", "--name", "a"]);
    assert!(e.contains("--peers must name this member"), "{e}");
}
