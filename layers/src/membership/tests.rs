use super::*;
use stack_core::testing::Harness;

const A: MemberId = MemberId::new(1, 0);
const B: MemberId = MemberId::new(2, 0);
const C: MemberId = MemberId::new(3, 0);
const J: MemberId = MemberId::new(9, 0);

fn ctl_of(m: &Msg) -> Ctl {
    let mut m = Msg::from_wire(m.to_bytes());
    assert_eq!(m.pop::<MbrHdr>(), Ok(MbrHdr::Ctl));
    Ctl::decode(m.front()).expect("control message")
}

fn wire_ctl(c: &Ctl) -> Msg {
    let mut m = Msg::new(Bytes::from(c.to_vec()), 8);
    m.push(&MbrHdr::Ctl);
    Msg::from_wire(m.to_bytes())
}

fn wire_data(body: &'static [u8]) -> Msg {
    let mut m = Msg::new(Bytes::from_static(body), 8);
    m.push(&MbrHdr::Data);
    Msg::from_wire(m.to_bytes())
}

/// Control messages sent point-to-point, in order.
fn sends(d: &[Down]) -> Vec<(MemberId, Ctl)> {
    d.iter()
        .filter_map(|e| match e {
            Down::Send(to, m) => Some((*to, ctl_of(m))),
            _ => None,
        })
        .collect()
}

fn founded(me: MemberId) -> Harness<Membership> {
    let mut h = Harness::with_member(Membership::default(), me);
    h.down(Down::Join);
    let d = h.take_down();
    assert!(matches!(&d[..], [Down::Cast(m)] if ctl_of(m) == Ctl::Discover));
    h.advance(Duration::from_millis(1000));
    h
}

#[test]
fn a_lone_process_founds_the_singleton_view_after_the_discovery_window() {
    let mut h = founded(A);
    let d = h.take_down();
    let discovers = d.iter().filter(|e| matches!(e, Down::Cast(_))).count();
    assert_eq!(discovers, 9, "one Discover per 100 ms period before founding");
    assert!(matches!(d.last(), Some(Down::View(v)) if v.id == 1 && v.members[..] == [A]));
    let up = h.take_up();
    assert!(matches!(&up[..], [Up::View(v)] if v.id == 1 && v.reason == ViewReason::Initial));
}

#[test]
fn a_smaller_process_heard_during_discovery_defers_founding() {
    let mut h = Harness::with_member(Membership::default(), B);
    h.down(Down::Join);
    h.advance(Duration::from_millis(500));
    h.up(Up::Cast(A, wire_ctl(&Ctl::Discover)));
    h.advance(Duration::from_millis(600));
    assert!(h.take_up().is_empty(), "B defers to A");
    h.up(Up::Send(A, wire_ctl(&Ctl::Here { view: 1, coord: A, founder: A, size: 1 })));
    let s = sends(&h.take_down());
    assert_eq!(s, vec![(A, Ctl::JoinReq)]);
    h.up(Up::Send(
        A,
        wire_ctl(&Ctl::Install {
            view: 2,
            reason: ViewReason::Join,
            members: vec![A, B],
            founder: A,
        }),
    ));
    let up = h.take_up();
    assert!(matches!(&up[..], [Up::View(v)] if v.id == 2 && v.members[..] == [A, B]));
}

#[test]
fn a_join_is_one_round_prepare_report_propose_ack_install() {
    let mut h = founded(A);
    h.take_down();
    h.take_up();
    h.up(Up::Cast(J, wire_ctl(&Ctl::Discover)));
    // The coordinator answers, and as a singleton runs the whole round with itself:
    // it blocks and waits for the application's BlockOk.
    let s = sends(&h.take_down());
    assert_eq!(s, vec![(J, Ctl::Here { view: 1, coord: A, founder: A, size: 1 })]);
    assert!(matches!(&h.take_up()[..], [Up::Block]));
    h.down(Down::BlockOk);
    let d = h.take_down();
    assert!(matches!(&d[0], Down::BlockOk), "passed on to the layers below");
    assert!(matches!(&d[1], Down::Cut(sv) if sv.view == 1));
    let s = sends(&d);
    assert_eq!(
        s,
        vec![(
            J,
            Ctl::Install { view: 2, reason: ViewReason::Join, members: vec![A, J], founder: A }
        )]
    );
    assert!(matches!(d.last(), Some(Down::View(v)) if v.id == 2));
    assert!(matches!(&h.take_up()[..], [Up::View(v)] if v.members[..] == [A, J]));
}

