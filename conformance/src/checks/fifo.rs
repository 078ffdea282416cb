//! FIFO order per sender, without gaps.

use std::collections::{BTreeMap, HashMap};

use super::Outcome;
use crate::property::{Property, Violation};
use crate::trace::{parse_msg_id, EventKind, Traces, ViewId};

/// Checks **fifo**: per receiver `r` and sender `s`, the sequence numbers of
/// the `s#n` that `r` delivers are strictly increasing, with no gaps.
///
/// * Order: when `r` delivers `s#b` but already delivered some `s#a` with
///   `a >= b`, that is a violation. Members `[r, s]`, messages
///   `[s#a, s#b]` (`s#a` the highest delivered so far), views: the delivery
///   views of `s#a` and `s#b` at `r`.
/// * Gaps: when the next delivery from `s` at `r` is `s#b` and the highest
///   earlier one is `s#a` (`a = 0` if none), every `s#k` with `a < k < b`
///   that `s` sent in the same view as `s#b` is a gap: one violation per
///   `k`, members `[r, s]`, messages `[s#k, s#b]`, views `[the send view]`.
///   Gaps are only checked when the trace of `s` is present. A message
///   delivered late is therefore reported both as a gap (when the message
///   after it arrives) and as out of order (when it arrives).
///
/// Malformed ids are left to [`crate::checks::integrity()`]. Each delivery of a
/// well-formed id counts as one checked item.
pub fn fifo(traces: &Traces) -> Vec<Violation> {
    run(traces).violations
}

