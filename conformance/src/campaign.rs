//! Randomized campaigns: many generated [`Scenario`]s run against descriptors in the
//! simulator, each judged by the checkers its stack calls for; failures are shrunk to
//! smaller failing scenarios and kept as regression cases.
//!
//! # Generation
//!
//! [`generate`] draws a scenario from any [`Source`] of randomness: a seeded
//! [`Rng`] (what `strata sim --campaign` uses, so a campaign seed fixes every
//! scenario) or a quickcheck [`Gen`] (the [`Arbitrary`] impl of [`Scenario`], whose
//! [`shrink`](Arbitrary::shrink) follows [`shrink_candidates`]). Members 2 to 7;
//! 1 to 1000 casts per member of 1 byte to 20 kB, paced or flooded; loss,
//! duplication and reordering in whole percent; crashes, restarts, a partition,
//! joins and leaves.
//!
//! # What each stack is given
//!
//! A scenario only contains faults its stack is meant to survive, as
//! [`FaultModel::of`] derives from what the stack provides, so that every violation
//! the checkers report is a real one:
//!
//! * **duplication** only with `reliable_fifo`: integrity promises at most once
//!   delivery, and only a reliable layer filters the network's copies.
//! * **crashes, restarts, joins, leaves** only with `views`: a static member list has
//!   no place for a new incarnation or a newcomer (view agreement would fail by
//!   design), and nothing removes a crashed member from it, so stability and flow
//!   control wait for it forever and the survivors' own casts stall (liveness and self
//!   delivery would fail by design).
//! * **a partition** always: it heals, and without views a healed partition is a long
//!   loss burst that reliable retransmission must repair.
//!
//! # Failures
//!
//! A failing run is reported with its seed and the `strata sim` command line that
//! replays it ([`Scenario::command_line`]), shrunk ([`shrink`]) while it still
//! violates one of the properties it first violated, and, when a regression folder is
//! given, written there as a [`RegressionCase`] (`<stack>-<seed>.ron`).

use crate::scenario::{self, Outcome, Scenario, ScenarioError};
use quickcheck::{Arbitrary, Gen};
use serde::{Deserialize, Serialize};
use stack_core::descriptor::Descriptor;
use stack_core::props;
use stack_core::registry::Registry;
use stack_core::{Property as StackProperty, Rng};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A source of uniform random numbers for [`generate`].
pub trait Source {
    /// A number uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64;
    /// A full 64-bit number.
    fn any(&mut self) -> u64;
}

impl Source for Rng {
    fn below(&mut self, n: u64) -> u64 {
        Rng::below(self, n)
    }
    fn any(&mut self) -> u64 {
        self.next_u64()
    }
}

impl Source for Gen {
    fn below(&mut self, n: u64) -> u64 {
        u64::arbitrary(self) % n.max(1)
    }
    fn any(&mut self) -> u64 {
        u64::arbitrary(self)
    }
}

/// A number uniform in `lo..=hi`.
fn between(src: &mut impl Source, lo: u64, hi: u64) -> u64 {
    lo + src.below(hi.saturating_sub(lo) + 1)
}

/// True with probability `num / den`.
fn odds(src: &mut impl Source, num: u64, den: u64) -> bool {
    src.below(den) < num
}

/// Zero with probability `1 - p_nonzero/den`, else a whole percentage in `1..=max_pct`
/// (whole percentages print and parse back exactly on a command line).
fn rate(src: &mut impl Source, p_nonzero: u64, den: u64, max_pct: u64) -> f64 {
    if odds(src, p_nonzero, den) {
        between(src, 1, max_pct) as f64 / 100.0
    } else {
        0.0
    }
}

/// The fault kinds a stack is given (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FaultModel {
    pub duplicates: bool,
    pub crashes: bool,
    pub restarts: bool,
    pub partitions: bool,
    pub joins: bool,
    pub leaves: bool,
}

impl FaultModel {
    /// Every fault kind.
    pub const ALL: FaultModel = FaultModel {
        duplicates: true,
        crashes: true,
        restarts: true,
        partitions: true,
        joins: true,
        leaves: true,
    };

