//! Driver tests: event order through the queue, timers in virtual time, the static
//! view, the application header and the trace.

use stack_core::{
    AppEvent, Bytes, CastError, Ctx, Down, Layer, MemberId, NetOut, Stack, StackConfig, Time,
    TimerId, TraceWriter, Up,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Log = Arc<Mutex<Vec<String>>>;

/// Records every event it sees, then passes it on.
struct Recorder {
    name: &'static str,
    log: Log,
}

impl Layer for Recorder {
    fn name(&self) -> &'static str {
        self.name
    }
    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        self.log.lock().unwrap().push(format!("{}:down:{}", self.name, ev.kind()));
        ctx.down(ev)
    }
    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        self.log.lock().unwrap().push(format!("{}:up:{}", self.name, ev.kind()));
        ctx.up(ev)
    }
}

/// Turns one cast into two (an echo), to show queued events keep their order.
struct Doubler;
impl Layer for Doubler {
    fn name(&self) -> &'static str {
        "doubler"
    }
    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        if let Down::Cast(m) = ev {
            ctx.down(Down::Cast(m.clone()));
            ctx.count("doubled", 1);
            ctx.down(Down::Cast(m));
        } else {
            ctx.down(ev)
        }
    }
}

/// Emits a point-to-point message to itself when its timer fires.
struct Alarm {
    after: Duration,
}
impl Layer for Alarm {
    fn name(&self) -> &'static str {
        "alarm"
    }
    fn init(&mut self, ctx: &mut Ctx) {
        ctx.set_timer_after(TimerId(3), self.after);
    }
    fn timer(&mut self, id: TimerId, ctx: &mut Ctx) {
        assert_eq!(id, TimerId(3));
        ctx.count("fired", 1);
        let me = ctx.me();
        let m = ctx.new_msg(Bytes::from_static(b"ring"));
        ctx.down(Down::Send(me, m));
    }
}

fn me() -> MemberId {
    MemberId::new(1, 0)
}

fn cfg() -> StackConfig {
    StackConfig { me: me(), seed: 1, members: vec![me(), MemberId::new(2, 0)] }
}

