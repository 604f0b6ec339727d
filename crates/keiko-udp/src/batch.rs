//! Batched datagram I/O with `recvmmsg`/`sendmmsg`: one system call moves
//! up to [`BATCH`] packets each way. The message headers point into
//! buffers owned by the same [`Batch`] and are built once, so a call only
//! resets what the kernel overwrites.

use std::io;
use std::mem::zeroed;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

use socket2::Socket;

/// Datagrams moved by one system call, at most.
pub const BATCH: usize = 32;
/// Largest query we read; bigger datagrams are cut and then fail to parse.
pub const RECV_SIZE: usize = 4096;

const ADDR_LEN: libc::socklen_t = size_of::<libc::sockaddr_storage>() as libc::socklen_t;

/// Receive and send buffers for one socket's loop, with the kernel's
/// message headers pointing into them. Every buffer is boxed or mapped, so
/// the pointers stay valid when the `Batch` itself moves.
pub struct Batch {
    /// BATCH receive buffers of RECV_SIZE bytes, end to end.
    recv: Pages,
    peers: Box<[libc::sockaddr_storage]>,
    recv_iov: Box<[libc::iovec]>,
    recv_hdrs: Box<[libc::mmsghdr]>,
    /// Responses, one per slot; each grows to what its answers need on
    /// first use and keeps that capacity, so steady state never allocates.
    send: Vec<Vec<u8>>,
    send_iov: Box<[libc::iovec]>,
    send_hdrs: Box<[libc::mmsghdr]>,
    sends: usize,
    /// Headers the last receive filled, whose name lengths need resetting.
    received: usize,
}

// SAFETY: the raw pointers in the headers point only into buffers this
// Batch owns, which do not move with it; sending the Batch to another
// thread sends their only owner along, and nothing else refers to them.
unsafe impl Send for Batch {}

impl Batch {
    pub fn new() -> io::Result<Batch> {
        let zero_iov = || libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let mut b = Batch {
            recv: Pages::new(RECV_SIZE * BATCH)?,
            // SAFETY: sockaddr_storage is plain old data (integers and
            // byte arrays), for which all-zero bytes are a valid value.
            peers: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            recv_iov: (0..BATCH).map(|_| zero_iov()).collect(),
            // SAFETY: mmsghdr is integers and raw pointers, for which
            // all-zero bytes (null pointers, zero lengths) are valid.
            recv_hdrs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            send: (0..BATCH).map(|_| Vec::new()).collect(),
            send_iov: (0..BATCH).map(|_| zero_iov()).collect(),
            // SAFETY: as for `recv_hdrs`.
            send_hdrs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            sends: 0,
            received: 0,
        };
        for i in 0..BATCH {
            b.recv_iov[i] = libc::iovec {
                iov_base: b.recv.at(i * RECV_SIZE).cast(),
                iov_len: RECV_SIZE,
            };
            let h = &mut b.recv_hdrs[i].msg_hdr;
            h.msg_iov = &raw mut b.recv_iov[i];
            h.msg_iovlen = 1;
            h.msg_name = (&raw mut b.peers[i]).cast();
            h.msg_namelen = ADDR_LEN;
            let h = &mut b.send_hdrs[i].msg_hdr;
            h.msg_iov = &raw mut b.send_iov[i];
            h.msg_iovlen = 1;
        }
        Ok(b)
    }

