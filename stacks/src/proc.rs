//! What the real-process commands share: member identities from names, the
//! shipped descriptors, the clock payloads carry, the multicast probe, and child
//! member processes driven over their standard input and output.
//!
//! # Member identity
//!
//! A member named `NAME` is `MemberId::new(fnv1a32(NAME), 0)`: the node number is
//! the 32-bit FNV-1a hash of the name and the incarnation is 0. Every process that
//! knows a member's name therefore knows its id, which is what lets a stack without
//! a membership layer share one static member list (`--peers a,b,c`) across
//! processes. A member started without a name gets a random node number.
//!
//! # Clock
//!
//! Payloads written by `strata member` start with the sender's `CLOCK_MONOTONIC` in
//! nanoseconds (little-endian `u64`). Processes on one host (network namespaces
//! included) read the same monotonic clock, so a receiver subtracts it from its own
//! reading to get the one-way latency. Across hosts the figure would mean nothing;
//! every command here runs on one host.
//!
//! # Control protocol
//!
//! With `--control`, `strata member` reads commands from standard input, one a line:
//! `cast N` (cast N more messages), `cast-for SECONDS` (cast as fast as flow control
//! allows for that long), `expect N` (report `complete N` once N casts were
//! delivered), `stop` (end the trace, print the summary, leave). End of input is
//! `stop`, so a member never outlives the process driving it. It reports on standard
//! output, one line each: `view <id> <member>...`, `sent <total>`, `complete <n>`,
//! and last a JSON summary (the only line starting with `{`).

use anyhow::{anyhow, Context, Result};
use stack_core::descriptor::Descriptor;
use stack_core::registry::Registry;
use stack_core::MemberId;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The descriptors shipped in `stacks/`, by file name, for runs outside the repository.
pub const SHIPPED: &[(&str, &str)] = &[
    ("fifo.ron", include_str!("../fifo.ron")),
    ("fifo-udpu.ron", include_str!("../fifo-udpu.ron")),
    ("pass.ron", include_str!("../pass.ron")),
    ("vsync.ron", include_str!("../vsync.ron")),
    ("causal.ron", include_str!("../causal.ron")),
    ("total.ron", include_str!("../total.ron")),
    ("total-lamport.ron", include_str!("../total-lamport.ron")),
    ("safe.ron", include_str!("../safe.ron")),
];

/// The stack `member` and `bench` run by default: reliable FIFO, the fastest.
pub const DEFAULT_STACK: &str = "stacks/fifo.ron";

/// The stack `demo` runs by default: virtual synchrony (views agreed after a
/// failure or a join, flush, state transfer), which is what the demo narrates.
pub const DEMO_STACK: &str = "stacks/vsync.ron";

/// The member id of the member named `name` (see the module documentation).
pub fn member_id(name: &str) -> MemberId {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    MemberId::new(h, 0)
}

/// A member id with a random node number (time and process id mixed).
pub fn random_member_id() -> MemberId {
    let mut x = mono_ns() ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    MemberId::new(x as u32, 0)
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock payload timestamps use.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU seconds (user + system) this process has used so far.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills one rusage struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Loads the descriptor at `path`. When no such file exists and its file name is one
/// of the shipped descriptors, the copy built into the binary is used instead, so the
/// default paths work from any directory.
pub fn load_stack(path: &Path, reg: &Registry) -> Result<Descriptor> {
    if !path.exists() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if let Some((_, text)) = SHIPPED.iter().find(|(n, _)| *n == name) {
            let label = format!("{} (built in)", path.display());
            return Descriptor::parse(text, &label, reg).map_err(|e| anyhow!("{e}"));
        }
    }
    Descriptor::load(path, reg).map_err(|e| anyhow!("{e}"))
}

