//! Loading and parsing member traces.
//!
//! A run produces one `<member>.jsonl` file per member incarnation; see the
//! crate documentation for the line format. [`Traces`] holds the parsed
//! events of all members, keyed and iterated by member name.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// A view identifier.
pub type ViewId = u64;

/// File name suffix of a trace file.
pub const TRACE_SUFFIX: &str = ".jsonl";

/// One event recorded by a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The member installed view `view` with the given member list.
    View {
        /// Id of the installed view.
        view: ViewId,
        /// Members of the view, as written in the trace.
        members: Vec<String>,
    },
    /// The application cast message `id` while `view` was current.
    Send {
        /// Message id, normally `<member>#<n>`.
        id: String,
        /// View current at the sender.
        view: ViewId,
    },
    /// Message `id` was delivered to the application while `view` was current.
    Deliver {
        /// Message id, normally `<sender>#<n>`.
        id: String,
        /// View current at the receiver.
        view: ViewId,
    },
    /// The member was alive and connected when the run ended cleanly.
    End,
}

/// An event together with the (1-based) line of the trace file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// 1-based line number in the member's trace file.
    pub line: usize,
    /// What happened.
    pub kind: EventKind,
}

/// All events of one member, in the order they happened at that member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberTrace {
    /// Member name (one incarnation of one process).
    pub member: String,
    /// The file (or label) the trace was read from.
    pub file: String,
    /// Events in trace order. Lines with unknown `ev` values are not kept.
    pub events: Vec<Event>,
}

impl MemberTrace {
    /// Whether the member wrote an `end` event.
    pub fn ended(&self) -> bool {
        self.events.iter().any(|e| e.kind == EventKind::End)
    }

    /// The views installed by this member, in trace order.
    pub fn views(&self) -> impl Iterator<Item = (ViewId, &[String])> + '_ {
        self.events.iter().filter_map(|e| match &e.kind {
            EventKind::View { view, members } => Some((*view, members.as_slice())),
            _ => None,
        })
    }

    /// The last view this member installed, if any.
    pub fn final_view(&self) -> Option<ViewId> {
        self.views().last().map(|(v, _)| v)
    }

    /// Iterates the events together with the view installed at the member
    /// when the event happened (for a `view` event: the view it installs).
    /// `None` before the first `view` event.
    pub fn events_in_views(&self) -> impl Iterator<Item = (Option<ViewId>, &Event)> + '_ {
        let mut current = None;
        self.events.iter().map(move |e| {
            if let EventKind::View { view, .. } = e.kind {
                current = Some(view);
            }
            (current, e)
        })
    }
}

/// Error while loading or parsing traces.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// A line of a trace file is malformed.
    #[error("{file}:{line}: {message}")]
    Parse {
        /// File (or label) of the trace.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// A trace file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A trace file name does not name a member.
    #[error("{file}: trace file name does not name a member")]
    BadName {
        /// The offending name.
        file: String,
    },
    /// Two trace files name the same member.
    #[error("{file}: member {member:?} already loaded from {first}")]
    DuplicateMember {
        /// The member name.
        member: String,
        /// The second file naming the member.
        file: String,
        /// The first file naming the member.
        first: String,
    },
}

/// The traces of all members of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traces {
    members: BTreeMap<String, MemberTrace>,
}

