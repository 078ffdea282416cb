//! `membership`: agreed views with majority consent, joins, leaves, exclusion of
//! suspected members, a primary partition, and the flush cut of every view change.
//!
//! # Protocol
//!
//! *Views.* A view has a monotonically increasing id, a ranked member list (oldest
//! first) and a reason. The oldest member not suspected is the *acting coordinator*;
//! it proposes every next view. Views are announced down (`Down::View`, so the layers
//! below number the new view's traffic) before they go up (`Up::View`).
//!
//! *Discovery and join.* On `Down::Join` a process without a view casts `Discover`
//! (the reliable layer sends it unsequenced) every `discover_period_ms`. Every member
//! of a view answers `Here{view, coord, founder, size}`; the process then sends
//! `JoinReq` to the coordinator (again every `retry_ms` until it is in a view). If a whole
//! `discovery_ms` window passes with no `Here` and no `Discover` from a process with a
//! smaller `MemberId`, it founds the group as the singleton view 1 (a later
//! incarnation, which knows the group existed, waits `refound_ms` instead, so an
//! excluded member that cannot reach the group yet does not found a second one).
//! A member of a view answers a `Discover` or `JoinReq` from a process already in
//! that view with the view's `Install` (`installs_resent`): the joiner lost its
//! `Install`, and the coordinator that sent it may have left or failed since.
//! Of processes
//! starting together only the smallest founds; the others defer and join it, so two
//! histories never share a view id when the founders can hear each other.
//!
//! *Lineages and merging.* Processes started in disjoint partitions (or a later
//! incarnation refounding after `refound_ms`) found separate groups, each a
//! *lineage* named by its `founder`, the member of its view 1. The founder travels in
//! `Install` and `Here`, and every member keeps it with its view. The acting
//! coordinator of a primary view casts its `Here` every `merge_ms` as a *beacon*,
//! with `Down::CastUnreliable` (unsequenced, unreliable, charged against no credit:
//! it is meant for processes outside the view). A member hearing the beacon of
//! another lineage compares `(size, Reverse(founder))`: if the other lineage wins
//! (larger, or as large with a smaller founder) it leaves its group the way an
//! excluded member does, `Up::Exit` without having asked (`merged_away`), so the
//! runtime restarts it as a new incarnation that discovers and joins the winner and
//! receives its state by state transfer. Beacons of its own lineage (its view, a
//! stale or excluded member), or of a lineage that loses, are ignored. A blocked
//! minority member compares with the members it still hears (it cannot install a
//! view in its lineage until the partition heals, and may never if its primary side
//! merged away). A discovering process treats a beacon as a `Here`, and turns to a
//! new coordinator only of its current choice's lineage or of one that wins over it.
//! Views of two lineages may share ids: a history is a lineage's sequence of views.
//!
//! *View change: one round of agreement that is also the flush.* Rounds are numbered
//! by ballots `(n, proposer)`. The coordinator starts a round when members are
//! suspected, joins or leaves are pending, or a blocked member probes it:
//! 1. `Prepare{ballot, view, survivors, joiners, leavers}` to every survivor (the
//!    members it does not suspect). A survivor promises the ballot (ignores lower
//!    ones), adopts the exclusions, emits `Up::Block` once, and from now on holds back
//!    casts from non-survivors.
//! 2. After `Down::BlockOk` from above (this member casts nothing more in the view;
//!    it is passed on, so a layer below holding casts back sends them), once every
//!    cast this member passed down has come back up from the reliable layer (a cast
//!    still held below would otherwise be delivered by its sender beyond the cut, or
//!    numbered in the next view), and once the reliable layer's `Progress` covers
//!    every delivered cast, it answers
//!    `Report{delivered, progress, accepted}`: per sender the number of casts of the
//!    layers above it delivered in the view, the reliable layer's counts, and the
//!    proposal it accepted earlier in this change, if any.
//! 3. With every survivor's report the coordinator *proposes*: the accepted proposal
//!    of the highest ballot if any survivor reports one (so a decision taken by a
//!    coordinator that then failed is never contradicted), else the new member list
//!    (survivors minus leavers, in rank order, then joiners) with the *cut*: per
//!    sender the maximum delivered by any survivor (and the same in reliable-layer
//!    units). It sends `Propose{ballot, proposal}`.
//! 4. A survivor accepts it: it tells the layers below `Down::Suspect(non-survivors)`
//!    and `Down::Cut(nak cut)` (so the reliable layer fetches what it misses from any
//!    holder), delivers held casts up to the cut and drops everything beyond it, and
//!    when it has delivered exactly the cut of every sender answers `Ack`.
//! 5. With every survivor's ack the coordinator sends `Install{view}` to the new
//!    members and to the old members not in it, and installs it.
//!
//! Survivors therefore deliver the same set of messages in the old view; messages
//! of a failed sender beyond its cut are delivered by no one. A proposal needs every
//! survivor, and the survivors must weigh a strict majority of the old view (and at
//! least `min_view_weight`): that is the primary-partition rule.
//!
//! *Failures.* `Up::Suspect(set)` from below is suspicion, not a decision. Exclusion
//! is decided by a round that leaves the member out, and is final: a member that
//! learns of a later view without itself (an `Install`, or `Excluded` in answer to a
//! probe) emits `Up::Exit` **without having asked to leave**: that is the signal
//! "excluded: restart me as a new incarnation" for the runtime or simulator. If the
//! coordinator is suspected, the next oldest member not suspected runs the round. A
//! round that gets no answer from some survivor for `round_timeout_ms` is restarted
//! without it (a member failing during a flush does not stall it).
//!
//! *Minority.* A member whose unsuspected view members do not weigh a majority emits
//! `Up::NotPrimary` and `Up::Block`, never installs a view, and probes the members of
//! its view every `probe_ms`. When the partition heals a member of the primary side
//! answers `Excluded` (the member exits and rejoins as a new incarnation) or, if the
//! primary never excluded it, runs a new round that unblocks it.
//!
//! *Leave.* `Down::Leave` sends `LeaveReq` to the coordinator (repeated every
//! `retry_ms`); the leaver takes part in the flush and is left out of the next view,
//! on whose `Install` it emits `Up::Exit`.
//!
//! # Parameters
//!
//! [`MembershipParams`]: `discovery_ms` (1000), `discover_period_ms` (100),
//! `refound_ms` (30000), `merge_ms` (1000; 0 never beacons), `tick_ms`
//! (100), `retry_ms` (500), `round_timeout_ms` (4000), `probe_ms` (500), `weights`
//! (per node number, default 1 each), `min_view_weight` (0).
//!
//! # Properties
//!
//! Requires `reliable-fifo` (nak: reliable point-to-point control messages,
//! per-view FIFO casts, `Progress`) and `suspicion`; provides `views`.
//!
//! # Events generated
//!
//! Down: `Cast` (`Data` tag; `Discover`), `CastUnreliable` (the `Here` beacon),
//! `Send` (`Data`; control messages), `View`, `Suspect`, `Cut`. Up: `View`, `Block`, `NotPrimary`, `Exit`, `Suspect` (passed on),
//! `Progress` (passed on), casts and sends of the layers above. `Down::BlockOk` is
//! passed on. Counters: `views_installed`, `rounds_started`, `beyond_cut_dropped`,
//! `malformed_dropped`, `not_member_dropped`, `probes_sent`, `installs_resent`,
//! `beacons_sent`, `merged_away`.
//!
//! # Testing
//!
//! `tests.rs` drives the layer through `stack_core::testing::Harness` and asserts the
//! exact events and control messages of founding, joining, a round with a failure,
//! the cut, the primary-partition rule, the beacon, the lineage comparison and the
//! exit it causes; `wire.rs` has the header and control
//! message byte vectors, truncation, corruption and quickcheck tests;
//! `layers/tests/vsync*.rs` run whole groups in the simulator against the
//! conformance checkers.

