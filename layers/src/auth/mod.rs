//! # auth — only holders of the group key get messages into the group
//!
//! ## Protocol
//! Going down, every datagram (cast or send) gets a header ([`wire`]): a counter,
//! strictly increasing per layer instance from 1, and a MAC, HMAC-SHA256 keyed with
//! the group key and truncated to 16 bytes, over
//! - the sender (`ctx.me()`), the kind (cast or send) and, for a send, the
//!   destination: the layer does not see the packet header, so it binds what the
//!   packet header says to the MAC instead; a datagram replayed under another sender
//!   id, to another member, or as a cast instead of a send fails;
//! - the counter;
//! - every byte of the datagram above it (the headers of the layers above and the
//!   payload).
//!
//! Going up, the header is checked and stripped: the MAC is recomputed with the
//! sender the datagram arrived from (`Up::Cast(from, _)`/`Up::Send(from, _)`) and this
//! member as destination of a send, and compared in constant time. A datagram too
//! short for the header, of another version, or whose MAC does not match (no key,
//! another key, one flipped bit) is dropped and counted, never passed up. Then the
//! counter is checked against the sender's replay window: the highest counter seen
//! from it and a bitmap of the `replay_window` counters below. A counter already seen
//! or older than the window is dropped and counted; the window only moves for
//! datagrams whose MAC is good, so forged datagrams cannot push it. The first counter
//! heard from a sender starts its window, and every counter below that one counts as
//! seen (a datagram of that sender overtaken by its successor at the very start is
//! dropped too, and recovered by the reliable layer like a loss).
//!
//! Retransmissions of the reliable layer above are new datagrams with new counters,
//! so they pass; a duplicate made by the network is dropped here (the reliable layer
//! would have dropped it anyway). Windows are kept for the members of the current
//! view (and anyone heard since it was installed): on `Down::View` the windows of
//! members outside the new view are forgotten. That bounds the state and lets a
//! member that restarts under the same id (its counter starts again at 1) be heard
//! again once it has been excluded; the price is that datagrams of a member that left
//! can be replayed after it left (from the first one replayed onwards), where they
//! reach the layers above as traffic from a non-member of an old view.
//!
//! ## What it protects, and what not
//! The key is shared by the group: the layer authenticates membership of the group
//! (holding the key), not one member against another; a key holder can forge any
//! member's datagrams. Payloads are not encrypted. Groups should not share a key: a
//! datagram of one group replayed into another group with the same key and the same
//! member ids would pass (the layer does not see the group id).
//!
//! ## Where it goes
//! At the bottom of the stack (`Auth(key: ...), Bundle(), Nak(), ...`), so that
//! everything a member sends — data, retransmissions, negative acknowledgements,
//! stability gossip, heartbeats, membership and flush control — is authenticated. Above
//! a layer it would leave that layer's own traffic open to injection.
//!
//! ## Parameters
//! Exactly one of:
//! - `key`: the key in hex (at least 16 bytes, 32 hex digits);
//! - `key_file`: the path of a file holding the key in hex (surrounding white space
//!   ignored), relative to the working directory;
//! - `key_env`: the name of an environment variable holding the key in hex.
//!
//! A stack with none of them, more than one, a key that is not hex, shorter than 16
//! bytes, an unreadable file or an unset variable is refused when it is built: the
//! registry's error names the problem (never the key). The file and the environment
//! are read once, when the parameters are deserialized (descriptor loading, before
//! the stack runs): that is configuration, not I/O on the event path; the layer
//! itself only holds the key. `AuthParams::default()` (which the registry uses to learn
//! the layer's properties) has no key and gives a layer that refuses all traffic.
//!
//! - `replay_window` (default 4096): how many counters below the highest one seen
//!   from a sender are remembered (rounded up to a multiple of 64, at least 64, at
//!   most 65536). A datagram overtaken by more than that many of its sender's later
//!   datagrams is dropped as a replay; the reliable layer recovers it.
//!
//! ## Properties
//! Requires nothing; provides [`AUTHENTICATED`].
//!
//! ## Events generated
//! `Down::Cast`/`Down::Send`/`Down::CastUnreliable` with the header pushed; `Up::Cast`/`Up::Send` with it
//! popped. Counters: `unauthenticated_dropped` (no header, wrong version, truncated,
//! bad MAC), `replayed_dropped` (counter seen or older than the window),
//! `unkeyed_dropped` (a keyless layer asked to send).
//!
//! ## Testing
//! Unit tests below drive the layer through `Harness` (round trip, every byte
//! tampered, wrong key, sender/destination/kind rebinding, truncation, replays inside
//! and beyond the window, window pruning on views, a keyless layer, parameter errors)
//! and check it never panics on arbitrary input; `wire.rs` tests the format;
//! `layers/tests/auth.rs` runs virtual synchrony over it in the simulator with an
//! outsider holding another key and forged datagrams injected.

