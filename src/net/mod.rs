//! Sockets only: binding, the per-core UDP loops and the TCP listener. No
//! DNS logic lives here; every packet goes to [`crate::dataplane::Worker`].

mod mmsg;
mod sockopt;
pub mod tcp;
pub mod udp;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;

use crate::snapshot::Snapshot;

/// The routing table as the data plane sees it.
pub type Table = Arc<ArcSwap<Snapshot>>;

/// Set to stop the data-plane threads.
pub type Shutdown = Arc<AtomicBool>;

/// The client as GeoIP sees it: IPv4-mapped IPv6 sources become IPv4.
pub fn client_ip(addr: SocketAddr) -> IpAddr {
    match addr.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}
