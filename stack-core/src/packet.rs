//! The packet header every transport puts in front of a stack's bytes.
//!
//! ```text
//! 0      2       3       4           8                16               24
//! +------+-------+-------+-----------+----------------+----------------+
//! | "St" | ver=1 | flags | group u32 | sender u64     | dest u64 (opt) |
//! +------+-------+-------+-----------+----------------+----------------+
//! ```
//!
//! `flags` bit 0: a destination follows (point-to-point send); other bits must be zero.
//! Anything else arriving on the port — foreign traffic, another version, garbage,
//! truncated datagrams — fails [`PacketHeader::decode`] and is dropped and counted by
//! the transport.

use crate::member::MemberId;
use crate::wire::{Header, Reader, WireError, Writer};

pub const MAGIC: [u8; 2] = *b"St";
pub const VERSION: u8 = 1;
const FLAG_DEST: u8 = 1;

/// Identifies a group on a shared socket.
pub type GroupId = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketHeader {
    pub group: GroupId,
    pub sender: MemberId,
    /// `Some` for a point-to-point send, `None` for a multicast.
    pub dest: Option<MemberId>,
}

impl PacketHeader {
    pub const BASE_LEN: usize = 16;
}

impl Header for PacketHeader {
    const MAX_LEN: usize = Self::BASE_LEN + 8;

    fn encoded_len(&self) -> usize {
        Self::BASE_LEN + if self.dest.is_some() { 8 } else { 0 }
    }

    fn encode(&self, out: &mut [u8]) {
        let mut w = Writer::new(out);
        w.bytes(&MAGIC);
        w.u8(VERSION);
        w.u8(if self.dest.is_some() { FLAG_DEST } else { 0 });
        w.u32(self.group);
        w.u64(self.sender.0);
        if let Some(d) = self.dest {
            w.u64(d.0);
        }
    }

    fn decode(buf: &[u8]) -> Result<(Self, usize), WireError> {
        let mut r = Reader::new(buf);
        if r.take(2)? != MAGIC {
            return Err(WireError::Invalid("bad magic"));
        }
        if r.u8()? != VERSION {
            return Err(WireError::Invalid("unsupported wire version"));
        }
        let flags = r.u8()?;
        if flags & !FLAG_DEST != 0 {
            return Err(WireError::Invalid("unknown flags"));
        }
        let group = r.u32()?;
        let sender = MemberId(r.u64()?);
        let dest = if flags & FLAG_DEST != 0 { Some(MemberId(r.u64()?)) } else { None };
        Ok((PacketHeader { group, sender, dest }, r.position()))
    }
}

/// Derives a group id from a group name (FNV-1a), so descriptors can name groups.
pub fn group_id(name: &str) -> GroupId {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(h: &PacketHeader) -> Vec<u8> {
        let mut v = vec![0; h.encoded_len()];
        h.encode(&mut v);
        v
    }

    #[test]
    fn fixed_bytes() {
        let h = PacketHeader { group: 0x01020304, sender: MemberId::new(5, 6), dest: None };
        assert_eq!(enc(&h), [b'S', b't', 1, 0, 1, 2, 3, 4, 0, 0, 0, 5, 0, 0, 0, 6]);
        let d = PacketHeader { dest: Some(MemberId::new(7, 0)), ..h };
        let b = enc(&d);
        assert_eq!(b[3], 1);
        assert_eq!(&b[16..], &[0, 0, 0, 7, 0, 0, 0, 0]);
        assert_eq!(PacketHeader::decode(&b), Ok((d, 24)));
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error() {
        let h =
            PacketHeader { group: 9, sender: MemberId::new(1, 1), dest: Some(MemberId::new(2, 0)) };
        let b = enc(&h);
        for n in 0..b.len() {
            assert!(PacketHeader::decode(&b[..n]).is_err(), "prefix {n}");
        }
        for (i, bad) in [(0, b'X'), (2, 2), (3, 0x80)] {
            let mut c = b.clone();
            c[i] = bad;
            assert!(PacketHeader::decode(&c).is_err(), "byte {i}");
        }
    }

    quickcheck::quickcheck! {
        fn never_panics_on_garbage(bytes: Vec<u8>) -> bool {
            let _ = PacketHeader::decode(&bytes);
            true
        }
    }
}
