//! Wire helpers shared by every layer's header codec: a bounds-checked reader and
//! writer, LEB128 varints, and the [`Header`] trait each layer's wire module implements.
//!
//! Decoding never panics: every read is checked and returns [`WireError`].

use thiserror::Error;

/// Why a header or packet could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum WireError {
    /// Fewer bytes than the encoding needs.
    #[error("truncated: needed more bytes")]
    Truncated,
    /// A tag byte that names no variant.
    #[error("unknown tag {0}")]
    BadTag(u8),
    /// A varint longer than 10 bytes or above `u64::MAX`.
    #[error("varint overflow")]
    Overflow,
    /// A field whose value is impossible.
    #[error("invalid field: {0}")]
    Invalid(&'static str),
}

/// A layer header: owned wire encoding with a known maximum length.
pub trait Header: Sized {
    /// The largest `encoded_len` any value can have; used to compute headroom.
    const MAX_LEN: usize;
    /// Exact number of bytes `encode` writes.
    fn encoded_len(&self) -> usize;
    /// Writes exactly `encoded_len()` bytes into `out` (whose length is exactly that).
    fn encode(&self, out: &mut [u8]);
    /// Parses a header from the front of `buf`, returning it and the bytes consumed.
    fn decode(buf: &[u8]) -> Result<(Self, usize), WireError>;
}

/// Number of bytes the LEB128 encoding of `v` takes.
#[inline]
pub fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Maximum length of an encoded varint.
pub const VARINT_MAX: usize = 10;

/// Writes into a slice that the caller sized with `encoded_len`.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }
    #[inline]
    pub fn u8(&mut self, v: u8) {
        self.buf[self.pos] = v;
        self.pos += 1;
    }
    #[inline]
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }
    #[inline]
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_be_bytes());
    }
    #[inline]
    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.u8(v as u8);
    }
    #[inline]
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }
    /// Bytes written so far.
    pub fn position(&self) -> usize {
        self.pos
    }
}

/// Reads from untrusted bytes; every method is checked.
#[derive(Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    #[inline]
    pub fn u8(&mut self) -> Result<u8, WireError> {
        let v = *self.buf.get(self.pos).ok_or(WireError::Truncated)?;
        self.pos += 1;
        Ok(v)
    }
    #[inline]
    pub fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    #[inline]
    pub fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    #[inline]
    pub fn varint(&mut self) -> Result<u64, WireError> {
        let mut v: u64 = 0;
        for i in 0..VARINT_MAX {
            let b = self.u8()?;
            let part = (b & 0x7f) as u64;
            if i == 9 && part > 1 {
                return Err(WireError::Overflow);
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(WireError::Overflow)
    }
    /// A varint that must fit a `usize`-sized length no larger than `max`.
    pub fn len(&mut self, max: usize) -> Result<usize, WireError> {
        let v = self.varint()?;
        if v > max as u64 {
            return Err(WireError::Invalid("length too large"));
        }
        Ok(v as usize)
    }
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }
    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip_and_lengths() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut buf = [0u8; VARINT_MAX];
            let n = varint_len(v);
            Writer::new(&mut buf[..n]).varint(v);
            let mut r = Reader::new(&buf[..n]);
            assert_eq!(r.varint(), Ok(v));
            assert_eq!(r.position(), n);
        }
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(u64::MAX), 10);
    }

    #[test]
    fn varint_rejects_truncated_and_overlong() {
        assert_eq!(Reader::new(&[0x80]).varint(), Err(WireError::Truncated));
        assert_eq!(Reader::new(&[0xff; 11]).varint(), Err(WireError::Overflow));
        let mut over = [0xffu8; 10];
        over[9] = 0x02;
        assert_eq!(Reader::new(&over).varint(), Err(WireError::Overflow));
    }

    quickcheck::quickcheck! {
        fn varint_any(v: u64) -> bool {
            let mut buf = [0u8; VARINT_MAX];
            let n = varint_len(v);
            Writer::new(&mut buf[..n]).varint(v);
            Reader::new(&buf[..n]).varint() == Ok(v)
        }
    }
}
