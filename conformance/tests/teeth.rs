//! The checkers have teeth: real stacks run in the simulator with one layer broken on
//! purpose (see `support/broken.rs`) on top, and each breakage is reported under the
//! property it violates, while the same stack and scenario without it passes.

#[path = "support/broken.rs"]
mod broken;

use conformance::scenario::{self, Outcome, Scenario};
use conformance::{Property, Traces};
use stack_core::descriptor::Descriptor;
use stack_core::registry::Registry;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn registry() -> Arc<Registry> {
    let mut r = layers::registry();
    broken::register(&mut r);
    Arc::new(r)
}

/// The shipped descriptor `stacks/<name>.ron`, with `top` (if any) added above its top
/// layer.
fn stack(name: &str, top: Option<&str>) -> Descriptor {
    let path = root().join("stacks").join(format!("{name}.ron"));
    let mut text = std::fs::read_to_string(&path).expect("read descriptor");
    if let Some(layer) = top {
        let at = text.rfind("    ],").expect("layer list end");
        text.insert_str(at, &format!("        {layer},\n"));
    }
    Descriptor::parse(&text, &path.display().to_string(), &registry())
        .unwrap_or_else(|e| panic!("{name} + {top:?}: {e}"))
}

fn run(desc: &Descriptor, scn: &Scenario) -> Outcome {
    let o = scenario::run(scn, desc, registry(), None, true).expect("scenario runs");
    assert!(o.sim.sent > 0 && o.sim.delivered > 0, "{}", o.sim);
    o
}

fn violated(o: &Outcome) -> BTreeSet<Property> {
    o.violations().iter().map(|v| v.property).collect()
}

/// Runs `scn` over `name` unbroken (must pass) and with `broken` on top; returns the
/// properties the broken run violates.
fn break_it(name: &str, broken: &str, scn: &Scenario) -> (Outcome, BTreeSet<Property>) {
    let clean = run(&stack(name, None), scn);
    assert!(clean.ok(), "{name} unbroken: {:?}\n{}", clean.violations(), scn.command_line());
    let o = run(&stack(name, Some(broken)), scn);
    let v = violated(&o);
    (o, v)
}

/// Three members, 30 casts each, a perfect network.
fn small(name: &str) -> Scenario {
    Scenario {
        stack: PathBuf::from(format!("stacks/{name}.ron")),
        members: 3,
        messages: 30,
        ..Scenario::default()
    }
}

/// Four members and a fifth that joins: the stack installs several views.
fn with_join(name: &str) -> Scenario {
    Scenario { members: 4, joins: 1, messages: 40, ..small(name) }
}

/// How many casts `member` delivered in its first view, when it installed a second
/// one afterwards.
fn delivered_in_first_view(traces: &Traces, member: &str) -> Option<u64> {
    let t = traces.member(member)?;
    let mut views = 0;
    let mut n = 0;
    for e in &t.events {
        match e.kind {
            conformance::EventKind::View { .. } => {
                views += 1;
                if views == 2 {
                    return Some(n);
                }
            }
            conformance::EventKind::Deliver { .. } if views == 1 => n += 1,
            _ => {}
        }
    }
    None
}

/// The last cast `m1.0` delivers in its first view, on a stack that changes views.
fn last_of_first_view(name: &str, scn: &Scenario) -> u64 {
    let clean = run(&stack(name, None), scn);
    let n = delivered_in_first_view(&clean.traces, "m1.0").expect("m1.0 changes views");
    assert!(n >= 1, "m1.0 delivered nothing in its first view");
    n
}

#[test]
fn a_dropped_message_is_a_fifo_gap_and_a_liveness_failure() {
    let (o, v) = break_it("fifo-sim", "DropNth(node: 1, nth: 7)", &small("fifo-sim"));
    assert!(v.contains(&Property::Fifo), "{:?}", o.violations());
    assert!(v.contains(&Property::Liveness), "{:?}", o.violations());
    assert_eq!(o.sim.counter("drop_nth.dropped"), 1);
    // Exactly the dropped message is missing at m1.0 (liveness names it).
    let missing: Vec<&Vec<String>> = o
        .violations()
        .iter()
        .filter(|x| x.property == Property::Liveness)
        .map(|x| &x.messages)
        .collect();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0].len(), 1, "{missing:?}");
}

