//! Wire format of the frag header.
//!
//! ```text
//! Whole:  | 0 |                                   one byte; the message follows whole
//! First:  | 1 | id varint | count varint | total varint |
//! Next:   | 2 | id varint | index varint |       index 1 ..= count-1
//! ```
//!
//! `id` numbers the sender's fragmented messages, `count` is the number of fragments
//! (at least 2), `total` the reassembled length (at least `count`: no fragment is
//! empty). The last fragment is the `Next` whose `index` is `count - 1`.

use stack_core::wire::{varint_len, Header, Reader, WireError, Writer, VARINT_MAX};

const TAG_WHOLE: u8 = 0;
const TAG_FIRST: u8 = 1;
const TAG_NEXT: u8 = 2;

/// The frag layer's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragHdr {
    /// A message that was not split (pass-through case).
    Whole,
    /// The first fragment of message `id`, split into `count` fragments of `total`
    /// bytes in all.
    First { id: u64, count: u64, total: u64 },
    /// Fragment `index` (from 1) of message `id`.
    Next { id: u64, index: u64 },
}

impl Header for FragHdr {
    const MAX_LEN: usize = 1 + 3 * VARINT_MAX;

    fn encoded_len(&self) -> usize {
        match *self {
            FragHdr::Whole => 1,
            FragHdr::First { id, count, total } => {
                1 + varint_len(id) + varint_len(count) + varint_len(total)
            }
            FragHdr::Next { id, index } => 1 + varint_len(id) + varint_len(index),
        }
    }

    fn encode(&self, out: &mut [u8]) {
        let mut w = Writer::new(out);
        match *self {
            FragHdr::Whole => w.u8(TAG_WHOLE),
            FragHdr::First { id, count, total } => {
                w.u8(TAG_FIRST);
                w.varint(id);
                w.varint(count);
                w.varint(total);
            }
            FragHdr::Next { id, index } => {
                w.u8(TAG_NEXT);
                w.varint(id);
                w.varint(index);
            }
        }
    }

    fn decode(buf: &[u8]) -> Result<(Self, usize), WireError> {
        let mut r = Reader::new(buf);
        let h = match r.u8()? {
            TAG_WHOLE => FragHdr::Whole,
            TAG_FIRST => {
                let id = r.varint()?;
                let count = r.varint()?;
                let total = r.varint()?;
                if count < 2 {
                    return Err(WireError::Invalid("fragment count below 2"));
                }
                if total < count {
                    return Err(WireError::Invalid("fragments shorter than one byte"));
                }
                FragHdr::First { id, count, total }
            }
            TAG_NEXT => {
                let id = r.varint()?;
                let index = r.varint()?;
                if index == 0 {
                    return Err(WireError::Invalid("next fragment with index 0"));
                }
                FragHdr::Next { id, index }
            }
            t => return Err(WireError::BadTag(t)),
        };
        Ok((h, r.position()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen};

    fn enc(h: &FragHdr) -> Vec<u8> {
        let mut v = vec![0; h.encoded_len()];
        h.encode(&mut v);
        v
    }

    #[test]
    fn fixed_bytes() {
        assert_eq!(enc(&FragHdr::Whole), [0]);
        assert_eq!(enc(&FragHdr::First { id: 5, count: 3, total: 300 }), [1, 5, 3, 0xac, 0x02]);
        assert_eq!(enc(&FragHdr::Next { id: 128, index: 2 }), [2, 0x80, 0x01, 2]);
        assert_eq!(FragHdr::decode(&[0, 9, 9]), Ok((FragHdr::Whole, 1)));
        assert_eq!(
            FragHdr::decode(&[1, 5, 3, 0xac, 0x02, 0xff]),
            Ok((FragHdr::First { id: 5, count: 3, total: 300 }, 5))
        );
        assert_eq!(
            FragHdr::decode(&[2, 0x80, 0x01, 2]),
            Ok((FragHdr::Next { id: 128, index: 2 }, 4))
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        for h in [
            FragHdr::First { id: 1 << 40, count: 70_000, total: 1 << 33 },
            FragHdr::Next { id: 300, index: 1 << 20 },
        ] {
            let b = enc(&h);
            for n in 0..b.len() {
                assert_eq!(FragHdr::decode(&b[..n]), Err(WireError::Truncated), "{h:?} prefix {n}");
            }
        }
    }

    #[test]
    fn corrupted_tags_and_fields_are_errors() {
        for t in 3..=255u8 {
            assert_eq!(FragHdr::decode(&[t, 0, 0, 0]), Err(WireError::BadTag(t)));
        }
        // count below 2, total below count, index 0.
        assert!(matches!(FragHdr::decode(&[1, 0, 1, 5]), Err(WireError::Invalid(_))));
        assert!(matches!(FragHdr::decode(&[1, 0, 4, 3]), Err(WireError::Invalid(_))));
        assert!(matches!(FragHdr::decode(&[2, 0, 0]), Err(WireError::Invalid(_))));
        // an overlong varint
        assert_eq!(
            FragHdr::decode(&[2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            Err(WireError::Overflow)
        );
    }

    impl Arbitrary for FragHdr {
        fn arbitrary(g: &mut Gen) -> Self {
            match u8::arbitrary(g) % 3 {
                0 => FragHdr::Whole,
                1 => {
                    let count = u64::arbitrary(g).max(2);
                    let total = u64::arbitrary(g).max(count);
                    FragHdr::First { id: u64::arbitrary(g), count, total }
                }
                _ => FragHdr::Next { id: u64::arbitrary(g), index: u64::arbitrary(g).max(1) },
            }
        }
    }

    quickcheck::quickcheck! {
        fn never_panics_on_garbage(bytes: Vec<u8>) -> bool {
            let _ = FragHdr::decode(&bytes);
            true
        }

        fn round_trip(h: FragHdr, tail: Vec<u8>) -> bool {
            let mut b = enc(&h);
            let n = b.len();
            b.extend_from_slice(&tail);
            n <= FragHdr::MAX_LEN && FragHdr::decode(&b) == Ok((h, n))
        }
    }
}