#[cfg(test)]
mod tests;
mod wire;

pub use wire::{Ballot, Ctl, MbrHdr, Proposal};

use serde::Deserialize;
use stack_core::{
    props, Bytes, Ctx, Down, Layer, MemberId, Msg, Property, SeqVector, Time, TimerId, Up, View,
    ViewReason,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// Parameters of the `membership` layer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MembershipParams {
    /// A process that hears nothing of the group for this long founds it.
    pub discovery_ms: u64,
    /// Period of `Discover` casts while looking for the group.
    pub discover_period_ms: u64,
    /// A later incarnation (a process that was a member before, e.g. excluded) founds
    /// the group only after looking for it this long: it knows the group existed, and
    /// founding a second history while it cannot reach the first would split it.
    pub refound_ms: u64,
    /// Period of the housekeeping timer.
    pub tick_ms: u64,
    /// Period of repeated join and leave requests.
    pub retry_ms: u64,
    /// A survivor silent in a round for this long is left out of a new round.
    pub round_timeout_ms: u64,
    /// Period of probes while blocked outside the primary partition.
    pub probe_ms: u64,
    /// Weights of members by node number (others weigh 1), as in Isis.
    pub weights: Vec<(u32, u64)>,
    /// Least total weight of the survivors of a view change.
    pub min_view_weight: u64,
    /// Period of the merge beacon cast by the acting coordinator of a primary view
    /// (0: never; groups founded separately then stay apart).
    pub merge_ms: u64,
}

impl Default for MembershipParams {
    fn default() -> Self {
        MembershipParams {
            discovery_ms: 1000,
            discover_period_ms: 100,
            refound_ms: 30_000,
            tick_ms: 100,
            retry_ms: 500,
            round_timeout_ms: 4000,
            probe_ms: 500,
            weights: Vec::new(),
            min_view_weight: 0,
            merge_ms: 1000,
        }
    }
}

/// Timer: discovery (casts `Discover`, founds the group).
pub const TIMER_DISCOVER: TimerId = TimerId(0);
/// Timer: housekeeping (request retries, round timeouts, probes).
pub const TIMER_TICK: TimerId = TimerId(1);

const REQUIRES: &[Property] = &[props::RELIABLE_FIFO, props::SUSPICION];
const PROVIDES: &[Property] = &[props::VIEWS];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Discovering,
    Member,
    Exited,
}

type Counts = Vec<(MemberId, u64)>;
/// A survivor's report: delivered counts, reliable-layer progress, accepted proposal.
type Report = (Counts, Counts, Option<(Ballot, Proposal)>);

/// A round this member coordinates.
struct Round {
    ballot: Ballot,
    survivors: Vec<MemberId>,
    joiners: Vec<MemberId>,
    leavers: Vec<MemberId>,
    reports: BTreeMap<MemberId, Report>,
    proposal: Option<Proposal>,
    acks: BTreeSet<MemberId>,
    started: Time,
}

