//! `strata member`: one real group member in this process.
//!
//! Builds the layers of a descriptor, joins its group through the network runtime
//! ([`transports::Runtime`]), optionally casts messages, prints views and a delivery
//! summary, writes its trace, and exits cleanly on SIGINT/SIGTERM, after
//! `--duration`, or on `stop` (see [`crate::proc`] for the control protocol that
//! `strata demo` and `strata bench` drive it with). A clean exit on a signal or `stop`
//! first stops casting and keeps delivering until nothing has arrived for
//! 300 ms (3 s at most), so that members stopped together end with the casts that
//! were in flight between them delivered.
//!
//! Output (stdout): human lines, `view <id> <member>...`, `sent <n>`,
//! `complete <n>`, and last one JSON object with the run's figures (the only line
//! starting with `{`).
//!
//! Identity: the member is `MemberId::new(fnv1a32(--name), --incarnation)` (the
//! incarnation is 0 unless given; random node without a name). A stack without a membership layer installs one static view at join: the
//! members named by `--peers` (this member included, in the order given), so every
//! process of the group must be given the same list. Without `--peers` the view holds
//! this member alone, and `nak` drops the sequenced casts of everyone else.
//!
//! Exclusion: with a membership layer, an `Exit` the member did not ask for means the
//! group excluded it (a majority suspected it, e.g. while the process was stopped).
//! The member prints `excluded <member>`, rejoins as the next incarnation of its node
//! (`MemberId::new(node, incarnation + 1)`, a new member to the group, which joins
//! like any newcomer and receives the group state) and prints `rejoin <member>`. Each
//! incarnation writes its own trace (`DIR/<member>.jsonl`, or `FILE` with
//! `.<incarnation>` before its extension).
//!
//! The application answers `Block` with `block_ok` and `StateRequest` with a small
//! state (its name and how many casts it delivered).
//!
//! `--raw` runs the plain-UDP baseline of `strata bench` instead: no stack, a
//! multicast socket on 127.0.0.1, datagrams counted, losses allowed.

use crate::proc::{self, mono_ns};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use crossbeam_channel::{select, Receiver};
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use stack_core::transport::{TransportSpec, UdpuSpec};
use stack_core::{AppEvent, CastError, GroupConfig, MemberId, StackConfig, TraceWriter};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// The stack descriptor (shipped descriptors are also built in).
    #[arg(long, value_name = "FILE", default_value = proc::DEFAULT_STACK)]
    stack: PathBuf,
    /// This member's name; its id is derived from it (random without).
    #[arg(long)]
    name: Option<String>,
    /// The incarnation of the member id derived from `--name`: a process that
    /// restarts under the same name is a new member when given a new incarnation.
    #[arg(long, default_value_t = 0, value_name = "N", requires = "name")]
    incarnation: u32,
    /// Every member's name, for stacks without a membership layer (the static view).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    peers: Vec<String>,
    /// Write the member's trace to FILE (or to DIR/<member>.jsonl if a directory).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Cast this many messages.
    #[arg(long, default_value_t = 0, value_name = "N")]
    send: u64,
    /// Cast for this many seconds as fast as flow control allows (instead of --send).
    #[arg(long, value_name = "SECONDS")]
    send_for: Option<f64>,
    /// Payload size in bytes (the first 8 carry the send time).
    #[arg(long, default_value_t = 64, value_name = "BYTES")]
    size: usize,
    /// Casts per second (0: as fast as flow control allows).
    #[arg(long, default_value_t = 0.0, value_name = "MSGS_PER_S")]
    rate: f64,
    /// Report `complete N` once N casts (all senders, own included) were delivered.
    #[arg(long, value_name = "N")]
    expect: Option<u64>,
    /// Exit once `--expect` is reached and this member's casts are sent (after a
    /// short linger that lets others recover lost messages from this member).
    #[arg(long)]
    exit_when_complete: bool,
    /// Exit after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Udp: the multicast group instead of the descriptor's.
    #[arg(long, value_name = "ADDR")]
    group: Option<String>,
    /// Udp: the interface address instead of the descriptor's.
    #[arg(long, value_name = "ADDR")]
    interface: Option<String>,
    /// Run over udpu (unicast fan-out) whatever the descriptor's transport.
    #[arg(long)]
    udpu: bool,
    /// Udpu: the address to bind instead of the descriptor's.
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// Udpu: the seed addresses instead of the descriptor's.
    #[arg(long, value_delimiter = ',', value_name = "ADDRS")]
    seeds: Vec<String>,
    /// Read control commands from standard input (used by `demo` and `bench`).
    #[arg(long, hide = true)]
    control: bool,
    /// Plain UDP multicast baseline: no stack (used by `bench --raw`).
    #[arg(long, hide = true)]
    raw: bool,
}

