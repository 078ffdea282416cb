//! Batched datagram I/O: `recvmmsg`/`sendmmsg` on Linux, a loop of `recv_from` /
//! `send_to` elsewhere. Buffers are allocated once per loop and reused.

use bytes::Bytes;
use mio::net::UdpSocket;
use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// Datagrams moved per system call.
pub const BATCH: usize = 32;
/// The largest UDP payload.
pub const MAX_DATAGRAM: usize = 65_536;

/// Receive buffers for one batch.
pub struct RecvBatch {
    bufs: Vec<u8>,
    lens: [usize; BATCH],
    addrs: [SocketAddr; BATCH],
    /// The system call's descriptors, allocated and zeroed once (zeroing them on every
    /// call cost more than the rest of the call's user-space work).
    #[cfg(target_os = "linux")]
    sys: Box<RecvSys>,
}

#[cfg(target_os = "linux")]
struct RecvSys {
    iov: [libc::iovec; BATCH],
    names: [libc::sockaddr_storage; BATCH],
    hdrs: [libc::mmsghdr; BATCH],
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: vec![0; BATCH * MAX_DATAGRAM],
            lens: [0; BATCH],
            addrs: [SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)); BATCH],
            // SAFETY: all-zero is a valid value for these plain C structs.
            #[cfg(target_os = "linux")]
            sys: unsafe { Box::new(std::mem::zeroed()) },
        }
    }
}

impl RecvBatch {
    /// Datagram `i` of the last batch and its source.
    pub fn get(&self, i: usize) -> (&[u8], SocketAddr) {
        let off = i * MAX_DATAGRAM;
        (&self.bufs[off..off + self.lens[i]], self.addrs[i])
    }

    /// Receives up to [`BATCH`] datagrams; `WouldBlock` when none is waiting.
    #[cfg(target_os = "linux")]
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let RecvSys { iov, names, hdrs } = &mut *self.sys;
        for i in 0..BATCH {
            iov[i].iov_base = self.bufs[i * MAX_DATAGRAM..].as_mut_ptr().cast();
            iov[i].iov_len = MAX_DATAGRAM;
            // A source the kernel does not fill in stays unknown (and is skipped).
            names[i].ss_family = 0;
            hdrs[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            hdrs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
            hdrs[i].msg_hdr.msg_iov = &mut iov[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every pointer refers to a live buffer of the stated length.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as _,
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        let mut kept = 0;
        for i in 0..n {
            let Some(addr) = from_raw(&names[i]) else { continue };
            let len = (hdrs[i].msg_len as usize).min(MAX_DATAGRAM);
            if kept != i {
                self.bufs
                    .copy_within(i * MAX_DATAGRAM..i * MAX_DATAGRAM + len, kept * MAX_DATAGRAM);
            }
            self.lens[kept] = len;
            self.addrs[kept] = addr;
            kept += 1;
        }
        Ok(kept)
    }

    /// Receives up to [`BATCH`] datagrams; `WouldBlock` when none is waiting.
    #[cfg(not(target_os = "linux"))]
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        let mut n = 0;
        while n < BATCH {
            let off = n * MAX_DATAGRAM;
            match sock.recv_from(&mut self.bufs[off..off + MAX_DATAGRAM]) {
                Ok((len, addr)) => {
                    self.lens[n] = len;
                    self.addrs[n] = addr;
                    n += 1;
                }
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(n)
    }
}

#[cfg(target_os = "linux")]
fn from_raw(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                a.sin6_addr.s6_addr.into(),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(target_os = "linux")]
fn to_raw(addr: &SocketAddr, ss: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let s: &mut libc::sockaddr_in =
                unsafe { &mut *(ss as *mut _ as *mut libc::sockaddr_in) };
            s.sin_family = libc::AF_INET as _;
            s.sin_port = a.port().to_be();
            s.sin_addr = libc::in_addr { s_addr: u32::from(*a.ip()).to_be() };
            std::mem::size_of::<libc::sockaddr_in>() as _
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in6.
            let s: &mut libc::sockaddr_in6 =
                unsafe { &mut *(ss as *mut _ as *mut libc::sockaddr_in6) };
            s.sin6_family = libc::AF_INET6 as _;
            s.sin6_port = a.port().to_be();
            s.sin6_flowinfo = a.flowinfo();
            s.sin6_addr = libc::in6_addr { s6_addr: a.ip().octets() };
            s.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>() as _
        }
    }
}

/// Payloads at least this long are sent from where they lie (a second `iovec`)
/// rather than copied behind their headers; shorter ones cost less to copy.
pub const GATHER_MIN: usize = 512;

/// One datagram waiting: `buf[start..end]` (its packet header and the message's
/// headers, or the whole of a short message) followed by `tail` (a long message's
/// payload, shared, not copied; empty otherwise).
struct Out {
    start: usize,
    end: usize,
    tail: Bytes,
    dest: SocketAddr,
}

impl Out {
    fn len(&self) -> usize {
        self.end - self.start + self.tail.len()
    }
}

/// Datagrams waiting to be sent: their front parts in one reused buffer, long
/// payloads by reference; a cast fanned out to several peers shares its parts.
#[derive(Default)]
pub struct OutQueue {
    buf: Vec<u8>,
    items: VecDeque<Out>,
}

/// What one flush did.
#[derive(Default, Debug, Clone, Copy)]
pub struct Flushed {
    pub datagrams: u64,
    pub bytes: u64,
    pub errors: u64,
}

impl OutQueue {
    /// The buffer to append a datagram's front part to; then call [`OutQueue::push`].
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Queues `buf[start..end]` followed by `tail` for `dest`.
    pub fn push(&mut self, start: usize, end: usize, tail: Bytes, dest: SocketAddr) {
        self.items.push_back(Out { start, end, tail, dest });
    }

