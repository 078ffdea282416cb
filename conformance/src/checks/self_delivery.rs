//! Self delivery: a member delivers its own messages before leaving a view.

use std::collections::{BTreeMap, HashMap};

use super::{list, Outcome};
use crate::property::{Property, Violation};
use crate::trace::{EventKind, Traces, ViewId};

/// Checks **self_delivery**: a member that sends `m` in view `v` and later
/// installs another view or writes `end` delivered `m` itself before
/// leaving `v`, i.e. between the `send` and the next `view` or `end` event.
///
/// `v` is the view installed at the send (the send's `view` field if none
/// was installed yet). One violation per member and left view: members
/// `[m]`, messages: the undelivered ids in send order, views `[v, w]` when
/// leaving for view `w`, `[v]` when ending. A member whose trace stops (a
/// crash) is not checked for its last view. Each send counts as one checked
/// item.
pub fn self_delivery(traces: &Traces) -> Vec<Violation> {
    run(traces).violations
}

pub(crate) fn run(traces: &Traces) -> Outcome {
    let mut out = Outcome::default();
    for t in traces.members() {
        let m = t.member.as_str();
        // Undelivered own sends of the current view, in send order.
        let mut pending: BTreeMap<usize, (&str, ViewId)> = BTreeMap::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, (current, e)) in t.events_in_views().enumerate() {
            let next = match &e.kind {
                EventKind::Send { id, view } => {
                    out.checked += 1;
                    pending.insert(i, (id, current.unwrap_or(*view)));
                    index.insert(id, i);
                    continue;
                }
                EventKind::Deliver { id, .. } => {
                    if let Some(at) = index.remove(id.as_str()) {
                        pending.remove(&at);
                    }
                    continue;
                }
                EventKind::View { view, .. } => Some(*view),
                EventKind::End => None,
            };
            if pending.is_empty() {
                continue;
            }
            let ids: Vec<&str> = pending.values().map(|(id, _)| *id).collect();
            let mut views: Vec<ViewId> = pending.values().map(|(_, v)| *v).collect();
            views.dedup();
            let how = match next {
                Some(w) => {
                    views.push(w);
                    format!("installed view {w}")
                }
                None => "ended".to_string(),
            };
            out.violations.push(
                Violation::new(
                    Property::SelfDelivery,
                    format!(
                        "{m} {how} (line {}) without delivering its own {}",
                        e.line,
                        list(&ids)
                    ),
                )
                .members([m])
                .messages(ids)
                .views(views),
            );
            pending.clear();
            index.clear();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{only, strings, traces};

    #[test]
    fn self_delivered_messages_pass() {
        let t = traces(
            "a view 1 a b
             a send a#1 1
             a send a#2 1
             a deliver a#2 1
             a deliver a#1 1
             a view 2 a b
             a send a#3 2
             a deliver a#3 2
             a end
             b view 1 a b
             b send b#1 1",
        );
        // b crashed before delivering b#1: not checked.
        assert!(self_delivery(&t).is_empty());
        assert_eq!(run(&t).checked, 4);
    }

    #[test]
    fn leaving_a_view_early_is_caught() {
        let t = traces(
            "a view 1 a b
             a send a#1 1
             a send a#2 1
             a deliver a#1 1
             a view 2 a b
             a deliver a#2 2
             a send a#3 2
             a end",
        );
        let v = only(Property::SelfDelivery, self_delivery(&t));
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0].members, strings(&["a"]));
        assert_eq!(v[0].messages, strings(&["a#2"]));
        assert_eq!(v[0].views, vec![1, 2]);
        assert_eq!(v[1].messages, strings(&["a#3"]));
        assert_eq!(v[1].views, vec![2]);
    }
}
