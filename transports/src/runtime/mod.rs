//! The event-loop runtime: one thread per process that owns the sockets, the timers
//! and every stack (group member) of the process.
//!
//! ```text
//! application threads                 loop thread ("strata-net")
//!   GroupHandle --commands--> (bounded channel + Waker) --> Stack::cast/... (+ backlog)
//!   GroupHandle <--events---- (unbounded channel)       <-- Stack::poll_event
//!                                                          Stack::poll_net --> OutQueue --sendmmsg-->
//!                                        recvmmsg --> PacketHeader --> Stack::receive
//! ```
//!
//! Each turn of the loop fires due timers, tells the stacks when there is no more
//! input waiting ([`stack_core::Stack::idle`]: bundles go out then), moves every
//! stack's output to the sockets' queues and its events to the application, sends the
//! queues in batches, then blocks in `mio::Poll` until a socket is readable, the
//! application sends a command, or the earliest stack timer is due.
//!
//! Received datagrams are copied into 256 KiB arenas; with large messages the loop
//! allocates and frees memory fast, and glibc's default of returning freed memory
//! beyond 128 KiB to the system makes every new arena fault its pages in again. An
//! application moving large messages gains much from raising the trim threshold
//! (`mallopt(M_TRIM_THRESHOLD, 16 << 20)`, or `MALLOC_TRIM_THRESHOLD_`), as the
//! `strata` binary does: +40 % at 8 KiB and 64 KiB messages there.
//!
//! Groups whose transports name the same group address (udp) or the same bind
//! address (udpu) share one socket; datagrams are told apart by the group id of the
//! packet header, and a datagram carrying a destination goes only to that member.
//! Anything that is not a Strata datagram for a group of this process is dropped and
//! counted (`foreign_dropped`).
//!
//! Casts the stack cannot take yet (window closed, view being changed, not joined)
//! wait in a per-member backlog and go out in order as soon as it can; the handle
//! refuses new casts meanwhile, so the backlog holds at most what raced with that
//! refusal.

pub(crate) mod batch;
pub mod error;

