//! `strata demo` runs to the end over loopback multicast and over udpu, narrates
//! the views of its vsync group (founding, joins, the view after a SIGKILL, the
//! joiner's state) and its checkers pass.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `strata demo` with `extra` arguments; returns its output after asserting it
/// exited 0 with a passing verdict and narrated the views of a vsync run.
fn demo(extra: &[&str]) -> String {
    let mut c = Command::new(STRATA);
    c.current_dir(env!("CARGO_MANIFEST_DIR")).arg("demo").args(extra).stderr(Stdio::inherit());
    let mut m = Member::spawn("demo", c);
    let (ok, _) = m.finish(Duration::from_secs(60));
    let out = m.seen.join("\n");
    assert!(ok, "demo exits 0:\n{out}");
    assert!(out.contains("Stack `vsync`"), "vsync is the default stack: {out}");
    assert!(out.contains("verdict: PASS"), "{out}");
    // The founding and the joins, narrated as installed.
    assert!(out.contains("view 1 [a] (initial)") || out.contains("view 1 [b] (initial)"), "{out}");
    let three = out.lines().any(|l| {
        l.starts_with("  view 3 [")
            && ["a", "b", "c"].iter().all(|n| l.split(['[', ']', ' ']).any(|w| w == *n))
            && l.contains("installed by a, b and c")
    });
    assert!(three, "view 3 holds a, b and c: {out}");
    // After the kill: a view without c, installed by a and b, with the time it took.
    assert!(out.contains("c is killed"), "{out}");
    let after_kill = out.lines().find(|l| l.contains("(failure): c excluded")).expect(&out);
    assert!(after_kill.contains("[a b]") || after_kill.contains("[b a]"), "{after_kill}");
    assert!(after_kill.contains("installed by a (") && after_kill.contains("ms)"), "{after_kill}");
    assert!(out.contains("failover: "), "{out}");
    assert!(out.contains("the flush made sure they delivered the same messages"), "{out}");
    // d joins with the group state.
    let join = out.lines().find(|l| l.contains("(join): d joined")).expect(&out);
    assert!(join.contains(" d") && join.contains("installed by a"), "{join}");
    assert!(out.contains("d received the group state"), "{out}");
    assert!(out.contains("d 300"), "d delivered the second burst: {out}");
    for p in ["virtual_synchrony", "view_agreement", "fifo", "liveness", "primary_partition"] {
        let line = out.lines().find(|l| l.trim_start().starts_with(p)).expect(p);
        assert!(line.contains("checked  ok"), "{line}");
    }
    out
}

#[test]
fn demo_narrates_the_views_of_a_vsync_group_and_passes() {
    // Its own group, so it cannot meet the other tests' members.
    demo(&["--group", "239.255.42.44:7444", "--udpu-port", "7551"]);
}

#[test]
fn demo_over_udpu_narrates_the_same_views_and_passes() {
    let out = demo(&["--udpu", "--udpu-port", "7561"]);
    assert!(out.contains("running over udpu"), "{out}");
}
