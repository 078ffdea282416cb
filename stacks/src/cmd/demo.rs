//! `strata demo`: a group of real member processes on this machine, narrated.
//!
//! Starts three `strata member` processes (this binary) on loopback multicast with
//! the most complete shipped stack, shows the views they install, has each cast a
//! burst of messages, kills one with SIGKILL and shows the view that follows (a stack
//! without a membership layer has none, and the demo says so), starts a fourth member
//! that joins, has the survivors and the newcomer cast again, and ends with the
//! verdict of the conformance checkers over the members' traces (written to a
//! temporary directory). Where loopback multicast does not work it says so and runs
//! over udpu on loopback instead. Every wait is bounded; member processes are killed
//! if the demo ends early.

use crate::proc::{self, Net, Proc, TempDir};
use anyhow::{bail, Result};
use conformance::{scenario, Report, Traces};
use stack_core::props;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// The stack descriptor (shipped descriptors are also built in).
    #[arg(long, value_name = "FILE", default_value = proc::DEFAULT_STACK)]
    stack: PathBuf,
    /// Casts per member in each burst.
    #[arg(long, default_value_t = 100)]
    messages: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 100, value_name = "BYTES")]
    size: usize,
    /// Multicast group instead of the descriptor's.
    #[arg(long, value_name = "ADDR")]
    group: Option<String>,
    /// Use udpu on loopback even where multicast works.
    #[arg(long)]
    udpu: bool,
    /// First udpu port (members use this port and the next three).
    #[arg(long, default_value_t = 7431)]
    udpu_port: u16,
    /// Keep the traces in this directory instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    traces: Option<PathBuf>,
    /// Show the members' own output (stderr).
    #[arg(long)]
    verbose: bool,
}

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

/// `view 3 m1.0 m2.0 (a b; join)` -> (3, "a b", "join").
fn parse_view(line: &str) -> Option<(u64, String, String)> {
    let rest = line.strip_prefix("view ")?;
    let (id, rest) = rest.split_once(' ')?;
    let inner = rest.split_once('(')?.1.trim_end_matches(')');
    let (names, reason) = inner.split_once("; ")?;
    Some((id.parse().ok()?, names.to_string(), reason.to_string()))
}

fn say(s: impl AsRef<str>) {
    println!("{}", s.as_ref());
}

struct Demo {
    args: Args,
    net: Net,
    peers: Option<String>,
    trace_dir: PathBuf,
    procs: Vec<Proc>,
    started: Instant,
}

impl Demo {
    fn start(&mut self, i: usize) -> Result<()> {
        let mut c = proc::member_command()?;
        c.args(["--stack", &self.args.stack.display().to_string()])
            .args(["--name", NAMES[i], "--control", "--duration", "60"])
            .args(["--size", &self.args.size.to_string()])
            .arg("--trace")
            .arg(&self.trace_dir)
            .args(self.net.member_args(i));
        if let Some(p) = &self.peers {
            c.args(["--peers", p]);
        }
        let p = Proc::spawn(NAMES[i], c, !self.args.verbose)?;
        say(format!("  started member {} (pid {})", NAMES[i], p.pid()));
        self.procs.push(p);
        Ok(())
    }

    fn proc(&mut self, name: &str) -> &mut Proc {
        self.procs.iter_mut().find(|p| p.name == name).expect("started")
    }

