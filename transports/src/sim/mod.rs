//! `sim`: the deterministic in-memory network with virtual time.
//!
//! Many members run in one process, each a [`Stack`] built by a user-supplied factory
//! (so any layers can be simulated), exchanging real datagrams (a [`PacketHeader`]
//! then the stack's bytes) through a simulated network. One `u64` seed fixes every
//! decision: loss, duplication, reordering, delay, partitions, crashes and restarts,
//! joins and leaves, workload timing. The same seed and the same stack give the same
//! traces byte for byte ([`Sim::trace_hash`]); a failing run prints its seed
//! ([`Sim::report`], [`sim_assert!`](crate::sim_assert)).
//!
//! ```
//! use transports::sim::{Sim, SimConfig, Workload};
//! use stack_core::Stack;
//! let cfg = SimConfig { seed: 7, nodes: 3, workload: Workload::every(5, 32, 1000), ..SimConfig::default() };
//! let mut sim = Sim::new(cfg, Box::new(|c| Stack::new(Vec::new(), c)));
//! sim.run_until_quiet();
//! let r = sim.report();
//! assert_eq!(r.delivered, 3 * 3 * 5, "{r}");
//! ```
//!
//! # Event loop
//! A priority queue keyed by `(virtual time, insertion sequence)`: ties break in
//! insertion order, so nothing depends on hashing or the host. Events are packet
//! arrivals, a slow receiver's service, a stack's timer (from
//! [`Stack::next_timeout`]), a workload tick, and scheduled [`Action`]s. Virtual time
//! moves only from event to event; a run ends by itself at a virtual deadline or an
//! event-count cap.
//!
//! # Members
//! Nodes are numbered from 0; the incarnation of a node's first stack is 0 and a
//! restart runs `inc + 1` (`m<node>.<inc>` in traces). Each member's application is an
//! [`App`] (default [`DigestApp`]); the simulator answers `Block` with `block_ok`,
//! `StateRequest` with [`App::state`], hands `State` to [`App::set_state`], checks
//! every delivered payload against what its sender cast, and rejoins a member that
//! was excluded (an `Exit` it did not ask for) as a new incarnation.
//!
//! # Network
//! See [`net`] for the fault model. A cast goes to every node with a running stack at
//! the moment it is sent, the sender included (loopback on; loopback copies are
//! exempt from loss, duplication, reordering and corruption unless
//! [`SimConfig::faults_on_loopback`]); a send goes to the node of its destination and
//! is dropped on arrival if that node runs another incarnation by then.
//! `NetOut::View` is ignored.

pub mod app;
pub mod net;
pub mod report;
pub mod scenario;

pub use app::{fnv1a, fnv1a_start, payload, payload_ok, App, DigestApp};
pub use net::{NetConfig, NetStats, Partitions, SlowReceiver};
pub use report::{Report, StopReason};
pub use scenario::{Action, Faults, Workload};

use bytes::Bytes;
use stack_core::packet::PacketHeader;
use stack_core::{AppEvent, Header, MemberId, NetOut, Rng, Stack, StackConfig, Time, TraceWriter};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Builds a member's stack from its configuration (`me`, seed, static members).
pub type StackFactory = Box<dyn FnMut(StackConfig) -> Stack + Send>;
/// Builds a member's application.
pub type AppFactory = Box<dyn FnMut(MemberId) -> Box<dyn App> + Send>;

/// The datagram size the simulated network tells its stacks (unless their factory set
/// one): what a 1500-byte Ethernet path carries after the IPv4, UDP and packet
/// headers, so bundling and fragmentation work as between hosts.
pub const SIM_MAX_DATAGRAM: usize = 1500 - 20 - 8 - 24;

/// Everything a run depends on besides the stack factory.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The one seed every decision derives from.
    pub seed: u64,
    /// Members at the start (nodes `0..nodes`, incarnation 0).
    pub nodes: u32,
    pub net: NetConfig,
    pub workload: Workload,
    /// A random fault schedule drawn from the seed when the run starts.
    pub faults: Faults,
    /// Loss, duplication, reordering and corruption also hit a node's own casts.
    pub faults_on_loopback: bool,
    /// Virtual deadline, milliseconds.
    pub deadline_ms: u64,
    /// At most this many events.
    pub max_events: u64,
    /// [`Sim::run_until_quiet`] stops after this many virtual milliseconds without a
    /// delivery, view, cast or fault once every workload is done.
    pub settle_ms: u64,
    /// Delay before an excluded member rejoins as a new incarnation, milliseconds.
    pub rejoin_ms: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            nodes: 3,
            net: NetConfig::default(),
            workload: Workload::default(),
            faults: Faults::default(),
            faults_on_loopback: false,
            deadline_ms: 60_000,
            max_events: 5_000_000,
            settle_ms: 1000,
            rejoin_ms: 100,
        }
    }
}

