//! The trace writer: one JSON object per line, the fields every checker relies on.
//!
//! ```text
//! {"m":"<member>","ev":"view","view":<u64>,"members":["<member>",...]}
//! {"m":"<member>","ev":"send","id":"<member>#<n>","view":<u64>}
//! {"m":"<member>","ev":"deliver","id":"<member>#<n>","view":<u64>}
//! {"m":"<member>","ev":"end"}
//! ```
//!
//! Every line also carries `"t"`, the member's time in microseconds. Member names are
//! [`MemberId`] displays (`m<node>.<incarnation>`) and need no escaping.

use crate::member::{MemberId, View};
use crate::time::Time;
use std::io::{self, Write};

/// Writes one member's trace.
pub struct TraceWriter {
    out: Box<dyn Write + Send>,
    me: MemberId,
    line: Vec<u8>,
    /// The first write error, if any; later writes are skipped.
    error: Option<io::Error>,
}

impl TraceWriter {
    pub fn new(me: MemberId, out: Box<dyn Write + Send>) -> TraceWriter {
        TraceWriter { out, me, line: Vec::with_capacity(128), error: None }
    }

    fn emit(&mut self, t: Time, body: impl FnOnce(&mut Vec<u8>)) {
        if self.error.is_some() {
            return;
        }
        self.line.clear();
        let _ = write!(self.line, "{{\"m\":\"{}\",\"t\":{},", self.me, t.0 / 1000);
        body(&mut self.line);
        self.line.extend_from_slice(b"}\n");
        if let Err(e) = self.out.write_all(&self.line) {
            self.error = Some(e);
        }
    }

    pub fn view(&mut self, t: Time, v: &View) {
        self.emit(t, |l| {
            let _ = write!(l, "\"ev\":\"view\",\"view\":{},\"members\":[", v.id);
            for (i, m) in v.members.iter().enumerate() {
                if i > 0 {
                    l.push(b',');
                }
                let _ = write!(l, "\"{m}\"");
            }
            let _ = write!(l, "],\"reason\":\"{}\"", v.reason.as_str());
        })
    }

    pub fn send(&mut self, t: Time, seq: u64, view: u64) {
        let me = self.me;
        self.emit(t, |l| {
            let _ = write!(l, "\"ev\":\"send\",\"id\":\"{me}#{seq}\",\"view\":{view}");
        })
    }

    pub fn deliver(&mut self, t: Time, from: MemberId, seq: u64, view: u64) {
        self.emit(t, |l| {
            let _ = write!(l, "\"ev\":\"deliver\",\"id\":\"{from}#{seq}\",\"view\":{view}");
        })
    }

    /// The member is alive at the end of a clean run.
    pub fn end(&mut self, t: Time) {
        self.emit(t, |l| l.extend_from_slice(b"\"ev\":\"end\""));
        self.flush();
    }

    pub fn flush(&mut self) {
        if let Err(e) = self.out.flush() {
            self.error.get_or_insert(e);
        }
    }

    /// The first write error, if any.
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }
}

impl Drop for TraceWriter {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}
