//! The `nak` header.
//!
//! ```text
//! tag 0  Unseq                                  unsequenced cast (no view yet)
//! tag 1  Data     view:v  seq:v                 a sequenced cast of the packet's sender
//! tag 2  Retrans  view:v  sender:u64  seq:v     a cast of `sender` resent by another member
//! tag 3  Nak      view:v  sender:u64  k:u8  k × (lo:v len:v)
//!                                               "resend `sender`'s casts in [lo, lo+len)"
//! tag 4  Digest   view:v  next:v                "I have sent casts 0..next in this view"
//! tag 5  P2p      seq:v                         a point-to-point message
//! tag 6  P2pNak   k:u8  k × (lo:v len:v)        "resend your sends in these ranges"
//! tag 7  P2pAck   next:v                        "I hold your sends 0..next"
//! tag 8  P2pDigest next:v                       "I have sent you 0..next"
//! ```
//!
//! `v` is a LEB128 varint, `u64` is big-endian. Ranges are non-empty, `1 ≤ k ≤`
//! [`MAX_RANGES`], and `lo + len` must not overflow.

use smallvec::SmallVec;
use stack_core::wire::{varint_len, Header, Reader, WireError, Writer, VARINT_MAX};
use stack_core::MemberId;

/// Most ranges one NAK carries.
pub const MAX_RANGES: usize = 8;

/// Half-open ranges of sequence numbers `[lo, hi)`.
pub type Ranges = SmallVec<[(u64, u64); MAX_RANGES]>;

const T_UNSEQ: u8 = 0;
const T_DATA: u8 = 1;
const T_RETRANS: u8 = 2;
const T_NAK: u8 = 3;
const T_DIGEST: u8 = 4;
const T_P2P: u8 = 5;
const T_P2P_NAK: u8 = 6;
const T_P2P_ACK: u8 = 7;
const T_P2P_DIGEST: u8 = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NakHdr {
    Unseq,
    Data { view: u64, seq: u64 },
    Retrans { view: u64, sender: MemberId, seq: u64 },
    Nak { view: u64, sender: MemberId, ranges: Ranges },
    Digest { view: u64, next: u64 },
    P2p { seq: u64 },
    P2pNak { ranges: Ranges },
    P2pAck { next: u64 },
    P2pDigest { next: u64 },
}

impl NakHdr {
    /// The largest header pushed on an application message (`Unseq`, `Data`, `P2p`);
    /// control messages and retransmissions may use more and grow their headroom.
    pub const DATA_MAX_LEN: usize = 1 + 2 * VARINT_MAX;
}

fn ranges_len(r: &Ranges) -> usize {
    1 + r.iter().map(|&(lo, hi)| varint_len(lo) + varint_len(hi - lo)).sum::<usize>()
}

fn write_ranges(w: &mut Writer, r: &Ranges) {
    w.u8(r.len() as u8);
    for &(lo, hi) in r {
        w.varint(lo);
        w.varint(hi - lo);
    }
}

fn read_ranges(r: &mut Reader) -> Result<Ranges, WireError> {
    let k = r.u8()? as usize;
    if k == 0 || k > MAX_RANGES {
        return Err(WireError::Invalid("range count"));
    }
    let mut out = Ranges::new();
    for _ in 0..k {
        let lo = r.varint()?;
        let len = r.varint()?;
        if len == 0 {
            return Err(WireError::Invalid("empty range"));
        }
        let hi = lo.checked_add(len).ok_or(WireError::Invalid("range overflows"))?;
        out.push((lo, hi));
    }
    Ok(out)
}

impl Header for NakHdr {
    const MAX_LEN: usize = 1 + VARINT_MAX + 8 + 1 + MAX_RANGES * 2 * VARINT_MAX;