/// A command read from standard input.
enum Control {
    Cast(u64),
    CastFor(Duration),
    Expect(u64),
    Stop,
}

fn read_control() -> Receiver<Control> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let mut w = line.split_whitespace();
            let c = match (w.next(), w.next()) {
                (Some("cast"), Some(n)) => n.parse().ok().map(Control::Cast),
                (Some("cast-for"), Some(s)) => {
                    s.parse().ok().map(|s: f64| Control::CastFor(Duration::from_secs_f64(s)))
                }
                (Some("expect"), Some(n)) => n.parse().ok().map(Control::Expect),
                (Some("stop"), _) => Some(Control::Stop),
                _ => None,
            };
            match c {
                Some(c) => {
                    if tx.send(c).is_err() {
                        return;
                    }
                }
                None => eprintln!("strata member: unknown control line `{line}`"),
            }
        }
        let _ = tx.send(Control::Stop);
    });
    rx
}

/// SIGINT and SIGTERM set the returned flag (signal-hook's `flag` registration:
/// async-signal-safe, no handler code of ours).
/// A stopping member exits once nothing was delivered for this long...
const STOP_QUIET: Duration = Duration::from_millis(300);
/// ...or after this long at most.
const STOP_MAX: Duration = Duration::from_secs(3);

fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing a signal handler")?;
    }
    Ok(stop)
}

/// The casting in progress.
#[derive(Default)]
struct Sending {
    /// Casts still to make (count mode).
    left: u64,
    /// Cast until then (time mode).
    until: Option<Instant>,
    /// When the next cast is due (rate mode).
    next_due: Option<Instant>,
    active: bool,
}

/// Latency and throughput figures of what this member received.
struct Stats {
    delivered: u64,
    delivered_bytes: u64,
    from: BTreeMap<MemberId, u64>,
    first_delivery_ns: Option<u64>,
    last_delivery_ns: Option<u64>,
    latency: Histogram<u64>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            delivered: 0,
            delivered_bytes: 0,
            from: BTreeMap::new(),
            first_delivery_ns: None,
            last_delivery_ns: None,
            latency: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds"),
        }
    }

    fn deliver(&mut self, from: MemberId, own: bool, payload: &[u8]) {
        let now = mono_ns();
        self.delivered += 1;
        *self.from.entry(from).or_default() += 1;
        self.delivered_bytes += payload.len() as u64;
        self.first_delivery_ns.get_or_insert(now);
        self.last_delivery_ns = Some(now);
        if !own && payload.len() >= 8 {
            let sent = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
            self.latency.saturating_record(now.saturating_sub(sent).max(1));
        }
    }

    fn latency_json(&self) -> Value {
        let h = &self.latency;
        let us = |ns: u64| ns as f64 / 1000.0;
        json!({
            "count": h.len(),
            "p50": us(h.value_at_quantile(0.50)),
            "p99": us(h.value_at_quantile(0.99)),
            "p999": us(h.value_at_quantile(0.999)),
            "max": us(h.max()),
        })
    }
}

fn payload(size: usize, seq: u64) -> Bytes {
    let mut v = vec![0u8; size];
    let ts = mono_ns().to_le_bytes();
    let n = size.min(8);
    v[..n].copy_from_slice(&ts[..n]);
    if size >= 16 {
        v[8..16].copy_from_slice(&seq.to_le_bytes());
    }
    Bytes::from(v)
}

