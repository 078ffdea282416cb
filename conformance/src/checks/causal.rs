//! Causal order, via vector clocks over the sends.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use super::Outcome;
use crate::property::{Property, Violation};
use crate::trace::{parse_msg_id, EventKind, MemberTrace, Traces, ViewId};

/// Checks **causal** order.
///
/// `m1 -> m2` (m1 causally precedes m2) if the sender of `m2` sent or
/// delivered `m1` before sending `m2`, closed transitively. Every member that
/// delivers both `m1` and `m2` must deliver `m1` first. (This includes FIFO
/// order: `s#1 -> s#2`.)
///
/// Each message gets a vector clock, indexed by sender: entry `s` is the
/// highest `n` such that `s#n -> m` or `s#n = m`. The clocks are computed by
/// replaying all traces together, a member waiting at a delivery until the
/// sender has reached the matching send. A receiver then only needs, per
/// sender, the highest entry over the clocks of what it delivered so far: a
/// later delivery of `s#k` at or below it is a violation. A message whose
/// send is not in the traces contributes only itself. Inconsistent traces (a
/// delivery that would have to precede its own send) do not block the
/// replay: such a delivery then contributes only the message itself.
///
/// Violation: members `[r, sender of m1, sender of m2]`, messages
/// `[m1, m2]` where `r` delivered `m2` before `m1` although `m1 -> m2`,
/// views: delivery views of `m2` and `m1` at `r`. Repeated deliveries are
/// left to [`crate::checks::integrity()`]. Each delivery of a well-formed id
/// counts as one checked item.
pub fn causal(traces: &Traces) -> Vec<Violation> {
    run(traces).violations
}

type Key = (usize, u64);

struct Clocks<'a> {
    /// Sender name -> dimension.
    dims: HashMap<&'a str, usize>,
    /// Dimension -> sender name.
    names: Vec<&'a str>,
    /// Vector clock of each message sent in the traces.
    of: HashMap<Key, Vec<u64>>,
}

impl<'a> Clocks<'a> {
    fn key(&self, id: &str) -> Option<Key> {
        let (s, n) = parse_msg_id(id)?;
        Some((*self.dims.get(s)?, n))
    }
}

fn build(traces: &Traces) -> Clocks<'_> {
    let mut senders: BTreeSet<&str> = BTreeSet::new();
    for t in traces.members() {
        senders.insert(&t.member);
        for e in &t.events {
            if let EventKind::Send { id, .. } | EventKind::Deliver { id, .. } = &e.kind {
                if let Some((s, _)) = parse_msg_id(id) {
                    senders.insert(s);
                }
            }
        }
    }
    let names: Vec<&str> = senders.into_iter().collect();
    let dims: HashMap<&str, usize> = names.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let mut clocks = Clocks { dims, names, of: HashMap::new() };
    let members: Vec<&MemberTrace> = traces.members().collect();
    let own_key = |t: &MemberTrace, id: &str| -> Option<Key> {
        let (s, n) = parse_msg_id(id)?;
        (s == t.member).then(|| clocks.dims.get(s).map(|d| (*d, n)))?
    };
    // Messages whose send is recorded; a delivery of one of those waits for
    // the send so that the message's clock is known.
    let mut sent: HashSet<Key> = HashSet::new();
    let mut own: Vec<Vec<Option<Key>>> = Vec::with_capacity(members.len());
    for t in &members {
        let keys = t
            .events
            .iter()
            .map(|e| match &e.kind {
                EventKind::Send { id, .. } => own_key(t, id),
                _ => None,
            })
            .collect::<Vec<_>>();
        sent.extend(keys.iter().flatten());
        own.push(keys);
    }
    let width = clocks.names.len();
    let mut clock: Vec<Vec<u64>> = vec![vec![0; width]; members.len()];
    let mut pos: Vec<usize> = vec![0; members.len()];
    let mut force: Vec<bool> = vec![false; members.len()];
    let mut queue: VecDeque<usize> = (0..members.len()).collect();
    let mut waiting: HashMap<Key, Vec<usize>> = HashMap::new();
    let mut blocked: BTreeSet<usize> = BTreeSet::new();
    loop {
        while let Some(p) = queue.pop_front() {
            let events = &members[p].events;
            while pos[p] < events.len() {
                match &events[pos[p]].kind {
                    EventKind::Send { .. } => {
                        if let Some(key @ (d, n)) = own[p][pos[p]] {
                            clock[p][d] = clock[p][d].max(n);
                            if let Entry::Vacant(slot) = clocks.of.entry(key) {
                                slot.insert(clock[p].clone());
                                for w in waiting.remove(&key).unwrap_or_default() {
                                    if blocked.remove(&w) {
                                        queue.push_back(w);
                                    }
                                }
                            }
                        }
                    }
                    EventKind::Deliver { id, .. } => {
                        if let Some(key @ (d, n)) = clocks.key(id) {
                            if let Some(vc) = clocks.of.get(&key) {
                                for (c, v) in clock[p].iter_mut().zip(vc) {
                                    *c = (*c).max(*v);
                                }
                            } else if sent.contains(&key) && !force[p] {
                                waiting.entry(key).or_default().push(p);
                                blocked.insert(p);
                                break;
                            } else {
                                clock[p][d] = clock[p][d].max(n);
                            }
                        }
                        force[p] = false;
                    }
                    _ => {}
                }
                pos[p] += 1;
            }
        }
        // Everyone finished, or the remaining members wait on each other:
        // let the first of them go on without the missing clock.
        let Some(p) = blocked.pop_first() else {
            break;
        };
        force[p] = true;
        queue.push_back(p);
    }
    clocks
}