impl Traces {
    /// Loads every `*.jsonl` file in `dir` (not recursively). The member name
    /// is the file name without the `.jsonl` suffix. Errors name the path.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Traces, TraceError> {
        let dir = dir.as_ref();
        let io_err = |path: &Path, source| TraceError::Io { path: path.to_path_buf(), source };
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let entry = entry.map_err(|e| io_err(dir, e))?;
            let path = entry.path();
            let Some(name) = path.file_name() else {
                continue;
            };
            let name = name.to_string_lossy();
            if !name.ends_with(TRACE_SUFFIX) || !path.is_file() {
                continue;
            }
            files.push((name.into_owned(), path));
        }
        files.sort();
        let mut traces = Traces::default();
        for (name, path) in files {
            let text = fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
            let member = member_name(&name)?;
            traces.add(member, &path.display().to_string(), &text)?;
        }
        Ok(traces)
    }

    /// Parses traces from `(name, text)` pairs. `name` is a member name or a
    /// trace file name (`<member>.jsonl`); it is also used in error messages.
    pub fn parse<I, N, T>(member_files: I) -> Result<Traces, TraceError>
    where
        I: IntoIterator<Item = (N, T)>,
        N: AsRef<str>,
        T: AsRef<str>,
    {
        let mut traces = Traces::default();
        for (name, text) in member_files {
            let name = name.as_ref();
            let member = member_name(name)?;
            traces.add(member, name, text.as_ref())?;
        }
        Ok(traces)
    }

    fn add(&mut self, member: &str, file: &str, text: &str) -> Result<(), TraceError> {
        if let Some(first) = self.members.get(member) {
            return Err(TraceError::DuplicateMember {
                member: member.to_string(),
                file: file.to_string(),
                first: first.file.clone(),
            });
        }
        let trace = parse_member(member, file, text)?;
        self.members.insert(member.to_string(), trace);
        Ok(())
    }

    /// All member traces, ordered by member name.
    pub fn members(&self) -> impl Iterator<Item = &MemberTrace> + '_ {
        self.members.values()
    }

    /// The trace of `member`, if present.
    pub fn member(&self, member: &str) -> Option<&MemberTrace> {
        self.members.get(member)
    }

    /// Number of member traces.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no trace was loaded.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Total number of events over all members.
    pub fn event_count(&self) -> usize {
        self.members.values().map(|t| t.events.len()).sum()
    }

    /// The lineage of every member with a trace: the smallest member name of its
    /// class when members are related by being listed in a common installed view
    /// (installer included). Groups founded separately (in disjoint partitions,
    /// before merging) are separate histories whose view ids may repeat; a member
    /// (one incarnation) belongs to one history all its life and a view of a history
    /// always lists a member of the previous one, so these classes are the
    /// histories. Checkers that compare views by id compare them within a lineage.
    pub fn lineages(&self) -> BTreeMap<&str, &str> {
        fn root<'a>(parent: &BTreeMap<&'a str, &'a str>, mut x: &'a str) -> &'a str {
            while let Some(&p) = parent.get(x) {
                if p == x {
                    break;
                }
                x = p;
            }
            x
        }
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        for t in self.members.values() {
            parent.entry(t.member.as_str()).or_insert(t.member.as_str());
            for (_, members) in t.views() {
                for m in members.iter().map(String::as_str).chain([t.member.as_str()]) {
                    parent.entry(m).or_insert(m);
                    let (a, b) = (root(&parent, m), root(&parent, &t.member));
                    // The smaller name becomes the root, so a class is named by its
                    // smallest member.
                    if a < b {
                        parent.insert(b, a);
                    } else if b < a {
                        parent.insert(a, b);
                    }
                }
            }
        }
        self.members.keys().map(|m| (m.as_str(), root(&parent, m))).collect()
    }
}

fn member_name(name: &str) -> Result<&str, TraceError> {
    let member = name.strip_suffix(TRACE_SUFFIX).unwrap_or(name);
    if member.is_empty() || member.contains('/') || member.contains('\\') {
        return Err(TraceError::BadName { file: name.to_string() });
    }
    Ok(member)
}

/// Splits a message id `<sender>#<n>` into sender and sequence number.
///
/// Returns `None` for malformed ids: no `#`, an empty sender, or `n` not a
/// canonical positive decimal number (no sign, no leading zeros).
pub fn parse_msg_id(id: &str) -> Option<(&str, u64)> {
    let (sender, n) = id.rsplit_once('#')?;
    if sender.is_empty()
        || n.is_empty()
        || n.starts_with('0')
        || !n.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let n: u64 = n.parse().ok()?;
    Some((sender, n))
}

fn parse_member(member: &str, file: &str, text: &str) -> Result<MemberTrace, TraceError> {
    let mut events = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let fail = |message: String| TraceError::Parse { file: file.to_string(), line, message };
        if let Some(kind) = parse_line(member, raw).map_err(fail)? {
            events.push(Event { line, kind });
        }
    }
    Ok(MemberTrace { member: member.to_string(), file: file.to_string(), events })
}

