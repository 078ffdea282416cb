//! Multi-host test beds made of Linux network namespaces.
//!
//! A thin wrapper over `conformance/netns/netns.sh` (its README describes
//! the topology): [`Hosts::up`] creates `n` hosts, each a network namespace
//! with address `10.213.0.<i>/24` on a bridge living in its own switch
//! namespace, and a route for multicast (`224.0.0.0/4`) through that bridge.
//! Processes started with [`Hosts::command`] or [`Hosts::spawn`] run inside
//! one host; [`Hosts::loss`], [`Hosts::cut`] and [`Hosts::heal`] inject
//! faults with nftables inside that host. Dropping a [`Hosts`] kills every
//! process in its namespaces and deletes them.
//!
//! Hosts are numbered from 1. Creating a test bed needs root, `ip` and
//! `nft`; without them [`Hosts::up`] returns [`NetnsError::Skip`] and the
//! caller should print the reason and skip.
//!
//! ```no_run
//! use conformance::netns::{Hosts, NetnsError};
//!
//! let hosts = match Hosts::up(3) {
//!     Ok(hosts) => hosts,
//!     Err(NetnsError::Skip(reason)) => {
//!         eprintln!("skip: {reason}");
//!         return Ok(());
//!     }
//!     Err(e) => panic!("{e}"),
//! };
//! let mut child = hosts.command(2, "sleep").arg("1").spawn()?;
//! hosts.cut(3)?;
//! child.wait()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::OsStr;
use std::io::{self, Read};
use std::net::Ipv4Addr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The script every operation goes through.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/netns/netns.sh");

/// Exit code of the script when the test bed cannot run here.
pub const SKIP_EXIT_CODE: i32 = 77;

/// A multicast group for tests inside a test bed (routed through the bridge).
pub const TEST_GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 77, 1);

/// Longest time one script invocation may take before it is killed.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The address of host `i` (`10.213.0.<i>`).
///
/// # Panics
/// If `i` is not in `1..=250`.
pub fn host_addr(i: usize) -> Ipv4Addr {
    assert!((1..=250).contains(&i), "host index {i} out of 1..=250");
    Ipv4Addr::new(10, 213, 0, i as u8)
}

/// Why a test-bed operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The test bed cannot run here (not root, `ip` or `nft` missing, or
    /// namespaces not permitted); the reason is printed by the script.
    #[error("skip: {0}")]
    Skip(String),
    /// The script failed.
    #[error("`netns.sh {args}` failed ({status}): {stderr}")]
    Failed {
        /// The script's arguments.
        args: String,
        /// Its exit status (or "timed out").
        status: String,
        /// What it printed on standard error.
        stderr: String,
    },
    /// The script could not be started or waited for.
    #[error("cannot run netns.sh: {0}")]
    Io(#[from] io::Error),
}

/// Which packets [`Hosts::loss_dir`] drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// UDP packets arriving at the host.
    In,
    /// UDP packets leaving the host.
    Out,
    /// Both.
    Both,
}

impl Direction {
    fn as_arg(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Both => "both",
        }
    }
}

/// A running test bed; dropping it removes it (see [`Hosts::down`]).
#[derive(Debug)]
pub struct Hosts {
    prefix: String,
    n: usize,
    down: bool,
}

