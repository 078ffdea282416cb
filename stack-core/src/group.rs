//! The application-facing group API.
//!
//! An application joins a group through a transport's runtime and gets a
//! [`GroupHandle`]. The stack itself runs on the runtime's event-loop thread; the handle
//! talks to it over channels:
//!
//! - commands (cast, send, block_ok, ...) go through a bounded channel, and the handle
//!   wakes the loop through a [`Wake`] (at most one wake-up is outstanding at a time, so
//!   a burst of casts costs one system call);
//! - events for the application ([`AppEvent`]) come back through an unbounded channel
//!   the application drains with [`GroupHandle::recv`] and friends;
//! - the loop publishes whether the stack accepts casts, the last installed view and
//!   the datagram statistics in a small shared state the handle reads without a
//!   round trip.
//!
//! [`loop_side`] builds a connected pair: the handle for the application and the
//! [`LoopSide`] a runtime keeps next to the stack.

use crate::layer::Layer;
use crate::member::{MemberId, View};
use crate::packet::GroupId;
use crate::stack::{AppEvent, CastError, StackConfig};
use crate::trace::TraceWriter;
use crate::transport::TransportSpec;
use bytes::Bytes;
use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TrySendError};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use crossbeam_channel::{RecvError, RecvTimeoutError, TryRecvError};

/// Default capacity of a group's command channel: what the event loop takes from one
/// member in one turn. The channel's slots are allocated up front (about 56 bytes
/// each), which is most of what a group costs in memory when many share a process.
pub const DEFAULT_COMMAND_CAPACITY: usize = 256;

/// How long [`GroupHandle::counters`] and [`GroupHandle::end_trace`] wait for the loop.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything a runtime needs to run one member of one group.
pub struct GroupConfig {
    /// The layers, bottom to top, as built from a descriptor.
    pub layers: Vec<Box<dyn Layer>>,
    /// Where the group's datagrams travel.
    pub transport: TransportSpec,
    /// Tells this group's datagrams apart from other groups' on a shared socket.
    pub group: GroupId,
    /// This member, its seed and the static member list.
    pub stack: StackConfig,
    /// Writes the member's trace when set.
    pub trace: Option<TraceWriter>,
    /// Capacity of the command channel; a full channel makes `cast` return
    /// [`CastError::WouldBlock`].
    pub command_capacity: usize,
}

impl GroupConfig {
    pub fn new(
        layers: Vec<Box<dyn Layer>>,
        transport: TransportSpec,
        group: GroupId,
        stack: StackConfig,
    ) -> GroupConfig {
        GroupConfig {
            layers,
            transport,
            group,
            stack,
            trace: None,
            command_capacity: DEFAULT_COMMAND_CAPACITY,
        }
    }

    pub fn with_trace(mut self, trace: TraceWriter) -> GroupConfig {
        self.trace = Some(trace);
        self
    }
}

/// Wakes an event loop blocked waiting for the network (a `mio::Waker`, for instance).
pub trait Wake: Send + Sync {
    fn wake(&self);
}

/// A command from the application to the loop that runs its stack.
#[derive(Debug)]
pub enum Command {
    Cast(Bytes),
    Send(MemberId, Bytes),
    BlockOk,
    StateReply(Bytes),
    Leave,
    /// Reply with every counter of the stack.
    Counters(Sender<Vec<(&'static str, &'static str, u64)>>),
    /// Write the trace's end line, then reply.
    EndTrace(Sender<()>),
}

/// Whether the stack accepts a cast, as last published by the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SendState {
    Open = 0,
    NotJoined = 1,
    Blocked = 2,
    WouldBlock = 3,
    Exited = 4,
}

impl SendState {
    fn from_u8(v: u8) -> SendState {
        match v {
            0 => SendState::Open,
            1 => SendState::NotJoined,
            2 => SendState::Blocked,
            3 => SendState::WouldBlock,
            _ => SendState::Exited,
        }
    }

    fn check(self) -> Result<(), CastError> {
        match self {
            SendState::Open => Ok(()),
            SendState::NotJoined => Err(CastError::NotJoined),
            SendState::Blocked => Err(CastError::Blocked),
            SendState::WouldBlock => Err(CastError::WouldBlock),
            SendState::Exited => Err(CastError::Exited),
        }
    }
}

/// Datagram statistics of a group or a socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Datagrams dropped on receipt: not ours (bad magic or version, garbage,
    /// truncated, unknown group) or a point-to-point send for no local member.
    pub foreign_dropped: u64,
    /// Datagrams the operating system refused to send.
    pub send_errors: u64,
    /// Effective socket buffer sizes (sockets only).
    pub recv_buffer: u64,
    pub send_buffer: u64,
}

