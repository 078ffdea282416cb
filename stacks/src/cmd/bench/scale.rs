//! `strata bench --scale`: cost against group size and against the number of groups.
//!
//! Three parts (`--parts sim,procs,groups`), each written to `--out` as JSON and SVG:
//!
//! - `sim` (`scale-sim.{json,svg}`): `--stack` over the in-memory network
//!   ([`benches::Mesh`], as `--layers`) with 2, 3, 4, 6, 8, 12 and 16 members, each casting `--messages / members` payloads of `--size`
//!   bytes as fast as the stack takes them; the layers' CPU time (per-layer
//!   profiling) per delivered message and per cast, and the whole run's wall time per
//!   delivery (one thread, the network loop included). Free of the kernel.
//! - `procs` (`scale-procs.{json,svg}`): 2, 3, 4, 6 and 8 real member processes on
//!   loopback for `--seconds` each: delivered messages/s per member, p99 latency and
//!   CPU microseconds per delivered message (all members' CPU over all deliveries).
//! - `groups` (`scale-groups.{json,svg}`): one process, two members (`x`, `y`, each
//!   with its own runtime and so its own socket) of 1, 10, 100 and 1000 groups whose
//!   stacks share that socket; `x` casts 10,000 payloads of `--size` bytes per
//!   second in total, spread evenly over the groups, for `--seconds`. Reported:
//!   messages/s delivered at `y`, its p99 latency, the process's CPU microseconds per
//!   delivered message, and its resident memory. The stack must not need a
//!   membership layer (static views), e.g. `stacks/fifo.ron`.

use super::layers::{profiles, simulate};
use super::{chart, memory, progress, run_cell, Args};
use crate::proc::{self, mono_ns};
use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use stack_core::packet::group_id;
use stack_core::{
    props, AppEvent, Bytes, CastError, GroupConfig, GroupHandle, MemberId, StackConfig,
    TransportSpec,
};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Group sizes of the simulator part.
pub const SIM_MEMBERS: [u32; 7] = [2, 3, 4, 6, 8, 12, 16];
/// Process counts of the real-process part.
pub const PROC_MEMBERS: [usize; 5] = [2, 3, 4, 6, 8];
/// Group counts of the shared-socket part.
pub const GROUPS: [usize; 4] = [1, 10, 100, 1000];
/// Casts per second over all groups in the shared-socket part.
pub const TOTAL_RATE: f64 = 10_000.0;

fn write(out: &Path, name: &str, text: String) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let p = out.join(name);
    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
}

fn r1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The simulator part.
pub fn sim_part(stack: &Path, size: usize, messages: u64) -> Result<Vec<Value>> {
    let reg = layers::registry();
    let desc = proc::load_stack(stack, &reg)?;
    let mut rows = Vec::new();
    for n in SIM_MEMBERS {
        let each = (messages / n as u64).max(50);
        progress(format!("in memory: `{}` with {n} members, {each} casts each", desc.name));
        let run = simulate(&desc, n, size, each, true)?;
        let (sent, delivered) = (run.mesh.sent, run.mesh.delivered);
        let layers_ns: u64 = profiles(&run.mesh).iter().map(|p| p.1.nanos).sum();
        let d = delivered.max(1) as f64;
        rows.push(json!({
            "members": n,
            "casts": sent,
            "deliveries": delivered,
            "complete": run.complete,
            "layers_ns_per_delivery": r1(layers_ns as f64 / d),
            "layers_ns_per_cast": r1(layers_ns as f64 / sent.max(1) as f64),
            "run_ns_per_delivery": r1(run.wall.as_nanos() as f64 / d),
        }));
    }
    Ok(rows)
}

/// The real-process part.
pub fn procs_part(args: &Args) -> Result<Vec<Value>> {
    let mut rows = Vec::new();
    for n in PROC_MEMBERS {
        let cell = args.cell(n);
        let f = run_cell(&cell, &args.net_opts())?;
        let per = f["per_member"].as_array().cloned().unwrap_or_default();
        let cpu: f64 = per.iter().map(|p| p["cpu_seconds"].as_f64().unwrap_or(0.0)).sum();
        let delivered: u64 = per.iter().map(|p| p["delivered"].as_u64().unwrap_or(0)).sum();
        rows.push(json!({
            "members": n,
            "msgs_per_s": f["msgs_per_s"],
            "mb_per_s": f["mb_per_s"],
            "p99_us": f["latency_us"]["p99"],
            "complete": f["complete"],
            "cpu_us_per_delivery": r1(cpu * 1e6 / delivered.max(1) as f64),
        }));
    }
    Ok(rows)
}

fn payload(size: usize) -> Bytes {
    let mut v = vec![0u8; size.max(8)];
    v[..8].copy_from_slice(&mono_ns().to_le_bytes());
    Bytes::from(v)
}