impl Hosts {
    /// Creates `n` hosts (1 to 250) under a prefix unique to this process
    /// and call (`snt<pid>x<k>`), so parallel tests do not collide.
    pub fn up(n: usize) -> Result<Hosts, NetnsError> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        Hosts::up_with_prefix(n, &format!("snt{}x{k}", std::process::id()))
    }

    /// Creates `n` hosts named `<prefix>-h1..` (prefix: 1-24 of
    /// `[A-Za-z0-9_]`). Fails if a test bed with that prefix exists.
    pub fn up_with_prefix(n: usize, prefix: &str) -> Result<Hosts, NetnsError> {
        run_script(&["up", &n.to_string(), "--prefix", prefix])?;
        Ok(Hosts { prefix: prefix.to_owned(), n, down: false })
    }

    /// The prefix of every namespace of this test bed.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The number of hosts.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no hosts (never true: `up` needs at least one).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The address of host `i` (`10.213.0.<i>`).
    ///
    /// # Panics
    /// If `i` is not in `1..=len()`.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        self.check_index(i);
        host_addr(i)
    }

    /// The name of host `i`'s network namespace.
    pub fn namespace(&self, i: usize) -> String {
        self.check_index(i);
        format!("{}-h{i}", self.prefix)
    }

    /// A command running `program` inside host `i`; add arguments, the
    /// environment (inherited as usual) and stdio, then spawn it. The
    /// spawned process has the PID of the [`Child`], so killing the child
    /// kills `program`.
    pub fn command(&self, i: usize, program: impl AsRef<OsStr>) -> Command {
        self.check_index(i);
        let mut cmd = Command::new("bash");
        cmd.arg(SCRIPT).arg("exec").arg(&self.prefix).arg(i.to_string()).arg(program);
        cmd
    }

    /// Spawns `program args...` inside host `i` with inherited stdio.
    pub fn spawn<I, S>(&self, i: usize, program: impl AsRef<OsStr>, args: I) -> io::Result<Child>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(i, program).args(args).spawn()
    }

    /// Drops `pct` percent (0-100) of the UDP packets arriving at host `i`;
    /// 0 removes the loss. Same as `loss_dir(i, pct, Direction::In)`.
    pub fn loss(&self, i: usize, pct: u8) -> Result<(), NetnsError> {
        self.loss_dir(i, pct, Direction::In)
    }

    /// Drops `pct` percent (0-100) of host `i`'s UDP packets in `dir`,
    /// replacing any loss set before; 0 removes it.
    pub fn loss_dir(&self, i: usize, pct: u8, dir: Direction) -> Result<(), NetnsError> {
        self.check_index(i);
        run_script(&["loss", &self.prefix, &i.to_string(), &pct.to_string(), dir.as_arg()])
            .map(drop)
    }

    /// Cuts host `i` off: all IP traffic in and out of its interface is
    /// dropped (its loopback still works).
    pub fn cut(&self, i: usize) -> Result<(), NetnsError> {
        self.host_op("cut", i)
    }

    /// Undoes [`Hosts::cut`].
    pub fn heal(&self, i: usize) -> Result<(), NetnsError> {
        self.host_op("heal", i)
    }

    /// Sends SIGKILL to every process in host `i`.
    pub fn kill(&self, i: usize) -> Result<(), NetnsError> {
        self.host_op("kill", i)
    }

    /// Kills every process in the test bed and deletes its namespaces,
    /// reporting failure (dropping does the same, ignoring failure).
    pub fn down(mut self) -> Result<(), NetnsError> {
        self.down = true;
        run_script(&["down", &self.prefix]).map(drop)
    }

    fn host_op(&self, op: &str, i: usize) -> Result<(), NetnsError> {
        self.check_index(i);
        run_script(&[op, &self.prefix, &i.to_string()]).map(drop)
    }

    fn check_index(&self, i: usize) {
        assert!((1..=self.n).contains(&i), "host index {i} out of 1..={}", self.n);
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        if !self.down {
            if let Err(e) = run_script(&["down", &self.prefix]) {
                eprintln!("netns: cleaning up {}: {e}", self.prefix);
            }
        }
    }
}

/// Runs the script with `args`, bounded by [`SCRIPT_TIMEOUT`]; returns its
/// standard output.
fn run_script(args: &[&str]) -> Result<String, NetnsError> {
    let mut child = Command::new("bash")
        .arg(SCRIPT)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let status = wait_bounded(&mut child, SCRIPT_TIMEOUT)?;
    // The script prints a few lines at most: they fit in the pipes.
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout)?;
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut stderr)?;
    }
    match status {
        Some(s) if s.success() => Ok(stdout),
        Some(s) if s.code() == Some(SKIP_EXIT_CODE) => {
            let reason = stdout
                .lines()
                .find_map(|l| l.strip_prefix("skip: "))
                .unwrap_or("netns.sh could not run")
                .to_owned();
            Err(NetnsError::Skip(reason))
        }
        other => Err(NetnsError::Failed {
            args: args.join(" "),
            status: other.map_or("timed out".to_owned(), |s| s.to_string()),
            stderr: stderr.trim().to_owned(),
        }),
    }
}

/// Waits for `child` at most `timeout`; kills it and returns `None` when
/// it did not exit in time.
pub fn wait_bounded(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(5));
    }
}
