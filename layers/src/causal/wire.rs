//! The `causal` header.
//!
//! ```text
//! tag 0  Data  k:v  k × (rank:v value:v)    a cast and the entries of its sender's
//!                                            vector that changed since its previous cast
//! ```
//!
//! `v` is a LEB128 varint. Ranks are positions in the current view, strictly increasing
//! within one header, below [`MAX_MEMBERS`]; `k ≤ MAX_MEMBERS`. The sender's own entry
//! is never sent: it is one more than in the sender's previous cast (reliable FIFO
//! below).

use smallvec::SmallVec;
use stack_core::wire::{varint_len, Header, Reader, WireError, Writer, VARINT_MAX};

/// Largest view the wire format admits.
pub const MAX_MEMBERS: usize = 1024;

/// Changed vector entries: `(rank, value)`, sorted by rank.
pub type Delta = SmallVec<[(u32, u64); 8]>;

const T_DATA: u8 = 0;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CausalHdr {
    Data { delta: Delta },
}

impl CausalHdr {
    /// Header length of a cast in a view of `members` whose counts stay below 2^21
    /// (three-byte varints) when every entry changed: the worst case of the delta
    /// scheme at that size.
    pub const fn worst_len(members: usize) -> usize {
        1 + 2 + members.saturating_sub(1) * (2 + 3)
    }
}

impl Header for CausalHdr {
    const MAX_LEN: usize = 1 + 2 + (MAX_MEMBERS - 1) * (2 + VARINT_MAX);

    fn encoded_len(&self) -> usize {
        match self {
            CausalHdr::Data { delta } => {
                1 + varint_len(delta.len() as u64)
                    + delta
                        .iter()
                        .map(|&(r, v)| varint_len(r as u64) + varint_len(v))
                        .sum::<usize>()
            }
        }
    }

    fn encode(&self, out: &mut [u8]) {
        let mut w = Writer::new(out);
        match self {
            CausalHdr::Data { delta } => {
                w.u8(T_DATA);
                w.varint(delta.len() as u64);
                for &(r, v) in delta {
                    w.varint(r as u64);
                    w.varint(v);
                }
            }
        }
    }

    fn decode(buf: &[u8]) -> Result<(Self, usize), WireError> {
        let mut r = Reader::new(buf);
        match r.u8()? {
            T_DATA => {
                let k = r.len(MAX_MEMBERS)?;
                let mut delta = Delta::with_capacity(k);
                for _ in 0..k {
                    let rank = r.varint()?;
                    if rank >= MAX_MEMBERS as u64 {
                        return Err(WireError::Invalid("rank out of range"));
                    }
                    if delta.last().is_some_and(|&(p, _)| p as u64 >= rank) {
                        return Err(WireError::Invalid("ranks not increasing"));
                    }
                    delta.push((rank as u32, r.varint()?));
                }
                Ok((CausalHdr::Data { delta }, r.position()))
            }
            t => Err(WireError::BadTag(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smallvec::smallvec;

    fn enc(h: &CausalHdr) -> Vec<u8> {
        let mut b = vec![0u8; h.encoded_len()];
        h.encode(&mut b);
        b
    }

    #[test]
    fn byte_vectors() {
        assert_eq!(enc(&CausalHdr::Data { delta: Delta::new() }), [0, 0]);
        let h = CausalHdr::Data { delta: smallvec![(0, 5), (2, 300)] };
        assert_eq!(enc(&h), [0, 2, 0, 5, 2, 0xac, 0x02]);
        assert_eq!(CausalHdr::decode(&[0, 2, 0, 5, 2, 0xac, 0x02, 9]), Ok((h, 7)));
    }

    #[test]
    fn truncated_and_corrupted() {
        let full = enc(&CausalHdr::Data { delta: smallvec![(0, 5), (2, 300)] });
        for n in 0..full.len() {
            assert_eq!(CausalHdr::decode(&full[..n]), Err(WireError::Truncated), "{n}");
        }
        assert_eq!(CausalHdr::decode(&[7, 0]), Err(WireError::BadTag(7)));
        // Ranks out of order, repeated, out of range; a count too large.
        assert!(matches!(CausalHdr::decode(&[0, 2, 2, 1, 0, 1]), Err(WireError::Invalid(_))));
        assert!(matches!(CausalHdr::decode(&[0, 2, 1, 1, 1, 1]), Err(WireError::Invalid(_))));
        assert!(matches!(CausalHdr::decode(&[0, 1, 0x80, 0x08, 1]), Err(WireError::Invalid(_))));
        assert!(matches!(CausalHdr::decode(&[0, 0x81, 0x08]), Err(WireError::Invalid(_))));
    }

    #[test]
    fn worst_case_fits_max_len() {
        let delta: Delta = (0..MAX_MEMBERS as u32 - 1).map(|r| (r, u64::MAX)).collect();
        let h = CausalHdr::Data { delta };
        assert!(h.encoded_len() <= CausalHdr::MAX_LEN);
        assert_eq!(CausalHdr::decode(&enc(&h)).map(|x| x.1), Ok(h.encoded_len()));
    }

    quickcheck::quickcheck! {
        fn never_panics(bytes: Vec<u8>) -> bool {
            match CausalHdr::decode(&bytes) {
                // Varints may be non-canonical on the wire; re-encoding is canonical.
                Ok((h, n)) => {
                    let b = enc(&h);
                    n <= bytes.len() && CausalHdr::decode(&b) == Ok((h, b.len()))
                }
                Err(_) => true,
            }
        }
        fn round_trip(entries: Vec<(u16, u64)>) -> bool {
            let mut delta: Delta = entries.iter().map(|&(r, v)| ((r % 1024) as u32, v)).collect();
            delta.sort_by_key(|e| e.0);
            delta.dedup_by_key(|e| e.0);
            let h = CausalHdr::Data { delta };
            let b = enc(&h);
            CausalHdr::decode(&b) == Ok((h, b.len()))
        }
    }
}
