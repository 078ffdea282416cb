//! Wire format of the flow header.
//!
//! ```text
//! Data:   | 0 |                               one byte; a message that uses credit
//! Credit: | 1 | view varint | limit varint |  layer-local, point-to-point
//! Free:   | 2 |                               one byte; an unreliable cast, no credit
//! ```
//!
//! `limit` is cumulative: the receiver lets the sender send it up to `limit` bytes in
//! view `view` (counted as the bytes flow sees going down, without this header).

use stack_core::wire::{varint_len, Header, Reader, WireError, Writer, VARINT_MAX};

const TAG_DATA: u8 = 0;
const TAG_CREDIT: u8 = 1;
const TAG_FREE: u8 = 2;

/// The flow layer's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowHdr {
    /// A message from above (pass-through case).
    Data,
    /// The sender may send up to `limit` bytes in all in view `view`.
    Credit { view: u64, limit: u64 },
    /// An unreliable cast from above (`Down::CastUnreliable`): charged against no
    /// credit by its sender, so not counted as consumed by its receivers.
    Free,
}

impl Header for FlowHdr {
    const MAX_LEN: usize = 1 + 2 * VARINT_MAX;

    fn encoded_len(&self) -> usize {
        match *self {
            FlowHdr::Data | FlowHdr::Free => 1,
            FlowHdr::Credit { view, limit } => 1 + varint_len(view) + varint_len(limit),
        }
    }

    fn encode(&self, out: &mut [u8]) {
        let mut w = Writer::new(out);
        match *self {
            FlowHdr::Data => w.u8(TAG_DATA),
            FlowHdr::Free => w.u8(TAG_FREE),
            FlowHdr::Credit { view, limit } => {
                w.u8(TAG_CREDIT);
                w.varint(view);
                w.varint(limit);
            }
        }
    }

    fn decode(buf: &[u8]) -> Result<(Self, usize), WireError> {
        let mut r = Reader::new(buf);
        let h = match r.u8()? {
            TAG_DATA => FlowHdr::Data,
            TAG_FREE => FlowHdr::Free,
            TAG_CREDIT => FlowHdr::Credit { view: r.varint()?, limit: r.varint()? },
            t => return Err(WireError::BadTag(t)),
        };
        Ok((h, r.position()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen};

    fn enc(h: &FlowHdr) -> Vec<u8> {
        let mut v = vec![0; h.encoded_len()];
        h.encode(&mut v);
        v
    }

    #[test]
    fn fixed_bytes() {
        assert_eq!(enc(&FlowHdr::Data), [0]);
        assert_eq!(enc(&FlowHdr::Free), [2]);
        assert_eq!(FlowHdr::decode(&[2, 9]), Ok((FlowHdr::Free, 1)));
        assert_eq!(enc(&FlowHdr::Credit { view: 3, limit: 1 << 20 }), [1, 3, 0x80, 0x80, 0x40]);
        assert_eq!(FlowHdr::decode(&[0, 1]), Ok((FlowHdr::Data, 1)));
        assert_eq!(
            FlowHdr::decode(&[1, 3, 0x80, 0x80, 0x40, 0]),
            Ok((FlowHdr::Credit { view: 3, limit: 1 << 20 }, 5))
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let b = enc(&FlowHdr::Credit { view: 300, limit: u64::MAX });
        for n in 0..b.len() {
            assert_eq!(FlowHdr::decode(&b[..n]), Err(WireError::Truncated), "prefix {n}");
        }
    }

    #[test]
    fn corrupted_tags_are_errors() {
        for t in 3..=255u8 {
            assert_eq!(FlowHdr::decode(&[t, 0, 0]), Err(WireError::BadTag(t)));
        }
        let mut over = vec![1, 0];
        over.extend_from_slice(&[0xff; 11]);
        assert_eq!(FlowHdr::decode(&over), Err(WireError::Overflow));
    }

    impl Arbitrary for FlowHdr {
        fn arbitrary(g: &mut Gen) -> Self {
            match u8::arbitrary(g) % 3 {
                0 => FlowHdr::Data,
                1 => FlowHdr::Free,
                _ => FlowHdr::Credit { view: u64::arbitrary(g), limit: u64::arbitrary(g) },
            }
        }
    }

    quickcheck::quickcheck! {
        fn never_panics_on_garbage(bytes: Vec<u8>) -> bool {
            let _ = FlowHdr::decode(&bytes);
            true
        }

        fn round_trip(h: FlowHdr, tail: Vec<u8>) -> bool {
            let mut b = enc(&h);
            let n = b.len();
            b.extend_from_slice(&tail);
            n <= FlowHdr::MAX_LEN && FlowHdr::decode(&b) == Ok((h, n))
        }
    }
}