/// [`NetStats`] the loop updates and any thread reads.
#[derive(Debug, Default)]
pub struct AtomicNetStats {
    pub datagrams_in: AtomicU64,
    pub datagrams_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub foreign_dropped: AtomicU64,
    pub send_errors: AtomicU64,
    pub recv_buffer: AtomicU64,
    pub send_buffer: AtomicU64,
}

impl AtomicNetStats {
    #[inline]
    pub fn received(&self, bytes: usize) {
        self.datagrams_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }
    #[inline]
    pub fn sent(&self, bytes: usize) {
        self.datagrams_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }
    #[inline]
    pub fn dropped(&self) {
        self.foreign_dropped.fetch_add(1, Ordering::Relaxed);
    }
    #[inline]
    pub fn send_error(&self) {
        self.send_errors.fetch_add(1, Ordering::Relaxed);
    }
    pub fn snapshot(&self) -> NetStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NetStats {
            datagrams_in: g(&self.datagrams_in),
            datagrams_out: g(&self.datagrams_out),
            bytes_in: g(&self.bytes_in),
            bytes_out: g(&self.bytes_out),
            foreign_dropped: g(&self.foreign_dropped),
            send_errors: g(&self.send_errors),
            recv_buffer: g(&self.recv_buffer),
            send_buffer: g(&self.send_buffer),
        }
    }
}

/// State the loop publishes and the handle reads.
#[derive(Default)]
pub struct Shared {
    state: AtomicU8,
    /// Set while a wake-up is outstanding.
    wake_pending: AtomicBool,
    view: Mutex<Option<View>>,
    /// Signalled when `state` becomes `Open` or `Exited`.
    state_lock: Mutex<()>,
    state_changed: Condvar,
    /// The group's datagrams.
    pub stats: AtomicNetStats,
    /// The socket's datagrams (shared by every group on it).
    pub socket_stats: OnceLock<Arc<AtomicNetStats>>,
    /// The local address of the socket the member sends from.
    pub local_addr: OnceLock<SocketAddr>,
}

impl Shared {
    pub fn send_state(&self) -> SendState {
        SendState::from_u8(self.state.load(Ordering::Acquire))
    }
}

/// The application's side of one member of one group.
///
/// Commands are queued to the runtime's loop, so every call returns at once.
/// `cast`, `send` and `cast_blocking` take `&mut self`: a member's casts are numbered
/// in the order they are made, which one sending thread fixes. Other threads may
/// receive through a clone of [`GroupHandle::events`].
pub struct GroupHandle {
    me: MemberId,
    group: GroupId,
    commands: Sender<Command>,
    events: Receiver<AppEvent>,
    shared: Arc<Shared>,
    waker: Arc<dyn Wake>,
    /// Casts handed to the loop so far; the stack numbers them in the same order.
    casts: u64,
}

/// The loop's side of one member of one group.
pub struct LoopSide {
    pub commands: Receiver<Command>,
    pub events: Sender<AppEvent>,
    pub shared: Arc<Shared>,
}

/// A connected handle and loop side for member `me` of `group`.
pub fn loop_side(
    me: MemberId,
    group: GroupId,
    capacity: usize,
    waker: Arc<dyn Wake>,
) -> (GroupHandle, LoopSide) {
    let (ctx, crx) = bounded(capacity.max(1));
    let (etx, erx) = unbounded();
    let shared = Arc::new(Shared::default());
    shared.state.store(SendState::NotJoined as u8, Ordering::Release);
    let handle = GroupHandle {
        me,
        group,
        commands: ctx,
        events: erx,
        shared: shared.clone(),
        waker,
        casts: 0,
    };
    let side = LoopSide { commands: crx, events: etx, shared };
    (handle, side)
}

impl LoopSide {
    /// Call before draining `commands`: a command sent after this is followed by a
    /// new wake-up.
    pub fn clear_wake(&self) {
        self.shared.wake_pending.store(false, Ordering::SeqCst);
    }

    /// Publishes whether the stack accepts casts.
    ///
    /// Compared with the published value itself, not with what this side published
    /// last: the handle also stores `Blocked` when the application answers `Block`,
    /// and the next view must reopen it.
    pub fn publish_state(&mut self, s: SendState) {
        if self.shared.state.swap(s as u8, Ordering::AcqRel) == s as u8 {
            return;
        }
        if matches!(s, SendState::Open | SendState::Exited) {
            let _g = self.shared.state_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.state_changed.notify_all();
        }
    }

    /// Hands an event to the application, remembering views.
    pub fn deliver(&self, ev: AppEvent) {
        if let AppEvent::View(v) = &ev {
            *self.shared.view.lock().unwrap_or_else(|e| e.into_inner()) = Some(v.clone());
        }
        let _ = self.events.send(ev);
    }
}

