//! Batched datagram I/O with `recvmmsg`/`sendmmsg`: one system call moves
//! up to [`BATCH`] packets each way. The only `unsafe` code of the crate.
#![allow(unsafe_code)]

use std::io;
use std::mem::{MaybeUninit, zeroed};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use socket2::Socket;

pub const BATCH: usize = 32;
/// Largest query we read; bigger datagrams are cut and then fail to parse.
pub const RECV_SIZE: usize = 4096;

/// Fixed receive and send buffers for one socket's loop.
pub struct Batch {
    recv: Box<[[u8; RECV_SIZE]; BATCH]>,
    lens: [usize; BATCH],
    peers: [libc::sockaddr_storage; BATCH],
    peer_lens: [libc::socklen_t; BATCH],
    /// Responses, one per slot; capacity kept across batches.
    pub send: Vec<Vec<u8>>,
    send_peers: [usize; BATCH],
    sends: usize,
}

impl Batch {
    pub fn new() -> Batch {
        Batch {
            recv: vec![[0u8; RECV_SIZE]; BATCH]
                .into_boxed_slice()
                .try_into()
                .unwrap_or_else(|_| unreachable!("BATCH slots")),
            lens: [0; BATCH],
            // SAFETY: sockaddr_storage is plain old data; all zero is valid.
            peers: unsafe { zeroed() },
            peer_lens: [0; BATCH],
            send: (0..BATCH)
                .map(|_| Vec::with_capacity(super::super::dataplane::MAX_MESSAGE))
                .collect(),
            send_peers: [0; BATCH],
            sends: 0,
        }
    }

    /// Waits for at least one datagram (up to the socket's read timeout) and
    /// takes as many as are queued, up to BATCH. Returns how many.
    pub fn receive(&mut self, socket: &Socket) -> io::Result<usize> {
        // SAFETY: every iovec and mmsghdr points into buffers owned by
        // `self`, which outlive the call; lengths match the buffers.
        unsafe {
            let mut iov: [MaybeUninit<libc::iovec>; BATCH] = MaybeUninit::uninit().assume_init();
            let mut hdrs: [libc::mmsghdr; BATCH] = zeroed();
            for i in 0..BATCH {
                iov[i].write(libc::iovec {
                    iov_base: self.recv[i].as_mut_ptr().cast(),
                    iov_len: RECV_SIZE,
                });
                hdrs[i].msg_hdr.msg_iov = iov[i].as_mut_ptr();
                hdrs[i].msg_hdr.msg_iovlen = 1;
                hdrs[i].msg_hdr.msg_name = (&raw mut self.peers[i]).cast();
                hdrs[i].msg_hdr.msg_namelen =
                    size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            }
            let n = libc::recvmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            );
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            for (i, hdr) in hdrs.iter().enumerate().take(n) {
                // A cut datagram is answered as the malformed thing it now is.
                self.lens[i] = (hdr.msg_len as usize).min(RECV_SIZE);
                self.peer_lens[i] = hdr.msg_hdr.msg_namelen;
            }
            Ok(n)
        }
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
            let Some(peer) = sockaddr(&self.peers[i]) else {
                continue;
            };
            let out = &mut self.send[self.sends];
            if answer(&self.recv[i][..self.lens[i]], peer, out) {
                self.send_peers[self.sends] = i;
                self.sends += 1;
            }
        }
    }

    /// Sends every queued response; errors for single datagrams (a peer
    /// gone, a full buffer) drop just that datagram.
    pub fn flush(&mut self, socket: &Socket) {
        let mut done = 0;
        while done < self.sends {
            // SAFETY: as in `receive`; iovecs point into `self.send` slots
            // whose lengths are their initialised lengths.
            let sent = unsafe {
                let mut iov: [MaybeUninit<libc::iovec>; BATCH] =
                    MaybeUninit::uninit().assume_init();
                let mut hdrs: [libc::mmsghdr; BATCH] = zeroed();
                let count = self.sends - done;
                for k in 0..count {
                    let slot = done + k;
                    let peer = self.send_peers[slot];
                    let buf = &mut self.send[slot];
                    iov[k].write(libc::iovec {
                        iov_base: buf.as_mut_ptr().cast(),
                        iov_len: buf.len(),
                    });
                    hdrs[k].msg_hdr.msg_iov = iov[k].as_mut_ptr();
                    hdrs[k].msg_hdr.msg_iovlen = 1;
                    hdrs[k].msg_hdr.msg_name = (&raw mut self.peers[peer]).cast();
                    hdrs[k].msg_hdr.msg_namelen = self.peer_lens[peer];
                }
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    count as libc::c_uint,
                    0,
                )
            };
            if sent <= 0 {
                // Skip the datagram that failed and go on with the rest.
                done += 1;
            } else {
                done += sent as usize;
            }
        }
        self.sends = 0;
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
