//! The `flush` header.
//!
//! ```text
//! 0x00            Data   pass-through: a message of the layers above
//! 0x01 view:varint State  the group state for a joiner of view `view` (body: state)
//! ```

use stack_core::wire::{varint_len, Header, Reader, WireError, Writer, VARINT_MAX};

/// Header of the `flush` layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushHdr {
    /// A message of the layers above.
    Data,
    /// The group state for the joiners of view `view`.
    State { view: u64 },
}

impl Header for FlushHdr {
    const MAX_LEN: usize = 1 + VARINT_MAX;

    fn encoded_len(&self) -> usize {
        match self {
            FlushHdr::Data => 1,
            FlushHdr::State { view } => 1 + varint_len(*view),
        }
    }

    fn encode(&self, out: &mut [u8]) {
        let mut w = Writer::new(out);
        match self {
            FlushHdr::Data => w.u8(0),
            FlushHdr::State { view } => {
                w.u8(1);
                w.varint(*view);
            }
        }
    }

    fn decode(buf: &[u8]) -> Result<(Self, usize), WireError> {
        let mut r = Reader::new(buf);
        let h = match r.u8()? {
            0 => FlushHdr::Data,
            1 => FlushHdr::State { view: r.varint()? },
            t => return Err(WireError::BadTag(t)),
        };
        Ok((h, r.position()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(h: FlushHdr) -> Vec<u8> {
        let mut v = vec![0u8; h.encoded_len()];
        h.encode(&mut v);
        v
    }

    #[test]
    fn fixed_bytes() {
        assert_eq!(enc(FlushHdr::Data), [0]);
        assert_eq!(enc(FlushHdr::State { view: 3 }), [1, 3]);
        assert_eq!(enc(FlushHdr::State { view: 300 }), [1, 0xac, 0x02]);
    }

    #[test]
    fn round_trip() {
        for h in [FlushHdr::Data, FlushHdr::State { view: 0 }, FlushHdr::State { view: u64::MAX }] {
            let b = enc(h);
            assert_eq!(FlushHdr::decode(&b), Ok((h, b.len())));
            assert!(b.len() <= FlushHdr::MAX_LEN);
        }
    }

    #[test]
    fn truncated_and_corrupted() {
        assert_eq!(FlushHdr::decode(&[]), Err(WireError::Truncated));
        assert_eq!(FlushHdr::decode(&[1]), Err(WireError::Truncated));
        assert_eq!(FlushHdr::decode(&[1, 0x80]), Err(WireError::Truncated));
        assert_eq!(FlushHdr::decode(&[2]), Err(WireError::BadTag(2)));
        assert_eq!(
            FlushHdr::decode(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            Err(WireError::Overflow)
        );
    }

    quickcheck::quickcheck! {
        fn never_panics(bytes: Vec<u8>) -> bool {
            match FlushHdr::decode(&bytes) {
                Ok((h, n)) => n <= bytes.len() && n >= h.encoded_len().min(n),
                Err(_) => true,
            }
        }
        fn state_round_trip(view: u64) -> bool {
            let h = FlushHdr::State { view };
            FlushHdr::decode(&enc(h)) == Ok((h, h.encoded_len()))
        }
    }
}
