//! The network-namespace test bed itself: multicast between hosts, random
//! loss, a cut and its healing, and complete removal.
//!
//! The senders and receivers are this test binary re-executed inside a host
//! (the ignored test `netns_child` is their entry point, selected by the
//! `NETNS_HARNESS_ROLE` environment variable). Needs root, `ip` and `nft`;
//! otherwise the test prints why and skips.

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use conformance::netns::{host_addr, wait_bounded, Hosts, NetnsError, TEST_GROUP};

const ROLE_ENV: &str = "NETNS_HARNESS_ROLE";
const HOST_ENV: &str = "NETNS_HARNESS_HOST";
const TAG_ENV: &str = "NETNS_HARNESS_TAG";
const DIR_ENV: &str = "NETNS_HARNESS_DIR";

const PORT: u16 = 47_701;
/// Datagrams each sender sends per phase.
const COUNT: u32 = 400;
/// Pause between two datagrams of a sender (400 take about 0.25 s).
const GAP: Duration = Duration::from_micros(500);
/// A receiver gives up on its own after this long (if never told to stop).
const RECEIVER_LIMIT: Duration = Duration::from_secs(20);
/// Time for a child to start, or to finish after being told to.
const CHILD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for datagrams still in flight after the senders exit.
const DRAIN: Duration = Duration::from_millis(200);

/// Entry point of the senders and receivers; does nothing when run
/// directly.
#[test]
#[ignore = "entry point of the processes netns_harness starts inside hosts"]
fn netns_child() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    let env = |name| std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"));
    let host: usize = env(HOST_ENV).parse().expect("host index");
    let tag = env(TAG_ENV);
    let dir = PathBuf::from(env(DIR_ENV));
    match role.as_str() {
        "send" => send(host, &tag),
        "recv" => receive(host, &tag, &dir),
        other => panic!("unknown role {other}"),
    }
}

/// Sends `COUNT` datagrams `"<tag> <host> <seq>"` to the test group from
/// host `host`; send errors (a cut host) are ignored.
fn send(host: usize, tag: &str) {
    let sock = UdpSocket::bind(SocketAddrV4::new(host_addr(host), 0)).expect("bind sender");
    sock.set_multicast_ttl_v4(1).expect("ttl");
    sock.set_multicast_loop_v4(false).expect("loop");
    let to = SocketAddrV4::new(TEST_GROUP, PORT);
    for seq in 0..COUNT {
        let _ = sock.send_to(format!("{tag} {host} {seq}").as_bytes(), to);
        thread::sleep(GAP);
    }
}

/// Joins the test group on host `host`'s interface, writes the ready file,
/// counts distinct datagrams of phase `tag` per sender until the stop file
/// appears, then writes `"<sender> <count>"` lines to the counts file.
fn receive(host: usize, tag: &str, dir: &Path) {
    let sock =
        UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT)).expect("bind receiver");
    sock.join_multicast_v4(&TEST_GROUP, &host_addr(host)).expect("join group");
    sock.set_read_timeout(Some(Duration::from_millis(20))).expect("timeout");
    fs::write(ready_file(dir, tag, host), "").expect("ready file");
    let stop = stop_file(dir, tag);
    let start = Instant::now();
    let mut seen: BTreeMap<usize, Vec<bool>> = BTreeMap::new();
    let mut buf = [0u8; 128];
    while !stop.exists() && start.elapsed() < RECEIVER_LIMIT {
        let Ok(len) = sock.recv(&mut buf) else {
            continue;
        };
        let Ok(text) = std::str::from_utf8(&buf[..len]) else {
            continue;
        };
        let mut words = text.split(' ');
        if words.next() != Some(tag) {
            continue;
        }
        let (Some(Ok(from)), Some(Ok(seq))) =
            (words.next().map(str::parse::<usize>), words.next().map(str::parse::<u32>))
        else {
            continue;
        };
        if seq < COUNT {
            seen.entry(from).or_insert_with(|| vec![false; COUNT as usize])[seq as usize] = true;
        }
    }
    let mut out = String::new();
    for (from, seqs) in &seen {
        out += &format!("{from} {}\n", seqs.iter().filter(|&&s| s).count());
    }
    let file = counts_file(dir, tag, host);
    let tmp = file.with_extension("tmp");
    fs::write(&tmp, out).expect("counts file");
    fs::rename(tmp, file).expect("counts file");
}

fn ready_file(dir: &Path, tag: &str, host: usize) -> PathBuf {
    dir.join(format!("{tag}-h{host}.ready"))
}

fn counts_file(dir: &Path, tag: &str, host: usize) -> PathBuf {
    dir.join(format!("{tag}-h{host}.counts"))
}

fn stop_file(dir: &Path, tag: &str) -> PathBuf {
    dir.join(format!("{tag}.stop"))
}

fn log_file(dir: &Path, tag: &str, role: &str, host: usize) -> PathBuf {
    dir.join(format!("{tag}-{role}-h{host}.log"))
}