#[test]
fn a_message_dropped_before_a_view_change_breaks_virtual_synchrony() {
    let scn = with_join("vsync");
    let nth = last_of_first_view("vsync", &scn);
    let (o, v) = break_it("vsync", &format!("DropNth(node: 1, nth: {nth})"), &scn);
    assert!(v.contains(&Property::VirtualSynchrony), "{:?}", o.violations());
    assert!(v.contains(&Property::Liveness), "{:?}", o.violations());
}

#[test]
fn a_reordered_message_is_a_fifo_violation() {
    let broken = "SwapNth(node: 2, nth: 10, same_sender: true)";
    let (o, v) = break_it("fifo-sim", broken, &small("fifo-sim"));
    assert!(v.contains(&Property::Fifo), "{:?}", o.violations());
    // Late, not lost: every message is still delivered once.
    assert!(!v.contains(&Property::Liveness), "{:?}", o.violations());
    assert!(!v.contains(&Property::Integrity), "{:?}", o.violations());
}

#[test]
fn a_reordered_message_on_a_total_order_stack_is_a_total_violation() {
    let scn = Scenario { members: 4, interval_us: 0, ..small("total") };
    let (o, v) = break_it("total", "SwapNth(node: 2, nth: 10, same_sender: false)", &scn);
    assert!(o.properties.contains(&Property::Total));
    assert!(v.contains(&Property::Total), "{:?}", o.violations());
    let t: Vec<_> = o.violations().iter().filter(|x| x.property == Property::Total).collect();
    assert!(t.iter().all(|x| x.members.contains(&"m2.0".to_string())), "{t:?}");
}

#[test]
fn a_message_delivered_in_a_later_view_breaks_same_view() {
    let scn = with_join("vsync");
    let nth = last_of_first_view("vsync", &scn);
    let broken = format!("LateNth(node: 1, nth: {nth}, release: true)");
    let (o, v) = break_it("vsync", &broken, &scn);
    assert!(v.contains(&Property::SameView), "{:?}", o.violations());
    let sv: Vec<_> = o.violations().iter().filter(|x| x.property == Property::SameView).collect();
    assert_eq!(sv.len(), 1, "{sv:?}");
    assert_eq!(sv[0].members[0], "m1.0");
}

#[test]
fn a_skipped_flush_breaks_virtual_synchrony() {
    let scn = with_join("vsync");
    let nth = last_of_first_view("vsync", &scn);
    let broken = format!("LateNth(node: 1, nth: {nth}, release: false)");
    let (o, v) = break_it("vsync", &broken, &scn);
    assert!(v.contains(&Property::VirtualSynchrony), "{:?}", o.violations());
    let vs: Vec<_> =
        o.violations().iter().filter(|x| x.property == Property::VirtualSynchrony).collect();
    assert_eq!(vs.len(), 1, "{vs:?}");
    assert_eq!(vs[0].members[0], "m1.0", "{vs:?}");
    assert!(!v.contains(&Property::SameView), "{:?}", o.violations());
}

#[test]
fn a_duplicated_delivery_breaks_integrity() {
    let (o, v) = break_it("fifo-sim", "DupNth(node: 0, nth: 5)", &small("fifo-sim"));
    assert!(v.contains(&Property::Integrity), "{:?}", o.violations());
    let i: Vec<_> = o.violations().iter().filter(|x| x.property == Property::Integrity).collect();
    assert_eq!(i.len(), 1, "{i:?}");
    assert_eq!(i[0].members, ["m0.0"]);
}

#[test]
fn fifo_alone_with_concurrent_senders_is_not_a_total_order() {
    let scn = Scenario { members: 5, messages: 50, interval_us: 0, ..small("fifo") };
    let o = run(&stack("fifo", None), &scn);
    // It keeps every promise it makes...
    assert!(!o.properties.contains(&Property::Total));
    assert!(o.ok(), "{:?}", o.violations());
    // ...but not total order, which it does not make.
    let t = conformance::total(&o.traces);
    assert!(!t.is_empty(), "five concurrent senders delivered in one order everywhere");
    assert!(t.iter().all(|x| x.property == Property::Total));
}
