//! The shipped virtually synchronous and ordering stacks through `strata sim`, run as a
//! program with the exact command lines the project promises, and `strata check` on
//! ordering layers placed below what they require.

use std::process::Command;

fn strata(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(args)
        .output()
        .expect("strata runs");
    (
        out.status.code().expect("strata exits normally"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn vsync_with_crash_partition_join_and_loss_passes_every_view_check() {
    let (code, out, err) = strata(&[
        "sim",
        "--stack",
        "stacks/vsync.ron",
        "--members",
        "5",
        "--crash",
        "1",
        "--partition",
        "--joins",
        "1",
        "--loss",
        "0.1",
        "--messages",
        "500",
        "--seed",
        "3",
        "--check",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v = json(&out);
    assert_eq!(v["ok"], true);
    let props: Vec<&str> =
        v["properties"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    for p in [
        "view_agreement",
        "same_view",
        "virtual_synchrony",
        "self_delivery",
        "primary_partition",
        "liveness",
    ] {
        assert!(props.contains(&p), "{p} not checked: {props:?}");
    }
    assert!(v["views"].as_u64().unwrap() >= 3, "a crash and a join mean new views: {v}");
    // Five members, one crashed, one joined: five in the final view.
    assert_eq!(v["final_view"].as_array().unwrap().len(), 5, "{v}");
}

#[test]
fn ordering_stacks_are_judged_for_the_order_they_claim() {
    for (stack, order) in [
        ("stacks/causal.ron", "causal"),
        ("stacks/total.ron", "total"),
        ("stacks/total-lamport.ron", "total"),
        ("stacks/safe.ron", "total"),
    ] {
        let (code, out, err) = strata(&[
            "sim",
            "--stack",
            stack,
            "--members",
            "5",
            "--crash",
            "1",
            "--joins",
            "1",
            "--loss",
            "0.1",
            "--messages",
            "200",
            "--interval-us",
            "2000",
            "--seed",
            "2",
            "--check",
        ]);
        assert_eq!(code, 0, "{stack}: {out}\n{err}");
        let v = json(&out);
        let props: Vec<&str> =
            v["properties"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
        assert!(props.contains(&order), "{stack} not judged for {order}: {props:?}");
    }
}

#[test]
fn an_ordering_layer_below_what_it_requires_is_rejected_with_its_position() {
    let (code, _, err) = strata(&[
        "check",
        "stacks/tests/fixtures/total-below-views.ron",
        "stacks/tests/fixtures/causal-without-fifo.ron",
    ]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "stacks/tests/fixtures/total-below-views.ron:7:9: layer `total` requires `views` below it; add `Membership` beneath it",
            "stacks/tests/fixtures/causal-without-fifo.ron:4:14: layer `causal` requires `reliable-fifo` below it; add `Nak` beneath it",
            "stacks/tests/fixtures/causal-without-fifo.ron:4:14: layer `causal` requires `views` below it; add `Membership` beneath it",
            "2 of 2 descriptors have problems",
        ]
    );
}
