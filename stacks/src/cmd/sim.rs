//! `strata sim`: run a group of members in the deterministic simulator over a
//! descriptor, print one JSON object on stdout, and with `--check` judge the traces.
//!
//! The same flags and seed always give the same run (and the same `trace_hash`).
//!
//! `--campaign N` instead runs N generated scenarios (from `--seed`) against the stack
//! named by `--stack`, or every shipped `stacks/*.ron` when none is named, shrinks each
//! failure, prints progress on stderr and a JSON summary on stdout, and exits 1 on any
//! failure. Failures are kept as regression cases in `--regressions DIR` (default
//! `conformance/regressions`, written only when that folder exists).

use anyhow::{bail, Context, Result};
use conformance::campaign::{self, Campaign};
use conformance::scenario::{self, Outcome, Scenario};
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// The stack descriptor [default: stacks/fifo.ron; with --campaign, every
    /// stacks/*.ron].
    #[arg(long, value_name = "FILE")]
    stack: Option<PathBuf>,
    /// Members at the start.
    #[arg(long, default_value_t = 3)]
    members: u32,
    /// The seed that fixes every decision of the run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Casts per member.
    #[arg(long, default_value_t = 100)]
    messages: u64,
    /// Payload size in bytes, or a range MIN-MAX.
    #[arg(long, default_value = "64", value_parser = parse_size)]
    size: (usize, usize),
    /// One cast per member every this many virtual microseconds (0: as fast as the
    /// stack accepts casts).
    #[arg(long, default_value_t = 1000)]
    interval_us: u64,
    /// Probability that a datagram is lost (0..1).
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    loss: f64,
    /// Probability that a datagram is duplicated (0..1).
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    dup: f64,
    /// Probability that a datagram is delayed past later ones (0..1).
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    reorder: f64,
    /// How many members crash at random times.
    #[arg(long, default_value_t = 0)]
    crash: u32,
    /// Crashed members come back as new incarnations.
    #[arg(long)]
    restart: bool,
    /// A random two-way partition that later heals.
    #[arg(long)]
    partition: bool,
    /// How many members join during the run.
    #[arg(long, default_value_t = 0)]
    joins: u32,
    /// How many members leave cleanly during the run.
    #[arg(long, default_value_t = 0)]
    leaves: u32,
    /// Virtual deadline in milliseconds.
    #[arg(long, default_value_t = 120_000)]
    deadline_ms: u64,
    /// Write one `<member>.jsonl` trace per member into this directory.
    #[arg(long, value_name = "DIR")]
    trace_dir: Option<PathBuf>,
    /// Judge the traces against what the stack provides; exit 1 on any violation.
    #[arg(long)]
    check: bool,
    /// Run this many generated scenarios (from --seed) instead of one, judged; the
    /// scenario flags are then ignored.
    #[arg(long, value_name = "N")]
    campaign: Option<u64>,
    /// With --campaign: where shrunk failures are written as regression cases (only
    /// if the folder exists).
    #[arg(long, value_name = "DIR", default_value = "conformance/regressions")]
    regressions: PathBuf,
    /// With --campaign: worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// With --campaign: at most this many runs spent shrinking each failure (0: none).
    #[arg(long, value_name = "RUNS", default_value_t = 60)]
    shrink: usize,
}

/// The descriptor run when `--stack` is not given.
const DEFAULT_STACK: &str = "stacks/fifo.ron";
/// Where the shipped descriptors are.
const SHIPPED: &str = "stacks";

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let one =
        |t: &str| t.trim().parse::<usize>().map_err(|_| format!("`{t}` is not a size in bytes"));
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (one(a)?, one(b)?),
        None => (one(s)?, one(s)?),
    };
    if lo > hi {
        return Err(format!("size range {lo}-{hi} is empty"));
    }
    Ok((lo, hi))
}

fn parse_probability(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("`{s}` is not a probability between 0 and 1")),
    }
}