impl GroupHandle {
    pub fn me(&self) -> MemberId {
        self.me
    }

    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The last view the stack installed.
    pub fn view(&self) -> Option<View> {
        self.shared.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether a cast would be accepted now.
    pub fn send_state(&self) -> SendState {
        self.shared.send_state()
    }

    fn command(&self, c: Command) -> Result<(), TrySendError<Command>> {
        self.commands.try_send(c)?;
        self.wake();
        Ok(())
    }

    fn wake(&self) {
        if !self.shared.wake_pending.swap(true, Ordering::SeqCst) {
            self.waker.wake();
        }
    }

    fn queue_error(e: TrySendError<Command>) -> CastError {
        match e {
            TrySendError::Full(_) => CastError::WouldBlock,
            TrySendError::Disconnected(_) => CastError::Exited,
        }
    }

    /// Casts `payload` to the group without blocking; returns the cast's number (from
    /// 1, as receivers see it in [`AppEvent::Deliver`]).
    ///
    /// Refused with [`CastError::WouldBlock`] when the stack's flow-control window is
    /// closed (wait for `AppEvent::Flow { open: true }` or use
    /// [`GroupHandle::cast_blocking`]) or when the command queue is full;
    /// `NotJoined`, `Blocked` and `Exited` as the stack says. A refused cast was not
    /// sent. An accepted cast is sent as soon as the stack allows, in order; only a
    /// member that exits first drops it.
    pub fn cast(&mut self, payload: Bytes) -> Result<u64, CastError> {
        self.shared.send_state().check()?;
        self.command(Command::Cast(payload)).map_err(Self::queue_error)?;
        self.casts += 1;
        Ok(self.casts)
    }

    /// Like [`GroupHandle::cast`], but waits up to `timeout` for the window to open,
    /// the view to be installed or the queue to have room. Fails at once if the
    /// member has exited, else with the last refusal when the time is up.
    pub fn cast_blocking(&mut self, payload: Bytes, timeout: Duration) -> Result<u64, CastError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.shared.send_state().check() {
                Ok(()) => match self.commands.send_timeout(Command::Cast(payload), left) {
                    Ok(()) => {
                        self.wake();
                        self.casts += 1;
                        return Ok(self.casts);
                    }
                    Err(crossbeam_channel::SendTimeoutError::Timeout(_)) => {
                        return Err(CastError::WouldBlock)
                    }
                    Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => {
                        return Err(CastError::Exited)
                    }
                },
                Err(CastError::Exited) => return Err(CastError::Exited),
                Err(e) => {
                    if left.is_zero() {
                        return Err(e);
                    }
                    let g = self.shared.state_lock.lock().unwrap_or_else(|e| e.into_inner());
                    if self.shared.send_state().check().is_err() {
                        // Bounded waits: a notification can race with the check above.
                        let step = left.min(Duration::from_millis(5));
                        let _ = self.shared.state_changed.wait_timeout(g, step);
                    }
                }
            }
        }
    }

    /// Sends `payload` to one member (refused as [`GroupHandle::cast`] is).
    pub fn send(&mut self, dest: MemberId, payload: Bytes) -> Result<(), CastError> {
        self.shared.send_state().check()?;
        self.command(Command::Send(dest, payload)).map_err(Self::queue_error)
    }

    /// Answers [`AppEvent::Block`]: this member casts nothing more in this view.
    pub fn block_ok(&self) {
        self.shared.state.store(SendState::Blocked as u8, Ordering::Release);
        self.command_blocking(Command::BlockOk);
    }

    /// Answers [`AppEvent::StateRequest`].
    pub fn state_reply(&self, state: Bytes) {
        self.command_blocking(Command::StateReply(state));
    }

    /// Leaves the group; [`AppEvent::Exit`] follows.
    pub fn leave(&self) {
        self.command_blocking(Command::Leave);
    }

    /// Control commands must not be lost to a full queue: they wait for room.
    fn command_blocking(&self, c: Command) {
        if self.commands.send(c).is_ok() {
            self.wake();
        }
    }

    /// Every counter of the stack, `(layer, counter, value)`, fetched through the
    /// loop; empty if the loop has stopped.
    pub fn counters(&self) -> Vec<(&'static str, &'static str, u64)> {
        let (tx, rx) = bounded(1);
        self.command_blocking(Command::Counters(tx));
        rx.recv_timeout(REPLY_TIMEOUT).unwrap_or_default()
    }

    /// Writes the trace's end line and returns once it is written (or the loop has
    /// stopped).
    pub fn end_trace(&self) {
        let (tx, rx) = bounded(1);
        self.command_blocking(Command::EndTrace(tx));
        let _ = rx.recv_timeout(REPLY_TIMEOUT);
    }

    /// Waits for the next event. Fails once the group has ended and every event was
    /// taken.
    pub fn recv(&self) -> Result<AppEvent, RecvError> {
        self.events.recv()
    }

    pub fn recv_timeout(&self, d: Duration) -> Result<AppEvent, RecvTimeoutError> {
        self.events.recv_timeout(d)
    }

    pub fn try_recv(&self) -> Result<AppEvent, TryRecvError> {
        self.events.try_recv()
    }

    /// The event channel, for `select!` or another receiving thread.
    pub fn events(&self) -> &Receiver<AppEvent> {
        &self.events
    }

    /// This group's datagram statistics.
    pub fn stats(&self) -> NetStats {
        self.shared.stats.snapshot()
    }

    /// Statistics of the socket this group shares with others.
    pub fn socket_stats(&self) -> NetStats {
        self.shared.socket_stats.get().map(|s| s.snapshot()).unwrap_or_default()
    }

    /// The address this member sends from (and receives point-to-point traffic on).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.local_addr.get().copied()
    }
}

