//! `strata demo`: a group of real member processes on this machine, narrated.
//!
//! Starts three `strata member` processes (this binary) on loopback multicast with
//! the virtually synchronous stack (`stacks/vsync.ron` by default) and narrates each
//! view as the members install it: who is in it, why (founding, join, failure,
//! leave) and who installed it. Each member casts a burst; one is killed with
//! SIGKILL, and the demo times the survivors' suspicion and their view without it,
//! and says what the flush guaranteed; a fourth member joins, and the demo shows its
//! view and the group state it received; a final burst; then the verdict of the
//! conformance checkers of the stack's properties over the members' traces (written
//! to a temporary directory). A stack without a membership layer runs too (one
//! static view; the demo says what that means after the crash). Where loopback
//! multicast does not work it says so and runs over udpu on loopback instead. Every
//! wait is bounded; member processes are killed if the demo ends early.

use crate::proc::{self, Net, Proc, TempDir};
use anyhow::{bail, Result};
use conformance::{scenario, Report, Traces};
use stack_core::props;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// The stack descriptor (shipped descriptors are also built in).
    #[arg(long, value_name = "FILE", default_value = proc::DEMO_STACK)]
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

/// A member id as the demo names it: `a` for incarnation 0 of the member named `a`,
/// `a.1` for the next; ids of no member of the demo stay as they are.
fn name_of(id: &str) -> String {
    for n in NAMES {
        let m = proc::member_id(n);
        if let Some(inc) = id.strip_prefix(&format!("m{}.", m.node())) {
            return if inc == "0" { n.to_string() } else { format!("{n}.{inc}") };
        }
    }
    id.to_string()
}

/// `view 3 m1.0 m2.0 (a m2.0; join)` -> (3, ["a", "b"], "join"), members named.
fn parse_view(line: &str) -> Option<(u64, Vec<String>, String)> {
    let rest = line.strip_prefix("view ")?;
    let (head, tail) = rest.split_once(" (")?;
    let mut w = head.split(' ');
    let id = w.next()?.parse().ok()?;
    let members = w.map(name_of).collect();
    let reason = tail.trim_end_matches(')').rsplit_once("; ")?.1.to_string();
    Some((id, members, reason))
}

