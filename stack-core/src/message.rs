//! Messages with headroom.
//!
//! A [`Msg`] is a run of header bytes followed by a payload. Going down, each layer
//! pushes its header into headroom reserved in front (computed once per stack), so a
//! push never copies the payload. Going up, a message arrives as one `Bytes` from the
//! wire and each pop only moves a cursor. Slices of the payload (fragments, bundled
//! messages) share the original buffer.

use crate::wire::{Header, WireError};
use bytes::{Bytes, BytesMut};

/// A message travelling through a stack: headers in front, payload behind.
///
/// The header area lives on the heap, allocated once when the message is created with
/// headroom (a message from the wire has none and allocates nothing), so that the
/// message itself stays small (56 bytes): events carrying it are moved from layer to
/// layer through the driver's queue, one copy per hop.
#[derive(Clone, Default)]
pub struct Msg {
    /// Header area; the valid bytes are `head[start..]`.
    head: Box<[u8]>,
    start: usize,
    body: Bytes,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Msg({} hdr + {} body bytes)", self.head.len() - self.start, self.body.len())
    }
}

impl PartialEq for Msg {
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes() == other.to_bytes()
    }
}

impl Msg {
    /// A message carrying `body`, with room for `headroom` bytes of headers (one
    /// allocation, none if `headroom` is 0), the header area growing on demand beyond
    /// that.
    pub fn new(body: Bytes, headroom: usize) -> Msg {
        Msg { head: vec![0; headroom].into_boxed_slice(), start: headroom, body }
    }

    /// A message as it arrived from the wire: no headroom, all bytes in the body.
    pub fn from_wire(bytes: Bytes) -> Msg {
        Msg { head: Box::default(), start: 0, body: bytes }
    }

    /// Total length: header bytes plus payload.
    #[inline]
    pub fn len(&self) -> usize {
        self.head.len() - self.start + self.body.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of pushed headers not yet on the wire.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.head.len() - self.start
    }

    /// Headroom still free in front of the headers.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Pushes a header in front. Grows the header area only when the stack
    /// under-reserved headroom (never on a correctly sized stack).
    #[inline]
    pub fn push<H: Header>(&mut self, h: &H) {
        let n = h.encoded_len();
        self.reserve_front(n);
        let s = self.start - n;
        h.encode(&mut self.head[s..self.start]);
        self.start = s;
    }

    /// Pushes raw bytes in front.
    pub fn push_bytes(&mut self, b: &[u8]) {
        self.reserve_front(b.len());
        let s = self.start - b.len();
        self.head[s..self.start].copy_from_slice(b);
        self.start = s;
    }

    #[inline]
    fn reserve_front(&mut self, n: usize) {
        if n > self.start {
            self.grow_front(n);
        }
    }

    /// Makes room for `n` header bytes (and 16 more) in front of the pushed ones.
    #[cold]
    #[inline(never)]
    fn grow_front(&mut self, n: usize) {
        let extra = n - self.start + 16;
        let mut head = Vec::with_capacity(self.head.len() + extra);
        head.resize(extra, 0);
        head.extend_from_slice(&self.head);
        self.start += extra;
        self.head = head.into_boxed_slice();
    }

    /// Pops a header from the front. On error the message is left unchanged.
    ///
    /// Headers pushed locally (a member's own message coming back up) are decoded
    /// where they were pushed, without joining them to the payload: a header pushed
    /// whole lies whole in the header area. Only a header that does not decode from the
    /// header area alone (one straddling it and the payload, or a malformed one) makes
    /// the message contiguous first. A header's `decode` reads its bytes in order and
    /// fails rather than succeeds on a shorter buffer, so decoding from the header
    /// area, when it succeeds, reads exactly what decoding the whole message would.
    #[inline]
    pub fn pop<H: Header>(&mut self) -> Result<H, WireError> {
        if self.start < self.head.len() {
            if let Ok((h, n)) = H::decode(&self.head[self.start..]) {
                self.start += n;
                return Ok(h);
            }
            self.flatten();
        }
        let (h, n) = H::decode(&self.body)?;
        bytes::Buf::advance(&mut self.body, n);
        Ok(h)
    }

    /// Peeks at a header without consuming it.
    pub fn peek<H: Header>(&mut self) -> Result<H, WireError> {
        if self.start < self.head.len() {
            if let Ok((h, _)) = H::decode(&self.head[self.start..]) {
                return Ok(h);
            }
            self.flatten();
        }
        H::decode(&self.body).map(|(h, _)| h)
    }

    /// The contiguous front of the message. If headers were pushed and are now being
    /// popped without a trip over the wire, they are joined with the body first.
    pub fn front(&mut self) -> &[u8] {
        if self.start < self.head.len() {
            self.flatten();
        }
        &self.body
    }

    /// Drops `n` bytes from the front (without joining headers to the payload when
    /// the `n` bytes lie in the header area).
    pub fn advance(&mut self, n: usize) {
        let pending = self.head.len() - self.start;
        if pending > 0 {
            if n <= pending {
                self.start += n;
                return;
            }
            self.flatten();
        }
        let n = n.min(self.body.len());
        bytes::Buf::advance(&mut self.body, n);
    }

