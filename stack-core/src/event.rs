//! The event vocabulary every layer shares (after Horus's HCPI).
//!
//! Downcalls travel from the application towards the transport, upcalls the other way.
//! A layer that does not handle an event passes it on untouched.

use crate::member::{MemberId, View};
use crate::message::Msg;
use bytes::Bytes;

/// A layer-local timer name. Each layer numbers its own timers; setting a timer that
/// is already set moves it. A spurious or late timeout must be harmless.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(pub u32);

/// Per-sender progress in the units of the reliable layer (its sequence numbers):
/// `(sender, n)` means every message of `sender` numbered below `n` is covered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeqVector {
    /// The view these counts belong to; counts restart with every view.
    pub view: u64,
    /// Sorted by member.
    pub entries: Vec<(MemberId, u64)>,
}

impl SeqVector {
    pub fn get(&self, m: MemberId) -> u64 {
        self.entries.binary_search_by_key(&m, |e| e.0).map(|i| self.entries[i].1).unwrap_or(0)
    }
}

/// Events from the application towards the network.
#[derive(Debug)]
pub enum Down {
    /// Multicast to the current view.
    Cast(Msg),
    /// Multicast outside the view's reliable stream: unsequenced, unreliable, charged
    /// against no flow-control credit, and heard by any process on the network (also
    /// by members of other groups). For rare, repeated announcements of a layer that
    /// must reach beyond its view (a membership layer's merge beacon); receivers get
    /// it as an `Up::Cast` outside the FIFO order of the sender's casts.
    CastUnreliable(Msg),
    /// Point-to-point to one member.
    Send(MemberId, Msg),
    /// Ask to join the group.
    Join,
    /// Leave the group cleanly.
    Leave,
    /// The application has stopped sending in the current view (answer to `Block`).
    BlockOk,
    /// The application's state, answering `StateRequest`.
    StateReply(Bytes),
    /// A view being installed, announced to the layers below the one that decided it.
    View(View),
    /// Messages every member holds (from the stability layer to the reliable layer).
    Stable(SeqVector),
    /// Members to stop waiting for (from membership to the layers below it).
    Suspect(Vec<MemberId>),
    /// The flush cut of a view change (from membership to the reliable layer): every
    /// cast of `sender` numbered below `n` in view `view` exists and must be obtained,
    /// from any member holding it if its sender is gone. Units are the reliable layer's
    /// sequence numbers, as in `Progress`.
    Cut(SeqVector),
}

/// Events from the network towards the application.
#[derive(Debug)]
pub enum Up {
    /// A multicast delivered, from `MemberId`.
    Cast(MemberId, Msg),
    /// A point-to-point message, from `MemberId`.
    Send(MemberId, Msg),
    /// A new view.
    View(View),
    /// Stop sending in the current view and answer `BlockOk`.
    Block,
    /// Messages every member of the view holds.
    Stable(SeqVector),
    /// What this member has received contiguously (from the reliable layer upward, so
    /// the stability layer can gossip it).
    Progress(SeqVector),
    /// Members suspected of having failed. Suspicion is not a decision.
    Suspect(Vec<MemberId>),
    /// Send the group state for joiners (answer with `StateReply`).
    StateRequest,
    /// The group state, delivered to a joiner before any message of its first view.
    State(Bytes),
    /// The send window opened or closed (flow control); the application sees
    /// back-pressure while it is closed.
    Flow { open: bool },
    /// This member is in a minority partition and cannot install views.
    NotPrimary,
    /// This member has left the group (or was excluded) and its stack is done.
    Exit,
}

impl Down {
    /// Short name for counters and debugging.
    pub fn kind(&self) -> &'static str {
        match self {
            Down::Cast(_) => "cast",
            Down::CastUnreliable(_) => "cast_unreliable",
            Down::Send(..) => "send",
            Down::Join => "join",
            Down::Leave => "leave",
            Down::BlockOk => "block_ok",
            Down::StateReply(_) => "state_reply",
            Down::View(_) => "view",
            Down::Stable(_) => "stable",
            Down::Suspect(_) => "suspect",
            Down::Cut(_) => "cut",
        }
    }
}

impl Up {
    /// Short name for counters and debugging.
    pub fn kind(&self) -> &'static str {
        match self {
            Up::Cast(..) => "cast",
            Up::Send(..) => "send",
            Up::View(_) => "view",
            Up::Block => "block",
            Up::Stable(_) => "stable",
            Up::Progress(_) => "progress",
            Up::Suspect(_) => "suspect",
            Up::StateRequest => "state_request",
            Up::State(_) => "state",
            Up::Flow { .. } => "flow",
            Up::NotPrimary => "not_primary",
            Up::Exit => "exit",
        }
    }
}
