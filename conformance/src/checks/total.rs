//! Total order: agreement on the relative order of common deliveries.

use std::collections::HashMap;

use super::Outcome;
use crate::property::{Property, Violation};
use crate::trace::{EventKind, Traces, ViewId};

/// Checks **total** order: for any two members `p` and `q` (`p < q` by
/// name), the messages both delivered are delivered in the same relative
/// order. Only the first delivery of an id counts (repeats are left to
/// [`crate::checks::integrity()`]).
///
/// For each pair, `p`'s deliveries are mapped to their positions in `q`'s
/// order; the first position below the highest one seen so far gives the
/// conflicting pair. At most one violation per member pair: members
/// `[p, q]`, messages `[m1, m2]` where `p` delivered `m1` before `m2` and
/// `q` delivered `m2` before `m1`, views: the sorted distinct views of those
/// four deliveries. Each member pair counts as one checked item.
pub fn total(traces: &Traces) -> Vec<Violation> {
    run(traces).violations
}

const ABSENT: u32 = u32::MAX;

struct Order<'a> {
    member: &'a str,
    /// Interned message ids in delivery order, with the delivery view.
    seq: Vec<(u32, ViewId)>,
    /// Interned id -> index in `seq`, or `ABSENT`.
    pos: Vec<u32>,
}

pub(crate) fn run(traces: &Traces) -> Outcome {
    let mut out = Outcome::default();
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut names: Vec<&str> = Vec::new();
    let mut orders: Vec<Order<'_>> = Vec::new();
    for t in traces.members() {
        let mut seq = Vec::new();
        for e in &t.events {
            if let EventKind::Deliver { id, view } = &e.kind {
                let next = u32::try_from(names.len()).unwrap_or(ABSENT - 1);
                let k = *ids.entry(id.as_str()).or_insert_with(|| {
                    names.push(id);
                    next
                });
                seq.push((k, *view));
            }
        }
        orders.push(Order { member: &t.member, seq, pos: Vec::new() });
    }
    for o in &mut orders {
        o.pos = vec![ABSENT; names.len()];
        let mut kept = Vec::with_capacity(o.seq.len());
        for &(k, v) in &o.seq {
            let slot = &mut o.pos[k as usize];
            if *slot == ABSENT {
                *slot = u32::try_from(kept.len()).unwrap_or(ABSENT - 1);
                kept.push((k, v));
            }
        }
        o.seq = kept;
    }
    for (i, p) in orders.iter().enumerate() {
        for q in &orders[i + 1..] {
            out.checked += 1;
            // Highest position in q so far, with the message's index in p.
            let mut best: Option<(u32, usize)> = None;
            for (ip, &(k, _)) in p.seq.iter().enumerate() {
                let at_q = q.pos[k as usize];
                if at_q == ABSENT {
                    continue;
                }
                match best {
                    Some((hq, hp)) if at_q < hq => {
                        let (m1, p1) = p.seq[hp];
                        let (m2, p2) = p.seq[ip];
                        let q1 = q.seq[hq as usize].1;
                        let q2 = q.seq[at_q as usize].1;
                        let mut views = vec![p1, p2, q1, q2];
                        views.sort_unstable();
                        views.dedup();
                        let (m1, m2) = (names[m1 as usize], names[m2 as usize]);
                        out.violations.push(
                            Violation::new(
                                Property::Total,
                                format!(
                                    "{} delivered {m1} before {m2}, {} delivered {m2} before {m1}",
                                    p.member, q.member
                                ),
                            )
                            .members([p.member, q.member])
                            .messages([m1, m2])
                            .views(views),
                        );
                        break;
                    }
                    _ => best = Some((at_q, ip)),
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{only, strings, traces};
    use crate::trace::Traces;
    use quickcheck::{quickcheck, TestResult};

    #[test]
    fn same_relative_order_passes() {
        let t = traces(
            "a deliver x#1 1
             a deliver y#1 1
             a deliver z#1 1
             b deliver x#1 1
             b deliver z#1 1
             c deliver w#1 1
             c deliver y#1 1
             c deliver z#1 1",
        );
        assert!(total(&t).is_empty());
        assert_eq!(run(&t).checked, 3);
    }

    #[test]
    fn conflicting_order_is_caught() {
        let t = traces(
            "a deliver x#1 1
             a deliver y#1 1
             a deliver z#1 1
             b deliver y#1 1
             b deliver z#1 2
             b deliver x#1 2
             c deliver x#1 1",
        );
        let v = only(Property::Total, total(&t));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].members, strings(&["a", "b"]));
        assert_eq!(v[0].messages, strings(&["x#1", "y#1"]));
        assert_eq!(v[0].views, vec![1, 2]);
    }

    fn one_order(members: usize, msgs: usize, swap: Option<(usize, usize)>) -> Traces {
        let files = (0..members).map(|i| {
            let mut ids: Vec<String> = (1..=msgs).map(|n| format!("s#{n}")).collect();
            if let (0, Some((x, y))) = (i, swap) {
                ids.swap(x, y);
            }
            let text: String = ids
                .iter()
                .map(|id| {
                    format!("{{\"m\":\"m{i}\",\"ev\":\"deliver\",\"id\":\"{id}\",\"view\":1}}\n")
                })
                .collect();
            (format!("m{i}"), text)
        });
        Traces::parse(files).expect("parses")
    }

    quickcheck! {
        fn identical_orders_pass(members: u8, msgs: u8) -> bool {
            total(&one_order(usize::from(members % 6), usize::from(msgs), None)).is_empty()
        }

        fn one_swap_is_caught_for_every_other_member(members: u8, msgs: u8, x: u8, y: u8) -> TestResult {
            let (members, msgs) = (usize::from(members % 6), usize::from(msgs));
            if members < 2 || msgs < 2 {
                return TestResult::discard();
            }
            let (x, y) = (usize::from(x) % msgs, usize::from(y) % msgs);
            if x == y {
                return TestResult::discard();
            }
            let t = one_order(members, msgs, Some((x, y)));
            let v = total(&t);
            TestResult::from_bool(
                v.len() == members - 1 && v.iter().all(|v| v.members[0] == "m0"),
            )
        }
    }
}
