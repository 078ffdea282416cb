//! `strata demo` runs to the end and its checkers pass.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn demo_exits_zero_with_a_passing_verdict() {
    let mut c = Command::new(STRATA);
    // Its own group and udpu ports, so it cannot meet the other tests' members.
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "--group", "239.255.42.44:7444", "--udpu-port", "7551"])
        .stderr(Stdio::inherit());
    let mut m = Member::spawn("demo", c);
    let (ok, _) = m.finish(Duration::from_secs(60));
    let out = m.seen.join("\n");
    assert!(ok, "demo exits 0:\n{out}");
    assert!(out.contains("verdict: PASS"), "{out}");
    assert!(out.contains("a installs view 1"), "{out}");
    assert!(out.contains("c is killed"), "{out}");
    assert!(out.contains("d has delivered"), "{out}");
    assert!(out.contains("fifo") && out.contains("liveness"), "{out}");
}