fn parse_line(member: &str, raw: &str) -> Result<Option<EventKind>, String> {
    let value: Value = serde_json::from_str(raw).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("line is not a JSON object".to_string());
    };
    let m = str_field(&obj, "m")?;
    if m != member {
        return Err(format!("event of member {m:?} in the trace of member {member:?}"));
    }
    let kind = match str_field(&obj, "ev")? {
        "view" => {
            let members = match obj.get("members") {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        _ => Err("field \"members\" must hold strings".to_string()),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Some(_) => return Err("field \"members\" must be an array".to_string()),
                None => return Err("missing field \"members\"".to_string()),
            };
            EventKind::View { view: view_field(&obj)?, members }
        }
        "send" => {
            EventKind::Send { id: str_field(&obj, "id")?.to_string(), view: view_field(&obj)? }
        }
        "deliver" => {
            EventKind::Deliver { id: str_field(&obj, "id")?.to_string(), view: view_field(&obj)? }
        }
        "end" => EventKind::End,
        _ => return Ok(None),
    };
    Ok(Some(kind))
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("field {key:?} must be a string")),
        None => Err(format!("missing field {key:?}")),
    }
}

fn view_field(obj: &Map<String, Value>) -> Result<ViewId, String> {
    match obj.get("view") {
        Some(v) => {
            v.as_u64().ok_or_else(|| "field \"view\" must be a non-negative integer".to_string())
        }
        None => Err("missing field \"view\"".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"{"m":"a","ev":"view","view":1,"members":["a","b"],"t":5,"reason":"start"}
{"m":"a","ev":"send","id":"a#1","view":1}

{"m":"a","ev":"gossip","view":"not-a-number"}
{"m":"a","ev":"deliver","id":"a#1","view":1}
{"m":"a","ev":"end"}
"#;

    #[test]
    fn parses_events_and_ignores_extras() {
        let t = Traces::parse([("a.jsonl", A)]).expect("valid trace");
        let a = t.member("a").expect("member a");
        assert_eq!(a.events.len(), 4);
        assert_eq!(
            a.events[0].kind,
            EventKind::View { view: 1, members: vec!["a".into(), "b".into()] }
        );
        assert_eq!(a.events[2].line, 5);
        assert!(a.ended());
        assert_eq!(a.final_view(), Some(1));
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let cases = [
            ("{\"m\":\"a\",\"ev\":\"view\",\"view\":1}", "members"),
            ("{\"m\":\"a\",\"ev\":\"send\",\"view\":1}", "\"id\""),
            ("{\"m\":\"a\",\"ev\":\"deliver\",\"id\":\"a#1\",\"view\":-1}", "view"),
            ("{\"m\":\"b\",\"ev\":\"end\"}", "member"),
            ("{\"ev\":\"end\"}", "\"m\""),
            ("[1,2]", "object"),
            ("{\"m\":\"a\",\"ev\":", "JSON"),
        ];
        for (line, needle) in cases {
            let text = format!("{{\"m\":\"a\",\"ev\":\"end\"}}\n{line}\n");
            let err = Traces::parse([("a.jsonl", text)]).expect_err(line);
            let msg = err.to_string();
            assert!(msg.starts_with("a.jsonl:2: "), "{msg}");
            assert!(msg.contains(needle), "{msg} should mention {needle}");
        }
    }

    #[test]
    fn duplicate_member_is_an_error() {
        let err = Traces::parse([("a", ""), ("a.jsonl", "")]).expect_err("duplicate");
        assert!(matches!(err, TraceError::DuplicateMember { .. }));
        assert!(Traces::parse([(".jsonl", "")]).is_err());
    }

    #[test]
    fn msg_ids() {
        assert_eq!(parse_msg_id("m3.1#12"), Some(("m3.1", 12)));
        assert_eq!(parse_msg_id("a#b#2"), Some(("a#b", 2)));
        for bad in ["a", "#1", "a#", "a#0", "a#01", "a#+1", "a#x", "a#99999999999999999999"] {
            assert_eq!(parse_msg_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn loads_directory() {
        let dir = std::env::temp_dir().join(format!("conformance-trace-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        fs::write(dir.join("a.jsonl"), A).expect("write");
        fs::write(dir.join("b.jsonl"), "{\"m\":\"b\",\"ev\":\"end\"}\n").expect("write");
        fs::write(dir.join("notes.txt"), "not a trace").expect("write");
        let t = Traces::from_dir(&dir).expect("load");
        assert_eq!(t.len(), 2);
        assert_eq!(t.event_count(), 5);
        fs::write(dir.join("c.jsonl"), "{\"m\":\"c\"}\n").expect("write");
        let err = Traces::from_dir(&dir).expect_err("bad line");
        let msg = err.to_string();
        assert!(msg.contains("c.jsonl:1:"), "{msg}");
        fs::remove_dir_all(&dir).expect("cleanup");
        assert!(matches!(Traces::from_dir(&dir), Err(TraceError::Io { .. })));
    }
}
