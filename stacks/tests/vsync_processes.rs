//! Virtual synchrony between real `strata member` processes on loopback multicast
//! (`stacks/vsync.ron`): a member killed with SIGKILL is excluded by the survivors
//! within the suspect timeout plus one second; a member stopped (SIGSTOP) for longer
//! than the suspect timeout finds itself excluded when it resumes and rejoins as the
//! next incarnation. Every run's traces are judged by the checkers of the properties
//! vsync provides.

mod common;

use common::*;
use conformance::{Property, Traces};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The suspect timeout of `stacks/vsync.ron`.
const SUSPECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// What vsync promises; liveness is judged over the members that wrote `end`.
const VSYNC_PROPS: [Property; 9] = [
    Property::Integrity,
    Property::ViewAgreement,
    Property::ViewOrder,
    Property::SameView,
    Property::Fifo,
    Property::SelfDelivery,
    Property::VirtualSynchrony,
    Property::PrimaryPartition,
    Property::Liveness,
];

/// The id `strata member --name name` takes (FNV-1a of the name, incarnation 0).
fn node_of(name: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn id(name: &str, incarnation: u32) -> String {
    format!("m{}.{incarnation}", node_of(name))
}

/// A member process whose output lines are timestamped as they are read.
struct Timed {
    name: String,
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    seen: Vec<(Instant, String)>,
}

impl Timed {
    fn spawn(name: &str, group: &str, trace: &Dir) -> Timed {
        let mut c = Command::new(STRATA);
        c.args(["member", "--stack", &stack("vsync.ron"), "--name", name])
            .args(["--group", group, "--rate", "100", "--send-for", "40", "--size", "100"])
            .args(["--duration", "45", "--trace"])
            .arg(&trace.0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut child = c.spawn().expect("strata member starts");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), l)).is_err() {
                    break;
                }
            }
        });
        Timed { name: name.into(), child, lines: rx, seen: Vec::new() }
    }

    /// Waits until `deadline` for a line (from index `from` on) satisfying `pred`;
    /// returns when it was read, and the line.
    fn wait(
        &mut self,
        from: usize,
        deadline: Instant,
        pred: impl Fn(&str) -> bool,
    ) -> Option<(Instant, String)> {
        loop {
            if let Some(x) = self.seen.iter().skip(from).find(|(_, l)| pred(l)) {
                return Some(x.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let x = self.lines.recv_timeout(left).ok()?;
            self.seen.push(x);
        }
    }

    fn signal(&self, sig: libc::c_int) {
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
    }

    /// Waits (bounded) for the exit after SIGTERM; whether it exited with status 0.
    fn finish(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                while let Ok(x) = self.lines.recv_timeout(Duration::from_millis(100)) {
                    self.seen.push(x);
                }
                return s.success();
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn output(&self) -> String {
        let v: Vec<&str> = self.seen.iter().map(|(_, l)| l.as_str()).collect();
        v.join("\n")
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The member ids of a `view <id> <member>... (<names>; <reason>)` line.
fn view_members(line: &str) -> Option<Vec<String>> {
    let rest = line.strip_prefix("view ")?;
    let head = rest.split_once(" (")?.0;
    Some(head.split(' ').skip(1).map(String::from).collect())
}

/// Waits until every member installed a view of exactly the ids `want`.
fn await_view_of(ms: &mut [Timed], want: &[String], limit: Duration) {
    let deadline = Instant::now() + limit;
    for m in ms.iter_mut() {
        let got = m.wait(0, deadline, |l| {
            view_members(l)
                .is_some_and(|v| v.len() == want.len() && want.iter().all(|w| v.contains(w)))
        });
        assert!(got.is_some(), "{} installed no view of {want:?}:\n{}", m.name, m.output());
    }
}

/// Stops the members with SIGTERM (all at once) and judges the traces in `dir`.
fn stop_and_check(ms: &mut [Timed], dir: &Dir, traces: usize) -> conformance::Report {
    for m in ms.iter() {
        m.signal(libc::SIGTERM);
    }
    for m in ms.iter_mut() {
        assert!(
            m.finish(Duration::from_secs(10)),
            "{} exits 0 on SIGTERM:\n{}",
            m.name,
            m.output()
        );
    }
    check_traces(&dir.0, traces, &VSYNC_PROPS)
}

#[test]
fn survivors_of_a_sigkill_install_a_view_without_it_within_the_suspect_timeout_plus_1s() {
    let group = "239.255.42.50:7450";
    if !multicast_works(group) {
        eprintln!("SKIPPED: loopback multicast does not work on this host");
        return;
    }
    let names = ["a", "b", "c", "d", "e"];
    let dir = Dir::new("vsync-kill");
    let mut ms: Vec<Timed> = names.iter().map(|n| Timed::spawn(n, group, &dir)).collect();
    let all: Vec<String> = names.iter().map(|n| id(n, 0)).collect();
    await_view_of(&mut ms, &all, Duration::from_secs(15));
    // Let every member cast for a while in the five-member view.
    std::thread::sleep(Duration::from_millis(500));

    // Kill the coordinator (the oldest member, first in the view): the next oldest
    // must take over the view change.
    let first = ms[0].seen.iter().rev().find_map(|(_, l)| view_members(l)).expect("a view");
    let victim = names.iter().position(|n| id(n, 0) == first[0]).expect("a member of ours");
    let marks: Vec<usize> = ms.iter().map(|m| m.seen.len()).collect();
    let killed_at = Instant::now();
    ms[victim].signal(libc::SIGKILL);
    let mut dead = ms.remove(victim);
    let _ = dead.child.wait();
    let gone = id(names[victim], 0);
    let bound = SUSPECT_TIMEOUT + Duration::from_secs(1);
    let mut marks = marks;
    marks.remove(victim);
    let mut worst = Duration::ZERO;
    for (m, from) in ms.iter_mut().zip(marks) {
        let got = m.wait(from, killed_at + Duration::from_secs(10), |l| {
            view_members(l).is_some_and(|v| v.len() == 4 && !v.contains(&gone))
        });
        let (at, line) = got.unwrap_or_else(|| {
            panic!("{} installed no view without {gone}:\n{}", m.name, m.output())
        });
        let took = at - killed_at;
        println!(
            "{}: `{line}` {} ms after the SIGKILL of {}",
            m.name,
            took.as_millis(),
            names[victim]
        );
        worst = worst.max(took);
    }
    println!("failover: {} ms (bound {} ms)", worst.as_millis(), bound.as_millis());
    assert!(worst <= bound, "failover took {worst:?}, more than {bound:?}");

    // The survivors go on casting in the new view for a while, then stop.
    std::thread::sleep(Duration::from_millis(500));
    let report = stop_and_check(&mut ms, &dir, 5);
    let vs = report.summary(Property::VirtualSynchrony).unwrap();
    assert!(vs.checked >= 4, "the survivors' move to the new view was checked: {vs:?}");
    assert!(report.summary(Property::Liveness).unwrap().checked >= 16, "4 ended members");
}

#[test]
fn a_member_stopped_past_the_suspect_timeout_is_excluded_and_rejoins_as_a_new_incarnation() {
    let group = "239.255.42.51:7451";
    if !multicast_works(group) {
        eprintln!("SKIPPED: loopback multicast does not work on this host");
        return;
    }
    let names = ["a", "b", "c"];
    let dir = Dir::new("vsync-rejoin");
    let mut ms: Vec<Timed> = names.iter().map(|n| Timed::spawn(n, group, &dir)).collect();
    let all: Vec<String> = names.iter().map(|n| id(n, 0)).collect();
    await_view_of(&mut ms, &all, Duration::from_secs(15));

    // c is frozen for three suspect timeouts: a and b (a majority) exclude it.
    ms[2].signal(libc::SIGSTOP);
    let without_c = vec![id("a", 0), id("b", 0)];
    await_view_of(&mut ms[..2], &without_c, Duration::from_secs(3));
    std::thread::sleep(SUSPECT_TIMEOUT * 2);
    let from = ms[2].seen.len();
    ms[2].signal(libc::SIGCONT);

    // Resumed, c learns it was excluded and rejoins as incarnation 1.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ex = ms[2].wait(from, deadline, |l| l == format!("excluded {}", id("c", 0)));
    assert!(ex.is_some(), "c learns it was excluded:\n{}", ms[2].output());
    let re = ms[2].wait(from, deadline, |l| l == format!("rejoin {}", id("c", 1)));
    assert!(re.is_some(), "c rejoins as incarnation 1:\n{}", ms[2].output());
    let with_c1 = vec![id("a", 0), id("b", 0), id("c", 1)];
    await_view_of(&mut ms, &with_c1, Duration::from_secs(10));
    let state = ms[2].wait(from, deadline, |l| l.starts_with("state "));
    assert!(state.is_some(), "the new incarnation receives the group state");

    std::thread::sleep(Duration::from_millis(300));
    // Four traces: a, b, and c's two incarnations, told apart by their member ids.
    stop_and_check(&mut ms, &dir, 4);
    let traces = Traces::from_dir(&dir.0).unwrap();
    let mut ids: Vec<String> = traces.members().map(|t| t.member.clone()).collect();
    ids.sort();
    let mut want = vec![id("a", 0), id("b", 0), id("c", 0), id("c", 1)];
    want.sort();
    assert_eq!(ids, want);
}