/// The `membership` layer.
pub struct Membership {
    p: MembershipParams,
    weights: BTreeMap<u32, u64>,
    phase: Phase,
    view: Option<View>,
    /// The founder of this member's lineage: the member of its view 1.
    founder: Option<MemberId>,
    last_beacon: Time,
    // Discovery.
    disc_until: Time,
    disc_lower: bool,
    disc_coord: Option<MemberId>,
    /// The lineage of `disc_coord`: (size, founder) of its `Here`.
    disc_lineage: Option<(u64, MemberId)>,
    join_sent: Time,
    // Suspicion: reported by the layer below, and decided by a round.
    reported: BTreeSet<MemberId>,
    decided: BTreeSet<MemberId>,
    // Requests the coordinator has to serve.
    joiners: Vec<MemberId>,
    leavers: BTreeSet<MemberId>,
    resync: bool,
    leaving: bool,
    leave_sent: Option<(MemberId, Time)>,
    max_n: u64,
    round: Option<Round>,
    // This member as a survivor of a view change.
    promised: Option<Ballot>,
    accepted: Option<(Ballot, Proposal)>,
    acked: Option<Ballot>,
    pending_report: Option<Ballot>,
    hold: Option<BTreeSet<MemberId>>,
    held: VecDeque<(MemberId, Msg)>,
    delivered: BTreeMap<MemberId, u64>,
    progress: Counts,
    progress_stale: bool,
    /// This member's casts (of the layers above) passed down in this view, and those
    /// of them that came back up from the reliable layer: a layer in between (flow)
    /// may hold casts back, and a report must count every cast this member made.
    own_down: u64,
    own_up: u64,
    block_ok: bool,
    block_sent: bool,
    block_since: Time,
    not_primary: bool,
    last_probe: Time,
}

fn count_of(v: &[(MemberId, u64)], m: MemberId) -> u64 {
    v.iter().find(|e| e.0 == m).map_or(0, |e| e.1)
}

impl Membership {
    pub fn new(p: MembershipParams) -> Self {
        let weights = p.weights.iter().copied().collect();
        Membership {
            p,
            weights,
            phase: Phase::Idle,
            view: None,
            founder: None,
            last_beacon: Time::ZERO,
            disc_until: Time::ZERO,
            disc_lower: false,
            disc_coord: None,
            disc_lineage: None,
            join_sent: Time::ZERO,
            reported: BTreeSet::new(),
            decided: BTreeSet::new(),
            joiners: Vec::new(),
            leavers: BTreeSet::new(),
            resync: false,
            leaving: false,
            leave_sent: None,
            max_n: 0,
            round: None,
            promised: None,
            accepted: None,
            acked: None,
            pending_report: None,
            hold: None,
            held: VecDeque::new(),
            delivered: BTreeMap::new(),
            progress: Vec::new(),
            progress_stale: false,
            own_down: 0,
            own_up: 0,
            block_ok: false,
            block_sent: false,
            block_since: Time::ZERO,
            not_primary: false,
            last_probe: Time::ZERO,
        }
    }