/// The environment variable [`seed_from_env`] reads to replay a run.
pub const SEED_VAR: &str = "STRATA_SIM_SEED";

/// The seed in `STRATA_SIM_SEED` (decimal or `0x` hex) if set, else `default`.
pub fn seed_from_env(default: u64) -> u64 {
    let Ok(s) = std::env::var(SEED_VAR) else { return default };
    let s = s.trim();
    let v = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    v.unwrap_or(default)
}

/// Panics with the run's report (seed and replay line included) if `cond` is false.
#[macro_export]
macro_rules! sim_assert {
    ($sim:expr, $cond:expr) => {
        $crate::sim_assert!($sim, $cond, "{}", stringify!($cond))
    };
    ($sim:expr, $cond:expr, $($arg:tt)+) => {
        if !$cond {
            panic!("{}\n{}", format_args!($($arg)+), $sim.report());
        }
    };
}

#[derive(Debug)]
enum Ev {
    Arrive { node: u32, data: Bytes },
    Drain { node: u32, inc: u32 },
    Timer { node: u32, inc: u32, due: Time },
    Tick { node: u32, inc: u32 },
    Act(Action),
}

struct Entry {
    at: Time,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    /// Reversed: the heap pops the earliest `(at, seq)` first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// An in-memory trace sink that can be read while the writer still holds it.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

struct Node {
    id: MemberId,
    stack: Option<Stack>,
    app: Option<Box<dyn App>>,
    /// The stack's timer the queue holds an event for.
    timer_at: Option<Time>,
    /// The workload tick the queue holds an event for.
    tick_at: Option<Time>,
    slow: Option<SlowReceiver>,
    inbox: VecDeque<Bytes>,
    draining: bool,
    next_free: Time,
    to_send: u64,
    sent: u64,
    leaving: bool,
    left: bool,
}

impl Node {
    fn live(&self) -> bool {
        self.stack.is_some()
    }
}

/// Casts by `(sender, seq)`.
type CastSet = BTreeSet<(MemberId, u64)>;

/// The simulator. See the module documentation.
pub struct Sim {
    cfg: SimConfig,
    factory: StackFactory,
    app_factory: AppFactory,
    now: Time,
    queue: BinaryHeap<Entry>,
    seq: u64,
    nodes: Vec<Node>,
    partitions: Partitions,
    net_rng: Rng,
    fault_rng: Rng,
    wl_rng: Rng,
    stats: NetStats,
    traces: BTreeMap<MemberId, SharedBuf>,
    delivered: BTreeMap<MemberId, u64>,
    /// Every workload cast, `(sender, seq)`, with the view its sender cast it in.
    cast_view: BTreeMap<(MemberId, u64), u64>,
    /// Per member: the casts it delivered and the views it installed.
    got: BTreeMap<MemberId, CastSet>,
    installed: BTreeMap<MemberId, BTreeSet<u64>>,
    /// Bumped whenever what [`Sim::all_delivered`] judges changes; with its last answer.
    judged: u64,
    last_judgement: Option<(u64, bool)>,
    dead_counters: BTreeMap<String, u64>,
    dead_peaks: BTreeMap<String, u64>,
    integrity_errors: u64,
    sent: u64,
    events: u64,
    pending_acts: u64,
    in_flight: u64,
    last_activity: Time,
    started: bool,
    finished: bool,
    stop: Option<StopReason>,
}

impl Sim {
    /// A simulator whose members run `factory`'s stacks and the default [`DigestApp`].
    pub fn new(cfg: SimConfig, factory: StackFactory) -> Sim {
        Self::with_app(cfg, factory, Box::new(|_| Box::new(DigestApp::default())))
    }

