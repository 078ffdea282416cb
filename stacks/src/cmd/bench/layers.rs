//! `strata bench --layers`: what each layer of a stack costs under load.
//!
//! The stack's members run in this thread over a perfect in-memory network
//! ([`benches::Mesh`]: no loss, no delay, virtual time): once their view is complete,
//! `--members` members each cast `--messages` payloads of `--size` bytes as fast as
//! the stack accepts them, until every member delivered everything. No kernel, no
//! sockets: only the stacks' work and a queue. The driver's per-layer profiling ([`Stack::set_profiling`]) times
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
//! `less clock` subtracts the profiler's own clock reads (measured: [`clock_cost_ns`]
//! per handler call). The same run (deterministic: identical work) is then timed with
//! profiling off and on, three times each alternately, best of three: the
//! difference per delivered message is the instrumentation's own overhead.
//!
//! [`Stack::set_profiling`]: stack_core::Stack::set_profiling

use super::progress;
use crate::proc;
use anyhow::{bail, Context, Result};
use benches::Mesh;
use serde_json::{json, Value};
use stack_core::stack::{clock_cost_ns, LayerProfile};
use stack_core::Bytes;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// A finished run.
pub struct Run {
    pub mesh: Mesh,
    /// Wall time of the casting phase (after every view is complete).
    pub wall: Duration,
    /// Every member delivered every cast.
    pub complete: bool,
}

/// Runs `members` members of `desc` over the in-memory network ([`Mesh`]): once
/// every member's view holds everyone, each casts `messages` payloads of `size`
/// bytes as fast as its stack takes them. `profiling` switches the driver's
/// per-layer profiling on in every member, from the first cast (the join is not
/// counted).
pub fn simulate(
    desc: &stack_core::descriptor::Descriptor,
    members: u32,
    size: usize,
    messages: u64,
    profiling: bool,
) -> Result<Run> {
    let reg = layers::registry();
    desc.build_layers(&reg).context("building the layers")?;
    let mut mesh =
        Mesh::new(members as usize, || desc.build_layers(&reg).expect("built once already"));
    if !mesh.join() {
        bail!("`{}`: the {members} members did not form one view", desc.name);
    }
    for s in &mut mesh.stacks {
        s.set_profiling(profiling);
    }
    let payload = Bytes::from(vec![7u8; size]);
    let start = Instant::now();
    let complete = mesh.flood(messages, &payload, 16, Duration::from_secs(600));
    Ok(Run { wall: start.elapsed(), complete, mesh })
}

/// Per layer, bottom to top, the profiles of every member added up.
pub fn profiles(mesh: &Mesh) -> Vec<(&'static str, LayerProfile)> {
    let mut sum: Vec<(&'static str, LayerProfile)> = Vec::new();
    for s in &mesh.stacks {
        let Some(p) = s.profile() else { continue };
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
    if !(1..=64).contains(&members) {
        bail!("--members must be in 1..=64 for --layers");
    }
    let reg = layers::registry();
    let desc = proc::load_stack(stack, &reg)?;
    let n = members as u32;
    progress(format!(
        "`{}` over the in-memory network: {members} members cast {messages} × {size} B each",
        desc.name
    ));
    // Profiling off and on alternately, three times each (identical work): the best
    // of each gives the overhead, and the best profiled run the per-layer figures
    // (the least disturbed by other processes).
    let mut off_best = Duration::MAX;
    let mut on: Option<Run> = None;
    for _ in 0..3 {
        off_best = off_best.min(simulate(&desc, n, size, messages, false)?.wall);
        let r = simulate(&desc, n, size, messages, true)?;
        if on.as_ref().is_none_or(|b| r.wall < b.wall) {
            on = Some(r);
        }
    }
    let on = on.expect("three runs");
    let on_best = on.wall;
    let (sent, delivered) = (on.mesh.sent, on.mesh.delivered);
    if delivered == 0 {
        bail!("nothing was delivered");
    }
    let deliveries = delivered as f64;
    let casts = sent as f64;
    let clock = clock_cost_ns();
    let mut rows = Vec::new();
    let mut total_ns = 0u64;
    for (name, p) in profiles(&on.mesh) {
        total_ns += p.nanos;
        let added = p.cast_bytes_out as f64 - p.cast_bytes_in as f64;
        let own = (p.nanos as f64 - clock * p.events as f64).max(0.0);
        rows.push(json!({
            "layer": name,
            "events": p.events,
            "ns_per_delivery": round2(p.nanos as f64 / deliveries),
            "ns_per_event": round2(p.nanos as f64 / p.events.max(1) as f64),
            "ns_per_delivery_less_clock": round2(own / deliveries),
            "bytes_per_cast": round2(added / casts),
            "datagrams_per_cast": round2(p.casts_out as f64 / casts),
            "casts_in": p.casts_in,
            "casts_out": p.casts_out,
        }));
    }
    let per = |d: Duration| d.as_nanos() as f64 / deliveries;
    let overhead = per(on_best) - per(off_best);
    Ok(json!({
        "stack": desc.name,
        "members": members,
        "size": size,
        "messages_per_member": messages,
        "casts": sent,
        "deliveries": delivered,
        "complete": on.complete,
        "clock_cost_ns": round2(clock),
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
        "stack `{}` over the in-memory network: {} members, {} B payloads, {} casts, {} deliveries \
         (all delivered: {})",
        r["stack"].as_str().unwrap_or(""),
        r["members"],
        r["size"],
        r["casts"],
        r["deliveries"],
        r["complete"]
    );
    let _ = writeln!(
        s,
        "  {:<12} {:>10} {:>12} {:>10} {:>14} {:>8} {:>12}",
        "layer", "events", "ns/delivery", "ns/event", "less clock", "B/cast", "dgrams/cast"
    );
    for l in r["layers"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "  {:<12} {:>10} {:>12.1} {:>10.1} {:>14.1} {:>8.2} {:>12.3}",
            l["layer"].as_str().unwrap_or(""),
            l["events"].as_u64().unwrap_or(0),
            l["ns_per_delivery"].as_f64().unwrap_or(0.0),
            l["ns_per_event"].as_f64().unwrap_or(0.0),
            l["ns_per_delivery_less_clock"].as_f64().unwrap_or(0.0),
            l["bytes_per_cast"].as_f64().unwrap_or(0.0),
            l["datagrams_per_cast"].as_f64().unwrap_or(0.0),
        );
    }
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let _ = writeln!(
        s,
        "  all layers: {:.1} ns per delivery; the clock costs {:.1} ns per handler call \
         (`less clock`: ns/delivery without it)",
        f(&r["layers_ns_per_delivery"]),
        f(&r["clock_cost_ns"])
    );
    let _ = writeln!(
        s,
        "  whole run (network loop included): {:.1} ns per delivery with profiling off, {:.1} on: \
         profiling costs {:.1} ns per delivery ({:.1} %), {:.1} ns per handler call",
        f(&r["run_ns_per_delivery"]["profiling_off"]),
        f(&r["run_ns_per_delivery"]["profiling_on"]),
        f(&r["overhead_ns_per_delivery"]),
        f(&r["overhead_percent"]),
        f(&r["overhead_ns_per_event"]),
    );
    s
}
