//! The simulator does what it says: one seed fixes a run, and each fault of the model
//! has the effect it claims. Stacks here have no layers or tiny test-only layers.

use stack_core::{Bytes, Ctx, Down, Layer, MemberId, Stack, Time, TimerId, Up, View, ViewReason};
use std::time::Duration;
use transports::sim::{
    seed_from_env, Action, Faults, NetConfig, Sim, SimConfig, SlowReceiver, StackFactory,
    StopReason, Workload,
};
use transports::sim_assert;

fn bare() -> StackFactory {
    Box::new(|c| Stack::new(Vec::new(), c))
}

fn cfg(seed: u64, nodes: u32, workload: Workload) -> SimConfig {
    SimConfig {
        seed,
        nodes,
        workload,
        deadline_ms: 10_000,
        max_events: 500_000,
        ..SimConfig::default()
    }
}

/// Deliveries of `from`'s casts in `at`'s trace.
fn delivers_from(sim: &Sim, at: &str, from: &str) -> usize {
    let (_, t) = sim.traces().into_iter().find(|(m, _)| m == at).expect("member has a trace");
    let pat = format!("\"ev\":\"deliver\",\"id\":\"{from}#");
    String::from_utf8(t).unwrap().lines().filter(|l| l.contains(&pat)).count()
}

fn trace_of(sim: &Sim, m: &str) -> String {
    let (_, t) = sim.traces().into_iter().find(|(n, _)| n == m).expect("member has a trace");
    String::from_utf8(t).unwrap()
}

/// Loss, duplication, reordering, a partition that heals and a crash with restart.
fn faulty_run(seed: u64) -> Sim {
    let mut c = cfg(seed, 4, Workload::every(40, 48, 3000));
    c.net = NetConfig { corrupt: 0.02, ..NetConfig::lossy(0.1, 0.1, 0.2) };
    c.faults = Faults {
        crashes: 1,
        restart: true,
        partitions: 1,
        window_ms: (5, 60),
        down_ms: (20, 50),
        ..Faults::default()
    };
    let mut sim = Sim::new(c, bare());
    sim.run_until_quiet();
    sim
}

#[test]
fn same_seed_same_traces_other_seed_other_faults() {
    let seed = seed_from_env(0x5eed);
    let a = faulty_run(seed);
    let b = faulty_run(seed);
    let (ra, rb) = (a.report(), b.report());
    sim_assert!(a, ra.net.dropped_loss > 0 && ra.net.duplicated > 0 && ra.net.reordered > 0);
    sim_assert!(a, ra.net.dropped_partition > 0 && ra.net.dropped_down > 0);
    sim_assert!(a, ra.per_member.keys().any(|m| m.ends_with(".1")));
    sim_assert!(a, a.trace_hash() == b.trace_hash(), "hash differs across replays: {rb}");
    assert_eq!(a.traces(), b.traces());
    assert_eq!(ra.to_string(), rb.to_string());
    let c = faulty_run(seed + 1);
    let rc = c.report();
    assert!(rc.net != ra.net || rc.trace_hash != ra.trace_hash, "{ra}\n{rc}");
    assert_ne!(rc.trace_hash, ra.trace_hash);
}

#[test]
fn perfect_network_delivers_every_cast_to_every_member() {
    let mut sim = Sim::new(cfg(3, 4, Workload::every(20, 64, 300)), bare());
    let stop = sim.run_until_quiet();
    let r = sim.report();
    sim_assert!(sim, stop == StopReason::AllDelivered, "stopped by {stop:?}");
    sim_assert!(sim, r.sent == 80 && r.integrity_errors == 0);
    for m in 0..4 {
        let me = sim.member(m).unwrap();
        sim_assert!(sim, sim.delivered(me) == 80, "{me}");
        for from in 0..4 {
            assert_eq!(delivers_from(&sim, &me.to_string(), &format!("m{from}.0")), 20);
        }
        assert!(trace_of(&sim, &me.to_string()).ends_with("\"ev\":\"end\"}\n"));
    }
    assert_eq!(r.net.dropped(), 0);
    assert_eq!(r.counter("stack.delivered"), 320);
    assert_eq!(
        r.views["m2.0"],
        (1, vec!["m0.0".into(), "m1.0".into(), "m2.0".into(), "m3.0".into()])
    );
}