    /// A simulator with a custom application per member.
    pub fn with_app(cfg: SimConfig, factory: StackFactory, app_factory: AppFactory) -> Sim {
        let mut master = Rng::new(cfg.seed);
        let net_rng = master.fork();
        let fault_rng = master.fork();
        let wl_rng = master.fork();
        Sim {
            cfg,
            factory,
            app_factory,
            now: Time::ZERO,
            queue: BinaryHeap::new(),
            seq: 0,
            nodes: Vec::new(),
            partitions: Partitions::default(),
            net_rng,
            fault_rng,
            wl_rng,
            stats: NetStats::default(),
            traces: BTreeMap::new(),
            delivered: BTreeMap::new(),
            cast_view: BTreeMap::new(),
            got: BTreeMap::new(),
            installed: BTreeMap::new(),
            judged: 0,
            last_judgement: None,
            dead_counters: BTreeMap::new(),
            dead_peaks: BTreeMap::new(),
            integrity_errors: 0,
            sent: 0,
            events: 0,
            pending_acts: 0,
            in_flight: 0,
            last_activity: Time::ZERO,
            started: false,
            finished: false,
            stop: None,
        }
    }

    /// Starts the initial members and draws the fault schedule (done by the first
    /// `run*`/`step` call if not called before).
    pub fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        let ids: Vec<MemberId> = (0..self.cfg.nodes).map(|n| MemberId::new(n, 0)).collect();
        for &id in &ids {
            self.nodes.push(Node {
                id,
                stack: None,
                app: None,
                timer_at: None,
                tick_at: None,
                slow: None,
                inbox: VecDeque::new(),
                draining: false,
                next_free: Time::ZERO,
                to_send: 0,
                sent: 0,
                leaving: false,
                left: false,
            });
        }
        for n in 0..self.cfg.nodes {
            self.start_member(n, ids.clone(), true);
        }
        let nodes: Vec<u32> = (0..self.cfg.nodes).collect();
        for (at, a) in self.cfg.faults.plan(&mut self.fault_rng, &nodes) {
            self.schedule(at, a);
        }
    }