pub mod wire;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use stack_core::{Ctx, Down, Header, Layer, MemberId, Msg, Property, Up};
use std::collections::BTreeMap;
use std::fmt;
use thiserror::Error;
pub use wire::AuthHdr;
use wire::{MAC_INPUT, TAG_LEN};

/// Every datagram below was sent by a holder of the group key (and not replayed).
pub const AUTHENTICATED: Property = Property("authenticated");

type HmacSha256 = Hmac<Sha256>;

/// A group key: at least [`AuthKey::MIN_LEN`] bytes. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKey(Vec<u8>);

impl AuthKey {
    /// The shortest key accepted, bytes.
    pub const MIN_LEN: usize = 16;

    /// A key from raw bytes.
    pub fn new(bytes: Vec<u8>) -> Result<AuthKey, KeyError> {
        if bytes.len() < Self::MIN_LEN {
            return Err(KeyError::TooShort { from: "the key".into(), len: bytes.len() });
        }
        Ok(AuthKey(bytes))
    }

    /// A key from hex text (white space around it ignored); `from` names where the
    /// text came from in errors.
    pub fn from_hex(text: &str, from: &str) -> Result<AuthKey, KeyError> {
        let t = text.trim().as_bytes();
        let bad = || KeyError::NotHex { from: from.into() };
        if t.len() & 1 == 1 {
            return Err(bad());
        }
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut bytes = Vec::with_capacity(t.len() / 2);
        for p in t.chunks_exact(2) {
            let (Some(h), Some(l)) = (digit(p[0]), digit(p[1])) else { return Err(bad()) };
            bytes.push(h << 4 | l);
        }
        if bytes.len() < Self::MIN_LEN {
            return Err(KeyError::TooShort { from: from.into(), len: bytes.len() });
        }
        Ok(AuthKey(bytes))
    }
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthKey({} bytes)", self.0.len())
    }
}

/// Why no key could be had from the parameters. Messages never show key material.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error(
        "no key: give one of `key` (hex), `key_file` (a file holding the key in hex) or \
         `key_env` (an environment variable holding it in hex)"
    )]
    Missing,
    #[error("give only one of `key`, `key_file` and `key_env`")]
    Ambiguous,
    #[error("{from} is not a hex key (an even number of hex digits)")]
    NotHex { from: String },
    #[error("{from} is {len} bytes; a key must be at least 16 bytes (32 hex digits)")]
    TooShort { from: String, len: usize },
    #[error("cannot read `key_file` `{path}`: {reason}")]
    File { path: String, reason: String },
    #[error("`key_env`: environment variable `{0}` is not set (or not unicode)")]
    Env(String),
}

/// The parameters as written in a descriptor (see the module documentation); they
/// deserialize into [`AuthParams`] by reading the key.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSpec {
    pub key: Option<String>,
    pub key_file: Option<String>,
    pub key_env: Option<String>,
    pub replay_window: Option<usize>,
}