    fn encoded_len(&self) -> usize {
        1 + match self {
            NakHdr::Unseq => 0,
            NakHdr::Data { view, seq } => varint_len(*view) + varint_len(*seq),
            NakHdr::Retrans { view, seq, .. } => varint_len(*view) + 8 + varint_len(*seq),
            NakHdr::Nak { view, ranges, .. } => varint_len(*view) + 8 + ranges_len(ranges),
            NakHdr::Digest { view, next } => varint_len(*view) + varint_len(*next),
            NakHdr::P2p { seq } => varint_len(*seq),
            NakHdr::P2pNak { ranges } => ranges_len(ranges),
            NakHdr::P2pAck { next } | NakHdr::P2pDigest { next } => varint_len(*next),
        }
    }

    fn encode(&self, out: &mut [u8]) {
        let mut w = Writer::new(out);
        match self {
            NakHdr::Unseq => w.u8(T_UNSEQ),
            NakHdr::Data { view, seq } => {
                w.u8(T_DATA);
                w.varint(*view);
                w.varint(*seq);
            }
            NakHdr::Retrans { view, sender, seq } => {
                w.u8(T_RETRANS);
                w.varint(*view);
                w.u64(sender.0);
                w.varint(*seq);
            }
            NakHdr::Nak { view, sender, ranges } => {
                w.u8(T_NAK);
                w.varint(*view);
                w.u64(sender.0);
                write_ranges(&mut w, ranges);
            }
            NakHdr::Digest { view, next } => {
                w.u8(T_DIGEST);
                w.varint(*view);
                w.varint(*next);
            }
            NakHdr::P2p { seq } => {
                w.u8(T_P2P);
                w.varint(*seq);
            }
            NakHdr::P2pNak { ranges } => {
                w.u8(T_P2P_NAK);
                write_ranges(&mut w, ranges);
            }
            NakHdr::P2pAck { next } => {
                w.u8(T_P2P_ACK);
                w.varint(*next);
            }
            NakHdr::P2pDigest { next } => {
                w.u8(T_P2P_DIGEST);
                w.varint(*next);
            }
        }
    }

