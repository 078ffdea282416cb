//! Primary partition: each view keeps a majority of the previous one.

use std::collections::{BTreeMap, BTreeSet};

use super::{list, Outcome};
use crate::property::{Property, Violation};
use crate::trace::{Traces, ViewId};

/// Checks **primary_partition**: in each lineage ([`Traces::lineages`]: groups
/// founded separately, e.g. in disjoint partitions, are separate histories until
/// one merges into the other), the distinct views installed, ordered by id, form
/// one sequence in which each view keeps a strict majority of the members of the
/// previous view (`2 * |kept| > |previous|`). The first view of a lineage is
/// exempt, and so is a view following an empty one.
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
    let mut views: BTreeMap<(&str, ViewId), &[String]> = BTreeMap::new();
    let lineages = traces.lineages();
    for t in traces.members() {
        let lineage = lineages[t.member.as_str()];
        for (v, members) in t.views() {
            views.entry((lineage, v)).or_insert(members);
        }
    }
    let mut prev: Option<(&str, ViewId, &[String])> = None;
    for ((lineage, v), members) in views {
        let prev_in_lineage = prev.filter(|p| p.0 == lineage).map(|p| (p.1, p.2));
        if let Some((p, before)) = prev_in_lineage {
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
        prev = Some((lineage, v, members));
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
    fn each_lineage_is_its_own_succession() {
        // {a, b, c} and {d, e} founded apart, with the same view ids; d and e merged
        // away and rejoined as d1, e1.
        let t = traces(
            "a view 1 a b c
             d view 1 d e
             e view 1 d e
             a view 2 a b c d1
             d1 view 2 a b c d1
             a view 3 a b c d1 e1",
        );
        assert!(primary_partition(&t).is_empty(), "{:?}", primary_partition(&t));
        assert_eq!(run(&t).checked, 2);
        // Within a lineage the rule holds as before.
        let t = traces(
            "a view 1 a b c
             d view 1 d e
             d view 2 d f",
        );
        let v = only(Property::PrimaryPartition, primary_partition(&t));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].views, vec![1, 2]);
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