fn recorders(log: &Log, names: &[&'static str]) -> Vec<Box<dyn Layer>> {
    names
        .iter()
        .map(|&name| Box::new(Recorder { name, log: log.clone() }) as Box<dyn Layer>)
        .collect()
}

#[test]
fn downcalls_run_top_to_bottom_and_upcalls_bottom_to_top() {
    let log = Log::default();
    let mut s = Stack::new(recorders(&log, &["a", "b", "c"]), cfg());
    s.join(Time::ZERO);
    log.lock().unwrap().clear();
    s.cast(Time::ZERO, Bytes::from_static(b"hi")).unwrap();
    let Some(NetOut::Cast(wire)) = (loop {
        match s.poll_net() {
            Some(NetOut::View(_)) => continue,
            other => break other,
        }
    }) else {
        panic!("no cast reached the transport")
    };
    s.receive(Time::ZERO, me(), true, wire.to_bytes());
    assert_eq!(
        *log.lock().unwrap(),
        ["c:down:cast", "b:down:cast", "a:down:cast", "a:up:cast", "b:up:cast", "c:up:cast"]
    );
    let evs: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(matches!(evs[0], AppEvent::View(ref v) if v.id == 1 && v.len() == 2));
    assert_eq!(
        evs[1],
        AppEvent::Deliver { from: me(), seq: 1, payload: Bytes::from_static(b"hi") }
    );
}

#[test]
fn events_emitted_by_one_layer_keep_their_order() {
    let log = Log::default();
    let mut layers = recorders(&log, &["bottom"]);
    layers.push(Box::new(Doubler));
    let mut s = Stack::new(layers, cfg());
    s.join(Time::ZERO);
    while s.poll_net().is_some() {}
    s.cast(Time::ZERO, Bytes::from_static(b"1")).unwrap();
    s.cast(Time::ZERO, Bytes::from_static(b"2")).unwrap();
    let bodies: Vec<Bytes> = std::iter::from_fn(|| s.poll_net())
        .map(|o| match o {
            NetOut::Cast(m) => m.to_bytes(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    // Each payload follows its one-byte cast number.
    assert_eq!(bodies, [&b"\x011"[..], b"\x011", b"\x022", b"\x022"]);
    assert_eq!(s.counter("doubler", "doubled"), 2);
}

#[test]
fn timers_fire_in_virtual_time_not_before() {
    let mut s = Stack::new(vec![Box::new(Alarm { after: Duration::from_millis(5) })], cfg());
    s.join(Time::from_millis(10));
    assert_eq!(s.next_timeout(), Some(Time::from_millis(15)));
    s.handle_timeout(Time::from_millis(14));
    assert_eq!(s.counter("alarm", "fired"), 0);
    assert!(std::iter::from_fn(|| s.poll_net()).all(|o| matches!(o, NetOut::View(_))));
    s.handle_timeout(Time::from_millis(15));
    assert_eq!(s.counter("alarm", "fired"), 1);
    assert!(matches!(s.poll_net(), Some(NetOut::Send(d, _)) if d == me()));
    assert_eq!(s.next_timeout(), None);
}

#[test]
fn casts_are_refused_before_join_and_numbered_after() {
    let mut s = Stack::new(vec![], cfg());
    assert_eq!(s.cast(Time::ZERO, Bytes::new()), Err(CastError::NotJoined));
    s.join(Time::ZERO);
    assert_eq!(s.cast(Time::ZERO, Bytes::new()), Ok(1));
    assert_eq!(s.cast(Time::ZERO, Bytes::new()), Ok(2));
    s.block_ok(Time::ZERO);
    assert_eq!(s.cast(Time::ZERO, Bytes::new()), Err(CastError::Blocked));
}

#[test]
fn malformed_application_header_is_dropped_and_counted() {
    let mut s = Stack::new(vec![], cfg());
    s.join(Time::ZERO);
    while s.poll_event().is_some() {}
    s.receive(Time::ZERO, MemberId::new(2, 0), true, Bytes::from_static(&[0xff; 11]));
    assert_eq!(s.poll_event(), None);
    assert!(s.counters().contains(&("stack", "malformed_dropped", 1)));
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn trace_has_the_fields_checkers_rely_on() {
    let buf = Shared::default();
    let mut s = Stack::new(vec![], cfg());
    s.set_trace(TraceWriter::new(me(), Box::new(buf.clone())));
    s.join(Time::from_millis(1));
    s.cast(Time::from_millis(2), Bytes::from_static(b"x")).unwrap();
    let Some(NetOut::Cast(m)) =
        std::iter::from_fn(|| s.poll_net()).find(|o| matches!(o, NetOut::Cast(_)))
    else {
        panic!("no cast")
    };
    s.receive(Time::from_millis(3), me(), true, m.to_bytes());
    s.end_trace();
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            r#"{"m":"m1.0","t":1000,"ev":"view","view":1,"members":["m1.0","m2.0"],"reason":"initial"}"#,
            r#"{"m":"m1.0","t":2000,"ev":"send","id":"m1.0#1","view":1}"#,
            r#"{"m":"m1.0","t":3000,"ev":"deliver","id":"m1.0#1","view":1}"#,
            r#"{"m":"m1.0","t":3000,"ev":"end"}"#,
        ]
    );
    for l in lines {
        serde_json::from_str::<serde_json::Value>(l).expect("valid JSON");
    }
}

/// Records, when it starts, the datagram room its context reports.
struct Room {
    header: usize,
    seen: Arc<Mutex<Vec<Option<usize>>>>,
}
impl Layer for Room {
    fn name(&self) -> &'static str {
        "room"
    }
    fn header_max(&self) -> usize {
        self.header
    }
    fn init(&mut self, ctx: &mut Ctx) {
        self.seen.lock().unwrap().push(ctx.datagram_room());
    }
}

fn rooms(max_datagram: Option<usize>) -> Vec<Option<usize>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let layers: Vec<Box<dyn Layer>> = [3, 10, 7]
        .into_iter()
        .map(|header| Box::new(Room { header, seen: seen.clone() }) as Box<dyn Layer>)
        .collect();
    let me = MemberId::new(1, 0);
    let mut s = Stack::new(layers, StackConfig { me, seed: 1, members: vec![me] });
    if let Some(m) = max_datagram {
        s.set_max_datagram(m);
    }
    s.join(Time::ZERO);
    let v = seen.lock().unwrap().clone();
    v
}

#[test]
fn each_layer_sees_the_datagram_room_left_by_the_headers_below_it() {
    // Bottom to top: nothing below the first layer, 3 bytes below the second, 13
    // below the third.
    assert_eq!(rooms(Some(1000)), vec![Some(1000), Some(997), Some(987)]);
    assert_eq!(rooms(Some(5)), vec![Some(5), Some(2), Some(0)]);
    assert_eq!(rooms(None), vec![None, None, None]);
}

/// Holds casts until the owner goes idle, then passes them on; logs its idle calls.
struct Corked {
    name: &'static str,
    held: Vec<Down>,
    log: Log,
}
impl Layer for Corked {
    fn name(&self) -> &'static str {
        self.name
    }
    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        match ev {
            Down::Cast(_) => {
                self.held.push(ev);
                ctx.call_when_idle();
            }
            other => ctx.down(other),
        }
    }
    fn idle(&mut self, ctx: &mut Ctx) {
        self.log.lock().unwrap().push(format!("{}:idle:{}", self.name, self.held.len()));
        for ev in self.held.drain(..) {
            ctx.down(ev);
        }
    }
}