    /// The installed view, if any.
    pub fn view(&self) -> Option<&View> {
        self.view.as_ref()
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn weight(&self, ms: &[MemberId]) -> u64 {
        ms.iter().map(|m| self.weights.get(&m.node()).copied().unwrap_or(1)).sum()
    }

    fn suspected(&self, m: MemberId) -> bool {
        self.reported.contains(&m) || self.decided.contains(&m)
    }

    fn alive(&self) -> Vec<MemberId> {
        match &self.view {
            Some(v) => v.members.iter().copied().filter(|&m| !self.suspected(m)).collect(),
            None => Vec::new(),
        }
    }

    fn acting(&self) -> Option<MemberId> {
        self.alive().first().copied()
    }

    fn view_id(&self) -> u64 {
        self.view.as_ref().map_or(0, |v| v.id)
    }

    fn in_view(&self, m: MemberId) -> bool {
        self.view.as_ref().is_some_and(|v| v.contains(m))
    }

    /// The founder of this member's lineage (set whenever it is in a view).
    fn lineage(&self) -> MemberId {
        self.founder.unwrap_or_default()
    }

    /// `Here` for the current view with `coord` as its coordinator.
    fn here(&self, coord: MemberId) -> Ctl {
        Ctl::Here { view: self.view_id(), coord, founder: self.lineage(), size: self.size() }
    }

    /// The size this member's group counts for when lineages are compared: its view,
    /// or while blocked in a minority the members it still hears (a discovering
    /// process is not lured to a blocked group by the size of its last view).
    fn size(&self) -> u64 {
        if self.not_primary {
            self.alive().len() as u64
        } else {
            self.view.as_ref().map_or(0, |v| v.len() as u64)
        }
    }

    fn ctl_msg(ctx: &Ctx, c: &Ctl) -> Msg {
        let mut m = ctx.new_msg(Bytes::from(c.to_vec()));
        m.push(&MbrHdr::Ctl);
        m
    }

    fn cast_ctl(&mut self, c: Ctl, ctx: &mut Ctx) {
        let m = Self::ctl_msg(ctx, &c);
        ctx.down(Down::Cast(m));
    }

    fn send_ctl(&mut self, to: MemberId, c: Ctl, ctx: &mut Ctx) {
        if to == ctx.me() {
            self.on_ctl(to, c, ctx);
        } else {
            let m = Self::ctl_msg(ctx, &c);
            ctx.down(Down::Send(to, m));
        }
    }

    /// Sends `c` to every member of `to` but this one, then to this one.
    fn send_all(&mut self, to: &[MemberId], c: Ctl, ctx: &mut Ctx) {
        let me = ctx.me();
        for &m in to.iter().filter(|&&m| m != me) {
            self.send_ctl(m, c.clone(), ctx);
        }
        if to.contains(&me) {
            self.send_ctl(me, c, ctx);
        }
    }

    fn block(&mut self, ctx: &mut Ctx) {
        if !self.block_sent {
            self.block_sent = true;
            self.block_since = ctx.now();
            ctx.up(Up::Block);
        }
    }

    fn exit(&mut self, ctx: &mut Ctx) {
        if self.phase == Phase::Exited {
            return;
        }
        self.phase = Phase::Exited;
        self.round = None;
        self.held.clear();
        ctx.cancel_timer(TIMER_DISCOVER);
        ctx.cancel_timer(TIMER_TICK);
        ctx.up(Up::Exit);
    }

    // ---- discovery ------------------------------------------------------------

    /// How long to look for the group before founding it.
    fn found_after(&self, ctx: &Ctx) -> Duration {
        let first = ctx.me().incarnation() == 0;
        Self::ms(if first { self.p.discovery_ms } else { self.p.refound_ms })
    }

    fn start_discovery(&mut self, ctx: &mut Ctx) {
        if self.phase != Phase::Idle {
            return;
        }
        self.phase = Phase::Discovering;
        self.disc_until = ctx.now() + self.found_after(ctx);
        self.cast_ctl(Ctl::Discover, ctx);
        ctx.set_timer_after(TIMER_DISCOVER, Self::ms(self.p.discover_period_ms));
    }

    fn discover_tick(&mut self, ctx: &mut Ctx) {
        if self.phase != Phase::Discovering {
            return;
        }
        let now = ctx.now();
        if let Some(c) = self.disc_coord {
            if now.since(self.join_sent) >= Self::ms(self.p.retry_ms) {
                self.join_sent = now;
                self.send_ctl(c, Ctl::JoinReq, ctx);
            }
        }
        if now >= self.disc_until {
            if self.disc_coord.is_none() && !self.disc_lower {
                let me = ctx.me();
                self.founder = Some(me);
                self.install(View::new(1, vec![me], ViewReason::Initial), ctx);
                return;
            }
            self.disc_until = now + self.found_after(ctx);
            self.disc_lower = false;
            self.disc_coord = None;
            self.disc_lineage = None;
        }
        self.cast_ctl(Ctl::Discover, ctx);
        ctx.set_timer_after(TIMER_DISCOVER, Self::ms(self.p.discover_period_ms));
    }

    // ---- installing -------------------------------------------------------------

    fn install(&mut self, v: View, ctx: &mut Ctx) {
        let me = ctx.me();
        if !v.contains(me) {
            self.exit(ctx);
            return;
        }
        self.phase = Phase::Member;
        self.joiners.retain(|j| !v.contains(*j));
        self.leavers.retain(|l| v.contains(*l));
        self.reported.retain(|m| v.contains(*m));
        self.decided.clear();
        self.resync = false;
        self.leave_sent = None;
        self.round = None;
        self.promised = None;
        self.accepted = None;
        self.acked = None;
        self.pending_report = None;
        self.hold = None;
        self.held.clear();
        self.delivered.clear();
        self.progress.clear();
        self.progress_stale = false;
        self.own_down = 0;
        self.own_up = 0;
        self.block_ok = false;
        self.block_sent = false;
        self.not_primary = false;
        self.view = Some(v.clone());
        ctx.count("views_installed", 1);
        ctx.cancel_timer(TIMER_DISCOVER);
        if !ctx.timer_is_set(TIMER_TICK) {
            ctx.set_timer_after(TIMER_TICK, Self::ms(self.p.tick_ms));
        }
        ctx.down(Down::View(v.clone()));
        ctx.up(Up::View(v));
        if self.leaving {
            self.request_leave(ctx);
        }
        self.check(ctx);
    }

    fn on_install(&mut self, v: View, founder: MemberId, ctx: &mut Ctx) {
        let me = ctx.me();
        match self.phase {
            Phase::Idle | Phase::Discovering => {
                if v.contains(me) {
                    self.founder = Some(founder);
                    self.install(v, ctx);
                }
            }
            Phase::Member => {
                let cur = self.view_id();
                if v.id <= cur || founder != self.lineage() {
                    return;
                }
                let agreed = self
                    .accepted
                    .as_ref()
                    .is_some_and(|(_, p)| p.view == v.id && p.members[..] == v.members[..]);
                if v.contains(me) && v.id == cur + 1 && agreed {
                    self.install(v, ctx);
                } else {
                    // Left out of a later view, or in a view whose cut this member
                    // never reached: either way it cannot go on in this group.
                    self.exit(ctx);
                }
            }
            Phase::Exited => {}
        }
    }

    // ---- deciding when to change the view ---------------------------------------

    /// Re-evaluates the primary-partition rule and whether to start a round.
    fn check(&mut self, ctx: &mut Ctx) {
        if self.phase != Phase::Member {
            return;
        }
        let me = ctx.me();
        let alive = self.alive();
        let members: Vec<MemberId> = self.view.as_ref().map(|v| v.members.to_vec()).unwrap();
        let wa = self.weight(&alive);
        let primary = 2 * wa > self.weight(&members) && wa >= self.p.min_view_weight;
        if !primary {
            if !self.not_primary {
                self.not_primary = true;
                self.round = None;
                ctx.up(Up::NotPrimary);
                self.block(ctx);
            }
            return;
        }
        self.not_primary = false;
        if self.leaving && alive.first() == Some(&me) {
            self.leavers.insert(me);
        }
        if alive.first() != Some(&me) {
            self.round = None;
            return;
        }
        if let Some(pb) = self.promised {
            if pb.by != me && !self.suspected(pb.by) {
                return; // another proposer's round is under way
            }
        }
        if let Some(r) = &self.round {
            if r.survivors.iter().all(|&m| !self.suspected(m)) {
                return;
            }
        }
        let need = alive.len() < members.len()
            || !self.joiners.is_empty()
            || !self.leavers.is_empty()
            || self.resync
            || self.block_sent
            || self.round.is_some();
        if need {
            self.start_round(alive, ctx);
        }
    }

    fn start_round(&mut self, survivors: Vec<MemberId>, ctx: &mut Ctx) {
        let v = self.view.clone().unwrap();
        self.max_n += 1;
        let ballot = Ballot { n: self.max_n, by: ctx.me() };
        let joiners: Vec<MemberId> =
            self.joiners.iter().copied().filter(|j| !v.contains(*j)).collect();
        let leavers: Vec<MemberId> =
            survivors.iter().copied().filter(|m| self.leavers.contains(m)).collect();
        self.resync = false;
        ctx.count("rounds_started", 1);
        self.round = Some(Round {
            ballot,
            survivors: survivors.clone(),
            joiners: joiners.clone(),
            leavers: leavers.clone(),
            reports: BTreeMap::new(),
            proposal: None,
            acks: BTreeSet::new(),
            started: ctx.now(),
        });
        let c = Ctl::Prepare {
            ballot,
            view: v.id,
            members: v.members.to_vec(),
            survivors: survivors.clone(),
            joiners,
            leavers,
        };
        self.send_all(&survivors, c, ctx);
    }

    // ---- participant --------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn on_prepare(
        &mut self,
        from: MemberId,
        ballot: Ballot,
        view: u64,
        members: Vec<MemberId>,
        survivors: Vec<MemberId>,
        ctx: &mut Ctx,
    ) {
        let me = ctx.me();
        if self.phase != Phase::Member || (from != me && self.suspected(from)) {
            return;
        }
        let cur = self.view_id();
        if view < cur {
            self.answer_lagging(from, ctx);
            return;
        }
        if view > cur {
            let agreed = self
                .accepted
                .as_ref()
                .is_some_and(|(_, p)| p.view == view && p.members == members && view == cur + 1);
            if !agreed {
                return;
            }
            let reason = self.accepted.as_ref().unwrap().1.reason;
            self.install(View::new(view, members, reason), ctx);
            if self.phase != Phase::Member {
                return;
            }
        }
        if !survivors.contains(&me) || self.promised.is_some_and(|pb| ballot < pb) {
            return;
        }
        self.promised = Some(ballot);
        self.max_n = self.max_n.max(ballot.n);
        let vm: Vec<MemberId> = self.view.as_ref().unwrap().members.to_vec();
        for m in vm {
            if !survivors.contains(&m) {
                self.decided.insert(m);
            }
        }
        if ballot.by != me && self.round.as_ref().is_some_and(|r| r.ballot < ballot) {
            self.round = None;
        }
        if self.accepted.is_none() {
            self.hold = Some(survivors.iter().copied().collect());
        }
        self.pending_report = Some(ballot);
        self.block(ctx);
        self.try_report(ctx);
    }