#[test]
fn total_loss_delivers_nothing() {
    let mut c = cfg(4, 3, Workload::every(10, 16, 500));
    c.net.loss = 1.0;
    let mut sim = Sim::new(c.clone(), bare());
    // No one hears the others and nothing is left to happen: the run ends idle, not
    // with everything delivered.
    let stop = sim.run_until_quiet();
    sim_assert!(sim, stop == StopReason::Idle);
    for m in 0..3 {
        let me = sim.member(m).unwrap().to_string();
        for from in (0..3).filter(|&f| f != m) {
            sim_assert!(sim, delivers_from(&sim, &me, &format!("m{from}.0")) == 0);
        }
        // The loopback is exempt by default: a member hears itself.
        assert_eq!(delivers_from(&sim, &me, &me), 10);
    }
    assert_eq!(sim.stats().dropped_loss, 30 * 2);

    c.faults_on_loopback = true;
    let mut sim = Sim::new(c, bare());
    sim.run_until_quiet();
    let r = sim.report();
    sim_assert!(sim, r.delivered == 0 && r.sent == 30 && r.net.received == 0);
    assert_eq!(r.net.dropped_loss, 90);
}

#[test]
fn duplication_delivers_twice_on_a_stack_without_layers() {
    let mut c = cfg(5, 3, Workload::every(10, 16, 500));
    c.net.duplicate = 1.0;
    let mut sim = Sim::new(c, bare());
    sim.run_until_quiet();
    for m in 0..3 {
        let me = sim.member(m).unwrap();
        // Own casts once (loopback), the others' twice.
        sim_assert!(sim, sim.delivered(me) == 10 + 2 * 2 * 10, "{me}");
    }
    assert_eq!(sim.stats().duplicated, 3 * 2 * 10);
    assert_eq!(sim.integrity_errors(), 0);
}

