//! View agreement: one member list per view id.

use std::collections::{BTreeMap, BTreeSet};

use super::{list, Outcome};
use crate::property::{Property, Violation};
use crate::trace::{Traces, ViewId};

/// Checks **view_agreement**.
///
/// * All members that install view `v` install it with the same member list
///   (compared as written, order included), within a lineage
///   ([`Traces::lineages`]: groups founded separately have their own view ids).
///   One violation per disagreeing view: members: every member that installed
///   `v` (sorted), views `[v]`; the detail lists each variant and who installed
///   it.
/// * A member's own name is in every view it installs. Violation: members
///   `[m]`, views `[v]`.
///
/// Each view installation counts as one checked item.
pub fn view_agreement(traces: &Traces) -> Vec<Violation> {
    run(traces).violations
}

/// The member lists a view was installed with, each with its installers.
type Variants<'a> = BTreeMap<&'a [String], BTreeSet<&'a str>>;

pub(crate) fn run(traces: &Traces) -> Outcome {
    let mut out = Outcome::default();
    let mut variants: BTreeMap<(&str, ViewId), Variants<'_>> = BTreeMap::new();
    let lineages = traces.lineages();
    for t in traces.members() {
        let m = t.member.as_str();
        let lineage = lineages[m];
        for (v, members) in t.views() {
            out.checked += 1;
            if !members.iter().any(|x| x == m) {
                out.violations.push(
                    Violation::new(
                        Property::ViewAgreement,
                        format!("{m} installed view {v} {} which does not list it", list(members)),
                    )
                    .members([m])
                    .views([v]),
                );
            }
            variants.entry((lineage, v)).or_default().entry(members).or_default().insert(m);
        }
    }
    for ((_, v), lists) in variants {
        if lists.len() < 2 {
            continue;
        }
        let installers: BTreeSet<&str> = lists.values().flatten().copied().collect();
        let described: Vec<String> = lists
            .iter()
            .map(|(members, by)| format!("{} by {}", list(*members), list(by.iter())))
            .collect();
        out.violations.push(
            Violation::new(
                Property::ViewAgreement,
                format!(
                    "view {v} has {} different member lists: {}",
                    lists.len(),
                    described.join("; ")
                ),
            )
            .members(installers)
            .views([v]),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{only, strings, traces};

    #[test]
    fn agreeing_views_pass() {
        let t = traces(
            "a view 1 a b
             b view 1 a b
             a view 2 a b c
             c view 2 a b c",
        );
        assert!(view_agreement(&t).is_empty());
        assert_eq!(run(&t).checked, 4);
    }

    #[test]
    fn disagreement_is_caught() {
        let t = traces(
            "a view 1 a b
             b view 1 a b
             c view 1 a b d
             a view 2 a
             b view 2 a b",
        );
        let v = only(Property::ViewAgreement, view_agreement(&t));
        assert_eq!(v.len(), 3, "{v:?}");
        assert_eq!(v[0].members, strings(&["c"]));
        assert_eq!(v[0].views, vec![1]);
        assert_eq!(v[1].members, strings(&["a", "b", "c"]));
        assert_eq!(v[1].views, vec![1]);
        assert!(v[1].detail.contains("[a, b, d] by [c]"), "{}", v[1].detail);
        assert_eq!(v[2].members, strings(&["a", "b"]));
        assert_eq!(v[2].views, vec![2]);
    }

    #[test]
    fn groups_founded_separately_have_their_own_view_ids() {
        // {a, b} and {c, d} founded apart; c merged away and rejoined as c1.
        let t = traces(
            "a view 1 a
             a view 2 a b
             b view 2 a b
             c view 1 c
             c view 2 c d
             d view 2 c d
             a view 3 a b c1
             c1 view 3 a b c1",
        );
        assert!(view_agreement(&t).is_empty(), "{:?}", view_agreement(&t));
        // One member installing views of both lineages ties them: a real disagreement.
        let t = traces(
            "a view 1 a
             b view 1 b
             b view 2 a b",
        );
        let v = only(Property::ViewAgreement, view_agreement(&t));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].views, vec![1]);
    }

    #[test]
    fn own_name_missing_is_caught() {
        let t = traces("a view 4 b c");
        let v = only(Property::ViewAgreement, view_agreement(&t));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].members, strings(&["a"]));
        assert_eq!(v[0].views, vec![4]);
    }
}