fn member_of(me: MemberId, members: &[MemberId]) -> Harness<Membership> {
    let mut h = Harness::with_member(Membership::default(), me);
    h.down(Down::Join);
    h.up(Up::Send(
        A,
        wire_ctl(&Ctl::Install {
            view: 3,
            reason: ViewReason::Join,
            members: members.to_vec(),
            founder: A,
        }),
    ));
    h.take_down();
    h.take_up();
    h
}

#[test]
fn a_survivor_reports_after_block_ok_then_delivers_exactly_the_cut() {
    let mut h = member_of(B, &[A, B, C]);
    h.up(Up::Cast(C, wire_data(b"c1")));
    h.up(Up::Progress(SeqVector { view: 3, entries: vec![(A, 0), (B, 0), (C, 1)] }));
    assert_eq!(h.take_up().len(), 2);
    let ballot = Ballot { n: 1, by: A };
    h.up(Up::Send(
        A,
        wire_ctl(&Ctl::Prepare {
            ballot,
            view: 3,
            members: vec![A, B, C],
            survivors: vec![A, B],
            joiners: vec![],
            leavers: vec![],
        }),
    ));
    assert!(matches!(&h.take_up()[..], [Up::Block]));
    assert!(h.take_down().is_empty(), "no report before BlockOk");
    // A cast of the excluded C arriving now is held, not delivered.
    h.up(Up::Cast(C, wire_data(b"c2")));
    h.up(Up::Cast(C, wire_data(b"c3")));
    assert!(h.take_up().is_empty());
    h.down(Down::BlockOk);
    let s = sends(&h.take_down());
    assert_eq!(
        s,
        vec![(
            A,
            Ctl::Report {
                ballot,
                view: 3,
                delivered: vec![(C, 1)],
                progress: vec![(A, 0), (B, 0), (C, 1)],
                accepted: None
            }
        )]
    );
    // A delivered two of C's casts: the cut is 2 for C; c3 is beyond it.
    let p = Proposal {
        view: 4,
        reason: ViewReason::Failure,
        members: vec![A, B],
        cut: vec![(A, 0), (B, 0), (C, 2)],
        nak_cut: vec![(A, 0), (B, 0), (C, 2)],
    };
    h.up(Up::Send(A, wire_ctl(&Ctl::Propose { ballot, proposal: p })));
    let d = h.take_down();
    assert!(matches!(&d[0], Down::Suspect(s) if s == &vec![C]));
    assert!(
        matches!(&d[1], Down::Cut(sv) if sv.view == 3 && sv.entries == vec![(A, 0), (B, 0), (C, 2)])
    );
    assert_eq!(sends(&d), vec![(A, Ctl::Ack { ballot, view: 4 })]);
    let up = h.take_up();
    assert!(matches!(&up[..], [Up::Cast(from, m)] if *from == C && &m.body()[..] == b"c2"));
    assert_eq!(h.counters.get("beyond_cut_dropped"), 1);
    h.up(Up::Send(
        A,
        wire_ctl(&Ctl::Install {
            view: 4,
            reason: ViewReason::Failure,
            members: vec![A, B],
            founder: A,
        }),
    ));
    let d = h.take_down();
    assert!(matches!(&d[..], [Down::View(v)] if v.id == 4));
    assert!(matches!(&h.take_up()[..], [Up::View(v)] if v.id == 4));
}

#[test]
fn a_minority_emits_not_primary_blocks_and_installs_nothing() {
    let mut h = member_of(A, &[A, B, C]);
    h.up(Up::Suspect(vec![B, C]));
    let up = h.take_up();
    assert_eq!(
        up.iter().map(|e| e.kind()).collect::<Vec<_>>(),
        ["suspect", "not_primary", "block"]
    );
    h.down(Down::BlockOk);
    h.advance(Duration::from_millis(600));
    let s = sends(&h.take_down());
    assert_eq!(s, vec![(B, Ctl::Probe { view: 3 }), (C, Ctl::Probe { view: 3 })]);
    assert!(h.take_up().is_empty());
    h.up(Up::Send(B, wire_ctl(&Ctl::Excluded { view: 4 })));
    assert!(matches!(&h.take_up()[..], [Up::Exit]));
}

#[test]
fn the_next_oldest_takes_over_when_the_coordinator_is_suspected() {
    let mut h = member_of(B, &[A, B, C]);
    h.up(Up::Suspect(vec![A]));
    let up = h.take_up();
    assert_eq!(up.iter().map(|e| e.kind()).collect::<Vec<_>>(), ["suspect", "block"]);
    let s = sends(&h.take_down());
    assert_eq!(
        s,
        vec![(
            C,
            Ctl::Prepare {
                ballot: Ballot { n: 1, by: B },
                view: 3,
                members: vec![A, B, C],
                survivors: vec![B, C],
                joiners: vec![],
                leavers: vec![],
            }
        )]
    );
}