#[test]
fn reordering_lets_later_packets_overtake() {
    let mut c = cfg(6, 2, Workload::every(50, 16, 100));
    c.net =
        NetConfig { reorder: 0.3, min_delay_us: 500, max_delay_us: 500, ..NetConfig::default() };
    let mut sim = Sim::new(c, bare());
    sim.run_until_quiet();
    let t = trace_of(&sim, "m1.0");
    let seqs: Vec<u64> = t
        .lines()
        .filter_map(|l| l.split("\"id\":\"m0.0#").nth(1))
        .map(|s| s.split('"').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(seqs.len(), 50);
    sim_assert!(sim, seqs.windows(2).any(|w| w[0] > w[1]), "in order: {seqs:?}");
}

#[test]
fn one_way_partition_blocks_one_direction_only() {
    let mut sim = Sim::new(cfg(7, 3, Workload::every(10, 16, 500)), bare());
    sim.apply(Action::PartitionOneWay(vec![0], vec![1]));
    sim.run_until_quiet();
    sim_assert!(sim, delivers_from(&sim, "m1.0", "m0.0") == 0);
    sim_assert!(sim, delivers_from(&sim, "m0.0", "m1.0") == 10);
    assert_eq!(delivers_from(&sim, "m2.0", "m0.0"), 10);
    assert_eq!(delivers_from(&sim, "m1.0", "m2.0"), 10);
    assert_eq!(sim.stats().dropped_partition, 10);
}

#[test]
fn two_way_partition_heals() {
    let mut sim = Sim::new(cfg(8, 2, Workload::every(40, 16, 1000)), bare());
    sim.apply(Action::Partition(vec![0], vec![1]));
    sim.schedule_ms(20, Action::Heal(vec![0], vec![1]));
    sim.run_until_quiet();
    let (a, b) = (delivers_from(&sim, "m1.0", "m0.0"), delivers_from(&sim, "m0.0", "m1.0"));
    sim_assert!(sim, a > 10 && a < 40 && b > 10 && b < 40, "{a} {b}");
}

#[test]
fn crash_stops_a_node_and_restart_runs_a_new_incarnation() {
    let mut sim = Sim::new(cfg(9, 3, Workload::every(40, 16, 1000)), bare());
    sim.schedule_ms(10, Action::Crash(2));
    sim.run_until(Time::from_millis(25));
    sim_assert!(sim, !sim.is_live(2));
    let sent = sim.sent_by(2);
    sim_assert!(sim, sent > 0 && sent < 40, "crashed node sent {sent}");
    let at_crash = trace_of(&sim, "m2.0");
    sim.schedule_ms(30, Action::Restart(2));
    sim.run_until_quiet();
    let r = sim.report();
    // The crashed incarnation wrote nothing more, and no end line.
    assert_eq!(trace_of(&sim, "m2.0"), at_crash);
    assert!(!at_crash.contains("\"ev\":\"end\""));
    sim_assert!(sim, r.net.dropped_down > 0);
    assert_eq!(sim.member(2), Some(MemberId::new(2, 1)));
    let new = trace_of(&sim, "m2.1");
    assert!(new.starts_with("{\"m\":\"m2.1\""), "{new}");
    assert!(new.contains("\"ev\":\"view\"") && new.contains("\"id\":\"m2.1#40\""));
    assert!(r.views.contains_key("m2.1") && !r.views.contains_key("m2.0"));
    assert_eq!(delivers_from(&sim, "m0.0", "m2.1"), 40);
}

#[test]
fn slow_receiver_drops_beyond_its_queue_bound() {
    let mut sim = Sim::new(cfg(10, 3, Workload::flood(100, 16)), bare());
    sim.apply(Action::Slow(1, Some(SlowReceiver { per_ms: 2, queue: 8 })));
    sim.run_until_quiet();
    let r = sim.report();
    let slow = sim.delivered(MemberId::new(1, 0));
    sim_assert!(sim, r.net.dropped_overflow > 0);
    sim_assert!(sim, slow < 300 && slow as u64 + r.net.dropped_overflow == 300, "{slow}");
    assert_eq!(sim.delivered(MemberId::new(0, 0)), 300);
}

#[test]
fn damaged_and_foreign_packets_are_dropped_and_counted() {
    let mut c = cfg(11, 3, Workload::every(30, 32, 300));
    c.net.corrupt = 0.3;
    let mut sim = Sim::new(c, bare());
    sim.apply(Action::Inject(0, Bytes::from_static(b"garbage")));
    let mut foreign = vec![b'S', b't', 1, 0, 0, 0, 0, 9];
    foreign.extend_from_slice(&MemberId::new(1, 0).0.to_be_bytes());
    foreign.push(1);
    sim.apply(Action::Inject(0, Bytes::from(foreign)));
    sim.run_until_quiet();
    let r = sim.report();
    sim_assert!(sim, r.net.corrupted > 0 && r.net.dropped_malformed == r.net.corrupted + 1);
    sim_assert!(sim, r.net.dropped_foreign == 1 && r.integrity_errors == 0);
    assert_eq!(r.delivered + r.net.corrupted, 3 * 90);
}

#[test]
fn random_schedule_with_joins_and_leaves_runs_and_replays() {
    let run = || {
        let mut c = cfg(12, 4, Workload::every(20, 24, 1000));
        c.faults = Faults {
            crashes: 1,
            restart: true,
            partitions: 1,
            joins: 2,
            leaves: 1,
            ..Faults::default()
        };
        let mut sim = Sim::new(c, bare());
        sim.run_until_quiet();
        sim
    };
    let (a, b) = (run(), run());
    let r = a.report();
    sim_assert!(a, r.per_member.contains_key("m4.0") && r.per_member.contains_key("m5.0"));
    sim_assert!(a, a.node_count() == 6 && r.integrity_errors == 0);
    assert_eq!(a.trace_hash(), b.trace_hash());
}

#[test]
fn traces_are_written_as_jsonl_files() {
    let mut sim = Sim::new(cfg(13, 2, Workload::every(3, 16, 500)), bare());
    sim.run_until_quiet();
    let dir = std::env::temp_dir().join(format!("strata-sim-{}", std::process::id()));
    sim.write_traces(&dir).unwrap();
    let a = std::fs::read(dir.join("m0.0.jsonl")).unwrap();
    assert_eq!(a, sim.traces()[0].1);
    assert!(dir.join("m1.0.jsonl").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn report_names_the_seed_and_how_to_replay() {
    let mut sim = Sim::new(cfg(0xabc, 2, Workload::every(1, 16, 500)), bare());
    sim.run_until_quiet();
    let text = sim.report().to_string();
    assert!(text.starts_with("sim seed 2748 (0xabc); replay: STRATA_SIM_SEED=2748"), "{text}");
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sim_assert!(sim, sim.now() == Time::ZERO, "virtual time moved");
    }));
    let msg = *failed.unwrap_err().downcast::<String>().unwrap();
    assert!(msg.starts_with("virtual time moved\nsim seed 2748"), "{msg}");
}

