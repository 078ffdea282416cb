//! Wire format of the auth layer's header, in front of every datagram of a stack.
//!
//! ```text
//! 0       1                   9                                  25
//! +-------+-------------------+----------------------------------+
//! | ver=1 | counter u64 (BE)  | tag: HMAC-SHA256, first 16 bytes |  then the datagram
//! +-------+-------------------+----------------------------------+
//! ```
//!
//! The header has one form: every datagram carries it, so there is no pass-through
//! case. The version byte names the MAC construction ([`MAC_INPUT`] describes it); any
//! other value is [`WireError::BadTag`]. A counter of zero is never sent and is
//! [`WireError::Invalid`]. Fewer than 25 bytes is [`WireError::Truncated`].

use stack_core::wire::{Header, Reader, WireError, Writer};

/// The only version: HMAC-SHA256 truncated to [`TAG_LEN`] bytes over [`MAC_INPUT`].
pub const VERSION: u8 = 1;

/// Bytes of the MAC kept on the wire (128 bits).
pub const TAG_LEN: usize = 16;

/// Domain separation string at the start of every MAC input.
///
/// The MAC input is, in this order (integers big-endian):
/// `"strata-auth/1"`, kind `u8` (0 cast, 1 send), sender `u64`, destination `u64`
/// (0 for a cast), counter `u64`, then the datagram's bytes after the header.
pub const MAC_INPUT: &[u8] = b"strata-auth/1";

/// The auth header: the sender's datagram counter and the truncated MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthHdr {
    /// Strictly increasing per sending layer instance, from 1.
    pub counter: u64,
    pub tag: [u8; TAG_LEN],
}

impl AuthHdr {
    /// Encoded length (the header is fixed-size).
    pub const LEN: usize = 1 + 8 + TAG_LEN;
}

impl Header for AuthHdr {
    const MAX_LEN: usize = Self::LEN;

    fn encoded_len(&self) -> usize {
        Self::LEN
    }

    fn encode(&self, out: &mut [u8]) {
        let mut w = Writer::new(out);
        w.u8(VERSION);
        w.u64(self.counter);
        w.bytes(&self.tag);
    }

    fn decode(buf: &[u8]) -> Result<(Self, usize), WireError> {
        let mut r = Reader::new(buf);
        let v = r.u8()?;
        if v != VERSION {
            return Err(WireError::BadTag(v));
        }
        let counter = r.u64()?;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(r.take(TAG_LEN)?);
        if counter == 0 {
            return Err(WireError::Invalid("zero counter"));
        }
        Ok((AuthHdr { counter, tag }, Self::LEN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> AuthHdr {
        AuthHdr { counter: 0x0102_0304_0506_0708, tag: core::array::from_fn(|i| 0xa0 + i as u8) }
    }

    #[test]
    fn fixed_bytes() {
        let mut b = [0u8; AuthHdr::LEN];
        hdr().encode(&mut b);
        let want: Vec<u8> = [1u8, 1, 2, 3, 4, 5, 6, 7, 8].into_iter().chain(0xa0..0xb0).collect();
        assert_eq!(&b[..], &want[..]);
        assert_eq!(AuthHdr::decode(&want), Ok((hdr(), 25)));
        let mut more = want.clone();
        more.extend_from_slice(b"payload");
        assert_eq!(AuthHdr::decode(&more), Ok((hdr(), 25)), "the datagram follows the header");
        assert_eq!(AuthHdr::MAX_LEN, 25);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut b = [0u8; AuthHdr::LEN];
        hdr().encode(&mut b);
        for n in 0..b.len() {
            assert_eq!(AuthHdr::decode(&b[..n]), Err(WireError::Truncated), "prefix {n}");
        }
    }

    #[test]
    fn corrupted_version_and_zero_counter_are_errors() {
        let mut b = [0u8; AuthHdr::LEN];
        hdr().encode(&mut b);
        for v in (0..=255u8).filter(|&v| v != VERSION) {
            b[0] = v;
            assert_eq!(AuthHdr::decode(&b), Err(WireError::BadTag(v)));
        }
        let mut z = [0u8; AuthHdr::LEN];
        z[0] = VERSION;
        assert_eq!(AuthHdr::decode(&z), Err(WireError::Invalid("zero counter")));
    }

    quickcheck::quickcheck! {
        fn never_panics_on_garbage(bytes: Vec<u8>) -> bool {
            match AuthHdr::decode(&bytes) {
                Ok((h, n)) => n == AuthHdr::LEN && bytes.len() >= n && h.counter != 0,
                Err(_) => true,
            }
        }

        fn round_trip(counter: u64, tag: Vec<u8>) -> bool {
            let mut t = [0u8; TAG_LEN];
            for (d, s) in t.iter_mut().zip(tag) {
                *d = s;
            }
            let h = AuthHdr { counter: counter.max(1), tag: t };
            let mut b = [0u8; AuthHdr::LEN];
            h.encode(&mut b);
            AuthHdr::decode(&b) == Ok((h, AuthHdr::LEN))
        }
    }
}
