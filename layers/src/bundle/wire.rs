//! Wire format of a bundled datagram.
//!
//! ```text
//! Single: | 0 | message bytes ...                         one byte of overhead
//! Bundle: | 1 | len varint | message | len varint | message | ...   to the end
//! ```
//!
//! A bundle holds at least one message and its length prefixes cover the datagram
//! exactly: a length beyond the end, a truncated prefix or an empty bundle makes the
//! whole datagram malformed ([`parts`] checks all of it before anything is delivered).

use stack_core::wire::{Header, Reader, WireError, Writer};
use std::ops::Range;

const TAG_SINGLE: u8 = 0;
const TAG_BUNDLE: u8 = 1;

/// The bundle layer's header: the datagram's first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleHdr {
    /// The rest of the datagram is one message (pass-through case).
    Single,
    /// Length-prefixed messages follow, up to the end of the datagram.
    Bundle,
}

impl Header for BundleHdr {
    const MAX_LEN: usize = 1;

    fn encoded_len(&self) -> usize {
        1
    }

    fn encode(&self, out: &mut [u8]) {
        Writer::new(out).u8(match self {
            BundleHdr::Single => TAG_SINGLE,
            BundleHdr::Bundle => TAG_BUNDLE,
        })
    }

    fn decode(buf: &[u8]) -> Result<(Self, usize), WireError> {
        match Reader::new(buf).u8()? {
            TAG_SINGLE => Ok((BundleHdr::Single, 1)),
            TAG_BUNDLE => Ok((BundleHdr::Bundle, 1)),
            t => Err(WireError::BadTag(t)),
        }
    }
}

/// Iterates over the byte ranges of the messages in a bundle's body (the bytes after
/// the `Bundle` tag). Yields an error, once, at the first malformed prefix.
pub struct Parts<'a> {
    r: Reader<'a>,
    failed: bool,
}

/// The messages of a bundle body, as ranges of `body`. Check the whole bundle with
/// [`check`] before acting on any of them.
pub fn parts(body: &[u8]) -> Parts<'_> {
    Parts { r: Reader::new(body), failed: false }
}

impl Iterator for Parts<'_> {
    type Item = Result<Range<usize>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.r.remaining() == 0 {
            return None;
        }
        let res = self.r.len(usize::MAX).and_then(|n| {
            let start = self.r.position();
            self.r.take(n)?;
            Ok(start..start + n)
        });
        self.failed = res.is_err();
        Some(res)
    }
}

/// Checks a whole bundle body: returns its number of messages (at least one).
pub fn check(body: &[u8]) -> Result<usize, WireError> {
    let mut n = 0;
    for p in parts(body) {
        p?;
        n += 1;
    }
    if n == 0 {
        return Err(WireError::Invalid("empty bundle"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stack_core::wire::varint_len;

    fn bundle(msgs: &[Vec<u8>]) -> Vec<u8> {
        let mut v = vec![TAG_BUNDLE];
        for m in msgs {
            let mut l = vec![0; varint_len(m.len() as u64)];
            Writer::new(&mut l).varint(m.len() as u64);
            v.extend_from_slice(&l);
            v.extend_from_slice(m);
        }
        v
    }

    #[test]
    fn fixed_bytes() {
        let mut b = [9u8];
        BundleHdr::Single.encode(&mut b);
        assert_eq!(b, [0]);
        BundleHdr::Bundle.encode(&mut b);
        assert_eq!(b, [1]);
        assert_eq!(BundleHdr::decode(&[0, 5]), Ok((BundleHdr::Single, 1)));
        assert_eq!(BundleHdr::decode(&[1]), Ok((BundleHdr::Bundle, 1)));
        let d = bundle(&[b"ab".to_vec(), vec![], vec![7; 200]]);
        assert_eq!(&d[..6], &[1, 2, b'a', b'b', 0, 0xc8]);
        assert_eq!(d[6], 0x01);
        let ranges: Vec<_> = parts(&d[1..]).collect();
        assert_eq!(ranges, vec![Ok(1..3), Ok(4..4), Ok(6..206)]);
        assert_eq!(check(&d[1..]), Ok(3));
    }

    #[test]
    fn every_truncation_is_an_error() {
        assert_eq!(BundleHdr::decode(&[]), Err(WireError::Truncated));
        let d = bundle(&[b"abc".to_vec(), vec![1; 130], b"z".to_vec()]);
        // Every proper prefix of the body that does not end on a message boundary fails.
        let ends = [4usize, 4 + 2 + 130, d.len() - 1];
        for n in 0..d.len() - 1 {
            let r = check(&d[1..1 + n]);
            if ends.contains(&n) {
                assert!(r.is_ok(), "prefix {n} ends on a boundary");
            } else {
                assert!(r.is_err(), "prefix {n}");
            }
        }
    }

    #[test]
    fn corrupted_tags_and_lengths_are_errors() {
        for t in 2..=255u8 {
            assert_eq!(BundleHdr::decode(&[t]), Err(WireError::BadTag(t)));
        }
        assert_eq!(check(&[]), Err(WireError::Invalid("empty bundle")));
        assert_eq!(check(&[5, 1, 2]), Err(WireError::Truncated));
        assert_eq!(check(&[0xff; 12]), Err(WireError::Overflow));
        let mut over = vec![0xff; 9];
        over.push(0x01);
        assert_eq!(check(&over), Err(WireError::Truncated));
    }

    quickcheck::quickcheck! {
        fn never_panics_on_garbage(bytes: Vec<u8>) -> bool {
            let _ = BundleHdr::decode(&bytes);
            if let Ok(n) = check(&bytes) {
                return parts(&bytes).count() == n && parts(&bytes).all(|p| p.is_ok());
            }
            true
        }

        fn round_trip(msgs: Vec<Vec<u8>>) -> bool {
            if msgs.is_empty() {
                return true;
            }
            let d = bundle(&msgs);
            let got: Vec<Vec<u8>> = parts(&d[1..]).map(|p| d[1..][p.unwrap()].to_vec()).collect();
            BundleHdr::decode(&d) == Ok((BundleHdr::Bundle, 1)) && check(&d[1..]) == Ok(msgs.len()) && got == msgs
        }
    }
}
