//! Integrity: no duplicates, nothing invented, well-formed send ids.

use std::collections::{HashMap, HashSet};

use super::Outcome;
use crate::property::{Property, Violation};
use crate::trace::{parse_msg_id, EventKind, Traces};

/// Checks **integrity**.
///
/// * A member delivers each id at most once. Every repeated delivery is a
///   violation naming the receiver, the id, and the views of the first and
///   the repeated delivery.
/// * Nothing is invented. A delivered id must be of the form `<sender>#<n>`;
///   if the trace of `<sender>` is present, that trace must contain a `send`
///   of the id. Ids of senders without a trace are accepted when well formed.
///   Violation: members `[receiver]` (plus the sender if it has a trace),
///   the id, the delivery view.
/// * Send ids are well formed: the `k`-th `send` of member `m` has id
///   `m#k`. Violation: members `[m]`, the id, the send view.
///
/// Each send and each delivery counts as one checked item.
pub fn integrity(traces: &Traces) -> Vec<Violation> {
    run(traces).violations
}

pub(crate) fn run(traces: &Traces) -> Outcome {
    let mut out = Outcome::default();
    let mut sent: HashSet<&str> = HashSet::new();
    for trace in traces.members() {
        let member = trace.member.as_str();
        let mut expected: u64 = 1;
        for e in &trace.events {
            let EventKind::Send { id, view } = &e.kind else {
                continue;
            };
            out.checked += 1;
            match parse_msg_id(id) {
                Some((s, n)) if s == member && n == expected => {
                    sent.insert(id);
                    expected = n.saturating_add(1);
                }
                parsed => {
                    out.violations.push(
                        Violation::new(
                            Property::Integrity,
                            format!(
                                "{member} cast {id} (line {}) but its cast number {expected} should have id {member}#{expected}",
                                e.line
                            ),
                        )
                        .members([member])
                        .messages([id])
                        .views([*view]),
                    );
                    if let Some((_, n)) = parsed.filter(|(s, _)| *s == member) {
                        // Keep counting from the number actually used, and
                        // still accept the id as sent for the delivery check.
                        if sent.insert(id) {
                            expected = n.max(expected).saturating_add(1);
                        }
                    }
                }
            }
        }
    }
    for trace in traces.members() {
        let member = trace.member.as_str();
        let mut first: HashMap<&str, (u64, usize)> = HashMap::new();
        for e in &trace.events {
            let EventKind::Deliver { id, view } = &e.kind else {
                continue;
            };
            out.checked += 1;
            if let Some(&(v0, line0)) = first.get(id.as_str()) {
                out.violations.push(
                    Violation::new(
                        Property::Integrity,
                        format!("{member} delivered {id} twice (lines {line0} and {})", e.line),
                    )
                    .members([member])
                    .messages([id])
                    .views([v0, *view]),
                );
                continue;
            }
            first.insert(id, (*view, e.line));
            match parse_msg_id(id) {
                None => out.violations.push(
                    Violation::new(
                        Property::Integrity,
                        format!("{member} delivered malformed id {id:?} (line {})", e.line),
                    )
                    .members([member])
                    .messages([id])
                    .views([*view]),
                ),
                Some((s, _)) if traces.member(s).is_some() && !sent.contains(id.as_str()) => {
                    out.violations.push(
                        Violation::new(
                            Property::Integrity,
                            format!(
                                "{member} delivered {id} (line {}) which {s} never sent",
                                e.line
                            ),
                        )
                        .members([member, s])
                        .messages([id])
                        .views([*view]),
                    )
                }
                Some(_) => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{only, strings, traces};

    #[test]
    fn clean_trace_passes() {
        let t = traces(
            "a view 1 a b
             a send a#1 1
             a send a#2 1
             a deliver a#1 1
             b deliver a#1 1
             b deliver a#2 1
             b deliver c#7 1",
        );
        assert!(integrity(&t).is_empty());
        assert_eq!(run(&t).checked, 6);
    }

    #[test]
    fn duplicate_delivery() {
        let t = traces(
            "a send a#1 1
             b deliver a#1 1
             b view 2 a b
             b deliver a#1 2",
        );
        let v = only(Property::Integrity, integrity(&t));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].members, strings(&["b"]));
        assert_eq!(v[0].messages, strings(&["a#1"]));
        assert_eq!(v[0].views, vec![1, 2]);
    }

    #[test]
    fn invented_messages() {
        let t = traces(
            "a send a#1 1
             b deliver a#2 1
             b deliver bogus 1
             b deliver c#3 1",
        );
        let v = only(Property::Integrity, integrity(&t));
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0].members, strings(&["b", "a"]));
        assert_eq!(v[0].messages, strings(&["a#2"]));
        assert_eq!(v[1].members, strings(&["b"]));
        assert_eq!(v[1].messages, strings(&["bogus"]));
    }

    #[test]
    fn malformed_send_ids() {
        let t = traces(
            "a send a#1 1
             a send a#3 1
             a send b#4 1
             a send a#4 1
             b deliver a#3 1",
        );
        let v = only(Property::Integrity, integrity(&t));
        let msgs: Vec<&str> = v.iter().map(|v| v.messages[0].as_str()).collect();
        assert_eq!(msgs, ["a#3", "b#4"], "{v:?}");
        assert!(v.iter().all(|v| v.members == strings(&["a"])));
    }
}