    fn answer_lagging(&mut self, to: MemberId, ctx: &mut Ctx) {
        let v = self.view.clone().unwrap();
        let c = if v.contains(to) {
            let founder = self.lineage();
            Ctl::Install { view: v.id, reason: v.reason, members: v.members.to_vec(), founder }
        } else {
            Ctl::Excluded { view: v.id }
        };
        self.send_ctl(to, c, ctx);
    }

    fn try_report(&mut self, ctx: &mut Ctx) {
        let Some(b) = self.pending_report else { return };
        if !self.block_ok || self.progress_stale || self.own_up < self.own_down {
            return;
        }
        self.pending_report = None;
        let c = Ctl::Report {
            ballot: b,
            view: self.view_id(),
            delivered: self.delivered.iter().map(|(m, n)| (*m, *n)).collect(),
            progress: self.progress.clone(),
            accepted: self.accepted.clone(),
        };
        self.send_ctl(b.by, c, ctx);
    }

    fn on_propose(&mut self, from: MemberId, ballot: Ballot, p: Proposal, ctx: &mut Ctx) {
        let me = ctx.me();
        if self.phase != Phase::Member
            || (from != me && self.suspected(from))
            || p.view != self.view_id() + 1
            || self.promised.is_some_and(|pb| ballot < pb)
        {
            return;
        }
        self.promised = Some(ballot);
        self.pending_report = None;
        let first = self.accepted.is_none();
        let v = self.view.clone().unwrap();
        if first {
            let hold = self.hold.take();
            let gone: Vec<MemberId> = v
                .members
                .iter()
                .copied()
                .filter(|m| match &hold {
                    Some(h) => !h.contains(m),
                    None => !p.members.contains(m),
                })
                .collect();
            if !gone.is_empty() {
                ctx.down(Down::Suspect(gone));
            }
            ctx.down(Down::Cut(SeqVector { view: v.id, entries: p.nak_cut.clone() }));
        }
        self.accepted = Some((ballot, p));
        let held = std::mem::take(&mut self.held);
        for (s, m) in held {
            self.deliver_within_cut(s, m, ctx);
        }
        self.check_flushed(ctx);
    }