    fn decode(buf: &[u8]) -> Result<(Self, usize), WireError> {
        let mut r = Reader::new(buf);
        let h = match r.u8()? {
            T_UNSEQ => NakHdr::Unseq,
            T_DATA => NakHdr::Data { view: r.varint()?, seq: r.varint()? },
            T_RETRANS => {
                NakHdr::Retrans { view: r.varint()?, sender: MemberId(r.u64()?), seq: r.varint()? }
            }
            T_NAK => NakHdr::Nak {
                view: r.varint()?,
                sender: MemberId(r.u64()?),
                ranges: read_ranges(&mut r)?,
            },
            T_DIGEST => NakHdr::Digest { view: r.varint()?, next: r.varint()? },
            T_P2P => NakHdr::P2p { seq: r.varint()? },
            T_P2P_NAK => NakHdr::P2pNak { ranges: read_ranges(&mut r)? },
            T_P2P_ACK => NakHdr::P2pAck { next: r.varint()? },
            T_P2P_DIGEST => NakHdr::P2pDigest { next: r.varint()? },
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

    fn enc(h: &NakHdr) -> Vec<u8> {
        let mut v = vec![0; h.encoded_len()];
        h.encode(&mut v);
        v
    }

    fn samples() -> Vec<NakHdr> {
        let m = MemberId::new(2, 1);
        vec![
            NakHdr::Unseq,
            NakHdr::Data { view: 3, seq: 300 },
            NakHdr::Retrans { view: 3, sender: m, seq: 7 },
            NakHdr::Nak { view: 3, sender: m, ranges: smallvec![(4, 6), (200, 201)] },
            NakHdr::Digest { view: 1, next: 9 },
            NakHdr::P2p { seq: 128 },
            NakHdr::P2pNak { ranges: smallvec![(0, 1)] },
            NakHdr::P2pAck { next: 5 },
            NakHdr::P2pDigest { next: 6 },
        ]
    }

    #[test]
    fn fixed_bytes() {
        let expect: [&[u8]; 9] = [
            &[0],
            &[1, 3, 0xac, 0x02],
            &[2, 3, 0, 0, 0, 2, 0, 0, 0, 1, 7],
            &[3, 3, 0, 0, 0, 2, 0, 0, 0, 1, 2, 4, 2, 0xc8, 0x01, 1],
            &[4, 1, 9],
            &[5, 0x80, 0x01],
            &[6, 1, 0, 1],
            &[7, 5],
            &[8, 6],
        ];
        for (h, want) in samples().iter().zip(expect) {
            assert_eq!(enc(h), want, "{h:?}");
            assert_eq!(NakHdr::decode(want), Ok((h.clone(), want.len())));
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for h in samples() {
            let b = enc(&h);
            for n in 0..b.len() {
                assert!(NakHdr::decode(&b[..n]).is_err(), "{h:?} prefix {n}");
            }
        }
    }

    #[test]
    fn corrupted_fields_are_errors() {
        for t in [9u8, 0x7f, 0xff] {
            assert_eq!(NakHdr::decode(&[t, 0, 0, 0]), Err(WireError::BadTag(t)));
        }
        // zero ranges, too many ranges, an empty range, an overflowing range
        assert!(NakHdr::decode(&[6, 0]).is_err());
        assert!(
            NakHdr::decode(&[6, 9, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]).is_err()
        );
        assert!(NakHdr::decode(&[6, 1, 4, 0]).is_err());
        let mut over = vec![6, 1];
        over.extend_from_slice(&[0xff; 9]);
        over.push(0x01);
        over.push(1);
        assert_eq!(NakHdr::decode(&over), Err(WireError::Invalid("range overflows")));
    }

    #[test]
    fn max_len_bounds_every_encoding() {
        let ranges: Ranges = (0..MAX_RANGES as u64)
            .map(|i| (u64::MAX / 2 + i, u64::MAX / 2 + i + u64::MAX / 4))
            .collect();
        let h = NakHdr::Nak { view: u64::MAX, sender: MemberId(u64::MAX), ranges };
        assert!(h.encoded_len() <= NakHdr::MAX_LEN);
        let d = NakHdr::Data { view: u64::MAX, seq: u64::MAX };
        assert_eq!(d.encoded_len(), NakHdr::DATA_MAX_LEN);
    }

    #[derive(Clone, Debug)]
    struct Any(NakHdr);

    fn ranges(g: &mut Gen) -> Ranges {
        let k = 1 + usize::arbitrary(g) % MAX_RANGES;
        (0..k)
            .map(|_| {
                let lo = u64::arbitrary(g) / 2;
                (lo, lo + 1 + u64::arbitrary(g) % 1000)
            })
            .collect()
    }

    impl Arbitrary for Any {
        fn arbitrary(g: &mut Gen) -> Any {
            let view = u64::arbitrary(g);
            let n = u64::arbitrary(g);
            let m = MemberId(u64::arbitrary(g));
            Any(match u8::arbitrary(g) % 9 {
                0 => NakHdr::Unseq,
                1 => NakHdr::Data { view, seq: n },
                2 => NakHdr::Retrans { view, sender: m, seq: n },
                3 => NakHdr::Nak { view, sender: m, ranges: ranges(g) },
                4 => NakHdr::Digest { view, next: n },
                5 => NakHdr::P2p { seq: n },
                6 => NakHdr::P2pNak { ranges: ranges(g) },
                7 => NakHdr::P2pAck { next: n },
                _ => NakHdr::P2pDigest { next: n },
            })
        }
    }

    quickcheck::quickcheck! {
        fn decode_never_panics(bytes: Vec<u8>) -> bool {
            let _ = NakHdr::decode(&bytes);
            true
        }

        fn round_trip(h: Any, tail: Vec<u8>) -> bool {
            let mut b = enc(&h.0);
            let n = b.len();
            b.extend_from_slice(&tail);
            n <= NakHdr::MAX_LEN && NakHdr::decode(&b) == Ok((h.0, n))
        }
    }
}