    /// The datagram `buf[start..end]` followed by `tail`, as one buffer (a copy).
    pub fn joined(&self, start: usize, end: usize, tail: &[u8]) -> Bytes {
        let mut v = Vec::with_capacity(end - start + tail.len());
        v.extend_from_slice(&self.buf[start..end]);
        v.extend_from_slice(tail);
        Bytes::from(v)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Sends what the socket takes. Stops at `WouldBlock`, keeping the rest; a
    /// datagram the system refuses otherwise is dropped and counted.
    pub fn flush(&mut self, sock: &UdpSocket) -> Flushed {
        let mut f = Flushed::default();
        while !self.items.is_empty() {
            match self.send_some(sock, &mut f) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.items.pop_front();
                    f.errors += 1;
                }
            }
        }
        if self.items.is_empty() {
            self.buf.clear();
        }
        f
    }

    #[cfg(target_os = "linux")]
    fn send_some(&mut self, sock: &UdpSocket, f: &mut Flushed) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let n = self.items.len().min(BATCH);
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut iov: [libc::iovec; 2 * BATCH] = unsafe { std::mem::zeroed() };
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, o) in self.items.iter().take(n).enumerate() {
            iov[2 * i].iov_base = self.buf[o.start..].as_ptr() as *mut libc::c_void;
            iov[2 * i].iov_len = o.end - o.start;
            iov[2 * i + 1].iov_base = o.tail.as_ptr() as *mut libc::c_void;
            iov[2 * i + 1].iov_len = o.tail.len();
            hdrs[i].msg_hdr.msg_namelen = to_raw(&o.dest, &mut names[i]);
            hdrs[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            hdrs[i].msg_hdr.msg_iov = &mut iov[2 * i];
            hdrs[i].msg_hdr.msg_iovlen = if o.tail.is_empty() { 1 } else { 2 };
        }
        // SAFETY: every pointer refers to a live buffer of the stated length (the
        // front parts in `buf`, the tails held by their items until popped below);
        // the kernel only reads the data.
        let sent = unsafe { libc::sendmmsg(sock.as_raw_fd(), hdrs.as_mut_ptr(), n as _, 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        for _ in 0..sent as usize {
            let o = self.items.pop_front().expect("sent at most what was queued");
            f.datagrams += 1;
            f.bytes += o.len() as u64;
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn send_some(&mut self, sock: &UdpSocket, f: &mut Flushed) -> io::Result<()> {
        let o = self.items.front().expect("not empty");
        let d = self.joined(o.start, o.end, &o.tail);
        sock.send_to(&d, o.dest)?;
        self.items.pop_front();
        f.datagrams += 1;
        f.bytes += d.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        (a, b)
    }

    #[test]
    fn a_batch_goes_out_and_comes_back_in_order() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        let mut q = OutQueue::default();
        for i in 0..(BATCH + 5) as u8 {
            let s = q.buf().len();
            q.buf().extend_from_slice(&[i; 3]);
            let e = q.buf().len();
            q.push(s, e, Bytes::new(), to);
        }
        let f = q.flush(&a);
        assert_eq!(
            (f.datagrams, f.bytes, f.errors),
            ((BATCH + 5) as u64, 3 * (BATCH + 5) as u64, 0)
        );
        assert!(q.is_empty());
        let mut rx = RecvBatch::default();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < BATCH + 5 && std::time::Instant::now() < deadline {
            match rx.recv(&b) {
                Ok(n) => {
                    for i in 0..n {
                        let (d, from) = rx.get(i);
                        assert_eq!(from, a.local_addr().unwrap());
                        got.push(d.to_vec());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        let want: Vec<Vec<u8>> = (0..(BATCH + 5) as u8).map(|i| vec![i; 3]).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_payload_sent_from_where_it_lies_arrives_behind_its_front_part() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        let mut q = OutQueue::default();
        let tail = Bytes::from((0..3000u32).map(|i| i as u8).collect::<Vec<u8>>());
        let mut want = Vec::new();
        for i in 0..(BATCH + 3) as u8 {
            let s = q.buf().len();
            q.buf().extend_from_slice(&[i; 5]);
            let e = q.buf().len();
            // Every other datagram has a tail, shared by all of them.
            let t = if i % 2 == 0 { tail.clone() } else { Bytes::new() };
            want.push([&[i; 5][..], &t[..]].concat());
            q.push(s, e, t, to);
        }
        assert_eq!(q.joined(0, 5, &tail), Bytes::from(want[0].clone()));
        let f = q.flush(&a);
        let bytes: usize = want.iter().map(Vec::len).sum();
        assert_eq!((f.datagrams, f.bytes, f.errors), (want.len() as u64, bytes as u64, 0));
        let mut rx = RecvBatch::default();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < want.len() && std::time::Instant::now() < deadline {
            match rx.recv(&b) {
                Ok(n) => got.extend((0..n).map(|i| rx.get(i).0.to_vec())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, want);
    }

    #[test]
    fn an_oversized_datagram_is_counted_and_the_rest_still_go() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        let mut q = OutQueue::default();
        q.buf().resize(70_000, 1);
        q.push(0, 70_000, Bytes::new(), to);
        q.push(0, 10, Bytes::new(), to);
        let f = q.flush(&a);
        assert_eq!((f.datagrams, f.errors), (1, 1));
    }
}
