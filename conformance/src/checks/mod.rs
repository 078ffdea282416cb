//! One checker per [`Property`]. Each public checker is a
//! `fn(&Traces) -> Vec<Violation>`; violations come out in a deterministic
//! order (by member name, then trace order).

use std::collections::HashMap;

use crate::property::{Property, Violation};
use crate::trace::{parse_msg_id, EventKind, Traces, ViewId};

mod causal;
mod fifo;
mod integrity;
mod liveness;
mod primary_partition;
mod same_view;
mod self_delivery;
mod total;
mod view_agreement;
mod view_order;
mod virtual_synchrony;

pub use causal::causal;
pub use fifo::fifo;
pub use integrity::integrity;
pub use liveness::liveness;
pub use primary_partition::primary_partition;
pub use same_view::same_view;
pub use self_delivery::self_delivery;
pub use total::total;
pub use view_agreement::view_agreement;
pub use view_order::view_order;
pub use virtual_synchrony::virtual_synchrony;

/// What one checker found: how many items it examined and the violations.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub checked: u64,
    pub violations: Vec<Violation>,
}

/// Runs the checker for `property`, returning its [`Outcome`].
pub(crate) fn run(property: Property, traces: &Traces) -> Outcome {
    match property {
        Property::Integrity => integrity::run(traces),
        Property::Fifo => fifo::run(traces),
        Property::Causal => causal::run(traces),
        Property::Total => total::run(traces),
        Property::ViewAgreement => view_agreement::run(traces),
        Property::ViewOrder => view_order::run(traces),
        Property::SameView => same_view::run(traces),
        Property::VirtualSynchrony => virtual_synchrony::run(traces),
        Property::SelfDelivery => self_delivery::run(traces),
        Property::PrimaryPartition => primary_partition::run(traces),
        Property::Liveness => liveness::run(traces),
    }
}

/// Runs the checkers for `properties` (each once, in the given order) and
/// returns all violations, grouped by property in that order.
pub fn check(traces: &Traces, properties: &[Property]) -> Vec<Violation> {
    let mut out = Vec::new();
    for p in dedup(properties) {
        out.extend(run(p, traces).violations);
    }
    out
}

pub(crate) fn dedup(properties: &[Property]) -> Vec<Property> {
    let mut seen = Vec::new();
    for &p in properties {
        if !seen.contains(&p) {
            seen.push(p);
        }
    }
    seen
}

/// Where and in which view a message was sent, taken from the sender's own
/// trace (first `send` event carrying the id).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendInfo<'a> {
    pub sender: &'a str,
    pub view: ViewId,
}

/// Index of all sends whose id names the member whose trace records them.
pub(crate) fn send_index(traces: &Traces) -> HashMap<&str, SendInfo<'_>> {
    let mut index = HashMap::new();
    for trace in traces.members() {
        for e in &trace.events {
            if let EventKind::Send { id, view } = &e.kind {
                if parse_msg_id(id).is_some_and(|(s, _)| s == trace.member) {
                    index
                        .entry(id.as_str())
                        .or_insert(SendInfo { sender: &trace.member, view: *view });
                }
            }
        }
    }
    index
}

/// Formats a list of names as `[a, b]`.
pub(crate) fn list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| s.as_ref().to_string()).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builds traces from compact snippets, one event per line:
    //! `a view 1 a b` | `a send a#1 1` | `a deliver b#1 1` | `a end`
    //! (`<member> <ev> ...`). Members appear in the order first named. The
    //! snippet is turned into JSON lines and parsed with [`Traces::parse`].

    use crate::property::{Property, Violation};
    use crate::trace::{Event, EventKind, Traces};

    pub fn traces(snippet: &str) -> Traces {
        let mut files: Vec<(String, String)> = Vec::new();
        for line in snippet.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let (m, ev, rest) = match words.as_slice() {
                [m, ev, rest @ ..] => (*m, *ev, rest),
                _ => panic!("bad snippet line {line:?}"),
            };
            let json = match (ev, rest) {
                ("view", [v, members @ ..]) => serde_json::json!({
                    "m": m, "ev": "view", "view": v.parse::<u64>().expect("view id"),
                    "members": members,
                }),
                ("send" | "deliver", [id, v]) => serde_json::json!({
                    "m": m, "ev": ev, "id": id, "view": v.parse::<u64>().expect("view id"),
                }),
                ("end", []) => serde_json::json!({"m": m, "ev": "end"}),
                _ => panic!("bad snippet line {line:?}"),
            };
            let idx = match files.iter().position(|(name, _)| name == m) {
                Some(i) => i,
                None => {
                    files.push((m.to_string(), String::new()));
                    files.len() - 1
                }
            };
            files[idx].1.push_str(&json.to_string());
            files[idx].1.push('\n');
        }
        Traces::parse(files).expect("snippet parses")
    }

    /// Renders events of `member` back into trace lines.
    pub fn to_jsonl(member: &str, events: &[Event]) -> String {
        let mut text = String::new();
        for e in events {
            let json = match &e.kind {
                EventKind::View { view, members } => serde_json::json!({
                    "m": member, "ev": "view", "view": view, "members": members,
                }),
                EventKind::Send { id, view } => serde_json::json!({
                    "m": member, "ev": "send", "id": id, "view": view,
                }),
                EventKind::Deliver { id, view } => serde_json::json!({
                    "m": member, "ev": "deliver", "id": id, "view": view,
                }),
                EventKind::End => serde_json::json!({"m": member, "ev": "end"}),
            };
            text.push_str(&json.to_string());
            text.push('\n');
        }
        text
    }

    /// A correct run: every member installs view 1 with all members, then
    /// in each of `rounds` rounds casts one message and delivers that
    /// round's messages of all members in member order, then ends.
    pub fn round_robin(members: &[&str], rounds: u64) -> Traces {
        let files = members.iter().map(|m| {
            let mut events = vec![EventKind::View {
                view: 1,
                members: members.iter().map(|s| s.to_string()).collect(),
            }];
            for n in 1..=rounds {
                events.push(EventKind::Send { id: format!("{m}#{n}"), view: 1 });
                for s in members {
                    events.push(EventKind::Deliver { id: format!("{s}#{n}"), view: 1 });
                }
            }
            events.push(EventKind::End);
            let events: Vec<Event> =
                events.into_iter().map(|kind| Event { line: 0, kind }).collect();
            (m.to_string(), to_jsonl(m, &events))
        });
        Traces::parse(files).expect("generated run parses")
    }

    /// Asserts every violation is for `property` and returns them.
    pub fn only(property: Property, violations: Vec<Violation>) -> Vec<Violation> {
        for v in &violations {
            assert_eq!(v.property, property, "{v}");
        }
        violations
    }

    pub fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }
}