pub(crate) fn run(traces: &Traces) -> Outcome {
    let mut out = Outcome::default();
    let clocks = build(traces);
    let width = clocks.names.len();
    for t in traces.members() {
        let r = t.member.as_str();
        // Per sender: highest n in the causal past of what r delivered so
        // far, and which delivery (id, view) raised it there.
        let mut floor: Vec<u64> = vec![0; width];
        let mut witness: Vec<Option<(&str, ViewId)>> = vec![None; width];
        let mut delivered: HashSet<Key> = HashSet::new();
        for e in &t.events {
            let EventKind::Deliver { id, view } = &e.kind else {
                continue;
            };
            let Some(key @ (d, n)) = clocks.key(id) else {
                continue;
            };
            out.checked += 1;
            if !delivered.insert(key) {
                continue;
            }
            if n <= floor[d] {
                if let Some((later, later_view)) = witness[d] {
                    let later_sender = parse_msg_id(later).map_or("", |(s, _)| s);
                    out.violations.push(
                        Violation::new(
                            Property::Causal,
                            format!(
                                "{r} delivered {id} (line {}) after {later}, which causally follows it",
                                e.line
                            ),
                        )
                        .members([r, clocks.names[d], later_sender])
                        .messages([id.as_str(), later])
                        .views([later_view, *view]),
                    );
                }
            }
            match clocks.of.get(&key) {
                Some(vc) => {
                    for (i, v) in vc.iter().enumerate() {
                        if *v > floor[i] {
                            floor[i] = *v;
                            witness[i] = Some((id.as_str(), *view));
                        }
                    }
                }
                None => {
                    if n > floor[d] {
                        floor[d] = n;
                        witness[d] = Some((id.as_str(), *view));
                    }
                }
            }
        }
    }
    out
}