#[test]
fn idle_reaches_the_layers_that_asked_top_to_bottom_once_per_request() {
    let log: Log = Arc::default();
    let corked = |name| Box::new(Corked { name, held: Vec::new(), log: log.clone() });
    let layers: Vec<Box<dyn Layer>> = vec![corked("low"), corked("high")];
    let me = MemberId::new(1, 0);
    let mut s = Stack::new(layers, StackConfig { me, seed: 1, members: vec![me] });
    s.join(Time::ZERO);
    while s.poll_net().is_some() {}
    assert!(!s.wants_idle());
    s.idle(Time::ZERO);
    assert!(log.lock().unwrap().is_empty(), "nobody asked");
    s.cast(Time::ZERO, Bytes::from_static(b"a")).unwrap();
    s.cast(Time::ZERO, Bytes::from_static(b"b")).unwrap();
    assert!(s.wants_idle());
    assert!(s.poll_net().is_none(), "held until idle");
    s.idle(Time::ZERO);
    // `high` lets both casts go; `low` holds them, asks again, and is called in the
    // same idle pass, being below.
    assert_eq!(*log.lock().unwrap(), vec!["high:idle:2", "low:idle:2"]);
    let mut out = 0;
    while let Some(o) = s.poll_net() {
        assert!(matches!(o, NetOut::Cast(_)));
        out += 1;
    }
    assert_eq!(out, 2);
    assert!(!s.wants_idle());
    s.idle(Time::ZERO);
    assert_eq!(log.lock().unwrap().len(), 2, "no request, no call");
}

/// Turns each cast into `n` numbered casts (a byte in front), more than the driver's
/// queue holds before it grows; going up, strips the number and logs it.
struct Fanout {
    n: u8,
    seen: Arc<Mutex<Vec<u8>>>,
}
impl Layer for Fanout {
    fn name(&self) -> &'static str {
        "fanout"
    }
    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        let Down::Cast(m) = ev else { return ctx.down(ev) };
        for i in 0..self.n {
            let mut copy = m.clone();
            copy.push_bytes(&[i]);
            ctx.down(Down::Cast(copy));
        }
    }
    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        let Up::Cast(from, mut m) = ev else { return ctx.up(ev) };
        self.seen.lock().unwrap().push(m.front()[0]);
        m.advance(1);
        ctx.up(Up::Cast(from, m))
    }
}

/// Passes everything on.
struct Plain;
impl Layer for Plain {
    fn name(&self) -> &'static str {
        "plain"
    }
}

#[test]
fn order_is_kept_when_the_queue_wraps_and_grows() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fanout = Fanout { n: 150, seen: seen.clone() };
    let mut s = Stack::new(vec![Box::new(Plain), Box::new(fanout), Box::new(Plain)], cfg());
    s.join(Time::ZERO);
    let numbers: Vec<u8> = (0..150).collect();
    for round in 0..3u8 {
        s.cast(Time::ZERO, Bytes::from(vec![round])).unwrap();
        let wire: Vec<Bytes> = std::iter::from_fn(|| s.poll_net())
            .filter_map(|o| match o {
                NetOut::Cast(m) => Some(m.to_bytes()),
                _ => None,
            })
            .collect();
        assert_eq!(wire.iter().map(|w| w[0]).collect::<Vec<_>>(), numbers, "down, round {round}");
        // And back up, one datagram at a time.
        for w in &wire {
            s.receive(Time::ZERO, me(), true, w.clone());
        }
        assert_eq!(std::mem::take(&mut *seen.lock().unwrap()), numbers, "up, round {round}");
        let delivered = std::iter::from_fn(|| s.poll_event())
            .filter(|e| matches!(e, AppEvent::Deliver { payload, .. } if payload[..] == [round]))
            .count();
        assert_eq!(delivered, 150);
    }
}

/// Counts how many of its kind were dropped.
struct Counted(Arc<AtomicUsize>);
impl AsRef<[u8]> for Counted {
    fn as_ref(&self) -> &[u8] {
        b"counted"
    }
}
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// On a cast, queues `n` messages of its own for the layer below, each over its own
/// counted buffer, then panics: the driver is left with events queued.
struct Burst {
    n: usize,
    drops: Arc<AtomicUsize>,
}
impl Layer for Burst {
    fn name(&self) -> &'static str {
        "burst"
    }
    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        if !matches!(ev, Down::Cast(_)) {
            return ctx.down(ev);
        }
        for _ in 0..self.n {
            let m = ctx.new_msg(Bytes::from_owner(Counted(self.drops.clone())));
            ctx.down(Down::Cast(m));
        }
        panic!("burst");
    }
}

#[test]
fn a_stack_dropped_with_events_queued_drops_each_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let n = 100; // beyond the queue's initial room: it grows
    let layers: Vec<Box<dyn Layer>> =
        vec![Box::new(Plain), Box::new(Burst { n, drops: drops.clone() })];
    let mut s = Stack::new(layers, cfg());
    s.join(Time::ZERO);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        s.cast(Time::ZERO, Bytes::from_static(b"x"))
    }));
    assert!(r.is_err());
    assert_eq!(drops.load(Ordering::SeqCst), 0, "nothing dropped while queued");
    drop(s);
    assert_eq!(drops.load(Ordering::SeqCst), n, "each queued message dropped once");
}
