//! Sockets only: binding, the per-core UDP loops and the TCP listener. No
//! DNS logic lives here; every packet goes to [`crate::dataplane::Worker`].
//! The system calls socket2 does not offer are in the `keiko-udp` crate;
//! [`holder`] names the process that holds an address a bind found taken.

pub(crate) mod holder;
pub(crate) mod slots;
pub(crate) mod tcp;
pub(crate) mod udp;

use std::net::{IpAddr, SocketAddr};

/// The client as GeoIP sees it: IPv4-mapped IPv6 sources become IPv4.
pub(crate) fn client_ip(addr: SocketAddr) -> IpAddr {
    match addr.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}