#[test]
fn a_view_without_this_member_means_exit() {
    let mut h = member_of(C, &[A, B, C]);
    h.up(Up::Send(
        A,
        wire_ctl(&Ctl::Install {
            view: 4,
            reason: ViewReason::Failure,
            members: vec![A, B],
            founder: A,
        }),
    ));
    assert!(matches!(&h.take_up()[..], [Up::Exit]));
    assert!(h.timers().is_empty());
}

#[test]
fn malformed_control_messages_are_dropped_and_counted() {
    let mut h = member_of(C, &[A, B, C]);
    let mut m = Msg::new(Bytes::from_static(&[42, 1]), 8);
    m.push(&MbrHdr::Ctl);
    h.up(Up::Send(A, Msg::from_wire(m.to_bytes())));
    h.up(Up::Send(A, Msg::from_wire(Bytes::from_static(&[7]))));
    assert!(h.take_up().is_empty());
    assert_eq!(h.counters.get("malformed_dropped"), 2);
}

#[test]
fn a_survivor_reports_only_once_its_own_casts_came_back_from_below() {
    // A layer between membership and the reliable layer (flow) may hold a cast of
    // this member back: reporting before it comes up would leave it out of the cut
    // while this member delivers it, beyond the cut or in the next view.
    let mut h = member_of(B, &[A, B, C]);
    let own = || {
        let mut m = Msg::new(Bytes::from_static(b"b1"), 8);
        m.push(&MbrHdr::Data);
        m
    };
    h.down(Down::Cast(Msg::new(Bytes::from_static(b"b1"), 8)));
    assert!(matches!(&h.take_down()[..], [Down::Cast(_)]));
    let ballot = Ballot { n: 1, by: A };
    h.up(Up::Send(
        A,
        wire_ctl(&Ctl::Prepare {
            ballot,
            view: 3,
            members: vec![A, B, C],
            survivors: vec![A, B, C],
            joiners: vec![J],
            leavers: vec![],
        }),
    ));
    assert!(matches!(&h.take_up()[..], [Up::Block]));
    h.down(Down::BlockOk);
    let d = h.take_down();
    assert!(matches!(&d[..], [Down::BlockOk]), "no report while b1 is held below: {d:?}");
    h.up(Up::Cast(B, Msg::from_wire(own().to_bytes())));
    assert!(matches!(&h.take_up()[..], [Up::Cast(from, _)] if *from == B));
    assert!(h.take_down().is_empty(), "no report before Progress covers b1");
    h.up(Up::Progress(SeqVector { view: 3, entries: vec![(A, 0), (B, 1), (C, 0)] }));
    h.take_up();
    assert_eq!(
        sends(&h.take_down()),
        vec![(
            A,
            Ctl::Report {
                ballot,
                view: 3,
                delivered: vec![(B, 1)],
                progress: vec![(A, 0), (B, 1), (C, 0)],
                accepted: None
            }
        )]
    );
}

#[test]
fn a_joiner_in_the_view_that_still_discovers_gets_the_install_again() {
    // J was added to view 3 but lost its Install, and the coordinator that sent it
    // may be gone: any member answers its Discover or JoinReq with the view.
    let mut h = member_of(B, &[A, B, J]);
    let install =
        Ctl::Install { view: 3, reason: ViewReason::Join, members: vec![A, B, J], founder: A };
    h.up(Up::Cast(J, wire_ctl(&Ctl::Discover)));
    assert_eq!(sends(&h.take_down()), vec![(J, install.clone())]);
    h.up(Up::Send(J, wire_ctl(&Ctl::JoinReq)));
    assert_eq!(sends(&h.take_down()), vec![(J, install)]);
    assert_eq!(h.counters.get("installs_resent"), 2);
    assert!(h.take_up().is_empty(), "no round for a member already in the view");
}

// ---- merging groups founded separately ------------------------------------------

const X: MemberId = MemberId::new(7, 0);

fn beacon(coord: MemberId, founder: MemberId, size: u64) -> Up {
    Up::Cast(coord, wire_ctl(&Ctl::Here { view: 5, coord, founder, size }))
}

