//! Trace checkers for Strata's delivery and membership guarantees.
//!
//! # Trace format
//!
//! Every member writes `<member>.jsonl`: one JSON object per line, in the
//! order events happened at that member.
//!
//! ```text
//! {"m":"<member>","ev":"view","view":<u64>,"members":["<member>",...]}
//! {"m":"<member>","ev":"send","id":"<member>#<n>","view":<u64>}
//! {"m":"<member>","ev":"deliver","id":"<member>#<n>","view":<u64>}
//! {"m":"<member>","ev":"end"}
//! ```
//!
//! * `<member>` names one incarnation of one process (e.g. `"m3.1"`); a
//!   restarted process is a new member. The `m` of every line must be the
//!   member the file belongs to.
//! * `<n>` counts the member's application casts from 1.
//! * `send` is written when the application casts, with the sender's
//!   current view; `deliver` when a message is handed to the application,
//!   with the receiver's current view.
//! * `end` is written only by a member still alive and connected when the
//!   run ends cleanly; a crashed member's trace just stops.
//! * Extra fields are ignored, as are lines with unknown `ev` values and
//!   blank lines. A stack without membership writes one `view` line at start
//!   with the static member list. Any other malformed line is a
//!   [`TraceError`] naming file and line.
//!
//! # Properties
//!
//! Each [`Property`] has one checker in [`checks`], a
//! `fn(&Traces) -> Vec<Violation>`; its documentation states exactly what is
//! checked and what a violation names. In short (`s#n` is the `n`-th cast
//! of `s`; "sent in `v`" refers to the `send` line's view):
//!
//! * **integrity** — no member delivers an id twice; every delivered id is
//!   well formed and, when its sender's trace is present, was sent by it;
//!   the `k`-th send of `m` has id `m#k`.
//! * **fifo** — per receiver and sender, delivered sequence numbers strictly
//!   increase, and no message is skipped that the sender sent in the same
//!   view as the next one delivered.
//! * **causal** — if the sender of `m2` sent or delivered `m1` before
//!   sending `m2` (transitively), every member delivering both delivers
//!   `m1` first.
//! * **total** — any two members deliver their common messages in the same
//!   relative order.
//! * **view_agreement** — all installations of a view id in a lineage have
//!   the same member list, and a member is in every view it installs.
//! * **view_order** — each member installs views in strictly increasing id.
//! * **same_view** — a message is delivered in the view it was sent in (and
//!   each `send`/`deliver` carries the member's installed view).
//! * **virtual_synchrony** — members making the same view transition
//!   `v -> w` in a lineage delivered the same set of messages in `v`.
//! * **self_delivery** — a member that sends in `v` and then leaves `v`
//!   (installs a view or ends) delivered its message before leaving.
//! * **primary_partition** — ordered by id, each view of a lineage keeps a
//!   strict majority of the previous view's members.
//! * **liveness** — among members that wrote `end`, each delivered every
//!   message the others sent in views it installed, and all ended in the
//!   same view.
//!
//! A *lineage* ([`Traces::lineages`]) is one history of views: groups founded
//! separately (in disjoint partitions, until one merges into the other) have
//! their own view ids. Lineages are read from the traces: members listed in a
//! common view share one.
//!
//! Output is deterministic: members are processed by name, events in trace
//! order.
//!
//! ```
//! use conformance::{check, Property, Traces};
//!
//! let a = r#"{"m":"a","ev":"view","view":1,"members":["a"]}
//! {"m":"a","ev":"send","id":"a#1","view":1}
//! {"m":"a","ev":"deliver","id":"a#1","view":1}
//! {"m":"a","ev":"end"}"#;
//! let traces = Traces::parse([("a.jsonl", a)])?;
//! assert!(check(&traces, &Property::ALL).is_empty());
//! # Ok::<(), conformance::TraceError>(())
//! ```

pub mod campaign;
pub mod checks;
pub mod netns;
mod property;
mod report;
pub mod scenario;
mod trace;

pub use checks::{
    causal, check, fifo, integrity, liveness, primary_partition, same_view, self_delivery, total,
    view_agreement, view_order, virtual_synchrony,
};
pub use property::{Property, Violation};
pub use report::{summary_json, PropertySummary, Report};
pub use trace::{
    parse_msg_id, Event, EventKind, MemberTrace, TraceError, Traces, ViewId, TRACE_SUFFIX,
};