    /// Waits until member `name` printed a view whose members satisfy `ok`, from
    /// line `from` on; narrates it.
    fn await_view(
        &mut self,
        name: &str,
        from: usize,
        within: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> Option<(u64, String)> {
        let deadline = Instant::now() + within;
        let line = self.proc(name).wait_for(from, deadline, |l| {
            parse_view(l).is_some_and(|(_, members, _)| ok(&members))
        })?;
        let (id, members, reason) = parse_view(&line)?;
        say(format!("  {name} installs view {id}: [{members}] ({reason})"));
        Some((id, members))
    }

    /// Sends `cast n` then `expect total` to each of `who`; waits for them all to
    /// report complete. False if one did not within `within`.
    fn burst(&mut self, who: &[&str], n: u64, expect: &[(&str, u64)], within: Duration) -> bool {
        let t = Instant::now();
        let marks: Vec<usize> = expect.iter().map(|(w, _)| self.proc(w).seen.len()).collect();
        for w in who {
            self.proc(w).send(&format!("cast {n}"));
        }
        for (w, total) in expect {
            self.proc(w).send(&format!("expect {total}"));
        }
        let deadline = Instant::now() + within;
        let mut ok = true;
        for ((w, total), from) in expect.iter().zip(marks) {
            let got = self.proc(w).wait_for(from, deadline, |l| l.starts_with("complete "));
            match got {
                Some(_) => say(format!("  {w} has delivered {total} casts")),
                None => {
                    say(format!("  {w} did not deliver {total} casts in {within:?}"));
                    ok = false;
                }
            }
        }
        say(format!("  ({} ms)", t.elapsed().as_millis()));
        ok
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let reg = layers::registry();
    let desc = proc::load_stack(&args.stack, &reg)?;
    let provides = desc.provides();
    let has_views = provides.contains(&props::VIEWS);
    let (net, why) = Net::plan(&desc, args.group.as_deref(), args.udpu, 4, args.udpu_port)?;
    let tmp;
    let trace_dir = match &args.traces {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = TempDir::new("strata-demo")?;
            tmp.path.clone()
        }
    };
    let props_list: Vec<&str> = provides.iter().map(|p| p.0).collect();
    say(format!(
        "Stack `{}` ({}): {}",
        desc.name,
        desc.file,
        desc.layer_infos().iter().map(|l| l.name).collect::<Vec<_>>().join(" > ")
    ));
    say(format!("  provides: {}", props_list.join(", ")));
    if let Some(why) = &why {
        say(format!("  {why}: running over udpu on loopback instead"));
    }
    say(format!("  network: {}", net.describe()));
    let peers = (!has_views).then(|| NAMES.join(","));
    if !has_views {
        say("  this stack has no membership layer: its one view is the static member list \
             a b c d, given to every process (d starts later and catches up)");
    }
    let n = args.messages;
    let mut demo = Demo {
        args,
        net,
        peers,
        trace_dir: trace_dir.clone(),
        procs: Vec::new(),
        started: Instant::now(),
    };
    let mut ok = true;

    say("\n1. Three members start and join.");
    for i in 0..3 {
        demo.start(i)?;
    }
    let want = |k: usize| move |m: &str| m.split(' ').count() >= k;
    for name in ["a", "b", "c"] {
        if demo.await_view(name, 0, Duration::from_secs(10), want(3)).is_none() {
            say(format!("  {name} installed no view with three members in 10 s"));
            ok = false;
        }
    }

    say(format!("\n2. Each casts {n} messages of {} bytes.", demo.args.size));
    ok &= demo.burst(
        &["a", "b", "c"],
        n,
        &[("a", 3 * n), ("b", 3 * n), ("c", 3 * n)],
        Duration::from_secs(10),
    );

    say("\n3. Member c is killed (SIGKILL).");
    let marks: Vec<usize> = ["a", "b"].iter().map(|w| demo.proc(w).seen.len()).collect();
    demo.proc("c").kill();
    let mut after_crash = None;
    if has_views {
        for (w, from) in ["a", "b"].into_iter().zip(marks) {
            let v = demo.await_view(w, from, Duration::from_secs(8), |m| !m.contains('c'));
            if v.is_none() {
                say(format!("  {w} installed no view without c in 8 s"));
                ok = false;
            }
            after_crash = after_crash.or(v);
        }
    } else {
        std::thread::sleep(Duration::from_millis(500));
        say("  no new view: without a membership layer nobody detects the crash, and c \
             stays in the static member list. a and b go on delivering each other's \
             messages (with no suspicion layer, flow control would stall once a sender \
             had 1 window of credit outstanding at c).");
    }

    say("\n4. A new member, d, starts.");
    demo.start(3)?;
    let with_d = |m: &str| m.split(' ').any(|x| x == "d");
    if demo.await_view("d", 0, Duration::from_secs(10), with_d).is_none() {
        say("  d installed no view with itself in 10 s");
        ok = false;
    }
    if has_views {
        for w in ["a", "b"] {
            let from = 0;
            if demo.await_view(w, from, Duration::from_secs(10), with_d).is_none() {
                say(format!("  {w} installed no view with d in 10 s"));
                ok = false;
            }
        }
    }

    say(format!("\n5. a, b and d each cast {n} more."));
    // a and b deliver the first burst and the second; d, with a static view, also
    // catches up on a's and b's first burst by retransmission (c's first burst it
    // never hears of: c is gone); with a membership layer it starts with its view.
    let d_total = if has_views { 3 * n } else { 5 * n };
    ok &= demo.burst(
        &["a", "b", "d"],
        n,
        &[("a", 6 * n), ("b", 6 * n), ("d", d_total)],
        Duration::from_secs(12),
    );

    say("\n6. The members stop; their traces are checked.");
    let deadline = Instant::now() + Duration::from_secs(5);
    for w in ["a", "b", "d"] {
        let s = demo.proc(w).stop(deadline);
        if let Some(s) = s {
            let lat = &s["latency_us"];
            say(format!(
                "  {w}: sent {}, delivered {}, latency p50 {:.0} us p99 {:.0} us, \
                 retransmissions {}",
                s["sent"],
                s["delivered"],
                lat["p50"].as_f64().unwrap_or(0.0),
                lat["p99"].as_f64().unwrap_or(0.0),
                s["counters"]["nak"]["retransmissions"].as_u64().unwrap_or(0)
            ));
        } else {
            say(format!("  {w} printed no summary"));
            ok = false;
        }
    }
    drop(demo.procs.drain(..));
    let traces = match Traces::from_dir(&trace_dir) {
        Ok(t) => t,
        Err(e) => bail!("reading the traces in {}: {e}", trace_dir.display()),
    };
    let checks = scenario::properties_for(&provides);
    let report = Report::new(&traces, &checks);
    say(format!(
        "  {} traces, {} events ({})",
        report.members,
        report.events,
        if demo.args.traces.is_some() {
            trace_dir.display().to_string()
        } else {
            "temporary".into()
        }
    ));
    for p in &report.properties {
        say(format!(
            "  {:<18} {:>6} checked  {}",
            p.property.name(),
            p.checked,
            if p.failed == 0 { "ok".to_string() } else { format!("{} FAILED", p.failed) }
        ));
    }
    for v in report.violations.iter().take(10) {
        say(format!("  violation: {}: {}", v.property.name(), v.detail));
    }
    let _ = after_crash;
    let pass = ok && report.ok();
    say(format!(
        "\nverdict: {} ({} properties over {} members, {:.1} s)",
        if pass { "PASS" } else { "FAIL" },
        report.properties.len(),
        report.members,
        demo.started.elapsed().as_secs_f64()
    ));
    Ok(if pass { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
