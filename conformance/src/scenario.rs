//! Run one scenario — a descriptor, a group size, a workload and a fault schedule, all
//! fixed by a seed — in the simulator, and judge its traces with the checkers that
//! match what the stack declares it provides.
//!
//! This is what `strata sim` runs, and what campaigns and regression cases replay.

use crate::{Property, Report, Traces, Violation};
use serde::{Deserialize, Serialize};
use stack_core::descriptor::Descriptor;
use stack_core::props;
use stack_core::registry::Registry;
use stack_core::transport::TransportSpec;
use stack_core::{Property as StackProperty, Stack};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use transports::sim::{Faults, NetConfig, Sim, SimConfig, Workload};

/// Everything a simulated run depends on. The seed fixes every random decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// The descriptor, as a path.
    pub stack: PathBuf,
    pub members: u32,
    pub seed: u64,
    /// Casts per member.
    pub messages: u64,
    pub min_size: usize,
    pub max_size: usize,
    /// One cast per member every `interval_us`; 0 sends as fast as the stack accepts.
    pub interval_us: u64,
    pub loss: f64,
    pub dup: f64,
    pub reorder: f64,
    pub crash: u32,
    pub restart: bool,
    pub partition: bool,
    pub joins: u32,
    pub leaves: u32,
    /// Virtual deadline in milliseconds.
    pub deadline_ms: u64,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            stack: PathBuf::from("stacks/fifo.ron"),
            members: 3,
            seed: 1,
            messages: 100,
            min_size: 64,
            max_size: 64,
            interval_us: 1000,
            loss: 0.0,
            dup: 0.0,
            reorder: 0.0,
            crash: 0,
            restart: false,
            partition: false,
            joins: 0,
            leaves: 0,
            deadline_ms: 120_000,
        }
    }
}

impl Scenario {
    /// The `strata sim` command line that replays this scenario.
    pub fn command_line(&self) -> String {
        let mut s = format!(
            "strata sim --stack {} --members {} --seed {} --messages {} --size {}",
            self.stack.display(),
            self.members,
            self.seed,
            self.messages,
            if self.min_size == self.max_size {
                self.min_size.to_string()
            } else {
                format!("{}-{}", self.min_size, self.max_size)
            }
        );
        if self.interval_us != Scenario::default().interval_us {
            s += &format!(" --interval-us {}", self.interval_us);
        }
        for (flag, p) in [("--loss", self.loss), ("--dup", self.dup), ("--reorder", self.reorder)] {
            if p > 0.0 {
                s += &format!(" {flag} {p}");
            }
        }
        for (flag, n) in
            [("--crash", self.crash), ("--joins", self.joins), ("--leaves", self.leaves)]
        {
            if n > 0 {
                s += &format!(" {flag} {n}");
            }
        }
        if self.restart {
            s += " --restart";
        }
        if self.partition {
            s += " --partition";
        }
        if self.deadline_ms != Scenario::default().deadline_ms {
            s += &format!(" --deadline-ms {}", self.deadline_ms);
        }
        s + " --check"
    }
}

