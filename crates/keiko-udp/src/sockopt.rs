//! UDP socket options that socket2 does not offer, set through libc.

use std::io;
use std::os::fd::AsRawFd;

use socket2::Socket;

/// Turns path MTU discovery off for our answers (`IP_PMTUDISC_OMIT`): no DF
/// bit, and ICMP "fragmentation needed" messages are ignored. Otherwise a
/// forged ICMP message could shrink the path MTU so that our answers get
/// fragmented, the opening for spliced-in forged fragments. Answers stay
/// within 1232 bytes, so real paths never need to fragment them. This is
/// what BIND, Knot and gdnsd do.
pub fn omit_path_mtu_discovery(socket: &Socket, ipv6: bool) -> io::Result<()> {
    let (level, name, value) = if ipv6 {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_OMIT,
        )
    } else {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_OMIT,
        )
    };
    // SAFETY: an int option, passed by a pointer to a live `c_int` with
    // its exact size; the kernel only reads it during the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Protocol, Type};

    fn read(socket: &Socket, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        let mut value: libc::c_int = -1;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: an int option read into a live int of the stated size.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&raw mut value).cast(),
                &raw mut len,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        value
    }

    #[test]
    fn udp_sockets_omit_path_mtu_discovery() {
        let v4 = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        omit_path_mtu_discovery(&v4, false).unwrap();
        assert_eq!(
            read(&v4, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
            libc::IP_PMTUDISC_OMIT
        );
        let v6 = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        omit_path_mtu_discovery(&v6, true).unwrap();
        assert_eq!(
            read(&v6, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER),
            libc::IPV6_PMTUDISC_OMIT
        );
    }
}