/// One point of the shared-socket part: `groups` groups, two members each.
pub fn groups_point(
    stack: &Path,
    group_addr: Option<&str>,
    groups: usize,
    size: usize,
    seconds: f64,
) -> Result<Value> {
    let reg = layers::registry();
    let desc = proc::load_stack(stack, &reg)?;
    if desc.provides().contains(&props::VIEWS) {
        bail!("--scale groups needs a stack without a membership layer (e.g. stacks/fifo.ron)");
    }
    let mut transport = desc.transport.clone();
    match &mut transport {
        TransportSpec::Udp(u) => {
            if let Some(g) = group_addr {
                u.group = g.to_string();
            }
            let addr = transports::udp::parse_group(&u.group)?;
            proc::probe_loopback_multicast(addr)
                .map_err(|e| anyhow::anyhow!("--scale groups needs loopback multicast: {e}"))?;
        }
        _ => bail!("--scale groups needs a Udp (multicast) stack"),
    }
    let (x, y) = (MemberId::new(1, 0), MemberId::new(2, 0));
    let rx = transports::Runtime::start()?;
    let ry = transports::Runtime::start()?;
    let mut xs: Vec<GroupHandle> = Vec::with_capacity(groups);
    let mut ys: Vec<GroupHandle> = Vec::with_capacity(groups);
    for g in 0..groups {
        let id = group_id(&format!("scale-{g}"));
        for (me, rt) in [(x, &rx), (y, &ry)] {
            let cfg = GroupConfig::new(
                desc.build_layers(&reg)?,
                transport.clone(),
                id,
                StackConfig { me, seed: me.0 ^ g as u64, members: vec![x, y] },
            );
            let h = rt.join(cfg).with_context(|| format!("joining group {g}"))?;
            if me == x {
                xs.push(h);
            } else {
                ys.push(h);
            }
        }
    }
    // Wait for every view.
    let deadline = Instant::now() + Duration::from_secs(10);
    while xs.iter().chain(&ys).any(|h| h.view().is_none()) {
        if Instant::now() > deadline {
            bail!("not every group installed its view in 10 s");
        }
        for h in xs.iter().chain(&ys) {
            while h.try_recv().is_ok() {}
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut lat = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
    let (mut sent, mut refused, mut delivered) = (0u64, 0u64, 0u64);
    let rss_before = memory::read_status(std::process::id()).map_or(0, |m| m.0);
    let cpu0 = proc::cpu_seconds();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let gap = Duration::from_secs_f64(1.0 / TOTAL_RATE);
    let mut due = start;
    let mut next_group = 0;
    let mut last_delivery = start;
    // Cast on time, then drain; after the end, drain until y got everything (bounded).
    loop {
        let now = Instant::now();
        if now < end {
            while due <= now {
                match xs[next_group].cast(payload(size)) {
                    Ok(_) => {
                        sent += 1;
                        next_group = (next_group + 1) % groups;
                        due += gap;
                    }
                    Err(CastError::WouldBlock) | Err(CastError::Blocked) => {
                        refused += 1;
                        break;
                    }
                    Err(e) => bail!("cast in group {next_group}: {e}"),
                }
            }
        } else if delivered >= sent || now > end + Duration::from_secs(5) {
            break;
        }
        for h in &xs {
            while h.try_recv().is_ok() {}
        }
        for h in &ys {
            while let Ok(ev) = h.try_recv() {
                if let AppEvent::Deliver { payload, .. } = ev {
                    delivered += 1;
                    last_delivery = Instant::now();
                    if payload.len() >= 8 {
                        let t = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
                        lat.saturating_record(mono_ns().saturating_sub(t).max(1));
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let cpu = proc::cpu_seconds() - cpu0;
    let (rss, _) = memory::read_status(std::process::id()).unwrap_or((0, 0));
    let span = last_delivery.duration_since(start).as_secs_f64().max(seconds);
    drop(xs);
    drop(ys);
    rx.stop();
    ry.stop();
    Ok(json!({
        "groups": groups,
        "sent": sent,
        "refused": refused,
        "delivered": delivered,
        "msgs_per_s": (delivered as f64 / span).round(),
        "p50_us": r1(lat.value_at_quantile(0.5) as f64 / 1e3),
        "p99_us": r1(lat.value_at_quantile(0.99) as f64 / 1e3),
        "cpu_us_per_delivery": r1(cpu * 1e6 / delivered.max(1) as f64),
        "cpu_percent": r1(cpu / span * 100.0),
        "rss_kib": rss,
        "rss_kib_added": rss.saturating_sub(rss_before),
    }))
}

/// The shared-socket part.
pub fn groups_part(args: &Args) -> Result<Vec<Value>> {
    let mut rows = Vec::new();
    for g in GROUPS {
        progress(format!(
            "groups: {g} groups sharing one socket per member, {TOTAL_RATE} casts/s of {} B in total for {} s",
            args.size, args.seconds
        ));
        rows.push(groups_point(&args.stack, args.group.as_deref(), g, args.size, args.seconds)?);
    }
    Ok(rows)
}

fn pts(rows: &[Value], x: &str, y: &str) -> Vec<(f64, f64)> {
    rows.iter().filter_map(|r| Some((r[x].as_f64()?, r[y].as_f64()?))).collect()
}

fn line(name: &str, points: Vec<(f64, f64)>) -> chart::Line {
    chart::Line { name: name.into(), points }
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let has = |p: &str| args.parts.iter().any(|x| x == p);
    if let Some(bad) = args.parts.iter().find(|p| !["sim", "procs", "groups"].contains(&p.as_str()))
    {
        bail!("--parts: unknown part `{bad}` (sim, procs, groups)");
    }
    let name = proc::load_stack(&args.stack, &layers::registry())?.name;
    if has("sim") {
        let rows = sim_part(&args.stack, args.size, args.messages)?;
        println!("in-memory network, `{name}`, {} B payloads:", args.size);
        println!("  members  layers ns/delivery  layers ns/cast  run ns/delivery");
        for r in &rows {
            println!(
                "  {:>7} {:>19} {:>15} {:>16}",
                r["members"],
                r["layers_ns_per_delivery"],
                r["layers_ns_per_cast"],
                r["run_ns_per_delivery"]
            );
        }
        let svg = chart::page(&[chart::lines(
            &format!("`{name}` in memory: CPU per message against group size ({} B)", args.size),
            "members",
            "nanoseconds",
            &[
                line("layers, per delivery", pts(&rows, "members", "layers_ns_per_delivery")),
                line("layers, per cast", pts(&rows, "members", "layers_ns_per_cast")),
                line("whole run, per delivery", pts(&rows, "members", "run_ns_per_delivery")),
            ],
            false,
            false,
        )]);
        write(&args.out, "scale-sim.svg", svg)?;
        write(
            &args.out,
            "scale-sim.json",
            serde_json::to_string_pretty(&json!({"stack": name, "size": args.size, "rows": rows}))?
                + "\n",
        )?;
    }
    if has("procs") {
        let rows = procs_part(args)?;
        println!(
            "member processes on loopback, `{name}`, {} B payloads, {} s:",
            args.size, args.seconds
        );
        println!("  members   msgs/s   p99 us  cpu us/delivery  complete");
        for r in &rows {
            println!(
                "  {:>7} {:>8} {:>8} {:>16} {:>9}",
                r["members"], r["msgs_per_s"], r["p99_us"], r["cpu_us_per_delivery"], r["complete"]
            );
        }
        let svg = chart::page(&[
            chart::lines(
                &format!("`{name}`, member processes on loopback: delivered messages/s per member ({} B)", args.size),
                "members",
                "messages/s",
                &[line("msgs/s per member", pts(&rows, "members", "msgs_per_s"))],
                false,
                false,
            ),
            chart::lines(
                "p99 latency and CPU per delivered message",
                "members",
                "µs",
                &[
                    line("p99 latency, µs", pts(&rows, "members", "p99_us")),
                    line("CPU µs per delivery", pts(&rows, "members", "cpu_us_per_delivery")),
                ],
                false,
                true,
            ),
        ]);
        write(&args.out, "scale-procs.svg", svg)?;
        write(
            &args.out,
            "scale-procs.json",
            serde_json::to_string_pretty(
                &json!({"stack": name, "size": args.size, "seconds": args.seconds, "rows": rows}),
            )? + "\n",
        )?;
    }
    if has("groups") {
        let rows = groups_part(args)?;
        println!(
            "groups sharing one socket, `{name}`, {TOTAL_RATE} casts/s of {} B in total, {} s:",
            args.size, args.seconds
        );
        println!("   groups   msgs/s   p99 us  cpu us/delivery   cpu %   RSS KiB  refused");
        for r in &rows {
            println!(
                "  {:>7} {:>8} {:>8} {:>16} {:>7} {:>9} {:>8}",
                r["groups"],
                r["msgs_per_s"],
                r["p99_us"],
                r["cpu_us_per_delivery"],
                r["cpu_percent"],
                r["rss_kib"],
                r["refused"]
            );
        }
        let svg = chart::page(&[
            chart::lines(
                &format!(
                    "`{name}`: groups sharing one socket, {TOTAL_RATE} casts/s in total ({} B)",
                    args.size
                ),
                "groups (log)",
                "µs (log)",
                &[
                    line("CPU µs per delivery", pts(&rows, "groups", "cpu_us_per_delivery")),
                    line("p99 latency, µs", pts(&rows, "groups", "p99_us")),
                ],
                true,
                true,
            ),
            chart::lines(
                "delivered messages/s and resident memory",
                "groups (log)",
                "(log)",
                &[
                    line("msgs/s delivered", pts(&rows, "groups", "msgs_per_s")),
                    line("RSS, KiB", pts(&rows, "groups", "rss_kib")),
                ],
                true,
                true,
            ),
        ]);
        write(&args.out, "scale-groups.svg", svg)?;
        write(
            &args.out,
            "scale-groups.json",
            serde_json::to_string_pretty(
                &json!({"stack": name, "size": args.size, "seconds": args.seconds, "total_rate": TOTAL_RATE, "rows": rows}),
            )? + "\n",
        )?;
    }
    println!("wrote scale-*.json and scale-*.svg to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
