//! `strata bench`: throughput and latency of N real member processes on loopback.
//!
//! Every member casts as fast as flow control lets it for `--seconds`, then the
//! members wait until each has delivered every cast (bounded), and stop. Per member:
//! delivered messages/s and MB/s (deliveries, own included, over the time from the
//! first member's first cast to this member's last delivery), one-way latency
//! p50/p99/p999 of the other members' casts (hdrhistogram; the payload carries the
//! sender's `CLOCK_MONOTONIC`, which every process on the host shares), NAK
//! retransmissions, flow-control refusals, CPU seconds and loss (casts sent by all
//! minus casts delivered).
//!
//! `--raw` then runs, with the same process count, payload size and duration, the
//! baseline: members with plain UDP sockets (multicast through 127.0.0.1 on a group of
//! their own), no layers, sending as fast as `sendto` allows, counting datagrams
//! received; losses allowed. The ratio is the stack's mean delivered messages/s over
//! raw's.
//!
//! Progress goes to stderr; stdout has the result only (a table, or one JSON object
//! with `--json`).
//!
//! Other modes, one module each:
//!
//! - `--matrix FILE.ron` ([`matrix`]): stacks × payload sizes × member counts, each
//!   cell against the raw baseline of its size and member count; writes
//!   `results.{csv,json,md}` and `chart.svg` into `--out`.
//! - `--layers` ([`layers`]): per-layer nanoseconds and bytes per message of one stack
//!   under load in the simulator, with the profiler's own overhead.
//! - `--scale` ([`scale`]): cost against group size (simulator and real processes) and
//!   against the number of groups sharing one socket in one process.
//! - `--memory` ([`memory`]): resident memory of every member over a long run.
//!
//! Charts are plain SVG written by [`chart`].

pub mod chart;
pub mod layers;
pub mod matrix;
pub mod memory;
pub mod scale;

use crate::proc::{self, Net, Proc};
use anyhow::{bail, Result};
use serde_json::{json, Value};
use stack_core::props;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// The stack descriptor (shipped descriptors are also built in).
    #[arg(long, value_name = "FILE", default_value = proc::DEFAULT_STACK)]
    stack: PathBuf,
    /// Member processes.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Payload size in bytes (at least 8: the send time).
    #[arg(long, default_value_t = 1024, value_name = "BYTES")]
    size: usize,
    /// How long every member casts.
    #[arg(long, default_value_t = 5.0, value_name = "T")]
    seconds: f64,
    /// Casts per second of every member (and of every raw sender with --raw), for
    /// latency below saturation; 0: as fast as flow control allows.
    #[arg(long, default_value_t = 0.0, value_name = "MSGS_PER_S")]
    rate: f64,
    /// Also measure plain UDP multicast with the same processes, sizes and duration.
    #[arg(long)]
    raw: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Multicast group instead of the descriptor's.
    #[arg(long, value_name = "ADDR")]
    group: Option<String>,
    /// Multicast group of the raw baseline.
    #[arg(long, value_name = "ADDR", default_value = "239.255.42.250:7450")]
    raw_group: String,
    /// Use udpu on loopback even where multicast works.
    #[arg(long)]
    udpu: bool,
    /// First udpu port.
    #[arg(long, default_value_t = 7461)]
    udpu_port: u16,
    /// Run the matrix of stacks × sizes × member counts FILE describes (see
    /// `benches/matrix.ron`) and write the results into --out.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["layers", "scale", "memory"])]
    matrix: Option<PathBuf>,
    /// Per-layer cost of --stack under load in the simulator (--members members,
    /// --size payloads, --messages casts each).
    #[arg(long, conflicts_with_all = ["scale", "memory"])]
    layers: bool,
    /// Cost against group size (simulator 2..16, processes 2..8) and against groups
    /// sharing one socket (1, 10, 100, 1000); charts into --out.
    #[arg(long, conflicts_with = "memory")]
    scale: bool,
    /// Resident memory of each member sampled during a --seconds run (60 s is the
    /// reference); CSV and SVG into --out.
    #[arg(long)]
    memory: bool,
    /// Casts per member of --layers and of the simulator part of --scale.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    messages: u64,
    /// Output directory of --matrix, --scale and --memory.
    #[arg(long, value_name = "DIR", default_value = "bench-results")]
    out: PathBuf,
    /// --scale: which parts to run (sim, procs, groups), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "PARTS", default_value = "sim,procs,groups")]
    parts: Vec<String>,
}