// ----- test-only layers -----

/// Every `period` fires its timer, `times` times, sends itself a datagram each time
/// and counts the echoes, recording the virtual time of the last one.
struct Ticker {
    period: Duration,
    times: u64,
    fired: u64,
}

impl Layer for Ticker {
    fn name(&self) -> &'static str {
        "ticker"
    }
    fn header_max(&self) -> usize {
        1
    }
    fn init(&mut self, ctx: &mut Ctx) {
        ctx.set_timer_after(TimerId(0), self.period);
    }
    fn timer(&mut self, _: TimerId, ctx: &mut Ctx) {
        self.fired += 1;
        ctx.count("fired", 1);
        ctx.gauge("fired_at_ms", ctx.now().as_millis());
        let me = ctx.me();
        let mut m = ctx.new_msg(Bytes::from_static(b"tick"));
        m.push_bytes(&[1]);
        ctx.down(Down::Send(me, m));
        if self.fired < self.times {
            ctx.set_timer_after(TimerId(0), self.period);
        }
    }
    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        match ev {
            Down::Cast(mut m) => {
                m.push_bytes(&[0]);
                ctx.down(Down::Cast(m))
            }
            ev => ctx.down(ev),
        }
    }
    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        match ev {
            Up::Cast(from, mut m) | Up::Send(from, mut m) => match m.front().first() {
                Some(0) => {
                    m.advance(1);
                    ctx.up(Up::Cast(from, m))
                }
                Some(1) => {
                    ctx.count("echoes", 1);
                    ctx.gauge("echo_at_us", ctx.now().as_nanos() / 1000);
                }
                _ => ctx.count("malformed_dropped", 1),
            },
            ev => ctx.up(ev),
        }
    }
}

#[test]
fn timers_fire_in_virtual_time() {
    let mut c = cfg(14, 2, Workload::none());
    c.net = NetConfig { min_delay_us: 300, max_delay_us: 300, ..NetConfig::default() };
    let f: StackFactory = Box::new(|c| {
        let l = Ticker { period: Duration::from_millis(40), times: 3, fired: 0 };
        Stack::new(vec![Box::new(l)], c)
    });
    let mut sim = Sim::new(c, f);
    sim.run_until(Time::from_millis(100));
    let r = sim.report();
    sim_assert!(sim, r.counter("ticker.fired") == 2 * 2, "two periods of 40 ms in 100 ms");
    // Nothing is cast, so the group is quiet at once: run to a time instead.
    sim.run_until(Time::from_millis(1000));
    let r = sim.report();
    sim_assert!(sim, r.counter("ticker.fired") == 3 * 2 && r.counter("ticker.echoes") == 3 * 2);
    let s = sim.stack(0).unwrap();
    assert_eq!(s.counter("ticker", "fired_at_ms"), 120);
    assert_eq!(s.counter("ticker", "echo_at_us"), 120_300);
    assert!(sim.events() < 100, "{} events", sim.events());
}