    // ----- accessors -----

    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }
    pub fn seed(&self) -> u64 {
        self.cfg.seed
    }
    /// Virtual time.
    pub fn now(&self) -> Time {
        self.now
    }
    /// Events processed so far.
    pub fn events(&self) -> u64 {
        self.events
    }
    pub fn stats(&self) -> &NetStats {
        &self.stats
    }
    /// Number of nodes ever started (live or not).
    pub fn node_count(&self) -> u32 {
        self.nodes.len() as u32
    }
    /// The node's current (or last) incarnation.
    pub fn member(&self, node: u32) -> Option<MemberId> {
        self.nodes.get(node as usize).map(|n| n.id)
    }
    /// Whether the node runs a stack now.
    pub fn is_live(&self, node: u32) -> bool {
        self.nodes.get(node as usize).is_some_and(Node::live)
    }
    /// Members running now, by node.
    pub fn live_members(&self) -> Vec<MemberId> {
        self.nodes.iter().filter(|n| n.live()).map(|n| n.id).collect()
    }
    pub fn stack(&self, node: u32) -> Option<&Stack> {
        self.nodes.get(node as usize)?.stack.as_ref()
    }
    pub fn stack_mut(&mut self, node: u32) -> Option<&mut Stack> {
        self.nodes.get_mut(node as usize)?.stack.as_mut()
    }
    pub fn app(&self, node: u32) -> Option<&dyn App> {
        self.nodes.get(node as usize)?.app.as_deref()
    }
    /// Casts delivered to `member`'s application.
    pub fn delivered(&self, member: MemberId) -> u64 {
        self.delivered.get(&member).copied().unwrap_or(0)
    }
    /// Casts the node's current incarnation has cast so far.
    pub fn sent_by(&self, node: u32) -> u64 {
        self.nodes.get(node as usize).map_or(0, |n| n.sent)
    }
    pub fn integrity_errors(&self) -> u64 {
        self.integrity_errors
    }
    /// Why the last `run*` stopped.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop
    }

    // ----- scenario -----

    /// Schedules `action` at virtual time `at`.
    pub fn schedule(&mut self, at: Time, action: Action) {
        self.pending_acts += 1;
        self.push(at.max(self.now), Ev::Act(action));
    }

    /// Schedules `action` `ms` virtual milliseconds from the start.
    pub fn schedule_ms(&mut self, ms: u64, action: Action) {
        self.schedule(Time::from_millis(ms), action)
    }

    /// Applies `action` now.
    pub fn apply(&mut self, action: Action) {
        self.start();
        self.last_activity = self.now;
        match action {
            Action::Crash(n) => self.crash(n),
            Action::Restart(n) => self.restart(n),
            Action::Partition(a, b) => self.partitions.cut_two_way(&a, &b),
            Action::PartitionOneWay(a, b) => self.partitions.cut_one_way(&a, &b),
            Action::Heal(a, b) => self.partitions.heal_between(&a, &b),
            Action::HealAll => self.partitions.heal_all(),
            Action::Join => {
                let n = self.nodes.len() as u32;
                let id = MemberId::new(n, 0);
                self.nodes.push(Node {
                    id,
                    stack: None,
                    app: None,
                    timer_at: None,
                    tick_at: None,
                    slow: None,
                    inbox: VecDeque::new(),
                    draining: false,
                    next_free: Time::ZERO,
                    to_send: 0,
                    sent: 0,
                    leaving: false,
                    left: false,
                });
                let members = self.joiner_members(id);
                self.start_member(n, members, false);
            }
            Action::Leave(n) => {
                let now = self.now;
                let Some(node) = self.nodes.get_mut(n as usize) else { return };
                if node.leaving {
                    return;
                }
                if let Some(s) = node.stack.as_mut() {
                    node.leaving = true;
                    node.tick_at = None;
                    s.leave(now);
                    self.pump(n);
                }
            }
            Action::Slow(n, s) => {
                if let Some(node) = self.nodes.get_mut(n as usize) {
                    node.slow = s;
                    if s.is_none() {
                        let queued: Vec<Bytes> = node.inbox.drain(..).collect();
                        node.draining = false;
                        for d in queued {
                            self.process(n, d);
                        }
                    }
                }
            }
            Action::Inject(n, data) => self.arrive(n, data),
        }
    }

    fn crash(&mut self, n: u32) {
        let Some(node) = self.nodes.get_mut(n as usize) else { return };
        let Some(stack) = node.stack.take() else { return };
        node.app = None;
        node.timer_at = None;
        node.tick_at = None;
        node.inbox.clear();
        node.draining = false;
        self.judged += 1;
        self.retire_counters(&stack);
        drop(stack);
    }

    fn restart(&mut self, n: u32) {
        let Some(node) = self.nodes.get_mut(n as usize) else { return };
        if node.live() || node.left {
            return;
        }
        node.id = node.id.next_incarnation();
        node.leaving = false;
        let id = node.id;
        let members = self.joiner_members(id);
        self.start_member(n, members, false);
    }

    fn joiner_members(&self, me: MemberId) -> Vec<MemberId> {
        let mut v = self.live_members();
        v.push(me);
        v
    }

    fn start_member(&mut self, n: u32, members: Vec<MemberId>, initial: bool) {
        let now = self.now;
        let me = self.nodes[n as usize].id;
        let seed = Rng::new(self.cfg.seed ^ me.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64();
        let mut stack = (self.factory)(StackConfig { me, seed, members });
        if stack.max_datagram().is_none() {
            stack.set_max_datagram(SIM_MAX_DATAGRAM);
        }
        let buf = SharedBuf::default();
        stack.set_trace(TraceWriter::new(me, Box::new(buf.clone())));
        self.traces.insert(me, buf);
        self.delivered.entry(me).or_insert(0);
        let app = (self.app_factory)(me);
        let wl = &self.cfg.workload;
        let to_send = if initial || wl.joiners { wl.messages } else { 0 };
        let jitter = self.wl_rng.range(0, wl.start_jitter_us);
        let node = &mut self.nodes[n as usize];
        node.stack = Some(stack);
        node.app = Some(app);
        node.to_send = to_send;
        node.sent = 0;
        node.timer_at = None;
        node.tick_at = None;
        node.stack.as_mut().expect("just set").join(now);
        self.pump(n);
        self.schedule_tick(n, now + std::time::Duration::from_micros(jitter));
    }

    fn retire_counters(&mut self, stack: &Stack) {
        for (l, c, v) in stack.counters() {
            let k = format!("{l}.{c}");
            *self.dead_counters.entry(k.clone()).or_insert(0) += v;
            if is_peak(c) {
                let p = self.dead_peaks.entry(k).or_insert(0);
                *p = (*p).max(v);
            }
        }
    }

    // ----- event loop -----

    fn push(&mut self, at: Time, ev: Ev) {
        if matches!(ev, Ev::Arrive { .. }) {
            self.in_flight += 1;
        }
        self.seq += 1;
        self.queue.push(Entry { at, seq: self.seq, ev });
    }

    /// Processes the next event, if any. Returns false when no event is left.
    pub fn step(&mut self) -> bool {
        self.start();
        let Some(e) = self.queue.pop() else { return false };
        self.now = self.now.max(e.at);
        self.events += 1;
        match e.ev {
            Ev::Arrive { node, data } => {
                self.in_flight -= 1;
                self.arrive(node, data);
            }
            Ev::Drain { node, inc } => self.drain(node, inc),
            Ev::Timer { node, inc, due } => {
                let now = self.now;
                let Some(nd) = self.nodes.get_mut(node as usize) else { return true };
                if nd.id.incarnation() != inc || nd.timer_at != Some(due) {
                    return true;
                }
                nd.timer_at = None;
                if let Some(s) = nd.stack.as_mut() {
                    s.handle_timeout(now);
                    self.pump(node);
                }
            }
            Ev::Tick { node, inc } => {
                let nd = &mut self.nodes[node as usize];
                if nd.id.incarnation() == inc && nd.tick_at == Some(self.now) {
                    nd.tick_at = None;
                    self.tick(node);
                }
            }
            Ev::Act(a) => {
                self.pending_acts -= 1;
                self.apply(a);
            }
        }
        true
    }

    /// Runs until virtual time `until` (events at `until` included), the deadline or
    /// the event cap.
    pub fn run_until(&mut self, until: Time) -> StopReason {
        self.start();
        let deadline = Time::from_millis(self.cfg.deadline_ms);
        let stop = loop {
            if self.events >= self.cfg.max_events {
                break StopReason::EventCap;
            }
            match self.queue.peek() {
                None => break StopReason::Idle,
                Some(e) if e.at > deadline.min(until) => {
                    self.now = self.now.max(deadline.min(until));
                    break StopReason::Deadline;
                }
                Some(_) => {
                    self.step();
                }
            }
        };
        self.stop = Some(stop);
        stop
    }

    /// Runs for `ms` more virtual milliseconds.
    pub fn run_for_ms(&mut self, ms: u64) -> StopReason {
        let until = self.now + std::time::Duration::from_millis(ms);
        self.run_until(until)
    }

    /// Runs until the group is quiet, then writes the `end` line of every live
    /// member's trace ([`Sim::finish`]). Quiet means: no scheduled action is pending,
    /// every live member has cast its whole workload, and either
    /// - no packet is in flight or queued and every live member delivered every cast it
    ///   must (see [`Sim::all_delivered`]; [`StopReason::AllDelivered`]), or
    /// - nothing was delivered, cast or installed for `settle_ms`
    ///   ([`StopReason::Settled`]);
    ///
    /// or else the deadline or the event cap is reached.
    pub fn run_until_quiet(&mut self) -> StopReason {
        self.start();
        let deadline = Time::from_millis(self.cfg.deadline_ms);
        let settle = std::time::Duration::from_millis(self.cfg.settle_ms);
        let stop = loop {
            if let Some(r) = self.quiet(settle) {
                break r;
            }
            if self.events >= self.cfg.max_events {
                break StopReason::EventCap;
            }
            match self.queue.peek() {
                None => break StopReason::Idle,
                Some(e) if e.at > deadline => {
                    self.now = self.now.max(deadline);
                    break StopReason::Deadline;
                }
                Some(e) if self.workloads_done() && e.at > self.last_activity + settle => {
                    // Nothing happens before the settle period ends.
                    self.now = self.last_activity + settle;
                    break StopReason::Settled;
                }
                Some(_) => {
                    self.step();
                }
            }
        };
        self.stop = Some(stop);
        self.finish();
        stop
    }

    fn workloads_done(&self) -> bool {
        self.pending_acts == 0
            && self.nodes.iter().all(|n| !n.live() || n.leaving || n.sent >= n.to_send)
    }

    fn quiet(&mut self, settle: std::time::Duration) -> Option<StopReason> {
        if !self.workloads_done() {
            return None;
        }
        let idle = self.in_flight == 0 && self.nodes.iter().all(|n| n.inbox.is_empty());
        if idle {
            let all = match self.last_judgement {
                Some((at, all)) if at == self.judged => all,
                _ => {
                    let all = self.all_delivered();
                    self.last_judgement = Some((self.judged, all));
                    all
                }
            };
            if all {
                return Some(StopReason::AllDelivered);
            }
        }
        if self.now >= self.last_activity + settle {
            return Some(StopReason::Settled);
        }
        None
    }

    /// Whether every live member is in the same view and delivered every cast it
    /// must: each cast sent in a view the member installed, by a sender still live or delivered by some live
    /// member. (Counting deliveries is not enough: after a crash a member holds the
    /// crashed sender's casts while another is still fetching them, and its count
    /// can reach what the live senders cast while repair goes on. A cast of a failed
    /// sender that no live member delivered may be lost for good and is not waited
    /// for; a member is not expected to deliver casts of views before it joined.)
    pub fn all_delivered(&self) -> bool {
        let live: Vec<MemberId> = self.live_members();
        // A member still catching up on a view change (or not yet in a view) is not
        // done: members must end in one view.
        let mut views = self.nodes.iter().filter_map(|n| n.stack.as_ref()).map(|s| s.view());
        let first = views.next().flatten();
        if first.is_none() || views.any(|v| v != first) {
            return false;
        }
        let (no_views, no_casts) = (BTreeSet::new(), BTreeSet::new());
        let sets: Vec<(&BTreeSet<u64>, &CastSet)> = live
            .iter()
            .map(|m| {
                (self.installed.get(m).unwrap_or(&no_views), self.got.get(m).unwrap_or(&no_casts))
            })
            .collect();
        self.cast_view.iter().all(|(id, view)| {
            let needed = live.contains(&id.0) || sets.iter().any(|(_, got)| got.contains(id));
            !needed || sets.iter().all(|(views, got)| !views.contains(view) || got.contains(id))
        })
    }

    /// Writes the `end` line of every live member's trace (once). Call it when the run
    /// is over: stepping further would write lines after the `end` lines.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        for n in &mut self.nodes {
            if let Some(s) = n.stack.as_mut() {
                s.end_trace();
            }
        }
    }

    // ----- members -----

    /// Hands every pending application event and datagram of node `n` on, then
    /// (re)schedules its timer.
    fn pump(&mut self, n: u32) {
        let now = self.now;
        loop {
            let node = &mut self.nodes[n as usize];
            let Some(stack) = node.stack.as_mut() else { return };
            if let Some(ev) = stack.poll_event() {
                self.on_app_event(n, ev);
                continue;
            }
            if let Some(out) = stack.poll_net() {
                self.transmit(n, out);
                continue;
            }
            break;
        }
        let node = &mut self.nodes[n as usize];
        let Some(stack) = node.stack.as_ref() else { return };
        if stack.exited() {
            let clean = node.leaving;
            if clean {
                node.left = true;
            }
            self.crash(n);
            if !clean {
                let at = now + std::time::Duration::from_millis(self.cfg.rejoin_ms);
                self.schedule(at, Action::Restart(n));
            }
            return;
        }
        let next = stack.next_timeout();
        if next != node.timer_at {
            node.timer_at = next;
            if let Some(t) = next {
                let inc = node.id.incarnation();
                self.push(t.max(now), Ev::Timer { node: n, inc, due: t });
            }
        }
    }

    fn on_app_event(&mut self, n: u32, ev: AppEvent) {
        let now = self.now;
        let node = &mut self.nodes[n as usize];
        let me = node.id;
        if let Some(app) = node.app.as_mut() {
            app.on_event(&ev);
        }
        let stack = node.stack.as_mut().expect("pumped node is live");
        match ev {
            AppEvent::Deliver { from, seq, payload } => {
                *self.delivered.entry(me).or_insert(0) += 1;
                self.got.entry(me).or_default().insert((from, seq));
                self.judged += 1;
                if !payload_ok(from, seq, &payload) {
                    self.integrity_errors += 1;
                }
                self.last_activity = now;
            }
            AppEvent::Block => stack.block_ok(now),
            AppEvent::StateRequest => {
                let st = node.app.as_ref().map(|a| a.state()).unwrap_or_default();
                stack.state_reply(now, st);
            }
            AppEvent::State(s) => {
                if let Some(app) = node.app.as_mut() {
                    app.set_state(s);
                }
            }
            AppEvent::View(v) => {
                self.installed.entry(me).or_default().insert(v.id);
                self.judged += 1;
                self.last_activity = now;
                self.schedule_tick(n, now);
            }
            AppEvent::Flow { open: true } => self.schedule_tick(n, now),
            _ => {}
        }
    }

    fn schedule_tick(&mut self, n: u32, at: Time) {
        let node = &mut self.nodes[n as usize];
        if !node.live() || node.leaving || node.sent >= node.to_send {
            return;
        }
        if node.tick_at.is_some_and(|t| t <= at) {
            return;
        }
        node.tick_at = Some(at);
        let inc = node.id.incarnation();
        self.push(at, Ev::Tick { node: n, inc });
    }

    /// The workload: cast the next message(s), or wait when the stack refuses.
    fn tick(&mut self, n: u32) {
        let now = self.now;
        let wl = self.cfg.workload.clone();
        let burst = if wl.interval_us.is_some() { 1 } else { wl.burst.max(1) };
        let mut refused = false;
        for _ in 0..burst {
            let node = &mut self.nodes[n as usize];
            if node.leaving || node.sent >= node.to_send {
                return;
            }
            let me = node.id;
            let Some(stack) = node.stack.as_mut() else { return };
            if !stack.can_send() {
                refused = true;
                break;
            }
            let len = self.wl_rng.range(wl.min_size as u64, wl.max_size as u64) as usize;
            let view = stack.view().map_or(0, |v| v.id);
            match stack.cast(now, payload(me, node.sent + 1, len)) {
                Ok(seq) => {
                    debug_assert_eq!(seq, node.sent + 1);
                    node.sent += 1;
                    self.sent += 1;
                    self.last_activity = now;
                    self.cast_view.insert((me, seq), view);
                    self.judged += 1;
                }
                Err(_) => refused = true,
            }
            self.pump(n);
            if refused {
                break;
            }
        }
        let after = match (refused, wl.interval_us) {
            (true, _) => wl.retry_us,
            (false, Some(i)) => i,
            (false, None) => 1,
        };
        self.schedule_tick(n, now + std::time::Duration::from_micros(after.max(1)));
    }

    // ----- network -----

    fn transmit(&mut self, from: u32, out: NetOut) {
        let (dest, msg) = match out {
            NetOut::Cast(m) => (None, m),
            NetOut::Send(d, m) => (Some(d), m),
            NetOut::View(_) => return,
        };
        let hdr = PacketHeader { group: 0, sender: self.nodes[from as usize].id, dest };
        let hl = hdr.encoded_len();
        let mut buf = vec![0u8; hl];
        buf.reserve(msg.len());
        hdr.encode(&mut buf);
        msg.write_to(&mut buf);
        let data = Bytes::from(buf);
        self.stats.datagrams += 1;
        self.stats.bytes += data.len() as u64;
        match dest {
            None => {
                for to in 0..self.nodes.len() as u32 {
                    if self.nodes[to as usize].live() {
                        self.route(from, to, data.clone());
                    }
                }
            }
            Some(d) => {
                if (d.node() as usize) < self.nodes.len() {
                    self.route(from, d.node(), data);
                } else {
                    self.stats.dropped_down += 1;
                }
            }
        }
    }

    /// The fault model, per packet and receiver (see [`net`]).
    fn route(&mut self, from: u32, to: u32, data: Bytes) {
        if self.partitions.is_cut(from, to) {
            self.stats.dropped_partition += 1;
            return;
        }
        let c = self.cfg.net.clone();
        let faulty = from != to || self.cfg.faults_on_loopback;
        let r = &mut self.net_rng;
        if faulty && r.chance(c.loss) {
            self.stats.dropped_loss += 1;
            return;
        }
        let copies = if faulty && r.chance(c.duplicate) { 2 } else { 1 };
        self.stats.duplicated += copies - 1;
        for _ in 0..copies {
            let r = &mut self.net_rng;
            let mut us = r.range(c.min_delay_us, c.max_delay_us);
            if faulty && r.chance(c.reorder) {
                us += r.range(1, c.reorder_extra_us.max(1));
                self.stats.reordered += 1;
            }
            let mut d = data.clone();
            if faulty && r.chance(c.corrupt) {
                let mut v = d.to_vec();
                let i = r.below(3.min(v.len() as u64).max(1)) as usize;
                if let Some(b) = v.get_mut(i) {
                    *b ^= r.range(1, 255) as u8;
                }
                d = Bytes::from(v);
                self.stats.corrupted += 1;
            }
            self.stats.in_flight_total += 1;
            let at = self.now + std::time::Duration::from_micros(us);
            self.push(at, Ev::Arrive { node: to, data: d });
        }
    }

    /// A datagram reaches node `n`: straight to the stack, or into a slow receiver's
    /// bounded queue.
    fn arrive(&mut self, n: u32, data: Bytes) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(n as usize) else { return };
        if !node.live() {
            self.stats.dropped_down += 1;
            return;
        }
        let Some(slow) = node.slow else {
            self.process(n, data);
            return;
        };
        if node.inbox.len() >= slow.queue {
            self.stats.dropped_overflow += 1;
            return;
        }
        node.inbox.push_back(data);
        if !node.draining {
            node.draining = true;
            let at = node.next_free.max(now);
            let inc = node.id.incarnation();
            self.push(at, Ev::Drain { node: n, inc });
        }
    }

    fn drain(&mut self, n: u32, inc: u32) {
        let now = self.now;
        let node = &mut self.nodes[n as usize];
        if node.id.incarnation() != inc || !node.draining {
            return;
        }
        let Some(data) = node.inbox.pop_front() else {
            node.draining = false;
            return;
        };
        let service = node.slow.map_or(0, |s| s.service_ns());
        node.next_free = now + std::time::Duration::from_nanos(service);
        if node.inbox.is_empty() {
            node.draining = false;
        } else {
            let at = node.next_free;
            self.push(at, Ev::Drain { node: n, inc });
        }
        self.process(n, data);
    }

    /// Decodes the packet header and hands the rest to the stack.
    fn process(&mut self, n: u32, data: Bytes) {
        let now = self.now;
        let node = &mut self.nodes[n as usize];
        let me = node.id;
        let Some(stack) = node.stack.as_mut() else {
            self.stats.dropped_down += 1;
            return;
        };
        let (hdr, len) = match PacketHeader::decode(&data) {
            Ok(h) => h,
            Err(_) => {
                self.stats.dropped_malformed += 1;
                return;
            }
        };
        if hdr.group != 0 {
            self.stats.dropped_foreign += 1;
            return;
        }
        if hdr.dest.is_some_and(|d| d != me) {
            self.stats.dropped_stale_dest += 1;
            return;
        }
        self.stats.received += 1;
        stack.receive(now, hdr.sender, hdr.dest.is_none(), data.slice(len..));
        self.pump(n);
    }

    // ----- traces and report -----

    /// Every member's trace, `(member name, bytes)`, in member order (node, then
    /// incarnation), crashed incarnations included.
    pub fn traces(&self) -> Vec<(String, Vec<u8>)> {
        self.traces.iter().map(|(m, b)| (m.to_string(), b.bytes())).collect()
    }

    /// Writes every trace to `dir/<member>.jsonl`.
    pub fn write_traces(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (m, b) in self.traces() {
            std::fs::write(dir.join(format!("{m}.jsonl")), b)?;
        }
        Ok(())
    }

    /// FNV-1a 64 over every trace in member order: name, a zero byte, the length as
    /// 8 bytes big-endian, the bytes.
    pub fn trace_hash(&self) -> u64 {
        let mut h = fnv1a_start();
        for (m, b) in self.traces() {
            h = fnv1a(h, m.as_bytes());
            h = fnv1a(h, &[0]);
            h = fnv1a(h, &(b.len() as u64).to_be_bytes());
            h = fnv1a(h, &b);
        }
        h
    }

    /// The run's summary; its `Display` starts with the seed and how to replay.
    pub fn report(&self) -> Report {
        let mut counters = self.dead_counters.clone();
        let mut peaks = self.dead_peaks.clone();
        let mut views = BTreeMap::new();
        for n in &self.nodes {
            let Some(s) = n.stack.as_ref() else { continue };
            for (l, c, v) in s.counters() {
                let k = format!("{l}.{c}");
                *counters.entry(k.clone()).or_insert(0) += v;
                if is_peak(c) {
                    let p = peaks.entry(k).or_insert(0);
                    *p = (*p).max(v);
                }
            }
            if let Some(v) = s.view() {
                views.insert(
                    n.id.to_string(),
                    (v.id, v.members.iter().map(|m| m.to_string()).collect()),
                );
            }
        }
        let per_member: BTreeMap<String, u64> =
            self.delivered.iter().map(|(m, d)| (m.to_string(), *d)).collect();
        Report {
            seed: self.cfg.seed,
            replay: format!(
                "{SEED_VAR}={} (tests read it with sim::seed_from_env), or SimConfig {{ seed: {}, .. }}",
                self.cfg.seed, self.cfg.seed
            ),
            stop: self.stop,
            virtual_ms: self.now.as_millis(),
            events: self.events,
            sent: self.sent,
            delivered: per_member.values().sum(),
            per_member,
            integrity_errors: self.integrity_errors,
            net: self.stats.clone(),
            counters,
            peaks,
            views,
            trace_hash: self.trace_hash(),
        }
    }
}

fn is_peak(name: &str) -> bool {
    name.ends_with("_peak") || name.ends_with("buffered_bytes")
}
