//! Virtual synchrony: agreement on what was delivered in a view.

use std::collections::{BTreeMap, BTreeSet};

use super::{list, Outcome};
use crate::property::{Property, Violation};
use crate::trace::{EventKind, Traces, ViewId};

/// Checks **virtual_synchrony**: members that install view `v` and then
/// view `w` as their next view (the same consecutive pair, in the same lineage:
/// see [`Traces::lineages`]) delivered the same set of messages in `v`.
///
/// "Delivered in `v`" means delivered between installing `v` and installing
/// `w` (the installed view, not the `view` field, decides; see
/// [`crate::checks::same_view()`] for the field). For each group of members
/// sharing a transition `v -> w`, every member missing some message another
/// member of the group delivered in `v` gets one violation: members `[m,
/// then the group members that delivered any of the missing messages]`,
/// messages: the missing ids (sorted), views `[v, w]`. Each transition of
/// each member in a group of two or more counts as one checked item.
pub fn virtual_synchrony(traces: &Traces) -> Vec<Violation> {
    run(traces).violations
}

type Group<'a> = Vec<(&'a str, BTreeSet<&'a str>)>;

pub(crate) fn run(traces: &Traces) -> Outcome {
    let mut out = Outcome::default();
    let mut groups: BTreeMap<(&str, ViewId, ViewId), Group<'_>> = BTreeMap::new();
    let lineages = traces.lineages();
    for t in traces.members() {
        let lineage = lineages[t.member.as_str()];
        let mut current: Option<(ViewId, BTreeSet<&str>)> = None;
        for e in &t.events {
            match &e.kind {
                EventKind::View { view, .. } => {
                    if let Some((v, set)) = current.take() {
                        groups.entry((lineage, v, *view)).or_default().push((&t.member, set));
                    }
                    current = Some((*view, BTreeSet::new()));
                }
                EventKind::Deliver { id, .. } => {
                    if let Some((_, set)) = current.as_mut() {
                        set.insert(id);
                    }
                }
                _ => {}
            }
        }
    }
    for ((_, v, w), group) in groups {
        if group.len() < 2 {
            continue;
        }
        let union: BTreeSet<&str> = group.iter().flat_map(|(_, s)| s.iter().copied()).collect();
        for (m, set) in &group {
            out.checked += 1;
            if set.len() == union.len() {
                continue;
            }
            let missing: Vec<&str> = union.difference(set).copied().collect();
            let holders: Vec<&str> = group
                .iter()
                .filter(|(_, s)| missing.iter().any(|id| s.contains(id)))
                .map(|(h, _)| *h)
                .collect();
            let mut members = vec![*m];
            members.extend(&holders);
            out.violations.push(
                Violation::new(
                    Property::VirtualSynchrony,
                    format!(
                        "{m} went from view {v} to {w} without delivering {} in view {v}, which {} delivered",
                        list(&missing),
                        list(&holders)
                    ),
                )
                .members(members)
                .messages(missing)
                .views([v, w]),
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
    fn same_sets_pass() {
        let t = traces(
            "a view 1 a b c
             a deliver a#1 1
             a deliver b#1 1
             a view 2 a b
             a deliver a#2 2
             b view 1 a b c
             b deliver b#1 1
             b deliver a#1 1
             b view 2 a b
             c view 1 a b c
             c deliver a#1 1",
        );
        // c never installs view 2; b's deliveries in view 2 are not
        // compared because nobody has a next view after 2.
        assert!(virtual_synchrony(&t).is_empty());
        assert_eq!(run(&t).checked, 2);
    }

    #[test]
    fn transitions_of_groups_founded_separately_are_not_compared() {
        // {a, b} and {c, d} both go from view 1 to 2 in their own history.
        let t = traces(
            "a view 1 a b
             a deliver a#1 1
             a view 2 a b
             b view 1 a b
             b deliver a#1 1
             b view 2 a b
             c view 1 c d
             c deliver c#1 1
             c view 2 c d
             d view 1 c d
             d view 2 c d",
        );
        let v = only(Property::VirtualSynchrony, virtual_synchrony(&t));
        assert_eq!(v.len(), 1, "only d, which missed c#1: {v:?}");
        assert_eq!(v[0].members, strings(&["d", "c"]));
        assert_eq!(v[0].messages, strings(&["c#1"]));
    }

    #[test]
    fn different_sets_are_caught() {
        let t = traces(
            "a view 1 a b c
             a deliver a#1 1
             a deliver c#1 1
             a view 2 a b c
             b view 1 a b c
             b deliver a#1 1
             b view 2 a b c
             c view 1 a b c
             c deliver a#1 1
             c deliver c#1 1
             c view 3 c",
        );
        let v = only(Property::VirtualSynchrony, virtual_synchrony(&t));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].members, strings(&["b", "a"]));
        assert_eq!(v[0].messages, strings(&["c#1"]));
        assert_eq!(v[0].views, vec![1, 2]);
    }
}
