//! One process, member of two groups at once, each with its own stack, over one
//! socket.
//!
//! Group `alpha` runs reliable FIFO with bundling, fragmentation, stability and flow
//! control; group `beta` runs just `nak` and `frag`. Both name the same multicast
//! address, so the runtime opens one socket and tells the groups' datagrams apart by
//! the group id in the packet header. Two members (`x`, `y`) join each group; each
//! casts in both; every member must deliver exactly its own group's casts.
//!
//! ```text
//! cargo run -p stacks --example two_groups [GROUP_ADDRESS]
//! ```

use stack_core::descriptor::Descriptor;
use stack_core::{AppEvent, Bytes, GroupConfig, GroupHandle, MemberId, StackConfig};
use std::time::{Duration, Instant};
use transports::Runtime;

const CASTS: usize = 20;

fn descriptor(name: &str, layers: &str, group: &str) -> Descriptor {
    let text =
        format!("Stack(name: \"{name}\", transport: Udp(group: \"{group}\"), layers: [{layers}])");
    Descriptor::parse(&text, name, &layers::registry()).expect("a valid descriptor")
}

/// What one member of one group delivered.
#[derive(Debug)]
pub struct Outcome {
    pub group: String,
    pub member: &'static str,
    pub delivered: Vec<String>,
    pub local_addr: Option<std::net::SocketAddr>,
}

/// Runs both groups on `group_addr` and returns every member's deliveries.
pub fn run(group_addr: &str) -> Result<Vec<Outcome>, String> {
    let reg = layers::registry();
    let stacks = [
        descriptor("alpha", "Bundle(), Nak(), Frag(), Stable(), Flow()", group_addr),
        descriptor("beta", "Nak(), Frag()", group_addr),
    ];
    let x = MemberId::new(1, 0);
    let y = MemberId::new(2, 0);
    let rt = Runtime::start().map_err(|e| e.to_string())?;
    let mut handles: Vec<(String, &'static str, GroupHandle)> = Vec::new();
    for d in &stacks {
        for (me, name) in [(x, "x"), (y, "y")] {
            let layers = d.build_layers(&reg).map_err(|e| e.to_string())?;
            let cfg = GroupConfig::new(
                layers,
                d.transport.clone(),
                d.group_id(),
                StackConfig { me, seed: me.0, members: vec![x, y] },
            );
            let h = rt.join(cfg).map_err(|e| format!("{}: {e}", d.name))?;
            handles.push((d.name.clone(), name, h));
        }
    }
    for (group, name, h) in handles.iter_mut() {
        for i in 0..CASTS {
            let p = Bytes::from(format!("{group}:{name}:{i}"));
            h.cast_blocking(p, Duration::from_secs(5)).map_err(|e| e.to_string())?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    for (group, member, h) in &handles {
        let mut delivered = Vec::new();
        while delivered.len() < 2 * CASTS {
            match h.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(AppEvent::Deliver { payload, .. }) => {
                    delivered.push(String::from_utf8_lossy(&payload).into_owned())
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        // Anything late and stray would show here.
        while let Ok(ev) = h.recv_timeout(Duration::from_millis(100)) {
            if let AppEvent::Deliver { payload, .. } = ev {
                delivered.push(String::from_utf8_lossy(&payload).into_owned());
            }
        }
        out.push(Outcome { group: group.clone(), member, delivered, local_addr: h.local_addr() });
    }
    drop(handles);
    rt.stop();
    Ok(out)
}

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "239.255.42.47:7447".into());
    match run(&addr) {
        Ok(outcomes) => {
            let mut ok = true;
            for o in &outcomes {
                let own = o.delivered.iter().filter(|p| p.starts_with(&format!("{}:", o.group)));
                let own = own.count();
                let stray = o.delivered.len() - own;
                println!(
                    "{} {}: delivered {} casts of its group, {} of another, socket {:?}",
                    o.group, o.member, own, stray, o.local_addr
                );
                ok &= own == 2 * CASTS && stray == 0;
            }
            println!("{}", if ok { "each group's deliveries stayed in it" } else { "FAILED" });
            std::process::exit(if ok { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("two_groups: {e}");
            std::process::exit(2);
        }
    }
}
