//! Virtual synchrony end to end: `Nak, Frag, Stable, Suspect, Membership, Flush` in
//! the deterministic simulator, each scenario from a seed, judged by the conformance
//! checkers over every member's trace.

use conformance::{check, Property, Traces};
use layers::flush::Flush;
use layers::frag::{Frag, FragParams};
use layers::membership::Membership;
use layers::nak::Nak;
use layers::stable::{Stable, StableParams};
use layers::suspect::{Suspect, SuspectParams};
use stack_core::{Layer, Stack, StackConfig};
use transports::sim::{Action, NetConfig, Sim, SimConfig, StopReason, Workload};

fn vsync_stack(c: StackConfig) -> Stack {
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(Nak::default()),
        Box::new(Frag::new(FragParams { mtu: 1400, ..FragParams::default() })),
        Box::new(Stable::new(StableParams { period_ms: 100, ..StableParams::default() })),
        Box::new(Suspect::new(SuspectParams { timeout_ms: 1000, heartbeat_ms: 0 })),
        Box::new(Membership::default()),
        Box::new(Flush::default()),
    ];
    Stack::new(layers, c)
}

const PROPS: &[Property] = &[
    Property::Integrity,
    Property::Fifo,
    Property::ViewAgreement,
    Property::ViewOrder,
    Property::SameView,
    Property::VirtualSynchrony,
    Property::SelfDelivery,
    Property::PrimaryPartition,
    Property::Liveness,
];

fn sim(seed: u64, nodes: u32, net: NetConfig, workload: Workload) -> Sim {
    let cfg = SimConfig {
        seed,
        nodes,
        net,
        workload,
        deadline_ms: 60_000,
        settle_ms: 3000,
        ..SimConfig::default()
    };
    Sim::new(cfg, Box::new(vsync_stack))
}

fn traces(sim: &Sim) -> Traces {
    let files: Vec<(String, String)> = sim
        .traces()
        .into_iter()
        .map(|(n, b)| (n, String::from_utf8(b).expect("utf-8 trace")))
        .collect();
    Traces::parse(files).expect("traces parse")
}

fn assert_conforms(sim: &Sim) {
    let t = traces(sim);
    let v = check(&t, PROPS);
    assert!(
        v.is_empty(),
        "seed {}: {} violations, first: {:#?}\n{}",
        sim.seed(),
        v.len(),
        &v[..v.len().min(5)],
        sim.report()
    );
}

/// Every live member ends in the same view, with exactly `n` members.
fn assert_one_view(sim: &Sim, n: usize) -> u64 {
    let r = sim.report();
    let views: Vec<&(u64, Vec<String>)> = r.views.values().collect();
    assert!(!views.is_empty(), "{r}");
    assert!(views.iter().all(|v| *v == views[0]), "members disagree on the final view: {r}");
    assert_eq!(views[0].1.len(), n, "{r}");
    views[0].0
}

/// Runs until every live member is in one view of `n` members, or fails at `bound_ms`.
fn converge(sim: &mut Sim, n: usize, bound_ms: u64) -> u64 {
    let start = sim.now();
    loop {
        sim.run_for_ms(50);
        let live = sim.live_members();
        let views: Vec<_> = live
            .iter()
            .filter_map(|m| sim.stack(m.node()).and_then(|s| s.view().cloned()))
            .collect();
        if views.len() == live.len()
            && live.len() == n
            && views.iter().all(|v| v == &views[0] && v.len() == n)
        {
            return sim.now().since(start).as_millis() as u64;
        }
        assert!(
            sim.now().since(start).as_millis() as u64 <= bound_ms,
            "seed {}: no single view of {n} within {bound_ms} ms: {:?}",
            sim.seed(),
            views
        );
    }
}

#[test]
fn three_members_found_one_group_and_deliver_everything() {
    let mut s = sim(1, 3, NetConfig::perfect(), Workload::every(20, 64, 2000));
    let stop = s.run_until_quiet();
    assert!(matches!(stop, StopReason::AllDelivered | StopReason::Settled), "{stop:?}");
    assert_one_view(&s, 3);
    assert_conforms(&s);
}

#[test]
fn joins_one_by_one_up_to_seven() {
    let mut s = sim(2, 1, NetConfig::perfect(), Workload::every(30, 64, 5000));
    converge(&mut s, 1, 3000);
    for n in 2..=7 {
        s.apply(Action::Join);
        let t = converge(&mut s, n, 3000);
        assert!(t <= 3000);
    }
    s.run_until_quiet();
    assert_one_view(&s, 7);
    assert_conforms(&s);
}