fn transport_label(t: &TransportSpec) -> String {
    match t {
        TransportSpec::Udp(u) => format!("Udp {} on {}", u.group, u.interface),
        TransportSpec::Udpu(u) => format!("Udpu {} ({} seeds)", u.bind, u.seeds.len()),
        TransportSpec::Sim(_) => "Sim".into(),
    }
}

/// The descriptor's transport with the command line's overrides.
fn transport(args: &Args, spec: &TransportSpec) -> Result<TransportSpec> {
    let mut t = spec.clone();
    if args.udpu {
        let (recv_buffer, send_buffer, mtu) = match &t {
            TransportSpec::Udp(u) => (u.recv_buffer, u.send_buffer, u.mtu),
            TransportSpec::Udpu(u) => (u.recv_buffer, u.send_buffer, u.mtu),
            TransportSpec::Sim(_) => (4 << 20, 4 << 20, None),
        };
        t = TransportSpec::Udpu(UdpuSpec {
            bind: "127.0.0.1:0".into(),
            seeds: Vec::new(),
            recv_buffer,
            send_buffer,
            mtu,
        });
    }
    match &mut t {
        TransportSpec::Udp(u) => {
            if args.bind.is_some() || !args.seeds.is_empty() {
                bail!("--bind and --seeds are for the Udpu transport (add --udpu)");
            }
            if let Some(g) = &args.group {
                u.group = g.clone();
            }
            if let Some(i) = &args.interface {
                u.interface = i.clone();
            }
        }
        TransportSpec::Udpu(u) => {
            if args.group.is_some() || args.interface.is_some() {
                bail!("--group and --interface are for the Udp transport");
            }
            if let Some(b) = &args.bind {
                u.bind = b.clone();
            }
            if !args.seeds.is_empty() {
                u.seeds = args.seeds.clone();
            }
        }
        TransportSpec::Sim(_) => bail!(
            "the descriptor asks for the Sim transport, which does not run on the real \
             network: use `strata sim` for it, or a descriptor with Udp or Udpu"
        ),
    }
    Ok(t)
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.raw {
        return raw::run(&args);
    }
    let stop = stop_on_signals()?;
    let started = Instant::now();
    let deadline = args.duration.map(|s| started + Duration::from_secs_f64(s));
    let reg = layers::registry();
    let desc = proc::load_stack(&args.stack, &reg)?;
    let spec = transport(&args, &desc.transport)?;
    let (me, name) = match &args.name {
        Some(n) => (MemberId::new(proc::member_id(n).node(), args.incarnation), n.clone()),
        None => {
            let id = proc::random_member_id();
            (id, id.to_string())
        }
    };
    let has_views = desc.provides().contains(&stack_core::props::VIEWS);
    let mut names: BTreeMap<MemberId, String> = BTreeMap::new();
    let mut members = Vec::new();
    for p in &args.peers {
        let id = proc::member_id(p);
        if names.insert(id, p.clone()).is_some() {
            bail!("--peers names `{p}` twice");
        }
        members.push(id);
    }
    names.insert(me, name.clone());
    if !members.contains(&me) {
        if !args.peers.is_empty() {
            bail!("--peers must name this member (`{name}`) too");
        }
        members.push(me);
        if !has_views {
            eprintln!(
                "strata member: `{}` has no membership layer and no --peers were given: \
                 the view holds only this member, and casts of other members are dropped",
                desc.name
            );
        }
    }
    let runtime = transports::Runtime::start().context("starting the network runtime")?;
    let join = |me: MemberId| -> Result<stack_core::GroupHandle> {
        let layers = desc.build_layers(&reg).context("building the layers")?;
        let seed = me.0 ^ mono_ns();
        let mut cfg = GroupConfig::new(
            layers,
            spec.clone(),
            desc.group_id(),
            StackConfig { me, seed, members: members.clone() },
        );
        if let Some(t) = &args.trace {
            let path = trace_path(t, me);
            let f = std::fs::File::create(&path)
                .with_context(|| format!("creating the trace {}", path.display()))?;
            // Line by line, so a member killed mid-run leaves whole lines behind.
            cfg = cfg.with_trace(TraceWriter::new(me, Box::new(std::io::LineWriter::new(f))));
        }
        runtime.join(cfg).with_context(|| {
            format!("joining group `{}` over {}", desc.group, transport_label(&spec))
        })
    };
    let mut h = join(me)?;
    let mut me = me;
    println!(
        "member {name} ({me}) in group `{}` of stack `{}` over {}",
        desc.group,
        desc.name,
        transport_label(&spec)
    );

    let control = if args.control { read_control() } else { crossbeam_channel::never() };
    let mut sending = Sending::default();
    if args.send > 0 || args.send_for.is_some() {
        sending.active = true;
        sending.left = args.send;
        sending.until = args.send_for.map(|s| Instant::now() + Duration::from_secs_f64(s));
    }
    let rate_gap = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    let mut expect = args.expect;
    let mut stats = Stats::new();
    let mut sent: u64 = 0;
    let mut sent_bytes: u64 = 0;
    let mut refused: u64 = 0;
    let mut refused_now = false;
    let mut send_start_ns: Option<u64> = None;
    let mut send_end_ns: Option<u64> = None;
    let mut views: Vec<Value> = Vec::new();
    let mut completed_at: Option<Instant> = None;
    let exit_reason;
    let mut exited = false;
    let mut incarnations: u32 = 1;
    let linger = Duration::from_millis(500);
    // Stopping: (since, deliveries last seen, when they last changed).
    let mut stopping: Option<(Instant, u64, Instant)> = None;

    loop {
        if stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let (since, seen, quiet) = stopping.get_or_insert_with(|| {
                if sending.active {
                    sending = Sending::default();
                    send_end_ns = Some(mono_ns());
                    println!("sent {sent}");
                }
                (now, stats.delivered, now)
            });
            if stats.delivered != *seen {
                (*seen, *quiet) = (stats.delivered, now);
            }
            if now - *quiet >= STOP_QUIET || now - *since >= STOP_MAX {
                exit_reason = "signal";
                break;
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            exit_reason = "duration";
            break;
        }
        if exited {
            exit_reason = "exited";
            break;
        }
        if args.exit_when_complete && !sending.active {
            if let Some(at) = completed_at {
                if at.elapsed() >= linger {
                    exit_reason = "complete";
                    break;
                }
            }
        }
        // Cast while the stack takes casts; at most a batch per turn so events are
        // drained in between.
        let mut wait = Duration::from_millis(20);
        if sending.active {
            for _ in 0..256 {
                let now = Instant::now();
                let done = match sending.until {
                    Some(u) => now >= u,
                    None => sending.left == 0,
                };
                if done {
                    sending = Sending::default();
                    send_end_ns = Some(mono_ns());
                    println!("sent {sent}");
                    break;
                }
                if let (Some(gap), Some(due)) = (rate_gap, sending.next_due) {
                    if now < due {
                        wait = wait.min(due - now);
                        break;
                    }
                    sending.next_due = Some(due + gap);
                }
                match h.cast(payload(args.size, sent + 1)) {
                    Ok(_) => {
                        send_start_ns.get_or_insert_with(mono_ns);
                        if sending.next_due.is_none() {
                            sending.next_due = rate_gap.map(|g| now + g);
                        }
                        sent += 1;
                        sent_bytes += args.size as u64;
                        sending.left = sending.left.saturating_sub(1);
                        refused_now = false;
                    }
                    Err(CastError::Exited) => {
                        // Left, or excluded: the `Exit` event says which.
                        wait = Duration::from_millis(1);
                        break;
                    }
                    Err(_) => {
                        // Window closed, queue full, view changing or not joined:
                        // wait for an event (Flow { open: true }, a view) or 1 ms.
                        if !refused_now {
                            refused += 1;
                            refused_now = true;
                        }
                        wait = Duration::from_millis(1);
                        if let Some(d) = sending.next_due.as_mut() {
                            *d = now;
                        }
                        break;
                    }
                }
            }
            if sending.active && !refused_now && wait == Duration::from_millis(20) {
                wait = Duration::ZERO;
            }
        }
        let mut excluded = false;
        let mut handle_event = |ev: AppEvent,
                                h: &mut stack_core::GroupHandle,
                                stats: &mut Stats| match ev {
            AppEvent::Deliver { from, payload, .. } => stats.deliver(from, from == me, &payload),
            AppEvent::View(v) => {
                let list: Vec<String> = v.members.iter().map(|m| m.to_string()).collect();
                let named: Vec<String> = v
                    .members
                    .iter()
                    .map(|m| names.get(m).cloned().unwrap_or_else(|| m.to_string()))
                    .collect();
                println!(
                    "view {} {} ({}; {})",
                    v.id,
                    list.join(" "),
                    named.join(" "),
                    v.reason.as_str()
                );
                views.push(json!({"id": v.id, "members": list, "reason": v.reason.as_str()}));
            }
            AppEvent::Block => h.block_ok(),
            AppEvent::StateRequest => {
                h.state_reply(Bytes::from(format!("{name} delivered {}", stats.delivered)))
            }
            AppEvent::State(s) => {
                println!("state {}", String::from_utf8_lossy(&s));
            }
            AppEvent::Suspect(m) if !m.is_empty() => {
                let l: Vec<String> = m.iter().map(|m| m.to_string()).collect();
                println!("suspect {}", l.join(" "));
            }
            AppEvent::NotPrimary => println!("not-primary"),
            AppEvent::Exit if has_views => {
                // This member never asks to leave before the loop ends: an `Exit` is
                // an exclusion (suspected by a majority, e.g. while it was stopped).
                println!("excluded {me}");
                excluded = true;
            }
            AppEvent::Exit => {
                println!("exit");
                exited = true;
            }
            AppEvent::Receive { .. }
            | AppEvent::Suspect(_)
            | AppEvent::Stable(_)
            | AppEvent::Flow { .. } => {}
        };
        let mut first = None;
        let mut closed = false;
        if wait.is_zero() {
            first = h.try_recv().ok();
        } else {
            let events = h.events().clone();
            select! {
                recv(events) -> ev => {
                    closed = ev.is_err();
                    first = ev.ok();
                }
                recv(control) -> c => {
                    if let Ok(c) = c {
                        if matches!(c, Control::Stop) {
                            stop.store(true, Ordering::Relaxed);
                        }
                        apply(c, &mut sending, &mut expect, &mut completed_at);
                    }
                }
                default(wait) => {}
            }
        }
        if let Some(ev) = first {
            handle_event(ev, &mut h, &mut stats);
        }
        for _ in 0..4096 {
            match h.try_recv() {
                Ok(ev) => handle_event(ev, &mut h, &mut stats),
                Err(_) => break,
            }
        }
        if excluded {
            // Rejoin as the next incarnation of this node: a new member to the group,
            // with its own trace, that joins like any newcomer (state transfer included).
            me = MemberId::new(me.node(), me.incarnation() + 1);
            names.insert(me, name.clone());
            drop(std::mem::replace(&mut h, join(me)?));
            incarnations += 1;
            println!("rejoin {me}");
            continue;
        }
        if closed {
            // The runtime dropped this member without an `Exit` event.
            exited = true;
        }
        while let Ok(c) = control.try_recv() {
            if matches!(c, Control::Stop) {
                stop.store(true, Ordering::Relaxed);
            }
            apply(c, &mut sending, &mut expect, &mut completed_at);
        }
        if let Some(n) = expect {
            if stats.delivered >= n {
                println!("complete {}", stats.delivered);
                expect = None;
                completed_at = Some(Instant::now());
            }
        }
    }

    // Clean exit: the trace's end line, the summary, then leave.
    if !exited {
        h.end_trace();
    }
    let counters = h.counters();
    let mut by_layer: Map<String, Value> = Map::new();
    for (layer, counter, v) in &counters {
        let e = by_layer.entry(layer.to_string()).or_insert_with(|| json!({}));
        e[*counter] = json!(v);
    }
    let net = h.stats();
    let from: Map<String, Value> = stats
        .from
        .iter()
        .map(|(m, n)| (names.get(m).cloned().unwrap_or_else(|| m.to_string()), json!(n)))
        .collect();
    let summary = json!({
        "member": me.to_string(),
        "name": name,
        "stack": desc.name,
        "transport": transport_label(&spec),
        "exit": exit_reason,
        "incarnations": incarnations,
        "sent": sent,
        "sent_bytes": sent_bytes,
        "refused": refused,
        "delivered": stats.delivered,
        "delivered_bytes": stats.delivered_bytes,
        "from": from,
        "views": views,
        "send_start_ns": send_start_ns,
        "send_end_ns": send_end_ns,
        "first_delivery_ns": stats.first_delivery_ns,
        "last_delivery_ns": stats.last_delivery_ns,
        "latency_us": stats.latency_json(),
        "counters": by_layer,
        "net": {
            "datagrams_in": net.datagrams_in,
            "datagrams_out": net.datagrams_out,
            "bytes_in": net.bytes_in,
            "bytes_out": net.bytes_out,
            "foreign_dropped": net.foreign_dropped,
            "send_errors": h.socket_stats().send_errors,
        },
        "seconds": started.elapsed().as_secs_f64(),
        "cpu_seconds": proc::cpu_seconds(),
    });
    println!(
        "delivered {} casts ({} bytes), sent {sent}; exit: {exit_reason}",
        stats.delivered, stats.delivered_bytes
    );
    println!("{summary}");
    h.leave();
    // Give a membership protocol a moment to see the leave, then stop the loop.
    let _ = h.recv_timeout(Duration::from_millis(if has_views { 500 } else { 0 }));
    drop(h);
    runtime.stop();
    Ok(ExitCode::SUCCESS)
}

