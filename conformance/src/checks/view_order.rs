//! View order: views are installed in increasing id.

use super::Outcome;
use crate::property::{Property, Violation};
use crate::trace::{EventKind, Traces, ViewId};

/// Checks **view_order**: each member installs views in strictly increasing
/// id. Every installation whose id is not above the member's previous view
/// is a violation: members `[m]`, views `[previous, installed]`. Each view
/// installation counts as one checked item.
pub fn view_order(traces: &Traces) -> Vec<Violation> {
    run(traces).violations
}

pub(crate) fn run(traces: &Traces) -> Outcome {
    let mut out = Outcome::default();
    for t in traces.members() {
        let m = t.member.as_str();
        let mut prev: Option<(ViewId, usize)> = None;
        for e in &t.events {
            let EventKind::View { view, .. } = e.kind else {
                continue;
            };
            out.checked += 1;
            if let Some((p, line)) = prev.filter(|(p, _)| *p >= view) {
                out.violations.push(
                    Violation::new(
                        Property::ViewOrder,
                        format!(
                            "{m} installed view {view} (line {}) after view {p} (line {line})",
                            e.line
                        ),
                    )
                    .members([m])
                    .views([p, view]),
                );
            }
            prev = Some((view, e.line));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{only, strings, traces};

    #[test]
    fn increasing_views_pass() {
        let t = traces(
            "a view 1 a
             a view 2 a b
             a view 7 a b
             b view 2 a b",
        );
        assert!(view_order(&t).is_empty());
        assert_eq!(run(&t).checked, 4);
    }

    #[test]
    fn repeated_or_decreasing_views_are_caught() {
        let t = traces(
            "a view 1 a
             a view 3 a
             a view 2 a
             b view 5 b
             b view 5 b",
        );
        let v = only(Property::ViewOrder, view_order(&t));
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0].members, strings(&["a"]));
        assert_eq!(v[0].views, vec![3, 2]);
        assert_eq!(v[1].members, strings(&["b"]));
        assert_eq!(v[1].views, vec![5, 5]);
    }
}