impl AuthSpec {
    /// Reads the key (from the file or the environment if so asked).
    pub fn resolve(self) -> Result<AuthParams, KeyError> {
        let key = match (self.key, self.key_file, self.key_env) {
            (None, None, None) => return Err(KeyError::Missing),
            (Some(k), None, None) => AuthKey::from_hex(&k, "`key`")?,
            (None, Some(path), None) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| KeyError::File { path: path.clone(), reason: e.to_string() })?;
                AuthKey::from_hex(&text, &format!("the content of `key_file` `{path}`"))?
            }
            (None, None, Some(var)) => {
                let text = std::env::var(&var).map_err(|_| KeyError::Env(var.clone()))?;
                AuthKey::from_hex(&text, &format!("`key_env` `{var}`"))?
            }
            _ => return Err(KeyError::Ambiguous),
        };
        let d = AuthParams::default();
        Ok(AuthParams {
            key: Some(key),
            replay_window: self.replay_window.unwrap_or(d.replay_window),
        })
    }
}

impl TryFrom<AuthSpec> for AuthParams {
    type Error = KeyError;
    fn try_from(s: AuthSpec) -> Result<Self, KeyError> {
        s.resolve()
    }
}

/// Parameters of [`Auth`]: the key, already read. Deserialized from an [`AuthSpec`];
/// the default has no key (a layer that refuses all traffic).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "AuthSpec")]
pub struct AuthParams {
    pub key: Option<AuthKey>,
    /// Counters remembered below the highest one per sender.
    pub replay_window: usize,
}

impl Default for AuthParams {
    fn default() -> Self {
        AuthParams { key: None, replay_window: 4096 }
    }
}

impl AuthParams {
    /// Parameters with this key and the default window.
    pub fn with_key(key: AuthKey) -> Self {
        AuthParams { key: Some(key), ..Self::default() }
    }
}

/// Counters seen from one sender: the highest, and a bitmap ring of those below it.
struct Window {
    top: u64,
    bits: Box<[u64]>,
}

impl Window {
    /// The window of a sender first heard with counter `c`: every counter below it
    /// counts as seen (it may be a replay of what was sent before this member started
    /// to listen, or before the window was forgotten).
    fn starting_at(c: u64, words: usize) -> Window {
        Window { top: c, bits: vec![u64::MAX; words].into_boxed_slice() }
    }

    fn span(&self) -> u64 {
        self.bits.len() as u64 * 64
    }

    fn slot(&self, c: u64) -> (usize, u64) {
        let i = c % self.span();
        ((i / 64) as usize, 1 << (i % 64))
    }

    /// Records `c` if it was not seen and is not older than the window.
    fn accept(&mut self, c: u64) -> bool {
        if c > self.top {
            if c - self.top >= self.span() {
                self.bits.iter_mut().for_each(|w| *w = 0);
            } else {
                for x in self.top + 1..c {
                    let (w, b) = self.slot(x);
                    self.bits[w] &= !b;
                }
            }
            self.top = c;
            let (w, b) = self.slot(c);
            self.bits[w] |= b;
            return true;
        }
        if self.top - c >= self.span() {
            return false;
        }
        let (w, b) = self.slot(c);
        let fresh = self.bits[w] & b == 0;
        self.bits[w] |= b;
        fresh
    }
}

const KIND_CAST: u8 = 0;
const KIND_SEND: u8 = 1;

/// The keyed MAC state over everything but the datagram's own bytes.
fn mac_over(
    base: &HmacSha256,
    kind: u8,
    sender: MemberId,
    dest: u64,
    counter: u64,
    parts: [&[u8]; 2],
) -> HmacSha256 {
    let mut pre = [0u8; MAC_INPUT.len() + 1 + 8 + 8 + 8];
    let (s, rest) = pre.split_at_mut(MAC_INPUT.len());
    s.copy_from_slice(MAC_INPUT);
    rest[0] = kind;
    rest[1..9].copy_from_slice(&sender.0.to_be_bytes());
    rest[9..17].copy_from_slice(&dest.to_be_bytes());
    rest[17..25].copy_from_slice(&counter.to_be_bytes());
    let mut m = base.clone();
    m.update(&pre);
    m.update(parts[0]);
    m.update(parts[1]);
    m
}

