//! Reliable FIFO multicast from separate layers: the shipped `fifo` stack (bundle, nak,
//! frag, stable, flow) in the deterministic simulator, judged by the conformance
//! checkers and by the layers' own counters.
//!
//! Run the large cases in release: `cargo test --release -p stacks --test sim_fifo`.

use bytes::Bytes;
use conformance::{Property, Report, Traces};
use layers::bundle::BundleHdr;
use layers::nak::NakHdr;
use stack_core::descriptor::Descriptor;
use stack_core::packet::PacketHeader;
use stack_core::{Header, MemberId, Stack};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use transports::sim::{
    seed_from_env, Action, NetConfig, Sim, SimConfig, SlowReceiver, StopReason, Workload,
};
use transports::sim_assert;

/// The flow window of `stacks/fifo-sim.ron` (and `fifo.ron`), bytes.
const WINDOW: u64 = 1 << 20;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn descriptor(name: &str) -> Descriptor {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name);
    conformance::scenario::load(&path, &layers::registry()).expect("shipped descriptor loads")
}

/// A simulator whose members run `fifo-sim.ron`.
fn fifo_sim(cfg: SimConfig) -> Sim {
    let desc = descriptor("fifo-sim.ron");
    let registry = Arc::new(layers::registry());
    desc.build_layers(&registry).expect("layers build");
    Sim::new(
        cfg,
        Box::new(move |c| Stack::new(desc.build_layers(&registry).unwrap_or_default(), c)),
    )
}

fn judge(sim: &Sim) -> Report {
    let traces = Traces::parse(
        sim.traces()
            .into_iter()
            .map(|(name, bytes)| (name, String::from_utf8_lossy(&bytes).into_owned())),
    )
    .expect("traces parse");
    Report::new(&traces, &[Property::Integrity, Property::Fifo, Property::Liveness])
}

/// Every live member's gauge `layer.name`.
fn gauges(sim: &Sim, layer: &str, name: &str) -> Vec<u64> {
    (0..sim.node_count()).filter_map(|n| sim.stack(n)).map(|s| s.counter(layer, name)).collect()
}

/// Runs until every cast is delivered, checks delivery, then runs on with no traffic
/// until stability settles and checks that every retransmission and reassembly
/// buffer is empty.
fn deliver_all_then_drain(sim: &mut Sim, members: u64, messages: u64) {
    let stop = sim.run_until_quiet();
    let r = sim.report();
    sim_assert!(sim, stop == StopReason::AllDelivered, "stopped by {stop:?}");
    sim_assert!(sim, r.sent == members * messages);
    sim_assert!(sim, r.delivered == members * members * messages, "{r}");
    sim_assert!(sim, r.integrity_errors == 0);
    let report = judge(sim);
    sim_assert!(sim, report.ok(), "{}", conformance::summary_json(&report));
    // No more casts: stability gossip, acknowledgements and digests finish the job.
    sim.run_for_ms(2000);
    for (layer, gauge) in
        [("nak", "buffered_bytes"), ("nak", "buffered_msgs"), ("frag", "reassembly_bytes")]
    {
        let g = gauges(sim, layer, gauge);
        sim_assert!(sim, g.iter().all(|&v| v == 0), "{layer}.{gauge} after traffic: {g:?}");
    }
}

fn lossy() -> NetConfig {
    NetConfig { loss: 0.2, duplicate: 0.05, reorder: 0.2, ..NetConfig::default() }
}

#[test]
fn five_members_over_a_lossy_network_deliver_small_messages_exactly_once_in_order() {
    let seed = seed_from_env(11);
    let cfg = SimConfig {
        seed,
        nodes: 5,
        net: lossy(),
        workload: Workload::every(400, 64, 1000),
        ..SimConfig::default()
    };
    let mut sim = fifo_sim(cfg);
    deliver_all_then_drain(&mut sim, 5, 400);
}

#[test]
fn five_members_over_a_lossy_network_deliver_1_byte_to_200_kib_exactly_once_in_order() {
    let seed = seed_from_env(12);
    let cfg = SimConfig {
        seed,
        nodes: 5,
        net: lossy(),
        workload: Workload {
            messages: 24,
            min_size: 1,
            max_size: 200 << 10,
            interval_us: Some(5000),
            ..Workload::default()
        },
        ..SimConfig::default()
    };
    let mut sim = fifo_sim(cfg);
    deliver_all_then_drain(&mut sim, 5, 24);
    let r = sim.report();
    sim_assert!(sim, r.counters.get("frag.reassembled").copied().unwrap_or(0) > 0);
    println!(
        "sizes 1 B..200 KiB: {} casts delivered {} times, reassembly peak {} bytes, nak peak {} bytes",
        r.sent,
        r.delivered,
        r.peaks.get("frag.reassembly_peak").copied().unwrap_or(0),
        r.peaks.get("nak.buffered_bytes_peak").copied().unwrap_or(0)
    );
}