    /// Waits for at least one datagram (up to the socket's read timeout) and
    /// takes as many as are queued, up to BATCH. Returns how many.
    pub fn receive(&mut self, socket: &Socket) -> io::Result<usize> {
        // The kernel shrinks the name length of each header it fills to
        // the sender's address length; only those need resetting.
        for hdr in &mut self.recv_hdrs[..self.received] {
            hdr.msg_hdr.msg_namelen = ADDR_LEN;
        }
        self.received = 0;
        // The raw system call: glibc's wrapper is a thread-cancellation
        // point, and we never cancel threads.
        // SAFETY: BATCH headers exist, each pointing at one iovec over its
        // own RECV_SIZE bytes of `recv` and at its own peer address, with
        // the lengths they were built with; all are owned by `self`, which
        // is borrowed mutably for the call, so nothing else touches them.
        let n = unsafe {
            libc::syscall(
                libc::SYS_recvmmsg,
                socket.as_raw_fd(),
                self.recv_hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut::<libc::timespec>(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.received = (n as usize).min(BATCH);
        Ok(self.received)
    }

    /// Runs `answer` over the first `n` received datagrams; each call gets
    /// the packet, its sender and an empty send slot, and returns whether
    /// the slot holds a response to send.
    pub fn process(
        &mut self,
        n: usize,
        mut answer: impl FnMut(&[u8], SocketAddr, &mut Vec<u8>) -> bool,
    ) {
        self.sends = 0;
        for i in 0..n.min(BATCH) {
            // Nothing can be sent to port 0, and a query "from" it is
            // forged; both are dropped unanswered, as gdnsd and BIND do.
            let Some(peer) = sockaddr(&self.peers[i]).filter(|p| p.port() != 0) else {
                continue;
            };
            // A cut datagram is answered as the malformed thing it now is.
            let len = (self.recv_hdrs[i].msg_len as usize).min(RECV_SIZE);
            let slot = self.sends;
            let out = &mut self.send[slot];
            let start = i * RECV_SIZE;
            if answer(&self.recv.as_slice()[start..start + len], peer, out) {
                self.send_iov[slot] = libc::iovec {
                    iov_base: out.as_mut_ptr().cast(),
                    iov_len: out.len(),
                };
                let h = &mut self.send_hdrs[slot].msg_hdr;
                h.msg_name = (&raw mut self.peers[i]).cast();
                h.msg_namelen = self.recv_hdrs[i].msg_hdr.msg_namelen;
                self.sends += 1;
            }
        }
    }

    /// Sends every response `process` queued and returns how many the
    /// kernel refused. A refused datagram (peer unreachable, buffer full)
    /// is dropped and the rest still go; a call interrupted by a signal
    /// before it sent anything is repeated.
    pub fn flush(&mut self, socket: &Socket) -> usize {
        let mut done = 0;
        let mut failed = 0;
        while done < self.sends {
            // SAFETY: headers `done..sends` were filled by `process` and
            // point at send buffers and peer addresses owned by `self`,
            // unchanged since (`self` is borrowed mutably); `done < sends
            // <= BATCH`, so the pointer and count stay within the headers.
            let sent = unsafe {
                libc::syscall(
                    libc::SYS_sendmmsg,
                    socket.as_raw_fd(),
                    self.send_hdrs.as_mut_ptr().add(done),
                    (self.sends - done) as libc::c_uint,
                    0,
                )
            };
            if sent > 0 {
                done += (sent as usize).min(self.sends - done);
                continue;
            }
            // The kernel reports an error only when the first datagram of
            // the call failed; later ones come back at the next call.
            if sent < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            failed += 1;
            done += 1;
        }
        self.sends = 0;
        failed
    }
}

/// Zeroed memory mapped straight from the kernel, so a page becomes
/// resident only when a datagram is first written to it: a quiet worker
/// holds no receive buffers. (malloc's calloc may clear, and so touch,
/// memory it reuses.)
struct Pages {
    ptr: NonNull<u8>,
    len: usize,
}

impl Pages {
    fn new(len: usize) -> io::Result<Pages> {
        // SAFETY: a new private anonymous mapping touches no existing memory.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(io::Error::last_os_error)?;
        Ok(Pages { ptr, len })
    }

    /// A pointer `offset` bytes in, for the kernel to write through.
    fn at(&mut self, offset: usize) -> *mut u8 {
        assert!(offset < self.len);
        // SAFETY: `offset` is within the mapping, checked above.
        unsafe { self.ptr.as_ptr().add(offset) }
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` bytes mapped readable and writable, zero or written
        // by the kernel, for as long as `self` lives; the kernel writes only
        // during `receive`, which borrows the Batch mutably, so no write
        // happens while this shared borrow lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

fn sockaddr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which
            // sockaddr_storage is large enough and aligned for.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = u32::from_be(a.sin_addr.s_addr);
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip.into(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6,
            // which sockaddr_storage is large enough and aligned for.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                a.sin6_addr.s6_addr.into(),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
    use std::time::Duration;

    use socket2::{Domain, Protocol, Type};

    /// Fills slot `i` as if a 12-byte datagram had come from `peer`.
    fn set_peer(batch: &mut Batch, i: usize, peer: SocketAddr) {
        let addr = socket2::SockAddr::from(peer);
        batch.peers[i] = sockaddr_storage(&addr);
        batch.recv_hdrs[i].msg_len = 12;
        batch.recv_hdrs[i].msg_hdr.msg_namelen = addr.len();
    }

    fn sockaddr_storage(addr: &socket2::SockAddr) -> libc::sockaddr_storage {
        // SAFETY: all-zero bytes are a valid sockaddr_storage (see `Batch::new`).
        let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
        let len = (addr.len() as usize).min(size_of::<libc::sockaddr_storage>());
        // SAFETY: `len` bytes are readable at `addr` (its own length) and
        // writable in `storage` (capped at its size); the two do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                addr.as_ptr().cast::<u8>(),
                (&raw mut storage).cast::<u8>(),
                len,
            );
        }
        storage
    }

    fn udp_v4() -> Socket {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    #[test]
    fn datagrams_from_port_zero_are_dropped_unanswered() {
        let mut batch = Batch::new().expect("buffers");
        set_peer(&mut batch, 0, (Ipv4Addr::LOCALHOST, 0).into());
        set_peer(&mut batch, 1, (Ipv4Addr::LOCALHOST, 5353).into());
        let mut seen = Vec::new();
        batch.process(2, |packet, peer, out| {
            seen.push(peer);
            out.extend_from_slice(packet);
            true
        });
        assert_eq!(seen, vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 5353))]);
        assert_eq!(batch.sends, 1);
    }

    #[test]
    fn datagrams_are_received_and_answered_to_their_senders() {
        let server = udp_v4();
        let server_addr = server.local_addr().unwrap().as_socket().unwrap();
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.send_to(b"one", server_addr).unwrap();
        client.send_to(b"two", server_addr).unwrap();
        let mut batch = Batch::new().expect("buffers");
        let mut got = Vec::new();
        while got.len() < 2 {
            let n = batch.receive(&server).expect("receive");
            batch.process(n, |packet, peer, out| {
                got.push((packet.to_vec(), peer));
                out.extend_from_slice(b"re:");
                out.extend_from_slice(packet);
                true
            });
            assert_eq!(batch.flush(&server), 0);
        }
        let from = client.local_addr().unwrap();
        assert_eq!(got, vec![(b"one".to_vec(), from), (b"two".to_vec(), from)]);
        let mut buf = [0u8; 16];
        for want in [&b"re:one"[..], b"re:two"] {
            let (len, peer) = client.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..len], peer), (want, server_addr));
        }
    }

    #[test]
    fn a_datagram_the_kernel_refuses_is_counted_and_the_rest_still_go() {
        let server = udp_v4();
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut batch = Batch::new().expect("buffers");
        // An IPv6 destination on an IPv4 socket: EAFNOSUPPORT.
        set_peer(&mut batch, 0, (Ipv6Addr::LOCALHOST, 5353).into());
        set_peer(&mut batch, 1, client.local_addr().unwrap());
        batch.process(2, |_, _, out| {
            out.extend_from_slice(b"answer");
            true
        });
        assert_eq!(batch.flush(&server), 1, "one refused");
        let mut buf = [0u8; 16];
        let (len, _) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"answer");
        assert_eq!(batch.flush(&server), 0, "nothing left queued");
    }
}
