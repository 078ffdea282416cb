//! The `safe` header.
//!
//! ```text
//! tag 0  Data                   a cast
//! tag 1  Ack   k:v  k × (n:v)   "I hold the first n casts (at this layer, in this view)
//!                               of the member of each rank", in rank order
//! ```
//!
//! `v` is a LEB128 varint; `1 ≤ k ≤` [`MAX_MEMBERS`].

use smallvec::SmallVec;
use stack_core::wire::{varint_len, Header, Reader, WireError, Writer, VARINT_MAX};

/// Largest view the wire format admits.
pub const MAX_MEMBERS: usize = 1024;

/// Per-rank counts of an acknowledgement.
pub type Counts = SmallVec<[u64; 8]>;

const T_DATA: u8 = 0;
const T_ACK: u8 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SafeHdr {
    Data,
    Ack { counts: Counts },
}

impl Header for SafeHdr {
    const MAX_LEN: usize = 1 + 2 + MAX_MEMBERS * VARINT_MAX;

    fn encoded_len(&self) -> usize {
        match self {
            SafeHdr::Data => 1,
            SafeHdr::Ack { counts } => {
                1 + varint_len(counts.len() as u64)
                    + counts.iter().map(|&c| varint_len(c)).sum::<usize>()
            }
        }
    }

    fn encode(&self, out: &mut [u8]) {
        let mut w = Writer::new(out);
        match self {
            SafeHdr::Data => w.u8(T_DATA),
            SafeHdr::Ack { counts } => {
                w.u8(T_ACK);
                w.varint(counts.len() as u64);
                for &c in counts {
                    w.varint(c);
                }
            }
        }
    }

    fn decode(buf: &[u8]) -> Result<(Self, usize), WireError> {
        let mut r = Reader::new(buf);
        let h = match r.u8()? {
            T_DATA => SafeHdr::Data,
            T_ACK => {
                let k = r.len(MAX_MEMBERS)?;
                if k == 0 {
                    return Err(WireError::Invalid("empty ack"));
                }
                let mut counts = Counts::with_capacity(k);
                for _ in 0..k {
                    counts.push(r.varint()?);
                }
                SafeHdr::Ack { counts }
            }
            t => return Err(WireError::BadTag(t)),
        };
        Ok((h, r.position()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smallvec::smallvec;

    fn enc(h: &SafeHdr) -> Vec<u8> {
        let mut b = vec![0u8; h.encoded_len()];
        h.encode(&mut b);
        b
    }

    #[test]
    fn byte_vectors() {
        assert_eq!(enc(&SafeHdr::Data), [0]);
        let h = SafeHdr::Ack { counts: smallvec![0, 3, 300] };
        assert_eq!(enc(&h), [1, 3, 0, 3, 0xac, 0x02]);
        assert_eq!(SafeHdr::decode(&[1, 3, 0, 3, 0xac, 0x02, 7]), Ok((h, 6)));
        assert_eq!(SafeHdr::decode(&[0, 7]), Ok((SafeHdr::Data, 1)));
    }

    #[test]
    fn truncated_and_corrupted() {
        let full = enc(&SafeHdr::Ack { counts: smallvec![0, 3, 300] });
        for n in 0..full.len() {
            assert_eq!(SafeHdr::decode(&full[..n]), Err(WireError::Truncated), "{n}");
        }
        assert_eq!(SafeHdr::decode(&[2]), Err(WireError::BadTag(2)));
        assert!(matches!(SafeHdr::decode(&[1, 0]), Err(WireError::Invalid(_))));
        assert!(matches!(SafeHdr::decode(&[1, 0x81, 0x08]), Err(WireError::Invalid(_))));
    }

    #[test]
    fn worst_case_fits_max_len() {
        let h = SafeHdr::Ack { counts: (0..MAX_MEMBERS).map(|_| u64::MAX).collect() };
        assert_eq!(h.encoded_len(), SafeHdr::MAX_LEN);
    }

    quickcheck::quickcheck! {
        fn never_panics(bytes: Vec<u8>) -> bool {
            match SafeHdr::decode(&bytes) {
                // Varints may be non-canonical on the wire; re-encoding is canonical.
                Ok((h, n)) => {
                    let b = enc(&h);
                    n <= bytes.len() && SafeHdr::decode(&b) == Ok((h, b.len()))
                }
                Err(_) => true,
            }
        }
        fn round_trip(counts: Vec<u64>) -> bool {
            let h = if counts.is_empty() {
                SafeHdr::Data
            } else {
                SafeHdr::Ack { counts: counts.into_iter().take(MAX_MEMBERS).collect() }
            };
            let b = enc(&h);
            SafeHdr::decode(&b) == Ok((h, b.len()))
        }
    }
}
