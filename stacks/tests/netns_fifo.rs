//! Three hosts (network namespaces on a bridge), one `strata member` each with
//! fifo.ron on the host's own interface; one host loses 10 % of the UDP packets it
//! receives (nftables). Every message is still delivered exactly once, in FIFO
//! order, to every member (integrity, fifo, self delivery, liveness). Skips with the
//! reason where namespaces cannot be created (not root, `ip` or `nft` missing).

mod common;

use common::*;
use conformance::netns::{Hosts, NetnsError, TEST_GROUP};
use std::time::Duration;

const CASTS: u64 = 300;

#[test]
fn fifo_over_three_hosts_with_loss_delivers_everything_once_in_order() {
    let hosts = match Hosts::up(3) {
        Ok(h) => h,
        Err(NetnsError::Skip(why)) => {
            eprintln!("SKIPPED: cannot create network namespaces: {why}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let dir = Dir::new("netns");
    let fifo = std::fs::read_to_string(stack("fifo.ron")).unwrap();
    let group = format!("{TEST_GROUP}:7477");
    hosts.loss(2, 10).expect("10 % loss on host 2");
    let mut ms = Vec::new();
    for i in 1..=3 {
        // fifo.ron with the test-bed group and the host's own interface.
        let text = fifo.replace(
            "Udp(group: \"239.255.42.2:7402\")",
            &format!("Udp(group: \"{group}\", interface: \"{}\")", hosts.addr(i)),
        );
        assert_ne!(text, fifo, "fifo.ron names its transport as expected");
        let file = dir.0.join(format!("fifo-h{i}.ron"));
        std::fs::write(&file, text).unwrap();
        let name = format!("h{i}");
        let mut c = hosts.command(i, STRATA);
        c.args(["member", "--stack"]).arg(&file);
        c.args(["--name", &name, "--peers", "h1,h2,h3", "--send", &CASTS.to_string()])
            .args(["--size", "300", "--rate", "2000", "--duration", "60"])
            .args(["--expect", &(3 * CASTS).to_string()])
            .arg("--trace")
            .arg(&dir.0);
        ms.push(Member::spawn(&name, c));
    }
    for m in ms.iter_mut() {
        let l = m.wait_for("complete ", Duration::from_secs(45));
        assert!(l.is_some(), "{} delivered every cast: {:?}", m.name, m.seen);
    }
    for m in &ms {
        m.sigterm();
    }
    let mut retransmissions = 0;
    for m in ms.iter_mut() {
        let (ok, s) = m.finish(Duration::from_secs(10));
        assert!(ok, "{} exits cleanly: {:?}", m.name, m.seen);
        let s = s.expect("summary");
        assert_eq!(s["delivered"], 3 * CASTS);
        retransmissions += s["counters"]["nak"]["retransmissions"].as_u64().unwrap_or(0);
    }
    assert!(retransmissions > 0, "the loss on host 2 was repaired by retransmission");
    check_traces(&dir.0, 3, &FIFO_PROPS);
}
