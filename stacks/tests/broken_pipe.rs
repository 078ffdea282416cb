//! Output piped into a reader that stops early ends `strata` quietly: no panic
//! about a broken pipe.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_member_whose_reader_goes_away_ends_without_a_panic() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["member", "--stack", "stacks/vsync.ron", "--name", "pipe", "--duration", "3"])
        .args(["--group", "239.255.42.52:7452"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strata runs");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.starts_with("member pipe"), "{first}");
    drop(out); // the reader goes away, like `| head -1`
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "strata member did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!err.contains("panicked"), "{status:?}: {err}");
}