/// Why a scenario could not run (not a violation: a violation is a result).
#[derive(Debug, Error)]
pub enum ScenarioError {
    #[error("{0}")]
    Descriptor(String),
    #[error("reading the traces back: {0}")]
    Trace(#[from] crate::TraceError),
    #[error("writing traces to {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// What a run produced and how it was judged.
pub struct Outcome {
    pub sim: transports::sim::Report,
    /// The properties judged, following what the stack provides.
    pub properties: Vec<Property>,
    /// `None` when the run was not checked.
    pub check: Option<Report>,
    /// How many distinct views were installed, over all members.
    pub views: usize,
    /// The final view's member list (of the live member with the highest view id).
    pub final_view: Vec<String>,
    /// Every member's trace, as the checkers read it.
    pub traces: Traces,
}

impl Outcome {
    /// True when checked and no property was violated.
    pub fn ok(&self) -> bool {
        self.check.as_ref().is_none_or(|r| r.ok())
    }
    pub fn violations(&self) -> &[Violation] {
        self.check.as_ref().map(|r| &r.violations[..]).unwrap_or(&[])
    }
}

/// The checkers that apply to a stack providing `provides`.
pub fn properties_for(provides: &BTreeSet<StackProperty>) -> Vec<Property> {
    let mut v =
        vec![Property::Integrity, Property::ViewAgreement, Property::ViewOrder, Property::SameView];
    if provides.contains(&props::RELIABLE_FIFO) {
        v.extend([Property::Fifo, Property::SelfDelivery, Property::Liveness]);
    }
    if provides.contains(&props::VIRTUAL_SYNCHRONY) {
        v.push(Property::VirtualSynchrony);
    }
    if provides.contains(&props::VIEWS) {
        v.push(Property::PrimaryPartition);
    }
    if provides.contains(&props::CAUSAL) {
        v.push(Property::Causal);
    }
    if provides.contains(&props::TOTAL) {
        v.push(Property::Total);
    }
    v
}

/// Loads a descriptor with `registry`, as a one-line error on failure.
pub fn load(path: &Path, registry: &Registry) -> Result<Descriptor, ScenarioError> {
    Descriptor::load(path, registry).map_err(|e| ScenarioError::Descriptor(e.to_string()))
}

/// The simulator configuration a scenario describes.
pub fn sim_config(scn: &Scenario, desc: &Descriptor) -> SimConfig {
    let mut net = match &desc.transport {
        TransportSpec::Sim(spec) => NetConfig::from_spec(spec),
        _ => NetConfig::default(),
    };
    net.loss = scn.loss;
    net.duplicate = scn.dup;
    net.reorder = scn.reorder;
    let workload = Workload {
        messages: scn.messages,
        min_size: scn.min_size.min(scn.max_size),
        max_size: scn.max_size.max(scn.min_size),
        interval_us: (scn.interval_us > 0).then_some(scn.interval_us),
        ..Workload::default()
    };
    let faults = Faults {
        crashes: scn.crash,
        restart: scn.restart,
        partitions: scn.partition as u32,
        joins: scn.joins,
        leaves: scn.leaves,
        ..Faults::default()
    };
    SimConfig {
        seed: scn.seed,
        nodes: scn.members,
        net,
        workload,
        faults,
        deadline_ms: scn.deadline_ms,
        // Quiet must outlast the slowest repair timer: nak's digest backs off to 1.6 s
        // while nothing is new, so a last message lost during a partition is
        // announced up to 1.6 s after the heal.
        settle_ms: 2500,
        ..SimConfig::default()
    }
}

/// Runs `scn` over `desc` (layers built from `registry`), writes the traces to
/// `trace_dir` if given, and judges them when `check` is set.
pub fn run(
    scn: &Scenario,
    desc: &Descriptor,
    registry: Arc<Registry>,
    trace_dir: Option<&Path>,
    check: bool,
) -> Result<Outcome, ScenarioError> {
    // Building once up front turns a registry mismatch into an error, not a panic.
    desc.build_layers(&registry).map_err(|e| ScenarioError::Descriptor(e.to_string()))?;
    let factory_desc = desc.clone();
    let factory_reg = registry.clone();
    let factory = Box::new(move |cfg| {
        let layers = factory_desc.build_layers(&factory_reg).unwrap_or_default();
        Stack::new(layers, cfg)
    });
    let mut sim = Sim::new(sim_config(scn, desc), factory);
    sim.run_until_quiet();
    sim.finish();
    if let Some(dir) = trace_dir {
        std::fs::create_dir_all(dir)
            .and_then(|_| sim.write_traces(dir))
            .map_err(|source| ScenarioError::Io { path: dir.to_path_buf(), source })?;
    }
    let report = sim.report();
    let traces = Traces::parse(
        sim.traces()
            .into_iter()
            .map(|(name, bytes)| (name, String::from_utf8_lossy(&bytes).into_owned())),
    )?;
    let properties = properties_for(&desc.provides());
    let mut all_views: BTreeMap<u64, ()> = BTreeMap::new();
    for m in traces.members() {
        for (v, _) in m.views() {
            all_views.insert(v, ());
        }
    }
    let final_view = report
        .views
        .values()
        .max_by_key(|(id, _)| *id)
        .map(|(_, members)| members.clone())
        .unwrap_or_default();
    let check = check.then(|| Report::new(&traces, &properties));
    Ok(Outcome { sim: report, properties, check, views: all_views.len(), final_view, traces })
}