/// The merge beacons (`Here` cast unreliably) among events that went down.
fn beacons(d: &[Down]) -> Vec<Ctl> {
    d.iter()
        .filter_map(|e| match e {
            Down::CastUnreliable(m) => Some(ctl_of(m)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_acting_coordinator_of_a_primary_view_casts_a_beacon_every_merge_ms() {
    let mut h = founded(A);
    h.take_down();
    // Founded at 1000 ms; ticks every 100 ms; a beacon at the first tick and then
    // every 1000 ms: 1100, 2100, 3100.
    h.advance(Duration::from_millis(2500));
    let b = beacons(&h.take_down());
    assert_eq!(b, vec![Ctl::Here { view: 1, coord: A, founder: A, size: 1 }; 3]);
    assert_eq!(h.counters.get("beacons_sent"), 3);
    // A member that is not the acting coordinator casts none.
    let mut h = member_of(B, &[A, B, C]);
    h.advance(Duration::from_millis(5000));
    assert!(beacons(&h.take_down()).is_empty());
}

#[test]
fn a_blocked_minority_coordinator_casts_no_beacon() {
    let mut h = member_of(A, &[A, B, C]);
    h.up(Up::Suspect(vec![B, C]));
    assert!(matches!(&h.take_up()[..], [Up::Suspect(_), Up::NotPrimary, Up::Block]));
    h.advance(Duration::from_millis(5000));
    assert!(beacons(&h.take_down()).is_empty());
}

#[test]
fn the_founder_travels_in_install_and_here() {
    // B joined a view of the lineage founded by A (which has since left).
    let mut h = member_of(B, &[B, C]);
    h.up(Up::Cast(J, wire_ctl(&Ctl::Discover)));
    let s = sends(&h.take_down());
    assert_eq!(s[0], (J, Ctl::Here { view: 3, coord: B, founder: A, size: 2 }));
    h.advance(Duration::from_millis(1000));
    let b = beacons(&h.take_down());
    assert_eq!(b[0], Ctl::Here { view: 3, coord: B, founder: A, size: 2 });
}

#[test]
fn lineages_compare_by_size_then_smaller_founder() {
    assert!(wins((3, X), (2, A)), "larger group wins");
    assert!(!wins((2, A), (3, X)));
    assert!(wins((3, A), (3, X)), "equal size: smaller founder wins");
    assert!(!wins((3, X), (3, A)));
    assert!(!wins((3, A), (3, A)), "a lineage does not win over itself");
}

#[test]
fn a_beacon_of_a_winning_lineage_makes_a_member_exit_unasked() {
    let mut h = member_of(B, &[A, B, C]);
    h.up(beacon(X, X, 4));
    assert!(matches!(&h.take_up()[..], [Up::Exit]));
    assert_eq!(h.counters.get("merged_away"), 1);
    assert!(h.timers().is_empty(), "the stack is done");
}

#[test]
fn beacons_of_its_own_lineage_of_a_losing_lineage_and_of_its_view_are_ignored() {
    let mut h = member_of(B, &[A, B, C]);
    h.up(beacon(X, A, 10)); // its own lineage (a stale or excluded member)
    h.up(beacon(X, X, 3)); // same size, larger founder: loses
    h.up(beacon(X, X, 2)); // smaller
    h.up(beacon(A, MemberId::new(0, 1), 9)); // from a member of its view
    assert!(h.take_up().is_empty());
    assert_eq!(h.counters.get("merged_away"), 0);
    // Same size, smaller founder: wins.
    h.up(beacon(X, MemberId::new(0, 1), 3));
    assert!(matches!(&h.take_up()[..], [Up::Exit]));
}

#[test]
fn a_discovering_process_joins_the_coordinator_of_the_winning_beacon() {
    let mut h = Harness::with_member(Membership::default(), J);
    h.down(Down::Join);
    h.take_down();
    h.up(beacon(X, X, 1));
    assert_eq!(sends(&h.take_down()), vec![(X, Ctl::JoinReq)]);
    // A larger group: J turns to it.
    h.up(beacon(C, C, 3));
    assert_eq!(sends(&h.take_down()), vec![(C, Ctl::JoinReq)]);
    // A smaller one is not followed: J repeats its request to C.
    h.up(beacon(A, A, 2));
    h.advance(Duration::from_millis(900));
    let d = h.take_down();
    assert!(sends(&d).iter().all(|(to, c)| *to == C && *c == Ctl::JoinReq), "{d:?}");
    assert!(h.take_up().is_empty());
}

#[test]
fn a_blocked_minority_member_counts_the_members_it_still_hears() {
    let mut h = member_of(B, &[A, B, C]);
    h.up(Up::Suspect(vec![A, C]));
    assert!(matches!(&h.take_up()[..], [Up::Suspect(_), Up::NotPrimary, Up::Block]));
    h.take_down();
    // It answers a discovering process with the one member it hears...
    h.up(Up::Cast(J, wire_ctl(&Ctl::Discover)));
    let s = sends(&h.take_down());
    assert_eq!(s, vec![(J, Ctl::Here { view: 3, coord: B, founder: A, size: 1 })]);
    // ...and a group of 2, smaller than its view of 3, wins over it.
    h.up(beacon(X, X, 2));
    assert!(matches!(&h.take_up()[..], [Up::Exit]));
    assert_eq!(h.counters.get("merged_away"), 1);
}