    /// Loss, duplication and reordering only.
    pub const NETWORK: FaultModel = FaultModel {
        duplicates: true,
        crashes: false,
        restarts: false,
        partitions: false,
        joins: false,
        leaves: false,
    };

    /// What a stack providing `provides` is meant to survive.
    pub fn of(provides: &BTreeSet<StackProperty>) -> FaultModel {
        let reliable = provides.contains(&props::RELIABLE_FIFO);
        let views = provides.contains(&props::VIEWS);
        FaultModel {
            duplicates: reliable,
            crashes: views,
            restarts: views,
            partitions: true,
            joins: views,
            leaves: views,
        }
    }

    /// The fault kinds both models allow.
    pub fn and(self, o: FaultModel) -> FaultModel {
        FaultModel {
            duplicates: self.duplicates && o.duplicates,
            crashes: self.crashes && o.crashes,
            restarts: self.restarts && o.restarts,
            partitions: self.partitions && o.partitions,
            joins: self.joins && o.joins,
            leaves: self.leaves && o.leaves,
        }
    }

    /// `scn` without the faults this model excludes.
    pub fn fit(self, scn: &Scenario) -> Scenario {
        let mut s = scn.clone();
        if !self.duplicates {
            s.dup = 0.0;
        }
        if !self.crashes {
            s.crash = 0;
        }
        if !self.restarts || s.crash == 0 {
            s.restart = false;
        }
        if !self.partitions {
            s.partition = false;
        }
        if !self.joins {
            s.joins = 0;
        }
        if !self.leaves {
            s.leaves = 0;
        }
        s
    }
}

/// Draws a scenario for `stack` containing only faults `model` allows.
pub fn generate(src: &mut impl Source, stack: &Path, model: FaultModel) -> Scenario {
    let members = between(src, 2, 7) as u32;
    let seed = src.any();
    let messages = match src.below(8) {
        0..=2 => between(src, 1, 20),
        3..=6 => between(src, 20, 200),
        _ => between(src, 200, 1000),
    };
    let (min_size, max_size) = match src.below(4) {
        0 | 1 => {
            let s = between(src, 1, 256) as usize;
            (s, s)
        }
        2 => (1, between(src, 2, 2000) as usize),
        _ => (between(src, 1000, 4000) as usize, between(src, 4000, 20_000) as usize),
    };
    let interval_us = if odds(src, 1, 4) { 0 } else { between(src, 50, 2000) };
    let loss = rate(src, 1, 2, 30);
    let dup = rate(src, 1, 3, 10);
    let reorder = rate(src, 1, 2, 30);
    let crash = if odds(src, 1, 4) {
        between(src, 1, u64::from((members - 1) / 2).max(1)) as u32
    } else {
        0
    };
    let restart = odds(src, 1, 2);
    let partition = odds(src, 1, 5);
    let joins = if odds(src, 1, 5) { between(src, 1, 2) as u32 } else { 0 };
    let spare = members.saturating_sub(1 + crash);
    let leaves =
        if spare > 0 && odds(src, 1, 5) { between(src, 1, spare.min(2) as u64) as u32 } else { 0 };
    let scn = Scenario {
        stack: stack.to_path_buf(),
        members,
        seed,
        messages,
        min_size,
        max_size,
        interval_us,
        loss,
        dup,
        reorder,
        crash,
        restart,
        partition,
        joins,
        leaves,
        ..Scenario::default()
    };
    model.fit(&scn)
}

/// Smaller variants of `s`, most promising first: fewer members and messages, then
/// each fault removed, then smaller and fixed payloads and the default pace. Each
/// differs from `s` in one field.
pub fn shrink_candidates(s: &Scenario) -> Vec<Scenario> {
    let mut out = Vec::new();
    let mut with = |f: &dyn Fn(&mut Scenario)| {
        let mut c = s.clone();
        f(&mut c);
        if c.crash == 0 {
            c.restart = false;
        }
        if &c != s && !out.contains(&c) {
            out.push(c);
        }
    };
    if s.members > 2 {
        with(&|c| c.members = 2);
        with(&|c| c.members -= 1);
    }
    if s.messages > 1 {
        with(&|c| c.messages = 1);
        with(&|c| c.messages /= 2);
        with(&|c| c.messages -= 1);
    }
    if s.crash > 0 {
        with(&|c| c.crash -= 1);
    }
    with(&|c| c.restart = false);
    with(&|c| c.partition = false);
    if s.joins > 0 {
        with(&|c| c.joins -= 1);
    }
    if s.leaves > 0 {
        with(&|c| c.leaves -= 1);
    }
    with(&|c| c.loss = 0.0);
    with(&|c| c.dup = 0.0);
    with(&|c| c.reorder = 0.0);
    with(&|c| c.max_size = c.min_size);
    if s.min_size > 1 {
        with(&|c| {
            c.min_size /= 2;
            c.max_size = c.max_size.max(c.min_size) / 2;
        });
    }
    with(&|c| c.interval_us = Scenario::default().interval_us);
    out
}

