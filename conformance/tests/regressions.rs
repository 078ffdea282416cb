//! Every scenario kept in `conformance/regressions/` (each once failed) runs and must
//! be judged as its case expects. Cases whose bug is still open (`open_bug`) only run
//! in the ignored test below.

use conformance::campaign::{load_regressions, Expected, RegressionCase};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn cases() -> Vec<(PathBuf, RegressionCase)> {
    load_regressions(&Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions"))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `cases`, returns one line per case not judged as expected.
fn failures<'a>(cases: impl Iterator<Item = &'a (PathBuf, RegressionCase)>) -> Vec<String> {
    let registry = Arc::new(layers::registry());
    let mut bad = Vec::new();
    for (path, case) in cases {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        match case.run(&root(), registry.clone()) {
            Err(e) => bad.push(format!("{name}: {e}")),
            Ok(o) => match case.expected {
                Expected::Pass if o.ok() && o.sim.integrity_errors == 0 => {}
                Expected::Pass => bad.push(format!(
                    "{name}: {}\n  replay: {}",
                    o.violations().first().map(|v| v.to_string()).unwrap_or_else(|| {
                        format!("{} payloads differ from what was cast", o.sim.integrity_errors)
                    }),
                    case.scenario.command_line()
                )),
            },
        }
    }
    bad
}

#[test]
fn every_kept_scenario_passes() {
    let all = cases();
    let fixed: Vec<_> = all.iter().filter(|(_, c)| c.open_bug.is_none()).collect();
    assert!(!fixed.is_empty(), "no regression case without an open bug");
    let bad = failures(fixed.into_iter());
    assert!(bad.is_empty(), "{} kept scenarios fail:\n{}", bad.len(), bad.join("\n"));
}

#[test]
#[ignore = "open bugs: each case's `open_bug` names it; run with --ignored once fixed"]
fn scenarios_of_open_bugs_pass() {
    let all = cases();
    let bad = failures(all.iter().filter(|(_, c)| c.open_bug.is_some()));
    assert!(bad.is_empty(), "{} open-bug scenarios still fail:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn cases_read_back_as_written() {
    for (path, case) in cases() {
        let again = RegressionCase::from_ron(&case.to_ron())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(again, case, "{}", path.display());
        assert!(root().join(&case.scenario.stack).is_file(), "{}: no such stack", path.display());
    }
}