/// Where the trace of incarnation `me` goes: `DIR/<me>.jsonl` when `t` is a
/// directory, else the file `t` for incarnation 0 and `t` with `.<incarnation>`
/// before its extension for the later ones (`a.jsonl`, `a.1.jsonl`, ...).
fn trace_path(t: &std::path::Path, me: MemberId) -> PathBuf {
    if t.is_dir() {
        return t.join(format!("{me}.jsonl"));
    }
    if me.incarnation() == 0 {
        return t.to_path_buf();
    }
    let stem = t.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match t.extension() {
        Some(e) => format!("{stem}.{}.{}", me.incarnation(), e.to_string_lossy()),
        None => format!("{stem}.{}", me.incarnation()),
    };
    t.with_file_name(name)
}

fn apply(
    c: Control,
    sending: &mut Sending,
    expect: &mut Option<u64>,
    completed_at: &mut Option<Instant>,
) {
    match c {
        Control::Cast(n) => {
            sending.active = true;
            sending.left += n;
            sending.until = None;
        }
        Control::CastFor(d) => {
            sending.active = true;
            sending.left = 0;
            sending.until = Some(Instant::now() + d);
        }
        Control::Expect(n) => {
            *expect = Some(n);
            *completed_at = None;
        }
        Control::Stop => {}
    }
}

