//! The ordering stacks end to end in the simulator: five members casting concurrently
//! through 10 % loss, the sequencer (the coordinator, node 0) crashing mid-run and a new
//! member joining. Each shipped ordering stack must pass the view checks and the order
//! it claims (causal or total), judged from the traces.

use conformance::scenario::{load, properties_for};
use conformance::{check, Property, Traces};
use stack_core::Stack;
use std::path::Path;
use std::sync::Arc;
use transports::sim::{seed_from_env, Action, NetConfig, Sim, SimConfig, Workload};

fn run(stack: &str, seed: u64) -> (Sim, Vec<Property>) {
    let registry = Arc::new(layers::registry());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("stacks").join(stack);
    let desc = load(&path, &registry).expect("shipped descriptor loads");
    let props = properties_for(&desc.provides());
    let cfg = SimConfig {
        seed,
        nodes: 5,
        net: NetConfig::lossy(0.1, 0.0, 0.1),
        workload: Workload::every(150, 100, 3000),
        deadline_ms: 60_000,
        settle_ms: 3000,
        ..SimConfig::default()
    };
    let factory =
        Box::new(move |c| Stack::new(desc.build_layers(&registry).unwrap_or_default(), c));
    let mut sim = Sim::new(cfg, factory);
    // The group forms, everyone casts; then the sequencer fails and a member joins.
    sim.schedule_ms(1500, Action::Crash(0));
    sim.schedule_ms(1800, Action::Join);
    sim.run_until_quiet();
    (sim, props)
}

fn judge(stack: &str, order: Property) {
    for seed in [seed_from_env(1), 2, 3] {
        let (sim, props) = run(stack, seed);
        assert!(props.contains(&order), "{stack} should claim {order:?}");
        let traces = Traces::parse(
            sim.traces().into_iter().map(|(n, b)| (n, String::from_utf8_lossy(&b).into_owned())),
        )
        .expect("traces parse");
        let violations = check(&traces, &props);
        assert!(
            violations.is_empty(),
            "{stack} seed {seed}: {} violations, first {:#?}\n{}",
            violations.len(),
            &violations[..violations.len().min(3)],
            sim.report()
        );
        let r = sim.report();
        // Node 0 crashed and a sixth member joined: the survivors agree on 5 members.
        let finals: Vec<_> = r.views.values().collect();
        assert!(finals.iter().all(|v| *v == finals[0] && v.1.len() == 5), "{r}");
        assert!(!finals[0].1.contains(&"m0.0".to_string()), "{r}");
        assert!(r.delivered > 5 * 150 * 3, "too little traffic got through: {r}");
    }
}

#[test]
fn causal_stack_keeps_causal_order_through_sequencer_crash_and_join() {
    judge("causal.ron", Property::Causal);
}

#[test]
fn sequencer_total_order_survives_the_sequencer_crash_and_a_join() {
    judge("total.ron", Property::Total);
}

#[test]
fn lamport_total_order_survives_a_crash_and_a_join() {
    judge("total-lamport.ron", Property::Total);
}

#[test]
fn safe_total_order_survives_the_sequencer_crash_and_a_join() {
    judge("safe.ron", Property::Total);
}