/// One run of a stack (and its baseline): what the matrix, scale and memory modes
/// vary.
#[derive(Clone, Debug)]
pub struct Cell {
    pub stack: PathBuf,
    pub members: usize,
    pub size: usize,
    pub seconds: f64,
    /// Casts per second of every member; 0: as fast as flow control allows.
    pub rate: f64,
}

/// How cells reach each other: the network options of the command line.
#[derive(Clone, Debug)]
pub struct NetOpts {
    pub group: Option<String>,
    pub raw_group: String,
    pub udpu: bool,
    pub udpu_port: u16,
}

impl Args {
    /// The run of `--stack` with `members` members and the command line's size,
    /// duration and rate.
    pub fn cell(&self, members: usize) -> Cell {
        Cell {
            stack: self.stack.clone(),
            members,
            size: self.size,
            seconds: self.seconds,
            rate: self.rate,
        }
    }

    fn net_opts(&self) -> NetOpts {
        NetOpts {
            group: self.group.clone(),
            raw_group: self.raw_group.clone(),
            udpu: self.udpu,
            udpu_port: self.udpu_port,
        }
    }
}

/// The largest UDP payload over IPv4: raw baselines of larger sizes send this.
pub const MAX_DATAGRAM: usize = 65_507;

pub fn progress(s: impl AsRef<str>) {
    eprintln!("bench: {}", s.as_ref());
}

/// Figures of one run (stack or raw) from the members' summaries.
pub fn figures(summaries: &[Value], seconds: f64) -> Value {
    let get = |s: &Value, k: &str| s[k].as_u64().unwrap_or(0);
    let start = summaries.iter().filter_map(|s| s["send_start_ns"].as_u64()).min().unwrap_or(0);
    let sent: u64 = summaries.iter().map(|s| get(s, "sent")).sum();
    let mut per = Vec::new();
    let (mut rate_sum, mut mb_sum) = (0.0, 0.0);
    let (mut p50, mut p99, mut p999) = (0.0f64, 0.0f64, 0.0f64);
    for s in summaries {
        let delivered = get(s, "delivered");
        let last = s["last_delivery_ns"].as_u64().unwrap_or(start);
        let span = (last.saturating_sub(start) as f64 / 1e9).max(seconds.min(1e-3));
        let rate = delivered as f64 / span;
        let mbps = get(s, "delivered_bytes") as f64 / span / 1e6;
        rate_sum += rate;
        mb_sum += mbps;
        let lat = &s["latency_us"];
        let f = |k: &str| lat[k].as_f64().unwrap_or(0.0);
        p50 = p50.max(f("p50"));
        p99 = p99.max(f("p99"));
        p999 = p999.max(f("p999"));
        let c = &s["counters"];
        per.push(json!({
            "name": s["name"],
            "sent": get(s, "sent"),
            "delivered": delivered,
            "msgs_per_s": rate.round(),
            "mb_per_s": (mbps * 100.0).round() / 100.0,
            "latency_us": lat,
            "lost": sent.saturating_sub(delivered),
            "retransmissions": c["nak"]["retransmissions"].as_u64().unwrap_or(0),
            "naks_sent": c["nak"]["naks_sent"].as_u64().unwrap_or(0),
            "flow_blocked": c["flow"]["blocked"].as_u64().unwrap_or(0),
            "refused": get(s, "refused"),
            "cpu_seconds": s["cpu_seconds"],
            "seconds": s["seconds"],
        }));
    }
    let n = summaries.len().max(1) as f64;
    json!({
        "members": summaries.len(),
        "sent": sent,
        "msgs_per_s": (rate_sum / n).round(),
        "mb_per_s": (mb_sum / n * 100.0).round() / 100.0,
        "latency_us": { "p50": p50, "p99": p99, "p999": p999 },
        "lost": per.iter().map(|p| p["lost"].as_u64().unwrap_or(0)).sum::<u64>(),
        "retransmissions": per.iter().map(|p| p["retransmissions"].as_u64().unwrap_or(0)).sum::<u64>(),
        "flow_blocked": per.iter().map(|p| p["flow_blocked"].as_u64().unwrap_or(0)).sum::<u64>(),
        "per_member": per,
    })
}