    fn deliver_within_cut(&mut self, from: MemberId, m: Msg, ctx: &mut Ctx) {
        let cut = self.accepted.as_ref().map_or(0, |(_, p)| count_of(&p.cut, from));
        if self.delivered.get(&from).copied().unwrap_or(0) < cut {
            self.deliver(from, m, ctx);
        } else {
            ctx.count("beyond_cut_dropped", 1);
        }
    }

    fn deliver(&mut self, from: MemberId, m: Msg, ctx: &mut Ctx) {
        *self.delivered.entry(from).or_insert(0) += 1;
        self.progress_stale = true;
        ctx.up(Up::Cast(from, m));
    }

    fn check_flushed(&mut self, ctx: &mut Ctx) {
        let Some((b, p)) = &self.accepted else { return };
        if self.acked == Some(*b) {
            return;
        }
        if p.cut.iter().all(|&(s, n)| self.delivered.get(&s).copied().unwrap_or(0) >= n) {
            let (b, view) = (*b, p.view);
            self.acked = Some(b);
            self.send_ctl(b.by, Ctl::Ack { ballot: b, view }, ctx);
        }
    }

    fn on_cast(&mut self, from: MemberId, m: Msg, ctx: &mut Ctx) {
        if self.phase != Phase::Member {
            ctx.count("not_member_dropped", 1);
            return;
        }
        if from == ctx.me() {
            self.own_up += 1;
        }
        if self.accepted.is_some() {
            self.deliver_within_cut(from, m, ctx);
            self.check_flushed(ctx);
        } else if self.hold.as_ref().is_some_and(|h| !h.contains(&from)) {
            self.held.push_back((from, m));
        } else {
            self.deliver(from, m, ctx);
        }
    }

    // ---- coordinator --------------------------------------------------------------

    fn on_report(&mut self, from: MemberId, ballot: Ballot, view: u64, rep: Report, ctx: &mut Ctx) {
        let cur = self.view_id();
        let Some(r) = self.round.as_mut() else { return };
        if r.ballot != ballot || r.proposal.is_some() || view != cur || !r.survivors.contains(&from)
        {
            return;
        }
        r.reports.insert(from, rep);
        if r.survivors.iter().all(|s| r.reports.contains_key(s)) {
            self.propose(ctx);
        }
    }

    fn propose(&mut self, ctx: &mut Ctx) {
        let v = self.view.clone().unwrap();
        let r = self.round.as_mut().unwrap();
        let prior = r
            .reports
            .values()
            .filter_map(|x| x.2.as_ref())
            .filter(|(_, p)| p.view == v.id + 1)
            .max_by_key(|(b, _)| *b)
            .map(|(_, p)| p.clone());
        let p = prior.unwrap_or_else(|| {
            let mut members: Vec<MemberId> = v
                .members
                .iter()
                .copied()
                .filter(|m| r.survivors.contains(m) && !r.leavers.contains(m))
                .collect();
            for &j in &r.joiners {
                if !members.contains(&j) {
                    members.push(j);
                }
            }
            let max_of = |f: &dyn Fn(&Report) -> u64| r.reports.values().map(f).max().unwrap_or(0);
            let cut = v.members.iter().map(|&m| (m, max_of(&|x| count_of(&x.0, m)))).collect();
            let nak_cut = v.members.iter().map(|&m| (m, max_of(&|x| count_of(&x.1, m)))).collect();
            let reason = if r.survivors.len() < v.members.len() {
                ViewReason::Failure
            } else if !r.leavers.is_empty() {
                ViewReason::Leave
            } else if !r.joiners.is_empty() {
                ViewReason::Join
            } else {
                ViewReason::Merge
            };
            Proposal { view: v.id + 1, reason, members, cut, nak_cut }
        });
        r.proposal = Some(p.clone());
        let (ballot, survivors) = (r.ballot, r.survivors.clone());
        self.send_all(&survivors, Ctl::Propose { ballot, proposal: p }, ctx);
    }

    fn on_ack(&mut self, from: MemberId, ballot: Ballot, view: u64, ctx: &mut Ctx) {
        let Some(r) = self.round.as_mut() else { return };
        let Some(p) = &r.proposal else { return };
        if r.ballot != ballot || p.view != view || !r.survivors.contains(&from) {
            return;
        }
        r.acks.insert(from);
        if r.survivors.iter().all(|s| r.acks.contains(s)) {
            let p = p.clone();
            let old = self.view.clone().unwrap();
            let mut to: Vec<MemberId> = p.members.clone();
            to.extend(old.members.iter().copied());
            to.sort();
            to.dedup();
            let me = ctx.me();
            to.retain(|&m| m != me);
            let founder = self.lineage();
            let c = Ctl::Install {
                view: p.view,
                reason: p.reason,
                members: p.members.clone(),
                founder,
            };
            for m in to {
                self.send_ctl(m, c.clone(), ctx);
            }
            self.install(View::new(p.view, p.members, p.reason), ctx);
        }
    }