use crate::{udp, udpu};
use batch::{OutQueue, RecvBatch};
use bytes::{Bytes, BytesMut};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TryRecvError};
pub use error::TransportError;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use stack_core::group::{loop_side, AtomicNetStats, Command, LoopSide, SendState, Wake};
use stack_core::packet::{GroupId, PacketHeader};
use stack_core::{
    props, AppEvent, GroupConfig, GroupHandle, Header, MemberId, Msg, NetOut, Stack, Time,
    Transport, TransportSpec,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const WAKER: Token = Token(usize::MAX);
/// Batches read from one socket per turn before the others get their turn.
const READ_BATCHES_PER_TURN: usize = 128;
/// Commands taken from one member per turn, so reading keeps up with a busy sender.
const COMMANDS_PER_TURN: usize = 256;
/// How long a member whose stack has a membership protocol may take to leave.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);
/// Arena the received datagrams are copied into, in chunks of this size.
const ARENA: usize = 256 * 1024;

/// A process's network runtime. Dropping it (or [`Runtime::stop`]) ends the loop
/// thread; handles of its groups then report `Exited` and their event channels close.
pub struct Runtime {
    control: Sender<Control>,
    waker: Arc<MioWake>,
    thread: Option<JoinHandle<()>>,
}

struct MioWake(Waker);

impl Wake for MioWake {
    fn wake(&self) {
        let _ = self.0.wake();
    }
}

enum Control {
    Join { cfg: Box<GroupConfig>, side: LoopSide, reply: Sender<Result<(), TransportError>> },
    Stop,
}

impl Runtime {
    /// Starts the loop thread.
    pub fn start() -> Result<Runtime, TransportError> {
        let poll = Poll::new().map_err(TransportError::io("create the poller"))?;
        let waker =
            Waker::new(poll.registry(), WAKER).map_err(TransportError::io("create the waker"))?;
        let (tx, rx) = unbounded();
        let thread = std::thread::Builder::new()
            .name("strata-net".into())
            .spawn(move || EventLoop::new(poll, rx).run())
            .map_err(TransportError::io("spawn the event loop"))?;
        Ok(Runtime { control: tx, waker: Arc::new(MioWake(waker)), thread: Some(thread) })
    }

    /// Starts one member of one group: opens (or shares) the socket its transport
    /// names, builds the stack and joins. Socket set-up errors are returned here.
    pub fn join(&self, cfg: GroupConfig) -> Result<GroupHandle, TransportError> {
        if let TransportSpec::Sim(_) = cfg.transport {
            return Err(TransportError::Unsupported("Sim"));
        }
        let waker: Arc<dyn Wake> = self.waker.clone();
        let (handle, side) = loop_side(cfg.stack.me, cfg.group, cfg.command_capacity, waker);
        let (reply, answer) = bounded(1);
        self.control
            .send(Control::Join { cfg: Box::new(cfg), side, reply })
            .map_err(|_| TransportError::Stopped)?;
        self.waker.wake();
        answer.recv().map_err(|_| TransportError::Stopped)??;
        Ok(handle)
    }

    /// Stops the loop and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.control.send(Control::Stop);
            self.waker.wake();
            let _ = t.join();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Transport for Runtime {
    type Error = TransportError;
    fn join(&self, cfg: GroupConfig) -> Result<GroupHandle, TransportError> {
        Runtime::join(self, cfg)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum SockKey {
    Udp(SocketAddrV4),
    Udpu(String),
}

enum SockKind {
    /// Multicast: the group address, and whether the runtime loops casts back to the
    /// process's own members itself (the kernel's loopback being off).
    Udp {
        group: SocketAddr,
        group_socket: UdpSocket,
        self_loop: bool,
    },
    Udpu {
        seeds: Vec<SocketAddr>,
    },
}

struct Sock {
    key: SockKey,
    kind: SockKind,
    /// Sends everything, receives point-to-point (and, for udpu, everything).
    unicast: UdpSocket,
    reachable: SocketAddr,
    learned: BTreeMap<(GroupId, MemberId), SocketAddr>,
    /// udpu: each group's fan-out list, rebuilt when peers change.
    fanout: HashMap<GroupId, Vec<SocketAddr>>,
    out: OutQueue,
    /// Readable halves not drained to `WouldBlock` yet: [unicast, group socket].
    read_pending: [bool; 2],
    users: usize,
    stats: Arc<AtomicNetStats>,
    /// Bytes of stack data one datagram carries, told to every stack on the socket.
    max_datagram: usize,
}

enum Pending {
    Cast(Bytes),
    Send(MemberId, Bytes),
}

struct Group {
    id: GroupId,
    me: MemberId,
    sock: usize,
    stack: Stack,
    side: LoopSide,
    backlog: VecDeque<Pending>,
    flow_open: bool,
    has_views: bool,
    /// Set once leaving: the member is removed when its stack exits or at this time.
    leave_by: Option<Time>,
}

struct EventLoop {
    poll: Poll,
    control: Receiver<Control>,
    origin: Instant,
    sockets: Vec<Option<Sock>>,
    groups: Vec<Option<Group>>,
    /// (socket, group id) -> local members (indices into `groups`).
    index: HashMap<(usize, GroupId), Vec<(usize, MemberId)>>,
    rx: RecvBatch,
    arena: BytesMut,
    inbox: Vec<(Bytes, Option<SocketAddr>)>,
    /// Datagrams handed to local members without the network: (socket, datagram).
    local: VecDeque<(usize, Bytes)>,
    stopping: bool,
    /// A member had more commands than one turn takes.
    more_commands: bool,
}

impl EventLoop {
    fn new(poll: Poll, control: Receiver<Control>) -> EventLoop {
        EventLoop {
            poll,
            control,
            origin: Instant::now(),
            sockets: Vec::new(),
            groups: Vec::new(),
            index: HashMap::new(),
            rx: RecvBatch::default(),
            arena: BytesMut::with_capacity(ARENA),
            inbox: Vec::with_capacity(batch::BATCH),
            local: VecDeque::new(),
            stopping: false,
            more_commands: false,
        }
    }

    fn now(&self) -> Time {
        Time(self.origin.elapsed().as_nanos().min(u64::MAX as u128) as u64)
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            let now = self.now();
            self.fire_timers(now);
            if !self.busy() {
                // Nothing more to read or take: what layers hold back for company
                // (bundles) goes now rather than at their timer.
                self.idle_stacks(now);
            }
            self.drain_stacks(now);
            self.flush_all();
            self.reap(now);
            if self.stopping {
                break;
            }
            let busy = self.busy();
            let timeout = if busy { Some(Duration::ZERO) } else { self.next_deadline(now) };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            let mut woke = false;
            for ev in events.iter() {
                if ev.token() == WAKER {
                    woke = true;
                    continue;
                }
                let (s, half) = (ev.token().0 / 2, ev.token().0 % 2);
                if let Some(sock) = self.sockets.get_mut(s).and_then(Option::as_mut) {
                    if ev.is_readable() {
                        sock.read_pending[half] = true;
                    }
                    if ev.is_writable() && half == 0 {
                        let f = sock.out.flush(&sock.unicast);
                        account(&sock.stats, f);
                    }
                }
            }
            let now = self.now();
            if woke || self.more_commands {
                self.handle_control(now);
                self.handle_commands(now);
            }
            self.read_all(now);
            self.deliver_local(now);
        }
        self.shut_down();
    }

    fn shut_down(&mut self) {
        for g in self.groups.iter_mut().flatten() {
            g.side.publish_state(SendState::Exited);
        }
        self.groups.clear();
        for s in self.sockets.iter_mut().flatten() {
            let f = s.out.flush(&s.unicast);
            account(&s.stats, f);
        }
        self.sockets.clear();
    }

    fn next_deadline(&self, now: Time) -> Option<Duration> {
        let mut at: Option<Time> = None;
        for g in self.groups.iter().flatten() {
            for t in [g.stack.next_timeout(), g.leave_by].into_iter().flatten() {
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        }
        // Round up so the wake-up is not a little early (poll timeouts are coarse).
        at.map(|t| t.since(now) + Duration::from_micros(if t > now { 500 } else { 0 }))
    }

    /// Whether input is waiting: commands beyond one turn, datagrams for local members,
    /// sockets not read to the end.
    fn busy(&self) -> bool {
        self.more_commands
            || !self.local.is_empty()
            || self.sockets.iter().flatten().any(|s| s.read_pending.iter().any(|&p| p))
    }

    fn idle_stacks(&mut self, now: Time) {
        for g in self.groups.iter_mut().flatten() {
            if g.stack.wants_idle() {
                g.stack.idle(now);
            }
        }
    }

    fn fire_timers(&mut self, now: Time) {
        for g in self.groups.iter_mut().flatten() {
            if g.stack.next_timeout().is_some_and(|t| t <= now) {
                g.stack.handle_timeout(now);
            }
        }
    }

    // ---- application side ----

    fn handle_control(&mut self, now: Time) {
        loop {
            match self.control.try_recv() {
                Ok(Control::Join { cfg, side, reply }) => {
                    let r = self.join(now, *cfg, side);
                    let _ = reply.send(r);
                }
                Ok(Control::Stop) | Err(TryRecvError::Disconnected) => {
                    self.stopping = true;
                    return;
                }
                Err(TryRecvError::Empty) => return,
            }
        }
    }

    fn join(&mut self, now: Time, cfg: GroupConfig, side: LoopSide) -> Result<(), TransportError> {
        let me = cfg.stack.me;
        if self.groups.iter().flatten().any(|g| g.id == cfg.group && g.me == me) {
            return Err(TransportError::DuplicateMember {
                group: cfg.group,
                member: me.to_string(),
            });
        }
        let s = self.socket_for(&cfg.transport)?;
        let mut stack = Stack::new(cfg.layers, cfg.stack);
        if let Some(sock) = &self.sockets[s] {
            stack.set_max_datagram(sock.max_datagram);
        }
        if let Some(t) = cfg.trace {
            stack.set_trace(t);
        }
        let has_views = stack.provides().contains(&props::VIEWS);
        let sock = self.sockets[s].as_mut().expect("socket just opened");
        sock.users += 1;
        let _ = side.shared.socket_stats.set(sock.stats.clone());
        let _ = side.shared.local_addr.set(sock.reachable);
        let slot = match self.groups.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.groups.push(None);
                self.groups.len() - 1
            }
        };
        stack.join(now);
        let mut g = Group {
            id: cfg.group,
            me,
            sock: s,
            stack,
            side,
            backlog: VecDeque::new(),
            flow_open: true,
            has_views,
            leave_by: None,
        };
        // Published before `join` returns, so a static view accepts casts at once.
        let state = g.send_state();
        g.side.publish_state(state);
        self.groups[slot] = Some(g);
        self.index.entry((s, cfg.group)).or_default().push((slot, me));
        Ok(())
    }

    fn socket_for(&mut self, spec: &TransportSpec) -> Result<usize, TransportError> {
        let key = match spec {
            TransportSpec::Udp(u) => SockKey::Udp(udp::parse_group(&u.group)?),
            TransportSpec::Udpu(u) => SockKey::Udpu(u.bind.trim().to_string()),
            TransportSpec::Sim(_) => return Err(TransportError::Unsupported("Sim")),
        };
        if let Some(i) = self.sockets.iter().position(|s| s.as_ref().is_some_and(|s| s.key == key))
        {
            return Ok(i);
        }
        let (unicast, kind, max_datagram) = match spec {
            TransportSpec::Udp(u) => {
                let o = udp::open(u)?;
                let max_datagram = o.max_datagram;
                let kind = SockKind::Udp {
                    group: SocketAddr::V4(o.group),
                    group_socket: UdpSocket::from_std(o.group_socket),
                    self_loop: !u.loopback,
                };
                (o.unicast, kind, max_datagram)
            }
            TransportSpec::Udpu(u) => {
                let o = udpu::open(u)?;
                (o.socket, SockKind::Udpu { seeds: o.seeds }, o.max_datagram)
            }
            TransportSpec::Sim(_) => unreachable!("refused above"),
        };
        let local = unicast.local_addr().map_err(TransportError::io("read the bound address"))?;
        let stats = Arc::new(AtomicNetStats::default());
        {
            let s2 = socket2::SockRef::from(&unicast);
            let r = s2.recv_buffer_size().unwrap_or(0) as u64;
            let w = s2.send_buffer_size().unwrap_or(0) as u64;
            stats.recv_buffer.store(r, std::sync::atomic::Ordering::Relaxed);
            stats.send_buffer.store(w, std::sync::atomic::Ordering::Relaxed);
        }
        let mut unicast = UdpSocket::from_std(unicast);
        let i = match self.sockets.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.sockets.push(None);
                self.sockets.len() - 1
            }
        };
        let reg = self.poll.registry();
        reg.register(&mut unicast, Token(2 * i), Interest::READABLE | Interest::WRITABLE)
            .map_err(TransportError::io("register the socket"))?;
        let mut kind = kind;
        if let SockKind::Udp { group_socket, .. } = &mut kind {
            if let Err(e) = reg.register(group_socket, Token(2 * i + 1), Interest::READABLE) {
                let _ = reg.deregister(&mut unicast);
                return Err(TransportError::Io { context: "register the socket", source: e });
            }
        }
        self.sockets[i] = Some(Sock {
            key,
            kind,
            unicast,
            reachable: udp::reachable(local),
            learned: BTreeMap::new(),
            fanout: HashMap::new(),
            out: OutQueue::default(),
            // Datagrams may have arrived between bind and registration.
            read_pending: [true, true],
            users: 0,
            stats,
            max_datagram,
        });
        Ok(i)
    }

    fn handle_commands(&mut self, now: Time) {
        self.more_commands = false;
        for g in self.groups.iter_mut().flatten() {
            if g.leave_by.is_some() {
                // Drain and drop: the member is on its way out.
                g.side.clear_wake();
                while let Ok(c) = g.side.commands.try_recv() {
                    reply_only(&mut g.stack, c);
                }
                continue;
            }
            g.side.clear_wake();
            for taken in 0.. {
                if taken == COMMANDS_PER_TURN {
                    self.more_commands = true;
                    break;
                }
                match g.side.commands.try_recv() {
                    Ok(Command::Cast(b)) => {
                        g.backlog.push_back(Pending::Cast(b));
                        g.pump(now);
                    }
                    Ok(Command::Send(d, b)) => {
                        g.backlog.push_back(Pending::Send(d, b));
                        g.pump(now);
                    }
                    Ok(Command::BlockOk) => {
                        g.pump(now);
                        g.stack.block_ok(now);
                    }
                    Ok(Command::StateReply(s)) => {
                        g.pump(now);
                        g.stack.state_reply(now, s);
                    }
                    Ok(Command::Leave) => {
                        g.pump(now);
                        g.begin_leave(now);
                        break;
                    }
                    Ok(c) => reply_only(&mut g.stack, c),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        g.pump(now);
                        g.begin_leave(now);
                        break;
                    }
                }
            }
        }
    }

    // ---- stacks to network and application ----

    fn drain_stacks(&mut self, now: Time) {
        let (groups, sockets, local) = (&mut self.groups, &mut self.sockets, &mut self.local);
        let index = &self.index;
        for slot in groups.iter_mut() {
            let Some(g) = slot else { continue };
            let sock = sockets[g.sock].as_mut().expect("a member's socket stays open");
            loop {
                let mut progress = false;
                while let Some(out) = g.stack.poll_net() {
                    progress = true;
                    match out {
                        NetOut::Cast(m) => emit(sock, g, None, &m, local, index),
                        NetOut::Send(d, m) => emit(sock, g, Some(d), &m, local, index),
                        NetOut::View(v) => {
                            let id = g.id;
                            sock.learned.retain(|&(gid, m), _| gid != id || v.contains(m));
                            sock.fanout.remove(&id);
                        }
                    }
                }
                while let Some(ev) = g.stack.poll_event() {
                    progress = true;
                    if let AppEvent::Flow { open } = ev {
                        g.flow_open = open;
                    }
                    g.side.deliver(ev);
                }
                if !g.backlog.is_empty() && g.stack.can_send() {
                    g.pump(now);
                    progress = true;
                }
                if !progress {
                    break;
                }
            }
            let state = g.send_state();
            g.side.publish_state(state);
        }
    }

    fn flush_all(&mut self) {
        for s in self.sockets.iter_mut().flatten() {
            if !s.out.is_empty() {
                let f = s.out.flush(&s.unicast);
                account(&s.stats, f);
            }
        }
    }

    /// Removes members that have left, and sockets no member uses.
    fn reap(&mut self, now: Time) {
        for gi in 0..self.groups.len() {
            let done = match &self.groups[gi] {
                Some(g) => match g.leave_by {
                    Some(by) => !g.has_views || g.stack.exited() || now >= by,
                    None => false,
                },
                None => false,
            };
            if !done {
                continue;
            }
            let mut g = self.groups[gi].take().expect("checked above");
            if !g.stack.exited() {
                g.side.deliver(AppEvent::Exit);
            }
            g.side.publish_state(SendState::Exited);
            if let Some(v) = self.index.get_mut(&(g.sock, g.id)) {
                v.retain(|&(x, _)| x != gi);
                if v.is_empty() {
                    self.index.remove(&(g.sock, g.id));
                }
            }
            let s = g.sock;
            let sock = self.sockets[s].as_mut().expect("a member's socket stays open");
            sock.users -= 1;
            if sock.users == 0 {
                let mut sock = self.sockets[s].take().expect("present");
                let f = sock.out.flush(&sock.unicast);
                account(&sock.stats, f);
                let reg = self.poll.registry();
                let _ = reg.deregister(&mut sock.unicast);
                if let SockKind::Udp { group_socket, .. } = &mut sock.kind {
                    let _ = reg.deregister(group_socket);
                }
                self.local.retain(|(i, _)| *i != s);
            }
        }
    }

    // ---- network to stacks ----

    fn read_all(&mut self, now: Time) {
        for s in 0..self.sockets.len() {
            for half in 0..2 {
                let pending = self.sockets[s].as_ref().is_some_and(|sock| sock.read_pending[half]);
                if pending {
                    self.read_socket(s, half, now);
                }
            }
        }
    }

    fn read_socket(&mut self, s: usize, half: usize, now: Time) {
        for _ in 0..READ_BATCHES_PER_TURN {
            let mut inbox = std::mem::take(&mut self.inbox);
            let done = {
                let Some(sock) = self.sockets[s].as_mut() else { return };
                let io = match (half, &sock.kind) {
                    (0, _) => &sock.unicast,
                    (_, SockKind::Udp { group_socket, .. }) => group_socket,
                    _ => {
                        sock.read_pending[half] = false;
                        return;
                    }
                };
                match self.rx.recv(io) {
                    Ok(n) => {
                        for i in 0..n {
                            let (data, from) = self.rx.get(i);
                            if self.arena.capacity() < data.len() {
                                self.arena.reserve(ARENA.max(data.len()));
                            }
                            self.arena.extend_from_slice(data);
                            inbox.push((self.arena.split().freeze(), Some(from)));
                        }
                        false
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => false,
                    // WouldBlock, or an error the next readiness event will retry.
                    Err(_) => {
                        sock.read_pending[half] = false;
                        true
                    }
                }
            };
            for (d, from) in inbox.drain(..) {
                self.dispatch(s, d, from, now);
            }
            self.inbox = inbox;
            if done {
                return;
            }
        }
    }

    fn deliver_local(&mut self, now: Time) {
        while let Some((s, d)) = self.local.pop_front() {
            self.dispatch(s, d, None, now);
        }
    }

    /// One datagram arrived on socket `s`: hand it to the local members it is for.
    fn dispatch(&mut self, s: usize, data: Bytes, from: Option<SocketAddr>, now: Time) {
        let Some(sock) = self.sockets[s].as_mut() else { return };
        if from.is_some() {
            sock.stats.received(data.len());
        }
        // Own datagrams already handed over in process (the loopback device loops
        // multicasts back even with IP_MULTICAST_LOOP off).
        if matches!(sock.kind, SockKind::Udp { self_loop: true, .. })
            && from == Some(sock.reachable)
        {
            return;
        }
        let Ok((hdr, n)) = PacketHeader::decode(&data) else {
            sock.stats.dropped();
            return;
        };
        let Some(members) = self.index.get(&(s, hdr.group)) else {
            sock.stats.dropped();
            return;
        };
        if let Some(from) = from {
            let key = (hdr.group, hdr.sender);
            if sock.learned.get(&key) != Some(&from) {
                sock.learned.insert(key, from);
                sock.fanout.remove(&hdr.group);
            }
        }
        let payload = data.slice(n..);
        match hdr.dest {
            None => {
                for &(gi, _) in members {
                    if let Some(g) = self.groups[gi].as_mut() {
                        g.side.shared.stats.received(data.len());
                        g.stack.receive(now, hdr.sender, true, payload.clone());
                    }
                }
            }
            Some(d) => {
                let to = members.iter().find(|&&(_, m)| m == d).map(|&(gi, _)| gi);
                match to.and_then(|gi| self.groups[gi].as_mut()) {
                    Some(g) => {
                        g.side.shared.stats.received(data.len());
                        g.stack.receive(now, hdr.sender, false, payload);
                    }
                    None => {
                        sock.stats.dropped();
                        if let Some(g) =
                            members.first().and_then(|&(gi, _)| self.groups[gi].as_ref())
                        {
                            g.side.shared.stats.dropped();
                        }
                    }
                }
            }
        }
    }
}