#[test]
fn run_with_periodic_timers_settles_when_nothing_more_is_delivered() {
    let mut c = cfg(18, 3, Workload::every(10, 16, 1000));
    c.net.loss = 0.5;
    c.settle_ms = 200;
    let f: StackFactory = Box::new(|c| {
        let l = Ticker { period: Duration::from_millis(10), times: u64::MAX, fired: 0 };
        Stack::new(vec![Box::new(l)], c)
    });
    let mut sim = Sim::new(c, f);
    let stop = sim.run_until_quiet();
    let r = sim.report();
    sim_assert!(sim, stop == StopReason::Settled && r.sent == 30 && r.delivered < 90);
    // The last cast leaves by ~11 ms and arrives by ~13 ms; then 200 ms of silence.
    sim_assert!(sim, (200..=215).contains(&r.virtual_ms), "{}", r.virtual_ms);
    sim_assert!(sim, r.counter("ticker.fired") >= 3 * 20);
}

/// Closes the flow window after every 3 casts and reopens it 5 ms later; blocks the
/// view once at 20 ms and installs view 2 when the application answers. Counts the
/// answers it gets.
struct Gate {
    casts: u64,
    blocked: bool,
}

impl Layer for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }
    fn init(&mut self, ctx: &mut Ctx) {
        ctx.set_timer_after(TimerId(1), Duration::from_millis(20));
    }
    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        match ev {
            Down::Cast(m) => {
                if self.blocked {
                    ctx.count("cast_while_blocked", 1);
                }
                self.casts += 1;
                ctx.down(Down::Cast(m));
                if self.casts.is_multiple_of(3) {
                    ctx.up(Up::Flow { open: false });
                    ctx.set_timer_after(TimerId(0), Duration::from_millis(5));
                }
            }
            Down::BlockOk => {
                ctx.count("block_ok", 1);
                let me = ctx.me();
                let v = View::new(2, vec![me], ViewReason::Join);
                ctx.up(Up::View(v));
                ctx.up(Up::StateRequest);
                self.blocked = false;
            }
            Down::StateReply(s) => {
                ctx.count("state_reply", 1);
                ctx.gauge("state_len", s.len() as u64);
            }
            ev => ctx.down(ev),
        }
    }
    fn timer(&mut self, id: TimerId, ctx: &mut Ctx) {
        match id {
            TimerId(0) => ctx.up(Up::Flow { open: true }),
            _ => {
                self.blocked = true;
                ctx.up(Up::Block)
            }
        }
    }
}

#[test]
fn workload_waits_out_closed_windows_and_blocks_and_drops_nothing() {
    let f: StackFactory =
        Box::new(|c| Stack::new(vec![Box::new(Gate { casts: 0, blocked: false })], c));
    let mut sim = Sim::new(cfg(15, 2, Workload::flood(30, 16)), f);
    sim.run_until_quiet();
    let r = sim.report();
    sim_assert!(sim, r.sent == 60 && r.integrity_errors == 0);
    sim_assert!(sim, r.counter("gate.block_ok") == 2 && r.counter("gate.state_reply") == 2);
    sim_assert!(sim, r.counter("gate.cast_while_blocked") == 0);
    assert_eq!(r.counter("gate.state_len"), 2 * 16);
    // Flooding 30 casts at 3 per 5 ms window takes ~45 virtual ms.
    sim_assert!(sim, r.virtual_ms >= 45, "{}", r.virtual_ms);
    assert_eq!(r.views["m0.0"].0, 2);
}

/// Answers `Leave` with `Exit`; member `m1.0` is excluded (`Exit`) at 10 ms; at 30 ms
/// every member sends one datagram to `m1.0`.
struct Exiter;

impl Layer for Exiter {
    fn name(&self) -> &'static str {
        "exiter"
    }
    fn init(&mut self, ctx: &mut Ctx) {
        if ctx.me() == MemberId::new(1, 0) {
            ctx.set_timer_after(TimerId(0), Duration::from_millis(10));
        }
        ctx.set_timer_after(TimerId(1), Duration::from_millis(30));
    }
    fn timer(&mut self, id: TimerId, ctx: &mut Ctx) {
        match id {
            TimerId(0) => ctx.up(Up::Exit),
            _ => {
                let m = ctx.new_msg(Bytes::from_static(b"to the old incarnation"));
                ctx.down(Down::Send(MemberId::new(1, 0), m));
            }
        }
    }
    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        match ev {
            Down::Leave => ctx.up(Up::Exit),
            ev => ctx.down(ev),
        }
    }
    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        if let Up::Send(..) = ev {
            ctx.count("sends_received", 1);
        }
        ctx.up(ev)
    }
}