/// Longest time, in virtual milliseconds, any member went without a delivery while
/// casts it had not delivered existed, and the time of the last delivery.
fn stalls(sim: &mut Sim, nodes: u32, total_each: u64) -> (u64, u64) {
    let mut last = vec![(0u64, 0u64); nodes as usize];
    let mut worst = 0;
    while sim.step() {
        let now = sim.now().as_millis();
        for n in 0..nodes {
            let d = sim.delivered(sim.member(n).expect("node"));
            let (count, at) = &mut last[n as usize];
            if d != *count {
                worst = worst.max(now - *at);
                *count = d;
                *at = now;
            }
        }
        if last.iter().all(|(d, _)| *d == total_each) || now > 20_000 {
            break;
        }
    }
    (worst, last.iter().map(|(_, at)| *at).max().unwrap_or(0))
}

#[test]
fn recovery_after_loss_takes_a_small_multiple_of_the_nak_delay() {
    // The workload of `strata sim ... --loss 0.2 --dup 0.05 --reorder 0.2 --messages
    // 2000`: casts end at about 2 s of virtual time.
    let mut worst_all = 0;
    for seed in 1..=4 {
        let cfg = SimConfig {
            seed,
            nodes: 5,
            net: lossy(),
            workload: Workload::every(2000, 64, 1000),
            ..SimConfig::default()
        };
        let mut sim = fifo_sim(cfg);
        let (worst, last) = stalls(&mut sim, 5, 5 * 2000);
        println!("seed {seed}: longest stall {worst} ms, last delivery at {last} ms");
        sim_assert!(sim, sim.report().delivered == 5 * 5 * 2000);
        // Backed-off NAKs are at most `nak_max_ms` (80) apart and digests start 50 ms
        // after the last cast: a stall is a few lost retries, never seconds.
        sim_assert!(sim, worst < 600, "a member stalled {worst} ms");
        sim_assert!(sim, last < 3500, "last delivery at {last} ms");
        worst_all = worst_all.max(worst);
    }
    println!("longest stall over 4 seeds: {worst_all} ms");
}

#[test]
fn a_slow_receiver_keeps_the_senders_memory_bounded_by_the_flow_window() {
    let seed = seed_from_env(13);
    let cfg = SimConfig {
        seed,
        nodes: 3,
        workload: Workload { messages: 3000, ..Workload::flood(3000, 1000) },
        ..SimConfig::default()
    };
    let mut sim = fifo_sim(cfg);
    // Node 2 handles 20 datagrams per millisecond from a 256-datagram socket buffer:
    // far less than two flooding senders offer.
    sim.apply(Action::Slow(2, Some(SlowReceiver { per_ms: 20, queue: 256 })));
    deliver_all_then_drain(&mut sim, 3, 3000);
    let r = sim.report();
    let peak = r.peaks.get("nak.buffered_bytes_peak").copied().unwrap_or(0);
    let blocked = r.counters.get("flow.blocked").copied().unwrap_or(0);
    let all_bytes = 3 * 3000 * 1000u64;
    println!(
        "slow receiver: peak nak buffer {peak} bytes per member (window {WINDOW}, {all_bytes} \
         bytes cast in all), flow blocked {blocked} times, {} datagrams dropped at the slow \
         receiver's buffer",
        r.net.dropped_overflow
    );
    sim_assert!(sim, blocked > 0, "the window never closed");
    // A member holds every cast (its own and the others') until it is stable. Flow
    // keeps each sender at most a window, plus one queue of overdraft (8 messages),
    // ahead of what the slow receiver consumed; stability trails consumption by about
    // a gossip period (100 ms), in which the slow receiver takes at most 20 datagrams
    // of 1 KB per millisecond.
    let per_sender = WINDOW + 8 * 1000;
    let lag = 100 * 20 * 1000;
    let bound = 3 * per_sender + lag;
    sim_assert!(sim, peak <= bound, "peak {peak} over {bound}");
    sim_assert!(sim, peak < all_bytes / 2, "buffers are not freed while casts flow");
}

fn encode<H: Header>(h: &H) -> Vec<u8> {
    let mut v = vec![0u8; h.encoded_len()];
    h.encode(&mut v);
    v
}