/// Starts this test binary as `role` inside host `host`, its output to a
/// log file.
fn start_child(hosts: &Hosts, dir: &Path, tag: &str, role: &str, host: usize) -> Child {
    let exe = std::env::current_exe().expect("test binary path");
    let log = fs::File::create(log_file(dir, tag, role, host)).expect("log file");
    hosts
        .command(host, exe)
        .args(["netns_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .env(HOST_ENV, host.to_string())
        .env(TAG_ENV, tag)
        .env(DIR_ENV, dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("start child")
}

fn read_log(dir: &Path, tag: &str, role: &str, host: usize) -> String {
    fs::read_to_string(log_file(dir, tag, role, host)).unwrap_or_default()
}

/// Datagrams received, by (receiver, sender).
type Counts = BTreeMap<(usize, usize), u32>;

/// One phase: receivers on every host, then `senders` each send `COUNT`
/// datagrams; returns what each receiver got from each other host.
fn phase(hosts: &Hosts, dir: &Path, tag: &str, senders: &[usize]) -> Counts {
    let receivers: Vec<usize> = (1..=hosts.len()).collect();
    let mut recv_children: Vec<(usize, Child)> =
        receivers.iter().map(|&h| (h, start_child(hosts, dir, tag, "recv", h))).collect();

    let deadline = Instant::now() + CHILD_TIMEOUT;
    for &h in &receivers {
        while !ready_file(dir, tag, h).exists() {
            assert!(
                Instant::now() < deadline,
                "{tag}: receiver on host {h} not ready within {CHILD_TIMEOUT:?}; log:\n{}",
                read_log(dir, tag, "recv", h)
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    let send_children: Vec<(usize, Child)> =
        senders.iter().map(|&h| (h, start_child(hosts, dir, tag, "send", h))).collect();
    for (h, mut child) in send_children {
        let status = wait_bounded(&mut child, CHILD_TIMEOUT).expect("wait sender");
        assert!(
            status.is_some_and(|s| s.success()),
            "{tag}: sender on host {h} failed ({status:?}); log:\n{}",
            read_log(dir, tag, "send", h)
        );
    }

    thread::sleep(DRAIN);
    fs::write(stop_file(dir, tag), "").expect("stop file");
    let mut counts = Counts::new();
    for (h, child) in &mut recv_children {
        let status = wait_bounded(child, CHILD_TIMEOUT).expect("wait receiver");
        assert!(
            status.is_some_and(|s| s.success()),
            "{tag}: receiver on host {h} failed ({status:?}); log:\n{}",
            read_log(dir, tag, "recv", *h)
        );
        let text = fs::read_to_string(counts_file(dir, tag, *h)).expect("counts file");
        for line in text.lines() {
            let (from, n) = line.split_once(' ').expect("counts line");
            counts.insert((*h, from.parse().unwrap()), n.parse().unwrap());
        }
    }
    for &r in &receivers {
        for &s in senders {
            if r != s {
                counts.entry((r, s)).or_insert(0);
            }
        }
    }
    eprintln!("{tag}: (receiver, sender) -> datagrams: {counts:?}");
    counts
}

/// Lines of `ip` output in the root namespace that mention the test subnet.
fn root_mentions_of_subnet() -> Vec<String> {
    let mut found = Vec::new();
    for args in [&["-o", "addr", "show"][..], &["route", "show", "table", "all"]] {
        let out = Command::new("ip").args(args).output().expect("ip");
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains("10.213.0."))
                .map(str::to_owned),
        );
    }
    found
}

fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with(&format!("{prefix}-")))
        .map(str::to_owned)
        .collect()
}

/// Removes the scratch directory on every exit path.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// At least 95% of the datagrams arrived.
fn full(n: u32) -> bool {
    n >= COUNT * 95 / 100
}

#[test]
fn netns_harness() {
    let started = Instant::now();
    let hosts = match Hosts::up(3) {
        Ok(hosts) => hosts,
        Err(NetnsError::Skip(reason)) => {
            eprintln!("skip: netns_harness: {reason}");
            return;
        }
        Err(e) => panic!("bringing up the test bed: {e}"),
    };
    let prefix = hosts.prefix().to_owned();
    assert_eq!(namespaces_with_prefix(&prefix).len(), 4, "3 hosts + switch");
    assert_eq!(
        root_mentions_of_subnet(),
        Vec::<String>::new(),
        "the root namespace must not see the test subnet"
    );
    let scratch = ScratchDir(std::env::temp_dir().join(format!("strata-{prefix}")));
    fs::create_dir_all(&scratch.0).expect("scratch dir");
    let dir = scratch.0.as_path();
    let senders = [1, 3];

    // Multicast from hosts 1 and 3 reaches every other host.
    let c = phase(&hosts, dir, "base", &senders);
    assert!(c.values().all(|&n| full(n)), "base: {c:?}");

    // 50% loss into host 2: it gets roughly half; the others are untouched.
    hosts.loss(2, 50).expect("loss 2 50");
    let c = phase(&hosts, dir, "loss", &senders);
    let (lo, hi) = (COUNT * 20 / 100, COUNT * 80 / 100);
    for s in senders {
        let n = c[&(2, s)];
        assert!((lo..=hi).contains(&n), "loss: host 2 got {n} of {COUNT} from {s}: {c:?}");
    }
    assert!(full(c[&(1, 3)]) && full(c[&(3, 1)]), "loss: {c:?}");

    // Host 3 cut off: it gets nothing and nothing it sends arrives; hosts 1
    // and 2 still talk (and host 2's loss is gone).
    hosts.loss(2, 0).expect("loss 2 0");
    hosts.cut(3).expect("cut 3");
    let c = phase(&hosts, dir, "cut", &senders);
    for pair in [(3, 1), (1, 3), (2, 3)] {
        assert_eq!(c[&pair], 0, "cut: {pair:?} in {c:?}");
    }
    assert!(full(c[&(2, 1)]), "cut: {c:?}");

    // Healed: everything flows again.
    hosts.heal(3).expect("heal 3");
    let c = phase(&hosts, dir, "healed", &senders);
    assert!(c.values().all(|&n| full(n)), "healed: {c:?}");

    hosts.down().expect("down");
    assert_eq!(namespaces_with_prefix(&prefix), Vec::<String>::new());
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}