/// Whether a multicast sent through 127.0.0.1 comes back to a socket that joined
/// `group` on 127.0.0.1; `Err` says why not.
pub fn probe_loopback_multicast(group: SocketAddrV4) -> Result<(), String> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let lo = Ipv4Addr::LOCALHOST;
    let err = |what: &str, e: std::io::Error| format!("{what}: {e}");
    let r = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| err("socket", e))?;
    r.set_reuse_address(true).map_err(|e| err("SO_REUSEADDR", e))?;
    r.set_reuse_port(true).map_err(|e| err("SO_REUSEPORT", e))?;
    r.bind(&SockAddr::from(group)).map_err(|e| err("bind to the group", e))?;
    r.join_multicast_v4(group.ip(), &lo).map_err(|e| err("join the group on 127.0.0.1", e))?;
    r.set_read_timeout(Some(Duration::from_millis(300))).map_err(|e| err("timeout", e))?;
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| err("socket", e))?;
    s.set_multicast_if_v4(&lo).map_err(|e| err("IP_MULTICAST_IF 127.0.0.1", e))?;
    s.set_multicast_loop_v4(true).map_err(|e| err("IP_MULTICAST_LOOP", e))?;
    s.bind(&SockAddr::from(SocketAddrV4::new(lo, 0))).map_err(|e| err("bind", e))?;
    let token = mono_ns().to_le_bytes();
    for _ in 0..3 {
        s.send_to(&token, &SockAddr::from(group)).map_err(|e| err("send to the group", e))?;
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 16];
        while let Ok(n) = r.recv(&mut buf) {
            // SAFETY: recv initialized the first n bytes.
            let got: Vec<u8> = buf[..n].iter().map(|b| unsafe { b.assume_init() }).collect();
            if got == token {
                return Ok(());
            }
        }
    }
    Err("a datagram sent to the group through 127.0.0.1 did not come back".into())
}

/// A child `strata member` (or any line-oriented program): its output lines arrive
/// on a channel, its input takes control lines. Killed (SIGKILL) when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<(Instant, String)>,
    /// Every line read so far.
    pub seen: Vec<String>,
    /// When each line of `seen` was read from the process's output.
    pub at: Vec<Instant>,
    /// The JSON summary, once printed.
    pub summary: Option<serde_json::Value>,
}