pub(crate) fn run(traces: &Traces) -> Outcome {
    let mut out = Outcome::default();
    // sender -> n -> view the message was sent in.
    let mut sends: HashMap<&str, BTreeMap<u64, ViewId>> = HashMap::new();
    for trace in traces.members() {
        let by_n = sends.entry(trace.member.as_str()).or_default();
        for e in &trace.events {
            if let EventKind::Send { id, view } = &e.kind {
                if let Some((s, n)) = parse_msg_id(id) {
                    if s == trace.member {
                        by_n.entry(n).or_insert(*view);
                    }
                }
            }
        }
    }
    for trace in traces.members() {
        let r = trace.member.as_str();
        // sender -> (highest n delivered, its delivery view)
        let mut high: HashMap<&str, (u64, ViewId)> = HashMap::new();
        for e in &trace.events {
            let EventKind::Deliver { id, view } = &e.kind else {
                continue;
            };
            let Some((s, b)) = parse_msg_id(id) else {
                continue;
            };
            out.checked += 1;
            let prev = high.get(s).copied();
            if let Some((a, va)) = prev.filter(|(a, _)| *a >= b) {
                out.violations.push(
                    Violation::new(
                        Property::Fifo,
                        format!("{r} delivered {id} (line {}) after {s}#{a}", e.line),
                    )
                    .members([r, s])
                    .messages([format!("{s}#{a}"), id.clone()])
                    .views([va, *view]),
                );
                continue;
            }
            let a = prev.map_or(0, |(a, _)| a);
            high.insert(s, (b, *view));
            let Some(by_n) = sends.get(s) else {
                continue;
            };
            let Some(&vb) = by_n.get(&b) else {
                continue;
            };
            for (k, _) in by_n.range(a + 1..b).filter(|(_, v)| **v == vb) {
                out.violations.push(
                    Violation::new(
                        Property::Fifo,
                        format!(
                            "{r} delivered {id} (line {}) but not {s}#{k}, sent before it in view {vb}",
                            e.line
                        ),
                    )
                    .members([r, s])
                    .messages([format!("{s}#{k}"), id.clone()])
                    .views([vb]),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::integrity;
    use crate::checks::testing::{only, strings, traces};
    use crate::trace::Traces;
    use quickcheck::{quickcheck, TestResult};

    #[test]
    fn in_order_passes() {
        let t = traces(
            "a view 1 a b
             a send a#1 1
             a send a#2 1
             b view 1 a b
             b deliver a#1 1
             b deliver a#2 1",
        );
        assert!(fifo(&t).is_empty());
        assert_eq!(run(&t).checked, 2);
    }

    #[test]
    fn reordering_is_caught() {
        let t = traces(
            "a send a#1 1
             a send a#2 1
             b deliver a#2 1
             b deliver a#1 1",
        );
        let v = only(Property::Fifo, fifo(&t));
        // a#1 is first a gap (a#2 came before it), then out of order.
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0].members, strings(&["b", "a"]));
        assert_eq!(v[0].messages, strings(&["a#1", "a#2"]));
        assert_eq!(v[1].members, strings(&["b", "a"]));
        assert_eq!(v[1].messages, strings(&["a#2", "a#1"]));
        assert_eq!(v[1].views, vec![1, 1]);
    }

    #[test]
    fn reordering_across_views_is_only_an_order_violation() {
        let t = traces(
            "a send a#1 1
             a send a#2 2
             b deliver a#2 2
             b deliver a#1 2",
        );
        let v = only(Property::Fifo, fifo(&t));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].messages, strings(&["a#2", "a#1"]));
        assert_eq!(v[0].views, vec![2, 2]);
    }

    #[test]
    fn gaps_in_the_same_view_are_caught() {
        let t = traces(
            "a send a#1 1
             a send a#2 2
             a send a#3 2
             a send a#4 2
             a send a#5 2
             b deliver a#2 2
             b deliver a#5 2",
        );
        let v = only(Property::Fifo, fifo(&t));
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0].members, strings(&["b", "a"]));
        assert_eq!(v[0].messages, strings(&["a#3", "a#5"]));
        assert_eq!(v[1].messages, strings(&["a#4", "a#5"]));
        assert_eq!(v[1].views, vec![2]);
    }

    #[test]
    fn leading_gap_and_other_view_gaps() {
        // a#1 was sent in view 1, so skipping it is allowed; a#2 is not.
        let t = traces(
            "a send a#1 1
             a send a#2 2
             a send a#3 2
             b deliver a#3 2",
        );
        let v = only(Property::Fifo, fifo(&t));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].messages, strings(&["a#2", "a#3"]));
    }

    /// Builds a trace where `senders[i]` members cast `counts[i]` messages
    /// and one receiver delivers all of them, each sender's in order,
    /// interleaved according to `choice`. Optionally swaps two deliveries of
    /// sender 0 at the receiver.
    fn generated(counts: &[u8], choice: &[u8], swap: Option<(usize, usize)>) -> Traces {
        let counts: Vec<u64> = counts.iter().take(5).map(|c| u64::from(c % 8)).collect();
        let mut files = Vec::new();
        for (i, &c) in counts.iter().enumerate() {
            let mut text = String::new();
            for n in 1..=c {
                text.push_str(&format!(
                    "{{\"m\":\"s{i}\",\"ev\":\"send\",\"id\":\"s{i}#{n}\",\"view\":1}}\n"
                ));
            }
            files.push((format!("s{i}"), text));
        }
        let mut next: Vec<u64> = vec![1; counts.len()];
        let mut order: Vec<String> = Vec::new();
        let mut choice = choice.iter().cycle();
        while next.iter().zip(&counts).any(|(n, c)| n <= c) {
            let live: Vec<usize> = (0..counts.len()).filter(|&i| next[i] <= counts[i]).collect();
            let pick = live[usize::from(*choice.next().unwrap_or(&0)) % live.len()];
            order.push(format!("s{pick}#{}", next[pick]));
            next[pick] += 1;
        }
        if let Some((x, y)) = swap {
            let of0: Vec<usize> =
                (0..order.len()).filter(|&i| order[i].starts_with("s0#")).collect();
            order.swap(of0[x], of0[y]);
        }
        let mut text = String::new();
        for id in order {
            text.push_str(&format!(
                "{{\"m\":\"r\",\"ev\":\"deliver\",\"id\":\"{id}\",\"view\":1}}\n"
            ));
        }
        files.push(("r".to_string(), text));
        Traces::parse(files).expect("generated trace parses")
    }

    quickcheck! {
        fn generated_fifo_traces_pass(counts: Vec<u8>, choice: Vec<u8>) -> bool {
            let t = generated(&counts, &choice, None);
            fifo(&t).is_empty() && integrity(&t).is_empty()
        }

        fn swapping_deliveries_of_one_sender_is_caught(
            counts: Vec<u8>, choice: Vec<u8>, x: u8, y: u8
        ) -> TestResult {
            let c0 = counts.first().map_or(0, |c| usize::from(c % 8));
            if c0 < 2 {
                return TestResult::discard();
            }
            let (x, y) = (usize::from(x) % c0, usize::from(y) % c0);
            if x == y {
                return TestResult::discard();
            }
            let t = generated(&counts, &choice, Some((x, y)));
            let v = fifo(&t);
            TestResult::from_bool(
                !v.is_empty()
                    && v.iter().all(|v| v.members == ["r", "s0"])
                    && integrity(&t).is_empty(),
            )
        }
    }
}