/// Maps each sent message to its vector clock, keyed by sender name (for
/// tests and diagnostics).
#[cfg(test)]
fn clock_of(traces: &Traces, id: &str) -> Option<std::collections::BTreeMap<String, u64>> {
    let clocks = build(traces);
    let vc = clocks.of.get(&clocks.key(id)?)?;
    Some(
        clocks
            .names
            .iter()
            .zip(vc)
            .filter(|(_, v)| **v > 0)
            .map(|(s, v)| (s.to_string(), *v))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testing::{only, round_robin, strings, to_jsonl, traces};
    use crate::trace::Event;
    use std::collections::BTreeMap;

    // a#1 -> b#1 (b delivered a#1 before sending b#1).
    const CHAIN: &str = "
        a send a#1 1
        b deliver a#1 1
        b send b#1 1
    ";

    #[test]
    fn causal_delivery_passes() {
        let t = traces(&format!(
            "{CHAIN}
             c deliver a#1 1
             c deliver b#1 1
             d deliver b#1 1"
        ));
        assert!(causal(&t).is_empty());
        assert_eq!(run(&t).checked, 4);
    }

    #[test]
    fn inversion_is_caught() {
        let t = traces(&format!(
            "{CHAIN}
             c deliver b#1 1
             c view 2 a b c
             c deliver a#1 2"
        ));
        let v = only(Property::Causal, causal(&t));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].members, strings(&["c", "a", "b"]));
        assert_eq!(v[0].messages, strings(&["a#1", "b#1"]));
        assert_eq!(v[0].views, vec![1, 2]);
    }

    #[test]
    fn transitive_inversion_is_caught() {
        // a#1 -> b#1 -> c#1, and d sees c#1 before a#1. The replay has to
        // wait: d's trace comes before the senders it depends on.
        let t = traces(
            "d deliver c#1 1
             d deliver a#1 1
             c deliver b#1 1
             c send c#1 1
             b deliver a#1 1
             b send b#1 1
             a send a#1 1",
        );
        let v = only(Property::Causal, causal(&t));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].members, strings(&["d", "a", "c"]));
        assert_eq!(v[0].messages, strings(&["a#1", "c#1"]));
        let expect: BTreeMap<String, u64> =
            [("a".to_string(), 1), ("b".to_string(), 1), ("c".to_string(), 1)].into();
        assert_eq!(clock_of(&t, "c#1"), Some(expect));
    }

    #[test]
    fn concurrent_messages_may_come_in_any_order() {
        let t = traces(
            "a send a#1 1
             b send b#1 1
             c deliver a#1 1
             c deliver b#1 1
             d deliver b#1 1
             d deliver a#1 1",
        );
        assert!(causal(&t).is_empty());
    }

    #[test]
    fn sending_order_is_causal() {
        let t = traces(
            "a send a#1 1
             a send a#2 1
             c deliver a#2 1
             c deliver a#1 1",
        );
        let v = only(Property::Causal, causal(&t));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].messages, strings(&["a#1", "a#2"]));
    }

    #[test]
    fn impossible_traces_do_not_hang() {
        // Each member delivers the other's message before sending its own.
        let t = traces(
            "a deliver b#1 1
             a send a#1 1
             b deliver a#1 1
             b send b#1 1",
        );
        assert!(causal(&t).is_empty());
        assert!(clock_of(&t, "a#1").is_some());
        assert!(clock_of(&t, "b#1").is_some());
    }

    #[test]
    fn large_traces() {
        let t = round_robin(&["a", "b", "c", "d"], 5000);
        assert!(t.event_count() >= 100_000);
        // Round n messages are concurrent; earlier rounds precede them.
        assert!(causal(&t).is_empty());
        let c = t.member("c").expect("c");
        let mut events = c.events.clone();
        // At c, move the delivery of a#3000 behind d#3001.
        let at = |events: &[Event], id: &str| {
            events
                .iter()
                .position(|e| matches!(&e.kind, EventKind::Deliver { id: x, .. } if x == id))
                .expect("delivered")
        };
        let moved = events.remove(at(&events, "a#3000"));
        let to = at(&events, "d#3001");
        events.insert(to + 1, moved);
        let mut files: Vec<(String, String)> = Vec::new();
        for m in t.members() {
            let evs = if m.member == "c" { &events } else { &m.events };
            files.push((m.member.clone(), to_jsonl(&m.member, evs)));
        }
        let t = Traces::parse(files).expect("parses");
        let v = only(Property::Causal, causal(&t));
        // a#3000 now comes after the four round-3001 messages that follow it.
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].members, strings(&["c", "a", "a"]));
        assert_eq!(v[0].messages, strings(&["a#3000", "a#3001"]));
    }

    /// Simulates causal broadcast among `k` members driven by `steps`: each
    /// step either casts (the sender delivers its own message at once) or
    /// delivers, at some member, a pending message whose causal
    /// predecessors that member already delivered. Returns trace files.
    fn causal_run(k: usize, steps: &[(u8, u8)]) -> Vec<(String, Vec<EventKind>)> {
        let mut sent: Vec<Vec<Vec<u64>>> = vec![Vec::new(); k]; // clocks per sender
        let mut seen: Vec<Vec<u64>> = vec![vec![0; k]; k]; // delivered count
        let mut events: Vec<Vec<EventKind>> = vec![Vec::new(); k];
        let deliver =
            |events: &mut Vec<Vec<EventKind>>, seen: &mut Vec<Vec<u64>>, p: usize, s: usize| {
                seen[p][s] += 1;
                events[p].push(EventKind::Deliver { id: format!("m{s}#{}", seen[p][s]), view: 1 });
            };
        for &(who, what) in steps {
            let p = usize::from(who) % k;
            if what % 3 == 0 {
                let mut vc = seen[p].clone();
                vc[p] += 1;
                sent[p].push(vc);
                events[p].push(EventKind::Send { id: format!("m{p}#{}", sent[p].len()), view: 1 });
                deliver(&mut events, &mut seen, p, p);
                continue;
            }
            let ready: Vec<usize> = (0..k)
                .filter(|&s| {
                    let next = seen[p][s] as usize;
                    sent[s]
                        .get(next)
                        .is_some_and(|vc| (0..k).all(|t| t == s || seen[p][t] >= vc[t]))
                })
                .collect();
            if !ready.is_empty() {
                let s = ready[usize::from(what) % ready.len()];
                deliver(&mut events, &mut seen, p, s);
            }
        }
        events.into_iter().enumerate().map(|(i, evs)| (format!("m{i}"), evs)).collect()
    }

    fn parse_run(run: &[(String, Vec<EventKind>)]) -> Traces {
        Traces::parse(run.iter().map(|(m, evs)| {
            let evs: Vec<Event> = evs.iter().cloned().map(|kind| Event { line: 0, kind }).collect();
            (m.clone(), to_jsonl(m, &evs))
        }))
        .expect("parses")
    }

    quickcheck::quickcheck! {
        fn causal_broadcast_runs_pass(k: u8, steps: Vec<(u8, u8)>) -> bool {
            let t = parse_run(&causal_run(usize::from(k % 5) + 1, &steps));
            causal(&t).is_empty() && crate::checks::fifo(&t).is_empty()
        }

        fn swapping_two_deliveries_of_one_sender_is_caught(
            k: u8, steps: Vec<(u8, u8)>, pick: u8
        ) -> quickcheck::TestResult {
            let mut run = causal_run(usize::from(k % 5) + 1, &steps);
            // Find a member that delivered two messages of one other sender.
            let mut found = None;
            for (i, (_, evs)) in run.iter().enumerate() {
                let mut by_sender: BTreeMap<String, Vec<usize>> = BTreeMap::new();
                for (j, e) in evs.iter().enumerate() {
                    if let EventKind::Deliver { id, .. } = e {
                        let s = parse_msg_id(id).map(|(s, _)| s.to_string()).unwrap_or_default();
                        if s != format!("m{i}") {
                            by_sender.entry(s).or_default().push(j);
                        }
                    }
                }
                if let Some(at) = by_sender.values().find(|v| v.len() >= 2) {
                    let x = usize::from(pick) % (at.len() - 1);
                    found = Some((i, at[x], at[x + 1]));
                    break;
                }
            }
            let Some((i, x, y)) = found else {
                return quickcheck::TestResult::discard();
            };
            let (later, earlier) = match (&run[i].1[x], &run[i].1[y]) {
                (EventKind::Deliver { id: a, .. }, EventKind::Deliver { id: b, .. }) => {
                    (a.clone(), b.clone())
                }
                _ => return quickcheck::TestResult::error("not deliveries"),
            };
            run[i].1.swap(x, y);
            // Moving a delivery across a send changes that send's causal
            // past too, so other members may be flagged as well; the
            // swapped pair must be among the findings.
            let v = causal(&parse_run(&run));
            quickcheck::TestResult::from_bool(v.iter().any(|v| {
                v.members[0] == format!("m{i}") && v.messages == [later.clone(), earlier.clone()]
            }))
        }
    }
}