fn say(s: impl AsRef<str>) {
    println!("{}", s.as_ref());
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(v: &[String]) -> String {
    match v {
        [] => "nobody".into(),
        [x] => x.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// One view as the members reported it.
struct Seen {
    members: Vec<String>,
    reason: String,
    /// Who installed it, and when its line was read.
    by: Vec<(String, Instant)>,
}

/// What each checked property means, in one line.
fn meaning(p: &str) -> &'static str {
    match p {
        "integrity" => "every delivery is of a message really sent, at most once",
        "fifo" => "each sender's messages are delivered in the order sent",
        "causal" => "a message is delivered after those its sender had delivered",
        "total" => "all members deliver messages in one and the same order",
        "view_agreement" => "members that install a view id agree on its members",
        "view_order" => "members install views in increasing order, none skipped",
        "same_view" => "a message is delivered in the view in which it was sent",
        "virtual_synchrony" => "members moving to the next view delivered the same messages",
        "self_delivery" => "a sender delivers its own messages",
        "primary_partition" => "each view holds a majority of the one before",
        "liveness" => "members that ran to the end delivered everything sent to them",
        _ => "",
    }
}

struct Demo {
    args: Args,
    net: Net,
    peers: Option<String>,
    trace_dir: PathBuf,
    procs: Vec<Proc>,
    started: Instant,
    /// Every view reported so far, by id.
    views: BTreeMap<u64, Seen>,
    /// Per process: how many of its lines were looked at for views.
    scanned: BTreeMap<String, usize>,
    /// Views already narrated.
    narrated: u64,
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

    /// Takes the view lines every member printed since the last call.
    fn collect_views(&mut self) {
        for p in self.procs.iter_mut() {
            p.poll();
            let from = self.scanned.get(&p.name).copied().unwrap_or(0);
            for i in from..p.seen.len() {
                if let Some((id, members, reason)) = parse_view(&p.seen[i]) {
                    let e = self.views.entry(id).or_insert_with(|| Seen {
                        members,
                        reason,
                        by: Vec::new(),
                    });
                    e.by.push((p.name.clone(), p.at[i]));
                }
            }
            self.scanned.insert(p.name.clone(), p.seen.len());
        }
    }

    /// Narrates the views not narrated yet, in order: who is in it, why, who
    /// installed it (and how long after `since`, if given).
    fn narrate_views(&mut self, since: Option<Instant>) {
        self.collect_views();
        let mut prev: Option<Vec<String>> =
            self.views.range(..=self.narrated).next_back().map(|(_, s)| s.members.clone());
        for (&id, v) in self.views.range(self.narrated + 1..) {
            let old = prev.clone().unwrap_or_default();
            let added: Vec<String> =
                v.members.iter().filter(|m| !old.contains(m)).cloned().collect();
            let gone: Vec<String> =
                old.iter().filter(|m| !v.members.contains(m)).cloned().collect();
            let why = match v.reason.as_str() {
                "initial" if v.members.len() == 1 => format!(
                    "{} heard no answer to its discovery, so it founds the group",
                    v.members[0]
                ),
                "initial" => "the static member list".into(),
                "join" => format!("{} joined", and_list(&added)),
                "failure" => format!("{} excluded after being suspected", and_list(&gone)),
                "leave" => format!("{} left", and_list(&gone)),
                r => r.to_string(),
            };
            let by: Vec<String> = v
                .by
                .iter()
                .map(|(w, at)| match since {
                    Some(t) => format!("{w} ({} ms)", at.saturating_duration_since(t).as_millis()),
                    None => w.clone(),
                })
                .collect();
            say(format!(
                "  view {id} [{}] ({}): {why}; installed by {}",
                v.members.join(" "),
                v.reason,
                and_list(&by)
            ));
            prev = Some(v.members.clone());
            self.narrated = id;
        }
    }

    /// Waits until member `name` printed a view whose members satisfy `ok`, from
    /// line `from` on; returns the view.
    fn await_view(
        &mut self,
        name: &str,
        from: usize,
        within: Duration,
        ok: impl Fn(&[String]) -> bool,
    ) -> Option<(u64, Vec<String>)> {
        let deadline = Instant::now() + within;
        let line = self.proc(name).wait_for(from, deadline, |l| {
            parse_view(l).is_some_and(|(_, members, _)| ok(&members))
        })?;
        let (id, members, _) = parse_view(&line)?;
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
        let mut done = Vec::new();
        for ((w, total), from) in expect.iter().zip(marks) {
            let got = self.proc(w).wait_for(from, deadline, |l| l.starts_with("complete "));
            match got {
                Some(_) => done.push(format!("{w} {total}")),
                None => {
                    say(format!("  {w} did not deliver {total} casts in {within:?}"));
                    ok = false;
                }
            }
        }
        if !done.is_empty() {
            say(format!("  delivered: {} ({} ms)", done.join(", "), t.elapsed().as_millis()));
        }
        ok
    }
}

/// The suspect timeout written in the descriptor's `Suspect` layer, if any.
fn suspect_timeout_ms(desc: &stack_core::descriptor::Descriptor) -> Option<u64> {
    let l = desc.layers.iter().find(|l| l.kind == "Suspect")?;
    let rest = l.params.split_once("timeout_ms")?.1;
    let digits: String = rest
        .trim_start_matches([':', ' '])
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '_')
        .filter(|c| *c != '_')
        .collect();
    digits.parse().ok()
}

pub fn run(args: Args) -> Result<ExitCode> {
    let reg = layers::registry();
    let desc = proc::load_stack(&args.stack, &reg)?;
    let provides = desc.provides();
    let has_views = provides.contains(&props::VIEWS);
    let vsync = provides.contains(&props::VIRTUAL_SYNCHRONY);
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
    let timeout = suspect_timeout_ms(&desc);
    let n = args.messages;
    let mut demo = Demo {
        args,
        net,
        peers,
        trace_dir: trace_dir.clone(),
        procs: Vec::new(),
        started: Instant::now(),
        views: BTreeMap::new(),
        scanned: BTreeMap::new(),
        narrated: 0,
    };
    let mut ok = true;

    say("\n1. Three members start and form the group.");
    if has_views {
        say("  Each process looks for the group (it casts `Discover`) and asks to join \
             whoever answers. A view is the list of members everyone agrees on; each \
             change of it is agreed by the members before anyone installs it.");
    }
    for i in 0..3 {
        demo.start(i)?;
    }
    let want = |k: usize| move |m: &[String]| m.len() >= k;
    for name in ["a", "b", "c"] {
        if demo.await_view(name, 0, Duration::from_secs(10), want(3)).is_none() {
            say(format!("  {name} installed no view with three members in 10 s"));
            ok = false;
        }
    }
    demo.narrate_views(None);

    say(format!("\n2. Each casts {n} messages of {} bytes.", demo.args.size));
    ok &= demo.burst(
        &["a", "b", "c"],
        n,
        &[("a", 3 * n), ("b", 3 * n), ("c", 3 * n)],
        Duration::from_secs(10),
    );

    say("\n3. Member c is killed (SIGKILL): no goodbye, it simply stops answering.");
    let marks: Vec<usize> = ["a", "b"].iter().map(|w| demo.proc(w).seen.len()).collect();
    demo.collect_views();
    let before = demo.views.keys().next_back().copied().unwrap_or(0);
    let killed_at = Instant::now();
    demo.proc("c").kill();
    demo.procs.retain(|p| p.name != "c");
    if has_views {
        if let Some(t) = timeout {
            say(format!(
                "  a and b stop hearing from c; after the suspect timeout ({t} ms) they \
                 suspect it, and the oldest member runs a view change without it."
            ));
        }
        let mut failover = Vec::new();
        for (w, from) in ["a", "b"].into_iter().zip(marks) {
            let deadline = killed_at + Duration::from_secs(8);
            let c_id = proc::member_id("c").to_string();
            if let Some(i) = demo.proc(w).wait_for_index(from, deadline, |l| {
                l.starts_with("suspect ") && l.split(' ').any(|x| x == c_id)
            }) {
                let at = demo.proc(w).at[i];
                say(format!(
                    "  {w} suspects c {} ms after the kill",
                    at.saturating_duration_since(killed_at).as_millis()
                ));
            }
            let v =
                demo.await_view(w, from, Duration::from_secs(8), |m| !m.iter().any(|x| x == "c"));
            match v {
                Some(_) => {
                    let p = demo.proc(w);
                    let i = (from..p.seen.len())
                        .find(|&i| {
                            parse_view(&p.seen[i])
                                .is_some_and(|(_, m, _)| !m.contains(&"c".to_string()))
                        })
                        .expect("just seen");
                    failover.push(p.at[i].saturating_duration_since(killed_at));
                }
                None => {
                    say(format!("  {w} installed no view without c in 8 s"));
                    ok = false;
                }
            }
        }
        demo.narrate_views(Some(killed_at));
        if let Some(worst) = failover.iter().max() {
            say(format!(
                "  failover: {} ms from the kill to the last survivor's new view",
                worst.as_millis()
            ));
        }
        if vsync && failover.len() == 2 {
            say(format!(
                "  a and b agree on view {} without c: before installing it, the flush made \
                 sure they delivered the same messages in view {before} (what c got out \
                 before dying is delivered by both or by neither).",
                demo.narrated
            ));
        }
    } else {
        std::thread::sleep(Duration::from_millis(500));
        say("  no new view: without a membership layer nobody detects the crash, and c \
             stays in the static member list. a and b go on delivering each other's \
             messages (with no suspicion layer, flow control would stall once a sender \
             had 1 window of credit outstanding at c).");
    }

    say("\n4. A new member, d, starts.");
    let joined_at = Instant::now();
    demo.start(3)?;
    let with_d = |m: &[String]| m.iter().any(|x| x == "d");
    if demo.await_view("d", 0, Duration::from_secs(10), with_d).is_none() {
        say("  d installed no view with itself in 10 s");
        ok = false;
    }
    if has_views {
        for w in ["a", "b"] {
            if demo.await_view(w, 0, Duration::from_secs(10), with_d).is_none() {
                say(format!("  {w} installed no view with d in 10 s"));
                ok = false;
            }
        }
        demo.narrate_views(Some(joined_at));
        let deadline = Instant::now() + Duration::from_secs(2);
        match demo.proc("d").wait_for(0, deadline, |l| l.starts_with("state ")) {
            Some(l) => say(format!(
                "  d received the group state with its view (state transfer): \"{}\". \
                 Here the state is a counter of delivered messages; in an application \
                 it would be its replicated data.",
                l.trim_start_matches("state ")
            )),
            None if provides.contains(&props::STATE_TRANSFER) => {
                say("  d received no group state");
                ok = false;
            }
            None => {}
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
        demo.proc(w).ask_stop();
    }
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
        "  {} traces (c's ends where it was killed), {} events ({})",
        report.members,
        report.events,
        if demo.args.traces.is_some() {
            trace_dir.display().to_string()
        } else {
            "temporary".into()
        }
    ));
    for p in &report.properties {
        let name = p.property.name();
        say(format!(
            "  {:<18} {:>6} checked  {:<9} {}",
            name,
            p.checked,
            if p.failed == 0 { "ok".to_string() } else { format!("{} FAILED", p.failed) },
            meaning(name)
        ));
    }
    for v in report.violations.iter().take(10) {
        say(format!("  violation: {}: {}", v.property.name(), v.detail));
    }
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
