//! `strata check` run as a program on the shipped descriptors and on broken fixtures.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `strata check` from the crate directory, so paths in messages are relative.
fn check(files: &[&str]) -> (i32, Vec<String>, Vec<String>) {
    let Output { status, stdout, stderr } = Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("check")
        .args(files)
        .output()
        .expect("strata runs");
    let lines = |b: Vec<u8>| String::from_utf8(b).unwrap().lines().map(String::from).collect();
    (status.code().expect("strata exits normally"), lines(stdout), lines(stderr))
}

fn fixture(name: &str) -> String {
    format!("tests/fixtures/{name}")
}

#[test]
fn shipped_descriptors_are_accepted() {
    let shipped: Vec<String> = std::fs::read_dir(env!("CARGO_MANIFEST_DIR"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".ron"))
        .collect();
    assert!(shipped.iter().any(|n| n == "pass.ron"));
    let names: Vec<&str> = shipped.iter().map(String::as_str).collect();
    let (code, _, err) = check(&names);
    assert_eq!((code, err), (0, Vec::<String>::new()));
}

#[test]
fn a_good_stack_is_printed_bottom_to_top() {
    let (code, out, err) = check(&["pass.ron"]);
    assert_eq!(code, 0, "{err:?}");
    assert!(err.is_empty());
    assert_eq!(
        out,
        vec![
            "pass.ron: stack `pass`, group `pass` (0x7b7a7318), transport Udp 239.255.42.9:7409 via 127.0.0.1",
            "  #  layer  at   requires  provides",
            "  1  pass   7:9  -         -",
            "  2  pass   8:9  -         -",
            "  layers bottom to top; the stack provides: -",
        ]
    );
}

#[test]
fn optional_fields_and_parameters_are_accepted() {
    let (code, out, err) = check(&[&fixture("good-sim.ron")]);
    assert_eq!(code, 0, "{err:?}");
    assert!(out[0].contains("stack `sim-pass`, group `bench`"), "{out:?}");
    assert!(out[0].ends_with("transport Sim"), "{out:?}");
    assert_eq!(out[2], "  1  pass   6:14  -         -");
}

/// Each broken fixture and the exact lines it must give.
#[test]
fn problems_are_reported_at_their_position() {
    let cases: &[(&str, &[&str])] = &[
        ("unknown-layer.ron", &["6:9: unknown layer `Pas`; did you mean `Pass`?"]),
        ("unknown-param.ron", &["5:14: unknown parameter `cout` of `Pass`; expected one of `count`"]),
        ("wrong-type.ron", &["5:21: parameter `count` of `Pass`: expected boolean, found `\"yes\"`"]),
        ("empty.ron", &["4:13: empty stack: `layers` lists no layer"]),
        ("not-ron.ron", &["6:5: not RON: `]` does not close `(` opened at 5:13"]),
        (
            "many.ron",
            &[
                "4:53: parameter `ttl` of `Udp`: expected integer, found `\"one\"`",
                "5:5: unknown field `layres`; expected one of `name`, `group`, `transport`, `layers`",
                "6:32: unknown parameter `speed` of `Pass`; expected one of `count`",
                "6:43: unknown layer `Nak`; known layers: `Pass`",
            ],
        ),
    ];
    for (name, expected) in cases {
        let file = fixture(name);
        let (code, out, err) = check(&[&file]);
        assert_eq!(code, 1, "{name}");
        assert!(out.is_empty(), "{name}: {out:?}");
        let expected: Vec<String> = expected.iter().map(|e| format!("{file}:{e}")).collect();
        assert_eq!(err, expected, "{name}");
    }
}

#[test]
fn a_missing_file_is_reported_and_the_others_still_checked() {
    assert!(!Path::new(env!("CARGO_MANIFEST_DIR")).join("no-such.ron").exists());
    let (code, out, err) = check(&["no-such.ron", "pass.ron", &fixture("empty.ron")]);
    assert_eq!(code, 1);
    assert!(out[0].starts_with("pass.ron: stack `pass`"), "{out:?}");
    assert_eq!(err.len(), 3, "{err:?}");
    assert!(err[0].starts_with("no-such.ron: cannot read the descriptor: "), "{err:?}");
    assert_eq!(err[1], "tests/fixtures/empty.ron:4:13: empty stack: `layers` lists no layer");
    assert_eq!(err[2], "2 of 3 descriptors have problems");
}

#[test]
fn no_file_is_a_usage_error() {
    let (code, out, _) = check(&[]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
}
