//! Trace checkers for Strata's delivery and membership guarantees.

mod trace;

pub use trace::{
    parse_msg_id, Event, EventKind, MemberTrace, TraceError, Traces, ViewId, TRACE_SUFFIX,
};
