//! Primary partition: each view keeps a majority of the previous one.

use std::collections::{BTreeMap, BTreeSet};

use super::{list, Outcome};
use crate::property::{Property, Violation};
use crate::trace::{Traces, ViewId};

/// Checks **primary_partition**: the distinct views installed anywhere,
/// ordered by id, form one sequence in which each view keeps a strict
/// majority of the members of the previous view (`2 * |kept| > |previous|`).
/// The first view is exempt, and so is a view following an empty one.
///
/// The member list of a view is taken from its first installation (members
/// by name, then trace order); disagreements are reported by
/// [`crate::checks::view_agreement()`]. Violation: members: the new view's
/// members as listed, views `[previous, new]`. Each view after the first
/// counts as one checked item.
pub fn primary_partition(traces: &Traces) -> Vec<Violation> {
    run(traces).violations
}

pub(crate) fn run(traces: &Traces) -> Outcome {
    let mut out = Outcome::default();
    let mut views: BTreeMap<ViewId, &[String]> = BTreeMap::new();
    for t in traces.members() {
        for (v, members) in t.views() {
            views.entry(v).or_insert(members);
        }
    }
    let mut prev: Option<(ViewId, &[String])> = None;
    for (v, members) in views {
        if let Some((p, before)) = prev {
            out.checked += 1;
            let before_set: BTreeSet<&str> = before.iter().map(String::as_str).collect();
            let now: BTreeSet<&str> = members.iter().map(String::as_str).collect();
            let kept: Vec<&str> = before_set.intersection(&now).copied().collect();
            if !before_set.is_empty() && 2 * kept.len() <= before_set.len() {
                out.violations.push(
                    Violation::new(
                        Property::PrimaryPartition,
                        format!(
                            "view {v} {} keeps only {} of the {} members of view {p} {}",
                            list(members),
                            kept.len(),
                            before_set.len(),
                            list(before)
                        ),
                    )
                    .members(members)
                    .views([p, v]),
                );
            }
        }
        prev = Some((v, members));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{only, strings, traces};

    #[test]
    fn majority_successions_pass() {
        let t = traces(
            "a view 1 a b c
             a view 2 a b
             b view 1 a b c
             b view 4 a b d e
             d view 4 a b d e
             d view 5 b d e",
        );
        assert!(primary_partition(&t).is_empty());
        assert_eq!(run(&t).checked, 3);
    }

    #[test]
    fn minority_view_is_caught() {
        let t = traces(
            "a view 1 a b c d
             a view 2 a b
             c view 1 a b c d
             c view 3 c d e",
        );
        let v = only(Property::PrimaryPartition, primary_partition(&t));
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0].members, strings(&["a", "b"]));
        assert_eq!(v[0].views, vec![1, 2]);
        assert_eq!(v[1].members, strings(&["c", "d", "e"]));
        assert_eq!(v[1].views, vec![2, 3]);
    }
}
