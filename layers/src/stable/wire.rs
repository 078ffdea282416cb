//! The `stable` header.
//!
//! ```text
//! tag 0  Data                      an application message, nothing piggybacked
//! tag 1  DataVec  vector           an application cast carrying this member's vector
//! tag 2  Gossip   vector           the vector alone (layer-local, not passed up)
//!
//! vector = view:v  n:v  n × count:v
//! ```
//!
//! `count[i]` is how many
//! casts of the view's `i`-th member (members sorted by id) the sender has received
//! contiguously, in the reliable layer's numbering. `n ≤` [`MAX_MEMBERS`].

use smallvec::SmallVec;
use stack_core::wire::{varint_len, Header, Reader, WireError, Writer, VARINT_MAX};

/// Most members a vector may describe.
pub const MAX_MEMBERS: usize = 1024;

const T_DATA: u8 = 0;
const T_DATA_VEC: u8 = 1;
const T_GOSSIP: u8 = 2;

/// Counts inline for views of up to 8 members.
pub type Counts = SmallVec<[u64; 8]>;

/// What one member has received, per sender of the view.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Vector {
    pub view: u64,
    pub counts: Counts,
}

impl Vector {
    pub fn encoded_len(&self) -> usize {
        varint_len(self.view)
            + varint_len(self.counts.len() as u64)
            + self.counts.iter().map(|&c| varint_len(c)).sum::<usize>()
    }
    fn encode(&self, w: &mut Writer) {
        w.varint(self.view);
        w.varint(self.counts.len() as u64);
        for &c in &self.counts {
            w.varint(c);
        }
    }
    fn decode(r: &mut Reader) -> Result<Vector, WireError> {
        let view = r.varint()?;
        let n = r.len(MAX_MEMBERS.min(r.remaining()))?;
        let mut counts = Counts::with_capacity(n);
        for _ in 0..n {
            counts.push(r.varint()?);
        }
        Ok(Vector { view, counts })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StableHdr {
    Data,
    DataVec(Vector),
    Gossip(Vector),
}

impl Header for StableHdr {
    const MAX_LEN: usize = 1 + VARINT_MAX + 2 + MAX_MEMBERS * VARINT_MAX;

    fn encoded_len(&self) -> usize {
        match self {
            StableHdr::Data => 1,
            StableHdr::DataVec(v) | StableHdr::Gossip(v) => 1 + v.encoded_len(),
        }
    }

    fn encode(&self, out: &mut [u8]) {
        let mut w = Writer::new(out);
        match self {
            StableHdr::Data => w.u8(T_DATA),
            StableHdr::DataVec(v) => {
                w.u8(T_DATA_VEC);
                v.encode(&mut w);
            }
            StableHdr::Gossip(v) => {
                w.u8(T_GOSSIP);
                v.encode(&mut w);
            }
        }
    }

    fn decode(buf: &[u8]) -> Result<(Self, usize), WireError> {
        let mut r = Reader::new(buf);
        let h = match r.u8()? {
            T_DATA => StableHdr::Data,
            T_DATA_VEC => StableHdr::DataVec(Vector::decode(&mut r)?),
            T_GOSSIP => StableHdr::Gossip(Vector::decode(&mut r)?),
            t => return Err(WireError::BadTag(t)),
        };
        Ok((h, r.position()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen};
    use smallvec::smallvec;

    fn enc(h: &StableHdr) -> Vec<u8> {
        let mut v = vec![0; h.encoded_len()];
        h.encode(&mut v);
        v
    }

    fn samples() -> Vec<StableHdr> {
        vec![
            StableHdr::Data,
            StableHdr::DataVec(Vector { view: 2, counts: smallvec![0, 5, 300] }),
            StableHdr::Gossip(Vector { view: 130, counts: smallvec![7] }),
            StableHdr::Gossip(Vector { view: 1, counts: smallvec![] }),
        ]
    }

    #[test]
    fn fixed_bytes() {
        let expect: [&[u8]; 4] =
            [&[0], &[1, 2, 3, 0, 5, 0xac, 0x02], &[2, 0x82, 0x01, 1, 7], &[2, 1, 0]];
        for (h, want) in samples().iter().zip(expect) {
            assert_eq!(enc(h), want, "{h:?}");
            assert_eq!(StableHdr::decode(want), Ok((h.clone(), want.len())));
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for h in samples() {
            let b = enc(&h);
            for n in 0..b.len() {
                assert!(StableHdr::decode(&b[..n]).is_err(), "{h:?} prefix {n}");
            }
        }
    }

    #[test]
    fn corrupted_fields_are_errors() {
        for t in [3u8, 0x80, 0xff] {
            assert_eq!(StableHdr::decode(&[t, 1, 0]), Err(WireError::BadTag(t)));
        }
        // a member count larger than the bytes that follow (no huge allocation, an error)
        assert!(StableHdr::decode(&[2, 1, 0xff, 0xff, 0x03, 1, 2]).is_err());
        // more members than allowed
        let mut many = vec![2, 1, 0x81, 0x08];
        many.extend_from_slice(&[0; 1025]);
        assert!(StableHdr::decode(&many).is_err());
    }

    #[derive(Clone, Debug)]
    struct Any(StableHdr);

    impl Arbitrary for Any {
        fn arbitrary(g: &mut Gen) -> Any {
            let counts: Vec<u64> = Vec::arbitrary(g);
            let v = Vector {
                view: u64::arbitrary(g),
                counts: counts.into_iter().take(MAX_MEMBERS).collect(),
            };
            Any(match u8::arbitrary(g) % 3 {
                0 => StableHdr::Data,
                1 => StableHdr::DataVec(v),
                _ => StableHdr::Gossip(v),
            })
        }
    }

    quickcheck::quickcheck! {
        fn decode_never_panics(bytes: Vec<u8>) -> bool {
            let _ = StableHdr::decode(&bytes);
            true
        }

        fn round_trip(h: Any, tail: Vec<u8>) -> bool {
            let mut b = enc(&h.0);
            let n = b.len();
            b.extend_from_slice(&tail);
            n <= StableHdr::MAX_LEN && StableHdr::decode(&b) == Ok((h.0, n))
        }
    }
}
