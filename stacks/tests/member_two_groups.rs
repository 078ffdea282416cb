//! The `two_groups` example: one process in two groups with different stacks over
//! one socket; each group's deliveries stay in that group.

mod common;

#[allow(dead_code)]
#[path = "../examples/two_groups.rs"]
mod two_groups;

#[test]
fn two_groups_share_a_socket_and_keep_their_deliveries_apart() {
    let addr = "239.255.42.48:7448";
    if !common::multicast_works(addr) {
        eprintln!("SKIPPED: loopback multicast does not work on this host");
        return;
    }
    let outcomes = two_groups::run(addr).expect("both groups run");
    assert_eq!(outcomes.len(), 4);
    let socket = outcomes[0].local_addr;
    assert!(socket.is_some());
    for o in &outcomes {
        assert_eq!(o.local_addr, socket, "one socket for both groups");
        let prefix = format!("{}:", o.group);
        assert!(o.delivered.iter().all(|p| p.starts_with(&prefix)), "{o:?}");
        // Each member delivers its own group's 2 x 20 casts, each exactly once.
        let mut d = o.delivered.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 40, "{o:?}");
        assert_eq!(o.delivered.len(), 40, "{o:?}");
    }
}
