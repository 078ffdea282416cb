//! The application model every simulated member runs, and the workload's payloads.
//!
//! The simulator answers `Block` with `block_ok` and `StateRequest` with
//! [`App::state`] by itself; the [`App`] sees every event and keeps the replicated
//! state. [`DigestApp`] keeps a count and a running FNV-1a hash of deliveries.

use bytes::Bytes;
use stack_core::{AppEvent, MemberId};

/// A member's application: a replicated state fed by the events of its stack.
pub trait App: Send {
    /// Every event the stack hands the application, in order.
    fn on_event(&mut self, ev: &AppEvent);
    /// The state a joiner receives (answer to `StateRequest`).
    fn state(&self) -> Bytes;
    /// The state received by a joiner, before any message of its first view.
    fn set_state(&mut self, state: Bytes);
}

/// The default application: how many casts were delivered and a running hash over
/// `(sender, seq, payload)` of each, in delivery order. State: 16 bytes,
/// `count u64 BE ++ digest u64 BE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestApp {
    pub count: u64,
    pub digest: u64,
}

impl Default for DigestApp {
    fn default() -> Self {
        DigestApp { count: 0, digest: FNV_OFFSET }
    }
}

impl App for DigestApp {
    fn on_event(&mut self, ev: &AppEvent) {
        if let AppEvent::Deliver { from, seq, payload } = ev {
            self.count += 1;
            let mut h = self.digest;
            h = fnv1a(h, &from.0.to_be_bytes());
            h = fnv1a(h, &seq.to_be_bytes());
            self.digest = fnv1a(h, payload);
        }
    }
    fn state(&self) -> Bytes {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(&self.count.to_be_bytes());
        v.extend_from_slice(&self.digest.to_be_bytes());
        Bytes::from(v)
    }
    fn set_state(&mut self, state: Bytes) {
        if state.len() == 16 {
            self.count = u64::from_be_bytes(state[..8].try_into().unwrap());
            self.digest = u64::from_be_bytes(state[8..].try_into().unwrap());
        }
    }
}

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a 64, continued from `h` (start with [`fnv1a_start`]).
pub fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The FNV-1a 64 offset basis.
pub const fn fnv1a_start() -> u64 {
    FNV_OFFSET
}

/// The workload's payload of the `seq`-th cast of `sender`, `len` bytes: the first 16
/// bytes are `sender u64 BE ++ seq u64 BE` (cut short if `len < 16`), then a filler
/// that depends on both, so a receiver can check every byte.
pub fn payload(sender: MemberId, seq: u64, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len);
    fill(&mut v, sender, seq, len);
    Bytes::from(v)
}

fn fill(v: &mut Vec<u8>, sender: MemberId, seq: u64, len: usize) {
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(&sender.0.to_be_bytes());
    head[8..].copy_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&head[..len.min(16)]);
    let k = (sender.0 ^ seq.wrapping_mul(0x9e37_79b9)) as u8;
    v.extend((16..len).map(|i| k.wrapping_add(i as u8)));
}

/// Whether `p` is exactly what [`payload`] makes for `(sender, seq)`.
pub fn payload_ok(sender: MemberId, seq: u64, p: &[u8]) -> bool {
    let mut v = Vec::with_capacity(p.len());
    fill(&mut v, sender, seq, p.len());
    v == p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_encodes_sender_and_seq_and_is_checked() {
        let m = MemberId::new(3, 1);
        let p = payload(m, 7, 40);
        assert_eq!(p.len(), 40);
        assert_eq!(&p[..8], &m.0.to_be_bytes());
        assert_eq!(&p[8..16], &7u64.to_be_bytes());
        assert!(payload_ok(m, 7, &p));
        assert!(!payload_ok(m, 8, &p));
        assert!(!payload_ok(MemberId::new(3, 2), 7, &p));
        let mut bad = p.to_vec();
        bad[30] ^= 1;
        assert!(!payload_ok(m, 7, &bad));
        assert_eq!(payload(m, 7, 5).len(), 5);
        assert!(payload_ok(m, 7, &payload(m, 7, 5)));
    }

    #[test]
    fn digest_app_state_round_trips_and_depends_on_order() {
        let (a, b) = (MemberId::new(1, 0), MemberId::new(2, 0));
        let d = |from, seq| AppEvent::Deliver { from, seq, payload: payload(from, seq, 20) };
        let mut x = DigestApp::default();
        x.on_event(&d(a, 1));
        x.on_event(&d(b, 1));
        let mut y = DigestApp::default();
        y.on_event(&d(b, 1));
        y.on_event(&d(a, 1));
        assert_eq!(x.count, 2);
        assert_ne!(x.digest, y.digest);
        let mut z = DigestApp::default();
        z.set_state(x.state());
        assert_eq!(z, x);
    }
}
