//! Passing open sockets between processes over a Unix socket
//! (`SCM_RIGHTS`), for a takeover restart: the running server hands its
//! listening sockets to the process replacing it. Built on rustix's safe
//! `sendmsg`/`recvmsg`, so this module adds no `unsafe` code: received
//! descriptors arrive as [`OwnedFd`]s, closed when dropped.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// Descriptors sent in one message, at most (the kernel's own limit,
/// `SCM_MAX_FD`, is 253); callers send more in several messages.
pub const MAX_FDS: usize = 64;

/// Sends `data` as one message on the connected Unix socket `socket`, with
/// `fds` attached (at most [`MAX_FDS`]). The receiver gets its own copies
/// of the descriptors: both processes then share each open socket.
pub fn send_with_fds(socket: impl AsFd, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} descriptors in one message, at most {MAX_FDS}",
                fds.len()
            ),
        ));
    }
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other(
            "descriptors do not fit the control buffer",
        ));
    }
    let sent = rustix::net::sendmsg(
        socket,
        &[io::IoSlice::new(data)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    if sent != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("sent {sent} of {} bytes", data.len()),
        ));
    }
    Ok(())
}

/// Receives one message into `buf` from the connected Unix socket
/// `socket`: its length and the descriptors attached to it (close-on-exec).
/// A message or a descriptor list that did not fit is an error, never a
/// silent truncation; a closed peer reads as 0 bytes and no descriptors.
pub fn recv_with_fds(socket: impl AsFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        socket,
        &mut [io::IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if got.flags.contains(ReturnFlags::CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "more descriptors were sent than one message may carry",
        ));
    }
    if got.flags.contains(ReturnFlags::TRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a message longer than {} bytes", buf.len()),
        ));
    }
    Ok((got.bytes, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Socket, Type};
    use std::net::UdpSocket;

    fn pair() -> (Socket, Socket) {
        Socket::pair(Domain::UNIX, Type::SEQPACKET, None).unwrap()
    }

    #[test]
    fn a_passed_socket_is_the_same_open_socket() {
        let (a, b) = pair();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        send_with_fds(&a, b"udp", &[udp.as_fd()]).unwrap();
        let mut buf = [0u8; 16];
        let (n, fds) = recv_with_fds(&b, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"udp");
        assert_eq!(fds.len(), 1);
        let received = UdpSocket::from(fds.into_iter().next().unwrap());
        assert_eq!(received.local_addr().unwrap(), addr);
        // A datagram queued on the socket is read through the copy after
        // the sender's descriptor is closed: nothing queued is lost.
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"ping", addr).unwrap();
        drop(udp);
        let mut got = [0u8; 8];
        let (len, _) = received.recv_from(&mut got).unwrap();
        assert_eq!(&got[..len], b"ping");
    }

    #[test]
    fn messages_without_descriptors_and_a_closed_peer() {
        let (a, b) = pair();
        send_with_fds(&a, b"hello", &[]).unwrap();
        let mut buf = [0u8; 16];
        let (n, fds) = recv_with_fds(&b, &mut buf).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"hello"[..], 0));
        drop(a);
        let (n, fds) = recv_with_fds(&b, &mut buf).unwrap();
        assert_eq!((n, fds.len()), (0, 0));
    }

    #[test]
    fn too_many_descriptors_or_a_long_message_are_errors() {
        let (a, b) = pair();
        let sockets: Vec<UdpSocket> = (0..=MAX_FDS)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let fds: Vec<BorrowedFd<'_>> = sockets.iter().map(AsFd::as_fd).collect();
        assert!(send_with_fds(&a, b"x", &fds).is_err());
        send_with_fds(&a, &[7u8; 64], &fds[..MAX_FDS]).unwrap();
        let mut small = [0u8; 8];
        assert!(recv_with_fds(&b, &mut small).is_err());
    }
}
