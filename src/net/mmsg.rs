//! Batched datagram I/O with `recvmmsg`/`sendmmsg`: one system call moves
//! up to [`BATCH`] packets each way. The message headers point into
//! buffers owned by the same [`Batch`] and are built once, so a call only
//! resets what the kernel overwrites. With `sockopt`, the only `unsafe` code
//! of the crate.
#![allow(unsafe_code)]

use std::io;
use std::mem::zeroed;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use socket2::Socket;

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
        // SAFETY (all `zeroed` below): these libc structs are plain old
        // data for which all-zero bytes are a valid value.
        let zero_iov = || libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let mut b = Batch {
            recv: Pages::new(RECV_SIZE * BATCH)?,
            peers: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            recv_iov: (0..BATCH).map(|_| zero_iov()).collect(),
            recv_hdrs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            send: (0..BATCH).map(|_| Vec::new()).collect(),
            send_iov: (0..BATCH).map(|_| zero_iov()).collect(),
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
        // SAFETY: the headers point at buffers and addresses owned by
        // `self` with the lengths they were built with; BATCH headers exist.
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

    /// Sends every queued response; errors for single datagrams (a peer
    /// gone, a full buffer) drop just that datagram.
    pub fn flush(&mut self, socket: &Socket) {
        let mut done = 0;
        while done < self.sends {
            // SAFETY: headers `done..sends` were filled by `process` and
            // point at send buffers and peer addresses owned by `self`,
            // unchanged since.
            let sent = unsafe {
                libc::syscall(
                    libc::SYS_sendmmsg,
                    socket.as_raw_fd(),
                    self.send_hdrs.as_mut_ptr().add(done),
                    (self.sends - done) as libc::c_uint,
                    0,
                )
            };
            // On an error skip the datagram that failed and go on.
            done += if sent <= 0 { 1 } else { sent as usize };
        }
        self.sends = 0;
    }
}

/// Zeroed memory mapped straight from the kernel, so a page becomes
/// resident only when a datagram is first written to it: a quiet worker
/// holds no receive buffers. (malloc's calloc may clear, and so touch,
/// memory it reuses.)
struct Pages {
    ptr: std::ptr::NonNull<u8>,
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
        let ptr = std::ptr::NonNull::new(ptr.cast()).ok_or_else(io::Error::last_os_error)?;
        Ok(Pages { ptr, len })
    }

    /// A pointer `offset` bytes in, for the kernel to write through.
    fn at(&mut self, offset: usize) -> *mut u8 {
        assert!(offset < self.len);
        // SAFETY: in bounds, checked above.
        unsafe { self.ptr.as_ptr().add(offset) }
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` bytes mapped readable and writable, zero or written
        // by the kernel, for as long as `self` lives; no `&mut` to them exists.
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
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = u32::from_be(a.sin_addr.s_addr);
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip.into(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
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

    fn set_peer(batch: &mut Batch, i: usize, port: u16) {
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
        unsafe {
            (&raw mut batch.peers[i])
                .cast::<libc::sockaddr_in>()
                .write(addr)
        };
        batch.recv_hdrs[i].msg_len = 12;
        batch.recv_hdrs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    }

    #[test]
    fn datagrams_from_port_zero_are_dropped_unanswered() {
        let mut batch = Batch::new().expect("buffers");
        set_peer(&mut batch, 0, 0);
        set_peer(&mut batch, 1, 5353);
        let mut seen = Vec::new();
        batch.process(2, |packet, peer, out| {
            seen.push(peer);
            out.extend_from_slice(packet);
            true
        });
        assert_eq!(seen, vec!["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]);
        assert_eq!(batch.sends, 1);
    }
}