    fn request_leave(&mut self, ctx: &mut Ctx) {
        let me = ctx.me();
        match self.acting() {
            Some(c) if c == me => {
                self.leavers.insert(me);
                self.check(ctx);
            }
            Some(c) => {
                let now = ctx.now();
                let due = match self.leave_sent {
                    Some((to, t)) => to != c || now.since(t) >= Self::ms(self.p.retry_ms),
                    None => true,
                };
                if due {
                    self.leave_sent = Some((c, now));
                    let view = self.view_id();
                    self.send_ctl(c, Ctl::LeaveReq { view }, ctx);
                }
            }
            None => {}
        }
    }

    fn tick(&mut self, ctx: &mut Ctx) {
        if self.phase != Phase::Member {
            return;
        }
        let now = ctx.now();
        let me = ctx.me();
        if self.leaving {
            self.request_leave(ctx);
        }
        if let Some(r) = &self.round {
            if now.since(r.started) >= Self::ms(self.p.round_timeout_ms) {
                let silent: Vec<MemberId> = r
                    .survivors
                    .iter()
                    .copied()
                    .filter(|&m| {
                        m != me
                            && match &r.proposal {
                                None => !r.reports.contains_key(&m),
                                Some(_) => !r.acks.contains(&m),
                            }
                    })
                    .collect();
                if silent.is_empty() {
                    self.round.as_mut().unwrap().started = now;
                } else {
                    self.decided.extend(silent);
                }
                self.check(ctx);
            }
        }
        let stuck = self.block_sent
            && now.since(self.block_since) >= Self::ms(self.p.round_timeout_ms)
            && self.round.is_none();
        if (self.not_primary || stuck) && now.since(self.last_probe) >= Self::ms(self.p.probe_ms) {
            self.last_probe = now;
            let v = self.view.clone().unwrap();
            for &m in v.members.iter().filter(|&&m| m != me) {
                ctx.count("probes_sent", 1);
                self.send_ctl(m, Ctl::Probe { view: v.id }, ctx);
            }
        }
        if self.p.merge_ms > 0
            && !self.not_primary
            && self.acting() == Some(me)
            && now.since(self.last_beacon) >= Self::ms(self.p.merge_ms)
        {
            self.last_beacon = now;
            ctx.count("beacons_sent", 1);
            let m = Self::ctl_msg(ctx, &self.here(me));
            ctx.down(Down::CastUnreliable(m));
        }
        if self.phase == Phase::Member {
            ctx.set_timer_after(TIMER_TICK, Self::ms(self.p.tick_ms));
        }
    }

    /// A merge beacon (`Here` cast by the coordinator of a primary view) heard by a
    /// member: if it comes from a group founded separately that wins the comparison,
    /// this member leaves its group as an excluded member does, to rejoin the winner
    /// as a new incarnation.
    fn on_beacon(&mut self, from: MemberId, founder: MemberId, size: u64, ctx: &mut Ctx) {
        let mine = self.lineage();
        if from == ctx.me() || self.in_view(from) || founder == mine {
            return;
        }
        // A blocked minority member stands for the members it still hears.
        if wins((size, founder), (self.size(), mine)) {
            ctx.count("merged_away", 1);
            self.exit(ctx);
        }
    }

    // ---- control messages -----------------------------------------------------------

    fn on_ctl(&mut self, from: MemberId, c: Ctl, ctx: &mut Ctx) {
        let me = ctx.me();
        match c {
            Ctl::Discover => match self.phase {
                Phase::Discovering if from < me => self.disc_lower = true,
                // A joiner added to this view that is still looking for the group
                // lost its Install (and the coordinator that sent it may be gone):
                // it can only be in the view it was added in, since every later view
                // needs its report. Without this answer it would found a second group.
                Phase::Member if self.in_view(from) && from != me => {
                    ctx.count("installs_resent", 1);
                    self.answer_lagging(from, ctx);
                }
                Phase::Member if !self.in_view(from) => {
                    let Some(coord) = self.acting() else { return };
                    let here = self.here(coord);
                    self.send_ctl(from, here, ctx);
                    if coord == me {
                        self.add_joiner(from, ctx);
                    }
                }
                _ => {}
            },
            Ctl::Here { coord, founder, size, .. } => {
                if self.phase != Phase::Discovering {
                    return;
                }
                // Of two groups founded separately, join the one that the other
                // merges into; within one lineage, follow a new coordinator.
                let better = match self.disc_lineage {
                    None => true,
                    Some((s, f)) => f == founder || wins((size, founder), (s, f)),
                };
                if !better {
                    return;
                }
                self.disc_lineage = Some((size, founder));
                if self.disc_coord != Some(coord) {
                    self.disc_coord = Some(coord);
                    self.join_sent = ctx.now();
                    self.send_ctl(coord, Ctl::JoinReq, ctx);
                }
            }
            Ctl::JoinReq => {
                if self.phase == Phase::Member && self.in_view(from) && from != me {
                    ctx.count("installs_resent", 1);
                    self.answer_lagging(from, ctx);
                } else if self.phase == Phase::Member && !self.in_view(from) {
                    match self.acting() {
                        Some(c) if c == me => self.add_joiner(from, ctx),
                        Some(coord) => {
                            let here = self.here(coord);
                            self.send_ctl(from, here, ctx)
                        }
                        None => {}
                    }
                }
            }
            Ctl::LeaveReq { .. } => {
                if self.phase == Phase::Member && self.in_view(from) && self.acting() == Some(me) {
                    self.leavers.insert(from);
                    self.check(ctx);
                }
            }
            Ctl::Prepare { ballot, view, members, survivors, .. } => {
                self.on_prepare(from, ballot, view, members, survivors, ctx)
            }
            Ctl::Report { ballot, view, delivered, progress, accepted } => {
                self.on_report(from, ballot, view, (delivered, progress, accepted), ctx)
            }
            Ctl::Propose { ballot, proposal } => self.on_propose(from, ballot, proposal, ctx),
            Ctl::Ack { ballot, view } => self.on_ack(from, ballot, view, ctx),
            Ctl::Install { view, reason, members, founder } => {
                self.on_install(View::new(view, members, reason), founder, ctx)
            }
            Ctl::Probe { view } => {
                if self.phase != Phase::Member {
                    return;
                }
                let cur = self.view_id();
                if view < cur {
                    self.answer_lagging(from, ctx);
                } else if view == cur
                    && self.in_view(from)
                    && self.round.is_none()
                    && self.acting() == Some(me)
                {
                    self.resync = true;
                    self.check(ctx);
                }
            }
            Ctl::Excluded { view } => {
                if self.phase == Phase::Member && view > self.view_id() {
                    self.exit(ctx);
                }
            }
        }
    }