impl Proc {
    /// Starts `cmd` with piped stdin and stdout (stderr inherited, or discarded when
    /// `quiet`).
    pub fn spawn(name: &str, mut cmd: Command, quiet: bool) -> Result<Proc> {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        if quiet {
            cmd.stderr(Stdio::null());
        }
        let mut child = cmd.spawn().with_context(|| format!("starting member {name}"))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(Proc {
            name: name.into(),
            child,
            stdin,
            lines: rx,
            seen: Vec::new(),
            at: Vec::new(),
            summary: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one control line; false if the process no longer reads.
    pub fn send(&mut self, line: &str) -> bool {
        match self.stdin.as_mut() {
            Some(s) => writeln!(s, "{line}").and_then(|_| s.flush()).is_ok(),
            None => false,
        }
    }

    fn take(&mut self, at: Instant, l: &str) {
        if l.starts_with('{') {
            self.summary = serde_json::from_str(l).ok();
        }
        self.seen.push(l.to_string());
        self.at.push(at);
    }

    /// Takes the lines already written, without waiting.
    pub fn poll(&mut self) {
        while let Ok((at, l)) = self.lines.try_recv() {
            self.take(at, &l);
        }
    }

    /// Like [`Proc::wait_for`], returning the index of the line in `seen`.
    pub fn wait_for_index(
        &mut self,
        from: usize,
        deadline: Instant,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Option<usize> {
        let from = from.min(self.seen.len());
        if let Some(i) = self.seen[from..].iter().position(|l| pred(l)) {
            return Some(from + i);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, l)) => {
                    self.take(at, &l);
                    if pred(&l) {
                        return Some(self.seen.len() - 1);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Waits until a line satisfying `pred` arrives (or was seen since `from`).
    pub fn wait_for(
        &mut self,
        from: usize,
        deadline: Instant,
        pred: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        self.wait_for_index(from, deadline, pred).map(|i| self.seen[i].clone())
    }

    /// Asks the member to stop (`stop` on its input, then SIGTERM) and waits for
    /// its summary and exit until `deadline`; kills it past that. Returns the summary.
    pub fn stop(&mut self, deadline: Instant) -> Option<serde_json::Value> {
        self.ask_stop();
        if self.summary.is_none() {
            let from = self.seen.len();
            self.wait_for(from, deadline, |l| l.starts_with('{'));
        }
        self.reap(deadline);
        self.summary.clone()
    }

    /// Asks the member to stop (`stop` on its input, or SIGTERM if it no longer
    /// reads it) without waiting; a later [`Proc::stop`] collects the summary.
    pub fn ask_stop(&mut self) {
        if self.stdin.is_some() && !self.send("stop") {
            self.signal(libc::SIGTERM);
        }
        self.stdin = None;
    }

    /// Waits for the process to exit until `deadline`; kills it past that.
    pub fn reap(&mut self, deadline: Instant) -> Option<std::process::ExitStatus> {
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                self.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on the pid of a child we have not reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// The command that runs this very binary's `member` command.
pub fn member_command() -> Result<Command> {
    let exe = std::env::current_exe().context("locating the strata binary")?;
    let mut c = Command::new(exe);
    c.arg("member");
    Ok(c)
}

/// A fresh directory under the system's temporary directory, removed on drop
/// unless kept.
pub struct TempDir {
    pub path: PathBuf,
    pub keep: bool,
}

impl TempDir {
    pub fn new(prefix: &str) -> Result<TempDir> {
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{:x}",
            std::process::id(),
            mono_ns() & 0xffff_ffff
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir { path, keep: false })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_are_fixed_by_the_name() {
        assert_eq!(member_id("a"), member_id("a"));
        assert_ne!(member_id("a"), member_id("b"));
        // FNV-1a of "a" is 0xe40c292c.
        assert_eq!(member_id("a"), MemberId::new(0xe40c_292c, 0));
        assert_eq!(member_id("a").incarnation(), 0);
    }

    #[test]
    fn shipped_descriptors_load_from_anywhere() {
        let reg = layers::registry();
        let d = load_stack(Path::new("/nonexistent/dir/fifo.ron"), &reg).unwrap();
        assert_eq!(d.name, "fifo");
        assert!(load_stack(Path::new("/nonexistent/other.ron"), &reg).is_err());
    }
}

/// How the members of one `demo` or `bench` run reach each other on loopback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Net {
    /// Multicast on 127.0.0.1 to this group.
    Multicast(String),
    /// Unicast fan-out: member `i` binds `127.0.0.1:<ports[i]>`; every port is a seed.
    Udpu(Vec<u16>),
}

impl Net {
    /// Picks the network for `n` members of `desc`: the descriptor's multicast group
    /// (or `group`) when loopback multicast works, else udpu on ports from
    /// `base_port`. The second value says why udpu was chosen, if it was.
    pub fn plan(
        desc: &Descriptor,
        group: Option<&str>,
        force_udpu: bool,
        n: usize,
        base_port: u16,
    ) -> Result<(Net, Option<String>)> {
        use stack_core::TransportSpec;
        let udpu = || Net::Udpu((0..n as u16).map(|i| base_port + i).collect());
        match &desc.transport {
            TransportSpec::Sim(_) => anyhow::bail!(
                "{}: the Sim transport does not run on the real network (use `strata sim`)",
                desc.file
            ),
            TransportSpec::Udpu(_) => Ok((udpu(), None)),
            TransportSpec::Udp(u) => {
                if force_udpu {
                    return Ok((udpu(), Some("--udpu was given".into())));
                }
                let g = group.unwrap_or(&u.group).to_string();
                let addr = transports::udp::parse_group(&g)?;
                match probe_loopback_multicast(addr) {
                    Ok(()) => Ok((Net::Multicast(g), None)),
                    Err(why) => Ok((
                        udpu(),
                        Some(format!("no multicast route on loopback for {g} ({why})")),
                    )),
                }
            }
        }
    }

    /// The `strata member` flags that put member `i` on this network.
    pub fn member_args(&self, i: usize) -> Vec<String> {
        match self {
            Net::Multicast(g) => vec!["--group".into(), g.clone()],
            Net::Udpu(ports) => {
                let seeds: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
                vec![
                    "--udpu".into(),
                    "--bind".into(),
                    seeds[i].clone(),
                    "--seeds".into(),
                    seeds.join(","),
                ]
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Net::Multicast(g) => format!("UDP multicast {g} on 127.0.0.1"),
            Net::Udpu(p) => format!(
                "UDP unicast fan-out (udpu) on 127.0.0.1 ports {}-{}",
                p.first().copied().unwrap_or(0),
                p.last().copied().unwrap_or(0)
            ),
        }
    }
}
