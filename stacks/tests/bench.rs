//! `strata bench --raw --json` runs (briefly) and reports figures that add up.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn bench_with_raw_baseline_prints_one_json_object() {
    let mut c = Command::new(STRATA);
    c.args(["bench", "--stack", &stack("fifo.ron"), "--members", "3", "--size", "1024"])
        .args(["--seconds", "1", "--raw", "--json"])
        .args(["--group", "239.255.42.45:7445", "--raw-group", "239.255.42.46:7446"])
        .args(["--udpu-port", "7581"])
        .stderr(Stdio::inherit());
    let mut m = Member::spawn("bench", c);
    let (ok, json) = m.finish(Duration::from_secs(90));
    assert!(ok, "bench exits 0: {:?}", m.seen);
    assert_eq!(m.seen.len(), 1, "stdout holds only the result: {:?}", m.seen);
    let j = json.expect("one JSON object");
    assert_eq!(j["complete"], true, "every member delivered every cast: {j}");
    assert_eq!(j["lost"], 0);
    let sent = j["sent"].as_u64().unwrap();
    assert!(sent > 0);
    let per = j["per_member"].as_array().unwrap();
    assert_eq!(per.len(), 3);
    for p in per {
        assert_eq!(p["delivered"].as_u64(), Some(sent), "{p}");
        assert!(p["msgs_per_s"].as_f64().unwrap() > 0.0);
    }
    assert!(j["latency_us"]["p50"].as_f64().unwrap() > 0.0);
    assert!(j["raw"]["msgs_per_s"].as_f64().unwrap() > 0.0, "{j}");
    let ratio = j["ratio"].as_f64().unwrap();
    let expect = j["msgs_per_s"].as_f64().unwrap() / j["raw"]["msgs_per_s"].as_f64().unwrap();
    assert!((ratio - expect).abs() < 0.01, "ratio is stack over raw: {ratio} vs {expect}");
}

#[test]
fn bench_at_a_rate_paces_the_stack_and_the_raw_senders() {
    const RATE: f64 = 2000.0;
    const SECONDS: f64 = 1.5;
    let mut c = Command::new(STRATA);
    c.args(["bench", "--stack", &stack("fifo.ron"), "--members", "2", "--size", "256"])
        .args(["--seconds", &SECONDS.to_string(), "--rate", &RATE.to_string()])
        .args(["--raw", "--json"])
        .args(["--group", "239.255.42.47:7447", "--raw-group", "239.255.42.48:7448"])
        .args(["--udpu-port", "7585"])
        .stderr(Stdio::inherit());
    let mut m = Member::spawn("bench", c);
    let (ok, json) = m.finish(Duration::from_secs(90));
    assert!(ok, "bench exits 0: {:?}", m.seen);
    let j = json.expect("one JSON object");
    assert_eq!(j["rate"].as_f64(), Some(RATE));
    assert_eq!(j["complete"], true, "{j}");
    // Every sender, stack and raw, sent about RATE a second: not as fast as it could
    // (tens of thousands a second on loopback), and not far behind the pace either.
    let expected = RATE * SECONDS;
    let sent_by = |run: &serde_json::Value| -> Vec<f64> {
        run["per_member"].as_array().unwrap().iter().map(|p| p["sent"].as_f64().unwrap()).collect()
    };
    for (what, sent) in [("stack", sent_by(&j)), ("raw", sent_by(&j["raw"]))] {
        assert_eq!(sent.len(), 2, "{what}: {j}");
        for s in sent {
            assert!(s > 0.7 * expected && s < 1.1 * expected, "{what} sent {s}, pace {expected}");
        }
    }
}