    fn add_joiner(&mut self, j: MemberId, ctx: &mut Ctx) {
        if !self.joiners.contains(&j) {
            self.joiners.push(j);
        }
        self.check(ctx);
    }

    fn up_msg(&mut self, from: MemberId, cast: bool, mut m: Msg, ctx: &mut Ctx) {
        match m.pop::<MbrHdr>() {
            Ok(MbrHdr::Data) if cast => self.on_cast(from, m, ctx),
            Ok(MbrHdr::Data) => ctx.up(Up::Send(from, m)),
            Ok(MbrHdr::Ctl) => match Ctl::decode(m.front()) {
                Ok(Ctl::Here { founder, size, .. }) if cast && self.phase == Phase::Member => {
                    self.on_beacon(from, founder, size, ctx)
                }
                Ok(c) if self.phase != Phase::Exited => self.on_ctl(from, c, ctx),
                Ok(_) => {}
                Err(_) => ctx.count("malformed_dropped", 1),
            },
            Err(_) => ctx.count("malformed_dropped", 1),
        }
    }
}

/// Whether lineage `a` (size, founder) wins over `b`: the larger group, then the
/// smaller founder. A strict total order on distinct founders, so of two groups
/// hearing each other's beacons exactly one merges into the other.
fn wins(a: (u64, MemberId), b: (u64, MemberId)) -> bool {
    (a.0, std::cmp::Reverse(a.1)) > (b.0, std::cmp::Reverse(b.1))
}

impl Default for Membership {
    fn default() -> Self {
        Membership::new(MembershipParams::default())
    }
}

impl Layer for Membership {
    fn name(&self) -> &'static str {
        "membership"
    }

    fn requires(&self) -> &[Property] {
        REQUIRES
    }

    fn provides(&self) -> &[Property] {
        PROVIDES
    }

    fn header_max(&self) -> usize {
        1
    }

    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        match ev {
            Down::Cast(mut m) => {
                if self.phase == Phase::Member {
                    self.own_down += 1;
                }
                m.push(&MbrHdr::Data);
                ctx.down(Down::Cast(m));
            }
            Down::Send(d, mut m) => {
                m.push(&MbrHdr::Data);
                ctx.down(Down::Send(d, m));
            }
            Down::Join => self.start_discovery(ctx),
            Down::Leave => match self.phase {
                Phase::Member => {
                    self.leaving = true;
                    self.request_leave(ctx);
                }
                Phase::Exited => {}
                Phase::Idle | Phase::Discovering => self.exit(ctx),
            },
            Down::BlockOk => {
                // Passed on: a layer below that holds casts back (flow) sends them now.
                self.block_ok = true;
                ctx.down(Down::BlockOk);
                self.try_report(ctx);
            }
            other => ctx.down(other),
        }
    }

    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        match ev {
            Up::Cast(from, m) => self.up_msg(from, true, m, ctx),
            Up::Send(from, m) => self.up_msg(from, false, m, ctx),
            Up::Suspect(s) => {
                let me = ctx.me();
                self.reported = s.iter().copied().filter(|&m| m != me && self.in_view(m)).collect();
                ctx.up(Up::Suspect(s));
                self.check(ctx);
            }
            Up::Progress(sv) => {
                if self.phase == Phase::Member && sv.view == self.view_id() {
                    self.progress = sv.entries.clone();
                    self.progress_stale = false;
                    self.try_report(ctx);
                }
                ctx.up(Up::Progress(sv));
            }
            other => ctx.up(other),
        }
    }

    fn timer(&mut self, id: TimerId, ctx: &mut Ctx) {
        match id {
            TIMER_DISCOVER => self.discover_tick(ctx),
            TIMER_TICK => self.tick(ctx),
            _ => {}
        }
    }
}
