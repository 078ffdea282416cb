//! `strata bench --layers`: what each layer of a stack costs under load.
//!
//! The stack runs in the simulator (`transports::sim`) on a perfect network (no
//! loss, 50 µs delay): `--members` members each cast `--messages` payloads of
//! `--size` bytes as fast as the stack accepts them, until every member delivered
//! everything. The driver's per-layer profiling ([`Stack::set_profiling`]) times
//! every handler call and counts the multicast bytes each layer takes from above and
//! hands below. Per layer, summed over all members:
//!
//! - `ns/delivery`: nanoseconds in the layer's handlers per delivered message (all
//!   members' deliveries; a cast is delivered once per member);
//! - `ns/event`: nanoseconds per handler call;
//! - `B/cast`: bytes the layer adds to the multicast traffic per application cast
//!   (bytes handed below minus bytes taken from above: headers, framing, fragment
//!   headers, its own gossip or heartbeats);
//! - `dgrams/cast`: datagrams it hands below per application cast.
//!
//! The same run (the simulator is deterministic: identical work) is then timed with
//! profiling off and on, three times each alternately, best of three: the
//! difference per delivered message is the instrumentation's own overhead.
//!
//! [`Stack::set_profiling`]: stack_core::Stack::set_profiling

use super::progress;
use crate::proc;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use stack_core::stack::LayerProfile;
use stack_core::Stack;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use transports::sim::{NetConfig, Sim, SimConfig, StopReason, Workload};

/// A finished simulator run.
pub struct Run {
    pub sim: Sim,
    pub wall: Duration,
    pub stop: StopReason,
}

/// Runs `members` members of `desc` in the simulator, each casting `messages`
/// payloads of `size` bytes as fast as the stack takes them; `profiling` switches
/// the driver's per-layer profiling on in every member.
pub fn simulate(
    desc: &stack_core::descriptor::Descriptor,
    members: u32,
    size: usize,
    messages: u64,
    profiling: bool,
) -> Result<Run> {
    let reg = layers::registry();
    desc.build_layers(&reg).context("building the layers")?;
    let desc = desc.clone();
    let cfg = SimConfig {
        seed: 1,
        nodes: members,
        net: NetConfig { min_delay_us: 50, max_delay_us: 50, ..NetConfig::perfect() },
        workload: Workload { start_jitter_us: 0, retry_us: 100, ..Workload::flood(messages, size) },
        deadline_ms: 3_600_000,
        max_events: u64::MAX,
        settle_ms: 2000,
        ..SimConfig::default()
    };
    let factory = Box::new(move |c| {
        let reg = layers::registry();
        let mut s = Stack::new(desc.build_layers(&reg).expect("built once already"), c);
        s.set_profiling(profiling);
        s
    });
    let mut sim = Sim::new(cfg, factory);
    let start = Instant::now();
    let stop = sim.run_until_quiet();
    Ok(Run { wall: start.elapsed(), stop, sim })
}

