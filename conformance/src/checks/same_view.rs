//! Same view: messages are delivered in the view they were sent in.

use super::{send_index, Outcome};
use crate::property::{Property, Violation};
use crate::trace::{EventKind, Traces};

/// Checks **same_view**.
///
/// * A message is delivered in the view in which it was sent: the `view` of
///   each `deliver` equals the `view` of the sender's `send` of that id
///   (checked when the send is in the traces). Violation: members
///   `[receiver, sender]`, messages `[id]`, views `[send view, delivery
///   view]`. Each such delivery counts as one checked item.
/// * The `view` written on a `send` or `deliver` is the view the member
///   installed last (when it installed one). Violation: members `[m]`,
///   messages `[id]`, views `[installed view, written view]`.
pub fn same_view(traces: &Traces) -> Vec<Violation> {
    run(traces).violations
}

pub(crate) fn run(traces: &Traces) -> Outcome {
    let mut out = Outcome::default();
    let sends = send_index(traces);
    for t in traces.members() {
        let m = t.member.as_str();
        for (current, e) in t.events_in_views() {
            let (id, view, what) = match &e.kind {
                EventKind::Send { id, view } => (id, *view, "sent"),
                EventKind::Deliver { id, view } => (id, *view, "delivered"),
                _ => continue,
            };
            if let Some(cv) = current.filter(|cv| *cv != view) {
                out.violations.push(
                    Violation::new(
                        Property::SameView,
                        format!(
                            "{m} {what} {id} (line {}) marked view {view} while in view {cv}",
                            e.line
                        ),
                    )
                    .members([m])
                    .messages([id])
                    .views([cv, view]),
                );
            }
            if what != "delivered" {
                continue;
            }
            let Some(send) = sends.get(id.as_str()) else {
                continue;
            };
            out.checked += 1;
            if send.view != view {
                out.violations.push(
                    Violation::new(
                        Property::SameView,
                        format!(
                            "{m} delivered {id} (line {}) in view {view}, {} sent it in view {}",
                            e.line, send.sender, send.view
                        ),
                    )
                    .members([m, send.sender])
                    .messages([id])
                    .views([send.view, view]),
                );
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
    fn same_view_passes() {
        let t = traces(
            "a view 1 a b
             a send a#1 1
             a view 2 a b
             a send a#2 2
             b view 1 a b
             b deliver a#1 1
             b view 2 a b
             b deliver a#2 2
             b deliver x#1 2",
        );
        assert!(same_view(&t).is_empty());
        assert_eq!(run(&t).checked, 2);
    }

    #[test]
    fn delivery_in_a_later_view_is_caught() {
        let t = traces(
            "a view 1 a b
             a send a#1 1
             b view 1 a b
             b view 2 a b
             b deliver a#1 2",
        );
        let v = only(Property::SameView, same_view(&t));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].members, strings(&["b", "a"]));
        assert_eq!(v[0].messages, strings(&["a#1"]));
        assert_eq!(v[0].views, vec![1, 2]);
    }

    #[test]
    fn view_field_must_match_installed_view() {
        let t = traces(
            "a view 3 a
             a send a#1 2",
        );
        let v = only(Property::SameView, same_view(&t));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].members, strings(&["a"]));
        assert_eq!(v[0].views, vec![3, 2]);
    }
}