impl Args {
    fn scenario(&self) -> Scenario {
        Scenario {
            stack: self.stack.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_STACK)),
            members: self.members,
            seed: self.seed,
            messages: self.messages,
            min_size: self.size.0,
            max_size: self.size.1,
            interval_us: self.interval_us,
            loss: self.loss,
            dup: self.dup,
            reorder: self.reorder,
            crash: self.crash,
            restart: self.restart,
            partition: self.partition,
            joins: self.joins,
            leaves: self.leaves,
            deadline_ms: self.deadline_ms,
        }
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    if let Some(n) = args.campaign {
        return run_campaign(&args, n);
    }
    if args.members == 0 {
        bail!("--members must be at least 1");
    }
    let registry = Arc::new(layers::registry());
    let scn = args.scenario();
    let desc = scenario::load(&scn.stack, &registry)?;
    let outcome = scenario::run(&scn, &desc, registry, args.trace_dir.as_deref(), args.check)
        .with_context(|| format!("running {}", scn.stack.display()))?;
    println!("{}", to_json(&scn, &outcome));
    Ok(if outcome.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn run_campaign(args: &Args, n: u64) -> Result<ExitCode> {
    let stacks = match &args.stack {
        Some(p) => vec![p.clone()],
        None => campaign::shipped_stacks(SHIPPED.as_ref())
            .with_context(|| format!("listing {SHIPPED}/*.ron"))?,
    };
    if stacks.is_empty() {
        bail!("no descriptor in {SHIPPED}/");
    }
    let mut c = Campaign::new(n, stacks, args.seed);
    c.threads = args.threads.max(1);
    c.shrink_runs = args.shrink;
    c.save_to = args.regressions.is_dir().then(|| args.regressions.clone());
    let summary = c.run().context("campaign")?;
    eprintln!(
        "{} scenarios, {} runs in {:.1} s ({:.1} runs/s), {} failed",
        summary.scenarios,
        summary.runs,
        summary.seconds,
        summary.runs as f64 / summary.seconds.max(1e-9),
        summary.failures.len()
    );
    for f in &summary.failures {
        eprintln!(
            "FAIL {} seed {}: {}\n  replay: {}\n  shrunk: {}",
            f.stack, f.seed, f.first, f.replay, f.shrunk_replay
        );
        if let Some(p) = &f.saved {
            eprintln!("  kept as {}", p.display());
        }
    }
    println!("{}", campaign_json(&summary));
    Ok(if summary.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// A campaign as one JSON object: `ok`, `seed`, `scenarios`, `runs`, `seconds`,
/// `stacks` (per stack, per property: `checked` and `failed` runs) and `failures`
/// (stack, seed, violated properties, first violation, `replay` and `shrunk` command
/// lines, where it was kept).
pub fn campaign_json(s: &campaign::CampaignSummary) -> Value {
    json!({
        "ok": s.ok(),
        "seed": s.seed,
        "scenarios": s.scenarios,
        "runs": s.runs,
        "seconds": s.seconds,
        "stacks": s.stacks,
        "failures": s.failures.iter().map(|f| json!({
            "stack": f.stack,
            "seed": f.seed,
            "index": f.index,
            "violated": f.violated,
            "first": f.first,
            "replay": f.replay,
            "shrunk": f.shrunk_replay,
            "saved": f.saved,
        })).collect::<Vec<_>>(),
    })
}

/// The run as one JSON object: `ok`, `violations`, `delivered`, `trace_hash`,
/// `virtual_ms`, `views`, `final_view`, per-layer `counters`, and more.
pub fn to_json(scn: &Scenario, o: &Outcome) -> Value {
    let mut layers: Map<String, Value> = Map::new();
    for (key, v) in &o.sim.counters {
        let (layer, name) = key.split_once('.').unwrap_or(("stack", key));
        let entry = layers.entry(layer.to_string()).or_insert_with(|| json!({}));
        entry[name] = json!(v);
    }
    let peaks: Map<String, Value> =
        o.sim.peaks.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    json!({
        "ok": o.ok(),
        "checked": o.check.is_some(),
        "stack": scn.stack.display().to_string(),
        "seed": scn.seed,
        "replay": scn.command_line(),
        "properties": o.properties.iter().map(|p| p.name()).collect::<Vec<_>>(),
        "violations": o.violations(),
        "sent": o.sim.sent,
        "delivered": o.sim.delivered,
        "integrity_errors": o.sim.integrity_errors,
        "trace_hash": format!("{:016x}", o.sim.trace_hash),
        "virtual_ms": o.sim.virtual_ms,
        "events": o.sim.events,
        "stop": o.sim.stop.map(|s| format!("{s:?}")),
        "views": o.views,
        "final_view": o.final_view,
        "net": {
            "datagrams": o.sim.net.datagrams,
            "bytes": o.sim.net.bytes,
            "dropped": o.sim.net.dropped(),
            "duplicated": o.sim.net.duplicated,
            "reordered": o.sim.net.reordered,
        },
        "counters": layers,
        "peaks": peaks,
    })
}