/// A datagram as node `to` would receive it from `sender`: packet header, then the
/// stack's bytes.
fn datagram(group: u32, sender: MemberId, to: Option<MemberId>, body: &[&[u8]]) -> Bytes {
    let mut v = encode(&PacketHeader { group, sender, dest: to });
    for b in body {
        v.extend_from_slice(b);
    }
    Bytes::from(v)
}

#[test]
fn malformed_and_foreign_packets_are_dropped_and_counted() {
    let seed = seed_from_env(14);
    let cfg = SimConfig {
        seed,
        nodes: 3,
        net: NetConfig { corrupt: 0.05, loss: 0.05, ..NetConfig::default() },
        workload: Workload::every(200, 64, 1000),
        ..SimConfig::default()
    };
    let mut sim = fifo_sim(cfg);
    let (m1, stranger) = (MemberId::new(1, 0), MemberId::new(9, 0));
    let single = encode(&BundleHdr::Single);
    let injected = [
        // Not a packet at all (bad magic): the transport drops it.
        Bytes::from_static(b"\xff\xffnot a strata packet"),
        // Another group's packet.
        datagram(7, m1, None, &[&single, &encode(&NakHdr::Data { view: 1, seq: 0 }), b"x"]),
        // A packet of this group whose bundle tag is unknown.
        datagram(0, m1, None, &[&[0x7f, 1, 2, 3]]),
        // A bundle whose length prefix runs past the end.
        datagram(0, m1, None, &[&[1, 40, 1, 2]]),
        // A whole bundle but a nak tag that does not exist.
        datagram(0, m1, None, &[&single, &[0x7e, 0, 0]]),
        // A cast numbered by a member outside the view.
        datagram(0, stranger, None, &[&single, &encode(&NakHdr::Data { view: 1, seq: 0 }), b"x"]),
        // A cast of a view that does not exist.
        datagram(0, m1, None, &[&single, &encode(&NakHdr::Data { view: 42, seq: 0 }), b"x"]),
    ];
    for (i, d) in injected.iter().enumerate() {
        sim.schedule_ms(50 + i as u64, Action::Inject(0, d.clone()));
    }
    deliver_all_then_drain(&mut sim, 3, 200);
    let r = sim.report();
    let c = |k: &str| r.counters.get(k).copied().unwrap_or(0);
    let net = &r.net;
    println!(
        "dropped: {} malformed packets ({} corrupted in flight), {} foreign, \
         bundle {}, nak malformed {}, nak foreign {}, nak other view {}",
        net.dropped_malformed,
        net.corrupted,
        net.dropped_foreign,
        c("bundle.malformed_dropped"),
        c("nak.malformed_dropped"),
        c("nak.foreign_dropped"),
        c("nak.other_view_dropped")
    );
    sim_assert!(sim, net.corrupted > 0);
    sim_assert!(sim, net.dropped_malformed == net.corrupted + 1);
    sim_assert!(sim, net.dropped_foreign == 1);
    sim_assert!(sim, c("bundle.malformed_dropped") == 2);
    sim_assert!(sim, c("nak.malformed_dropped") == 1);
    sim_assert!(sim, c("nak.foreign_dropped") == 1);
    sim_assert!(sim, c("nak.other_view_dropped") == 1);
}

#[test]
fn strata_sim_on_the_shipped_fifo_stack_passes_its_checks() {
    let dir = std::env::temp_dir().join(format!("strata-fifo-traces-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(workspace())
        .args([
            "sim",
            "--stack",
            "stacks/fifo.ron",
            "--members",
            "5",
            "--loss",
            "0.2",
            "--dup",
            "0.05",
            "--reorder",
            "0.2",
            "--messages",
            "2000",
            "--seed",
            "1",
            "--check",
            "--trace-dir",
        ])
        .arg(&dir)
        .output()
        .expect("strata runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("\"ok\":true"), "{stdout}");
    assert!(stdout.contains("\"delivered\":50000"), "{stdout}");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("trace dir written")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    files.sort();
    assert_eq!(files, ["m0.0.jsonl", "m1.0.jsonl", "m2.0.jsonl", "m3.0.jsonl", "m4.0.jsonl"]);
    // The written traces pass the checkers on their own.
    let traces = Traces::from_dir(&dir).expect("traces read back");
    let report = Report::new(&traces, &[Property::Integrity, Property::Fifo, Property::Liveness]);
    assert!(report.ok(), "{}", conformance::summary_json(&report));
    let _ = std::fs::remove_dir_all(&dir);
}