#[test]
fn excluded_member_rejoins_as_new_incarnation_and_leaver_stays_out() {
    let mut c = cfg(16, 3, Workload::none());
    c.rejoin_ms = 5;
    let f: StackFactory = Box::new(|c| Stack::new(vec![Box::new(Exiter)], c));
    let mut sim = Sim::new(c, f);
    sim.schedule_ms(12, Action::Leave(2));
    sim.run_until(Time::from_millis(100));
    let r = sim.report();
    // m1.0 was excluded at 10 ms and came back as m1.1 at 15 ms.
    sim_assert!(sim, sim.member(1) == Some(MemberId::new(1, 1)) && sim.is_live(1));
    // m2.0 left cleanly and is not restarted.
    sim_assert!(sim, sim.member(2) == Some(MemberId::new(2, 0)) && !sim.is_live(2));
    // Sends to m1.0 reach node 1, which runs m1.1 by then: dropped as stale (from
    // m0.0 at 30 ms and from m1.1, started at 15 ms, at 45 ms; m2.0 has left).
    sim_assert!(sim, r.net.dropped_stale_dest == 2 && r.counter("exiter.sends_received") == 0);
    assert!(!trace_of(&sim, "m1.0").contains("\"ev\":\"end\""));
    assert_eq!(r.views.keys().cloned().collect::<Vec<_>>(), ["m0.0", "m1.1"]);
}

/// Reports a per-member `queue_peak` and `buffered_bytes` of `10 * (node + 1)`.
struct Gauges;

impl Layer for Gauges {
    fn name(&self) -> &'static str {
        "gauges"
    }
    fn init(&mut self, ctx: &mut Ctx) {
        let v = 10 * (ctx.me().node() as u64 + 1);
        ctx.peak("queue_peak", v);
        ctx.gauge("buffered_bytes", v);
        ctx.count("inits", 1);
    }
}

#[test]
fn report_sums_counters_and_takes_the_max_of_peaks() {
    let f: StackFactory = Box::new(|c| Stack::new(vec![Box::new(Gauges)], c));
    let mut sim = Sim::new(cfg(17, 3, Workload::none()), f);
    sim.schedule_ms(1, Action::Crash(2));
    sim.run_until_quiet();
    let r = sim.report();
    // The crashed member's counters are kept as they were when it crashed.
    assert_eq!(r.counter("gauges.inits"), 3);
    assert_eq!(r.counter("gauges.buffered_bytes"), 10 + 20 + 30);
    assert_eq!(r.peaks["gauges.queue_peak"], 30);
    assert_eq!(r.peaks["gauges.buffered_bytes"], 30);
    assert!(!r.peaks.contains_key("gauges.inits"));
}

#[test]
fn a_sim_can_run_on_another_thread() {
    fn is_send<T: Send>(_: &T) {}
    let sim = Sim::new(cfg(19, 2, Workload::every(2, 16, 500)), bare());
    is_send(&sim);
    let r = std::thread::spawn(move || {
        let mut sim = sim;
        sim.run_until_quiet();
        sim.report().delivered
    });
    assert_eq!(r.join().unwrap(), 8);
}

/// Not a check: prints how fast the simulator runs (`--ignored --nocapture`).
#[test]
#[ignore]
fn speed() {
    let mut c = cfg(20, 10, Workload::flood(1000, 64));
    c.net = NetConfig::lossy(0.01, 0.01, 0.05);
    c.max_events = 10_000_000;
    let mut sim = Sim::new(c, bare());
    let t = std::time::Instant::now();
    sim.run_until_quiet();
    let dt = t.elapsed();
    let r = sim.report();
    println!(
        "{} events, {} deliveries in {:?}: {:.0} events/s",
        r.events,
        r.delivered,
        dt,
        r.events as f64 / dt.as_secs_f64()
    );
}