/// The raw UDP multicast baseline of `strata bench --raw`.
mod raw {
    use super::*;
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    use std::net::Ipv4Addr;

    pub fn run(args: &Args) -> Result<ExitCode> {
        let stop = stop_on_signals()?;
        let group: SocketAddrV4 = match &args.group {
            Some(g) => transports::udp::parse_group(g)?,
            None => bail!("--raw needs --group"),
        };
        let name = args.name.clone().unwrap_or_else(|| "raw".into());
        let node = proc::member_id(&name).node();
        let lo = Ipv4Addr::LOCALHOST;
        let r = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        r.set_reuse_address(true)?;
        r.set_reuse_port(true)?;
        let _ = r.set_recv_buffer_size(4 << 20);
        r.bind(&SockAddr::from(group)).context("binding the raw group socket")?;
        r.join_multicast_v4(group.ip(), &lo).context("joining the raw group on 127.0.0.1")?;
        r.set_read_timeout(Some(Duration::from_millis(20)))?;
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_multicast_if_v4(&lo)?;
        s.set_multicast_loop_v4(true)?;
        let _ = s.set_send_buffer_size(4 << 20);
        s.bind(&SockAddr::from(SocketAddrV4::new(lo, 0)))?;
        let dest = SockAddr::from(group);

        let done = Arc::new(AtomicBool::new(false));
        let receiver = {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 65536];
                let mut st = Stats::new();
                while !done.load(Ordering::Relaxed) {
                    if let Ok(n) = r.recv(&mut buf) {
                        // SAFETY: recv initialized the first n bytes.
                        let d: &[u8] =
                            unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), n) };
                        let from = match d.get(16..20) {
                            Some(b) => u32::from_le_bytes(b.try_into().expect("4 bytes")),
                            None => 0,
                        };
                        st.deliver(MemberId::new(from, 0), from == node, d);
                    }
                }
                st
            })
        };
        println!("raw member {name} on {group} via 127.0.0.1");
        let control = if args.control { read_control() } else { crossbeam_channel::never() };
        let size = args.size.max(20);
        let mut buf = vec![0u8; size];
        buf[16..20].copy_from_slice(&node.to_le_bytes());
        let (mut sent, mut errors) = (0u64, 0u64);
        let (mut send_start, mut send_end) = (None, None);
        let mut until: Option<Instant> =
            args.send_for.map(|t| Instant::now() + Duration::from_secs_f64(t));
        let deadline = args.duration.map(|t| Instant::now() + Duration::from_secs_f64(t));
        let gap = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
        let mut next_due: Option<Instant> = None;
        loop {
            if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            if let Some(u) = until {
                if Instant::now() >= u {
                    until = None;
                    send_end = Some(mono_ns());
                    println!("sent {sent}");
                } else {
                    for _ in 0..64 {
                        if let Some(gap) = gap {
                            // Paced: send when due (catching up after a late wake-up).
                            let now = Instant::now();
                            let due = *next_due.get_or_insert(now);
                            if now < due {
                                std::thread::sleep((due - now).min(Duration::from_millis(1)));
                                break;
                            }
                            next_due = Some(due + gap);
                        }
                        buf[..8].copy_from_slice(&mono_ns().to_le_bytes());
                        buf[8..16].copy_from_slice(&(sent + 1).to_le_bytes());
                        match s.send_to(&buf, &dest) {
                            Ok(_) => {
                                send_start.get_or_insert_with(mono_ns);
                                sent += 1;
                            }
                            Err(_) => errors += 1,
                        }
                    }
                    if let Ok(c) = control.try_recv() {
                        match c {
                            Control::Stop => break,
                            Control::CastFor(d) => until = Some(Instant::now() + d),
                            _ => {}
                        }
                    }
                    continue;
                }
            }
            match control.recv_timeout(Duration::from_millis(20)) {
                Ok(Control::Stop) => break,
                Ok(Control::CastFor(d)) => until = Some(Instant::now() + d),
                _ => {}
            }
        }
        done.store(true, Ordering::Relaxed);
        let st = receiver.join().unwrap_or_else(|_| Stats::new());
        let summary = json!({
            "member": MemberId::new(node, 0).to_string(),
            "name": name,
            "raw": true,
            "sent": sent,
            "send_errors": errors,
            "delivered": st.delivered,
            "delivered_bytes": st.delivered_bytes,
            "send_start_ns": send_start,
            "send_end_ns": send_end,
            "first_delivery_ns": st.first_delivery_ns,
            "last_delivery_ns": st.last_delivery_ns,
            "latency_us": st.latency_json(),
            "cpu_seconds": proc::cpu_seconds(),
        });
        println!("received {} datagrams, sent {sent}", st.delivered);
        println!("{summary}");
        Ok(ExitCode::SUCCESS)
    }
}