impl Drop for GroupHandle {
    /// Wakes the loop, which sees the closed command channel and has the member
    /// leave the group.
    fn drop(&mut self) {
        // Close the channel before the wake-up, so the loop sees it closed.
        let (closed, _) = bounded(0);
        drop(std::mem::replace(&mut self.commands, closed));
        self.waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn pair(cap: usize) -> (GroupHandle, LoopSide, Arc<Count>) {
        let w = Arc::new(Count(AtomicUsize::new(0)));
        let (h, s) = loop_side(MemberId::new(1, 0), 7, cap, w.clone());
        (h, s, w)
    }

    #[test]
    fn cast_is_refused_until_the_loop_opens_the_window() {
        let (mut h, mut s, _) = pair(8);
        assert_eq!(h.cast(Bytes::from_static(b"x")), Err(CastError::NotJoined));
        s.publish_state(SendState::Open);
        assert_eq!(h.cast(Bytes::from_static(b"a")), Ok(1));
        assert_eq!(h.cast(Bytes::from_static(b"b")), Ok(2));
        s.publish_state(SendState::WouldBlock);
        assert_eq!(h.cast(Bytes::from_static(b"c")), Err(CastError::WouldBlock));
        let got: Vec<_> = s.commands.try_iter().collect();
        assert_eq!(got.len(), 2);
        assert!(matches!(&got[0], Command::Cast(b) if b == "a"));
    }

    #[test]
    fn the_next_view_reopens_casts_after_block_ok() {
        let (mut h, mut s, _) = pair(8);
        s.publish_state(SendState::Open);
        h.block_ok();
        assert_eq!(h.cast(Bytes::new()), Err(CastError::Blocked));
        // The loop installs the next view: the stack is open again, as it was before.
        s.publish_state(SendState::Open);
        assert_eq!(h.cast(Bytes::new()), Ok(1));
    }

    #[test]
    fn full_queue_is_would_block_and_wakes_once_per_drain() {
        let (mut h, mut s, w) = pair(2);
        s.publish_state(SendState::Open);
        assert_eq!(h.cast(Bytes::new()), Ok(1));
        assert_eq!(h.cast(Bytes::new()), Ok(2));
        assert_eq!(h.cast(Bytes::new()), Err(CastError::WouldBlock));
        assert_eq!(w.0.load(Ordering::SeqCst), 1);
        s.clear_wake();
        assert_eq!(s.commands.try_iter().count(), 2);
        assert_eq!(h.cast(Bytes::new()), Ok(3));
        assert_eq!(w.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn cast_blocking_waits_for_the_window_and_times_out() {
        let (mut h, mut s, _) = pair(8);
        s.publish_state(SendState::WouldBlock);
        let t = Instant::now();
        assert_eq!(
            h.cast_blocking(Bytes::new(), Duration::from_millis(30)),
            Err(CastError::WouldBlock)
        );
        assert!(t.elapsed() >= Duration::from_millis(30));
        let opener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            s.publish_state(SendState::Open);
            s
        });
        assert_eq!(h.cast_blocking(Bytes::new(), Duration::from_secs(5)), Ok(1));
        let s = opener.join().unwrap();
        assert_eq!(s.commands.try_iter().count(), 1);
    }

    #[test]
    fn views_are_remembered_and_events_pass_through() {
        let (h, s, _) = pair(8);
        let v = View::new(3, vec![MemberId::new(1, 0)], crate::member::ViewReason::Join);
        s.deliver(AppEvent::View(v.clone()));
        assert_eq!(h.view(), Some(v.clone()));
        assert_eq!(h.try_recv(), Ok(AppEvent::View(v)));
        drop(s);
        assert_eq!(h.try_recv(), Err(TryRecvError::Disconnected));
    }
}
