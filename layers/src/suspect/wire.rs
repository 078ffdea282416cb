//! The `suspect` header: one tag byte.
//!
//! ```text
//! 0x00  Data       pass-through: a message of the layers above
//! 0x01  Heartbeat  "I am alive", a small cast when there is no other traffic
//! ```

use stack_core::wire::{Header, Reader, WireError};

/// Header of the `suspect` layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuspectHdr {
    /// A message of the layers above (also counts as a heartbeat).
    Data,
    /// A heartbeat cast, consumed here.
    Heartbeat,
}

const DATA: u8 = 0;
const HEARTBEAT: u8 = 1;

impl Header for SuspectHdr {
    const MAX_LEN: usize = 1;

    fn encoded_len(&self) -> usize {
        1
    }

    fn encode(&self, out: &mut [u8]) {
        out[0] = match self {
            SuspectHdr::Data => DATA,
            SuspectHdr::Heartbeat => HEARTBEAT,
        };
    }

    fn decode(buf: &[u8]) -> Result<(Self, usize), WireError> {
        let mut r = Reader::new(buf);
        let h = match r.u8()? {
            DATA => SuspectHdr::Data,
            HEARTBEAT => SuspectHdr::Heartbeat,
            t => return Err(WireError::BadTag(t)),
        };
        Ok((h, r.position()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(h: SuspectHdr) -> Vec<u8> {
        let mut v = vec![0u8; h.encoded_len()];
        h.encode(&mut v);
        v
    }

    #[test]
    fn fixed_bytes() {
        assert_eq!(enc(SuspectHdr::Data), [0x00]);
        assert_eq!(enc(SuspectHdr::Heartbeat), [0x01]);
    }

    #[test]
    fn round_trip() {
        for h in [SuspectHdr::Data, SuspectHdr::Heartbeat] {
            assert_eq!(SuspectHdr::decode(&enc(h)), Ok((h, 1)));
        }
    }

    #[test]
    fn truncated_and_corrupted() {
        assert_eq!(SuspectHdr::decode(&[]), Err(WireError::Truncated));
        assert_eq!(SuspectHdr::decode(&[0x02]), Err(WireError::BadTag(2)));
        assert_eq!(SuspectHdr::decode(&[0xff, 0x00]), Err(WireError::BadTag(0xff)));
    }

    quickcheck::quickcheck! {
        fn never_panics(bytes: Vec<u8>) -> bool {
            match SuspectHdr::decode(&bytes) {
                Ok((_, n)) => n == 1,
                Err(_) => true,
            }
        }
    }
}