/// Quickcheck draws scenarios over the default stack with every fault kind; fit one
/// to a stack with [`FaultModel::fit`].
impl Arbitrary for Scenario {
    fn arbitrary(g: &mut Gen) -> Scenario {
        generate(g, &Scenario::default().stack, FaultModel::ALL)
    }
    fn shrink(&self) -> Box<dyn Iterator<Item = Scenario>> {
        Box::new(shrink_candidates(self).into_iter())
    }
}

/// Greedily shrinks `scn` while `fails` holds: takes the first failing candidate of
/// [`shrink_candidates`] and starts over, until none fails or `max_runs` candidates
/// were tried. Returns the smallest failing scenario found (`scn` itself if none).
pub fn shrink(
    scn: &Scenario,
    mut fails: impl FnMut(&Scenario) -> bool,
    max_runs: usize,
) -> Scenario {
    let mut cur = scn.clone();
    let mut runs = 0;
    'outer: loop {
        for c in shrink_candidates(&cur) {
            if runs >= max_runs {
                break 'outer;
            }
            runs += 1;
            if fails(&c) {
                cur = c;
                continue 'outer;
            }
        }
        break;
    }
    cur
}

/// The names of the properties `o` violated, sorted, with `payload` when the
/// simulator found a delivered payload that differs from what its sender cast.
pub fn violated(o: &Outcome) -> BTreeSet<String> {
    let mut v: BTreeSet<String> =
        o.violations().iter().map(|v| v.property.name().to_string()).collect();
    if o.sim.integrity_errors > 0 {
        v.insert(PAYLOAD.to_string());
    }
    v
}

/// The pseudo-property of payloads delivered intact (judged by the simulator).
pub const PAYLOAD: &str = "payload";

/// What a kept failing scenario expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expected {
    /// Every property the stack calls for holds.
    Pass,
}

/// A scenario kept in `conformance/regressions/` because it once failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegressionCase {
    /// What the case once caught, and how it was found.
    pub note: String,
    pub expected: Expected,
    /// Set while the bug the case catches is open: the case is then only run by an
    /// ignored test (the text says which bug).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_bug: Option<String>,
    /// `stack` is relative to the workspace root.
    pub scenario: Scenario,
}

impl RegressionCase {
    pub fn to_ron(&self) -> String {
        let cfg = ron::ser::PrettyConfig::new().struct_names(true);
        ron::ser::to_string_pretty(self, cfg).unwrap_or_else(|e| format!("// {e}"))
    }

    pub fn from_ron(text: &str) -> Result<RegressionCase, String> {
        ron::from_str(text).map_err(|e| e.to_string())
    }

    /// Runs the case, its stack path resolved against `root`, and judges it.
    pub fn run(&self, root: &Path, registry: Arc<Registry>) -> Result<Outcome, ScenarioError> {
        let desc = scenario::load(&root.join(&self.scenario.stack), &registry)?;
        scenario::run(&self.scenario, &desc, registry, None, true)
    }
}

/// Every `*.ron` file under `dir` as a regression case, sorted by file name.
pub fn load_regressions(dir: &Path) -> Result<Vec<(PathBuf, RegressionCase)>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ron"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let case =
                RegressionCase::from_ron(&text).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok((p, case))
        })
        .collect()
}

/// Checked and failed runs of one property on one stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Runs in which the property was judged.
    pub checked: u64,
    /// Runs that violated it.
    pub failed: u64,
}