/// The auth layer: see the module documentation.
pub struct Auth {
    /// The keyed HMAC state, cloned per datagram; `None`: refuse all traffic.
    mac: Option<HmacSha256>,
    /// The last counter sent.
    counter: u64,
    window_words: usize,
    peers: BTreeMap<MemberId, Window>,
}

impl Auth {
    pub fn new(p: AuthParams) -> Self {
        let mac = p.key.map(|k| HmacSha256::new_from_slice(&k.0).expect("HMAC takes any key"));
        Auth {
            mac,
            counter: 0,
            window_words: p.replay_window.clamp(64, 65_536).div_ceil(64),
            peers: BTreeMap::new(),
        }
    }

    /// Pushes the header on a datagram going down; `None` when keyless.
    fn seal(&mut self, kind: u8, dest: u64, mut m: Msg, ctx: &mut Ctx) -> Option<Msg> {
        let Some(base) = &self.mac else {
            ctx.count("unkeyed_dropped", 1);
            return None;
        };
        self.counter += 1;
        let full = mac_over(base, kind, ctx.me(), dest, self.counter, [m.headers(), m.body()])
            .finalize()
            .into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        m.push(&AuthHdr { counter: self.counter, tag });
        Some(m)
    }

    /// Checks and pops the header of a datagram going up; `None` if it fails.
    fn open(
        &mut self,
        kind: u8,
        from: MemberId,
        dest: u64,
        mut m: Msg,
        ctx: &mut Ctx,
    ) -> Option<Msg> {
        let Some(base) = &self.mac else {
            ctx.count("unauthenticated_dropped", 1);
            return None;
        };
        let front = m.front();
        let Ok((hdr, n)) = AuthHdr::decode(front) else {
            ctx.count("unauthenticated_dropped", 1);
            return None;
        };
        let mac = mac_over(base, kind, from, dest, hdr.counter, [&front[n..], &[]]);
        if mac.verify_truncated_left(&hdr.tag).is_err() {
            ctx.count("unauthenticated_dropped", 1);
            return None;
        }
        let fresh = match self.peers.get_mut(&from) {
            Some(w) => w.accept(hdr.counter),
            None => {
                self.peers.insert(from, Window::starting_at(hdr.counter, self.window_words));
                true
            }
        };
        if !fresh {
            ctx.count("replayed_dropped", 1);
            return None;
        }
        m.advance(n);
        Some(m)
    }
}

const PROVIDES: &[Property] = &[AUTHENTICATED];

impl Layer for Auth {
    fn name(&self) -> &'static str {
        "auth"
    }
    fn provides(&self) -> &[Property] {
        PROVIDES
    }
    fn header_max(&self) -> usize {
        AuthHdr::MAX_LEN
    }

    fn down(&mut self, ev: Down, ctx: &mut Ctx) {
        match ev {
            Down::Cast(m) => {
                if let Some(m) = self.seal(KIND_CAST, 0, m, ctx) {
                    ctx.down(Down::Cast(m))
                }
            }
            Down::CastUnreliable(m) => {
                if let Some(m) = self.seal(KIND_CAST, 0, m, ctx) {
                    ctx.down(Down::CastUnreliable(m))
                }
            }
            Down::Send(d, m) => {
                if let Some(m) = self.seal(KIND_SEND, d.0, m, ctx) {
                    ctx.down(Down::Send(d, m))
                }
            }
            Down::View(v) => {
                self.peers.retain(|p, _| v.members.contains(p));
                ctx.down(Down::View(v))
            }
            ev => ctx.down(ev),
        }
    }

    fn up(&mut self, ev: Up, ctx: &mut Ctx) {
        match ev {
            Up::Cast(from, m) => {
                if let Some(m) = self.open(KIND_CAST, from, 0, m, ctx) {
                    ctx.up(Up::Cast(from, m))
                }
            }
            Up::Send(from, m) => {
                let me = ctx.me().0;
                if let Some(m) = self.open(KIND_SEND, from, me, m, ctx) {
                    ctx.up(Up::Send(from, m))
                }
            }
            ev => ctx.up(ev),
        }
    }
}

#[cfg(test)]
mod tests;