    fn flatten(&mut self) {
        self.body = self.to_bytes();
        self.head = Box::default();
        self.start = 0;
    }

    /// The payload behind the headers not yet popped (a locally pushed header stays
    /// in the header area until popped). On the way up, after every header was popped,
    /// this is the whole message; [`Msg::into_body`] is the rest of the message at any
    /// point.
    #[inline]
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The rest of the message as one buffer: pending header bytes, if any, joined
    /// with the payload (no copy when there are none).
    pub fn into_body(mut self) -> Bytes {
        if self.start < self.head.len() {
            self.flatten();
        }
        self.body
    }

    /// Header bytes pushed so far (on the way down).
    pub fn headers(&self) -> &[u8] {
        &self.head[self.start..]
    }

    /// Appends the whole message (headers then payload) to `out`: the one copy onto
    /// the wire.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head[self.start..]);
        out.extend_from_slice(&self.body);
    }

    /// The whole message as one buffer.
    pub fn to_bytes(&self) -> Bytes {
        if self.start == self.head.len() {
            return self.body.clone();
        }
        let mut b = BytesMut::with_capacity(self.len());
        b.extend_from_slice(&self.head[self.start..]);
        b.extend_from_slice(&self.body);
        b.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{varint_len, Reader, Writer};

    #[derive(Debug, Clone, PartialEq)]
    struct H(u64, u8);
    impl Header for H {
        const MAX_LEN: usize = 11;
        fn encoded_len(&self) -> usize {
            varint_len(self.0) + 1
        }
        fn encode(&self, out: &mut [u8]) {
            let mut w = Writer::new(out);
            w.varint(self.0);
            w.u8(self.1);
        }
        fn decode(buf: &[u8]) -> Result<(Self, usize), WireError> {
            let mut r = Reader::new(buf);
            let h = H(r.varint()?, r.u8()?);
            Ok((h, r.position()))
        }
    }

    quickcheck::quickcheck! {
        /// Headers pushed going down come back in reverse order going up, over the
        /// wire or locally, and the payload is untouched.
        fn push_pop_round_trip(hs: Vec<(u64, u8)>, payload: Vec<u8>, headroom: u8) -> bool {
            let mut m = Msg::new(Bytes::from(payload.clone()), headroom as usize);
            for &(a, b) in &hs {
                m.push(&H(a, b));
            }
            let mut wire = Msg::from_wire(m.to_bytes());
            let mut local = m;
            for &(a, b) in hs.iter().rev() {
                if wire.pop::<H>() != Ok(H(a, b)) || local.pop::<H>() != Ok(H(a, b)) {
                    return false;
                }
            }
            wire.body()[..] == payload[..] && local.into_body()[..] == payload[..]
        }
    }

    #[test]
    fn push_within_headroom_does_not_move_payload() {
        let body = Bytes::from(vec![7u8; 1000]);
        let ptr = body.as_ptr();
        let mut m = Msg::new(body, 32);
        m.push(&H(5, 1));
        m.push(&H(300, 2));
        assert_eq!(m.body().as_ptr(), ptr);
        assert_eq!(m.header_len(), 2 + 3);
        assert_eq!(m.len(), 1005);
    }

    #[test]
    fn local_pop_does_not_copy_payload() {
        let body = Bytes::from(vec![7u8; 1000]);
        let ptr = body.as_ptr();
        let mut m = Msg::new(body, 32);
        m.push(&H(5, 1));
        m.push(&H(300, 2));
        assert_eq!(m.peek::<H>(), Ok(H(300, 2)));
        assert_eq!(m.pop::<H>(), Ok(H(300, 2)));
        assert_eq!(m.header_len(), 2);
        assert_eq!(m.len(), 1002);
        assert_eq!(m.pop::<H>(), Ok(H(5, 1)));
        assert_eq!(m.len(), 1000);
        assert_eq!(m.into_body().as_ptr(), ptr);
    }

    #[test]
    fn header_straddling_header_area_and_payload_pops_whole() {
        // H(300, 9) is [0xac, 0x02, 0x09]: its first byte pushed raw, the rest leading
        // the payload.
        let mut m = Msg::new(Bytes::from_static(&[0x02, 0x09, 42]), 8);
        m.push_bytes(&[0xac]);
        m.push(&H(1, 2));
        assert_eq!(m.pop::<H>(), Ok(H(1, 2)));
        assert_eq!(m.peek::<H>(), Ok(H(300, 9)));
        assert_eq!(m.pop::<H>(), Ok(H(300, 9)));
        assert_eq!(&m.into_body()[..], &[42]);
    }

    #[test]
    fn advance_within_and_beyond_header_area() {
        let mut m = Msg::new(Bytes::from_static(&[4, 5, 6]), 8);
        m.push_bytes(&[1, 2, 3]);
        m.advance(2);
        assert_eq!(m.len(), 4);
        m.advance(2);
        assert_eq!(&m.into_body()[..], &[5, 6]);
    }

    #[test]
    fn pop_of_truncated_header_is_error_and_leaves_message() {
        let mut m = Msg::from_wire(Bytes::from_static(&[0x80]));
        assert_eq!(m.pop::<H>(), Err(WireError::Truncated));
        assert_eq!(m.len(), 1);
    }
}
