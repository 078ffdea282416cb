//! Helpers of the real-process tests: `strata member` children read line by line,
//! stopped with SIGTERM, killed on drop; traces judged by the conformance checkers.
#![allow(dead_code)]

use conformance::{Property, Report, Traces};
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const STRATA: &str = env!("CARGO_BIN_EXE_strata");

pub fn stack(name: &str) -> String {
    format!("{}/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A fresh temporary directory (removed on drop).
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!(
            "strata-test-{tag}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running child whose stdout lines arrive on a channel.
pub struct Member {
    pub name: String,
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Member {
    pub fn spawn(name: &str, mut cmd: Command) -> Member {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("strata member starts");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Member { name: name.into(), child, lines: rx, seen: Vec::new() }
    }

    /// Waits (bounded) for a line starting with `prefix`.
    pub fn wait_for(&mut self, prefix: &str, limit: Duration) -> Option<String> {
        if let Some(l) = self.seen.iter().find(|l| l.starts_with(prefix)) {
            return Some(l.clone());
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = self.lines.recv_timeout(left).ok()?;
            self.seen.push(l.clone());
            if l.starts_with(prefix) {
                return Some(l);
            }
        }
    }

    pub fn sigterm(&self) {
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
    }

    /// Waits (bounded) for the exit; returns whether it exited with status 0, and
    /// the JSON summary line.
    pub fn finish(&mut self, limit: Duration) -> (bool, Option<serde_json::Value>) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(l);
        }
        let summary = self
            .seen
            .iter()
            .rev()
            .find(|l| l.starts_with('{'))
            .and_then(|l| serde_json::from_str(l).ok());
        (status.is_some_and(|s| s.success()), summary)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether loopback multicast works here (a datagram sent through 127.0.0.1 to
/// `group` comes back to a socket that joined it there).
pub fn multicast_works(group: &str) -> bool {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let group: SocketAddrV4 = group.parse().unwrap();
    let lo = Ipv4Addr::LOCALHOST;
    let r = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    r.set_reuse_address(true).unwrap();
    r.set_reuse_port(true).unwrap();
    if r.bind(&SockAddr::from(group)).is_err() || r.join_multicast_v4(group.ip(), &lo).is_err() {
        return false;
    }
    r.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_multicast_if_v4(&lo).unwrap();
    s.set_multicast_loop_v4(true).unwrap();
    let _ = s.send_to(b"probe", &SockAddr::from(group));
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 16];
    r.recv(&mut buf).is_ok()
}

/// Judges the traces in `dir`; panics with the violations if any.
pub fn check_traces(dir: &Path, members: usize, props: &[Property]) -> Report {
    let traces = Traces::from_dir(dir).expect("traces parse");
    assert_eq!(traces.len(), members, "one trace per member");
    let report = Report::new(&traces, props);
    assert!(report.ok(), "violations: {:#?}", report.violations);
    report
}

/// integrity, fifo, self delivery and liveness: what a reliable FIFO stack promises.
pub const FIFO_PROPS: [Property; 4] =
    [Property::Integrity, Property::Fifo, Property::SelfDelivery, Property::Liveness];
