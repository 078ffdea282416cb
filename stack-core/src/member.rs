//! Member identities and views.

use std::fmt;
use std::sync::Arc;

/// One incarnation of one process: a node number and an incarnation counter packed in
/// a `u64`. A process that is excluded and rejoins gets a new incarnation, so traces
/// tell incarnations apart. Displayed as `m<node>.<incarnation>`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MemberId(pub u64);

impl MemberId {
    pub const fn new(node: u32, incarnation: u32) -> MemberId {
        MemberId(((node as u64) << 32) | incarnation as u64)
    }
    pub const fn node(self) -> u32 {
        (self.0 >> 32) as u32
    }
    pub const fn incarnation(self) -> u32 {
        self.0 as u32
    }
    /// The next incarnation of the same node.
    pub const fn next_incarnation(self) -> MemberId {
        MemberId::new(self.node(), self.incarnation().wrapping_add(1))
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m{}.{}", self.node(), self.incarnation())
    }
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a view differs from the one before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ViewReason {
    /// The first view, or a static member list.
    #[default]
    Initial,
    Join,
    Leave,
    Failure,
    Merge,
}

impl ViewReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ViewReason::Initial => "initial",
            ViewReason::Join => "join",
            ViewReason::Leave => "leave",
            ViewReason::Failure => "failure",
            ViewReason::Merge => "merge",
        }
    }
}

/// A view: a monotonically increasing id and the ranked member list, oldest first.
/// Cloning is cheap (the list is shared).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub id: u64,
    pub members: Arc<[MemberId]>,
    pub reason: ViewReason,
}

impl View {
    pub fn new(id: u64, members: Vec<MemberId>, reason: ViewReason) -> View {
        View { id, members: members.into(), reason }
    }
    /// Rank of `m` in the view (0 is the oldest, the coordinator).
    pub fn rank(&self, m: MemberId) -> Option<usize> {
        self.members.iter().position(|&x| x == m)
    }
    pub fn contains(&self, m: MemberId) -> bool {
        self.members.contains(&m)
    }
    /// The coordinator: the oldest member.
    pub fn coordinator(&self) -> Option<MemberId> {
        self.members.first().copied()
    }
    pub fn len(&self) -> usize {
        self.members.len()
    }
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}