/// One failing run.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub stack: String,
    /// The scenario's index in the campaign.
    pub index: u64,
    /// The run's seed.
    pub seed: u64,
    /// The violated properties.
    pub violated: Vec<String>,
    /// The first violation (or the error that stopped the run).
    pub first: String,
    /// The `strata sim` command line that replays the run.
    pub replay: String,
    pub scenario: Scenario,
    /// The smallest failing variant found, and its replay line.
    pub shrunk: Scenario,
    pub shrunk_replay: String,
    /// Where the shrunk case was written as a regression case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved: Option<PathBuf>,
}

/// What a campaign found.
#[derive(Clone, Debug, Serialize)]
pub struct CampaignSummary {
    pub seed: u64,
    /// Scenarios generated (each run against every stack).
    pub scenarios: u64,
    /// Runs made (scenarios times stacks), not counting shrinking.
    pub runs: u64,
    /// Per stack, per property: runs judged and failed.
    pub stacks: BTreeMap<String, BTreeMap<String, Tally>>,
    pub failures: Vec<Failure>,
    /// Wall time, seconds.
    pub seconds: f64,
}

impl CampaignSummary {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// A campaign's settings.
pub struct Campaign {
    /// Scenarios to generate.
    pub scenarios: u64,
    /// Descriptor paths; every scenario runs against each.
    pub stacks: Vec<PathBuf>,
    pub seed: u64,
    /// Builds the stacks' layers.
    pub registry: Arc<Registry>,
    /// Fault kinds allowed on top of what each stack is meant to survive.
    pub allow: FaultModel,
    /// Worker threads.
    pub threads: usize,
    /// Candidate runs spent shrinking one failure.
    pub shrink_runs: usize,
    /// Where to write shrunk failures as regression cases.
    pub save_to: Option<PathBuf>,
    /// Progress lines go here (stderr in `strata sim --campaign`).
    pub progress: Option<Box<dyn Write + Send + Sync>>,
}

impl Campaign {
    /// `scenarios` scenarios against `stacks`, built-in layers, every fault kind, two
    /// threads, progress on stderr, nothing saved.
    pub fn new(scenarios: u64, stacks: Vec<PathBuf>, seed: u64) -> Campaign {
        Campaign {
            scenarios,
            stacks,
            seed,
            registry: Arc::new(layers::registry()),
            allow: FaultModel::ALL,
            threads: 2,
            shrink_runs: 60,
            save_to: None,
            progress: Some(Box::new(std::io::stderr())),
        }
    }