/// Per layer, bottom to top, the profiles of every member added up.
pub fn profiles(sim: &Sim) -> Vec<(&'static str, LayerProfile)> {
    let mut sum: Vec<(&'static str, LayerProfile)> = Vec::new();
    for n in 0..sim.node_count() {
        let Some(p) = sim.stack(n).and_then(|s| s.profile()) else { continue };
        if sum.is_empty() {
            sum = p.iter().map(|(name, _)| (*name, LayerProfile::default())).collect();
        }
        for ((_, acc), (_, l)) in sum.iter_mut().zip(p) {
            acc.events += l.events;
            acc.nanos += l.nanos;
            acc.casts_in += l.casts_in;
            acc.cast_bytes_in += l.cast_bytes_in;
            acc.casts_out += l.casts_out;
            acc.cast_bytes_out += l.cast_bytes_out;
        }
    }
    sum
}

/// The report of `--layers` as JSON.
pub fn measure(stack: &Path, members: usize, size: usize, messages: u64) -> Result<Value> {
    if members < 1 || members > 64 {
        bail!("--members must be in 1..=64 for --layers");
    }
    let reg = layers::registry();
    let desc = proc::load_stack(stack, &reg)?;
    let n = members as u32;
    progress(format!(
        "`{}` in the simulator: {members} members cast {messages} × {size} B each",
        desc.name
    ));
    let on = simulate(&desc, n, size, messages, true)?;
    let r = on.sim.report();
    if r.delivered == 0 {
        bail!("nothing was delivered ({:?})", on.stop);
    }
    let deliveries = r.delivered as f64;
    let casts = r.sent as f64;
    let mut rows = Vec::new();
    let mut total_ns = 0u64;
    for (name, p) in profiles(&on.sim) {
        total_ns += p.nanos;
        let added = p.cast_bytes_out as f64 - p.cast_bytes_in as f64;
        rows.push(json!({
            "layer": name,
            "events": p.events,
            "ns_per_delivery": round2(p.nanos as f64 / deliveries),
            "ns_per_event": round2(p.nanos as f64 / p.events.max(1) as f64),
            "bytes_per_cast": round2(added / casts),
            "datagrams_per_cast": round2(p.casts_out as f64 / casts),
            "casts_in": p.casts_in,
            "casts_out": p.casts_out,
        }));
    }
    progress("timing the same run with profiling off and on (best of 3 each)");
    let (mut off_best, mut on_best) = (Duration::MAX, on.wall);
    for _ in 0..3 {
        off_best = off_best.min(simulate(&desc, n, size, messages, false)?.wall);
        on_best = on_best.min(simulate(&desc, n, size, messages, true)?.wall);
    }
    let per = |d: Duration| d.as_nanos() as f64 / deliveries;
    let overhead = per(on_best) - per(off_best);
    Ok(json!({
        "stack": desc.name,
        "members": members,
        "size": size,
        "messages_per_member": messages,
        "casts": r.sent,
        "deliveries": r.delivered,
        "stop": format!("{:?}", on.stop),
        "layers": rows,
        "layers_ns_per_delivery": round2(total_ns as f64 / deliveries),
        "run_ns_per_delivery": { "profiling_off": round2(per(off_best)), "profiling_on": round2(per(on_best)) },
        "overhead_ns_per_delivery": round2(overhead),
        "overhead_percent": round2(overhead / per(off_best) * 100.0),
        "overhead_ns_per_event": round2(
            overhead * deliveries / rows.iter().map(|r| r["events"].as_f64().unwrap_or(0.0)).sum::<f64>().max(1.0)
        ),
    }))
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

pub fn run(
    stack: &Path,
    members: usize,
    size: usize,
    messages: u64,
    json: bool,
) -> Result<ExitCode> {
    let r = measure(stack, members, size, messages)?;
    if json {
        println!("{r}");
    } else {
        print!("{}", table(&r));
    }
    Ok(ExitCode::SUCCESS)
}

/// The human report: one row per layer, bottom to top, then the totals.
pub fn table(r: &Value) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "stack `{}` in the simulator: {} members, {} B payloads, {} casts, {} deliveries ({})",
        r["stack"].as_str().unwrap_or(""),
        r["members"],
        r["size"],
        r["casts"],
        r["deliveries"],
        r["stop"].as_str().unwrap_or("")
    );
    let _ = writeln!(
        s,
        "  {:<12} {:>12} {:>12} {:>10} {:>10} {:>12}",
        "layer", "events", "ns/delivery", "ns/event", "B/cast", "dgrams/cast"
    );
    for l in r["layers"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "  {:<12} {:>12} {:>12.1} {:>10.1} {:>10.2} {:>12.3}",
            l["layer"].as_str().unwrap_or(""),
            l["events"],
            l["ns_per_delivery"].as_f64().unwrap_or(0.0),
            l["ns_per_event"].as_f64().unwrap_or(0.0),
            l["bytes_per_cast"].as_f64().unwrap_or(0.0),
            l["datagrams_per_cast"].as_f64().unwrap_or(0.0),
        );
    }
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let _ = writeln!(s, "  all layers: {:.1} ns per delivery", f(&r["layers_ns_per_delivery"]));
    let _ = writeln!(
        s,
        "  whole run (simulator included): {:.1} ns per delivery with profiling off, {:.1} on: \
         profiling costs {:.1} ns per delivery ({:.1} %), {:.1} ns per handler call",
        f(&r["run_ns_per_delivery"]["profiling_off"]),
        f(&r["run_ns_per_delivery"]["profiling_on"]),
        f(&r["overhead_ns_per_delivery"]),
        f(&r["overhead_percent"]),
        f(&r["overhead_ns_per_event"]),
    );
    s
}
