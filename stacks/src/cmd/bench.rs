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
}

fn progress(s: impl AsRef<str>) {
    eprintln!("bench: {}", s.as_ref());
}

/// Figures of one run (stack or raw) from the members' summaries.
fn figures(summaries: &[Value], seconds: f64) -> Value {
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

fn run_stack(args: &Args, net: &Net, has_views: bool) -> Result<(Vec<Value>, bool)> {
    let names: Vec<String> = (1..=args.members).map(|i| format!("n{i}")).collect();
    let mut procs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut c = proc::member_command()?;
        c.args(["--stack", &args.stack.display().to_string(), "--name", name, "--control"])
            .args(["--size", &args.size.to_string()])
            .args(["--duration", &(args.seconds + 40.0).to_string()])
            .args(net.member_args(i));
        if !has_views {
            c.args(["--peers", &names.join(",")]);
        }
        procs.push(Proc::spawn(name, c, false)?);
    }
    let n = args.members;
    let deadline = Instant::now() + Duration::from_secs(10);
    let ready = all_print(&mut procs, &vec![0; n], deadline, |l| {
        l.strip_prefix("view ").is_some_and(|r| r.split_once('(').is_some())
    });
    if !ready {
        bail!("the members did not all install a view in 10 s");
    }
    std::thread::sleep(Duration::from_millis(200));
    progress(format!("{n} members cast for {} s", args.seconds));
    let m = marks(&procs);
    for p in procs.iter_mut() {
        p.send(&format!("cast-for {}", args.seconds));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds + 10.0);
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
    Ok((stop_all(&mut procs), complete))
}

fn run_raw(args: &Args) -> Result<Vec<Value>> {
    transports::udp::parse_group(&args.raw_group)?;
    let mut procs = Vec::new();
    for i in 1..=args.members {
        let name = format!("r{i}");
        let mut c = proc::member_command()?;
        c.args(["--raw", "--control", "--name", &name, "--group", &args.raw_group])
            .args(["--size", &args.size.to_string()])
            .args(["--duration", &(args.seconds + 20.0).to_string()]);
        procs.push(Proc::spawn(&name, c, false)?);
    }
    let n = args.members;
    let deadline = Instant::now() + Duration::from_secs(10);
    if !all_print(&mut procs, &vec![0; n], deadline, |l| l.starts_with("raw member ")) {
        bail!("the raw members did not start in 10 s");
    }
    std::thread::sleep(Duration::from_millis(200));
    progress(format!("raw: {n} processes send for {} s", args.seconds));
    let m = marks(&procs);
    for p in procs.iter_mut() {
        p.send(&format!("cast-for {}", args.seconds));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds + 10.0);
    all_print(&mut procs, &m, deadline, |l| l.starts_with("sent "));
    std::thread::sleep(Duration::from_millis(300));
    Ok(stop_all(&mut procs))
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.members == 0 || args.size < 8 || !(args.seconds > 0.0 && args.seconds <= 600.0) {
        bail!("--members must be at least 1, --size at least 8, --seconds in (0, 600]");
    }
    let reg = layers::registry();
    let desc = proc::load_stack(&args.stack, &reg)?;
    let has_views = desc.provides().contains(&props::VIEWS);
    let (net, why) =
        Net::plan(&desc, args.group.as_deref(), args.udpu, args.members, args.udpu_port)?;
    if let Some(why) = why {
        progress(format!("{why}: using udpu on loopback"));
    }
    progress(format!("stack `{}` over {}", desc.name, net.describe()));
    let (summaries, complete) = run_stack(&args, &net, has_views)?;
    if summaries.len() != args.members {
        bail!("only {} of {} members reported", summaries.len(), args.members);
    }
    let stack = figures(&summaries, args.seconds);
    let raw = if args.raw {
        let r = run_raw(&args)?;
        if r.len() != args.members {
            bail!("only {} of {} raw members reported", r.len(), args.members);
        }
        Some(figures(&r, args.seconds))
    } else {
        None
    };
    let ratio = raw.as_ref().map(|r| {
        let s = stack["msgs_per_s"].as_f64().unwrap_or(0.0);
        let r = r["msgs_per_s"].as_f64().unwrap_or(0.0);
        if r > 0.0 {
            (s / r * 1000.0).round() / 1000.0
        } else {
            0.0
        }
    });
    let out = json!({
        "stack": desc.name,
        "network": net.describe(),
        "members": args.members,
        "size": args.size,
        "seconds": args.seconds,
        "complete": complete,
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
    println!(
        "stack `{}` over {}: {} members, {} B payloads, {} s",
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
