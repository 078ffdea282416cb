//! A replicated counter map over the virtually synchronous stack (`stacks/vsync.ron`),
//! on real UDP multicast over loopback.
//!
//! Two members found the group and count; a third joins late and receives the map by
//! state transfer, atomically with the view that adds it; then everyone counts some
//! more. Virtual synchrony makes every member apply the same increments in the same
//! views, so all three end with identical maps.
//!
//! ```sh
//! cargo run --release -p stacks --example replicated_counter
//! ```

use stack_core::descriptor::Descriptor;
use stack_core::group::{GroupConfig, GroupHandle};
use stack_core::transport::TransportSpec;
use stack_core::{AppEvent, Bytes, CastError, MemberId, StackConfig};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use transports::Runtime;

/// One member: its handle on the group and its copy of the map.
struct Member {
    handle: GroupHandle,
    map: BTreeMap<String, u64>,
    view_len: usize,
}

fn encode(map: &BTreeMap<String, u64>) -> Bytes {
    let text: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Bytes::from(text.join("\n"))
}

fn decode(b: &[u8]) -> BTreeMap<String, u64> {
    String::from_utf8_lossy(b)
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

impl Member {
    fn start(rt: &Runtime, desc: &Descriptor, node: u32) -> Member {
        let layers = desc.build_layers(&layers::registry()).expect("layers build");
        let me = MemberId::new(node, 0);
        let cfg = GroupConfig::new(
            layers,
            desc.transport.clone(),
            desc.group_id(),
            StackConfig { me, seed: node as u64, members: vec![] },
        );
        let handle = rt.join(cfg).expect("join");
        Member { handle, map: BTreeMap::new(), view_len: 0 }
    }

    /// Applies every pending event: deliveries, views, flush and state transfer.
    fn pump(&mut self) {
        while let Ok(ev) = self.handle.try_recv() {
            match ev {
                AppEvent::Deliver { payload, .. } => {
                    *self.map.entry(String::from_utf8_lossy(&payload).into_owned()).or_default() +=
                        1;
                }
                AppEvent::View(v) => {
                    self.view_len = v.len();
                }
                AppEvent::Block => {
                    self.handle.block_ok();
                }
                AppEvent::StateRequest => self.handle.state_reply(encode(&self.map)),
                AppEvent::State(s) => self.map = decode(&s),
                _ => {}
            }
        }
    }

    fn count(&mut self, key: &str) {
        loop {
            self.pump();
            match self.handle.cast(Bytes::from(key.to_string())) {
                Ok(_) => return,
                Err(CastError::WouldBlock | CastError::Blocked | CastError::NotJoined) => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("cast: {e}"),
            }
        }
    }
}

/// Pumps every member until `done` holds or `limit` passes.
fn pump_until(ms: &mut [Member], limit: Duration, done: impl Fn(&[Member]) -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        ms.iter_mut().for_each(Member::pump);
        if done(ms) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Runs the scenario on `group` (a multicast `address:port` on loopback) and returns
/// every member's final map.
fn run(group: &str) -> Vec<BTreeMap<String, u64>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("vsync.ron");
    let mut desc = Descriptor::load(&path, &layers::registry()).expect("vsync.ron loads");
    if let TransportSpec::Udp(spec) = &mut desc.transport {
        spec.group = group.to_string();
    }
    desc.group = format!("counter-{group}");
    let rt = Runtime::start().expect("runtime");
    let mut ms = vec![Member::start(&rt, &desc, 1)];
    assert!(pump_until(&mut ms, Duration::from_secs(10), |m| m[0].view_len == 1), "no view");
    ms.push(Member::start(&rt, &desc, 2));
    assert!(pump_until(&mut ms, Duration::from_secs(10), |m| m.iter().all(|x| x.view_len == 2)));
    for _ in 0..100 {
        ms[0].count("a");
        ms[1].count("b");
    }
    assert!(pump_until(&mut ms, Duration::from_secs(10), |m| m.iter().all(|x| x
        .map
        .values()
        .sum::<u64>()
        == 200)));
    println!("two members counted to 200: {:?}", ms[0].map);

    ms.push(Member::start(&rt, &desc, 3));
    assert!(pump_until(&mut ms, Duration::from_secs(10), |m| m.iter().all(|x| x.view_len == 3)
        && m[2].map.values().sum::<u64>() == 200));
    println!("a third member joined and received {:?} by state transfer", ms[2].map);
    for (i, key) in ["a", "b", "c"].iter().enumerate() {
        for _ in 0..20 {
            ms[i].count(key);
        }
    }
    assert!(pump_until(&mut ms, Duration::from_secs(10), |m| m.iter().all(|x| x
        .map
        .values()
        .sum::<u64>()
        == 260)));
    let maps: Vec<_> = ms.iter().map(|m| m.map.clone()).collect();
    for m in &ms {
        m.handle.leave();
    }
    rt.stop();
    maps
}

fn main() {
    let maps = run("239.255.42.60:7460");
    for (i, m) in maps.iter().enumerate() {
        println!("member {}: {m:?}", i + 1);
    }
    println!("identical: {}", maps.windows(2).all(|w| w[0] == w[1]));
}

#[cfg(test)]
mod tests {
    #[test]
    fn members_including_a_late_joiner_end_with_identical_state() {
        let maps = super::run("239.255.42.61:7461");
        assert_eq!(maps.len(), 3);
        assert!(maps.windows(2).all(|w| w[0] == w[1]), "{maps:?}");
        let want: std::collections::BTreeMap<String, u64> =
            [("a".into(), 120), ("b".into(), 120), ("c".into(), 20)].into_iter().collect();
        assert_eq!(maps[0], want);
    }
}