/// Waits until every member printed a line `pred` accepts; false on timeout.
fn all_print(
    procs: &mut [Proc],
    marks: &[usize],
    deadline: Instant,
    pred: fn(&str) -> bool,
) -> bool {
    let mut ok = true;
    for (p, &from) in procs.iter_mut().zip(marks) {
        if p.wait_for(from, deadline, pred).is_none() {
            progress(format!("{} did not report in time", p.name));
            ok = false;
        }
    }
    ok
}

fn marks(procs: &[Proc]) -> Vec<usize> {
    procs.iter().map(|p| p.seen.len()).collect()
}

fn stop_all(procs: &mut [Proc]) -> Vec<Value> {
    for p in procs.iter_mut() {
        p.send("stop");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    procs.iter_mut().filter_map(|p| p.stop(deadline)).collect()
}

/// What one run of a stack's member processes gave.
pub struct StackRun {
    /// Every member's JSON summary.
    pub summaries: Vec<Value>,
    /// Every member delivered every cast.
    pub complete: bool,
    /// Resident memory samples, when asked for.
    pub memory: Vec<memory::Sample>,
}

/// Runs `cell.members` member processes of `cell.stack` on `net`: wait for a view,
/// cast for `cell.seconds`, wait until everything sent was delivered (bounded),
/// stop. With `memory_every`, samples every member's resident memory meanwhile.
pub fn run_stack(
    cell: &Cell,
    net: &Net,
    has_views: bool,
    memory_every: Option<Duration>,
) -> Result<StackRun> {
    let names: Vec<String> = (1..=cell.members).map(|i| format!("n{i}")).collect();
    let mut procs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut c = proc::member_command()?;
        c.args(["--stack", &cell.stack.display().to_string(), "--name", name, "--control"])
            .args(["--size", &cell.size.to_string()])
            .args(["--duration", &(cell.seconds + 40.0).to_string()])
            .args(["--rate", &cell.rate.to_string()])
            .args(net.member_args(i));
        if !has_views {
            c.args(["--peers", &names.join(",")]);
        }
        procs.push(Proc::spawn(name, c, false)?);
    }
    let n = cell.members;
    let deadline = Instant::now() + Duration::from_secs(10);
    let ready = all_print(&mut procs, &vec![0; n], deadline, |l| {
        l.strip_prefix("view ").is_some_and(|r| r.split_once('(').is_some())
    });
    if !ready {
        bail!("the members did not all install a view in 10 s");
    }
    let sampler = memory_every.map(|every| {
        memory::Sampler::start(procs.iter().map(|p| (p.name.clone(), p.pid())).collect(), every)
    });
    std::thread::sleep(Duration::from_millis(200));
    progress(format!("{n} members cast {} B for {} s", cell.size, cell.seconds));
    let m = marks(&procs);
    for p in procs.iter_mut() {
        p.send(&format!("cast-for {}", cell.seconds));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(cell.seconds + 10.0);
    all_print(&mut procs, &m, deadline, |l| l.starts_with("sent "));
    let sent: u64 = procs
        .iter()
        .filter_map(|p| {
            p.seen.iter().rev().find_map(|l| l.strip_prefix("sent ")?.parse::<u64>().ok())
        })
        .sum();
    progress(format!("{sent} casts sent; waiting until every member delivered them"));
    let m = marks(&procs);
    for p in procs.iter_mut() {
        p.send(&format!("expect {sent}"));
    }
    let complete = all_print(&mut procs, &m, Instant::now() + Duration::from_secs(20), |l| {
        l.starts_with("complete ")
    });
    let memory = sampler.map(|s| s.stop()).unwrap_or_default();
    Ok(StackRun { summaries: stop_all(&mut procs), complete, memory })
}

/// The raw UDP multicast baseline with `members` processes sending `size`-byte
/// datagrams (at most [`MAX_DATAGRAM`]) for `seconds`.
/// Runs the raw UDP multicast baseline: `members` processes each send `size`-byte
/// datagrams for `seconds` (`rate` a second each, or as fast as they can with 0).
pub fn run_raw(
    members: usize,
    size: usize,
    seconds: f64,
    rate: f64,
    group: &str,
) -> Result<Vec<Value>> {
    transports::udp::parse_group(group)?;
    let size = size.min(MAX_DATAGRAM);
    let mut procs = Vec::new();
    for i in 1..=members {
        let name = format!("r{i}");
        let mut c = proc::member_command()?;
        c.args(["--raw", "--control", "--name", &name, "--group", group])
            .args(["--size", &size.to_string()])
            .args(["--duration", &(seconds + 20.0).to_string()])
            .args(["--rate", &rate.to_string()]);
        procs.push(Proc::spawn(&name, c, false)?);
    }
    let n = members;
    let deadline = Instant::now() + Duration::from_secs(10);
    if !all_print(&mut procs, &vec![0; n], deadline, |l| l.starts_with("raw member ")) {
        bail!("the raw members did not start in 10 s");
    }
    std::thread::sleep(Duration::from_millis(200));
    progress(format!("raw: {n} processes send {size} B for {seconds} s"));
    let m = marks(&procs);
    for p in procs.iter_mut() {
        p.send(&format!("cast-for {seconds}"));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(seconds + 10.0);
    all_print(&mut procs, &m, deadline, |l| l.starts_with("sent "));
    std::thread::sleep(Duration::from_millis(300));
    let out = stop_all(&mut procs);
    if out.len() != members {
        bail!("only {} of {members} raw members reported", out.len());
    }
    Ok(out)
}

/// Plans the network of `stack` for `members` members.
pub fn plan(stack: &std::path::Path, members: usize, o: &NetOpts) -> Result<(String, Net, bool)> {
    let reg = ::layers::registry();
    let desc = proc::load_stack(stack, &reg)?;
    let has_views = desc.provides().contains(&props::VIEWS);
    let (net, why) = Net::plan(&desc, o.group.as_deref(), o.udpu, members, o.udpu_port)?;
    if let Some(why) = why {
        progress(format!("{why}: using udpu on loopback"));
    }
    Ok((desc.name.clone(), net, has_views))
}

/// Runs one cell of the stack and returns its figures (see [`figures`]) with the
/// stack's name, network and whether every member delivered every cast.
pub fn run_cell(cell: &Cell, o: &NetOpts) -> Result<Value> {
    let (name, net, has_views) = plan(&cell.stack, cell.members, o)?;
    progress(format!("stack `{name}` over {}", net.describe()));
    let r = run_stack(cell, &net, has_views, None)?;
    if r.summaries.len() != cell.members {
        bail!("only {} of {} members reported", r.summaries.len(), cell.members);
    }
    let mut f = figures(&r.summaries, cell.seconds);
    f["stack"] = json!(name);
    f["network"] = json!(net.describe());
    f["complete"] = json!(r.complete);
    Ok(f)
}

/// Stack over raw messages/s, to three decimals (0 without a baseline).
pub fn ratio(stack: &Value, raw: &Value) -> f64 {
    let s = stack["msgs_per_s"].as_f64().unwrap_or(0.0);
    let r = raw["msgs_per_s"].as_f64().unwrap_or(0.0);
    if r > 0.0 {
        (s / r * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.members == 0 || args.size < 8 || !(args.seconds > 0.0 && args.seconds <= 600.0) {
        bail!("--members must be at least 1, --size at least 8, --seconds in (0, 600]");
    }
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        bail!("--rate must be a number of casts per second, 0 or more");
    }
    if let Some(file) = &args.matrix {
        return matrix::run(file, &args.out, &args.net_opts());
    }
    if args.layers {
        return layers::run(&args.stack, args.members, args.size, args.messages, args.json);
    }
    if args.scale {
        return scale::run(&args);
    }
    if args.memory {
        return memory::run(&args);
    }
    let cell = args.cell(args.members);
    let stack = run_cell(&cell, &args.net_opts())?;
    let raw = if args.raw {
        Some(figures(
            &run_raw(args.members, args.size, args.seconds, args.rate, &args.raw_group)?,
            args.seconds,
        ))
    } else {
        None
    };
    let ratio = raw.as_ref().map(|r| ratio(&stack, r));
    let out = json!({
        "stack": stack["stack"],
        "network": stack["network"],
        "members": args.members,
        "size": args.size,
        "seconds": args.seconds,
        "rate": args.rate,
        "complete": stack["complete"],
        "msgs_per_s": stack["msgs_per_s"],
        "mb_per_s": stack["mb_per_s"],
        "latency_us": stack["latency_us"],
        "sent": stack["sent"],
        "lost": stack["lost"],
        "retransmissions": stack["retransmissions"],
        "flow_blocked": stack["flow_blocked"],
        "per_member": stack["per_member"],
        "raw": raw,
        "ratio": ratio,
    });
    if args.json {
        println!("{out}");
    } else {
        print_table(&out);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(o: &Value) {
    let pace = match o["rate"].as_f64() {
        Some(r) if r > 0.0 => format!(", {r} casts/s each"),
        _ => String::new(),
    };
    println!(
        "stack `{}` over {}: {} members, {} B payloads, {} s{pace}",
        o["stack"].as_str().unwrap_or(""),
        o["network"].as_str().unwrap_or(""),
        o["members"],
        o["size"],
        o["seconds"]
    );
    let row = |label: &str, f: &Value| {
        let l = &f["latency_us"];
        println!(
            "  {label:<8} {:>10} msgs/s {:>8} MB/s  latency p50 {:>8.0} us  p99 {:>8.0} us  p999 {:>8.0} us  lost {}",
            f["msgs_per_s"],
            f["mb_per_s"],
            l["p50"].as_f64().unwrap_or(0.0),
            l["p99"].as_f64().unwrap_or(0.0),
            l["p999"].as_f64().unwrap_or(0.0),
            f["lost"]
        );
    };
    println!("  per member (mean); latency: worst member");
    row("stack", o);
    println!(
        "           retransmissions {}, flow-control closings {}, all delivered: {}",
        o["retransmissions"], o["flow_blocked"], o["complete"]
    );
    for m in o["per_member"].as_array().into_iter().flatten() {
        println!(
            "    {}: sent {} delivered {} ({} msgs/s), cpu {:.2} s, refused casts {}",
            m["name"].as_str().unwrap_or(""),
            m["sent"],
            m["delivered"],
            m["msgs_per_s"],
            m["cpu_seconds"].as_f64().unwrap_or(0.0),
            m["refused"]
        );
    }
    if !o["raw"].is_null() {
        row("raw udp", &o["raw"]);
        println!("  ratio stack/raw: {}", o["ratio"]);
    }
}