    /// The scenario `index` of the campaign for `stack` (deterministic in the seed).
    pub fn scenario(&self, index: u64, stack: &Path, model: FaultModel) -> Scenario {
        let mut rng = Rng::new(self.seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        generate(&mut rng, stack, model.and(self.allow))
    }

    /// Runs the campaign.
    pub fn run(mut self) -> Result<CampaignSummary, ScenarioError> {
        let start = std::time::Instant::now();
        let mut descs: Vec<(PathBuf, Descriptor, FaultModel)> = Vec::new();
        for p in &self.stacks {
            let d = scenario::load(p, &self.registry)?;
            let m = FaultModel::of(&d.provides());
            descs.push((p.clone(), d, m));
        }
        let jobs: Vec<(u64, usize)> =
            (0..self.scenarios).flat_map(|i| (0..descs.len()).map(move |s| (i, s))).collect();
        let results: Vec<Mutex<Option<RunResult>>> =
            jobs.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let progress = Mutex::new(self.progress.take());
        let this = &self;
        std::thread::scope(|sc| {
            for _ in 0..this.threads.max(1) {
                sc.spawn(|| loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(i, s)) = jobs.get(k) else { break };
                    let (path, desc, model) = &descs[s];
                    let scn = this.scenario(i, path, *model);
                    let r = this.run_one(i, &scn, desc);
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if let Some(w) = progress.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                        let verdict = match &r.failure {
                            None => "ok".to_string(),
                            Some(f) => {
                                format!("FAIL {} — {}", f.violated.join(","), f.shrunk_replay)
                            }
                        };
                        let _ = writeln!(
                            w,
                            "[{n}/{}] {} #{i} seed {}: {verdict}",
                            jobs.len(),
                            path.display(),
                            scn.seed
                        );
                    }
                    *results[k].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                });
            }
        });
        let mut summary = CampaignSummary {
            seed: self.seed,
            scenarios: self.scenarios,
            runs: jobs.len() as u64,
            stacks: BTreeMap::new(),
            failures: Vec::new(),
            seconds: 0.0,
        };
        for ((_, s), slot) in jobs.iter().zip(results) {
            let Some(r) = slot.into_inner().unwrap_or_else(|e| e.into_inner()) else { continue };
            let tallies = summary.stacks.entry(descs[*s].0.display().to_string()).or_default();
            for p in &r.judged {
                let t = tallies.entry(p.clone()).or_default();
                t.checked += 1;
                if r.failure.as_ref().is_some_and(|f| f.violated.contains(p)) {
                    t.failed += 1;
                }
            }
            if let Some(mut f) = r.failure {
                if let Some(dir) = &self.save_to {
                    f.saved = save(dir, &f).ok();
                }
                summary.failures.push(f);
            }
        }
        summary.seconds = start.elapsed().as_secs_f64();
        Ok(summary)
    }

    fn run_one(&self, index: u64, scn: &Scenario, desc: &Descriptor) -> RunResult {
        let mut judged: Vec<String> = Vec::new();
        let (violated_set, first) =
            match scenario::run(scn, desc, self.registry.clone(), None, true) {
                Ok(o) => {
                    judged = o.properties.iter().map(|p| p.name().to_string()).collect();
                    judged.push(PAYLOAD.to_string());
                    let first =
                        o.violations().first().map(|v| v.to_string()).unwrap_or_else(|| {
                            format!(
                                "{} delivered payloads differ from what was cast",
                                o.sim.integrity_errors
                            )
                        });
                    (violated(&o), first)
                }
                Err(e) => (BTreeSet::from(["error".to_string()]), e.to_string()),
            };
        if violated_set.is_empty() {
            return RunResult { judged, failure: None };
        }
        let shrunk = shrink(
            scn,
            |c| match scenario::run(c, desc, self.registry.clone(), None, true) {
                Ok(o) => violated(&o).intersection(&violated_set).next().is_some(),
                Err(_) => violated_set.contains("error"),
            },
            self.shrink_runs,
        );
        let failure = Failure {
            stack: scn.stack.display().to_string(),
            index,
            seed: scn.seed,
            violated: violated_set.into_iter().collect(),
            first,
            replay: scn.command_line(),
            scenario: scn.clone(),
            shrunk_replay: shrunk.command_line(),
            shrunk,
            saved: None,
        };
        RunResult { judged, failure: Some(failure) }
    }
}

struct RunResult {
    judged: Vec<String>,
    failure: Option<Failure>,
}

/// Writes `f`'s shrunk scenario as `<dir>/<stack>-<seed>.ron`.
fn save(dir: &Path, f: &Failure) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let stem = f.shrunk.stack.file_stem().map(|s| s.to_string_lossy().into_owned());
    let path = dir.join(format!("{}-{:016x}.ron", stem.unwrap_or_default(), f.shrunk.seed));
    let case = RegressionCase {
        note: format!(
            "Found by a campaign (scenario {}, run seed {}), shrunk: violated {}; first: {}. Replay: {}",
            f.index,
            f.seed,
            f.violated.join(", "),
            f.first,
            f.shrunk_replay
        ),
        expected: Expected::Pass,
        open_bug: None,
        scenario: f.shrunk.clone(),
    };
    std::fs::write(&path, case.to_ron() + "\n")?;
    Ok(path)
}

/// Runs `n` generated scenarios against every descriptor in `stacks` from `seed`, with
/// the built-in layers, on two threads, progress on stderr.
pub fn run_campaign(
    n: u64,
    stacks: &[PathBuf],
    seed: u64,
) -> Result<CampaignSummary, ScenarioError> {
    Campaign::new(n, stacks.to_vec(), seed).run()
}

/// The shipped descriptors: every `*.ron` directly under `dir` (e.g. `stacks/`), sorted.
pub fn shipped_stacks(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ron"))
        .collect();
    v.sort();
    Ok(v)
}
