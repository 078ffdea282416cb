//! Liveness among the members that survived to the end of the run.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::{list, Outcome};
use crate::property::{Property, Violation};
use crate::trace::{EventKind, MemberTrace, Traces, ViewId};

/// Checks **liveness** over the members that wrote `end`.
///
/// * For every pair `s`, `r` of such members (including `s = r`): every
///   message `s` sent in a view (the send's `view` field) that `r`
///   installed is delivered by `r` at some point. One violation per pair:
///   members `[s, r]`, messages: the undelivered ids in send order, views:
///   their sorted distinct send views. Each pair counts as one checked item.
/// * All members that wrote `end` end in the same final view (the last view
///   they installed). Violation: members: all ended members, views: the
///   distinct final views; the detail groups members by final view. Counts
///   as one checked item when two or more members ended.
pub fn liveness(traces: &Traces) -> Vec<Violation> {
    run(traces).violations
}

struct Survivor<'a> {
    trace: &'a MemberTrace,
    installed: BTreeSet<ViewId>,
    delivered: HashSet<&'a str>,
    sent: Vec<(&'a str, ViewId)>,
}

pub(crate) fn run(traces: &Traces) -> Outcome {
    let mut out = Outcome::default();
    let survivors: Vec<Survivor<'_>> = traces
        .members()
        .filter(|t| t.ended())
        .map(|trace| {
            let mut s = Survivor {
                trace,
                installed: BTreeSet::new(),
                delivered: HashSet::new(),
                sent: Vec::new(),
            };
            for e in &trace.events {
                match &e.kind {
                    EventKind::View { view, .. } => {
                        s.installed.insert(*view);
                    }
                    EventKind::Send { id, view } => s.sent.push((id, *view)),
                    EventKind::Deliver { id, .. } => {
                        s.delivered.insert(id);
                    }
                    EventKind::End => {}
                }
            }
            s
        })
        .collect();
    for s in &survivors {
        for r in &survivors {
            out.checked += 1;
            let missing: Vec<(&str, ViewId)> = s
                .sent
                .iter()
                .filter(|(id, v)| r.installed.contains(v) && !r.delivered.contains(id))
                .copied()
                .collect();
            if missing.is_empty() {
                continue;
            }
            let ids: Vec<&str> = missing.iter().map(|(id, _)| *id).collect();
            let views: BTreeSet<ViewId> = missing.iter().map(|(_, v)| *v).collect();
            let (sm, rm) = (&s.trace.member, &r.trace.member);
            out.violations.push(
                Violation::new(
                    Property::Liveness,
                    format!(
                        "{rm} ended without delivering {} sent by {sm} in views it installed",
                        list(&ids)
                    ),
                )
                .members([sm, rm])
                .messages(ids)
                .views(views),
            );
        }
    }
    if survivors.len() >= 2 {
        out.checked += 1;
        let mut finals: BTreeMap<Option<ViewId>, Vec<&str>> = BTreeMap::new();
        for s in &survivors {
            finals.entry(s.trace.final_view()).or_default().push(&s.trace.member);
        }
        if finals.len() > 1 {
            let groups: Vec<String> = finals
                .iter()
                .map(|(v, ms)| match v {
                    Some(v) => format!("view {v}: {}", list(ms)),
                    None => format!("no view: {}", list(ms)),
                })
                .collect();
            out.violations.push(
                Violation::new(
                    Property::Liveness,
                    format!("members ended in different views ({})", groups.join("; ")),
                )
                .members(survivors.iter().map(|s| &s.trace.member))
                .views(finals.keys().flatten().copied()),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{only, strings, traces};

    #[test]
    fn complete_run_passes() {
        let t = traces(
            "a view 1 a b
             a send a#1 1
             a deliver a#1 1
             a view 2 a b c
             a send a#2 2
             a deliver a#2 2
             a end
             b view 1 a b
             b deliver a#1 1
             b view 2 a b c
             b deliver a#2 2
             b end
             c view 2 a b c
             c deliver a#2 2
             c end
             d view 1 a b d
             d send d#1 1",
        );
        // c never installed view 1; d crashed and is not considered.
        assert!(liveness(&t).is_empty());
        assert_eq!(run(&t).checked, 10);
    }

    #[test]
    fn missing_delivery_is_caught() {
        let t = traces(
            "a view 1 a b
             a send a#1 1
             a send a#2 1
             a deliver a#1 1
             a deliver a#2 1
             a end
             b view 1 a b
             b deliver a#1 1
             b end",
        );
        let v = only(Property::Liveness, liveness(&t));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].members, strings(&["a", "b"]));
        assert_eq!(v[0].messages, strings(&["a#2"]));
        assert_eq!(v[0].views, vec![1]);
    }

    #[test]
    fn different_final_views_are_caught() {
        let t = traces(
            "a view 1 a b c
             a view 2 a b
             a end
             b view 1 a b c
             b view 2 a b
             b end
             c view 1 a b c
             c end",
        );
        let v = only(Property::Liveness, liveness(&t));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].members, strings(&["a", "b", "c"]));
        assert_eq!(v[0].views, vec![1, 2]);
    }
}