/// Answers the commands that only read the stack.
fn reply_only(stack: &mut Stack, c: Command) {
    match c {
        Command::Counters(tx) => {
            let _ = tx.send(stack.counters());
        }
        Command::EndTrace(tx) => {
            stack.end_trace();
            let _ = tx.send(());
        }
        _ => {}
    }
}

fn account(stats: &AtomicNetStats, f: batch::Flushed) {
    use std::sync::atomic::Ordering::Relaxed;
    if f.datagrams > 0 {
        stats.datagrams_out.fetch_add(f.datagrams, Relaxed);
        stats.bytes_out.fetch_add(f.bytes, Relaxed);
    }
    if f.errors > 0 {
        stats.send_errors.fetch_add(f.errors, Relaxed);
    }
}

/// Queues one datagram of member `g`: packet header, then the stack's
/// bytes (a long payload by reference, see [`batch::GATHER_MIN`]), to every
/// destination it needs.
fn emit(
    sock: &mut Sock,
    g: &Group,
    dest: Option<MemberId>,
    msg: &Msg,
    local: &mut VecDeque<(usize, Bytes)>,
    index: &HashMap<(usize, GroupId), Vec<(usize, MemberId)>>,
) {
    let hdr = PacketHeader { group: g.id, sender: g.me, dest };
    let buf = sock.out.buf();
    let start = buf.len();
    buf.resize(start + hdr.encoded_len(), 0);
    hdr.encode(&mut buf[start..]);
    buf.extend_from_slice(msg.headers());
    // A long payload is sent from where it lies; a short one is copied behind the
    // headers (a second iovec would cost more than the copy).
    let tail = if msg.body().len() >= batch::GATHER_MIN {
        msg.body().clone()
    } else {
        buf.extend_from_slice(msg.body());
        Bytes::new()
    };
    let end = buf.len();
    let len = end - start + tail.len();
    let stats = &g.side.shared.stats;
    let s = g.sock;
    // A send to a member of this process on this socket, when the kernel will not
    // loop multicasts back and its address is not known, is handed over directly.
    let hand_over = dest.is_some_and(|d| {
        matches!(sock.kind, SockKind::Udp { self_loop: true, .. })
            && !sock.learned.contains_key(&(g.id, d))
            && index.get(&(s, g.id)).is_some_and(|v| v.iter().any(|&(_, m)| m == d))
    });
    if hand_over {
        local.push_back((s, sock.out.joined(start, end, &tail)));
        return;
    }
    let out = &mut sock.out;
    match (&sock.kind, dest) {
        (SockKind::Udp { group, self_loop, .. }, None) => {
            out.push(start, end, tail.clone(), *group);
            stats.sent(len);
            if *self_loop {
                local.push_back((s, out.joined(start, end, &tail)));
            }
        }
        (SockKind::Udp { group, .. }, Some(d)) => {
            let to = sock.learned.get(&(g.id, d)).copied().unwrap_or(*group);
            out.push(start, end, tail, to);
            stats.sent(len);
        }
        (SockKind::Udpu { seeds }, None) => {
            let fan = sock
                .fanout
                .entry(g.id)
                .or_insert_with(|| udpu::fanout(sock.reachable, seeds, &sock.learned, g.id));
            for &a in fan.iter() {
                out.push(start, end, tail.clone(), a);
                stats.sent(len);
            }
        }
        (SockKind::Udpu { seeds }, Some(d)) => match sock.learned.get(&(g.id, d)) {
            Some(&a) => {
                out.push(start, end, tail.clone(), a);
                stats.sent(len);
            }
            None => {
                let fan = sock
                    .fanout
                    .entry(g.id)
                    .or_insert_with(|| udpu::fanout(sock.reachable, seeds, &sock.learned, g.id));
                for &a in fan.iter() {
                    out.push(start, end, tail.clone(), a);
                    stats.sent(len);
                }
            }
        },
    }
}

impl Group {
    /// Hands waiting casts and sends to the stack, in order, while it takes them.
    fn pump(&mut self, now: Time) {
        while !self.backlog.is_empty() {
            if self.stack.exited() {
                self.backlog.clear();
                return;
            }
            if !self.stack.can_send() {
                return;
            }
            let r = match self.backlog.pop_front().expect("not empty") {
                Pending::Cast(b) => self.stack.cast(now, b).map(|_| ()),
                Pending::Send(d, b) => self.stack.send(now, d, b),
            };
            debug_assert!(r.is_ok(), "can_send was checked");
        }
    }

    fn begin_leave(&mut self, now: Time) {
        if self.leave_by.is_some() {
            return;
        }
        self.stack.leave(now);
        self.leave_by = Some(now + LEAVE_TIMEOUT);
    }

    fn send_state(&self) -> SendState {
        if self.leave_by.is_some() || self.stack.exited() {
            SendState::Exited
        } else if self.stack.view().is_none() {
            SendState::NotJoined
        } else if !self.stack.can_send() {
            if self.flow_open {
                SendState::Blocked
            } else {
                SendState::WouldBlock
            }
        } else if !self.backlog.is_empty() {
            SendState::WouldBlock
        } else {
            SendState::Open
        }
    }
}
